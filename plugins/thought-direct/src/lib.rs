//! No thought: the direct-response baseline of Thought Preference Optimization. The instruction
//! goes to the model unchanged and the whole output is the response. Takes no configuration.
//! Output format: the default (no assistant prefix, no response separator).

use ponder_sdk::{Message, Parsed, PluginFailure, ThoughtTemplate, config};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {}

/// The direct-response template.
#[derive(Debug)]
pub struct DirectResponse;

impl ThoughtTemplate for DirectResponse {
    fn configure(config: &str) -> Result<Self, PluginFailure> {
        let _: Config = config::parse(config)?;
        Ok(Self)
    }

    fn render(&self, instruction: &[Message]) -> Result<Vec<Message>, PluginFailure> {
        if !instruction.iter().any(|message| message.role == "user") {
            return Err(PluginFailure::invalid_input(
                "the instruction has no user message",
            ));
        }
        Ok(instruction.to_vec())
    }

    fn parse(&self, output: &str) -> Parsed {
        let response = output.trim();
        if response.is_empty() {
            Parsed::failure("the output is empty")
        } else {
            Parsed::split("", response)
        }
    }
}

ponder_sdk::export_thought_template!(DirectResponse);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instruction_is_unchanged_and_output_is_the_response() {
        let template = DirectResponse::configure("{}").unwrap();
        let instruction = vec![Message::system("s"), Message::user("u")];
        assert_eq!(template.render(&instruction).unwrap(), instruction);
        assert_eq!(template.parse("  answer \n"), Parsed::split("", "answer"));
        assert!(matches!(template.parse(" \n"), Parsed::Failure(_)));
    }

    #[test]
    fn output_format_is_the_default_and_parses() {
        let template = DirectResponse::configure("{}").unwrap();
        let format = template.output_format();
        assert_eq!(format, ponder_sdk::OutputFormat::default());
        let output = format.forced_output("", "Just the answer.");
        assert_eq!(
            template.parse(&output),
            Parsed::split("", "Just the answer.")
        );
    }

    #[test]
    fn rejects_configuration_keys() {
        assert!(DirectResponse::configure(r#"{"prompt": "x"}"#).is_err());
    }
}
