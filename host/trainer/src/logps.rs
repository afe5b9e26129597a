//! Sequence log-probabilities of completions: log-softmax at the completion positions only, summed
//! per sequence.

use burn::tensor::{Device, Int, Tensor, TensorData};
use ponder_model::fused;

use crate::data::TokenizedPair;
use crate::error::TrainError;

/// What the trainer needs from a causal language model.
pub trait LogitsModel {
    /// Next-token logits `[cells, vocab]` at the given cells (`row * len + column`) of a
    /// right-padded `[rows, len]` batch of token ids (`lengths[row]` real tokens per row). Must be
    /// differentiable when the model lives on an autodiff device.
    fn logits_at(
        &self,
        ids: &[u32],
        rows: usize,
        len: usize,
        lengths: &[usize],
        cells: Tensor<1, Int>,
    ) -> Result<Tensor<2>, TrainError>;
}

/// Prompt + completion sequences laid out as a right-padded batch, with the cells whose next token
/// is a completion token.
#[derive(Debug, Clone)]
pub struct CompletionBatch {
    /// Row-major `[rows, len]` token ids, padding = 0.
    pub ids: Vec<u32>,
    /// Number of sequences.
    pub rows: usize,
    /// Padded length.
    pub len: usize,
    /// Real tokens per row.
    pub lengths: Vec<usize>,
    /// Cells (`row * len + t`) whose logits predict completion token `t + 1`.
    pub cells: Vec<i64>,
    /// The completion token predicted at each cell.
    pub targets: Vec<i64>,
    /// Row of each cell.
    pub cell_rows: Vec<usize>,
    /// Completion tokens per row.
    pub completion_tokens: Vec<usize>,
}

impl CompletionBatch {
    /// Lays out `(prompt, completion)` sequences.
    pub fn new(sequences: &[(&[u32], &[u32])]) -> Result<Self, TrainError> {
        let rows = sequences.len();
        if rows == 0 {
            return Err(TrainError::Config("empty batch".to_string()));
        }
        let lengths: Vec<usize> = sequences.iter().map(|(p, c)| p.len() + c.len()).collect();
        let len = lengths.iter().copied().max().unwrap_or(0);
        let mut ids = vec![0u32; rows * len];
        let mut cells = Vec::new();
        let mut targets = Vec::new();
        let mut cell_rows = Vec::new();
        let mut completion_tokens = Vec::with_capacity(rows);
        for (row, (prompt, completion)) in sequences.iter().enumerate() {
            if prompt.is_empty() || completion.is_empty() {
                return Err(TrainError::Config(format!(
                    "sequence {row}: the prompt and the completion need at least one token each"
                )));
            }
            let base = row * len;
            ids[base..base + prompt.len()].copy_from_slice(prompt);
            ids[base + prompt.len()..base + prompt.len() + completion.len()]
                .copy_from_slice(completion);
            for (k, &token) in completion.iter().enumerate() {
                let position = prompt.len() + k;
                cells.push((base + position - 1) as i64);
                targets.push(i64::from(token));
                cell_rows.push(row);
            }
            completion_tokens.push(completion.len());
        }
        Ok(Self {
            ids,
            rows,
            len,
            lengths,
            cells,
            targets,
            cell_rows,
            completion_tokens,
        })
    }

    /// Chosen sequences of `pairs` first, then the rejected ones in the same order.
    pub fn for_pairs(pairs: &[&TokenizedPair]) -> Result<Self, TrainError> {
        let mut sequences: Vec<(&[u32], &[u32])> = Vec::with_capacity(2 * pairs.len());
        for pair in pairs {
            sequences.push((&pair.prompt, &pair.chosen));
        }
        for pair in pairs {
            sequences.push((&pair.prompt, &pair.rejected));
        }
        Self::new(&sequences)
    }

    /// Real (unpadded) tokens in the batch.
    pub fn real_tokens(&self) -> usize {
        self.lengths.iter().sum()
    }
}

/// Per-sequence sums of completion-token log-probs, `[rows]` (differentiable with the model).
pub fn sequence_logps<M: LogitsModel>(
    model: &M,
    batch: &CompletionBatch,
    device: &Device,
) -> Result<Tensor<1>, TrainError> {
    let n = batch.cells.len();
    let cells = Tensor::<1, Int>::from_data(TensorData::new(batch.cells.clone(), [n]), device);
    let logits = model.logits_at(&batch.ids, batch.rows, batch.len, &batch.lengths, cells)?;
    let targets: Vec<usize> = batch.targets.iter().map(|&t| t as usize).collect();
    let token_logps = fused::log_softmax_at(logits, &targets).reshape([n, 1]);
    // sum per row with a [rows, n] one-hot matrix: one small matmul instead of `rows` slices
    let mut segments = vec![0f32; batch.rows * n];
    for (cell, &row) in batch.cell_rows.iter().enumerate() {
        segments[row * n + cell] = 1.0;
    }
    let segments = Tensor::<2>::from_data(TensorData::new(segments, [batch.rows, n]), device);
    Ok(segments.matmul(token_logps).reshape([batch.rows]))
}
