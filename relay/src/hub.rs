//! The room's rules, sans-IO: one input (a frame from a socket, a socket leaving, a push
//! from the backend) in, a list of [`Out`]s (frames to send, sockets to close, attachments
//! to save) out. The Durable Object glue (`room.rs`) owns the sockets and the clock and
//! performs the outputs in order; host tests drive the same code with a [`MemoryStore`].
//!
//! [`MemoryStore`]: crate::store::MemoryStore

use std::collections::BTreeMap;

use sealsync_core::envelope::{EnvelopeHeader, EnvelopeKind};
use sealsync_core::wire::{encode_event, ClientFrame, RelayErrorCode, RelayFrame, VerifierState};
use sealsync_core::{ChannelTag, Error, SessionId};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::limits::{Limits, TokenBucket};
use crate::store::{NewEvent, RoomStore, StoreError};

/// A socket's id within its room (unique while the room's object lives).
pub type PeerId = u64;

/// Events read from storage per page during catch-up.
const CATCH_UP_PAGE: usize = 256;

/// The longest `ERROR` message the protocol allows, in bytes.
const MAX_ERROR_MESSAGE: usize = 1024;

/// Above this many joined sockets, presence changes are coalesced ([`Out::PresenceChanged`]).
pub const PRESENCE_COALESCE_ABOVE: u32 = 64;

/// Close code for a storage failure: the client reconnects with backoff.
pub const CLOSE_INTERNAL_ERROR: u16 = 1011;

/// What the room knows about one socket. It is the socket's hibernation attachment, so it
/// survives the object being evicted from memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// The socket's id.
    pub id: PeerId,
    /// Whether `HELLO` was accepted.
    pub joined: bool,
    /// The channels it receives (from `HELLO`).
    pub channels: Vec<ChannelTag>,
    /// Its rate limit.
    pub bucket: TokenBucket,
    /// The authenticated user (JWT `sub`), when auth is on.
    pub user: Option<String>,
    /// The user's role (JWT claim or backend push), when auth is on.
    pub role: Option<String>,
    /// A guest waiting to be admitted: it may read but not publish.
    pub pending: bool,
    /// The id the socket was opened with (`?client=`), if any.
    #[serde(default)]
    pub client: Option<String>,
}

impl Peer {
    /// A new, not yet joined socket with a full token bucket.
    #[must_use]
    pub fn new(id: PeerId, limits: &Limits, now_ms: u64) -> Self {
        Self {
            id,
            joined: false,
            channels: Vec::new(),
            bucket: TokenBucket::full(limits, now_ms),
            user: None,
            role: None,
            pending: false,
            client: None,
        }
    }
}

/// One thing the glue must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// Send one binary frame to one socket.
    Send {
        /// The socket.
        to: PeerId,
        /// The encoded frame.
        frame: Vec<u8>,
    },
    /// Send the same binary frame to several sockets.
    Broadcast {
        /// The sockets.
        to: Vec<PeerId>,
        /// The encoded frame.
        frame: Vec<u8>,
    },
    /// Close a socket. The peer is already gone from the room's peers.
    Close {
        /// The socket.
        to: PeerId,
        /// The WebSocket close code.
        code: u16,
        /// The close reason (short, ASCII).
        reason: &'static str,
    },
    /// The peer's state changed: serialize it into the socket's attachment.
    Save(PeerId),
    /// Presence changed in a room above [`PRESENCE_COALESCE_ABOVE`] joined sockets: the
    /// glue sends [`presence_now`] within about a second instead of one `PRESENCE` per
    /// join or leave (which would be O(n²) frames while a big room fills up).
    PresenceChanged,
}

/// Truncates `message` to the protocol's limit on a character boundary.
fn bounded(mut message: String) -> String {
    if message.len() > MAX_ERROR_MESSAGE {
        let mut end = MAX_ERROR_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
    }
    message
}

/// Encodes a relay frame. Encoding only fails for inputs the relay never builds (an error
/// message over the limit, which [`bounded`] prevents); such a frame is dropped.
fn encode(frame: &RelayFrame) -> Option<Vec<u8>> {
    frame.encode().ok()
}

/// The error code a frame that failed to decode gets.
fn decode_error_code(err: &Error) -> RelayErrorCode {
    match err {
        Error::WireVersion { .. } => RelayErrorCode::UnsupportedVersion,
        Error::FrameTooLarge { .. } => RelayErrorCode::TooLarge,
        Error::WrongKind { .. } => RelayErrorCode::WrongKind,
        _ => RelayErrorCode::BadFrame,
    }
}

/// The close reason sent with a fatal error's close code.
const fn close_reason(code: RelayErrorCode) -> &'static str {
    match code {
        RelayErrorCode::WrongVerifier => "wrong verifier",
        RelayErrorCode::Forbidden => "forbidden",
        RelayErrorCode::UnsupportedVersion => "unsupported version",
        RelayErrorCode::TooLarge => "frame too large",
        RelayErrorCode::RateLimited => "rate limited",
        RelayErrorCode::RoomFull => "room full",
        RelayErrorCode::Banned => "banned",
        _ => "error",
    }
}

/// Whether a room with `sockets` open sockets must refuse one more.
#[must_use]
pub fn room_full(sockets: usize, limits: &Limits) -> bool {
    sockets >= limits.max_sockets_per_room
}

/// The frames a refused socket gets before it is closed with `code.close_code()`.
#[must_use]
pub fn refusal(code: RelayErrorCode, message: &str) -> Vec<u8> {
    encode(&RelayFrame::Error {
        code,
        fatal: true,
        message: bounded(message.to_owned()),
    })
    .unwrap_or_default()
}

/// Sockets that have joined.
#[must_use]
pub fn presence(peers: &BTreeMap<PeerId, Peer>) -> u32 {
    presence_for(peers, None)
}

/// The joined peers that were not opened with `client`: what `GET …/presence?client=ID`
/// answers (every joined peer without a `client`).
#[must_use]
pub fn presence_for(peers: &BTreeMap<PeerId, Peer>, client: Option<&str>) -> u32 {
    let others = peers
        .values()
        .filter(|p| p.joined && (client.is_none() || p.client.as_deref() != client))
        .count();
    u32::try_from(others).unwrap_or(u32::MAX)
}

/// `PRESENCE` to every joined peer but `except`, if there is one; in a big room, the
/// [`Out::PresenceChanged`] marker instead.
fn presence_out(peers: &BTreeMap<PeerId, Peer>, except: Option<PeerId>) -> Option<Out> {
    if presence(peers) > PRESENCE_COALESCE_ABOVE {
        return Some(Out::PresenceChanged);
    }
    presence_to(peers, except)
}

/// `PRESENCE` with the current count to every joined peer (the coalesced update).
#[must_use]
pub fn presence_now(peers: &BTreeMap<PeerId, Peer>) -> Option<Out> {
    presence_to(peers, None)
}

/// The joined peers but `except`, if there is one.
fn joined_except(peers: &BTreeMap<PeerId, Peer>, except: Option<PeerId>) -> Vec<PeerId> {
    peers
        .values()
        .filter(|p| p.joined && Some(p.id) != except)
        .map(|p| p.id)
        .collect()
}

/// `PRESENCE` with the current count to every joined peer but `except`; `None` when
/// nobody would receive it.
fn presence_to(peers: &BTreeMap<PeerId, Peer>, except: Option<PeerId>) -> Option<Out> {
    let to = joined_except(peers, except);
    if to.is_empty() {
        return None;
    }
    let frame = encode(&RelayFrame::Presence {
        count: presence(peers),
    })?;
    Some(Out::Broadcast { to, frame })
}

/// A socket left (closed, errored, or closed by the relay): forget it and, when it had
/// joined, tell everyone left the new presence. Idempotent; needs no storage.
#[must_use]
pub fn leave(peers: &mut BTreeMap<PeerId, Peer>, id: PeerId) -> Vec<Out> {
    match peers.remove(&id) {
        Some(peer) if peer.joined => presence_out(peers, None).into_iter().collect(),
        _ => Vec::new(),
    }
}

/// One room's rules over its store and its peers, for the duration of one input.
#[derive(Debug)]
pub struct Hub<'a, S> {
    store: &'a mut S,
    limits: &'a Limits,
    peers: &'a mut BTreeMap<PeerId, Peer>,
    out: Vec<Out>,
}

impl<'a, S: RoomStore> Hub<'a, S> {
    /// Borrows the room's parts for one input.
    pub fn new(
        store: &'a mut S,
        limits: &'a Limits,
        peers: &'a mut BTreeMap<PeerId, Peer>,
    ) -> Self {
        Self {
            store,
            limits,
            peers,
            out: Vec::new(),
        }
    }

    /// Sockets that have joined.
    #[must_use]
    pub fn presence(&self) -> u32 {
        presence(self.peers)
    }

    fn send(&mut self, to: PeerId, frame: &RelayFrame) {
        if let Some(frame) = encode(frame) {
            self.out.push(Out::Send { to, frame });
        }
    }

    fn error(&mut self, to: PeerId, code: RelayErrorCode, message: String) {
        if let Some(close) = code.close_code() {
            if let Some(frame) = encode(&RelayFrame::Error {
                code,
                fatal: true,
                message: bounded(message),
            }) {
                self.out.push(Out::Send { to, frame });
            }
            self.out.push(Out::Close {
                to,
                code: close,
                reason: close_reason(code),
            });
            self.remove(to);
        } else {
            self.send(
                to,
                &RelayFrame::Error {
                    code,
                    fatal: false,
                    message: bounded(message),
                },
            );
        }
    }

    /// Removes a peer; when it had joined, everyone left hears the new presence.
    fn remove(&mut self, id: PeerId) {
        self.out.extend(leave(self.peers, id));
    }

    fn broadcast_presence(&mut self, except: Option<PeerId>) {
        self.out.extend(presence_out(self.peers, except));
    }

    /// Joined peers other than `from`: every stored event goes to all of them.
    fn everyone_else(&self, from: PeerId) -> Vec<PeerId> {
        joined_except(self.peers, Some(from))
    }

    /// Joined peers other than `from` that follow `channel` (ephemeral frames only).
    fn audience(&self, from: PeerId, channel: &ChannelTag) -> Vec<PeerId> {
        self.peers
            .values()
            .filter(|p| p.joined && p.id != from && p.channels.contains(channel))
            .map(|p| p.id)
            .collect()
    }

    /// A text message other than the heartbeat (which the runtime answers by itself).
    #[must_use]
    pub fn handle_text(mut self, from: PeerId) -> Vec<Out> {
        if self.peers.contains_key(&from) {
            self.error(
                from,
                RelayErrorCode::BadFrame,
                "text messages other than \"ping\" are not part of the protocol; frames are binary"
                    .into(),
            );
        }
        self.out
    }

    /// One binary frame from `from` at `now_ms` (ms since the Unix epoch).
    ///
    /// # Errors
    /// [`StoreError`] when storage fails; the glue closes the socket with
    /// [`CLOSE_INTERNAL_ERROR`]. Outputs produced before the failure are lost with it.
    pub fn handle_frame(
        mut self,
        from: PeerId,
        bytes: &[u8],
        now_ms: u64,
    ) -> Result<Vec<Out>, StoreError> {
        let limits = self.limits;
        let Some(peer) = self.peers.get_mut(&from) else {
            return Ok(self.out);
        };
        if bytes.len() > limits.max_frame_bytes {
            let message = format!(
                "frame of {} bytes is over this relay's limit of {} bytes",
                bytes.len(),
                limits.max_frame_bytes
            );
            self.error(from, RelayErrorCode::TooLarge, message);
            return Ok(self.out);
        }
        let allowed = peer.bucket.take(limits, now_ms);
        let joined = peer.joined;
        if !allowed {
            self.error(
                from,
                RelayErrorCode::RateLimited,
                format!(
                    "more than {} frames in a burst or {} per second; reconnect with backoff",
                    limits.rate_burst, limits.rate_per_second
                ),
            );
            return Ok(self.out);
        }
        let frame = match ClientFrame::decode(bytes) {
            Ok(frame) => frame,
            Err(err) => {
                self.error(from, decode_error_code(&err), err.to_string());
                return Ok(self.out);
            }
        };
        match frame {
            ClientFrame::Hello {
                after_seq,
                verifier,
                channels,
            } => self.hello(from, after_seq, &verifier, channels, now_ms)?,
            _ if !joined => self.error(
                from,
                RelayErrorCode::NotJoined,
                "send HELLO first: it must be the first frame on a socket".into(),
            ),
            ClientFrame::Publish { envelope } => self.publish(from, &envelope, now_ms)?,
            ClientFrame::Sync { after_seq } => self.catch_up(from, after_seq)?,
            ClientFrame::SnapshotPut { upto_seq, envelope } => {
                self.snapshot_put(from, upto_seq, &envelope)?;
            }
            ClientFrame::Ephemeral { envelope } => self.ephemeral(from, envelope),
        }
        Ok(self.out)
    }

    fn hello(
        &mut self,
        from: PeerId,
        after_seq: u64,
        verifier: &[u8; 32],
        channels: Vec<ChannelTag>,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        if self.peers.get(&from).is_some_and(|p| p.joined) {
            self.error(
                from,
                RelayErrorCode::BadFrame,
                "HELLO was already accepted on this socket".into(),
            );
            return Ok(());
        }
        let verifier_state = match self.store.verifier()? {
            None => {
                self.store.set_verifier(verifier)?;
                VerifierState::Created
            }
            Some(stored) if bool::from(stored.ct_eq(verifier)) => VerifierState::Matched,
            Some(_) => {
                self.error(
                    from,
                    RelayErrorCode::WrongVerifier,
                    "this room exists with another password or secret".into(),
                );
                return Ok(());
            }
        };
        let Some(peer) = self.peers.get_mut(&from) else {
            return Ok(());
        };
        peer.joined = true;
        peer.channels = channels;
        self.out.push(Out::Save(from));
        let presence = self.presence();
        let welcome = RelayFrame::Welcome {
            relay_time: now_ms,
            head_seq: self.store.head_seq()?,
            snapshot_seq: self.store.snapshot_seq()?,
            presence,
            verifier_state,
        };
        self.send(from, &welcome);
        self.catch_up(from, after_seq)?;
        self.broadcast_presence(Some(from));
        Ok(())
    }

    /// Snapshot when `after_seq` is behind it, then the stored events in order, then
    /// `CAUGHT_UP` (PROTOCOL.md, "Ordering").
    ///
    /// Every stored event goes to every joined socket, whatever its channel: sequence numbers
    /// stay contiguous for each client, so a hole always means a loss. Clients skip events of
    /// channels they do not follow after opening the header.
    fn catch_up(&mut self, from: PeerId, after_seq: u64) -> Result<(), StoreError> {
        if !self.peers.contains_key(&from) {
            return Ok(());
        }
        let mut cursor = after_seq;
        if after_seq < self.store.snapshot_seq()? {
            if let Some(snapshot) = self.store.snapshot()? {
                cursor = snapshot.seq;
                self.send(
                    from,
                    &RelayFrame::Snapshot {
                        seq: snapshot.seq,
                        envelope: snapshot.envelope,
                    },
                );
            }
        }
        loop {
            let page = self.store.events_after(cursor, CATCH_UP_PAGE)?;
            let full = page.len() == CATCH_UP_PAGE;
            for event in page {
                cursor = event.seq;
                self.out.push(Out::Send {
                    to: from,
                    frame: encode_event(event.seq, event.relay_time, &event.envelope),
                });
            }
            if !full {
                break;
            }
        }
        let head_seq = self.store.head_seq()?;
        self.send(from, &RelayFrame::CaughtUp { head_seq });
        Ok(())
    }

    /// The envelope's header, checked against the kind the frame takes; `None` after an
    /// error was queued.
    fn header(
        &mut self,
        from: PeerId,
        envelope: &[u8],
        kind: EnvelopeKind,
    ) -> Option<EnvelopeHeader> {
        match EnvelopeHeader::parse(envelope) {
            Ok((header, _)) if header.kind == kind => Some(header),
            Ok((header, _)) => {
                self.error(
                    from,
                    RelayErrorCode::WrongKind,
                    format!(
                        "envelope kind {} does not fit this frame (it takes kind {})",
                        header.kind.as_u8(),
                        kind.as_u8()
                    ),
                );
                None
            }
            Err(err) => {
                self.error(from, decode_error_code(&err), err.to_string());
                None
            }
        }
    }

    /// Refuses a write (publish, snapshot) from a pending guest or a read-only role with a
    /// non-fatal error; `true` when refused.
    fn refuse_write(&mut self, from: PeerId) -> bool {
        if self.refuse_pending(from) {
            return true;
        }
        let read_only = self
            .peers
            .get(&from)
            .and_then(|p| p.role.as_deref())
            .is_some_and(crate::auth::is_read_only_role);
        if read_only {
            self.error(
                from,
                RelayErrorCode::ReadOnly,
                "your role may read this room but not change it; the change was not stored".into(),
            );
        }
        read_only
    }

    /// Refuses an ephemeral frame from a pending guest (a read-only role may send them:
    /// cursors and typing are not changes); `true` when refused.
    fn refuse_pending(&mut self, from: PeerId) -> bool {
        if self.peers.get(&from).is_some_and(|p| p.pending) {
            self.error(
                from,
                RelayErrorCode::GuestPending,
                "you are a guest waiting to be admitted; publishing is refused until then".into(),
            );
            return true;
        }
        false
    }

    /// Acknowledges a republished envelope with the sequence of its stored copy; `false`
    /// when none is stored.
    fn ack_duplicate(
        &mut self,
        from: PeerId,
        session: &SessionId,
        counter: u64,
    ) -> Result<bool, StoreError> {
        let Some((seq, relay_time)) = self.store.find(session, counter)? else {
            return Ok(false);
        };
        self.send(
            from,
            &RelayFrame::Ack {
                session: *session,
                counter,
                seq,
                relay_time,
                duplicate: true,
            },
        );
        Ok(true)
    }

    fn publish(&mut self, from: PeerId, envelope: &[u8], now_ms: u64) -> Result<(), StoreError> {
        if self.refuse_write(from) {
            return Ok(());
        }
        let Some(header) = self.header(from, envelope, EnvelopeKind::Event) else {
            return Ok(());
        };
        let usage = self.store.usage()?;
        let len = envelope.len() as u64;
        if usage.events >= self.limits.max_history_events
            || usage.bytes.saturating_add(len) > self.limits.max_history_bytes
        {
            if !self.ack_duplicate(from, &header.session, header.counter)? {
                let message = format!(
                    "the room stores {} events ({} bytes), its cap is {} events ({} bytes); \
                     a snapshot lets it compact",
                    usage.events,
                    usage.bytes,
                    self.limits.max_history_events,
                    self.limits.max_history_bytes
                );
                self.error(from, RelayErrorCode::HistoryFull, message);
            }
            return Ok(());
        }
        let seq = self.store.head_seq()?.saturating_add(1);
        let appended = self.store.append(NewEvent {
            seq,
            relay_time: now_ms,
            session: header.session,
            counter: header.counter,
            channel: header.channel,
            envelope,
        })?;
        if !appended {
            if !self.ack_duplicate(from, &header.session, header.counter)? {
                return Err(StoreError(
                    "the store refused an event as a duplicate it cannot find".into(),
                ));
            }
            return Ok(());
        }
        self.send(
            from,
            &RelayFrame::Ack {
                session: header.session,
                counter: header.counter,
                seq,
                relay_time: now_ms,
                duplicate: false,
            },
        );
        let to = self.everyone_else(from);
        if !to.is_empty() {
            self.out.push(Out::Broadcast {
                to,
                frame: encode_event(seq, now_ms, envelope),
            });
        }
        Ok(())
    }

    fn snapshot_put(
        &mut self,
        from: PeerId,
        upto_seq: u64,
        envelope: &[u8],
    ) -> Result<(), StoreError> {
        if self.refuse_write(from) {
            return Ok(());
        }
        if self
            .header(from, envelope, EnvelopeKind::Snapshot)
            .is_none()
        {
            return Ok(());
        }
        let head = self.store.head_seq()?;
        if upto_seq == 0 || upto_seq > head {
            self.error(
                from,
                RelayErrorCode::BadFrame,
                format!("snapshot upto_seq {upto_seq} is not in 1..={head} (the room's head)"),
            );
            return Ok(());
        }
        let current = self.store.snapshot_seq()?;
        if upto_seq <= current {
            // An older or equal snapshot: keep the stored one and say which it is.
            self.send(from, &RelayFrame::SnapshotStored { seq: current });
            return Ok(());
        }
        if envelope.len() as u64 > self.limits.max_history_bytes {
            self.error(
                from,
                RelayErrorCode::HistoryFull,
                format!(
                    "the snapshot is {} bytes, over the room's cap of {} bytes",
                    envelope.len(),
                    self.limits.max_history_bytes
                ),
            );
            return Ok(());
        }
        self.store.put_snapshot(upto_seq, envelope)?;
        self.send(from, &RelayFrame::SnapshotStored { seq: upto_seq });
        Ok(())
    }

    fn ephemeral(&mut self, from: PeerId, envelope: Vec<u8>) {
        if self.refuse_pending(from) {
            return;
        }
        let Some(header) = self.header(from, &envelope, EnvelopeKind::Ephemeral) else {
            return;
        };
        let to = self.audience(from, &header.channel);
        if to.is_empty() {
            return;
        }
        if let Some(frame) = encode(&RelayFrame::Ephemeral { envelope }) {
            self.out.push(Out::Broadcast { to, frame });
        }
    }
}

#[cfg(test)]
mod tests;
