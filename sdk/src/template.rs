//! Helpers shared by thought templates: placing a prompt, splitting at separators, and the
//! output format of separator-based templates.

use crate::{Message, OutputFormat, Parsed, PluginFailure};

/// Prompt texts and separators of the paper (Wu et al., "Thinking LLMs: General Instruction
/// Following with Thought Generation", arXiv 2410.10630, Figure 2), for templates to reuse.
pub mod paper {
    /// The generic thought instruction (without the trailing user query).
    pub const GENERIC_INSTRUCTION: &str = "Respond to the following user query in a \
comprehensive and detailed way. You can write down your thought process before responding. \
Write your thoughts after \u{201c}Here is my thought process:\u{201d} and write your response \
after \u{201c}Here is my response:\u{201d}.";

    /// The specific thought instruction: draft a response, evaluate it, answer after `<R>`.
    pub const SPECIFIC_INSTRUCTION: &str = "Respond to the following user query in a \
comprehensive and detailed way. But first write down your internal thoughts. This must include \
your draft response and its evaluation. After this, write your final response after \
\u{201c}<R>\u{201d}.";

    /// The draft version of the specific instruction, with tags around thought and response.
    pub const SPECIFIC_TAGGED_INSTRUCTION: &str = "Respond to the following user query in a \
comprehensive and detailed way. But first write down your internal thoughts. This must include \
your draft response and its evaluation. Write your internal thoughts inside <internal thought> \
</internal thought> tags, then write your final response inside <response> </response> tags.";

    /// Joins an instruction above and the user query below.
    pub const QUERY_LEAD: &str = "\n\nUser query: ";

    /// Generic prompt: the thought follows this.
    pub const THOUGHT_SEPARATOR: &str = "Here is my thought process:";
    /// Generic prompt: the response follows this.
    pub const RESPONSE_SEPARATOR: &str = "Here is my response:";
    /// The contraction of [`THOUGHT_SEPARATOR`] small models often write.
    pub const THOUGHT_SEPARATOR_CONTRACTED: &str = "Here's my thought process:";
    /// The contraction of [`RESPONSE_SEPARATOR`].
    pub const RESPONSE_SEPARATOR_CONTRACTED: &str = "Here's my response:";
    /// Specific prompt: the final response follows this.
    pub const FINAL_RESPONSE_SEPARATOR: &str = "<R>";

    /// The output format of the generic prompt: the assistant turn starts with
    /// `Here is my thought process:` and a line break; a forced response is
    /// `"\n\nHere is my response:\n"`.
    pub fn generic_output_format() -> crate::OutputFormat {
        super::separated_output_format(Some(THOUGHT_SEPARATOR), RESPONSE_SEPARATOR)
    }
}

/// The output format of a template whose outputs open with `thought_separator` (when given) and
/// give the response after `response_separator`: the host starts the assistant turn with the
/// thought separator and a line break, and forces a response with a blank line, the response
/// separator and a line break. [`split_at_separators`] with the same separators parses both.
pub fn separated_output_format(
    thought_separator: Option<&str>,
    response_separator: &str,
) -> OutputFormat {
    OutputFormat {
        assistant_prefix: thought_separator
            .map(|separator| format!("{separator}\n"))
            .unwrap_or_default(),
        response_separator: Some(response_separator.to_string()),
        forced_response: format!("\n\n{response_separator}\n"),
    }
}

/// Returns `instruction` with `prompt` put in front of its last user message (`prompt + x`, as
/// the paper does). An instruction without a user message is invalid input.
pub fn prefix_last_user_message(
    instruction: &[Message],
    prompt: &str,
) -> Result<Vec<Message>, PluginFailure> {
    wrap_last_user_message(instruction, prompt, "")
}

/// Returns `instruction` with its last user message replaced by `before + content + after`.
pub fn wrap_last_user_message(
    instruction: &[Message],
    before: &str,
    after: &str,
) -> Result<Vec<Message>, PluginFailure> {
    let last_user = last_user_index(instruction)?;
    let mut messages = instruction.to_vec();
    let content = &messages[last_user].content;
    messages[last_user].content = format!("{before}{content}{after}");
    Ok(messages)
}

/// Returns `instruction` with a system message carrying `prompt`: prepended to an existing
/// leading system message (separated by a blank line), or inserted as the first message.
pub fn with_system_prompt(
    instruction: &[Message],
    prompt: &str,
) -> Result<Vec<Message>, PluginFailure> {
    last_user_index(instruction)?;
    let mut messages = instruction.to_vec();
    match messages.first_mut() {
        Some(first) if first.role == "system" => {
            first.content = format!("{prompt}\n\n{}", first.content);
        }
        _ => messages.insert(0, Message::system(prompt)),
    }
    Ok(messages)
}

fn last_user_index(instruction: &[Message]) -> Result<usize, PluginFailure> {
    instruction
        .iter()
        .rposition(|message| message.role == "user")
        .ok_or_else(|| PluginFailure::invalid_input("the instruction has no user message"))
}

/// The earliest occurrence of any of `needles` in `haystack` at or after `from`: the start of
/// the match and its end.
fn find_earliest(haystack: &str, from: usize, needles: &[&str]) -> Option<(usize, usize)> {
    needles
        .iter()
        .filter(|needle| !needle.is_empty())
        .filter_map(|needle| {
            haystack[from..]
                .find(*needle)
                .map(|at| (from + at, from + at + needle.len()))
        })
        .min_by_key(|(start, _)| *start)
}

/// Splits `output` into thought and response by exact separator match.
///
/// The response is the text after the first response separator (any of `response_separators`)
/// and must not be empty. When `thought_separators` is not empty, one of them must come first and
/// the thought is the text between it and the response separator; otherwise the thought is
/// everything before the response separator. Both parts are trimmed.
pub fn split_at_separators(
    output: &str,
    thought_separators: &[&str],
    response_separators: &[&str],
) -> Parsed {
    let thought_start = if thought_separators.is_empty() {
        0
    } else {
        match find_earliest(output, 0, thought_separators) {
            Some((_, end)) => end,
            None => {
                return Parsed::failure(format!(
                    "the thought separator {:?} is missing",
                    thought_separators[0]
                ));
            }
        }
    };
    let Some((response_separator, response_start)) =
        find_earliest(output, thought_start, response_separators)
    else {
        return Parsed::failure(format!(
            "the response separator {:?} is missing",
            response_separators.first().copied().unwrap_or_default()
        ));
    };
    split_or_failure(
        &output[thought_start..response_separator],
        &output[response_start..],
    )
}

/// Splits `output` at an opening and closing tag pair for the thought and another for the
/// response (`<internal thought>…</internal thought> <response>…</response>`). A missing closing
/// response tag is tolerated (generation may stop right before it).
pub fn split_at_tags(
    output: &str,
    thought_tags: (&str, &str),
    response_tags: (&str, &str),
) -> Parsed {
    let Some((_, thought_start)) = find_earliest(output, 0, &[thought_tags.0]) else {
        return Parsed::failure(format!("the tag {:?} is missing", thought_tags.0));
    };
    let Some((thought_end, after_thought)) =
        find_earliest(output, thought_start, &[thought_tags.1])
    else {
        return Parsed::failure(format!("the tag {:?} is missing", thought_tags.1));
    };
    let Some((_, response_start)) = find_earliest(output, after_thought, &[response_tags.0]) else {
        return Parsed::failure(format!("the tag {:?} is missing", response_tags.0));
    };
    let response_end = find_earliest(output, response_start, &[response_tags.1])
        .map_or(output.len(), |(start, _)| start);
    split_or_failure(
        &output[thought_start..thought_end],
        &output[response_start..response_end],
    )
}

fn split_or_failure(thought: &str, response: &str) -> Parsed {
    let response = response.trim();
    if response.is_empty() {
        return Parsed::failure("the response is empty");
    }
    Parsed::split(thought.trim(), response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_goes_on_the_last_user_message() {
        let messages = prefix_last_user_message(
            &[
                Message::user("a"),
                Message::assistant("b"),
                Message::user("c"),
            ],
            "P: ",
        )
        .unwrap();
        assert_eq!(messages[0].content, "a");
        assert_eq!(messages[2].content, "P: c");
    }

    #[test]
    fn no_user_message_is_invalid_input() {
        assert!(matches!(
            prefix_last_user_message(&[Message::system("s")], "P"),
            Err(PluginFailure::InvalidInput(_))
        ));
        assert!(with_system_prompt(&[], "P").is_err());
    }

    #[test]
    fn system_prompt_merges_or_inserts() {
        let inserted = with_system_prompt(&[Message::user("q")], "P").unwrap();
        assert_eq!(inserted, vec![Message::system("P"), Message::user("q")]);
        let merged = with_system_prompt(&[Message::system("S"), Message::user("q")], "P").unwrap();
        assert_eq!(merged[0].content, "P\n\nS");
        assert_eq!(merged.len(), 2);
    }

    #[test]
    fn response_separator_must_follow_the_thought_separator() {
        let parsed = split_at_separators("R: early T: thought R: late", &["T:"], &["R:"]);
        assert_eq!(parsed, Parsed::split("thought", "late"));
        assert!(matches!(
            split_at_separators("R: x", &["T:"], &["R:"]),
            Parsed::Failure(_)
        ));
    }

    #[test]
    fn empty_response_is_a_failure() {
        assert!(matches!(
            split_at_separators("think <R>  \n", &[], &["<R>"]),
            Parsed::Failure(_)
        ));
    }

    #[test]
    fn separated_output_format_round_trips_through_the_split() {
        let format = paper::generic_output_format();
        assert_eq!(format.assistant_prefix, "Here is my thought process:\n");
        assert_eq!(
            format.response_separator.as_deref(),
            Some("Here is my response:")
        );
        assert_eq!(format.forced_response, "\n\nHere is my response:\n");
        let output = format.forced_output("a thought", "the answer");
        assert_eq!(
            split_at_separators(
                &output,
                &[paper::THOUGHT_SEPARATOR],
                &[paper::RESPONSE_SEPARATOR]
            ),
            Parsed::split("a thought", "the answer")
        );
        assert_eq!(separated_output_format(None, "<R>").assistant_prefix, "");
    }

    #[test]
    fn tags_split() {
        let parsed = split_at_tags("<t>x</t> <r>y", ("<t>", "</t>"), ("<r>", "</r>"));
        assert_eq!(parsed, Parsed::split("x", "y"));
        assert!(matches!(
            split_at_tags("<t>x <r>y</r>", ("<t>", "</t>"), ("<r>", "</r>")),
            Parsed::Failure(_)
        ));
    }
}
