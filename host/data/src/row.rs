//! One row of an instruction file (a JSON object, whichever format it came from) to an
//! [`Instruction`]: the rules both readers share.

use ponder_contract::Message;
use serde_json::{Map, Value};

use crate::Instruction;
use crate::error::RowProblem;

/// The name of a JSON value's kind, for error messages.
pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "true/false",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn wrong_type(field: impl Into<String>, expected: &'static str, found: &Value) -> RowProblem {
    RowProblem::WrongType {
        field: field.into(),
        expected,
        found: kind_of(found),
    }
}

/// Takes a field out of the row; `null` counts as absent.
fn take(row: &mut Map<String, Value>, field: &str) -> Option<Value> {
    row.remove(field).filter(|value| !value.is_null())
}

/// A string field that must be present and not blank.
fn required_string(value: Value, field: &str) -> Result<String, RowProblem> {
    match value {
        Value::String(text) if text.trim().is_empty() => Err(RowProblem::Empty {
            field: field.to_string(),
        }),
        Value::String(text) => Ok(text),
        other => Err(wrong_type(field, "a string", &other)),
    }
}

/// An optional string field; blank counts as absent (datasets often write `""` for "none").
fn optional_string(
    row: &mut Map<String, Value>,
    field: &str,
) -> Result<Option<String>, RowProblem> {
    match take(row, field) {
        None => Ok(None),
        Some(Value::String(text)) if text.trim().is_empty() => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(other) => Err(wrong_type(field, "a string", &other)),
    }
}

fn id_of(value: Value) -> Result<String, RowProblem> {
    match value {
        Value::Number(number) if number.is_i64() || number.is_u64() => Ok(number.to_string()),
        Value::String(_) => required_string(value, "id"),
        other => Err(wrong_type("id", "a string or an integer", &other)),
    }
}

fn message_of(index: usize, value: Value) -> Result<Message, RowProblem> {
    let field = |name: &str| format!("prompt[{index}].{name}");
    let Value::Object(mut message) = value else {
        return Err(wrong_type(
            format!("prompt[{index}]"),
            "an object with `role` and `content`",
            &value,
        ));
    };
    let role = match take(&mut message, "role") {
        None => {
            return Err(RowProblem::Empty {
                field: field("role"),
            });
        }
        Some(role) => required_string(role, &field("role"))?,
    };
    let content = match take(&mut message, "content") {
        None => String::new(),
        Some(Value::String(content)) => content,
        Some(other) => return Err(wrong_type(field("content"), "a string", &other)),
    };
    if role == "user" && content.trim().is_empty() {
        return Err(RowProblem::Empty {
            field: field("content"),
        });
    }
    Ok(Message::new(role, content))
}

fn messages_of_prompt(prompt: Value) -> Result<Vec<Message>, RowProblem> {
    let messages = match prompt {
        Value::String(_) => vec![Message::new("user", required_string(prompt, "prompt")?)],
        Value::Array(items) if items.is_empty() => {
            return Err(RowProblem::Empty {
                field: "prompt".to_string(),
            });
        }
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(index, item)| message_of(index, item))
            .collect::<Result<Vec<_>, _>>()?,
        other => {
            return Err(wrong_type(
                "prompt",
                "a string or a list of {role, content} messages",
                &other,
            ));
        }
    };
    if !messages.iter().any(|message| message.role == "user") {
        return Err(RowProblem::NoUserMessage);
    }
    Ok(messages)
}

/// `instruction`, then `input` after a blank line when there is one (Alpaca's layout).
fn messages_of_instruction(
    instruction: Value,
    input: Option<String>,
) -> Result<Vec<Message>, RowProblem> {
    let mut text = required_string(instruction, "instruction")?;
    if let Some(input) = input {
        text.push_str("\n\n");
        text.push_str(&input);
    }
    Ok(vec![Message::new("user", text)])
}

/// Reads one row. `default_id` names the row when it has no `id`. Unknown fields are ignored
/// (published sets carry extra columns such as `output`).
pub(crate) fn instruction_of_row(
    row: Value,
    default_id: impl FnOnce() -> String,
) -> Result<Instruction, RowProblem> {
    let Value::Object(mut row) = row else {
        return Err(RowProblem::NotAnObject {
            found: kind_of(&row),
        });
    };
    let id = take(&mut row, "id").map(id_of).transpose()?;
    let input = optional_string(&mut row, "input")?;
    let messages = match (take(&mut row, "prompt"), take(&mut row, "instruction")) {
        (Some(_), Some(_)) => return Err(RowProblem::BothPromptAndInstruction),
        (None, None) => return Err(RowProblem::MissingPrompt),
        (Some(_), None) if input.is_some() => return Err(RowProblem::InputWithoutInstruction),
        (Some(prompt), None) => messages_of_prompt(prompt)?,
        (None, Some(instruction)) => messages_of_instruction(instruction, input)?,
    };
    let category = optional_string(&mut row, "category")?;
    let reference = optional_string(&mut row, "reference")?;
    let metadata = match take(&mut row, "metadata") {
        None => Value::Object(Map::new()),
        Some(metadata @ Value::Object(_)) => metadata,
        Some(other) => return Err(wrong_type("metadata", "a JSON object", &other)),
    };
    Ok(Instruction {
        id: id.unwrap_or_else(default_id),
        messages,
        category,
        reference,
        metadata,
    })
}
