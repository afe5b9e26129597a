//! Sampling on a served engine (`[sample] engine`): the prompts the host would sample from, as
//! token ids, sent to an OpenAI-compatible `/completions` endpoint, up to the engine's
//! `concurrency` requests in flight (the server batches them).
//!
//! **Same prompt, same rules.** The chat and thought templates are applied here; the server
//! gets token ids and applies nothing. With `sample.thought_budget`, a sample is asked first for
//! at most the budget's tokens; when its thought did not end (no response separator, or the
//! model ended its turn inside it) the forced response tokens are appended and the rest is asked
//! for as a continuation of prompt + thought + separator, as the host's sampler forces it.
//! The continuation's prompt uses the token ids the server sampled (llama.cpp and vLLM return
//! them with the log-probabilities); a server that returns none has its text re-encoded here.
//!
//! **Nothing lost, nothing repeated.** Every finished sample is appended to
//! `iter-N/samples.served.jsonl` as it arrives, keyed by instruction id, sample index and seed.
//! A rerun after a failure (the server died, a reply was malformed) asks only for the samples
//! missing there; `samples.jsonl` is written from the journal once every sample is in.
//!
//! **New weights.** Iteration t samples from M_{t−1}'s successor, the model iteration t − 1
//! trained. Before iteration t ≥ 2 samples, `[sample.reload] command` is run with
//! `PONDER_MODEL` set to that model's directory and must make the engine serve it (for
//! llama.cpp's server: `ponder export-gguf` and a restart); ponder then waits until the engine
//! answers `GET {url}/models`. With `[sample.reload] lora = true` (and `[dpo.lora]`), the
//! policy's adapter is loaded into the engine instead (vLLM's runtime adapter API) under a name
//! of its own, and iteration t's requests ask for that name.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ponder_checkpoint::{Checkpoint, Tokenizer};
use ponder_manifest::{EngineReload, NamedModel};
use ponder_model::SamplingParams;
use ponder_served::{Finish, ServedClient, ServedError, TokenRequest};
use serde::{Deserialize, Serialize};

use super::Prompt;
use crate::metrics::HostTime;
use crate::records::{Output, SampleRecord};
use crate::run_dir::{Phase, append_jsonl, remove_path, write_jsonl};
use crate::{PipelineError, RunPlan, progress, seeds};

/// How long ponder waits for the engine to answer when the manifest has no
/// `sample.reload.ready_timeout_s`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Lines of a failed reload command's output quoted in the error.
const QUOTED_LOG_LINES: usize = 20;

/// What the phase asks the engine for.
pub(crate) struct Work<'a> {
    /// The engine's name in `[models]`.
    pub(crate) engine: &'a str,
    /// The rendered prompts.
    pub(crate) prompts: &'a [Prompt],
    /// The sampler settings (response forcing included).
    pub(crate) params: &'a SamplingParams,
    /// The assistant prefix each output begins with.
    pub(crate) prefix: &'a str,
    /// The text of the forced response tokens.
    pub(crate) forced_text: &'a str,
}

/// One line of `samples.served.jsonl`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct JournalLine {
    /// The instruction's id.
    pub(crate) id: String,
    /// The sample's index among the instruction's K.
    pub(crate) sample: u32,
    /// The output (its seed included).
    pub(crate) output: Output,
}

/// One sample to ask for.
pub(crate) struct Job {
    /// Its prompt's index in [`Work::prompts`].
    pub(crate) prompt: usize,
    /// Its index among the prompt's samples.
    pub(crate) sample: u32,
    /// Its seed.
    pub(crate) seed: u64,
}

/// Samples the phase's prompts on the engine; see the module documentation.
pub(super) fn run(
    plan: &RunPlan<'_>,
    iteration: u32,
    policy_path: &Path,
    checkpoint: &Checkpoint,
    work: &Work<'_>,
    host: &mut HostTime,
) -> Result<(), PipelineError> {
    let engine_error = |message: String| PipelineError::Engine {
        iteration,
        engine: work.engine.to_string(),
        message,
    };
    let config = match plan.manifest.models.get(work.engine) {
        Some(NamedModel::Served(config)) => config,
        // The manifest's validation makes `engine` name a served model.
        _ => {
            return Err(plan.manifest_error(
                "sample.engine",
                format!("`{}` is not a served model of `[models]`", work.engine),
            ));
        }
    };
    let mut client = ServedClient::new(work.engine, config)
        .map_err(|e| plan.manifest_error("sample.engine", e.to_string()))?;

    let run = &plan.run;
    let journal_path = run.iteration(iteration).join("samples.served.jsonl");
    let k = plan.manifest.sample.k;
    let mut done = host.time(|| read_journal(&journal_path))?;
    let mut jobs = Vec::new();
    for (index, prompt) in work.prompts.iter().enumerate() {
        for sample in 0..k {
            let seed = seeds::sample_seed(
                plan.manifest.run.seed,
                iteration,
                &prompt.id,
                sample as usize,
            );
            let key = (prompt.id.clone(), sample);
            // A journaled sample of another seed is from other settings: asked for again.
            if done.get(&key).is_none_or(|output| output.seed != seed) {
                done.remove(&key);
                jobs.push(Job {
                    prompt: index,
                    sample,
                    seed,
                });
            }
        }
    }

    if !jobs.is_empty() {
        let reload = plan.manifest.sample.reload.as_ref();
        let command_reload = reload.filter(|r| !r.lora);
        if let (Some(reload), 2..) = (command_reload, iteration) {
            // Not host time: the command's work is the engine's (export, restart).
            reload_engine(plan, iteration, policy_path, reload, &client).map_err(engine_error)?;
        }
        // A server started just before the run may still be loading, as after a reload.
        let ready_timeout =
            reload.map_or(READY_TIMEOUT, |r| Duration::from_secs(r.ready_timeout_s));
        client
            .wait_until_ready(ready_timeout)
            .map_err(|e| engine_error(e.to_string()))?;
        if reload.is_some_and(|r| r.lora) && iteration >= 2 {
            let name = load_adapter(iteration, policy_path, &client).map_err(engine_error)?;
            client = client.with_model(&name);
        }
    }

    let total = work.prompts.len() * k as usize;
    let bar = progress::bar(
        &format!("iter {iteration} sample ({})", work.engine),
        "samples",
        total as u64,
        plan.options.progress,
    );
    bar.inc((total - jobs.len()) as u64);
    let started = Instant::now();
    let (outcome, fresh) = sample_all(&client, &checkpoint.tokenizer, work, &jobs, |line| {
        host.time(|| append_jsonl(&journal_path, line))?;
        bar.inc(1);
        Ok(())
    });
    bar.finish_and_clear();
    for (_, line) in fresh.lines {
        done.insert((line.id, line.sample), line.output);
    }
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "iteration {iteration} sample on `{}` ({}): {} of {} samples now ({} resumed), {} tokens \
         in {seconds:.1} s ({:.1} samples/s, {:.1} tokens/s)",
        work.engine,
        client.base_url(),
        fresh.count,
        jobs.len(),
        total - jobs.len(),
        fresh.tokens,
        fresh.count as f64 / seconds.max(1e-9),
        fresh.tokens as f64 / seconds.max(1e-9),
    );
    outcome.map_err(|e| match e {
        SampleFailure::Served(error) => engine_error(format!(
            "{error}; the {} samples finished are kept in {} and a rerun asks only for the rest",
            done.len(),
            journal_path.display()
        )),
        SampleFailure::Pipeline(error) => error,
    })?;

    let mut records = Vec::with_capacity(work.prompts.len());
    for prompt in work.prompts {
        let mut outputs = Vec::with_capacity(k as usize);
        for sample in 0..k {
            let output = done.remove(&(prompt.id.clone(), sample)).ok_or_else(|| {
                engine_error(format!(
                    "instruction `{}` sample {sample} is missing after sampling",
                    prompt.id
                ))
            })?;
            outputs.push(output);
        }
        records.push(SampleRecord {
            id: prompt.id.clone(),
            prompt: prompt.messages.clone(),
            assistant_prefix: work.prefix.to_string(),
            outputs,
        });
    }
    host.time(|| {
        write_jsonl(&run.phase_output(iteration, Phase::Sample), &records)?;
        remove_path(&journal_path)
    })
}

/// Why sampling stopped.
pub(crate) enum SampleFailure {
    /// The engine failed a request.
    Served(ServedError),
    /// Writing the journal (or re-encoding a reply) failed.
    Pipeline(PipelineError),
}

/// The samples that came in during [`sample_all`].
#[derive(Default)]
pub(crate) struct Fresh {
    /// Each sample, in the order they arrived, with its job's index.
    pub(crate) lines: Vec<(usize, JournalLine)>,
    /// How many.
    pub(crate) count: usize,
    /// Their tokens.
    pub(crate) tokens: u64,
}

/// Asks for every job, up to the engine's concurrency at once, handing each finished sample to
/// `keep` as it arrives. On the first failure no new request starts; the requests in flight
/// finish and are kept.
pub(crate) fn sample_all(
    client: &ServedClient,
    tokenizer: &Tokenizer,
    work: &Work<'_>,
    jobs: &[Job],
    mut keep: impl FnMut(&JournalLine) -> Result<(), PipelineError>,
) -> (Result<(), SampleFailure>, Fresh) {
    let mut fresh = Fresh::default();
    if jobs.is_empty() {
        return (Ok(()), fresh);
    }
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (sender, finished) = mpsc::channel();
    let workers = client.concurrency().min(jobs.len()).max(1);
    let mut failure = None;
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let sender = sender.clone();
            let (next, stop) = (&next, &stop);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(index) else { return };
                    let result = sample_one(client, tokenizer, work, job);
                    if sender.send((index, result)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(sender);
        for (index, result) in finished {
            let job = &jobs[index];
            let outcome = result.and_then(|output| {
                let line = JournalLine {
                    id: work.prompts[job.prompt].id.clone(),
                    sample: job.sample,
                    output,
                };
                keep(&line).map_err(SampleFailure::Pipeline)?;
                fresh.count += 1;
                fresh.tokens += u64::from(line.output.tokens);
                fresh.lines.push((index, line));
                Ok(())
            });
            if let Err(error) = outcome {
                stop.store(true, Ordering::Relaxed);
                failure.get_or_insert(error);
            }
        }
    });
    (failure.map_or(Ok(()), Err), fresh)
}

/// One sample: the thought up to the budget, then (forced or not) the rest.
fn sample_one(
    client: &ServedClient,
    tokenizer: &Tokenizer,
    work: &Work<'_>,
    job: &Job,
) -> Result<Output, SampleFailure> {
    let prompt = &work.prompts[job.prompt];
    let params = work.params;
    let label = format!(
        "instruction `{}` sample {} (seed {})",
        prompt.id, job.sample, job.seed
    );
    let ask = |tokens: Vec<u32>, max_tokens: usize, seed: u64, label: &str| {
        client
            .complete_tokens(
                &TokenRequest {
                    prompt: tokens,
                    max_tokens: u32::try_from(max_tokens).unwrap_or(u32::MAX),
                    temperature: params.temperature,
                    top_p: params.top_p,
                    seed,
                },
                label,
            )
            .map_err(SampleFailure::Served)
    };
    let Some(forcing) = &params.response_forcing else {
        let reply = ask(
            prompt.tokens.clone(),
            params.max_new_tokens,
            job.seed,
            &label,
        )?;
        return Ok(output(
            work,
            job,
            reply.text,
            reply.tokens,
            reply.finish,
            false,
        ));
    };
    let thought = ask(
        prompt.tokens.clone(),
        forcing.thought_budget,
        job.seed,
        &label,
    )?;
    let wrote_separator = thought.text.contains(forcing.separator.as_str());
    if wrote_separator && thought.finish == Finish::Stop {
        return Ok(output(
            work,
            job,
            thought.text,
            thought.tokens,
            Finish::Stop,
            false,
        ));
    }
    let mut thought_ids = match thought.token_ids {
        Some(ids) => ids,
        None => tokenizer
            .encode(&thought.text)
            .map_err(|e| SampleFailure::Pipeline(e.into()))?,
    };
    // A server may list the end-of-turn token it stopped at; it is not part of the output.
    while thought_ids
        .last()
        .is_some_and(|id| params.stop_token_ids.contains(id))
    {
        thought_ids.pop();
    }
    let mut continuation = prompt.tokens.clone();
    continuation.extend_from_slice(&thought_ids);
    let mut text = thought.text;
    let mut used = thought_ids.len();
    if !wrote_separator {
        continuation.extend_from_slice(&forcing.forced_tokens);
        text.push_str(work.forced_text);
        used += forcing.forced_tokens.len();
    }
    let left = params.max_new_tokens.saturating_sub(used);
    if left == 0 {
        return Ok(output(
            work,
            job,
            text,
            used as u64,
            Finish::Length,
            !wrote_separator,
        ));
    }
    // Another seed for the second request, derived from the sample's own.
    let response = ask(
        continuation,
        left,
        seeds::derive(job.seed, &["response"]),
        &format!("{label}, response"),
    )?;
    text.push_str(&response.text);
    Ok(output(
        work,
        job,
        text,
        used as u64 + response.tokens,
        response.finish,
        !wrote_separator,
    ))
}

/// The run file's record of one sample.
fn output(
    work: &Work<'_>,
    job: &Job,
    text: String,
    tokens: u64,
    finish: Finish,
    forced_response: bool,
) -> Output {
    Output {
        seed: job.seed,
        text: format!("{}{text}", work.prefix),
        tokens: u32::try_from(tokens).unwrap_or(u32::MAX),
        finish: match finish {
            Finish::Stop => "stop",
            Finish::Length => "length",
        }
        .to_string(),
        forced_response,
    }
}

/// The journal's samples by (instruction id, sample index). A last line cut off by a kill is
/// ignored (its sample is asked for again); any other unreadable line is an error.
fn read_journal(path: &Path) -> Result<HashMap<(String, u32), Output>, PipelineError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(error) => return Err(PipelineError::io(path, error)),
    };
    let mut done = HashMap::new();
    let lines: Vec<&str> = text.split('\n').collect();
    for (number, line) in lines.iter().enumerate() {
        if line.is_empty() {
            continue;
        }
        match serde_json::from_str::<JournalLine>(line) {
            Ok(entry) => {
                done.insert((entry.id, entry.sample), entry.output);
            }
            // Only the last line can be torn: every line is written whole, then the next.
            Err(_) if number + 1 == lines.len() => {}
            Err(error) => {
                return Err(PipelineError::RunFile {
                    path: path.to_path_buf(),
                    line: number + 1,
                    message: error.to_string(),
                });
            }
        }
    }
    Ok(done)
}

/// Loads the LoRA adapter of iteration `iteration`'s policy (`policy_path/adapter/`) into the
/// engine and returns the name to sample with: `ponder-iter-N-DIGEST`, the digest of the
/// adapter's weights, so that a name always means the same adapter (a rerun finds it loaded).
fn load_adapter(
    iteration: u32,
    policy_path: &Path,
    client: &ServedClient,
) -> Result<String, String> {
    use sha2::{Digest, Sha256};
    let adapter = policy_path.join(ponder_trainer::ADAPTER_DIR);
    let adapter = std::fs::canonicalize(&adapter).map_err(|e| {
        format!(
            "sample.reload.lora: the policy's LoRA adapter {}: {e}",
            adapter.display()
        )
    })?;
    let weights = adapter.join(ponder_model::lora::PEFT_WEIGHTS_FILE);
    let bytes = std::fs::read(&weights).map_err(|e| format!("{}: {e}", weights.display()))?;
    let digest = format!("{:x}", Sha256::digest(&bytes));
    let name = format!("ponder-iter-{iteration}-{}", &digest[..12]);
    let started = Instant::now();
    client
        .load_lora_adapter(&name, &adapter.to_string_lossy())
        .map_err(|e| {
            let hint = match &e {
                ServedError::Status { status: 404, .. } => {
                    "; the server has no runtime LoRA API: start vLLM with `--enable-lora` (and \
                     `--max-lora-rank` ≥ the rank) and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True"
                }
                _ => "",
            };
            format!("loading the LoRA adapter {}: {e}{hint}", adapter.display())
        })?;
    eprintln!(
        "iteration {iteration}: LoRA adapter {} loaded as `{name}` in {:.1} s",
        adapter.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(name)
}

/// Runs the reload command for iteration `iteration`'s policy; its output goes to
/// `iter-N/reload.log`.
fn reload_engine(
    plan: &RunPlan<'_>,
    iteration: u32,
    policy_path: &Path,
    reload: &EngineReload,
    client: &ServedClient,
) -> Result<(), String> {
    let absolute = |path: &Path| -> PathBuf {
        std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
    };
    let log_path = plan.run.iteration(iteration).join("reload.log");
    let log =
        std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let log_err = log
        .try_clone()
        .map_err(|e| format!("{}: {e}", log_path.display()))?;
    let seed_model = plan
        .manifest
        .model
        .as_ref()
        .map(|model| absolute(&model.path))
        .unwrap_or_default();
    let directory = plan
        .manifest
        .file
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    eprintln!(
        "iteration {iteration}: reloading the engine with {} ({})",
        policy_path.display(),
        reload.command.join(" ")
    );
    let started = Instant::now();
    // A relative path with a directory in it is the manifest's, as every path of a manifest;
    // a bare name is looked up on PATH.
    let program = Path::new(&reload.command[0]);
    let program = if program.is_relative() && program.components().count() > 1 {
        directory.join(program)
    } else {
        program.to_path_buf()
    };
    let status = std::process::Command::new(&program)
        .args(&reload.command[1..])
        .current_dir(&directory)
        .env("PONDER_MODEL", absolute(policy_path))
        .env("PONDER_SEED_MODEL", seed_model)
        .env("PONDER_ITERATION", iteration.to_string())
        .env("PONDER_ENGINE_URL", client.base_url())
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .status()
        .map_err(|e| {
            format!(
                "sample.reload.command: cannot run `{}` (in {}): {e}",
                reload.command[0],
                directory.display()
            )
        })?;
    if !status.success() {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(QUOTED_LOG_LINES)..].join("\n");
        return Err(format!(
            "sample.reload.command `{}` failed ({status}); the end of {}:\n{tail}",
            reload.command.join(" "),
            log_path.display()
        ));
    }
    eprintln!(
        "iteration {iteration}: reload command done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
