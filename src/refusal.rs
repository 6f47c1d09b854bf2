//! The presence probe's HTTP request (`sealsync_core::client::Output::Probe`).
//!
//! A relay refuses a missing or bad token (`AUTH_MODE = "jwt"`) with HTTP 403 before the
//! WebSocket upgrade, and browsers report every failed handshake alike (close code 1006).
//! So after such a failure the client asks for `GET /room/:room/presence` with the same
//! token, if any, as `Authorization: Bearer` (the relay checks it the same way and answers
//! with CORS headers): a 403 there means the relay refuses this client, and its body says
//! why.

use js_sys::{Function, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Headers, Request, RequestInit, Response};

/// The body of the relay's answer when it refuses this client (and `token`) for the room
/// at `presence_url` (HTTP 403, maybe an empty body); `None` when it does not, or cannot
/// be asked (then the failure was something else). The core's `Client::handle_probe`
/// takes it from here.
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
    Some(text.unwrap_or_default())
}
