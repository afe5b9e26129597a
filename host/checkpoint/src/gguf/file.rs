//! The GGUF container: header, metadata key/values (arrays included), tensor infos and
//! `general.alignment`, every read bounds-checked against the memory-mapped file.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use super::dequant::dequantize_into;
use crate::{CheckpointError, HostTensor};

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
    /// `array` of values of one type, stored compactly ([`MetadataArray`]).
    Array(MetadataArray),
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
    pub fn as_array(&self) -> Option<&MetadataArray> {
        match self {
            MetadataValue::Array(items) => Some(items),
            _ => None,
        }
    }
}

/// A metadata array as a typed vector: an element costs about what it costs in the file
/// (a string: its bytes and one offset), where a vector of [`MetadataValue`]s would cost 32
/// bytes per element, 32 times the file's size for a byte array.
#[derive(Clone, Debug, PartialEq)]
pub enum MetadataArray {
    /// `uint8` elements.
    U8(Vec<u8>),
    /// `int8` elements.
    I8(Vec<i8>),
    /// `uint16` elements.
    U16(Vec<u16>),
    /// `int16` elements.
    I16(Vec<i16>),
    /// `uint32` elements.
    U32(Vec<u32>),
    /// `int32` elements.
    I32(Vec<i32>),
    /// `float32` elements.
    F32(Vec<f32>),
    /// `bool` elements.
    Bool(Vec<bool>),
    /// `string` elements.
    String(StringArray),
    /// Nested arrays.
    Array(Vec<MetadataArray>),
    /// `uint64` elements.
    U64(Vec<u64>),
    /// `int64` elements.
    I64(Vec<i64>),
    /// `float64` elements.
    F64(Vec<f64>),
}

impl MetadataArray {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            MetadataArray::U8(v) => v.len(),
            MetadataArray::I8(v) => v.len(),
            MetadataArray::U16(v) => v.len(),
            MetadataArray::I16(v) => v.len(),
            MetadataArray::U32(v) => v.len(),
            MetadataArray::I32(v) => v.len(),
            MetadataArray::F32(v) => v.len(),
            MetadataArray::Bool(v) => v.len(),
            MetadataArray::String(v) => v.len(),
            MetadataArray::Array(v) => v.len(),
            MetadataArray::U64(v) => v.len(),
            MetadataArray::I64(v) => v.len(),
            MetadataArray::F64(v) => v.len(),
        }
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The strings, when this is an array of strings.
    pub fn as_strings(&self) -> Option<&StringArray> {
        match self {
            MetadataArray::String(strings) => Some(strings),
            _ => None,
        }
    }

    /// Element `index` as a signed integer, when this is an integer array and the element
    /// fits in an `i64`.
    pub fn integer_at(&self, index: usize) -> Option<i64> {
        match self {
            MetadataArray::U8(v) => v.get(index).map(|&x| x.into()),
            MetadataArray::I8(v) => v.get(index).map(|&x| x.into()),
            MetadataArray::U16(v) => v.get(index).map(|&x| x.into()),
            MetadataArray::I16(v) => v.get(index).map(|&x| x.into()),
            MetadataArray::U32(v) => v.get(index).map(|&x| x.into()),
            MetadataArray::I32(v) => v.get(index).map(|&x| x.into()),
            MetadataArray::U64(v) => v.get(index).and_then(|&x| i64::try_from(x).ok()),
            MetadataArray::I64(v) => v.get(index).copied(),
            _ => None,
        }
    }
}

/// An array of strings kept as one text buffer and the end offset of each string.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StringArray {
    text: String,
    ends: Vec<usize>,
}

impl StringArray {
    /// Number of strings.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are no strings.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// String `index`, if there is one.
    pub fn get(&self, index: usize) -> Option<&str> {
        let end = *self.ends.get(index)?;
        let start = match index {
            0 => 0,
            _ => self.ends[index - 1],
        };
        self.text.get(start..end)
    }

    /// The strings in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        (0..self.len()).filter_map(|index| self.get(index))
    }

    /// Appends a string.
    pub fn push(&mut self, item: &str) {
        self.text.push_str(item);
        self.ends.push(self.text.len());
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

    /// The type's ggml id (as written in a tensor info).
    pub fn id(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q4_0 => 2,
            GgmlType::Q4_1 => 3,
            GgmlType::Q5_0 => 6,
            GgmlType::Q5_1 => 7,
            GgmlType::Q8_0 => 8,
            GgmlType::Q4K => 12,
            GgmlType::Q6K => 14,
            GgmlType::F64 => 28,
            GgmlType::BF16 => 30,
        }
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
    pub(super) data_offset: u64,
    /// Where the metadata key/values lie in the file (after the 24-byte header), copied as they
    /// are when a GGUF is written with new weights.
    pub(super) metadata_bytes: std::ops::Range<usize>,
    /// The data alignment (`general.alignment`, or 32).
    pub(super) alignment: u64,
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
    pub(super) fn error(&self, offset: usize, message: impl Into<String>) -> CheckpointError {
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

    fn value(&mut self, type_id: u32, what: &str) -> Result<MetadataValue, CheckpointError> {
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
            9 => MetadataValue::Array(self.metadata_array(what, 0)?),
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

impl Cursor<'_> {
    /// An array's element type, count and elements, each element type read into its own
    /// typed vector. The count is bounded by the bytes left before anything is allocated.
    fn metadata_array(
        &mut self,
        what: &str,
        depth: usize,
    ) -> Result<MetadataArray, CheckpointError> {
        let at = self.pos;
        if depth >= MAX_ARRAY_DEPTH {
            return Err(self.error(at, format!("{what}: arrays nested too deeply")));
        }
        let item_type = self.u32(what)?;
        // The fewest bytes an element of each type takes in the file: a string is at least its
        // 8-byte length, a nested array its 4-byte type and 8-byte count.
        let min_bytes = match item_type {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            8 | 10..=12 => 8,
            9 => 12,
            other => {
                return Err(self.error(at, format!("{what}: unknown array element type {other}")));
            }
        };
        let n = self.count(what, min_bytes)?;
        Ok(match item_type {
            0 => MetadataArray::U8(self.take(n, what)?.to_vec()),
            1 => MetadataArray::I8(self.fixed(n, what, i8::from_le_bytes)?),
            2 => MetadataArray::U16(self.fixed(n, what, u16::from_le_bytes)?),
            3 => MetadataArray::I16(self.fixed(n, what, i16::from_le_bytes)?),
            4 => MetadataArray::U32(self.fixed(n, what, u32::from_le_bytes)?),
            5 => MetadataArray::I32(self.fixed(n, what, i32::from_le_bytes)?),
            6 => MetadataArray::F32(self.fixed(n, what, f32::from_le_bytes)?),
            7 => {
                let start = self.pos;
                let bytes = self.take(n, what)?;
                if let Some(bad) = bytes.iter().position(|&b| b > 1) {
                    return Err(self.error(
                        start + bad,
                        format!("{what}: invalid bool byte {}", bytes[bad]),
                    ));
                }
                MetadataArray::Bool(bytes.iter().map(|&b| b == 1).collect())
            }
            8 => {
                // `count` bounded n by the bytes left (each string has an 8-byte length).
                let mut strings = StringArray {
                    text: String::new(),
                    ends: Vec::with_capacity(n),
                };
                for _ in 0..n {
                    let len = self.count(what, 1)?;
                    let start = self.pos;
                    let bytes = self.take(len, what)?;
                    let text = std::str::from_utf8(bytes)
                        .map_err(|_| self.error(start, format!("{what} is not UTF-8")))?;
                    strings.push(text);
                }
                MetadataArray::String(strings)
            }
            9 => {
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.metadata_array(what, depth + 1)?);
                }
                MetadataArray::Array(items)
            }
            10 => MetadataArray::U64(self.fixed(n, what, u64::from_le_bytes)?),
            11 => MetadataArray::I64(self.fixed(n, what, i64::from_le_bytes)?),
            _ => MetadataArray::F64(self.fixed(n, what, f64::from_le_bytes)?),
        })
    }

    /// `n` little-endian elements of `N` bytes each.
    fn fixed<const N: usize, T>(
        &mut self,
        n: usize,
        what: &str,
        from_le_bytes: fn([u8; N]) -> T,
    ) -> Result<Vec<T>, CheckpointError> {
        // `count` bounded n by the bytes left divided by N, so this cannot overflow.
        let bytes = self.take(n.saturating_mul(N), what)?;
        Ok(bytes
            .chunks_exact(N)
            .map(|chunk| {
                let mut element = [0u8; N];
                element.copy_from_slice(chunk);
                from_le_bytes(element)
            })
            .collect())
    }
}

impl GgufFile {
    /// Opens and parses a GGUF file's header; tensor data is read on demand.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Io`] when the file cannot be opened or mapped, [`CheckpointError::Gguf`]
    /// for a malformed header (naming the byte offset).
    pub fn open(path: &Path) -> Result<Self, CheckpointError> {
        let file = File::open(path).map_err(|e| CheckpointError::io(path, e))?;
        // SAFETY: the map is read-only; model files are not expected to change while loaded.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| CheckpointError::io(path, e))?;
        let Header {
            version,
            metadata,
            tensors,
            data_offset,
            metadata_bytes,
            alignment,
        } = parse_header(&map, path)?;
        Ok(GgufFile {
            path: path.to_path_buf(),
            map,
            version,
            metadata,
            tensors,
            data_offset,
            metadata_bytes,
            alignment,
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

    pub(super) fn error(&self, offset: u64, message: impl Into<String>) -> CheckpointError {
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

    /// The raw bytes of one tensor's data.
    pub(super) fn tensor_bytes(&self, info: &TensorInfo) -> &[u8] {
        let start = (self.data_offset + info.offset) as usize;
        // parse_header checked that the data lies inside the file.
        &self.map[start..start + info.n_bytes as usize]
    }

    /// The raw bytes of the metadata key/values.
    pub(super) fn raw_metadata(&self) -> &[u8] {
        &self.map[self.metadata_bytes.clone()]
    }

    /// Dequantises one tensor to f32, in Hugging Face (row-major, reversed-dims) shape.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Gguf`] for a tensor type this reader does not dequantise.
    pub fn dequantize(&self, info: &TensorInfo) -> Result<HostTensor, CheckpointError> {
        let start = self.data_offset + info.offset;
        let bytes = self.tensor_bytes(info);
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

    pub(super) fn metadata_error(&self, key: &str, message: impl Into<String>) -> CheckpointError {
        CheckpointError::GgufMetadata {
            path: self.path.clone(),
            key: key.to_string(),
            message: message.into(),
        }
    }

    pub(super) fn meta_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(MetadataValue::as_str)
    }

    pub(super) fn meta_u64(&self, key: &str) -> Result<Option<u64>, CheckpointError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.metadata_error(key, "must be a non-negative integer")),
        }
    }

    pub(super) fn meta_usize(&self, key: &str) -> Result<usize, CheckpointError> {
        match self.meta_u64(key)? {
            Some(0) => Err(self.metadata_error(key, "must be positive")),
            Some(v) => usize::try_from(v).map_err(|_| self.metadata_error(key, "is too large")),
            None => Err(self.metadata_error(key, "is missing")),
        }
    }

    pub(super) fn meta_f64(&self, key: &str) -> Result<Option<f64>, CheckpointError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite())
                .map(Some)
                .ok_or_else(|| self.metadata_error(key, "must be a number")),
        }
    }

    pub(super) fn meta_strings(&self, key: &str) -> Result<&StringArray, CheckpointError> {
        self.get(key)
            .and_then(MetadataValue::as_array)
            .and_then(MetadataArray::as_strings)
            .ok_or_else(|| self.metadata_error(key, "must be an array of strings"))
    }

    pub(super) fn meta_token_id(
        &self,
        key: &str,
        vocab: usize,
    ) -> Result<Option<u32>, CheckpointError> {
        match self.meta_u64(key)? {
            None => Ok(None),
            Some(id) => match u32::try_from(id) {
                Ok(token) if (token as usize) < vocab => Ok(Some(token)),
                _ => Err(self.metadata_error(
                    key,
                    format!("= {id} is outside the vocabulary of {vocab} tokens"),
                )),
            },
        }
    }
}

/// What the bytes before the tensor data say.
struct Header {
    version: u32,
    metadata: BTreeMap<String, MetadataValue>,
    tensors: Vec<TensorInfo>,
    data_offset: u64,
    metadata_bytes: std::ops::Range<usize>,
    alignment: u64,
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
    let metadata_start = cur.pos;
    for i in 0..n_kv {
        let key = cur.string(&format!("metadata key {i}"))?;
        let type_id = cur.u32(&format!("type of {key}"))?;
        let value = cur.value(type_id, &key)?;
        metadata.insert(key, value);
    }
    let metadata_bytes = metadata_start..cur.pos;
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
        metadata_bytes,
        alignment,
    })
}
