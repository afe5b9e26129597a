//! Parquet instruction files, read with the `parquet` crate's Arrow reader. Each row becomes the
//! same JSON object a JSONL line would be, so both formats share one set of rules (`row.rs`).

use std::fs::File;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrowPrimitiveType, RecordBatch};
use arrow_schema::DataType;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Map, Number, Value};

use crate::error::{DataError, Location, RowProblem};
use crate::{Instruction, RowCollector};

/// The columns ponder reads; others are not even decoded.
const COLUMNS: &[&str] = &[
    "id",
    "prompt",
    "instruction",
    "input",
    "category",
    "reference",
    "metadata",
];

/// Rows decoded at a time.
const BATCH_ROWS: usize = 1024;

pub(crate) fn read(path: &Path) -> Result<Vec<Instruction>, DataError> {
    let parquet_error = |error| DataError::Parquet {
        path: path.to_path_buf(),
        error,
    };
    let file = File::open(path).map_err(|error| DataError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet_error)?;
    let wanted: Vec<usize> = builder
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, field)| COLUMNS.contains(&field.name().as_str()))
        .map(|(index, _)| index)
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), wanted);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(parquet_error)?;

    let mut rows = RowCollector::new(path);
    let mut rows_before = 0;
    for batch in reader {
        let batch = batch.map_err(|error| DataError::ParquetData {
            path: path.to_path_buf(),
            location: Location::Rows {
                first: rows_before + 1,
                last: rows_before + BATCH_ROWS,
            },
            error,
        })?;
        for index in 0..batch.num_rows() {
            let row_number = rows_before + index + 1;
            let location = Location::Row(row_number);
            let row =
                row_object(&batch, index).map_err(|problem| rows.row_error(location, problem))?;
            rows.push(location, row_number, row)?;
        }
        rows_before += batch.num_rows();
    }
    Ok(rows.finish())
}

/// Row `index` of the batch as a JSON object; a `metadata` string is parsed as JSON.
fn row_object(batch: &RecordBatch, index: usize) -> Result<Value, RowProblem> {
    let mut row = Map::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let name = field.name();
        let mut value = json_value(column.as_ref(), index, name)?;
        if name == "metadata"
            && let Value::String(text) = &value
        {
            value = serde_json::from_str(text).map_err(RowProblem::MetadataNotJson)?;
        }
        row.insert(name.clone(), value);
    }
    Ok(Value::Object(row))
}

fn number<T>(array: &dyn Array, index: usize) -> Value
where
    T: ArrowPrimitiveType,
    T::Native: Into<Value>,
{
    array.as_primitive::<T>().value(index).into()
}

fn float(value: f64) -> Value {
    Number::from_f64(value).map_or(Value::Null, Value::Number)
}

fn text(bytes: &[u8], field: &str) -> Result<Value, RowProblem> {
    std::str::from_utf8(bytes)
        .map(|text| Value::String(text.to_string()))
        .map_err(|_| RowProblem::InvalidUtf8In {
            field: field.to_string(),
        })
}

fn list(items: &dyn Array, field: &str) -> Result<Value, RowProblem> {
    (0..items.len())
        .map(|item| json_value(items, item, &format!("{field}[{item}]")))
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

/// Element `index` of an Arrow array as JSON. `field` names it in errors.
fn json_value(array: &dyn Array, index: usize, field: &str) -> Result<Value, RowProblem> {
    if array.is_null(index) {
        return Ok(Value::Null);
    }
    Ok(match array.data_type() {
        DataType::Null => Value::Null,
        DataType::Boolean => Value::Bool(array.as_boolean().value(index)),
        DataType::Int8 => number::<Int8Type>(array, index),
        DataType::Int16 => number::<Int16Type>(array, index),
        DataType::Int32 => number::<Int32Type>(array, index),
        DataType::Int64 => number::<Int64Type>(array, index),
        DataType::UInt8 => number::<UInt8Type>(array, index),
        DataType::UInt16 => number::<UInt16Type>(array, index),
        DataType::UInt32 => number::<UInt32Type>(array, index),
        DataType::UInt64 => number::<UInt64Type>(array, index),
        DataType::Float32 => float(array.as_primitive::<Float32Type>().value(index).into()),
        DataType::Float64 => float(array.as_primitive::<Float64Type>().value(index)),
        DataType::Utf8 => Value::String(array.as_string::<i32>().value(index).to_string()),
        DataType::LargeUtf8 => Value::String(array.as_string::<i64>().value(index).to_string()),
        DataType::Utf8View => Value::String(array.as_string_view().value(index).to_string()),
        DataType::Binary => text(array.as_binary::<i32>().value(index), field)?,
        DataType::LargeBinary => text(array.as_binary::<i64>().value(index), field)?,
        DataType::BinaryView => text(array.as_binary_view().value(index), field)?,
        DataType::List(_) => list(array.as_list::<i32>().value(index).as_ref(), field)?,
        DataType::LargeList(_) => list(array.as_list::<i64>().value(index).as_ref(), field)?,
        DataType::FixedSizeList(..) => {
            list(array.as_fixed_size_list().value(index).as_ref(), field)?
        }
        DataType::Struct(fields) => {
            let array = array.as_struct();
            let mut object = Map::new();
            for (member, column) in fields.iter().zip(array.columns()) {
                let path = format!("{field}.{}", member.name());
                object.insert(
                    member.name().clone(),
                    json_value(column.as_ref(), index, &path)?,
                );
            }
            Value::Object(object)
        }
        DataType::Dictionary(..) => {
            // Dictionary columns (pandas categoricals) are rare and short-keyed: normalising the
            // keys per cell costs one pass over the batch, at most BATCH_ROWS entries.
            let dictionary = array.as_any_dictionary();
            let key = dictionary.normalized_keys()[index];
            json_value(dictionary.values().as_ref(), key, field)?
        }
        other => {
            return Err(RowProblem::UnsupportedType {
                field: field.to_string(),
                data_type: other.to_string(),
            });
        }
    })
}
