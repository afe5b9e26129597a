//! The embedded default (SmolLM2-135M-Instruct, Q4_1 GGUF) against the transformers references:
//! config, tokenizer (every reference string), chat prompt ids, and the HF-directory round trip.
//! Loading the 98 MB file is done once per test binary.

mod common;

use std::sync::OnceLock;

use common::{embedded_gguf, ids, read_json, reference_dir};
use ponder_checkpoint::gguf::{GgufFile, write_like};
use ponder_checkpoint::{Architecture, Checkpoint, Message, save_hf_dir};

fn checkpoint() -> &'static Checkpoint {
    static CHECKPOINT: OnceLock<Checkpoint> = OnceLock::new();
    CHECKPOINT.get_or_init(|| {
        let path = embedded_gguf();
        Checkpoint::load(&path).unwrap_or_else(|e| panic!("{e}"))
    })
}

#[test]
fn config_comes_from_the_llama_metadata() {
    let c = &checkpoint().config;
    assert_eq!(c.architecture, Architecture::Llama);
    assert_eq!(c.vocab_size, 49152);
    assert_eq!(c.hidden_size, 576);
    assert_eq!(c.intermediate_size, 1536);
    assert_eq!(c.num_hidden_layers, 30);
    assert_eq!(c.num_attention_heads, 9);
    assert_eq!(c.num_key_value_heads, 3);
    assert_eq!(c.head_dim, 64);
    assert_eq!(c.max_position_embeddings, 8192);
    assert_eq!(c.rope_theta, 100000.0);
    assert!((c.rms_norm_eps - 1e-5).abs() < 1e-9);
    assert!(
        c.tie_word_embeddings,
        "no output tensor: the head is the embedding"
    );
    assert!(!c.attention_bias);
    assert_eq!(c.bos_token_id, Some(1));
    assert_eq!(c.eos_token_ids, vec![2]);
    assert_eq!(checkpoint().end_of_turn_id(), Some(2));
    let w = &checkpoint().weights;
    assert_eq!(w.len(), 30 * 9 + 2);
    assert_eq!(
        w.get("model.embed_tokens.weight").unwrap().shape,
        vec![49152, 576]
    );
    assert_eq!(
        w.get("model.layers.29.self_attn.k_proj.weight")
            .unwrap()
            .shape,
        vec![192, 576]
    );
    assert_eq!(
        w.get("model.layers.0.mlp.down_proj.weight").unwrap().shape,
        vec![576, 1536]
    );
}

#[test]
fn tokenizer_matches_every_reference_string() {
    let reference = read_json(&reference_dir().join("smollm2/reference_tokens.json"));
    let tokenizer = &checkpoint().tokenizer;
    let strings = reference["strings"].as_array().unwrap();
    assert_eq!(strings.len(), 10);
    for case in strings {
        let text = case["text"].as_str().unwrap();
        let expected = ids(&case["ids"]);
        assert_eq!(tokenizer.encode(text).unwrap(), expected, "{text:?}");
        let tokens: Vec<String> = expected
            .iter()
            .map(|&id| tokenizer.id_to_token(id).unwrap())
            .collect();
        let expected_tokens: Vec<String> = serde_json::from_value(case["tokens"].clone()).unwrap();
        assert_eq!(tokens, expected_tokens, "{text:?}");
        if let Some(decoded) = case["decoded"].as_str() {
            assert_eq!(
                tokenizer.decode(&expected, false).unwrap(),
                decoded,
                "{text:?}"
            );
        }
    }
}

#[test]
fn chat_and_plain_prompt_ids_match_the_reference() {
    let reference = read_json(&reference_dir().join("smollm2/reference_logits.json"));
    let ckpt = checkpoint();
    let mut chat_cases = 0;
    for case in reference["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let expected = ids(&case["input_ids"]);
        let got = match case["messages"].as_array() {
            Some(_) => {
                chat_cases += 1;
                let messages: Vec<Message> =
                    serde_json::from_value(case["messages"].clone()).unwrap();
                let rendered = ckpt
                    .chat_template
                    .as_ref()
                    .unwrap()
                    .render(&messages, true)
                    .unwrap();
                assert_eq!(
                    rendered,
                    case["text"].as_str().unwrap(),
                    "{name}: rendered prompt"
                );
                ckpt.encode_chat(&messages, true).unwrap()
            }
            None => ckpt
                .tokenizer
                .encode(case["text"].as_str().unwrap())
                .unwrap(),
        };
        assert_eq!(got, expected, "{name}: prompt ids");
        if case["messages"].is_array() {
            let starts = got.iter().filter(|&&id| id == 1).count();
            let ends = got.iter().filter(|&&id| id == 2).count();
            assert_eq!(
                starts,
                ends + 1,
                "{name}: one <|im_start|> per turn and the generation prompt, no extra BOS"
            );
        }
        let continuation = ckpt
            .tokenizer
            .encode(case["continuation"].as_str().unwrap())
            .unwrap();
        assert_eq!(
            continuation,
            ids(&case["continuation_ids"]),
            "{name}: continuation ids"
        );
    }
    assert!(chat_cases >= 3);
}

#[test]
fn saved_hf_directory_loads_back_identically() {
    let ckpt = checkpoint();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("smollm2-hf");
    save_hf_dir(
        &out,
        &ckpt.config,
        &ckpt.weights,
        &ckpt.tokenizer,
        ckpt.chat_template.as_ref(),
    )
    .unwrap();
    let back = Checkpoint::load(&out).unwrap();
    assert_eq!(back.config, ckpt.config);
    assert_eq!(back.weights, ckpt.weights);
    assert_eq!(
        back.tokenizer.special_tokens(),
        ckpt.tokenizer.special_tokens()
    );
    let reference = read_json(&reference_dir().join("smollm2/reference_tokens.json"));
    for case in reference["strings"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        assert_eq!(
            back.tokenizer.encode(text).unwrap(),
            ids(&case["ids"]),
            "{text:?}"
        );
    }
    let messages = [Message::new("user", "Hi there")];
    assert_eq!(
        back.encode_chat(&messages, true).unwrap(),
        ckpt.encode_chat(&messages, true).unwrap()
    );
    assert_eq!(
        back.chat_template.unwrap().source(),
        ckpt.chat_template.as_ref().unwrap().source()
    );

    // Saving again over the same directory replaces it atomically and leaves no temp dirs.
    save_hf_dir(&out, &back.config, &back.weights, &back.tokenizer, None).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("smollm2-hf")]);
    assert!(Checkpoint::load(&out).unwrap().chat_template.is_none());
}

#[test]
fn trained_weights_written_into_the_seed_layout_load_back_exactly() {
    let ckpt = checkpoint();
    let seed = GgufFile::open(&embedded_gguf()).unwrap();
    // Changed weights, as training leaves them: every element of a Q projection (permuted in the
    // file) and of a norm moves.
    let mut weights = ckpt.weights.clone();
    for name in [
        "model.layers.3.self_attn.q_proj.weight",
        "model.layers.3.self_attn.k_proj.weight",
        "model.norm.weight",
    ] {
        let mut tensor = weights.get(name).unwrap().clone();
        for (i, x) in tensor.data.iter_mut().enumerate() {
            *x += (i % 7) as f32 * 1e-3;
        }
        weights.insert(name.to_string(), tensor);
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("trained.gguf");
    let export = write_like(&seed, &weights, &ckpt.config, &out).unwrap();
    assert_eq!(export.written, seed.tensors.len());
    assert_eq!(export.copied, 0);
    assert_eq!(export.bytes, std::fs::metadata(&out).unwrap().len());

    let back = Checkpoint::load(&out).unwrap();
    assert_eq!(back.config, ckpt.config);
    assert_eq!(back.weights, weights, "F32 tensors load back bit for bit");
    let messages = [Message::new("user", "Hi there")];
    assert_eq!(
        back.encode_chat(&messages, true).unwrap(),
        ckpt.encode_chat(&messages, true).unwrap()
    );
    let written = GgufFile::open(&out).unwrap();
    assert_eq!(written.metadata, seed.metadata);

    // Another architecture's weights have no place in this layout.
    let mut wrong = ckpt.weights.clone();
    let norm = wrong.get("model.norm.weight").unwrap().clone();
    wrong.insert(
        "model.norm.weight".into(),
        ponder_checkpoint::HostTensor::new(vec![norm.data.len() - 1], norm.data[1..].to_vec())
            .unwrap(),
    );
    let error = write_like(&seed, &wrong, &ckpt.config, &dir.path().join("x.gguf")).unwrap_err();
    assert!(error.to_string().contains("model.norm.weight"), "{error}");
    assert!(!dir.path().join("x.gguf").exists());
}

#[test]
fn truncated_copies_of_the_real_file_are_errors() {
    let bytes = std::fs::read(embedded_gguf()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.gguf");
    for cut in [3, 100, 1_000_000, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let err = Checkpoint::load(&path).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("cut.gguf") && message.contains("GGUF at byte offset"),
            "cut {cut}: {message}"
        );
    }
}

/// A plain float32 Llama forward pass (no tensor library), just enough to check that the
/// dequantised weights, the undone Q/K permutation and the config reproduce transformers'
/// next-token logits. Returns the logits at the last position.
fn reference_forward_last_logits(ckpt: &Checkpoint, ids: &[u32]) -> Vec<f32> {
    let c = &ckpt.config;
    let (h, nh, nkv, hd) = (
        c.hidden_size,
        c.num_attention_heads,
        c.num_key_value_heads,
        c.head_dim,
    );
    let eps = c.rms_norm_eps as f32;
    let w = |name: &str| -> &[f32] {
        &ckpt
            .weights
            .get(name)
            .unwrap_or_else(|| panic!("{name}"))
            .data
    };
    let matmul = |x: &[Vec<f32>], weight: &[f32], out: usize| -> Vec<Vec<f32>> {
        let inp = weight.len() / out;
        x.iter()
            .map(|row| {
                (0..out)
                    .map(|o| {
                        weight[o * inp..(o + 1) * inp]
                            .iter()
                            .zip(row)
                            .map(|(a, b)| a * b)
                            .sum()
                    })
                    .collect()
            })
            .collect()
    };
    let rms_norm = |x: &[Vec<f32>], weight: &[f32]| -> Vec<Vec<f32>> {
        x.iter()
            .map(|row| {
                let mean = row.iter().map(|v| v * v).sum::<f32>() / row.len() as f32;
                let scale = 1.0 / (mean + eps).sqrt();
                row.iter().zip(weight).map(|(v, g)| v * scale * g).collect()
            })
            .collect()
    };
    let rope = |x: &mut [Vec<f32>], heads: usize| {
        for (pos, row) in x.iter_mut().enumerate() {
            for head in 0..heads {
                let v = &mut row[head * hd..(head + 1) * hd];
                for i in 0..hd / 2 {
                    let inv_freq = (c.rope_theta as f32).powf(-2.0 * i as f32 / hd as f32);
                    let (sin, cos) = (pos as f32 * inv_freq).sin_cos();
                    let (a, b) = (v[i], v[i + hd / 2]);
                    v[i] = a * cos - b * sin;
                    v[i + hd / 2] = b * cos + a * sin;
                }
            }
        }
    };
    let embed = w("model.embed_tokens.weight");
    let mut x: Vec<Vec<f32>> = ids
        .iter()
        .map(|&id| embed[id as usize * h..(id as usize + 1) * h].to_vec())
        .collect();
    let t = ids.len();
    for layer in 0..c.num_hidden_layers {
        let p = |name: &str| format!("model.layers.{layer}.{name}.weight");
        let xn = rms_norm(&x, w(&p("input_layernorm")));
        let mut q = matmul(&xn, w(&p("self_attn.q_proj")), nh * hd);
        let mut k = matmul(&xn, w(&p("self_attn.k_proj")), nkv * hd);
        let v = matmul(&xn, w(&p("self_attn.v_proj")), nkv * hd);
        rope(&mut q, nh);
        rope(&mut k, nkv);
        let mut attn = vec![vec![0f32; nh * hd]; t];
        for head in 0..nh {
            let kv_head = head / (nh / nkv);
            for i in 0..t {
                let qi = &q[i][head * hd..(head + 1) * hd];
                let scores: Vec<f32> = (0..=i)
                    .map(|j| {
                        let kj = &k[j][kv_head * hd..(kv_head + 1) * hd];
                        qi.iter().zip(kj).map(|(a, b)| a * b).sum::<f32>() / (hd as f32).sqrt()
                    })
                    .collect();
                let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let exps: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
                let total: f32 = exps.iter().sum();
                for (j, e) in exps.iter().enumerate() {
                    let vj = &v[j][kv_head * hd..(kv_head + 1) * hd];
                    for (o, val) in attn[i][head * hd..(head + 1) * hd].iter_mut().zip(vj) {
                        *o += e / total * val;
                    }
                }
            }
        }
        let o = matmul(&attn, w(&p("self_attn.o_proj")), h);
        x.iter_mut()
            .zip(&o)
            .for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(a, b)| *a += b));
        let xn = rms_norm(&x, w(&p("post_attention_layernorm")));
        let gate = matmul(&xn, w(&p("mlp.gate_proj")), c.intermediate_size);
        let up = matmul(&xn, w(&p("mlp.up_proj")), c.intermediate_size);
        let act: Vec<Vec<f32>> = gate
            .iter()
            .zip(&up)
            .map(|(g, u)| {
                g.iter()
                    .zip(u)
                    .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
                    .collect()
            })
            .collect();
        let down = matmul(&act, w(&p("mlp.down_proj")), h);
        x.iter_mut()
            .zip(&down)
            .for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(a, b)| *a += b));
    }
    let last = rms_norm(&x[t - 1..], w("model.norm.weight"));
    matmul(&last, embed, c.vocab_size).remove(0)
}

#[test]
fn dequantised_weights_reproduce_the_reference_logits() {
    let reference = read_json(&reference_dir().join("smollm2/reference_logits.json"));
    let ckpt = checkpoint();
    for name in ["plain_science", "chat_factual"] {
        let case = reference["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap();
        let logits = reference_forward_last_logits(ckpt, &ids(&case["input_ids"]));
        let top: Vec<(u32, f64)> = case["last_position_top20"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["id"].as_u64().unwrap() as u32,
                    e["logit"].as_f64().unwrap(),
                )
            })
            .collect();
        let worst = top
            .iter()
            .map(|&(id, logit)| (f64::from(logits[id as usize]) - logit).abs())
            .fold(0.0, f64::max);
        println!("{name}: worst top-20 logit difference {worst:.2e}");
        assert!(
            worst < 1e-3,
            "{name}: top-20 logits differ by up to {worst}"
        );
        let argmax = (0..logits.len())
            .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
            .unwrap();
        assert_eq!(argmax as u32, top[0].0, "{name}: argmax");
    }
}

/// transformers loads the directory `save_hf_dir` writes and reproduces the reference tokens,
/// chat prompts and logits. Needs a Python with torch and transformers (`PONDER_PEER_PYTHON`,
/// default `/tmp/peers/venv/bin/python`); skipped with a message when there is none.
#[test]
fn transformers_loads_the_saved_directory() {
    let given = std::env::var_os("PONDER_PEER_PYTHON").map(std::path::PathBuf::from);
    let python = given
        .clone()
        .unwrap_or_else(|| "/tmp/peers/venv/bin/python".into());
    // The default place may hold some other virtual environment: it counts only with torch and
    // transformers in it. A Python named explicitly must have them.
    let usable = python.is_file()
        && std::process::Command::new(&python)
            .args(["-c", "import torch, transformers"])
            .output()
            .is_ok_and(|output| output.status.success());
    if !usable {
        assert!(
            given.is_none(),
            "PONDER_PEER_PYTHON={} cannot import torch and transformers",
            python.display()
        );
        eprintln!(
            "skipping: no Python with torch and transformers at {}",
            python.display()
        );
        return;
    }
    let ckpt = checkpoint();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("smollm2-hf");
    save_hf_dir(
        &out,
        &ckpt.config,
        &ckpt.weights,
        &ckpt.tokenizer,
        ckpt.chat_template.as_ref(),
    )
    .unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/check_hf_load.py");
    let reference = reference_dir().join("smollm2");
    let output = std::process::Command::new(&python)
        .arg(&script)
        .arg(&out)
        .arg("--tokens")
        .arg(reference.join("reference_tokens.json"))
        .arg("--logits")
        .arg(reference.join("reference_logits.json"))
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "check_hf_load.py failed:\n{stdout}\n{stderr}"
    );
    println!("{stdout}");
}
