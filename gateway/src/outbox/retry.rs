//! Retry timing: exponential backoff with jitter, for one delivery after failed attempts and
//! for a whole sink after batches that delivered nothing.

use std::time::Duration;

/// Exponential backoff: `initial`, doubled per attempt, at most `max`; "equal jitter" (half the
/// delay fixed, half random) so that deliveries failed together do not come back together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first failure (before jitter).
    pub initial: Duration,
    /// Longest delay (before jitter).
    pub max: Duration,
}

impl Backoff {
    /// The delay after `failures` consecutive failures (1 = the first), with `random` in
    /// [0, 1) choosing the jitter. A `Retry-After` from the sink is a lower bound.
    pub fn delay(&self, failures: u32, retry_after: Option<Duration>, random: f64) -> Duration {
        let exponent = failures.saturating_sub(1).min(30);
        let base = self.initial.saturating_mul(1u32 << exponent).min(self.max);
        let half = base / 2;
        let jittered = half + half.mul_f64(random.clamp(0.0, 1.0));
        match retry_after {
            Some(wait) => jittered.max(wait),
            None => jittered,
        }
    }
}

/// A number in [0, 1) for jitter.
pub fn jitter() -> f64 {
    fastrand::f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Backoff = Backoff {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(60),
    };

    #[test]
    fn delay_doubles_per_failure_up_to_the_maximum() {
        let full: Vec<u64> = (1..=8).map(|n| B.delay(n, None, 1.0).as_secs()).collect();
        assert_eq!(full, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(B.delay(u32::MAX, None, 1.0), Duration::from_secs(60), "no overflow");
    }

    #[test]
    fn jitter_keeps_at_least_half_the_delay() {
        assert_eq!(B.delay(4, None, 0.0), Duration::from_secs(4));
        assert_eq!(B.delay(4, None, 0.5), Duration::from_secs(6));
        for _ in 0..1000 {
            let d = B.delay(3, None, jitter());
            assert!(d >= Duration::from_secs(2) && d <= Duration::from_secs(4), "{d:?}");
        }
    }

    #[test]
    fn retry_after_is_honoured_as_a_lower_bound() {
        assert_eq!(B.delay(1, Some(Duration::from_secs(30)), 0.3), Duration::from_secs(30));
        assert_eq!(B.delay(7, Some(Duration::from_secs(5)), 1.0), Duration::from_secs(60));
    }
}
