//! The reconnect schedule: 500 ms, 1 s, 2 s … capped at 30 s, with equal jitter.
//!
//! **Jitter kind: "equal jitter".** Attempt `n` waits a uniformly random time in
//! `[nominal/2, nominal]`, where `nominal = min(500 ms · 2ⁿ, 30 s)`. Half of the wait is
//! fixed, so a client never hammers a relay that has just failed (full jitter can pick
//! ~0 ms), and half is random, so the hundreds of sockets a relay restart drops spread their
//! reconnects over half of each window instead of arriving together.

use crate::ids::Entropy;

/// The first retry's nominal delay.
pub const BASE_DELAY_MS: u64 = 500;
/// No delay is ever longer than this.
pub const MAX_DELAY_MS: u64 = 30_000;

/// Exponential backoff with equal jitter. The attempt counter only goes back to zero
/// through [`Backoff::reset`], which the client calls once a connection has stayed healthy.
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    /// A schedule at attempt 0.
    #[must_use]
    pub const fn new() -> Self {
        Self { attempt: 0 }
    }

    /// How many delays have been drawn since the last reset.
    #[must_use]
    pub const fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The delay before jitter for attempt `attempt`: `min(500 · 2^attempt, 30 000)` ms.
    #[must_use]
    pub fn nominal_ms(attempt: u32) -> u64 {
        // 500 · 2^6 = 32 000 is already past the cap, so larger shifts are never needed.
        let shift = attempt.min(6);
        (BASE_DELAY_MS << shift).min(MAX_DELAY_MS)
    }

    /// Draws the next delay in `[nominal/2, nominal]` ms and moves to the next attempt.
    pub fn next_delay_ms(&mut self, entropy: &mut dyn Entropy) -> u64 {
        let nominal = Self::nominal_ms(self.attempt);
        let half = nominal / 2;
        let mut bytes = [0u8; 8];
        entropy.fill(&mut bytes);
        let random = u64::from_le_bytes(bytes);
        self.attempt = self.attempt.saturating_add(1);
        half + random % (nominal - half + 1)
    }

    /// Back to attempt 0 (after a connection stayed healthy).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic generator for tests: a counter hashed by splitmix64.
    struct Seeded(u64);
    impl Entropy for Seeded {
        fn fill(&mut self, dest: &mut [u8]) {
            for chunk in dest.chunks_mut(8) {
                self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = self.0;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^= z >> 31;
                chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
            }
        }
    }

    /// Always the extreme values, to pin both ends of the jitter range.
    struct Fixed(u8);
    impl Entropy for Fixed {
        fn fill(&mut self, dest: &mut [u8]) {
            dest.fill(self.0);
        }
    }

    #[test]
    fn nominal_schedule_doubles_from_500ms_and_caps_at_30s() {
        let schedule: alloc::vec::Vec<u64> = (0..10).map(Backoff::nominal_ms).collect();
        assert_eq!(
            schedule,
            [500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000, 30_000]
        );
        assert_eq!(Backoff::nominal_ms(u32::MAX), MAX_DELAY_MS);
    }

    #[test]
    fn every_delay_lies_within_half_to_full_nominal() {
        let mut entropy = Seeded(7);
        let mut backoff = Backoff::new();
        for attempt in 0..40 {
            let nominal = Backoff::nominal_ms(attempt);
            let delay = backoff.next_delay_ms(&mut entropy);
            assert!(
                delay >= nominal / 2 && delay <= nominal,
                "attempt {attempt}: {delay}"
            );
            assert!(delay <= MAX_DELAY_MS);
        }
    }

    #[test]
    fn jitter_actually_spreads_delays() {
        // 1,000 clients at the same attempt must not all pick the same delay.
        let mut entropy = Seeded(42);
        let mut delays: alloc::vec::Vec<u64> = (0..1_000)
            .map(|_| {
                let mut b = Backoff::new();
                b.next_delay_ms(&mut entropy);
                b.next_delay_ms(&mut entropy) // attempt 1: [500, 1000]
            })
            .collect();
        delays.sort_unstable();
        delays.dedup();
        assert!(delays.len() > 300, "only {} distinct delays", delays.len());
        assert!(delays[0] < 600 && delays[delays.len() - 1] > 900);
    }

    #[test]
    fn jitter_bounds_are_reachable() {
        // A random draw of 0 gives exactly half the nominal delay.
        assert_eq!(Backoff::new().next_delay_ms(&mut Fixed(0)), 250);
        // The largest draw stays within the nominal delay.
        let mut b = Backoff::new();
        for _ in 0..20 {
            assert!(b.next_delay_ms(&mut Fixed(0xff)) <= MAX_DELAY_MS);
        }
    }

    #[test]
    fn reset_returns_to_the_first_delay() {
        let mut entropy = Seeded(1);
        let mut backoff = Backoff::new();
        for _ in 0..8 {
            backoff.next_delay_ms(&mut entropy);
        }
        assert_eq!(backoff.attempt(), 8);
        backoff.reset();
        assert_eq!(backoff.attempt(), 0);
        assert!(backoff.next_delay_ms(&mut entropy) <= 500);
    }
}
