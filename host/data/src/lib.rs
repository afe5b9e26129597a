//! Instruction files for ponder: reading the instruction sets a run trains and evaluates on
//! (JSONL or Parquet, [`read_instructions`]), writing them ([`write_jsonl`]), and the built-in
//! sets: seeded instructions with verifiable IFEval-style constraints for the
//! `judge-constraints` plugin ([`verifiable`], [`verifiable_splits`]) and a small hand-written
//! set of open-ended instructions for LLM judges ([`open_ended`]).
//!
//! A row of an instruction file is a JSON object (a JSONL line, or a Parquet row with these
//! columns):
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `id` | string or integer, optional | unique in the file; default `<file stem>-<row number>` |
//! | `prompt` | string, or list of `{role, content}` | the conversation; a string is one user message |
//! | `instruction` | string | instead of `prompt`: one user message |
//! | `input` | string, optional | with `instruction` only: appended after a blank line (Alpaca) |
//! | `category` | string, optional | e.g. `coding`; for reports |
//! | `reference` | string, optional | a reference answer, for judges that use one |
//! | `metadata` | object, optional | for the judge, e.g. IFEval's `instruction_id_list` + `kwargs` |
//!
//! Blank and `null` optional fields count as absent; other fields are ignored. This crate needs
//! neither burn nor wasmtime.

#![warn(missing_docs)]

mod error;
mod jsonl;
mod open_ended;
mod parquet_file;
mod row;
mod verifiable;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use ponder_contract::Message;
use serde::Serialize;
use serde_json::Value;

pub use error::{DataError, Location, RowProblem};
pub use open_ended::open_ended;
pub use verifiable::{
    BUILTIN_SEED, CATEGORIES, EVAL_SIZE, SUPPORTED_CONSTRAINT_IDS, TRAIN_SIZE, VALIDATION_SIZE,
    VerifiableSplits, verifiable, verifiable_splits,
};

/// One instruction: the conversation a model answers, and what a judge needs to score it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Instruction {
    /// Unique within its file.
    pub id: String,
    /// The conversation so far; at least one message is from the user. Written as `prompt`.
    #[serde(rename = "prompt")]
    pub messages: Vec<Message>,
    /// The kind of task (`writing`, `coding`, ...), for per-category reports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// A reference answer, for judges that compare with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Data for the judge; always a JSON object (`{}` when the row has none).
    #[serde(skip_serializing_if = "is_empty_object")]
    pub metadata: Value,
}

fn is_empty_object(value: &Value) -> bool {
    value.as_object().is_some_and(|object| object.is_empty())
}

/// Reads an instruction file: JSONL (`.jsonl`, `.json`: one JSON object per line, blank lines
/// skipped) or Parquet (`.parquet`), chosen by the extension. Every error names the file and the
/// 1-based line (JSONL) or row (Parquet).
pub fn read_instructions(path: &Path) -> Result<Vec<Instruction>, DataError> {
    let extension = path
        .extension()
        .and_then(|extension| extension.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("jsonl" | "json") => jsonl::read(path),
        Some("parquet") => parquet_file::read(path),
        _ => Err(DataError::UnknownFormat {
            path: path.to_path_buf(),
        }),
    }
}

/// Turns rows into instructions for both readers: default ids, duplicate ids, error locations.
pub(crate) struct RowCollector {
    path: PathBuf,
    stem: String,
    first_use: HashMap<String, Location>,
    instructions: Vec<Instruction>,
}

impl RowCollector {
    pub(crate) fn new(path: &Path) -> Self {
        RowCollector {
            path: path.to_path_buf(),
            stem: path
                .file_stem()
                .map(|stem| stem.to_string_lossy().into_owned())
                .unwrap_or_default(),
            first_use: HashMap::new(),
            instructions: Vec::new(),
        }
    }

    /// The error for a row at `location`.
    pub(crate) fn row_error(&self, location: Location, problem: RowProblem) -> DataError {
        DataError::Row {
            path: self.path.clone(),
            location,
            problem,
        }
    }

    /// Adds the row at `location`, the file's row number `row_number` (1-based, blank lines not
    /// counted).
    pub(crate) fn push(
        &mut self,
        location: Location,
        row_number: usize,
        row: Value,
    ) -> Result<(), DataError> {
        let instruction = row::instruction_of_row(row, || format!("{}-{row_number}", self.stem))
            .map_err(|problem| self.row_error(location, problem))?;
        if let Some(first) = self.first_use.get(&instruction.id) {
            return Err(DataError::DuplicateId {
                path: self.path.clone(),
                id: instruction.id,
                first: *first,
                second: location,
            });
        }
        self.first_use.insert(instruction.id.clone(), location);
        self.instructions.push(instruction);
        Ok(())
    }

    pub(crate) fn finish(self) -> Vec<Instruction> {
        self.instructions
    }
}

/// The instructions as JSONL: one object per line, in the row format [`read_instructions`]
/// reads (`prompt` as a list of messages), ending in a newline.
pub fn to_jsonl(instructions: &[Instruction]) -> String {
    let mut text = String::new();
    for instruction in instructions {
        let line = serde_json::to_string(instruction)
            .expect("an Instruction has string keys only, so it always serialises");
        text.push_str(&line);
        text.push('\n');
    }
    text
}

/// Writes the instructions as JSONL ([`to_jsonl`]) to `path`, atomically: into a temporary file
/// in the same directory, renamed over `path` once complete, so `path` is never half-written.
pub fn write_jsonl(path: &Path, instructions: &[Instruction]) -> Result<(), DataError> {
    write_atomically(path, to_jsonl(instructions).as_bytes())
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    let error = |error| DataError::Write {
        path: path.to_path_buf(),
        error,
    };
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(directory).map_err(error)?;
    file.write_all(bytes).map_err(error)?;
    file.as_file().sync_all().map_err(error)?;
    file.persist(path).map_err(|failed| error(failed.error))?;
    Ok(())
}
