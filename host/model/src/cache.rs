//! A preallocated key/value cache: per layer one `[batch, kv_heads, capacity, head_dim]` key
//! and value tensor, written in place column by column.
//!
//! Shapes stay static while decoding: attention always reads the full capacity and a mask hides
//! the columns that are padding or not written yet. On burn's flex backend a uniquely owned
//! tensor is updated in place by `slice_assign`, so appending a token copies only that token's
//! keys and values.

use burn::tensor::{Device, Int, Tensor, TensorData, s};

use crate::{CausalLm, ModelError};

/// Keys and values of every layer for a batch of rows, with per-column validity.
#[derive(Debug)]
pub struct KvCache {
    keys: Vec<Option<Tensor<4>>>,
    values: Vec<Option<Tensor<4>>>,
    batch: usize,
    capacity: usize,
    len: usize,
    /// `[batch, capacity]`: whether a column holds a real token (not padding).
    valid: Vec<bool>,
    kv_heads: usize,
    head_dim: usize,
    device: Device,
}

impl KvCache {
    /// An empty cache for `batch` rows of up to `capacity` columns, on the model's device.
    pub fn new(model: &CausalLm, batch: usize, capacity: usize) -> Self {
        let config = model.config();
        let device = model.device();
        let (kv_heads, head_dim) = (config.num_key_value_heads, config.head_dim);
        let zeros = || {
            Some(Tensor::<4>::zeros(
                [batch, kv_heads, capacity, head_dim],
                &device,
            ))
        };
        KvCache {
            keys: (0..config.num_hidden_layers).map(|_| zeros()).collect(),
            values: (0..config.num_hidden_layers).map(|_| zeros()).collect(),
            batch,
            capacity,
            len: 0,
            valid: vec![false; batch * capacity],
            kv_heads,
            head_dim,
            device,
        }
    }

    /// Rows.
    pub fn batch(&self) -> usize {
        self.batch
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

    /// `[batch, capacity]` validity of the columns (unwritten columns are `false`).
    pub fn valid(&self) -> &[bool] {
        &self.valid
    }

    /// A new cache whose row `i` is this cache's row `rows[i]` (rows may repeat: that is how a
    /// prompt prefilled once is shared by its samples; leaving rows out drops finished
    /// sequences), with room for `capacity` columns (at least [`KvCache::len`]).
    ///
    /// # Errors
    ///
    /// [`ModelError::InvalidRequest`] for a row out of range or a capacity below the length.
    pub fn select_rows(&self, rows: &[usize], capacity: usize) -> Result<KvCache, ModelError> {
        check_row_selection(rows, self.batch, self.len, capacity)?;
        let indices: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
        let indices =
            Tensor::<1, Int>::from_data(TensorData::new(indices, [rows.len()]), &self.device);
        let new_batch = rows.len();
        let resize = |tensor: &Option<Tensor<4>>| -> Option<Tensor<4>> {
            let tensor = tensor.as_ref()?.clone();
            let selected = tensor.select(0, indices.clone());
            Some(if capacity == self.capacity {
                selected
            } else if capacity > self.capacity {
                let extra = Tensor::<4>::zeros(
                    [
                        new_batch,
                        self.kv_heads,
                        capacity - self.capacity,
                        self.head_dim,
                    ],
                    &self.device,
                );
                Tensor::cat(vec![selected, extra], 2)
            } else {
                // Copy the narrowed view so later in-place writes own their buffer.
                selected.narrow(2, 0, capacity) * 1.0
            })
        };
        let mut valid = vec![false; new_batch * capacity];
        for (new_row, &row) in rows.iter().enumerate() {
            let keep = capacity.min(self.capacity);
            valid[new_row * capacity..][..keep]
                .copy_from_slice(&self.valid[row * self.capacity..][..keep]);
        }
        Ok(KvCache {
            keys: self.keys.iter().map(resize).collect(),
            values: self.values.iter().map(resize).collect(),
            batch: new_batch,
            capacity,
            len: self.len,
            valid,
            kv_heads: self.kv_heads,
            head_dim: self.head_dim,
            device: self.device.clone(),
        })
    }

    /// Checks that `new_len` columns for `rows` rows fit and records their validity.
    pub(crate) fn prepare_append(
        &mut self,
        rows: usize,
        new_len: usize,
        valid: &[bool],
    ) -> Result<(), ModelError> {
        check_append(rows, new_len, self.batch, self.len, self.capacity)?;
        for row in 0..rows {
            self.valid[row * self.capacity + self.len..][..new_len]
                .copy_from_slice(&valid[row * new_len..][..new_len]);
        }
        Ok(())
    }

    /// Writes one layer's new keys and values (`[batch, kv_heads, new_len, head_dim]`) at
    /// column `start` and returns the full-capacity tensors to attend over.
    pub(crate) fn write(
        &mut self,
        layer: usize,
        start: usize,
        key: Tensor<4>,
        value: Tensor<4>,
    ) -> (Tensor<4>, Tensor<4>) {
        let new_len = key.dims()[2];
        let range = start..start + new_len;
        let write = |slot: &mut Option<Tensor<4>>, new: Tensor<4>| -> Tensor<4> {
            // Taking the tensor out keeps it uniquely owned, so the write is in place.
            let cached = slot.take().unwrap_or_else(|| new.zeros_like());
            let updated = cached.slice_assign(s![.., .., range.clone(), ..], new);
            *slot = Some(updated.clone());
            updated
        };
        let keys = write(&mut self.keys[layer], key);
        let values = write(&mut self.values[layer], value);
        (keys, values)
    }

    /// Marks `new_len` more columns as written (after every layer has written them).
    pub(crate) fn commit_append(&mut self, new_len: usize) {
        self.len += new_len;
    }
}

/// Checks a request to append `new_len` columns of a `rows`-row batch to a cache of `batch` rows
/// with `len` of `capacity` columns written; shared by [`KvCache`] and [`crate::CpuKvCache`].
pub(crate) fn check_append(
    rows: usize,
    new_len: usize,
    batch: usize,
    len: usize,
    capacity: usize,
) -> Result<(), ModelError> {
    if rows != batch {
        return Err(ModelError::InvalidRequest(format!(
            "batch of {rows} rows for a cache of {batch}"
        )));
    }
    if len + new_len > capacity {
        return Err(ModelError::InvalidRequest(format!(
            "cache full: {len} + {new_len} columns exceed its capacity of {capacity}"
        )));
    }
    Ok(())
}

/// Checks a request to copy cache `rows` (of `batch`, with `len` columns written) into a new
/// cache of `capacity` columns; shared by [`KvCache`] and [`crate::CpuKvCache`].
pub(crate) fn check_row_selection(
    rows: &[usize],
    batch: usize,
    len: usize,
    capacity: usize,
) -> Result<(), ModelError> {
    if capacity < len {
        return Err(ModelError::InvalidRequest(format!(
            "cache capacity {capacity} is below the {len} columns already written"
        )));
    }
    if let Some(row) = rows.iter().find(|&&row| row >= batch) {
        return Err(ModelError::InvalidRequest(format!(
            "cache row {row} out of {batch}"
        )));
    }
    if rows.is_empty() {
        return Err(ModelError::InvalidRequest("selecting no cache rows".into()));
    }
    Ok(())
}
