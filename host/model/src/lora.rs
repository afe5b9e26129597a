//! LoRA (low-rank adaptation, Hu et al. 2021, arXiv 2106.09685) on the linear projections of
//! [`CausalLm`].
//!
//! A projection with an adapter computes `y = x Wᵀ + b + s · (x Aᵀ) Bᵀ` with `A: [rank, in]`,
//! `B: [out, rank]` and `s = alpha / rank`, as PEFT does. The update is applied factored (two thin
//! matmuls, one fused operation: [`crate::fused::low_rank_linear`]) instead of materialising
//! `W + s·B·A` on every forward. Attaching adapters freezes
//! every weight of the model, so that only `A` and `B` get gradients and optimiser state; saving
//! merges them (`W' = W + s·B·A`, see [`crate::HfLinear::merged_weight`]).

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use burn::module::{Module, Param};
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

/// The PEFT adapter directory's configuration file.
pub const PEFT_CONFIG_FILE: &str = "adapter_config.json";
/// The PEFT adapter directory's weights file.
pub const PEFT_WEIGHTS_FILE: &str = "adapter_model.safetensors";
/// What PEFT's `PeftModelForCausalLM` puts before the base model's parameter names.
const PEFT_PREFIX: &str = "base_model.model.";

/// Writes `weights` (as [`CausalLm::lora_weights`] names them) as a PEFT LoRA adapter directory
/// in `dir` (created if missing): `adapter_config.json` and `adapter_model.safetensors` (f32,
/// PEFT's `base_model.model.` names). PEFT's `PeftModel.from_pretrained` and vLLM's LoRA
/// loading read it over the base model the adapter was trained on.
///
/// # Errors
///
/// [`ponder_checkpoint::CheckpointError`] when a file cannot be written.
pub fn write_peft_adapter(
    dir: &Path,
    config: &LoraConfig,
    weights: &Weights,
) -> Result<(), ponder_checkpoint::CheckpointError> {
    use ponder_checkpoint::CheckpointError;
    std::fs::create_dir_all(dir).map_err(|e| CheckpointError::io(dir, e))?;
    let mut named = Weights::new();
    for (name, tensor) in weights.iter() {
        named.insert(format!("{PEFT_PREFIX}{name}"), tensor.clone());
    }
    ponder_checkpoint::write_safetensors_f32(&dir.join(PEFT_WEIGHTS_FILE), &named)?;
    let peft_config = serde_json::json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": config.rank,
        "lora_alpha": config.alpha,
        "target_modules": config.targets.iter().map(|t| t.name()).collect::<Vec<_>>(),
        "lora_dropout": 0.0,
        "bias": "none",
        "fan_in_fan_out": false,
        "use_rslora": false,
        "use_dora": false,
        "inference_mode": true,
        "modules_to_save": null,
        "base_model_name_or_path": null,
    });
    let path = dir.join(PEFT_CONFIG_FILE);
    let text = serde_json::to_vec_pretty(&peft_config).map_err(|e| CheckpointError::Json {
        path: path.clone(),
        message: e.to_string(),
    })?;
    std::fs::write(&path, text).map_err(|e| CheckpointError::io(&path, e))
}

/// Reads a PEFT LoRA adapter directory: its settings and its factors under the names
/// [`CausalLm::with_lora_weights`] takes. Only what ponder trains is accepted: plain LoRA
/// (no rsLoRA, DoRA, bias or extra modules) with one rank and alpha for every target.
///
/// # Errors
///
/// [`ponder_checkpoint::CheckpointError`] for a missing or unreadable file, or settings ponder
/// does not implement (named).
pub fn read_peft_adapter(
    dir: &Path,
) -> Result<(LoraConfig, Weights), ponder_checkpoint::CheckpointError> {
    use ponder_checkpoint::CheckpointError;
    let path = dir.join(PEFT_CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| CheckpointError::io(&path, e))?;
    let bad = |message: String| CheckpointError::Json {
        path: path.clone(),
        message,
    };
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let field = |key: &str| json.get(key).filter(|v| !v.is_null());
    if let Some(kind) = field("peft_type").and_then(serde_json::Value::as_str)
        && kind != "LORA"
    {
        return Err(bad(format!(
            "peft_type {kind:?}: only LORA adapters are read"
        )));
    }
    for flag in ["use_rslora", "use_dora"] {
        if field(flag).and_then(serde_json::Value::as_bool) == Some(true) {
            return Err(bad(format!(
                "{flag} = true is not supported (plain LoRA only)"
            )));
        }
    }
    if let Some(bias) = field("bias").and_then(serde_json::Value::as_str)
        && bias != "none"
    {
        return Err(bad(format!(
            "bias {bias:?} is not supported (\"none\" only)"
        )));
    }
    for per_module in ["rank_pattern", "alpha_pattern"] {
        if field(per_module)
            .and_then(serde_json::Value::as_object)
            .is_some_and(|map| !map.is_empty())
        {
            return Err(bad(format!(
                "{per_module} is not supported (one rank and alpha)"
            )));
        }
    }
    let rank = field("r")
        .and_then(serde_json::Value::as_u64)
        .and_then(|r| usize::try_from(r).ok())
        .ok_or_else(|| bad("`r` must be a positive integer".to_string()))?;
    let alpha = field("lora_alpha")
        .and_then(serde_json::Value::as_f64)
        .ok_or_else(|| bad("`lora_alpha` must be a number".to_string()))?;
    let targets = field("target_modules")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| bad("`target_modules` must be a list of module names".to_string()))?
        .iter()
        .map(|name| name.as_str().unwrap_or_default())
        .collect::<Vec<_>>()
        .join(",");
    let targets = LoraTarget::parse_list(&targets).map_err(|e| bad(e.to_string()))?;
    let config = LoraConfig {
        rank,
        alpha,
        targets,
    };
    config.validate().map_err(|e| bad(e.to_string()))?;
    let mut named = Weights::new();
    ponder_checkpoint::read_safetensors_file(&dir.join(PEFT_WEIGHTS_FILE), &mut named)?;
    let mut weights = Weights::new();
    for (name, tensor) in named.iter() {
        let plain = name.strip_prefix(PEFT_PREFIX).unwrap_or(name);
        weights.insert(plain.to_string(), tensor.clone());
    }
    Ok((config, weights))
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

    fn factors(config: &LoraConfig) -> Weights {
        let mut weights = Weights::new();
        for target in &config.targets {
            let name = format!("model.layers.0.{}", target.module_path());
            let a = HostTensor::new(
                vec![config.rank, 3],
                (0..config.rank * 3).map(|i| i as f32 * 0.5).collect(),
            );
            let b = HostTensor::new(
                vec![2, config.rank],
                (0..2 * config.rank).map(|i| -(i as f32)).collect(),
            );
            weights.insert(format!("{name}.lora_A.weight"), a.unwrap());
            weights.insert(format!("{name}.lora_B.weight"), b.unwrap());
        }
        weights
    }

    #[test]
    fn a_peft_adapter_round_trips_under_peft_names() {
        let dir = tempfile::tempdir().unwrap();
        let config = LoraConfig {
            rank: 2,
            alpha: 5.0,
            targets: vec![LoraTarget::QProj, LoraTarget::DownProj],
        };
        let weights = factors(&config);
        write_peft_adapter(dir.path(), &config, &weights).unwrap();
        let mut stored = Weights::new();
        ponder_checkpoint::read_safetensors_file(&dir.path().join(PEFT_WEIGHTS_FILE), &mut stored)
            .unwrap();
        let names: Vec<&str> = stored.names().collect();
        assert!(
            names.contains(&"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"),
            "{names:?}"
        );
        assert!(names.contains(&"base_model.model.model.layers.0.mlp.down_proj.lora_B.weight"));
        let text = std::fs::read_to_string(dir.path().join(PEFT_CONFIG_FILE)).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["peft_type"], "LORA");
        assert_eq!(json["r"], 2);
        assert_eq!(json["lora_alpha"], 5.0);
        assert_eq!(
            json["target_modules"],
            serde_json::json!(["q_proj", "down_proj"])
        );

        let (read_config, read) = read_peft_adapter(dir.path()).unwrap();
        assert_eq!(read_config, config);
        assert_eq!(read.len(), weights.len());
        for (name, tensor) in weights.iter() {
            assert_eq!(read.get(name), Some(tensor), "{name}");
        }
    }

    #[test]
    fn peft_settings_ponder_does_not_implement_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let config = LoraConfig::new(2);
        write_peft_adapter(dir.path(), &config, &factors(&config)).unwrap();
        let path = dir.path().join(PEFT_CONFIG_FILE);
        let original: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for (key, value, needle) in [
            ("use_rslora", serde_json::json!(true), "use_rslora"),
            ("use_dora", serde_json::json!(true), "use_dora"),
            ("bias", serde_json::json!("all"), "bias"),
            (
                "rank_pattern",
                serde_json::json!({"q_proj": 4}),
                "rank_pattern",
            ),
            ("peft_type", serde_json::json!("IA3"), "IA3"),
            (
                "target_modules",
                serde_json::json!("all-linear"),
                "target_modules",
            ),
            (
                "target_modules",
                serde_json::json!(["qkv_proj"]),
                "qkv_proj",
            ),
            ("r", serde_json::json!(0), "rank"),
        ] {
            let mut edited = original.clone();
            edited[key] = value;
            std::fs::write(&path, edited.to_string()).unwrap();
            let error = read_peft_adapter(dir.path()).unwrap_err().to_string();
            assert!(error.contains(needle), "{key}: {error}");
            assert!(error.contains(PEFT_CONFIG_FILE), "{key}: {error}");
        }
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
