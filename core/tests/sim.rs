//! Deterministic simulation: several clients and a simulated relay over a simulated network
//! that drops (breaking the connection, as on TCP), duplicates, delays and reorders frames, cuts connections (loudly and
//! silently), takes clients offline and restarts the relay (keeping its stored log), all on
//! a virtual clock driven by a seed. After the network heals, every replica must converge
//! and hold every local change any replica made.
//!
//! `SIM_SEEDS=N` runs N seeds (default 1,000); `SIM_SEED=S` replays one seed. A failure
//! prints its seed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use sealsync_core::client::{Client, ClientConfig, ClientEvent, Output, Status};
use sealsync_core::envelope::EnvelopeHeader;
use sealsync_core::kdf::{RoomKey, RoomKeys};
use sealsync_core::merge::{Op, Replica, StampedOp};
use sealsync_core::seal::Opener;
use sealsync_core::wire::{self, ClientFrame, RelayFrame, VerifierState};
use sealsync_core::{DeviceId, Entropy, Millis, RoomId, SessionId, WallMillis};
use serde_json::json;

/// splitmix64: a small seeded generator for the simulation's choices and the clients'
/// entropy (the simulation must be reproducible from its seed).
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

impl Entropy for Rng {
    fn fill(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

type ConnId = u64;

#[derive(Debug, Clone)]
enum Msg {
    /// Client `c`'s socket `conn` opened.
    Opened {
        client: usize,
        conn: ConnId,
    },
    /// Client `c`'s socket `conn` closed with `code`.
    Closed {
        client: usize,
        conn: ConnId,
        code: u16,
    },
    /// A frame for the relay on `conn`.
    ToRelay {
        conn: ConnId,
        frame: Vec<u8>,
    },
    /// A text frame for the relay on `conn` (heartbeat).
    PingToRelay {
        conn: ConnId,
    },
    /// A frame for client `c` on `conn`.
    ToClient {
        client: usize,
        conn: ConnId,
        frame: Vec<u8>,
    },
    /// The heartbeat answer.
    PongToClient {
        client: usize,
        conn: ConnId,
    },
    /// The client closed `conn`; the relay forgets it.
    RelaySeesClose {
        conn: ConnId,
    },
    /// Client `c`'s timer.
    Timer {
        client: usize,
        at: Millis,
    },
    /// The application on client `c` makes a change.
    LocalOp {
        client: usize,
    },
    /// The relay process restarts: every socket drops, the log stays.
    RelayRestart,
    /// Client `c`'s network goes down / comes back.
    NetDown {
        client: usize,
    },
    NetUp {
        client: usize,
    },
    /// A connection dies without either side being told (heartbeat must notice).
    SilentCut {
        client: usize,
    },
}

struct StoredEvent {
    seq: u64,
    relay_time: u64,
    session: SessionId,
    counter: u64,
    envelope: Vec<u8>,
}

/// The relay's rules, in memory: assigns sequences, dedupes, stores, acks, broadcasts,
/// catches up, keeps snapshots.
/// How often each fault and recovery path ran, summed over seeds: the test asserts that
/// every one of them was exercised, so a simulation that stopped injecting faults fails.
#[derive(Default, Debug, Clone, Copy)]
struct Stats {
    snapshots_stored: u64,
    snapshots_sent: u64,
    syncs: u64,
    duplicate_acks: u64,
    heartbeat_timeouts: u64,
    relay_restarts: u64,
    dropped_frames: u64,
}

#[derive(Default)]
struct SimRelay {
    stats: Stats,
    verifier: Option<[u8; 32]>,
    events: Vec<StoredEvent>,
    snapshot: Option<(u64, Vec<u8>)>,
    next_seq: u64,
    /// Open connections: conn → (client, joined).
    conns: BTreeMap<ConnId, (usize, bool)>,
}

impl SimRelay {
    fn head(&self) -> u64 {
        self.next_seq
    }

    fn catch_up(&mut self, after_seq: u64, out: &mut Vec<(ConnId, Vec<u8>)>, conn: ConnId) {
        let mut from = after_seq;
        if let Some((snap_seq, env)) = &self.snapshot {
            if after_seq < *snap_seq {
                self.stats.snapshots_sent += 1;
                out.push((
                    conn,
                    RelayFrame::Snapshot {
                        seq: *snap_seq,
                        envelope: env.clone(),
                    }
                    .encode()
                    .unwrap(),
                ));
                from = *snap_seq;
            }
        }
        for e in self.events.iter().filter(|e| e.seq > from) {
            out.push((conn, wire::encode_event(e.seq, e.relay_time, &e.envelope)));
        }
        out.push((
            conn,
            RelayFrame::CaughtUp {
                head_seq: self.head(),
            }
            .encode()
            .unwrap(),
        ));
    }

    /// Handles one frame; returns frames to deliver `(conn, bytes)`.
    fn handle(&mut self, conn: ConnId, now: u64, frame: &[u8]) -> Vec<(ConnId, Vec<u8>)> {
        let mut out = Vec::new();
        let Some(&(client, joined)) = self.conns.get(&conn) else {
            return out;
        };
        let Ok(frame) = ClientFrame::decode(frame) else {
            return out;
        };
        match frame {
            ClientFrame::Hello {
                after_seq,
                verifier,
                ..
            } => {
                let state = match self.verifier {
                    None => {
                        self.verifier = Some(verifier);
                        VerifierState::Created
                    }
                    Some(v) if v == verifier => VerifierState::Matched,
                    Some(_) => panic!("the simulation uses one password"),
                };
                self.conns.insert(conn, (client, true));
                let presence = u32::try_from(self.conns.values().filter(|c| c.1).count()).unwrap();
                out.push((
                    conn,
                    RelayFrame::Welcome {
                        relay_time: now,
                        head_seq: self.head(),
                        snapshot_seq: self.snapshot.as_ref().map_or(0, |s| s.0),
                        presence,
                        verifier_state: state,
                    }
                    .encode()
                    .unwrap(),
                ));
                self.catch_up(after_seq, &mut out, conn);
            }
            _ if !joined => {}
            ClientFrame::Publish { envelope } => {
                let (header, _) = EnvelopeHeader::parse(&envelope).unwrap();
                if let Some(e) = self
                    .events
                    .iter()
                    .find(|e| e.session == header.session && e.counter == header.counter)
                {
                    self.stats.duplicate_acks += 1;
                    let ack = RelayFrame::Ack {
                        session: header.session,
                        counter: header.counter,
                        seq: e.seq,
                        relay_time: e.relay_time,
                        duplicate: true,
                    };
                    out.push((conn, ack.encode().unwrap()));
                    return out;
                }
                self.next_seq += 1;
                let seq = self.next_seq;
                let ack = RelayFrame::Ack {
                    session: header.session,
                    counter: header.counter,
                    seq,
                    relay_time: now,
                    duplicate: false,
                };
                out.push((conn, ack.encode().unwrap()));
                let event = wire::encode_event(seq, now, &envelope);
                for (&other, &(_, other_joined)) in &self.conns {
                    if other != conn && other_joined {
                        out.push((other, event.clone()));
                    }
                }
                self.events.push(StoredEvent {
                    seq,
                    relay_time: now,
                    session: header.session,
                    counter: header.counter,
                    envelope,
                });
            }
            ClientFrame::Sync { after_seq } => {
                self.stats.syncs += 1;
                self.catch_up(after_seq, &mut out, conn);
            }
            ClientFrame::SnapshotPut { upto_seq, envelope } => {
                if upto_seq <= self.head() && self.snapshot.as_ref().is_none_or(|s| s.0 < upto_seq)
                {
                    self.stats.snapshots_stored += 1;
                    self.snapshot = Some((upto_seq, envelope));
                    self.events.retain(|e| e.seq > upto_seq);
                    out.push((
                        conn,
                        RelayFrame::SnapshotStored { seq: upto_seq }
                            .encode()
                            .unwrap(),
                    ));
                }
            }
            ClientFrame::Ephemeral { envelope } => {
                let frame = RelayFrame::Ephemeral { envelope }.encode().unwrap();
                for (&other, &(_, other_joined)) in &self.conns {
                    if other != conn && other_joined {
                        out.push((other, frame.clone()));
                    }
                }
            }
        }
        out
    }
}

struct SimClient {
    client: Client,
    conn: Option<ConnId>,
    net_up: bool,
    /// Every change this client's application made, as sealed (for the "nothing lost" check).
    made: Vec<StampedOp>,
}

struct Sim {
    rng: Rng,
    now: u64,
    queue: BinaryHeap<Reverse<(u64, u64, usize)>>,
    msgs: Vec<Option<Msg>>,
    relay: SimRelay,
    clients: Vec<SimClient>,
    next_conn: ConnId,
    faults: bool,
    keys_for_check: RoomKeys,
}

const ROOM: &str = "sim-room";
/// The virtual clock's origin as wall-clock time (the relay's clock is exact).
const EPOCH_MS: u64 = 1_700_000_000_000;
const FAULT_PHASE_MS: u64 = 60_000;
const END_MS: u64 = 240_000;

fn keys(secret: &str) -> RoomKeys {
    RoomKeys::derive(
        &RoomKey::from_secret(secret).unwrap(),
        RoomId::new(ROOM).unwrap(),
    )
}

impl Sim {
    fn new(seed: u64, n_clients: usize) -> Self {
        let mut rng = Rng(seed);
        let secret = RoomKey::generate_secret(&mut rng);
        let mut clients = Vec::new();
        for i in 0..n_clients {
            let mut device = [0u8; 16];
            let mut session = [0u8; 16];
            rng.fill(&mut device);
            rng.fill(&mut session);
            device[0] = u8::try_from(i).unwrap();
            let mut config = ClientConfig::new(
                RoomId::new(ROOM).unwrap(),
                DeviceId(device),
                SessionId(session),
            );
            config.snapshot_every = 15;
            let entropy = Rng(rng.next());
            clients.push(SimClient {
                client: Client::new(config, keys(&secret), Box::new(entropy)),
                conn: None,
                net_up: true,
                made: Vec::new(),
            });
        }
        let mut sim = Self {
            rng,
            now: 0,
            queue: BinaryHeap::new(),
            msgs: Vec::new(),
            relay: SimRelay::default(),
            clients,
            next_conn: 1,
            faults: true,
            keys_for_check: keys(&secret),
        };
        for c in 0..n_clients {
            let start = sim.rng.below(5_000);
            sim.at(
                start,
                Msg::Timer {
                    client: c,
                    at: Millis(u64::MAX),
                },
            );
            for _ in 0..(5 + sim.rng.below(15)) {
                let t = sim.rng.below(FAULT_PHASE_MS + 20_000);
                sim.at(t, Msg::LocalOp { client: c });
            }
            if sim.rng.chance(50) {
                let down = sim.rng.below(FAULT_PHASE_MS);
                sim.at(down, Msg::NetDown { client: c });
                let up = down + 1_000 + sim.rng.below(20_000);
                sim.at(up, Msg::NetUp { client: c });
            }
            if sim.rng.chance(40) {
                let t = sim.rng.below(FAULT_PHASE_MS);
                sim.at(t, Msg::SilentCut { client: c });
            }
        }
        for _ in 0..sim.rng.below(3) {
            let t = sim.rng.below(FAULT_PHASE_MS);
            sim.at(t, Msg::RelayRestart);
        }
        sim
    }

    fn at(&mut self, t: u64, msg: Msg) {
        let id = self.msgs.len();
        self.msgs.push(Some(msg));
        self.queue.push(Reverse((t, id as u64, id)));
    }

    fn latency(&mut self) -> u64 {
        5 + self.rng.below(40)
    }

    fn wall(&self, client: usize) -> WallMillis {
        // Clocks within a few seconds of each other (skew is tested in hlc's unit tests).
        WallMillis(EPOCH_MS + self.now + (client as u64) * 1_500)
    }

    /// The client hears, after the network's latency, that `conn` broke.
    fn close_later(&mut self, client: usize, conn: ConnId) {
        let d = self.latency();
        self.at(
            self.now + d,
            Msg::Closed {
                client,
                conn,
                code: 1006,
            },
        );
    }

    /// Schedules a relay → client frame, with faults during the fault phase.
    fn send_to_client(&mut self, conn: ConnId, frame: Vec<u8>) {
        let Some(client) = self.clients.iter().position(|c| c.conn == Some(conn)) else {
            return;
        };
        let mut delay = self.latency();
        if self.faults && self.now < FAULT_PHASE_MS {
            if self.rng.chance(2) {
                // A WebSocket runs over TCP: a frame is never lost on its own, so a lost
                // frame means the connection broke. Either side may or may not be told.
                self.relay.conns.remove(&conn);
                self.relay.stats.dropped_frames += 1;
                if self.rng.chance(50) {
                    self.close_later(client, conn);
                } else {
                    self.clients[client].conn = Some(self.next_conn + 1_000_000);
                }
                return;
            }
            if self.rng.chance(3) {
                let d = self.latency();
                self.at(
                    self.now + d,
                    Msg::ToClient {
                        client,
                        conn,
                        frame: frame.clone(),
                    },
                );
            }
            if self.rng.chance(3) {
                delay += 200; // reordered behind later frames
            }
        }
        self.at(
            self.now + delay,
            Msg::ToClient {
                client,
                conn,
                frame,
            },
        );
    }

    fn drain(&mut self, c: usize) {
        while let Some(out) = self.clients[c].client.poll() {
            match out {
                Output::Connect => {
                    let conn = self.next_conn;
                    self.next_conn += 1;
                    self.clients[c].conn = Some(conn);
                    let d = self.latency();
                    if self.clients[c].net_up {
                        self.relay.conns.insert(conn, (c, false));
                        self.at(self.now + d, Msg::Opened { client: c, conn });
                    } else {
                        self.at(
                            self.now + d,
                            Msg::Closed {
                                client: c,
                                conn,
                                code: 1006,
                            },
                        );
                    }
                }
                Output::Send(frame) => {
                    if let Some(conn) = self.clients[c].conn {
                        let d = self.latency();
                        self.at(self.now + d, Msg::ToRelay { conn, frame });
                    }
                }
                Output::SendPing => {
                    if let Some(conn) = self.clients[c].conn {
                        let d = self.latency();
                        self.at(self.now + d, Msg::PingToRelay { conn });
                    }
                }
                Output::Close { code } => {
                    if code == wire::CLOSE_HEARTBEAT_TIMEOUT {
                        self.relay.stats.heartbeat_timeouts += 1;
                    }
                    if let Some(conn) = self.clients[c].conn.take() {
                        let d = self.latency();
                        self.at(self.now + d, Msg::RelaySeesClose { conn });
                    }
                }
                Output::WakeAt(t) => self.at(t.0, Msg::Timer { client: c, at: t }),
                Output::Event(ClientEvent::Warning { code, .. }) => {
                    // Drops and duplicates legitimately produce no warnings other than these.
                    assert!(
                        ["REPLAY"].contains(&code.as_str()),
                        "unexpected warning {code}"
                    );
                }
                Output::Event(_) | Output::OutboxChanged => {}
            }
        }
    }

    fn random_op(&mut self) -> Op {
        let id = format!("t{}", self.rng.below(6));
        let title = format!("title-{}", self.rng.below(1_000));
        let value = match self.rng.below(6) {
            0 | 1 => json!({"type": "created", "collection": "tasks", "id": id,
                            "fields": {"title": title, "done": false}}),
            2 => json!({"type": "updated", "collection": "tasks", "id": id,
                        "fields": {"done": self.rng.chance(50), "title": title}}),
            3 => json!({"type": "deleted", "collection": "tasks", "id": id}),
            4 => json!({"type": "reordered", "collection": "tasks",
                        "items": [{"id": id, "sortOrder": format!("a{}", self.rng.below(50))}]}),
            _ => json!({"type": "claimed", "collection": "tasks", "id": id,
                        "claimedBy": format!("u{}", self.rng.below(3)),
                        "claimedByName": "N", "claimedByAvatar": null}),
        };
        Op::from_json(value.to_string().as_bytes()).unwrap()
    }

    fn step(&mut self) -> bool {
        let Some(Reverse((t, _, id))) = self.queue.pop() else {
            return false;
        };
        if t > END_MS {
            return false;
        }
        self.now = t;
        if self.now >= FAULT_PHASE_MS && self.faults {
            self.faults = false;
        }
        let Some(msg) = self.msgs[id].take() else {
            return true;
        };
        let now = Millis(self.now);
        if std::env::var("SIM_TRACE").is_ok() {
            let short = match &msg {
                Msg::ToClient {
                    client,
                    conn,
                    frame,
                } => format!(
                    "ToClient c{client} conn{conn} {:?}",
                    RelayFrame::decode(frame).map(|f| match f {
                        RelayFrame::Event { seq, .. } => format!("Event {seq}"),
                        RelayFrame::Ack {
                            seq,
                            counter,
                            duplicate,
                            ..
                        } => format!("Ack seq{seq} ctr{counter} dup{duplicate}"),
                        other => format!("{other:?}").chars().take(60).collect(),
                    })
                ),
                Msg::ToRelay { conn, frame } => format!(
                    "ToRelay conn{conn} {}",
                    ClientFrame::decode(frame)
                        .map(|f| format!("{f:?}").chars().take(50).collect::<String>())
                        .unwrap_or_default()
                ),
                other => format!("{other:?}").chars().take(80).collect(),
            };
            let st: Vec<String> = self
                .clients
                .iter()
                .map(|c| {
                    format!(
                        "{:?}/{}/{}",
                        c.client.status(),
                        c.client.last_seq(),
                        c.client.outbox_len()
                    )
                })
                .collect();
            println!("{t:>7} {short}   {st:?}");
        }
        match msg {
            Msg::Opened { client, conn } => {
                if self.clients[client].conn == Some(conn) {
                    self.clients[client].client.handle_socket_opened(now);
                    self.drain(client);
                }
            }
            Msg::Closed { client, conn, code } => {
                if self.clients[client].conn == Some(conn) {
                    self.clients[client].conn = None;
                    self.clients[client].client.handle_socket_closed(now, code);
                    self.drain(client);
                }
            }
            Msg::ToRelay { conn, frame } => {
                let t = EPOCH_MS + self.now;
                for (to, frame) in self.relay.handle(conn, t, &frame) {
                    self.send_to_client(to, frame);
                }
            }
            Msg::PingToRelay { conn } => {
                if let Some(&(client, _)) = self.relay.conns.get(&conn) {
                    let d = self.latency();
                    self.at(self.now + d, Msg::PongToClient { client, conn });
                }
            }
            Msg::ToClient {
                client,
                conn,
                frame,
            } => {
                if self.clients[client].conn == Some(conn) {
                    let wall = self.wall(client);
                    self.clients[client].client.handle_frame(now, wall, &frame);
                    self.drain(client);
                }
            }
            Msg::PongToClient { client, conn } => {
                if self.clients[client].conn == Some(conn) {
                    self.clients[client].client.handle_text(now, "pong");
                    self.drain(client);
                }
            }
            Msg::RelaySeesClose { conn } => {
                self.relay.conns.remove(&conn);
            }
            Msg::Timer { client, at } => {
                if at == Millis(u64::MAX) {
                    self.clients[client].client.handle_start(now);
                } else {
                    self.clients[client].client.handle_timer(now);
                }
                self.drain(client);
            }
            Msg::LocalOp { client } => {
                let op = self.random_op();
                let wall = self.wall(client);
                self.clients[client]
                    .client
                    .handle_local_op(now, wall, op)
                    .unwrap();
                if std::env::var("SIM_TRACE").is_ok() {
                    println!(
                        "        op by c{client}: {}",
                        String::from_utf8_lossy(
                            &Opener::new(&self.keys_for_check)
                                .open(
                                    &self.clients[client]
                                        .client
                                        .outbox_envelopes()
                                        .pop()
                                        .unwrap()
                                )
                                .unwrap()
                                .body
                        )
                    );
                }
                // Record what was sealed, exactly as the other replicas will see it.
                let envelope = self.clients[client]
                    .client
                    .outbox_envelopes()
                    .pop()
                    .unwrap();
                let opened = Opener::new(&self.keys_for_check).open(&envelope).unwrap();
                self.clients[client].made.push(StampedOp {
                    hlc: opened.hlc,
                    op: Op::from_json(&opened.body).unwrap(),
                });
                self.drain(client);
            }
            Msg::RelayRestart => {
                self.relay.stats.relay_restarts += 1;
                let conns: Vec<(ConnId, usize)> = self
                    .relay
                    .conns
                    .iter()
                    .map(|(&k, &(c, _))| (k, c))
                    .collect();
                self.relay.conns.clear();
                for (conn, client) in conns {
                    self.close_later(client, conn);
                }
            }
            Msg::NetDown { client } => {
                self.clients[client].net_up = false;
                if let Some(conn) = self.clients[client].conn {
                    self.relay.conns.remove(&conn);
                    self.at(
                        self.now + 1,
                        Msg::Closed {
                            client,
                            conn,
                            code: 1006,
                        },
                    );
                }
                self.clients[client].client.handle_offline(now);
                self.drain(client);
            }
            Msg::NetUp { client } => {
                self.clients[client].net_up = true;
                self.clients[client].client.handle_online(now);
                self.drain(client);
            }
            Msg::SilentCut { client } => {
                // Both ends stop hearing each other; nobody is told.
                if let Some(conn) = self.clients[client].conn {
                    self.relay.conns.remove(&conn);
                    let dead = self.next_conn + 1_000_000;
                    self.clients[client].conn = Some(dead);
                }
            }
        }
        true
    }
}

fn visible(replica: &Replica) -> serde_json::Value {
    serde_json::to_value(replica.get("tasks")).unwrap()
}

fn run_seed(seed: u64) -> Stats {
    let n_clients = 2 + usize::try_from(seed % 3).unwrap();
    let mut sim = Sim::new(seed, n_clients);
    while sim.step() {}

    let mut expected = Replica::default();
    for c in &sim.clients {
        for stamped in &c.made {
            expected.apply(stamped, false);
        }
    }
    let expected = visible(&expected);
    for (i, c) in sim.clients.iter().enumerate() {
        assert_eq!(
            c.client.status(),
            &Status::Live,
            "seed {seed}: client {i} not live"
        );
        assert_eq!(
            c.client.outbox_len(),
            0,
            "seed {seed}: client {i} has unsent changes"
        );
        assert_eq!(
            visible(c.client.replica()),
            expected,
            "seed {seed}: client {i} diverged (replay with SIM_SEED={seed})"
        );
    }
    sim.relay.stats
}

#[test]
fn replicas_converge_and_lose_nothing_under_faults() {
    if let Ok(seed) = std::env::var("SIM_SEED") {
        let stats = run_seed(seed.parse().expect("SIM_SEED is a number"));
        println!("{stats:?}");
        return;
    }
    let seeds: u64 = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000);
    let mut total = Stats::default();
    for seed in 0..seeds {
        match std::panic::catch_unwind(|| run_seed(seed)) {
            Ok(stats) => {
                total.snapshots_stored += stats.snapshots_stored;
                total.snapshots_sent += stats.snapshots_sent;
                total.syncs += stats.syncs;
                total.duplicate_acks += stats.duplicate_acks;
                total.heartbeat_timeouts += stats.heartbeat_timeouts;
                total.relay_restarts += stats.relay_restarts;
                total.dropped_frames += stats.dropped_frames;
            }
            Err(_) => panic!("simulation failed for seed {seed}; replay with SIM_SEED={seed}"),
        }
    }
    println!("{seeds} seeds converged: {total:?}");
    if seeds >= 100 {
        let Stats {
            snapshots_stored,
            snapshots_sent,
            syncs,
            duplicate_acks,
            heartbeat_timeouts,
            relay_restarts,
            dropped_frames,
        } = total;
        for (what, n) in [
            ("snapshots stored", snapshots_stored),
            ("snapshots sent to joiners", snapshots_sent),
            ("SYNC requests", syncs),
            ("duplicate publishes", duplicate_acks),
            ("heartbeat timeouts", heartbeat_timeouts),
            ("relay restarts", relay_restarts),
            ("dropped frames", dropped_frames),
        ] {
            assert!(n > 0, "the simulation never exercised {what}");
        }
    }
}
