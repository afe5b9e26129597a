//! ponder's model core on burn: the Llama-family / Qwen2 decoder ([`CausalLm`]), a
//! preallocated key/value cache ([`KvCache`]), batched sampling ([`sampler`]) and
//! continuation log-probabilities ([`scoring`]).
//!
//! Loading and saving go through `ponder-checkpoint`; this crate turns a
//! [`ponder_checkpoint::Checkpoint`] into burn tensors on any device, autodiff included:
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use ponder_model::{CausalLm, parse_device};
//! let checkpoint = ponder_checkpoint::Checkpoint::load("models/x.gguf".as_ref())?;
//! let model = CausalLm::from_checkpoint(&checkpoint, &parse_device("cpu")?)?;
//! # Ok(()) }
//! ```
//!
//! For training (what the DPO trainer does): build on `parse_device("cpu")?.autodiff()`, lay
//! pairs out with [`ScoringBatch::new`] and take [`CausalLm::sequence_logprob_sums`]
//! ([`CausalLm::target_logprobs`] summed by [`ScoringBatch::sequence_sums`]): the same path
//! [`sequence_logprobs`] scores with. Parameters are listed by Hugging Face name with
//! [`CausalLm::hf_parameters`] (burn module paths map onto those names with [`hf_name`]);
//! [`CausalLm::to_weights`] gives what `ponder_checkpoint::save_hf_dir` writes.

mod batch;
mod cache;
pub mod cpu_engine;
mod device;
mod error;
pub mod fused;
pub mod lora;
mod model;
mod rope;
pub mod sampler;
pub mod scoring;

pub use batch::{PaddingSide, TokenBatch};
pub use cache::KvCache;
pub use cpu_engine::{CpuEngine, CpuKvCache};
pub use device::parse_device;
pub use error::ModelError;
pub use lora::{LoraAdapter, LoraConfig, LoraTarget};
pub use model::{
    CausalLm, DecoderLayer, HfLinear, Mlp, ParamTensor, RmsNorm, SelfAttention, hf_name,
};
pub use rope::Rope;
pub use sampler::{
    FinishReason, GeneratedSequence, GenerationRequest, GenerationStats, ResponseForcing,
    SamplingParams, StreamEvent, generate, generation_cache_bytes,
};
pub use scoring::{ContinuationLogprobs, ScoringBatch, sequence_logprobs};
