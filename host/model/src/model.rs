//! The decoder: one implementation for the Llama family (Llama 2/3.x, SmolLM2, TinyLlama,
//! Mistral without sliding window) and Qwen2, parameterised by [`ModelConfig`].
//!
//! Parameters are stored in the Hugging Face layout (a linear weight is `[out, in]`) under the
//! Hugging Face names, so loading, saving and gradient comparison need no renaming or
//! transposition.
//!
//! Each module owns its part of the naming walk, as candle's modules do: `load` reads its
//! tensors under a prefix, `visit` lists its parameterised parts under the same names, and
//! `forward` computes it. A child's name (`self_attn`, `q_proj`, `input_layernorm`, ...) is
//! written once, in a `CHILDREN` constant or a [`LoraTarget`] name, and the struct fields carry
//! the same names so that burn's module paths map onto them ([`hf_name`]).

use burn::module::{Module, Param};
use burn::tensor::module::embedding;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use ponder_checkpoint::{Checkpoint, HostTensor, ModelConfig, Weights};

use crate::batch::TokenBatch;
use crate::fused::{self, AttentionMask, RotaryTables};
use crate::lora::{LoraAdapter, LoraTarget};
use crate::rope::Rope;
use crate::{KvCache, ModelError};

/// A linear layer with its weight in the Hugging Face layout `[out_features, in_features]`.
#[derive(Module, Debug)]
pub struct HfLinear {
    /// `[out_features, in_features]`.
    pub weight: Param<Tensor<2>>,
    /// `[out_features]`, when the layer has a bias.
    pub bias: Option<Param<Tensor<1>>>,
    /// A trainable low-rank update (LoRA, see [`crate::lora`]); `None` for a plain layer.
    pub lora: Option<LoraAdapter>,
}

impl HfLinear {
    /// Reads `{name}.weight` (`[out, in]`) and, when `bias`, `{name}.bias`.
    fn load(
        loader: &mut Loader<'_>,
        name: &str,
        [out, inputs]: [usize; 2],
        bias: bool,
    ) -> Result<Self, ModelError> {
        Ok(Self {
            weight: loader.matrix(&format!("{name}.weight"), [out, inputs])?,
            bias: if bias {
                Some(loader.vector(&format!("{name}.bias"), out)?)
            } else {
                None
            },
            lora: None,
        })
    }

    /// This layer's parameters under `name` (the weight with any adapter merged).
    fn push_parameters(&self, name: &str, out: &mut Vec<(String, ParamTensor)>) {
        out.push((
            format!("{name}.weight"),
            ParamTensor::Matrix(self.merged_weight()),
        ));
        if let Some(bias) = &self.bias {
            out.push((format!("{name}.bias"), ParamTensor::Vector(bias.val())));
        }
    }

    fn forward(&self, input: Tensor<2>) -> Tensor<2> {
        let bias = self.bias.as_ref().map(Param::val);
        let Some(adapter) = &self.lora else {
            return fused::linear(input, self.weight.val(), bias);
        };
        let output = fused::low_rank_linear(
            input,
            self.weight.val(),
            adapter.a.val(),
            adapter.b.val(),
            adapter.scale as f32,
        );
        match bias {
            Some(bias) => output + bias.unsqueeze_dim(0),
            None => output,
        }
    }

    /// The effective weight `[out, in]`: the stored one, plus the LoRA update when an adapter
    /// is attached (what a checkpoint saves: adapters merged).
    pub fn merged_weight(&self) -> Tensor<2> {
        match &self.lora {
            Some(adapter) => self.weight.val() + adapter.delta(),
            None => self.weight.val(),
        }
    }
}

/// Root-mean-square layer norm (`weight * x / sqrt(mean(x^2) + eps)`).
#[derive(Module, Debug)]
pub struct RmsNorm {
    /// `[hidden_size]`.
    pub weight: Param<Tensor<1>>,
    /// Added to the mean square before the square root.
    pub eps: f64,
}

impl RmsNorm {
    /// Reads `{name}.weight` (`[len]`).
    fn load(loader: &mut Loader<'_>, name: &str, len: usize, eps: f64) -> Result<Self, ModelError> {
        Ok(Self {
            weight: loader.vector(&format!("{name}.weight"), len)?,
            eps,
        })
    }

    /// This norm's parameter under `name`.
    fn push_parameters(&self, name: &str, out: &mut Vec<(String, ParamTensor)>) {
        out.push((
            format!("{name}.weight"),
            ParamTensor::Vector(self.weight.val()),
        ));
    }

    fn forward(&self, input: Tensor<2>) -> Tensor<2> {
        fused::rms_norm(input, self.weight.val(), self.eps)
    }
}

/// Grouped-query self-attention with rotary positions.
#[derive(Module, Debug)]
pub struct SelfAttention {
    /// Query projection.
    pub q_proj: HfLinear,
    /// Key projection.
    pub k_proj: HfLinear,
    /// Value projection.
    pub v_proj: HfLinear,
    /// Output projection.
    pub o_proj: HfLinear,
}

/// The SwiGLU feed-forward block.
#[derive(Module, Debug)]
pub struct Mlp {
    /// Gate projection (SiLU applied).
    pub gate_proj: HfLinear,
    /// Up projection.
    pub up_proj: HfLinear,
    /// Down projection.
    pub down_proj: HfLinear,
}

/// One pre-norm decoder layer.
#[derive(Module, Debug)]
pub struct DecoderLayer {
    /// Norm before attention.
    pub input_layernorm: RmsNorm,
    /// Self-attention.
    pub self_attn: SelfAttention,
    /// Norm before the feed-forward block.
    pub post_attention_layernorm: RmsNorm,
    /// Feed-forward block.
    pub mlp: Mlp,
}

impl SelfAttention {
    /// The projections, in Hugging Face order; their names are [`LoraTarget::name`].
    pub const PROJECTIONS: [LoraTarget; 4] = [
        LoraTarget::QProj,
        LoraTarget::KProj,
        LoraTarget::VProj,
        LoraTarget::OProj,
    ];

    fn load(
        loader: &mut Loader<'_>,
        prefix: &str,
        config: &ModelConfig,
    ) -> Result<Self, ModelError> {
        let hidden = config.hidden_size;
        let q_out = config.num_attention_heads * config.head_dim;
        let kv_out = config.num_key_value_heads * config.head_dim;
        let bias = config.attention_bias;
        let [q, k, v, o] = Self::PROJECTIONS.map(|p| format!("{prefix}.{}", p.name()));
        Ok(Self {
            q_proj: HfLinear::load(loader, &q, [q_out, hidden], bias)?,
            k_proj: HfLinear::load(loader, &k, [kv_out, hidden], bias)?,
            v_proj: HfLinear::load(loader, &v, [kv_out, hidden], bias)?,
            o_proj: HfLinear::load(loader, &o, [hidden, q_out], false)?,
        })
    }

    /// Attention of `normed` (`[rows * new_len, hidden]`) over itself and, with `cache`, the
    /// keys and values cached before (the new ones are written to it).
    fn forward(
        &self,
        normed: Tensor<2>,
        context: &AttentionContext,
        cache: Option<LayerCache<'_>>,
    ) -> Tensor<2> {
        let AttentionContext {
            rows,
            new_len,
            heads,
            kv_heads,
            head_dim,
            ..
        } = *context;
        let query =
            fused::rotate_heads(self.q_proj.forward(normed.clone()), &context.rotary, heads);
        let key = fused::rotate_heads(
            self.k_proj.forward(normed.clone()),
            &context.rotary,
            kv_heads,
        );
        let value = self
            .v_proj
            .forward(normed)
            .reshape([rows, new_len, kv_heads, head_dim])
            .swap_dims(1, 2);
        let (key, value) = match cache {
            Some(LayerCache { cache, layer }) => cache.write(layer, context.start, key, value),
            None => (key, value),
        };
        let scale = 1.0 / (head_dim as f32).sqrt();
        let attended = fused::attention(query, key, value, &context.mask, scale);
        let attended = attended
            .swap_dims(1, 2)
            .reshape([rows * new_len, heads * head_dim]);
        self.o_proj.forward(attended)
    }
}

impl Mlp {
    /// The projections, in Hugging Face order; their names are [`LoraTarget::name`].
    pub const PROJECTIONS: [LoraTarget; 3] = [
        LoraTarget::GateProj,
        LoraTarget::UpProj,
        LoraTarget::DownProj,
    ];

    fn load(
        loader: &mut Loader<'_>,
        prefix: &str,
        config: &ModelConfig,
    ) -> Result<Self, ModelError> {
        let (hidden, inter) = (config.hidden_size, config.intermediate_size);
        let [gate, up, down] = Self::PROJECTIONS.map(|p| format!("{prefix}.{}", p.name()));
        Ok(Self {
            gate_proj: HfLinear::load(loader, &gate, [inter, hidden], false)?,
            up_proj: HfLinear::load(loader, &up, [inter, hidden], false)?,
            down_proj: HfLinear::load(loader, &down, [hidden, inter], false)?,
        })
    }

    fn forward(&self, normed: Tensor<2>) -> Tensor<2> {
        let gated = fused::swiglu(
            self.gate_proj.forward(normed.clone()),
            self.up_proj.forward(normed),
        );
        self.down_proj.forward(gated)
    }
}

impl DecoderLayer {
    /// Names of the children: input norm, attention block, post-attention norm, MLP block.
    pub const CHILDREN: [&str; 4] = [
        "input_layernorm",
        "self_attn",
        "post_attention_layernorm",
        "mlp",
    ];

    fn load(
        loader: &mut Loader<'_>,
        prefix: &str,
        config: &ModelConfig,
    ) -> Result<Self, ModelError> {
        let [input_norm, attn, post_norm, mlp] = Self::CHILDREN.map(|c| format!("{prefix}.{c}"));
        let (hidden, eps) = (config.hidden_size, config.rms_norm_eps);
        Ok(Self {
            input_layernorm: RmsNorm::load(loader, &input_norm, hidden, eps)?,
            self_attn: SelfAttention::load(loader, &attn, config)?,
            post_attention_layernorm: RmsNorm::load(loader, &post_norm, hidden, eps)?,
            mlp: Mlp::load(loader, &mlp, config)?,
        })
    }

    /// The block a projection lives in (`self_attn` or `mlp`), as named in [`Self::CHILDREN`].
    pub fn block_of(target: LoraTarget) -> &'static str {
        if SelfAttention::PROJECTIONS.contains(&target) {
            Self::CHILDREN[1]
        } else {
            Self::CHILDREN[3]
        }
    }

    /// One of the layer's projections.
    pub fn projection(&self, target: LoraTarget) -> &HfLinear {
        match target {
            LoraTarget::QProj => &self.self_attn.q_proj,
            LoraTarget::KProj => &self.self_attn.k_proj,
            LoraTarget::VProj => &self.self_attn.v_proj,
            LoraTarget::OProj => &self.self_attn.o_proj,
            LoraTarget::GateProj => &self.mlp.gate_proj,
            LoraTarget::UpProj => &self.mlp.up_proj,
            LoraTarget::DownProj => &self.mlp.down_proj,
        }
    }

    /// One of the layer's projections, mutably (attaching LoRA adapters).
    pub(crate) fn projection_mut(&mut self, target: LoraTarget) -> &mut HfLinear {
        match target {
            LoraTarget::QProj => &mut self.self_attn.q_proj,
            LoraTarget::KProj => &mut self.self_attn.k_proj,
            LoraTarget::VProj => &mut self.self_attn.v_proj,
            LoraTarget::OProj => &mut self.self_attn.o_proj,
            LoraTarget::GateProj => &mut self.mlp.gate_proj,
            LoraTarget::UpProj => &mut self.mlp.up_proj,
            LoraTarget::DownProj => &mut self.mlp.down_proj,
        }
    }

    /// Every parameter of the layer under `prefix`, in Hugging Face order (LoRA merged).
    fn push_parameters(&self, prefix: &str, out: &mut Vec<(String, ParamTensor)>) {
        let [input_norm, _, post_norm, _] = Self::CHILDREN;
        let projection = |target: LoraTarget, out: &mut Vec<(String, ParamTensor)>| {
            self.projection(target)
                .push_parameters(&Self::projection_name(prefix, target), out);
        };
        self.input_layernorm
            .push_parameters(&format!("{prefix}.{input_norm}"), out);
        for target in SelfAttention::PROJECTIONS {
            projection(target, out);
        }
        self.post_attention_layernorm
            .push_parameters(&format!("{prefix}.{post_norm}"), out);
        for target in Mlp::PROJECTIONS {
            projection(target, out);
        }
    }

    /// The Hugging Face name of a projection of the layer named `prefix`
    /// (`model.layers.0` → `model.layers.0.self_attn.q_proj`).
    pub fn projection_name(prefix: &str, target: LoraTarget) -> String {
        format!("{prefix}.{}.{}", Self::block_of(target), target.name())
    }

    /// Pre-norm attention and MLP, each added to the residual stream.
    fn forward(
        &self,
        hidden: Tensor<2>,
        context: &AttentionContext,
        cache: Option<LayerCache<'_>>,
    ) -> Tensor<2> {
        let normed = self.input_layernorm.forward(hidden.clone());
        let hidden = hidden + self.self_attn.forward(normed, context, cache);
        let normed = self.post_attention_layernorm.forward(hidden.clone());
        hidden + self.mlp.forward(normed)
    }
}

/// A causal language model: embeddings, decoder layers, final norm, output head.
///
/// It is a burn [`Module`]: build it on an autodiff device (`device.autodiff()`) to train it,
/// and take gradients with `Tensor::backward` (the trainer's AdamW walks it as a burn module).
#[derive(Module, Debug)]
pub struct CausalLm {
    /// `[vocab_size, hidden_size]`; also the output head when embeddings are tied.
    pub embed_tokens: Param<Tensor<2>>,
    /// The decoder layers.
    pub layers: Vec<DecoderLayer>,
    /// Final norm.
    pub norm: RmsNorm,
    /// `[vocab_size, hidden_size]` output head, absent when tied to the embeddings.
    pub lm_head: Option<HfLinear>,
    #[module(skip)]
    config: ModelConfig,
    #[module(skip)]
    rope: Rope,
}

/// One named parameter tensor, as [`CausalLm::hf_parameters`] lists them.
#[derive(Clone, Debug)]
pub enum ParamTensor {
    /// A vector (norm weights, biases).
    Vector(Tensor<1>),
    /// A matrix (embeddings, linear weights in `[out, in]` layout).
    Matrix(Tensor<2>),
}

impl ParamTensor {
    /// The tensor's shape.
    pub fn shape(&self) -> Vec<usize> {
        match self {
            ParamTensor::Vector(t) => t.dims().to_vec(),
            ParamTensor::Matrix(t) => t.dims().to_vec(),
        }
    }

    /// Copies the tensor to host memory.
    ///
    /// # Errors
    ///
    /// [`ModelError::TensorRead`] when the tensor cannot be read back from the device.
    pub fn to_host(&self) -> Result<HostTensor, ModelError> {
        let (shape, data) = match self {
            ParamTensor::Vector(t) => (t.dims().to_vec(), t.try_to_vec_as::<f32>()),
            ParamTensor::Matrix(t) => (t.dims().to_vec(), t.try_to_vec_as::<f32>()),
        };
        let data = data.map_err(|e| ModelError::TensorRead(format!("{e:?}")))?;
        Ok(HostTensor::new(shape, data)?)
    }

    /// The gradient of this parameter in `grads` (autodiff devices only), as a tensor of the
    /// same rank without autodiff.
    pub fn grad(&self, grads: &burn::tensor::Gradients) -> Option<ParamTensor> {
        match self {
            ParamTensor::Vector(t) => t.grad(grads).map(ParamTensor::Vector),
            ParamTensor::Matrix(t) => t.grad(grads).map(ParamTensor::Matrix),
        }
    }
}

/// Reads named host tensors onto a device, checking their shapes: what each module's `load`
/// takes.
struct Loader<'a> {
    take: &'a mut dyn FnMut(&str) -> Result<HostTensor, ModelError>,
    device: &'a Device,
}

impl Loader<'_> {
    fn matrix(&mut self, name: &str, shape: [usize; 2]) -> Result<Param<Tensor<2>>, ModelError> {
        let tensor = (self.take)(name)?;
        check_shape(name, &tensor, &shape)?;
        Ok(Param::from_tensor(Tensor::from_data(
            TensorData::new(tensor.data, shape),
            self.device,
        )))
    }

    fn vector(&mut self, name: &str, len: usize) -> Result<Param<Tensor<1>>, ModelError> {
        let tensor = (self.take)(name)?;
        check_shape(name, &tensor, &[len])?;
        Ok(Param::from_tensor(Tensor::from_data(
            TensorData::new(tensor.data, [len]),
            self.device,
        )))
    }
}

/// The decoder's prefix: every Hugging Face name but the untied output head's starts with it.
const DECODER: &str = "model";
/// The decoder's children besides its layers: embeddings, layers, final norm.
const DECODER_CHILDREN: [&str; 3] = ["embed_tokens", "layers", "norm"];
/// The untied output head.
const LM_HEAD: &str = "lm_head";

/// The Hugging Face name of a parameter of [`CausalLm`] from its burn module path (the struct
/// fields carry the Hugging Face names): `layers.0.self_attn.q_proj.weight` →
/// `model.layers.0.self_attn.q_proj.weight`, `embed_tokens` → `model.embed_tokens.weight`,
/// `lm_head.weight` unchanged.
pub fn hf_name(module_path: &str) -> String {
    if module_path == DECODER_CHILDREN[0] {
        format!("{DECODER}.{module_path}.weight")
    } else if module_path.starts_with(LM_HEAD) {
        module_path.to_string()
    } else {
        format!("{DECODER}.{module_path}")
    }
}

/// What the attention of a forward pass needs besides its input: the batch shape, where the
/// new tokens start, the mask and the rotary tables.
struct AttentionContext {
    /// Rows of the batch.
    rows: usize,
    /// New tokens per row.
    new_len: usize,
    /// Column of the first new token (the cache's length before this pass; 0 without a cache).
    start: usize,
    /// Query heads.
    heads: usize,
    /// Key/value heads.
    kv_heads: usize,
    /// Width of a head.
    head_dim: usize,
    /// `[batch, 1, new_len, key_len]`, `true` = may not attend.
    mask: AttentionMask,
    /// RoPE tables of the new tokens.
    rotary: RotaryTables,
}

/// The key/value cache of one layer during a cached forward.
struct LayerCache<'a> {
    cache: &'a mut KvCache,
    layer: usize,
}

impl CausalLm {
    /// Builds the model from a loaded checkpoint on `device` (copies the weights; the
    /// checkpoint stays usable, e.g. for saving).
    ///
    /// # Errors
    ///
    /// [`ModelError::InvalidRequest`] for an unusable configuration, [`ModelError::Checkpoint`] for a
    /// missing tensor, [`ModelError::WeightShape`] for a tensor of the wrong shape.
    pub fn from_checkpoint(checkpoint: &Checkpoint, device: &Device) -> Result<Self, ModelError> {
        Self::from_weights(&checkpoint.config, &checkpoint.weights, device)
    }

    /// Builds the model from Hugging Face-named weights, copying them onto `device`.
    pub fn from_weights(
        config: &ModelConfig,
        weights: &Weights,
        device: &Device,
    ) -> Result<Self, ModelError> {
        Self::build(config, device, &mut |name| {
            weights.get(name).cloned().ok_or_else(|| {
                ModelError::Checkpoint(ponder_checkpoint::CheckpointError::MissingTensor(
                    name.to_string(),
                ))
            })
        })
    }

    /// Builds the model by moving the weights out of `weights` (lower peak memory than
    /// [`CausalLm::from_weights`]); the tensors it used are gone from `weights` afterwards.
    pub fn from_weights_taken(
        config: &ModelConfig,
        weights: &mut Weights,
        device: &Device,
    ) -> Result<Self, ModelError> {
        Self::build(config, device, &mut |name| Ok(weights.take(name)?))
    }

    fn build(
        config: &ModelConfig,
        device: &Device,
        take: &mut dyn FnMut(&str) -> Result<HostTensor, ModelError>,
    ) -> Result<Self, ModelError> {
        validate_config(config)?;
        let mut loader = Loader { take, device };
        let [embed, _, norm] = DECODER_CHILDREN.map(|c| format!("{DECODER}.{c}"));
        let (vocab, hidden) = (config.vocab_size, config.hidden_size);
        let embed_tokens = loader.matrix(&format!("{embed}.weight"), [vocab, hidden])?;
        let layers = (0..config.num_hidden_layers)
            .map(|index| DecoderLayer::load(&mut loader, &Self::layer_name(index), config))
            .collect::<Result<Vec<_>, _>>()?;
        let norm = RmsNorm::load(&mut loader, &norm, hidden, config.rms_norm_eps)?;
        let lm_head = if config.tie_word_embeddings {
            None
        } else {
            Some(HfLinear::load(
                &mut loader,
                LM_HEAD,
                [vocab, hidden],
                false,
            )?)
        };
        Ok(CausalLm {
            embed_tokens,
            layers,
            norm,
            lm_head,
            config: config.clone(),
            rope: Rope::new(config),
        })
    }

    /// The configuration the model was built from.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The rotary embedding tables' generator.
    pub(crate) fn rope(&self) -> &Rope {
        &self.rope
    }

    /// The device the parameters live on.
    pub fn device(&self) -> Device {
        self.embed_tokens.val().device()
    }

    /// Every parameter under its Hugging Face name, in the Hugging Face layout. Tied models
    /// list no `lm_head.weight`. LoRA adapters are merged into their layer's weight
    /// ([`HfLinear::merged_weight`]); [`CausalLm::lora_weights`] lists them unmerged.
    pub fn hf_parameters(&self) -> Vec<(String, ParamTensor)> {
        let [embed, _, norm] = DECODER_CHILDREN.map(|c| format!("{DECODER}.{c}"));
        let mut out = vec![(
            format!("{embed}.weight"),
            ParamTensor::Matrix(self.embed_tokens.val()),
        )];
        for (index, layer) in self.layers.iter().enumerate() {
            layer.push_parameters(&Self::layer_name(index), &mut out);
        }
        self.norm.push_parameters(&norm, &mut out);
        if let Some(head) = &self.lm_head {
            head.push_parameters(LM_HEAD, &mut out);
        }
        out
    }

    /// The Hugging Face name of decoder layer `index` (`model.layers.3`).
    pub fn layer_name(index: usize) -> String {
        format!("{DECODER}.{}.{index}", DECODER_CHILDREN[1])
    }

    /// Copies every parameter to host memory under its Hugging Face name: what
    /// `ponder_checkpoint::save_hf_dir` writes.
    ///
    /// # Errors
    ///
    /// [`ModelError::TensorRead`] when a tensor cannot be read back from the device.
    pub fn to_weights(&self) -> Result<Weights, ModelError> {
        let mut weights = Weights::new();
        for (name, tensor) in self.hf_parameters() {
            weights.insert(name, tensor.to_host()?);
        }
        Ok(weights)
    }

    /// Full-sequence forward without a cache: logits `[batch, len, vocab]` for every cell of
    /// `batch` (padding cells give meaningless logits). Differentiable on autodiff devices.
    pub fn forward(&self, batch: &TokenBatch) -> Result<Tensor<3>, ModelError> {
        let hidden = self.hidden_states(batch, None)?;
        Ok(self.logits(hidden))
    }

    /// Final hidden states `[batch, len, hidden]` (after the last norm) without a cache.
    pub fn forward_hidden(&self, batch: &TokenBatch) -> Result<Tensor<3>, ModelError> {
        self.hidden_states(batch, None)
    }

    /// Forward of new tokens after those already in `cache`: `batch` holds the new columns
    /// (`batch.batch` must equal the cache's rows). Their keys and values are written to the
    /// cache. Returns logits `[batch, len, vocab]`, or `[batch, 1, vocab]` for the last column
    /// only when `last_only` (what generation needs).
    pub fn forward_cached(
        &self,
        batch: &TokenBatch,
        cache: &mut KvCache,
        last_only: bool,
    ) -> Result<Tensor<3>, ModelError> {
        let hidden = self.hidden_states(batch, Some(cache))?;
        let hidden = if last_only {
            let len = hidden.dims()[1];
            hidden.narrow(1, len - 1, 1)
        } else {
            hidden
        };
        Ok(self.logits(hidden))
    }

    /// Output head over hidden states `[batch, len, hidden]` → logits `[batch, len, vocab]`.
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        let [batch, len, width] = hidden.dims();
        let flat = hidden.reshape([batch * len, width]);
        let logits = self.head_logits(flat);
        logits.reshape([batch, len, self.config.vocab_size])
    }

    /// Output head over flat hidden states `[rows, hidden]` → logits `[rows, vocab]`.
    pub fn head_logits(&self, hidden: Tensor<2>) -> Tensor<2> {
        match &self.lm_head {
            Some(head) => head.forward(hidden),
            None => fused::linear(hidden, self.embed_tokens.val(), None),
        }
    }

    fn hidden_states(
        &self,
        batch: &TokenBatch,
        mut cache: Option<&mut KvCache>,
    ) -> Result<Tensor<3>, ModelError> {
        batch.validate(self.config.vocab_size)?;
        let device = self.device();
        let (rows, new_len) = (batch.batch, batch.len);
        let start = match cache.as_deref_mut() {
            Some(cache) => {
                cache.prepare_append(rows, new_len, &batch.valid)?;
                cache.len()
            }
            None => 0,
        };
        let (key_len, key_valid): (usize, &[bool]) = match cache.as_deref() {
            Some(cache) => (cache.capacity(), cache.valid()),
            None => (new_len, &batch.valid),
        };
        let mut mask = vec![true; rows * new_len * key_len];
        for row in 0..rows {
            for query in 0..new_len {
                let query_column = start + query;
                let cells = &mut mask[(row * new_len + query) * key_len..][..key_len];
                for (column, cell) in cells.iter_mut().enumerate().take(query_column + 1) {
                    // A padding query sees itself only, so that no row is fully masked.
                    *cell = !(key_valid[row * key_len + column] || column == query_column);
                }
            }
        }
        let mask = AttentionMask::new(mask, [rows, new_len, key_len], &device);
        let head_dim = self.config.head_dim;
        let (cos, sin) = self.rope.tables(&batch.positions);
        let rotary = RotaryTables::new(cos, sin, [rows, new_len, head_dim], &device);
        let context = AttentionContext {
            rows,
            new_len,
            start,
            heads: self.config.num_attention_heads,
            kv_heads: self.config.num_key_value_heads,
            head_dim,
            mask,
            rotary,
        };

        let token_ids: Vec<i64> = batch.tokens.iter().map(|&t| t as i64).collect();
        let tokens =
            Tensor::<2, Int>::from_data(TensorData::new(token_ids, [rows, new_len]), &device);
        let hidden = self.embed(tokens, &batch.tokens, [rows, new_len]);
        let mut hidden = hidden.reshape([rows * new_len, self.config.hidden_size]);
        for (index, layer) in self.layers.iter().enumerate() {
            let layer_cache = cache.as_deref_mut().map(|cache| LayerCache {
                cache,
                layer: index,
            });
            hidden = layer.forward(hidden, &context, layer_cache);
        }
        if let Some(cache) = cache {
            cache.commit_append(new_len);
        }
        let hidden = self.norm.forward(hidden);
        Ok(hidden.reshape([rows, new_len, self.config.hidden_size]))
    }

    /// Embedding lookup `[rows, len] -> [rows, len, hidden]` with transformers' `padding_idx`
    /// semantics: under autodiff, lookups of the padding token contribute no gradient to its
    /// embedding row (a tied output head still does, as in PyTorch).
    fn embed(&self, tokens: Tensor<2, Int>, ids: &[u32], [rows, len]: [usize; 2]) -> Tensor<3> {
        let hidden = embedding(self.embed_tokens.val(), tokens);
        let Some(pad) = self.config.pad_token_id else {
            return hidden;
        };
        if !hidden.device().is_autodiff() || !ids.contains(&pad) {
            return hidden;
        }
        let is_pad: Vec<bool> = ids.iter().map(|&id| id == pad).collect();
        let mask =
            Tensor::<3, Bool>::from_data(TensorData::new(is_pad, [rows, len, 1]), &hidden.device())
                .expand([rows, len, self.config.hidden_size]);
        hidden.clone().mask_where(mask, hidden.detach())
    }
}

fn check_shape(name: &str, tensor: &HostTensor, expected: &[usize]) -> Result<(), ModelError> {
    if tensor.shape != expected {
        return Err(ModelError::WeightShape {
            name: name.to_string(),
            found: tensor.shape.clone(),
            expected: expected.to_vec(),
        });
    }
    Ok(())
}

/// The checkpoint crate's limits and ranges, checked again here because a `ModelConfig` can be
/// built by hand: every size the model allocates by is bounded and no shape product overflows.
fn validate_config(config: &ModelConfig) -> Result<(), ModelError> {
    Ok(config.validate()?)
}
