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
        "seed": sampling.seed,
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

/// Why a chat completion ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finish {
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
    let finish = match choice.finish_reason.as_deref() {
        Some("stop") => Finish::Stop,
        Some("length") => Finish::Length,
        Some(other) => {
            return Err(format!(
                "finish_reason `{other}`, where `stop` or `length` was expected"
            ));
        }
        None => return Err("the choice has no `finish_reason`".into()),
    };
    let tokens = reply
        .usage
        .and_then(|usage| usage.completion_tokens)
        .ok_or("no `usage.completion_tokens` (needed to count the call's token budget)")?;
    if tokens > u64::from(max_tokens) {
        return Err(format!(
            "usage.completion_tokens is {tokens}, more than the {max_tokens} asked for \
             (max_tokens)"
        ));
    }
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
