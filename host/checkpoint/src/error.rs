//! The crate's error type: every variant says what went wrong and where.
//!
//! Convention: each variant's message is complete on its own, the cause's text included, and
//! no variant reports that cause again as its `source()`. Callers print `{err}` or anyhow's
//! `{err:#}` and get every fact once (a `source` chain would make `{:#}` repeat the cause).

use std::path::PathBuf;

/// Errors from reading or writing model files.
#[derive(thiserror::Error, Debug)]
pub enum CheckpointError {
    /// A file or directory could not be read or written.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error (in the message, not chained as the source).
        error: std::io::Error,
    },
    /// A JSON file is not valid JSON or does not have the expected shape.
    #[error("{}: invalid JSON: {message}", path.display())]
    Json {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A model configuration is missing a field or has an invalid value.
    #[error("invalid model configuration: {0}")]
    InvalidConfig(String),
    /// The model architecture (or one of its options) is not supported.
    #[error("unsupported model: {0}")]
    Unsupported(String),
    /// An error that happened while reading a particular file.
    #[error("{}: {error}", path.display())]
    InFile {
        /// The file concerned.
        path: PathBuf,
        /// The error (in the message, not chained as the source).
        error: Box<CheckpointError>,
    },
    /// A safetensors file is invalid or holds a tensor that cannot be converted.
    #[error("{}: {}{message}", path.display(), tensor.as_deref().map(|t| format!("tensor {t}: ")).unwrap_or_default())]
    Safetensors {
        /// The file concerned.
        path: PathBuf,
        /// The tensor concerned, when the problem is with one tensor.
        tensor: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// A GGUF file is truncated, corrupt or uses something this reader does not support.
    #[error("{}: GGUF at byte offset {offset}: {message}", path.display())]
    Gguf {
        /// The file concerned.
        path: PathBuf,
        /// Byte offset in the file where the problem was found.
        offset: u64,
        /// What is wrong.
        message: String,
    },
    /// A GGUF metadata value the loader needs is missing or has the wrong type.
    #[error("{}: GGUF metadata {key} {message}", path.display())]
    GgufMetadata {
        /// The file concerned.
        path: PathBuf,
        /// The metadata key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A tensor the model needs is not in the checkpoint.
    #[error("tensor {0} is missing from the checkpoint")]
    MissingTensor(String),
    /// A tensor has a shape other than the configuration implies.
    #[error("tensor {name}: shape {actual:?}, expected {expected:?}")]
    ShapeMismatch {
        /// The tensor's name.
        name: String,
        /// The shape found.
        actual: Vec<usize>,
        /// The shape expected.
        expected: Vec<usize>,
    },
    /// A required file is missing from a model directory.
    #[error("{}: missing {what}", path.display())]
    MissingFile {
        /// The path that was looked for.
        path: PathBuf,
        /// What the file would have provided.
        what: String,
    },
    /// The tokenizer could not be built or failed to encode or decode.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The chat template failed to parse or render.
    #[error("chat template: {0}")]
    ChatTemplate(String),
    /// The model has no chat template but one was needed.
    #[error("the model has no chat template")]
    NoChatTemplate,
}

impl CheckpointError {
    /// Attaches the file this error happened in.
    pub(crate) fn in_file(self, path: impl Into<PathBuf>) -> Self {
        CheckpointError::InFile {
            path: path.into(),
            error: Box::new(self),
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        CheckpointError::Io {
            path: path.into(),
            error,
        }
    }
}
