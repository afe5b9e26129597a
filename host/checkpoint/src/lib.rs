//! ponder-checkpoint: model file formats, with no tensor-library dependency.
//!
//! Reads Hugging Face directories (`config.json`, safetensors single or sharded,
//! `tokenizer.json`, chat templates) and GGUF files (dequantised to f32, the llama Q/K row
//! permutation undone, tokenizer and chat template from the metadata) into a [`Checkpoint`]:
//! a [`ModelConfig`], f32 [`Weights`] under Hugging Face names, a [`Tokenizer`] and an optional
//! [`ChatTemplate`]. Writes Hugging Face directories with [`save_hf_dir`].

mod chat;
mod checkpoint;
mod config;
mod error;
pub mod gguf;
mod safetensors_io;
mod tensor;
mod tokenizer;
mod writer;

pub use chat::{ChatTemplate, Message};
pub use checkpoint::Checkpoint;
pub use config::{Architecture, ModelConfig, RopeScaling};
pub use error::CheckpointError;
pub use safetensors_io::{read_hf_weights, read_safetensors_file, write_safetensors_f32};
pub use tensor::{HostTensor, Weights};
pub use tokenizer::{SpecialTokens, Tokenizer};
pub use writer::save_hf_dir;
