//! [`RoomStore`] over the Durable Object's SQLite database (`state.storage().sql()`).
//!
//! Schema (created on first use, so asking a fresh room for its presence writes nothing):
//!
//! ```sql
//! meta(key TEXT PRIMARY KEY, value BLOB)  -- 'member_key' → 32 bytes (Ed25519 public key),
//!                                         -- 'key_epoch' → 4 big-endian bytes (none = 0),
//!                                         -- 'ban:<user>'
//! events(seq INTEGER PRIMARY KEY, relay_time INTEGER, session BLOB, counter BLOB,
//!        channel BLOB, envelope BLOB NULL,   -- envelope NULL once compacted
//!        digest BLOB NULL)                   -- SHA-256 of envelope; kept after compaction
//! UNIQUE INDEX events_sender ON events(session, counter)
//! snapshot(id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER, envelope BLOB)
//! ```
//!
//! `counter` is stored as 8 big-endian bytes: it is a `u64` from the peer, and SQLite
//! integers cross into JavaScript as doubles, exact only below 2^53. Sequences and times
//! stay far below that.
//!
//! Migration: a database made before `digest` existed gets the column (`ALTER TABLE … ADD
//! COLUMN`, NULL in the old rows) when the store opens. An old row is compared by the
//! SHA-256 of its envelope while the envelope is stored; once compacted it has nothing left
//! to compare, and a publish under its `(session, counter)` is refused as
//! `DUPLICATE_MISMATCH` (a resend of that very envelope included: the relay cannot tell it
//! from a pre-emption, and a reported refusal is better than a silent loss). An old
//! `meta('verifier')` row is ignored: wire v2 has no verifier, and the first proven `HELLO`
//! sets `member_key`.

use std::cell::Cell;

use sealsync_core::SessionId;
use wasm_bindgen::prelude::*;
use worker::js_sys::{JsString, Uint8Array};
use worker::{SqlStorage, SqlStorageValue};

use crate::store::{
    envelope_digest, NewEvent, RoomStore, StoreError, StoreStats, StoredEvent, StoredSender,
    StoredSnapshot, Usage, DIGEST_LEN,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY,
  relay_time INTEGER NOT NULL,
  session BLOB NOT NULL,
  counter BLOB NOT NULL,
  channel BLOB NOT NULL,
  envelope BLOB,
  digest BLOB
);
CREATE UNIQUE INDEX IF NOT EXISTS events_sender ON events(session, counter);
CREATE TABLE IF NOT EXISTS snapshot (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  seq INTEGER NOT NULL,
  envelope BLOB NOT NULL
);";

fn err(e: impl core::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

fn int(v: u64) -> Result<SqlStorageValue, StoreError> {
    i64::try_from(v)
        .map_err(err)
        .and_then(|i| SqlStorageValue::try_from_i64(i).map_err(err))
}

fn as_u64(v: &SqlStorageValue) -> Result<u64, StoreError> {
    match v {
        SqlStorageValue::Integer(i) => u64::try_from(*i).map_err(err),
        SqlStorageValue::Null => Ok(0),
        other => Err(StoreError(format!("expected an integer, found {other:?}"))),
    }
}

fn as_blob(v: SqlStorageValue) -> Result<Vec<u8>, StoreError> {
    match v {
        SqlStorageValue::Blob(b) => Ok(b),
        other => Err(StoreError(format!("expected a blob, found {other:?}"))),
    }
}

/// A blob of exactly `N` bytes (`what` names it in the error).
fn as_array<const N: usize>(v: SqlStorageValue, what: &str) -> Result<[u8; N], StoreError> {
    <[u8; N]>::try_from(as_blob(v)?.as_slice())
        .map_err(|_| StoreError(format!("the stored {what} is not {N} bytes")))
}

// `ctx.storage.sql.exec` called directly, for the statement every `PUBLISH` runs: the query
// is a JS string made once, the bindings go as they are, and the cursor is read once
// (`toArray`). workers-rs's `SqlStorage::exec` decodes the query from wasm memory, builds an
// array of copied bindings and reads the cursor a row and a column at a time, one JS call
// each (BENCHMARKS.md, "Relay fan-out").
#[wasm_bindgen]
extern "C" {
    type RawSql;
    #[wasm_bindgen(method, catch, variadic, js_name = exec)]
    fn exec_js(this: &RawSql, query: &JsString, bindings: &[JsValue])
        -> Result<RawCursor, JsValue>;
    type RawCursor;
    #[wasm_bindgen(method, catch, js_name = toArray)]
    fn to_array(this: &RawCursor) -> Result<worker::js_sys::Array, JsValue>;
}

/// The event `INSERT`; the duplicate check is the unique index (one row back when stored,
/// none for a duplicate).
const INSERT_EVENT: &str =
    "INSERT INTO events (seq, relay_time, session, counter, channel, envelope, digest) \
     VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (session, counter) DO NOTHING RETURNING seq";

/// Adds `events.digest` to a database made before it existed.
fn migrate(sql: &SqlStorage) -> Result<(), StoreError> {
    let columns = sql
        .exec("PRAGMA table_info(events)", None)
        .map_err(err)?
        .raw()
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    // table_info rows: (cid, name, type, notnull, dflt_value, pk).
    let has_digest = columns
        .iter()
        .any(|row| matches!(row.get(1), Some(SqlStorageValue::String(name)) if name == "digest"));
    if !has_digest {
        sql.exec("ALTER TABLE events ADD COLUMN digest BLOB", None)
            .map_err(err)?;
    }
    Ok(())
}

/// The room's SQLite store. Usage, the head sequence and the key epoch are read once per
/// object lifetime, then kept up to date in memory (the object is the database's only
/// writer), so a `PUBLISH` costs one statement: its `INSERT`.
#[derive(Debug)]
pub struct SqlStore {
    sql: SqlStorage,
    usage: Cell<Option<Usage>>,
    head: Cell<Option<u64>>,
    key_epoch: Cell<Option<u32>>,
    /// [`INSERT_EVENT`] as a JS string.
    insert_event: JsString,
}

impl SqlStore {
    /// Opens the store, creating the schema when missing.
    ///
    /// # Errors
    /// [`StoreError`] when SQLite refuses the schema.
    pub fn open(sql: SqlStorage) -> Result<Self, StoreError> {
        sql.exec(SCHEMA, None).map_err(err)?;
        migrate(&sql)?;
        Ok(Self {
            sql,
            usage: Cell::new(None),
            head: Cell::new(None),
            key_epoch: Cell::new(None),
            insert_event: JsString::from(INSERT_EVENT),
        })
    }

    fn rows(
        &self,
        query: &str,
        bindings: Vec<SqlStorageValue>,
    ) -> Result<Vec<Vec<SqlStorageValue>>, StoreError> {
        self.sql
            .exec(query, bindings)
            .map_err(err)?
            .raw()
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)
    }

    fn scalar(&self, query: &str, bindings: Vec<SqlStorageValue>) -> Result<u64, StoreError> {
        match self.rows(query, bindings)?.into_iter().next() {
            Some(row) => row.first().map_or(Ok(0), as_u64),
            None => Ok(0),
        }
    }
}

impl RoomStore for SqlStore {
    fn member_key(&self) -> Result<Option<[u8; 32]>, StoreError> {
        let rows = self.rows(
            "SELECT value FROM meta WHERE key = 'member_key'",
            Vec::new(),
        )?;
        match rows.into_iter().next().and_then(|r| r.into_iter().next()) {
            None => Ok(None),
            Some(v) => as_array(v, "member key").map(Some),
        }
    }

    fn set_member_key(&mut self, key: &[u8; 32]) -> Result<(), StoreError> {
        self.sql
            .exec(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('member_key', ?)",
                vec![SqlStorageValue::Blob(key.to_vec())],
            )
            .map(|_| ())
            .map_err(err)
    }

    fn key_epoch(&self) -> Result<u32, StoreError> {
        if let Some(epoch) = self.key_epoch.get() {
            return Ok(epoch);
        }
        let rows = self.rows("SELECT value FROM meta WHERE key = 'key_epoch'", Vec::new())?;
        let epoch = match rows.into_iter().next().and_then(|r| r.into_iter().next()) {
            None => 0,
            Some(v) => as_array::<4>(v, "key epoch").map(u32::from_be_bytes)?,
        };
        self.key_epoch.set(Some(epoch));
        Ok(epoch)
    }

    fn set_key_epoch(&mut self, key_epoch: u32) -> Result<(), StoreError> {
        // Forgotten first: should the write fail, the next read asks SQLite again.
        self.key_epoch.set(None);
        self.sql
            .exec(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('key_epoch', ?)",
                vec![SqlStorageValue::Blob(key_epoch.to_be_bytes().to_vec())],
            )
            .map_err(err)?;
        self.key_epoch.set(Some(key_epoch));
        Ok(())
    }

    fn head_seq(&self) -> Result<u64, StoreError> {
        if let Some(head) = self.head.get() {
            return Ok(head);
        }
        let head = self.scalar("SELECT MAX(seq) FROM events", Vec::new())?;
        self.head.set(Some(head));
        Ok(head)
    }

    fn snapshot_seq(&self) -> Result<u64, StoreError> {
        self.scalar("SELECT seq FROM snapshot WHERE id = 1", Vec::new())
    }

    fn snapshot(&self) -> Result<Option<StoredSnapshot>, StoreError> {
        let rows = self.rows(
            "SELECT seq, envelope FROM snapshot WHERE id = 1",
            Vec::new(),
        )?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(None);
        };
        let mut it = row.into_iter();
        match (it.next(), it.next()) {
            (Some(seq), Some(envelope)) => Ok(Some(StoredSnapshot {
                seq: as_u64(&seq)?,
                envelope: as_blob(envelope)?,
            })),
            _ => Err(StoreError("snapshot row has the wrong shape".into())),
        }
    }

    fn find(&self, session: &SessionId, counter: u64) -> Result<Option<StoredSender>, StoreError> {
        // The envelope only for a row from before digests (see the module docs).
        let rows = self.rows(
            "SELECT seq, relay_time, digest, CASE WHEN digest IS NULL THEN envelope END \
             FROM events WHERE session = ? AND counter = ?",
            vec![
                SqlStorageValue::Blob(session.0.to_vec()),
                SqlStorageValue::Blob(counter.to_be_bytes().to_vec()),
            ],
        )?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(None);
        };
        let mut it = row.into_iter();
        let (Some(seq), Some(time), Some(digest), Some(envelope)) =
            (it.next(), it.next(), it.next(), it.next())
        else {
            return Err(StoreError("event row has the wrong shape".into()));
        };
        let digest = match (digest, envelope) {
            (SqlStorageValue::Null, SqlStorageValue::Null) => None,
            (SqlStorageValue::Null, envelope) => Some(envelope_digest(&as_blob(envelope)?)),
            (digest, _) => Some(as_array::<DIGEST_LEN>(digest, "envelope digest")?),
        };
        Ok(Some(StoredSender {
            seq: as_u64(&seq)?,
            relay_time: as_u64(&time)?,
            digest,
        }))
    }

    fn append(&mut self, e: NewEvent<'_>) -> Result<bool, StoreError> {
        let bindings = [
            int(e.seq)?.into(),
            int(e.relay_time)?.into(),
            Uint8Array::from(&e.session.0[..]).into(),
            Uint8Array::from(&e.counter.to_be_bytes()[..]).into(),
            Uint8Array::from(&e.channel.0[..]).into(),
            Uint8Array::from(e.envelope).into(),
            Uint8Array::from(&e.digest[..]).into(),
        ];
        let sql: &RawSql = self.sql.as_ref().unchecked_ref();
        let inserted = sql
            .exec_js(&self.insert_event, &bindings)
            .and_then(|cursor| cursor.to_array())
            .map_err(|e| err(worker::Error::from(e)))?
            .length()
            > 0;
        if !inserted {
            return Ok(false);
        }
        if let Some(mut usage) = self.usage.get() {
            usage.events += 1;
            usage.bytes += e.envelope.len() as u64;
            self.usage.set(Some(usage));
        }
        if let Some(head) = self.head.get() {
            self.head.set(Some(head.max(e.seq)));
        }
        Ok(true)
    }

    fn events_after(
        &self,
        after: u64,
        max_events: usize,
        max_bytes: u64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        // The lengths first (no envelope is read), then only the envelopes of the page.
        let sizes = self
            .rows(
                "SELECT seq, length(envelope) FROM events \
                 WHERE seq > ? AND envelope IS NOT NULL ORDER BY seq LIMIT ?",
                vec![int(after)?, int(max_events as u64)?],
            )?
            .into_iter()
            .map(|row| {
                let mut it = row.into_iter();
                match (it.next(), it.next()) {
                    (Some(seq), Some(len)) => Ok((as_u64(&seq)?, as_u64(&len)?)),
                    _ => Err(StoreError("event length row has the wrong shape".into())),
                }
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let Some(last) = crate::store::page_end(sizes, max_events, max_bytes) else {
            return Ok(Vec::new());
        };
        let query = "SELECT seq, relay_time, envelope FROM events \
             WHERE seq > ? AND seq <= ? AND envelope IS NOT NULL ORDER BY seq";
        let bindings = vec![int(after)?, int(last)?];
        self.rows(query, bindings)?
            .into_iter()
            .map(|row| {
                let mut it = row.into_iter();
                match (it.next(), it.next(), it.next()) {
                    (Some(seq), Some(time), Some(envelope)) => Ok(StoredEvent {
                        seq: as_u64(&seq)?,
                        relay_time: as_u64(&time)?,
                        envelope: as_blob(envelope)?,
                    }),
                    _ => Err(StoreError("event row has the wrong shape".into())),
                }
            })
            .collect()
    }

    fn put_snapshot(&mut self, seq: u64, envelope: &[u8]) -> Result<(), StoreError> {
        self.sql
            .exec(
                "INSERT OR REPLACE INTO snapshot (id, seq, envelope) VALUES (1, ?, ?)",
                vec![int(seq)?, SqlStorageValue::Blob(envelope.to_vec())],
            )
            .map_err(err)?;
        self.sql
            .exec(
                "UPDATE events SET envelope = NULL WHERE seq <= ? AND envelope IS NOT NULL",
                vec![int(seq)?],
            )
            .map_err(err)?;
        self.usage.set(None);
        Ok(())
    }

    fn usage(&self) -> Result<Usage, StoreError> {
        if let Some(usage) = self.usage.get() {
            return Ok(usage);
        }
        let rows = self.rows(
            "SELECT COUNT(envelope), COALESCE(SUM(LENGTH(envelope)), 0) FROM events",
            Vec::new(),
        )?;
        let (events, mut bytes) = match rows.first().map(Vec::as_slice) {
            Some([count, sum]) => (as_u64(count)?, as_u64(sum)?),
            _ => (0, 0),
        };
        bytes += self.scalar(
            "SELECT COALESCE(SUM(LENGTH(envelope)), 0) FROM snapshot",
            Vec::new(),
        )?;
        let usage = Usage { events, bytes };
        self.usage.set(Some(usage));
        Ok(usage)
    }

    fn ban(&mut self, user: &str) -> Result<(), StoreError> {
        self.sql
            .exec(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, X'01')",
                vec![SqlStorageValue::String(format!("ban:{user}"))],
            )
            .map(|_| ())
            .map_err(err)
    }

    fn is_banned(&self, user: &str) -> Result<bool, StoreError> {
        let rows = self.rows(
            "SELECT 1 FROM meta WHERE key = ?",
            vec![SqlStorageValue::String(format!("ban:{user}"))],
        )?;
        Ok(!rows.is_empty())
    }

    fn any_banned(&self) -> Result<bool, StoreError> {
        let rows = self.rows(
            "SELECT 1 FROM meta WHERE key >= 'ban:' AND key < 'ban;' LIMIT 1",
            Vec::new(),
        )?;
        Ok(!rows.is_empty())
    }

    fn unban(&mut self, user: &str) -> Result<(), StoreError> {
        self.sql
            .exec(
                "DELETE FROM meta WHERE key = ?",
                vec![SqlStorageValue::String(format!("ban:{user}"))],
            )
            .map(|_| ())
            .map_err(err)
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        let rows = self.rows(
            "SELECT (SELECT MAX(seq) FROM events), \
                    (SELECT COUNT(envelope) FROM events), \
                    (SELECT COALESCE(SUM(LENGTH(envelope)), 0) FROM events), \
                    (SELECT seq FROM snapshot WHERE id = 1), \
                    (SELECT COALESCE(SUM(LENGTH(envelope)), 0) FROM snapshot), \
                    (SELECT COUNT(*) FROM meta WHERE key >= 'ban:' AND key < 'ban;')",
            Vec::new(),
        )?;
        let Some([head, events, event_bytes, snapshot_seq, snapshot_bytes, banned]) =
            rows.first().map(Vec::as_slice)
        else {
            return Err(StoreError("the stats query returned no row".into()));
        };
        let (event_bytes, snapshot_bytes) = (as_u64(event_bytes)?, as_u64(snapshot_bytes)?);
        Ok(StoreStats {
            head_seq: as_u64(head)?.max(as_u64(snapshot_seq)?),
            stored_events: as_u64(events)?,
            event_bytes,
            snapshot_seq: as_u64(snapshot_seq)?,
            snapshot_bytes,
            stored_bytes: event_bytes + snapshot_bytes,
            banned: as_u64(banned)?,
        })
    }
}

/// Whether the room's schema exists: a room nobody joined has none, and the stats of such
/// a room are read without creating it.
///
/// # Errors
/// [`StoreError`] when SQLite fails.
pub fn has_schema(sql: &SqlStorage) -> Result<bool, StoreError> {
    let rows = sql
        .exec(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'",
            None,
        )
        .map_err(err)?
        .raw()
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    Ok(!rows.is_empty())
}
