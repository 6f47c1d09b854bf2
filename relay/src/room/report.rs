//! Reports to the organisation's directory (auth mode `jwt`, `crate::directory`): a
//! `POST` of a [`directory::Report`] to the organisation's `ORGS` object, `live` when a
//! socket arrives while the directory does not list the room ([`hub::Listing`]), not live
//! when its last socket left. A failure is logged, never fatal: the directory heals itself.
//!
//! [`hub::Listing`]: crate::hub::Listing

use sealsync_core::RoomId;
use worker::{console_error, Method, Request, RequestInit, Result};

use super::{now_ms, Room};
use crate::directory;

/// Where a room sends its reports to its organisation's directory.
const REPORT_URL: &str = "https://directory/internal/org/report";

impl Room {
    /// Tells the organisation's directory whether `room` is `live`, if it reports to one.
    pub(super) async fn report(&self, room: &RoomId, live: bool) {
        let auth_mode = self.env.var("AUTH_MODE").ok().map(|v| v.to_string());
        let Some(org) = directory::reports_to(auth_mode.as_deref(), room) else {
            return;
        };
        let stamp = self.with_live(|l| l.listing.start(now_ms()));
        let report = directory::Report {
            room: room.as_str().to_owned(),
            live,
            stamp,
        };
        match self.send_report(org, &report).await {
            Ok(status) if status < 300 => self.with_live(|l| l.listing.accepted(stamp, live)),
            Ok(status) => {
                console_error!("the directory of {org} refused this room's report: {status}");
            }
            Err(e) => console_error!("report to the directory of {org} failed: {e}"),
        }
    }

    /// Sends `report` to the directory of `org`; its answer's status.
    async fn send_report(&self, org: &str, report: &directory::Report) -> Result<u16> {
        let body = serde_json::to_string(report)?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_body(Some(body.into()));
        let req = Request::new_with_init(REPORT_URL, &init)?;
        let stub = self
            .env
            .durable_object(crate::org_directory::BINDING)?
            .id_from_name(org)?
            .get_stub()?;
        Ok(stub.fetch_with_request(req).await?.status_code())
    }
}
