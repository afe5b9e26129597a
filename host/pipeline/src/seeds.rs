//! Seeds of every random stream of a run, derived from the run seed and the identity of the
//! work (iteration, instruction id, sample index, phase), never from batch composition, order or
//! timing: an interrupted and resumed run draws the same numbers.

use sha2::{Digest, Sha256};

/// A seed for the work named by `parts`, under the run seed `seed`.
pub fn derive(seed: u64, parts: &[&str]) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(b"ponder-seed\0");
    hasher.update(seed.to_le_bytes());
    for part in parts {
        // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(bytes)
}

/// The seed of sample `k` of instruction `id` in `iteration`.
pub fn sample_seed(seed: u64, iteration: u32, id: &str, k: usize) -> u64 {
    derive(
        seed,
        &["sample", &iteration.to_string(), id, &k.to_string()],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_depend_on_every_part_and_nothing_else() {
        let a = sample_seed(1, 1, "x", 0);
        assert_eq!(a, sample_seed(1, 1, "x", 0));
        assert_ne!(a, sample_seed(2, 1, "x", 0));
        assert_ne!(a, sample_seed(1, 2, "x", 0));
        assert_ne!(a, sample_seed(1, 1, "y", 0));
        assert_ne!(a, sample_seed(1, 1, "x", 1));
        assert_ne!(derive(0, &["ab", "c"]), derive(0, &["a", "bc"]));
    }
}
