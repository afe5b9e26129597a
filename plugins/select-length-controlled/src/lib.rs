//! Length-controlled pair selection of Thought Preference Optimization (arXiv 2410.10630).
//!
//! Within the scored, parsed candidates of one instruction, each gets
//! `s = z(score) − ρ · z(response length)` (z-scores within the instruction; a constant feature
//! has z = 0). Chosen = argmax s, rejected = argmin s: one pair per instruction, none when fewer
//! than two candidates are scored or all `s` are equal. Parse failures serve as rejected samples
//! (against the argmax of `s`), for at most `max_failure_fraction` of the iteration's pairs.
//!
//! Configuration (all optional):
//! - `rho` (number in [0, 0.5], default 0): the length penalty; 0 turns it off.
//! - `auto_rho` (bool, default `false`): instead of `rho`, use the smallest ρ of the grid
//!   0, 0.05, …, 0.5 for which the iteration's mean chosen length is not above its mean rejected
//!   length (0.5 when none qualifies; logged).
//! - `length` (`"tokens"` (default) | `"chars"`): how response length is measured.
//! - `failures_as_rejected` (bool, default `true`): use parse failures as rejected samples.
//! - `max_failure_fraction` (number in [0, 1], default 0.1): cap on the share of such pairs.
//! - `skip_score_ties` (bool, default `false`): make no pair when the chosen and the rejected
//!   candidate have the same judge score, so that no pair rests on length alone. With a judge
//!   whose scores are coarse (the share of constraints met, say) ties are common; the paper's
//!   reward-model scores rarely tie, and there the default reproduces it.

use ponder_sdk::{Candidate, Pair, PairSelector, PluginFailure, config, log, stats};
use serde::Deserialize;

/// How response length is measured.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LengthUnit {
    /// Tokens of the policy's tokenizer.
    #[default]
    Tokens,
    /// Unicode scalar values.
    Chars,
}

/// The length-controlled selector.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LengthControlled {
    rho: f64,
    auto_rho: bool,
    length: LengthUnit,
    failures_as_rejected: bool,
    max_failure_fraction: f64,
    skip_score_ties: bool,
}

impl Default for LengthControlled {
    fn default() -> Self {
        Self {
            rho: 0.0,
            auto_rho: false,
            length: LengthUnit::Tokens,
            failures_as_rejected: true,
            max_failure_fraction: 0.1,
            skip_score_ties: false,
        }
    }
}

/// Largest ρ the paper considers.
pub const MAX_RHO: f64 = 0.5;
/// Step of the automatic ρ grid.
pub const RHO_STEP: f64 = 0.05;

/// The chosen and rejected candidate of one instruction by `s`, if it has a preference.
fn ranked_pair(
    group: &[Candidate],
    rho: f64,
    unit: LengthUnit,
    skip_score_ties: bool,
) -> Option<(usize, usize)> {
    let scored: Vec<usize> = (0..group.len()).filter(|&i| group[i].is_scored()).collect();
    if scored.len() < 2 {
        return None;
    }
    let s = penalised_scores(group, &scored, rho, unit);
    let best = stats::argmax(&s)?;
    let worst = stats::argmin(&s)?;
    if s[best] <= s[worst] {
        return None;
    }
    let (chosen, rejected) = (scored[best], scored[worst]);
    if skip_score_ties && group[chosen].score == group[rejected].score {
        return None;
    }
    Some((chosen, rejected))
}

/// `z(score) − ρ · z(length)` for the candidates at `indices`.
fn penalised_scores(
    group: &[Candidate],
    indices: &[usize],
    rho: f64,
    unit: LengthUnit,
) -> Vec<f64> {
    let scores: Vec<f64> = indices
        .iter()
        .map(|&i| group[i].score.unwrap_or(0.0))
        .collect();
    let lengths: Vec<f64> = indices.iter().map(|&i| length(&group[i], unit)).collect();
    let z_score = scale_free_z_scores(&scores);
    let z_length = stats::z_scores(&lengths);
    z_score
        .iter()
        .zip(&z_length)
        .map(|(score, length)| score - rho * length)
        .collect()
}

/// z-scores of `values`, computed on the values divided by their largest magnitude. z-scores do
/// not change under scaling, and scores near ±`f64::MAX` would otherwise overflow the sum and
/// the variance to infinity, which makes every z-score 0 and hides a clear preference.
fn scale_free_z_scores(values: &[f64]) -> Vec<f64> {
    let largest = values
        .iter()
        .fold(0.0_f64, |max, value| max.max(value.abs()));
    if !(largest.is_finite() && largest > 0.0) {
        return stats::z_scores(values);
    }
    let scaled: Vec<f64> = values.iter().map(|value| value / largest).collect();
    stats::z_scores(&scaled)
}

fn length(candidate: &Candidate, unit: LengthUnit) -> f64 {
    f64::from(match unit {
        LengthUnit::Tokens => candidate.response_tokens,
        LengthUnit::Chars => candidate.response_chars,
    })
}

impl LengthControlled {
    /// The smallest ρ of the grid whose pairs have mean chosen length ≤ mean rejected length.
    fn automatic_rho(&self, groups: &[Vec<Candidate>]) -> f64 {
        let steps = (MAX_RHO / RHO_STEP).round() as usize;
        for step in 0..=steps {
            let rho = step as f64 * RHO_STEP;
            let (chosen, rejected): (Vec<f64>, Vec<f64>) = groups
                .iter()
                .filter_map(|group| {
                    ranked_pair(group, rho, self.length, self.skip_score_ties).map(|(c, r)| {
                        (
                            length(&group[c], self.length),
                            length(&group[r], self.length),
                        )
                    })
                })
                .unzip();
            if stats::mean(&chosen) <= stats::mean(&rejected) {
                log::info(&format!(
                    "select-length-controlled: automatic rho = {rho:.2} (mean chosen length {:.1}, mean rejected length {:.1}, {} pairs)",
                    stats::mean(&chosen),
                    stats::mean(&rejected),
                    chosen.len()
                ));
                return rho;
            }
        }
        log::warn(&format!(
            "select-length-controlled: no rho in [0, {MAX_RHO}] makes chosen responses no longer than rejected ones; using {MAX_RHO}"
        ));
        MAX_RHO
    }
}

impl PairSelector for LengthControlled {
    fn configure(config: &str) -> Result<Self, PluginFailure> {
        let selector: Self = config::parse(config)?;
        if !(0.0..=MAX_RHO).contains(&selector.rho) {
            return Err(PluginFailure::invalid_config(format!(
                "config key `rho`: {} is outside [0, {MAX_RHO}]",
                selector.rho
            )));
        }
        if !(0.0..=1.0).contains(&selector.max_failure_fraction) {
            return Err(PluginFailure::invalid_config(format!(
                "config key `max_failure_fraction`: {} is outside [0, 1]",
                selector.max_failure_fraction
            )));
        }
        Ok(selector)
    }

    fn select(&mut self, groups: &[Vec<Candidate>]) -> Result<Vec<Vec<Pair>>, PluginFailure> {
        let rho = if self.auto_rho {
            self.automatic_rho(groups)
        } else {
            self.rho
        };
        let mut pairs: Vec<Option<(usize, usize)>> = groups
            .iter()
            .map(|group| ranked_pair(group, rho, self.length, self.skip_score_ties))
            .collect();

        if self.failures_as_rejected {
            // Groups with a failure and a scored candidate, those without any other pair first
            // (a failure pair there adds a pair rather than replacing one).
            let mut candidates: Vec<usize> = (0..groups.len())
                .filter(|&g| {
                    groups[g].iter().any(|c| !c.parsed)
                        && groups[g].iter().any(Candidate::is_scored)
                })
                .collect();
            candidates.sort_by_key(|&g| pairs[g].is_some());
            let mut total = pairs.iter().filter(|pair| pair.is_some()).count();
            let mut failures = 0usize;
            for g in candidates {
                let new_total = total + usize::from(pairs[g].is_none());
                if (failures + 1) as f64 > self.max_failure_fraction * new_total as f64 {
                    continue;
                }
                let group = &groups[g];
                let scored: Vec<usize> =
                    (0..group.len()).filter(|&i| group[i].is_scored()).collect();
                let s = penalised_scores(group, &scored, rho, self.length);
                let (Some(best), Some(failure)) =
                    (stats::argmax(&s), group.iter().position(|c| !c.parsed))
                else {
                    continue;
                };
                pairs[g] = Some((scored[best], failure));
                total = new_total;
                failures += 1;
            }
        }

        Ok(pairs
            .into_iter()
            .map(|pair| {
                pair.and_then(|(chosen, rejected)| Pair::new(chosen, rejected))
                    .into_iter()
                    .collect()
            })
            .collect())
    }
}

ponder_sdk::export_pair_selector!(LengthControlled);

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(score: f64, tokens: u32) -> Candidate {
        Candidate {
            score: Some(score),
            parsed: true,
            response_tokens: tokens,
            response_chars: tokens * 4,
            ..Candidate::default()
        }
    }

    fn failure() -> Candidate {
        Candidate {
            output_tokens: 300,
            ..Candidate::default()
        }
    }

    fn selector(config: &str) -> LengthControlled {
        LengthControlled::configure(config).unwrap()
    }

    fn assert_valid(groups: &[Vec<Candidate>], pairs: &[Vec<Pair>]) {
        assert_eq!(groups.len(), pairs.len());
        for (group, pairs) in groups.iter().zip(pairs) {
            for pair in pairs {
                assert_ne!(pair.chosen, pair.rejected);
                assert!((pair.chosen as usize) < group.len());
                assert!((pair.rejected as usize) < group.len());
            }
        }
    }

    #[test]
    fn without_penalty_picks_best_and_worst() {
        let groups = vec![vec![scored(0.5, 10), scored(0.9, 200), scored(0.1, 20)]];
        let pairs = selector("{}").select(&groups).unwrap();
        assert_eq!(pairs, vec![vec![Pair::new(1, 2).unwrap()]]);
    }

    #[test]
    fn penalty_prefers_the_shorter_of_close_scores() {
        // Scores 0.9 (long) and 0.88 (short): with rho = 0.5 the short one wins.
        let groups = vec![vec![scored(0.9, 400), scored(0.88, 50), scored(0.1, 100)]];
        let pairs = selector(r#"{"rho": 0.5}"#).select(&groups).unwrap();
        assert_eq!(pairs[0][0].chosen, 1);
        assert_eq!(selector("{}").select(&groups).unwrap()[0][0].chosen, 0);
    }

    #[test]
    fn score_ties_make_length_only_pairs_unless_skipped() {
        // Equal scores: with rho > 0 the shorter is chosen on length alone, as the paper's
        // formula says; `skip_score_ties` makes no such pair.
        let groups = vec![
            vec![scored(0.5, 10), scored(0.5, 90), scored(0.5, 40)],
            vec![scored(1.0, 90), scored(0.5, 10)],
        ];
        let pairs = selector(r#"{"rho": 0.3}"#).select(&groups).unwrap();
        assert_eq!(pairs[0], vec![Pair::new(0, 1).unwrap()]);
        let pairs = selector(r#"{"rho": 0.3, "skip_score_ties": true}"#)
            .select(&groups)
            .unwrap();
        assert!(pairs[0].is_empty());
        assert_eq!(pairs[1], vec![Pair::new(0, 1).unwrap()]);
    }

    #[test]
    fn scores_near_the_float_limit_keep_their_preference() {
        // Without scaling, the variance of ±1e308 is infinite and every z-score 0: no pair.
        for (high, low) in [(1e308, -1e308), (f64::MAX, f64::MAX / 2.0), (1.7e308, 0.0)] {
            let groups = vec![vec![scored(low, 30), scored(high, 40), scored(low, 20)]];
            let pairs = selector(r#"{"rho": 0.3}"#).select(&groups).unwrap();
            assert_eq!(pairs[0].len(), 1, "{high} vs {low}: {pairs:?}");
            assert_eq!(pairs[0][0].chosen, 1, "{high} vs {low}");
        }
        // the same ranking as the same scores at an ordinary scale
        let scaled = |factor: f64| {
            let group = vec![
                scored(0.9 * factor, 400),
                scored(0.88 * factor, 50),
                scored(0.1 * factor, 100),
            ];
            selector(r#"{"rho": 0.5}"#).select(&[group]).unwrap()
        };
        assert_eq!(scaled(1e308), scaled(1.0));
        assert_eq!(scaled(1e-300), scaled(1.0));
    }

    #[test]
    fn constant_lengths_and_scores_give_no_pair() {
        let groups = vec![vec![scored(0.5, 10), scored(0.5, 10)], vec![scored(1.0, 3)]];
        let pairs = selector(r#"{"rho": 0.3}"#).select(&groups).unwrap();
        assert!(pairs.iter().all(Vec::is_empty));
    }

    #[test]
    fn failures_as_rejected_are_capped() {
        // Ten groups with ordinary pairs and a failure each, plus one group with a single scored
        // candidate and a failure: at 10 %, one failure pair in eleven pairs is allowed, and it
        // goes to the group that has no other pair.
        let mut groups: Vec<Vec<Candidate>> = (0..10)
            .map(|_| vec![scored(0.2, 10), scored(0.8, 10), failure()])
            .collect();
        groups.push(vec![scored(0.7, 10), failure()]);
        let pairs = selector("{}").select(&groups).unwrap();
        assert_valid(&groups, &pairs);
        assert_eq!(pairs[10], vec![Pair::new(0, 1).unwrap()]);
        let failure_pairs = pairs
            .iter()
            .zip(&groups)
            .flat_map(|(pairs, group)| pairs.iter().map(move |p| &group[p.rejected as usize]))
            .filter(|rejected| !rejected.parsed)
            .count();
        assert_eq!(failure_pairs, 1);

        let off = selector(r#"{"failures_as_rejected": false}"#)
            .select(&groups)
            .unwrap();
        assert!(off[10].is_empty());
    }

    #[test]
    fn automatic_rho_makes_chosen_no_longer_than_rejected() {
        // Higher scores come with longer responses; some penalty is needed to flip that.
        let groups: Vec<Vec<Candidate>> = (0..4)
            .map(|_| {
                vec![
                    scored(0.90, 300),
                    scored(0.88, 60),
                    scored(0.50, 250),
                    scored(0.40, 40),
                    scored(0.45, 200),
                ]
            })
            .collect();
        let mut auto = selector(r#"{"auto_rho": true}"#);
        let rho = auto.automatic_rho(&groups);
        assert!(rho > 0.0 && rho <= MAX_RHO, "{rho}");
        let pairs = auto.select(&groups).unwrap();
        assert_valid(&groups, &pairs);
        let chosen: f64 = pairs
            .iter()
            .zip(&groups)
            .map(|(p, g)| f64::from(g[p[0].chosen as usize].response_tokens))
            .sum();
        let rejected: f64 = pairs
            .iter()
            .zip(&groups)
            .map(|(p, g)| f64::from(g[p[0].rejected as usize].response_tokens))
            .sum();
        assert!(chosen <= rejected, "{chosen} > {rejected}");
        // The previous grid step did not satisfy the condition.
        let smaller = rho - RHO_STEP;
        let (c, r): (Vec<f64>, Vec<f64>) = groups
            .iter()
            .filter_map(|g| ranked_pair(g, smaller, LengthUnit::Tokens, false))
            .map(|(c, r)| {
                (
                    f64::from(groups[0][c].response_tokens),
                    f64::from(groups[0][r].response_tokens),
                )
            })
            .unzip();
        assert!(stats::mean(&c) > stats::mean(&r));
    }

    #[test]
    fn rho_outside_range_is_invalid_config() {
        let error = LengthControlled::configure(r#"{"rho": 0.7}"#).unwrap_err();
        assert!(error.to_string().contains("rho"), "{error}");
        assert!(LengthControlled::configure(r#"{"length": "words"}"#).is_err());
    }
}
