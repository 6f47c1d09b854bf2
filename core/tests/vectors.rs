//! Known-answer tests for the primitives sealsync-core uses, through the same APIs it uses
//! them: Wycheproof AES-256-GCM and HKDF-SHA256, RFC 9106 Argon2id, and our own golden
//! password-to-keys vector (computed independently, see `data/golden.py`), including the
//! room's member key and its membership proof for a fixed challenge (OpenSSL's Ed25519).
//!
//! Every data file lives in `core/tests/data/`; a missing file fails the test.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers: a failure here is a test failure"
)]

use std::fs;
use std::path::PathBuf;

use argon2::{Algorithm, Argon2, AssociatedData, ParamsBuilder, Version};
use ed25519_compact::{KeyPair, Seed};
use hkdf::Hkdf;
use sealsync_aead::Gcm;
use sealsync_core::kdf::{ARGON2_ITERATIONS, ARGON2_MEMORY_KIB, ARGON2_PARALLELISM};
use sealsync_core::member::{proof_message, verify_proof, CHALLENGE_LEN};
use sealsync_core::{RoomId, RoomKey, RoomKeys};
use serde_json::Value;
use sha2::{Digest, Sha256};

const WYCHEPROOF_FILES: [&str; 3] = [
    "aes_gcm_test.json",
    "hkdf_sha256_test.json",
    "pbkdf2_hmacsha256_test.json",
];

fn data_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    let path = data_path(name);
    fs::read(&path).unwrap_or_else(|e| panic!("test data {} is missing: {e}", path.display()))
}

fn json(name: &str) -> Value {
    serde_json::from_slice(&read(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn unhex(value: &Value) -> Vec<u8> {
    hex::decode(value.as_str().expect("hex string")).expect("valid hex")
}

fn array<const N: usize>(value: &Value) -> [u8; N] {
    unhex(value).try_into().expect("hex of the right length")
}

fn tests_of(file: &Value) -> impl Iterator<Item = (&Value, &Value)> {
    file["testGroups"]
        .as_array()
        .expect("testGroups")
        .iter()
        .flat_map(|group| {
            group["tests"]
                .as_array()
                .expect("tests")
                .iter()
                .map(move |test| (group, test))
        })
}

/// The copies in `core/tests/data/wycheproof/` are the files the vectors README lists, by
/// SHA-256; and identical to `shared/vectors/` when that directory is beside the repo.
#[test]
fn wycheproof_copies_are_intact() {
    let readme = String::from_utf8(read("wycheproof/README.md")).unwrap();
    assert!(readme.contains("Apache License 2.0"), "attribution kept");
    let shared = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors/wycheproof");
    for name in WYCHEPROOF_FILES {
        let bytes = read(&format!("wycheproof/{name}"));
        let digest = hex::encode(Sha256::digest(&bytes));
        let row = readme
            .lines()
            .find(|line| line.contains(&format!("`wycheproof/{name}`")))
            .unwrap_or_else(|| panic!("{name} not listed in the README"));
        assert!(
            row.contains(&digest),
            "{name}: sha256 {digest} not in its README row"
        );
        if let Ok(original) = fs::read(shared.join(name)) {
            assert_eq!(original, bytes, "{name} differs from shared/vectors");
        }
    }
}

#[test]
fn wycheproof_aes_256_gcm() {
    let file = json("wycheproof/aes_gcm_test.json");
    let (mut valid, mut invalid) = (0, 0);
    for (group, test) in tests_of(&file) {
        if group["keySize"] != 256 || group["ivSize"] != 96 || group["tagSize"] != 128 {
            continue;
        }
        let id = &test["tcId"];
        let cipher = Gcm::new(&unhex(&test["key"]).try_into().unwrap());
        let nonce: [u8; 12] = unhex(&test["iv"]).try_into().unwrap();
        let aad = unhex(&test["aad"]);
        let (msg, ct) = (unhex(&test["msg"]), unhex(&test["ct"]));
        let tag: [u8; 16] = unhex(&test["tag"]).try_into().unwrap();

        let mut buffer = ct.clone();
        let opened = cipher.decrypt(&nonce, &aad, &mut buffer, &tag);
        match test["result"].as_str() {
            Some("valid") => {
                valid += 1;
                assert!(opened.is_ok(), "tcId {id} must decrypt");
                assert_eq!(buffer, msg, "tcId {id} plaintext");
                let mut buffer = msg.clone();
                let sealed = cipher.encrypt(&nonce, &aad, &mut buffer).unwrap();
                assert_eq!(buffer, ct, "tcId {id} ciphertext");
                assert_eq!(sealed, tag, "tcId {id} tag");
            }
            Some("invalid") => {
                invalid += 1;
                assert!(opened.is_err(), "tcId {id} must fail to decrypt");
            }
            other => panic!("tcId {id}: unexpected result {other:?}"),
        }
    }
    assert_eq!(valid + invalid, 66, "AES-256, 96-bit IV, 128-bit tag cases");
    assert!(valid > 0 && invalid > 0);
}

#[test]
fn wycheproof_hkdf_sha256() {
    let file = json("wycheproof/hkdf_sha256_test.json");
    let (mut valid, mut invalid) = (0, 0);
    for (_, test) in tests_of(&file) {
        let id = &test["tcId"];
        let hkdf = Hkdf::<Sha256>::new(Some(&unhex(&test["salt"])), &unhex(&test["ikm"]));
        let size = usize::try_from(test["size"].as_u64().unwrap()).unwrap();
        let mut okm = vec![0u8; size];
        let expanded = hkdf.expand(&unhex(&test["info"]), &mut okm);
        match test["result"].as_str() {
            Some("valid") => {
                valid += 1;
                assert!(expanded.is_ok(), "tcId {id} must expand");
                assert_eq!(okm, unhex(&test["okm"]), "tcId {id}");
            }
            Some("invalid") => {
                invalid += 1;
                assert!(
                    expanded.is_err(),
                    "tcId {id} ({size} bytes) must be refused"
                );
            }
            other => panic!("tcId {id}: unexpected result {other:?}"),
        }
    }
    assert_eq!((valid, invalid), (83, 3));
}

#[test]
fn rfc9106_argon2id() {
    let v = json("argon2id_rfc9106.json");
    let number = |k: &str| u32::try_from(v[k].as_u64().unwrap()).unwrap();
    assert_eq!(number("version"), 0x13);
    let params = ParamsBuilder::new()
        .m_cost(number("memory_kib"))
        .t_cost(number("iterations"))
        .p_cost(number("parallelism"))
        .output_len(32)
        .data(AssociatedData::new(&unhex(&v["associated_data"])).unwrap())
        .build()
        .unwrap();
    let secret = unhex(&v["secret"]);
    let argon2 =
        Argon2::new_with_secret(&secret, Algorithm::Argon2id, Version::V0x13, params).unwrap();
    let mut tag = [0u8; 32];
    argon2
        .hash_password_into(&unhex(&v["password"]), &unhex(&v["salt"]), &mut tag)
        .unwrap();
    assert_eq!(tag.as_slice(), unhex(&v["tag"]));
}

/// Lowering the Argon2id cost would silently weaken every password room and change every
/// room key: both the constants and the golden output are pinned.
#[test]
fn argon2_parameters_are_pinned() {
    assert_eq!(
        (ARGON2_MEMORY_KIB, ARGON2_ITERATIONS, ARGON2_PARALLELISM),
        (19_456, 2, 1)
    );
    let golden = json("kdf_golden.json");
    let params = &golden["argon2id"];
    assert_eq!(params["memory_kib"], ARGON2_MEMORY_KIB);
    assert_eq!(params["iterations"], ARGON2_ITERATIONS);
    assert_eq!(params["parallelism"], ARGON2_PARALLELISM);
}

/// `from_password` + `derive` reproduce the independently computed golden values; the
/// room id and password in the file are NFD, so this also checks NFC normalisation.
#[test]
fn password_to_keys_golden() {
    let golden = json("kdf_golden.json");
    let room = RoomId::new(golden["room"].as_str().unwrap()).unwrap();
    let password = golden["password"].as_str().unwrap();
    assert_ne!(
        room.as_str(),
        golden["room"].as_str().unwrap(),
        "input is NFD"
    );

    let salt = Sha256::digest(
        [
            b"sealsync/v1/room-salt".as_slice(),
            room.as_str().as_bytes(),
        ]
        .concat(),
    );
    assert_eq!(salt.as_slice(), unhex(&golden["salt"]));

    let keys = RoomKeys::derive(
        &RoomKey::from_password(&room, password).unwrap(),
        room.clone(),
    );
    assert_eq!(keys.member_key(), array::<32>(&golden["member_key"]));
    assert_eq!(
        keys.prove(&array(&golden["challenge"])),
        array::<64>(&golden["proof"])
    );
    assert_eq!(keys.fingerprint(), golden["fingerprint"].as_str().unwrap());
    for (name, tag) in golden["channel_tags"].as_object().unwrap() {
        assert_eq!(
            keys.channel_tag(name).as_bytes().as_slice(),
            unhex(tag),
            "{name:?}"
        );
    }

    // The room key itself equals the golden one (via the secret path, which takes it raw).
    let secret = golden["room_key_as_secret"].as_str().unwrap();
    let raw =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, secret).unwrap();
    assert_eq!(raw, unhex(&golden["room_key"]));
    let via_secret = RoomKeys::derive(&RoomKey::from_secret(secret).unwrap(), room);
    assert_eq!(via_secret.member_key(), keys.member_key());
}

/// The member key, step by step: HKDF-SHA256(room key, "sealsync/v1", "sealsync/v2/member")
/// is the golden seed, the seed's Ed25519 public key is the golden member key, and the
/// golden proof is that key's signature over the golden message (all computed by
/// `golden.py` with OpenSSL's Ed25519; here checked with the hkdf and ed25519-compact
/// crates, apart from `RoomKeys`).
#[test]
fn member_key_golden_step_by_step() {
    let golden = json("kdf_golden.json");
    let mut seed = [0u8; 32];
    Hkdf::<Sha256>::new(Some(b"sealsync/v1"), &unhex(&golden["room_key"]))
        .expand(b"sealsync/v2/member", &mut seed)
        .unwrap();
    assert_eq!(seed, array::<32>(&golden["member_seed"]));
    let pair = KeyPair::from_seed(Seed::new(seed));
    assert_eq!(*pair.pk, array::<32>(&golden["member_key"]));

    // The signed message is over the NFC room id (the file's room is NFD).
    let room = RoomId::new(golden["room"].as_str().unwrap()).unwrap();
    let challenge: [u8; CHALLENGE_LEN] = array(&golden["challenge"]);
    assert!(
        challenge.iter().copied().eq(0..=0x1f),
        "the challenge is 0x00..=0x1f"
    );
    let message = proof_message(&room, &challenge, &pair.pk);
    let nfc = room.as_str().as_bytes();
    let expected = [
        b"sealsync/v2/hello".as_slice(),
        &u16::try_from(nfc.len()).unwrap().to_be_bytes(),
        nfc,
        &challenge,
        pair.pk.as_slice(),
    ]
    .concat();
    assert_eq!(message, expected);
    assert_eq!(*pair.sk.sign(&message, None), array::<64>(&golden["proof"]));
}

/// `verify_proof` (the relay's check) accepts the golden proof for its room, challenge and
/// key, and nothing that differs in one bit or one parameter.
#[test]
fn the_golden_proof_verifies_and_nothing_near_it_does() {
    let golden = json("kdf_golden.json");
    let room = RoomId::new(golden["room"].as_str().unwrap()).unwrap();
    let challenge: [u8; CHALLENGE_LEN] = array(&golden["challenge"]);
    let key: [u8; 32] = array(&golden["member_key"]);
    let proof: [u8; 64] = array(&golden["proof"]);
    assert!(verify_proof(&room, &challenge, &key, &proof));

    for bit in 0..64 * 8 {
        let mut bad = proof;
        bad[bit / 8] ^= 1 << (bit % 8);
        assert!(
            !verify_proof(&room, &challenge, &key, &bad),
            "proof bit {bit}"
        );
    }
    for bit in 0..CHALLENGE_LEN * 8 {
        let mut other = challenge;
        other[bit / 8] ^= 1 << (bit % 8);
        assert!(
            !verify_proof(&room, &other, &key, &proof),
            "challenge bit {bit}"
        );
    }
    for bit in 0..32 * 8 {
        let mut other = key;
        other[bit / 8] ^= 1 << (bit % 8);
        assert!(
            !verify_proof(&room, &challenge, &other, &proof),
            "key bit {bit}"
        );
    }
    // Another room: another id, the same id with one more character, or not normalised
    // the same way (a composed and a decomposed é are one room: NFC is the same).
    for other in ["Cafe planning", "Café planning ", "café planning", "Café"] {
        let other = RoomId::new(other).unwrap();
        assert!(!verify_proof(&other, &challenge, &key, &proof), "{other:?}");
    }
    assert!(verify_proof(
        &RoomId::new("Caf\u{e9} planning").unwrap(),
        &challenge,
        &key,
        &proof
    ));
    // The file's room id as given (NFD), not normalised: other bytes, another room.
    let nfd = RoomId::new_with(golden["room"].as_str().unwrap(), str::to_owned).unwrap();
    assert_ne!(nfd, room);
    assert!(!verify_proof(&nfd, &challenge, &key, &proof));
    // Another room key's member key, for the same room and challenge.
    let other = RoomKeys::derive(
        &RoomKey::from_secret("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8").unwrap(),
        room.clone(),
    );
    assert_ne!(other.member_key(), key);
    assert!(!verify_proof(
        &room,
        &challenge,
        &other.member_key(),
        &proof
    ));
    assert!(verify_proof(
        &room,
        &challenge,
        &other.member_key(),
        &other.prove(&challenge)
    ));
}

/// Proofs a lax Ed25519 verifier would take: the same signature with `S + ℓ` (a
/// non-canonical scalar), and a small-order member key (the identity point) with a
/// signature that would verify for every message under cofactored verification.
#[test]
fn malleable_and_small_order_proofs_are_refused() {
    let golden = json("kdf_golden.json");
    let room = RoomId::new(golden["room"].as_str().unwrap()).unwrap();
    let challenge: [u8; CHALLENGE_LEN] = array(&golden["challenge"]);
    let key: [u8; 32] = array(&golden["member_key"]);
    let proof: [u8; 64] = array(&golden["proof"]);

    // ℓ = 2^252 + 27742317777372353535851937790883648493, little-endian.
    let ell: [u8; 32] =
        hex::decode("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")
            .unwrap()
            .try_into()
            .unwrap();
    let mut malleated = proof;
    let mut carry = 0u16;
    for (s, l) in malleated[32..].iter_mut().zip(ell) {
        let sum = u16::from(*s) + u16::from(l) + carry;
        *s = sum.to_le_bytes()[0];
        carry = sum >> 8;
    }
    assert_eq!(carry, 0, "S + ℓ < 2^256");
    assert_ne!(malleated, proof);
    assert!(!verify_proof(&room, &challenge, &key, &malleated));

    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut universal = [0u8; 64];
    universal[..32].copy_from_slice(&identity);
    assert!(!verify_proof(&room, &challenge, &identity, &universal));
    assert!(!verify_proof(&room, &challenge, &identity, &proof));
}

#[test]
fn password_keys_depend_on_room_and_password_and_not_on_normal_form() {
    let room = RoomId::new("room").unwrap();
    let member_key = |room: &RoomId, pw: &str| {
        RoomKeys::derive(&RoomKey::from_password(room, pw).unwrap(), room.clone()).member_key()
    };
    let base = member_key(&room, "caf\u{e9}");
    assert_eq!(
        member_key(&room, "cafe\u{301}"),
        base,
        "NFC-equal passwords"
    );
    assert_ne!(member_key(&room, "cafe"), base);
    assert_ne!(
        member_key(&RoomId::new("room2").unwrap(), "caf\u{e9}"),
        base
    );
}
