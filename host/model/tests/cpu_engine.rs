//! The CPU generation engine against the burn forward (itself checked against transformers)
//! and against the reference logits of the embedded model.

mod common;

use common::{
    embedded_model_path, load_cpu_model as load_model, max_abs_diff, reference_dir,
    smollm2_reference_cases, to_vec,
};
use ponder_model::{CpuEngine, PaddingSide, TokenBatch};

/// Prefill a left-padded batch of prompts of different lengths in the engine, then decode
/// token by token (including a row-selection of the cache in between, as the sampler does):
/// every step's logits equal the burn full forward of each sequence alone at that position.
fn check_engine_matches_burn(model_dir: &std::path::Path, tolerance: f32) {
    let (model, _) = load_model(model_dir);
    let engine = CpuEngine::new(&model).expect("engine on the plain CPU device");
    let vocab = model.config().vocab_size;
    let sequences: Vec<Vec<u32>> = vec![
        vec![
            504, 2365, 6354, 16438, 27003, 690, 260, 23790, 2767, 30, 378, 2365,
        ],
        vec![1, 9690, 198, 2683, 359, 253, 5356, 5646, 11, 42, 7],
        vec![11, 12, 13, 14],
    ];
    let sequences: Vec<Vec<u32>> = sequences
        .into_iter()
        .map(|s| s.into_iter().map(|t| t % vocab as u32).collect())
        .collect();
    let prompt_lens = [7, 5, 2];
    let decode_steps = 2;
    let prompts: Vec<Vec<u32>> = sequences
        .iter()
        .zip(prompt_lens)
        .map(|(s, n)| s[..n].to_vec())
        .collect();
    let prompt_batch = TokenBatch::padded(&prompts, PaddingSide::Left).unwrap();
    let mut prompt_cache = engine.new_cache(prompts.len(), prompt_batch.len);
    let mut got: Vec<Vec<Vec<f32>>> = vec![Vec::new(); prompts.len()];
    let logits = engine
        .forward_last(&prompt_batch, &mut prompt_cache)
        .unwrap();
    for row in 0..prompts.len() {
        got[row].push(logits[row * vocab..][..vocab].to_vec());
    }
    // Rows 0 and 2 continue, row 2 twice (as K samples of one prompt share a prefill).
    let order = [0usize, 2, 2];
    let capacity = prompt_batch.len + decode_steps;
    let mut cache = prompt_cache.select_rows(&order, capacity).unwrap();
    let mut decoded: Vec<Vec<Vec<f32>>> = vec![Vec::new(); order.len()];
    for step in 0..decode_steps {
        let batch = TokenBatch {
            batch: order.len(),
            len: 1,
            tokens: order
                .iter()
                .map(|&r| sequences[r][prompt_lens[r] + step])
                .collect(),
            positions: order
                .iter()
                .map(|&r| (prompt_lens[r] + step) as u32)
                .collect(),
            valid: vec![true; order.len()],
        };
        let logits = engine.forward_last(&batch, &mut cache).unwrap();
        for slot in 0..order.len() {
            decoded[slot].push(logits[slot * vocab..][..vocab].to_vec());
        }
    }
    let full_batch = TokenBatch {
        batch: 1,
        len: 1,
        tokens: vec![1],
        positions: vec![0],
        valid: vec![true],
    };
    assert!(
        engine.forward_last(&full_batch, &mut cache).is_err(),
        "a cache with other rows must refuse the batch"
    );
    let check = |row: usize, position: usize, logits: &[f32]| {
        let used = &sequences[row][..=position];
        let batch = TokenBatch::padded(&[used.to_vec()], PaddingSide::Right).unwrap();
        let full = to_vec(model.forward(&batch).unwrap());
        let diff = max_abs_diff(logits, &full[position * vocab..][..vocab]);
        assert!(
            diff <= tolerance,
            "{}: row {row} position {position}: max diff {diff}",
            model_dir.display()
        );
    };
    for row in 0..prompts.len() {
        check(row, prompt_lens[row] - 1, &got[row][0]);
    }
    for (slot, &row) in order.iter().enumerate() {
        for (step, logits) in decoded[slot].iter().enumerate() {
            check(row, prompt_lens[row] + step, logits);
        }
    }
}

#[test]
fn engine_matches_burn_on_tiny_models() {
    // Tied llama, llama3 rope scaling, qwen2 biases, a sharded checkpoint, bf16 weights.
    for name in ["llama", "llama3", "qwen2", "qwen2-sharded", "llama-bf16"] {
        check_engine_matches_burn(&reference_dir().join("tiny").join(name), 1e-4);
    }
}

#[test]
fn engine_matches_burn_on_the_embedded_model() {
    check_engine_matches_burn(&embedded_model_path(), 2e-3);
}

#[test]
fn engine_matches_transformers_next_token_logits() {
    let (model, _) = load_model(&embedded_model_path());
    let engine = CpuEngine::new(&model).expect("engine");
    let vocab = model.config().vocab_size;
    for case in smollm2_reference_cases() {
        let ids: Vec<u32> = case["seq_ids"]
            .as_array()
            .expect("ids")
            .iter()
            .map(|v| v.as_u64().expect("id") as u32)
            .collect();
        let prompt_len = case["n_prompt_tokens"].as_u64().expect("n_prompt_tokens") as usize;
        let prompt = ids[..prompt_len].to_vec();
        let batch = TokenBatch::padded(&[prompt], PaddingSide::Left).unwrap();
        let mut cache = engine.new_cache(1, batch.len);
        let logits = engine.forward_last(&batch, &mut cache).unwrap();
        assert_eq!(logits.len(), vocab);
        for top in case["last_position_top20"].as_array().expect("top20") {
            let id = top["id"].as_u64().expect("id") as usize;
            let expected = top["logit"].as_f64().expect("logit");
            assert!(
                (logits[id] as f64 - expected).abs() <= 2e-2,
                "{}: token {id}: {} vs transformers {expected}",
                case["name"],
                logits[id]
            );
        }
    }
}

#[test]
fn no_engine_on_an_autodiff_device() {
    let (model, checkpoint) = load_model(&reference_dir().join("tiny/llama"));
    let device = ponder_model::parse_device("cpu").unwrap().autodiff();
    let trainable = ponder_model::CausalLm::from_checkpoint(&checkpoint, &device).unwrap();
    assert!(CpuEngine::new(&model).is_some());
    assert!(CpuEngine::new(&trainable).is_none());
}

#[test]
fn no_engine_for_a_model_with_lora_adapters() {
    let (model, _) = load_model(&reference_dir().join("tiny/llama"));
    let adapted = model
        .with_lora(&ponder_model::LoraConfig::new(2), 7)
        .expect("adapters");
    assert!(CpuEngine::new(&adapted).is_none());
}

/// Scoring through the engine (plain device) equals burn's differentiable path (the same
/// weights on the autodiff device), on right-padded sequences of different lengths whose scored
/// cells span more than one pass of the output head, and on the embedded model.
fn check_scoring_matches_burn(model_dir: &std::path::Path, tolerance: f32) {
    let (model, checkpoint) = load_model(model_dir);
    let device = ponder_model::parse_device("cpu").unwrap().autodiff();
    let trainable = ponder_model::CausalLm::from_checkpoint(&checkpoint, &device).unwrap();
    let vocab = model.config().vocab_size as u32;
    let tokens = |count: usize, salt: u32| -> Vec<u32> {
        (0..count as u32)
            .map(|i| (i.wrapping_mul(2654435761).wrapping_add(salt) >> 7) % vocab)
            .collect()
    };
    let prompts = vec![tokens(9, 1), tokens(3, 2), tokens(20, 3)];
    let continuations = vec![tokens(150, 4), tokens(1, 5), tokens(140, 6)];
    let scoring = ponder_model::ScoringBatch::new(&prompts, &continuations).unwrap();
    assert!(scoring.targets.len() > 256, "spans two head passes");
    let engine = to_vec(model.target_logprobs(&scoring).unwrap());
    let burn = to_vec(trainable.target_logprobs(&scoring).unwrap());
    assert_eq!(engine.len(), scoring.targets.len());
    let diff = max_abs_diff(&engine, &burn);
    assert!(diff <= tolerance, "engine vs burn log-probs: {diff}");
    // A target outside the vocabulary is refused, not read out of bounds.
    let mut bad = scoring.clone();
    bad.targets[0] = vocab;
    assert!(
        CpuEngine::single_pass(&model)
            .unwrap()
            .target_logprobs(&bad)
            .is_err()
    );
}

#[test]
fn scoring_on_the_engine_matches_burn_on_the_tiny_llama() {
    check_scoring_matches_burn(&reference_dir().join("tiny/llama"), 1e-4);
}

#[test]
fn scoring_on_the_engine_matches_burn_on_the_embedded_model() {
    check_scoring_matches_burn(&embedded_model_path(), 2e-3);
}
