//! The few numeric kernels of CPU decoding, over plain `f32` slices.
//!
//! The matrix product is the one that matters: decoding multiplies a few dozen rows of
//! activations by each weight matrix, a shape where a general gemm spends its time packing
//! operands. Here every output is a dot product of an activation row and a weight row (weights
//! stay in their Hugging Face `[out, in]` layout), computed in 4 × 4 register tiles so each
//! weight row is streamed once per tile of activation rows. AVX-512 is used when the CPU has
//! it (detected at run time); otherwise a portable version of the same loop.

use crate::fused::kernels::dot;
use rayon::prelude::*;

/// Below this many multiply-adds a product runs on the calling thread (fan-out costs more).
const PARALLEL_WORK: usize = 1 << 20;

/// A raw output pointer shared by threads that write disjoint columns.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// SAFETY: every thread writes a disjoint set of output columns (see `matmul_transposed`).
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

/// `out[m, n] = x[m, k] · w[n, k]ᵀ (+ bias[n])`, all row-major; `out` is overwritten.
///
/// # Panics
/// If a slice is shorter than its shape says (a bug of the caller, never user input).
pub fn matmul_transposed(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    [m, n, k]: [usize; 3],
) {
    assert!(x.len() >= m * k && w.len() >= n * k && out.len() >= m * n);
    if let Some(bias) = bias {
        assert!(bias.len() >= n);
    }
    let threads = if m * n * k >= PARALLEL_WORK {
        rayon::current_num_threads().max(1)
    } else {
        1
    };
    // Column blocks, a multiple of the tile width, a few per thread for balance.
    let block = n.div_ceil(threads * 4).next_multiple_of(4).max(4);
    let shared = SharedOut(out.as_mut_ptr());
    let avx512 = has_avx512();
    let run = |start: usize| {
        let end = (start + block).min(n);
        let out = shared;
        // SAFETY: slices were checked above; blocks [start, end) are disjoint across calls;
        // `avx512` was detected on this CPU.
        unsafe { product_block(x, w, bias, out.0, [m, n, k], start..end, avx512) };
    };
    if threads > 1 {
        (0..n)
            .step_by(block)
            .collect::<Vec<_>>()
            .into_par_iter()
            .for_each(run);
    } else {
        (0..n).step_by(block).for_each(run);
    }
}

/// Whether this CPU runs the AVX-512 tile (detected once per product, not per tile).
fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx512f");
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

/// Columns `cols` of the product, tile by tile.
///
/// # Safety
/// `x`, `w`, `bias` and `out` must hold the shapes given; no other thread writes `cols`;
/// `avx512` only where the CPU has AVX-512F.
#[allow(clippy::too_many_arguments)]
unsafe fn product_block(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    out: *mut f32,
    dims: [usize; 3],
    cols: std::ops::Range<usize>,
    avx512: bool,
) {
    let [m, _, _] = dims;
    let mut j = cols.start;
    while j < cols.end {
        let nr = (cols.end - j).min(4);
        let mut i = 0;
        while i < m {
            let mr = (m - i).min(4);
            // SAFETY: forwarded from the caller; the tile lies inside the shapes.
            unsafe {
                match (mr, nr) {
                    (4, 4) => tile::<4, 4>(x, w, bias, out, dims, i, j, avx512),
                    (4, 3) => tile::<4, 3>(x, w, bias, out, dims, i, j, avx512),
                    (4, 2) => tile::<4, 2>(x, w, bias, out, dims, i, j, avx512),
                    (4, 1) => tile::<4, 1>(x, w, bias, out, dims, i, j, avx512),
                    (3, 4) => tile::<3, 4>(x, w, bias, out, dims, i, j, avx512),
                    (3, 3) => tile::<3, 3>(x, w, bias, out, dims, i, j, avx512),
                    (3, 2) => tile::<3, 2>(x, w, bias, out, dims, i, j, avx512),
                    (3, 1) => tile::<3, 1>(x, w, bias, out, dims, i, j, avx512),
                    (2, 4) => tile::<2, 4>(x, w, bias, out, dims, i, j, avx512),
                    (2, 3) => tile::<2, 3>(x, w, bias, out, dims, i, j, avx512),
                    (2, 2) => tile::<2, 2>(x, w, bias, out, dims, i, j, avx512),
                    (2, 1) => tile::<2, 1>(x, w, bias, out, dims, i, j, avx512),
                    (1, 4) => tile::<1, 4>(x, w, bias, out, dims, i, j, avx512),
                    (1, 3) => tile::<1, 3>(x, w, bias, out, dims, i, j, avx512),
                    (1, 2) => tile::<1, 2>(x, w, bias, out, dims, i, j, avx512),
                    _ => tile::<1, 1>(x, w, bias, out, dims, i, j, avx512),
                }
            }
            i += mr;
        }
        j += nr;
    }
}

/// One `MR × NR` tile of outputs, rows `i..i+MR`, columns `j..j+NR`.
///
/// # Safety
/// As [`product_block`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const MR: usize, const NR: usize>(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    out: *mut f32,
    [_, n, k]: [usize; 3],
    i: usize,
    j: usize,
    avx512: bool,
) {
    let mut sums = [[0f32; NR]; MR];
    #[cfg(target_arch = "x86_64")]
    if avx512 {
        // SAFETY: the caller detected AVX-512F; bounds are the caller's promise.
        unsafe { avx512::tile_dots::<MR, NR>(x, w, k, i, j, &mut sums) };
    } else {
        portable_tile_dots::<MR, NR>(x, w, k, i, j, &mut sums);
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = avx512;
        portable_tile_dots::<MR, NR>(x, w, k, i, j, &mut sums);
    }
    for (r, row) in sums.iter().enumerate() {
        for (c, &sum) in row.iter().enumerate() {
            let b = bias.map_or(0.0, |b| b[j + c]);
            // SAFETY: (i + r, j + c) is inside out's [m, n] and in this thread's columns.
            unsafe { *out.add((i + r) * n + j + c) = sum + b };
        }
    }
}

/// The tile's dot products without SIMD intrinsics (see [`dot`]).
pub(crate) fn portable_tile_dots<const MR: usize, const NR: usize>(
    x: &[f32],
    w: &[f32],
    k: usize,
    i: usize,
    j: usize,
    sums: &mut [[f32; NR]; MR],
) {
    for (r, row) in sums.iter_mut().enumerate() {
        let xr = &x[(i + r) * k..][..k];
        for (c, sum) in row.iter_mut().enumerate() {
            *sum = dot(xr, &w[(j + c) * k..][..k]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// The tile's dot products, 16 lanes at a time; the last partial chunk uses masked loads.
    ///
    /// # Safety
    /// The CPU must support AVX-512F; rows `i..i+MR` of `x` and `j..j+NR` of `w` must exist.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tile_dots<const MR: usize, const NR: usize>(
        x: &[f32],
        w: &[f32],
        k: usize,
        i: usize,
        j: usize,
        sums: &mut [[f32; NR]; MR],
    ) {
        debug_assert!(x.len() >= (i + MR) * k && w.len() >= (j + NR) * k);
        let mut acc = [[_mm512_setzero_ps(); NR]; MR];
        let xp = x[i * k..].as_ptr();
        let wp = w[j * k..].as_ptr();
        let mut p = 0;
        // SAFETY: every load is inside the rows checked above (masked past k).
        unsafe {
            while p + 16 <= k {
                let mut wv = [_mm512_setzero_ps(); NR];
                for (c, v) in wv.iter_mut().enumerate() {
                    *v = _mm512_loadu_ps(wp.add(c * k + p));
                }
                for (r, acc_row) in acc.iter_mut().enumerate() {
                    let xv = _mm512_loadu_ps(xp.add(r * k + p));
                    for (a, &v) in acc_row.iter_mut().zip(&wv) {
                        *a = _mm512_fmadd_ps(xv, v, *a);
                    }
                }
                p += 16;
            }
            if p < k {
                let mask: __mmask16 = ((1u32 << (k - p)) - 1) as u16;
                let mut wv = [_mm512_setzero_ps(); NR];
                for (c, v) in wv.iter_mut().enumerate() {
                    *v = _mm512_maskz_loadu_ps(mask, wp.add(c * k + p));
                }
                for (r, acc_row) in acc.iter_mut().enumerate() {
                    let xv = _mm512_maskz_loadu_ps(mask, xp.add(r * k + p));
                    for (a, &v) in acc_row.iter_mut().zip(&wv) {
                        *a = _mm512_fmadd_ps(xv, v, *a);
                    }
                }
            }
        }
        for (sum_row, acc_row) in sums.iter_mut().zip(&acc) {
            for (s, &a) in sum_row.iter_mut().zip(acc_row) {
                *s = _mm512_reduce_add_ps(a);
            }
        }
    }
}

/// Rotary embedding in place for `[tokens, heads, head_dim]` with per-token `cos`/`sin` tables
/// `[tokens, head_dim]` laid out as [`crate::Rope::tables`] returns them (rotate-half form: the
/// sign of the first half lives in `sin`).
pub fn apply_rope(x: &mut [f32], heads: usize, head_dim: usize, cos: &[f32], sin: &[f32]) {
    let half = head_dim / 2;
    let mut rotated = vec![0f32; head_dim];
    for (token, chunk) in x.chunks_exact_mut(heads * head_dim).enumerate() {
        let cos = &cos[token * head_dim..][..head_dim];
        let sin = &sin[token * head_dim..][..head_dim];
        for head in chunk.chunks_exact_mut(head_dim) {
            for d in 0..head_dim {
                let partner = head[(d + half) % head_dim];
                rotated[d] = head[d] * cos[d] + partner * sin[d];
            }
            head.copy_from_slice(&rotated);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[f32], w: &[f32], bias: Option<&[f32]>, [m, n, k]: [usize; 3]) -> Vec<f32> {
        let mut out = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0f64;
                for p in 0..k {
                    s += x[i * k + p] as f64 * w[j * k + p] as f64;
                }
                out[i * n + j] = s as f32 + bias.map_or(0.0, |b| b[j]);
            }
        }
        out
    }

    fn values(count: usize, salt: u32) -> Vec<f32> {
        (0..count as u32)
            .map(|i| {
                ((i.wrapping_mul(2654435761).wrapping_add(salt) >> 8) % 1000) as f32 / 500.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn matmul_matches_naive_on_every_tile_shape_and_tail() {
        // m and n cover full and partial tiles; k covers a multiple of 16, a tail, and k < 16.
        for &(m, n, k) in &[
            (1, 1, 1),
            (3, 5, 7),
            (4, 4, 16),
            (5, 9, 33),
            (33, 70, 576),
            (8, 300, 1000),
        ] {
            let x = values(m * k, 1);
            let w = values(n * k, 2);
            let bias = values(n, 3);
            let expected = naive(&x, &w, Some(&bias), [m, n, k]);
            let mut out = vec![f32::NAN; m * n];
            matmul_transposed(&x, &w, Some(&bias), &mut out, [m, n, k]);
            for (a, b) in out.iter().zip(&expected) {
                assert!(
                    (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                    "{m}x{n}x{k}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn large_products_split_over_threads_match_naive() {
        let (m, n, k) = (32, 1030, 64);
        let x = values(m * k, 4);
        let w = values(n * k, 5);
        let expected = naive(&x, &w, None, [m, n, k]);
        let mut out = vec![0f32; m * n];
        matmul_transposed(&x, &w, None, &mut out, [m, n, k]);
        for (a, b) in out.iter().zip(&expected) {
            assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()));
        }
    }

    #[test]
    fn portable_tile_agrees_with_naive() {
        let (k, m, n) = (37, 4, 4);
        let x = values(m * k, 6);
        let w = values(n * k, 7);
        let expected = naive(&x, &w, None, [m, n, k]);
        let mut sums = [[0f32; 4]; 4];
        portable_tile_dots::<4, 4>(&x, &w, k, 0, 0, &mut sums);
        for r in 0..4 {
            for c in 0..4 {
                assert!((sums[r][c] - expected[r * n + c]).abs() < 1e-4);
            }
        }
    }
}
