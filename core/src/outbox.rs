//! Sealed events that the relay has not acknowledged yet.
//!
//! An entry enters the outbox before it is first sent and leaves it only when the relay
//! acknowledges it (an `ACK`, or the event coming back during catch-up). The outbox holds
//! ciphertext only, so the shell can persist it (IndexedDB) without writing plaintext to
//! disk, and [`crate::client::Client::restore_outbox`] can bring it back after a reload.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::hlc::Hlc;
use crate::ids::SessionId;

/// The most entries an outbox holds; past it, local changes are refused
/// ([`crate::Error::OutboxFull`]) rather than silently dropped.
pub const MAX_OUTBOX_ENTRIES: usize = 50_000;

/// One sealed event awaiting its acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// The sending session (from the envelope header).
    pub session: SessionId,
    /// The per-session counter (from the envelope header).
    pub counter: u64,
    /// The clock stamp the event was sealed with.
    pub hlc: Hlc,
    /// The whole envelope, as published.
    pub envelope: Vec<u8>,
    /// Whether it has been sent on the current connection.
    pub sent: bool,
}

/// The ordered queue of unacknowledged events. Order is publication order.
#[derive(Debug, Clone, Default)]
pub struct Outbox {
    entries: VecDeque<OutboxEntry>,
}

impl Outbox {
    /// An empty outbox.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            entries: VecDeque::new(),
        }
    }

    /// Number of entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing awaits acknowledgement.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether another entry fits.
    #[must_use]
    pub fn has_room(&self) -> bool {
        self.entries.len() < MAX_OUTBOX_ENTRIES
    }

    /// Appends an unsent entry. The caller checks [`Outbox::has_room`] first.
    pub fn push(&mut self, session: SessionId, counter: u64, hlc: Hlc, envelope: Vec<u8>) {
        self.entries.push_back(OutboxEntry {
            session,
            counter,
            hlc,
            envelope,
            sent: false,
        });
    }

    /// Removes the entry `(session, counter)`; returns it if it was there.
    pub fn acknowledge(&mut self, session: SessionId, counter: u64) -> Option<OutboxEntry> {
        let index = self
            .entries
            .iter()
            .position(|e| e.session == session && e.counter == counter)?;
        self.entries.remove(index)
    }

    /// Whether `(session, counter)` awaits acknowledgement.
    #[must_use]
    pub fn contains(&self, session: SessionId, counter: u64) -> bool {
        self.entries
            .iter()
            .any(|e| e.session == session && e.counter == counter)
    }

    /// Marks every entry unsent (the connection dropped; they go out again after reconnect).
    pub fn mark_all_unsent(&mut self) {
        for entry in &mut self.entries {
            entry.sent = false;
        }
    }

    /// Number of entries sent on this connection and not yet acknowledged.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.entries.iter().filter(|e| e.sent).count()
    }

    /// Marks up to `max` unsent entries sent, in order, and returns their envelopes.
    pub fn take_unsent(&mut self, max: usize) -> Vec<Vec<u8>> {
        self.entries
            .iter_mut()
            .filter(|e| !e.sent)
            .take(max)
            .map(|e| {
                e.sent = true;
                e.envelope.clone()
            })
            .collect()
    }

    /// The entries, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &OutboxEntry> {
        self.entries.iter()
    }

    /// The envelopes, oldest first: what the shell persists.
    #[must_use]
    pub fn envelopes(&self) -> Vec<Vec<u8>> {
        self.entries.iter().map(|e| e.envelope.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn session(n: u8) -> SessionId {
        SessionId([n; 16])
    }

    #[test]
    fn acknowledge_removes_only_the_named_entry() {
        let mut outbox = Outbox::new();
        outbox.push(session(1), 1, Hlc::default(), vec![1]);
        outbox.push(session(1), 2, Hlc::default(), vec![2]);
        outbox.push(session(2), 1, Hlc::default(), vec![3]);
        assert_eq!(
            outbox.acknowledge(session(1), 2).map(|e| e.envelope),
            Some(vec![2])
        );
        assert_eq!(
            outbox.acknowledge(session(1), 2),
            None,
            "second ack is a no-op"
        );
        assert_eq!(outbox.envelopes(), vec![vec![1], vec![3]]);
        assert!(outbox.contains(session(2), 1));
        assert!(!outbox.contains(session(2), 2));
    }

    #[test]
    fn unsent_entries_go_out_in_order_within_the_window() {
        let mut outbox = Outbox::new();
        for i in 1..=5u8 {
            outbox.push(session(1), u64::from(i), Hlc::default(), vec![i]);
        }
        assert_eq!(outbox.take_unsent(2), vec![vec![1], vec![2]]);
        assert_eq!(outbox.in_flight(), 2);
        assert_eq!(outbox.take_unsent(10), vec![vec![3], vec![4], vec![5]]);
        assert!(outbox.take_unsent(10).is_empty());
        outbox.mark_all_unsent();
        assert_eq!(outbox.in_flight(), 0);
        assert_eq!(outbox.take_unsent(1), vec![vec![1]]);
    }
}
