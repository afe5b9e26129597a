//! Chat templates: Hugging Face Jinja templates rendered with minijinja under transformers'
//! conventions (trim_blocks, lstrip_blocks, Python string methods, `raise_exception`).

use std::path::Path;

use minijinja::{Environment, ErrorKind, Value as JinjaValue, context};
use serde_json::Value;

use crate::CheckpointError;

/// One turn of a conversation: the plugin contract's message (`ponder-contract`), so chat
/// templates render exactly what thought templates return.
pub use ponder_contract::Message;

const TEMPLATE_NAME: &str = "chat";

/// Work one render may do: minijinja charges one fuel per instruction and about one per 64
/// bytes a template creates, so this bounds both the time (well under a second) and the memory
/// (about 64 MB) of a render. Templates come from model files, so they are untrusted; real ones
/// spend a few thousand fuel on a conversation plus one per 64 bytes of its text.
pub const CHAT_TEMPLATE_FUEL: u64 = 1_000_000;

/// The longest prompt a render may produce, far beyond any model's context.
pub const MAX_RENDERED_PROMPT_BYTES: usize = 16 << 20;

/// Nesting depth of loops, conditions and macro calls (each call counts several levels). Real
/// chat templates nest a handful of levels; the bound keeps hostile recursion off the stack.
const RECURSION_LIMIT: usize = 100;

/// A compiled chat template with the special tokens it may refer to.
#[derive(Clone)]
pub struct ChatTemplate {
    source: String,
    bos_token: String,
    eos_token: String,
    env: Environment<'static>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("source", &self.source)
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .finish()
    }
}

fn template_error(e: minijinja::Error) -> CheckpointError {
    if e.kind() == ErrorKind::OutOfFuel {
        return CheckpointError::ChatTemplate(format!(
            "rendering exceeded the work budget of {CHAT_TEMPLATE_FUEL} fuel (instructions and \
             bytes created) that untrusted templates run under: the template loops or grows \
             strings without bound ({e})"
        ));
    }
    // minijinja's alternate form includes the template line and the cause chain.
    let mut message = format!("{e:#}");
    if message.is_empty() {
        message = e.to_string();
    }
    CheckpointError::ChatTemplate(message)
}

/// The rendered prompt, refusing to grow past [`MAX_RENDERED_PROMPT_BYTES`].
#[derive(Default)]
struct BoundedOutput {
    bytes: Vec<u8>,
    overflowed: bool,
}

impl std::io::Write for BoundedOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len().saturating_add(buf.len()) > MAX_RENDERED_PROMPT_BYTES {
            self.overflowed = true;
            return Err(std::io::Error::other("rendered prompt too long"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl ChatTemplate {
    /// Compiles a template. `bos_token`/`eos_token` are the strings the template's
    /// `bos_token`/`eos_token` variables hold (empty when the model has none).
    ///
    /// # Errors
    ///
    /// [`CheckpointError::ChatTemplate`] when the template does not compile.
    pub fn new(
        source: impl Into<String>,
        bos_token: Option<&str>,
        eos_token: Option<&str>,
    ) -> Result<Self, CheckpointError> {
        let source = source.into();
        let mut env = Environment::new();
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(template_error)?;
        env.set_syntax(syntax);
        env.set_fuel(Some(CHAT_TEMPLATE_FUEL));
        env.set_recursion_limit(RECURSION_LIMIT);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |message: String| -> Result<JinjaValue, minijinja::Error> {
                Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
            },
        );
        env.add_function("strftime_now", |format: String| strftime_now(&format));
        env.add_template_owned(TEMPLATE_NAME, source.clone())
            .map_err(template_error)?;
        Ok(ChatTemplate {
            source,
            bos_token: bos_token.unwrap_or_default().to_string(),
            eos_token: eos_token.unwrap_or_default().to_string(),
            env,
        })
    }

    /// Renders with the Hugging Face conventions (bos_token/eos_token variables,
    /// raise_exception, Python-compatible string methods). BOS appears as the template writes
    /// it; `Checkpoint::encode_chat` adds it when the model wants BOS and the template did not.
    ///
    /// The render runs under [`CHAT_TEMPLATE_FUEL`] and may write at most
    /// [`MAX_RENDERED_PROMPT_BYTES`]: the template comes from a model file.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::ChatTemplate`] when rendering fails (the template raises, uses
    /// something undefined, exceeds its work budget or writes too long a prompt).
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String, CheckpointError> {
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(template_error)?;
        let mut output = BoundedOutput::default();
        let rendered = template.render_captured_to(
            context! {
                messages => messages_value(messages),
                add_generation_prompt => add_generation_prompt,
                bos_token => self.bos_token.as_str(),
                eos_token => self.eos_token.as_str(),
            },
            &mut output,
        );
        if output.overflowed {
            return Err(CheckpointError::ChatTemplate(format!(
                "the rendered prompt exceeds {MAX_RENDERED_PROMPT_BYTES} bytes"
            )));
        }
        rendered.map_err(template_error)?;
        String::from_utf8(output.bytes).map_err(|_| {
            CheckpointError::ChatTemplate("the rendered prompt is not UTF-8".to_string())
        })
    }

    /// The template's Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The string `bos_token` holds in the template.
    pub fn bos_token(&self) -> &str {
        &self.bos_token
    }

    /// The string `eos_token` holds in the template.
    pub fn eos_token(&self) -> &str {
        &self.eos_token
    }
}

/// Messages as the list of `{role, content}` maps templates index into.
fn messages_value(messages: &[Message]) -> JinjaValue {
    messages
        .iter()
        .map(|m| {
            JinjaValue::from_pairs([
                ("role", JinjaValue::from(m.role.as_str())),
                ("content", JinjaValue::from(m.content.as_str())),
            ])
        })
        .collect()
}

/// The chat template source of a Hugging Face directory: `chat_template.jinja`, else
/// `tokenizer_config.json`'s `chat_template` (a string, or a list of named templates of which
/// `default` or else the first is used).
pub(crate) fn hf_template_source(
    dir: &Path,
    tokenizer_config: &serde_json::Map<String, Value>,
) -> Result<Option<String>, CheckpointError> {
    let jinja = dir.join("chat_template.jinja");
    if jinja.is_file() {
        return std::fs::read_to_string(&jinja)
            .map(Some)
            .map_err(|e| CheckpointError::io(&jinja, e));
    }
    let bad = |message: &str| CheckpointError::Json {
        path: dir.join("tokenizer_config.json"),
        message: format!("chat_template: {message}"),
    };
    match tokenizer_config.get("chat_template") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Array(items)) => {
            let named = |item: &Value| -> Option<(String, String)> {
                Some((
                    item.get("name")?.as_str()?.to_string(),
                    item.get("template")?.as_str()?.to_string(),
                ))
            };
            let templates: Vec<(String, String)> = items.iter().filter_map(named).collect();
            if templates.is_empty() {
                return Err(bad("a list without {name, template} entries"));
            }
            let chosen = templates
                .iter()
                .find(|(name, _)| name == "default")
                .unwrap_or(&templates[0]);
            Ok(Some(chosen.1.clone()))
        }
        Some(_) => Err(bad("must be a string or a list of named templates")),
    }
}

/// `strftime_now(format)` for templates that print today's date (Llama 3.1): UTC, with the
/// common directives %d %m %Y %y %b %B %a %A %H %M %S %j %%.
fn strftime_now(format: &str) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format_utc(secs, format)
}

fn format_utc(secs: u64, format: &str) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = [
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
    ];
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy_march = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy_march + 2) / 153;
    let day = doy_march - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let is_leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let cumulative = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let day_of_year = cumulative[(month - 1) as usize] + day + i64::from(is_leap && month > 2);
    let month_name = MONTHS[(month - 1) as usize];
    let weekday = DAYS[days.rem_euclid(7) as usize];

    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => out.push_str(&format!("{day:02}")),
            Some('m') => out.push_str(&format!("{month:02}")),
            Some('Y') => out.push_str(&year.to_string()),
            Some('y') => out.push_str(&format!("{:02}", year % 100)),
            Some('b') => out.push_str(&month_name[..3]),
            Some('B') => out.push_str(month_name),
            Some('a') => out.push_str(&weekday[..3]),
            Some('A') => out.push_str(weekday),
            Some('H') => out.push_str(&format!("{:02}", rem / 3600)),
            Some('M') => out.push_str(&format!("{:02}", rem % 3600 / 60)),
            Some('S') => out.push_str(&format!("{:02}", rem % 60)),
            Some('j') => out.push_str(&format!("{day_of_year:03}")),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_a_known_date() {
        // 2024-02-29 13:05:09 UTC, a Thursday.
        assert_eq!(
            format_utc(1_709_211_909, "%d %b %Y %H:%M:%S %A %j %%"),
            "29 Feb 2024 13:05:09 Thursday 060 %"
        );
    }

    #[test]
    fn python_string_methods_and_raise_exception_work() {
        let source = "{% for m in messages %}{% if m.role == 'bad' %}{{ raise_exception('no bad roles') }}{% endif %}{{ bos_token }}{{ m.content.strip().upper() }}{% endfor %}";
        let template = ChatTemplate::new(source, Some("<s>"), None).unwrap();
        let out = template
            .render(&[Message::new("user", "  hi  ")], false)
            .unwrap();
        assert_eq!(out, "<s>HI");
        let err = template
            .render(&[Message::new("bad", "x")], false)
            .unwrap_err();
        assert!(err.to_string().contains("no bad roles"), "{err}");
    }

    #[test]
    fn blocks_are_trimmed_like_transformers() {
        let source = "{% for m in messages %}\n  {% if true %}\n{{ m.content }}\n  {% endif %}\n{% endfor %}";
        let template = ChatTemplate::new(source, None, None).unwrap();
        let out = template
            .render(
                &[Message::new("user", "a"), Message::new("user", "b")],
                false,
            )
            .unwrap();
        assert_eq!(out, "a\nb\n");
    }
}
