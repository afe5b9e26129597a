//! From Hugging Face back to GGUF: a checkpoint's weights written into the layout of the GGUF it
//! came from, so that a GGUF engine (llama.cpp's server) can serve a model trained here.
//!
//! The seed file's metadata (architecture, hyper-parameters, tokenizer, chat template) is copied
//! byte for byte; every tensor the checkpoint has is written as F32 (the llama Q/K row
//! permutation redone), every other tensor (`rope_freqs`) is copied as it is.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use super::file::{GgmlType, GgufFile, TensorInfo};
use super::hf::{hf_tensor_name, rotary_row_pairs};
use crate::{CheckpointError, ModelConfig, Weights};

/// What [`write_like`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufExport {
    /// Tensors written from the checkpoint's weights (F32).
    pub written: usize,
    /// Tensors copied from the seed file unchanged.
    pub copied: usize,
    /// The file's size in bytes.
    pub bytes: u64,
}

/// Redoes convert_hf_to_gguf's llama Q/K row permutation (the inverse of
/// [`unpermute_rows`](super::unpermute_rows)).
pub fn permute_rows(data: &[f32], rows: usize, n_head: usize) -> Option<Vec<f32>> {
    let cols = data.len().checked_div(rows)?;
    let mut out = vec![0f32; data.len()];
    for (hf_row, gguf_row) in rotary_row_pairs(data.len(), rows, n_head)? {
        out[gguf_row * cols..(gguf_row + 1) * cols]
            .copy_from_slice(&data[hf_row * cols..(hf_row + 1) * cols]);
    }
    Some(out)
}

/// One tensor of the file being written: its header entry and where its data comes from.
enum Source<'a> {
    /// New weights, as F32 little-endian.
    Weights(Vec<f32>),
    /// The seed's bytes.
    Seed(&'a [u8]),
}

/// Writes `out`: `seed`'s metadata and tensor layout with the tensors of `weights` (Hugging Face
/// names, as [`load_checkpoint`](super::load_checkpoint) of `seed` would name them) in place of
/// the seed's. `config` is the checkpoint's configuration (its head counts undo the Q/K
/// permutation). Written to a temporary name first, so `out` is whole or absent.
///
/// # Errors
/// A seed tensor the checkpoint lacks or has in another shape, a checkpoint tensor the seed has
/// no place for, an architecture whose heads do not split its rows, or an I/O error.
pub fn write_like(
    seed: &GgufFile,
    weights: &Weights,
    config: &ModelConfig,
    out: &Path,
) -> Result<GgufExport, CheckpointError> {
    let arch_is_llama = seed.get("general.architecture").and_then(|v| v.as_str()) == Some("llama");
    let mut sources = Vec::with_capacity(seed.tensors.len());
    let mut used = std::collections::BTreeSet::new();
    for info in &seed.tensors {
        let Some(hf_name) = hf_tensor_name(&info.name).filter(|_| info.name != "rope_freqs.weight")
        else {
            sources.push((info, Source::Seed(seed.tensor_bytes(info))));
            continue;
        };
        let tensor = weights.get(&hf_name).ok_or_else(|| {
            CheckpointError::Unsupported(format!(
                "the checkpoint has no tensor {hf_name}, which {} holds as {}",
                seed.path().display(),
                info.name
            ))
        })?;
        if tensor.shape != info.shape() {
            return Err(CheckpointError::Unsupported(format!(
                "tensor {hf_name} has shape {:?} in the checkpoint and {:?} in {}: not the same \
                 architecture",
                tensor.shape,
                info.shape(),
                seed.path().display()
            )));
        }
        let heads = if hf_name.contains(".self_attn.q_proj.") {
            Some(config.num_attention_heads)
        } else if hf_name.contains(".self_attn.k_proj.") {
            Some(config.num_key_value_heads)
        } else {
            None
        };
        let data = match (arch_is_llama, heads) {
            (true, Some(n_head)) => {
                let rows = tensor.shape.first().copied().unwrap_or(0);
                permute_rows(&tensor.data, rows, n_head).ok_or_else(|| {
                    CheckpointError::Unsupported(format!(
                        "tensor {hf_name}: {rows} rows do not split into {n_head} heads"
                    ))
                })?
            }
            _ => tensor.data.clone(),
        };
        used.insert(hf_name);
        sources.push((info, Source::Weights(data)));
    }
    if let Some((extra, _)) = weights.iter().find(|(name, _)| !used.contains(*name)) {
        // A tied head the seed leaves out is the embedding itself: nothing is lost.
        let tied = extra == "lm_head.weight"
            && weights.get("lm_head.weight") == weights.get("model.embed_tokens.weight");
        if !tied {
            return Err(CheckpointError::Unsupported(format!(
                "the checkpoint's tensor {extra} has no place in {} (not the same architecture)",
                seed.path().display()
            )));
        }
    }

    let part = out.with_extension("gguf.part");
    let result = write_file(seed, &sources, &part);
    let bytes = match result {
        Ok(bytes) => bytes,
        Err(error) => {
            let _ = std::fs::remove_file(&part);
            return Err(CheckpointError::io(&part, error));
        }
    };
    std::fs::rename(&part, out).map_err(|e| CheckpointError::io(out, e))?;
    let written = sources
        .iter()
        .filter(|(_, source)| matches!(source, Source::Weights(_)))
        .count();
    Ok(GgufExport {
        written,
        copied: sources.len() - written,
        bytes,
    })
}

/// A file writer that counts the bytes written.
struct Counted {
    file: BufWriter<File>,
    at: u64,
}

impl Counted {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.at += bytes.len() as u64;
        self.file.write_all(bytes)
    }

    /// Zeros up to the next multiple of `alignment`.
    fn pad(&mut self, alignment: u64) -> std::io::Result<()> {
        let zeros = vec![0u8; (self.at.div_ceil(alignment) * alignment - self.at) as usize];
        self.put(&zeros)
    }
}

/// Writes the file; returns its length.
fn write_file(
    seed: &GgufFile,
    sources: &[(&TensorInfo, Source<'_>)],
    path: &Path,
) -> std::io::Result<u64> {
    let alignment = seed.alignment;
    let mut out = Counted {
        file: BufWriter::new(File::create(path)?),
        at: 0,
    };
    out.put(b"GGUF")?;
    out.put(&seed.version.to_le_bytes())?;
    out.put(&(sources.len() as u64).to_le_bytes())?;
    out.put(&(seed.metadata.len() as u64).to_le_bytes())?;
    out.put(seed.raw_metadata())?;
    let mut offset: u64 = 0;
    for (info, source) in sources {
        let (ggml_type, n_bytes) = match source {
            Source::Weights(data) => (GgmlType::F32, data.len() as u64 * 4),
            Source::Seed(bytes) => (info.ggml_type, bytes.len() as u64),
        };
        out.put(&(info.name.len() as u64).to_le_bytes())?;
        out.put(info.name.as_bytes())?;
        out.put(&(info.dims.len() as u32).to_le_bytes())?;
        for dim in &info.dims {
            out.put(&dim.to_le_bytes())?;
        }
        out.put(&ggml_type.id().to_le_bytes())?;
        out.put(&offset.to_le_bytes())?;
        offset = (offset + n_bytes).div_ceil(alignment) * alignment;
    }
    out.pad(alignment)?;
    for (_, source) in sources {
        match source {
            Source::Weights(data) => {
                let bytes: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
                out.put(&bytes)?;
            }
            Source::Seed(bytes) => out.put(bytes)?,
        }
        out.pad(alignment)?;
    }
    let at = out.at;
    out.file
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()?;
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::super::unpermute_rows;
    use super::*;

    #[test]
    fn permute_inverts_unpermute() {
        let (rows, cols, n_head) = (16, 3, 2);
        let original: Vec<f32> = (0..rows * cols).map(|x| x as f32).collect();
        let permuted = permute_rows(&original, rows, n_head).unwrap();
        assert_ne!(permuted, original);
        assert_eq!(unpermute_rows(&permuted, rows, n_head).unwrap(), original);
        assert!(permute_rows(&original, 15, 2).is_none());
    }
}
