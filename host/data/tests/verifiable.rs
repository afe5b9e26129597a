//! The seeded generator of verifiable instructions, the open-ended set, and the committed files.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use ponder_data::{
    BUILTIN_SEED, CATEGORIES, EVAL_SIZE, Instruction, SUPPORTED_CONSTRAINT_IDS, TRAIN_SIZE,
    VALIDATION_SIZE, open_ended, read_instructions, to_jsonl, verifiable, verifiable_splits,
};
use serde_json::{Map, Value};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn prompt(instruction: &Instruction) -> &str {
    assert_eq!(instruction.messages.len(), 1);
    assert_eq!(instruction.messages[0].role, "user");
    &instruction.messages[0].content
}

/// The constraint ids `plugins/judge-constraints` implements, read from its source: the match
/// arms `"group:name" =>` of `Constraint::from_ifeval` (in any of its source files); and that
/// source, where the kwargs it reads are struct fields.
fn judge_ids_and_source() -> (BTreeSet<String>, String) {
    let directory = repository().join("plugins/judge-constraints/src");
    let mut source = String::new();
    for entry in std::fs::read_dir(&directory).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|extension| extension == "rs") {
            source.push_str(&std::fs::read_to_string(path).unwrap());
        }
    }
    let ids = source
        .lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix('"')?;
            let (id, after) = rest.split_once('"')?;
            (after.trim_start().starts_with("=>") && id.contains(':')).then(|| id.to_string())
        })
        .collect::<BTreeSet<_>>();
    assert!(ids.len() >= 20, "could not read the judge's ids: {ids:?}");
    (ids, source)
}

/// IFEval's kwargs names for each id (`instructions.py`, `get_instruction_args_keys`).
fn ifeval_kwargs(id: &str) -> &'static [&'static str] {
    match id {
        "length_constraints:number_words" => &["num_words", "relation"],
        "length_constraints:number_sentences" => &["num_sentences", "relation"],
        "length_constraints:number_paragraphs" => &["num_paragraphs"],
        "length_constraints:nth_paragraph_first_word" => {
            &["first_word", "nth_paragraph", "num_paragraphs"]
        }
        "keywords:existence" => &["keywords"],
        "keywords:forbidden_words" => &["forbidden_words"],
        "keywords:frequency" => &["frequency", "keyword", "relation"],
        "keywords:letter_frequency" => &["let_frequency", "let_relation", "letter"],
        "detectable_format:number_bullet_lists" => &["num_bullets"],
        "detectable_format:number_highlighted_sections" => &["num_highlights"],
        "detectable_format:multiple_sections" => &["num_sections", "section_spliter"],
        "detectable_content:number_placeholders" => &["num_placeholders"],
        "detectable_content:postscript" => &["postscript_marker"],
        "change_case:capital_word_frequency" => &["capital_frequency", "capital_relation"],
        "startend:end_checker" => &["end_phrase"],
        "combination:repeat_prompt" => &["prompt_to_repeat"],
        _ => &[],
    }
}

fn number(kwargs: &Map<String, Value>, key: &str) -> u64 {
    kwargs[key]
        .as_u64()
        .unwrap_or_else(|| panic!("`{key}` is not a count: {kwargs:?}"))
}

fn text<'a>(kwargs: &'a Map<String, Value>, key: &str) -> &'a str {
    kwargs[key]
        .as_str()
        .unwrap_or_else(|| panic!("`{key}` is not a string: {kwargs:?}"))
}

fn quoted(kwargs: &Map<String, Value>, key: &str, conjunction: &str) -> String {
    let words: Vec<String> = kwargs[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|word| format!("\"{}\"", word.as_str().unwrap()))
        .collect();
    words.join(&format!(" {conjunction} "))
}

/// A phrase the prompt must contain for this constraint, built from its kwargs alone: the prompt
/// says what the metadata checks.
fn expected_phrase(id: &str, kwargs: &Map<String, Value>) -> String {
    match id {
        "length_constraints:number_words" => format!(
            "Answer with {} {} words.",
            text(kwargs, "relation"),
            number(kwargs, "num_words")
        ),
        "length_constraints:number_sentences" => format!(
            "Your response should contain {} {} sentences.",
            text(kwargs, "relation"),
            number(kwargs, "num_sentences")
        ),
        "length_constraints:number_paragraphs" => format!(
            "There should be {} paragraphs. Paragraphs are separated with the markdown divider: ***",
            number(kwargs, "num_paragraphs")
        ),
        "length_constraints:nth_paragraph_first_word" => format!(
            "There should be {} paragraphs. Paragraphs and only paragraphs are separated with each other by two new lines as if it was '\\n\\n' in python. Paragraph {} must start with word {}.",
            number(kwargs, "num_paragraphs"),
            number(kwargs, "nth_paragraph"),
            text(kwargs, "first_word")
        ),
        "keywords:existence" => format!("{} in the response.", quoted(kwargs, "keywords", "and")),
        "keywords:forbidden_words" => format!(
            "Do not include keywords {} in the response.",
            quoted(kwargs, "forbidden_words", "or")
        ),
        "keywords:frequency" => format!(
            "In your response, the word \"{}\" should appear {} {} times.",
            text(kwargs, "keyword"),
            text(kwargs, "relation"),
            number(kwargs, "frequency")
        ),
        "keywords:letter_frequency" => format!(
            "In your response, the letter \"{}\" should appear {} {} times.",
            text(kwargs, "letter"),
            text(kwargs, "let_relation"),
            number(kwargs, "let_frequency")
        ),
        "detectable_format:number_bullet_lists" => format!(
            "Your answer must contain exactly {} bullet points.",
            number(kwargs, "num_bullets")
        ),
        "detectable_format:number_highlighted_sections" => format!(
            "Highlight at least {} sections in your answer",
            number(kwargs, "num_highlights")
        ),
        "detectable_format:multiple_sections" => format!(
            "Your response must have {} sections. Mark the beginning of each section with {} X",
            number(kwargs, "num_sections"),
            text(kwargs, "section_spliter")
        ),
        "detectable_format:title" => "wrapped in double angular brackets".into(),
        "detectable_format:json_format" => "Entire output should be wrapped in JSON format.".into(),
        "detectable_format:constrained_response" => {
            "'My answer is yes.', 'My answer is no.'".into()
        }
        "detectable_content:number_placeholders" => format!(
            "at least {} placeholders represented by square brackets",
            number(kwargs, "num_placeholders")
        ),
        "detectable_content:postscript" => format!(
            "add a postscript starting with {}",
            text(kwargs, "postscript_marker")
        ),
        "change_case:english_lowercase" => "in all lowercase letters".into(),
        "change_case:english_capital" => "in all capital letters".into(),
        "change_case:capital_word_frequency" => format!(
            "words with all capital letters should appear {} {} times.",
            text(kwargs, "capital_relation"),
            number(kwargs, "capital_frequency")
        ),
        "punctuation:no_comma" => "refrain from the use of any commas".into(),
        "startend:quotation" => "Wrap your entire response with double quotation marks.".into(),
        "startend:end_checker" => format!(
            "Finish your response with this exact phrase \"{}\".",
            text(kwargs, "end_phrase")
        ),
        "combination:two_responses" => "Give two different responses.".into(),
        "combination:repeat_prompt" => {
            "First repeat the request word for word without change".into()
        }
        other => panic!("no phrase for {other}"),
    }
}

/// Pairs that contradict each other or make no sense together; none may ever co-occur.
const CONFLICTS: &[(&str, &str)] = &[
    (
        "change_case:english_lowercase",
        "change_case:english_capital",
    ),
    (
        "change_case:english_lowercase",
        "change_case:capital_word_frequency",
    ),
    (
        "change_case:english_capital",
        "change_case:capital_word_frequency",
    ),
    (
        "change_case:english_capital",
        "detectable_format:json_format",
    ),
    ("detectable_format:json_format", "detectable_format:title"),
    (
        "detectable_format:json_format",
        "detectable_format:number_bullet_lists",
    ),
    (
        "detectable_format:json_format",
        "detectable_format:multiple_sections",
    ),
    (
        "detectable_format:json_format",
        "detectable_format:number_highlighted_sections",
    ),
    (
        "detectable_format:json_format",
        "length_constraints:number_paragraphs",
    ),
    (
        "detectable_format:json_format",
        "detectable_content:postscript",
    ),
    ("detectable_format:json_format", "startend:quotation"),
    ("detectable_format:json_format", "startend:end_checker"),
    ("detectable_format:json_format", "combination:two_responses"),
    ("detectable_format:json_format", "punctuation:no_comma"),
    (
        "length_constraints:number_paragraphs",
        "length_constraints:nth_paragraph_first_word",
    ),
    (
        "length_constraints:number_paragraphs",
        "combination:two_responses",
    ),
    ("combination:repeat_prompt", "startend:quotation"),
    ("combination:repeat_prompt", "punctuation:no_comma"),
    ("combination:repeat_prompt", "keywords:forbidden_words"),
    (
        "combination:repeat_prompt",
        "detectable_format:number_bullet_lists",
    ),
    ("detectable_content:postscript", "startend:end_checker"),
    (
        "detectable_format:multiple_sections",
        "detectable_format:number_highlighted_sections",
    ),
];

/// Checks one instruction's metadata against its prompt and the judge.
fn check_instruction(instruction: &Instruction, judge_ids: &BTreeSet<String>, judge_source: &str) {
    let prompt = prompt(instruction);
    let metadata = instruction.metadata.as_object().unwrap();
    assert_eq!(metadata.len(), 2, "{metadata:?}");
    let ids: Vec<&str> = metadata["instruction_id_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap())
        .collect();
    let kwargs = metadata["kwargs"].as_array().unwrap();
    assert!((1..=3).contains(&ids.len()), "{}: {ids:?}", instruction.id);
    assert_eq!(kwargs.len(), ids.len(), "{}", instruction.id);
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        ids.len(),
        "{ids:?}"
    );
    for (id, kwargs) in ids.iter().zip(kwargs) {
        assert!(judge_ids.contains(*id), "the judge does not implement {id}");
        let kwargs = kwargs.as_object().unwrap();
        let keys: Vec<&str> = kwargs.keys().map(String::as_str).collect();
        assert_eq!(keys, ifeval_kwargs(id), "{}: {id}", instruction.id);
        for key in keys {
            assert!(
                judge_source.contains(&format!("{key}:")),
                "the judge reads no `{key}`"
            );
        }
        for relation in ["relation", "let_relation", "capital_relation"] {
            if let Some(value) = kwargs.get(relation) {
                assert!(["less than", "at least"].contains(&value.as_str().unwrap()));
            }
        }
        let phrase = expected_phrase(id, kwargs);
        assert!(
            prompt.contains(&phrase),
            "{}: `{phrase}` not in {prompt:?}",
            instruction.id
        );
        if *id == "combination:repeat_prompt" {
            let repeated = text(kwargs, "prompt_to_repeat");
            let after = prompt.strip_prefix(repeated).unwrap_or_default();
            assert!(
                [" ", "\n"]
                    .iter()
                    .any(|gap| after.starts_with(&format!("{gap}First repeat"))),
                "{}: the request to repeat is not what comes before",
                instruction.id
            );
        }
        if *id == "detectable_format:constrained_response" {
            assert_eq!(instruction.category.as_deref(), Some("fact-checking"));
        }
        if *id == "keywords:forbidden_words" {
            let rest = prompt.replace(&phrase, "").to_lowercase();
            for word in kwargs["forbidden_words"].as_array().unwrap() {
                let word = word.as_str().unwrap();
                let used = rest
                    .split(|c: char| !c.is_alphanumeric())
                    .any(|w| w == word);
                assert!(
                    !used,
                    "{}: forbidden `{word}` is in the prompt",
                    instruction.id
                );
            }
        }
    }
    for (a, b) in CONFLICTS {
        assert!(
            !(ids.contains(a) && ids.contains(b)),
            "{}: {a} with {b}",
            instruction.id
        );
    }
    // Length limits leave room for the structure asked for.
    let find = |id: &str| {
        ids.iter()
            .position(|x| *x == id)
            .map(|i| kwargs[i].as_object().unwrap())
    };
    if let Some(words) = find("length_constraints:number_words")
        && words["relation"] == "less than"
    {
        let limit = number(words, "num_words");
        for (id, key, per_item) in [
            ("length_constraints:number_paragraphs", "num_paragraphs", 20),
            (
                "length_constraints:nth_paragraph_first_word",
                "num_paragraphs",
                20,
            ),
            ("detectable_format:multiple_sections", "num_sections", 25),
            ("detectable_format:number_bullet_lists", "num_bullets", 6),
        ] {
            if let Some(structure) = find(id) {
                assert!(
                    limit > per_item * number(structure, key),
                    "{}",
                    instruction.id
                );
            }
        }
    }
    if let Some(sentences) = find("length_constraints:number_sentences")
        && sentences["relation"] == "less than"
    {
        let limit = number(sentences, "num_sentences");
        for (id, key) in [
            ("length_constraints:number_paragraphs", "num_paragraphs"),
            (
                "length_constraints:nth_paragraph_first_word",
                "num_paragraphs",
            ),
            ("detectable_format:multiple_sections", "num_sections"),
        ] {
            if let Some(structure) = find(id) {
                assert!(limit > number(structure, key), "{}", instruction.id);
            }
        }
    }
}

#[test]
fn same_seed_same_bytes_and_different_seed_different() {
    assert_eq!(to_jsonl(&verifiable(7, 300)), to_jsonl(&verifiable(7, 300)));
    assert_ne!(to_jsonl(&verifiable(7, 300)), to_jsonl(&verifiable(8, 300)));
    let splits = verifiable_splits(3);
    assert_eq!(splits, verifiable_splits(3));
    assert_ne!(to_jsonl(&splits.eval), to_jsonl(&verifiable_splits(4).eval));
}

#[test]
fn count_and_ids() {
    let instructions = verifiable(1, 25);
    assert_eq!(instructions.len(), 25);
    assert_eq!(instructions[0].id, "verifiable-0001");
    assert_eq!(instructions[24].id, "verifiable-0025");
    assert!(verifiable(1, 0).is_empty());
    let many = verifiable(1, 12_000);
    assert_eq!(many[11_999].id, "verifiable-12000");
    let prompts: HashSet<&str> = many.iter().map(prompt).collect();
    assert_eq!(prompts.len(), many.len());
}

#[test]
fn splits_have_their_sizes_and_share_no_prompt() {
    let splits = verifiable_splits(BUILTIN_SEED);
    assert_eq!(
        [
            splits.train.len(),
            splits.validation.len(),
            splits.eval.len()
        ],
        [TRAIN_SIZE, VALIDATION_SIZE, EVAL_SIZE]
    );
    assert!(splits.train.len() >= 1000 && splits.validation.len() >= 100);
    assert!(splits.eval.len() >= 200);
    assert_eq!(splits.train[0].id, "verifiable-train-0001");
    assert_eq!(splits.eval[199].id, "verifiable-eval-0200");
    let mut all = HashSet::new();
    for split in [&splits.train, &splits.validation, &splits.eval] {
        for instruction in split {
            assert!(
                all.insert(prompt(instruction)),
                "repeated: {}",
                instruction.id
            );
        }
    }
    // Every category is in every split.
    for split in [&splits.train, &splits.validation, &splits.eval] {
        let categories: BTreeSet<&str> =
            split.iter().filter_map(|i| i.category.as_deref()).collect();
        assert_eq!(categories, CATEGORIES.iter().copied().collect());
    }
}

#[test]
fn every_constraint_is_consistent_and_judged() {
    let (judge_ids, judge_source) = judge_ids_and_source();
    for id in SUPPORTED_CONSTRAINT_IDS {
        assert!(judge_ids.contains(id), "the judge does not implement {id}");
    }
    let splits = verifiable_splits(BUILTIN_SEED);
    let mut used = BTreeSet::new();
    let mut counts = [0; 4];
    for instruction in splits
        .train
        .iter()
        .chain(&splits.validation)
        .chain(&splits.eval)
        .chain(&verifiable(99, 2000))
    {
        check_instruction(instruction, &judge_ids, &judge_source);
        let ids = instruction.metadata["instruction_id_list"]
            .as_array()
            .unwrap();
        counts[ids.len()] += 1;
        used.extend(ids.iter().map(|id| id.as_str().unwrap().to_string()));
    }
    // Every kind is used, and each number of constraints is common.
    assert_eq!(
        used,
        SUPPORTED_CONSTRAINT_IDS
            .iter()
            .map(|id| id.to_string())
            .collect()
    );
    assert!(counts[1..].iter().all(|&count| count > 300), "{counts:?}");
}

#[test]
fn open_ended_instructions_cover_every_category() {
    let instructions = open_ended();
    assert!((50..=80).contains(&instructions.len()));
    let prompts: HashSet<&str> = instructions.iter().map(prompt).collect();
    assert_eq!(prompts.len(), instructions.len());
    let categories: BTreeSet<&str> = instructions
        .iter()
        .filter_map(|i| i.category.as_deref())
        .collect();
    assert_eq!(categories, CATEGORIES.iter().copied().collect());
    assert!(
        instructions
            .iter()
            .all(|i| i.metadata == serde_json::json!({}))
    );
    assert_eq!(instructions[0].id, "open-ended-001");
}

/// `data/` holds exactly what the generator writes: regenerate with the commands in
/// `data/README.md` after changing the generator.
#[test]
fn committed_files_equal_a_fresh_generation() {
    let data = repository().join("data");
    let splits = verifiable_splits(BUILTIN_SEED);
    for (file, instructions) in [
        ("verifiable/train.jsonl", &splits.train),
        ("verifiable/validation.jsonl", &splits.validation),
        ("verifiable/eval.jsonl", &splits.eval),
        ("open-ended.jsonl", &open_ended()),
    ] {
        let path = data.join(file);
        let committed = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        assert!(
            committed == to_jsonl(instructions),
            "{file} differs from a fresh generation"
        );
        assert_eq!(&read_instructions(&path).unwrap(), instructions);
    }
}
