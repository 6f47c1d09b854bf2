//! What a room keeps: the member key, the ciphertext log and one snapshot, behind the small
//! [`RoomStore`] trait, so the room's rules ([`crate::hub`]) run on the host against
//! [`MemoryStore`] and in the Durable Object against SQLite (`sql.rs`).
//!
//! Rows hold only what the relay may see: the room's member key (an Ed25519 public key: it
//! checks `HELLO` proofs and lets nobody join), envelope headers' session id, counter and
//! channel tag, the sealed envelope bytes and their SHA-256 ([`envelope_digest`]), which
//! outlives the bytes so that a republished envelope is told from another one under the
//! same `(session, counter)` after compaction too.

use std::collections::BTreeMap;

use sealsync_core::{ChannelTag, SessionId};
use sha2::Digest as _;

/// Length of an [`envelope_digest`].
pub const DIGEST_LEN: usize = 32;

/// The SHA-256 of an envelope's bytes: what deduplication compares.
#[must_use]
pub fn envelope_digest(envelope: &[u8]) -> [u8; DIGEST_LEN] {
    sha2::Sha256::digest(envelope).into()
}

/// A storage failure (SQLite refused a statement, a row had an unexpected shape).
/// At fault: the platform or a relay bug; the socket is closed with 1011 and the client
/// reconnects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl core::fmt::Display for StoreError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "room storage failed: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

/// A storage failure in a Durable Object's handler becomes the runtime's error (same
/// message), so the shells pass it on with `?`.
#[cfg(target_arch = "wasm32")]
impl From<StoreError> for worker::Error {
    fn from(e: StoreError) -> Self {
        Self::RustError(e.to_string())
    }
}

/// The last sequence of a page over `(seq, envelope length)` pairs in order (see
/// [`RoomStore::events_after`]); `None` when there are none.
pub fn page_end(
    sizes: impl IntoIterator<Item = (u64, u64)>,
    max_events: usize,
    max_bytes: u64,
) -> Option<u64> {
    let mut total = 0_u64;
    let mut last = None;
    for (seq, len) in sizes.into_iter().take(max_events.max(1)) {
        if last.is_some() && total >= max_bytes {
            break;
        }
        total = total.saturating_add(len);
        last = Some(seq);
    }
    last
}

/// One stored event as it is sent back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Its sequence number (1, 2, 3, … per room, never reused).
    pub seq: u64,
    /// The relay's wall clock when it was stored, ms since the Unix epoch.
    pub relay_time: u64,
    /// The sealed envelope.
    pub envelope: Vec<u8>,
}

/// The stored snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSnapshot {
    /// The last sequence it covers.
    pub seq: u64,
    /// The sealed envelope (kind snapshot).
    pub envelope: Vec<u8>,
}

/// A new event to append.
#[derive(Debug, Clone, Copy)]
pub struct NewEvent<'a> {
    /// The sequence it gets: always `head_seq() + 1`.
    pub seq: u64,
    /// The relay's wall clock, ms since the Unix epoch.
    pub relay_time: u64,
    /// The sender's session id (from the envelope header).
    pub session: SessionId,
    /// The sender's counter (from the envelope header).
    pub counter: u64,
    /// The channel tag (from the envelope header).
    pub channel: ChannelTag,
    /// The sealed envelope.
    pub envelope: &'a [u8],
    /// [`envelope_digest`] of `envelope`.
    pub digest: [u8; DIGEST_LEN],
}

/// Where an event with a given `(session, counter)` was stored, and what it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredSender {
    /// Its sequence number.
    pub seq: u64,
    /// The relay's wall clock when it was stored.
    pub relay_time: u64,
    /// [`envelope_digest`] of the stored envelope; `None` only for a row written before
    /// the relay kept digests whose envelope was compacted since (nothing left to compare).
    pub digest: Option<[u8; DIGEST_LEN]>,
}

/// How much of the history caps a room uses: events with their envelope still stored
/// (compacted ones do not count) and their envelope bytes plus the snapshot's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Stored events.
    pub events: u64,
    /// Stored envelope bytes.
    pub bytes: u64,
}

/// A room's persistent state. Every method is synchronous (SQLite in a Durable Object is).
///
/// Invariants an implementation keeps: sequences are unique and increasing;
/// `(session, counter)` is unique over every event ever appended, compacted or not, and
/// keeps its envelope's digest, so a republished envelope is recognised (and one with other
/// bytes refused) after a snapshot too.
pub trait RoomStore {
    /// The room's member key (an Ed25519 public key, `sealsync_core::member`), once a
    /// first `HELLO` with a valid proof set it.
    ///
    /// # Errors
    /// [`StoreError`] when storage fails.
    fn member_key(&self) -> Result<Option<[u8; 32]>, StoreError>;

    /// Sets the member key (first proven `HELLO` of an empty room).
    ///
    /// # Errors
    /// [`StoreError`] when storage fails.
    fn set_member_key(&mut self, key: &[u8; 32]) -> Result<(), StoreError>;

    /// The room's key epoch: 0 until a rotation ([`RoomStore::rotate`]).
    ///
    /// # Errors
    /// [`StoreError`] when storage fails.
    fn key_epoch(&self) -> Result<u32, StoreError>;

    /// Carries out a rotation: when `snapshot` is given (`seq` = the head, and the
    /// snapshot's envelope) it is stored as [`RoomStore::put_snapshot`] stores one, dropping
    /// every event envelope up to it; then the key epoch and the member key are replaced.
    ///
    /// The writes of one Durable Object event are committed together, but a statement that
    /// fails leaves the ones before it applied. Hence the order: should a later write fail,
    /// the room still has its old key, the rotating client finds the rotation not carried
    /// out (its `HELLO` under the new key is refused) and sends it again; the key never
    /// changes without the snapshot that makes the history readable under it.
    ///
    /// # Errors
    /// [`StoreError`] when storage fails.
    fn rotate(
        &mut self,
        member_key: &[u8; 32],
        key_epoch: u32,
        snapshot: Option<(u64, &[u8])>,
    ) -> Result<(), StoreError> {
        if let Some((seq, envelope)) = snapshot {
            self.put_snapshot(seq, envelope)?;
        }
        self.set_key_epoch(key_epoch)?;
        self.set_member_key(member_key)
    }

    /// Sets the key epoch (part of [`RoomStore::rotate`]).
    ///
    /// # Errors
    /// [`StoreError`] when storage fails.
    fn set_key_epoch(&mut self, key_epoch: u32) -> Result<(), StoreError>;

    /// The highest sequence ever assigned (0 for an empty room).
    ///
    /// # Errors
    /// [`StoreError`] when storage fails.
    fn head_seq(&self) -> Result<u64, StoreError>;

    /// The sequence the snapshot covers, 0 without one.
    ///
    /// # Errors
    /// [`StoreError`] when storage fails.
    fn snapshot_seq(&self) -> Result<u64, StoreError>;

    /// The stored snapshot.
    ///
    /// # Errors
    /// [`StoreError`] when storage fails.
    fn snapshot(&self) -> Result<Option<StoredSnapshot>, StoreError>;

    /// Where an envelope with this `(session, counter)` was stored, and its digest, if it
    /// was.
    ///
    /// # Errors
    /// [`StoreError`] when storage fails.
    fn find(&self, session: &SessionId, counter: u64) -> Result<Option<StoredSender>, StoreError>;

    /// Appends an event unless its `(session, counter)` is already stored: `true` when it
    /// was appended, `false` when that pair is taken, whatever the bytes (nothing is
    /// written; [`RoomStore::find`] says where and what the stored one is).
    ///
    /// # Errors
    /// [`StoreError`] when storage fails or `seq` is already taken.
    fn append(&mut self, event: NewEvent<'_>) -> Result<bool, StoreError>;

    /// Events with `seq > after` whose envelope is still stored, in sequence order,
    /// whatever their channel: at most `max_events`, and no event that starts at or past
    /// `max_bytes` of envelopes (so the first is always there, and a page ends within one
    /// envelope of the budget). Only the returned envelopes are read into memory.
    ///
    /// # Errors
    /// [`StoreError`] when storage fails.
    fn events_after(
        &self,
        after: u64,
        max_events: usize,
        max_bytes: u64,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// Replaces the snapshot and drops the envelopes of events up to `seq` (their
    /// `(session, counter)` stays for deduplication).
    ///
    /// # Errors
    /// [`StoreError`] when storage fails.
    fn put_snapshot(&mut self, seq: u64, envelope: &[u8]) -> Result<(), StoreError>;

    /// Current use of the history caps.
    ///
    /// # Errors
    /// [`StoreError`] when storage fails.
    fn usage(&self) -> Result<Usage, StoreError>;

    /// Remembers that the backend banned `user` from this room.
    ///
    /// # Errors
    /// [`StoreError`] when storage fails.
    fn ban(&mut self, user: &str) -> Result<(), StoreError>;

    /// Whether `user` was banned from this room.
    ///
    /// # Errors
    /// [`StoreError`] when storage fails.
    fn is_banned(&self, user: &str) -> Result<bool, StoreError>;

    /// Whether anyone was banned from this room.
    ///
    /// # Errors
    /// [`StoreError`] when storage fails.
    fn any_banned(&self) -> Result<bool, StoreError>;

    /// Forgets `user`'s ban, if any.
    ///
    /// # Errors
    /// [`StoreError`] when storage fails.
    fn unban(&mut self, user: &str) -> Result<(), StoreError>;

    /// What the room stores, for operators (`GET /internal/rooms/<room>/stats`).
    ///
    /// # Errors
    /// [`StoreError`] when storage fails.
    fn stats(&self) -> Result<StoreStats, StoreError>;
}

/// What a room stores, in numbers: each one SQL aggregate in the Durable Object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct StoreStats {
    /// The highest sequence ever assigned.
    pub head_seq: u64,
    /// Events whose envelope is stored (not compacted into the snapshot).
    pub stored_events: u64,
    /// Their envelope bytes.
    pub event_bytes: u64,
    /// The sequence the snapshot covers, 0 without one.
    pub snapshot_seq: u64,
    /// The snapshot's envelope bytes, 0 without one.
    pub snapshot_bytes: u64,
    /// Envelope bytes stored in all: events and snapshot (what `MAX_HISTORY_BYTES` caps).
    pub stored_bytes: u64,
    /// Users banned from the room.
    pub banned: u64,
}

#[derive(Debug, Clone)]
struct MemRow {
    relay_time: u64,
    envelope: Option<Vec<u8>>,
    digest: [u8; DIGEST_LEN],
}

/// A [`RoomStore`] in memory, for host tests of the room's rules.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    member_key: Option<[u8; 32]>,
    key_epoch: u32,
    events: BTreeMap<u64, MemRow>,
    senders: BTreeMap<(SessionId, u64), u64>,
    snapshot: Option<StoredSnapshot>,
    banned: std::collections::BTreeSet<String>,
}

impl RoomStore for MemoryStore {
    fn member_key(&self) -> Result<Option<[u8; 32]>, StoreError> {
        Ok(self.member_key)
    }

    fn set_member_key(&mut self, key: &[u8; 32]) -> Result<(), StoreError> {
        self.member_key = Some(*key);
        Ok(())
    }

    fn key_epoch(&self) -> Result<u32, StoreError> {
        Ok(self.key_epoch)
    }

    fn set_key_epoch(&mut self, key_epoch: u32) -> Result<(), StoreError> {
        self.key_epoch = key_epoch;
        Ok(())
    }

    fn head_seq(&self) -> Result<u64, StoreError> {
        Ok(self.events.keys().next_back().copied().unwrap_or(0))
    }

    fn snapshot_seq(&self) -> Result<u64, StoreError> {
        Ok(self.snapshot.as_ref().map_or(0, |s| s.seq))
    }

    fn snapshot(&self) -> Result<Option<StoredSnapshot>, StoreError> {
        Ok(self.snapshot.clone())
    }

    fn find(&self, session: &SessionId, counter: u64) -> Result<Option<StoredSender>, StoreError> {
        Ok(self.senders.get(&(*session, counter)).and_then(|seq| {
            self.events.get(seq).map(|row| StoredSender {
                seq: *seq,
                relay_time: row.relay_time,
                digest: Some(row.digest),
            })
        }))
    }

    fn append(&mut self, e: NewEvent<'_>) -> Result<bool, StoreError> {
        if self.senders.contains_key(&(e.session, e.counter)) {
            return Ok(false);
        }
        if self.events.contains_key(&e.seq) {
            return Err(StoreError("UNIQUE constraint failed: events.seq".into()));
        }
        self.senders.insert((e.session, e.counter), e.seq);
        self.events.insert(
            e.seq,
            MemRow {
                relay_time: e.relay_time,
                envelope: Some(e.envelope.to_vec()),
                digest: e.digest,
            },
        );
        Ok(true)
    }

    fn events_after(
        &self,
        after: u64,
        max_events: usize,
        max_bytes: u64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let sizes = self
            .events
            .range(after.saturating_add(1)..)
            .filter_map(|(seq, row)| Some((*seq, row.envelope.as_ref()?.len() as u64)));
        let Some(last) = page_end(sizes, max_events, max_bytes) else {
            return Ok(Vec::new());
        };
        Ok(self
            .events
            .range(after.saturating_add(1)..=last)
            .filter_map(|(seq, row)| {
                row.envelope.as_ref().map(|envelope| StoredEvent {
                    seq: *seq,
                    relay_time: row.relay_time,
                    envelope: envelope.clone(),
                })
            })
            .collect())
    }

    fn put_snapshot(&mut self, seq: u64, envelope: &[u8]) -> Result<(), StoreError> {
        // `senders` keeps every (session, counter) for deduplication.
        for (_, row) in self.events.range_mut(..=seq) {
            row.envelope = None;
        }
        self.snapshot = Some(StoredSnapshot {
            seq,
            envelope: envelope.to_vec(),
        });
        Ok(())
    }

    fn usage(&self) -> Result<Usage, StoreError> {
        let mut usage = Usage::default();
        for env in self.events.values().filter_map(|r| r.envelope.as_ref()) {
            usage.events += 1;
            usage.bytes += env.len() as u64;
        }
        if let Some(s) = &self.snapshot {
            usage.bytes += s.envelope.len() as u64;
        }
        Ok(usage)
    }

    fn ban(&mut self, user: &str) -> Result<(), StoreError> {
        self.banned.insert(user.to_owned());
        Ok(())
    }

    fn is_banned(&self, user: &str) -> Result<bool, StoreError> {
        Ok(self.banned.contains(user))
    }

    fn any_banned(&self) -> Result<bool, StoreError> {
        Ok(!self.banned.is_empty())
    }

    fn unban(&mut self, user: &str) -> Result<(), StoreError> {
        self.banned.remove(user);
        Ok(())
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        let usage = self.usage()?;
        let snapshot_bytes = self
            .snapshot
            .as_ref()
            .map_or(0, |s| s.envelope.len() as u64);
        Ok(StoreStats {
            head_seq: self.head_seq()?,
            stored_events: usage.events,
            event_bytes: usage.bytes - snapshot_bytes,
            snapshot_seq: self.snapshot_seq()?,
            snapshot_bytes,
            stored_bytes: usage.bytes,
            banned: self.banned.len() as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_count_stored_envelopes_the_snapshot_and_bans() {
        let mut store = MemoryStore::default();
        assert_eq!(store.stats().unwrap(), StoreStats::default());
        for seq in 1..=3u64 {
            let envelope = vec![0u8; 100 * usize::try_from(seq).unwrap()];
            store
                .append(NewEvent {
                    seq,
                    relay_time: seq,
                    session: SessionId([1; 16]),
                    counter: seq,
                    channel: ChannelTag([2; 16]),
                    envelope: &envelope,
                    digest: envelope_digest(&envelope),
                })
                .unwrap();
        }
        store.put_snapshot(2, &[0u8; 50]).unwrap();
        store.ban("mallory").unwrap();
        assert_eq!(
            store.stats().unwrap(),
            StoreStats {
                head_seq: 3,
                stored_events: 1,
                event_bytes: 300,
                snapshot_seq: 2,
                snapshot_bytes: 50,
                stored_bytes: 350,
                banned: 1,
            }
        );
    }
}
