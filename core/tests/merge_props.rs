//! Merge properties: any delivery order with any duplicates converges; re-applying is a
//! no-op; snapshot-then-tail equals the full log; the snapshot join is a semilattice; the
//! reported changes rebuild exactly what `get` shows; `diff` turns one replica's view into
//! another's.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failure is a test failure"
)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use sealsync_core::merge::{ChangeKind, Op, ReorderItem, Replica, StampedOp};
use sealsync_core::{DeviceId, Hlc};
use serde_json::{json, Map, Value};

const IDS: [&str; 4] = ["a", "b", "c", "d"];
const COLLECTIONS: [&str; 2] = ["cards", "cols"];

fn fields() -> impl Strategy<Value = Map<String, Value>> {
    (
        proptest::option::of(0i64..4),
        proptest::option::of(0i64..4),
        proptest::option::of(prop::sample::select(vec!["A", "V", "Vk", "z"])),
    )
        .prop_map(|(t, u, s)| {
            let mut m = Map::new();
            if let Some(t) = t {
                m.insert("t".into(), json!(t));
            }
            if let Some(u) = u {
                m.insert("u".into(), json!(u));
            }
            if let Some(s) = s {
                m.insert("sortOrder".into(), json!(s));
            }
            m
        })
}

fn op() -> impl Strategy<Value = Op> {
    let coll = prop::sample::select(COLLECTIONS.to_vec()).prop_map(String::from);
    let id = prop::sample::select(IDS.to_vec()).prop_map(String::from);
    prop_oneof![
        3 => (coll.clone(), id.clone(), fields())
            .prop_map(|(collection, id, fields)| Op::Created { collection, id, fields }),
        4 => (coll.clone(), id.clone(), fields())
            .prop_map(|(collection, id, fields)| Op::Updated { collection, id, fields }),
        1 => (coll.clone(), id.clone()).prop_map(|(collection, id)| Op::Deleted { collection, id }),
        2 => (coll.clone(), prop::sample::subsequence(IDS.to_vec(), 1..3),
              prop::sample::select(vec!["1", "V", "Vk", "x"]))
            .prop_map(|(collection, ids, key)| Op::Reordered {
                collection,
                items: ids.into_iter().map(|id| ReorderItem { id: id.into(), sort_order: key.into() }).collect(),
            }),
        2 => (coll, id, proptest::option::of(prop::sample::select(vec!["u1", "u2"])))
            .prop_map(|(collection, id, by)| Op::Claimed {
                collection,
                id,
                claimed_by: by.map_or(Value::Null, Value::from),
                claimed_by_name: by.map_or(Value::Null, |b| Value::from(format!("name-{b}"))),
                claimed_by_avatar: Value::Null,
            }),
    ]
}

/// A log of stamped ops: small walls and 3 devices so stamps interleave; the counter is
/// the index, so every stamp is unique (as real clocks guarantee). Some are clamped as a
/// relay time far behind the sender's clock makes them (`effective`), so that clamped
/// stamps, which share their wall, are in every property too.
fn log() -> impl Strategy<Value = Vec<StampedOp>> {
    let relay = proptest::option::of(0u64..4);
    proptest::collection::vec((0u64..8, 0u8..3, op(), relay), 1..40).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (wall, dev, op, relay))| {
                op.validate().unwrap();
                let raw = Hlc {
                    wall: wall + relay.map_or(0, |_| sealsync_core::MAX_FORWARD_SKEW_MS),
                    counter: u32::try_from(i).unwrap(),
                    device: DeviceId([dev; 16]),
                };
                StampedOp {
                    hlc: sealsync_core::effective(raw, relay),
                    op,
                }
            })
            .collect()
    })
}

fn replay(ops: &[StampedOp]) -> Replica {
    let mut r = Replica::new();
    for o in ops {
        r.apply(o, false);
    }
    r
}

/// A delivery schedule: a permutation of the log with some ops repeated.
fn schedule(len: usize) -> impl Strategy<Value = Vec<usize>> {
    (
        Just((0..len).collect::<Vec<_>>()).prop_shuffle(),
        proptest::collection::vec(0..len, 0..10),
    )
        .prop_map(|(mut order, dups)| {
            for (k, d) in dups.into_iter().enumerate() {
                let at = (k * 7) % (order.len() + 1);
                order.insert(at, d);
            }
            order
        })
}

fn log_and_schedules() -> impl Strategy<Value = (Vec<StampedOp>, Vec<Vec<usize>>)> {
    log().prop_flat_map(|l| {
        let n = l.len();
        (Just(l), proptest::collection::vec(schedule(n), 3..5))
    })
}

fn views(r: &Replica) -> Vec<Vec<(String, Value)>> {
    COLLECTIONS.iter().map(|c| r.get(c)).collect()
}

/// What a front end shows: (collection, id) → read object.
type Shown = BTreeMap<(String, String), Map<String, Value>>;

fn shown(r: &Replica) -> Shown {
    COLLECTIONS
        .iter()
        .flat_map(|c| {
            r.get(c)
                .into_iter()
                .map(move |(id, v)| ((String::from(*c), id), v.as_object().unwrap().clone()))
        })
        .collect()
}

/// The same, without `null` fields: `diff` reports a field the newer replica lacks as
/// `null`, which a front end shows as absent.
fn without_nulls(mut view: Shown) -> Shown {
    for obj in view.values_mut() {
        obj.retain(|_, v| !v.is_null());
    }
    view
}

/// Two replicas that each saw a random subset of one log.
fn two_parts(ops: &[StampedOp], picks: &[u8]) -> (Replica, Replica) {
    let part = |bit: u8| -> Vec<StampedOp> {
        ops.iter()
            .zip(picks)
            .filter(|(_, p)| *p & bit != 0)
            .map(|(o, _)| o.clone())
            .collect()
    };
    (replay(&part(1)), replay(&part(2)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_order_with_duplicates_converges((ops, schedules) in log_and_schedules()) {
        let reference = replay(&ops);
        for sched in schedules {
            let mut r = Replica::new();
            // What a front end would hold, built only from the reported changes.
            let mut shown: BTreeMap<(String, String), Map<String, Value>> = BTreeMap::new();
            for i in sched {
                for c in r.apply(&ops[i], false) {
                    let key = (c.collection.clone(), c.id.clone());
                    match c.kind {
                        ChangeKind::Created => {
                            prop_assert!(!shown.contains_key(&key));
                            shown.insert(key, c.fields);
                        }
                        ChangeKind::Deleted => {
                            prop_assert!(shown.remove(&key).is_some());
                        }
                        _ => {
                            prop_assert!(!c.fields.is_empty());
                            let obj = shown.get_mut(&key).unwrap();
                            // A claim reports its three fields together; others only changes.
                            let mut any_changed = false;
                            for (k, v) in c.fields {
                                let same = obj.get(&k) == Some(&v);
                                prop_assert!(!same || c.kind == ChangeKind::Claimed, "non-change {}", k);
                                any_changed |= !same;
                                obj.insert(k, v);
                            }
                            prop_assert!(any_changed, "reported a change that changed nothing");
                        }
                    }
                }
            }
            prop_assert_eq!(r.to_snapshot(), reference.to_snapshot());
            prop_assert_eq!(views(&r), views(&reference));
            let from_get: BTreeMap<(String, String), Map<String, Value>> = COLLECTIONS
                .iter()
                .flat_map(|c| r.get(c).into_iter().map(move |(id, v)| {
                    ((String::from(*c), id), v.as_object().unwrap().clone())
                }))
                .collect();
            prop_assert_eq!(shown, from_get);
        }
    }

    #[test]
    fn reapplying_any_op_is_a_no_op(ops in log()) {
        let mut r = replay(&ops);
        let snap = r.to_snapshot();
        for o in &ops {
            prop_assert!(r.apply(o, true).is_empty());
        }
        prop_assert_eq!(r.to_snapshot(), snap);
    }

    #[test]
    fn snapshot_of_prefix_then_tail_equals_full_log(ops in log(), cut in any::<prop::sample::Index>()) {
        let k = cut.index(ops.len() + 1);
        let prefix = replay(&ops[..k]);
        let mut r = Replica::from_snapshot(&prefix.to_snapshot()).unwrap();
        prop_assert_eq!(&r, &prefix);
        for o in &ops[k..] {
            r.apply(o, false);
        }
        prop_assert_eq!(r.to_snapshot(), replay(&ops).to_snapshot());
        // The same through merge_snapshot of the tail's own state.
        let mut joined = prefix.clone();
        joined.merge_snapshot(replay(&ops[k..]));
        prop_assert_eq!(joined.to_snapshot(), replay(&ops).to_snapshot());
    }

    #[test]
    fn merge_snapshot_is_a_semilattice(ops in log(), picks in proptest::collection::vec(0u8..8, 40)) {
        // Three replicas that each saw a random subset of the log.
        let part = |bit: u8| -> Vec<StampedOp> {
            ops.iter().zip(&picks).filter(|(_, p)| *p & bit != 0).map(|(o, _)| o.clone()).collect()
        };
        let (a, b, c) = (replay(&part(1)), replay(&part(2)), replay(&part(4)));
        let join = |x: &Replica, y: &Replica| {
            let mut z = x.clone();
            z.merge_snapshot(y.clone());
            z
        };
        prop_assert_eq!(join(&a, &b).to_snapshot(), join(&b, &a).to_snapshot());
        prop_assert_eq!(join(&join(&a, &b), &c).to_snapshot(), join(&a, &join(&b, &c)).to_snapshot());
        prop_assert_eq!(join(&a, &a).to_snapshot(), a.to_snapshot());
        let mut aa = a.clone();
        prop_assert!(aa.merge_snapshot(a.clone()).is_empty());
        // The join of the parts is the state of their union.
        let union: Vec<StampedOp> = ops.iter().zip(&picks).filter(|(_, p)| **p & 7 != 0).map(|(o, _)| o.clone()).collect();
        prop_assert_eq!(join(&join(&a, &b), &c).to_snapshot(), replay(&union).to_snapshot());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn diff_of_a_replica_with_itself_is_empty(ops in log(), picks in proptest::collection::vec(0u8..4, 40)) {
        let (a, _) = two_parts(&ops, &picks);
        prop_assert!(a.diff(&a).is_empty());
        prop_assert!(a.diff(&a.clone()).is_empty());
        // Equal states reached in another order have no difference either.
        let rebuilt = Replica::from_snapshot(&a.to_snapshot()).unwrap();
        prop_assert!(a.diff(&rebuilt).is_empty());
    }

    #[test]
    fn diff_creates_and_deletes_exactly_what_one_side_alone_shows(
        ops in log(),
        picks in proptest::collection::vec(0u8..4, 40),
    ) {
        let (a, b) = two_parts(&ops, &picks);
        let (old, new) = (shown(&a), shown(&b));
        let changes = a.diff(&b);
        let keyed = |kind: ChangeKind| -> Vec<(String, String)> {
            changes
                .iter()
                .filter(|c| c.kind == kind)
                .map(|c| (c.collection.clone(), c.id.clone()))
                .collect()
        };
        let only_new: Vec<(String, String)> =
            new.keys().filter(|k| !old.contains_key(*k)).cloned().collect();
        let only_old: Vec<(String, String)> =
            old.keys().filter(|k| !new.contains_key(*k)).cloned().collect();
        prop_assert_eq!(keyed(ChangeKind::Created), only_new);
        prop_assert_eq!(keyed(ChangeKind::Deleted), only_old);
        for c in &changes {
            prop_assert!(!c.from_self, "a diff is not the replica's own change");
            let key = (c.collection.clone(), c.id.clone());
            match c.kind {
                // A created entity comes with its whole object, as `get` shows it.
                ChangeKind::Created => prop_assert_eq!(Some(&c.fields), new.get(&key)),
                ChangeKind::Deleted => prop_assert!(c.fields.is_empty()),
                // Anything else concerns an entity both sides show and changes something.
                _ => {
                    prop_assert!(old.contains_key(&key) && new.contains_key(&key));
                    prop_assert!(!c.fields.is_empty());
                    prop_assert_ne!(old.get(&key), new.get(&key));
                }
            }
        }
        // And the reverse diff swaps creations and deletions.
        let back = b.diff(&a);
        let count = |changes: &[sealsync_core::Change], kind| {
            changes.iter().filter(|c| c.kind == kind).count()
        };
        prop_assert_eq!(count(&back, ChangeKind::Created), count(&changes, ChangeKind::Deleted));
        prop_assert_eq!(count(&back, ChangeKind::Deleted), count(&changes, ChangeKind::Created));
    }

    #[test]
    fn applying_a_diff_to_one_view_gives_the_other(
        ops in log(),
        picks in proptest::collection::vec(0u8..4, 40),
    ) {
        let (a, b) = two_parts(&ops, &picks);
        let mut view = shown(&a);
        for c in a.diff(&b) {
            let key = (c.collection.clone(), c.id.clone());
            match c.kind {
                ChangeKind::Created => {
                    prop_assert!(view.insert(key, c.fields).is_none());
                }
                ChangeKind::Deleted => {
                    prop_assert!(view.remove(&key).is_some());
                }
                _ => {
                    let obj = view.get_mut(&key).unwrap();
                    for (k, v) in c.fields {
                        obj.insert(k, v);
                    }
                }
            }
        }
        prop_assert_eq!(without_nulls(view), without_nulls(shown(&b)));
    }
}
