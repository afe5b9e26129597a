//! End-to-end training on the tiny models: learning, saved checkpoints, resume, divergence.

mod common;

use std::path::Path;

use burn::tensor::{Device, Tensor};
use common::tiny_dir;
use ponder_checkpoint::{Checkpoint, HostTensor, Message};
use ponder_model::{CausalLm, PaddingSide, TokenBatch};
use ponder_trainer::optim::parameter_paths;
use ponder_trainer::reference::compute_logps;
use ponder_trainer::train::{MicroBatch, micro_step};
use ponder_trainer::{
    AdamW, AdamWConfig, BatchSizeConfig, DpoConfig, DpoJob, EvalHook, GradientAccumulator,
    LoraConfig, LoraTarget, LossConfig, PairRow, ScheduleKind, TokenizedPair, TrainError,
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
    let device = common::device();
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
        device: common::device(),
        adapter: None,
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
        device: common::device(),
        adapter: None,
    };
    let outcome = train_dpo::<CausalLm>(&job, &config(1), None).expect("training runs");
    let reloaded = Checkpoint::load(&outcome.model_dir).expect("saved model loads");
    let device = common::device();
    let trained = CausalLm::from_checkpoint(&reloaded, &device).unwrap();
    let original = CausalLm::from_checkpoint(&policy, &device).unwrap();
    // the saved weights are the trained ones (they differ from the start) ...
    let (a, b) = (logits(&trained), logits(&original));
    assert!(a.iter().zip(&b).any(|(x, y)| (x - y).abs() > 1e-3));
    // ... and a save/load round trip of them reproduces the logits exactly
    let copy = save_and_load(&trained, &reloaded, &device);
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

/// Writes `model` as a Hugging Face directory (config, tokenizer and template of `like`) and
/// loads it back.
fn save_and_load(model: &CausalLm, like: &Checkpoint, device: &Device) -> CausalLm {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("saved");
    ponder_checkpoint::save_hf_dir(
        &path,
        &like.config,
        &model.to_weights().unwrap(),
        &like.tokenizer,
        like.chat_template.as_ref(),
    )
    .unwrap();
    CausalLm::from_checkpoint(&Checkpoint::load(&path).unwrap(), device).unwrap()
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
        device: common::device(),
        adapter: None,
    }
}

/// The run configuration of the resume tests: a checkpoint every step, warm-up and cosine decay.
fn resume_config(lora: Option<LoraConfig>) -> DpoConfig {
    let mut config = config(2);
    config.save_every = Some(1);
    config.schedule = ScheduleKind::Cosine;
    config.warmup_steps = 1;
    config.lora = lora;
    config
}

#[test]
fn an_interrupted_run_resumes_to_the_same_result() {
    resume_replays_exactly(&resume_config(None));
}

/// Runs `config` straight and interrupted after step 2 + resumed; the results must agree.
fn resume_replays_exactly(config: &DpoConfig) {
    let policy = load("policy");
    let reference = load("llama");
    let rows = pairs();
    let config = config.clone();

    let straight = tempfile::tempdir().unwrap();
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
        device: common::device(),
        adapter: None,
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

// ---- LoRA ----

/// A copy of `model` without its adapters: the frozen base weights.
fn without_adapters(model: &CausalLm) -> CausalLm {
    let mut base = model.clone();
    for layer in &mut base.layers {
        for projection in [
            &mut layer.self_attn.q_proj,
            &mut layer.self_attn.k_proj,
            &mut layer.self_attn.v_proj,
            &mut layer.self_attn.o_proj,
            &mut layer.mlp.gate_proj,
            &mut layer.mlp.up_proj,
            &mut layer.mlp.down_proj,
        ] {
            projection.lora = None;
        }
    }
    base
}

fn host_weights(model: &CausalLm) -> Vec<(String, HostTensor)> {
    let mut out: Vec<(String, HostTensor)> = model
        .to_weights()
        .unwrap()
        .iter()
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn a_fresh_adapter_leaves_the_logits_unchanged() {
    let device = common::device();
    let base = CausalLm::from_checkpoint(&load("policy"), &device).unwrap();
    let adapted = base.clone().with_lora(&LoraConfig::new(4), 7).unwrap();
    assert!(adapted.has_lora());
    assert_eq!(
        adapted.lora_weights().unwrap().len(),
        2 * 7 * base.layers.len()
    );
    assert_eq!(logits(&adapted), logits(&base));
    // merged with B = 0, the saved weights are the base weights
    assert_eq!(host_weights(&adapted), host_weights(&base));
}

#[test]
fn a_lora_step_trains_only_the_adapters() {
    let device = common::device();
    let train_device = device.clone().autodiff();
    let policy = load("policy");
    let tokenized = tokenize_pairs(&policy, &pairs(), None).unwrap();
    let reference = compute_logps(
        &CausalLm::from_checkpoint(&policy, &device).unwrap(),
        &tokenized,
        4,
        &device,
    )
    .unwrap();
    let lora = LoraConfig {
        targets: vec![LoraTarget::QProj, LoraTarget::VProj, LoraTarget::DownProj],
        ..LoraConfig::new(4)
    };
    let model = CausalLm::from_checkpoint(&policy, &train_device)
        .unwrap()
        .with_lora(&lora, 1)
        .unwrap();
    let base_before = host_weights(&without_adapters(&model));
    let adapters_before = model.lora_weights().unwrap();

    let mut grads = GradientAccumulator::new();
    let batch: Vec<&TokenizedPair> = tokenized.iter().collect();
    let total: f64 = tokenized.iter().map(|p| p.weight).sum();
    let micro = MicroBatch {
        pairs: &batch,
        reference: &reference,
        weight_scale: 1.0,
        weight_total: total,
    };
    micro_step(&model, &micro, &LossConfig::default(), 1, Some(&mut grads)).unwrap();
    // gradients (and so optimiser state) exist for the adapters only, and for every B
    let paths = parameter_paths(&model);
    let with_grad: Vec<&String> = paths
        .iter()
        .filter(|(id, _)| grads.get(id).is_some())
        .map(|(_, path)| path)
        .collect();
    assert!(!with_grad.is_empty());
    assert!(
        with_grad.iter().all(|p| p.contains(".lora.")),
        "{with_grad:?}"
    );
    let b_count = paths.iter().filter(|(_, p)| p.ends_with(".lora.b")).count();
    assert_eq!(b_count, 3 * model.layers.len());
    assert_eq!(
        with_grad.iter().filter(|p| p.ends_with(".lora.b")).count(),
        b_count
    );

    let mut optimizer = AdamW::new(AdamWConfig {
        lr: 1e-2,
        ..AdamWConfig::default()
    });
    let model = optimizer.step(model, grads, 1e-2);
    assert_eq!(host_weights(&without_adapters(&model)), base_before);
    let adapters_after = model.lora_weights().unwrap();
    let changed = |suffix: &str| {
        adapters_after
            .iter()
            .filter(|(name, _)| name.ends_with(suffix))
            .all(|(name, t)| t.data != adapters_before.get(name).unwrap().data)
    };
    assert!(changed("lora_B.weight"), "every B moved");
    // merged, the targeted weights moved and the others did not
    let merged = host_weights(&model);
    for ((name, after), (_, before)) in merged.iter().zip(&base_before) {
        let targeted =
            name.contains("q_proj") || name.contains("v_proj") || name.contains("down_proj");
        assert_eq!(after.data != before.data, targeted, "{name}");
    }
}

#[test]
fn merged_adapters_give_the_same_logits_after_a_save_and_load() {
    // llama, and qwen2 whose attention projections carry biases
    for name in ["policy", "qwen2"] {
        check_merge_round_trip(name);
    }
}

fn check_merge_round_trip(name: &str) {
    let device = common::device();
    let policy = load(name);
    let base = CausalLm::from_checkpoint(&policy, &device).unwrap();
    let lora = LoraConfig::new(4);
    let mut factors = base
        .clone()
        .with_lora(&lora, 11)
        .unwrap()
        .lora_weights()
        .unwrap();
    // a non-zero B, so that the adapters change the output
    let names: Vec<String> = factors.names().map(str::to_string).collect();
    for name in names.iter().filter(|n| n.ends_with("lora_B.weight")) {
        let tensor = factors.get(name).unwrap();
        let data: Vec<f32> = (0..tensor.data.len())
            .map(|i| 0.05 * ((i as f32) * 0.37).sin())
            .collect();
        let replaced = HostTensor::new(tensor.shape.clone(), data).unwrap();
        factors.insert(name.clone(), replaced);
    }
    let adapted = base.clone().with_lora_weights(&lora, &factors).unwrap();
    let adapted_logits = logits(&adapted);
    let base_logits = logits(&base);
    assert!(
        adapted_logits
            .iter()
            .zip(&base_logits)
            .any(|(a, b)| (a - b).abs() > 1e-3),
        "{name}: the adapters change the logits"
    );
    let merged = save_and_load(&adapted, &policy, &device);
    assert!(!merged.has_lora());
    let worst = logits(&merged)
        .iter()
        .zip(&adapted_logits)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst <= 1e-4, "{name}: merged logits differ by {worst}");
}

fn lora_config(rank: usize) -> LoraConfig {
    LoraConfig::new(rank)
}

#[test]
fn lora_training_raises_reward_margin_and_accuracy() {
    let out = tempfile::tempdir().unwrap();
    let policy = load("llama");
    let rows = pairs();
    let job = DpoJob {
        policy: &policy,
        reference: None,
        pairs: &rows,
        out_dir: out.path(),
        device: common::device(),
        adapter: None,
    };
    let mut config = config(4);
    config.optimizer.lr = 1e-2;
    config.lora = Some(lora_config(8));
    let outcome = train_dpo::<CausalLm>(&job, &config, None).expect("LoRA training runs");
    assert_eq!(outcome.steps, 8);
    // the saved model is a plain checkpoint (adapters merged)
    let trained = Checkpoint::load(&outcome.model_dir).expect("trained model loads");
    assert!(
        trained.weights.names().all(|n| !n.contains("lora")),
        "no adapter tensors in the saved model"
    );
    let (margin_after, accuracy_after) = margin_and_accuracy(&trained, &policy, &rows);
    assert!(
        margin_after > 0.1,
        "margin after LoRA training: {margin_after}"
    );
    assert_eq!(accuracy_after, 1.0);
    // only the adapted projections moved
    let embed = |c: &Checkpoint| {
        c.weights
            .get("model.embed_tokens.weight")
            .unwrap()
            .data
            .clone()
    };
    assert_eq!(embed(&trained), embed(&policy));
    let q = |c: &Checkpoint| {
        c.weights
            .get("model.layers.0.self_attn.q_proj.weight")
            .unwrap()
            .data
            .clone()
    };
    assert_ne!(q(&trained), q(&policy));
}

#[test]
fn an_interrupted_lora_run_resumes_to_the_same_result() {
    resume_replays_exactly(&resume_config(Some(lora_config(4))));
}

#[test]
fn resuming_with_other_lora_settings_is_refused() {
    let policy = load("policy");
    let reference = load("llama");
    let rows = pairs();
    let dir = tempfile::tempdir().unwrap();
    let config = resume_config(Some(lora_config(4)));
    let mut failing = StopAt(Some(3));
    train_dpo::<CausalLm>(
        &job(&policy, &reference, &rows, dir.path()),
        &config,
        Some(&mut failing),
    )
    .expect_err("the hook interrupts the run");
    assert!(
        dir.path()
            .join("checkpoints/step-000002/adapter.safetensors")
            .exists()
    );
    for other in [resume_config(Some(lora_config(8))), resume_config(None)] {
        let error = train_dpo::<CausalLm>(
            &job(&policy, &reference, &rows, dir.path()),
            &other,
            Some(&mut StopAt(None)),
        )
        .expect_err("other LoRA settings are refused");
        let message = error.to_string();
        assert!(message.contains("LoRA rank 4"), "{message}");
        assert!(message.contains("same LoRA settings"), "{message}");
    }
    // the same settings still resume
    let outcome = train_dpo::<CausalLm>(
        &job(&policy, &reference, &rows, dir.path()),
        &config,
        Some(&mut StopAt(None)),
    )
    .unwrap();
    assert_eq!(outcome.steps, 4);
}

// ---- hardening: state that does not fit, updates that leave NaN, weights that overflow ----

#[test]
fn resuming_with_optimizer_moments_of_the_wrong_length_is_refused() {
    let policy = load("policy");
    let reference = load("llama");
    let rows = pairs();
    let dir = tempfile::tempdir().unwrap();
    let config = resume_config(None);
    train_dpo::<CausalLm>(
        &job(&policy, &reference, &rows, dir.path()),
        &config,
        Some(&mut StopAt(Some(3))),
    )
    .expect_err("the hook interrupts the run");
    let file = dir
        .path()
        .join("checkpoints/step-000002/optimizer.safetensors");
    // Rewrite the state with both moments of one parameter one value short, as a state saved
    // for another model would be.
    let bytes = std::fs::read(&file).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let metadata = header.metadata().clone();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = tensors.names().into_iter().map(str::to_string).collect();
    names.sort();
    let victim = names[0]
        .strip_prefix("exp_avg.")
        .expect("exp_avg.* sorts first")
        .to_string();
    let buffers: Vec<(String, Vec<u8>)> = names
        .iter()
        .map(|name| {
            let data = tensors.tensor(name).unwrap().data().to_vec();
            let shortened =
                *name == format!("exp_avg.{victim}") || *name == format!("exp_avg_sq.{victim}");
            let keep = if shortened {
                data.len() - 4
            } else {
                data.len()
            };
            (name.clone(), data[..keep].to_vec())
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = buffers
        .iter()
        .map(|(name, data)| {
            let view = safetensors::tensor::TensorView::new(
                safetensors::Dtype::F32,
                vec![data.len() / 4],
                data,
            )
            .unwrap();
            (name.clone(), view)
        })
        .collect();
    std::fs::write(
        &file,
        safetensors::tensor::serialize(views, metadata).unwrap(),
    )
    .unwrap();

    let error = train_dpo::<CausalLm>(
        &job(&policy, &reference, &rows, dir.path()),
        &config,
        Some(&mut StopAt(None)),
    )
    .expect_err("mismatched optimizer state is refused, not a panic");
    let message = error.to_string();
    assert!(
        message.contains("step-000002/optimizer.safetensors"),
        "{message}"
    );
    assert!(message.contains(&format!("`{victim}`")), "{message}");
    assert!(
        message.contains("does not belong to this model"),
        "{message}"
    );
    assert!(!dir.path().join("model").exists());
}

#[test]
fn an_update_that_leaves_non_finite_weights_fails_and_saves_nothing() {
    let out = tempfile::tempdir().unwrap();
    let policy = load("policy");
    let reference = load("llama");
    let rows = pairs();
    // One step (all four pairs in one batch) whose loss is finite, but whose step size does not
    // fit in float32: every updated weight becomes infinite or NaN.
    let mut config = config(1);
    config.batch = BatchSizeConfig::Pairs(4);
    config.optimizer.lr = 1e39;
    config.optimizer.weight_decay = 0.0;
    let error = train_dpo::<CausalLm>(&job(&policy, &reference, &rows, out.path()), &config, None)
        .expect_err("non-finite weights are an error");
    assert!(
        matches!(error, TrainError::NonFiniteWeights { step: 1, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("non-finite weights"), "{error}");
    assert!(!out.path().join("model").exists());
    assert!(!out.path().join("trainer_state.json").exists());
}

#[test]
fn weights_near_the_float_limit_train_like_equal_weights() {
    let policy = load("policy");
    let reference = load("llama");
    let plain = pairs();
    let huge: Vec<PairRow> = pairs()
        .into_iter()
        .map(|row| PairRow {
            weight: 1e308,
            ..row
        })
        .collect();
    let run = |rows: &[PairRow]| {
        let out = tempfile::tempdir().unwrap();
        let outcome = train_dpo::<CausalLm>(
            &job(&policy, &reference, rows, out.path()),
            &config(1),
            None,
        )
        .expect("trains");
        outcome.last.expect("a step ran")
    };
    let (a, b) = (run(&plain), run(&huge));
    assert!(b.loss > 0.0, "the loss of huge weights is {}", b.loss);
    common::assert_rel("loss", b.loss, a.loss);
    common::assert_rel("grad norm", b.grad_norm, a.grad_norm);
}

#[test]
fn weight_normalisation_never_overflows() {
    use ponder_trainer::train::weight_normalisation;
    assert_eq!(weight_normalisation([1e308, 1e308, 1e308]), (1e308, 3.0));
    assert_eq!(weight_normalisation([2.0, 1.0]), (2.0, 1.5));
    assert_eq!(weight_normalisation([0.0, 0.0]), (1.0, 0.0));
    assert_eq!(weight_normalisation(std::iter::empty::<f64>()), (1.0, 0.0));
}
