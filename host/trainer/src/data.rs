//! Preference pairs: JSONL rows, tokenisation per the `dpo.json` conventions, shuffling and batching.

use std::path::Path;

use ponder_checkpoint::{Checkpoint, Message};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde_json::Value;

use crate::error::TrainError;

/// One preference pair as written in a pairs file.
#[derive(Debug, Clone)]
pub struct PairRow {
    /// The conversation before the completion (chat messages).
    pub prompt: Vec<Message>,
    /// The preferred completion.
    pub chosen: String,
    /// The dispreferred completion.
    pub rejected: String,
    /// Weight of the pair in the loss (default 1).
    pub weight: f64,
    /// Free-form metadata, carried along untouched.
    pub metadata: Value,
}

fn row_error(path: &Path, line: usize, field: &str, message: impl Into<String>) -> TrainError {
    TrainError::PairRow {
        path: path.to_path_buf(),
        line,
        field: field.to_string(),
        message: message.into(),
    }
}

/// Parses one JSONL row: `{"prompt": [{"role", "content"}...], "chosen": "...", "rejected": "...",
/// "weight"?: number, "metadata"?: {...}}`. Errors name the file, the line and the field.
///
/// # Errors
///
/// [`TrainError::PairRow`] naming the malformed field.
pub fn parse_pair_row(text: &str, path: &Path, line: usize) -> Result<PairRow, TrainError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| row_error(path, line, "(row)", format!("invalid JSON: {e}")))?;
    let Value::Object(object) = value else {
        return Err(row_error(path, line, "(row)", "expected a JSON object"));
    };
    let prompt_value = object
        .get("prompt")
        .ok_or_else(|| row_error(path, line, "prompt", "missing"))?;
    let Value::Array(messages) = prompt_value else {
        return Err(row_error(
            path,
            line,
            "prompt",
            "expected an array of {\"role\", \"content\"} messages",
        ));
    };
    if messages.is_empty() {
        return Err(row_error(path, line, "prompt", "no messages"));
    }
    let mut prompt = Vec::with_capacity(messages.len());
    for (i, message) in messages.iter().enumerate() {
        let field = |name: &str| format!("prompt[{i}].{name}");
        let string_field = |name: &str| -> Result<String, TrainError> {
            match message.get(name) {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(row_error(path, line, &field(name), "expected a string")),
                None => Err(row_error(path, line, &field(name), "missing")),
            }
        };
        if !message.is_object() {
            return Err(row_error(
                path,
                line,
                &format!("prompt[{i}]"),
                "expected an object with role and content",
            ));
        }
        let role = string_field("role")?;
        if role.is_empty() {
            return Err(row_error(path, line, &field("role"), "empty"));
        }
        let content = string_field("content")?;
        prompt.push(Message { role, content });
    }
    let completion = |name: &str| -> Result<String, TrainError> {
        match object.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(Value::String(_)) => Err(row_error(path, line, name, "empty")),
            Some(_) => Err(row_error(path, line, name, "expected a string")),
            None => Err(row_error(path, line, name, "missing")),
        }
    };
    let chosen = completion("chosen")?;
    let rejected = completion("rejected")?;
    let weight = match object.get("weight") {
        None | Some(Value::Null) => 1.0,
        Some(Value::Number(n)) => match n.as_f64() {
            Some(w) if w.is_finite() && w >= 0.0 => w,
            _ => {
                return Err(row_error(
                    path,
                    line,
                    "weight",
                    "must be a finite number >= 0",
                ));
            }
        },
        Some(_) => return Err(row_error(path, line, "weight", "expected a number")),
    };
    let metadata = match object.get("metadata") {
        None | Some(Value::Null) => Value::Null,
        Some(m @ Value::Object(_)) => m.clone(),
        Some(_) => return Err(row_error(path, line, "metadata", "expected an object")),
    };
    Ok(PairRow {
        prompt,
        chosen,
        rejected,
        weight,
        metadata,
    })
}

/// Reads a pairs JSONL file (blank lines are skipped).
///
/// # Errors
///
/// [`TrainError::Io`] when the file cannot be read, [`TrainError::PairRow`] for a malformed row.
pub fn read_pairs(path: &Path) -> Result<Vec<PairRow>, TrainError> {
    // Bytes, decoded line by line, so that invalid UTF-8 is reported with its line rather
    // than as an error about the whole file.
    let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
    let mut rows = Vec::new();
    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = std::str::from_utf8(raw).map_err(|e| {
            row_error(
                path,
                index + 1,
                "(row)",
                format!(
                    "not valid UTF-8 (at byte {} of the line)",
                    e.valid_up_to() + 1
                ),
            )
        })?;
        if line.trim().is_empty() {
            continue;
        }
        rows.push(parse_pair_row(line, path, index + 1)?);
    }
    if rows.is_empty() {
        return Err(TrainError::Config(format!(
            "{}: no preference pairs",
            path.display()
        )));
    }
    Ok(rows)
}

/// A pair as token ids: the loss covers `chosen` / `rejected` only.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenizedPair {
    /// Prompt ids: chat template applied once with the generation prompt.
    pub prompt: Vec<u32>,
    /// Chosen completion ids, ending with the end-of-turn token.
    pub chosen: Vec<u32>,
    /// Rejected completion ids, ending with the end-of-turn token.
    pub rejected: Vec<u32>,
    /// Weight of the pair in the loss.
    pub weight: f64,
}

impl TokenizedPair {
    /// Longest of the two full sequences (prompt + completion).
    pub fn max_len(&self) -> usize {
        self.prompt.len() + self.chosen.len().max(self.rejected.len())
    }

    /// Prompt + completion tokens of both sequences.
    pub fn total_tokens(&self) -> usize {
        2 * self.prompt.len() + self.chosen.len() + self.rejected.len()
    }
}

/// Tokenises pairs as `dpo.json` defines: prompt = chat template with the generation prompt;
/// completion = the text tokenised on its own, plus the end-of-turn token. With `max_length`,
/// completions are cut at the end so that prompt + completion fits; a prompt that alone fills
/// `max_length` is an error.
///
/// # Errors
///
/// [`TrainError::Checkpoint`] when the chat template or the tokenizer fails,
/// [`TrainError::Config`] for a pair left without prompt or completion tokens.
pub fn tokenize_pairs(
    checkpoint: &Checkpoint,
    rows: &[PairRow],
    max_length: Option<usize>,
) -> Result<Vec<TokenizedPair>, TrainError> {
    let end_of_turn = checkpoint.end_of_turn_id().ok_or_else(|| {
        TrainError::Config(format!(
            "{}: the model has no end-of-turn token to end completions with",
            checkpoint.source.display()
        ))
    })?;
    let mut out = Vec::with_capacity(rows.len());
    for (index, row) in rows.iter().enumerate() {
        let prompt = checkpoint.encode_chat(&row.prompt, true)?;
        let completion = |text: &str| -> Result<Vec<u32>, TrainError> {
            let mut ids = checkpoint.tokenizer.encode(text)?;
            ids.push(end_of_turn);
            if let Some(max) = max_length {
                if prompt.len() >= max {
                    return Err(TrainError::Config(format!(
                        "pair {}: the prompt has {} tokens, max length is {max}",
                        index + 1,
                        prompt.len()
                    )));
                }
                ids.truncate(max - prompt.len());
            }
            Ok(ids)
        };
        let chosen = completion(&row.chosen)?;
        let rejected = completion(&row.rejected)?;
        out.push(TokenizedPair {
            prompt,
            chosen,
            rejected,
            weight: row.weight,
        });
    }
    Ok(out)
}

/// How many pairs go into one forward/backward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchSize {
    /// A fixed number of pairs.
    Pairs(usize),
    /// As many pairs as fit a budget of padded tokens (`2 × pairs × longest sequence`); a pair
    /// larger than the budget goes alone.
    Tokens(usize),
}

/// The order of pair indices in `epoch` (0-based): a shuffle seeded by `seed` and the epoch, so a
/// resumed run sees the same order.
pub fn epoch_order(num_pairs: usize, seed: u64, epoch: u64, shuffle: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..num_pairs).collect();
    if shuffle {
        let mut rng = StdRng::seed_from_u64(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        order.shuffle(&mut rng);
    }
    order
}

/// Splits an ordered list of pairs into micro-batches.
pub fn micro_batches(pairs: &[TokenizedPair], order: &[usize], size: BatchSize) -> Vec<Vec<usize>> {
    let mut batches: Vec<Vec<usize>> = Vec::new();
    match size {
        BatchSize::Pairs(n) => {
            for chunk in order.chunks(n.max(1)) {
                batches.push(chunk.to_vec());
            }
        }
        BatchSize::Tokens(budget) => {
            let mut current: Vec<usize> = Vec::new();
            let mut longest = 0usize;
            for &i in order {
                let len = pairs[i].max_len();
                let candidate_longest = longest.max(len);
                if !current.is_empty() && 2 * (current.len() + 1) * candidate_longest > budget {
                    batches.push(std::mem::take(&mut current));
                    longest = 0;
                }
                longest = longest.max(len);
                current.push(i);
            }
            if !current.is_empty() {
                batches.push(current);
            }
        }
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PairRow, TrainError> {
        parse_pair_row(text, Path::new("pairs.jsonl"), 7)
    }

    #[test]
    fn parses_a_full_row() {
        let row = parse(
            r#"{"prompt":[{"role":"user","content":"Hi"}],"chosen":"a","rejected":"b","weight":0.5,"metadata":{"k":1}}"#,
        )
        .unwrap();
        assert_eq!(row.prompt.len(), 1);
        assert_eq!(row.prompt[0].role, "user");
        assert_eq!(row.chosen, "a");
        assert_eq!(row.weight, 0.5);
        assert_eq!(row.metadata["k"], 1);
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let cases = [
            (r#"{"chosen":"a","rejected":"b"}"#, "prompt"),
            (
                r#"{"prompt":[{"role":"user"}],"chosen":"a","rejected":"b"}"#,
                "prompt[0].content",
            ),
            (
                r#"{"prompt":[{"role":"user","content":"x"}],"chosen":1,"rejected":"b"}"#,
                "chosen",
            ),
            (
                r#"{"prompt":[{"role":"user","content":"x"}],"chosen":"a"}"#,
                "rejected",
            ),
            (
                r#"{"prompt":[{"role":"user","content":"x"}],"chosen":"a","rejected":"b","weight":-1}"#,
                "weight",
            ),
            ("not json", "(row)"),
        ];
        for (text, field) in cases {
            let message = parse(text).unwrap_err().to_string();
            assert!(
                message.starts_with("pairs.jsonl:7: field `") && message.contains(field),
                "{text} -> {message}"
            );
        }
    }

    #[test]
    fn invalid_utf8_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pairs.jsonl");
        let good = br#"{"prompt":[{"role":"user","content":"x"}],"chosen":"a","rejected":"b"}"#;
        let mut bytes = good.to_vec();
        bytes.extend_from_slice(b"\n\n{\"prompt\": \"\xff\xfe\"}\n");
        std::fs::write(&path, &bytes).unwrap();
        let message = read_pairs(&path).unwrap_err().to_string();
        assert!(
            message
                .contains("pairs.jsonl:3: field `(row)`: not valid UTF-8 (at byte 13 of the line)"),
            "{message}"
        );
    }

    fn pair(len: usize) -> TokenizedPair {
        TokenizedPair {
            prompt: vec![0; len],
            chosen: vec![1],
            rejected: vec![2],
            weight: 1.0,
        }
    }

    #[test]
    fn shuffle_is_seeded_and_a_permutation() {
        let a = epoch_order(20, 3, 0, true);
        assert_eq!(a, epoch_order(20, 3, 0, true));
        assert_ne!(a, epoch_order(20, 3, 1, true));
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..20).collect::<Vec<_>>());
    }

    #[test]
    fn token_budget_batches() {
        let pairs: Vec<TokenizedPair> = [9, 9, 9, 30].into_iter().map(pair).collect();
        // each small pair: 10 tokens per sequence, 2 sequences -> 20 padded tokens
        let batches = micro_batches(&pairs, &[0, 1, 2, 3], BatchSize::Tokens(40));
        assert_eq!(batches, vec![vec![0, 1], vec![2], vec![3]]);
        let by_count = micro_batches(&pairs, &[3, 2, 1, 0], BatchSize::Pairs(3));
        assert_eq!(by_count, vec![vec![3, 2, 1], vec![0]]);
    }
}
