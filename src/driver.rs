//! The run loop: feed one browser event to the core's `Client`, then carry out every
//! `Output` it asks for (see the calling order in `sealsync_core::client`).
//!
//! Local changes are staged by the client and sealed by one `handle_flush` per task (a
//! microtask queued by the first change of a synchronous burst), so one burst of `create`s
//! and `update`s becomes as few envelopes as the relay's frame limit allows.
//!
//! Re-entrancy: application listeners may call back into the room (`room.update` inside a
//! `change` listener). So the client is borrowed only to feed one input or to take one
//! output, never while a listener runs, and resources whose callback may be on the stack
//! (the socket, the timer) are dropped in a later microtask.

use std::cell::{Ref, RefCell, RefMut};
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::rc::{Rc, Weak};

use js_sys::Function;
use sealsync_core::client::{Client, ClientEvent, Output, Status};
use sealsync_core::merge::{Change, Op};
use sealsync_core::wire;
use sealsync_core::{RoomId, SessionId};
use wasm_bindgen::JsCast;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::{spawn_local, JsFuture};
use zeroize::Zeroizing;

use crate::browser::{self, Hook};
use crate::env::{now, wall};
use crate::error;
use crate::events::{self, Listeners};
use crate::refusal;
use crate::socket::{Socket, SocketEvent};
use crate::store::{SessionLock, Store};
use crate::timer::Timer;

/// The close code browsers report for a connection that failed or never opened.
const CLOSE_ABNORMAL: u16 = 1006;

/// Everything a room owns. Lives in [`Shared::inner`].
pub(crate) struct Inner {
    pub(crate) client: Client,
    pub(crate) room: String,
    pub(crate) relay_url: String,
    /// The room key as a share-link secret (base64url), wiped from wasm memory on drop.
    pub(crate) secret: Zeroizing<String>,
    /// Collections seen in changes, for `snapshot()`.
    pub(crate) collections: BTreeSet<String>,
    socket_url: String,
    /// The room's presence address, asked when a connection with a token fails.
    presence_url: String,
    /// The token the current socket offered, if any.
    attempt_token: Option<String>,
    /// `Room.join`'s `token`: a string, or a function returning one (or a promise of one),
    /// called before every connection attempt.
    pub(crate) token: Option<JsValue>,
    /// Bumped on every `Connect`, `Close` and on leave: a token fetched for an older attempt
    /// is thrown away.
    attempt: u64,
    session: String,
    socket: Option<Socket>,
    timer: Option<Timer>,
    pub(crate) store: Option<Store>,
    lock: Option<SessionLock>,
    /// The local replica's writer ([`crate::replica`]).
    pub(crate) writer: crate::replica::Writer,
    /// What `room.sync` reports ([`crate::sync`]).
    pub(crate) sync: crate::sync::Tracker,
    hooks: Vec<Hook>,
    started: bool,
    pub(crate) left: bool,
    save_scheduled: bool,
    /// A `handle_flush` is queued for the end of this task.
    flush_scheduled: bool,
    /// How deep `room.transact` calls are nested (only the outermost talks to the client).
    tx_depth: u32,
    /// What a nested `transact` threw: the outermost one rolls everything back and throws
    /// it (when its own function did not throw).
    tx_failure: Option<JsValue>,
    /// Sessions whose outboxes this one adopted; their records are deleted once the room
    /// is live (the relay accepted our key, so the adopted envelopes opened under the right
    /// one). Until then they stay, so a wrong password never destroys unsent changes.
    adopted: Vec<String>,
    /// Warnings from before the application could subscribe, sent once started.
    early_warnings: Vec<(String, String)>,
    /// What `get()` returned per collection, kept until a change touches it.
    views: HashMap<String, View>,
    /// The last `presence` count the relay reported (`room.presence`).
    pub(crate) presence: Option<u32>,
    /// `Room.join`'s `debug`: every frame is logged with `console.debug`, described by
    /// `sealsync_core::describe` (headers and sizes, never a body).
    pub(crate) debug: bool,
}

/// The cached result of `room.get(collection)`: the same frozen array while nothing in the
/// collection changed, and the same frozen entity object while that entity did not change.
#[derive(Default)]
struct View {
    /// The array last returned; `None` once a change touched the collection.
    array: Option<JsValue>,
    /// The entity objects in it, by id.
    entities: HashMap<String, JsValue>,
    /// Entities changed since `array` was built: their objects are rebuilt.
    changed: HashSet<String>,
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
        let socket_url = format!("{base}/room/{segment}/ws?client={session}");
        let presence_url = refusal::presence_url(base, &segment, &session.to_string());
        Self {
            client,
            room: room.as_str().to_owned(),
            relay_url: relay_url.to_owned(),
            secret,
            collections: BTreeSet::new(),
            socket_url,
            presence_url,
            attempt_token: None,
            token: None,
            attempt: 0,
            session: session.to_string(),
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
            flush_scheduled: false,
            tx_depth: 0,
            tx_failure: None,
            adopted: Vec::new(),
            early_warnings: Vec::new(),
            views: HashMap::new(),
            presence: None,
            debug: false,
        }
    }

    /// Notes changes for `snapshot()` and drops the cached `get()` results they touch.
    fn saw_changes(&mut self, changes: &[Change]) {
        for change in changes {
            if !self.collections.contains(&change.collection) {
                self.collections.insert(change.collection.clone());
            }
            if let Some(view) = self.views.get_mut(&change.collection) {
                view.array = None;
                view.changed.insert(change.id.clone());
            }
        }
    }

    /// Queues a warning for when the application has had the chance to subscribe.
    pub(crate) fn warn_later(&mut self, code: &str, message: &str) {
        self.early_warnings
            .push((String::from(code), String::from(message)));
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
    buffered_warnings: RefCell<VecDeque<JsValue>>,
}

/// How many warnings are kept for a `warning` listener attached later.
pub(crate) const BUFFERED_WARNINGS: usize = 32;

impl Shared {
    pub(crate) fn new(inner: Inner) -> Rc<Self> {
        Rc::new(Self {
            inner: RefCell::new(inner),
            listeners: RefCell::new(Listeners::default()),
            buffered_warnings: RefCell::new(VecDeque::new()),
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
    fn inner_mut(&self) -> Result<RefMut<'_, Inner>, JsValue> {
        let inner = self.inner.try_borrow_mut().map_err(|_| busy())?;
        if inner.left {
            return Err(closed());
        }
        Ok(inner)
    }

    fn emit(&self, kind: &str, value: &JsValue) {
        let listeners = self.listeners.borrow().of(kind);
        events::call_all(kind, &listeners, value);
    }

    /// With the `debug` option, logs one frame (`direction`: `→` sent, `←` received).
    fn debug_frame(&self, direction: &str, line: &str) {
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
                buffered.pop_front();
            }
            buffered.push_back(events::warning_to_js(code, message));
        } else {
            self.emit("warning", &events::warning_to_js(code, message));
        }
    }
}

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
                for warning in warnings.into_iter().rev() {
                    buffered.push_front(warning);
                }
                buffered.truncate(BUFFERED_WARNINGS);
            }
        }
    });
}

fn closed() -> JsValue {
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
fn drop_later<T: 'static>(value: T) {
    spawn_local(async move { drop(value) });
}

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
        let records = store.load().await?;
        let live = store.live_sessions().await?;
        let abandoned: Vec<_> = records
            .into_iter()
            .filter(|r| sealsync_core::outbox::adopts(&r.session, &session, live.as_deref()))
            .collect();
        let adopted: Vec<String> = abandoned.iter().map(|r| r.session.clone()).collect();
        let envelopes: Vec<Vec<u8>> = abandoned.into_iter().flat_map(|r| r.envelopes).collect();
        let (changes, mine) = {
            let mut inner = shared.inner.borrow_mut();
            let changes = if envelopes.is_empty() {
                Vec::new()
            } else {
                inner.client.restore_outbox(wall(), envelopes)
            };
            (changes, inner.client.outbox_envelopes())
        };
        store.save(&session, &mine, &[]).await?;
        Ok::<_, JsValue>((store, changes, adopted))
    }
    .await;
    let mut inner = shared.inner.borrow_mut();
    match outcome {
        Ok((store, changes, adopted)) => {
            inner.saw_changes(&changes);
            inner.adopted = adopted;
            inner.store = Some(store);
            inner.lock = Some(lock);
            drop(inner);
            crate::replica::request(shared);
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

/// Installs the timer and the page hooks, and starts connecting in a later task (after the
/// application has had the chance to subscribe to `status`).
pub(crate) fn start(shared: &Rc<Shared>) {
    let weak = Rc::downgrade(shared);
    let timer = Timer::new(move || on_timer(&weak));
    let mut hooks = Vec::new();
    if let Some((window, document)) = browser::targets() {
        let weak = Rc::downgrade(shared);
        hooks.extend(Hook::listen(&window, "online", move |_| {
            feed(&weak, |c| c.handle_online(now()))
        }));
        let weak = Rc::downgrade(shared);
        hooks.extend(Hook::listen(&window, "offline", move |_| {
            feed(&weak, |c| c.handle_offline(now()))
        }));
        let weak = Rc::downgrade(shared);
        hooks.extend(Hook::listen(&document, "visibilitychange", move |_| {
            // Back in front: timers may have been throttled while hidden, and the network
            // may be back. Both calls are harmless when nothing is due.
            if browser::is_visible() {
                feed(&weak, |c| {
                    c.handle_timer(now());
                    if browser::is_online() {
                        c.handle_online(now());
                    }
                });
            }
        }));
    }
    let mut inner = shared.inner.borrow_mut();
    inner.hooks = hooks;
    let mut timer = timer;
    let at = now();
    if let Err(e) = timer.arm(at, at) {
        // No setTimeout: the room cannot start; say so on the console (no listener yet).
        let message = format!("sealsync: setTimeout failed: {}", error::describe(&e));
        web_sys::console::error_1(&JsValue::from_str(&message));
    }
    inner.timer = Some(timer);
}

fn on_timer(weak: &Weak<Shared>) {
    let Some(shared) = weak.upgrade() else { return };
    let warnings = {
        let Ok(mut inner) = shared.inner.try_borrow_mut() else {
            return;
        };
        if inner.left {
            return;
        }
        if let Some(timer) = inner.timer.as_mut() {
            timer.fired();
        }
        let t = now();
        if inner.started {
            inner.client.handle_timer(t);
            Vec::new()
        } else {
            inner.started = true;
            inner.client.handle_start(t);
            if !browser::is_online() {
                inner.client.handle_offline(t);
            }
            std::mem::take(&mut inner.early_warnings)
        }
    };
    for (code, message) in warnings {
        shared.warn(&code, &message);
    }
    pump(&shared);
}

/// Feeds one input to the client (unless the room is gone or left), then drains outputs.
fn feed(weak: &Weak<Shared>, input: impl FnOnce(&mut Client)) {
    let Some(shared) = weak.upgrade() else { return };
    {
        let Ok(mut inner) = shared.inner.try_borrow_mut() else {
            return;
        };
        if inner.left || !inner.started {
            return;
        }
        input(&mut inner.client);
    }
    pump(&shared);
}

fn on_socket(weak: &Weak<Shared>, event: SocketEvent) {
    match event {
        SocketEvent::Opened => feed(weak, |c| c.handle_socket_opened(now())),
        SocketEvent::Frame(frame) => {
            if let Some(shared) = weak.upgrade() {
                shared.debug_frame("←", &sealsync_core::describe::relay_frame(&frame));
            }
            feed(weak, |c| c.handle_frame(now(), wall(), &frame));
        }
        SocketEvent::Text(text) => feed(weak, |c| c.handle_text(now(), &text)),
        SocketEvent::Closed(code) => {
            let Some(shared) = weak.upgrade() else { return };
            let mut probe = None;
            if let Ok(mut inner) = shared.inner.try_borrow_mut() {
                if let Some(old) = inner.socket.take() {
                    old.detach();
                    drop_later(old);
                }
                // Still connecting: the socket never opened (the handshake failed).
                let never_opened = matches!(inner.client.status(), Status::Connecting { .. });
                if code == CLOSE_ABNORMAL && never_opened {
                    probe = Some((inner.presence_url.clone(), inner.attempt_token.take()));
                }
            }
            match probe {
                Some((url, token)) => {
                    let weak = weak.clone();
                    spawn_local(async move {
                        let refused = refusal::refusal(&url, token.as_deref()).await;
                        let code = match refused {
                            Some(message) => {
                                if let Some(shared) = weak.upgrade() {
                                    shared.warn(error::CONNECTION_REFUSED, &message);
                                }
                                wire::CLOSE_FORBIDDEN
                            }
                            None => CLOSE_ABNORMAL,
                        };
                        feed(&weak, |c| c.handle_socket_closed(now(), code));
                    });
                }
                None => feed(weak, |c| c.handle_socket_closed(now(), code)),
            }
        }
    }
}

/// Carries out every pending output, one at a time, with no borrow held while listeners
/// run.
pub(crate) fn pump(shared: &Rc<Shared>) {
    loop {
        let output = match shared.inner.try_borrow_mut() {
            Ok(mut inner) => inner.client.poll(),
            // Only when called from inside a borrow, which the callers above never do; the
            // outer pump then drains the queue.
            Err(_) => return,
        };
        let Some(output) = output else { return };
        match output {
            Output::Connect => connect(shared),
            Output::Send(frame) => {
                shared.debug_frame("→", &sealsync_core::describe::client_frame(&frame));
                if let Some(socket) = shared.inner.borrow().socket.as_ref() {
                    // A failed send means the socket is closing; its close event follows
                    // and the client reconnects and resends from the outbox.
                    let _ = socket.send(&frame);
                }
            }
            Output::SendPing => {
                if let Some(socket) = shared.inner.borrow().socket.as_ref() {
                    let _ = socket.send_text("ping");
                }
            }
            Output::Close { code } => {
                let old = {
                    let mut inner = shared.inner.borrow_mut();
                    inner.attempt += 1;
                    inner.socket.take()
                };
                if let Some(old) = old {
                    old.detach();
                    old.close(code);
                    drop_later(old);
                }
            }
            Output::WakeAt(at) => {
                let mut inner = shared.inner.borrow_mut();
                if let Some(timer) = inner.timer.as_mut() {
                    if let Err(e) = timer.arm(now(), at) {
                        drop(inner);
                        shared.warn(
                            error::BROWSER_API,
                            &format!("setTimeout failed: {}", error::describe(&e)),
                        );
                    }
                }
            }
            Output::Event(event) => dispatch(shared, event),
            Output::OutboxChanged => {
                if let Ok(mut inner) = shared.inner.try_borrow_mut() {
                    inner.sync.changed();
                }
                schedule_save(shared);
            }
            Output::Keep(kept) => crate::replica::on_keep(shared, kept),
        }
    }
}

fn connect(shared: &Rc<Shared>) {
    let (url, token, attempt) = {
        let mut inner = shared.inner.borrow_mut();
        inner.attempt += 1;
        (inner.socket_url.clone(), inner.token.clone(), inner.attempt)
    };
    let Some(token) = token else {
        open_socket(shared, &url, None);
        return;
    };
    if let Some(token) = token.as_string() {
        open_socket(shared, &url, Some(&token));
        return;
    }
    // A token function: ask it for a fresh token for this attempt (it may be async).
    let weak = Rc::downgrade(shared);
    spawn_local(async move {
        let fetched = fetch_token(&token).await;
        let Some(shared) = weak.upgrade() else { return };
        {
            let inner = shared.inner.borrow();
            if inner.left || inner.attempt != attempt {
                return; // the client gave up on this attempt meanwhile
            }
        }
        match fetched {
            Ok(token) => open_socket(&shared, &url, Some(&token)),
            Err(message) => {
                shared.warn(error::TOKEN_FAILED, &message);
                if let Ok(mut inner) = shared.inner.try_borrow_mut() {
                    inner.client.handle_socket_closed(now(), CLOSE_ABNORMAL);
                }
            }
        }
        pump(&shared);
    });
}

/// Calls the application's token function and awaits its result.
async fn fetch_token(function: &JsValue) -> Result<String, String> {
    let Some(function) = function.dyn_ref::<Function>() else {
        return Err(String::from(
            "options.token is neither a string nor a function",
        ));
    };
    let mut value = function
        .call0(&JsValue::UNDEFINED)
        .map_err(|e| format!("the token function threw: {}", error::describe(&e)))?;
    if let Some(promise) = value.dyn_ref::<js_sys::Promise>() {
        value = JsFuture::from(promise.clone())
            .await
            .map_err(|e| format!("the token function rejected: {}", error::describe(&e)))?;
    }
    value.as_string().filter(|t| !t.is_empty()).ok_or_else(|| {
        String::from("the token function returned no token (expected a non-empty string)")
    })
}

fn open_socket(shared: &Rc<Shared>, url: &str, token: Option<&str>) {
    let weak = Rc::downgrade(shared);
    match Socket::open(url, token, move |event| on_socket(&weak, event)) {
        Ok(socket) => {
            let old = {
                let mut inner = shared.inner.borrow_mut();
                inner.attempt_token = token.map(str::to_owned);
                inner.socket.replace(socket)
            };
            if let Some(old) = old {
                old.detach();
                drop_later(old);
            }
        }
        Err(e) => {
            shared.warn(
                error::BROWSER_API,
                &format!(
                    "could not open a WebSocket to {url}: {}",
                    error::describe(&e)
                ),
            );
            // As if the connection had failed: the client backs off.
            if let Ok(mut inner) = shared.inner.try_borrow_mut() {
                inner.client.handle_socket_closed(now(), CLOSE_ABNORMAL);
            }
        }
    }
}

fn dispatch(shared: &Rc<Shared>, event: ClientEvent) {
    match event {
        ClientEvent::Changes(changes) => emit_changes(shared, &changes),
        ClientEvent::Status(status) => {
            if status == Status::Live {
                forget_adopted(shared);
            }
            if let Ok(mut inner) = shared.inner.try_borrow_mut() {
                inner.sync.status(&status);
            }
            shared.emit("status", &events::status_to_js(&status));
            announce_sync(shared);
        }
        ClientEvent::Pending(count) => {
            shared.emit(
                "pending",
                &JsValue::from(u32::try_from(count).unwrap_or(u32::MAX)),
            );
            announce_sync(shared);
        }
        ClientEvent::Presence(count) => {
            if let Ok(mut inner) = shared.inner.try_borrow_mut() {
                inner.presence = Some(count);
            }
            shared.emit("presence", &JsValue::from(count));
        }
        ClientEvent::Notify(json) => shared.emit("notify", &events::notify_to_js(&json)),
        ClientEvent::Ephemeral { body } => {
            shared.emit("ephemeral", &events::ephemeral_to_js(&body))
        }
        ClientEvent::Warning { code, message } => shared.warn(&code, &message),
        ClientEvent::Rejected { code, message, ops } => {
            if shared.listeners.borrow().of("rejected").is_empty() {
                let n = ops.len();
                let s = if n == 1 { "" } else { "s" };
                web_sys::console::warn_1(&JsValue::from_str(&format!(
                    "sealsync: {code}: {message} ({n} change{s} refused and rolled back)"
                )));
            } else {
                shared.emit("rejected", &events::rejected_to_js(&code, &message, &ops));
            }
        }
    }
}

fn emit_changes(shared: &Rc<Shared>, changes: &[Change]) {
    if let Ok(mut inner) = shared.inner.try_borrow_mut() {
        inner.saw_changes(changes);
    }
    for change in changes {
        shared.emit("change", &events::change_to_js(change));
    }
}

/// The `sync` state now (`room.sync`).
pub(crate) fn sync_state(inner: &Inner) -> crate::sync::SyncState {
    inner
        .sync
        .state(inner.client.pending_changes(), inner.store.is_some())
}

/// Emits `sync` when what `room.sync` returns changed since the last one.
fn announce_sync(shared: &Rc<Shared>) {
    let news = {
        let Ok(mut inner) = shared.inner.try_borrow_mut() else {
            return;
        };
        let state = sync_state(&inner);
        inner.sync.news(state)
    };
    if let Some(state) = news {
        shared.emit("sync", &events::to_js(&state));
    }
}

/// Deletes the records of adopted sessions (their envelopes are in this session's outbox,
/// which is saved in the same transaction).
fn forget_adopted(shared: &Rc<Shared>) {
    let job = {
        let Ok(mut inner) = shared.inner.try_borrow_mut() else {
            return;
        };
        if inner.adopted.is_empty() {
            return;
        }
        let adopted = std::mem::take(&mut inner.adopted);
        let generation = inner.sync.generation();
        inner.store.clone().map(|store| {
            (
                store,
                inner.session.clone(),
                inner.client.outbox_envelopes(),
                adopted,
                generation,
            )
        })
    };
    let Some((store, session, envelopes, adopted, generation)) = job else {
        return;
    };
    let weak = Rc::downgrade(shared);
    spawn_local(async move {
        let outcome = store.save(&session, &envelopes, &adopted).await;
        let Some(shared) = weak.upgrade() else { return };
        match outcome {
            Ok(()) => {
                if let Ok(mut inner) = shared.inner.try_borrow_mut() {
                    inner.sync.saved(generation);
                }
                announce_sync(&shared);
            }
            Err(e) => shared.warn(error::STORAGE_FAILED, &error::describe(&e)),
        }
    });
}

/// Persists the outbox once per burst of changes: the save reads the outbox when it runs,
/// so it always writes the newest state, and saves run in the order they were scheduled.
fn schedule_save(shared: &Rc<Shared>) {
    {
        let mut inner = shared.inner.borrow_mut();
        if inner.store.is_none() || inner.save_scheduled {
            return;
        }
        inner.save_scheduled = true;
    }
    let weak = Rc::downgrade(shared);
    spawn_local(async move {
        let Some(shared) = weak.upgrade() else { return };
        let job = {
            let mut inner = shared.inner.borrow_mut();
            inner.save_scheduled = false;
            let generation = inner.sync.generation();
            inner.store.clone().map(|store| {
                (
                    store,
                    inner.session.clone(),
                    inner.client.outbox_envelopes(),
                    generation,
                )
            })
        };
        if let Some((store, session, envelopes, generation)) = job {
            match store.save(&session, &envelopes, &[]).await {
                Ok(()) => {
                    if let Ok(mut inner) = shared.inner.try_borrow_mut() {
                        inner.sync.saved(generation);
                    }
                    announce_sync(&shared);
                }
                Err(e) => shared.warn(error::STORAGE_FAILED, &error::describe(&e)),
            }
        }
    });
}

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

/// `room.get(collection)`: the visible entities as a frozen array of frozen plain objects.
/// The same array comes back until a change touches the collection, and an entity's
/// object is rebuilt only when a change touched that entity.
///
/// # Errors
/// `ROOM_CLOSED`.
pub(crate) fn collection(shared: &Shared, collection: &str) -> Result<JsValue, JsValue> {
    let mut inner = shared.inner_mut()?;
    if let Some(array) = inner.views.get(collection).and_then(|v| v.array.clone()) {
        return Ok(array);
    }
    let visible = inner.client.replica().get(collection);
    let mut view = inner.views.remove(collection).unwrap_or_default();
    let array = js_sys::Array::new_with_length(u32::try_from(visible.len()).unwrap_or(u32::MAX));
    let mut entities = HashMap::with_capacity(visible.len());
    for (i, (id, object)) in visible.into_iter().enumerate() {
        let reused = if view.changed.contains(&id) {
            None
        } else {
            view.entities.remove(&id)
        };
        let entity = reused.unwrap_or_else(|| events::frozen(&object));
        array.set(u32::try_from(i).unwrap_or(u32::MAX), entity.clone());
        entities.insert(id, entity);
    }
    let array: JsValue = js_sys::Object::freeze(&array).into();
    inner.views.insert(
        collection.to_owned(),
        View {
            array: Some(array.clone()),
            entities,
            changed: HashSet::new(),
        },
    );
    Ok(array)
}

/// Leaves: staged changes are sealed (and sent while the socket is still open), the client
/// closes the socket and reports `closed`; then the timer, hooks and socket are released,
/// the outbox saved a last time and the session lock released (so a later tab may adopt
/// what is still unsent).
pub(crate) async fn leave(shared: &Rc<Shared>) {
    {
        let Ok(mut inner) = shared.inner.try_borrow_mut() else {
            return;
        };
        if inner.left {
            return;
        }
        let t = now();
        inner.client.handle_flush(t);
        inner.client.handle_leave(t);
    }
    pump(shared);
    // The replica first: its lock goes to another tab of the room once this one is done.
    crate::replica::finish(shared).await;
    let (store, lock, session, envelopes, leftovers) = {
        let mut inner = shared.inner.borrow_mut();
        inner.left = true;
        let leftovers = (
            inner.socket.take(),
            inner.timer.take(),
            std::mem::take(&mut inner.hooks),
        );
        if let Some(socket) = leftovers.0.as_ref() {
            socket.detach();
            socket.close(1000);
        }
        (
            inner.store.take(),
            inner.lock.take(),
            inner.session.clone(),
            inner.client.outbox_envelopes(),
            leftovers,
        )
    };
    drop_later(leftovers);
    if let Some(store) = store {
        if let Err(e) = store.save(&session, &envelopes, &[]).await {
            shared.warn(error::STORAGE_FAILED, &error::describe(&e));
        }
        store.close();
    }
    drop(lock);
}
