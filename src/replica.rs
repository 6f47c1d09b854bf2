//! The room's local replica in IndexedDB: the last snapshot and the events after it, as the
//! relay stores them (ciphertext only, sealed with the room key; [`sealsync_core::client::Kept`]).
//!
//! Reading: every session restores it when it joins, before its outbox
//! ([`crate::persist::open_storage`]), so the room shows its last known state at once,
//! offline too, and the relay is asked only for what came after.
//!
//! Writing: one session per room and browser profile holds the Web Lock
//! `sealsync:replica:<room>`; the others of the room wait for it and take over when the
//! holder's tab closes. The holder writes what the core keeps
//! ([`sealsync_core::client::Output::Keep`]), one transaction per task: the core keeps
//! nothing before it has proof that its key is the room's (a wrong password never
//! overwrites the replica; see `ClientConfig::keep_history`). A session that gets the lock
//! after it dropped something the core kept starts with
//! [`sealsync_core::client::Client::history_snapshot`]. Without Web Locks every session writes; that stays consistent (an
//! event's record is the same whoever writes it, and a snapshot is valid at its sequence),
//! at worst leaving a hole the relay fills on the next join.

use std::rc::{Rc, Weak};

use sealsync_core::client::Kept;
use wasm_bindgen_futures::spawn_local;

use crate::error;
use crate::shared::Shared;
use crate::store::SessionLock;

/// The writer's state of one session.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    /// The writer lock, once granted.
    lock: Option<SessionLock>,
    /// Writing: the lock is held.
    active: bool,
    /// Something the core kept was dropped (this session did not hold the lock yet).
    dropped: bool,
    /// What the core kept since the last write.
    queue: Vec<Kept>,
    /// A write of `queue` is queued for the end of this task.
    scheduled: bool,
}

fn lock_name(room: &str) -> String {
    format!("sealsync:replica:{room}")
}

/// Asks for the writer lock (when the room's storage keeps a replica); once granted, the
/// session writes from the next time it is live (at once if it is live already).
pub(crate) fn request(shared: &Rc<Shared>) {
    let room = {
        let inner = shared.inner.borrow();
        if !inner
            .store
            .as_ref()
            .is_some_and(crate::store::Store::keeps_history)
        {
            return;
        }
        inner.room.clone()
    };
    let weak = Rc::downgrade(shared);
    spawn_local(async move {
        let lock = SessionLock::acquire_named(&lock_name(&room)).await;
        let Some(shared) = weak.upgrade() else { return };
        {
            let mut inner = shared.inner.borrow_mut();
            if inner.left {
                return;
            }
            inner.writer.lock = Some(lock);
            inner.writer.active = true;
            if !inner.writer.dropped {
                // What the core keeps from now on follows what is stored (or, when the
                // core has not started keeping, begins with what replaces it).
                return;
            }
            match inner.client.history_snapshot() {
                Ok(snapshot) => inner.writer.queue.push(snapshot),
                Err(e) => {
                    inner.writer.active = false;
                    let message = format!("the local copy of the room is not updated: {e}");
                    drop(inner);
                    shared.warn(error::STORAGE_FAILED, &message);
                    return;
                }
            }
        }
        schedule(&shared);
    });
}

/// What the core kept: written at the end of the task by the writing session, dropped by
/// the others.
pub(crate) fn on_keep(shared: &Rc<Shared>, kept: Kept) {
    {
        let Ok(mut inner) = shared.inner.try_borrow_mut() else {
            return;
        };
        if !inner.writer.active {
            inner.writer.dropped = true;
            return;
        }
        inner.writer.queue.push(kept);
    }
    schedule(shared);
}

fn schedule(shared: &Rc<Shared>) {
    {
        let mut inner = shared.inner.borrow_mut();
        if inner.writer.scheduled {
            return;
        }
        inner.writer.scheduled = true;
    }
    let weak = Rc::downgrade(shared);
    spawn_local(async move { write(&weak).await });
}

async fn write(weak: &Weak<Shared>) {
    let Some(shared) = weak.upgrade() else { return };
    shared.inner.borrow_mut().writer.scheduled = false;
    flush(&shared).await;
}

/// Writes what is queued. A failure stops this session's writing (once reported): the
/// replica stays as it was, and restoring it later is still consistent (the relay sends
/// what it lacks).
async fn flush(shared: &Rc<Shared>) {
    let job = {
        let mut inner = shared.inner.borrow_mut();
        let queue = std::mem::take(&mut inner.writer.queue);
        inner.store.clone().map(|store| (store, queue))
    };
    let Some((store, queue)) = job else { return };
    if queue.is_empty() {
        return;
    }
    if let Err(e) = store.keep(&queue).await {
        if let Ok(mut inner) = shared.inner.try_borrow_mut() {
            inner.writer.active = false;
            inner.writer.queue.clear();
        }
        shared.warn(
            error::STORAGE_FAILED,
            &format!(
                "the local copy of the room is no longer updated on this device: {}",
                error::describe(&e)
            ),
        );
    }
}

/// On leave: writes what is still queued, then releases the lock (another tab takes over).
pub(crate) async fn finish(shared: &Rc<Shared>) {
    flush(shared).await;
    let lock = {
        let mut inner = shared.inner.borrow_mut();
        inner.writer.active = false;
        inner.writer.lock.take()
    };
    drop(lock);
}
