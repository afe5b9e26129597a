//! `{{name}}`: a ponder judge. Scores each response by the fraction of the configured keywords
//! it mentions (case-insensitive).
//!
//! Configuration: `{"keywords": ["paris", "france"]}`.

use ponder_sdk::models::Models;
use ponder_sdk::{Judge, JudgeRequest, JudgeOutcome, PluginFailure, config, log};
use serde::Deserialize;

/// The judge and its configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeywordJudge {
    keywords: Vec<String>,
}

impl Judge for KeywordJudge {
    fn configure(config: &str) -> Result<Self, PluginFailure> {
        let judge: Self = config::parse(config)?;
        if judge.keywords.is_empty() {
            return Err(PluginFailure::invalid_config("config key `keywords`: give at least one"));
        }
        log::info(&format!("{{name}}: {} keywords", judge.keywords.len()));
        Ok(judge)
    }

    fn judge(&mut self, requests: &[JudgeRequest], _models: &dyn Models) -> Vec<JudgeOutcome> {
        requests
            .iter()
            .map(|request| {
                Ok(request
                    .responses
                    .iter()
                    .map(|response| {
                        let response = response.to_lowercase();
                        let found = self
                            .keywords
                            .iter()
                            .filter(|keyword| response.contains(&keyword.to_lowercase()))
                            .count();
                        Some(found as f64 / self.keywords.len() as f64)
                    })
                    .collect())
            })
            .collect()
    }
}

ponder_sdk::export_judge!(KeywordJudge);

#[cfg(test)]
mod tests {
    use ponder_sdk::Message;
    use ponder_sdk::models::NoModels;

    use super::*;

    #[test]
    fn scores_the_fraction_of_keywords() {
        let mut judge = KeywordJudge::configure(r#"{"keywords": ["Paris", "France"]}"#).unwrap();
        let request = JudgeRequest {
            instruction: vec![Message::user("What is the capital of France?")],
            responses: vec!["Paris, France.".into(), "It is Paris.".into(), "Lyon".into()],
            reference: None,
            metadata: "{}".into(),
        };
        let scores = judge.judge(&[request], &NoModels).remove(0).unwrap();
        assert_eq!(scores, vec![Some(1.0), Some(0.5), Some(0.0)]);
    }

    #[test]
    fn missing_keywords_are_a_config_error() {
        assert!(matches!(
            KeywordJudge::configure("{}"),
            Err(PluginFailure::InvalidConfig(text)) if text.contains("keywords")
        ));
    }
}
