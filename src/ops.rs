//! JS arguments of `create`/`update`/`reorder`/`claim` as the core's operation parts.
//!
//! Only shapes are checked here (an object where an object is expected); every rule about
//! names, ids and keys is the core's (`Op::validate`, run by `Client::handle_local_op`).

use js_sys::Reflect;
use sealsync_core::merge::ReorderItem;
use serde::Deserialize;
use serde_json::{Map, Value};
use wasm_bindgen::{JsCast, JsValue};

use crate::error;

/// A plain object of fields (`{ title: "Ship", done: false }`) as a JSON map.
///
/// # Errors
/// `INVALID_ARGUMENT` when `value` is not a plain object; `INVALID_VALUE` (naming the
/// field's path) when a value in it is not JSON (see [`json`]).
pub(crate) fn fields(value: &JsValue, what: &str) -> Result<Map<String, Value>, JsValue> {
    if !is_plain_object(value) {
        return Err(error::coded(
            error::INVALID_ARGUMENT,
            &format!("{what} must be a plain object of fields"),
        ));
    }
    match json(value, what)? {
        Value::Object(map) => Ok(map),
        _ => Err(error::coded(
            error::INVALID_ARGUMENT,
            &format!("{what} must be a plain object of fields"),
        )),
    }
}

/// How deep values may nest (a cycle is reported as such before it gets there).
const MAX_DEPTH: usize = 100;

/// `value` as JSON, refusing what JSON cannot hold instead of coercing it the way
/// `JSON.stringify` does: `NaN` and infinities, `BigInt`, symbols, functions, `undefined`
/// (except as an object property, which is left out as JSON leaves it out), holes or
/// `undefined` in arrays, objects other than plain objects and arrays (`Date`, `Map`,
/// class instances, typed arrays), cycles. `path` names the value in the error
/// (`fields.due`, `fields.tags[2]`).
///
/// # Errors
/// `INVALID_VALUE`, its message naming the offending path.
pub(crate) fn json(value: &JsValue, path: &str) -> Result<Value, JsValue> {
    let mut stack = Vec::new();
    to_json(value, &mut String::from(path), &mut stack)
}

fn refuse(path: &str, what: &str) -> JsValue {
    error::coded(
        error::INVALID_VALUE,
        &format!("{path} is {what}, which JSON cannot hold: store a string, number, boolean, null, array or plain object"),
    )
}

fn to_json(value: &JsValue, path: &mut String, stack: &mut Vec<JsValue>) -> Result<Value, JsValue> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    if let Some(b) = value.as_bool() {
        return Ok(Value::Bool(b));
    }
    if let Some(s) = value.as_string() {
        return Ok(Value::String(s));
    }
    if let Some(n) = value.as_f64() {
        return number(n).ok_or_else(|| refuse(path, &format!("{n}")));
    }
    if value.is_undefined() {
        return Err(refuse(path, "undefined"));
    }
    if value.is_bigint() {
        return Err(refuse(path, "a BigInt"));
    }
    if value.is_symbol() {
        return Err(refuse(path, "a symbol"));
    }
    if value.is_function() {
        return Err(refuse(path, "a function"));
    }
    let is_array = js_sys::Array::is_array(value);
    if !is_array && !is_plain_object(value) {
        let proto: JsValue = js_sys::Object::get_prototype_of(value).into();
        let name = Reflect::get(&proto, &JsValue::from_str("constructor"))
            .and_then(|c| Reflect::get(&c, &JsValue::from_str("name")))
            .ok()
            .and_then(|n| n.as_string())
            .filter(|n| !n.is_empty())
            .map_or_else(|| String::from("an object"), |n| format!("a {n}"));
        return Err(refuse(path, &format!("{name}, not a plain object")));
    }
    if stack.iter().any(|seen| seen == value) {
        return Err(refuse(path, "a cycle (it contains itself)"));
    }
    if stack.len() >= MAX_DEPTH {
        return Err(refuse(
            path,
            &format!("nested over {MAX_DEPTH} levels deep"),
        ));
    }
    stack.push(value.clone());
    let len = path.len();
    let out = if is_array {
        let array: &js_sys::Array = value.unchecked_ref();
        let mut items = Vec::with_capacity(array.length() as usize);
        for i in 0..array.length() {
            path.push_str(&format!("[{i}]"));
            let item = array.get(i);
            let item = if item.is_undefined() {
                Err(refuse(path, "undefined (or a hole) in an array"))
            } else {
                to_json(&item, path, stack)
            };
            path.truncate(len);
            items.push(item?);
        }
        Value::Array(items)
    } else {
        let mut map = Map::new();
        for key in js_sys::Object::keys(value.unchecked_ref::<js_sys::Object>()).iter() {
            let Some(key) = key.as_string() else { continue };
            let item = Reflect::get(value, &JsValue::from_str(&key))
                .map_err(|e| error::from_js(error::INVALID_VALUE, path, &e))?;
            if item.is_undefined() {
                continue; // as JSON.stringify: an undefined property is no property
            }
            push_key(path, &key);
            let item = to_json(&item, path, stack);
            path.truncate(len);
            map.insert(key, item?);
        }
        Value::Object(map)
    };
    stack.pop();
    Ok(out)
}

/// A finite number as JSON: an integer when it is a safe one, else a float; `None` for `NaN` and the infinities.
fn number(n: f64) -> Option<Value> {
    const MAX_SAFE: f64 = 9_007_199_254_740_991.0;
    if n.fract() == 0.0 && n.abs() <= MAX_SAFE {
        #[allow(
            clippy::cast_possible_truncation,
            reason = "a safe integer: checked just above"
        )]
        return Some(Value::from(n as i64));
    }
    serde_json::Number::from_f64(n).map(Value::Number)
}

/// `.name` for an identifier-like key, else `["key"]`.
fn push_key(path: &mut String, key: &str) {
    let identifier = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    if identifier {
        path.push('.');
        path.push_str(key);
    } else {
        path.push('[');
        path.push_str(&Value::from(key).to_string());
        path.push(']');
    }
}

/// An object whose prototype is `Object.prototype` or `null` (what a literal makes).
fn is_plain_object(value: &JsValue) -> bool {
    if !value.is_object() || js_sys::Array::is_array(value) {
        return false;
    }
    let proto = js_sys::Object::get_prototype_of(value);
    proto.is_null() || js_sys::Object::get_prototype_of(&proto).is_null()
}

/// A string argument.
///
/// # Errors
/// `INVALID_ARGUMENT` when it is not a string.
pub(crate) fn string(value: &JsValue, what: &str) -> Result<String, JsValue> {
    value
        .as_string()
        .ok_or_else(|| error::coded(error::INVALID_ARGUMENT, &format!("{what} must be a string")))
}

/// `[{ id, sortOrder }, …]`.
///
/// # Errors
/// `INVALID_ARGUMENT` when `value` is not an array of `{ id: string, sortOrder: string }`.
pub(crate) fn reorder_items(value: &JsValue) -> Result<Vec<ReorderItem>, JsValue> {
    parse(
        value,
        "reorder",
        "reorder takes an array of { id, sortOrder } (strings)",
    )
}

/// `value` checked as JSON ([`json`]), then read as a `T` by `serde_json`, whose
/// deserialisers the core's operation decoding already has in the wasm.
fn parse<T: serde::de::DeserializeOwned>(
    value: &JsValue,
    path: &str,
    expected: &str,
) -> Result<T, JsValue> {
    let value = json(value, path)?;
    serde_json::to_vec(&value)
        .and_then(|text| serde_json::from_slice(&text))
        .map_err(|e| {
            // The position in the text made here would mean nothing to the caller.
            let message = e.to_string();
            let reason = message.split(" at line ").next().unwrap_or(&message);
            error::coded(error::INVALID_ARGUMENT, &format!("{expected}: {reason}"))
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
    parse(
        value,
        "claim",
        "claim takes { claimedBy, claimedByName, claimedByAvatar } or null",
    )
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
