//! Judge of verifiable instructions in the style of IFEval (Zhou et al., 2023): each dataset row
//! lists constraints a response must satisfy ("at least 300 words", "no commas", …); a response's
//! score is the fraction it satisfies. No model is needed. The metadata schema is IFEval's own
//! (`instruction_id_list` + `kwargs`), documented in this crate's README.md.
//!
//! Configuration (all optional):
//! - `mode` (`"strict"` (default) | `"loose"`): loose also accepts a constraint when it holds
//!   after removing the first line, the last line, both, and/or every `*` (IFEval's loose
//!   accuracy).

mod checks;
mod json;
mod nltk;
mod py;
#[rustfmt::skip]
mod py_tables;

use ponder_sdk::models::Models;
use ponder_sdk::{Judge, JudgeRequest, JudgeResult, PluginError, config};
use serde::Deserialize;

pub use checks::Constraint;

/// Strict or loose checking, as IFEval defines them.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The response as written.
    #[default]
    Strict,
    /// Also the response without its first and/or last line and/or without `*`.
    Loose,
}

/// The constraints judge.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConstraintsJudge {
    mode: Mode,
}

/// A row's metadata: IFEval's parallel lists of instruction ids and their arguments.
#[derive(Debug, Deserialize)]
struct Metadata {
    instruction_id_list: Vec<String>,
    #[serde(default)]
    kwargs: Vec<Option<serde_json::Value>>,
}

/// Reads the constraints of one request from its metadata.
pub fn constraints_of(request: &JudgeRequest) -> Result<Vec<Constraint>, PluginError> {
    let metadata: Metadata = request.metadata_as()?;
    if metadata.instruction_id_list.is_empty() {
        return Err(PluginError::invalid_input(
            "metadata `instruction_id_list` is empty: nothing to check",
        ));
    }
    if !metadata.kwargs.is_empty() && metadata.kwargs.len() != metadata.instruction_id_list.len() {
        return Err(PluginError::invalid_input(format!(
            "metadata `kwargs` has {} entries but `instruction_id_list` has {}",
            metadata.kwargs.len(),
            metadata.instruction_id_list.len()
        )));
    }
    metadata
        .instruction_id_list
        .iter()
        .enumerate()
        .map(|(index, id)| {
            let kwargs = metadata
                .kwargs
                .get(index)
                .cloned()
                .flatten()
                .unwrap_or_else(|| serde_json::Value::Object(Default::default()));
            Constraint::from_ifeval(id, kwargs).map_err(|why| {
                PluginError::invalid_input(format!("metadata `kwargs[{index}]` ({id}): {why}"))
            })
        })
        .collect()
}

impl ConstraintsJudge {
    /// Whether `response` satisfies `constraint` in this judge's mode.
    pub fn satisfies(&self, constraint: &Constraint, response: &str) -> bool {
        match self.mode {
            Mode::Strict => !py::strip(response).is_empty() && constraint.check(response),
            Mode::Loose => loose_variants(response)
                .iter()
                .any(|variant| !py::strip(variant).is_empty() && constraint.check(variant)),
        }
    }

    /// Fraction of `constraints` that `response` satisfies.
    pub fn score(&self, constraints: &[Constraint], response: &str) -> f64 {
        let met = constraints
            .iter()
            .filter(|constraint| self.satisfies(constraint, response))
            .count();
        met as f64 / constraints.len() as f64
    }
}

/// IFEval's loose variants (`evaluation_lib.test_instruction_following_loose`): the response,
/// it without `*`, and it without the first line, the last line or both (each stripped), those
/// three also without `*` (removed after stripping, as IFEval does).
fn loose_variants(response: &str) -> Vec<String> {
    let lines: Vec<&str> = response.split('\n').collect();
    let count = lines.len();
    let join = |part: &[&str]| py::strip(&part.join("\n")).to_string();
    let first = join(lines.get(1..).unwrap_or(&[]));
    let last = join(lines.get(..count.saturating_sub(1)).unwrap_or(&[]));
    let both = join(lines.get(1..count.saturating_sub(1)).unwrap_or(&[]));
    let unstarred = |text: &str| text.replace('*', "");
    vec![
        response.to_string(),
        unstarred(response),
        unstarred(&first),
        unstarred(&last),
        unstarred(&both),
        first,
        last,
        both,
    ]
}

impl Judge for ConstraintsJudge {
    fn configure(config: &str) -> Result<Self, PluginError> {
        config::parse(config)
    }

    fn judge(&mut self, requests: &[JudgeRequest], _models: &dyn Models) -> Vec<JudgeResult> {
        requests
            .iter()
            .map(|request| {
                let constraints = constraints_of(request)?;
                Ok(request
                    .responses
                    .iter()
                    .map(|response| Some(self.score(&constraints, response)))
                    .collect())
            })
            .collect()
    }
}

ponder_sdk::export_judge!(ConstraintsJudge);

#[cfg(test)]
mod tests {
    use ponder_sdk::Message;
    use ponder_sdk::models::NoModels;

    use super::*;

    fn request(metadata: &str, responses: &[&str]) -> JudgeRequest {
        JudgeRequest {
            instruction: vec![Message::user("Write something.")],
            responses: responses.iter().map(|r| r.to_string()).collect(),
            reference: None,
            metadata: metadata.to_string(),
        }
    }

    fn judge(config: &str, metadata: &str, responses: &[&str]) -> JudgeResult {
        let mut judge = ConstraintsJudge::configure(config).unwrap();
        judge
            .judge(&[request(metadata, responses)], &NoModels)
            .remove(0)
    }

    #[test]
    fn score_is_the_fraction_of_constraints_met() {
        let metadata = r#"{
            "instruction_id_list": ["punctuation:no_comma", "change_case:english_lowercase",
                                    "length_constraints:number_words"],
            "kwargs": [{}, {}, {"num_words": 3, "relation": "at least"}]
        }"#;
        let scores = judge("{}", metadata, &["all lowercase here", "Hi, you", "ok"]).unwrap();
        assert_eq!(scores, vec![Some(1.0), Some(0.0), Some(2.0 / 3.0)]);
    }

    #[test]
    fn ifeval_rows_with_null_kwargs_are_accepted() {
        let metadata = r#"{
            "instruction_id_list": ["detectable_format:title"],
            "kwargs": [{"num_words": null, "relation": null}]
        }"#;
        let scores = judge("{}", metadata, &["<<Ode>>\nverse", "no title"]).unwrap();
        assert_eq!(scores, vec![Some(1.0), Some(0.0)]);
    }

    #[test]
    fn loose_mode_forgives_a_preamble_and_markdown() {
        let metadata = r#"{"instruction_id_list": ["startend:quotation"], "kwargs": [{}]}"#;
        let response = "Sure, here it is:\n\"quoted answer\"";
        assert_eq!(judge("{}", metadata, &[response]).unwrap(), vec![Some(0.0)]);
        assert_eq!(
            judge(r#"{"mode": "loose"}"#, metadata, &[response]).unwrap(),
            vec![Some(1.0)]
        );
        let starred = r#"{"instruction_id_list": ["detectable_format:title"], "kwargs": [{}]}"#;
        assert_eq!(
            judge(r#"{"mode": "loose"}"#, starred, &["**<<T>>** x"]).unwrap(),
            vec![Some(1.0)]
        );
    }

    #[test]
    fn unknown_constraint_kind_is_named() {
        let metadata = r#"{"instruction_id_list": ["language:klingon"], "kwargs": [{}]}"#;
        let error = judge("{}", metadata, &["x"]).unwrap_err();
        assert!(matches!(error, PluginError::InvalidInput(_)));
        assert!(error.to_string().contains("language:klingon"), "{error}");
    }

    #[test]
    fn missing_argument_is_named() {
        let metadata = r#"{"instruction_id_list": ["length_constraints:number_words"], "kwargs": [{"relation": "at least"}]}"#;
        let error = judge("{}", metadata, &["x"]).unwrap_err();
        assert!(error.to_string().contains("num_words"), "{error}");
    }

    #[test]
    fn bad_metadata_fails_only_its_request() {
        let mut judge = ConstraintsJudge::configure("{}").unwrap();
        let ok = r#"{"instruction_id_list": ["punctuation:no_comma"]}"#;
        let results = judge.judge(&[request("{}", &["x"]), request(ok, &["x"])], &NoModels);
        assert!(results[0].is_err());
        assert_eq!(results[1], Ok(vec![Some(1.0)]));
    }

    #[test]
    fn every_bundled_dataset_row_has_known_constraints() {
        let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
        let mut rows = 0;
        for file in ["train.jsonl", "eval.jsonl"] {
            let text = std::fs::read_to_string(data.join(file)).unwrap();
            for line in text.lines().filter(|line| !line.trim().is_empty()) {
                let row: serde_json::Value = serde_json::from_str(line).unwrap();
                let metadata = row["metadata"].to_string();
                let constraints = constraints_of(&request(&metadata, &[])).unwrap();
                assert!(!constraints.is_empty());
                rows += 1;
            }
        }
        assert!(rows > 0);
    }

    #[test]
    fn bad_mode_is_invalid_config() {
        let error = ConstraintsJudge::configure(r#"{"mode": "lenient"}"#).unwrap_err();
        assert!(error.to_string().contains("mode"), "{error}");
    }

    /// Every constraint kind, with arguments, as IFEval metadata.
    const EVERY_CONSTRAINT: &str = r#"{
        "instruction_id_list": [
            "length_constraints:number_words", "length_constraints:number_sentences",
            "length_constraints:number_paragraphs", "length_constraints:nth_paragraph_first_word",
            "keywords:existence", "keywords:forbidden_words", "keywords:frequency",
            "keywords:letter_frequency", "detectable_format:number_bullet_lists",
            "detectable_format:number_highlighted_sections", "detectable_format:multiple_sections",
            "detectable_format:title", "detectable_format:json_format",
            "detectable_format:constrained_response", "detectable_content:number_placeholders",
            "detectable_content:postscript", "detectable_content:postscript",
            "detectable_content:postscript", "change_case:english_lowercase",
            "change_case:english_capital", "change_case:capital_word_frequency",
            "punctuation:no_comma", "startend:quotation", "startend:end_checker",
            "combination:two_responses", "combination:repeat_prompt"],
        "kwargs": [
            {"num_words": 3, "relation": "at least"}, {"num_sentences": 2, "relation": "less than"},
            {"num_paragraphs": 2}, {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "ünï"},
            {"keywords": ["é", "ıs"]}, {"forbidden_words": ["•", "σοφία"]},
            {"keyword": "ß", "frequency": 1, "relation": "at least"},
            {"letter": "e", "let_frequency": 2, "let_relation": "less than"},
            {"num_bullets": 1}, {"num_highlights": 1},
            {"section_spliter": "SECTION", "num_sections": 1}, {}, {}, {},
            {"num_placeholders": 1}, {"postscript_marker": "P.S."}, {"postscript_marker": "P.P.S"},
            {"postscript_marker": "Nöte"}, {}, {},
            {"capital_frequency": 2, "capital_relation": "at least"}, {}, {},
            {"end_phrase": "🎉?"}, {}, {"prompt_to_repeat": "Ünïcode •"}]
    }"#;

    /// Fragments the random responses are made of: multi-byte characters, emoji sequences,
    /// combining marks, whitespace Python and Rust disagree on, and the markup every check
    /// parses.
    const FRAGMENTS: &[&str] = &[
        "a",
        "Z",
        " ",
        "\n",
        "\n\n",
        "\t",
        "\r\n",
        ".",
        "...",
        "…",
        "?",
        "!",
        ",",
        ":",
        ";",
        "'",
        "\"",
        "`",
        "-",
        "--",
        "*",
        "**",
        "***",
        "******",
        "<<",
        ">>",
        "[",
        "]",
        "(",
        ")",
        "{",
        "}",
        "•",
        "—",
        "é",
        "e\u{301}",
        "\u{301}",
        "İ",
        "ı",
        "ς",
        "Σ",
        "ǅ",
        "ß",
        "ẞ",
        "日本",
        "हि",
        "🎉",
        "👍🏽",
        "👨\u{200d}👩\u{200d}👧",
        "\u{a0}",
        "\u{1c}",
        "\u{200b}",
        "\u{feff}",
        "١",
        "²",
        "P.S.",
        "P.P.S",
        "p. s.",
        "SECTION 1",
        "Section",
        "```json",
        "```",
        "NaN",
        "My answer is yes.",
        "<<Ünï>>",
        "[name]",
        "DON'T",
        "CANNOT",
        "Mr.",
        "J.",
        "3.5",
        "'tis",
        "«",
        "»",
        "“",
        "”",
        "‘",
        "’",
        "„",
        "\u{2014}",
        "&",
        "#",
        "@",
        "%",
        "$",
        "ünï",
        "Ünïcode •",
    ];

    /// A small deterministic generator (xorshift64*), so the property test needs no crate.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        /// A random Unicode scalar value, mostly from the planes text uses.
        fn scalar(&mut self) -> char {
            let limit = [0x80, 0x800, 0x1_0000, 0x11_0000][self.below(4)];
            loop {
                if let Some(c) = char::from_u32(self.below(limit) as u32) {
                    return c;
                }
            }
        }

        fn text(&mut self) -> String {
            let mut text = String::new();
            for _ in 0..self.below(40) {
                if self.below(4) == 0 {
                    text.push(self.scalar());
                } else {
                    text.push_str(FRAGMENTS[self.below(FRAGMENTS.len())]);
                }
            }
            text
        }
    }

    #[test]
    fn no_input_panics_any_check() {
        let constraints = constraints_of(&request(EVERY_CONSTRAINT, &[])).unwrap();
        let strict = ConstraintsJudge::configure("{}").unwrap();
        let loose = ConstraintsJudge::configure(r#"{"mode": "loose"}"#).unwrap();
        let mut rng = Rng(0x005e_ed1f_e7a1);
        let fixed = FRAGMENTS.iter().map(|fragment| fragment.to_string());
        let texts: Vec<String> = fixed.chain((0..4000).map(|_| rng.text())).collect();
        for text in texts {
            for judge in [&strict, &loose] {
                let score = judge.score(&constraints, &text);
                assert!((0.0..=1.0).contains(&score), "{text:?}: {score}");
            }
        }
        assert_eq!(strict.score(&constraints, ""), 0.0);
    }

    #[test]
    fn a_bullet_character_no_longer_panics_the_batch() {
        // Regression: counting highlights sliced a byte index inside '•'.
        let metadata = r#"{"instruction_id_list": ["detectable_format:number_highlighted_sections"],
                           "kwargs": [{"num_highlights": 1}]}"#;
        let scores = judge("{}", metadata, &["• *one* •", "•*", "*•"]).unwrap();
        assert_eq!(scores, vec![Some(1.0), Some(0.0), Some(0.0)]);
    }

    #[test]
    fn loose_variants_strip_before_removing_stars() {
        // IFEval strips each line-dropped variant, then removes `*`: whitespace left by a star
        // stays.
        let variants = loose_variants("Intro\n* a *\n");
        assert_eq!(variants[2], " a ");
        assert_eq!(variants[5], "* a *");
        assert_eq!(variants.len(), 8);
    }
}
