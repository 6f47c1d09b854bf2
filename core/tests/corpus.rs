//! The bad-input corpus: every `corpus/bad-*.bin` must fail under both decoders, with the
//! error codes `corpus/expected.tsv` lists for it.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers: a failed unwrap is a failed test"
)]

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use sealsync_core::wire::{ClientFrame, RelayFrame};

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
    assert!(files.len() >= 15, "only {} corpus files", files.len());
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
