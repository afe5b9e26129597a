//! Fused operations with hand-written gradients: linear layers, grouped-query attention,
//! SwiGLU, RMSNorm, softmax and log-softmax-at-target.
//!
//! Composed from burn's primitives, each of these is five to ten passes over memory, one
//! backward node per pass, and on the flex backend every elementwise pass runs on one thread
//! with a scalar `exp` while the gemm workers wait; in a DPO step that was about 40% of the
//! wall time. Here each is one forward pass and one backward pass of the vectorised, row-parallel
//! [`kernels`], registered with burn's autodiff graph as a single compute-bound node (its output
//! is kept rather than recomputed under gradient checkpointing).
//!
//! The fused path serves the flex backend, with and without autodiff (either checkpointing
//! strategy). On any other backend (wgpu, CUDA) or dtype, each function falls back to the same
//! formula composed from burn operations; the tests check that both agree, gradients included.

pub mod kernels;

pub use kernels::AdamWStep;

use crate::cpu_engine::kernels::{Accumulate, Strides, gemm_product};
use kernels::{row_major, transposed};

use std::sync::Arc;

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{
    BalancedCheckpointing, CheckpointStrategy, NoCheckpointing,
};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, DispatchKindConversion, DispatchTensor, Flex, TensorMetadata};
use burn::tensor::activation::{log_softmax, silu, softmax as composed_softmax};
use burn::tensor::module::linear as module_linear;
use burn::tensor::{
    Bool, DType, Device, GradientCheckpointingStrategy, Int, Shape, Tensor, TensorData,
};
use burn_flex::FlexTensor;

/// `silu(gate) · up` (the SwiGLU feed-forward activation), `[rows, width]` each.
pub fn swiglu(gate: Tensor<2>, up: Tensor<2>) -> Tensor<2> {
    match route(&[&gate, &up]) {
        Route::Plain => match (plain(&gate), plain(&up)) {
            (Some(gate), Some(up)) => Tensor::from_primitive::<Flex>(swiglu_values(&gate, &up)),
            _ => composed_swiglu(gate, up),
        },
        Route::Tracked(GradientCheckpointingStrategy::Disabled) => {
            tracked_binary::<NoCheckpointing, 2, 2>(&gate, &up, swiglu_tracked::<NoCheckpointing>)
                .unwrap_or_else(|| composed_swiglu(gate, up))
        }
        Route::Tracked(GradientCheckpointingStrategy::Balanced) => {
            tracked_binary::<BalancedCheckpointing, 2, 2>(
                &gate,
                &up,
                swiglu_tracked::<BalancedCheckpointing>,
            )
            .unwrap_or_else(|| composed_swiglu(gate, up))
        }
        Route::Composed => composed_swiglu(gate, up),
    }
}

/// RMSNorm of each row of `x` (`[rows, width]`): `x / sqrt(mean(x²) + eps) · weight`.
pub fn rms_norm(x: Tensor<2>, weight: Tensor<1>, eps: f64) -> Tensor<2> {
    let with_eps = |x: FloatTensor<Flex>, weight: FloatTensor<Flex>| -> FloatTensor<Flex> {
        rms_norm_values(&x, &weight, eps as f32)
    };
    match route(&[&x]) {
        Route::Plain => match (plain(&x), plain(&weight)) {
            (Some(x), Some(weight)) => Tensor::from_primitive::<Flex>(with_eps(x, weight)),
            _ => composed_rms_norm(x, weight, eps),
        },
        Route::Tracked(GradientCheckpointingStrategy::Disabled) => {
            tracked_binary::<NoCheckpointing, 2, 1>(&x, &weight, |x, w| {
                rms_norm_tracked::<NoCheckpointing>(x, w, eps as f32)
            })
            .unwrap_or_else(|| composed_rms_norm(x, weight, eps))
        }
        Route::Tracked(GradientCheckpointingStrategy::Balanced) => {
            tracked_binary::<BalancedCheckpointing, 2, 1>(&x, &weight, |x, w| {
                rms_norm_tracked::<BalancedCheckpointing>(x, w, eps as f32)
            })
            .unwrap_or_else(|| composed_rms_norm(x, weight, eps))
        }
        Route::Composed => composed_rms_norm(x, weight, eps),
    }
}

/// An attention mask `[batch, 1, queries, keys]` (true where a query may not see a key), held
/// both as a tensor (for the composed path) and on the host (for the kernel).
#[derive(Clone, Debug)]
pub struct AttentionMask {
    tensor: Tensor<4, Bool>,
    hidden: Arc<[bool]>,
    queries: usize,
}

impl AttentionMask {
    /// The mask from its host values, `[batch, queries, keys]` row-major.
    pub fn new(hidden: Vec<bool>, [batch, queries, keys]: [usize; 3], device: &Device) -> Self {
        let hidden: Arc<[bool]> = hidden.into();
        let tensor = Tensor::<4, Bool>::from_data(
            TensorData::new(hidden.to_vec(), [batch, 1, queries, keys]),
            device,
        );
        AttentionMask {
            tensor,
            hidden,
            queries,
        }
    }

    /// The mask as a `[batch, 1, queries, keys]` tensor.
    pub fn tensor(&self) -> Tensor<4, Bool> {
        self.tensor.clone()
    }
}

/// Attention probabilities: `softmax(scale · scores)` over the keys (last dimension), with the
/// keys `mask` hides at probability 0. `scores` is `[batch, heads, rows, keys]` where `rows`
/// stacks blocks of `mask`'s queries (grouped-query heads), so row `r` is query `r % queries`.
/// Every query must see at least one key (the composed path gives NaN otherwise).
pub fn masked_softmax(scores: Tensor<4>, mask: &AttentionMask, scale: f32) -> Tensor<4> {
    let [_, heads, rows, _] = scores.dims();
    let composed = |scores: Tensor<4>| composed_masked_softmax(scores, mask, scale);
    if rows % mask.queries != 0 || mask.hidden.len() != mask.tensor.shape().num_elements() {
        return composed(scores);
    }
    let key_mask = |mask: &AttentionMask| MaskOf {
        hidden: mask.hidden.clone(),
        queries: mask.queries,
        rows_per_batch: heads * rows,
    };
    match route(&[&scores]) {
        Route::Plain => match plain(&scores) {
            Some(x) => {
                Tensor::from_primitive::<Flex>(masked_softmax_values(&x, &key_mask(mask), scale))
            }
            None => composed(scores),
        },
        Route::Tracked(GradientCheckpointingStrategy::Disabled) => {
            tracked_unary::<NoCheckpointing, 4, 4>(&scores, |x| {
                masked_softmax_tracked::<NoCheckpointing>(x, &key_mask(mask), scale)
            })
            .unwrap_or_else(|| composed(scores))
        }
        Route::Tracked(GradientCheckpointingStrategy::Balanced) => {
            tracked_unary::<BalancedCheckpointing, 4, 4>(&scores, |x| {
                masked_softmax_tracked::<BalancedCheckpointing>(x, &key_mask(mask), scale)
            })
            .unwrap_or_else(|| composed(scores))
        }
        Route::Composed => composed(scores),
    }
}

/// A linear layer in Hugging Face's layout: `input · weightᵀ (+ bias)` for `input`
/// `[rows, in]` and `weight` `[out, in]`, `[rows, out]`.
///
/// On flex (with or without autodiff) the products are written straight into fresh buffers by
/// the `gemm` crate, the backward pass included (`d_input = grad · weight`, `d_weight = gradᵀ ·
/// input`, each only when its parent needs it): burn's matmul zero-fills then copies every
/// output buffer and materialises the transposed weight gradient, which cost about a tenth of
/// a DPO step.
pub fn linear(input: Tensor<2>, weight: Tensor<2>, bias: Option<Tensor<1>>) -> Tensor<2> {
    let [_, inputs] = input.dims();
    let [_, weight_inputs] = weight.dims();
    let composed = || module_linear(input.clone(), weight.clone().transpose(), bias.clone());
    if inputs != weight_inputs || inputs == 0 {
        return composed();
    }
    let product = match route(&[&input, &weight]) {
        Route::Plain => match (plain(&input), plain(&weight)) {
            (Some(x), Some(w)) => Tensor::from_primitive::<Flex>(linear_values(&x, &w)),
            _ => return composed(),
        },
        Route::Tracked(GradientCheckpointingStrategy::Disabled) => {
            match tracked_binary::<NoCheckpointing, 2, 2>(
                &input,
                &weight,
                linear_tracked::<NoCheckpointing>,
            ) {
                Some(product) => product,
                None => return composed(),
            }
        }
        Route::Tracked(GradientCheckpointingStrategy::Balanced) => {
            match tracked_binary::<BalancedCheckpointing, 2, 2>(
                &input,
                &weight,
                linear_tracked::<BalancedCheckpointing>,
            ) {
                Some(product) => product,
                None => return composed(),
            }
        }
        Route::Composed => return composed(),
    };
    match bias {
        Some(bias) => product + bias.unsqueeze_dim(0),
        None => product,
    }
}

/// A linear layer with a LoRA update, without bias: `input · weightᵀ + scale · (input · aᵀ) ·
/// bᵀ` for `weight` `[out, in]`, `a` `[rank, in]` and `b` `[out, rank]`, `[rows, out]`.
///
/// On flex this is one operation: the update is added into the product's buffer, so a layer
/// keeps one `[rows, out]` output for the backward pass instead of two (composed, the update's
/// product was kept beside the frozen weight's), and the thin `[rows, rank]` side is
/// recomputed in the backward pass. Gradients go only to the parents that need them (a frozen
/// weight gets none).
pub fn low_rank_linear(
    input: Tensor<2>,
    weight: Tensor<2>,
    a: Tensor<2>,
    b: Tensor<2>,
    scale: f32,
) -> Tensor<2> {
    let [_, inputs] = input.dims();
    let [outputs, weight_inputs] = weight.dims();
    let [rank, a_inputs] = a.dims();
    let composed = || {
        let down = module_linear(input.clone(), a.clone().transpose(), None).mul_scalar(scale);
        module_linear(input.clone(), weight.clone().transpose(), None)
            + module_linear(down, b.clone().transpose(), None)
    };
    if inputs == 0
        || rank == 0
        || [weight_inputs, a_inputs] != [inputs; 2]
        || b.dims() != [outputs, rank]
    {
        return composed();
    }
    match route(&[&input, &weight, &a, &b]) {
        Route::Plain => match (plain(&input), plain(&weight), plain(&a), plain(&b)) {
            (Some(x), Some(w), Some(a), Some(b)) => {
                Tensor::from_primitive::<Flex>(low_rank_linear_values(&x, &w, &a, &b, scale))
            }
            _ => composed(),
        },
        Route::Tracked(GradientCheckpointingStrategy::Disabled) => {
            low_rank_linear_tracked::<NoCheckpointing>([&input, &weight, &a, &b], scale)
                .unwrap_or_else(composed)
        }
        Route::Tracked(GradientCheckpointingStrategy::Balanced) => {
            low_rank_linear_tracked::<BalancedCheckpointing>([&input, &weight, &a, &b], scale)
                .unwrap_or_else(composed)
        }
        Route::Composed => composed(),
    }
}

/// Rotary position tables of a batch, `[batch, len, head_dim]`: `cos` and the signed `sin` of
/// `Rope::tables`, as tensors (composed path) and on the host (kernel).
#[derive(Clone, Debug)]
pub struct RotaryTables {
    cos: Tensor<4>,
    sin: Tensor<4>,
    host: Arc<(Vec<f32>, Vec<f32>)>,
    batch: usize,
    len: usize,
    head_dim: usize,
}

impl RotaryTables {
    /// The tables from their host values, each `[batch, len, head_dim]` row-major.
    pub fn new(
        cos: Vec<f32>,
        sin: Vec<f32>,
        [batch, len, head_dim]: [usize; 3],
        device: &Device,
    ) -> Self {
        let tensor = |values: &[f32]| {
            Tensor::<4>::from_data(
                TensorData::new(values.to_vec(), [batch, len, 1, head_dim]),
                device,
            )
        };
        RotaryTables {
            cos: tensor(&cos),
            sin: tensor(&sin),
            host: Arc::new((cos, sin)),
            batch,
            len,
            head_dim,
        }
    }
}

/// Rotary positions (transformers' `apply_rotary_pos_emb`) applied to `x` `[batch · len, heads
/// · head_dim]`, returned per head: `[batch, heads, len, head_dim]`.
///
/// On flex this is one pass each way (the rotation is linear, so the backward pass keeps
/// nothing but the tables); composed, it was two slices, a concatenation, two products, a sum
/// and a transposed copy per projection and layer.
pub fn rotate_heads(x: Tensor<2>, tables: &RotaryTables, heads: usize) -> Tensor<4> {
    let (batch, len, head_dim) = (tables.batch, tables.len, tables.head_dim);
    let composed = |x: Tensor<2>| composed_rotate_heads(x, tables, heads);
    let dims = kernels::RotaryDims {
        batch,
        len,
        heads,
        head_dim,
    };
    if x.dims() != [batch * len, heads * head_dim] || !head_dim.is_multiple_of(2) {
        return composed(x);
    }
    let tables_of = || tables.host.clone();
    match route(&[&x]) {
        Route::Plain => match plain(&x) {
            Some(values) => {
                Tensor::from_primitive::<Flex>(rotate_heads_values(&values, &tables.host, dims))
            }
            None => composed(x),
        },
        Route::Tracked(GradientCheckpointingStrategy::Disabled) => {
            tracked_unary::<NoCheckpointing, 2, 4>(&x, |x| {
                rotate_heads_tracked::<NoCheckpointing>(x, tables_of(), dims)
            })
            .unwrap_or_else(|| composed(x))
        }
        Route::Tracked(GradientCheckpointingStrategy::Balanced) => {
            tracked_unary::<BalancedCheckpointing, 2, 4>(&x, |x| {
                rotate_heads_tracked::<BalancedCheckpointing>(x, tables_of(), dims)
            })
            .unwrap_or_else(|| composed(x))
        }
        Route::Composed => composed(x),
    }
}

/// [`rotate_heads`] from burn operations (any backend).
fn composed_rotate_heads(x: Tensor<2>, tables: &RotaryTables, heads: usize) -> Tensor<4> {
    let (batch, len, head_dim) = (tables.batch, tables.len, tables.head_dim);
    let x = x.reshape([batch, len, heads, head_dim]);
    let half = head_dim / 2;
    let swapped = Tensor::cat(
        vec![
            x.clone().narrow(3, half, half),
            x.clone().narrow(3, 0, half),
        ],
        3,
    );
    let rotated = x * tables.cos.clone() + swapped * tables.sin.clone();
    rotated.swap_dims(1, 2)
}

/// Grouped-query attention: `softmax(scale · q kᵀ) · v` per head, with the keys `mask` hides at
/// probability 0. `query` is `[batch, heads, queries, head_dim]`, `key` and `value` are
/// `[batch, kv_heads, keys, head_dim]`; query head `h` reads key/value head
/// `h / (heads / kv_heads)`. Returns `[batch, heads, queries, head_dim]`.
///
/// On flex (with or without autodiff) this is one operation whose backward pass keeps only its
/// inputs and recomputes the probabilities block by block: composed from matmuls and
/// [`masked_softmax`], every layer kept its `[heads, queries, keys]` probabilities (about a
/// fifth of a DPO step's peak memory). Every query must see at least one key.
pub fn attention(
    query: Tensor<4>,
    key: Tensor<4>,
    value: Tensor<4>,
    mask: &AttentionMask,
    scale: f32,
) -> Tensor<4> {
    let [batch, heads, queries, head_dim] = query.dims();
    let [_, kv_heads, keys, _] = key.dims();
    let layout = kernels::AttentionLayout {
        batch,
        heads,
        kv_heads,
        queries,
        keys,
        head_dim,
        scale,
    };
    let fits = kv_heads > 0
        && heads.is_multiple_of(kv_heads)
        && key.dims() == [batch, kv_heads, keys, head_dim]
        && value.dims() == key.dims()
        && mask.queries == queries
        && mask.hidden.len() == batch * queries * keys
        && mask.tensor.dims() == [batch, 1, queries, keys];
    let composed = || composed_attention(query.clone(), key.clone(), value.clone(), mask, scale);
    if !fits {
        return composed();
    }
    let hidden = mask.hidden.clone();
    match route(&[&query, &key, &value]) {
        Route::Plain => match (plain(&query), plain(&key), plain(&value)) {
            (Some(q), Some(k), Some(v)) => {
                Tensor::from_primitive::<Flex>(attention_values(&q, &k, &v, &hidden, &layout))
            }
            _ => composed(),
        },
        Route::Tracked(GradientCheckpointingStrategy::Disabled) => {
            attention_tracked::<NoCheckpointing>(&query, &key, &value, hidden, layout)
                .unwrap_or_else(composed)
        }
        Route::Tracked(GradientCheckpointingStrategy::Balanced) => {
            attention_tracked::<BalancedCheckpointing>(&query, &key, &value, hidden, layout)
                .unwrap_or_else(composed)
        }
        Route::Composed => composed(),
    }
}

/// [`attention`] from differentiable primitives (any backend). The query heads of a key/value
/// group are stacked along the query axis, `[batch, kv_heads, groups * queries, head_dim]`, so
/// keys and values are used as they are instead of being repeated per query head.
fn composed_attention(
    query: Tensor<4>,
    key: Tensor<4>,
    value: Tensor<4>,
    mask: &AttentionMask,
    scale: f32,
) -> Tensor<4> {
    let [batch, heads, queries, head_dim] = query.dims();
    let kv_heads = key.dims()[1];
    let groups = heads / kv_heads.max(1);
    let query = query.reshape([batch, kv_heads, groups * queries, head_dim]);
    let scores = query.matmul(key.swap_dims(2, 3));
    masked_softmax(scores, mask, scale)
        .matmul(value)
        .reshape([batch, heads, queries, head_dim])
}

/// Log-probabilities of `targets[r]` under the softmax of each row of `logits`
/// (`[rows, vocab]`), `[rows]`: `log_softmax(logits)[r, targets[r]]` without materialising the
/// log-softmax. Every target must be below `vocab`.
pub fn log_softmax_at(logits: Tensor<2>, targets: &[usize]) -> Tensor<1> {
    let targets: Arc<[usize]> = targets.into();
    match route(&[&logits]) {
        Route::Plain => match plain(&logits) {
            Some(logits) => {
                Tensor::from_primitive::<Flex>(log_softmax_at_values(&logits, &targets).0)
            }
            None => composed_log_softmax_at(logits, &targets),
        },
        Route::Tracked(GradientCheckpointingStrategy::Disabled) => {
            tracked_unary::<NoCheckpointing, 2, 1>(&logits, |l| {
                log_softmax_at_tracked::<NoCheckpointing>(l, targets.clone())
            })
            .unwrap_or_else(|| composed_log_softmax_at(logits, &targets))
        }
        Route::Tracked(GradientCheckpointingStrategy::Balanced) => {
            tracked_unary::<BalancedCheckpointing, 2, 1>(&logits, |l| {
                log_softmax_at_tracked::<BalancedCheckpointing>(l, targets.clone())
            })
            .unwrap_or_else(|| composed_log_softmax_at(logits, &targets))
        }
        Route::Composed => composed_log_softmax_at(logits, &targets),
    }
}

/// One AdamW step (PyTorch's formula, coefficients in [`AdamWStep`]) on a flat parameter:
/// returns the updated `(param, exp_avg, exp_avg_sq)`. Missing moments start at zero. On the
/// plain flex device this is one in-place pass (buffers not shared elsewhere are reused);
/// elsewhere it is composed from burn operations.
pub fn adamw(
    step: AdamWStep,
    param: Tensor<1>,
    grad: Tensor<1>,
    moments: Option<(Tensor<1>, Tensor<1>)>,
) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
    let length = param.dims()[0];
    let (exp_avg, exp_avg_sq) = moments.unwrap_or_else(|| {
        let device = param.device();
        (
            Tensor::zeros([length], &device),
            Tensor::zeros([length], &device),
        )
    });
    let all_plain = [&param, &grad, &exp_avg, &exp_avg_sq]
        .iter()
        .all(|t| plain(t).is_some() && t.dims()[0] == length);
    if !all_plain {
        return composed_adamw(step, param, grad, exp_avg, exp_avg_sq);
    }
    // Checked just above: each converts, so nothing is lost on the way.
    let owned = |tensor: Tensor<1>| -> FlexTensor {
        let tensor = tensor
            .try_into_primitive::<Flex>()
            .unwrap_or_else(|_| FlexTensor::zeros(Shape::new([length]), DType::F32));
        match tensor.as_slice::<f32>() {
            Some(values) if values.len() == tensor.storage::<f32>().len() => tensor,
            _ => tensor.to_contiguous(),
        }
    };
    let grad = contiguous(
        &plain(&grad).unwrap_or_else(|| FlexTensor::zeros(Shape::new([length]), DType::F32)),
    );
    let (mut param, mut exp_avg, mut exp_avg_sq) =
        (owned(param), owned(exp_avg), owned(exp_avg_sq));
    kernels::adamw(
        step,
        values(&grad),
        param.storage_mut::<f32>(),
        exp_avg.storage_mut::<f32>(),
        exp_avg_sq.storage_mut::<f32>(),
    );
    (
        Tensor::from_primitive::<Flex>(param),
        Tensor::from_primitive::<Flex>(exp_avg),
        Tensor::from_primitive::<Flex>(exp_avg_sq),
    )
}

fn composed_adamw(
    step: AdamWStep,
    param: Tensor<1>,
    grad: Tensor<1>,
    exp_avg: Tensor<1>,
    exp_avg_sq: Tensor<1>,
) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
    let (beta1, beta2) = (f64::from(step.beta1), f64::from(step.beta2));
    let exp_avg = exp_avg.mul_scalar(beta1) + grad.clone().mul_scalar(1.0 - beta1);
    let exp_avg_sq = exp_avg_sq.mul_scalar(beta2) + grad.square().mul_scalar(1.0 - beta2);
    let denom = exp_avg_sq
        .clone()
        .sqrt()
        .div_scalar(step.bias2_sqrt)
        .add_scalar(step.eps);
    let update = exp_avg.clone().div(denom).mul_scalar(step.step_size);
    let param = param.mul_scalar(step.decay) - update;
    (param, exp_avg, exp_avg_sq)
}

fn composed_swiglu(gate: Tensor<2>, up: Tensor<2>) -> Tensor<2> {
    silu(gate) * up
}

fn composed_rms_norm(x: Tensor<2>, weight: Tensor<1>, eps: f64) -> Tensor<2> {
    let mean_square = x.clone().square().mean_dim(1);
    let normalised = x * mean_square.add_scalar(eps).sqrt().recip();
    normalised * weight.unsqueeze::<2>()
}

fn composed_masked_softmax(scores: Tensor<4>, mask: &AttentionMask, scale: f32) -> Tensor<4> {
    let [batch, heads, rows, keys] = scores.dims();
    let blocks = rows / mask.queries;
    // [batch, 1, queries, keys] → the same for every stacked query block and head
    let hidden = mask
        .tensor()
        .unsqueeze_dim::<5>(2)
        .expand([batch, 1, blocks, mask.queries, keys])
        .reshape([batch, 1, rows, keys])
        .expand([batch, heads, rows, keys]);
    composed_softmax(
        scores
            .mul_scalar(scale)
            .mask_fill(hidden, f32::NEG_INFINITY),
        3,
    )
}

fn composed_log_softmax_at(logits: Tensor<2>, targets: &[usize]) -> Tensor<1> {
    let device = logits.device();
    let rows = targets.len();
    let indices: Vec<i64> = targets.iter().map(|&t| t as i64).collect();
    let indices = Tensor::<2, Int>::from_data(TensorData::new(indices, [rows, 1]), &device);
    log_softmax(logits, 1).gather(1, indices).reshape([rows])
}

/// Where an operation on these tensors runs.
enum Route {
    /// Flex without autodiff: the kernels directly.
    Plain,
    /// Flex with autodiff: the kernels as one graph node with its own backward.
    Tracked(GradientCheckpointingStrategy),
    /// Anything else: burn's operations.
    Composed,
}

/// The route of the first tensor's autodiff context; [`plain`] and the `tracked_*` conversions
/// then check that every input is a flex f32 tensor of that context (else: composed).
fn route<const D: usize>(tensors: &[&Tensor<D>]) -> Route {
    let Some(first) = tensors.first() else {
        return Route::Composed;
    };
    if first.dtype() != DType::F32 {
        return Route::Composed;
    }
    match first.gradient_checkpointing_strategy() {
        None => Route::Plain,
        Some(strategy) => Route::Tracked(strategy),
    }
}

/// The f32 flex tensor behind a plain tensor, or `None` on another backend or dtype.
fn plain<const D: usize>(tensor: &Tensor<D>) -> Option<FlexTensor> {
    let primitive = tensor.clone().try_into_primitive::<Flex>().ok()?;
    (primitive.dtype() == DType::F32).then_some(primitive)
}

/// The autodiff-flex primitive behind a tracked tensor, or `None` on another backend or dtype.
fn tracked<C, const D: usize>(tensor: &Tensor<D>) -> Option<FloatTensor<Autodiff<Flex, C>>>
where
    C: CheckpointStrategy,
    DispatchTensor: DispatchKindConversion<Autodiff<Flex, C>>,
{
    let primitive = tensor
        .clone()
        .try_into_primitive::<Autodiff<Flex, C>>()
        .ok()?;
    (primitive.primitive().dtype() == DType::F32).then_some(primitive)
}

fn tracked_unary<C, const D: usize, const O: usize>(
    input: &Tensor<D>,
    op: impl FnOnce(FloatTensor<Autodiff<Flex, C>>) -> FloatTensor<Autodiff<Flex, C>>,
) -> Option<Tensor<O>>
where
    C: CheckpointStrategy,
    DispatchTensor: DispatchKindConversion<Autodiff<Flex, C>>,
{
    let input = tracked::<C, D>(input)?;
    Some(Tensor::from_primitive::<Autodiff<Flex, C>>(op(input)))
}

fn tracked_binary<C, const D: usize, const E: usize>(
    lhs: &Tensor<D>,
    rhs: &Tensor<E>,
    op: impl FnOnce(
        FloatTensor<Autodiff<Flex, C>>,
        FloatTensor<Autodiff<Flex, C>>,
    ) -> FloatTensor<Autodiff<Flex, C>>,
) -> Option<Tensor<D>>
where
    C: CheckpointStrategy,
    DispatchTensor: DispatchKindConversion<Autodiff<Flex, C>>,
{
    let lhs = tracked::<C, D>(lhs)?;
    let rhs = tracked::<C, E>(rhs)?;
    Some(Tensor::from_primitive::<Autodiff<Flex, C>>(op(lhs, rhs)))
}

/// The values of a flex tensor as one contiguous f32 slice (copying only strided views).
fn contiguous(tensor: &FlexTensor) -> FlexTensor {
    if tensor.as_slice::<f32>().is_some() {
        tensor.clone()
    } else {
        tensor.to_contiguous()
    }
}

/// Runs `fill` over a fresh f32 buffer of `shape` and wraps it as a flex tensor.
fn new_tensor(shape: Shape, fill: impl FnOnce(&mut [f32])) -> FlexTensor {
    let mut values = vec![0f32; shape.num_elements()];
    fill(&mut values);
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// Borrows a contiguous f32 tensor's values (see [`contiguous`]).
fn values(tensor: &FlexTensor) -> &[f32] {
    tensor.as_slice::<f32>().unwrap_or(&[])
}

fn swiglu_values(gate: &FlexTensor, up: &FlexTensor) -> FlexTensor {
    let (gate, up) = (contiguous(gate), contiguous(up));
    new_tensor(gate.shape(), |out| {
        kernels::swiglu(values(&gate), values(&up), out)
    })
}

fn rms_norm_values(x: &FlexTensor, weight: &FlexTensor, eps: f32) -> FlexTensor {
    let (x, weight) = (contiguous(x), contiguous(weight));
    new_tensor(x.shape(), |out| {
        kernels::rms_norm(values(&x), values(&weight), eps, out)
    })
}

/// An owned [`kernels::KeyMask`].
struct MaskOf {
    hidden: Arc<[bool]>,
    queries: usize,
    rows_per_batch: usize,
}

fn masked_softmax_values(x: &FlexTensor, mask: &MaskOf, scale: f32) -> FlexTensor {
    let x = contiguous(x);
    let keys = last_dim(&x);
    let mask = kernels::KeyMask {
        hidden: &mask.hidden,
        queries: mask.queries,
        rows_per_batch: mask.rows_per_batch,
    };
    new_tensor(x.shape(), |out| {
        kernels::masked_softmax(values(&x), keys, scale, mask, out)
    })
}

/// The log-probs `[rows]` and the log-sum-exp of every row.
fn log_softmax_at_values(logits: &FlexTensor, targets: &[usize]) -> (FlexTensor, Vec<f32>) {
    let logits = contiguous(logits);
    let width = last_dim(&logits);
    let mut log_sums = vec![0f32; targets.len()];
    let log_probs = new_tensor(Shape::new([targets.len()]), |out| {
        kernels::log_softmax_at(values(&logits), width, targets, out, &mut log_sums)
    });
    (log_probs, log_sums)
}

fn last_dim(tensor: &FlexTensor) -> usize {
    tensor.shape().as_slice().last().copied().unwrap_or(1)
}

/// A forward input kept (or recomputed) for the backward pass, contiguous.
fn retrieved(checkpointer: &mut Checkpointer, id: NodeId) -> FlexTensor {
    contiguous(&checkpointer.retrieve_node_output::<FlexTensor>(id))
}

/// Registers the parents' gradients of a backward step.
fn register(
    grads: &mut Gradients,
    parents: impl IntoIterator<Item = (Option<NodeId>, FlexTensor)>,
) {
    for (parent, grad) in parents {
        if let Some(parent) = parent {
            grads.register::<Flex>(parent, grad);
        }
    }
}

#[derive(Debug)]
struct SwigluBackward;

impl Backward<Flex, 2> for SwigluBackward {
    type State = (NodeId, NodeId);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let (gate_id, up_id) = ops.state;
        let gate = retrieved(checkpointer, gate_id);
        let up = retrieved(checkpointer, up_id);
        let grad = contiguous(&grads.consume::<Flex>(&ops.node));
        let mut d_up = vec![0f32; grad.shape().num_elements()];
        let d_gate = new_tensor(grad.shape(), |d_gate| {
            kernels::swiglu_backward(values(&gate), values(&up), values(&grad), d_gate, &mut d_up)
        });
        let d_up = FlexTensor::from_data(TensorData::new(d_up, grad.shape()));
        let [gate_parent, up_parent] = ops.parents;
        register(
            grads,
            [
                (gate_parent.map(|p| p.id), d_gate),
                (up_parent.map(|p| p.id), d_up),
            ],
        );
    }
}

fn swiglu_tracked<C: CheckpointStrategy>(
    gate: FloatTensor<Autodiff<Flex, C>>,
    up: FloatTensor<Autodiff<Flex, C>>,
) -> FloatTensor<Autodiff<Flex, C>> {
    let output = swiglu_values(gate.primitive(), up.primitive());
    match SwigluBackward
        .prepare::<C>([gate.node(), up.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let state = (prep.checkpoint(&gate), prep.checkpoint(&up));
            prep.finish(state, output)
        }
        OpsKind::UnTracked(prep) => prep.finish(output),
    }
}

#[derive(Debug)]
struct RmsNormBackward;

impl Backward<Flex, 2> for RmsNormBackward {
    /// Input, weight, epsilon.
    type State = (NodeId, NodeId, f32);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let (x_id, weight_id, eps) = ops.state;
        let x = retrieved(checkpointer, x_id);
        let weight = retrieved(checkpointer, weight_id);
        let grad = contiguous(&grads.consume::<Flex>(&ops.node));
        let mut d_weight = vec![0f32; weight.shape().num_elements()];
        let d_x = new_tensor(x.shape(), |d_x| {
            kernels::rms_norm_backward(
                values(&x),
                values(&weight),
                eps,
                values(&grad),
                d_x,
                &mut d_weight,
            )
        });
        let d_weight = FlexTensor::from_data(TensorData::new(d_weight, weight.shape()));
        let [x_parent, weight_parent] = ops.parents;
        register(
            grads,
            [
                (x_parent.map(|p| p.id), d_x),
                (weight_parent.map(|p| p.id), d_weight),
            ],
        );
    }
}

fn rms_norm_tracked<C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<Flex, C>>,
    weight: FloatTensor<Autodiff<Flex, C>>,
    eps: f32,
) -> FloatTensor<Autodiff<Flex, C>> {
    let output = rms_norm_values(x.primitive(), weight.primitive(), eps);
    match RmsNormBackward
        .prepare::<C>([x.node(), weight.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let state = (prep.checkpoint(&x), prep.checkpoint(&weight), eps);
            prep.finish(state, output)
        }
        OpsKind::UnTracked(prep) => prep.finish(output),
    }
}

#[derive(Debug)]
struct MaskedSoftmaxBackward;

impl Backward<Flex, 1> for MaskedSoftmaxBackward {
    /// The output (what the gradient needs; the input is not kept) and the scale.
    type State = (FlexTensor, f32);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (output, scale) = ops.state;
        let grad = contiguous(&grads.consume::<Flex>(&ops.node));
        let keys = last_dim(&output);
        let d_x = new_tensor(output.shape(), |d_x| {
            kernels::masked_softmax_backward(values(&output), values(&grad), keys, scale, d_x)
        });
        let [parent] = ops.parents;
        register(grads, [(parent.map(|p| p.id), d_x)]);
    }
}

fn masked_softmax_tracked<C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<Flex, C>>,
    mask: &MaskOf,
    scale: f32,
) -> FloatTensor<Autodiff<Flex, C>> {
    let output = masked_softmax_values(x.primitive(), mask, scale);
    match MaskedSoftmaxBackward
        .prepare::<C>([x.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((output.clone(), scale), output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    }
}

/// `scale · lhs · rhs` for strided `lhs` `[m, k]` and `rhs` `[k, n]` into a fresh row-major
/// `[m, n]` buffer, on every thread of rayon's pool.
fn product(
    lhs: (&[f32], Strides),
    rhs: (&[f32], Strides),
    [m, n, k]: [usize; 3],
    scale: f32,
) -> Vec<f32> {
    let mut out = vec![0f32; m * n];
    gemm_product(
        lhs,
        rhs,
        (&mut out, row_major(n)),
        [m, n, k],
        Accumulate::Overwrite(scale),
        rayon::current_num_threads(),
    );
    out
}

/// `input · weightᵀ`, `[rows, out]`.
fn linear_values(input: &FlexTensor, weight: &FlexTensor) -> FlexTensor {
    let (input, weight) = (contiguous(input), contiguous(weight));
    let ([rows, inputs], [outputs, _]) = (dims2(&input), dims2(&weight));
    let out = product(
        (values(&input), row_major(inputs)),
        (values(&weight), transposed(inputs)),
        [rows, outputs, inputs],
        1.0,
    );
    FlexTensor::from_data(TensorData::new(out, [rows, outputs]))
}

/// A linear layer's input gradient `grad · weight`, `[rows, in]`.
fn input_gradient(grad: &FlexTensor, weight: &FlexTensor) -> Vec<f32> {
    let ([rows, outputs], [_, inputs]) = (dims2(grad), dims2(weight));
    product(
        (values(grad), row_major(outputs)),
        (values(weight), row_major(inputs)),
        [rows, inputs, outputs],
        1.0,
    )
}

/// A linear layer's weight gradient `gradᵀ · input`, `[out, in]`.
fn weight_gradient(grad: &FlexTensor, input: &FlexTensor) -> Vec<f32> {
    let ([rows, outputs], [_, inputs]) = (dims2(grad), dims2(input));
    product(
        (values(grad), transposed(outputs)),
        (values(input), row_major(inputs)),
        [outputs, inputs, rows],
        1.0,
    )
}

/// A host buffer as a flex tensor shaped like `like`.
fn shaped_like(values: Vec<f32>, like: &FlexTensor) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, like.shape()))
}

/// The dimensions of a matrix.
fn dims2(tensor: &FlexTensor) -> [usize; 2] {
    match tensor.shape().as_slice() {
        &[rows, cols] => [rows, cols],
        _ => [0, 0],
    }
}

#[derive(Debug)]
struct LinearBackward;

impl Backward<Flex, 2> for LinearBackward {
    /// Input and weight.
    type State = (NodeId, NodeId);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let (input_id, weight_id) = ops.state;
        let input = retrieved(checkpointer, input_id);
        let weight = retrieved(checkpointer, weight_id);
        let grad = contiguous(&grads.consume::<Flex>(&ops.node));
        let [input_parent, weight_parent] = ops.parents;
        let d_input = input_parent.map(|parent| {
            (
                Some(parent.id),
                shaped_like(input_gradient(&grad, &weight), &input),
            )
        });
        let d_weight = weight_parent.map(|parent| {
            (
                Some(parent.id),
                shaped_like(weight_gradient(&grad, &input), &weight),
            )
        });
        register(grads, d_input.into_iter().chain(d_weight));
    }
}

fn linear_tracked<C: CheckpointStrategy>(
    input: FloatTensor<Autodiff<Flex, C>>,
    weight: FloatTensor<Autodiff<Flex, C>>,
) -> FloatTensor<Autodiff<Flex, C>> {
    let output = linear_values(input.primitive(), weight.primitive());
    match LinearBackward
        .prepare::<C>([input.node(), weight.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let state = (prep.checkpoint(&input), prep.checkpoint(&weight));
            prep.finish(state, output)
        }
        OpsKind::UnTracked(prep) => prep.finish(output),
    }
}

/// `scale · input · aᵀ`, `[rows, rank]`: the thin side of a LoRA update.
fn scaled_down(input: &FlexTensor, a: &FlexTensor, scale: f32) -> Vec<f32> {
    let ([rows, inputs], [rank, _]) = (dims2(input), dims2(a));
    product(
        (values(input), row_major(inputs)),
        (values(a), transposed(inputs)),
        [rows, rank, inputs],
        scale,
    )
}

/// `input · weightᵀ + scale · (input · aᵀ) · bᵀ` on every thread of rayon's pool.
fn low_rank_linear_values(
    input: &FlexTensor,
    weight: &FlexTensor,
    a: &FlexTensor,
    b: &FlexTensor,
    scale: f32,
) -> FlexTensor {
    let (input, weight) = (contiguous(input), contiguous(weight));
    let (a, b) = (contiguous(a), contiguous(b));
    let ([rows, inputs], [outputs, rank]) = (dims2(&input), dims2(&b));
    let down = scaled_down(&input, &a, scale);
    let threads = rayon::current_num_threads();
    new_tensor(Shape::new([rows, outputs]), |out| {
        gemm_product(
            (values(&input), row_major(inputs)),
            (values(&weight), transposed(inputs)),
            (&mut *out, row_major(outputs)),
            [rows, outputs, inputs],
            Accumulate::Overwrite(1.0),
            threads,
        );
        gemm_product(
            (&down, row_major(rank)),
            (values(&b), transposed(rank)),
            (out, row_major(outputs)),
            [rows, outputs, rank],
            Accumulate::Add,
            threads,
        );
    })
}

#[derive(Debug)]
struct LowRankLinearBackward;

impl Backward<Flex, 4> for LowRankLinearBackward {
    /// Input, weight, `a`, `b` and the scale.
    type State = ([NodeId; 4], f32);

    fn backward(
        self,
        ops: Ops<Self::State, 4>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let (ids, scale) = ops.state;
        let [input, weight, a, b] = ids.map(|id| retrieved(checkpointer, id));
        let grad = contiguous(&grads.consume::<Flex>(&ops.node));
        let ([rows, inputs], [outputs, rank]) = (dims2(&input), dims2(&b));
        // The gradient at the thin side: scale · grad · b, [rows, rank].
        let grad_down = product(
            (values(&grad), row_major(outputs)),
            (values(&b), row_major(rank)),
            [rows, rank, outputs],
            scale,
        );
        let [input_parent, weight_parent, a_parent, b_parent] = ops.parents;
        let d_input = input_parent.map(|parent| {
            let mut d_input = input_gradient(&grad, &weight);
            gemm_product(
                (&grad_down, row_major(rank)),
                (values(&a), row_major(inputs)),
                (&mut d_input, row_major(inputs)),
                [rows, inputs, rank],
                Accumulate::Add,
                rayon::current_num_threads(),
            );
            (Some(parent.id), shaped_like(d_input, &input))
        });
        let d_weight = weight_parent.map(|parent| {
            (
                Some(parent.id),
                shaped_like(weight_gradient(&grad, &input), &weight),
            )
        });
        let d_a = a_parent.map(|parent| {
            let d_a = product(
                (&grad_down, transposed(rank)),
                (values(&input), row_major(inputs)),
                [rank, inputs, rows],
                1.0,
            );
            (Some(parent.id), shaped_like(d_a, &a))
        });
        let d_b = b_parent.map(|parent| {
            let down = scaled_down(&input, &a, scale);
            let d_b = product(
                (values(&grad), transposed(outputs)),
                (&down, row_major(rank)),
                [outputs, rank, rows],
                1.0,
            );
            (Some(parent.id), shaped_like(d_b, &b))
        });
        register(grads, [d_input, d_weight, d_a, d_b].into_iter().flatten());
    }
}

fn low_rank_linear_tracked<C>(inputs: [&Tensor<2>; 4], scale: f32) -> Option<Tensor<2>>
where
    C: CheckpointStrategy,
    DispatchTensor: DispatchKindConversion<Autodiff<Flex, C>>,
{
    let [input, weight, a, b] = inputs;
    let [input, weight, a, b] = [
        tracked::<C, 2>(input)?,
        tracked::<C, 2>(weight)?,
        tracked::<C, 2>(a)?,
        tracked::<C, 2>(b)?,
    ];
    let output = low_rank_linear_values(
        input.primitive(),
        weight.primitive(),
        a.primitive(),
        b.primitive(),
        scale,
    );
    let output = match LowRankLinearBackward
        .prepare::<C>([input.node(), weight.node(), a.node(), b.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let ids = [
                prep.checkpoint(&input),
                prep.checkpoint(&weight),
                prep.checkpoint(&a),
                prep.checkpoint(&b),
            ];
            prep.finish((ids, scale), output)
        }
        OpsKind::UnTracked(prep) => prep.finish(output),
    };
    Some(Tensor::from_primitive::<Autodiff<Flex, C>>(output))
}

fn rotate_heads_values(
    x: &FlexTensor,
    tables: &(Vec<f32>, Vec<f32>),
    dims: kernels::RotaryDims,
) -> FlexTensor {
    let x = contiguous(x);
    let shape = Shape::new([dims.batch, dims.heads, dims.len, dims.head_dim]);
    new_tensor(shape, |out| {
        kernels::rotate_heads(values(&x), &tables.0, &tables.1, dims, out)
    })
}

#[derive(Debug)]
struct RotateHeadsBackward;

impl Backward<Flex, 1> for RotateHeadsBackward {
    /// The tables and the dimensions (the rotation is linear: the input is not needed).
    type State = (Arc<(Vec<f32>, Vec<f32>)>, kernels::RotaryDims);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (tables, dims) = ops.state;
        let grad = contiguous(&grads.consume::<Flex>(&ops.node));
        let shape = Shape::new([dims.batch * dims.len, dims.heads * dims.head_dim]);
        let d_x = new_tensor(shape, |d_x| {
            kernels::rotate_heads_backward(values(&grad), &tables.0, &tables.1, dims, d_x)
        });
        let [parent] = ops.parents;
        register(grads, [(parent.map(|p| p.id), d_x)]);
    }
}

fn rotate_heads_tracked<C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<Flex, C>>,
    tables: Arc<(Vec<f32>, Vec<f32>)>,
    dims: kernels::RotaryDims,
) -> FloatTensor<Autodiff<Flex, C>> {
    let output = rotate_heads_values(x.primitive(), &tables, dims);
    match RotateHeadsBackward
        .prepare::<C>([x.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((tables, dims), output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    }
}

fn attention_values(
    query: &FlexTensor,
    key: &FlexTensor,
    value: &FlexTensor,
    hidden: &[bool],
    layout: &kernels::AttentionLayout,
) -> FlexTensor {
    let (query, key, value) = (contiguous(query), contiguous(key), contiguous(value));
    new_tensor(query.shape(), |out| {
        kernels::attention(
            values(&query),
            values(&key),
            values(&value),
            hidden,
            layout,
            out,
        )
    })
}

#[derive(Debug)]
struct AttentionBackward;

impl Backward<Flex, 3> for AttentionBackward {
    /// Query, key, value, the mask and the layout: the probabilities are recomputed.
    type State = (
        NodeId,
        NodeId,
        NodeId,
        Arc<[bool]>,
        kernels::AttentionLayout,
    );

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let (query_id, key_id, value_id, hidden, layout) = ops.state;
        let retrieve = |checkpointer: &mut Checkpointer, id| retrieved(checkpointer, id);
        let query = retrieve(checkpointer, query_id);
        let key = retrieve(checkpointer, key_id);
        let value = retrieve(checkpointer, value_id);
        let grad = contiguous(&grads.consume::<Flex>(&ops.node));
        let mut d_key = vec![0f32; key.shape().num_elements()];
        let mut d_value = vec![0f32; value.shape().num_elements()];
        let d_query = new_tensor(query.shape(), |d_query| {
            kernels::attention_backward(
                (values(&query), values(&key), values(&value)),
                values(&grad),
                &hidden,
                &layout,
                d_query,
                &mut d_key,
                &mut d_value,
            )
        });
        let d_key = FlexTensor::from_data(TensorData::new(d_key, key.shape()));
        let d_value = FlexTensor::from_data(TensorData::new(d_value, value.shape()));
        let [query_parent, key_parent, value_parent] = ops.parents;
        register(
            grads,
            [
                (query_parent.map(|p| p.id), d_query),
                (key_parent.map(|p| p.id), d_key),
                (value_parent.map(|p| p.id), d_value),
            ],
        );
    }
}

fn attention_tracked<C>(
    query: &Tensor<4>,
    key: &Tensor<4>,
    value: &Tensor<4>,
    hidden: Arc<[bool]>,
    layout: kernels::AttentionLayout,
) -> Option<Tensor<4>>
where
    C: CheckpointStrategy,
    DispatchTensor: DispatchKindConversion<Autodiff<Flex, C>>,
{
    let (query, key, value) = (
        tracked::<C, 4>(query)?,
        tracked::<C, 4>(key)?,
        tracked::<C, 4>(value)?,
    );
    let output = attention_values(
        query.primitive(),
        key.primitive(),
        value.primitive(),
        &hidden,
        &layout,
    );
    let output = match AttentionBackward
        .prepare::<C>([query.node(), key.node(), value.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let state = (
                prep.checkpoint(&query),
                prep.checkpoint(&key),
                prep.checkpoint(&value),
                hidden,
                layout,
            );
            prep.finish(state, output)
        }
        OpsKind::UnTracked(prep) => prep.finish(output),
    };
    Some(Tensor::from_primitive::<Autodiff<Flex, C>>(output))
}

#[derive(Debug)]
struct LogSoftmaxAtBackward;

impl Backward<Flex, 1> for LogSoftmaxAtBackward {
    /// Logits, targets, log-sum-exp per row.
    type State = (NodeId, Arc<[usize]>, Arc<[f32]>);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let (logits_id, targets, log_sums) = ops.state;
        let logits = retrieved(checkpointer, logits_id);
        let grad = contiguous(&grads.consume::<Flex>(&ops.node));
        let width = last_dim(&logits);
        let d_logits = new_tensor(logits.shape(), |d_logits| {
            kernels::log_softmax_at_backward(
                values(&logits),
                width,
                &targets,
                &log_sums,
                values(&grad),
                d_logits,
            )
        });
        let [parent] = ops.parents;
        register(grads, [(parent.map(|p| p.id), d_logits)]);
    }
}

fn log_softmax_at_tracked<C: CheckpointStrategy>(
    logits: FloatTensor<Autodiff<Flex, C>>,
    targets: Arc<[usize]>,
) -> FloatTensor<Autodiff<Flex, C>> {
    let (output, log_sums) = log_softmax_at_values(logits.primitive(), &targets);
    match LogSoftmaxAtBackward
        .prepare::<C>([logits.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let state = (prep.checkpoint(&logits), targets, log_sums.into());
            prep.finish(state, output)
        }
        OpsKind::UnTracked(prep) => prep.finish(output),
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;

    use super::*;

    /// Deterministic values in about [-scale, scale].
    fn values_of(count: usize, salt: u64, scale: f32) -> Vec<f32> {
        let mut state = salt.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (0..count)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect()
    }

    fn tensor<const D: usize>(
        shape: [usize; D],
        salt: u64,
        scale: f32,
        device: &Device,
    ) -> Tensor<D> {
        let count = shape.iter().product();
        Tensor::from_data(
            TensorData::new(values_of(count, salt, scale), shape),
            device,
        )
    }

    fn host<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
        tensor.into_data().try_to_vec::<f32>().unwrap_or_default()
    }

    fn assert_close(actual: &[f32], expected: &[f32], tolerance: f32, what: &str) {
        assert_eq!(actual.len(), expected.len(), "{what}: length");
        for (index, (a, e)) in actual.iter().zip(expected).enumerate() {
            assert!(
                (a - e).abs() <= tolerance * (1.0 + e.abs()),
                "{what}[{index}]: fused {a} vs composed {e}"
            );
        }
    }

    /// The devices the fused path serves: plain flex and autodiff flex under both strategies.
    fn tracked_devices() -> [Device; 2] {
        [
            Device::flex().autodiff(),
            Device::flex().autodiff().gradient_checkpointing(),
        ]
    }

    /// Value and input gradients of `loss = Σ f(inputs) · probe` for the fused and composed
    /// forms of an operation, compared to `tolerance`.
    fn check_gradients<const D: usize, const O: usize>(
        shapes: &[[usize; D]],
        scale: f32,
        fused: impl Fn(Vec<Tensor<D>>) -> Tensor<O>,
        composed: impl Fn(Vec<Tensor<D>>) -> Tensor<O>,
        tolerance: f32,
    ) {
        for device in tracked_devices() {
            let run = |op: &dyn Fn(Vec<Tensor<D>>) -> Tensor<O>| {
                let inputs: Vec<Tensor<D>> = shapes
                    .iter()
                    .enumerate()
                    .map(|(i, &shape)| tensor(shape, 7 + i as u64, scale, &device).require_grad())
                    .collect();
                let output = op(inputs.clone());
                let probe = tensor(output.dims(), 99, 1.0, &device);
                let loss = (output.clone() * probe).sum();
                let grads = loss.backward();
                let input_grads: Vec<Vec<f32>> = inputs
                    .iter()
                    .map(|input| input.grad(&grads).map(host).unwrap_or_default())
                    .collect();
                (host(output), input_grads)
            };
            let (fused_out, fused_grads) = run(&fused);
            let (composed_out, composed_grads) = run(&composed);
            assert_close(&fused_out, &composed_out, tolerance, "output");
            for (index, (f, c)) in fused_grads.iter().zip(&composed_grads).enumerate() {
                assert!(!c.is_empty(), "input {index} has a gradient");
                assert_close(f, c, tolerance, &format!("gradient of input {index}"));
            }
        }
    }

    #[test]
    fn swiglu_matches_the_composed_form_with_gradients() {
        let device = Device::flex();
        let (gate, up) = (
            tensor([37, 61], 1, 6.0, &device),
            tensor([37, 61], 2, 2.0, &device),
        );
        let fused = host(swiglu(gate.clone(), up.clone()));
        assert_close(&fused, &host(composed_swiglu(gate, up)), 1e-5, "plain");
        check_gradients(
            &[[37, 61], [37, 61]],
            6.0,
            |t| swiglu(t[0].clone(), t[1].clone()),
            |t| composed_swiglu(t[0].clone(), t[1].clone()),
            1e-5,
        );
    }

    #[test]
    fn rms_norm_matches_the_composed_form_with_gradients() {
        let device = Device::flex();
        let (x, weight) = (
            tensor([23, 77], 3, 3.0, &device),
            tensor([77], 4, 1.5, &device),
        );
        let fused = host(rms_norm(x.clone(), weight.clone(), 1e-5));
        assert_close(
            &fused,
            &host(composed_rms_norm(x, weight, 1e-5)),
            1e-5,
            "plain",
        );
        for device in tracked_devices() {
            let run = |op: &dyn Fn(Tensor<2>, Tensor<1>) -> Tensor<2>| {
                let x = tensor([23, 77], 3, 3.0, &device).require_grad();
                let weight = tensor([77], 4, 1.5, &device).require_grad();
                let output = op(x.clone(), weight.clone());
                let loss = (output.clone() * tensor([23, 77], 5, 1.0, &device)).sum();
                let grads = loss.backward();
                let grad = |t: &Tensor<2>| t.grad(&grads).map(host).unwrap_or_default();
                let weight_grad = weight.grad(&grads).map(host).unwrap_or_default();
                (host(output), grad(&x), weight_grad)
            };
            let fused = run(&|x, w| rms_norm(x, w, 1e-5));
            let composed = run(&|x, w| composed_rms_norm(x, w, 1e-5));
            assert_close(&fused.0, &composed.0, 1e-5, "output");
            assert_close(&fused.1, &composed.1, 1e-4, "input gradient");
            assert_close(&fused.2, &composed.2, 1e-4, "weight gradient");
        }
    }

    /// A mask over `[batch, queries, keys]` that hides some keys of every query but never all
    /// (query `q` sees keys `0..=q + 3` except key 1 of odd queries).
    fn test_mask(batch: usize, queries: usize, keys: usize, device: &Device) -> AttentionMask {
        let hidden: Vec<bool> = (0..batch * queries * keys)
            .map(|i| {
                let (q, k) = ((i / keys) % queries, i % keys);
                k > q + 3 || (q % 2 == 1 && k == 1)
            })
            .collect();
        AttentionMask::new(hidden, [batch, queries, keys], device)
    }

    #[test]
    fn masked_softmax_matches_the_composed_form_with_gradients() {
        // 2 batch rows, 3 heads, 2 stacked query blocks of 5 queries, 11 keys
        let shape = [2, 3, 10, 11];
        let device = Device::flex();
        let mask = test_mask(2, 5, 11, &device);
        let scores = tensor(shape, 6, 8.0, &device);
        assert_close(
            &host(masked_softmax(scores.clone(), &mask, 0.125)),
            &host(composed_masked_softmax(scores, &mask, 0.125)),
            1e-6,
            "plain",
        );
        let mask_of = |t: &Tensor<4>| test_mask(2, 5, 11, &t.device());
        check_gradients(
            &[shape],
            8.0,
            |t| masked_softmax(t[0].clone(), &mask_of(&t[0]), 0.125),
            |t| composed_masked_softmax(t[0].clone(), &mask_of(&t[0]), 0.125),
            1e-5,
        );
    }

    #[test]
    fn linear_matches_the_composed_form_with_gradients() {
        let device = Device::flex();
        let (input, weight, bias) = (
            tensor([37, 29], 30, 2.0, &device),
            tensor([45, 29], 31, 0.5, &device),
            tensor([45], 32, 1.0, &device),
        );
        let composed =
            |x: Tensor<2>, w: Tensor<2>, b: Option<Tensor<1>>| module_linear(x, w.transpose(), b);
        for bias in [None, Some(bias)] {
            assert_close(
                &host(linear(input.clone(), weight.clone(), bias.clone())),
                &host(composed(input.clone(), weight.clone(), bias)),
                1e-5,
                "plain",
            );
        }
        // A strided (transposed) input is read in logical order.
        let transposed_input = tensor([29, 37], 33, 2.0, &device).transpose();
        assert_close(
            &host(linear(transposed_input.clone(), weight.clone(), None)),
            &host(composed(transposed_input, weight, None)),
            1e-5,
            "strided",
        );
        check_gradients(
            &[[37, 29], [45, 29]],
            2.0,
            |t| linear(t[0].clone(), t[1].clone(), None),
            |t| composed(t[0].clone(), t[1].clone(), None),
            1e-4,
        );
    }

    #[test]
    fn low_rank_linear_matches_the_composed_form_with_gradients() {
        let device = Device::flex();
        let shapes = [[37, 29], [45, 29], [4, 29], [45, 4]];
        let [x, w, a, b] = [0, 1, 2, 3].map(|i| tensor(shapes[i], 40 + i as u64, 1.5, &device));
        let composed = |t: Vec<Tensor<2>>| {
            let down = module_linear(t[0].clone(), t[2].clone().transpose(), None).mul_scalar(2.5);
            module_linear(t[0].clone(), t[1].clone().transpose(), None)
                + module_linear(down, t[3].clone().transpose(), None)
        };
        assert_close(
            &host(low_rank_linear(
                x.clone(),
                w.clone(),
                a.clone(),
                b.clone(),
                2.5,
            )),
            &host(composed(vec![x, w, a, b])),
            1e-5,
            "plain",
        );
        check_gradients(
            &shapes,
            1.5,
            |t| low_rank_linear(t[0].clone(), t[1].clone(), t[2].clone(), t[3].clone(), 2.5),
            composed,
            1e-4,
        );
    }

    #[test]
    fn rotate_heads_matches_the_composed_form_with_gradients() {
        let (batch, len, heads, head_dim) = (2, 5, 3, 8);
        let tables = |device: &Device| {
            let count = batch * len * head_dim;
            let (cos, sin) = (values_of(count, 50, 1.0), values_of(count, 51, 1.0));
            RotaryTables::new(cos, sin, [batch, len, head_dim], device)
        };
        let device = Device::flex();
        let x = tensor([batch * len, heads * head_dim], 52, 3.0, &device);
        assert_close(
            &host(rotate_heads(x.clone(), &tables(&device), heads)),
            &host(composed_rotate_heads(x, &tables(&device), heads)),
            1e-6,
            "plain",
        );
        check_gradients(
            &[[batch * len, heads * head_dim]],
            3.0,
            |t| rotate_heads(t[0].clone(), &tables(&t[0].device()), heads),
            |t| composed_rotate_heads(t[0].clone(), &tables(&t[0].device()), heads),
            1e-5,
        );
    }

    #[test]
    fn attention_matches_the_composed_form_with_gradients() {
        // Grouped heads (3 query heads per key/value head), more keys than queries; then one
        // key/value head with more stacked query rows than one block of the kernel holds.
        for (batch, heads, kv_heads, queries, keys, head_dim) in
            [(2, 6, 2, 5, 11, 8), (1, 3, 1, 90, 90, 16)]
        {
            let shapes = [
                [batch, heads, queries, head_dim],
                [batch, kv_heads, keys, head_dim],
                [batch, kv_heads, keys, head_dim],
            ];
            let scale = 1.0 / (head_dim as f32).sqrt();
            let device = Device::flex();
            let mask = test_mask(batch, queries, keys, &device);
            let [q, k, v] = [0, 1, 2].map(|i| tensor(shapes[i], 20 + i as u64, 2.0, &device));
            assert_close(
                &host(attention(q.clone(), k.clone(), v.clone(), &mask, scale)),
                &host(composed_attention(q, k, v, &mask, scale)),
                1e-5,
                "plain",
            );
            let mask_of = |t: &Tensor<4>| test_mask(batch, queries, keys, &t.device());
            check_gradients(
                &shapes,
                2.0,
                |t| {
                    attention(
                        t[0].clone(),
                        t[1].clone(),
                        t[2].clone(),
                        &mask_of(&t[0]),
                        scale,
                    )
                },
                |t| {
                    let mask = mask_of(&t[0]);
                    composed_attention(t[0].clone(), t[1].clone(), t[2].clone(), &mask, scale)
                },
                1e-4,
            );
        }
    }

    #[test]
    fn log_softmax_at_matches_the_composed_form_with_gradients() {
        let targets = [0usize, 999, 17, 500, 3, 998, 250];
        let device = Device::flex();
        let logits = tensor([7, 1000], 8, 12.0, &device);
        assert_close(
            &host(log_softmax_at(logits.clone(), &targets)),
            &host(composed_log_softmax_at(logits, &targets)),
            1e-5,
            "plain",
        );
        check_gradients(
            &[[7, 1000]],
            12.0,
            |t| log_softmax_at(t[0].clone(), &targets),
            |t| composed_log_softmax_at(t[0].clone(), &targets),
            1e-5,
        );
    }

    #[test]
    fn adamw_matches_the_composed_form_and_leaves_shared_buffers_alone() {
        let device = Device::flex();
        let step = AdamWStep {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            step_size: 1e-3 / (1.0 - 0.9f32.powi(2)),
            bias2_sqrt: (1.0 - 0.999f32.powi(2)).sqrt(),
            decay: 1.0 - 1e-3 * 0.01,
        };
        let n = 100_003;
        let param = tensor([n], 11, 1.0, &device);
        let grad = tensor([n], 12, 0.1, &device);
        let first = tensor([n], 13, 0.01, &device);
        let second = tensor([n], 14, 1e-4, &device).abs();
        for moments in [None, Some((first.clone(), second.clone()))] {
            let zeros = || Tensor::zeros([n], &device);
            let (m, v) = moments.clone().unwrap_or_else(|| (zeros(), zeros()));
            let expected = composed_adamw(step, param.clone(), grad.clone(), m, v);
            let before = host(param.clone());
            let fused = adamw(step, param.clone(), grad.clone(), moments);
            assert_close(&host(fused.0), &host(expected.0), 1e-6, "param");
            assert_close(&host(fused.1), &host(expected.1), 1e-6, "exp_avg");
            assert_close(&host(fused.2), &host(expected.2), 1e-6, "exp_avg_sq");
            // `param` was shared with this test: updated in a copy, not in place
            assert_eq!(host(param.clone()), before);
        }
    }

    #[test]
    fn strided_inputs_are_read_in_logical_order() {
        let device = Device::flex();
        let x = tensor([16, 9], 9, 4.0, &device).transpose();
        let up = tensor([9, 16], 10, 4.0, &device);
        assert_close(
            &host(swiglu(x.clone(), up.clone())),
            &host(composed_swiglu(x, up)),
            1e-6,
            "transposed",
        );
    }
}
