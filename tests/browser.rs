//! The SDK in a real browser (headless Chromium through `wasm-pack test`): sealing and
//! opening through the wasm boundary, events crossing it, and the outbox round trip
//! through IndexedDB. No relay runs here: rooms point at a closed port and stay offline,
//! which is exactly when the outbox matters. Run with `tests/run-browser.sh`.
#![cfg(target_arch = "wasm32")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "tests"
)]

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Array, Function, Object, Reflect, Uint8Array};
use sealsync::{derive_room_key, Room};
use sealsync_core::member::{verify_proof, CHALLENGE_LEN};
use sealsync_core::wire::{Access, ClientFrame, RelayErrorCode, RelayFrame, VerifierState};
use sealsync_core::SessionId;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// Nothing listens here: every connection attempt fails and the room keeps reconnecting.
const DEAD_RELAY: &str = "ws://127.0.0.1:9";
/// Two valid room secrets (32 bytes, base64url).
const SECRET_A: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
const SECRET_B: &str = "HxwdHhsaGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA";

#[wasm_bindgen(inline_js = r#"
export function readOutbox(room) {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open("sealsync");
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const db = open.result;
      const tx = db.transaction("outbox", "readonly");
      const req = tx.objectStore("outbox").getAll(IDBKeyRange.bound([room], [room, []]));
      req.onsuccess = () => { db.close(); resolve(req.result); };
      req.onerror = () => { db.close(); reject(req.error); };
    };
  });
}
export function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }
export function uniqueRoom(prefix) { return `${prefix}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`; }
"#)]
extern "C" {
    #[wasm_bindgen(js_name = readOutbox)]
    fn read_outbox(room: &str) -> js_sys::Promise;
    fn sleep(ms: u32) -> js_sys::Promise;
    #[wasm_bindgen(js_name = uniqueRoom)]
    fn unique_room(prefix: &str) -> String;
}

fn options(room: &str, pairs: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    Reflect::set(&o, &"url".into(), &DEAD_RELAY.into()).unwrap();
    Reflect::set(&o, &"room".into(), &room.into()).unwrap();
    for (k, v) in pairs {
        Reflect::set(&o, &(*k).into(), v).unwrap();
    }
    o.into()
}

fn get(value: &JsValue, key: &str) -> JsValue {
    Reflect::get(value, &key.into()).unwrap()
}

fn code(err: &JsValue) -> String {
    assert!(
        err.is_instance_of::<js_sys::Error>(),
        "not an Error: {err:?}"
    );
    // The class is js/error.js's `SealsyncError` (this test crate gets its own copy of the
    // snippet, so `instanceof` is checked through the package entry in tests/e2e).
    assert_eq!(
        get(err, "name").as_string().as_deref(),
        Some("SealsyncError")
    );
    let class = get(&get(err, "constructor"), "name");
    assert_eq!(
        class.as_string().as_deref(),
        Some("SealsyncError"),
        "{err:?}"
    );
    get(err, "code").as_string().expect("error without a code")
}

fn fields(pairs: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in pairs {
        Reflect::set(&o, &(*k).into(), v).unwrap();
    }
    o.into()
}

/// Subscribes to `kind` and collects every event.
fn collect(room: &Room, kind: &str) -> Rc<RefCell<Vec<JsValue>>> {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let sink = seen.clone();
    let listener = Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| sink.borrow_mut().push(e));
    room.on(
        kind.into(),
        listener.as_ref().unchecked_ref::<Function>().clone().into(),
    )
    .unwrap();
    listener.forget();
    seen
}

async fn pause(ms: u32) {
    JsFuture::from(sleep(ms)).await.unwrap();
}

#[wasm_bindgen_test]
fn the_browsers_nfc_gives_the_keys_the_cores_own_nfc_gives() {
    // The SDK normalises room ids and passwords with String.prototype.normalize("NFC"),
    // the core of every other client with its own tables: both must land on the same key.
    use sealsync_core::{RoomId, RoomKey};
    let cases = [
        ("cafe\u{301}", "pa\u{301}ss"),           // e + combining acute
        ("\u{1100}\u{1161}\u{11a8}", "\u{212b}"), // Hangul jamo; the angstrom sign
        ("A\u{30a}\u{323}", "\u{fb01}x"),         // reordered marks; a ligature NFC keeps
        ("emoji-\u{1f600}", "q\u{307}\u{323}"),
    ];
    for (room, password) in cases {
        let core_room = RoomId::new(room).unwrap();
        let core_key = RoomKey::from_password(&core_room, password).unwrap();
        let expected = {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(core_key.to_secret())
                .unwrap()
        };
        let browser = derive_room_key(room.into(), password.into()).unwrap();
        assert_eq!(browser, expected, "{room:?} / {password:?}");
    }
}

#[wasm_bindgen_test]
fn password_key_is_deterministic_and_bound_to_room_and_password() {
    let a = derive_room_key("team-42".into(), "correct horse".into()).unwrap();
    assert_eq!(a.len(), 32);
    assert_eq!(
        a,
        derive_room_key("team-42".into(), "correct horse".into()).unwrap()
    );
    assert_ne!(
        a,
        derive_room_key("team-42".into(), "correct horse!".into()).unwrap()
    );
    assert_ne!(
        a,
        derive_room_key("team-43".into(), "correct horse".into()).unwrap()
    );
    assert_eq!(
        code(&derive_room_key("team-42".into(), "".into()).unwrap_err()),
        "EMPTY_PASSWORD"
    );
    assert_eq!(
        code(&derive_room_key("a/b".into(), "pw".into()).unwrap_err()),
        "INVALID_ROOM_ID"
    );
}

#[wasm_bindgen_test]
async fn join_rejects_bad_input_with_coded_errors() {
    let missing_url = Object::new();
    Reflect::set(&missing_url, &"room".into(), &"r".into()).unwrap();
    Reflect::set(&missing_url, &"secret".into(), &SECRET_A.into()).unwrap();
    let err = Room::join(missing_url.into()).await.unwrap_err();
    assert_eq!(code(&err), "INVALID_OPTIONS");

    let err = Room::join(options("r", &[])).await.unwrap_err();
    assert_eq!(code(&err), "INVALID_OPTIONS", "neither password nor secret");

    let err = Room::join(options("a/b", &[("secret", SECRET_A.into())]))
        .await
        .unwrap_err();
    assert_eq!(code(&err), "INVALID_ROOM_ID");

    let err = Room::join(options("r", &[("secret", "too-short".into())]))
        .await
        .unwrap_err();
    assert_eq!(code(&err), "INVALID_SECRET");

    let err = Room::join(options("r", &[("password", "".into())]))
        .await
        .unwrap_err();
    assert_eq!(code(&err), "EMPTY_PASSWORD");

    let err = Room::join(options(
        "r",
        &[("password", "pw".into()), ("secret", SECRET_A.into())],
    ))
    .await
    .unwrap_err();
    assert_eq!(
        code(&err),
        "INVALID_OPTIONS",
        "password and secret together"
    );
    assert!(
        get(&err, "message")
            .as_string()
            .unwrap()
            .contains("exclusive"),
        "{err:?}"
    );

    let err = Room::join(options(
        "r",
        &[("secret", SECRET_A.into()), ("onWarning", "no".into())],
    ))
    .await
    .unwrap_err();
    assert_eq!(
        code(&err),
        "INVALID_OPTIONS",
        "onWarning must be a function"
    );
}

#[wasm_bindgen_test]
async fn password_join_reports_key_derivation_progress() {
    let progress = Rc::new(RefCell::new(Vec::<JsValue>::new()));
    let sink = progress.clone();
    let on_progress =
        Closure::<dyn FnMut(JsValue)>::new(move |p: JsValue| sink.borrow_mut().push(p));
    let room = Room::join(options(
        &unique_room("kdf"),
        &[
            ("password", "hunter2".into()),
            ("persist", false.into()),
            ("onProgress", on_progress.as_ref().clone()),
        ],
    ))
    .await
    .unwrap();
    let states: Vec<String> = progress
        .borrow()
        .iter()
        .map(|p| get(p, "state").as_string().unwrap())
        .collect();
    assert_eq!(states, ["deriving-key", "key-ready"]);
    let ready = progress.borrow()[1].clone();
    assert!(get(&ready, "ms").as_f64().unwrap() > 0.0);
    // Where the worker could not run (this test page loads the glue without the package's
    // entry, so no worker factory is registered), the fallback is announced; where it ran,
    // nothing is. tests/e2e/kdf.test.mjs covers both routes through the package.
    let warnings = collect(&room, "warning");
    pause(50).await;
    let kdf_warnings = warnings
        .borrow()
        .iter()
        .filter(|w| get(w, "code").as_string().as_deref() == Some("KDF_WORKER_FAILED"))
        .count();
    let in_worker = get(&ready, "inWorker").as_bool().unwrap();
    assert_eq!(
        kdf_warnings,
        usize::from(!in_worker),
        "inWorker = {in_worker}"
    );
    // The same password in the same room gives the same key, so the same fingerprint.
    let again = Room::join(options(
        room.room_id().as_str(),
        &[("password", "hunter2".into()), ("persist", false.into())],
    ))
    .await
    .unwrap();
    assert_eq!(room.fingerprint().unwrap(), again.fingerprint().unwrap());
    room.leave().await;
    again.leave().await;
}

#[wasm_bindgen_test]
async fn local_changes_and_status_cross_the_boundary_as_plain_objects() {
    let room = Room::join(options(
        &unique_room("events"),
        &[("secret", SECRET_A.into()), ("persist", false.into())],
    ))
    .await
    .unwrap();
    let changes = collect(&room, "change");
    let statuses = collect(&room, "status");
    let pending = collect(&room, "pending");

    let id = room
        .create(
            "tasks".into(),
            fields(&[("title", "Ship".into()), ("done", false.into())]),
        )
        .unwrap();
    assert_eq!(id.len(), 22, "16 random bytes in base64url");
    {
        let seen = changes.borrow();
        assert_eq!(seen.len(), 1);
        let e = &seen[0];
        assert_eq!(get(e, "type").as_string().unwrap(), "created");
        assert_eq!(get(e, "collection").as_string().unwrap(), "tasks");
        assert_eq!(get(e, "id").as_string().unwrap(), id);
        assert_eq!(get(e, "fromSelf").as_bool(), Some(true));
        assert_eq!(get(&get(e, "fields"), "title").as_string().unwrap(), "Ship");
    }
    room.update(
        "tasks".into(),
        id.clone().into(),
        fields(&[("done", true.into())]),
    )
    .unwrap();
    assert_eq!(
        get(&changes.borrow()[1], "type").as_string().unwrap(),
        "updated"
    );

    let tasks: Array = room.get("tasks".into()).unwrap().dyn_into().unwrap();
    assert_eq!(tasks.length(), 1);
    let task = tasks.get(0);
    assert_eq!(get(&task, "id").as_string().unwrap(), id);
    assert_eq!(get(&task, "title").as_string().unwrap(), "Ship");
    assert_eq!(get(&task, "done").as_bool(), Some(true));
    assert_eq!(room.pending_changes(), 2, "nothing acknowledged: no relay");
    let counts: Vec<f64> = pending
        .borrow()
        .iter()
        .filter_map(JsValue::as_f64)
        .collect();
    assert_eq!(
        counts,
        [1.0, 2.0],
        "a `pending` event per change of the outbox length"
    );

    // Bad arguments are coded errors, and they change nothing.
    let err = room
        .update("tasks".into(), id.clone().into(), "not an object".into())
        .unwrap_err();
    assert_eq!(code(&err), "INVALID_ARGUMENT");
    let err = room.create("bad name!".into(), fields(&[])).unwrap_err();
    assert_eq!(code(&err), "INVALID_OPERATION");
    assert_eq!(changes.borrow().len(), 2);

    // The relay is unreachable: the room says so, with camelCase fields.
    pause(1500).await;
    let states: Vec<String> = statuses
        .borrow()
        .iter()
        .map(|s| get(s, "state").as_string().unwrap())
        .collect();
    assert_eq!(
        states.first().map(String::as_str),
        Some("connecting"),
        "{states:?}"
    );
    let reconnecting = statuses
        .borrow()
        .iter()
        .find(|s| get(s, "state").as_string().as_deref() == Some("reconnecting"))
        .cloned()
        .expect("a reconnecting status");
    assert!(get(&reconnecting, "inMs").as_f64().unwrap() > 0.0);
    assert!(get(&reconnecting, "attempt").as_f64().is_some());

    room.leave().await;
    assert_eq!(get(&room.status(), "state").as_string().unwrap(), "closed");
    let err = room.create("tasks".into(), fields(&[])).unwrap_err();
    assert_eq!(code(&err), "ROOM_CLOSED");
}

/// Joins a fresh room with a secret, no persistence and `token` as the token function.
async fn join_with_token(token: &JsValue) -> Room {
    Room::join(options(
        &unique_room("token"),
        &[
            ("secret", SECRET_A.into()),
            ("persist", false.into()),
            ("token", token.clone()),
        ],
    ))
    .await
    .unwrap()
}

#[wasm_bindgen_test]
async fn a_token_function_is_asked_before_every_attempt_and_its_failure_reported() {
    let calls = Rc::new(RefCell::new(0_u32));
    let sink = calls.clone();
    let token = Closure::<dyn FnMut() -> JsValue>::new(move || {
        *sink.borrow_mut() += 1;
        js_sys::Promise::resolve(&JsValue::from_str("header.payload.signature")).into()
    });
    let room = join_with_token(token.as_ref()).await;
    pause(2500).await;
    assert!(*calls.borrow() >= 2, "asked {} times", calls.borrow());
    room.leave().await;

    let failing = Closure::<dyn FnMut() -> JsValue>::new(|| {
        js_sys::Promise::reject(&js_sys::Error::new("backend down").into()).into()
    });
    let room = join_with_token(failing.as_ref()).await;
    let warnings = collect(&room, "warning");
    let statuses = collect(&room, "status");
    pause(300).await;
    let first = warnings.borrow().first().cloned().expect("a warning");
    assert_eq!(get(&first, "code").as_string().unwrap(), "TOKEN_FAILED");
    assert!(get(&first, "message")
        .as_string()
        .unwrap()
        .contains("backend down"));
    assert!(
        statuses
            .borrow()
            .iter()
            .any(|s| get(s, "state").as_string().as_deref() == Some("reconnecting")),
        "a failed token counts as a failed attempt"
    );
    room.leave().await;

    let err = Room::join(options(
        "r",
        &[("secret", SECRET_A.into()), ("token", 42.into())],
    ))
    .await
    .unwrap_err();
    assert_eq!(code(&err), "INVALID_OPTIONS");
}

#[wasm_bindgen_test]
async fn unsubscribe_stops_events() {
    let room = Room::join(options(
        &unique_room("unsub"),
        &[("secret", SECRET_A.into()), ("persist", false.into())],
    ))
    .await
    .unwrap();
    let count = Rc::new(RefCell::new(0_u32));
    let sink = count.clone();
    let listener = Closure::<dyn FnMut(JsValue)>::new(move |_: JsValue| *sink.borrow_mut() += 1);
    let off = room
        .on(
            "change".into(),
            listener.as_ref().unchecked_ref::<Function>().clone().into(),
        )
        .unwrap();
    room.create("tasks".into(), fields(&[("title", "a".into())]))
        .unwrap();
    off.call0(&JsValue::UNDEFINED).unwrap();
    room.create("tasks".into(), fields(&[("title", "b".into())]))
        .unwrap();
    assert_eq!(*count.borrow(), 1);
    let err = room
        .on(
            "nope".into(),
            listener.as_ref().unchecked_ref::<Function>().clone().into(),
        )
        .unwrap_err();
    assert_eq!(code(&err), "INVALID_ARGUMENT");
    room.leave().await;
}

#[wasm_bindgen_test]
async fn unsent_changes_survive_in_indexeddb_as_ciphertext_and_come_back() {
    let name = unique_room("outbox");
    let first = Room::join(options(&name, &[("secret", SECRET_A.into())]))
        .await
        .unwrap();
    first
        .create(
            "tasks".into(),
            fields(&[("title", "plaintext-marker-1".into())]),
        )
        .unwrap();
    first
        .create(
            "tasks".into(),
            fields(&[("title", "plaintext-marker-2".into())]),
        )
        .unwrap();
    first.leave().await;

    // Stored: one record for the session; the two changes of one task sealed together in
    // one envelope; no plaintext.
    let rows: Array = JsFuture::from(read_outbox(&name))
        .await
        .unwrap()
        .dyn_into()
        .unwrap();
    assert_eq!(rows.length(), 1);
    let envelopes: Array = get(&rows.get(0), "envelopes").dyn_into().unwrap();
    assert_eq!(envelopes.length(), 1);
    for envelope in envelopes.iter() {
        let bytes = envelope.dyn_into::<Uint8Array>().unwrap().to_vec();
        assert!(bytes.len() > 90, "header plus ciphertext");
        assert!(
            !bytes.windows(17).any(|w| w == b"plaintext-marker-"),
            "the outbox must hold ciphertext only"
        );
    }

    // A new session of the same room opens them with its own keys and applies them.
    let second = Room::join(options(&name, &[("secret", SECRET_A.into())]))
        .await
        .unwrap();
    let tasks: Array = second.get("tasks".into()).unwrap().dyn_into().unwrap();
    let mut titles: Vec<String> = tasks
        .iter()
        .map(|t| get(&t, "title").as_string().unwrap())
        .collect();
    titles.sort();
    assert_eq!(titles, ["plaintext-marker-1", "plaintext-marker-2"]);
    assert_eq!(second.pending_changes(), 2);
    second.leave().await;
}

#[wasm_bindgen_test]
async fn another_key_cannot_open_the_outbox_and_does_not_destroy_it() {
    let name = unique_room("wrongkey");
    let owner = Room::join(options(&name, &[("secret", SECRET_A.into())]))
        .await
        .unwrap();
    owner
        .create("tasks".into(), fields(&[("title", "secret stuff".into())]))
        .unwrap();
    owner.leave().await;

    let stranger = Room::join(options(&name, &[("secret", SECRET_B.into())]))
        .await
        .unwrap();
    let warnings = collect(&stranger, "warning");
    pause(50).await;
    let tasks: Array = stranger.get("tasks".into()).unwrap().dyn_into().unwrap();
    assert_eq!(tasks.length(), 0, "another key opens nothing");
    assert!(
        warnings
            .borrow()
            .iter()
            .any(|w| get(w, "code").as_string().as_deref() == Some("DECRYPT_FAILED")),
        "the failed open is reported"
    );
    stranger.leave().await;

    // The owner's record is still there for the right key.
    let rows: Array = JsFuture::from(read_outbox(&name))
        .await
        .unwrap()
        .dyn_into()
        .unwrap();
    let total: u32 = rows
        .iter()
        .map(|r| get(&r, "envelopes").dyn_into::<Array>().unwrap().length())
        .sum();
    assert_eq!(total, 1);
    let back = Room::join(options(&name, &[("secret", SECRET_A.into())]))
        .await
        .unwrap();
    let tasks: Array = back.get("tasks".into()).unwrap().dyn_into().unwrap();
    assert_eq!(tasks.length(), 1);
    back.leave().await;
}

#[wasm_bindgen_test]
async fn two_live_tabs_keep_separate_outboxes() {
    let name = unique_room("tabs");
    let a = Room::join(options(&name, &[("secret", SECRET_A.into())]))
        .await
        .unwrap();
    a.create("tasks".into(), fields(&[("title", "from a".into())]))
        .unwrap();
    pause(50).await;
    // `a` is alive (it holds its lock): `b` must not adopt its outbox.
    let b = Room::join(options(&name, &[("secret", SECRET_A.into())]))
        .await
        .unwrap();
    assert_eq!(b.pending_changes(), 0);
    b.create("tasks".into(), fields(&[("title", "from b".into())]))
        .unwrap();
    pause(50).await;
    let rows: Array = JsFuture::from(read_outbox(&name))
        .await
        .unwrap()
        .dyn_into()
        .unwrap();
    assert_eq!(rows.length(), 2, "one record per live session");
    a.leave().await;
    b.leave().await;
}

#[wasm_bindgen_test]
fn key_between_orders_and_rejects_with_codes() {
    let first = Room::key_between(JsValue::NULL, JsValue::NULL).unwrap();
    let after = Room::key_between(first.as_str().into(), JsValue::NULL).unwrap();
    let between = Room::key_between(first.as_str().into(), after.as_str().into()).unwrap();
    assert!(
        first < between && between < after,
        "{first} {between} {after}"
    );
    let err = Room::key_between(after.as_str().into(), first.as_str().into()).unwrap_err();
    assert_eq!(code(&err), "INVALID_OPERATION");
    let err = Room::key_between(JsValue::from(3), JsValue::NULL).unwrap_err();
    assert_eq!(code(&err), "INVALID_ARGUMENT");
}

#[wasm_bindgen_test]
async fn share_links_round_trip() {
    let secret = Room::generate_secret().unwrap();
    assert_eq!(secret.len(), 43);
    let room = Room::join(options(
        "café board",
        &[
            ("secret", secret.as_str().into()),
            ("persist", false.into()),
        ],
    ))
    .await
    .unwrap();
    let link = room.share_link("https://app.example/board".into()).unwrap();
    assert!(link.starts_with("https://app.example/board#"), "{link}");
    let parsed = Room::parse_share_link(link.clone().into()).unwrap();
    assert_eq!(get(&parsed, "room").as_string().unwrap(), "café board");
    assert_eq!(get(&parsed, "secret").as_string().unwrap(), secret);
    assert_eq!(get(&parsed, "url").as_string().unwrap(), DEAD_RELAY);
    assert!(
        Room::parse_share_link("https://app.example/#nothing=here".into())
            .unwrap()
            .is_null()
    );
    room.leave().await;
}

// ---------------------------------------------------------------- transactions, coalescing

/// A JS function from a Rust closure (kept alive for the rest of the test run).
fn js_fn(f: impl FnMut() -> Result<JsValue, JsValue> + 'static) -> JsValue {
    let closure = Closure::<dyn FnMut() -> Result<JsValue, JsValue>>::new(f);
    let value = closure.as_ref().clone();
    closure.forget();
    value
}

/// Joins a fresh room on the dead relay (offline: every change stays pending).
async fn offline_room(prefix: &str, persist: bool) -> Room {
    Room::join(options(
        &unique_room(prefix),
        &[("secret", SECRET_A.into()), ("persist", persist.into())],
    ))
    .await
    .unwrap()
}

fn kinds_and_origins(changes: &[JsValue]) -> Vec<(String, bool)> {
    changes
        .iter()
        .map(|c| {
            (
                get(c, "type").as_string().unwrap(),
                get(c, "fromSelf").as_bool().unwrap(),
            )
        })
        .collect()
}

fn titles(room: &Room) -> Vec<String> {
    let tasks: Array = room.get("tasks".into()).unwrap().dyn_into().unwrap();
    let mut out: Vec<String> = tasks
        .iter()
        .map(|t| get(&t, "title").as_string().unwrap_or_default())
        .collect();
    out.sort();
    out
}

#[wasm_bindgen_test]
async fn transact_fires_a_change_per_operation_at_once_and_returns_the_functions_value() {
    let room = Rc::new(offline_room("tx", false).await);
    let changes = collect(&room, "change");
    let inner = room.clone();
    let value = room
        .transact(js_fn(move || {
            let id = inner.create("tasks".into(), fields(&[("title", "a".into())]))?;
            inner.update("tasks".into(), id.into(), fields(&[("done", true.into())]))?;
            // A nested transact joins this one.
            let nested = inner.clone();
            inner.transact(js_fn(move || {
                nested.create("tasks".into(), fields(&[("title", "b".into())]))?;
                Ok(JsValue::NULL)
            }))?;
            Ok(JsValue::from(42))
        }))
        .unwrap();
    assert_eq!(value.as_f64(), Some(42.0));
    assert_eq!(
        kinds_and_origins(&changes.borrow()),
        [
            ("created".to_owned(), true),
            ("updated".to_owned(), true),
            ("created".to_owned(), true)
        ],
        "one change event per operation, before transact returns"
    );
    assert_eq!(titles(&room), ["a", "b"]);
    assert_eq!(
        room.pending_changes(),
        3,
        "pendingChanges counts operations"
    );

    let err = room.transact("not a function".into()).unwrap_err();
    assert_eq!(code(&err), "INVALID_ARGUMENT");
    room.leave().await;
}

#[wasm_bindgen_test]
async fn a_throwing_transaction_is_rolled_back_with_change_events_and_rethrown() {
    let room = Rc::new(offline_room("txthrow", false).await);
    let kept = room
        .create(
            "tasks".into(),
            fields(&[("title", "kept".into()), ("done", false.into())]),
        )
        .unwrap();
    let changes = collect(&room, "change");
    let pending = collect(&room, "pending");

    let inner = room.clone();
    let target = kept.clone();
    let err = room
        .transact(js_fn(move || {
            inner.update(
                "tasks".into(),
                target.clone().into(),
                fields(&[("done", true.into())]),
            )?;
            inner.create("tasks".into(), fields(&[("title", "gone".into())]))?;
            Err(js_sys::Error::new("boom").into())
        }))
        .unwrap_err();
    assert_eq!(
        err.dyn_ref::<js_sys::Error>().unwrap().message(),
        "boom",
        "the function's own exception is rethrown"
    );
    let seen = changes.borrow().clone();
    let origins = kinds_and_origins(&seen);
    assert_eq!(
        origins[..2],
        [("updated".to_owned(), true), ("created".to_owned(), true)]
    );
    // The rollback arrives as ordinary changes, fromSelf false (in the replica's order).
    let mut rollback = origins[2..].to_vec();
    rollback.sort();
    assert_eq!(
        rollback,
        [("deleted".to_owned(), false), ("updated".to_owned(), false)]
    );
    let undone = seen[2..]
        .iter()
        .find(|c| get(c, "type").as_string().as_deref() == Some("updated"))
        .unwrap();
    assert_eq!(get(undone, "id").as_string().unwrap(), kept);
    assert_eq!(get(&get(undone, "fields"), "done").as_bool(), Some(false));
    assert_eq!(titles(&room), ["kept"]);
    let tasks: Array = room.get("tasks".into()).unwrap().dyn_into().unwrap();
    assert_eq!(get(&tasks.get(0), "done").as_bool(), Some(false));
    assert_eq!(room.pending_changes(), 1);
    assert_eq!(
        pending.borrow().last().and_then(JsValue::as_f64),
        Some(1.0),
        "`pending` follows the rollback"
    );

    // A nested transact that throws dooms the outer one, even when the outer function
    // catches the exception.
    let outer = room.clone();
    let err = room
        .transact(js_fn(move || {
            outer.create("tasks".into(), fields(&[("title", "outer".into())]))?;
            let nested = outer.clone();
            let caught = outer.transact(js_fn(move || {
                nested.create("tasks".into(), fields(&[("title", "inner".into())]))?;
                Err(js_sys::Error::new("inner failed").into())
            }));
            assert!(caught.is_err());
            Ok(JsValue::TRUE)
        }))
        .unwrap_err();
    assert_eq!(
        err.dyn_ref::<js_sys::Error>().unwrap().message(),
        "inner failed"
    );
    assert_eq!(titles(&room), ["kept"]);

    // A function returning a promise would leave its awaited part out: refused, rolled back.
    let inner = room.clone();
    let err = room
        .transact(js_fn(move || {
            inner.create("tasks".into(), fields(&[("title", "async".into())]))?;
            Ok(js_sys::Promise::resolve(&JsValue::NULL).into())
        }))
        .unwrap_err();
    assert_eq!(code(&err), "INVALID_ARGUMENT");
    assert_eq!(titles(&room), ["kept"]);
    assert_eq!(room.pending_changes(), 1);
    room.leave().await;
}

#[wasm_bindgen_test]
async fn a_transaction_over_one_envelope_is_refused_and_rolled_back() {
    let room = Rc::new(offline_room("txbig", true).await);
    let changes = collect(&room, "change");
    // Three changes of 400,000 bytes each: together over one envelope's 1,000,000.
    let big = "x".repeat(400_000);
    let inner = room.clone();
    let text = big.clone();
    let err = room
        .transact(js_fn(move || {
            for i in 0..3 {
                inner.create(
                    "tasks".into(),
                    fields(&[
                        ("title", format!("{i}").into()),
                        ("blob", text.as_str().into()),
                    ]),
                )?;
            }
            Ok(JsValue::UNDEFINED)
        }))
        .unwrap_err();
    assert_eq!(code(&err), "BODY_TOO_LARGE");
    let origins: Vec<(String, bool)> = kinds_and_origins(&changes.borrow());
    assert_eq!(origins.len(), 6);
    assert!(origins[..3].iter().all(|(k, s)| k == "created" && *s));
    assert!(origins[3..].iter().all(|(k, s)| k == "deleted" && !*s));
    assert!(titles(&room).is_empty());
    assert_eq!(room.pending_changes(), 0);

    // The same changes outside a transaction are fine: one task's changes are packed into
    // as few envelopes as fit (two here).
    for i in 0..3 {
        room.create(
            "tasks".into(),
            fields(&[
                ("title", format!("{i}").into()),
                ("blob", big.as_str().into()),
            ]),
        )
        .unwrap();
    }
    assert_eq!(room.pending_changes(), 3);
    let name = room.room_id();
    room.leave().await;
    let rows: Array = JsFuture::from(read_outbox(&name))
        .await
        .unwrap()
        .dyn_into()
        .unwrap();
    let envelopes: Array = get(&rows.get(0), "envelopes").dyn_into().unwrap();
    assert_eq!(envelopes.length(), 2);
}

#[wasm_bindgen_test]
async fn the_changes_of_one_task_are_sealed_together() {
    let name = unique_room("burst");
    let room = Room::join(options(&name, &[("secret", SECRET_A.into())]))
        .await
        .unwrap();
    let pending = collect(&room, "pending");
    for i in 0..50 {
        room.create("tasks".into(), fields(&[("title", format!("t{i}").into())]))
            .unwrap();
    }
    assert_eq!(room.pending_changes(), 50, "operations, not yet sealed");
    assert_eq!(pending.borrow().len(), 50, "a `pending` event per change");
    pause(0).await; // the next task: the burst has been sealed
    room.create("tasks".into(), fields(&[("title", "later".into())]))
        .unwrap();
    assert_eq!(room.pending_changes(), 51);
    room.leave().await;

    let rows: Array = JsFuture::from(read_outbox(&name))
        .await
        .unwrap()
        .dyn_into()
        .unwrap();
    let envelopes: Array = get(&rows.get(0), "envelopes").dyn_into().unwrap();
    assert_eq!(envelopes.length(), 2, "one envelope per task");
    let back = Room::join(options(&name, &[("secret", SECRET_A.into())]))
        .await
        .unwrap();
    assert_eq!(back.pending_changes(), 51);
    assert_eq!(titles(&back).len(), 51);
    back.leave().await;
}

// ---------------------------------------------------------------- a relay in the page
//
// `WebSocket` is wrapped so that sockets to `ws://fake-relay.test` are fakes whose frames
// the test reads and answers with the core's own codec; every other URL gets a real one.
// As a relay does, a fake sends `CHALLENGE` first (right after `open`, built by the core's
// codec), and `FakeRelay` checks the signed `HELLO` that must answer it before replying.

#[wasm_bindgen(inline_js = r#"
const fakes = [];
// Builds the relay's CHALLENGE frame (a Rust function: the core's codec, fresh bytes).
let makeChallenge = null;
// Rooms (socket paths) whose sockets get their CHALLENGE only when the test sends it.
const held = new Set();
function roomPath(room) { return "/room/" + encodeURIComponent(room) + "/ws"; }
export function installFakeRelay(challenge) {
  makeChallenge = challenge;
  if (globalThis.__sealsyncFakeRelay) return;
  globalThis.__sealsyncFakeRelay = true;
  class FakeSocket {
    constructor(url, protocols) {
      this.url = String(url);
      this.protocols = protocols === undefined ? [] : [].concat(protocols).map(String);
      this.readyState = 0;
      this.binaryType = "blob";
      this.frames = [];
      this.texts = [];
      this.closedWith = null;
      // The CHALLENGE frame this socket got (null: none yet), and how many binary frames
      // the room sent before it (a relay would refuse them all).
      this.challenge = null;
      this.framesBeforeChallenge = 0;
      this.onopen = this.onmessage = this.onclose = this.onerror = null;
      fakes.push(this);
      setTimeout(() => {
        if (this.readyState !== 0) return;
        this.readyState = 1;
        if (this.onopen) this.onopen(new Event("open"));
        // As a relay does: CHALLENGE is the first frame, in a task of its own.
        if (!held.has(new URL(this.url).pathname)) setTimeout(() => sendChallenge(this), 0);
      }, 0);
    }
    send(data) {
      if (this.readyState !== 1) throw new DOMException("not open", "InvalidStateError");
      if (typeof data === "string") this.texts.push(data);
      else {
        if (this.challenge === null) this.framesBeforeChallenge += 1;
        this.frames.push(new Uint8Array(data));
      }
    }
    close(code) {
      if (this.readyState >= 2) return;
      this.readyState = 3;
      this.closedWith = code === undefined ? 1000 : code;
    }
  }
  globalThis.WebSocket = new Proxy(globalThis.WebSocket, {
    construct(target, args) {
      return String(args[0]).startsWith("ws://fake-relay.test")
        ? new FakeSocket(...args)
        : Reflect.construct(target, args);
    },
  });
}
export function fakeSockets(room) {
  const path = roomPath(room);
  return fakes.filter((f) => new URL(f.url).pathname === path);
}
export function sendChallenge(socket) {
  if (socket.readyState !== 1 || socket.challenge !== null) return;
  socket.challenge = makeChallenge();
  if (socket.onmessage) socket.onmessage({ data: socket.challenge.slice().buffer });
}
export function holdChallenges(room, hold) {
  if (hold) held.add(roomPath(room));
  else held.delete(roomPath(room));
}
export function closeFromRelay(socket, code) {
  if (socket.readyState >= 2) return;
  socket.readyState = 3;
  socket.closedWith = code;
  if (socket.onclose) socket.onclose(new CloseEvent("close", { code, wasClean: true }));
}
export function takeFrames(socket) { const out = socket.frames; socket.frames = []; return out; }
export function deliver(socket, bytes) {
  if (socket.onmessage) socket.onmessage({ data: bytes.slice().buffer });
}
export function captureConsoleWarn() {
  const seen = [];
  const original = console.warn;
  console.warn = (...args) => { seen.push(args.map(String).join(" ")); };
  return { seen, restore: () => { console.warn = original; } };
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = installFakeRelay)]
    fn install_fake_relay(challenge: &Function);
    /// Sends `socket` its `CHALLENGE` now (once per socket; a held room's are not sent on
    /// open).
    #[wasm_bindgen(js_name = sendChallenge)]
    fn send_challenge(socket: &JsValue);
    #[wasm_bindgen(js_name = holdChallenges)]
    fn hold_challenges(room: &str, hold: bool);
    /// The relay closes `socket` with `code` (the room sees a `close` event).
    #[wasm_bindgen(js_name = closeFromRelay)]
    fn close_from_relay(socket: &JsValue, code: u16);
    #[wasm_bindgen(js_name = fakeSockets)]
    fn fake_sockets(room: &str) -> Array;
    #[wasm_bindgen(js_name = takeFrames)]
    fn take_frames(socket: &JsValue) -> Array;
    #[wasm_bindgen(js_name = deliver)]
    fn deliver_bytes(socket: &JsValue, bytes: &[u8]);
    #[wasm_bindgen(js_name = captureConsoleWarn)]
    fn capture_console_warn() -> JsValue;
}

const FAKE_RELAY: &str = "ws://fake-relay.test";

/// The wall clock in whole milliseconds, as a relay stamps frames.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "Date.now() is a positive integer below 2^53"
)]
fn wall_ms() -> u64 {
    js_sys::Date::now() as u64
}

/// The relay's shipped limits (`relay/wrangler.toml`).
fn shipped_limits() -> sealsync_core::limits::RelayLimits {
    sealsync_core::limits::RelayLimits {
        max_frame_bytes: 1_048_576,
        rate_burst: 120,
        rate_per_second: 60,
        max_history_events: 100_000,
        max_history_bytes: 268_435_456,
    }
}

thread_local! {
    /// The fake relay's `CHALLENGE` for a new socket: 32 fresh random bytes, encoded by the
    /// core's codec.
    static MAKE_CHALLENGE: Closure<dyn FnMut() -> Uint8Array> = Closure::new(|| {
        let mut challenge = [0u8; CHALLENGE_LEN];
        getrandom::fill(&mut challenge).unwrap();
        let frame = RelayFrame::Challenge { challenge }.encode().unwrap();
        Uint8Array::from(frame.as_slice())
    });
}

/// Wraps `WebSocket` (once) so that sockets to [`FAKE_RELAY`] are fakes.
fn install() {
    MAKE_CHALLENGE.with(|make| install_fake_relay(make.as_ref().unchecked_ref()));
}

/// One room's fake relay connection: what the room sent, and the answers.
struct FakeRelay {
    room: String,
    socket: JsValue,
    seq: u64,
    opener: sealsync_core::Opener,
    keys: sealsync_core::RoomKeys,
    /// The `HELLO` the room opened the current socket with.
    hello: ClientFrame,
}

impl FakeRelay {
    /// Joins `room` through the fake relay and waits for its `HELLO` (see
    /// [`Self::expect_hello`]).
    async fn join(room: &str, pairs: &[(&str, JsValue)]) -> (Room, Self) {
        let (joined, mut relay) = Self::connect(room, pairs).await;
        relay.expect_hello().await;
        (joined, relay)
    }

    /// Joins `room` through the fake relay and waits for its first socket.
    async fn connect(room: &str, pairs: &[(&str, JsValue)]) -> (Room, Self) {
        install();
        let mut all = vec![
            ("url", JsValue::from(FAKE_RELAY)),
            ("secret", SECRET_A.into()),
            ("persist", false.into()),
            // The fake relay checks the protocol's frames one by one: no member frames (who
            // is online has its own tests, core's and tests/e2e/members.test.mjs).
            ("members", false.into()),
        ];
        all.extend(pairs.iter().cloned());
        let joined = Room::join(options(room, &all)).await.unwrap();
        let keys = sealsync_core::RoomKeys::derive(
            &sealsync_core::RoomKey::from_secret(SECRET_A).unwrap(),
            sealsync_core::RoomId::new(room).unwrap(),
        );
        let relay = Self {
            room: room.to_owned(),
            socket: JsValue::NULL,
            seq: 0,
            opener: sealsync_core::Opener::new(&keys),
            keys,
            hello: ClientFrame::Sync {
                after_seq: 0,
                token: 0,
            },
        };
        let socket = relay.socket_after(0).await;
        (joined, Self { socket, ..relay })
    }

    /// Waits for the room's socket number `n + 1` (0: the first).
    async fn socket_after(&self, n: u32) -> JsValue {
        for _ in 0..500 {
            let sockets = fake_sockets(&self.room);
            if sockets.length() > n {
                return sockets.get(n);
            }
            pause(10).await;
        }
        panic!("the room opened no socket number {}", n + 1);
    }

    /// Waits for the current socket's first frame: a `HELLO` sent after the relay's
    /// `CHALLENGE` (nothing before it), with the room's member key and a proof that
    /// verifies for this socket's challenge (as a relay checks it).
    async fn expect_hello(&mut self) {
        self.hello = self.next_frame().await;
        let challenge = self
            .challenge()
            .expect("a frame before the relay's CHALLENGE");
        assert_eq!(
            get(&self.socket, "framesBeforeChallenge").as_f64(),
            Some(0.0),
            "the room sent frames before the relay's CHALLENGE"
        );
        let ClientFrame::Hello {
            member_key, proof, ..
        } = &self.hello
        else {
            panic!("first frame: {:?}", self.hello);
        };
        assert_eq!(*member_key, self.keys.member_key(), "the room's member key");
        assert!(
            verify_proof(self.keys.room(), &challenge, member_key, proof),
            "the HELLO's proof does not verify for this socket's challenge"
        );
    }

    /// The challenge the relay sent on the current socket, if it sent one.
    fn challenge(&self) -> Option<[u8; CHALLENGE_LEN]> {
        let frame = get(&self.socket, "challenge");
        if frame.is_null() {
            return None;
        }
        let bytes = frame.dyn_into::<Uint8Array>().unwrap().to_vec();
        match RelayFrame::decode(&bytes).unwrap() {
            RelayFrame::Challenge { challenge } => Some(challenge),
            other => panic!("the fake relay's first frame: {other:?}"),
        }
    }

    fn deliver(&self, frame: &RelayFrame) {
        deliver_bytes(&self.socket, &frame.encode().unwrap());
    }

    /// `WELCOME` with `access` and the shipped limits, then `CAUGHT_UP`.
    fn welcome(&self, access: Access) {
        self.deliver(&RelayFrame::Welcome {
            relay_time: wall_ms(),
            head_seq: self.seq,
            snapshot_seq: 0,
            presence: 1,
            verifier_state: VerifierState::Created,
            access,
            limits: shipped_limits(),
        });
        self.deliver(&RelayFrame::CaughtUp {
            head_seq: self.seq,
            token: 1,
        });
    }

    /// Every frame sent since the last call (after this task: a flush runs at its end).
    async fn frames(&self) -> Vec<ClientFrame> {
        pause(0).await;
        take_frames(&self.socket)
            .iter()
            .map(|f| ClientFrame::decode(&f.dyn_into::<Uint8Array>().unwrap().to_vec()).unwrap())
            .collect()
    }

    /// Waits for the next frame.
    async fn next_frame(&self) -> ClientFrame {
        for _ in 0..500 {
            let mut frames = self.frames().await;
            if !frames.is_empty() {
                assert_eq!(frames.len(), 1, "{frames:?}");
                return frames.remove(0);
            }
            pause(10).await;
        }
        panic!("no frame from the room");
    }

    /// The operations in a published envelope, and its session and counter.
    fn open(&mut self, envelope: &[u8]) -> (Vec<sealsync_core::Op>, SessionId, u64) {
        let opened = self.opener.open(envelope).unwrap();
        let ops = sealsync_core::merge::decode_event_body(&opened.body, opened.hlc).unwrap();
        (
            ops.into_iter().map(|o| o.op).collect(),
            opened.header.session,
            opened.header.counter,
        )
    }

    fn ack(&mut self, session: SessionId, counter: u64) {
        self.seq += 1;
        self.deliver(&RelayFrame::Ack {
            session,
            counter,
            seq: self.seq,
            relay_time: wall_ms(),
            duplicate: false,
        });
    }

    fn sockets(&self) -> u32 {
        fake_sockets(&self.room).length()
    }
}

fn state(room: &Room) -> String {
    get(&room.status(), "state").as_string().unwrap()
}

#[wasm_bindgen_test]
async fn a_burst_goes_out_as_one_publish_under_the_v2_subprotocol() {
    let name = unique_room("fake-burst");
    let (room, mut relay) = FakeRelay::join(&name, &[]).await;
    let socket_protocols: Array = get(&relay.socket, "protocols").dyn_into().unwrap();
    assert_eq!(
        socket_protocols
            .iter()
            .map(|p| p.as_string().unwrap())
            .collect::<Vec<_>>(),
        [sealsync_core::wire::SUBPROTOCOL]
    );
    relay.welcome(Access::Write);
    assert_eq!(state(&room), "live");
    let pending = collect(&room, "pending");

    for i in 0..30 {
        room.create("tasks".into(), fields(&[("title", format!("t{i}").into())]))
            .unwrap();
    }
    assert_eq!(room.pending_changes(), 30);
    let frames = relay.frames().await;
    assert_eq!(frames.len(), 1, "one PUBLISH for the task's 30 changes");
    let ClientFrame::Publish { envelope } = &frames[0] else {
        panic!("{frames:?}");
    };
    let (ops, session, counter) = relay.open(envelope);
    assert_eq!(ops.len(), 30);
    relay.ack(session, counter);
    assert_eq!(room.pending_changes(), 0);
    assert_eq!(pending.borrow().last().and_then(JsValue::as_f64), Some(0.0));

    // A transaction is one envelope of its own.
    let tx_room = Rc::new(room);
    let inner = tx_room.clone();
    tx_room
        .transact(js_fn(move || {
            inner.create("tasks".into(), fields(&[("title", "x".into())]))?;
            inner.create("tasks".into(), fields(&[("title", "y".into())]))?;
            Ok(JsValue::UNDEFINED)
        }))
        .unwrap();
    let ClientFrame::Publish { envelope } = relay.next_frame().await else {
        panic!("expected a PUBLISH");
    };
    assert_eq!(relay.open(&envelope).0.len(), 2);
    tx_room.leave().await;
}

#[wasm_bindgen_test]
async fn a_refused_change_is_rolled_back_and_reported_and_later_edits_still_go_out() {
    let name = unique_room("fake-refused");
    let (room, mut relay) = FakeRelay::join(&name, &[]).await;
    relay.welcome(Access::Write);
    let log = Rc::new(RefCell::new(Vec::<(String, JsValue)>::new()));
    for kind in ["change", "rejected"] {
        let sink = log.clone();
        let listener = Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
            sink.borrow_mut().push((kind.to_owned(), e))
        });
        room.on(
            kind.into(),
            listener.as_ref().unchecked_ref::<Function>().clone().into(),
        )
        .unwrap();
        listener.forget();
    }

    let id = room
        .create("tasks".into(), fields(&[("title", "huge".into())]))
        .unwrap();
    let ClientFrame::Publish { envelope } = relay.next_frame().await else {
        panic!("expected a PUBLISH");
    };
    let (_, session, counter) = relay.open(&envelope);
    relay.deliver(&RelayFrame::Refused {
        session,
        counter,
        code: RelayErrorCode::TooLarge,
        retry_after_ms: 0,
        message: "the frame is over this relay's limit".into(),
    });
    {
        let log = log.borrow();
        let kinds: Vec<&str> = log.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(kinds, ["change", "change", "rejected"], "rollback first");
        let rollback = &log[1].1;
        assert_eq!(get(rollback, "type").as_string().unwrap(), "deleted");
        assert_eq!(get(rollback, "fromSelf").as_bool(), Some(false));
        let rejected = &log[2].1;
        assert_eq!(get(rejected, "code").as_string().unwrap(), "TOO_LARGE");
        assert!(get(rejected, "message")
            .as_string()
            .unwrap()
            .contains("limit"));
        let ops: Array = get(rejected, "ops").dyn_into().unwrap();
        assert_eq!(ops.length(), 1);
        let op = ops.get(0);
        assert_eq!(get(&op, "type").as_string().unwrap(), "created");
        assert_eq!(get(&op, "collection").as_string().unwrap(), "tasks");
        assert_eq!(get(&op, "id").as_string().unwrap(), id);
        assert_eq!(
            get(&get(&op, "fields"), "title").as_string().unwrap(),
            "huge"
        );
    }
    assert_eq!(room.pending_changes(), 0);
    assert!(titles(&room).is_empty());

    // The queue is not blocked: the next change goes out on the same socket.
    room.create("tasks".into(), fields(&[("title", "small".into())]))
        .unwrap();
    let ClientFrame::Publish { envelope } = relay.next_frame().await else {
        panic!("expected a PUBLISH");
    };
    let (ops, session, counter) = relay.open(&envelope);
    assert_eq!(ops.len(), 1);
    relay.ack(session, counter);
    assert_eq!(room.pending_changes(), 0);
    assert_eq!(titles(&room), ["small"]);
    assert_eq!(relay.sockets(), 1);
    room.leave().await;
}

#[wasm_bindgen_test]
async fn a_read_only_member_is_refused_at_once_and_earlier_changes_are_rejected() {
    let name = unique_room("fake-readonly");
    let (room, relay) = FakeRelay::join(&name, &[]).await;
    let changes = collect(&room, "change");
    // Made before the relay said who we are: applied, then rejected.
    room.create("tasks".into(), fields(&[("title", "early".into())]))
        .unwrap();
    // No `rejected` listener yet: the refusal goes to console.warn.
    let capture = capture_console_warn();
    relay.welcome(Access::ReadOnly);
    let restore: Function = get(&capture, "restore").dyn_into().unwrap();
    restore.call0(&JsValue::UNDEFINED).unwrap();
    let warned: Array = get(&capture, "seen").dyn_into().unwrap();
    assert!(
        warned
            .iter()
            .any(|w| w.as_string().unwrap().contains("READ_ONLY")),
        "{:?}",
        warned.to_vec()
    );
    assert_eq!(
        kinds_and_origins(&changes.borrow()),
        [("created".to_owned(), true), ("deleted".to_owned(), false)]
    );
    assert_eq!(room.pending_changes(), 0);

    let rejected = collect(&room, "rejected");
    let err = room
        .create("tasks".into(), fields(&[("title", "late".into())]))
        .unwrap_err();
    assert_eq!(code(&err), "READ_ONLY");
    assert_eq!(changes.borrow().len(), 2, "nothing applied");
    assert!(rejected.borrow().is_empty(), "thrown, not rejected");
    assert!(relay.frames().await.is_empty());
    room.leave().await;
}

#[wasm_bindgen_test]
async fn a_pending_guest_holds_changes_until_admitted_then_sends_them_without_reconnecting() {
    let name = unique_room("fake-guest");
    let (room, mut relay) = FakeRelay::join(&name, &[]).await;
    let warnings = collect(&room, "warning");
    // A pending guest's WELCOME: no catch-up follows it.
    relay.deliver(&RelayFrame::Welcome {
        relay_time: wall_ms(),
        head_seq: 0,
        snapshot_seq: 0,
        presence: 2,
        verifier_state: VerifierState::Matched,
        access: Access::Pending,
        limits: shipped_limits(),
    });
    assert_eq!(state(&room), "pending");
    assert!(
        !warnings
            .borrow()
            .iter()
            .any(|w| get(w, "code").as_string().as_deref() == Some("GUEST_PENDING")),
        "the status says it"
    );
    room.create("tasks".into(), fields(&[("title", "held".into())]))
        .unwrap();
    assert!(relay.frames().await.is_empty(), "held while pending");
    assert_eq!(room.pending_changes(), 1);
    assert_eq!(titles(&room), ["held"]);

    // Admitted: ACCESS, then the catch-up the relay held back.
    relay.deliver(&RelayFrame::Access {
        access: Access::Write,
    });
    assert_eq!(state(&room), "syncing");
    assert!(relay.frames().await.is_empty(), "not before the catch-up");
    relay.deliver(&RelayFrame::CaughtUp {
        head_seq: 0,
        token: 1,
    });
    assert_eq!(state(&room), "live");
    let ClientFrame::Publish { envelope } = relay.next_frame().await else {
        panic!("expected a PUBLISH");
    };
    let (ops, session, counter) = relay.open(&envelope);
    assert_eq!(ops.len(), 1);
    relay.ack(session, counter);
    assert_eq!(room.pending_changes(), 0);
    assert_eq!(relay.sockets(), 1, "no reconnect");
    room.leave().await;
}

#[wasm_bindgen_test]
async fn the_channel_option_names_only_the_ephemeral_channel() {
    let name = unique_room("fake-channel");
    let (room, mut relay) = FakeRelay::join(&name, &[("channel", "side".into())]).await;
    let side = relay.keys.channel_tag("side");
    let ClientFrame::Hello { channels, .. } = &relay.hello else {
        panic!("{:?}", relay.hello);
    };
    assert_eq!(
        channels,
        &[side],
        "HELLO subscribes to the ephemeral channel"
    );
    relay.welcome(Access::Write);

    room.create("tasks".into(), fields(&[("title", "for everyone".into())]))
        .unwrap();
    let ClientFrame::Publish { envelope } = relay.next_frame().await else {
        panic!("expected a PUBLISH");
    };
    let header = sealsync_core::EnvelopeHeader::parse(&envelope).unwrap().0;
    assert_eq!(
        header.channel,
        sealsync_core::client::ROOM_TAG,
        "stored changes belong to the whole room"
    );
    let (_, session, counter) = relay.open(&envelope);
    relay.ack(session, counter);

    let cursor = js_sys::JSON::parse(r#"{"x":1}"#).unwrap();
    room.broadcast(cursor).unwrap();
    let ClientFrame::Ephemeral { envelope } = relay.next_frame().await else {
        panic!("expected an EPHEMERAL");
    };
    let opened = relay.opener.open(&envelope).unwrap();
    assert_eq!(opened.header.channel, side);
    assert_eq!(opened.body, br#"{"x":1}"#);
    room.leave().await;
}

#[wasm_bindgen_test]
async fn the_room_waits_for_the_relays_challenge_and_signs_each_sockets_own() {
    let name = unique_room("fake-challenge");
    // This room's sockets get no CHALLENGE on open: the test sends it.
    hold_challenges(&name, true);
    let (room, mut relay) = FakeRelay::connect(&name, &[]).await;
    for _ in 0..500 {
        if get(&relay.socket, "readyState").as_f64() == Some(1.0) {
            break;
        }
        pause(10).await;
    }
    assert_eq!(get(&relay.socket, "readyState").as_f64(), Some(1.0));
    pause(200).await;
    assert!(
        relay.frames().await.is_empty(),
        "nothing before the relay's CHALLENGE"
    );
    assert_eq!(state(&room), "syncing");

    send_challenge(&relay.socket);
    relay.expect_hello().await;
    let first_challenge = relay.challenge().unwrap();
    let ClientFrame::Hello {
        member_key,
        proof: first_proof,
        ..
    } = relay.hello.clone()
    else {
        unreachable!("expect_hello checked it");
    };
    // A second CHALLENGE on the same socket gets no second HELLO.
    relay.deliver(&RelayFrame::Challenge {
        challenge: [9; CHALLENGE_LEN],
    });
    assert!(relay.frames().await.is_empty(), "one HELLO per socket");
    relay.welcome(Access::Write);
    assert_eq!(state(&room), "live");

    // The relay drops the socket. The next one gets its own challenge on open, and the
    // room signs that one: the first socket's proof does not verify there.
    hold_challenges(&name, false);
    close_from_relay(&relay.socket, 1011);
    relay.socket = relay.socket_after(1).await;
    relay.expect_hello().await;
    let second_challenge = relay.challenge().unwrap();
    assert_ne!(second_challenge, first_challenge);
    let ClientFrame::Hello { proof, .. } = &relay.hello else {
        unreachable!("expect_hello checked it");
    };
    assert_ne!(proof, &first_proof);
    assert!(
        !verify_proof(
            relay.keys.room(),
            &second_challenge,
            &member_key,
            &first_proof
        ),
        "a recorded HELLO is useless on another socket"
    );
    relay.welcome(Access::Write);
    assert_eq!(state(&room), "live");
    assert_eq!(relay.sockets(), 2);
    room.leave().await;
}

#[wasm_bindgen(inline_js = r#"
export function badValues() {
  class Point { constructor() { this.x = 1; } }
  const cycle = { a: 1 }; cycle.self = cycle;
  const sparse = [1, , 3];
  return [
    ["due", { due: new Date() }, "fields.due", "Date"],
    ["nan", { n: NaN }, "fields.n", "NaN"],
    ["inf", { n: -Infinity }, "fields.n", "-inf"],
    ["big", { n: 10n }, "fields.n", "BigInt"],
    ["fn", { f() {} }, "fields.f", "function"],
    ["undef", { tags: ["a", undefined] }, "fields.tags[1]", "undefined"],
    ["hole", { tags: sparse }, "fields.tags[1]", "undefined"],
    ["class", { at: new Point() }, "fields.at", "Point"],
    ["map", { m: new Map() }, "fields.m", "Map"],
    ["nested", { meta: { "due date": [{ when: new Date() }] } }, 'fields.meta["due date"][0].when', "Date"],
    ["cycle", { c: cycle }, "fields.c.self", "cycle"],
    ["symbol", { s: Symbol("x") }, "fields.s", "symbol"],
  ];
}
export function isFrozenDeep(v) {
  if (v === null || typeof v !== "object") return true;
  return Object.isFrozen(v) && Object.values(v).every(isFrozenDeep);
}
export function tryMutate(entity) {
  try { entity.title = "mutated"; } catch (_) { /* strict mode would throw */ }
  return entity.title;
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = badValues)]
    fn bad_values() -> Array;
    #[wasm_bindgen(js_name = isFrozenDeep)]
    fn is_frozen_deep(value: &JsValue) -> bool;
    #[wasm_bindgen(js_name = tryMutate)]
    fn try_mutate(entity: &JsValue) -> JsValue;
}

#[wasm_bindgen_test]
async fn values_json_cannot_hold_are_refused_naming_their_path() {
    let room = offline_room("json", false).await;
    for case in bad_values().iter() {
        let case: Array = case.dyn_into().unwrap();
        let label = case.get(0).as_string().unwrap();
        let path = case.get(2).as_string().unwrap();
        let what = case.get(3).as_string().unwrap();
        let err = room.create("tasks".into(), case.get(1)).unwrap_err();
        assert_eq!(code(&err), "INVALID_VALUE", "{label}");
        let message = get(&err, "message").as_string().unwrap();
        assert!(
            message.starts_with(&format!("{path} is ")) && message.contains(&what),
            "{label}: {message}"
        );
    }
    assert_eq!(titles(&room), Vec::<String>::new(), "nothing was applied");
    assert_eq!(room.pending_changes(), 0);

    // Updates and broadcasts are checked the same way.
    let id = room
        .create("tasks".into(), fields(&[("title", "a".into())]))
        .unwrap();
    let due = js_sys::Date::new_0();
    let err = room
        .update(
            "tasks".into(),
            id.clone().into(),
            fields(&[("due", due.into())]),
        )
        .unwrap_err();
    assert_eq!(code(&err), "INVALID_VALUE");
    let err = room.broadcast(f64::NAN.into()).unwrap_err();
    assert_eq!(code(&err), "INVALID_VALUE");
    assert!(get(&err, "message")
        .as_string()
        .unwrap()
        .starts_with("value is "));

    // An undefined property is left out (as JSON leaves it out); numbers stay numbers.
    let id = room
        .create(
            "tasks".into(),
            fields(&[
                ("title", "b".into()),
                ("note", JsValue::UNDEFINED),
                ("n", 3.into()),
                ("x", 0.5.into()),
            ]),
        )
        .unwrap();
    let tasks: Array = room.get("tasks".into()).unwrap().dyn_into().unwrap();
    let b = tasks
        .iter()
        .find(|t| get(t, "id").as_string().as_deref() == Some(id.as_str()))
        .unwrap();
    assert!(!Reflect::has(&b, &"note".into()).unwrap(), "{b:?}");
    assert_eq!(get(&b, "n").as_f64(), Some(3.0));
    assert_eq!(get(&b, "x").as_f64(), Some(0.5));
    room.leave().await;
}

#[wasm_bindgen_test]
async fn non_string_arguments_are_coded_errors() {
    let room = offline_room("args", false).await;
    assert_eq!(
        code(&room.get(JsValue::UNDEFINED).unwrap_err()),
        "INVALID_ARGUMENT"
    );
    assert_eq!(
        code(&room.create(5.into(), fields(&[])).unwrap_err()),
        "INVALID_ARGUMENT"
    );
    assert_eq!(
        code(&room.on("change".into(), 5.into()).unwrap_err()),
        "INVALID_ARGUMENT",
        "a listener that is not a function"
    );
    assert_eq!(
        code(&Room::parse_share_link(JsValue::NULL).unwrap_err()),
        "INVALID_ARGUMENT"
    );
    room.leave().await;
}

#[wasm_bindgen_test]
async fn reorder_and_claim_read_their_shapes_and_refuse_others() {
    let room = offline_room("shapes", false).await;
    let id = room
        .create("tasks".into(), fields(&[("title", "a".into())]))
        .unwrap();
    let item = |id: JsValue, sort: JsValue| -> JsValue {
        Array::of1(&fields(&[("id", id), ("sortOrder", sort)])).into()
    };
    room.reorder("tasks".into(), item(id.clone().into(), "M".into()))
        .unwrap();
    room.claim(
        "tasks".into(),
        id.clone().into(),
        fields(&[("claimedBy", "u1".into()), ("claimedByName", "Ann".into())]),
    )
    .unwrap();
    // The task as reorder and claim left it; `why` names the moment.
    let applied = |why: &str| {
        let task = room
            .get("tasks".into())
            .unwrap()
            .dyn_into::<Array>()
            .unwrap()
            .get(0);
        for (field, value) in [
            ("sortOrder", "M"),
            ("claimedBy", "u1"),
            ("claimedByName", "Ann"),
        ] {
            assert_eq!(
                get(&task, field).as_string().as_deref(),
                Some(value),
                "{why}"
            );
        }
    };
    applied("after the reorder and the claim");
    for (items, why) in [
        (item(5.into(), "M".into()), "a number id"),
        (item(id.clone().into(), JsValue::UNDEFINED), "no sortOrder"),
        ("M".into(), "not an array"),
    ] {
        let err = room.reorder("tasks".into(), items).unwrap_err();
        assert_eq!(code(&err), "INVALID_ARGUMENT", "{why}");
        assert!(
            get(&err, "message")
                .as_string()
                .unwrap()
                .starts_with("reorder takes an array of { id, sortOrder } (strings): "),
            "{why}: {err:?}"
        );
    }
    let err = room
        .claim(
            "tasks".into(),
            id.clone().into(),
            fields(&[("claimedBy", "u1".into()), ("by", "x".into())]),
        )
        .unwrap_err();
    assert_eq!(code(&err), "INVALID_ARGUMENT", "an unknown member: {err:?}");
    let err = room
        .claim(
            "tasks".into(),
            id.clone().into(),
            js_sys::Date::new_0().into(),
        )
        .unwrap_err();
    assert_eq!(code(&err), "INVALID_VALUE", "a Date is not JSON: {err:?}");
    applied("nothing refused was applied");
    room.leave().await;
}

#[wasm_bindgen_test]
async fn get_returns_the_same_frozen_objects_until_they_change() {
    let room = offline_room("stable", false).await;
    let a = room
        .create("tasks".into(), fields(&[("title", "a".into())]))
        .unwrap();
    let b = room
        .create(
            "tasks".into(),
            fields(&[
                ("title", "b".into()),
                ("tags", Array::of1(&"x".into()).into()),
            ]),
        )
        .unwrap();
    room.create("notes".into(), fields(&[("text", "n".into())]))
        .unwrap();
    let by_id = |array: &JsValue, id: &str| {
        Array::from(array)
            .iter()
            .find(|t| get(t, "id").as_string().as_deref() == Some(id))
            .unwrap()
    };

    let first = room.get("tasks".into()).unwrap();
    let notes = room.get("notes".into()).unwrap();
    assert!(
        Object::is(&first, &room.get("tasks".into()).unwrap()),
        "no change: the same array"
    );
    assert!(is_frozen_deep(&first), "frozen, nested values included");
    assert_eq!(try_mutate(&by_id(&first, &a)).as_string().unwrap(), "a");
    let snapshot = room.snapshot().unwrap();
    assert!(
        Object::is(&get(&snapshot, "tasks"), &first),
        "snapshot() holds the same arrays"
    );

    // A change to A: a new array and a new A; B's object (and the other collection) stay.
    room.update(
        "tasks".into(),
        a.clone().into(),
        fields(&[("done", true.into())]),
    )
    .unwrap();
    let second = room.get("tasks".into()).unwrap();
    assert!(!Object::is(&first, &second), "a change: a new array");
    assert!(!Object::is(&by_id(&first, &a), &by_id(&second, &a)));
    assert_eq!(get(&by_id(&second, &a), "done").as_bool(), Some(true));
    assert!(
        Object::is(&by_id(&first, &b), &by_id(&second, &b)),
        "B untouched: the same object"
    );
    assert!(
        Object::is(&notes, &room.get("notes".into()).unwrap()),
        "other collections untouched"
    );
    assert!(is_frozen_deep(&second));

    // A rollback (a transaction that throws) is a change too.
    let inner = Rc::new(room);
    let tx = inner.clone();
    let b_id = b.clone();
    let thrown = inner.transact(js_fn(move || {
        tx.update(
            "tasks".into(),
            b_id.clone().into(),
            fields(&[("title", "B".into())]),
        )?;
        Err(JsValue::from_str("boom"))
    }));
    assert!(thrown.is_err());
    let third = inner.get("tasks".into()).unwrap();
    assert!(!Object::is(&second, &third));
    assert_eq!(get(&by_id(&third, &b), "title").as_string().unwrap(), "b");
    assert!(
        Object::is(&by_id(&second, &a), &by_id(&third, &a)),
        "A untouched by the rollback"
    );

    // Changes that move entities: the order is read again, untouched objects stay.
    let order = |array: &JsValue| -> Vec<String> {
        Array::from(array)
            .iter()
            .map(|t| get(&t, "id").as_string().unwrap())
            .collect()
    };
    let mut by_ids = vec![a.clone(), b.clone()];
    by_ids.sort();
    assert_eq!(order(&third), by_ids, "no sort keys: by id");
    inner
        .update(
            "tasks".into(),
            b.clone().into(),
            fields(&[("sortOrder", "V".into())]),
        )
        .unwrap();
    let moved = inner.get("tasks".into()).unwrap();
    assert_eq!(order(&moved), [b.clone(), a.clone()], "keyed first");
    assert!(Object::is(&by_id(&moved, &a), &by_id(&third, &a)));
    let items = Array::of1(
        &Object::from_entries(&Array::of2(
            &Array::of2(&"id".into(), &a.clone().into()),
            &Array::of2(&"sortOrder".into(), &"A".into()),
        ))
        .unwrap(),
    );
    inner.reorder("tasks".into(), items.into()).unwrap();
    let reordered = inner.get("tasks".into()).unwrap();
    assert_eq!(order(&reordered), [a.clone(), b.clone()], "A < V");
    assert!(Object::is(&by_id(&reordered, &b), &by_id(&moved, &b)));
    // An update that keeps the order after a reorder: the entity in its new place.
    inner
        .update(
            "tasks".into(),
            b.clone().into(),
            fields(&[("title", "b2".into())]),
        )
        .unwrap();
    let patched = inner.get("tasks".into()).unwrap();
    assert_eq!(order(&patched), order(&reordered));
    assert_eq!(
        get(&by_id(&patched, &b), "title").as_string().unwrap(),
        "b2"
    );
    assert!(Object::is(&by_id(&patched, &a), &by_id(&reordered, &a)));
    assert!(is_frozen_deep(&patched));
    let third = patched;

    // A delete drops the entity and keeps the others.
    inner.delete("tasks".into(), a.clone().into()).unwrap();
    let fourth = Array::from(&inner.get("tasks".into()).unwrap());
    assert_eq!(fourth.length(), 1);
    assert!(Object::is(&fourth.get(0), &by_id(&third, &b)));
    inner.leave().await;
}

/// A `token` function that throws: every connection attempt reports `TOKEN_FAILED`.
fn throwing_token() -> JsValue {
    js_fn(|| Err(JsValue::from_str("no token today")))
}

#[wasm_bindgen_test]
async fn warnings_from_before_the_first_listener_are_handed_to_it() {
    let room = Room::join(options(
        &unique_room("buffered"),
        &[
            ("secret", SECRET_A.into()),
            ("persist", false.into()),
            ("token", throwing_token()),
        ],
    ))
    .await
    .unwrap();
    // As a React effect would: the listener comes well after join resolved and the first
    // connection attempt failed.
    pause(100).await;
    let late = collect(&room, "warning");
    assert!(
        late.borrow().is_empty(),
        "handed over after on() returns, not inside it"
    );
    pause(0).await;
    let codes: Vec<String> = late
        .borrow()
        .iter()
        .map(|w| get(w, "code").as_string().unwrap())
        .collect();
    assert!(
        !codes.is_empty() && codes.iter().all(|c| c == "TOKEN_FAILED"),
        "{codes:?}"
    );
    let count = codes.len();
    // Only once: a second listener gets only what comes from now on.
    let second = collect(&room, "warning");
    pause(0).await;
    assert!(second.borrow().is_empty(), "{:?}", second.borrow());
    assert_eq!(late.borrow().len(), count, "nothing delivered twice");
    room.leave().await;
}

#[wasm_bindgen_test]
async fn the_on_warning_option_hears_the_joins_own_warnings() {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let sink = seen.clone();
    let listener = Closure::<dyn FnMut(JsValue)>::new(move |w: JsValue| sink.borrow_mut().push(w));
    let factory = js_fn(|| Err(JsValue::from_str("no workers here")));
    let room = Room::join(options(
        &unique_room("on-warning"),
        &[
            ("password", "hunter2".into()),
            ("persist", false.into()),
            ("kdfWorker", factory),
            ("onWarning", listener.as_ref().clone()),
        ],
    ))
    .await
    .unwrap();
    listener.forget();
    pause(50).await;
    let seen: Vec<JsValue> = seen.borrow().clone();
    let kdf: Vec<&JsValue> = seen
        .iter()
        .filter(|w| get(w, "code").as_string().as_deref() == Some("KDF_WORKER_FAILED"))
        .collect();
    assert_eq!(kdf.len(), 1, "{seen:?}");
    assert!(get(kdf[0], "message")
        .as_string()
        .unwrap()
        .contains("no workers here"));
    room.leave().await;
}
