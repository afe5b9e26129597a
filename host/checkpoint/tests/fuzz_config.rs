//! Property tests of config.json loading (issue #11, item 4): every field of a valid
//! configuration set to arbitrary JSON values, extreme numbers included, must parse into a
//! configuration that passes validation (every shape product fits, every RoPE setting is in
//! range) or fail with an error: never panic.
//!
//! Runs 512 cases per property by default; `PROPTEST_CASES=50000 cargo test --release -p
//! ponder-checkpoint --test fuzz_config` fuzzes longer.

mod common;

use common::proptest_config;
use ponder_checkpoint::{ModelConfig, RopeScaling};
use proptest::prelude::*;
use serde_json::{Value, json};

/// The tiny llama's configuration, valid.
fn base_config() -> Value {
    json!({
        "model_type": "llama", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 64,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "head_dim": 8, "max_position_embeddings": 256, "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0, "tie_word_embeddings": true, "bos_token_id": 1,
        "eos_token_id": 2, "pad_token_id": 2, "hidden_act": "silu",
        "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 128},
    })
}

/// Top-level fields, and the fields of `rope_scaling` / `rope_parameters` as `scaling.NAME`.
const FIELDS: &[&str] = &[
    "model_type",
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "max_position_embeddings",
    "rms_norm_eps",
    "rope_theta",
    "tie_word_embeddings",
    "attention_bias",
    "mlp_bias",
    "use_sliding_window",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "hidden_act",
    "rope_scaling",
    "rope_parameters",
    "scaling.rope_type",
    "scaling.type",
    "scaling.factor",
    "scaling.low_freq_factor",
    "scaling.high_freq_factor",
    "scaling.original_max_position_embeddings",
    "scaling.rope_theta",
];

/// Any JSON value, with numbers biased to the edges of every range.
fn json_value() -> impl Strategy<Value = Value> {
    let number = prop_oneof![
        Just(json!(0)),
        Just(json!(1)),
        Just(json!(2)),
        Just(json!(-1)),
        Just(json!(4_000_000_000u64)),
        Just(json!(1u64 << 62)),
        Just(json!(u64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!(0.0)),
        Just(json!(-0.0)),
        Just(json!(1e-300)),
        Just(json!(1e300)),
        Just(json!(f64::MAX)),
        Just(json!(0.5)),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |x| x.is_finite())
            .prop_map(|x| json!(x)),
        (0u64..4096).prop_map(|n| json!(n)),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        number,
        prop::sample::select(vec![
            "llama", "qwen2", "mistral", "linear", "llama3", "default", "yarn", "silu", "", "1",
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec(
                (
                    prop::sample::select(vec!["factor", "rope_type", "type", "rope_theta"]),
                    inner
                ),
                0..4
            )
            .prop_map(|pairs| Value::Object(
                pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}

fn set_field(config: &mut Value, field: &str, value: Value) {
    match field.strip_prefix("scaling.") {
        Some(inner) => {
            if let Some(scaling) = config["rope_scaling"].as_object_mut() {
                scaling.insert(inner.to_string(), value);
            }
        }
        None => config[field] = value,
    }
}

/// What a configuration that parsed must satisfy: what the model and RoPE rely on.
fn check_parsed(config: &ModelConfig) {
    config.validate().expect("a parsed configuration validates");
    assert!(config.num_hidden_layers <= ModelConfig::MAX_LAYERS);
    assert!(config.head_dim.is_multiple_of(2) && config.head_dim <= ModelConfig::MAX_HEAD_DIM);
    for (name, shape) in config.expected_tensors().take(64) {
        let product = shape.iter().try_fold(1usize, |p, &d| p.checked_mul(d));
        assert!(product.is_some_and(|n| n > 0), "{name}: {shape:?}");
    }
    // RoPE frequencies stay finite in float32: base at least 1, factors away from 0.
    assert!(config.rope_theta.is_finite() && config.rope_theta >= 1.0);
    match &config.rope_scaling {
        None => {}
        Some(RopeScaling::Linear { factor }) => assert!(factor.is_finite() && *factor >= 1e-3),
        Some(RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            ..
        }) => assert!(*factor >= 1e-3 && high_freq_factor > low_freq_factor),
    }
    // What is written back reads back (floats may move in their last bit through JSON).
    let back = ModelConfig::from_hf_json(&config.to_hf_json().to_string())
        .expect("a written configuration reads back");
    assert_eq!(back.num_hidden_layers, config.num_hidden_layers);
    assert_eq!(back.head_dim, config.head_dim);
    assert_eq!(back.vocab_size, config.vocab_size);
}

proptest! {
    #![proptest_config(proptest_config(512))]

    #[test]
    fn arbitrary_values_in_config_fields_parse_validly_or_fail(
        edits in proptest::collection::vec((prop::sample::select(FIELDS), json_value()), 1..4),
    ) {
        let mut config = base_config();
        for (field, value) in edits {
            set_field(&mut config, field, value);
        }
        if let Ok(parsed) = ModelConfig::from_hf_json(&config.to_string()) {
            check_parsed(&parsed);
        }
    }

    #[test]
    fn arbitrary_json_documents_never_panic(value in json_value()) {
        if let Ok(parsed) = ModelConfig::from_hf_json(&value.to_string()) {
            check_parsed(&parsed);
        }
    }

    #[test]
    fn arbitrary_generation_configs_never_panic(value in json_value()) {
        let mut config = ModelConfig::from_hf_json(&base_config().to_string()).expect("valid");
        let _ = config.merge_generation_config(&value.to_string());
    }
}
