//! The room Durable Object: accepts hibernating WebSockets, draws each socket's challenge,
//! keeps each socket's [`Peer`] in its attachment, feeds frames to the [`Hub`], runs the
//! alarm and performs the outputs. No rule lives here; see `hub.rs`.
//!
//! The room's id (what `HELLO` proofs sign) comes with every socket request (the route);
//! each socket also carries it as a tag (`r:<room>`), so an object woken from hibernation
//! by a message knows it without a request.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

use sealsync_core::member::CHALLENGE_LEN;
use sealsync_core::wire::{HEARTBEAT_PING, HEARTBEAT_PONG};
use sealsync_core::RoomId;
use worker::{
    console_error, durable_object, js_sys, wasm_bindgen, Date, DurableObject, Env, Method, Request,
    RequestInit, Response, ResponseBuilder, Result, State, WebSocket, WebSocketIncomingMessage,
    WebSocketPair, WebSocketRequestResponsePair,
};

use crate::directory::{self, SOCKETS_HEADER};
use crate::forwarded;
use crate::hub::{self, Budget, Hub, Out, Peer, PeerId, CLOSE_INTERNAL_ERROR};
use crate::limits::Limits;
use crate::notify::{self, NotifyRequest};
use crate::route::{ClientId, Route};
use crate::sql::SqlStore;
use crate::store::{MemoryStore, RoomStore, StoreError, StoreStats};

/// What the object holds in memory while it is awake. Rebuilt from the sockets'
/// attachments after hibernation.
#[derive(Debug)]
struct Live {
    /// The room's id, from the socket route or a socket's `r:` tag.
    room: Option<RoomId>,
    sockets: BTreeMap<PeerId, WebSocket>,
    peers: BTreeMap<PeerId, Peer>,
    budget: Budget,
    next_id: PeerId,
    store: Option<SqlStore>,
    /// A coalesced presence update is waiting for its alarm.
    presence_pending: bool,
    /// `perform` saw [`Out::PresenceChanged`] with nothing pending: arm the alarm.
    presence_alarm_needed: bool,
    /// The stamp of the last report to the organisation's directory.
    report_stamp: u64,
    /// The directory accepted this incarnation's last `live` report (else the next socket
    /// reports again: after a failure, a full directory or hibernation).
    listed: bool,
}

/// One room: its sockets, its SQLite log, its idle alarm.
#[durable_object]
pub struct Room {
    state: State,
    /// The limits from `[vars]`, read once: vars do not change while the object lives.
    limits: std::result::Result<Limits, crate::limits::ConfigError>,
    live: RefCell<Option<Live>>,
    env: Env,
}

impl core::fmt::Debug for Room {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Room").finish_non_exhaustive()
    }
}

/// The storage key (KV API) of the time, ms since the Unix epoch, from which an empty
/// room may be deleted.
const IDLE_AT: &str = "idle_at";

/// How long a coalesced presence update waits.
const PRESENCE_FLUSH_MS: u64 = 1000;

/// The prefix of the tag that carries a socket's peer id (`p:12`).
const PEER_TAG: &str = "p:";

/// The prefix of the tag that carries the room's id (`r:team-42`; a room id is at most
/// 128 bytes, a tag 256 characters).
const ROOM_TAG: &str = "r:";

/// Where a room sends its reports to its organisation's directory.
const REPORT_URL: &str = "https://directory/internal/org/report";

/// An error answer of the internal endpoints: `{"error": message}` as JSON.
pub(crate) fn json_error(message: &str, status: u16) -> Result<Response> {
    Ok(Response::from_json(&serde_json::json!({ "error": message }))?.with_status(status))
}

/// The header that carries the client's address (set by Cloudflare's edge).
const ADDRESS: &str = "CF-Connecting-IP";

/// A close reason within the WebSocket limit of 123 bytes, on a character boundary.
fn close_text(message: &str) -> &str {
    let mut end = message.len().min(123);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

/// `WebSocket.readyState` of an open socket.
const OPEN: u16 = 1;

fn now_ms() -> u64 {
    Date::now().as_millis()
}

/// The limits from `[vars]`.
pub(crate) fn limits(env: &Env) -> std::result::Result<Limits, crate::limits::ConfigError> {
    Limits::from_vars(|name| env.var(name).ok().map(|v| v.to_string()))
}

fn store_failure(e: &StoreError) -> worker::Error {
    worker::Error::RustError(e.to_string())
}

impl Room {
    /// Loads the in-memory view from the hibernated sockets when needed.
    fn with_live<T>(&self, f: impl FnOnce(&mut Live) -> T) -> T {
        let mut slot = self.live.borrow_mut();
        let live = slot.get_or_insert_with(|| {
            let mut sockets = BTreeMap::new();
            let mut peers = BTreeMap::new();
            let mut room = None;
            for ws in self.state.get_websockets() {
                if let Ok(Some(peer)) = ws.deserialize_attachment::<Peer>() {
                    if room.is_none() {
                        room = self
                            .state
                            .get_tags(&ws)
                            .iter()
                            .find_map(|tag| RoomId::new(tag.strip_prefix(ROOM_TAG)?).ok());
                    }
                    sockets.insert(peer.id, ws);
                    peers.insert(peer.id, peer);
                }
            }
            let next_id = peers.keys().next_back().map_or(1, |id| id + 1);
            Live {
                room,
                sockets,
                peers,
                budget: Budget::default(),
                next_id,
                store: None,
                presence_pending: false,
                presence_alarm_needed: false,
                report_stamp: 0,
                listed: false,
            }
        });
        f(live)
    }

    /// The peer id of a socket: from its tag (cheap), else from its attachment.
    fn peer_id(&self, ws: &WebSocket) -> Option<PeerId> {
        self.state
            .get_tags(ws)
            .iter()
            .find_map(|tag| tag.strip_prefix(PEER_TAG)?.parse().ok())
            .or_else(|| {
                ws.deserialize_attachment::<Peer>()
                    .ok()
                    .flatten()
                    .map(|p| p.id)
            })
    }

    /// Runs `f` with the room's store, opening it (and creating the schema) on first use.
    fn with_store<T>(
        &self,
        f: impl FnOnce(&mut SqlStore) -> std::result::Result<T, StoreError>,
    ) -> std::result::Result<T, StoreError> {
        self.with_live(|live| f(open_store(&mut live.store, &self.state)?))
    }

    /// A backend push (`/internal/notify`), already authenticated by the worker (or
    /// forwarded by the organisation's directory). The answer's [`SOCKETS_HEADER`] says
    /// how many sockets the room holds, so the directory drops a room that has none. Only
    /// kinds that store something open the store: a push to an empty room leaves nothing.
    async fn notify(&self, mut req: Request) -> Result<Response> {
        let body = req.bytes().await?;
        let parsed = match NotifyRequest::parse(&body) {
            Ok(p) => p,
            Err(message) => return json_error(&message, 400),
        };
        let open = parsed.kind.touches_store()
            && (parsed.kind.creates_store()
                || crate::sql::has_schema(&self.state.storage().sql()).unwrap_or(true));
        let result = self.with_live(|live| {
            let (outs, reached) = if open {
                let store = open_store(&mut live.store, &self.state)?;
                notify::apply(&parsed, &mut live.peers, store)?
            } else {
                notify::apply(&parsed, &mut live.peers, &mut MemoryStore::default())?
            };
            perform(live, outs);
            Ok::<_, StoreError>((reached, live.sockets.len()))
        });
        self.schedule_presence().await?;
        match result {
            Ok((reached, sockets)) => {
                let mut answer = Response::from_json(&serde_json::json!({ "delivered": reached }))?;
                answer
                    .headers_mut()
                    .set(SOCKETS_HEADER, &sockets.to_string())?;
                Ok(answer)
            }
            Err(e) => json_error(&e.to_string(), 500),
        }
    }

    /// `GET /internal/rooms/<room>/stats`, already authenticated by the worker: what the
    /// store holds (read without creating a schema in a room nobody joined) and the live
    /// sockets.
    fn stats(&self, room: &RoomId) -> Result<Response> {
        let sockets = self.with_live(|live| live.sockets.len());
        let joined = self.with_live(|live| hub::presence(&live.peers));
        let stored = match crate::sql::has_schema(&self.state.storage().sql()) {
            Ok(false) => Ok(StoreStats::default()),
            Ok(true) => self.with_store(|store| store.stats()),
            Err(e) => Err(e),
        };
        match stored {
            Ok(stored) => {
                let mut json = serde_json::to_value(stored)?;
                json["room"] = room.as_str().into();
                json["sockets"] = sockets.into();
                json["joined"] = joined.into();
                json["database_bytes"] = self.state.storage().sql().database_size().into();
                Response::from_json(&json)
            }
            Err(e) => json_error(&e.to_string(), 500),
        }
    }

    /// Tells the organisation's directory (auth mode `jwt`) that this room gained its first
    /// socket (`live`; again with a later socket until the directory accepts it) or lost its
    /// last. A failure is logged, never fatal: the directory heals itself (see
    /// `crate::directory`).
    async fn report(&self, room: &RoomId, live: bool) {
        let auth_mode = self.env.var("AUTH_MODE").ok().map(|v| v.to_string());
        let Some(org) = directory::reports_to(auth_mode.as_deref(), room) else {
            return;
        };
        let stamp = self.with_live(|l| {
            l.report_stamp = directory::next_stamp(l.report_stamp, now_ms());
            l.listed = false;
            l.report_stamp
        });
        let report = directory::Report {
            room: room.as_str().to_owned(),
            live,
            stamp,
        };
        let result = async {
            let body = serde_json::to_string(&report)?;
            let mut init = RequestInit::new();
            init.with_method(Method::Post).with_body(Some(body.into()));
            let req = Request::new_with_init(REPORT_URL, &init)?;
            let stub = self
                .env
                .durable_object(crate::org_directory::BINDING)?
                .id_from_name(org)?
                .get_stub()?;
            let answer = stub.fetch_with_request(req).await?;
            if answer.status_code() >= 300 {
                console_error!(
                    "the directory of {org} refused this room's report: {}",
                    answer.status_code()
                );
            } else if live {
                // Unless another report went out meanwhile.
                self.with_live(|l| l.listed = l.report_stamp == stamp);
            }
            Ok::<_, worker::Error>(())
        }
        .await;
        if let Err(e) = result {
            console_error!("report to the directory of {org} failed: {e}");
        }
    }

    /// Runs `f` with the hub for this room, then performs the outputs.
    fn drive(
        &self,
        limits: &Limits,
        f: impl FnOnce(Hub<'_, SqlStore>) -> std::result::Result<Vec<Out>, StoreError>,
    ) -> std::result::Result<(), StoreError> {
        self.with_live(|live| {
            let room = live
                .room
                .as_ref()
                .ok_or_else(|| StoreError("the room does not know its id".into()))?;
            let store = open_store(&mut live.store, &self.state)?;
            let outs = f(Hub::new(
                room,
                store,
                limits,
                &mut live.peers,
                &mut live.budget,
            ))?;
            perform(live, outs);
            Ok(())
        })
    }

    async fn accept(
        &self,
        req: &Request,
        room: &RoomId,
        client: Option<ClientId>,
    ) -> Result<Response> {
        let limits = match &self.limits {
            Ok(l) => l,
            Err(e) => return Response::error(e.to_string(), 500),
        };
        let pair = WebSocketPair::new()?;
        let header = |name: &str| req.headers().get(name).ok().flatten();
        let user = header(forwarded::USER);
        let banned = match &user {
            Some(user) => self
                .with_store(|store| store.is_banned(user))
                .map_err(|e| store_failure(&e))?,
            None => false,
        };
        let address = header(ADDRESS).map(|ip| hub::address_key(&ip));
        let refusal = self.with_live(|live| {
            live.room.get_or_insert_with(|| room.clone());
            hub::admission(
                &live.peers,
                limits,
                banned,
                user.as_deref(),
                address.as_deref(),
            )
        });
        if let Some((code, message)) = refusal {
            // Not hibernated: it is closed right away.
            pair.server.accept()?;
            pair.server.send_with_bytes(hub::refusal(code, &message))?;
            pair.server
                .close(code.close_code(), Some(close_text(&message)))?;
        } else {
            let now = now_ms();
            let mut challenge = [0u8; CHALLENGE_LEN];
            let mut token_key = [0u8; 32];
            getrandom::fill(&mut challenge)
                .and_then(|()| getrandom::fill(&mut token_key))
                .map_err(|e| worker::Error::RustError(format!("no randomness: {e}")))?;
            let (id, mut peer) = self.with_live(|live| {
                let id = live.next_id;
                live.next_id += 1;
                (id, Peer::new(id, limits, now, challenge, token_key))
            });
            peer.address = address;
            peer.user = user;
            peer.role = header(forwarded::ROLE);
            peer.pending = header(forwarded::GUEST).is_some_and(|g| g == "1");
            peer.client = client.map(|c| c.as_str().to_owned());
            let deadline = peer.opened_ms.saturating_add(limits.unjoined_timeout_ms);
            let peer_tag = format!("{PEER_TAG}{id}");
            let room_tag = format!("{ROOM_TAG}{}", room.as_str());
            self.state
                .accept_websocket_with_tags(&pair.server, &[peer_tag.as_str(), room_tag.as_str()]);
            pair.server.serialize_attachment(&peer)?;
            // The first socket, or one while the directory does not list the room: report.
            let report = self.with_live(|live| {
                live.sockets.insert(id, pair.server.clone());
                // The CHALLENGE first (and maybe the oldest unjoined socket closed).
                let outs = hub::accept(&mut live.peers, limits, peer);
                perform(live, outs);
                live.sockets.len() == 1 || !live.listed
            });
            // The alarm closes this socket if it has not joined by then.
            self.arm_by(deadline).await?;
            if report {
                self.report(room, true).await;
            }
        }
        let mut builder = ResponseBuilder::new().with_status(101);
        if let Some(protocol) = crate::offered_protocol(req) {
            builder = builder.with_header("Sec-WebSocket-Protocol", protocol)?;
        }
        Ok(builder.with_websocket(pair.client).empty())
    }

    /// Arms the alarm a second from now when a coalesced presence update is waiting
    /// (the alarm handler sends it, then re-arms by [`hub::next_alarm`]).
    async fn schedule_presence(&self) -> Result<()> {
        let needed = self.with_live(|live| core::mem::take(&mut live.presence_alarm_needed));
        if needed {
            self.arm_by(now_ms().saturating_add(PRESENCE_FLUSH_MS))
                .await?;
        }
        Ok(())
    }

    /// Makes the alarm fire at `at_ms` (ms since the Unix epoch) at the latest: sets it
    /// unless one is set earlier.
    async fn arm_by(&self, at_ms: u64) -> Result<()> {
        let storage = self.state.storage();
        let set = storage.get_alarm().await?;
        if set.is_none_or(|t| u64::try_from(t).map_or(true, |t| t > at_ms)) {
            storage
                .set_alarm(Duration::from_millis(at_ms.saturating_sub(now_ms())))
                .await?;
        }
        Ok(())
    }

    /// After a socket left: when none is left, a room nobody wrote to is deleted now
    /// ([`hub::disposable`]); any other is idle from now, and its alarm deletes it one TTL
    /// later unless a socket comes back.
    async fn after_leave(&self) -> Result<()> {
        let (empty, room) = self.with_live(|live| (live.sockets.is_empty(), live.room.clone()));
        if empty {
            if let Some(room) = &room {
                self.report(room, false).await;
            }
            let disposable = self
                .with_store(|store| hub::disposable(store))
                .map_err(|e| store_failure(&e))?;
            if disposable {
                // Nothing anyone wrote: the room leaves nothing behind (a squatter's key
                // goes with it).
                self.state.storage().delete_alarm().await?;
                self.state.storage().delete_all().await?;
                *self.live.borrow_mut() = None;
                return Ok(());
            }
            if let Ok(limits) = &self.limits {
                let idle_at = now_ms().saturating_add(limits.idle_room_ttl_ms);
                self.state.storage().put(IDLE_AT, idle_at).await?;
                self.arm_alarm(limits).await?;
            }
        } else {
            self.schedule_presence().await?;
        }
        Ok(())
    }

    /// Sets the idle alarm one TTL from now (worker's `i64` is an offset, so a `Duration`).
    async fn arm_alarm(&self, limits: &Limits) -> Result<()> {
        self.state
            .storage()
            .set_alarm(Duration::from_millis(limits.idle_room_ttl_ms))
            .await
    }

    fn leave(&self, ws: &WebSocket) {
        let Some(id) = self.peer_id(ws) else {
            return;
        };
        self.with_live(|live| {
            live.sockets.remove(&id);
            let outs = hub::leave(&mut live.peers, id);
            perform(live, outs);
        });
    }
}

/// The room's store in `slot`, opened (and its schema created) on first use.
fn open_store<'s>(
    slot: &'s mut Option<SqlStore>,
    state: &State,
) -> std::result::Result<&'s mut SqlStore, StoreError> {
    if slot.is_none() {
        *slot = Some(SqlStore::open(state.storage().sql())?);
    }
    slot.as_mut()
        .ok_or_else(|| StoreError("the store did not open".into()))
}

/// Sends, broadcasts, closes and saves, in order. A send to a socket that is already gone
/// fails; that is not an error of the room.
fn perform(live: &mut Live, outs: Vec<Out>) {
    for out in outs {
        match out {
            Out::Send { to, frame } => {
                if let Some(ws) = live.sockets.get(&to) {
                    let _ = ws.send_with_bytes(&frame);
                }
            }
            Out::Broadcast { to, frame } => {
                // One JS buffer for every socket: workerd keeps a reference, so the bytes
                // must live on the JS heap, not in wasm memory.
                let buffer = js_sys::Uint8Array::from(frame.as_slice()).buffer();
                for id in to {
                    if let Some(ws) = live.sockets.get(&id) {
                        let _ = ws.as_ref().send_with_array_buffer(&buffer);
                    }
                }
            }
            Out::Close { to, code, reason } => {
                if let Some(ws) = live.sockets.remove(&to) {
                    let _ = ws.close(Some(code), Some(reason));
                }
            }
            Out::PresenceChanged => {
                if !live.presence_pending {
                    live.presence_pending = true;
                    live.presence_alarm_needed = true;
                }
            }
            Out::Save(id) => {
                if let (Some(ws), Some(peer)) = (live.sockets.get(&id), live.peers.get(&id)) {
                    if let Err(e) = ws.serialize_attachment(peer) {
                        console_error!("attachment of socket {id} not saved: {e}");
                    }
                }
            }
        }
    }
}

impl DurableObject for Room {
    fn new(state: State, env: Env) -> Self {
        // Heartbeats are answered by the runtime without waking the object.
        match WebSocketRequestResponsePair::new(HEARTBEAT_PING, HEARTBEAT_PONG) {
            Ok(pair) => state.set_websocket_auto_response(&pair),
            Err(e) => console_error!("heartbeat auto-response not set: {e:?}"),
        }
        let limits = limits(&env);
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
            Ok(Route::Socket { room, client }) => self.accept(&req, &room, client).await,
            Ok(Route::Presence { client, .. }) => {
                let client = client.as_ref().map(ClientId::as_str);
                let count = self.with_live(|live| hub::presence_for(&live.peers, client));
                Response::from_json(&serde_json::json!({ "count": count }))
            }
            Ok(Route::Notify) => self.notify(req).await,
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
            console_error!("room storage failed: {e}");
            self.with_live(|live| {
                live.sockets.remove(&id);
                live.peers.remove(&id);
            });
            let _ = ws.close(Some(CLOSE_INTERNAL_ERROR), Some("storage failed"));
            return Err(store_failure(&e));
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
        let _ = ws.close(Some(1000), Some("bye"));
        self.after_leave().await
    }

    async fn websocket_error(&self, ws: WebSocket, error: worker::Error) -> Result<()> {
        console_error!("socket error: {error}");
        self.leave(&ws);
        self.after_leave().await
    }

    async fn alarm(&self) -> Result<Response> {
        let limits = match &self.limits {
            Ok(l) => l,
            Err(e) => return Response::error(e.to_string(), 500),
        };
        let now = now_ms();
        // Sockets that never joined in time are closed; then a coalesced presence update
        // (sent unconditionally in a big room: the pending flag does not survive
        // hibernation, and one extra PRESENCE is harmless).
        let next = self.with_live(|live| {
            let outs = hub::expire_unjoined(&mut live.peers, limits, now);
            perform(live, outs);
            let big = hub::presence(&live.peers) > hub::PRESENCE_COALESCE_ABOVE;
            if live.presence_pending || big {
                live.presence_pending = false;
                let outs: Vec<Out> = hub::presence_now(&live.peers).into_iter().collect();
                perform(live, outs);
            }
            hub::next_alarm(&live.peers, limits, now)
        });
        let open = self
            .state
            .get_websockets()
            .iter()
            .filter(|ws| ws.as_ref().ready_state() == OPEN)
            .count();
        if open > 0 {
            self.state
                .storage()
                .set_alarm(Duration::from_millis(next.saturating_sub(now)))
                .await?;
            return Response::ok("");
        }
        let idle_at = self.state.storage().get::<u64>(IDLE_AT).await?;
        match hub::idle_plan(now, idle_at, limits) {
            hub::Idle::Delete => {
                self.state.storage().delete_all().await?;
                *self.live.borrow_mut() = None;
            }
            hub::Idle::WakeAt(at) => {
                self.state
                    .storage()
                    .set_alarm(Duration::from_millis(at.saturating_sub(now)))
                    .await?;
            }
            hub::Idle::Start(at) => {
                self.state.storage().put(IDLE_AT, at).await?;
                self.arm_alarm(limits).await?;
            }
        }
        Response::ok("")
    }
}
