//! The two NLTK tokenizers IFEval counts with, ported from NLTK 3.10:
//!
//! - Punkt sentence splitting (`nltk.tokenize.punkt.PunktSentenceTokenizer`) with default,
//!   untrained parameters: no known abbreviations, collocations, sentence starters or
//!   orthographic statistics (what NLTK loads from an empty `punkt_tab/english` model);
//! - `nltk.word_tokenize`: Punkt sentences, then the improved Treebank word tokenizer
//!   (`nltk.tokenize.destructive.NLTKWordTokenizer`).
//!
//! Both work on `char` slices (Python indexes strings by code point), so no byte index can fall
//! inside a multi-byte character.

use crate::py;

type Chars = [char];

/// Closing quotes and brackets (`re_boundary_realignment`'s class), which Punkt moves onto the
/// sentence they follow.
fn is_closing(c: char) -> bool {
    matches!(
        c,
        '"' | '\'' | ')' | ']' | '}' | '‘' | '’' | '“' | '”' | '«' | '»'
    )
}

/// `PunktLanguageVars._re_non_word_chars`: characters that cannot appear within words.
fn is_non_word(c: char) -> bool {
    is_closing(c) || matches!(c, ';' | '*' | ':' | '@' | '(' | '{' | '[' | '?' | '!')
}

/// `PunktLanguageVars._re_word_start`, negated: characters that cannot start a word.
fn is_not_word_start(c: char) -> bool {
    matches!(
        c,
        '(' | '"'
            | '`'
            | '{'
            | '['
            | ':'
            | ';'
            | '&'
            | '#'
            | '*'
            | '@'
            | ')'
            | '}'
            | ']'
            | '-'
            | ','
    )
}

/// Length of `_re_multi_char_punct` (`--+`, `..+`, `. . .`) matched at `at`.
fn multi_char(text: &Chars, at: usize) -> Option<usize> {
    let run = |c: char| text[at..].iter().take_while(|&&x| x == c).count();
    match text.get(at) {
        Some('-') if run('-') >= 2 => Some(run('-')),
        Some('.') if run('.') >= 2 => Some(run('.')),
        Some('.') => {
            let mut pairs = 0;
            while text.get(at + 2 * pairs) == Some(&'.')
                && text
                    .get(at + 2 * pairs + 1)
                    .is_some_and(|&c| py::regex_is_space(c))
            {
                pairs += 1;
            }
            if pairs >= 2 && text.get(at + 2 * pairs) == Some(&'.') {
                Some(2 * pairs + 1)
            } else if pairs >= 3 {
                Some(2 * pairs - 1)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// Whether a Punkt word may end before `at` (`_word_tokenize_fmt`'s end lookahead).
fn word_ends_at(text: &Chars, at: usize) -> bool {
    let boundary = |i: usize| {
        text.get(i)
            .is_none_or(|&c| py::regex_is_space(c) || is_non_word(c))
            || multi_char(text, i).is_some()
    };
    boundary(at) || (text[at] == ',' && boundary(at + 1))
}

/// `PunktLanguageVars.word_tokenize` of one line.
fn punkt_words(line: &Chars) -> Vec<&Chars> {
    let mut words = Vec::new();
    let mut at = 0;
    while at < line.len() {
        if let Some(len) = multi_char(line, at) {
            words.push(&line[at..at + len]);
            at += len;
            continue;
        }
        let c = line[at];
        if py::regex_is_space(c) {
            at += 1;
            continue;
        }
        let mut end = at + 1;
        if !is_not_word_start(c) {
            while end < line.len() && !py::regex_is_space(line[end]) && !word_ends_at(line, end) {
                end += 1;
            }
        }
        words.push(&line[at..end]);
        at = end;
    }
    words
}

/// A Punkt token with the annotations the sentence tokenizer uses.
struct Token<'a> {
    tok: &'a Chars,
    sentbreak: bool,
    ellipsis: bool,
}

impl Token<'_> {
    fn period_final(&self) -> bool {
        self.tok.last() == Some(&'.')
    }

    /// `_RE_NUMERIC` (`^-?[\.,]?\d[\d,\.-]*\.?$`) matches.
    fn is_numeric(&self) -> bool {
        let mut i = usize::from(self.tok.first() == Some(&'-'));
        if self.tok.get(i).is_some_and(|c| matches!(c, '.' | ',')) {
            i += 1;
        }
        self.tok.get(i).is_some_and(|&c| py::regex_is_decimal(c))
            && self.tok[i + 1..]
                .iter()
                .all(|&c| py::regex_is_decimal(c) || matches!(c, ',' | '.' | '-'))
    }

    /// `_RE_INITIAL` (`[^\W\d]\.$`) matches.
    fn is_initial(&self) -> bool {
        matches!(self.tok, [c, '.'] if py::regex_is_word(*c) && !py::regex_is_decimal(*c))
    }

    fn first_upper(&self) -> bool {
        self.tok.first().is_some_and(|c| c.is_uppercase())
    }

    fn first_lower(&self) -> bool {
        self.tok.first().is_some_and(|c| c.is_lowercase())
    }
}

/// `_first_pass_annotation` with no known abbreviations.
fn first_pass(token: &mut Token) {
    let tok = token.tok;
    if matches!(tok, ['.'] | ['?'] | ['!']) {
        token.sentbreak = true;
    } else if tok.len() >= 2 && tok.iter().all(|&c| c == '.') {
        token.ellipsis = true;
    } else if token.period_final() && !tok.ends_with(&['.', '.']) {
        token.sentbreak = true;
    }
}

/// `_ortho_heuristic` with empty orthographic context: `Some(false)` ("not a sentence
/// starter") or `None` ("unknown"); it never answers `True` without statistics.
fn ortho_says_not_starter(token: &Token) -> bool {
    matches!(token.tok, [';' | ':' | ',' | '.' | '!' | '?']) || token.first_lower()
}

/// `_second_pass_annotation` with empty parameters: only initials and numbers change.
fn second_pass(first: &mut Token, next: &Token) {
    if !first.period_final() {
        return;
    }
    // Abbreviations and ellipses would need statistics to become breaks; with none, only the
    // initial and ordinal rules apply.
    let initial = first.is_initial();
    if (initial || first.is_numeric())
        && (ortho_says_not_starter(next) || (initial && next.first_upper()))
    {
        first.sentbreak = false;
    }
}

/// `text_contains_sentbreak`: a token marked as a break that is not the last token.
fn contains_sentbreak(text: &Chars) -> bool {
    let mut tokens: Vec<Token> = text
        .split(|&c| c == '\n')
        .filter(|line| line.iter().any(|&c| !py::is_space(c)))
        .flat_map(punkt_words)
        .map(|tok| Token {
            tok,
            sentbreak: false,
            ellipsis: false,
        })
        .collect();
    tokens.iter_mut().for_each(first_pass);
    for i in 0..tokens.len().saturating_sub(1) {
        let (head, tail) = tokens.split_at_mut(i + 1);
        second_pass(&mut head[i], &tail[0]);
        if head[i].sentbreak {
            return true;
        }
    }
    false
}

/// One match of `period_context_re`: the end character's position and its lookahead.
struct EndContext {
    at: usize,
    after_end: usize,
    next_tok: Option<usize>,
}

/// `period_context_re().finditer(text)`.
fn end_contexts(text: &Chars) -> Vec<EndContext> {
    let mut found = Vec::new();
    for (at, &c) in text.iter().enumerate() {
        if !matches!(c, '.' | '?' | '!') {
            continue;
        }
        match text.get(at + 1) {
            Some(&next) if is_non_word(next) => found.push(EndContext {
                at,
                after_end: at + 2,
                next_tok: None,
            }),
            Some(&next) if py::regex_is_space(next) => {
                let start = at
                    + 1
                    + text[at + 1..]
                        .iter()
                        .take_while(|&&c| py::regex_is_space(c))
                        .count();
                let len = text[start..]
                    .iter()
                    .take_while(|&&c| !py::regex_is_space(c))
                    .count();
                if len > 0 {
                    found.push(EndContext {
                        at,
                        after_end: start + len,
                        next_tok: Some(start),
                    });
                }
            }
            _ => {}
        }
    }
    found
}

/// `_match_potential_end_contexts`: each candidate with the text Punkt inspects around it.
fn potential_ends(text: &Chars) -> Vec<(EndContext, Vec<char>)> {
    let ascii_space = |c: &char| matches!(c, ' ' | '\t' | '\n' | '\r' | '\u{b}' | '\u{c}');
    let context = |slice: (usize, usize), m: &EndContext| {
        let mut context: Vec<char> = text
            .get(slice.0..slice.1)
            .map(<[char]>::to_vec)
            .unwrap_or_default();
        context.extend_from_slice(&text[m.at..m.after_end]);
        context
    };
    let mut out = Vec::new();
    let mut previous_slice = (0, 0);
    let mut previous: Option<EndContext> = None;
    for m in end_contexts(text) {
        let before = text.get(previous_slice.1..m.at).unwrap_or(&[]);
        let last_space = before.iter().rposition(ascii_space).unwrap_or(0);
        let start = if last_space > 0 {
            last_space + previous_slice.1 + 1
        } else {
            previous_slice.0
        };
        let word_slice = (start, m.at);
        // The previous candidate is dropped when its word overlaps this one's.
        if let Some(prev) = previous.take()
            && previous_slice.1 <= word_slice.0
        {
            let context = context(previous_slice, &prev);
            out.push((prev, context));
        }
        previous = Some(m);
        previous_slice = word_slice;
    }
    if let Some(prev) = previous {
        let context = context(previous_slice, &prev);
        out.push((prev, context));
    }
    out
}

/// `re_boundary_realignment.match(text)`: the end of the closing punctuation (and following
/// whitespace) that belongs to the previous sentence.
fn realignment(text: &Chars) -> Option<(usize, usize)> {
    for k in 1..=text.len() {
        if !is_closing(text[k - 1]) {
            return None;
        }
        let spaces = text[k..]
            .iter()
            .take_while(|&&c| py::regex_is_space(c))
            .count();
        if spaces > 0 {
            return Some((k, k + spaces));
        }
        if text[k..].starts_with(&['-', '-']) || k == text.len() || text[k] == '\n' {
            return Some((k, k));
        }
    }
    None
}

/// Punkt's sentence spans (`span_tokenize` with boundary realignment), in characters.
pub fn sentence_spans(text: &Chars) -> Vec<(usize, usize)> {
    let mut slices = Vec::new();
    let mut last_break = 0;
    for (m, context) in potential_ends(text) {
        if contains_sentbreak(&context) {
            slices.push((last_break, m.at + 1));
            last_break = m.next_tok.unwrap_or(m.at + 1);
        }
    }
    let stripped = text.len() - text.iter().rev().take_while(|&&c| py::is_space(c)).count();
    slices.push((last_break, stripped));

    let mut spans = Vec::new();
    let mut realign = 0;
    for (index, &(start, stop)) in slices.iter().enumerate() {
        let start = start + realign;
        let Some(&(next_start, next_stop)) = slices.get(index + 1) else {
            if start < stop {
                spans.push((start, stop));
            }
            continue;
        };
        let next = text.get(next_start..next_stop).unwrap_or(&[]);
        match realignment(next) {
            Some((closing_end, end)) => {
                let kept = next[..closing_end]
                    .iter()
                    .rposition(|&c| !py::is_space(c))
                    .map_or(0, |i| i + 1);
                spans.push((start, next_start + kept));
                realign = end;
            }
            None => {
                realign = 0;
                if start < stop {
                    spans.push((start, stop));
                }
            }
        }
    }
    spans
}

/// Punkt's sentence count (`len(tokenizer.tokenize(text))`), IFEval's `count_sentences`.
pub fn count_sentences(text: &str) -> usize {
    let chars: Vec<char> = text.chars().collect();
    sentence_spans(&chars).len()
}

/// One `re.sub` pass: `rule(text, at)` returns the end of a match starting at `at` and its
/// replacement; unmatched characters are copied.
fn substitute(
    text: &Chars,
    rule: impl Fn(&Chars, usize) -> Option<(usize, Vec<char>)>,
) -> Vec<char> {
    let mut out = Vec::with_capacity(text.len() + 8);
    let mut at = 0;
    while at < text.len() {
        match rule(text, at) {
            Some((end, replacement)) if end > at => {
                out.extend(replacement);
                at = end;
            }
            _ => {
                out.push(text[at]);
                at += 1;
            }
        }
    }
    out
}

/// `" " + s + " "` as characters.
fn padded(s: &Chars) -> Vec<char> {
    let mut out = Vec::with_capacity(s.len() + 2);
    out.push(' ');
    out.extend_from_slice(s);
    out.push(' ');
    out
}

/// Pads every character `pick` accepts with spaces.
fn pad_each(text: &Chars, pick: impl Fn(char) -> bool) -> Vec<char> {
    substitute(text, |t, at| {
        pick(t[at]).then(|| (at + 1, padded(&t[at..=at])))
    })
}

/// Pads every run (of at least `min` characters) of `c` with spaces.
fn pad_runs(text: &Chars, c: char, min: usize) -> Vec<char> {
    substitute(text, |t, at| {
        let len = t[at..].iter().take_while(|&&x| x == c).count();
        (len >= min).then(|| (at + len, padded(&t[at..at + len])))
    })
}

/// Replaces every non-overlapping `from` with `to`.
fn replace(text: &Chars, from: &str, to: &str) -> Vec<char> {
    let from: Vec<char> = from.chars().collect();
    substitute(text, |t, at| {
        t[at..]
            .starts_with(&from)
            .then(|| (at + from.len(), to.chars().collect()))
    })
}

/// Whether `text[at..]` starts with `word` under `re.IGNORECASE`.
fn starts_ignore_case(text: &Chars, at: usize, word: &str) -> bool {
    let mut chars = text[at..].iter();
    word.chars()
        .all(|w| chars.next().is_some_and(|&c| py::fold(c) == py::fold(w)))
}

/// The final-period rules: `([^\.])(\.)([CLOSERS]*)\s*$` → `\1 \2<sep>\3 `.
fn final_period(text: &Chars, closers: &[char], separator: &str) -> Vec<char> {
    for at in 0..text.len().saturating_sub(1) {
        if text[at] == '.' || text[at + 1] != '.' {
            continue;
        }
        let group = text[at + 2..]
            .iter()
            .take_while(|c| closers.contains(c))
            .count();
        let rest = &text[at + 2 + group..];
        if rest.iter().all(|&c| py::regex_is_space(c)) {
            let mut out = text[..=at].to_vec();
            out.push(' ');
            out.push('.');
            out.extend(separator.chars());
            out.extend_from_slice(&text[at + 2..at + 2 + group]);
            out.push(' ');
            return out;
        }
    }
    text.to_vec()
}

/// `NLTKWordTokenizer.tokenize` of one sentence.
fn treebank_words(sentence: &Chars) -> Vec<String> {
    // STARTING_QUOTES
    let mut t = pad_each(sentence, |c| matches!(c, '«' | '“' | '‘' | '„'));
    t = pad_runs(&t, '`', 1);
    if t.first() == Some(&'"') {
        t.splice(0..1, ['`', '`']);
    }
    t = replace(&t, "``", " `` ");
    t = substitute(&t, |t, at| {
        if !matches!(t[at], ' ' | '(' | '[' | '{' | '<') {
            return None;
        }
        let quote = match t.get(at + 1..) {
            Some(['"', ..]) => 1,
            Some(['\'', '\'', ..]) => 2,
            _ => return None,
        };
        let mut out = vec![t[at]];
        out.extend(" `` ".chars());
        Some((at + 1 + quote, out))
    });
    t = substitute(&t, |t, at| {
        let opening = t[at] == '\''
            && (at == 0 || !py::regex_is_word(t[at - 1]))
            && t.get(at + 1).is_some_and(|&c| py::regex_is_word(c))
            && !["re", "ve", "ll", "m", "t", "s", "d", "n"]
                .iter()
                .any(|suffix| {
                    starts_ignore_case(t, at + 1, suffix)
                        && py::regex_is_boundary(t, at + 1 + suffix.chars().count())
                });
        opening.then(|| (at + 1, vec!['\'', ' ']))
    });
    // PUNCTUATION
    t = final_period(
        &t,
        &[']', ')', '}', '>', '"', '\'', '»', '”', '’', ' '],
        " ",
    );
    t = substitute(&t, |t, at| {
        let next = *t.get(at + 1)?;
        (matches!(t[at], ':' | ',') && !py::regex_is_decimal(next))
            .then(|| (at + 2, vec![' ', t[at], ' ', next]))
    });
    t = substitute(&t, |t, at| {
        let at_end = at + 1 == t.len() || (at + 2 == t.len() && t[at + 1] == '\n');
        (matches!(t[at], ':' | ',') && at_end).then(|| (at + 1, padded(&t[at..=at])))
    });
    t = pad_runs(&t, '.', 2);
    t = pad_each(&t, |c| {
        matches!(
            c,
            ';' | '@' | '#' | '$' | '%' | '&' | '\u{2012}'..='\u{2015}'
        )
    });
    t = final_period(&t, &[']', ')', '}', '>', '"', '\''], "");
    t = pad_each(&t, |c| matches!(c, '?' | '!'));
    t = substitute(&t, |t, at| {
        (t[at] != '\'' && t.get(at + 1) == Some(&'\'') && t.get(at + 2) == Some(&' '))
            .then(|| (at + 3, vec![t[at], ' ', '\'', ' ']))
    });
    t = pad_each(&t, |c| c == '*');
    // PARENS_BRACKETS, DOUBLE_DASHES
    t = pad_each(&t, |c| {
        matches!(c, '[' | ']' | '(' | ')' | '{' | '}' | '<' | '>')
    });
    t = replace(&t, "--", " -- ");
    t = padded(&t);
    // ENDING_QUOTES
    t = pad_each(&t, |c| matches!(c, '»' | '”' | '’'));
    t = replace(&t, "''", " '' ");
    t = replace(&t, "\"", " '' ");
    t = substitute(&t, |t, at| {
        let len = t[at..]
            .iter()
            .take_while(|&&c| py::regex_is_space(c))
            .count();
        (len > 0).then(|| (at + len, vec![' ']))
    });
    t = substitute(&t, |t, at| {
        if matches!(t[at], '\'' | ' ') || t.get(at + 1) != Some(&'\'') {
            return None;
        }
        let len = match (t.get(at + 2), t.get(at + 3)) {
            (Some('s' | 'S' | 'm' | 'M' | 'd' | 'D'), Some(' ')) => 2,
            (Some(' '), _) => 1,
            _ => return None,
        };
        let mut out = vec![t[at], ' '];
        out.extend_from_slice(&t[at + 1..at + 1 + len]);
        out.push(' ');
        Some((at + 2 + len, out))
    });
    t = substitute(&t, |t, at| {
        if matches!(t[at], '\'' | ' ') {
            return None;
        }
        let tail = t.get(at + 1..at + 5)?;
        let suffix: String = tail[..3].iter().collect();
        let known = ["'ll", "'LL", "'re", "'RE", "'ve", "'VE", "n't", "N'T"];
        (known.contains(&suffix.as_str()) && tail[3] == ' ').then(|| {
            let mut out = vec![t[at], ' '];
            out.extend_from_slice(&tail[..3]);
            out.push(' ');
            (at + 5, out)
        })
    });
    // CONTRACTIONS2, CONTRACTIONS3
    for (first, second) in [
        ("can", "not"),
        ("d", "'ye"),
        ("gim", "me"),
        ("gon", "na"),
        ("got", "ta"),
        ("lem", "me"),
        ("more", "'n"),
        ("wan", "na"),
    ] {
        let (a, b) = (first.chars().count(), second.chars().count());
        t = substitute(&t, |t, at| {
            let end = at + a + b;
            let ends = if first == "wan" {
                t.get(end).is_some_and(|&c| py::is_space(c))
            } else {
                py::is_boundary(t, end)
            };
            (py::is_boundary(t, at)
                && starts_ignore_case(t, at, first)
                && starts_ignore_case(t, at + a, second)
                && ends)
                .then(|| {
                    let mut out = vec![' '];
                    out.extend_from_slice(&t[at..at + a]);
                    out.push(' ');
                    out.extend_from_slice(&t[at + a..end]);
                    out.push(' ');
                    (end, out)
                })
        });
    }
    for second in ["is", "was"] {
        let b = second.len();
        t = substitute(&t, |t, at| {
            let end = at + 3 + b;
            (t[at] == ' '
                && starts_ignore_case(t, at + 1, "'t")
                && starts_ignore_case(t, at + 3, second)
                && py::is_boundary(t, end))
            .then(|| {
                let mut out = vec![' '];
                out.extend_from_slice(&t[at + 1..at + 3]);
                out.push(' ');
                out.extend_from_slice(&t[at + 3..end]);
                out.push(' ');
                (end, out)
            })
        });
    }
    let text: String = t.into_iter().collect();
    py::split(&text).map(str::to_string).collect()
}

/// `nltk.word_tokenize(text)`: Punkt sentences, each split by the Treebank word tokenizer.
pub fn word_tokenize(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    sentence_spans(&chars)
        .into_iter()
        .flat_map(|(start, stop)| treebank_words(chars.get(start..stop).unwrap_or(&[])))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_follow_default_punkt() {
        // Reference figures: NLTK 3.10.4 with an empty `punkt_tab/english` model.
        assert_eq!(count_sentences("Honestly... I'm not sure."), 1);
        assert_eq!(count_sentences("Hello! How are you?"), 2);
        assert_eq!(
            count_sentences("It is 3.5 metres. Really?! Yes… and more"),
            3
        );
        assert_eq!(count_sentences("Mr. Smith went. He ran."), 3);
        assert_eq!(count_sentences("J. K. Rowling wrote. She did."), 2);
        assert_eq!(count_sentences(""), 0);
        assert_eq!(count_sentences("   \n "), 0);
    }

    #[test]
    fn words_follow_nltk() {
        let words = word_tokenize("Honestly... I'm not sure.");
        assert_eq!(words, ["Honestly", "...", "I", "'m", "not", "sure", "."]);
        let words = word_tokenize("P.P.S. DON'T say CANNOT (ok)");
        assert_eq!(
            words,
            [
                "P.P.S", ".", "DO", "N'T", "say", "CAN", "NOT", "(", "ok", ")"
            ]
        );
    }
}
