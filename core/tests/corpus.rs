//! The bad-input corpus of wire version 2 (written by `corpus/generate.py`): every
//! `corpus/bad-*.bin` must fail under both decoders, with the error codes
//! `corpus/expected.tsv` lists for it.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers: a failed unwrap is a failed test"
)]

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use sealsync_core::wire::{ClientFrame, RelayFrame, VERSION};
use sealsync_core::Error;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// file name → (client code, relay code)
fn expected() -> BTreeMap<String, (String, String)> {
    let table = fs::read_to_string(corpus_dir().join("expected.tsv")).unwrap();
    table
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            assert_eq!(cols.len(), 3, "bad line in expected.tsv: {line:?}");
            (cols[0].to_owned(), (cols[1].to_owned(), cols[2].to_owned()))
        })
        .collect()
}

fn bad_files() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(corpus_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with("bad-") && name.ends_with(".bin"))
        .collect();
    names.sort();
    names
}

#[test]
fn corpus_and_table_list_the_same_files() {
    let files = bad_files();
    let table: Vec<String> = expected().into_keys().collect();
    assert_eq!(files, table);
    assert!(files.len() >= 60, "only {} corpus files", files.len());
}

#[test]
fn every_bad_file_fails_with_its_expected_codes() {
    let table = expected();
    for name in bad_files() {
        let bytes = fs::read(corpus_dir().join(&name)).unwrap();
        let (client, relay) = &table[&name];
        match ClientFrame::decode(&bytes) {
            Ok(frame) => panic!("{name}: ClientFrame::decode accepted it as {frame:?}"),
            Err(err) => assert_eq!(err.code(), client, "{name}: ClientFrame::decode: {err}"),
        }
        match RelayFrame::decode(&bytes) {
            Ok(frame) => panic!("{name}: RelayFrame::decode accepted it as {frame:?}"),
            Err(err) => assert_eq!(err.code(), relay, "{name}: RelayFrame::decode: {err}"),
        }
    }
}

fn read(name: &str) -> Vec<u8> {
    fs::read(corpus_dir().join(name)).unwrap()
}

#[test]
fn the_corpus_has_bad_frames_of_every_type_of_this_version() {
    let mut types: Vec<u8> = bad_files()
        .iter()
        .map(|name| read(name))
        .filter(|bytes| bytes.len() >= 2 && bytes[0] == VERSION)
        .map(|bytes| bytes[1])
        .collect();
    types.sort_unstable();
    types.dedup();
    for t in (0x01..=0x06).chain(0x81..=0x8E) {
        assert!(types.contains(&t), "no bad frame of type {t:#04x}");
    }
}

#[test]
fn frames_of_wire_version_1_fail_on_their_version_byte() {
    let v1: Vec<String> = bad_files()
        .into_iter()
        .filter(|name| read(name).first() == Some(&1))
        .collect();
    assert!(v1.len() >= 4, "{v1:?}");
    let want = Error::WireVersion {
        found: 1,
        expected: VERSION,
    };
    for name in &v1 {
        let bytes = read(name);
        assert_eq!(ClientFrame::decode(&bytes), Err(want.clone()), "{name}");
        assert_eq!(RelayFrame::decode(&bytes), Err(want.clone()), "{name}");
    }
    // ERROR kept its layout: only the version byte is wrong.
    let mut error = read("bad-v1-error.bin");
    error[0] = VERSION;
    assert!(RelayFrame::decode(&error).is_ok());
    // WELCOME did not: a v1 WELCOME body under the v2 version byte is truncated.
    let mut welcome = read("bad-v1-welcome.bin");
    welcome[0] = VERSION;
    assert_eq!(
        RelayFrame::decode(&welcome).unwrap_err().code(),
        "MALFORMED_FRAME"
    );
    // Nor did HELLO (a verifier, no proof): under the v2 version byte it ends inside the
    // proof.
    let mut hello = read("bad-v1-hello.bin");
    hello[0] = VERSION;
    assert_eq!(
        ClientFrame::decode(&hello),
        Err(Error::MalformedFrame {
            reason: "HELLO ends inside proof"
        })
    );
}

/// The reason of a `MALFORMED_FRAME`, or a panic.
fn malformed_reason(result: Result<ClientFrame, Error>) -> &'static str {
    match result {
        Err(Error::MalformedFrame { reason }) => reason,
        other => panic!("not MALFORMED_FRAME: {other:?}"),
    }
}

/// The bad HELLOs fail where the v2 layout (after_seq, member_key [32], proof [64],
/// channel_count, tags) says they go wrong: each reason names that field.
#[test]
fn bad_hellos_fail_at_the_field_of_the_new_layout() {
    let cases = [
        ("bad-hello-truncated-after-seq.bin", "after_seq"),
        ("bad-hello-truncated-member-key.bin", "member_key"),
        ("bad-hello-truncated-proof.bin", "proof"),
        ("bad-hello-proof-63.bin", "proof"),
        ("bad-hello-verifier-layout.bin", "proof"),
        ("bad-hello-no-channel-count.bin", "channel_count"),
        ("bad-hello-channel-count-0.bin", "channel_count"),
        ("bad-hello-channel-count-17.bin", "channel_count"),
        ("bad-hello-channel-count-255.bin", "channel_count"),
        ("bad-hello-verifier-layout-16.bin", "channel_count"),
        ("bad-hello-truncated-tag.bin", "tag"),
        ("bad-hello-trailing.bin", "trailing"),
    ];
    for (name, field) in cases {
        let reason = malformed_reason(ClientFrame::decode(&read(name)));
        assert!(reason.contains(field), "{name}: {reason:?}");
    }
    // Each is one fix away from a valid HELLO: the same head with a count and a tag.
    let head = &read("bad-hello-no-channel-count.bin");
    assert_eq!(head.len(), 2 + 8 + 32 + 64);
    let mut fixed = head.clone();
    fixed.push(1);
    fixed.extend_from_slice(&[0x11; 16]);
    assert!(matches!(
        ClientFrame::decode(&fixed),
        Ok(ClientFrame::Hello { channels, .. }) if channels.len() == 1
    ));
}

/// A CHALLENGE is exactly 32 bytes: the bad ones are one byte off either way (or empty).
#[test]
fn bad_challenges_are_one_byte_off() {
    for (name, len) in [
        ("bad-challenge-empty.bin", 0),
        ("bad-challenge-31.bin", 31),
        ("bad-challenge-33.bin", 33),
    ] {
        let bytes = read(name);
        assert_eq!(bytes[..2], [VERSION, 0x8D], "{name}");
        assert_eq!(bytes.len() - 2, len, "{name}");
    }
    let mut good = read("bad-challenge-33.bin");
    good.pop();
    assert_eq!(
        RelayFrame::decode(&good),
        Ok(RelayFrame::Challenge {
            challenge: std::array::from_fn(|i| u8::try_from(i).unwrap())
        })
    );
}
