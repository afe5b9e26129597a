//! `{{name}}`: a ponder pair selector. Per instruction, the best-scored parsed candidate is
//! chosen and the worst rejected; groups with fewer than two scored candidates or equal scores
//! give no pair. Takes no configuration.

use ponder_sdk::{Candidate, Pair, PairSelector, PluginFailure, config, stats};
use serde::Deserialize;

/// The selector (no configuration).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BestAgainstWorst {}

impl PairSelector for BestAgainstWorst {
    fn configure(config: &str) -> Result<Self, PluginFailure> {
        config::parse(config)
    }

    fn select(&mut self, groups: &[Vec<Candidate>]) -> Result<Vec<Vec<Pair>>, PluginFailure> {
        Ok(groups
            .iter()
            .map(|group| {
                let scored: Vec<(usize, f64)> = group
                    .iter()
                    .enumerate()
                    .filter(|(_, candidate)| candidate.is_scored())
                    .filter_map(|(index, candidate)| candidate.score.map(|s| (index, s)))
                    .collect();
                let scores: Vec<f64> = scored.iter().map(|(_, score)| *score).collect();
                match (stats::argmax(&scores), stats::argmin(&scores)) {
                    (Some(best), Some(worst)) if scores[best] > scores[worst] => {
                        Pair::new(scored[best].0, scored[worst].0).into_iter().collect()
                    }
                    _ => Vec::new(),
                }
            })
            .collect())
    }
}

ponder_sdk::export_pair_selector!(BestAgainstWorst);

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(score: Option<f64>, parsed: bool) -> Candidate {
        Candidate { score, parsed, ..Candidate::default() }
    }

    #[test]
    fn best_against_worst() {
        let mut selector = BestAgainstWorst::configure("{}").unwrap();
        let groups = vec![
            vec![candidate(Some(0.2), true), candidate(None, false), candidate(Some(0.9), true)],
            vec![candidate(Some(0.5), true)],
        ];
        let pairs = selector.select(&groups).unwrap();
        assert_eq!(pairs, vec![vec![Pair::new(2, 0).unwrap()], vec![]]);
    }
}
