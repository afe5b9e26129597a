//! `choice-logprobs` and `reward` on a served model: the bodies of vLLM's `POST /tokenize`, of a
//! text completion asking for prompt log-probabilities and of `POST /pooling`, and the reading
//! of their replies.
//!
//! A choice is scored as on the local path: the conversation rendered with the chat template and
//! its generation prompt (tokenized by the server, which holds the model's template and
//! tokenizer), then the prefix's tokens, then the choice's tokens, each text tokenized on its
//! own; the choice's log-probability is the sum of the log-probabilities the server reports for
//! its tokens at their positions in that sequence.

use ponder_plugin_runtime::capability::Message;
use serde::Deserialize;
use serde_json::json;

/// The body of `POST /tokenize` for a conversation: the server applies its chat template with
/// the generation prompt (vLLM adds no special tokens of its own to a chat: the template writes
/// them).
pub(crate) fn tokenize_chat_body(model: &str, messages: &[Message]) -> Vec<u8> {
    let messages: Vec<serde_json::Value> = messages
        .iter()
        .map(|m| json!({"role": m.role, "content": m.content}))
        .collect();
    json!({
        "model": model,
        "messages": messages,
        "add_generation_prompt": true,
    })
    .to_string()
    .into_bytes()
}

/// The body of `POST /tokenize` for plain text (a prefix or a choice): no special tokens added,
/// as the local tokenizer's `encode` adds none.
pub(crate) fn tokenize_text_body(model: &str, text: &str) -> Vec<u8> {
    json!({
        "model": model,
        "prompt": text,
        "add_special_tokens": false,
    })
    .to_string()
    .into_bytes()
}

#[derive(Deserialize)]
struct TokenizeReply {
    tokens: Vec<u32>,
    max_model_len: Option<u64>,
}

/// A `/tokenize` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tokenized {
    /// The token ids.
    pub(crate) tokens: Vec<u32>,
    /// The served model's context length, when the server says it (vLLM does).
    pub(crate) max_model_len: Option<u64>,
}

/// Reads a `/tokenize` reply; `Err` says what is wrong with it.
pub(crate) fn parse_tokenize(body: &str) -> Result<Tokenized, String> {
    let reply: TokenizeReply = serde_json::from_str(body).map_err(|error| {
        format!("not the JSON of a tokenization (`tokens`: a list of token ids) ({error})")
    })?;
    Ok(Tokenized {
        tokens: reply.tokens,
        max_model_len: reply.max_model_len,
    })
}

/// The body of `POST {url}/completions` scoring `prompts` (token ids, one sequence per choice):
/// one generated token each (vLLM requires at least one; it is not used), greedy, and the
/// log-probability of every prompt token (`prompt_logprobs`: 0, the prompt's own tokens only).
pub(crate) fn score_body(model: &str, prompts: &[Vec<u32>]) -> Vec<u8> {
    json!({
        "model": model,
        "prompt": prompts,
        "max_tokens": 1,
        "temperature": 0,
        "n": 1,
        "stream": false,
        "prompt_logprobs": 0,
    })
    .to_string()
    .into_bytes()
}

/// Why a scoring reply gave no log-probabilities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScoreReplyError {
    /// The reply is a completion without `prompt_logprobs`: the server does not return them
    /// (llama.cpp's server ignores the field).
    NoPromptLogprobs,
    /// The reply is not what was asked for; the text says how.
    Malformed(String),
}

/// One scored sequence: its token ids and how many of the last ones are the choice's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scored<'a> {
    /// The whole sequence sent (conversation, prefix, choice).
    pub(crate) tokens: &'a [u32],
    /// The choice's tokens: the last `choice_tokens` of `tokens`.
    pub(crate) choice_tokens: usize,
}

/// The sum of the natural-log probabilities of each sequence's choice tokens, read from a
/// completion reply with `prompt_logprobs` (one choice per prompt, matched by `index`; per prompt
/// a list with one entry per prompt token, the first `null`, each an object mapping token ids, as
/// strings, to `{"logprob": f, ...}`, where the prompt's own token is always present).
pub(crate) fn parse_prompt_logprobs(
    body: &str,
    sequences: &[Scored<'_>],
) -> Result<Vec<f64>, ScoreReplyError> {
    let malformed = ScoreReplyError::Malformed;
    let reply: serde_json::Value = serde_json::from_str(body)
        .map_err(|error| malformed(format!("not the JSON of a text completion ({error})")))?;
    let choices = reply
        .get("choices")
        .and_then(|choices| choices.as_array())
        .ok_or_else(|| malformed("no `choices` list".into()))?;
    let without = choices
        .iter()
        .filter(|choice| choice.get("prompt_logprobs").is_none_or(|p| p.is_null()))
        .count();
    if !choices.is_empty() && without == choices.len() {
        return Err(ScoreReplyError::NoPromptLogprobs);
    }
    if choices.len() != sequences.len() {
        return Err(malformed(format!(
            "{} choices for {} prompts (one completion per prompt was asked for)",
            choices.len(),
            sequences.len()
        )));
    }
    let mut totals: Vec<Option<f64>> = vec![None; sequences.len()];
    for (position, choice) in choices.iter().enumerate() {
        let index = match choice.get("index") {
            None => position,
            Some(index) => index
                .as_u64()
                .and_then(|index| usize::try_from(index).ok())
                .filter(|&index| index < sequences.len())
                .ok_or_else(|| {
                    malformed(format!(
                        "choice {position} has `index` {index}, not one of the {} prompts",
                        sequences.len()
                    ))
                })?,
        };
        if totals[index].is_some() {
            return Err(malformed(format!("two choices have `index` {index}")));
        }
        let logprobs = choice
            .get("prompt_logprobs")
            .and_then(|p| p.as_array())
            .ok_or_else(|| malformed(format!("choice {index} has no `prompt_logprobs` list")))?;
        totals[index] = Some(choice_total(index, logprobs, &sequences[index]).map_err(malformed)?);
    }
    totals
        .into_iter()
        .enumerate()
        .map(|(index, total)| {
            total.ok_or_else(|| malformed(format!("no choice has `index` {index}")))
        })
        .collect()
}

/// The sum of the log-probabilities of `sequence`'s choice tokens in one prompt's
/// `prompt_logprobs`.
fn choice_total(
    index: usize,
    logprobs: &[serde_json::Value],
    sequence: &Scored<'_>,
) -> Result<f64, String> {
    let tokens = sequence.tokens;
    if logprobs.len() != tokens.len() {
        return Err(format!(
            "`prompt_logprobs` of prompt {index} has {} entries for its {} tokens",
            logprobs.len(),
            tokens.len()
        ));
    }
    let start = tokens.len() - sequence.choice_tokens;
    if start == 0 {
        // The first token of a prompt has no log-probability; the conversation is never empty.
        return Err(format!(
            "prompt {index} is all choice: its first token has no context"
        ));
    }
    let mut total = 0.0;
    for (at, &token) in tokens.iter().enumerate().skip(start) {
        let logprob = logprobs[at]
            .get(token.to_string())
            .and_then(|entry| entry.get("logprob"))
            .and_then(|logprob| logprob.as_f64())
            .ok_or_else(|| {
                format!(
                    "`prompt_logprobs` of prompt {index} has no `logprob` of token {token} at \
                     position {at}"
                )
            })?;
        if logprob > 0.0 {
            return Err(format!(
                "`prompt_logprobs` of prompt {index}: token {token} at position {at} has \
                 log-probability {logprob}, above 0"
            ));
        }
        total += logprob;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// vLLM 0.32's reply to a two-prompt batch with `prompt_logprobs`: 1 (the top-1 token is
    /// listed beside the prompt's own where they differ), trimmed of fields not read.
    const BATCH: &str = r#"{"id":"cmpl-1","object":"text_completion","model":"a1","choices":[
        {"index":0,"text":" the","logprobs":null,"finish_reason":"length","prompt_logprobs":[null,
            {"3575":{"logprob":-11.541711807250977,"rank":2895,"decoded_token":" capital"},
             "29":{"logprob":-0.860410213470459,"rank":1,"decoded_token":"-"}},
            {"282":{"logprob":-0.3805714547634125,"rank":1,"decoded_token":" of"}}]},
        {"index":1,"text":" a","logprobs":null,"finish_reason":"length","prompt_logprobs":[null,
            {"314":{"logprob":-3.726260185241699,"rank":7,"decoded_token":" is"}}]}],
        "usage":{"prompt_tokens":5,"total_tokens":7,"completion_tokens":2}}"#;

    #[test]
    fn choice_tokens_are_summed_at_their_positions() {
        let first = [504, 3575, 282];
        let second = [4649, 314];
        let sequences = [
            Scored {
                tokens: &first,
                choice_tokens: 2,
            },
            Scored {
                tokens: &second,
                choice_tokens: 1,
            },
        ];
        let totals = parse_prompt_logprobs(BATCH, &sequences).expect("totals");
        assert_eq!(
            totals,
            vec![
                -11.541711807250977 + -0.3805714547634125,
                -3.726260185241699
            ]
        );
        // Only the choice's tokens count.
        let last_only = [
            Scored {
                tokens: &first,
                choice_tokens: 1,
            },
            sequences[1].clone(),
        ];
        assert_eq!(
            parse_prompt_logprobs(BATCH, &last_only).expect("totals")[0],
            -0.3805714547634125
        );
    }

    #[test]
    fn choices_are_matched_by_index() {
        let swapped = r#"{"choices":[
            {"index":1,"prompt_logprobs":[null,{"9":{"logprob":-2.0}}]},
            {"index":0,"prompt_logprobs":[null,{"8":{"logprob":-1.0}}]}]}"#;
        let sequences = [
            Scored {
                tokens: &[1, 8],
                choice_tokens: 1,
            },
            Scored {
                tokens: &[1, 9],
                choice_tokens: 1,
            },
        ];
        assert_eq!(
            parse_prompt_logprobs(swapped, &sequences),
            Ok(vec![-1.0, -2.0])
        );
    }

    #[test]
    fn a_completion_without_prompt_logprobs_is_unsupported_not_malformed() {
        // llama.cpp's server: `prompt_logprobs` is ignored.
        let llama = r#"{"choices":[{"text":" land","index":0,"logprobs":null,"finish_reason":"length"}],
            "usage":{"completion_tokens":1,"prompt_tokens":3,"total_tokens":4}}"#;
        let sequences = [Scored {
            tokens: &[1, 2, 3],
            choice_tokens: 1,
        }];
        assert_eq!(
            parse_prompt_logprobs(llama, &sequences),
            Err(ScoreReplyError::NoPromptLogprobs)
        );
        let null = r#"{"choices":[{"index":0,"text":"","prompt_logprobs":null}]}"#;
        assert_eq!(
            parse_prompt_logprobs(null, &sequences),
            Err(ScoreReplyError::NoPromptLogprobs)
        );
    }

    #[test]
    fn malformed_replies_say_what_is_wrong() {
        let tokens = [1, 2, 3];
        let one = [Scored {
            tokens: &tokens,
            choice_tokens: 2,
        }];
        let cases = [
            ("<html>502</html>", "not the JSON of a text completion"),
            (r#"{"object":"error"}"#, "no `choices` list"),
            (
                r#"{"choices":[{"index":0,"prompt_logprobs":[null,{"2":{"logprob":-1}},{"3":{"logprob":-1}}]},
                   {"index":1,"prompt_logprobs":[null]}]}"#,
                "2 choices for 1 prompts",
            ),
            (
                r#"{"choices":[{"index":0,"prompt_logprobs":[null,{"2":{"logprob":-1}}]}]}"#,
                "has 2 entries for its 3 tokens",
            ),
            (
                r#"{"choices":[{"index":0,"prompt_logprobs":[null,{"2":{"logprob":-1}},{"4":{"logprob":-1}}]}]}"#,
                "no `logprob` of token 3 at position 2",
            ),
            (
                r#"{"choices":[{"index":0,"prompt_logprobs":[null,null,{"3":{"logprob":-1}}]}]}"#,
                "no `logprob` of token 2 at position 1",
            ),
            (
                r#"{"choices":[{"index":0,"prompt_logprobs":[null,{"2":{"logprob":"x"}},{"3":{"logprob":-1}}]}]}"#,
                "no `logprob` of token 2",
            ),
            (
                r#"{"choices":[{"index":0,"prompt_logprobs":[null,{"2":{"logprob":0.5}},{"3":{"logprob":-1}}]}]}"#,
                "above 0",
            ),
            (
                r#"{"choices":[{"index":3,"prompt_logprobs":[null,{"2":{"logprob":-1}},{"3":{"logprob":-1}}]}]}"#,
                "`index` 3, not one of the 1 prompts",
            ),
            (
                r#"{"choices":[{"index":0,"prompt_logprobs":{"2":-1}}]}"#,
                "no `prompt_logprobs` list",
            ),
        ];
        for (body, expected) in cases {
            match parse_prompt_logprobs(body, &one) {
                Err(ScoreReplyError::Malformed(message)) => {
                    assert!(message.contains(expected), "{body}: {message}");
                }
                other => panic!("{body}: {other:?}"),
            }
        }
        let two = [one[0].clone(), one[0].clone()];
        let twice = r#"{"choices":[
            {"index":0,"prompt_logprobs":[null,{"2":{"logprob":-1}},{"3":{"logprob":-1}}]},
            {"index":0,"prompt_logprobs":[null,{"2":{"logprob":-1}},{"3":{"logprob":-1}}]}]}"#;
        assert_eq!(
            parse_prompt_logprobs(twice, &two),
            Err(ScoreReplyError::Malformed(
                "two choices have `index` 0".into()
            ))
        );
        let all_choice = [Scored {
            tokens: &tokens,
            choice_tokens: 3,
        }];
        let body = r#"{"choices":[{"index":0,"prompt_logprobs":[null,{"2":{"logprob":-1}},{"3":{"logprob":-1}}]}]}"#;
        assert!(matches!(
            parse_prompt_logprobs(body, &all_choice),
            Err(ScoreReplyError::Malformed(message)) if message.contains("no context")
        ));
    }

    #[test]
    fn tokenize_replies_and_bodies() {
        // vLLM 0.32's reply.
        let vllm = r#"{"count":5,"max_model_len":2048,"tokens":[504,3575,282,4649,314],"token_strs":null}"#;
        assert_eq!(
            parse_tokenize(vllm),
            Ok(Tokenized {
                tokens: vec![504, 3575, 282, 4649, 314],
                max_model_len: Some(2048)
            })
        );
        // llama.cpp's server reads `content` only: a chat comes back as no tokens.
        assert_eq!(
            parse_tokenize(r#"{"tokens":[]}"#),
            Ok(Tokenized {
                tokens: vec![],
                max_model_len: None
            })
        );
        for body in [
            "Not Found",
            r#"{"tokens":[-1]}"#,
            r#"{"tokens":"1 2"}"#,
            r#"{"count":1}"#,
        ] {
            let error = parse_tokenize(body).expect_err(body);
            assert!(error.contains("not the JSON of a tokenization"), "{error}");
        }
        let chat: serde_json::Value = serde_json::from_slice(&tokenize_chat_body(
            "m",
            &[Message {
                role: "user".into(),
                content: "Hi".into(),
            }],
        ))
        .expect("JSON");
        assert_eq!(chat["messages"][0]["role"], "user");
        assert_eq!(chat["add_generation_prompt"], true);
        let text: serde_json::Value =
            serde_json::from_slice(&tokenize_text_body("m", "Rating: ")).expect("JSON");
        assert_eq!(text["prompt"], "Rating: ");
        assert_eq!(text["add_special_tokens"], false);
        let score: serde_json::Value =
            serde_json::from_slice(&score_body("m", &[vec![1, 2], vec![3]])).expect("JSON");
        assert_eq!(score["prompt"], json!([[1, 2], [3]]));
        assert_eq!(score["prompt_logprobs"], 0);
        assert_eq!(score["max_tokens"], 1);
    }
}

/// The body of vLLM's `POST /pooling` for a reward: the conversation with `response` as the
/// assistant's turn, the model's chat template applied without a generation prompt, the
/// classifier's raw output asked for.
pub(crate) fn reward_body(model: &str, messages: &[Message], response: &str) -> Vec<u8> {
    let mut conversation: Vec<serde_json::Value> = messages
        .iter()
        .map(|m| json!({"role": m.role, "content": m.content}))
        .collect();
    conversation.push(json!({"role": "assistant", "content": response}));
    json!({
        "model": model,
        "messages": conversation,
        "add_generation_prompt": false,
        "task": "classify",
        "use_activation": false,
    })
    .to_string()
    .into_bytes()
}

/// Why a `/pooling` reply gave no reward.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RewardReplyError {
    /// The model gives this many values per sequence, not one.
    NotOneValue(usize),
    /// Not the JSON of a pooling reply, or not one result.
    Malformed(String),
}

#[derive(Deserialize)]
struct PoolingReply {
    data: Vec<PoolingItem>,
}

#[derive(Deserialize)]
struct PoolingItem {
    data: serde_json::Value,
}

/// Reads the reward out of a `/pooling` reply for one sequence.
pub(crate) fn parse_reward(body: &str) -> Result<f64, RewardReplyError> {
    let reply: PoolingReply = serde_json::from_str(body).map_err(|error| {
        RewardReplyError::Malformed(format!("not the JSON of a pooling reply ({error})"))
    })?;
    let [item] = <[PoolingItem; 1]>::try_from(reply.data).map_err(|items| {
        RewardReplyError::Malformed(format!("{} results where one was asked for", items.len()))
    })?;
    let values = item.data.as_array().ok_or_else(|| {
        RewardReplyError::Malformed("the result's `data` is not a list of numbers".to_string())
    })?;
    match values.as_slice() {
        [value] => value.as_f64().filter(|v| v.is_finite()).ok_or_else(|| {
            RewardReplyError::Malformed(format!("the reward {value} is not a finite number"))
        }),
        others => Err(RewardReplyError::NotOneValue(others.len())),
    }
}
