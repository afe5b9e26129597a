//! Pair selector: the best-scored candidate is chosen and the rejected one is the candidate whose
//! score is nearest μ − 2σ (mean and population standard deviation of the scores of that
//! instruction): a clearly worse but not pathological response. Parse failures and unscored
//! candidates are ignored; groups with fewer than two scored candidates, or no candidate scoring
//! below the best, give no pair. Takes no configuration.

use ponder_sdk::{Candidate, Pair, PairSelector, PluginFailure, config, stats};
use serde::Deserialize;

/// The sweet-spot selector.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweetSpot {}

impl SweetSpot {
    fn select_group(group: &[Candidate]) -> Option<Pair> {
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
        let best = stats::argmax(&scores)?;
        // In units of the largest magnitude: the nearest candidate to μ − 2σ does not depend on
        // the unit, and scores near ±f64::MAX would overflow μ and σ to infinity (a NaN target
        // makes every candidate equally near).
        let unit = scores
            .iter()
            .fold(0.0_f64, |max, score| max.max(score.abs()));
        let unit = if unit.is_finite() && unit > 0.0 {
            unit
        } else {
            1.0
        };
        let in_units: Vec<f64> = scores.iter().map(|score| score / unit).collect();
        let target = stats::mean(&in_units) - 2.0 * stats::std_dev(&in_units);
        let rejected = scored
            .iter()
            .zip(&in_units)
            .enumerate()
            .filter(|(position, ((_, score), _))| *position != best && *score < scores[best])
            .min_by(|(_, (_, a)), (_, (_, b))| (*a - target).abs().total_cmp(&(*b - target).abs()))
            .map(|(_, ((index, _), _))| *index)?;
        Pair::new(scored[best].0, rejected)
    }
}

impl PairSelector for SweetSpot {
    fn configure(config: &str) -> Result<Self, PluginFailure> {
        config::parse(config)
    }

    fn select(&mut self, groups: &[Vec<Candidate>]) -> Result<Vec<Vec<Pair>>, PluginFailure> {
        Ok(groups
            .iter()
            .map(|group| Self::select_group(group).into_iter().collect())
            .collect())
    }
}

ponder_sdk::export_pair_selector!(SweetSpot);

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(score: f64) -> Candidate {
        Candidate {
            score: Some(score),
            parsed: true,
            ..Candidate::default()
        }
    }

    fn select(groups: &[Vec<Candidate>]) -> Vec<Vec<Pair>> {
        SweetSpot::configure("{}").unwrap().select(groups).unwrap()
    }

    #[test]
    fn rejects_the_candidate_nearest_mean_minus_two_sigma() {
        // Scores 0..=9 plus an outlier at -20: μ ≈ 2.27, σ ≈ 7.4, μ − 2σ ≈ −12.5, nearest is −20;
        // without the outlier μ − 2σ ≈ −1.2, nearest is 0.
        let mut group: Vec<Candidate> = (0..10).map(|s| scored(f64::from(s))).collect();
        assert_eq!(
            select(&[group.clone()]),
            vec![vec![Pair::new(9, 0).unwrap()]]
        );
        group.push(scored(-20.0));
        assert_eq!(select(&[group]), vec![vec![Pair::new(9, 10).unwrap()]]);
    }

    #[test]
    fn not_the_worst_when_the_target_lies_above_it() {
        // Twenty 10s, then 0 and −1: μ ≈ 9.05, σ ≈ 3.02, μ − 2σ ≈ 3.0: 0 is nearer than −1.
        let mut group: Vec<Candidate> = (0..20).map(|_| scored(10.0)).collect();
        group.push(scored(0.0));
        group.push(scored(-1.0));
        assert_eq!(select(&[group]), vec![vec![Pair::new(0, 20).unwrap()]]);
    }

    #[test]
    fn scores_near_the_float_limit_pick_as_at_an_ordinary_scale() {
        // The ten scores of the first test, then scaled to the float limit: μ and σ of the raw
        // values overflow; the pick must not change.
        let group = |factor: f64| -> Vec<Candidate> {
            let mut group: Vec<Candidate> =
                (0..10).map(|s| scored(f64::from(s) * factor)).collect();
            group.push(scored(-9.0 * factor));
            group
        };
        let expected = select(&[group(1.0)]);
        assert_eq!(expected, vec![vec![Pair::new(9, 10).unwrap()]]);
        for factor in [1.7e307, 1e300, 1e-300] {
            assert_eq!(select(&[group(factor)]), expected, "factor {factor}");
        }
    }

    #[test]
    fn skips_ties_and_small_groups() {
        let pairs = select(&[vec![scored(1.0), scored(1.0)], vec![scored(1.0)], vec![]]);
        assert!(pairs.iter().all(Vec::is_empty));
    }
}
