//! `ponder bench ...`: benchmarks that print figures. One child per area; each child is a variant
//! here with an `Args` struct and a function, here or beside the command it measures
//! (`dpo.rs`, `model.rs`, `train.rs`).

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use ponder_manifest::{PluginSpec, Role};
use ponder_plugin_runtime::types::{Candidate, JudgeRequest, Message};
use ponder_plugin_runtime::{CacheOutcome, LogLevel, PluginRuntime, RuntimeOptions, StderrLog};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The benchmark to run.
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Generation throughput on the TPO sampling workload (4 instructions x 8 samples, 256 new
    /// tokens): generated tokens/s, prefill tokens/s, peak RSS.
    Generate(crate::commands::model::BenchGenerateArgs),
    /// Plugin runtime: component size, cold compile, cached load, instantiate, per-call time on
    /// 8 candidates of the Rust plugins judge-constraints and select-length-controlled and of the
    /// interpreted examples judge-py-rubric (Python) and select-js-margin (JavaScript).
    Plugins(PluginsBenchArgs),
    /// DPO: seconds per optimiser step and peak RSS of a full fine-tune (float32).
    Dpo(super::dpo::DpoBenchArgs),
    /// Scoring: reference log-probs of the `bench dpo` pairs (forward passes only), tokens/s.
    Score(super::dpo::ScoreBenchArgs),
    /// One Thought Preference Optimization iteration (64 instructions x 8 samples, up to 384
    /// new tokens, of the embedded model by default): each phase's time.
    Iteration(super::train::BenchIterationArgs),
}

/// Arguments of `ponder bench plugins`.
#[derive(Args, Debug)]
pub struct PluginsBenchArgs {
    /// Directory holding the built first-party plugins (`<name>.wasm`, from
    /// scripts/build-plugins.sh).
    #[arg(long, default_value = "target/plugins")]
    pub plugins_dir: PathBuf,
    /// Timed repetitions of each per-call measurement (1 to 1000000); an interpreted plugin
    /// (Python, JavaScript) gets a tenth of them, at least one.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub iterations: u32,
    /// Timed repetitions of each load/instantiate measurement (1 to 10000).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub loads: u32,
}

/// Runs one benchmark.
pub fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Plugins(args) => bench_plugins(args),
        BenchCommand::Dpo(args) => super::dpo::bench(args),
        BenchCommand::Score(args) => super::dpo::bench_score(args),
        BenchCommand::Iteration(args) => super::train::bench_iteration(args),
        BenchCommand::Generate(args) => crate::commands::model::run_bench_generate(args),
    }
}

/// Median and mean of measured durations.
struct Figures {
    median: Duration,
    mean: Duration,
}

fn figures(mut samples: Vec<Duration>) -> Figures {
    samples.sort();
    let count = samples.len().max(1) as u32;
    let total: Duration = samples.iter().sum();
    Figures {
        median: samples.get(samples.len() / 2).copied().unwrap_or_default(),
        mean: total / count,
    }
}

fn format_duration(duration: Duration) -> String {
    let micros = duration.as_secs_f64() * 1e6;
    if micros >= 1000.0 {
        format!("{:.2} ms", micros / 1000.0)
    } else {
        format!("{micros:.1} µs")
    }
}

fn quiet_runtime(cache_dir: PathBuf) -> anyhow::Result<PluginRuntime> {
    Ok(PluginRuntime::new(RuntimeOptions {
        cache_dir: Some(cache_dir),
        log: Arc::new(StderrLog {
            min_level: LogLevel::Warn,
        }),
        ..RuntimeOptions::default()
    })?)
}

/// Eight candidates of one instruction, as the selector sees them.
fn candidates() -> Vec<Candidate> {
    (0..8u32)
        .map(|index| Candidate {
            score: if index == 5 {
                None
            } else {
                Some(f64::from(index % 4) * 0.25 + f64::from(index) * 0.01)
            },
            parsed: index != 5,
            response_tokens: 40 + index * 13,
            response_chars: 180 + index * 61,
            thought_tokens: 90 + index * 7,
            thought_chars: 400 + index * 29,
            output_tokens: 140 + index * 20,
        })
        .collect()
}

/// One judge request of eight responses with IFEval-style constraints.
fn judge_request() -> JudgeRequest {
    let responses = (0..8)
        .map(|index| {
            let mut text = String::from("<<A Short Title>>\n\n");
            for sentence in 0..(3 + index) {
                text.push_str(&format!(
                    "this is sentence number {sentence} about rust and wasm plugins. "
                ));
            }
            if index % 2 == 0 {
                text.push_str("\n\nP.S. thanks for reading");
            }
            text
        })
        .collect();
    JudgeRequest {
        instruction: vec![Message {
            role: "user".to_string(),
            content: "Write about Rust plugins in lowercase with a title, at least 40 words, no commas, and a postscript.".to_string(),
        }],
        responses,
        reference: None,
        metadata: serde_json::json!({
            "instruction_id_list": [
                "change_case:english_lowercase",
                "detectable_format:title",
                "length_constraints:number_words",
                "punctuation:no_comma",
                "detectable_content:postscript",
            ],
            "kwargs": [{}, {}, {"num_words": 40, "relation": "at least"}, {}, {"postscript_marker": "P.S."}],
        })
        .to_string(),
    }
}

/// What `bench_one` measures: a first-party plugin and its per-call work.
struct Bench<'a> {
    role: Role,
    name: &'a str,
    config: serde_json::Value,
    /// Timed calls on a live instance.
    calls: u32,
}

fn bench_one(
    args: &PluginsBenchArgs,
    bench: Bench<'_>,
    call: &mut dyn FnMut(&mut ponder_plugin_runtime::Plugin) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let Bench {
        role,
        name,
        config,
        calls: call_count,
    } = bench;
    let path = args.plugins_dir.join(format!("{name}.wasm"));
    if !path.is_file() {
        bail!(
            "{} is missing: build the first-party plugins with scripts/build-plugins.sh",
            path.display()
        );
    }
    let mut spec = PluginSpec::wasm(role, &path);
    spec.config = config;
    let cache = tempfile::tempdir().context("cannot create a temporary cache directory")?;

    // Cold: compile and write the cache entry.
    let runtime = quiet_runtime(cache.path().to_path_buf())?;
    let started = Instant::now();
    let plugin = runtime.load_unconfigured(&spec)?;
    let cold = started.elapsed();
    if plugin.info().cache != Some(CacheOutcome::Compiled) {
        bail!("expected a cold compile, got {:?}", plugin.info().cache);
    }

    // Cached: read + deserialize + checks + pre-instantiation, in a fresh runtime each time.
    let mut cached = Vec::new();
    let mut instantiate = Vec::new();
    for _ in 0..args.loads.max(1) {
        let runtime = quiet_runtime(cache.path().to_path_buf())?;
        let started = Instant::now();
        let mut plugin = runtime.load_unconfigured(&spec)?;
        cached.push(started.elapsed());
        if plugin.info().cache != Some(CacheOutcome::Hit) {
            bail!("expected a cache hit, got {:?}", plugin.info().cache);
        }
        let started = Instant::now();
        plugin.configure()?;
        instantiate.push(started.elapsed());
    }

    // Per call, on a live instance.
    let mut plugin = runtime.load(&spec)?;
    for _ in 0..20 {
        call(&mut plugin)?;
    }
    let mut calls = Vec::with_capacity(call_count as usize);
    for _ in 0..call_count.max(1) {
        let started = Instant::now();
        call(&mut plugin)?;
        calls.push(started.elapsed());
    }

    let size = std::fs::metadata(&path).map(|meta| meta.len()).unwrap_or(0);
    let cached = figures(cached);
    let instantiate = figures(instantiate);
    let calls = figures(calls);
    println!(
        "{name} ({role}, {:.1} MiB)",
        size as f64 / (1024.0 * 1024.0)
    );
    println!("  cold compile (+ cache write)   {}", format_duration(cold));
    println!(
        "  cached load                    median {}  mean {}",
        format_duration(cached.median),
        format_duration(cached.mean)
    );
    println!(
        "  instantiate + configure        median {}  mean {}",
        format_duration(instantiate.median),
        format_duration(instantiate.mean)
    );
    println!(
        "  call on 8 candidates           median {}  mean {}  ({} calls)",
        format_duration(calls.median),
        format_duration(calls.mean),
        call_count.max(1)
    );
    Ok(())
}

/// `ponder bench plugins`.
fn bench_plugins(args: PluginsBenchArgs) -> anyhow::Result<()> {
    println!("targets: cached load ≤ 10 ms, selector call ≤ 50 µs");
    let request = vec![judge_request()];
    let groups = vec![candidates()];
    let interpreted_calls = (args.iterations / 10).max(1);
    for (name, config, calls) in [
        ("judge-constraints", serde_json::json!({}), args.iterations),
        ("judge-py-rubric", serde_json::json!({}), interpreted_calls),
    ] {
        let bench = Bench {
            role: Role::Judge,
            name,
            config,
            calls,
        };
        bench_one(&args, bench, &mut |plugin| {
            plugin.judge(&request)?;
            Ok(())
        })?;
    }
    for (name, config, calls) in [
        (
            "select-length-controlled",
            serde_json::json!({ "rho": 0.3 }),
            args.iterations,
        ),
        ("select-js-margin", serde_json::json!({}), interpreted_calls),
    ] {
        let bench = Bench {
            role: Role::Selector,
            name,
            config,
            calls,
        };
        bench_one(&args, bench, &mut |plugin| {
            plugin.select(&groups)?;
            Ok(())
        })?;
    }
    Ok(())
}
