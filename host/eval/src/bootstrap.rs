//! Seeded percentile bootstrap intervals over instructions.
//!
//! Each resample draws as many instructions as there are, with replacement, from one SplitMix64
//! stream seeded by [`BootstrapOptions::seed`], recomputes the statistic on them, and the
//! interval is read between the resampled statistics' `(1 − level) / 2` and `(1 + level) / 2`
//! quantiles, interpolated linearly as NumPy's `percentile` does by default. The same data,
//! seed and options give the same interval on every platform.

use serde::{Deserialize, Serialize};

use crate::EvalError;
use crate::rng::SplitMix64;

/// How a bootstrap interval is drawn.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BootstrapOptions {
    /// How many resamples (at least 1; 1000 by default).
    pub resamples: usize,
    /// The seed of the resampling stream.
    pub seed: u64,
    /// The coverage of the interval, in (0, 1): 0.95 by default.
    pub level: f64,
}

impl Default for BootstrapOptions {
    fn default() -> Self {
        BootstrapOptions {
            resamples: 1000,
            seed: 0,
            level: 0.95,
        }
    }
}

/// A two-sided interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The lower end.
    pub lower: f64,
    /// The upper end.
    pub upper: f64,
}

/// The `quantile` (in [0, 1]) of `sorted` (ascending, not empty), interpolated linearly
/// between the two nearest order statistics: NumPy's `percentile(..., method="linear")`.
pub(crate) fn linear_quantile(sorted: &[f64], quantile: f64) -> f64 {
    let position = quantile * (sorted.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = (below + 1).min(sorted.len() - 1);
    let fraction = position - below as f64;
    sorted[below] + fraction * (sorted[above] - sorted[below])
}

/// The percentile bootstrap interval of a statistic over `items` items.
///
/// `statistic` receives the indices of one resample (`items` of them, drawn with replacement)
/// and returns the statistic on those items; its first error stops the bootstrap and is
/// returned.
///
/// # Errors
/// [`EvalError::Empty`] when `items` is 0; [`EvalError::InvalidBootstrap`] for no resamples, a
/// level outside (0, 1) or a statistic that is not finite; whatever `statistic` returns.
pub fn percentile_interval(
    items: usize,
    options: &BootstrapOptions,
    mut statistic: impl FnMut(&[usize]) -> Result<f64, EvalError>,
) -> Result<Interval, EvalError> {
    if items == 0 {
        return Err(EvalError::Empty);
    }
    if options.resamples == 0 {
        return Err(EvalError::InvalidBootstrap(
            "at least one resample is needed".into(),
        ));
    }
    if !(options.level > 0.0 && options.level < 1.0) {
        return Err(EvalError::InvalidBootstrap(format!(
            "level {} is not in (0, 1)",
            options.level
        )));
    }
    let mut rng = SplitMix64::new(options.seed);
    let mut indices = vec![0usize; items];
    let mut values = Vec::with_capacity(options.resamples);
    for _ in 0..options.resamples {
        for index in indices.iter_mut() {
            *index = rng.below(items);
        }
        let value = statistic(&indices)?;
        if !value.is_finite() {
            return Err(EvalError::InvalidBootstrap(format!(
                "a resample's statistic is {value}"
            )));
        }
        values.push(value);
    }
    values.sort_by(f64::total_cmp);
    let tail = (1.0 - options.level) / 2.0;
    Ok(Interval {
        lower: linear_quantile(&values, tail),
        upper: linear_quantile(&values, 1.0 - tail),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::winrate::mean_percent;

    fn mean_of(data: &[f64]) -> impl FnMut(&[usize]) -> Result<f64, EvalError> + '_ {
        |indices: &[usize]| Ok(mean_percent(indices.iter().map(|&i| data[i])))
    }

    #[test]
    fn linear_quantiles_as_numpy() {
        // numpy.percentile([1, 2, 3, 4], [0, 2.5, 50, 97.5, 100]) = 1, 1.075, 2.5, 3.925, 4.
        let sorted = [1.0, 2.0, 3.0, 4.0];
        let expected = [
            (0.0, 1.0),
            (0.025, 1.075),
            (0.5, 2.5),
            (0.975, 3.925),
            (1.0, 4.0),
        ];
        for (quantile, value) in expected {
            assert!(
                (linear_quantile(&sorted, quantile) - value).abs() < 1e-12,
                "{quantile}"
            );
        }
        assert_eq!(linear_quantile(&[7.0], 0.3), 7.0);
    }

    #[test]
    fn constant_data_gives_a_point_interval() {
        let data = [1.0; 5];
        let interval = percentile_interval(5, &BootstrapOptions::default(), mean_of(&data));
        assert_eq!(
            interval,
            Ok(Interval {
                lower: 100.0,
                upper: 100.0
            })
        );
    }

    #[test]
    fn two_items_by_hand() {
        // Two instructions, a win and a loss: a resample's win rate is 0, 50 or 100 with
        // probabilities ¼, ½, ¼, so with many resamples the 2.5% and 97.5% quantiles are 0 and
        // 100 exactly (each extreme holds far more than 2.5% of the resamples).
        let data = [1.0, 0.0];
        let options = BootstrapOptions {
            resamples: 4000,
            seed: 11,
            level: 0.95,
        };
        let interval = percentile_interval(2, &options, mean_of(&data)).unwrap();
        assert_eq!(
            interval,
            Interval {
                lower: 0.0,
                upper: 100.0
            }
        );
        // A 40% interval lies inside the middle atom: 50 both ends.
        let options = BootstrapOptions {
            level: 0.4,
            ..options
        };
        let interval = percentile_interval(2, &options, mean_of(&data)).unwrap();
        assert_eq!(
            interval,
            Interval {
                lower: 50.0,
                upper: 50.0
            }
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_interval() {
        let data: Vec<f64> = (0..40).map(|i| [0.0, 0.5, 1.0][i % 3]).collect();
        let options = BootstrapOptions {
            resamples: 200,
            seed: 5,
            level: 0.95,
        };
        let first = percentile_interval(data.len(), &options, mean_of(&data)).unwrap();
        let again = percentile_interval(data.len(), &options, mean_of(&data)).unwrap();
        let other = BootstrapOptions {
            seed: 6,
            ..options.clone()
        };
        let other = percentile_interval(data.len(), &other, mean_of(&data)).unwrap();
        assert_eq!(first, again);
        assert_ne!(first, other);
        let point = mean_percent(data.iter().copied());
        assert!(
            first.lower < point && point < first.upper,
            "{first:?} around {point}"
        );
    }

    #[test]
    fn bad_options_are_errors() {
        let data = [1.0];
        let none = BootstrapOptions {
            resamples: 0,
            ..Default::default()
        };
        assert!(matches!(
            percentile_interval(1, &none, mean_of(&data)),
            Err(EvalError::InvalidBootstrap(_))
        ));
        let full = BootstrapOptions {
            level: 1.0,
            ..Default::default()
        };
        assert!(matches!(
            percentile_interval(1, &full, mean_of(&data)),
            Err(EvalError::InvalidBootstrap(_))
        ));
        assert_eq!(
            percentile_interval(0, &BootstrapOptions::default(), mean_of(&data)),
            Err(EvalError::Empty)
        );
    }
}
