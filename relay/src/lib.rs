//! # sealsync-relay
//!
//! The sealsync relay: a Cloudflare Worker that routes each room to its own Durable Object
//! ([`room`], wasm only), which accepts hibernating WebSockets, stores sealed envelopes in
//! SQLite and fans them out. It never holds a key: it reads only envelope headers (session
//! id, counter, channel tag, kind) through `sealsync_core`'s codec.
//!
//! Everything with a rule in it is plain Rust tested on the host: [`route`] (HTTP routing),
//! [`limits`] (configuration and the token bucket), [`hub`] (the room's protocol rules,
//! sans-IO) and [`store`] (the storage trait, with an in-memory implementation). The
//! wasm-only modules `room` (the Durable Object) and `sql` (SQLite) only translate.
#![deny(unsafe_code)]

pub mod hub;
pub mod limits;
pub mod route;
pub mod store;

#[cfg(target_arch = "wasm32")]
#[allow(
    missing_docs,
    reason = "#[durable_object] generates undocumented wasm-bindgen glue methods"
)]
pub mod room;
#[cfg(target_arch = "wasm32")]
pub mod sql;

/// The WebSocket subprotocol name the relay echoes when a client offers it.
pub const PROTOCOL_NAME: &str = "sealsync.v1";

/// Whether a `Sec-WebSocket-Protocol` header value offers [`PROTOCOL_NAME`].
#[must_use]
pub fn offers_protocol(header: &str) -> bool {
    header.split(',').any(|p| p.trim() == PROTOCOL_NAME)
}

#[cfg(target_arch = "wasm32")]
pub(crate) fn offered_protocol(req: &worker::Request) -> Option<&'static str> {
    req.headers()
        .get("Sec-WebSocket-Protocol")
        .ok()
        .flatten()
        .filter(|h| offers_protocol(h))
        .map(|_| PROTOCOL_NAME)
}

#[cfg(target_arch = "wasm32")]
mod entry {
    use worker::{event, Context, Env, Request, Response, Result};

    use crate::route::{self, RequestView, Route};

    /// The worker's entry point: route, then forward to the room's object.
    #[event(fetch)]
    async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
        let limits = match crate::room::limits(&env) {
            Ok(l) => l,
            Err(e) => return Response::error(e.to_string(), 500),
        };
        let path = req.path();
        let upgrade = req.headers().get("Upgrade")?;
        let origin = req.headers().get("Origin")?;
        let method = req.method().to_string();
        let view = RequestView {
            method: &method,
            path: &path,
            upgrade: upgrade.as_deref(),
            origin: origin.as_deref(),
        };
        match route::route(&view, &limits) {
            Ok(Route::Socket(room) | Route::Presence(room)) => {
                let stub = env
                    .durable_object("ROOM")?
                    .id_from_name(room.as_str())?
                    .get_stub()?;
                stub.fetch_with_request(req).await
            }
            Ok(Route::Notify) => Response::error("notify is not enabled on this relay", 404),
            Err(rejection) => Response::error(rejection.message(), rejection.status()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_offer() {
        assert!(offers_protocol("sealsync.v1"));
        assert!(offers_protocol("token.abc, sealsync.v1"));
        assert!(!offers_protocol("sealsync.v2"));
        assert!(!offers_protocol(""));
    }
}
