//! The KV-cache decode path, batched sampling and the embedded model answering a question.

mod common;

use common::{embedded_model_path, load_model, max_abs_diff, reference_dir, to_vec};
use ponder_checkpoint::Message;
use ponder_model::{
    FinishReason, GeneratedSequence, GenerationRequest, KvCache, PaddingSide, ResponseForcing,
    SamplingParams, TokenBatch, generate,
};
use std::ops::ControlFlow;

/// Prefill a left-padded batch, then decode the rest one token at a time: every position's
/// logits equal those of a full forward of each sequence alone.
fn check_cache_matches_full_forward(model_dir: &std::path::Path, tolerance: f32) {
    let (model, _) = load_model(model_dir);
    let vocab = model.config().vocab_size;
    let sequences: Vec<Vec<u32>> = vec![
        vec![
            504, 2365, 6354, 16438, 27003, 690, 260, 23790, 2767, 30, 378, 2365,
        ],
        vec![1, 9690, 198, 2683, 359, 253, 5356, 5646, 11],
    ];
    let prefill = 5;
    let decode_steps = 4;
    let prompts: Vec<Vec<u32>> = vec![
        sequences[0][..prefill + 2].to_vec(),
        sequences[1][..prefill].to_vec(),
    ];
    let prompt_batch = TokenBatch::padded(&prompts, PaddingSide::Left).unwrap();
    let mut cache = KvCache::new(&model, 2, prompt_batch.len + decode_steps);
    let prefill_logits = to_vec(
        model
            .forward_cached(&prompt_batch, &mut cache, false)
            .unwrap(),
    );
    let mut cached: Vec<Vec<Vec<f32>>> = vec![Vec::new(), Vec::new()];
    for (row, prompt) in prompts.iter().enumerate() {
        let offset = prompt_batch.len - prompt.len();
        for column in offset..prompt_batch.len {
            cached[row].push(
                prefill_logits[(row * prompt_batch.len + column) * vocab..][..vocab].to_vec(),
            );
        }
    }
    for step in 0..decode_steps {
        let tokens: Vec<u32> = prompts
            .iter()
            .zip(&sequences)
            .map(|(p, s)| s[p.len() + step])
            .collect();
        let positions: Vec<u32> = prompts.iter().map(|p| (p.len() + step) as u32).collect();
        let batch = TokenBatch {
            batch: 2,
            len: 1,
            tokens,
            positions,
            valid: vec![true, true],
        };
        let logits = to_vec(model.forward_cached(&batch, &mut cache, true).unwrap());
        for row in 0..2 {
            cached[row].push(logits[row * vocab..][..vocab].to_vec());
        }
    }
    assert!(
        model
            .forward_cached(
                &TokenBatch {
                    batch: 2,
                    len: 1,
                    tokens: vec![1, 1],
                    positions: vec![0, 0],
                    valid: vec![true, true]
                },
                &mut cache,
                true
            )
            .is_err(),
        "a full cache must refuse more tokens"
    );
    for (row, sequence) in sequences.iter().enumerate() {
        let used = &sequence[..cached[row].len()];
        let batch = TokenBatch::padded(&[used.to_vec()], PaddingSide::Right).unwrap();
        let full = to_vec(model.forward(&batch).unwrap());
        for (position, logits) in cached[row].iter().enumerate() {
            let diff = max_abs_diff(logits, &full[position * vocab..][..vocab]);
            assert!(
                diff <= tolerance,
                "{}: row {row} position {position}: max diff {diff}",
                model_dir.display()
            );
        }
    }
}

#[test]
fn cache_decode_equals_full_forward_tiny_models() {
    for name in ["llama", "llama3", "qwen2"] {
        check_cache_matches_full_forward(&reference_dir().join("tiny").join(name), 1e-4);
    }
}

#[test]
fn cache_decode_equals_full_forward_embedded() {
    check_cache_matches_full_forward(&embedded_model_path(), 2e-3);
}

fn chat_prompt(checkpoint: &ponder_checkpoint::Checkpoint, question: &str) -> Vec<u32> {
    let messages = vec![Message {
        role: "user".into(),
        content: question.into(),
    }];
    checkpoint
        .encode_chat(&messages, true)
        .expect("chat prompt")
}

#[test]
fn a_sample_does_not_depend_on_its_batch() {
    let (model, checkpoint) = load_model(&embedded_model_path());
    let params = SamplingParams {
        temperature: 0.8,
        top_p: 0.95,
        max_new_tokens: 24,
        stop_token_ids: checkpoint.end_of_turn_id().into_iter().collect(),
        ..SamplingParams::default()
    };
    let target = chat_prompt(&checkpoint, "Name a fruit that is yellow.");
    let alone = GenerationRequest {
        prompt: target.clone(),
        seeds: vec![42],
    };
    let (single, _) = generate(
        &model,
        &checkpoint.tokenizer,
        &[alone],
        &params,
        &mut |_| ControlFlow::Continue(()),
    )
    .unwrap();
    let crowd = vec![
        GenerationRequest {
            prompt: chat_prompt(
                &checkpoint,
                "Write a long poem about the sea and its many moods, please.",
            ),
            seeds: vec![1, 2, 3],
        },
        GenerationRequest {
            prompt: target,
            seeds: vec![7, 42, 9],
        },
    ];
    let mut streamed: Vec<Vec<u32>> = vec![Vec::new(); 6];
    let (batch, stats) = generate(
        &model,
        &checkpoint.tokenizer,
        &crowd,
        &params,
        &mut |event| {
            streamed[event.sequence].push(event.token);
            ControlFlow::Continue(())
        },
    )
    .unwrap();
    assert_eq!(batch.len(), 6);
    let inside = &batch[4];
    assert_eq!((inside.request, inside.sample), (1, 1));
    assert_eq!(
        inside.tokens, single[0].tokens,
        "same seed, different batch: {:?} vs {:?}",
        inside.text, single[0].text
    );
    assert!(!single[0].tokens.is_empty());
    // Different seeds of one prompt differ, and the stream saw every token.
    assert_ne!(batch[3].tokens, batch[4].tokens);
    for (sequence, streamed) in batch.iter().zip(&streamed) {
        assert_eq!(&sequence.tokens, streamed);
        assert!(sequence.tokens.len() <= 24);
        if sequence.finish == FinishReason::Length {
            assert_eq!(sequence.tokens.len(), 24);
        }
    }
    assert!(stats.generated_tokens >= batch.iter().map(|s| s.tokens.len()).sum::<usize>());
}

#[test]
fn embedded_model_answers_a_chat_question() {
    let (model, checkpoint) = load_model(&embedded_model_path());
    let params = SamplingParams {
        temperature: 0.0,
        max_new_tokens: 40,
        stop_token_ids: checkpoint.end_of_turn_id().into_iter().collect(),
        ..SamplingParams::default()
    };
    let request = GenerationRequest {
        prompt: chat_prompt(&checkpoint, "What is the capital of France?"),
        seeds: vec![0],
    };
    let (out, _) = generate(
        &model,
        &checkpoint.tokenizer,
        &[request],
        &params,
        &mut |_| ControlFlow::Continue(()),
    )
    .unwrap();
    assert!(out[0].text.contains("Paris"), "answer: {:?}", out[0].text);
    assert!(
        matches!(out[0].finish, FinishReason::StopToken(_)),
        "{:?}",
        out[0].finish
    );
}

#[test]
fn stop_strings_cut_the_text() {
    let (model, checkpoint) = load_model(&embedded_model_path());
    let params = SamplingParams {
        temperature: 0.0,
        max_new_tokens: 40,
        stop_strings: vec!["France".into()],
        ..SamplingParams::default()
    };
    let request = GenerationRequest {
        prompt: chat_prompt(&checkpoint, "What is the capital of France?"),
        seeds: vec![0],
    };
    let (out, _) = generate(
        &model,
        &checkpoint.tokenizer,
        &[request],
        &params,
        &mut |_| ControlFlow::Continue(()),
    )
    .unwrap();
    assert_eq!(out[0].finish, FinishReason::StopString("France".into()));
    assert!(!out[0].text.contains("France"), "{:?}", out[0].text);
}

/// Greedy answers of the embedded model to one question, with and without response forcing.
fn greedy_answer(forcing: Option<ResponseForcing>, max_new_tokens: usize) -> GeneratedSequence {
    let (model, checkpoint) = load_model(&embedded_model_path());
    let params = SamplingParams {
        temperature: 0.0,
        max_new_tokens,
        stop_token_ids: checkpoint.end_of_turn_id().into_iter().collect(),
        response_forcing: forcing,
        ..SamplingParams::default()
    };
    let request = GenerationRequest {
        prompt: chat_prompt(&checkpoint, "What is the capital of France?"),
        seeds: vec![0],
    };
    let (mut out, _) = generate(
        &model,
        &checkpoint.tokenizer,
        &[request],
        &params,
        &mut |_| ControlFlow::Continue(()),
    )
    .unwrap();
    out.remove(0)
}

fn forcing(separator: &str, forced: &str, thought_budget: usize) -> ResponseForcing {
    let (_, checkpoint) = load_model(&embedded_model_path());
    ResponseForcing {
        separator: separator.into(),
        forced_tokens: checkpoint.tokenizer.encode(forced).unwrap(),
        thought_budget,
    }
}

#[test]
fn a_separator_the_model_writes_itself_is_not_forced() {
    let plain = greedy_answer(None, 40);
    assert!(plain.text.contains("Paris"), "{:?}", plain.text);
    let forced = greedy_answer(Some(forcing("Paris", "\nRESPONSE:\n", 30)), 40);
    assert!(!forced.forced_response);
    assert_eq!(forced.tokens, plain.tokens);
    assert_eq!(forced.text, plain.text);
}

#[test]
fn the_thought_budget_forces_the_separator() {
    let plain = greedy_answer(None, 40);
    let spec = forcing("Here is my response:", "\n\nHere is my response:\n", 4);
    let forced_tokens = spec.forced_tokens.clone();
    let forced = greedy_answer(Some(spec), 40);
    assert!(forced.forced_response);
    // The thought is the unforced output's first 4 tokens; the forced tokens follow at once,
    // then the model goes on with a response.
    assert_eq!(forced.tokens[..4], plain.tokens[..4]);
    assert_eq!(forced.tokens[4..4 + forced_tokens.len()], forced_tokens[..]);
    assert!(
        forced.tokens.len() > 4 + forced_tokens.len(),
        "{:?}",
        forced.text
    );
    let (_, response) = forced.text.split_once("Here is my response:").unwrap();
    assert!(!response.trim().is_empty(), "{:?}", forced.text);
}

#[test]
fn an_end_of_turn_inside_the_thought_forces_the_separator() {
    let plain = greedy_answer(None, 60);
    assert!(matches!(plain.finish, FinishReason::StopToken(_)));
    let spec = forcing("Here is my response:", "\n\nHere is my response:\n", 50);
    let forced_tokens = spec.forced_tokens.clone();
    assert!(
        plain.tokens.len() < 50,
        "the greedy answer ends within the budget"
    );
    let forced = greedy_answer(Some(spec), 90);
    assert!(forced.forced_response);
    let end = plain.tokens.len();
    assert_eq!(forced.tokens[..end], plain.tokens[..]);
    assert_eq!(
        forced.tokens[end..end + forced_tokens.len()],
        forced_tokens[..]
    );
    assert!(forced.text.contains("Here is my response:"));
}

#[test]
fn forcing_settings_are_checked() {
    let mut params = SamplingParams {
        max_new_tokens: 10,
        response_forcing: Some(ResponseForcing {
            separator: "R:".into(),
            forced_tokens: vec![1],
            thought_budget: 10,
        }),
        ..SamplingParams::default()
    };
    assert!(
        params.validate().is_err(),
        "budget must be below max_new_tokens"
    );
    params.response_forcing.as_mut().unwrap().thought_budget = 9;
    assert!(params.validate().is_ok());
    params
        .response_forcing
        .as_mut()
        .unwrap()
        .forced_tokens
        .clear();
    assert!(params.validate().is_err());
    params.response_forcing = None;
    params.stop_strings = vec![String::new()];
    assert!(
        params.validate().is_err(),
        "an empty stop string is refused"
    );
}

#[test]
fn a_token_callback_break_interrupts_the_batch_within_one_step() {
    let (model, checkpoint) = load_model(&embedded_model_path());
    let params = SamplingParams {
        temperature: 0.8,
        max_new_tokens: 200,
        suppress_token_ids: checkpoint.stop_token_ids(),
        ..SamplingParams::default()
    };
    let request = GenerationRequest {
        prompt: chat_prompt(&checkpoint, "Tell me a long story."),
        seeds: vec![1, 2, 3, 4],
    };
    let mut seen = 0usize;
    let result = generate(
        &model,
        &checkpoint.tokenizer,
        &[request],
        &params,
        &mut |_| {
            seen += 1;
            if seen >= 10 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        },
    );
    assert!(
        matches!(result, Err(ponder_model::ModelError::Interrupted)),
        "{result:?}"
    );
    // The break at the 10th token ends the generation after the step it came in (4 rows).
    assert!(seen < 10 + 4, "{seen} tokens after the break");
}

#[test]
fn a_prompt_and_max_new_tokens_past_the_context_are_refused_before_allocating() {
    let (model, checkpoint) = load_model(&embedded_model_path());
    let context = model.config().max_position_embeddings;
    for max_new_tokens in [context, u32::MAX as usize, usize::MAX] {
        let params = SamplingParams {
            max_new_tokens,
            ..SamplingParams::default()
        };
        let request = GenerationRequest {
            prompt: chat_prompt(&checkpoint, "hi"),
            seeds: vec![0],
        };
        let error = generate(
            &model,
            &checkpoint.tokenizer,
            &[request],
            &params,
            &mut |_| ControlFlow::Continue(()),
        )
        .expect_err("past the context");
        let text = error.to_string();
        assert!(text.contains("max_position_embeddings"), "{text}");
        assert!(
            text.contains(&format!("max_new_tokens {max_new_tokens}")),
            "{text}"
        );
    }
}

#[test]
fn the_cache_estimate_grows_with_rows_and_positions() {
    let (model, _) = load_model(&embedded_model_path());
    let config = model.config();
    let per_position =
        (config.num_hidden_layers * 2 * config.num_key_value_heads * config.head_dim * 4) as u128;
    assert_eq!(
        ponder_model::generation_cache_bytes(config, 2, 10, 8, 30),
        per_position * (2 * 10 + 8 * 40)
    );
    // No overflow on absurd sizes.
    assert!(
        ponder_model::generation_cache_bytes(
            config,
            usize::MAX,
            usize::MAX,
            usize::MAX,
            usize::MAX
        ) > 0
    );
}
