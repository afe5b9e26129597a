//! Choosing one token from a row of logits: suppression, temperature, top-k, top-p, min-p (in
//! the order Hugging Face transformers applies them), then one draw.

use super::{SamplingParams, SequenceRng};

/// Picks the next token from `logits` (one vocabulary row). Greedy (lowest index among equal
/// maxima) when the temperature is 0; otherwise exactly one uniform draw from `rng`.
pub fn sample_token(logits: &[f32], params: &SamplingParams, rng: &mut SequenceRng) -> u32 {
    let suppressed = |token: usize| params.suppress_token_ids.contains(&(token as u32));
    if params.temperature == 0.0 {
        let mut best = (0usize, f32::NEG_INFINITY);
        for (token, &logit) in logits.iter().enumerate() {
            if logit > best.1 && !suppressed(token) {
                best = (token, logit);
            }
        }
        return best.0 as u32;
    }
    let inverse_temperature = 1.0 / params.temperature;
    let mut max = f32::NEG_INFINITY;
    for (token, &logit) in logits.iter().enumerate() {
        if logit > max && !suppressed(token) {
            max = logit;
        }
    }
    // Unnormalised probabilities; removed tokens get 0.
    let mut weights: Vec<f32> = logits
        .iter()
        .map(|&logit| ((logit - max) * inverse_temperature).exp())
        .collect();
    for &token in &params.suppress_token_ids {
        if let Some(weight) = weights.get_mut(token as usize) {
            *weight = 0.0;
        }
    }
    if params.top_k > 0 && params.top_k < weights.len() {
        let mut sorted: Vec<f32> = weights.clone();
        let (_, kth, _) = sorted.select_nth_unstable_by(params.top_k - 1, |a, b| b.total_cmp(a));
        let threshold = *kth;
        // Keep ties at the threshold, as transformers does (`logits < kth value` is removed).
        for weight in weights.iter_mut() {
            if *weight < threshold {
                *weight = 0.0;
            }
        }
    }
    if params.top_p < 1.0 {
        apply_top_p(&mut weights, params.top_p);
    }
    if params.min_p > 0.0 {
        let top = weights.iter().copied().fold(0.0f32, f32::max);
        let threshold = params.min_p * top;
        for weight in weights.iter_mut() {
            if *weight < threshold {
                *weight = 0.0;
            }
        }
    }
    let total: f64 = weights.iter().map(|&w| w as f64).sum();
    let mut target = rng.next_f64() * total;
    let mut last_kept = 0usize;
    for (token, &weight) in weights.iter().enumerate() {
        if weight <= 0.0 {
            continue;
        }
        last_kept = token;
        target -= weight as f64;
        if target < 0.0 {
            return token as u32;
        }
    }
    last_kept as u32
}

/// Zeroes the tail outside the nucleus: sorted ascending, tokens whose cumulative probability
/// is at most `1 - top_p` go (at least one token stays), as transformers' `TopPLogitsWarper`.
/// Only candidates above `(1 - top_p) / vocab` of the mass are sorted: every token below that
/// is certain to fall in the removed tail, since all of them together hold less than
/// `1 - top_p`.
fn apply_top_p(weights: &mut [f32], top_p: f32) {
    let total: f64 = weights.iter().map(|&w| w as f64).sum();
    if total <= 0.0 {
        return;
    }
    let tail = (1.0 - top_p as f64) * total;
    let floor = tail / weights.len() as f64;
    let mut removed_mass = 0.0f64;
    let mut candidates: Vec<(f32, usize)> = Vec::new();
    for (token, weight) in weights.iter_mut().enumerate() {
        if *weight <= 0.0 {
            continue;
        }
        if (*weight as f64) < floor {
            removed_mass += *weight as f64;
            *weight = 0.0;
        } else {
            candidates.push((*weight, token));
        }
    }
    candidates.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
    let mut cumulative = removed_mass;
    let keep_from_end = 1;
    let removable = candidates.len().saturating_sub(keep_from_end);
    for &(weight, token) in &candidates[..removable] {
        cumulative += weight as f64;
        if cumulative <= tail {
            weights[token] = 0.0;
        } else {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(temperature: f32, top_p: f32, top_k: usize, min_p: f32) -> SamplingParams {
        SamplingParams {
            temperature,
            top_p,
            top_k,
            min_p,
            ..SamplingParams::default()
        }
    }

    #[test]
    fn greedy_takes_argmax_and_respects_suppression() {
        let logits = [0.1, 3.0, 2.0, 3.0];
        let mut rng = SequenceRng::new(1);
        assert_eq!(
            sample_token(&logits, &params(0.0, 1.0, 0, 0.0), &mut rng),
            1
        );
        let mut suppressing = params(0.0, 1.0, 0, 0.0);
        suppressing.suppress_token_ids = vec![1, 3];
        assert_eq!(sample_token(&logits, &suppressing, &mut rng), 2);
    }

    #[test]
    fn top_k_one_and_tiny_top_p_are_greedy() {
        let logits = [0.5, 1.0, 4.0, 3.9, -2.0];
        for seed in 0..50 {
            let mut rng = SequenceRng::new(seed);
            assert_eq!(
                sample_token(&logits, &params(1.0, 1.0, 1, 0.0), &mut rng),
                2
            );
            assert_eq!(
                sample_token(&logits, &params(1.0, 0.01, 0, 0.0), &mut rng),
                2
            );
        }
    }

    #[test]
    fn top_p_keeps_the_nucleus_only() {
        // probabilities 0.5, 0.3, 0.15, 0.05: top_p 0.75 keeps tokens 0 and 1 only
        // (ascending cumulative 0.05, 0.2 <= 0.25 removed, then 0.5 > 0.25 kept).
        let probs = [0.5f32, 0.3, 0.15, 0.05];
        let logits: Vec<f32> = probs.iter().map(|p| p.ln()).collect();
        let mut seen = [0usize; 4];
        for seed in 0..2000 {
            let mut rng = SequenceRng::new(seed);
            seen[sample_token(&logits, &params(1.0, 0.75, 0, 0.0), &mut rng) as usize] += 1;
        }
        assert!(seen[0] > 0 && seen[1] > 0);
        assert_eq!(seen[2] + seen[3], 0, "{seen:?}");
    }

    #[test]
    fn min_p_drops_unlikely_tokens() {
        let probs = [0.6f32, 0.3, 0.1];
        let logits: Vec<f32> = probs.iter().map(|p| p.ln()).collect();
        for seed in 0..500 {
            let mut rng = SequenceRng::new(seed);
            let token = sample_token(&logits, &params(1.0, 1.0, 0, 0.4), &mut rng);
            assert_ne!(token, 2);
        }
    }
}
