//! Pointwise LLM judge: the judge model rates each response on a 1-10 rubric, and the score is
//! the expected rating under the model's distribution over the ten ratings — the softmax of the
//! `choice-logprobs` of `"1/10"` … `"10/10"` after the prefix `Rating: ` — rather than one sampled
//! rating. (The `/10` makes the ten continuations mutually exclusive: bare `"1"` would also count
//! the probability of every `"10"` that starts with it.) All requests go to the model in one
//! batched call.
//!
//! Configuration:
//! - `model` (string, required): the judge model's name in the manifest's `[models]` table.
//! - `prefix` (string, default `"Rating: "`): what the judge's reply is forced to start with.
//!
//! A response whose choice log-probabilities are all −∞ or not finite gets no score (`None`).

use ponder_sdk::models::{ChoiceRequest, Models};
use ponder_sdk::{Judge, JudgeOutcome, JudgeRequest, Message, PluginFailure, config};
use serde::Deserialize;

/// The rubric (system message).
pub const SYSTEM_PROMPT: &str = "Please act as an impartial judge and evaluate the quality of the \
response provided by an AI assistant to the user question displayed below. Consider the \
helpfulness, relevance, accuracy, depth, creativity, and level of detail of the response, and \
whether it follows the user's instructions. Rate the response on a scale of 1 to 10: 1 means \
useless or wrong, 5 means acceptable with clear flaws, 10 means excellent. Reply with the rating \
only, in the format \"Rating: N/10\".";

/// The judge's configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointwiseJudge {
    model: String,
    #[serde(default = "default_prefix")]
    prefix: String,
}

fn default_prefix() -> String {
    "Rating: ".to_string()
}

/// The rating choices `"1/10"` … `"10/10"`.
pub fn choices() -> Vec<String> {
    (1..=10).map(|rating| format!("{rating}/10")).collect()
}

/// The expected rating (1-10) under the softmax of the choices' log-probabilities; `None` when
/// there is no finite log-probability.
///
/// The weights are `exp(lp − max)`, divided by their sum: with log-probabilities of huge
/// magnitude a log-sum-exp normaliser `max + ln Σ …` rounds back to `max` (the `ln 10` is below
/// its precision), and ten equal values would get probability 1 each.
pub fn expected_rating(logprobs: &[f64]) -> Option<f64> {
    let finite: Vec<f64> = logprobs
        .iter()
        .map(|&lp| if lp.is_nan() { f64::NEG_INFINITY } else { lp })
        .collect();
    let largest = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !largest.is_finite() {
        return None;
    }
    // each weight is in [0, 1] and the largest is 1, so the sum is in [1, len]
    let weights: Vec<f64> = finite.iter().map(|lp| (lp - largest).exp()).collect();
    let total: f64 = weights.iter().sum();
    let expectation: f64 = weights
        .iter()
        .enumerate()
        .map(|(index, weight)| (index as f64 + 1.0) * weight / total)
        .sum();
    expectation.is_finite().then_some(expectation)
}

/// The user message showing the question and the response to rate.
pub fn rating_prompt(question: &str, response: &str) -> String {
    format!(
        "[User Question]\n{question}\n\n[The Start of Assistant's Answer]\n{response}\n\
         [The End of Assistant's Answer]"
    )
}

impl Judge for PointwiseJudge {
    fn configure(config: &str) -> Result<Self, PluginFailure> {
        config::parse(config)
    }

    fn judge(&mut self, requests: &[JudgeRequest], models: &dyn Models) -> Vec<JudgeOutcome> {
        let choices = choices();
        let batch: Vec<ChoiceRequest> = requests
            .iter()
            .flat_map(|request| {
                let question = request.last_user_text();
                request
                    .responses
                    .iter()
                    .map(move |response| (question, response))
            })
            .map(|(question, response)| ChoiceRequest {
                messages: vec![
                    Message::system(SYSTEM_PROMPT),
                    Message::user(rating_prompt(question, response)),
                ],
                prefix: self.prefix.clone(),
                choices: choices.clone(),
            })
            .collect();
        let logprobs = if batch.is_empty() {
            Ok(Vec::new())
        } else {
            models.choice_logprobs(&self.model, &batch)
        };
        let logprobs = match logprobs {
            Ok(logprobs)
                if logprobs.len() == batch.len()
                    && logprobs.iter().all(|row| row.len() == choices.len()) =>
            {
                logprobs
            }
            Ok(_) => {
                let error =
                    PluginFailure::failed("the host returned log-probabilities of the wrong shape");
                return requests.iter().map(|_| Err(error.clone())).collect();
            }
            Err(error) => {
                let error = PluginFailure::failed(format!("judge model `{}`: {error}", self.model));
                return requests.iter().map(|_| Err(error.clone())).collect();
            }
        };
        let mut rows = logprobs.iter();
        requests
            .iter()
            .map(|request| {
                Ok(request
                    .responses
                    .iter()
                    .map(|_| rows.next().and_then(|row| expected_rating(row)))
                    .collect())
            })
            .collect()
    }
}

ponder_sdk::export_judge!(PointwiseJudge);

#[cfg(test)]
mod tests {
    use ponder_sdk::models::{GenerateRequest, ModelAccessError, NoModels, RewardRequest};

    use super::*;

    /// A judge model whose rating distribution peaks at the response's length (capped at 10).
    struct LengthRater;

    impl Models for LengthRater {
        fn generate(
            &self,
            _: &str,
            _: &[GenerateRequest],
        ) -> Result<Vec<String>, ModelAccessError> {
            Err(ModelAccessError::Unsupported("test".into()))
        }

        fn choice_logprobs(
            &self,
            model: &str,
            requests: &[ChoiceRequest],
        ) -> Result<Vec<Vec<f64>>, ModelAccessError> {
            assert_eq!(model, "judge");
            Ok(requests
                .iter()
                .map(|request| {
                    assert_eq!(request.prefix, "Rating: ");
                    assert_eq!(request.choices.len(), 10);
                    assert_eq!(request.choices[9], "10/10");
                    let content = &request.messages[1].content;
                    let start = content.find("Answer]\n").unwrap() + "Answer]\n".len();
                    let end = content.find("\n[The End").unwrap();
                    if &content[start..end] == "?" {
                        return vec![f64::NEG_INFINITY; 10];
                    }
                    let peak = (end - start).min(10) as f64;
                    (1..=10).map(|r| -((r as f64 - peak).powi(2))).collect()
                })
                .collect())
        }

        fn reward(&self, _: &str, _: &[RewardRequest]) -> Result<Vec<f64>, ModelAccessError> {
            Err(ModelAccessError::Unsupported("test".into()))
        }
    }

    fn request(responses: &[&str]) -> JudgeRequest {
        JudgeRequest {
            instruction: vec![Message::user("Q")],
            responses: responses.iter().map(|r| r.to_string()).collect(),
            reference: None,
            metadata: "{}".to_string(),
        }
    }

    #[test]
    fn expectation_over_the_softmax() {
        let mut certain = vec![f64::NEG_INFINITY; 10];
        certain[6] = 0.0;
        assert_eq!(expected_rating(&certain), Some(7.0));
        let uniform = vec![-3.0; 10];
        assert!((expected_rating(&uniform).unwrap() - 5.5).abs() < 1e-12);
        let mut two = vec![f64::NEG_INFINITY; 10];
        two[0] = 2f64.ln();
        two[9] = 0.0;
        assert!((expected_rating(&two).unwrap() - 4.0).abs() < 1e-12);
        assert_eq!(expected_rating(&[f64::NEG_INFINITY; 10]), None);
        assert_eq!(expected_rating(&[f64::NAN; 10]), None);
    }

    #[test]
    fn log_probs_of_huge_magnitude_still_average_to_a_rating() {
        // equal values: the uniform rating, whatever their size
        for value in [1e20, f64::MAX, -1e300] {
            let rating = expected_rating(&[value; 10]).unwrap();
            assert!((rating - 5.5).abs() < 1e-9, "{value}: {rating}");
        }
        let mut apart = vec![-f64::MAX; 10];
        apart[2] = f64::MAX;
        assert_eq!(expected_rating(&apart), Some(3.0));
        let mut infinite = vec![0.0; 10];
        infinite[4] = f64::INFINITY;
        assert_eq!(expected_rating(&infinite), None);
    }

    #[test]
    fn scores_every_response_in_one_call() {
        let mut judge = PointwiseJudge::configure(r#"{"model": "judge"}"#).unwrap();
        let results = judge.judge(
            &[request(&["abc", "abcdefg"]), request(&["?"])],
            &LengthRater,
        );
        let first = results[0].clone().unwrap();
        assert!((first[0].unwrap() - 3.0).abs() < 0.1, "{first:?}");
        assert!((first[1].unwrap() - 7.0).abs() < 0.1, "{first:?}");
        assert_eq!(results[1], Ok(vec![None]));
    }

    #[test]
    fn model_errors_fail_the_requests() {
        let mut judge = PointwiseJudge::configure(r#"{"model": "judge"}"#).unwrap();
        let results = judge.judge(&[request(&["a"])], &NoModels);
        assert!(matches!(&results[0], Err(PluginFailure::Failed(text)) if text.contains("grant")));
    }
}
