//! An organisation's directory of live rooms (auth mode `jwt`), for org-wide pushes
//! (`POST /internal/notify` with `org`).
//!
//! One Durable Object per organisation (`ORGS`, `idFromName(org)`) lists the rooms of that
//! organisation that hold at least one socket. A room reports itself ([`Report`]) when it
//! gains its first socket (`live: true`) and when it loses its last (`live: false`); the
//! worker sends an org-wide push to the directory, which forwards it to each listed room
//! and drops the rooms that answer with no socket. Nothing else reaches a directory: no
//! public route leads to it, so only the relay's own rooms report, each only its own id,
//! and the directory refuses a room of another organisation ([`ReportOutcome::WrongOrg`]).
//!
//! Bounds: at most [`MAX_ORG_ROOMS`] rooms per directory. Past it a new room is not
//! listed ([`ReportOutcome::Full`]) and misses org-wide pushes; the push's answer says
//! `"directory_full": true` meanwhile. A room the directory has not accepted (full, or the
//! report failed) reports again with each new socket, so it is listed once there is room. Self-healing: a room that reports idle,
//! or that a forward finds without sockets, is dropped; reports carry a stamp that grows
//! with each report of the room, so a late report never undoes a newer one.
//!
//! The rules here are plain Rust over [`DirectoryStore`]; `org_directory` (wasm) keeps the
//! list in the object's SQLite and does the fetches.

use std::collections::BTreeMap;

use sealsync_core::RoomId;
use serde::{Deserialize, Serialize};

use crate::auth::room_org;
use crate::store::StoreError;

/// The most rooms one organisation's directory lists.
pub const MAX_ORG_ROOMS: usize = 1000;

/// How many rooms a directory forwards a push to at the same time.
pub const FORWARD_CONCURRENCY: usize = 6;

/// The response header in which a room tells a forwarded push how many sockets it holds.
pub const SOCKETS_HEADER: &str = "x-sealsync-sockets";

/// A room's report to its organisation's directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The room's id.
    pub room: String,
    /// `true`: it gained its first socket; `false`: it lost its last.
    pub live: bool,
    /// Grows with each report of this room (ms since the Unix epoch, made strictly
    /// increasing by [`next_stamp`]).
    pub stamp: u64,
}

/// The stamp of a room's next report: `now_ms`, or one past the last when the clock has not
/// moved.
#[must_use]
pub fn next_stamp(last: u64, now_ms: u64) -> u64 {
    now_ms.max(last.saturating_add(1))
}

/// The organisation whose directory a room reports to: in auth mode `jwt` (the `AUTH_MODE`
/// variable), the room's organisation ([`room_org`]); no report otherwise.
#[must_use]
pub fn reports_to<'r>(auth_mode: Option<&str>, room: &'r RoomId) -> Option<&'r str> {
    (auth_mode.map(str::trim) == Some("jwt"))
        .then(|| room_org(room))
        .flatten()
}

/// A directory's storage: room id → stamp of its last `live` report.
pub trait DirectoryStore {
    /// The stamp of a listed room.
    ///
    /// # Errors
    /// [`StoreError`] when storage fails.
    fn stamp(&self, room: &str) -> Result<Option<u64>, StoreError>;
    /// Lists or re-stamps a room.
    ///
    /// # Errors
    /// [`StoreError`] when storage fails.
    fn put(&mut self, room: &str, stamp: u64) -> Result<(), StoreError>;
    /// Unlists a room if its stamp is still `stamp`; whether it did.
    ///
    /// # Errors
    /// [`StoreError`] when storage fails.
    fn remove_if(&mut self, room: &str, stamp: u64) -> Result<bool, StoreError>;
    /// How many rooms are listed.
    ///
    /// # Errors
    /// [`StoreError`] when storage fails.
    fn count(&self) -> Result<usize, StoreError>;
    /// Every listed room with its stamp.
    ///
    /// # Errors
    /// [`StoreError`] when storage fails.
    fn rooms(&self) -> Result<Vec<(String, u64)>, StoreError>;
}

/// A [`DirectoryStore`] in memory, for host tests.
#[derive(Debug, Default, Clone)]
pub struct MemoryDirectory(pub BTreeMap<String, u64>);

impl DirectoryStore for MemoryDirectory {
    fn stamp(&self, room: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.0.get(room).copied())
    }
    fn put(&mut self, room: &str, stamp: u64) -> Result<(), StoreError> {
        self.0.insert(room.to_owned(), stamp);
        Ok(())
    }
    fn remove_if(&mut self, room: &str, stamp: u64) -> Result<bool, StoreError> {
        let held = self.0.get(room) == Some(&stamp);
        if held {
            self.0.remove(room);
        }
        Ok(held)
    }
    fn count(&self) -> Result<usize, StoreError> {
        Ok(self.0.len())
    }
    fn rooms(&self) -> Result<Vec<(String, u64)>, StoreError> {
        Ok(self.0.iter().map(|(r, s)| (r.clone(), *s)).collect())
    }
}

/// What a report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportOutcome {
    /// The room is listed now.
    Listed,
    /// The room was listed; its stamp is newer now.
    Refreshed,
    /// The room is no longer listed.
    Removed,
    /// An older report than the one the directory holds (or an idle report of a room that
    /// is not listed): nothing changed.
    Stale,
    /// The directory holds [`MAX_ORG_ROOMS`] rooms: the room is not listed.
    Full,
    /// The room is not a valid room id of this organisation: refused.
    WrongOrg,
}

/// Applies a room's report to the directory of `org`.
///
/// # Errors
/// [`StoreError`] when storage fails.
pub fn report<S: DirectoryStore>(
    store: &mut S,
    org: &str,
    report: &Report,
) -> Result<ReportOutcome, StoreError> {
    let Ok(room) = RoomId::new(&report.room) else {
        return Ok(ReportOutcome::WrongOrg);
    };
    if room_org(&room) != Some(org) || room.as_str() != report.room {
        return Ok(ReportOutcome::WrongOrg);
    }
    let held = store.stamp(&report.room)?;
    if held.is_some_and(|s| s >= report.stamp) {
        return Ok(ReportOutcome::Stale);
    }
    if !report.live {
        return Ok(match held {
            Some(s) => {
                store.remove_if(&report.room, s)?;
                ReportOutcome::Removed
            }
            None => ReportOutcome::Stale,
        });
    }
    if held.is_none() && store.count()? >= MAX_ORG_ROOMS {
        return Ok(ReportOutcome::Full);
    }
    store.put(&report.room, report.stamp)?;
    Ok(if held.is_some() {
        ReportOutcome::Refreshed
    } else {
        ReportOutcome::Listed
    })
}

/// What forwarding a push to one room gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarded {
    /// The room answered 2xx: it reached `delivered` sockets of the `sockets` it holds
    /// (`None` when it did not say).
    Delivered {
        /// Sockets the push reached.
        delivered: u64,
        /// Sockets the room holds.
        sockets: Option<u64>,
    },
    /// The fetch failed or the room answered an error: the room stays listed.
    Failed,
}

/// The answer to an org-wide push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Summary {
    /// Rooms the push was forwarded to.
    pub rooms: u64,
    /// Sockets it reached, over all rooms.
    pub delivered: u64,
    /// Rooms whose forward failed (the others were still served).
    pub failed: u64,
    /// Rooms dropped from the directory because they hold no socket.
    pub dropped: u64,
    /// The directory holds [`MAX_ORG_ROOMS`] rooms: rooms past it were not listed and
    /// missed this push.
    pub directory_full: bool,
}

/// Settles the forwards of one push: drops each room that answered with no socket (unless
/// it reported again since: `remove_if` keeps a newer stamp), and sums up.
///
/// # Errors
/// [`StoreError`] when storage fails.
pub fn settle<S: DirectoryStore>(
    store: &mut S,
    results: &[(String, u64, Forwarded)],
) -> Result<Summary, StoreError> {
    let full = store.count()? >= MAX_ORG_ROOMS;
    let mut summary = Summary {
        rooms: results.len() as u64,
        directory_full: full,
        ..Summary::default()
    };
    for (room, stamp, result) in results {
        match result {
            Forwarded::Delivered { delivered, sockets } => {
                summary.delivered += delivered;
                if *sockets == Some(0) && store.remove_if(room, *stamp)? {
                    summary.dropped += 1;
                }
            }
            Forwarded::Failed => summary.failed += 1,
        }
    }
    Ok(summary)
}

/// Reads a room's answer to a forwarded push: its status, its [`SOCKETS_HEADER`] and its
/// `{"delivered": N}` body.
#[must_use]
pub fn forwarded(status: u16, sockets: Option<&str>, body: &str) -> Forwarded {
    if !(200..300).contains(&status) {
        return Forwarded::Failed;
    }
    let delivered = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["delivered"].as_u64());
    match delivered {
        Some(delivered) => Forwarded::Delivered {
            delivered,
            sockets: sockets.and_then(|s| s.trim().parse().ok()),
        },
        None => Forwarded::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(room: &str, stamp: u64) -> Report {
        Report {
            room: room.into(),
            live: true,
            stamp,
        }
    }

    fn idle(room: &str, stamp: u64) -> Report {
        Report {
            live: false,
            ..live(room, stamp)
        }
    }

    #[test]
    fn rooms_report_only_in_jwt_mode_and_to_their_own_org() {
        let room = RoomId::new("acme:roadmap").unwrap();
        assert_eq!(reports_to(Some("jwt"), &room), Some("acme"));
        assert_eq!(reports_to(Some(" jwt "), &room), Some("acme"));
        assert_eq!(reports_to(Some("open"), &room), None);
        assert_eq!(reports_to(None, &room), None);
        assert_eq!(reports_to(Some("jwt"), &RoomId::new("bare").unwrap()), None);
        assert_eq!(reports_to(Some("jwt"), &RoomId::new(":x").unwrap()), None);
    }

    #[test]
    fn a_directory_lists_live_rooms_of_its_org_only() {
        let mut d = MemoryDirectory::default();
        assert_eq!(
            report(&mut d, "acme", &live("acme:a", 1)),
            Ok(ReportOutcome::Listed)
        );
        assert_eq!(
            report(&mut d, "acme", &live("acme:a", 2)),
            Ok(ReportOutcome::Refreshed)
        );
        for bad in ["globex:a", "acme", "acmex:a", "", "acme:a\u{200b}"] {
            assert_eq!(
                report(&mut d, "acme", &live(bad, 3)),
                Ok(ReportOutcome::WrongOrg),
                "{bad:?}"
            );
        }
        // Not in NFC: the room's own id never looks like that.
        assert_eq!(
            report(&mut d, "café", &live("cafe\u{301}:a", 3)),
            Ok(ReportOutcome::WrongOrg)
        );
        assert_eq!(d.0.len(), 1);
        assert_eq!(
            report(&mut d, "acme", &idle("acme:a", 3)),
            Ok(ReportOutcome::Removed)
        );
        assert!(d.0.is_empty());
        assert_eq!(
            report(&mut d, "acme", &idle("acme:a", 4)),
            Ok(ReportOutcome::Stale)
        );
    }

    #[test]
    fn a_late_report_never_undoes_a_newer_one() {
        let mut d = MemoryDirectory::default();
        report(&mut d, "acme", &live("acme:a", 10)).unwrap();
        // The idle report of an earlier incarnation arrives after the new live one.
        assert_eq!(
            report(&mut d, "acme", &idle("acme:a", 9)),
            Ok(ReportOutcome::Stale)
        );
        assert_eq!(d.0.get("acme:a"), Some(&10));
        assert_eq!(
            report(&mut d, "acme", &live("acme:a", 10)),
            Ok(ReportOutcome::Stale)
        );
        assert_eq!(next_stamp(10, 5), 11);
        assert_eq!(next_stamp(10, 50), 50);
    }

    #[test]
    fn a_full_directory_lists_no_new_room_but_keeps_its_own() {
        let mut d = MemoryDirectory::default();
        for i in 0..MAX_ORG_ROOMS {
            report(&mut d, "acme", &live(&format!("acme:{i}"), 1)).unwrap();
        }
        assert_eq!(
            report(&mut d, "acme", &live("acme:one-more", 1)),
            Ok(ReportOutcome::Full)
        );
        assert_eq!(
            report(&mut d, "acme", &live("acme:0", 2)),
            Ok(ReportOutcome::Refreshed)
        );
        assert_eq!(d.0.len(), MAX_ORG_ROOMS);
        let summary = settle(&mut d, &[]).unwrap();
        assert!(summary.directory_full);
        // A room leaves: there is room again.
        report(&mut d, "acme", &idle("acme:1", 2)).unwrap();
        assert_eq!(
            report(&mut d, "acme", &live("acme:one-more", 3)),
            Ok(ReportOutcome::Listed)
        );
    }

    #[test]
    fn forwards_that_find_no_socket_drop_the_room_and_failures_do_not_stop_the_others() {
        let mut d = MemoryDirectory::default();
        for room in ["acme:a", "acme:b", "acme:c", "acme:d"] {
            report(&mut d, "acme", &live(room, 1)).unwrap();
        }
        // acme:d reported again while the push was under way.
        report(&mut d, "acme", &live("acme:d", 5)).unwrap();
        let results = [
            (
                "acme:a".to_owned(),
                1,
                forwarded(200, Some("2"), r#"{"delivered":2}"#),
            ),
            ("acme:b".to_owned(), 1, forwarded(500, None, "boom")),
            (
                "acme:c".to_owned(),
                1,
                forwarded(200, Some("0"), r#"{"delivered":0}"#),
            ),
            (
                "acme:d".to_owned(),
                1,
                forwarded(200, Some("0"), r#"{"delivered":0}"#),
            ),
        ];
        let summary = settle(&mut d, &results).unwrap();
        assert_eq!(
            summary,
            Summary {
                rooms: 4,
                delivered: 2,
                failed: 1,
                dropped: 1,
                directory_full: false,
            }
        );
        let left: Vec<_> = d.0.keys().cloned().collect();
        assert_eq!(
            left,
            ["acme:a", "acme:b", "acme:d"],
            "acme:d's newer report stays"
        );
        assert_eq!(forwarded(200, None, "not json"), Forwarded::Failed);
        assert_eq!(
            forwarded(200, None, r#"{"delivered":1}"#),
            Forwarded::Delivered {
                delivered: 1,
                sockets: None
            }
        );
    }
}
