//! The trainer's error type: every variant says what went wrong and where.

use std::path::{Path, PathBuf};

/// Errors from reading pairs, training and writing checkpoints.
///
/// Like every ponder error type, each variant's message is complete on its own (the cause's text
/// included) and no variant also reports that cause as its
/// [`source`](std::error::Error::source), so `{err}` and anyhow's `{err:#}` both print every
/// fact once.
#[derive(thiserror::Error, Debug)]
pub enum TrainError {
    /// A file or directory could not be read or written.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error (in the message, not chained as the source).
        error: std::io::Error,
    },
    /// A row of a pairs file is malformed.
    #[error("{}:{line}: field `{field}`: {message}", path.display())]
    PairRow {
        /// The pairs file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The offending field (`prompt`, `prompt[0].role`, `chosen`, ...; `(row)` for the row).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// An invalid option or combination of options.
    #[error("invalid training configuration: {0}")]
    Config(String),
    /// Loading, tokenising or saving a model failed.
    #[error(transparent)]
    Checkpoint(#[from] ponder_checkpoint::CheckpointError),
    /// Building or running the model failed.
    #[error("model: {0}")]
    Model(String),
    /// The loss or the gradient norm became NaN or infinite; nothing was written for this step.
    #[error(
        "training diverged at optimizer step {step}: {what} is {value} (nothing was saved for this step; lower the learning rate or check the data)"
    )]
    NonFinite {
        /// The optimiser step (1-based) that produced the value.
        step: u64,
        /// Which quantity (`loss`, `grad_norm`).
        what: &'static str,
        /// The value.
        value: f64,
    },
    /// An optimiser step left NaN or infinite weights; nothing was saved from it.
    #[error(
        "training produced non-finite weights at optimizer step {step}: parameter `{parameter}` \
         holds NaN or infinity (nothing was saved from this step; check the optimizer settings \
         and lower the learning rate)"
    )]
    NonFiniteWeights {
        /// The optimiser step (1-based) after which the weights were checked.
        step: u64,
        /// The module path of the first parameter found non-finite.
        parameter: String,
    },
    /// Saved trainer state (optimiser, resume information, reference cache) is invalid.
    #[error("trainer state: {0}")]
    State(String),
}

impl TrainError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, error: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            error,
        }
    }
}
