//! One test per merge rule.

use super::*;
use crate::ids::DeviceId;
use serde_json::json;

fn h(wall: u64, device: u8) -> Stamp {
    crate::hlc::Hlc {
        wall,
        counter: 0,
        device: DeviceId([device; 16]),
    }
    .into()
}

fn op(v: Value) -> Op {
    Op::from_json(&serde_json::to_vec(&v).unwrap()).unwrap()
}

fn st(wall: u64, v: Value) -> StampedOp {
    StampedOp {
        hlc: h(wall, 1),
        op: op(v),
    }
}

fn created(id: &str, fields: Value) -> Value {
    json!({"type":"created","collection":"cards","id":id,"fields":fields})
}

fn updated(id: &str, fields: Value) -> Value {
    json!({"type":"updated","collection":"cards","id":id,"fields":fields})
}

fn deleted(id: &str) -> Value {
    json!({"type":"deleted","collection":"cards","id":id})
}

#[test]
fn created_then_updated_reports_only_changed_fields() {
    let mut r = Replica::new();
    let c = r.apply(
        &st(1, created("a", json!({"title":"A","done":false}))),
        true,
    );
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].kind, ChangeKind::Created);
    assert!(c[0].from_self);
    assert_eq!(
        c[0].fields,
        *json!({"id":"a","title":"A","done":false})
            .as_object()
            .unwrap()
    );
    let c = r.apply(
        &st(2, updated("a", json!({"title":"A","done":true}))),
        false,
    );
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].kind, ChangeKind::Updated);
    // `title` was rewritten with the same value: not reported.
    assert_eq!(c[0].fields, *json!({"done":true}).as_object().unwrap());
    assert_eq!(r.entity("cards", "a").unwrap()["done"], json!(true));
    let json = serde_json::to_value(&c[0]).unwrap();
    assert_eq!(json["kind"], "updated");
    assert_eq!(json["fromSelf"], false);
}

#[test]
fn lower_stamp_loses_and_reports_nothing() {
    let mut r = Replica::new();
    r.apply(&st(1, created("a", json!({"title":"A"}))), false);
    r.apply(&st(5, updated("a", json!({"title":"new"}))), false);
    let c = r.apply(&st(3, updated("a", json!({"title":"old"}))), false);
    assert!(c.is_empty());
    assert_eq!(r.entity("cards", "a").unwrap()["title"], "new");
}

#[test]
fn equal_wall_ties_break_by_device() {
    let mut r = Replica::new();
    r.apply(&st(1, created("a", json!({"t":0}))), false);
    let hi = StampedOp {
        hlc: h(9, 2),
        op: op(updated("a", json!({"t":2}))),
    };
    let lo = StampedOp {
        hlc: h(9, 1),
        op: op(updated("a", json!({"t":1}))),
    };
    r.apply(&hi, false);
    assert!(r.apply(&lo, false).is_empty());
    assert_eq!(r.entity("cards", "a").unwrap()["t"], 2);
}

#[test]
fn update_before_create_keeps_its_newer_fields() {
    let mut r = Replica::new();
    assert!(r
        .apply(&st(5, updated("a", json!({"title":"newer"}))), false)
        .is_empty());
    assert_eq!(r.entity("cards", "a"), None);
    let c = r.apply(&st(1, created("a", json!({"title":"old","n":1}))), false);
    assert_eq!(c[0].kind, ChangeKind::Created);
    assert_eq!(c[0].fields["title"], "newer");
    assert_eq!(
        r.entity("cards", "a").unwrap(),
        json!({"id":"a","title":"newer","n":1})
    );
}

#[test]
fn delete_wins_and_is_permanent() {
    let mut r = Replica::new();
    r.apply(&st(1, created("a", json!({"t":1}))), false);
    let c = r.apply(&st(2, deleted("a")), true);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].kind, ChangeKind::Deleted);
    assert!(r.is_deleted("cards", "a"));
    // Later writes of every kind are ignored and never resurrect it.
    for later in [
        created("a", json!({"t":2})),
        updated("a", json!({"t":3})),
        json!({"type":"claimed","collection":"cards","id":"a","claimedBy":"u"}),
        json!({"type":"reordered","collection":"cards","items":[{"id":"a","sortOrder":"b"}]}),
    ] {
        assert!(r.apply(&st(10, later), false).is_empty());
    }
    assert_eq!(r.entity("cards", "a"), None);
    assert!(r.get("cards").is_empty());
    assert!(r.ids("cards").is_empty());
    // A delete that arrives before the create also wins.
    let mut r2 = Replica::new();
    assert!(r2.apply(&st(1, deleted("b")), false).is_empty());
    assert!(r2.apply(&st(9, created("b", json!({}))), false).is_empty());
    assert_eq!(r2.entity("cards", "b"), None);
}

#[test]
fn reorder_sorts_reads_and_is_lww() {
    let mut r = Replica::new();
    for (i, id) in ["a", "b", "c"].into_iter().enumerate() {
        r.apply(&st(1 + i as u64, created(id, json!({}))), false);
    }
    // `get` and `ids` give the same order.
    let keys = |r: &Replica| {
        let keys = r
            .get("cards")
            .into_iter()
            .map(|(id, _)| id)
            .collect::<Vec<_>>();
        assert_eq!(keys, r.ids("cards"));
        keys
    };
    // No sortOrder yet: by id.
    assert_eq!(keys(&r), ["a", "b", "c"]);
    let c = r.apply(
        &st(
            5,
            json!({"type":"reordered","collection":"cards","items":[
            {"id":"a","sortOrder":"W"},{"id":"b","sortOrder":"V"}]}),
        ),
        false,
    );
    assert_eq!(c.len(), 2);
    assert!(c.iter().all(|c| c.kind == ChangeKind::Reordered));
    // Keyed entities first by key, unkeyed last.
    assert_eq!(keys(&r), ["b", "a", "c"]);
    let stale = st(
        4,
        json!({"type":"reordered","collection":"cards","items":[{"id":"a","sortOrder":"A"}]}),
    );
    assert!(r.apply(&stale, false).is_empty());
    assert_eq!(r.entity("cards", "a").unwrap()["sortOrder"], "W");
}

#[test]
fn claim_is_one_register_and_release_then_reclaim_works() {
    let mut r = Replica::new();
    r.apply(&st(1, created("a", json!({}))), false);
    let claim = |by: Value, name: Value| json!({"type":"claimed","collection":"cards","id":"a","claimedBy":by,"claimedByName":name,"claimedByAvatar":null});
    let c = r.apply(&st(2, claim(json!("u1"), json!("Ann"))), false);
    assert_eq!(c[0].kind, ChangeKind::Claimed);
    assert_eq!(c[0].fields["claimedByName"], "Ann");
    r.apply(&st(3, claim(Value::Null, Value::Null)), false);
    assert_eq!(r.entity("cards", "a").unwrap()["claimedBy"], Value::Null);
    r.apply(&st(4, claim(json!("u2"), json!("Bo"))), false);
    // A late-arriving older claim loses; name never mixes with another claimer's.
    assert!(r
        .apply(&st(2, claim(json!("u3"), json!("Cy"))), false)
        .is_empty());
    let e = r.entity("cards", "a").unwrap();
    assert_eq!(
        (e["claimedBy"].clone(), e["claimedByName"].clone()),
        (json!("u2"), json!("Bo"))
    );
}

#[test]
fn duplicates_are_no_ops() {
    let ops = [
        st(1, created("a", json!({"t":1}))),
        st(2, updated("a", json!({"t":2}))),
        st(
            3,
            json!({"type":"reordered","collection":"cards","items":[{"id":"a","sortOrder":"V"}]}),
        ),
        st(
            4,
            json!({"type":"claimed","collection":"cards","id":"a","claimedBy":"u"}),
        ),
        st(5, deleted("a")),
    ];
    let mut r = Replica::new();
    for o in &ops {
        r.apply(o, false);
        let snap = r.to_snapshot();
        assert!(r.apply(o, false).is_empty(), "{o:?}");
        assert_eq!(r.to_snapshot(), snap);
    }
}

#[test]
fn snapshot_round_trips_and_rejects_garbage() {
    let mut r = Replica::new();
    r.apply(&st(1, created("a", json!({"t":1,"sortOrder":"V"}))), false);
    r.apply(&st(2, deleted("b")), false);
    let back = Replica::from_snapshot(&r.to_snapshot()).unwrap();
    assert_eq!(back, r);
    assert!(back.is_deleted("cards", "b"));
    for bad in [
        &b"{"[..],
        br#"{"v":1,"collections":{}}"#,
        br#"{"v":3,"collections":{}}"#,
        br#"{"v":2,"collections":{"bad name":{"a":{}}}}"#,
        br#"{"v":2,"collections":{},"extra":1}"#,
        br#"{"v":2,"collections":{"c":{"a":{"fields":{"$x":{"hlc":{"wall":1,"raw":{"wall":1,"counter":0,"device":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]}},"value":1}}}}}}"#,
    ] {
        let err = Replica::from_snapshot(bad).unwrap_err();
        assert_eq!(err.code(), "INVALID_SNAPSHOT", "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn merge_snapshot_reports_visible_differences() {
    let mut a = Replica::new();
    a.apply(&st(1, created("x", json!({"t":1}))), false);
    let mut b = a.clone();
    b.apply(&st(2, updated("x", json!({"t":2}))), false);
    b.apply(&st(3, created("y", json!({}))), false);
    let mut changes = a.merge_snapshot(b.clone());
    changes.sort_by(|p, q| p.id.cmp(&q.id));
    assert_eq!(changes.len(), 2);
    assert_eq!(
        (changes[0].kind, changes[0].fields["t"].clone()),
        (ChangeKind::Updated, json!(2))
    );
    assert_eq!(changes[1].kind, ChangeKind::Created);
    assert_eq!(a, b);
    assert!(a.merge_snapshot(b).is_empty());
}

#[test]
fn invalid_op_json_changes_nothing() {
    let mut r = Replica::new();
    r.apply(&st(1, created("a", json!({"t":1}))), false);
    let snap = r.to_snapshot();
    let err =
        Op::from_json(br#"{"type":"updated","collection":"cards","id":"a","fields":{"$t":2}}"#)
            .unwrap_err();
    assert_eq!(err.code(), "INVALID_OPERATION");
    assert!(format!("{err}").contains("reserved"));
    assert_eq!(r.to_snapshot(), snap);
}
