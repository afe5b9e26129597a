//! ponder-checkpoint: model file formats, with no tensor-library dependency.
//!
//! Reads Hugging Face directories (`config.json`, safetensors single or sharded,
//! `tokenizer.json`, chat templates) and GGUF files (dequantised to f32, the llama Q/K row
//! permutation undone, tokenizer and chat template from the metadata) into a [`Checkpoint`]:
//! a [`ModelConfig`], f32 [`Weights`] under Hugging Face names, a [`Tokenizer`] and an optional
//! [`ChatTemplate`]. Writes Hugging Face directories with [`save_hf_dir`].
//!
//! Model files are untrusted input. Sizes read from them are checked against
//! [`ModelConfig::validate`]'s limits and against the tensors the file holds before anything is
//! sized by them; GGUF metadata arrays are kept as typed vectors bounded by the bytes left; chat
//! templates render under a work budget ([`CHAT_TEMPLATE_FUEL`]) and an output bound
//! ([`MAX_RENDERED_PROMPT_BYTES`]). Every failure is a [`CheckpointError`] whose message is
//! complete on its own (no variant repeats its cause as a `source()`).

mod chat;
mod checkpoint;
mod config;
mod error;
pub mod gguf;
mod safetensors_io;
mod tensor;
mod tokenizer;
mod writer;

pub use chat::{CHAT_TEMPLATE_FUEL, ChatTemplate, MAX_RENDERED_PROMPT_BYTES, Message};
pub use checkpoint::Checkpoint;
pub use config::{Architecture, ModelConfig, RopeScaling};
pub use error::CheckpointError;
pub use safetensors_io::{read_hf_weights, read_safetensors_file, write_safetensors_f32};
pub use tensor::{HostTensor, Weights};
pub use tokenizer::{SpecialTokens, Tokenizer};
pub use writer::{remove_write_leftovers, save_hf_dir, save_hf_dir_with};
