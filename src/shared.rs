//! The room's state ([`Inner`]: the core's `Client` and every browser resource the room
//! holds) and [`Shared`], which the browser callbacks reach it through.
//!
//! Re-entrancy: application listeners may call back into the room (`room.update` inside a
//! `change` listener). So the client is borrowed only to feed one input or to take one
//! output, never while a listener runs, and resources whose callback may be on the stack
//! (the socket, the timer) are dropped in a later microtask ([`drop_later`]).

use std::cell::{Ref, RefCell, RefMut};
use std::collections::HashMap;
use std::rc::Rc;

use sealsync_core::client::Client;
use sealsync_core::merge::{Change, ChangeKind, SORT_ORDER};
use sealsync_core::wire;
use sealsync_core::{RoomId, SessionId};
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::spawn_local;
use zeroize::Zeroizing;

use crate::browser::Hook;
use crate::error;
use crate::events::{self, Listeners};
use crate::socket::Socket;
use crate::store::{SessionLock, Store};
use crate::timer::Timer;

/// Everything a room owns. Lives in [`Shared::inner`].
pub(crate) struct Inner {
    pub(crate) client: Client,
    pub(crate) room: String,
    pub(crate) relay_url: String,
    /// The room key as a share-link secret (base64url), wiped from wasm memory on drop.
    pub(crate) secret: Zeroizing<String>,
    pub(crate) socket_url: String,
    /// The room's presence address, asked when a connection with a token fails.
    pub(crate) presence_url: String,
    /// The token the current socket offered, if any.
    pub(crate) attempt_token: Option<String>,
    /// `Room.join`'s `token`: a string, or a function returning one (or a promise of one),
    /// called before every connection attempt.
    pub(crate) token: Option<JsValue>,
    /// Bumped on every `Connect`, `Close` and on leave: a token fetched for an older attempt
    /// is thrown away.
    pub(crate) attempt: u64,
    pub(crate) session: String,
    pub(crate) socket: Option<Socket>,
    pub(crate) timer: Option<Timer>,
    pub(crate) store: Option<Store>,
    pub(crate) lock: Option<SessionLock>,
    /// The local replica's writer ([`crate::replica`]).
    pub(crate) writer: crate::replica::Writer,
    /// What `room.sync` reports ([`crate::sync`]).
    pub(crate) sync: crate::sync::Tracker,
    pub(crate) hooks: Vec<Hook>,
    pub(crate) started: bool,
    pub(crate) left: bool,
    pub(crate) save_scheduled: bool,
    /// Other sessions of the room with unsent changes on disk whose tabs were still
    /// running: their changes are adopted when they end ([`crate::persist::watch`]).
    pub(crate) watched: Vec<String>,
    /// The room has been live before (a later `live` looks for ended sessions' changes).
    pub(crate) been_live: bool,
    /// A `handle_flush` is queued for the end of this task.
    pub(crate) flush_scheduled: bool,
    /// How deep `room.transact` calls are nested (only the outermost talks to the client).
    pub(crate) tx_depth: u32,
    /// What a nested `transact` threw: the outermost one rolls everything back and throws
    /// it (when its own function did not throw).
    pub(crate) tx_failure: Option<JsValue>,
    /// Warnings from before the application could subscribe, sent once started.
    pub(crate) early_warnings: Vec<(String, String)>,
    /// What `room.get` returned, by collection (a few: a list, not a map), kept until a
    /// change touches it.
    pub(crate) views: Vec<(String, View)>,
    /// The last `presence` count the relay reported (`room.presence`).
    pub(crate) presence: Option<u32>,
    /// `Room.join`'s `debug`: every frame is logged with `console.debug`, described by
    /// `sealsync_core::describe` (headers and sizes, never a body).
    pub(crate) debug: bool,
    /// `kdfWorker` of `Room.join`: derives the password of a `rotate` or `rekey` too.
    pub(crate) kdf_worker: Option<JsValue>,
    /// `room.rotate`'s promise, until the relay answers.
    pub(crate) rotation: Option<crate::rekey::Pending>,
}

impl Inner {
    /// A room that has not started connecting yet.
    pub(crate) fn new(
        client: Client,
        relay_url: &str,
        room: &RoomId,
        session: SessionId,
        secret: Zeroizing<String>,
    ) -> Self {
        let base = relay_url.trim_end_matches('/');
        // `client` is the session id the relay already sees in every envelope header: it
        // lets `GET …/presence?client=` leave this session's socket out.
        let segment = String::from(js_sys::encode_uri_component(room.as_str()));
        let session = session.to_string();
        let socket_url = format!(
            "{base}{}",
            wire::room_path(&segment, wire::SOCKET_ACTION, &session)
        );
        let presence_url = format!(
            "{}{}",
            wire::http_base(base),
            wire::room_path(&segment, wire::PRESENCE_ACTION, &session)
        );
        Self {
            client,
            room: room.as_str().to_owned(),
            relay_url: relay_url.to_owned(),
            secret,
            socket_url,
            presence_url,
            attempt_token: None,
            token: None,
            attempt: 0,
            session,
            socket: None,
            timer: None,
            store: None,
            lock: None,
            writer: crate::replica::Writer::default(),
            sync: crate::sync::Tracker::default(),
            hooks: Vec::new(),
            started: false,
            left: false,
            save_scheduled: false,
            watched: Vec::new(),
            been_live: false,
            flush_scheduled: false,
            tx_depth: 0,
            tx_failure: None,
            early_warnings: Vec::new(),
            views: Vec::new(),
            presence: None,
            debug: false,
            kdf_worker: None,
            rotation: None,
        }
    }

    /// Tells the cached `get()` results what the changes touch.
    pub(crate) fn saw_changes(&mut self, changes: &[Change]) {
        for change in changes {
            if let Some((_, view)) = self.views.iter_mut().find(|(c, _)| *c == change.collection) {
                view.saw(change);
            }
        }
    }

    /// Queues a warning for when the application has had the chance to subscribe.
    pub(crate) fn warn_later(&mut self, code: &str, message: &str) {
        self.early_warnings
            .push((String::from(code), String::from(message)));
    }
}

/// The cached result of `room.get(collection)`: the same frozen array while nothing in the
/// collection changed, and the same frozen entity object while that entity did not change.
/// A change that keeps the order (an update without `sortOrder`, a claim) costs the next
/// `get()` a copy of the array with the touched entities' objects replaced; any other
/// change (create, delete, reorder) makes it read the order again (`crate::local`).
#[derive(Default)]
pub(crate) struct View {
    /// The array last built (frozen), and whether `get()` still returns it.
    pub(crate) array: Option<(js_sys::Array, bool)>,
    /// Every entity in that array: its index there, and its object (`None` once a change
    /// touched it: the next `get()` builds it again).
    pub(crate) slots: HashMap<String, Slot>,
    /// The ids whose object a change dropped while the order held.
    pub(crate) stale: Vec<String>,
    /// A change may have added, removed or moved an entity.
    pub(crate) reorder: bool,
}

/// One entity of a [`View`].
pub(crate) struct Slot {
    pub(crate) index: u32,
    pub(crate) object: Option<JsValue>,
}

impl View {
    fn saw(&mut self, change: &Change) {
        if let Some((_, current)) = &mut self.array {
            *current = false;
        }
        let moves = matches!(
            change.kind,
            ChangeKind::Created | ChangeKind::Deleted | ChangeKind::Reordered
        ) || change.fields.contains_key(SORT_ORDER);
        match self.slots.get_mut(&change.id) {
            Some(slot) => {
                if slot.object.take().is_some() && !moves {
                    self.stale.push(change.id.clone());
                }
            }
            // Not in the array: it can only have appeared.
            None => self.reorder = true,
        }
        if moves {
            self.reorder = true;
        }
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("client", &self.client)
            .field("socket", &self.socket)
            .field("left", &self.left)
            .finish_non_exhaustive()
    }
}

/// The room's state and its listeners, shared with the browser callbacks (which hold
/// [`Weak`] references, so dropping the `Room` frees everything).
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) inner: RefCell<Inner>,
    pub(crate) listeners: RefCell<Listeners>,
    /// Warnings reported while no `warning` listener was attached (the newest
    /// [`BUFFERED_WARNINGS`]), for the next listener attached.
    buffered_warnings: RefCell<Vec<JsValue>>,
}

impl Shared {
    pub(crate) fn new(inner: Inner) -> Rc<Self> {
        Rc::new(Self {
            inner: RefCell::new(inner),
            listeners: RefCell::new(Listeners::default()),
            buffered_warnings: RefCell::new(Vec::new()),
        })
    }

    /// The state, for reading.
    ///
    /// # Errors
    /// `ROOM_CLOSED` after `leave()`.
    pub(crate) fn inner(&self) -> Result<Ref<'_, Inner>, JsValue> {
        let inner = self.inner.try_borrow().map_err(|_| busy())?;
        if inner.left {
            return Err(closed());
        }
        Ok(inner)
    }

    /// The state, for feeding an input.
    ///
    /// # Errors
    /// `ROOM_CLOSED` after `leave()`.
    pub(crate) fn inner_mut(&self) -> Result<RefMut<'_, Inner>, JsValue> {
        let inner = self.inner.try_borrow_mut().map_err(|_| busy())?;
        if inner.left {
            return Err(closed());
        }
        Ok(inner)
    }

    pub(crate) fn emit(&self, kind: &str, value: &JsValue) {
        let listeners = self.listeners.borrow().of(kind);
        events::call_all(kind, &listeners, value);
    }

    /// With the `debug` option, logs one frame (`direction`: `→` sent, `←` received).
    pub(crate) fn debug_frame(&self, direction: &str, line: &str) {
        if self.inner.try_borrow().is_ok_and(|inner| inner.debug) {
            web_sys::console::debug_1(&JsValue::from_str(&format!("sealsync {direction} {line}")));
        }
    }

    /// Emits a `warning`; without a listener, logs it with `console.warn` and keeps it for
    /// the next listener attached (see [`deliver_buffered_warnings`]).
    pub(crate) fn warn(&self, code: &str, message: &str) {
        if self.listeners.borrow().of("warning").is_empty() {
            web_sys::console::warn_1(&JsValue::from_str(&format!("sealsync: {code}: {message}")));
            let mut buffered = self.buffered_warnings.borrow_mut();
            if buffered.len() == BUFFERED_WARNINGS {
                buffered.remove(0);
            }
            buffered.push(events::warning_to_js(code, message));
        } else {
            self.emit("warning", &events::warning_to_js(code, message));
        }
    }
}

/// How many warnings are kept for a `warning` listener attached later.
pub(crate) const BUFFERED_WARNINGS: usize = 32;

/// Hands the warnings reported while no `warning` listener was attached to the listener
/// just attached under `id`, in order, in a microtask (after `on()` has returned). If that
/// listener is gone by then, they stay for the next one.
pub(crate) fn deliver_buffered_warnings(shared: &Rc<Shared>, id: u32) {
    let warnings = std::mem::take(&mut *shared.buffered_warnings.borrow_mut());
    if warnings.is_empty() {
        return;
    }
    let weak = Rc::downgrade(shared);
    spawn_local(async move {
        let Some(shared) = weak.upgrade() else { return };
        let listener = shared.listeners.borrow().get("warning", id);
        match listener {
            Some(listener) => {
                for warning in &warnings {
                    events::call_all("warning", std::slice::from_ref(&listener), warning);
                }
            }
            None => {
                let mut buffered = shared.buffered_warnings.borrow_mut();
                let later = std::mem::replace(&mut *buffered, warnings);
                buffered.extend(later);
                buffered.truncate(BUFFERED_WARNINGS);
            }
        }
    });
}

pub(crate) fn closed() -> JsValue {
    error::coded(error::ROOM_CLOSED, "this room was left; join it again")
}

fn busy() -> JsValue {
    error::coded(
        error::BROWSER_API,
        "the room is busy (called re-entrantly from inside the SDK)",
    )
}

/// Drops `value` in a later microtask, after the callback on the stack has returned (a
/// wasm-bindgen closure must not be freed while it runs).
pub(crate) fn drop_later<T: 'static>(value: T) {
    spawn_local(async move { drop(value) });
}
