//! Application listeners (`room.on(type, fn)`) and the JS shape of every event.

use js_sys::Function;
use sealsync_core::client::Status;
use sealsync_core::merge::{Change, ChangeKind, Op};
use serde::Serialize;
use wasm_bindgen::JsValue;

use crate::error;

/// The event types `room.on` accepts.
pub(crate) const EVENT_TYPES: [&str; 10] = [
    "change",
    "status",
    "presence",
    "members",
    "pending",
    "sync",
    "notify",
    "ephemeral",
    "warning",
    "rejected",
];

/// The registered listeners: `(event type, id, listener)` in the order they were added
/// (a few per type, so a list: no map's code in the wasm for it).
#[derive(Debug, Default)]
pub(crate) struct Listeners {
    all: Vec<(&'static str, u32, Function)>,
    next_id: u32,
}

impl Listeners {
    /// Registers `listener` for `event_type`; returns its id for [`Listeners::remove`].
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` when `event_type` is not one of [`EVENT_TYPES`].
    pub(crate) fn add(
        &mut self,
        event_type: &str,
        listener: Function,
    ) -> Result<(&'static str, u32), JsValue> {
        let Some(kind) = EVENT_TYPES.iter().copied().find(|t| *t == event_type) else {
            return Err(error::coded(
                error::INVALID_ARGUMENT,
                &format!(
                    "unknown event type {event_type:?}; expected one of {}",
                    EVENT_TYPES.join(", ")
                ),
            ));
        };
        self.next_id = self.next_id.wrapping_add(1);
        self.all.push((kind, self.next_id, listener));
        Ok((kind, self.next_id))
    }

    /// Removes the listener registered under `id` (no-op when already removed).
    pub(crate) fn remove(&mut self, kind: &str, id: u32) {
        self.all.retain(|(k, i, _)| !(*k == kind && *i == id));
    }

    /// The listener of `kind` registered under `id`, if it still is.
    pub(crate) fn get(&self, kind: &str, id: u32) -> Option<Function> {
        self.all
            .iter()
            .find(|(k, i, _)| *k == kind && *i == id)
            .map(|(_, _, f)| f.clone())
    }

    /// The listeners of `kind`, copied so that they can be called with no borrow held
    /// (a listener may subscribe, unsubscribe or call into the room).
    pub(crate) fn of(&self, kind: &str) -> Vec<Function> {
        self.all
            .iter()
            .filter(|(k, _, _)| *k == kind)
            .map(|(_, _, f)| f.clone())
            .collect()
    }
}

/// Calls every listener in `listeners` with `value`. A listener that throws is reported on
/// the console and does not stop the others.
pub(crate) fn call_all(kind: &str, listeners: &[Function], value: &JsValue) {
    for listener in listeners {
        if let Err(thrown) = listener.call1(&JsValue::UNDEFINED, value) {
            web_sys::console::error_2(
                &JsValue::from_str(&format!("sealsync: a \"{kind}\" listener threw")),
                &thrown,
            );
        }
    }
}

/// Converts any serialisable value to a plain JS value (objects, numbers): as JSON text by
/// `serde_json`, which the core already has in the wasm, then the browser's `JSON.parse`.
pub(crate) fn to_js<T: Serialize + ?Sized>(value: &T) -> JsValue {
    // Plain data (strings, numbers, maps) always serialises, and as JSON that parses.
    serde_json::to_string(value)
        .ok()
        .and_then(|text| js_sys::JSON::parse(&text).ok())
        .unwrap_or(JsValue::UNDEFINED)
}

/// A JSON value as a deeply frozen JS value (what `room.get` hands out and caches: nobody
/// can change an object another caller holds).
pub(crate) fn frozen(value: &serde_json::Value) -> JsValue {
    use serde_json::Value;
    match value {
        Value::Array(items) => {
            let array = js_sys::Array::new();
            for item in items {
                array.push(&frozen(item));
            }
            js_sys::Object::freeze(&array).into()
        }
        Value::Object(map) => {
            let object = js_sys::Object::new();
            for (key, item) in map {
                let (key, item) = (JsValue::from_str(key), frozen(item));
                if key == "__proto__" {
                    // An own property, as JSON.parse makes it (assigning would set the
                    // prototype).
                    let descriptor = js_sys::Object::new();
                    for (k, v) in [("value", &item), ("enumerable", &JsValue::TRUE)] {
                        let _ = js_sys::Reflect::set(&descriptor, &JsValue::from_str(k), v);
                    }
                    js_sys::Object::define_property(&object, &key, &descriptor);
                } else {
                    // Setting a property on a fresh ordinary object cannot fail.
                    let _ = js_sys::Reflect::set(&object, &key, &item);
                }
            }
            js_sys::Object::freeze(&object).into()
        }
        Value::String(text) => JsValue::from_str(text),
        Value::Number(n) => n.as_f64().map_or(JsValue::NULL, JsValue::from_f64),
        Value::Bool(b) => JsValue::from_bool(*b),
        Value::Null => JsValue::NULL,
    }
}

/// `{ type, collection, id, fields, fromSelf }`.
pub(crate) fn change_to_js(change: &Change) -> JsValue {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct JsChange<'a> {
        #[serde(rename = "type")]
        kind: ChangeKind,
        collection: &'a str,
        id: &'a str,
        fields: &'a serde_json::Map<String, serde_json::Value>,
        from_self: bool,
    }
    to_js(&JsChange {
        kind: change.kind,
        collection: &change.collection,
        id: &change.id,
        fields: &change.fields,
        from_self: change.from_self,
    })
}

/// `{ state: "live" }`, `{ state: "reconnecting", inMs, attempt }`, …
pub(crate) fn status_to_js(status: &Status) -> JsValue {
    to_js(status)
}

/// `{ state: "deriving-key" }` (before the room exists; passed to `onProgress`).
pub(crate) fn progress_to_js(state: &str, ms: Option<f64>, in_worker: Option<bool>) -> JsValue {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Progress<'a> {
        state: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        ms: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        in_worker: Option<bool>,
    }
    to_js(&Progress {
        state,
        ms,
        in_worker,
    })
}

/// `{ code, message }`.
pub(crate) fn warning_to_js(code: &str, message: &str) -> JsValue {
    #[derive(Serialize)]
    struct Warning<'a> {
        code: &'a str,
        message: &'a str,
    }
    to_js(&Warning { code, message })
}

/// `{ code, message, ops }`: local changes the relay refused for good (already rolled
/// back); `ops` are the operations as JSON (`{ type, collection, id, fields }`, …).
pub(crate) fn rejected_to_js(code: &str, message: &str, ops: &[Op]) -> JsValue {
    #[derive(Serialize)]
    struct Rejected<'a> {
        code: &'a str,
        message: &'a str,
        ops: &'a [Op],
    }
    to_js(&Rejected { code, message, ops })
}

/// A notify payload: parsed JSON, or the raw string when it is not JSON.
pub(crate) fn notify_to_js(json: &str) -> JsValue {
    js_sys::JSON::parse(json).unwrap_or_else(|_| JsValue::from_str(json))
}

/// An ephemeral payload: the JSON value it was sent as, or its bytes when it is not JSON
/// (another SDK may send raw bytes).
pub(crate) fn ephemeral_to_js(body: &[u8]) -> JsValue {
    std::str::from_utf8(body)
        .ok()
        .and_then(|text| js_sys::JSON::parse(text).ok())
        .unwrap_or_else(|| js_sys::Uint8Array::from(body).into())
}
