//! JS arguments of `create`/`update`/`reorder`/`claim` as the core's operation parts.
//!
//! Only shapes are checked here (an object where an object is expected); every rule about
//! names, ids and keys is the core's (`Op::validate`, run by `Client::handle_local_op`).

use sealsync_core::merge::ReorderItem;
use serde::Deserialize;
use serde_json::{Map, Value};
use wasm_bindgen::JsValue;

use crate::error;

/// A plain object of fields (`{ title: "Ship", done: false }`) as a JSON map.
///
/// # Errors
/// `INVALID_ARGUMENT` when `value` is not an object of JSON-compatible values.
pub(crate) fn fields(value: &JsValue, what: &str) -> Result<Map<String, Value>, JsValue> {
    if !value.is_object() || js_sys::Array::is_array(value) {
        return Err(error::coded(
            error::INVALID_ARGUMENT,
            &format!("{what} must be a plain object of fields"),
        ));
    }
    match serde_wasm_bindgen::from_value::<Value>(value.clone()) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(error::coded(
            error::INVALID_ARGUMENT,
            &format!("{what} must be a plain object of fields"),
        )),
        Err(e) => Err(error::coded(
            error::INVALID_ARGUMENT,
            &format!("{what} holds a value that is not JSON: {e}"),
        )),
    }
}

/// `[{ id, sortOrder }, …]`.
///
/// # Errors
/// `INVALID_ARGUMENT` when `value` is not an array of `{ id: string, sortOrder: string }`.
pub(crate) fn reorder_items(value: &JsValue) -> Result<Vec<ReorderItem>, JsValue> {
    serde_wasm_bindgen::from_value(value.clone()).map_err(|e| {
        error::coded(
            error::INVALID_ARGUMENT,
            &format!("reorder takes an array of {{ id, sortOrder }} (strings): {e}"),
        )
    })
}

/// The claim fields, all `null` when `value` is `null`/`undefined` (a release).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Claim {
    /// Who claims it.
    #[serde(default)]
    pub(crate) claimed_by: Value,
    /// Their display name.
    #[serde(default)]
    pub(crate) claimed_by_name: Value,
    /// Their avatar URL.
    #[serde(default)]
    pub(crate) claimed_by_avatar: Value,
}

/// `{ claimedBy, claimedByName?, claimedByAvatar? }`, or `null` to release.
///
/// # Errors
/// `INVALID_ARGUMENT` when `value` is neither `null` nor such an object.
pub(crate) fn claim(value: &JsValue) -> Result<Claim, JsValue> {
    if value.is_null() || value.is_undefined() {
        return Ok(Claim::default());
    }
    serde_wasm_bindgen::from_value(value.clone()).map_err(|e| {
        error::coded(
            error::INVALID_ARGUMENT,
            &format!("claim takes {{ claimedBy, claimedByName, claimedByAvatar }} or null: {e}"),
        )
    })
}

/// An optional string argument (`undefined`/`null` is `None`).
///
/// # Errors
/// `INVALID_ARGUMENT` when it is present and not a string.
pub(crate) fn opt_string(value: &JsValue, what: &str) -> Result<Option<String>, JsValue> {
    if value.is_null() || value.is_undefined() {
        return Ok(None);
    }
    value.as_string().map(Some).ok_or_else(|| {
        error::coded(
            error::INVALID_ARGUMENT,
            &format!("{what} must be a string or null"),
        )
    })
}
