//! Merge throughput: field updates applied per second, and loading a room by replaying its
//! events versus reading a snapshot of the same state.

#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    reason = "benchmark fixtures over small known ranges"
)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sealsync_core::merge::{Op, Replica, StampedOp};
use sealsync_core::{DeviceId, Hlc};
use serde_json::{json, Map, Value};

fn stamp(i: usize) -> Hlc {
    Hlc {
        wall: 1_700_000_000_000 + (i as u64) / 4,
        counter: (i % 4) as u32,
        device: DeviceId([(i % 3) as u8; 16]),
    }
}

fn fields(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// `n` entities created, then `updates` one-field updates spread over them.
fn room(n: usize, updates: usize) -> (Vec<StampedOp>, Vec<StampedOp>) {
    let creates = (0..n)
        .map(|i| StampedOp {
            hlc: stamp(i).into(),
            op: Op::Created {
                collection: "cards".into(),
                id: format!("card-{i:05}"),
                fields: fields(json!({"title": format!("Card {i}"), "done": false, "n": 0})),
            },
        })
        .collect();
    let ups = (0..updates)
        .map(|k| StampedOp {
            hlc: stamp(n + k).into(),
            op: Op::Updated {
                collection: "cards".into(),
                id: format!("card-{:05}", k % n),
                fields: fields(json!({"n": k})),
            },
        })
        .collect();
    (creates, ups)
}

fn updates(c: &mut Criterion) {
    let (creates, ups) = room(1_000, 100_000);
    let mut base = Replica::new();
    for op in &creates {
        base.apply(op, false);
    }
    let mut g = c.benchmark_group("merge");
    g.throughput(Throughput::Elements(ups.len() as u64));
    g.bench_function("apply 100k one-field updates over 1k entities", |b| {
        b.iter_batched(
            || base.clone(),
            |mut r| {
                for op in &ups {
                    black_box(r.apply(op, false));
                }
                r
            },
            BatchSize::LargeInput,
        );
    });
    g.finish();
}

fn load(c: &mut Criterion) {
    // A room of 10,000 events: 1,000 creates and 9,000 updates.
    let (creates, ups) = room(1_000, 9_000);
    let log: Vec<StampedOp> = creates.into_iter().chain(ups).collect();
    let mut full = Replica::new();
    for op in &log {
        full.apply(op, false);
    }
    let snapshot = full.to_snapshot();
    let mut g = c.benchmark_group("load 10k-event room");
    g.throughput(Throughput::Elements(log.len() as u64));
    g.bench_function("replay events", |b| {
        b.iter(|| {
            let mut r = Replica::new();
            for op in &log {
                r.apply(op, false);
            }
            black_box(r)
        });
    });
    g.bench_function(format!("from_snapshot ({} bytes)", snapshot.len()), |b| {
        b.iter(|| black_box(Replica::from_snapshot(black_box(&snapshot)).unwrap()));
    });
    g.finish();
}

criterion_group!(benches, updates, load);
criterion_main!(benches);
