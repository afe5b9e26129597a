//! The plugins' `models` capability: the manifest's named models, local ones over ponder-model
//! (loaded once, each behind a lock: a model runs one batch at a time; plugins may call from
//! several threads) and served ones over their OpenAI-compatible endpoints (ponder-served).

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Mutex;

use ponder_checkpoint::{Message, ModelConfig};
use ponder_model::{
    FinishReason, GenerationRequest, ModelError, SamplingParams, generate, generation_cache_bytes,
    sequence_logprobs,
};
use ponder_plugin_runtime::capability::{
    ChoiceRequest, GenerateRequest, ModelAccess, ModelAccessError, ModelBudget, RewardRequest,
    Sampling,
};

use ponder_manifest::NamedModel;
use ponder_served::ServedClient;

use crate::commands::model::{LoadedModel, load_model};

/// Padded tokens per scoring forward: bounds the memory of `choice_logprobs`.
const SCORING_BATCH_TOKENS: usize = 4096;
/// Choice sequences scored between two looks at the call's clock.
const SCORING_SEQUENCES_PER_CHECK: usize = 64;
/// Key/value cache one batch of a plugin's generate requests may hold: larger requests are split
/// into several batches (a sample does not depend on its batch, so the replies are the same).
const GENERATION_CACHE_BYTES: u128 = 1 << 30;

/// Named models that granted plugins may call: local models and served ones.
#[derive(Default)]
pub struct ModelRegistry {
    models: BTreeMap<String, Mutex<LoadedModel>>,
    served: BTreeMap<String, ServedClient>,
}

impl ModelRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the model called `name`.
    pub fn insert(&mut self, name: impl Into<String>, model: LoadedModel) {
        let name = name.into();
        self.served.remove(&name);
        self.models.insert(name, Mutex::new(model));
    }

    /// Adds (or replaces) the served model called `name`.
    pub fn insert_served(&mut self, name: impl Into<String>, model: ServedClient) {
        let name = name.into();
        self.models.remove(&name);
        self.served.insert(name, model);
    }

    /// Adds `[models.NAME]` as the manifest gives it: a local model is loaded (on its device,
    /// the CPU by default), a served one is set up (its API key read from the environment).
    pub fn add_named(&mut self, name: &str, model: &NamedModel) -> anyhow::Result<()> {
        match model {
            NamedModel::Local(local) => {
                let device = local.device.as_deref().unwrap_or("cpu");
                self.insert(name, load_model(&local.path, device)?);
            }
            NamedModel::Served(served) => {
                self.insert_served(name, ServedClient::new(name, served)?);
            }
        }
        Ok(())
    }

    fn with_model<T>(
        &self,
        name: &str,
        run: impl FnOnce(&LoadedModel) -> Result<T, ModelAccessError>,
    ) -> Result<T, ModelAccessError> {
        let model = self
            .models
            .get(name)
            .ok_or_else(|| ModelAccessError::UnknownModel(name.to_string()))?;
        let guard = model
            .lock()
            .map_err(|_| ModelAccessError::Failed(format!("model `{name}` is poisoned")))?;
        run(&guard)
    }
}

fn messages(messages: &[ponder_plugin_runtime::capability::Message]) -> Vec<Message> {
    messages
        .iter()
        .map(|m| Message::new(m.role.clone(), m.content.clone()))
        .collect()
}

fn failed(error: impl std::fmt::Display) -> ModelAccessError {
    ModelAccessError::Failed(error.to_string())
}

/// A model error as the plugin sees it: a bad request is the plugin's, the rest the host's.
fn model_failure(error: ModelError) -> ModelAccessError {
    match error {
        ModelError::InvalidRequest(message) => ModelAccessError::InvalidRequest(message),
        other => failed(other),
    }
}

fn same_batch(a: &Sampling, b: &Sampling) -> bool {
    a.temperature == b.temperature
        && a.top_p == b.top_p
        && a.max_new_tokens == b.max_new_tokens
        && a.stop == b.stop
}

/// The budget's verdict as the sampler's: stop generating when the call is out of budget.
fn spend(budget: &mut ModelBudget) -> ControlFlow<()> {
    match budget.spend_token() {
        ControlFlow::Continue(()) => ControlFlow::Continue(()),
        ControlFlow::Break(_) => ControlFlow::Break(()),
    }
}

/// Splits `prompts` (each one sample) into consecutive batches whose key/value cache stays
/// within [`GENERATION_CACHE_BYTES`]; a batch holds at least one prompt.
fn cache_bounded_batches(
    config: &ModelConfig,
    prompts: &[Vec<u32>],
    max_new_tokens: usize,
) -> Vec<std::ops::Range<usize>> {
    let mut batches = Vec::new();
    let mut start = 0;
    while start < prompts.len() {
        let mut end = start + 1;
        let mut longest = prompts[start].len();
        while end < prompts.len() {
            let candidate = longest.max(prompts[end].len());
            let rows = end + 1 - start;
            if generation_cache_bytes(config, rows, candidate, rows, max_new_tokens)
                > GENERATION_CACHE_BYTES
            {
                break;
            }
            longest = candidate;
            end += 1;
        }
        batches.push(start..end);
        start = end;
    }
    batches
}

impl ModelAccess for ModelRegistry {
    fn generate(
        &self,
        model: &str,
        requests: &[GenerateRequest],
        budget: &mut ModelBudget,
    ) -> Result<Vec<String>, ModelAccessError> {
        if let Some(served) = self.served.get(model) {
            return served.generate(requests, budget);
        }
        self.with_model(model, |loaded| {
            let mut prompts = Vec::with_capacity(requests.len());
            for (index, request) in requests.iter().enumerate() {
                if request.messages.is_empty() {
                    return Err(ModelAccessError::InvalidRequest(format!(
                        "generate request {index} has no messages"
                    )));
                }
                prompts.push(
                    loaded
                        .checkpoint
                        .encode_chat(&messages(&request.messages), true)
                        .map_err(|e| ModelAccessError::InvalidRequest(e.to_string()))?,
                );
            }
            let mut replies = Vec::with_capacity(requests.len());
            // Consecutive requests with the same sampling settings (seeds aside) share batches.
            let mut start = 0;
            while start < requests.len() {
                let first = &requests[start].sampling;
                let mut end = start + 1;
                while end < requests.len() && same_batch(first, &requests[end].sampling) {
                    end += 1;
                }
                let params = SamplingParams {
                    temperature: first.temperature,
                    top_p: first.top_p,
                    max_new_tokens: first.max_new_tokens as usize,
                    stop_token_ids: loaded.checkpoint.stop_token_ids(),
                    stop_strings: first.stop.clone(),
                    ..SamplingParams::default()
                };
                params
                    .validate()
                    .map_err(|e| ModelAccessError::InvalidRequest(e.to_string()))?;
                let group = &prompts[start..end];
                for batch in
                    cache_bounded_batches(loaded.model.config(), group, params.max_new_tokens)
                {
                    let batch_requests: Vec<GenerationRequest> = batch
                        .clone()
                        .map(|index| GenerationRequest {
                            prompt: group[index].clone(),
                            seeds: vec![requests[start + index].sampling.seed],
                        })
                        .collect();
                    let (sequences, _) = generate(
                        &loaded.model,
                        &loaded.checkpoint.tokenizer,
                        &batch_requests,
                        &params,
                        &mut |_| spend(budget),
                    )
                    .map_err(model_failure)?;
                    // The contract includes the stop string that ended a reply.
                    replies.extend(sequences.into_iter().map(|sequence| match sequence.finish {
                        FinishReason::StopString(stop) => sequence.text + &stop,
                        _ => sequence.text,
                    }));
                }
                start = end;
            }
            Ok(replies)
        })
    }

    fn choice_logprobs(
        &self,
        model: &str,
        requests: &[ChoiceRequest],
        budget: &mut ModelBudget,
    ) -> Result<Vec<Vec<f64>>, ModelAccessError> {
        if let Some(served) = self.served.get(model) {
            return served.choice_logprobs(requests, budget);
        }
        self.with_model(model, |loaded| {
            let tokenizer = &loaded.checkpoint.tokenizer;
            let context = loaded.model.config().max_position_embeddings;
            let mut results = Vec::with_capacity(requests.len());
            // Sequences are built and scored a few requests at a time, so memory stays bounded
            // by the plugin's caps and the clock is looked at between scoring batches.
            let mut prompts = Vec::new();
            let mut continuations = Vec::new();
            let mut pending: Vec<usize> = Vec::new();
            for (index, request) in requests.iter().enumerate() {
                if request.choices.is_empty() {
                    return Err(ModelAccessError::InvalidRequest(format!(
                        "choice request {index} has no choices"
                    )));
                }
                let mut prompt = loaded
                    .checkpoint
                    .encode_chat(&messages(&request.messages), true)
                    .map_err(|e| ModelAccessError::InvalidRequest(e.to_string()))?;
                prompt.extend(tokenizer.encode(&request.prefix).map_err(failed)?);
                for (choice_index, choice) in request.choices.iter().enumerate() {
                    let ids = tokenizer.encode(choice).map_err(failed)?;
                    if ids.is_empty() {
                        return Err(ModelAccessError::InvalidRequest(format!(
                            "choice {choice_index} of request {index} is empty"
                        )));
                    }
                    if prompt.len() + ids.len() > context {
                        return Err(ModelAccessError::InvalidRequest(format!(
                            "choice {choice_index} of request {index} needs {} positions, more \
                             than the model's context of {context} (max_position_embeddings)",
                            prompt.len() + ids.len()
                        )));
                    }
                    prompts.push(prompt.clone());
                    continuations.push(ids);
                }
                pending.push(request.choices.len());
                if prompts.len() >= SCORING_SEQUENCES_PER_CHECK || index + 1 == requests.len() {
                    if budget.check_time().is_break() {
                        return Err(failed("the call's time is used up"));
                    }
                    let scored = sequence_logprobs(
                        &loaded.model,
                        &prompts,
                        &continuations,
                        SCORING_BATCH_TOKENS,
                    )
                    .map_err(model_failure)?;
                    let mut totals = scored.into_iter().map(|s| s.total);
                    for choices in pending.drain(..) {
                        results.push(totals.by_ref().take(choices).collect());
                    }
                    prompts.clear();
                    continuations.clear();
                }
            }
            Ok(results)
        })
    }

    fn reward(
        &self,
        model: &str,
        requests: &[RewardRequest],
        budget: &mut ModelBudget,
    ) -> Result<Vec<f64>, ModelAccessError> {
        if let Some(served) = self.served.get(model) {
            return served.reward(requests, budget);
        }
        self.with_model(model, |_| {
            Err(ModelAccessError::Unsupported(format!(
                "model `{model}` is a causal language model without a reward (sequence \
                 classification) head"
            )))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ponder_plugin_runtime::capability::{BudgetExceeded, Message as WitMessage};
    use std::path::Path;
    use std::time::Duration;

    fn registry() -> ModelRegistry {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(crate::commands::model::DEFAULT_MODEL);
        assert!(
            path.is_file(),
            "run scripts/setup.sh to fetch {}",
            path.display()
        );
        let loaded = crate::commands::model::load_model(&path, "cpu").expect("load");
        let mut registry = ModelRegistry::new();
        registry.insert("policy", loaded);
        registry
    }

    fn question() -> Vec<WitMessage> {
        vec![WitMessage {
            role: "user".into(),
            content: "What is the capital of France?".into(),
        }]
    }

    #[test]
    fn generate_choices_and_reward_over_the_embedded_model() {
        let registry = registry();
        let greedy = Sampling {
            temperature: 0.0,
            top_p: 1.0,
            max_new_tokens: 30,
            seed: 1,
            stop: Vec::new(),
        };
        let replies = registry
            .generate(
                "policy",
                &[GenerateRequest {
                    messages: question(),
                    sampling: greedy,
                }],
                &mut ModelBudget::unlimited(),
            )
            .expect("generate");
        assert!(replies[0].contains("Paris"), "{:?}", replies[0]);
        let scores = registry
            .choice_logprobs(
                "policy",
                &[ChoiceRequest {
                    messages: question(),
                    prefix: "The capital of France is".into(),
                    choices: vec![" Paris".into(), " Berlin".into()],
                }],
                &mut ModelBudget::unlimited(),
            )
            .expect("choices");
        assert_eq!(scores[0].len(), 2);
        assert!(scores[0][0] > scores[0][1], "{scores:?}");
        assert!(matches!(
            registry.generate("judge", &[], &mut ModelBudget::unlimited()),
            Err(ModelAccessError::UnknownModel(_))
        ));
        assert!(matches!(
            registry.reward(
                "policy",
                &[RewardRequest {
                    messages: question(),
                    response: "Paris".into()
                }],
                &mut ModelBudget::unlimited()
            ),
            Err(ModelAccessError::Unsupported(_))
        ));
    }
    fn counting(max_new_tokens: u32, seed: u64, stop: Vec<String>) -> GenerateRequest {
        GenerateRequest {
            messages: vec![WitMessage {
                role: "user".into(),
                content: "Count from 1 to 100, separated by commas.".into(),
            }],
            sampling: Sampling {
                temperature: 0.0,
                top_p: 1.0,
                max_new_tokens,
                seed,
                stop,
            },
        }
    }

    #[test]
    fn generation_stops_promptly_when_the_token_budget_runs_out() {
        let registry = registry();
        let requests: Vec<GenerateRequest> =
            (0..4).map(|seed| counting(200, seed, Vec::new())).collect();
        let mut budget = ModelBudget::new(std::time::Instant::now(), Duration::from_secs(600), 20);
        let error = registry
            .generate("policy", &requests, &mut budget)
            .expect_err("20 tokens cannot serve 4 x 200");
        assert!(matches!(error, ModelAccessError::Failed(_)), "{error:?}");
        assert_eq!(
            budget.exceeded(),
            Some(BudgetExceeded::Tokens {
                generated_tokens: 20
            })
        );
        assert_eq!(budget.tokens_used(), 20);
    }

    #[test]
    fn generation_stops_promptly_when_the_time_runs_out() {
        let registry = registry();
        let requests: Vec<GenerateRequest> = (0..8)
            .map(|seed| counting(2000, seed, Vec::new()))
            .collect();
        let started = std::time::Instant::now();
        let mut budget = ModelBudget::new(started, Duration::from_millis(300), u64::MAX);
        registry
            .generate("policy", &requests, &mut budget)
            .expect_err("8 x 2000 tokens do not fit in 300 ms");
        assert_eq!(
            budget.exceeded(),
            Some(BudgetExceeded::Time {
                call_timeout_ms: 300
            })
        );
        // Stopped at the first token past the deadline: far from the 16,000 tokens asked for
        // (the time before the first token, preparing the CPU engine, is not interruptible).
        assert!(budget.tokens_used() < 4000, "{}", budget.tokens_used());
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn replies_include_the_stop_string_that_ended_them() {
        let registry = registry();
        let replies = registry
            .generate(
                "policy",
                &[counting(60, 0, vec!["5".into()])],
                &mut ModelBudget::unlimited(),
            )
            .expect("generate");
        assert!(replies[0].ends_with('5'), "{:?}", replies[0]);
        assert_eq!(replies[0].matches('5').count(), 1, "{:?}", replies[0]);
    }

    #[test]
    fn large_requests_are_split_into_batches_the_host_can_hold() {
        let registry = registry();
        let guard = registry.models["policy"].lock().expect("lock");
        let config = guard.model.config();
        let prompts = vec![vec![1u32; 500]; 300];
        let batches = cache_bounded_batches(config, &prompts, 4000);
        assert!(batches.len() > 1, "{batches:?}");
        assert_eq!(batches.first().map(|b| b.start), Some(0));
        assert_eq!(batches.last().map(|b| b.end), Some(300));
        for batch in &batches {
            let rows = batch.len();
            assert!(
                rows == 1
                    || generation_cache_bytes(config, rows, 500, rows, 4000)
                        <= GENERATION_CACHE_BYTES
            );
        }
        assert!(batches.windows(2).all(|pair| pair[0].end == pair[1].start));
    }

    #[test]
    fn batching_does_not_change_replies() {
        let registry = registry();
        let requests: Vec<GenerateRequest> = (0..3)
            .map(|seed| {
                let mut request = counting(12, seed, Vec::new());
                request.sampling.temperature = 0.8;
                request.sampling.top_p = 0.95;
                request
            })
            .collect();
        let together = registry
            .generate("policy", &requests, &mut ModelBudget::unlimited())
            .expect("together");
        for (index, request) in requests.iter().enumerate() {
            let alone = registry
                .generate(
                    "policy",
                    std::slice::from_ref(request),
                    &mut ModelBudget::unlimited(),
                )
                .expect("alone");
            assert_eq!(alone[0], together[index]);
        }
    }
}
