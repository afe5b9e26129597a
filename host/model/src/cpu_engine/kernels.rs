//! The few numeric kernels of the CPU engine, over plain `f32` slices.
//!
//! The matrix product is the one that matters: decoding multiplies a few dozen rows of
//! activations by each weight matrix, a shape where a general gemm spends its time packing
//! operands, and prefill a few hundred. Weights are packed once, when a decoding engine is built, into
//! panels of 32 output columns laid out input-major ([`PackedMatrix`]); the kernel computes
//! 12 × 32 register tiles in outer-product form (two panel vectors and one broadcast activation
//! per input index, no horizontal sums), over depth chunks that keep the panel in L1 while every
//! tile of a block of rows reads it. AVX-512 is used when the CPU has it (detected at run
//! time); otherwise a portable version of the same loop. The next chunk of weights is
//! prefetched while one is computed: decoding reads every weight from memory once per step
//! and uses it a few dozen times, so the product waits on memory as much as on arithmetic.
//!
//! From [`GEMM_ROWS`] rows up (prefill of many prompts, scoring) and wherever the weights were
//! not packed (an engine built for one forward) the product goes to the `gemm` crate over the
//! unpacked weights instead: there, blocking the activations too pays for itself. Attention's
//! products over many queries use it as well ([`gemm_product`]).

use rayon::prelude::*;

use crate::fused::kernels::rotate_head;

/// Below this many multiply-adds a product runs on the calling thread (fan-out costs more).
const PARALLEL_WORK: usize = 1 << 20;

/// From this many activation rows a product runs on the `gemm` crate's blocked kernels.
pub const GEMM_ROWS: usize = 512;

/// A raw output pointer shared by threads that write disjoint columns.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// SAFETY: every thread writes a disjoint set of output columns (see `matmul`).
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

/// The product on the `gemm` crate (`w` read transposed through its strides, no copy).
fn blocked_product(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    [m, n, k]: [usize; 3],
    threads: usize,
) {
    let out = &mut out[..m * n];
    match bias {
        Some(bias) => out
            .chunks_exact_mut(n)
            .for_each(|row| row.copy_from_slice(&bias[..n])),
        None => out.fill(0.0),
    }
    // out is [m, n] row-major, x [m, k] row-major, and w [n, k] read as the [k, n] right
    // operand (row stride 1, column stride k); the bias already in out is added to.
    gemm_product(
        (x, Strides { row: k, col: 1 }),
        (w, Strides { row: 1, col: k }),
        (out, Strides { row: n, col: 1 }),
        [m, n, k],
        Accumulate::Add,
        threads,
    );
}

/// A strided matrix operand of [`gemm_product`]: element `(i, j)` at `i * row + j * col`.
#[derive(Clone, Copy)]
pub(crate) struct Strides {
    /// Distance between rows.
    pub row: usize,
    /// Distance between columns.
    pub col: usize,
}

/// What [`gemm_product`] does with `out`'s previous contents.
#[derive(Clone, Copy)]
pub(crate) enum Accumulate {
    /// `out = scale · a · b`.
    Overwrite(f32),
    /// `out += a · b`.
    Add,
}

/// `out (=|+=) a · b` for strided `a` `[m, k]`, `b` `[k, n]` and `out` `[m, n]` on the `gemm`
/// crate, on `threads` threads of rayon's pool (1: the calling thread only).
///
/// # Panics
/// If a slice is shorter than its strides and shape reach (a bug of the caller).
pub(crate) fn gemm_product(
    (a, a_strides): (&[f32], Strides),
    (b, b_strides): (&[f32], Strides),
    (out, out_strides): (&mut [f32], Strides),
    [m, n, k]: [usize; 3],
    accumulate: Accumulate,
    threads: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    let last = |s: Strides, rows: usize, cols: usize| (rows - 1) * s.row + (cols - 1) * s.col;
    assert!(k > 0 && a.len() > last(a_strides, m, k) && b.len() > last(b_strides, k, n));
    assert!(out.len() > last(out_strides, m, n));
    let (read_out, alpha, beta) = match accumulate {
        Accumulate::Overwrite(scale) => (false, 0.0f32, scale),
        Accumulate::Add => (true, 1.0f32, 1.0f32),
    };
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: every element the strides reach was checked to lie inside its slice.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            out_strides.col as isize,
            out_strides.row as isize,
            read_out,
            a.as_ptr(),
            a_strides.col as isize,
            a_strides.row as isize,
            b.as_ptr(),
            b_strides.col as isize,
            b_strides.row as isize,
            alpha,
            beta,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Whether this CPU runs the AVX-512 kernel (detected once per product, not per tile).
fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx512f");
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

/// Columns of a packed panel: two AVX-512 vectors.
const PANEL: usize = 32;
/// Activation rows per register tile.
const TILE_ROWS: usize = 12;
/// Activation rows per cache block: the block's rows stay in L2 while every panel passes.
const ROW_BLOCK: usize = 128;
/// Input indices per pass over a panel: `DEPTH × PANEL` weights (16 KiB) stay in L1 while every
/// tile of the row block reads them.
const DEPTH: usize = 128;

/// A weight matrix `[n, k]` repacked for [`matmul`]: panels of [`PANEL`] output
/// columns, each stored `[k][PANEL]` (column-contiguous per input index) and zero-padded past
/// `n`, so the kernel reads every panel as one sequential stream and broadcasts activations.
pub struct PackedMatrix {
    data: Vec<f32>,
    /// Index of the first panel value in `data` (64-byte aligned, so no load splits a line).
    start: usize,
    n: usize,
    k: usize,
}

impl PackedMatrix {
    /// Packs `w`, row-major `[n, k]` (the Hugging Face `[out, in]` layout).
    ///
    /// # Panics
    /// If `w` is shorter than `n * k` (a bug of the caller, never user input).
    pub fn pack(w: &[f32], n: usize, k: usize) -> PackedMatrix {
        assert!(w.len() >= n * k);
        let panels = n.div_ceil(PANEL);
        let len = panels * k * PANEL;
        let mut data = vec![0f32; len + 16];
        let start = data.as_ptr().align_offset(64).min(16);
        data[start..start + len]
            .par_chunks_mut(k * PANEL)
            .enumerate()
            .for_each(|(panel, dst)| {
                let first = panel * PANEL;
                for c in 0..PANEL.min(n - first) {
                    let row = &w[(first + c) * k..][..k];
                    for (p, &value) in row.iter().enumerate() {
                        dst[p * PANEL + c] = value;
                    }
                }
            });
        PackedMatrix { data, start, n, k }
    }

    /// Rows `n` of the unpacked matrix (the product's output columns).
    pub fn rows(&self) -> usize {
        self.n
    }

    /// Columns `k` of the unpacked matrix (the product's input width).
    pub fn cols(&self) -> usize {
        self.k
    }

    fn panel(&self, panel: usize) -> &[f32] {
        &self.data[self.start + panel * self.k * PANEL..][..self.k * PANEL]
    }
}

/// `out[m, n] = x[m, k] · wᵀ (+ bias[n])` for `w` row-major `[n, k]`; `out` is overwritten.
/// `packed` is `w` packed: small products read it; large ones, and every product when there is
/// no packed copy, run on the `gemm` crate over `w` itself.
///
/// # Panics
/// If a slice is shorter than its shape says or `packed` is not `[n, k]` (a bug of the caller,
/// never user input).
pub fn matmul(
    x: &[f32],
    w: &[f32],
    packed: Option<&PackedMatrix>,
    bias: Option<&[f32]>,
    out: &mut [f32],
    [m, n, k]: [usize; 3],
) {
    assert!(x.len() >= m * k && out.len() >= m * n && w.len() >= n * k);
    if let Some(bias) = bias {
        assert!(bias.len() >= n);
    }
    let threads = if m * n * k >= PARALLEL_WORK {
        rayon::current_num_threads().max(1)
    } else {
        1
    };
    let packed = match packed {
        Some(packed) if m < GEMM_ROWS => packed,
        _ => {
            blocked_product(x, w, bias, out, [m, n, k], threads);
            return;
        }
    };
    assert!(packed.n == n && packed.k == k);
    let w = packed;
    let panels = n.div_ceil(PANEL);
    // Panels per task: a few tasks per thread for balance.
    let per_task = panels.div_ceil(threads * 4).max(1);
    let shared = SharedOut(out.as_mut_ptr());
    let avx512 = has_avx512();
    for rows in (0..m).step_by(ROW_BLOCK) {
        let rows = rows..(rows + ROW_BLOCK).min(m);
        let run = |first: usize| {
            let out = shared;
            for panel in first..(first + per_task).min(panels) {
                // SAFETY: shapes checked above; each task writes its own panels' columns;
                // `avx512` was detected on this CPU.
                unsafe { panel_rows(x, w, bias, out.0, panel, rows.clone(), avx512) };
            }
        };
        if threads > 1 {
            (0..panels)
                .step_by(per_task)
                .collect::<Vec<_>>()
                .into_par_iter()
                .for_each(run);
        } else {
            (0..panels).step_by(per_task).for_each(run);
        }
    }
}

/// One panel's columns for `rows`, tile by tile.
///
/// # Safety
/// As [`matmul`] checks; no other thread writes this panel's columns.
unsafe fn panel_rows(
    x: &[f32],
    w: &PackedMatrix,
    bias: Option<&[f32]>,
    out: *mut f32,
    panel: usize,
    rows: std::ops::Range<usize>,
    avx512: bool,
) {
    for depth in (0..w.k).step_by(DEPTH) {
        let depth = depth..(depth + DEPTH).min(w.k);
        prefetch_following(w, panel, depth.end);
        let mut i = rows.start;
        while i < rows.end {
            let mr = (rows.end - i).min(TILE_ROWS);
            // SAFETY: forwarded.
            unsafe {
                match mr {
                    12 => packed_tile::<12>(x, w, bias, out, panel, i, depth.clone(), avx512),
                    11 => packed_tile::<11>(x, w, bias, out, panel, i, depth.clone(), avx512),
                    10 => packed_tile::<10>(x, w, bias, out, panel, i, depth.clone(), avx512),
                    9 => packed_tile::<9>(x, w, bias, out, panel, i, depth.clone(), avx512),
                    8 => packed_tile::<8>(x, w, bias, out, panel, i, depth.clone(), avx512),
                    7 => packed_tile::<7>(x, w, bias, out, panel, i, depth.clone(), avx512),
                    6 => packed_tile::<6>(x, w, bias, out, panel, i, depth.clone(), avx512),
                    5 => packed_tile::<5>(x, w, bias, out, panel, i, depth.clone(), avx512),
                    4 => packed_tile::<4>(x, w, bias, out, panel, i, depth.clone(), avx512),
                    3 => packed_tile::<3>(x, w, bias, out, panel, i, depth.clone(), avx512),
                    2 => packed_tile::<2>(x, w, bias, out, panel, i, depth.clone(), avx512),
                    _ => packed_tile::<1>(x, w, bias, out, panel, i, depth.clone(), avx512),
                }
            }
            i += mr;
        }
    }
}

/// Asks the cache for the next depth chunk of packed weights (the rest of this panel or the
/// start of the next, which follows it in memory) while this one is computed: decoding streams
/// the weights from memory once per step, and the hardware prefetcher alone leaves the kernel
/// waiting on them.
fn prefetch_following(w: &PackedMatrix, panel: usize, depth_end: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let from = w.start + (panel * w.k + depth_end) * PANEL;
        let to = (from + DEPTH * PANEL).min(w.data.len());
        // 16 floats per cache line.
        for index in (from..to).step_by(16) {
            // SAFETY: the address is inside `data`; a prefetch never faults.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(w.data.as_ptr().add(index).cast()) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (w, panel, depth_end);
}

/// Rows `i..i+MR` × the panel's columns, over inputs `depth`: the first depth chunk writes
/// `out` (with the bias), later ones add to it.
///
/// # Safety
/// As [`panel_rows`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn packed_tile<const MR: usize>(
    x: &[f32],
    w: &PackedMatrix,
    bias: Option<&[f32]>,
    out: *mut f32,
    panel: usize,
    i: usize,
    depth: std::ops::Range<usize>,
    avx512: bool,
) {
    let (n, k) = (w.n, w.k);
    let first = panel * PANEL;
    let width = PANEL.min(n - first);
    // The tile starts from the bias (first depth chunk) or from the partial sums in `out`.
    let mut sums = [[0f32; PANEL]; MR];
    for (r, row) in sums.iter_mut().enumerate() {
        if depth.start == 0 {
            if let Some(bias) = bias {
                row[..width].copy_from_slice(&bias[first..first + width]);
            }
        } else {
            // SAFETY: row i + r, columns first..first + width are inside out and this task's.
            let slot = unsafe { std::slice::from_raw_parts(out.add((i + r) * n + first), width) };
            row[..width].copy_from_slice(slot);
        }
    }
    let x = &x[i * k + depth.start..(i + MR - 1) * k + depth.end];
    let weights = &w.panel(panel)[depth.start * PANEL..depth.end * PANEL];
    let chunk = depth.len();
    #[cfg(target_arch = "x86_64")]
    if avx512 {
        // SAFETY: the caller detected AVX-512F; x holds MR rows (stride k) of chunk inputs,
        // weights chunk × PANEL values.
        unsafe { avx512::packed_tile_sums::<MR>(x, k, weights, chunk, &mut sums) };
    } else {
        portable_packed_sums::<MR>(x, k, weights, chunk, &mut sums);
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = avx512;
        portable_packed_sums::<MR>(x, k, weights, chunk, &mut sums);
    }
    for (r, row) in sums.iter().enumerate() {
        // SAFETY: as above.
        let slot = unsafe { std::slice::from_raw_parts_mut(out.add((i + r) * n + first), width) };
        slot.copy_from_slice(&row[..width]);
    }
}

/// Adds the tile's products to `sums` without SIMD intrinsics (the compiler vectorises the
/// inner loop).
pub(crate) fn portable_packed_sums<const MR: usize>(
    x: &[f32],
    stride: usize,
    panel: &[f32],
    depth: usize,
    sums: &mut [[f32; PANEL]; MR],
) {
    for (p, weights) in panel.chunks_exact(PANEL).enumerate().take(depth) {
        for (r, row) in sums.iter_mut().enumerate() {
            let xv = x[r * stride + p];
            for (s, &wv) in row.iter_mut().zip(weights) {
                *s += xv * wv;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// Adds a tile of `MR` rows × 32 columns to `sums`: per input index, two panel vectors and
    /// one broadcast activation per row (outer-product form: no horizontal sums).
    ///
    /// # Safety
    /// The CPU must support AVX-512F; `x` holds `MR` rows `stride` apart of `depth` values,
    /// `panel` `depth × 32` values.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn packed_tile_sums<const MR: usize>(
        x: &[f32],
        stride: usize,
        panel: &[f32],
        depth: usize,
        sums: &mut [[f32; 32]; MR],
    ) {
        debug_assert!(x.len() >= (MR - 1) * stride + depth && panel.len() >= depth * 32);
        let xp = x.as_ptr();
        let wp = panel.as_ptr();
        // SAFETY: every load is inside the slices checked above.
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); 2]; MR];
            for (acc_row, sum_row) in acc.iter_mut().zip(sums.iter()) {
                acc_row[0] = _mm512_loadu_ps(sum_row.as_ptr());
                acc_row[1] = _mm512_loadu_ps(sum_row.as_ptr().add(16));
            }
            for p in 0..depth {
                let w0 = _mm512_loadu_ps(wp.add(p * 32));
                let w1 = _mm512_loadu_ps(wp.add(p * 32 + 16));
                for (r, acc_row) in acc.iter_mut().enumerate() {
                    let xv = _mm512_set1_ps(*xp.add(r * stride + p));
                    acc_row[0] = _mm512_fmadd_ps(xv, w0, acc_row[0]);
                    acc_row[1] = _mm512_fmadd_ps(xv, w1, acc_row[1]);
                }
            }
            for (sum_row, acc_row) in sums.iter_mut().zip(&acc) {
                _mm512_storeu_ps(sum_row.as_mut_ptr(), acc_row[0]);
                _mm512_storeu_ps(sum_row.as_mut_ptr().add(16), acc_row[1]);
            }
        }
    }
}

/// Rotary embedding in place for `[tokens, heads, head_dim]` with per-token `cos`/`sin` tables
/// `[tokens, head_dim]` laid out as [`crate::Rope::tables`] returns them (rotate-half form: the
/// sign of the first half lives in `sin`).
pub fn apply_rope(x: &mut [f32], heads: usize, head_dim: usize, cos: &[f32], sin: &[f32]) {
    let mut rotated = vec![0f32; head_dim];
    for (token, chunk) in x.chunks_exact_mut(heads * head_dim).enumerate() {
        let cos = &cos[token * head_dim..][..head_dim];
        let sin = &sin[token * head_dim..][..head_dim];
        for head in chunk.chunks_exact_mut(head_dim) {
            rotate_head(head, cos, sin, &mut rotated);
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

    fn assert_close(out: &[f32], expected: &[f32], shape: [usize; 3]) {
        for (a, b) in out.iter().zip(expected) {
            assert!(
                (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                "{shape:?}: {a} vs {b}"
            );
        }
    }

    #[test]
    fn matmul_matches_naive_on_every_tile_shape_and_tail() {
        // m covers full and partial register tiles and several row blocks; n full and partial
        // panels; k one depth chunk, several, a partial one, and k < 16.
        for &(m, n, k) in &[
            (1, 1, 1),
            (3, 5, 7),
            (12, 32, 16),
            (13, 33, 128),
            (5, 9, 129),
            (33, 70, 576),
            (8, 300, 1000),
            (140, 65, 300),
            (GEMM_ROWS, 33, 70),
            (GEMM_ROWS + 37, 300, 129),
        ] {
            let x = values(m * k, 1);
            let w = values(n * k, 2);
            let bias = values(n, 3);
            let expected = naive(&x, &w, Some(&bias), [m, n, k]);
            let packed = PackedMatrix::pack(&w, n, k);
            assert_eq!((packed.rows(), packed.cols()), (n, k));
            let without_bias = naive(&x, &w, None, [m, n, k]);
            for packed in [Some(&packed), None] {
                let mut out = vec![f32::NAN; m * n];
                matmul(&x, &w, packed, Some(&bias), &mut out, [m, n, k]);
                assert_close(&out, &expected, [m, n, k]);
                matmul(&x, &w, packed, None, &mut out, [m, n, k]);
                assert_close(&out, &without_bias, [m, n, k]);
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
        matmul(
            &x,
            &w,
            Some(&PackedMatrix::pack(&w, n, k)),
            None,
            &mut out,
            [m, n, k],
        );
        assert_close(&out, &expected, [m, n, k]);
    }

    #[test]
    fn portable_tile_agrees_with_naive() {
        // Three rows of a five-row x (stride 37), two depth chunks accumulated.
        let (k, n) = (37, 32);
        let x = values(5 * k, 6);
        let w = values(n * k, 7);
        let expected = naive(&x[k..4 * k], &w, None, [3, n, k]);
        let packed = PackedMatrix::pack(&w, n, k);
        let mut sums = [[0f32; PANEL]; 3];
        portable_packed_sums::<3>(&x[k..], k, &packed.panel(0)[..20 * PANEL], 20, &mut sums);
        portable_packed_sums::<3>(
            &x[k + 20..],
            k,
            &packed.panel(0)[20 * PANEL..],
            17,
            &mut sums,
        );
        for r in 0..3 {
            for c in 0..n {
                assert!((sums[r][c] - expected[r * n + c]).abs() < 1e-4);
            }
        }
    }
}
