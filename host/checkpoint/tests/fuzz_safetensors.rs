//! Property tests of safetensors loading (issue #11, item 4): a small valid file with its
//! header mutated, replaced by generated headers with extreme shapes and offsets, or its length
//! prefix changed, and shard indexes with arbitrary weight maps, must load or fail with an
//! error: never panic or allocate by a number in the file.
//!
//! Runs 256 cases per property by default; `PROPTEST_CASES=20000 cargo test --release -p
//! ponder-checkpoint --test fuzz_safetensors` fuzzes longer.

mod common;

use std::path::Path;
use std::time::Instant;

use common::{assert_prompt, proptest_config};
use ponder_checkpoint::{HostTensor, Weights, read_hf_weights, read_safetensors_file};
use proptest::prelude::*;
use serde_json::json;

/// A valid two-tensor f32 safetensors file.
fn small_file() -> Vec<u8> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("model.safetensors");
    let mut weights = Weights::new();
    weights.insert(
        "a".into(),
        HostTensor::new(vec![2, 3], vec![0.5; 6]).expect("shape"),
    );
    weights.insert(
        "b".into(),
        HostTensor::new(vec![4], vec![1.5; 4]).expect("shape"),
    );
    ponder_checkpoint::write_safetensors_f32(&path, &weights).expect("write");
    std::fs::read(&path).expect("read back")
}

/// A safetensors file with this header text and `data_len` bytes of data.
fn with_header(header: &[u8], data_len: usize) -> Vec<u8> {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header);
    bytes.extend(std::iter::repeat_n(0x3f, data_len));
    bytes
}

fn read(bytes: &[u8]) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("model.safetensors");
    std::fs::write(&path, bytes).expect("write the file");
    let started = Instant::now();
    let mut weights = Weights::new();
    if read_safetensors_file(&path, &mut weights).is_ok() {
        for (name, tensor) in weights.iter() {
            let product = tensor
                .shape
                .iter()
                .try_fold(1usize, |p, &d| p.checked_mul(d));
            assert_eq!(product, Some(tensor.data.len()), "{name}");
        }
    }
    assert_prompt(started, 10, "reading a mutated safetensors file");
}

fn extreme_usize() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(2),
        Just(6),
        Just(24),
        Just(1 << 32),
        Just(1 << 62),
        Just(u64::MAX),
        0u64..64,
        any::<u64>(),
    ]
}

fn dtype() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "F32", "F16", "BF16", "F64", "I8", "U8", "I64", "BOOL", "F8_E4M3", "X", "",
    ])
}

fn tensor_entry() -> impl Strategy<Value = serde_json::Value> {
    (
        dtype(),
        proptest::collection::vec(extreme_usize(), 0..4),
        extreme_usize(),
        extreme_usize(),
    )
        .prop_map(|(dtype, shape, start, end)| {
            json!({"dtype": dtype, "shape": shape, "data_offsets": [start, end]})
        })
}

proptest! {
    #![proptest_config(proptest_config(256))]

    #[test]
    fn a_file_with_header_bytes_mutated_never_panics(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut bytes = small_file();
        let header_len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
        for (index, value) in edits {
            let at = 8 + index.index(header_len);
            bytes[at] = value;
        }
        read(&bytes);
    }

    #[test]
    fn generated_headers_with_extreme_shapes_and_offsets_never_panic(
        entries in proptest::collection::vec(tensor_entry(), 0..4),
        data_len in 0usize..128,
    ) {
        let mut header = serde_json::Map::new();
        for (index, entry) in entries.into_iter().enumerate() {
            header.insert(format!("t{index}"), entry);
        }
        read(&with_header(serde_json::Value::Object(header).to_string().as_bytes(), data_len));
    }

    #[test]
    fn an_extreme_header_length_never_panics(length in extreme_usize()) {
        let mut bytes = small_file();
        bytes[..8].copy_from_slice(&length.to_le_bytes());
        read(&bytes);
    }

    #[test]
    fn shard_indexes_with_arbitrary_weight_maps_never_panic(
        map in proptest::collection::vec(
            (
                prop::sample::select(vec!["a", "b", "c", ""]),
                prop_oneof![
                    prop::sample::select(vec![
                        "model.safetensors", "missing.safetensors", "../model.safetensors",
                        ".hidden", "", "a/b", "a\\b", "model.safetensors.index.json",
                    ]).prop_map(serde_json::Value::from),
                    Just(serde_json::Value::Null),
                    any::<i64>().prop_map(serde_json::Value::from),
                ],
            ),
            0..4,
        ),
    ) {
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::write(dir.path().join("model.safetensors"), small_file()).expect("write");
        let weight_map: serde_json::Map<String, serde_json::Value> =
            map.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        let index = json!({"weight_map": weight_map});
        std::fs::write(dir.path().join("model.safetensors.index.json"), index.to_string())
            .expect("write");
        let started = Instant::now();
        let _ = read_hf_weights(Path::new(dir.path()));
        assert_prompt(started, 10, "reading a sharded checkpoint");
    }
}
