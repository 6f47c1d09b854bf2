//! The room's internal endpoints, which the Worker forwards after checking the service
//! token: a backend push (`POST /internal/notify`, [`crate::notify`]), answered with how
//! many sockets it reached and, in [`SOCKETS_HEADER`], how many the room holds; and the
//! operators' stats (`GET /internal/rooms/<room>/stats`): what the store holds and the
//! live sockets. Neither creates a store in a room that has none, except a ban.

use sealsync_core::RoomId;
use worker::{Request, Response, Result};

use super::live::open_store;
use super::Room;
use crate::directory::SOCKETS_HEADER;
use crate::hub;
use crate::json_error;
use crate::limits::Limits;
use crate::notify::{self, NotifyRequest};
use crate::sql::has_schema;
use crate::store::{MemoryStore, RoomStore as _, StoreError, StoreStats};

impl Room {
    /// A backend push, already authenticated by the worker (or forwarded by the
    /// organisation's directory). The answer's [`SOCKETS_HEADER`] lets the directory drop
    /// a room that has no socket.
    pub(super) async fn notify(&self, mut req: Request, limits: &Limits) -> Result<Response> {
        let body = req.bytes().await?;
        let parsed = match NotifyRequest::parse(&body) {
            Ok(p) => p,
            Err(message) => return json_error(&message, 400),
        };
        let sql = self.state.storage().sql();
        let open = parsed.kind.opens_store(|| has_schema(&sql).unwrap_or(true));
        let result = self.with_live(|live| {
            let (outs, reached) = if open {
                let store = open_store(&mut live.store, &self.state)?;
                notify::apply(&parsed, &mut live.peers, store, limits)?
            } else {
                notify::apply(
                    &parsed,
                    &mut live.peers,
                    &mut MemoryStore::default(),
                    limits,
                )?
            };
            live.perform(outs);
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

    /// The stats of `room`, read without creating a schema in a room nobody joined.
    pub(super) fn stats(&self, room: &RoomId) -> Result<Response> {
        let (sockets, joined) =
            self.with_live(|live| (live.sockets.len(), hub::presence(&live.peers)));
        let sql = self.state.storage().sql();
        let stored = match has_schema(&sql) {
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
                json["database_bytes"] = sql.database_size().into();
                Response::from_json(&json)
            }
            Err(e) => json_error(&e.to_string(), 500),
        }
    }
}
