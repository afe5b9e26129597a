//! The generic thought prompt of Thought Preference Optimization (Wu et al., arXiv 2410.10630,
//! Figure 2): the model may think, writes its thought after `Here is my thought process:` and its
//! response after `Here is my response:`.
//!
//! Output format (`ponder:plugin@0.2.0`): the host starts the assistant turn with
//! `Here is my thought process:` and a line break, and forces a response with
//! `"\n\nHere is my response:\n"`.
//!
//! Configuration (all optional):
//! - `accept_heres` (bool, default `false`): also accept the contractions `Here's my thought
//!   process:` / `Here's my response:` that small models often write.

use ponder_sdk::template::paper;
use ponder_sdk::{Message, OutputFormat, Parsed, PluginFailure, ThoughtTemplate, config};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    accept_heres: bool,
}

/// The generic thought template.
#[derive(Debug)]
pub struct GenericThought {
    thought_separators: Vec<&'static str>,
    response_separators: Vec<&'static str>,
}

impl ThoughtTemplate for GenericThought {
    fn configure(config: &str) -> Result<Self, PluginFailure> {
        let config: Config = config::parse(config)?;
        let mut thought_separators = vec![paper::THOUGHT_SEPARATOR];
        let mut response_separators = vec![paper::RESPONSE_SEPARATOR];
        if config.accept_heres {
            thought_separators.push(paper::THOUGHT_SEPARATOR_CONTRACTED);
            response_separators.push(paper::RESPONSE_SEPARATOR_CONTRACTED);
        }
        Ok(Self {
            thought_separators,
            response_separators,
        })
    }

    fn render(&self, instruction: &[Message]) -> Result<Vec<Message>, PluginFailure> {
        let prompt = format!("{}{}", paper::GENERIC_INSTRUCTION, paper::QUERY_LEAD);
        ponder_sdk::template::prefix_last_user_message(instruction, &prompt)
    }

    fn parse(&self, output: &str) -> Parsed {
        ponder_sdk::template::split_at_separators(
            output,
            &self.thought_separators,
            &self.response_separators,
        )
    }

    fn output_format(&self) -> OutputFormat {
        paper::generic_output_format()
    }
}

ponder_sdk::export_thought_template!(GenericThought);

#[cfg(test)]
mod tests {
    use super::*;

    fn template(config: &str) -> GenericThought {
        GenericThought::configure(config).unwrap()
    }

    #[test]
    fn render_puts_the_prompt_before_the_query() {
        let messages = template("{}")
            .render(&[Message::system("Be brief."), Message::user("Name a prime.")])
            .unwrap();
        assert_eq!(messages[0], Message::system("Be brief."));
        assert_eq!(messages[1].role, "user");
        assert!(
            messages[1]
                .content
                .starts_with("Respond to the following user query")
        );
        assert!(messages[1].content.ends_with("User query: Name a prime."));
    }

    #[test]
    fn parse_splits_at_both_separators() {
        let output = "Here is my thought process: primes are odd, mostly.\n\
                      Here is my response: 7 is prime.";
        assert_eq!(
            template("{}").parse(output),
            Parsed::split("primes are odd, mostly.", "7 is prime.")
        );
    }

    #[test]
    fn output_format_is_the_papers_separators() {
        let format = template("{}").output_format();
        assert_eq!(format.assistant_prefix, "Here is my thought process:\n");
        assert_eq!(
            format.response_separator.as_deref(),
            Some("Here is my response:")
        );
        assert_eq!(format.forced_response, "\n\nHere is my response:\n");
    }

    #[test]
    fn parse_accepts_prefix_thought_forced_response() {
        for config in ["{}", r#"{"accept_heres": true}"#] {
            let template = template(config);
            let output = template
                .output_format()
                .forced_output("7 is odd; is it prime? Yes.", "7 is prime.");
            assert_eq!(
                template.parse(&output),
                Parsed::split("7 is odd; is it prime? Yes.", "7 is prime.")
            );
        }
    }

    #[test]
    fn missing_response_separator_is_a_failure() {
        assert!(matches!(
            template("{}").parse("Here is my thought process: hmm"),
            Parsed::Failure(_)
        ));
    }

    #[test]
    fn contractions_only_when_configured() {
        let output = "Here's my thought process: x\nHere's my response: y";
        assert!(matches!(template("{}").parse(output), Parsed::Failure(_)));
        assert_eq!(
            template(r#"{"accept_heres": true}"#).parse(output),
            Parsed::split("x", "y")
        );
    }

    #[test]
    fn bad_config_names_the_key() {
        let error = GenericThought::configure(r#"{"accept_heres": "yes"}"#).unwrap_err();
        assert!(error.to_string().contains("accept_heres"), "{error}");
    }
}
