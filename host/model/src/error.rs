//! The model crate's error type.

/// Everything that can go wrong while building, running or sampling a model.
#[derive(thiserror::Error, Debug)]
pub enum ModelError {
    /// The checkpoint could not be read or lacks something the model needs.
    #[error(transparent)]
    Checkpoint(#[from] ponder_checkpoint::CheckpointError),
    /// A weight tensor has the wrong shape for the configuration.
    #[error("weight `{name}` has shape {found:?}, expected {expected:?}")]
    WeightShape {
        /// Hugging Face parameter name.
        name: String,
        /// Shape in the checkpoint.
        found: Vec<usize>,
        /// Shape the configuration implies.
        expected: Vec<usize>,
    },
    /// A device string names no known device, or a backend not compiled in.
    #[error("device `{0}`: {1}")]
    Device(String, String),
    /// The request itself is invalid (empty prompt, out-of-vocabulary token, bad sampling value).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The caller stopped the generation (its token callback returned `Break`).
    #[error("generation interrupted by its caller")]
    Interrupted,
    /// Reading a tensor back from the device failed.
    #[error("reading a tensor from the device failed: {0}")]
    TensorRead(String),
}
