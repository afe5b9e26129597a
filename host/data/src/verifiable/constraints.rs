//! The IFEval constraints the generator uses: their instruction ids and keyword arguments (as
//! IFEval names them, and as `plugins/judge-constraints` reads them), their wording (IFEval's own
//! description patterns), which task kinds they suit, which pairs contradict each other, and the
//! numeric checks that keep a set satisfiable.

use serde_json::{Map, Value, json};

use super::catalog::TaskKind;
use super::rng::Rng;

/// IFEval's two relations (`instructions.py`, `_COMPARISON_RELATION`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Relation {
    LessThan,
    AtLeast,
}

impl Relation {
    fn words(self) -> &'static str {
        match self {
            Relation::LessThan => "less than",
            Relation::AtLeast => "at least",
        }
    }

    fn random(rng: &mut Rng) -> Self {
        if rng.percent(50) {
            Relation::LessThan
        } else {
            Relation::AtLeast
        }
    }
}

/// A constraint kind; [`Kind::id`] is its IFEval instruction id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Words,
    Sentences,
    Paragraphs,
    NthParagraphFirstWord,
    Keywords,
    ForbiddenWords,
    KeywordFrequency,
    LetterFrequency,
    BulletPoints,
    Highlights,
    Sections,
    Title,
    Json,
    ConstrainedResponse,
    Placeholders,
    Postscript,
    Lowercase,
    Capitals,
    CapitalWords,
    NoCommas,
    Quotation,
    EndPhrase,
    TwoResponses,
    RepeatPrompt,
}

impl Kind {
    pub(crate) const ALL: [Kind; 24] = [
        Kind::Words,
        Kind::Sentences,
        Kind::Paragraphs,
        Kind::NthParagraphFirstWord,
        Kind::Keywords,
        Kind::ForbiddenWords,
        Kind::KeywordFrequency,
        Kind::LetterFrequency,
        Kind::BulletPoints,
        Kind::Highlights,
        Kind::Sections,
        Kind::Title,
        Kind::Json,
        Kind::ConstrainedResponse,
        Kind::Placeholders,
        Kind::Postscript,
        Kind::Lowercase,
        Kind::Capitals,
        Kind::CapitalWords,
        Kind::NoCommas,
        Kind::Quotation,
        Kind::EndPhrase,
        Kind::TwoResponses,
        Kind::RepeatPrompt,
    ];

    /// The IFEval instruction id.
    pub(crate) const fn id(self) -> &'static str {
        match self {
            Kind::Words => "length_constraints:number_words",
            Kind::Sentences => "length_constraints:number_sentences",
            Kind::Paragraphs => "length_constraints:number_paragraphs",
            Kind::NthParagraphFirstWord => "length_constraints:nth_paragraph_first_word",
            Kind::Keywords => "keywords:existence",
            Kind::ForbiddenWords => "keywords:forbidden_words",
            Kind::KeywordFrequency => "keywords:frequency",
            Kind::LetterFrequency => "keywords:letter_frequency",
            Kind::BulletPoints => "detectable_format:number_bullet_lists",
            Kind::Highlights => "detectable_format:number_highlighted_sections",
            Kind::Sections => "detectable_format:multiple_sections",
            Kind::Title => "detectable_format:title",
            Kind::Json => "detectable_format:json_format",
            Kind::ConstrainedResponse => "detectable_format:constrained_response",
            Kind::Placeholders => "detectable_content:number_placeholders",
            Kind::Postscript => "detectable_content:postscript",
            Kind::Lowercase => "change_case:english_lowercase",
            Kind::Capitals => "change_case:english_capital",
            Kind::CapitalWords => "change_case:capital_word_frequency",
            Kind::NoCommas => "punctuation:no_comma",
            Kind::Quotation => "startend:quotation",
            Kind::EndPhrase => "startend:end_checker",
            Kind::TwoResponses => "combination:two_responses",
            Kind::RepeatPrompt => "combination:repeat_prompt",
        }
    }

    /// Whether the constraint reads naturally on a task of this kind.
    fn suits(self, task: TaskKind) -> bool {
        use Kind::*;
        match task {
            TaskKind::YesNo => true,
            TaskKind::Prose | TaskKind::Creative => self != ConstrainedResponse,
            TaskKind::Code => matches!(
                self,
                Words
                    | Keywords
                    | ForbiddenWords
                    | BulletPoints
                    | Highlights
                    | Sections
                    | Title
                    | Postscript
                    | EndPhrase
                    | TwoResponses
                    | RepeatPrompt
            ),
            TaskKind::Math => !matches!(
                self,
                NthParagraphFirstWord
                    | KeywordFrequency
                    | LetterFrequency
                    | ConstrainedResponse
                    | Placeholders
                    | CapitalWords
            ),
        }
    }

    /// Whether the two kinds contradict each other, or make an awkward pair (symmetric).
    pub(crate) fn conflicts_with(self, other: Kind) -> bool {
        self == other || excludes(self, other) || excludes(other, self)
    }
}

/// One direction of the conflict relation; [`Kind::conflicts_with`] checks both.
fn excludes(kind: Kind, other: Kind) -> bool {
    use Kind::*;
    match kind {
        // Case rules fight each other, case-sensitive markers and exact phrases.
        Lowercase => matches!(
            other,
            Capitals
                | CapitalWords
                | Sections
                | Postscript
                | EndPhrase
                | RepeatPrompt
                | ConstrainedResponse
        ),
        Capitals => matches!(
            other,
            CapitalWords
                | Sections
                | Postscript
                | EndPhrase
                | RepeatPrompt
                | ConstrainedResponse
                | Json
                | NthParagraphFirstWord
        ),
        // "P.S.", "SECTION 1" and the pronoun "I" are all-capital words.
        CapitalWords => matches!(other, Postscript | Sections | RepeatPrompt),
        // The whole response is one JSON value: only content rules fit inside it.
        Json => !matches!(
            other,
            Words
                | Keywords
                | ForbiddenWords
                | KeywordFrequency
                | LetterFrequency
                | Lowercase
                | Placeholders
                | CapitalWords
        ),
        // The response starts with the request, word for word (which holds its own commas,
        // keywords and case).
        RepeatPrompt => !matches!(
            other,
            Words
                | Sentences
                | Paragraphs
                | Keywords
                | Highlights
                | Title
                | Placeholders
                | Postscript
                | EndPhrase
        ),
        // A yes/no/maybe answer with light formatting only.
        ConstrainedResponse => !matches!(
            other,
            Keywords
                | ForbiddenWords
                | NoCommas
                | Postscript
                | Title
                | Quotation
                | Highlights
                | Sentences
                | Words
        ),
        // Two answers separated by `******`: no whole-response structure.
        TwoResponses => !matches!(
            other,
            Words
                | Sentences
                | Keywords
                | ForbiddenWords
                | KeywordFrequency
                | LetterFrequency
                | Highlights
                | Title
                | Placeholders
                | Lowercase
                | Capitals
                | CapitalWords
                | NoCommas
                | Postscript
        ),
        Quotation => matches!(other, Json | RepeatPrompt | TwoResponses),
        // Both want the last word.
        EndPhrase => matches!(other, Postscript | ConstrainedResponse),
        // Two definitions of a paragraph, or paragraphs against sections.
        Paragraphs => matches!(other, NthParagraphFirstWord | Sections),
        NthParagraphFirstWord => matches!(other, Sections | Postscript | RepeatPrompt),
        // "Highlight at least 3 sections" beside "must have 2 sections" reads as one count.
        Sections => other == Highlights,
        _ => false,
    }
}

/// Words a response may be asked to include.
const KEYWORDS: &[&str] = &[
    "balance",
    "curious",
    "future",
    "journey",
    "patience",
    "surprise",
    "quality",
    "energy",
    "habit",
    "challenge",
    "friendly",
    "local",
    "creative",
    "careful",
    "weekend",
    "season",
    "morning",
    "neighbor",
    "memory",
    "trust",
    "simple",
    "community",
    "history",
    "budget",
];

/// Filler words a response may be asked to avoid (disjoint from the other word lists).
const FORBIDDEN_WORDS: &[&str] = &[
    "very",
    "really",
    "basically",
    "actually",
    "thing",
    "stuff",
    "nice",
    "good",
    "bad",
    "amazing",
    "just",
    "literally",
    "obviously",
    "great",
    "easy",
    "awesome",
];

/// Words a paragraph can naturally start with.
const FIRST_WORDS: &[&str] = &[
    "first",
    "however",
    "finally",
    "today",
    "imagine",
    "overall",
    "meanwhile",
    "next",
    "remember",
    "also",
    "sometimes",
    "ultimately",
    "now",
    "still",
];

/// IFEval's `_ENDING_OPTIONS` and a few more in the same spirit.
const END_PHRASES: &[&str] = &[
    "Any other questions?",
    "Is there anything else I can help with?",
    "Let me know if you have additional questions.",
    "Hope this helps.",
    "Thank you for reading.",
    "That is all for now.",
];

/// Letters that occur often enough to ask for "at least" N of them.
const COMMON_LETTERS: &[&str] = &["b", "c", "d", "f", "g", "h", "l", "m", "p", "w", "y"];
/// Letters rare enough to ask for "less than" N of them.
const RARE_LETTERS: &[&str] = &["j", "q", "x", "z"];

const WORD_LIMITS: &[usize] = &[50, 80, 100, 120, 150, 200, 250, 300];
const WORD_MINIMUMS: &[usize] = &[50, 80, 100, 150, 200, 250, 300, 400];

/// IFEval's repeat-the-prompt instruction, verbatim.
const REPEAT_PROMPT_TEXT: &str = "First repeat the request word for word without change, then give your answer (1. do not say any words or characters before repeating the request; 2. the request you need to repeat does not include this sentence)";

/// One constraint of an instruction: its kind, its sentence(s) in the prompt, IFEval's kwargs.
#[derive(Clone, Debug)]
pub(crate) struct Constraint {
    pub(crate) kind: Kind,
    pub(crate) text: String,
    pub(crate) kwargs: Map<String, Value>,
    /// The main number (words, sentences, paragraphs, bullets, ...), 0 when none.
    count: usize,
    /// The relation of a counted constraint, when it has one.
    relation: Option<Relation>,
    /// Words the response must contain or avoid (keywords, forbidden words, the end phrase...).
    words: Vec<&'static str>,
}

impl Constraint {
    fn new(kind: Kind, text: String, kwargs: Map<String, Value>) -> Self {
        Constraint {
            kind,
            text,
            kwargs,
            count: 0,
            relation: None,
            words: Vec::new(),
        }
    }

    fn counted(mut self, count: usize, relation: Option<Relation>) -> Self {
        self.count = count;
        self.relation = relation;
        self
    }

    fn with_words(mut self, words: Vec<&'static str>) -> Self {
        self.words = words;
        self
    }

    fn is(&self, kind: Kind, relation: Relation) -> bool {
        self.kind == kind && self.relation == Some(relation)
    }

    /// Fewest words a response needs to satisfy this constraint.
    fn words_needed(&self) -> usize {
        let n = self.count;
        match self.kind {
            Kind::Paragraphs | Kind::NthParagraphFirstWord => 20 * n,
            Kind::Sections => 25 * n,
            Kind::BulletPoints => 6 * n,
            Kind::Sentences if self.relation == Some(Relation::AtLeast) => 8 * n,
            Kind::Highlights => 3 * n,
            Kind::Placeholders => 2 * n,
            Kind::LetterFrequency if self.relation == Some(Relation::AtLeast) => 3 * n,
            Kind::KeywordFrequency | Kind::CapitalWords
                if self.relation == Some(Relation::AtLeast) =>
            {
                n
            }
            Kind::TwoResponses => 30,
            Kind::Postscript => 8,
            _ => 0,
        }
    }

    /// Fewest sentences a response needs to satisfy this constraint.
    fn sentences_needed(&self) -> usize {
        match self.kind {
            Kind::Paragraphs | Kind::NthParagraphFirstWord | Kind::Sections => self.count,
            Kind::Words if self.relation == Some(Relation::AtLeast) => self.count.div_ceil(25),
            Kind::TwoResponses => 2,
            Kind::Postscript | Kind::ConstrainedResponse => 1,
            _ => 0,
        }
    }

    /// Whether the sentence ends so that the next one can follow on the same line.
    pub(crate) fn ends_a_sentence(&self) -> bool {
        self.text.ends_with(['.', '?', '!', ')'])
    }
}

/// A sorted-key object, so the bytes are the same whether or not serde_json keeps insertion
/// order (a feature another crate in the build may switch on).
fn kwargs(pairs: &[(&str, Value)]) -> Map<String, Value> {
    let mut pairs = pairs.to_vec();
    pairs.sort_by_key(|(key, _)| *key);
    pairs
        .into_iter()
        .map(|(key, value)| (key.to_string(), value))
        .collect()
}

fn quoted_list(words: &[&str], conjunction: &str) -> String {
    let quoted: Vec<String> = words.iter().map(|word| format!("\"{word}\"")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => {
            format!("{} {conjunction} {last}", rest.join(", "))
        }
        _ => quoted.join(""),
    }
}

/// One or two distinct words of a list.
fn some_words(rng: &mut Rng, list: &[&'static str]) -> Vec<&'static str> {
    let first = *rng.pick(list);
    let mut words = vec![first];
    if rng.percent(40) {
        let second = *rng.pick(list);
        if second != first {
            words.push(second);
        }
    }
    words.sort_unstable();
    words
}

/// A random relation with its bound: `less_than` for "less than", `at_least` for "at least".
fn compared(rng: &mut Rng, (less_than, at_least): (usize, usize)) -> (Relation, usize) {
    match Relation::random(rng) {
        Relation::LessThan => (Relation::LessThan, less_than),
        Relation::AtLeast => (Relation::AtLeast, at_least),
    }
}

/// A count compared with a bound: the bound and the relation under IFEval's names for this
/// kind, and any `extra` kwargs.
fn comparison(
    kind: Kind,
    text: String,
    (bound, bound_key): (usize, &str),
    (relation, relation_key): (Relation, &str),
    extra: &[(&str, Value)],
) -> Constraint {
    let mut pairs = vec![
        (bound_key, json!(bound)),
        (relation_key, json!(relation.words())),
    ];
    pairs.extend_from_slice(extra);
    Constraint::new(kind, text, kwargs(&pairs)).counted(bound, Some(relation))
}

/// A structure of `n` parts (paragraphs, bullets, ...), its count under IFEval's name `key`.
fn structure(kind: Kind, text: String, key: &str, n: usize) -> Constraint {
    Constraint::new(kind, text, kwargs(&[(key, json!(n))])).counted(n, None)
}

/// Builds a constraint of `kind` with random arguments, worded as IFEval words it.
/// `combination:repeat_prompt` gets its `prompt_to_repeat` when the prompt is put together.
fn build(kind: Kind, rng: &mut Rng) -> Constraint {
    match kind {
        Kind::Words => {
            let bounds = (*rng.pick(WORD_LIMITS), *rng.pick(WORD_MINIMUMS));
            let (relation, n) = compared(rng, bounds);
            comparison(
                kind,
                format!("Answer with {} {n} words.", relation.words()),
                (n, "num_words"),
                (relation, "relation"),
                &[],
            )
        }
        Kind::Sentences => {
            let bounds = (rng.between(3, 10), rng.between(3, 12));
            let (relation, n) = compared(rng, bounds);
            comparison(
                kind,
                format!(
                    "Your response should contain {} {n} sentences.",
                    relation.words()
                ),
                (n, "num_sentences"),
                (relation, "relation"),
                &[],
            )
        }
        Kind::Paragraphs => {
            let n = rng.between(2, 5);
            structure(kind, format!(
                    "There should be {n} paragraphs. Paragraphs are separated with the markdown divider: ***"
                ), "num_paragraphs", n)
        }
        Kind::NthParagraphFirstWord => {
            let n = rng.between(2, 5);
            let nth = rng.between(1, n);
            let word = *rng.pick(FIRST_WORDS);
            Constraint::new(
                kind,
                format!(
                    "There should be {n} paragraphs. Paragraphs and only paragraphs are separated with each other by two new lines as if it was '\\n\\n' in python. Paragraph {nth} must start with word {word}."
                ),
                kwargs(&[
                    ("first_word", json!(word)),
                    ("nth_paragraph", json!(nth)),
                    ("num_paragraphs", json!(n)),
                ]),
            )
            .counted(n, None)
            .with_words(vec![word])
        }
        Kind::Keywords => {
            let words = some_words(rng, KEYWORDS);
            let text = if words.len() == 1 {
                format!("Include the keyword {} in the response.", quoted_list(&words, "and"))
            } else {
                format!("Include keywords {} in the response.", quoted_list(&words, "and"))
            };
            Constraint::new(kind, text, kwargs(&[("keywords", json!(words))])).with_words(words)
        }
        Kind::ForbiddenWords => {
            let words = some_words(rng, FORBIDDEN_WORDS);
            Constraint::new(
                kind,
                format!(
                    "Do not include keywords {} in the response.",
                    quoted_list(&words, "or")
                ),
                kwargs(&[("forbidden_words", json!(words))]),
            )
            .with_words(words)
        }
        Kind::KeywordFrequency => {
            // Only "at least": "less than" N of a word the task never calls for holds trivially.
            let word = *rng.pick(KEYWORDS);
            let (relation, n) = (Relation::AtLeast, rng.between(2, 4));
            comparison(
                kind,
                format!(
                    "In your response, the word \"{word}\" should appear {} {n} times.",
                    relation.words()
                ),
                (n, "frequency"),
                (relation, "relation"),
                &[("keyword", json!(word))],
            )
            .with_words(vec![word])
        }
        Kind::LetterFrequency => {
            let rare = *rng.pick(RARE_LETTERS);
            let common = *rng.pick(COMMON_LETTERS);
            let bounds = (rng.between(2, 5), rng.between(5, 12));
            let (relation, n) = compared(rng, bounds);
            let letter = match relation {
                Relation::LessThan => rare,
                Relation::AtLeast => common,
            };
            comparison(
                kind,
                format!(
                    "In your response, the letter \"{letter}\" should appear {} {n} times.",
                    relation.words()
                ),
                (n, "let_frequency"),
                (relation, "let_relation"),
                &[("letter", json!(letter))],
            )
            .with_words(vec![letter])
        }
        Kind::BulletPoints => {
            let n = rng.between(2, 5);
            structure(kind, format!(
                    "Your answer must contain exactly {n} bullet points. Use the markdown bullet points such as:\n* This is point 1. \n* This is point 2"
                ), "num_bullets", n)
        }
        Kind::Highlights => {
            let n = rng.between(1, 4);
            structure(kind, format!(
                    "Highlight at least {n} sections in your answer with markdown, i.e. *highlighted section*."
                ), "num_highlights", n)
        }
        Kind::Sections => {
            let n = rng.between(2, 5);
            let splitter = *rng.pick(&["Section", "SECTION"]);
            Constraint::new(
                kind,
                format!(
                    "Your response must have {n} sections. Mark the beginning of each section with {splitter} X, such as:\n{splitter} 1\n[content of section 1]\n{splitter} 2\n[content of section 2]"
                ),
                kwargs(&[
                    ("num_sections", json!(n)),
                    ("section_spliter", json!(splitter)),
                ]),
            )
            .counted(n, None)
            .with_words(vec![splitter])
        }
        Kind::Title => Constraint::new(
            kind,
            "Your answer must contain a title, wrapped in double angular brackets, such as <<poem of joy>>.".to_string(),
            Map::new(),
        ),
        Kind::Json => Constraint::new(
            kind,
            "Entire output should be wrapped in JSON format. You can use markdown ticks such as ```.".to_string(),
            Map::new(),
        ),
        Kind::ConstrainedResponse => Constraint::new(
            kind,
            "Answer with one of the following options: ('My answer is yes.', 'My answer is no.', 'My answer is maybe.')".to_string(),
            Map::new(),
        ),
        Kind::Placeholders => {
            let n = rng.between(1, 4);
            structure(kind, format!(
                    "The response must contain at least {n} placeholders represented by square brackets, such as [address]."
                ), "num_placeholders", n)
        }
        Kind::Postscript => {
            let marker = *rng.pick(&["P.S.", "P.P.S"]);
            Constraint::new(
                kind,
                format!(
                    "At the end of your response, please explicitly add a postscript starting with {marker}"
                ),
                kwargs(&[("postscript_marker", json!(marker))]),
            )
        }
        Kind::Lowercase => Constraint::new(
            kind,
            "Your entire response should be in English, and in all lowercase letters. No capital letters are allowed.".to_string(),
            Map::new(),
        ),
        Kind::Capitals => Constraint::new(
            kind,
            "Your entire response should be in English, and in all capital letters.".to_string(),
            Map::new(),
        ),
        Kind::CapitalWords => {
            let bounds = (rng.between(5, 10), rng.between(2, 8));
            let (relation, n) = compared(rng, bounds);
            comparison(
                kind,
                format!(
                    "In your response, words with all capital letters should appear {} {n} times.",
                    relation.words()
                ),
                (n, "capital_frequency"),
                (relation, "capital_relation"),
                &[],
            )
        }
        Kind::NoCommas => Constraint::new(
            kind,
            "In your entire response, refrain from the use of any commas.".to_string(),
            Map::new(),
        ),
        Kind::Quotation => Constraint::new(
            kind,
            "Wrap your entire response with double quotation marks.".to_string(),
            Map::new(),
        ),
        Kind::EndPhrase => {
            let phrase = *rng.pick(END_PHRASES);
            Constraint::new(
                kind,
                format!(
                    "Finish your response with this exact phrase \"{phrase}\". No other words should follow this phrase."
                ),
                kwargs(&[("end_phrase", json!(phrase))]),
            )
            .with_words(vec![phrase])
        }
        Kind::TwoResponses => Constraint::new(
            kind,
            "Give two different responses. Responses and only responses should be separated by 6 asterisk symbols: ******.".to_string(),
            Map::new(),
        ),
        Kind::RepeatPrompt => Constraint::new(kind, REPEAT_PROMPT_TEXT.to_string(), Map::new()),
    }
}

/// Whether `word` occurs in `text` as a whole word (case-insensitive).
fn has_whole_word(text: &str, word: &str) -> bool {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .any(|part| part == word)
}

/// The numeric and textual checks between the constraints of one instruction (the kind-level
/// conflicts are already excluded): length limits leave room for the structure asked for, and
/// words to include, count or avoid are not already forced or forbidden by the rest of the prompt.
fn satisfiable(task: &str, constraints: &[Constraint]) -> bool {
    let repeats = constraints.iter().any(|c| c.kind == Kind::RepeatPrompt);
    for (index, constraint) in constraints.iter().enumerate() {
        let others = || {
            constraints
                .iter()
                .enumerate()
                .filter(move |(other, _)| *other != index)
                .map(|(_, c)| c)
        };
        let rest = std::iter::once(task.to_string())
            .chain(others().map(|c| c.text.clone()))
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        let fits = match constraint.kind {
            Kind::Words if constraint.relation == Some(Relation::LessThan) => {
                let needed: usize = 20 + others().map(Constraint::words_needed).sum::<usize>();
                !repeats && constraint.count >= needed + 10
            }
            Kind::Sentences if constraint.relation == Some(Relation::LessThan) => {
                let needed: usize = 1 + others().map(Constraint::sentences_needed).sum::<usize>();
                !repeats && constraint.count > needed
            }
            Kind::Keywords | Kind::KeywordFrequency => {
                constraint.words.iter().all(|word| !rest.contains(word))
            }
            Kind::ForbiddenWords => constraint
                .words
                .iter()
                .all(|word| !has_whole_word(&rest, word)),
            Kind::LetterFrequency if constraint.relation == Some(Relation::LessThan) => {
                constraint.words.iter().all(|letter| !rest.contains(letter))
            }
            _ => true,
        };
        if !fits {
            return false;
        }
    }
    // At least N words in fewer than M sentences needs N / M words a sentence: keep it under 25.
    let words_at_least = constraints
        .iter()
        .find(|c| c.is(Kind::Words, Relation::AtLeast));
    let sentences_below = constraints
        .iter()
        .find(|c| c.is(Kind::Sentences, Relation::LessThan));
    if let (Some(words), Some(sentences)) = (words_at_least, sentences_below) {
        return words.count <= 25 * (sentences.count - 1);
    }
    true
}

/// How many constraints an instruction gets: 1 (30%), 2 (45%) or 3 (25%).
fn constraint_count(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..30 => 1,
        30..75 => 2,
        _ => 3,
    }
}

/// A prompt: the task followed by its constraints' sentences, and the constraints.
pub(crate) struct Constrained {
    pub(crate) prompt: String,
    pub(crate) constraints: Vec<Constraint>,
}

/// Attempts at a satisfiable set before falling back to a single constraint.
const ATTEMPTS: usize = 200;

/// Picks 1-3 compatible constraints suited to the task and words the prompt.
pub(crate) fn constrain(rng: &mut Rng, task: &str, task_kind: TaskKind) -> Constrained {
    for _ in 0..ATTEMPTS {
        let wanted = constraint_count(rng);
        let mut kinds: Vec<Kind> = Vec::with_capacity(wanted);
        // A yes/no question is the one place for a constrained answer: make it common there.
        if task_kind == TaskKind::YesNo && rng.percent(50) {
            kinds.push(Kind::ConstrainedResponse);
        }
        while kinds.len() < wanted {
            let candidates: Vec<Kind> = Kind::ALL
                .into_iter()
                .filter(|kind| kind.suits(task_kind))
                .filter(|kind| kinds.iter().all(|chosen| !kind.conflicts_with(*chosen)))
                .collect();
            if candidates.is_empty() {
                break;
            }
            kinds.push(*rng.pick(&candidates));
        }
        let constraints: Vec<Constraint> = kinds.into_iter().map(|kind| build(kind, rng)).collect();
        if satisfiable(task, &constraints) {
            return compose(task, constraints);
        }
    }
    compose(task, vec![build(Kind::Title, rng)])
}

/// Puts the task and the constraint sentences together (the repeat-the-request sentence last,
/// as IFEval does, its `prompt_to_repeat` being everything before it); a sentence that does not
/// end in punctuation (a list example, `***`) is followed by a line break.
fn compose(task: &str, mut constraints: Vec<Constraint>) -> Constrained {
    constraints.sort_by_key(|constraint| constraint.kind == Kind::RepeatPrompt);
    let mut prompt = task.to_string();
    let mut previous_ends_sentence = true;
    for constraint in &mut constraints {
        if constraint.kind == Kind::RepeatPrompt {
            constraint.kwargs = kwargs(&[("prompt_to_repeat", json!(prompt))]);
        }
        prompt.push(if previous_ends_sentence { ' ' } else { '\n' });
        prompt.push_str(&constraint.text);
        previous_ends_sentence = constraint.ends_a_sentence();
    }
    Constrained {
        prompt,
        constraints,
    }
}
