//! The randomness power of two choices draws its candidates with.
//!
//! Why a trait: tests (here and in callers) need picks they can predict, and production needs a
//! fast, thread-safe source; a one-method trait lets a test hand the balancer a scripted or seeded
//! source through [`BalancerBuilder::random`](crate::BalancerBuilder::random).

use rand::Rng;

/// A source of uniformly distributed numbers, shared by every pick of a balancer.
pub trait Random: Send + Sync {
    /// A number in `0..bound`, each equally likely. The balancer always passes a `bound` of at
    /// least 1.
    fn below(&self, bound: usize) -> usize;
}

/// The default source: `rand`'s thread-local generator, so concurrent picks never contend.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadRandom;

impl Random for ThreadRandom {
    fn below(&self, bound: usize) -> usize {
        rand::rng().random_range(0..bound.max(1))
    }
}

/// Two distinct numbers in `0..count` (`count` at least 2), every ordered pair equally likely.
pub(crate) fn two_distinct(random: &dyn Random, count: usize) -> (usize, usize) {
    let first = random.below(count);
    let second = random.below(count - 1);
    (first, if second >= first { second + 1 } else { second })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers `bound - 1`, the largest number it may.
    struct Highest;

    impl Random for Highest {
        fn below(&self, bound: usize) -> usize {
            bound - 1
        }
    }

    #[test]
    fn two_distinct_never_draws_the_same_number_twice() {
        for count in 2..50 {
            for _ in 0..20 {
                let (a, b) = two_distinct(&ThreadRandom, count);
                assert!(a != b && a < count && b < count, "{a} {b} of {count}");
            }
            assert_eq!(two_distinct(&Highest, count), (count - 1, count - 2));
        }
    }
}
