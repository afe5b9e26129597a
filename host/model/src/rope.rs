//! Rotary position embeddings, computed on the host for exactly the positions a forward needs.

use ponder_checkpoint::{ModelConfig, RopeScaling};

/// The per-frequency inverse wavelengths of a model's RoPE, scaling applied.
#[derive(Clone, Debug)]
pub struct Rope {
    inverse_frequencies: Vec<f64>,
    head_dim: usize,
}

impl Rope {
    /// Frequencies as Hugging Face transformers computes them (`default`, `linear` and `llama3`).
    pub fn new(config: &ModelConfig) -> Self {
        let head_dim = config.head_dim;
        let half = head_dim / 2;
        let base: Vec<f64> = (0..half)
            .map(|i| {
                // transformers computes these in float32; round the same way.
                let exponent = ((2 * i) as f32 / head_dim as f32) as f64;
                (1.0 / (config.rope_theta as f32 as f64).powf(exponent)) as f32 as f64
            })
            .collect();
        let inverse_frequencies = match &config.rope_scaling {
            None => base,
            Some(RopeScaling::Linear { factor }) => base.iter().map(|f| f / factor).collect(),
            Some(RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            }) => {
                let old_context = *original_max_position_embeddings as f64;
                let low_freq_wavelen = old_context / low_freq_factor;
                let high_freq_wavelen = old_context / high_freq_factor;
                base.iter()
                    .map(|&frequency| {
                        let wavelen = 2.0 * std::f64::consts::PI / frequency;
                        if wavelen < high_freq_wavelen {
                            frequency
                        } else if wavelen > low_freq_wavelen {
                            frequency / factor
                        } else {
                            let smooth = (old_context / wavelen - low_freq_factor)
                                / (high_freq_factor - low_freq_factor);
                            (1.0 - smooth) * frequency / factor + smooth * frequency
                        }
                    })
                    .collect()
            }
        };
        Rope {
            inverse_frequencies,
            head_dim,
        }
    }

    /// `(cos, sin_signed)` tables of shape `[positions.len(), head_dim]`, row-major. `sin_signed`
    /// carries the sign of `rotate_half`, so that `x * cos + swap_halves(x) * sin_signed` is
    /// transformers' `x * cos + rotate_half(x) * sin`.
    pub fn tables(&self, positions: &[u32]) -> (Vec<f32>, Vec<f32>) {
        let half = self.head_dim / 2;
        let mut cos = Vec::with_capacity(positions.len() * self.head_dim);
        let mut sin = Vec::with_capacity(positions.len() * self.head_dim);
        let mut angles = vec![0f32; half];
        for &position in positions {
            for (angle, frequency) in angles.iter_mut().zip(&self.inverse_frequencies) {
                // float32 product, as transformers does.
                *angle = position as f32 * (*frequency as f32);
            }
            for _ in 0..2 {
                cos.extend(angles.iter().map(|a| a.cos()));
            }
            sin.extend(angles.iter().map(|a| -a.sin()));
            sin.extend(angles.iter().map(|a| a.sin()));
        }
        (cos, sin)
    }
}
