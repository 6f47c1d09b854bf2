//! Why a connection failed before it opened.
//!
//! A relay refuses a missing or bad token (`AUTH_MODE = "jwt"`) with HTTP 403 before the
//! WebSocket upgrade, and browsers report every failed handshake alike (close code 1006),
//! so the room cannot tell "refused" from "relay unreachable". After such a failure the
//! room asks `GET /room/:room/presence` with the same token, if any, as `Authorization:
//! Bearer` (the relay checks it the same way and answers with CORS headers): a 403 there
//! means the relay refuses this client, and its body says why.

use js_sys::{Function, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Headers, Request, RequestInit, Response};

/// The presence address of `room` on the relay at `socket_base` (`ws://` → `http://`,
/// `wss://` → `https://`), with this session's `client` id.
pub(crate) fn presence_url(socket_base: &str, room_segment: &str, client: &str) -> String {
    let base = socket_base.trim_end_matches('/');
    let http = if let Some(rest) = base.strip_prefix("wss://") {
        format!("https://{rest}")
    } else if let Some(rest) = base.strip_prefix("ws://") {
        format!("http://{rest}")
    } else {
        base.to_owned()
    };
    format!("{http}/room/{room_segment}/presence?client={client}")
}

/// The relay's reason when it refuses this client (and `token`) for the room at
/// `presence_url` (HTTP 403); `None` when it does not, or cannot be asked (then the
/// failure was something else).
pub(crate) async fn refusal(presence_url: &str, token: Option<&str>) -> Option<String> {
    let headers = Headers::new().ok()?;
    if let Some(token) = token {
        headers
            .set("Authorization", &format!("Bearer {token}"))
            .ok()?;
    }
    let init = RequestInit::new();
    init.set_method("GET");
    init.set_headers(&headers);
    let request = Request::new_with_str_and_init(presence_url, &init).ok()?;
    let global = js_sys::global();
    let fetch: Function = Reflect::get(&global, &JsValue::from_str("fetch"))
        .ok()?
        .dyn_into()
        .ok()?;
    let promise: js_sys::Promise = fetch.call1(&global, &request).ok()?.dyn_into().ok()?;
    let response: Response = JsFuture::from(promise).await.ok()?.dyn_into().ok()?;
    if response.status() != 403 {
        return None;
    }
    let text = match response.text() {
        Ok(promise) => JsFuture::from(promise)
            .await
            .ok()
            .and_then(|t| t.as_string()),
        Err(_) => None,
    };
    Some(text.filter(|t| !t.trim().is_empty()).map_or_else(
        || String::from("the relay refused this client (HTTP 403)"),
        |t| format!("the relay refused this client: {}", t.trim()),
    ))
}
