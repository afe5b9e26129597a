//! Why a statistic cannot be computed.

/// An error of an evaluation statistic. Each message names the offending input by its position.
#[derive(thiserror::Error, Debug, Clone, PartialEq)]
pub enum EvalError {
    /// There is nothing to evaluate.
    #[error("no instructions to evaluate")]
    Empty,
    /// A preference is not a number in [0, 1].
    #[error("instruction {index}: preference {value} is not a number in [0, 1]")]
    InvalidPreference {
        /// Position of the instruction.
        index: usize,
        /// The value given.
        value: f64,
    },
    /// A pointwise score is not a finite number.
    #[error("instruction {index}: score {value} is not a finite number")]
    InvalidScore {
        /// Position of the instruction.
        index: usize,
        /// The value given.
        value: f64,
    },
    /// Fewer instructions than cross-validation folds.
    #[error(
        "the length-controlled win rate needs at least {needed} instructions (one per \
         cross-validation fold), got {got}"
    )]
    TooFewForCrossValidation {
        /// The number of folds.
        needed: usize,
        /// The number of instructions.
        got: usize,
    },
    /// Every instruction has the same length difference, so AlpacaEval's standardisation divides
    /// by a zero standard deviation and the length model cannot be fitted.
    #[error(
        "every instruction has the same length difference between A and B: the length model \
         cannot be fitted (its standardisation divides by their zero standard deviation)"
    )]
    ConstantLengthDifference,
    /// An IFEval prompt carries no constraint to check.
    #[error("prompt {index} has no constraints")]
    PromptWithoutConstraints {
        /// Position of the prompt.
        index: usize,
    },
    /// The bootstrap options cannot give an interval.
    #[error("bootstrap: {0}")]
    InvalidBootstrap(String),
}
