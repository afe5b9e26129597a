//! Phase 1: the thought prompt around each instruction, then K samples per instruction.
//!
//! The template plugin renders every instruction of the iteration; the model's chat template is
//! applied once (plus the template's assistant prefix with `sample.prefill`). Instructions are
//! sampled in chunks of `sample.batch_prompts`, all K rows of a chunk's prompts decoded together;
//! each chunk is written when done, so a killed phase keeps what it sampled. Seeds derive from
//! the run seed, the iteration, the instruction id and the sample index.
//!
//! With `[sample] engine`, a served model samples instead ([`served`]): the same prompts as token
//! ids, each sample journaled as it arrives.

pub(crate) mod served;

use std::ops::ControlFlow;
use std::time::Instant;

use indicatif::ProgressBar;
use ponder_checkpoint::{Checkpoint, Tokenizer};
use ponder_contract::{Message, OutputFormat};
use ponder_data::Instruction;
use ponder_manifest::SampleSection;
use ponder_model::{
    CausalLm, FinishReason, GeneratedSequence, GenerationRequest, ModelError, ResponseForcing,
    SamplingParams, generate,
};
use ponder_plugin_runtime::{Plugin, PluginError};

use crate::metrics::HostTime;
use crate::records::{Output, SampleRecord};
use crate::run_dir::{ChunkedOutput, Phase, write_jsonl};
use crate::{PipelineError, Policy, RunPlan, instruction_record, progress, seeds};

/// A prompt ready for the sampler.
pub(crate) struct Prompt {
    /// The instruction's id.
    pub(crate) id: String,
    /// The template's rendering of the instruction.
    pub(crate) messages: Vec<Message>,
    /// The rendering under the model's chat template, with the assistant prefix.
    pub(crate) tokens: Vec<u32>,
}

/// Runs the phase for `iteration`.
///
/// # Errors
/// A template plugin failure (render or output format), a prompt longer than the model allows,
/// a model failure, or an I/O error on the run directory.
pub fn run(
    plan: &RunPlan<'_>,
    iteration: u32,
    policy: &mut Policy,
    host: &mut HostTime,
) -> Result<(), PipelineError> {
    let run = &plan.run;
    let instructions = plan.slice(iteration);
    let slice_file = run.iteration(iteration).join("instructions.jsonl");
    if !slice_file.exists() {
        let rows: Vec<_> = instructions.iter().map(instruction_record).collect();
        host.time(|| write_jsonl(&slice_file, &rows))?;
    }

    let runtime = plan.runtime(&["template", &iteration.to_string()])?;
    let mut template = plan.load(&runtime, plan.template, iteration, Phase::Sample)?;
    let plugin_error = |source| PipelineError::plugin(iteration, Phase::Sample.name(), source);
    let format = host
        .time(|| template.output_format())
        .map_err(plugin_error)?;
    let sample = &plan.manifest.sample;
    let prefix = if sample.prefill {
        format.assistant_prefix.clone()
    } else {
        String::new()
    };

    let policy_path = policy.path.clone();
    let checkpoint = policy.checkpoint()?;
    let rendered = render_prompts(
        &mut template,
        checkpoint,
        instructions,
        &prefix,
        host,
        &plugin_error,
    )?;
    let params = sampling_params(plan, checkpoint, &format)?;
    check_prompt_room(&rendered, &params, checkpoint, &|key, message| {
        plan.manifest_error(key, message)
    })?;
    if let Some(engine) = &sample.engine {
        let work = served::Work {
            engine,
            prompts: &rendered,
            params: &params,
            prefix: &prefix,
            forced_text: &format.forced_response,
        };
        return served::run(plan, iteration, &policy_path, checkpoint, &work, host);
    }
    let (checkpoint, model) = policy.model()?;

    let k = sample.k as usize;
    let chunk_size = sample.batch_prompts as usize;
    let chunks: Vec<&[Prompt]> = rendered.chunks(chunk_size).collect();
    let output = ChunkedOutput::new(run.phase_output(iteration, Phase::Sample));
    let bar = progress::bar(
        &format!("iter {iteration} sample"),
        "instructions",
        rendered.len() as u64,
        plan.options.progress,
    );
    let started = Instant::now();
    let (mut tokens_done, mut outputs_done) = (0usize, 0usize);
    for (index, chunk) in chunks.iter().enumerate() {
        if output.has(index) {
            bar.inc(chunk.len() as u64);
            continue;
        }
        let requests: Vec<GenerationRequest> = chunk
            .iter()
            .map(|prompt| GenerationRequest {
                prompt: prompt.tokens.clone(),
                seeds: (0..k)
                    .map(|j| seeds::sample_seed(plan.manifest.run.seed, iteration, &prompt.id, j))
                    .collect(),
            })
            .collect();
        let sequences = generate_showing_rate(
            model,
            &checkpoint.tokenizer,
            &requests,
            &params,
            (&bar, started, &mut tokens_done),
        )
        .map_err(|e| PipelineError::model(format!("iteration {iteration}: sampling"), e))?;
        let mut records: Vec<SampleRecord> = chunk
            .iter()
            .map(|prompt| SampleRecord {
                id: prompt.id.clone(),
                prompt: prompt.messages.clone(),
                assistant_prefix: prefix.clone(),
                outputs: Vec::with_capacity(k),
            })
            .collect();
        for sequence in sequences {
            let record = &mut records[sequence.request];
            record.outputs.push(Output {
                seed: requests[sequence.request].seeds[sequence.sample],
                text: format!("{prefix}{}", sequence.text),
                tokens: sequence.tokens.len() as u32,
                finish: finish_name(&sequence.finish).to_string(),
                forced_response: sequence.forced_response,
            });
            outputs_done += 1;
        }
        host.time(|| output.write(index, &records))?;
        bar.inc(chunk.len() as u64);
    }
    host.time(|| output.finish(chunks.len()))?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "iteration {iteration} sample: {} instructions × {k} = {outputs_done} outputs sampled \
         now ({} resumed), {tokens_done} tokens in {seconds:.1} s ({:.1} tokens/s)",
        rendered.len(),
        rendered.len() * k - outputs_done,
        tokens_done as f64 / seconds.max(1e-9)
    );
    Ok(())
}

/// Renders each instruction with the template plugin and encodes the rendering under the model's
/// chat template, followed by `prefix` (the assistant prefix, or nothing).
pub(crate) fn render_prompts(
    template: &mut Plugin,
    checkpoint: &Checkpoint,
    instructions: &[Instruction],
    prefix: &str,
    host: &mut HostTime,
    plugin_error: &dyn Fn(PluginError) -> PipelineError,
) -> Result<Vec<Prompt>, PipelineError> {
    let mut rendered = Vec::with_capacity(instructions.len());
    for instruction in instructions {
        let messages = host
            .time(|| template.render(&instruction.messages))
            .map_err(plugin_error)?;
        let tokens = checkpoint.encode_chat_with_prefix(&messages, prefix)?;
        rendered.push(Prompt {
            id: instruction.id.clone(),
            messages,
            tokens,
        });
    }
    Ok(rendered)
}

/// Refuses a prompt that leaves too few of the model's positions for the new tokens (and the
/// forced response separator); `error` makes the error about a settings key.
pub(crate) fn check_prompt_room(
    prompts: &[Prompt],
    params: &SamplingParams,
    checkpoint: &Checkpoint,
    error: &dyn Fn(&str, String) -> PipelineError,
) -> Result<(), PipelineError> {
    let limit = checkpoint.config.max_position_embeddings;
    let room = params.max_new_tokens
        + params
            .response_forcing
            .as_ref()
            .map_or(0, |forcing| forcing.forced_tokens.len());
    match prompts.iter().find(|p| p.tokens.len() + room > limit) {
        Some(long) => Err(error(
            "sample.max_new_tokens",
            format!(
                "instruction `{}`: its prompt has {} tokens; with {room} new tokens it exceeds \
                 the model's {limit} positions",
                long.id,
                long.tokens.len()
            ),
        )),
        None => Ok(()),
    }
}

/// Generates `requests` in one batch, showing the tokens per second since `started` on the bar;
/// adds the generated tokens to `tokens_done`.
pub(crate) fn generate_showing_rate(
    model: &CausalLm,
    tokenizer: &Tokenizer,
    requests: &[GenerationRequest],
    params: &SamplingParams,
    (bar, started, tokens_done): (&ProgressBar, Instant, &mut usize),
) -> Result<Vec<GeneratedSequence>, ModelError> {
    let mut chunk_tokens = 0usize;
    let (sequences, _) = generate(model, tokenizer, requests, params, &mut |_| {
        chunk_tokens += 1;
        if chunk_tokens.is_multiple_of(64) {
            let rate =
                (*tokens_done + chunk_tokens) as f64 / started.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!("{rate:.0} tokens/s"));
        }
        ControlFlow::Continue(())
    })?;
    *tokens_done += chunk_tokens;
    Ok(sequences)
}

/// The sampler settings of the manifest, with response forcing when `sample.thought_budget` is
/// set and the template has a response separator.
pub(crate) fn sampling_params(
    plan: &RunPlan<'_>,
    checkpoint: &Checkpoint,
    format: &OutputFormat,
) -> Result<SamplingParams, PipelineError> {
    sampling_params_of(
        &plan.manifest.sample,
        checkpoint,
        format,
        &|key, message| plan.manifest_error(key, message),
    )
}

/// The sampler settings of `sample`, with response forcing when `sample.thought_budget` is set
/// and the template has a response separator; `error` makes the error about a settings key.
pub(crate) fn sampling_params_of(
    sample: &SampleSection,
    checkpoint: &Checkpoint,
    format: &OutputFormat,
    error: &dyn Fn(&str, String) -> PipelineError,
) -> Result<SamplingParams, PipelineError> {
    let response_forcing = match (&format.response_separator, sample.thought_budget) {
        (Some(separator), budget) if budget > 0 => {
            let forced_tokens = checkpoint.tokenizer.encode(&format.forced_response)?;
            if forced_tokens.is_empty() || !format.forced_response.contains(separator.as_str()) {
                return Err(error(
                    "plugins.template",
                    format!(
                        "the template's forced response text {:?} does not contain its response \
                         separator {separator:?}; sample.thought_budget cannot force it",
                        format.forced_response
                    ),
                ));
            }
            Some(ResponseForcing {
                separator: separator.clone(),
                forced_tokens,
                thought_budget: budget as usize,
            })
        }
        _ => None,
    };
    let params = SamplingParams {
        temperature: sample.temperature,
        top_p: sample.top_p,
        max_new_tokens: sample.max_new_tokens as usize,
        stop_token_ids: checkpoint.stop_token_ids(),
        response_forcing,
        ..SamplingParams::default()
    };
    params
        .validate()
        .map_err(|e| error("sample", e.to_string()))?;
    Ok(params)
}

/// The run files' name of why a sequence ended.
pub(crate) fn finish_name(finish: &FinishReason) -> &'static str {
    match finish {
        FinishReason::StopToken(_) => "stop",
        FinishReason::StopString(_) => "stop-string",
        FinishReason::Length => "length",
    }
}
