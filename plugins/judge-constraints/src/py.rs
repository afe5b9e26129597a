//! Python string semantics that IFEval's checkers depend on: `str.isspace`/`strip`,
//! `str.isupper`/`islower`, `re`'s `\w`, `\d`, `\b` and `re.IGNORECASE` matching, and the classes
//! of the `regex` engine NLTK's tokenizers run on (`regex_*`). Every function works on `char`s,
//! so none can split a multi-byte character.

use crate::py_tables::{CASE_FIXES, DECIMAL, NLTK_DECIMAL, NLTK_WORD, TITLECASE, WORD};

fn in_ranges(table: &[(char, char)], c: char) -> bool {
    table
        .binary_search_by(|&(start, end)| {
            if end < c {
                std::cmp::Ordering::Less
            } else if start > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// `str.isspace()` for one character (also `re`'s `\s`): Unicode White_Space plus the
/// information separators U+001C..U+001F that Python counts as whitespace.
pub fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `re`'s `\w`: `str.isalnum()` or `_`.
pub fn is_word(c: char) -> bool {
    in_ranges(WORD, c)
}

/// `re`'s `\d`: `str.isdecimal()`.
pub fn is_decimal(c: char) -> bool {
    in_ranges(DECIMAL, c)
}

/// The `regex` engine's `\s` (NLTK's patterns): Python's whitespace but U+001C..U+001F.
pub fn regex_is_space(c: char) -> bool {
    c.is_whitespace()
}

/// The `regex` engine's `\w` (NLTK's patterns): letters, marks, decimal digits, connector
/// punctuation and join controls.
pub fn regex_is_word(c: char) -> bool {
    in_ranges(NLTK_WORD, c)
}

/// The `regex` engine's `\d` (NLTK's patterns).
pub fn regex_is_decimal(c: char) -> bool {
    in_ranges(NLTK_DECIMAL, c)
}

/// Whether the `regex` engine's `\b` holds between `chars[at - 1]` and `chars[at]`.
pub fn regex_is_boundary(chars: &[char], at: usize) -> bool {
    let word = |i: Option<usize>| {
        i.and_then(|i| chars.get(i))
            .is_some_and(|&c| regex_is_word(c))
    };
    word(at.checked_sub(1)) != word(Some(at))
}

/// `str.strip()` without arguments.
pub fn strip(text: &str) -> &str {
    text.trim_matches(is_space)
}

/// `str.split()` without arguments.
pub fn split(text: &str) -> impl Iterator<Item = &str> {
    text.split(is_space).filter(|part| !part.is_empty())
}

fn is_title(c: char) -> bool {
    in_ranges(TITLECASE, c)
}

/// Some character of case `wanted`, none of case `other` nor titlecase (`str.isupper`'s loop).
fn only_case(text: &str, wanted: fn(char) -> bool, other: fn(char) -> bool) -> bool {
    let mut cased = false;
    for c in text.chars() {
        if other(c) || is_title(c) {
            return false;
        }
        cased |= wanted(c);
    }
    cased
}

/// `str.isupper()`: some uppercase character, no lowercase or titlecase one.
pub fn is_upper(text: &str) -> bool {
    only_case(text, char::is_uppercase, char::is_lowercase)
}

/// `str.islower()`: some lowercase character, no uppercase or titlecase one.
pub fn is_lower(text: &str) -> bool {
    only_case(text, char::is_lowercase, char::is_uppercase)
}

/// The key under which `re.IGNORECASE` compares a character: its simple lowercase mapping, then
/// the representative of `re`'s extra case classes (σ/ς, ı/i, ſ/s, …).
pub fn fold(c: char) -> char {
    let lower = c.to_lowercase().next().unwrap_or(c);
    match CASE_FIXES.binary_search_by_key(&lower, |&(letter, _)| letter) {
        Ok(index) => CASE_FIXES[index].1,
        Err(_) => lower,
    }
}

/// Folded characters of `text`, one per character (positions are preserved).
pub fn folded(text: &str) -> Vec<char> {
    text.chars().map(fold).collect()
}

/// Start positions (in characters) of the non-overlapping occurrences of `needle` in
/// `haystack`, left to right, as `re.finditer` finds a literal pattern. An empty needle matches
/// at every position, as in Python.
pub fn find_all(haystack: &[char], needle: &[char]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut at = 0;
    while at <= haystack.len() {
        if haystack[at..].starts_with(needle) {
            starts.push(at);
            at += needle.len().max(1);
        } else {
            at += 1;
        }
    }
    starts
}

/// `re.findall(literal, text, flags=re.IGNORECASE)` counted.
pub fn count_ignore_case(text: &str, literal: &str) -> usize {
    find_all(&folded(text), &folded(literal)).len()
}

/// `re.search(literal, text, flags=re.IGNORECASE)` succeeds.
pub fn contains_ignore_case(text: &str, literal: &str) -> bool {
    let haystack = folded(text);
    let needle = folded(literal);
    (0..=haystack.len()).any(|at| haystack[at..].starts_with(&needle))
}

/// Whether `re`'s `\b` holds between `chars[at - 1]` and `chars[at]`.
pub fn is_boundary(chars: &[char], at: usize) -> bool {
    let before = at
        .checked_sub(1)
        .and_then(|i| chars.get(i))
        .is_some_and(|&c| is_word(c));
    let after = chars.get(at).is_some_and(|&c| is_word(c));
    before != after
}

/// `re.search(r"\b" + literal + r"\b", text, flags=re.IGNORECASE)` succeeds.
pub fn contains_word_ignore_case(text: &str, literal: &str) -> bool {
    let haystack = folded(text);
    let needle = folded(literal);
    (0..=haystack.len().saturating_sub(needle.len())).any(|at| {
        haystack[at..].starts_with(&needle)
            && is_boundary(&haystack, at)
            && is_boundary(&haystack, at + needle.len())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_python() {
        assert!(is_word('é') && is_word('_') && is_word('٣') && !is_word('\u{301}'));
        // Devanagari vowel signs and circled letters are alphabetic in Rust, not `\w` in Python.
        assert!(!is_word('\u{93f}') && !is_word('Ⓐ'));
        assert!(is_decimal('٣') && !is_decimal('²'));
        assert!(is_space('\u{1f}') && is_space('\u{a0}') && !is_space('\u{200b}'));
        assert!(!is_upper("ǅEMAL") && is_upper("ǄEMAL 12") && !is_upper("123"));
        assert!(is_lower("straße ²") && !is_lower("ǆ ǅ"));
    }

    #[test]
    fn ignore_case_matches_like_re() {
        assert!(contains_ignore_case("THIS", "thıs"));
        assert!(contains_ignore_case("İstanbul", "istanbul"));
        assert!(contains_ignore_case("ΣΟΦΙΑΣ", "σοφιας"));
        assert_eq!(count_ignore_case("The the THE", "the"), 3);
        assert_eq!(count_ignore_case("aaaa", "aa"), 2);
        assert!(contains_word_ignore_case("a Cat.", "cat"));
        assert!(!contains_word_ignore_case("concatenate", "cat"));
        assert!(contains_word_ignore_case("x -y", "-y") == is_boundary(&folded("x -y"), 2));
    }
}
