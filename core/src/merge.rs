//! The replicated state of a room: collections of entities whose fields are
//! last-writer-wins registers, with remove-wins tombstones, fractional sort keys and claims.
//!
//! Everything here is deterministic and pure. [`Replica::apply`] and
//! [`Replica::merge_snapshot`] are idempotent, commutative and associative: replicas that
//! saw the same stamped operations, in any order and with any duplicates, hold equal
//! state (equal [`Replica::to_snapshot`] bytes).
//!
//! # Merge rules
//! 1. **Fields are LWW registers.** Each field of each entity holds `(Stamp, value)`; a
//!    write replaces it only when its stamp is higher. [`Stamp`]'s order (effective wall,
//!    then the sender's [`Hlc`](crate::hlc::Hlc): wall, counter, device)
//!    breaks every tie, and one event's stamp is unique, so there are no ties between
//!    different writes. A `null` value is a value (that is how a field is cleared).
//! 2. **`created`** writes each of its fields as rule 1 (so an `updated` with a higher stamp
//!    that arrived first keeps its fields) and marks the entity created. An entity is
//!    visible iff it has been created and not deleted; `updated`, `reordered` and `claimed`
//!    for an entity not yet created are kept (invisible) and show once it is created.
//!    A second `created` for a visible id is reported as `updated` with the fields it won.
//! 3. **`deleted`** leaves a permanent tombstone for that id (remove wins): every register
//!    of the entity is dropped and any `created`/`updated`/`reordered`/`claimed` for it,
//!    earlier or later, is ignored. To bring something back, create it with a new id (ids
//!    are random).
//! 4. **`reordered`** writes each item's `sortOrder` register (LWW as rule 1). Keys are
//!    compared as bytes; [`key_between`] makes new ones.
//! 5. **`claimed`** writes one claim register holding `claimedBy`, `claimedByName` and
//!    `claimedByAvatar` together (LWW as rule 1); `claimedBy: null` releases. LWW keeps the
//!    merge commutative, and a release followed by a new claim simply wins by being later;
//!    two concurrent claims resolve to the later stamp, the same on every replica.
//! 6. **Reported changes.** Only visible value changes are reported: a write that loses,
//!    or wins with an equal value (it moves only the stamp), reports nothing.
//! 7. **Idempotence.** Re-applying a stamped operation writes stamps that are not higher
//!    than the stored ones, so nothing changes and [`Replica::apply`] reports nothing.
//! 8. **Reads** list visible entities by `sortOrder` (bytes), then id; entities without a
//!    key come last, by id.

mod batch;
mod op;
mod order;

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::hlc::Stamp;

pub use batch::{batch_len, decode_event_body, encode_event_body, BatchItem, BATCH_OVERHEAD};
pub use op::{
    check_collection, check_field_name, check_id, check_sort_key, Op, ReorderItem, StampedOp,
    CLAIM_FIELDS, MAX_COLLECTION_LEN, MAX_FIELDS, MAX_FIELD_NAME_LEN, MAX_ID_LEN,
    MAX_REORDER_ITEMS, MAX_SORT_KEY_LEN, SORT_ORDER,
};
pub use order::key_between;

/// The snapshot format this build writes and reads.
pub const SNAPSHOT_VERSION: u32 = 2;

/// What kind of change a [`Change`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ChangeKind {
    /// The entity became visible; `fields` is its whole read object.
    Created,
    /// Some fields changed; `fields` holds only those.
    Updated,
    /// The entity is gone; `fields` is empty.
    Deleted,
    /// Its `sortOrder` changed; `fields` holds `sortOrder`.
    Reordered,
    /// Its claim changed; `fields` holds the three claim fields.
    Claimed,
}

/// A visible change to the state, for the application (serialises as camelCase JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// What happened.
    pub kind: ChangeKind,
    /// Collection name.
    pub collection: String,
    /// Entity id.
    pub id: String,
    /// The fields concerned (see [`ChangeKind`]).
    pub fields: Map<String, Value>,
    /// The change came from this replica's own operation.
    pub from_self: bool,
}

/// A last-writer-wins register.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Reg<T> {
    hlc: Stamp,
    value: T,
}

/// Writes `value` into `slot` if `hlc` is higher than the stored stamp; returns whether the
/// visible value changed (a higher stamp with an equal value moves only the stamp).
fn write<T: PartialEq>(slot: &mut Option<Reg<T>>, hlc: Stamp, value: impl FnOnce() -> T) -> bool {
    match slot {
        Some(r) if r.hlc >= hlc => false,
        Some(r) => {
            r.hlc = hlc;
            let v = value();
            let changed = r.value != v;
            r.value = v;
            changed
        }
        None => {
            *slot = Some(Reg {
                hlc,
                value: value(),
            });
            true
        }
    }
}

/// The claim register's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Claim {
    claimed_by: Value,
    claimed_by_name: Value,
    claimed_by_avatar: Value,
}

impl Claim {
    fn to_fields(&self, out: &mut Map<String, Value>) {
        out.insert(CLAIM_FIELDS[0].into(), self.claimed_by.clone());
        out.insert(CLAIM_FIELDS[1].into(), self.claimed_by_name.clone());
        out.insert(CLAIM_FIELDS[2].into(), self.claimed_by_avatar.clone());
    }
}

/// One entity's registers. A tombstoned entity holds only `deleted`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Entity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created: Option<Stamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deleted: Option<Stamp>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    fields: BTreeMap<String, Reg<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sort_order: Option<Reg<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    claim: Option<Reg<Claim>>,
}

impl Entity {
    const fn visible(&self) -> bool {
        self.created.is_some() && self.deleted.is_none()
    }

    /// Writes every field but `id` (rule 1); returns the ones that won when `report` is set
    /// (the entity was visible before, so the application hears of them as an update).
    fn write_fields(
        &mut self,
        fields: &Map<String, Value>,
        hlc: Stamp,
        report: bool,
    ) -> Map<String, Value> {
        let mut won = Map::new();
        for (name, value) in fields {
            if name != "id" && self.write_field(name, value, hlc) && report {
                won.insert(name.clone(), value.clone());
            }
        }
        won
    }

    /// Writes a field register (rule 1); `sortOrder` goes to its own register.
    fn write_field(&mut self, name: &str, value: &Value, hlc: Stamp) -> bool {
        if name == SORT_ORDER {
            return match value.as_str() {
                Some(key) => write(&mut self.sort_order, hlc, || key.into()),
                None => false,
            };
        }
        if let Some(reg) = self.fields.get_mut(name) {
            if reg.hlc >= hlc {
                return false;
            }
            reg.hlc = hlc;
            if reg.value == *value {
                return false;
            }
            reg.value.clone_from(value);
            return true;
        }
        self.fields.insert(
            name.into(),
            Reg {
                hlc,
                value: value.clone(),
            },
        );
        true
    }

    /// Turns the entity into a tombstone stamped `hlc` (or the higher stamp it has).
    fn tombstone(&mut self, hlc: Stamp) {
        let deleted = self.deleted.map_or(hlc, |d| d.max(hlc));
        *self = Self {
            deleted: Some(deleted),
            ..Self::default()
        };
    }

    /// The read object: `id`, fields, `sortOrder` and claim fields when set.
    fn object(&self, id: &str) -> Map<String, Value> {
        let mut out = Map::new();
        for (name, reg) in &self.fields {
            out.insert(name.clone(), reg.value.clone());
        }
        if let Some(reg) = &self.sort_order {
            out.insert(SORT_ORDER.into(), Value::String(reg.value.clone()));
        }
        if let Some(reg) = &self.claim {
            reg.value.to_fields(&mut out);
        }
        out.insert("id".into(), Value::String(id.into()));
        out
    }

    /// The join of two entity states (commutative, associative, idempotent).
    fn join(&mut self, other: Self) {
        if self.deleted.is_some() || other.deleted.is_some() {
            let d = self.deleted.max(other.deleted).unwrap_or_default();
            self.tombstone(d);
            return;
        }
        self.created = self.created.max(other.created);
        for (name, reg) in other.fields {
            match self.fields.get_mut(&name) {
                Some(mine) if mine.hlc >= reg.hlc => {}
                Some(mine) => *mine = reg,
                None => {
                    self.fields.insert(name, reg);
                }
            }
        }
        if let Some(reg) = other.sort_order {
            write(&mut self.sort_order, reg.hlc, || reg.value);
        }
        if let Some(reg) = other.claim {
            write(&mut self.claim, reg.hlc, || reg.value);
        }
    }
}

/// The changes from `old` to `new` read objects of one entity (see [`Replica::diff`]).
fn diff_entity(
    collection: &str,
    id: &str,
    old: Option<Value>,
    new: Option<Value>,
    out: &mut Vec<Change>,
) {
    let as_map = |v: Value| match v {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    match (old.map(as_map), new.map(as_map)) {
        (None, None) => {}
        (Some(_), None) => out.push(change(
            ChangeKind::Deleted,
            collection,
            id,
            Map::new(),
            false,
        )),
        (None, Some(new)) => out.push(change(ChangeKind::Created, collection, id, new, false)),
        (Some(old), Some(new)) => {
            let mut updated = Map::new();
            let mut claimed = false;
            let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
            keys.sort_unstable();
            keys.dedup();
            for key in keys {
                let now = new.get(key.as_str()).cloned().unwrap_or(Value::Null);
                if old.get(key.as_str()).unwrap_or(&Value::Null) == &now {
                    continue;
                }
                if key == SORT_ORDER {
                    let mut f = Map::new();
                    f.insert(SORT_ORDER.into(), now);
                    out.push(change(ChangeKind::Reordered, collection, id, f, false));
                } else if CLAIM_FIELDS.contains(&key.as_str()) {
                    claimed = true;
                } else {
                    updated.insert(key.clone(), now);
                }
            }
            if !updated.is_empty() {
                out.push(change(ChangeKind::Updated, collection, id, updated, false));
            }
            if claimed {
                let mut f = Map::new();
                for field in CLAIM_FIELDS {
                    f.insert(field.into(), new.get(field).cloned().unwrap_or(Value::Null));
                }
                out.push(change(ChangeKind::Claimed, collection, id, f, false));
            }
        }
    }
}

/// The on-disk (and on-wire, sealed) form of a [`Replica`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Snapshot {
    v: u32,
    collections: BTreeMap<String, BTreeMap<String, Entity>>,
}

/// The replicated state of one room (see the module docs for the merge rules).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Replica {
    collections: BTreeMap<String, BTreeMap<String, Entity>>,
}

fn change(
    kind: ChangeKind,
    collection: &str,
    id: &str,
    fields: Map<String, Value>,
    from_self: bool,
) -> Change {
    Change {
        kind,
        collection: collection.into(),
        id: id.into(),
        fields,
        from_self,
    }
}

impl Replica {
    /// An empty state.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The highest sender stamp anywhere in this state (a write, a creation, a deletion),
    /// for a replica's clock to observe when it takes the state from a snapshot: its own
    /// later writes then stamp above what it saw.
    #[must_use]
    pub fn max_raw(&self) -> Option<crate::hlc::Hlc> {
        let mut max: Option<crate::hlc::Hlc> = None;
        let mut see = |stamp: &Stamp| {
            if max.is_none_or(|m| (stamp.raw.wall, stamp.raw.counter) > (m.wall, m.counter)) {
                max = Some(stamp.raw);
            }
        };
        for entity in self.collections.values().flat_map(BTreeMap::values) {
            entity
                .created
                .iter()
                .chain(&entity.deleted)
                .for_each(&mut see);
            entity.fields.values().for_each(|r| see(&r.hlc));
            if let Some(r) = &entity.sort_order {
                see(&r.hlc);
            }
            if let Some(r) = &entity.claim {
                see(&r.hlc);
            }
        }
        max
    }

    /// The entity `collection`/`id`, inserted empty if absent (no allocation when present).
    fn slot(&mut self, collection: &str, id: &str) -> Option<&mut Entity> {
        match self.collections.get_mut(collection) {
            Some(entities) => {
                if !entities.contains_key(id) {
                    entities.insert(id.into(), Entity::default());
                }
            }
            None => {
                let mut entities = BTreeMap::new();
                entities.insert(String::from(id), Entity::default());
                self.collections.insert(collection.into(), entities);
            }
        }
        self.collections.get_mut(collection)?.get_mut(id)
    }

    /// Applies one stamped operation (already [`Op::validate`]d) and returns the visible
    /// changes, each marked `from_self`. A losing, ignored or duplicate write returns
    /// nothing.
    pub fn apply(&mut self, stamped: &StampedOp, from_self: bool) -> Vec<Change> {
        let hlc = stamped.hlc;
        match &stamped.op {
            Op::Created {
                collection,
                id,
                fields,
            } => {
                let Some(e) = self.slot(collection, id) else {
                    return Vec::new();
                };
                if e.deleted.is_some() {
                    return Vec::new();
                }
                let was_visible = e.visible();
                let won = e.write_fields(fields, hlc, was_visible);
                e.created = e.created.max(Some(hlc));
                if !was_visible {
                    let obj = e.object(id);
                    vec![change(ChangeKind::Created, collection, id, obj, from_self)]
                } else if won.is_empty() {
                    Vec::new()
                } else {
                    vec![change(ChangeKind::Updated, collection, id, won, from_self)]
                }
            }
            Op::Updated {
                collection,
                id,
                fields,
            } => {
                let Some(e) = self.slot(collection, id) else {
                    return Vec::new();
                };
                if e.deleted.is_some() {
                    return Vec::new();
                }
                let visible = e.visible();
                let won = e.write_fields(fields, hlc, visible);
                if won.is_empty() {
                    Vec::new()
                } else {
                    vec![change(ChangeKind::Updated, collection, id, won, from_self)]
                }
            }
            Op::Deleted { collection, id } => {
                let Some(e) = self.slot(collection, id) else {
                    return Vec::new();
                };
                let was_visible = e.visible();
                e.tombstone(hlc);
                if was_visible {
                    vec![change(
                        ChangeKind::Deleted,
                        collection,
                        id,
                        Map::new(),
                        from_self,
                    )]
                } else {
                    Vec::new()
                }
            }
            Op::Reordered { collection, items } => {
                let mut out = Vec::new();
                for item in items {
                    let Some(e) = self.slot(collection, &item.id) else {
                        continue;
                    };
                    if e.deleted.is_some() {
                        continue;
                    }
                    if write(&mut e.sort_order, hlc, || item.sort_order.clone()) && e.visible() {
                        let mut f = Map::new();
                        f.insert(SORT_ORDER.into(), Value::String(item.sort_order.clone()));
                        out.push(change(
                            ChangeKind::Reordered,
                            collection,
                            &item.id,
                            f,
                            from_self,
                        ));
                    }
                }
                out
            }
            Op::Claimed {
                collection,
                id,
                claimed_by,
                claimed_by_name,
                claimed_by_avatar,
            } => {
                let Some(e) = self.slot(collection, id) else {
                    return Vec::new();
                };
                if e.deleted.is_some() {
                    return Vec::new();
                }
                let claim = || Claim {
                    claimed_by: claimed_by.clone(),
                    claimed_by_name: claimed_by_name.clone(),
                    claimed_by_avatar: claimed_by_avatar.clone(),
                };
                if write(&mut e.claim, hlc, claim) && e.visible() {
                    let mut f = Map::new();
                    if let Some(reg) = &e.claim {
                        reg.value.to_fields(&mut f);
                    }
                    vec![change(ChangeKind::Claimed, collection, id, f, from_self)]
                } else {
                    Vec::new()
                }
            }
        }
    }

    /// The changes that turn what `self` shows into what `newer` shows: `created` for an
    /// entity only `newer` shows (its whole object), `deleted` for one only `self` shows,
    /// and for one both show `reordered` (`sortOrder`), `claimed` (the claim fields) and
    /// `updated` (every other field that differs; a field `newer` lacks is `null`). Used
    /// when a replica is rebuilt (a change rolled back), so the application sees the
    /// difference as ordinary changes, marked not `from_self`.
    #[must_use]
    pub fn diff(&self, newer: &Self) -> Vec<Change> {
        let mut out = Vec::new();
        let mut names: Vec<&String> = self.collections.keys().collect();
        names.extend(newer.collections.keys());
        names.sort_unstable();
        names.dedup();
        for name in names {
            let mut ids: Vec<&String> = Vec::new();
            for side in [self, newer] {
                if let Some(entities) = side.collections.get(name.as_str()) {
                    ids.extend(entities.keys());
                }
            }
            ids.sort_unstable();
            ids.dedup();
            for id in ids {
                diff_entity(
                    name,
                    id,
                    self.entity(name, id),
                    newer.entity(name, id),
                    &mut out,
                );
            }
        }
        out
    }

    /// Visible entities of `collection` as read objects (`id`, fields, `sortOrder` and
    /// claim fields when set), in the order of [`Replica::ids`].
    #[must_use]
    pub fn get(&self, collection: &str) -> Vec<(String, Value)> {
        let Some(entities) = self.collections.get(collection) else {
            return Vec::new();
        };
        self.ids(collection)
            .into_iter()
            .filter_map(|id| {
                let e = entities.get(id)?;
                Some((String::from(id), Value::Object(e.object(id))))
            })
            .collect()
    }

    /// The ids of the visible entities of `collection`, by `sortOrder` bytes then id;
    /// entities without a key last. With [`Replica::entity`], a reader that keeps the
    /// objects it built rebuilds only the ones a change touched.
    #[must_use]
    pub fn ids(&self, collection: &str) -> Vec<&str> {
        let Some(entities) = self.collections.get(collection) else {
            return Vec::new();
        };
        let mut visible: Vec<(&String, &Entity)> =
            entities.iter().filter(|(_, e)| e.visible()).collect();
        // Ids are unique, so the order is total: an unstable sort gives the same result (and
        // ships less code than a stable one).
        visible.sort_unstable_by(|(ia, a), (ib, b)| {
            let ka = a.sort_order.as_ref().map(|r| r.value.as_str());
            let kb = b.sort_order.as_ref().map(|r| r.value.as_str());
            (ka.is_none(), ka, ia).cmp(&(kb.is_none(), kb, ib))
        });
        visible.into_iter().map(|(id, _)| id.as_str()).collect()
    }

    /// The name of every collection this state holds an entity of (visible or not), in
    /// order.
    pub fn collections(&self) -> impl Iterator<Item = &str> {
        self.collections.keys().map(String::as_str)
    }

    /// One visible entity's read object, or `None` if it does not exist, was never created,
    /// or was deleted.
    #[must_use]
    pub fn entity(&self, collection: &str, id: &str) -> Option<Value> {
        let e = self.collections.get(collection)?.get(id)?;
        e.visible().then(|| Value::Object(e.object(id)))
    }

    /// Whether `id` carries a tombstone (it can never become visible again).
    #[must_use]
    pub fn is_deleted(&self, collection: &str, id: &str) -> bool {
        self.collections
            .get(collection)
            .and_then(|c| c.get(id))
            .is_some_and(|e| e.deleted.is_some())
    }

    /// The whole state, tombstones and every register with its stamp, as JSON. Equal states
    /// give equal bytes.
    #[must_use]
    pub fn to_snapshot(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct SnapshotRef<'a> {
            v: u32,
            collections: &'a BTreeMap<String, BTreeMap<String, Entity>>,
        }
        // Serialising string-keyed maps of JSON values cannot fail.
        serde_json::to_vec(&SnapshotRef {
            v: SNAPSHOT_VERSION,
            collections: &self.collections,
        })
        .unwrap_or_default()
    }

    /// Reads a state written by [`Replica::to_snapshot`].
    ///
    /// # Errors
    /// [`Error::InvalidSnapshot`] when the bytes are not a snapshot of version
    /// [`SNAPSHOT_VERSION`], or hold an invalid collection name, id or field name.
    pub fn from_snapshot(bytes: &[u8]) -> Result<Self> {
        let snap: Snapshot = serde_json::from_slice(bytes).map_err(|e| Error::InvalidSnapshot {
            reason: format!("not a snapshot's JSON: {e}"),
        })?;
        if snap.v != SNAPSHOT_VERSION {
            return Err(Error::InvalidSnapshot {
                reason: format!(
                    "snapshot version {} (this build reads version {SNAPSHOT_VERSION})",
                    snap.v
                ),
            });
        }
        let bad = |e: Error| Error::InvalidSnapshot {
            reason: format!("{e}"),
        };
        let mut collections = snap.collections;
        collections.retain(|_, entities| !entities.is_empty());
        for (name, entities) in &mut collections {
            check_collection(name).map_err(bad)?;
            for (id, e) in entities.iter_mut() {
                check_id(id).map_err(bad)?;
                if let Some(d) = e.deleted {
                    // Canonical form: a tombstone holds nothing else.
                    e.tombstone(d);
                }
                for field in e.fields.keys() {
                    check_field_name(field).map_err(bad)?;
                    if field == SORT_ORDER
                        || field == "id"
                        || CLAIM_FIELDS.contains(&field.as_str())
                    {
                        return Err(Error::InvalidSnapshot {
                            reason: format!("entity {id:?} stores reserved field {field:?}"),
                        });
                    }
                }
            }
        }
        Ok(Self { collections })
    }

    /// Joins `other` into this state (the least upper bound of the two: commutative,
    /// associative, idempotent) and returns the visible changes, none `from_self`.
    pub fn merge_snapshot(&mut self, other: Self) -> Vec<Change> {
        let mut out = Vec::new();
        for (collection, entities) in other.collections {
            let mine = self.collections.entry(collection.clone()).or_default();
            for (id, theirs) in entities {
                let e = mine.entry(id.clone()).or_default();
                let before = e.visible().then(|| e.object(&id));
                e.join(theirs);
                let after = e.visible().then(|| e.object(&id));
                if let Some(c) = diff(&collection, &id, before, after) {
                    out.push(c);
                }
            }
        }
        out
    }
}

/// The change between two read objects of one entity, if any.
fn diff(
    collection: &str,
    id: &str,
    before: Option<Map<String, Value>>,
    after: Option<Map<String, Value>>,
) -> Option<Change> {
    match (before, after) {
        (None, None) => None,
        (None, Some(obj)) => Some(change(ChangeKind::Created, collection, id, obj, false)),
        (Some(_), None) => Some(change(
            ChangeKind::Deleted,
            collection,
            id,
            Map::new(),
            false,
        )),
        (Some(old), Some(new)) => {
            let changed: Map<String, Value> = new
                .into_iter()
                .filter(|(k, v)| old.get(k) != Some(v))
                .collect();
            if changed.is_empty() {
                return None;
            }
            let kind = if changed.keys().all(|k| k == SORT_ORDER) {
                ChangeKind::Reordered
            } else if changed.keys().all(|k| CLAIM_FIELDS.contains(&k.as_str())) {
                ChangeKind::Claimed
            } else {
                ChangeKind::Updated
            };
            Some(change(kind, collection, id, changed, false))
        }
    }
}

#[cfg(test)]
mod tests;
