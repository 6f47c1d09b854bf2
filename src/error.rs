//! JavaScript errors with a stable `code` property.
//!
//! Every error the SDK hands to JavaScript is a `SealsyncError` (`js/error.js`, exported by
//! the package's entry): a real `Error` subclass (so it has a stack and works with
//! `instanceof Error` and `instanceof SealsyncError`) whose `code` is a stable
//! `SCREAMING_SNAKE_CASE` string: the core's [`sealsync_core::Error::code`], or one of the
//! shell's own codes below. Applications branch on `err.code`, never on the message.

use js_sys::Reflect;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};

#[wasm_bindgen(module = "/js/error.js")]
extern "C" {
    /// `new SealsyncError(code, message)`.
    #[wasm_bindgen(js_name = sealsyncError)]
    fn sealsync_error(code: &str, message: &str) -> JsValue;
}

/// The options passed to `Room.join` are missing a field or have one of the wrong type.
pub(crate) const INVALID_OPTIONS: &str = "INVALID_OPTIONS";
/// A method argument has the wrong type or shape (fields not an object, unknown event).
pub(crate) const INVALID_ARGUMENT: &str = "INVALID_ARGUMENT";
/// A method was called after `room.leave()`.
pub(crate) const ROOM_CLOSED: &str = "ROOM_CLOSED";
/// IndexedDB refused to open or to write (private mode, quota, blocked upgrade).
pub(crate) const STORAGE_FAILED: &str = "STORAGE_FAILED";
/// The key-derivation worker could not be started or failed.
pub(crate) const KDF_WORKER_FAILED: &str = "KDF_WORKER_FAILED";
/// The browser offers no cryptographically secure random numbers.
pub(crate) const NO_RANDOMNESS: &str = "NO_RANDOMNESS";
/// The `token` function of `Room.join` threw, rejected or returned no string.
pub(crate) const TOKEN_FAILED: &str = "TOKEN_FAILED";
/// A browser API the SDK needs is missing or threw (no `window`, WebSocket constructor threw).
pub(crate) const BROWSER_API: &str = "BROWSER_API";
/// A field value JSON cannot hold (`Date`, `NaN`, `BigInt`, a function, a class instance,
/// `undefined` in an array, a cycle): the message names the field's path.
pub(crate) const INVALID_VALUE: &str = "INVALID_VALUE";
/// Codes thrown by the package's entry (`js/package/index.js`), not by Rust: `Room.join` and
/// the statics before `init()` resolved; `init()` failing to load the wasm.
#[cfg(test)]
pub(crate) const JS_CODES: [&str; 2] = ["NOT_INITIALIZED", "INIT_FAILED"];

/// Builds a `SealsyncError` with `code` and `message`.
pub(crate) fn coded(code: &str, message: &str) -> JsValue {
    sealsync_error(code, message)
}

/// Converts a core error into a JS `Error` carrying its stable code.
pub(crate) fn from_core(err: &sealsync_core::Error) -> JsValue {
    coded(err.code(), &err.to_string())
}

/// Wraps a JS exception thrown by a browser API into a coded `Error`, keeping its message.
pub(crate) fn from_js(code: &str, context: &str, thrown: &JsValue) -> JsValue {
    let detail = describe(thrown);
    coded(code, &format!("{context}: {detail}"))
}

/// A human-readable description of any thrown JS value.
pub(crate) fn describe(thrown: &JsValue) -> String {
    if let Some(e) = thrown.dyn_ref::<js_sys::Error>() {
        return String::from(e.message());
    }
    if let Some(s) = thrown.as_string() {
        return s;
    }
    String::from("unknown error")
}

/// The `code` of a JS error value, if it has one (used by tests and by the worker bridge).
pub(crate) fn code_of(value: &JsValue) -> Option<String> {
    Reflect::get(value, &JsValue::from_str("code"))
        .ok()
        .and_then(|c| c.as_string())
}
