//! From GGUF to Hugging Face: llama.cpp tensor names to Hugging Face names, the llama Q/K row
//! permutation undone, the model configuration, tokenizer and chat template from the metadata.

use std::path::Path;

use super::file::{GgufFile, MetadataArray, MetadataValue};
use crate::checkpoint::{chat_template_for, check_tensor_count, validate_shapes};
use crate::config::push_unique;
use crate::tokenizer::{ByteLevelBpeVocab, byte_level_bpe};
use crate::{
    Architecture, Checkpoint, CheckpointError, ModelConfig, RopeScaling, SpecialTokens, Tokenizer,
    Weights,
};

/// Hugging Face name of a llama.cpp tensor name; `None` for names this loader does not know.
pub fn hf_tensor_name(gguf_name: &str) -> Option<String> {
    let (stem, suffix) = gguf_name.rsplit_once('.')?;
    if suffix != "weight" && suffix != "bias" {
        return None;
    }
    let global = match stem {
        "token_embd" => Some("model.embed_tokens"),
        "output_norm" => Some("model.norm"),
        "output" => Some("lm_head"),
        _ => None,
    };
    if let Some(name) = global {
        return Some(format!("{name}.{suffix}"));
    }
    let rest = stem.strip_prefix("blk.")?;
    let (layer, part) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let hf_part = match part {
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf_part}.{suffix}"))
}

/// Undoes convert_hf_to_gguf's llama Q/K row permutation ([`rotary_row_pairs`]).
pub fn unpermute_rows(data: &[f32], rows: usize, n_head: usize) -> Option<Vec<f32>> {
    let cols = data.len().checked_div(rows)?;
    let mut out = vec![0f32; data.len()];
    for (hf_row, gguf_row) in rotary_row_pairs(data.len(), rows, n_head)? {
        out[hf_row * cols..(hf_row + 1) * cols]
            .copy_from_slice(&data[gguf_row * cols..(gguf_row + 1) * cols]);
    }
    Some(out)
}

/// The rows convert_hf_to_gguf's llama Q/K permutation moves, as (Hugging Face row, GGUF row):
/// it reshapes the rows as `(n_head, 2, head_dim / 2)` and swaps the last two axes, so GGUF row
/// `h*hd + 2r + i` holds Hugging Face row `h*hd + i*hd/2 + r`. `None` when `rows` does not split
/// into `n_head` heads of even size or `len` elements into `rows` rows.
pub(super) fn rotary_row_pairs(
    len: usize,
    rows: usize,
    n_head: usize,
) -> Option<impl Iterator<Item = (usize, usize)>> {
    if n_head == 0 || rows == 0 || !rows.is_multiple_of(n_head) || !len.is_multiple_of(rows) {
        return None;
    }
    let head_dim = rows / n_head;
    if !head_dim.is_multiple_of(2) {
        return None;
    }
    let half = head_dim / 2;
    Some((0..n_head).flat_map(move |h| {
        (0..2).flat_map(move |i| {
            (0..half).map(move |r| (h * head_dim + i * half + r, h * head_dim + 2 * r + i))
        })
    }))
}

/// The configuration described by the GGUF metadata.
fn model_config(gguf: &GgufFile, vocab_size: usize) -> Result<ModelConfig, CheckpointError> {
    let arch_name = gguf
        .meta_str("general.architecture")
        .ok_or_else(|| gguf.metadata_error("general.architecture", "is missing"))?;
    let architecture = match arch_name {
        "llama" => Architecture::Llama,
        "qwen2" => Architecture::Qwen2,
        other => {
            return Err(CheckpointError::Unsupported(format!(
                "{}: GGUF architecture {other:?} (supported: llama, qwen2)",
                gguf.path().display()
            )));
        }
    };
    let key = |k: &str| format!("{arch_name}.{k}");
    let hidden_size = gguf.meta_usize(&key("embedding_length"))?;
    let num_attention_heads = gguf.meta_usize(&key("attention.head_count"))?;
    let num_key_value_heads = match gguf.meta_u64(&key("attention.head_count_kv"))? {
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        None => num_attention_heads,
    };
    if num_key_value_heads == 0 || num_attention_heads % num_key_value_heads != 0 {
        return Err(gguf.metadata_error(
            &key("attention.head_count_kv"),
            format!("{num_key_value_heads} does not divide head_count {num_attention_heads}"),
        ));
    }
    // The key the head dimension comes from, for the error that names it.
    let (head_dim, head_dim_key) = match gguf.meta_u64(&key("attention.key_length"))? {
        Some(d) if d > 0 => (
            usize::try_from(d).unwrap_or(usize::MAX),
            key("attention.key_length"),
        ),
        _ => (hidden_size / num_attention_heads, key("embedding_length")),
    };
    // Checked here, before the rope_freqs factors below are computed per head dimension.
    if head_dim == 0 || !head_dim.is_multiple_of(2) || head_dim > ModelConfig::MAX_HEAD_DIM {
        return Err(gguf.metadata_error(
            &head_dim_key,
            format!(
                "gives a head dimension of {head_dim}; it must be even and between 2 and {}",
                ModelConfig::MAX_HEAD_DIM
            ),
        ));
    }
    let mut rope_scaling = match gguf.meta_str(&key("rope.scaling.type")) {
        None | Some("none") => None,
        Some("linear") => Some(RopeScaling::Linear {
            factor: gguf.meta_f64(&key("rope.scaling.factor"))?.ok_or_else(|| {
                gguf.metadata_error(
                    &key("rope.scaling.factor"),
                    "is missing for linear rope scaling",
                )
            })?,
        }),
        Some(other) => {
            return Err(CheckpointError::Unsupported(format!(
                "{}: rope scaling type {other:?}",
                gguf.path().display()
            )));
        }
    };
    if let Some(info) = gguf.tensor_info("rope_freqs.weight") {
        // Llama 3.1+ GGUFs store llama3 scaling as per-frequency factors, dropping the
        // parameters; recover them, accepting only parameters that reproduce every factor.
        let factors = gguf.dequantize(info)?;
        let theta = gguf.meta_f64(&key("rope.freq_base"))?.unwrap_or(10000.0);
        rope_scaling = Some(
            llama3_scaling_from_factors(&factors.data, theta, head_dim).ok_or_else(|| {
                CheckpointError::Unsupported(format!(
                    "{}: rope_freqs.weight does not match llama3 rope scaling",
                    gguf.path().display()
                ))
            })?,
        );
    }
    let bos_token_id = gguf.meta_token_id("tokenizer.ggml.bos_token_id", vocab_size)?;
    let mut eos_token_ids = Vec::new();
    for k in [
        "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.eot_token_id",
        "tokenizer.ggml.eom_token_id",
    ] {
        push_unique(&mut eos_token_ids, gguf.meta_token_id(k, vocab_size)?);
    }
    let pad_token_id = gguf.meta_token_id("tokenizer.ggml.padding_token_id", vocab_size)?;
    let config = ModelConfig {
        architecture,
        vocab_size,
        hidden_size,
        intermediate_size: gguf.meta_usize(&key("feed_forward_length"))?,
        num_hidden_layers: gguf.meta_usize(&key("block_count"))?,
        num_attention_heads,
        num_key_value_heads,
        head_dim,
        max_position_embeddings: gguf.meta_usize(&key("context_length"))?,
        rms_norm_eps: gguf
            .meta_f64(&key("attention.layer_norm_rms_epsilon"))?
            .unwrap_or(1e-6),
        rope_theta: gguf.meta_f64(&key("rope.freq_base"))?.unwrap_or(10000.0),
        rope_scaling,
        tie_word_embeddings: gguf.tensor_info("output.weight").is_none(),
        attention_bias: architecture == Architecture::Qwen2,
        bos_token_id,
        eos_token_ids,
        pad_token_id,
    };
    config.validate().map_err(|e| e.in_file(gguf.path()))?;
    Ok(config)
}

/// The factors llama.cpp's converter stores in `rope_freqs.weight` for llama3 rope scaling.
fn llama3_factors(scaling: &RopeScaling, theta: f64, head_dim: usize) -> Vec<f64> {
    let RopeScaling::Llama3 {
        factor,
        low_freq_factor,
        high_freq_factor,
        original_max_position_embeddings,
    } = *scaling
    else {
        return Vec::new();
    };
    let original = original_max_position_embeddings as f64;
    let low_freq_wavelen = original / low_freq_factor;
    let high_freq_wavelen = original / high_freq_factor;
    (0..head_dim / 2)
        .map(|i| {
            let freq = 1.0 / theta.powf(2.0 * i as f64 / head_dim as f64);
            let wavelen = 2.0 * std::f64::consts::PI / freq;
            if wavelen < high_freq_wavelen {
                1.0
            } else if wavelen > low_freq_wavelen {
                factor
            } else {
                let smooth =
                    (original / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
                1.0 / ((1.0 - smooth) / factor + smooth)
            }
        })
        .collect()
}

/// Llama3 rope scaling parameters that reproduce `factors`: the largest factor is the scale;
/// the others are searched among the values Llama 3.x releases use.
fn llama3_scaling_from_factors(
    factors: &[f32],
    theta: f64,
    head_dim: usize,
) -> Option<RopeScaling> {
    // One factor per rotary pair: any other length cannot match, and checking it first keeps
    // the expected tables below as small as the tensor itself.
    if factors.len() != head_dim / 2 {
        return None;
    }
    let factor = f64::from(factors.iter().copied().fold(1.0f32, f32::max));
    for original_max_position_embeddings in [8192, 4096, 16384, 2048, 32768] {
        for (low_freq_factor, high_freq_factor) in [(1.0, 4.0), (1.0, 2.0), (2.0, 4.0)] {
            let candidate = RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            };
            let expected = llama3_factors(&candidate, theta, head_dim);
            let matches = expected.len() == factors.len()
                && expected
                    .iter()
                    .zip(factors)
                    .all(|(e, &f)| (e - f64::from(f)).abs() <= 1e-3 * e.abs().max(1.0));
            if matches {
                return Some(candidate);
            }
        }
    }
    None
}

/// The tokenizer described by the GGUF metadata (byte-level BPE).
fn tokenizer(gguf: &GgufFile) -> Result<Tokenizer, CheckpointError> {
    let model = gguf.meta_str("tokenizer.ggml.model").unwrap_or("");
    if model != "gpt2" {
        return Err(CheckpointError::Unsupported(format!(
            "{}: tokenizer.ggml.model {model:?} (only gpt2 byte-level BPE)",
            gguf.path().display()
        )));
    }
    let tokens = gguf.meta_strings("tokenizer.ggml.tokens")?;
    if tokens.len() > ModelConfig::MAX_VOCAB {
        return Err(gguf.metadata_error(
            "tokenizer.ggml.tokens",
            format!(
                "holds {} tokens, more than the {} a model may have",
                tokens.len(),
                ModelConfig::MAX_VOCAB
            ),
        ));
    }
    let merges = gguf.meta_strings("tokenizer.ggml.merges")?;
    let token_types: Vec<i32> = match gguf.get("tokenizer.ggml.token_type") {
        None => Vec::new(),
        Some(v) => {
            let types = v.as_array().ok_or_else(|| {
                gguf.metadata_error("tokenizer.ggml.token_type", "must be an array")
            })?;
            (0..types.len())
                .map(|index| types.integer_at(index).and_then(|t| i32::try_from(t).ok()))
                .collect::<Option<Vec<i32>>>()
                .ok_or_else(|| {
                    gguf.metadata_error("tokenizer.ggml.token_type", "must hold integers")
                })?
        }
    };
    let pre = gguf.meta_str("tokenizer.ggml.pre").unwrap_or("default");
    let token_text = |key: &str| -> Result<Option<String>, CheckpointError> {
        Ok(gguf
            .meta_token_id(key, tokens.len())?
            .and_then(|id| tokens.get(id as usize))
            .map(str::to_string))
    };
    let add_bos_default = matches!(pre, "llama3" | "llama-bpe" | "llama-v3" | "smaug-bpe");
    let special = SpecialTokens {
        bos: token_text("tokenizer.ggml.bos_token_id")?,
        eos: token_text("tokenizer.ggml.eos_token_id")?,
        unk: token_text("tokenizer.ggml.unknown_token_id")?,
        pad: token_text("tokenizer.ggml.padding_token_id")?,
        add_bos_token: gguf
            .get("tokenizer.ggml.add_bos_token")
            .and_then(MetadataValue::as_bool)
            .unwrap_or(add_bos_default),
    };
    let vocab = ByteLevelBpeVocab {
        tokens,
        merges,
        token_types: &token_types,
        pre,
    };
    byte_level_bpe(&vocab, special).map_err(|e| e.in_file(gguf.path()))
}

/// Dequantises every tensor under its Hugging Face name, undoing the llama Q/K permutation.
fn weights(
    gguf: &GgufFile,
    config: &ModelConfig,
    arch_is_llama: bool,
) -> Result<Weights, CheckpointError> {
    let mut weights = Weights::new();
    for info in &gguf.tensors {
        if info.name == "rope_freqs.weight" {
            continue;
        }
        let hf_name = hf_tensor_name(&info.name).ok_or_else(|| {
            CheckpointError::Unsupported(format!(
                "{}: unknown tensor {} (not part of the llama/qwen2 layout)",
                gguf.path().display(),
                info.name
            ))
        })?;
        let mut tensor = gguf.dequantize(info)?;
        let heads = if hf_name.contains(".self_attn.q_proj.") {
            Some(config.num_attention_heads)
        } else if hf_name.contains(".self_attn.k_proj.") {
            Some(config.num_key_value_heads)
        } else {
            None
        };
        if let (true, Some(n_head)) = (arch_is_llama, heads) {
            let rows = tensor.shape.first().copied().unwrap_or(0);
            tensor.data = unpermute_rows(&tensor.data, rows, n_head).ok_or_else(|| {
                gguf.error(
                    gguf.data_offset + info.offset,
                    format!(
                        "tensor {}: {rows} rows do not split into {n_head} heads",
                        info.name
                    ),
                )
            })?;
        }
        weights.insert(hf_name, tensor);
    }
    Ok(weights)
}

/// Loads a `.gguf` file as a checkpoint: config from the `<arch>.*` metadata, weights
/// dequantised under Hugging Face names, tokenizer and chat template from the metadata.
///
/// # Errors
///
/// As [`GgufFile::open`], and [`CheckpointError`] for an unsupported architecture, missing
/// metadata, an unknown tensor or a tensor of the wrong shape.
pub fn load_checkpoint(path: &Path) -> Result<Checkpoint, CheckpointError> {
    let gguf = GgufFile::open(path)?;
    let tokenizer = tokenizer(&gguf)?;
    let config = model_config(&gguf, tokenizer_vocab_len(&gguf)?)?;
    // Before dequantising anything: the metadata's layer count must fit the tensors present.
    check_tensor_count(&config, gguf.tensors.len()).map_err(|e| e.in_file(path))?;
    let arch_is_llama = gguf.meta_str("general.architecture") == Some("llama");
    let weights = weights(&gguf, &config, arch_is_llama)?;
    validate_shapes(&config, &weights).map_err(|e| e.in_file(path))?;
    let chat_template = match gguf.meta_str("tokenizer.chat_template") {
        Some(source) => {
            Some(chat_template_for(source.to_string(), &tokenizer).map_err(|e| e.in_file(path))?)
        }
        None => None,
    };
    Ok(Checkpoint {
        config,
        weights,
        tokenizer,
        chat_template,
        source: path.to_path_buf(),
    })
}

fn tokenizer_vocab_len(gguf: &GgufFile) -> Result<usize, CheckpointError> {
    gguf.get("tokenizer.ggml.tokens")
        .and_then(MetadataValue::as_array)
        .map(MetadataArray::len)
        .ok_or_else(|| gguf.metadata_error("tokenizer.ggml.tokens", "is missing"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The permutation convert_hf_to_gguf applies, transcribed from its Python.
    fn permute(data: &[f32], rows: usize, n_head: usize) -> Vec<f32> {
        let cols = data.len() / rows;
        let head_dim = rows / n_head;
        let half = head_dim / 2;
        let mut out = vec![0f32; data.len()];
        // reshape(n_head, 2, half, cols).swapaxes(1, 2): out[h][r][i] = in[h][i][r]
        for h in 0..n_head {
            for r in 0..half {
                for i in 0..2 {
                    let dst = h * head_dim + r * 2 + i;
                    let src = h * head_dim + i * half + r;
                    out[dst * cols..(dst + 1) * cols]
                        .copy_from_slice(&data[src * cols..(src + 1) * cols]);
                }
            }
        }
        out
    }

    #[test]
    fn unpermute_inverts_the_converter_permutation() {
        let (rows, cols, n_head) = (16, 3, 2);
        let original: Vec<f32> = (0..rows * cols).map(|x| x as f32).collect();
        let permuted = permute(&original, rows, n_head);
        assert_ne!(permuted, original);
        // Row 1 of head 0 in GGUF order is HF row 4 (i = 1, r = 0): the rotary pairs interleave.
        assert_eq!(permuted[cols..2 * cols], original[4 * cols..5 * cols]);
        assert_eq!(unpermute_rows(&permuted, rows, n_head).unwrap(), original);
    }

    #[test]
    fn llama3_scaling_is_recovered_from_rope_freqs() {
        let scaling = RopeScaling::Llama3 {
            factor: 32.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192,
        };
        let factors: Vec<f32> = llama3_factors(&scaling, 500000.0, 64)
            .iter()
            .map(|&f| f as f32)
            .collect();
        assert!(
            factors.iter().any(|&f| f > 1.0 && f < 32.0),
            "some smoothed factors"
        );
        assert_eq!(
            llama3_scaling_from_factors(&factors, 500000.0, 64),
            Some(scaling)
        );
        let mut wrong = factors.clone();
        wrong[5] *= 1.5;
        assert_eq!(llama3_scaling_from_factors(&wrong, 500000.0, 64), None);
    }

    #[test]
    fn unpermute_rejects_bad_shapes() {
        assert!(unpermute_rows(&[0.0; 6], 3, 2).is_none());
        assert!(unpermute_rows(&[0.0; 6], 6, 2).is_none());
    }

    #[test]
    fn tensor_names_map_to_hf() {
        assert_eq!(
            hf_tensor_name("token_embd.weight").unwrap(),
            "model.embed_tokens.weight"
        );
        assert_eq!(
            hf_tensor_name("blk.12.attn_output.weight").unwrap(),
            "model.layers.12.self_attn.o_proj.weight"
        );
        assert_eq!(
            hf_tensor_name("blk.0.attn_q.bias").unwrap(),
            "model.layers.0.self_attn.q_proj.bias"
        );
        assert_eq!(
            hf_tensor_name("blk.3.ffn_norm.weight").unwrap(),
            "model.layers.3.post_attention_layernorm.weight"
        );
        assert_eq!(hf_tensor_name("output.weight").unwrap(), "lm_head.weight");
        assert!(hf_tensor_name("blk.x.attn_q.weight").is_none());
        assert!(hf_tensor_name("blk.0.mystery.weight").is_none());
    }
}
