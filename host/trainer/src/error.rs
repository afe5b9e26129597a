//! The trainer's error type: every variant says what went wrong and where.

use std::path::{Path, PathBuf};

/// Errors from reading pairs, training and writing checkpoints.
#[derive(thiserror::Error, Debug)]
pub enum TrainError {
    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
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
    /// Saved trainer state (optimiser, resume information, reference cache) is invalid.
    #[error("trainer state: {0}")]
    State(String),
}

impl TrainError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
