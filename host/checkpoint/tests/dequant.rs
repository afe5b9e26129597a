//! Dequantisation of every supported block type against llama.cpp's gguf-py
//! (`tests/data/dequant_fixtures.json`, written by `tests/data/make_dequant_fixtures.py`).

use ponder_checkpoint::gguf::{GgmlType, dequantize_blocks};

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn every_block_type_matches_gguf_py() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/dequant_fixtures.json"
    );
    let fixtures: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = fixtures["cases"].as_array().unwrap();
    let mut seen = Vec::new();
    for case in cases {
        let name = case["type"].as_str().unwrap();
        let ggml_type = GgmlType::from_id(case["type_id"].as_u64().unwrap() as u32)
            .unwrap_or_else(|| panic!("{name} unsupported"));
        let bytes = hex(case["bytes_hex"].as_str().unwrap());
        let expected: Vec<f32> = case["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let got = dequantize_blocks(ggml_type, &bytes).unwrap();
        assert_eq!(got.len(), expected.len(), "{name}");
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            assert!(
                (g - e).abs() <= 1e-6 * e.abs().max(1.0),
                "{name} element {i}: {g} vs gguf-py {e}"
            );
        }
        assert!(
            dequantize_blocks(ggml_type, &bytes[..bytes.len() - 1]).is_err() || bytes.len() == 1
        );
        seen.push(name.to_string());
    }
    for required in ["Q4_0", "Q4_1", "Q8_0", "Q4_K", "Q6_K", "F16", "BF16"] {
        assert!(
            seen.iter().any(|s| s == required),
            "no fixture for {required}"
        );
    }
}
