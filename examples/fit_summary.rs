//! Fits BG/NBD + Gamma-Gamma on a customer summary CSV with the library API and reports timings.
//!
//! ```text
//! cargo run --release --example fit_summary -- summary.csv [repeats]
//! ```
//! The CSV has a header and the columns `x,t_x,T,m` (repeat purchase days, days from first to
//! last purchase, days from first purchase to as-of, mean repeat spend or empty). Prints one JSON
//! line: median seconds over the repeats (grouping triples included) and per step, parameters,
//! log-likelihoods; and under `customer_models` each customer-base model's (BG/NBD, MBG/NBD,
//! Pareto/NBD) median fit seconds on the same grouped triples, with its diagnostics.

use std::time::Instant;

use patronage_models::bgnbd::{self, Triples};
use patronage_models::customer::{CustomerModel, ModelKind};
use patronage_models::gamma_gamma;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: fit_summary SUMMARY.csv [repeats]")?;
    let repeats: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(5);
    let text = fs_err::read_to_string(&path)?;
    let (mut x, mut t_x, mut t, mut gx, mut gm) = (vec![], vec![], vec![], vec![], vec![]);
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        // Whole days, possibly written as floats ("3.0") by pandas.
        let day = |s: &str| -> Result<i64, std::num::ParseFloatError> {
            Ok(s.trim().parse::<f64>()?.round() as i64)
        };
        let xi = day(f[0])?;
        x.push(xi);
        t_x.push(day(f[1])?);
        t.push(day(f[2])?);
        if let Some(m) = f.get(3).and_then(|m| m.trim().parse::<f64>().ok()) {
            if xi > 0 && m > 0.0 {
                gx.push(xi as f64);
                gm.push(m);
            }
        }
    }
    let mut seconds = Vec::new();
    // Per run: grouping triples, BG/NBD fit, Gamma-Gamma fit (each with its standard errors).
    let mut split = Vec::new();
    let mut last = None;
    for _ in 0..repeats {
        let start = Instant::now();
        let triples = Triples::from_integers(&x, &t_x, &t);
        let grouped = start.elapsed().as_secs_f64();
        let bg = bgnbd::fit(&triples)?;
        let bg_done = start.elapsed().as_secs_f64();
        let gg = gamma_gamma::fit(&gx, &gm)?;
        let total = start.elapsed().as_secs_f64();
        seconds.push(total);
        split.push([grouped, bg_done - grouped, total - bg_done]);
        last = Some((bg, gg, triples.len()));
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let split_median: Vec<f64> = (0..3)
        .map(|k| median(split.iter().map(|s: &[f64; 3]| s[k]).collect()))
        .collect();
    seconds.sort_by(f64::total_cmp);
    let triples = Triples::from_integers(&x, &t_x, &t);
    let mut customer_models = serde_json::Map::new();
    for kind in ModelKind::ALL {
        let mut times = Vec::new();
        let mut diag = None;
        for _ in 0..repeats {
            let start = Instant::now();
            let fit = CustomerModel::fit(kind, &triples);
            times.push(start.elapsed().as_secs_f64());
            diag = Some(
                fit.map(|f| serde_json::json!(f.1))
                    .unwrap_or_else(|e| serde_json::json!(e.to_string())),
            );
        }
        customer_models.insert(
            kind.id().into(),
            serde_json::json!({ "median_seconds": median(times), "fit": diag }),
        );
    }
    let (bg, gg, unique) = last.ok_or("repeats must be at least 1")?;
    println!(
        "{}",
        serde_json::json!({
            "customers": x.len(),
            "unique_triples": unique,
            "repeat_customers": gx.len(),
            "median_seconds": seconds[seconds.len() / 2],
            "all_seconds": seconds,
            "median_split_seconds": {
                "group_triples": split_median[0],
                "bgnbd": split_median[1],
                "gamma_gamma": split_median[2],
            },
            "bgnbd": bg.1,
            "gamma_gamma": gg.1,
            "customer_models": customer_models,
        })
    );
    Ok(())
}
