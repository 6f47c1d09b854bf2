//! Sealing and opening envelopes: per-session subkeys, Padmé padding, AES-256-GCM and a
//! key commitment. PROTOCOL.md, sections "Envelope" and "Inner plaintext".
//!
//! A [`SessionSealer`] seals one SDK session's messages; an [`Opener`] opens anyone's.
//! Every failure to open that a party without the key could cause is the one opaque
//! [`Error::DecryptFailed`].

use alloc::vec::Vec;
use core::fmt;

use sealsync_aead::Gcm;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::envelope::{EnvelopeHeader, EnvelopeKind, ENVELOPE_HEADER_LEN};
use crate::error::{Error, Result};
use crate::hlc::Hlc;
use crate::ids::{ChannelTag, DeviceId, SessionId};
use crate::kdf::{self, RoomKeys, KEY_LEN};

/// The largest body one envelope carries, in bytes (10^6): the largest round number whose
/// `SNAPSHOT_PUT` frame fits the 1 MiB message limit of a Cloudflare Worker.
/// [`SessionSealer::seal`] fails [`Error::BodyTooLarge`] above it.
pub const MAX_BODY_LEN: usize = 1_000_000;

/// The longest envelope [`SessionSealer::seal`] produces (1,015,914 bytes): header, the
/// Padmé length of a [`MAX_BODY_LEN`] body's inner plaintext, and the tag. A relay's frame
/// limit must leave room for it plus the frame header (10 bytes for `SNAPSHOT_PUT`).
pub const MAX_ENVELOPE_LEN: usize =
    ENVELOPE_HEADER_LEN + padded_len(INNER_HEADER_LEN + MAX_BODY_LEN) + TAG_LEN;

/// The last counter a session may seal under: a session seals at most 2^32 − 1 messages
/// (random 96-bit nonces stay collision-safe up to 2^32 messages per key).
pub const MAX_COUNTER: u64 = (1 << 32) - 1;

/// The inner plaintext's version byte.
pub const INNER_VERSION: u8 = 1;

/// Length of the inner plaintext's header: version, device id, HLC wall and counter,
/// body length.
pub const INNER_HEADER_LEN: usize = 1 + DeviceId::LEN + 8 + 4 + 4;

/// The smallest padded inner plaintext, in bytes.
pub const MIN_PADDED_LEN: usize = 64;

/// The AES-GCM tag at the end of every envelope, in bytes.
pub const TAG_LEN: usize = 16;

/// Domain-separation prefix of the associated data.
const AD_LABEL: &[u8] = b"sealsync/v1/ad";

/// The Padmé length of an inner plaintext of `inner_len` bytes, at least
/// [`MIN_PADDED_LEN`]: the length is rounded up so that only its top
/// ⌊log2 ⌊log2 L⌋⌋ + 1 bits may be non-zero. The overhead stays under 12 % (at most 1/8
/// from 64 to 255 bytes, 1/16 from 256 bytes to 64 KiB, less beyond) and the number of
/// distinct lengths, which is what the relay can see, grows only like (log L)^2.
///
/// Monotonic and never less than `inner_len`; saturates at `usize::MAX`.
#[must_use]
pub const fn padded_len(inner_len: usize) -> usize {
    let len = if inner_len < MIN_PADDED_LEN {
        MIN_PADDED_LEN
    } else {
        inner_len
    };
    // len ≥ 64, so e ≥ 6, s ≥ 3 and e − s ≥ 3.
    let e = usize::BITS - 1 - len.leading_zeros();
    let s = u32::BITS - e.leading_zeros();
    let mask = (1usize << (e - s)) - 1;
    match len.checked_add(mask) {
        Some(rounded) => rounded & !mask,
        None => usize::MAX,
    }
}

/// What the sealer and the opener both need from [`RoomKeys`], owned so that neither
/// borrows it. Zeroized on drop.
struct RoomSecrets {
    event_root: Zeroizing<[u8; KEY_LEN]>,
    commit_root: Zeroizing<[u8; KEY_LEN]>,
    /// `"sealsync/v1/ad" ‖ u16 len(room_id) ‖ room_id`.
    ad_prefix: Vec<u8>,
    /// The key epoch written into every header this seals ([`RoomKeys::epoch`]).
    epoch: u32,
}

impl RoomSecrets {
    fn new(keys: &RoomKeys) -> Self {
        let (event_root, commit_root) = keys.roots();
        let room = keys.room().as_str().as_bytes();
        // A RoomId is at most 128 bytes, so the length always fits.
        let room_len = u16::try_from(room.len()).unwrap_or(u16::MAX);
        let mut ad_prefix = Vec::with_capacity(AD_LABEL.len() + 2 + room.len());
        ad_prefix.extend_from_slice(AD_LABEL);
        ad_prefix.extend_from_slice(&room_len.to_be_bytes());
        ad_prefix.extend_from_slice(room);
        Self {
            event_root,
            commit_root,
            ad_prefix,
            epoch: keys.epoch(),
        }
    }

    fn session_keys(&self, session: &SessionId) -> SessionKeys {
        let (enc, commit) = kdf::session_subkeys(&self.event_root, &self.commit_root, session);
        SessionKeys {
            cipher: Gcm::new(&enc),
            commit,
        }
    }

    /// The associated data of an envelope with this header.
    fn associated_data(&self, header: &EnvelopeHeader) -> Vec<u8> {
        let mut ad = Vec::with_capacity(self.ad_prefix.len() + ENVELOPE_HEADER_LEN);
        ad.extend_from_slice(&self.ad_prefix);
        ad.extend_from_slice(&header.ad_bytes());
        ad
    }
}

/// One session's subkeys (both zeroized on drop: `Gcm` wraps `aes-gcm` with its `zeroize`
/// feature).
struct SessionKeys {
    cipher: Gcm,
    commit: Zeroizing<[u8; KEY_LEN]>,
}

impl SessionKeys {
    fn commitment(&self, associated_data: &[u8]) -> [u8; 32] {
        kdf::hmac_sha256(&self.commit, &[associated_data])
    }
}

/// Seals the messages of one SDK session: holds the session's subkeys and its counter.
///
/// Create one per session id with [`SessionSealer::new`], or [`SessionSealer::resume`] it
/// after a reload with the counter persisted from [`SessionSealer::next_counter`]. The
/// caller supplies a fresh random nonce per seal (the core draws no randomness).
///
/// ```
/// use sealsync_core::{EnvelopeKind, Hlc, DeviceId, Opener, RoomId, RoomKey, RoomKeys,
///                     SessionId, SessionSealer};
///
/// let key = RoomKey::from_secret("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8")?;
/// let keys = RoomKeys::derive(&key, RoomId::new("team-notes")?);
/// let mut sealer = SessionSealer::new(&keys, SessionId([7; 16]));
/// let hlc = Hlc { wall: 1_700_000_000_000, counter: 0, device: DeviceId([1; 16]) };
/// let channel = keys.channel_tag("doc");
///
/// // In the SDK the nonce comes from getrandom: never reuse one.
/// let envelope = sealer.seal(EnvelopeKind::Event, channel, hlc, br#"{"op":1}"#, [9; 12])?;
/// assert_eq!(sealer.next_counter(), 2);
///
/// let opened = Opener::new(&keys).open(&envelope)?;
/// assert_eq!(opened.body, br#"{"op":1}"#);
/// assert_eq!(opened.hlc, hlc);
/// assert_eq!(opened.header.counter, 1);
/// # Ok::<(), sealsync_core::Error>(())
/// ```
pub struct SessionSealer {
    secrets: RoomSecrets,
    keys: SessionKeys,
    session: SessionId,
    next_counter: u64,
}

impl fmt::Debug for SessionSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionSealer")
            .field("session", &self.session)
            .field("next_counter", &self.next_counter)
            .finish_non_exhaustive()
    }
}

/// Every key field is a `Zeroizing` or a `Gcm`, which wipe themselves on drop.
impl ZeroizeOnDrop for SessionSealer {}

/// Same as for [`SessionSealer`]: the cache's subkeys wipe themselves on drop.
impl ZeroizeOnDrop for Opener {}

/// Fails to compile if the key schedule stops wiping itself (it would then outlive the
/// sealer in freed memory).
const _: fn() = assert_zeroize_on_drop::<Gcm>;
const fn assert_zeroize_on_drop<T: ZeroizeOnDrop>() {}

impl SessionSealer {
    /// A sealer for a new session; its first seal uses counter 1.
    #[must_use]
    pub fn new(keys: &RoomKeys, session: SessionId) -> Self {
        Self::resume(keys, session, 1)
    }

    /// Resumes a session after a reload: the next seal uses `next_counter` (a persisted
    /// [`SessionSealer::next_counter`]). A `next_counter` of 0 is taken as 1 (counters start
    /// at 1). Never resume with a counter already used: receivers drop replays.
    #[must_use]
    pub fn resume(keys: &RoomKeys, session: SessionId, next_counter: u64) -> Self {
        let secrets = RoomSecrets::new(keys);
        let session_keys = secrets.session_keys(&session);
        Self {
            secrets,
            keys: session_keys,
            session,
            next_counter: next_counter.max(1),
        }
    }

    /// The session id this sealer writes into every header.
    #[must_use]
    pub const fn session(&self) -> SessionId {
        self.session
    }

    /// The counter the next seal will use (persist it to [`SessionSealer::resume`]).
    #[must_use]
    pub const fn next_counter(&self) -> u64 {
        self.next_counter
    }

    /// Seals `body` into a complete envelope (header, then AES-256-GCM ciphertext and tag).
    ///
    /// The inner plaintext carries `hlc` (its `device` is the replica id, hidden from the
    /// relay) and is zero-padded to [`padded_len`]. The commitment is HMAC-SHA256 of the
    /// associated data under the session's commitment key. `nonce` must be 12 fresh random
    /// bytes (the shell draws them with `getrandom`); the counter advances only on success.
    ///
    /// # Errors
    /// - [`Error::BodyTooLarge`] when `body` is longer than [`MAX_BODY_LEN`];
    /// - [`Error::SessionExhausted`] once [`MAX_COUNTER`] messages have been sealed: start a
    ///   new session (new [`SessionId`]).
    pub fn seal(
        &mut self,
        kind: EnvelopeKind,
        channel: ChannelTag,
        hlc: Hlc,
        body: &[u8],
        nonce: [u8; 12],
    ) -> Result<Vec<u8>> {
        let too_large = Error::BodyTooLarge {
            len: body.len(),
            max: MAX_BODY_LEN,
        };
        if body.len() > MAX_BODY_LEN {
            return Err(too_large);
        }
        let body_len = u32::try_from(body.len()).map_err(|_| too_large.clone())?;
        let counter = self.next_counter;
        if counter > MAX_COUNTER {
            return Err(Error::SessionExhausted);
        }

        let mut header = EnvelopeHeader {
            kind,
            key_epoch: self.secrets.epoch,
            channel,
            session: self.session,
            counter,
            nonce,
            commitment: [0; 32],
        };
        let ad = self.secrets.associated_data(&header);
        header.commitment = self.keys.commitment(&ad);

        let padded = padded_len(INNER_HEADER_LEN + body.len());
        let mut out = Vec::with_capacity(ENVELOPE_HEADER_LEN + padded + TAG_LEN);
        header.write_to(&mut out);
        out.push(INNER_VERSION);
        out.extend_from_slice(hlc.device.as_bytes());
        out.extend_from_slice(&hlc.wall.to_be_bytes());
        out.extend_from_slice(&hlc.counter.to_be_bytes());
        out.extend_from_slice(&body_len.to_be_bytes());
        out.extend_from_slice(body);
        out.resize(ENVELOPE_HEADER_LEN + padded, 0);

        let sealed = self
            .keys
            .cipher
            .encrypt(&nonce, &ad, &mut out[ENVELOPE_HEADER_LEN..]);
        let Ok(tag) = sealed else {
            // AES-GCM only refuses plaintexts over 64 GiB; never leave plaintext behind.
            out.zeroize();
            return Err(too_large);
        };
        out.extend_from_slice(&tag);
        self.next_counter = counter + 1;
        Ok(out)
    }
}

/// An opened envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The envelope's header, now authenticated.
    pub header: EnvelopeHeader,
    /// The sender's clock; `hlc.device` is the sender's replica id from inside the
    /// ciphertext.
    pub hlc: Hlc,
    /// The body (padding removed).
    pub body: Vec<u8>,
}

/// How many sessions' subkeys an [`Opener`] keeps (least recently used go first).
pub const OPENER_CACHE_SESSIONS: usize = 64;

/// Opens any envelope sealed under a room's keys.
///
/// Keeps the subkeys of the [`OPENER_CACHE_SESSIONS`] most recently seen sessions, so that
/// a stream of events from the same few senders derives each session's keys once. It does
/// not reject replays: the caller tracks `(session, counter)`.
pub struct Opener {
    secrets: RoomSecrets,
    /// Most recently used last.
    cache: Vec<(SessionId, SessionKeys)>,
}

impl fmt::Debug for Opener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opener")
            .field("cached_sessions", &self.cache.len())
            .finish_non_exhaustive()
    }
}

impl Opener {
    /// An opener for the room of `keys` (it copies the keys it needs).
    #[must_use]
    pub fn new(keys: &RoomKeys) -> Self {
        Self {
            secrets: RoomSecrets::new(keys),
            cache: Vec::with_capacity(OPENER_CACHE_SESSIONS),
        }
    }

    /// Checks and opens `envelope`.
    ///
    /// Order: the header is parsed, then the commitment is compared
    /// in constant time **before** anything is decrypted, then AES-256-GCM checks its tag,
    /// and only then is the inner plaintext read. The header's key epoch is compared with
    /// nothing: the key decides, and the epoch is in the associated data (an envelope whose
    /// epoch was altered fails like any other altered byte).
    ///
    /// # Errors
    /// - [`Error::MalformedFrame`], [`Error::WireVersion`], [`Error::WrongKind`]: the
    ///   header does not parse (see [`EnvelopeHeader::parse`]);
    /// - [`Error::DecryptFailed`]: anything else a party without the key could cause
    ///   (wrong key, wrong room, any altered byte): one opaque error, no oracle;
    /// - [`Error::MalformedPlaintext`]: it opened, so a key holder wrote it, but the inner
    ///   plaintext is not well formed (version, length, non-zero or wrong-size padding).
    pub fn open(&mut self, envelope: &[u8]) -> Result<Opened> {
        let (header, ciphertext) = EnvelopeHeader::parse(envelope)?;
        let ad = self.secrets.associated_data(&header);
        let keys = self.session_keys(header.session);
        let expected = keys.commitment(&ad);
        if !bool::from(expected.ct_eq(&header.commitment)) {
            return Err(Error::DecryptFailed);
        }
        let Some((sealed, tag)) = ciphertext.split_last_chunk::<TAG_LEN>() else {
            return Err(Error::DecryptFailed);
        };
        let mut plain = Zeroizing::new(sealed.to_vec());
        keys.cipher
            .decrypt(&header.nonce, &ad, plain.as_mut_slice(), tag)
            .map_err(|_| Error::DecryptFailed)?;
        let (hlc, body) = read_inner(&plain)?;
        Ok(Opened {
            header,
            hlc,
            body: body.to_vec(),
        })
    }

    /// The cached subkeys of `session`, derived and cached on a miss.
    fn session_keys(&mut self, session: SessionId) -> &SessionKeys {
        let hit = self.cache.iter().position(|(id, _)| *id == session);
        let entry = match hit {
            Some(index) => self.cache.remove(index),
            None => {
                if self.cache.len() >= OPENER_CACHE_SESSIONS {
                    self.cache.remove(0);
                }
                (session, self.secrets.session_keys(&session))
            }
        };
        self.cache.push(entry);
        let last = self.cache.len() - 1;
        &self.cache[last].1
    }
}

/// Reads the inner plaintext: version, HLC, body, and checks the padding.
fn read_inner(plain: &[u8]) -> Result<(Hlc, &[u8])> {
    let malformed = |reason| Error::MalformedPlaintext { reason };
    let Some((head, rest)) = plain.split_first_chunk::<INNER_HEADER_LEN>() else {
        return Err(malformed("shorter than its 33-byte header"));
    };
    if head[0] != INNER_VERSION {
        return Err(malformed("unknown inner version"));
    }
    let mut device = [0u8; DeviceId::LEN];
    device.copy_from_slice(&head[1..17]);
    let mut wall = [0u8; 8];
    wall.copy_from_slice(&head[17..25]);
    let mut counter = [0u8; 4];
    counter.copy_from_slice(&head[25..29]);
    let mut body_len = [0u8; 4];
    body_len.copy_from_slice(&head[29..33]);
    let body_len = usize::try_from(u32::from_be_bytes(body_len)).unwrap_or(usize::MAX);
    if body_len > MAX_BODY_LEN {
        return Err(malformed("body length over the 1 MiB limit"));
    }
    let Some((body, padding)) = rest.split_at_checked(body_len) else {
        return Err(malformed("body length runs past the end"));
    };
    if padded_len(INNER_HEADER_LEN + body_len) != plain.len() {
        return Err(malformed("not padded to its Padmé length"));
    }
    if padding.iter().any(|&b| b != 0) {
        return Err(malformed("padding is not all zero"));
    }
    let hlc = Hlc {
        wall: u64::from_be_bytes(wall),
        counter: u32::from_be_bytes(counter),
        device: DeviceId(device),
    };
    Ok((hlc, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padme_known_values() {
        // (inner length, padded length), checked by hand against the Padmé definition.
        for (inner, padded) in [
            (0, 64),
            (33, 64),
            (64, 64),
            (65, 72),
            (72, 72),
            (100, 104),
            (128, 128),
            (129, 144),
            (255, 256),
            (256, 256),
            (257, 272),
            (1000, 1024),
            (33 + MAX_BODY_LEN, 1_015_808),
        ] {
            assert_eq!(padded_len(inner), padded, "inner {inner}");
        }
        assert_eq!(padded_len(usize::MAX), usize::MAX);
        assert_eq!(MAX_ENVELOPE_LEN, 1_015_914);
        // The longest frame a client builds fits a Cloudflare Worker's 1 MiB message limit.
        const { assert!(crate::limits::MIN_RELAY_FRAME_LIMIT <= crate::wire::MAX_FRAME_LEN) };
    }

    #[test]
    fn inner_plaintext_checks() {
        let mut plain = [0u8; 64];
        plain[0] = 1;
        plain[32] = 4; // body_len 4
        plain[33..37].copy_from_slice(b"abcd");
        let (hlc, body) = read_inner(&plain).unwrap();
        assert_eq!((hlc.wall, body), (0, &b"abcd"[..]));

        let reason = |p: &[u8]| match read_inner(p).unwrap_err() {
            Error::MalformedPlaintext { reason } => reason,
            other => panic!("unexpected {other:?}"),
        };
        let mut bad = plain;
        bad[0] = 2;
        assert_eq!(reason(&bad), "unknown inner version");
        let mut bad = plain;
        bad[63] = 1;
        assert_eq!(reason(&bad), "padding is not all zero");
        let mut bad = plain;
        bad[32] = 32;
        assert_eq!(reason(&bad), "body length runs past the end");
        let mut bad = plain;
        bad[29..33].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(reason(&bad), "body length over the 1 MiB limit");
        let mut long = [0u8; 72];
        long[..64].copy_from_slice(&plain);
        assert_eq!(reason(&long), "not padded to its Padmé length");
    }
}
