//! `ponder eval`: compares model A with model B on held-out instructions, thoughts hidden from
//! the judge, and measures IFEval's accuracies on the verifiable ones.
//!
//! 1. **generate**: one output per instruction per model, through each model's own template
//!    plugin (thought prompt or direct answer), sampled exactly as `ponder train` samples
//!    (template render, chat template, the template's assistant prefix and response forcing as
//!    the sample settings say); the seed of an output derives from the evaluation seed, the
//!    instruction id and the attempt only, so A and B (or A and A) draw the same numbers. An
//!    output the template cannot split is sampled again, up to `parse_retries` times (not under
//!    greedy decoding, which would repeat it); what still fails is a parse failure, reported.
//! 2. **compare** (with B and a judge): a pointwise judge scores A's and B's responses; a
//!    pairwise judge compares them in both orders, A first and B first, and the two verdicts
//!    become one preference ([`ponder_eval::pairwise_preference`]). A parse failure loses to a
//!    parsed response without a judge call; two failures tie. The win rate and AlpacaEval 2's
//!    length-controlled win rate with bootstrap intervals, per category too
//!    ([`ponder_eval::pairwise_report`]).
//! 3. **IFEval** (with a constraints judge, for instructions whose metadata lists IFEval
//!    constraints): each constraint is judged alone on the response (strict) and on its loose
//!    variants ([`ponder_eval::loose_variants`]; loose when any variant passes), all in one judge
//!    call per model; a parse failure fails every constraint. IFEval's four accuracies, per
//!    constraint type and per category ([`ponder_eval::ifeval_report`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use ponder_contract::OutputFormat;
use ponder_data::Instruction;
use ponder_eval::{
    BootstrapOptions, ComparedInstruction, ConstraintVerdict, IfevalPrompt, IfevalReport,
    MeanLengths, OutputLengths, PairwiseReport, PairwiseVerdict, char_length, ifeval_report,
    loose_variants, mean_lengths, pairwise_preference, pairwise_report, pointwise_preference,
};
use ponder_manifest::{PluginSpec, SampleSection, ServedModel};
use ponder_model::GenerationRequest;
use ponder_plugin_runtime::capability::ModelAccess;
use ponder_plugin_runtime::types::{JudgeRequest, Parsed};
use ponder_plugin_runtime::{LogSink, Plugin, PluginError, PluginRuntime, RuntimeOptions};
use ponder_served::ServedClient;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::metrics::HostTime;
use crate::phases::judge::bisect;
use crate::phases::sample::served::{Job, SampleFailure, Work, sample_all};
use crate::phases::sample::{
    check_prompt_room, generate_showing_rate, render_prompts, sampling_params_of,
};
use crate::run_dir::write_atomic;
use crate::{PipelineError, Policy, progress, seeds};

/// A model under evaluation.
#[derive(Clone, Debug)]
pub struct EvalModel {
    /// The flag that named it (`--a`, `--b`), for messages.
    pub flag: String,
    /// A Hugging Face directory or a GGUF file.
    pub path: PathBuf,
    /// The device it runs on (`cpu`, `wgpu`, `cuda:N`).
    pub device: String,
    /// Its template plugin (a thought prompt, or `thought-direct` for direct answers).
    pub template: PluginSpec,
    /// A served model that generates its outputs instead of the host (serving the model at
    /// `path`, whose tokenizer and chat template make the prompts); `None`: the host generates.
    pub engine: Option<EvalEngine>,
}

/// A served model generating an evaluated model's outputs.
#[derive(Clone, Debug)]
pub struct EvalEngine {
    /// Its name in `[models]`.
    pub name: String,
    /// Its endpoint.
    pub served: ServedModel,
}

/// How a judge scores the responses of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JudgeKind {
    /// Each response alone (e.g. `judge-llm-pointwise`, `judge-constraints`): one request holds
    /// A's and B's responses, and the higher score wins.
    Pointwise,
    /// Responses relative to each other (e.g. `judge-llm-pairwise`): asked with A first and with
    /// B first; in each order the response scored higher wins, equal scores tie.
    Pairwise,
}

/// The judge of the comparison.
#[derive(Clone, Debug)]
pub struct EvalJudge {
    /// The plugin.
    pub spec: PluginSpec,
    /// How it scores.
    pub kind: JudgeKind,
}

/// What to evaluate, and how.
#[derive(Clone, Debug)]
pub struct EvalPlan {
    /// The model evaluated.
    pub a: EvalModel,
    /// The baseline it is compared with (none: IFEval of A only).
    pub b: Option<EvalModel>,
    /// The judge of the comparison; none: no comparison (with `b`, IFEval of both only).
    pub judge: Option<EvalJudge>,
    /// The judge of IFEval constraints (`judge-constraints` in strict mode); none: no IFEval.
    pub constraints_judge: Option<PluginSpec>,
    /// The instruction file (JSONL or Parquet).
    pub data: PathBuf,
    /// Evaluate the first `limit` instructions only.
    pub limit: Option<usize>,
    /// The sampler settings (`k` is ignored: one output per instruction).
    pub sample: SampleSection,
    /// The seed of the outputs, the plugins and the bootstrap.
    pub seed: u64,
    /// How many times an output that does not parse is sampled again.
    pub parse_retries: u32,
    /// The bootstrap intervals' resamples and level (its seed is replaced by `seed`'s).
    pub bootstrap: BootstrapOptions,
}

/// How `ponder eval` runs, beyond the plan.
#[derive(Clone)]
pub struct EvalOptions {
    /// Draw progress bars on stderr.
    pub progress: bool,
    /// Where compiled plugins are cached (`None`: compile in memory).
    pub plugin_cache: Option<PathBuf>,
    /// Where plugin log records go.
    pub plugin_log: Arc<dyn LogSink>,
    /// The models that plugins granted `models` may call (an LLM judge's).
    pub models: Option<Arc<dyn ModelAccess>>,
    /// Where each model's outputs are kept, under a name derived from everything that
    /// determines them; an evaluation finding them there reuses them instead of generating
    /// again (`ponder experiment` compares many models with one seed model this way, and
    /// resumes). `None`: nothing is kept.
    pub outputs_dir: Option<PathBuf>,
}

/// How one model's outputs came out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerationStats {
    /// Outputs kept, one per instruction.
    pub outputs: usize,
    /// Outputs the template could not split after every retry.
    pub parse_failures: usize,
    /// The instructions of those outputs.
    pub parse_failure_ids: Vec<String>,
    /// Outputs sampled more than once because an earlier attempt did not parse.
    pub resampled: usize,
    /// Kept outputs whose response separator the sampler forced (`thought_budget`).
    pub forced_responses: usize,
    /// Tokens generated, retries included.
    pub tokens: usize,
    /// Wall-clock seconds of generation.
    pub seconds: f64,
    /// Mean response and thought lengths in characters over the parsed outputs; `None` when
    /// none parsed.
    pub lengths: Option<MeanLengths>,
}

/// One model's part of the result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelReport {
    /// The flag that named it (`--a`, `--b`).
    pub flag: String,
    /// Its path.
    pub model: PathBuf,
    /// Its template plugin's name.
    pub template: String,
    /// How its outputs came out.
    pub generation: GenerationStats,
    /// IFEval over the instructions with constraints; `None` without a constraints judge or
    /// such instructions.
    pub ifeval: Option<IfevalReport>,
}

/// One instruction's outputs, for the record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstructionOutcome {
    /// The instruction's id.
    pub id: String,
    /// Its category (empty when it has none).
    pub category: String,
    /// The preference for A in [0, 1]; `None` without a comparison or where the judge failed.
    pub preference: Option<f64>,
    /// Each model's output, in the order of [`EvalReport::models`].
    pub outputs: Vec<OutputRecord>,
}

/// One model's output on one instruction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputRecord {
    /// The whole output (assistant prefix included).
    pub text: String,
    /// The thought; `None` on a parse failure.
    pub thought: Option<String>,
    /// The response the judge saw; `None` on a parse failure.
    pub response: Option<String>,
    /// Why the template could not split the output, after every retry.
    pub parse_failure: Option<String>,
    /// How many times it was sampled.
    pub attempts: u32,
}

/// The result of `ponder eval`, as its JSON file holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// The instruction file.
    pub data: PathBuf,
    /// Instructions evaluated.
    pub instructions: usize,
    /// The seed of the outputs, plugins and bootstrap.
    pub seed: u64,
    /// Sampling temperature (0: greedy).
    pub temperature: f32,
    /// Nucleus threshold.
    pub top_p: f32,
    /// Most new tokens per output.
    pub max_new_tokens: u32,
    /// Retries of an output that does not parse.
    pub parse_retries: u32,
    /// The comparison judge; `None` without B.
    pub judge: Option<JudgeInfo>,
    /// A, then B.
    pub models: Vec<ModelReport>,
    /// A against B; `None` without B.
    pub pairwise: Option<PairwiseReport>,
    /// The instructions the comparison judge failed on, left out of `pairwise`.
    pub judge_failures: Vec<JudgeFailure>,
    /// Per instruction: the outputs and the preference.
    pub per_instruction: Vec<InstructionOutcome>,
}

/// An instruction the comparison judge failed on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JudgeFailure {
    /// The instruction's id.
    pub id: String,
    /// The judge's error.
    pub message: String,
}

/// Which judge compared A with B.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JudgeInfo {
    /// The plugin's name (its file stem).
    pub name: String,
    /// How it scored.
    pub kind: JudgeKind,
}

/// One model's output on one instruction, split.
#[derive(Serialize, Deserialize)]
struct Generated {
    record: OutputRecord,
    forced_response: bool,
}

impl Generated {
    fn lengths(&self) -> OutputLengths {
        let response = self.record.response.as_deref().unwrap_or("");
        OutputLengths {
            response_chars: char_length(response),
            // A direct template's empty thought is no thought.
            thought_chars: self
                .record
                .thought
                .as_deref()
                .filter(|thought| !thought.is_empty())
                .map(char_length),
        }
    }
}

/// Evaluates as `plan` says.
///
/// # Errors
/// An unreadable or empty instruction file; a model or plugin that cannot be loaded (or a
/// template or judge plugin of the wrong role), each naming its file and flag; a prompt longer
/// than a model allows; a model failure; a judge failing on an instruction (named).
pub fn evaluate(plan: &EvalPlan, options: &EvalOptions) -> Result<EvalReport, PipelineError> {
    let mut instructions = ponder_data::read_instructions(&plan.data)?;
    if let Some(limit) = plan.limit {
        instructions.truncate(limit);
    }
    if instructions.is_empty() {
        return Err(PipelineError::NotEnoughData {
            file: plan.data.clone(),
            message: "no instructions to evaluate".into(),
        });
    }
    let runtime = |parts: &[&str]| -> Result<PluginRuntime, PipelineError> {
        Ok(PluginRuntime::new(RuntimeOptions {
            cache_dir: options.plugin_cache.clone(),
            log: Arc::clone(&options.plugin_log),
            models: options.models.clone(),
            seed: seeds::derive(plan.seed, parts),
        })?)
    };
    // Every plugin loads (right role, valid configuration) before minutes of sampling.
    let check = runtime(&["eval", "check"])?;
    let models: Vec<&EvalModel> = std::iter::once(&plan.a).chain(&plan.b).collect();
    for model in &models {
        load(&check, &model.template, &format!("{}-template", model.flag))?;
        if !model.path.exists() {
            return Err(PipelineError::Eval {
                input: format!("{} ({})", model.path.display(), model.flag),
                message: "does not exist (a Hugging Face directory or a .gguf file)".into(),
            });
        }
    }
    if let Some(judge) = &plan.judge {
        load(&check, &judge.spec, "--judge")?;
    }
    if let Some(spec) = &plan.constraints_judge {
        load(&check, spec, "--constraints-judge")?;
    }
    drop(check);

    let mut outputs = Vec::with_capacity(models.len());
    let mut reports = Vec::with_capacity(models.len());
    for model in &models {
        let kept = model_outputs(plan, options, model, &instructions, &runtime)?;
        reports.push(kept.report);
        outputs.push(kept.outputs);
    }

    let mut judge_failures = Vec::new();
    let preferences = match (&plan.judge, outputs.get(1)) {
        (Some(judge), Some(b)) => {
            let judge_runtime = runtime(&["eval", "judge"])?;
            let preferences = compare(
                judge,
                &judge_runtime,
                &instructions,
                &outputs[0],
                b,
                &mut judge_failures,
            )?;
            if !judge_failures.is_empty() {
                eprintln!(
                    "eval: the judge failed on {} instructions, left out of the comparison \
                     (listed in the result's judge_failures)",
                    judge_failures.len()
                );
            }
            Some(preferences)
        }
        _ => None,
    };
    let pairwise = match &preferences {
        Some(preferences) => {
            let rows: Vec<ComparedInstruction> = instructions
                .iter()
                .zip(preferences)
                .enumerate()
                .filter_map(|(index, (instruction, &preference))| {
                    Some(ComparedInstruction {
                        category: category(instruction),
                        preference: preference?,
                        a: outputs[0][index].lengths(),
                        b: outputs[1][index].lengths(),
                    })
                })
                .collect();
            if let (true, Some(first), Some(judge)) =
                (rows.is_empty(), judge_failures.first(), &plan.judge)
            {
                return Err(plugin_error(
                    &judge.spec,
                    "--judge",
                    format!(
                        "failed on every instruction, e.g. `{}`: {}",
                        first.id, first.message
                    ),
                ));
            }
            let bootstrap = BootstrapOptions {
                seed: seeds::derive(plan.seed, &["eval", "bootstrap"]),
                ..plan.bootstrap.clone()
            };
            Some(pairwise_report(&rows, &bootstrap).map_err(|e| statistics_error(plan, e))?)
        }
        None => None,
    };
    let per_instruction = instructions
        .iter()
        .enumerate()
        .map(|(index, instruction)| InstructionOutcome {
            id: instruction.id.clone(),
            category: category(instruction),
            preference: preferences.as_ref().and_then(|all| all[index]),
            outputs: outputs
                .iter()
                .map(|model| model[index].record.clone())
                .collect(),
        })
        .collect();
    Ok(EvalReport {
        data: plan.data.clone(),
        instructions: instructions.len(),
        seed: plan.seed,
        temperature: plan.sample.temperature,
        top_p: plan.sample.top_p,
        max_new_tokens: plan.sample.max_new_tokens,
        parse_retries: plan.parse_retries,
        judge: plan.judge.as_ref().map(|judge| JudgeInfo {
            name: judge.spec.name(),
            kind: judge.kind,
        }),
        models: reports,
        pairwise,
        judge_failures,
        per_instruction,
    })
}

/// One model's outputs on the evaluation's instructions and what was measured on them alone, as
/// [`EvalOptions::outputs_dir`] keeps them.
#[derive(Serialize, Deserialize)]
struct ModelOutputs {
    /// Everything that determines the outputs ([`outputs_fingerprint`]); a kept file whose
    /// fingerprint differs is generated again.
    fingerprint: serde_json::Value,
    report: ModelReport,
    outputs: Vec<Generated>,
}

/// `model`'s outputs and report: kept ones from `options.outputs_dir` when they were made by the
/// same model files, template, settings, data and seed; else generated (and kept there).
fn model_outputs(
    plan: &EvalPlan,
    options: &EvalOptions,
    model: &EvalModel,
    instructions: &[Instruction],
    runtime: &dyn Fn(&[&str]) -> Result<PluginRuntime, PipelineError>,
) -> Result<ModelOutputs, PipelineError> {
    let template_runtime = runtime(&["eval", "template"])?;
    let flag = format!("{}-template", model.flag);
    let format = load(&template_runtime, &model.template, &flag)?
        .output_format()
        .map_err(|error| plugin_error(&model.template, &flag, error))?;
    let fingerprint = outputs_fingerprint(plan, model, &format);
    let kept_file = options.outputs_dir.as_ref().map(|dir| {
        let digest = sha2::Sha256::digest(fingerprint.to_string().as_bytes());
        let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        dir.join(format!("outputs-{hex}.json"))
    });
    if let Some(file) = &kept_file
        && let Ok(text) = std::fs::read(file)
    {
        match serde_json::from_slice::<ModelOutputs>(&text) {
            Ok(mut kept)
                if kept.fingerprint == fingerprint && kept.outputs.len() == instructions.len() =>
            {
                eprintln!(
                    "eval {}: reusing the outputs kept in {}",
                    model.flag,
                    file.display()
                );
                kept.report.flag = model.flag.clone();
                return Ok(kept);
            }
            // Stale or unreadable (e.g. an older format): generated again and replaced.
            _ => {}
        }
    }
    let (generated, generation) =
        generate_outputs(plan, options, model, &template_runtime, instructions)?;
    let ifeval = match &plan.constraints_judge {
        Some(spec) => {
            let judge_runtime = runtime(&["eval", "constraints"])?;
            ifeval_of(plan, spec, &judge_runtime, instructions, &generated)?
        }
        None => None,
    };
    let kept = ModelOutputs {
        fingerprint,
        report: ModelReport {
            flag: model.flag.clone(),
            model: model.path.clone(),
            template: model.template.name(),
            generation,
            ifeval,
        },
        outputs: generated,
    };
    if let Some(file) = &kept_file {
        let text = serde_json::to_vec(&kept).map_err(|e| PipelineError::RunFile {
            path: file.clone(),
            line: 0,
            message: e.to_string(),
        })?;
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(|error| PipelineError::Io {
                path: dir.to_path_buf(),
                error,
            })?;
        }
        write_atomic(file, &text)?;
    }
    Ok(kept)
}

/// What determines a model's evaluation outputs: its files, its template plugin and
/// configuration, the sampling settings, the seed, the instructions and the IFEval checker
/// (files as [`file_stamp`] identifies them). The flag naming
/// the model is left out: the same model named `--a` here and `--b` there has the same outputs.
fn outputs_fingerprint(
    plan: &EvalPlan,
    model: &EvalModel,
    format: &OutputFormat,
) -> serde_json::Value {
    let sample = &plan.sample;
    // The settings as they act on this template: a direct answer's template has no prefix to
    // prefill and no separator to force, so a thought arm's settings leave its outputs alone.
    let prefix = if sample.prefill {
        format.assistant_prefix.as_str()
    } else {
        ""
    };
    let thought_budget = format
        .response_separator
        .as_ref()
        .map_or(0, |_| sample.thought_budget);
    serde_json::json!({
        "format": 2,
        "model": file_stamp(&model.path),
        "device": model.device,
        "engine": model.engine.as_ref().map(|engine| {
            serde_json::json!({"url": engine.served.url, "model": engine.served.model})
        }),
        "template": file_stamp(model.template.source.path()),
        "template_config": model.template.config,
        "temperature": sample.temperature,
        "top_p": sample.top_p,
        "max_new_tokens": sample.max_new_tokens,
        "assistant_prefix": prefix,
        "thought_budget": thought_budget,
        "batch_prompts": sample.batch_prompts,
        "seed": plan.seed,
        "parse_retries": plan.parse_retries,
        "data": file_stamp(&plan.data),
        "limit": plan.limit,
        "constraints_judge": plan
            .constraints_judge
            .as_ref()
            .map(|spec| file_stamp(spec.source.path())),
        "resamples": plan.bootstrap.resamples,
        "level": plan.bootstrap.level,
    })
}

/// Files up to this size are identified by their content, larger ones (model weights) by size
/// and modification time.
const HASHED_FILE_BYTES: u64 = 64 << 20;

/// A file's path and identity: the SHA-256 of its content for files up to
/// [`HASHED_FILE_BYTES`] (plugins and instruction files, which builds rewrite with new times
/// and the same bytes), size and modification time for larger ones (model weights, as build
/// tools compare them); a directory's path and the stamps of the files directly inside it (a
/// Hugging Face model directory).
fn file_stamp(path: &Path) -> serde_json::Value {
    let stamp = |path: &Path| {
        let metadata = std::fs::metadata(path).ok();
        let bytes = metadata.as_ref().map(std::fs::Metadata::len);
        let content = bytes
            .filter(|&bytes| bytes <= HASHED_FILE_BYTES)
            .and_then(|_| std::fs::read(path).ok())
            .map(|content| {
                sha2::Sha256::digest(&content)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            });
        let modified = match content {
            Some(_) => None,
            None => metadata
                .as_ref()
                .and_then(|m| m.modified().ok())
                .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|since| since.as_nanos().to_string()),
        };
        serde_json::json!({
            "path": path,
            "bytes": bytes,
            "sha256": content,
            "modified": modified,
        })
    };
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .into_iter()
            .flatten()
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|file| file.is_file())
            .collect();
        files.sort();
        serde_json::json!({ "dir": path, "files": files.iter().map(|f| stamp(f)).collect::<Vec<_>>() })
    } else {
        stamp(path)
    }
}

fn category(instruction: &Instruction) -> String {
    instruction.category.clone().unwrap_or_default()
}

fn statistics_error(plan: &EvalPlan, error: ponder_eval::EvalError) -> PipelineError {
    PipelineError::Eval {
        input: plan.data.display().to_string(),
        message: error.to_string(),
    }
}

/// The error of plugin `spec`, given with `flag`.
fn plugin_error(spec: &PluginSpec, flag: &str, error: impl std::fmt::Display) -> PipelineError {
    PipelineError::Eval {
        input: format!("{} ({flag})", spec.source.path().display()),
        message: error.to_string(),
    }
}

/// Loads and configures `spec`, an error naming its file and `flag`.
fn load(runtime: &PluginRuntime, spec: &PluginSpec, flag: &str) -> Result<Plugin, PipelineError> {
    if !spec.source.path().is_file() {
        return Err(plugin_error(
            spec,
            flag,
            "does not exist (first-party plugins are built by scripts/build-plugins.sh)",
        ));
    }
    runtime
        .load(spec)
        .map_err(|error| plugin_error(spec, flag, error))
}

/// One output per instruction from `model`, each split by its template; outputs that do not
/// parse are sampled again (new seeds) up to `plan.parse_retries` times.
fn generate_outputs(
    plan: &EvalPlan,
    options: &EvalOptions,
    model: &EvalModel,
    runtime: &PluginRuntime,
    instructions: &[Instruction],
) -> Result<(Vec<Generated>, GenerationStats), PipelineError> {
    let flag = format!("{}-template", model.flag);
    let mut template = load(runtime, &model.template, &flag)?;
    let template_error = |error: PluginError| plugin_error(&model.template, &flag, error);
    let format = template.output_format().map_err(template_error)?;
    let prefix = if plan.sample.prefill {
        format.assistant_prefix.clone()
    } else {
        String::new()
    };
    let mut policy = Policy::new(model.path.clone(), model.device.clone());
    let engine_error = |message: String| PipelineError::Eval {
        input: format!("{} ({})", model.path.display(), model.flag),
        message,
    };
    let (checkpoint, sampler) = match &model.engine {
        None => {
            let (checkpoint, causal_lm) = policy.model()?;
            (checkpoint, Sampler::Host(causal_lm))
        }
        Some(engine) => {
            let client = ServedClient::new(&engine.name, &engine.served)
                .map_err(|e| engine_error(e.to_string()))?;
            (
                policy.checkpoint()?,
                Sampler::Served(Box::new(client), &engine.name),
            )
        }
    };
    let mut host = HostTime::default();
    let prompts = render_prompts(
        &mut template,
        checkpoint,
        instructions,
        &prefix,
        &mut host,
        &template_error,
    )?;
    let settings_error = |key: &str, message: String| PipelineError::Eval {
        input: format!("{} ({})", model.path.display(), model.flag),
        message: format!("{key}: {message}"),
    };
    let params = sampling_params_of(&plan.sample, checkpoint, &format, &settings_error)?;
    check_prompt_room(&prompts, &params, checkpoint, &settings_error)?;

    let bar = progress::bar(
        &format!("eval {} generate", model.flag.trim_start_matches('-')),
        "instructions",
        prompts.len() as u64,
        options.progress,
    );
    let started = Instant::now();
    let mut tokens = 0usize;
    let mut generated: Vec<Option<Generated>> = (0..prompts.len()).map(|_| None).collect();
    let mut pending: Vec<usize> = (0..prompts.len()).collect();
    // Greedy decoding would sample the same failure again.
    let attempts = if params.temperature > 0.0 {
        plan.parse_retries + 1
    } else {
        1
    };
    if let Sampler::Served(client, _) = &sampler {
        client
            .wait_until_ready(SERVED_READY_TIMEOUT)
            .map_err(|e| engine_error(e.to_string()))?;
    }
    for attempt in 0..attempts {
        let mut still_failing = Vec::new();
        // A served engine takes every request at once (its concurrency bounds those in flight).
        let chunk_size = match &sampler {
            Sampler::Host(_) => plan.sample.batch_prompts.max(1) as usize,
            Sampler::Served(..) => pending.len().max(1),
        };
        for chunk in pending.chunks(chunk_size) {
            let seed_of = |index: usize| output_seed(plan.seed, &prompts[index].id, attempt);
            // (position in the chunk, whole output text, whether its response was forced)
            let outputs: Vec<(usize, String, bool)> = match &sampler {
                Sampler::Host(causal_lm) => {
                    let requests: Vec<GenerationRequest> = chunk
                        .iter()
                        .map(|&index| GenerationRequest {
                            prompt: prompts[index].tokens.clone(),
                            seeds: vec![seed_of(index)],
                        })
                        .collect();
                    generate_showing_rate(
                        causal_lm,
                        &checkpoint.tokenizer,
                        &requests,
                        &params,
                        (&bar, started, &mut tokens),
                    )
                    .map_err(|e| PipelineError::model(format!("{}: sampling", model.flag), e))?
                    .into_iter()
                    .map(|sequence| {
                        let text = format!("{prefix}{}", sequence.text);
                        (sequence.request, text, sequence.forced_response)
                    })
                    .collect()
                }
                Sampler::Served(client, name) => {
                    let work = Work {
                        engine: name,
                        prompts: &prompts,
                        params: &params,
                        prefix: &prefix,
                        forced_text: &format.forced_response,
                    };
                    let jobs: Vec<Job> = chunk
                        .iter()
                        .map(|&index| Job {
                            prompt: index,
                            sample: 0,
                            seed: seed_of(index),
                        })
                        .collect();
                    let (outcome, fresh) =
                        sample_all(client, &checkpoint.tokenizer, &work, &jobs, |_| Ok(()));
                    outcome.map_err(|failure| match failure {
                        SampleFailure::Served(error) => {
                            engine_error(format!("generating on `{name}`: {error}"))
                        }
                        SampleFailure::Pipeline(error) => error,
                    })?;
                    tokens += fresh.tokens as usize;
                    fresh
                        .lines
                        .into_iter()
                        .map(|(job, line)| (job, line.output.text, line.output.forced_response))
                        .collect()
                }
            };
            for (position, text, forced_response) in outputs {
                let index = chunk[position];
                let parsed = template.parse(&text).map_err(template_error)?;
                let (thought, response, parse_failure) = match parsed {
                    Parsed::Ok(split) => (Some(split.thought), Some(split.response), None),
                    Parsed::Failure(reason) => (None, None, Some(reason)),
                };
                let failed = parse_failure.is_some();
                generated[index] = Some(Generated {
                    record: OutputRecord {
                        text,
                        thought,
                        response,
                        parse_failure,
                        attempts: attempt + 1,
                    },
                    forced_response,
                });
                if failed && attempt + 1 < attempts {
                    still_failing.push(index);
                } else {
                    bar.inc(1);
                }
            }
        }
        pending = still_failing;
        if pending.is_empty() {
            break;
        }
    }
    bar.finish_and_clear();
    let generated: Vec<Generated> = generated
        .into_iter()
        .map(|output| output.expect("every instruction was sampled at least once"))
        .collect();
    let parsed: Vec<OutputLengths> = generated
        .iter()
        .filter(|output| output.record.response.is_some())
        .map(Generated::lengths)
        .collect();
    let parse_failure_ids: Vec<String> = generated
        .iter()
        .zip(&prompts)
        .filter(|(output, _)| output.record.response.is_none())
        .map(|(_, prompt)| prompt.id.clone())
        .collect();
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "eval {}: {} outputs, {tokens} tokens in {seconds:.1} s ({:.1} tokens/s), {} parse failures",
        model.flag,
        generated.len(),
        tokens as f64 / seconds.max(1e-9),
        parse_failure_ids.len()
    );
    let stats = GenerationStats {
        outputs: generated.len(),
        parse_failures: parse_failure_ids.len(),
        parse_failure_ids,
        resampled: generated.iter().filter(|o| o.record.attempts > 1).count(),
        forced_responses: generated.iter().filter(|o| o.forced_response).count(),
        tokens,
        seconds,
        lengths: (!parsed.is_empty()).then(|| mean_lengths(parsed.iter())),
    };
    Ok((generated, stats))
}

/// How long `ponder eval` waits for a served engine to answer before generating.
const SERVED_READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// What generates a model's outputs.
enum Sampler<'a> {
    /// The host's own sampler.
    Host(&'a ponder_model::CausalLm),
    /// A served engine, and its name in `[models]`.
    Served(Box<ServedClient>, &'a str),
}

/// The seed of attempt `attempt` at instruction `id`: the same for every model, so that A and
/// B draw the same numbers and a model compared with itself ties.
fn output_seed(seed: u64, id: &str, attempt: u32) -> u64 {
    seeds::derive(seed, &["eval", id, &attempt.to_string()])
}

/// A judge request over `responses` to `instruction` (its messages, not the thought prompt).
fn judge_request(instruction: &Instruction, responses: Vec<String>) -> JudgeRequest {
    JudgeRequest {
        instruction: instruction.messages.clone(),
        responses,
        reference: instruction.reference.clone(),
        metadata: instruction.metadata.to_string(),
    }
}

/// One judge request's scores, or why the judge failed on it.
type RequestScores = Result<Vec<Option<f64>>, String>;

/// Judges `requests`, one outcome per request in order. A call that fails as a whole is split
/// in halves down to single requests (as `ponder train` judges), each part on a fresh instance,
/// so that a failure lands on the requests that cause it only.
///
/// # Errors
/// Only a plugin that cannot be loaded; a request's failure is its outcome.
fn judge_all(
    runtime: &PluginRuntime,
    spec: &PluginSpec,
    flag: &str,
    requests: &[JudgeRequest],
) -> Result<Vec<RequestScores>, PipelineError> {
    let outcomes = bisect(requests, |part: &[JudgeRequest]| {
        let mut judge = load(runtime, spec, flag)?;
        Ok::<_, PipelineError>(judge.judge(part).map_err(|error| error.to_string()))
    })?;
    Ok(outcomes
        .into_iter()
        .map(|outcome| match outcome {
            Ok(Ok(scores)) => Ok(scores),
            Ok(Err(failure)) => Err(failure.to_string()),
            Err(call_failure) => Err(call_failure),
        })
        .collect())
}

/// The preference for A where a parse failure decides it, without the judge: a failure loses
/// to a parsed response, two failures tie; `None` when both parsed.
fn preference_without_judge(a_parsed: bool, b_parsed: bool) -> Option<f64> {
    match (a_parsed, b_parsed) {
        (true, true) => None,
        (true, false) => Some(1.0),
        (false, true) => Some(0.0),
        (false, false) => Some(0.5),
    }
}

/// A pairwise judge's verdict on one order from its scores of the response shown first and the
/// one shown second: the higher wins; equal scores, or a missing one, tie.
fn order_verdict(first: Option<f64>, second: Option<f64>) -> PairwiseVerdict {
    match (first, second) {
        (Some(first), Some(second)) if first > second => PairwiseVerdict::First,
        (Some(first), Some(second)) if first < second => PairwiseVerdict::Second,
        _ => PairwiseVerdict::Tie,
    }
}

/// The preference for A from a judge's scores: `scores[0]` of the request with A first (A's
/// score, B's score), and for a pairwise judge `scores[1]` of the request with B first.
fn judged_preference(
    kind: JudgeKind,
    index: usize,
    scores: &[Vec<Option<f64>>],
) -> Result<f64, ponder_eval::EvalError> {
    let score = |request: usize, response: usize| {
        scores
            .get(request)
            .and_then(|responses| responses.get(response))
            .copied()
            .flatten()
    };
    match kind {
        JudgeKind::Pointwise => match (score(0, 0), score(0, 1)) {
            (Some(a), Some(b)) => pointwise_preference(index, a, b),
            // An unscored response is no evidence either way.
            _ => Ok(0.5),
        },
        JudgeKind::Pairwise => Ok(pairwise_preference(
            order_verdict(score(0, 0), score(0, 1)),
            order_verdict(score(1, 0), score(1, 1)),
        )),
    }
}

/// The preference for A on every instruction; `None` where the judge failed (in `failures`).
fn compare(
    judge: &EvalJudge,
    runtime: &PluginRuntime,
    instructions: &[Instruction],
    a: &[Generated],
    b: &[Generated],
    failures: &mut Vec<JudgeFailure>,
) -> Result<Vec<Option<f64>>, PipelineError> {
    let orders = match judge.kind {
        JudgeKind::Pointwise => 1,
        JudgeKind::Pairwise => 2,
    };
    let mut requests = Vec::new();
    for (a, b, instruction) in judged_pairs(instructions, a, b) {
        requests.push(judge_request(
            instruction,
            vec![a.to_string(), b.to_string()],
        ));
        if orders == 2 {
            requests.push(judge_request(
                instruction,
                vec![b.to_string(), a.to_string()],
            ));
        }
    }
    let outcomes = judge_all(runtime, &judge.spec, "--judge", &requests)?;
    let mut by_instruction = outcomes.chunks(orders);
    let mut preferences = Vec::with_capacity(instructions.len());
    for (index, instruction) in instructions.iter().enumerate() {
        let a_parsed = a[index].record.response.is_some();
        let b_parsed = b[index].record.response.is_some();
        if let Some(preference) = preference_without_judge(a_parsed, b_parsed) {
            preferences.push(Some(preference));
            continue;
        }
        let outcomes = by_instruction.next().unwrap_or(&[]);
        let scores: Result<Vec<Vec<Option<f64>>>, String> = outcomes.iter().cloned().collect();
        let preference = scores.and_then(|scores| {
            judged_preference(judge.kind, index, &scores).map_err(|error| error.to_string())
        });
        match preference {
            Ok(preference) => preferences.push(Some(preference)),
            Err(message) => {
                failures.push(JudgeFailure {
                    id: instruction.id.clone(),
                    message,
                });
                preferences.push(None);
            }
        }
    }
    Ok(preferences)
}

/// The responses of A and B to each instruction where both parsed, with the instruction.
fn judged_pairs<'a>(
    instructions: &'a [Instruction],
    a: &'a [Generated],
    b: &'a [Generated],
) -> impl Iterator<Item = (&'a str, &'a str, &'a Instruction)> {
    instructions
        .iter()
        .zip(a.iter().zip(b))
        .filter_map(|(instruction, (a, b))| {
            Some((
                a.record.response.as_deref()?,
                b.record.response.as_deref()?,
                instruction,
            ))
        })
}

/// IFEval's constraints of `instruction`: its metadata's `instruction_id_list` and `kwargs`
/// (`None` when it has none).
fn constraints_of(instruction: &Instruction) -> Option<Vec<(String, serde_json::Value)>> {
    let ids = instruction
        .metadata
        .get("instruction_id_list")?
        .as_array()?;
    let kwargs = instruction
        .metadata
        .get("kwargs")
        .and_then(|kwargs| kwargs.as_array());
    let constraints: Vec<(String, serde_json::Value)> = ids
        .iter()
        .enumerate()
        .filter_map(|(index, id)| {
            let arguments = kwargs
                .and_then(|all| all.get(index))
                .cloned()
                .unwrap_or(serde_json::Value::Null);
            Some((id.as_str()?.to_string(), arguments))
        })
        .collect();
    (!constraints.is_empty()).then_some(constraints)
}

/// IFEval of one model's outputs over the instructions with constraints: each constraint judged
/// alone, on the response (strict) and on each of its loose variants, in one judge call.
fn ifeval_of(
    plan: &EvalPlan,
    spec: &PluginSpec,
    runtime: &PluginRuntime,
    instructions: &[Instruction],
    outputs: &[Generated],
) -> Result<Option<IfevalReport>, PipelineError> {
    let mut prompts = Vec::new();
    let mut requests = Vec::new();
    let mut owners = Vec::new();
    // (prompt, verdict) that each request decides.
    let mut decides = Vec::new();
    for (instruction, output) in instructions.iter().zip(outputs) {
        let Some(constraints) = constraints_of(instruction) else {
            continue;
        };
        let prompt_index = prompts.len();
        let mut verdicts = Vec::with_capacity(constraints.len());
        for (verdict_index, (id, arguments)) in constraints.into_iter().enumerate() {
            if let Some(response) = &output.record.response {
                let mut alone = instruction.clone();
                alone.metadata = serde_json::json!({
                    "instruction_id_list": [id],
                    "kwargs": [arguments],
                });
                // The first variant is the response as it is: the strict verdict.
                requests.push(judge_request(&alone, loose_variants(response)));
                owners.push(instruction.id.as_str());
                decides.push((prompt_index, verdict_index));
            }
            verdicts.push(ConstraintVerdict {
                constraint_id: id,
                strict: false,
                loose: false,
            });
        }
        prompts.push(IfevalPrompt {
            category: category(instruction),
            verdicts,
            lengths: output.lengths(),
        });
    }
    if prompts.is_empty() {
        return Ok(None);
    }
    let flag = "--constraints-judge";
    let outcomes = judge_all(runtime, spec, flag, &requests)?;
    for ((outcome, &(prompt, verdict)), owner) in outcomes.iter().zip(&decides).zip(&owners) {
        // A constraint the checker cannot read is a data problem, not the model's: it stops.
        let variant_scores = outcome.as_ref().map_err(|failure| {
            plugin_error(spec, flag, format!("instruction `{owner}`: {failure}"))
        })?;
        let holds = |score: &Option<f64>| score.is_some_and(|score| score >= 1.0);
        let verdict = &mut prompts[prompt].verdicts[verdict];
        verdict.strict = variant_scores.first().is_some_and(holds);
        verdict.loose = variant_scores.iter().any(holds);
    }
    let bootstrap = BootstrapOptions {
        seed: seeds::derive(plan.seed, &["eval", "ifeval-bootstrap"]),
        ..plan.bootstrap.clone()
    };
    let report =
        ifeval_report(&prompts, &bootstrap).map_err(|error| plugin_error(spec, flag, error))?;
    Ok(Some(report))
}

#[cfg(test)]
mod tests {
    use super::PairwiseVerdict::{First, Second, Tie};
    use super::*;

    #[test]
    fn the_higher_score_wins_each_order() {
        assert_eq!(order_verdict(Some(0.9), Some(0.1)), First);
        assert_eq!(order_verdict(Some(-1.0), Some(2.0)), Second);
        assert_eq!(order_verdict(Some(0.5), Some(0.5)), Tie);
        assert_eq!(order_verdict(None, Some(0.5)), Tie);
        assert_eq!(order_verdict(Some(0.5), None), Tie);
    }

    #[test]
    fn pairwise_scores_in_both_orders_become_one_preference() {
        let pairwise = |a_first: [f64; 2], b_first: [f64; 2]| {
            let scores = vec![
                a_first.iter().map(|&s| Some(s)).collect(),
                b_first.iter().map(|&s| Some(s)).collect(),
            ];
            judged_preference(JudgeKind::Pairwise, 0, &scores).unwrap()
        };
        // A is scored higher in both orders (first in the first, second in the second).
        assert_eq!(pairwise([2.0, 1.0], [1.0, 2.0]), 1.0);
        // B both times.
        assert_eq!(pairwise([1.0, 2.0], [2.0, 1.0]), 0.0);
        // The first position wins both times: position bias, one half.
        assert_eq!(pairwise([2.0, 1.0], [2.0, 1.0]), 0.5);
        // A win and a tie is a win.
        assert_eq!(pairwise([2.0, 1.0], [1.0, 1.0]), 1.0);
        assert_eq!(pairwise([1.0, 1.0], [1.0, 1.0]), 0.5);
    }

    #[test]
    fn pointwise_scores_compare_and_missing_ones_tie() {
        let scores = vec![vec![Some(0.75), Some(0.25)]];
        assert_eq!(judged_preference(JudgeKind::Pointwise, 0, &scores), Ok(1.0));
        let scores = vec![vec![Some(0.25), Some(0.75)]];
        assert_eq!(judged_preference(JudgeKind::Pointwise, 0, &scores), Ok(0.0));
        let scores = vec![vec![Some(0.5), None]];
        assert_eq!(judged_preference(JudgeKind::Pointwise, 0, &scores), Ok(0.5));
        let scores = vec![vec![Some(f64::NAN), Some(0.5)]];
        assert!(judged_preference(JudgeKind::Pointwise, 3, &scores).is_err());
    }

    #[test]
    fn parse_failures_lose_without_the_judge() {
        assert_eq!(preference_without_judge(true, true), None);
        assert_eq!(preference_without_judge(true, false), Some(1.0));
        assert_eq!(preference_without_judge(false, true), Some(0.0));
        assert_eq!(preference_without_judge(false, false), Some(0.5));
    }

    #[test]
    fn constraints_come_from_ifeval_metadata() {
        let instruction = |metadata: serde_json::Value| Instruction {
            id: "x".into(),
            messages: vec![ponder_contract::Message::user("Write.")],
            category: None,
            reference: None,
            metadata,
        };
        let constraints = constraints_of(&instruction(serde_json::json!({
            "instruction_id_list": ["punctuation:no_comma", "length_constraints:number_words"],
            "kwargs": [{}, {"num_words": 3, "relation": "at least"}]
        })))
        .unwrap();
        assert_eq!(constraints.len(), 2);
        assert_eq!(constraints[1].0, "length_constraints:number_words");
        assert_eq!(constraints[1].1["num_words"], 3);
        let plain = instruction(serde_json::json!({}));
        assert!(constraints_of(&plain).is_none());
    }

    #[test]
    fn seeds_depend_on_the_instruction_and_attempt_not_the_model() {
        assert_eq!(output_seed(1, "x", 0), output_seed(1, "x", 0));
        assert_ne!(output_seed(1, "x", 0), output_seed(1, "x", 1));
        assert_ne!(output_seed(1, "x", 0), output_seed(1, "y", 0));
        assert_ne!(output_seed(1, "x", 0), output_seed(2, "x", 0));
    }
}
