//! What the application calls to change and read the room: one change, a transaction, an
//! ephemeral payload, a collection's view. Changes are staged by the client and sealed by
//! one `handle_flush` per task (a microtask queued by the first change of a synchronous
//! burst), so one burst of `create`s and `update`s becomes as few envelopes as the relay's
//! frame limit allows.

use std::collections::HashMap;
use std::rc::Rc;

use js_sys::Function;
use sealsync_core::merge::{Op, Replica};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::spawn_local;

use crate::driver::{emit_changes, pump};
use crate::env::{now, wall};
use crate::error;
use crate::events;
use crate::shared::{closed, Shared, Slot, View};

/// Applies a local operation, announces its changes (`fromSelf: true`) and queues the
/// flush that seals it (with the rest of this task's changes) and sends it.
///
/// # Errors
/// The core's error (`INVALID_OPERATION`, `BODY_TOO_LARGE`, `OUTBOX_FULL`, `READ_ONLY`, …)
/// or `ROOM_CLOSED`.
pub(crate) fn local_op(shared: &Rc<Shared>, op: Op) -> Result<(), JsValue> {
    let changes = {
        let mut inner = shared.inner_mut()?;
        let changes = inner
            .client
            .handle_local_op(now(), wall(), op)
            .map_err(|e| error::from_core(&e))?;
        inner.sync.changed();
        changes
    };
    schedule_flush(shared);
    pump(shared);
    emit_changes(shared, &changes);
    Ok(())
}

/// Queues one `handle_flush` for the end of the current task (a microtask), unless one is
/// queued already: every change of a synchronous burst is sealed together.
fn schedule_flush(shared: &Rc<Shared>) {
    {
        let Ok(mut inner) = shared.inner.try_borrow_mut() else {
            return;
        };
        if inner.flush_scheduled || inner.left {
            return;
        }
        inner.flush_scheduled = true;
    }
    let weak = Rc::downgrade(shared);
    spawn_local(async move {
        let Some(shared) = weak.upgrade() else { return };
        {
            // Nothing else holds the state across a task boundary, so this cannot fail.
            let Ok(mut inner) = shared.inner.try_borrow_mut() else {
                return;
            };
            inner.flush_scheduled = false;
            if inner.left {
                return;
            }
            inner.client.handle_flush(now());
        }
        pump(&shared);
    });
}

/// `room.transact(fn)`: runs `f` inside one client transaction (its changes are sealed as
/// one envelope and applied all at once everywhere) and returns what `f` returned.
///
/// A `transact` inside another joins it: only the outermost one begins and commits. If
/// `f` (at any level) throws, or returns a promise (only its synchronous part would be in
/// the transaction), the whole transaction is rolled back — the reverting `change` events
/// (`fromSelf: false`) fire first — and the error is thrown.
///
/// # Errors
/// What `f` threw; `INVALID_ARGUMENT` when `f` is not a function or returned a promise;
/// `BODY_TOO_LARGE` when the changes do not fit one envelope (rolled back); `ROOM_CLOSED`.
pub(crate) fn transact(shared: &Rc<Shared>, f: &JsValue) -> Result<JsValue, JsValue> {
    let Some(f) = f.dyn_ref::<Function>() else {
        return Err(error::coded(
            error::INVALID_ARGUMENT,
            "transact takes a function",
        ));
    };
    let outermost = {
        let mut inner = shared.inner_mut()?;
        inner.tx_depth += 1;
        if inner.tx_depth == 1 {
            inner.tx_failure = None;
            inner.client.begin_transaction();
        }
        inner.tx_depth == 1
    };
    let result = f.call0(&JsValue::UNDEFINED).and_then(|value| {
        if value.is_instance_of::<js_sys::Promise>() {
            Err(error::coded(
                error::INVALID_ARGUMENT,
                "transact takes a synchronous function: it returned a promise, and changes \
                 made after an await would not be part of the transaction (rolled back)",
            ))
        } else {
            Ok(value)
        }
    });
    let mut inner = shared.inner.borrow_mut();
    inner.tx_depth = inner.tx_depth.saturating_sub(1);
    if !outermost {
        if let Err(thrown) = &result {
            inner.tx_failure.get_or_insert_with(|| thrown.clone());
        }
        return result;
    }
    let failure = inner.tx_failure.take();
    let left = inner.left;
    let outcome = match (result, failure) {
        (Ok(value), None) if !left => inner
            .client
            .commit_transaction()
            .map(|()| value)
            .map_err(|e| error::from_core(&e)),
        (Err(thrown), _) | (Ok(_), Some(thrown)) => {
            inner.client.abort_transaction();
            Err(thrown)
        }
        (Ok(_), None) => {
            inner.client.abort_transaction();
            Err(closed())
        }
    };
    drop(inner);
    // A rollback comes out of the client as remote-looking changes: emit them now.
    pump(shared);
    if outcome.is_ok() {
        schedule_flush(shared);
    }
    outcome
}

/// Sends an ephemeral payload (dropped when not live or when the pace has no room).
///
/// # Errors
/// `BODY_TOO_LARGE`, `SESSION_EXHAUSTED`, `ROOM_CLOSED`.
pub(crate) fn ephemeral(shared: &Rc<Shared>, body: &[u8]) -> Result<(), JsValue> {
    shared
        .inner_mut()?
        .client
        .handle_ephemeral(now(), wall(), body)
        .map_err(|e| error::from_core(&e))?;
    pump(shared);
    Ok(())
}

/// `room.setProfile(profile)`: this member's profile in who is online, announced at once
/// when live.
///
/// # Errors
/// `INVALID_MEMBER` (over 4,096 bytes of JSON), `ROOM_CLOSED`.
pub(crate) fn set_profile(shared: &Rc<Shared>, profile: serde_json::Value) -> Result<(), JsValue> {
    shared
        .inner_mut()?
        .client
        .set_profile(now(), profile)
        .map_err(|e| error::from_core(&e))?;
    pump(shared);
    Ok(())
}

/// `room.get(collection)`: the visible entities as a frozen array of frozen plain objects.
/// The same array comes back until a change touches the collection, and an entity's
/// object is rebuilt only when a change touched that entity (see [`View`]).
///
/// # Errors
/// `ROOM_CLOSED`.
pub(crate) fn collection(shared: &Shared, collection: &str) -> Result<JsValue, JsValue> {
    let mut inner = shared.inner_mut()?;
    let inner = &mut *inner;
    let index = match inner.views.iter().position(|(c, _)| c == collection) {
        Some(i) => i,
        None => {
            inner.views.push((collection.to_owned(), View::default()));
            inner.views.len() - 1
        }
    };
    let view = &mut inner.views[index].1;
    let replica = inner.client.replica();
    if let Some((array, true)) = &view.array {
        return Ok(array.clone().into());
    }
    let array = match patched(view, replica, collection) {
        Some(array) => array,
        None => rebuilt(view, replica, collection),
    };
    let array: js_sys::Array = js_sys::Object::freeze(&array).unchecked_into();
    view.array = Some((array.clone(), true));
    Ok(array.into())
}

/// The last array with the objects of the entities in `view.stale` built again, when the
/// order cannot have changed since; `None` when it may have (or an entity is not where
/// the view says: then everything is read again).
fn patched(view: &mut View, replica: &Replica, collection: &str) -> Option<js_sys::Array> {
    if view.reorder {
        return None;
    }
    let (last, _) = view.array.as_ref()?;
    let next = last.slice(0, last.length());
    for id in std::mem::take(&mut view.stale) {
        let slot = view.slots.get_mut(&id)?;
        if slot.object.is_some() {
            continue;
        }
        let entity = events::frozen(&replica.entity(collection, &id)?);
        next.set(slot.index, entity.clone());
        slot.object = Some(entity);
    }
    Some(next)
}

/// The array read again in the replica's order, keeping every object no change touched.
fn rebuilt(view: &mut View, replica: &Replica, collection: &str) -> js_sys::Array {
    let ids = replica.ids(collection);
    let array = js_sys::Array::new();
    let mut slots = HashMap::with_capacity(ids.len());
    for id in ids {
        let (key, object) = match view.slots.remove_entry(id) {
            Some((key, Slot { object, .. })) => (key, object),
            None => (id.to_owned(), None),
        };
        let Some(object) =
            object.or_else(|| replica.entity(collection, id).map(|o| events::frozen(&o)))
        else {
            continue;
        };
        let index = array.push(&object) - 1;
        slots.insert(
            key,
            Slot {
                index,
                object: Some(object),
            },
        );
    }
    view.slots = slots;
    view.stale.clear();
    view.reorder = false;
    array
}
