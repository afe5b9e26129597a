//! The plugins' `models` capability over ponder-model: the manifest's named models, loaded once,
//! each behind a lock (a model runs one batch at a time; plugins may call from several threads).

use std::collections::BTreeMap;
use std::sync::Mutex;

use ponder_checkpoint::Message;
use ponder_model::{GenerationRequest, SamplingParams, generate, sequence_logprobs};
use ponder_plugin_runtime::capability::{
    ChoiceRequest, GenerateRequest, ModelAccess, ModelAccessError, RewardRequest, Sampling,
};

use crate::commands::model::LoadedModel;

/// Padded tokens per scoring forward: bounds the memory of `choice_logprobs`.
const SCORING_BATCH_TOKENS: usize = 4096;

/// Named models that granted plugins may call.
#[derive(Default)]
pub struct ModelRegistry {
    models: BTreeMap<String, Mutex<LoadedModel>>,
}

impl ModelRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the model called `name`.
    pub fn insert(&mut self, name: impl Into<String>, model: LoadedModel) {
        self.models.insert(name.into(), Mutex::new(model));
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

fn same_batch(a: &Sampling, b: &Sampling) -> bool {
    a.temperature == b.temperature
        && a.top_p == b.top_p
        && a.max_new_tokens == b.max_new_tokens
        && a.stop == b.stop
}

impl ModelAccess for ModelRegistry {
    fn generate(
        &self,
        model: &str,
        requests: &[GenerateRequest],
    ) -> Result<Vec<String>, ModelAccessError> {
        self.with_model(model, |loaded| {
            let mut replies = Vec::with_capacity(requests.len());
            // Consecutive requests with the same sampling settings (seeds aside) share a batch.
            let mut start = 0;
            while start < requests.len() {
                let first = &requests[start].sampling;
                let mut end = start + 1;
                while end < requests.len() && same_batch(first, &requests[end].sampling) {
                    end += 1;
                }
                let mut batch = Vec::with_capacity(end - start);
                for (index, request) in requests[start..end].iter().enumerate() {
                    if request.messages.is_empty() {
                        return Err(ModelAccessError::InvalidRequest(format!(
                            "generate request {} has no messages",
                            start + index
                        )));
                    }
                    let prompt = loaded
                        .checkpoint
                        .encode_chat(&messages(&request.messages), true)
                        .map_err(|e| ModelAccessError::InvalidRequest(e.to_string()))?;
                    batch.push(GenerationRequest {
                        prompt,
                        seeds: vec![request.sampling.seed],
                    });
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
                let (sequences, _) = generate(
                    &loaded.model,
                    &loaded.checkpoint.tokenizer,
                    &batch,
                    &params,
                    &mut |_| {},
                )
                .map_err(failed)?;
                replies.extend(sequences.into_iter().map(|s| s.text));
                start = end;
            }
            Ok(replies)
        })
    }

    fn choice_logprobs(
        &self,
        model: &str,
        requests: &[ChoiceRequest],
    ) -> Result<Vec<Vec<f64>>, ModelAccessError> {
        self.with_model(model, |loaded| {
            let tokenizer = &loaded.checkpoint.tokenizer;
            let mut prompts = Vec::new();
            let mut continuations = Vec::new();
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
                    prompts.push(prompt.clone());
                    continuations.push(ids);
                }
            }
            let scored = sequence_logprobs(
                &loaded.model,
                &prompts,
                &continuations,
                SCORING_BATCH_TOKENS,
            )
            .map_err(failed)?;
            let mut totals = scored.into_iter().map(|s| s.total);
            Ok(requests
                .iter()
                .map(|r| totals.by_ref().take(r.choices.len()).collect())
                .collect())
        })
    }

    fn reward(
        &self,
        model: &str,
        _requests: &[RewardRequest],
    ) -> Result<Vec<f64>, ModelAccessError> {
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
    use ponder_plugin_runtime::capability::Message as WitMessage;
    use std::path::Path;

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
            )
            .expect("choices");
        assert_eq!(scores[0].len(), 2);
        assert!(scores[0][0] > scores[0][1], "{scores:?}");
        assert!(matches!(
            registry.generate("judge", &[]),
            Err(ModelAccessError::UnknownModel(_))
        ));
        assert!(matches!(
            registry.reward(
                "policy",
                &[RewardRequest {
                    messages: question(),
                    response: "Paris".into()
                }]
            ),
            Err(ModelAccessError::Unsupported(_))
        ));
    }
}
