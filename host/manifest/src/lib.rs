//! The run manifest of ponder: one TOML file naming the policy model, the data, the sampling and
//! DPO settings, the plugins (thought template, judge, pair selector) and the models that granted
//! plugins may call.
//!
//! Parsing is strict: every table rejects unknown keys, and a wrong key or value is an error that
//! names the key path, the file, and the line and column. Relative paths resolve against the
//! manifest's directory. [`Manifest::load`] parses and validates in one step.
//!
//! ```toml
//! [run]
//! out = "runs/smollm2-tpo"
//! seed = 1234
//! iterations = 2
//!
//! [model]
//! path = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
//!
//! [data]
//! train = "data/train.jsonl"
//!
//! [plugins.judge]
//! wasm = "target/plugins/judge-constraints.wasm"
//! limits = { memory_mib = 128, fuel = 500_000_000, timeout_ms = 2000 }
//!
//! # Optional: each iteration's model against the seed model after its DPO phase.
//! [eval]
//! data = "data/verifiable/eval.jsonl"   # JSONL or Parquet
//! limit = 50                            # default: every instruction
//! judge = "target/plugins/judge-constraints.wasm"  # win rate; default none (IFEval only)
//! judge_config = { mode = "loose" }     # the judge's configuration
//! judge_kind = "pointwise"              # or "pairwise"
//! constraints_judge = "target/plugins/judge-constraints.wasm"  # IFEval checker
//! ifeval = true
//! max_new_tokens = 256                  # default: sample.max_new_tokens
//! temperature = 0.0                     # 0 is greedy (the default)
//! top_p = 1.0
//! parse_retries = 2
//! resamples = 1000                      # bootstrap resamples
//! ```

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

mod experiment;
mod models;
pub use experiment::{Arm, ExperimentManifest};
use models::RawNamedModel;
pub use models::{
    DEFAULT_SERVED_CONCURRENCY, DEFAULT_SERVED_RETRIES, DEFAULT_SERVED_TIMEOUT_MS, LocalModel,
    NamedModel, ServedModel, load_models,
};

/// Why a manifest could not be used. Every variant names the file; parse errors also the key path
/// and the position.
#[derive(thiserror::Error, Debug)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read manifest {file}")]
    Read {
        /// The manifest file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is malformed, or a key is unknown or has the wrong type.
    #[error("{file}:{line}:{column}: {key}: {message}", key = if key.is_empty() { "(top level)" } else { key.as_str() })]
    Parse {
        /// The manifest file.
        file: PathBuf,
        /// Dotted key path (`sample.top_p`), empty at the top level.
        key: String,
        /// 1-based line of the offending text (0 when unknown).
        line: usize,
        /// 1-based column of the offending text (0 when unknown).
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A value parsed but is not allowed (`sample.k = 1`, say).
    #[error("{file}: {key}: {message}")]
    Invalid {
        /// The manifest file.
        file: PathBuf,
        /// Dotted key path of the value.
        key: String,
        /// What is wrong and what is allowed.
        message: String,
    },
}

/// A parsed, validated manifest with every path resolved against the manifest's directory.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The manifest file itself.
    pub file: PathBuf,
    /// `[run]`.
    pub run: RunSection,
    /// `[model]`: the policy model, when the manifest names one.
    pub model: Option<ModelSection>,
    /// `[data]`, when the manifest names data.
    pub data: Option<DataSection>,
    /// `[sample]`.
    pub sample: SampleSection,
    /// `[dpo]`.
    pub dpo: DpoSection,
    /// `[plugins.*]`.
    pub plugins: Plugins,
    /// `[models.NAME]`: models that granted plugins may call by name.
    pub models: BTreeMap<String, NamedModel>,
    /// `[eval]`: when present, `ponder train` evaluates each iteration's model against the seed
    /// model after the iteration's DPO phase.
    pub eval: Option<EvalSection>,
}

/// `[eval]`: the evaluation `ponder train` runs after each iteration (as `ponder eval` does):
/// the iteration's model against the seed model (the manifest's `[model]`), both through the
/// manifest's template plugin with the `[sample]` table's `prefill`, `thought_budget` and
/// `batch_prompts`.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalSection {
    /// Held-out instructions, JSONL or Parquet (resolved).
    pub data: PathBuf,
    /// Evaluate the first `limit` instructions only (none: all of them).
    pub limit: Option<u32>,
    /// The judge plugin of the win rate against the seed model (resolved); none: no win rate,
    /// IFEval accuracies only.
    pub judge: Option<PathBuf>,
    /// The win-rate judge's configuration, as JSON.
    pub judge_config: serde_json::Value,
    /// How the win-rate judge scores.
    pub judge_kind: EvalJudgeKind,
    /// Capabilities granted the win-rate judge (`["models"]`: an LLM judge calling the
    /// manifest's `[models]`).
    pub judge_grants: Vec<Grant>,
    /// The IFEval constraint checker (resolved); none: `target/plugins/judge-constraints.wasm`
    /// under the working directory when it exists.
    pub constraints_judge: Option<PathBuf>,
    /// Measure IFEval's accuracies on the instructions that list constraints.
    pub ifeval: bool,
    /// Most new tokens per output (none: `sample.max_new_tokens`).
    pub max_new_tokens: Option<u32>,
    /// Instructions generated together in one batch (none: `sample.batch_prompts`). One output
    /// per instruction, so larger batches than training's K-row ones keep the engine busy.
    pub batch_prompts: Option<u32>,
    /// Sampling temperature; 0 is greedy.
    pub temperature: f32,
    /// Nucleus threshold in (0, 1].
    pub top_p: f32,
    /// How many times an output that does not parse is sampled again (temperature > 0 only).
    pub parse_retries: u32,
    /// Bootstrap resamples of the 95% intervals.
    pub resamples: u32,
}

/// `eval.judge_kind`: how the win-rate judge scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EvalJudgeKind {
    /// Each response alone (`judge-constraints`, `judge-llm-pointwise`).
    Pointwise,
    /// Responses against each other, asked in both orders (`judge-llm-pairwise`).
    Pairwise,
}

/// `[eval]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEval {
    data: PathBuf,
    limit: Option<u32>,
    judge: Option<PathBuf>,
    judge_config: Option<toml::Table>,
    judge_kind: Option<EvalJudgeKind>,
    judge_grant: Option<Vec<Grant>>,
    constraints_judge: Option<PathBuf>,
    ifeval: Option<bool>,
    max_new_tokens: Option<u32>,
    batch_prompts: Option<u32>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    parse_retries: Option<u32>,
    resamples: Option<u32>,
}

/// `[run]`: where a run writes and how it repeats.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunSection {
    /// The run directory (resolved).
    pub out: PathBuf,
    /// Seed of every random stream of the run.
    pub seed: u64,
    /// Number of TPO iterations (the paper: up to 4).
    pub iterations: u32,
    /// What happens to an instruction whose judging (or an output whose parsing) fails in a
    /// plugin: skip it and count it, or stop the run.
    pub on_row_failure: RowFailurePolicy,
}

impl Default for RunSection {
    fn default() -> Self {
        Self {
            out: PathBuf::from("runs/ponder"),
            seed: 1234,
            iterations: 1,
            on_row_failure: RowFailurePolicy::Skip,
        }
    }
}

/// `run.on_row_failure`: what a plugin failure on one row does to a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RowFailurePolicy {
    /// Leave the row out (it makes no pair), count it in the metrics, go on.
    Skip,
    /// Stop the run with the plugin's error.
    Stop,
}

/// `[model]`: the policy model.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// A Hugging Face directory or a GGUF file (resolved).
    pub path: PathBuf,
    /// `cpu`, `wgpu`, `cuda` or `cuda:N`.
    #[serde(default = "default_device")]
    pub device: String,
}

/// `[data]`: the instruction data.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// Training instructions, JSONL (resolved).
    pub train: PathBuf,
    /// Evaluation instructions, JSONL (resolved).
    #[serde(default)]
    pub eval: Option<PathBuf>,
    /// Fresh instructions per iteration (data is not reused across iterations).
    #[serde(default = "default_per_iteration")]
    pub per_iteration: u32,
    /// Validation instructions (resolved): when set, each iteration's model is the DPO epoch
    /// with the best mean judge score on them (the paper's rule); else the last epoch.
    #[serde(default)]
    pub validation: Option<PathBuf>,
    /// How many validation instructions (the first ones of the file) are sampled per epoch.
    #[serde(default = "default_validation_size")]
    pub validation_size: u32,
    /// Shuffle the training instructions with the run seed before slicing them into
    /// iterations (off: file order).
    #[serde(default = "default_true")]
    pub shuffle: bool,
}

/// `[sample]`: how the policy samples candidates. Defaults are the paper's.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SampleSection {
    /// Candidates per instruction (K); at least 2, since a pair needs two.
    pub k: u32,
    /// Softmax temperature; 0 is greedy.
    pub temperature: f32,
    /// Nucleus threshold in (0, 1].
    pub top_p: f32,
    /// Upper bound on generated tokens per candidate.
    pub max_new_tokens: u32,
    /// Start the assistant turn with the template's assistant prefix (its thought header), so
    /// the model continues a thought instead of answering directly. Off in the paper.
    pub prefill: bool,
    /// Most thought tokens before the host forces the template's response separator (also
    /// forced when the model ends its turn inside the thought); 0 = never forced (the paper).
    pub thought_budget: u32,
    /// Instructions sampled together in one batch (K rows each) and judged in one judge call;
    /// also the unit a killed sampling or judging phase resumes from.
    pub batch_prompts: u32,
    /// A served model (`[models.NAME]` with `url`) that samples instead of the host: ponder
    /// applies the chat and thought templates and sends token ids, so the engine sees exactly
    /// the prompt the host would sample from. Absent: the host samples.
    pub engine: Option<String>,
    /// How the engine is given M_t before iteration t ≥ 2 samples (needed with `engine` when
    /// `run.iterations` > 1).
    pub reload: Option<EngineReload>,
}

/// `[sample.reload]`: how the sampling engine is made to serve a new policy: a `command`, or
/// (`lora = true`) the iteration's LoRA adapter loaded through the engine's runtime adapter API.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineReload {
    /// The program and its arguments, run in the manifest's directory with `PONDER_MODEL` (the
    /// new policy: a Hugging Face directory), `PONDER_SEED_MODEL` (`[model] path`),
    /// `PONDER_ITERATION` and `PONDER_ENGINE_URL` set; it must exit 0 once the engine serves
    /// the new model (or is restarting with it). Empty with `lora`.
    #[serde(default)]
    pub command: Vec<String>,
    /// Load the new policy's LoRA adapter (`[dpo.lora]` trains one, relative to the seed model
    /// the engine serves) under a new name through vLLM's runtime adapter API
    /// (`POST {url}/load_lora_adapter`), and sample with that name.
    #[serde(default)]
    pub lora: bool,
    /// How long ponder waits, after the command exits, for the engine to answer
    /// `GET {url}/models`.
    #[serde(default = "default_ready_timeout_s")]
    pub ready_timeout_s: u64,
}

fn default_ready_timeout_s() -> u64 {
    600
}

impl Default for SampleSection {
    fn default() -> Self {
        Self {
            k: 8,
            temperature: 0.8,
            top_p: 0.95,
            max_new_tokens: 384,
            prefill: false,
            thought_budget: 0,
            batch_prompts: 8,
            engine: None,
            reload: None,
        }
    }
}

/// The DPO loss variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DpoLoss {
    /// The original DPO loss, −log σ(β·margin).
    Sigmoid,
    /// IPO: (margin − 1/(2β))².
    Ipo,
    /// Hinge: max(0, 1 − β·margin).
    Hinge,
    /// Robust DPO (label smoothing).
    Robust,
}

/// `[dpo]`: the optimiser settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DpoSection {
    /// DPO temperature β, > 0.
    pub beta: f64,
    /// Loss variant.
    pub loss: DpoLoss,
    /// Weight of the NLL term on chosen completions (IRPO); 0 is plain DPO.
    pub nll: f64,
    /// Learning rate, > 0.
    pub lr: f64,
    /// Epochs over an iteration's pairs, ≥ 1.
    pub epochs: u32,
    /// Pairs per optimiser step, ≥ 1.
    pub batch_size: u32,
    /// Save a resumable DPO checkpoint every this many optimiser steps (always at epoch ends);
    /// a killed DPO phase resumes from the newest one.
    pub save_every: Option<u32>,
    /// Train LoRA adapters on the frozen seed model instead of every weight.
    pub lora: Option<DpoLora>,
}

/// `[dpo.lora]`: LoRA adapters instead of a full fine-tune. One adapter is carried across the
/// iterations over the frozen seed model (iteration t continues iteration t − 1's), so each
/// iteration's model is the seed plus one adapter: the form a served engine loads at run time.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpoLora {
    /// Rank of each adapter, ≥ 1.
    pub rank: u32,
    /// Scaling numerator: the update is multiplied by `alpha / rank`; default 2 × rank.
    pub alpha: Option<f64>,
    /// The projections that get an adapter in every layer (Hugging Face module names:
    /// `q_proj`, `k_proj`, `v_proj`, `o_proj`, `gate_proj`, `up_proj`, `down_proj`); default
    /// all seven.
    pub targets: Option<Vec<String>>,
}

impl Default for DpoSection {
    fn default() -> Self {
        Self {
            beta: 0.1,
            loss: DpoLoss::Sigmoid,
            nll: 0.0,
            lr: 5e-7,
            epochs: 1,
            batch_size: 4,
            save_every: None,
            lora: None,
        }
    }
}

/// The three plugin roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// A thought template (world `thought-template`, interface `template`).
    Template,
    /// A judge (world `judge`, interface `judging`).
    Judge,
    /// A pair selector (world `pair-selector`, interface `selector`).
    Selector,
}

impl Role {
    /// Every role, in pipeline order.
    pub const ALL: [Role; 3] = [Role::Template, Role::Judge, Role::Selector];

    /// The manifest key (`template`, `judge`, `selector`), also the CLI spelling.
    pub fn key(self) -> &'static str {
        match self {
            Role::Template => "template",
            Role::Judge => "judge",
            Role::Selector => "selector",
        }
    }

    /// Parses the manifest/CLI spelling.
    pub fn from_key(key: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.key() == key)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// A capability a plugin may be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Grant {
    /// The `models` host interface: generate, choice-logprobs and reward on `[models.NAME]`.
    Models,
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Grant::Models => f.write_str("models"),
        }
    }
}

/// Per-call resource limits of a sandboxed plugin: the sandbox (memory, fuel, the plugin's own
/// time) and, for plugins granted `models`, what one call may spend on host model work. A model
/// request over a cap is refused with `invalid-request` naming the limit; a call over its wall
/// time or token budget is interrupted, generation included, and fails naming the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Linear memory cap of the instance, in MiB (1 ..= 4096).
    pub memory_mib: u32,
    /// Fuel (about one unit per WebAssembly instruction) available to each call.
    pub fuel: u64,
    /// Time each call may spend running the plugin's own code, in milliseconds; time inside
    /// host model calls does not count here (see `call_timeout_ms`).
    pub timeout_ms: u64,
    /// Wall-clock time of one call in milliseconds, time inside host model calls included.
    pub call_timeout_ms: u64,
    /// Model requests (generate, choice and reward requests together) one call may send.
    pub model_requests: u64,
    /// Tokens the host may generate for one call, over all its `generate` requests.
    pub generated_tokens: u64,
    /// Most requests in one `models` call.
    pub model_batch: u32,
    /// Most choices in one `choice-logprobs` request.
    pub choices: u32,
    /// Largest `max-new-tokens` of a `generate` request (the model's context bounds it too).
    pub max_new_tokens: u32,
}

impl Limits {
    /// Checks every limit is in range.
    ///
    /// # Errors
    /// The key (within `limits`) of the first value out of range, and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(1..=4096).contains(&self.memory_mib) {
            return Err((
                "memory_mib",
                format!("must be in 1..=4096, got {}", self.memory_mib),
            ));
        }
        let at_least_one = [
            ("fuel", self.fuel),
            ("timeout_ms", self.timeout_ms),
            ("call_timeout_ms", self.call_timeout_ms),
            ("model_requests", self.model_requests),
            ("generated_tokens", self.generated_tokens),
            ("model_batch", u64::from(self.model_batch)),
            ("choices", u64::from(self.choices)),
            ("max_new_tokens", u64::from(self.max_new_tokens)),
        ];
        match at_least_one.into_iter().find(|(_, value)| *value == 0) {
            Some((key, _)) => Err((key, "must be at least 1".to_string())),
            None => Ok(()),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_mib: 256,
            fuel: 2_000_000_000,
            timeout_ms: 10_000,
            call_timeout_ms: 1_800_000,
            model_requests: 65_536,
            generated_tokens: 1_048_576,
            model_batch: 1024,
            choices: 1024,
            max_new_tokens: 4096,
        }
    }
}

/// Where a plugin's code comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginSource {
    /// A WebAssembly component, run in the sandbox (resolved path).
    Wasm(PathBuf),
    /// A native shared library, run with full process rights (resolved path). Only produced when
    /// the manifest says `trust = "native"`.
    Native(PathBuf),
}

impl PluginSource {
    /// The file of the plugin.
    pub fn path(&self) -> &Path {
        match self {
            PluginSource::Wasm(path) | PluginSource::Native(path) => path,
        }
    }
}

/// One `[plugins.ROLE]` table, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginSpec {
    /// The role the table is for.
    pub role: Role,
    /// The code.
    pub source: PluginSource,
    /// Granted capabilities (deduplicated, sorted).
    pub grants: Vec<Grant>,
    /// The `config` table as JSON (an empty object when absent): what `configure` receives.
    pub config: serde_json::Value,
    /// Sandbox limits (defaults when absent; not applicable to native plugins).
    pub limits: Limits,
}

impl PluginSpec {
    /// A sandboxed WebAssembly plugin with default limits, no grants and an empty config.
    pub fn wasm(role: Role, path: impl Into<PathBuf>) -> Self {
        Self {
            role,
            source: PluginSource::Wasm(path.into()),
            grants: Vec::new(),
            config: serde_json::Value::Object(serde_json::Map::new()),
            limits: Limits::default(),
        }
    }

    /// Whether the capability was granted.
    pub fn is_granted(&self, grant: Grant) -> bool {
        self.grants.contains(&grant)
    }

    /// A short name for messages: the file stem of the plugin's code.
    pub fn name(&self) -> String {
        let path = self.source.path();
        path.file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string())
    }
}

/// `[plugins]`: one optional table per role.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plugins {
    /// `[plugins.template]`.
    pub template: Option<PluginSpec>,
    /// `[plugins.judge]`.
    pub judge: Option<PluginSpec>,
    /// `[plugins.selector]`.
    pub selector: Option<PluginSpec>,
}

impl Plugins {
    /// The table of one role.
    pub fn get(&self, role: Role) -> Option<&PluginSpec> {
        match role {
            Role::Template => self.template.as_ref(),
            Role::Judge => self.judge.as_ref(),
            Role::Selector => self.selector.as_ref(),
        }
    }

    /// Every present table, in pipeline order.
    pub fn iter(&self) -> impl Iterator<Item = &PluginSpec> {
        Role::ALL.into_iter().filter_map(|role| self.get(role))
    }
}

fn default_device() -> String {
    "cpu".to_string()
}

fn default_per_iteration() -> u32 {
    64
}

fn default_validation_size() -> u32 {
    32
}

fn default_true() -> bool {
    true
}

/// The file as written, before validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    #[serde(default)]
    run: RunSection,
    #[serde(default)]
    model: Option<ModelSection>,
    #[serde(default)]
    data: Option<DataSection>,
    #[serde(default)]
    sample: SampleSection,
    #[serde(default)]
    dpo: DpoSection,
    #[serde(default)]
    plugins: RawPlugins,
    #[serde(default)]
    models: BTreeMap<String, RawNamedModel>,
    #[serde(default)]
    eval: Option<RawEval>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlugins {
    template: Option<RawPlugin>,
    judge: Option<RawPlugin>,
    selector: Option<RawPlugin>,
}

/// How far a plugin is trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Trust {
    /// The default: WebAssembly in the sandbox.
    Sandboxed,
    /// Native code with full process rights.
    Native,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlugin {
    wasm: Option<PathBuf>,
    native: Option<PathBuf>,
    trust: Option<Trust>,
    #[serde(default)]
    grant: Vec<Grant>,
    #[serde(default)]
    config: Option<toml::Table>,
    limits: Option<Limits>,
}

impl Manifest {
    /// Reads, parses and validates a manifest file.
    pub fn load(file: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(file).map_err(|source| ManifestError::Read {
            file: file.to_path_buf(),
            source,
        })?;
        Manifest::parse(&text, file)
    }

    /// Parses and validates manifest text; `file` names it in errors and its directory anchors
    /// relative paths.
    pub fn parse(text: &str, file: &Path) -> Result<Manifest, ManifestError> {
        let raw: RawManifest = deserialize(text, file)?;
        let base = file.parent().unwrap_or(Path::new("")).to_path_buf();
        Validator { file, base: &base }.manifest(raw)
    }
}

/// `text` (TOML) as `T`, errors naming `file`, the key path and the position.
fn deserialize<T: serde::de::DeserializeOwned>(
    text: &str,
    file: &Path,
) -> Result<T, ManifestError> {
    let deserializer = toml::Deserializer::parse(text)
        .map_err(|error| parse_error(file, text, String::new(), error.span(), error.message()))?;
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let key = error.path().to_string();
        let key = if key == "." { String::new() } else { key };
        let inner = error.into_inner();
        parse_error(file, text, key, inner.span(), inner.message())
    })
}

fn parse_error(
    file: &Path,
    text: &str,
    key: String,
    span: Option<std::ops::Range<usize>>,
    message: &str,
) -> ManifestError {
    let (line, column) = span
        .map(|span| line_and_column(text, span.start))
        .unwrap_or((0, 0));
    ManifestError::Parse {
        file: file.to_path_buf(),
        key,
        line,
        column,
        message: message.trim().to_string(),
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|at| at + 1).unwrap_or(0);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

struct Validator<'a> {
    file: &'a Path,
    base: &'a Path,
}

impl Validator<'_> {
    fn invalid(&self, key: &str, message: impl Into<String>) -> ManifestError {
        ManifestError::Invalid {
            file: self.file.to_path_buf(),
            key: key.to_string(),
            message: message.into(),
        }
    }

    fn check(&self, ok: bool, key: &str, message: &str) -> Result<(), ManifestError> {
        if ok {
            Ok(())
        } else {
            Err(self.invalid(key, message))
        }
    }

    fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base.join(path)
        }
    }

    fn device(&self, key: &str, device: &str) -> Result<(), ManifestError> {
        let valid = matches!(device, "cpu" | "wgpu" | "cuda")
            || device
                .strip_prefix("cuda:")
                .is_some_and(|index| !index.is_empty() && index.parse::<u32>().is_ok());
        self.check(
            valid,
            key,
            &format!("unknown device `{device}`; expected cpu, wgpu, cuda or cuda:N"),
        )
    }

    fn manifest(&self, raw: RawManifest) -> Result<Manifest, ManifestError> {
        let mut run = raw.run;
        self.check(run.iterations >= 1, "run.iterations", "must be at least 1")?;
        run.out = self.resolve(&run.out);

        let model = match raw.model {
            Some(mut model) => {
                self.device("model.device", &model.device)?;
                model.path = self.resolve(&model.path);
                Some(model)
            }
            None => None,
        };

        let data = match raw.data {
            Some(mut data) => {
                self.check(
                    data.per_iteration >= 1,
                    "data.per_iteration",
                    "must be at least 1",
                )?;
                self.check(
                    data.validation_size >= 1,
                    "data.validation_size",
                    "must be at least 1",
                )?;
                data.train = self.resolve(&data.train);
                data.eval = data.eval.map(|eval| self.resolve(&eval));
                data.validation = data.validation.map(|path| self.resolve(&path));
                Some(data)
            }
            None => None,
        };

        let sample = raw.sample;
        self.check(
            sample.k >= 2,
            "sample.k",
            &format!(
                "must be at least 2 (a preference pair needs two candidates), got {}",
                sample.k
            ),
        )?;
        self.check(
            sample.temperature.is_finite() && sample.temperature >= 0.0,
            "sample.temperature",
            &format!(
                "must be finite and ≥ 0 (0 is greedy), got {}",
                sample.temperature
            ),
        )?;
        self.check(
            sample.top_p > 0.0 && sample.top_p <= 1.0,
            "sample.top_p",
            &format!("must be in (0, 1], got {}", sample.top_p),
        )?;
        self.check(
            sample.max_new_tokens >= 1,
            "sample.max_new_tokens",
            "must be at least 1",
        )?;
        self.check(
            sample.thought_budget < sample.max_new_tokens,
            "sample.thought_budget",
            &format!(
                "must be below sample.max_new_tokens ({}) so the response has room, got {}",
                sample.max_new_tokens, sample.thought_budget
            ),
        )?;
        self.check(
            sample.batch_prompts >= 1,
            "sample.batch_prompts",
            "must be at least 1",
        )?;

        let dpo = raw.dpo;
        self.check(
            dpo.beta.is_finite() && dpo.beta > 0.0,
            "dpo.beta",
            &format!("must be finite and > 0, got {}", dpo.beta),
        )?;
        self.check(
            dpo.lr.is_finite() && dpo.lr > 0.0,
            "dpo.lr",
            &format!("must be finite and > 0, got {}", dpo.lr),
        )?;
        self.check(
            dpo.nll.is_finite() && dpo.nll >= 0.0,
            "dpo.nll",
            &format!("must be finite and ≥ 0, got {}", dpo.nll),
        )?;
        self.check(dpo.epochs >= 1, "dpo.epochs", "must be at least 1")?;
        self.check(dpo.batch_size >= 1, "dpo.batch_size", "must be at least 1")?;
        self.check(
            dpo.save_every != Some(0),
            "dpo.save_every",
            "must be at least 1 (leave it out to save at epoch ends only)",
        )?;
        if let Some(lora) = &dpo.lora {
            self.check(lora.rank >= 1, "dpo.lora.rank", "must be at least 1")?;
            if let Some(alpha) = lora.alpha {
                self.check(
                    alpha.is_finite() && alpha > 0.0,
                    "dpo.lora.alpha",
                    &format!("must be finite and > 0, got {alpha}"),
                )?;
            }
            self.check(
                lora.targets.as_ref().is_none_or(|t| !t.is_empty()),
                "dpo.lora.targets",
                "must name at least one projection (leave it out for all seven)",
            )?;
        }

        let models = self.models(raw.models)?;
        self.engine(&sample, &models, run.iterations, dpo.lora.is_some())?;

        let eval = match raw.eval {
            Some(eval) => Some(self.eval(eval, &sample)?),
            None => None,
        };

        let plugins = Plugins {
            template: self.plugin(Role::Template, raw.plugins.template)?,
            judge: self.plugin(Role::Judge, raw.plugins.judge)?,
            selector: self.plugin(Role::Selector, raw.plugins.selector)?,
        };

        Ok(Manifest {
            file: self.file.to_path_buf(),
            run,
            model,
            data,
            sample,
            dpo,
            plugins,
            models,
            eval,
        })
    }

    /// `sample.engine` names a served model; `sample.reload` comes with it, and is there when
    /// later iterations need it.
    fn engine(
        &self,
        sample: &SampleSection,
        models: &BTreeMap<String, NamedModel>,
        iterations: u32,
        lora: bool,
    ) -> Result<(), ManifestError> {
        let Some(name) = &sample.engine else {
            return self.check(
                sample.reload.is_none(),
                "sample.reload",
                "reloads the sampling engine, but no `sample.engine` is set",
            );
        };
        match models.get(name) {
            Some(NamedModel::Served(_)) => {}
            Some(NamedModel::Local(_)) => {
                return Err(self.invalid(
                    "sample.engine",
                    format!(
                        "`[models.{name}]` is a local model (`path`); the sampling engine is a \
                         served one (`url` + `model`); leave `engine` out to sample on the host"
                    ),
                ));
            }
            None => {
                return Err(self.invalid(
                    "sample.engine",
                    format!("no `[models.{name}]` table (with `url` and `model`) names the engine"),
                ));
            }
        }
        match &sample.reload {
            Some(reload) if reload.lora => {
                self.check(
                    reload.command.is_empty(),
                    "sample.reload.command",
                    "comes without `lora = true`: the adapter is loaded by ponder, or the \
                     command reloads the engine, not both",
                )?;
                self.check(
                    lora,
                    "sample.reload.lora",
                    "loads each iteration's LoRA adapter, but `[dpo.lora]` is not set, so DPO \
                     trains every weight; add `[dpo.lora]` (rank, ...) or reload with a \
                     `command`",
                )?;
                self.check(
                    reload.ready_timeout_s >= 1,
                    "sample.reload.ready_timeout_s",
                    "must be at least 1",
                )
            }
            Some(reload) => {
                self.check(
                    !reload.command.is_empty() && !reload.command[0].is_empty(),
                    "sample.reload.command",
                    "must name a program (`command = [\"path/to/reload.sh\"]`), or set \
                     `lora = true` to load LoRA adapters",
                )?;
                self.check(
                    reload.ready_timeout_s >= 1,
                    "sample.reload.ready_timeout_s",
                    "must be at least 1",
                )
            }
            None => self.check(
                iterations == 1,
                "sample.reload",
                &format!(
                    "iteration t samples from the model iteration t − 1 trained, so with \
                     run.iterations = {iterations} the engine `{name}` must be given each new \
                     model: add `[sample.reload]` with a `command` that makes it serve \
                     $PONDER_MODEL (see the README, \"Scaling out\")"
                ),
            ),
        }
    }

    fn eval(&self, raw: RawEval, sample: &SampleSection) -> Result<EvalSection, ManifestError> {
        self.check(
            raw.limit != Some(0),
            "eval.limit",
            "must be at least 1 (leave it out to evaluate every instruction)",
        )?;
        let temperature = raw.temperature.unwrap_or(0.0);
        self.check(
            temperature.is_finite() && temperature >= 0.0,
            "eval.temperature",
            &format!("must be finite and ≥ 0 (0 is greedy), got {temperature}"),
        )?;
        let top_p = raw.top_p.unwrap_or(1.0);
        self.check(
            top_p > 0.0 && top_p <= 1.0,
            "eval.top_p",
            &format!("must be in (0, 1], got {top_p}"),
        )?;
        if let Some(max_new_tokens) = raw.max_new_tokens {
            self.check(
                max_new_tokens > sample.thought_budget,
                "eval.max_new_tokens",
                &format!(
                    "must be above sample.thought_budget ({}) so the response has room, got \
                     {max_new_tokens}",
                    sample.thought_budget
                ),
            )?;
        }
        self.check(
            raw.batch_prompts != Some(0),
            "eval.batch_prompts",
            "must be at least 1 (leave it out for sample.batch_prompts)",
        )?;
        let resamples = raw.resamples.unwrap_or(1000);
        self.check(resamples >= 1, "eval.resamples", "must be at least 1")?;
        self.check(
            raw.judge.is_some()
                || (raw.judge_config.is_none()
                    && raw.judge_kind.is_none()
                    && raw.judge_grant.is_none()),
            "eval.judge",
            "eval.judge_config, eval.judge_kind and eval.judge_grant configure the win-rate \
             judge: name it with `judge = \"path/to/judge.wasm\"`",
        )?;
        let mut judge_grants = raw.judge_grant.unwrap_or_default();
        judge_grants.sort();
        judge_grants.dedup();
        let ifeval = raw.ifeval.unwrap_or(true);
        self.check(
            ifeval || raw.constraints_judge.is_none(),
            "eval.constraints_judge",
            "is the IFEval checker, but eval.ifeval is false",
        )?;
        let judge_config = match raw.judge_config {
            Some(table) => serde_json::to_value(table)
                .map_err(|error| self.invalid("eval.judge_config", error.to_string()))?,
            None => serde_json::Value::Object(serde_json::Map::new()),
        };
        Ok(EvalSection {
            data: self.resolve(&raw.data),
            limit: raw.limit,
            judge: raw.judge.map(|path| self.resolve(&path)),
            judge_config,
            judge_kind: raw.judge_kind.unwrap_or(EvalJudgeKind::Pointwise),
            judge_grants,
            constraints_judge: raw.constraints_judge.map(|path| self.resolve(&path)),
            ifeval,
            max_new_tokens: raw.max_new_tokens,
            batch_prompts: raw.batch_prompts,
            temperature,
            top_p,
            parse_retries: raw.parse_retries.unwrap_or(2),
            resamples,
        })
    }

    fn plugin(
        &self,
        role: Role,
        raw: Option<RawPlugin>,
    ) -> Result<Option<PluginSpec>, ManifestError> {
        let Some(raw) = raw else { return Ok(None) };
        let table = format!("plugins.{role}");
        let trust = raw.trust.unwrap_or(Trust::Sandboxed);
        let source = match (raw.wasm, raw.native) {
            (Some(_), Some(_)) => {
                return Err(self.invalid(&table, "set either `wasm` or `native`, not both"));
            }
            (None, None) => {
                return Err(self.invalid(
                    &table,
                    "missing the plugin: set `wasm = \"path/to/plugin.wasm\"` (or `native` with `trust = \"native\"`)",
                ));
            }
            (Some(wasm), None) => {
                self.check(
                    trust == Trust::Sandboxed,
                    &format!("{table}.trust"),
                    "`trust = \"native\"` applies to `native` libraries only; a `wasm` plugin always runs sandboxed",
                )?;
                PluginSource::Wasm(self.resolve(&wasm))
            }
            (None, Some(native)) => {
                self.check(
                    trust == Trust::Native,
                    &format!("{table}.native"),
                    "a native library runs with full process rights (no sandbox, no limits); \
                     load it only by also writing `trust = \"native\"` in this table",
                )?;
                self.check(
                    raw.limits.is_none(),
                    &format!("{table}.limits"),
                    "limits apply only to sandboxed `wasm` plugins; native code cannot be limited",
                )?;
                self.check(
                    raw.grant.is_empty(),
                    &format!("{table}.grant"),
                    "native plugins cannot be granted capabilities (the native ABI has no host imports)",
                )?;
                PluginSource::Native(self.resolve(&native))
            }
        };
        let limits = raw.limits.unwrap_or_default();
        if let Err((key, message)) = limits.validate() {
            return Err(self.invalid(&format!("{table}.limits.{key}"), message));
        }
        let mut grants = raw.grant;
        grants.sort();
        grants.dedup();
        let config = match raw.config {
            Some(table_value) => serde_json::to_value(table_value)
                .map_err(|error| self.invalid(&format!("{table}.config"), error.to_string()))?,
            None => serde_json::Value::Object(serde_json::Map::new()),
        };
        Ok(Some(PluginSpec {
            role,
            source,
            grants,
            config,
            limits,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(text, Path::new("/runs/example/ponder.toml"))
    }

    #[test]
    fn full_manifest_parses_and_resolves_paths() {
        let manifest = parse(
            r#"
[run]
out = "runs/x"
seed = 7
iterations = 2

[model]
path = "models/m.gguf"
device = "cuda:0"

[data]
train = "data/train.jsonl"
eval = "/abs/eval.jsonl"
per_iteration = 16

[sample]
k = 4
temperature = 0.7
top_p = 0.9
max_new_tokens = 64

[dpo]
beta = 0.2
loss = "ipo"
nll = 1.0
lr = 1e-6
epochs = 2

[plugins.template]
wasm = "plugins/thought-generic.wasm"

[plugins.judge]
wasm = "plugins/judge.wasm"
grant = ["models", "models"]
config = { model = "judge", nested = { a = [1, 2] } }
limits = { memory_mib = 64, timeout_ms = 500 }

[plugins.selector]
native = "lib/libselect.so"
trust = "native"
config = { rho = 0.3 }

[models.judge]
path = "models/judge"
"#,
        )
        .expect("valid manifest");
        assert_eq!(manifest.run.out, PathBuf::from("/runs/example/runs/x"));
        assert_eq!(manifest.run.seed, 7);
        let model = manifest.model.as_ref().expect("model");
        assert_eq!(model.path, PathBuf::from("/runs/example/models/m.gguf"));
        let data = manifest.data.as_ref().expect("data");
        assert_eq!(data.eval, Some(PathBuf::from("/abs/eval.jsonl")));
        assert_eq!(manifest.sample.k, 4);
        assert_eq!(manifest.dpo.loss, DpoLoss::Ipo);
        let judge = manifest.plugins.judge.as_ref().expect("judge");
        assert_eq!(judge.grants, vec![Grant::Models]);
        assert_eq!(judge.config["nested"]["a"][1], 2);
        assert_eq!(judge.limits.memory_mib, 64);
        assert_eq!(judge.limits.timeout_ms, 500);
        assert_eq!(judge.limits.fuel, Limits::default().fuel);
        assert_eq!(judge.name(), "judge");
        let selector = manifest.plugins.selector.as_ref().expect("selector");
        assert_eq!(
            selector.source,
            PluginSource::Native(PathBuf::from("/runs/example/lib/libselect.so"))
        );
        let template = manifest.plugins.template.as_ref().expect("template");
        assert_eq!(template.config, serde_json::json!({}));
        assert_eq!(
            manifest.models["judge"].path(),
            Some(Path::new("/runs/example/models/judge"))
        );
    }

    #[test]
    fn defaults_are_the_papers() {
        let manifest = parse("").expect("empty manifest is valid");
        assert_eq!(manifest.sample.k, 8);
        assert_eq!(manifest.sample.temperature, 0.8);
        assert_eq!(manifest.sample.top_p, 0.95);
        assert!(manifest.model.is_none());
        assert_eq!(manifest.plugins.iter().count(), 0);
    }

    #[test]
    fn eval_table_parses_with_defaults_and_resolves_paths() {
        let manifest = parse("[eval]\ndata = \"data/eval.jsonl\"\njudge = \"j.wasm\"\n")
            .expect("valid [eval]");
        let eval = manifest.eval.expect("[eval] present");
        assert_eq!(eval.data, PathBuf::from("/runs/example/data/eval.jsonl"));
        assert_eq!(eval.judge, Some(PathBuf::from("/runs/example/j.wasm")));
        assert_eq!(eval.judge_kind, EvalJudgeKind::Pointwise);
        assert_eq!(eval.limit, None);
        assert_eq!(eval.temperature, 0.0);
        assert_eq!(eval.top_p, 1.0);
        assert!(eval.ifeval);
        assert_eq!(eval.max_new_tokens, None);
        assert!(parse("").expect("empty").eval.is_none());
    }

    #[test]
    fn eval_table_is_strict_and_names_bad_keys() {
        let (key, _, _, message) = parse_failure("[eval]\ndata = \"e.jsonl\"\nlimt = 3\n");
        assert_eq!(key, "eval.limt");
        assert!(message.contains("unknown field `limt`"), "{message}");
        let invalid_key = |text: &str| match parse(text) {
            Err(ManifestError::Invalid { key, .. }) => key,
            other => panic!("expected an invalid value, got {other:?}"),
        };
        assert_eq!(
            invalid_key("[eval]\ndata = \"e.jsonl\"\nlimit = 0\n"),
            "eval.limit"
        );
        assert_eq!(
            invalid_key("[eval]\ndata = \"e.jsonl\"\ntop_p = 0.0\n"),
            "eval.top_p"
        );
        assert_eq!(
            invalid_key(
                "[sample]\nthought_budget = 8\n[eval]\ndata = \"e.jsonl\"\nmax_new_tokens = 8\n"
            ),
            "eval.max_new_tokens"
        );
        assert_eq!(
            invalid_key("[eval]\ndata = \"e.jsonl\"\njudge_kind = \"pairwise\"\n"),
            "eval.judge"
        );
    }

    fn parse_failure(text: &str) -> (String, usize, usize, String) {
        match parse(text) {
            Err(ManifestError::Parse {
                key,
                line,
                column,
                message,
                ..
            }) => (key, line, column, message),
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn eval_judge_grant_parses_and_needs_a_judge() {
        let manifest = parse(
            "[eval]\ndata = \"e.jsonl\"\njudge = \"j.wasm\"\njudge_grant = [\"models\", \"models\"]\n",
        )
        .expect("valid [eval]");
        assert_eq!(
            manifest.eval.expect("[eval]").judge_grants,
            vec![Grant::Models]
        );
        assert!(parse("").expect("empty").eval.is_none());
        let error = parse("[eval]\ndata = \"e.jsonl\"\njudge_grant = [\"models\"]\n")
            .expect_err("a grant without a judge");
        assert!(error.to_string().contains("eval.judge"), "{error}");
        let manifest = parse("[eval]\ndata = \"e.jsonl\"\nbatch_prompts = 32\n").expect("valid");
        assert_eq!(manifest.eval.expect("[eval]").batch_prompts, Some(32));
        let error = parse("[eval]\ndata = \"e.jsonl\"\nbatch_prompts = 0\n").expect_err("zero");
        assert!(error.to_string().contains("eval.batch_prompts"), "{error}");
    }

    #[test]
    fn unknown_key_names_path_file_and_position() {
        let (key, line, column, message) =
            parse_failure("[run]\nseed = 1\n\n[sample]\nk = 4\ntmperature = 0.5\n");
        assert_eq!(key, "sample.tmperature");
        assert_eq!((line, column), (6, 1));
        assert!(message.contains("unknown field `tmperature`"), "{message}");
        let error = parse("[sample]\ntmperature = 0.5\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("/runs/example/ponder.toml:2:1: sample.tmperature:"),
            "{error}"
        );
    }

    #[test]
    fn unknown_key_in_plugin_limits_is_named() {
        let (key, line, _, message) =
            parse_failure("[plugins.judge]\nwasm = \"j.wasm\"\nlimits = { memory_mb = 3 }\n");
        assert_eq!(key, "plugins.judge.limits.memory_mb");
        assert_eq!(line, 3);
        assert!(message.contains("memory_mb"), "{message}");
    }

    #[test]
    fn unknown_section_and_role_are_errors() {
        let (key, line, _, _) = parse_failure("[smaple]\nk = 2\n");
        assert_eq!(key, "smaple");
        assert_eq!(line, 1);
        let (key, _, _, _) = parse_failure("[plugins.juge]\nwasm = \"x.wasm\"\n");
        assert_eq!(key, "plugins.juge");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let (key, line, _, message) = parse_failure("[sample]\nk = \"eight\"\n");
        assert_eq!(key, "sample.k");
        assert_eq!(line, 2);
        assert!(message.contains("invalid type"), "{message}");
        let (key, _, _, _) = parse_failure("[dpo]\nloss = \"sigmod\"\n");
        assert_eq!(key, "dpo.loss");
        let (key, _, _, _) =
            parse_failure("[plugins.judge]\nwasm = \"j.wasm\"\ngrant = [\"network\"]\n");
        assert_eq!(key, "plugins.judge.grant[0]");
    }

    #[test]
    fn syntax_error_has_a_position() {
        let (_, line, column, _) = parse_failure("[run]\nseed = = 3\n");
        assert_eq!(line, 2);
        assert!(column > 0);
    }

    fn invalid_key(text: &str) -> String {
        match parse(text) {
            Err(ManifestError::Invalid { key, .. }) => key,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn validation_rejects_bad_values() {
        assert_eq!(invalid_key("[sample]\nk = 1\n"), "sample.k");
        assert_eq!(invalid_key("[sample]\ntop_p = 0.0\n"), "sample.top_p");
        assert_eq!(invalid_key("[sample]\ntop_p = 1.5\n"), "sample.top_p");
        assert_eq!(
            invalid_key("[sample]\ntemperature = -1.0\n"),
            "sample.temperature"
        );
        assert_eq!(invalid_key("[dpo]\nbeta = 0.0\n"), "dpo.beta");
        assert_eq!(invalid_key("[dpo]\nlr = nan\n"), "dpo.lr");
        assert_eq!(invalid_key("[run]\niterations = 0\n"), "run.iterations");
        assert_eq!(
            invalid_key("[model]\npath = \"m\"\ndevice = \"tpu\"\n"),
            "model.device"
        );
        assert_eq!(
            invalid_key("[plugins.judge]\nwasm = \"j.wasm\"\nlimits = { memory_mib = 0 }\n"),
            "plugins.judge.limits.memory_mib"
        );
        assert_eq!(
            invalid_key("[plugins.judge]\ngrant = []\n"),
            "plugins.judge"
        );
    }

    #[test]
    fn native_requires_explicit_trust() {
        assert_eq!(
            invalid_key("[plugins.selector]\nnative = \"libx.so\"\n"),
            "plugins.selector.native"
        );
        assert_eq!(
            invalid_key("[plugins.selector]\nnative = \"libx.so\"\ntrust = \"sandboxed\"\n"),
            "plugins.selector.native"
        );
        assert_eq!(
            invalid_key("[plugins.selector]\nwasm = \"x.wasm\"\ntrust = \"native\"\n"),
            "plugins.selector.trust"
        );
        assert_eq!(
            invalid_key(
                "[plugins.judge]\nnative = \"libx.so\"\ntrust = \"native\"\ngrant = [\"models\"]\n"
            ),
            "plugins.judge.grant"
        );
        assert_eq!(
            invalid_key(
                "[plugins.judge]\nnative = \"libx.so\"\ntrust = \"native\"\nlimits = { fuel = 5 }\n"
            ),
            "plugins.judge.limits"
        );
    }

    #[test]
    fn load_reports_missing_file() {
        let error = Manifest::load(Path::new("/nonexistent/ponder.toml")).unwrap_err();
        assert!(matches!(error, ManifestError::Read { .. }));
        assert!(error.to_string().contains("/nonexistent/ponder.toml"));
    }

    #[test]
    fn example_manifest_is_valid() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/smollm2-tpo.toml");
        let manifest = Manifest::load(&file).expect("examples/smollm2-tpo.toml is valid");
        assert!(manifest.plugins.template.is_some());
        assert!(manifest.plugins.judge.is_some());
        assert!(manifest.plugins.selector.is_some());
    }
    #[test]
    fn a_sampling_engine_is_a_served_model_reloaded_after_the_first_iteration() {
        let served = "[models.policy]\nurl = \"http://127.0.0.1:8090/v1\"\nmodel = \"p\"\n";
        let reload = "[sample.reload]\ncommand = [\"reload.sh\", \"--fast\"]\n";
        let manifest = parse(&format!(
            "[run]\niterations = 3\n[sample]\nengine = \"policy\"\n{reload}{served}"
        ))
        .expect("parse");
        assert_eq!(manifest.sample.engine.as_deref(), Some("policy"));
        let hook = manifest.sample.reload.expect("reload");
        assert_eq!(hook.command, ["reload.sh", "--fast"]);
        assert_eq!(hook.ready_timeout_s, 600);
        // One iteration samples only the seed model: no reload needed.
        parse(&format!("[sample]\nengine = \"policy\"\n{served}")).expect("one iteration");
        let cases = [
            // later iterations need the new model served
            (
                format!("[run]\niterations = 2\n[sample]\nengine = \"policy\"\n{served}"),
                "sample.reload",
            ),
            (
                format!("[sample]\nengine = \"nobody\"\n{served}"),
                "sample.engine",
            ),
            (
                "[sample]\nengine = \"local\"\n[models.local]\npath = \"m.gguf\"\n".to_string(),
                "sample.engine",
            ),
            (format!("[sample]\n{reload}"), "sample.reload"),
            (
                format!("[sample]\nengine = \"policy\"\n[sample.reload]\ncommand = []\n{served}"),
                "sample.reload.command",
            ),
            (
                format!(
                    "[sample]\nengine = \"policy\"\n[sample.reload]\ncommand = [\"r\"]\n\
                     ready_timeout_s = 0\n{served}"
                ),
                "sample.reload.ready_timeout_s",
            ),
        ];
        for (text, key) in cases {
            assert_eq!(invalid_key(&text), key, "{text}");
        }
    }

    #[test]
    fn lora_training_and_an_adapter_reload_go_together() {
        let served = "[models.policy]\nurl = \"http://127.0.0.1:8000/v1\"\nmodel = \"seed\"\n";
        let lora = "[dpo.lora]\nrank = 8\n";
        let manifest = parse(&format!(
            "[run]\niterations = 3\n[sample]\nengine = \"policy\"\n[sample.reload]\nlora = \
             true\n{lora}{served}"
        ))
        .expect("parse");
        let reload = manifest.sample.reload.expect("reload");
        assert!(reload.lora);
        assert!(reload.command.is_empty());
        let dpo_lora = manifest.dpo.lora.expect("dpo.lora");
        assert_eq!(dpo_lora.rank, 8);
        assert_eq!(dpo_lora.alpha, None);
        assert_eq!(dpo_lora.targets, None);
        let full =
            parse("[dpo.lora]\nrank = 4\nalpha = 16.0\ntargets = [\"q_proj\", \"v_proj\"]\n")
                .expect("parse");
        let full = full.dpo.lora.expect("dpo.lora");
        assert_eq!(full.alpha, Some(16.0));
        assert_eq!(
            full.targets.as_deref(),
            Some(&["q_proj".into(), "v_proj".into()][..])
        );
        let cases = [
            // an adapter reload needs adapters
            (
                format!(
                    "[run]\niterations = 2\n[sample]\nengine = \"policy\"\n[sample.reload]\nlora = true\n{served}"
                ),
                "sample.reload.lora",
            ),
            // one way to reload
            (
                format!(
                    "[sample]\nengine = \"policy\"\n[sample.reload]\nlora = true\ncommand = \
                     [\"r\"]\n{lora}{served}"
                ),
                "sample.reload.command",
            ),
            ("[dpo.lora]\nrank = 0\n".to_string(), "dpo.lora.rank"),
            (
                "[dpo.lora]\nrank = 2\nalpha = -1.0\n".to_string(),
                "dpo.lora.alpha",
            ),
            (
                "[dpo.lora]\nrank = 2\ntargets = []\n".to_string(),
                "dpo.lora.targets",
            ),
        ];
        for (text, key) in cases {
            assert_eq!(invalid_key(&text), key, "{text}");
        }
        assert!(
            parse("[dpo.lora]\nalpha = 2.0\n").is_err(),
            "rank is required"
        );
    }

    #[test]
    fn model_budgets_parse_and_zero_is_refused() {
        let manifest = parse(
            "[plugins.judge]\nwasm = \"j.wasm\"\n\
             grant = [\"models\"]\nlimits = { call_timeout_ms = 5000, generated_tokens = 100, \
             model_requests = 7, model_batch = 3, choices = 2, max_new_tokens = 64 }\n",
        )
        .expect("parse");
        let limits = manifest.plugins.judge.as_ref().expect("judge").limits;
        assert_eq!(limits.call_timeout_ms, 5000);
        assert_eq!(limits.generated_tokens, 100);
        assert_eq!(limits.model_requests, 7);
        assert_eq!(limits.model_batch, 3);
        assert_eq!(limits.choices, 2);
        assert_eq!(limits.max_new_tokens, 64);
        assert_eq!(limits.memory_mib, Limits::default().memory_mib);
        for key in [
            "call_timeout_ms",
            "generated_tokens",
            "model_requests",
            "model_batch",
            "choices",
            "max_new_tokens",
        ] {
            assert_eq!(
                invalid_key(&format!(
                    "[plugins.judge]\nwasm = \"j.wasm\"\nlimits = {{ {key} = 0 }}\n"
                )),
                format!("plugins.judge.limits.{key}")
            );
        }
    }
}
