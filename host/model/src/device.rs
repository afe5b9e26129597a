//! Device selection from the strings users write (`cpu`, `wgpu`, `cuda:N`).

use burn::tensor::Device;

use crate::ModelError;

/// Parses a device string: `cpu` (burn's flex CPU backend, always available), `wgpu` or
/// `wgpu:N` (needs the `wgpu` feature) and `cuda` or `cuda:N` (needs the `cuda` feature).
///
/// # Errors
///
/// [`ModelError::Device`] for an unknown device, a bad index, or a backend this build lacks.
pub fn parse_device(text: &str) -> Result<Device, ModelError> {
    let text = text.trim();
    let (kind, index) = match text.split_once(':') {
        Some((kind, index)) => {
            let index: usize = index.parse().map_err(|_| {
                ModelError::Device(text.into(), format!("`{index}` is not a device index"))
            })?;
            (kind, Some(index))
        }
        None => (text, None),
    };
    match kind {
        "cpu" | "flex" => match index {
            None | Some(0) => Ok(Device::flex()),
            Some(_) => Err(ModelError::Device(
                text.into(),
                "there is one CPU device".into(),
            )),
        },
        "wgpu" => wgpu_device(text, index),
        "cuda" => cuda_device(text, index),
        _ => Err(ModelError::Device(
            text.into(),
            "unknown device; use cpu, wgpu or cuda:N".into(),
        )),
    }
}

#[cfg(feature = "wgpu")]
fn wgpu_device(_text: &str, index: Option<usize>) -> Result<Device, ModelError> {
    use burn::tensor::DeviceKind;
    Ok(match index {
        None => Device::wgpu(DeviceKind::DefaultDevice),
        Some(index) => Device::wgpu(DeviceKind::DiscreteGpu(index)),
    })
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_device(text: &str, _index: Option<usize>) -> Result<Device, ModelError> {
    Err(ModelError::Device(
        text.into(),
        "this build has no wgpu backend; rebuild with `--features wgpu`".into(),
    ))
}

#[cfg(feature = "cuda")]
fn cuda_device(_text: &str, index: Option<usize>) -> Result<Device, ModelError> {
    Ok(Device::cuda(index.unwrap_or(0)))
}

#[cfg(not(feature = "cuda"))]
fn cuda_device(text: &str, _index: Option<usize>) -> Result<Device, ModelError> {
    Err(ModelError::Device(
        text.into(),
        "this build has no CUDA backend; rebuild with `--features cuda`".into(),
    ))
}

/// Whether the device runs burn's flex CPU backend without autodiff, where the fused attention
/// kernel (native grouped-query support, no key/value repetition) is available.
pub(crate) fn is_plain_flex(device: &Device) -> bool {
    !device.is_autodiff() && *device == Device::flex()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_parses_and_unknown_fails() {
        assert!(parse_device("cpu").is_ok());
        assert!(parse_device("tpu").is_err());
        assert!(parse_device("cuda:x").is_err());
        #[cfg(not(feature = "cuda"))]
        assert!(
            parse_device("cuda:0")
                .unwrap_err()
                .to_string()
                .contains("--features cuda")
        );
    }
}
