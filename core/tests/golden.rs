//! Golden bytes of wire version 2: `data/wire-v2.json` (written by `data/gen-wire-v2.py`,
//! an implementation of PROTOCOL.md's tables independent of this codec). Each frame must
//! encode to its hex and its hex must decode to it; each event body must decode to its
//! stamped operations, and the canonical ones must be exactly what the encoder writes.
//!
//! The first `HELLO` carries a real membership proof (the generator has its own Ed25519, RFC
//! 8032's reference code): `RoomKeys` must derive its member key and sign its challenge to
//! exactly its bytes.
//!
//! A changed golden file means a wire change: bump `wire::VERSION`.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers: a failed unwrap is a failed test"
)]

use serde_json::Value;

use sealsync_core::kdf::{RoomKey, RoomKeys};
use sealsync_core::limits::RelayLimits;
use sealsync_core::member::verify_proof;
use sealsync_core::merge::{
    batch_len, decode_event_body, encode_event_body, BatchItem, Op, ReorderItem, StampedOp,
};
use sealsync_core::wire::{
    Access, ClientFrame, Refusal, RelayErrorCode, RelayFrame, VerifierState, MAX_CHANNELS,
    MAX_ERROR_MESSAGE, MAX_SEQ, MIN_ENVELOPE_LEN, VERSION,
};
use sealsync_core::{ChannelTag, DeviceId, Hlc, RoomId, SessionId};

fn golden() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/wire-v2.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

fn array<const N: usize>(v: &Value) -> [u8; N] {
    bytes(v).try_into().unwrap()
}

fn u64_of(v: &Value) -> u64 {
    v.as_u64().unwrap()
}

fn u32_of(v: &Value) -> u32 {
    u32::try_from(u64_of(v)).unwrap()
}

fn u16_of(v: &Value) -> u16 {
    u16::try_from(u64_of(v)).unwrap()
}

fn string(v: &Value) -> String {
    v.as_str().unwrap().to_owned()
}

fn access(v: &Value) -> Access {
    match u64_of(v) {
        0 => Access::Write,
        1 => Access::ReadOnly,
        2 => Access::Pending,
        other => panic!("access {other}"),
    }
}

fn limits(f: &Value) -> RelayLimits {
    RelayLimits {
        max_frame_bytes: u32_of(&f["max_frame_bytes"]),
        rate_burst: u32_of(&f["rate_burst"]),
        rate_per_second: u32_of(&f["rate_per_second"]),
        max_history_events: u64_of(&f["max_history_events"]),
        max_history_bytes: u64_of(&f["max_history_bytes"]),
    }
}

fn client_frame(name: &str, f: &Value) -> ClientFrame {
    match name {
        "HELLO" => ClientFrame::Hello {
            after_seq: u64_of(&f["after_seq"]),
            member_key: array(&f["member_key"]),
            proof: array(&f["proof"]),
            channels: f["channels"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| ChannelTag(array(t)))
                .collect(),
        },
        "PUBLISH" => ClientFrame::Publish {
            envelope: bytes(&f["envelope"]),
        },
        "SYNC" => ClientFrame::Sync {
            after_seq: u64_of(&f["after_seq"]),
            token: u64_of(&f["token"]),
        },
        "SNAPSHOT_PUT" => ClientFrame::SnapshotPut {
            upto_seq: u64_of(&f["upto_seq"]),
            envelope: bytes(&f["envelope"]),
        },
        "EPHEMERAL" => ClientFrame::Ephemeral {
            envelope: bytes(&f["envelope"]),
        },
        "ROTATE" => ClientFrame::Rotate {
            key_epoch: u32_of(&f["key_epoch"]),
            member_key: array(&f["member_key"]),
            proof: array(&f["proof"]),
            upto_seq: u64_of(&f["upto_seq"]),
            envelope: bytes(&f["envelope"]),
        },
        other => panic!("unknown client frame {other} in the golden file"),
    }
}

fn relay_frame(name: &str, f: &Value) -> RelayFrame {
    match name {
        "WELCOME" => RelayFrame::Welcome {
            relay_time: u64_of(&f["relay_time"]),
            head_seq: u64_of(&f["head_seq"]),
            snapshot_seq: u64_of(&f["snapshot_seq"]),
            presence: u32_of(&f["presence"]),
            verifier_state: match u64_of(&f["verifier_state"]) {
                0 => VerifierState::Created,
                1 => VerifierState::Matched,
                other => panic!("verifier_state {other}"),
            },
            access: access(&f["access"]),
            limits: limits(&f["limits"]),
        },
        "ACK" => RelayFrame::Ack {
            session: SessionId(array(&f["session_id"])),
            counter: u64_of(&f["counter"]),
            seq: u64_of(&f["seq"]),
            relay_time: u64_of(&f["relay_time"]),
            duplicate: f["duplicate"].as_bool().unwrap(),
        },
        "EVENT" => RelayFrame::Event {
            seq: u64_of(&f["seq"]),
            relay_time: u64_of(&f["relay_time"]),
            envelope: bytes(&f["envelope"]),
        },
        "SNAPSHOT" => RelayFrame::Snapshot {
            seq: u64_of(&f["seq"]),
            envelope: bytes(&f["envelope"]),
        },
        "CAUGHT_UP" => RelayFrame::CaughtUp {
            head_seq: u64_of(&f["head_seq"]),
            token: u64_of(&f["token"]),
        },
        "EPHEMERAL" => RelayFrame::Ephemeral {
            envelope: bytes(&f["envelope"]),
        },
        "PRESENCE" => RelayFrame::Presence {
            count: u32_of(&f["count"]),
        },
        "ERROR" => RelayFrame::Error {
            code: RelayErrorCode::from(u16_of(&f["code"])),
            fatal: f["fatal"].as_bool().unwrap(),
            message: string(&f["message"]),
        },
        "NOTIFY" => RelayFrame::Notify {
            json: string(&f["json"]),
        },
        "SNAPSHOT_STORED" => RelayFrame::SnapshotStored {
            seq: u64_of(&f["seq"]),
        },
        "REFUSED" => RelayFrame::Refused {
            session: SessionId(array(&f["session_id"])),
            counter: u64_of(&f["counter"]),
            code: RelayErrorCode::from(u16_of(&f["code"])),
            retry_after_ms: u32_of(&f["retry_after_ms"]),
            message: string(&f["message"]),
        },
        "ACCESS" => RelayFrame::Access {
            access: access(&f["access"]),
        },
        "CHALLENGE" => RelayFrame::Challenge {
            challenge: array(&f["challenge"]),
        },
        "KEY_EPOCH" => RelayFrame::KeyEpoch {
            key_epoch: u32_of(&f["key_epoch"]),
        },
        other => panic!("unknown relay frame {other} in the golden file"),
    }
}

fn entries<'a>(doc: &'a Value, side: &str) -> impl Iterator<Item = (&'a str, &'a Value, Vec<u8>)> {
    doc[side]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["frame"].as_str().unwrap(), &e["fields"], bytes(&e["hex"])))
}

#[test]
fn golden_file_is_for_this_version() {
    assert_eq!(golden()["version"].as_u64(), Some(u64::from(VERSION)));
}

#[test]
fn client_frames_match_the_golden_bytes() {
    let doc = golden();
    let mut names = Vec::new();
    for (name, fields, wire) in entries(&doc, "client") {
        let frame = client_frame(name, fields);
        assert_eq!(frame.encode().unwrap(), wire, "encode {name}");
        assert_eq!(ClientFrame::decode(&wire).unwrap(), frame, "decode {name}");
        names.push(name);
    }
    names.dedup();
    assert_eq!(
        names,
        [
            "HELLO",
            "PUBLISH",
            "SYNC",
            "SNAPSHOT_PUT",
            "EPHEMERAL",
            "ROTATE"
        ],
        "one example of every client frame"
    );
}

#[test]
fn relay_frames_match_the_golden_bytes() {
    let doc = golden();
    let mut names = Vec::new();
    for (name, fields, wire) in entries(&doc, "relay") {
        let frame = relay_frame(name, fields);
        assert_eq!(frame.encode().unwrap(), wire, "encode {name}");
        assert_eq!(RelayFrame::decode(&wire).unwrap(), frame, "decode {name}");
        names.push(name);
    }
    names.dedup();
    assert_eq!(
        names,
        [
            "WELCOME",
            "ACK",
            "EVENT",
            "SNAPSHOT",
            "CAUGHT_UP",
            "EPHEMERAL",
            "PRESENCE",
            "ERROR",
            "NOTIFY",
            "SNAPSHOT_STORED",
            "REFUSED",
            "ACCESS",
            "CHALLENGE",
            "KEY_EPOCH"
        ],
        "one example of every relay frame"
    );
}

#[test]
fn golden_error_frames_cover_a_known_and_an_unknown_code() {
    let doc = golden();
    let codes: Vec<RelayErrorCode> = entries(&doc, "relay")
        .filter_map(|(_, _, wire)| match RelayFrame::decode(&wire).unwrap() {
            RelayFrame::Error { code, .. } => Some(code),
            _ => None,
        })
        .collect();
    assert_eq!(codes[0], RelayErrorCode::RoomFull);
    assert_eq!(codes[1].name(), "UNKNOWN");
    assert_eq!(codes[1].code(), 513);
}

fn relay_frames(doc: &Value) -> Vec<RelayFrame> {
    entries(doc, "relay")
        .map(|(_, _, wire)| RelayFrame::decode(&wire).unwrap())
        .collect()
}

#[test]
fn golden_refused_frames_cover_retry_reject_an_unknown_code_and_the_longest_message() {
    let refused: Vec<(RelayErrorCode, u32, String)> = relay_frames(&golden())
        .into_iter()
        .filter_map(|f| match f {
            RelayFrame::Refused {
                code,
                retry_after_ms,
                message,
                ..
            } => Some((code, retry_after_ms, message)),
            _ => None,
        })
        .collect();
    let codes: Vec<RelayErrorCode> = refused.iter().map(|r| r.0).collect();
    assert_eq!(
        codes[..2],
        [RelayErrorCode::RateLimited, RelayErrorCode::TooLarge]
    );
    assert_eq!(codes[2].name(), "UNKNOWN");
    assert_eq!(codes[2].code(), 0x1234);
    assert_eq!(codes[3], RelayErrorCode::DuplicateMismatch);
    assert_eq!(codes[3].code(), 14);
    assert_eq!(codes[3].name(), "DUPLICATE_MISMATCH");
    let refusals: Vec<Refusal> = codes.iter().map(|c| c.refusal()).collect();
    assert_eq!(
        refusals,
        [
            Refusal::Retry,
            Refusal::Reject,
            Refusal::Reject,
            Refusal::Reject
        ]
    );
    assert_eq!(refused[0].1, 1500);
    assert!(!refused[0].2.is_ascii(), "a message in UTF-8");
    assert_eq!(refused[1].2.len(), MAX_ERROR_MESSAGE, "the longest message");
    assert!(refused[2].2.is_empty());
}

fn client_frames(doc: &Value) -> Vec<ClientFrame> {
    entries(doc, "client")
        .map(|(_, _, wire)| ClientFrame::decode(&wire).unwrap())
        .collect()
}

/// The first golden `HELLO` answers the first golden `CHALLENGE` with a proof that
/// `RoomKeys` reproduces byte for byte and the relay's check accepts.
#[test]
fn the_golden_hello_proves_membership_for_the_golden_challenge() {
    let doc = golden();
    let signed = &doc["hello_proof"];
    let room = RoomId::new(signed["room"].as_str().unwrap()).unwrap();
    assert!(
        room.as_str().len() > room.as_str().chars().count(),
        "the length prefix counts bytes, not characters"
    );
    let room_key: [u8; 32] = array(&signed["room_key"]);
    let secret =
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, room_key);
    let keys = RoomKeys::derive(&RoomKey::from_secret(&secret).unwrap(), room.clone());
    let challenge: [u8; 32] = array(&signed["challenge"]);
    let member_key: [u8; 32] = array(&signed["member_key"]);
    let proof: [u8; 64] = array(&signed["proof"]);

    assert_eq!(keys.member_key(), member_key);
    assert_eq!(keys.prove(&challenge), proof);
    assert!(verify_proof(&room, &challenge, &member_key, &proof));

    let hellos: Vec<([u8; 32], [u8; 64])> = client_frames(&doc)
        .into_iter()
        .filter_map(|f| match f {
            ClientFrame::Hello {
                member_key, proof, ..
            } => Some((member_key, proof)),
            _ => None,
        })
        .collect();
    assert_eq!(hellos[0], (member_key, proof), "the first HELLO carries it");
    let challenges: Vec<[u8; 32]> = relay_frames(&doc)
        .into_iter()
        .filter_map(|f| match f {
            RelayFrame::Challenge { challenge } => Some(challenge),
            _ => None,
        })
        .collect();
    assert_eq!(
        challenges[0], challenge,
        "the first CHALLENGE is the one signed"
    );
    assert_eq!(challenges[1], [0; 32]);

    // The other HELLO is well-formed but its junk proof proves nothing, and the real proof
    // answers no other challenge.
    for &(key, junk) in &hellos[1..] {
        for c in &challenges {
            assert!(!verify_proof(&room, c, &key, &junk));
        }
    }
    assert!(!verify_proof(&room, &challenges[1], &member_key, &proof));
}

#[test]
fn golden_hellos_cover_one_and_the_most_channels_and_the_largest_sequence() {
    let hellos: Vec<(u64, usize)> = client_frames(&golden())
        .into_iter()
        .filter_map(|f| match f {
            ClientFrame::Hello {
                after_seq,
                channels,
                ..
            } => Some((after_seq, channels.len())),
            _ => None,
        })
        .collect();
    assert_eq!(hellos, [(42, 3), (MAX_SEQ, MAX_CHANNELS)]);
}

#[test]
fn golden_access_values_cover_every_access() {
    let frames = relay_frames(&golden());
    let access: Vec<Access> = frames
        .iter()
        .filter_map(|f| match f {
            RelayFrame::Access { access } => Some(*access),
            _ => None,
        })
        .collect();
    assert_eq!(access, [Access::Write, Access::ReadOnly, Access::Pending]);
    let welcome: Vec<(VerifierState, Access)> = frames
        .iter()
        .filter_map(|f| match f {
            RelayFrame::Welcome {
                verifier_state,
                access,
                ..
            } => Some((*verifier_state, *access)),
            _ => None,
        })
        .collect();
    assert_eq!(
        welcome,
        [
            (VerifierState::Matched, Access::Write),
            (VerifierState::Created, Access::Pending)
        ]
    );
}

#[test]
fn golden_envelopes_include_the_shortest_one() {
    let doc = golden();
    let lengths: Vec<usize> = ["client", "relay"]
        .into_iter()
        .flat_map(|side| entries(&doc, side).collect::<Vec<_>>())
        .filter_map(|(_, f, _)| f.get("envelope").map(|e| bytes(e).len()))
        .collect();
    assert!(lengths.iter().all(|&len| len >= MIN_ENVELOPE_LEN));
    assert!(lengths.contains(&MIN_ENVELOPE_LEN), "{lengths:?}");
    assert!(lengths.iter().any(|&len| len > 255), "{lengths:?}");
}

/// An operation built field by field from its JSON (not through `Op`'s deserialiser).
fn op_of(v: &Value) -> Op {
    let collection = string(&v["collection"]);
    let id = || string(&v["id"]);
    let fields = || v["fields"].as_object().unwrap().clone();
    match v["type"].as_str().unwrap() {
        "created" => Op::Created {
            collection,
            id: id(),
            fields: fields(),
        },
        "updated" => Op::Updated {
            collection,
            id: id(),
            fields: fields(),
        },
        "deleted" => Op::Deleted {
            collection,
            id: id(),
        },
        "reordered" => Op::Reordered {
            collection,
            items: v["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|item| ReorderItem {
                    id: string(&item["id"]),
                    sort_order: string(&item["sortOrder"]),
                })
                .collect(),
        },
        "claimed" => Op::Claimed {
            collection,
            id: id(),
            claimed_by: v["claimedBy"].clone(),
            claimed_by_name: v["claimedByName"].clone(),
            claimed_by_avatar: v["claimedByAvatar"].clone(),
        },
        other => panic!("unknown operation type {other} in the golden file"),
    }
}

struct BodyCase {
    name: String,
    canonical: bool,
    stamp: Hlc,
    body: Vec<u8>,
    ops: Vec<StampedOp>,
}

fn body_cases() -> Vec<BodyCase> {
    let doc = golden();
    doc["event_bodies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|case| {
            let s = &case["stamp"];
            let device = DeviceId(array(&s["device"]));
            let stamp = Hlc {
                wall: u64_of(&s["wall"]),
                counter: u32_of(&s["counter"]),
                device,
            };
            let ops = case["ops"]
                .as_array()
                .unwrap()
                .iter()
                .map(|item| StampedOp {
                    hlc: Hlc {
                        wall: u64_of(&item["wall"]),
                        counter: u32_of(&item["counter"]),
                        device,
                    }
                    .into(),
                    op: op_of(&item["op"]),
                })
                .collect();
            BodyCase {
                name: string(&case["name"]),
                canonical: case["canonical"].as_bool().unwrap(),
                stamp,
                body: string(&case["body"]).into_bytes(),
                ops,
            }
        })
        .collect()
}

#[test]
fn golden_event_bodies_decode_to_their_stamped_operations() {
    let cases = body_cases();
    assert!(cases.len() >= 3);
    for case in &cases {
        let ops = decode_event_body(&case.body, case.stamp)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(ops, case.ops, "{}", case.name);
        for op in &ops {
            op.op.validate().unwrap();
        }
    }
}

#[test]
fn canonical_golden_event_bodies_are_exactly_what_the_encoder_writes() {
    let cases = body_cases();
    let mut kinds = Vec::new();
    for case in cases.iter().filter(|c| c.canonical) {
        let items: Vec<BatchItem> = case.ops.iter().cloned().map(BatchItem::new).collect();
        let (body, stamp) = encode_event_body(&items);
        assert_eq!(
            String::from_utf8(body.clone()).unwrap(),
            String::from_utf8(case.body.clone()).unwrap(),
            "{}",
            case.name
        );
        assert_eq!(stamp, case.stamp, "{}: the envelope's stamp", case.name);
        if items.len() > 1 {
            let items_len = items.iter().map(|i| i.json.len()).sum();
            assert_eq!(
                body.len(),
                batch_len(items_len, items.len()),
                "{}",
                case.name
            );
            kinds.push("batch");
        } else {
            kinds.push("bare");
        }
    }
    kinds.sort_unstable();
    kinds.dedup();
    assert_eq!(kinds, ["bare", "batch"], "a bare operation and a batch");
}

#[test]
fn non_canonical_golden_event_bodies_are_read_but_not_written() {
    let mut seen = 0;
    for case in body_cases().iter().filter(|c| !c.canonical) {
        let items: Vec<BatchItem> = case.ops.iter().cloned().map(BatchItem::new).collect();
        let (body, _) = encode_event_body(&items);
        assert_ne!(body, case.body, "{}", case.name);
        // What the encoder writes instead reads back to the same operations.
        let stamp = items.iter().map(|i| i.stamped.hlc.raw).max().unwrap();
        assert_eq!(
            decode_event_body(&body, stamp).unwrap(),
            case.ops,
            "{}",
            case.name
        );
        seen += 1;
    }
    assert!(seen >= 2);
}

#[test]
fn the_golden_batch_covers_every_operation_type() {
    let cases = body_cases();
    let mut types: Vec<&str> = cases
        .iter()
        .flat_map(|c| &c.ops)
        .map(|o| match o.op {
            Op::Created { .. } => "created",
            Op::Updated { .. } => "updated",
            Op::Deleted { .. } => "deleted",
            Op::Reordered { .. } => "reordered",
            Op::Claimed { .. } => "claimed",
        })
        .collect();
    types.sort_unstable();
    types.dedup();
    assert_eq!(
        types,
        ["claimed", "created", "deleted", "reordered", "updated"]
    );
}

/// The golden `ROTATE` carries a rotation proof (written by the independent generator) that
/// `RoomKeys::prove_rotation` reproduces byte for byte and the relay's check accepts, for
/// the golden `HELLO`'s room, key and challenge.
#[test]
fn the_golden_rotate_is_signed_by_the_current_member_key() {
    let doc = golden();
    let signed = &doc["hello_proof"];
    let rotation = &doc["rotation_proof"];
    let room = RoomId::new(signed["room"].as_str().unwrap()).unwrap();
    let keys_of = |v: &Value| {
        let key: [u8; 32] = array(v);
        let secret = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, key);
        RoomKeys::derive(&RoomKey::from_secret(&secret).unwrap(), room.clone())
    };
    let (current, next) = (
        keys_of(&signed["room_key"]),
        keys_of(&rotation["new_room_key"]),
    );
    let challenge: [u8; 32] = array(&signed["challenge"]);
    let epoch = u32_of(&rotation["key_epoch"]);
    let new_key: [u8; 32] = array(&rotation["new_member_key"]);
    let proof: [u8; 64] = array(&rotation["proof"]);
    assert_eq!(next.member_key(), new_key);
    assert_eq!(current.prove_rotation(&challenge, epoch, &new_key), proof);
    assert!(sealsync_core::member::verify_rotation(
        &room,
        &challenge,
        epoch,
        &current.member_key(),
        &new_key,
        &proof
    ));
    let rotate = client_frames(&doc)
        .into_iter()
        .find_map(|f| match f {
            ClientFrame::Rotate {
                key_epoch,
                member_key,
                proof,
                ..
            } => Some((key_epoch, member_key, proof)),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        rotate,
        (epoch, new_key, proof),
        "the golden ROTATE carries it"
    );
}
