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
use worker::{
    console_error, durable_object, wasm_bindgen, Date, DurableObject, Env, Request, Response,
    Result, State, WebSocket, WebSocketIncomingMessage, WebSocketRequestResponsePair,
};

use crate::hub;
use crate::limits::{ConfigError, Limits};
use crate::route::{ClientId, Route};
use live::Live;

/// One room: its sockets, its SQLite log, its alarm.
#[durable_object]
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

impl Room {
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

    async fn websocket_message(
        &self,
        ws: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> Result<()> {
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
                self.drive(limits, |hub| hub.handle_frame(id, &bytes, now))
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
        self.schedule_presence().await
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
