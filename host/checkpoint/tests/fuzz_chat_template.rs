//! Property tests of chat-template rendering (issue #11, item 4): templates come from model
//! files, so random templates from a small Jinja grammar (loops, nested loops, recursion,
//! macros, string growth, filters, Python string methods) must render or fail with a
//! `chat template:` error promptly: never panic, hang or exhaust memory.
//!
//! Runs 256 cases per property by default (a case may spend the whole work budget);
//! `PROPTEST_CASES=5000 cargo test --release -p ponder-checkpoint --test fuzz_chat_template`
//! fuzzes longer.

mod common;

use std::time::Instant;

use common::{assert_prompt, proptest_config};
use ponder_checkpoint::{ChatTemplate, Message};
use proptest::prelude::*;

/// Expressions: small and huge numbers, strings, message fields, growth and recursion.
fn expression() -> impl Strategy<Value = String> {
    let leaf = prop::sample::select(vec![
        "1",
        "100000",
        "99999999",
        "-1",
        "'x'",
        "'ab'",
        "ns.s",
        "messages[0].content",
        "messages[-1]['role']",
        "messages | length",
        "bos_token",
        "eos_token",
        "add_generation_prompt",
        "loop.index",
        "undefined_name",
        "range(100000)",
        "none",
        "[1, 2, 3]",
        "{'a': 1}",
        "f(1)",
        "g()",
    ])
    .prop_map(str::to_string);
    leaf.prop_recursive(3, 16, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} ~ {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} * {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} + {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("[{a}, {b}]")),
            (
                inner.clone(),
                prop::sample::select(vec![
                    "upper",
                    "length",
                    "list",
                    "join",
                    "trim",
                    "tojson",
                    "reverse",
                    "sort",
                    "string",
                    "first",
                    "last",
                    "unique",
                    "indent(1000)",
                    "center(100000)",
                    "replace('x', 'xxxxxxxx')",
                    "batch(3)",
                    "items",
                    "default('d')",
                ])
            )
                .prop_map(|(a, filter)| format!("({a} | {filter})")),
            (
                inner.clone(),
                prop::sample::select(vec![
                    "strip()",
                    "upper()",
                    "split()",
                    "startswith('x')",
                    "replace('x', 'xxxxxxxxxxxxxxxx')",
                    "format(1, 2)",
                    "splitlines()",
                    "title()",
                    "lstrip('x')",
                    "count('x')",
                ])
            )
                .prop_map(|(a, method)| format!("{a}.{method}")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("({a} if {b} else none)")),
        ]
    })
}

/// What loops run over: small, large and huge ranges, the messages, strings and lists.
fn iterable() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "range(3)",
            "range(1000)",
            "range(100000)",
            "messages",
            "ns.s",
            "[1, 2, 3]",
            "ns.s * 1000",
        ])
        .prop_map(str::to_string),
        expression(),
    ]
}

/// Statements: text, output, loops, conditions, assignments, macro definitions and calls.
fn statements() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        prop::sample::select(vec![
            "text ",
            "\n",
            "{# c #}",
            "{% set ns.s = ns.s ~ ns.s %}"
        ])
        .prop_map(str::to_string),
        expression().prop_map(|e| format!("{{{{ {e} }}}}")),
        expression().prop_map(|e| format!("{{% set v = {e} %}}")),
        Just("{{ raise_exception('no') }}".to_string()),
    ];
    leaf.prop_recursive(3, 24, 3, |inner| {
        prop_oneof![
            (iterable(), inner.clone())
                .prop_map(|(e, body)| format!("{{% for i in {e} %}}{body}{{% endfor %}}")),
            (iterable(), iterable(), inner.clone()).prop_map(|(a, b, body)| format!(
                "{{% for i in {a} %}}{{% for j in {b} %}}{body}{{% endfor %}}{{% endfor %}}"
            )),
            (prop::sample::select(vec![2, 10, 1000]), inner.clone()).prop_map(|(depth, body)| {
                format!(
                    "{{% macro r(n) %}}{{% if n < {depth} %}}{{{{ r(n + 1) }}}}{{% endif %}}{body}{{% endmacro %}}{{{{ r(0) }}}}"
                )
            }),
            (expression(), inner.clone()).prop_map(|(e, body)| format!(
                "{{% for i in {e} recursive %}}{body}{{{{ loop(i) }}}}{{% endfor %}}"
            )),
            (expression(), inner.clone(), inner.clone()).prop_map(|(e, a, b)| format!(
                "{{% if {e} %}}{a}{{% else %}}{b}{{% endif %}}"
            )),
            proptest::collection::vec(inner.clone(), 1..3).prop_map(|parts| parts.concat()),
            inner
                .clone()
                .prop_map(|body| format!("{{% macro h(n) %}}{body}{{{{ h(n) }}}}{{% endmacro %}}{{{{ h(1) }}}}")),
            inner.prop_map(|body| format!(
                "{{% for m in messages %}}{{% if loop.first %}}{body}{{% endif %}}{{{{ m.content }}}}{{% endfor %}}{{% if add_generation_prompt %}}go{{% endif %}}"
            )),
        ]
    })
}

/// A template: a namespace and two macros (one self-recursive), then random statements.
fn template() -> impl Strategy<Value = String> {
    (statements(), expression()).prop_map(|(body, e)| {
        format!(
            "{{% set ns = namespace(s='ab') %}}{{% macro f(n) %}}{{{{ f(n) ~ {e} }}}}{{% endmacro %}}{{% macro g() %}}{{{{ ns.s }}}}{{% endmacro %}}{body}"
        )
    })
}

fn render(source: &str, messages: &[Message]) {
    let started = Instant::now();
    let result = ChatTemplate::new(source, Some("<s>"), Some("</s>"))
        .and_then(|template| template.render(messages, true));
    if let Err(error) = result {
        let message = error.to_string();
        assert!(message.starts_with("chat template: "), "{message}");
    }
    assert_prompt(started, 10, source);
}

proptest! {
    #![proptest_config(proptest_config(256))]

    #[test]
    fn random_templates_render_or_fail_promptly(source in template()) {
        render(&source, &[Message::new("system", "be brief"), Message::new("user", "hi x")]);
    }

    #[test]
    fn random_template_text_never_panics(
        pieces in proptest::collection::vec(
            prop::sample::select(vec![
                "{{", "}}", "{%", "%}", "{#", "#}", "for", "in", "endfor", "if", "endif",
                "macro", "endmacro", "set", "x", "(", ")", "[", "]", "'", "\"", "|", "~", "*",
                " ", "recursive", "loop", "messages", "range(99999)", "-", "+", "call",
                "endcall", "caller()", "include", "import", "extends", "block", "raw",
            ]),
            0..40,
        ),
    ) {
        render(&pieces.concat(), &[Message::new("user", "hi")]);
    }
}
