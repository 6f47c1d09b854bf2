//! Outbox persistence, safe with several tabs of the same room: IndexedDB by default, or
//! an application's storage object (`Room.join({ storage })`, e.g. `fileStorage` of
//! `sealsync/node`), which gets the same calls (see [`Store::custom`]).
//!
//! Database `sealsync` (version 1), object store `outbox`, one record per **session**:
//! `{ room, session, savedAt, envelopes: Uint8Array[] }` under the key `[room, session]`.
//! Only sealed envelopes (ciphertext) are stored, never plaintext or keys.
//!
//! Why per session and not one record per room: two tabs of the same room are two sessions
//! with two outboxes; one shared record would let each tab overwrite the other's unsent
//! changes. Why one store and not a store per room: creating a store needs a schema upgrade,
//! which is blocked while any other tab holds the database open.
//!
//! Ownership: a live session holds the Web Lock `sealsync:outbox:<room>:<session>` for as
//! long as its room is joined (the browser releases it when the tab closes or reloads). On
//! join, every record of the room whose lock nobody holds belongs to a closed tab: the new
//! session adopts its envelopes (the core re-applies and re-sends them; the relay
//! de-duplicates by session and counter) and deletes the record in the same transaction
//! that saves its own. A record whose lock is held then is adopted when its tab ends
//! (`crate::persist::watch`), and a session that is live again after a disconnection
//! looks for records of tabs that closed meanwhile. Without Web Locks every other record
//! counts as abandoned, which is still safe (re-sending is idempotent) but may re-send a
//! live tab's changes.

use js_sys::{Array, Promise, Reflect, Uint8Array};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    IdbDatabase, IdbFactory, IdbKeyRange, IdbObjectStoreParameters, IdbOpenDbRequest, IdbRequest,
    IdbTransaction, IdbTransactionMode,
};

use sealsync_core::client::Kept;

use crate::error;

/// The database's name.
pub(crate) const DB_NAME: &str = "sealsync";
/// The object store holding outboxes.
pub(crate) const OUTBOX_STORE: &str = "outbox";
/// The object store holding each room's local snapshot: `{ room, seq, snapshot }`.
pub(crate) const REPLICA_STORE: &str = "replica";
/// The object store holding the events kept after a room's local snapshot:
/// `{ room, seq, relayTime, envelope }` under `[room, seq]`.
pub(crate) const HISTORY_STORE: &str = "history";
/// Version 2 added `replica` and `history`; opening it upgrades a version-1 database in
/// place (the outboxes stay).
const DB_VERSION: u32 = 2;

/// The local history of a room as kept: the snapshot (`seq`, envelope) and the events after
/// it (`seq`, relay time, envelope).
pub(crate) type History = (Option<(u64, Vec<u8>)>, Vec<(u64, u64, Vec<u8>)>);

/// One session's persisted outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    /// The session id, lowercase hex.
    pub(crate) session: String,
    /// Sealed envelopes, oldest first.
    pub(crate) envelopes: Vec<Vec<u8>>,
}

/// The open database, scoped to one room.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    backend: Backend,
    room: String,
}

#[derive(Debug, Clone)]
enum Backend {
    Idb(IdbDatabase),
    /// The application's storage object, and the promise of its last `save` (settled when
    /// that save settled): saves of one room run one at a time, in the order they were
    /// asked for, as IndexedDB's transactions do.
    Custom {
        adapter: JsValue,
        tail: std::rc::Rc<std::cell::RefCell<Promise>>,
    },
}

/// The Web Lock a live session holds.
pub(crate) fn lock_name(room: &str, session: &str) -> String {
    format!("{}{session}", lock_prefix(room))
}

fn lock_prefix(room: &str) -> String {
    format!("sealsync:outbox:{room}:")
}

impl Store {
    /// Opens (creating on first use) the `sealsync` database for `room`.
    ///
    /// # Errors
    /// `STORAGE_FAILED` when there is no IndexedDB or it refused to open.
    /// An application's storage object for `room`: `load(room)` resolves with
    /// `[{ session, envelopes: Uint8Array[] }]`, `save(room, session, envelopes, forget)`
    /// stores (or, when `envelopes` is empty, deletes) one session's record and deletes the
    /// records of the `forget` sessions, and the optional `liveSessions(room)` resolves with
    /// the sessions whose owner is alive (or `null`); without it, Web Locks answer as for
    /// IndexedDB. `lib.rs` checked that `load` and `save` are functions.
    pub(crate) fn custom(room: &str, adapter: JsValue) -> Self {
        Self {
            backend: Backend::Custom {
                adapter,
                tail: std::rc::Rc::new(std::cell::RefCell::new(Promise::resolve(
                    &JsValue::UNDEFINED,
                ))),
            },
            room: room.to_owned(),
        }
    }

    pub(crate) async fn open(room: &str) -> Result<Self, JsValue> {
        let factory = Reflect::get(&js_sys::global(), &JsValue::from_str("indexedDB"))
            .ok()
            .and_then(|f| f.dyn_into::<IdbFactory>().ok())
            .ok_or_else(|| error::coded(error::STORAGE_FAILED, "this browser has no IndexedDB"))?;
        let request: IdbOpenDbRequest = factory
            .open_with_u32(DB_NAME, DB_VERSION)
            .map_err(|e| error::from_js(error::STORAGE_FAILED, "could not open IndexedDB", &e))?;
        let upgrade = Closure::<dyn FnMut(web_sys::IdbVersionChangeEvent)>::new(
            move |e: web_sys::IdbVersionChangeEvent| {
                let db = e
                    .target()
                    .and_then(|t| t.dyn_into::<IdbOpenDbRequest>().ok())
                    .and_then(|r| r.result().ok())
                    .and_then(|r| r.dyn_into::<IdbDatabase>().ok());
                if let Some(db) = db {
                    // A failure aborts the upgrade; `open` then rejects and reports it.
                    let create = |name: &str, key_path: &JsValue| {
                        if !db.object_store_names().contains(name) {
                            let params = IdbObjectStoreParameters::new();
                            params.set_key_path(key_path);
                            let _ = db.create_object_store_with_optional_parameters(name, &params);
                        }
                    };
                    create(
                        OUTBOX_STORE,
                        &Array::of2(&"room".into(), &"session".into()).into(),
                    );
                    create(REPLICA_STORE, &"room".into());
                    create(
                        HISTORY_STORE,
                        &Array::of2(&"room".into(), &"seq".into()).into(),
                    );
                }
            },
        );
        request.set_onupgradeneeded(Some(upgrade.as_ref().unchecked_ref()));
        let result = request_done(&request).await;
        request.set_onupgradeneeded(None);
        drop(upgrade);
        let db: IdbDatabase = result
            .map_err(|e| error::from_js(error::STORAGE_FAILED, "could not open IndexedDB", &e))?
            .dyn_into()
            .map_err(|_| error::coded(error::STORAGE_FAILED, "IndexedDB returned no database"))?;
        // A later SDK version that upgrades the schema must not be blocked by this tab:
        // close on request (later saves then fail with STORAGE_FAILED warnings).
        let closing = db.clone();
        let on_version_change = Closure::once_into_js(move |_: web_sys::Event| closing.close());
        db.set_onversionchange(Some(on_version_change.unchecked_ref()));
        Ok(Self {
            backend: Backend::Idb(db),
            room: room.to_owned(),
        })
    }

    /// Every persisted outbox of this room.
    ///
    /// # Errors
    /// `STORAGE_FAILED` when the read fails.
    pub(crate) async fn load(&self) -> Result<Vec<Record>, JsValue> {
        let db = match &self.backend {
            Backend::Idb(db) => db,
            Backend::Custom { adapter, .. } => {
                let rows = call(adapter, "load", &[JsValue::from_str(&self.room)]).await?;
                let rows: Array = rows.dyn_into().map_err(|_| {
                    error::coded(
                        error::STORAGE_FAILED,
                        "storage.load must resolve with an array of { session, envelopes }",
                    )
                })?;
                return Ok(rows.iter().filter_map(|row| parse_record(&row)).collect());
            }
        };
        let tx = transaction(db, IdbTransactionMode::Readonly)?;
        let store = tx
            .object_store(OUTBOX_STORE)
            .map_err(storage("open the outbox store"))?;
        let request = store
            .get_all_with_key(&self.room_range()?.into())
            .map_err(storage("read the outbox"))?;
        let rows = request_done(&request)
            .await
            .map_err(storage("read the outbox"))?;
        let rows: Array = rows.dyn_into().unwrap_or_default();
        Ok(rows.iter().filter_map(|row| parse_record(&row)).collect())
    }

    /// Saves `session`'s outbox (deleting its record when `envelopes` is empty), and deletes
    /// the records of `adopted` sessions, in one transaction; resolves once committed.
    ///
    /// # Errors
    /// `STORAGE_FAILED` when the write fails (quota, or the database was closed).
    pub(crate) async fn save(
        &self,
        session: &str,
        envelopes: &[Vec<u8>],
        adopted: &[String],
    ) -> Result<(), JsValue> {
        let db = match &self.backend {
            Backend::Idb(db) => db,
            Backend::Custom { adapter, tail } => {
                let (done, resolve, _) = deferred()?;
                let previous = tail.replace(done);
                // The previous save's outcome was reported to its own caller.
                let _ = JsFuture::from(previous).await;
                let list: Array = envelopes
                    .iter()
                    .map(|e| Uint8Array::from(e.as_slice()))
                    .collect();
                let forget: Array = adopted.iter().map(|s| JsValue::from_str(s)).collect();
                let args = [
                    JsValue::from_str(&self.room),
                    JsValue::from_str(session),
                    list.into(),
                    forget.into(),
                ];
                let outcome = call(adapter, "save", &args).await.map(|_| ());
                let _ = resolve.call0(&JsValue::UNDEFINED);
                return outcome;
            }
        };
        let tx = transaction(db, IdbTransactionMode::Readwrite)?;
        let store = tx
            .object_store(OUTBOX_STORE)
            .map_err(storage("open the outbox store"))?;
        if envelopes.is_empty() {
            store
                .delete(&self.key(session))
                .map_err(storage("delete the outbox"))?;
        } else {
            let record = js_sys::Object::new();
            let list: Array = envelopes
                .iter()
                .map(|e| Uint8Array::from(e.as_slice()))
                .collect();
            set(&record, "room", &JsValue::from_str(&self.room));
            set(&record, "session", &JsValue::from_str(session));
            set(&record, "savedAt", &JsValue::from_f64(js_sys::Date::now()));
            set(&record, "envelopes", &list);
            store.put(&record).map_err(storage("write the outbox"))?;
        }
        for stale in adopted {
            store
                .delete(&self.key(stale))
                .map_err(storage("delete an adopted outbox"))?;
        }
        transaction_done(&tx)
            .await
            .map_err(storage("commit the outbox"))
    }

    /// Sessions of this room whose outbox is owned by a live tab, or `None` when the
    /// browser has no Web Locks.
    ///
    /// # Errors
    /// `STORAGE_FAILED` when querying the locks failed.
    pub(crate) async fn live_sessions(&self) -> Result<Option<Vec<String>>, JsValue> {
        if let Backend::Custom { adapter, .. } = &self.backend {
            if Reflect::get(adapter, &JsValue::from_str("liveSessions"))
                .is_ok_and(|f| f.is_function())
            {
                let names = call(adapter, "liveSessions", &[JsValue::from_str(&self.room)]).await?;
                if names.is_null() || names.is_undefined() {
                    return Ok(None);
                }
                let names: Array = names.dyn_into().map_err(|_| {
                    error::coded(
                        error::STORAGE_FAILED,
                        "storage.liveSessions must resolve with an array of session ids or null",
                    )
                })?;
                return Ok(Some(names.iter().filter_map(|n| n.as_string()).collect()));
            }
        }
        let prefix = lock_prefix(&self.room);
        let names = JsFuture::from(lock_names(&prefix))
            .await
            .map_err(storage("query Web Locks"))?;
        if names.is_undefined() {
            return Ok(None);
        }
        let names: Array = names.dyn_into().unwrap_or_default();
        Ok(Some(
            names
                .iter()
                .filter_map(|n| n.as_string())
                .filter_map(|n| n.strip_prefix(&prefix).map(str::to_owned))
                .collect(),
        ))
    }

    /// Whether this store keeps a local history (IndexedDB does; an application's storage
    /// keeps only outboxes).
    pub(crate) const fn keeps_history(&self) -> bool {
        matches!(self.backend, Backend::Idb(_))
    }

    /// The room's local history: its snapshot and the events kept after it.
    ///
    /// # Errors
    /// `STORAGE_FAILED` when the read fails.
    pub(crate) async fn load_history(&self) -> Result<History, JsValue> {
        let Backend::Idb(db) = &self.backend else {
            return Ok((None, Vec::new()));
        };
        let tx = db
            .transaction_with_str_sequence(&Array::of2(
                &REPLICA_STORE.into(),
                &HISTORY_STORE.into(),
            ))
            .map_err(storage("start a transaction"))?;
        let replica = tx
            .object_store(REPLICA_STORE)
            .and_then(|s| s.get(&JsValue::from_str(&self.room)))
            .map_err(storage("read the local snapshot"))?;
        let events = tx
            .object_store(HISTORY_STORE)
            .and_then(|s| s.get_all_with_key(&self.history_range()?.into()))
            .map_err(storage("read the local history"))?;
        let replica = request_done(&replica)
            .await
            .map_err(storage("read the local snapshot"))?;
        let events = request_done(&events)
            .await
            .map_err(storage("read the local history"))?;
        let snapshot = (!replica.is_undefined())
            .then(|| Some((number(&replica, "seq")?, bytes(&replica, "snapshot")?)))
            .flatten();
        let events: Array = events.dyn_into().unwrap_or_default();
        let events = events
            .iter()
            .filter_map(|row| {
                Some((
                    number(&row, "seq")?,
                    number(&row, "relayTime")?,
                    bytes(&row, "envelope")?,
                ))
            })
            .collect();
        Ok((snapshot, events))
    }

    /// Adds kept events and snapshots to the room's local history, in order, in one
    /// transaction: an event is added; a snapshot replaces the whole history (the room's
    /// snapshot, and every kept event is deleted).
    ///
    /// # Errors
    /// `STORAGE_FAILED` when the write fails (quota, or the database was closed).
    pub(crate) async fn keep(&self, kept: &[Kept]) -> Result<(), JsValue> {
        let Backend::Idb(db) = &self.backend else {
            return Ok(());
        };
        let tx = db
            .transaction_with_str_sequence_and_mode(
                &Array::of2(&REPLICA_STORE.into(), &HISTORY_STORE.into()),
                IdbTransactionMode::Readwrite,
            )
            .map_err(storage("start a transaction"))?;
        let replica = tx
            .object_store(REPLICA_STORE)
            .map_err(storage("open the local snapshot"))?;
        let history = tx
            .object_store(HISTORY_STORE)
            .map_err(storage("open the local history"))?;
        let room = JsValue::from_str(&self.room);
        for item in kept {
            let record = js_sys::Object::new();
            set(&record, "room", &room);
            match item {
                Kept::Event {
                    seq,
                    relay_time,
                    envelope,
                } => {
                    set(&record, "seq", &seq_value(*seq));
                    set(&record, "relayTime", &seq_value(*relay_time));
                    set(&record, "envelope", &Uint8Array::from(envelope.as_slice()));
                    history
                        .put(&record)
                        .map_err(storage("write the local history"))?;
                }
                Kept::Snapshot { seq, envelope } => {
                    set(&record, "seq", &seq_value(*seq));
                    set(&record, "snapshot", &Uint8Array::from(envelope.as_slice()));
                    replica
                        .put(&record)
                        .map_err(storage("write the local snapshot"))?;
                    history
                        .delete(&self.history_range()?.into())
                        .map_err(storage("trim the local history"))?;
                }
            }
        }
        transaction_done(&tx)
            .await
            .map_err(storage("commit the local history"))
    }

    /// Deletes everything kept for the room: its outboxes, local snapshot and history.
    ///
    /// # Errors
    /// `STORAGE_FAILED` when the write fails.
    pub(crate) async fn forget(&self) -> Result<(), JsValue> {
        let db = match &self.backend {
            Backend::Idb(db) => db,
            Backend::Custom { .. } => return Ok(()),
        };
        let names = Array::of3(
            &OUTBOX_STORE.into(),
            &REPLICA_STORE.into(),
            &HISTORY_STORE.into(),
        );
        let tx = db
            .transaction_with_str_sequence_and_mode(&names, IdbTransactionMode::Readwrite)
            .map_err(storage("start a transaction"))?;
        let delete = |name: &str, key: &JsValue| {
            tx.object_store(name)
                .and_then(|s| s.delete(key))
                .map_err(storage("delete the room's data"))
        };
        delete(OUTBOX_STORE, &self.room_range()?.into())?;
        delete(REPLICA_STORE, &JsValue::from_str(&self.room))?;
        delete(HISTORY_STORE, &self.history_range()?.into())?;
        transaction_done(&tx)
            .await
            .map_err(storage("delete the room's data"))
    }

    /// `[room, 0] ..= [room, ∞]`: every kept event of the room.
    fn history_range(&self) -> Result<IdbKeyRange, JsValue> {
        let room = JsValue::from_str(&self.room);
        let lower = Array::of2(&room, &JsValue::from_f64(0.0));
        let upper = Array::of2(&room, &JsValue::from_f64(f64::INFINITY));
        IdbKeyRange::bound(&lower, &upper).map_err(storage("build a key range"))
    }

    /// Closes the database connection (an application's storage has nothing to close).
    pub(crate) fn close(&self) {
        if let Backend::Idb(db) = &self.backend {
            db.close();
        }
    }

    fn key(&self, session: &str) -> JsValue {
        Array::of2(&JsValue::from_str(&self.room), &JsValue::from_str(session)).into()
    }

    /// `[room] ..= [room, []]`: every `[room, session]` key (arrays sort after strings).
    fn room_range(&self) -> Result<IdbKeyRange, JsValue> {
        let lower = Array::of1(&JsValue::from_str(&self.room));
        let upper = Array::of2(&JsValue::from_str(&self.room), &Array::new());
        IdbKeyRange::bound(&lower, &upper).map_err(storage("build a key range"))
    }
}

/// A sequence number or relay time as a JS number (both stay below 2^53).
#[allow(
    clippy::cast_precision_loss,
    reason = "sequence numbers are at most 2^53 - 1 (wire::MAX_SEQ) and times are milliseconds"
)]
fn seq_value(n: u64) -> JsValue {
    JsValue::from_f64(n as f64)
}

fn number(row: &JsValue, key: &str) -> Option<u64> {
    let n = Reflect::get(row, &JsValue::from_str(key)).ok()?.as_f64()?;
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "checked: a finite whole number in 0..2^53"
    )]
    let whole = (n.is_finite() && n >= 0.0 && n.fract() == 0.0 && n < 9_007_199_254_740_992.0)
        .then_some(n as u64);
    whole
}

fn bytes(row: &JsValue, key: &str) -> Option<Vec<u8>> {
    Reflect::get(row, &JsValue::from_str(key))
        .ok()?
        .dyn_into::<Uint8Array>()
        .ok()
        .map(|b| b.to_vec())
}

fn transaction(db: &IdbDatabase, mode: IdbTransactionMode) -> Result<IdbTransaction, JsValue> {
    db.transaction_with_str_and_mode(OUTBOX_STORE, mode)
        .map_err(storage("start a transaction"))
}

/// Calls `adapter[method](...args)` and awaits what it returns (a promise or a value).
async fn call(adapter: &JsValue, method: &str, args: &[JsValue]) -> Result<JsValue, JsValue> {
    let failed = |e: &JsValue| {
        error::from_js(
            error::STORAGE_FAILED,
            &format!("storage.{method} failed"),
            e,
        )
    };
    let function: js_sys::Function = Reflect::get(adapter, &JsValue::from_str(method))
        .ok()
        .and_then(|f| f.dyn_into().ok())
        .ok_or_else(|| {
            error::coded(
                error::STORAGE_FAILED,
                &format!("storage.{method} is not a function"),
            )
        })?;
    let list: Array = args.iter().collect();
    let value = function.apply(adapter, &list).map_err(|e| failed(&e))?;
    JsFuture::from(Promise::resolve(&value))
        .await
        .map_err(|e| failed(&e))
}

/// Holds the session's Web Lock until dropped.
#[derive(Debug)]
pub(crate) struct SessionLock {
    release: Option<js_sys::Function>,
}

impl SessionLock {
    /// Requests the lock for `session` and waits until it is granted (at once: the name is
    /// new). Without Web Locks this holds nothing.
    pub(crate) async fn acquire(room: &str, session: &str) -> Self {
        Self::acquire_named(&lock_name(room, session)).await
    }

    /// Requests the lock `name` and waits until it is granted (once every earlier holder
    /// released it). Without Web Locks this holds nothing, at once.
    pub(crate) async fn acquire_named(name: &str) -> Self {
        let handle = hold_lock(name);
        if handle.is_undefined() {
            return Self { release: None };
        }
        if let Ok(granted) = Reflect::get(&handle, &JsValue::from_str("granted")) {
            if let Ok(p) = granted.dyn_into::<Promise>() {
                let _ = JsFuture::from(p).await;
            }
        }
        let release = Reflect::get(&handle, &JsValue::from_str("release"))
            .ok()
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok());
        Self { release }
    }

    /// Whether a Web Lock is held (false without Web Locks: nothing tells when another
    /// session ends).
    pub(crate) const fn is_held(&self) -> bool {
        self.release.is_some()
    }
}

impl Drop for SessionLock {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            let _ = release.call0(&JsValue::UNDEFINED);
        }
    }
}

#[wasm_bindgen(module = "/js/session-lock.js")]
extern "C" {
    #[wasm_bindgen(js_name = holdLock)]
    fn hold_lock(name: &str) -> JsValue;
    #[wasm_bindgen(js_name = lockNames)]
    fn lock_names(prefix: &str) -> Promise;
}

fn storage(what: &'static str) -> impl Fn(JsValue) -> JsValue {
    move |e| {
        error::from_js(
            error::STORAGE_FAILED,
            &format!("IndexedDB: could not {what}"),
            &e,
        )
    }
}

fn set(target: &js_sys::Object, key: &str, value: &JsValue) {
    // Defining a property on a fresh plain object cannot fail.
    let _ = Reflect::set(target, &JsValue::from_str(key), value);
}

fn parse_record(row: &JsValue) -> Option<Record> {
    let session = Reflect::get(row, &JsValue::from_str("session"))
        .ok()?
        .as_string()?;
    let list: Array = Reflect::get(row, &JsValue::from_str("envelopes"))
        .ok()?
        .dyn_into()
        .ok()?;
    let envelopes = list
        .iter()
        .filter_map(|e| e.dyn_into::<Uint8Array>().ok())
        .map(|e| e.to_vec())
        .collect();
    Some(Record { session, envelopes })
}

/// A promise with its resolve and reject functions taken out.
fn deferred() -> Result<(Promise, js_sys::Function, js_sys::Function), JsValue> {
    let mut parts = None;
    let promise = Promise::new(&mut |resolve, reject| parts = Some((resolve, reject)));
    let (resolve, reject) =
        parts.ok_or_else(|| error::coded(error::BROWSER_API, "Promise executor did not run"))?;
    Ok((promise, resolve, reject))
}

/// An event handler that settles a [`deferred`] promise with `settle` (its resolve or
/// reject function), ignoring the event.
fn settle_on(settle: js_sys::Function) -> Closure<dyn FnMut(web_sys::Event)> {
    Closure::new(move |_: web_sys::Event| {
        let _ = settle.call0(&JsValue::UNDEFINED);
    })
}

/// Resolves with `request.result` on `success`, rejects with `request.error` on `error`.
/// The handlers live only as long as this future (nothing leaks).
async fn request_done(request: &IdbRequest) -> Result<JsValue, JsValue> {
    let (promise, resolve, reject) = deferred()?;
    let on_success = settle_on(resolve);
    let on_error = settle_on(reject);
    request.set_onsuccess(Some(on_success.as_ref().unchecked_ref()));
    request.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    let outcome = JsFuture::from(promise).await;
    request.set_onsuccess(None);
    request.set_onerror(None);
    match outcome {
        Ok(_) => request.result(),
        Err(_) => Err(request
            .error()
            .ok()
            .flatten()
            .map_or_else(|| JsValue::from_str("request failed"), JsValue::from)),
    }
}

/// Resolves when `tx` commits; rejects when it errors or aborts. Call it in the same task
/// that queued the transaction's requests (before any `await`), so no event is missed.
async fn transaction_done(tx: &IdbTransaction) -> Result<(), JsValue> {
    let (promise, resolve, reject) = deferred()?;
    let on_complete = settle_on(resolve);
    let on_fail = settle_on(reject);
    tx.set_oncomplete(Some(on_complete.as_ref().unchecked_ref()));
    tx.set_onerror(Some(on_fail.as_ref().unchecked_ref()));
    tx.set_onabort(Some(on_fail.as_ref().unchecked_ref()));
    let outcome = JsFuture::from(promise).await;
    tx.set_oncomplete(None);
    tx.set_onerror(None);
    tx.set_onabort(None);
    outcome.map(|_| ()).map_err(|_| {
        tx.error()
            .map_or_else(|| JsValue::from_str("transaction aborted"), JsValue::from)
    })
}
