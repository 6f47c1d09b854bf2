//! Sealing and opening: golden envelopes, tampering, key and room separation, nonce
//! uniqueness, sizes, padding, session exhaustion, and property tests; and the membership
//! proof of the golden room (member key, proof, and what the relay's check refuses).

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers: a failure here is a test failure"
)]

use std::collections::HashSet;
use std::fs;
use std::path::PathBuf;

use aes_gcm::aead::{AeadInOut, KeyInit, Nonce};
use aes_gcm::Aes256Gcm;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use proptest::prelude::*;
use sealsync_core::envelope::{EnvelopeHeader, EnvelopeKind, ENVELOPE_HEADER_LEN};
use sealsync_core::limits::{
    RelayLimits, MIN_RELAY_FRAME_LIMIT, PUBLISH_OVERHEAD, ROTATE_OVERHEAD, SNAPSHOT_PUT_OVERHEAD,
};
use sealsync_core::member::{verify_proof, CHALLENGE_LEN, MEMBER_KEY_LEN, PROOF_LEN};
use sealsync_core::seal::{MAX_COUNTER, MAX_ENVELOPE_LEN, OPENER_CACHE_SESSIONS};
use sealsync_core::wire::{ClientFrame, MAX_FRAME_LEN, MIN_ENVELOPE_LEN};
use sealsync_core::{
    padded_len, ChannelTag, DeviceId, Error, Hlc, Opener, RoomId, RoomKey, RoomKeys, SessionId,
    SessionSealer, MAX_BODY_LEN,
};
use serde_json::Value;
use sha2::Sha256;

const SECRET: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
const OTHER_SECRET: &str = "AQECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

fn keys_for(secret: &str, room: &str) -> RoomKeys {
    RoomKeys::derive(
        &RoomKey::from_secret(secret).unwrap(),
        RoomId::new(room).unwrap(),
    )
}

fn keys() -> RoomKeys {
    keys_for(SECRET, "team-notes")
}

fn hlc() -> Hlc {
    Hlc {
        wall: 1_700_000_000_000,
        counter: 3,
        device: DeviceId([0xd1; 16]),
    }
}

fn random_nonce() -> [u8; 12] {
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut nonce).unwrap();
    nonce
}

fn sample_envelope(keys: &RoomKeys, body: &[u8]) -> Vec<u8> {
    let mut sealer = SessionSealer::new(keys, SessionId([0x5a; 16]));
    sealer
        .seal(
            EnvelopeKind::Event,
            keys.channel_tag("doc"),
            hlc(),
            body,
            [7; 12],
        )
        .unwrap()
}

fn unhex(value: &Value) -> Vec<u8> {
    hex::decode(value.as_str().unwrap()).unwrap()
}

/// Envelopes computed independently (Python, see `data/golden.py`) from PROTOCOL.md.
#[test]
fn golden_envelopes() {
    let golden = golden_envelope_file();
    let keys = keys_for(
        golden["secret"].as_str().unwrap(),
        golden["room"].as_str().unwrap(),
    );
    assert_eq!(keys.fingerprint(), golden["fingerprint"].as_str().unwrap());
    let mut opener = Opener::new(&keys);
    for case in golden["cases"].as_array().unwrap() {
        let session = SessionId(unhex(&case["session"]).try_into().unwrap());
        let counter = case["counter"].as_u64().unwrap();
        let kind =
            EnvelopeKind::try_from(u8::try_from(case["kind"].as_u64().unwrap()).unwrap()).unwrap();
        let hlc = Hlc {
            wall: case["wall"].as_u64().unwrap(),
            counter: u32::try_from(case["hlc_counter"].as_u64().unwrap()).unwrap(),
            device: DeviceId(unhex(&case["device"]).try_into().unwrap()),
        };
        let channel = keys.channel_tag(case["channel"].as_str().unwrap());
        let body = unhex(&case["body"]);
        let nonce: [u8; 12] = unhex(&case["nonce"]).try_into().unwrap();

        let mut sealer = SessionSealer::resume(&keys, session, counter);
        let envelope = sealer.seal(kind, channel, hlc, &body, nonce).unwrap();
        assert_eq!(hex::encode(&envelope), case["envelope"].as_str().unwrap());

        let opened = opener.open(&unhex(&case["envelope"])).unwrap();
        assert_eq!(opened.body, body);
        assert_eq!(opened.hlc, hlc);
        assert_eq!(
            (
                opened.header.kind,
                opened.header.counter,
                opened.header.session
            ),
            (kind, counter, session)
        );
    }
}

fn golden_envelope_file() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/envelope_golden.json");
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

/// The golden room's member key and its proof for the golden challenge (computed by
/// `data/golden.py` with OpenSSL's Ed25519): `RoomKeys` reproduces both, the relay's
/// check accepts them, and refuses a flipped bit, another challenge and another room.
#[test]
fn golden_membership_proof() {
    let golden = golden_envelope_file();
    let room = RoomId::new(golden["room"].as_str().unwrap()).unwrap();
    let keys = keys_for(golden["secret"].as_str().unwrap(), room.as_str());
    let challenge: [u8; CHALLENGE_LEN] = unhex(&golden["challenge"]).try_into().unwrap();
    let member_key: [u8; MEMBER_KEY_LEN] = unhex(&golden["member_key"]).try_into().unwrap();
    let proof: [u8; PROOF_LEN] = unhex(&golden["proof"]).try_into().unwrap();

    assert_eq!(keys.member_key(), member_key);
    assert_eq!(keys.prove(&challenge), proof);
    assert!(verify_proof(&room, &challenge, &member_key, &proof));

    let mut flipped = proof;
    flipped[63] ^= 0x01;
    assert!(!verify_proof(&room, &challenge, &member_key, &flipped));
    let mut other_challenge = challenge;
    other_challenge[0] ^= 0x80;
    assert!(!verify_proof(&room, &other_challenge, &member_key, &proof));
    let other_room = RoomId::new("team-notes-2").unwrap();
    assert!(!verify_proof(&other_room, &challenge, &member_key, &proof));
    // The same room key in another room: another proof, and the same member key (the
    // member key depends on the key alone; the proof binds the room).
    let elsewhere = keys_for(golden["secret"].as_str().unwrap(), other_room.as_str());
    assert_eq!(elsewhere.member_key(), member_key);
    assert_ne!(elsewhere.prove(&challenge), proof);
    assert!(verify_proof(
        &other_room,
        &challenge,
        &member_key,
        &elsewhere.prove(&challenge)
    ));
    // Another key in the same room: another member key, whose proof is not this one.
    let other = keys_for(OTHER_SECRET, room.as_str());
    assert_ne!(other.member_key(), member_key);
    assert!(!verify_proof(
        &room,
        &challenge,
        &other.member_key(),
        &proof
    ));
    assert!(!verify_proof(
        &room,
        &challenge,
        &member_key,
        &other.prove(&challenge)
    ));
}

#[test]
fn every_single_byte_flip_fails_with_the_right_error() {
    let keys = keys();
    let envelope = sample_envelope(&keys, br#"{"op":"set"}"#);
    let mut opener = Opener::new(&keys);
    assert!(opener.open(&envelope).is_ok());
    for index in 0..envelope.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut bad = envelope.clone();
            bad[index] ^= mask;
            let err = opener.open(&bad).unwrap_err();
            let expected = match index {
                0 => "WIRE_VERSION",
                1 if EnvelopeKind::try_from(bad[1]).is_err() => "WRONG_KIND",
                // Kind (flipped to another valid kind), key epoch, channel, session,
                // counter, nonce, commitment, ciphertext, tag.
                _ => "DECRYPT_FAILED",
            };
            assert_eq!(err.code(), expected, "byte {index} ^ {mask:#04x}");
        }
    }
}

#[test]
fn truncated_or_extended_envelopes_fail() {
    let keys = keys();
    let envelope = sample_envelope(&keys, b"hello");
    let mut opener = Opener::new(&keys);
    // 90 + 64 + 16: the shortest valid envelope.
    assert_eq!(envelope.len(), 170);
    for len in 0..envelope.len() {
        let err = opener.open(&envelope[..len]).unwrap_err();
        assert_eq!(err.code(), "MALFORMED_FRAME", "length {len}");
    }
    let mut longer = sample_envelope(&keys, &[b'x'; 200]);
    longer.pop();
    assert_eq!(opener.open(&longer).unwrap_err(), Error::DecryptFailed);
    let mut extended = envelope.clone();
    extended.push(0);
    assert_eq!(opener.open(&extended).unwrap_err(), Error::DecryptFailed);
}

#[test]
fn another_room_or_key_cannot_open() {
    let keys = keys();
    let envelope = sample_envelope(&keys, b"secret plans");
    // Same secret, another room id: the room id is only in the associated data.
    let other_room = keys_for(SECRET, "team-notes2");
    assert_eq!(
        Opener::new(&other_room).open(&envelope).unwrap_err(),
        Error::DecryptFailed
    );
    let other_key = keys_for(OTHER_SECRET, "team-notes");
    assert_eq!(
        Opener::new(&other_key).open(&envelope).unwrap_err(),
        Error::DecryptFailed
    );

    let room = RoomId::new("pw-room").unwrap();
    let right = RoomKeys::derive(
        &RoomKey::from_password(&room, "hunter2").unwrap(),
        room.clone(),
    );
    let wrong = RoomKeys::derive(&RoomKey::from_password(&room, "hunter3").unwrap(), room);
    let envelope = sample_envelope(&right, b"secret plans");
    assert!(Opener::new(&right).open(&envelope).is_ok());
    assert_eq!(
        Opener::new(&wrong).open(&envelope).unwrap_err(),
        Error::DecryptFailed
    );
}

#[test]
fn hundred_thousand_seals_never_repeat_a_nonce() {
    let keys = keys();
    let mut sealer = SessionSealer::new(&keys, SessionId([1; 16]));
    let channel = keys.channel_tag("doc");
    let mut nonces = HashSet::new();
    let mut envelopes = HashSet::new();
    for _ in 0..100_000 {
        let envelope = sealer
            .seal(
                EnvelopeKind::Ephemeral,
                channel,
                hlc(),
                b"{}",
                random_nonce(),
            )
            .unwrap();
        let (header, _) = EnvelopeHeader::parse(&envelope).unwrap();
        assert!(nonces.insert(header.nonce), "repeated nonce");
        assert!(envelopes.insert(envelope), "repeated envelope");
    }
    assert_eq!(sealer.next_counter(), 100_001);
}

#[test]
fn round_trips_at_the_edge_sizes() {
    let keys = keys();
    let mut sealer = SessionSealer::new(&keys, SessionId([2; 16]));
    let mut opener = Opener::new(&keys);
    let channel = keys.channel_tag("snap");
    for len in [0, 1, 31, 64 * 1024, MAX_BODY_LEN] {
        let body: Vec<u8> = (0..len).map(|i| u8::try_from(i % 251).unwrap()).collect();
        let envelope = sealer
            .seal(
                EnvelopeKind::Snapshot,
                channel,
                hlc(),
                &body,
                random_nonce(),
            )
            .unwrap();
        assert_eq!(
            envelope.len(),
            ENVELOPE_HEADER_LEN + padded_len(33 + len) + 16,
            "len {len}"
        );
        assert!(envelope.len() <= MAX_ENVELOPE_LEN);
        if len == MAX_BODY_LEN {
            assert_eq!(envelope.len(), MAX_ENVELOPE_LEN);
        }
        let opened = opener.open(&envelope).unwrap();
        assert_eq!(opened.body, body, "len {len}");
        assert_eq!(opened.header.channel, channel);
    }
    let before = sealer.next_counter();
    let too_large = vec![0u8; MAX_BODY_LEN + 1];
    let err = sealer
        .seal(
            EnvelopeKind::Snapshot,
            channel,
            hlc(),
            &too_large,
            random_nonce(),
        )
        .unwrap_err();
    assert_eq!(
        err,
        Error::BodyTooLarge {
            len: MAX_BODY_LEN + 1,
            max: MAX_BODY_LEN
        }
    );
    assert_eq!(
        sealer.next_counter(),
        before,
        "a failed seal uses no counter"
    );
}

/// The size limits of PROTOCOL.md, "Limits": the longest body seals into the longest
/// envelope, whose `ROTATE` is the smallest frame limit a relay may run with, which fits
/// the 1 MiB a Cloudflare Worker receives.
#[test]
fn the_longest_envelope_fits_the_longest_frame() {
    assert_eq!(MAX_BODY_LEN, 1_000_000);
    assert_eq!(MAX_ENVELOPE_LEN, 1_015_914);
    assert_eq!(MIN_ENVELOPE_LEN, 170);
    assert_eq!(MAX_FRAME_LEN, 1_048_576);
    assert_eq!(MIN_RELAY_FRAME_LIMIT, MAX_ENVELOPE_LEN + 110);
    assert_eq!(MIN_RELAY_FRAME_LIMIT, 1_016_024);

    let keys = keys();
    let mut sealer = SessionSealer::new(&keys, SessionId([6; 16]));
    let body = vec![b'x'; MAX_BODY_LEN];
    let seal = |sealer: &mut SessionSealer, kind| {
        sealer
            .seal(kind, keys.channel_tag("doc"), hlc(), &body, random_nonce())
            .unwrap()
    };
    let snapshot = seal(&mut sealer, EnvelopeKind::Snapshot);
    assert_eq!(snapshot.len(), MAX_ENVELOPE_LEN);
    let put = ClientFrame::SnapshotPut {
        upto_seq: u64::MAX,
        envelope: snapshot,
    }
    .encode()
    .unwrap();
    assert_eq!(put.len(), MAX_ENVELOPE_LEN + SNAPSHOT_PUT_OVERHEAD);
    assert!(matches!(
        ClientFrame::decode(&put),
        Ok(ClientFrame::SnapshotPut { .. })
    ));
    let snapshot = seal(&mut sealer, EnvelopeKind::Snapshot);
    let rotate = ClientFrame::Rotate {
        key_epoch: u32::MAX,
        member_key: [1; 32],
        proof: [2; 64],
        upto_seq: u64::MAX,
        envelope: snapshot,
    }
    .encode()
    .unwrap();
    assert_eq!(rotate.len(), MIN_RELAY_FRAME_LIMIT);
    assert_eq!(rotate.len(), MAX_ENVELOPE_LEN + ROTATE_OVERHEAD);
    assert!(rotate.len() <= MAX_FRAME_LEN);
    assert!(matches!(
        ClientFrame::decode(&rotate),
        Ok(ClientFrame::Rotate { .. })
    ));
    let event = seal(&mut sealer, EnvelopeKind::Event);
    let publish = ClientFrame::Publish { envelope: event }.encode().unwrap();
    assert_eq!(publish.len(), MAX_ENVELOPE_LEN + PUBLISH_OVERHEAD);

    // A relay announcing the smallest limit still takes every body the SDK seals.
    let limits = RelayLimits {
        max_frame_bytes: u32::try_from(MIN_RELAY_FRAME_LIMIT).unwrap(),
        rate_burst: 1,
        rate_per_second: 1,
        max_history_events: 1,
        max_history_bytes: 1,
    };
    assert_eq!(limits.max_body_len(), MAX_BODY_LEN);
}

#[test]
fn padme_is_monotonic_bounded_and_at_least_the_input() {
    let mut previous = 0;
    for inner in 0..=33 + MAX_BODY_LEN {
        let padded = padded_len(inner);
        assert!(padded >= inner && padded >= 64, "{inner}");
        assert!(padded >= previous, "not monotonic at {inner}");
        if inner >= 64 {
            // padded / inner ≤ 1.12
            assert!(padded * 100 <= inner * 112, "overhead at {inner}: {padded}");
        }
        previous = padded;
    }
    // Few distinct lengths: what the relay can observe.
    let distinct: HashSet<usize> = (0..=33 + MAX_BODY_LEN).map(padded_len).collect();
    assert!(
        distinct.len() < 1_000,
        "{} distinct lengths",
        distinct.len()
    );
}

#[test]
fn session_refuses_its_two_to_the_32nd_seal() {
    let keys = keys();
    let channel = keys.channel_tag("doc");
    let session = SessionId([3; 16]);
    let mut sealer = SessionSealer::resume(&keys, session, MAX_COUNTER - 1);
    for expected in [MAX_COUNTER - 1, MAX_COUNTER] {
        let envelope = sealer
            .seal(EnvelopeKind::Event, channel, hlc(), b"{}", random_nonce())
            .unwrap();
        assert_eq!(
            EnvelopeHeader::parse(&envelope).unwrap().0.counter,
            expected
        );
    }
    for _ in 0..2 {
        let err = sealer
            .seal(EnvelopeKind::Event, channel, hlc(), b"{}", random_nonce())
            .unwrap_err();
        assert_eq!(err, Error::SessionExhausted);
    }
    let mut beyond = SessionSealer::resume(&keys, session, u64::MAX);
    assert_eq!(
        beyond
            .seal(EnvelopeKind::Event, channel, hlc(), b"{}", random_nonce())
            .unwrap_err(),
        Error::SessionExhausted
    );
    assert_eq!(SessionSealer::resume(&keys, session, 0).next_counter(), 1);
    assert_eq!(SessionSealer::new(&keys, session).next_counter(), 1);
}

#[test]
fn opener_cache_evicts_but_still_opens_every_session() {
    let keys = keys();
    let channel = keys.channel_tag("doc");
    let count = u8::try_from(OPENER_CACHE_SESSIONS * 2).unwrap();
    let envelopes: Vec<Vec<u8>> = (0..count)
        .map(|i| {
            SessionSealer::new(&keys, SessionId([i; 16]))
                .seal(EnvelopeKind::Event, channel, hlc(), &[i], random_nonce())
                .unwrap()
        })
        .collect();
    let mut opener = Opener::new(&keys);
    for _ in 0..2 {
        for (i, envelope) in envelopes.iter().enumerate() {
            let opened = opener.open(envelope).unwrap();
            assert_eq!(opened.body, [u8::try_from(i).unwrap()]);
            assert_eq!(opened.header.session, SessionId([opened.body[0]; 16]));
        }
    }
}

/// Seals an arbitrary inner plaintext exactly as PROTOCOL.md says, with the primitive
/// crates directly: what a peer holding the key (possibly buggy or hostile) could send.
fn seal_raw(secret_key: &[u8; 32], room: &str, session: [u8; 16], inner: &[u8]) -> Vec<u8> {
    let expand = |ikm: &[u8], salt: &[u8], info: &[u8]| {
        let mut out = [0u8; 32];
        Hkdf::<Sha256>::new(Some(salt), ikm)
            .expand(info, &mut out)
            .unwrap();
        out
    };
    let event_root = expand(secret_key, b"sealsync/v1", b"sealsync/v1/event");
    let commit_root = expand(secret_key, b"sealsync/v1", b"sealsync/v1/commit");
    let enc = expand(&event_root, &session, b"sealsync/v1/session-enc");
    let commit = expand(&commit_root, &session, b"sealsync/v1/session-commit");

    let header = EnvelopeHeader {
        kind: EnvelopeKind::Event,
        key_epoch: 0,
        channel: ChannelTag([0; 16]),
        session: SessionId(session),
        counter: 1,
        nonce: [9; 12],
        commitment: [0; 32],
    };
    let mut ad = b"sealsync/v1/ad".to_vec();
    ad.extend_from_slice(&u16::try_from(room.len()).unwrap().to_be_bytes());
    ad.extend_from_slice(room.as_bytes());
    ad.extend_from_slice(&header.ad_bytes());
    let mut mac = Hmac::<Sha256>::new_from_slice(&commit).unwrap();
    mac.update(&ad);
    let header = EnvelopeHeader {
        commitment: mac.finalize().into_bytes().into(),
        ..header
    };

    let mut out = Vec::new();
    header.write_to(&mut out);
    out.extend_from_slice(inner);
    let tag = Aes256Gcm::new_from_slice(&enc)
        .unwrap()
        .encrypt_inout_detached(
            &Nonce::<Aes256Gcm>::from([9; 12]),
            &ad,
            (&mut out[ENVELOPE_HEADER_LEN..]).into(),
        )
        .unwrap();
    out.extend_from_slice(&tag);
    out
}

#[test]
fn bad_inner_plaintext_from_a_key_holder_is_malformed_not_decrypt_failed() {
    let key: [u8; 32] = std::array::from_fn(|i| u8::try_from(i).unwrap());
    let keys = keys(); // SECRET encodes 0, 1, …, 31
    let mut opener = Opener::new(&keys);
    let mut inner = vec![0u8; 64];
    inner[0] = 1;
    inner[32] = 2; // body_len = 2
    inner[33..35].copy_from_slice(b"{}");

    let good = seal_raw(&key, "team-notes", [4; 16], &inner);
    assert_eq!(opener.open(&good).unwrap().body, b"{}");

    let with = |index: usize, value: u8| {
        let mut spoiled = inner.clone();
        spoiled[index] = value;
        spoiled
    };
    let mut too_long = inner.clone();
    too_long.extend_from_slice(&[0; 8]); // 72 bytes, but Padmé(35) = 64
    let cases = [
        ("version", with(0, 2)),
        ("padding", with(63, 1)),
        ("length", with(32, 40)),
        ("padded size", too_long),
    ];
    for (what, bad) in cases {
        let err = opener
            .open(&seal_raw(&key, "team-notes", [4; 16], &bad))
            .unwrap_err();
        assert_eq!(err.code(), "MALFORMED_PLAINTEXT", "{what}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn seal_open_round_trip(
        body in proptest::collection::vec(any::<u8>(), 0..4096),
        wall in any::<u64>(),
        hlc_counter in any::<u32>(),
        device in any::<[u8; 16]>(),
        session in any::<[u8; 16]>(),
        channel in "[a-z]{0,12}",
        kind in 1u8..=4,
        counter in 1u64..=MAX_COUNTER,
        nonce in any::<[u8; 12]>(),
    ) {
        let keys = keys();
        let kind = EnvelopeKind::try_from(kind).unwrap();
        let hlc = Hlc { wall, counter: hlc_counter, device: DeviceId(device) };
        let tag = keys.channel_tag(&channel);
        let mut sealer = SessionSealer::resume(&keys, SessionId(session), counter);
        let envelope = sealer.seal(kind, tag, hlc, &body, nonce).unwrap();
        let opened = Opener::new(&keys).open(&envelope).unwrap();
        prop_assert_eq!(&opened.body, &body);
        prop_assert_eq!(opened.hlc, hlc);
        prop_assert_eq!(opened.header.kind, kind);
        prop_assert_eq!(opened.header.channel, tag);
        prop_assert_eq!(opened.header.counter, counter);
        prop_assert_eq!(opened.header.nonce, nonce);
        prop_assert_eq!(opened.header.session, SessionId(session));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any room, key and challenge: the proof verifies for exactly that room, challenge and
    /// member key; one flipped bit of the proof, another challenge or another room fails.
    #[test]
    fn membership_proofs_verify_only_where_they_were_made(
        room_key in any::<[u8; 32]>(),
        room in "[a-zé0-9-]{1,40}",
        challenge in any::<[u8; CHALLENGE_LEN]>(),
        other_challenge in any::<[u8; CHALLENGE_LEN]>(),
        bit in 0..PROOF_LEN * 8,
    ) {
        let secret =
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, room_key);
        let keys = keys_for(&secret, &room);
        let room = RoomId::new(&room).unwrap();
        let (member_key, proof) = (keys.member_key(), keys.prove(&challenge));
        prop_assert!(verify_proof(&room, &challenge, &member_key, &proof));
        prop_assert_eq!(keys.prove(&challenge), proof, "deterministic");

        let mut flipped = proof;
        flipped[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(!verify_proof(&room, &challenge, &member_key, &flipped));
        if other_challenge != challenge {
            prop_assert!(!verify_proof(&room, &other_challenge, &member_key, &proof));
        }
        let longer = RoomId::new(&format!("{}x", room.as_str())).unwrap();
        prop_assert!(!verify_proof(&longer, &challenge, &member_key, &proof));
    }
}
