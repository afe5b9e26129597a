//! The run directory of a DPO run: the state files that mark checkpoints complete and a run
//! finished, resumable checkpoints (model, optimiser, LoRA factors) and the saved models.
//!
//! ```text
//! out/
//!   reference_logps.json          reference log-probs cache (see `reference`)
//!   metrics.jsonl                 one record per optimiser step
//!   checkpoints/step-NNNNNN/      the newest resumable checkpoint: model/, optimizer.safetensors,
//!                                 adapter.safetensors (LoRA), trainer_state.json (written last)
//!   model/                        the final model; best/ the best by the eval hook (with LoRA,
//!                                 each holds adapter/: the factors as a PEFT adapter)
//!   trainer_state.json            written when the run completed
//! ```

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use ponder_checkpoint::{Checkpoint, Weights};
use ponder_model::LoraConfig;
use serde::{Deserialize, Serialize};

use crate::config::DpoConfig;
use crate::error::TrainError;
use crate::metrics::StepMetrics;
use crate::model::TrainableModel;
use crate::optim::AdamW;
use crate::train::DpoOutcome;

/// Resume information written next to each checkpoint (last, so its presence marks the
/// checkpoint complete) and as `trainer_state.json` at the end of the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TrainerState {
    pub(crate) run_key: String,
    pub(crate) step: u64,
    pub(crate) total_steps: u64,
    pub(crate) completed: bool,
    pub(crate) best_metric: Option<f64>,
    pub(crate) last: Option<StepMetrics>,
    /// The run's LoRA settings (`None` = full fine-tune), to refuse resuming with others.
    #[serde(default)]
    pub(crate) lora: Option<LoraConfig>,
}

const STATE_FILE: &str = "trainer_state.json";
const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// The LoRA factors of a resumable checkpoint, unmerged (`model/` holds them merged).
const ADAPTER_FILE: &str = "adapter.safetensors";

/// Where a run starts: fresh, or from its newest complete checkpoint.
pub(crate) struct Start<M> {
    pub(crate) model: M,
    pub(crate) optimizer: AdamW,
    /// Optimiser steps already taken.
    pub(crate) step: u64,
    pub(crate) best_metric: Option<f64>,
    pub(crate) last: Option<StepMetrics>,
}

/// The paths of one run directory.
pub(crate) struct RunDir<'a> {
    out: &'a Path,
}

impl<'a> RunDir<'a> {
    /// The run directory `out`, created if missing.
    pub(crate) fn create(out: &'a Path) -> Result<Self, TrainError> {
        std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))?;
        Ok(Self { out })
    }

    /// The directory itself.
    pub(crate) fn path(&self) -> &Path {
        self.out
    }

    /// The final model.
    pub(crate) fn model_dir(&self) -> PathBuf {
        self.out.join("model")
    }

    /// The best model by the eval hook.
    pub(crate) fn best_dir(&self) -> PathBuf {
        self.out.join("best")
    }

    fn final_state(&self) -> PathBuf {
        self.out.join(STATE_FILE)
    }

    fn checkpoints(&self) -> PathBuf {
        self.out.join("checkpoints")
    }

    fn checkpoint_dir(&self, step: u64) -> PathBuf {
        self.checkpoints().join(format!("step-{step:06}"))
    }

    /// What a completed run with key `run_key` left behind, if it did.
    pub(crate) fn completed(&self, run_key: &str) -> Option<DpoOutcome> {
        let state = read_state(&self.final_state())?;
        let model_dir = self.model_dir();
        (state.completed && state.run_key == run_key && model_dir.is_dir()).then(|| {
            let best_dir = self.best_dir();
            DpoOutcome {
                model_dir,
                best_dir: best_dir.is_dir().then_some(best_dir),
                steps: state.step,
                last: state.last,
                best_metric: state.best_metric,
            }
        })
    }

    /// Refuses a directory that holds a run (finished or resumable) with other LoRA settings:
    /// its checkpoints cannot continue this run, and starting over would mix the two.
    pub(crate) fn check_lora_matches(&self, lora: &Option<LoraConfig>) -> Result<(), TrainError> {
        let mut states: Vec<(PathBuf, TrainerState)> = Vec::new();
        let final_state = self.final_state();
        if let Some(state) = read_state(&final_state) {
            states.push((final_state, state));
        }
        if let Ok(entries) = std::fs::read_dir(self.checkpoints()) {
            for entry in entries.flatten() {
                let path = entry.path().join(STATE_FILE);
                if let Some(state) = read_state(&path) {
                    states.push((path, state));
                }
            }
        }
        for (path, state) in states {
            if &state.lora != lora {
                return Err(TrainError::Config(format!(
                    "{} belongs to {}, but this run asks for {}; use the same LoRA settings to \
                     resume, or another output directory",
                    path.display(),
                    describe_lora(&state.lora),
                    describe_lora(lora)
                )));
            }
        }
        Ok(())
    }

    /// The newest complete checkpoint of the run with key `run_key`, if any.
    fn latest_checkpoint(&self, run_key: &str) -> Option<(PathBuf, TrainerState)> {
        let entries = std::fs::read_dir(self.checkpoints()).ok()?;
        let mut best: Option<(PathBuf, TrainerState)> = None;
        for entry in entries.flatten() {
            let dir = entry.path();
            let Some(state) = read_state(&dir.join(STATE_FILE)) else {
                continue;
            };
            if state.run_key != run_key || !dir.join("model").is_dir() {
                continue;
            }
            if best.as_ref().is_none_or(|(_, b)| state.step > b.step) {
                best = Some((dir, state));
            }
        }
        best
    }

    /// The model and optimiser from the newest complete checkpoint of `run_key`, or fresh ones
    /// (`policy`, with LoRA adapters when configured: `adapter`'s factors, else new ones) on
    /// `train_device`.
    pub(crate) fn start<M: TrainableModel>(
        &self,
        run_key: &str,
        policy: &Checkpoint,
        adapter: Option<&Weights>,
        config: &DpoConfig,
        train_device: &Device,
        optimizer_device: &Device,
    ) -> Result<Start<M>, TrainError> {
        let Some((dir, state)) = self.latest_checkpoint(run_key) else {
            let model = M::from_checkpoint(policy, train_device)?;
            let model = match (&config.lora, adapter) {
                (Some(lora), Some(adapter)) => model.with_lora_weights(lora, adapter)?,
                (Some(lora), None) => model.with_lora(lora, config.seed)?,
                (None, _) => model,
            };
            return Ok(Start {
                model,
                optimizer: AdamW::new(config.optimizer),
                step: 0,
                best_metric: None,
                last: None,
            });
        };
        let model = match &config.lora {
            // the base stays frozen at the starting policy; only the factors moved
            Some(lora) => {
                let mut adapters = Weights::new();
                ponder_checkpoint::read_safetensors_file(&dir.join(ADAPTER_FILE), &mut adapters)?;
                M::from_checkpoint(policy, train_device)?.with_lora_weights(lora, &adapters)?
            }
            None => {
                let resumed = Checkpoint::load(&dir.join("model"))?;
                M::from_checkpoint(&resumed, train_device)?
            }
        };
        let optimizer_file = dir.join(OPTIMIZER_FILE);
        let optimizer = AdamW::load(config.optimizer, &optimizer_file, optimizer_device)?;
        optimizer.check_matches(&model, &optimizer_file)?;
        Ok(Start {
            model,
            optimizer,
            step: state.step,
            best_metric: state.best_metric,
            last: state.last,
        })
    }

    /// Writes a resumable checkpoint (model, optimiser, then the state file that marks it
    /// complete) and removes older ones.
    pub(crate) fn save_checkpoint<M: TrainableModel>(
        &self,
        model: &M,
        optimizer: &AdamW,
        template: &Checkpoint,
        state: TrainerState,
    ) -> Result<(), TrainError> {
        let dir = self.checkpoint_dir(state.step);
        std::fs::create_dir_all(&dir).map_err(|e| TrainError::io(&dir, e))?;
        // the factors go to ADAPTER_FILE below, with the optimiser state they belong to
        save_model(model, template, None, &dir.join("model"))?;
        if state.lora.is_some() {
            ponder_checkpoint::write_safetensors_f32(
                &dir.join(ADAPTER_FILE),
                &model.lora_weights()?,
            )?;
        }
        optimizer.save(&dir.join(OPTIMIZER_FILE))?;
        write_state(&dir.join(STATE_FILE), &state)?;
        if let Ok(entries) = std::fs::read_dir(self.checkpoints()) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path != dir {
                    std::fs::remove_dir_all(&path).map_err(|e| TrainError::io(&path, e))?;
                }
            }
        }
        Ok(())
    }

    /// Saves the final model, marks the run completed and removes the checkpoints.
    pub(crate) fn finish<M: TrainableModel>(
        &self,
        model: &M,
        template: &Checkpoint,
        state: TrainerState,
    ) -> Result<(), TrainError> {
        save_model(model, template, state.lora.as_ref(), &self.model_dir())?;
        write_state(&self.final_state(), &state)?;
        let checkpoints = self.checkpoints();
        if checkpoints.is_dir() {
            std::fs::remove_dir_all(&checkpoints).map_err(|e| TrainError::io(&checkpoints, e))?;
        }
        Ok(())
    }
}

fn describe_lora(lora: &Option<LoraConfig>) -> String {
    match lora {
        None => "a full fine-tune (no LoRA)".to_string(),
        Some(l) => format!(
            "LoRA rank {} alpha {} on {}",
            l.rank,
            l.alpha,
            l.targets
                .iter()
                .map(|t| t.name())
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

fn read_state(path: &Path) -> Option<TrainerState> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

fn write_state(path: &Path, state: &TrainerState) -> Result<(), TrainError> {
    let text = serde_json::to_vec_pretty(state)
        .map_err(|e| TrainError::State(format!("serialising trainer state: {e}")))?;
    crate::io::write_atomic(path, &text)
}

/// The PEFT adapter directory inside a saved model directory of a LoRA run.
pub const ADAPTER_DIR: &str = "adapter";

/// Saves `model` as a Hugging Face directory at `dir` (replacing it), with the tokenizer and chat
/// template of `template`; with `lora`, its adapters also unmerged as a PEFT adapter directory
/// `dir/adapter/` (written with the rest, atomically).
pub(crate) fn save_model<M: TrainableModel>(
    model: &M,
    template: &Checkpoint,
    lora: Option<&LoraConfig>,
    dir: &Path,
) -> Result<(), TrainError> {
    let weights = model.to_weights()?;
    let factors = match lora {
        Some(_) => Some(model.lora_weights()?),
        None => None,
    };
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    }
    save_with_adapter(dir, template, &weights, lora.zip(factors.as_ref()))
}

/// Writes `weights` as a Hugging Face directory at `dir` with the tokenizer and chat template of
/// `template`, and with `adapter` (settings and unmerged factors) as the PEFT directory
/// `dir/adapter/`, all in one atomic rename.
///
/// # Errors
/// [`TrainError::Checkpoint`] when a file cannot be written.
pub fn save_with_adapter(
    dir: &Path,
    template: &Checkpoint,
    weights: &Weights,
    adapter: Option<(&LoraConfig, &Weights)>,
) -> Result<(), TrainError> {
    ponder_checkpoint::save_hf_dir_with(
        dir,
        &template.config,
        weights,
        &template.tokenizer,
        template.chat_template.as_ref(),
        |written| match adapter {
            Some((lora, factors)) => {
                ponder_model::lora::write_peft_adapter(&written.join(ADAPTER_DIR), lora, factors)
            }
            None => Ok(()),
        },
    )?;
    Ok(())
}
