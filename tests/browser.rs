//! The SDK in a real browser (headless Chromium through `wasm-pack test`): sealing and
//! opening through the wasm boundary, events crossing it, and the outbox round trip
//! through IndexedDB. No relay runs here: rooms point at a closed port and stay offline,
//! which is exactly when the outbox matters. Run with `tests/run-browser.sh`.
#![cfg(target_arch = "wasm32")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "tests"
)]

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Array, Function, Object, Reflect, Uint8Array};
use sealsync::{derive_room_key, Room};
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
    room.on(kind, listener.as_ref().unchecked_ref::<Function>().clone())
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
        let browser = derive_room_key(room, password).unwrap();
        assert_eq!(browser, expected, "{room:?} / {password:?}");
    }
}

#[wasm_bindgen_test]
fn password_key_is_deterministic_and_bound_to_room_and_password() {
    let a = derive_room_key("team-42", "correct horse").unwrap();
    assert_eq!(a.len(), 32);
    assert_eq!(a, derive_room_key("team-42", "correct horse").unwrap());
    assert_ne!(a, derive_room_key("team-42", "correct horse!").unwrap());
    assert_ne!(a, derive_room_key("team-43", "correct horse").unwrap());
    assert_eq!(
        code(&derive_room_key("team-42", "").unwrap_err()),
        "EMPTY_PASSWORD"
    );
    assert_eq!(
        code(&derive_room_key("a/b", "pw").unwrap_err()),
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
    // Where the worker could not run (this test page serves the glue under another name),
    // the fallback is announced; where it ran, nothing is.
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
    room.update("tasks".into(), id.clone(), fields(&[("done", true.into())]))
        .unwrap();
    assert_eq!(
        get(&changes.borrow()[1], "type").as_string().unwrap(),
        "updated"
    );

    let tasks: Array = room.get("tasks").unwrap().dyn_into().unwrap();
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
        .update("tasks".into(), id.clone(), "not an object".into())
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
            "change",
            listener.as_ref().unchecked_ref::<Function>().clone(),
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
            "nope",
            listener.as_ref().unchecked_ref::<Function>().clone(),
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

    // Stored: one record for the session, two sealed envelopes, no plaintext.
    let rows: Array = JsFuture::from(read_outbox(&name))
        .await
        .unwrap()
        .dyn_into()
        .unwrap();
    assert_eq!(rows.length(), 1);
    let envelopes: Array = get(&rows.get(0), "envelopes").dyn_into().unwrap();
    assert_eq!(envelopes.length(), 2);
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
    let tasks: Array = second.get("tasks").unwrap().dyn_into().unwrap();
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
    let tasks: Array = stranger.get("tasks").unwrap().dyn_into().unwrap();
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
    let tasks: Array = back.get("tasks").unwrap().dyn_into().unwrap();
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
    let link = room
        .share_link(Some("https://app.example/board".into()))
        .unwrap();
    assert!(link.starts_with("https://app.example/board#"), "{link}");
    let parsed = Room::parse_share_link(&link);
    assert_eq!(get(&parsed, "room").as_string().unwrap(), "café board");
    assert_eq!(get(&parsed, "secret").as_string().unwrap(), secret);
    assert_eq!(get(&parsed, "url").as_string().unwrap(), DEAD_RELAY);
    assert!(Room::parse_share_link("https://app.example/#nothing=here").is_null());
    room.leave().await;
}
