//! The room Durable Object, one per room (`idFromName(room)`): it accepts hibernating
//! WebSockets, hands every frame, text message, close and error of a socket to the
//! [`Hub`](crate::hub::Hub) and performs the outputs (sends, broadcasts, closes,
//! attachments), and answers the room's presence. No rule lives here: see `hub.rs`.
//!
//! - `live`: the object's memory (sockets, peers, store, coalesced presence, directory
//!   listing), rebuilt after hibernation, and performing the hub's outputs;
//! - `accept`: a new socket (admission, challenge, tags, attachment);
//! - `alarm`: the room's one timer (unjoined sockets, coalesced presence, idle deletion)
//!   and what follows a socket's leaving;
//! - `internal`: the backend's endpoints (`/internal/notify`, `…/stats`);
//! - `report`: reports to the organisation's directory.
//!
//! The room's id (what `HELLO` proofs sign) comes with every socket request (the route);
//! each socket also carries it as a tag (`r:<room>`), so an object woken from hibernation
//! by a message knows it without a request.

mod accept;
mod alarm;
mod internal;
mod live;
mod report;

use std::cell::RefCell;

use sealsync_core::wire::{CLOSE_INTERNAL_ERROR, CLOSE_NORMAL, HEARTBEAT_PING, HEARTBEAT_PONG};
use worker::wasm_bindgen::prelude::*;
use worker::{
    console_error, durable_object, js_sys, wasm_bindgen, wasm_bindgen_futures, worker_sys, Date,
    DurableObject, Env, Request, Response, Result, State, WebSocket, WebSocketIncomingMessage,
    WebSocketRequestResponsePair,
};

use crate::hub;
use crate::limits::{ConfigError, Limits};
use crate::route::{ClientId, Route};
use live::Live;

/// One room: its sockets, its SQLite log, its alarm.
///
/// `#[durable_object(fetch)]` exports the constructor and `fetch`; the socket and alarm
/// handlers are exported below. `webSocketMessage` is synchronous: workers-rs's generated
/// handler runs each message as a future behind a promise (the microtask queue, a promise
/// per message), where this one returns nothing, or a promise only when the message made
/// the room's alarm due.
#[durable_object(fetch)]
pub struct Room {
    state: State,
    /// The limits from `[vars]`, read once: vars do not change while the object lives.
    limits: std::result::Result<Limits, ConfigError>,
    live: RefCell<Option<Live>>,
    env: Env,
}

impl core::fmt::Debug for Room {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Room").finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    Date::now().as_millis()
}

#[wasm_bindgen(
    wasm_bindgen = ::worker::wasm_bindgen,
    wasm_bindgen_futures = ::worker::wasm_bindgen_futures,
    js_sys = ::worker::js_sys
)]
impl Room {
    /// `webSocketMessage`: the frame (or text) through the hub, synchronously. Returns
    /// `undefined`, a promise that sets the alarm when a coalesced presence update became
    /// due, or a rejected promise when the store failed (the socket is then closed).
    #[wasm_bindgen(js_name = webSocketMessage)]
    pub fn js_websocket_message(
        &self,
        ws: worker_sys::web_sys::WebSocket,
        message: JsValue,
    ) -> JsValue {
        let message = match message.as_string() {
            Some(text) => WebSocketIncomingMessage::String(text),
            None => WebSocketIncomingMessage::Binary(js_sys::Uint8Array::new(&message).to_vec()),
        };
        if let Err(e) = self.on_message(ws.into(), &message) {
            return js_sys::Promise::reject(&JsValue::from(e)).into();
        }
        match self.presence_alarm() {
            None => JsValue::UNDEFINED,
            Some(at) => {
                let storage = self.state.storage();
                wasm_bindgen_futures::future_to_promise(async move {
                    alarm::arm(storage, at)
                        .await
                        .map(|()| JsValue::UNDEFINED)
                        .map_err(JsValue::from)
                })
                .into()
            }
        }
    }

    /// `webSocketClose`, as workers-rs would export it.
    ///
    /// # Errors
    /// The room's failure to record the leave (storage), as a rejected promise.
    #[wasm_bindgen(js_name = webSocketClose)]
    pub async fn js_websocket_close(
        &self,
        ws: worker_sys::web_sys::WebSocket,
        code: usize,
        reason: String,
        was_clean: bool,
    ) -> std::result::Result<JsValue, JsValue> {
        <Self as DurableObject>::websocket_close(self, ws.into(), code, reason, was_clean)
            .await
            .map(|()| JsValue::NULL)
            .map_err(JsValue::from)
    }

    /// `webSocketError`, as workers-rs would export it.
    ///
    /// # Errors
    /// The room's failure to record the leave (storage), as a rejected promise.
    #[wasm_bindgen(js_name = webSocketError)]
    pub async fn js_websocket_error(
        &self,
        ws: worker_sys::web_sys::WebSocket,
        error: JsValue,
    ) -> std::result::Result<JsValue, JsValue> {
        <Self as DurableObject>::websocket_error(self, ws.into(), error.into())
            .await
            .map(|()| JsValue::NULL)
            .map_err(JsValue::from)
    }

    /// `alarm`, as workers-rs would export it.
    ///
    /// # Errors
    /// A storage failure while performing the alarm's plan, as a rejected promise.
    #[wasm_bindgen(js_name = alarm)]
    pub async fn js_alarm(&self) -> std::result::Result<JsValue, JsValue> {
        <Self as DurableObject>::alarm(self)
            .await
            .map(|r| JsValue::from(worker_sys::web_sys::Response::from(r)))
            .map_err(JsValue::from)
    }
}

impl Room {
    /// A message on a socket: through the hub, outputs performed. A store failure closes
    /// the socket (1011) and is returned.
    fn on_message(&self, ws: WebSocket, message: &WebSocketIncomingMessage) -> Result<()> {
        let Some(id) = self.peer_id(&ws) else {
            let _ = ws.close(Some(CLOSE_INTERNAL_ERROR), Some("unknown socket"));
            return Ok(());
        };
        let limits = match &self.limits {
            Ok(l) => l,
            Err(e) => {
                console_error!("{e}");
                let _ = ws.close(Some(CLOSE_INTERNAL_ERROR), Some("relay misconfigured"));
                return Ok(());
            }
        };
        self.with_live(|live| {
            // A socket accepted by an earlier incarnation that the rebuild missed.
            live.sockets.entry(id).or_insert_with(|| ws.clone());
        });
        let now = now_ms();
        let result = match message {
            WebSocketIncomingMessage::Binary(bytes) => {
                self.drive(limits, |hub| hub.handle_frame(id, bytes, now))
            }
            WebSocketIncomingMessage::String(_) => {
                self.drive(limits, |hub| Ok(hub.handle_text(id, now)))
            }
        };
        if let Err(e) = result {
            console_error!("{e}");
            self.with_live(|live| {
                live.sockets.remove(&id);
                live.peers.remove(&id);
            });
            let _ = ws.close(Some(CLOSE_INTERNAL_ERROR), Some("storage failed"));
            return Err(e.into());
        }
        Ok(())
    }

    /// A socket closed or failed: it leaves the room (the others may hear the presence).
    fn leave(&self, ws: &WebSocket) {
        let Some(id) = self.peer_id(ws) else {
            return;
        };
        self.with_live(|live| {
            live.sockets.remove(&id);
            let outs = hub::leave(&mut live.peers, id);
            live.perform(outs);
        });
    }
}

impl DurableObject for Room {
    fn new(state: State, env: Env) -> Self {
        // Heartbeats are answered by the runtime without waking the object.
        match WebSocketRequestResponsePair::new(HEARTBEAT_PING, HEARTBEAT_PONG) {
            Ok(pair) => state.set_websocket_auto_response(&pair),
            Err(e) => console_error!("heartbeat auto-response not set: {e:?}"),
        }
        let limits = crate::env_limits(&env);
        Self {
            state,
            limits,
            live: RefCell::new(None),
            env,
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let limits = match &self.limits {
            Ok(l) => l,
            Err(e) => return Response::error(e.to_string(), 500),
        };
        match crate::route_request(&req, limits)? {
            Ok(Route::Socket { room, client }) => self.accept(&req, limits, &room, client).await,
            Ok(Route::Presence { client, .. }) => {
                let client = client.as_ref().map(ClientId::as_str);
                let count = self.with_live(|live| hub::presence_for(&live.peers, client));
                Response::from_json(&serde_json::json!({ "count": count }))
            }
            Ok(Route::Notify) => self.notify(req, limits).await,
            Ok(Route::Stats { room }) => self.stats(&room),
            // The Worker answers preflights itself.
            Ok(Route::Preflight) => Response::empty(),
            Err(rejection) => Response::error(rejection.message(), rejection.status()),
        }
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        _code: usize,
        _reason: String,
        _was_clean: bool,
    ) -> Result<()> {
        self.leave(&ws);
        // Complete the closing handshake (1005/1006 may not be sent back, so 1000).
        let _ = ws.close(Some(CLOSE_NORMAL), Some("bye"));
        self.after_leave().await
    }

    async fn websocket_error(&self, ws: WebSocket, error: worker::Error) -> Result<()> {
        console_error!("socket error: {error}");
        self.leave(&ws);
        self.after_leave().await
    }

    async fn alarm(&self) -> Result<Response> {
        match &self.limits {
            Ok(limits) => self.on_alarm(limits).await,
            Err(e) => Response::error(e.to_string(), 500),
        }
    }
}
