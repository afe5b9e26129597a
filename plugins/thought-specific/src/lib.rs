//! The specific thought prompt of Thought Preference Optimization (Wu et al., arXiv 2410.10630,
//! Figure 2): the model drafts a response and evaluates it in its thought, then writes the final
//! response after `<R>`.
//!
//! Configuration (all optional):
//! - `tags` (bool, default `false`): the draft version of the prompt, where the thought sits in
//!   `<internal thought>…</internal thought>` and the response in `<response>…</response>`.

use ponder_sdk::template::{self, paper};
use ponder_sdk::{Message, Parsed, PluginError, ThoughtTemplate, config};
use serde::Deserialize;

/// Tags of the draft version of the prompt.
pub const THOUGHT_TAGS: (&str, &str) = ("<internal thought>", "</internal thought>");
/// Tags around the response in the draft version.
pub const RESPONSE_TAGS: (&str, &str) = ("<response>", "</response>");

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    tags: bool,
}

/// The specific thought template.
#[derive(Debug)]
pub struct SpecificThought {
    tags: bool,
}

impl ThoughtTemplate for SpecificThought {
    fn configure(config: &str) -> Result<Self, PluginError> {
        let config: Config = config::parse(config)?;
        Ok(Self { tags: config.tags })
    }

    fn render(&self, instruction: &[Message]) -> Result<Vec<Message>, PluginError> {
        let instruction_text = if self.tags {
            paper::SPECIFIC_TAGGED_INSTRUCTION
        } else {
            paper::SPECIFIC_INSTRUCTION
        };
        let prompt = format!("{instruction_text}{}", paper::QUERY_LEAD);
        template::prefix_last_user_message(instruction, &prompt)
    }

    fn parse(&self, output: &str) -> Parsed {
        if self.tags {
            template::split_at_tags(output, THOUGHT_TAGS, RESPONSE_TAGS)
        } else {
            template::split_at_separators(output, &[], &[paper::FINAL_RESPONSE_SEPARATOR])
        }
    }
}

ponder_sdk::export_thought_template!(SpecificThought);

#[cfg(test)]
mod tests {
    use super::*;

    fn template(config: &str) -> SpecificThought {
        SpecificThought::configure(config).unwrap()
    }

    #[test]
    fn render_asks_for_draft_evaluation_and_r() {
        let messages = template("{}")
            .render(&[Message::user("Write a haiku.")])
            .unwrap();
        assert!(
            messages[0]
                .content
                .contains("draft response and its evaluation")
        );
        assert!(messages[0].content.contains("<R>"));
        assert!(messages[0].content.ends_with("User query: Write a haiku."));
    }

    #[test]
    fn parse_splits_at_r() {
        let output = "Draft: a poem.\nEvaluation: too short.\n<R> Autumn moonlight falls";
        assert_eq!(
            template("{}").parse(output),
            Parsed::split(
                "Draft: a poem.\nEvaluation: too short.",
                "Autumn moonlight falls"
            )
        );
        assert!(matches!(
            template("{}").parse("no marker"),
            Parsed::Failure(_)
        ));
    }

    #[test]
    fn tagged_version_uses_tags() {
        let tagged = template(r#"{"tags": true}"#);
        let rendered = tagged.render(&[Message::user("q")]).unwrap();
        assert!(rendered[0].content.contains("<internal thought>"));
        let output =
            "<internal thought>draft, evaluate</internal thought>\n<response>final</response>";
        assert_eq!(
            tagged.parse(output),
            Parsed::split("draft, evaluate", "final")
        );
        assert!(matches!(
            tagged.parse("draft <R> final"),
            Parsed::Failure(_)
        ));
    }
}
