//! Safetensors: single files and sharded checkpoints read into f32 `Weights`, and f32 writing.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::Path;

use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde_json::Value;

use crate::{CheckpointError, HostTensor, Weights};

/// Name of the index file of a sharded checkpoint.
pub const INDEX_FILE: &str = "model.safetensors.index.json";
/// Name of a single-file checkpoint.
pub const SINGLE_FILE: &str = "model.safetensors";

fn st_error(path: &Path, tensor: Option<&str>, message: impl Into<String>) -> CheckpointError {
    CheckpointError::Safetensors {
        path: path.to_path_buf(),
        tensor: tensor.map(str::to_string),
        message: message.into(),
    }
}

/// Reads every tensor of one safetensors file into `weights`, converted to f32.
///
/// # Errors
///
/// [`CheckpointError`] when the file cannot be read, is not safetensors, or holds a tensor of an
/// unsupported type.
pub fn read_safetensors_file(path: &Path, weights: &mut Weights) -> Result<(), CheckpointError> {
    let file = File::open(path).map_err(|e| CheckpointError::io(path, e))?;
    // SAFETY: the map is read-only and lives only for this function; model files are not
    // expected to change while they are being loaded.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| CheckpointError::io(path, e))?;
    let tensors =
        SafeTensors::deserialize(&map).map_err(|e| st_error(path, None, e.to_string()))?;
    for (name, view) in tensors.tensors() {
        let tensor = view_to_f32(&view).map_err(|message| st_error(path, Some(&name), message))?;
        weights.insert(name, tensor);
    }
    Ok(())
}

fn view_to_f32(view: &TensorView<'_>) -> Result<HostTensor, String> {
    let bytes = view.data();
    let data: Vec<f32> = match view.dtype() {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32())
            .collect(),
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                f64::from_le_bytes(b) as f32
            })
            .collect(),
        other => {
            return Err(format!(
                "unsupported dtype {other:?} (need F32, F16, BF16 or F64)"
            ));
        }
    };
    HostTensor::new(view.shape().to_vec(), data).map_err(|e| e.to_string())
}

/// Reads the weights of a Hugging Face directory: `model.safetensors`, or the shards listed in
/// `model.safetensors.index.json`.
///
/// # Errors
///
/// As [`read_safetensors_file`], and when the shard index is malformed or names a missing shard.
pub fn read_hf_weights(dir: &Path) -> Result<Weights, CheckpointError> {
    let mut weights = Weights::new();
    let index_path = dir.join(INDEX_FILE);
    let single_path = dir.join(SINGLE_FILE);
    if index_path.is_file() {
        let text = std::fs::read_to_string(&index_path)
            .map_err(|e| CheckpointError::io(&index_path, e))?;
        let json_error = |message: String| CheckpointError::Json {
            path: index_path.clone(),
            message,
        };
        let index: Value = serde_json::from_str(&text).map_err(|e| json_error(e.to_string()))?;
        let map = index
            .get("weight_map")
            .and_then(Value::as_object)
            .ok_or_else(|| json_error("missing weight_map object".into()))?;
        let mut shards = BTreeSet::new();
        for (tensor, file) in map {
            let file = file
                .as_str()
                .ok_or_else(|| json_error(format!("weight_map[{tensor}] must be a file name")))?;
            // Shard names come from a file; keep them inside the model directory.
            if file.contains('/') || file.contains('\\') || file.starts_with('.') {
                return Err(json_error(format!(
                    "weight_map[{tensor}]: bad shard name {file:?}"
                )));
            }
            shards.insert(file.to_string());
        }
        for shard in &shards {
            read_safetensors_file(&dir.join(shard), &mut weights)?;
        }
        for tensor in map.keys() {
            if !weights.contains(tensor) {
                let file = map[tensor].as_str().unwrap_or_default();
                return Err(st_error(
                    &dir.join(file),
                    Some(tensor),
                    "listed in the index but absent",
                ));
            }
        }
    } else if single_path.is_file() {
        read_safetensors_file(&single_path, &mut weights)?;
    } else {
        return Err(CheckpointError::MissingFile {
            path: dir.to_path_buf(),
            what: format!("{SINGLE_FILE} or {INDEX_FILE}"),
        });
    }
    Ok(weights)
}

/// Writes `weights` as one f32 safetensors file.
///
/// # Errors
///
/// [`CheckpointError`] when the file cannot be written.
pub fn write_safetensors_f32(path: &Path, weights: &Weights) -> Result<(), CheckpointError> {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = weights
        .iter()
        .map(|(name, t)| {
            let mut raw = Vec::with_capacity(t.data.len() * 4);
            for x in &t.data {
                raw.extend_from_slice(&x.to_le_bytes());
            }
            (name.to_string(), raw, t.shape.clone())
        })
        .collect();
    let mut views = Vec::with_capacity(bytes.len());
    for (name, raw, shape) in &bytes {
        let view = TensorView::new(Dtype::F32, shape.clone(), raw)
            .map_err(|e| st_error(path, Some(name), e.to_string()))?;
        views.push((name.as_str(), view));
    }
    let metadata = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(views, Some(metadata), path)
        .map_err(|e| st_error(path, None, e.to_string()))
}
