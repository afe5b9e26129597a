//! Small statistics shared by selectors and judges.

/// Arithmetic mean; 0 for an empty slice.
pub fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.iter().sum::<f64>() / values.len() as f64
}

/// Population standard deviation; 0 for an empty slice.
pub fn std_dev(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mean = mean(values);
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
    variance.sqrt()
}

/// z-scores of `values` within the slice; all 0 when the standard deviation is 0 (or not
/// finite), so a constant feature never dominates.
pub fn z_scores(values: &[f64]) -> Vec<f64> {
    let mean = mean(values);
    let std = std_dev(values);
    if !(std.is_finite() && std > 1e-12) {
        return vec![0.0; values.len()];
    }
    values.iter().map(|v| (v - mean) / std).collect()
}

/// Index of the largest value (the first on ties); `None` for an empty slice or only NaNs.
pub fn argmax(values: &[f64]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (index, value) in values.iter().enumerate() {
        if value.is_nan() {
            continue;
        }
        if best.is_none_or(|b| *value > values[b]) {
            best = Some(index);
        }
    }
    best
}

/// Index of the smallest value (the last on ties, so that with all values equal
/// `argmin != argmax` whenever there are two or more); `None` for an empty slice or only NaNs.
pub fn argmin(values: &[f64]) -> Option<usize> {
    let mut worst: Option<usize> = None;
    for (index, value) in values.iter().enumerate() {
        if value.is_nan() {
            continue;
        }
        if worst.is_none_or(|w| *value <= values[w]) {
            worst = Some(index);
        }
    }
    worst
}

/// Log of the sum of exponentials, computed stably; −∞ for an empty slice.
pub fn log_sum_exp(values: &[f64]) -> f64 {
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return max;
    }
    max + values.iter().map(|v| (v - max).exp()).sum::<f64>().ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn z_scores_of_constant_values_are_zero() {
        assert_eq!(z_scores(&[3.0, 3.0, 3.0]), vec![0.0, 0.0, 0.0]);
    }

    #[test]
    fn z_scores_are_centred_and_scaled() {
        let z = z_scores(&[1.0, 2.0, 3.0]);
        assert!((z.iter().sum::<f64>()).abs() < 1e-12);
        assert!((z[2] - 1.224_744_871).abs() < 1e-6);
    }

    #[test]
    fn argmax_and_argmin_differ_on_ties() {
        assert_eq!(argmax(&[1.0, 1.0]), Some(0));
        assert_eq!(argmin(&[1.0, 1.0]), Some(1));
        assert_eq!(argmax(&[f64::NAN, 2.0, 5.0]), Some(2));
        assert_eq!(argmin(&[]), None);
    }

    #[test]
    fn log_sum_exp_is_stable() {
        assert!((log_sum_exp(&[1000.0, 1000.0]) - (1000.0 + 2f64.ln())).abs() < 1e-9);
    }
}
