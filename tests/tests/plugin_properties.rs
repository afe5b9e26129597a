//! Property tests of every first-party plugin on arbitrary inputs: any Unicode, numbers at the
//! limits of f64 (finite), empty and long lists, metadata of any shape, and judge models that
//! answer anything. Natively (the plugin crates' logic, many cases) and once more through the
//! real WebAssembly components in `target/plugins/` and the plugin runtime (few cases: each is
//! a wasm call).
//!
//! What must hold: no panic (natively) and no trap (in the sandbox); outputs the host accepts
//! (one outcome per request, one finite score per response, pairs in range with positive finite
//! weights); a plugin may refuse an input only with its own error.
//!
//! The native properties run 256 cases each by default and the component property 24 (together
//! about 10 s in release on two cores); run longer with e.g. `PROPTEST_CASES=20000 cargo test
//! --release -p ponder-e2e --test plugin_properties` (the component property runs a tenth of
//! that). The components come from scripts/build-plugins.sh, as for every test of this crate.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use ponder_e2e::plugin;
use ponder_manifest::{PluginSpec, Role};
use ponder_plugin_runtime::types::{Candidate, JudgeRequest, Message, Parsed};
use ponder_plugin_runtime::{
    Cause, LogLevel, LogSink, Plugin, PluginError, PluginRuntime, RuntimeOptions,
    validate_judgments, validate_pairs,
};
use ponder_sdk::models::{ChoiceRequest, GenerateRequest, ModelAccessError, Models, RewardRequest};
use ponder_sdk::{Judge, PairSelector, ThoughtTemplate};
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use serde_json::{Value, json};

/// `default` cases unless `PROPTEST_CASES` says otherwise (divided by `divisor`, for the wasm
/// properties); failures are not persisted to files (a crash found becomes a named regression
/// test instead).
fn config(default: u32, divisor: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse::<u32>().ok());
    ProptestConfig {
        cases: cases.map_or(default, |cases| (cases / divisor).max(1)),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies

/// The separators and markers the first-party templates and judges look for, so that arbitrary
/// text hits their edge cases (a separator at the very end, twice, split by multi-byte text).
const FRAGMENTS: &[&str] = &[
    "Here is my thought process:",
    "Here is my response:",
    "Here's my thought process:",
    "Here's my response:",
    "<R>",
    "</R>",
    "<thought>",
    "</thought>",
    "Answer:",
    "\n",
    "\n\n",
    " ",
    "*",
    "* ",
    "P.S.",
    "SECTION 1",
    "<<title>>",
    "[[A]]",
    "[[B]]",
    "\"",
    "{",
    "}",
    "ß",
    "İ",
    "ﬁ",
    "\u{0301}",
    "\u{200d}",
    "\u{feff}",
    "👩‍👩‍👧",
    "\u{10ffff}",
    "\r\n",
];

/// Arbitrary Unicode, or text stitched from [`FRAGMENTS`] and arbitrary pieces.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just(String::new()),
        3 => any::<String>(),
        4 => prop::collection::vec(
            prop_oneof![
                3 => prop::sample::select(FRAGMENTS).prop_map(str::to_string),
                1 => any::<String>(),
                1 => "[a-zA-Z ,.!?]{0,12}",
            ],
            0..16
        )
        .prop_map(|pieces| pieces.concat()),
        1 => (prop::sample::select(FRAGMENTS), 0usize..2000)
            .prop_map(|(piece, times)| piece.repeat(times)),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    (
        prop_oneof![
            4 => prop::sample::select(&["user", "system", "assistant"][..]).prop_map(str::to_string),
            1 => any::<String>(),
        ],
        text(),
    )
        .prop_map(|(role, content)| Message { role, content })
}

/// An instruction: usually with a user message, sometimes without (a template may refuse it).
fn instruction() -> impl Strategy<Value = Vec<Message>> {
    prop_oneof![
        3 => (prop::collection::vec(message(), 0..4), text())
            .prop_map(|(mut messages, last)| {
                messages.push(Message { role: "user".into(), content: last });
                messages
            }),
        1 => prop::collection::vec(message(), 0..4),
    ]
}

/// Finite numbers at the limits of f64.
fn extreme_finite() -> impl Strategy<Value = f64> {
    prop_oneof![
        prop::sample::select(
            &[
                f64::MAX,
                f64::MIN,
                1e308,
                -1e308,
                f64::MIN_POSITIVE,
                -f64::MIN_POSITIVE,
                5e-324,
                0.0,
                -0.0,
                1.0,
                -1.0
            ][..]
        ),
        any::<f64>().prop_filter("finite", |value| value.is_finite()),
    ]
}

/// Any JSON value, with numbers at the extremes and the keys IFEval kwargs use.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        prop::sample::select(&[i64::MIN, i64::MAX, -1, 0, 1, 2, 3, 1000][..]).prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        extreme_finite().prop_map(Value::from),
        text().prop_map(Value::String),
        prop::sample::select(
            &[
                "at least",
                "at most",
                "less than",
                "exactly",
                "en",
                "",
                "***",
                "\n\n"
            ][..]
        )
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((kwarg_key(), inner), 0..4)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

const CONSTRAINT_IDS: &[&str] = &[
    "length_constraints:number_words",
    "length_constraints:number_sentences",
    "length_constraints:number_paragraphs",
    "length_constraints:nth_paragraph_first_word",
    "keywords:existence",
    "keywords:forbidden_words",
    "keywords:frequency",
    "keywords:letter_frequency",
    "detectable_format:number_bullet_lists",
    "detectable_format:number_highlighted_sections",
    "detectable_format:multiple_sections",
    "detectable_format:title",
    "detectable_format:json_format",
    "detectable_format:constrained_response",
    "detectable_content:number_placeholders",
    "detectable_content:postscript",
    "change_case:english_lowercase",
    "change_case:english_capital",
    "change_case:capital_word_frequency",
    "punctuation:no_comma",
    "startend:quotation",
    "startend:end_checker",
    "combination:two_responses",
    "combination:repeat_prompt",
    "language:response_language",
    "no_such:constraint",
];

const KWARG_KEYS: &[&str] = &[
    "capital_frequency",
    "capital_relation",
    "end_phrase",
    "first_word",
    "forbidden_words",
    "frequency",
    "keyword",
    "keywords",
    "let_frequency",
    "let_relation",
    "letter",
    "nth_paragraph",
    "num_bullets",
    "num_highlights",
    "num_paragraphs",
    "num_placeholders",
    "num_sections",
    "num_sentences",
    "num_words",
    "postscript_marker",
    "prompt_to_repeat",
    "relation",
    "section_spliter",
];

fn kwarg_key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(KWARG_KEYS).prop_map(str::to_string),
        1 => any::<String>(),
    ]
}

/// A request's metadata as JSON text: IFEval-shaped (real constraint ids, arguments of any
/// shape), any JSON, or not JSON at all.
fn metadata() -> impl Strategy<Value = String> {
    let kwargs = prop::collection::vec((kwarg_key(), json_value()), 0..4)
        .prop_map(|entries| Value::Object(entries.into_iter().collect()));
    let ifeval = prop::collection::vec(
        (
            prop::sample::select(CONSTRAINT_IDS),
            prop::option::of(kwargs),
        ),
        0..5,
    )
    .prop_map(|constraints| {
        let (ids, kwargs): (Vec<_>, Vec<_>) = constraints.into_iter().unzip();
        json!({"instruction_id_list": ids, "kwargs": kwargs}).to_string()
    });
    prop_oneof![
        6 => ifeval,
        1 => json_value().prop_map(|value| value.to_string()),
        1 => any::<String>(),
    ]
}

fn judge_request() -> impl Strategy<Value = JudgeRequest> {
    (
        instruction(),
        prop::collection::vec(text(), 0..6),
        prop::option::of(text()),
        metadata(),
    )
        .prop_map(
            |(instruction, responses, reference, metadata)| JudgeRequest {
                instruction,
                responses,
                reference,
                metadata,
            },
        )
}

/// A candidate as the host makes them: lengths zero for a parse failure.
fn candidate(score: BoxedStrategy<f64>) -> impl Strategy<Value = Candidate> {
    (
        any::<bool>(),
        prop::option::weighted(0.8, score),
        prop::array::uniform5(prop_oneof![
            Just(0u32),
            Just(1),
            Just(u32::MAX),
            any::<u32>()
        ]),
    )
        .prop_map(
            |(
                parsed,
                score,
                [
                    response_tokens,
                    response_chars,
                    thought_tokens,
                    thought_chars,
                    output_tokens,
                ],
            )| {
                if parsed {
                    Candidate {
                        score,
                        parsed,
                        response_tokens,
                        response_chars,
                        thought_tokens,
                        thought_chars,
                        output_tokens,
                    }
                } else {
                    Candidate {
                        score: None,
                        parsed,
                        output_tokens,
                        ..Candidate::default()
                    }
                }
            },
        )
}

/// The groups of one `select` call: empty groups, groups of one, and large groups too.
fn groups(score: BoxedStrategy<f64>) -> impl Strategy<Value = Vec<Vec<Candidate>>> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::collection::vec(candidate(score.clone()), 0..9),
            1 => prop::collection::vec(candidate(score), 60..200),
        ],
        0..6,
    )
}

/// Scores a judge could give: small values (ties are common) and ordinary ranges. The extremes
/// near ±1e308 have a property of their own.
fn ordinary_score() -> BoxedStrategy<f64> {
    prop_oneof![
        prop::sample::select(&[0.0, 0.25, 0.5, 1.0][..]),
        -1e6..1e6f64,
    ]
    .boxed()
}

fn extreme_score() -> BoxedStrategy<f64> {
    extreme_finite().boxed()
}

// ---------------------------------------------------------------------------------------------
// Checks

/// Every plugin's configurations worth fuzzing under: the default and the variants.
const TEMPLATE_CONFIGS: &[&str] = &["{}", r#"{"accept_heres": true}"#];
const CUSTOM_CONFIGS: &[&str] = &[
    r#"{"prompt": "Think."}"#,
    r#"{"prompt": "Think.", "placement": "suffix", "response_separators": ["Answer:"]}"#,
    r#"{"prompt": "Think.", "placement": "system", "thought_separators": ["<thought>", "ß"], "response_separators": ["</thought>", "\n", "ß"]}"#,
    r#"{"prompt": "", "thought_separators": ["\u0301"], "response_separators": ["ﬁ", "\u0301"], "forced_response": "ﬁ"}"#,
];

fn check_template<T: ThoughtTemplate>(
    config: &str,
    messages: &[Message],
    output: &str,
) -> Result<(), TestCaseError> {
    let template = T::configure(config)
        .map_err(|error| TestCaseError::fail(format!("configure({config}) refused: {error}")))?;
    if let Ok(rendered) = template.render(messages) {
        prop_assert!(!rendered.is_empty(), "render returned no messages");
    }
    // The output as the host hands it over: after the template's own prefix (prefill), and
    // after a forced response, as well as anything at all.
    let format = template.output_format();
    for output in [
        output.to_string(),
        format!("{}{output}", format.assistant_prefix),
        format.forced_output(output, output),
    ] {
        if let Parsed::Ok(split) = template.parse(&output) {
            // Thought and response are parts of the output.
            prop_assert!(split.thought.len() <= output.len(), "{:?}", split);
            prop_assert!(split.response.len() <= output.len(), "{:?}", split);
        }
    }
    Ok(())
}

/// Judges natively and checks the outcomes as the host does.
fn check_judge<J: Judge>(
    config: &str,
    requests: &[JudgeRequest],
    models: &dyn Models,
) -> Result<(), TestCaseError> {
    let mut judge = J::configure(config)
        .map_err(|error| TestCaseError::fail(format!("configure({config}) refused: {error}")))?;
    let outcomes = judge.judge(requests, models);
    if let Err(message) = validate_judgments(requests, &outcomes) {
        return Err(TestCaseError::fail(format!(
            "output the host refuses: {message}"
        )));
    }
    Ok(())
}

fn check_selector<S: PairSelector>(
    config: &str,
    groups: &[Vec<Candidate>],
) -> Result<(), TestCaseError> {
    let mut selector = S::configure(config)
        .map_err(|error| TestCaseError::fail(format!("configure({config}) refused: {error}")))?;
    // A selector may refuse an iteration with its own error; it must not panic or break the
    // contract.
    if let Ok(pairs) = selector.select(groups)
        && let Err(message) = validate_pairs(groups, &pairs)
    {
        return Err(TestCaseError::fail(format!(
            "output the host refuses: {message}"
        )));
    }
    Ok(())
}

/// A judge model that answers anything: each answer drawn from a seeded generator, sometimes
/// text a judge looks for, sometimes numbers at the limits (non-finite log-probs too), sometimes
/// an error; the shapes are the contract's (one answer per request, one log-prob per choice).
struct ChaoticModels {
    state: Cell<u64>,
}

impl ChaoticModels {
    fn new(seed: u64) -> Self {
        ChaoticModels {
            state: Cell::new(seed),
        }
    }

    /// splitmix64.
    fn next(&self) -> u64 {
        let state = self.state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        self.state.set(state);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn pick<'v, T>(&self, values: &'v [T]) -> &'v T {
        &values[(self.next() % values.len() as u64) as usize]
    }

    fn number(&self) -> f64 {
        *self.pick(&[
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NAN,
            -1e308,
            1e308,
            f64::MIN,
            f64::MAX,
            -745.0,
            -0.0,
            0.0,
            -1.0,
            -((self.next() % 1000) as f64) / 7.0,
        ])
    }

    fn fails(&self) -> Option<ModelAccessError> {
        self.next()
            .is_multiple_of(8)
            .then(|| ModelAccessError::Unsupported("chaos".into()))
    }
}

impl Models for ChaoticModels {
    fn generate(
        &self,
        _model: &str,
        requests: &[GenerateRequest],
    ) -> Result<Vec<String>, ModelAccessError> {
        if let Some(error) = self.fails() {
            return Err(error);
        }
        Ok(requests
            .iter()
            .map(|_| {
                (*self.pick(&[
                    "[[A]]",
                    "[[B]]",
                    "[[A]] [[B]]",
                    "[[C]]",
                    "",
                    "Assistant A is better. [[A]]",
                    "[[",
                    "ß[[B]]ß",
                ]))
                .to_string()
            })
            .collect())
    }

    fn choice_logprobs(
        &self,
        _model: &str,
        requests: &[ChoiceRequest],
    ) -> Result<Vec<Vec<f64>>, ModelAccessError> {
        if let Some(error) = self.fails() {
            return Err(error);
        }
        Ok(requests
            .iter()
            .map(|request| request.choices.iter().map(|_| self.number()).collect())
            .collect())
    }

    fn reward(
        &self,
        _model: &str,
        requests: &[RewardRequest],
    ) -> Result<Vec<f64>, ModelAccessError> {
        if let Some(error) = self.fails() {
            return Err(error);
        }
        Ok(requests.iter().map(|_| self.number()).collect())
    }
}

// ---------------------------------------------------------------------------------------------
// Native properties

proptest! {
    #![proptest_config(config(256, 1))]

    #[test]
    fn templates_render_and_parse_anything(
        messages in instruction(),
        output in text(),
        config in prop::sample::select(TEMPLATE_CONFIGS),
        custom in prop::sample::select(CUSTOM_CONFIGS),
        tags in any::<bool>(),
    ) {
        check_template::<thought_generic::GenericThought>(config, &messages, &output)?;
        check_template::<thought_system::SystemThought>(config, &messages, &output)?;
        check_template::<thought_direct::DirectResponse>("{}", &messages, &output)?;
        check_template::<thought_specific::SpecificThought>(
            &json!({ "tags": tags }).to_string(),
            &messages,
            &output,
        )?;
        check_template::<thought_custom::CustomThought>(custom, &messages, &output)?;
    }

    #[test]
    fn judge_constraints_scores_anything(
        requests in prop::collection::vec(judge_request(), 0..5),
        mode in prop::sample::select(&["strict", "loose"][..]),
    ) {
        check_judge::<judge_constraints::ConstraintsJudge>(
            &json!({ "mode": mode }).to_string(),
            &requests,
            &ponder_sdk::models::NoModels,
        )?;
    }

    #[test]
    fn llm_judges_survive_models_that_answer_anything(
        requests in prop::collection::vec(judge_request(), 0..5),
        seed in any::<u64>(),
        prior in prop_oneof![Just(1e-300), Just(0.1), Just(1e308), Just(f64::MIN_POSITIVE)],
    ) {
        let pairwise = json!({ "model": "judge", "prior": prior }).to_string();
        check_judge::<judge_llm_pairwise::PairwiseJudge>(&pairwise, &requests, &ChaoticModels::new(seed))?;
        check_judge::<judge_llm_pointwise::PointwiseJudge>(
            r#"{"model": "judge"}"#,
            &requests,
            &ChaoticModels::new(seed),
        )?;
    }

    #[test]
    fn selectors_pair_any_ordinary_scores(
        groups in groups(ordinary_score()),
        rho in prop_oneof![Just(0.0), Just(0.5), 0.0..=0.5f64],
        ties in any::<bool>(),
        auto_rho in any::<bool>(),
    ) {
        check_selector::<select_best_worst::BestWorst>("{}", &groups)?;
        check_selector::<select_sweet_spot::SweetSpot>("{}", &groups)?;
        let length_controlled = json!({
            "rho": rho,
            "auto_rho": auto_rho,
            "skip_score_ties": ties,
            "length": if ties { "chars" } else { "tokens" },
        })
        .to_string();
        check_selector::<select_length_controlled::LengthControlled>(&length_controlled, &groups)?;
    }

    #[test]
    fn length_controlled_pairs_extreme_scores(
        groups in groups(extreme_score()),
        rho in prop_oneof![Just(0.0), Just(0.5), 0.0..=0.5f64],
        auto_rho in any::<bool>(),
    ) {
        let config = json!({ "rho": rho, "auto_rho": auto_rho }).to_string();
        check_selector::<select_length_controlled::LengthControlled>(&config, &groups)?;
    }

    #[test]
    fn selectors_other_than_length_controlled_pair_extreme_scores(
        groups in groups(extreme_score()),
    ) {
        check_selector::<select_best_worst::BestWorst>("{}", &groups)?;
        check_selector::<select_sweet_spot::SweetSpot>("{}", &groups)?;
    }
}

// ---------------------------------------------------------------------------------------------
// The real components

/// Keeps plugin log records out of the test output.
struct NoLog;

impl LogSink for NoLog {
    fn record(&self, _plugin: &str, _level: LogLevel, _message: &str) {}
}

fn load(runtime: &PluginRuntime, role: Role, name: &str, config: Value) -> Plugin {
    let mut spec = PluginSpec::wasm(role, plugin(name));
    spec.config = config;
    runtime.load(&spec).expect("the component loads")
}

/// A sandboxed call may end in the plugin's own error; anything else (a trap, a limit, output
/// that breaks the contract) fails the property.
fn allow_plugin_failure<T>(result: Result<T, PluginError>) -> Result<Option<T>, TestCaseError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(PluginError {
            cause: Cause::Plugin(_),
            ..
        }) => Ok(None),
        Err(error) => Err(TestCaseError::fail(error.to_string())),
    }
}

#[test]
fn components_take_anything_without_trapping() {
    let cache = tempfile::tempdir().expect("temp dir");
    let runtime = PluginRuntime::new(RuntimeOptions {
        cache_dir: Some(cache.path().to_path_buf()),
        log: Arc::new(NoLog),
        models: None,
        seed: 7,
    })
    .expect("runtime");
    // Loaded once: after a failed call the runtime gives a plugin a fresh instance itself.
    let custom = serde_json::from_str(CUSTOM_CONFIGS[2]).expect("JSON");
    let templates: Vec<RefCell<Plugin>> = [
        ("thought-generic", json!({})),
        ("thought-specific", json!({})),
        ("thought-system", json!({})),
        ("thought-direct", json!({})),
        ("thought-custom", custom),
    ]
    .into_iter()
    .map(|(name, config)| RefCell::new(load(&runtime, Role::Template, name, config)))
    .collect();
    let judge = RefCell::new(load(
        &runtime,
        Role::Judge,
        "judge-constraints",
        json!({ "mode": "loose" }),
    ));
    let selectors: Vec<RefCell<Plugin>> = [
        "select-best-worst",
        "select-sweet-spot",
        "select-length-controlled",
    ]
    .into_iter()
    .map(|name| RefCell::new(load(&runtime, Role::Selector, name, json!({}))))
    .collect();

    let inputs = (
        instruction(),
        prop::collection::vec(text(), 0..4),
        prop::collection::vec(judge_request(), 0..4),
        groups(ordinary_score()),
    );
    let mut runner = TestRunner::new(config(24, 10));
    let result = runner.run(&inputs, |(messages, outputs, requests, groups)| {
        for template in &templates {
            let mut template = template.borrow_mut();
            allow_plugin_failure(template.render(&messages))?;
            for output in &outputs {
                allow_plugin_failure(template.parse(output))?;
            }
        }
        allow_plugin_failure(judge.borrow_mut().judge(&requests))?;
        for selector in &selectors {
            allow_plugin_failure(selector.borrow_mut().select(&groups))?;
        }
        Ok(())
    });
    if let Err(error) = result {
        panic!("{error}");
    }
}
