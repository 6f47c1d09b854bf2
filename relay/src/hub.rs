//! The room's rules, sans-IO: one input (a socket accepted, a frame from a socket, a socket
//! leaving, the alarm, a push from the backend) in, a list of [`Out`]s (frames to send,
//! sockets to close, attachments to save) out. The Durable Object glue (`room.rs`) owns the
//! sockets, the clock and the randomness and performs the outputs in order; host tests
//! drive the same code with a [`MemoryStore`].
//!
//! A socket's life: the glue draws 32 random bytes, makes its [`Peer`] with
//! [`Peer::new`] and hands it to [`accept`], whose first output is the socket's `CHALLENGE`.
//! The socket joins with a `HELLO` whose proof signs that challenge
//! ([`sealsync_core::member`]); [`Hub::handle_frame`] checks it against the room's member
//! key. Until then the socket does not count toward [`Limits::max_sockets_per_room`], at
//! most [`Limits::max_unjoined_sockets`] such sockets stay open, and the room's alarm
//! closes one [`Limits::unjoined_timeout_ms`] after it opened ([`expire_unjoined`],
//! [`next_alarm`]).
//!
//! A pending guest ([`Peer::pending`], from its token) joins like anyone but is told nothing
//! of the room's content until the backend admits it: its `WELCOME` says head 0, no
//! catch-up follows, it hears no event and no ephemeral frame, its `SYNC` is refused
//! `GUEST_PENDING`; the members hear its knock ([`crate::notify::knock_frame`]). Admitted
//! ([`admitted`], from `notify::apply`), it gets the catch-up from its `HELLO`'s `after_seq`.
//!
//! What the object decides besides the protocol (the coalesced presence update, the
//! alarm's plan, reports to the organisation's directory, close reasons) is here too, in
//! `hub/object.rs`: the glue only performs it.
//!
//! [`MemoryStore`]: crate::store::MemoryStore

use std::collections::BTreeMap;

use sealsync_core::envelope::EnvelopeHeader;
use sealsync_core::limits::{Take, TokenBucket, HISTORY_FULL_RETRY_MS};
use sealsync_core::member::{self, CHALLENGE_LEN, MEMBER_KEY_LEN, PROOF_LEN};
use sealsync_core::wire::{
    encode_event, publish_header, Access, ClientFrame, RelayErrorCode, RelayFrame, VerifierState,
    CLOSE_POLICY, MAX_ERROR_MESSAGE, MAX_FRAME_LEN, MAX_SEQ,
};
use sealsync_core::{ChannelTag, Error, RoomId};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::limits::Limits;
use crate::store::{envelope_digest, NewEvent, RoomStore, StoreError, DIGEST_LEN};

mod object;

pub use object::{
    alarm, close_text, next_peer_id, sets_alarm, AlarmPlan, Listing, Presence, MAX_CLOSE_REASON,
    PRESENCE_FLUSH_MS,
};

/// A socket's id within its room (unique while the room's object lives).
pub type PeerId = u64;

/// Most events in one catch-up page (besides [`Limits::catch_up_page_bytes`]).
pub const CATCH_UP_PAGE_EVENTS: usize = 1024;

/// Most client addresses whose wrong-key `HELLO`s a room remembers ([`Budget`]).
pub const MAX_TRACKED_ADDRESSES: usize = 4096;

/// Above this many joined sockets, presence changes are coalesced ([`Out::PresenceChanged`]).
pub const PRESENCE_COALESCE_ABOVE: u32 = 64;

/// Close code for a storage failure or a misconfigured relay: the client reconnects with
/// backoff (core's, re-exported for the glue).
pub use sealsync_core::wire::CLOSE_INTERNAL_ERROR;

/// Close code for a socket that sent no accepted `HELLO` in time (policy violation: the
/// client reconnects with backoff).
pub const CLOSE_NO_HELLO: u16 = CLOSE_POLICY;

/// Close reason for [`CLOSE_NO_HELLO`].
pub const NO_HELLO_REASON: &str = "no HELLO";

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
    /// Its rate limit (at [`Limits::pace`]).
    pub bucket: TokenBucket,
    /// The authenticated user (JWT `sub`), when auth is on.
    pub user: Option<String>,
    /// The user's role (JWT claim or backend push), when auth is on.
    pub role: Option<String>,
    /// A guest waiting to be admitted: it gets no history, no event and no ephemeral frame,
    /// and may not publish, until the backend admits it ([`admitted`]).
    pub pending: bool,
    /// The `after_seq` its `HELLO` carried: a pending guest's catch-up starts there once it
    /// is admitted.
    #[serde(default)]
    pub after_seq: u64,
    /// The id the socket was opened with (`?client=`), if any.
    #[serde(default)]
    pub client: Option<String>,
    /// The 32 random bytes of this socket's `CHALLENGE`: its `HELLO` must sign them.
    pub challenge: [u8; CHALLENGE_LEN],
    /// When the socket was accepted (ms since the Unix epoch): unjoined, it is closed
    /// [`Limits::unjoined_timeout_ms`] later.
    pub opened_ms: u64,
    /// The client's address as counted ([`address_key`]), when the request had one.
    #[serde(default)]
    pub address: Option<String>,
    /// 32 random bytes, never sent: they key this socket's catch-up tokens.
    #[serde(default)]
    pub token_key: [u8; 32],
    /// Catch-up pages sent on this socket.
    #[serde(default)]
    pub pages: u64,
    /// The first change of this socket refused for the rate and not sent again yet: until
    /// it comes again, every other publish of the socket is refused too, so that no later
    /// change is stored before it (its sender's changes are stored in the order it made
    /// them; the client sends refused changes again in that order).
    #[serde(default)]
    pub publish_hold: Option<Held>,
    /// The token of the last `CAUGHT_UP` sent: the next `SYNC` must carry it. (Kept as a
    /// decimal string in the attachment: JavaScript numbers hold 53 bits.)
    #[serde(default, with = "u64_text")]
    pub sync_token: u64,
}

impl Peer {
    /// A new, not yet joined socket accepted at `now_ms`, with a full token bucket,
    /// `challenge` and `token_key` (each 32 bytes from a cryptographic random source, new
    /// for every socket; the challenge is sent, the token key never is). Hand it to
    /// [`accept`], which sends the challenge.
    #[must_use]
    pub fn new(
        id: PeerId,
        limits: &Limits,
        now_ms: u64,
        challenge: [u8; CHALLENGE_LEN],
        token_key: [u8; 32],
    ) -> Self {
        Self {
            id,
            joined: false,
            channels: Vec::new(),
            bucket: TokenBucket::full(limits.pace(), now_ms),
            user: None,
            role: None,
            pending: false,
            after_seq: 0,
            client: None,
            challenge,
            opened_ms: now_ms,
            address: None,
            token_key,
            pages: 0,
            publish_hold: None,
            sync_token: 0,
        }
    }

    /// A new catch-up token for this socket (it becomes the one the next `SYNC` must carry):
    /// the first 8 bytes of SHA-256(token key ‖ page number), never 0, so that a client that
    /// does not read its socket cannot know it.
    fn next_token(&mut self) -> u64 {
        use sha2::Digest as _;
        self.pages = self.pages.saturating_add(1);
        let digest = sha2::Sha256::new()
            .chain_update(self.token_key)
            .chain_update(self.pages.to_be_bytes())
            .finalize();
        let mut first = [0; 8];
        first.copy_from_slice(&digest[..8]);
        self.sync_token = u64::from_be_bytes(first).max(1);
        self.sync_token
    }

    /// What the socket may do (`WELCOME.access`, `ACCESS`): a pending guest waits (it gets
    /// no history until admitted), a read-only role ([`crate::auth::is_read_only_role`])
    /// reads and sends ephemeral frames, anyone else writes.
    #[must_use]
    pub fn access(&self) -> Access {
        if self.pending {
            Access::Pending
        } else if self
            .role
            .as_deref()
            .is_some_and(crate::auth::is_read_only_role)
        {
            Access::ReadOnly
        } else {
            Access::Write
        }
    }
}

/// A change a socket must send again before any other ([`Peer::publish_hold`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// Its envelope's session.
    pub session: sealsync_core::SessionId,
    /// Its envelope's counter.
    #[serde(with = "u64_text")]
    pub counter: u64,
}

/// A `u64` as a decimal string, for values above 2^53 in a JavaScript attachment.
mod u64_text {
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(value: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// What all sockets of a room share, in the object's memory only (a fresh object starts
/// with full buckets: waking from hibernation takes longer than they take to refill).
#[derive(Debug, Clone, Default)]
pub struct Budget {
    /// The room's frames ([`Limits::room_pace`]); `None` until the first frame.
    room: Option<TokenBucket>,
    /// Wrong-key `HELLO`s per client address ([`Limits::wrong_key_pace`]).
    wrong_keys: BTreeMap<String, TokenBucket>,
}

impl Budget {
    /// Takes a token from the room's bucket; the wait in milliseconds when it is empty.
    fn take_room(&mut self, limits: &Limits, now_ms: u64) -> Result<(), u64> {
        let pace = limits.room_pace();
        self.room
            .get_or_insert_with(|| TokenBucket::full(pace, now_ms))
            .try_take(pace, now_ms)
    }

    /// The wait before `address` may try another member key (0: now).
    fn wrong_key_wait(&self, limits: &Limits, address: &str, now_ms: u64) -> u64 {
        self.wrong_keys
            .get(address)
            .map_or(0, |b| b.wait_ms(limits.wrong_key_pace(), now_ms))
    }

    /// Counts a wrong-key `HELLO` from `address`.
    fn wrong_key(&mut self, limits: &Limits, address: &str, now_ms: u64) {
        let pace = limits.wrong_key_pace();
        if !self.wrong_keys.contains_key(address) && self.wrong_keys.len() >= MAX_TRACKED_ADDRESSES
        {
            // Forget the addresses whose bucket refilled (they are as good as new); if none
            // did, the first.
            self.wrong_keys.retain(|_, b| !b.is_full(pace, now_ms));
            if self.wrong_keys.len() >= MAX_TRACKED_ADDRESSES {
                if let Some(first) = self.wrong_keys.keys().next().cloned() {
                    self.wrong_keys.remove(&first);
                }
            }
        }
        let _ = self
            .wrong_keys
            .entry(address.to_owned())
            .or_insert_with(|| TokenBucket::full(pace, now_ms))
            .try_take(pace, now_ms);
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
    /// glue notes it ([`Presence::changed`]) and the alarm sends [`presence_now`] within
    /// [`PRESENCE_FLUSH_MS`] instead of one `PRESENCE` per join or leave (which would be
    /// O(n²) frames while a big room fills up).
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

/// The error code a frame that failed to decode gets. (The relay checks the size before
/// decoding, never above the codec's own limit, so `FrameTooLarge` cannot come from here.)
fn decode_error_code(err: &Error) -> RelayErrorCode {
    match err {
        Error::WireVersion { .. } => RelayErrorCode::UnsupportedVersion,
        Error::WrongKind { .. } => RelayErrorCode::WrongKind,
        _ => RelayErrorCode::BadFrame,
    }
}

/// Why a write (publish, snapshot) from a socket with this access is refused, if it is.
fn write_refusal(access: Access) -> Option<(RelayErrorCode, &'static str)> {
    match access {
        Access::Write => None,
        Access::ReadOnly => Some((
            RelayErrorCode::ReadOnly,
            "your role may read this room but not change it; the change was not stored",
        )),
        Access::Pending => Some((
            RelayErrorCode::GuestPending,
            "you are a guest waiting to be admitted; changes are refused until then",
        )),
    }
}

/// The close reason sent with a fatal error's close code.
const fn close_reason(code: RelayErrorCode) -> &'static str {
    match code {
        RelayErrorCode::WrongVerifier => "not a member",
        RelayErrorCode::Forbidden => "forbidden",
        RelayErrorCode::UnsupportedVersion => "unsupported version",
        RelayErrorCode::TooLarge => "frame too large",
        RelayErrorCode::RateLimited => "rate limited",
        RelayErrorCode::RoomFull => "room full",
        RelayErrorCode::Banned => "banned",
        RelayErrorCode::Rotated => "rotated",
        _ => "error",
    }
}

/// Whether the room holds [`Limits::max_sockets_per_room`] joined sockets: a new socket is
/// refused (`ERROR ROOM_FULL`, 4029) before it is accepted, a `HELLO` gets the same. Sockets
/// that have not joined do not count.
#[must_use]
pub fn room_full(peers: &BTreeMap<PeerId, Peer>, limits: &Limits) -> bool {
    peers.values().filter(|p| p.joined).count() >= limits.max_sockets_per_room
}

/// The address a socket is counted under for [`Limits::max_sockets_per_address`] and the
/// wrong-key budget, from the client's IP (`CF-Connecting-IP`): an IPv4 address as it is,
/// an IPv6 address as its /64 prefix (one subscriber usually holds a whole /64, so
/// counting single IPv6 addresses would let one client take as many as it likes), anything
/// else as given.
#[must_use]
pub fn address_key(ip: &str) -> String {
    match ip.trim().parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        Ok(std::net::IpAddr::V4(v4)) => v4.to_string(),
        Err(_) => ip.trim().to_owned(),
    }
}

/// Why a new socket is refused before it is accepted, if it is: a user the backend
/// banned (`BANNED`, 4010), a room with [`Limits::max_sockets_per_room`] joined sockets,
/// or an address or user that already holds [`Limits::max_sockets_per_address`] sockets
/// in this room (`ROOM_FULL`, 4029). The glue sends the error and closes the socket.
#[must_use]
pub fn admission(
    peers: &BTreeMap<PeerId, Peer>,
    limits: &Limits,
    banned: bool,
    user: Option<&str>,
    address: Option<&str>,
) -> Option<(RelayErrorCode, String)> {
    if banned {
        return Some((
            RelayErrorCode::Banned,
            "the application banned you from this room".into(),
        ));
    }
    if room_full(peers, limits) {
        return Some((
            RelayErrorCode::RoomFull,
            "this room has its maximum number of sockets; retry later".into(),
        ));
    }
    let cap = limits.max_sockets_per_address;
    let held = |same: &dyn Fn(&Peer) -> bool| peers.values().filter(|p| same(p)).count();
    if let Some(address) = address {
        if held(&|p| p.address.as_deref() == Some(address)) >= cap {
            return Some((
                RelayErrorCode::RoomFull,
                format!("your address holds {cap} sockets in this room, the most it may"),
            ));
        }
    }
    if let Some(user) = user {
        if held(&|p| p.user.as_deref() == Some(user)) >= cap {
            return Some((
                RelayErrorCode::RoomFull,
                format!("you hold {cap} sockets in this room, the most one user may"),
            ));
        }
    }
    None
}

/// What the room's alarm does when no socket is open ([`idle_plan`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idle {
    /// Delete every row, the key and the alarm: the room was idle for its TTL.
    Delete,
    /// Not yet: fire again at this time (ms since the Unix epoch).
    WakeAt(u64),
    /// No record of since when the room is empty (the process died with sockets open):
    /// it is idle from now; record this deadline and fire then.
    Start(u64),
}

/// The alarm's decision for a room with no open socket at `now_ms`, given the recorded
/// deadline `idle_at` (set when the last socket left: now + [`Limits::idle_room_ttl_ms`]).
#[must_use]
pub fn idle_plan(now_ms: u64, idle_at: Option<u64>, limits: &Limits) -> Idle {
    match idle_at {
        Some(at) if now_ms >= at => Idle::Delete,
        Some(at) => Idle::WakeAt(at),
        None => Idle::Start(idle_from(now_ms, limits)),
    }
}

/// When a room that became empty at `now_ms` may be deleted: one
/// [`Limits::idle_room_ttl_ms`] later (the glue records it and sets the alarm for then).
#[must_use]
pub fn idle_from(now_ms: u64, limits: &Limits) -> u64 {
    now_ms.saturating_add(limits.idle_room_ttl_ms)
}

/// Whether a room whose last socket left may be deleted at once: nothing was ever stored
/// in it (no event; a snapshot needs one), nobody was banned from it (a ban must outlive
/// the sockets) and its key was never rotated (a room created again would be at epoch 0,
/// and under whatever key came first). Its member key goes too, so a stranger who claimed an unused room id holds
/// it only while a socket of theirs stays open.
///
/// # Errors
/// [`StoreError`] when storage fails.
pub fn disposable<S: RoomStore>(store: &S) -> Result<bool, StoreError> {
    Ok(store.head_seq()? == 0 && !store.any_banned()? && store.key_epoch()? == 0)
}

/// The `CHALLENGE` frame of `peer`'s socket (what [`accept`] sends first).
#[must_use]
pub fn challenge_frame(peer: &Peer) -> Vec<u8> {
    encode(&RelayFrame::Challenge {
        challenge: peer.challenge,
    })
    .unwrap_or_default()
}

/// A socket was accepted (the glue asked [`admission`] first): `peer` (from
/// [`Peer::new`]) joins the room's peers, unjoined, and its socket's first frame is its
/// `CHALLENGE`. When the room already has [`Limits::max_unjoined_sockets`] unjoined
/// sockets, the oldest of them is closed (`ERROR ROOM_FULL`, 4029) to make room: idle
/// sockets cannot keep out a member, whose `HELLO` follows one round trip later.
#[must_use]
pub fn accept(peers: &mut BTreeMap<PeerId, Peer>, limits: &Limits, peer: Peer) -> Vec<Out> {
    let mut out = Vec::new();
    let mut unjoined: Vec<(u64, PeerId)> = peers
        .values()
        .filter(|p| !p.joined)
        .map(|p| (p.opened_ms, p.id))
        .collect();
    unjoined.sort_unstable();
    let excess = (unjoined.len() + 1).saturating_sub(limits.max_unjoined_sockets.max(1));
    for &(_, id) in unjoined.iter().take(excess) {
        let message = format!(
            "this room has {} sockets that have not sent HELLO; the oldest is closed to make \
             room for a new one: send HELLO as soon as CHALLENGE arrives",
            limits.max_unjoined_sockets
        );
        out.push(Out::Send {
            to: id,
            frame: refusal(RelayErrorCode::RoomFull, &message),
        });
        out.push(Out::Close {
            to: id,
            code: RelayErrorCode::RoomFull
                .close_code()
                .unwrap_or(CLOSE_INTERNAL_ERROR),
            reason: close_reason(RelayErrorCode::RoomFull),
        });
        out.extend(leave(peers, id));
    }
    out.push(Out::Send {
        to: peer.id,
        frame: challenge_frame(&peer),
    });
    peers.insert(peer.id, peer);
    out
}

/// When the earliest unjoined socket times out (ms since the Unix epoch), if any is open.
#[must_use]
pub fn unjoined_deadline(peers: &BTreeMap<PeerId, Peer>, limits: &Limits) -> Option<u64> {
    peers
        .values()
        .filter(|p| !p.joined)
        .map(|p| p.opened_ms.saturating_add(limits.unjoined_timeout_ms))
        .min()
}

/// The room's alarm at `now_ms`: every socket still unjoined
/// [`Limits::unjoined_timeout_ms`] after it opened gets a fatal `ERROR NOT_JOINED` and is
/// closed with [`CLOSE_NO_HELLO`] ("no HELLO"), and leaves the room (it never joined, so
/// nobody hears a presence change).
#[must_use]
pub fn expire_unjoined(
    peers: &mut BTreeMap<PeerId, Peer>,
    limits: &Limits,
    now_ms: u64,
) -> Vec<Out> {
    let expired: Vec<PeerId> = peers
        .values()
        .filter(|p| !p.joined && p.opened_ms.saturating_add(limits.unjoined_timeout_ms) <= now_ms)
        .map(|p| p.id)
        .collect();
    let mut out = Vec::new();
    for id in expired {
        let message = format!(
            "no accepted HELLO within {} ms of the CHALLENGE; reconnect",
            limits.unjoined_timeout_ms
        );
        if let Some(frame) = encode(&RelayFrame::Error {
            code: RelayErrorCode::NotJoined,
            fatal: true,
            message: bounded(message),
        }) {
            out.push(Out::Send { to: id, frame });
        }
        out.push(Out::Close {
            to: id,
            code: CLOSE_NO_HELLO,
            reason: NO_HELLO_REASON,
        });
        out.extend(leave(peers, id));
    }
    out
}

/// When the room's alarm must next fire while it has sockets (ms since the Unix epoch): at
/// the earliest unjoined socket's deadline, else one idle TTL from `now_ms` (the alarm is
/// always kept set, so a room whose last socket vanished without a close is still reaped).
/// A coalesced presence update ([`Out::PresenceChanged`]) may want it earlier
/// ([`Presence::alarm_by`]); the glue takes the earlier of the two ([`sets_alarm`]).
#[must_use]
pub fn next_alarm(peers: &BTreeMap<PeerId, Peer>, limits: &Limits, now_ms: u64) -> u64 {
    let idle = now_ms.saturating_add(limits.idle_room_ttl_ms);
    unjoined_deadline(peers, limits).map_or(idle, |deadline| deadline.min(idle))
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

/// One catch-up page (PROTOCOL.md, "Ordering") for `from`, into `out`: the snapshot when
/// `after_seq` is behind it, then stored events in order, up to
/// [`Limits::catch_up_page_bytes`] of envelopes (at least one envelope) and
/// [`CATCH_UP_PAGE_EVENTS`] events, then `CAUGHT_UP` with the head and a new token. The
/// client asks for the next page with a `SYNC` that carries the token.
///
/// Every stored event goes to every joined socket, whatever its channel: stored changes
/// belong to the whole room (clients merge every event), and sequence numbers stay
/// contiguous for each client, so a hole always means a loss. A pending guest gets none
/// (the callers never ask for one before it is admitted).
fn catch_up_page<S: RoomStore>(
    store: &S,
    limits: &Limits,
    peers: &mut BTreeMap<PeerId, Peer>,
    from: PeerId,
    after_seq: u64,
    out: &mut Vec<Out>,
) -> Result<(), StoreError> {
    if !peers.get(&from).is_some_and(|p| p.joined && !p.pending) {
        return Ok(());
    }
    let budget = limits.catch_up_page_bytes;
    let mut spent = 0_u64;
    let mut cursor = after_seq;
    if after_seq < store.snapshot_seq()? {
        if let Some(snapshot) = store.snapshot()? {
            cursor = snapshot.seq;
            spent = snapshot.envelope.len() as u64;
            if let Some(frame) = encode(&RelayFrame::Snapshot {
                seq: snapshot.seq,
                envelope: snapshot.envelope,
            }) {
                out.push(Out::Send { to: from, frame });
            }
        }
    }
    if spent < budget {
        let page = store.events_after(cursor, CATCH_UP_PAGE_EVENTS, budget - spent)?;
        for event in page {
            out.push(Out::Send {
                to: from,
                frame: encode_event(event.seq, event.relay_time, &event.envelope),
            });
        }
    }
    let head_seq = store.head_seq()?;
    let Some(peer) = peers.get_mut(&from) else {
        return Ok(());
    };
    let token = peer.next_token();
    out.push(Out::Save(from));
    if let Some(frame) = encode(&RelayFrame::CaughtUp { head_seq, token }) {
        out.push(Out::Send { to: from, frame });
    }
    Ok(())
}

/// Sockets of `ids` that the backend just admitted (`admit`; each got its `ACCESS`
/// first): each joined one gets the catch-up it was held from, from the `after_seq` its
/// `HELLO` carried ([`Peer::after_seq`]). Ids still pending, not joined or gone get
/// nothing.
///
/// # Errors
/// [`StoreError`] when storage fails.
pub fn admitted<S: RoomStore>(
    store: &S,
    limits: &Limits,
    peers: &mut BTreeMap<PeerId, Peer>,
    ids: &[PeerId],
) -> Result<Vec<Out>, StoreError> {
    let mut out = Vec::new();
    for &id in ids {
        if let Some(after_seq) = peers.get(&id).map(|p| p.after_seq) {
            catch_up_page(store, limits, peers, id, after_seq, &mut out)?;
        }
    }
    Ok(out)
}

/// The joined peers but `except` that are not pending guests: who hears stored events,
/// ephemeral frames and knocks.
fn members_except(peers: &BTreeMap<PeerId, Peer>, except: PeerId) -> impl Iterator<Item = &Peer> {
    peers
        .values()
        .filter(move |p| p.joined && !p.pending && p.id != except)
}

/// One room's rules over its store and its peers, for the duration of one input.
#[derive(Debug)]
pub struct Hub<'a, S> {
    room: &'a RoomId,
    store: &'a mut S,
    limits: &'a Limits,
    peers: &'a mut BTreeMap<PeerId, Peer>,
    budget: &'a mut Budget,
    out: Vec<Out>,
}

impl<'a, S: RoomStore> Hub<'a, S> {
    /// Borrows the room's parts for one input. `room` is the room's id (what `HELLO`
    /// proofs sign); `budget` lives as long as the object's memory.
    pub fn new(
        room: &'a RoomId,
        store: &'a mut S,
        limits: &'a Limits,
        peers: &'a mut BTreeMap<PeerId, Peer>,
        budget: &'a mut Budget,
    ) -> Self {
        Self {
            room,
            store,
            limits,
            peers,
            budget,
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

    /// `ERROR`, fatal (then the socket is closed) when the protocol makes `code` always
    /// fatal ([`RelayErrorCode::is_fatal`]).
    fn error(&mut self, to: PeerId, code: RelayErrorCode, message: String) {
        if code.is_fatal() {
            self.give_up(to, code, message);
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

    /// A fatal `ERROR`, then the socket is closed with the code's close code; the peer
    /// leaves the room.
    fn give_up(&mut self, to: PeerId, code: RelayErrorCode, message: String) {
        if let Some(frame) = encode(&RelayFrame::Error {
            code,
            fatal: true,
            message: bounded(message),
        }) {
            self.out.push(Out::Send { to, frame });
        }
        self.out.push(Out::Close {
            to,
            code: code.close_code().unwrap_or(CLOSE_INTERNAL_ERROR),
            reason: close_reason(code),
        });
        self.remove(to);
    }

    /// `REFUSED`: the change `header` names was not stored; the socket stays.
    fn refuse(
        &mut self,
        to: PeerId,
        header: &EnvelopeHeader,
        code: RelayErrorCode,
        retry_after_ms: u32,
        message: String,
    ) {
        self.send(
            to,
            &RelayFrame::Refused {
                session: header.session,
                counter: header.counter,
                code,
                retry_after_ms,
                message: bounded(message),
            },
        );
    }

    /// Takes a token from `from`'s bucket for a frame (`named`: the envelope header of a
    /// `PUBLISH` that names its change, else `None`); `true` when the frame may be handled.
    /// Out of tokens, a `PUBLISH` that names its change gets `REFUSED RATE_LIMITED` with
    /// the wait, any other frame a non-fatal `ERROR RATE_LIMITED`, and is dropped; a sender
    /// that ignored a whole burst of those hints is closed (1008).
    fn take_token(&mut self, from: PeerId, named: Option<&EnvelopeHeader>, now_ms: u64) -> bool {
        let pace = self.limits.pace();
        let Some(peer) = self.peers.get_mut(&from) else {
            return false;
        };
        let joined = peer.joined;
        let held = peer.publish_hold;
        let publish = named.map(|h| Held {
            session: h.session,
            counter: h.counter,
        });
        match peer.bucket.take(pace, now_ms) {
            Take::Ok if !joined => true,
            Take::Ok if held.is_some() && publish.is_some() && publish != held => {
                let message = String::from(
                    "an earlier change from this socket was refused for the rate: send it \
                     again first; this one was not stored",
                );
                self.rate_refusal(from, named, 1, message);
                false
            }
            Take::Ok => match self.budget.take_room(self.limits, now_ms) {
                Ok(()) => {
                    if publish.is_some() && publish == held {
                        if let Some(peer) = self.peers.get_mut(&from) {
                            peer.publish_hold = None;
                        }
                    }
                    true
                }
                Err(wait) => {
                    let retry_after_ms = u32::try_from(wait).unwrap_or(u32::MAX);
                    let room = self.limits.room_pace();
                    let message = format!(
                        "this room's sockets together sent over {} frames in a burst or {} \
                         per second: wait {retry_after_ms} ms before sending again",
                        room.burst, room.per_second
                    );
                    self.rate_refusal(from, named, retry_after_ms, message);
                    false
                }
            },
            Take::Wait { retry_after_ms } => {
                let message = format!(
                    "over {} frames in a burst or {} per second: wait {retry_after_ms} ms \
                     before sending again",
                    pace.burst, pace.per_second
                );
                self.rate_refusal(from, named, retry_after_ms, message);
                false
            }
            Take::Exceeded => {
                let message = format!(
                    "kept sending past {} frames in a burst or {} per second despite the \
                     retry hints; reconnect with backoff",
                    pace.burst, pace.per_second
                );
                self.give_up(from, RelayErrorCode::RateLimited, message);
                false
            }
        }
    }

    /// A frame over a rate: a `PUBLISH` that names its change gets `REFUSED RATE_LIMITED`
    /// with the wait (and, the first such, holds the socket's other publishes until it
    /// comes again: [`Peer::publish_hold`]), any other frame a non-fatal `ERROR
    /// RATE_LIMITED`; the frame is dropped.
    fn rate_refusal(
        &mut self,
        from: PeerId,
        named: Option<&EnvelopeHeader>,
        retry_after_ms: u32,
        message: String,
    ) {
        match named {
            Some(header) => {
                if let Some(peer) = self.peers.get_mut(&from) {
                    peer.publish_hold.get_or_insert(Held {
                        session: header.session,
                        counter: header.counter,
                    });
                    self.out.push(Out::Save(from));
                }
                self.refuse(
                    from,
                    header,
                    RelayErrorCode::RateLimited,
                    retry_after_ms,
                    message,
                );
            }
            None => self.send(
                from,
                &RelayFrame::Error {
                    code: RelayErrorCode::RateLimited,
                    fatal: false,
                    message: bounded(format!("{message}; this frame was dropped")),
                },
            ),
        }
    }

    /// Removes a peer; when it had joined, everyone left hears the new presence.
    fn remove(&mut self, id: PeerId) {
        self.out.extend(leave(self.peers, id));
    }

    fn broadcast_presence(&mut self, except: Option<PeerId>) {
        self.out.extend(presence_out(self.peers, except));
    }

    /// Joined peers other than `from`, pending guests left out: every stored event goes to
    /// all of them.
    fn everyone_else(&self, from: PeerId) -> Vec<PeerId> {
        members_except(self.peers, from).map(|p| p.id).collect()
    }

    /// Joined peers other than `from`, pending guests left out, that follow `channel`
    /// (ephemeral frames only).
    fn audience(&self, from: PeerId, channel: &ChannelTag) -> Vec<PeerId> {
        members_except(self.peers, from)
            .filter(|p| p.channels.contains(channel))
            .map(|p| p.id)
            .collect()
    }

    /// A text message other than the heartbeat (which the runtime answers by itself) from
    /// `from` at `now_ms`: it costs a token like a binary frame.
    #[must_use]
    pub fn handle_text(mut self, from: PeerId, now_ms: u64) -> Vec<Out> {
        if self.take_token(from, None, now_ms) {
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
        // A PUBLISH's envelope header, read once: it names the change in a REFUSED (rate,
        // size) and is the header the change is stored under.
        let named = publish_header(bytes);
        if !self.take_token(from, named.as_ref(), now_ms) {
            return Ok(self.out);
        }
        let max = self.limits.max_frame_bytes.min(MAX_FRAME_LEN);
        if bytes.len() > max {
            let message = format!(
                "frame of {} bytes is over this relay's limit of {max} bytes",
                bytes.len()
            );
            // A PUBLISH that names its change is refused (the client drops that change);
            // a frame the relay cannot name ends the socket.
            match &named {
                Some(header) => self.refuse(from, header, RelayErrorCode::TooLarge, 0, message),
                None => self.give_up(from, RelayErrorCode::TooLarge, message),
            }
            return Ok(self.out);
        }
        let joined = self.peers.get(&from).is_some_and(|p| p.joined);
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
                member_key,
                proof,
                channels,
            } => self.hello(from, after_seq, &member_key, &proof, channels, now_ms)?,
            _ if !joined => self.error(
                from,
                RelayErrorCode::NotJoined,
                "send HELLO first: it must be the first frame on a socket".into(),
            ),
            ClientFrame::Publish { envelope } => self.publish(from, named, &envelope, now_ms)?,
            ClientFrame::Sync { .. } if self.access(from) == Access::Pending => self.error(
                from,
                RelayErrorCode::GuestPending,
                "you are a guest waiting to be admitted; the room's history is sent once you \
                 are"
                .into(),
            ),
            ClientFrame::Sync { after_seq, token } => {
                if self.seq_in_range(from, "SYNC", after_seq) && self.sync_token_ok(from, token) {
                    self.catch_up(from, after_seq)?;
                }
            }
            ClientFrame::SnapshotPut { upto_seq, envelope } => {
                self.snapshot_put(from, upto_seq, &envelope)?;
            }
            ClientFrame::Ephemeral { envelope } => self.ephemeral(from, envelope)?,
            ClientFrame::Rotate {
                key_epoch,
                member_key,
                proof,
                upto_seq,
                envelope,
            } => self.rotate(from, key_epoch, &member_key, &proof, upto_seq, &envelope)?,
        }
        Ok(self.out)
    }

    /// Whether `after_seq` (of a `HELLO` or `SYNC`) is a sequence number at all (at most
    /// [`MAX_SEQ`]); otherwise the frame gets a non-fatal `ERROR BAD_FRAME`.
    fn seq_in_range(&mut self, from: PeerId, frame: &str, after_seq: u64) -> bool {
        if after_seq <= MAX_SEQ {
            return true;
        }
        self.error(
            from,
            RelayErrorCode::BadFrame,
            format!(
                "{frame} after_seq {after_seq} is above 2^53 - 1, the largest sequence number; \
                 the frame was ignored"
            ),
        );
        false
    }

    /// Whether a `SYNC` carries the token of the last `CAUGHT_UP` sent on its socket (the
    /// client read its previous page); otherwise it gets a non-fatal `ERROR BAD_FRAME` and
    /// nothing is sent: a socket that does not read cannot make the relay queue page after
    /// page.
    fn sync_token_ok(&mut self, from: PeerId, token: u64) -> bool {
        let expected = self.peers.get(&from).map(|p| p.sync_token);
        if expected.is_some_and(|t| bool::from(t.to_be_bytes().ct_eq(&token.to_be_bytes()))) {
            return true;
        }
        self.error(
            from,
            RelayErrorCode::BadFrame,
            "SYNC must carry the token of the last CAUGHT_UP on this socket (read the page \
             before asking for the next); the frame was ignored"
                .into(),
        );
        false
    }

    /// `HELLO`: the proof must sign this socket's challenge with the offered member key,
    /// and that key must be the room's (or becomes it, in an empty room).
    fn hello(
        &mut self,
        from: PeerId,
        after_seq: u64,
        member_key: &[u8; MEMBER_KEY_LEN],
        proof: &[u8; PROOF_LEN],
        channels: Vec<ChannelTag>,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let Some((joined, challenge, address)) = self
            .peers
            .get(&from)
            .map(|p| (p.joined, p.challenge, p.address.clone()))
        else {
            return Ok(());
        };
        if joined {
            self.error(
                from,
                RelayErrorCode::BadFrame,
                "HELLO was already accepted on this socket".into(),
            );
            return Ok(());
        }
        if !self.seq_in_range(from, "HELLO", after_seq) {
            return Ok(());
        }
        // An address that sent too many wrong keys waits, whatever the key: the answer
        // must not tell a guess apart while it waits.
        if let Some(address) = &address {
            let wait = self.budget.wrong_key_wait(self.limits, address, now_ms);
            if wait > 0 {
                self.error(
                    from,
                    RelayErrorCode::RateLimited,
                    format!(
                        "too many HELLOs with a wrong password or secret from your address; \
                         wait {wait} ms, then send HELLO again"
                    ),
                );
                return Ok(());
            }
        }
        // A recorded HELLO signs another socket's challenge; the stored member key alone
        // signs nothing.
        if !member::verify_proof(self.room, &challenge, member_key, proof) {
            self.error(
                from,
                RelayErrorCode::WrongVerifier,
                "the membership proof does not verify".into(),
            );
            return Ok(());
        }
        let verifier_state = match self.store.member_key()? {
            None => {
                self.store.set_member_key(member_key)?;
                VerifierState::Created
            }
            Some(stored) if bool::from(stored.ct_eq(member_key)) => VerifierState::Matched,
            Some(_) => {
                if let Some(address) = &address {
                    self.budget.wrong_key(self.limits, address, now_ms);
                }
                self.error(
                    from,
                    RelayErrorCode::WrongVerifier,
                    "this room exists with another password or secret".into(),
                );
                return Ok(());
            }
        };
        if room_full(self.peers, self.limits) {
            self.error(
                from,
                RelayErrorCode::RoomFull,
                format!(
                    "this room has its maximum of {} joined sockets; retry later",
                    self.limits.max_sockets_per_room
                ),
            );
            return Ok(());
        }
        let Some(peer) = self.peers.get_mut(&from) else {
            return Ok(());
        };
        peer.joined = true;
        peer.channels = channels;
        peer.after_seq = after_seq;
        self.out.push(Out::Save(from));
        let access = peer.access();
        let presence = self.presence();
        // A pending guest learns nothing of the history, not even its length.
        let (head_seq, snapshot_seq) = if access == Access::Pending {
            (0, 0)
        } else {
            (self.store.head_seq()?, self.store.snapshot_seq()?)
        };
        let welcome = RelayFrame::Welcome {
            relay_time: now_ms,
            head_seq,
            snapshot_seq,
            presence,
            verifier_state,
            access,
            limits: self.limits.announced(),
        };
        self.send(from, &welcome);
        let key_epoch = self.store.key_epoch()?;
        if key_epoch > 0 {
            self.send(from, &RelayFrame::KeyEpoch { key_epoch });
        }
        if access == Access::Pending {
            self.broadcast_presence(Some(from));
            self.knock(from);
        } else {
            self.catch_up(from, after_seq)?;
            self.broadcast_presence(Some(from));
        }
        Ok(())
    }

    /// The knock: a pending guest's `HELLO` was accepted, so every other joined member
    /// (not pending) gets a `NOTIFY` `{"type":"knock","data":{"user":<the token's user>}}`
    /// ([`crate::notify::knock_frame`]). Only the relay sends `NOTIFY`: a member cannot
    /// forge one. A guest without a user (no auth) knocks on nobody.
    fn knock(&mut self, from: PeerId) {
        let Some(user) = self.peers.get(&from).and_then(|p| p.user.clone()) else {
            return;
        };
        let to: Vec<PeerId> = members_except(self.peers, from).map(|p| p.id).collect();
        if to.is_empty() {
            return;
        }
        if let Some(frame) = crate::notify::knock_frame(&user) {
            self.out.push(Out::Broadcast { to, frame });
        }
    }

    /// One catch-up page for `from` ([`catch_up_page`]).
    fn catch_up(&mut self, from: PeerId, after_seq: u64) -> Result<(), StoreError> {
        catch_up_page(
            &*self.store,
            self.limits,
            self.peers,
            from,
            after_seq,
            &mut self.out,
        )
    }

    /// The header of an envelope the codec already checked (length, version, kind); `None`
    /// after an error was queued, which a decoded frame never gets.
    fn header(&mut self, from: PeerId, envelope: &[u8]) -> Option<EnvelopeHeader> {
        match EnvelopeHeader::parse(envelope) {
            Ok((header, _)) => Some(header),
            Err(err) => {
                self.error(from, decode_error_code(&err), err.to_string());
                None
            }
        }
    }

    /// The socket's access (a gone socket may do nothing).
    fn access(&self, from: PeerId) -> Access {
        self.peers.get(&from).map_or(Access::Pending, Peer::access)
    }

    /// Answers a publish whose `(session, counter)` the room already stored: the same
    /// bytes (digest) get an `ACK` with `duplicate = 1` and the stored copy's sequence,
    /// other bytes `REFUSED DUPLICATE_MISMATCH` (not stored: whoever stored the first copy
    /// cannot make a later, different change vanish behind a duplicate `ACK`). `false` when
    /// nothing is stored under that pair.
    fn answer_stored(
        &mut self,
        from: PeerId,
        header: &EnvelopeHeader,
        digest: &[u8; DIGEST_LEN],
    ) -> Result<bool, StoreError> {
        let Some(stored) = self.store.find(&header.session, header.counter)? else {
            return Ok(false);
        };
        if stored.digest.as_ref() == Some(digest) {
            self.send(
                from,
                &RelayFrame::Ack {
                    session: header.session,
                    counter: header.counter,
                    seq: stored.seq,
                    relay_time: stored.relay_time,
                    duplicate: true,
                },
            );
        } else {
            let message = if stored.digest.is_some() {
                format!(
                    "the room already stored another envelope from this session with counter \
                     {} (seq {}); this one was not stored",
                    header.counter, stored.seq
                )
            } else {
                format!(
                    "the room stored an envelope from this session with counter {} (seq {}) \
                     before it kept digests and has compacted it since, so it cannot tell \
                     whether this one is the same; it was not stored",
                    header.counter, stored.seq
                )
            };
            self.refuse(from, header, RelayErrorCode::DuplicateMismatch, 0, message);
        }
        Ok(true)
    }

    /// A `PUBLISH` of `envelope`, whose header `handle_frame` read (`named`; a decoded
    /// `PUBLISH` always has one, else the error why not is sent).
    fn publish(
        &mut self,
        from: PeerId,
        named: Option<EnvelopeHeader>,
        envelope: &[u8],
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let Some(header) = named.or_else(|| self.header(from, envelope)) else {
            return Ok(());
        };
        let digest = envelope_digest(envelope);
        // A change stored before (the socket's access changed since, or the room filled
        // up) is acknowledged, never refused: refusing it would make its sender roll back
        // what everyone else has.
        if let Some((code, message)) = write_refusal(self.access(from)) {
            if !self.answer_stored(from, &header, &digest)? {
                self.refuse(from, &header, code, 0, message.into());
            }
            return Ok(());
        }
        if let Some(message) = self.stale_epoch(header.key_epoch)? {
            if !self.answer_stored(from, &header, &digest)? {
                self.refuse(from, &header, RelayErrorCode::Rotated, 0, message);
            }
            return Ok(());
        }
        let usage = self.store.usage()?;
        let len = envelope.len() as u64;
        if usage.events >= self.limits.max_history_events
            || usage.bytes.saturating_add(len) > self.limits.max_history_bytes
        {
            if !self.answer_stored(from, &header, &digest)? {
                let message = format!(
                    "the room stores {} events ({} bytes), its cap is {} events ({} bytes); \
                     a snapshot lets it compact",
                    usage.events,
                    usage.bytes,
                    self.limits.max_history_events,
                    self.limits.max_history_bytes
                );
                self.refuse(
                    from,
                    &header,
                    RelayErrorCode::HistoryFull,
                    HISTORY_FULL_RETRY_MS,
                    message,
                );
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
            digest,
        })?;
        if !appended {
            if !self.answer_stored(from, &header, &digest)? {
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
        if let Some((code, message)) = write_refusal(self.access(from)) {
            self.error(from, code, message.into());
            return Ok(());
        }
        let Some(header) = self.header(from, envelope) else {
            return Ok(());
        };
        if let Some(message) = self.stale_epoch(header.key_epoch)? {
            self.error(from, RelayErrorCode::Rotated, message);
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
        if let Some(message) = self.snapshot_over_cap(envelope.len()) {
            self.error(from, RelayErrorCode::HistoryFull, message);
            return Ok(());
        }
        self.store.put_snapshot(upto_seq, envelope)?;
        self.send(from, &RelayFrame::SnapshotStored { seq: upto_seq });
        Ok(())
    }

    /// Relays an ephemeral frame to the joined sockets that follow its channel. A read-only
    /// role may send them (cursors and typing are not changes), a pending guest may not.
    fn ephemeral(&mut self, from: PeerId, envelope: Vec<u8>) -> Result<(), StoreError> {
        if self.access(from) == Access::Pending {
            self.error(
                from,
                RelayErrorCode::GuestPending,
                "you are a guest waiting to be admitted; ephemeral frames are refused until then"
                    .into(),
            );
            return Ok(());
        }
        let Some(header) = self.header(from, &envelope) else {
            return Ok(());
        };
        if let Some(message) = self.stale_epoch(header.key_epoch)? {
            self.error(from, RelayErrorCode::Rotated, message);
            return Ok(());
        }
        let to = self.audience(from, &header.channel);
        if to.is_empty() {
            return Ok(());
        }
        if let Some(frame) = encode(&RelayFrame::Ephemeral { envelope }) {
            self.out.push(Out::Broadcast { to, frame });
        }
        Ok(())
    }

    /// Why a snapshot of `len` bytes cannot be stored (over the room's history byte cap), or
    /// `None`.
    fn snapshot_over_cap(&self, len: usize) -> Option<String> {
        (len as u64 > self.limits.max_history_bytes).then(|| {
            format!(
                "the snapshot is {len} bytes, over the room's cap of {} bytes",
                self.limits.max_history_bytes
            )
        })
    }

    /// Why an envelope sealed under `key_epoch` may not be written to the room, or `None`
    /// when that is the room's epoch.
    fn stale_epoch(&self, key_epoch: u32) -> Result<Option<String>, StoreError> {
        let current = self.store.key_epoch()?;
        Ok((key_epoch != current).then(|| {
            format!(
                "sealed under key epoch {key_epoch}, but the room is at key epoch {current}: \
                 it was not stored"
            )
        }))
    }

    /// `ROTATE`: a member moves the room to a new key (PROTOCOL.md, "Key rotation"). The
    /// current member key must sign this socket's challenge, the new epoch and the new
    /// key; the snapshot must cover the room's head and be sealed at the new epoch. Then
    /// the room takes the new member key and epoch, stores the snapshot (dropping every
    /// older event), and closes every other joined socket with `ROTATED` (4005); the
    /// rotating socket gets `KEY_EPOCH` and `SNAPSHOT_STORED`.
    fn rotate(
        &mut self,
        from: PeerId,
        key_epoch: u32,
        member_key: &[u8; MEMBER_KEY_LEN],
        proof: &[u8; PROOF_LEN],
        upto_seq: u64,
        envelope: &[u8],
    ) -> Result<(), StoreError> {
        if let Some((code, message)) = write_refusal(self.access(from)) {
            self.error(from, code, format!("{message}; the key was not rotated"));
            return Ok(());
        }
        let Some(header) = self.header(from, envelope) else {
            return Ok(());
        };
        let current_epoch = self.store.key_epoch()?;
        if Some(key_epoch) != current_epoch.checked_add(1) || header.key_epoch != key_epoch {
            self.error(
                from,
                RelayErrorCode::BadFrame,
                format!(
                    "a rotation goes from key epoch {current_epoch} to the next, with its \
                     snapshot sealed there; this one names epoch {key_epoch} and a snapshot at \
                     {}",
                    header.key_epoch
                ),
            );
            return Ok(());
        }
        let Some(challenge) = self.peers.get(&from).map(|p| p.challenge) else {
            return Ok(());
        };
        let Some(current) = self.store.member_key()? else {
            return Err(StoreError("a joined room has no member key".into()));
        };
        if !member::verify_rotation(
            self.room, &challenge, key_epoch, &current, member_key, proof,
        ) {
            self.error(
                from,
                RelayErrorCode::WrongVerifier,
                "the rotation is not signed by the room's member key".into(),
            );
            return Ok(());
        }
        if bool::from(current.ct_eq(member_key)) {
            self.error(
                from,
                RelayErrorCode::BadFrame,
                "the new member key is the room's current one; the key was not rotated".into(),
            );
            return Ok(());
        }
        let head = self.store.head_seq()?;
        if upto_seq != head {
            self.error(
                from,
                RelayErrorCode::NotCaughtUp,
                format!(
                    "the rotation's snapshot covers up to {upto_seq}, the room's head is {head}: \
                     read what came since and rotate again"
                ),
            );
            return Ok(());
        }
        if let Some(message) = self.snapshot_over_cap(envelope.len()) {
            self.error(
                from,
                RelayErrorCode::HistoryFull,
                format!("{message}; the key was not rotated"),
            );
            return Ok(());
        }
        // An empty room has nothing to anchor a snapshot to, and nothing to keep.
        let snapshot = (head > 0).then_some((head, envelope));
        self.store.rotate(member_key, key_epoch, snapshot)?;
        let others: Vec<PeerId> = self
            .peers
            .values()
            .filter(|p| p.joined && p.id != from)
            .map(|p| p.id)
            .collect();
        // One ERROR for all, then each socket closes; the presence is told once, at the end.
        if !others.is_empty() {
            if let Some(frame) = encode(&RelayFrame::Error {
                code: RelayErrorCode::Rotated,
                fatal: true,
                message: String::from(
                    "the room moved to a new key (its password or secret changed); join again \
                     with the new one",
                ),
            }) {
                self.out.push(Out::Broadcast {
                    to: others.clone(),
                    frame,
                });
            }
        }
        for id in others {
            self.peers.remove(&id);
            self.out.push(Out::Close {
                to: id,
                code: sealsync_core::wire::CLOSE_ROTATED,
                reason: close_reason(RelayErrorCode::Rotated),
            });
        }
        self.send(from, &RelayFrame::KeyEpoch { key_epoch });
        if head > 0 {
            self.send(from, &RelayFrame::SnapshotStored { seq: head });
        }
        self.broadcast_presence(None);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
