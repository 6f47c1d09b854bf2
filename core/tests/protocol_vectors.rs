//! The protocol vectors: `data/vectors-v2.json`, written from this crate's public API and
//! read by an independent implementation (`tests/vectors/`, Node with its own crypto and
//! merge, written from PROTOCOL.md) that must reproduce every byte and every state in it.
//!
//! The file holds, from a fixed room secret and room id: the room key and every subkey
//! PROTOCOL.md names (member key, proof, fingerprint, channel tags, session subkeys),
//! envelopes sealed with fixed sessions, counters, nonces and HLCs (a bare operation, a
//! batch, an ephemeral payload, a snapshot body, a padded one) with their associated data,
//! inner plaintext and bytes, event bodies the decoder must refuse, and a merge scenario:
//! events (`seq`, `relay_time`, envelope) with their decoded operations at their effective
//! stamps, the final state (snapshot bytes and reads) after merging them in several orders,
//! and a sealed snapshot of a prefix that, joined with the tail, gives the same state.
//!
//! This test regenerates the file and compares it byte for byte with the committed one, so
//! the file cannot drift from the code. After an intended change (which is a protocol
//! change: bump the version), rewrite it with
//!
//! ```text
//! SEALSYNC_WRITE_VECTORS=1 cargo test -p sealsync-core --test protocol_vectors
//! ```
//!
//! The subkeys `RoomKeys` keeps private (event, commit and channel roots, session subkeys)
//! are derived here with HKDF as PROTOCOL.md says; the test proves them equal to the
//! crate's by opening its envelopes with them and recomputing their commitments.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers: a failed unwrap is a failed test"
)]

use std::fs;
use std::path::PathBuf;

use aes_gcm::aead::{AeadInOut, KeyInit, Nonce, Tag};
use aes_gcm::Aes256Gcm;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};
use sha2::Sha256;

use sealsync_core::client::ROOM_TAG;
use sealsync_core::envelope::{EnvelopeKind, ENVELOPE_AD_HEADER_LEN, ENVELOPE_HEADER_LEN};
use sealsync_core::hlc::Stamp;
use sealsync_core::merge::{decode_event_body, encode_event_body, BatchItem};
use sealsync_core::roster::MemberFrame;
use sealsync_core::{
    effective, padded_len, ChannelTag, DeviceId, Hlc, Op, Opener, Replica, RoomId, RoomKey,
    RoomKeys, SessionId, SessionSealer, StampedOp,
};

const FILE: &str = "vectors-v2.json";
const WRITE_ENV: &str = "SEALSYNC_WRITE_VECTORS";

/// 32 bytes 0xc0..=0xdf as a room secret.
const SECRET: &str = "wMHCw8TFxsfIycrLzM3Oz9DR0tPU1dbX2Nna29zd3t8";
/// NFC, with a two-byte character so that lengths are byte lengths.
const ROOM: &str = "Café-vectors";
const CHALLENGE: [u8; 32] = [0x42; 32];
/// 1,700,000,000,000 ms: the relay's clock at the start of the scenario.
const T0: u64 = 1_700_000_000_000;

const DEVICE_A: DeviceId = DeviceId([0x0a; 16]);
const DEVICE_B: DeviceId = DeviceId([0x0b; 16]);
/// A device whose clock runs an hour ahead.
const DEVICE_C: DeviceId = DeviceId([0x0c, 0xff, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);

fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(FILE)
}

fn hex(bytes: &[u8]) -> Value {
    Value::String(::hex::encode(bytes))
}

fn hkdf(ikm: &[u8], salt: &[u8], info: &[u8], len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(info, &mut out)
        .unwrap();
    out
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn keys() -> RoomKeys {
    RoomKeys::derive(
        &RoomKey::from_secret(SECRET).unwrap(),
        RoomId::new(ROOM).unwrap(),
    )
}

fn room_key() -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(SECRET).unwrap()
}

fn root(label: &str) -> Vec<u8> {
    hkdf(&room_key(), b"sealsync/v1", label.as_bytes(), 32)
}

fn session_keys(session: SessionId) -> (Vec<u8>, Vec<u8>) {
    let enc = hkdf(
        &root("sealsync/v1/event"),
        session.as_bytes(),
        b"sealsync/v1/session-enc",
        32,
    );
    let commit = hkdf(
        &root("sealsync/v1/commit"),
        session.as_bytes(),
        b"sealsync/v1/session-commit",
        32,
    );
    (enc, commit)
}

/// An HLC with its device as hex; a wall above 2^53 − 1 (which a JSON reader may round) as
/// a decimal string.
fn hlc_json(hlc: Hlc) -> Value {
    let wall = if hlc.wall > (1 << 53) - 1 {
        Value::String(hlc.wall.to_string())
    } else {
        Value::from(hlc.wall)
    };
    json!({"wall": wall, "counter": hlc.counter, "device": hex(hlc.device.as_bytes())})
}

fn stamp_json(stamp: Stamp) -> Value {
    serde_json::to_value(stamp).unwrap()
}

fn op(value: &Value) -> Op {
    Op::from_json(&serde_json::to_vec(value).unwrap()).unwrap()
}

/// The section on keys: everything derived from the room secret.
fn keys_section() -> Value {
    let keys = keys();
    let fingerprint = root("sealsync/v1/fingerprint");
    let fingerprint = &fingerprint[..16];
    let expanded = hkdf(&room_key(), b"sealsync/v1", b"sealsync/v1/fingerprint", 16);
    assert_eq!(
        expanded, fingerprint,
        "HKDF output is a prefix of a longer one"
    );
    let mut tags = Map::new();
    for name in ["", "cursor", "doc", "Café", "\u{1F600}"] {
        tags.insert(name.into(), hex(&keys.channel_tag(name).0));
    }
    let member_key = keys.member_key();
    let proof = keys.prove(&CHALLENGE);
    let room = RoomId::new(ROOM).unwrap();
    assert!(sealsync_core::member::verify_proof(
        &room,
        &CHALLENGE,
        &member_key,
        &proof
    ));
    // A rotation to the keys of another secret (0x00..=0x1f) at epoch 1, signed by this
    // member key over the same challenge.
    let next = RoomKeys::derive(
        &RoomKey::from_secret("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8").unwrap(),
        RoomId::new(ROOM).unwrap(),
    );
    let next_key = next.member_key();
    let rotation = keys.prove_rotation(&CHALLENGE, 1, &next_key);
    assert!(sealsync_core::member::verify_rotation(
        &room,
        &CHALLENGE,
        1,
        &member_key,
        &next_key,
        &rotation
    ));
    json!({
        "room_key": hex(&room_key()),
        "event_root": hex(&root("sealsync/v1/event")),
        "commit_root": hex(&root("sealsync/v1/commit")),
        "channel_key": hex(&root("sealsync/v1/channel")),
        "fingerprint_bytes": hex(fingerprint),
        "fingerprint": keys.fingerprint(),
        "member_seed": hex(&root("sealsync/v2/member")),
        "member_key": hex(&member_key),
        "challenge": hex(&CHALLENGE),
        "proof": hex(&proof),
        "rotation": {
            "key_epoch": 1,
            "new_member_key": hex(&next_key),
            "proof": hex(&rotation),
        },
        "channel_tags": tags,
    })
}

/// How `RoomKey::from_secret` reads pasted secrets: the room key's hex, or `null` (refused).
fn secret_parsing() -> Value {
    let cases = [
        SECRET.to_owned(),
        format!("  {SECRET}\n"),
        format!("\t{SECRET}=\r\n"),
        format!("\u{c}{SECRET}"),
        format!("{SECRET}=="),
        format!("\u{b}{SECRET}"),
        format!("{}+", &SECRET[..42]),
        format!("{}/", &SECRET[..42]),
        // 'd' = 0b011101: its low bits are not zero, so it is not a valid last character.
        format!("{}d", &SECRET[..42]),
        SECRET[..42].to_owned(),
        format!("{SECRET}A"),
        format!("{}\u{e9}", &SECRET[..42]),
    ];
    Value::Array(
        cases
            .iter()
            .map(|text| {
                let key = RoomKey::from_secret(text).ok().map(|k| {
                    Value::String(::hex::encode(
                        URL_SAFE_NO_PAD.decode(k.to_secret()).unwrap(),
                    ))
                });
                json!({"text": text, "room_key": key.unwrap_or(Value::Null)})
            })
            .collect(),
    )
}

fn padme() -> Value {
    Value::Array(
        [
            0usize, 33, 63, 64, 65, 72, 73, 100, 255, 256, 257, 333, 1000, 4097, 65_536, 65_537,
            1_000_033,
        ]
        .iter()
        .map(|&len| json!([len, padded_len(len)]))
        .collect(),
    )
}

/// One envelope case for the vector file; also checks the crate's bytes against the
/// subkeys derived in this file.
struct Sealed {
    kind: EnvelopeKind,
    channel: Option<&'static str>,
    session: SessionId,
    counter: u64,
    nonce: [u8; 12],
    hlc: Hlc,
    body: Vec<u8>,
}

impl Sealed {
    fn seal(&self, keys: &RoomKeys) -> Vec<u8> {
        let tag = self.channel.map_or(ROOM_TAG, |name| keys.channel_tag(name));
        SessionSealer::resume(keys, self.session, self.counter)
            .seal(self.kind, tag, self.hlc, &self.body, self.nonce)
            .unwrap()
    }

    fn to_json(&self, name: &str, keys: &RoomKeys, opener: &mut Opener) -> Value {
        let envelope = self.seal(keys);
        let opened = opener.open(&envelope).unwrap();
        assert_eq!(opened.body, self.body);
        assert_eq!(opened.hlc, self.hlc);

        let room = ROOM.as_bytes();
        let mut ad = b"sealsync/v1/ad".to_vec();
        ad.extend_from_slice(&u16::try_from(room.len()).unwrap().to_be_bytes());
        ad.extend_from_slice(room);
        ad.extend_from_slice(&envelope[..ENVELOPE_AD_HEADER_LEN]);
        let (enc, commit) = session_keys(self.session);
        let commitment = hmac(&commit, &ad);
        assert_eq!(
            commitment,
            envelope[ENVELOPE_AD_HEADER_LEN..ENVELOPE_HEADER_LEN],
            "{name}: the commitment under the session commit key derived here"
        );
        let (sealed, tag) = envelope[ENVELOPE_HEADER_LEN..].split_at(envelope.len() - 106);
        let mut inner = sealed.to_vec();
        Aes256Gcm::new_from_slice(&enc)
            .unwrap()
            .decrypt_inout_detached(
                &Nonce::<Aes256Gcm>::from(self.nonce),
                &ad,
                inner.as_mut_slice().into(),
                &Tag::<Aes256Gcm>::try_from(tag).unwrap(),
            )
            .expect("opens under the session key derived here");
        assert_eq!(inner.len(), padded_len(33 + self.body.len()));

        let mut case = json!({
            "name": name,
            "kind": self.kind.as_u8(),
            "key_epoch": 0,
            "channel": self.channel,
            "channel_tag": hex(&self.channel.map_or(ROOM_TAG, |n| keys.channel_tag(n)).0),
            "session": hex(self.session.as_bytes()),
            "counter": self.counter,
            "nonce": hex(&self.nonce),
            "hlc": hlc_json(self.hlc),
            "body_hex": hex(&self.body),
            "padded_len": inner.len(),
            "associated_data": hex(&ad),
            "commitment": hex(&commitment),
            "inner_plaintext": hex(&inner),
            "envelope": hex(&envelope),
        });
        if let Ok(text) = std::str::from_utf8(&self.body) {
            case["body"] = Value::String(text.into());
        }
        case
    }
}

fn item(wall: u64, counter: u32, device: DeviceId, value: &Value) -> BatchItem {
    BatchItem::new(StampedOp {
        hlc: Hlc {
            wall,
            counter,
            device,
        }
        .into(),
        op: op(value),
    })
}

/// An event of the merge scenario: who sent it, where the relay stored it, and its body.
struct Event {
    relay_time: u64,
    session: SessionId,
    counter: u64,
    device: DeviceId,
    /// `None`: the body is `raw` (written by hand, as another client might).
    items: Vec<(u64, u32, Value)>,
    raw: Option<(Hlc, &'static str)>,
}

fn ev(
    relay_time: u64,
    device: DeviceId,
    session: u8,
    counter: u64,
    items: Vec<(u64, u32, Value)>,
) -> Event {
    Event {
        relay_time: T0 + relay_time,
        session: SessionId([session; 16]),
        counter,
        device,
        items,
        raw: None,
    }
}

fn scenario_events() -> Vec<Event> {
    let (a, b, c) = (DEVICE_A, DEVICE_B, DEVICE_C);
    let hour = 3_600_000;
    let mut events = vec![
        // 1: a batch creating two tasks and a note (field names whose UTF-8 order differs
        // from their UTF-16 order).
        ev(
            1_000,
            a,
            0xa1,
            1,
            vec![
                (
                    T0 + 900,
                    0,
                    json!({"type":"created","collection":"tasks","id":"t1",
                "fields":{"title":"Write spec","done":false,"sortOrder":"V","meta":{"b":1,"a":[1,2,{"z":null,"y":"é"}]}}}),
                ),
                (
                    T0 + 900,
                    1,
                    json!({"type":"created","collection":"tasks","id":"t2",
                "fields":{"title":"Ship","id":"t2"}}),
                ),
                (
                    T0 + 900,
                    2,
                    json!({"type":"created","collection":"notes","id":"n1",
                "fields":{"body":"hello","\u{ff41}":1,"\u{1F600}":2}}),
                ),
            ],
        ),
        // 2: a concurrent edit of t1.
        ev(
            2_000,
            b,
            0xb1,
            1,
            vec![(
                T0 + 1_500,
                0,
                json!({"type":"updated","collection":"tasks","id":"t1",
                "fields":{"title":"Write the spec","done":true}}),
            )],
        ),
        // 3: a clock an hour ahead: merges at relay_time + 60 s.
        ev(
            3_000,
            c,
            0xc1,
            1,
            vec![(
                T0 + 3_000 + hour,
                0,
                json!({"type":"updated","collection":"tasks","id":"t1",
                "fields":{"title":"From the future"}}),
            )],
        ),
        // 4: a later honest edit beats the clamped one.
        ev(
            70_000,
            a,
            0xa1,
            2,
            vec![(
                T0 + 65_000,
                0,
                json!({"type":"updated","collection":"tasks","id":"t1",
                "fields":{"title":"Later edit"}}),
            )],
        ),
        // 5, 6: equal effective walls; the raw wall decides (carol).
        ev(
            80_000,
            c,
            0xc1,
            2,
            vec![(
                T0 + hour + 100_000,
                0,
                json!({"type":"updated","collection":"tasks","id":"t2",
                "fields":{"owner":"carol"}}),
            )],
        ),
        ev(
            150_000,
            b,
            0xb1,
            2,
            vec![(
                T0 + 140_000,
                0,
                json!({"type":"updated","collection":"tasks","id":"t2",
                "fields":{"owner":"bob"}}),
            )],
        ),
        // 7, 8: equal walls and counters; the device bytes decide (b).
        ev(
            200_500,
            a,
            0xa1,
            3,
            vec![(
                T0 + 200_000,
                5,
                json!({"type":"updated","collection":"tasks","id":"t2",
                "fields":{"priority":1}}),
            )],
        ),
        ev(
            200_600,
            b,
            0xb1,
            3,
            vec![(
                T0 + 200_000,
                5,
                json!({"type":"updated","collection":"tasks","id":"t2",
                "fields":{"priority":2}}),
            )],
        ),
        // 9: a reorder naming an entity not created yet (t3), with a later stamp than its
        // creation.
        ev(
            210_000,
            b,
            0xb1,
            4,
            vec![(
                T0 + 205_000,
                0,
                json!({"type":"reordered","collection":"tasks",
                "items":[{"id":"t1","sortOrder":"a0"},{"id":"t3","sortOrder":"Zz"}]}),
            )],
        ),
    ];
    events.extend([
        // 10: t3 created with an older stamp: the reorder's key stays.
        ev(220_000, a, 0xa1, 4, vec![
            (T0 + 100_000, 0, json!({"type":"created","collection":"tasks","id":"t3",
                "fields":{"title":"Late","sortOrder":"0"}})),
        ]),
        // 11, 12: an update that arrives before the creation and has the higher stamp.
        ev(230_000, b, 0xb1, 5, vec![
            (T0 + 229_000, 0, json!({"type":"updated","collection":"tasks","id":"t4",
                "fields":{"title":"updated first","n":null}})),
        ]),
        ev(240_000, c, 0xc1, 3, vec![
            (T0 + 228_000, 0, json!({"type":"created","collection":"tasks","id":"t4",
                "fields":{"title":"created later","extra":1.5,"n":"x"}})),
        ]),
        // 13, 14: claims; the later one wins whole.
        ev(250_500, a, 0xa1, 5, vec![
            (T0 + 250_000, 0, json!({"type":"claimed","collection":"tasks","id":"t1",
                "claimedBy":"alice","claimedByName":"Alice","claimedByAvatar":null})),
        ]),
        ev(251_500, b, 0xb1, 6, vec![
            (T0 + 251_000, 0, json!({"type":"claimed","collection":"tasks","id":"t1",
                "claimedBy":"bob","claimedByName":"Bob","claimedByAvatar":"https://example.com/b.png"})),
        ]),
    ]);
    // 15: a release written by hand, without the optional members.
    events.push(Event {
        relay_time: T0 + 252_500,
        session: SessionId([0xa1; 16]),
        counter: 6,
        device: a,
        items: Vec::new(),
        raw: Some((
            Hlc {
                wall: T0 + 252_000,
                counter: 0,
                device: a,
            },
            r#"{ "type": "claimed", "collection": "tasks", "id": "t2", "claimedBy": null }"#,
        )),
    });
    events.extend([
        // 16, 17: a delete, then an update with a higher stamp: remove wins.
        ev(
            260_000,
            c,
            0xc1,
            4,
            vec![(
                T0 + 255_000,
                0,
                json!({"type":"deleted","collection":"notes","id":"n1"}),
            )],
        ),
        ev(
            270_000,
            a,
            0xa1,
            7,
            vec![(
                T0 + 265_000,
                0,
                json!({"type":"updated","collection":"notes","id":"n1",
                "fields":{"body":"edited after delete"}}),
            )],
        ),
        // 18: a batch: a second `created` for a visible id, ids whose UTF-8 order differs
        // from their UTF-16 order, a delete of an id never created, an update of one never
        // created, and an update that writes nothing.
        ev(
            280_000,
            b,
            0xb2,
            1,
            vec![
                (
                    T0 + 279_000,
                    0,
                    json!({"type":"created","collection":"tasks","id":"t2",
                "fields":{"title":"Ship v2","sortOrder":"W"}}),
                ),
                (
                    T0 + 279_000,
                    1,
                    json!({"type":"created","collection":"notes","id":"\u{1F600}",
                "fields":{"body":"emoji"}}),
                ),
                (
                    T0 + 279_000,
                    2,
                    json!({"type":"created","collection":"notes","id":"\u{ff41}",
                "fields":{"body":"fullwidth a"}}),
                ),
                (
                    T0 + 279_000,
                    3,
                    json!({"type":"deleted","collection":"notes","id":"ghost"}),
                ),
                (
                    T0 + 279_000,
                    4,
                    json!({"type":"updated","collection":"notes","id":"t9",
                "fields":{"draft":true}}),
                ),
                (
                    T0 + 279_000,
                    5,
                    json!({"type":"updated","collection":"empty","id":"e1",
                "fields":{}}),
                ),
            ],
        ),
        // 19: an edit from a clock far ahead that loses to nothing (its clamped stamp
        // still wins over the earlier title).
        ev(
            290_000,
            c,
            0xc1,
            5,
            vec![(
                T0 + 290_000 + hour,
                7,
                json!({"type":"updated","collection":"tasks","id":"t3",
                "fields":{"title":"Late, renamed","tags":["x","y"]}}),
            )],
        ),
    ]);
    events
}

/// The nonce of an event's envelope (fixed: vectors only).
fn nonce_for(seq: u64) -> [u8; 12] {
    let mut nonce = [0x5e; 12];
    nonce[4..].copy_from_slice(&seq.to_be_bytes());
    nonce
}

fn body_of(event: &Event) -> (Vec<u8>, Hlc) {
    if let Some((hlc, raw)) = event.raw {
        return (raw.as_bytes().to_vec(), hlc);
    }
    let items: Vec<BatchItem> = event
        .items
        .iter()
        .map(|(wall, counter, value)| item(*wall, *counter, event.device, value))
        .collect();
    encode_event_body(&items)
}

/// The merge scenario: every event sealed, opened and decoded as a client does.
fn merge_section(keys: &RoomKeys) -> Value {
    let events = scenario_events();
    let mut opener = Opener::new(keys);
    let mut stamped: Vec<Vec<StampedOp>> = Vec::new();
    let mut out = Vec::new();
    for (n, event) in events.iter().enumerate() {
        let seq = u64::try_from(n).unwrap() + 1;
        let (body, hlc) = body_of(event);
        let envelope = SessionSealer::resume(keys, event.session, event.counter)
            .seal(EnvelopeKind::Event, ROOM_TAG, hlc, &body, nonce_for(seq))
            .unwrap();
        let opened = opener.open(&envelope).unwrap();
        let ops: Vec<StampedOp> = decode_event_body(&opened.body, opened.hlc)
            .unwrap()
            .into_iter()
            .map(|s| StampedOp {
                hlc: effective(s.hlc.raw, Some(event.relay_time)),
                op: s.op,
            })
            .collect();
        out.push(json!({
            "seq": seq,
            "relay_time": event.relay_time,
            "session": hex(event.session.as_bytes()),
            "counter": event.counter,
            "nonce": hex(&nonce_for(seq)),
            "hlc": hlc_json(hlc),
            "body": String::from_utf8(body).unwrap(),
            "canonical": event.raw.is_none(),
            "envelope": hex(&envelope),
            "ops": ops.iter().map(|s| json!({
                "stamp": stamp_json(s.hlc),
                "op": serde_json::from_slice::<Value>(&s.op.to_json()).unwrap(),
            })).collect::<Vec<_>>(),
        }));
        stamped.push(ops);
    }

    let count = stamped.len();
    let in_order: Vec<usize> = (1..=count).collect();
    let reversed: Vec<usize> = (1..=count).rev().collect();
    // A fixed shuffle with duplicates (a re-delivered event changes nothing).
    let mut shuffled: Vec<usize> = (0..count).map(|i| (i * 7 + 3) % count + 1).collect();
    shuffled.extend([1, count, 5, 12]);
    let orders = [
        ("seq", in_order),
        ("reversed", reversed),
        ("shuffled", shuffled),
    ];

    let merge = |order: &[usize]| {
        let mut replica = Replica::new();
        for &seq in order {
            for op in &stamped[seq - 1] {
                let _ = replica.apply(op, false);
            }
        }
        replica
    };
    let final_state = merge(&orders[0].1);
    let snapshot = final_state.to_snapshot();
    for (name, order) in &orders {
        assert_eq!(
            merge(order).to_snapshot(),
            snapshot,
            "the {name} order converges"
        );
    }

    // A snapshot of the first `upto` events, sealed as a client uploads it; joined with
    // events from `upto - 3` on (an overlap, as after a reconnect), it is the final state.
    let upto = 10;
    let prefix = merge(&(1..=upto).collect::<Vec<_>>());
    let prefix_body = prefix.to_snapshot();
    let snapshot_envelope = Sealed {
        kind: EnvelopeKind::Snapshot,
        channel: None,
        session: SessionId([0xa2; 16]),
        counter: 1,
        nonce: [0x55; 12],
        hlc: Hlc {
            wall: 0,
            counter: 0,
            device: DEVICE_A,
        },
        body: prefix_body.clone(),
    };
    let sealed_snapshot = snapshot_envelope.to_json("snapshot of seq 1..=10", keys, &mut opener);
    let mut joined = Replica::new();
    let _ = joined.merge_snapshot(
        Replica::from_snapshot(
            &opener
                .open(&snapshot_envelope.seal(keys))
                .map(|o| o.body)
                .unwrap_or_default(),
        )
        .unwrap(),
    );
    for seq in (upto - 3)..=count {
        for op in &stamped[seq - 1] {
            let _ = joined.apply(op, false);
        }
    }
    assert_eq!(joined.to_snapshot(), snapshot, "snapshot + tail = the log");

    let mut reads = Map::new();
    for collection in ["tasks", "notes", "empty", "missing"] {
        let objects: Vec<Value> = final_state
            .get(collection)
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        reads.insert(collection.into(), Value::Array(objects));
    }
    json!({
        "events": out,
        "orders": orders.iter().map(|(name, order)| json!({"name": name, "seqs": order}))
            .collect::<Vec<_>>(),
        "final_snapshot": String::from_utf8(snapshot).unwrap(),
        "final_reads": reads,
        "snapshot": {
            "upto_seq": upto,
            "body": String::from_utf8(prefix_body).unwrap(),
            "envelope": sealed_snapshot,
            "then_seqs": ((upto - 3)..=count).collect::<Vec<_>>(),
        },
    })
}

fn envelope_section(keys: &RoomKeys) -> Value {
    let mut opener = Opener::new(keys);
    let hlc = |wall: u64, counter: u32| Hlc {
        wall,
        counter,
        device: DEVICE_A,
    };
    let session = SessionId([0x5a; 16]);
    let created = item(
        T0,
        0,
        DEVICE_A,
        &json!({"type":"created","collection":"tasks","id":"t1","fields":{"title":"Hi","sortOrder":"V"}}),
    );
    let (bare, bare_hlc) = encode_event_body(std::slice::from_ref(&created));
    let (batch, batch_hlc) = encode_event_body(&[
        item(
            T0 + 5,
            0,
            DEVICE_A,
            &json!({"type":"updated","collection":"tasks","id":"t1","fields":{"done":true,"note":null}}),
        ),
        item(
            T0 + 5,
            1,
            DEVICE_A,
            &json!({"type":"reordered","collection":"tasks","items":[{"id":"t1","sortOrder":"W"}]}),
        ),
        item(
            T0 + 3,
            9,
            DEVICE_A,
            &json!({"type":"claimed","collection":"tasks","id":"t1","claimedBy":"u1","claimedByName":"Ann","claimedByAvatar":null}),
        ),
        item(
            T0 + 6,
            0,
            DEVICE_A,
            &json!({"type":"deleted","collection":"tasks","id":"t0"}),
        ),
    ]);
    assert_eq!(
        batch_hlc,
        hlc(T0 + 6, 0),
        "a batch's header stamp is its highest"
    );
    let long_title = "x".repeat(300);
    let (padded, padded_hlc) = encode_event_body(&[item(
        T0 + 7,
        0,
        DEVICE_A,
        &json!({"type":"updated","collection":"tasks","id":"t1","fields":{"title":long_title}}),
    )]);
    let mut snapshot_state = Replica::new();
    for stamped in decode_event_body(&bare, bare_hlc).unwrap() {
        let _ = snapshot_state.apply(
            &StampedOp {
                hlc: effective(stamped.hlc.raw, Some(T0 + 100)),
                op: stamped.op,
            },
            false,
        );
    }
    let cases = [
        (
            "bare operation",
            Sealed {
                kind: EnvelopeKind::Event,
                channel: None,
                session,
                counter: 1,
                nonce: [0; 12],
                hlc: bare_hlc,
                body: bare,
            },
        ),
        (
            "batch",
            Sealed {
                kind: EnvelopeKind::Event,
                channel: None,
                session,
                counter: 2,
                nonce: [1; 12],
                hlc: batch_hlc,
                body: batch,
            },
        ),
        (
            "ephemeral payload",
            Sealed {
                kind: EnvelopeKind::Ephemeral,
                channel: Some("cursor"),
                session,
                counter: 3,
                nonce: *b"nonce-twelve",
                hlc: hlc(T0 + 8, 0),
                body: br#"{"x":0.25,"y":17,"who":"Ann"}"#.to_vec(),
            },
        ),
        (
            "ephemeral, empty body, emoji channel",
            Sealed {
                kind: EnvelopeKind::Ephemeral,
                channel: Some("\u{1F600}"),
                session: SessionId([0xff; 16]),
                counter: 4_294_967_295,
                nonce: [0xff; 12],
                hlc: Hlc {
                    wall: u64::MAX,
                    counter: u32::MAX,
                    device: DeviceId([0xff; 16]),
                },
                body: Vec::new(),
            },
        ),
        (
            "member frame: here, asking (room tag)",
            Sealed {
                kind: EnvelopeKind::Ephemeral,
                channel: None,
                session,
                counter: 5,
                nonce: [4; 12],
                hlc: Hlc {
                    device: DEVICE_A,
                    ..Hlc::default()
                },
                body: MemberFrame::Here {
                    profile: json!({"name": "Ann", "color": "#c33"}),
                    ask: true,
                }
                .encode(),
            },
        ),
        (
            "member frame: left (room tag)",
            Sealed {
                kind: EnvelopeKind::Ephemeral,
                channel: None,
                session,
                counter: 6,
                nonce: [5; 12],
                hlc: Hlc {
                    device: DEVICE_A,
                    ..Hlc::default()
                },
                body: MemberFrame::Left.encode(),
            },
        ),
        (
            "member frame: key, handing over the next epoch's key (room tag)",
            Sealed {
                kind: EnvelopeKind::Ephemeral,
                channel: None,
                session,
                counter: 7,
                nonce: [6; 12],
                hlc: Hlc {
                    device: DEVICE_A,
                    ..Hlc::default()
                },
                body: MemberFrame::Key {
                    epoch: 1,
                    secret: String::from("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"),
                }
                .encode(),
            },
        ),
        (
            "snapshot body",
            Sealed {
                kind: EnvelopeKind::Snapshot,
                channel: None,
                session: SessionId([0x5b; 16]),
                counter: 1,
                nonce: [2; 12],
                hlc: hlc(0, 0),
                body: snapshot_state.to_snapshot(),
            },
        ),
        (
            "padded: a body over 256 bytes",
            Sealed {
                kind: EnvelopeKind::Event,
                channel: None,
                session,
                counter: 7,
                nonce: [3; 12],
                hlc: padded_hlc,
                body: padded,
            },
        ),
    ];
    let mut out = Vec::new();
    for (name, case) in &cases {
        let mut json = case.to_json(name, keys, &mut opener);
        if case.kind == EnvelopeKind::Event {
            let ops = decode_event_body(&case.body, case.hlc).unwrap();
            json["ops"] = ops
                .iter()
                .map(|s| {
                    json!({
                        "hlc": hlc_json(s.hlc.raw),
                        "op": serde_json::from_slice::<Value>(&s.op.to_json()).unwrap(),
                    })
                })
                .collect();
        }
        if case.kind == EnvelopeKind::Ephemeral && case.channel.is_none() {
            // A member frame (PROTOCOL.md, "Members"): what a receiver reads from it.
            json["member"] =
                serde_json::to_value(MemberFrame::decode(&case.body).unwrap()).unwrap();
        }
        out.push(json);
    }
    assert_eq!(ChannelTag([0; 16]), ROOM_TAG);
    Value::Array(out)
}

/// Event bodies a receiver must refuse (`INVALID_OPERATION`), each with why.
fn invalid_bodies() -> Value {
    let stamp = Hlc {
        wall: T0,
        counter: 0,
        device: DEVICE_A,
    };
    let cases = [
        (
            r#"{"type":"batch","ops":[]}"#,
            "a batch holds at least one item",
        ),
        (
            r#"{"type":"batch","ops":[{"wall":1,"counter":0,"op":{"type":"deleted","collection":"c","id":"x"}}],"v":1}"#,
            "no other member in a batch",
        ),
        (
            r#"{"type":"batch","ops":[{"wall":1,"counter":0,"op":{"type":"deleted","collection":"c","id":"x"},"device":"a"}]}"#,
            "no other member in a batch item",
        ),
        (
            r#"{"type":"batch","ops":[{"wall":1,"counter":0,"op":{"type":"deleted","collection":"c","id":"x"}},{"wall":1,"counter":1,"op":{"type":"deleted","collection":"a b","id":"x"}}]}"#,
            "one invalid operation refuses the whole batch",
        ),
        (
            r#"{"type":"batch","ops":[{"wall":1,"counter":4294967296,"op":{"type":"deleted","collection":"c","id":"x"}}]}"#,
            "a batch item's counter is a u32",
        ),
        (
            r#"{"type":"batch","ops":[["wall",1]]}"#,
            "a batch item is an object",
        ),
        (r#"["deleted","c","x"]"#, "an operation is an object"),
        (
            r#"{"type":"moved","collection":"c","id":"x"}"#,
            "unknown type",
        ),
        (r#"{"type":"deleted","collection":"c"}"#, "missing id"),
        (
            r#"{"type":"deleted","collection":"","id":"x"}"#,
            "empty collection name",
        ),
        (
            r#"{"type":"updated","collection":"c","id":"x","fields":{"$t":1}}"#,
            "a field name starting with $",
        ),
        (
            r#"{"type":"updated","collection":"c","id":"x","fields":{"claimedBy":"u"}}"#,
            "claim fields only through claimed",
        ),
        (
            r#"{"type":"created","collection":"c","id":"x","fields":{"id":"y"}}"#,
            "a field id other than the op's id",
        ),
        (
            r#"{"type":"created","collection":"c","id":"x","fields":{"sortOrder":3}}"#,
            "a sortOrder that is not a string",
        ),
        (
            r#"{"type":"reordered","collection":"c","items":[{"id":"a","sortOrder":"V"},{"id":"a","sortOrder":"W"}]}"#,
            "an id twice in one reorder",
        ),
        (
            r#"{"type":"claimed","collection":"c","id":"x","claimedBy":7}"#,
            "claimedBy is a string or null",
        ),
        ("not json", "not JSON"),
    ];
    Value::Array(
        cases
            .iter()
            .map(|(body, why)| {
                assert!(
                    decode_event_body(body.as_bytes(), stamp).is_err(),
                    "{why}: {body}"
                );
                json!({"body": body, "why": why})
            })
            .collect(),
    )
}

/// Event bodies a receiver must accept although a sender would not write them so, each
/// with the operations it decodes to (stamped with the header's `T0`, counter 0, device A).
fn accepted_bodies() -> Value {
    let stamp = Hlc {
        wall: T0,
        counter: 0,
        device: DEVICE_A,
    };
    let cases = [
        (r#"{"type":"deleted","collection":"c","id":"x","extra":1}"#, "unknown members of an operation are ignored"),
        (r#"{"type":"claimed","collection":"c","id":"x","claimedBy":"u"}"#, "claimedByName and claimedByAvatar default to null"),
        (r#"{"type":"created","collection":"c","id":"x","fields":{"id":"x","a":1}}"#, "a field id equal to the op's id"),
        (r#"{"type":"updated","collection":"c","id":"x","fields":{"sortOrder":"V","id":"x"}}"#, "updated may set sortOrder and carry its id"),
        (" \n{ \"fields\" : {\"b\":1,\"a\":{\"d\":1,\"c\":2}}, \"id\":\"x\", \"collection\":\"c\", \"type\":\"updated\" }\t", "whitespace and members in any order"),
        (r#"{"type":"reordered","collection":"c","items":[{"id":"a","sortOrder":"V","x":1}]}"#, "unknown members of a reorder item are ignored"),
        (r#"{"ops":[{"op":{"type":"deleted","collection":"c","id":"x"},"counter":2,"wall":5}],"type":"batch"}"#, "batch members in any order"),
    ];
    Value::Array(
        cases
            .iter()
            .map(|(body, why)| {
                let ops = decode_event_body(body.as_bytes(), stamp)
                    .unwrap_or_else(|e| panic!("{why}: {body}: {e}"));
                let ops: Vec<Value> = ops
                    .iter()
                    .map(|s| {
                        json!({
                            "hlc": hlc_json(s.hlc.raw),
                            "op": serde_json::from_slice::<Value>(&s.op.to_json()).unwrap(),
                        })
                    })
                    .collect();
                json!({"body": body, "why": why, "ops": ops})
            })
            .collect(),
    )
}

fn generate() -> String {
    let keys = keys();
    let sessions: Vec<Value> = [SessionId([0x5a; 16]), SessionId([0xa1; 16])]
        .iter()
        .map(|s| {
            let (enc, commit) = session_keys(*s);
            json!({"session": hex(s.as_bytes()), "enc": hex(&enc), "commit": hex(&commit)})
        })
        .collect();
    let file = json!({
        "comment": "Written by core/tests/protocol_vectors.rs from sealsync-core's public API; \
                    checked byte for byte by that test and reproduced by the independent \
                    implementation in tests/vectors/ (PROTOCOL.md). Hex is lowercase; \
                    stamps in merge.events[].ops and snapshots are as in PROTOCOL.md \
                    (device as 16 numbers); hlc objects elsewhere carry the device as hex, and a wall \
                    above 2^53 - 1 as a decimal string.",
        "versions": {"wire": sealsync_core::wire::VERSION, "envelope": 1, "inner": 1,
                     "snapshot": sealsync_core::merge::SNAPSHOT_VERSION},
        "room": ROOM,
        "secret": SECRET,
        "keys": keys_section(),
        "session_keys": sessions,
        "secret_parsing": secret_parsing(),
        "padme": padme(),
        "envelopes": envelope_section(&keys),
        "invalid_bodies": invalid_bodies(),
        "accepted_bodies": accepted_bodies(),
        "merge": merge_section(&keys),
    });
    let mut text = serde_json::to_string_pretty(&file).unwrap();
    text.push('\n');
    text
}

#[test]
fn protocol_vectors_match_the_code() {
    let text = generate();
    let path = path();
    if std::env::var_os(WRITE_ENV).is_some_and(|v| !v.is_empty() && v != "0") {
        fs::write(&path, &text).unwrap();
        return;
    }
    let committed = fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{} is missing ({e}); write it with {WRITE_ENV}=1 cargo test -p sealsync-core --test protocol_vectors",
            path.display()
        )
    });
    if committed != text {
        let line = committed
            .lines()
            .zip(text.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(text.lines().count()));
        panic!(
            "{} differs from what the code writes (first at line {}): a protocol change? \
             Rewrite it with {WRITE_ENV}=1 cargo test -p sealsync-core --test protocol_vectors \
             and bump the protocol version",
            path.display(),
            line + 1
        );
    }
}
