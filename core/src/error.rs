//! The one error type of `sealsync-core`.

use alloc::string::String;

/// Everything that can go wrong in the core, with who is at fault in each variant's docs.
///
/// Each variant has a stable machine-readable [`Error::code`]; shipped codes never change.
/// Failures to open a sealed envelope are deliberately one opaque variant,
/// [`Error::DecryptFailed`], so that no caller (and no attacker) can tell a wrong key from
/// tampering.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The envelope could not be opened: wrong key, wrong room, or altered bytes.
    /// At fault: the sender or the network (or the user typed another password).
    #[error("could not open the message: wrong room key or the message was altered")]
    DecryptFailed,
    /// The key opened the envelope but its inner plaintext is not well formed.
    /// At fault: a peer holding the room key that runs incompatible or hostile code.
    #[error("the message opened but its contents are malformed: {reason}")]
    MalformedPlaintext {
        /// What was wrong.
        reason: &'static str,
    },
    /// This session has sealed 2^32 − 1 messages; a new session (new session id) is needed.
    /// At fault: nobody; the SDK starts a new session.
    #[error("this session has sealed its maximum number of messages; start a new session")]
    SessionExhausted,
    /// The body is over the protocol's per-envelope limit.
    /// At fault: the application (split the data).
    #[error("the message body is {len} bytes, over the limit of {max} bytes")]
    BodyTooLarge {
        /// The body's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The room id is empty, too long, or holds a forbidden character.
    /// At fault: the application or the user.
    #[error("invalid room id: {reason}")]
    InvalidRoomId {
        /// What was wrong.
        reason: &'static str,
    },
    /// A room secret is not 32 bytes of base64url.
    /// At fault: the user (a truncated or edited share link).
    #[error("invalid room secret: {reason}")]
    InvalidSecret {
        /// What was wrong.
        reason: &'static str,
    },
    /// A key rotation (or a new key after one) was refused before anything was sent.
    /// At fault: the caller (see the reason).
    #[error("the key rotation was refused: {reason}")]
    Rotation {
        /// Why.
        reason: &'static str,
    },
    /// The password is empty.
    /// At fault: the user.
    #[error("the room password must not be empty")]
    EmptyPassword,
    /// The frame or envelope was written by another protocol version.
    /// At fault: an outdated SDK or relay; upgrade it.
    #[error("unsupported protocol version {found} (this build speaks version {expected})")]
    WireVersion {
        /// Version byte found.
        found: u8,
        /// Version this build speaks.
        expected: u8,
    },
    /// The frame type byte is not one this version knows.
    /// At fault: the peer.
    #[error("unknown frame type 0x{frame_type:02x}")]
    UnknownFrame {
        /// The type byte.
        frame_type: u8,
    },
    /// The frame is over [`crate::wire::MAX_FRAME_LEN`].
    /// At fault: the peer.
    #[error("frame of {len} bytes is over the limit of {max} bytes")]
    FrameTooLarge {
        /// The frame's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The frame is truncated, has trailing bytes, or a field out of range.
    /// At fault: the peer.
    #[error("malformed frame: {reason}")]
    MalformedFrame {
        /// What was wrong.
        reason: &'static str,
    },
    /// The envelope's kind does not fit where it was used (e.g. a snapshot in `PUBLISH`).
    /// At fault: the peer.
    #[error("envelope kind {found} is not allowed here")]
    WrongKind {
        /// The kind byte found.
        found: u8,
    },
    /// An operation is not valid (empty id, unknown collection name form, bad JSON shape).
    /// At fault: the application, or a peer holding the key.
    #[error("invalid operation: {reason}")]
    InvalidOperation {
        /// What was wrong.
        reason: String,
    },
    /// Too many local changes await the relay's acknowledgement; the change was refused and
    /// nothing was lost. At fault: a long offline period; reconnect to drain the outbox.
    #[error("too many unsent changes are waiting for the relay; reconnect before making more")]
    OutboxFull,
    /// The relay said this member may read the room but not change it (a `viewer` role);
    /// the change was refused and nothing changed. At fault: the caller (check the access).
    #[error("this member may read the room but not change it (read-only role)")]
    ReadOnly,
    /// A snapshot of the replicated state is not well formed or has another version.
    /// At fault: a peer holding the room key that runs incompatible or hostile code.
    #[error("invalid snapshot: {reason}")]
    InvalidSnapshot {
        /// What was wrong.
        reason: String,
    },
    /// A member frame (who is online, `crate::roster`) is not well formed, or a profile is
    /// over the limit. At fault: the application (a profile too long), or a peer holding
    /// the key that runs incompatible or hostile code.
    #[error("invalid member frame or profile: {reason}")]
    InvalidMember {
        /// What was wrong.
        reason: String,
    },
    /// The key derivation function failed (its parameters were refused).
    /// At fault: a caller bug; please report it.
    #[error("key derivation failed: {reason}")]
    Kdf {
        /// The underlying reason.
        reason: &'static str,
    },
}

impl Error {
    /// Every code [`Error::code`] can return. Shipped codes never change.
    pub const CODES: &'static [&'static str] = &[
        "DECRYPT_FAILED",
        "MALFORMED_PLAINTEXT",
        "SESSION_EXHAUSTED",
        "BODY_TOO_LARGE",
        "INVALID_ROOM_ID",
        "INVALID_SECRET",
        "EMPTY_PASSWORD",
        "WIRE_VERSION",
        "UNKNOWN_FRAME",
        "FRAME_TOO_LARGE",
        "MALFORMED_FRAME",
        "WRONG_KIND",
        "INVALID_OPERATION",
        "INVALID_SNAPSHOT",
        "KDF_FAILED",
        "OUTBOX_FULL",
        "READ_ONLY",
        "INVALID_MEMBER",
        "ROTATION_REFUSED",
    ];

    /// A stable, machine-readable code (`SCREAMING_SNAKE_CASE`) for this error.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::DecryptFailed => "DECRYPT_FAILED",
            Self::MalformedPlaintext { .. } => "MALFORMED_PLAINTEXT",
            Self::SessionExhausted => "SESSION_EXHAUSTED",
            Self::BodyTooLarge { .. } => "BODY_TOO_LARGE",
            Self::InvalidRoomId { .. } => "INVALID_ROOM_ID",
            Self::InvalidSecret { .. } => "INVALID_SECRET",
            Self::EmptyPassword => "EMPTY_PASSWORD",
            Self::WireVersion { .. } => "WIRE_VERSION",
            Self::UnknownFrame { .. } => "UNKNOWN_FRAME",
            Self::FrameTooLarge { .. } => "FRAME_TOO_LARGE",
            Self::MalformedFrame { .. } => "MALFORMED_FRAME",
            Self::WrongKind { .. } => "WRONG_KIND",
            Self::InvalidOperation { .. } => "INVALID_OPERATION",
            Self::InvalidSnapshot { .. } => "INVALID_SNAPSHOT",
            Self::Kdf { .. } => "KDF_FAILED",
            Self::OutboxFull => "OUTBOX_FULL",
            Self::ReadOnly => "READ_ONLY",
            Self::InvalidMember { .. } => "INVALID_MEMBER",
            Self::Rotation { .. } => "ROTATION_REFUSED",
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_pinned() {
        // Shipped codes never change: a failure here means a breaking change.
        let samples = [
            Error::DecryptFailed,
            Error::MalformedPlaintext { reason: "x" },
            Error::SessionExhausted,
            Error::BodyTooLarge { len: 2, max: 1 },
            Error::InvalidRoomId { reason: "x" },
            Error::InvalidSecret { reason: "x" },
            Error::EmptyPassword,
            Error::WireVersion {
                found: 2,
                expected: 1,
            },
            Error::UnknownFrame { frame_type: 0x7f },
            Error::FrameTooLarge { len: 2, max: 1 },
            Error::MalformedFrame { reason: "x" },
            Error::WrongKind { found: 9 },
            Error::InvalidOperation {
                reason: String::from("x"),
            },
            Error::InvalidSnapshot {
                reason: String::from("x"),
            },
            Error::Kdf { reason: "x" },
            Error::OutboxFull,
            Error::ReadOnly,
            Error::InvalidMember {
                reason: String::from("x"),
            },
            Error::Rotation { reason: "x" },
        ];
        let codes: alloc::vec::Vec<&str> = samples.iter().map(Error::code).collect();
        assert_eq!(codes, Error::CODES);
    }
}
