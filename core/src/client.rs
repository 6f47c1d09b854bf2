//! The sans-IO connection machine: one room, one relay connection, driven by inputs.
//!
//! # Calling order
//!
//! The shell owns the socket, the timer and the storage; the [`Client`] owns every rule.
//! Feed exactly one input (`handle_*`), then drain [`Client::poll`] until it returns
//! `None`, and act on each [`Output`] in order:
//!
//! - [`Output::Connect`]: open a WebSocket to the room; report [`Client::handle_socket_opened`]
//!   or [`Client::handle_socket_closed`].
//! - [`Output::Send`] / [`Output::SendPing`]: send a binary frame / the text `ping`.
//! - [`Output::Close`]: close the current socket with the code and **forget it**: do not report
//!   its close event (the client has already moved on).
//! - [`Output::WakeAt`]: arm the one timer for that instant (replacing any earlier one) and call
//!   [`Client::handle_timer`] when it fires.
//! - [`Output::Event`]: hand to the application.
//! - [`Output::OutboxChanged`]: persist [`Client::outbox_envelopes`] (ciphertext only).
//! - [`Output::Keep`] (only with [`ClientConfig::keep_history`]): add the event to the local
//!   history, or replace the history up to a snapshot's sequence with it (ciphertext only).
//! - [`Output::Probe`]: the socket failed before it opened; ask the relay's presence address
//!   (`GET`, with the same token) and report [`Client::handle_probe`] with the body of a 403,
//!   or `None` for any other answer or none.
//! - [`Output::ForgetOutboxes`]: persist [`Client::outbox_envelopes`] and delete the records of
//!   these sessions (adopted with [`Client::adopt_outboxes`]), in one write if you can.
//!
//! Before [`Client::handle_start`], a shell that kept a history puts it back with
//! [`Client::restore_history`], then the unsent envelopes with [`Client::restore_outbox`] (its
//! own) or [`Client::adopt_outboxes`] (those of sessions that ended; also later, when a
//! session that was running ends, followed by [`Client::handle_flush`]).
//!
//! Local changes ([`Client::handle_local_op`]) apply at once but are sealed together: call
//! [`Client::handle_flush`] after a burst of them (the browser shell does it once per task,
//! in a microtask), and every change of the burst goes out in as few envelopes as the
//! relay's frame limit allows. Every other `handle_*` input flushes first, so nothing waits
//! for long; until a flush, staged changes are not in [`Client::outbox_envelopes`].
//! [`Client::begin_transaction`] / [`Client::commit_transaction`] make the changes between
//! them one envelope, applied all at once on every replica.
//!
//! Time comes in as arguments: `now` is monotonic ([`Millis`]), `wall` is the wall clock
//! ([`WallMillis`]) used only for the hybrid logical clock.
//!
//! ```
//! use sealsync_core::client::{Client, ClientConfig, Output, Status};
//! use sealsync_core::wire::RelayFrame;
//! use sealsync_core::{DeviceId, Entropy, Millis, RoomId, SessionId, WallMillis};
//! use sealsync_core::kdf::{RoomKey, RoomKeys};
//!
//! struct Counter(u8);
//! impl Entropy for Counter {
//!     fn fill(&mut self, dest: &mut [u8]) {
//!         for b in dest { self.0 = self.0.wrapping_add(1); *b = self.0; }
//!     }
//! }
//!
//! let room = RoomId::new("team-42")?;
//! let secret = RoomKey::generate_secret(&mut Counter(0));
//! let keys = RoomKeys::derive(&RoomKey::from_secret(&secret)?, room.clone());
//! let config = ClientConfig::new(room, DeviceId([1; 16]), SessionId([2; 16]));
//! let mut client = Client::new(config, keys, Box::new(Counter(9)));
//!
//! client.handle_start(Millis(0));
//! assert_eq!(client.poll(), Some(Output::Connect));
//! client.handle_socket_opened(Millis(40));
//! // The relay's first frame is a challenge; the client answers it with a signed HELLO.
//! let challenge = RelayFrame::Challenge { challenge: [7; 32] }.encode()?;
//! client.handle_frame(Millis(41), WallMillis(1_700_000_000_000), &challenge);
//! let mut sent_hello = false;
//! while let Some(out) = client.poll() {
//!     if let Output::Send(_) = out { sent_hello = true; }
//! }
//! assert!(sent_hello);
//! assert_eq!(client.status(), &Status::Syncing);
//! # Ok::<(), sealsync_core::Error>(())
//! ```

use alloc::boxed::Box;
use alloc::collections::{BTreeSet, VecDeque};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use serde::Serialize;
use zeroize::Zeroizing;

use crate::backoff::Backoff;
use crate::envelope::{EnvelopeHeader, EnvelopeKind};
use crate::error::{Error, Result};
use crate::hlc::{effective, Clock, Hlc};
use crate::ids::{ChannelTag, DeviceId, Entropy, Millis, RoomId, SessionId, WallMillis};
use crate::kdf::{RoomKey, RoomKeys};
use crate::limits::{Pace, RelayLimits, TokenBucket, HISTORY_FULL_RETRY_MS};
use crate::merge::{
    batch_len, decode_event_body, encode_event_body, BatchItem, Change, Op, Replica, StampedOp,
};
use crate::outbox::{Outbox, OutboxEntry, MAX_OUTBOX_ENTRIES};
use crate::replay::ReplayGuard;
use crate::roster::{
    Member, MemberFrame, Roster, MEMBER_ANNOUNCE_EVERY_MS, MEMBER_MIN_INTERVAL_MS,
};
use crate::seal::{Opener, SessionSealer, MAX_BODY_LEN};
use crate::wire::{self, Access, ClientFrame, Refusal, RelayErrorCode, RelayFrame};

/// The channel tag of every event and snapshot: they belong to the whole room. Channel
/// tags filter ephemeral frames only (PROTOCOL.md, "Channels").
pub const ROOM_TAG: ChannelTag = ChannelTag([0; 16]);

/// Warning code: an event whose sender counter was already seen was dropped (a replay).
pub const WARNING_REPLAY: &str = "REPLAY";
/// Warning code: the relay's catch-up left the same hole twice; the client waits for the
/// next connection instead of asking again.
pub const WARNING_HISTORY_GAP: &str = "HISTORY_GAP";
/// Warning code: the relay holds fewer events than this replica has seen (the room's
/// history was deleted, e.g. after it stayed empty past the relay's idle TTL, or reset).
/// The client keeps its state, reads the relay's new history from its start, and uploads
/// its state as the room's snapshot once it can.
pub const WARNING_HISTORY_RESET: &str = "HISTORY_RESET";
/// The warning codes the client emits besides [`Error::code`]s and relay error names.
pub const WARNING_CODES: &[&str] = &[
    WARNING_REPLAY,
    WARNING_HISTORY_GAP,
    WARNING_HISTORY_RESET,
    WARNING_CONNECTION_REFUSED,
];
/// Warning code: the relay refused this client before the socket opened (HTTP 403 on the
/// presence address after a failed handshake: a missing, expired or rejected token, a ban,
/// a denied guest); the status becomes `Forbidden`.
pub const WARNING_CONNECTION_REFUSED: &str = "CONNECTION_REFUSED";

/// With [`ClientConfig::keep_history`], a local snapshot replaces the kept events after
/// this many kept events (default of [`ClientConfig::keep_snapshot_every`]).
pub const KEEP_SNAPSHOT_EVERY: u64 = 1_000;

/// How long the client waits after a non-fatal `RATE_LIMITED` `ERROR` (a frame other than a
/// publish was refused) before it sends again.
pub const RATE_LIMITED_PAUSE_MS: u64 = 1_000;

/// The most published events in flight (sent, not yet acknowledged) on one connection.
pub const MAX_IN_FLIGHT: usize = 128;

/// Tunables of a [`Client`]. [`ClientConfig::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The room.
    pub room: RoomId,
    /// This replica's stable id.
    pub device: DeviceId,
    /// This session's random id (new per page load).
    pub session: SessionId,
    /// The channel whose ephemeral frames this client sends and receives (default
    /// `"main"`). Stored changes belong to the whole room, whatever the channel.
    pub channel: String,
    /// Upload an encrypted snapshot every this many stored events (default 500).
    pub snapshot_every: u64,
    /// Send a heartbeat `ping` after this long without traffic (default 15 s).
    pub heartbeat_interval_ms: u64,
    /// Declare the connection dead when a `ping` gets no answer for this long (default 10 s).
    pub heartbeat_timeout_ms: u64,
    /// Give up on a socket that has not opened after this long (default 10 s).
    pub connect_timeout_ms: u64,
    /// A connection that stayed live this long resets the backoff (default 10 s).
    pub healthy_after_ms: u64,
    /// Emit [`Output::Keep`] for everything the shell should keep so that a later session
    /// starts from this one's state ([`Client::restore_history`]); default `false`. Nothing
    /// is kept before this client has proof that its key is the room's (a wrong password
    /// never overwrites what was kept): a restored history that opened (kept on as it is),
    /// an envelope from the relay that opened (a relay snapshot, kept as it came, or else a
    /// snapshot of the state so far), or the room going live (a snapshot of the state).
    pub keep_history: bool,
    /// With `keep_history`: a local snapshot after this many kept events
    /// ([`KEEP_SNAPSHOT_EVERY`]).
    pub keep_snapshot_every: u64,
    /// Take part in who is online (`crate::roster`; default `true`): follow the room tag in
    /// `HELLO`, announce this session (and its profile) to the other members, list them.
    /// Off, the client does neither, and its envelope counters are used by its changes and
    /// ephemeral payloads only.
    pub members: bool,
}

impl ClientConfig {
    /// The defaults for `room`, `device` and `session`.
    #[must_use]
    pub fn new(room: RoomId, device: DeviceId, session: SessionId) -> Self {
        Self {
            room,
            device,
            session,
            channel: String::from("main"),
            members: true,
            snapshot_every: 500,
            heartbeat_interval_ms: 15_000,
            heartbeat_timeout_ms: 10_000,
            connect_timeout_ms: 10_000,
            healthy_after_ms: 10_000,
            keep_history: false,
            keep_snapshot_every: KEEP_SNAPSHOT_EVERY,
        }
    }
}

/// What the application sees of the connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(
    tag = "state",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
pub enum Status {
    /// Not started.
    Idle,
    /// A socket is being opened (`attempt` 0 is the first try).
    Connecting {
        /// Attempts since the last healthy connection.
        attempt: u32,
    },
    /// Connected; catching up on history.
    Syncing,
    /// Connected as a guest waiting for the room's owner to let you in (`WELCOME` said
    /// `access` pending): the relay sends no history and no change until then, local
    /// changes are kept (shown, in the outbox) and sent once admitted. Admitted (`ACCESS`),
    /// the client goes [`Status::Syncing`], then [`Status::Live`]; turned away, the relay
    /// closes with 4003 ([`Status::Forbidden`]).
    Pending,
    /// Caught up; changes flow both ways.
    Live,
    /// Waiting before the next attempt.
    Reconnecting {
        /// Milliseconds until the next attempt.
        in_ms: u64,
        /// Attempts since the last healthy connection.
        attempt: u32,
    },
    /// The browser reports no network; the next attempt waits for it to come back.
    Offline,
    /// Terminal: the room exists with another password or secret. [`Client::rekey`] with
    /// the right one starts it again.
    WrongPassword,
    /// Terminal: the room moved to a new key (a member rotated it: "the room password
    /// changed"); this client's key is no longer the room's. [`Client::rekey`] with the new
    /// password or secret starts it again, keeping its state and unsent changes.
    Rotated,
    /// Terminal: the relay refused this user for this room (auth, ban, a pending guest
    /// denied); a fatal `FORBIDDEN`/`BANNED` error comes as a warning with the relay's
    /// message first.
    Forbidden,
    /// Terminal: left, or a protocol mismatch; `code` says which (`LEFT`, `WIRE_VERSION`).
    Closed {
        /// Why.
        code: String,
    },
}

impl Status {
    /// Whether the client has stopped for good (no more retries).
    #[must_use]
    pub const fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::WrongPassword | Self::Rotated | Self::Forbidden | Self::Closed { .. }
        )
    }
}

/// Something for the application.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", content = "value", rename_all = "camelCase")]
pub enum ClientEvent {
    /// Remote changes that altered the state (local ones are returned by
    /// [`Client::handle_local_op`]).
    Changes(Vec<Change>),
    /// The connection status changed.
    Status(Status),
    /// How many sockets are in the room, this one included.
    Presence(u32),
    /// Who is online changed ([`Client::members`]): this client first while live, then the
    /// other members heard from, with their profiles (`crate::roster`).
    Members(Vec<Member>),
    /// The number of local changes the relay has not acknowledged
    /// ([`Client::pending_changes`]) changed; it comes after the other outputs of the input
    /// that changed it.
    Pending(usize),
    /// A message pushed by the application backend through the relay. **Not encrypted.**
    Notify(String),
    /// An ephemeral payload (cursor, typing) from another member, decrypted.
    Ephemeral {
        /// The payload as sent.
        body: Vec<u8>,
    },
    /// The relay refused local changes for good (or the member may not change the room):
    /// they left the outbox and their local effect was rolled back (the rollback comes as
    /// a [`ClientEvent::Changes`] just before this event).
    Rejected {
        /// The stable code (`READ_ONLY`, `TOO_LARGE`, `BAD_FRAME`, …).
        code: String,
        /// The relay's explanation.
        message: String,
        /// The refused operations.
        ops: Vec<Op>,
    },
    /// The relay carried out this client's [`Client::rotate`]: the room is at key epoch
    /// `epoch`, under the new key, which this client now uses.
    Rotated {
        /// The room's new key epoch.
        epoch: u32,
    },
    /// Another member rotated the room's key and had handed the new key over to the
    /// members online ([`Client::rotate`] with `hand_over`): this client uses it and
    /// connects again (no [`Status::Rotated`]). `secret` is the new room key's secret form
    /// (for a share link); its `Debug` shows nothing.
    KeyHandedOver {
        /// The room's new key epoch.
        epoch: u32,
        /// The new room key, as a room secret.
        #[serde(skip)]
        secret: HandedSecret,
    },
    /// This client's [`Client::rotate`] was not carried out (the room keeps its key).
    RotationFailed {
        /// The stable code (`READ_ONLY`, `NOT_CAUGHT_UP`, `TOO_LARGE`, `ROOM_CLOSED`, …).
        code: String,
        /// Why.
        message: String,
    },
    /// Something was dropped or refused; nothing the user did is lost.
    Warning {
        /// A stable code (`DECRYPT_FAILED`, `MALFORMED_FRAME`, `HISTORY_FULL`, …).
        code: String,
        /// A readable explanation.
        message: String,
    },
}

/// A room secret handed over in a rotation ([`ClientEvent::KeyHandedOver`]): zeroized on
/// drop, and its `Debug` prints no key material.
#[derive(Clone, PartialEq, Eq)]
pub struct HandedSecret(pub Zeroizing<String>);

impl fmt::Debug for HandedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HandedSecret(..)")
    }
}

/// An instruction for the shell. See the module docs for what to do with each.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Open a socket to the relay.
    Connect,
    /// Send this binary frame.
    Send(Vec<u8>),
    /// Send the text heartbeat `ping`.
    SendPing,
    /// Close the current socket with this code and forget it.
    Close {
        /// The close code.
        code: u16,
    },
    /// Arm the timer for this instant.
    WakeAt(Millis),
    /// Hand this to the application.
    Event(ClientEvent),
    /// The outbox changed: persist [`Client::outbox_envelopes`].
    OutboxChanged,
    /// Keep this (only with [`ClientConfig::keep_history`]): the local history a later
    /// session restores with [`Client::restore_history`].
    Keep(Kept),
    /// The socket failed before it opened (close code [`wire::CLOSE_ABNORMAL`]), which a
    /// browser reports alike for "unreachable" and "refused with HTTP 403": ask the room's
    /// presence address ([`wire::PRESENCE_ACTION`]) with the same token and report the answer
    /// with [`Client::handle_probe`].
    Probe,
    /// The room went live with this key, so the envelopes adopted from these sessions
    /// ([`Client::adopt_outboxes`]) opened under the right one: persist
    /// [`Client::outbox_envelopes`] (which holds them) and delete these sessions' records.
    ForgetOutboxes(Vec<String>),
}

/// Part of the local history (ciphertext, as the relay stores it): the last snapshot and the
/// events after it, from which [`Client::restore_history`] rebuilds `confirmed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kept {
    /// A stored event this replica applied (or could not open: it is kept so that the
    /// cursor passes it).
    Event {
        /// Its sequence number.
        seq: u64,
        /// The relay's time when it was stored (effective stamps depend on it).
        relay_time: u64,
        /// The envelope.
        envelope: Vec<u8>,
    },
    /// A snapshot of everything up to `seq`: it replaces the whole kept history (the
    /// snapshot and every kept event; after a history reset, events above `seq` belong to
    /// the old numbering).
    Snapshot {
        /// The last sequence number it covers.
        seq: u64,
        /// The envelope (kind `Snapshot`).
        envelope: Vec<u8>,
    },
}

/// How long a key handed over by a member (a `key` member frame) stays usable: it comes
/// right before the `ROTATE` that uses it, so a rotation that closes this client later than
/// this is not the one it was handed over for (and the status is `Rotated`).
pub const HAND_OVER_VALID_MS: u64 = 10_000;

/// The most times a client builds its rotation snapshot again because the room's head
/// moved (`NOT_CAUGHT_UP`) before it gives the rotation up.
pub const MAX_ROTATION_ATTEMPTS: u32 = 8;

/// A rotation asked for with [`Client::rotate`].
struct Rotation {
    /// The new keys, at the new epoch.
    keys: RoomKeys,
    state: RotationState,
    /// `ROTATE`s sent.
    attempts: u32,
    /// A `ROTATE` went out on this connection and no answer said whether it was carried
    /// out (a rate refusal may have been the hand-over's).
    sent_here: bool,
    /// The new key's secret, handed to the members online before the `ROTATE` (only when
    /// the application asked for it).
    hand_over: Option<Zeroizing<String>>,
    /// The last `ROTATE`'s snapshot (`upto_seq`, envelope): the local history once it is
    /// carried out.
    snapshot: Option<(u64, Vec<u8>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RotationState {
    /// Not sent: waits to be live, caught up, with no publish in flight.
    Waiting,
    /// `ROTATE` sent on this connection; the answer is `KEY_EPOCH` (carried out) or an
    /// `ERROR`.
    Sent,
    /// The connection closed before the answer: the next `HELLO` tries the new key.
    InDoubt,
    /// That `HELLO` was accepted (`WELCOME`): the room is under the new key; the rotation is
    /// complete at the epoch the relay says next (`KEY_EPOCH`, or 0).
    Proven,
}

/// Where the connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conn {
    Idle,
    Connecting {
        deadline: Millis,
    },
    Open {
        live_since: Option<Millis>,
        last_rx: Millis,
        ping_sent: Option<Millis>,
    },
    /// The socket failed before it opened; the shell asks whether the relay refuses us.
    Probing {
        deadline: Millis,
    },
    Waiting {
        until: Millis,
    },
    Offline,
    Stopped,
}

/// The connection machine for one room. See the module docs for the calling order.
///
/// It keeps two states: `confirmed`, what the relay has stored (snapshots, events, and this
/// client's own acknowledged changes at the stamps everyone merges them with), and the
/// `view` the application reads: `confirmed` plus every local change not yet acknowledged.
/// The view exists only while something is pending; a refused change is rolled back by
/// rebuilding it from `confirmed` and the changes still pending.
pub struct Client {
    config: ClientConfig,
    keys: RoomKeys,
    /// The ephemeral channel's tag.
    channel: ChannelTag,
    sealer: SessionSealer,
    opener: Opener,
    entropy: Box<dyn Entropy>,
    confirmed: Replica,
    view: Option<Replica>,
    /// Local changes not sealed yet, in groups that go into one envelope each at most
    /// (one change, or one transaction).
    staged: Vec<Vec<BatchItem>>,
    /// The open transaction's changes, and how deep `begin_transaction` calls are nested.
    tx: Option<Vec<BatchItem>>,
    tx_depth: u32,
    clock: Clock,
    outbox: Outbox,
    backoff: Backoff,
    conn: Conn,
    status: Status,
    access: Access,
    /// What the relay announced in the last `WELCOME`.
    limits: Option<RelayLimits>,
    /// This connection's pace, mirroring the relay's bucket (with a margin).
    bucket: TokenBucket,
    /// No publish goes out before this instant (pacing, or the relay's retry hint).
    paused_until: Option<Millis>,
    /// A `SYNC` the relay refused for the rate: sent again once the pause is over.
    sync_after_pause: bool,
    /// Every sequence number up to here has been seen (applied, acked or skipped).
    last_seq: u64,
    /// Sequences above `last_seq` already seen (arrived ahead of a hole).
    seen_above: BTreeSet<u64>,
    /// Sequence of the last snapshot known to be stored on the relay.
    snapshot_seq: u64,
    /// Which `(session, counter)` pairs have been applied: a second one is a replay.
    replay: ReplayGuard,
    sync_requested: bool,
    /// Whether this connection's `HELLO` went out (after the relay's `CHALLENGE`).
    hello_sent: bool,
    /// `last_seq` when the last `SYNC` went out on this connection.
    synced_from: Option<u64>,
    /// Events kept since the last local snapshot ([`ClientConfig::keep_history`]).
    kept_since_snapshot: u64,
    /// Whether [`Output::Keep`]s flow (see [`ClientConfig::keep_history`]).
    keeping: bool,
    /// The pending count the last [`ClientEvent::Pending`] carried.
    announced_pending: usize,
    /// The relay's history was reset: upload this replica's state as the room's snapshot
    /// as soon as the room has an event to anchor it to.
    reseed: bool,
    /// The `token` of the last `CAUGHT_UP` on this connection: every `SYNC` carries it.
    sync_token: u64,
    /// Who is online (`crate::roster`), and when this client announces itself next.
    roster: Roster,
    next_announce: Option<Millis>,
    /// When this client last announced itself, and whether the next announcement asks.
    last_announce: Option<Millis>,
    announce_ask: bool,
    /// The member list changed since the last [`ClientEvent::Members`].
    members_changed: bool,
    /// Sessions whose outboxes were adopted: forgotten once live ([`Output::ForgetOutboxes`]).
    adopted: Vec<String>,
    /// Sessions whose stored outboxes are under another key (reported once, never adopted).
    unreadable_outboxes: Vec<String>,
    /// This connection's `CHALLENGE` (a `ROTATE` signs it too).
    challenge: Option<[u8; crate::member::CHALLENGE_LEN]>,
    /// A rotation asked for with [`Client::rotate`], until the relay carried it out.
    rotation: Option<Rotation>,
    /// A key another member handed over for the epoch after this one (a `key` member frame),
    /// used if the room's rotation shuts this client out.
    handed: Option<(u32, Zeroizing<String>, Millis)>,
    /// This connection proves a handed-over key: a refusal means the room is not under it
    /// (status `Rotated`, not `WrongPassword`).
    on_handed_key: bool,
    /// Between `WELCOME` and the next frame that is not `KEY_EPOCH`: the room's key epoch
    /// as said so far (0 unless a `KEY_EPOCH` follows the `WELCOME`).
    welcome_epoch: Option<u32>,
    /// The relay has said which key epoch the room is at (after a `WELCOME`), so restored
    /// or adopted changes under another epoch are sealed again at once.
    epoch_known: bool,

    armed: Option<Millis>,
    outputs: VecDeque<Output>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("room", &self.config.room)
            .field("status", &self.status)
            .field("last_seq", &self.last_seq)
            .field("outbox", &self.outbox.len())
            .field("staged", &self.staged.len())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `config.room` holding `keys`, drawing nonces and jitter from `entropy`.
    #[must_use]
    pub fn new(config: ClientConfig, keys: RoomKeys, entropy: Box<dyn Entropy>) -> Self {
        let channel = keys.channel_tag(&config.channel);
        let sealer = SessionSealer::new(&keys, config.session);
        let opener = Opener::new(&keys);
        let clock = Clock::new(config.device);
        Self {
            config,
            keys,
            channel,
            sealer,
            opener,
            entropy,
            confirmed: Replica::default(),
            view: None,
            staged: Vec::new(),
            tx: None,
            tx_depth: 0,
            clock,
            outbox: Outbox::new(),
            backoff: Backoff::new(),
            conn: Conn::Idle,
            status: Status::Idle,
            access: Access::Write,
            limits: None,
            bucket: TokenBucket::full(
                Pace {
                    burst: 1,
                    per_second: 1,
                },
                0,
            ),
            paused_until: None,
            sync_after_pause: false,
            last_seq: 0,
            seen_above: BTreeSet::new(),
            snapshot_seq: 0,
            replay: ReplayGuard::new(),
            sync_requested: false,
            hello_sent: false,
            synced_from: None,
            kept_since_snapshot: 0,
            keeping: false,
            announced_pending: 0,
            reseed: false,
            sync_token: 0,
            roster: Roster::default(),
            next_announce: None,
            last_announce: None,
            announce_ask: false,
            members_changed: false,
            adopted: Vec::new(),
            unreadable_outboxes: Vec::new(),
            challenge: None,
            rotation: None,
            handed: None,
            on_handed_key: false,
            welcome_epoch: None,
            epoch_known: false,

            armed: None,
            outputs: VecDeque::new(),
        }
    }

    /// Moves the room to `keys` (derived from a new password or secret for the same room)
    /// at the next key epoch, removing whoever knows only the current one
    /// (PROTOCOL.md, "Key rotation").
    ///
    /// Once live, caught up and with no publish in flight, the client sends `ROTATE`: the
    /// new member key, proven by the current one, and the room's state as a snapshot under
    /// the new key. Local changes wait meanwhile. The relay stores the snapshot, drops the
    /// older events and closes every other socket ([`Status::Rotated`]); then this client
    /// uses the new keys, seals its unsent changes again under them and reports
    /// [`ClientEvent::Rotated`]. A refusal reports [`ClientEvent::RotationFailed`] and keeps
    /// the current key.
    ///
    /// The new key reaches nobody through this client unless `hand_over`: then a `key`
    /// member frame sealed under the current key carries it to every member online that
    /// takes part in who is online, just before the `ROTATE`, and they go on under it
    /// ([`ClientEvent::KeyHandedOver`]). A rotation meant to remove someone must not hand
    /// it over: whoever is online with the current key gets it. Otherwise the members who
    /// stay get the new password from the application and call [`Client::rekey`].
    ///
    /// # Errors
    /// [`Error::Rotation`] when the client has stopped, a rotation is under way, or `key`
    /// is the current key; [`Error::ReadOnly`] when this member may not change the room.
    pub fn rotate(&mut self, now: Millis, key: &RoomKey, hand_over: bool) -> Result<()> {
        self.seal_staged();
        let refused = |reason| Err(Error::Rotation { reason });
        if self.status.is_terminal() {
            return refused("the room is closed");
        }
        if self.rotation.is_some() {
            return refused("a rotation is already under way");
        }
        let mut keys = RoomKeys::derive(key, self.keys.room().clone());
        if keys.member_key() == self.keys.member_key() {
            return refused("the new password or secret is the room's current one");
        }
        if self.access == Access::ReadOnly {
            return Err(Error::ReadOnly);
        }
        let Some(epoch) = self.keys.epoch().checked_add(1) else {
            return refused("the room is at the last key epoch");
        };
        keys.set_epoch(epoch);
        self.rotation = Some(Rotation {
            keys,
            state: RotationState::Waiting,
            attempts: 0,
            sent_here: false,
            snapshot: None,
            hand_over: hand_over.then(|| Zeroizing::new(key.to_secret())),
        });
        self.flush_outbox(now);
        self.rearm(now);
        Ok(())
    }

    /// Starts again under `key` after [`Status::Rotated`] (the new password or secret) or
    /// [`Status::WrongPassword`] (another try): the state and the unsent changes stay (sealed
    /// again under `key`), and the client connects as after [`Client::handle_start`].
    ///
    /// # Errors
    /// [`Error::Rotation`] in any other status.
    pub fn rekey(&mut self, now: Millis, key: &RoomKey) -> Result<()> {
        self.seal_staged();
        if !matches!(self.status, Status::Rotated | Status::WrongPassword) {
            return Err(Error::Rotation {
                reason:
                    "a new key is taken only after the room rotated its key or refused this one",
            });
        }
        self.keys = RoomKeys::derive(key, self.keys.room().clone());
        self.on_handed_key = false;
        self.handed = None;
        self.epoch_known = false;
        self.rekeyed(true);
        // The kept history is sealed under the old key: once the new one is proven (live),
        // a local snapshot under it replaces that history.
        self.keeping = false;
        self.backoff.reset();
        self.conn = Conn::Idle;
        self.handle_start(now);
        Ok(())
    }

    /// The next instruction for the shell, or `None` when there is nothing to do.
    pub fn poll(&mut self) -> Option<Output> {
        if let Some(output) = self.outputs.pop_front() {
            return Some(output);
        }
        let pending = self.pending_changes();
        if pending != self.announced_pending {
            self.announced_pending = pending;
            return Some(Output::Event(ClientEvent::Pending(pending)));
        }
        if self.members_changed {
            self.members_changed = false;
            if !self.config.members {
                return None;
            }
            return Some(Output::Event(ClientEvent::Members(self.members())));
        }
        None
    }

    /// Who is online: this client first while it is live, then every other member heard
    /// from in the last [`crate::roster::MEMBER_EXPIRES_AFTER_MS`], by session id; empty
    /// without [`ClientConfig::members`].
    #[must_use]
    pub fn members(&self) -> Vec<Member> {
        if !self.config.members {
            return Vec::new();
        }
        let own = self.is_live().then_some(self.config.session);
        self.roster.list(own)
    }

    /// Sets this client's profile (any JSON the application chooses, at most
    /// [`crate::roster::MAX_PROFILE_LEN`] bytes) and announces it when live.
    ///
    /// # Errors
    /// [`Error::InvalidMember`] when the profile is too long; nothing changes then.
    pub fn set_profile(&mut self, now: Millis, profile: serde_json::Value) -> Result<()> {
        self.seal_staged();
        self.roster.set_profile(profile)?;
        self.members_changed = true;
        if self.is_live() {
            self.announce(now, false);
        }
        self.rearm(now);
        Ok(())
    }

    /// The replicated state as this replica shows it: what the relay stored plus every
    /// local change not yet acknowledged.
    #[must_use]
    pub fn replica(&self) -> &Replica {
        self.view.as_ref().unwrap_or(&self.confirmed)
    }

    /// What the relay has stored, as far as this replica has seen it (no pending change).
    #[must_use]
    pub const fn confirmed(&self) -> &Replica {
        &self.confirmed
    }

    /// The connection status.
    #[must_use]
    pub const fn status(&self) -> &Status {
        &self.status
    }

    /// What this member may do, as the relay last said (`Write` until it says otherwise).
    #[must_use]
    pub const fn access(&self) -> Access {
        self.access
    }

    /// The limits the relay announced on the current or last connection.
    #[must_use]
    pub const fn limits(&self) -> Option<RelayLimits> {
        self.limits
    }

    /// Highest sequence number up to which this client has seen every stored event.
    #[must_use]
    pub const fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The unacknowledged envelopes, oldest first (ciphertext; safe to persist). Changes
    /// staged since the last flush are not in it yet.
    #[must_use]
    pub fn outbox_envelopes(&self) -> Vec<Vec<u8>> {
        self.outbox.envelopes()
    }

    /// Number of unacknowledged envelopes.
    #[must_use]
    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    /// Number of local changes (operations) the relay has not acknowledged, staged ones
    /// included.
    #[must_use]
    pub fn pending_changes(&self) -> usize {
        self.outbox.changes()
            + self.staged.iter().map(Vec::len).sum::<usize>()
            + self.tx.as_ref().map_or(0, Vec::len)
    }

    /// The room's fingerprint, for comparing out of band.
    #[must_use]
    pub fn fingerprint(&self) -> String {
        self.keys.fingerprint()
    }

    /// The longest body one envelope may have: [`MAX_BODY_LEN`], or less when the relay
    /// announced a smaller frame limit.
    #[must_use]
    pub fn max_body_len(&self) -> usize {
        self.limits
            .map_or(MAX_BODY_LEN, |l| l.max_body_len())
            .min(MAX_BODY_LEN)
    }

    /// Puts back envelopes persisted by an earlier session: each is opened with this room's
    /// keys, applied locally (so the user sees their unsent edits at once) and queued to be
    /// sent. Returns the changes they made. An envelope that does not open (another room's,
    /// or damaged) is skipped and reported as a [`ClientEvent::Warning`]; the others are kept.
    pub fn restore_outbox(&mut self, wall: WallMillis, envelopes: Vec<Vec<u8>>) -> Vec<Change> {
        let mut changes = Vec::new();
        let mut no_room = 0_usize;
        for envelope in envelopes {
            match self.open_event(&envelope) {
                Ok((session, counter, hlc, ops)) => {
                    if self.outbox.contains(session, counter) {
                        continue;
                    }
                    if !self.outbox.has_room() {
                        no_room += 1;
                        continue;
                    }
                    self.clock.observe(hlc, wall);
                    let view = self.view_mut();
                    for op in &ops {
                        changes.extend(view.apply(op, true));
                    }
                    self.outbox.push(OutboxEntry {
                        session,
                        counter,
                        hlc,
                        items: ops.into_iter().map(BatchItem::new).collect(),
                        envelope,
                        sent: false,
                        // It may have reached the relay before the reload: never merged.
                        ever_sent: true,
                    });
                }
                Err(err) => self.warn(&err),
            }
        }
        if no_room > 0 {
            self.event(ClientEvent::Warning {
                code: String::from(Error::OutboxFull.code()),
                message: format!(
                    "{no_room} restored unsent changes did not fit the outbox \
                     ({MAX_OUTBOX_ENTRIES} entries) and were not applied"
                ),
            });
        }
        self.outputs.push_back(Output::OutboxChanged);
        if self.epoch_known {
            self.reseal_outbox(true);
        }
        changes
    }

    /// Adopts the persisted outboxes of other sessions of this room, `(session, envelopes)`,
    /// as [`Client::restore_outbox`] does, except those [`crate::outbox::adopts`] leaves
    /// alone (this session's own, and those of sessions still running: `live` lists them
    /// when the shell can tell). Their records are to be deleted only once the room is live
    /// ([`Output::ForgetOutboxes`]): until the relay accepted this key, a wrong password
    /// must not destroy unsent changes. Returns the changes they made.
    ///
    /// It may also be called later, when a session that was running has ended (its tab
    /// closed, or reloaded while this one runs): the envelopes go out with the next
    /// [`Client::handle_flush`], and when the room is live already the records are
    /// forgotten at once.
    pub fn adopt_outboxes(
        &mut self,
        wall: WallMillis,
        records: Vec<(String, Vec<Vec<u8>>)>,
        live: Option<&[String]>,
    ) -> Vec<Change> {
        let own = self.config.session.to_string();
        let mut envelopes = Vec::new();
        let mut left = Vec::new();
        let mut unreadable: Vec<String> = Vec::new();
        for (session, record) in records {
            if !crate::outbox::adopts(&session, &own, live) || self.adopted.contains(&session) {
                continue;
            }
            // A record is adopted whole or not at all: one whose envelopes would not all fit
            // the outbox stays where it is (and is never forgotten) for a later session.
            if self.outbox.len() + envelopes.len() + record.len() > MAX_OUTBOX_ENTRIES {
                left.push(session);
                continue;
            }
            // So does one sealed under another key (its first envelope does not open: the
            // room's key changed since, or this session's key is wrong): forgetting it would
            // lose those changes. (A damaged envelope among good ones is reported and
            // dropped as it is restored.)
            if record.first().is_some_and(|e| self.opener.open(e).is_err()) {
                if !self.unreadable_outboxes.contains(&session) {
                    self.unreadable_outboxes.push(session.clone());
                    unreadable.push(session);
                }
                continue;
            }
            envelopes.extend(record);
            self.adopted.push(session);
        }
        if !left.is_empty() {
            self.event(ClientEvent::Warning {
                code: String::from(Error::OutboxFull.code()),
                message: format!(
                    "the unsent changes of {} closed session(s) wait in storage: this \
                     session's outbox has no room for them yet",
                    left.len()
                ),
            });
        }
        if !unreadable.is_empty() {
            self.event(ClientEvent::Warning {
                code: String::from(Error::DecryptFailed.code()),
                message: format!(
                    "the unsent changes of {} closed session(s) are sealed under another key \
                     (the room's password or secret changed since?): they stay in storage, \
                     unsent",
                    unreadable.len()
                ),
            });
        }
        if envelopes.is_empty() {
            return Vec::new();
        }
        let changes = self.restore_outbox(wall, envelopes);
        if self.status == Status::Live {
            let adopted = core::mem::take(&mut self.adopted);
            self.outputs.push_back(Output::ForgetOutboxes(adopted));
        }
        changes
    }

    /// Puts back the local history an earlier session kept ([`Output::Keep`]): the snapshot
    /// (`(seq, envelope)`) and the events after it (`(seq, relay_time, envelope)`, in any
    /// order). Call it before [`Client::restore_outbox`] and [`Client::handle_start`]. The
    /// state is rebuilt as catch-up would rebuild it, and the next `HELLO` asks the relay
    /// only for what came after. Events from the first hole on are left out (the relay
    /// sends them). Returns the changes it made (no event fires for them), as
    /// [`Client::restore_outbox`] does.
    ///
    /// # Errors
    /// The snapshot's error when it does not open with this room's key (another key, or
    /// damaged); nothing was applied then. An event that does not open is passed over, as
    /// during catch-up.
    pub fn restore_history(
        &mut self,
        wall: WallMillis,
        snapshot: Option<(u64, Vec<u8>)>,
        mut events: Vec<(u64, u64, Vec<u8>)>,
    ) -> Result<Vec<Change>> {
        let mut changes = Vec::new();
        let snapshot_opened = snapshot.is_some();
        if let Some((seq, envelope)) = snapshot {
            let opened = self.opener.open(&envelope)?;
            if opened.header.kind != EnvelopeKind::Snapshot {
                return Err(Error::WrongKind {
                    found: opened.header.kind.as_u8(),
                });
            }
            let replica = Replica::from_snapshot(&opened.body)?;
            if let Some(raw) = replica.max_raw() {
                self.clock.observe(raw, wall);
            }
            changes = match self.view.as_mut() {
                Some(view) => {
                    let _ = self.confirmed.merge_snapshot(replica.clone());
                    view.merge_snapshot(replica)
                }
                None => self.confirmed.merge_snapshot(replica),
            };
            self.skip_to(seq.min(wire::MAX_SEQ));
        }
        let mut opened = snapshot_opened;
        events.sort_unstable_by_key(|e| e.0);
        for (seq, relay_time, envelope) in events {
            if seq <= self.last_seq {
                continue;
            }
            if seq != self.last_seq + 1 {
                break;
            }
            self.last_seq = seq;
            if let Ok((session, counter, hlc, ops)) = self.open_event(&envelope) {
                opened = true;
                if self.replay.accept(session, counter) {
                    self.clock.observe(hlc, wall);
                    let from_self = hlc.device == self.config.device;
                    changes.extend(self.apply_stored(&stored(ops, relay_time), from_self));
                }
            }
        }
        if opened {
            // The kept history opened with this key: it goes on from here as it is.
            self.start_keeping(false);
        }
        Ok(changes)
    }

    /// `confirmed` sealed as a snapshot up to [`Client::last_seq`], for a shell that starts
    /// keeping the history later than the client does (e.g. a browser tab that becomes the
    /// one writing it when another closes): keep it as [`Kept::Snapshot`], then every
    /// [`Output::Keep`] after it.
    ///
    /// # Errors
    /// Sealing failed (the body is over the envelope limit).
    pub fn history_snapshot(&mut self) -> Result<Kept> {
        let snapshot = self.confirmed.to_snapshot();
        let hlc = Hlc {
            device: self.config.device,
            ..Hlc::default()
        };
        let envelope = self.seal(EnvelopeKind::Snapshot, ROOM_TAG, hlc, &snapshot)?;
        self.kept_since_snapshot = 0;
        Ok(Kept::Snapshot {
            seq: self.last_seq,
            envelope,
        })
    }

    /// Starts connecting (from `Idle`; no-op otherwise).
    pub fn handle_start(&mut self, now: Millis) {
        self.seal_staged();
        if self.conn == Conn::Idle {
            self.connect(now);
        }
    }

    /// The socket asked for by [`Output::Connect`] is open.
    pub fn handle_socket_opened(&mut self, now: Millis) {
        self.seal_staged();
        if !matches!(self.conn, Conn::Connecting { .. }) {
            return;
        }
        self.conn = Conn::Open {
            live_since: None,
            last_rx: now,
            ping_sent: None,
        };
        self.sync_requested = false;
        self.synced_from = None;
        self.sync_token = 0;
        self.sync_after_pause = false;
        self.paused_until = None;
        self.outbox.mark_all_unsent();
        // HELLO waits for the relay's CHALLENGE: it signs it.
        self.hello_sent = false;
        self.set_status(Status::Syncing);
        self.rearm(now);
    }

    /// The relay's `CHALLENGE` (the first frame on a socket): answer with `HELLO`, signed.
    fn on_challenge(&mut self, challenge: &[u8; crate::member::CHALLENGE_LEN]) {
        if self.hello_sent {
            return;
        }
        self.hello_sent = true;
        self.challenge = Some(*challenge);
        // A ROTATE whose answer was lost with its connection (however it ended): the room
        // may be under the new key. Try it; a WRONG_VERIFIER says it was not (see
        // `on_relay_error`).
        if let Some(r) = &mut self.rotation {
            if r.state == RotationState::Sent || r.sent_here {
                r.state = RotationState::InDoubt;
            }
            r.sent_here = false;
        }
        let keys = match &self.rotation {
            Some(r) if r.state == RotationState::InDoubt => &r.keys,
            _ => &self.keys,
        };
        let channel = keys.channel_tag(&self.config.channel);
        let hello = ClientFrame::Hello {
            after_seq: self.last_seq,
            member_key: keys.member_key(),
            proof: keys.prove(challenge),
            // The room tag too: member frames (`crate::roster`) go to everyone.
            channels: if self.config.members && channel != ROOM_TAG {
                alloc::vec![channel, ROOM_TAG]
            } else {
                alloc::vec![channel]
            },
        };
        self.send(&hello);
    }

    /// The socket closed (or failed to open) with `code`.
    pub fn handle_socket_closed(&mut self, now: Millis, code: u16) {
        self.seal_staged();
        if !matches!(self.conn, Conn::Open { .. } | Conn::Connecting { .. }) {
            return;
        }
        self.challenge = None;
        if let Some(r) = &mut self.rotation {
            if r.state == RotationState::Sent {
                r.state = RotationState::InDoubt;
            }
        }
        if code == wire::CLOSE_WRONG_VERIFIER && self.rotation_not_carried_out(now) {
            return;
        }
        match code {
            wire::CLOSE_ROTATED => self.shut_out(now),
            wire::CLOSE_WRONG_VERIFIER if self.on_handed_key => self.stop(Status::Rotated),
            wire::CLOSE_ABNORMAL if matches!(self.conn, Conn::Connecting { .. }) => {
                // Unreachable, or refused before the upgrade: the probe tells which.
                self.conn = Conn::Probing {
                    deadline: now.plus(self.config.connect_timeout_ms),
                };
                self.outputs.push_back(Output::Probe);
                self.rearm(now);
            }
            wire::CLOSE_WRONG_VERIFIER => self.stop(Status::WrongPassword),
            wire::CLOSE_FORBIDDEN | wire::CLOSE_BANNED => self.stop(Status::Forbidden),
            wire::CLOSE_UNSUPPORTED_VERSION => self.stop(Status::Closed {
                code: String::from("WIRE_VERSION"),
            }),
            _ => self.schedule_reconnect(now),
        }
    }

    /// The shell could not even attempt the connection [`Output::Connect`] asked for (the
    /// application's token function failed, or the platform refused to open a socket):
    /// back off and retry, without a probe (nothing reached the relay).
    pub fn handle_connect_failed(&mut self, now: Millis) {
        self.seal_staged();
        if matches!(self.conn, Conn::Connecting { .. }) {
            self.schedule_reconnect(now);
        }
    }

    /// The answer to [`Output::Probe`]: `Some(body)` when the relay answered 403 (it
    /// refuses this client; `body` is its reason, maybe empty), `None` for any other answer
    /// or none. Refused: a [`WARNING_CONNECTION_REFUSED`] warning and the final status
    /// `Forbidden`; otherwise the client backs off and reconnects as after any failed
    /// connection. An answer after the probe's deadline (the connect timeout) is ignored:
    /// the client went on without it.
    pub fn handle_probe(&mut self, now: Millis, refused: Option<&str>) {
        self.seal_staged();
        if !matches!(self.conn, Conn::Probing { .. }) {
            return;
        }
        match refused {
            Some(reason) => {
                let reason = reason.trim();
                let message = if reason.is_empty() {
                    String::from("the relay refused this client (HTTP 403)")
                } else {
                    format!("the relay refused this client: {reason}")
                };
                self.event(ClientEvent::Warning {
                    code: String::from(WARNING_CONNECTION_REFUSED),
                    message,
                });
                self.stop(Status::Forbidden);
            }
            None => self.schedule_reconnect(now),
        }
    }

    /// A text message arrived (the heartbeat answer `pong`).
    pub fn handle_text(&mut self, now: Millis, text: &str) {
        if text == wire::HEARTBEAT_PONG {
            self.saw_traffic(now);
        }
    }

    /// A binary frame arrived. Frames that do not decode, or events that do not open, are
    /// dropped and reported as [`ClientEvent::Warning`]; they never stop the client.
    pub fn handle_frame(&mut self, now: Millis, wall: WallMillis, frame: &[u8]) {
        self.seal_staged();
        if !matches!(self.conn, Conn::Open { .. }) {
            return;
        }
        self.saw_traffic(now);
        let frame = match RelayFrame::decode(frame) {
            Ok(frame) => frame,
            Err(err) => return self.warn(&err),
        };
        if !matches!(
            frame,
            RelayFrame::Welcome { .. } | RelayFrame::KeyEpoch { .. }
        ) {
            if let Some(epoch) = self.welcome_epoch.take() {
                self.take_epoch(now, epoch);
            }
        }
        match frame {
            RelayFrame::Welcome {
                relay_time,
                presence,
                snapshot_seq,
                access,
                limits,
                ..
            } => {
                self.snapshot_seq = self.snapshot_seq.max(snapshot_seq);
                self.on_handed_key = false;
                if let Some(r) = &mut self.rotation {
                    if r.state == RotationState::InDoubt {
                        // The HELLO proved the new key and the relay took it.
                        r.state = RotationState::Proven;
                    }
                }
                // 0 unless a KEY_EPOCH follows (a room deleted and created again is at 0).
                self.welcome_epoch = Some(0);
                self.clock.set_offset(relay_time, wall);
                self.limits = Some(limits);
                // The relay's bucket for this socket started full and paid for HELLO.
                let pace = limits.client_pace();
                self.bucket = TokenBucket::full(pace, now.0);
                let _ = self.bucket.take(pace, now.0);
                self.event(ClientEvent::Presence(presence));
                self.set_access(now, access);
            }
            RelayFrame::Snapshot { seq, envelope } => self.on_snapshot(wall, seq, &envelope),
            RelayFrame::Event {
                seq,
                relay_time,
                envelope,
            } => self.on_event(now, wall, seq, relay_time, &envelope),
            RelayFrame::CaughtUp { head_seq, token } => self.on_caught_up(now, head_seq, token),
            RelayFrame::Ack {
                session,
                counter,
                seq,
                relay_time,
                ..
            } => self.on_ack(now, session, counter, seq, relay_time),
            RelayFrame::Refused {
                session,
                counter,
                code,
                retry_after_ms,
                message,
            } => self.on_refused(now, session, counter, code, retry_after_ms, message),
            RelayFrame::Access { access } => self.set_access(now, access),
            RelayFrame::Challenge { challenge } => self.on_challenge(&challenge),
            RelayFrame::Ephemeral { envelope } => match self.opener.open(&envelope) {
                Ok(opened) if opened.header.channel == ROOM_TAG && self.config.members => {
                    self.on_member_frame(now, opened.header.session, &opened.body);
                }
                Ok(opened) => self.event(ClientEvent::Ephemeral { body: opened.body }),
                Err(err) => self.warn(&err),
            },
            RelayFrame::Presence { count } => self.event(ClientEvent::Presence(count)),
            RelayFrame::Notify { json } => self.event(ClientEvent::Notify(json)),
            RelayFrame::Error {
                code,
                fatal,
                message,
            } => self.on_relay_error(now, code, fatal, message),
            RelayFrame::SnapshotStored { seq } => self.snapshot_seq = self.snapshot_seq.max(seq),
            RelayFrame::KeyEpoch { key_epoch } => self.on_key_epoch(now, key_epoch),
        }
        self.rearm(now);
    }

    /// The timer armed by [`Output::WakeAt`] fired (early or late calls are harmless).
    pub fn handle_timer(&mut self, now: Millis) {
        self.seal_staged();
        self.armed = None;
        match self.conn {
            Conn::Connecting { deadline } if now >= deadline => {
                self.outputs.push_back(Output::Close {
                    code: wire::CLOSE_HEARTBEAT_TIMEOUT,
                });
                self.schedule_reconnect(now);
            }
            Conn::Open {
                ping_sent: Some(sent),
                ..
            } if now.since(sent) >= self.config.heartbeat_timeout_ms => {
                self.outputs.push_back(Output::Close {
                    code: wire::CLOSE_HEARTBEAT_TIMEOUT,
                });
                self.schedule_reconnect(now);
            }
            Conn::Open {
                ping_sent: None,
                last_rx,
                live_since,
            } if now.since(last_rx) >= self.config.heartbeat_interval_ms => {
                self.conn = Conn::Open {
                    ping_sent: Some(now),
                    last_rx,
                    live_since,
                };
                self.outputs.push_back(Output::SendPing);
            }
            Conn::Probing { deadline } if now >= deadline => self.schedule_reconnect(now),
            Conn::Waiting { until } if now >= until => self.connect(now),
            _ => {}
        }
        if self.is_live() && self.next_announce.is_some_and(|at| now >= at) {
            self.announce(now, false);
        }
        if self.roster.expire(now) {
            self.members_changed = true;
        }
        self.flush_outbox(now);
        self.maybe_reset_backoff(now);
        self.rearm(now);
    }

    /// The browser says the network is back: retry at once instead of waiting.
    pub fn handle_online(&mut self, now: Millis) {
        self.seal_staged();
        if matches!(self.conn, Conn::Waiting { .. } | Conn::Offline) {
            self.connect(now);
        }
    }

    /// The browser says the network is gone: stop retrying until it is back.
    pub fn handle_offline(&mut self, _now: Millis) {
        self.seal_staged();
        if matches!(self.conn, Conn::Waiting { .. }) {
            self.conn = Conn::Offline;
            self.armed = None;
            self.set_status(Status::Offline);
        }
    }

    /// The application changed something: apply it at once and stage it; it is sealed
    /// into the outbox by the next [`Client::handle_flush`] (or any other input), kept
    /// until the relay acknowledges it, and sent when live. Returns what changed.
    ///
    /// # Errors
    /// Nothing changes when it fails:
    /// - [`Error::InvalidOperation`] when `op` is malformed,
    /// - [`Error::BodyTooLarge`] when it cannot fit one envelope under the relay's limit
    ///   ([`Client::max_body_len`]),
    /// - [`Error::OutboxFull`] when too many changes await the relay,
    /// - [`Error::ReadOnly`] when the relay said this member may not change the room.
    pub fn handle_local_op(
        &mut self,
        _now: Millis,
        wall: WallMillis,
        op: Op,
    ) -> Result<Vec<Change>> {
        if self.access == Access::ReadOnly {
            return Err(Error::ReadOnly);
        }
        if self.outbox.len() + self.staged.len() >= MAX_OUTBOX_ENTRIES {
            return Err(Error::OutboxFull);
        }
        op.validate()?;
        // A stamp the change then does not use is harmless: stamps only need to increase.
        let hlc = self.clock.tick(wall);
        let item = BatchItem::new(StampedOp {
            hlc: hlc.into(),
            op,
        });
        let len = batch_len(item.json.len(), 1);
        let max = self.max_body_len();
        if len > max {
            return Err(Error::BodyTooLarge { len, max });
        }
        let changes = self.view_mut().apply(&item.stamped, true);
        match self.tx.as_mut() {
            Some(tx) => tx.push(item),
            None => self.staged.push(alloc::vec![item]),
        }
        Ok(changes)
    }

    /// Seals every staged change into as few envelopes as the frame limit allows, puts
    /// them in the outbox and sends what the pace allows. Call it once after a burst of
    /// [`Client::handle_local_op`]s (an open transaction stays staged until committed).
    pub fn handle_flush(&mut self, now: Millis) {
        self.seal_staged();
        self.flush_outbox(now);
        self.rearm(now);
    }

    /// Opens a transaction: the changes until the matching [`Client::commit_transaction`]
    /// apply locally at once and go out as one envelope, applied all at once everywhere.
    /// Calls nest; only the outermost commit seals.
    pub fn begin_transaction(&mut self) {
        if self.tx_depth == 0 {
            self.tx = Some(Vec::new());
        }
        self.tx_depth = self.tx_depth.saturating_add(1);
    }

    /// Closes the transaction opened by [`Client::begin_transaction`] (the outermost one
    /// stages its changes as one group; [`Client::handle_flush`] seals it).
    ///
    /// # Errors
    /// [`Error::BodyTooLarge`] when the transaction's changes do not fit one envelope:
    /// then all of them are rolled back (the reverting changes come as a
    /// [`ClientEvent::Changes`] output) and nothing is sent.
    pub fn commit_transaction(&mut self) -> Result<()> {
        if self.tx_depth == 0 {
            return Ok(());
        }
        self.tx_depth -= 1;
        if self.tx_depth > 0 {
            return Ok(());
        }
        let items = self.tx.take().unwrap_or_default();
        if items.is_empty() {
            return Ok(());
        }
        let len = batch_len(items.iter().map(|i| i.json.len()).sum(), items.len());
        let max = self.max_body_len();
        if len > max {
            self.rebuild_view();
            return Err(Error::BodyTooLarge { len, max });
        }
        self.staged.push(items);
        Ok(())
    }

    /// Abandons the open transaction (all nesting levels): its changes are rolled back
    /// (the reverting changes come as a [`ClientEvent::Changes`] output).
    pub fn abort_transaction(&mut self) {
        self.tx_depth = 0;
        if self.tx.take().is_some_and(|items| !items.is_empty()) {
            self.rebuild_view();
        }
    }

    /// Sends an ephemeral payload (cursor, typing) to the others: sealed, never stored.
    /// Dropped silently when not live, or when the pace has no room for it (ephemeral by
    /// definition).
    ///
    /// # Errors
    /// [`Error::BodyTooLarge`], [`Error::SessionExhausted`].
    pub fn handle_ephemeral(&mut self, now: Millis, wall: WallMillis, body: &[u8]) -> Result<()> {
        let hlc = self.clock.tick(wall);
        let envelope = self.seal(EnvelopeKind::Ephemeral, self.channel, hlc, body)?;
        // Dropped while a ROTATE is unanswered: it is sealed under the key being replaced.
        if self.is_live() && self.access != Access::Pending && !self.rotation_unanswered() {
            if let Some(pace) = self.pace() {
                if self.bucket.ready(pace, now.0) {
                    let _ = self.bucket.take(pace, now.0);
                    self.send(&ClientFrame::Ephemeral { envelope });
                }
            }
        }
        Ok(())
    }

    /// The application leaves the room: close the socket and stop for good. The outbox is
    /// kept (persist it) so unsent changes go out on the next join.
    pub fn handle_leave(&mut self, _now: Millis) {
        self.seal_staged();
        if self.is_live() && self.config.members && self.access != Access::Pending {
            // Best effort: the others drop this member at once instead of after expiry.
            if let Ok(envelope) = self.seal_member(&MemberFrame::Left) {
                self.send(&ClientFrame::Ephemeral { envelope });
            }
        }
        let _ = self.roster.clear();
        self.next_announce = None;
        self.stop(Status::Closed {
            code: String::from("LEFT"),
        });
    }

    fn is_live(&self) -> bool {
        matches!(
            self.conn,
            Conn::Open {
                live_since: Some(_),
                ..
            }
        )
    }

    fn pace(&self) -> Option<Pace> {
        self.limits.map(|l| l.client_pace())
    }

    /// The view, made from `confirmed` when nothing was pending.
    fn view_mut(&mut self) -> &mut Replica {
        self.view.get_or_insert_with(|| self.confirmed.clone())
    }

    fn nothing_pending(&self) -> bool {
        self.outbox.is_empty() && self.staged.is_empty() && self.tx.is_none()
    }

    /// Drops the view once nothing is pending: it then equals `confirmed` (merging is
    /// commutative and idempotent, and every local change was confirmed at its own stamp).
    fn drop_view_if_idle(&mut self) {
        if self.nothing_pending() {
            if let Some(view) = self.view.take() {
                debug_assert_eq!(view, self.confirmed, "the view drifted from confirmed");
            }
        }
    }

    /// Rebuilds the view from `confirmed` and the changes still pending, and reports the
    /// difference to the application (a rollback, or a confirmed stamp that differs from
    /// the local one).
    fn rebuild_view(&mut self) {
        let mut fresh = self.confirmed.clone();
        let pending = self
            .outbox
            .iter()
            .flat_map(|e| e.items.iter())
            .chain(self.staged.iter().flatten())
            .chain(self.tx.iter().flatten());
        for item in pending {
            let _ = fresh.apply(&item.stamped, true);
        }
        let changes = self.replica().diff(&fresh);
        self.view = if self.nothing_pending() {
            None
        } else {
            Some(fresh)
        };
        if !changes.is_empty() {
            self.event(ClientEvent::Changes(changes));
        }
    }

    /// A member frame from `session` arrived (an ephemeral envelope on [`ROOM_TAG`]).
    fn on_member_frame(&mut self, now: Millis, session: SessionId, body: &[u8]) {
        if session == self.config.session {
            return;
        }
        match MemberFrame::decode(body) {
            Ok(MemberFrame::Key { epoch, secret }) => {
                let secret = Zeroizing::new(secret);
                if self.keys.epoch().checked_add(1) == Some(epoch) {
                    match RoomKey::from_secret(&secret) {
                        Ok(_) => self.handed = Some((epoch, secret, now)),
                        Err(err) => self.warn(&err),
                    }
                }
            }
            Ok(frame) => {
                let heard = self.roster.heard(now, session, frame);
                self.members_changed |= heard.changed;
                if heard.asked && self.is_live() {
                    self.announce(now, false);
                }
            }
            Err(err) => self.warn(&err),
        }
    }

    /// Announces this client (`here`; with `ask`, asking the others to announce
    /// themselves), at most once per [`MEMBER_MIN_INTERVAL_MS`] (a later one waits, and
    /// keeps its `ask`); the next regular one comes [`MEMBER_ANNOUNCE_EVERY_MS`] after it.
    /// Member frames stay out of the publish pace: at one a second they fit the margin it
    /// leaves under the relay's rate ([`RelayLimits::client_pace`]). A pending guest does
    /// not announce itself.
    fn announce(&mut self, now: Millis, ask: bool) {
        if !self.config.members {
            return;
        }
        self.announce_ask |= ask;
        if self.access == Access::Pending || self.rotation_unanswered() {
            self.next_announce = Some(now.plus(MEMBER_ANNOUNCE_EVERY_MS));
            return;
        }
        if let Some(last) = self.last_announce {
            if now.since(last) < MEMBER_MIN_INTERVAL_MS {
                self.next_announce = Some(last.plus(MEMBER_MIN_INTERVAL_MS));
                return;
            }
        }
        let frame = self.roster.here(core::mem::take(&mut self.announce_ask));
        match self.seal_member(&frame) {
            Ok(envelope) => self.send(&ClientFrame::Ephemeral { envelope }),
            Err(err) => self.warn(&err),
        }
        self.last_announce = Some(now);
        self.next_announce = Some(now.plus(MEMBER_ANNOUNCE_EVERY_MS));
    }

    fn seal_member(&mut self, frame: &MemberFrame) -> Result<Vec<u8>> {
        let hlc = Hlc {
            device: self.config.device,
            ..Hlc::default()
        };
        self.seal(EnvelopeKind::Ephemeral, ROOM_TAG, hlc, &frame.encode())
    }

    fn seal(
        &mut self,
        kind: EnvelopeKind,
        channel: ChannelTag,
        hlc: Hlc,
        body: &[u8],
    ) -> Result<Vec<u8>> {
        let mut nonce = [0u8; 12];
        self.entropy.fill(&mut nonce);
        self.sealer.seal(kind, channel, hlc, body, nonce)
    }

    /// Seals `items` into one outbox entry that never left this client; on failure the
    /// items come back with the error.
    fn seal_entry(
        &mut self,
        items: Vec<BatchItem>,
    ) -> core::result::Result<OutboxEntry, (Error, Vec<BatchItem>)> {
        let (body, hlc) = encode_event_body(&items);
        let counter = self.sealer.next_counter();
        match self.seal(EnvelopeKind::Event, ROOM_TAG, hlc, &body) {
            Ok(envelope) => Ok(OutboxEntry {
                session: self.sealer.session(),
                counter,
                hlc,
                items,
                envelope,
                sent: false,
                ever_sent: false,
            }),
            Err(err) => Err((err, items)),
        }
    }

    /// Packs groups (each indivisible) into as few envelopes as fit [`Self::max_body_len`],
    /// in order. What cannot be sealed comes back as `(error, ops)` for
    /// [`Self::report_unsealable`] once the sealed entries are in the outbox.
    fn pack(&mut self, groups: Vec<Vec<BatchItem>>) -> (Vec<OutboxEntry>, Vec<(Error, Vec<Op>)>) {
        let max = self.max_body_len();
        let mut batches: Vec<Vec<BatchItem>> = Vec::new();
        let mut len = 0;
        for group in groups {
            let group_len: usize = group.iter().map(|i| i.json.len() + 1).sum();
            let count = batches.last().map_or(0, Vec::len);
            let fits = count > 0 && batch_len(len + group_len, count + group.len()) <= max;
            if fits {
                if let Some(last) = batches.last_mut() {
                    last.extend(group);
                }
                len += group_len;
            } else {
                len = group_len;
                batches.push(group);
            }
        }
        let mut entries = Vec::with_capacity(batches.len());
        let mut failed = Vec::new();
        for items in batches {
            match self.seal_entry(items) {
                Ok(entry) => entries.push(entry),
                Err((err, items)) => {
                    failed.push((err, items.into_iter().map(|i| i.stamped.op).collect()));
                }
            }
        }
        (entries, failed)
    }

    /// Seals the staged changes into the outbox.
    fn seal_staged(&mut self) {
        if self.staged.is_empty() {
            return;
        }
        let groups = core::mem::take(&mut self.staged);
        let (entries, failed) = self.pack(groups);
        for entry in entries {
            self.outbox.push(entry);
        }
        self.report_unsealable(failed);
        self.outputs.push_back(Output::OutboxChanged);
    }

    /// Rolls back and reports the groups [`Self::pack`] could not seal.
    fn report_unsealable(&mut self, failed: Vec<(Error, Vec<Op>)>) {
        if failed.is_empty() {
            return;
        }
        self.rebuild_view();
        for (err, ops) in failed {
            self.event(ClientEvent::Rejected {
                code: String::from(err.code()),
                message: err.to_string(),
                ops,
            });
        }
    }

    fn connect(&mut self, now: Millis) {
        let attempt = self.backoff.attempt();
        self.conn = Conn::Connecting {
            deadline: now.plus(self.config.connect_timeout_ms),
        };
        self.outputs.push_back(Output::Connect);
        self.set_status(Status::Connecting { attempt });
        self.rearm(now);
    }

    fn schedule_reconnect(&mut self, now: Millis) {
        self.maybe_reset_backoff(now);
        self.outbox.mark_all_unsent();
        let attempt = self.backoff.attempt();
        let delay = self.backoff.next_delay_ms(self.entropy.as_mut());
        let until = now.plus(delay);
        self.conn = Conn::Waiting { until };
        self.set_status(Status::Reconnecting {
            in_ms: delay,
            attempt: attempt + 1,
        });
        self.rearm(now);
    }

    /// A connection that has been live for `healthy_after_ms` resets the backoff.
    fn maybe_reset_backoff(&mut self, now: Millis) {
        if let Conn::Open {
            live_since: Some(since),
            ..
        } = self.conn
        {
            if now.since(since) >= self.config.healthy_after_ms {
                self.backoff.reset();
            }
        }
    }

    fn stop(&mut self, status: Status) {
        if matches!(self.conn, Conn::Open { .. } | Conn::Connecting { .. }) {
            self.outputs.push_back(Output::Close {
                code: wire::CLOSE_NORMAL,
            });
        }
        self.conn = Conn::Stopped;
        self.armed = None;
        self.outbox.mark_all_unsent();
        // Stopped, this client hears nobody: its list would only go stale.
        self.members_changed |= self.roster.clear();
        if self.rotation.take().is_some() {
            self.event(ClientEvent::RotationFailed {
                code: String::from("ROOM_CLOSED"),
                message: String::from(
                    "the connection stopped before the relay answered the rotation (one that \
                     went out may have been carried out: the new key then joins)",
                ),
            });
        }
        self.set_status(status);
    }

    fn saw_traffic(&mut self, now: Millis) {
        if let Conn::Open { live_since, .. } = self.conn {
            self.conn = Conn::Open {
                live_since,
                last_rx: now,
                ping_sent: None,
            };
        }
    }

    /// The end of a catch-up page. The relay pages catch-up under a byte budget: while the
    /// cursor is below `head_seq` the client asks for the next page, and it is live only
    /// once it holds everything up to `head_seq` (or the relay left a hole it cannot fill).
    fn on_caught_up(&mut self, now: Millis, head_seq: u64, token: u64) {
        self.sync_requested = false;
        self.sync_token = token;
        let head_seq = head_seq.min(wire::MAX_SEQ);
        if head_seq < self.last_seq {
            self.history_reset(head_seq);
        }
        if self.last_seq < head_seq {
            if self.synced_from == Some(self.last_seq) {
                // The answer to our SYNC left the same hole: asking again would only loop.
                // Report it once; the next connection asks again.
                self.event(ClientEvent::Warning {
                    code: String::from(WARNING_HISTORY_GAP),
                    message: format!(
                        "the relay says it holds events up to {head_seq} but sent none after \
                         {}; waiting for the next connection",
                        self.last_seq
                    ),
                });
            } else {
                // The next page, or something skipped (it arrived out of order): ask again.
                self.request_sync(now);
                return;
            }
        }
        if let Conn::Open {
            live_since: None,
            last_rx,
            ping_sent,
        } = self.conn
        {
            self.conn = Conn::Open {
                live_since: Some(now),
                last_rx,
                ping_sent,
            };
            self.set_status(Status::Live);
            self.announce(now, true);
            if self.access == Access::ReadOnly {
                self.reject_unsent_pending();
            }
            self.start_keeping(true);
        }
        if self.reseed && self.last_seq > 0 {
            self.reseed = false;
            self.upload_snapshot(now);
        }
        self.flush_outbox(now);
    }

    /// The relay's head is behind this replica's cursor: the history this replica saw is
    /// gone from the relay (deleted, or reset). Keep the state, read the relay's new history
    /// from its start (someone may have written it since), and give the room this replica's
    /// state back as its snapshot once there is an event to anchor it to (once caught up
    /// when the relay holds any, else after the next one).
    fn history_reset(&mut self, head_seq: u64) {
        self.event(ClientEvent::Warning {
            code: String::from(WARNING_HISTORY_RESET),
            message: format!(
                "the relay holds events up to {head_seq}, but this replica has seen up to {}: \
                 the room's history was deleted or reset there; this replica keeps its state, \
                 reads the new history and stores its state in the room again",
                self.last_seq
            ),
        });
        self.last_seq = 0;
        self.seen_above.clear();
        self.snapshot_seq = 0;
        self.reseed = true;
        if self.keeping {
            // The kept events' numbers belong to the old history: start over from here.
            match self.history_snapshot() {
                Ok(kept) => self.outputs.push_back(Output::Keep(kept)),
                Err(err) => self.warn(&err),
            }
        }
    }

    /// With `keep_history`, from the first proof that this client holds the room's key (an
    /// envelope from the relay or the restored history opened, or the relay accepted the
    /// key: live): [`Output::Keep`]s flow from now on, after a snapshot of the state so far
    /// when `snapshot` (not when what comes next replaces the history anyway, or when the
    /// restored history is what is kept).
    fn start_keeping(&mut self, snapshot: bool) {
        if !self.config.keep_history || self.keeping {
            return;
        }
        self.keeping = true;
        if snapshot {
            match self.history_snapshot() {
                Ok(kept) => self.outputs.push_back(Output::Keep(kept)),
                Err(err) => self.warn(&err),
            }
        }
    }

    /// Whether [`Output::Keep`]s flow (see [`ClientConfig::keep_history`]).
    #[must_use]
    pub const fn is_keeping(&self) -> bool {
        self.keeping
    }

    /// With `keep_history`: keep `kept`, and replace the kept history with a local
    /// snapshot every `keep_snapshot_every` events (when there is no hole).
    fn keep(&mut self, kept: Kept) {
        if !self.keeping {
            return;
        }
        let is_event = matches!(kept, Kept::Event { .. });
        self.outputs.push_back(Output::Keep(kept));
        if !is_event {
            self.kept_since_snapshot = 0;
            return;
        }
        self.kept_since_snapshot += 1;
        if self.kept_since_snapshot >= self.config.keep_snapshot_every.max(1)
            && self.seen_above.is_empty()
        {
            match self.history_snapshot() {
                Ok(kept) => self.outputs.push_back(Output::Keep(kept)),
                Err(err) => self.warn(&err),
            }
        }
    }

    /// Sends `SYNC` from the contiguous prefix (once until the answer's `CAUGHT_UP`).
    fn request_sync(&mut self, now: Millis) {
        self.sync_requested = true;
        self.synced_from = Some(self.last_seq);
        if let Some(pace) = self.pace() {
            // Paid for like every frame; the relay's bucket counts it too.
            let _ = self.bucket.take(pace, now.0);
        }
        let sync = ClientFrame::Sync {
            after_seq: self.last_seq,
            token: self.sync_token,
        };
        self.send(&sync);
    }

    /// Records `seq` as seen. Returns `false` for a sequence already seen (a duplicate).
    ///
    /// Events are merged as they come (merging is order-independent); `last_seq` is the end
    /// of the contiguous prefix, so a reconnect or `SYNC` asks for exactly what is missing.
    /// A hole behind an accepted sequence triggers one `SYNC`.
    fn accept_seq(&mut self, now: Millis, seq: u64) -> bool {
        if seq <= self.last_seq || seq > wire::MAX_SEQ || self.seen_above.contains(&seq) {
            return false;
        }
        if seq == self.last_seq.saturating_add(1) {
            self.last_seq = seq;
            while self.seen_above.remove(&(self.last_seq + 1)) {
                self.last_seq += 1;
            }
        } else {
            self.seen_above.insert(seq);
            if !self.sync_requested {
                self.request_sync(now);
            }
        }
        true
    }

    /// Moves the contiguous prefix to `seq` (a snapshot covers everything up to it).
    fn skip_to(&mut self, seq: u64) {
        if seq > self.last_seq {
            self.last_seq = seq;
            self.seen_above = self.seen_above.split_off(&(seq + 1));
            while self.seen_above.remove(&(self.last_seq + 1)) {
                self.last_seq += 1;
            }
        }
    }

    /// Applies stored operations (stamped as everyone merges them) to `confirmed` and to
    /// the view; returns what the application sees change.
    fn apply_stored(&mut self, ops: &[StampedOp], from_self: bool) -> Vec<Change> {
        let mut changes = Vec::new();
        for op in ops {
            let confirmed = self.confirmed.apply(op, from_self);
            match self.view.as_mut() {
                Some(view) => changes.extend(view.apply(op, from_self)),
                None => changes.extend(confirmed),
            }
        }
        changes
    }

    /// This client's own entry was stored at `relay_time` (an `ACK`, or its event coming
    /// back): everyone merges its operations at their effective stamps, so `confirmed`
    /// does too, and when one differs from the local stamp (a clock too far ahead) the
    /// view is rebuilt so that this replica shows what everyone else does.
    fn confirm(&mut self, entry: &OutboxEntry, relay_time: u64) {
        let mut skewed = false;
        for item in &entry.items {
            let hlc = effective(item.stamped.hlc.raw, Some(relay_time));
            skewed |= hlc != item.stamped.hlc;
            let _ = self.confirmed.apply(
                &StampedOp {
                    hlc,
                    op: item.stamped.op.clone(),
                },
                true,
            );
        }
        if skewed {
            self.rebuild_view();
        } else {
            self.drop_view_if_idle();
        }
    }

    fn on_event(
        &mut self,
        now: Millis,
        wall: WallMillis,
        seq: u64,
        relay_time: u64,
        envelope: &[u8],
    ) {
        if !self.accept_seq(now, seq) {
            return;
        }
        if self.apply_event(wall, relay_time, envelope) {
            // It opened: the key is the room's. Keeping starts with the state so far.
            self.start_keeping(true);
        }
        // Kept once applied: a local snapshot taken now includes it.
        self.keep(Kept::Event {
            seq,
            relay_time,
            envelope: envelope.to_vec(),
        });
        self.rearm(now);
    }

    /// Opens a stored event and applies it (or reports why not); returns whether it opened.
    fn apply_event(&mut self, wall: WallMillis, relay_time: u64, envelope: &[u8]) -> bool {
        match self.open_event(envelope) {
            Ok((session, counter, hlc, ops)) => {
                // Our own event coming back (catch-up after a reconnect) acknowledges it.
                let own = self.outbox.acknowledge(session, counter);
                if own.is_some() {
                    self.outputs.push_back(Output::OutboxChanged);
                }
                if !self.replay.accept(session, counter) {
                    self.event(ClientEvent::Warning {
                        code: String::from(WARNING_REPLAY),
                        message: String::from(
                            "dropped an event whose sender counter was already seen (replay)",
                        ),
                    });
                    return true;
                }
                self.clock.observe(hlc, wall);
                let from_self = hlc.device == self.config.device;
                let changes = self.apply_stored(&stored(ops, relay_time), from_self);
                if !changes.is_empty() {
                    self.event(ClientEvent::Changes(changes));
                }
                if let Some(entry) = own {
                    self.confirm(&entry, relay_time);
                }
                true
            }
            Err(err) => {
                self.warn(&err);
                false
            }
        }
    }

    fn on_ack(&mut self, now: Millis, session: SessionId, counter: u64, seq: u64, relay_time: u64) {
        let entry = self.outbox.acknowledge(session, counter);
        // Our own events are not echoed back live, so an ack also advances the sequence.
        let accepted = self.accept_seq(now, seq);
        if let Some(entry) = entry {
            self.outputs.push_back(Output::OutboxChanged);
            let _ = self.replay.accept(session, counter);
            self.confirm(&entry, relay_time);
            if accepted {
                self.keep(Kept::Event {
                    seq,
                    relay_time,
                    envelope: entry.envelope,
                });
            }
        }
        self.flush_outbox(now);
        if self.reseed && self.last_seq == seq {
            self.reseed = false;
            self.upload_snapshot(now);
        } else if self.last_seq == seq {
            self.maybe_snapshot(now, seq);
        }
        self.rearm(now);
    }

    /// The relay did not store one of our publishes: retry it later, hold everything, or
    /// take it out and roll it back, as the code says ([`RelayErrorCode::refusal`]).
    fn on_refused(
        &mut self,
        now: Millis,
        session: SessionId,
        counter: u64,
        code: RelayErrorCode,
        retry_after_ms: u32,
        message: String,
    ) {
        if code == RelayErrorCode::ReadOnly && self.access != Access::ReadOnly {
            // What never left is refused the same way; this entry is rejected below.
            self.set_access(now, Access::ReadOnly);
        }
        let Some(entry) = self.outbox.get_mut(session, counter) else {
            return;
        };
        match code.refusal() {
            Refusal::Retry => {
                entry.sent = false;
                let hint = match (code, retry_after_ms) {
                    (RelayErrorCode::HistoryFull, 0) => HISTORY_FULL_RETRY_MS,
                    (_, ms) => ms.max(1),
                };
                let until = now.plus(u64::from(hint));
                if self.paused_until.is_none_or(|t| t < until) {
                    let first = self.paused_until.is_none_or(|t| t <= now);
                    self.paused_until = Some(until);
                    if first {
                        self.event(ClientEvent::Warning {
                            code: String::from(code.name()),
                            message: format!("{message} (kept; sending again in {hint} ms)"),
                        });
                        if code == RelayErrorCode::HistoryFull {
                            // A snapshot lets the room compact (once per pause).
                            self.upload_snapshot(now);
                        }
                    }
                }
            }
            Refusal::Hold => {
                entry.sent = false;
                self.set_access(now, Access::Pending);
            }
            Refusal::Reconnect => {
                entry.sent = false;
                self.event(ClientEvent::Warning {
                    code: String::from(code.name()),
                    message: format!("{message} (kept; connecting again)"),
                });
                self.reconnect(now);
            }
            Refusal::Reject => {
                if let Some(entry) = self.outbox.acknowledge(session, counter) {
                    self.outputs.push_back(Output::OutboxChanged);
                    self.rebuild_view();
                    self.event(ClientEvent::Rejected {
                        code: String::from(code.name()),
                        message,
                        ops: entry.items.into_iter().map(|i| i.stamped.op).collect(),
                    });
                }
            }
        }
    }

    /// What this member may do changed (`WELCOME`, `ACCESS`, or a refusal that implies it).
    fn set_access(&mut self, now: Millis, access: Access) {
        let before = core::mem::replace(&mut self.access, access);
        if access != Access::Pending && self.status == Status::Pending {
            // Admitted: the relay sends the catch-up it held back now.
            self.set_status(Status::Syncing);
        }
        match access {
            Access::Write => self.flush_outbox(now),
            Access::Pending => {
                self.outbox.mark_all_unsent();
                if matches!(
                    self.conn,
                    Conn::Open {
                        live_since: None,
                        ..
                    }
                ) {
                    // Joined as a pending guest: no catch-up comes until it is admitted;
                    // the status says so (no warning).
                    self.set_status(Status::Pending);
                } else if before != Access::Pending {
                    self.event(ClientEvent::Warning {
                        code: String::from(RelayErrorCode::GuestPending.name()),
                        message: String::from(
                            "you are a guest waiting to be admitted: changes are kept and go \
                             out once you are",
                        ),
                    });
                }
            }
            // Before the catch-up ends, a change sent on an earlier connection may still
            // come back as stored: what is left pending at `CAUGHT_UP` is rejected then.
            Access::ReadOnly if self.is_live() => {
                self.reject_unsent_pending();
                self.flush_outbox(now);
            }
            Access::ReadOnly => {}
        }
    }

    /// Takes out the pending changes that never left this client, rolls them back and
    /// reports them once (`READ_ONLY`): this member may not change the room. Changes that
    /// may have reached the relay on an earlier connection stay and go out again: the relay
    /// acknowledges one it stored before (as a duplicate, even to a read-only socket) and
    /// refuses the others (`REFUSED READ_ONLY`), one by one.
    fn reject_unsent_pending(&mut self) {
        let (kept, mut entries): (Vec<OutboxEntry>, Vec<OutboxEntry>) =
            self.outbox.drain().into_iter().partition(|e| e.ever_sent);
        for entry in kept {
            self.outbox.push(entry);
        }
        let staged = core::mem::take(&mut self.staged);
        if entries.is_empty() && staged.is_empty() {
            return;
        }
        let ops: Vec<Op> = entries
            .iter_mut()
            .flat_map(|e| core::mem::take(&mut e.items))
            .chain(staged.into_iter().flatten())
            .map(|i| i.stamped.op)
            .collect();
        self.outputs.push_back(Output::OutboxChanged);
        self.rebuild_view();
        self.event(ClientEvent::Rejected {
            code: String::from(RelayErrorCode::ReadOnly.name()),
            message: String::from("this member's role may read the room but not change it"),
            ops,
        });
    }

    /// A stored snapshot. One this client cannot use (it does not open, or holds a format
    /// it does not read) is reported once and skipped over: the events it covers were
    /// compacted, so asking again would only bring the same snapshot back, forever. The
    /// client carries on with the events after it.
    fn on_snapshot(&mut self, wall: WallMillis, seq: u64, envelope: &[u8]) {
        if seq <= self.last_seq || seq > wire::MAX_SEQ {
            return;
        }
        let opened = match self.opener.open(envelope) {
            Ok(opened) if opened.header.kind == EnvelopeKind::Snapshot => Ok(opened),
            Ok(opened) => Err(Error::WrongKind {
                found: opened.header.kind.as_u8(),
            }),
            Err(err) => Err(err),
        };
        let snapshot = opened.and_then(|opened| Replica::from_snapshot(&opened.body));
        match snapshot {
            Ok(snapshot) => {
                // Writes made after seeing this state stamp above it (as after events).
                if let Some(raw) = snapshot.max_raw() {
                    self.clock.observe(raw, wall);
                }
                let changes = match self.view.as_mut() {
                    Some(view) => {
                        let _ = self.confirmed.merge_snapshot(snapshot.clone());
                        view.merge_snapshot(snapshot)
                    }
                    None => self.confirmed.merge_snapshot(snapshot),
                };
                self.skip_to(seq);
                self.snapshot_seq = self.snapshot_seq.max(seq);
                let replaces = self.seen_above.is_empty() && self.last_seq == seq;
                self.start_keeping(!replaces);
                if replaces {
                    self.keep(Kept::Snapshot {
                        seq,
                        envelope: envelope.to_vec(),
                    });
                }
                if !changes.is_empty() {
                    self.event(ClientEvent::Changes(changes));
                }
            }
            Err(err) => {
                self.skip_to(seq);
                self.snapshot_seq = self.snapshot_seq.max(seq);
                self.event(ClientEvent::Warning {
                    code: String::from(err.code()),
                    message: format!(
                        "skipped the room's snapshot (up to event {seq}), which this client \
                         cannot use: {err}; the changes it holds are missing here"
                    ),
                });
            }
        }
    }

    fn on_relay_error(&mut self, now: Millis, code: RelayErrorCode, fatal: bool, message: String) {
        // While a ROTATE is unanswered this client sends nothing else but its hand-over (see
        // `rotation_unanswered`), so a non-fatal error answers the ROTATE (or the hand-over
        // just before it: only the rate can refuse that one, and then the ROTATE too).
        if self.rotation_unanswered() {
            match code {
                // What arrived since is merged: build the snapshot again.
                RelayErrorCode::NotCaughtUp => {
                    if let Some(r) = &mut self.rotation {
                        r.sent_here = false;
                    }
                    return self.rotation_retry(now, message);
                }
                RelayErrorCode::RateLimited if !fatal => {
                    if let Some(r) = &mut self.rotation {
                        r.state = RotationState::Waiting;
                    }
                }
                // The proof was refused: the rotation fails, and the client stops below.
                RelayErrorCode::WrongVerifier => {
                    self.rotation_failed(String::from(code.name()), message.clone());
                }
                // Another member's rotation came first: shut out below (its own fails then).
                RelayErrorCode::Rotated => {}
                other => {
                    self.rotation_failed(String::from(other.name()), message.clone());
                    if !fatal {
                        return;
                    }
                }
            }
        }
        match code {
            RelayErrorCode::WrongVerifier if self.rotation_not_carried_out(now) => {}
            RelayErrorCode::WrongVerifier if self.on_handed_key => self.stop(Status::Rotated),
            RelayErrorCode::WrongVerifier => self.stop(Status::WrongPassword),
            RelayErrorCode::Rotated if fatal => {
                self.event(ClientEvent::Warning {
                    code: String::from(code.name()),
                    message,
                });
                self.shut_out(now);
            }
            RelayErrorCode::Forbidden | RelayErrorCode::Banned => {
                // The relay's reason (a ban, or the backend turning a pending guest away)
                // reaches the application before the final status.
                self.event(ClientEvent::Warning {
                    code: String::from(code.name()),
                    message,
                });
                self.stop(Status::Forbidden);
            }
            RelayErrorCode::UnsupportedVersion => self.stop(Status::Closed {
                code: String::from("WIRE_VERSION"),
            }),
            RelayErrorCode::RateLimited => {
                // A frame other than a publish was refused (a fatal one closes the socket
                // next): pause, and ask again for what a refused SYNC asked for.
                self.paused_until = Some(now.plus(RATE_LIMITED_PAUSE_MS));
                if self.sync_requested {
                    self.sync_requested = false;
                    self.sync_after_pause = true;
                }
                self.event(ClientEvent::Warning {
                    code: String::from(code.name()),
                    message,
                });
            }
            other => self.event(ClientEvent::Warning {
                code: String::from(other.name()),
                message,
            }),
        }
    }

    /// Opens an event envelope into its sender, counter, stamp and stamped operations.
    fn open_event(&mut self, envelope: &[u8]) -> Result<(SessionId, u64, Hlc, Vec<StampedOp>)> {
        let opened = self.opener.open(envelope)?;
        if opened.header.kind != EnvelopeKind::Event {
            return Err(Error::WrongKind {
                found: opened.header.kind.as_u8(),
            });
        }
        let ops = decode_event_body(&opened.body, opened.hlc)?;
        Ok((
            opened.header.session,
            opened.header.counter,
            opened.hlc,
            ops,
        ))
    }

    /// Merges the entries that never left this client into as few envelopes as fit
    /// (many small changes made while the pace held them back go out as one).
    fn merge_unsent(&mut self) {
        let (start, len) = self.outbox.mergeable_run();
        if len < 2 {
            return;
        }
        let groups: Vec<Vec<BatchItem>> = self
            .outbox
            .range(start, len)
            .map(|e| e.items.clone())
            .collect();
        let (entries, failed) = self.pack(groups);
        self.outbox.replace(start, len, entries);
        self.report_unsealable(failed);
        self.outputs.push_back(Output::OutboxChanged);
    }

    /// Sends unsent outbox entries while live and allowed to write, within the in-flight
    /// window and the pace; arms the timer for when the pace allows more.
    fn flush_outbox(&mut self, now: Millis) {
        if self.paused_until.is_some_and(|t| now < t) {
            return;
        }
        // A SYNC refused for the rate goes again once the pause is over, live or not (a
        // paged catch-up is not live until its last page).
        if self.sync_after_pause && matches!(self.conn, Conn::Open { .. }) {
            self.paused_until = None;
            self.sync_after_pause = false;
            self.request_sync(now);
        }
        // Read-only: only changes that may already be stored are left; they go out so the
        // relay says which (see `reject_unsent_pending`).
        if !self.is_live() || self.access == Access::Pending {
            return;
        }
        self.paused_until = None;
        let Some(pace) = self.pace() else { return };
        // A rotation waits for every publish in flight, then holds the others until the
        // room is under the new key (they are sealed again under it).
        if self.rotation.is_some() {
            if self.outbox.in_flight() == 0 {
                if !self.bucket.ready(pace, now.0) {
                    self.paused_until = Some(now.plus(self.bucket.wait_ms(pace, now.0)));
                    return;
                }
                self.send_rotate(now);
            }
            return;
        }
        if !self.outbox.has_unsent() || self.outbox.in_flight() >= MAX_IN_FLIGHT {
            return;
        }
        if !self.bucket.ready(pace, now.0) {
            self.paused_until = Some(now.plus(self.bucket.wait_ms(pace, now.0)));
            return;
        }
        self.merge_unsent();
        let mut in_flight = self.outbox.in_flight();
        while in_flight < MAX_IN_FLIGHT {
            if !self.bucket.ready(pace, now.0) {
                self.paused_until = Some(now.plus(self.bucket.wait_ms(pace, now.0)));
                break;
            }
            let Some(envelope) = self.outbox.take_next_unsent() else {
                break;
            };
            let _ = self.bucket.take(pace, now.0);
            in_flight += 1;
            self.send(&ClientFrame::Publish { envelope });
        }
    }

    /// Uploads a snapshot when this replica's own event (acknowledged as `seq`) is at least
    /// `snapshot_every` past the last known snapshot. The snapshot is `confirmed`, which
    /// holds every stored event up to `last_seq` (and no unacknowledged change). Tying it
    /// to one's own acknowledged event means one member uploads per threshold, not every
    /// member.
    fn maybe_snapshot(&mut self, now: Millis, acked_seq: u64) {
        if acked_seq >= self.snapshot_seq.saturating_add(self.snapshot_interval()) {
            self.upload_snapshot(now);
        }
    }

    /// Events between snapshots: `snapshot_every`, but at most half the history cap the
    /// relay announced, so that the room compacts before it fills up.
    fn snapshot_interval(&self) -> u64 {
        let cap = self
            .limits
            .map_or(u64::MAX, |l| (l.max_history_events / 2).max(1));
        self.config.snapshot_every.min(cap)
    }

    /// Uploads `confirmed` as the snapshot up to `last_seq`, when live, caught up, allowed
    /// to write, and the frame fits the relay's announced limit.
    fn upload_snapshot(&mut self, now: Millis) {
        if !self.is_live()
            || self.sync_requested
            || self.access != Access::Write
            || self.rotation.is_some()
        {
            return;
        }
        if self.last_seq == 0 {
            return;
        }
        let snapshot = self.confirmed.to_snapshot();
        let hlc = Hlc {
            device: self.config.device,
            ..Hlc::default()
        };
        let envelope = match self.seal(EnvelopeKind::Snapshot, ROOM_TAG, hlc, &snapshot) {
            Ok(envelope) => envelope,
            Err(err) => return self.warn(&err),
        };
        let frame = ClientFrame::SnapshotPut {
            upto_seq: self.last_seq,
            envelope,
        };
        let bytes = match frame.encode() {
            Ok(bytes) => bytes,
            Err(err) => return self.warn(&err),
        };
        let limit = self.limits.map_or(usize::MAX, |l| {
            usize::try_from(l.max_frame_bytes).unwrap_or(usize::MAX)
        });
        if bytes.len() > limit {
            return self.event(ClientEvent::Warning {
                code: String::from(RelayErrorCode::TooLarge.name()),
                message: format!(
                    "a snapshot of {} bytes is over the relay's frame limit of {limit} bytes; \
                     not sent",
                    bytes.len()
                ),
            });
        }
        if let Some(pace) = self.pace() {
            let _ = self.bucket.take(pace, now.0);
        }
        self.outputs.push_back(Output::Send(bytes));
        // SNAPSHOT_STORED confirms; if it never comes, history only stays longer.
        self.snapshot_seq = self.last_seq;
    }

    /// Sends the pending rotation's `ROTATE` when it waits and the client may: live,
    /// caught up, allowed to write (the caller checked that no publish is in flight). The
    /// snapshot is `confirmed` up to `last_seq`, sealed under the new keys.
    fn send_rotate(&mut self, now: Millis) {
        if self.sync_requested {
            return;
        }
        // A pending guest's rotation waits for its admission (`flush_outbox` stops first).
        if self.access == Access::ReadOnly {
            return self.rotation_failed(
                String::from(RelayErrorCode::ReadOnly.name()),
                String::from("this member may not change the room"),
            );
        }
        let Some(challenge) = self.challenge else {
            return;
        };
        // The next epoch of the room as it is now (a KEY_EPOCH may have come since `rotate`).
        let Some(next) = self.keys.epoch().checked_add(1) else {
            return self.rotation_failed(
                String::from(RelayErrorCode::BadFrame.name()),
                String::from("the room is at the last key epoch"),
            );
        };
        if let Some(r) = &mut self.rotation {
            if r.state == RotationState::Waiting {
                r.keys.set_epoch(next);
            }
        }
        let hand_over = match &self.rotation {
            Some(r) if r.state == RotationState::Waiting => {
                r.hand_over.as_ref().map(|secret| MemberFrame::Key {
                    epoch: r.keys.epoch(),
                    secret: String::from(secret.as_str()),
                })
            }
            _ => return,
        };
        // The hand-over goes first, under the current key: the relay passes it on before
        // the ROTATE closes the others' sockets.
        if let Some(frame) = hand_over {
            let sealed = self.seal_member(&frame);
            if let MemberFrame::Key { secret, .. } = frame {
                drop(Zeroizing::new(secret));
            }
            match sealed {
                Ok(envelope) => {
                    if let Some(pace) = self.pace() {
                        let _ = self.bucket.take(pace, now.0);
                    }
                    self.send(&ClientFrame::Ephemeral { envelope });
                }
                Err(err) => {
                    return self.rotation_failed(String::from(err.code()), err.to_string());
                }
            }
        }
        let session = self.config.session;
        let counter = self.sealer.next_counter();
        let hlc = Hlc {
            device: self.config.device,
            ..Hlc::default()
        };
        let snapshot = self.confirmed.to_snapshot();
        let mut nonce = [0u8; 12];
        self.entropy.fill(&mut nonce);
        let upto_seq = self.last_seq;
        let Some(r) = self.rotation.as_mut() else {
            return;
        };
        if r.state != RotationState::Waiting {
            return;
        }
        let sealed = SessionSealer::resume(&r.keys, session, counter).seal(
            EnvelopeKind::Snapshot,
            ROOM_TAG,
            hlc,
            &snapshot,
            nonce,
        );
        if sealed.is_ok() {
            // The snapshot took `counter`: the current sealer goes on after it, so that no
            // two envelopes of this session share a counter, whichever key seals next.
            self.sealer = SessionSealer::resume(&self.keys, session, counter.saturating_add(1));
        }
        let frame = sealed.and_then(|envelope| {
            let frame = ClientFrame::Rotate {
                key_epoch: r.keys.epoch(),
                member_key: r.keys.member_key(),
                proof: self
                    .keys
                    .prove_rotation(&challenge, r.keys.epoch(), &r.keys.member_key()),
                upto_seq,
                envelope,
            };
            let bytes = frame.encode()?;
            if let ClientFrame::Rotate { envelope, .. } = frame {
                r.snapshot = Some((upto_seq, envelope));
            }
            Ok(bytes)
        });
        let limit = self.limits.map_or(usize::MAX, |l| {
            usize::try_from(l.max_frame_bytes).unwrap_or(usize::MAX)
        });
        match frame {
            Ok(bytes) if bytes.len() <= limit => {
                r.state = RotationState::Sent;
                r.sent_here = true;
                r.attempts += 1;
                if let Some(pace) = self.pace() {
                    let _ = self.bucket.take(pace, now.0);
                }
                self.outputs.push_back(Output::Send(bytes));
            }
            Ok(bytes) => self.rotation_failed(
                String::from(RelayErrorCode::TooLarge.name()),
                format!(
                    "the room's state makes a rotation of {} bytes, over the relay's frame \
                     limit of {limit} bytes",
                    bytes.len()
                ),
            ),
            Err(err) => self.rotation_failed(String::from(err.code()), err.to_string()),
        }
    }

    /// `KEY_EPOCH`: the relay carried out this client's rotation (the epoch it asked for,
    /// after a `ROTATE` or a `HELLO` under the new key), or says which epoch the room is at.
    fn on_key_epoch(&mut self, now: Millis, key_epoch: u32) {
        // The answer to this connection's ROTATE (also when a rate refusal, the hand-over's,
        // set it back to waiting).
        let answers_rotate = self.rotation.as_ref().is_some_and(|r| {
            r.sent_here && r.state != RotationState::Proven && r.keys.epoch() == key_epoch
        });
        if answers_rotate {
            self.finish_rotation(now, key_epoch, true);
        } else if self.welcome_epoch.is_some() {
            // After WELCOME: the room's epoch, taken before the catch-up.
            self.welcome_epoch = Some(key_epoch);
        } else if key_epoch != self.keys.epoch() {
            // Anywhere else it says nothing this client can use: its key may not be the
            // room's any more. Connect again; the next WELCOME says where the room is.
            self.event(ClientEvent::Warning {
                code: String::from(Error::MalformedFrame { reason: "" }.code()),
                message: format!(
                    "the relay said the room is at key epoch {key_epoch} outside a join; \
                     connecting again"
                ),
            });
            self.reconnect(now);
        }
    }

    /// This client's rotation was carried out, the room is at `epoch`: use the new keys, keep
    /// the rotation's snapshot as the local history, seal every unsent change again, and
    /// (`reconnect`: this socket's `HELLO` was under the old key, so it follows the old
    /// channel tag) connect again.
    fn finish_rotation(&mut self, now: Millis, epoch: u32, reconnect: bool) {
        let Some(mut r) = self.rotation.take() else {
            return;
        };
        if let Some((seq, envelope)) = r.snapshot.take() {
            self.snapshot_seq = self.snapshot_seq.max(seq);
            if self.keeping && seq > 0 {
                self.outputs
                    .push_back(Output::Keep(Kept::Snapshot { seq, envelope }));
                self.kept_since_snapshot = 0;
            }
        }
        r.keys.set_epoch(epoch);
        self.keys = r.keys;
        self.rekeyed(true);
        self.welcome_epoch = None;
        self.epoch_known = true;
        self.event(ClientEvent::Rotated { epoch });
        if reconnect {
            self.backoff.reset();
            self.reconnect(now);
        }
    }

    /// The room's key epoch, as the relay said after `WELCOME`: seal under it from now on
    /// (and whatever unsent change carries another, restored or adopted ones included). After
    /// a `HELLO` that proved a rotation's new key, it completes that rotation.
    fn take_epoch(&mut self, now: Millis, epoch: u32) {
        if self
            .rotation
            .as_ref()
            .is_some_and(|r| r.state == RotationState::Proven)
        {
            return self.finish_rotation(now, epoch, false);
        }
        self.epoch_known = true;
        if epoch != self.keys.epoch() {
            self.keys.set_epoch(epoch);
        }
        self.rekeyed(false);
    }

    /// A `ROTATE` went out on this connection and has no answer yet.
    fn rotation_unanswered(&self) -> bool {
        self.rotation
            .as_ref()
            .is_some_and(|r| r.state == RotationState::Sent)
    }

    /// `self.keys` changed: the sealer (its counter goes on), the opener and the channel tag
    /// follow, and the outbox is sealed again ([`Client::reseal_outbox`]): every entry after
    /// a new key, only those under another epoch when just the epoch changed.
    fn rekeyed(&mut self, new_key: bool) {
        let counter = self.sealer.next_counter();
        self.sealer = SessionSealer::resume(&self.keys, self.config.session, counter);
        self.opener = Opener::new(&self.keys);
        self.channel = self.keys.channel_tag(&self.config.channel);
        self.reseal_outbox(!new_key);
    }

    /// Seals unsent outbox entries again under the current keys, each with its operations
    /// and stamps as they were, under a new counter: every one, or (`stale_only`) those
    /// whose envelope carries another key epoch. An entry the relay stored before under
    /// its old counter is stored again; merging it twice changes nothing. An entry that
    /// may have left keeps saying so (`ever_sent`).
    fn reseal_outbox(&mut self, stale_only: bool) {
        let epoch = self.keys.epoch();
        let mut changed = false;
        let mut failed = Vec::new();
        for entry in self.outbox.drain() {
            let stale = !EnvelopeHeader::parse(&entry.envelope)
                .is_ok_and(|(header, _)| header.key_epoch == epoch);
            if entry.sent || (stale_only && !stale) {
                self.outbox.push(entry);
                continue;
            }
            let ever_sent = entry.ever_sent;
            match self.seal_entry(entry.items) {
                Ok(mut resealed) => {
                    resealed.ever_sent = ever_sent;
                    self.outbox.push(resealed);
                    changed = true;
                }
                Err((err, items)) => {
                    failed.push((err, items.into_iter().map(|i| i.stamped.op).collect()));
                }
            }
        }
        self.report_unsealable(failed);
        if changed {
            self.outputs.push_back(Output::OutboxChanged);
        }
    }

    /// Another member's rotation closed this connection (`ROTATED`, 4005). With the next
    /// epoch's key handed over by a member, this client takes it and connects again;
    /// otherwise the status is `Rotated`, until [`Client::rekey`].
    fn shut_out(&mut self, now: Millis) {
        let next = self.keys.epoch().checked_add(1);
        // The hand-over comes right before the ROTATE: an older one is not this rotation's.
        let handed = self
            .handed
            .take()
            .filter(|(epoch, _, at)| Some(*epoch) == next && now.since(*at) <= HAND_OVER_VALID_MS);
        let Some((epoch, secret, _)) = handed else {
            return self.stop(Status::Rotated);
        };
        if self.rotation.is_some() {
            // Another member's rotation came first: this one's target epoch is taken.
            self.rotation_failed(
                String::from(RelayErrorCode::Rotated.name()),
                String::from("another member rotated the room's key first"),
            );
        }
        let Ok(key) = RoomKey::from_secret(&secret) else {
            return self.stop(Status::Rotated);
        };
        self.keys = RoomKeys::derive(&key, self.keys.room().clone());
        self.keys.set_epoch(epoch);
        // What was in flight is sealed again too: it goes out on the next connection.
        self.outbox.mark_all_unsent();
        self.rekeyed(true);
        self.keeping = false;
        self.on_handed_key = true;
        self.event(ClientEvent::KeyHandedOver {
            epoch,
            secret: HandedSecret(secret),
        });
        self.reconnect(now);
    }

    /// The room's head moved before the `ROTATE` arrived (`NOT_CAUGHT_UP`): what came since
    /// is merged, so build the snapshot again, up to [`MAX_ROTATION_ATTEMPTS`] times.
    fn rotation_retry(&mut self, now: Millis, message: String) {
        let attempts = self.rotation.as_ref().map_or(0, |r| r.attempts);
        if attempts >= MAX_ROTATION_ATTEMPTS {
            return self.rotation_failed(
                String::from(RelayErrorCode::NotCaughtUp.name()),
                format!("the room kept changing during {attempts} tries: {message}"),
            );
        }
        if let Some(r) = &mut self.rotation {
            r.state = RotationState::Waiting;
        }
        self.flush_outbox(now);
    }

    fn rotation_failed(&mut self, code: String, message: String) {
        self.rotation = None;
        self.event(ClientEvent::RotationFailed { code, message });
    }

    /// A `HELLO` under a rotation's new key (sent while the rotation was in doubt) was
    /// refused: the relay did not carry it out. Reconnect under the current key and send
    /// the rotation again. `false` when no rotation was in doubt.
    fn rotation_not_carried_out(&mut self, now: Millis) -> bool {
        match &mut self.rotation {
            Some(r) if r.state == RotationState::InDoubt => r.state = RotationState::Waiting,
            _ => return false,
        }
        self.reconnect(now);
        true
    }

    /// Ends this connection (closing its socket when it is open) and connects again after
    /// the backoff.
    fn reconnect(&mut self, now: Millis) {
        if matches!(self.conn, Conn::Open { .. }) {
            self.outputs.push_back(Output::Close {
                code: wire::CLOSE_NORMAL,
            });
        }
        self.schedule_reconnect(now);
    }

    fn rearm(&mut self, now: Millis) {
        let next = match self.conn {
            Conn::Connecting { deadline } | Conn::Probing { deadline } => Some(deadline),
            Conn::Open {
                ping_sent: Some(sent),
                ..
            } => Some(sent.plus(self.config.heartbeat_timeout_ms)),
            Conn::Open {
                last_rx,
                live_since,
                ..
            } => {
                let ping = last_rx.plus(self.config.heartbeat_interval_ms);
                let ping = match live_since {
                    Some(since) if self.backoff.attempt() > 0 => {
                        ping.min(since.plus(self.config.healthy_after_ms))
                    }
                    _ => ping,
                };
                // Paced publishes (or a refused SYNC) wait for the pause to end.
                let waiting =
                    self.outbox.has_unsent() || self.sync_after_pause || self.rotation.is_some();
                match self.paused_until {
                    Some(until) if waiting => Some(ping.min(until)),
                    _ => Some(ping),
                }
            }
            Conn::Waiting { until } => Some(until),
            Conn::Idle | Conn::Offline | Conn::Stopped => None,
        };
        let members = self
            .roster
            .next_expiry()
            .into_iter()
            .chain(self.next_announce.filter(|_| self.is_live()));
        let next = next.into_iter().chain(members).min();
        if let Some(at) = next {
            let at = at.max(now);
            // A later deadline needs no new timer: the armed one fires first and re-arms.
            if self.armed.is_none_or(|armed| at < armed) {
                self.armed = Some(at);
                self.outputs.push_back(Output::WakeAt(at));
            }
        }
    }

    /// Queues `frame`. Every frame the client builds is valid by construction; should one
    /// not encode, it is reported as a warning instead of being sent.
    fn send(&mut self, frame: &ClientFrame) {
        match frame.encode() {
            Ok(bytes) => self.outputs.push_back(Output::Send(bytes)),
            Err(err) => self.warn(&err),
        }
    }

    fn set_status(&mut self, status: Status) {
        if self.status != status {
            let live = status == Status::Live;
            if live || self.status == Status::Live {
                // This client's own entry comes or goes.
                self.members_changed = true;
            }
            self.status = status.clone();
            self.event(ClientEvent::Status(status));
            if live && !self.adopted.is_empty() {
                let adopted = core::mem::take(&mut self.adopted);
                self.outputs.push_back(Output::ForgetOutboxes(adopted));
            }
        }
    }

    fn event(&mut self, event: ClientEvent) {
        self.outputs.push_back(Output::Event(event));
    }

    fn warn(&mut self, err: &Error) {
        self.event(ClientEvent::Warning {
            code: String::from(err.code()),
            message: err.to_string(),
        });
    }
}

/// A stored event's operations at the stamps every replica merges them with (clamped by the
/// relay's time, `hlc::effective`).
fn stored(ops: Vec<StampedOp>, relay_time: u64) -> Vec<StampedOp> {
    ops.into_iter()
        .map(|op| StampedOp {
            hlc: effective(op.hlc.raw, Some(relay_time)),
            op: op.op,
        })
        .collect()
}
