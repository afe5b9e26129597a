//! Why a run stopped. Every variant says what and where (file, key, iteration, phase, row).

use std::path::PathBuf;

/// An error of the TPO loop.
///
/// Like every ponder error type, each variant's message is complete on its own (the cause's text
/// included) and no variant also reports that cause as its
/// [`source`](std::error::Error::source), so `{err}` and anyhow's `{err:#}` both print every
/// fact once. The transparent variants forward their inner error's message and source as they
/// are.
#[derive(thiserror::Error, Debug)]
pub enum PipelineError {
    /// The manifest lacks something `ponder train` needs, or a value cannot be used.
    #[error("{file}: {key}: {message}", file = file.display())]
    Manifest {
        /// The manifest file.
        file: PathBuf,
        /// The dotted key concerned.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The manifest changed since finished work was done with it.
    #[error("{0}")]
    ManifestChanged(Box<ManifestChange>),
    /// An instruction file is unusable.
    #[error(transparent)]
    Data(#[from] ponder_data::DataError),
    /// There are not enough instructions for what the manifest asks.
    #[error("{file}: {message}", file = file.display())]
    NotEnoughData {
        /// The instruction file.
        file: PathBuf,
        /// What is missing.
        message: String,
    },
    /// A plugin failed (whole-call failure, or a row under `run.on_row_failure = "stop"`).
    #[error("iteration {iteration}, {phase}: {error}")]
    Plugin {
        /// 1-based iteration.
        iteration: u32,
        /// The phase.
        phase: &'static str,
        /// The plugin's error (names the plugin, the call and the cause).
        error: Box<ponder_plugin_runtime::PluginError>,
    },
    /// Loading, tokenising or saving a model failed.
    #[error(transparent)]
    Checkpoint(#[from] ponder_checkpoint::CheckpointError),
    /// Running the model failed.
    #[error("{context}: {error}")]
    Model {
        /// What was being done.
        context: String,
        /// The model error.
        error: ponder_model::ModelError,
    },
    /// DPO failed.
    #[error(transparent)]
    Train(#[from] ponder_trainer::TrainError),
    /// The plugin runtime could not start.
    #[error(transparent)]
    Runtime(#[from] ponder_plugin_runtime::RuntimeError),
    /// A file or directory of the run could not be read or written.
    #[error("{path}: {error}", path = path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// A file of the run directory is not what this version of ponder wrote.
    #[error("{path}:{line}: {message}", path = path.display())]
    RunFile {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 for the whole file).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// `report.html` cannot be made: the directory is no run directory, it holds nothing to
    /// report yet, or a plot could not be drawn.
    #[error("{path}: {message}", path = path.display())]
    Report {
        /// The run directory (or the file) concerned.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The sampling engine (`[sample] engine`) failed: unreachable, an error reply, a
    /// malformed one, or its reload hook failed.
    #[error("iteration {iteration}, sample on engine `{engine}`: {message}")]
    Engine {
        /// The iteration.
        iteration: u32,
        /// The engine's name in `[models]`.
        engine: String,
        /// What went wrong.
        message: String,
    },
    /// `--restart-from` names no phase or iteration of this run.
    #[error("--restart-from {0}")]
    Restart(String),
    /// `ponder eval` cannot go on: an input (model, plugin, instruction file) is unusable, or a
    /// plugin failed on it.
    #[error("{input}: {message}")]
    Eval {
        /// The input concerned: its file, with the flag or instruction it was used for.
        input: String,
        /// What is wrong (the cause's text included).
        message: String,
    },
}

impl PipelineError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        PipelineError::Io {
            path: path.into(),
            error,
        }
    }

    /// A plugin error in `phase` of `iteration`.
    pub fn plugin(
        iteration: u32,
        phase: &'static str,
        error: ponder_plugin_runtime::PluginError,
    ) -> Self {
        PipelineError::Plugin {
            iteration,
            phase,
            error: Box::new(error),
        }
    }

    /// A model error while doing `context`.
    pub fn model(context: impl Into<String>, error: ponder_model::ModelError) -> Self {
        PipelineError::Model {
            context: context.into(),
            error,
        }
    }
}

/// A manifest value that changed since finished work was done with it.
#[derive(thiserror::Error, Debug)]
#[error(
    "{file}: `{key}` changed ({before} -> {after}) since {done}; rerun with \
     `--restart-from {restart}` to redo from there, or give the run another `run.out`",
    file = file.display()
)]
pub struct ManifestChange {
    /// The manifest file.
    pub file: PathBuf,
    /// The dotted key that changed.
    pub key: String,
    /// Its value when the finished work was done.
    pub before: String,
    /// Its value now.
    pub after: String,
    /// What was already done with the old value.
    pub done: String,
    /// The `--restart-from` argument that redoes the affected work.
    pub restart: String,
}
