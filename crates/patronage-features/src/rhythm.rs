//! Small descriptive statistics used by the rhythm features.

/// Arithmetic mean; `None` for an empty slice.
pub fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// Sample standard deviation over the mean; `None` with fewer than two values or a zero mean.
pub fn coefficient_of_variation(values: &[f64]) -> Option<f64> {
    if values.len() < 2 {
        return None;
    }
    let m = mean(values)?;
    if m == 0.0 {
        return None;
    }
    let var = values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (values.len() - 1) as f64;
    Some(var.sqrt() / m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cv_of_regular_gaps_is_zero_and_of_irregular_is_positive() {
        assert_eq!(coefficient_of_variation(&[7.0, 7.0, 7.0]), Some(0.0));
        let cv = coefficient_of_variation(&[1.0, 3.0]).unwrap_or(f64::NAN);
        assert!((cv - (2f64).sqrt() / 2.0).abs() < 1e-12);
        assert_eq!(coefficient_of_variation(&[5.0]), None);
    }
}
