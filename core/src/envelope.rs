//! The envelope header: the 90 cleartext bytes in front of every sealed message.
//!
//! The relay reads this header (to check the kind and to index by session and counter)
//! but never the ciphertext behind it. Its byte layout is PROTOCOL.md, section "Envelope":
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 1 | envelope version [`ENVELOPE_VERSION`] |
//! | 1 | 1 | [`EnvelopeKind`] |
//! | 2 | 4 | `key_epoch u32` |
//! | 6 | 16 | [`ChannelTag`] |
//! | 22 | 16 | [`SessionId`] |
//! | 38 | 8 | `counter u64` |
//! | 46 | 12 | nonce |
//! | 58 | 32 | commitment |
//! | 90 | rest | AES-256-GCM ciphertext, then the 16-byte tag |
//!
//! Bytes `0..58` ([`ENVELOPE_AD_HEADER_LEN`]) are part of the associated data.

use alloc::vec::Vec;

use crate::error::{Error, Result};
use crate::ids::{ChannelTag, SessionId};

/// The envelope format version this build writes and accepts.
pub const ENVELOPE_VERSION: u8 = 1;

/// Length of the cleartext header in bytes; the ciphertext starts here.
pub const ENVELOPE_HEADER_LEN: usize = 90;

/// Length of the header prefix that goes into the associated data (everything before the
/// commitment).
pub const ENVELOPE_AD_HEADER_LEN: usize = 58;

/// The shortest ciphertext a valid envelope carries: the minimum padded inner plaintext
/// (64 bytes) plus the 16-byte AES-GCM tag.
pub const MIN_CIPHERTEXT_LEN: usize = 64 + 16;

/// The shortest valid envelope: header plus [`MIN_CIPHERTEXT_LEN`].
pub const MIN_ENVELOPE_LEN: usize = ENVELOPE_HEADER_LEN + MIN_CIPHERTEXT_LEN;

const KIND: usize = 1;
const EPOCH: usize = 2;
const CHANNEL: usize = 6;
const SESSION: usize = 22;
const COUNTER: usize = 38;
const NONCE: usize = 46;
const COMMITMENT: usize = ENVELOPE_AD_HEADER_LEN;

/// What an envelope carries. The relay checks it against the frame type
/// (e.g. `PUBLISH` takes only [`EnvelopeKind::Event`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum EnvelopeKind {
    /// A stored operation.
    Event = 1,
    /// A stored snapshot of the whole state.
    Snapshot = 2,
    /// A broadcast payload that is never stored (cursors, typing indicators).
    Ephemeral = 3,
    /// The next key epoch's key sealed under the current one (reserved for key rotation).
    KeyWrap = 4,
}

impl EnvelopeKind {
    /// The wire byte.
    #[must_use]
    pub const fn as_u8(self) -> u8 {
        self as u8
    }
}

impl TryFrom<u8> for EnvelopeKind {
    type Error = Error;

    /// # Errors
    /// [`Error::WrongKind`] for any byte other than 1 to 4.
    fn try_from(byte: u8) -> Result<Self> {
        match byte {
            1 => Ok(Self::Event),
            2 => Ok(Self::Snapshot),
            3 => Ok(Self::Ephemeral),
            4 => Ok(Self::KeyWrap),
            found => Err(Error::WrongKind { found }),
        }
    }
}

impl From<EnvelopeKind> for u8 {
    fn from(kind: EnvelopeKind) -> Self {
        kind.as_u8()
    }
}

/// The parsed cleartext header of an envelope (everything but the ciphertext).
///
/// Parsing checks the structure only; nothing here is authenticated until
/// [`crate::seal::Opener::open`] has checked the commitment and the AES-GCM tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnvelopeHeader {
    /// What the envelope carries.
    pub kind: EnvelopeKind,
    /// The key epoch it was sealed under (0 = the key from the password or secret).
    pub key_epoch: u32,
    /// The relay-visible channel tag.
    pub channel: ChannelTag,
    /// The sender's session id.
    pub session: SessionId,
    /// The sender's per-session counter (1, 2, 3, …).
    pub counter: u64,
    /// The AES-GCM nonce (96 random bits).
    pub nonce: [u8; 12],
    /// HMAC-SHA256 of the associated data under the session's commitment key.
    pub commitment: [u8; 32],
}

impl EnvelopeHeader {
    /// Parses the 90-byte header of `envelope` and returns it with the ciphertext behind it
    /// (ciphertext and tag, at least [`MIN_CIPHERTEXT_LEN`] bytes). Never panics.
    ///
    /// # Errors
    /// - [`Error::MalformedFrame`] when `envelope` is empty or shorter than
    ///   [`MIN_ENVELOPE_LEN`];
    /// - [`Error::WireVersion`] when the version byte is not [`ENVELOPE_VERSION`] (checked
    ///   before the length, so that a future, shorter format reports its version);
    /// - [`Error::WrongKind`] when the kind byte is not 1 to 4.
    pub fn parse(envelope: &[u8]) -> Result<(Self, &[u8])> {
        let Some(&version) = envelope.first() else {
            return Err(Error::MalformedFrame {
                reason: "the envelope is empty",
            });
        };
        if version != ENVELOPE_VERSION {
            return Err(Error::WireVersion {
                found: version,
                expected: ENVELOPE_VERSION,
            });
        }
        let Some((header, ciphertext)) = envelope.split_first_chunk::<ENVELOPE_HEADER_LEN>() else {
            return Err(Error::MalformedFrame {
                reason: "the envelope is shorter than its 90-byte header",
            });
        };
        if ciphertext.len() < MIN_CIPHERTEXT_LEN {
            return Err(Error::MalformedFrame {
                reason: "the envelope's ciphertext is shorter than 80 bytes",
            });
        }
        let kind = EnvelopeKind::try_from(header[KIND])?;
        let parsed = Self {
            kind,
            key_epoch: u32::from_be_bytes(array(&header[EPOCH..CHANNEL])),
            channel: ChannelTag(array(&header[CHANNEL..SESSION])),
            session: SessionId(array(&header[SESSION..COUNTER])),
            counter: u64::from_be_bytes(array(&header[COUNTER..NONCE])),
            nonce: array(&header[NONCE..COMMITMENT]),
            commitment: array(&header[COMMITMENT..ENVELOPE_HEADER_LEN]),
        };
        Ok((parsed, ciphertext))
    }

    /// Appends the 90 header bytes to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.ad_bytes());
        out.extend_from_slice(&self.commitment);
    }

    /// The first [`ENVELOPE_AD_HEADER_LEN`] bytes of the header (everything before the
    /// commitment), exactly as they go into the associated data.
    #[must_use]
    pub fn ad_bytes(&self) -> [u8; ENVELOPE_AD_HEADER_LEN] {
        let mut bytes = [0u8; ENVELOPE_AD_HEADER_LEN];
        bytes[0] = ENVELOPE_VERSION;
        bytes[KIND] = self.kind.as_u8();
        bytes[EPOCH..CHANNEL].copy_from_slice(&self.key_epoch.to_be_bytes());
        bytes[CHANNEL..SESSION].copy_from_slice(self.channel.as_bytes());
        bytes[SESSION..COUNTER].copy_from_slice(self.session.as_bytes());
        bytes[COUNTER..NONCE].copy_from_slice(&self.counter.to_be_bytes());
        bytes[NONCE..COMMITMENT].copy_from_slice(&self.nonce);
        bytes
    }
}

/// Copies a slice whose length the caller's constant offsets guarantee into an array.
fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> EnvelopeHeader {
        EnvelopeHeader {
            kind: EnvelopeKind::Snapshot,
            key_epoch: 0x0102_0304,
            channel: ChannelTag([0x11; 16]),
            session: SessionId([0x22; 16]),
            counter: 0x0a0b_0c0d_0e0f_1011,
            nonce: [0x33; 12],
            commitment: [0x44; 32],
        }
    }

    #[test]
    fn header_bytes_sit_at_the_documented_offsets() {
        let mut out = Vec::new();
        sample().write_to(&mut out);
        assert_eq!(out.len(), ENVELOPE_HEADER_LEN);
        assert_eq!(out[0], 1);
        assert_eq!(out[1], 2);
        assert_eq!(out[2..6], [1, 2, 3, 4]);
        assert_eq!(out[6..22], [0x11; 16]);
        assert_eq!(out[22..38], [0x22; 16]);
        assert_eq!(
            out[38..46],
            [0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11]
        );
        assert_eq!(out[46..58], [0x33; 12]);
        assert_eq!(out[58..90], [0x44; 32]);
    }

    #[test]
    fn parse_inverts_write_to() {
        let mut out = Vec::new();
        sample().write_to(&mut out);
        out.extend_from_slice(&[0x55; MIN_CIPHERTEXT_LEN]);
        let (header, rest) = EnvelopeHeader::parse(&out).unwrap();
        assert_eq!(header, sample());
        assert_eq!(rest, &[0x55; MIN_CIPHERTEXT_LEN][..]);
    }

    #[test]
    fn every_truncation_is_malformed_and_never_panics() {
        let mut out = Vec::new();
        sample().write_to(&mut out);
        out.extend_from_slice(&[0; MIN_CIPHERTEXT_LEN]);
        for len in 0..out.len() {
            let err = EnvelopeHeader::parse(&out[..len]).unwrap_err();
            assert_eq!(err.code(), "MALFORMED_FRAME", "length {len}");
        }
    }

    #[test]
    fn version_and_kind_bytes_are_checked() {
        let mut out = Vec::new();
        sample().write_to(&mut out);
        out.extend_from_slice(&[0; MIN_CIPHERTEXT_LEN]);
        for version in [0u8, 2, 0xff] {
            let mut bad = out.clone();
            bad[0] = version;
            let err = EnvelopeHeader::parse(&bad).unwrap_err();
            assert_eq!(
                err,
                Error::WireVersion {
                    found: version,
                    expected: 1
                }
            );
            // A future version is recognised even when its envelope is short.
            assert_eq!(
                EnvelopeHeader::parse(&bad[..1]).unwrap_err().code(),
                "WIRE_VERSION"
            );
        }
        for kind in [0u8, 5, 0x80, 0xff] {
            let mut bad = out.clone();
            bad[1] = kind;
            let err = EnvelopeHeader::parse(&bad).unwrap_err();
            assert_eq!(err, Error::WrongKind { found: kind });
        }
    }

    #[test]
    fn kind_bytes_round_trip() {
        for kind in [
            EnvelopeKind::Event,
            EnvelopeKind::Snapshot,
            EnvelopeKind::Ephemeral,
            EnvelopeKind::KeyWrap,
        ] {
            assert_eq!(EnvelopeKind::try_from(u8::from(kind)), Ok(kind));
        }
    }
}
