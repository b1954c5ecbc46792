//! A small HyperLogLog: the memory backend's equivalent of Redis's
//! `PFADD`/`PFCOUNT`, counting distinct users of a client without keeping
//! who they are.
//!
//! 2^10 one-byte registers (1 KiB per client, allocated on the first user):
//! a standard error of about 3 % in the large, and, through linear counting,
//! practically exact for the few hundred users a new-client threshold is
//! about. Elements are already uniform digests (SHA-256 of the user), so
//! their first 64 bits serve as the hash.

/// Index bits: 2^10 registers.
const P: u32 = 10;
/// The number of registers.
const M: usize = 1 << P;

/// A HyperLogLog sketch.
#[derive(Debug, Clone)]
pub(super) struct HyperLogLog {
    registers: Box<[u8; M]>,
}

impl HyperLogLog {
    /// An empty sketch.
    pub(super) fn new() -> Self {
        HyperLogLog {
            registers: Box::new([0; M]),
        }
    }

    /// Adds an element given as a uniform 64-bit hash; `true` when the
    /// estimate may have changed (as `PFADD` answers).
    pub(super) fn add(&mut self, hash: u64) -> bool {
        let index = usize::try_from(hash >> (64 - P)).unwrap_or(0);
        // A guard bit keeps the rank bounded when the rest is all zeros.
        let rest = (hash << P) | (1 << (P - 1));
        let rank = u8::try_from(rest.leading_zeros() + 1).unwrap_or(u8::MAX);
        let register = &mut self.registers[index];
        if rank > *register {
            *register = rank;
            true
        } else {
            false
        }
    }

    /// The estimated number of distinct elements added.
    pub(super) fn count(&self) -> u64 {
        let m = M as f64;
        let (sum, zeros) = self
            .registers
            .iter()
            .fold((0.0_f64, 0_usize), |(sum, zeros), &rank| {
                (
                    sum + (-f64::from(rank)).exp2(),
                    zeros + usize::from(rank == 0),
                )
            });
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let raw = alpha * m * m / sum;
        let estimate = if raw <= 2.5 * m && zeros > 0 {
            // Linear counting: exact in all but name for small sets.
            m * (m / zeros as f64).ln()
        } else {
            raw
        };
        // Non-negative and far below 2^53 by construction.
        estimate.round().max(0.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u64) -> u64 {
        let digest = ring::digest::digest(&ring::digest::SHA256, &n.to_be_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest.as_ref()[..8]);
        u64::from_be_bytes(first)
    }

    #[test]
    fn small_sets_are_counted_exactly_and_repeats_not_at_all() {
        let mut sketch = HyperLogLog::new();
        assert_eq!(sketch.count(), 0);
        for n in 0..100 {
            sketch.add(hash(n));
            // Every user counted again changes nothing.
            assert!(!sketch.add(hash(n)));
        }
        let count = sketch.count();
        assert!((97..=103).contains(&count), "{count}");
        for n in 1..=5 {
            let mut small = HyperLogLog::new();
            for i in 0..n {
                small.add(hash(1000 + i));
            }
            assert_eq!(small.count(), n);
        }
    }

    #[test]
    fn large_sets_are_within_a_few_percent() {
        let mut sketch = HyperLogLog::new();
        for n in 0..50_000 {
            sketch.add(hash(n));
        }
        let count = sketch.count() as f64;
        assert!((count - 50_000.0).abs() / 50_000.0 < 0.1, "{count}");
    }

    #[test]
    fn an_all_zero_hash_does_not_overflow_the_rank() {
        let mut sketch = HyperLogLog::new();
        assert!(sketch.add(0));
        assert!(sketch.add(u64::MAX));
        assert_eq!(sketch.count(), 2);
    }
}
