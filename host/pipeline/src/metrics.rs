//! `metrics.jsonl` (one record per iteration) and the phases' timings.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ponder_trainer::metrics::StepMetrics;
use serde::{Deserialize, Serialize};

use crate::eval::EvalReport;
use crate::records::{JudgmentRecord, PairOrigin, SampleRecord, ValidationRecord};
use crate::run_dir::{Phase, RunDir, append_jsonl, parse_jsonl, read_jsonl, write_jsonl};
use crate::{PipelineError, RunPlan};

/// One iteration's figures. Everything but `seconds` is a function of the artifacts, so it is
/// the same whether or not the run was interrupted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IterationMetrics {
    /// 1-based iteration.
    pub iteration: u32,
    /// Instructions sampled.
    pub instructions: u32,
    /// Outputs sampled (instructions × K).
    pub samples: u32,
    /// Outputs that did not parse into thought and response.
    pub parse_failures: u32,
    /// `parse_failures / samples`.
    pub parse_failure_rate: f64,
    /// Outputs whose response separator the host forced (`sample.thought_budget`).
    pub forced_responses: u32,
    /// Parsed responses the judge gave no score.
    pub unscored: u32,
    /// Instructions skipped because a plugin failed on them (`run.on_row_failure = "skip"`).
    pub failed_rows: u32,
    /// Mean judge score of every scored response.
    pub score_all: Option<f64>,
    /// Mean judge score of the chosen outputs.
    pub score_chosen: Option<f64>,
    /// Mean judge score of the rejected outputs that have one (parse failures have none).
    pub score_rejected: Option<f64>,
    /// Preference pairs made.
    pub pairs: u32,
    /// Pairs whose rejected side is a parse failure.
    pub pairs_rejecting_parse_failures: u32,
    /// Mean response length in tokens of the chosen outputs.
    pub chosen_response_tokens: Option<f64>,
    /// Mean response length in tokens of the rejected outputs.
    pub rejected_response_tokens: Option<f64>,
    /// Mean thought length in tokens of the chosen outputs.
    pub chosen_thought_tokens: Option<f64>,
    /// Mean thought length in tokens of the rejected outputs.
    pub rejected_thought_tokens: Option<f64>,
    /// Mean DPO loss over the last epoch's steps.
    pub dpo_loss: Option<f64>,
    /// Mean reward margin (chosen − rejected) over the last epoch's steps.
    pub reward_margin: Option<f64>,
    /// Mean reward accuracy over the last epoch's steps.
    pub reward_accuracy: Option<f64>,
    /// Optimiser steps taken.
    pub dpo_steps: u64,
    /// Mean validation judge score of the kept epoch (with validation instructions).
    pub validation_score: Option<f64>,
    /// The DPO step whose model became the iteration's model (with validation instructions;
    /// else the last step).
    pub kept_step: Option<u64>,
    /// Win rate in percent of the iteration's model over the seed model on the `[eval]`
    /// instructions (with `eval.judge`).
    #[serde(default)]
    pub eval_win_rate_percent: Option<f64>,
    /// IFEval's prompt-level strict accuracy of the iteration's model (with `[eval]` and
    /// instructions that list constraints).
    #[serde(default)]
    pub eval_ifeval_strict: Option<f64>,
    /// IFEval's prompt-level strict accuracy of the seed model, on the same instructions and
    /// seeds (with `[eval]` and instructions that list constraints).
    #[serde(default)]
    pub eval_seed_ifeval_strict: Option<f64>,
    /// Wall-clock seconds per phase (summed over reruns), plus `host` (plugins, JSON and files)
    /// and `total`. Not deterministic.
    pub seconds: BTreeMap<String, f64>,
}

/// Reads `metrics.jsonl` (empty for a new run).
pub fn read_all(run: &RunDir) -> Result<Vec<IterationMetrics>, PipelineError> {
    let path = run.metrics_file();
    if !path.exists() {
        return Ok(Vec::new());
    }
    read_jsonl(&path)
}

/// Writes `metrics.jsonl`.
pub fn write_all(run: &RunDir, records: &[IterationMetrics]) -> Result<(), PipelineError> {
    write_jsonl(&run.metrics_file(), records)
}

/// Time spent in host work around the model: plugin calls, JSON and files.
#[derive(Debug, Default)]
pub struct HostTime {
    spent: Duration,
}

impl HostTime {
    /// Runs `work`, counting its time as host work.
    pub fn time<T>(&mut self, work: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let out = work();
        self.spent += started.elapsed();
        out
    }
}

/// One line of `iter-N/timings.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Timing {
    phase: String,
    seconds: f64,
    host_seconds: f64,
}

/// Drops the timings of `from` and the phases after it from `iteration`'s `timings.jsonl`
/// (`--restart-from` redoes them: their old times must not add to the new ones).
///
/// # Errors
/// An unreadable or unwritable timings file.
pub(crate) fn forget_timings_from(
    run: &RunDir,
    iteration: u32,
    from: Phase,
) -> Result<(), PipelineError> {
    let file = run.timings_file(iteration);
    if !file.exists() {
        return Ok(());
    }
    let timings: Vec<Timing> = read_jsonl(&file)?;
    let kept: Vec<Timing> = timings
        .into_iter()
        .filter(|timing| {
            Phase::ALL
                .into_iter()
                .find(|phase| phase.name() == timing.phase)
                .is_some_and(|phase| phase < from)
        })
        .collect();
    write_jsonl(&file, &kept)
}

/// Times phases and logs them to `timings.jsonl`.
pub struct PhaseClock {
    file: PathBuf,
    host: Duration,
    phases: Duration,
    report: Option<RunDir>,
}

impl PhaseClock {
    /// A clock logging to `file`.
    pub fn new(file: PathBuf) -> Self {
        PhaseClock {
            file,
            host: Duration::ZERO,
            phases: Duration::ZERO,
            report: None,
        }
    }

    /// The clock of `iteration` in `run` (logging to its `timings.jsonl`), which also rebuilds
    /// the run's `report.html` after each phase that finishes (a report failure is a warning).
    pub fn for_iteration(run: &RunDir, iteration: u32) -> Self {
        PhaseClock {
            report: Some(run.clone()),
            ..PhaseClock::new(run.timings_file(iteration))
        }
    }

    /// Runs one phase and logs its time.
    pub fn run<T>(
        &mut self,
        phase: Phase,
        work: impl FnOnce(&mut HostTime) -> Result<T, PipelineError>,
    ) -> Result<T, PipelineError> {
        let started = Instant::now();
        let mut host = HostTime::default();
        let result = work(&mut host);
        let seconds = started.elapsed();
        self.host += host.spent;
        self.phases += seconds;
        if self.file.parent().is_some_and(|dir| dir.is_dir()) {
            append_jsonl(
                &self.file,
                &Timing {
                    phase: phase.name().to_string(),
                    seconds: seconds.as_secs_f64(),
                    host_seconds: host.spent.as_secs_f64(),
                },
            )?;
        }
        if let (Ok(_), Some(run)) = (&result, &self.report) {
            crate::report::refresh(run);
        }
        result
    }

    /// Prints the host's share of this invocation's work on the iteration.
    pub fn report(&self, iteration: u32, total_seconds: f64) {
        let host = self.host.as_secs_f64();
        eprintln!(
            "iteration {iteration}: {total_seconds:.1} s; plugins, JSON and files {host:.2} s = {:.2}% of it",
            100.0 * host / total_seconds.max(1e-9)
        );
    }
}

fn mean(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let (sum, count) = values
        .into_iter()
        .fold((0.0, 0usize), |(sum, count), value| {
            (sum + value, count + 1)
        });
    (count > 0).then(|| sum / count as f64)
}

/// The iteration's record, from its files.
pub fn iteration_record(
    plan: &RunPlan<'_>,
    iteration: u32,
) -> Result<IterationMetrics, PipelineError> {
    record_from_files(&plan.run, iteration, plan.manifest.dpo.epochs)
}

/// Reads a JSONL file of the run, or nothing when it is not there (yet).
fn read_jsonl_if_present<T: serde::de::DeserializeOwned>(
    path: &std::path::Path,
) -> Result<Vec<T>, PipelineError> {
    if path.exists() {
        read_jsonl(path)
    } else {
        Ok(Vec::new())
    }
}

/// The DPO steps of `iteration` (`iter-N/dpo/metrics.jsonl`; empty before the DPO phase starts).
/// While the phase runs the trainer appends to the file, so an unfinished last line is left out
/// then; once the phase is done every line must parse.
pub fn dpo_steps(run: &RunDir, iteration: u32) -> Result<Vec<StepMetrics>, PipelineError> {
    let path = run.iteration(iteration).join("dpo").join("metrics.jsonl");
    if !path.exists() {
        return Ok(Vec::new());
    }
    let mut text = std::fs::read_to_string(&path).map_err(|e| PipelineError::io(&path, e))?;
    if !run.phase_done(iteration, Phase::Dpo) && !text.ends_with('\n') {
        text.truncate(text.rfind('\n').map_or(0, |end| end + 1));
    }
    parse_jsonl(&path, &text)
}

/// `iter-N/eval.json`, when the eval phase wrote it.
pub fn read_eval(run: &RunDir, iteration: u32) -> Result<Option<EvalReport>, PipelineError> {
    let eval_file = run.phase_output(iteration, Phase::Eval);
    if !eval_file.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&eval_file).map_err(|e| PipelineError::io(&eval_file, e))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| PipelineError::RunFile {
            path: eval_file.clone(),
            line: e.line(),
            message: format!("{e} (was the run directory written by another ponder version?)"),
        })
}

/// The record of `iteration` from whichever of its files exist: for a finished iteration, what
/// `metrics.jsonl` holds; for one in progress, the figures of its finished phases (an output
/// file that is not there yet counts as empty: no scores, no pairs, no steps). `dpo_epochs` is
/// the run's `dpo.epochs` (the DPO figures are means over the last epoch).
///
/// # Errors
/// An unreadable file, or a line that is not what this version of ponder writes (named).
pub fn record_from_files(
    run: &RunDir,
    iteration: u32,
    dpo_epochs: u32,
) -> Result<IterationMetrics, PipelineError> {
    let samples: Vec<SampleRecord> =
        read_jsonl_if_present(&run.phase_output(iteration, Phase::Sample))?;
    let judgments: Vec<JudgmentRecord> =
        read_jsonl_if_present(&run.phase_output(iteration, Phase::Judge))?;
    let pairs: Vec<serde_json::Value> =
        read_jsonl_if_present(&run.phase_output(iteration, Phase::Select))?;
    let origins: Vec<PairOrigin> = pairs
        .iter()
        .filter_map(|pair| serde_json::from_value(pair.get("metadata")?.clone()).ok())
        .collect();

    let outputs = samples.iter().flat_map(|s| &s.outputs);
    let sample_count = outputs.clone().count() as u32;
    let forced = outputs.filter(|o| o.forced_response).count() as u32;
    let candidates = judgments.iter().flat_map(|j| &j.candidates);
    let parse_failures = candidates.clone().filter(|c| !c.parsed).count() as u32;
    let unscored = candidates
        .clone()
        .filter(|c| c.parsed && c.score.is_none())
        .count() as u32;
    let by_id: BTreeMap<&str, &JudgmentRecord> =
        judgments.iter().map(|j| (j.id.as_str(), j)).collect();
    let side = |origin: &PairOrigin, chosen: bool| {
        let index = if chosen {
            origin.chosen
        } else {
            origin.rejected
        };
        by_id
            .get(origin.id.as_str())
            .and_then(|j| j.candidates.get(index as usize))
    };
    let side_mean = |chosen: bool, value: &dyn Fn(&crate::records::JudgedOutput) -> Option<f64>| {
        mean(
            origins
                .iter()
                .filter_map(|o| side(o, chosen).and_then(value)),
        )
    };
    let response_tokens =
        |c: &crate::records::JudgedOutput| c.parsed.then_some(f64::from(c.response_tokens));
    let thought_tokens =
        |c: &crate::records::JudgedOutput| c.parsed.then_some(f64::from(c.thought_tokens));

    let steps = dpo_steps(run, iteration)?;
    let epochs = f64::from(dpo_epochs);
    let last_epoch: Vec<&StepMetrics> = steps.iter().filter(|s| s.epoch > epochs - 1.0).collect();
    let validation = validation_scores(run, iteration)?;
    let kept = kept_step(&validation, &steps);

    let eval = read_eval(run, iteration)?;
    let prompt_strict = |index: usize| {
        eval.as_ref()
            .and_then(|report| report.models.get(index))
            .and_then(|model| model.ifeval.as_ref())
            .map(|ifeval| ifeval.accuracies.prompt_level_strict)
    };

    let mut seconds = BTreeMap::new();
    let timings_file = run.timings_file(iteration);
    if timings_file.exists() {
        let timings: Vec<Timing> = read_jsonl(&timings_file)?;
        for timing in timings {
            *seconds.entry(timing.phase).or_insert(0.0) += timing.seconds;
            *seconds.entry("host".to_string()).or_insert(0.0) += timing.host_seconds;
            *seconds.entry("total".to_string()).or_insert(0.0) += timing.seconds;
        }
    }

    Ok(IterationMetrics {
        iteration,
        instructions: samples.len() as u32,
        samples: sample_count,
        parse_failures,
        parse_failure_rate: f64::from(parse_failures) / f64::from(sample_count.max(1)),
        forced_responses: forced,
        unscored,
        failed_rows: judgments.iter().filter(|j| j.failure.is_some()).count() as u32,
        score_all: mean(
            judgments
                .iter()
                .flat_map(|j| &j.candidates)
                .filter_map(|c| c.score),
        ),
        score_chosen: side_mean(true, &|c| c.score),
        score_rejected: side_mean(false, &|c| c.score),
        pairs: origins.len() as u32,
        pairs_rejecting_parse_failures: origins
            .iter()
            .filter(|o| side(o, false).is_some_and(|c| !c.parsed))
            .count() as u32,
        chosen_response_tokens: side_mean(true, &response_tokens),
        rejected_response_tokens: side_mean(false, &response_tokens),
        chosen_thought_tokens: side_mean(true, &thought_tokens),
        rejected_thought_tokens: side_mean(false, &thought_tokens),
        dpo_loss: mean(last_epoch.iter().map(|s| s.loss)),
        reward_margin: mean(last_epoch.iter().map(|s| s.rewards_margins)),
        reward_accuracy: mean(last_epoch.iter().map(|s| s.rewards_accuracies)),
        dpo_steps: steps.last().map_or(0, |s| s.step),
        validation_score: kept.and_then(|(_, score)| score),
        kept_step: kept.map(|(step, _)| step),
        eval_win_rate_percent: eval
            .as_ref()
            .and_then(|report| report.pairwise.as_ref())
            .map(|pairwise| pairwise.win_rate.win_rate.win_rate_percent),
        eval_ifeval_strict: prompt_strict(0),
        eval_seed_ifeval_strict: prompt_strict(1),
        seconds,
    })
}

/// Mean validation score per DPO step, from `iter-N/validation/`.
fn validation_scores(run: &RunDir, iteration: u32) -> Result<Vec<(u64, f64)>, PipelineError> {
    let dir = run.iteration(iteration).join("validation");
    let mut scores = Vec::new();
    if !dir.is_dir() {
        return Ok(scores);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| PipelineError::io(&dir, e))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "jsonl"))
        .collect();
    files.sort();
    for file in files {
        let Some(step) = file
            .file_stem()
            .and_then(|stem| stem.to_str())
            .and_then(|stem| stem.strip_prefix("step-"))
            .and_then(|step| step.parse::<u64>().ok())
        else {
            continue;
        };
        let rows: Vec<ValidationRecord> = read_jsonl(&file)?;
        if let Some(score) = validation_mean(&rows) {
            scores.push((step, score));
        }
    }
    Ok(scores)
}

/// The validation metric: mean score over the instructions; an output the judge could not
/// score counts as the lowest score of the pass.
pub fn validation_mean(rows: &[ValidationRecord]) -> Option<f64> {
    let lowest = rows
        .iter()
        .filter_map(|row| row.score)
        .min_by(f64::total_cmp)?;
    mean(rows.iter().map(|row| row.score.unwrap_or(lowest)))
}

/// The step kept (first best validation score, as the trainer keeps it), or the last step.
fn kept_step(validation: &[(u64, f64)], steps: &[StepMetrics]) -> Option<(u64, Option<f64>)> {
    let mut best: Option<(u64, f64)> = None;
    for &(step, score) in validation {
        if best.is_none_or(|(_, top)| score > top) {
            best = Some((step, score));
        }
    }
    match best {
        Some((step, score)) => Some((step, Some(score))),
        None => steps.last().map(|s| (s.step, None)),
    }
}
