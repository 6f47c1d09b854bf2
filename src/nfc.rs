//! Unicode NFC through the browser's `String.prototype.normalize("NFC")`, so the SDK's wasm
//! carries no normalisation tables (the core's `unicode-nfc` feature stays off). The core
//! normalises room ids and passwords with whatever this returns.

/// The NFC form of `s`.
pub(crate) fn nfc(s: &str) -> String {
    String::from(js_sys::JsString::from(s).normalize("NFC"))
}
