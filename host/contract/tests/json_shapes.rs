//! The JSON shapes of the contract's types: those of `ponder plugins run`, the native ABI and the
//! examples in `examples/plugins/`. They must not change.

use ponder_contract::{
    Candidate, JudgeOutcome, JudgeOutcomeJson, JudgeRequest, Message, ModelAccessError,
    OutputFormat, Pair, Parsed, PluginFailure,
};
use serde_json::json;

#[test]
fn plugin_failure_is_kind_and_message() {
    let failure = PluginFailure::invalid_config("key `x`");
    assert_eq!(
        serde_json::to_value(&failure).unwrap(),
        json!({"kind": "invalid-config", "message": "key `x`"})
    );
    assert_eq!(failure.to_string(), "invalid configuration: key `x`");
}

#[test]
fn parsed_is_ok_or_failure() {
    assert_eq!(
        serde_json::to_value(Parsed::split("t", "r")).unwrap(),
        json!({"ok": {"thought": "t", "response": "r"}})
    );
    assert_eq!(
        serde_json::to_value(Parsed::failure("why")).unwrap(),
        json!({"failure": "why"})
    );
}

#[test]
fn judge_request_defaults_reference_and_metadata() {
    let request: JudgeRequest = serde_json::from_value(json!({
        "instruction": [{"role": "user", "content": "q"}],
        "responses": ["a"]
    }))
    .unwrap();
    assert_eq!(request.instruction, vec![Message::user("q")]);
    assert_eq!(request.reference, None);
    assert_eq!(request.metadata, "{}");
    assert_eq!(request.last_user_text(), "q");
    let malformed = JudgeRequest {
        metadata: r#"{"n": "x"}"#.into(),
        ..request
    };
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Metadata {
        n: u32,
    }
    let error = malformed.metadata_as::<Metadata>().unwrap_err();
    assert!(
        matches!(&error, PluginFailure::InvalidInput(text) if text.contains("`n`")),
        "{error:?}"
    );
}

#[test]
fn judge_outcomes_are_scores_or_error() {
    let scores: JudgeOutcome = Ok(vec![Some(0.5), None]);
    assert_eq!(
        serde_json::to_value(JudgeOutcomeJson::from(&scores)).unwrap(),
        json!({"scores": [0.5, null]})
    );
    let error: JudgeOutcome = Err(PluginFailure::failed("no"));
    let json = serde_json::to_value(JudgeOutcomeJson::from(&error)).unwrap();
    assert_eq!(json, json!({"error": {"kind": "failed", "message": "no"}}));
    let back: JudgeOutcomeJson = serde_json::from_value(json).unwrap();
    assert_eq!(JudgeOutcome::from(back), error);
}

#[test]
fn candidate_fields_default_and_pair_refuses_self_pairs() {
    let candidate: Candidate =
        serde_json::from_value(json!({"score": 0.7, "parsed": true})).unwrap();
    assert_eq!(candidate.response_tokens, 0);
    assert!(candidate.is_scored());
    assert_eq!(Pair::new(1, 1), None);
    assert_eq!(
        serde_json::to_value(Pair::new(0, 2).unwrap()).unwrap(),
        json!({"chosen": 0, "rejected": 2, "weight": 1.0})
    );
}

#[test]
fn output_format_defaults_and_composes_a_forced_output() {
    let empty: OutputFormat = serde_json::from_value(json!({})).unwrap();
    assert_eq!(empty, OutputFormat::default());
    assert_eq!(
        serde_json::to_value(&empty).unwrap(),
        json!({"assistant_prefix": "", "response_separator": null, "forced_response": ""})
    );
    let format = OutputFormat {
        assistant_prefix: "T:\n".into(),
        response_separator: Some("R:".into()),
        forced_response: "\nR: ".into(),
    };
    assert_eq!(
        format.forced_output("think", "answer"),
        "T:\nthink\nR: answer"
    );
    let no_separator = OutputFormat {
        forced_response: "ignored".into(),
        ..OutputFormat::default()
    };
    assert_eq!(no_separator.forced_output("", "answer"), "answer");
}

#[test]
fn model_access_error_becomes_a_failed_plugin_call() {
    let failure = PluginFailure::from(ModelAccessError::NotGranted);
    assert!(
        matches!(&failure, PluginFailure::Failed(text) if text.contains("does not grant `models`")),
        "{failure:?}"
    );
}
