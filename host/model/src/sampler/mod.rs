//! Batched generation: K samples of several prompts decoded together.
//!
//! Each distinct prompt is prefilled once (all prompts in one left-padded batch) and its cache
//! rows are copied to its samples; decoding then runs one static-shape step for all rows at a
//! time over a preallocated cache. The only host round trip per step is reading the last
//! position's logits, which sampling needs. Every sample has its own random stream seeded by
//! its own seed, so a sample does not depend on the batch it is decoded in. Finished rows are
//! dropped from the batch once a quarter of it has finished.

mod filter;
mod rng;

use std::cell::Cell;
use std::ops::ControlFlow;
use std::time::Instant;

use ponder_checkpoint::{ModelConfig, Tokenizer};

pub use filter::sample_token;
pub use rng::SequenceRng;

use crate::batch::{PaddingSide, TokenBatch};
use crate::{CausalLm, CpuEngine, CpuKvCache, KvCache, ModelError};

/// What the sampler needs of a model: a cache, a forward of new columns that returns each row's
/// last logits, and a copy of chosen cache rows.
trait Decoder {
    type Cache;
    fn vocab_size(&self) -> usize;
    fn new_cache(&self, rows: usize, capacity: usize) -> Self::Cache;
    fn forward_last(
        &self,
        batch: &TokenBatch,
        cache: &mut Self::Cache,
    ) -> Result<Vec<f32>, ModelError>;
    fn select_rows(
        cache: &Self::Cache,
        rows: &[usize],
        capacity: usize,
    ) -> Result<Self::Cache, ModelError>;
}

impl Decoder for CausalLm {
    type Cache = KvCache;
    fn vocab_size(&self) -> usize {
        self.config().vocab_size
    }
    fn new_cache(&self, rows: usize, capacity: usize) -> KvCache {
        KvCache::new(self, rows, capacity)
    }
    fn forward_last(
        &self,
        batch: &TokenBatch,
        cache: &mut KvCache,
    ) -> Result<Vec<f32>, ModelError> {
        read_logits(self.forward_cached(batch, cache, true)?)
    }
    fn select_rows(
        cache: &KvCache,
        rows: &[usize],
        capacity: usize,
    ) -> Result<KvCache, ModelError> {
        cache.select_rows(rows, capacity)
    }
}

impl Decoder for CpuEngine {
    type Cache = CpuKvCache;
    fn vocab_size(&self) -> usize {
        self.config().vocab_size
    }
    fn new_cache(&self, rows: usize, capacity: usize) -> CpuKvCache {
        CpuEngine::new_cache(self, rows, capacity)
    }
    fn forward_last(
        &self,
        batch: &TokenBatch,
        cache: &mut CpuKvCache,
    ) -> Result<Vec<f32>, ModelError> {
        CpuEngine::forward_last(self, batch, cache)
    }
    fn select_rows(
        cache: &CpuKvCache,
        rows: &[usize],
        capacity: usize,
    ) -> Result<CpuKvCache, ModelError> {
        cache.select_rows(rows, capacity)
    }
}

/// How tokens are chosen and when a sequence stops.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingParams {
    /// Softmax temperature; 0 means greedy (argmax).
    pub temperature: f32,
    /// Nucleus sampling: keep the smallest set of tokens with this much mass (1 = off).
    pub top_p: f32,
    /// Keep only the `top_k` most likely tokens (0 = off).
    pub top_k: usize,
    /// Drop tokens less likely than `min_p` times the most likely one (0 = off).
    pub min_p: f32,
    /// Most new tokens per sequence.
    pub max_new_tokens: usize,
    /// Tokens that end a sequence (EOS, end of turn); they are not part of the output.
    pub stop_token_ids: Vec<u32>,
    /// Strings that end a sequence; the output text is cut before the first one.
    pub stop_strings: Vec<String>,
    /// Tokens that may never be sampled (the fixed-length benchmark suppresses end tokens).
    pub suppress_token_ids: Vec<u32>,
    /// Two-part outputs (a thought, then a response): when set, every sequence starts in its
    /// thought, and the sampler makes sure a response follows (see [`ResponseForcing`]).
    pub response_forcing: Option<ResponseForcing>,
}

/// How the sampler keeps a thought from ending the output: the thought ends when the model
/// writes `separator` itself, or else — at a stop token or after `thought_budget` tokens — the
/// sampler appends `forced_tokens` (the separator as the template wants it forced) and the
/// sequence goes on with the response. A stop token or stop string during the thought does not
/// end the sequence; `max_new_tokens` still bounds the whole output, forced tokens included.
#[derive(Clone, Debug, PartialEq)]
pub struct ResponseForcing {
    /// The text that starts the response when the model writes it.
    pub separator: String,
    /// Tokens appended when the thought ends without the separator.
    pub forced_tokens: Vec<u32>,
    /// Most tokens of a thought before the response is forced (at least 1).
    pub thought_budget: usize,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            min_p: 0.0,
            max_new_tokens: 256,
            stop_token_ids: Vec::new(),
            stop_strings: Vec::new(),
            suppress_token_ids: Vec::new(),
            response_forcing: None,
        }
    }
}

impl SamplingParams {
    /// Checks the values are in range.
    ///
    /// # Errors
    ///
    /// [`ModelError::InvalidRequest`] naming the offending parameter.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |what: String| Err(ModelError::InvalidRequest(what));
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return bad(format!(
                "temperature must be >= 0, got {}",
                self.temperature
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!("top_p must be in (0, 1], got {}", self.top_p));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad(format!("min_p must be in [0, 1], got {}", self.min_p));
        }
        if self.stop_strings.iter().any(String::is_empty) {
            return bad("a stop string is empty (it would end every sample at once)".into());
        }
        if let Some(forcing) = &self.response_forcing {
            if forcing.separator.is_empty() {
                return bad("the response separator is empty".into());
            }
            if forcing.forced_tokens.is_empty() {
                return bad("the forced response text has no tokens".into());
            }
            if forcing.thought_budget == 0 || forcing.thought_budget >= self.max_new_tokens {
                return bad(format!(
                    "the thought budget must be at least 1 and below max_new_tokens ({}), got {}",
                    self.max_new_tokens, forcing.thought_budget
                ));
            }
        }
        Ok(())
    }
}

/// One prompt and the seeds of its samples (one sample per seed).
#[derive(Clone, Debug, PartialEq)]
pub struct GenerationRequest {
    /// Prompt token ids (chat template already applied).
    pub prompt: Vec<u32>,
    /// One seed per sample.
    pub seeds: Vec<u64>,
}

/// Why a sequence ended.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// A stop token was sampled (not included in the output).
    StopToken(u32),
    /// A stop string appeared (the text is cut before it).
    StopString(String),
    /// `max_new_tokens` reached.
    Length,
}

/// A generated sequence.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct GeneratedSequence {
    /// Index of its request.
    pub request: usize,
    /// Index of its seed within the request.
    pub sample: usize,
    /// The new tokens (without a final stop token).
    pub tokens: Vec<u32>,
    /// The new tokens decoded without special tokens, cut before any stop string.
    pub text: String,
    /// Why it ended.
    pub finish: FinishReason,
    /// Whether the sampler appended the response separator ([`ResponseForcing`]); the forced
    /// tokens are part of `tokens` and `text`.
    pub forced_response: bool,
}

/// Timing and token counts of one [`generate`] call.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct GenerationStats {
    /// Distinct prompt tokens prefilled.
    pub prefill_tokens: usize,
    /// Seconds spent prefilling (including sampling the first tokens).
    pub prefill_seconds: f64,
    /// New tokens produced, stop tokens included.
    pub generated_tokens: usize,
    /// Seconds spent in decode steps.
    pub decode_seconds: f64,
    /// Decode steps (batched forwards after the prefill).
    pub decode_steps: usize,
}

/// A token appended to a sequence, reported to the streaming callback.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamEvent {
    /// Index of the sequence in the output order (requests in order, samples in order).
    pub sequence: usize,
    /// The token (stop tokens are not reported).
    pub token: u32,
}

struct Row {
    sequence: usize,
    rng: SequenceRng,
    tokens: Vec<u32>,
    /// Position of the next token to feed.
    position: u32,
    finish: Option<FinishReason>,
    text: String,
    /// Still in the thought (only with [`ResponseForcing`]).
    thinking: bool,
    /// Forced tokens still to feed, in reverse order (popped from the end).
    pending: Vec<u32>,
    forced_response: bool,
}

impl Row {
    /// Whether this row's next token is chosen by sampling (not finished, nothing forced).
    fn samples(&self) -> bool {
        self.finish.is_none() && self.pending.is_empty()
    }
}

/// Generates one sample per seed of every request, all decoded in one batch.
///
/// `tokenizer` decodes the output text (and finds stop strings); `on_token` sees every token
/// appended to a sequence, in the order produced, and may stop the whole generation by
/// returning [`ControlFlow::Break`]: it then ends after the current step with
/// [`ModelError::Interrupted`].
///
/// The longest prompt plus `max_new_tokens` must fit the model's context
/// (`max_position_embeddings`); the caller bounds the batch, whose cache
/// [`generation_cache_bytes`] sizes.
///
/// On the plain CPU device the model runs through [`CpuEngine`] (same weights, hand-written
/// kernels); elsewhere through burn.
///
/// # Errors
///
/// [`ModelError::InvalidRequest`] for invalid sampling parameters or requests (empty prompt,
/// more tokens than the model's context), [`ModelError::Interrupted`] when `on_token` stopped
/// it, and any error of the forward pass or of decoding.
pub fn generate(
    model: &CausalLm,
    tokenizer: &Tokenizer,
    requests: &[GenerationRequest],
    params: &SamplingParams,
    on_token: &mut dyn FnMut(&StreamEvent) -> ControlFlow<()>,
) -> Result<(Vec<GeneratedSequence>, GenerationStats), ModelError> {
    check_context(model.config(), requests, params)?;
    // The inner steps report tokens through a plain callback; a break is remembered and acted
    // on after the step.
    let stopped = Cell::new(false);
    let mut report = |event: &StreamEvent| {
        if !stopped.get() && on_token(event).is_break() {
            stopped.set(true);
        }
    };
    let result = match CpuEngine::new(model) {
        Some(engine) => generate_with(&engine, tokenizer, requests, params, &mut report, &stopped),
        None => generate_with(model, tokenizer, requests, params, &mut report, &stopped),
    };
    if stopped.get() {
        return Err(ModelError::Interrupted);
    }
    result
}

/// Refuses requests whose longest prompt plus `max_new_tokens` does not fit the model's context
/// before anything is allocated for them.
fn check_context(
    config: &ModelConfig,
    requests: &[GenerationRequest],
    params: &SamplingParams,
) -> Result<(), ModelError> {
    let longest = requests.iter().map(|r| r.prompt.len()).max().unwrap_or(0);
    let context = config.max_position_embeddings;
    if longest
        .checked_add(params.max_new_tokens)
        .is_none_or(|needed| needed > context)
    {
        return Err(ModelError::InvalidRequest(format!(
            "a prompt of {longest} tokens plus max_new_tokens {} does not fit the model's \
             context of {context} positions (max_position_embeddings)",
            params.max_new_tokens
        )));
    }
    Ok(())
}

/// Bytes of key/value cache [`generate`] holds at its peak for `rows` samples of `prompts`
/// distinct prompts padded to `prompt_len` tokens, each with room for `max_new_tokens` more:
/// the prompt cache and the sample cache, briefly both. Callers size their batches with it.
pub fn generation_cache_bytes(
    config: &ModelConfig,
    prompts: usize,
    prompt_len: usize,
    rows: usize,
    max_new_tokens: usize,
) -> u128 {
    let product = |factors: &[usize]| {
        factors
            .iter()
            .fold(1u128, |total, &factor| total.saturating_mul(factor as u128))
    };
    let per_position = product(&[
        config.num_hidden_layers,
        2,
        config.num_key_value_heads,
        config.head_dim,
        std::mem::size_of::<f32>(),
    ]);
    let prompt_cache = product(&[prompts, prompt_len]).saturating_mul(per_position);
    let positions = (prompt_len as u128).saturating_add(max_new_tokens as u128);
    let sample_cache = (rows as u128)
        .saturating_mul(positions)
        .saturating_mul(per_position);
    prompt_cache.saturating_add(sample_cache)
}

fn generate_with<D: Decoder>(
    model: &D,
    tokenizer: &Tokenizer,
    requests: &[GenerationRequest],
    params: &SamplingParams,
    on_token: &mut dyn FnMut(&StreamEvent),
    stopped: &Cell<bool>,
) -> Result<(Vec<GeneratedSequence>, GenerationStats), ModelError> {
    params.validate()?;
    let vocab = model.vocab_size();
    for (index, request) in requests.iter().enumerate() {
        if request.prompt.is_empty() {
            return Err(ModelError::InvalidRequest(format!(
                "prompt {index} is empty"
            )));
        }
    }
    let mut stats = GenerationStats::default();
    let mut rows: Vec<Row> = Vec::new();
    let mut prompt_of_row = Vec::new();
    for (request_index, request) in requests.iter().enumerate() {
        for &seed in &request.seeds {
            prompt_of_row.push(request_index);
            rows.push(Row {
                sequence: rows.len(),
                rng: SequenceRng::new(seed),
                tokens: Vec::new(),
                position: request.prompt.len() as u32,
                finish: None,
                text: String::new(),
                thinking: params.response_forcing.is_some(),
                pending: Vec::new(),
                forced_response: false,
            });
        }
    }
    let finish_all = |rows: Vec<Row>| -> Vec<GeneratedSequence> {
        let mut out = Vec::with_capacity(rows.len());
        let mut sample_counter = vec![0usize; requests.len()];
        for (row, &request) in rows.into_iter().zip(&prompt_of_row) {
            out.push(GeneratedSequence {
                request,
                sample: sample_counter[request],
                tokens: row.tokens,
                text: row.text,
                finish: row.finish.unwrap_or(FinishReason::Length),
                forced_response: row.forced_response,
            });
            sample_counter[request] += 1;
        }
        out
    };
    if rows.is_empty() || params.max_new_tokens == 0 {
        return Ok((finish_all(rows), stats));
    }

    // Prefill every distinct request once.
    let started = Instant::now();
    let prompts: Vec<Vec<u32>> = requests.iter().map(|r| r.prompt.clone()).collect();
    let prompt_batch = TokenBatch::padded(&prompts, PaddingSide::Left)?;
    prompt_batch.validate(vocab)?;
    stats.prefill_tokens = prompts.iter().map(Vec::len).sum();
    let mut prompt_cache = model.new_cache(prompts.len(), prompt_batch.len);
    let prompt_logits = model.forward_last(&prompt_batch, &mut prompt_cache)?;
    let forced = params
        .response_forcing
        .as_ref()
        .map_or(0, |forcing| forcing.forced_tokens.len());
    let capacity = prompt_batch.len + params.max_new_tokens + forced;
    let mut cache = D::select_rows(&prompt_cache, &prompt_of_row, capacity)?;
    drop(prompt_cache);
    // `active[i]` is the row decoded in cache row `i`.
    let mut active: Vec<usize> = (0..rows.len()).collect();
    let mut next_tokens = vec![0u32; rows.len()];
    for (row_index, row) in rows.iter_mut().enumerate() {
        let request = prompt_of_row[row_index];
        let logits = &prompt_logits[request * vocab..][..vocab];
        let token = sample_token(logits, params, &mut row.rng);
        next_tokens[row_index] = token;
    }
    for row_index in 0..rows.len() {
        accept_token(
            &mut rows[row_index],
            next_tokens[row_index],
            params,
            tokenizer,
            on_token,
        )?;
        stats.generated_tokens += 1;
    }
    stats.prefill_seconds = started.elapsed().as_secs_f64();

    let decode_started = Instant::now();
    loop {
        if stopped.get() {
            return Err(ModelError::Interrupted);
        }
        let unfinished = active.iter().filter(|&&r| rows[r].finish.is_none()).count();
        if unfinished == 0 {
            break;
        }
        // Drop finished rows once they are a quarter of the batch: the copy pays for itself.
        if unfinished * 4 <= active.len() * 3 && unfinished < active.len() {
            let keep: Vec<usize> = (0..active.len())
                .filter(|&i| rows[active[i]].finish.is_none())
                .collect();
            cache = D::select_rows(&cache, &keep, capacity)?;
            active = keep.iter().map(|&i| active[i]).collect();
        }
        let batch = TokenBatch {
            batch: active.len(),
            len: 1,
            tokens: active
                .iter()
                .map(|&r| rows[r].tokens.last().copied().unwrap_or(0))
                .collect(),
            positions: active.iter().map(|&r| rows[r].position).collect(),
            valid: vec![true; active.len()],
        };
        let logits = model.forward_last(&batch, &mut cache)?;
        stats.decode_steps += 1;
        let sampled = sample_rows(&logits, vocab, &active, &mut rows, params);
        for (slot, &row_index) in active.iter().enumerate() {
            let row = &mut rows[row_index];
            row.position += 1;
            if row.finish.is_some() {
                continue;
            }
            match row.pending.pop() {
                Some(token) => push_forced(row, token, params, tokenizer, on_token)?,
                None => accept_token(row, sampled[slot], params, tokenizer, on_token)?,
            }
            stats.generated_tokens += 1;
        }
    }
    stats.decode_seconds = decode_started.elapsed().as_secs_f64();
    Ok((finish_all(rows), stats))
}

/// Samples the next token of every active, unfinished row (rows split over two threads: the
/// softmax over the vocabulary is the costly part).
fn sample_rows(
    logits: &[f32],
    vocab: usize,
    active: &[usize],
    rows: &mut [Row],
    params: &SamplingParams,
) -> Vec<u32> {
    let mut rngs: Vec<(usize, Option<SequenceRng>)> = active
        .iter()
        .enumerate()
        .map(|(slot, &r)| (slot, rows[r].samples().then(|| rows[r].rng.clone())))
        .collect();
    let mut out = vec![0u32; active.len()];
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let chunk = active.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        for (rng_chunk, out_chunk) in rngs.chunks_mut(chunk).zip(out.chunks_mut(chunk)) {
            scope.spawn(move || {
                for ((slot, rng), token) in rng_chunk.iter_mut().zip(out_chunk.iter_mut()) {
                    if let Some(rng) = rng {
                        *token = sample_token(&logits[*slot * vocab..][..vocab], params, rng);
                    }
                }
            });
        }
    });
    for (slot, rng) in rngs {
        if let Some(rng) = rng {
            rows[active[slot]].rng = rng;
        }
    }
    out
}

fn accept_token(
    row: &mut Row,
    token: u32,
    params: &SamplingParams,
    tokenizer: &Tokenizer,
    on_token: &mut dyn FnMut(&StreamEvent),
) -> Result<(), ModelError> {
    if params.stop_token_ids.contains(&token) {
        if row.thinking
            && let Some(forcing) = &params.response_forcing
        {
            // The model ended inside its thought: the response is forced instead.
            return start_forced_response(row, forcing, params, tokenizer, on_token);
        }
        row.finish = Some(FinishReason::StopToken(token));
        row.text = tokenizer.decode(&row.tokens, true)?;
        return Ok(());
    }
    row.tokens.push(token);
    on_token(&StreamEvent {
        sequence: row.sequence,
        token,
    });
    if row.thinking
        && let Some(forcing) = &params.response_forcing
    {
        let text = tokenizer.decode(&row.tokens, true)?;
        if text.contains(forcing.separator.as_str()) {
            row.thinking = false;
        } else if row.tokens.len() >= forcing.thought_budget {
            return start_forced_response(row, forcing, params, tokenizer, on_token);
        } else {
            return Ok(());
        }
    }
    check_end(row, params, tokenizer)
}

/// Ends the thought by appending the forced separator tokens: the first now, the rest fed one
/// per decode step.
fn start_forced_response(
    row: &mut Row,
    forcing: &ResponseForcing,
    params: &SamplingParams,
    tokenizer: &Tokenizer,
    on_token: &mut dyn FnMut(&StreamEvent),
) -> Result<(), ModelError> {
    row.thinking = false;
    row.forced_response = true;
    row.pending = forcing.forced_tokens.iter().rev().copied().collect();
    match row.pending.pop() {
        Some(token) => push_forced(row, token, params, tokenizer, on_token),
        None => Ok(()),
    }
}

/// Appends a forced token (never a stop: it was not sampled).
fn push_forced(
    row: &mut Row,
    token: u32,
    params: &SamplingParams,
    tokenizer: &Tokenizer,
    on_token: &mut dyn FnMut(&StreamEvent),
) -> Result<(), ModelError> {
    row.tokens.push(token);
    on_token(&StreamEvent {
        sequence: row.sequence,
        token,
    });
    if row.pending.is_empty() {
        check_end(row, params, tokenizer)
    } else {
        Ok(())
    }
}

/// Ends the row at a stop string or at `max_new_tokens`.
fn check_end(
    row: &mut Row,
    params: &SamplingParams,
    tokenizer: &Tokenizer,
) -> Result<(), ModelError> {
    if !params.stop_strings.is_empty() {
        let text = tokenizer.decode(&row.tokens, true)?;
        if let Some((cut, stop)) = params
            .stop_strings
            .iter()
            .filter_map(|stop| text.find(stop.as_str()).map(|at| (at, stop)))
            .min_by_key(|(at, _)| *at)
        {
            row.text = text[..cut].to_string();
            row.finish = Some(FinishReason::StopString(stop.clone()));
            return Ok(());
        }
    }
    if row.tokens.len() >= params.max_new_tokens {
        row.finish = Some(FinishReason::Length);
        row.text = tokenizer.decode(&row.tokens, true)?;
    }
    Ok(())
}

fn read_logits(logits: burn::tensor::Tensor<3>) -> Result<Vec<f32>, ModelError> {
    logits
        .try_into_vec_as::<f32>()
        .map_err(|e| ModelError::TensorRead(format!("{e:?}")))
}
