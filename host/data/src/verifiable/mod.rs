//! The seeded generator of verifiable instructions: base tasks (a template of a category applied
//! to a topic) with 1-3 IFEval constraints each, in IFEval's own wording and metadata format, for
//! the `judge-constraints` plugin. Replaces the Python script that wrote `data/train.jsonl`.

mod catalog;
mod constraints;
mod rng;

use std::collections::HashSet;

use ponder_contract::Message;
use serde_json::{Value, json};

use crate::Instruction;
use catalog::{CATALOG, TaskKind};
use constraints::{Kind, constrain};
use rng::Rng;

/// The seed of the built-in set in `data/verifiable/` (the TPO paper's arXiv date).
pub const BUILTIN_SEED: u64 = 20241014;
/// Instructions in the training split of [`verifiable_splits`].
pub const TRAIN_SIZE: usize = 1000;
/// Instructions in the validation split (checkpoint selection).
pub const VALIDATION_SIZE: usize = 100;
/// Instructions in the evaluation split.
pub const EVAL_SIZE: usize = 200;

/// Topics of each category that go to the validation split (the rest of the 16 go to eval and
/// train).
const VALIDATION_TOPICS: usize = 2;
/// Topics of each category that go to the evaluation split.
const EVAL_TOPICS: usize = 3;

/// The categories of the generated instructions, after the task categories of the TPO paper's
/// analysis.
pub const CATEGORIES: [&str; CATALOG.len()] = {
    let mut names = [""; CATALOG.len()];
    let mut index = 0;
    while index < CATALOG.len() {
        names[index] = CATALOG[index].name;
        index += 1;
    }
    names
};

/// The IFEval instruction ids the generator can emit: all of them are implemented by
/// `plugins/judge-constraints`.
pub const SUPPORTED_CONSTRAINT_IDS: [&str; Kind::ALL.len()] = {
    let mut ids = [""; Kind::ALL.len()];
    let mut index = 0;
    while index < Kind::ALL.len() {
        ids[index] = Kind::ALL[index].id();
        index += 1;
    }
    ids
};

/// The three disjoint splits of the built-in verifiable set.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiableSplits {
    /// [`TRAIN_SIZE`] instructions to train on, ids `verifiable-train-0001`...
    pub train: Vec<Instruction>,
    /// [`VALIDATION_SIZE`] instructions to choose checkpoints on.
    pub validation: Vec<Instruction>,
    /// [`EVAL_SIZE`] instructions to evaluate on.
    pub eval: Vec<Instruction>,
}

/// One base task: a category's template applied to one of its topics.
struct BaseTask {
    category: &'static str,
    /// Read by the tests of split disjointness.
    #[cfg_attr(not(test), allow(dead_code))]
    topic: &'static str,
    kind: TaskKind,
    text: String,
}

fn base_tasks(category: &catalog::Category, topics: &[&'static str]) -> Vec<BaseTask> {
    topics
        .iter()
        .flat_map(|topic| {
            category
                .templates
                .iter()
                .map(move |(kind, template)| BaseTask {
                    category: category.name,
                    topic,
                    kind: *kind,
                    text: template.replace("{}", topic),
                })
        })
        .collect()
}

/// `count` instructions with distinct prompts from `tasks`, each task used once before any is
/// used again; ids `<prefix>-0001`...
fn generate(rng: &mut Rng, tasks: &[BaseTask], count: usize, prefix: &str) -> Vec<Instruction> {
    let width = count.to_string().len().max(4);
    let mut order: Vec<usize> = (0..tasks.len()).collect();
    rng.shuffle(&mut order);
    let mut next = 0;
    let mut prompts = HashSet::new();
    let mut instructions = Vec::with_capacity(count);
    while instructions.len() < count {
        if next == order.len() {
            rng.shuffle(&mut order);
            next = 0;
        }
        let task = &tasks[order[next]];
        next += 1;
        let constrained = constrain(rng, &task.text, task.kind);
        if !prompts.insert(constrained.prompt.clone()) {
            continue;
        }
        let ids: Vec<&str> = constrained
            .constraints
            .iter()
            .map(|c| c.kind.id())
            .collect();
        let kwargs: Vec<Value> = constrained
            .constraints
            .into_iter()
            .map(|c| Value::Object(c.kwargs))
            .collect();
        instructions.push(Instruction {
            id: format!("{prefix}-{:0width$}", instructions.len() + 1),
            messages: vec![Message::new("user", constrained.prompt)],
            category: Some(task.category.to_string()),
            reference: None,
            metadata: json!({"instruction_id_list": ids, "kwargs": kwargs}),
        });
    }
    instructions
}

/// `count` verifiable instructions drawn from every base task, ids `verifiable-0001`...; the
/// same seed gives the same instructions, byte for byte. Prompts are distinct (the space of
/// task × constraint combinations is in the millions, far above any sensible count).
pub fn verifiable(seed: u64, count: usize) -> Vec<Instruction> {
    let tasks: Vec<BaseTask> = CATALOG
        .iter()
        .flat_map(|category| base_tasks(category, category.topics))
        .collect();
    generate(&mut Rng::new(seed, "all"), &tasks, count, "verifiable")
}

/// The base tasks of the train, validation and eval splits for `seed`: each category's topics
/// are dealt out to validation (2), eval (3) and train (the rest), so no topic, and so no base
/// task, is in two splits.
fn split_tasks(seed: u64) -> [Vec<BaseTask>; 3] {
    let [mut train, mut validation, mut eval] = [Vec::new(), Vec::new(), Vec::new()];
    for category in CATALOG {
        let mut topics = category.topics.to_vec();
        Rng::new(seed, &format!("topics:{}", category.name)).shuffle(&mut topics);
        let (validation_topics, rest) = topics.split_at(VALIDATION_TOPICS);
        let (eval_topics, train_topics) = rest.split_at(EVAL_TOPICS);
        validation.extend(base_tasks(category, validation_topics));
        eval.extend(base_tasks(category, eval_topics));
        train.extend(base_tasks(category, train_topics));
    }
    [train, validation, eval]
}

/// The built-in splits for `seed`, disjoint down to their topics: no prompt, base task or topic
/// of one split is in another. The same seed gives the same splits, byte for byte.
pub fn verifiable_splits(seed: u64) -> VerifiableSplits {
    let [train, validation, eval] = split_tasks(seed);
    let split = |label: &str, tasks: &[BaseTask], count: usize| {
        let mut rng = Rng::new(seed, label);
        generate(&mut rng, tasks, count, &format!("verifiable-{label}"))
    };
    VerifiableSplits {
        train: split("train", &train, TRAIN_SIZE),
        validation: split("validation", &validation, VALIDATION_SIZE),
        eval: split("eval", &eval, EVAL_SIZE),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_category_has_sixteen_distinct_topics_and_distinct_templates() {
        for category in CATALOG {
            let topics: HashSet<_> = category.topics.iter().collect();
            assert_eq!(topics.len(), 16, "{}", category.name);
            let templates: HashSet<_> = category.templates.iter().map(|(_, t)| t).collect();
            assert_eq!(
                templates.len(),
                category.templates.len(),
                "{}",
                category.name
            );
            assert!(
                category
                    .templates
                    .iter()
                    .all(|(_, t)| t.matches("{}").count() == 1)
            );
        }
    }

    #[test]
    fn topics_and_base_tasks_belong_to_one_split() {
        let tasks = split_tasks(BUILTIN_SEED);
        let topics: Vec<HashSet<(&str, &str)>> = tasks
            .iter()
            .map(|split| {
                split
                    .iter()
                    .map(|task| (task.category, task.topic))
                    .collect()
            })
            .collect();
        for (a, b) in [(0, 1), (0, 2), (1, 2)] {
            assert!(
                topics[a].is_disjoint(&topics[b]),
                "splits {a} and {b} share a topic"
            );
        }
        let splits = verifiable_splits(BUILTIN_SEED);
        for (index, split) in [&splits.train, &splits.validation, &splits.eval]
            .into_iter()
            .enumerate()
        {
            for instruction in split {
                let prompt = &instruction.messages[0].content;
                let owners: Vec<usize> = (0..3)
                    .filter(|owner| {
                        tasks[*owner]
                            .iter()
                            .any(|task| prompt.starts_with(&task.text))
                    })
                    .collect();
                assert_eq!(owners, vec![index], "{}: {prompt}", instruction.id);
            }
        }
    }
}
