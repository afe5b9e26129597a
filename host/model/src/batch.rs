//! Host-side description of a padded batch of token sequences.

use crate::ModelError;

/// Which side padding goes on when sequences of different lengths share a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaddingSide {
    /// Padding before the tokens (generation: every row's last token is in the last column).
    Left,
    /// Padding after the tokens (training and scoring: row `i`, column `t` is token `t`).
    Right,
}

/// A `[batch, len]` grid of token ids with, for every cell, its RoPE position and whether it is
/// a real token or padding. Padding cells are never attended to; their outputs are meaningless.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenBatch {
    /// Number of rows.
    pub batch: usize,
    /// Number of columns.
    pub len: usize,
    /// Token ids, row-major `[batch, len]`; padding cells hold 0.
    pub tokens: Vec<u32>,
    /// Position of each cell (0 at a row's first real token); padding cells hold 0.
    pub positions: Vec<u32>,
    /// `true` for real tokens, `false` for padding.
    pub valid: Vec<bool>,
}

impl TokenBatch {
    /// Pads `sequences` to a common length on the given side. Positions count from 0 at each
    /// row's first token. Fails on an empty batch or an empty sequence.
    ///
    /// # Errors
    ///
    /// [`ModelError::InvalidRequest`] for an empty batch or an empty sequence.
    pub fn padded(sequences: &[Vec<u32>], side: PaddingSide) -> Result<Self, ModelError> {
        if sequences.is_empty() {
            return Err(ModelError::InvalidRequest("empty batch".into()));
        }
        if let Some(index) = sequences.iter().position(|s| s.is_empty()) {
            return Err(ModelError::InvalidRequest(format!(
                "sequence {index} is empty"
            )));
        }
        let len = sequences.iter().map(Vec::len).max().unwrap_or(0);
        let batch = sequences.len();
        let mut tokens = vec![0u32; batch * len];
        let mut positions = vec![0u32; batch * len];
        let mut valid = vec![false; batch * len];
        for (row, sequence) in sequences.iter().enumerate() {
            let offset = match side {
                PaddingSide::Left => len - sequence.len(),
                PaddingSide::Right => 0,
            };
            for (position, &token) in sequence.iter().enumerate() {
                let cell = row * len + offset + position;
                tokens[cell] = token;
                positions[cell] = position as u32;
                valid[cell] = true;
            }
        }
        Ok(TokenBatch {
            batch,
            len,
            tokens,
            positions,
            valid,
        })
    }

    /// Checks that the three grids have `batch * len` cells and every real token is below
    /// `vocab_size`.
    ///
    /// # Errors
    ///
    /// [`ModelError::InvalidRequest`] when the batch is inconsistent or a token is outside the
    /// vocabulary.
    pub fn validate(&self, vocab_size: usize) -> Result<(), ModelError> {
        let cells = self.batch * self.len;
        if cells == 0 {
            return Err(ModelError::InvalidRequest("empty batch".into()));
        }
        if self.tokens.len() != cells || self.positions.len() != cells || self.valid.len() != cells
        {
            return Err(ModelError::InvalidRequest(format!(
                "token batch grids must have {cells} cells ({}x{})",
                self.batch, self.len
            )));
        }
        if let Some((cell, token)) = self
            .tokens
            .iter()
            .zip(&self.valid)
            .enumerate()
            .find(|(_, (token, valid))| **valid && **token as usize >= vocab_size)
            .map(|(cell, (token, _))| (cell, *token))
        {
            return Err(ModelError::InvalidRequest(format!(
                "token id {token} at row {}, column {} is outside the vocabulary of {vocab_size}",
                cell / self.len,
                cell % self.len
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn left_and_right_padding_place_tokens_and_positions() {
        let rows = vec![vec![5, 6, 7], vec![9]];
        let left = TokenBatch::padded(&rows, PaddingSide::Left).unwrap();
        assert_eq!(left.tokens, vec![5, 6, 7, 0, 0, 9]);
        assert_eq!(left.positions, vec![0, 1, 2, 0, 0, 0]);
        assert_eq!(left.valid, vec![true, true, true, false, false, true]);
        let right = TokenBatch::padded(&rows, PaddingSide::Right).unwrap();
        assert_eq!(right.tokens, vec![5, 6, 7, 9, 0, 0]);
        assert_eq!(right.valid, vec![true, true, true, true, false, false]);
        assert!(TokenBatch::padded(&[vec![]], PaddingSide::Left).is_err());
    }
}
