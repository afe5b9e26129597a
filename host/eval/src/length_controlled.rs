//! AlpacaEval 2's length-controlled win rate (Dubois, Galambosi, Liang and Hashimoto 2024,
//! "Length-Controlled AlpacaEval"), as the `alpaca-eval` package computes it with its
//! `length_controlled_minimal` model (`alpaca_eval/metrics/glm_winrate.py`).
//!
//! The model: the preference for A over B (B is AlpacaEval's baseline, `output_1`; A the model,
//! `output_2`) is a logistic regression without intercept on two columns, the tanh of the
//! standardised length difference and a constant 1 (`np.tanh(std_delta_len) +
//! not_gamed_baseline.astype(float) - 1`), where `std_delta_len = (len(B) − len(A)) / sd`, `sd`
//! the sample standard deviation (n − 1) of `len(B) − len(A)` over the instructions, lengths in
//! characters. The length-controlled win rate is the model's preference read at zero length
//! difference, `σ(w_constant)`, in percent.
//!
//! The fit, as the package's `fit_LogisticRegressionCV(..., is_ytrue_proba=True, n_splits=5)`
//! does it with scikit-learn: continuous preferences `p` enter as two weighted rows each (label 1
//! with weight `p`, label 0 with weight `1 − p`); the penalty is L1 on both coefficients
//! (liblinear's `‖w‖₁ + C·Σ loss`, no intercept); `C` is chosen among `logspace(-4, 4, 10)` by
//! 5-fold cross-validation over instructions (scikit-learn's `GroupKFold`, each instruction's two
//! rows in one fold) scored by the mean held-out log loss against the continuous preferences,
//! then the model is refitted on every instruction with the best `C`. Where scikit-learn's
//! liblinear stops at its tolerance (1e-4), the fit here is solved to machine precision (proximal
//! Newton, exact on two coefficients), so the two agree to liblinear's tolerance: on the
//! fixtures of `tests/reference_fixtures.rs` within 1e-3 percentage points, the package's choice
//! of `C` included, but where its held-out losses of two neighbouring `C` tie to ~1e-7 and
//! liblinear's stopping point picks the other one.

use serde::{Deserialize, Serialize};

use crate::EvalError;
use crate::winrate::check_preferences;

/// The cross-validation folds of AlpacaEval's fit (`GLM_INFO[...]["kwargs"]["n_splits"]`).
pub const CROSS_VALIDATION_FOLDS: usize = 5;

/// How many inverse penalty strengths the cross-validation tries (`LogisticRegressionCV`'s
/// default `Cs=10`), log-spaced over [1e-4, 1e4].
const PENALTY_GRID_SIZE: usize = 10;

/// The clipping of predicted probabilities in the package's `logloss`.
const LOG_LOSS_EPSILON: f64 = 1e-15;

/// One instruction for the length-controlled win rate.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PreferenceWithLengths {
    /// The preference for A over B in [0, 1] (AlpacaEval's `preference − 1`: 2 → 1, 1 → 0, a draw
    /// 1.5 → ½).
    pub preference: f64,
    /// The length of A's response in characters ([`char_length`](crate::char_length)).
    pub length_a: usize,
    /// The length of B's response in characters.
    pub length_b: usize,
}

impl PreferenceWithLengths {
    /// An instruction with preference `preference` for A, A's response `length_a` characters
    /// long and B's `length_b`.
    pub fn new(preference: f64, length_a: usize, length_b: usize) -> Self {
        PreferenceWithLengths {
            preference,
            length_a,
            length_b,
        }
    }
}

/// The fitted length model and the length-controlled win rate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LengthControlledFit {
    /// The predicted preference for A at zero length difference, in percent (the package's
    /// `length_controlled_winrate`).
    pub win_rate_percent: f64,
    /// The inverse L1 penalty strength that the cross-validation chose.
    pub inverse_penalty: f64,
    /// The weight of `tanh(std_delta_len)`: negative when the judge favours the longer response
    /// (a longer B, a positive `std_delta_len`, lowers the preference for A).
    pub length_weight: f64,
    /// The weight of the constant column: the log-odds of preferring A at equal lengths.
    pub constant_weight: f64,
    /// The standard deviation of `len(B) − len(A)` that standardises it.
    pub length_difference_sd: f64,
    /// The cross-validation: each inverse penalty tried, with its held-out log loss averaged
    /// over the folds (the package's `-model.scores_[1].mean(axis=0)`).
    pub cross_validation: Vec<PenaltyScore>,
}

/// One inverse penalty strength tried by the cross-validation.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PenaltyScore {
    /// The inverse L1 penalty strength `C`.
    pub inverse_penalty: f64,
    /// The held-out log loss, averaged over the folds (lower is better).
    pub mean_log_loss: f64,
}

/// The inverse penalty strengths the cross-validation tries: NumPy's `logspace(-4, 4, 10)`.
pub fn penalty_grid() -> [f64; PENALTY_GRID_SIZE] {
    let step = 8.0 / (PENALTY_GRID_SIZE - 1) as f64;
    std::array::from_fn(|k| 10f64.powf(-4.0 + k as f64 * step))
}

/// AlpacaEval 2's length-controlled win rate of A over B.
///
/// # Errors
/// [`EvalError::Empty`] without instructions; [`EvalError::InvalidPreference`];
/// [`EvalError::TooFewForCrossValidation`] below 5 instructions;
/// [`EvalError::ConstantLengthDifference`] when every instruction has the same length difference.
pub fn length_controlled_win_rate(
    instructions: &[PreferenceWithLengths],
) -> Result<LengthControlledFit, EvalError> {
    if instructions.is_empty() {
        return Err(EvalError::Empty);
    }
    check_preferences(instructions.iter().map(|row| row.preference))?;
    let rows: Vec<usize> = (0..instructions.len()).collect();
    fit_on_rows(instructions, &rows)
}

/// The fit on the instructions at `rows` (repetitions allowed: a bootstrap resample), preferences
/// already checked.
pub(crate) fn fit_on_rows(
    instructions: &[PreferenceWithLengths],
    rows: &[usize],
) -> Result<LengthControlledFit, EvalError> {
    if rows.len() < CROSS_VALIDATION_FOLDS {
        return Err(EvalError::TooFewForCrossValidation {
            needed: CROSS_VALIDATION_FOLDS,
            got: rows.len(),
        });
    }
    let differences: Vec<f64> = rows
        .iter()
        .map(|&row| instructions[row].length_b as f64 - instructions[row].length_a as f64)
        .collect();
    let sd = sample_standard_deviation(&differences);
    if !(sd > 0.0 && sd.is_finite()) {
        return Err(EvalError::ConstantLengthDifference);
    }
    let data = Design {
        length_feature: differences.iter().map(|d| (d / sd).tanh()).collect(),
        preference: rows
            .iter()
            .map(|&row| instructions[row].preference)
            .collect(),
    };

    let all: Vec<usize> = (0..data.len()).collect();
    let folds: Vec<usize> = (0..data.len())
        .map(|row| group_k_fold(row, data.len()))
        .collect();
    let cross_validation: Vec<PenaltyScore> = penalty_grid()
        .into_iter()
        .map(|inverse_penalty| {
            let mut total = 0.0;
            for fold in 0..CROSS_VALIDATION_FOLDS {
                let (held_out, train): (Vec<usize>, Vec<usize>) =
                    all.iter().partition(|&&row| folds[row] == fold);
                let weights = fit_l1_logistic(&data, &train, inverse_penalty);
                total += data.mean_log_loss(&held_out, weights);
            }
            let mean_log_loss = total / CROSS_VALIDATION_FOLDS as f64;
            PenaltyScore {
                inverse_penalty,
                mean_log_loss,
            }
        })
        .collect();
    // The lowest loss, the first of equal ones (NumPy's argmax of the scores).
    let best = cross_validation
        .iter()
        .fold(None, |best: Option<&PenaltyScore>, candidate| match best {
            Some(best) if best.mean_log_loss <= candidate.mean_log_loss => Some(best),
            _ => Some(candidate),
        });
    let inverse_penalty = best.map_or(1.0, |best| best.inverse_penalty);
    let [length_weight, constant_weight] = fit_l1_logistic(&data, &all, inverse_penalty);
    Ok(LengthControlledFit {
        win_rate_percent: 100.0 * sigmoid(constant_weight),
        inverse_penalty,
        length_weight,
        constant_weight,
        length_difference_sd: sd,
        cross_validation,
    })
}

/// pandas' `Series.std()`: the sample standard deviation (n − 1 in the denominator).
fn sample_standard_deviation(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let squares: f64 = values.iter().map(|v| (v - mean).powi(2)).sum();
    (squares / (n - 1.0)).sqrt()
}

/// The fold of row `row` of `rows` under scikit-learn's `GroupKFold(5)` when every group (an
/// instruction's two weighted rows) has the same size: groups are dealt, last group first, each to
/// the lightest fold, the first lightest on ties: a round robin from the last group.
fn group_k_fold(row: usize, rows: usize) -> usize {
    (rows - 1 - row) % CROSS_VALIDATION_FOLDS
}

/// The design matrix of the minimal model: the length column (the constant column is 1).
struct Design {
    length_feature: Vec<f64>,
    preference: Vec<f64>,
}

impl Design {
    fn len(&self) -> usize {
        self.preference.len()
    }

    fn logit(&self, row: usize, weights: [f64; 2]) -> f64 {
        weights[0] * self.length_feature[row] + weights[1]
    }

    /// The package's `logloss_continuous` on `rows`: the mean cross-entropy between the
    /// preferences and the predicted probabilities clipped to [1e-15, 1 − 1e-15].
    fn mean_log_loss(&self, rows: &[usize], weights: [f64; 2]) -> f64 {
        let total: f64 = rows
            .iter()
            .map(|&row| {
                let predicted = sigmoid(self.logit(row, weights))
                    .clamp(LOG_LOSS_EPSILON, 1.0 - LOG_LOSS_EPSILON);
                let p = self.preference[row];
                -(p * predicted.ln() + (1.0 - p) * (1.0 - predicted).ln())
            })
            .sum();
        total / rows.len() as f64
    }

    /// `C · Σ [p·softplus(−z) + (1 − p)·softplus(z)]` over `rows` (the weighted logistic loss of
    /// the two rows per instruction), with its gradient and Hessian in the weights.
    fn loss_gradient_hessian(
        &self,
        rows: &[usize],
        weights: [f64; 2],
        inverse_penalty: f64,
    ) -> (f64, [f64; 2], [[f64; 2]; 2]) {
        let mut loss = 0.0;
        let mut gradient = [0.0; 2];
        let mut hessian = [[0.0; 2]; 2];
        for &row in rows {
            let z = self.logit(row, weights);
            let p = self.preference[row];
            let x = self.length_feature[row];
            loss += p * softplus(-z) + (1.0 - p) * softplus(z);
            let predicted = sigmoid(z);
            let curvature = predicted * (1.0 - predicted);
            // The columns are x and the constant 1.
            gradient[0] += (predicted - p) * x;
            gradient[1] += predicted - p;
            hessian[0][0] += curvature * x * x;
            hessian[0][1] += curvature * x;
            hessian[1][1] += curvature;
        }
        hessian[1][0] = hessian[0][1];
        let scale = |v: f64| v * inverse_penalty;
        (
            scale(loss),
            gradient.map(scale),
            hessian.map(|line| line.map(scale)),
        )
    }

    fn objective(&self, rows: &[usize], weights: [f64; 2], inverse_penalty: f64) -> f64 {
        let loss: f64 = rows
            .iter()
            .map(|&row| {
                let z = self.logit(row, weights);
                let p = self.preference[row];
                p * softplus(-z) + (1.0 - p) * softplus(z)
            })
            .sum();
        inverse_penalty * loss + l1(weights)
    }
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// `ln(1 + eᶻ)` without overflow.
fn softplus(z: f64) -> f64 {
    if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}

fn l1(weights: [f64; 2]) -> f64 {
    weights[0].abs() + weights[1].abs()
}

fn soft_threshold(value: f64, threshold: f64) -> f64 {
    value.signum() * (value.abs() - threshold).max(0.0)
}

/// The minimiser of liblinear's L1-regularised logistic regression without intercept,
/// `‖w‖₁ + C·Σ loss`, on `rows`: `[length weight, constant weight]`.
///
/// Proximal Newton (as liblinear's newGLMNET, but each quadratic subproblem solved exactly and
/// iterated to machine precision): the objective is convex, and a backtracking line search on it
/// makes every step a descent.
fn fit_l1_logistic(data: &Design, rows: &[usize], inverse_penalty: f64) -> [f64; 2] {
    const MAX_STEPS: usize = 200;
    let mut weights = [0.0; 2];
    for _ in 0..MAX_STEPS {
        let (loss, gradient, hessian) = data.loss_gradient_hessian(rows, weights, inverse_penalty);
        let objective = loss + l1(weights);
        let target = proximal_newton_target(weights, gradient, hessian);
        let direction = [target[0] - weights[0], target[1] - weights[1]];
        // The predicted decrease of the model (negative unless `weights` is optimal), summed per
        // coordinate: `‖target‖₁ − ‖weights‖₁` as a difference of sums would round away the
        // tiny decreases of the last steps.
        let decrease: f64 = (0..2)
            .map(|j| gradient[j] * direction[j] + (target[j].abs() - weights[j].abs()))
            .sum();
        if decrease >= 0.0 {
            break;
        }
        // Near the optimum the predicted decrease falls below the rounding error of the
        // objective, which can no longer confirm it: the full step is then taken, as Newton's
        // steps are reliable there.
        let below_rounding = -decrease <= 1e-12 * objective.abs().max(1.0);
        let mut step = 1.0;
        let accepted = loop {
            let candidate = [
                weights[0] + step * direction[0],
                weights[1] + step * direction[1],
            ];
            if below_rounding
                || data.objective(rows, candidate, inverse_penalty)
                    <= objective + 0.01 * step * decrease
            {
                break Some(candidate);
            }
            step *= 0.5;
            if step < 1e-20 {
                break None;
            }
        };
        let Some(next) = accepted else { break };
        let moved = (next[0] - weights[0])
            .abs()
            .max((next[1] - weights[1]).abs());
        weights = next;
        if moved <= 1e-13 * (1.0 + weights[0].abs().max(weights[1].abs())) {
            break;
        }
    }
    weights
}

/// The exact minimiser `u` of the proximal Newton subproblem
/// `g·(u − w) + ½ (u − w)ᵀ H (u − w) + ‖u‖₁`: the best of the candidates of every sign pattern
/// (both coefficients free on an orthant, one pinned at zero, both at zero). A ridge of 1e-12 of
/// the curvature keeps `H` invertible; it changes the steps, not the fixed point.
fn proximal_newton_target(w: [f64; 2], g: [f64; 2], h: [[f64; 2]; 2]) -> [f64; 2] {
    let ridge = 1e-12 * (h[0][0] + h[1][1]) + 1e-300;
    let a = [[h[0][0] + ridge, h[0][1]], [h[1][0], h[1][1] + ridge]];
    let model = |u: [f64; 2]| {
        let d = [u[0] - w[0], u[1] - w[1]];
        let hd = [
            a[0][0] * d[0] + a[0][1] * d[1],
            a[1][0] * d[0] + a[1][1] * d[1],
        ];
        g[0] * d[0] + g[1] * d[1] + 0.5 * (d[0] * hd[0] + d[1] * hd[1]) + l1(u)
    };
    let mut candidates: Vec<[f64; 2]> = vec![[0.0, 0.0]];
    // One coefficient pinned at zero, the other soft-thresholded.
    for (free, pinned) in [(0usize, 1usize), (1, 0)] {
        let slope = g[free] - a[free][pinned] * w[pinned];
        let mut u = [0.0; 2];
        u[free] = soft_threshold(w[free] - slope / a[free][free], 1.0 / a[free][free]);
        candidates.push(u);
    }
    // Both free, on the orthant of signs `s`: H (u − w) = −(g + s), kept when the signs agree.
    let determinant = a[0][0] * a[1][1] - a[0][1] * a[1][0];
    if determinant > 0.0 {
        for s in [[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]] {
            let r = [-(g[0] + s[0]), -(g[1] + s[1])];
            let d = [
                (a[1][1] * r[0] - a[0][1] * r[1]) / determinant,
                (a[0][0] * r[1] - a[1][0] * r[0]) / determinant,
            ];
            let u = [w[0] + d[0], w[1] + d[1]];
            if u[0] * s[0] > 0.0 && u[1] * s[1] > 0.0 {
                candidates.push(u);
            }
        }
    }
    candidates
        .into_iter()
        .filter(|u| u[0].is_finite() && u[1].is_finite())
        .min_by(|x, y| model(*x).total_cmp(&model(*y)))
        .unwrap_or(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn design(length_feature: Vec<f64>, preference: Vec<f64>) -> Design {
        Design {
            length_feature,
            preference,
        }
    }

    #[test]
    fn the_penalty_grid_is_numpys_logspace() {
        let grid = penalty_grid();
        assert_eq!(grid[0], 1e-4);
        assert!((grid[9] - 1e4).abs() < 1e-9);
        // numpy.logspace(-4, 4, 10)[4] = 10^(-4 + 32/9) = 0.35938136638046...
        assert!((grid[4] - 0.359_381_366_380_462_6).abs() < 1e-12);
    }

    #[test]
    fn sample_standard_deviation_by_hand() {
        // Values 1, 2, 3, 4: mean 2.5, squares 5, over n − 1 = 3.
        assert!(
            (sample_standard_deviation(&[1.0, 2.0, 3.0, 4.0]) - (5.0f64 / 3.0).sqrt()).abs()
                < 1e-15
        );
    }

    #[test]
    fn a_weak_penalty_recovers_a_known_model() {
        // Preferences that are exactly σ(θ + φ·x): the unpenalised optimum is (φ, θ) itself
        // (the gradient vanishes there), and with C = 1e9 the L1 term moves it by ~1e-9.
        let (theta, phi) = (0.7, -1.3);
        let xs: Vec<f64> = (0..40).map(|i| ((i as f64) * 0.37).sin()).collect();
        let ps: Vec<f64> = xs.iter().map(|x| sigmoid(theta + phi * x)).collect();
        let data = design(xs, ps);
        let rows: Vec<usize> = (0..data.len()).collect();
        let [length, constant] = fit_l1_logistic(&data, &rows, 1e9);
        assert!((length - phi).abs() < 1e-7, "{length}");
        assert!((constant - theta).abs() < 1e-7, "{constant}");
    }

    #[test]
    fn a_strong_penalty_zeroes_the_weights() {
        // With C = 1e-4 the loss gradient at 0 (|C·Σ(½ − p)x| ≤ 1e-4·n) is inside the L1 ball:
        // zero is optimal.
        let data = design(vec![0.5, -0.2, 0.9, -0.7], vec![1.0, 0.0, 1.0, 0.5]);
        assert_eq!(fit_l1_logistic(&data, &[0, 1, 2, 3], 1e-4), [0.0, 0.0]);
    }

    #[test]
    fn the_l1_optimum_satisfies_its_optimality_conditions() {
        // At the optimum, a non-zero weight has gradient −sign(w), a zero one |gradient| ≤ 1.
        let xs: Vec<f64> = (0..30).map(|i| ((i as f64) * 1.1).cos()).collect();
        let ps: Vec<f64> = (0..30).map(|i| [0.0, 0.5, 1.0, 1.0][i % 4]).collect();
        let data = design(xs, ps);
        let rows: Vec<usize> = (0..data.len()).collect();
        for c in penalty_grid() {
            let weights = fit_l1_logistic(&data, &rows, c);
            let (_, gradient, _) = data.loss_gradient_hessian(&rows, weights, c);
            for (weight, slope) in weights.iter().zip(gradient) {
                if *weight == 0.0 {
                    assert!(slope.abs() <= 1.0 + 1e-9, "C={c}: {gradient:?}");
                } else {
                    let residual = slope + weight.signum();
                    // The gradient sums 30 terms scaled by C: its rounding is ~1e-16·C·30.
                    assert!(
                        residual.abs() < 1e-12 * (1.0 + 30.0 * c),
                        "C={c}: {gradient:?}"
                    );
                }
            }
        }
    }

    fn instructions(pairs: &[(f64, usize, usize)]) -> Vec<PreferenceWithLengths> {
        pairs
            .iter()
            .map(|&(p, a, b)| PreferenceWithLengths::new(p, a, b))
            .collect()
    }

    #[test]
    fn a_judge_that_only_rewards_length_gives_one_half() {
        // A wins exactly when it is longer, as often longer as shorter, by mirrored amounts: the
        // length term explains everything, the constant is 0 and the length-controlled win rate
        // is 50% whatever the raw one.
        let mut rows = Vec::new();
        for k in 1..=20 {
            rows.push((1.0, 100 + 10 * k, 100));
            rows.push((0.0, 100, 100 + 10 * k));
        }
        let fit = length_controlled_win_rate(&instructions(&rows)).unwrap();
        assert!((fit.win_rate_percent - 50.0).abs() < 1e-9, "{fit:?}");
        // B longer (positive std_delta_len) means A loses: a negative weight.
        assert!(fit.length_weight < 0.0);
    }

    #[test]
    fn a_length_independent_judge_keeps_its_known_rate() {
        // Preferences σ(θ) whatever the lengths: the length weight is 0 and the rate is σ(θ)
        // (the CV picks a weak penalty, whose pull on θ is below 1e-3 of a point).
        let theta: f64 = 0.8;
        let rows: Vec<(f64, usize, usize)> = (0..50)
            .map(|i| (sigmoid(theta), 100 + (i * 37) % 90, 100 + (i * 53) % 70))
            .collect();
        let fit = length_controlled_win_rate(&instructions(&rows)).unwrap();
        assert!(
            (fit.win_rate_percent - 100.0 * sigmoid(theta)).abs() < 1e-3,
            "{fit:?}"
        );
        assert!(fit.length_weight.abs() < 1e-6, "{fit:?}");
    }

    #[test]
    fn unusable_inputs_are_errors() {
        assert_eq!(length_controlled_win_rate(&[]), Err(EvalError::Empty));
        let four = instructions(&[(1.0, 1, 2), (0.0, 3, 1), (1.0, 5, 5), (0.5, 2, 9)]);
        assert_eq!(
            length_controlled_win_rate(&four),
            Err(EvalError::TooFewForCrossValidation { needed: 5, got: 4 })
        );
        let same = instructions(&[(1.0, 10, 4); 6]);
        assert_eq!(
            length_controlled_win_rate(&same),
            Err(EvalError::ConstantLengthDifference)
        );
        let bad = instructions(&[(1.0, 10, 4), (-0.1, 3, 4)]);
        assert_eq!(
            length_controlled_win_rate(&bad),
            Err(EvalError::InvalidPreference {
                index: 1,
                value: -0.1
            })
        );
    }
}
