//! `ponder dpo`: Direct Preference Optimization on a pairs file, and `ponder bench dpo`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use ponder_checkpoint::{Checkpoint, Message};
use ponder_model::CausalLm;
use ponder_trainer::reference::compute_logps;
use ponder_trainer::train::evaluate_pairs;
use ponder_trainer::train::reference_logps;
use ponder_trainer::{
    AdamWConfig, BatchSizeConfig, DpoConfig, DpoJob, EvalHook, LoraConfig, LoraTarget, LossConfig,
    LossKind, PairRow, ScheduleKind, TokenizedPair, TrainError, read_pairs, tokenize_pairs,
    train_dpo,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;

/// Arguments of `ponder dpo`.
#[derive(Args, Debug)]
pub struct DpoArgs {
    /// The policy to start from: a Hugging Face directory or a GGUF file.
    #[arg(long)]
    pub model: PathBuf,
    /// Preference pairs, JSONL: {"prompt": [{"role", "content"}...], "chosen": "...",
    /// "rejected": "...", "weight"?: number, "metadata"?: {...}}.
    #[arg(long)]
    pub pairs: PathBuf,
    /// Run directory: final model in `model/`, best in `best/`, metrics.jsonl, resumable
    /// checkpoints, the reference log-prob cache. A rerun resumes or skips a finished run.
    #[arg(long)]
    pub out: PathBuf,
    /// Reference model (default: the starting policy).
    #[arg(long)]
    pub ref_model: Option<PathBuf>,
    /// Device: cpu, wgpu or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    #[command(flatten)]
    pub train: TrainArgs,
    /// Validation pairs (same format): the checkpoint with the lowest validation DPO loss is kept
    /// in `best/`.
    #[arg(long)]
    pub eval_pairs: Option<PathBuf>,
}

/// Training hyper-parameters shared by `ponder dpo` and `ponder bench dpo`.
#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    /// Loss: sigmoid (DPO), ipo, hinge or robust.
    #[arg(long, default_value = "sigmoid")]
    pub loss: String,
    /// β, the strength of the implicit KL penalty.
    #[arg(long, default_value_t = 0.1)]
    pub beta: f64,
    /// ε for `robust`, and label smoothing (conservative DPO) for `sigmoid`; 0 = off.
    #[arg(long, default_value_t = 0.0)]
    pub label_smoothing: f64,
    /// Weight of an NLL term on the chosen completion (IRPO / RPO); 0 = off.
    #[arg(long, default_value_t = 0.0)]
    pub nll: f64,
    /// Length-normalised DPO: compare per-token mean log-probs instead of sums.
    #[arg(long)]
    pub length_normalized: bool,
    /// Peak learning rate (AdamW). PyTorch's AdamW default is 1e-3, far too high for DPO.
    #[arg(long, default_value_t = 5e-7)]
    pub lr: f64,
    /// AdamW β₁ (PyTorch default 0.9).
    #[arg(long, default_value_t = 0.9)]
    pub adam_beta1: f64,
    /// AdamW β₂ (PyTorch default 0.999).
    #[arg(long, default_value_t = 0.999)]
    pub adam_beta2: f64,
    /// AdamW ε (PyTorch default 1e-8; burn's default is 1e-5).
    #[arg(long, default_value_t = 1e-8)]
    pub adam_eps: f64,
    /// AdamW decoupled weight decay (PyTorch default 0.01; burn's default is 1e-4).
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f64,
    /// Clip the global gradient norm (all parameters together) to this value; 0 = no clipping.
    #[arg(long, default_value_t = 1.0)]
    pub max_grad_norm: f64,
    /// Learning-rate decay after warm-up: constant, linear or cosine.
    #[arg(long, default_value = "linear")]
    pub schedule: String,
    /// Linear warm-up steps.
    #[arg(long, default_value_t = 0)]
    pub warmup_steps: u64,
    /// Passes over the pairs.
    #[arg(long, default_value_t = 1)]
    pub epochs: u64,
    /// Pairs per forward/backward pass.
    #[arg(long, default_value_t = 4, conflicts_with = "batch_tokens")]
    pub batch_pairs: usize,
    /// Instead of a pair count: a budget of padded tokens per pass (2 × pairs × longest).
    #[arg(long)]
    pub batch_tokens: Option<usize>,
    /// Passes (micro-batches) per optimiser step.
    #[arg(long, default_value_t = 1)]
    pub grad_accum: usize,
    /// Seed of the per-epoch shuffle.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Keep the file order instead of shuffling.
    #[arg(long)]
    pub no_shuffle: bool,
    /// Cut completions so that prompt + completion fits this many tokens.
    #[arg(long)]
    pub max_length: Option<usize>,
    /// Save a resumable checkpoint every N optimiser steps (always at epoch ends).
    #[arg(long)]
    pub save_every: Option<u64>,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Keep every intermediate of the forward pass for the backward pass instead of
    /// recomputing the memory-bound ones (gradient checkpointing, on by default: about a third
    /// less peak memory, about the same step time, identical results).
    #[arg(long)]
    pub no_gradient_checkpointing: bool,
    /// Boxed: keeps `ponder`'s command enum small.
    #[command(flatten)]
    pub lora: Box<LoraArgs>,
}

/// LoRA options shared by `ponder dpo` and `ponder bench dpo`.
#[derive(Args, Debug, Clone)]
pub struct LoraArgs {
    /// Train LoRA adapters of this rank on a frozen model instead of every weight (less memory,
    /// faster steps). The saved model has the adapters merged, so it loads as a plain model.
    /// Without it: full fine-tune.
    #[arg(long)]
    pub lora_rank: Option<usize>,
    /// LoRA scaling numerator: the update is multiplied by alpha / rank [default: 2 × rank].
    #[arg(long, requires = "lora_rank")]
    pub lora_alpha: Option<f64>,
    /// Comma-separated projections that get LoRA adapters, in every layer [default:
    /// q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj].
    #[arg(long, requires = "lora_rank")]
    pub lora_targets: Option<String>,
}

impl LoraArgs {
    /// The LoRA settings (`None` without `--lora-rank`).
    pub fn config(&self) -> anyhow::Result<Option<LoraConfig>> {
        let Some(rank) = self.lora_rank else {
            return Ok(None);
        };
        let mut config = LoraConfig::new(rank);
        if let Some(alpha) = self.lora_alpha {
            config.alpha = alpha;
        }
        if let Some(targets) = &self.lora_targets {
            config.targets = LoraTarget::parse_list(targets).context("--lora-targets")?;
        }
        config.validate()?;
        Ok(Some(config))
    }
}

impl TrainArgs {
    /// The trainer configuration, validated here so that a bad flag is refused before any
    /// model is loaded.
    fn config(&self) -> anyhow::Result<DpoConfig> {
        let kind: LossKind = self.loss.parse()?;
        let schedule: ScheduleKind = self.schedule.parse()?;
        let config = DpoConfig {
            loss: LossConfig {
                kind,
                beta: self.beta,
                label_smoothing: self.label_smoothing,
                nll_weight: self.nll,
                length_normalized: self.length_normalized,
            },
            optimizer: AdamWConfig {
                lr: self.lr,
                beta1: self.adam_beta1,
                beta2: self.adam_beta2,
                eps: self.adam_eps,
                weight_decay: self.weight_decay,
                // 0 turns clipping off; anything else (a negative or NaN value too) is kept
                // for validation to refuse.
                max_grad_norm: (self.max_grad_norm != 0.0).then_some(self.max_grad_norm),
            },
            schedule,
            warmup_steps: self.warmup_steps,
            epochs: self.epochs,
            batch: match self.batch_tokens {
                Some(tokens) => BatchSizeConfig::Tokens(tokens),
                None => BatchSizeConfig::Pairs(self.batch_pairs),
            },
            grad_accum: self.grad_accum,
            seed: self.seed,
            shuffle: !self.no_shuffle,
            max_length: self.max_length,
            save_every: self.save_every,
            progress: !self.no_progress,
            lora: self.lora.config()?,
            gradient_checkpointing: !self.no_gradient_checkpointing,
        };
        config.validate()?;
        Ok(config)
    }
}

/// Keeps the checkpoint with the lowest validation DPO loss.
struct ValidationLoss {
    pairs: Vec<TokenizedPair>,
    reference: Vec<ponder_trainer::reference::ReferenceLogps>,
    loss: LossConfig,
    batch_pairs: usize,
    device: burn::tensor::Device,
}

impl EvalHook<CausalLm> for ValidationLoss {
    fn evaluate(&mut self, model: &CausalLm, _step: u64) -> Result<f64, TrainError> {
        use burn::module::Module;
        let model = model.valid();
        let (loss, margin, accuracy) = evaluate_pairs(
            &model,
            &self.pairs,
            &self.reference,
            &self.loss,
            self.batch_pairs,
            &self.device,
        )?;
        eprintln!("validation: loss {loss:.4} margin {margin:.4} accuracy {accuracy:.3}");
        Ok(loss)
    }
    fn higher_is_better(&self) -> bool {
        false
    }
    fn name(&self) -> &str {
        "eval_loss"
    }
}

fn load(path: &Path) -> anyhow::Result<Checkpoint> {
    Checkpoint::load(path).with_context(|| format!("loading model {}", path.display()))
}

/// `ponder dpo`.
pub fn run(args: DpoArgs) -> anyhow::Result<()> {
    let config = args.train.config()?;
    let device = ponder_model::parse_device(&args.device)?;
    let policy = load(&args.model)?;
    let reference = args.ref_model.as_deref().map(load).transpose()?;
    let pairs = read_pairs(&args.pairs)?;
    let mut hook = match &args.eval_pairs {
        Some(path) => {
            let rows = read_pairs(path)?;
            let tokenized = tokenize_pairs(&policy, &rows, config.max_length)?;
            let (reference_logps, _) = reference_logps::<CausalLm>(
                reference.as_ref().unwrap_or(&policy),
                &tokenized,
                &args.out.join("reference_logps_eval.json"),
                args.train.batch_pairs,
                &device,
                config.progress,
            )?;
            Some(ValidationLoss {
                pairs: tokenized,
                reference: reference_logps,
                loss: config.loss,
                batch_pairs: args.train.batch_pairs,
                device: device.clone(),
            })
        }
        None => None,
    };
    let job = DpoJob {
        policy: &policy,
        reference: reference.as_ref(),
        pairs: &pairs,
        out_dir: &args.out,
        device,
        adapter: None,
    };
    let outcome = train_dpo::<CausalLm>(
        &job,
        &config,
        hook.as_mut().map(|h| h as &mut dyn EvalHook<CausalLm>),
    )?;
    if let Some(last) = &outcome.last {
        eprintln!(
            "step {}: loss {:.4}, reward margin {:.4}, accuracy {:.3}",
            last.step, last.loss, last.rewards_margins, last.rewards_accuracies
        );
    }
    println!("{}", outcome.model_dir.display());
    Ok(())
}

/// Arguments of `ponder bench dpo`.
#[derive(Args, Debug)]
pub struct DpoBenchArgs {
    /// The model (default: the embedded SmolLM2-135M-Instruct).
    #[arg(long, default_value = "models/SmolLM2-135M-Instruct.Q4_1.gguf")]
    pub model: PathBuf,
    #[command(flatten)]
    pub workload: BenchPairsArgs,
    /// Pairs per forward/backward pass.
    #[arg(long, default_value_t = 4)]
    pub batch_pairs: usize,
    /// Passes per optimiser step (pairs per step = batch-pairs × grad-accum; same result, less
    /// memory).
    #[arg(long, default_value_t = 1)]
    pub grad_accum: usize,
    /// Learning rate (constant).
    #[arg(long, default_value_t = 1e-6)]
    pub lr: f64,
    /// Device: cpu, wgpu or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Run directory (default: a temporary directory, removed afterwards).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Keep every forward intermediate for the backward pass (no gradient checkpointing).
    #[arg(long)]
    pub no_gradient_checkpointing: bool,
    #[command(flatten)]
    pub lora: LoraArgs,
}

/// The synthetic preference pairs of `ponder bench dpo` and `ponder bench score` (and of the
/// peers' `bench_dpo.py`).
#[derive(Args, Debug)]
pub struct BenchPairsArgs {
    /// Synthetic pairs (1 to 100000).
    #[arg(long, default_value_t = 16, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000))]
    pub pairs: usize,
    /// Prompt tokens per pair (chat template included), approximately (1 to 65536).
    #[arg(long, default_value_t = 64, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=65_536))]
    pub prompt_tokens: usize,
    /// Tokens per chosen and per rejected completion (end-of-turn included), approximately
    /// (1 to 65536).
    #[arg(long, default_value_t = 192, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=65_536))]
    pub completion_tokens: usize,
}

/// Seeded random-word pairs of the sizes `workload` asks for.
fn bench_pairs(checkpoint: &Checkpoint, workload: &BenchPairsArgs) -> anyhow::Result<Vec<PairRow>> {
    let words = word_tokens(checkpoint);
    anyhow::ensure!(!words.is_empty(), "the vocabulary has no plain word tokens");
    let overhead = checkpoint
        .encode_chat(
            &[Message {
                role: "user".into(),
                content: "X".into(),
            }],
            true,
        )?
        .len()
        .saturating_sub(1);
    let mut rng = StdRng::seed_from_u64(0);
    let mut rows = Vec::with_capacity(workload.pairs);
    for _ in 0..workload.pairs {
        let user = random_text(
            checkpoint,
            &words,
            workload.prompt_tokens.saturating_sub(overhead).max(1),
            &mut rng,
        )?;
        let completion = workload.completion_tokens.saturating_sub(1).max(1);
        rows.push(PairRow {
            prompt: vec![Message {
                role: "user".into(),
                content: user,
            }],
            chosen: random_text(checkpoint, &words, completion, &mut rng)?,
            rejected: random_text(checkpoint, &words, completion, &mut rng)?,
            weight: 1.0,
            metadata: serde_json::Value::Null,
        });
    }
    Ok(rows)
}

/// Arguments of `ponder bench score`.
#[derive(Args, Debug)]
pub struct ScoreBenchArgs {
    /// The model (default: the embedded SmolLM2-135M-Instruct).
    #[arg(long, default_value = "models/SmolLM2-135M-Instruct.Q4_1.gguf")]
    pub model: PathBuf,
    #[command(flatten)]
    pub workload: BenchPairsArgs,
    /// Pairs per forward pass (as DPO's reference log-probs run them).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub batch_pairs: u32,
    /// Device: cpu, wgpu or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Timed runs after one warm-up (1 to 1000).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub runs: u32,
}

/// `ponder bench score`: the reference log-probs of the `bench dpo` pairs (forward passes only,
/// no gradients), timed as DPO computes them before training.
pub fn bench_score(args: ScoreBenchArgs) -> anyhow::Result<()> {
    let device = ponder_model::parse_device(&args.device)?;
    let checkpoint = load(&args.model)?;
    let rows = bench_pairs(&checkpoint, &args.workload)?;
    let tokenized = tokenize_pairs(&checkpoint, &rows, None)?;
    let scored_tokens: usize = tokenized
        .iter()
        .map(|p| 2 * p.prompt.len() + p.chosen.len() + p.rejected.len())
        .sum();
    let model = CausalLm::from_checkpoint(&checkpoint, &device)
        .context("building the model for scoring")?;
    let batch_pairs = args.batch_pairs as usize;
    let warm_up = tokenized.len().min(batch_pairs);
    compute_logps(&model, &tokenized[..warm_up], batch_pairs, &device)?;
    let mut seconds = Vec::with_capacity(args.runs as usize);
    for run in 0..args.runs {
        let started = Instant::now();
        let logps = compute_logps(&model, &tokenized, batch_pairs, &device)?;
        let elapsed = started.elapsed().as_secs_f64();
        anyhow::ensure!(
            logps
                .iter()
                .all(|l| l.chosen.is_finite() && l.rejected.is_finite()),
            "a sequence log-prob is not finite"
        );
        eprintln!(
            "run {run}: {scored_tokens} tokens in {elapsed:.2}s = {:.1} tokens/s",
            scored_tokens as f64 / elapsed
        );
        seconds.push(elapsed);
    }
    seconds.sort_by(f64::total_cmp);
    let tokens_per_second: Vec<f64> = seconds
        .iter()
        .rev()
        .map(|s| scored_tokens as f64 / s)
        .collect();
    let report = serde_json::json!({
        "model": args.model.display().to_string(),
        "device": args.device,
        "pairs": tokenized.len(),
        "batch_pairs": batch_pairs,
        "scored_tokens": scored_tokens,
        "seconds_median": seconds[seconds.len() / 2],
        "tokens_per_second_min_median_max": [
            tokens_per_second.first(),
            tokens_per_second.get(tokens_per_second.len() / 2),
            tokens_per_second.last(),
        ],
        "peak_rss_mib": peak_rss_mib(),
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// Random lowercase-word tokens, as `bench_dpo.py` draws them.
fn word_tokens(checkpoint: &Checkpoint) -> Vec<u32> {
    let tokenizer = &checkpoint.tokenizer;
    (0..tokenizer.vocab_size() as u32)
        .filter(|&id| {
            tokenizer.id_to_token(id).is_some_and(|t| {
                t.strip_prefix('Ġ').is_some_and(|w| {
                    (3..=10).contains(&w.len()) && w.bytes().all(|b| b.is_ascii_lowercase())
                })
            })
        })
        .collect()
}

fn random_text(
    checkpoint: &Checkpoint,
    words: &[u32],
    tokens: usize,
    rng: &mut StdRng,
) -> anyhow::Result<String> {
    let ids: Vec<u32> = (0..tokens)
        .filter_map(|_| words.choose(rng).copied())
        .collect();
    Ok(checkpoint.tokenizer.decode(&ids, false)?.trim().to_string())
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// `ponder bench dpo`: seconds per optimiser step (median after the first) and peak RSS of a
/// full fine-tune (or LoRA with `--lora-rank`), float32.
pub fn bench(args: DpoBenchArgs) -> anyhow::Result<()> {
    let device = ponder_model::parse_device(&args.device)?;
    let loaded = Instant::now();
    let checkpoint = load(&args.model)?;
    let load_seconds = loaded.elapsed().as_secs_f64();
    let rows = bench_pairs(&checkpoint, &args.workload)?;
    let tokenized = tokenize_pairs(&checkpoint, &rows, None)?;
    let prompt_lengths: Vec<usize> = tokenized.iter().map(|p| p.prompt.len()).collect();
    let chosen_lengths: Vec<usize> = tokenized.iter().map(|p| p.chosen.len()).collect();

    let temp = tempfile::tempdir()?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    let config = DpoConfig {
        optimizer: AdamWConfig {
            lr: args.lr,
            ..AdamWConfig::default()
        },
        schedule: ScheduleKind::Constant,
        batch: BatchSizeConfig::Pairs(args.batch_pairs),
        grad_accum: args.grad_accum,
        progress: false,
        lora: args.lora.config()?,
        gradient_checkpointing: !args.no_gradient_checkpointing,
        ..DpoConfig::default()
    };
    let job = DpoJob {
        policy: &checkpoint,
        reference: None,
        pairs: &rows,
        out_dir: &out,
        device,
        adapter: None,
    };
    let started = Instant::now();
    let outcome = train_dpo::<CausalLm>(&job, &config, None)?;
    let total_seconds = started.elapsed().as_secs_f64();
    let metrics_text = std::fs::read_to_string(out.join("metrics.jsonl"))?;
    let mut step_seconds = Vec::new();
    for line in metrics_text.lines() {
        let value: serde_json::Value = serde_json::from_str(line)?;
        if let Some(s) = value.get("step_seconds").and_then(|v| v.as_f64()) {
            step_seconds.push(s);
        }
    }
    let first = step_seconds.first().copied();
    let mut later: Vec<f64> = step_seconds.iter().skip(1).copied().collect();
    later.sort_by(f64::total_cmp);
    let median = (!later.is_empty()).then(|| {
        let mid = later.len() / 2;
        if later.len().is_multiple_of(2) {
            (later[mid - 1] + later[mid]) / 2.0
        } else {
            later[mid]
        }
    });
    let report = serde_json::json!({
        "model": args.model.display().to_string(),
        "pairs": args.workload.pairs,
        "batch_pairs": args.batch_pairs,
        "grad_accum": args.grad_accum,
        "lora": config.lora,
        "gradient_checkpointing": config.gradient_checkpointing,
        "prompt_tokens": [prompt_lengths.iter().min(), prompt_lengths.iter().max()],
        "completion_tokens": [chosen_lengths.iter().min(), chosen_lengths.iter().max()],
        "steps": outcome.steps,
        "sec_first_step": first,
        "sec_per_step_median_after_first": median,
        "step_seconds": step_seconds,
        "load_seconds": load_seconds,
        "train_wall_seconds_incl_reference_and_save": total_seconds,
        "peak_rss_mib": peak_rss_mib(),
        "last": outcome.last,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lora(rank: Option<usize>, alpha: Option<f64>, targets: Option<&str>) -> LoraArgs {
        LoraArgs {
            lora_rank: rank,
            lora_alpha: alpha,
            lora_targets: targets.map(str::to_string),
        }
    }

    #[test]
    fn lora_flags_become_a_config() {
        assert!(lora(None, None, None).config().unwrap().is_none());
        let config = lora(Some(8), None, None).config().unwrap().unwrap();
        assert_eq!(
            (config.rank, config.alpha, config.targets.len()),
            (8, 16.0, 7)
        );
        let config = lora(Some(4), Some(4.0), Some("q_proj,v_proj"))
            .config()
            .unwrap()
            .unwrap();
        assert_eq!(config.alpha, 4.0);
        assert_eq!(config.targets, vec![LoraTarget::QProj, LoraTarget::VProj]);
    }

    /// The training flags parsed from `flags`, as `ponder dpo` would.
    fn train_args(flags: &[&str]) -> TrainArgs {
        #[derive(clap::Parser)]
        struct Flags {
            #[command(flatten)]
            train: TrainArgs,
        }
        let argv = std::iter::once("ponder-dpo").chain(flags.iter().copied());
        <Flags as clap::Parser>::try_parse_from(argv)
            .expect("flags parse")
            .train
    }

    #[test]
    fn optimizer_flags_that_would_train_nan_weights_are_refused() {
        assert!(train_args(&[]).config().is_ok());
        assert!(train_args(&["--max-grad-norm", "0"]).config().is_ok());
        for (flags, named) in [
            (&["--adam-eps", "0"][..], "eps"),
            (&["--weight-decay", "NaN"][..], "weight decay"),
            (&["--lr", "inf"][..], "learning rate"),
            (&["--adam-beta2", "1"][..], "beta2"),
            (&["--max-grad-norm", "NaN"][..], "max grad norm"),
            (&["--max-grad-norm=-1"][..], "max grad norm"),
            (&["--beta", "NaN"][..], "beta"),
            (&["--label-smoothing", "NaN"][..], "label smoothing"),
            (&["--save-every", "0"][..], "save every"),
        ] {
            let error = train_args(flags).config().expect_err("refused");
            let message = format!("{error:#}");
            assert!(message.contains(named), "{flags:?}: {message}");
        }
    }

    #[test]
    fn a_bad_lora_target_is_a_clear_error() {
        let error = lora(Some(8), None, Some("q_proj,attn"))
            .config()
            .unwrap_err();
        let message = format!("{error:#}");
        assert!(message.contains("--lora-targets"), "{message}");
        assert!(message.contains("unknown LoRA target `attn`"), "{message}");
        assert!(message.contains("gate_proj"), "{message}");
        assert!(lora(Some(0), None, None).config().is_err());
    }
}
