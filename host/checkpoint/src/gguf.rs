//! GGUF (versions 2 and 3) reader, written from the format's specification: header, metadata
//! key/values (arrays included), tensor infos, `general.alignment`, and dequantisation of F32,
//! F16, BF16, F64, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K and Q6_K to f32.
//!
//! Every read is bounds-checked against the file: a truncated or corrupt file is a
//! [`CheckpointError::Gguf`] naming the byte offset, never a panic or an absurd allocation.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use crate::checkpoint::{chat_template_for, validate_shapes};
use crate::config::push_unique;
use crate::tokenizer::{ByteLevelBpeVocab, byte_level_bpe};
use crate::{
    Architecture, Checkpoint, CheckpointError, HostTensor, ModelConfig, RopeScaling, SpecialTokens,
    Tokenizer, Weights,
};

const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml tensors have at most four dimensions.
const MAX_DIMS: u32 = 4;
/// Arrays may nest; real files nest at most once.
const MAX_ARRAY_DEPTH: usize = 4;

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum MetadataValue {
    /// `uint8`.
    U8(u8),
    /// `int8`.
    I8(i8),
    /// `uint16`.
    U16(u16),
    /// `int16`.
    I16(i16),
    /// `uint32`.
    U32(u32),
    /// `int32`.
    I32(i32),
    /// `float32`.
    F32(f32),
    /// `bool`.
    Bool(bool),
    /// `string` (UTF-8).
    String(String),
    /// `array` of values of one type.
    Array(Vec<MetadataValue>),
    /// `uint64`.
    U64(u64),
    /// `int64`.
    I64(i64),
    /// `float64`.
    F64(f64),
}

impl MetadataValue {
    /// The value as an unsigned integer, when it is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetadataValue::U8(v) => Some(v.into()),
            MetadataValue::U16(v) => Some(v.into()),
            MetadataValue::U32(v) => Some(v.into()),
            MetadataValue::U64(v) => Some(v),
            MetadataValue::I8(v) => u64::try_from(v).ok(),
            MetadataValue::I16(v) => u64::try_from(v).ok(),
            MetadataValue::I32(v) => u64::try_from(v).ok(),
            MetadataValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a signed integer, when it is an integer that fits.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            MetadataValue::I8(v) => Some(v.into()),
            MetadataValue::I16(v) => Some(v.into()),
            MetadataValue::I32(v) => Some(v.into()),
            MetadataValue::I64(v) => Some(v),
            _ => self.as_u64().and_then(|v| i64::try_from(v).ok()),
        }
    }

    /// The value as a float, when it is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetadataValue::F32(v) => Some(v.into()),
            MetadataValue::F64(v) => Some(v),
            _ => self.as_i64().map(|v| v as f64),
        }
    }

    /// The value as a string, when it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetadataValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a bool, when it is one.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            MetadataValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The elements, when the value is an array.
    pub fn as_array(&self) -> Option<&[MetadataValue]> {
        match self {
            MetadataValue::Array(items) => Some(items),
            _ => None,
        }
    }
}

/// A ggml tensor element type this reader can dequantise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GgmlType {
    /// 32-bit float.
    F32,
    /// 16-bit float.
    F16,
    /// 4-bit blocks of 32 with a scale.
    Q4_0,
    /// 4-bit blocks of 32 with a scale and a minimum.
    Q4_1,
    /// 5-bit blocks of 32 with a scale.
    Q5_0,
    /// 5-bit blocks of 32 with a scale and a minimum.
    Q5_1,
    /// 8-bit blocks of 32 with a scale.
    Q8_0,
    /// 4-bit k-quant super-blocks of 256.
    Q4K,
    /// 6-bit k-quant super-blocks of 256.
    Q6K,
    /// 64-bit float.
    F64,
    /// bfloat16.
    BF16,
}

impl GgmlType {
    /// The type with this ggml id, if supported.
    pub fn from_id(id: u32) -> Option<Self> {
        Some(match id {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            2 => GgmlType::Q4_0,
            3 => GgmlType::Q4_1,
            6 => GgmlType::Q5_0,
            7 => GgmlType::Q5_1,
            8 => GgmlType::Q8_0,
            12 => GgmlType::Q4K,
            14 => GgmlType::Q6K,
            28 => GgmlType::F64,
            30 => GgmlType::BF16,
            _ => return None,
        })
    }

    /// Elements per block.
    pub fn block_size(self) -> u64 {
        match self {
            GgmlType::F32 | GgmlType::F16 | GgmlType::F64 | GgmlType::BF16 => 1,
            GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q8_0 => {
                32
            }
            GgmlType::Q4K | GgmlType::Q6K => 256,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> u64 {
        match self {
            GgmlType::F32 => 4,
            GgmlType::F16 | GgmlType::BF16 => 2,
            GgmlType::F64 => 8,
            GgmlType::Q4_0 => 18,
            GgmlType::Q4_1 => 20,
            GgmlType::Q5_0 => 22,
            GgmlType::Q5_1 => 24,
            GgmlType::Q8_0 => 34,
            GgmlType::Q4K => 144,
            GgmlType::Q6K => 210,
        }
    }
}

/// One tensor's entry in the GGUF header.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    /// The llama.cpp tensor name (`blk.0.attn_q.weight`).
    pub name: String,
    /// Dimensions in ggml order (fastest-varying first; reversed relative to HF shapes).
    pub dims: Vec<u64>,
    /// Element type.
    pub ggml_type: GgmlType,
    /// Offset of the data from the start of the data section.
    pub offset: u64,
    /// Byte length of the data.
    pub n_bytes: u64,
}

impl TensorInfo {
    /// The shape in row-major (Hugging Face) order.
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }
}

/// An opened GGUF file: header parsed, tensor data memory-mapped.
pub struct GgufFile {
    path: PathBuf,
    map: memmap2::Mmap,
    /// Format version (2 or 3).
    pub version: u32,
    /// Metadata key/values.
    pub metadata: BTreeMap<String, MetadataValue>,
    /// Tensor infos in file order.
    pub tensors: Vec<TensorInfo>,
    data_offset: u64,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("metadata_keys", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

/// A bounds-checked little-endian reader over the file's bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn error(&self, offset: usize, message: impl Into<String>) -> CheckpointError {
        CheckpointError::Gguf {
            path: self.path.to_path_buf(),
            offset: offset as u64,
            message: message.into(),
        }
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], CheckpointError> {
        if n > self.remaining() {
            return Err(self.error(
                self.pos,
                format!(
                    "truncated file: {what} needs {n} bytes, {} left",
                    self.remaining()
                ),
            ));
        }
        let slice = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], CheckpointError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u8(&mut self, what: &str) -> Result<u8, CheckpointError> {
        Ok(self.array::<1>(what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16, CheckpointError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    fn u32(&mut self, what: &str) -> Result<u32, CheckpointError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    fn u64(&mut self, what: &str) -> Result<u64, CheckpointError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A count that must be possible given the bytes left, each item taking at least
    /// `min_item_bytes`: guards every allocation sized by the file.
    fn count(&mut self, what: &str, min_item_bytes: usize) -> Result<usize, CheckpointError> {
        let at = self.pos;
        let n = self.u64(what)?;
        let max = (self.remaining() / min_item_bytes.max(1)) as u64;
        if n > max {
            return Err(self.error(
                at,
                format!(
                    "{what} is {n}, impossible with {} bytes left",
                    self.remaining()
                ),
            ));
        }
        Ok(n as usize)
    }

    fn string(&mut self, what: &str) -> Result<String, CheckpointError> {
        let len = self.count(what, 1)?;
        let at = self.pos;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| self.error(at, format!("{what} is not UTF-8")))
    }

    fn value(
        &mut self,
        type_id: u32,
        what: &str,
        depth: usize,
    ) -> Result<MetadataValue, CheckpointError> {
        Ok(match type_id {
            0 => MetadataValue::U8(self.u8(what)?),
            1 => MetadataValue::I8(self.u8(what)? as i8),
            2 => MetadataValue::U16(self.u16(what)?),
            3 => MetadataValue::I16(self.u16(what)? as i16),
            4 => MetadataValue::U32(self.u32(what)?),
            5 => MetadataValue::I32(self.u32(what)? as i32),
            6 => MetadataValue::F32(f32::from_bits(self.u32(what)?)),
            7 => {
                let at = self.pos;
                match self.u8(what)? {
                    0 => MetadataValue::Bool(false),
                    1 => MetadataValue::Bool(true),
                    b => return Err(self.error(at, format!("{what}: invalid bool byte {b}"))),
                }
            }
            8 => MetadataValue::String(self.string(what)?),
            9 => {
                let at = self.pos;
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(self.error(at, format!("{what}: arrays nested too deeply")));
                }
                let item_type = self.u32(what)?;
                let min_bytes = match item_type {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 | 10..=12 => 8,
                    9 => 12,
                    other => {
                        return Err(
                            self.error(at, format!("{what}: unknown array element type {other}"))
                        );
                    }
                };
                let n = self.count(what, min_bytes)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(item_type, what, depth + 1)?);
                }
                MetadataValue::Array(items)
            }
            10 => MetadataValue::U64(self.u64(what)?),
            11 => MetadataValue::I64(self.u64(what)? as i64),
            12 => MetadataValue::F64(f64::from_bits(self.u64(what)?)),
            other => {
                return Err(self.error(
                    self.pos.saturating_sub(4),
                    format!("{what}: unknown metadata value type {other}"),
                ));
            }
        })
    }
}

impl GgufFile {
    /// Opens and parses a GGUF file's header; tensor data is read on demand.
    pub fn open(path: &Path) -> Result<Self, CheckpointError> {
        let file = File::open(path).map_err(|e| CheckpointError::io(path, e))?;
        // SAFETY: the map is read-only; model files are not expected to change while loaded.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| CheckpointError::io(path, e))?;
        let Header {
            version,
            metadata,
            tensors,
            data_offset,
        } = parse_header(&map, path)?;
        Ok(GgufFile {
            path: path.to_path_buf(),
            map,
            version,
            metadata,
            tensors,
            data_offset,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A metadata value by key.
    pub fn get(&self, key: &str) -> Option<&MetadataValue> {
        self.metadata.get(key)
    }

    fn error(&self, offset: u64, message: impl Into<String>) -> CheckpointError {
        CheckpointError::Gguf {
            path: self.path.clone(),
            offset,
            message: message.into(),
        }
    }

    /// The tensor info with this llama.cpp name.
    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Dequantises one tensor to f32, in Hugging Face (row-major, reversed-dims) shape.
    pub fn dequantize(&self, info: &TensorInfo) -> Result<HostTensor, CheckpointError> {
        let start = self.data_offset + info.offset;
        // parse_header checked that the data lies inside the file.
        let bytes = &self.map[start as usize..(start + info.n_bytes) as usize];
        let n: usize = info.dims.iter().product::<u64>() as usize;
        let mut data = Vec::with_capacity(n);
        dequantize_into(info.ggml_type, bytes, &mut data);
        if data.len() != n {
            return Err(self.error(
                start,
                format!(
                    "tensor {}: dequantised {} of {n} elements",
                    info.name,
                    data.len()
                ),
            ));
        }
        HostTensor::new(info.shape(), data)
    }

    fn metadata_error(&self, key: &str, message: impl Into<String>) -> CheckpointError {
        CheckpointError::GgufMetadata {
            path: self.path.clone(),
            key: key.to_string(),
            message: message.into(),
        }
    }

    fn meta_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(MetadataValue::as_str)
    }

    fn meta_u64(&self, key: &str) -> Result<Option<u64>, CheckpointError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.metadata_error(key, "must be a non-negative integer")),
        }
    }

    fn meta_usize(&self, key: &str) -> Result<usize, CheckpointError> {
        match self.meta_u64(key)? {
            Some(0) => Err(self.metadata_error(key, "must be positive")),
            Some(v) => usize::try_from(v).map_err(|_| self.metadata_error(key, "is too large")),
            None => Err(self.metadata_error(key, "is missing")),
        }
    }

    fn meta_f64(&self, key: &str) -> Result<Option<f64>, CheckpointError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite())
                .map(Some)
                .ok_or_else(|| self.metadata_error(key, "must be a number")),
        }
    }

    fn meta_strings(&self, key: &str) -> Result<Vec<String>, CheckpointError> {
        let items = self
            .get(key)
            .and_then(MetadataValue::as_array)
            .ok_or_else(|| self.metadata_error(key, "must be an array of strings"))?;
        items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| self.metadata_error(key, "must hold strings"))
            })
            .collect()
    }

    fn meta_token_id(&self, key: &str, vocab: usize) -> Result<Option<u32>, CheckpointError> {
        match self.meta_u64(key)? {
            None => Ok(None),
            Some(id) if (id as usize) < vocab => Ok(Some(id as u32)),
            Some(id) => Err(self.metadata_error(
                key,
                format!("= {id} is outside the vocabulary of {vocab} tokens"),
            )),
        }
    }
}

/// What the bytes before the tensor data say.
struct Header {
    version: u32,
    metadata: BTreeMap<String, MetadataValue>,
    tensors: Vec<TensorInfo>,
    data_offset: u64,
}

fn parse_header(bytes: &[u8], path: &Path) -> Result<Header, CheckpointError> {
    let mut cur = Cursor {
        bytes,
        pos: 0,
        path,
    };
    let magic = cur.take(4, "magic")?;
    if magic != MAGIC {
        return Err(cur.error(0, format!("bad magic {magic:02x?}, not a GGUF file")));
    }
    let version = cur.u32("version")?;
    if version != 2 && version != 3 {
        return Err(cur.error(
            4,
            format!("unsupported GGUF version {version} (need 2 or 3)"),
        ));
    }
    // Each tensor info takes at least 8 (name) + 4 + 4 + 8 bytes; each key/value 8 + 4 + 1.
    let n_tensors = cur.count("tensor count", 24)?;
    let n_kv = cur.count("metadata count", 13)?;
    let mut metadata = BTreeMap::new();
    for i in 0..n_kv {
        let key = cur.string(&format!("metadata key {i}"))?;
        let type_id = cur.u32(&format!("type of {key}"))?;
        let value = cur.value(type_id, &key, 0)?;
        metadata.insert(key, value);
    }
    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(v) => match v.as_u64() {
            Some(a) if a > 0 && a.is_power_of_two() && a <= 1 << 20 => a,
            _ => {
                return Err(cur.error(
                    cur.pos,
                    format!("general.alignment {v:?} is not a power of two"),
                ));
            }
        },
    };
    let mut infos = Vec::with_capacity(n_tensors);
    for i in 0..n_tensors {
        let at = cur.pos;
        let name = cur.string(&format!("name of tensor {i}"))?;
        let n_dims = cur.u32(&format!("dimension count of {name}"))?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(cur.error(
                at,
                format!("tensor {name}: {n_dims} dimensions (1..=4 allowed)"),
            ));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(cur.u64(&format!("dimensions of {name}"))?);
        }
        let type_at = cur.pos;
        let type_id = cur.u32(&format!("type of {name}"))?;
        let ggml_type = GgmlType::from_id(type_id).ok_or_else(|| {
            cur.error(
                type_at,
                format!("tensor {name}: unsupported or unknown ggml type {type_id}"),
            )
        })?;
        let offset = cur.u64(&format!("offset of {name}"))?;
        let n_elements = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| cur.error(at, format!("tensor {name}: dimensions {dims:?} overflow")))?;
        if dims[0] % ggml_type.block_size() != 0 {
            return Err(cur.error(
                at,
                format!("tensor {name}: row length {} is not a multiple of the {ggml_type:?} block size", dims[0]),
            ));
        }
        let n_bytes = (n_elements / ggml_type.block_size())
            .checked_mul(ggml_type.block_bytes())
            .ok_or_else(|| cur.error(at, format!("tensor {name}: size overflows")))?;
        if offset % alignment != 0 {
            return Err(cur.error(
                at,
                format!("tensor {name}: offset {offset} is not aligned to {alignment}"),
            ));
        }
        infos.push(TensorInfo {
            name,
            dims,
            ggml_type,
            offset,
            n_bytes,
        });
    }
    let data_offset = (cur.pos as u64).div_ceil(alignment) * alignment;
    let file_len = bytes.len() as u64;
    for info in &infos {
        let end = data_offset
            .checked_add(info.offset)
            .and_then(|s| s.checked_add(info.n_bytes));
        match end {
            Some(end) if end <= file_len => {}
            _ => {
                return Err(cur.error(
                    data_offset.saturating_add(info.offset) as usize,
                    format!(
                        "tensor {}: data ({} bytes at data offset {}) runs past the end of the file ({file_len} bytes)",
                        info.name, info.n_bytes, info.offset
                    ),
                ));
            }
        }
    }
    Ok(Header {
        version,
        metadata,
        tensors: infos,
        data_offset,
    })
}

fn f16_at(bytes: &[u8], at: usize) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([bytes[at], bytes[at + 1]])).to_f32()
}

/// Dequantises raw tensor data of `ggml_type` (whole blocks) to f32.
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
fn dequantize_into(ggml_type: GgmlType, bytes: &[u8], out: &mut Vec<f32>) {
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

/// Hugging Face name of a llama.cpp tensor name; `None` for names this loader does not know.
pub fn hf_tensor_name(gguf_name: &str) -> Option<String> {
    let (stem, suffix) = gguf_name.rsplit_once('.')?;
    if suffix != "weight" && suffix != "bias" {
        return None;
    }
    let global = match stem {
        "token_embd" => Some("model.embed_tokens"),
        "output_norm" => Some("model.norm"),
        "output" => Some("lm_head"),
        _ => None,
    };
    if let Some(name) = global {
        return Some(format!("{name}.{suffix}"));
    }
    let rest = stem.strip_prefix("blk.")?;
    let (layer, part) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let hf_part = match part {
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf_part}.{suffix}"))
}

/// Undoes convert_hf_to_gguf's llama Q/K row permutation. The converter reshapes the rows as
/// `(n_head, 2, head_dim / 2)` and swaps the last two axes, so GGUF row `h*hd + 2r + i` holds
/// Hugging Face row `h*hd + i*hd/2 + r`.
pub fn unpermute_rows(data: &[f32], rows: usize, n_head: usize) -> Option<Vec<f32>> {
    if n_head == 0 || rows == 0 || !rows.is_multiple_of(n_head) || !data.len().is_multiple_of(rows)
    {
        return None;
    }
    let head_dim = rows / n_head;
    if !head_dim.is_multiple_of(2) {
        return None;
    }
    let half = head_dim / 2;
    let cols = data.len() / rows;
    let mut out = vec![0f32; data.len()];
    for h in 0..n_head {
        for i in 0..2 {
            for r in 0..half {
                let hf_row = h * head_dim + i * half + r;
                let gguf_row = h * head_dim + 2 * r + i;
                out[hf_row * cols..(hf_row + 1) * cols]
                    .copy_from_slice(&data[gguf_row * cols..(gguf_row + 1) * cols]);
            }
        }
    }
    Some(out)
}

/// The configuration described by the GGUF metadata.
fn model_config(gguf: &GgufFile, vocab_size: usize) -> Result<ModelConfig, CheckpointError> {
    let arch_name = gguf
        .meta_str("general.architecture")
        .ok_or_else(|| gguf.metadata_error("general.architecture", "is missing"))?;
    let architecture = match arch_name {
        "llama" => Architecture::Llama,
        "qwen2" => Architecture::Qwen2,
        other => {
            return Err(CheckpointError::Unsupported(format!(
                "{}: GGUF architecture {other:?} (supported: llama, qwen2)",
                gguf.path.display()
            )));
        }
    };
    let key = |k: &str| format!("{arch_name}.{k}");
    let hidden_size = gguf.meta_usize(&key("embedding_length"))?;
    let num_attention_heads = gguf.meta_usize(&key("attention.head_count"))?;
    let num_key_value_heads = match gguf.meta_u64(&key("attention.head_count_kv"))? {
        Some(n) => n as usize,
        None => num_attention_heads,
    };
    if num_key_value_heads == 0 || num_attention_heads % num_key_value_heads != 0 {
        return Err(gguf.metadata_error(
            &key("attention.head_count_kv"),
            format!("{num_key_value_heads} does not divide head_count {num_attention_heads}"),
        ));
    }
    let head_dim = match gguf.meta_u64(&key("attention.key_length"))? {
        Some(d) if d > 0 => d as usize,
        _ => hidden_size / num_attention_heads,
    };
    if head_dim == 0 || head_dim % 2 != 0 {
        return Err(gguf.error(
            0,
            format!("head dimension {head_dim} must be even and positive"),
        ));
    }
    let mut rope_scaling = match gguf.meta_str(&key("rope.scaling.type")) {
        None | Some("none") => None,
        Some("linear") => Some(RopeScaling::Linear {
            factor: gguf.meta_f64(&key("rope.scaling.factor"))?.ok_or_else(|| {
                gguf.metadata_error(
                    &key("rope.scaling.factor"),
                    "is missing for linear rope scaling",
                )
            })?,
        }),
        Some(other) => {
            return Err(CheckpointError::Unsupported(format!(
                "{}: rope scaling type {other:?}",
                gguf.path.display()
            )));
        }
    };
    if let Some(info) = gguf.tensor_info("rope_freqs.weight") {
        // Llama 3.1+ GGUFs store llama3 scaling as per-frequency factors, dropping the
        // parameters; recover them, accepting only parameters that reproduce every factor.
        let factors = gguf.dequantize(info)?;
        let theta = gguf.meta_f64(&key("rope.freq_base"))?.unwrap_or(10000.0);
        rope_scaling = Some(
            llama3_scaling_from_factors(&factors.data, theta, head_dim).ok_or_else(|| {
                CheckpointError::Unsupported(format!(
                    "{}: rope_freqs.weight does not match llama3 rope scaling",
                    gguf.path.display()
                ))
            })?,
        );
    }
    let bos_token_id = gguf.meta_token_id("tokenizer.ggml.bos_token_id", vocab_size)?;
    let mut eos_token_ids = Vec::new();
    for k in [
        "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.eot_token_id",
        "tokenizer.ggml.eom_token_id",
    ] {
        push_unique(&mut eos_token_ids, gguf.meta_token_id(k, vocab_size)?);
    }
    let pad_token_id = gguf.meta_token_id("tokenizer.ggml.padding_token_id", vocab_size)?;
    Ok(ModelConfig {
        architecture,
        vocab_size,
        hidden_size,
        intermediate_size: gguf.meta_usize(&key("feed_forward_length"))?,
        num_hidden_layers: gguf.meta_usize(&key("block_count"))?,
        num_attention_heads,
        num_key_value_heads,
        head_dim,
        max_position_embeddings: gguf.meta_usize(&key("context_length"))?,
        rms_norm_eps: gguf
            .meta_f64(&key("attention.layer_norm_rms_epsilon"))?
            .unwrap_or(1e-6),
        rope_theta: gguf.meta_f64(&key("rope.freq_base"))?.unwrap_or(10000.0),
        rope_scaling,
        tie_word_embeddings: gguf.tensor_info("output.weight").is_none(),
        attention_bias: architecture == Architecture::Qwen2,
        bos_token_id,
        eos_token_ids,
        pad_token_id,
    })
}

/// The factors llama.cpp's converter stores in `rope_freqs.weight` for llama3 rope scaling.
fn llama3_factors(scaling: &RopeScaling, theta: f64, head_dim: usize) -> Vec<f64> {
    let RopeScaling::Llama3 {
        factor,
        low_freq_factor,
        high_freq_factor,
        original_max_position_embeddings,
    } = *scaling
    else {
        return Vec::new();
    };
    let original = original_max_position_embeddings as f64;
    let low_freq_wavelen = original / low_freq_factor;
    let high_freq_wavelen = original / high_freq_factor;
    (0..head_dim / 2)
        .map(|i| {
            let freq = 1.0 / theta.powf(2.0 * i as f64 / head_dim as f64);
            let wavelen = 2.0 * std::f64::consts::PI / freq;
            if wavelen < high_freq_wavelen {
                1.0
            } else if wavelen > low_freq_wavelen {
                factor
            } else {
                let smooth =
                    (original / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
                1.0 / ((1.0 - smooth) / factor + smooth)
            }
        })
        .collect()
}

/// Llama3 rope scaling parameters that reproduce `factors`: the largest factor is the scale;
/// the others are searched among the values Llama 3.x releases use.
fn llama3_scaling_from_factors(
    factors: &[f32],
    theta: f64,
    head_dim: usize,
) -> Option<RopeScaling> {
    let factor = f64::from(factors.iter().copied().fold(1.0f32, f32::max));
    for original_max_position_embeddings in [8192, 4096, 16384, 2048, 32768] {
        for (low_freq_factor, high_freq_factor) in [(1.0, 4.0), (1.0, 2.0), (2.0, 4.0)] {
            let candidate = RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            };
            let expected = llama3_factors(&candidate, theta, head_dim);
            let matches = expected.len() == factors.len()
                && expected
                    .iter()
                    .zip(factors)
                    .all(|(e, &f)| (e - f64::from(f)).abs() <= 1e-3 * e.abs().max(1.0));
            if matches {
                return Some(candidate);
            }
        }
    }
    None
}

/// The tokenizer described by the GGUF metadata (byte-level BPE).
fn tokenizer(gguf: &GgufFile) -> Result<Tokenizer, CheckpointError> {
    let model = gguf.meta_str("tokenizer.ggml.model").unwrap_or("");
    if model != "gpt2" {
        return Err(CheckpointError::Unsupported(format!(
            "{}: tokenizer.ggml.model {model:?} (only gpt2 byte-level BPE)",
            gguf.path.display()
        )));
    }
    let tokens = gguf.meta_strings("tokenizer.ggml.tokens")?;
    let merges = gguf.meta_strings("tokenizer.ggml.merges")?;
    let token_types: Vec<i32> = match gguf.get("tokenizer.ggml.token_type") {
        None => Vec::new(),
        Some(v) => v
            .as_array()
            .ok_or_else(|| gguf.metadata_error("tokenizer.ggml.token_type", "must be an array"))?
            .iter()
            .map(|t| t.as_i64().and_then(|t| i32::try_from(t).ok()))
            .collect::<Option<Vec<i32>>>()
            .ok_or_else(|| {
                gguf.metadata_error("tokenizer.ggml.token_type", "must hold integers")
            })?,
    };
    let pre = gguf.meta_str("tokenizer.ggml.pre").unwrap_or("default");
    let token_text = |key: &str| -> Result<Option<String>, CheckpointError> {
        Ok(gguf
            .meta_token_id(key, tokens.len())?
            .map(|id| tokens[id as usize].clone()))
    };
    let add_bos_default = matches!(pre, "llama3" | "llama-bpe" | "llama-v3" | "smaug-bpe");
    let special = SpecialTokens {
        bos: token_text("tokenizer.ggml.bos_token_id")?,
        eos: token_text("tokenizer.ggml.eos_token_id")?,
        unk: token_text("tokenizer.ggml.unknown_token_id")?,
        pad: token_text("tokenizer.ggml.padding_token_id")?,
        add_bos_token: gguf
            .get("tokenizer.ggml.add_bos_token")
            .and_then(MetadataValue::as_bool)
            .unwrap_or(add_bos_default),
    };
    let vocab = ByteLevelBpeVocab {
        tokens: &tokens,
        merges: &merges,
        token_types: &token_types,
        pre,
    };
    byte_level_bpe(&vocab, special).map_err(|e| e.in_file(&gguf.path))
}

/// Dequantises every tensor under its Hugging Face name, undoing the llama Q/K permutation.
fn weights(
    gguf: &GgufFile,
    config: &ModelConfig,
    arch_is_llama: bool,
) -> Result<Weights, CheckpointError> {
    let mut weights = Weights::new();
    for info in &gguf.tensors {
        if info.name == "rope_freqs.weight" {
            continue;
        }
        let hf_name = hf_tensor_name(&info.name).ok_or_else(|| {
            CheckpointError::Unsupported(format!(
                "{}: unknown tensor {} (not part of the llama/qwen2 layout)",
                gguf.path.display(),
                info.name
            ))
        })?;
        let mut tensor = gguf.dequantize(info)?;
        let heads = if hf_name.contains(".self_attn.q_proj.") {
            Some(config.num_attention_heads)
        } else if hf_name.contains(".self_attn.k_proj.") {
            Some(config.num_key_value_heads)
        } else {
            None
        };
        if let (true, Some(n_head)) = (arch_is_llama, heads) {
            let rows = tensor.shape.first().copied().unwrap_or(0);
            tensor.data = unpermute_rows(&tensor.data, rows, n_head).ok_or_else(|| {
                gguf.error(
                    gguf.data_offset + info.offset,
                    format!(
                        "tensor {}: {rows} rows do not split into {n_head} heads",
                        info.name
                    ),
                )
            })?;
        }
        weights.insert(hf_name, tensor);
    }
    Ok(weights)
}

/// Loads a `.gguf` file as a checkpoint: config from the `<arch>.*` metadata, weights
/// dequantised under Hugging Face names, tokenizer and chat template from the metadata.
pub fn load_checkpoint(path: &Path) -> Result<Checkpoint, CheckpointError> {
    let gguf = GgufFile::open(path)?;
    let tokenizer = tokenizer(&gguf)?;
    let config = model_config(&gguf, tokenizer_vocab_len(&gguf)?)?;
    let arch_is_llama = gguf.meta_str("general.architecture") == Some("llama");
    let weights = weights(&gguf, &config, arch_is_llama)?;
    validate_shapes(&config, &weights).map_err(|e| e.in_file(path))?;
    let chat_template = match gguf.meta_str("tokenizer.chat_template") {
        Some(source) => {
            Some(chat_template_for(source.to_string(), &tokenizer).map_err(|e| e.in_file(path))?)
        }
        None => None,
    };
    Ok(Checkpoint {
        config,
        weights,
        tokenizer,
        chat_template,
        source: path.to_path_buf(),
    })
}

fn tokenizer_vocab_len(gguf: &GgufFile) -> Result<usize, CheckpointError> {
    gguf.get("tokenizer.ggml.tokens")
        .and_then(MetadataValue::as_array)
        .map(<[MetadataValue]>::len)
        .ok_or_else(|| gguf.metadata_error("tokenizer.ggml.tokens", "is missing"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The permutation convert_hf_to_gguf applies, transcribed from its Python.
    fn permute(data: &[f32], rows: usize, n_head: usize) -> Vec<f32> {
        let cols = data.len() / rows;
        let head_dim = rows / n_head;
        let half = head_dim / 2;
        let mut out = vec![0f32; data.len()];
        // reshape(n_head, 2, half, cols).swapaxes(1, 2): out[h][r][i] = in[h][i][r]
        for h in 0..n_head {
            for r in 0..half {
                for i in 0..2 {
                    let dst = h * head_dim + r * 2 + i;
                    let src = h * head_dim + i * half + r;
                    out[dst * cols..(dst + 1) * cols]
                        .copy_from_slice(&data[src * cols..(src + 1) * cols]);
                }
            }
        }
        out
    }

    #[test]
    fn unpermute_inverts_the_converter_permutation() {
        let (rows, cols, n_head) = (16, 3, 2);
        let original: Vec<f32> = (0..rows * cols).map(|x| x as f32).collect();
        let permuted = permute(&original, rows, n_head);
        assert_ne!(permuted, original);
        // Row 1 of head 0 in GGUF order is HF row 4 (i = 1, r = 0): the rotary pairs interleave.
        assert_eq!(permuted[cols..2 * cols], original[4 * cols..5 * cols]);
        assert_eq!(unpermute_rows(&permuted, rows, n_head).unwrap(), original);
    }

    #[test]
    fn llama3_scaling_is_recovered_from_rope_freqs() {
        let scaling = RopeScaling::Llama3 {
            factor: 32.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192,
        };
        let factors: Vec<f32> = llama3_factors(&scaling, 500000.0, 64)
            .iter()
            .map(|&f| f as f32)
            .collect();
        assert!(
            factors.iter().any(|&f| f > 1.0 && f < 32.0),
            "some smoothed factors"
        );
        assert_eq!(
            llama3_scaling_from_factors(&factors, 500000.0, 64),
            Some(scaling)
        );
        let mut wrong = factors.clone();
        wrong[5] *= 1.5;
        assert_eq!(llama3_scaling_from_factors(&wrong, 500000.0, 64), None);
    }

    #[test]
    fn unpermute_rejects_bad_shapes() {
        assert!(unpermute_rows(&[0.0; 6], 3, 2).is_none());
        assert!(unpermute_rows(&[0.0; 6], 6, 2).is_none());
    }

    #[test]
    fn tensor_names_map_to_hf() {
        assert_eq!(
            hf_tensor_name("token_embd.weight").unwrap(),
            "model.embed_tokens.weight"
        );
        assert_eq!(
            hf_tensor_name("blk.12.attn_output.weight").unwrap(),
            "model.layers.12.self_attn.o_proj.weight"
        );
        assert_eq!(
            hf_tensor_name("blk.0.attn_q.bias").unwrap(),
            "model.layers.0.self_attn.q_proj.bias"
        );
        assert_eq!(
            hf_tensor_name("blk.3.ffn_norm.weight").unwrap(),
            "model.layers.3.post_attention_layernorm.weight"
        );
        assert_eq!(hf_tensor_name("output.weight").unwrap(), "lm_head.weight");
        assert!(hf_tensor_name("blk.x.attn_q.weight").is_none());
        assert!(hf_tensor_name("blk.0.mystery.weight").is_none());
    }

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
