//! Phase 3: the selector plugin turns every instruction's scored candidates into preference
//! pairs, seeing all instructions of the iteration at once. A pair holds the *full* outputs
//! (thought included) and the prompt the policy saw (thought prompt included), in the pairs
//! format `ponder dpo` reads.

use ponder_plugin_runtime::types::Candidate;
use serde::Serialize;

use crate::metrics::HostTime;
use crate::records::{JudgmentRecord, PairOrigin, SampleRecord};
use crate::run_dir::{Phase, read_jsonl, write_jsonl};
use crate::{PipelineError, RunPlan};

/// One line of `pairs.jsonl` (the trainer's pair row).
#[derive(Serialize)]
struct PairLine<'a> {
    prompt: &'a [ponder_contract::Message],
    chosen: &'a str,
    rejected: &'a str,
    weight: f64,
    metadata: PairOrigin,
}

/// Runs the phase for `iteration`.
///
/// # Errors
/// The selector failing (its one call covers the whole iteration, so there is no row to skip),
/// or an I/O error on the run directory.
pub fn run(plan: &RunPlan<'_>, iteration: u32, host: &mut HostTime) -> Result<(), PipelineError> {
    let run = &plan.run;
    let samples: Vec<SampleRecord> =
        host.time(|| read_jsonl(&run.phase_output(iteration, Phase::Sample)))?;
    let judgments: Vec<JudgmentRecord> =
        host.time(|| read_jsonl(&run.phase_output(iteration, Phase::Judge)))?;
    // Instructions whose judging failed make no pair.
    let usable: Vec<(&SampleRecord, &JudgmentRecord)> = samples
        .iter()
        .zip(&judgments)
        .filter(|(_, judgment)| judgment.failure.is_none())
        .collect();
    let groups: Vec<Vec<Candidate>> = usable
        .iter()
        .map(|(_, judgment)| {
            judgment
                .candidates
                .iter()
                .map(|c| Candidate {
                    score: c.score,
                    parsed: c.parsed,
                    response_tokens: c.response_tokens,
                    response_chars: c.response_chars,
                    thought_tokens: c.thought_tokens,
                    thought_chars: c.thought_chars,
                    output_tokens: c.output_tokens,
                })
                .collect()
        })
        .collect();
    let runtime = plan.runtime(&["select", &iteration.to_string()])?;
    let mut selector = plan.load(&runtime, plan.selector, iteration, Phase::Select)?;
    let selected = host
        .time(|| selector.select(&groups))
        .map_err(|source| PipelineError::plugin(iteration, Phase::Select.name(), source))?;
    let mut lines = Vec::new();
    for ((sample, judgment), pairs) in usable.iter().zip(&selected) {
        for pair in pairs {
            let (chosen, rejected) = (pair.chosen as usize, pair.rejected as usize);
            lines.push(PairLine {
                prompt: &sample.prompt,
                chosen: &sample.outputs[chosen].text,
                rejected: &sample.outputs[rejected].text,
                weight: pair.weight,
                metadata: PairOrigin {
                    id: sample.id.clone(),
                    chosen: pair.chosen,
                    rejected: pair.rejected,
                    chosen_score: judgment.candidates[chosen].score,
                    rejected_score: judgment.candidates[rejected].score,
                },
            });
        }
    }
    host.time(|| write_jsonl(&run.phase_output(iteration, Phase::Select), &lines))?;
    eprintln!(
        "iteration {iteration} select: {} pairs from {} instructions ({} without a usable judgment)",
        lines.len(),
        samples.len(),
        samples.len() - usable.len()
    );
    Ok(())
}
