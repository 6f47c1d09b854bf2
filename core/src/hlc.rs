//! Hybrid logical clock: wall time plus a counter, ties broken by the replica id.

use serde::{Deserialize, Serialize};

use crate::ids::{DeviceId, WallMillis};

/// A hybrid-logical-clock timestamp. Ordered by `wall`, then `counter`, then `device`,
/// so two distinct replicas never produce equal timestamps.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Hlc {
    /// Wall-clock milliseconds since the Unix epoch (as corrected by the clock).
    pub wall: u64,
    /// Logical counter for events within the same millisecond.
    pub counter: u32,
    /// The replica that made the timestamp.
    pub device: DeviceId,
}

impl Hlc {
    /// The same wall time and counter, stamped by `device`.
    #[must_use]
    pub const fn with_device(self, device: DeviceId) -> Self {
        Self {
            wall: self.wall,
            counter: self.counter,
            device,
        }
    }
}

/// How far (ms) an event's wall time may run ahead of the relay time it was stored at and
/// still count at face value. See [`effective`] and the "Clock skew" section of
/// ARCHITECTURE.md.
pub const MAX_FORWARD_SKEW_MS: u64 = 60_000;

/// How far (ms) ahead of this replica's corrected wall time a remote stamp may be for
/// [`Clock::observe`] to ratchet to it. Smaller than [`MAX_FORWARD_SKEW_MS`] by a margin
/// that covers an uncorrected offset (under [`CLOCK_CORRECTION_THRESHOLD_MS`]) plus
/// transit, so this replica's own stamps stay under the relay's clamp.
pub const MAX_OBSERVE_SKEW_MS: u64 = MAX_FORWARD_SKEW_MS - 10_000;

/// A local clock off the relay's by more than this (ms) is corrected by
/// [`Clock::set_offset`]; smaller differences are left alone (they are within the jitter
/// of one round trip).
pub const CLOCK_CORRECTION_THRESHOLD_MS: i64 = 2_000;

/// The stamp merging orders writes by: the effective wall time (the sender's wall time,
/// clamped to `relay_time + MAX_FORWARD_SKEW_MS` by [`effective`]), then the sender's own
/// stamp. Unclamped, it orders exactly as the sender's stamp; clamped, two different
/// writes never tie and one sender's writes keep their order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Stamp {
    /// The effective wall time, ms since the Unix epoch.
    pub wall: u64,
    /// The stamp the sender sealed.
    pub raw: Hlc,
}

impl From<Hlc> for Stamp {
    /// The stamp of a write whose relay time is not known (a local change): unclamped.
    fn from(raw: Hlc) -> Self {
        Self {
            wall: raw.wall,
            raw,
        }
    }
}

/// The stamp merging uses for a stored event: `hlc` with its wall time clamped to
/// `relay_time + MAX_FORWARD_SKEW_MS` when the relay time the event was stored at is known.
///
/// Every replica computes the same effective stamp from the same stored event, so
/// convergence holds; a replica whose clock runs hours ahead wins conflicts only within
/// the bound, not for hours. The sender's stamp breaks ties ([`Stamp`]'s order).
#[must_use]
pub const fn effective(hlc: Hlc, relay_time: Option<u64>) -> Stamp {
    if let Some(relay) = relay_time {
        let limit = relay.saturating_add(MAX_FORWARD_SKEW_MS);
        if hlc.wall > limit {
            return Stamp {
                wall: limit,
                raw: hlc,
            };
        }
    }
    Stamp {
        wall: hlc.wall,
        raw: hlc,
    }
}

/// A replica's hybrid logical clock: stamps local events with strictly increasing
/// [`Hlc`]s and ratchets past the stamps it observes from others, within a bound.
///
/// The clock reads no time itself: each call takes the shell's wall time. `offset_ms` is
/// the correction learnt from the relay ([`Clock::set_offset`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clock {
    device: DeviceId,
    last: Hlc,
    offset_ms: i64,
}

impl Clock {
    /// A fresh clock for `device`, with no history and no offset.
    #[must_use]
    pub fn new(device: DeviceId) -> Self {
        Self::resume(device, Hlc::default())
    }

    /// A clock for `device` that continues after `last` (the highest stamp it made or
    /// observed, as persisted by the shell), so it never reissues a stamp after a reload.
    #[must_use]
    pub const fn resume(device: DeviceId, last: Hlc) -> Self {
        Self {
            device,
            last: Hlc {
                wall: last.wall,
                counter: last.counter,
                device,
            },
            offset_ms: 0,
        }
    }

    /// The device this clock stamps for.
    #[must_use]
    pub const fn device(&self) -> DeviceId {
        self.device
    }

    /// The highest stamp made or observed so far (persist it to [`Clock::resume`]).
    #[must_use]
    pub const fn last(&self) -> Hlc {
        self.last
    }

    /// The current correction, in ms, added to the shell's wall time.
    #[must_use]
    pub const fn offset_ms(&self) -> i64 {
        self.offset_ms
    }

    /// `wall + offset`, saturating at 0 and `u64::MAX`.
    fn corrected(&self, wall: WallMillis) -> u64 {
        if self.offset_ms >= 0 {
            wall.0.saturating_add(self.offset_ms.unsigned_abs())
        } else {
            wall.0.saturating_sub(self.offset_ms.unsigned_abs())
        }
    }

    /// Stamps a local event. The wall part is `max(wall + offset, last.wall)`; the counter
    /// goes up by one when the wall part did not advance. Strictly greater than every stamp
    /// this clock made or observed, whatever `wall` does (it may go backwards).
    pub fn tick(&mut self, wall: WallMillis) -> Hlc {
        let now = self.corrected(wall);
        let next = if now > self.last.wall {
            Hlc {
                wall: now,
                counter: 0,
                device: self.device,
            }
        } else if let Some(counter) = self.last.counter.checked_add(1) {
            Hlc {
                wall: self.last.wall,
                counter,
                device: self.device,
            }
        } else {
            // 2^32 events in one millisecond: borrow the next millisecond.
            Hlc {
                wall: self.last.wall.saturating_add(1),
                counter: 0,
                device: self.device,
            }
        };
        self.last = next;
        next
    }

    /// Takes note of a stamp from another replica so that later [`Clock::tick`]s exceed it.
    ///
    /// Returns `false`, and leaves the clock alone, when `remote` is more than
    /// [`MAX_OBSERVE_SKEW_MS`] ahead of `wall + offset`: following it would make this
    /// replica's clock wrong for everyone. Such an event still merges, at its
    /// [`effective`] stamp.
    pub fn observe(&mut self, remote: Hlc, wall: WallMillis) -> bool {
        let now = self.corrected(wall);
        if remote.wall > now.saturating_add(MAX_OBSERVE_SKEW_MS) {
            return false;
        }
        if (remote.wall, remote.counter) > (self.last.wall, self.last.counter) {
            self.last.wall = remote.wall;
            self.last.counter = remote.counter;
        }
        true
    }

    /// Corrects the clock from the relay's time (`WELCOME.relay_time`) read at local
    /// `wall`: when they differ by more than [`CLOCK_CORRECTION_THRESHOLD_MS`] the offset
    /// becomes `relay_time - wall`, otherwise it becomes 0. Returns the offset in force.
    ///
    /// Stamps stay strictly increasing: a correction backwards only stops the wall part
    /// from advancing until real time catches up.
    pub fn set_offset(&mut self, relay_time: u64, wall: WallMillis) -> i64 {
        let diff = i128::from(relay_time) - i128::from(wall.0);
        let clamped = diff.clamp(i128::from(i64::MIN), i128::from(i64::MAX));
        let diff = i64::try_from(clamped).unwrap_or(0);
        self.offset_ms = if diff.unsigned_abs() > CLOCK_CORRECTION_THRESHOLD_MS.unsigned_abs() {
            diff
        } else {
            0
        };
        self.offset_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dev(b: u8) -> DeviceId {
        DeviceId([b; 16])
    }

    #[test]
    fn tick_uses_wall_then_counter() {
        let mut c = Clock::new(dev(1));
        let a = c.tick(WallMillis(1000));
        assert_eq!((a.wall, a.counter, a.device), (1000, 0, dev(1)));
        let b = c.tick(WallMillis(1000));
        assert_eq!((b.wall, b.counter), (1000, 1));
        let d = c.tick(WallMillis(900));
        assert_eq!((d.wall, d.counter), (1000, 2));
        let e = c.tick(WallMillis(1001));
        assert_eq!((e.wall, e.counter), (1001, 0));
    }

    #[test]
    fn observe_ratchets_within_bound() {
        let mut c = Clock::new(dev(1));
        let remote = Hlc {
            wall: 5_000,
            counter: 7,
            device: dev(9),
        };
        assert!(c.observe(remote, WallMillis(1_000)));
        let next = c.tick(WallMillis(1_000));
        assert!(next > remote);
        assert_eq!((next.wall, next.counter), (5_000, 8));
    }

    #[test]
    fn observe_refuses_a_clock_far_ahead() {
        let mut c = Clock::new(dev(1));
        let remote = Hlc {
            wall: 1_000 + MAX_OBSERVE_SKEW_MS + 1,
            counter: 0,
            device: dev(9),
        };
        assert!(!c.observe(remote, WallMillis(1_000)));
        assert_eq!(c.last(), Hlc::default().with_device(dev(1)));
        assert_eq!(c.tick(WallMillis(1_000)).wall, 1_000);
    }

    #[test]
    fn effective_clamps_only_past_the_bound() {
        let h = Hlc {
            wall: 10_000 + MAX_FORWARD_SKEW_MS + 5,
            counter: 3,
            device: dev(2),
        };
        assert_eq!(effective(h, None), Stamp::from(h));
        let e = effective(h, Some(10_000));
        assert_eq!((e.wall, e.raw), (10_000 + MAX_FORWARD_SKEW_MS, h));
        assert_eq!(effective(h, Some(10_005)), Stamp::from(h));
    }

    #[test]
    fn clamped_writes_of_one_sender_never_tie_and_keep_their_order() {
        // Two edits 700 ms apart by a clock minutes ahead, both clamped to the same wall:
        // the sender's own stamps still order them, on every replica.
        let first = Hlc {
            wall: 10_000 + 600_000,
            counter: 0,
            device: dev(2),
        };
        let second = Hlc {
            wall: first.wall + 700,
            ..first
        };
        let (a, b) = (
            effective(first, Some(10_000)),
            effective(second, Some(10_000)),
        );
        assert_eq!(a.wall, b.wall);
        assert!(a < b);
        // An honest write stored later than the bound beats both.
        let honest = Hlc {
            wall: 10_000 + MAX_FORWARD_SKEW_MS + 1,
            counter: 0,
            device: dev(1),
        };
        assert!(effective(honest, Some(10_001)) > b);
    }

    #[test]
    fn set_offset_corrects_only_large_errors() {
        let mut c = Clock::new(dev(1));
        assert_eq!(c.set_offset(10_000, WallMillis(9_000)), 0);
        assert_eq!(c.set_offset(10_000, WallMillis(5_000)), 5_000);
        assert_eq!(c.tick(WallMillis(5_000)).wall, 10_000);
        assert_eq!(c.set_offset(1_000, WallMillis(5_000)), -4_000);
        // Correcting backwards never makes the clock go back.
        let t = c.tick(WallMillis(5_000));
        assert_eq!((t.wall, t.counter), (10_000, 1));
        assert_eq!(c.set_offset(0, WallMillis(u64::MAX)), i64::MIN);
    }

    #[derive(Debug, Clone)]
    enum Step {
        Tick(u64),
        Observe(u64, u32, u64),
        Offset(u64, u64),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0u64..200_000).prop_map(Step::Tick),
            (0u64..300_000, any::<u32>(), 0u64..200_000)
                .prop_map(|(w, c, now)| Step::Observe(w, c, now)),
            (0u64..200_000, 0u64..200_000).prop_map(|(r, w)| Step::Offset(r, w)),
        ]
    }

    proptest! {
        #[test]
        fn clock_never_goes_backwards(steps in proptest::collection::vec(step(), 1..200)) {
            let mut c = Clock::new(dev(1));
            let mut prev_tick: Option<Hlc> = None;
            let mut max_seen = (0u64, 0u32);
            for s in steps {
                match s {
                    Step::Tick(w) => {
                        let before = c.last();
                        let t = c.tick(WallMillis(w));
                        prop_assert!((t.wall, t.counter) > (before.wall, before.counter));
                        prop_assert!((t.wall, t.counter) > max_seen);
                        if let Some(p) = prev_tick { prop_assert!(t > p); }
                        prev_tick = Some(t);
                        max_seen = (t.wall, t.counter);
                    }
                    Step::Observe(w, cnt, now) => {
                        let before = c.last();
                        let remote = Hlc { wall: w, counter: cnt, device: dev(2) };
                        if c.observe(remote, WallMillis(now)) {
                            max_seen = max_seen.max((w, cnt));
                        }
                        prop_assert!(c.last() >= before);
                    }
                    Step::Offset(r, w) => {
                        let before = c.last();
                        c.set_offset(r, WallMillis(w));
                        prop_assert_eq!(c.last(), before);
                    }
                }
            }
        }
    }
}
