//! The room's alarm, the one timer a Durable Object has. It is armed for the earliest of an
//! unjoined socket's `HELLO` deadline, a coalesced presence update
//! ([`hub::Presence::alarm_by`]) and the idle TTL ([`hub::sets_alarm`] says whether to move
//! it). When it fires with sockets open it performs [`hub::alarm`]'s plan and re-arms;
//! with none open, [`hub::idle_plan`] deletes the room or waits. When the last socket
//! leaves, the room reports itself gone and is deleted at once if nobody wrote to it
//! ([`hub::disposable`]), else it starts its idle TTL.

use std::time::Duration;

use worker::{Response, Result, Storage};

use super::{now_ms, Room};
use crate::hub::{self, Idle};
use crate::limits::Limits;

/// The storage key (KV API) of the time, ms since the Unix epoch, from which an empty
/// room may be deleted.
const IDLE_AT: &str = "idle_at";

/// `WebSocket.readyState` of an open socket.
const OPEN: u16 = 1;

/// Makes the alarm of the room whose storage is `storage` fire at `at_ms` (ms since the
/// Unix epoch) at the latest. It owns nothing of the room but its storage, so a socket
/// message handled synchronously can hand it to the runtime as a promise.
pub(super) async fn arm(storage: Storage, at_ms: u64) -> Result<()> {
    if hub::sets_alarm(storage.get_alarm().await?, at_ms) {
        set_for(&storage, at_ms).await?;
    }
    Ok(())
}

/// Sets the alarm for `at_ms` (worker's `i64` is an offset, so a `Duration` from now).
async fn set_for(storage: &Storage, at_ms: u64) -> Result<()> {
    let delay = Duration::from_millis(at_ms.saturating_sub(now_ms()));
    storage.set_alarm(delay).await
}

impl Room {
    /// When a coalesced presence update became pending: the time the alarm must fire by.
    pub(super) fn presence_alarm(&self) -> Option<u64> {
        self.with_live(|live| live.presence.alarm_by(now_ms()))
    }

    /// Arms the alarm for a coalesced presence update that became pending.
    pub(super) async fn schedule_presence(&self) -> Result<()> {
        match self.presence_alarm() {
            Some(at) => arm(self.state.storage(), at).await,
            None => Ok(()),
        }
    }

    /// The room is idle until `idle_at`: recorded, and the alarm set for then.
    async fn start_idle(&self, idle_at: u64) -> Result<()> {
        self.state.storage().put(IDLE_AT, idle_at).await?;
        set_for(&self.state.storage(), idle_at).await
    }

    /// Deletes everything the room stores, its alarm and its memory.
    async fn delete(&self) -> Result<()> {
        self.state.storage().delete_alarm().await?;
        self.state.storage().delete_all().await?;
        self.forget();
        Ok(())
    }

    /// After a socket left: when none is left, the room is reported gone, and one nobody
    /// wrote to is deleted now; any other is idle from now. Else a coalesced presence
    /// update may want the alarm.
    pub(super) async fn after_leave(&self) -> Result<()> {
        let (empty, room) = self.with_live(|live| (live.sockets.is_empty(), live.room.clone()));
        if !empty {
            return self.schedule_presence().await;
        }
        if let Some(room) = &room {
            self.report(room, false).await;
        }
        if self.with_store(|store| hub::disposable(store))? {
            // Nothing anyone wrote: the room leaves nothing behind (a squatter's key
            // goes with it).
            return self.delete().await;
        }
        if let Ok(limits) = &self.limits {
            self.start_idle(hub::idle_from(now_ms(), limits)).await?;
        }
        Ok(())
    }

    /// The alarm fired: [`hub::alarm`]'s plan while sockets are open, else
    /// [`hub::idle_plan`].
    pub(super) async fn on_alarm(&self, limits: &Limits) -> Result<Response> {
        let now = now_ms();
        let next = self.with_live(|live| {
            let plan = hub::alarm(&mut live.peers, &mut live.presence, limits, now);
            live.perform(plan.out);
            plan.next_ms
        });
        let open = self
            .state
            .get_websockets()
            .iter()
            .any(|ws| ws.as_ref().ready_state() == OPEN);
        if open {
            set_for(&self.state.storage(), next).await?;
            return Response::ok("");
        }
        let idle_at = self.state.storage().get::<u64>(IDLE_AT).await?;
        match hub::idle_plan(now, idle_at, limits) {
            Idle::Delete => {
                self.state.storage().delete_all().await?;
                self.forget();
            }
            Idle::WakeAt(at) => set_for(&self.state.storage(), at).await?,
            Idle::Start(at) => self.start_idle(at).await?,
        }
        Response::ok("")
    }
}
