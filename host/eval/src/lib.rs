//! Evaluation statistics for ponder (issue #12): pure functions over plain data, no model.
//!
//! - [`winrate`]: pairwise verdicts in both orders, or pointwise scores, become one preference
//!   per instruction (0, ½ or 1) and a win rate.
//! - [`length_controlled`]: AlpacaEval 2's length-controlled win rate (Dubois et al. 2024), the
//!   package's `length_controlled_minimal` model fitted as the package fits it.
//! - [`bootstrap`]: seeded percentile bootstrap intervals over instructions.
//! - [`ifeval`]: IFEval's loose response variants and its four accuracies, per constraint too.
//! - [`report`]: the machine-readable result (serde), per category, with mean lengths.
//!
//! Win rates are in percent, as AlpacaEval reports them; IFEval accuracies are fractions in
//! [0, 1], as IFEval's `evaluation_main.py` reports them.

pub mod bootstrap;
mod error;
pub mod ifeval;
pub mod length_controlled;
pub mod report;
mod rng;
pub mod winrate;

pub use bootstrap::{BootstrapOptions, Interval, percentile_interval};
pub use error::EvalError;
pub use ifeval::{
    ConstraintAccuracy, ConstraintVerdict, IfevalAccuracies, ifeval_accuracies, loose_variants,
};
pub use length_controlled::{
    LengthControlledFit, PenaltyScore, PreferenceWithLengths, length_controlled_win_rate,
};
pub use report::{
    CategoryWinRate, ComparedInstruction, EvalResult, IfevalPrompt, IfevalReport,
    LengthControlledWithInterval, MeanLengths, OutputLengths, PairwiseReport, PromptLevelIntervals,
    WinRateWithInterval, ifeval_report, mean_lengths, pairwise_report,
};
pub use winrate::{PairwiseVerdict, WinRate, pairwise_preference, pointwise_preference, win_rate};

/// The length of `text` as AlpacaEval and IFEval measure it: Python's `len(str)`, the number of
/// Unicode scalar values (not bytes).
pub fn char_length(text: &str) -> usize {
    text.chars().count()
}
