//! End-to-end training on the tiny models: learning, saved checkpoints, resume, divergence.

mod common;

use std::path::Path;

use burn::tensor::{Device, Tensor};
use common::tiny_dir;
use ponder_checkpoint::{Checkpoint, HostTensor, Message};
use ponder_model::{CausalLm, PaddingSide, TokenBatch};
use ponder_trainer::reference::compute_logps;
use ponder_trainer::{
    AdamWConfig, BatchSizeConfig, DpoConfig, DpoJob, EvalHook, PairRow, ScheduleKind, TrainError,
    tokenize_pairs, train_dpo,
};

fn load(name: &str) -> Checkpoint {
    Checkpoint::load(&tiny_dir().join(name)).expect("tiny checkpoint loads")
}

fn pairs() -> Vec<PairRow> {
    let make = |q: &str, good: &str, bad: &str| PairRow {
        prompt: vec![Message {
            role: "user".into(),
            content: q.into(),
        }],
        chosen: good.into(),
        rejected: bad.into(),
        weight: 1.0,
        metadata: serde_json::Value::Null,
    };
    vec![
        make("Name a fruit.", "An apple.", "I refuse."),
        make("What is 2+2?", "It is 4.", "Maybe 5, who knows."),
        make("Say hello.", "Hello!", "No."),
        make("Colour of the sky?", "Blue, on a clear day.", "Green."),
    ]
}

fn config(epochs: u64) -> DpoConfig {
    DpoConfig {
        optimizer: AdamWConfig {
            lr: 1e-3,
            ..AdamWConfig::default()
        },
        schedule: ScheduleKind::Constant,
        epochs,
        batch: BatchSizeConfig::Pairs(2),
        progress: false,
        ..DpoConfig::default()
    }
}

/// Reward margin and accuracy of `policy` against `reference` on `rows` (β = 0.1).
fn margin_and_accuracy(
    policy: &Checkpoint,
    reference: &Checkpoint,
    rows: &[PairRow],
) -> (f64, f64) {
    let device = Device::default();
    let pairs = tokenize_pairs(policy, rows, None).expect("tokenise");
    let p = compute_logps(
        &CausalLm::from_checkpoint(policy, &device).unwrap(),
        &pairs,
        4,
        &device,
    )
    .unwrap();
    let r = compute_logps(
        &CausalLm::from_checkpoint(reference, &device).unwrap(),
        &pairs,
        4,
        &device,
    )
    .unwrap();
    let margins: Vec<f64> = p
        .iter()
        .zip(&r)
        .map(|(p, r)| 0.1 * ((p.chosen - r.chosen) - (p.rejected - r.rejected)))
        .collect();
    let n = margins.len() as f64;
    (
        margins.iter().sum::<f64>() / n,
        margins.iter().filter(|m| **m > 0.0).count() as f64 / n,
    )
}

#[test]
fn training_raises_reward_margin_and_accuracy() {
    let out = tempfile::tempdir().unwrap();
    let policy = load("llama");
    let rows = pairs();
    let job = DpoJob {
        policy: &policy,
        reference: None,
        pairs: &rows,
        out_dir: out.path(),
        device: Device::default(),
    };
    let outcome = train_dpo::<CausalLm>(&job, &config(4), None).expect("training runs");
    assert_eq!(outcome.steps, 8);
    let trained = Checkpoint::load(&outcome.model_dir).expect("trained model loads");
    let (margin_before, accuracy_before) = margin_and_accuracy(&policy, &policy, &rows);
    let (margin_after, accuracy_after) = margin_and_accuracy(&trained, &policy, &rows);
    assert_eq!(margin_before, 0.0);
    assert_eq!(accuracy_before, 0.0);
    assert!(margin_after > 0.1, "margin after training: {margin_after}");
    assert_eq!(accuracy_after, 1.0);
    // metrics: one line per step with TRL's keys
    let metrics = std::fs::read_to_string(out.path().join("metrics.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 8);
    for key in [
        "loss",
        "rewards/chosen",
        "rewards/rejected",
        "rewards/margins",
        "rewards/accuracies",
        "logps/chosen",
        "logps/rejected",
        "grad_norm",
        "learning_rate",
        "tokens_per_second",
    ] {
        assert!(lines[7].get(key).is_some(), "metrics lack {key}");
    }
    let first_loss = lines[0]["loss"].as_f64().unwrap();
    let last_loss = lines[7]["loss"].as_f64().unwrap();
    assert!(last_loss < first_loss, "loss {first_loss} -> {last_loss}");
    // a rerun of a finished run does nothing and reports the same result
    let again = train_dpo::<CausalLm>(&job, &config(4), None).expect("rerun");
    assert_eq!(again.steps, 8);
    assert_eq!(
        std::fs::read_to_string(out.path().join("metrics.jsonl")).unwrap(),
        metrics
    );
}

fn logits(model: &CausalLm) -> Vec<f32> {
    let batch =
        TokenBatch::padded(&[vec![1, 9690, 198, 2683, 359, 253]], PaddingSide::Right).unwrap();
    let out: Tensor<3> = model.forward(&batch).unwrap();
    out.into_data().try_into_vec_as::<f32>().unwrap()
}

#[test]
fn saved_checkpoint_loads_back_to_the_same_logits() {
    let out = tempfile::tempdir().unwrap();
    let policy = load("policy");
    let rows = pairs();
    let job = DpoJob {
        policy: &policy,
        reference: Some(&load("llama")),
        pairs: &rows,
        out_dir: out.path(),
        device: Device::default(),
    };
    let outcome = train_dpo::<CausalLm>(&job, &config(1), None).expect("training runs");
    let reloaded = Checkpoint::load(&outcome.model_dir).expect("saved model loads");
    let device = Device::default();
    let trained = CausalLm::from_checkpoint(&reloaded, &device).unwrap();
    let original = CausalLm::from_checkpoint(&policy, &device).unwrap();
    // the saved weights are the trained ones (they differ from the start) ...
    let (a, b) = (logits(&trained), logits(&original));
    assert!(a.iter().zip(&b).any(|(x, y)| (x - y).abs() > 1e-3));
    // ... and a save/load round trip of them reproduces the logits exactly
    let again = tempfile::tempdir().unwrap();
    let dir = again.path().join("copy");
    ponder_checkpoint::save_hf_dir(
        &dir,
        &reloaded.config,
        &trained.to_weights().unwrap(),
        &reloaded.tokenizer,
        reloaded.chat_template.as_ref(),
    )
    .unwrap();
    let copy = CausalLm::from_checkpoint(&Checkpoint::load(&dir).unwrap(), &device).unwrap();
    assert_eq!(logits(&copy), a);
}

/// Fails at a chosen step (to interrupt a run), else returns the step number.
struct StopAt(Option<u64>);

impl EvalHook<CausalLm> for StopAt {
    fn evaluate(&mut self, _model: &CausalLm, step: u64) -> Result<f64, TrainError> {
        if Some(step) == self.0 {
            return Err(TrainError::State("interrupted".into()));
        }
        Ok(step as f64)
    }
    fn higher_is_better(&self) -> bool {
        true
    }
    fn name(&self) -> &str {
        "step"
    }
}

fn weights(dir: &Path) -> Vec<(String, HostTensor)> {
    let checkpoint = Checkpoint::load(dir).unwrap();
    let mut out: Vec<(String, HostTensor)> = checkpoint
        .weights
        .iter()
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn an_interrupted_run_resumes_to_the_same_result() {
    let policy = load("policy");
    let reference = load("llama");
    let rows = pairs();
    let mut config = config(2);
    config.save_every = Some(1);
    config.schedule = ScheduleKind::Cosine;
    config.warmup_steps = 1;

    let straight = tempfile::tempdir().unwrap();
    fn job<'a>(
        policy: &'a Checkpoint,
        reference: &'a Checkpoint,
        rows: &'a [PairRow],
        dir: &'a Path,
    ) -> DpoJob<'a> {
        DpoJob {
            policy,
            reference: Some(reference),
            pairs: rows,
            out_dir: dir,
            device: Device::default(),
        }
    }
    let mut hook = StopAt(None);
    train_dpo::<CausalLm>(
        &job(&policy, &reference, &rows, straight.path()),
        &config,
        Some(&mut hook),
    )
    .unwrap();

    let resumed = tempfile::tempdir().unwrap();
    let mut failing = StopAt(Some(3));
    let error = train_dpo::<CausalLm>(
        &job(&policy, &reference, &rows, resumed.path()),
        &config,
        Some(&mut failing),
    )
    .expect_err("the hook interrupts the run");
    assert!(error.to_string().contains("interrupted"));
    assert!(!resumed.path().join("model").exists());
    assert!(
        resumed
            .path()
            .join("checkpoints/step-000002/trainer_state.json")
            .exists()
    );
    let mut hook = StopAt(None);
    let outcome = train_dpo::<CausalLm>(
        &job(&policy, &reference, &rows, resumed.path()),
        &config,
        Some(&mut hook),
    )
    .unwrap();
    assert_eq!(outcome.steps, 4);
    assert_eq!(outcome.best_metric, Some(4.0));
    let (a, b) = (
        weights(&straight.path().join("model")),
        weights(&outcome.model_dir),
    );
    assert_eq!(a.len(), b.len());
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        let worst = x
            .data
            .iter()
            .zip(&y.data)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0f32, f32::max);
        assert!(worst <= 1e-6, "{name} differs by {worst} after resume");
    }
    let metrics = std::fs::read_to_string(resumed.path().join("metrics.jsonl")).unwrap();
    let steps: Vec<u64> = metrics
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(steps, vec![1, 2, 3, 4]);
}

#[test]
fn a_nan_loss_stops_before_anything_is_written() {
    let out = tempfile::tempdir().unwrap();
    let mut policy = load("policy");
    let mut norm = policy.weights.get("model.norm.weight").unwrap().clone();
    norm.data[0] = f32::NAN;
    policy.weights.insert("model.norm.weight".into(), norm);
    let reference = load("llama");
    let rows = pairs();
    let job = DpoJob {
        policy: &policy,
        reference: Some(&reference),
        pairs: &rows,
        out_dir: out.path(),
        device: Device::default(),
    };
    let error = train_dpo::<CausalLm>(&job, &config(1), None).expect_err("diverges");
    let message = error.to_string();
    assert!(
        message.contains("diverged at optimizer step 1"),
        "{message}"
    );
    assert!(message.contains("loss is NaN"), "{message}");
    assert!(!out.path().join("model").exists());
    assert!(!out.path().join("checkpoints").exists());
}
