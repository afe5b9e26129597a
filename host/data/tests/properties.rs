//! Property tests of the JSONL reader: a file of good rows with one arbitrary line among them
//! (bytes that are not UTF-8, JSON of any shape, numbers past every limit, nesting past the
//! parser's limit, rows with fields of the wrong type) reads, or fails with an error that names
//! the file and that line — never a panic.
//!
//! Each property runs 256 cases by default (a few seconds in release); run longer with e.g.
//! `PROPTEST_CASES=20000 cargo test --release -p ponder-data --test properties`.

use std::path::Path;

use ponder_data::read_instructions;
use proptest::prelude::*;
use serde_json::{Value, json};

fn good_row(index: usize) -> String {
    json!({"id": format!("good-{index}"), "prompt": [{"role": "user", "content": "Name a prime."}]})
        .to_string()
}

/// Numbers a JSON parser may choke on, as JSON text.
fn extreme_number() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("1e308".to_string()),
        Just("-1e308".to_string()),
        Just("1e309".to_string()),
        Just("-1e400".to_string()),
        Just("4.9e-324".to_string()),
        Just("1e-400".to_string()),
        Just("18446744073709551615".to_string()),
        Just("18446744073709551616".to_string()),
        Just("-9223372036854775809".to_string()),
        Just("123456789012345678901234567890123456789".to_string()),
        Just("-0".to_string()),
        "-?[0-9]{1,400}(\\.[0-9]{1,40})?([eE][+-]?[0-9]{1,6})?",
    ]
}

/// Any JSON value, leaves at the extremes.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop_oneof![
            Just(String::new()),
            Just("   ".to_string()),
            any::<String>()
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        prop::sample::select(
                            &["role", "content", "id", "prompt", "instruction"][..]
                        )
                        .prop_map(str::to_string),
                        any::<String>()
                    ],
                    inner
                ),
                0..5
            )
            .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

/// A message that may be right or wrong in any field.
fn message() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => (
            prop::sample::select(&["user", "system", "assistant", "", "USER"][..]),
            any::<String>()
        )
            .prop_map(|(role, content)| json!({"role": role, "content": content})),
        1 => json_value(),
    ]
}

/// An object shaped like a row, its fields present or absent, right or wrong.
fn row_like() -> impl Strategy<Value = Value> {
    let field = |values: BoxedStrategy<Value>| prop::option::of(values);
    (
        field(prop_oneof![Just(json!("good-1")), json_value()].boxed()),
        field(
            prop::collection::vec(message(), 0..4)
                .prop_map(Value::Array)
                .boxed(),
        ),
        field(json_value().boxed()),
        field(json_value().boxed()),
        field(any::<String>().prop_map(Value::String).boxed()),
        field(json_value().boxed()),
        field(json_value().boxed()),
    )
        .prop_map(
            |(id, prompt, instruction, input, category, reference, metadata)| {
                let fields = [
                    ("id", id),
                    ("prompt", prompt),
                    ("instruction", instruction),
                    ("input", input),
                    ("category", category),
                    ("reference", reference),
                    ("metadata", metadata),
                ];
                Value::Object(
                    fields
                        .into_iter()
                        .filter_map(|(name, value)| value.map(|value| (name.to_string(), value)))
                        .collect(),
                )
            },
        )
}

/// One line of a JSONL file, as bytes without a line break.
fn arbitrary_line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => row_like().prop_map(|row| row.to_string().into_bytes()),
        1 => json_value().prop_map(|value| value.to_string().into_bytes()),
        1 => extreme_number().prop_map(|number| {
            format!(r#"{{"prompt": "Name a prime.", "metadata": {{"n": {number}}}}}"#).into_bytes()
        }),
        1 => (1usize..2000).prop_map(|depth| {
            let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            format!(r#"{{"prompt": "Name a prime.", "metadata": {{"deep": {nested}}}}}"#)
                .into_bytes()
        }),
        1 => any::<String>().prop_map(String::into_bytes),
        1 => any::<Vec<u8>>(),
    ]
    .prop_map(|mut bytes| {
        // One line: a line break inside would make it two.
        bytes
            .iter_mut()
            .filter(|byte| **byte == b'\n')
            .for_each(|byte| *byte = b' ');
        bytes
    })
}

fn write_file(dir: &Path, lines: &[Vec<u8>]) -> std::path::PathBuf {
    let path = dir.join("rows.jsonl");
    std::fs::write(&path, lines.join(&b'\n')).expect("write rows");
    path
}

proptest! {
    // 256 cases (proptest's default, or PROPTEST_CASES); a failure is not persisted to a file:
    // a crash found becomes a named regression test instead.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn one_arbitrary_line_among_good_rows_reads_or_is_named(
        before in 0usize..4,
        after in 0usize..4,
        line in arbitrary_line(),
    ) {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut lines: Vec<Vec<u8>> = (0..before).map(|index| good_row(index).into_bytes()).collect();
        lines.push(line);
        lines.extend((before..before + after).map(|index| good_row(index).into_bytes()));
        let path = write_file(dir.path(), &lines);
        match read_instructions(&path) {
            Ok(instructions) => prop_assert!(instructions.len() >= before + after),
            Err(error) => {
                let text = error.to_string();
                prop_assert!(text.contains(&path.display().to_string()), "{}", text);
                let named = format!("line {}", before + 1);
                prop_assert!(text.contains(&named), "`{}` not in: {}", named, text);
            }
        }
    }

    #[test]
    fn any_bytes_read_or_name_a_line_of_the_file(bytes in any::<Vec<u8>>()) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("rows.jsonl");
        std::fs::write(&path, &bytes).expect("write rows");
        if let Err(error) = read_instructions(&path) {
            let text = error.to_string();
            let lines = bytes.split(|&byte| byte == b'\n').count();
            let named = (1..=lines).any(|line| text.contains(&format!("line {line}")));
            prop_assert!(named, "no line of 1..={} named: {}", lines, text);
        }
    }
}

/// JSON nested past serde_json's recursion limit is an error naming the line, not a stack
/// overflow.
#[test]
fn nesting_far_past_the_parser_limit_is_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let depth = 1_000_000;
    let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let line = format!(r#"{{"prompt": "Name a prime.", "metadata": {{"deep": {nested}}}}}"#);
    let path = write_file(dir.path(), &[good_row(0).into_bytes(), line.into_bytes()]);
    let error = read_instructions(&path).expect_err("too deep");
    assert!(error.to_string().contains("line 2"), "{error}");
}
