//! Membership proof: how a client shows the relay that it holds the room key without
//! giving the relay anything it could use to join, write or erase.
//!
//! The room key derives an Ed25519 key pair (HKDF label `"sealsync/v2/member"` gives the
//! 32-byte seed). Its public half is the room's **member key**: the first `HELLO` of an
//! empty room stores it, and every later `HELLO` must carry the same key and a signature
//! ([`RoomKeys::prove`](crate::kdf::RoomKeys::prove)) over
//!
//! ```text
//! "sealsync/v2/hello" ‖ u16 len(room_id) ‖ room_id (NFC, UTF-8) ‖ challenge [32] ‖ member_key [32]
//! ```
//!
//! where `challenge` is the 32 random bytes the relay sent on this socket (`CHALLENGE`).
//! A recorded `HELLO` is useless on another socket (another challenge); the stored member
//! key, or everything a network observer sees, lets nobody sign a new challenge.
//!
//! A **rotation** (`ROTATE`) replaces the member key; the current one signs
//! ([`RoomKeys::prove_rotation`](crate::kdf::RoomKeys::prove_rotation))
//!
//! ```text
//! "sealsync/v2/rotate" ‖ u16 len(room_id) ‖ room_id ‖ challenge [32] ‖ key_epoch u32 ‖ member_key [32] ‖ new_member_key [32]
//! ```

use alloc::vec::Vec;

use ed25519_compact::{KeyPair, PublicKey, Seed, Signature};

use crate::ids::RoomId;

/// Length of a member key (an Ed25519 public key).
pub const MEMBER_KEY_LEN: usize = 32;
/// Length of a proof (an Ed25519 signature).
pub const PROOF_LEN: usize = 64;
/// Length of the relay's per-connection challenge.
pub const CHALLENGE_LEN: usize = 32;

const PROOF_LABEL: &[u8] = b"sealsync/v2/hello";

/// Domain separation of a rotation proof.
const ROTATE_LABEL: &[u8] = b"sealsync/v2/rotate";

/// The key pair for `seed`.
pub(crate) fn keypair(seed: &[u8; 32]) -> KeyPair {
    KeyPair::from_seed(Seed::new(*seed))
}

/// The bytes a proof signs (see the module docs).
#[must_use]
pub fn proof_message(
    room: &RoomId,
    challenge: &[u8; CHALLENGE_LEN],
    member_key: &[u8; MEMBER_KEY_LEN],
) -> Vec<u8> {
    let room = room.as_str().as_bytes();
    let mut message =
        Vec::with_capacity(PROOF_LABEL.len() + 2 + room.len() + CHALLENGE_LEN + MEMBER_KEY_LEN);
    message.extend_from_slice(PROOF_LABEL);
    // A room id is at most 128 bytes, so its length fits a u16.
    message.extend_from_slice(&u16::try_from(room.len()).unwrap_or(u16::MAX).to_be_bytes());
    message.extend_from_slice(room);
    message.extend_from_slice(challenge);
    message.extend_from_slice(member_key);
    message
}

/// Whether `proof` is `member_key`'s signature over this room and challenge: the relay's
/// check. Every input is public, so Ed25519's variable-time verification is fine; weak
/// (small-order) keys and non-canonical proofs are refused.
#[must_use]
pub fn verify_proof(
    room: &RoomId,
    challenge: &[u8; CHALLENGE_LEN],
    member_key: &[u8; MEMBER_KEY_LEN],
    proof: &[u8; PROOF_LEN],
) -> bool {
    let message = proof_message(room, challenge, member_key);
    PublicKey::new(*member_key)
        .verify(message, &Signature::new(*proof))
        .is_ok()
}

/// The bytes a rotation proof signs (see the module docs): the current `member_key`
/// moves the room to `new_member_key` at key epoch `epoch`, on the socket of `challenge`.
#[must_use]
pub fn rotation_message(
    room: &RoomId,
    challenge: &[u8; CHALLENGE_LEN],
    epoch: u32,
    member_key: &[u8; MEMBER_KEY_LEN],
    new_member_key: &[u8; MEMBER_KEY_LEN],
) -> Vec<u8> {
    let room = room.as_str().as_bytes();
    let mut message = Vec::with_capacity(
        ROTATE_LABEL.len() + 2 + room.len() + CHALLENGE_LEN + 4 + 2 * MEMBER_KEY_LEN,
    );
    message.extend_from_slice(ROTATE_LABEL);
    message.extend_from_slice(&u16::try_from(room.len()).unwrap_or(u16::MAX).to_be_bytes());
    message.extend_from_slice(room);
    message.extend_from_slice(challenge);
    message.extend_from_slice(&epoch.to_be_bytes());
    message.extend_from_slice(member_key);
    message.extend_from_slice(new_member_key);
    message
}

/// Whether `proof` is `member_key`'s signature over a rotation of this room, on this
/// challenge, to `new_member_key` at `epoch`: the relay's check, against the member key
/// it stores.
#[must_use]
pub fn verify_rotation(
    room: &RoomId,
    challenge: &[u8; CHALLENGE_LEN],
    epoch: u32,
    member_key: &[u8; MEMBER_KEY_LEN],
    new_member_key: &[u8; MEMBER_KEY_LEN],
    proof: &[u8; PROOF_LEN],
) -> bool {
    let message = rotation_message(room, challenge, epoch, member_key, new_member_key);
    PublicKey::new(*member_key)
        .verify(message, &Signature::new(*proof))
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kdf::{RoomKey, RoomKeys};

    fn keys(room: &str, secret: &str) -> RoomKeys {
        RoomKeys::derive(
            &RoomKey::from_secret(secret).unwrap(),
            RoomId::new(room).unwrap(),
        )
    }

    const SECRET: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
    const OTHER: &str = "HxwdHhsaGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA";

    #[test]
    fn a_proof_verifies_for_its_room_challenge_and_key_only() {
        let k = keys("team-42", SECRET);
        let room = RoomId::new("team-42").unwrap();
        let challenge = [7u8; CHALLENGE_LEN];
        let proof = k.prove(&challenge);
        let member = k.member_key();
        assert!(verify_proof(&room, &challenge, &member, &proof));
        // Another challenge (a replay on another socket), room or key: refused.
        assert!(!verify_proof(&room, &[8; CHALLENGE_LEN], &member, &proof));
        let elsewhere = RoomId::new("team-43").unwrap();
        assert!(!verify_proof(&elsewhere, &challenge, &member, &proof));
        let other = keys("team-42", OTHER);
        assert_ne!(other.member_key(), member);
        assert!(!verify_proof(
            &room,
            &challenge,
            &other.member_key(),
            &proof
        ));
        let mut flipped = proof;
        flipped[10] ^= 1;
        assert!(!verify_proof(&room, &challenge, &member, &flipped));
        // Junk keys and proofs are refused, never a panic.
        assert!(!verify_proof(&room, &challenge, &[0; 32], &[0; 64]));
        assert!(!verify_proof(&room, &challenge, &[0xff; 32], &[0xff; 64]));
    }

    #[test]
    fn the_member_key_is_deterministic_per_room_key() {
        assert_eq!(
            keys("a", SECRET).member_key(),
            keys("a", SECRET).member_key()
        );
        let challenge = [1; CHALLENGE_LEN];
        assert_eq!(
            keys("a", SECRET).prove(&challenge),
            keys("a", SECRET).prove(&challenge)
        );
    }

    #[test]
    fn a_rotation_proof_binds_room_challenge_epoch_and_both_keys() {
        let old = keys("team-42", SECRET);
        let new = keys("team-42", OTHER);
        let room = RoomId::new("team-42").unwrap();
        let challenge = [3u8; CHALLENGE_LEN];
        let (current, next) = (old.member_key(), new.member_key());
        let proof = old.prove_rotation(&challenge, 1, &next);
        assert!(verify_rotation(
            &room, &challenge, 1, &current, &next, &proof
        ));
        assert!(!verify_rotation(
            &room, &challenge, 2, &current, &next, &proof
        ));
        assert!(!verify_rotation(
            &room,
            &[4; CHALLENGE_LEN],
            1,
            &current,
            &next,
            &proof
        ));
        assert!(!verify_rotation(
            &room, &challenge, 1, &current, &current, &proof
        ));
        let elsewhere = RoomId::new("team-43").unwrap();
        assert!(!verify_rotation(
            &elsewhere, &challenge, 1, &current, &next, &proof
        ));
        // Only the current key signs a rotation: the new key's own signature is refused.
        let by_new = new.prove_rotation(&challenge, 1, &next);
        assert!(!verify_rotation(
            &room, &challenge, 1, &current, &next, &by_new
        ));
        // A HELLO proof is not a rotation proof (domain separation).
        let hello = old.prove(&challenge);
        assert!(!verify_rotation(
            &room, &challenge, 1, &current, &next, &hello
        ));
    }
}
