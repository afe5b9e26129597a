//! WIT interface `selector`: what a pair selector receives and returns.

use serde::{Deserialize, Serialize};

/// One sampled output of the policy model, as a selector sees it (WIT `candidate`). JSON: the
/// field names; missing fields take their defaults (`null`, `false`, `0`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Candidate {
    /// The judge's score; `None` for a parse failure or a response the judge could not score.
    pub score: Option<f64>,
    /// Whether the output parsed into thought and response.
    pub parsed: bool,
    /// Length of the response in tokens of the policy's tokenizer (0 for a parse failure).
    pub response_tokens: u32,
    /// Length of the response in Unicode scalar values (0 for a parse failure).
    pub response_chars: u32,
    /// Length of the thought in tokens (0 for a parse failure).
    pub thought_tokens: u32,
    /// Length of the thought in Unicode scalar values (0 for a parse failure).
    pub thought_chars: u32,
    /// Length of the whole output in tokens.
    pub output_tokens: u32,
}

impl Candidate {
    /// A parsed candidate with a finite score: one a selector may rank.
    pub fn is_scored(&self) -> bool {
        self.parsed && self.score.is_some_and(f64::is_finite)
    }
}

/// A preference pair naming two different candidates of one group by index (WIT `pair`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pair {
    /// Index of the preferred candidate.
    pub chosen: u32,
    /// Index of the dispreferred candidate; never equal to `chosen`.
    pub rejected: u32,
    /// Weight of this pair in the DPO loss; positive and finite, 1.0 by default.
    pub weight: f64,
}

impl Pair {
    /// A pair of weight 1, or `None` when `chosen == rejected` or an index does not fit in `u32`.
    pub fn new(chosen: usize, rejected: usize) -> Option<Self> {
        if chosen == rejected {
            return None;
        }
        Some(Self {
            chosen: u32::try_from(chosen).ok()?,
            rejected: u32::try_from(rejected).ok()?,
            weight: 1.0,
        })
    }
}
