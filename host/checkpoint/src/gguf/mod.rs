//! GGUF (versions 2 and 3) reader, written from the format's specification: header, metadata
//! key/values (arrays included), tensor infos, `general.alignment`, and dequantisation of F32,
//! F16, BF16, F64, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K and Q6_K to f32.
//!
//! Every read is bounds-checked against the file: a truncated or corrupt file is a
//! [`CheckpointError::Gguf`](crate::CheckpointError::Gguf) naming the byte offset, never a panic or an absurd allocation.
//!
//! The module is split by concern: [`file`](mod@file) parses the container, `dequant` turns ggml blocks
//! into f32, `hf` maps a parsed file onto a Hugging Face [`Checkpoint`](crate::Checkpoint), `export`
//! writes a checkpoint's weights back into a seed file's layout ([`write_like`]).

mod dequant;
mod export;
pub mod file;
mod hf;

pub use dequant::dequantize_blocks;
pub use export::{GgufExport, permute_rows, write_like};
pub use file::{GgmlType, GgufFile, MetadataArray, MetadataValue, StringArray, TensorInfo};
pub use hf::{hf_tensor_name, load_checkpoint, unpermute_rows};
