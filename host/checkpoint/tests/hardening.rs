//! Model files are untrusted input: sizes, RoPE settings, metadata arrays and chat templates
//! read from them are errors naming what is wrong, never a panic, an abort, a hang or an
//! allocation sized by a number in the file (issue #11). One named test per case found.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::gguf::{Builder, add_tiny_tensors, tiny_llama3_model, tiny_model, tiny_model_metadata};
use common::{copy_model_dir, edit_config, error_chain, tiny};
use ponder_checkpoint::gguf::{GgufFile, MetadataArray, MetadataValue};
use ponder_checkpoint::{ChatTemplate, Checkpoint, CheckpointError, Message, ModelConfig};
use serde_json::json;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The tiny llama directory with `fields` of its config.json replaced, loaded.
fn load_tiny_llama_with(fields: serde_json::Value) -> Result<Checkpoint, CheckpointError> {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    copy_model_dir(&tiny("llama"), &model);
    edit_config(&model, fields);
    Checkpoint::load(&model)
}

/// Loads a GGUF image written to a temporary file.
fn load_gguf(bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
    let dir = tempfile::tempdir().unwrap();
    Checkpoint::load(&write(dir.path(), "model.gguf", bytes))
}

/// The error's full message, asserting that it took no time to find.
fn quick_error<T: std::fmt::Debug>(started: Instant, result: Result<T, CheckpointError>) -> String {
    let error = result.expect_err("an error");
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(10),
        "took {elapsed:?}: {error}"
    );
    error_chain(&error)
}

#[test]
fn the_tiny_synthetic_gguf_model_loads() {
    let checkpoint = load_gguf(&tiny_model()).unwrap();
    assert_eq!(checkpoint.config.num_hidden_layers, 1);
    assert_eq!(checkpoint.config.head_dim, 4);
    let ids = checkpoint
        .encode_chat(&[Message::new("user", "ab")], true)
        .unwrap();
    assert!(!ids.is_empty());
    let llama3 = load_gguf(&tiny_llama3_model()).unwrap();
    assert!(matches!(
        llama3.config.rope_scaling,
        Some(ponder_checkpoint::RopeScaling::Llama3 { .. })
    ));
}

// (a) A layer count read from a file drives no allocation before it is checked.

#[test]
fn hf_config_with_four_billion_layers_is_rejected_before_allocating() {
    let started = Instant::now();
    let message = quick_error(
        started,
        load_tiny_llama_with(json!({"num_hidden_layers": 4_000_000_000u64})),
    );
    assert!(
        message.contains("num_hidden_layers is 4000000000"),
        "{message}"
    );
    assert!(message.contains("config.json"), "{message}");
}

#[test]
fn hf_config_with_more_layers_than_tensors_is_rejected() {
    let message =
        error_chain(&load_tiny_llama_with(json!({"num_hidden_layers": 1000})).unwrap_err());
    assert!(
        message.contains("tensor model.layers.2.input_layernorm.weight is missing"),
        "{message}"
    );
}

#[test]
fn gguf_block_count_of_four_billion_is_rejected_before_allocating() {
    let mut builder = tiny_model_metadata();
    builder.kv_u32("llama.block_count", 4_000_000_000);
    let bytes = add_tiny_tensors(&mut builder).build();
    let started = Instant::now();
    let message = quick_error(started, load_gguf(&bytes));
    assert!(
        message.contains("num_hidden_layers is 4000000000"),
        "{message}"
    );
    assert!(message.contains("model.gguf"), "{message}");
}

#[test]
fn gguf_block_count_beyond_the_tensors_present_is_rejected() {
    let mut builder = tiny_model_metadata();
    builder.kv_u32("llama.block_count", 500);
    let bytes = add_tiny_tensors(&mut builder).build();
    let message = error_chain(&load_gguf(&bytes).unwrap_err());
    assert!(
        message.contains("500 layers need 4502 tensors, but the checkpoint holds only 11"),
        "{message}"
    );
}

// (b) Shape products are checked; head dimensions are bounded.

#[test]
fn gguf_key_length_of_2_pow_62_with_rope_freqs_is_an_error() {
    let mut builder = tiny_model_metadata();
    builder.kv_u64("llama.attention.key_length", 1 << 62);
    builder.f32_tensor("rope_freqs.weight", &[2]);
    let bytes = add_tiny_tensors(&mut builder).build();
    let message = error_chain(&load_gguf(&bytes).unwrap_err());
    assert!(
        message.contains("llama.attention.key_length") && message.contains("4611686018427387904"),
        "{message}"
    );
}

#[test]
fn gguf_rope_freqs_of_the_wrong_length_is_an_error() {
    let mut builder = tiny_model_metadata();
    builder.f32_tensor("rope_freqs.weight", &[7]);
    let bytes = add_tiny_tensors(&mut builder).build();
    let message = error_chain(&load_gguf(&bytes).unwrap_err());
    assert!(message.contains("rope_freqs.weight"), "{message}");
}

#[test]
fn hf_head_dim_of_2_pow_62_is_rejected() {
    let message = error_chain(&load_tiny_llama_with(json!({"head_dim": 1u64 << 62})).unwrap_err());
    assert!(
        message.contains("head_dim is 4611686018427387904"),
        "{message}"
    );
}

#[test]
fn hf_shape_products_that_would_overflow_are_rejected() {
    // 4 heads of 2^62 would wrap to 0 in an unchecked product.
    let config = json!({"model_type": "llama", "vocab_size": 10, "hidden_size": 8,
        "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 4,
        "head_dim": 1u64 << 62});
    let error = ModelConfig::from_hf_json(&config.to_string()).unwrap_err();
    assert!(error.to_string().contains("head_dim"), "{error}");
    let config = json!({"model_type": "llama", "vocab_size": 10, "hidden_size": 8,
        "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 4096,
        "head_dim": 1024});
    let error = ModelConfig::from_hf_json(&config.to_string()).unwrap_err();
    assert!(error.to_string().contains("exceeds"), "{error}");
    for (field, value) in [
        ("hidden_size", json!(1u64 << 40)),
        ("intermediate_size", json!(1u64 << 40)),
        ("vocab_size", json!(1u64 << 40)),
        ("max_position_embeddings", json!(1u64 << 40)),
        ("max_position_embeddings", json!(0)),
    ] {
        let message = error_chain(&load_tiny_llama_with(json!({ field: value })).unwrap_err());
        assert!(
            message.contains(&format!("{field} is")),
            "{field}: {message}"
        );
    }
}

// (c) Metadata arrays cost about what they cost in the file.

#[test]
fn gguf_metadata_arrays_are_typed_vectors() {
    let bytes = Builder::default()
        .kv_u8_array("big", &vec![7u8; 1 << 20])
        .kv_str_array("words", &["", "é", "two words"])
        .build();
    let dir = tempfile::tempdir().unwrap();
    let file = GgufFile::open(&write(dir.path(), "arrays.gguf", &bytes)).unwrap();
    match file.get("big") {
        Some(MetadataValue::Array(MetadataArray::U8(items))) => {
            assert_eq!(items.len(), 1 << 20);
            assert!(items.iter().all(|&b| b == 7));
        }
        other => panic!("expected a u8 array, got {other:?}"),
    }
    let words = file.get("words").unwrap().as_array().unwrap();
    let words: Vec<&str> = words.as_strings().unwrap().iter().collect();
    assert_eq!(words, ["", "é", "two words"]);
}

// (d) RoPE and norm settings are range-checked at validation.

#[test]
fn rope_and_norm_settings_out_of_range_are_rejected() {
    let cases = [
        (
            json!({"rope_parameters": {"rope_type": "linear", "factor": 0.0}}),
            "linear rope scaling factor is 0",
        ),
        (
            json!({"rope_parameters": {"rope_type": "linear", "factor": -2.0}}),
            "linear rope scaling factor is -2",
        ),
        (
            json!({"rope_parameters": {"rope_theta": 0.0}}),
            "rope_theta is 0",
        ),
        (
            json!({"rope_parameters": {"rope_theta": -10000.0}}),
            "rope_theta is -10000",
        ),
        (
            json!({"rope_parameters": {"rope_theta": 0.5}}),
            "rope_theta is 0.5; it must be a finite number of at least 1",
        ),
        (
            json!({"rope_parameters": {"rope_type": "linear", "factor": 1e-300}}),
            "linear rope scaling factor is 1e-300",
        ),
        (json!({"rms_norm_eps": 0.0}), "rms_norm_eps is 0"),
        (json!({"rms_norm_eps": -1e-5}), "rms_norm_eps is -0.00001"),
        (
            json!({"rope_parameters": {"rope_type": "llama3", "factor": 8.0,
                "low_freq_factor": 4.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192}}),
            "high_freq_factor 4 must exceed low_freq_factor 4",
        ),
        (
            json!({"rope_parameters": {"rope_type": "llama3", "factor": 0.0,
                "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192}}),
            "llama3 rope scaling factor is 0",
        ),
        (
            json!({"rope_parameters": {"rope_type": "llama3", "factor": 8.0,
                "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 0}}),
            "original_max_position_embeddings is 0",
        ),
    ];
    for (fields, expected) in cases {
        let message = error_chain(&load_tiny_llama_with(fields.clone()).unwrap_err());
        assert!(message.contains(expected), "{fields}: {message}");
    }
}

#[test]
fn gguf_linear_rope_factor_of_zero_is_rejected() {
    let mut builder = tiny_model_metadata();
    builder
        .kv_str("llama.rope.scaling.type", "linear")
        .kv_f32("llama.rope.scaling.factor", 0.0);
    let bytes = add_tiny_tensors(&mut builder).build();
    let message = error_chain(&load_gguf(&bytes).unwrap_err());
    assert!(
        message.contains("linear rope scaling factor is 0"),
        "{message}"
    );
}

// (e) Chat templates run under a work budget and an output bound.

/// Renders `source` on one short message, asserting that it ends (either way) quickly.
fn render_hostile(source: &str) -> Result<String, CheckpointError> {
    let started = Instant::now();
    let result = ChatTemplate::new(source, Some("<s>"), Some("</s>"))
        .and_then(|template| template.render(&[Message::new("user", "hi")], true));
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(10), "{source}: {elapsed:?}");
    result
}

fn assert_chat_template_error(source: &str, expected: &str) {
    let error = render_hostile(source).expect_err(source);
    let message = error.to_string();
    assert!(message.starts_with("chat template: "), "{message}");
    assert!(message.contains(expected), "{source}: {message}");
}

#[test]
fn chat_template_with_nested_huge_loops_runs_out_of_fuel() {
    assert_chat_template_error(
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "work budget",
    );
}

#[test]
fn chat_template_doubling_a_string_runs_out_of_fuel() {
    assert_chat_template_error(
        "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}",
        "work budget",
    );
}

#[test]
fn chat_template_repeating_a_string_runs_out_of_fuel() {
    assert_chat_template_error("{{ 'x' * 1000000000 }}", "work budget");
}

#[test]
fn chat_template_with_unbounded_recursion_is_an_error() {
    assert_chat_template_error(
        "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
        "recursion",
    );
}

#[test]
fn chat_template_writing_too_long_a_prompt_is_an_error() {
    // Within the fuel (output costs one fuel per 64 bytes) but beyond the output bound:
    // a 1 MiB string printed 20 times.
    assert_chat_template_error(
        "{% set s = 'y' * 1048576 %}{% for i in range(20) %}{{ s }}{% endfor %}",
        "exceeds",
    );
}

#[test]
fn real_chat_templates_render_long_conversations_within_the_budget() {
    let source = std::fs::read_to_string(tiny("llama").join("chat_template.jinja")).unwrap();
    let template = ChatTemplate::new(source, Some("<s>"), Some("</s>")).unwrap();
    let messages: Vec<Message> = (0..400)
        .map(|i| {
            let role = if i % 2 == 0 { "user" } else { "assistant" };
            Message::new(role, "a sentence of ordinary length. ".repeat(30))
        })
        .collect();
    let text = template.render(&messages, true).unwrap();
    assert!(text.len() > 400 * 900, "{}", text.len());
}

// (h) Every cause is printed once.

#[test]
fn invalid_config_errors_name_their_cause_once() {
    let error = load_tiny_llama_with(json!({"num_attention_heads": 0})).unwrap_err();
    let message = error_chain(&error);
    assert_eq!(
        message
            .matches("num_attention_heads must be positive")
            .count(),
        1,
        "{message}"
    );
    assert!(
        message.contains("config.json: invalid model configuration"),
        "{message}"
    );
}

#[test]
fn missing_tensor_errors_name_their_cause_once() {
    let source = Checkpoint::load(&tiny("llama")).unwrap();
    let mut weights = source.weights.clone();
    let norm = weights.take("model.norm.weight").unwrap();
    // Keep the tensor count, so the missing name is what is reported.
    weights.insert("model.extra.weight".into(), norm);
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    copy_model_dir(&tiny("llama"), &model);
    ponder_checkpoint::write_safetensors_f32(&model.join("model.safetensors"), &weights).unwrap();
    let message = error_chain(&Checkpoint::load(&model).unwrap_err());
    assert_eq!(
        message
            .matches("tensor model.norm.weight is missing from the checkpoint")
            .count(),
        1,
        "{message}"
    );
}

#[test]
fn io_errors_name_their_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    copy_model_dir(&tiny("llama"), &model);
    std::fs::write(model.join("config.json"), [0xff, 0xfe]).unwrap();
    let message = error_chain(&Checkpoint::load(&model).unwrap_err());
    assert!(message.contains("config.json: "), "{message}");
    assert_eq!(message.matches("UTF-8").count(), 1, "{message}");
}
