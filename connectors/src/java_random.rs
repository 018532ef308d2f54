//! `java.util.Random`, bit for bit: the Nexmark reference generators seed one per event, so
//! using the same sequence makes Eddy's events those of the reference for the same settings.

const MULTIPLIER: u64 = 0x5_DEEC_E66D;
const ADDEND: u64 = 0xB;
const MASK: u64 = (1 << 48) - 1;

/// A 48-bit linear congruential generator with Java's seeding and derivations.
#[derive(Clone, Debug)]
pub struct JavaRandom {
    seed: u64,
}

impl JavaRandom {
    pub fn new(seed: i64) -> Self {
        Self {
            seed: (seed as u64 ^ MULTIPLIER) & MASK,
        }
    }

    fn next(&mut self, bits: u32) -> i32 {
        self.seed = self.seed.wrapping_mul(MULTIPLIER).wrapping_add(ADDEND) & MASK;
        (self.seed >> (48 - bits)) as i64 as i32
    }

    /// `nextInt()`: any `i32`.
    pub fn next_int(&mut self) -> i32 {
        self.next(32)
    }

    /// `nextInt(bound)`: uniform in `[0, bound)`; `bound` must be positive.
    pub fn next_int_below(&mut self, bound: i32) -> i32 {
        debug_assert!(bound > 0, "bound must be positive");
        let mut r = self.next(31);
        let m = bound - 1;
        if bound & m == 0 {
            return ((bound as i64 * r as i64) >> 31) as i32;
        }
        let mut u = r;
        loop {
            r = u % bound;
            if u.wrapping_sub(r).wrapping_add(m) >= 0 {
                return r;
            }
            u = self.next(31);
        }
    }

    /// `nextLong()`.
    pub fn next_long(&mut self) -> i64 {
        let high = self.next(32) as i64;
        let low = self.next(32) as i64;
        (high << 32).wrapping_add(low)
    }

    /// `nextDouble()`: uniform in `[0, 1)` with 53 random bits.
    pub fn next_double(&mut self) -> f64 {
        let high = self.next(26) as i64;
        let low = self.next(27) as i64;
        ((high << 27) + low) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// For each seed: `nextInt(b)` for each of these bounds, then `nextInt()`, `nextLong()`,
    /// `nextDouble()` and a Nexmark price, `Math.round(Math.pow(10, nextDouble() * 6) * 100)`,
    /// as a JVM (OpenJDK 17) printed them.
    #[test]
    fn sequences_match_a_jvm() {
        const BOUNDS: [i32; 14] = [
            2,
            4,
            5,
            6,
            9,
            10,
            11,
            13,
            26,
            100,
            1000,
            10000,
            1010,
            i32::MAX,
        ];
        #[rustfmt::skip]
        let expected: [(i64, [i32; 14], i32, i64, f64, i64); 6] = [
            (0, [1, 3, 4, 5, 8, 3, 2, 2, 3, 54, 77, 2677, 503, 1316484262], -65105105, -316923953663567096, 0.023081853110331063, 1137),
            (1, [1, 0, 2, 3, 8, 4, 6, 9, 22, 48, 569, 8473, 827, 342691263], -258276172, -8225913900319941199, 0.910950480954083, 83661),
            (42, [1, 0, 3, 2, 0, 5, 1, 3, 3, 93, 182, 7502, 136, 819572292], 1184328952, -5710636755842891759, 0.762090173108902, 97515039),
            (12345, [0, 2, 1, 0, 4, 4, 7, 9, 15, 89, 517, 2942, 270, 1962470806], -1554121271, 2132282762986792902, 0.9297478462589988, 3766),
            (999999999, [0, 3, 4, 0, 7, 7, 7, 8, 12, 84, 653, 6300, 24, 1304826741], 1236714829, -7181605840355360926, 0.7410603635062091, 4508948),
            (-7, [0, 3, 0, 3, 3, 7, 2, 9, 21, 44, 177, 8921, 76, 2097106195], 740122818, -8345463556342312887, 0.1268791342919673, 453),
        ];
        for (seed, ints, int, long, double, price) in expected {
            let mut r = JavaRandom::new(seed);
            let got: Vec<i32> = BOUNDS.iter().map(|b| r.next_int_below(*b)).collect();
            assert_eq!(got, ints, "seed {seed}");
            assert_eq!(r.next_int(), int, "seed {seed}");
            assert_eq!(r.next_long(), long, "seed {seed}");
            assert_eq!(r.next_double(), double, "seed {seed}");
            let p = (10f64.powf(r.next_double() * 6.0) * 100.0 + 0.5).floor() as i64;
            assert_eq!(p, price, "seed {seed}");
        }
    }

    /// Values printed by `java.util.Random` for these seeds.
    #[test]
    fn matches_java() {
        let mut r = JavaRandom::new(42);
        assert_eq!(r.next_int(), -1_170_105_035);
        assert_eq!(JavaRandom::new(42).next_int_below(10), 0);
        assert_eq!(JavaRandom::new(42).next_int_below(16), 11);
        let mut r = JavaRandom::new(0);
        assert_eq!(r.next_int(), -1_155_484_576);
        let mut r = JavaRandom::new(42);
        assert_eq!(r.next_long(), -5_025_562_857_975_149_833);
        let mut r = JavaRandom::new(42);
        assert!((r.next_double() - 0.7275636800328681).abs() < 1e-16);
    }
}
