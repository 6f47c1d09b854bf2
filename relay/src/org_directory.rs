//! The organisation directory Durable Object (`ORGS`, one per organisation,
//! `idFromName(org)`): keeps the list of live rooms in SQLite and forwards org-wide pushes
//! to them. No rule lives here; see `crate::directory`.
//!
//! It answers two internal requests, which no public route reaches: a room's report
//! (`POST /internal/org/report`, [`directory::Report`]) and an org-wide push from the worker
//! (`POST /internal/org/notify`, the checked notify body with `org`).
//!
//! Schema: `rooms(room TEXT PRIMARY KEY, stamp INTEGER)`. A directory left with no room
//! deletes its storage.

use futures_util::future::join_all;
use sealsync_core::RoomId;
use worker::{
    console_error, durable_object, wasm_bindgen, DurableObject, Env, Method, Request, RequestInit,
    Response, Result, SqlStorage, SqlStorageValue, State,
};

use crate::directory::{self, DirectoryStore, Forwarded, ReportOutcome, FORWARD_CONCURRENCY};
use crate::json_error;
use crate::notify::{NotifyRequest, Target};
use crate::store::StoreError;

/// The binding of the directory class in `wrangler.toml`.
pub const BINDING: &str = "ORGS";

/// The binding of the room class in `wrangler.toml`.
const ROOMS: &str = "ROOM";

/// One organisation's directory of live rooms.
#[durable_object]
pub struct OrgDirectory {
    state: State,
    env: Env,
}

impl core::fmt::Debug for OrgDirectory {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OrgDirectory").finish_non_exhaustive()
    }
}

fn err(e: impl core::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

fn int(v: u64) -> std::result::Result<SqlStorageValue, StoreError> {
    i64::try_from(v)
        .map_err(err)
        .and_then(|i| SqlStorageValue::try_from_i64(i).map_err(err))
}

/// The directory's SQLite table.
struct SqlDirectory(SqlStorage);

impl SqlDirectory {
    fn open(sql: SqlStorage) -> std::result::Result<Self, StoreError> {
        sql.exec(
            "CREATE TABLE IF NOT EXISTS rooms (room TEXT PRIMARY KEY, stamp INTEGER NOT NULL)",
            None,
        )
        .map_err(err)?;
        Ok(Self(sql))
    }

    fn rows(
        &self,
        query: &str,
        bindings: Vec<SqlStorageValue>,
    ) -> std::result::Result<Vec<Vec<SqlStorageValue>>, StoreError> {
        self.0
            .exec(query, bindings)
            .map_err(err)?
            .raw()
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(err)
    }
}

fn as_u64(v: Option<&SqlStorageValue>) -> u64 {
    match v {
        Some(SqlStorageValue::Integer(i)) => u64::try_from(*i).unwrap_or(0),
        _ => 0,
    }
}

impl DirectoryStore for SqlDirectory {
    fn stamp(&self, room: &str) -> std::result::Result<Option<u64>, StoreError> {
        let rows = self.rows(
            "SELECT stamp FROM rooms WHERE room = ?",
            vec![SqlStorageValue::String(room.to_owned())],
        )?;
        Ok(rows.first().map(|r| as_u64(r.first())))
    }

    fn put(&mut self, room: &str, stamp: u64) -> std::result::Result<(), StoreError> {
        self.rows(
            "INSERT OR REPLACE INTO rooms (room, stamp) VALUES (?, ?)",
            vec![SqlStorageValue::String(room.to_owned()), int(stamp)?],
        )
        .map(|_| ())
    }

    fn remove_if(&mut self, room: &str, stamp: u64) -> std::result::Result<bool, StoreError> {
        let held = self.stamp(room)? == Some(stamp);
        if held {
            self.rows(
                "DELETE FROM rooms WHERE room = ?",
                vec![SqlStorageValue::String(room.to_owned())],
            )?;
        }
        Ok(held)
    }

    fn count(&self) -> std::result::Result<usize, StoreError> {
        let rows = self.rows("SELECT COUNT(*) FROM rooms", Vec::new())?;
        Ok(usize::try_from(as_u64(rows.first().and_then(|r| r.first()))).unwrap_or(usize::MAX))
    }

    fn rooms(&self) -> std::result::Result<Vec<(String, u64)>, StoreError> {
        Ok(self
            .rows("SELECT room, stamp FROM rooms", Vec::new())?
            .into_iter()
            .filter_map(|row| match row.first() {
                Some(SqlStorageValue::String(room)) => Some((room.clone(), as_u64(row.get(1)))),
                _ => None,
            })
            .collect())
    }
}

impl OrgDirectory {
    fn store(&self) -> std::result::Result<SqlDirectory, StoreError> {
        SqlDirectory::open(self.state.storage().sql())
    }

    /// The organisation this object is for: the name it was addressed by, when the runtime
    /// passes it on; else `claimed` (every caller is the relay's own code).
    fn is_for(&self, claimed: &str) -> bool {
        self.state.id().name().is_none_or(|name| name == claimed)
    }

    /// Deletes the storage of a directory left with no room.
    async fn tidy(&self, store: &SqlDirectory) -> Result<()> {
        if store.count()? == 0 {
            self.state.storage().delete_all().await?;
        }
        Ok(())
    }

    async fn on_report(&self, mut req: Request) -> Result<Response> {
        let Ok(report) = req.json::<directory::Report>().await else {
            return json_error("bad report", 400);
        };
        let Some(org) = RoomId::new(&report.room)
            .ok()
            .and_then(|r| crate::auth::room_org(&r).map(str::to_owned))
        else {
            return json_error("the room belongs to no organisation", 400);
        };
        if !self.is_for(&org) {
            return json_error("the room belongs to another organisation", 400);
        }
        let mut store = self.store()?;
        let outcome = directory::report(&mut store, &org, &report)?;
        match outcome {
            ReportOutcome::WrongOrg => json_error("the room belongs to another organisation", 400),
            ReportOutcome::Full => {
                console_error!(
                    "the directory of {org} holds {} rooms; {} is not listed and misses org-wide pushes",
                    directory::MAX_ORG_ROOMS,
                    report.room
                );
                json_error("the directory is full", 507)
            }
            ReportOutcome::Removed => {
                self.tidy(&store).await?;
                Response::ok("")
            }
            ReportOutcome::Listed | ReportOutcome::Refreshed | ReportOutcome::Stale => {
                Response::ok("")
            }
        }
    }

    async fn on_notify(&self, mut req: Request) -> Result<Response> {
        let body = req.bytes().await?;
        let parsed = match NotifyRequest::parse(&body) {
            Ok(p) => p,
            Err(message) => return json_error(&message, 400),
        };
        let Target::Org(org) = &parsed.target else {
            return json_error("not an org-wide push", 400);
        };
        if !self.is_for(org) {
            return json_error("this is another organisation's directory", 400);
        }
        let mut store = self.store()?;
        let rooms = store.rooms()?;
        let namespace = self.env.durable_object(ROOMS)?;
        let mut results = Vec::with_capacity(rooms.len());
        // A few at a time; one room's failure is counted and the others are still served.
        for chunk in rooms.chunks(FORWARD_CONCURRENCY) {
            let (namespace, parsed) = (&namespace, &parsed);
            let forwards = chunk.iter().map(|(room, _)| async move {
                let forward = async {
                    let room_id =
                        RoomId::new(room).map_err(|e| worker::Error::RustError(e.to_string()))?;
                    let mut init = RequestInit::new();
                    init.with_method(Method::Post)
                        .with_body(Some(parsed.body_for(&room_id).into()));
                    let req = Request::new_with_init("https://room/internal/notify", &init)?;
                    let mut answer = namespace
                        .id_from_name(room_id.as_str())?
                        .get_stub()?
                        .fetch_with_request(req)
                        .await?;
                    let sockets = answer.headers().get(directory::SOCKETS_HEADER)?;
                    let text = answer.text().await?;
                    Ok::<_, worker::Error>(directory::forwarded(
                        answer.status_code(),
                        sockets.as_deref(),
                        &text,
                    ))
                };
                forward.await.unwrap_or_else(|e| {
                    console_error!("org-wide push to {room} failed: {e}");
                    Forwarded::Failed
                })
            });
            let answers = join_all(forwards).await;
            for ((room, stamp), answer) in chunk.iter().zip(answers) {
                results.push((room.clone(), *stamp, answer));
            }
        }
        let summary = directory::settle(&mut store, &results)?;
        self.tidy(&store).await?;
        Response::from_json(&summary)
    }
}

impl DurableObject for OrgDirectory {
    fn new(state: State, env: Env) -> Self {
        Self { state, env }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        if req.method() != Method::Post {
            return json_error("method not allowed", 405);
        }
        match req.path().as_str() {
            "/internal/org/report" => self.on_report(req).await,
            "/internal/org/notify" => self.on_notify(req).await,
            _ => json_error("not found", 404),
        }
    }
}
