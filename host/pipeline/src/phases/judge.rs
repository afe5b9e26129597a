//! Phase 2: split each output into thought and response (template plugin), then score the
//! responses (judge plugin). The judge sees the instruction without the thought prompt and the
//! parsed responses only; thoughts and parse failures are withheld.
//!
//! Instructions are judged in chunks, each written when done; each chunk gets a freshly
//! instantiated judge, so its result does not depend on where an interrupted phase resumed. When
//! a judge call fails as a whole (a trap, a limit, output that breaks the contract such as the
//! wrong number of outcomes), its requests are bisected, each half judged again on a fresh
//! instance down to single requests: only the rows that really fail are failed, the others keep
//! their verdicts. A template whose `parse` fails fails only the row of that output (the runtime
//! replaces a trapped instance before the next call). `run.on_row_failure` then says whether to
//! skip and count the failed rows or stop.

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
                        // A row fails (and counts) once, however many of its outputs fail.
                        if failure.is_none() {
                            failure = Some(self.row_failed(&sample.id, error)?);
                        }
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

    /// Judges the requests, one outcome per request in order: a request's own failure, or the
    /// call's failure when the request failed alone. Every call gets a freshly configured
    /// instance: a trapped instance is replaced anyway, and a verdict must not depend on which
    /// calls ran before it (the same rows and seed give the same bytes).
    fn judge_rows(
        &self,
        requests: &[JudgeRequest],
    ) -> Result<Vec<Result<JudgeOutcome, PluginError>>, PipelineError> {
        bisect(requests, |part: &[JudgeRequest]| {
            let mut judge = self.plan.load(
                self.judge_runtime,
                self.plan.judge,
                self.iteration,
                Phase::Judge,
            )?;
            let result = judge.judge(part);
            if let Err(whole) = &result
                && part.len() > 1
            {
                eprintln!(
                    "iteration {} judge: a call over {} instructions failed ({whole}); judging each half again",
                    self.iteration,
                    part.len()
                );
            }
            Ok(result)
        })
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

/// What one call over a part of the items gives: every item's output, or the failure of the
/// call as a whole; or (the outer `Err`) an error that no split can help.
pub(crate) type PartResult<Output, Failure, Fatal> = Result<Result<Vec<Output>, Failure>, Fatal>;

/// Runs `call` over all `items`; when a call fails as a whole, runs it over each half the same
/// way, down to single items, so that a failure lands on exactly the items that cause it and the
/// others keep their results. Returns one result per item, in order (a lone item's failure is
/// the call's). `call` returns `Err` (the outer one) only for what no split can help, which stops
/// everything. With k failing items among n this takes at most 1 + 2·k·⌈log₂ n⌉ calls.
pub(crate) fn bisect<Item, Output, Failure, Fatal, Call>(
    items: &[Item],
    mut call: Call,
) -> Result<Vec<Result<Output, Failure>>, Fatal>
where
    Call: FnMut(&[Item]) -> PartResult<Output, Failure, Fatal>,
{
    let mut results = Vec::with_capacity(items.len());
    let mut pending = vec![items];
    // Depth first, first half first: results come out in item order.
    while let Some(part) = pending.pop() {
        if part.is_empty() {
            continue;
        }
        match call(part)? {
            Ok(outputs) => results.extend(outputs.into_iter().map(Ok)),
            Err(failure) if part.len() == 1 => results.push(Err(failure)),
            Err(_) => {
                let (first, second) = part.split_at(part.len() / 2);
                pending.push(second);
                pending.push(first);
            }
        }
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::bisect;

    /// A call over `part` fails as a whole when it holds a marked item; otherwise each item's
    /// output is twice the item. Counts the calls.
    fn run(items: &[u32], marked: &[u32]) -> (Vec<Result<u32, String>>, usize) {
        let mut calls = 0;
        let results = bisect(items, |part: &[u32]| -> Result<_, ()> {
            calls += 1;
            Ok(match part.iter().find(|item| marked.contains(item)) {
                Some(item) => Err(format!("item {item} breaks the call")),
                None => Ok(part.iter().map(|item| item * 2).collect()),
            })
        })
        .expect("no fatal error");
        (results, calls)
    }

    #[test]
    fn only_the_failing_items_fail_and_the_others_keep_their_outputs() {
        let items: Vec<u32> = (0..16).collect();
        let (results, calls) = run(&items, &[3, 11]);
        assert_eq!(results.len(), items.len());
        for (item, result) in items.iter().zip(&results) {
            match result {
                Err(failure) => {
                    assert!([3, 11].contains(item), "item {item} failed: {failure}");
                    assert_eq!(failure, &format!("item {item} breaks the call"));
                }
                Ok(output) => assert_eq!(*output, item * 2),
            }
        }
        assert_eq!(results.iter().filter(|result| result.is_err()).count(), 2);
        // Far fewer calls than one per item: 1 + 2·k·log₂ n at most.
        assert!(calls <= 1 + 2 * 2 * 4, "{calls} calls");
    }

    #[test]
    fn a_call_that_succeeds_is_made_once() {
        let (results, calls) = run(&[1, 2, 3], &[]);
        assert_eq!(results, vec![Ok(2), Ok(4), Ok(6)]);
        assert_eq!(calls, 1);
    }

    #[test]
    fn every_item_failing_fails_every_item_in_order() {
        let items = [5, 6, 7];
        let (results, _) = run(&items, &items);
        let expected: Vec<Result<u32, String>> = items
            .iter()
            .map(|item| Err(format!("item {item} breaks the call")))
            .collect();
        assert_eq!(results, expected);
    }

    #[test]
    fn no_items_make_no_call() {
        let (results, calls) = run(&[], &[1]);
        assert!(results.is_empty());
        assert_eq!(calls, 0);
    }

    #[test]
    fn a_fatal_error_stops_the_bisection() {
        let mut calls = 0;
        let result = bisect(&[1, 2, 3, 4], |part: &[u32]| {
            calls += 1;
            if part.len() < 4 {
                Err("the plugin cannot be loaded")
            } else {
                Ok(Err::<Vec<u32>, _>("whole call failed"))
            }
        });
        assert_eq!(result, Err("the plugin cannot be loaded"));
        assert_eq!(calls, 2);
    }
}
