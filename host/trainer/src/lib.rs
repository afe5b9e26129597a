//! ponder's DPO trainer.
//!
//! Preference pairs (JSONL rows of chat-message prompts with chosen and rejected completions) are
//! tokenised with the policy's chat template; the reference model's sequence log-probs are computed
//! once per run (and cached on disk); the policy is trained with a DPO-family loss
//! ([`loss`]), AdamW with PyTorch's defaults and global-norm clipping ([`optim`]), warm-up and
//! decay ([`schedule`]), gradient accumulation and seeded shuffles ([`data`]); every weight is
//! trained, or only LoRA adapters on a frozen model ([`DpoConfig::lora`]; saved merged, and
//! unmerged as a PEFT adapter in the model's `adapter/` directory, which a later run can start
//! from: [`DpoJob::adapter`]). Checkpoints are Hugging Face directories written through
//! `ponder_checkpoint::save_hf_dir`; runs resume from the newest complete checkpoint.
//!
//! The crate is split by concern: [`config`] (what shapes a run, validated), the run directory
//! (state files, checkpoints, saved models), [`evaluate`] (validation without gradients),
//! [`train`] (the loop), [`logps`] (pairs laid out for `ponder-model`'s log-prob path).

pub mod config;
pub mod data;
pub mod error;
pub mod evaluate;
pub mod io;
pub mod logps;
pub mod loss;
pub mod metrics;
pub mod model;
pub mod optim;
pub mod reference;
mod run_dir;
pub mod schedule;
pub mod train;

pub use config::{BatchSizeConfig, DpoConfig};
pub use data::{BatchSize, PairRow, TokenizedPair, read_pairs, tokenize_pairs};
pub use error::TrainError;
pub use loss::{LossConfig, LossKind, LossOutput, PairLogps, preference_loss};
pub use model::TrainableModel;
pub use optim::{AdamW, AdamWConfig, GradientAccumulator};
pub use ponder_model::{LoraConfig, LoraTarget};
pub use run_dir::{ADAPTER_DIR, save_with_adapter};
pub use schedule::{Schedule, ScheduleKind};
pub use train::{DpoJob, DpoOutcome, EvalHook, train_dpo};
