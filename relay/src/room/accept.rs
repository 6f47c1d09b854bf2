//! A new socket (`GET /room/<room>/ws`, forwarded by the Worker with the verified
//! identity headers of `crate::forwarded`). One that [`hub::admission`] refuses gets its
//! fatal `ERROR` and is closed at once, never hibernated. An admitted one draws its
//! challenge and catch-up token key (32 random bytes each), is accepted as a hibernating
//! WebSocket tagged with its peer id and the room, stores its [`Peer`] as its attachment
//! and gets its `CHALLENGE` ([`hub::accept`]); the alarm is armed for its `HELLO`
//! deadline, and the room reports itself live to its organisation's directory when
//! [`hub::Listing::reports_on_accept`] says so.

use sealsync_core::member::CHALLENGE_LEN;
use sealsync_core::RoomId;
use worker::{Request, Response, ResponseBuilder, Result, WebSocketPair};

use super::alarm;
use super::live::{PEER_TAG, ROOM_TAG};
use super::{now_ms, Room};
use crate::forwarded;
use crate::hub::{self, Peer};
use crate::limits::Limits;
use crate::route::ClientId;
use crate::store::RoomStore as _;

/// The header that carries the client's address (set by Cloudflare's edge).
const ADDRESS: &str = "CF-Connecting-IP";

impl Room {
    /// Accepts (or refuses) a socket into `room`; the answer is the `101` with its client
    /// end, echoing the offered subprotocol.
    pub(super) async fn accept(
        &self,
        req: &Request,
        limits: &Limits,
        room: &RoomId,
        client: Option<ClientId>,
    ) -> Result<Response> {
        let pair = WebSocketPair::new()?;
        let header = |name: &str| req.headers().get(name).ok().flatten();
        let user = header(forwarded::USER);
        let banned = match &user {
            Some(user) => self.with_store(|store| store.is_banned(user))?,
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
                .close(code.close_code(), Some(hub::close_text(&message)))?;
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
            let peer_tag = format!("{PEER_TAG}{id}");
            let room_tag = format!("{ROOM_TAG}{}", room.as_str());
            self.state
                .accept_websocket_with_tags(&pair.server, &[peer_tag.as_str(), room_tag.as_str()]);
            pair.server.serialize_attachment(&peer)?;
            let (deadline, report) = self.with_live(|live| {
                live.sockets.insert(id, pair.server.clone());
                // The CHALLENGE first (and maybe the oldest unjoined socket closed).
                let outs = hub::accept(&mut live.peers, limits, peer);
                live.perform(outs);
                (
                    hub::unjoined_deadline(&live.peers, limits),
                    live.listing.reports_on_accept(live.sockets.len()),
                )
            });
            // The alarm closes this socket (or an older one) if it has not joined by then.
            if let Some(deadline) = deadline {
                alarm::arm(self.state.storage(), deadline).await?;
            }
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
}
