//! # sealsync (browser SDK)
//!
//! End-to-end-encrypted real-time sync for web apps. This crate is the thin wasm-bindgen
//! shell around [`sealsync_core`]: it owns the WebSocket, the one timer, IndexedDB and the
//! JS listeners, feeds every browser event to the core's sans-IO `Client` and carries out
//! what the client asks for. No protocol rule lives here.
//!
//! ```js
//! import init, { Room } from "sealsync";
//! await init();
//! const room = await Room.join({ url: "ws://127.0.0.1:8787", room: "team-42", password: "…" });
//! room.on("change", (e) => render(room.get(e.collection)));
//! const id = room.create("tasks", { title: "Ship" });
//! room.transact(() => { room.update("tasks", id, { done: true }); room.create("log", { of: id }); });
//! ```
//!
//! The TypeScript definitions are written once, in `ts.rs`.
#![deny(unsafe_code)]

#[cfg(feature = "bench")]
pub mod bench;
mod browser;
mod connect;
mod driver;
mod env;
mod error;
mod events;
mod kdf;
mod local;
mod nfc;
mod ops;
mod persist;
mod refusal;
mod rekey;
mod replica;
mod share;
mod shared;
mod socket;
mod store;
mod sync;
mod timer;
mod ts;

use std::rc::Rc;
use zeroize::Zeroizing;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use js_sys::{Function, Reflect};
use sealsync_core::client::{Client, ClientConfig};
use sealsync_core::kdf::{RoomKey, RoomKeys};
use sealsync_core::merge::Op;
use sealsync_core::{DeviceId, RoomId, SessionId};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::env::{now, BrowserEntropy};
use crate::shared::{Inner, Shared};

/// A joined room: the replicated state, the connection to the relay and the listeners.
///
/// Create one with `Room.join`; call `leave()` when done. Every method after `leave()`
/// throws an `Error` with code `ROOM_CLOSED`.
#[wasm_bindgen(skip_typescript)]
#[derive(Debug)]
pub struct Room {
    shared: Rc<Shared>,
}

/// What `Room.join` was given, checked.
struct JoinOptions {
    url: String,
    room: String,
    password: Option<String>,
    secret: Option<String>,
    /// The ephemeral channel (`broadcast`); stored changes belong to the whole room.
    channel: Option<String>,
    persist: bool,
    /// `storage`: the application's outbox storage object, instead of IndexedDB.
    storage: Option<JsValue>,
    /// `requestPersistence`: ask the browser not to evict this site's storage.
    request_persistence: bool,
    token: Option<JsValue>,
    on_progress: Option<Function>,
    /// `onWarning`: a `warning` listener registered before anything can be reported.
    on_warning: Option<Function>,
    /// `kdfWorker`: a function returning the `Worker` that derives a password's key.
    kdf_worker: Option<JsValue>,
    /// `debug`: log every frame (without contents) with `console.debug`.
    debug: bool,
    /// `members` (default `true`): take part in who is online.
    members: bool,
    /// `profile`: this member's profile in who is online.
    profile: Option<serde_json::Value>,
}

impl JoinOptions {
    fn parse(value: &JsValue) -> Result<Self, JsValue> {
        if !value.is_object() {
            return Err(invalid("Room.join takes an options object: { url, room, password } or { url, room, secret }"));
        }
        let get =
            |key: &str| Reflect::get(value, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED);
        let string = |key: &str, required: bool| -> Result<Option<String>, JsValue> {
            let v = get(key);
            if v.is_undefined() || v.is_null() {
                return if required {
                    Err(invalid(&format!("options.{key} is required")))
                } else {
                    Ok(None)
                };
            }
            v.as_string()
                .map(Some)
                .ok_or_else(|| invalid(&format!("options.{key} must be a string")))
        };
        let url = string("url", true)?.unwrap_or_default();
        let room = string("room", true)?.unwrap_or_default();
        let password = string("password", false)?;
        let secret = string("secret", false)?;
        let channel = string("channel", false)?;
        if password.is_none() && secret.is_none() {
            return Err(invalid("options.password or options.secret is required"));
        }
        if password.is_some() && secret.is_some() {
            return Err(invalid(
                "options.password and options.secret are exclusive: pass one of them",
            ));
        }
        if !(url.starts_with("ws://") || url.starts_with("wss://")) {
            return Err(invalid("options.url must start with ws:// or wss://"));
        }
        // A boolean option: `default` when absent (undefined or null).
        let flag = |key: &str, default: bool| -> Result<bool, JsValue> {
            let v = get(key);
            if v.is_undefined() || v.is_null() {
                return Ok(default);
            }
            v.as_bool()
                .ok_or_else(|| invalid(&format!("options.{key} must be a boolean")))
        };
        let persist = flag("persist", true)?;
        let storage = get("storage");
        let storage = if storage.is_undefined() || storage.is_null() {
            None
        } else {
            let has = |name: &str| {
                Reflect::get(&storage, &JsValue::from_str(name)).is_ok_and(|f| f.is_function())
            };
            if !storage.is_object() || !has("load") || !has("save") {
                return Err(invalid(
                    "options.storage must be an object with load(room) and save(room, session, envelopes, forget) methods",
                ));
            }
            if !persist {
                return Err(invalid(
                    "options.storage and persist: false are exclusive: pass one of them",
                ));
            }
            Some(storage)
        };
        let debug = flag("debug", false)?;
        let members = flag("members", true)?;
        let profile = get("profile");
        let profile = if profile.is_undefined() {
            None
        } else {
            Some(ops::json(&profile, "options.profile")?)
        };
        let request_persistence = flag("requestPersistence", false)?;
        let token = get("token");
        let token = if token.is_undefined() || token.is_null() {
            None
        } else if token.as_string().is_some_and(|t| !t.is_empty()) || token.is_function() {
            Some(token)
        } else {
            return Err(invalid(
                "options.token must be a non-empty string or a function returning one",
            ));
        };
        let progress = get("onProgress");
        let on_progress = if progress.is_undefined() || progress.is_null() {
            None
        } else {
            Some(
                progress
                    .dyn_into::<Function>()
                    .map_err(|_| invalid("options.onProgress must be a function"))?,
            )
        };
        let warning = get("onWarning");
        let on_warning = if warning.is_undefined() || warning.is_null() {
            None
        } else {
            Some(
                warning
                    .dyn_into::<Function>()
                    .map_err(|_| invalid("options.onWarning must be a function"))?,
            )
        };
        let kdf_worker = get("kdfWorker");
        let kdf_worker = if kdf_worker.is_undefined() || kdf_worker.is_null() {
            None
        } else if kdf_worker.is_function() {
            Some(kdf_worker)
        } else {
            return Err(invalid(
                "options.kdfWorker must be a function returning a Worker",
            ));
        };
        Ok(Self {
            url,
            room,
            password,
            secret,
            channel,
            persist,
            storage,
            request_persistence,
            token,
            on_progress,
            on_warning,
            kdf_worker,
            debug,
            members,
            profile,
        })
    }
}

fn invalid(message: &str) -> JsValue {
    error::coded(error::INVALID_OPTIONS, message)
}

fn progress(on_progress: Option<&Function>, value: &JsValue) {
    if let Some(f) = on_progress {
        events::call_all("progress", std::slice::from_ref(f), value);
    }
}

#[wasm_bindgen]
impl Room {
    /// Joins a room: derives the key (in a worker, for a password), restores the room's
    /// local copy and then unsent changes from IndexedDB, and starts connecting. Resolves once the room is usable offline;
    /// `status` events report the connection from then on.
    ///
    /// # Errors
    /// Rejects with a coded `Error`: `INVALID_OPTIONS`, `INVALID_ROOM_ID`, `EMPTY_PASSWORD`,
    /// `INVALID_SECRET`, `KDF_FAILED`, `NO_RANDOMNESS`. Storage problems do not reject: the
    /// room works without persistence and reports a `warning` with code `STORAGE_FAILED`.
    #[wasm_bindgen(skip_typescript)]
    pub async fn join(options: JsValue) -> Result<Self, JsValue> {
        let opts = JoinOptions::parse(&options)?;
        let room_id = RoomId::new_with(&opts.room, nfc::nfc).map_err(|e| error::from_core(&e))?;
        BrowserEntropy::check()?;

        let mut worker_failure = None;
        let secret = if let Some(secret) = opts.secret {
            Zeroizing::new(secret)
        } else {
            let password = Zeroizing::new(opts.password.unwrap_or_default());
            progress(
                opts.on_progress.as_ref(),
                &events::progress_to_js("deriving-key", None, None),
            );
            let started = js_sys::Date::now();
            let (key, route) = kdf::derive(&room_id, &password, opts.kdf_worker.as_ref()).await?;
            let ms = js_sys::Date::now() - started;
            progress(
                opts.on_progress.as_ref(),
                &events::progress_to_js("key-ready", Some(ms), Some(route == kdf::Route::Worker)),
            );
            if let kdf::Route::MainThread { reason } = route {
                worker_failure = Some(reason);
            }
            let key = Zeroizing::new(key);
            Zeroizing::new(URL_SAFE_NO_PAD.encode(*key))
        };
        let key = RoomKey::from_secret(&secret).map_err(|e| error::from_core(&e))?;
        let keys = RoomKeys::derive(&key, room_id.clone());
        drop(key);

        let session = SessionId(BrowserEntropy::array()?);
        let device = DeviceId(BrowserEntropy::array()?);
        let mut config = ClientConfig::new(room_id.clone(), device, session);
        if let Some(channel) = opts.channel {
            config.channel = channel;
        }
        config.members = opts.members;
        // The local replica lives in IndexedDB only (an application's `storage` keeps
        // outboxes).
        config.keep_history = opts.persist && opts.storage.is_none();
        let mut client = Client::new(config, keys, Box::new(BrowserEntropy));
        if let Some(profile) = opts.profile {
            client
                .set_profile(now(), profile)
                .map_err(|e| error::from_core(&e))?;
        }
        let mut inner = Inner::new(client, &opts.url, &room_id, session, secret);
        inner.token = opts.token;
        inner.kdf_worker = opts.kdf_worker;
        inner.debug = opts.debug;
        if let Some(reason) = worker_failure {
            inner.warn_later(
                error::KDF_WORKER_FAILED,
                &format!("the room key was derived on the main thread: {reason}"),
            );
        }
        let shared = Shared::new(inner);
        if let Some(listener) = opts.on_warning {
            shared.listeners.borrow_mut().add("warning", listener)?;
        }
        persist::open_storage(&shared, opts.persist, opts.storage).await;
        if opts.request_persistence && opts.persist {
            browser::request_persistence().await;
        }
        driver::start(&shared);
        Ok(Self { shared })
    }

    /// Registers `listener` for `type` (`change`, `status`, `presence`, `pending`, `sync`,
    /// `notify`, `ephemeral`, `warning`, `rejected`); returns a function that unregisters it.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for an unknown type.
    #[wasm_bindgen(skip_typescript)]
    pub fn on(&self, event_type: JsValue, listener: JsValue) -> Result<Function, JsValue> {
        let event_type = ops::string(&event_type, "the event type")?;
        let listener = listener.dyn_into::<Function>().map_err(|_| {
            error::coded(
                error::INVALID_ARGUMENT,
                "on(type, listener) takes a function",
            )
        })?;
        let (kind, id) = self
            .shared
            .listeners
            .borrow_mut()
            .add(&event_type, listener)?;
        if kind == "warning" {
            shared::deliver_buffered_warnings(&self.shared, id);
        }
        let weak = Rc::downgrade(&self.shared);
        let unsubscribe = Closure::once_into_js(move || {
            if let Some(shared) = weak.upgrade() {
                shared.listeners.borrow_mut().remove(kind, id);
            }
        });
        Ok(unsubscribe.unchecked_into())
    }

    /// Creates an entity in `collection` with `fields`; returns its id (`fields.id` when it
    /// is a string, else 16 random bytes in base64url). Applies at once (a `change` event
    /// with `fromSelf: true` fires before this returns); at the end of the task it is sealed
    /// with the task's other changes and sent when live.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT`, `INVALID_OPERATION`, `BODY_TOO_LARGE`, `OUTBOX_FULL`, `READ_ONLY`,
    /// `ROOM_CLOSED`.
    #[wasm_bindgen(skip_typescript)]
    pub fn create(&self, collection: JsValue, fields: JsValue) -> Result<String, JsValue> {
        let collection = ops::string(&collection, "collection")?;
        let fields = ops::fields(&fields, "fields")?;
        let id = match fields.get("id").and_then(serde_json::Value::as_str) {
            Some(id) => id.to_owned(),
            None => URL_SAFE_NO_PAD.encode(BrowserEntropy::array::<16>()?),
        };
        local::local_op(
            &self.shared,
            Op::Created {
                collection,
                id: id.clone(),
                fields,
            },
        )?;
        Ok(id)
    }

    /// Sets some fields of an entity (others are untouched).
    ///
    /// # Errors
    /// `INVALID_ARGUMENT`, `INVALID_OPERATION`, `BODY_TOO_LARGE`, `OUTBOX_FULL`, `READ_ONLY`,
    /// `ROOM_CLOSED`.
    #[wasm_bindgen(skip_typescript)]
    pub fn update(&self, collection: JsValue, id: JsValue, fields: JsValue) -> Result<(), JsValue> {
        let collection = ops::string(&collection, "collection")?;
        let id = ops::string(&id, "id")?;
        let fields = ops::fields(&fields, "fields")?;
        local::local_op(
            &self.shared,
            Op::Updated {
                collection,
                id,
                fields,
            },
        )
    }

    /// Deletes an entity for good.
    ///
    /// # Errors
    /// `INVALID_OPERATION`, `OUTBOX_FULL`, `READ_ONLY`, `ROOM_CLOSED`.
    #[wasm_bindgen(skip_typescript)]
    pub fn delete(&self, collection: JsValue, id: JsValue) -> Result<(), JsValue> {
        let collection = ops::string(&collection, "collection")?;
        let id = ops::string(&id, "id")?;
        local::local_op(&self.shared, Op::Deleted { collection, id })
    }

    /// Gives entities new sort keys (`[{ id, sortOrder }]`, keys from `Room.keyBetween`).
    ///
    /// # Errors
    /// `INVALID_ARGUMENT`, `INVALID_OPERATION`, `OUTBOX_FULL`, `READ_ONLY`, `ROOM_CLOSED`.
    #[wasm_bindgen(skip_typescript)]
    pub fn reorder(&self, collection: JsValue, items: JsValue) -> Result<(), JsValue> {
        let collection = ops::string(&collection, "collection")?;
        let items = ops::reorder_items(&items)?;
        local::local_op(&self.shared, Op::Reordered { collection, items })
    }

    /// Claims an entity (`{ claimedBy, claimedByName, claimedByAvatar }`), or releases it
    /// with `null`. Concurrent claims resolve to one winner everywhere.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT`, `INVALID_OPERATION`, `OUTBOX_FULL`, `READ_ONLY`, `ROOM_CLOSED`.
    #[wasm_bindgen(skip_typescript)]
    pub fn claim(&self, collection: JsValue, id: JsValue, claim: JsValue) -> Result<(), JsValue> {
        let collection = ops::string(&collection, "collection")?;
        let id = ops::string(&id, "id")?;
        let claim = ops::claim(&claim)?;
        local::local_op(
            &self.shared,
            Op::Claimed {
                collection,
                id,
                claimed_by: claim.claimed_by,
                claimed_by_name: claim.claimed_by_name,
                claimed_by_avatar: claim.claimed_by_avatar,
            },
        )
    }

    /// Runs `fn` and makes every change it makes one transaction: applied here at once
    /// (the `change` events fire while `fn` runs), sealed as one envelope and applied all
    /// at once on every replica. Returns what `fn` returned. A `transact` inside another
    /// joins it. If `fn` throws, everything it changed is rolled back (the reverting `change`
    /// events, `fromSelf: false`, fire first) and the exception is rethrown.
    ///
    /// # Errors
    /// What `fn` threw; `INVALID_ARGUMENT` when `fn` is not a function or returns a promise;
    /// `BODY_TOO_LARGE` when the changes together do not fit one envelope (rolled back);
    /// `ROOM_CLOSED`.
    #[wasm_bindgen(skip_typescript)]
    pub fn transact(&self, f: JsValue) -> Result<JsValue, JsValue> {
        local::transact(&self.shared, &f)
    }

    /// Sends a JSON-serialisable value to everyone else on this room's channel, sealed and
    /// never stored (cursors, typing). Dropped when not live, or when the pace has no room.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` when the value cannot be serialised, `BODY_TOO_LARGE`, `ROOM_CLOSED`.
    #[wasm_bindgen(skip_typescript)]
    pub fn broadcast(&self, value: JsValue) -> Result<(), JsValue> {
        let value = ops::json(&value, "value")?;
        local::ephemeral(&self.shared, value.to_string().as_bytes())
    }

    /// Sets this member's profile in who is online (any JSON value, at most 4,096 bytes),
    /// sealed for the other members; announced at once when live.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` when the value is not JSON, `INVALID_MEMBER` when it is too long,
    /// `ROOM_CLOSED`.
    #[wasm_bindgen(js_name = setProfile, skip_typescript)]
    pub fn set_profile(&self, profile: JsValue) -> Result<(), JsValue> {
        let profile = ops::json(&profile, "profile")?;
        local::set_profile(&self.shared, profile)
    }

    /// Who is online: this member first while live (`isSelf: true`), then the others heard
    /// from, as `{ session, profile, isSelf }`.
    ///
    /// # Errors
    /// `ROOM_CLOSED`.
    #[wasm_bindgen(getter, skip_typescript)]
    pub fn members(&self) -> Result<JsValue, JsValue> {
        Ok(events::to_js(&self.shared.inner()?.client.members()))
    }

    /// The visible entities of `collection` (`{ id, ...fields, sortOrder?, claimedBy? }`),
    /// by sort key then id.
    ///
    /// # Errors
    /// `ROOM_CLOSED`.
    #[wasm_bindgen(skip_typescript)]
    pub fn get(&self, collection: JsValue) -> Result<JsValue, JsValue> {
        let collection = ops::string(&collection, "collection")?;
        local::collection(&self.shared, &collection)
    }

    /// Every collection this replica has seen, as `{ [collection]: Entity[] }`.
    ///
    /// # Errors
    /// `ROOM_CLOSED`.
    #[wasm_bindgen(skip_typescript)]
    pub fn snapshot(&self) -> Result<JsValue, JsValue> {
        let names: Vec<String> = {
            let inner = self.shared.inner()?;
            let replica = inner.client.replica();
            replica.collections().map(str::to_owned).collect()
        };
        let out = js_sys::Object::new();
        for name in &names {
            let _ = Reflect::set(
                &out,
                &JsValue::from_str(name),
                &local::collection(&self.shared, name)?,
            );
        }
        Ok(out.into())
    }

    /// The room's fingerprint (20 digits in groups): equal for everyone holding the same
    /// key; compare it out of band to rule out a wrong password or a tampered link.
    ///
    /// # Errors
    /// `ROOM_CLOSED`.
    #[wasm_bindgen(skip_typescript)]
    pub fn fingerprint(&self) -> Result<String, JsValue> {
        Ok(self.shared.inner()?.client.fingerprint())
    }

    /// A link that lets someone join without the password: `base#relay=…&room=…&secret=…`
    /// (`base` defaults to the page's URL). The secret lives in the fragment, which browsers
    /// never send to a server. Anyone holding the link can read and write the room.
    ///
    /// # Errors
    /// `ROOM_CLOSED`.
    #[wasm_bindgen(js_name = shareLink, skip_typescript)]
    pub fn share_link(&self, base_url: JsValue) -> Result<String, JsValue> {
        let base_url = ops::opt_string(&base_url, "baseUrl")?;
        let inner = self.shared.inner()?;
        let base = base_url.or_else(browser::page_base).unwrap_or_default();
        Ok(share::link(
            &base,
            &inner.relay_url,
            &inner.room,
            &inner.secret,
        ))
    }

    /// The current connection status.
    ///
    /// # Errors
    /// None: after `leave()` it is `{ state: "closed", code: "LEFT" }`.
    #[wasm_bindgen(getter, skip_typescript)]
    pub fn status(&self) -> JsValue {
        self.shared
            .inner
            .try_borrow()
            .map_or(JsValue::UNDEFINED, |inner| {
                events::status_to_js(inner.client.status())
            })
    }

    /// The last number of sockets in the room the relay reported (this one included), as
    /// the last `presence` event said; `null` before the first.
    #[wasm_bindgen(getter, skip_typescript)]
    pub fn presence(&self) -> Option<u32> {
        self.shared
            .inner
            .try_borrow()
            .ok()
            .and_then(|inner| inner.presence)
    }

    /// The room id (NFC-normalised).
    #[wasm_bindgen(getter, js_name = roomId, skip_typescript)]
    pub fn room_id(&self) -> String {
        self.shared
            .inner
            .try_borrow()
            .map(|inner| inner.room.clone())
            .unwrap_or_default()
    }

    /// How many local changes (operations) the relay has not acknowledged yet, those of
    /// this task not yet sealed included.
    #[wasm_bindgen(getter, js_name = pendingChanges, skip_typescript)]
    pub fn pending_changes(&self) -> u32 {
        self.shared.inner.try_borrow().map_or(0, |inner| {
            u32::try_from(inner.client.pending_changes()).unwrap_or(u32::MAX)
        })
    }

    /// Where the user's changes are: `{ pending, savedLocally, savedOnRelay, offlineSince }`
    /// (the `sync` event carries the same object whenever it changes).
    #[wasm_bindgen(getter, skip_typescript)]
    pub fn sync(&self) -> JsValue {
        self.shared
            .inner
            .try_borrow()
            .map_or(JsValue::UNDEFINED, |inner| {
                events::to_js(&sync::state(&inner))
            })
    }

    /// Where this session keeps unsent changes and the room's local copy: `"persistent"`
    /// (IndexedDB, or the `storage` given to `join`) or `"memory"` (`persist: false`, or
    /// storage that failed: a `STORAGE_FAILED` warning said why).
    #[wasm_bindgen(getter, skip_typescript)]
    pub fn storage(&self) -> String {
        let persistent = self
            .shared
            .inner
            .try_borrow()
            .is_ok_and(|inner| inner.store.is_some());
        String::from(if persistent { "persistent" } else { "memory" })
    }

    /// Deletes everything this browser keeps for `room` in IndexedDB: the local copy and
    /// the unsent changes of every session, e.g. when the user signs out. Leave the room in
    /// every tab first: a session still in it writes again.
    ///
    /// # Errors
    /// `INVALID_ROOM_ID`; `STORAGE_FAILED` when there is no IndexedDB or it refused.
    #[wasm_bindgen(skip_typescript)]
    pub async fn forget(room: JsValue) -> Result<(), JsValue> {
        let room = ops::string(&room, "room")?;
        let room = RoomId::new_with(&room, nfc::nfc).map_err(|e| error::from_core(&e))?;
        let store = store::Store::open(room.as_str()).await?;
        let outcome = store.forget().await;
        store.close();
        outcome
    }

    /// Moves the room to a new password or secret (`{ password }` or `{ secret }`): the
    /// relay takes the room's state from this tab as a snapshot under the new key, drops
    /// the history under the old one and closes every other member's connection (their
    /// status becomes `rotated`). Resolves once that is done; this tab goes on under the new
    /// key (`fingerprint()` and `shareLink()` change). With `handOver: true` the members
    /// online (who take part in who is online) receive the new key sealed under the old one
    /// and go on under it; without it the new key reaches nobody through the SDK: give it to
    /// those who stay; they call `rekey`. Never hand it over to remove someone.
    ///
    /// # Errors
    /// `ROTATION_REFUSED` (closed room, a rotation under way, the current password or
    /// secret), `READ_ONLY`, `INVALID_ARGUMENT`, `EMPTY_PASSWORD`, `INVALID_SECRET`,
    /// `KDF_FAILED`; what the relay answered (`NOT_CAUGHT_UP` after the room kept changing,
    /// `READ_ONLY`, `GUEST_PENDING`, `TOO_LARGE`, …); `ROOM_CLOSED` when the connection
    /// stopped first.
    #[wasm_bindgen(skip_typescript)]
    pub async fn rotate(&self, options: JsValue) -> Result<(), JsValue> {
        rekey::rotate(&self.shared, &options).await
    }

    /// After the status `rotated` (a member changed the room's password or secret) or
    /// `wrong-password`: goes on with the new password or secret (`{ password }` or
    /// `{ secret }`) without a reload; the local state and unsent changes stay and are sent
    /// under the new key. A wrong one ends `wrong-password` again.
    ///
    /// # Errors
    /// `ROTATION_REFUSED` in any other status, `INVALID_ARGUMENT`, `EMPTY_PASSWORD`,
    /// `INVALID_SECRET`, `KDF_FAILED`, `ROOM_CLOSED`.
    #[wasm_bindgen(skip_typescript)]
    pub async fn rekey(&self, options: JsValue) -> Result<(), JsValue> {
        rekey::rekey(&self.shared, &options).await
    }

    /// Leaves the room: seals this task's changes, closes the socket and stops retrying.
    /// Unsent changes stay in IndexedDB and go out the next time this room is joined in this
    /// browser. Resolves once they are saved. Calling it twice is harmless.
    #[wasm_bindgen(skip_typescript)]
    pub async fn leave(&self) {
        driver::leave(&self.shared).await;
    }

    /// A sort key strictly between `before` and `after` (`null` for an open end).
    ///
    /// # Errors
    /// `INVALID_OPERATION` when a key is malformed, `before >= after`, or no key fits.
    #[wasm_bindgen(js_name = keyBetween, skip_typescript)]
    pub fn key_between(before: JsValue, after: JsValue) -> Result<String, JsValue> {
        let before = ops::opt_string(&before, "before")?;
        let after = ops::opt_string(&after, "after")?;
        sealsync_core::merge::key_between(before.as_deref(), after.as_deref())
            .map_err(|e| error::from_core(&e))
    }

    /// A new random room secret (43 characters of base64url), for creating a room that is
    /// joined by link instead of password.
    ///
    /// # Errors
    /// `NO_RANDOMNESS`.
    #[wasm_bindgen(js_name = generateSecret, skip_typescript)]
    pub fn generate_secret() -> Result<String, JsValue> {
        let mut entropy = BrowserEntropy::check()?;
        Ok(RoomKey::generate_secret(&mut entropy))
    }

    /// Reads a share link (or just its fragment): `{ url?, room, secret }`, or `null` when
    /// it holds no room and secret.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` when `link` is not a string.
    #[wasm_bindgen(js_name = parseShareLink, skip_typescript)]
    pub fn parse_share_link(link: JsValue) -> Result<JsValue, JsValue> {
        let link = ops::string(&link, "the link")?;
        Ok(share::parse(&link).map_or(JsValue::NULL, |parsed| events::to_js(&parsed)))
    }
}

/// Derives the 32-byte room key from a password with Argon2id (19 MiB, t = 2). This is what
/// the key-derivation worker runs; it blocks for tens of milliseconds, so call it from a
/// worker, not the main thread.
///
/// # Errors
/// `INVALID_ROOM_ID`, `EMPTY_PASSWORD`, `KDF_FAILED`.
#[wasm_bindgen(js_name = deriveRoomKey, skip_typescript)]
pub fn derive_room_key(room: JsValue, password: JsValue) -> Result<Vec<u8>, JsValue> {
    let room = ops::string(&room, "room")?;
    let password = Zeroizing::new(ops::string(&password, "password")?);
    let room = RoomId::new_with(&room, nfc::nfc).map_err(|e| error::from_core(&e))?;
    let key = RoomKey::from_password_with(&room, &password, nfc::nfc)
        .map_err(|e| error::from_core(&e))?;
    Ok(kdf::secret_bytes(&key)?.to_vec())
}
