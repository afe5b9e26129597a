//! `ModelConfig`: the architecture hyper-parameters, read from a Hugging Face `config.json`
//! (transformers 4 and 5 styles) or from GGUF metadata, and written back as `config.json`.

use serde_json::{Map, Value, json};

use crate::CheckpointError;

/// The decoder family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    /// Llama 2/3.x, SmolLM2, TinyLlama, Mistral (without sliding window).
    Llama,
    /// Qwen2: Llama with q/k/v projection biases.
    Qwen2,
}

/// Rotary position embedding scaling.
#[derive(Clone, Debug, PartialEq)]
pub enum RopeScaling {
    /// Llama 3.x "llama3" scaling.
    Llama3 {
        /// Scale of the low frequencies.
        factor: f64,
        /// Wavelength threshold factor below which frequencies are fully scaled.
        low_freq_factor: f64,
        /// Wavelength threshold factor above which frequencies are kept.
        high_freq_factor: f64,
        /// The context length the model was pre-trained with.
        original_max_position_embeddings: usize,
    },
    /// "linear" scaling (positions divided by factor).
    Linear {
        /// The divisor of positions.
        factor: f64,
    },
}

/// Architecture hyper-parameters of a causal language model.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    /// The decoder family.
    pub architecture: Architecture,
    /// Rows of the embedding matrix.
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the MLP's hidden layer.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Number of query heads.
    pub num_attention_heads: usize,
    /// Number of key/value heads (grouped-query attention when fewer than query heads).
    pub num_key_value_heads: usize,
    /// Width of one attention head (`hidden_size / num_attention_heads` unless configured).
    pub head_dim: usize,
    /// The longest context the model supports.
    pub max_position_embeddings: usize,
    /// Epsilon of the RMS norms.
    pub rms_norm_eps: f64,
    /// Base of the rotary embedding frequencies.
    pub rope_theta: f64,
    /// Optional rotary scaling.
    pub rope_scaling: Option<RopeScaling>,
    /// Whether the output head shares the embedding matrix.
    pub tie_word_embeddings: bool,
    /// Whether the q/k/v projections have biases (Qwen2: true).
    pub attention_bias: bool,
    /// The beginning-of-sequence token, if the model has one.
    pub bos_token_id: Option<u32>,
    /// Tokens that end generation: config and generation_config ids, deduplicated, in order.
    pub eos_token_ids: Vec<u32>,
    /// The padding token. transformers builds the embedding with `padding_idx = pad_token_id`,
    /// so looking this token up contributes no gradient to its embedding row; training follows.
    pub pad_token_id: Option<u32>,
}

fn invalid(message: impl Into<String>) -> CheckpointError {
    CheckpointError::InvalidConfig(message.into())
}

fn get_usize(obj: &Map<String, Value>, key: &str) -> Result<Option<usize>, CheckpointError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| invalid(format!("{key} must be a non-negative integer, got {v}"))),
    }
}

fn require_usize(obj: &Map<String, Value>, key: &str) -> Result<usize, CheckpointError> {
    match get_usize(obj, key)? {
        Some(0) => Err(invalid(format!("{key} must be positive"))),
        Some(n) => Ok(n),
        None => Err(invalid(format!("missing {key}"))),
    }
}

fn get_f64(obj: &Map<String, Value>, key: &str) -> Result<Option<f64>, CheckpointError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|x| x.is_finite())
            .map(Some)
            .ok_or_else(|| invalid(format!("{key} must be a number, got {v}"))),
    }
}

fn get_bool(obj: &Map<String, Value>, key: &str) -> Result<Option<bool>, CheckpointError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(invalid(format!("{key} must be true or false, got {v}"))),
    }
}

/// Token ids from a JSON value that is an integer, a list of integers or null.
pub(crate) fn token_ids(value: Option<&Value>, key: &str) -> Result<Vec<u32>, CheckpointError> {
    let to_id = |v: &Value| {
        v.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| invalid(format!("{key} must hold token ids, got {v}")))
    };
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(to_id).collect(),
        Some(v) => Ok(vec![to_id(v)?]),
    }
}

/// Appends the ids that are not there yet, keeping order.
pub(crate) fn push_unique(ids: &mut Vec<u32>, more: impl IntoIterator<Item = u32>) {
    for id in more {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
}

fn parse_rope_scaling(
    scaling: &Map<String, Value>,
) -> Result<Option<RopeScaling>, CheckpointError> {
    let rope_type = scaling
        .get("rope_type")
        .or_else(|| scaling.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    match rope_type {
        "default" => Ok(None),
        "linear" => {
            let factor = get_f64(scaling, "factor")?
                .ok_or_else(|| invalid("linear rope scaling needs factor"))?;
            Ok(Some(RopeScaling::Linear { factor }))
        }
        "llama3" => {
            let field = |key: &str| {
                get_f64(scaling, key)?
                    .ok_or_else(|| invalid(format!("llama3 rope scaling needs {key}")))
            };
            let original =
                get_usize(scaling, "original_max_position_embeddings")?.ok_or_else(|| {
                    invalid("llama3 rope scaling needs original_max_position_embeddings")
                })?;
            Ok(Some(RopeScaling::Llama3 {
                factor: field("factor")?,
                low_freq_factor: field("low_freq_factor")?,
                high_freq_factor: field("high_freq_factor")?,
                original_max_position_embeddings: original,
            }))
        }
        other => Err(CheckpointError::Unsupported(format!(
            "rope scaling type {other:?} (supported: default, linear, llama3)"
        ))),
    }
}

/// `value` when it lies in `1..=max`, else an error naming the field and the limit.
fn check_positive_at_most(name: &str, value: usize, max: usize) -> Result<(), CheckpointError> {
    if value == 0 || value > max {
        return Err(invalid(format!(
            "{name} is {value}; it must be between 1 and {max}"
        )));
    }
    Ok(())
}

/// A float that must be finite and positive (the norm epsilon, RoPE wavelength factors): zero,
/// negative, infinite or NaN values give NaN activations or constant logits, never an error.
fn check_positive_finite(name: &str, value: f64) -> Result<(), CheckpointError> {
    if !(value.is_finite() && value > 0.0) {
        return Err(invalid(format!(
            "{name} is {value}; it must be a finite number above 0"
        )));
    }
    Ok(())
}

/// A float that must be finite and at least `min`: RoPE frequencies are `theta^-x / factor`,
/// computed in float32, so a base below 1 or a factor near 0 pushes them to infinity and every
/// rotated query and key to NaN.
fn check_finite_at_least(name: &str, value: f64, min: f64) -> Result<(), CheckpointError> {
    if !(value.is_finite() && value >= min) {
        return Err(invalid(format!(
            "{name} is {value:?}; it must be a finite number of at least {min}"
        )));
    }
    Ok(())
}

/// The smallest RoPE scaling factor accepted (released models use 2 to 64).
const MIN_ROPE_SCALING_FACTOR: f64 = 1e-3;

impl ModelConfig {
    /// Most decoder layers a configuration may declare (the largest released Llama has 126).
    pub const MAX_LAYERS: usize = 1024;
    /// Widest residual stream, MLP hidden layer or attention projection (Llama 3.1 405B:
    /// 16384 and 53248).
    pub const MAX_WIDTH: usize = 1 << 20;
    /// Most attention heads (query or key/value).
    pub const MAX_HEADS: usize = 4096;
    /// Widest attention head (released models use 64 to 256).
    pub const MAX_HEAD_DIM: usize = 1024;
    /// Largest vocabulary (released models have at most about 260 thousand tokens).
    pub const MAX_VOCAB: usize = 1 << 24;
    /// Longest context a configuration may declare (Llama 4 Scout: 10 million tokens).
    pub const MAX_CONTEXT: usize = 1 << 24;

    /// Checks every size against the limits above and every float against its meaningful
    /// range, so that no shape product overflows and no allocation is sized by an absurd value
    /// read from a file. Both loaders call this before anything is sized by the configuration;
    /// the model calls it again for configurations built by hand.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::InvalidConfig`] naming the first field out of range.
    pub fn validate(&self) -> Result<(), CheckpointError> {
        check_positive_at_most("vocab_size", self.vocab_size, Self::MAX_VOCAB)?;
        check_positive_at_most("hidden_size", self.hidden_size, Self::MAX_WIDTH)?;
        check_positive_at_most("intermediate_size", self.intermediate_size, Self::MAX_WIDTH)?;
        check_positive_at_most(
            "num_hidden_layers",
            self.num_hidden_layers,
            Self::MAX_LAYERS,
        )?;
        check_positive_at_most(
            "num_attention_heads",
            self.num_attention_heads,
            Self::MAX_HEADS,
        )?;
        check_positive_at_most(
            "num_key_value_heads",
            self.num_key_value_heads,
            self.num_attention_heads,
        )?;
        if !self
            .num_attention_heads
            .is_multiple_of(self.num_key_value_heads)
        {
            return Err(invalid(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.num_attention_heads, self.num_key_value_heads
            )));
        }
        check_positive_at_most("head_dim", self.head_dim, Self::MAX_HEAD_DIM)?;
        if !self.head_dim.is_multiple_of(2) {
            return Err(invalid(format!(
                "head_dim {} must be even for RoPE",
                self.head_dim
            )));
        }
        // The limits above keep this product far from overflow; saturating all the same, so
        // the bound holds whatever the limits become.
        let query_width = self.num_attention_heads.saturating_mul(self.head_dim);
        if query_width > Self::MAX_WIDTH {
            return Err(invalid(format!(
                "num_attention_heads {} x head_dim {} = {query_width} exceeds {}",
                self.num_attention_heads,
                self.head_dim,
                Self::MAX_WIDTH
            )));
        }
        check_positive_at_most(
            "max_position_embeddings",
            self.max_position_embeddings,
            Self::MAX_CONTEXT,
        )?;
        check_positive_finite("rms_norm_eps", self.rms_norm_eps)?;
        check_finite_at_least("rope_theta", self.rope_theta, 1.0)?;
        match &self.rope_scaling {
            None => {}
            Some(RopeScaling::Linear { factor }) => {
                check_finite_at_least(
                    "linear rope scaling factor",
                    *factor,
                    MIN_ROPE_SCALING_FACTOR,
                )?;
            }
            Some(RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            }) => {
                check_finite_at_least(
                    "llama3 rope scaling factor",
                    *factor,
                    MIN_ROPE_SCALING_FACTOR,
                )?;
                check_positive_finite("llama3 rope scaling low_freq_factor", *low_freq_factor)?;
                check_positive_finite("llama3 rope scaling high_freq_factor", *high_freq_factor)?;
                // The smoothing between the two wavelengths divides by their difference.
                if high_freq_factor <= low_freq_factor {
                    return Err(invalid(format!(
                        "llama3 rope scaling high_freq_factor {high_freq_factor} must exceed low_freq_factor {low_freq_factor}"
                    )));
                }
                check_positive_at_most(
                    "llama3 rope scaling original_max_position_embeddings",
                    *original_max_position_embeddings,
                    Self::MAX_CONTEXT,
                )?;
            }
        }
        Ok(())
    }

    /// How many tensors a checkpoint of this configuration holds: what a file must contain
    /// before the configuration's sizes are believed.
    pub fn expected_tensor_count(&self) -> usize {
        let per_layer = if self.attention_bias { 12 } else { 9 };
        let global = if self.tie_word_embeddings { 2 } else { 3 };
        self.num_hidden_layers
            .saturating_mul(per_layer)
            .saturating_add(global)
    }

    /// Every tensor this configuration needs, by Hugging Face name, with its shape; produced
    /// lazily so that checking a configuration never allocates in proportion to its claims.
    /// Call [`ModelConfig::validate`] first: the shapes are products of validated sizes.
    pub fn expected_tensors(&self) -> impl Iterator<Item = (String, Vec<usize>)> + '_ {
        let h = self.hidden_size;
        let vocab = self.vocab_size;
        let q = self.num_attention_heads.saturating_mul(self.head_dim);
        let kv = self.num_key_value_heads.saturating_mul(self.head_dim);
        let ffn = self.intermediate_size;
        let mut global = vec![
            ("model.embed_tokens.weight".to_string(), vec![vocab, h]),
            ("model.norm.weight".to_string(), vec![h]),
        ];
        if !self.tie_word_embeddings {
            global.push(("lm_head.weight".to_string(), vec![vocab, h]));
        }
        let bias = self.attention_bias;
        let layers = (0..self.num_hidden_layers).flat_map(move |layer| {
            let mut parts: Vec<(&str, Vec<usize>)> = vec![
                ("input_layernorm.weight", vec![h]),
                ("post_attention_layernorm.weight", vec![h]),
                ("self_attn.q_proj.weight", vec![q, h]),
                ("self_attn.k_proj.weight", vec![kv, h]),
                ("self_attn.v_proj.weight", vec![kv, h]),
                ("self_attn.o_proj.weight", vec![h, q]),
                ("mlp.gate_proj.weight", vec![ffn, h]),
                ("mlp.up_proj.weight", vec![ffn, h]),
                ("mlp.down_proj.weight", vec![h, ffn]),
            ];
            if bias {
                parts.push(("self_attn.q_proj.bias", vec![q]));
                parts.push(("self_attn.k_proj.bias", vec![kv]));
                parts.push(("self_attn.v_proj.bias", vec![kv]));
            }
            parts
                .into_iter()
                .map(move |(name, shape)| (format!("model.layers.{layer}.{name}"), shape))
        });
        global.into_iter().chain(layers)
    }
}

impl ModelConfig {
    /// Parses a Hugging Face `config.json` (transformers-4 `rope_theta`/`rope_scaling` or
    /// transformers-5 `rope_parameters`). Supports `model_type` llama, mistral and qwen2.
    ///
    /// # Errors
    ///
    /// [`CheckpointError`] for malformed JSON, a missing or invalid field, or an unsupported
    /// `model_type` or RoPE scaling.
    pub fn from_hf_json(text: &str) -> Result<Self, CheckpointError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| invalid(format!("not valid JSON: {e}")))?;
        let obj = value
            .as_object()
            .ok_or_else(|| invalid("config.json must be a JSON object"))?;
        let model_type = obj
            .get("model_type")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("missing model_type"))?;
        let architecture = match model_type {
            "llama" | "mistral" => Architecture::Llama,
            "qwen2" => Architecture::Qwen2,
            other => {
                return Err(CheckpointError::Unsupported(format!(
                    "model_type {other:?} (supported: llama, mistral, qwen2)"
                )));
            }
        };
        if let Some(act) = obj.get("hidden_act").and_then(Value::as_str)
            && act != "silu"
        {
            return Err(CheckpointError::Unsupported(format!(
                "hidden_act {act:?} (only silu)"
            )));
        }
        if get_bool(obj, "mlp_bias")? == Some(true) {
            return Err(CheckpointError::Unsupported("mlp_bias = true".into()));
        }
        if architecture == Architecture::Qwen2 && get_bool(obj, "use_sliding_window")? == Some(true)
        {
            return Err(CheckpointError::Unsupported(
                "qwen2 with use_sliding_window = true".into(),
            ));
        }

        let hidden_size = require_usize(obj, "hidden_size")?;
        let num_attention_heads = require_usize(obj, "num_attention_heads")?;
        let num_key_value_heads =
            get_usize(obj, "num_key_value_heads")?.unwrap_or(num_attention_heads);
        if num_key_value_heads == 0 || num_attention_heads % num_key_value_heads != 0 {
            return Err(invalid(format!(
                "num_attention_heads {num_attention_heads} is not a multiple of num_key_value_heads {num_key_value_heads}"
            )));
        }
        let head_dim = match get_usize(obj, "head_dim")? {
            Some(d) if d > 0 => d,
            _ => {
                if hidden_size % num_attention_heads != 0 {
                    return Err(invalid(format!(
                        "hidden_size {hidden_size} is not divisible by num_attention_heads {num_attention_heads}"
                    )));
                }
                hidden_size / num_attention_heads
            }
        };
        if head_dim % 2 != 0 {
            return Err(invalid(format!(
                "head_dim {head_dim} must be even for RoPE"
            )));
        }

        // transformers 5 keeps theta and scaling together in rope_parameters; 4 splits them.
        let (rope_theta, rope_scaling) = match obj.get("rope_parameters") {
            Some(Value::Object(params)) => (
                get_f64(params, "rope_theta")?
                    .or(get_f64(obj, "rope_theta")?)
                    .unwrap_or(10000.0),
                parse_rope_scaling(params)?,
            ),
            Some(Value::Null) | None => {
                let scaling = match obj.get("rope_scaling") {
                    Some(Value::Object(s)) => parse_rope_scaling(s)?,
                    Some(Value::Null) | None => None,
                    Some(v) => {
                        return Err(invalid(format!("rope_scaling must be an object, got {v}")));
                    }
                };
                (get_f64(obj, "rope_theta")?.unwrap_or(10000.0), scaling)
            }
            Some(v) => {
                return Err(invalid(format!(
                    "rope_parameters must be an object, got {v}"
                )));
            }
        };

        let attention_bias = match architecture {
            Architecture::Qwen2 => true,
            Architecture::Llama => get_bool(obj, "attention_bias")?.unwrap_or(false),
        };
        let bos_token_id = token_ids(obj.get("bos_token_id"), "bos_token_id")?
            .first()
            .copied();
        let mut eos_token_ids = Vec::new();
        push_unique(
            &mut eos_token_ids,
            token_ids(obj.get("eos_token_id"), "eos_token_id")?,
        );
        let pad_token_id = token_ids(obj.get("pad_token_id"), "pad_token_id")?
            .first()
            .copied();

        let config = ModelConfig {
            architecture,
            vocab_size: require_usize(obj, "vocab_size")?,
            hidden_size,
            intermediate_size: require_usize(obj, "intermediate_size")?,
            num_hidden_layers: require_usize(obj, "num_hidden_layers")?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            max_position_embeddings: get_usize(obj, "max_position_embeddings")?.unwrap_or(2048),
            rms_norm_eps: get_f64(obj, "rms_norm_eps")?.unwrap_or(1e-6),
            rope_theta,
            rope_scaling,
            tie_word_embeddings: get_bool(obj, "tie_word_embeddings")?.unwrap_or(false),
            attention_bias,
            bos_token_id,
            eos_token_ids,
            pad_token_id,
        };
        config.validate()?;
        Ok(config)
    }

    /// Adds the eos ids of a `generation_config.json` (the eos list sampling stops on).
    ///
    /// # Errors
    ///
    /// [`CheckpointError`] for malformed JSON or eos ids that are not token ids.
    pub fn merge_generation_config(&mut self, text: &str) -> Result<(), CheckpointError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| invalid(format!("generation_config.json is not valid JSON: {e}")))?;
        push_unique(
            &mut self.eos_token_ids,
            token_ids(value.get("eos_token_id"), "eos_token_id")?,
        );
        if self.bos_token_id.is_none() {
            self.bos_token_id = token_ids(value.get("bos_token_id"), "bos_token_id")?
                .first()
                .copied();
        }
        Ok(())
    }

    /// The `config.json` that `save_hf_dir` writes, in the transformers-4 style (which
    /// transformers 5 also reads).
    pub fn to_hf_json(&self) -> Value {
        let (model_type, class) = match self.architecture {
            Architecture::Llama => ("llama", "LlamaForCausalLM"),
            Architecture::Qwen2 => ("qwen2", "Qwen2ForCausalLM"),
        };
        let rope_scaling = match &self.rope_scaling {
            None => Value::Null,
            Some(RopeScaling::Linear { factor }) => {
                json!({"rope_type": "linear", "factor": factor})
            }
            Some(RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            }) => json!({
                "rope_type": "llama3",
                "factor": factor,
                "low_freq_factor": low_freq_factor,
                "high_freq_factor": high_freq_factor,
                "original_max_position_embeddings": original_max_position_embeddings,
            }),
        };
        let eos = match self.eos_token_ids.as_slice() {
            [] => Value::Null,
            [one] => json!(one),
            many => json!(many),
        };
        let mut config = json!({
            "architectures": [class],
            "model_type": model_type,
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "max_position_embeddings": self.max_position_embeddings,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "rope_scaling": rope_scaling,
            "tie_word_embeddings": self.tie_word_embeddings,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": eos,
            "pad_token_id": self.pad_token_id,
            "torch_dtype": "float32",
            "use_cache": true,
        });
        if let Some(obj) = config.as_object_mut() {
            match self.architecture {
                Architecture::Llama => {
                    obj.insert("attention_bias".into(), json!(self.attention_bias));
                    obj.insert("mlp_bias".into(), json!(false));
                }
                Architecture::Qwen2 => {
                    obj.insert("use_sliding_window".into(), json!(false));
                    obj.insert("sliding_window".into(), Value::Null);
                }
            }
        }
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_architecture_is_a_clear_error() {
        let err = ModelConfig::from_hf_json(r#"{"model_type": "gpt_neox"}"#).unwrap_err();
        assert!(err.to_string().contains("gpt_neox"), "{err}");
    }

    #[test]
    fn missing_field_is_named() {
        let err =
            ModelConfig::from_hf_json(r#"{"model_type": "llama", "hidden_size": 8}"#).unwrap_err();
        assert!(err.to_string().contains("num_attention_heads"), "{err}");
    }

    #[test]
    fn eos_list_and_generation_config_are_merged() {
        let text = r#"{"model_type": "llama", "vocab_size": 10, "hidden_size": 8,
            "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
            "eos_token_id": [5, 6], "bos_token_id": 1,
            "rope_scaling": {"type": "linear", "factor": 2.0}}"#;
        let mut config = ModelConfig::from_hf_json(text).unwrap();
        config
            .merge_generation_config(r#"{"eos_token_id": [6, 7]}"#)
            .unwrap();
        assert_eq!(config.eos_token_ids, vec![5, 6, 7]);
        assert_eq!(config.head_dim, 4);
        assert_eq!(config.num_key_value_heads, 2);
        assert_eq!(
            config.rope_scaling,
            Some(RopeScaling::Linear { factor: 2.0 })
        );
        let back = ModelConfig::from_hf_json(&config.to_hf_json().to_string()).unwrap();
        assert_eq!(back, config);
    }

    #[test]
    fn expected_tensors_agree_with_their_count() {
        for (bias, tied) in [(false, true), (true, false)] {
            let mut config = ModelConfig::from_hf_json(
                r#"{"model_type": "llama", "vocab_size": 10, "hidden_size": 8,
                "intermediate_size": 16, "num_hidden_layers": 3, "num_attention_heads": 2}"#,
            )
            .unwrap();
            config.attention_bias = bias;
            config.tie_word_embeddings = tied;
            assert_eq!(
                config.expected_tensors().count(),
                config.expected_tensor_count()
            );
        }
    }

    #[test]
    fn unsupported_rope_type_is_an_error() {
        let text = r#"{"model_type": "llama", "vocab_size": 10, "hidden_size": 8,
            "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
            "rope_scaling": {"rope_type": "yarn", "factor": 2.0}}"#;
        let err = ModelConfig::from_hf_json(text).unwrap_err();
        assert!(err.to_string().contains("yarn"), "{err}");
    }
}
