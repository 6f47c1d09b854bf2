//! The outbox on disk (IndexedDB, or the application's `storage`): opened and adopted on
//! join, saved once per burst of changes ([`sealsync_core::client::Output::OutboxChanged`]),
//! adopted records deleted when the core says so
//! ([`sealsync_core::client::Output::ForgetOutboxes`]). Ciphertext only.

use std::rc::{Rc, Weak};

use sealsync_core::merge::Change;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::spawn_local;

use crate::env::{now, wall};
use crate::error;
use crate::shared::{Inner, Shared};
use crate::store::{Record, SessionLock, Store};

/// Opens IndexedDB (or the application's `storage`), takes this session's lock, adopts the
/// outboxes that closed tabs left behind, and saves them under this session. Failures leave
/// the room without persistence and queue a `STORAGE_FAILED` warning.
pub(crate) async fn open_storage(shared: &Rc<Shared>, persist: bool, storage: Option<JsValue>) {
    if !persist {
        return;
    }
    let (room, session) = {
        let inner = shared.inner.borrow();
        (inner.room.clone(), inner.session.clone())
    };
    let lock = SessionLock::acquire(&room, &session).await;
    let outcome = async {
        let store = match storage {
            Some(adapter) => Store::custom(&room, adapter),
            None => Store::open(&room).await?,
        };
        let restored = if store.keeps_history() {
            let (snapshot, events) = store.load_history().await?;
            let mut inner = shared.inner.borrow_mut();
            Some(inner.client.restore_history(wall(), snapshot, events))
        } else {
            None
        };
        if let Some(restored) = restored {
            match restored {
                Ok(changes) => shared.inner.borrow_mut().saw_changes(&changes),
                Err(e) => shared.inner.borrow_mut().warn_later(
                    error::STORAGE_FAILED,
                    &format!(
                        "the local copy of this room does not open with this key (another \
                         password, or damaged): it is not used, and left as it is: {e}"
                    ),
                ),
            }
        }
        let (records, live) = records_and_live(&store).await?;
        let (changes, running, mine) = {
            let mut inner = shared.inner.borrow_mut();
            let (changes, running) = adopt(&mut inner, records, live.as_deref());
            (changes, running, inner.client.outbox_envelopes())
        };
        store.save(&session, &mine, &[]).await?;
        Ok::<_, JsValue>((store, changes, running))
    }
    .await;
    let mut inner = shared.inner.borrow_mut();
    match outcome {
        Ok((store, changes, running)) => {
            inner.saw_changes(&changes);
            inner.store = Some(store);
            inner.lock = Some(lock);
            drop(inner);
            crate::replica::request(shared);
            watch(shared, running);
        }
        Err(e) => {
            let message = error::describe(&e);
            inner.warn_later(
                error::STORAGE_FAILED,
                &format!("unsent changes will not survive a reload: {message}"),
            );
        }
    }
}

/// The room's outbox records, and the sessions whose tabs are running (`None` when
/// nothing tells).
async fn records_and_live(store: &Store) -> Result<(Vec<Record>, Option<Vec<String>>), JsValue> {
    Ok((store.load().await?, store.live_sessions().await?))
}

/// Adopts the records of the sessions that are not running (`live`); returns the changes
/// they made and the other sessions whose records stay, their tabs running (to
/// [`watch`]).
fn adopt(
    inner: &mut Inner,
    records: Vec<Record>,
    live: Option<&[String]>,
) -> (Vec<Change>, Vec<String>) {
    let own = &inner.session;
    let running = records
        .iter()
        .filter(|r| r.session != *own && !sealsync_core::outbox::adopts(&r.session, own, live))
        .map(|r| r.session.clone())
        .collect();
    let records = records
        .into_iter()
        .map(|r| (r.session, r.envelopes))
        .collect();
    (inner.client.adopt_outboxes(wall(), records, live), running)
}

/// Waits for each of `sessions` (running tabs of the room with unsent changes on disk) to
/// end, then adopts what it left ([`adopt_ended`]). A tab reloaded while this one runs, or
/// one whose old document had not released its lock yet when this session joined, ends
/// moments later; a tab closed while offline ends for good: either way its changes are
/// not left waiting for the next tab to join. Holding the ended session's lock while
/// adopting keeps other tabs from adopting the same record at once.
pub(crate) fn watch(shared: &Rc<Shared>, sessions: Vec<String>) {
    for session in sessions {
        let room = {
            let mut inner = shared.inner.borrow_mut();
            if inner.watched.contains(&session) {
                continue;
            }
            inner.watched.push(session.clone());
            inner.room.clone()
        };
        let weak = Rc::downgrade(shared);
        spawn_local(async move {
            // Granted once the tab that owns the session has ended.
            let lock = SessionLock::acquire(&room, &session).await;
            if !lock.is_held() {
                // No Web Locks (the liveness came from `storage.liveSessions`): nothing
                // tells when it ends; the next `live` after a disconnection looks again.
                return;
            }
            if let Some(shared) = weak.upgrade() {
                shared.inner.borrow_mut().watched.retain(|s| *s != session);
                adopt_ended(&shared, Some(&session)).await;
            }
            drop(lock);
        });
    }
}

/// Adopts the unsent changes of the room's sessions that have ended (`ended`: one whose
/// lock this session holds because its tab ended), shows them, and sends them; watches the
/// sessions still running ([`watch`]). Called when a watched session ends, and each time
/// the room is live again after a disconnection (a tab closed while both were offline).
pub(crate) async fn adopt_ended(shared: &Rc<Shared>, ended: Option<&str>) {
    let Some(store) = shared.inner.borrow().store.clone() else {
        return;
    };
    let (records, mut live) = match records_and_live(&store).await {
        Ok(found) => found,
        Err(e) => {
            let message = format!(
                "the unsent changes of closed tabs wait for the next join: {}",
                error::describe(&e)
            );
            shared.warn(error::STORAGE_FAILED, &message);
            return;
        }
    };
    if let (Some(live), Some(ended)) = (live.as_mut(), ended) {
        live.retain(|s| s != ended);
    }
    let (changes, running) = {
        let mut inner = shared.inner.borrow_mut();
        if inner.left || inner.store.is_none() {
            return;
        }
        let (changes, running) = adopt(&mut inner, records, live.as_deref());
        if inner.started {
            inner.client.handle_flush(now());
        }
        (changes, running)
    };
    crate::driver::emit_changes(shared, &changes);
    crate::driver::pump(shared);
    watch(shared, running);
}

/// Deletes the records of adopted sessions (their envelopes are in this session's outbox,
/// which is saved in the same transaction).
pub(crate) fn forget(shared: &Rc<Shared>, adopted: Vec<String>) {
    let weak = Rc::downgrade(shared);
    spawn_local(async move { save(&weak, &adopted).await });
}

/// Persists the outbox once per burst of changes: the save reads the outbox when it runs,
/// so it always writes the newest state, and saves run in the order they were scheduled.
pub(crate) fn schedule_save(shared: &Rc<Shared>) {
    {
        let mut inner = shared.inner.borrow_mut();
        if inner.store.is_none() || inner.save_scheduled {
            return;
        }
        inner.save_scheduled = true;
    }
    let weak = Rc::downgrade(shared);
    spawn_local(async move {
        if let Some(shared) = weak.upgrade() {
            shared.inner.borrow_mut().save_scheduled = false;
        }
        save(&weak, &[]).await;
    });
}

/// Writes the outbox as it is now and deletes the `forget` sessions' records, then tells
/// `room.sync` (or warns `STORAGE_FAILED`).
async fn save(weak: &Weak<Shared>, forget: &[String]) {
    let job = {
        let Some(shared) = weak.upgrade() else { return };
        let Ok(inner) = shared.inner.try_borrow() else {
            return;
        };
        let generation = inner.sync.generation();
        inner.store.clone().map(|store| {
            let envelopes = inner.client.outbox_envelopes();
            (store, inner.session.clone(), envelopes, generation)
        })
    };
    let Some((store, session, envelopes, generation)) = job else {
        return;
    };
    let outcome = store.save(&session, &envelopes, forget).await;
    let Some(shared) = weak.upgrade() else { return };
    match outcome {
        Ok(()) => {
            if let Ok(mut inner) = shared.inner.try_borrow_mut() {
                inner.sync.saved(generation);
            }
            crate::sync::announce(&shared);
        }
        Err(e) => shared.warn(error::STORAGE_FAILED, &error::describe(&e)),
    }
}
