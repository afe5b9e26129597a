//! `{{name}}`: a ponder thought template. Asks the model to think after `Thoughts:` and to
//! answer after `Answer:`, and splits its output there. Its output format has the host start the
//! assistant turn with `Thoughts:` and force a response with `Answer:`.
//!
//! Configuration (optional): `{"instruction": "..."}` replaces the default instruction.

use ponder_sdk::{Message, OutputFormat, Parsed, PluginFailure, ThoughtTemplate, config, template};
use serde::Deserialize;

const DEFAULT_INSTRUCTION: &str = "First think about the request after \"Thoughts:\", then \
write your final answer after \"Answer:\".\n\n";

/// The template and its configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThinkThenAnswer {
    #[serde(default = "default_instruction")]
    instruction: String,
}

fn default_instruction() -> String {
    DEFAULT_INSTRUCTION.to_string()
}

impl ThoughtTemplate for ThinkThenAnswer {
    fn configure(config: &str) -> Result<Self, PluginFailure> {
        config::parse(config)
    }

    fn render(&self, instruction: &[Message]) -> Result<Vec<Message>, PluginFailure> {
        template::prefix_last_user_message(instruction, &self.instruction)
    }

    fn parse(&self, output: &str) -> Parsed {
        template::split_at_separators(output, &["Thoughts:"], &["Answer:"])
    }

    fn output_format(&self) -> OutputFormat {
        template::separated_output_format(Some("Thoughts:"), "Answer:")
    }
}

ponder_sdk::export_thought_template!(ThinkThenAnswer);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_parses() {
        let template = ThinkThenAnswer::configure("{}").unwrap();
        let messages = template.render(&[Message::user("2+2?")]).unwrap();
        assert!(messages[0].content.ends_with("2+2?"));
        assert_eq!(
            template.parse("Thoughts: easy. Answer: 4"),
            Parsed::split("easy.", "4")
        );
        assert!(matches!(template.parse("4"), Parsed::Failure(_)));
        let forced = template.output_format().forced_output("easy.", "4");
        assert_eq!(template.parse(&forced), Parsed::split("easy.", "4"));
    }
}
