//! `room.sync` and the `sync` event: where the user's changes are, for a UI to say so
//! without guessing ("saved on this device", "saved", "3 changes waiting", "offline since").

use std::rc::Rc;

use sealsync_core::client::Status;
use serde::Serialize;

use crate::shared::{Inner, Shared};

/// What `room.sync` returns and `sync` events carry.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SyncState {
    /// Local changes (operations) the relay has not acknowledged.
    pending: u32,
    /// Every local change survives a reload of this page: it is on the relay, or written to
    /// IndexedDB (or the `storage` given to `join`).
    saved_locally: bool,
    /// Every local change is stored on the relay.
    saved_on_relay: bool,
    /// `Date.now()` when the room last stopped being live (or joined, before its first
    /// connection); `null` while live.
    offline_since: Option<f64>,
}

/// The state behind [`SyncState`].
#[derive(Debug)]
pub(crate) struct Tracker {
    /// Bumped whenever the unsaved set may have grown (a local change, a new outbox).
    generation: u64,
    /// The generation the last completed save wrote.
    saved_generation: u64,
    offline_since: Option<f64>,
    /// The state the last `sync` event carried.
    announced: Option<SyncState>,
}

impl Default for Tracker {
    fn default() -> Self {
        Self {
            generation: 0,
            saved_generation: 0,
            offline_since: Some(js_sys::Date::now()),
            announced: None,
        }
    }
}

impl Tracker {
    /// Something new waits to be saved.
    pub(crate) fn changed(&mut self) {
        self.generation += 1;
    }

    /// The generation a save started now writes.
    pub(crate) const fn generation(&self) -> u64 {
        self.generation
    }

    /// A save of `generation` completed.
    pub(crate) fn saved(&mut self, generation: u64) {
        self.saved_generation = self.saved_generation.max(generation);
    }

    /// The connection status changed.
    pub(crate) fn status(&mut self, status: &Status) {
        if *status == Status::Live {
            self.offline_since = None;
        } else if self.offline_since.is_none() {
            self.offline_since = Some(js_sys::Date::now());
        }
    }

    /// The state now, given the pending count and whether anything is persisted.
    pub(crate) fn state(&self, pending: usize, persistent: bool) -> SyncState {
        let pending = u32::try_from(pending).unwrap_or(u32::MAX);
        SyncState {
            pending,
            saved_locally: pending == 0 || (persistent && self.saved_generation >= self.generation),
            saved_on_relay: pending == 0,
            offline_since: self.offline_since,
        }
    }

    /// `state`, when it differs from what the last `sync` event carried.
    pub(crate) fn news(&mut self, state: SyncState) -> Option<SyncState> {
        (self.announced.as_ref() != Some(&state)).then(|| {
            self.announced = Some(state.clone());
            state
        })
    }
}

/// The `sync` state now (`room.sync`).
pub(crate) fn state(inner: &Inner) -> SyncState {
    inner
        .sync
        .state(inner.client.pending_changes(), inner.store.is_some())
}

/// Emits `sync` when what `room.sync` returns changed since the last one.
pub(crate) fn announce(shared: &Rc<Shared>) {
    let news = {
        let Ok(mut inner) = shared.inner.try_borrow_mut() else {
            return;
        };
        let state = state(&inner);
        inner.sync.news(state)
    };
    if let Some(state) = news {
        shared.emit("sync", &crate::events::to_js(&state));
    }
}
