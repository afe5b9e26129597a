//! The chat-completion request body and the reading of its reply.

use ponder_plugin_runtime::capability::GenerateRequest;
use serde::Deserialize;
use serde_json::json;

/// The body of `POST {url}/chat/completions` for one request, asking for at most `max_tokens`.
/// Stop strings are not sent: they are applied to the reply ([`cut_at_stop`]).
pub(crate) fn chat_body(model: &str, request: &GenerateRequest, max_tokens: u32) -> Vec<u8> {
    let messages: Vec<serde_json::Value> = request
        .messages
        .iter()
        .map(|m| json!({"role": m.role, "content": m.content}))
        .collect();
    let sampling = &request.sampling;
    // An f32 written as the decimal it was given as (0.9, not 0.8999999761581543).
    let decimal = |x: f32| x.to_string().parse::<f64>().unwrap_or(f64::from(x));
    json!({
        "model": model,
        "messages": messages,
        "temperature": decimal(sampling.temperature),
        "top_p": decimal(sampling.top_p),
        "max_tokens": max_tokens,
        "seed": wire_seed(sampling.seed),
        "n": 1,
        "stream": false,
    })
    .to_string()
    .into_bytes()
}

#[derive(Deserialize)]
struct ChatReply {
    choices: Vec<ChatChoice>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct ChatChoice {
    message: ChatMessage,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChatMessage {
    content: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    completion_tokens: Option<u64>,
}

/// Why a completion ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// The model ended its turn (or a stop string the server knew of: none are sent).
    Stop,
    /// It reached `max_tokens`.
    Length,
}

/// One chat completion, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Completion {
    /// The reply's text.
    pub(crate) text: String,
    /// Why it ended.
    pub(crate) finish: Finish,
    /// Tokens the server generated for it.
    pub(crate) tokens: u64,
}

/// Reads a chat completion from a reply body; `Err` says what is wrong with it.
pub(crate) fn parse_chat(body: &str, max_tokens: u32) -> Result<Completion, String> {
    let reply: ChatReply = serde_json::from_str(body)
        .map_err(|error| format!("not the JSON of a chat completion ({error})"))?;
    let [choice] = <[ChatChoice; 1]>::try_from(reply.choices)
        .map_err(|choices| format!("{} choices where one was asked for (`n`: 1)", choices.len()))?;
    let text = choice
        .message
        .content
        .ok_or("the choice's message has no `content`")?;
    let finish = finish_of(choice.finish_reason.as_deref())?;
    let tokens = completion_tokens(reply.usage, max_tokens)?;
    Ok(Completion {
        text,
        finish,
        tokens,
    })
}

/// `text` cut right after the first of `stops` to end in it (the earliest end wins, as when
/// generation stops there); `None` when none occurs.
pub(crate) fn cut_at_stop(text: &str, stops: &[String]) -> Option<String> {
    stops
        .iter()
        .filter(|stop| !stop.is_empty())
        .filter_map(|stop| text.find(stop.as_str()).map(|at| at + stop.len()))
        .min()
        .map(|end| text[..end].to_string())
}

/// A text completion of a prompt given as token ids: what the host's sampler would be asked.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRequest {
    /// The prompt's token ids (chat template and assistant prefix already applied).
    pub prompt: Vec<u32>,
    /// Most new tokens.
    pub max_tokens: u32,
    /// Softmax temperature; 0 is greedy.
    pub temperature: f32,
    /// Nucleus threshold in (0, 1].
    pub top_p: f32,
    /// The sampling seed.
    pub seed: u64,
}

/// The reply to a [`TokenRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenCompletion {
    /// The generated text.
    pub text: String,
    /// The generated token ids, when the server returns them (llama.cpp's `logprobs.content[].id`,
    /// vLLM's `logprobs.tokens` as `token_id:N`); `None` when it does not.
    pub token_ids: Option<Vec<u32>>,
    /// Why it ended.
    pub finish: Finish,
    /// Tokens generated (`usage.completion_tokens`).
    pub tokens: u64,
}

/// The body of `POST {url}/completions` for `request`. One log-probability is asked for so the
/// reply carries the sampled token ids (llama.cpp's form; vLLM gives them with
/// `return_tokens_as_token_ids`).
pub(crate) fn token_body(model: &str, request: &TokenRequest) -> Vec<u8> {
    let decimal = |x: f32| x.to_string().parse::<f64>().unwrap_or(f64::from(x));
    json!({
        "model": model,
        "prompt": request.prompt,
        "max_tokens": request.max_tokens,
        "temperature": decimal(request.temperature),
        "top_p": decimal(request.top_p),
        "seed": wire_seed(request.seed),
        "n": 1,
        "stream": false,
        "logprobs": 1,
        "return_tokens_as_token_ids": true,
    })
    .to_string()
    .into_bytes()
}

#[derive(Deserialize)]
struct TextReply {
    choices: Vec<TextChoice>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct TextChoice {
    text: Option<String>,
    finish_reason: Option<String>,
    #[serde(default)]
    logprobs: Option<serde_json::Value>,
}

/// Reads a text completion; `Err` says what is wrong with it.
pub(crate) fn parse_text(body: &str, max_tokens: u32) -> Result<TokenCompletion, String> {
    let reply: TextReply = serde_json::from_str(body)
        .map_err(|error| format!("not the JSON of a text completion ({error})"))?;
    let [choice] = <[TextChoice; 1]>::try_from(reply.choices)
        .map_err(|choices| format!("{} choices where one was asked for (`n`: 1)", choices.len()))?;
    let text = choice.text.ok_or("the choice has no `text`")?;
    let finish = finish_of(choice.finish_reason.as_deref())?;
    let tokens = completion_tokens(reply.usage, max_tokens)?;
    let token_ids = match &choice.logprobs {
        Some(logprobs) => token_ids(logprobs)?,
        None => None,
    };
    Ok(TokenCompletion {
        text,
        token_ids,
        finish,
        tokens,
    })
}

/// The sampled token ids in a completion's `logprobs`, in either server's form.
fn token_ids(logprobs: &serde_json::Value) -> Result<Option<Vec<u32>>, String> {
    let id = |value: &serde_json::Value| value.as_u64().and_then(|id| u32::try_from(id).ok());
    if let Some(content) = logprobs.get("content").and_then(|c| c.as_array()) {
        return content
            .iter()
            .map(|entry| entry.get("id").and_then(id))
            .collect::<Option<Vec<u32>>>()
            .map(Some)
            .ok_or_else(|| "a `logprobs.content` entry has no token `id`".to_string());
    }
    if let Some(tokens) = logprobs.get("tokens").and_then(|t| t.as_array()) {
        let parsed: Option<Vec<u32>> = tokens
            .iter()
            .map(|token| {
                token
                    .as_str()
                    .and_then(|t| t.strip_prefix("token_id:"))
                    .and_then(|n| n.parse().ok())
            })
            .collect();
        // Tokens as text (a server that ignores `return_tokens_as_token_ids`) carry no ids.
        return Ok(parsed);
    }
    Ok(None)
}

fn finish_of(reason: Option<&str>) -> Result<Finish, String> {
    match reason {
        Some("stop") => Ok(Finish::Stop),
        Some("length") => Ok(Finish::Length),
        Some(other) => Err(format!(
            "finish_reason `{other}`, where `stop` or `length` was expected"
        )),
        None => Err("the choice has no `finish_reason`".into()),
    }
}

fn completion_tokens(usage: Option<Usage>, max_tokens: u32) -> Result<u64, String> {
    let tokens = usage
        .and_then(|usage| usage.completion_tokens)
        .ok_or("no `usage.completion_tokens` (needed to count the call's token budget)")?;
    if tokens > u64::from(max_tokens) {
        return Err(format!(
            "usage.completion_tokens is {tokens}, more than the {max_tokens} asked for \
             (max_tokens)"
        ));
    }
    Ok(tokens)
}

/// A seed as servers accept it: vLLM refuses seeds above `i64::MAX` (HTTP 400), so the top bit
/// is dropped (llama.cpp keeps the low 32 bits of whatever it is sent).
fn wire_seed(seed: u64) -> u64 {
    seed & (i64::MAX as u64)
}

/// The first `limit` characters of `text`, for error messages.
pub(crate) fn start_of(text: &str, limit: usize) -> String {
    text.chars().take(limit).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chat_completion_is_read() {
        let body = r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"Paris."},
            "finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":3}}"#;
        assert_eq!(
            parse_chat(body, 10),
            Ok(Completion {
                text: "Paris.".into(),
                finish: Finish::Stop,
                tokens: 3
            })
        );
    }

    #[test]
    fn replies_of_the_wrong_shape_say_what_is_wrong() {
        let cases = [
            ("<html>502</html>", "not the JSON of a chat completion"),
            (
                r#"{"choices":[{"message":{"content":"a"},"finish_reason":"stop"}"#,
                "not the JSON",
            ),
            (
                r#"{"choices":[],"usage":{"completion_tokens":1}}"#,
                "0 choices",
            ),
            (
                r#"{"choices":[{"message":{"content":null},"finish_reason":"stop"}],"usage":{"completion_tokens":1}}"#,
                "no `content`",
            ),
            (
                r#"{"choices":[{"message":{"content":"a"},"finish_reason":"tool_calls"}],"usage":{"completion_tokens":1}}"#,
                "finish_reason `tool_calls`",
            ),
            (
                r#"{"choices":[{"message":{"content":"a"},"finish_reason":"stop"}]}"#,
                "usage.completion_tokens",
            ),
            (
                r#"{"choices":[{"message":{"content":"a"},"finish_reason":"length"}],"usage":{"completion_tokens":11}}"#,
                "more than the 10 asked for",
            ),
        ];
        for (body, expected) in cases {
            let error = parse_chat(body, 10).expect_err(body);
            assert!(error.contains(expected), "{body}: {error}");
        }
    }

    #[test]
    fn text_completions_carry_token_ids_in_either_form() {
        let llama = r#"{"choices":[{"text":" Hi","index":0,"finish_reason":"length",
            "logprobs":{"content":[{"id":7952,"token":" Hi","logprob":-1.0}]}}],
            "usage":{"completion_tokens":1}}"#;
        let completion = parse_text(llama, 1).expect("llama.cpp form");
        assert_eq!(completion.token_ids, Some(vec![7952]));
        assert_eq!(completion.finish, Finish::Length);
        let vllm = r#"{"choices":[{"text":" Hi!","finish_reason":"stop","logprobs":{
            "tokens":["token_id:7952","token_id:17"],"token_logprobs":[-1.0,-0.5]}}],
            "usage":{"completion_tokens":2}}"#;
        assert_eq!(parse_text(vllm, 4).unwrap().token_ids, Some(vec![7952, 17]));
        let text_tokens = r#"{"choices":[{"text":" Hi","finish_reason":"stop","logprobs":{
            "tokens":[" Hi"]}}],"usage":{"completion_tokens":1}}"#;
        assert_eq!(parse_text(text_tokens, 4).unwrap().token_ids, None);
        let none = r#"{"choices":[{"text":"","finish_reason":"stop","logprobs":null}],
            "usage":{"completion_tokens":0}}"#;
        assert_eq!(parse_text(none, 4).unwrap().token_ids, None);
        for (body, expected) in [
            (
                r#"{"choices":[{"finish_reason":"stop"}],"usage":{"completion_tokens":1}}"#,
                "no `text`",
            ),
            (
                r#"{"choices":[{"text":"a","finish_reason":"stop","logprobs":{"content":[{"token":"a"}]}}],"usage":{"completion_tokens":1}}"#,
                "no token `id`",
            ),
            (
                r#"{"choices":[{"text":"a","finish_reason":"length"}],"usage":{"completion_tokens":9}}"#,
                "more than the 4",
            ),
        ] {
            let error = parse_text(body, 4).expect_err(body);
            assert!(error.contains(expected), "{body}: {error}");
        }
        let body: serde_json::Value = serde_json::from_slice(&token_body(
            "m",
            &TokenRequest {
                prompt: vec![1, 2, 3],
                max_tokens: 5,
                temperature: 0.8,
                top_p: 0.95,
                seed: 11,
            },
        ))
        .unwrap();
        assert_eq!(body["prompt"], serde_json::json!([1, 2, 3]));
        assert_eq!(body["temperature"], 0.8);
        assert_eq!(body["seed"], 11);
        let big = TokenRequest {
            prompt: vec![1],
            max_tokens: 1,
            temperature: 1.0,
            top_p: 1.0,
            seed: u64::MAX,
        };
        let body: serde_json::Value = serde_json::from_slice(&token_body("m", &big)).unwrap();
        assert_eq!(body["seed"], i64::MAX, "vLLM takes no seed above i64::MAX");
    }

    #[test]
    fn stop_strings_cut_after_the_earliest_end() {
        let stops = vec!["5".to_string(), "3, 4".to_string()];
        assert_eq!(
            cut_at_stop("1, 2, 3, 4, 5, 6", &stops).as_deref(),
            Some("1, 2, 3, 4")
        );
        assert_eq!(cut_at_stop("1, 2", &stops), None);
        assert_eq!(cut_at_stop("abc", &[String::new()]), None);
    }

    #[test]
    fn the_body_carries_the_sampling_settings() {
        let request = GenerateRequest {
            messages: vec![ponder_plugin_runtime::capability::Message {
                role: "user".into(),
                content: "Hi".into(),
            }],
            sampling: ponder_plugin_runtime::capability::Sampling {
                temperature: 0.5,
                top_p: 0.9,
                max_new_tokens: 64,
                seed: 7,
                stop: vec!["x".into()],
            },
        };
        let body: serde_json::Value =
            serde_json::from_slice(&chat_body("m", &request, 32)).expect("JSON");
        assert_eq!(body["model"], "m");
        assert_eq!(body["messages"][0]["content"], "Hi");
        assert_eq!(body["max_tokens"], 32);
        assert_eq!(body["seed"], 7);
        assert_eq!(body["temperature"], 0.5);
        assert_eq!(body["top_p"], 0.9);
        assert!(body.get("stop").is_none(), "{body}");
    }
}
