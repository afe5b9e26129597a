//! The verifiable constraints and their checks, following IFEval's definitions.

use serde::Deserialize;
use serde::de::DeserializeOwned;

/// How a count compares with its bound.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
pub enum Relation {
    /// `count < bound` (IFEval's "less than").
    #[serde(rename = "less than")]
    LessThan,
    /// `count ≥ bound`.
    #[serde(rename = "at least")]
    AtLeast,
    /// `count ≤ bound`.
    #[serde(rename = "at most")]
    AtMost,
}

impl Relation {
    fn holds(self, count: usize, bound: usize) -> bool {
        match self {
            Self::LessThan => count < bound,
            Self::AtLeast => count >= bound,
            Self::AtMost => count <= bound,
        }
    }
}

/// One verifiable constraint.
#[derive(Clone, Debug, PartialEq)]
pub enum Constraint {
    /// `length_constraints:number_words` — words (`\w+` runs) compared with a bound.
    Words { relation: Relation, bound: usize },
    /// `length_constraints:number_sentences` — sentences compared with a bound.
    Sentences { relation: Relation, bound: usize },
    /// `length_constraints:number_paragraphs` — paragraphs separated by `***`: exactly `bound`,
    /// or compared with it when a relation is given.
    Paragraphs {
        relation: Option<Relation>,
        bound: usize,
    },
    /// `length_constraints:nth_paragraph_first_word` — `count` paragraphs separated by blank
    /// lines, paragraph `nth` (1-based) starting with `word`.
    NthParagraphFirstWord {
        count: usize,
        nth: usize,
        word: String,
    },
    /// `keywords:existence` — every keyword occurs (case-insensitive).
    KeywordsIncluded(Vec<String>),
    /// `keywords:forbidden_words` — no word occurs as a whole word (case-insensitive).
    KeywordsExcluded(Vec<String>),
    /// `keywords:frequency` — occurrences of a keyword compared with a bound.
    KeywordFrequency {
        keyword: String,
        relation: Relation,
        bound: usize,
    },
    /// `keywords:letter_frequency` — occurrences of a letter compared with a bound.
    LetterFrequency {
        letter: String,
        relation: Relation,
        bound: usize,
    },
    /// `detectable_format:number_bullet_lists` — exactly `bound` markdown bullet lines.
    BulletPoints(usize),
    /// `detectable_format:number_highlighted_sections` — at least `bound` `*highlighted*` parts.
    Highlights(usize),
    /// `detectable_format:multiple_sections` — at least `bound` sections `SPLITTER N`.
    Sections { splitter: String, bound: usize },
    /// `detectable_format:title` — a title in `<<double angular brackets>>`.
    Title,
    /// `detectable_format:json_format` — the whole response (markdown fence allowed) is JSON.
    Json,
    /// `detectable_format:constrained_response` — says "My answer is yes./no./maybe.".
    ConstrainedResponse,
    /// `detectable_content:number_placeholders` — at least `bound` `[placeholders]`.
    Placeholders(usize),
    /// `detectable_content:postscript` — a postscript starting with the marker (`P.S.`).
    Postscript(String),
    /// `change_case:english_lowercase` — no capital letters.
    AllLowercase,
    /// `change_case:english_capital` — no lowercase letters.
    AllCapitals,
    /// `change_case:capital_word_frequency` — all-capital words compared with a bound.
    CapitalWords { relation: Relation, bound: usize },
    /// `punctuation:no_comma` — no comma.
    NoCommas,
    /// `startend:quotation` — wrapped in double quotes.
    Quoted,
    /// `startend:end_checker` — ends with the phrase (case-insensitive).
    EndsWith(String),
    /// `combination:two_responses` — two different responses separated by `******`.
    TwoResponses,
    /// `combination:repeat_prompt` — starts by repeating the request (case-insensitive).
    RepeatPrompt(String),
}

fn args<T: DeserializeOwned>(kwargs: serde_json::Value) -> Result<T, String> {
    // IFEval rows carry every argument name with `null` for the unused ones: drop those.
    let kwargs = match kwargs {
        serde_json::Value::Object(map) => {
            serde_json::Value::Object(map.into_iter().filter(|(_, v)| !v.is_null()).collect())
        }
        other => other,
    };
    serde_json::from_value(kwargs).map_err(|error| error.to_string())
}

#[derive(Deserialize)]
struct Words {
    num_words: usize,
    relation: Relation,
}
#[derive(Deserialize)]
struct Sentences {
    num_sentences: usize,
    relation: Relation,
}
#[derive(Deserialize)]
struct Paragraphs {
    num_paragraphs: usize,
    relation: Option<Relation>,
}
#[derive(Deserialize)]
struct NthParagraph {
    num_paragraphs: usize,
    nth_paragraph: usize,
    first_word: String,
}
#[derive(Deserialize)]
struct Keywords {
    keywords: Vec<String>,
}
#[derive(Deserialize)]
struct Forbidden {
    forbidden_words: Vec<String>,
}
#[derive(Deserialize)]
struct KeywordFrequency {
    keyword: String,
    frequency: usize,
    relation: Relation,
}
#[derive(Deserialize)]
struct LetterFrequency {
    letter: String,
    let_frequency: usize,
    let_relation: Relation,
}
#[derive(Deserialize)]
struct Bullets {
    num_bullets: usize,
}
#[derive(Deserialize)]
struct Highlights {
    num_highlights: usize,
}
#[derive(Deserialize)]
struct Sections {
    section_spliter: String,
    num_sections: usize,
}
#[derive(Deserialize)]
struct Placeholders {
    num_placeholders: usize,
}
#[derive(Deserialize)]
struct Postscript {
    postscript_marker: Option<String>,
}
#[derive(Deserialize)]
struct CapitalWords {
    capital_frequency: usize,
    capital_relation: Relation,
}
#[derive(Deserialize)]
struct EndPhrase {
    end_phrase: String,
}
#[derive(Deserialize)]
struct RepeatPrompt {
    prompt_to_repeat: String,
}

impl Constraint {
    /// Builds a constraint from an IFEval instruction id and its keyword arguments; the error
    /// names an unknown id or the argument at fault.
    pub fn from_ifeval(id: &str, kwargs: serde_json::Value) -> Result<Self, String> {
        Ok(match id {
            "length_constraints:number_words" => {
                let a: Words = args(kwargs)?;
                Self::Words {
                    relation: a.relation,
                    bound: a.num_words,
                }
            }
            "length_constraints:number_sentences" => {
                let a: Sentences = args(kwargs)?;
                Self::Sentences {
                    relation: a.relation,
                    bound: a.num_sentences,
                }
            }
            "length_constraints:number_paragraphs" => {
                let a: Paragraphs = args(kwargs)?;
                Self::Paragraphs {
                    relation: a.relation,
                    bound: a.num_paragraphs,
                }
            }
            "length_constraints:nth_paragraph_first_word" => {
                let a: NthParagraph = args(kwargs)?;
                if a.nth_paragraph == 0 || a.nth_paragraph > a.num_paragraphs {
                    return Err(format!(
                        "`nth_paragraph` {} is outside 1..={}",
                        a.nth_paragraph, a.num_paragraphs
                    ));
                }
                Self::NthParagraphFirstWord {
                    count: a.num_paragraphs,
                    nth: a.nth_paragraph,
                    word: a.first_word.to_lowercase(),
                }
            }
            "keywords:existence" => Self::KeywordsIncluded(args::<Keywords>(kwargs)?.keywords),
            "keywords:forbidden_words" => {
                Self::KeywordsExcluded(args::<Forbidden>(kwargs)?.forbidden_words)
            }
            "keywords:frequency" => {
                let a: KeywordFrequency = args(kwargs)?;
                if a.keyword.is_empty() {
                    return Err("`keyword` is empty".to_string());
                }
                Self::KeywordFrequency {
                    keyword: a.keyword.to_lowercase(),
                    relation: a.relation,
                    bound: a.frequency,
                }
            }
            "keywords:letter_frequency" => {
                let a: LetterFrequency = args(kwargs)?;
                if a.letter.chars().count() != 1 {
                    return Err(format!("`letter` {:?} is not a single letter", a.letter));
                }
                Self::LetterFrequency {
                    letter: a.letter.to_lowercase(),
                    relation: a.let_relation,
                    bound: a.let_frequency,
                }
            }
            "detectable_format:number_bullet_lists" => {
                Self::BulletPoints(args::<Bullets>(kwargs)?.num_bullets)
            }
            "detectable_format:number_highlighted_sections" => {
                Self::Highlights(args::<Highlights>(kwargs)?.num_highlights)
            }
            "detectable_format:multiple_sections" => {
                let a: Sections = args(kwargs)?;
                if a.section_spliter.trim().is_empty() {
                    return Err("`section_spliter` is empty".to_string());
                }
                Self::Sections {
                    splitter: a.section_spliter.trim().to_string(),
                    bound: a.num_sections,
                }
            }
            "detectable_format:title" => Self::Title,
            "detectable_format:json_format" => Self::Json,
            "detectable_format:constrained_response" => Self::ConstrainedResponse,
            "detectable_content:number_placeholders" => {
                Self::Placeholders(args::<Placeholders>(kwargs)?.num_placeholders)
            }
            "detectable_content:postscript" => {
                let marker = args::<Postscript>(kwargs)?.postscript_marker;
                Self::Postscript(marker.unwrap_or_else(|| "P.S.".to_string()))
            }
            "change_case:english_lowercase" => Self::AllLowercase,
            "change_case:english_capital" => Self::AllCapitals,
            "change_case:capital_word_frequency" => {
                let a: CapitalWords = args(kwargs)?;
                Self::CapitalWords {
                    relation: a.capital_relation,
                    bound: a.capital_frequency,
                }
            }
            "punctuation:no_comma" => Self::NoCommas,
            "startend:quotation" => Self::Quoted,
            "startend:end_checker" => Self::EndsWith(args::<EndPhrase>(kwargs)?.end_phrase),
            "combination:two_responses" => Self::TwoResponses,
            "combination:repeat_prompt" => {
                Self::RepeatPrompt(args::<RepeatPrompt>(kwargs)?.prompt_to_repeat)
            }
            unknown => return Err(format!("unknown constraint kind `{unknown}`")),
        })
    }

    /// Whether `response` satisfies this constraint.
    pub fn check(&self, response: &str) -> bool {
        match self {
            Self::Words { relation, bound } => relation.holds(words(response).count(), *bound),
            Self::Sentences { relation, bound } => relation.holds(sentences(response), *bound),
            Self::Paragraphs { relation, bound } => match star_paragraphs(response) {
                None => false,
                Some(count) => match relation {
                    None => count == *bound,
                    Some(relation) => relation.holds(count, *bound),
                },
            },
            Self::NthParagraphFirstWord { count, nth, word } => {
                let paragraphs: Vec<&str> = response
                    .split("\n\n")
                    .filter(|paragraph| !paragraph.trim().is_empty())
                    .collect();
                paragraphs.len() == *count
                    && paragraphs.get(nth - 1).is_some_and(|paragraph| {
                        let first = paragraph.split_whitespace().next().unwrap_or("");
                        let first: String = first
                            .trim_matches(|c: char| !c.is_alphanumeric())
                            .to_lowercase();
                        first == *word
                    })
            }
            Self::KeywordsIncluded(keywords) => {
                let lower = response.to_lowercase();
                keywords.iter().all(|k| lower.contains(&k.to_lowercase()))
            }
            Self::KeywordsExcluded(forbidden) => {
                let lower = response.to_lowercase();
                !forbidden
                    .iter()
                    .any(|w| contains_whole_word(&lower, &w.to_lowercase()))
            }
            Self::KeywordFrequency {
                keyword,
                relation,
                bound,
            } => relation.holds(
                response.to_lowercase().matches(keyword.as_str()).count(),
                *bound,
            ),
            Self::LetterFrequency {
                letter,
                relation,
                bound,
            } => relation.holds(
                response.to_lowercase().matches(letter.as_str()).count(),
                *bound,
            ),
            Self::BulletPoints(bound) => bullet_lines(response) == *bound,
            Self::Highlights(bound) => {
                delimited(response, "*") + delimited(response, "**") >= *bound
            }
            Self::Sections { splitter, bound } => section_markers(response, splitter) >= *bound,
            Self::Title => has_title(response),
            Self::Json => is_json(response),
            Self::ConstrainedResponse => [
                "My answer is yes.",
                "My answer is no.",
                "My answer is maybe.",
            ]
            .iter()
            .any(|answer| response.contains(answer)),
            Self::Placeholders(bound) => placeholders(response) >= *bound,
            Self::Postscript(marker) => {
                let squash = |text: &str| -> String {
                    text.chars()
                        .filter(|c| !c.is_whitespace())
                        .collect::<String>()
                        .to_lowercase()
                };
                let marker = squash(marker);
                !marker.is_empty()
                    && response
                        .lines()
                        .any(|line| squash(line).starts_with(&marker))
            }
            Self::AllLowercase => is_lower(response),
            Self::AllCapitals => is_upper(response),
            Self::CapitalWords { relation, bound } => {
                relation.holds(words(response).filter(|w| is_upper(w)).count(), *bound)
            }
            Self::NoCommas => !response.contains(','),
            Self::Quoted => {
                let trimmed = response.trim();
                trimmed.len() > 1 && trimmed.starts_with('"') && trimmed.ends_with('"')
            }
            Self::EndsWith(phrase) => response
                .trim()
                .trim_matches('"')
                .to_lowercase()
                .ends_with(&phrase.trim().to_lowercase()),
            Self::TwoResponses => two_responses(response),
            Self::RepeatPrompt(prompt) => response
                .trim()
                .to_lowercase()
                .starts_with(&prompt.trim().to_lowercase()),
        }
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Runs of word characters, like the regex `\w+`.
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !is_word_char(c))
        .filter(|w| !w.is_empty())
}

/// Sentences: runs of text ending in `.`, `!` or `?` (followed by whitespace or the end), plus
/// trailing text without a terminator. A simplification of IFEval's splitter.
fn sentences(text: &str) -> usize {
    let chars: Vec<char> = text.chars().collect();
    let mut count = 0;
    let mut has_content = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if matches!(c, '.' | '!' | '?') {
            while i + 1 < chars.len() && matches!(chars[i + 1], '.' | '!' | '?') {
                i += 1;
            }
            let at_boundary = chars.get(i + 1).is_none_or(|next| next.is_whitespace());
            if at_boundary && has_content {
                count += 1;
                has_content = false;
            }
        } else if c.is_alphanumeric() {
            has_content = true;
        }
        i += 1;
    }
    count + usize::from(has_content)
}

/// IFEval's paragraph count: parts between `***` dividers; an empty part is allowed only first or
/// last (`None` when one sits in the middle).
fn star_paragraphs(text: &str) -> Option<usize> {
    let parts: Vec<&str> = text.split("***").collect();
    let mut count = parts.len();
    for (index, part) in parts.iter().enumerate() {
        if part.trim().is_empty() {
            if index == 0 || index == parts.len() - 1 {
                count -= 1;
            } else {
                return None;
            }
        }
    }
    Some(count)
}

fn contains_whole_word(haystack: &str, word: &str) -> bool {
    if word.is_empty() {
        return false;
    }
    haystack.match_indices(word).any(|(start, _)| {
        let before = haystack[..start].chars().next_back();
        let after = haystack[start + word.len()..].chars().next();
        before.is_none_or(|c| !is_word_char(c)) && after.is_none_or(|c| !is_word_char(c))
    })
}

/// Markdown bullet lines: `* item` (not `**`) or `- item`.
fn bullet_lines(text: &str) -> usize {
    text.lines()
        .filter(|line| {
            let line = line.trim_start();
            (line.starts_with('*') && !line.starts_with("**")) || line.starts_with('-')
        })
        .count()
}

/// Non-overlapping `D…D` spans on one line whose content holds no `*` and is not blank, as
/// IFEval's `\*[^\n\*]*\*` and `\*\*[^\n\*]*\*\*` find them.
fn delimited(text: &str, delimiter: &str) -> usize {
    let bytes = text.as_bytes();
    let width = delimiter.len();
    let mut count = 0;
    let mut i = 0;
    while i + width <= bytes.len() {
        if !text[i..].starts_with(delimiter) {
            i += 1;
            continue;
        }
        let content_start = i + width;
        let end = text[content_start..]
            .find(['*', '\n'])
            .map(|offset| content_start + offset);
        match end {
            Some(end) if text[end..].starts_with(delimiter) => {
                if !text[content_start..end].trim().is_empty() {
                    count += 1;
                }
                i = end + width;
            }
            _ => i += 1,
        }
    }
    count
}

/// Occurrences of `SPLITTER N` (a number after the splitter, optionally after one space).
fn section_markers(text: &str, splitter: &str) -> usize {
    text.match_indices(splitter)
        .filter(|(start, _)| {
            let rest = &text[start + splitter.len()..];
            let rest = rest.strip_prefix(' ').unwrap_or(rest);
            rest.starts_with(|c: char| c.is_ascii_digit())
        })
        .count()
}

fn has_title(text: &str) -> bool {
    text.lines().any(|line| {
        line.match_indices("<<").any(|(start, _)| {
            line[start + 2..].find(">>").is_some_and(|end| {
                !line[start + 2..start + 2 + end]
                    .trim_matches(['<', '>'])
                    .trim()
                    .is_empty()
            })
        })
    })
}

fn is_json(text: &str) -> bool {
    let mut body = text.trim();
    for fence in ["```json", "```Json", "```JSON", "```"] {
        if let Some(rest) = body.strip_prefix(fence) {
            body = rest;
            break;
        }
    }
    let body = body.strip_suffix("```").unwrap_or(body).trim();
    serde_json::from_str::<serde_json::Value>(body).is_ok()
}

/// `[…]` spans within one line, like IFEval's `\[.*?\]`.
fn placeholders(text: &str) -> usize {
    text.lines()
        .map(|line| {
            let mut count = 0;
            let mut rest = line;
            while let Some(open) = rest.find('[') {
                match rest[open + 1..].find(']') {
                    Some(close) => {
                        count += 1;
                        rest = &rest[open + 1 + close + 1..];
                    }
                    None => break,
                }
            }
            count
        })
        .sum()
}

/// Python's `str.islower`: some cased letter and no capital.
fn is_lower(text: &str) -> bool {
    text.chars().any(char::is_lowercase) && !text.chars().any(char::is_uppercase)
}

/// Python's `str.isupper`: some cased letter and no lowercase letter.
fn is_upper(text: &str) -> bool {
    text.chars().any(char::is_uppercase) && !text.chars().any(char::is_lowercase)
}

fn two_responses(text: &str) -> bool {
    let parts: Vec<&str> = text.split("******").collect();
    let mut kept = Vec::new();
    for (index, part) in parts.iter().enumerate() {
        if part.trim().is_empty() {
            if index != 0 && index != parts.len() - 1 {
                return false;
            }
        } else {
            kept.push(part.trim());
        }
    }
    kept.len() == 2 && kept[0] != kept[1]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn constraint(id: &str, kwargs: serde_json::Value) -> Constraint {
        Constraint::from_ifeval(id, kwargs).unwrap()
    }

    fn holds(id: &str, kwargs: serde_json::Value, response: &str) -> bool {
        constraint(id, kwargs).check(response)
    }

    #[test]
    fn word_counts() {
        let id = "length_constraints:number_words";
        assert!(holds(
            id,
            json!({"num_words": 3, "relation": "at least"}),
            "one two, three"
        ));
        assert!(!holds(
            id,
            json!({"num_words": 3, "relation": "less than"}),
            "one two three"
        ));
        assert!(holds(
            id,
            json!({"num_words": 3, "relation": "at most"}),
            "one two three"
        ));
    }

    #[test]
    fn sentence_counts() {
        let id = "length_constraints:number_sentences";
        let text = "It is 3.5 metres. Really?! Yes… and more";
        assert_eq!(sentences(text), 3);
        assert!(holds(
            id,
            json!({"num_sentences": 3, "relation": "at most"}),
            text
        ));
        assert!(!holds(
            id,
            json!({"num_sentences": 4, "relation": "at least"}),
            text
        ));
    }

    #[test]
    fn paragraph_counts() {
        let id = "length_constraints:number_paragraphs";
        let text = "first\n***\nsecond\n***\nthird";
        assert!(holds(id, json!({"num_paragraphs": 3}), text));
        assert!(!holds(id, json!({"num_paragraphs": 2}), text));
        assert!(holds(
            id,
            json!({"num_paragraphs": 2, "relation": "at least"}),
            text
        ));
        assert!(!holds(id, json!({"num_paragraphs": 2}), "a\n***\n***\nb"));
        let nth = "length_constraints:nth_paragraph_first_word";
        let kwargs = json!({"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "Then"});
        assert!(holds(nth, kwargs.clone(), "First part.\n\n\"Then, more."));
        assert!(!holds(nth, kwargs, "First part.\n\nAfter that."));
    }

    #[test]
    fn keywords() {
        assert!(holds(
            "keywords:existence",
            json!({"keywords": ["Rust", "wasm"]}),
            "rust and WASM"
        ));
        assert!(!holds(
            "keywords:existence",
            json!({"keywords": ["go"]}),
            "rust"
        ));
        let forbidden = json!({"forbidden_words": ["cat"]});
        assert!(holds(
            "keywords:forbidden_words",
            forbidden.clone(),
            "concatenate"
        ));
        assert!(!holds("keywords:forbidden_words", forbidden, "A Cat."));
        let frequency = json!({"keyword": "the", "frequency": 2, "relation": "at least"});
        assert!(holds(
            "keywords:frequency",
            frequency.clone(),
            "The cat and the dog"
        ));
        assert!(!holds("keywords:frequency", frequency, "The cat"));
        let letters = json!({"letter": "Z", "let_frequency": 2, "let_relation": "less than"});
        assert!(holds("keywords:letter_frequency", letters.clone(), "zebra"));
        assert!(!holds("keywords:letter_frequency", letters, "Zizz"));
    }

    #[test]
    fn formats() {
        let bullets = "Intro\n* one\n- two\n**bold** line";
        assert!(holds(
            "detectable_format:number_bullet_lists",
            json!({"num_bullets": 2}),
            bullets
        ));
        assert!(!holds(
            "detectable_format:number_bullet_lists",
            json!({"num_bullets": 3}),
            bullets
        ));
        let highlights = "*one* and **two** and ** ** and *";
        assert_eq!(delimited(highlights, "*") + delimited(highlights, "**"), 2);
        let id = "detectable_format:number_highlighted_sections";
        assert!(holds(id, json!({"num_highlights": 2}), highlights));
        assert!(!holds(id, json!({"num_highlights": 3}), highlights));
        let sections = "SECTION 1\nintro\nSECTION 2\nmore";
        let id = "detectable_format:multiple_sections";
        assert!(holds(
            id,
            json!({"section_spliter": "SECTION", "num_sections": 2}),
            sections
        ));
        assert!(!holds(
            id,
            json!({"section_spliter": "Section", "num_sections": 1}),
            sections
        ));
        assert!(holds(
            "detectable_format:title",
            json!({}),
            "<<My Title>>\nbody"
        ));
        assert!(!holds("detectable_format:title", json!({}), "<< >> <<\n>>"));
        assert!(holds(
            "detectable_format:json_format",
            json!({}),
            "```json\n{\"a\": 1}\n```"
        ));
        assert!(!holds("detectable_format:json_format", json!({}), "{a: 1}"));
        assert!(holds(
            "detectable_format:constrained_response",
            json!({}),
            "My answer is no."
        ));
    }

    #[test]
    fn content() {
        let id = "detectable_content:number_placeholders";
        assert!(holds(
            id,
            json!({"num_placeholders": 2}),
            "Dear [name], at [address]"
        ));
        assert!(!holds(id, json!({"num_placeholders": 2}), "Dear [name\n]"));
        let id = "detectable_content:postscript";
        assert!(holds(
            id,
            json!({"postscript_marker": "P.S."}),
            "Hi.\n\nP. S. see you"
        ));
        assert!(holds(
            id,
            json!({"postscript_marker": null}),
            "Hi.\np.s. bye"
        ));
        assert!(!holds(
            id,
            json!({"postscript_marker": "P.P.S"}),
            "Hi.\nP.S. bye"
        ));
    }

    #[test]
    fn cases_and_punctuation() {
        assert!(holds(
            "change_case:english_lowercase",
            json!({}),
            "all small 123"
        ));
        assert!(!holds(
            "change_case:english_lowercase",
            json!({}),
            "Not small"
        ));
        assert!(holds(
            "change_case:english_capital",
            json!({}),
            "ALL BIG, 42!"
        ));
        assert!(!holds("change_case:english_capital", json!({}), "123"));
        let capitals = json!({"capital_frequency": 2, "capital_relation": "at least"});
        assert!(holds(
            "change_case:capital_word_frequency",
            capitals.clone(),
            "USE THE api"
        ));
        assert!(!holds(
            "change_case:capital_word_frequency",
            capitals,
            "Use The api"
        ));
        assert!(holds("punctuation:no_comma", json!({}), "no commas here"));
        assert!(!holds("punctuation:no_comma", json!({}), "a, b"));
    }

    #[test]
    fn start_and_end() {
        assert!(holds("startend:quotation", json!({}), " \"quoted\" "));
        assert!(!holds("startend:quotation", json!({}), "\""));
        let end = json!({"end_phrase": "Any other questions?"});
        assert!(holds(
            "startend:end_checker",
            end.clone(),
            "Done. any other questions?\""
        ));
        assert!(!holds(
            "startend:end_checker",
            end,
            "Any other questions? Bye."
        ));
        let repeat = json!({"prompt_to_repeat": "Write a poem."});
        assert!(holds(
            "combination:repeat_prompt",
            repeat,
            "write a poem. Roses..."
        ));
    }

    #[test]
    fn two_responses_separated_by_stars() {
        assert!(holds(
            "combination:two_responses",
            json!({}),
            "one\n******\ntwo"
        ));
        assert!(!holds(
            "combination:two_responses",
            json!({}),
            "same\n******\nsame"
        ));
        assert!(!holds(
            "combination:two_responses",
            json!({}),
            "a\n******\n******\nb"
        ));
        assert!(!holds("combination:two_responses", json!({}), "only one"));
    }

    #[test]
    fn argument_errors_name_the_argument() {
        let error = Constraint::from_ifeval(
            "keywords:frequency",
            json!({"keyword": "x", "frequency": 1}),
        )
        .unwrap_err();
        assert!(error.contains("relation"), "{error}");
        let error = Constraint::from_ifeval(
            "length_constraints:number_words",
            json!({"num_words": 3, "relation": "about"}),
        )
        .unwrap_err();
        assert!(error.contains("about"), "{error}");
    }
}
