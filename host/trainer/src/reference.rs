//! Reference-model log-probs: computed once per run with the inference model, cached on disk keyed
//! by a hash of the reference weights and the tokenised pairs.

use std::path::Path;

use burn::tensor::Device;
use ponder_checkpoint::Weights;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::data::TokenizedPair;
use crate::error::TrainError;
use crate::logps::{LogProbModel, pair_batch};
use crate::optim::tensor_to_vec;

/// Reference sums of completion log-probs of one pair.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReferenceLogps {
    /// Chosen completion.
    pub chosen: f64,
    /// Rejected completion.
    pub rejected: f64,
}

#[derive(Serialize, Deserialize)]
struct CacheFile {
    key: String,
    logps: Vec<ReferenceLogps>,
}

/// sha256 over the weights (names sorted, shapes, little-endian f32 data).
pub fn hash_weights(weights: &Weights) -> String {
    let mut hasher = Sha256::new();
    let mut entries: Vec<_> = weights.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    for (name, tensor) in entries {
        hasher.update(name.as_bytes());
        hasher.update([0u8]);
        for d in &tensor.shape {
            hasher.update((*d as u64).to_le_bytes());
        }
        // f32 -> bytes in chunks, to avoid a second full copy of the weights
        let mut buffer = Vec::with_capacity(4 * 4096);
        for chunk in tensor.data.chunks(4096) {
            buffer.clear();
            buffer.extend(chunk.iter().flat_map(|v| v.to_le_bytes()));
            hasher.update(&buffer);
        }
    }
    format!("{:x}", hasher.finalize())
}

/// The cache key of a reference model (given its weight hash) and a list of pairs.
pub fn cache_key(weights_hash: &str, pairs: &[TokenizedPair]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"ponder-dpo-reference-v1\0");
    hasher.update(weights_hash.as_bytes());
    for pair in pairs {
        for part in [&pair.prompt, &pair.chosen, &pair.rejected] {
            hasher.update((part.len() as u64).to_le_bytes());
            for id in part.iter() {
                hasher.update(id.to_le_bytes());
            }
        }
    }
    format!("{:x}", hasher.finalize())
}

/// Reads the cache at `path` if it exists and was written for `key`.
pub fn load_cached(path: &Path, key: &str, expected: usize) -> Option<Vec<ReferenceLogps>> {
    let text = std::fs::read_to_string(path).ok()?;
    let cache: CacheFile = serde_json::from_str(&text).ok()?;
    (cache.key == key && cache.logps.len() == expected).then_some(cache.logps)
}

/// Writes the cache atomically.
///
/// # Errors
///
/// [`TrainError::Io`] / [`TrainError::State`] when the cache cannot be written.
pub fn store_cache(path: &Path, key: &str, logps: &[ReferenceLogps]) -> Result<(), TrainError> {
    let cache = CacheFile {
        key: key.to_string(),
        logps: logps.to_vec(),
    };
    let text = serde_json::to_vec(&cache)
        .map_err(|e| TrainError::State(format!("serialising reference log-probs: {e}")))?;
    crate::io::write_atomic(path, &text)
}

/// Sequence log-probs of every pair under `model` (no gradients), `batch_pairs` pairs per forward.
/// The forward runs where `model` lives; `_device` is kept for the callers that name it.
///
/// # Errors
///
/// [`TrainError::Config`] for a pair without prompt or completion tokens, [`TrainError::Model`]
/// when the model cannot run a batch.
pub fn compute_logps<M: LogProbModel>(
    model: &M,
    pairs: &[TokenizedPair],
    batch_pairs: usize,
    _device: &Device,
) -> Result<Vec<ReferenceLogps>, TrainError> {
    let mut out = Vec::with_capacity(pairs.len());
    let refs: Vec<&TokenizedPair> = pairs.iter().collect();
    for chunk in refs.chunks(batch_pairs.max(1)) {
        let batch = pair_batch(chunk)?;
        let sums = tensor_to_vec(model.sequence_logprob_sums(&batch)?)?;
        let n = chunk.len();
        for i in 0..n {
            out.push(ReferenceLogps {
                chosen: f64::from(sums[i]),
                rejected: f64::from(sums[n + i]),
            });
        }
    }
    Ok(out)
}
