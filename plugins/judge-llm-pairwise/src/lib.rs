//! Pairwise LLM judge in the style of the Self-Taught Evaluator (Wang et al., 2024), as used by
//! Thought Preference Optimization (arXiv 2410.10630): for every ordered pair of candidates (both
//! orders, K(K−1) prompts per instruction) a judge model compares "assistant A" with "assistant
//! B" and ends with the verdict `[[A]]` or `[[B]]`. Wins fill a battle matrix (ties and invalid
//! verdicts count 0); each candidate's score is its strength in a regularised Bradley-Terry fit
//! of that matrix. All prompts of all requests go to the model in one batched `generate` call.
//!
//! Configuration:
//! - `model` (string, required): the judge model's name in the manifest's `[models]` table.
//! - `max_new_tokens` (default 512), `temperature` (default 0: greedy), `top_p` (default 1),
//!   `seed` (default 0; request `i` uses `seed + i`).
//! - `prior` (number > 0, default 0.1): L2 regularisation of the Bradley-Terry strengths.
//!
//! A candidate none of whose comparisons produced a valid verdict gets no score (`None`).

pub mod bradley_terry;

use ponder_sdk::models::{GenerateRequest, Models, Sampling};
use ponder_sdk::{Judge, JudgeOutcome, JudgeRequest, Message, PluginFailure, config};
use serde::Deserialize;

/// The judge's instructions (system message).
pub const SYSTEM_PROMPT: &str = "Please act as an impartial judge and evaluate the quality of the \
responses provided by two AI assistants to the user question displayed below. You should choose \
the assistant that follows the user's instructions and answers the user's question better. Your \
evaluation should consider factors such as the helpfulness, relevance, accuracy, depth, \
creativity, and level of detail of their responses. Begin your evaluation by comparing the two \
responses and provide a short explanation. Avoid any position biases and ensure that the order in \
which the responses were presented does not influence your decision. Do not allow the length of \
the responses to influence your evaluation. Do not favor certain names of the assistants. Be as \
objective as possible. After providing your explanation, output your final verdict by strictly \
following this format: \"[[A]]\" if assistant A is better, \"[[B]]\" if assistant B is better.";

/// The judge's configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairwiseJudge {
    model: String,
    #[serde(default = "default_max_new_tokens")]
    max_new_tokens: u32,
    #[serde(default)]
    temperature: f32,
    #[serde(default = "default_top_p")]
    top_p: f32,
    #[serde(default)]
    seed: u64,
    #[serde(default = "default_prior")]
    prior: f64,
}

fn default_max_new_tokens() -> u32 {
    512
}
fn default_top_p() -> f32 {
    1.0
}
fn default_prior() -> f64 {
    0.1
}

/// The verdict of one comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Assistant A (the first response shown) is better.
    A,
    /// Assistant B is better.
    B,
    /// A tie, no verdict or both verdicts: counts for nobody.
    Invalid,
}

/// Reads the final verdict: the last `[[A]]` or `[[B]]` in the judgment.
pub fn verdict(judgment: &str) -> Verdict {
    match (judgment.rfind("[[A]]"), judgment.rfind("[[B]]")) {
        (Some(a), Some(b)) if a > b => Verdict::A,
        (Some(_), Some(_)) => Verdict::B,
        (Some(_), None) => Verdict::A,
        (None, Some(_)) => Verdict::B,
        (None, None) => Verdict::Invalid,
    }
}

/// The user message comparing `first` (assistant A) with `second` (assistant B).
pub fn comparison_prompt(question: &str, first: &str, second: &str) -> String {
    format!(
        "[User Question]\n{question}\n\n[The Start of Assistant A's Answer]\n{first}\n\
         [The End of Assistant A's Answer]\n\n[The Start of Assistant B's Answer]\n{second}\n\
         [The End of Assistant B's Answer]"
    )
}

/// All ordered pairs `(a, b)`, `a ≠ b`, of `count` candidates.
fn ordered_pairs(count: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..count).flat_map(move |a| (0..count).filter(move |&b| b != a).map(move |b| (a, b)))
}

impl PairwiseJudge {
    /// Scores from the verdicts of one request's ordered pairs (in [`ordered_pairs`] order).
    pub fn scores_from_verdicts(&self, count: usize, verdicts: &[Verdict]) -> Vec<Option<f64>> {
        let mut wins = vec![vec![0.0; count]; count];
        let mut judged = vec![false; count];
        for ((a, b), verdict) in ordered_pairs(count).zip(verdicts) {
            let winner = match verdict {
                Verdict::A => (a, b),
                Verdict::B => (b, a),
                Verdict::Invalid => continue,
            };
            wins[winner.0][winner.1] += 1.0;
            judged[a] = true;
            judged[b] = true;
        }
        let strengths = bradley_terry::fit(&wins, self.prior);
        strengths
            .into_iter()
            .zip(judged)
            .map(|(strength, judged)| (judged && strength.is_finite()).then_some(strength))
            .collect()
    }

    fn sampling(&self, request_index: usize) -> Sampling {
        Sampling {
            temperature: self.temperature,
            top_p: self.top_p,
            max_new_tokens: self.max_new_tokens,
            seed: self.seed.wrapping_add(request_index as u64),
            stop: Vec::new(),
        }
    }
}

impl Judge for PairwiseJudge {
    fn configure(config: &str) -> Result<Self, PluginFailure> {
        let judge: Self = config::parse(config)?;
        if !(judge.prior.is_finite() && judge.prior > 0.0) {
            return Err(PluginFailure::invalid_config(
                "config key `prior`: must be finite and > 0",
            ));
        }
        if !(judge.top_p > 0.0 && judge.top_p <= 1.0) {
            return Err(PluginFailure::invalid_config(
                "config key `top_p`: must be in (0, 1]",
            ));
        }
        if !(judge.temperature.is_finite() && judge.temperature >= 0.0) {
            return Err(PluginFailure::invalid_config(
                "config key `temperature`: must be ≥ 0",
            ));
        }
        Ok(judge)
    }

    fn judge(&mut self, requests: &[JudgeRequest], models: &dyn Models) -> Vec<JudgeOutcome> {
        let mut prompts = Vec::new();
        for request in requests {
            let question = request.last_user_text();
            for (a, b) in ordered_pairs(request.responses.len()) {
                prompts.push(GenerateRequest {
                    messages: vec![
                        Message::system(SYSTEM_PROMPT),
                        Message::user(comparison_prompt(
                            question,
                            &request.responses[a],
                            &request.responses[b],
                        )),
                    ],
                    sampling: self.sampling(prompts.len()),
                });
            }
        }
        let judgments = if prompts.is_empty() {
            Ok(Vec::new())
        } else {
            models.generate(&self.model, &prompts)
        };
        let judgments = match judgments {
            Ok(judgments) if judgments.len() == prompts.len() => judgments,
            Ok(judgments) => {
                let error = PluginFailure::failed(format!(
                    "the host returned {} judgments for {} prompts",
                    judgments.len(),
                    prompts.len()
                ));
                return requests.iter().map(|_| Err(error.clone())).collect();
            }
            Err(error) => {
                let error = PluginFailure::failed(format!("judge model `{}`: {error}", self.model));
                return requests.iter().map(|_| Err(error.clone())).collect();
            }
        };
        let mut offset = 0;
        requests
            .iter()
            .map(|request| {
                let count = request.responses.len();
                let battles = count * count.saturating_sub(1);
                let verdicts: Vec<Verdict> = judgments[offset..offset + battles]
                    .iter()
                    .map(|j| verdict(j))
                    .collect();
                offset += battles;
                if count == 1 {
                    // Nothing to compare with: a neutral score.
                    return Ok(vec![Some(0.0)]);
                }
                Ok(self.scores_from_verdicts(count, &verdicts))
            })
            .collect()
    }
}

ponder_sdk::export_judge!(PairwiseJudge);

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use ponder_sdk::models::{ChoiceRequest, ModelAccessError, RewardRequest};

    use super::*;

    /// A judge model that prefers the longer answer, and records its calls.
    #[derive(Default)]
    struct LongerWins {
        calls: RefCell<Vec<usize>>,
    }

    fn answer(prompt: &str, label: char) -> usize {
        let start = format!("[The Start of Assistant {label}'s Answer]\n");
        let end = format!("\n[The End of Assistant {label}'s Answer]");
        let from = prompt.find(&start).unwrap() + start.len();
        let to = prompt.find(&end).unwrap();
        prompt[from..to].len()
    }

    impl Models for LongerWins {
        fn generate(
            &self,
            model: &str,
            requests: &[GenerateRequest],
        ) -> Result<Vec<String>, ModelAccessError> {
            assert_eq!(model, "judge");
            self.calls.borrow_mut().push(requests.len());
            Ok(requests
                .iter()
                .map(|request| {
                    let prompt = &request.messages[1].content;
                    let (a, b) = (answer(prompt, 'A'), answer(prompt, 'B'));
                    match a.cmp(&b) {
                        std::cmp::Ordering::Greater => "A is longer. [[A]]".to_string(),
                        std::cmp::Ordering::Less => "B is longer. [[B]]".to_string(),
                        std::cmp::Ordering::Equal => "Tie. [[C]]".to_string(),
                    }
                })
                .collect())
        }

        fn choice_logprobs(
            &self,
            _: &str,
            _: &[ChoiceRequest],
        ) -> Result<Vec<Vec<f64>>, ModelAccessError> {
            Err(ModelAccessError::Unsupported("test".into()))
        }

        fn reward(&self, _: &str, _: &[RewardRequest]) -> Result<Vec<f64>, ModelAccessError> {
            Err(ModelAccessError::Unsupported("test".into()))
        }
    }

    fn request(responses: &[&str]) -> JudgeRequest {
        JudgeRequest {
            instruction: vec![Message::user("Say something.")],
            responses: responses.iter().map(|r| r.to_string()).collect(),
            reference: None,
            metadata: "{}".to_string(),
        }
    }

    #[test]
    fn verdicts() {
        assert_eq!(verdict("reasoning... [[A]]"), Verdict::A);
        assert_eq!(verdict("[[A]] at first, but finally [[B]]"), Verdict::B);
        assert_eq!(verdict("[[C]]"), Verdict::Invalid);
        assert_eq!(verdict(""), Verdict::Invalid);
    }

    #[test]
    fn one_batched_call_with_both_orders_and_ranked_scores() {
        let mut judge = PairwiseJudge::configure(r#"{"model": "judge"}"#).unwrap();
        let models = LongerWins::default();
        let results = judge.judge(
            &[
                request(&["aa", "aaaa", "a"]),
                request(&["x", "yy"]),
                request(&["solo"]),
            ],
            &models,
        );
        // 3·2 + 2·1 + 0 prompts, in one call.
        assert_eq!(*models.calls.borrow(), vec![8]);
        let first = results[0].clone().unwrap();
        let scores: Vec<f64> = first.iter().map(|s| s.unwrap()).collect();
        assert!(scores[1] > scores[0] && scores[0] > scores[2], "{scores:?}");
        let second = results[1].clone().unwrap();
        assert!(second[1].unwrap() > second[0].unwrap());
        assert_eq!(results[2], Ok(vec![Some(0.0)]));
    }

    #[test]
    fn ties_and_invalid_verdicts_count_for_nobody() {
        let mut judge = PairwiseJudge::configure(r#"{"model": "judge"}"#).unwrap();
        let results = judge.judge(&[request(&["same", "same"])], &LongerWins::default());
        assert_eq!(results[0], Ok(vec![None, None]));
    }

    #[test]
    fn model_errors_fail_every_request() {
        let mut judge = PairwiseJudge::configure(r#"{"model": "judge"}"#).unwrap();
        let results = judge.judge(
            &[request(&["a", "b"]), request(&["c", "d"])],
            &ponder_sdk::models::NoModels,
        );
        assert!(
            results
                .iter()
                .all(|r| matches!(r, Err(PluginFailure::Failed(_))))
        );
    }

    #[test]
    fn config_requires_a_model() {
        let error = PairwiseJudge::configure("{}").unwrap_err();
        assert!(error.to_string().contains("model"), "{error}");
        assert!(PairwiseJudge::configure(r#"{"model": "j", "prior": 0}"#).is_err());
    }
}
