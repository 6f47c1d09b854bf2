//! Joining a room with 10,000 events of history: time from the socket opening to `Live`,
//! through the whole client (decode, open, merge), with and without a snapshot.

#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    reason = "benchmark fixtures over small known ranges"
)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use sealsync_core::client::{Client, ClientConfig, Status, ROOM_TAG};
use sealsync_core::kdf::{RoomKey, RoomKeys};
use sealsync_core::limits::RelayLimits;
use sealsync_core::merge::Op;
use sealsync_core::wire::{self, Access, RelayFrame, VerifierState};
use sealsync_core::{DeviceId, Entropy, Millis, RoomId, SessionId, WallMillis};
use serde_json::json;

const SECRET: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
const WALL: WallMillis = WallMillis(1_700_000_000_000);
const HISTORY: usize = 10_000;
const TAIL: usize = 100;

struct Counter(u64);
impl Entropy for Counter {
    fn fill(&mut self, dest: &mut [u8]) {
        for b in dest {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            *b = (self.0 >> 56) as u8;
        }
    }
}

fn keys() -> RoomKeys {
    RoomKeys::derive(
        &RoomKey::from_secret(SECRET).unwrap(),
        RoomId::new("bench").unwrap(),
    )
}

fn client(id: u8) -> Client {
    let config = ClientConfig::new(
        RoomId::new("bench").unwrap(),
        DeviceId([id; 16]),
        SessionId([id; 16]),
    );
    Client::new(config, keys(), Box::new(Counter(u64::from(id))))
}

fn op(i: usize) -> Op {
    let value = if i < 1_000 {
        json!({"type": "created", "collection": "tasks", "id": format!("task-{i:04}"),
               "fields": {"title": format!("Task {i}"), "done": false, "estimate": i % 13}})
    } else {
        json!({"type": "updated", "collection": "tasks", "id": format!("task-{:04}", i % 1_000),
               "fields": {"done": i % 2 == 0, "title": format!("Task {i}")}})
    };
    Op::from_json(value.to_string().as_bytes()).unwrap()
}

/// The relay's stored history: 10,000 sealed events, and the sealed snapshot of the state
/// after the first `HISTORY - TAIL` of them.
struct History {
    events: Vec<Vec<u8>>,
    snapshot: Vec<u8>,
}

fn history() -> History {
    let mut author = client(1);
    let mut events = Vec::with_capacity(HISTORY);
    let mut snapshot = Vec::new();
    for i in 0..HISTORY {
        // One change per task: one envelope each (the author never connects, so nothing
        // merges its unsent envelopes).
        author.handle_local_op(Millis(0), WALL, op(i)).unwrap();
        author.handle_flush(Millis(0));
        events.push(author.outbox_envelopes().pop().unwrap());
        if i + 1 == HISTORY - TAIL {
            let body = author.replica().to_snapshot();
            let mut sealer = sealsync_core::SessionSealer::new(&keys(), SessionId([9; 16]));
            snapshot = sealer
                .seal(
                    sealsync_core::EnvelopeKind::Snapshot,
                    ROOM_TAG,
                    sealsync_core::Hlc::default(),
                    &body,
                    [7; 12],
                )
                .unwrap();
        }
    }
    History { events, snapshot }
}

/// Frames the relay sends a joiner with `after_seq = 0`: the socket's `CHALLENGE` (which
/// the client answers with a signed `HELLO`), then the catch-up.
fn catch_up(h: &History, with_snapshot: bool) -> Vec<Vec<u8>> {
    let snapshot_seq = if with_snapshot { HISTORY - TAIL } else { 0 } as u64;
    let challenge = RelayFrame::Challenge {
        challenge: [0x5c; 32],
    };
    let mut frames = vec![challenge.encode().unwrap()];
    frames.push(
        RelayFrame::Welcome {
            relay_time: WALL.0,
            head_seq: HISTORY as u64,
            snapshot_seq,
            presence: 2,
            verifier_state: VerifierState::Matched,
            access: Access::Write,
            limits: RelayLimits {
                max_frame_bytes: 1 << 20,
                rate_burst: 120,
                rate_per_second: 60,
                max_history_events: 100_000,
                max_history_bytes: 1 << 30,
            },
        }
        .encode()
        .unwrap(),
    );
    if with_snapshot {
        frames.push(
            RelayFrame::Snapshot {
                seq: snapshot_seq,
                envelope: h.snapshot.clone(),
            }
            .encode()
            .unwrap(),
        );
    }
    for (i, e) in h.events.iter().enumerate() {
        let seq = i as u64 + 1;
        if seq > snapshot_seq {
            frames.push(wire::encode_event(seq, WALL.0, e));
        }
    }
    frames.push(
        RelayFrame::CaughtUp {
            head_seq: HISTORY as u64,
            token: 1,
        }
        .encode()
        .unwrap(),
    );
    frames
}

fn join(frames: &[Vec<u8>]) -> Client {
    let mut c = client(2);
    c.handle_start(Millis(0));
    c.handle_socket_opened(Millis(1));
    for f in frames {
        c.handle_frame(Millis(2), WALL, f);
        while c.poll().is_some() {}
    }
    assert_eq!(c.status(), &Status::Live);
    assert_eq!(c.replica().get("tasks").len(), 1_000);
    c
}

fn bench_join(c: &mut Criterion) {
    let h = history();
    let full = catch_up(&h, false);
    let snap = catch_up(&h, true);
    let mut g = c.benchmark_group("join_10k_events");
    g.sample_size(10);
    g.bench_function("replay_all_events", |b| {
        b.iter_batched(|| (), |()| black_box(join(&full)), BatchSize::PerIteration);
    });
    g.bench_function("snapshot_plus_100_tail", |b| {
        b.iter_batched(|| (), |()| black_box(join(&snap)), BatchSize::PerIteration);
    });
    g.finish();
}

criterion_group!(benches, bench_join);
criterion_main!(benches);
