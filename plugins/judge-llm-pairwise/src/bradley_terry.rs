//! Regularised Bradley-Terry maximum-likelihood fit of a battle matrix.
//!
//! Maximises `Σ_mn B_mn log σ(e_m − e_n) − (λ/2) Σ_m e_m²` by Newton's method with a backtracking
//! line search. The objective is strictly concave for λ > 0, so the optimum is unique and finite
//! even when one candidate wins every battle, and Σ e_m = 0 at the optimum (the gradients of the
//! likelihood sum to zero), so the strengths come out centred.

/// Strengths `e` for the battle matrix `wins[m][n]` (how often `m` beat `n`), with L2 prior
/// strength `prior` (> 0).
pub fn fit(wins: &[Vec<f64>], prior: f64) -> Vec<f64> {
    let size = wins.len();
    let mut strengths = vec![0.0; size];
    if size == 0 {
        return strengths;
    }
    let mut value = objective(wins, prior, &strengths);
    for _ in 0..100 {
        let (gradient, hessian) = derivatives(wins, prior, &strengths);
        if gradient.iter().all(|g| g.abs() < 1e-10) {
            break;
        }
        // Newton step: solve (−H) d = g; −H is positive definite.
        let negated: Vec<Vec<f64>> = hessian
            .iter()
            .map(|row| row.iter().map(|h| -h).collect())
            .collect();
        let Some(step) = solve(negated, gradient.clone()) else {
            break;
        };
        let mut scale = 1.0;
        let mut improved = false;
        while scale > 1e-8 {
            let candidate: Vec<f64> = strengths
                .iter()
                .zip(&step)
                .map(|(e, d)| e + scale * d)
                .collect();
            let candidate_value = objective(wins, prior, &candidate);
            if candidate_value >= value {
                strengths = candidate;
                value = candidate_value;
                improved = true;
                break;
            }
            scale *= 0.5;
        }
        if !improved {
            break;
        }
    }
    strengths
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// log σ(x), stable for large |x|.
fn log_sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        -(-x).exp().ln_1p()
    } else {
        x - x.exp().ln_1p()
    }
}

fn objective(wins: &[Vec<f64>], prior: f64, strengths: &[f64]) -> f64 {
    let mut total = -0.5 * prior * strengths.iter().map(|e| e * e).sum::<f64>();
    for (m, row) in wins.iter().enumerate() {
        for (n, &count) in row.iter().enumerate() {
            if m != n && count > 0.0 {
                total += count * log_sigmoid(strengths[m] - strengths[n]);
            }
        }
    }
    total
}

fn derivatives(wins: &[Vec<f64>], prior: f64, strengths: &[f64]) -> (Vec<f64>, Vec<Vec<f64>>) {
    let size = strengths.len();
    let mut gradient: Vec<f64> = strengths.iter().map(|e| -prior * e).collect();
    let mut hessian = vec![vec![0.0; size]; size];
    for m in 0..size {
        hessian[m][m] = -prior;
        for n in 0..size {
            if m == n {
                continue;
            }
            let games = wins[m][n] + wins[n][m];
            if games <= 0.0 {
                continue;
            }
            let p = sigmoid(strengths[m] - strengths[n]);
            gradient[m] += wins[m][n] - games * p;
            let curvature = games * p * (1.0 - p);
            hessian[m][m] -= curvature;
            hessian[m][n] += curvature;
        }
    }
    (gradient, hessian)
}

/// Solves `a x = b` by Gaussian elimination with partial pivoting; `None` if singular.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let size = b.len();
    for column in 0..size {
        let pivot =
            (column..size).max_by(|&i, &j| a[i][column].abs().total_cmp(&a[j][column].abs()))?;
        if a[pivot][column].abs() < 1e-300 {
            return None;
        }
        a.swap(column, pivot);
        b.swap(column, pivot);
        let (upper, lower) = a.split_at_mut(column + 1);
        let pivot_row = &upper[column];
        for (offset, row) in lower.iter_mut().enumerate() {
            let factor = row[column] / pivot_row[column];
            for (value, pivot_value) in row[column..].iter_mut().zip(&pivot_row[column..]) {
                *value -= factor * pivot_value;
            }
            b[column + 1 + offset] -= factor * b[column];
        }
    }
    let mut x = vec![0.0; size];
    for row in (0..size).rev() {
        let tail: f64 = (row + 1..size).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - tail) / a[row][row];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient_norm(wins: &[Vec<f64>], prior: f64, e: &[f64]) -> f64 {
        derivatives(wins, prior, e)
            .0
            .iter()
            .map(|g| g * g)
            .sum::<f64>()
            .sqrt()
    }

    #[test]
    fn no_battles_give_zero_strengths() {
        assert_eq!(
            fit(&[vec![0.0; 3], vec![0.0; 3], vec![0.0; 3]], 0.1),
            vec![0.0; 3]
        );
        assert!(fit(&[], 0.1).is_empty());
    }

    #[test]
    fn even_record_gives_equal_strengths() {
        let wins = vec![vec![0.0, 1.0], vec![1.0, 0.0]];
        let e = fit(&wins, 0.1);
        assert!(e[0].abs() < 1e-9 && e[1].abs() < 1e-9, "{e:?}");
    }

    #[test]
    fn two_players_match_the_closed_form() {
        // 3 wins against 1: with a vanishing prior, e0 − e1 → ln 3.
        let wins = vec![vec![0.0, 3.0], vec![1.0, 0.0]];
        let e = fit(&wins, 1e-9);
        assert!((e[0] - e[1] - 3f64.ln()).abs() < 1e-5, "{e:?}");
        assert!((e[0] + e[1]).abs() < 1e-6);
    }

    #[test]
    fn a_candidate_that_wins_everything_stays_finite_and_on_top() {
        // Candidate 0 beats everyone in both orders; 1 and 2 split, 2 beats 3 twice.
        let size = 4;
        let mut wins = vec![vec![0.0; size]; size];
        for count in &mut wins[0][1..] {
            *count = 2.0;
        }
        wins[1][2] = 1.0;
        wins[2][1] = 1.0;
        wins[2][3] = 2.0;
        let e = fit(&wins, 0.1);
        assert!(e.iter().all(|x| x.is_finite()), "{e:?}");
        assert!(e[0] > e[1] && e[0] > e[2] && e[0] > e[3], "{e:?}");
        assert!(e[2] > e[3], "{e:?}");
        assert!(e.iter().sum::<f64>().abs() < 1e-6, "not centred: {e:?}");
        assert!(gradient_norm(&wins, 0.1, &e) < 1e-8);
    }

    #[test]
    fn extreme_priors_and_counts_stay_finite() {
        // A vanishing prior lets a clean sweep push the strengths apart; a huge one pins them
        // near 0; huge battle counts make huge gradients. None may overflow.
        for (prior, count) in [(1e-300, 2.0), (1e300, 2.0), (0.1, 1e300), (1e-300, 1e300)] {
            let wins = vec![vec![0.0, count, count], vec![0.0, 0.0, count], vec![0.0; 3]];
            let e = fit(&wins, prior);
            assert!(e.iter().all(|x| x.is_finite()), "{prior} {count}: {e:?}");
            assert!(e[0] >= e[1] && e[1] >= e[2], "{prior} {count}: {e:?}");
        }
    }

    #[test]
    fn transitive_order_is_recovered() {
        // 0 > 1 > 2 > 3 with some upsets.
        let wins = vec![
            vec![0.0, 2.0, 2.0, 2.0],
            vec![0.0, 0.0, 2.0, 1.0],
            vec![0.0, 0.0, 0.0, 2.0],
            vec![0.0, 1.0, 0.0, 0.0],
        ];
        let e = fit(&wins, 0.01);
        assert!(e[0] > e[1] && e[1] > e[2] && e[2] > e[3], "{e:?}");
    }
}
