//! Property tests of the manifest parser: any text, and the example manifests mutated (a value
//! replaced by an arbitrary TOML value, a key removed or added, text spliced in or cut out), give
//! a manifest or an error that says where — a key, or for text that is not TOML a line — and never
//! a panic.
//!
//! Each property runs 256 cases by default (a few seconds in release); run longer with e.g.
//! `PROPTEST_CASES=20000 cargo test --release -p ponder-manifest --test properties`.

use std::path::{Path, PathBuf};

use ponder_manifest::{Manifest, ManifestError};
use proptest::prelude::*;
use proptest::sample::Index;

fn manifest_file() -> &'static Path {
    Path::new("/runs/fuzz/ponder.toml")
}

/// The example manifests of the repository, as text (each parses).
fn examples() -> &'static [String] {
    static EXAMPLES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    EXAMPLES.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let mut texts: Vec<String> = std::fs::read_dir(&dir)
            .expect("examples/")
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
            .map(|path| std::fs::read_to_string(path).expect("example manifest"))
            .collect();
        texts.sort();
        assert!(
            !texts.is_empty(),
            "no example manifests in {}",
            dir.display()
        );
        for text in &texts {
            Manifest::parse(text, manifest_file()).expect("the examples are valid");
        }
        texts
    })
}

/// Every key the manifest knows, so that mutations hit real keys often.
const KNOWN_KEYS: &[&str] = &[
    "run",
    "out",
    "seed",
    "iterations",
    "on_row_failure",
    "model",
    "path",
    "device",
    "data",
    "train",
    "eval",
    "per_iteration",
    "validation",
    "validation_size",
    "shuffle",
    "sample",
    "k",
    "temperature",
    "top_p",
    "max_new_tokens",
    "prefill",
    "thought_budget",
    "batch_prompts",
    "dpo",
    "beta",
    "loss",
    "nll",
    "lr",
    "epochs",
    "batch_size",
    "save_every",
    "plugins",
    "template",
    "judge",
    "selector",
    "wasm",
    "native",
    "trust",
    "grant",
    "config",
    "limits",
    "memory_mib",
    "fuel",
    "timeout_ms",
    "call_timeout_ms",
    "model_requests",
    "generated_tokens",
    "model_batch",
    "choices",
    "models",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(KNOWN_KEYS).prop_map(str::to_string),
        1 => "[a-z_]{1,12}",
        1 => any::<String>(),
    ]
}

/// Numbers at and around the limits of every numeric type the manifest reads.
fn extreme_integer() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(i64::MIN),
        Just(i64::MAX),
        Just(-1),
        Just(0),
        Just(1),
        Just(i64::from(u32::MAX)),
        Just(i64::from(u32::MAX) + 1),
        Just(4096),
        Just(4097),
        any::<i64>(),
    ]
}

fn extreme_float() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::MAX),
        Just(f64::MIN),
        Just(1e308),
        Just(-1e308),
        Just(f64::MIN_POSITIVE),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::NAN),
        Just(0.0),
        Just(-0.0),
        Just(f64::from(f32::MAX) * 2.0),
        any::<f64>(),
    ]
}

fn text_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        prop::sample::select(
            &[
                "cpu",
                "wgpu",
                "cuda",
                "cuda:",
                "cuda:-1",
                "cuda:99999999999",
                "stop",
                "skip",
                "native",
                "sandboxed",
                "models",
                "dpo",
                "ipo"
            ][..]
        )
        .prop_map(str::to_string),
        any::<String>(),
    ]
}

/// Any TOML value: leaves at the extremes, arrays and tables nested a few levels.
fn toml_value() -> impl Strategy<Value = toml::Value> {
    let leaf = prop_oneof![
        extreme_integer().prop_map(toml::Value::Integer),
        extreme_float().prop_map(toml::Value::Float),
        any::<bool>().prop_map(toml::Value::Boolean),
        text_value().prop_map(toml::Value::String),
    ];
    leaf.prop_recursive(4, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(toml::Value::Array),
            prop::collection::vec((key(), inner), 0..5)
                .prop_map(|entries| toml::Value::Table(entries.into_iter().collect())),
        ]
    })
}

/// A change to a parsed example manifest.
#[derive(Debug, Clone)]
enum Mutation {
    /// Replaces the value at the chosen key (a table or a leaf).
    Replace(Index, toml::Value),
    /// Removes the chosen key.
    Remove(Index),
    /// Adds a key to the chosen table (the top level when the choice is a leaf).
    Insert(Index, String, toml::Value),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), toml_value()).prop_map(|(at, value)| Mutation::Replace(at, value)),
        any::<Index>().prop_map(Mutation::Remove),
        (any::<Index>(), key(), toml_value())
            .prop_map(|(at, key, value)| Mutation::Insert(at, key, value)),
    ]
}

/// The dotted paths of every key of `table`, tables before what they hold.
fn key_paths(table: &toml::Table, prefix: &[String], out: &mut Vec<Vec<String>>) {
    for (key, value) in table {
        let mut path = prefix.to_vec();
        path.push(key.clone());
        out.push(path.clone());
        if let toml::Value::Table(inner) = value {
            key_paths(inner, &path, out);
        }
    }
}

fn table_at<'t>(table: &'t mut toml::Table, path: &[String]) -> &'t mut toml::Table {
    path.iter()
        .fold(table, |table, key| match table.get_mut(key) {
            Some(toml::Value::Table(inner)) => inner,
            _ => unreachable!("key_paths lists tables before their keys"),
        })
}

/// Applies `mutation` to `table`; returns the top-level key it touched.
fn apply(table: &mut toml::Table, mutation: &Mutation) -> String {
    let mut paths = Vec::new();
    key_paths(table, &[], &mut paths);
    let pick = |at: &Index| at.get(&paths).clone();
    match mutation {
        Mutation::Replace(at, value) => {
            let path = pick(at);
            let (last, parent) = path.split_last().expect("non-empty path");
            table_at(table, parent).insert(last.clone(), value.clone());
            path[0].clone()
        }
        Mutation::Remove(at) => {
            let path = pick(at);
            let (last, parent) = path.split_last().expect("non-empty path");
            table_at(table, parent).remove(last);
            path[0].clone()
        }
        Mutation::Insert(at, key, value) => {
            let path = pick(at);
            let (last, parent) = path.split_last().expect("non-empty path");
            let is_table = matches!(
                table_at(table, parent).get(last),
                Some(toml::Value::Table(_))
            );
            let holder = if is_table { path } else { Vec::new() };
            table_at(table, &holder).insert(key.clone(), value.clone());
            holder.first().unwrap_or(key).clone()
        }
    }
}

/// The error names where: a key, or (malformed TOML) a line.
fn assert_says_where(error: &ManifestError, text: &str) {
    match error {
        ManifestError::Parse { key, line, .. } => assert!(
            !key.is_empty() || *line >= 1,
            "a parse error without key or line: {error}\n--- manifest ---\n{text}"
        ),
        ManifestError::Invalid { key, .. } => {
            assert!(!key.is_empty(), "an invalid value without its key: {error}")
        }
        ManifestError::Read { .. } => panic!("parse does not read files: {error}"),
    }
}

proptest! {
    // 256 cases (proptest's default, or PROPTEST_CASES); a failure is not persisted to a file:
    // a crash found becomes a named regression test instead.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_text_is_a_manifest_or_an_error_that_says_where(text in any::<String>()) {
        if let Err(error) = Manifest::parse(&text, manifest_file()) {
            assert_says_where(&error, &text);
        }
    }

    #[test]
    fn toml_shaped_text_is_a_manifest_or_an_error_that_says_where(
        text in r#"((\[{1,2}[a-z._]{0,16}\]{1,2}|[a-z_."]{1,16} *= *([0-9eE.+_-]{1,12}|"[^"\n]{0,12}"|\[[0-9a-z ,"]{0,12}\]|\{[a-z =0-9,"]{0,16}\}|true|nan|inf))?\n){0,12}"#
    ) {
        if let Err(error) = Manifest::parse(&text, manifest_file()) {
            assert_says_where(&error, &text);
        }
    }

    #[test]
    fn a_mutated_example_is_a_manifest_or_an_error_naming_the_key(
        example in any::<Index>(),
        mutation in mutation(),
    ) {
        let example = example.get(examples());
        let mut table: toml::Table = toml::from_str(example).expect("example TOML");
        let touched = apply(&mut table, &mutation);
        // Some values have no TOML text (a table inside an array of values, say): skip those.
        let Ok(text) = toml::to_string(&table) else { return Ok(()) };
        if let Err(error) = Manifest::parse(&text, manifest_file()) {
            assert_says_where(&error, &text);
            let message = error.to_string();
            prop_assert!(
                message.contains(&touched),
                "the error does not name `{}` that the mutation touched: {}\n--- manifest ---\n{}",
                touched, message, text
            );
        }
    }

    #[test]
    fn an_example_with_text_spliced_in_or_cut_out_is_a_manifest_or_an_error_that_says_where(
        example in any::<Index>(),
        at in any::<Index>(),
        cut in 0usize..40,
        insert in prop_oneof![any::<String>(), "[\\[\\]{}=\"'#\n ,.a-z0-9]{0,8}"],
    ) {
        let example = example.get(examples());
        let boundaries: Vec<usize> = example.char_indices().map(|(at, _)| at).collect();
        let start = *at.get(&boundaries);
        let end = boundaries
            .iter()
            .copied()
            .find(|&boundary| boundary >= start + cut)
            .unwrap_or(example.len());
        let text = format!("{}{insert}{}", &example[..start], &example[end..]);
        if let Err(error) = Manifest::parse(&text, manifest_file()) {
            assert_says_where(&error, &text);
        }
    }
}

/// Nesting far deeper than any manifest needs must be an error (or a value), not a stack
/// overflow of the TOML parser.
#[test]
fn deeply_nested_values_do_not_overflow_the_stack() {
    for depth in [1_000, 100_000] {
        let arrays = format!(
            "[plugins.judge]\nwasm = \"judge.wasm\"\nconfig = {{ deep = {}{} }}\n",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let tables = format!(
            "[plugins.judge]\nwasm = \"judge.wasm\"\nconfig = {}1{}\n",
            "{ a = ".repeat(depth),
            " }".repeat(depth)
        );
        for text in [arrays, tables] {
            if let Err(error) = Manifest::parse(&text, manifest_file()) {
                assert_says_where(&error, &text);
            }
        }
    }
}

/// Non-finite floats in a plugin's `config` have no JSON form: an error naming the key.
#[test]
fn non_finite_floats_in_plugin_config_name_the_key() {
    for value in ["nan", "inf", "-inf"] {
        let text =
            format!("[plugins.judge]\nwasm = \"judge.wasm\"\nconfig = {{ rho = {value} }}\n");
        match Manifest::parse(&text, manifest_file()) {
            Ok(manifest) => {
                let judge = manifest.plugins.judge.expect("judge");
                assert!(judge.config["rho"].is_null() || judge.config["rho"].is_number());
            }
            Err(error) => assert!(error.to_string().contains("plugins.judge"), "{error}"),
        }
    }
}
