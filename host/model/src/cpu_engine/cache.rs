//! The CPU engine's key/value cache: per layer one flat `[rows, kv_heads, capacity, head_dim]`
//! buffer each for keys and values, so a row's keys of one head are contiguous and attention
//! reads only the columns written so far.

use ponder_checkpoint::ModelConfig;

use crate::ModelError;
use crate::cache::{check_append, check_row_selection};

/// Keys and values of every layer for a batch of rows, with per-column validity.
#[derive(Clone, Debug)]
pub struct CpuKvCache {
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
    rows: usize,
    capacity: usize,
    len: usize,
    /// `[rows, capacity]`: whether a column holds a real token (not padding).
    valid: Vec<bool>,
    kv_heads: usize,
    head_dim: usize,
}

/// One layer's cache, read-only (what attention sees).
pub(crate) struct LayerView<'a> {
    keys: &'a [f32],
    values: &'a [f32],
    valid: &'a [bool],
    capacity: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl LayerView<'_> {
    fn offset(&self, row: usize, head: usize, column: usize) -> usize {
        ((row * self.kv_heads + head) * self.capacity + column) * self.head_dim
    }

    /// Keys of `row`, `head` at columns `0..columns`, `[columns, head_dim]`.
    pub(crate) fn keys(&self, row: usize, head: usize, columns: usize) -> &[f32] {
        &self.keys[self.offset(row, head, 0)..][..columns * self.head_dim]
    }

    /// Values of `row`, `head` at columns `0..columns`, `[columns, head_dim]`.
    pub(crate) fn values(&self, row: usize, head: usize, columns: usize) -> &[f32] {
        &self.values[self.offset(row, head, 0)..][..columns * self.head_dim]
    }

    /// Whether `column` of `row` holds a real token.
    pub(crate) fn valid(&self, row: usize, column: usize) -> bool {
        self.valid[row * self.capacity + column]
    }
}

impl CpuKvCache {
    /// An empty cache for `rows` rows of up to `capacity` columns.
    pub fn new(config: &ModelConfig, rows: usize, capacity: usize) -> CpuKvCache {
        let (kv_heads, head_dim) = (config.num_key_value_heads, config.head_dim);
        let size = rows * kv_heads * capacity * head_dim;
        CpuKvCache {
            keys: (0..config.num_hidden_layers)
                .map(|_| vec![0.0; size])
                .collect(),
            values: (0..config.num_hidden_layers)
                .map(|_| vec![0.0; size])
                .collect(),
            rows,
            capacity,
            len: 0,
            valid: vec![false; rows * capacity],
            kv_heads,
            head_dim,
        }
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no column has been written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Maximum columns.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Checks that `new_len` columns fit and records their validity; returns the first new
    /// column. The columns count once [`CpuKvCache::commit_append`] is called.
    pub(crate) fn prepare_append(
        &mut self,
        rows: usize,
        new_len: usize,
        valid: &[bool],
    ) -> Result<usize, ModelError> {
        check_append(rows, new_len, self.rows, self.len, self.capacity)?;
        for row in 0..rows {
            for column in 0..new_len {
                self.valid[row * self.capacity + self.len + column] = valid[row * new_len + column];
            }
        }
        Ok(self.len)
    }

    /// Counts the columns written since [`CpuKvCache::prepare_append`].
    pub(crate) fn commit_append(&mut self, new_len: usize) {
        self.len += new_len;
    }

    /// Writes keys and values `[rows * new_len, kv_heads * head_dim]` of `layer` at columns
    /// `start..start + new_len`.
    pub(crate) fn write(
        &mut self,
        layer: usize,
        start: usize,
        new_len: usize,
        keys: &[f32],
        values: &[f32],
    ) {
        let (kv_heads, head_dim, capacity) = (self.kv_heads, self.head_dim, self.capacity);
        for (target, source) in [
            (&mut self.keys[layer], keys),
            (&mut self.values[layer], values),
        ] {
            for row in 0..self.rows {
                for column in 0..new_len {
                    let token = row * new_len + column;
                    for head in 0..kv_heads {
                        let from = (token * kv_heads + head) * head_dim;
                        let to = ((row * kv_heads + head) * capacity + start + column) * head_dim;
                        target[to..to + head_dim].copy_from_slice(&source[from..from + head_dim]);
                    }
                }
            }
        }
    }

    /// Layer `layer`'s keys, values and validity for attention.
    pub(crate) fn layer(&self, layer: usize) -> LayerView<'_> {
        LayerView {
            keys: &self.keys[layer],
            values: &self.values[layer],
            valid: &self.valid,
            capacity: self.capacity,
            kv_heads: self.kv_heads,
            head_dim: self.head_dim,
        }
    }

    /// A new cache whose row `i` is this cache's row `rows[i]` (rows may repeat: a prompt
    /// prefilled once is shared by its samples; leaving rows out drops finished sequences),
    /// with room for `capacity` columns (at least [`CpuKvCache::len`]).
    ///
    /// # Errors
    ///
    /// [`ModelError::InvalidRequest`] for a row out of range or a capacity below the length.
    pub fn select_rows(&self, rows: &[usize], capacity: usize) -> Result<CpuKvCache, ModelError> {
        check_row_selection(rows, self.rows, self.len, capacity)?;
        let (kv_heads, head_dim) = (self.kv_heads, self.head_dim);
        let written = self.len * head_dim;
        let copy = |source: &Vec<f32>| -> Vec<f32> {
            let mut target = vec![0.0; rows.len() * kv_heads * capacity * head_dim];
            for (new_row, &old_row) in rows.iter().enumerate() {
                for head in 0..kv_heads {
                    let from = (old_row * kv_heads + head) * self.capacity * head_dim;
                    let to = (new_row * kv_heads + head) * capacity * head_dim;
                    target[to..to + written].copy_from_slice(&source[from..from + written]);
                }
            }
            target
        };
        let mut valid = vec![false; rows.len() * capacity];
        for (new_row, &old_row) in rows.iter().enumerate() {
            valid[new_row * capacity..][..self.len]
                .copy_from_slice(&self.valid[old_row * self.capacity..][..self.len]);
        }
        Ok(CpuKvCache {
            keys: self.keys.iter().map(copy).collect(),
            values: self.values.iter().map(copy).collect(),
            rows: rows.len(),
            capacity,
            len: self.len,
            valid,
            kv_heads,
            head_dim,
        })
    }
}
