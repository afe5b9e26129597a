//! Model commands: `ponder generate`, `ponder chat`, `ponder tokenize`, `ponder logits`,
//! `ponder export-gguf`, and the generation benchmark behind `ponder bench generate`.

use std::io::{BufRead, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use ponder_checkpoint::{Checkpoint, Message};
use ponder_model::{
    CausalLm, GenerationRequest, GenerationStats, PaddingSide, SamplingParams, TokenBatch,
    generate, parse_device,
};

/// The embedded default model, fetched by `scripts/setup.sh`.
pub const DEFAULT_MODEL: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

/// Most samples per prompt (`-k`): far beyond the handful Thought Preference Optimization
/// draws, and small enough that the per-sample bookkeeping is never the problem.
pub const MAX_SAMPLES: u64 = 1024;

/// Most new tokens per sample the flags accept: the longest context a model may declare
/// (the sampler also refuses a prompt plus new tokens beyond the model's own context).
pub const MAX_NEW_TOKENS: u64 = ponder_checkpoint::ModelConfig::MAX_CONTEXT as u64;

/// A clap parser for a count flag in `1..=max`: out-of-range values are a usage error naming
/// the flag and the range, never an allocation of that size.
fn count_in(max: u64) -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(1..=max)
}

/// Which model to load, and where to run it.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Hugging Face directory or GGUF file.
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub model: PathBuf,
    /// cpu | wgpu | cuda:N (GPU backends need the matching cargo feature).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// A loaded model with its tokenizer and chat template.
pub struct LoadedModel {
    /// The checkpoint (tokenizer, template, config); its weights have moved into `model`.
    pub checkpoint: Checkpoint,
    /// The model on its device.
    pub model: CausalLm,
}

impl ModelArgs {
    /// Loads the checkpoint and builds the model on the device.
    pub fn load(&self) -> anyhow::Result<LoadedModel> {
        load_model(&self.model, &self.device)
    }
}

/// Loads `path` onto the device named by `device`.
pub fn load_model(path: &Path, device: &str) -> anyhow::Result<LoadedModel> {
    if !path.exists() {
        let hint = if path == Path::new(DEFAULT_MODEL) {
            " (run scripts/setup.sh to fetch the embedded default)"
        } else {
            ""
        };
        bail!("model {} not found{hint}", path.display());
    }
    let mut checkpoint =
        Checkpoint::load(path).with_context(|| format!("loading model {}", path.display()))?;
    let device = parse_device(device)?;
    let config = checkpoint.config.clone();
    let model = CausalLm::from_weights_taken(&config, &mut checkpoint.weights, &device)
        .with_context(|| format!("building model {}", path.display()))?;
    Ok(LoadedModel { checkpoint, model })
}

/// Sampling flags shared by `generate` and `chat`.
#[derive(Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Softmax temperature (0 = greedy).
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f32,
    /// Nucleus sampling mass (1 = off).
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// Keep the k most likely tokens (0 = off).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Drop tokens below min-p times the most likely one (0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub min_p: f32,
    /// Most new tokens per sample.
    #[arg(long, default_value_t = 256, value_parser = count_in(MAX_NEW_TOKENS))]
    pub max_new_tokens: usize,
    /// Base seed: sample k of every prompt uses seed + k, whatever else is in the batch.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop strings (repeatable).
    #[arg(long = "stop")]
    pub stop: Vec<String>,
}

impl SamplingArgs {
    fn params(&self, checkpoint: &Checkpoint) -> SamplingParams {
        SamplingParams {
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            min_p: self.min_p,
            max_new_tokens: self.max_new_tokens,
            stop_token_ids: checkpoint.stop_token_ids(),
            stop_strings: self.stop.clone(),
            suppress_token_ids: Vec::new(),
            response_forcing: None,
        }
    }
}

/// Arguments of `ponder generate`.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// One user message (the chat template is applied).
    #[arg(long, conflicts_with = "input")]
    pub prompt: Option<String>,
    /// JSONL file of `{"messages": [{"role": ..., "content": ...}, ...]}` rows.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Samples per prompt (1 to 1024).
    #[arg(short = 'k', long = "samples", default_value_t = 1, value_parser = count_in(MAX_SAMPLES))]
    pub samples: usize,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Print one JSON object per sample instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(serde::Deserialize)]
struct InputRow {
    messages: Vec<Message>,
}

/// Runs `ponder generate`.
pub fn run_generate(args: GenerateArgs) -> anyhow::Result<()> {
    let conversations: Vec<Vec<Message>> = match (&args.prompt, &args.input) {
        (Some(prompt), None) => vec![vec![Message::new("user", prompt.clone())]],
        (None, Some(path)) => read_jsonl_messages(path)?,
        _ => bail!("give --prompt TEXT or --input FILE.jsonl"),
    };
    let loaded = args.model.load()?;
    let params = args.sampling.params(&loaded.checkpoint);
    let seeds: Vec<u64> = (0..args.samples as u64)
        .map(|k| args.sampling.seed.wrapping_add(k))
        .collect();
    let mut requests = Vec::with_capacity(conversations.len());
    for (index, messages) in conversations.iter().enumerate() {
        let prompt = loaded
            .checkpoint
            .encode_chat(messages, true)
            .with_context(|| format!("rendering prompt {index}"))?;
        requests.push(GenerationRequest {
            prompt,
            seeds: seeds.clone(),
        });
    }
    // Stream text live when there is a single sequence and the output is text.
    let streaming = !args.json && requests.len() == 1 && args.samples == 1;
    let tokenizer = &loaded.checkpoint.tokenizer;
    let mut streamed: Vec<u32> = Vec::new();
    let mut printed = 0usize;
    let (sequences, stats) =
        generate(&loaded.model, tokenizer, &requests, &params, &mut |event| {
            if streaming {
                streamed.push(event.token);
                if let Ok(text) = tokenizer.decode(&streamed, true) {
                    // Hold back a possibly incomplete UTF-8 tail (shown as U+FFFD).
                    if text.len() > printed && !text.ends_with('\u{FFFD}') {
                        print!("{}", &text[printed..]);
                        let _ = std::io::stdout().flush();
                        printed = text.len();
                    }
                }
            }
            ControlFlow::Continue(())
        })?;
    if streaming {
        let text = &sequences[0].text;
        if text.len() > printed && text.is_char_boundary(printed) {
            print!("{}", &text[printed..]);
        }
        println!();
    } else {
        for sequence in &sequences {
            if args.json {
                let row = serde_json::json!({
                    "prompt": sequence.request,
                    "sample": sequence.sample,
                    "seed": seeds[sequence.sample],
                    "text": sequence.text,
                    "tokens": sequence.tokens,
                    "finish": sequence.finish,
                });
                println!("{row}");
            } else {
                println!(
                    "=== prompt {} sample {} ===\n{}",
                    sequence.request, sequence.sample, sequence.text
                );
            }
        }
    }
    print_stats(&stats);
    Ok(())
}

fn print_stats(stats: &GenerationStats) {
    eprintln!(
        "prefill {} tokens in {:.2}s, generated {} tokens in {:.2}s ({:.1} tokens/s)",
        stats.prefill_tokens,
        stats.prefill_seconds,
        stats.generated_tokens,
        stats.decode_seconds + stats.prefill_seconds,
        stats.generated_tokens as f64 / (stats.decode_seconds + stats.prefill_seconds).max(1e-9)
    );
}

fn read_jsonl_messages(path: &Path) -> anyhow::Result<Vec<Vec<Message>>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row: InputRow = serde_json::from_str(line).with_context(|| {
            format!(
                "{}:{}: expected {{\"messages\": [{{\"role\": ..., \"content\": ...}}]}}",
                path.display(),
                number + 1
            )
        })?;
        if row.messages.is_empty() {
            bail!("{}:{}: no messages", path.display(), number + 1);
        }
        out.push(row.messages);
    }
    if out.is_empty() {
        bail!("{}: no rows", path.display());
    }
    Ok(out)
}

/// Arguments of `ponder tokenize`.
#[derive(Args, Debug)]
pub struct TokenizeArgs {
    /// Hugging Face directory or GGUF file.
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub model: PathBuf,
    /// Render TEXT as a user message with the chat template (generation prompt added).
    #[arg(long)]
    pub chat: bool,
    /// The text to tokenize (special tokens written in it are single tokens).
    pub text: String,
}

/// Runs `ponder tokenize`: prints the ids as a JSON array.
pub fn run_tokenize(args: TokenizeArgs) -> anyhow::Result<()> {
    let checkpoint = Checkpoint::load(&args.model)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let ids = prompt_ids(&checkpoint, &args.text, args.chat)?;
    println!("{}", serde_json::to_string(&ids)?);
    Ok(())
}

fn prompt_ids(checkpoint: &Checkpoint, text: &str, chat: bool) -> anyhow::Result<Vec<u32>> {
    Ok(if chat {
        checkpoint.encode_chat(&[Message::new("user", text)], true)?
    } else {
        checkpoint.tokenizer.encode(text)?
    })
}

/// Arguments of `ponder logits`.
#[derive(Args, Debug)]
pub struct LogitsArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// How many of the most likely next tokens to print.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Render TEXT as a user message with the chat template (generation prompt added).
    #[arg(long)]
    pub chat: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// The text whose next token is predicted.
    pub text: String,
}

/// Runs `ponder logits`: the top next-token logits after the text.
pub fn run_logits(args: LogitsArgs) -> anyhow::Result<()> {
    let loaded = args.model.load()?;
    let ids = prompt_ids(&loaded.checkpoint, &args.text, args.chat)?;
    if ids.is_empty() {
        bail!("the text has no tokens");
    }
    let batch = TokenBatch::padded(std::slice::from_ref(&ids), PaddingSide::Right)?;
    let hidden = loaded.model.forward_hidden(&batch)?;
    let last = hidden.narrow(1, ids.len() - 1, 1);
    let logits: Vec<f32> = loaded
        .model
        .logits(last)
        .try_into_vec_as::<f32>()
        .map_err(|e| anyhow::anyhow!("reading logits: {e:?}"))?;
    let max = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let log_sum = max
        + logits
            .iter()
            .map(|&l| (l as f64 - max).exp())
            .sum::<f64>()
            .ln();
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    let tokenizer = &loaded.checkpoint.tokenizer;
    let top = &order[..args.top.min(order.len())];
    let text_of = |id: usize| tokenizer.decode(&[id as u32], false).unwrap_or_default();
    if args.json {
        // JSON has no NaN or infinity: such values are printed as null.
        let top: Vec<serde_json::Value> = top
            .iter()
            .map(|&id| {
                serde_json::json!({
                    "id": id,
                    "token": tokenizer.id_to_token(id as u32),
                    "text": text_of(id),
                    "logit": logits[id],
                    "logprob": logits[id] as f64 - log_sum,
                })
            })
            .collect();
        let out = serde_json::json!({ "input_ids": ids, "logsumexp": log_sum, "top": top });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        // Printed from the floats themselves, so NaN and infinities show as they are.
        for &id in top {
            println!(
                "{id:>7} {:>10.4} {:>9.4}  {}",
                logits[id],
                logits[id] as f64 - log_sum,
                serde_json::Value::String(text_of(id))
            );
        }
    }
    Ok(())
}

/// Arguments of `ponder chat`.
#[derive(Args, Debug)]
pub struct ChatArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// A system message opening the conversation.
    #[arg(long)]
    pub system: Option<String>,
    /// A thought-template plugin (`.wasm`): each turn is rendered with its thought prompt, and
    /// the answer is shown split into the thought and the response. Only responses stay in the
    /// conversation, as at evaluation.
    #[arg(long)]
    pub template: Option<PathBuf>,
    /// The template plugin's configuration as a JSON object.
    #[arg(long, default_value = "{}", requires = "template")]
    pub template_config: String,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

/// The thought template of `ponder chat --template`.
fn chat_template_plugin(args: &ChatArgs) -> anyhow::Result<Option<ponder_plugin_runtime::Plugin>> {
    let Some(path) = &args.template else {
        return Ok(None);
    };
    let config: serde_json::Value = serde_json::from_str(&args.template_config)
        .context("--template-config is not valid JSON")?;
    let mut spec = ponder_manifest::PluginSpec::wasm(ponder_manifest::Role::Template, path);
    spec.config = config;
    let runtime = crate::commands::plugins::runtime(None, None)?;
    Ok(Some(runtime.load(&spec)?))
}

fn plugin_messages(messages: &[Message]) -> Vec<ponder_plugin_runtime::types::Message> {
    messages
        .iter()
        .map(|m| ponder_plugin_runtime::types::Message {
            role: m.role.clone(),
            content: m.content.clone(),
        })
        .collect()
}

/// Runs `ponder chat`: one user turn per stdin line, the answer streamed to stdout. An empty
/// line or end of input ends the conversation.
pub fn run_chat(args: ChatArgs) -> anyhow::Result<()> {
    let loaded = args.model.load()?;
    let params = args.sampling.params(&loaded.checkpoint);
    let tokenizer = &loaded.checkpoint.tokenizer;
    let mut messages: Vec<Message> = args
        .system
        .iter()
        .map(|s| Message::new("system", s.clone()))
        .collect();
    let mut template = chat_template_plugin(&args)?;
    // With a template the raw output is split after generation, so it is not streamed.
    let stream = template.is_none();
    let stdin = std::io::stdin();
    eprint!("> ");
    for (turn, line) in (0u64..).zip(stdin.lock().lines()) {
        let line = line.context("reading stdin")?;
        if line.trim().is_empty() {
            break;
        }
        messages.push(Message::new("user", line));
        let prompt = match template.as_mut() {
            Some(plugin) => {
                let rendered: Vec<Message> = plugin
                    .render(&plugin_messages(&messages))?
                    .into_iter()
                    .map(|m| Message::new(m.role, m.content))
                    .collect();
                loaded.checkpoint.encode_chat(&rendered, true)?
            }
            None => loaded.checkpoint.encode_chat(&messages, true)?,
        };
        let request = GenerationRequest {
            prompt,
            seeds: vec![args.sampling.seed.wrapping_add(turn)],
        };
        let mut streamed = Vec::new();
        let mut printed = 0usize;
        let (sequences, _) = generate(
            &loaded.model,
            tokenizer,
            &[request],
            &params,
            &mut |event| {
                if !stream {
                    return ControlFlow::Continue(());
                }
                streamed.push(event.token);
                if let Ok(text) = tokenizer.decode(&streamed, true)
                    && text.len() > printed
                    && !text.ends_with('\u{FFFD}')
                {
                    print!("{}", &text[printed..]);
                    let _ = std::io::stdout().flush();
                    printed = text.len();
                }
                ControlFlow::Continue(())
            },
        )?;
        let output = sequences[0].text.clone();
        let answer = match template.as_mut() {
            Some(plugin) => match plugin.parse(&output)? {
                ponder_plugin_runtime::types::Parsed::Ok(split) => {
                    if !split.thought.trim().is_empty() {
                        println!("[thought]\n{}", split.thought.trim());
                    }
                    println!("[response]\n{}", split.response.trim());
                    split.response
                }
                ponder_plugin_runtime::types::Parsed::Failure(why) => {
                    println!("[unparsed output: {why}]\n{output}");
                    output
                }
            },
            None => {
                if output.len() > printed && output.is_char_boundary(printed) {
                    print!("{}", &output[printed..]);
                }
                println!();
                output
            }
        };
        messages.push(Message::new("assistant", answer));
        eprint!("> ");
    }
    Ok(())
}

/// The TPO sampling workload, as `../shared/peers/bench_generate.py` runs it.
pub const BENCH_INSTRUCTIONS: [&str; 4] = [
    "Explain why the sky is blue to a ten-year-old.",
    "Write a short story about a robot who learns to paint.",
    "Give me three tips for staying focused while studying.",
    "What are the main differences between Python lists and tuples?",
];

/// Most timed runs of `ponder bench generate`.
const MAX_BENCH_RUNS: u64 = 1000;

/// Arguments of `ponder bench generate`.
#[derive(Args, Debug)]
pub struct BenchGenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Samples per instruction (1 to 1024).
    #[arg(short = 'k', long = "samples", default_value_t = 8, value_parser = count_in(MAX_SAMPLES))]
    pub samples: usize,
    /// New tokens per sample.
    #[arg(long, default_value_t = 256, value_parser = count_in(MAX_NEW_TOKENS))]
    pub max_new_tokens: usize,
    /// `fixed`: end tokens suppressed, every sample is exactly max-new-tokens long (the
    /// deterministic amount of work to compare); `natural`: stop at end of turn.
    #[arg(long, default_value = "fixed", value_parser = ["fixed", "natural"])]
    pub mode: String,
    /// Timed runs after one short warm-up (1 to 1000).
    #[arg(long, default_value_t = 3, value_parser = count_in(MAX_BENCH_RUNS))]
    pub runs: usize,
}

/// Runs `ponder bench generate`: prints generated tokens/s, prefill tokens/s and peak RSS.
pub fn run_bench_generate(args: BenchGenerateArgs) -> anyhow::Result<()> {
    let load_started = Instant::now();
    let loaded = args.model.load()?;
    let load_seconds = load_started.elapsed().as_secs_f64();
    let checkpoint = &loaded.checkpoint;
    let mut requests = Vec::new();
    for instruction in BENCH_INSTRUCTIONS {
        let prompt = checkpoint.encode_chat(&[Message::new("user", instruction)], true)?;
        requests.push(GenerationRequest {
            prompt,
            seeds: Vec::new(),
        });
    }
    let fixed = args.mode == "fixed";
    let end_tokens = checkpoint.stop_token_ids();
    let params = SamplingParams {
        temperature: 0.8,
        top_p: 0.95,
        top_k: 0,
        min_p: 0.0,
        max_new_tokens: args.max_new_tokens,
        stop_token_ids: if fixed {
            Vec::new()
        } else {
            end_tokens.clone()
        },
        stop_strings: Vec::new(),
        suppress_token_ids: if fixed { end_tokens } else { Vec::new() },
        response_forcing: None,
    };
    println!(
        "bench generate: {} instructions x k={} , {} new tokens ({} mode), temperature 0.8, top-p 0.95, model {} on {} (loaded in {load_seconds:.2}s), prompt tokens {:?}",
        requests.len(),
        args.samples,
        args.max_new_tokens,
        args.mode,
        args.model.model.display(),
        args.model.device,
        requests.iter().map(|r| r.prompt.len()).collect::<Vec<_>>()
    );
    let with_seeds = |run: u64| -> Vec<GenerationRequest> {
        requests
            .iter()
            .enumerate()
            .map(|(i, r)| GenerationRequest {
                prompt: r.prompt.clone(),
                seeds: (0..args.samples as u64)
                    .map(|k| 1000 * (run + 1) + (i * args.samples) as u64 + k)
                    .collect(),
            })
            .collect()
    };
    // Warm-up: a short run of the same shape.
    let warm_params = SamplingParams {
        max_new_tokens: 8.min(args.max_new_tokens),
        ..params.clone()
    };
    generate(
        &loaded.model,
        &checkpoint.tokenizer,
        &with_seeds(99),
        &warm_params,
        &mut |_| ControlFlow::Continue(()),
    )?;
    let mut rates = Vec::new();
    for run in 0..args.runs {
        let started = Instant::now();
        let (sequences, stats) = generate(
            &loaded.model,
            &checkpoint.tokenizer,
            &with_seeds(run as u64),
            &params,
            &mut |_| ControlFlow::Continue(()),
        )?;
        let wall = started.elapsed().as_secs_f64();
        let rate = stats.generated_tokens as f64 / wall;
        rates.push(rate);
        println!(
            "run {run}: {} tokens in {wall:.2}s = {rate:.1} generated tokens/s; prefill {} tokens in {:.3}s = {:.1} tokens/s; decode {:.1} tokens/s over {} steps",
            stats.generated_tokens,
            stats.prefill_tokens,
            stats.prefill_seconds,
            stats.prefill_tokens as f64 / stats.prefill_seconds.max(1e-9),
            (stats.generated_tokens - sequences.len()) as f64 / stats.decode_seconds.max(1e-9),
            stats.decode_steps,
        );
        if run == 0 {
            let sample: String = sequences[0].text.chars().take(200).collect();
            println!("sample 0: {sample:?}");
        }
    }
    rates.sort_by(f64::total_cmp);
    if let (Some(min), Some(max)) = (rates.first(), rates.last()) {
        println!(
            "generated tokens/s: min {min:.1} median {:.1} max {max:.1}",
            rates[rates.len() / 2]
        );
    }
    match peak_rss_kib() {
        Some(kib) => println!("peak RSS: {:.1} MiB", kib as f64 / 1024.0),
        None => println!("peak RSS: unavailable"),
    }
    Ok(())
}

/// Peak resident set size of this process (VmHWM), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Arguments of `ponder export-gguf`.
#[derive(Args, Debug)]
pub struct ExportGgufArgs {
    /// The trained model (a Hugging Face directory, as `ponder train` writes each iteration's).
    pub checkpoint: PathBuf,
    /// The GGUF file the model was trained from: its metadata (architecture, tokenizer, chat
    /// template) and tensor layout are kept.
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub like: PathBuf,
    /// The GGUF file to write.
    #[arg(long, short)]
    pub out: PathBuf,
}

/// Runs `ponder export-gguf`: the checkpoint's weights (F32) in the layout of the seed GGUF, for
/// a GGUF engine such as llama.cpp's server.
pub fn run_export_gguf(args: ExportGgufArgs) -> anyhow::Result<()> {
    let checkpoint = Checkpoint::load(&args.checkpoint)
        .with_context(|| format!("loading model {}", args.checkpoint.display()))?;
    let seed = ponder_checkpoint::gguf::GgufFile::open(&args.like)
        .with_context(|| format!("opening the seed GGUF {}", args.like.display()))?;
    let export = ponder_checkpoint::gguf::write_like(
        &seed,
        &checkpoint.weights,
        &checkpoint.config,
        &args.out,
    )
    .with_context(|| {
        format!(
            "writing {} from {} in the layout of {}",
            args.out.display(),
            args.checkpoint.display(),
            args.like.display()
        )
    })?;
    eprintln!(
        "wrote {}: {} tensors from {} (F32), {} copied from {}, {:.1} MiB",
        args.out.display(),
        export.written,
        args.checkpoint.display(),
        export.copied,
        args.like.display(),
        export.bytes as f64 / (1u64 << 20) as f64
    );
    Ok(())
}
