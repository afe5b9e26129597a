//! Reading instruction files: JSONL and Parquet round trips, and every error naming the file,
//! the line or row, and what is wrong.

use std::error::Error;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder, StructBuilder};
use arrow_array::{ArrayRef, BinaryArray, Int64Array, RecordBatch, StringArray, StructArray};
use arrow_schema::{DataType, Field, Fields};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use ponder_contract::Message;
use ponder_data::{DataError, Instruction, read_instructions, to_jsonl, write_jsonl};
use serde_json::json;

/// The error with its causes, as `anyhow`'s `{:#}` prints it.
fn chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Reads `text` as `name` and returns the full error text, which must name the file.
fn jsonl_error(name: &str, text: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), name, text);
    let error = read_instructions(&path).expect_err("the file is invalid");
    let text = chain(&error);
    assert!(text.contains(&path.display().to_string()), "{text}");
    text
}

fn assert_contains(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "`{part}` not in: {text}");
    }
}

fn user(text: &str) -> Vec<Message> {
    vec![Message::new("user", text)]
}

fn sample_instructions() -> Vec<Instruction> {
    vec![
        Instruction {
            id: "a".into(),
            messages: vec![
                Message::new("system", "Be brief."),
                Message::new("user", "Name a colour."),
                Message::new("assistant", "Blue."),
                Message::new("user", "Another, with a comma, please."),
            ],
            category: Some("general-knowledge".into()),
            reference: Some("Red".into()),
            metadata: json!({"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}),
        },
        Instruction {
            id: "b".into(),
            messages: user("Ünïcödé \"quotes\"\nand lines"),
            category: None,
            reference: None,
            metadata: json!({}),
        },
    ]
}

#[test]
fn jsonl_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("set.jsonl");
    let instructions = sample_instructions();
    write_jsonl(&path, &instructions).unwrap();
    assert_eq!(read_instructions(&path).unwrap(), instructions);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        to_jsonl(&instructions)
    );
    // Only the file is left behind: the temporary file was renamed into place.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn jsonl_row_forms() {
    let dir = tempfile::tempdir().unwrap();
    let text = concat!(
        "\u{feff}{\"prompt\": \"Say hi.\", \"category\": \"writing\", \"output\": \"ignored\"}\n",
        "\n",
        "   \r\n",
        "{\"id\": 7, \"instruction\": \"Translate nothing.\", \"input\": \"Keep it.\"}\r\n",
        "{\"instruction\": \"No input here.\", \"input\": \"\", \"category\": \"\", \"reference\": null}\n",
        "{\"id\": \"x\", \"prompt\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"metadata\": null}",
    );
    let path = write(dir.path(), "alpaca.json", text.as_bytes());
    let read = read_instructions(&path).unwrap();
    let expected = vec![
        Instruction {
            id: "alpaca-1".into(),
            messages: user("Say hi."),
            category: Some("writing".into()),
            reference: None,
            metadata: json!({}),
        },
        Instruction {
            id: "7".into(),
            messages: user("Translate nothing.\n\nKeep it."),
            category: None,
            reference: None,
            metadata: json!({}),
        },
        Instruction {
            id: "alpaca-3".into(),
            messages: user("No input here."),
            category: None,
            reference: None,
            metadata: json!({}),
        },
        Instruction {
            id: "x".into(),
            messages: user("Hi"),
            category: None,
            reference: None,
            metadata: json!({}),
        },
    ];
    assert_eq!(read, expected);
}

#[test]
fn the_bundled_files_read() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
    for file in ["train.jsonl", "eval.jsonl"] {
        let instructions = read_instructions(&data.join(file)).unwrap();
        assert!(!instructions.is_empty());
        assert!(
            instructions
                .iter()
                .all(|i| i.metadata["instruction_id_list"].is_array())
        );
    }
}

#[test]
fn jsonl_row_errors_name_the_line_and_the_problem() {
    let good = "{\"prompt\": \"ok\"}\n";
    let cases: &[(&str, &[&str])] = &[
        (
            "{\"category\": \"x\"}",
            &["has neither `prompt` nor `instruction`"],
        ),
        ("{\"prompt\": \"  \"}", &["`prompt` is empty"]),
        ("{\"prompt\": []}", &["`prompt` is empty"]),
        (
            "{\"prompt\": [{\"role\": \"system\", \"content\": \"x\"}]}",
            &["`prompt` has no user message"],
        ),
        (
            "{\"prompt\": [{\"role\": \"user\", \"content\": \"\"}]}",
            &["`prompt[0].content` is empty"],
        ),
        (
            "{\"prompt\": 3}",
            &["`prompt` must be a string or a list", "found a number"],
        ),
        (
            "{\"prompt\": [{\"role\": 1, \"content\": \"x\"}]}",
            &["`prompt[0].role` must be a string, found a number"],
        ),
        (
            "{\"prompt\": [{\"content\": \"x\"}]}",
            &["`prompt[0].role` is empty"],
        ),
        ("{\"prompt\": [\"hi\"]}", &["`prompt[0]` must be an object"]),
        (
            "{\"prompt\": [{\"role\": \"user\", \"content\": [1]}]}",
            &["`prompt[0].content` must be a string, found a list"],
        ),
        (
            "{\"prompt\": \"x\", \"id\": 1.5}",
            &["`id` must be a string or an integer"],
        ),
        ("{\"prompt\": \"x\", \"id\": true}", &["found true/false"]),
        ("{\"prompt\": \"x\", \"id\": \"\"}", &["`id` is empty"]),
        (
            "{\"prompt\": \"x\", \"category\": 2}",
            &["`category` must be a string"],
        ),
        (
            "{\"prompt\": \"x\", \"reference\": {}}",
            &["`reference` must be a string"],
        ),
        (
            "{\"prompt\": \"x\", \"metadata\": [1]}",
            &["`metadata` must be a JSON object, found a list"],
        ),
        (
            "{\"prompt\": \"x\", \"metadata\": \"{}\"}",
            &["`metadata` must be a JSON object"],
        ),
        ("{\"instruction\": 5}", &["`instruction` must be a string"]),
        (
            "{\"prompt\": \"x\", \"instruction\": \"y\"}",
            &["has both `prompt` and `instruction`"],
        ),
        (
            "{\"prompt\": \"x\", \"input\": \"y\"}",
            &["`input` is only read together with `instruction`"],
        ),
        ("[1, 2]", &["expected a JSON object, found a list"]),
    ];
    for (row, expected) in cases {
        let text = format!("{good}\n{row}\n");
        let error = jsonl_error("rows.jsonl", text.as_bytes());
        assert_contains(&error, &["line 3: "]);
        assert_contains(&error, expected);
    }
}

#[test]
fn invalid_json_and_utf8_name_the_line() {
    let error = jsonl_error("bad.jsonl", b"{\"prompt\": \"ok\"}\n{\"prompt\": \n");
    assert_contains(
        &error,
        &["bad.jsonl: line 2: not valid JSON: EOF while parsing"],
    );
    // The parser's reason is printed once, as the cause.
    assert_eq!(error.matches("EOF while parsing").count(), 1, "{error}");

    let error = jsonl_error(
        "bad.jsonl",
        b"{\"prompt\": \"ok\"}\n\n{\"prompt\": \"\xff\"}\n",
    );
    assert_contains(&error, &["bad.jsonl: line 3: not valid UTF-8"]);
}

#[test]
fn duplicate_ids_name_both_lines() {
    let text = "{\"id\": \"a\", \"prompt\": \"x\"}\n{\"id\": \"b\", \"prompt\": \"y\"}\n\n{\"id\": \"a\", \"prompt\": \"z\"}\n";
    let error = jsonl_error("dup.jsonl", text.as_bytes());
    assert_contains(
        &error,
        &["dup.jsonl: line 4: id `a` is already used by line 1"],
    );
    // A default id counts too: row 2 of `dup.jsonl` is `dup-2`.
    let text = "{\"prompt\": \"x\"}\n{\"prompt\": \"y\"}\n{\"id\": \"dup-2\", \"prompt\": \"z\"}\n";
    let error = jsonl_error("dup.jsonl", text.as_bytes());
    assert_contains(&error, &["line 3: id `dup-2` is already used by line 2"]);
    let text = "{\"id\": 1, \"prompt\": \"x\"}\n{\"id\": \"1\", \"prompt\": \"y\"}\n";
    let error = jsonl_error("dup.jsonl", text.as_bytes());
    assert_contains(&error, &["line 2: id `1` is already used by line 1"]);
}

#[test]
fn file_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.jsonl");
    let error = chain(&read_instructions(&missing).unwrap_err());
    assert!(
        error.starts_with(&format!("cannot read {}: ", missing.display())),
        "{error}"
    );
    assert_eq!(error.matches("No such file").count(), 1, "{error}");

    let csv = write(dir.path(), "set.csv", b"prompt\nhi\n");
    let error = read_instructions(&csv).unwrap_err();
    assert!(matches!(error, DataError::UnknownFormat { .. }));
    assert_contains(&error.to_string(), &["set.csv", ".jsonl", ".parquet"]);

    let fake = write(dir.path(), "fake.parquet", b"not parquet at all");
    let error = chain(&read_instructions(&fake).unwrap_err());
    assert_contains(&error, &["fake.parquet: not a readable Parquet file: "]);

    // An empty file is an empty set, not an error.
    let empty = write(dir.path(), "empty.jsonl", b"\n\n");
    assert!(read_instructions(&empty).unwrap().is_empty());
}

// ---- Parquet ----

fn column<A: arrow_array::Array + 'static>(array: A) -> ArrayRef {
    Arc::new(array)
}

/// A `list<struct<role, content>>` column.
fn conversations(rows: &[Option<&[(&str, &str)]>]) -> ArrayRef {
    let fields = Fields::from(vec![
        Field::new("role", DataType::Utf8, false),
        Field::new("content", DataType::Utf8, false),
    ]);
    let mut builder = ListBuilder::new(StructBuilder::from_fields(fields, 0));
    for row in rows {
        match row {
            None => builder.append(false),
            Some(messages) => {
                for (role, content) in *messages {
                    let messages = builder.values();
                    messages
                        .field_builder::<StringBuilder>(0)
                        .unwrap()
                        .append_value(role);
                    messages
                        .field_builder::<StringBuilder>(1)
                        .unwrap()
                        .append_value(content);
                    messages.append(true);
                }
                builder.append(true);
            }
        }
    }
    Arc::new(builder.finish())
}

fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>, compression: Compression) {
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let properties = WriterProperties::builder()
        .set_compression(compression)
        .build();
    let mut writer = ArrowWriter::try_new(
        File::create(path).unwrap(),
        batch.schema(),
        Some(properties),
    )
    .unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

fn parquet_error(name: &str, columns: Vec<(&str, ArrayRef)>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    write_parquet(&path, columns, Compression::SNAPPY);
    let text = chain(&read_instructions(&path).expect_err("the file is invalid"));
    assert!(text.contains(&path.display().to_string()), "{text}");
    text
}

#[test]
fn parquet_chat_rows_round_trip_with_zstd() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.parquet");
    let metadata = r#"{"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}"#;
    write_parquet(
        &path,
        vec![
            ("id", column(StringArray::from(vec!["a", "b"]))),
            (
                "prompt",
                conversations(&[
                    Some(&[
                        ("system", "Be brief."),
                        ("user", "Name a colour."),
                        ("assistant", "Blue."),
                        ("user", "Another, with a comma, please."),
                    ]),
                    Some(&[("user", "Ünïcödé \"quotes\"\nand lines")]),
                ]),
            ),
            (
                "category",
                column(StringArray::from(vec![Some("general-knowledge"), None])),
            ),
            (
                "reference",
                column(StringArray::from(vec![Some("Red"), None])),
            ),
            (
                "metadata",
                column(StringArray::from(vec![Some(metadata), None])),
            ),
            ("unused", column(Int64Array::from(vec![1, 2]))),
        ],
        Compression::ZSTD(ZstdLevel::default()),
    );
    assert_eq!(read_instructions(&path).unwrap(), sample_instructions());
}

#[test]
fn parquet_alpaca_rows_with_snappy_and_struct_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alpaca.parquet");
    let source = Arc::new(Field::new("source", DataType::Utf8, true));
    let metadata = StructArray::from(vec![(
        source,
        column(StringArray::from(vec![Some("web"), None, Some("book")])),
    )]);
    write_parquet(
        &path,
        vec![
            (
                "id",
                column(Int64Array::from(vec![Some(10), None, Some(12)])),
            ),
            (
                "instruction",
                column(StringArray::from(vec![
                    "Sum 2 and 3.",
                    "Say hi.",
                    "Shorten this.",
                ])),
            ),
            (
                "input",
                column(StringArray::from(vec![
                    None,
                    Some(""),
                    Some("A long text."),
                ])),
            ),
            ("metadata", column(metadata)),
        ],
        Compression::SNAPPY,
    );
    let read = read_instructions(&path).unwrap();
    let expected = vec![
        Instruction {
            id: "10".into(),
            messages: user("Sum 2 and 3."),
            category: None,
            reference: None,
            metadata: json!({"source": "web"}),
        },
        Instruction {
            id: "alpaca-2".into(),
            messages: user("Say hi."),
            category: None,
            reference: None,
            metadata: json!({"source": null}),
        },
        Instruction {
            id: "12".into(),
            messages: user("Shorten this.\n\nA long text."),
            category: None,
            reference: None,
            metadata: json!({"source": "book"}),
        },
    ];
    assert_eq!(read, expected);
}

#[test]
fn parquet_string_prompts_and_many_batches() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.parquet");
    let prompts: Vec<String> = (0..2500).map(|i| format!("Question {i}?")).collect();
    write_parquet(
        &path,
        vec![("prompt", column(StringArray::from(prompts.clone())))],
        Compression::UNCOMPRESSED,
    );
    let read = read_instructions(&path).unwrap();
    assert_eq!(read.len(), 2500);
    assert_eq!(read[2499].id, "big-2500");
    assert_eq!(read[2499].messages, user(&prompts[2499]));
}

#[test]
fn parquet_row_errors_name_the_row() {
    let error = parquet_error(
        "rows.parquet",
        vec![
            ("prompt", column(StringArray::from(vec![Some("ok"), None]))),
            (
                "instruction",
                column(StringArray::from(vec![None::<&str>, None])),
            ),
        ],
    );
    assert_contains(
        &error,
        &["rows.parquet: row 2: has neither `prompt` nor `instruction`"],
    );

    let error = parquet_error(
        "rows.parquet",
        vec![
            ("prompt", column(StringArray::from(vec!["ok", "fine"]))),
            (
                "metadata",
                column(StringArray::from(vec!["{}", "{not json"])),
            ),
        ],
    );
    assert_contains(
        &error,
        &["row 2: `metadata` is not valid JSON: key must be a string"],
    );

    let error = parquet_error(
        "rows.parquet",
        vec![
            ("prompt", column(StringArray::from(vec!["ok"]))),
            ("metadata", column(StringArray::from(vec!["[1]"]))),
        ],
    );
    assert_contains(
        &error,
        &["row 1: `metadata` must be a JSON object, found a list"],
    );

    let error = parquet_error(
        "rows.parquet",
        vec![("prompt", column(Int64Array::from(vec![1])))],
    );
    assert_contains(
        &error,
        &[
            "row 1: `prompt` must be a string or a list",
            "found a number",
        ],
    );

    let error = parquet_error(
        "rows.parquet",
        vec![(
            "prompt",
            conversations(&[Some(&[("user", "x")]), Some(&[("system", "y")])]),
        )],
    );
    assert_contains(&error, &["row 2: `prompt` has no user message"]);

    let error = parquet_error(
        "rows.parquet",
        vec![(
            "prompt",
            column(BinaryArray::from(vec![
                b"fine".as_ref(),
                b"\xff\xfe".as_ref(),
            ])),
        )],
    );
    assert_contains(&error, &["row 2: `prompt` is not valid UTF-8"]);

    let error = parquet_error(
        "rows.parquet",
        vec![
            ("id", column(StringArray::from(vec!["a", "b", "a"]))),
            ("prompt", column(StringArray::from(vec!["x", "y", "z"]))),
        ],
    );
    assert_contains(
        &error,
        &["rows.parquet: row 3: id `a` is already used by row 1"],
    );
}
