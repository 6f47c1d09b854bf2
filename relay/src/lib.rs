//! # sealsync-relay
//!
//! The sealsync relay: a Cloudflare Worker that routes each room to its own Durable Object
//! ([`room`], wasm only), which accepts hibernating WebSockets, stores sealed envelopes in
//! SQLite and fans them out. It never holds a key: it reads only envelope headers (session
//! id, counter, channel tag, kind) through `sealsync_core`'s codec.
//!
//! Everything with a rule in it is plain Rust tested on the host: [`route`] (HTTP routing),
//! [`limits`] (configuration, what `WELCOME` announces, the token bucket's pace), [`hub`]
//! (the room's protocol rules, sans-IO), [`store`] (the storage trait, with an in-memory
//! implementation), [`auth`] (the `jwt` auth mode), [`notify`] (backend pushes) and
//! [`directory`] (an organisation's live rooms, for org-wide pushes). The wasm-only modules
//! `room` (the room's Durable Object), `org_directory` (the organisation's) and `sql`
//! (SQLite) only translate.
#![deny(unsafe_code)]

pub mod auth;
pub mod directory;
pub mod hub;
pub mod limits;
pub mod notify;
pub mod route;
pub mod store;

#[cfg(target_arch = "wasm32")]
#[allow(
    missing_docs,
    reason = "#[durable_object] generates undocumented wasm-bindgen glue methods"
)]
pub mod org_directory;
#[cfg(target_arch = "wasm32")]
#[allow(
    missing_docs,
    reason = "#[durable_object] generates undocumented wasm-bindgen glue methods"
)]
pub mod room;
#[cfg(target_arch = "wasm32")]
pub mod sql;

use sealsync_core::wire::SUBPROTOCOL;

/// Whether a `Sec-WebSocket-Protocol` header value offers this wire version's subprotocol
/// ([`SUBPROTOCOL`], `sealsync.v2`), which the relay then echoes.
#[must_use]
pub fn offers_protocol(header: &str) -> bool {
    header.split(',').any(|p| p.trim() == SUBPROTOCOL)
}

#[cfg(target_arch = "wasm32")]
pub(crate) fn offered_protocol(req: &worker::Request) -> Option<&'static str> {
    req.headers()
        .get("Sec-WebSocket-Protocol")
        .ok()
        .flatten()
        .filter(|h| offers_protocol(h))
        .map(|_| SUBPROTOCOL)
}

/// The limits from `[vars]` (the Worker and the room's object read the same).
#[cfg(target_arch = "wasm32")]
pub(crate) fn env_limits(env: &worker::Env) -> Result<limits::Limits, limits::ConfigError> {
    limits::Limits::from_vars(|name| env.var(name).ok().map(|v| v.to_string()))
}

/// An error answer of the internal endpoints: `{"error": message}` as JSON.
#[cfg(target_arch = "wasm32")]
pub(crate) fn json_error(message: &str, status: u16) -> worker::Result<worker::Response> {
    Ok(worker::Response::from_json(&serde_json::json!({ "error": message }))?.with_status(status))
}

/// Routes a worker request: the Worker and the room's object route alike.
///
/// # Errors
/// A [`worker::Error`] when a header cannot be read.
#[cfg(target_arch = "wasm32")]
pub(crate) fn route_request(
    req: &worker::Request,
    limits: &limits::Limits,
) -> worker::Result<Result<route::Route, route::Rejection>> {
    let path = req.path();
    let upgrade = req.headers().get("Upgrade")?;
    let origin = req.headers().get("Origin")?;
    let method = req.method().to_string();
    let url = req.url()?;
    let view = route::RequestView {
        method: &method,
        path: &path,
        upgrade: upgrade.as_deref(),
        origin: origin.as_deref(),
        query: url.query(),
    };
    Ok(route::route(&view, limits))
}

/// Headers the worker sets on requests it forwards to a room, after removing any a client
/// sent: the room trusts them because only the worker can reach it.
pub mod forwarded {
    /// The verified user id (JWT `sub`).
    pub const USER: &str = "x-sealsync-user";
    /// The verified role.
    pub const ROLE: &str = "x-sealsync-role";
    /// `1` for a pending guest (`guest: true` or the role `pending_guest`,
    /// [`crate::auth::Claims::is_guest`]).
    pub const GUEST: &str = "x-sealsync-guest";
    /// The prefix every forwarded header has (stripped from client requests).
    pub const PREFIX: &str = "x-sealsync-";
}

/// Whether the Worker passes a client's request header on to the room's object: not the
/// `x-sealsync-*` headers, which the Worker sets itself after verifying a token and the
/// room trusts.
#[must_use]
pub fn forwards_header(name: &str) -> bool {
    !name.to_ascii_lowercase().starts_with(forwarded::PREFIX)
}

#[cfg(target_arch = "wasm32")]
mod entry {
    use sealsync_core::RoomId;
    use worker::{
        event, wasm_bindgen::JsValue, Context, Date, Env, Headers, Method, Request, RequestInit,
        Response, Result,
    };

    use crate::auth::{self, AuthMode};
    use crate::notify::{self, NotifyRequest};
    use crate::{forwarded, json_error};
    use std::cell::RefCell;
    use std::rc::Rc;

    use crate::route::{self, Route};

    /// Seconds since the Unix epoch.
    fn now_s() -> u64 {
        Date::now().as_millis() / 1000
    }

    fn var(env: &Env, name: &str) -> Option<String> {
        env.var(name).ok().map(|v| v.to_string())
    }

    /// The worker's entry point: route, check auth, then forward to the room's object.
    #[event(fetch)]
    async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
        let limits = match crate::env_limits(&env) {
            Ok(l) => l,
            Err(e) => return Response::error(e.to_string(), 500),
        };
        let auth = match auth_mode(&env) {
            Ok(a) => a,
            Err(e) => return Response::error(e.to_string(), 500),
        };
        let origin = req.headers().get("Origin")?;
        let origin = origin.as_deref();
        match crate::route_request(&req, &limits)? {
            Ok(Route::Socket { room, .. }) => socket(req, &env, &auth, &room).await,
            Ok(Route::Presence { room, .. }) => {
                with_cors(presence(req, &env, &auth, &room).await?, origin).await
            }
            Ok(Route::Preflight) => with_cors(Response::empty()?.with_status(204), origin).await,
            Ok(Route::Notify) => notify(req, &env, &auth).await,
            Ok(Route::Stats { room }) => stats(req, &env, &room).await,
            // The backend's and operators' endpoints answer JSON errors.
            Err(rejection) if req.path().starts_with("/internal/") => {
                json_error(&rejection.message(), rejection.status())
            }
            // Readable by a page, so the SDK can say why it was refused.
            Err(rejection) => {
                with_cors(
                    Response::error(rejection.message(), rejection.status())?,
                    origin,
                )
                .await
            }
        }
    }

    /// `AUTH_MODE` and `JWT_PUBLIC_KEYS` as read from the environment.
    type AuthVars = (Option<String>, Option<String>);

    thread_local! {
        /// The parsed auth mode and the variables it was parsed from: parsing keys (RSA
        /// above all) once per isolate, not per request, and sharing them, not copying.
        static AUTH: RefCell<Option<(AuthVars, Rc<AuthMode>)>> = const { RefCell::new(None) };
    }

    fn auth_mode(env: &Env) -> std::result::Result<Rc<AuthMode>, auth::AuthConfigError> {
        let raw = (var(env, "AUTH_MODE"), var(env, "JWT_PUBLIC_KEYS"));
        AUTH.with(|cell| {
            if let Some((cached_raw, mode)) = &*cell.borrow() {
                if *cached_raw == raw {
                    return Ok(Rc::clone(mode));
                }
            }
            let mode = Rc::new(AuthMode::from_vars(|name| match name {
                "AUTH_MODE" => raw.0.clone(),
                "JWT_PUBLIC_KEYS" => raw.1.clone(),
                _ => None,
            })?);
            *cell.borrow_mut() = Some((raw, Rc::clone(&mode)));
            Ok(mode)
        })
    }

    /// `GET /room/:room/presence`: in `jwt` mode the token comes as `Authorization: Bearer`.
    async fn presence(req: Request, env: &Env, auth: &AuthMode, room: &RoomId) -> Result<Response> {
        if let AuthMode::Jwt(keys) = auth {
            let authorization = req.headers().get("Authorization")?;
            let token = authorization
                .as_deref()
                .and_then(auth::token_from_authorization);
            if let Err(e) = auth::verify_offered(token, keys, room, now_s()) {
                return Response::error(e.to_string(), 403);
            }
        }
        let stub = env
            .durable_object("ROOM")?
            .id_from_name(room.as_str())?
            .get_stub()?;
        stub.fetch_with_request(req).await
    }

    /// `answer` with the CORS headers a browser on `origin` needs to read it (a fetched
    /// response's headers are immutable, so it is rebuilt).
    async fn with_cors(mut answer: Response, origin: Option<&str>) -> Result<Response> {
        let Some(cors) = route::cors_headers(origin) else {
            return Ok(answer);
        };
        let status = answer.status_code();
        let content_type = answer.headers().get("Content-Type")?;
        let body = answer.bytes().await?;
        let headers = Headers::new();
        for (name, value) in &cors {
            headers.set(name, value)?;
        }
        if let Some(content_type) = content_type {
            headers.set("Content-Type", &content_type)?;
        }
        Ok(Response::from_bytes(body)?
            .with_status(status)
            .with_headers(headers))
    }

    async fn socket(req: Request, env: &Env, auth: &AuthMode, room: &RoomId) -> Result<Response> {
        let headers = Headers::new();
        for (name, value) in req.headers().entries() {
            if crate::forwards_header(&name) {
                headers.set(&name, &value)?;
            }
        }
        if let AuthMode::Jwt(keys) = auth {
            let offered = req.headers().get("Sec-WebSocket-Protocol")?;
            let token = offered.as_deref().and_then(auth::token_from_protocols);
            match auth::verify_offered(token, keys, room, now_s()) {
                Ok(claims) => {
                    headers.set(forwarded::USER, &claims.sub)?;
                    if let Some(role) = &claims.role {
                        headers.set(forwarded::ROLE, role)?;
                    }
                    if claims.is_guest() {
                        headers.set(forwarded::GUEST, "1")?;
                    }
                }
                Err(e) => return Response::error(e.to_string(), 403),
            }
        }
        let mut init = RequestInit::new();
        init.with_method(Method::Get).with_headers(headers);
        let forwarded = Request::new_with_init(req.url()?.as_str(), &init)?;
        let stub = env
            .durable_object("ROOM")?
            .id_from_name(room.as_str())?
            .get_stub()?;
        stub.fetch_with_request(forwarded).await
    }

    /// The service-token check of the internal endpoints (`notify::authorize`).
    fn authorize(req: &Request, env: &Env) -> std::result::Result<(), (u16, String)> {
        let header = |name: &str| req.headers().get(name).ok().flatten();
        let id = env.secret("NOTIFY_SERVICE_ID").ok().map(|v| v.to_string());
        let secret = env
            .secret("NOTIFY_SERVICE_SECRET")
            .ok()
            .map(|v| v.to_string());
        let allowed_ips = var(env, "NOTIFY_ALLOWED_IPS").unwrap_or_default();
        let (ip, given_id, given_secret) = (
            header("CF-Connecting-IP"),
            header(notify::SERVICE_ID_HEADER),
            header(notify::SERVICE_SECRET_HEADER),
        );
        notify::authorize(&notify::Caller {
            configured_id: id.as_deref(),
            configured_secret: secret.as_deref(),
            allowed_ips: &allowed_ips,
            ip: ip.as_deref(),
            id: given_id.as_deref(),
            secret: given_secret.as_deref(),
        })
    }

    /// `POST /internal/notify`: authenticated, parsed and checked here; then to the room's
    /// object, or to the organisation's directory (`org`).
    async fn notify(mut req: Request, env: &Env, auth: &AuthMode) -> Result<Response> {
        if let Err((status, message)) = authorize(&req, env) {
            return json_error(&message, status);
        }
        let types =
            match notify::TypeAllowlist::parse(&var(env, "NOTIFY_TYPES").unwrap_or_default()) {
                Ok(t) => t,
                Err(message) => return json_error(&message, 500),
            };
        let body = req.bytes().await?;
        let parsed = match NotifyRequest::parse(&body) {
            Ok(p) => p,
            Err(message) => return json_error(&message, 400),
        };
        let jwt = matches!(auth, AuthMode::Jwt(_));
        let (binding, name, url, body) = match notify::dispatch(&parsed, &types, jwt) {
            Ok(notify::Dispatch::Room { room, body }) => (
                "ROOM",
                room.as_str().to_owned(),
                "https://room/internal/notify",
                body,
            ),
            Ok(notify::Dispatch::Org { org }) => (
                crate::org_directory::BINDING,
                org,
                "https://directory/internal/org/notify",
                String::from_utf8_lossy(&body).into_owned(),
            ),
            Err(message) => return json_error(&message, 400),
        };
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_body(Some(JsValue::from(body)));
        let forwarded = Request::new_with_init(url, &init)?;
        let stub = env
            .durable_object(binding)?
            .id_from_name(&name)?
            .get_stub()?;
        stub.fetch_with_request(forwarded).await
    }

    /// `GET /internal/rooms/<room>/stats`: authenticated here, answered by the room.
    async fn stats(req: Request, env: &Env, room: &RoomId) -> Result<Response> {
        if let Err((status, message)) = authorize(&req, env) {
            return json_error(&message, status);
        }
        let url = format!(
            "https://room/internal/rooms/{}/stats",
            percent_encoding::utf8_percent_encode(
                room.as_str(),
                percent_encoding::NON_ALPHANUMERIC
            )
        );
        let stub = env
            .durable_object("ROOM")?
            .id_from_name(room.as_str())?
            .get_stub()?;
        stub.fetch_with_str(&url).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_headers_leave_out_spoofed_identity() {
        assert!(forwards_header("Sec-WebSocket-Protocol"));
        assert!(forwards_header("Origin"));
        assert!(!forwards_header("X-Sealsync-User"));
        assert!(!forwards_header("x-sealsync-role"));
    }

    #[test]
    fn protocol_offer() {
        assert_eq!(SUBPROTOCOL, "sealsync.v2");
        assert!(offers_protocol("sealsync.v2"));
        assert!(offers_protocol("sealsync.auth.abc, sealsync.v2"));
        assert!(
            !offers_protocol("sealsync.v1"),
            "wire v1 clients are not served"
        );
        assert!(!offers_protocol("sealsync.v3"));
        assert!(!offers_protocol(""));
    }
}
