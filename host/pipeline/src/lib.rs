//! ponder's Thought Preference Optimization loop (Wu et al., arXiv 2410.10630): the one crate
//! that knows the model core (`ponder-model`), the DPO trainer (`ponder-trainer`) and the plugin
//! runtime (`ponder-plugin-runtime`) together.
//!
//! One iteration t, from model M_t, on this iteration's fresh slice of the training
//! instructions (data is never reused across iterations):
//!
//! 1. **sample** — the template plugin renders the thought prompt around each instruction; the
//!    model's chat template is applied once; K outputs per instruction are sampled, all prompts of
//!    a chunk in one batch ([`phases::sample`]);
//! 2. **judge** — the template plugin splits each output into thought and response; the judge
//!    plugin scores the responses only, thoughts withheld ([`phases::judge`]);
//! 3. **select** — the selector plugin turns each instruction's scored candidates into
//!    preference pairs of full outputs, thought included; parse failures may be rejected samples
//!    ([`phases::select`]);
//! 4. **dpo** — reference log-probs of M_t once, DPO from M_t, and the iteration's model: the
//!    epoch with the best mean judge score on the validation instructions when the manifest names
//!    them (the paper's rule), else the last ([`phases::dpo`]) → M_{t+1};
//! 5. **eval** (only with the manifest's `[eval]`) — M_{t+1} against the seed model on held-out
//!    instructions, as `ponder eval` does it ([`phases::eval`]).
//!
//! Every phase reads the previous phase's file and writes its own into the run directory
//! ([`run_dir`]), atomically. A rerun skips what is finished and resumes what is partial; seeds
//! derive from the run seed and the identity of the work ([`seeds`]), so an interrupted run
//! writes the same bytes as an uninterrupted one (timings aside). A manifest changed in a way that
//! invalidates finished work is refused ([`settings`]).
//!
//! [`eval`] is `ponder eval`: models compared on held-out instructions through the same sampling
//! path, judged by the same plugins, with the statistics of `ponder-eval`.

#![warn(missing_docs)]

mod error;
pub mod eval;
pub mod experiment;
pub mod metrics;
pub mod phases;
pub mod progress;
pub mod records;
pub mod report;
pub mod run_dir;
pub mod seeds;
pub mod settings;

pub use error::{ManifestChange, PipelineError};
pub use metrics::IterationMetrics;
pub use run_dir::{Phase, RunDir};
pub use settings::RestartPoint;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use ponder_checkpoint::Checkpoint;
use ponder_data::Instruction;
use ponder_manifest::{Manifest, PluginSpec, Role};
use ponder_model::CausalLm;
use ponder_plugin_runtime::capability::ModelAccess;
use ponder_plugin_runtime::{LogSink, Plugin, PluginRuntime, RuntimeOptions};

use crate::records::InstructionRecord;
use crate::settings::RunSettings;

/// How `ponder train` runs, beyond the manifest.
#[derive(Clone)]
pub struct TrainOptions {
    /// Redo the run from this point on (removing what it and everything after it wrote).
    pub restart_from: Option<RestartPoint>,
    /// Draw progress bars on stderr.
    pub progress: bool,
    /// Where compiled plugins are cached (`None`: compile in memory).
    pub plugin_cache: Option<PathBuf>,
    /// Where plugin log records go.
    pub plugin_log: Arc<dyn LogSink>,
    /// The models that plugins granted `models` may call (the manifest's `[models]`).
    pub models: Option<Arc<dyn ModelAccess>>,
}

/// What a finished `ponder train` leaves.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The run directory.
    pub run_dir: PathBuf,
    /// One record per iteration.
    pub iterations: Vec<IterationMetrics>,
    /// The final model (a Hugging Face directory).
    pub final_model: PathBuf,
}

/// What one run needs, resolved from the manifest once.
pub struct RunPlan<'a> {
    /// The manifest.
    pub manifest: &'a Manifest,
    /// The run directory.
    pub run: RunDir,
    /// The options.
    pub options: &'a TrainOptions,
    /// Training instructions in the order iterations slice them.
    pub train: Vec<Instruction>,
    /// Validation instructions (empty: keep each iteration's last epoch).
    pub validation: Vec<Instruction>,
    /// The template, judge and selector tables.
    pub template: &'a PluginSpec,
    /// The judge table.
    pub judge: &'a PluginSpec,
    /// The selector table.
    pub selector: &'a PluginSpec,
}

impl RunPlan<'_> {
    /// A manifest error about `key`.
    pub fn manifest_error(&self, key: &str, message: impl Into<String>) -> PipelineError {
        PipelineError::Manifest {
            file: self.manifest.file.clone(),
            key: key.to_string(),
            message: message.into(),
        }
    }

    /// A fresh plugin runtime whose plugins draw their random numbers from `seed_parts`.
    pub fn runtime(&self, seed_parts: &[&str]) -> Result<PluginRuntime, PipelineError> {
        Ok(PluginRuntime::new(RuntimeOptions {
            cache_dir: self.options.plugin_cache.clone(),
            log: Arc::clone(&self.options.plugin_log),
            models: self.options.models.clone(),
            seed: seeds::derive(self.manifest.run.seed, seed_parts),
        })?)
    }

    /// Loads and configures the plugin of `spec` in `runtime`.
    pub fn load(
        &self,
        runtime: &PluginRuntime,
        spec: &PluginSpec,
        iteration: u32,
        phase: Phase,
    ) -> Result<Plugin, PipelineError> {
        runtime
            .load(spec)
            .map_err(|source| PipelineError::plugin(iteration, phase.name(), source))
    }

    /// The instructions of `iteration` (1-based).
    pub fn slice(&self, iteration: u32) -> &[Instruction] {
        let per = self.per_iteration();
        let start = (iteration as usize - 1) * per;
        &self.train[start..start + per]
    }

    fn per_iteration(&self) -> usize {
        self.manifest
            .data
            .as_ref()
            .map_or(0, |data| data.per_iteration as usize)
    }
}

/// The instruction as the judge sees it, for the run directory.
pub fn instruction_record(instruction: &Instruction) -> InstructionRecord {
    InstructionRecord {
        id: instruction.id.clone(),
        messages: instruction.messages.clone(),
        category: instruction.category.clone(),
        reference: instruction.reference.clone(),
        metadata: instruction.metadata.clone(),
    }
}

/// The policy of one iteration, loaded when a phase first needs it.
pub struct Policy {
    /// Where it is (GGUF file or Hugging Face directory).
    pub path: PathBuf,
    /// The device it runs on.
    pub device: String,
    checkpoint: Option<Checkpoint>,
    model: Option<CausalLm>,
}

impl Policy {
    fn new(path: PathBuf, device: String) -> Self {
        Policy {
            path,
            device,
            checkpoint: None,
            model: None,
        }
    }

    /// The checkpoint (config, weights, tokenizer, chat template).
    pub fn checkpoint(&mut self) -> Result<&Checkpoint, PipelineError> {
        if self.checkpoint.is_none() {
            self.checkpoint = Some(Checkpoint::load(&self.path)?);
        }
        Ok(self.checkpoint.as_ref().expect("loaded above"))
    }

    /// The checkpoint and the model on its device, for sampling.
    pub fn model(&mut self) -> Result<(&Checkpoint, &CausalLm), PipelineError> {
        if self.model.is_none() {
            let device = ponder_model::parse_device(&self.device)
                .map_err(|e| PipelineError::model(format!("device `{}`", self.device), e))?;
            let path = self.path.clone();
            let checkpoint = self.checkpoint()?;
            let model = CausalLm::from_checkpoint(checkpoint, &device)
                .map_err(|e| PipelineError::model(format!("loading {}", path.display()), e))?;
            self.model = Some(model);
        }
        let checkpoint = self.checkpoint.as_ref().expect("loaded with the model");
        Ok((checkpoint, self.model.as_ref().expect("loaded above")))
    }

    /// Frees the inference model (DPO builds its own).
    pub fn drop_model(&mut self) {
        self.model = None;
    }
}

/// Runs Thought Preference Optimization as `manifest` says, resuming what the run directory
/// already holds.
///
/// # Errors
/// A manifest without a model, data or one of the three plugins; unreadable or too small
/// instruction files; a manifest changed since finished work was done with it; any plugin, model
/// or training failure (each names the iteration and phase); I/O errors on the run directory.
/// Nothing finished is lost: a rerun resumes where the failure stopped the run.
pub fn train(manifest: &Manifest, options: &TrainOptions) -> Result<RunSummary, PipelineError> {
    let plan = plan(manifest, options)?;
    // The trainer's own checks, before minutes of sampling rather than at the DPO phase.
    phases::dpo::validate_config(&plan)?;
    // Every plugin loads (right world, valid configuration) before anything is written.
    let runtime = plan.runtime(&["check"])?;
    for spec in [plan.template, plan.judge, plan.selector] {
        runtime.load(spec).map_err(|source| {
            plan.manifest_error(&format!("plugins.{}", spec.role), source.to_string())
        })?;
    }
    drop(runtime);
    let run = &plan.run;
    std::fs::create_dir_all(run.root()).map_err(|e| PipelineError::io(run.root(), e))?;
    if let Some(point) = options.restart_from {
        settings::restart(run, point)?;
    }
    let now = RunSettings::of(manifest)?;
    if let Some(before) = RunSettings::read(run)? {
        now.check_against(&before, run, &manifest.file, existing_iterations(run))?;
    }
    now.write(run)?;

    let model = manifest.model.as_ref().expect("checked by plan");
    let mut policy_path = model.path.clone();
    let mut metrics = metrics::read_all(run)?;
    let mut summary = Vec::new();
    let finished = |iteration: u32| {
        run.phase_done(iteration, Phase::Dpo)
            && (manifest.eval.is_none() || run.phase_done(iteration, Phase::Eval))
    };
    for iteration in 1..=manifest.run.iterations {
        run.remove_finished_leftovers(iteration)?;
        let done = metrics.iter().find(|m| m.iteration == iteration).cloned();
        let record = match done {
            Some(record) if finished(iteration) => {
                eprintln!("iteration {iteration}: done earlier, skipped");
                record
            }
            _ => {
                let mut policy = Policy::new(policy_path.clone(), model.device.clone());
                let record = run_iteration(&plan, iteration, &mut policy)?;
                metrics.retain(|m| m.iteration < iteration);
                metrics.push(record.clone());
                metrics::write_all(run, &metrics)?;
                record
            }
        };
        summary.push(record);
        policy_path = run.phase_output(iteration, Phase::Dpo);
    }
    Ok(RunSummary {
        run_dir: run.root().to_path_buf(),
        iterations: summary,
        final_model: policy_path,
    })
}

fn existing_iterations(run: &RunDir) -> u32 {
    let mut count = 0;
    while run.iteration(count + 1).exists() {
        count += 1;
    }
    count
}

fn plan<'a>(
    manifest: &'a Manifest,
    options: &'a TrainOptions,
) -> Result<RunPlan<'a>, PipelineError> {
    let missing = |key: &str, what: &str| PipelineError::Manifest {
        file: manifest.file.clone(),
        key: key.to_string(),
        message: format!("`ponder train` needs {what}"),
    };
    let model = manifest
        .model
        .as_ref()
        .ok_or_else(|| missing("model", "a `[model]` table with the policy's `path`"))?;
    if !model.path.exists() {
        return Err(PipelineError::Manifest {
            file: manifest.file.clone(),
            key: "model.path".into(),
            message: format!(
                "{} does not exist (a Hugging Face directory or a .gguf file)",
                model.path.display()
            ),
        });
    }
    let data = manifest
        .data
        .as_ref()
        .ok_or_else(|| missing("data", "a `[data]` table with the `train` instructions"))?;
    let plugin = |role: Role| {
        manifest.plugins.get(role).ok_or_else(|| {
            missing(
                &format!("plugins.{role}"),
                &format!("a `[plugins.{role}]` table naming the {role} plugin"),
            )
        })
    };
    let (template, judge, selector) = (
        plugin(Role::Template)?,
        plugin(Role::Judge)?,
        plugin(Role::Selector)?,
    );
    for spec in [template, judge, selector] {
        let path = spec.source.path();
        if !path.is_file() {
            return Err(PipelineError::Manifest {
                file: manifest.file.clone(),
                key: format!("plugins.{}", spec.role),
                message: format!(
                    "{} does not exist (first-party plugins are built by scripts/build-plugins.sh)",
                    path.display()
                ),
            });
        }
    }

    let mut train = ponder_data::read_instructions(&data.train)?;
    let needed = data.per_iteration as usize * manifest.run.iterations as usize;
    if train.len() < needed {
        return Err(PipelineError::NotEnoughData {
            file: data.train.clone(),
            message: format!(
                "{} instructions, but {} iterations × data.per_iteration {} need {needed} \
                 (data is not reused across iterations)",
                train.len(),
                manifest.run.iterations,
                data.per_iteration
            ),
        });
    }
    if data.shuffle {
        shuffle(&mut train, seeds::derive(manifest.run.seed, &["shuffle"]));
    }
    train.truncate(needed);
    let validation = match &data.validation {
        Some(path) => {
            let mut rows = ponder_data::read_instructions(path)?;
            let size = data.validation_size as usize;
            if rows.len() < size {
                return Err(PipelineError::NotEnoughData {
                    file: path.clone(),
                    message: format!(
                        "{} instructions, but data.validation_size is {size}",
                        rows.len()
                    ),
                });
            }
            rows.truncate(size);
            rows
        }
        None => Vec::new(),
    };
    Ok(RunPlan {
        manifest,
        run: RunDir::new(&manifest.run.out),
        options,
        train,
        validation,
        template,
        judge,
        selector,
    })
}

/// A seeded Fisher-Yates shuffle (rand's `StdRng` is not promised stable across releases; this
/// one is ours, so a run directory stays resumable across ponder versions).
fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut state = seed;
    let mut next = || {
        // SplitMix64
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    for i in (1..items.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

fn run_iteration(
    plan: &RunPlan<'_>,
    iteration: u32,
    policy: &mut Policy,
) -> Result<IterationMetrics, PipelineError> {
    let run = &plan.run;
    let started = Instant::now();
    let mut clock = metrics::PhaseClock::for_iteration(run, iteration);
    eprintln!(
        "iteration {iteration}/{}: policy {}",
        plan.manifest.run.iterations,
        policy.path.display()
    );
    if !run.phase_done(iteration, Phase::Sample) {
        clock.run(Phase::Sample, |host| {
            phases::sample::run(plan, iteration, policy, host)
        })?;
    }
    if !run.phase_done(iteration, Phase::Judge) {
        clock.run(Phase::Judge, |host| {
            phases::judge::run(plan, iteration, policy, host)
        })?;
    }
    if !run.phase_done(iteration, Phase::Select) {
        clock.run(Phase::Select, |host| {
            phases::select::run(plan, iteration, host)
        })?;
    }
    policy.drop_model();
    if !run.phase_done(iteration, Phase::Dpo) {
        clock.run(Phase::Dpo, |host| {
            phases::dpo::run(plan, iteration, policy, host)
        })?;
    }
    if plan.manifest.eval.is_some() && !run.phase_done(iteration, Phase::Eval) {
        clock.run(Phase::Eval, |host| phases::eval::run(plan, iteration, host))?;
    }
    let record = metrics::iteration_record(plan, iteration)?;
    clock.report(iteration, started.elapsed().as_secs_f64());
    Ok(record)
}
