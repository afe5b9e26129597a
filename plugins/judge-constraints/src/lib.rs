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
            Mode::Strict => !response.trim().is_empty() && constraint.check(response),
            Mode::Loose => loose_variants(response)
                .iter()
                .any(|variant| !variant.trim().is_empty() && constraint.check(variant)),
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

/// IFEval's loose variants: as is, without `*`, and each without the first line, the last line
/// or both.
fn loose_variants(response: &str) -> Vec<String> {
    let without_stars = response.replace('*', "");
    let mut variants = Vec::with_capacity(8);
    for text in [response, without_stars.as_str()] {
        let lines: Vec<&str> = text.split('\n').collect();
        let join = |part: &[&str]| part.join("\n").trim().to_string();
        let count = lines.len();
        variants.push(text.to_string());
        variants.push(join(lines.get(1..).unwrap_or(&[])));
        variants.push(join(&lines[..count.saturating_sub(1)]));
        variants.push(join(lines.get(1..count.saturating_sub(1)).unwrap_or(&[])));
    }
    variants
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
}
