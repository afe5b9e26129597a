//! Per-instruction preferences of output A over output B, and the win rate.
//!
//! A pairwise judge sees both outputs, so it is asked twice, once with A shown first and once
//! with B shown first, to cancel its position bias; a pointwise judge scores each output alone.
//! Either way each instruction ends with a preference for A of 1 (A wins), 0 (B wins) or ½ (a
//! tie, or the two orders contradict each other).

use serde::{Deserialize, Serialize};

use crate::EvalError;

/// A pairwise judge's verdict on one ordering of the two outputs, by position shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PairwiseVerdict {
    /// The output shown first is better.
    First,
    /// The output shown second is better.
    Second,
    /// Neither is better.
    Tie,
}

/// The preference for A from a pairwise judge's verdicts in both orders: `a_first` when A was
/// shown first (then B), `b_first` when B was shown first (then A).
///
/// Each order votes for A (+1), for B (−1) or for neither (0, a tie); the preference is 1 when the
/// votes favour A, 0 when they favour B, and ½ when they cancel: both orders tie, or they
/// contradict each other (each prefers the output in the same position, which is position bias,
/// not a preference). One order's win and the other's tie is a win.
pub fn pairwise_preference(a_first: PairwiseVerdict, b_first: PairwiseVerdict) -> f64 {
    let vote_for_a = |verdict: PairwiseVerdict, a_shown_first: bool| match (verdict, a_shown_first)
    {
        (PairwiseVerdict::Tie, _) => 0,
        (PairwiseVerdict::First, true) | (PairwiseVerdict::Second, false) => 1,
        (PairwiseVerdict::First, false) | (PairwiseVerdict::Second, true) => -1,
    };
    let votes: i32 = vote_for_a(a_first, true) + vote_for_a(b_first, false);
    match votes.signum() {
        1 => 1.0,
        -1 => 0.0,
        _ => 0.5,
    }
}

/// The preference for A from a pointwise judge's scores of A and B (higher is better): 1, 0,
/// or ½ for equal scores.
///
/// # Errors
/// [`EvalError::InvalidScore`] (at `index`, the instruction's position, for the message) when a
/// score is NaN or infinite.
pub fn pointwise_preference(index: usize, score_a: f64, score_b: f64) -> Result<f64, EvalError> {
    for value in [score_a, score_b] {
        if !value.is_finite() {
            return Err(EvalError::InvalidScore { index, value });
        }
    }
    Ok(match score_a.partial_cmp(&score_b) {
        Some(std::cmp::Ordering::Greater) => 1.0,
        Some(std::cmp::Ordering::Less) => 0.0,
        _ => 0.5,
    })
}

/// The win rate of A over B and its tally.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WinRate {
    /// Instructions counted.
    pub instructions: usize,
    /// Instructions whose preference for A is above ½.
    pub wins: usize,
    /// Instructions whose preference for A is below ½.
    pub losses: usize,
    /// Instructions whose preference is exactly ½.
    pub ties: usize,
    /// The mean preference for A in percent (AlpacaEval's `win_rate`): ties count one half.
    pub win_rate_percent: f64,
}

/// Checks that every preference is a number in [0, 1].
pub(crate) fn check_preferences(
    preferences: impl IntoIterator<Item = f64>,
) -> Result<(), EvalError> {
    for (index, value) in preferences.into_iter().enumerate() {
        if !(0.0..=1.0).contains(&value) {
            return Err(EvalError::InvalidPreference { index, value });
        }
    }
    Ok(())
}

/// The mean of `preferences` in percent, without checks (callers check once, the bootstrap then
/// calls this on every resample).
pub(crate) fn mean_percent(preferences: impl ExactSizeIterator<Item = f64>) -> f64 {
    let count = preferences.len();
    100.0 * preferences.sum::<f64>() / count as f64
}

/// The win rate of A over B from per-instruction preferences for A in [0, 1] (continuous ones,
/// e.g. a judge's probability, count as they are, as in AlpacaEval).
///
/// # Errors
/// [`EvalError::Empty`] without preferences; [`EvalError::InvalidPreference`] for a value outside
/// [0, 1] or NaN.
pub fn win_rate(preferences: &[f64]) -> Result<WinRate, EvalError> {
    if preferences.is_empty() {
        return Err(EvalError::Empty);
    }
    check_preferences(preferences.iter().copied())?;
    let count = |keep: fn(f64) -> bool| preferences.iter().filter(|&&p| keep(p)).count();
    Ok(WinRate {
        instructions: preferences.len(),
        wins: count(|p| p > 0.5),
        losses: count(|p| p < 0.5),
        ties: count(|p| p == 0.5),
        win_rate_percent: mean_percent(preferences.iter().copied()),
    })
}

#[cfg(test)]
mod tests {
    use super::PairwiseVerdict::{First, Second, Tie};
    use super::*;

    #[test]
    fn both_orders_agreeing_decide() {
        // A first and judged first; B first and A (second) judged better: A wins twice.
        assert_eq!(pairwise_preference(First, Second), 1.0);
        assert_eq!(pairwise_preference(Second, First), 0.0);
    }

    #[test]
    fn contradictory_orders_and_double_ties_count_one_half() {
        // Always the first position (or always the second): position bias, no preference.
        assert_eq!(pairwise_preference(First, First), 0.5);
        assert_eq!(pairwise_preference(Second, Second), 0.5);
        assert_eq!(pairwise_preference(Tie, Tie), 0.5);
    }

    #[test]
    fn a_win_and_a_tie_is_a_win() {
        assert_eq!(pairwise_preference(First, Tie), 1.0);
        assert_eq!(pairwise_preference(Tie, Second), 1.0);
        assert_eq!(pairwise_preference(Second, Tie), 0.0);
        assert_eq!(pairwise_preference(Tie, First), 0.0);
    }

    #[test]
    fn pointwise_scores_compare_with_ties_one_half() {
        assert_eq!(pointwise_preference(0, 7.0, 3.0), Ok(1.0));
        assert_eq!(pointwise_preference(0, 3.0, 7.0), Ok(0.0));
        assert_eq!(pointwise_preference(0, 5.0, 5.0), Ok(0.5));
        assert_eq!(
            pointwise_preference(4, f64::NAN, 1.0).map_err(|e| e.to_string()),
            Err("instruction 4: score NaN is not a finite number".to_string())
        );
    }

    #[test]
    fn win_rate_by_hand() {
        // 3 wins, 1 loss, 2 ties out of 6: (3 + 2·½) / 6 = 4/6.
        let result = win_rate(&[1.0, 0.0, 0.5, 1.0, 0.5, 1.0]).unwrap();
        assert_eq!(
            (result.instructions, result.wins, result.losses, result.ties),
            (6, 3, 1, 2)
        );
        assert!((result.win_rate_percent - 400.0 / 6.0).abs() < 1e-12);
        // Continuous preferences count as they are.
        let result = win_rate(&[0.25, 0.75, 0.9]).unwrap();
        assert!((result.win_rate_percent - 190.0 / 3.0).abs() < 1e-12);
        assert_eq!((result.wins, result.losses, result.ties), (2, 1, 0));
    }

    #[test]
    fn win_rate_rejects_bad_input() {
        assert_eq!(win_rate(&[]), Err(EvalError::Empty));
        assert_eq!(
            win_rate(&[0.5, 1.5]),
            Err(EvalError::InvalidPreference {
                index: 1,
                value: 1.5
            })
        );
        assert!(matches!(
            win_rate(&[f64::NAN]),
            Err(EvalError::InvalidPreference { index: 0, .. })
        ));
    }
}
