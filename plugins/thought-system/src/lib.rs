//! The generic thought instruction of Thought Preference Optimization (arXiv 2410.10630) given as
//! a system prompt instead of in front of the user query; outputs split as with the generic
//! prompt (`Here is my thought process:` / `Here is my response:`).
//!
//! Output format (`ponder:plugin@0.2.0`): as the generic prompt's, the host starts the assistant
//! turn with `Here is my thought process:` and a line break, and forces a response with
//! `"\n\nHere is my response:\n"`.
//!
//! Configuration (all optional):
//! - `accept_heres` (bool, default `false`): also accept `Here's my thought process:` /
//!   `Here's my response:`.

use ponder_sdk::template::{self, paper};
use ponder_sdk::{Message, OutputFormat, Parsed, PluginFailure, ThoughtTemplate, config};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    accept_heres: bool,
}

/// The system-prompt thought template.
#[derive(Debug)]
pub struct SystemThought {
    accept_heres: bool,
}

impl ThoughtTemplate for SystemThought {
    fn configure(config: &str) -> Result<Self, PluginFailure> {
        let config: Config = config::parse(config)?;
        Ok(Self {
            accept_heres: config.accept_heres,
        })
    }

    fn render(&self, instruction: &[Message]) -> Result<Vec<Message>, PluginFailure> {
        template::with_system_prompt(instruction, paper::GENERIC_INSTRUCTION)
    }

    fn parse(&self, output: &str) -> Parsed {
        if self.accept_heres {
            template::split_at_separators(
                output,
                &[
                    paper::THOUGHT_SEPARATOR,
                    paper::THOUGHT_SEPARATOR_CONTRACTED,
                ],
                &[
                    paper::RESPONSE_SEPARATOR,
                    paper::RESPONSE_SEPARATOR_CONTRACTED,
                ],
            )
        } else {
            template::split_at_separators(
                output,
                &[paper::THOUGHT_SEPARATOR],
                &[paper::RESPONSE_SEPARATOR],
            )
        }
    }

    fn output_format(&self) -> OutputFormat {
        paper::generic_output_format()
    }
}

ponder_sdk::export_thought_template!(SystemThought);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instruction_goes_into_a_system_message() {
        let template = SystemThought::configure("{}").unwrap();
        let messages = template.render(&[Message::user("Hi")]).unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].role, "system");
        assert_eq!(messages[0].content, paper::GENERIC_INSTRUCTION);
        assert_eq!(messages[1], Message::user("Hi"));
    }

    #[test]
    fn output_format_is_the_generic_prompts() {
        let template = SystemThought::configure("{}").unwrap();
        let format = template.output_format();
        assert_eq!(format, paper::generic_output_format());
        assert_eq!(format.assistant_prefix, "Here is my thought process:\n");
        let output = format.forced_output("thinking", "answer");
        assert_eq!(template.parse(&output), Parsed::split("thinking", "answer"));
    }

    #[test]
    fn parses_like_the_generic_prompt() {
        let template = SystemThought::configure(r#"{"accept_heres": true}"#).unwrap();
        assert_eq!(
            template.parse("Here's my thought process: t Here is my response: r"),
            Parsed::split("t", "r")
        );
        assert!(matches!(
            template.parse("just an answer"),
            Parsed::Failure(_)
        ));
    }
}
