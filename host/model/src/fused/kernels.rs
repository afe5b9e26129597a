//! Row kernels behind the fused operations: forward and backward of SwiGLU, RMSNorm, softmax
//! and log-softmax-at-target over f32 slices, split across rayon's pool by rows.
//!
//! Every loop is written so the compiler vectorises it (no calls to libm's scalar `expf`; see
//! [`exp`]) and is compiled twice, once for AVX-512 and once for the baseline, picked at run
//! time.

use rayon::prelude::*;

use crate::cpu_engine::kernels::{Accumulate, Strides, gemm_product};

/// Rows handed to one rayon task: enough work per task to amortise the hand-off.
fn rows_per_task(width: usize) -> usize {
    (32 * 1024 / width.max(1)).max(1)
}

/// Defines a function whose body is compiled twice, with AVX-512 enabled and for the baseline
/// target, and picks one per call by what the CPU has (so its loops vectorise over 16 lanes
/// where they can). The body's helpers are `#[inline(always)]` so they take the features too.
macro_rules! vectorised {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn portable($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx2,fma")]
                fn avx512($($arg: $ty),*) $(-> $ret)? {
                    portable($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F (checked just above).
                    return unsafe { avx512($($arg),*) };
                }
            }
            portable($($arg),*)
        }
    };
}
pub(crate) use vectorised;

/// `e^x` for f32 in plain arithmetic, so loops over it vectorise (Cephes' polynomial on
/// `x - n ln 2`, relative error below 2e-7). Inputs under −87.3 give 0, inputs over 88.3 give
/// `e^88.3`; NaN stays NaN.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 · 2^23: adding it rounds to an integer held in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    const LOWEST: f32 = -87.3;
    let clamped = x.clamp(LOWEST, 88.3);
    let shifted = clamped * LOG2E + ROUND;
    let n = shifted - ROUND;
    let power = (shifted.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let r = clamped - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_2e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    let scale = f32::from_bits(((power + 127) << 23) as u32);
    if x < LOWEST { 0.0 } else { e_r * scale }
}

/// `1 / (1 + e^-x)`.
#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// Sum of a slice in eight partial sums (vectorises; the order differs from a serial sum).
#[inline(always)]
fn sum(values: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let mut chunks = values.chunks_exact(8);
    for chunk in &mut chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += v;
        }
    }
    lanes.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

/// Maximum of a slice (−∞ for an empty one).
#[inline(always)]
fn max(values: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 8];
    let mut chunks = values.chunks_exact(8);
    for chunk in &mut chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane = lane.max(v);
        }
    }
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    lanes.iter().fold(tail, |m, &v| m.max(v))
}

vectorised! {
    fn swiglu_chunk(gate: &[f32], up: &[f32], out: &mut [f32]) {
        for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
            *o = g * sigmoid(g) * u;
        }
    }
}

/// `out = silu(gate) · up`, elementwise.
pub fn swiglu(gate: &[f32], up: &[f32], out: &mut [f32]) {
    let chunk = rows_per_task(1);
    out.par_chunks_mut(chunk)
        .zip(gate.par_chunks(chunk).zip(up.par_chunks(chunk)))
        .for_each(|(out, (gate, up))| swiglu_chunk(gate, up, out));
}

vectorised! {
    fn swiglu_backward_chunk(
        gate: &[f32],
        up: &[f32],
        grad: &[f32],
        d_gate: &mut [f32],
        d_up: &mut [f32],
    ) {
        for ((((dg, du), &g), &u), &dy) in d_gate
            .iter_mut()
            .zip(d_up.iter_mut())
            .zip(gate)
            .zip(up)
            .zip(grad)
        {
            let s = sigmoid(g);
            *du = dy * g * s;
            *dg = dy * u * s * (1.0 + g * (1.0 - s));
        }
    }
}

/// Gradients of [`swiglu`] given the output gradient `grad`: `d_gate`, `d_up`.
pub fn swiglu_backward(
    gate: &[f32],
    up: &[f32],
    grad: &[f32],
    d_gate: &mut [f32],
    d_up: &mut [f32],
) {
    let chunk = rows_per_task(1);
    d_gate
        .par_chunks_mut(chunk)
        .zip(d_up.par_chunks_mut(chunk))
        .zip(gate.par_chunks(chunk).zip(up.par_chunks(chunk)))
        .zip(grad.par_chunks(chunk))
        .for_each(|(((d_gate, d_up), (gate, up)), grad)| {
            swiglu_backward_chunk(gate, up, grad, d_gate, d_up)
        });
}

/// Dot product in eight partial sums (vectorises; the order differs from a serial sum).
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let mut xs = a.chunks_exact(8);
    let mut ys = b.chunks_exact(8);
    for (x, y) in (&mut xs).zip(&mut ys) {
        for lane in 0..8 {
            lanes[lane] += x[lane] * y[lane];
        }
    }
    let tail: f32 = xs
        .remainder()
        .iter()
        .zip(ys.remainder())
        .map(|(x, y)| x * y)
        .sum();
    lanes.iter().sum::<f32>() + tail
}

/// `1 / sqrt(mean(row²) + eps)`.
#[inline(always)]
fn inverse_rms(row: &[f32], eps: f32) -> f32 {
    1.0 / (dot(row, row) / row.len() as f32 + eps).sqrt()
}

vectorised! {
    fn rms_norm_chunk(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
        let width = weight.len();
        for (out, row) in out.chunks_exact_mut(width).zip(x.chunks_exact(width)) {
            let scale = inverse_rms(row, eps);
            for ((o, &v), &w) in out.iter_mut().zip(row).zip(weight) {
                *o = v * scale * w;
            }
        }
    }
}

/// RMSNorm over rows of `weight.len()`: `out = x / sqrt(mean(x²) + eps) · weight`.
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let chunk = rows_per_task(weight.len()) * weight.len();
    out.par_chunks_mut(chunk)
        .zip(x.par_chunks(chunk))
        .for_each(|(out, x)| rms_norm_chunk(x, weight, eps, out));
}

vectorised! {
    /// Returns this chunk's contribution to the weight gradient.
    fn rms_norm_backward_chunk(
        x: &[f32],
        weight: &[f32],
        eps: f32,
        grad: &[f32],
        d_x: &mut [f32],
        scratch: &mut [f32],
    ) -> Vec<f32> {
        let width = weight.len();
        let mut d_weight = vec![0f32; width];
        for ((d_row, row), g_row) in d_x
            .chunks_exact_mut(width)
            .zip(x.chunks_exact(width))
            .zip(grad.chunks_exact(width))
        {
            let scale = inverse_rms(row, eps);
            // d_x = scale · (g·w − x · scale² · mean(g·w·x))
            for ((s, &g), &w) in scratch.iter_mut().zip(g_row).zip(weight) {
                *s = g * w;
            }
            let correction = scale * scale * dot(scratch, row) / width as f32;
            for (((d, &s), &v), (dw, &g)) in d_row
                .iter_mut()
                .zip(scratch.iter())
                .zip(row)
                .zip(d_weight.iter_mut().zip(g_row))
            {
                *d = scale * (s - v * correction);
                *dw += g * v * scale;
            }
        }
        d_weight
    }
}

/// Gradients of [`rms_norm`] given the output gradient `grad`: `d_x` (same shape as `x`) and
/// `d_weight` (summed over rows).
pub fn rms_norm_backward(
    x: &[f32],
    weight: &[f32],
    eps: f32,
    grad: &[f32],
    d_x: &mut [f32],
    d_weight: &mut [f32],
) {
    let width = weight.len();
    let chunk = rows_per_task(width) * width;
    let partials: Vec<Vec<f32>> = d_x
        .par_chunks_mut(chunk)
        .zip(x.par_chunks(chunk).zip(grad.par_chunks(chunk)))
        .map(|(d_x, (x, grad))| {
            let mut scratch = vec![0f32; width];
            rms_norm_backward_chunk(x, weight, eps, grad, d_x, &mut scratch)
        })
        .collect();
    d_weight.fill(0.0);
    for partial in partials {
        for (total, part) in d_weight.iter_mut().zip(partial) {
            *total += part;
        }
    }
}

/// Which keys each query may not see, for [`masked_softmax`]: `hidden[(b · queries + q) · keys
/// + k]`, shared by every head and stacked query block of batch row `b`.
#[derive(Clone, Copy, Debug)]
pub struct KeyMask<'a> {
    /// `[batch, queries, keys]`, true where the key is hidden.
    pub hidden: &'a [bool],
    /// Queries per block.
    pub queries: usize,
    /// Score rows per batch row (heads × stacked query blocks × queries).
    pub rows_per_batch: usize,
}

impl KeyMask<'_> {
    /// The mask row of score row `row`.
    #[inline(always)]
    fn row(&self, row: usize, keys: usize) -> &[bool] {
        let batch = row / self.rows_per_batch;
        let query = row % self.queries;
        &self.hidden[(batch * self.queries + query) * keys..][..keys]
    }
}

/// `row ← softmax(row)`, where −∞ entries (hidden keys) get probability 0; a row of only −∞
/// gives zeros, not NaN.
#[inline(always)]
pub(crate) fn softmax_row(row: &mut [f32]) {
    let top = max(row);
    if top == f32::NEG_INFINITY {
        row.fill(0.0);
        return;
    }
    for value in row.iter_mut() {
        *value = exp(*value - top);
    }
    let inverse = 1.0 / sum(row);
    for value in row.iter_mut() {
        *value *= inverse;
    }
}

vectorised! {
    /// [`softmax_row`] over every row of `width` of `values`.
    pub(crate) fn softmax_rows(values: &mut [f32], width: usize) {
        for row in values.chunks_exact_mut(width) {
            softmax_row(row);
        }
    }
}

vectorised! {
    fn masked_softmax_chunk(
        x: &[f32],
        keys: usize,
        scale: f32,
        mask: KeyMask<'_>,
        first_row: usize,
        out: &mut [f32],
    ) {
        for (index, (out, row)) in out.chunks_exact_mut(keys).zip(x.chunks_exact(keys)).enumerate() {
            let hidden = mask.row(first_row + index, keys);
            for ((o, &v), &h) in out.iter_mut().zip(row).zip(hidden) {
                *o = if h { f32::NEG_INFINITY } else { v * scale };
            }
            softmax_row(out);
        }
    }
}

/// `softmax(scale · x)` over rows of `keys`, with the keys `mask` hides at probability 0. A
/// row with every key hidden gives zeros, not NaN.
pub fn masked_softmax(x: &[f32], keys: usize, scale: f32, mask: KeyMask<'_>, out: &mut [f32]) {
    let rows = rows_per_task(keys);
    out.par_chunks_mut(rows * keys)
        .zip(x.par_chunks(rows * keys))
        .enumerate()
        .for_each(|(task, (out, x))| masked_softmax_chunk(x, keys, scale, mask, task * rows, out));
}

vectorised! {
    fn softmax_backward_chunk(y: &[f32], grad: &[f32], keys: usize, scale: f32, d_x: &mut [f32]) {
        for ((d_row, y_row), g_row) in d_x
            .chunks_exact_mut(keys)
            .zip(y.chunks_exact(keys))
            .zip(grad.chunks_exact(keys))
        {
            let total = dot(g_row, y_row);
            for ((d, &y), &g) in d_row.iter_mut().zip(y_row).zip(g_row) {
                *d = scale * y * (g - total);
            }
        }
    }
}

/// Gradient of [`masked_softmax`] from its output `y` and the output gradient `grad`:
/// `d_x = scale · y · (grad − Σ grad·y)` per row (hidden keys have `y = 0`, so no gradient).
pub fn masked_softmax_backward(y: &[f32], grad: &[f32], keys: usize, scale: f32, d_x: &mut [f32]) {
    let chunk = rows_per_task(keys) * keys;
    d_x.par_chunks_mut(chunk)
        .zip(y.par_chunks(chunk).zip(grad.par_chunks(chunk)))
        .for_each(|(d_x, (y, grad))| softmax_backward_chunk(y, grad, keys, scale, d_x));
}

/// The shape of one grouped-query attention: `query` is `[batch, heads, queries, head_dim]`,
/// `key` and `value` are `[batch, kv_heads, keys, head_dim]` (query head `h` reads key/value
/// head `h / (heads / kv_heads)`), every slice row-major and contiguous.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionLayout {
    /// Batch rows.
    pub batch: usize,
    /// Query heads (a multiple of `kv_heads`).
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Queries per head.
    pub queries: usize,
    /// Keys per head.
    pub keys: usize,
    /// Width of a head.
    pub head_dim: usize,
    /// Factor of the scores before the softmax (usually `1 / √head_dim`).
    pub scale: f32,
}

impl AttentionLayout {
    /// Query rows of one key/value head: its query heads stacked.
    fn stacked_rows(&self) -> usize {
        self.heads / self.kv_heads.max(1) * self.queries
    }

    /// Elements of `query` read by one key/value head.
    fn query_block(&self) -> usize {
        self.stacked_rows() * self.head_dim
    }

    /// Elements of `key` (or `value`) of one key/value head.
    fn key_block(&self) -> usize {
        self.keys * self.head_dim
    }

    /// The mask of batch row `batch`, `[queries, keys]`.
    fn mask_of<'a>(&self, hidden: &'a [bool], batch: usize) -> &'a [bool] {
        let size = self.queries * self.keys;
        &hidden[batch * size..][..size]
    }
}

/// Stacked query rows whose scores are held at once: bounds the scratch memory of a
/// key/value head to `3 × ATTENTION_ROWS × keys` floats however long the sequence.
const ATTENTION_ROWS: usize = 256;

vectorised! {
    /// `softmax` in place over rows of `keys`, hiding the keys `hidden` marks (row `r` of the
    /// block reads mask row `(first_row + r) % queries`); a row with every key hidden gives
    /// zeros.
    fn masked_softmax_in_place(
        scores: &mut [f32],
        keys: usize,
        hidden: &[bool],
        queries: usize,
        first_row: usize,
    ) {
        for (index, row) in scores.chunks_exact_mut(keys).enumerate() {
            let hidden = &hidden[((first_row + index) % queries) * keys..][..keys];
            for (value, &h) in row.iter_mut().zip(hidden) {
                if h {
                    *value = f32::NEG_INFINITY;
                }
            }
            softmax_row(row);
        }
    }
}

/// Row-major strides of a `[_, width]` matrix.
pub(crate) fn row_major(width: usize) -> Strides {
    Strides { row: width, col: 1 }
}

/// The transpose of a row-major `[_, width]` matrix.
pub(crate) fn transposed(width: usize) -> Strides {
    Strides { row: 1, col: width }
}

/// Attention probabilities of `rows` stacked query rows starting at `first_row` of one
/// key/value head: `probs = softmax(scale · q kᵀ)`, hidden keys at 0.
fn attention_probs(
    query: &[f32],
    key: &[f32],
    hidden: &[bool],
    layout: &AttentionLayout,
    first_row: usize,
    probs: &mut [f32],
) {
    let (keys, width) = (layout.keys, layout.head_dim);
    let rows = probs.len() / keys;
    gemm_product(
        (&query[first_row * width..], row_major(width)),
        (key, transposed(width)),
        (probs, row_major(keys)),
        [rows, keys, width],
        Accumulate::Overwrite(layout.scale),
        1,
    );
    masked_softmax_in_place(probs, keys, hidden, layout.queries, first_row);
}

/// Grouped-query attention `out = softmax(scale · q kᵀ, hidden keys at 0) · v` per head (see
/// [`AttentionLayout`]); `hidden` is `[batch, queries, keys]`, shared by every head. The
/// `[queries, keys]` probabilities exist only for blocks of rows, never for a whole head.
///
/// # Panics
/// If a slice is shorter than `layout` says (a bug of the caller).
pub fn attention(
    query: &[f32],
    key: &[f32],
    value: &[f32],
    hidden: &[bool],
    layout: &AttentionLayout,
    out: &mut [f32],
) {
    let (keys, width) = (layout.keys, layout.head_dim);
    if layout.query_block() == 0 || keys == 0 {
        return;
    }
    out.par_chunks_mut(layout.query_block())
        .zip(query.par_chunks(layout.query_block()))
        .enumerate()
        .for_each(|(task, (out, query))| {
            let key = &key[task * layout.key_block()..][..layout.key_block()];
            let value = &value[task * layout.key_block()..][..layout.key_block()];
            let hidden = layout.mask_of(hidden, task / layout.kv_heads);
            let mut probs = vec![0f32; ATTENTION_ROWS.min(layout.stacked_rows()) * keys];
            for first in (0..layout.stacked_rows()).step_by(ATTENTION_ROWS) {
                let rows = ATTENTION_ROWS.min(layout.stacked_rows() - first);
                let probs = &mut probs[..rows * keys];
                attention_probs(query, key, hidden, layout, first, probs);
                gemm_product(
                    (probs, row_major(keys)),
                    (value, row_major(width)),
                    (&mut out[first * width..], row_major(width)),
                    [rows, width, keys],
                    Accumulate::Overwrite(1.0),
                    1,
                );
            }
        });
}

/// Gradients of [`attention`] from its inputs and the output gradient `grad`, with the
/// probabilities recomputed block by block: `dv = pᵀ · grad`, `ds = scale · p ⊙ (grad vᵀ −
/// Σ (grad vᵀ) ⊙ p)`, `dq = ds · k`, `dk = dsᵀ · q`. `d_query` is shaped like `query`,
/// `d_key` and `d_value` like `key`.
///
/// # Panics
/// If a slice is shorter than `layout` says (a bug of the caller).
pub fn attention_backward(
    (query, key, value): (&[f32], &[f32], &[f32]),
    grad: &[f32],
    hidden: &[bool],
    layout: &AttentionLayout,
    d_query: &mut [f32],
    d_key: &mut [f32],
    d_value: &mut [f32],
) {
    let (keys, width) = (layout.keys, layout.head_dim);
    if layout.query_block() == 0 || keys == 0 {
        return;
    }
    d_query
        .par_chunks_mut(layout.query_block())
        .zip(d_key.par_chunks_mut(layout.key_block()))
        .zip(d_value.par_chunks_mut(layout.key_block()))
        .enumerate()
        .for_each(|(task, ((d_query, d_key), d_value))| {
            let query = &query[task * layout.query_block()..][..layout.query_block()];
            let grad = &grad[task * layout.query_block()..][..layout.query_block()];
            let key = &key[task * layout.key_block()..][..layout.key_block()];
            let value = &value[task * layout.key_block()..][..layout.key_block()];
            let hidden = layout.mask_of(hidden, task / layout.kv_heads);
            let block = ATTENTION_ROWS.min(layout.stacked_rows()) * keys;
            let (mut probs, mut d_probs, mut d_scores) =
                (vec![0f32; block], vec![0f32; block], vec![0f32; block]);
            for first in (0..layout.stacked_rows()).step_by(ATTENTION_ROWS) {
                let rows = ATTENTION_ROWS.min(layout.stacked_rows() - first);
                let cells = rows * keys;
                let (probs, d_probs, d_scores) = (
                    &mut probs[..cells],
                    &mut d_probs[..cells],
                    &mut d_scores[..cells],
                );
                let grad_rows = (&grad[first * width..], row_major(width));
                let query_rows = (&query[first * width..], row_major(width));
                // The key and value gradients sum over every block of rows.
                let into_keys = if first == 0 {
                    Accumulate::Overwrite(1.0)
                } else {
                    Accumulate::Add
                };
                attention_probs(query, key, hidden, layout, first, probs);
                gemm_product(
                    (probs, transposed(keys)),
                    grad_rows,
                    (d_value, row_major(width)),
                    [keys, width, rows],
                    into_keys,
                    1,
                );
                gemm_product(
                    grad_rows,
                    (value, transposed(width)),
                    (d_probs, row_major(keys)),
                    [rows, keys, width],
                    Accumulate::Overwrite(1.0),
                    1,
                );
                softmax_backward_chunk(probs, d_probs, keys, layout.scale, d_scores);
                gemm_product(
                    (d_scores, row_major(keys)),
                    (key, row_major(width)),
                    (&mut d_query[first * width..], row_major(width)),
                    [rows, width, keys],
                    Accumulate::Overwrite(1.0),
                    1,
                );
                gemm_product(
                    (d_scores, transposed(keys)),
                    query_rows,
                    (d_key, row_major(width)),
                    [keys, width, rows],
                    into_keys,
                    1,
                );
            }
        });
}

/// The dimensions of a rotary-position operation: `batch` rows of `len` tokens, each with
/// `heads` heads of `head_dim`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RotaryDims {
    /// Batch rows.
    pub batch: usize,
    /// Tokens per row.
    pub len: usize,
    /// Heads per token.
    pub heads: usize,
    /// Width of a head (even).
    pub head_dim: usize,
}

vectorised! {
    /// One head's rotation: `out[i] = x[i] · cos[i] + x[(i + half) % dim] · sin[i]`.
    pub(crate) fn rotate_head(x: &[f32], cos: &[f32], sin: &[f32], out: &mut [f32]) {
        let half = x.len() / 2;
        let (low, high) = x.split_at(half);
        let (out_low, out_high) = out.split_at_mut(half);
        for (((o, &x), &partner), (&c, &s)) in out_low.iter_mut().zip(low).zip(high).zip(cos.iter().zip(sin)) {
            *o = x * c + partner * s;
        }
        for (((o, &x), &partner), (&c, &s)) in out_high.iter_mut().zip(high).zip(low).zip(cos[half..].iter().zip(&sin[half..])) {
            *o = x * c + partner * s;
        }
    }
}

/// Rotary positions applied per head and laid out head-major: `x` is `[batch, len, heads,
/// head_dim]`, `out` `[batch, heads, len, head_dim]`, `cos` and `sin` (signed, see
/// `Rope::tables`) `[batch, len, head_dim]`.
pub fn rotate_heads(x: &[f32], cos: &[f32], sin: &[f32], dims: RotaryDims, out: &mut [f32]) {
    let RotaryDims {
        len,
        heads,
        head_dim,
        ..
    } = dims;
    if len * head_dim == 0 {
        return;
    }
    out.par_chunks_mut(len * head_dim)
        .enumerate()
        .for_each(|(block, out)| {
            let (batch, head) = (block / heads, block % heads);
            for (token, out) in out.chunks_exact_mut(head_dim).enumerate() {
                let at = batch * len + token;
                rotate_head(
                    &x[(at * heads + head) * head_dim..][..head_dim],
                    &cos[at * head_dim..][..head_dim],
                    &sin[at * head_dim..][..head_dim],
                    out,
                );
            }
        });
}

vectorised! {
    /// One head's gradient of [`rotate_head`]: `d_x[i] = grad[i] · cos[i] + grad[j] · sin[j]`
    /// with `j = (i + half) % dim` (the half swap is its own inverse).
    fn rotate_head_backward(grad: &[f32], cos: &[f32], sin: &[f32], d_x: &mut [f32]) {
        let half = grad.len() / 2;
        let (low, high) = grad.split_at(half);
        let (d_low, d_high) = d_x.split_at_mut(half);
        let (cos_low, cos_high) = cos.split_at(half);
        let (sin_low, sin_high) = sin.split_at(half);
        for ((((d, &g), &partner), &c), &s) in d_low.iter_mut().zip(low).zip(high).zip(cos_low).zip(sin_high) {
            *d = g * c + partner * s;
        }
        for ((((d, &g), &partner), &c), &s) in d_high.iter_mut().zip(high).zip(low).zip(cos_high).zip(sin_low) {
            *d = g * c + partner * s;
        }
    }
}

/// Gradient of [`rotate_heads`]: `grad` is `[batch, heads, len, head_dim]`, `d_x` `[batch,
/// len, heads, head_dim]`.
pub fn rotate_heads_backward(
    grad: &[f32],
    cos: &[f32],
    sin: &[f32],
    dims: RotaryDims,
    d_x: &mut [f32],
) {
    let RotaryDims {
        len,
        heads,
        head_dim,
        ..
    } = dims;
    if heads * head_dim == 0 {
        return;
    }
    d_x.par_chunks_mut(heads * head_dim)
        .enumerate()
        .for_each(|(at, d_x)| {
            let (batch, token) = (at / len, at % len);
            let (cos, sin) = (
                &cos[at * head_dim..][..head_dim],
                &sin[at * head_dim..][..head_dim],
            );
            for (head, d_x) in d_x.chunks_exact_mut(head_dim).enumerate() {
                let from = ((batch * heads + head) * len + token) * head_dim;
                rotate_head_backward(&grad[from..][..head_dim], cos, sin, d_x);
            }
        });
}

/// `log(Σ e^row)` computed stably.
#[inline(always)]
fn log_sum_exp(row: &[f32]) -> f32 {
    let top = max(row);
    if !top.is_finite() {
        return top;
    }
    let mut lanes = [0f32; 8];
    let mut chunks = row.chunks_exact(8);
    for chunk in &mut chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += exp(v - top);
        }
    }
    let tail: f32 = chunks.remainder().iter().map(|&v| exp(v - top)).sum();
    top + (lanes.iter().sum::<f32>() + tail).ln()
}

vectorised! {
    fn log_softmax_at_chunk(
        logits: &[f32],
        width: usize,
        targets: &[usize],
        log_probs: &mut [f32],
        log_sums: &mut [f32],
    ) {
        for (((lp, ls), row), &target) in log_probs
            .iter_mut()
            .zip(log_sums.iter_mut())
            .zip(logits.chunks_exact(width))
            .zip(targets)
        {
            *ls = log_sum_exp(row);
            *lp = row[target] - *ls;
        }
    }
}

/// Log-softmax of each row of `logits` (`[rows, width]`) read at that row's target column:
/// `log_probs[r] = logits[r, t_r] − log Σ e^logits[r]`. Also gives each row's log-sum-exp,
/// which [`log_softmax_at_backward`] needs. Every target must be below `width`.
pub fn log_softmax_at(
    logits: &[f32],
    width: usize,
    targets: &[usize],
    log_probs: &mut [f32],
    log_sums: &mut [f32],
) {
    let rows = rows_per_task(width);
    log_probs
        .par_chunks_mut(rows)
        .zip(log_sums.par_chunks_mut(rows))
        .zip(
            logits
                .par_chunks(rows * width)
                .zip(targets.par_chunks(rows)),
        )
        .for_each(|((log_probs, log_sums), (logits, targets))| {
            log_softmax_at_chunk(logits, width, targets, log_probs, log_sums)
        });
}

vectorised! {
    fn log_softmax_at_backward_chunk(
        logits: &[f32],
        width: usize,
        targets: &[usize],
        log_sums: &[f32],
        grad: &[f32],
        d_logits: &mut [f32],
    ) {
        for ((((d_row, row), &target), &log_sum), &g) in d_logits
            .chunks_exact_mut(width)
            .zip(logits.chunks_exact(width))
            .zip(targets)
            .zip(log_sums)
            .zip(grad)
        {
            for (d, &v) in d_row.iter_mut().zip(row) {
                *d = -g * exp(v - log_sum);
            }
            d_row[target] += g;
        }
    }
}

/// Gradient of [`log_softmax_at`] with respect to the logits, given each row's log-sum-exp and
/// the gradient of each row's log-prob: `d_logits[r] = grad[r] · (onehot(t_r) − softmax(row))`.
pub fn log_softmax_at_backward(
    logits: &[f32],
    width: usize,
    targets: &[usize],
    log_sums: &[f32],
    grad: &[f32],
    d_logits: &mut [f32],
) {
    let rows = rows_per_task(width);
    d_logits
        .par_chunks_mut(rows * width)
        .zip(logits.par_chunks(rows * width))
        .zip(
            targets
                .par_chunks(rows)
                .zip(log_sums.par_chunks(rows).zip(grad.par_chunks(rows))),
        )
        .for_each(|((d_logits, logits), (targets, (log_sums, grad)))| {
            log_softmax_at_backward_chunk(logits, width, targets, log_sums, grad, d_logits)
        });
}

/// One AdamW step's coefficients, as [`adamw`] applies them.
#[derive(Clone, Copy, Debug)]
pub struct AdamWStep {
    /// β₁.
    pub beta1: f32,
    /// β₂.
    pub beta2: f32,
    /// ε added to the bias-corrected `sqrt(v)`.
    pub eps: f32,
    /// `lr / (1 − β₁ᵗ)`: the step on the bias-corrected first moment.
    pub step_size: f32,
    /// `sqrt(1 − β₂ᵗ)`: the second moment's bias correction.
    pub bias2_sqrt: f32,
    /// `1 − lr · weight_decay`: decoupled weight decay.
    pub decay: f32,
}

vectorised! {
    fn adamw_chunk(
        step: AdamWStep,
        grad: &[f32],
        param: &mut [f32],
        exp_avg: &mut [f32],
        exp_avg_sq: &mut [f32],
    ) {
        for (((p, m), v), &g) in param
            .iter_mut()
            .zip(exp_avg.iter_mut())
            .zip(exp_avg_sq.iter_mut())
            .zip(grad)
        {
            *m = step.beta1 * *m + (1.0 - step.beta1) * g;
            *v = step.beta2 * *v + (1.0 - step.beta2) * g * g;
            let denom = v.sqrt() / step.bias2_sqrt + step.eps;
            *p = *p * step.decay - *m / denom * step.step_size;
        }
    }
}

/// AdamW (PyTorch's formula) in place over a parameter and its two moments, one pass.
pub fn adamw(
    step: AdamWStep,
    grad: &[f32],
    param: &mut [f32],
    exp_avg: &mut [f32],
    exp_avg_sq: &mut [f32],
) {
    let chunk = rows_per_task(1);
    param
        .par_chunks_mut(chunk)
        .zip(exp_avg.par_chunks_mut(chunk))
        .zip(exp_avg_sq.par_chunks_mut(chunk))
        .zip(grad.par_chunks(chunk))
        .for_each(|(((param, exp_avg), exp_avg_sq), grad)| {
            adamw_chunk(step, grad, param, exp_avg, exp_avg_sq)
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std_over_its_range() {
        let mut worst = 0f32;
        let mut x = -87.0f32;
        while x < 88.0 {
            let relative = ((exp(x) - x.exp()) / x.exp()).abs();
            worst = worst.max(relative);
            x += 0.0137;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn masked_softmax_of_a_fully_hidden_row_is_zero() {
        let x = [1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0];
        let hidden = [true, true, true, true, false, true, false, true];
        let mask = KeyMask {
            hidden: &hidden,
            queries: 2,
            rows_per_batch: 2,
        };
        let mut out = [1f32; 8];
        masked_softmax(&x, 4, 1.0, mask, &mut out);
        assert_eq!(out[..4], [0.0; 4]);
        let expected = 1.0 / (1.0 + 2f32.exp());
        assert!((out[4] - expected).abs() < 1e-6 && out[5] == 0.0 && out[7] == 0.0);
    }
}
