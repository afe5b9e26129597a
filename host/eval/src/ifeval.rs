//! IFEval's loose response variants and its accuracies (Zhou et al. 2023, "Instruction-Following
//! Evaluation for Large Language Models"), aggregated as its `evaluation_main.py` reports them.
//!
//! The checks themselves (does a response satisfy `keywords:existence`?) are the
//! `judge-constraints` plugin's; this module counts their verdicts: per prompt, strict (the
//! response as it is) and loose (any of [`loose_variants`]) for each constraint. Prompt-level
//! accuracy is the fraction of prompts whose every constraint holds; instruction-level accuracy
//! is the fraction of all constraints, pooled over prompts, that hold (not the mean of the
//! per-prompt fractions); per constraint type and per group (the id's part before `:`), the
//! fraction of that type's constraints that hold (IFEval's `tier1` and `tier0` tables).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::EvalError;

/// Python's `str.isspace()` for one character: Unicode White_Space plus the information
/// separators U+001C..U+001F, which Python also counts.
fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.strip()` without arguments.
fn python_strip(text: &str) -> &str {
    text.trim_matches(is_python_space)
}

/// IFEval's eight loose variants of a response, in its order
/// (`evaluation_lib.test_instruction_following_loose`, `if-verifiable`'s
/// `get_loose_transformations`): the response; it without `*`; it without its first line, its
/// last line, both (lines split on `\n`, each result stripped of surrounding whitespace); those
/// three without `*`. A constraint holds loosely when it holds on some variant that is not blank.
pub fn loose_variants(response: &str) -> Vec<String> {
    let lines: Vec<&str> = response.split('\n').collect();
    let last = lines.len().saturating_sub(1);
    // Python's slices of a one-line list are empty where Rust's ranges would be reversed.
    let join = |from: usize, to: usize| -> String {
        let part = lines.get(from..to.max(from)).unwrap_or(&[]);
        python_strip(&part.join("\n")).to_string()
    };
    let without_first = join(1, lines.len());
    let without_last = join(0, last);
    let without_both = join(1, last);
    let unstarred = |text: &str| text.replace('*', "");
    vec![
        response.to_string(),
        unstarred(response),
        without_first.clone(),
        without_last.clone(),
        without_both.clone(),
        unstarred(&without_first),
        unstarred(&without_last),
        unstarred(&without_both),
    ]
}

/// One constraint's verdicts on one response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConstraintVerdict {
    /// IFEval's instruction id, e.g. `keywords:existence`.
    pub constraint_id: String,
    /// Whether the response as it is satisfies the constraint.
    pub strict: bool,
    /// Whether some loose variant of the response satisfies it.
    pub loose: bool,
}

/// How often a set of constraints holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConstraintAccuracy {
    /// Constraints counted.
    pub constraints: usize,
    /// The fraction that holds strictly.
    pub strict: f64,
    /// The fraction that holds loosely.
    pub loose: f64,
}

/// IFEval's four accuracies and its per-constraint tables, fractions in [0, 1].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IfevalAccuracies {
    /// Prompts counted.
    pub prompts: usize,
    /// Constraints counted, over all prompts.
    pub constraints: usize,
    /// The fraction of prompts whose every constraint holds strictly.
    pub prompt_level_strict: f64,
    /// The fraction of prompts whose every constraint holds loosely.
    pub prompt_level_loose: f64,
    /// The fraction of all constraints that hold strictly.
    pub instruction_level_strict: f64,
    /// The fraction of all constraints that hold loosely.
    pub instruction_level_loose: f64,
    /// Per constraint id (IFEval's `tier1`).
    pub per_constraint: BTreeMap<String, ConstraintAccuracy>,
    /// Per constraint group, the id before `:` (IFEval's `tier0`).
    pub per_constraint_group: BTreeMap<String, ConstraintAccuracy>,
}

/// Strict and loose tallies of some constraints.
#[derive(Default)]
struct Tally {
    total: usize,
    strict: usize,
    loose: usize,
}

impl Tally {
    fn add(&mut self, strict: bool, loose: bool) {
        self.total += 1;
        self.strict += usize::from(strict);
        self.loose += usize::from(loose);
    }

    fn accuracy(&self) -> ConstraintAccuracy {
        let fraction = |count: usize| count as f64 / self.total as f64;
        ConstraintAccuracy {
            constraints: self.total,
            strict: fraction(self.strict),
            loose: fraction(self.loose),
        }
    }
}

/// IFEval's accuracies over prompts, each given by its constraints' verdicts.
///
/// # Errors
/// [`EvalError::Empty`] without prompts; [`EvalError::PromptWithoutConstraints`] for a prompt
/// with no verdict (IFEval would count it as followed, `if-verifiable` as not: it is refused
/// rather than guessed).
pub fn ifeval_accuracies<'a>(
    prompts: impl IntoIterator<Item = &'a [ConstraintVerdict]>,
) -> Result<IfevalAccuracies, EvalError> {
    let mut prompt_level = Tally::default();
    let mut instruction_level = Tally::default();
    let mut per_constraint: BTreeMap<&str, Tally> = BTreeMap::new();
    let mut per_group: BTreeMap<&str, Tally> = BTreeMap::new();
    for (index, verdicts) in prompts.into_iter().enumerate() {
        if verdicts.is_empty() {
            return Err(EvalError::PromptWithoutConstraints { index });
        }
        prompt_level.add(
            verdicts.iter().all(|v| v.strict),
            verdicts.iter().all(|v| v.loose),
        );
        for verdict in verdicts {
            let id = verdict.constraint_id.as_str();
            let group = id.split(':').next().unwrap_or(id);
            instruction_level.add(verdict.strict, verdict.loose);
            per_constraint
                .entry(id)
                .or_default()
                .add(verdict.strict, verdict.loose);
            per_group
                .entry(group)
                .or_default()
                .add(verdict.strict, verdict.loose);
        }
    }
    if prompt_level.total == 0 {
        return Err(EvalError::Empty);
    }
    let table = |tallies: BTreeMap<&str, Tally>| {
        tallies
            .into_iter()
            .map(|(id, tally)| (id.to_string(), tally.accuracy()))
            .collect()
    };
    let prompts = prompt_level.accuracy();
    let constraints = instruction_level.accuracy();
    Ok(IfevalAccuracies {
        prompts: prompt_level.total,
        constraints: instruction_level.total,
        prompt_level_strict: prompts.strict,
        prompt_level_loose: prompts.loose,
        instruction_level_strict: constraints.strict,
        instruction_level_loose: constraints.loose,
        per_constraint: table(per_constraint),
        per_constraint_group: table(per_group),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(id: &str, strict: bool, loose: bool) -> ConstraintVerdict {
        ConstraintVerdict {
            constraint_id: id.to_string(),
            strict,
            loose,
        }
    }

    #[test]
    fn loose_variants_by_hand() {
        let variants = loose_variants("Sure!\n**Title**\n body \nBye");
        assert_eq!(
            variants,
            [
                "Sure!\n**Title**\n body \nBye",
                "Sure!\nTitle\n body \nBye",
                "**Title**\n body \nBye",
                "Sure!\n**Title**\n body",
                "**Title**\n body",
                "Title\n body \nBye",
                "Sure!\nTitle\n body",
                "Title\n body",
            ]
        );
    }

    #[test]
    fn loose_variants_of_one_line_and_python_whitespace() {
        // One line: every cut is empty (Python's `lines[1:-1]` of a one-element list).
        assert_eq!(loose_variants("*a*"), ["*a*", "a", "", "", "", "", "", ""]);
        // Python strips U+001F and U+00A0 too.
        let variants = loose_variants("x\n\u{1f}y\u{a0}\nz");
        assert_eq!(variants[2], "y\u{a0}\nz");
        assert_eq!(variants[4], "y");
    }

    #[test]
    fn four_accuracies_by_hand() {
        // Prompt 1: both constraints hold strictly. Prompt 2: one fails strictly, holds loosely.
        // Prompt 3: one constraint, fails both ways.
        let p1 = [
            verdict("keywords:existence", true, true),
            verdict("length:words", true, true),
        ];
        let p2 = [
            verdict("keywords:existence", false, true),
            verdict("punctuation:no_comma", true, true),
        ];
        let p3 = [verdict("length:words", false, false)];
        let result = ifeval_accuracies([&p1[..], &p2[..], &p3[..]]).unwrap();
        assert_eq!((result.prompts, result.constraints), (3, 5));
        assert!((result.prompt_level_strict - 1.0 / 3.0).abs() < 1e-15);
        assert!((result.prompt_level_loose - 2.0 / 3.0).abs() < 1e-15);
        // Pooled: 3 of 5 strictly, 4 of 5 loosely (the mean of per-prompt fractions would be
        // (1 + ½ + 0)/3 = ½ strictly).
        assert!((result.instruction_level_strict - 0.6).abs() < 1e-15);
        assert!((result.instruction_level_loose - 0.8).abs() < 1e-15);
        let keywords = &result.per_constraint["keywords:existence"];
        assert_eq!(
            (keywords.constraints, keywords.strict, keywords.loose),
            (2, 0.5, 1.0)
        );
        let length = &result.per_constraint_group["length"];
        assert_eq!(
            (length.constraints, length.strict, length.loose),
            (2, 0.5, 0.5)
        );
        assert_eq!(result.per_constraint_group.len(), 3);
    }

    #[test]
    fn empty_input_is_an_error() {
        assert_eq!(ifeval_accuracies(std::iter::empty()), Err(EvalError::Empty));
        let p1 = [verdict("a:b", true, true)];
        assert_eq!(
            ifeval_accuracies([&p1[..], &[][..]]),
            Err(EvalError::PromptWithoutConstraints { index: 1 })
        );
    }
}
