//! Replay rejection: each `(session id, counter)` is accepted at most once.
//!
//! Per sending session the window keeps the highest counter seen and a bitmap of the
//! [`WINDOW`] counters below it (the anti-replay window of IPsec, RFC 4303 §3.4.3). A counter
//! above the highest is new; one inside the window is new unless its bit is set; one older
//! than the window is refused. Senders publish in counter order and the relay stores in
//! arrival order, so a legitimate event is never more than a few counters late.

use alloc::collections::BTreeMap;

use crate::ids::SessionId;

/// How many counters below the highest one are still accepted when not yet seen.
pub const WINDOW: u64 = 128;

#[derive(Debug, Clone, Copy, Default)]
struct SessionWindow {
    highest: u64,
    /// Bit `i` set = counter `highest - i` was seen.
    seen: u128,
}

/// Remembers which counters each session has used.
#[derive(Debug, Clone, Default)]
pub struct ReplayGuard {
    sessions: BTreeMap<SessionId, SessionWindow>,
}

impl ReplayGuard {
    /// An empty guard.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            sessions: BTreeMap::new(),
        }
    }

    /// Records `(session, counter)`; returns `false` when it was seen before (a replay) or is
    /// older than the window.
    pub fn accept(&mut self, session: SessionId, counter: u64) -> bool {
        let window = self.sessions.entry(session).or_default();
        if counter > window.highest {
            let shift = counter - window.highest;
            window.seen = if shift >= WINDOW {
                0
            } else {
                window.seen << shift
            };
            window.seen |= 1;
            window.highest = counter;
            return true;
        }
        let age = window.highest - counter;
        if age >= WINDOW {
            return false;
        }
        let bit = 1u128 << age;
        if window.seen & bit != 0 {
            return false;
        }
        window.seen |= bit;
        true
    }

    /// Forgets every session (the state is being rebuilt from the relay).
    pub fn clear(&mut self) {
        self.sessions.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: SessionId = SessionId([1; 16]);
    const B: SessionId = SessionId([2; 16]);

    #[test]
    fn each_counter_is_accepted_once_per_session() {
        let mut guard = ReplayGuard::new();
        assert!(guard.accept(A, 1));
        assert!(!guard.accept(A, 1));
        assert!(guard.accept(B, 1), "sessions are independent");
        assert!(guard.accept(A, 2));
        assert!(!guard.accept(A, 2));
    }

    #[test]
    fn late_counters_inside_the_window_are_accepted_once() {
        let mut guard = ReplayGuard::new();
        assert!(guard.accept(A, 10));
        assert!(guard.accept(A, 7));
        assert!(!guard.accept(A, 7));
        assert!(guard.accept(A, 9));
        assert!(guard.accept(A, 10 + WINDOW), "jump ahead to 138");
        assert!(!guard.accept(A, 10), "now older than the window");
        assert!(guard.accept(A, 11), "still inside the window and unseen");
    }

    #[test]
    fn a_big_jump_clears_the_bitmap() {
        let mut guard = ReplayGuard::new();
        for c in 1..=5 {
            assert!(guard.accept(A, c));
        }
        assert!(guard.accept(A, 1_000));
        assert!(!guard.accept(A, 5));
        assert!(guard.accept(A, 999));
        assert!(!guard.accept(A, 999));
    }
}
