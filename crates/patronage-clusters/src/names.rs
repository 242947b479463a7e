//! Readable cluster names from the centroids (standardized: 0 is the customer base's average,
//! ±0.5 half a standard deviation): recency → "recent" / "lapsed", value (monetary, else aov or
//! clv) → "high-value" / "low-value", frequency → "regulars" / "one-time buyers" /
//! "occasional buyers"; customers without order features are "visitors". Names are unique per
//! run: a repeated name gains its most distinctive other feature, then the cluster id.

use ndarray::Array2;

use crate::FeatureTransform;

const HIGH: f64 = 0.5;

fn z(centroids: &Array2<f64>, c: usize, names: &[&str], feature: &str) -> Option<f64> {
    names
        .iter()
        .position(|n| *n == feature)
        .map(|j| centroids[[c, j]])
}

/// One name per centroid (`ids` give the fallback suffix).
pub fn cluster_names(
    centroids: &Array2<f64>,
    transforms: &[FeatureTransform],
    ids: &[u32],
) -> Vec<String> {
    let names: Vec<&str> = transforms.iter().map(|t| t.name.as_str()).collect();
    let used = ["recency_days", "monetary", "aov", "clv", "frequency"];
    let mut out: Vec<String> = (0..centroids.nrows())
        .map(|c| {
            let z = |f: &str| z(centroids, c, &names, f);
            let mut parts: Vec<&str> = Vec::new();
            match z("recency_days") {
                Some(v) if v < -HIGH => parts.push("recent"),
                Some(v) if v > HIGH => parts.push("lapsed"),
                _ => {}
            }
            match z("monetary").or_else(|| z("aov")).or_else(|| z("clv")) {
                Some(v) if v > HIGH => parts.push("high-value"),
                Some(v) if v < -HIGH => parts.push("low-value"),
                _ => {}
            }
            parts.push(match z("frequency") {
                Some(v) if v > HIGH => "regulars",
                Some(v) if v < -HIGH => "one-time buyers",
                Some(_) => "occasional buyers",
                None => "visitors",
            });
            parts.join(" ")
        })
        .collect();
    // Repeated names: add the most distinctive feature not named yet, then the id.
    for pass in 0..2 {
        let repeated: Vec<bool> = (0..out.len())
            .map(|c| out.iter().filter(|n| **n == out[c]).count() > 1)
            .collect();
        for c in 0..out.len() {
            if !repeated[c] {
                continue;
            }
            if pass == 0 {
                let extra = (0..names.len())
                    .filter(|j| !used.contains(&names[*j]))
                    .max_by(|a, b| {
                        centroids[[c, *a]]
                            .abs()
                            .total_cmp(&centroids[[c, *b]].abs())
                    });
                if let Some(j) = extra {
                    let side = if centroids[[c, j]] >= 0.0 {
                        "high"
                    } else {
                        "low"
                    };
                    out[c] = format!("{} ({side} {})", out[c], names[j]);
                }
            } else {
                out[c] = format!("{} #{}", out[c], ids[c]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn t(name: &str) -> FeatureTransform {
        FeatureTransform {
            name: name.into(),
            log1p: true,
            lower: 0.0,
            upper: 1.0,
            median: 0.0,
            mean: 0.0,
            sd: 1.0,
        }
    }

    #[test]
    fn names_read_the_centroids_and_are_unique() {
        let tr = [
            t("recency_days"),
            t("frequency"),
            t("monetary"),
            t("tenure_days"),
        ];
        let c = array![
            [-1.0, 1.2, 1.0, 0.3],
            [1.0, -0.8, -0.9, 0.9],
            [1.1, -0.9, -0.7, -0.9],
            [0.0, 0.0, 0.0, 0.0]
        ];
        let n = cluster_names(&c, &tr, &[1, 2, 3, 4]);
        assert_eq!(n[0], "recent high-value regulars");
        assert_eq!(n[1], "lapsed low-value one-time buyers (high tenure_days)");
        assert_eq!(n[2], "lapsed low-value one-time buyers (low tenure_days)");
        assert_eq!(n[3], "occasional buyers");
    }
}
