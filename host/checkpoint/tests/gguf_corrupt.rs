//! Truncated and corrupt GGUF files are typed errors naming what and where — never a panic,
//! never an absurd allocation. Small files are built here byte by byte from the format.

use std::path::{Path, PathBuf};

use ponder_checkpoint::CheckpointError;
use ponder_checkpoint::gguf::{GgmlType, GgufFile, MetadataValue};

mod common;

use common::gguf::{Builder, f32_bytes};

fn small_file() -> Vec<u8> {
    let mut q8 = half::f16::from_f32(0.5).to_bits().to_le_bytes().to_vec();
    q8.extend((0..32).map(|i| (i as i8 - 16) as u8));
    Builder::default()
        .kv_str("general.architecture", "llama")
        .kv_u32("llama.block_count", 1)
        .kv_str_array("tokenizer.ggml.tokens", &["a", "b"])
        .tensor(
            "output_norm.weight",
            &[4],
            0,
            &f32_bytes(&[1.0, -2.0, 3.5, 0.25]),
        )
        .tensor("token_embd.weight", &[32, 1], common::gguf::Q8_0, &q8)
        .build()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn gguf_error(result: Result<GgufFile, CheckpointError>) -> (u64, String) {
    match result {
        Err(CheckpointError::Gguf {
            offset, message, ..
        }) => (offset, message),
        Err(other) => panic!("expected a GGUF error, got {other}"),
        Ok(file) => panic!("expected a GGUF error, got {file:?}"),
    }
}

#[test]
fn a_well_formed_small_file_parses_and_dequantises() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "ok.gguf", &small_file());
    let file = GgufFile::open(&path).unwrap();
    assert_eq!(file.version, 3);
    assert_eq!(file.get("llama.block_count"), Some(&MetadataValue::U32(1)));
    let tokens = file
        .get("tokenizer.ggml.tokens")
        .unwrap()
        .as_array()
        .unwrap();
    assert_eq!(tokens.len(), 2);
    let norm = file.tensor_info("output_norm.weight").unwrap();
    assert_eq!(
        file.dequantize(norm).unwrap().data,
        vec![1.0, -2.0, 3.5, 0.25]
    );
    let embd = file.tensor_info("token_embd.weight").unwrap();
    assert_eq!(embd.ggml_type, GgmlType::Q8_0);
    let t = file.dequantize(embd).unwrap();
    assert_eq!(t.shape, vec![1, 32]);
    assert_eq!(t.data[0], -8.0);
    assert_eq!(t.data[31], 7.5);
}

#[test]
fn version_2_files_parse_like_version_3() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = small_file();
    bytes[4..8].copy_from_slice(&2u32.to_le_bytes());
    let file = GgufFile::open(&write(dir.path(), "v2.gguf", &bytes)).unwrap();
    assert_eq!(file.version, 2);
    assert_eq!(file.tensors.len(), 2);
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let bytes = small_file();
    let dir = tempfile::tempdir().unwrap();
    for cut in 0..bytes.len() {
        let path = write(dir.path(), "cut.gguf", &bytes[..cut]);
        let (offset, message) = gguf_error(GgufFile::open(&path));
        assert!(offset <= bytes.len() as u64, "cut {cut}: offset {offset}");
        assert!(
            message.contains("truncated")
                || message.contains("past the end")
                || message.contains("impossible"),
            "cut {cut}: {message}"
        );
    }
}

#[test]
fn bad_magic_and_version_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = small_file();
    bytes[0] = b'X';
    let (offset, message) = gguf_error(GgufFile::open(&write(dir.path(), "magic.gguf", &bytes)));
    assert_eq!(offset, 0);
    assert!(message.contains("magic"), "{message}");

    let mut bytes = small_file();
    bytes[4] = 7;
    let (offset, message) = gguf_error(GgufFile::open(&write(dir.path(), "version.gguf", &bytes)));
    assert_eq!(offset, 4);
    assert!(message.contains("version 7"), "{message}");
}

#[test]
fn absurd_counts_are_rejected_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    // Tensor count of 2^60.
    let mut bytes = small_file();
    bytes[8..16].copy_from_slice(&(1u64 << 60).to_le_bytes());
    let (offset, message) = gguf_error(GgufFile::open(&write(dir.path(), "tensors.gguf", &bytes)));
    assert_eq!(offset, 8);
    assert!(message.contains("tensor count"), "{message}");

    // Metadata count of u64::MAX.
    let mut bytes = small_file();
    bytes[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    let (_, message) = gguf_error(GgufFile::open(&write(dir.path(), "kv.gguf", &bytes)));
    assert!(message.contains("metadata count"), "{message}");

    // The first key's string length of 2^62.
    let mut bytes = small_file();
    bytes[24..32].copy_from_slice(&(1u64 << 62).to_le_bytes());
    let (offset, message) = gguf_error(GgufFile::open(&write(dir.path(), "string.gguf", &bytes)));
    assert_eq!(offset, 24);
    assert!(message.contains("impossible"), "{message}");

    // An array claiming 2^40 strings.
    let text = small_file();
    let key = b"tokenizer.ggml.tokens";
    let at = text.windows(key.len()).position(|w| w == key).unwrap() + key.len() + 4 + 4;
    let mut bytes = text.clone();
    bytes[at..at + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let (offset, message) = gguf_error(GgufFile::open(&write(dir.path(), "array.gguf", &bytes)));
    assert_eq!(offset, at as u64);
    assert!(message.contains("tokenizer.ggml.tokens"), "{message}");
}

/// Byte offset of a tensor info's fields after its name.
fn after_name(bytes: &[u8], name: &str) -> usize {
    let needle = name.as_bytes();
    bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap()
        + needle.len()
}

#[test]
fn unknown_types_huge_dims_and_offsets_past_the_end_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let good = small_file();
    // output_norm.weight: n_dims u32, one dim u64, type u32, offset u64.
    let info = after_name(&good, "output_norm.weight");

    let mut bytes = good.clone();
    bytes[info + 12..info + 16].copy_from_slice(&999u32.to_le_bytes());
    let (offset, message) = gguf_error(GgufFile::open(&write(dir.path(), "type.gguf", &bytes)));
    assert_eq!(offset, (info + 12) as u64);
    assert!(
        message.contains("output_norm.weight") && message.contains("999"),
        "{message}"
    );

    let mut bytes = good.clone();
    bytes[info + 16..info + 24].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let (_, message) = gguf_error(GgufFile::open(&write(dir.path(), "offset.gguf", &bytes)));
    assert!(
        message.contains("output_norm.weight") && message.contains("past the end"),
        "{message}"
    );

    let mut bytes = good.clone();
    bytes[info + 4..info + 12].copy_from_slice(&(1u64 << 61).to_le_bytes());
    let (_, message) = gguf_error(GgufFile::open(&write(dir.path(), "dims.gguf", &bytes)));
    assert!(message.contains("output_norm.weight"), "{message}");

    let mut bytes = good.clone();
    bytes[info..info + 4].copy_from_slice(&9u32.to_le_bytes());
    let (_, message) = gguf_error(GgufFile::open(&write(dir.path(), "ndims.gguf", &bytes)));
    assert!(message.contains("9 dimensions"), "{message}");
}

#[test]
fn a_file_that_is_not_a_model_is_a_clean_checkpoint_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "small.gguf", &small_file());
    // Parses as GGUF, but lacks the model metadata: an error, not a panic.
    let err = ponder_checkpoint::Checkpoint::load(&path).unwrap_err();
    assert!(err.to_string().contains("small.gguf"), "{err}");
    let path = write(dir.path(), "text.gguf", b"hello, not a model");
    let err = ponder_checkpoint::Checkpoint::load(&path).unwrap_err();
    assert!(err.to_string().contains("magic"), "{err}");
}

#[test]
fn missing_model_metadata_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = Builder::default()
        .kv_str("general.architecture", "llama")
        .kv_str("tokenizer.ggml.model", "gpt2")
        .kv_str("tokenizer.ggml.pre", "smollm")
        .kv_str_array("tokenizer.ggml.tokens", &["a", "b", "ab"])
        .kv_str_array("tokenizer.ggml.merges", &["a b"])
        .kv_u32("llama.block_count", 1)
        .build();
    let path = write(dir.path(), "partial.gguf", &bytes);
    match ponder_checkpoint::Checkpoint::load(&path).unwrap_err() {
        CheckpointError::GgufMetadata { key, path: p, .. } => {
            assert_eq!(key, "llama.embedding_length");
            assert_eq!(p, path);
        }
        other => panic!("expected a metadata error, got {other}"),
    }
}
