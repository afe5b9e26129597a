//! ponder-eval against the reference packages, through fixtures their scripts wrote:
//! `fixtures/alpaca_eval_lc.json` (`scripts/eval/compare_lc.py`: the `alpaca-eval` package's
//! length-controlled GLM, and bootstrap intervals computed in NumPy from the same SplitMix64
//! draws) and `fixtures/if_verifiable.json` (`scripts/eval/ifeval_fixture.py`: `if-verifiable`'s
//! verdicts, per-prompt scores and loose variants).

use std::collections::BTreeMap;

use ponder_eval::{
    BootstrapOptions, ConstraintVerdict, PreferenceWithLengths, ifeval_accuracies,
    length_controlled_win_rate, loose_variants, percentile_interval, win_rate,
};
use serde::Deserialize;

/// How far the length-controlled win rate may differ from the package's, in percentage points:
/// scikit-learn's liblinear stops at its tolerance (gradient reduced 10⁴-fold), the Rust fit at
/// machine precision.
const LC_TOLERANCE_POINTS: f64 = 2e-3;

/// How far the held-out log losses of the cross-validation may differ (the same liblinear
/// tolerance, seen through the held-out data).
const CV_LOSS_TOLERANCE: f64 = 1e-5;

#[derive(Deserialize)]
struct LcFixture {
    sets: BTreeMap<String, LcSet>,
    bootstrap_win_rate: BootstrapCase,
    bootstrap_length_controlled: BootstrapCase,
}

#[derive(Deserialize)]
struct LcSet {
    /// (preference for A, len(A), len(B)).
    instructions: Vec<(f64, usize, usize)>,
    win_rate_percent: f64,
    length_controlled: PackageFit,
}

#[derive(Deserialize)]
struct PackageFit {
    win_rate_percent: f64,
    inverse_penalty: f64,
    length_weight: f64,
    constant_weight: f64,
    length_difference_sd: f64,
    /// The package's scores per C: minus the held-out log loss, averaged over the folds.
    cv_mean_scores: Vec<f64>,
}

#[derive(Deserialize)]
struct BootstrapCase {
    set: String,
    seed: u64,
    resamples: usize,
    level: f64,
    interval: Interval,
}

#[derive(Deserialize)]
struct Interval {
    lower: f64,
    upper: f64,
}

fn lc_fixture() -> LcFixture {
    let text = include_str!("fixtures/alpaca_eval_lc.json");
    serde_json::from_str(text).expect("fixtures/alpaca_eval_lc.json parses")
}

fn rows(set: &LcSet) -> Vec<PreferenceWithLengths> {
    set.instructions
        .iter()
        .map(|&(p, a, b)| PreferenceWithLengths::new(p, a, b))
        .collect()
}

#[test]
fn length_controlled_win_rate_matches_alpaca_eval() {
    let fixture = lc_fixture();
    assert!(fixture.sets.len() >= 5);
    for (name, set) in &fixture.sets {
        let package = &set.length_controlled;
        let fit = length_controlled_win_rate(&rows(set)).unwrap();
        eprintln!(
            "{name:24} LC rust {:.6} package {:.6} (C {} / {}), weights rust [{:.5}, {:.5}] \
             package [{:.5}, {:.5}]",
            fit.win_rate_percent,
            package.win_rate_percent,
            fit.inverse_penalty,
            package.inverse_penalty,
            fit.length_weight,
            fit.constant_weight,
            package.length_weight,
            package.constant_weight,
        );
        assert!(
            (fit.length_difference_sd - package.length_difference_sd).abs()
                < 1e-12 * package.length_difference_sd,
            "{name}"
        );
        assert_eq!(fit.cross_validation.len(), package.cv_mean_scores.len());
        for (rust, score) in fit.cross_validation.iter().zip(&package.cv_mean_scores) {
            assert!(
                (rust.mean_log_loss + score).abs() < CV_LOSS_TOLERANCE,
                "{name}: C {}: held-out log loss {} vs {}",
                rust.inverse_penalty,
                rust.mean_log_loss,
                -score
            );
        }
        // The same C, unless the package's own scores tie the two within its solver's precision
        // (at weak penalties the held-out loss flattens out, and liblinear's stopping point
        // decides between neighbours whose losses differ by ~1e-7).
        let package_best = package
            .cv_mean_scores
            .iter()
            .copied()
            .fold(f64::MIN, f64::max);
        let package_score_at_rust_choice = fit
            .cross_validation
            .iter()
            .zip(&package.cv_mean_scores)
            .find(|(rust, _)| rust.inverse_penalty == fit.inverse_penalty)
            .map(|(_, score)| *score);
        assert!(
            fit.inverse_penalty == package.inverse_penalty
                || package_score_at_rust_choice.is_some_and(|s| package_best - s < 1e-6),
            "{name}: the cross-validation chose C {} where the package chose {}",
            fit.inverse_penalty,
            package.inverse_penalty
        );
        assert!(
            (fit.win_rate_percent - package.win_rate_percent).abs() < LC_TOLERANCE_POINTS,
            "{name}: {} vs {}",
            fit.win_rate_percent,
            package.win_rate_percent
        );
        // The raw win rate of the same annotations.
        let preferences: Vec<f64> = set.instructions.iter().map(|row| row.0).collect();
        let raw = win_rate(&preferences).unwrap();
        assert!(
            (raw.win_rate_percent - set.win_rate_percent).abs() < 1e-9,
            "{name}"
        );
    }
}

#[test]
fn bootstrap_intervals_match_numpy_on_the_same_draws() {
    let fixture = lc_fixture();
    let case = &fixture.bootstrap_win_rate;
    let preferences: Vec<f64> = fixture.sets[&case.set]
        .instructions
        .iter()
        .map(|row| row.0)
        .collect();
    let options = BootstrapOptions {
        resamples: case.resamples,
        seed: case.seed,
        level: case.level,
    };
    let interval = percentile_interval(preferences.len(), &options, |indices| {
        Ok(100.0 * indices.iter().map(|&i| preferences[i]).sum::<f64>() / indices.len() as f64)
    })
    .unwrap();
    assert!(
        (interval.lower - case.interval.lower).abs() < 1e-9,
        "{interval:?}"
    );
    assert!(
        (interval.upper - case.interval.upper).abs() < 1e-9,
        "{interval:?}"
    );

    // The length-controlled win rate refitted on every resample.
    let case = &fixture.bootstrap_length_controlled;
    let rows = rows(&fixture.sets[&case.set]);
    let options = BootstrapOptions {
        resamples: case.resamples,
        seed: case.seed,
        level: case.level,
    };
    let interval = percentile_interval(rows.len(), &options, |indices| {
        let resample: Vec<PreferenceWithLengths> = indices.iter().map(|&i| rows[i]).collect();
        length_controlled_win_rate(&resample).map(|fit| fit.win_rate_percent)
    })
    .unwrap();
    eprintln!(
        "LC bootstrap rust [{}, {}] package [{}, {}]",
        interval.lower, interval.upper, case.interval.lower, case.interval.upper
    );
    assert!((interval.lower - case.interval.lower).abs() < LC_TOLERANCE_POINTS);
    assert!((interval.upper - case.interval.upper).abs() < LC_TOLERANCE_POINTS);
}

#[derive(Deserialize)]
struct IfevalFixture {
    prompts: Vec<IfevalCase>,
}

#[derive(Deserialize)]
struct IfevalCase {
    response: String,
    loose_variants: Vec<String>,
    verdicts: Vec<ConstraintVerdict>,
    scores: Scores,
}

#[derive(Deserialize)]
struct Scores {
    binary_strict: f64,
    binary_loose: f64,
    partial_strict: f64,
    partial_loose: f64,
}

fn ifeval_fixture() -> IfevalFixture {
    let text = include_str!("fixtures/if_verifiable.json");
    serde_json::from_str(text).expect("fixtures/if_verifiable.json parses")
}

#[test]
fn loose_variants_match_if_verifiable() {
    for case in ifeval_fixture().prompts {
        assert_eq!(
            loose_variants(&case.response),
            case.loose_variants,
            "{:?}",
            case.response
        );
    }
}

#[test]
fn ifeval_accuracies_match_if_verifiable_scores() {
    let fixture = ifeval_fixture();
    // Per prompt: the prompt level is `binary_*`, the instruction level `partial_*`.
    for case in &fixture.prompts {
        let one = ifeval_accuracies([&case.verdicts[..]]).unwrap();
        assert_eq!(one.prompt_level_strict, case.scores.binary_strict);
        assert_eq!(one.prompt_level_loose, case.scores.binary_loose);
        assert!((one.instruction_level_strict - case.scores.partial_strict).abs() < 1e-15);
        assert!((one.instruction_level_loose - case.scores.partial_loose).abs() < 1e-15);
    }
    // Over all prompts: means of `binary_*`, and `partial_*` pooled by constraint count.
    let all = ifeval_accuracies(fixture.prompts.iter().map(|case| &case.verdicts[..])).unwrap();
    let prompts = fixture.prompts.len() as f64;
    let constraints: usize = fixture.prompts.iter().map(|case| case.verdicts.len()).sum();
    let mean = |score: fn(&Scores) -> f64| {
        fixture
            .prompts
            .iter()
            .map(|case| score(&case.scores))
            .sum::<f64>()
            / prompts
    };
    let pooled = |score: fn(&Scores) -> f64| {
        fixture
            .prompts
            .iter()
            .map(|case| score(&case.scores) * case.verdicts.len() as f64)
            .sum::<f64>()
            / constraints as f64
    };
    assert_eq!(all.constraints, constraints);
    assert!((all.prompt_level_strict - mean(|s| s.binary_strict)).abs() < 1e-12);
    assert!((all.prompt_level_loose - mean(|s| s.binary_loose)).abs() < 1e-12);
    assert!((all.instruction_level_strict - pooled(|s| s.partial_strict)).abs() < 1e-12);
    assert!((all.instruction_level_loose - pooled(|s| s.partial_loose)).abs() < 1e-12);
    // Per constraint type, the tables add up to the pooled counts.
    let strict_passes: f64 = all
        .per_constraint
        .values()
        .map(|accuracy| accuracy.strict * accuracy.constraints as f64)
        .sum();
    assert!((strict_passes - all.instruction_level_strict * constraints as f64).abs() < 1e-9);
}
