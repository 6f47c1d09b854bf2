//! The frame codec: every binary WebSocket message of `PROTOCOL.md`, wire version 2.
//!
//! One codec for both ends: the SDK encodes [`ClientFrame`]s and decodes [`RelayFrame`]s,
//! the relay does the opposite. A frame is `version u8`, `type u8`, then a body whose
//! layout depends on the type; all integers are big-endian.
//!
//! # Decoding
//! [`ClientFrame::decode`] and [`RelayFrame::decode`] take peer bytes. They never panic,
//! check every length before allocating, and fail in this order:
//! 1. [`Error::FrameTooLarge`] when the input is over [`MAX_FRAME_LEN`];
//! 2. [`Error::MalformedFrame`] when it is empty;
//! 3. [`Error::WireVersion`] when the version byte is not [`VERSION`];
//! 4. [`Error::MalformedFrame`] when there is no type byte;
//! 5. [`Error::UnknownFrame`] when the type is not one of this direction's types (a client
//!    frame fed to [`RelayFrame::decode`] is unknown there, and vice versa);
//! 6. [`Error::MalformedFrame`] (with a reason naming the frame and field) when the body is
//!    truncated, has trailing bytes, or holds a field out of range;
//! 7. for frames that carry an envelope: [`Error::MalformedFrame`] when it is shorter than
//!    [`MIN_ENVELOPE_LEN`], [`Error::WireVersion`] when its version byte is not 1, and
//!    [`Error::WrongKind`] when its kind byte does not fit the frame.
//!
//! Envelopes stay opaque bytes here; `envelope` parses their header.
//!
//! # Encoding
//! `encode` returns a [`Result`]: a frame whose own fields break a limit (no channel or
//! more than [`MAX_CHANNELS`], an error message over [`MAX_ERROR_MESSAGE`] bytes, an
//! envelope too short or of the wrong kind, a frame over [`MAX_FRAME_LEN`]) is refused with
//! exactly the error that decoding those bytes would give, so that every frame `encode`
//! produces decodes back to an equal value. Nothing is silently truncated.
//!
//! The encoding is canonical: `encode(decode(bytes)?)` gives back `bytes`.

use alloc::{
    format,
    string::{String, ToString},
    vec::Vec,
};
use core::fmt;

use crate::envelope::{EnvelopeKind, ENVELOPE_VERSION};
use crate::error::{Error, Result};
use crate::ids::{ChannelTag, SessionId};
use crate::limits::RelayLimits;
use crate::member::{CHALLENGE_LEN, MEMBER_KEY_LEN, PROOF_LEN};

pub use crate::envelope::MIN_ENVELOPE_LEN;

/// The wire protocol version this build speaks: the first byte of every frame.
pub const VERSION: u8 = 2;

/// The largest frame, in bytes, that [`ClientFrame::decode`] and [`RelayFrame::decode`]
/// accept: 1 MiB, the largest WebSocket message a Cloudflare Worker receives. A relay
/// enforces its own configurable limit (announced in `WELCOME`), never below
/// [`crate::limits::MIN_RELAY_FRAME_LIMIT`].
pub const MAX_FRAME_LEN: usize = 1024 * 1024;

/// The highest sequence number either end accepts: 2^53 − 1, so that a sequence fits a
/// JavaScript number and an SQLite integer. A relay refuses a cursor above it; a client
/// ignores an event, acknowledgement or snapshot claiming one (a hostile relay cannot make
/// it overflow).
pub const MAX_SEQ: u64 = (1 << 53) - 1;

/// The WebSocket subprotocol a client offers and the relay accepts.
pub const SUBPROTOCOL: &str = "sealsync.v2";

/// The prefix of the second subprotocol that carries a JWT (`sealsync.auth.<token>`) for a
/// relay in `jwt` mode.
pub const AUTH_SUBPROTOCOL_PREFIX: &str = "sealsync.auth.";

/// The most channel tags a `HELLO` may carry (and it carries at least one).
pub const MAX_CHANNELS: usize = 16;

/// The longest `ERROR` message, in bytes of UTF-8.
pub const MAX_ERROR_MESSAGE: usize = 1024;

/// The heartbeat the client sends as a WebSocket **text** message.
pub const HEARTBEAT_PING: &str = "ping";

/// The relay's answer to [`HEARTBEAT_PING`], also a text message.
pub const HEARTBEAT_PONG: &str = "pong";

/// The first segment of every room address: `/room/<room>/<action>`.
pub const ROOM_PATH_SEGMENT: &str = "room";
/// The last segment of a room's WebSocket address (`GET /room/<room>/ws`).
pub const SOCKET_ACTION: &str = "ws";
/// The last segment of a room's presence address (`GET /room/<room>/presence`).
pub const PRESENCE_ACTION: &str = "presence";
/// The query parameter that names the connecting session (its `SessionId`, base64url).
pub const CLIENT_PARAM: &str = "client";

/// The path and query of a room address: `/room/<room_segment>/<action>?client=<client>`.
/// `room_segment` is the room id already percent-encoded (the shell's URI encoder, after
/// NFC); `action` is [`SOCKET_ACTION`] or [`PRESENCE_ACTION`]; `client` is a session id.
#[must_use]
pub fn room_path(room_segment: &str, action: &str, client: &str) -> String {
    format!("/{ROOM_PATH_SEGMENT}/{room_segment}/{action}?{CLIENT_PARAM}={client}")
}

/// The HTTP base of a relay's WebSocket base (`ws://` → `http://`, `wss://` →
/// `https://`; anything else unchanged), without a trailing `/`: where the presence
/// address lives.
#[must_use]
pub fn http_base(socket_base: &str) -> String {
    let base = socket_base.trim_end_matches('/');
    if let Some(rest) = base.strip_prefix("wss://") {
        format!("https://{rest}")
    } else if let Some(rest) = base.strip_prefix("ws://") {
        format!("http://{rest}")
    } else {
        base.to_string()
    }
}

/// WebSocket close code: normal closure (the client leaves the room).
pub const CLOSE_NORMAL: u16 = 1000;
/// WebSocket close code: going away (the relay or the page is shutting down).
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// WebSocket close code: policy violation; sent with [`RelayErrorCode::RateLimited`].
pub const CLOSE_POLICY: u16 = 1008;
/// WebSocket close code: message too big; sent with [`RelayErrorCode::TooLarge`].
pub const CLOSE_TOO_BIG: u16 = 1009;
/// WebSocket close code browsers report for a connection that failed or never opened
/// (never sent on the wire).
pub const CLOSE_ABNORMAL: u16 = 1006;
/// WebSocket close code: the server hit an unexpected condition (the relay's storage
/// failed, or it is misconfigured).
pub const CLOSE_INTERNAL_ERROR: u16 = 1011;
/// Close code the client uses when the relay stopped answering heartbeats.
pub const CLOSE_HEARTBEAT_TIMEOUT: u16 = 4000;
/// Close code sent with [`RelayErrorCode::WrongVerifier`].
pub const CLOSE_WRONG_VERIFIER: u16 = 4001;
/// Close code sent with [`RelayErrorCode::Forbidden`].
pub const CLOSE_FORBIDDEN: u16 = 4003;
/// Close code sent with [`RelayErrorCode::Rotated`].
pub const CLOSE_ROTATED: u16 = 4005;
/// Close code sent with [`RelayErrorCode::Banned`].
pub const CLOSE_BANNED: u16 = 4010;
/// Close code sent with [`RelayErrorCode::RoomFull`].
pub const CLOSE_ROOM_FULL: u16 = 4029;
/// Close code sent with [`RelayErrorCode::UnsupportedVersion`].
pub const CLOSE_UNSUPPORTED_VERSION: u16 = 4400;

// Frame types, client → relay.
const T_HELLO: u8 = 0x01;
const T_PUBLISH: u8 = 0x02;
const T_SYNC: u8 = 0x03;
const T_SNAPSHOT_PUT: u8 = 0x04;
const T_EPHEMERAL: u8 = 0x05;
const T_ROTATE: u8 = 0x06;
// Frame types, relay → client.
const T_WELCOME: u8 = 0x81;
const T_ACK: u8 = 0x82;
const T_EVENT: u8 = 0x83;
const T_SNAPSHOT: u8 = 0x84;
const T_CAUGHT_UP: u8 = 0x85;
const T_RELAY_EPHEMERAL: u8 = 0x86;
const T_PRESENCE: u8 = 0x87;
const T_ERROR: u8 = 0x88;
const T_NOTIFY: u8 = 0x89;
const T_SNAPSHOT_STORED: u8 = 0x8A;
const T_REFUSED: u8 = 0x8B;
const T_ACCESS: u8 = 0x8C;
const T_CHALLENGE: u8 = 0x8D;
const T_KEY_EPOCH: u8 = 0x8E;

// The envelope kinds this codec checks (the rest of the header is `envelope`'s business).
const KIND_EVENT: u8 = EnvelopeKind::Event.as_u8();
const KIND_SNAPSHOT: u8 = EnvelopeKind::Snapshot.as_u8();
const KIND_EPHEMERAL: u8 = EnvelopeKind::Ephemeral.as_u8();

/// A frame the client sends to the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame {
    /// `0x01 HELLO`: joins the room. Must be the first frame on a socket.
    Hello {
        /// Send every stored event after this sequence (0 = the whole history).
        after_seq: u64,
        /// The room's member key (an Ed25519 public key derived from the room key; see
        /// [`crate::member`]).
        member_key: [u8; MEMBER_KEY_LEN],
        /// The member key's signature over this socket's `CHALLENGE`.
        proof: [u8; PROOF_LEN],
        /// The channels to receive: 1 to [`MAX_CHANNELS`] tags.
        channels: Vec<ChannelTag>,
    },
    /// `0x02 PUBLISH`: stores and broadcasts an envelope of kind `event`.
    Publish {
        /// The sealed envelope (kind 1).
        envelope: Vec<u8>,
    },
    /// `0x03 SYNC`: asks for the next page of stored events after `after_seq` (the rest of
    /// a paged catch-up, or gap repair).
    Sync {
        /// The last sequence the client has without a gap.
        after_seq: u64,
        /// The `token` of the last `CAUGHT_UP` this socket received: the relay serves a
        /// `SYNC` only once the client has read its previous page.
        token: u64,
    },
    /// `0x04 SNAPSHOT_PUT`: stores a snapshot covering every event up to `upto_seq`.
    SnapshotPut {
        /// The last sequence the snapshot includes.
        upto_seq: u64,
        /// The sealed envelope (kind 2).
        envelope: Vec<u8>,
    },
    /// `0x05 EPHEMERAL`: broadcast to the room, never stored.
    Ephemeral {
        /// The sealed envelope (kind 3).
        envelope: Vec<u8>,
    },
    /// `0x06 ROTATE`: moves the room to a new key (PROTOCOL.md, "Key rotation"): the new
    /// member key, proven by the current one, and the room's state as a snapshot sealed
    /// under the new key.
    Rotate {
        /// The new key epoch: the room's current one plus 1.
        key_epoch: u32,
        /// The new key's member key.
        member_key: [u8; MEMBER_KEY_LEN],
        /// The current member key's signature over this socket's challenge, `key_epoch`,
        /// the current and the new member key (`crate::member::rotation_message`).
        proof: [u8; PROOF_LEN],
        /// The last sequence the snapshot includes: the room's head.
        upto_seq: u64,
        /// The sealed snapshot (kind 2, sealed under the new key at `key_epoch`).
        envelope: Vec<u8>,
    },
}

/// Whether the `HELLO`'s member key created the room or matched the stored one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VerifierState {
    /// The room was empty: this client's member key is now the room's (`0`).
    Created = 0,
    /// The member key matched the one the room already had (`1`).
    Matched = 1,
}

/// What a joined socket may do, by its user's role (`WELCOME.access`, `ACCESS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// `0`: read, publish, store snapshots, send ephemeral frames.
    Write = 0,
    /// `1`: read and send ephemeral frames; publishes are refused (`READ_ONLY`).
    ReadOnly = 1,
    /// `2`: a guest waiting to be admitted: read only; publishes are refused
    /// (`GUEST_PENDING`) until an `ACCESS` frame says otherwise.
    Pending = 2,
}

impl Access {
    fn decode(byte: u8, reason: &'static str) -> Result<Self> {
        match byte {
            0 => Ok(Self::Write),
            1 => Ok(Self::ReadOnly),
            2 => Ok(Self::Pending),
            _ => Err(Error::MalformedFrame { reason }),
        }
    }
}

/// What a client does with a change the relay refused (`REFUSED`), by its code: the rule
/// lives here so that every client follows the same one (PROTOCOL.md, "Refusals").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// Keep the change and send it again after the frame's `retry_after_ms`
    /// (`RATE_LIMITED`, `HISTORY_FULL`).
    Retry,
    /// Keep the change and hold every publish until an `ACCESS` frame grants writing
    /// (`GUEST_PENDING`).
    Hold,
    /// Keep the change and connect again: it was sealed under another key epoch than the
    /// room's, and the next `WELCOME` says the room's (`ROTATED`).
    Reconnect,
    /// The change can never be stored: take it out of the outbox, roll its local effect
    /// back and report it (`TOO_LARGE`, `READ_ONLY`, `BAD_FRAME`, `WRONG_KIND`, and any code
    /// this build does not know).
    Reject,
}

/// An error code the relay cannot know yet, kept so that a newer relay's `ERROR` frames
/// still decode. Only [`RelayErrorCode::from`] builds one, and only for values that no
/// known variant has, so each code has exactly one representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UnknownErrorCode(u16);

impl UnknownErrorCode {
    /// The code on the wire.
    #[must_use]
    pub const fn get(self) -> u16 {
        self.0
    }
}

/// The `code` of an `ERROR` frame (the table "Error codes" of `PROTOCOL.md`).
///
/// Decoding is forward-compatible: a code this build does not know becomes
/// [`RelayErrorCode::Unknown`] instead of failing the frame, because a newer relay may add
/// codes and the client must still read the frame's `fatal` flag and message. Conversion
/// from `u16` is therefore infallible ([`From<u16>`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RelayErrorCode {
    /// 1 `BAD_FRAME`: the frame did not decode and was dropped; the socket stays open.
    BadFrame,
    /// 2 `WRONG_VERIFIER`: the room exists with another password or secret.
    WrongVerifier,
    /// 3 `FORBIDDEN`: auth refused this room.
    Forbidden,
    /// 4 `UNSUPPORTED_VERSION`: protocol version mismatch.
    UnsupportedVersion,
    /// 5 `TOO_LARGE`: the frame is over the relay's limit.
    TooLarge,
    /// 6 `RATE_LIMITED`: the per-connection token bucket is empty.
    RateLimited,
    /// 7 `ROOM_FULL`: the room has its maximum number of sockets.
    RoomFull,
    /// 8 `HISTORY_FULL`: the stored history is at its cap; the publish was not stored.
    HistoryFull,
    /// 9 `NOT_JOINED`: a frame came before `HELLO`.
    NotJoined,
    /// 10 `BANNED`: the backend banned this user.
    Banned,
    /// 11 `GUEST_PENDING`: publishes are refused until the guest is admitted.
    GuestPending,
    /// 12 `WRONG_KIND`: the envelope's kind does not fit the frame type.
    WrongKind,
    /// 13 `READ_ONLY`: the user's role may read, not publish; the publish was not stored.
    ReadOnly,
    /// 14 `DUPLICATE_MISMATCH`: a publish reused a `(session, counter)` the room already
    /// stored with other bytes; it was not stored (in `REFUSED`).
    DuplicateMismatch,
    /// 15 `ROTATED`: the room moved to a new key; this socket's key is no longer the
    /// room's (fatal, close 4005), or an envelope was sealed under another key epoch than
    /// the room's (in `REFUSED`, or a non-fatal `ERROR`).
    Rotated,
    /// 16 `NOT_CAUGHT_UP`: a `ROTATE`'s `upto_seq` is not the room's head: read what came
    /// since and send it again.
    NotCaughtUp,
    /// A code this build does not know (from a newer relay). Trust the frame's `fatal` flag.
    Unknown(UnknownErrorCode),
}

impl RelayErrorCode {
    /// The code on the wire.
    #[must_use]
    pub const fn code(self) -> u16 {
        match self {
            Self::BadFrame => 1,
            Self::WrongVerifier => 2,
            Self::Forbidden => 3,
            Self::UnsupportedVersion => 4,
            Self::TooLarge => 5,
            Self::RateLimited => 6,
            Self::RoomFull => 7,
            Self::HistoryFull => 8,
            Self::NotJoined => 9,
            Self::Banned => 10,
            Self::GuestPending => 11,
            Self::WrongKind => 12,
            Self::ReadOnly => 13,
            Self::DuplicateMismatch => 14,
            Self::Rotated => 15,
            Self::NotCaughtUp => 16,
            Self::Unknown(unknown) => unknown.0,
        }
    }

    /// The name `PROTOCOL.md` gives the code (`"WRONG_VERIFIER"`), or `"UNKNOWN"`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::BadFrame => "BAD_FRAME",
            Self::WrongVerifier => "WRONG_VERIFIER",
            Self::Forbidden => "FORBIDDEN",
            Self::UnsupportedVersion => "UNSUPPORTED_VERSION",
            Self::TooLarge => "TOO_LARGE",
            Self::RateLimited => "RATE_LIMITED",
            Self::RoomFull => "ROOM_FULL",
            Self::HistoryFull => "HISTORY_FULL",
            Self::NotJoined => "NOT_JOINED",
            Self::Banned => "BANNED",
            Self::GuestPending => "GUEST_PENDING",
            Self::WrongKind => "WRONG_KIND",
            Self::ReadOnly => "READ_ONLY",
            Self::DuplicateMismatch => "DUPLICATE_MISMATCH",
            Self::Rotated => "ROTATED",
            Self::NotCaughtUp => "NOT_CAUGHT_UP",
            Self::Unknown(_) => "UNKNOWN",
        }
    }

    /// Whether the protocol makes this error always fatal: the relay sends it with
    /// `fatal = 1` and closes the socket next. `TOO_LARGE` and `RATE_LIMITED` are fatal only
    /// when the relay gives up on the socket (a frame it cannot name, a sender that ignored
    /// a whole burst of retry hints); otherwise they come in `REFUSED` or a non-fatal
    /// `ERROR`. `false` for [`RelayErrorCode::Unknown`]: a client reading a frame goes by
    /// the frame's own `fatal` flag.
    #[must_use]
    pub const fn is_fatal(self) -> bool {
        !matches!(self, Self::TooLarge | Self::RateLimited | Self::Rotated)
            && self.close_code().is_some()
    }

    /// What a client does with a change refused with this code (see [`Refusal`]).
    #[must_use]
    pub const fn refusal(self) -> Refusal {
        match self {
            Self::RateLimited | Self::HistoryFull => Refusal::Retry,
            Self::GuestPending => Refusal::Hold,
            Self::Rotated => Refusal::Reconnect,
            _ => Refusal::Reject,
        }
    }

    /// The WebSocket close code the relay uses when it sends this error as fatal, or `None`
    /// when the error is never fatal (or unknown).
    #[must_use]
    pub const fn close_code(self) -> Option<u16> {
        match self {
            Self::WrongVerifier => Some(CLOSE_WRONG_VERIFIER),
            Self::Forbidden => Some(CLOSE_FORBIDDEN),
            Self::UnsupportedVersion => Some(CLOSE_UNSUPPORTED_VERSION),
            Self::TooLarge => Some(CLOSE_TOO_BIG),
            Self::RateLimited => Some(CLOSE_POLICY),
            Self::RoomFull => Some(CLOSE_ROOM_FULL),
            Self::Banned => Some(CLOSE_BANNED),
            Self::Rotated => Some(CLOSE_ROTATED),
            Self::BadFrame
            | Self::HistoryFull
            | Self::NotJoined
            | Self::GuestPending
            | Self::WrongKind
            | Self::ReadOnly
            | Self::DuplicateMismatch
            | Self::NotCaughtUp
            | Self::Unknown(_) => None,
        }
    }
}

impl From<u16> for RelayErrorCode {
    /// The known variant for `code`, or [`RelayErrorCode::Unknown`] for any other value.
    fn from(code: u16) -> Self {
        match code {
            1 => Self::BadFrame,
            2 => Self::WrongVerifier,
            3 => Self::Forbidden,
            4 => Self::UnsupportedVersion,
            5 => Self::TooLarge,
            6 => Self::RateLimited,
            7 => Self::RoomFull,
            8 => Self::HistoryFull,
            9 => Self::NotJoined,
            10 => Self::Banned,
            11 => Self::GuestPending,
            12 => Self::WrongKind,
            13 => Self::ReadOnly,
            14 => Self::DuplicateMismatch,
            15 => Self::Rotated,
            16 => Self::NotCaughtUp,
            other => Self::Unknown(UnknownErrorCode(other)),
        }
    }
}

impl From<RelayErrorCode> for u16 {
    fn from(code: RelayErrorCode) -> Self {
        code.code()
    }
}

impl fmt::Display for RelayErrorCode {
    /// The protocol name, and the number for unknown codes (`UNKNOWN(42)`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown(unknown) => write!(f, "UNKNOWN({})", unknown.0),
            known => f.write_str(known.name()),
        }
    }
}

/// A frame the relay sends to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayFrame {
    /// `0x81 WELCOME`: the answer to `HELLO`.
    Welcome {
        /// The relay's wall clock, ms since the Unix epoch.
        relay_time: u64,
        /// The highest stored sequence.
        head_seq: u64,
        /// The sequence the stored snapshot covers (0 = none).
        snapshot_seq: u64,
        /// Sockets joined to the room, including this one.
        presence: u32,
        /// Whether this client created the room's member key or matched it.
        verifier_state: VerifierState,
        /// What this socket may do.
        access: Access,
        /// What the relay enforces; the client paces itself below it.
        limits: RelayLimits,
    },
    /// `0x82 ACK`: a `PUBLISH` was stored (or had been stored before).
    Ack {
        /// The envelope's session id.
        session: SessionId,
        /// The envelope's counter.
        counter: u64,
        /// The sequence the envelope is stored under.
        seq: u64,
        /// The relay's wall clock when it stored the envelope, ms since the Unix epoch.
        relay_time: u64,
        /// `true` when the envelope had already been stored earlier under `seq`.
        duplicate: bool,
    },
    /// `0x83 EVENT`: a stored event (catch-up or live).
    Event {
        /// Its sequence in the room's log.
        seq: u64,
        /// When the relay stored it, ms since the Unix epoch.
        relay_time: u64,
        /// The sealed envelope (kind 1).
        envelope: Vec<u8>,
    },
    /// `0x84 SNAPSHOT`: the stored snapshot, sent during catch-up.
    Snapshot {
        /// The last sequence the snapshot covers.
        seq: u64,
        /// The sealed envelope (kind 2).
        envelope: Vec<u8>,
    },
    /// `0x85 CAUGHT_UP`: the end of one catch-up page. When the client's cursor is below
    /// `head_seq`, it asks for the next page with `SYNC` carrying `token`.
    CaughtUp {
        /// The highest stored sequence when the page ended.
        head_seq: u64,
        /// What the next `SYNC` on this socket must carry (unguessable: it proves the
        /// client read this far).
        token: u64,
    },
    /// `0x86 EPHEMERAL`: another client's ephemeral broadcast.
    Ephemeral {
        /// The sealed envelope (kind 3).
        envelope: Vec<u8>,
    },
    /// `0x87 PRESENCE`: the number of sockets in the room changed.
    Presence {
        /// Sockets joined to the room, including this one.
        count: u32,
    },
    /// `0x88 ERROR`: something went wrong; see [`RelayErrorCode`].
    Error {
        /// What went wrong.
        code: RelayErrorCode,
        /// `true` when the relay closes the socket next.
        fatal: bool,
        /// A human-readable detail, at most [`MAX_ERROR_MESSAGE`] bytes of UTF-8.
        message: String,
    },
    /// `0x89 NOTIFY`: a message from the application backend. **Not encrypted.**
    Notify {
        /// UTF-8 text (JSON by convention; the codec does not parse it).
        json: String,
    },
    /// `0x8A SNAPSHOT_STORED`: a `SNAPSHOT_PUT` was stored.
    SnapshotStored {
        /// The sequence the stored snapshot covers.
        seq: u64,
    },
    /// `0x8B REFUSED`: a `PUBLISH` was not stored; [`RelayErrorCode::refusal`] says what
    /// the client does with it.
    Refused {
        /// The refused envelope's session id.
        session: SessionId,
        /// The refused envelope's counter.
        counter: u64,
        /// Why.
        code: RelayErrorCode,
        /// For a change to retry: wait at least this long (ms); 0 otherwise.
        retry_after_ms: u32,
        /// A human-readable detail, at most [`MAX_ERROR_MESSAGE`] bytes of UTF-8.
        message: String,
    },
    /// `0x8C ACCESS`: what this socket may do changed (a role change, a guest admitted).
    Access {
        /// The new access.
        access: Access,
    },
    /// `0x8D CHALLENGE`: the first frame on every socket; the client signs it in `HELLO`.
    Challenge {
        /// 32 random bytes, new per socket.
        challenge: [u8; CHALLENGE_LEN],
    },
    /// `0x8E KEY_EPOCH`: the room's key epoch, when it is not 0: after `WELCOME` (before
    /// any catch-up), and to the member whose `ROTATE` the relay carried out.
    KeyEpoch {
        /// What every envelope written to the room must carry from now on.
        key_epoch: u32,
    },
}

impl ClientFrame {
    /// Encodes the frame to the bytes of one binary WebSocket message.
    ///
    /// # Errors
    /// The error [`ClientFrame::decode`] would give on the result, instead of the result:
    /// [`Error::MalformedFrame`] for a `HELLO` with no channel or more than
    /// [`MAX_CHANNELS`], or an envelope shorter than [`MIN_ENVELOPE_LEN`];
    /// [`Error::WireVersion`] / [`Error::WrongKind`] for an envelope whose version or kind
    /// byte does not fit the frame; [`Error::FrameTooLarge`] over [`MAX_FRAME_LEN`].
    pub fn encode(&self) -> Result<Vec<u8>> {
        match self {
            Self::Hello {
                after_seq,
                member_key,
                proof,
                channels,
            } => {
                let count = channel_count(channels.len())?;
                let len = 8 + MEMBER_KEY_LEN + PROOF_LEN + 1 + ChannelTag::LEN * channels.len();
                let mut out = start(T_HELLO, len)?;
                out.extend_from_slice(&after_seq.to_be_bytes());
                out.extend_from_slice(member_key);
                out.extend_from_slice(proof);
                out.push(count);
                for tag in channels {
                    out.extend_from_slice(tag.as_bytes());
                }
                Ok(out)
            }
            Self::Publish { envelope } => with_envelope(T_PUBLISH, &[], envelope, KIND_EVENT),
            Self::Sync { after_seq, token } => fixed(T_SYNC, &two_u64(*after_seq, *token)),
            Self::SnapshotPut { upto_seq, envelope } => with_envelope(
                T_SNAPSHOT_PUT,
                &upto_seq.to_be_bytes(),
                envelope,
                KIND_SNAPSHOT,
            ),
            Self::Ephemeral { envelope } => {
                with_envelope(T_EPHEMERAL, &[], envelope, KIND_EPHEMERAL)
            }
            Self::Rotate {
                key_epoch,
                member_key,
                proof,
                upto_seq,
                envelope,
            } => {
                let mut prefix = [0; ROTATE_PREFIX_LEN];
                prefix[..4].copy_from_slice(&key_epoch.to_be_bytes());
                prefix[4..36].copy_from_slice(member_key);
                prefix[36..100].copy_from_slice(proof);
                prefix[100..].copy_from_slice(&upto_seq.to_be_bytes());
                with_envelope(T_ROTATE, &prefix, envelope, KIND_SNAPSHOT)
            }
        }
    }

    /// Decodes one binary WebSocket message from a client. Never panics.
    ///
    /// # Errors
    /// See the [module docs](self) for the order of checks:
    /// [`Error::FrameTooLarge`], [`Error::WireVersion`], [`Error::UnknownFrame`] (including
    /// every relay → client type), [`Error::MalformedFrame`] (truncated, trailing bytes,
    /// `channel_count` 0 or over [`MAX_CHANNELS`], envelope too short),
    /// [`Error::WrongKind`] (envelope kind does not fit the frame).
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let (frame_type, mut r) = open(bytes)?;
        let frame = match frame_type {
            T_HELLO => {
                let after_seq = r.u64("HELLO ends inside after_seq")?;
                let member_key = r.array("HELLO ends inside member_key")?;
                let proof = r.array("HELLO ends inside proof")?;
                let count = r.u8("HELLO ends before channel_count")?;
                let count = usize::from(channel_count(usize::from(count))?);
                // `count` is at most 16: this allocation is bounded.
                let mut channels = Vec::with_capacity(count);
                for _ in 0..count {
                    channels.push(ChannelTag(r.array("HELLO ends inside a channel tag")?));
                }
                r.finish("HELLO has trailing bytes after its channel tags")?;
                Self::Hello {
                    after_seq,
                    member_key,
                    proof,
                    channels,
                }
            }
            T_PUBLISH => Self::Publish {
                envelope: envelope(r.rest(), KIND_EVENT)?,
            },
            T_SYNC => {
                let after_seq = r.u64("SYNC ends inside after_seq")?;
                let token = r.u64("SYNC ends inside token")?;
                r.finish("SYNC has trailing bytes")?;
                Self::Sync { after_seq, token }
            }
            T_SNAPSHOT_PUT => Self::SnapshotPut {
                upto_seq: r.u64("SNAPSHOT_PUT ends inside upto_seq")?,
                envelope: envelope(r.rest(), KIND_SNAPSHOT)?,
            },
            T_EPHEMERAL => Self::Ephemeral {
                envelope: envelope(r.rest(), KIND_EPHEMERAL)?,
            },
            T_ROTATE => Self::Rotate {
                key_epoch: r.u32("ROTATE ends inside key_epoch")?,
                member_key: r.array("ROTATE ends inside member_key")?,
                proof: r.array("ROTATE ends inside proof")?,
                upto_seq: r.u64("ROTATE ends inside upto_seq")?,
                envelope: envelope(r.rest(), KIND_SNAPSHOT)?,
            },
            other => return Err(Error::UnknownFrame { frame_type: other }),
        };
        Ok(frame)
    }
}

impl RelayFrame {
    /// Encodes the frame to the bytes of one binary WebSocket message.
    ///
    /// # Errors
    /// The error [`RelayFrame::decode`] would give on the result, instead of the result:
    /// [`Error::MalformedFrame`] for an `ERROR` message over [`MAX_ERROR_MESSAGE`] bytes or
    /// an envelope shorter than [`MIN_ENVELOPE_LEN`]; [`Error::WireVersion`] /
    /// [`Error::WrongKind`] for an envelope whose version or kind byte does not fit the
    /// frame; [`Error::FrameTooLarge`] over [`MAX_FRAME_LEN`] (e.g. a huge `NOTIFY`).
    /// Frames without a variable part (`WELCOME`, `ACK`, …) never fail.
    pub fn encode(&self) -> Result<Vec<u8>> {
        match self {
            Self::Welcome {
                relay_time,
                head_seq,
                snapshot_seq,
                presence,
                verifier_state,
                access,
                limits,
            } => {
                let mut out = start(T_WELCOME, WELCOME_BODY_LEN)?;
                out.extend_from_slice(&relay_time.to_be_bytes());
                out.extend_from_slice(&head_seq.to_be_bytes());
                out.extend_from_slice(&snapshot_seq.to_be_bytes());
                out.extend_from_slice(&presence.to_be_bytes());
                out.push(*verifier_state as u8);
                out.push(*access as u8);
                out.extend_from_slice(&limits.max_frame_bytes.to_be_bytes());
                out.extend_from_slice(&limits.rate_burst.to_be_bytes());
                out.extend_from_slice(&limits.rate_per_second.to_be_bytes());
                out.extend_from_slice(&limits.max_history_events.to_be_bytes());
                out.extend_from_slice(&limits.max_history_bytes.to_be_bytes());
                Ok(out)
            }
            Self::Ack {
                session,
                counter,
                seq,
                relay_time,
                duplicate,
            } => {
                let mut out = start(T_ACK, SessionId::LEN + 8 + 8 + 8 + 1)?;
                out.extend_from_slice(session.as_bytes());
                out.extend_from_slice(&counter.to_be_bytes());
                out.extend_from_slice(&seq.to_be_bytes());
                out.extend_from_slice(&relay_time.to_be_bytes());
                out.push(u8::from(*duplicate));
                Ok(out)
            }
            Self::Event {
                seq,
                relay_time,
                envelope,
            } => {
                let mut prefix = [0; 16];
                prefix[..8].copy_from_slice(&seq.to_be_bytes());
                prefix[8..].copy_from_slice(&relay_time.to_be_bytes());
                with_envelope(T_EVENT, &prefix, envelope, KIND_EVENT)
            }
            Self::Snapshot { seq, envelope } => {
                with_envelope(T_SNAPSHOT, &seq.to_be_bytes(), envelope, KIND_SNAPSHOT)
            }
            Self::CaughtUp { head_seq, token } => fixed(T_CAUGHT_UP, &two_u64(*head_seq, *token)),
            Self::Ephemeral { envelope } => {
                with_envelope(T_RELAY_EPHEMERAL, &[], envelope, KIND_EPHEMERAL)
            }
            Self::Presence { count } => fixed(T_PRESENCE, &count.to_be_bytes()),
            Self::Error {
                code,
                fatal,
                message,
            } => {
                let len = message_len(message, "ERROR message is over 1024 bytes")?;
                let mut out = start(T_ERROR, 2 + 1 + 2 + message.len())?;
                out.extend_from_slice(&code.code().to_be_bytes());
                out.push(u8::from(*fatal));
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(message.as_bytes());
                Ok(out)
            }
            Self::Refused {
                session,
                counter,
                code,
                retry_after_ms,
                message,
            } => {
                let len = message_len(message, "REFUSED message is over 1024 bytes")?;
                let mut out = start(T_REFUSED, SessionId::LEN + 8 + 2 + 4 + 2 + message.len())?;
                out.extend_from_slice(session.as_bytes());
                out.extend_from_slice(&counter.to_be_bytes());
                out.extend_from_slice(&code.code().to_be_bytes());
                out.extend_from_slice(&retry_after_ms.to_be_bytes());
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(message.as_bytes());
                Ok(out)
            }
            Self::Access { access } => fixed(T_ACCESS, &[*access as u8]),
            Self::Challenge { challenge } => fixed(T_CHALLENGE, challenge),
            Self::Notify { json } => {
                // `start` refuses anything over MAX_FRAME_LEN, so the length fits a u32.
                let mut out = start(T_NOTIFY, json.len().saturating_add(4))?;
                let len = u32::try_from(json.len()).map_err(|_| Error::FrameTooLarge {
                    len: json.len(),
                    max: MAX_FRAME_LEN,
                })?;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(json.as_bytes());
                Ok(out)
            }
            Self::SnapshotStored { seq } => fixed(T_SNAPSHOT_STORED, &seq.to_be_bytes()),
            Self::KeyEpoch { key_epoch } => fixed(T_KEY_EPOCH, &key_epoch.to_be_bytes()),
        }
    }

    /// Decodes one binary WebSocket message from the relay. Never panics.
    ///
    /// # Errors
    /// See the [module docs](self) for the order of checks:
    /// [`Error::FrameTooLarge`], [`Error::WireVersion`], [`Error::UnknownFrame`] (including
    /// every client → relay type), [`Error::MalformedFrame`] (truncated, trailing bytes, a
    /// flag byte not 0 or 1, an `ERROR` message over [`MAX_ERROR_MESSAGE`] bytes, text
    /// that is not UTF-8, envelope too short), [`Error::WrongKind`] (envelope kind does
    /// not fit the frame). Unknown `ERROR` codes are not an error (see [`RelayErrorCode`]).
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let (frame_type, mut r) = open(bytes)?;
        let frame = match frame_type {
            T_WELCOME => {
                let relay_time = r.u64("WELCOME ends inside relay_time")?;
                let head_seq = r.u64("WELCOME ends inside head_seq")?;
                let snapshot_seq = r.u64("WELCOME ends inside snapshot_seq")?;
                let presence = r.u32("WELCOME ends inside presence")?;
                let verifier_state = match r.u8("WELCOME ends before verifier_state")? {
                    0 => VerifierState::Created,
                    1 => VerifierState::Matched,
                    _ => {
                        return Err(Error::MalformedFrame {
                            reason: "WELCOME verifier_state is not 0 or 1",
                        })
                    }
                };
                let access = Access::decode(
                    r.u8("WELCOME ends before access")?,
                    "WELCOME access is not 0, 1 or 2",
                )?;
                let limits = RelayLimits {
                    max_frame_bytes: r.u32("WELCOME ends inside max_frame_bytes")?,
                    rate_burst: r.u32("WELCOME ends inside rate_burst")?,
                    rate_per_second: r.u32("WELCOME ends inside rate_per_second")?,
                    max_history_events: r.u64("WELCOME ends inside max_history_events")?,
                    max_history_bytes: r.u64("WELCOME ends inside max_history_bytes")?,
                };
                r.finish("WELCOME has trailing bytes")?;
                Self::Welcome {
                    relay_time,
                    head_seq,
                    snapshot_seq,
                    presence,
                    verifier_state,
                    access,
                    limits,
                }
            }
            T_ACK => {
                let session = SessionId(r.array("ACK ends inside session_id")?);
                let counter = r.u64("ACK ends inside counter")?;
                let seq = r.u64("ACK ends inside seq")?;
                let relay_time = r.u64("ACK ends inside relay_time")?;
                let duplicate = flag(
                    r.u8("ACK ends before duplicate")?,
                    "ACK duplicate is not 0 or 1",
                )?;
                r.finish("ACK has trailing bytes")?;
                Self::Ack {
                    session,
                    counter,
                    seq,
                    relay_time,
                    duplicate,
                }
            }
            T_EVENT => Self::Event {
                seq: r.u64("EVENT ends inside seq")?,
                relay_time: r.u64("EVENT ends inside relay_time")?,
                envelope: envelope(r.rest(), KIND_EVENT)?,
            },
            T_SNAPSHOT => Self::Snapshot {
                seq: r.u64("SNAPSHOT ends inside seq")?,
                envelope: envelope(r.rest(), KIND_SNAPSHOT)?,
            },
            T_CAUGHT_UP => {
                let head_seq = r.u64("CAUGHT_UP ends inside head_seq")?;
                let token = r.u64("CAUGHT_UP ends inside token")?;
                r.finish("CAUGHT_UP has trailing bytes")?;
                Self::CaughtUp { head_seq, token }
            }
            T_RELAY_EPHEMERAL => Self::Ephemeral {
                envelope: envelope(r.rest(), KIND_EPHEMERAL)?,
            },
            T_PRESENCE => {
                let count = r.u32("PRESENCE ends inside count")?;
                r.finish("PRESENCE has trailing bytes")?;
                Self::Presence { count }
            }
            T_ERROR => {
                let code = RelayErrorCode::from(r.u16("ERROR ends inside code")?);
                let fatal = flag(
                    r.u8("ERROR ends before fatal")?,
                    "ERROR fatal is not 0 or 1",
                )?;
                let len = usize::from(r.u16("ERROR ends inside message_len")?);
                if len > MAX_ERROR_MESSAGE {
                    return Err(Error::MalformedFrame {
                        reason: "ERROR message_len is over 1024",
                    });
                }
                let message = text(
                    r.bytes(len, "ERROR ends inside message")?,
                    "ERROR message is not UTF-8",
                )?;
                r.finish("ERROR has trailing bytes after its message")?;
                Self::Error {
                    code,
                    fatal,
                    message,
                }
            }
            T_NOTIFY => {
                let len = r.u32("NOTIFY ends inside json_len")?;
                // A length that does not fit usize cannot fit the input either.
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                let json = text(
                    r.bytes(len, "NOTIFY ends inside json")?,
                    "NOTIFY json is not UTF-8",
                )?;
                r.finish("NOTIFY has trailing bytes after its json")?;
                Self::Notify { json }
            }
            T_SNAPSHOT_STORED => {
                let seq = r.u64("SNAPSHOT_STORED ends inside seq")?;
                r.finish("SNAPSHOT_STORED has trailing bytes")?;
                Self::SnapshotStored { seq }
            }
            T_REFUSED => {
                let session = SessionId(r.array("REFUSED ends inside session_id")?);
                let counter = r.u64("REFUSED ends inside counter")?;
                let code = RelayErrorCode::from(r.u16("REFUSED ends inside code")?);
                let retry_after_ms = r.u32("REFUSED ends inside retry_after_ms")?;
                let len = usize::from(r.u16("REFUSED ends inside message_len")?);
                if len > MAX_ERROR_MESSAGE {
                    return Err(Error::MalformedFrame {
                        reason: "REFUSED message_len is over 1024",
                    });
                }
                let message = text(
                    r.bytes(len, "REFUSED ends inside message")?,
                    "REFUSED message is not UTF-8",
                )?;
                r.finish("REFUSED has trailing bytes after its message")?;
                Self::Refused {
                    session,
                    counter,
                    code,
                    retry_after_ms,
                    message,
                }
            }
            T_CHALLENGE => {
                let challenge = r.array("CHALLENGE ends inside challenge")?;
                r.finish("CHALLENGE has trailing bytes")?;
                Self::Challenge { challenge }
            }
            T_ACCESS => {
                let access = Access::decode(
                    r.u8("ACCESS ends before access")?,
                    "ACCESS access is not 0, 1 or 2",
                )?;
                r.finish("ACCESS has trailing bytes")?;
                Self::Access { access }
            }
            T_KEY_EPOCH => {
                let key_epoch = r.u32("KEY_EPOCH ends inside key_epoch")?;
                r.finish("KEY_EPOCH has trailing bytes")?;
                Self::KeyEpoch { key_epoch }
            }
            other => return Err(Error::UnknownFrame { frame_type: other }),
        };
        Ok(frame)
    }
}

/// Encodes an `EVENT` frame straight from stored parts, without building a [`RelayFrame`]
/// (the relay's hot path: one allocation, one copy of the envelope).
///
/// The envelope is not checked: pass one that came out of a decoded `PUBLISH` (which
/// checked its length, version and kind). The output equals
/// `RelayFrame::Event { seq, relay_time, envelope }.encode()` whenever that succeeds.
#[must_use]
pub fn encode_event(seq: u64, relay_time: u64, envelope: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(envelope.len().saturating_add(2 + 16));
    out.push(VERSION);
    out.push(T_EVENT);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&relay_time.to_be_bytes());
    out.extend_from_slice(envelope);
    out
}

/// Checks the total length of a frame with a `body_len`-byte body and returns an empty
/// buffer of that capacity holding the header.
fn start(frame_type: u8, body_len: usize) -> Result<Vec<u8>> {
    let len = body_len.saturating_add(2);
    if len > MAX_FRAME_LEN {
        return Err(Error::FrameTooLarge {
            len,
            max: MAX_FRAME_LEN,
        });
    }
    let mut out = Vec::with_capacity(len);
    out.push(VERSION);
    out.push(frame_type);
    Ok(out)
}

/// The bytes of a `ROTATE` before its envelope: `key_epoch`, `member_key`, `proof`,
/// `upto_seq`.
pub const ROTATE_PREFIX_LEN: usize = 4 + MEMBER_KEY_LEN + PROOF_LEN + 8;

/// The body length of a `WELCOME`.
const WELCOME_BODY_LEN: usize = 8 + 8 + 8 + 4 + 1 + 1 + 4 + 4 + 4 + 8 + 8;

/// A message's length as its `u16` prefix, when it is within [`MAX_ERROR_MESSAGE`].
fn message_len(message: &str, reason: &'static str) -> Result<u16> {
    u16::try_from(message.len())
        .ok()
        .filter(|&len| usize::from(len) <= MAX_ERROR_MESSAGE)
        .ok_or(Error::MalformedFrame { reason })
}

/// The envelope header of a `PUBLISH` frame, read without decoding the whole frame: how
/// a relay names the change in a `REFUSED` for a frame over its size limit. `None` when
/// `frame` is not a version-2 `PUBLISH` or its envelope header does not parse.
#[must_use]
pub fn publish_header(frame: &[u8]) -> Option<crate::envelope::EnvelopeHeader> {
    match frame {
        [VERSION, T_PUBLISH, envelope @ ..] => crate::envelope::EnvelopeHeader::parse(envelope)
            .ok()
            .map(|(header, _)| header)
            .filter(|h| h.kind == EnvelopeKind::Event),
        _ => None,
    }
}

/// A frame whose body is exactly `body`.
/// Two big-endian `u64`s, back to back.
fn two_u64(a: u64, b: u64) -> [u8; 16] {
    let mut out = [0; 16];
    out[..8].copy_from_slice(&a.to_be_bytes());
    out[8..].copy_from_slice(&b.to_be_bytes());
    out
}

fn fixed(frame_type: u8, body: &[u8]) -> Result<Vec<u8>> {
    let mut out = start(frame_type, body.len())?;
    out.extend_from_slice(body);
    Ok(out)
}

/// A frame whose body is `prefix` then a checked envelope of `kind`.
fn with_envelope(frame_type: u8, prefix: &[u8], envelope: &[u8], kind: u8) -> Result<Vec<u8>> {
    check_envelope(envelope, kind)?;
    let mut out = start(frame_type, prefix.len().saturating_add(envelope.len()))?;
    out.extend_from_slice(prefix);
    out.extend_from_slice(envelope);
    Ok(out)
}

/// `len` as a `channel_count` byte, when it is in `1..=MAX_CHANNELS`.
fn channel_count(len: usize) -> Result<u8> {
    if len == 0 {
        return Err(Error::MalformedFrame {
            reason: "HELLO channel_count is 0 (1 to 16 channels allowed)",
        });
    }
    if len > MAX_CHANNELS {
        return Err(Error::MalformedFrame {
            reason: "HELLO channel_count is over 16",
        });
    }
    u8::try_from(len).map_err(|_| Error::MalformedFrame {
        reason: "HELLO channel_count is over 16",
    })
}

/// Checks the envelope bytes this codec is responsible for: length, version and kind.
fn check_envelope(envelope: &[u8], kind: u8) -> Result<()> {
    match envelope {
        short if short.len() < MIN_ENVELOPE_LEN => Err(Error::MalformedFrame {
            reason: "envelope is shorter than 170 bytes (90-byte header, 64-byte padded plaintext, 16-byte tag)",
        }),
        [version, ..] if *version != ENVELOPE_VERSION => Err(Error::WireVersion {
            found: *version,
            expected: ENVELOPE_VERSION,
        }),
        [_, found, ..] if *found != kind => Err(Error::WrongKind { found: *found }),
        _ => Ok(()),
    }
}

/// A checked copy of an envelope of `kind`.
fn envelope(bytes: &[u8], kind: u8) -> Result<Vec<u8>> {
    check_envelope(bytes, kind)?;
    Ok(bytes.to_vec())
}

/// A flag byte: 0 or 1.
fn flag(byte: u8, reason: &'static str) -> Result<bool> {
    match byte {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(Error::MalformedFrame { reason }),
    }
}

/// An owned copy of UTF-8 text.
fn text(bytes: &[u8], reason: &'static str) -> Result<String> {
    core::str::from_utf8(bytes)
        .map(String::from)
        .map_err(|_| Error::MalformedFrame { reason })
}

/// Checks the frame header and returns the type byte and a reader over the body.
fn open(bytes: &[u8]) -> Result<(u8, Reader<'_>)> {
    if bytes.len() > MAX_FRAME_LEN {
        return Err(Error::FrameTooLarge {
            len: bytes.len(),
            max: MAX_FRAME_LEN,
        });
    }
    let mut r = Reader { bytes };
    let version = r.u8("empty frame")?;
    if version != VERSION {
        return Err(Error::WireVersion {
            found: version,
            expected: VERSION,
        });
    }
    let frame_type = r.u8("frame ends before its type byte")?;
    Ok((frame_type, r))
}

/// A cursor over untrusted bytes: every read checks the remaining length and fails with
/// [`Error::MalformedFrame`] carrying the caller's `reason` instead of reading past the end.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    /// The next `n` bytes.
    fn bytes(&mut self, n: usize, reason: &'static str) -> Result<&'a [u8]> {
        let (head, tail) = self
            .bytes
            .split_at_checked(n)
            .ok_or(Error::MalformedFrame { reason })?;
        self.bytes = tail;
        Ok(head)
    }

    /// The next `N` bytes as an array.
    fn array<const N: usize>(&mut self, reason: &'static str) -> Result<[u8; N]> {
        let (head, tail) = self
            .bytes
            .split_first_chunk::<N>()
            .ok_or(Error::MalformedFrame { reason })?;
        self.bytes = tail;
        Ok(*head)
    }

    fn u8(&mut self, reason: &'static str) -> Result<u8> {
        self.array::<1>(reason).map(|[b]| b)
    }

    fn u16(&mut self, reason: &'static str) -> Result<u16> {
        self.array(reason).map(u16::from_be_bytes)
    }

    fn u32(&mut self, reason: &'static str) -> Result<u32> {
        self.array(reason).map(u32::from_be_bytes)
    }

    fn u64(&mut self, reason: &'static str) -> Result<u64> {
        self.array(reason).map(u64::from_be_bytes)
    }

    /// Every remaining byte.
    fn rest(self) -> &'a [u8] {
        self.bytes
    }

    /// Succeeds only when every byte has been read.
    fn finish(self, reason: &'static str) -> Result<()> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(Error::MalformedFrame { reason })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    fn env(kind: u8) -> Vec<u8> {
        let mut e = vec![0xAB; MIN_ENVELOPE_LEN];
        e[0] = 1;
        e[1] = kind;
        e
    }

    #[test]
    fn sync_matches_the_protocol_table() {
        let bytes = ClientFrame::Sync {
            after_seq: 0x0102_0304_0506_0708,
            token: 0x1112_1314_1516_1718,
        }
        .encode()
        .unwrap();
        assert_eq!(
            bytes,
            [2, 3, 1, 2, 3, 4, 5, 6, 7, 8, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18]
        );
    }

    #[test]
    fn error_matches_the_protocol_table() {
        let bytes = RelayFrame::Error {
            code: RelayErrorCode::RoomFull,
            fatal: true,
            message: String::from("hi"),
        }
        .encode()
        .unwrap();
        assert_eq!(bytes, [2, 0x88, 0, 7, 1, 0, 2, b'h', b'i']);
    }

    #[test]
    fn encode_event_equals_the_frame_encoding() {
        let e = env(KIND_EVENT);
        let frame = RelayFrame::Event {
            seq: 9,
            relay_time: 77,
            envelope: e.clone(),
        };
        assert_eq!(encode_event(9, 77, &e), frame.encode().unwrap());
    }

    #[test]
    fn error_codes_convert_both_ways() {
        for code in 0..=u16::MAX {
            assert_eq!(RelayErrorCode::from(code).code(), code);
        }
        assert_eq!(RelayErrorCode::from(2).name(), "WRONG_VERIFIER");
        assert_eq!(RelayErrorCode::from(13).name(), "READ_ONLY");
        assert_eq!(RelayErrorCode::from(14).name(), "DUPLICATE_MISMATCH");
        assert_eq!(RelayErrorCode::from(15).name(), "ROTATED");
        assert_eq!(RelayErrorCode::from(16).name(), "NOT_CAUGHT_UP");
        assert_eq!(RelayErrorCode::from(17).name(), "UNKNOWN");
        assert_eq!(RelayErrorCode::from(17).to_string(), "UNKNOWN(17)");
    }

    #[test]
    fn fatal_codes_and_close_codes_follow_the_table() {
        let expected: [(u16, Option<u16>); 16] = [
            (1, None),
            (2, Some(4001)),
            (3, Some(4003)),
            (4, Some(4400)),
            (5, Some(1009)),
            (6, Some(1008)),
            (7, Some(4029)),
            (8, None),
            (9, None),
            (10, Some(4010)),
            (11, None),
            (12, None),
            (13, None),
            (14, None),
            (15, Some(4005)),
            (16, None),
        ];
        for (code, close) in expected {
            let c = RelayErrorCode::from(code);
            assert_eq!(c.close_code(), close, "{c}");
            assert_eq!(
                c.is_fatal(),
                close.is_some() && !matches!(code, 5 | 6 | 15),
                "{c}"
            );
        }
    }

    #[test]
    fn encode_refuses_what_decode_would_refuse() {
        let hello = |n: usize| ClientFrame::Hello {
            after_seq: 0,
            member_key: [0; 32],
            proof: [0; 64],
            channels: vec![ChannelTag([0; 16]); n],
        };
        assert_eq!(hello(0).encode().unwrap_err().code(), "MALFORMED_FRAME");
        assert_eq!(hello(17).encode().unwrap_err().code(), "MALFORMED_FRAME");
        assert!(hello(16).encode().is_ok());
        let long = RelayFrame::Error {
            code: RelayErrorCode::BadFrame,
            fatal: false,
            message: "x".repeat(MAX_ERROR_MESSAGE + 1),
        };
        assert_eq!(long.encode().unwrap_err().code(), "MALFORMED_FRAME");
        let wrong = ClientFrame::Publish {
            envelope: env(KIND_SNAPSHOT),
        };
        assert_eq!(wrong.encode(), Err(Error::WrongKind { found: 2 }));
        let huge = RelayFrame::Notify {
            json: "x".repeat(MAX_FRAME_LEN),
        };
        assert_eq!(huge.encode().unwrap_err().code(), "FRAME_TOO_LARGE");
    }

    #[test]
    fn decode_checks_size_before_anything_else() {
        let mut big = vec![0xFF; MAX_FRAME_LEN + 1];
        big[0] = VERSION;
        assert_eq!(
            ClientFrame::decode(&big),
            Err(Error::FrameTooLarge {
                len: MAX_FRAME_LEN + 1,
                max: MAX_FRAME_LEN
            })
        );
    }

    #[test]
    fn envelope_checks_run_length_then_version_then_kind() {
        let mut e = env(KIND_SNAPSHOT);
        e[0] = 2;
        assert_eq!(
            check_envelope(&e, KIND_EVENT),
            Err(Error::WireVersion {
                found: 2,
                expected: 1
            })
        );
        e.truncate(MIN_ENVELOPE_LEN - 1);
        assert_eq!(
            check_envelope(&e, KIND_EVENT).unwrap_err().code(),
            "MALFORMED_FRAME"
        );
    }
}
