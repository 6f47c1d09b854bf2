//! Key derivation: the room key (from a password or a room secret) and the subkeys
//! derived from it. PROTOCOL.md, section "Keys".
//!
//! ```text
//! password ─NFC─ Argon2id(m = 19456 KiB, t = 2, p = 1,              ┐
//!                salt = SHA-256("sealsync/v1/room-salt" ‖ NFC(room))) ├─ room key (32 bytes)
//! room secret ─ base64url decode (32 random bytes, no KDF) ───────────┘
//!
//! room key ─HKDF-SHA256(salt = "sealsync/v1")─┬─ "sealsync/v1/event"       event root
//!                                             ├─ "sealsync/v1/commit"      commitment root
//!                                             ├─ "sealsync/v1/channel"     channel-tag key
//!                                             ├─ "sealsync/v1/fingerprint" fingerprint
//!                                             └─ "sealsync/v2/member"      Ed25519 seed:
//!                                                  member key (relay) + HELLO proofs
//! event root  ─HKDF(salt = session id, "sealsync/v1/session-enc")    AES-256-GCM key
//! commit root ─HKDF(salt = session id, "sealsync/v1/session-commit") commitment HMAC key
//! ```
//!
//! Every key type here zeroizes itself on drop and implements neither `Clone` nor a `Debug`
//! that shows key bytes.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::{Error, Result};
use crate::ids::{ChannelTag, Entropy, RoomId, SessionId};

/// Argon2id memory cost in KiB (19 MiB; the OWASP minimum for Argon2id). Part of the
/// protocol: changing it changes every password-derived room key.
pub const ARGON2_MEMORY_KIB: u32 = 19_456;
/// Argon2id iterations (time cost). Part of the protocol, like [`ARGON2_MEMORY_KIB`].
pub const ARGON2_ITERATIONS: u32 = 2;
/// Argon2id lanes (parallelism). Part of the protocol, like [`ARGON2_MEMORY_KIB`].
pub const ARGON2_PARALLELISM: u32 = 1;

// The parameters may only ever go up (a new protocol version); never below OWASP's floor.
const _: () = assert!(ARGON2_MEMORY_KIB >= 19_456 && ARGON2_ITERATIONS >= 2);
const _: () = assert!(ARGON2_PARALLELISM == 1);

/// Length of every key in this module, in bytes.
pub const KEY_LEN: usize = 32;

/// Length of a room secret in base64url characters without padding (32 bytes).
pub const SECRET_LEN_CHARS: usize = 43;

const ROOM_SALT_LABEL: &[u8] = b"sealsync/v1/room-salt";
const HKDF_SALT: &[u8] = b"sealsync/v1";
const LABEL_EVENT: &[u8] = b"sealsync/v1/event";
const LABEL_COMMIT: &[u8] = b"sealsync/v1/commit";
const LABEL_CHANNEL: &[u8] = b"sealsync/v1/channel";
const LABEL_FINGERPRINT: &[u8] = b"sealsync/v1/fingerprint";
const LABEL_MEMBER: &[u8] = b"sealsync/v2/member";
const LABEL_SESSION_ENC: &[u8] = b"sealsync/v1/session-enc";
const LABEL_SESSION_COMMIT: &[u8] = b"sealsync/v1/session-commit";

/// The 32-byte room key every other key is derived from.
///
/// Made with [`RoomKey::from_password`] or [`RoomKey::from_secret`]. Zeroized on drop;
/// neither `Clone` nor a revealing `Debug`.
pub struct RoomKey([u8; KEY_LEN]);

impl Zeroize for RoomKey {
    fn zeroize(&mut self) {
        self.0.zeroize();
    }
}

impl Drop for RoomKey {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl ZeroizeOnDrop for RoomKey {}

impl fmt::Debug for RoomKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RoomKey(..)")
    }
}

impl RoomKey {
    /// Derives the room key from a password with Argon2id (version 0x13,
    /// m = [`ARGON2_MEMORY_KIB`] KiB, t = [`ARGON2_ITERATIONS`], p = [`ARGON2_PARALLELISM`],
    /// 32-byte output) and salt = SHA-256(`"sealsync/v1/room-salt"` ‖ room id), the room
    /// id being NFC already ([`RoomId`] normalises it).
    ///
    /// The password is normalised to NFC first, so that "é" typed as one code point or as
    /// "e" plus a combining accent gives the same key on every keyboard and platform. It is
    /// not trimmed or case-folded. Takes about 20 MiB of memory and tens of milliseconds
    /// natively (more in wasm; build with `-C target-feature=+simd128` to halve it); the
    /// memory is zeroized before it is freed.
    ///
    /// # Errors
    /// [`Error::EmptyPassword`] for an empty password; [`Error::Kdf`] when the Argon2 memory
    /// cannot be allocated.
    #[cfg(feature = "unicode-nfc")]
    pub fn from_password(room: &RoomId, password: &str) -> Result<Self> {
        Self::from_password_with(room, password, crate::nfc::nfc)
    }

    /// [`RoomKey::from_password`] with `nfc` as the NFC normalisation of the password (the
    /// platform's, e.g. JavaScript's `String.prototype.normalize("NFC")`).
    ///
    /// # Errors
    /// As [`RoomKey::from_password`].
    pub fn from_password_with(
        room: &RoomId,
        password: &str,
        nfc: impl FnOnce(&str) -> String,
    ) -> Result<Self> {
        if password.is_empty() {
            return Err(Error::EmptyPassword);
        }
        let password = Zeroizing::new(nfc(password));
        let salt = room_salt(room);
        let params = Params::new(
            ARGON2_MEMORY_KIB,
            ARGON2_ITERATIONS,
            ARGON2_PARALLELISM,
            Some(KEY_LEN),
        )
        .map_err(|_| Error::Kdf {
            reason: "Argon2 refused the protocol's parameters",
        })?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);

        // Our own buffer rather than `hash_password_into`'s, so that it can be wiped: its
        // last block is the key's sole input.
        let blocks = argon2.params().block_count();
        let mut memory: Vec<Block> = Vec::new();
        memory.try_reserve_exact(blocks).map_err(|_| Error::Kdf {
            reason: "could not allocate the 19 MiB Argon2 needs",
        })?;
        memory.resize(blocks, Block::new());

        let mut key = Self([0; KEY_LEN]);
        let hashed = argon2.hash_password_into_with_memory(
            password.as_bytes(),
            &salt,
            &mut key.0,
            &mut memory,
        );
        memory.iter_mut().for_each(Zeroize::zeroize);
        hashed.map_err(|_| Error::Kdf {
            reason: "Argon2 refused its inputs",
        })?;
        Ok(key)
    }

    /// Reads a room secret: 32 bytes in base64url without padding (43 characters, the
    /// alphabet `A–Z a–z 0–9 - _`), as [`RoomKey::generate_secret`] writes it.
    ///
    /// Leniency, for secrets pasted from links and chat: surrounding ASCII whitespace is
    /// ignored, and so is one trailing `=` (the padding a standard encoder would add).
    /// Everything else is refused, including standard base64's `+` and `/` and a last
    /// character whose unused low bits are not zero (so each key has exactly one accepted
    /// spelling, up to that padding).
    ///
    /// # Errors
    /// [`Error::InvalidSecret`] when the text is not exactly that.
    pub fn from_secret(secret_b64url: &str) -> Result<Self> {
        let trimmed = secret_b64url.trim_matches(|c: char| c.is_ascii_whitespace());
        let unpadded = trimmed.strip_suffix('=').unwrap_or(trimmed);
        if unpadded.len() != SECRET_LEN_CHARS {
            return Err(Error::InvalidSecret {
                reason: "expected 43 base64url characters (32 bytes); the link may be truncated",
            });
        }
        let mut decoded = Zeroizing::new([0u8; KEY_LEN + 1]);
        let len = URL_SAFE_NO_PAD
            .decode_slice(unpadded, decoded.as_mut_slice())
            .map_err(|err| Error::InvalidSecret {
                reason: match err {
                    base64::DecodeSliceError::DecodeError(
                        base64::DecodeError::InvalidLastSymbol(..),
                    ) => "its last character is not a valid ending; the secret was edited",
                    _ => "it holds a character outside base64url (A-Z, a-z, 0-9, '-', '_')",
                },
            })?;
        let Some(bytes) = decoded
            .get(..len)
            .and_then(|b| <&[u8; KEY_LEN]>::try_from(b).ok())
        else {
            return Err(Error::InvalidSecret {
                reason: "it does not decode to 32 bytes",
            });
        };
        Ok(Self(*bytes))
    }

    /// Draws a new room secret (32 bytes from `entropy`) and returns it as base64url
    /// without padding (43 characters), for a share link's URL fragment.
    pub fn generate_secret(entropy: &mut dyn Entropy) -> String {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        entropy.fill(bytes.as_mut_slice());
        URL_SAFE_NO_PAD.encode(bytes.as_slice())
    }

    /// This key as a room secret (base64url, 43 characters) that [`RoomKey::from_secret`]
    /// reads back to the same key. A password-derived key exported this way lets a member
    /// share a link instead of the password (the browser SDK's `shareLink`), and lets the
    /// SDK's key-derivation worker hand its result to the page. It grants full access to
    /// the room: treat it like the password.
    #[must_use]
    pub fn to_secret(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }
}

/// SHA-256(`"sealsync/v1/room-salt"` ‖ NFC room id): the Argon2id salt of a room.
fn room_salt(room: &RoomId) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(ROOM_SALT_LABEL);
    hasher.update(room.as_str().as_bytes());
    hasher.finalize().into()
}

/// The subkeys of one room, derived from its [`RoomKey`] with HKDF-SHA256.
///
/// Zeroized on drop; not `Clone`; its `Debug` shows the room only.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct RoomKeys {
    #[zeroize(skip)]
    room: RoomId,
    event_root: [u8; KEY_LEN],
    commit_root: [u8; KEY_LEN],
    channel_key: [u8; KEY_LEN],
    fingerprint: [u8; 16],
    /// The seed of the room's membership key pair (Ed25519).
    member_seed: [u8; KEY_LEN],
    /// The key epoch these keys seal under (0 until the relay says otherwise: `KEY_EPOCH`).
    #[zeroize(skip)]
    epoch: u32,
}

impl fmt::Debug for RoomKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoomKeys")
            .field("room", &self.room)
            .finish_non_exhaustive()
    }
}

impl RoomKeys {
    /// Expands `key` into the room's subkeys: HKDF-SHA256 with ikm = the room key,
    /// salt = `"sealsync/v1"` and one `info` label per subkey (see the module docs).
    ///
    /// `room` is kept for the associated data of every envelope (an envelope replayed into
    /// another room fails to open). It does not enter these subkeys: for a password the
    /// room id is already in the Argon2 salt; a room secret is drawn per room.
    #[must_use]
    pub fn derive(key: &RoomKey, room: RoomId) -> Self {
        let hkdf = Hkdf::<Sha256>::new(Some(HKDF_SALT), &key.0);
        let mut keys = Self {
            room,
            event_root: [0; KEY_LEN],
            commit_root: [0; KEY_LEN],
            channel_key: [0; KEY_LEN],
            fingerprint: [0; 16],
            member_seed: [0; KEY_LEN],
            epoch: 0,
        };
        expand(&hkdf, LABEL_EVENT, &mut keys.event_root);
        expand(&hkdf, LABEL_COMMIT, &mut keys.commit_root);
        expand(&hkdf, LABEL_CHANNEL, &mut keys.channel_key);
        expand(&hkdf, LABEL_FINGERPRINT, &mut keys.fingerprint);
        expand(&hkdf, LABEL_MEMBER, &mut keys.member_seed);
        keys
    }

    /// The room's membership key: the public half of an Ed25519 key pair derived from the
    /// room key. The relay stores it and checks [`RoomKeys::prove`]'s signatures with it;
    /// holding it gives no power to join, write or erase (see `crate::member`).
    #[must_use]
    pub fn member_key(&self) -> [u8; crate::member::MEMBER_KEY_LEN] {
        *crate::member::keypair(&self.member_seed).pk
    }

    /// Signs this connection's `challenge` (from the relay's `CHALLENGE` frame): the proof
    /// of membership sent in `HELLO`. Deterministic (Ed25519).
    #[must_use]
    pub fn prove(
        &self,
        challenge: &[u8; crate::member::CHALLENGE_LEN],
    ) -> [u8; crate::member::PROOF_LEN] {
        let pair = crate::member::keypair(&self.member_seed);
        let message = crate::member::proof_message(&self.room, challenge, &pair.pk);
        *pair.sk.sign(message, None)
    }

    /// Signs a rotation to `new_member_key` at key epoch `epoch` (the `ROTATE` frame's
    /// proof, `crate::member::rotation_message`) with this (the current) member key over
    /// this connection's `challenge`. Deterministic (Ed25519).
    #[must_use]
    pub fn prove_rotation(
        &self,
        challenge: &[u8; crate::member::CHALLENGE_LEN],
        epoch: u32,
        new_member_key: &[u8; crate::member::MEMBER_KEY_LEN],
    ) -> [u8; crate::member::PROOF_LEN] {
        let pair = crate::member::keypair(&self.member_seed);
        let message =
            crate::member::rotation_message(&self.room, challenge, epoch, &pair.pk, new_member_key);
        *pair.sk.sign(message, None)
    }

    /// The key epoch these keys seal under: 0 (the key from the password or secret) until
    /// [`RoomKeys::set_epoch`]. The key itself, not this number, decides what opens: the
    /// epoch is a label in every envelope's header (and its associated data) that lets the
    /// relay refuse writes sealed under a key the room no longer uses.
    #[must_use]
    pub const fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Sets the key epoch (the relay's `KEY_EPOCH` frame, or a rotation's).
    pub fn set_epoch(&mut self, epoch: u32) {
        self.epoch = epoch;
    }

    /// The room these keys belong to.
    #[must_use]
    pub const fn room(&self) -> &RoomId {
        &self.room
    }

    /// The relay-visible tag of a channel: HMAC-SHA256(channel key, name)[..16].
    ///
    /// The name is used byte for byte (channel names are application identifiers; they are
    /// not normalised).
    #[must_use]
    pub fn channel_tag(&self, channel_name: &str) -> ChannelTag {
        let mac = hmac_sha256(&self.channel_key, &[channel_name.as_bytes()]);
        let mut tag = [0u8; ChannelTag::LEN];
        tag.copy_from_slice(&mac[..ChannelTag::LEN]);
        ChannelTag(tag)
    }

    /// A short code that members compare out of band to check that they hold the same room
    /// key: 20 decimal digits in five groups of four, e.g. `"4821 0937 5512 8830 1204"`.
    ///
    /// It carries log2(10^20) ≈ 66.4 bits of the HKDF output (16 bytes reduced modulo
    /// 10^20; the bias is below 2^-60), enough that a mismatch is never a coincidence. It
    /// says nothing usable about the key itself.
    #[must_use]
    pub fn fingerprint(&self) -> String {
        const DIGITS: u32 = 20;
        let mut value = u128::from_be_bytes(self.fingerprint) % 10u128.pow(DIGITS);
        let mut digits = [b'0'; DIGITS as usize];
        for slot in digits.iter_mut().rev() {
            // `value % 10` is below 10, so the cast cannot truncate.
            #[allow(
                clippy::cast_possible_truncation,
                reason = "a decimal digit fits in u8"
            )]
            let digit = (value % 10) as u8;
            *slot = b'0' + digit;
            value /= 10;
        }
        let mut out = String::with_capacity(24);
        for (i, group) in digits.chunks(4).enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.extend(group.iter().map(|&d| char::from(d)));
        }
        out
    }

    /// The event and commitment roots, for an [`crate::seal::Opener`] that outlives `self`.
    pub(crate) fn roots(&self) -> (Zeroizing<[u8; KEY_LEN]>, Zeroizing<[u8; KEY_LEN]>) {
        (
            Zeroizing::new(self.event_root),
            Zeroizing::new(self.commit_root),
        )
    }
}

/// HKDF-SHA256(ikm = root, salt = session id, info = label) for both session subkeys.
pub(crate) fn session_subkeys(
    event_root: &[u8; KEY_LEN],
    commit_root: &[u8; KEY_LEN],
    session: &SessionId,
) -> (Zeroizing<[u8; KEY_LEN]>, Zeroizing<[u8; KEY_LEN]>) {
    let mut enc = Zeroizing::new([0u8; KEY_LEN]);
    let mut commit = Zeroizing::new([0u8; KEY_LEN]);
    let hkdf = Hkdf::<Sha256>::new(Some(session.as_bytes()), event_root);
    expand(&hkdf, LABEL_SESSION_ENC, enc.as_mut_slice());
    let hkdf = Hkdf::<Sha256>::new(Some(session.as_bytes()), commit_root);
    expand(&hkdf, LABEL_SESSION_COMMIT, commit.as_mut_slice());
    (enc, commit)
}

/// HMAC-SHA256 of the concatenation of `parts` under a 32-byte key.
pub(crate) fn hmac_sha256(key: &[u8; KEY_LEN], parts: &[&[u8]]) -> [u8; 32] {
    #[allow(clippy::expect_used, reason = "HMAC takes keys of any length")]
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// HKDF-Expand into `out`, at most 32 bytes here (HKDF-SHA256 allows 8160).
fn expand(hkdf: &Hkdf<Sha256>, info: &[u8], out: &mut [u8]) {
    #[allow(
        clippy::expect_used,
        reason = "outputs here are at most 32 bytes, far below 255 * 32"
    )]
    hkdf.expand(info, out)
        .expect("HKDF-SHA256 expands up to 8160 bytes");
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counting(u8);

    impl Entropy for Counting {
        fn fill(&mut self, dest: &mut [u8]) {
            for byte in dest {
                *byte = self.0;
                self.0 = self.0.wrapping_add(1);
            }
        }
    }

    fn keys(secret: &str, room: &str) -> RoomKeys {
        RoomKeys::derive(
            &RoomKey::from_secret(secret).unwrap(),
            RoomId::new(room).unwrap(),
        )
    }

    const SECRET: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

    #[test]
    fn generated_secret_reads_back() {
        let secret = RoomKey::generate_secret(&mut Counting(0));
        assert_eq!(secret, SECRET);
        let key = RoomKey::from_secret(&secret).unwrap();
        let bytes: [u8; 32] = core::array::from_fn(|i| u8::try_from(i).unwrap());
        assert_eq!(key.0, bytes);
    }

    #[test]
    fn to_secret_reads_back_to_the_same_key() {
        let key = RoomKey::from_secret(SECRET).unwrap();
        assert_eq!(key.to_secret(), SECRET);
        let room = RoomId::new("r").unwrap();
        let derived = RoomKey::from_password(&room, "pw").unwrap();
        let again = RoomKey::from_secret(&derived.to_secret()).unwrap();
        assert_eq!(again.0, derived.0);
    }

    #[test]
    fn secret_leniency_is_exactly_whitespace_and_one_pad() {
        let expected = keys(SECRET, "r").member_key();
        for ok in [
            alloc::format!("{SECRET}="),
            alloc::format!("  {SECRET}\n"),
            alloc::format!("\t{SECRET}= "),
        ] {
            assert_eq!(keys(&ok, "r").member_key(), expected, "{ok:?}");
        }
        let mut plus = String::from(SECRET);
        plus.replace_range(0..1, "+");
        let mut edited_end = String::from(SECRET);
        edited_end.replace_range(42..43, "9"); // "8" + 1: non-zero unused bits
        for bad in [
            String::new(),
            String::from(&SECRET[..42]),
            alloc::format!("{SECRET}A"),
            alloc::format!("{SECRET}=="),
            alloc::format!("{}é", &SECRET[..41]),
            plus,
            edited_end,
        ] {
            let err = RoomKey::from_secret(&bad).unwrap_err();
            assert_eq!(err.code(), "INVALID_SECRET", "{bad:?}");
        }
    }

    #[test]
    fn subkeys_are_distinct_and_depend_on_the_key() {
        let a = keys(SECRET, "room");
        let b = keys("AQECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", "room");
        let all = [a.event_root, a.commit_root, a.member_seed, a.channel_key];
        for (i, x) in all.iter().enumerate() {
            for y in &all[i + 1..] {
                assert_ne!(x, y);
            }
        }
        assert_ne!(a.member_key(), b.member_key());
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.channel_tag("doc"), b.channel_tag("doc"));
        assert_ne!(a.channel_tag("doc"), a.channel_tag("cursor"));
    }

    #[test]
    fn fingerprint_is_five_groups_of_four_digits() {
        let fp = keys(SECRET, "room").fingerprint();
        assert_eq!(fp.len(), 24);
        let groups: Vec<&str> = fp.split(' ').collect();
        assert_eq!(groups.len(), 5);
        assert!(groups
            .iter()
            .all(|g| g.len() == 4 && g.bytes().all(|b| b.is_ascii_digit())));
    }

    #[test]
    fn debug_shows_no_key_bytes() {
        let k = keys(SECRET, "room");
        let shown = alloc::format!("{k:?} {:?}", RoomKey::from_secret(SECRET).unwrap());
        assert_eq!(shown, "RoomKeys { room: RoomId(\"room\"), .. } RoomKey(..)");
    }

    #[test]
    fn empty_password_is_refused() {
        let room = RoomId::new("r").unwrap();
        assert_eq!(
            RoomKey::from_password(&room, "").unwrap_err(),
            Error::EmptyPassword
        );
    }
}
