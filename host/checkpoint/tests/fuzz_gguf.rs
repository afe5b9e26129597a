//! Property tests of the GGUF reader and loader (issue #11, item 4): arbitrary bytes, and a
//! small valid model file with bytes mutated, fields set to extreme values or cut short, must
//! load or fail with an error: never panic, hang or allocate by a number in the file.
//!
//! Runs 256 cases per property by default; `PROPTEST_CASES=20000 cargo test --release -p
//! ponder-checkpoint --test fuzz_gguf` fuzzes longer.

mod common;

use std::time::Instant;

use common::gguf::{tiny_llama3_model, tiny_model};
use common::{assert_prompt, proptest_config};
use ponder_checkpoint::gguf::GgufFile;
use ponder_checkpoint::{Checkpoint, Message};
use proptest::prelude::*;

/// Opens and loads `bytes` as a GGUF file, and renders a chat with it when it loads.
fn load_everything(bytes: &[u8]) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("model.gguf");
    std::fs::write(&path, bytes).expect("write the file");
    let started = Instant::now();
    if let Ok(file) = GgufFile::open(&path) {
        for info in &file.tensors {
            let _ = file.dequantize(info);
        }
    }
    if let Ok(checkpoint) = Checkpoint::load(&path) {
        let _ = checkpoint.encode_chat(&[Message::new("user", "ab ba")], true);
        let _ = checkpoint.tokenizer.encode("abba");
    }
    assert_prompt(started, 10, "loading a mutated GGUF file");
}

/// One of the two small model files: plain, or with llama3 RoPE factors and a key length.
fn model_file() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![Just(tiny_model()), Just(tiny_llama3_model())]
}

/// Values that make counts, lengths, dimensions and offsets absurd.
fn extreme_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(2),
        Just(3),
        Just(255),
        Just(u64::from(u32::MAX)),
        Just(4_000_000_000),
        Just(1 << 31),
        Just(1 << 32),
        Just(1 << 40),
        Just(1 << 61),
        Just(1 << 62),
        Just(1 << 63),
        Just(u64::MAX),
        Just(u64::MAX - 1),
        any::<u64>(),
    ]
}

proptest! {
    #![proptest_config(proptest_config(256))]

    #[test]
    fn arbitrary_bytes_after_the_magic_never_panic(
        version in prop_oneof![Just(2u32), Just(3u32), any::<u32>()],
        rest in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut bytes = b"GGUF".to_vec();
        bytes.extend(version.to_le_bytes());
        bytes.extend(rest);
        load_everything(&bytes);
    }

    #[test]
    fn a_model_file_with_bytes_mutated_never_panics(
        mut bytes in model_file(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        for (index, value) in edits {
            let at = index.index(bytes.len());
            bytes[at] = value;
        }
        load_everything(&bytes);
    }

    #[test]
    fn a_model_file_with_extreme_u64_fields_never_panics(
        mut bytes in model_file(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), extreme_u64()), 1..4),
    ) {
        for (index, value) in edits {
            // Anywhere, not only at 8-byte boundaries: fields are packed.
            let at = index.index(bytes.len() - 8);
            bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
        }
        load_everything(&bytes);
    }

    #[test]
    fn a_model_file_with_extreme_u32_fields_never_panics(
        mut bytes in model_file(),
        index in any::<prop::sample::Index>(),
        value in prop_oneof![Just(0u32), Just(1), Just(9), Just(4_000_000_000), Just(u32::MAX), any::<u32>()],
    ) {
        let at = index.index(bytes.len() - 4);
        bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
        load_everything(&bytes);
    }

    #[test]
    fn a_model_file_cut_short_or_extended_never_panics(
        mut bytes in model_file(),
        cut in any::<prop::sample::Index>(),
        tail in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        bytes.truncate(cut.index(bytes.len()));
        bytes.extend(tail);
        load_everything(&bytes);
    }
}
