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
use crate::fused::kernels::{
    dot, log_softmax_at, rms_norm, softmax_row, softmax_rows, swiglu, vectorised,
};
use crate::model::{CausalLm, HfLinear};
use crate::rope::Rope;
use crate::scoring::ScoringBatch;
use cache::LayerView;
use kernels::{Accumulate, PackedMatrix, Strides, apply_rope, gemm_product, matmul};

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

/// A projection: its weights as burn holds them and, for decoding, packed for [`matmul`] (a
/// copy: the kernel's layout is not burn's).
struct Linear {
    weight: Buffer,
    packed: Option<PackedMatrix>,
    bias: Option<Buffer>,
    out_features: usize,
    in_features: usize,
}

impl Linear {
    fn of(layer: &HfLinear, pack: bool) -> Option<Linear> {
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
            pack,
        ))
    }

    fn new(
        weight: Buffer,
        bias: Option<Buffer>,
        [out_features, in_features]: [usize; 2],
        pack: bool,
    ) -> Linear {
        let packed = pack.then(|| PackedMatrix::pack(weight.data(), out_features, in_features));
        Linear {
            weight,
            packed,
            bias,
            out_features,
            in_features,
        }
    }

    /// `out[rows, out_features] = x[rows, in_features] · Wᵀ + b`.
    fn apply(&self, x: &[f32], rows: usize, out: &mut Vec<f32>) {
        out.resize(rows * self.out_features, 0.0);
        matmul(
            x,
            self.weight.data(),
            self.packed.as_ref(),
            self.bias.as_ref().map(Buffer::data),
            out,
            [rows, self.out_features, self.in_features],
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
    /// The engine over `model`'s weights for decoding (projections packed: see the module
    /// documentation), or `None` where it does not apply: a device other than the plain flex
    /// CPU, weights that are not contiguous f32, or LoRA adapters.
    pub fn new(model: &CausalLm) -> Option<CpuEngine> {
        CpuEngine::build(model, true)
    }

    /// The engine for one forward over many rows ([`CpuEngine::target_logprobs`]): nothing is
    /// packed or copied, every product runs on the `gemm` crate. `None` as for
    /// [`CpuEngine::new`].
    pub fn single_pass(model: &CausalLm) -> Option<CpuEngine> {
        CpuEngine::build(model, false)
    }

    fn build(model: &CausalLm, pack: bool) -> Option<CpuEngine> {
        if !is_plain_flex(&model.device()) {
            return None;
        }
        let layers = model
            .layers
            .iter()
            .map(|layer| {
                Some(Layer {
                    input_norm: Buffer::of(layer.input_layernorm.weight.val())?,
                    q: Linear::of(&layer.self_attn.q_proj, pack)?,
                    k: Linear::of(&layer.self_attn.k_proj, pack)?,
                    v: Linear::of(&layer.self_attn.v_proj, pack)?,
                    o: Linear::of(&layer.self_attn.o_proj, pack)?,
                    post_norm: Buffer::of(layer.post_attention_layernorm.weight.val())?,
                    gate: Linear::of(&layer.mlp.gate_proj, pack)?,
                    up: Linear::of(&layer.mlp.up_proj, pack)?,
                    down: Linear::of(&layer.mlp.down_proj, pack)?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let config = model.config().clone();
        let embed = Buffer::of(model.embed_tokens.val())?;
        let head = match &model.lm_head {
            Some(head) => Linear::of(head, pack)?,
            None => Linear::new(
                Buffer::of(model.embed_tokens.val())?,
                None,
                [config.vocab_size, config.hidden_size],
                pack,
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
        let (rows, new_len, width) = (batch.batch, batch.len, self.config.hidden_size);
        let hidden = self.forward_hidden(batch, cache)?;
        // Final norm and head on each row's last column only.
        let cells: Vec<usize> = (0..rows).map(|row| (row + 1) * new_len - 1).collect();
        let mut last = vec![0f32; rows * width];
        for (slot, &cell) in last.chunks_exact_mut(width).zip(&cells) {
            slot.copy_from_slice(&hidden[cell * width..][..width]);
        }
        Ok(self.head_logits(&last, rows))
    }

    /// Log-probability of every scored token of `scoring`, as [`CausalLm::target_logprobs`]
    /// computes it: one forward of the whole batch, the output head on the scored cells only
    /// (a few hundred at a time, so the logits stay small), the log-softmax at the targets.
    ///
    /// # Errors
    ///
    /// [`ModelError::InvalidRequest`] when a token is outside the vocabulary.
    pub fn target_logprobs(&self, scoring: &ScoringBatch) -> Result<Vec<f32>, ModelError> {
        const CELLS_PER_HEAD_PASS: usize = 256;
        let tokens = &scoring.tokens;
        let (width, vocab) = (self.config.hidden_size, self.config.vocab_size);
        if let Some(&target) = scoring.targets.iter().find(|&&t| t as usize >= vocab) {
            return Err(ModelError::InvalidRequest(format!(
                "target token {target} is outside the vocabulary of {vocab}"
            )));
        }
        let mut cache = self.new_cache(tokens.batch, tokens.len);
        let hidden = self.forward_hidden(tokens, &mut cache)?;
        drop(cache);
        let mut out = vec![0f32; scoring.targets.len()];
        let mut gathered = Vec::new();
        let mut log_sums = Vec::new();
        for ((cells, targets), out) in scoring
            .predict_at
            .chunks(CELLS_PER_HEAD_PASS)
            .zip(scoring.targets.chunks(CELLS_PER_HEAD_PASS))
            .zip(out.chunks_mut(CELLS_PER_HEAD_PASS))
        {
            gathered.clear();
            for &cell in cells {
                gathered.extend_from_slice(&hidden[cell * width..][..width]);
            }
            let logits = self.head_logits(&gathered, cells.len());
            let targets: Vec<usize> = targets.iter().map(|&t| t as usize).collect();
            log_sums.resize(cells.len(), 0.0);
            log_softmax_at(&logits, vocab, &targets, out, &mut log_sums);
        }
        Ok(out)
    }

    /// The final norm and the output head over `rows` hidden states, `[rows, vocab]`.
    fn head_logits(&self, hidden: &[f32], rows: usize) -> Vec<f32> {
        let mut normed = vec![0f32; hidden.len()];
        rms_norm(
            hidden,
            self.norm.data(),
            self.config.rms_norm_eps as f32,
            &mut normed,
        );
        let mut logits = Vec::new();
        self.head.apply(&normed, rows, &mut logits);
        logits
    }

    /// The decoder layers over the new columns in `batch` after those already in `cache`
    /// (whose keys and values are appended); returns every new cell's hidden state before the
    /// final norm, `[rows * new_len, hidden]`.
    fn forward_hidden(
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
        Ok(hidden)
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
        let shape = AttentionShape {
            heads,
            kv_heads,
            head_dim,
            start,
            new_len,
        };
        let q = &s.q;
        // One task per row: its queries attend to its own cache columns.
        s.attended
            .par_chunks_mut(new_len * heads * head_dim)
            .enumerate()
            .for_each(|(row, out)| {
                let queries = &q[row * new_len * heads * head_dim..][..new_len * heads * head_dim];
                if new_len == 1 {
                    attend_one(&view, row, queries, out, &shape);
                } else {
                    attend_block(&view, row, queries, out, &shape);
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

/// The attention sizes of one layer's forward.
struct AttentionShape {
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    /// Cache columns before this forward's.
    start: usize,
    /// Columns this forward adds.
    new_len: usize,
}

impl AttentionShape {
    fn scale(&self) -> f32 {
        1.0 / (self.head_dim as f32).sqrt()
    }
}

vectorised! {
    /// Attention of one row's single new query per head (decoding): per key/value head, the
    /// scores of its query heads against every cache column (each key read once per group),
    /// a softmax per head, and the probability-weighted sum of the values.
    fn attend_one(
        view: &LayerView<'_>,
        row: usize,
        queries: &[f32],
        out: &mut [f32],
        shape: &AttentionShape,
    ) {
        let (head_dim, column) = (shape.head_dim, shape.start);
        let groups = shape.heads / shape.kv_heads;
        let columns = column + 1;
        let scale = shape.scale();
        let mut scores = vec![0f32; groups * columns];
        for kv_head in 0..shape.kv_heads {
            let first_head = kv_head * groups;
            let group_queries = &queries[first_head * head_dim..][..groups * head_dim];
            let keys = view.keys(row, kv_head, columns);
            for (c, key) in keys.chunks_exact(head_dim).enumerate() {
                // Padding columns are hidden; a padding query sees itself only.
                let visible = view.valid(row, c) || c == column;
                for (query, head_scores) in group_queries
                    .chunks_exact(head_dim)
                    .zip(scores.chunks_exact_mut(columns))
                {
                    head_scores[c] = if visible {
                        dot(query, key) * scale
                    } else {
                        f32::NEG_INFINITY
                    };
                }
            }
            let values = view.values(row, kv_head, columns);
            let slots = &mut out[first_head * head_dim..][..groups * head_dim];
            for (slot, head_scores) in slots
                .chunks_exact_mut(head_dim)
                .zip(scores.chunks_exact_mut(columns))
            {
                softmax_row(head_scores);
                slot.fill(0.0);
                for (value, &p) in values.chunks_exact(head_dim).zip(head_scores.iter()) {
                    if p == 0.0 {
                        continue;
                    }
                    for (o, &v) in slot.iter_mut().zip(value) {
                        *o += p * v;
                    }
                }
            }
        }
    }
}

/// Attention of one row's many new queries (prefill, scoring): per head, the scores of every
/// query against every column as one product, the causal and padding mask, a softmax per
/// query, and the values as a second product.
fn attend_block(
    view: &LayerView<'_>,
    row: usize,
    queries: &[f32],
    out: &mut [f32],
    shape: &AttentionShape,
) {
    let (heads, head_dim, start, new_len) =
        (shape.heads, shape.head_dim, shape.start, shape.new_len);
    let groups = heads / shape.kv_heads;
    let columns = start + new_len;
    let token_stride = Strides {
        row: heads * head_dim,
        col: 1,
    };
    let mut scores = vec![0f32; new_len * columns];
    for head in 0..heads {
        let kv_head = head / groups;
        // scores[q, c] = scale · queries[q, head] · keys[c]
        gemm_product(
            (&queries[head * head_dim..], token_stride),
            (
                view.keys(row, kv_head, columns),
                Strides {
                    row: 1,
                    col: head_dim,
                },
            ),
            (
                &mut scores,
                Strides {
                    row: columns,
                    col: 1,
                },
            ),
            [new_len, columns, head_dim],
            Accumulate::Overwrite(shape.scale()),
            1,
        );
        for (query, query_scores) in scores.chunks_exact_mut(columns).enumerate() {
            let column = start + query;
            for (c, score) in query_scores.iter_mut().enumerate() {
                // Later columns are masked (causal), padding columns too; a padding query
                // sees itself only.
                if c > column || (c != column && !view.valid(row, c)) {
                    *score = f32::NEG_INFINITY;
                }
            }
        }
        softmax_rows(&mut scores, columns);
        // out[q, head] = Σ_c scores[q, c] · values[c]
        gemm_product(
            (
                &scores,
                Strides {
                    row: columns,
                    col: 1,
                },
            ),
            (
                view.values(row, kv_head, columns),
                Strides {
                    row: head_dim,
                    col: 1,
                },
            ),
            (&mut out[head * head_dim..], token_stride),
            [new_len, head_dim, columns],
            Accumulate::Overwrite(1.0),
            1,
        );
    }
}
