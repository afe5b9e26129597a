//! The errors of reading and writing instruction files.

use std::fmt;
use std::path::PathBuf;

/// Where in an instruction file a row is: a 1-based line of a JSONL file or a 1-based row of a
/// Parquet file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// A line of a JSONL file (blank lines count: it is the line an editor shows).
    Line(usize),
    /// A row of a Parquet file.
    Row(usize),
    /// Rows `first..=last` of a Parquet file that could not be decoded together.
    Rows {
        /// The first row of the batch.
        first: usize,
        /// The last row of the batch.
        last: usize,
    },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Line(line) => write!(f, "line {line}"),
            Location::Row(row) => write!(f, "row {row}"),
            Location::Rows { first, last } => write!(f, "rows {first}-{last}"),
        }
    }
}

/// Why an instruction file cannot be read or written. Each variant's text says what and where,
/// and includes the underlying cause's text; no variant also reports that cause as its
/// [`std::error::Error::source`], so `{err}` and anyhow's `{err:#}` both print every fact once
/// (the convention of every ponder error type).
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file cannot be opened or read.
    #[error("cannot read {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        error: std::io::Error,
    },
    /// The file (or its temporary sibling) cannot be written or renamed into place.
    #[error("cannot write {}: {error}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        error: std::io::Error,
    },
    /// The file name does not end in a known extension.
    #[error(
        "{}: unknown kind of instruction file: expected a name ending in .jsonl or .json (one JSON object per line) or .parquet",
        path.display()
    )]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// A JSONL line is not valid JSON.
    #[error("{}: {location}: not valid JSON: {error}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The line.
        location: Location,
        /// The JSON parser's reason (its line and column are within that line).
        error: serde_json::Error,
    },
    /// A row is not a valid instruction.
    #[error("{}: {location}: {problem}", path.display())]
    Row {
        /// The file.
        path: PathBuf,
        /// The line or row.
        location: Location,
        /// What is wrong with it.
        problem: RowProblem,
    },
    /// Two rows have the same id.
    #[error("{}: {second}: id `{id}` is already used by {first}", path.display())]
    DuplicateId {
        /// The file.
        path: PathBuf,
        /// The id.
        id: String,
        /// The row that used it first.
        first: Location,
        /// The row that used it again.
        second: Location,
    },
    /// The file is not a Parquet file ponder can open (bad footer, unknown codec, ...).
    #[error("{}: not a readable Parquet file: {error}", path.display())]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The Parquet reader's reason.
        error: parquet::errors::ParquetError,
    },
    /// Some rows of a Parquet file cannot be decoded.
    #[error("{}: {location}: cannot decode the Parquet data: {error}", path.display())]
    ParquetData {
        /// The file.
        path: PathBuf,
        /// The rows of the batch that failed.
        location: Location,
        /// The Arrow decoder's reason.
        error: arrow_schema::ArrowError,
    },
}

/// What is wrong with one row of an instruction file.
#[derive(Debug, thiserror::Error)]
pub enum RowProblem {
    /// The line is not valid UTF-8.
    #[error("not valid UTF-8")]
    InvalidUtf8,
    /// A Parquet string column holds bytes that are not UTF-8.
    #[error("`{field}` is not valid UTF-8")]
    InvalidUtf8In {
        /// The column.
        field: String,
    },
    /// The row is JSON but not an object.
    #[error("expected a JSON object, found {found}")]
    NotAnObject {
        /// The kind of JSON value found.
        found: &'static str,
    },
    /// The row has no `prompt` and no `instruction`.
    #[error("has neither `prompt` nor `instruction`")]
    MissingPrompt,
    /// The row has both `prompt` and `instruction`.
    #[error("has both `prompt` and `instruction`; give one of them")]
    BothPromptAndInstruction,
    /// The row has `input` beside `prompt` (`input` only completes an `instruction`).
    #[error("`input` is only read together with `instruction`, not with `prompt`")]
    InputWithoutInstruction,
    /// A field has the wrong type.
    #[error("`{field}` must be {expected}, found {found}")]
    WrongType {
        /// The field (a JSON path such as `prompt[1].role`).
        field: String,
        /// What it must be.
        expected: &'static str,
        /// The kind of value found.
        found: &'static str,
    },
    /// A required field is empty or blank.
    #[error("`{field}` is empty")]
    Empty {
        /// The field.
        field: String,
    },
    /// The prompt has messages, but none from the user.
    #[error("`prompt` has no user message")]
    NoUserMessage,
    /// The `metadata` string of a Parquet row is not JSON.
    #[error("`metadata` is not valid JSON: {0}")]
    MetadataNotJson(serde_json::Error),
    /// A Parquet column has an Arrow type that ponder does not read.
    #[error("`{field}` has the Parquet/Arrow type {data_type}, which ponder does not read")]
    UnsupportedType {
        /// The column (or nested field).
        field: String,
        /// The Arrow type.
        data_type: String,
    },
}
