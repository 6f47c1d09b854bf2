//! The sans-IO connection machine: one room, one relay connection, driven by inputs.
//!
//! # Calling order
//!
//! The shell owns the socket, the timer and the storage; the [`Client`] owns every rule.
//! Feed exactly one input (`handle_*`), then drain [`Client::poll`] until it returns
//! `None`, and act on each [`Output`] in order:
//!
//! - [`Output::Connect`]: open a WebSocket to the room; report [`Client::handle_socket_opened`]
//!   or [`Client::handle_socket_closed`].
//! - [`Output::Send`] / [`Output::SendPing`]: send a binary frame / the text `ping`.
//! - [`Output::Close`]: close the current socket with the code and **forget it**: do not report
//!   its close event (the client has already moved on).
//! - [`Output::WakeAt`]: arm the one timer for that instant (replacing any earlier one) and call
//!   [`Client::handle_timer`] when it fires.
//! - [`Output::Event`]: hand to the application.
//! - [`Output::OutboxChanged`]: persist [`Client::outbox_envelopes`] (ciphertext only).
//!
//! Time comes in as arguments: `now` is monotonic ([`Millis`]), `wall` is the wall clock
//! ([`WallMillis`]) used only for the hybrid logical clock.
//!
//! ```
//! use sealsync_core::client::{Client, ClientConfig, Output, Status};
//! use sealsync_core::{DeviceId, Entropy, Millis, RoomId, SessionId};
//! use sealsync_core::kdf::{RoomKey, RoomKeys};
//!
//! struct Counter(u8);
//! impl Entropy for Counter {
//!     fn fill(&mut self, dest: &mut [u8]) {
//!         for b in dest { self.0 = self.0.wrapping_add(1); *b = self.0; }
//!     }
//! }
//!
//! let room = RoomId::new("team-42")?;
//! let secret = RoomKey::generate_secret(&mut Counter(0));
//! let keys = RoomKeys::derive(&RoomKey::from_secret(&secret)?, room.clone());
//! let config = ClientConfig::new(room, DeviceId([1; 16]), SessionId([2; 16]));
//! let mut client = Client::new(config, keys, Box::new(Counter(9)));
//!
//! client.handle_start(Millis(0));
//! assert_eq!(client.poll(), Some(Output::Connect));
//! client.handle_socket_opened(Millis(40));
//! let mut sent_hello = false;
//! while let Some(out) = client.poll() {
//!     if let Output::Send(_) = out { sent_hello = true; }
//! }
//! assert!(sent_hello);
//! assert_eq!(client.status(), &Status::Syncing);
//! # Ok::<(), sealsync_core::Error>(())
//! ```

use alloc::boxed::Box;
use alloc::collections::{BTreeSet, VecDeque};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use serde::Serialize;

use crate::backoff::Backoff;
use crate::envelope::{EnvelopeHeader, EnvelopeKind};
use crate::error::{Error, Result};
use crate::hlc::{effective, Clock, Hlc};
use crate::ids::{ChannelTag, DeviceId, Entropy, Millis, RoomId, SessionId, WallMillis};
use crate::kdf::RoomKeys;
use crate::merge::{Change, Op, Replica, StampedOp};
use crate::outbox::Outbox;
use crate::replay::ReplayGuard;
use crate::seal::{Opener, SessionSealer};
use crate::wire::{self, ClientFrame, RelayErrorCode, RelayFrame};

/// The most published events in flight (sent, not yet acknowledged) on one connection.
pub const MAX_IN_FLIGHT: usize = 128;

/// Tunables of a [`Client`]. [`ClientConfig::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The room.
    pub room: RoomId,
    /// This replica's stable id.
    pub device: DeviceId,
    /// This session's random id (new per page load).
    pub session: SessionId,
    /// The channel name this client publishes to and listens on (default `"main"`).
    pub channel: String,
    /// Upload an encrypted snapshot every this many stored events (default 500).
    pub snapshot_every: u64,
    /// Send a heartbeat `ping` after this long without traffic (default 15 s).
    pub heartbeat_interval_ms: u64,
    /// Declare the connection dead when a `ping` gets no answer for this long (default 10 s).
    pub heartbeat_timeout_ms: u64,
    /// Give up on a socket that has not opened after this long (default 10 s).
    pub connect_timeout_ms: u64,
    /// A connection that stayed live this long resets the backoff (default 10 s).
    pub healthy_after_ms: u64,
}

impl ClientConfig {
    /// The defaults for `room`, `device` and `session`.
    #[must_use]
    pub fn new(room: RoomId, device: DeviceId, session: SessionId) -> Self {
        Self {
            room,
            device,
            session,
            channel: String::from("main"),
            snapshot_every: 500,
            heartbeat_interval_ms: 15_000,
            heartbeat_timeout_ms: 10_000,
            connect_timeout_ms: 10_000,
            healthy_after_ms: 10_000,
        }
    }
}

/// What the application sees of the connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(
    tag = "state",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
pub enum Status {
    /// Not started.
    Idle,
    /// A socket is being opened (`attempt` 0 is the first try).
    Connecting {
        /// Attempts since the last healthy connection.
        attempt: u32,
    },
    /// Connected; catching up on history.
    Syncing,
    /// Caught up; changes flow both ways.
    Live,
    /// Waiting before the next attempt.
    Reconnecting {
        /// Milliseconds until the next attempt.
        in_ms: u64,
        /// Attempts since the last healthy connection.
        attempt: u32,
    },
    /// The browser reports no network; the next attempt waits for it to come back.
    Offline,
    /// Terminal: the room exists with another password or secret.
    WrongPassword,
    /// Terminal: the relay refused this user for this room (auth, ban).
    Forbidden,
    /// Terminal: left, or a protocol mismatch; `code` says which (`LEFT`, `WIRE_VERSION`).
    Closed {
        /// Why.
        code: String,
    },
}

impl Status {
    /// Whether the client has stopped for good (no more retries).
    #[must_use]
    pub const fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::WrongPassword | Self::Forbidden | Self::Closed { .. }
        )
    }
}

/// Something for the application.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", content = "value", rename_all = "camelCase")]
pub enum ClientEvent {
    /// Remote changes that altered the state (local ones are returned by
    /// [`Client::handle_local_op`]).
    Changes(Vec<Change>),
    /// The connection status changed.
    Status(Status),
    /// How many sockets are in the room, this one included.
    Presence(u32),
    /// A message pushed by the application backend through the relay. **Not encrypted.**
    Notify(String),
    /// An ephemeral payload (cursor, typing) from another member, decrypted.
    Ephemeral {
        /// The payload as sent.
        body: Vec<u8>,
    },
    /// Something was dropped or refused; nothing the user did is lost.
    Warning {
        /// A stable code (`DECRYPT_FAILED`, `MALFORMED_FRAME`, `HISTORY_FULL`, …).
        code: String,
        /// A readable explanation.
        message: String,
    },
}

/// An instruction for the shell. See the module docs for what to do with each.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Open a socket to the relay.
    Connect,
    /// Send this binary frame.
    Send(Vec<u8>),
    /// Send the text heartbeat `ping`.
    SendPing,
    /// Close the current socket with this code and forget it.
    Close {
        /// The close code.
        code: u16,
    },
    /// Arm the timer for this instant.
    WakeAt(Millis),
    /// Hand this to the application.
    Event(ClientEvent),
    /// The outbox changed: persist [`Client::outbox_envelopes`].
    OutboxChanged,
}

/// Where the connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conn {
    Idle,
    Connecting {
        deadline: Millis,
    },
    Open {
        live_since: Option<Millis>,
        last_rx: Millis,
        ping_sent: Option<Millis>,
    },
    Waiting {
        until: Millis,
    },
    Offline,
    Stopped,
}

/// The connection machine for one room. See the module docs for the calling order.
pub struct Client {
    config: ClientConfig,
    keys: RoomKeys,
    channel: ChannelTag,
    sealer: SessionSealer,
    opener: Opener,
    entropy: Box<dyn Entropy>,
    replica: Replica,
    clock: Clock,
    outbox: Outbox,
    backoff: Backoff,
    conn: Conn,
    status: Status,
    /// Every sequence number up to here has been seen (applied, acked or skipped).
    last_seq: u64,
    /// Sequences above `last_seq` already seen (arrived ahead of a hole).
    seen_above: BTreeSet<u64>,
    /// Sequence of the last snapshot known to be stored on the relay.
    snapshot_seq: u64,
    /// Which `(session, counter)` pairs have been applied: a second one is a replay.
    replay: ReplayGuard,
    sync_requested: bool,
    armed: Option<Millis>,
    outputs: VecDeque<Output>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("room", &self.config.room)
            .field("status", &self.status)
            .field("last_seq", &self.last_seq)
            .field("outbox", &self.outbox.len())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `config.room` holding `keys`, drawing nonces and jitter from `entropy`.
    #[must_use]
    pub fn new(config: ClientConfig, keys: RoomKeys, entropy: Box<dyn Entropy>) -> Self {
        let channel = keys.channel_tag(&config.channel);
        let sealer = SessionSealer::new(&keys, config.session);
        let opener = Opener::new(&keys);
        let clock = Clock::new(config.device);
        Self {
            config,
            keys,
            channel,
            sealer,
            opener,
            entropy,
            replica: Replica::default(),
            clock,
            outbox: Outbox::new(),
            backoff: Backoff::new(),
            conn: Conn::Idle,
            status: Status::Idle,
            last_seq: 0,
            seen_above: BTreeSet::new(),
            snapshot_seq: 0,
            replay: ReplayGuard::new(),
            sync_requested: false,
            armed: None,
            outputs: VecDeque::new(),
        }
    }

    /// The next instruction for the shell, or `None` when there is nothing to do.
    pub fn poll(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The replicated state as this replica sees it.
    #[must_use]
    pub const fn replica(&self) -> &Replica {
        &self.replica
    }

    /// The connection status.
    #[must_use]
    pub const fn status(&self) -> &Status {
        &self.status
    }

    /// Highest sequence number up to which this client has seen every stored event.
    #[must_use]
    pub const fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The unacknowledged envelopes, oldest first (ciphertext; safe to persist).
    #[must_use]
    pub fn outbox_envelopes(&self) -> Vec<Vec<u8>> {
        self.outbox.envelopes()
    }

    /// Number of unacknowledged local changes.
    #[must_use]
    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    /// The room's fingerprint, for comparing out of band.
    #[must_use]
    pub fn fingerprint(&self) -> String {
        self.keys.fingerprint()
    }

    /// Puts back envelopes persisted by an earlier session: each is opened with this room's
    /// keys, applied locally (so the user sees their unsent edits at once) and queued to be
    /// sent. Returns the changes they made. An envelope that does not open (another room's,
    /// or damaged) is skipped and reported as a [`ClientEvent::Warning`]; the others are kept.
    pub fn restore_outbox(&mut self, wall: WallMillis, envelopes: Vec<Vec<u8>>) -> Vec<Change> {
        let mut changes = Vec::new();
        for envelope in envelopes {
            match self.open_event(&envelope) {
                Ok((session, counter, hlc, op)) => {
                    if self.outbox.contains(session, counter) || !self.outbox.has_room() {
                        continue;
                    }
                    self.clock.observe(hlc, wall);
                    changes.extend(self.replica.apply(&StampedOp { hlc, op }, true));
                    self.outbox.push(session, counter, hlc, envelope);
                }
                Err(err) => self.warn(&err),
            }
        }
        self.outputs.push_back(Output::OutboxChanged);
        self.flush_outbox();
        changes
    }

    /// Starts connecting (from `Idle`; no-op otherwise).
    pub fn handle_start(&mut self, now: Millis) {
        if self.conn == Conn::Idle {
            self.connect(now);
        }
    }

    /// The socket asked for by [`Output::Connect`] is open.
    pub fn handle_socket_opened(&mut self, now: Millis) {
        if !matches!(self.conn, Conn::Connecting { .. }) {
            return;
        }
        self.conn = Conn::Open {
            live_since: None,
            last_rx: now,
            ping_sent: None,
        };
        self.sync_requested = false;
        self.outbox.mark_all_unsent();
        let hello = ClientFrame::Hello {
            after_seq: self.last_seq,
            verifier: self.keys.verifier(),
            channels: alloc::vec![self.channel],
        };
        self.send(&hello);
        self.set_status(Status::Syncing);
        self.rearm(now);
    }

    /// The socket closed (or failed to open) with `code`.
    pub fn handle_socket_closed(&mut self, now: Millis, code: u16) {
        if !matches!(self.conn, Conn::Open { .. } | Conn::Connecting { .. }) {
            return;
        }
        match code {
            wire::CLOSE_WRONG_VERIFIER => self.stop(Status::WrongPassword),
            wire::CLOSE_FORBIDDEN | wire::CLOSE_BANNED => self.stop(Status::Forbidden),
            wire::CLOSE_UNSUPPORTED_VERSION => self.stop(Status::Closed {
                code: String::from("WIRE_VERSION"),
            }),
            _ => self.schedule_reconnect(now),
        }
    }

    /// A text message arrived (the heartbeat answer `pong`).
    pub fn handle_text(&mut self, now: Millis, text: &str) {
        if text == wire::HEARTBEAT_PONG {
            self.saw_traffic(now);
        }
    }

    /// A binary frame arrived. Frames that do not decode, or events that do not open, are
    /// dropped and reported as [`ClientEvent::Warning`]; they never stop the client.
    pub fn handle_frame(&mut self, now: Millis, wall: WallMillis, frame: &[u8]) {
        if !matches!(self.conn, Conn::Open { .. }) {
            return;
        }
        self.saw_traffic(now);
        let frame = match RelayFrame::decode(frame) {
            Ok(frame) => frame,
            Err(err) => return self.warn(&err),
        };
        match frame {
            RelayFrame::Welcome {
                relay_time,
                presence,
                snapshot_seq,
                ..
            } => {
                self.snapshot_seq = self.snapshot_seq.max(snapshot_seq);
                self.clock.set_offset(relay_time, wall);
                self.event(ClientEvent::Presence(presence));
            }
            RelayFrame::Snapshot { seq, envelope } => self.on_snapshot(seq, &envelope),
            RelayFrame::Event {
                seq,
                relay_time,
                envelope,
            } => self.on_event(now, wall, seq, relay_time, &envelope),
            RelayFrame::CaughtUp { head_seq } => self.on_caught_up(now, head_seq),
            RelayFrame::Ack {
                session,
                counter,
                seq,
                relay_time,
                ..
            } => self.on_ack(now, session, counter, seq, relay_time),
            RelayFrame::Ephemeral { envelope } => match self.opener.open(&envelope) {
                Ok(opened) => self.event(ClientEvent::Ephemeral { body: opened.body }),
                Err(err) => self.warn(&err),
            },
            RelayFrame::Presence { count } => self.event(ClientEvent::Presence(count)),
            RelayFrame::Notify { json } => self.event(ClientEvent::Notify(json)),
            RelayFrame::Error { code, message, .. } => self.on_relay_error(code, message),
            RelayFrame::SnapshotStored { seq } => self.snapshot_seq = self.snapshot_seq.max(seq),
        }
        self.rearm(now);
    }

    /// The timer armed by [`Output::WakeAt`] fired (early or late calls are harmless).
    pub fn handle_timer(&mut self, now: Millis) {
        self.armed = None;
        match self.conn {
            Conn::Connecting { deadline } if now >= deadline => {
                self.outputs.push_back(Output::Close {
                    code: wire::CLOSE_HEARTBEAT_TIMEOUT,
                });
                self.schedule_reconnect(now);
            }
            Conn::Open {
                ping_sent: Some(sent),
                ..
            } if now.since(sent) >= self.config.heartbeat_timeout_ms => {
                self.outputs.push_back(Output::Close {
                    code: wire::CLOSE_HEARTBEAT_TIMEOUT,
                });
                self.schedule_reconnect(now);
            }
            Conn::Open {
                ping_sent: None,
                last_rx,
                live_since,
            } if now.since(last_rx) >= self.config.heartbeat_interval_ms => {
                self.conn = Conn::Open {
                    ping_sent: Some(now),
                    last_rx,
                    live_since,
                };
                self.outputs.push_back(Output::SendPing);
            }
            Conn::Waiting { until } if now >= until => self.connect(now),
            _ => {}
        }
        self.maybe_reset_backoff(now);
        self.rearm(now);
    }

    /// The browser says the network is back: retry at once instead of waiting.
    pub fn handle_online(&mut self, now: Millis) {
        if matches!(self.conn, Conn::Waiting { .. } | Conn::Offline) {
            self.connect(now);
        }
    }

    /// The browser says the network is gone: stop retrying until it is back.
    pub fn handle_offline(&mut self, _now: Millis) {
        if matches!(self.conn, Conn::Waiting { .. }) {
            self.conn = Conn::Offline;
            self.armed = None;
            self.set_status(Status::Offline);
        }
    }

    /// The application changed something: apply it at once, seal it, keep it in the outbox
    /// until the relay acknowledges it, and send it when live. Returns what changed.
    ///
    /// # Errors
    /// - [`Error::InvalidOperation`] when `op` is malformed (nothing changes),
    /// - [`Error::BodyTooLarge`] when it is too big to seal (nothing changes),
    /// - [`Error::OutboxFull`] when too many changes await the relay (nothing changes),
    /// - [`Error::SessionExhausted`] after 2^32 − 1 seals in this session.
    pub fn handle_local_op(
        &mut self,
        now: Millis,
        wall: WallMillis,
        op: Op,
    ) -> Result<Vec<Change>> {
        if !self.outbox.has_room() {
            return Err(Error::OutboxFull);
        }
        op.validate()?;
        let hlc = self.clock.tick(wall);
        let body = op.to_json();
        let counter = self.sealer.next_counter();
        let envelope = self.seal(EnvelopeKind::Event, hlc, &body)?;
        let changes = self.replica.apply(&StampedOp { hlc, op }, true);
        self.outbox
            .push(self.sealer.session(), counter, hlc, envelope);
        self.outputs.push_back(Output::OutboxChanged);
        self.flush_outbox();
        self.rearm(now);
        Ok(changes)
    }

    /// Sends an ephemeral payload (cursor, typing) to the others: sealed, never stored.
    /// Dropped silently when not live (ephemeral by definition).
    ///
    /// # Errors
    /// [`Error::BodyTooLarge`], [`Error::SessionExhausted`].
    pub fn handle_ephemeral(&mut self, wall: WallMillis, body: &[u8]) -> Result<()> {
        let hlc = self.clock.tick(wall);
        let envelope = self.seal(EnvelopeKind::Ephemeral, hlc, body)?;
        if self.is_live() {
            let frame = ClientFrame::Ephemeral { envelope };
            self.send(&frame);
        }
        Ok(())
    }

    /// The application leaves the room: close the socket and stop for good. The outbox is
    /// kept (persist it) so unsent changes go out on the next join.
    pub fn handle_leave(&mut self, _now: Millis) {
        self.stop(Status::Closed {
            code: String::from("LEFT"),
        });
    }

    fn is_live(&self) -> bool {
        matches!(
            self.conn,
            Conn::Open {
                live_since: Some(_),
                ..
            }
        )
    }

    fn seal(&mut self, kind: EnvelopeKind, hlc: Hlc, body: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; 12];
        self.entropy.fill(&mut nonce);
        self.sealer.seal(kind, self.channel, hlc, body, nonce)
    }

    fn connect(&mut self, now: Millis) {
        let attempt = self.backoff.attempt();
        self.conn = Conn::Connecting {
            deadline: now.plus(self.config.connect_timeout_ms),
        };
        self.outputs.push_back(Output::Connect);
        self.set_status(Status::Connecting { attempt });
        self.rearm(now);
    }

    fn schedule_reconnect(&mut self, now: Millis) {
        self.maybe_reset_backoff(now);
        self.outbox.mark_all_unsent();
        let attempt = self.backoff.attempt();
        let delay = self.backoff.next_delay_ms(self.entropy.as_mut());
        let until = now.plus(delay);
        self.conn = Conn::Waiting { until };
        self.set_status(Status::Reconnecting {
            in_ms: delay,
            attempt: attempt + 1,
        });
        self.rearm(now);
    }

    /// A connection that has been live for `healthy_after_ms` resets the backoff.
    fn maybe_reset_backoff(&mut self, now: Millis) {
        if let Conn::Open {
            live_since: Some(since),
            ..
        } = self.conn
        {
            if now.since(since) >= self.config.healthy_after_ms {
                self.backoff.reset();
            }
        }
    }

    fn stop(&mut self, status: Status) {
        if matches!(self.conn, Conn::Open { .. } | Conn::Connecting { .. }) {
            self.outputs.push_back(Output::Close {
                code: wire::CLOSE_NORMAL,
            });
        }
        self.conn = Conn::Stopped;
        self.armed = None;
        self.outbox.mark_all_unsent();
        self.set_status(status);
    }

    fn saw_traffic(&mut self, now: Millis) {
        if let Conn::Open { live_since, .. } = self.conn {
            self.conn = Conn::Open {
                live_since,
                last_rx: now,
                ping_sent: None,
            };
        }
    }

    fn on_caught_up(&mut self, now: Millis, head_seq: u64) {
        self.sync_requested = false;
        if self.last_seq < head_seq {
            // Something in the catch-up was skipped (it arrived out of order): ask again.
            self.sync_requested = true;
            let sync = ClientFrame::Sync {
                after_seq: self.last_seq,
            };
            self.send(&sync);
        }
        if let Conn::Open {
            live_since: None,
            last_rx,
            ping_sent,
        } = self.conn
        {
            self.conn = Conn::Open {
                live_since: Some(now),
                last_rx,
                ping_sent,
            };
            self.set_status(Status::Live);
        }
        self.flush_outbox();
    }

    /// Records `seq` as seen. Returns `false` for a sequence already seen (a duplicate).
    ///
    /// Events are merged as they come (merging is order-independent); `last_seq` is the end
    /// of the contiguous prefix, so a reconnect or `SYNC` asks for exactly what is missing.
    /// A hole behind an accepted sequence triggers one `SYNC`.
    fn accept_seq(&mut self, seq: u64) -> bool {
        if seq <= self.last_seq || self.seen_above.contains(&seq) {
            return false;
        }
        if seq == self.last_seq + 1 {
            self.last_seq = seq;
            while self.seen_above.remove(&(self.last_seq + 1)) {
                self.last_seq += 1;
            }
        } else {
            self.seen_above.insert(seq);
            if !self.sync_requested {
                self.sync_requested = true;
                let sync = ClientFrame::Sync {
                    after_seq: self.last_seq,
                };
                self.send(&sync);
            }
        }
        true
    }

    /// Moves the contiguous prefix to `seq` (a snapshot covers everything up to it).
    fn skip_to(&mut self, seq: u64) {
        if seq > self.last_seq {
            self.last_seq = seq;
            self.seen_above = self.seen_above.split_off(&(seq + 1));
            while self.seen_above.remove(&(self.last_seq + 1)) {
                self.last_seq += 1;
            }
        }
    }

    fn on_event(
        &mut self,
        now: Millis,
        wall: WallMillis,
        seq: u64,
        relay_time: u64,
        envelope: &[u8],
    ) {
        if !self.accept_seq(seq) {
            return;
        }
        if EnvelopeHeader::parse(envelope).is_ok_and(|(h, _)| h.channel != self.channel) {
            // Another channel's event: it only keeps the sequence contiguous.
            return;
        }
        match self.open_event(envelope) {
            Ok((session, counter, hlc, op)) => {
                // Our own event coming back (catch-up after a reconnect) acknowledges it.
                if self.outbox.acknowledge(session, counter).is_some() {
                    self.outputs.push_back(Output::OutboxChanged);
                }
                if !self.replay.accept(session, counter) {
                    return self.event(ClientEvent::Warning {
                        code: String::from("REPLAY"),
                        message: String::from(
                            "dropped an event whose sender counter was already seen (replay)",
                        ),
                    });
                }
                self.clock.observe(hlc, wall);
                let stamped = StampedOp {
                    hlc: effective(hlc, Some(relay_time)),
                    op,
                };
                let from_self = hlc.device == self.config.device;
                let changes = self.replica.apply(&stamped, from_self);
                if !changes.is_empty() {
                    self.event(ClientEvent::Changes(changes));
                }
            }
            Err(err) => self.warn(&err),
        }
        self.rearm(now);
    }

    fn on_ack(&mut self, now: Millis, session: SessionId, counter: u64, seq: u64, relay_time: u64) {
        let entry = self.outbox.acknowledge(session, counter);
        if entry.is_some() {
            self.outputs.push_back(Output::OutboxChanged);
        }
        // Our own events are not echoed back live, so an ack also advances the sequence.
        let _ = self.accept_seq(seq);
        if let Some(entry) = entry {
            let _ = self.replay.accept(session, counter);
            if effective(entry.hlc, Some(relay_time)) != entry.hlc {
                // Our clock ran ahead of the relay by more than the skew bound: everyone else
                // merges this event with a clamped stamp. Rebuild from the relay so that this
                // replica merges it the same way.
                self.resync_from_scratch();
            }
        }
        self.flush_outbox();
        if self.last_seq == seq {
            self.maybe_snapshot(seq);
        }
        self.rearm(now);
    }

    /// Drops the local state and asks the relay for everything again; unacknowledged local
    /// changes are re-applied from the outbox.
    fn resync_from_scratch(&mut self) {
        self.replica = Replica::default();
        self.last_seq = 0;
        self.seen_above.clear();
        self.replay.clear();
        let pending: Vec<Vec<u8>> = self.outbox.envelopes();
        for envelope in pending {
            if let Ok((_, _, hlc, op)) = self.open_event(&envelope) {
                let _ = self.replica.apply(&StampedOp { hlc, op }, true);
            }
        }
        self.sync_requested = true;
        let sync = ClientFrame::Sync { after_seq: 0 };
        self.send(&sync);
    }

    fn on_snapshot(&mut self, seq: u64, envelope: &[u8]) {
        if seq <= self.last_seq {
            return;
        }
        let opened = match self.opener.open(envelope) {
            Ok(opened) if opened.header.kind == EnvelopeKind::Snapshot => opened,
            Ok(_) => return self.warn(&Error::WrongKind { found: 0 }),
            Err(err) => return self.warn(&err),
        };
        match Replica::from_snapshot(&opened.body) {
            Ok(snapshot) => {
                let changes = self.replica.merge_snapshot(snapshot);
                self.skip_to(seq);
                self.snapshot_seq = self.snapshot_seq.max(seq);
                if !changes.is_empty() {
                    self.event(ClientEvent::Changes(changes));
                }
            }
            Err(err) => self.warn(&err),
        }
    }

    fn on_relay_error(&mut self, code: RelayErrorCode, message: String) {
        match code {
            RelayErrorCode::WrongVerifier => self.stop(Status::WrongPassword),
            RelayErrorCode::Forbidden | RelayErrorCode::Banned => self.stop(Status::Forbidden),
            RelayErrorCode::UnsupportedVersion => self.stop(Status::Closed {
                code: String::from("WIRE_VERSION"),
            }),
            other => self.event(ClientEvent::Warning {
                code: String::from(other.name()),
                message,
            }),
        }
    }

    /// Opens an event envelope into its sender, counter, stamp and operation.
    fn open_event(&mut self, envelope: &[u8]) -> Result<(SessionId, u64, Hlc, Op)> {
        let opened = self.opener.open(envelope)?;
        if opened.header.kind != EnvelopeKind::Event {
            return Err(Error::WrongKind {
                found: opened.header.kind as u8,
            });
        }
        let op = Op::from_json(&opened.body)?;
        Ok((opened.header.session, opened.header.counter, opened.hlc, op))
    }

    /// Sends unsent outbox entries while live, within the in-flight window.
    fn flush_outbox(&mut self) {
        if !self.is_live() {
            return;
        }
        let room = MAX_IN_FLIGHT.saturating_sub(self.outbox.in_flight());
        for envelope in self.outbox.take_unsent(room) {
            let frame = ClientFrame::Publish { envelope };
            self.send(&frame);
        }
    }

    /// Uploads a snapshot when this replica's own event (acknowledged as `seq`) is at least
    /// `snapshot_every` past the last known snapshot, and nothing local is pending, so the
    /// snapshot holds exactly the stored history up to `last_seq`. Tying it to one's own
    /// acknowledged event means one member uploads per threshold, not every member.
    fn maybe_snapshot(&mut self, acked_seq: u64) {
        let due = acked_seq >= self.snapshot_seq + self.config.snapshot_every;
        if !due || !self.is_live() || !self.outbox.is_empty() || self.sync_requested {
            return;
        }
        let snapshot = self.replica.to_snapshot();
        let hlc = Hlc {
            device: self.config.device,
            ..Hlc::default()
        };
        match self.seal(EnvelopeKind::Snapshot, hlc, &snapshot) {
            Ok(envelope) => {
                let frame = ClientFrame::SnapshotPut {
                    upto_seq: self.last_seq,
                    envelope,
                };
                self.send(&frame);
                // SNAPSHOT_STORED confirms; if it never comes, history only stays longer.
                self.snapshot_seq = self.last_seq;
            }
            Err(err) => self.warn(&err),
        }
    }

    fn rearm(&mut self, now: Millis) {
        let next = match self.conn {
            Conn::Connecting { deadline } => Some(deadline),
            Conn::Open {
                ping_sent: Some(sent),
                ..
            } => Some(sent.plus(self.config.heartbeat_timeout_ms)),
            Conn::Open {
                last_rx,
                live_since,
                ..
            } => {
                let ping = last_rx.plus(self.config.heartbeat_interval_ms);
                match live_since {
                    Some(since) if self.backoff.attempt() > 0 => {
                        Some(ping.min(since.plus(self.config.healthy_after_ms)))
                    }
                    _ => Some(ping),
                }
            }
            Conn::Waiting { until } => Some(until),
            Conn::Idle | Conn::Offline | Conn::Stopped => None,
        };
        if let Some(at) = next {
            let at = at.max(now);
            // A later deadline needs no new timer: the armed one fires first and re-arms.
            if self.armed.is_none_or(|armed| at < armed) {
                self.armed = Some(at);
                self.outputs.push_back(Output::WakeAt(at));
            }
        }
    }

    /// Queues `frame`. Every frame the client builds is valid by construction; should one
    /// not encode, it is reported as a warning instead of being sent.
    fn send(&mut self, frame: &ClientFrame) {
        match frame.encode() {
            Ok(bytes) => self.outputs.push_back(Output::Send(bytes)),
            Err(err) => self.warn(&err),
        }
    }

    fn set_status(&mut self, status: Status) {
        if self.status != status {
            self.status = status.clone();
            self.event(ClientEvent::Status(status));
        }
    }

    fn event(&mut self, event: ClientEvent) {
        self.outputs.push_back(Output::Event(event));
    }

    fn warn(&mut self, err: &Error) {
        self.event(ClientEvent::Warning {
            code: String::from(err.code()),
            message: err.to_string(),
        });
    }
}
