//! Host-memory tensors and the named collection of a model's weights.

use std::collections::BTreeMap;

use crate::CheckpointError;

/// A dense float32 tensor in host memory, row-major, in the Hugging Face layout.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    /// Dimensions, outermost first (a linear layer's weight is `[out_features, in_features]`).
    pub shape: Vec<usize>,
    /// The elements in row-major order; `data.len()` is the product of `shape`.
    pub data: Vec<f32>,
}

impl HostTensor {
    /// A tensor from its shape and data; fails when the lengths disagree.
    ///
    /// # Errors
    ///
    /// [`CheckpointError`] when the data length is not the product of the shape.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self, CheckpointError> {
        let expected = shape
            .iter()
            .try_fold(1usize, |product, &dim| product.checked_mul(dim));
        if expected != Some(data.len()) {
            let expected =
                expected.map_or_else(|| "more than usize::MAX".to_string(), |n| n.to_string());
            return Err(CheckpointError::InvalidConfig(format!(
                "tensor of shape {shape:?} needs {expected} elements, got {}",
                data.len()
            )));
        }
        Ok(HostTensor { shape, data })
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.data.len()
    }
}

/// A model's parameters by Hugging Face name (`model.layers.0.self_attn.q_proj.weight`, ...).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Weights {
    tensors: BTreeMap<String, HostTensor>,
}

impl Weights {
    /// An empty collection.
    ///
    /// # Errors
    ///
    /// [`CheckpointError`] when the data length is not the product of the shape.
    pub fn new() -> Self {
        Self::default()
    }

    /// Removes and returns a tensor; the error names the missing tensor.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::MissingTensor`] naming the tensor.
    pub fn take(&mut self, name: &str) -> Result<HostTensor, CheckpointError> {
        self.tensors
            .remove(name)
            .ok_or_else(|| CheckpointError::MissingTensor(name.to_string()))
    }

    /// The tensor with this name, if present.
    pub fn get(&self, name: &str) -> Option<&HostTensor> {
        self.tensors.get(name)
    }

    /// Adds or replaces a tensor.
    pub fn insert(&mut self, name: String, tensor: HostTensor) {
        self.tensors.insert(name, tensor);
    }

    /// Tensor names in sorted order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Name and tensor pairs in sorted order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &HostTensor)> {
        self.tensors.iter().map(|(n, t)| (n.as_str(), t))
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether there are no tensors.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Whether a tensor with this name is present.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
}
