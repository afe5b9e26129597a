//! A thought template built against `ponder:plugin@0.2.0` (`wit/v0.2.0/`) with wit-bindgen
//! directly: the plain template of `guest_support` plus `get-output-format` (prefix `Thinking:` and a
//! line break, separator `Answer:`, forced response `"\nAnswer: "`).

guest_support::plain_template!(
    wit: "../../../wit/v0.2.0",
    fn get_output_format() -> exports::ponder::plugin::template::OutputFormat {
        exports::ponder::plugin::template::OutputFormat {
            assistant_prefix: "Thinking:\n".to_string(),
            response_separator: Some("Answer:".to_string()),
            forced_response: "\nAnswer: ".to_string(),
        }
    }
);
