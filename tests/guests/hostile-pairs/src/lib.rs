//! Hostile pair selector for the runtime's tests: for a group whose first candidate has score
//! -1 it names an index out of range; for -2, the same candidate twice; for -3, a NaN weight.
//! Otherwise it pairs candidate 0 against candidate 1.

wit_bindgen::generate!({
    path: "../../../wit/v0.1.0",
    world: "pair-selector",
});

use exports::ponder::plugin::selector::{Candidate, Guest, Pair};
use ponder::plugin::types::PluginError;

struct Hostile;

impl Guest for Hostile {
    fn configure(_config: String) -> Result<(), PluginError> {
        Ok(())
    }

    fn select(groups: Vec<Vec<Candidate>>) -> Result<Vec<Vec<Pair>>, PluginError> {
        Ok(groups
            .iter()
            .map(|group| {
                let size = group.len() as u32;
                let pair = match group.first().and_then(|first| first.score) {
                    Some(score) if score == -1.0 => Pair {
                        chosen: 0,
                        rejected: size + 5,
                        weight: 1.0,
                    },
                    Some(score) if score == -2.0 => Pair {
                        chosen: 1,
                        rejected: 1,
                        weight: 1.0,
                    },
                    Some(score) if score == -3.0 => Pair {
                        chosen: 0,
                        rejected: 1,
                        weight: f64::NAN,
                    },
                    _ => Pair {
                        chosen: 0,
                        rejected: 1,
                        weight: 1.0,
                    },
                };
                vec![pair]
            })
            .collect())
    }
}

export!(Hostile);
