//! Per-step metrics as TRL names them, to a JSONL file, and a progress bar on stderr.

use std::io::Write;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::error::TrainError;

/// One optimiser step's metrics (keys as in TRL's `DPOTrainer` logs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// Optimiser step, 1-based.
    pub step: u64,
    /// Fractional epoch at the end of the step.
    pub epoch: f64,
    /// The loss (weighted mean over the step's pairs, NLL term included).
    pub loss: f64,
    /// Mean `β (πc − rc)`.
    #[serde(rename = "rewards/chosen")]
    pub rewards_chosen: f64,
    /// Mean `β (πr − rr)`.
    #[serde(rename = "rewards/rejected")]
    pub rewards_rejected: f64,
    /// Mean chosen minus rejected reward.
    #[serde(rename = "rewards/margins")]
    pub rewards_margins: f64,
    /// Fraction of pairs whose chosen reward exceeds the rejected one.
    #[serde(rename = "rewards/accuracies")]
    pub rewards_accuracies: f64,
    /// Mean policy log-prob (sum over tokens) of the chosen completions.
    #[serde(rename = "logps/chosen")]
    pub logps_chosen: f64,
    /// Mean policy log-prob of the rejected completions.
    #[serde(rename = "logps/rejected")]
    pub logps_rejected: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Learning rate used for the step.
    pub learning_rate: f64,
    /// Real (unpadded) tokens processed per second of the step.
    pub tokens_per_second: f64,
    /// Wall-clock seconds of the step.
    pub step_seconds: f64,
    /// The eval hook's metric, on steps where it ran.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub eval: Option<f64>,
}

/// Appends one JSON line per step, flushing each.
pub struct MetricsWriter {
    path: PathBuf,
    file: std::fs::File,
}

impl MetricsWriter {
    /// Opens `path` for appending; lines of steps after `keep_through` (left by an interrupted
    /// run that is now resumed from an earlier checkpoint) are dropped first.
    ///
    /// # Errors
    ///
    /// [`TrainError::Io`] when the file cannot be read or rewritten.
    pub fn open(path: &Path, keep_through: u64) -> Result<Self, TrainError> {
        let existing = std::fs::read_to_string(path).unwrap_or_default();
        let kept: String = existing
            .lines()
            .filter(|line| {
                serde_json::from_str::<serde_json::Value>(line)
                    .ok()
                    .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                    .is_some_and(|s| s <= keep_through)
            })
            .map(|line| format!("{line}\n"))
            .collect();
        crate::io::write_atomic(path, kept.as_bytes())?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| TrainError::io(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends one step.
    pub fn append(&mut self, metrics: &StepMetrics) -> Result<(), TrainError> {
        let mut line = serde_json::to_string(metrics)
            .map_err(|e| TrainError::State(format!("serialising metrics: {e}")))?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
            .map_err(|e| TrainError::io(&self.path, e))
    }
}

/// A progress bar over optimiser steps on stderr (hidden when `visible` is false or stderr is not
/// a terminal).
pub fn progress_bar(
    label: &str,
    unit: &str,
    total: u64,
    position: u64,
    visible: bool,
) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(total),
        if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    if let Ok(style) = ProgressStyle::with_template(&format!(
        "{label} {{bar:30}} {{pos}}/{{len}} {unit} [{{elapsed_precise}}<{{eta_precise}}] {{msg}}"
    )) {
        bar.set_style(style);
    }
    bar.set_position(position);
    bar
}
