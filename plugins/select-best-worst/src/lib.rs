//! Pair selector: within each instruction, the best-scored parsed candidate is chosen and the
//! worst-scored one rejected. Unscored candidates and parse failures are ignored; groups with
//! fewer than two scored candidates, or whose scores are all equal, give no pair.
//!
//! Configuration (all optional):
//! - `min_margin` (number ≥ 0, default 0): skip a group unless best − worst exceeds it.

use ponder_sdk::{Candidate, Pair, PairSelector, PluginFailure, config};
use serde::Deserialize;

/// The best-versus-worst selector.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BestWorst {
    min_margin: f64,
}

impl BestWorst {
    fn select_group(&self, group: &[Candidate]) -> Option<Pair> {
        let scored: Vec<(usize, f64)> = group
            .iter()
            .enumerate()
            .filter(|(_, candidate)| candidate.is_scored())
            .filter_map(|(index, candidate)| candidate.score.map(|score| (index, score)))
            .collect();
        if scored.len() < 2 {
            return None;
        }
        let scores: Vec<f64> = scored.iter().map(|(_, score)| *score).collect();
        let best = ponder_sdk::stats::argmax(&scores)?;
        let worst = ponder_sdk::stats::argmin(&scores)?;
        if scores[best] - scores[worst] <= self.min_margin {
            return None;
        }
        Pair::new(scored[best].0, scored[worst].0)
    }
}

impl PairSelector for BestWorst {
    fn configure(config: &str) -> Result<Self, PluginFailure> {
        let selector: Self = config::parse(config)?;
        if !(selector.min_margin.is_finite() && selector.min_margin >= 0.0) {
            return Err(PluginFailure::invalid_config(
                "config key `min_margin`: must be a finite number ≥ 0",
            ));
        }
        Ok(selector)
    }

    fn select(&mut self, groups: &[Vec<Candidate>]) -> Result<Vec<Vec<Pair>>, PluginFailure> {
        Ok(groups
            .iter()
            .map(|group| self.select_group(group).into_iter().collect())
            .collect())
    }
}

ponder_sdk::export_pair_selector!(BestWorst);

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(score: f64) -> Candidate {
        Candidate {
            score: Some(score),
            parsed: true,
            response_tokens: 10,
            ..Candidate::default()
        }
    }

    fn failure() -> Candidate {
        Candidate::default()
    }

    fn select(groups: &[Vec<Candidate>]) -> Vec<Vec<Pair>> {
        BestWorst::configure("{}").unwrap().select(groups).unwrap()
    }

    #[test]
    fn picks_best_and_worst_ignoring_failures() {
        let pairs = select(&[vec![scored(0.2), failure(), scored(0.9), scored(0.5)]]);
        assert_eq!(pairs, vec![vec![Pair::new(2, 0).unwrap()]]);
    }

    #[test]
    fn skips_small_or_tied_groups() {
        let pairs = select(&[
            vec![],
            vec![scored(1.0)],
            vec![scored(1.0), failure()],
            vec![scored(0.5), scored(0.5)],
            vec![scored(f64::NAN), scored(0.5)],
        ]);
        assert!(pairs.iter().all(Vec::is_empty), "{pairs:?}");
        assert_eq!(pairs.len(), 5);
    }

    #[test]
    fn scores_near_the_float_limit_still_pair() {
        // best − worst overflows to infinity, which is still above any margin
        let pairs = select(&[vec![scored(-f64::MAX), scored(f64::MAX), scored(0.0)]]);
        assert_eq!(pairs, vec![vec![Pair::new(1, 0).unwrap()]]);
        let mut selector = BestWorst::configure(r#"{"min_margin": 1e308}"#).unwrap();
        let pairs = selector
            .select(&[
                vec![scored(1e308), scored(-1e308)],
                vec![scored(1e308), scored(0.5e308)],
            ])
            .unwrap();
        assert_eq!(pairs, vec![vec![Pair::new(0, 1).unwrap()], vec![]]);
    }

    #[test]
    fn margin_from_config() {
        let mut selector = BestWorst::configure(r#"{"min_margin": 0.5}"#).unwrap();
        let pairs = selector.select(&[vec![scored(0.1), scored(0.4)]]).unwrap();
        assert!(pairs[0].is_empty());
        assert!(BestWorst::configure(r#"{"min_margin": -1}"#).is_err());
    }
}
