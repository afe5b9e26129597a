//! Phase 2: split each output into thought and response (template plugin), then score the
//! responses (judge plugin). The judge sees the instruction without the thought prompt and the
//! parsed responses only; thoughts and parse failures are withheld.
//!
//! Instructions are judged in chunks, each written when done; each chunk gets a freshly
//! instantiated judge, so its result does not depend on where an interrupted phase resumed. When
//! a call fails as a whole, its rows are retried one by one, so only the rows that really fail are
//! failed; `run.on_row_failure` then says whether to skip and count them or stop.

use std::time::Instant;

use ponder_checkpoint::Tokenizer;
use ponder_manifest::RowFailurePolicy;
use ponder_plugin_runtime::types::{JudgeOutcome, JudgeRequest, Parsed};
use ponder_plugin_runtime::{PluginError, PluginRuntime};

use crate::metrics::HostTime;
use crate::records::{InstructionRecord, JudgedOutput, JudgmentRecord, SampleRecord};
use crate::run_dir::{ChunkedOutput, Phase, read_jsonl};
use crate::{PipelineError, Policy, RunPlan, progress};

/// Runs the phase for `iteration`.
///
/// # Errors
/// A plugin that cannot be loaded, a row failure under `run.on_row_failure = "stop"`, or an I/O
/// error on the run directory.
pub fn run(
    plan: &RunPlan<'_>,
    iteration: u32,
    policy: &mut Policy,
    host: &mut HostTime,
) -> Result<(), PipelineError> {
    let run = &plan.run;
    let dir = run.iteration(iteration);
    let samples: Vec<SampleRecord> =
        host.time(|| read_jsonl(&run.phase_output(iteration, Phase::Sample)))?;
    let instructions: Vec<InstructionRecord> =
        host.time(|| read_jsonl(&dir.join("instructions.jsonl")))?;
    let tokenizer = policy.checkpoint()?.tokenizer.clone();
    let output = ChunkedOutput::new(run.phase_output(iteration, Phase::Judge));
    let parse_runtime = plan.runtime(&["parse", &iteration.to_string()])?;
    let judge_runtime = plan.runtime(&["judge", &iteration.to_string()])?;
    let bar = progress::bar(
        &format!("iter {iteration} judge"),
        "instructions",
        samples.len() as u64,
        plan.options.progress,
    );
    let started = Instant::now();
    let mut judge = Judging {
        plan,
        iteration,
        parse_runtime: &parse_runtime,
        judge_runtime: &judge_runtime,
        tokenizer: &tokenizer,
        failed_rows: 0,
    };
    // As many instructions per judge call as per sampling batch (`sample.batch_prompts`).
    let chunk = plan.manifest.sample.batch_prompts as usize;
    let chunks: Vec<(&[SampleRecord], &[InstructionRecord])> = samples
        .chunks(chunk)
        .zip(instructions.chunks(chunk))
        .collect();
    for (index, (samples, instructions)) in chunks.iter().enumerate() {
        if output.has(index) {
            bar.inc(samples.len() as u64);
            continue;
        }
        let records = host.time(|| judge.chunk(samples, instructions))?;
        host.time(|| output.write(index, &records))?;
        bar.inc(samples.len() as u64);
    }
    host.time(|| output.finish(chunks.len()))?;
    bar.finish_and_clear();
    eprintln!(
        "iteration {iteration} judge: {} instructions judged in {:.1} s ({} rows failed in plugins{})",
        samples.len(),
        started.elapsed().as_secs_f64(),
        judge.failed_rows,
        if judge.failed_rows > 0 {
            ", skipped under run.on_row_failure = \"skip\""
        } else {
            ""
        }
    );
    Ok(())
}

struct Judging<'a> {
    plan: &'a RunPlan<'a>,
    iteration: u32,
    parse_runtime: &'a PluginRuntime,
    judge_runtime: &'a PluginRuntime,
    tokenizer: &'a Tokenizer,
    failed_rows: usize,
}

impl Judging<'_> {
    fn plugin_error(&self, source: PluginError) -> PipelineError {
        PipelineError::plugin(self.iteration, Phase::Judge.name(), source)
    }

    /// Skips a failed row (returning its message) or stops the run, as the manifest says.
    fn row_failed(&mut self, id: &str, error: PluginError) -> Result<String, PipelineError> {
        match self.plan.manifest.run.on_row_failure {
            RowFailurePolicy::Stop => Err(self.plugin_error(error)),
            RowFailurePolicy::Skip => {
                self.failed_rows += 1;
                Ok(format!("instruction `{id}`: {error}"))
            }
        }
    }

    fn chunk(
        &mut self,
        samples: &[SampleRecord],
        instructions: &[InstructionRecord],
    ) -> Result<Vec<JudgmentRecord>, PipelineError> {
        let mut template = self.plan.load(
            self.parse_runtime,
            self.plan.template,
            self.iteration,
            Phase::Judge,
        )?;
        let mut records = Vec::with_capacity(samples.len());
        for (sample, instruction) in samples.iter().zip(instructions) {
            if sample.id != instruction.id {
                return Err(PipelineError::RunFile {
                    path: self
                        .plan
                        .run
                        .iteration(self.iteration)
                        .join("samples.jsonl"),
                    line: 0,
                    message: format!(
                        "row `{}` does not match instructions.jsonl's `{}`",
                        sample.id, instruction.id
                    ),
                });
            }
            let mut candidates = Vec::with_capacity(sample.outputs.len());
            let mut failure = None;
            for output in &sample.outputs {
                let parsed = match template.parse(&output.text) {
                    Ok(parsed) => parsed,
                    Err(error) => {
                        failure = Some(self.row_failed(&sample.id, error)?);
                        Parsed::Failure("the template plugin failed on this output".into())
                    }
                };
                candidates.push(self.candidate(output.tokens, parsed)?);
            }
            records.push(JudgmentRecord {
                id: sample.id.clone(),
                candidates,
                failure,
            });
        }

        // One request per instruction with at least one parsed response.
        let mut requests = Vec::new();
        let mut owners = Vec::new();
        for (index, (record, instruction)) in records.iter().zip(instructions).enumerate() {
            if record.failure.is_some() {
                continue;
            }
            let responses: Vec<String> = record
                .candidates
                .iter()
                .filter(|c| c.parsed)
                .map(|c| c.response.clone())
                .collect();
            if responses.is_empty() {
                continue;
            }
            requests.push(JudgeRequest {
                instruction: instruction.messages.clone(),
                responses,
                reference: instruction.reference.clone(),
                metadata: instruction.metadata.to_string(),
            });
            owners.push(index);
        }
        let outcomes = self.judge_rows(&requests)?;
        for (outcome, &owner) in outcomes.into_iter().zip(&owners) {
            let record = &mut records[owner];
            match outcome {
                Ok(Ok(scores)) => {
                    let mut scores = scores.into_iter();
                    for candidate in record.candidates.iter_mut().filter(|c| c.parsed) {
                        candidate.score = scores.next().flatten();
                    }
                }
                Ok(Err(failure)) => {
                    let error = PluginError {
                        plugin: self.plan.judge.name(),
                        role: ponder_manifest::Role::Judge,
                        call: "judge",
                        cause: ponder_plugin_runtime::Cause::Plugin(failure),
                    };
                    record.failure = Some(self.row_failed(&record.id, error)?);
                }
                Err(error) => record.failure = Some(self.row_failed(&record.id, error)?),
            }
        }
        Ok(records)
    }

    /// Judges all requests in one call; when that call fails as a whole, each request alone.
    fn judge_rows(
        &mut self,
        requests: &[JudgeRequest],
    ) -> Result<Vec<Result<JudgeOutcome, PluginError>>, PipelineError> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let mut judge = self.plan.load(
            self.judge_runtime,
            self.plan.judge,
            self.iteration,
            Phase::Judge,
        )?;
        match judge.judge(requests) {
            Ok(outcomes) => Ok(outcomes.into_iter().map(Ok).collect()),
            Err(whole) => {
                eprintln!(
                    "iteration {} judge: a call over {} instructions failed ({whole}); judging them one by one",
                    self.iteration,
                    requests.len()
                );
                let mut out = Vec::with_capacity(requests.len());
                for request in requests {
                    // A fresh instance per row: a trapped instance is replaced anyway, and rows
                    // must not depend on what ran before them.
                    let mut single = self.plan.load(
                        self.judge_runtime,
                        self.plan.judge,
                        self.iteration,
                        Phase::Judge,
                    )?;
                    out.push(
                        single
                            .judge(std::slice::from_ref(request))
                            .map(|mut outcomes| outcomes.remove(0)),
                    );
                }
                Ok(out)
            }
        }
    }

    fn candidate(&self, output_tokens: u32, parsed: Parsed) -> Result<JudgedOutput, PipelineError> {
        let count = |text: &str| -> Result<u32, PipelineError> {
            Ok(self.tokenizer.encode(text)?.len() as u32)
        };
        Ok(match parsed {
            Parsed::Ok(split) => JudgedOutput {
                parsed: true,
                response_tokens: count(&split.response)?,
                response_chars: split.response.chars().count() as u32,
                thought_tokens: count(&split.thought)?,
                thought_chars: split.thought.chars().count() as u32,
                thought: split.thought,
                response: split.response,
                parse_failure: None,
                score: None,
                output_tokens,
            },
            Parsed::Failure(reason) => JudgedOutput {
                parsed: false,
                thought: String::new(),
                response: String::new(),
                parse_failure: Some(reason),
                score: None,
                response_tokens: 0,
                response_chars: 0,
                thought_tokens: 0,
                thought_chars: 0,
                output_tokens,
            },
        })
    }
}
