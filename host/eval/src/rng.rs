//! SplitMix64 (Steele, Lea and Flood 2014), the generator of the model's sampler
//! (`ponder-model`'s `sampler/rng.rs`): small, portable and reproducible on every platform.
//! Restated here because the evaluation statistics must not depend on the burn model crate.

/// One seeded random stream.
#[derive(Clone, Debug)]
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A stream seeded by `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform index in `0..bound` (`bound > 0`), by the high half of a 64×64-bit product: no
    /// division, and a bias below `bound / 2^64`, negligible for any data set.
    pub(crate) fn below(&mut self, bound: usize) -> usize {
        ((u128::from(self.next_u64()) * bound as u128) >> 64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_splitmix64() {
        // Vigna's splitmix64.c seeded with 1234567 (values computed independently with Python's
        // arbitrary-precision integers by scripts/eval/compare_lc.py's `splitmix64`).
        let mut rng = SplitMix64::new(1_234_567);
        let first: Vec<u64> = (0..3).map(|_| rng.next_u64()).collect();
        assert_eq!(
            first,
            [
                6_457_827_717_110_365_317,
                3_203_168_211_198_807_973,
                9_817_491_932_198_370_423
            ]
        );
    }

    #[test]
    fn indices_stay_below_the_bound() {
        let mut rng = SplitMix64::new(3);
        for bound in [1, 2, 7, 1000] {
            assert!((0..1000).all(|_| rng.below(bound) < bound));
        }
    }
}
