//! Benchmarks of the core crypto: seal and open at 64 B, 1 KiB and 64 KiB bodies, the
//! Argon2id room-key derivation from a password, and the membership proof (the client's
//! signature per connection, the relay's check per `HELLO`).
//!
//! `cargo bench -p sealsync-core --bench crypto`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark set-up: a failure aborts the run"
)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sealsync_core::member::verify_proof;
use sealsync_core::{
    DeviceId, EnvelopeKind, Hlc, Opener, RoomId, RoomKey, RoomKeys, SessionId, SessionSealer,
};

const SIZES: [(usize, &str); 3] = [(64, "64B"), (1024, "1KiB"), (64 * 1024, "64KiB")];

fn keys() -> RoomKeys {
    let key = RoomKey::from_secret("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8").unwrap();
    RoomKeys::derive(&key, RoomId::new("bench-room").unwrap())
}

fn hlc() -> Hlc {
    Hlc {
        wall: 1_700_000_000_000,
        counter: 0,
        device: DeviceId([1; 16]),
    }
}

/// A distinct nonce per seal (the SDK draws random ones; drawing is not what we measure).
fn nonce(counter: u64) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&counter.to_be_bytes());
    nonce
}

fn seal_open(c: &mut Criterion) {
    let keys = keys();
    let channel = keys.channel_tag("doc");
    let mut group = c.benchmark_group("seal");
    for (size, name) in SIZES {
        let body = vec![b'x'; size];
        group.throughput(Throughput::Bytes(size as u64));
        let mut sealer = SessionSealer::new(&keys, SessionId([2; 16]));
        group.bench_with_input(BenchmarkId::from_parameter(name), &body, |b, body| {
            b.iter(|| {
                let n = nonce(sealer.next_counter());
                sealer
                    .seal(EnvelopeKind::Event, channel, hlc(), black_box(body), n)
                    .unwrap()
            });
        });
    }
    group.finish();

    let mut group = c.benchmark_group("open");
    for (size, name) in SIZES {
        let body = vec![b'x'; size];
        let envelope = SessionSealer::new(&keys, SessionId([3; 16]))
            .seal(EnvelopeKind::Event, channel, hlc(), &body, nonce(1))
            .unwrap();
        let mut opener = Opener::new(&keys);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(name),
            &envelope,
            |b, envelope| {
                b.iter(|| opener.open(black_box(envelope)).unwrap());
            },
        );
    }
    group.finish();
}

fn room_key_from_password(c: &mut Criterion) {
    let room = RoomId::new("bench-room").unwrap();
    let mut group = c.benchmark_group("kdf");
    group.sample_size(10);
    group.bench_function("RoomKey::from_password (Argon2id m=19456 t=2 p=1)", |b| {
        b.iter(|| {
            RoomKey::from_password(&room, black_box("correct horse battery staple")).unwrap()
        });
    });
    group.finish();
}

fn membership_proof(c: &mut Criterion) {
    let keys = keys();
    let challenge = [0x5c; 32];
    let member_key = keys.member_key();
    let proof = keys.prove(&challenge);
    let mut group = c.benchmark_group("member");
    group.bench_function("RoomKeys::prove (Ed25519 sign)", |b| {
        b.iter(|| keys.prove(black_box(&challenge)));
    });
    group.bench_function("member::verify_proof (Ed25519 verify)", |b| {
        b.iter(|| {
            assert!(verify_proof(
                keys.room(),
                black_box(&challenge),
                &member_key,
                black_box(&proof)
            ));
        });
    });
    group.finish();
}

criterion_group!(benches, seal_open, room_key_from_password, membership_proof);
criterion_main!(benches);
