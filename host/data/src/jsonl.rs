//! JSONL instruction files: one JSON object per line; blank lines are skipped.

use std::path::Path;

use crate::error::{DataError, Location, RowProblem};
use crate::{Instruction, RowCollector};

pub(crate) fn read(path: &Path) -> Result<Vec<Instruction>, DataError> {
    let bytes = std::fs::read(path).map_err(|error| DataError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let mut rows = RowCollector::new(path);
    let mut row_number = 0;
    for (index, line) in bytes.split(|&byte| byte == b'\n').enumerate() {
        let location = Location::Line(index + 1);
        let line = std::str::from_utf8(line)
            .map_err(|_| rows.row_error(location, RowProblem::InvalidUtf8))?;
        if line.trim().is_empty() {
            continue;
        }
        row_number += 1;
        let row = serde_json::from_str(line).map_err(|error| DataError::Json {
            path: path.to_path_buf(),
            location,
            error,
        })?;
        rows.push(location, row_number, row)?;
    }
    Ok(rows.finish())
}
