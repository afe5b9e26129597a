//! The rows of the run directory's JSONL files. Field order is the file's column order; every
//! file is written by serde_json from these types, so equal runs write equal bytes.

use ponder_contract::Message;
use serde::{Deserialize, Serialize};

/// `iter-N/instructions.jsonl`: the instructions of one iteration, as the judge sees them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstructionRecord {
    /// The dataset row's id.
    pub id: String,
    /// The instruction as chat messages, without the thought prompt.
    pub messages: Vec<Message>,
    /// The dataset row's category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// The dataset row's reference answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The dataset row's metadata (an object).
    pub metadata: serde_json::Value,
}

/// `iter-N/samples.jsonl`: one instruction's prompt and its K outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleRecord {
    /// The instruction's id.
    pub id: String,
    /// The messages the policy was prompted with (the template's rendering: thought prompt
    /// included); the chat template is applied to them once.
    pub prompt: Vec<Message>,
    /// Text the assistant turn was started with (the template's assistant prefix when
    /// `sample.prefill` is on; empty otherwise). Each output's `text` begins with it.
    pub assistant_prefix: String,
    /// The K outputs.
    pub outputs: Vec<Output>,
}

/// One sampled output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Output {
    /// Its sampling seed.
    pub seed: u64,
    /// The whole output: assistant prefix, thought, separator and response.
    pub text: String,
    /// Generated tokens (forced separator tokens included, stop token not).
    pub tokens: u32,
    /// Why it ended: `stop` (end of turn), `length` (max_new_tokens) or `stop-string`.
    pub finish: String,
    /// Whether the host forced the response separator (`sample.thought_budget`).
    pub forced_response: bool,
}

/// `iter-N/judgments.jsonl`: one instruction's parsed outputs and their scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgmentRecord {
    /// The instruction's id.
    pub id: String,
    /// One per output, in the order of `samples.jsonl`.
    pub candidates: Vec<JudgedOutput>,
    /// Why this instruction could not be judged (a plugin failure on this row, skipped under
    /// `run.on_row_failure = "skip"`); such an instruction makes no pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// One output, split and scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgedOutput {
    /// Whether the output parsed into thought and response.
    pub parsed: bool,
    /// The thought (empty for a parse failure).
    pub thought: String,
    /// The response, what the judge saw (empty for a parse failure).
    pub response: String,
    /// Why parsing failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parse_failure: Option<String>,
    /// The judge's score (`null` for a parse failure or a response the judge could not score).
    pub score: Option<f64>,
    /// Response length in policy tokens (0 for a parse failure).
    pub response_tokens: u32,
    /// Response length in Unicode scalar values.
    pub response_chars: u32,
    /// Thought length in policy tokens.
    pub thought_tokens: u32,
    /// Thought length in Unicode scalar values.
    pub thought_chars: u32,
    /// Whole output length in tokens.
    pub output_tokens: u32,
}

/// `pairs.jsonl`'s `metadata`: where a pair came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairOrigin {
    /// The instruction's id.
    pub id: String,
    /// Index of the chosen output among the instruction's K.
    pub chosen: u32,
    /// Index of the rejected output.
    pub rejected: u32,
    /// The chosen output's score.
    pub chosen_score: Option<f64>,
    /// The rejected output's score (`null` for a parse failure used as rejected).
    pub rejected_score: Option<f64>,
}

/// `iter-N/validation/step-S.jsonl`: one validation instruction's output and score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationRecord {
    /// The instruction's id.
    pub id: String,
    /// The output.
    pub text: String,
    /// Whether it parsed (an unparsed output is judged whole).
    pub parsed: bool,
    /// The judge's score.
    pub score: Option<f64>,
}
