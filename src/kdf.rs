//! The room password's Argon2id, run off the main thread.
//!
//! Argon2id with 19 MiB and two passes takes tens of milliseconds in wasm, long enough to drop
//! frames, so `Room.join` runs it in a module worker that loads this same wasm module (see
//! `js/kdf.js` and the package's `kdf-worker.js`) and posts back the 32-byte room key. The
//! worker is started by the application's `kdfWorker` factory when `Room.join` was given one,
//! else by the one the package's entry (`index.js`) registers. Only the core's own derivation
//! errors (`CORE_CODES`) reject the join: whatever else goes wrong with the worker (none can
//! start, its script or the glue does not load, a bundler rewrote its URL, a strict CSP, it
//! never answers), the key is derived on the main thread and the room reports a `warning`
//! with code `KDF_WORKER_FAILED`.

use js_sys::{Promise, Uint8Array};
use sealsync_core::kdf::RoomKey;
use sealsync_core::RoomId;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::error;
use crate::nfc;

/// The length of a room key.
pub(crate) const KEY_LEN: usize = 32;

/// The core's codes for a derivation that failed on its own terms: the main thread would fail
/// the same way, so these reject the join (`js/kdf.js` lets the same three through).
const CORE_CODES: [&str; 3] = ["EMPTY_PASSWORD", "INVALID_ROOM_ID", "KDF_FAILED"];

#[wasm_bindgen(module = "/js/kdf.js")]
extern "C" {
    #[wasm_bindgen(js_name = deriveInWorker, catch)]
    fn derive_in_worker(
        module: &JsValue,
        room: &str,
        password: &str,
        factory: &JsValue,
    ) -> Result<Promise, JsValue>;
}

/// How the key was derived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// In a module worker: the page stayed responsive.
    Worker,
    /// On the main thread, after the worker failed for `reason`.
    MainThread {
        /// Why the worker could not be used.
        reason: String,
    },
}

/// Derives the 32-byte room key for `room` from `password`, preferring a worker: the one
/// `factory` (the `kdfWorker` option, a JS function returning a `Worker`) starts, else the
/// package's default.
///
/// # Errors
/// The core's error (`EMPTY_PASSWORD`, `INVALID_ROOM_ID`, `KDF_FAILED`) as a coded JS `Error`.
pub(crate) async fn derive(
    room: &RoomId,
    password: &str,
    factory: Option<&JsValue>,
) -> Result<([u8; KEY_LEN], Route), JsValue> {
    match derive_off_thread(room.as_str(), password, factory).await {
        Ok(key) => Ok((key, Route::Worker)),
        Err(e) if is_core_error(&e) => Err(e),
        Err(e) => {
            let reason = error::describe(&e);
            let key = RoomKey::from_password_with(room, password, nfc::nfc)
                .map_err(|e| error::from_core(&e))?;
            Ok((secret_bytes(&key)?, Route::MainThread { reason }))
        }
    }
}

/// Whether `e` is one of the core's derivation errors (which the main thread would repeat).
fn is_core_error(e: &JsValue) -> bool {
    error::code_of(e).is_some_and(|code| CORE_CODES.contains(&code.as_str()))
}

/// The 32 bytes of `key` (through its secret form, the core's one way out for a key).
///
/// # Errors
/// `KDF_FAILED` if the secret is not 32 bytes of base64url, which the core never writes.
pub(crate) fn secret_bytes(key: &RoomKey) -> Result<[u8; KEY_LEN], JsValue> {
    use base64::Engine as _;
    // One spare byte: the decoder sizes its output check by a conservative estimate.
    let mut buf = [0_u8; KEY_LEN + 1];
    let decoded =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode_slice(key.to_secret(), &mut buf);
    match (decoded, buf.first_chunk::<KEY_LEN>()) {
        (Ok(KEY_LEN), Some(bytes)) => Ok(*bytes),
        _ => Err(error::coded(
            "KDF_FAILED",
            "the derived key has an unexpected form",
        )),
    }
}

async fn derive_off_thread(
    room: &str,
    password: &str,
    factory: Option<&JsValue>,
) -> Result<[u8; KEY_LEN], JsValue> {
    let promise = derive_in_worker(
        &wasm_bindgen::module(),
        room,
        password,
        factory.unwrap_or(&JsValue::UNDEFINED),
    )
    .map_err(|e| error::from_js(error::KDF_WORKER_FAILED, "could not start the worker", &e))?;
    let value = JsFuture::from(promise).await?;
    let bytes = value
        .dyn_into::<Uint8Array>()
        .map_err(|_| error::coded(error::KDF_WORKER_FAILED, "the worker returned no key"))?
        .to_vec();
    <[u8; KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| {
        error::coded(
            error::KDF_WORKER_FAILED,
            "the worker returned a key of the wrong length",
        )
    })
}
