//! Generation on the CPU without burn's per-operation overhead.
//!
//! Decoding runs a few dozen rows through every weight matrix per step; as a graph of eager
//! burn operations that spends most of its time outside arithmetic (operand packing in the
//! general gemm, an allocation per op, attention over the whole preallocated cache). This
//! engine is the same decoder as [`CausalLm`]'s forward written directly over the model's own
//! f32 weight buffers — borrowed from burn's flex tensors — and a copy of each projection
//! packed for the kernels in [`kernels`] (memory traded for decode speed: one more f32 copy of
//! the projections while the engine lives), with a flat key/value cache that attention reads
//! only up to the columns written.
//!
//! It serves the sampler on the plain (non-autodiff) flex device; everything else (training,
//! GPU devices) uses [`CausalLm`] itself. Its logits are checked against the burn forward and
//! the Hugging Face reference in the tests.

mod cache;
pub mod kernels;

use burn::backend::Flex;
use burn::tensor::Tensor;
use burn_flex::FlexTensor;
use ponder_checkpoint::ModelConfig;
use rayon::prelude::*;

pub use cache::CpuKvCache;

use crate::ModelError;
use crate::batch::TokenBatch;
use crate::device::is_plain_flex;
use crate::fused::kernels::{dot, rms_norm, swiglu};
use crate::model::{CausalLm, HfLinear};
use crate::rope::Rope;
use kernels::{PackedMatrix, apply_rope, matmul_packed};

/// A weight tensor's f32 buffer, shared with the burn tensor it came from.
struct Buffer {
    tensor: FlexTensor,
}

impl Buffer {
    fn of<const D: usize>(tensor: Tensor<D>) -> Option<Buffer> {
        let tensor = tensor.try_into_primitive::<Flex>().ok()?;
        tensor.as_slice::<f32>()?;
        Some(Buffer { tensor })
    }

    fn data(&self) -> &[f32] {
        // Checked contiguous f32 at construction; the buffer never changes afterwards.
        self.tensor.as_slice::<f32>().unwrap_or(&[])
    }
}

/// A projection: its weights as burn holds them and packed for [`matmul_packed`] (a copy:
/// the kernel's layout is not burn's).
struct Linear {
    weight: Buffer,
    packed: PackedMatrix,
    bias: Option<Buffer>,
}

impl Linear {
    fn of(layer: &HfLinear) -> Option<Linear> {
        // Adapters stay on the burn path (training-time models; saved models are merged).
        if layer.lora.is_some() {
            return None;
        }
        let [out_features, in_features] = layer.weight.val().dims();
        let bias = match &layer.bias {
            Some(bias) => Some(Buffer::of(bias.val())?),
            None => None,
        };
        Some(Linear::new(
            Buffer::of(layer.weight.val())?,
            bias,
            [out_features, in_features],
        ))
    }

    fn new(
        weight: Buffer,
        bias: Option<Buffer>,
        [out_features, in_features]: [usize; 2],
    ) -> Linear {
        let packed = PackedMatrix::pack(weight.data(), out_features, in_features);
        Linear {
            weight,
            packed,
            bias,
        }
    }

    /// `out[rows, out_features] = x[rows, in_features] · Wᵀ + b`.
    fn apply(&self, x: &[f32], rows: usize, out: &mut Vec<f32>) {
        out.resize(rows * self.packed.rows(), 0.0);
        matmul_packed(
            x,
            self.weight.data(),
            &self.packed,
            self.bias.as_ref().map(Buffer::data),
            out,
            rows,
        );
    }
}

struct Layer {
    input_norm: Buffer,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    post_norm: Buffer,
    gate: Linear,
    up: Linear,
    down: Linear,
}

/// The decoder over borrowed weight buffers; build it with [`CpuEngine::new`].
pub struct CpuEngine {
    config: ModelConfig,
    rope: Rope,
    embed: Buffer,
    layers: Vec<Layer>,
    norm: Buffer,
    /// The output head (packed from the embeddings when the model ties them).
    head: Linear,
}

/// Scratch buffers reused across the layers of one forward.
#[derive(Default)]
struct Scratch {
    normed: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    attended: Vec<f32>,
    projected: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    activated: Vec<f32>,
}

impl CpuEngine {
    /// The engine over `model`'s weights, or `None` where it does not apply: a device other
    /// than the plain flex CPU, weights that are not contiguous f32, or LoRA adapters.
    pub fn new(model: &CausalLm) -> Option<CpuEngine> {
        if !is_plain_flex(&model.device()) {
            return None;
        }
        let layers = model
            .layers
            .iter()
            .map(|layer| {
                Some(Layer {
                    input_norm: Buffer::of(layer.input_layernorm.weight.val())?,
                    q: Linear::of(&layer.self_attn.q_proj)?,
                    k: Linear::of(&layer.self_attn.k_proj)?,
                    v: Linear::of(&layer.self_attn.v_proj)?,
                    o: Linear::of(&layer.self_attn.o_proj)?,
                    post_norm: Buffer::of(layer.post_attention_layernorm.weight.val())?,
                    gate: Linear::of(&layer.mlp.gate_proj)?,
                    up: Linear::of(&layer.mlp.up_proj)?,
                    down: Linear::of(&layer.mlp.down_proj)?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let config = model.config().clone();
        let embed = Buffer::of(model.embed_tokens.val())?;
        let head = match &model.lm_head {
            Some(head) => Linear::of(head)?,
            None => Linear::new(
                Buffer::of(model.embed_tokens.val())?,
                None,
                [config.vocab_size, config.hidden_size],
            ),
        };
        Some(CpuEngine {
            config,
            rope: model.rope().clone(),
            embed,
            layers,
            norm: Buffer::of(model.norm.weight.val())?,
            head,
        })
    }

    /// The model configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// An empty cache for `rows` sequences of up to `capacity` tokens.
    pub fn new_cache(&self, rows: usize, capacity: usize) -> CpuKvCache {
        CpuKvCache::new(&self.config, rows, capacity)
    }

    /// Forward of the new columns in `batch` after those already in `cache` (whose rows must
    /// equal `batch.batch`); their keys and values are appended to the cache. Returns the
    /// logits of each row's last column, `[rows, vocab]`.
    ///
    /// # Errors
    ///
    /// [`ModelError::InvalidRequest`] when the batch does not fit the cache or a token is outside
    /// the vocabulary.
    pub fn forward_last(
        &self,
        batch: &TokenBatch,
        cache: &mut CpuKvCache,
    ) -> Result<Vec<f32>, ModelError> {
        let config = &self.config;
        batch.validate(config.vocab_size)?;
        let (rows, new_len, width) = (batch.batch, batch.len, config.hidden_size);
        let start = cache.prepare_append(rows, new_len, &batch.valid)?;
        let tokens = rows * new_len;
        let embed = self.embed.data();
        let mut hidden = vec![0f32; tokens * width];
        for (slot, &token) in hidden.chunks_exact_mut(width).zip(&batch.tokens) {
            slot.copy_from_slice(&embed[token as usize * width..][..width]);
        }
        let (cos, sin) = self.rope.tables(&batch.positions);
        let mut scratch = Scratch::default();
        for (index, layer) in self.layers.iter().enumerate() {
            self.layer_forward(
                layer,
                index,
                &mut hidden,
                batch,
                start,
                &cos,
                &sin,
                cache,
                &mut scratch,
            );
        }
        cache.commit_append(new_len);

        // Final norm and head on each row's last column only.
        let mut last = vec![0f32; rows * width];
        for (row, slot) in last.chunks_exact_mut(width).enumerate() {
            slot.copy_from_slice(&hidden[((row + 1) * new_len - 1) * width..][..width]);
        }
        let mut normed = vec![0f32; rows * width];
        rms_norm(
            &last,
            self.norm.data(),
            config.rms_norm_eps as f32,
            &mut normed,
        );
        let mut logits = Vec::new();
        self.head.apply(&normed, rows, &mut logits);
        Ok(logits)
    }

    #[allow(clippy::too_many_arguments)]
    fn layer_forward(
        &self,
        layer: &Layer,
        index: usize,
        hidden: &mut [f32],
        batch: &TokenBatch,
        start: usize,
        cos: &[f32],
        sin: &[f32],
        cache: &mut CpuKvCache,
        s: &mut Scratch,
    ) {
        let config = &self.config;
        let (rows, new_len) = (batch.batch, batch.len);
        let tokens = rows * new_len;
        let (heads, kv_heads, head_dim) = (
            config.num_attention_heads,
            config.num_key_value_heads,
            config.head_dim,
        );
        let eps = config.rms_norm_eps as f32;
        s.normed.resize(hidden.len(), 0.0);
        rms_norm(hidden, layer.input_norm.data(), eps, &mut s.normed);
        layer.q.apply(&s.normed, tokens, &mut s.q);
        layer.k.apply(&s.normed, tokens, &mut s.k);
        layer.v.apply(&s.normed, tokens, &mut s.v);
        apply_rope(&mut s.q, heads, head_dim, cos, sin);
        apply_rope(&mut s.k, kv_heads, head_dim, cos, sin);
        cache.write(index, start, new_len, &s.k, &s.v);

        s.attended.resize(tokens * heads * head_dim, 0.0);
        let view = cache.layer(index);
        let groups = heads / kv_heads;
        let scale = 1.0 / (head_dim as f32).sqrt();
        let q = &s.q;
        // One task per row: its queries attend to its own cache columns.
        s.attended
            .par_chunks_mut(new_len * heads * head_dim)
            .enumerate()
            .for_each(|(row, out)| {
                let mut scores = Vec::with_capacity(start + new_len);
                for query in 0..new_len {
                    let column = start + query;
                    for head in 0..heads {
                        let kv_head = head / groups;
                        let qv =
                            &q[((row * new_len + query) * heads + head) * head_dim..][..head_dim];
                        scores.clear();
                        let mut max = f32::NEG_INFINITY;
                        for c in 0..=column {
                            // Padding columns are skipped; a padding query sees itself only.
                            let score = if view.valid(row, c) || c == column {
                                dot(qv, view.key(row, kv_head, c)) * scale
                            } else {
                                f32::NEG_INFINITY
                            };
                            max = max.max(score);
                            scores.push(score);
                        }
                        let mut total = 0.0;
                        for score in scores.iter_mut() {
                            *score = (*score - max).exp();
                            total += *score;
                        }
                        let slot = &mut out[(query * heads + head) * head_dim..][..head_dim];
                        slot.fill(0.0);
                        for (c, &p) in scores.iter().enumerate() {
                            if p == 0.0 {
                                continue;
                            }
                            let weight = p / total;
                            for (o, &v) in slot.iter_mut().zip(view.value(row, kv_head, c)) {
                                *o += weight * v;
                            }
                        }
                    }
                }
            });
        layer.o.apply(&s.attended, tokens, &mut s.projected);
        for (h, &p) in hidden.iter_mut().zip(&s.projected) {
            *h += p;
        }

        rms_norm(hidden, layer.post_norm.data(), eps, &mut s.normed);
        layer.gate.apply(&s.normed, tokens, &mut s.gate);
        layer.up.apply(&s.normed, tokens, &mut s.up);
        s.activated.resize(s.gate.len(), 0.0);
        swiglu(&s.gate, &s.up, &mut s.activated);
        layer.down.apply(&s.activated, tokens, &mut s.projected);
        for (h, &p) in hidden.iter_mut().zip(&s.projected) {
            *h += p;
        }
    }
}
