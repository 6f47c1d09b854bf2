//! Sealed events that the relay has not acknowledged yet.
//!
//! An entry enters the outbox when it is sealed, before it is first sent, and leaves it
//! when the relay acknowledges it (an `ACK`, or the event coming back during catch-up) or
//! refuses it for good (`REFUSED` with a [`crate::wire::Refusal::Reject`] code). What the
//! shell persists is ciphertext only ([`Outbox::envelopes`]), so IndexedDB never holds
//! plaintext, and [`crate::client::Client::restore_outbox`] brings it back after a reload;
//! the decrypted operations stay in memory, for merging entries and for rolling back.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::hlc::Hlc;
use crate::ids::SessionId;
use crate::merge::BatchItem;

/// The most entries an outbox holds; past it, local changes are refused
/// ([`crate::Error::OutboxFull`]) rather than silently dropped.
pub const MAX_OUTBOX_ENTRIES: usize = 50_000;

/// Whether a new session adopts the persisted outbox of `session` (applies its envelopes,
/// sends them again, and deletes its record once the relay has accepted the room key, i.e.
/// once live: a wrong password never destroys someone's unsent changes). It adopts every
/// record but its own (`own`) and those whose owner still runs (`live`, e.g. the holders of
/// the sessions' Web Locks). When the platform cannot tell (`live` is `None`), every other
/// record is adopted: still safe, since the relay drops an event it already has (same
/// session and counter), but a running session's changes may be sent twice.
#[must_use]
pub fn adopts(session: &str, own: &str, live: Option<&[alloc::string::String]>) -> bool {
    session != own && live.is_none_or(|live| !live.iter().any(|l| l == session))
}

/// One sealed event awaiting its acknowledgement.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    /// The sending session (from the envelope header).
    pub session: SessionId,
    /// The per-session counter (from the envelope header).
    pub counter: u64,
    /// The clock stamp the envelope was sealed with (the highest of its operations).
    pub hlc: Hlc,
    /// The operations inside, with their raw stamps (plaintext, in memory only).
    pub items: Vec<BatchItem>,
    /// The whole envelope, as published.
    pub envelope: Vec<u8>,
    /// Whether it has been sent on the current connection.
    pub sent: bool,
    /// Whether it may ever have reached the relay (sent on any connection, or restored
    /// from an earlier session). Only entries that never left may be merged into one.
    pub ever_sent: bool,
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

    /// Number of operations in all entries.
    #[must_use]
    pub fn changes(&self) -> usize {
        self.entries.iter().map(|e| e.items.len()).sum()
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

    /// Appends an entry. The caller checks [`Outbox::has_room`] first.
    pub fn push(&mut self, entry: OutboxEntry) {
        self.entries.push_back(entry);
    }

    /// Removes the entry `(session, counter)`; returns it if it was there.
    pub fn acknowledge(&mut self, session: SessionId, counter: u64) -> Option<OutboxEntry> {
        let index = self
            .entries
            .iter()
            .position(|e| e.session == session && e.counter == counter)?;
        self.entries.remove(index)
    }

    /// The entry `(session, counter)`, if it awaits acknowledgement.
    pub fn get_mut(&mut self, session: SessionId, counter: u64) -> Option<&mut OutboxEntry> {
        self.entries
            .iter_mut()
            .find(|e| e.session == session && e.counter == counter)
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

    /// The run of entries that could be merged before sending: from the first unsent
    /// entry, the consecutive entries that never left this client. Returns its start and
    /// length (a length under 2 means nothing to merge).
    #[must_use]
    pub fn mergeable_run(&self) -> (usize, usize) {
        let Some(start) = self.entries.iter().position(|e| !e.sent) else {
            return (self.entries.len(), 0);
        };
        let len = self
            .entries
            .iter()
            .skip(start)
            .take_while(|e| !e.sent && !e.ever_sent)
            .count();
        (start, len)
    }

    /// The entries `start .. start + len`, in order.
    pub fn range(&self, start: usize, len: usize) -> impl Iterator<Item = &OutboxEntry> {
        self.entries.iter().skip(start).take(len)
    }

    /// Replaces the entries `start .. start + len` with `with`, in order.
    pub fn replace(&mut self, start: usize, len: usize, with: Vec<OutboxEntry>) {
        let tail: Vec<OutboxEntry> = self.entries.drain(start..).skip(len).collect();
        self.entries.extend(with);
        self.entries.extend(tail);
    }

    /// Marks the first unsent entry sent (and `ever_sent`) and returns its envelope.
    pub fn take_next_unsent(&mut self) -> Option<Vec<u8>> {
        let entry = self.entries.iter_mut().find(|e| !e.sent)?;
        entry.sent = true;
        entry.ever_sent = true;
        Some(entry.envelope.clone())
    }

    /// Whether some entry waits to be sent on this connection.
    #[must_use]
    pub fn has_unsent(&self) -> bool {
        self.entries.iter().any(|e| !e.sent)
    }

    /// Takes every entry out (refused all at once).
    pub fn drain(&mut self) -> Vec<OutboxEntry> {
        self.entries.drain(..).collect()
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
    #[test]
    fn a_session_adopts_records_of_sessions_that_no_longer_run() {
        use alloc::string::ToString;
        let live = ["b".to_string()];
        assert!(!adopts("a", "a", None), "never its own");
        assert!(!adopts("a", "a", Some(&live)));
        assert!(!adopts("b", "a", Some(&live)), "not a running session's");
        assert!(adopts("c", "a", Some(&live)));
        assert!(adopts("b", "a", None), "unknown: every other record");
        assert!(adopts("b", "a", Some(&[])));
    }

    use super::*;
    use alloc::vec;

    fn session(n: u8) -> SessionId {
        SessionId([n; 16])
    }

    fn entry(s: u8, counter: u64, envelope: u8) -> OutboxEntry {
        OutboxEntry {
            session: session(s),
            counter,
            hlc: Hlc::default(),
            items: Vec::new(),
            envelope: vec![envelope],
            sent: false,
            ever_sent: false,
        }
    }

    #[test]
    fn acknowledge_removes_only_the_named_entry() {
        let mut outbox = Outbox::new();
        outbox.push(entry(1, 1, 1));
        outbox.push(entry(1, 2, 2));
        outbox.push(entry(2, 1, 3));
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
    fn unsent_entries_go_out_in_order_and_again_after_a_reconnect() {
        let mut outbox = Outbox::new();
        for i in 1..=3u8 {
            outbox.push(entry(1, u64::from(i), i));
        }
        assert_eq!(outbox.take_next_unsent(), Some(vec![1]));
        assert_eq!(outbox.take_next_unsent(), Some(vec![2]));
        assert_eq!(outbox.in_flight(), 2);
        assert_eq!(outbox.take_next_unsent(), Some(vec![3]));
        assert_eq!(outbox.take_next_unsent(), None);
        outbox.mark_all_unsent();
        assert_eq!(outbox.in_flight(), 0);
        assert_eq!(outbox.take_next_unsent(), Some(vec![1]));
    }

    #[test]
    fn only_entries_that_never_left_are_mergeable() {
        let mut outbox = Outbox::new();
        for i in 1..=5u8 {
            outbox.push(entry(1, u64::from(i), i));
        }
        assert_eq!(outbox.mergeable_run(), (0, 5));
        let _ = outbox.take_next_unsent();
        outbox.mark_all_unsent();
        // Entry 1 may have reached the relay: it is sent as it is, the rest may merge.
        assert_eq!(outbox.mergeable_run(), (0, 0));
        let _ = outbox.take_next_unsent();
        assert_eq!(outbox.mergeable_run(), (1, 4));
        outbox.replace(1, 4, vec![entry(1, 9, 9)]);
        assert_eq!(outbox.envelopes(), vec![vec![1], vec![9]]);
        assert_eq!(outbox.mergeable_run(), (1, 1));
    }
}
