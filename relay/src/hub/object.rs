//! What the room's Durable Object decides besides the protocol, sans-IO: when a coalesced
//! presence update goes out ([`Presence`]), what the alarm does while the room is awake
//! ([`alarm`], [`AlarmPlan`]), whether an alarm already set is moved ([`sets_alarm`]),
//! when the room reports to its organisation's directory ([`Listing`]), the id of the
//! next socket ([`next_peer_id`]) and the close reason sent ([`close_text`]). All of it
//! lives in the object's memory only; the glue (`room.rs`) performs what it says.

use std::collections::BTreeMap;

use super::{expire_unjoined, next_alarm, presence, presence_now, Out, Peer, PeerId};
use super::{Limits, PRESENCE_COALESCE_ABOVE};
use crate::directory;

/// How long a coalesced presence update ([`Out::PresenceChanged`]) waits for the alarm.
pub const PRESENCE_FLUSH_MS: u64 = 1000;

/// The longest WebSocket close reason, in bytes (RFC 6455: a control frame's payload is at
/// most 125 bytes, 2 of them the code).
pub const MAX_CLOSE_REASON: usize = 123;

/// The coalesced presence update of a big room: [`Out::PresenceChanged`] marks it pending,
/// the alarm sends it ([`alarm`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Presence {
    /// An update is waiting for the alarm.
    pending: bool,
    /// The alarm must be armed for it ([`Presence::alarm_by`] not asked since).
    arm: bool,
}

impl Presence {
    /// Notes an [`Out::PresenceChanged`]: the first while none is pending wants the alarm.
    pub fn changed(&mut self) {
        if !self.pending {
            self.pending = true;
            self.arm = true;
        }
    }

    /// Whether an update is waiting for the alarm.
    #[must_use]
    pub const fn pending(&self) -> bool {
        self.pending
    }

    /// When the alarm must fire at the latest (ms since the Unix epoch) for an update that
    /// became pending since the last call: [`PRESENCE_FLUSH_MS`] after `now_ms`; `None`
    /// otherwise (none pending, or the alarm was already asked for it).
    #[must_use]
    pub fn alarm_by(&mut self, now_ms: u64) -> Option<u64> {
        core::mem::take(&mut self.arm).then(|| now_ms.saturating_add(PRESENCE_FLUSH_MS))
    }

    /// At the alarm: `PRESENCE` with the current count to every joined peer when an update
    /// is pending, and in a big room even when none is (the pending flag does not survive
    /// hibernation; one extra `PRESENCE` is harmless). Nothing is pending afterwards.
    #[must_use]
    pub fn flush(&mut self, peers: &BTreeMap<PeerId, Peer>) -> Option<Out> {
        let big = presence(peers) > PRESENCE_COALESCE_ABOVE;
        let pending = core::mem::take(&mut self.pending);
        self.arm = false;
        if pending || big {
            presence_now(peers)
        } else {
            None
        }
    }
}

/// What the alarm does while the room is awake ([`alarm`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmPlan {
    /// To perform in order: the unjoined sockets whose time is up closed
    /// ([`expire_unjoined`]), then the coalesced presence update ([`Presence::flush`]).
    pub out: Vec<Out>,
    /// When the alarm fires next if a socket is still open ([`next_alarm`], ms since the
    /// Unix epoch); with none open, [`super::idle_plan`] decides instead.
    pub next_ms: u64,
}

/// The room's alarm at `now_ms`, for its peers and its coalesced presence.
#[must_use]
pub fn alarm(
    peers: &mut BTreeMap<PeerId, Peer>,
    presence: &mut Presence,
    limits: &Limits,
    now_ms: u64,
) -> AlarmPlan {
    let mut out = expire_unjoined(peers, limits, now_ms);
    out.extend(presence.flush(peers));
    AlarmPlan {
        out,
        next_ms: next_alarm(peers, limits, now_ms),
    }
}

/// Whether the alarm must be set to fire at `at_ms` (ms since the Unix epoch), given the
/// one already set (`set`, as the runtime reports it): unless one is set no later.
#[must_use]
pub fn sets_alarm(set: Option<i64>, at_ms: u64) -> bool {
    set.is_none_or(|t| u64::try_from(t).map_or(true, |t| t > at_ms))
}

/// The room's reports to its organisation's directory (auth mode `jwt`,
/// [`directory::reports_to`]): the stamp of the last one and whether the directory
/// accepted this incarnation's last `live` report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Listing {
    /// The stamp of the last report sent.
    stamp: u64,
    /// The directory accepted the last `live` report and no report went out since.
    listed: bool,
}

impl Listing {
    /// Whether a socket just accepted, the room now holding `sockets`, reports the room
    /// `live`: the first socket does, and any socket while the directory has not accepted
    /// this incarnation's last `live` report (after a failure, a full directory or
    /// hibernation).
    #[must_use]
    pub const fn reports_on_accept(&self, sockets: usize) -> bool {
        sockets == 1 || !self.listed
    }

    /// A report goes out at `now_ms`: its stamp ([`directory::next_stamp`]). Until the
    /// directory accepts it, the room is not listed.
    pub fn start(&mut self, now_ms: u64) -> u64 {
        self.stamp = directory::next_stamp(self.stamp, now_ms);
        self.listed = false;
        self.stamp
    }

    /// The directory accepted the report `stamp`: a `live` one lists the room, unless
    /// another report went out meanwhile.
    pub fn accepted(&mut self, stamp: u64, live: bool) {
        if live {
            self.listed = self.stamp == stamp;
        }
    }

    /// Whether the directory lists the room, as far as this incarnation knows.
    #[must_use]
    pub const fn listed(&self) -> bool {
        self.listed
    }
}

/// The id of the next socket: one past the highest of `peers` (rebuilt from the sockets'
/// attachments after hibernation), 1 in an empty room.
#[must_use]
pub fn next_peer_id(peers: &BTreeMap<PeerId, Peer>) -> PeerId {
    peers
        .keys()
        .next_back()
        .map_or(1, |id| id.saturating_add(1))
}

/// `message` cut to [`MAX_CLOSE_REASON`] bytes on a character boundary: a close reason.
#[must_use]
pub fn close_text(message: &str) -> &str {
    let mut end = message.len().min(MAX_CLOSE_REASON);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}
