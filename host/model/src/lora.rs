//! LoRA (low-rank adaptation, Hu et al. 2021, arXiv 2106.09685) on the linear projections of
//! [`CausalLm`].
//!
//! A projection with an adapter computes `y = x Wᵀ + b + s · (x Aᵀ) Bᵀ` with `A: [rank, in]`,
//! `B: [out, rank]` and `s = alpha / rank`, as PEFT does. The update is applied factored (two thin
//! matmuls) instead of materialising `W + s·B·A` on every forward. Attaching adapters freezes
//! every weight of the model, so that only `A` and `B` get gradients and optimiser state; saving
//! merges them (`W' = W + s·B·A`, see [`crate::HfLinear::merged_weight`]).

use std::fmt;
use std::str::FromStr;

use burn::module::{Module, Param};
use burn::tensor::module::linear;
use burn::tensor::{Device, Tensor, TensorData};
use ponder_checkpoint::{HostTensor, Weights};
use serde::{Deserialize, Serialize};

use crate::ModelError;
use crate::model::{CausalLm, DecoderLayer, ParamTensor};

/// A projection of a decoder layer that can carry a LoRA adapter (the Hugging Face module names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoraTarget {
    /// `self_attn.q_proj`.
    QProj,
    /// `self_attn.k_proj`.
    KProj,
    /// `self_attn.v_proj`.
    VProj,
    /// `self_attn.o_proj`.
    OProj,
    /// `mlp.gate_proj`.
    GateProj,
    /// `mlp.up_proj`.
    UpProj,
    /// `mlp.down_proj`.
    DownProj,
}

impl LoraTarget {
    /// Every target, in layer order: the attention and the MLP projections (the default).
    pub const ALL: [LoraTarget; 7] = [
        LoraTarget::QProj,
        LoraTarget::KProj,
        LoraTarget::VProj,
        LoraTarget::OProj,
        LoraTarget::GateProj,
        LoraTarget::UpProj,
        LoraTarget::DownProj,
    ];

    /// The module name (`q_proj`, ...).
    pub fn name(self) -> &'static str {
        match self {
            LoraTarget::QProj => "q_proj",
            LoraTarget::KProj => "k_proj",
            LoraTarget::VProj => "v_proj",
            LoraTarget::OProj => "o_proj",
            LoraTarget::GateProj => "gate_proj",
            LoraTarget::UpProj => "up_proj",
            LoraTarget::DownProj => "down_proj",
        }
    }

    /// The path inside a decoder layer (`self_attn.q_proj`, `mlp.up_proj`, ...).
    pub fn module_path(self) -> String {
        format!("{}.{}", DecoderLayer::block_of(self), self.name())
    }

    /// The valid names, comma-separated (for help texts and errors).
    pub fn valid_names() -> String {
        Self::ALL.map(Self::name).join(", ")
    }

    /// Parses a comma-separated list (`q_proj,v_proj`); duplicates are dropped, order kept.
    ///
    /// # Errors
    ///
    /// [`ModelError::InvalidRequest`] for an unknown name or an empty list.
    pub fn parse_list(list: &str) -> Result<Vec<LoraTarget>, ModelError> {
        let mut targets = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let target: LoraTarget = item.parse()?;
            if !targets.contains(&target) {
                targets.push(target);
            }
        }
        if targets.is_empty() {
            return Err(ModelError::InvalidRequest(format!(
                "no LoRA target given; valid targets: {}",
                Self::valid_names()
            )));
        }
        Ok(targets)
    }
}

impl fmt::Display for LoraTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for LoraTarget {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                ModelError::InvalidRequest(format!(
                    "unknown LoRA target `{s}`; valid targets: {}",
                    Self::valid_names()
                ))
            })
    }
}

/// Rank, scaling and placement of the adapters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    /// Rank `r` of the update `B·A`.
    pub rank: usize,
    /// Scaling numerator: the update is multiplied by `alpha / rank`.
    pub alpha: f64,
    /// The projections that get an adapter, in every decoder layer.
    pub targets: Vec<LoraTarget>,
}

impl LoraConfig {
    /// Rank `rank`, `alpha = 2·rank`, every attention and MLP projection.
    pub fn new(rank: usize) -> Self {
        Self {
            rank,
            alpha: 2.0 * rank as f64,
            targets: LoraTarget::ALL.to_vec(),
        }
    }

    /// `alpha / rank`.
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }

    /// Rejects a zero rank, a non-finite alpha or an empty target list.
    ///
    /// # Errors
    ///
    /// [`ModelError::InvalidRequest`] naming the offending value.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |what: String| Err(ModelError::InvalidRequest(format!("LoRA: {what}")));
        if self.rank == 0 {
            return bad("rank must be at least 1".to_string());
        }
        if !self.alpha.is_finite() || self.alpha <= 0.0 {
            return bad(format!("alpha must be positive, got {}", self.alpha));
        }
        if self.targets.is_empty() {
            return bad(format!(
                "no target modules; valid targets: {}",
                LoraTarget::valid_names()
            ));
        }
        Ok(())
    }
}

/// The trainable low-rank update of one [`crate::HfLinear`].
#[derive(Module, Debug)]
pub struct LoraAdapter {
    /// `A`, `[rank, in_features]` (PEFT's `lora_A.weight`).
    pub a: Param<Tensor<2>>,
    /// `B`, `[out_features, rank]` (PEFT's `lora_B.weight`).
    pub b: Param<Tensor<2>>,
    /// `alpha / rank`.
    pub scale: f64,
}

impl LoraAdapter {
    /// `s · (x Aᵀ) Bᵀ` for `x: [rows, in]`; the scale is applied to the thin `[rows, rank]` side.
    pub fn forward(&self, input: Tensor<2>) -> Tensor<2> {
        let down = linear(input, self.a.val().transpose(), None).mul_scalar(self.scale);
        linear(down, self.b.val().transpose(), None)
    }

    /// The update `s · B·A`, `[out_features, in_features]`.
    pub fn delta(&self) -> Tensor<2> {
        self.b.val().matmul(self.a.val()).mul_scalar(self.scale)
    }
}

/// SplitMix64: a small seeded generator, so that adapter initialisation is reproducible from
/// the run's seed without a dependency.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[-bound, bound)`.
    fn uniform(&mut self, bound: f32) -> f32 {
        let unit = (self.next() >> 40) as f32 / (1u64 << 24) as f32;
        (2.0 * unit - 1.0) * bound
    }
}

/// PEFT's initialisation of `A`: `kaiming_uniform_(a = √5)`, i.e. `U(−1/√in, 1/√in)`.
fn kaiming_uniform(
    seed: u64,
    layer: usize,
    target: LoraTarget,
    rank: usize,
    inputs: usize,
) -> Vec<f32> {
    // one stream per (layer, target), so that choosing other targets leaves these unchanged
    let target_index = LoraTarget::ALL
        .iter()
        .position(|t| *t == target)
        .unwrap_or(0);
    let mut stream = SplitMix64(
        seed ^ ((layer as u64) << 8 | target_index as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93),
    );
    let bound = 1.0 / (inputs as f32).sqrt();
    (0..rank * inputs).map(|_| stream.uniform(bound)).collect()
}

/// Gives the `(A, B)` values of the adapter of one `(layer, target)` whose base weight is
/// `[out, in]`.
type FactorSource<'a> =
    dyn FnMut(usize, LoraTarget, [usize; 2]) -> Result<(Vec<f32>, Vec<f32>), ModelError> + 'a;

fn adapter_name(layer: usize, target: LoraTarget) -> String {
    DecoderLayer::projection_name(&CausalLm::layer_name(layer), target)
}

fn factor(values: Vec<f32>, shape: [usize; 2], device: &Device) -> Param<Tensor<2>> {
    Param::from_tensor(Tensor::from_data(TensorData::new(values, shape), device))
}

impl CausalLm {
    /// Freezes every weight and attaches fresh adapters to `config.targets` of every layer:
    /// `A` Kaiming-uniform from `seed` (as PEFT), `B = 0`, so the model's output is unchanged
    /// until `B` is trained.
    ///
    /// # Errors
    ///
    /// [`ModelError::InvalidRequest`] for an invalid configuration or a model that already has
    /// adapters.
    pub fn with_lora(self, config: &LoraConfig, seed: u64) -> Result<Self, ModelError> {
        let rank = config.rank;
        self.attach_lora(config, &mut |layer, target, [out, inputs]| {
            Ok((
                kaiming_uniform(seed, layer, target, rank, inputs),
                vec![0.0; out * rank],
            ))
        })
    }

    /// Freezes every weight and attaches adapters holding `weights` (as
    /// [`CausalLm::lora_weights`] lists them): resuming a LoRA run.
    pub fn with_lora_weights(
        self,
        config: &LoraConfig,
        weights: &Weights,
    ) -> Result<Self, ModelError> {
        let rank = config.rank;
        self.attach_lora(config, &mut |layer, target, [out, inputs]| {
            let name = adapter_name(layer, target);
            let read = |suffix: &str, shape: [usize; 2]| -> Result<Vec<f32>, ModelError> {
                let full = format!("{name}.{suffix}");
                let tensor = weights.get(&full).ok_or_else(|| {
                    ModelError::Checkpoint(ponder_checkpoint::CheckpointError::MissingTensor(
                        full.clone(),
                    ))
                })?;
                if tensor.shape != shape {
                    return Err(ModelError::WeightShape {
                        name: full,
                        found: tensor.shape.clone(),
                        expected: shape.to_vec(),
                    });
                }
                Ok(tensor.data.clone())
            };
            Ok((
                read("lora_A.weight", [rank, inputs])?,
                read("lora_B.weight", [out, rank])?,
            ))
        })
    }

    fn attach_lora(
        self,
        config: &LoraConfig,
        factors: &mut FactorSource,
    ) -> Result<Self, ModelError> {
        config.validate()?;
        if self.has_lora() {
            return Err(ModelError::InvalidRequest(
                "the model already carries LoRA adapters".to_string(),
            ));
        }
        let device = self.device();
        let scale = config.scale();
        let mut model = self.no_grad();
        for (index, layer) in model.layers.iter_mut().enumerate() {
            for &target in &config.targets {
                let projection = layer.projection_mut(target);
                let [out, inputs] = projection.weight.val().dims();
                let (a, b) = factors(index, target, [out, inputs])?;
                projection.lora = Some(LoraAdapter {
                    a: factor(a, [config.rank, inputs], &device),
                    b: factor(b, [out, config.rank], &device),
                    scale,
                });
            }
        }
        Ok(model)
    }

    /// Whether any projection carries an adapter.
    pub fn has_lora(&self) -> bool {
        self.layers.iter().any(|layer| {
            LoraTarget::ALL
                .iter()
                .any(|&target| layer.projection(target).lora.is_some())
        })
    }

    /// The adapters' factors, unmerged, under PEFT's names
    /// (`model.layers.0.self_attn.q_proj.lora_A.weight`, `... .lora_B.weight`); empty without
    /// LoRA.
    ///
    /// # Errors
    ///
    /// [`ModelError::TensorRead`] when a factor cannot be read back from the device.
    pub fn lora_weights(&self) -> Result<Weights, ModelError> {
        let mut weights = Weights::new();
        for (index, layer) in self.layers.iter().enumerate() {
            for target in LoraTarget::ALL {
                if let Some(adapter) = &layer.projection(target).lora {
                    let name = adapter_name(index, target);
                    let host = |t: &Param<Tensor<2>>| -> Result<HostTensor, ModelError> {
                        ParamTensor::Matrix(t.val()).to_host()
                    };
                    weights.insert(format!("{name}.lora_A.weight"), host(&adapter.a)?);
                    weights.insert(format!("{name}.lora_B.weight"), host(&adapter.b)?);
                }
            }
        }
        Ok(weights)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_lists_parse_and_bad_names_list_the_valid_ones() {
        assert_eq!(
            LoraTarget::parse_list("q_proj, v_proj,q_proj").unwrap(),
            vec![LoraTarget::QProj, LoraTarget::VProj]
        );
        let error = LoraTarget::parse_list("q_proj,qkv")
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown LoRA target `qkv`"), "{error}");
        assert!(
            error.contains("q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj"),
            "{error}"
        );
        assert!(LoraTarget::parse_list(" , ").is_err());
    }

    #[test]
    fn config_defaults_and_validation() {
        let config = LoraConfig::new(8);
        assert_eq!(config.alpha, 16.0);
        assert_eq!(config.scale(), 2.0);
        assert_eq!(config.targets.len(), 7);
        assert!(config.validate().is_ok());
        assert!(LoraConfig::new(0).validate().is_err());
        let json = serde_json::to_string(&config).unwrap();
        assert!(json.contains("\"gate_proj\""), "{json}");
    }

    #[test]
    fn initialisation_is_seeded_and_bounded() {
        let a = kaiming_uniform(7, 0, LoraTarget::QProj, 4, 64);
        assert_eq!(a, kaiming_uniform(7, 0, LoraTarget::QProj, 4, 64));
        assert_ne!(a, kaiming_uniform(8, 0, LoraTarget::QProj, 4, 64));
        assert_ne!(a, kaiming_uniform(7, 1, LoraTarget::QProj, 4, 64));
        assert_ne!(a, kaiming_uniform(7, 0, LoraTarget::KProj, 4, 64));
        let bound = 1.0 / 8.0;
        assert!(a.iter().all(|v| v.abs() <= bound));
        assert!(a.iter().any(|v| v.abs() > bound / 2.0));
    }
}
