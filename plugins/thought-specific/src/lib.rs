//! The specific thought prompt of Thought Preference Optimization (Wu et al., arXiv 2410.10630,
//! Figure 2): the model drafts a response and evaluates it in its thought, then writes the final
//! response after `<R>`.
//!
//! Output format (`ponder:plugin@0.2.0`): no assistant prefix (the thought has no fixed opening);
//! the response separator is `<R>` and a forced response is `"\n\n<R>\n"`. With `tags`, the
//! host opens the thought with `<internal thought>` and forces a response by closing it and
//! opening `<response>`.
//!
//! Configuration (all optional):
//! - `tags` (bool, default `false`): the draft version of the prompt, where the thought sits in
//!   `<internal thought>…</internal thought>` and the response in `<response>…</response>`.

use ponder_sdk::template::{self, paper};
use ponder_sdk::{Message, OutputFormat, Parsed, PluginFailure, ThoughtTemplate, config};
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
    fn configure(config: &str) -> Result<Self, PluginFailure> {
        let config: Config = config::parse(config)?;
        Ok(Self { tags: config.tags })
    }

    fn render(&self, instruction: &[Message]) -> Result<Vec<Message>, PluginFailure> {
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

    fn output_format(&self) -> OutputFormat {
        if self.tags {
            OutputFormat {
                assistant_prefix: format!("{}\n", THOUGHT_TAGS.0),
                response_separator: Some(RESPONSE_TAGS.0.to_string()),
                forced_response: format!("\n{}\n{}\n", THOUGHT_TAGS.1, RESPONSE_TAGS.0),
            }
        } else {
            template::separated_output_format(None, paper::FINAL_RESPONSE_SEPARATOR)
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
    fn output_format_separates_at_r() {
        let format = template("{}").output_format();
        assert_eq!(format.assistant_prefix, "");
        assert_eq!(format.response_separator.as_deref(), Some("<R>"));
        assert_eq!(format.forced_response, "\n\n<R>\n");
        let tagged = template(r#"{"tags": true}"#).output_format();
        assert_eq!(tagged.assistant_prefix, "<internal thought>\n");
        assert_eq!(tagged.response_separator.as_deref(), Some("<response>"));
        assert!(tagged.forced_response.contains("</internal thought>"));
    }

    #[test]
    fn parse_accepts_prefix_thought_forced_response() {
        for config in ["{}", r#"{"tags": true}"#] {
            let template = template(config);
            let output = template
                .output_format()
                .forced_output("Draft: hi.\nEvaluation: fine.", "Hello!");
            assert_eq!(
                template.parse(&output),
                Parsed::split("Draft: hi.\nEvaluation: fine.", "Hello!"),
                "{config}"
            );
        }
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
