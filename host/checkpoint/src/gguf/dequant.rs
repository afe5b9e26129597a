//! Dequantisation of ggml tensor blocks (F32, F16, BF16, F64, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
//! Q4_K, Q6_K) to f32.

use super::file::GgmlType;
use crate::CheckpointError;

fn f16_at(bytes: &[u8], at: usize) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([bytes[at], bytes[at + 1]])).to_f32()
}

/// Dequantises raw tensor data of `ggml_type` (whole blocks) to f32.
///
/// # Errors
///
/// [`CheckpointError::InvalidConfig`] when `bytes` is not a whole number of blocks.
pub fn dequantize_blocks(ggml_type: GgmlType, bytes: &[u8]) -> Result<Vec<f32>, CheckpointError> {
    let block_bytes = ggml_type.block_bytes() as usize;
    if !bytes.len().is_multiple_of(block_bytes) {
        return Err(CheckpointError::InvalidConfig(format!(
            "{} bytes is not a whole number of {ggml_type:?} blocks of {block_bytes} bytes",
            bytes.len()
        )));
    }
    let mut out = Vec::with_capacity(bytes.len() / block_bytes * ggml_type.block_size() as usize);
    dequantize_into(ggml_type, bytes, &mut out);
    Ok(out)
}

/// Dequantises whole blocks of `ggml_type` from `bytes` onto `out`.
pub(super) fn dequantize_into(ggml_type: GgmlType, bytes: &[u8], out: &mut Vec<f32>) {
    let block_bytes = ggml_type.block_bytes() as usize;
    match ggml_type {
        GgmlType::F32 => out.extend(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        ),
        GgmlType::F16 => out.extend(bytes.chunks_exact(2).map(|c| f16_at(c, 0))),
        GgmlType::BF16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|c| half::bf16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32()),
        ),
        GgmlType::F64 => out.extend(bytes.chunks_exact(8).map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            f64::from_le_bytes(b) as f32
        })),
        GgmlType::Q8_0 => {
            for block in bytes.chunks_exact(block_bytes) {
                let d = f16_at(block, 0);
                out.extend(block[2..34].iter().map(|&q| f32::from(q as i8) * d));
            }
        }
        GgmlType::Q4_0 => {
            for block in bytes.chunks_exact(block_bytes) {
                let d = f16_at(block, 0);
                let qs = &block[2..18];
                out.extend(qs.iter().map(|&q| (f32::from(q & 0x0f) - 8.0) * d));
                out.extend(qs.iter().map(|&q| (f32::from(q >> 4) - 8.0) * d));
            }
        }
        GgmlType::Q4_1 => {
            for block in bytes.chunks_exact(block_bytes) {
                let d = f16_at(block, 0);
                let m = f16_at(block, 2);
                let qs = &block[4..20];
                out.extend(qs.iter().map(|&q| f32::from(q & 0x0f) * d + m));
                out.extend(qs.iter().map(|&q| f32::from(q >> 4) * d + m));
            }
        }
        GgmlType::Q5_0 | GgmlType::Q5_1 => {
            let with_min = ggml_type == GgmlType::Q5_1;
            for block in bytes.chunks_exact(block_bytes) {
                let d = f16_at(block, 0);
                let (m, rest) = if with_min {
                    (f16_at(block, 2), &block[4..])
                } else {
                    (0.0, &block[2..])
                };
                let qh = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
                let qs = &rest[4..20];
                let (lo, hi): (Vec<f32>, Vec<f32>) = (0..16)
                    .map(|j| {
                        let h0 = ((qh >> j) << 4) & 0x10;
                        let h1 = (qh >> (j + 12)) & 0x10;
                        let x0 = (u32::from(qs[j] & 0x0f) | h0) as f32;
                        let x1 = (u32::from(qs[j] >> 4) | h1) as f32;
                        if with_min {
                            (x0 * d + m, x1 * d + m)
                        } else {
                            ((x0 - 16.0) * d, (x1 - 16.0) * d)
                        }
                    })
                    .unzip();
                out.extend(lo);
                out.extend(hi);
            }
        }
        GgmlType::Q4K => {
            for block in bytes.chunks_exact(block_bytes) {
                let d = f16_at(block, 0);
                let dmin = f16_at(block, 2);
                let scales = &block[4..16];
                let qs = &block[16..144];
                for (chunk, q) in qs.chunks_exact(32).enumerate() {
                    let (sc1, m1) = k4_scale_min(2 * chunk, scales);
                    let (sc2, m2) = k4_scale_min(2 * chunk + 1, scales);
                    let (d1, min1) = (d * f32::from(sc1), dmin * f32::from(m1));
                    let (d2, min2) = (d * f32::from(sc2), dmin * f32::from(m2));
                    out.extend(q.iter().map(|&b| d1 * f32::from(b & 0x0f) - min1));
                    out.extend(q.iter().map(|&b| d2 * f32::from(b >> 4) - min2));
                }
            }
        }
        GgmlType::Q6K => {
            for block in bytes.chunks_exact(block_bytes) {
                let d = f16_at(block, 208);
                for half_block in 0..2 {
                    let ql = &block[64 * half_block..64 * half_block + 64];
                    let qh = &block[128 + 32 * half_block..128 + 32 * half_block + 32];
                    let sc = &block[192 + 8 * half_block..192 + 8 * half_block + 8];
                    let mut y = [0f32; 128];
                    for l in 0..32 {
                        let is = l / 16;
                        let q1 = i32::from((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) - 32;
                        let q2 = i32::from((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
                        let q3 = i32::from((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                        let q4 = i32::from((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                        let scale = |k: usize| d * f32::from(sc[is + k] as i8);
                        y[l] = scale(0) * q1 as f32;
                        y[l + 32] = scale(2) * q2 as f32;
                        y[l + 64] = scale(4) * q3 as f32;
                        y[l + 96] = scale(6) * q4 as f32;
                    }
                    out.extend_from_slice(&y);
                }
            }
        }
    }
}

/// Scale and minimum `j` of a Q4_K super-block's packed 6-bit table.
fn k4_scale_min(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn f16_bytes(x: f32) -> [u8; 2] {
        half::f16::from_f32(x).to_bits().to_le_bytes()
    }

    #[test]
    fn q4_0_q4_1_q8_0_blocks_dequantise() {
        // Q4_0: d = 0.5, nibbles j and j+16 from byte j.
        let mut block = f16_bytes(0.5).to_vec();
        block.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let mut out = Vec::new();
        dequantize_into(GgmlType::Q4_0, &block, &mut out);
        let expected: Vec<f32> = (0..16)
            .map(|j| (j as f32 - 8.0) * 0.5)
            .chain((0..16).map(|j| ((15 - j) as f32 - 8.0) * 0.5))
            .collect();
        assert_eq!(out, expected);

        // Q4_1: d = 0.25, m = -1.
        let mut block = f16_bytes(0.25).to_vec();
        block.extend(f16_bytes(-1.0));
        block.extend((0..16u8).map(|j| j | (j << 4)));
        let mut out = Vec::new();
        dequantize_into(GgmlType::Q4_1, &block, &mut out);
        let half: Vec<f32> = (0..16).map(|j| j as f32 * 0.25 - 1.0).collect();
        assert_eq!(out, [half.clone(), half].concat());

        // Q8_0: d = 2, signed bytes.
        let mut block = f16_bytes(2.0).to_vec();
        block.extend((0..32i8).map(|j| (j - 16) as u8));
        let mut out = Vec::new();
        dequantize_into(GgmlType::Q8_0, &block, &mut out);
        assert_eq!(
            out,
            (0..32).map(|j| (j as f32 - 16.0) * 2.0).collect::<Vec<_>>()
        );
    }

    #[test]
    fn q5_0_uses_the_high_bits() {
        let mut block = f16_bytes(1.0).to_vec();
        // High bit set for element 0 (bit 0) and element 16 (bit 12 + 4 = 16).
        block.extend(0x0001_0001u32.to_le_bytes());
        block.extend([0u8; 16]);
        let mut out = Vec::new();
        dequantize_into(GgmlType::Q5_0, &block, &mut out);
        assert_eq!(out[0], 0.0); // 16 - 16
        assert_eq!(out[1], -16.0);
        assert_eq!(out[16], 0.0);
        assert_eq!(out[17], -16.0);
    }
}
