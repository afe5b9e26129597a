//! The verifiable constraints and their checks, following IFEval's definitions.

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::{json, nltk, py};

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
            "keywords:existence" => {
                let keywords = args::<Keywords>(kwargs)?.keywords;
                if keywords.is_empty() {
                    // IFEval would draw random keywords.
                    return Err("`keywords` is empty".to_string());
                }
                Self::KeywordsIncluded(keywords)
            }
            "keywords:forbidden_words" => {
                let words = args::<Forbidden>(kwargs)?.forbidden_words;
                if words.is_empty() {
                    return Err("`forbidden_words` is empty".to_string());
                }
                Self::KeywordsExcluded(words)
            }
            "keywords:frequency" => {
                let a: KeywordFrequency = args(kwargs)?;
                let keyword = py::strip(&a.keyword);
                if keyword.is_empty() {
                    return Err("`keyword` is empty".to_string());
                }
                Self::KeywordFrequency {
                    keyword: keyword.to_string(),
                    relation: a.relation,
                    bound: a.frequency,
                }
            }
            "keywords:letter_frequency" => {
                let a: LetterFrequency = args(kwargs)?;
                // IFEval draws a random letter for anything but one ASCII letter.
                if a.letter.len() != 1 || !a.letter.chars().all(|c| c.is_ascii_alphabetic()) {
                    return Err(format!(
                        "`letter` {:?} is not a single ASCII letter",
                        a.letter
                    ));
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
                let splitter = py::strip(&a.section_spliter);
                if splitter.is_empty() {
                    return Err("`section_spliter` is empty".to_string());
                }
                Self::Sections {
                    splitter: splitter.to_string(),
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
                let marker = marker.as_deref().map_or("P.S.", py::strip);
                if marker.is_empty() {
                    return Err("`postscript_marker` is empty".to_string());
                }
                Self::Postscript(marker.to_string())
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

    /// Whether `response` satisfies this constraint, as IFEval's `check_following` decides.
    pub fn check(&self, response: &str) -> bool {
        match self {
            Self::Words { relation, bound } => relation.holds(words(response), *bound),
            Self::Sentences { relation, bound } => {
                relation.holds(nltk::count_sentences(response), *bound)
            }
            Self::Paragraphs { relation, bound } => match star_paragraphs(response) {
                None => false,
                Some(count) => match relation {
                    None => count == *bound,
                    Some(relation) => relation.holds(count, *bound),
                },
            },
            Self::NthParagraphFirstWord { count, nth, word } => {
                nth_paragraph_first_word(response, *count, *nth, word)
            }
            Self::KeywordsIncluded(keywords) => keywords
                .iter()
                .all(|k| py::contains_ignore_case(response, k)),
            Self::KeywordsExcluded(forbidden) => !forbidden
                .iter()
                .any(|w| py::contains_word_ignore_case(response, w)),
            Self::KeywordFrequency {
                keyword,
                relation,
                bound,
            } => relation.holds(py::count_ignore_case(response, keyword), *bound),
            Self::LetterFrequency {
                letter,
                relation,
                bound,
            } => relation.holds(
                response.to_lowercase().matches(letter.as_str()).count(),
                *bound,
            ),
            Self::BulletPoints(bound) => bullet_lines(response) == *bound,
            Self::Highlights(bound) => highlights(response) >= *bound,
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
            Self::Postscript(marker) => has_postscript(response, marker),
            Self::AllLowercase => py::is_lower(response),
            Self::AllCapitals => py::is_upper(response),
            Self::CapitalWords { relation, bound } => {
                let capitals = nltk::word_tokenize(response)
                    .iter()
                    .filter(|word| py::is_upper(word))
                    .count();
                relation.holds(capitals, *bound)
            }
            Self::NoCommas => !response.contains(','),
            Self::Quoted => {
                let stripped = py::strip(response);
                stripped.chars().nth(1).is_some()
                    && stripped.starts_with('"')
                    && stripped.ends_with('"')
            }
            Self::EndsWith(phrase) => py::strip(response)
                .trim_matches('"')
                .to_lowercase()
                .ends_with(&py::strip(phrase).to_lowercase()),
            Self::TwoResponses => two_responses(response),
            Self::RepeatPrompt(prompt) => py::strip(response)
                .to_lowercase()
                .starts_with(&py::strip(prompt).to_lowercase()),
        }
    }
}

/// IFEval's `count_words`: runs of `\w` (NLTK's `RegexpTokenizer(r"\w+")`, on the `regex`
/// engine).
fn words(text: &str) -> usize {
    text.split(|c: char| !py::regex_is_word(c))
        .filter(|w| !w.is_empty())
        .count()
}

/// IFEval's paragraph count: parts split by `\s?\*\*\*\s?`; an empty part is allowed only first
/// or last (`None` when one sits in the middle).
fn star_paragraphs(text: &str) -> Option<usize> {
    let chars: Vec<char> = text.chars().collect();
    let mut parts: Vec<&[char]> = Vec::new();
    let (mut start, mut at) = (0, 0);
    while at < chars.len() {
        let lead = usize::from(py::is_space(chars[at]) && chars[at + 1..].starts_with(&['*'; 3]));
        if lead == 1 || chars[at..].starts_with(&['*'; 3]) {
            let stars = at + lead + 3;
            let end = stars + usize::from(chars.get(stars).is_some_and(|&c| py::is_space(c)));
            parts.push(&chars[start..at]);
            start = end;
            at = end;
        } else {
            at += 1;
        }
    }
    parts.push(&chars[start..]);
    let blank = |part: &[char]| part.iter().all(|&c| py::is_space(c));
    let mut count = parts.len();
    for (index, part) in parts.iter().enumerate() {
        if blank(part) {
            if index == 0 || index == parts.len() - 1 {
                count -= 1;
            } else {
                return None;
            }
        }
    }
    Some(count)
}

/// IFEval's `ParagraphFirstWordCheck`: paragraphs split by `\n\n`, blank ones not counted (but
/// still indexed), the first word cut at its first punctuation mark.
fn nth_paragraph_first_word(text: &str, count: usize, nth: usize, word: &str) -> bool {
    let paragraphs: Vec<&str> = text.split("\n\n").collect();
    let non_blank = paragraphs
        .iter()
        .filter(|p| !py::strip(p).is_empty())
        .count();
    if nth > non_blank {
        return false;
    }
    let Some(paragraph) = nth.checked_sub(1).and_then(|i| paragraphs.get(i)) else {
        return false;
    };
    let Some(first) = py::split(paragraph).next() else {
        return false;
    };
    let first = first.trim_start_matches('\'').trim_start_matches('"');
    let cut = first
        .find(['.', ',', '?', '!', '\'', '"'])
        .unwrap_or(first.len());
    non_blank == count
        && first[..cut]
            .chars()
            .flat_map(char::to_lowercase)
            .eq(word.chars())
}

/// IFEval's bullet count: matches of `^\s*\*[^\*].*$` and `^\s*-.*$` (multiline). `\s*` may
/// run over blank lines and `[^\*]` over a newline, so one match can swallow the next line.
fn bullet_lines(text: &str) -> usize {
    let chars: Vec<char> = text.chars().collect();
    let line_end = |from: usize| {
        chars[from.min(chars.len())..]
            .iter()
            .position(|&c| c == '\n')
            .map_or(chars.len(), |i| from + i)
    };
    let star = |at: usize| {
        let mark = at + chars[at..].iter().take_while(|&&c| py::is_space(c)).count();
        (chars.get(mark) == Some(&'*') && chars.get(mark + 1).is_some_and(|&c| c != '*'))
            .then(|| line_end(mark + 2))
    };
    let dash = |at: usize| {
        let mark = at + chars[at..].iter().take_while(|&&c| py::is_space(c)).count();
        (chars.get(mark) == Some(&'-')).then(|| line_end(mark + 1))
    };
    let mut count = 0;
    for pattern in [&star as &dyn Fn(usize) -> Option<usize>, &dash] {
        let mut at = 0;
        while at <= chars.len() {
            let line_start = at == 0 || chars[at - 1] == '\n';
            match pattern(at).filter(|_| line_start) {
                Some(end) => {
                    count += 1;
                    at = if end > at { end } else { at + 1 };
                }
                None => at += 1,
            }
        }
    }
    count
}

/// IFEval's highlight count: `\*[^\n\*]*\*` matches with non-blank content, plus
/// `\*\*[^\n\*]*\*\*` matches with non-blank content.
fn highlights(text: &str) -> usize {
    let chars: Vec<char> = text.chars().collect();
    let mut count = 0;
    for width in [1, 2] {
        let mut at = 0;
        while at + width <= chars.len() {
            if chars[at..at + width].iter().any(|&c| c != '*') {
                at += 1;
                continue;
            }
            let start = at + width;
            let end = start
                + chars[start..]
                    .iter()
                    .take_while(|&&c| c != '\n' && c != '*')
                    .count();
            if chars.len() >= end + width && chars[end..end + width].iter().all(|&c| c == '*') {
                if chars[start..end].iter().any(|&c| !py::is_space(c)) {
                    count += 1;
                }
                at = end + width;
            } else {
                at += 1;
            }
        }
    }
    count
}

/// IFEval's section count: matches of `\s?SPLITTER\s?\d+\s?` (the splitter taken literally).
fn section_markers(text: &str, splitter: &str) -> usize {
    let chars: Vec<char> = text.chars().collect();
    let splitter: Vec<char> = splitter.chars().collect();
    let marker_at = |at: usize| -> Option<usize> {
        if !chars[at..].starts_with(&splitter) {
            return None;
        }
        let mut end = at + splitter.len();
        let space = chars.get(end).is_some_and(|&c| py::is_space(c));
        let digits = |from: usize| {
            chars[from.min(chars.len())..]
                .iter()
                .take_while(|&&c| py::is_decimal(c))
                .count()
        };
        let (after_space, run) = if space && digits(end + 1) > 0 {
            (end + 1, digits(end + 1))
        } else {
            (end, digits(end))
        };
        if run == 0 {
            return None;
        }
        end = after_space + run;
        Some(end + usize::from(chars.get(end).is_some_and(|&c| py::is_space(c))))
    };
    let mut count = 0;
    let mut at = 0;
    while at < chars.len() {
        let found = if py::is_space(chars[at]) {
            marker_at(at + 1).or_else(|| marker_at(at))
        } else {
            marker_at(at)
        };
        match found {
            Some(end) => {
                count += 1;
                at = end.max(at + 1);
            }
            None => at += 1,
        }
    }
    count
}

/// IFEval's title check: a `<<[^\n]+>>` match (greedy) whose content is not blank.
fn has_title(text: &str) -> bool {
    text.split('\n').any(|line| {
        let chars: Vec<char> = line.chars().collect();
        let mut at = 0;
        while at + 1 < chars.len() {
            if chars[at] != '<' || chars[at + 1] != '<' {
                at += 1;
                continue;
            }
            let close = (at + 3..chars.len().saturating_sub(1))
                .rev()
                .find(|&i| chars[i] == '>' && chars[i + 1] == '>');
            match close {
                Some(close) => {
                    let title: String = chars[at..close + 2].iter().collect();
                    let inner = title.trim_start_matches('<').trim_end_matches('>');
                    if !py::strip(inner).is_empty() {
                        return true;
                    }
                    at = close + 2;
                }
                None => at += 1,
            }
        }
        false
    })
}

/// IFEval's JSON check: stripped, the fence prefixes and suffix removed in IFEval's order, then
/// `json.loads` (which also takes `NaN`, `Infinity` and `-Infinity`).
fn is_json(text: &str) -> bool {
    let mut body = py::strip(text);
    for fence in ["```json", "```Json", "```JSON", "```"] {
        body = body.strip_prefix(fence).unwrap_or(body);
    }
    let body = py::strip(body.strip_suffix("```").unwrap_or(body));
    json::is_python_json(body)
}

/// IFEval's placeholder count: `\[.*?\]` matches (`.` stops at a newline).
fn placeholders(text: &str) -> usize {
    text.split('\n')
        .map(|line| {
            let mut count = 0;
            let mut rest = line;
            while let Some(open) = rest.find('[') {
                let after = &rest[open + 1..];
                match after.find(']') {
                    Some(close) => {
                        count += 1;
                        rest = &after[close + 1..];
                    }
                    None => break,
                }
            }
            count
        })
        .sum()
}

/// IFEval's postscript check on the lowercased response: `p\.\s?p\.\s?s` for `P.P.S`,
/// `p\.\s?s\.` for `P.S.`, the marker itself (lowercased, literally) otherwise.
fn has_postscript(text: &str, marker: &str) -> bool {
    let lower: Vec<char> = text.to_lowercase().chars().collect();
    let pattern: Vec<Option<char>> = match marker {
        "P.P.S" => vec![
            Some('p'),
            Some('.'),
            None,
            Some('p'),
            Some('.'),
            None,
            Some('s'),
        ],
        "P.S." => vec![Some('p'), Some('.'), None, Some('s'), Some('.')],
        other => other.to_lowercase().chars().map(Some).collect(),
    };
    // `None` is an optional whitespace (`\s?`).
    fn matches(text: &[char], pattern: &[Option<char>]) -> bool {
        match pattern.split_first() {
            None => true,
            Some((Some(c), rest)) => text.first() == Some(c) && matches(&text[1..], rest),
            Some((None, rest)) => {
                (text.first().is_some_and(|&c| py::is_space(c)) && matches(&text[1..], rest))
                    || matches(text, rest)
            }
        }
    }
    (0..=lower.len()).any(|at| matches(&lower[at..], &pattern))
}

fn two_responses(text: &str) -> bool {
    let parts: Vec<&str> = text.split("******").collect();
    let mut kept = Vec::new();
    for (index, part) in parts.iter().enumerate() {
        if py::strip(part).is_empty() {
            if index != 0 && index != parts.len() - 1 {
                return false;
            }
        } else {
            kept.push(py::strip(part));
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
        assert_eq!(nltk::count_sentences(text), 3);
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
        assert_eq!(super::highlights(highlights), 2);
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

    // Regressions found by `scripts/ifeval/compare.py`; each expectation is IFEval's verdict.

    #[test]
    fn ellipses_do_not_end_sentences() {
        let id = "length_constraints:number_sentences";
        let one = json!({"num_sentences": 2, "relation": "less than"});
        assert!(holds(id, one.clone(), "Honestly... I'm not sure."));
        assert!(holds(id, one.clone(), "J. K. Rowling wrote it."));
        assert!(!holds(id, one, "Hello! How are you?"));
    }

    #[test]
    fn capital_words_are_nltk_tokens() {
        let id = "change_case:capital_word_frequency";
        let two = json!({"capital_frequency": 2, "capital_relation": "less than"});
        assert!(holds(id, two.clone(), "P.P.S. see you"));
        assert!(holds(id, two.clone(), "WELL-KNOWN fact"));
        assert!(!holds(id, two, "I CANNOT"));
    }

    #[test]
    fn case_checks_follow_python_str_methods() {
        assert!(!holds("change_case:english_capital", json!({}), "ǅEMAL"));
        assert!(holds("change_case:english_lowercase", json!({}), "ǆemal ²"));
    }

    #[test]
    fn words_are_python_word_characters() {
        let id = "length_constraints:number_words";
        // U+093F (a vowel sign) is alphabetic in Rust but not `\w` in Python: two words.
        let three = json!({"num_words": 3, "relation": "less than"});
        assert!(holds(id, three, "ह\u{93f}न"));
    }

    #[test]
    fn keywords_match_like_re_ignorecase() {
        assert!(holds(
            "keywords:existence",
            json!({"keywords": ["this"]}),
            "THıS"
        ));
        let frequency = json!({"keyword": " tea ", "frequency": 2, "relation": "at least"});
        assert!(holds("keywords:frequency", frequency, "TEA, tea"));
    }

    #[test]
    fn bullets_follow_the_multiline_patterns() {
        let id = "detectable_format:number_bullet_lists";
        // `\*[^\*].*$` swallows the newline after a lone `*`, and with it the next line.
        assert!(holds(id, json!({"num_bullets": 1}), "*\n* b"));
        assert!(holds(id, json!({"num_bullets": 2}), "\n\n  * a\n-b"));
    }

    #[test]
    fn paragraph_dividers_take_one_space_each_side() {
        let id = "length_constraints:number_paragraphs";
        assert!(holds(id, json!({"num_paragraphs": 2}), "a *** b"));
        assert!(holds(id, json!({"num_paragraphs": 2}), "a\n\n***\n\nb"));
        assert!(!holds(id, json!({"num_paragraphs": 2}), "a *** *** b"));
    }

    #[test]
    fn nth_paragraph_indexes_blank_paragraphs_too() {
        let id = "length_constraints:nth_paragraph_first_word";
        let kwargs = json!({"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "b"});
        // Paragraph 2 is the blank one between "a" and "b": IFEval fails it.
        assert!(!holds(id, kwargs.clone(), "a\n\n\n\nb"));
        assert!(holds(id, kwargs, "a\n\n'b's"));
    }

    #[test]
    fn titles_json_and_postscripts_follow_the_reference() {
        assert!(holds("detectable_format:title", json!({}), "<< >> x >>"));
        assert!(holds(
            "detectable_format:json_format",
            json!({}),
            "```json```NaN"
        ));
        assert!(!holds("detectable_format:json_format", json!({}), "[1,]"));
        let ps = json!({"postscript_marker": "P.S."});
        assert!(holds(
            "detectable_content:postscript",
            ps.clone(),
            "see p. s. here"
        ));
        assert!(!holds("detectable_content:postscript", ps, "PS: later"));
    }

    #[test]
    fn sections_allow_one_space_around_the_number() {
        let id = "detectable_format:multiple_sections";
        let two = json!({"section_spliter": "SECTION", "num_sections": 2});
        assert!(holds(id, two.clone(), "SECTION 1 a SECTION2 b"));
        assert!(!holds(id, two, "SECTION  1 a SECTION 2 b"));
    }

    #[test]
    fn arguments_ifeval_would_randomise_are_rejected() {
        for (id, kwargs) in [
            ("keywords:existence", json!({"keywords": []})),
            ("keywords:forbidden_words", json!({"forbidden_words": []})),
            (
                "keywords:letter_frequency",
                json!({"letter": "é", "let_frequency": 1, "let_relation": "at least"}),
            ),
        ] {
            assert!(Constraint::from_ifeval(id, kwargs).is_err(), "{id}");
        }
    }
}
