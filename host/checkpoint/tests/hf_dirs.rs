//! Hugging Face directories: the tiny reference models load with the right config, names,
//! shapes and tokens.

mod common;

use common::{ids, read_json, reference_dir, tiny};
use ponder_checkpoint::{
    Architecture, Checkpoint, CheckpointError, Message, ModelConfig, RopeScaling,
};

const TINY_MODELS: [&str; 6] = [
    "llama",
    "llama3",
    "qwen2",
    "qwen2-sharded",
    "llama-bf16",
    "policy",
];

fn load(name: &str) -> Checkpoint {
    Checkpoint::load(&tiny(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_tiny_model_loads_with_its_config() {
    for name in TINY_MODELS {
        let ckpt = load(name);
        let c = &ckpt.config;
        assert_eq!(c.vocab_size, 49152, "{name}");
        assert_eq!(c.hidden_size, 32, "{name}");
        assert_eq!(c.intermediate_size, 64, "{name}");
        assert_eq!(c.num_hidden_layers, 2, "{name}");
        assert_eq!(c.num_attention_heads, 4, "{name}");
        assert_eq!(c.num_key_value_heads, 2, "{name}");
        assert_eq!(c.head_dim, 8, "{name}");
        assert_eq!(c.max_position_embeddings, 256, "{name}");
        assert_eq!(c.rms_norm_eps, 1e-5, "{name}");
        assert_eq!(c.bos_token_id, Some(1), "{name}");
        assert_eq!(c.eos_token_ids, vec![2], "{name}");
        assert_eq!(ckpt.tokenizer.vocab_size(), 49152, "{name}");
        assert_eq!(ckpt.end_of_turn_id(), Some(2), "{name}: <|im_end|>");
        assert!(ckpt.chat_template.is_some(), "{name}");
        // Two layers of nine matrices and two norms, embeddings, final norm, maybe a head and biases.
        let per_layer = if c.attention_bias { 12 } else { 9 };
        let head = usize::from(!c.tie_word_embeddings);
        assert_eq!(ckpt.weights.len(), 2 * per_layer + 2 + head, "{name}");
    }
}

#[test]
fn configs_cover_both_transformers_styles() {
    let llama = load("llama").config;
    assert_eq!(llama.architecture, Architecture::Llama);
    assert!(llama.tie_word_embeddings);
    assert_eq!(llama.rope_theta, 10000.0);
    assert_eq!(llama.rope_scaling, None);
    assert!(!llama.attention_bias);

    let llama3 = load("llama3").config;
    assert!(!llama3.tie_word_embeddings);
    assert_eq!(llama3.rope_theta, 500000.0);
    assert_eq!(
        llama3.rope_scaling,
        Some(RopeScaling::Llama3 {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 32
        })
    );

    let qwen2 = load("qwen2").config;
    assert_eq!(qwen2.architecture, Architecture::Qwen2);
    assert!(qwen2.attention_bias);
    assert_eq!(qwen2.rope_theta, 1_000_000.0);
}

#[test]
fn weights_have_hf_names_and_shapes() {
    let llama = load("llama");
    let w = &llama.weights;
    assert_eq!(
        w.get("model.embed_tokens.weight").unwrap().shape,
        vec![49152, 32]
    );
    assert_eq!(
        w.get("model.layers.1.self_attn.q_proj.weight")
            .unwrap()
            .shape,
        vec![32, 32]
    );
    assert_eq!(
        w.get("model.layers.1.self_attn.k_proj.weight")
            .unwrap()
            .shape,
        vec![16, 32]
    );
    assert_eq!(
        w.get("model.layers.0.mlp.down_proj.weight").unwrap().shape,
        vec![32, 64]
    );
    assert!(
        w.get("lm_head.weight").is_none(),
        "tied model has no separate head"
    );

    let qwen2 = load("qwen2");
    assert_eq!(
        qwen2
            .weights
            .get("model.layers.0.self_attn.k_proj.bias")
            .unwrap()
            .shape,
        vec![16]
    );
    assert_eq!(
        qwen2.weights.get("lm_head.weight").unwrap().shape,
        vec![49152, 32]
    );

    let mut weights = llama.weights.clone();
    let err = weights
        .take("model.layers.9.mlp.up_proj.weight")
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("model.layers.9.mlp.up_proj.weight"),
        "{err}"
    );
}

#[test]
fn sharded_weights_equal_the_single_file() {
    let single = load("qwen2");
    let sharded = load("qwen2-sharded");
    assert_eq!(single.weights, sharded.weights);
    assert_eq!(single.config, sharded.config);
}

#[test]
fn bf16_weights_widen_exactly() {
    let bf16 = load("llama-bf16");
    let f32_model = load("llama");
    let a = bf16
        .weights
        .get("model.layers.0.mlp.up_proj.weight")
        .unwrap();
    let b = f32_model
        .weights
        .get("model.layers.0.mlp.up_proj.weight")
        .unwrap();
    assert_eq!(a.shape, b.shape);
    // Every bf16 value is exactly representable: its low 16 bits are zero.
    assert!(a.data.iter().all(|x| x.to_bits() & 0xffff == 0));
    // And they are the f32 weights rounded to bf16.
    let max_rel = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| ((x - y) / y.abs().max(1e-3)).abs())
        .fold(0.0f32, f32::max);
    assert!(max_rel < 1e-2, "bf16 weights differ from f32 by {max_rel}");
}

#[test]
fn dpo_reference_prompts_and_completions_encode_exactly() {
    let dpo = read_json(&reference_dir().join("tiny/dpo.json"));
    let ckpt = load("llama");
    for (i, pair) in dpo["pairs"].as_array().unwrap().iter().enumerate() {
        let messages: Vec<Message> = serde_json::from_value(pair["messages"].clone()).unwrap();
        let prompt = ckpt.encode_chat(&messages, true).unwrap();
        assert_eq!(prompt, ids(&pair["prompt_ids"]), "pair {i} prompt");
        for side in ["chosen", "rejected"] {
            let text = format!("{}<|im_end|>", pair[side].as_str().unwrap());
            let got = ckpt.tokenizer.encode(&text).unwrap();
            assert_eq!(
                got,
                ids(&pair[format!("{side}_ids").as_str()]),
                "pair {i} {side}"
            );
        }
    }
}

#[test]
fn forward_reference_ids_round_trip_through_the_tokenizer() {
    let forward = read_json(&reference_dir().join("tiny/forward.json"));
    for name in TINY_MODELS {
        let ckpt = load(name);
        for case in forward[name].as_array().unwrap() {
            let expected = ids(&case["ids"]);
            let text = ckpt.tokenizer.decode(&expected, false).unwrap();
            assert_eq!(
                ckpt.tokenizer.encode(&text).unwrap(),
                expected,
                "{name} {}",
                case["name"]
            );
        }
    }
}

#[test]
fn a_missing_directory_or_file_is_named() {
    let err = Checkpoint::load(&tiny("does-not-exist")).unwrap_err();
    assert!(err.to_string().contains("does-not-exist"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        tiny("llama").join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let err = Checkpoint::load(dir.path()).unwrap_err();
    assert!(matches!(err, CheckpointError::MissingFile { .. }), "{err}");
    assert!(err.to_string().contains("model.safetensors"), "{err}");
}

#[test]
fn a_truncated_safetensors_file_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    for file in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(tiny("llama").join(file), dir.path().join(file)).unwrap();
    }
    let bytes = std::fs::read(tiny("llama").join("model.safetensors")).unwrap();
    std::fs::write(
        dir.path().join("model.safetensors"),
        &bytes[..bytes.len() / 2],
    )
    .unwrap();
    let err = Checkpoint::load(dir.path()).unwrap_err();
    assert!(err.to_string().contains("model.safetensors"), "{err}");
}

#[test]
fn transformers_5_rope_parameters_with_llama3_scaling_parse() {
    let text = r#"{"model_type": "llama", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 16,
        "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
        "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0,
            "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
        "tie_word_embeddings": true, "eos_token_id": [128001, 128008, 128009]}"#;
    let config = ModelConfig::from_hf_json(text).unwrap();
    assert_eq!(config.rope_theta, 500000.0);
    assert!(
        matches!(config.rope_scaling, Some(RopeScaling::Llama3 { factor, .. }) if factor == 32.0)
    );
    assert_eq!(config.eos_token_ids, vec![128001, 128008, 128009]);
    assert_eq!(config.num_key_value_heads, 1);

    let mistral = text.replace("\"llama\"", "\"mistral\"");
    assert_eq!(
        ModelConfig::from_hf_json(&mistral).unwrap().architecture,
        Architecture::Llama
    );
}

#[test]
fn saved_tiny_models_load_back_identically() {
    let dpo = read_json(&reference_dir().join("tiny/dpo.json"));
    let pair = &dpo["pairs"][0];
    let messages: Vec<Message> = serde_json::from_value(pair["messages"].clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for name in ["llama", "llama3", "qwen2"] {
        let ckpt = load(name);
        let out = dir.path().join(name);
        ponder_checkpoint::save_hf_dir(
            &out,
            &ckpt.config,
            &ckpt.weights,
            &ckpt.tokenizer,
            ckpt.chat_template.as_ref(),
        )
        .unwrap();
        let back = Checkpoint::load(&out).unwrap();
        assert_eq!(back.config, ckpt.config, "{name}");
        assert_eq!(back.weights, ckpt.weights, "{name}");
        assert_eq!(
            back.encode_chat(&messages, true).unwrap(),
            ids(&pair["prompt_ids"]),
            "{name}"
        );
        assert_eq!(
            back.tokenizer.to_json().unwrap(),
            ckpt.tokenizer.to_json().unwrap(),
            "{name}"
        );

        let python = std::env::var_os("PONDER_PEER_PYTHON")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| "/tmp/peers/venv/bin/python".into());
        if name == "qwen2" && python.is_file() {
            let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../scripts/check_hf_load.py");
            let output = std::process::Command::new(&python)
                .arg(&script)
                .arg(&out)
                .env("HF_HUB_OFFLINE", "1")
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

#[test]
fn saving_refuses_weights_that_do_not_fit_the_config() {
    let ckpt = load("llama");
    let mut weights = ckpt.weights.clone();
    let _ = weights.take("model.layers.1.mlp.up_proj.weight").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("broken");
    let err = ponder_checkpoint::save_hf_dir(&out, &ckpt.config, &weights, &ckpt.tokenizer, None)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("model.layers.1.mlp.up_proj.weight"),
        "{err}"
    );
    assert!(!out.exists(), "nothing is written on error");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn bos_is_added_exactly_once_whether_or_not_the_template_writes_it() {
    let base = load("llama");
    let mut ckpt = base.clone();
    let special = ckpt.tokenizer.special_tokens_mut();
    special.bos = Some("<|endoftext|>".into());
    special.add_bos_token = true;
    let messages = [Message::new("user", "Hi")];
    let llama3_style = "{{- bos_token }}{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\n' + message['content'] | trim + '<|im_end|>' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}";
    let without_bos = "{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\n' + message['content'] | trim + '<|im_end|>' }}{%- endfor %}";
    for source in [llama3_style, without_bos] {
        ckpt.chat_template = Some(
            ponder_checkpoint::ChatTemplate::new(source, Some("<|endoftext|>"), Some("<|im_end|>"))
                .unwrap(),
        );
        let ids = ckpt.encode_chat(&messages, true).unwrap();
        assert_eq!(ids[0], 0, "{source}");
        assert_eq!(
            ids.iter().filter(|&&id| id == 0).count(),
            1,
            "{source}: {ids:?}"
        );
    }
    // SmolLM2 itself wants no BOS: the prompt starts with the template's <|im_start|>.
    assert!(!base.tokenizer.special_tokens().add_bos_token);
    assert_eq!(base.encode_chat(&messages, true).unwrap()[0], 1);

    let mut no_template = base.clone();
    no_template.chat_template = None;
    let err = no_template.encode_chat(&messages, true).unwrap_err();
    assert!(matches!(err, CheckpointError::NoChatTemplate), "{err}");
}

#[test]
fn chat_template_comes_from_tokenizer_config_as_a_string_or_named_list() {
    let source_dir = tiny("llama");
    let template = std::fs::read_to_string(source_dir.join("chat_template.jinja")).unwrap();
    let mut config = read_json(&source_dir.join("tokenizer_config.json"));
    let messages = [Message::new("user", "Hi")];
    let expected = load("llama").encode_chat(&messages, true).unwrap();
    let forms = [
        serde_json::json!(template),
        serde_json::json!([
            {"name": "tool_use", "template": "{{ raise_exception('not this one') }}"},
            {"name": "default", "template": template},
        ]),
    ];
    for form in forms {
        let dir = tempfile::tempdir().unwrap();
        for file in ["config.json", "model.safetensors", "tokenizer.json"] {
            std::fs::copy(source_dir.join(file), dir.path().join(file)).unwrap();
        }
        config["chat_template"] = form.clone();
        std::fs::write(dir.path().join("tokenizer_config.json"), config.to_string()).unwrap();
        let ckpt = Checkpoint::load(dir.path()).unwrap();
        assert_eq!(
            ckpt.encode_chat(&messages, true).unwrap(),
            expected,
            "{form}"
        );
    }
}

#[test]
fn saving_again_removes_what_a_killed_writer_left_beside_the_directory() {
    let ckpt = load("llama");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("best");
    // What a writer killed before its renames leaves: a half-written temporary directory and a
    // moved-aside old one. A similar name of another directory stays.
    for leftover in [".best.tmp-123-456", ".best.old-123-456", ".bestish.tmp-1"] {
        std::fs::create_dir(dir.path().join(leftover)).unwrap();
        std::fs::write(dir.path().join(leftover).join("config.json"), "{").unwrap();
    }
    ponder_checkpoint::save_hf_dir(&out, &ckpt.config, &ckpt.weights, &ckpt.tokenizer, None)
        .unwrap();
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [".bestish.tmp-1", "best"]);
}
