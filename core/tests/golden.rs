//! Golden bytes of wire version 1: `data/wire-v1.json` (written by `data/gen-wire-v1.py`,
//! an implementation of PROTOCOL.md's tables independent of this codec). Each example must
//! encode to its hex and its hex must decode to it.
//!
//! A changed golden file means a wire change: bump `wire::VERSION`.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers: a failed unwrap is a failed test"
)]

use serde_json::Value;

use sealsync_core::wire::{ClientFrame, RelayErrorCode, RelayFrame, VerifierState, VERSION};
use sealsync_core::{ChannelTag, SessionId};

fn golden() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/wire-v1.json");
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

fn string(v: &Value) -> String {
    v.as_str().unwrap().to_owned()
}

fn client_frame(name: &str, f: &Value) -> ClientFrame {
    match name {
        "HELLO" => ClientFrame::Hello {
            after_seq: u64_of(&f["after_seq"]),
            verifier: array(&f["verifier"]),
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
        },
        "SNAPSHOT_PUT" => ClientFrame::SnapshotPut {
            upto_seq: u64_of(&f["upto_seq"]),
            envelope: bytes(&f["envelope"]),
        },
        "EPHEMERAL" => ClientFrame::Ephemeral {
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
        },
        "EPHEMERAL" => RelayFrame::Ephemeral {
            envelope: bytes(&f["envelope"]),
        },
        "PRESENCE" => RelayFrame::Presence {
            count: u32_of(&f["count"]),
        },
        "ERROR" => RelayFrame::Error {
            code: RelayErrorCode::from(u16::try_from(u64_of(&f["code"])).unwrap()),
            fatal: f["fatal"].as_bool().unwrap(),
            message: string(&f["message"]),
        },
        "NOTIFY" => RelayFrame::Notify {
            json: string(&f["json"]),
        },
        "SNAPSHOT_STORED" => RelayFrame::SnapshotStored {
            seq: u64_of(&f["seq"]),
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
        ["HELLO", "PUBLISH", "SYNC", "SNAPSHOT_PUT", "EPHEMERAL"],
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
            "SNAPSHOT_STORED"
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
