//! What the room's object holds in memory while it is awake ([`Live`]): its sockets and
//! their peers, the room's shared budget, the store once opened, the coalesced presence
//! update and the directory listing. After hibernation it is rebuilt from the sockets'
//! tags (`p:<peer id>`, `r:<room>`) and attachments. [`Live::perform`] carries out the
//! hub's outputs on the sockets; [`Room::drive`] runs one input through the hub.

use std::collections::BTreeMap;

use sealsync_core::RoomId;
use worker::{console_error, js_sys, State, WebSocket};

use super::Room;
use crate::hub::{self, Budget, Hub, Listing, Out, Peer, PeerId, Presence};
use crate::limits::Limits;
use crate::sql::SqlStore;
use crate::store::StoreError;

/// The prefix of the tag that carries a socket's peer id (`p:12`).
pub(super) const PEER_TAG: &str = "p:";

/// The prefix of the tag that carries the room's id (`r:team-42`; a room id is at most
/// 128 bytes, a tag 256 characters).
pub(super) const ROOM_TAG: &str = "r:";

/// The object's memory while it is awake.
#[derive(Debug)]
pub(super) struct Live {
    /// The room's id, from the socket route or a socket's `r:` tag.
    pub(super) room: Option<RoomId>,
    pub(super) sockets: BTreeMap<PeerId, WebSocket>,
    pub(super) peers: BTreeMap<PeerId, Peer>,
    pub(super) budget: Budget,
    pub(super) next_id: PeerId,
    pub(super) store: Option<SqlStore>,
    /// The coalesced presence update of a big room.
    pub(super) presence: Presence,
    /// This incarnation's reports to the organisation's directory.
    pub(super) listing: Listing,
}

impl Live {
    /// The memory of an object woken from hibernation: every socket with an attachment,
    /// the room's id from the first one's `r:` tag.
    fn rebuild(state: &State) -> Self {
        let mut sockets = BTreeMap::new();
        let mut peers = BTreeMap::new();
        let mut room = None;
        for ws in state.get_websockets() {
            if let Ok(Some(peer)) = ws.deserialize_attachment::<Peer>() {
                if room.is_none() {
                    room = state
                        .get_tags(&ws)
                        .iter()
                        .find_map(|tag| RoomId::new(tag.strip_prefix(ROOM_TAG)?).ok());
                }
                sockets.insert(peer.id, ws);
                peers.insert(peer.id, peer);
            }
        }
        Self {
            room,
            sockets,
            next_id: hub::next_peer_id(&peers),
            peers,
            budget: Budget::default(),
            store: None,
            presence: Presence::default(),
            listing: Listing::default(),
        }
    }

    /// Sends, broadcasts, closes and saves, in order. A send to a socket that is already
    /// gone fails; that is not an error of the room.
    pub(super) fn perform(&mut self, outs: Vec<Out>) {
        for out in outs {
            match out {
                Out::Send { to, frame } => {
                    if let Some(ws) = self.sockets.get(&to) {
                        let _ = ws.send_with_bytes(&frame);
                    }
                }
                Out::Broadcast { to, frame } => {
                    // One JS buffer for every socket: workerd keeps a reference, so the
                    // bytes must live on the JS heap, not in wasm memory.
                    let buffer = js_sys::Uint8Array::from(frame.as_slice()).buffer();
                    for id in to {
                        if let Some(ws) = self.sockets.get(&id) {
                            let _ = ws.as_ref().send_with_array_buffer(&buffer);
                        }
                    }
                }
                Out::Close { to, code, reason } => {
                    if let Some(ws) = self.sockets.remove(&to) {
                        let _ = ws.close(Some(code), Some(reason));
                    }
                }
                Out::PresenceChanged => self.presence.changed(),
                Out::Save(id) => {
                    if let (Some(ws), Some(peer)) = (self.sockets.get(&id), self.peers.get(&id)) {
                        if let Err(e) = ws.serialize_attachment(peer) {
                            console_error!("attachment of socket {id} not saved: {e}");
                        }
                    }
                }
            }
        }
    }
}

/// The room's store in `slot`, opened (and its schema created) on first use.
pub(super) fn open_store<'s>(
    slot: &'s mut Option<SqlStore>,
    state: &State,
) -> Result<&'s mut SqlStore, StoreError> {
    if slot.is_none() {
        *slot = Some(SqlStore::open(state.storage().sql())?);
    }
    slot.as_mut()
        .ok_or_else(|| StoreError("the store did not open".into()))
}

impl Room {
    /// Runs `f` with the object's memory, rebuilding it from the sockets when needed.
    pub(super) fn with_live<T>(&self, f: impl FnOnce(&mut Live) -> T) -> T {
        let mut slot = self.live.borrow_mut();
        f(slot.get_or_insert_with(|| Live::rebuild(&self.state)))
    }

    /// Forgets the object's memory (the room was deleted).
    pub(super) fn forget(&self) {
        *self.live.borrow_mut() = None;
    }

    /// Runs `f` with the room's store, opening it (and creating the schema) on first use.
    pub(super) fn with_store<T>(
        &self,
        f: impl FnOnce(&mut SqlStore) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with_live(|live| f(open_store(&mut live.store, &self.state)?))
    }

    /// The peer id of a socket: from its tag (cheap), else from its attachment.
    pub(super) fn peer_id(&self, ws: &WebSocket) -> Option<PeerId> {
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

    /// Runs `f` with the hub for this room, then performs the outputs.
    pub(super) fn drive(
        &self,
        limits: &Limits,
        f: impl FnOnce(Hub<'_, SqlStore>) -> Result<Vec<Out>, StoreError>,
    ) -> Result<(), StoreError> {
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
            live.perform(outs);
            Ok(())
        })
    }
}
