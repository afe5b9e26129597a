//! AdamW (PyTorch semantics), gradient accumulation and global-norm gradient clipping over any burn
//! [`Module`].
//!
//! burn's own optimiser clips gradients per tensor and keys its state by random `ParamId`s; here
//! the state is keyed by the parameter's module path (stable across runs, so it can be saved and
//! resumed), and clipping uses the norm of all gradients together, as `torch.nn.utils.clip_grad_norm_`.

use std::collections::HashMap;
use std::path::Path;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::{Device, Gradients, Tensor, TensorData};
use ponder_model::fused::{self, AdamWStep};
use serde::{Deserialize, Serialize};

use crate::error::TrainError;

/// AdamW hyper-parameters. Defaults are PyTorch's `torch.optim.AdamW` defaults
/// (lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0.01); burn's differ, so every value is
/// set explicitly here.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    /// Peak learning rate.
    pub lr: f64,
    /// β₁: decay of the first moment.
    pub beta1: f64,
    /// β₂: decay of the second moment.
    pub beta2: f64,
    /// ε added to `sqrt(v̂)`.
    pub eps: f64,
    /// Decoupled weight decay: `p ← p (1 − lr·wd)` before the Adam update.
    pub weight_decay: f64,
    /// Clip the global gradient norm to this value before each step (`None` = no clipping).
    pub max_grad_norm: Option<f64>,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            max_grad_norm: Some(1.0),
        }
    }
}

/// What [`PathWalker`] does with each float parameter, given its dotted module path.
trait ParameterVisit {
    fn parameter<const D: usize>(&mut self, path: &str, param: &Param<Tensor<D>>);
}

/// Walks a module keeping the dotted module path (the key of the optimiser state) and hands
/// every float parameter to `visit`.
struct PathWalker<V> {
    path: Vec<String>,
    visit: V,
}

impl<V: ParameterVisit> ModuleVisitor for PathWalker<V> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.visit.parameter(&self.path.join("."), param);
    }
}

/// Runs `visit` over every float parameter of `module`, in traversal order; returns it.
fn walk<M: Module, V: ParameterVisit>(module: &M, visit: V) -> V {
    let mut walker = PathWalker {
        path: Vec::new(),
        visit,
    };
    module.visit(&mut walker);
    walker.visit
}

/// Records `(id, path)` of every parameter.
struct PathCollector(Vec<(ParamId, String)>);

impl ParameterVisit for PathCollector {
    fn parameter<const D: usize>(&mut self, path: &str, param: &Param<Tensor<D>>) {
        self.0.push((param.id, path.to_string()));
    }
}

/// Records `(path, element count)` of every parameter.
struct SizeCollector(Vec<(String, usize)>);

impl ParameterVisit for SizeCollector {
    fn parameter<const D: usize>(&mut self, path: &str, param: &Param<Tensor<D>>) {
        self.0
            .push((path.to_string(), param.val().shape().num_elements()));
    }
}

/// Keeps the path of the first parameter holding a NaN or an infinity.
struct NonFiniteFinder(Option<String>);

impl ParameterVisit for NonFiniteFinder {
    fn parameter<const D: usize>(&mut self, path: &str, param: &Param<Tensor<D>>) {
        if self.0.is_some() {
            return;
        }
        let bad = param
            .val()
            .inner()
            .is_finite()
            .bool_not()
            .any()
            .into_scalar::<bool>();
        if bad {
            self.0 = Some(path.to_string());
        }
    }
}

/// `(id, module path)` of every float parameter of a module, in traversal order.
pub fn parameter_paths<M: Module>(module: &M) -> Vec<(ParamId, String)> {
    walk(module, PathCollector(Vec::new())).0
}

/// The module path of the first float parameter of `module` that holds a NaN or an infinity,
/// if any: what must never be saved as a trained model.
pub fn first_non_finite_parameter<M: Module>(module: &M) -> Option<String> {
    walk(module, NonFiniteFinder(None)).0
}

/// Moves gradients out of a backward pass into the accumulator (flattened, without autodiff).
struct GradTaker<'a> {
    grads: &'a mut Gradients,
    store: &'a mut GradientAccumulator,
}

impl ModuleVisitor for GradTaker<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let tensor = param.base();
        if let Some(grad) = tensor.grad_remove(self.grads) {
            let numel = grad.shape().num_elements();
            let flat: Tensor<1> = grad.reshape([numel]);
            let entry = self.store.grads.remove(&param.id);
            let summed = match entry {
                Some(previous) => previous + flat,
                None => flat,
            };
            self.store.grads.insert(param.id, summed);
        }
    }
}

/// Gradients summed over the micro-batches of one optimiser step, keyed by parameter.
#[derive(Default)]
pub struct GradientAccumulator {
    grads: HashMap<ParamId, Tensor<1>>,
}

impl GradientAccumulator {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the gradients of one backward pass (taken from `grads`) for `module`'s parameters.
    pub fn accumulate<M: Module>(&mut self, module: &M, mut grads: Gradients) {
        let mut taker = GradTaker {
            grads: &mut grads,
            store: self,
        };
        module.visit(&mut taker);
    }

    /// True when no gradient was recorded.
    pub fn is_empty(&self) -> bool {
        self.grads.is_empty()
    }

    /// The accumulated gradient of one parameter, flattened.
    pub fn get(&self, id: &ParamId) -> Option<&Tensor<1>> {
        self.grads.get(id)
    }

    /// L2 norm of every gradient, per parameter.
    pub fn norms(&self) -> HashMap<ParamId, f64> {
        self.grads
            .iter()
            .map(|(id, g)| (*id, squared_sum(g).sqrt()))
            .collect()
    }

    /// L2 norm of all gradients together (what `clip_grad_norm_` returns).
    pub fn global_norm(&self) -> f64 {
        self.grads.values().map(squared_sum).sum::<f64>().sqrt()
    }

    /// Multiplies every gradient by `factor`.
    pub fn scale(&mut self, factor: f64) {
        for grad in self.grads.values_mut() {
            *grad = grad.clone().mul_scalar(factor);
        }
    }

    /// Clips to a global norm as PyTorch does (`coef = max / (norm + 1e-6)`, applied when < 1) and
    /// returns the norm before clipping.
    pub fn clip_global_norm(&mut self, max_norm: f64) -> f64 {
        let norm = self.global_norm();
        let coef = max_norm / (norm + 1e-6);
        if coef < 1.0 {
            self.scale(coef);
        }
        norm
    }
}

fn squared_sum(tensor: &Tensor<1>) -> f64 {
    let value: f32 = tensor.clone().square().sum().into_scalar();
    f64::from(value)
}

/// First and second moments of one parameter.
#[derive(Clone)]
struct Moments {
    exp_avg: Tensor<1>,
    exp_avg_sq: Tensor<1>,
}

/// AdamW with state keyed by module path.
pub struct AdamW {
    config: AdamWConfig,
    step: u64,
    moments: HashMap<String, Moments>,
}

struct AdamWMapper<'a> {
    optim: &'a mut AdamW,
    grads: &'a mut GradientAccumulator,
    lr: f64,
    path: Vec<String>,
}

impl ModuleMapper for AdamWMapper<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.grads.grads.remove(&id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let require_grad = tensor.is_require_grad();
        let strategy = tensor.gradient_checkpointing_strategy();
        let dims = tensor.dims();
        let numel = tensor.shape().num_elements();
        let value: Tensor<1> = tensor.inner().reshape([numel]);
        let key = self.path.join(".");
        let updated = self.optim.update(&key, value, grad, self.lr).reshape(dims);
        let mut restored = Tensor::from_inner(updated);
        if let Some(strategy) = strategy {
            restored = restored.with_gradient_checkpointing_strategy(strategy);
        }
        if require_grad {
            restored = restored.require_grad();
        }
        Param::from_mapped_value(id, restored, mapper)
    }
}

impl AdamW {
    /// A fresh optimiser (no steps taken).
    pub fn new(config: AdamWConfig) -> Self {
        Self {
            config,
            step: 0,
            moments: HashMap::new(),
        }
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &AdamWConfig {
        &self.config
    }

    /// Number of optimiser steps taken so far.
    pub fn steps_taken(&self) -> u64 {
        self.step
    }

    /// One AdamW step with learning rate `lr` on every parameter that has a gradient in `grads`
    /// (clip first, see [`GradientAccumulator::clip_global_norm`]). Returns the updated module.
    pub fn step<M: Module>(&mut self, module: M, mut grads: GradientAccumulator, lr: f64) -> M {
        self.step += 1;
        let mut mapper = AdamWMapper {
            optim: self,
            grads: &mut grads,
            lr,
            path: Vec::new(),
        };
        module.map(&mut mapper)
    }

    fn update(&mut self, key: &str, value: Tensor<1>, grad: Tensor<1>, lr: f64) -> Tensor<1> {
        let c = self.config;
        let step = self.step as i32;
        let coefficients = AdamWStep {
            beta1: c.beta1 as f32,
            beta2: c.beta2 as f32,
            eps: c.eps as f32,
            step_size: (lr / (1.0 - c.beta1.powi(step))) as f32,
            bias2_sqrt: (1.0 - c.beta2.powi(step)).sqrt() as f32,
            decay: (1.0 - lr * c.weight_decay) as f32,
        };
        let moments = self.moments.remove(key).map(|m| (m.exp_avg, m.exp_avg_sq));
        let (updated, exp_avg, exp_avg_sq) = fused::adamw(coefficients, value, grad, moments);
        self.moments.insert(
            key.to_string(),
            Moments {
                exp_avg,
                exp_avg_sq,
            },
        );
        updated
    }

    /// Saves the moments and step count to a safetensors file (keyed by parameter path), for
    /// [`AdamW::load`].
    ///
    /// # Errors
    ///
    /// [`TrainError::Io`] / [`TrainError::State`] when the file cannot be written.
    pub fn save(&self, path: &Path) -> Result<(), TrainError> {
        let mut buffers: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        let mut keys: Vec<&String> = self.moments.keys().collect();
        keys.sort();
        for key in keys {
            let m = &self.moments[key];
            for (prefix, tensor) in [("exp_avg", &m.exp_avg), ("exp_avg_sq", &m.exp_avg_sq)] {
                let values = tensor_to_vec(tensor.clone())?;
                let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                buffers.push((format!("{prefix}.{key}"), vec![values.len()], bytes));
            }
        }
        let mut views = Vec::with_capacity(buffers.len());
        for (name, shape, bytes) in &buffers {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                    .map_err(|e| TrainError::State(format!("optimizer tensor {name}: {e}")))?;
            views.push((name.clone(), view));
        }
        let mut metadata = HashMap::new();
        metadata.insert("step".to_string(), self.step.to_string());
        metadata.insert(
            "config".to_string(),
            serde_json::to_string(&self.config)
                .map_err(|e| TrainError::State(format!("optimizer config: {e}")))?,
        );
        let bytes = safetensors::tensor::serialize(views, Some(metadata))
            .map_err(|e| TrainError::State(format!("serialising optimizer state: {e}")))?;
        crate::io::write_atomic(path, &bytes)
    }

    /// Restores moments and step count written by [`AdamW::save`], onto `device`.
    ///
    /// # Errors
    ///
    /// [`TrainError::Io`] / [`TrainError::State`] when the file cannot be read or does not hold
    /// optimiser state.
    pub fn load(config: AdamWConfig, path: &Path, device: &Device) -> Result<Self, TrainError> {
        let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
        let bad = |what: String| TrainError::State(format!("{}: {what}", path.display()));
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let step = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get("step"))
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| bad("missing `step` metadata".to_string()))?;
        let tensors = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let mut first: HashMap<String, Tensor<1>> = HashMap::new();
        let mut second: HashMap<String, Tensor<1>> = HashMap::new();
        for (name, view) in tensors.tensors() {
            if view.dtype() != safetensors::Dtype::F32 {
                return Err(bad(format!("tensor {name} is not f32")));
            }
            let values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let len = values.len();
            let second_moment = name.starts_with("exp_avg_sq.");
            // A NaN, or a negative second moment (its square root is taken), would silently
            // turn the next update into NaN weights.
            if let Some(position) = values
                .iter()
                .position(|v| !v.is_finite() || (second_moment && *v < 0.0))
            {
                return Err(bad(format!(
                    "tensor {name} holds {} at index {position}",
                    values[position]
                )));
            }
            let tensor = Tensor::<1>::from_data(TensorData::new(values, [len]), device);
            if let Some(key) = name.strip_prefix("exp_avg_sq.") {
                second.insert(key.to_string(), tensor);
            } else if let Some(key) = name.strip_prefix("exp_avg.") {
                first.insert(key.to_string(), tensor);
            } else {
                return Err(bad(format!("unexpected tensor {name}")));
            }
        }
        let mut moments = HashMap::new();
        for (key, exp_avg) in first {
            let exp_avg_sq = second
                .remove(&key)
                .ok_or_else(|| bad(format!("exp_avg_sq.{key} missing")))?;
            let (first_len, second_len) = (exp_avg.dims()[0], exp_avg_sq.dims()[0]);
            if first_len != second_len {
                return Err(bad(format!(
                    "exp_avg.{key} has {first_len} values but exp_avg_sq.{key} has {second_len}"
                )));
            }
            moments.insert(
                key,
                Moments {
                    exp_avg,
                    exp_avg_sq,
                },
            );
        }
        if let Some(key) = second.keys().min() {
            return Err(bad(format!("exp_avg.{key} missing")));
        }
        Ok(Self {
            config,
            step,
            moments,
        })
    }

    /// Checks restored state against the model it is to update: every moment must belong to a
    /// parameter of `module` and have one value per element of it. The update itself cannot
    /// tell (burn panics on mismatched shapes deep inside the step), so state saved for
    /// another model, another LoRA set-up or a damaged file is refused here, naming `path`
    /// (the file the state came from).
    ///
    /// # Errors
    ///
    /// [`TrainError::State`] naming `path`, the parameter and both sizes.
    pub fn check_matches<M: Module>(&self, module: &M, path: &Path) -> Result<(), TrainError> {
        let sizes: HashMap<String, usize> = parameter_sizes(module).into_iter().collect();
        let mut keys: Vec<&String> = self.moments.keys().collect();
        keys.sort();
        for key in keys {
            let expected = sizes.get(key.as_str()).copied();
            let found = self.moments[key].exp_avg.dims()[0];
            let problem = match expected {
                None => format!("holds moments for `{key}`, which is not a parameter of the model"),
                Some(expected) if expected != found => format!(
                    "holds {found} moment values for `{key}`, but that parameter has {expected} \
                     elements"
                ),
                Some(_) => continue,
            };
            return Err(TrainError::State(format!(
                "{}: {problem}; the optimizer state does not belong to this model (delete the \
                 checkpoint directory to start over)",
                path.display()
            )));
        }
        Ok(())
    }
}

/// `(module path, element count)` of every float parameter of a module, in traversal order.
pub fn parameter_sizes<M: Module>(module: &M) -> Vec<(String, usize)> {
    walk(module, SizeCollector(Vec::new())).0
}

/// Copies a float tensor to the host as `f32`.
pub(crate) fn tensor_to_vec<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>, TrainError> {
    tensor
        .into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| TrainError::State(format!("reading a tensor back: {e:?}")))
}
