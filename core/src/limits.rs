//! The limits a relay announces in `WELCOME`, and the token bucket both ends run.
//!
//! The relay enforces its limits; it also tells every client what they are
//! ([`RelayLimits`], in `WELCOME`), so the client paces itself below them instead of
//! learning them by being refused. Both ends use the same [`TokenBucket`]: the relay to
//! refuse, the client (with [`RelayLimits::client_pace`]'s margin) to wait.

use serde::{Deserialize, Serialize};

use crate::envelope::ENVELOPE_HEADER_LEN;
use crate::seal::{padded_len, INNER_HEADER_LEN, MAX_BODY_LEN, MAX_ENVELOPE_LEN, TAG_LEN};

/// The bytes a `SNAPSHOT_PUT` adds around its envelope (version, type, `upto_seq`): the
/// largest frame a client builds is [`MAX_ENVELOPE_LEN`] plus this.
pub const SNAPSHOT_PUT_OVERHEAD: usize = 2 + 8;

/// The bytes a `PUBLISH` adds around its envelope (version, type).
pub const PUBLISH_OVERHEAD: usize = 2;

/// The bytes a `ROTATE` adds around its snapshot envelope (version, type, epoch, member
/// key, proof, `upto_seq`): the most any client frame adds.
pub const ROTATE_OVERHEAD: usize = 2 + crate::wire::ROTATE_PREFIX_LEN;

/// The smallest frame limit a relay may run with: the longest frame a client builds (a
/// `ROTATE` carrying a [`MAX_ENVELOPE_LEN`] snapshot). A relay configured below it
/// refuses to start, since it would refuse changes the SDK accepts.
pub const MIN_RELAY_FRAME_LIMIT: usize = MAX_ENVELOPE_LEN + ROTATE_OVERHEAD;

/// How long a client waits before re-sending a change refused with `HISTORY_FULL`,
/// when the relay gives no hint.
pub const HISTORY_FULL_RETRY_MS: u32 = 5_000;

/// What a relay enforces, as announced in `WELCOME` (PROTOCOL.md, "Limits").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayLimits {
    /// The largest binary frame the relay accepts, in bytes.
    pub max_frame_bytes: u32,
    /// Frames a socket may send back to back.
    pub rate_burst: u32,
    /// Frames per second a socket may sustain.
    pub rate_per_second: u32,
    /// Stored (not yet compacted) events the room holds at most.
    pub max_history_events: u64,
    /// Stored envelope bytes (events and snapshot) the room holds at most.
    pub max_history_bytes: u64,
}

impl RelayLimits {
    /// The longest body a client may seal into one `PUBLISH` under this frame limit:
    /// [`MAX_BODY_LEN`] unless the relay announced less room than the longest envelope
    /// (which a relay of this version refuses to start with; a client still obeys it).
    #[must_use]
    pub fn max_body_len(&self) -> usize {
        let frame = usize::try_from(self.max_frame_bytes).unwrap_or(usize::MAX);
        let fits = |body: usize| {
            ENVELOPE_HEADER_LEN + padded_len(INNER_HEADER_LEN + body) + TAG_LEN + PUBLISH_OVERHEAD
                <= frame
        };
        if fits(MAX_BODY_LEN) {
            return MAX_BODY_LEN;
        }
        if !fits(0) {
            return 0;
        }
        // The padded length grows with the body: find the largest body that fits.
        let (mut lo, mut hi) = (0, MAX_BODY_LEN);
        while lo + 1 < hi {
            let mid = lo + (hi - lo) / 2;
            if fits(mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The pace a client keeps: three quarters of the burst and nine tenths of the rate
    /// (at least one of each), so that frames bunched up by the network still arrive
    /// within the relay's bucket.
    #[must_use]
    pub fn client_pace(&self) -> Pace {
        Pace {
            burst: (self.rate_burst / 4 * 3).max(1),
            per_second: (self.rate_per_second / 10 * 9).max(1),
        }
    }
}

/// A token bucket's size and refill rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// Tokens the bucket holds when full (frames back to back).
    pub burst: u32,
    /// Tokens added per second.
    pub per_second: u32,
}

/// The answer of [`TokenBucket::take`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// A token was taken: the frame may go.
    Ok,
    /// The bucket is empty: the frame is refused; the sender should wait this many
    /// milliseconds (a token is then available again). The refusal itself went into debt.
    Wait {
        /// Milliseconds until the next token.
        retry_after_ms: u32,
    },
    /// The sender kept sending through a whole burst of refusals: the relay closes it.
    Exceeded,
}

/// A token bucket in thousandths of a token, so it refills smoothly with integer
/// arithmetic. An empty bucket goes into debt (down to minus one burst) for frames it
/// refuses, so a sender that ignores [`Take::Wait`] ends at [`Take::Exceeded`]; one that
/// waits as told never does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenBucket {
    /// Tokens left, in thousandths (negative: debt).
    milli: i64,
    /// When `milli` was last brought up to date (ms; any monotonic origin).
    at: u64,
}

impl TokenBucket {
    /// A full bucket at `now_ms`.
    #[must_use]
    pub fn full(pace: Pace, now_ms: u64) -> Self {
        Self {
            milli: i64::from(pace.burst) * 1000,
            at: now_ms,
        }
    }

    fn refill(&mut self, pace: Pace, now_ms: u64) {
        let cap = i64::from(pace.burst) * 1000;
        let elapsed = i64::try_from(now_ms.saturating_sub(self.at)).unwrap_or(i64::MAX);
        // per_second tokens per 1000 ms = per_second thousandths per ms.
        let refill = elapsed.saturating_mul(i64::from(pace.per_second));
        self.milli = self.milli.saturating_add(refill).min(cap);
        self.at = self.at.max(now_ms);
    }

    /// Milliseconds until a token is available at this pace (0 when one is now).
    #[must_use]
    pub fn wait_ms(&self, pace: Pace, now_ms: u64) -> u64 {
        let mut probe = *self;
        probe.refill(pace, now_ms);
        if probe.milli >= 1000 {
            return 0;
        }
        let missing = u64::try_from(1000 - probe.milli).unwrap_or(u64::MAX);
        missing.div_ceil(u64::from(pace.per_second.max(1)))
    }

    /// Whether the bucket is full again at `now_ms` (as good as a new one).
    #[must_use]
    pub fn is_full(&self, pace: Pace, now_ms: u64) -> bool {
        let mut probe = *self;
        probe.refill(pace, now_ms);
        probe.milli >= i64::from(pace.burst) * 1000
    }

    /// Whether a token is available at `now_ms` (takes nothing).
    #[must_use]
    pub fn ready(&self, pace: Pace, now_ms: u64) -> bool {
        self.wait_ms(pace, now_ms) == 0
    }

    /// Takes one token at `now_ms` when one is available; otherwise takes nothing (no debt)
    /// and answers the milliseconds until one is. For a budget several senders share,
    /// where a refusal must not cost the next sender anything.
    ///
    /// # Errors
    /// The wait in milliseconds when the bucket is empty.
    pub fn try_take(&mut self, pace: Pace, now_ms: u64) -> Result<(), u64> {
        self.refill(pace, now_ms);
        if self.milli >= 1000 {
            self.milli -= 1000;
            return Ok(());
        }
        Err(self.wait_ms(pace, now_ms))
    }

    /// Takes one token at `now_ms`, refilling first. A clock that goes backwards refills
    /// nothing.
    pub fn take(&mut self, pace: Pace, now_ms: u64) -> Take {
        self.refill(pace, now_ms);
        if self.milli >= 1000 {
            self.milli -= 1000;
            return Take::Ok;
        }
        let floor = -i64::from(pace.burst) * 1000;
        if self.milli - 1000 < floor {
            return Take::Exceeded;
        }
        self.milli -= 1000;
        let missing = u64::try_from(1000 - self.milli).unwrap_or(u64::MAX);
        let wait = missing.div_ceil(u64::from(pace.per_second.max(1)));
        Take::Wait {
            retry_after_ms: u32::try_from(wait).unwrap_or(u32::MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACE: Pace = Pace {
        burst: 3,
        per_second: 2,
    };

    #[test]
    fn bucket_allows_burst_then_refills_at_rate() {
        let mut b = TokenBucket::full(PACE, 1000);
        for _ in 0..3 {
            assert_eq!(b.take(PACE, 1000), Take::Ok);
        }
        assert!(!b.ready(PACE, 1499));
        assert_eq!(b.wait_ms(PACE, 1000), 500);
        assert!(b.ready(PACE, 1500));
        assert_eq!(b.take(PACE, 1500), Take::Ok);
        // A long pause refills only up to the burst.
        for _ in 0..3 {
            assert_eq!(b.take(PACE, 100_000), Take::Ok);
        }
        assert!(!b.ready(PACE, 100_000));
    }

    #[test]
    fn try_take_refuses_without_debt() {
        let mut b = TokenBucket::full(PACE, 0);
        for _ in 0..3 {
            assert_eq!(b.try_take(PACE, 0), Ok(()));
        }
        // Refusals cost nothing: the wait stays the same however often it is asked.
        for _ in 0..10 {
            assert_eq!(b.try_take(PACE, 0), Err(500));
        }
        assert_eq!(b.try_take(PACE, 499), Err(1));
        assert_eq!(b.try_take(PACE, 500), Ok(()));
        assert!(!b.is_full(PACE, 1999));
        assert!(b.is_full(PACE, 2000));
    }

    #[test]
    fn refusals_go_into_debt_and_a_whole_burst_of_them_is_exceeded() {
        let mut b = TokenBucket::full(PACE, 0);
        for _ in 0..3 {
            assert_eq!(b.take(PACE, 0), Take::Ok);
        }
        // Each refusal says how long until a token, and the wait grows with the debt.
        assert_eq!(
            b.take(PACE, 0),
            Take::Wait {
                retry_after_ms: 1000
            }
        );
        assert_eq!(
            b.take(PACE, 0),
            Take::Wait {
                retry_after_ms: 1500
            }
        );
        assert_eq!(
            b.take(PACE, 0),
            Take::Wait {
                retry_after_ms: 2000
            }
        );
        assert_eq!(b.take(PACE, 0), Take::Exceeded);
        // Waiting as told works again.
        assert_eq!(b.take(PACE, 2000), Take::Ok);
    }

    #[test]
    fn a_sender_that_waits_as_told_is_never_exceeded() {
        let mut b = TokenBucket::full(PACE, 0);
        let mut now = 0;
        for _ in 0..1000 {
            match b.take(PACE, now) {
                Take::Ok => {}
                Take::Wait { retry_after_ms } => now += u64::from(retry_after_ms),
                Take::Exceeded => panic!("exceeded at {now}"),
            }
        }
    }

    #[test]
    fn a_clock_going_backwards_neither_refills_nor_panics() {
        let mut b = TokenBucket::full(PACE, 10_000);
        for _ in 0..3 {
            assert_eq!(b.take(PACE, 10_000), Take::Ok);
        }
        assert!(matches!(b.take(PACE, 5), Take::Wait { .. }));
        assert!(!b.ready(PACE, 0));
    }

    #[test]
    fn the_longest_body_fits_the_announced_frame() {
        let mut l = RelayLimits {
            max_frame_bytes: 1 << 20,
            rate_burst: 1,
            rate_per_second: 1,
            max_history_events: 1,
            max_history_bytes: 1,
        };
        assert_eq!(l.max_body_len(), MAX_BODY_LEN);
        l.max_frame_bytes = 4096;
        let body = l.max_body_len();
        let frame = |b: usize| ENVELOPE_HEADER_LEN + padded_len(INNER_HEADER_LEN + b) + TAG_LEN + 2;
        assert!(frame(body) <= 4096 && frame(body + 1) > 4096, "{body}");
        l.max_frame_bytes = 100;
        assert_eq!(l.max_body_len(), 0);
    }

    #[test]
    fn the_client_pace_stays_under_the_relay() {
        let l = RelayLimits {
            max_frame_bytes: 1 << 20,
            rate_burst: 120,
            rate_per_second: 60,
            max_history_events: 1,
            max_history_bytes: 1,
        };
        assert_eq!(
            l.client_pace(),
            Pace {
                burst: 90,
                per_second: 54
            }
        );
        let tiny = RelayLimits {
            rate_burst: 1,
            rate_per_second: 1,
            ..l
        };
        assert_eq!(
            tiny.client_pace(),
            Pace {
                burst: 1,
                per_second: 1
            }
        );
    }
}
