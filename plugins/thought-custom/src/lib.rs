//! A thought template read entirely from the manifest, so a user swaps the prompt strategy by
//! editing the manifest alone.
//!
//! Configuration:
//! - `prompt` (string, required): the thought instruction.
//! - `placement` (`"prefix"` (default) | `"suffix"` | `"system"`): put `prompt` verbatim in front
//!   of the last user message, after it, or in a system message.
//! - `thought_separators` (list of strings, default none): when given, one must open the thought.
//! - `response_separators` (list of strings, default none): the response follows the first of
//!   them; the thought is what comes before. When none are given, the whole output is the
//!   response.
//! - `assistant_prefix` (string): the text the host starts the assistant turn with (part of the
//!   output; `ponder:plugin@0.2.0` output format). Default: the first thought separator and a
//!   line break, or nothing when there is no thought separator.
//! - `forced_response` (string): what the host appends to a thought that ended without a
//!   response separator when the run forces the response; it must contain a response separator.
//!   Default: a blank line, the first response separator and a line break. Only with
//!   `response_separators`.
//!
//! ```toml
//! [plugins.template]
//! wasm = "target/plugins/thought-custom.wasm"
//! config = { prompt = "Think step by step, then answer after 'Answer:'.\n\n", response_separators = ["Answer:"] }
//! ```

use ponder_sdk::template;
use ponder_sdk::{Message, OutputFormat, Parsed, PluginFailure, ThoughtTemplate, config};
use serde::Deserialize;

/// Where the prompt goes.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// In front of the last user message.
    #[default]
    Prefix,
    /// After the last user message.
    Suffix,
    /// In a system message.
    System,
}

/// The configurable template.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomThought {
    prompt: String,
    #[serde(default)]
    placement: Placement,
    #[serde(default)]
    thought_separators: Vec<String>,
    #[serde(default)]
    response_separators: Vec<String>,
    #[serde(default)]
    assistant_prefix: Option<String>,
    #[serde(default)]
    forced_response: Option<String>,
}

impl ThoughtTemplate for CustomThought {
    fn configure(config: &str) -> Result<Self, PluginFailure> {
        let template: Self = config::parse(config)?;
        let all_separators = template
            .thought_separators
            .iter()
            .chain(&template.response_separators);
        if all_separators.clone().any(|separator| separator.is_empty()) {
            return Err(PluginFailure::invalid_config(
                "config key `thought_separators`/`response_separators`: a separator is empty",
            ));
        }
        if !template.thought_separators.is_empty() && template.response_separators.is_empty() {
            return Err(PluginFailure::invalid_config(
                "config key `response_separators`: required when `thought_separators` is given",
            ));
        }
        if let Some(forced) = &template.forced_response
            && !template
                .response_separators
                .iter()
                .any(|separator| forced.contains(separator.as_str()))
        {
            return Err(PluginFailure::invalid_config(
                "config key `forced_response`: must contain one of `response_separators`",
            ));
        }
        Ok(template)
    }

    fn render(&self, instruction: &[Message]) -> Result<Vec<Message>, PluginFailure> {
        match self.placement {
            Placement::Prefix => template::wrap_last_user_message(instruction, &self.prompt, ""),
            Placement::Suffix => template::wrap_last_user_message(instruction, "", &self.prompt),
            Placement::System => template::with_system_prompt(instruction, &self.prompt),
        }
    }

    fn parse(&self, output: &str) -> Parsed {
        if self.response_separators.is_empty() {
            let response = output.trim();
            return if response.is_empty() {
                Parsed::failure("the output is empty")
            } else {
                Parsed::split("", response)
            };
        }
        let thought: Vec<&str> = self.thought_separators.iter().map(String::as_str).collect();
        let response: Vec<&str> = self
            .response_separators
            .iter()
            .map(String::as_str)
            .collect();
        template::split_at_separators(output, &thought, &response)
    }

    fn output_format(&self) -> OutputFormat {
        let mut format = match self.response_separators.first() {
            Some(separator) => template::separated_output_format(
                self.thought_separators.first().map(String::as_str),
                separator,
            ),
            None => OutputFormat::default(),
        };
        if let Some(prefix) = &self.assistant_prefix {
            format.assistant_prefix = prefix.clone();
        }
        if let Some(forced) = &self.forced_response {
            format.forced_response = forced.clone();
        }
        format
    }
}

ponder_sdk::export_thought_template!(CustomThought);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placements() {
        let user = [Message::user("Q")];
        let prefix = CustomThought::configure(r#"{"prompt": "P "}"#).unwrap();
        assert_eq!(prefix.render(&user).unwrap()[0].content, "P Q");
        let suffix =
            CustomThought::configure(r#"{"prompt": " P", "placement": "suffix"}"#).unwrap();
        assert_eq!(suffix.render(&user).unwrap()[0].content, "Q P");
        let system = CustomThought::configure(r#"{"prompt": "P", "placement": "system"}"#).unwrap();
        assert_eq!(
            system.render(&user).unwrap(),
            vec![Message::system("P"), Message::user("Q")]
        );
    }

    #[test]
    fn separators_from_config() {
        let template = CustomThought::configure(
            r#"{"prompt": "", "thought_separators": ["Thinking:"], "response_separators": ["Answer:", "A:"]}"#,
        )
        .unwrap();
        assert_eq!(
            template.parse("Thinking: hm A: 4"),
            Parsed::split("hm", "4")
        );
        assert!(matches!(template.parse("A: 4"), Parsed::Failure(_)));
        let whole = CustomThought::configure(r#"{"prompt": ""}"#).unwrap();
        assert_eq!(whole.parse(" all "), Parsed::split("", "all"));
    }

    #[test]
    fn output_format_follows_the_separators() {
        let separated = CustomThought::configure(
            r#"{"prompt": "", "thought_separators": ["Thinking:"], "response_separators": ["Answer:", "A:"]}"#,
        )
        .unwrap();
        let format = separated.output_format();
        assert_eq!(format.assistant_prefix, "Thinking:\n");
        assert_eq!(format.response_separator.as_deref(), Some("Answer:"));
        assert_eq!(format.forced_response, "\n\nAnswer:\n");
        let output = format.forced_output("hm, 2+2", "4");
        assert_eq!(separated.parse(&output), Parsed::split("hm, 2+2", "4"));

        let whole = CustomThought::configure(r#"{"prompt": ""}"#).unwrap();
        assert_eq!(whole.output_format(), OutputFormat::default());
    }

    #[test]
    fn output_format_is_configurable() {
        let template = CustomThought::configure(
            r#"{"prompt": "", "response_separators": ["Answer:"], "assistant_prefix": "Let me think. ", "forced_response": " So: Answer: "}"#,
        )
        .unwrap();
        let format = template.output_format();
        assert_eq!(format.assistant_prefix, "Let me think. ");
        assert_eq!(format.forced_response, " So: Answer: ");
        let output = format.forced_output("it is 4", "4");
        assert_eq!(
            template.parse(&output),
            Parsed::split("Let me think. it is 4 So:", "4")
        );
        let bad = CustomThought::configure(
            r#"{"prompt": "", "response_separators": ["Answer:"], "forced_response": "\n"}"#,
        )
        .unwrap_err();
        assert!(bad.to_string().contains("forced_response"), "{bad}");
        let without = CustomThought::configure(r#"{"prompt": "", "forced_response": "A:"}"#);
        assert!(without.is_err());
    }

    #[test]
    fn bad_config_is_named() {
        let missing = CustomThought::configure("{}").unwrap_err();
        assert!(missing.to_string().contains("prompt"), "{missing}");
        let placement =
            CustomThought::configure(r#"{"prompt": "", "placement": "middle"}"#).unwrap_err();
        assert!(placement.to_string().contains("placement"), "{placement}");
        let empty =
            CustomThought::configure(r#"{"prompt": "", "response_separators": [""]}"#).unwrap_err();
        assert!(matches!(empty, PluginFailure::InvalidConfig(_)));
    }
}
