//! The connection machine's rules, one at a time, with a scripted relay and fake time.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "test code: a failed unwrap is a failed test"
)]

use sealsync_core::backoff::Backoff;
use sealsync_core::client::{
    Client, ClientConfig, ClientEvent, Kept, Output, Status, ROOM_TAG, WARNING_CONNECTION_REFUSED,
};
use sealsync_core::envelope::EnvelopeHeader;
use sealsync_core::kdf::{RoomKey, RoomKeys};
use sealsync_core::limits::RelayLimits;
use sealsync_core::merge::Op;
use sealsync_core::roster::{MemberFrame, MEMBER_EXPIRES_AFTER_MS};
use sealsync_core::wire::{self, Access, ClientFrame, RelayErrorCode, RelayFrame, VerifierState};
use sealsync_core::{DeviceId, Entropy, Millis, RoomId, SessionId, WallMillis};
use serde_json::json;

struct Counter(u64);
impl Entropy for Counter {
    fn fill(&mut self, dest: &mut [u8]) {
        for b in dest {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *b = (self.0 >> 56) as u8;
        }
    }
}

const SECRET: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
const WALL: WallMillis = WallMillis(1_700_000_000_000);

fn keys() -> RoomKeys {
    RoomKeys::derive(
        &RoomKey::from_secret(SECRET).unwrap(),
        RoomId::new("room").unwrap(),
    )
}

/// A client that takes no part in who is online (its envelope counters are its changes'
/// only); `member_with` takes part.
fn client_with(session: u8) -> Client {
    let mut config = ClientConfig::new(
        RoomId::new("room").unwrap(),
        DeviceId([session; 16]),
        SessionId([session; 16]),
    );
    config.members = false;
    Client::new(config, keys(), Box::new(Counter(u64::from(session))))
}

/// A client that takes part in who is online (the default).
fn member_with(session: u8) -> Client {
    let config = ClientConfig::new(
        RoomId::new("room").unwrap(),
        DeviceId([session; 16]),
        SessionId([session; 16]),
    );
    Client::new(config, keys(), Box::new(Counter(u64::from(session))))
}

/// A client of the same room under another key (another password).
fn client_under_another_key(session: u8) -> Client {
    let other = RoomKeys::derive(
        &RoomKey::from_secret("HxwdHhsaGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA").unwrap(),
        RoomId::new("room").unwrap(),
    );
    let config = ClientConfig::new(
        RoomId::new("room").unwrap(),
        DeviceId([session; 16]),
        SessionId([session; 16]),
    );
    Client::new(config, other, Box::new(Counter(u64::from(session))))
}

fn client() -> Client {
    client_with(1)
}

/// The socket failed before it opened (1006) and the presence probe found no refusal.
fn failed_to_open(c: &mut Client, now: Millis) {
    c.handle_socket_closed(now, wire::CLOSE_ABNORMAL);
    assert!(drain(c).contains(&Output::Probe));
    c.handle_probe(now, None);
}

/// The relay's `WELCOME` at `welcomed`, then the end of an empty catch-up at `caught_up`:
/// the client goes live.
fn welcome_and_catch_up(c: &mut Client, welcomed: Millis, at: Millis) {
    c.handle_frame(welcomed, WALL, &welcome());
    caught_up(c, at, 0, 0);
}

/// The relay's `CAUGHT_UP` at `now`: the catch-up page ends at `head_seq`, with `token`.
fn caught_up(c: &mut Client, now: Millis, head_seq: u64, token: u64) {
    c.handle_frame(now, WALL, &frame(RelayFrame::CaughtUp { head_seq, token }));
}

/// Whether the client connects again a minute later, or when the browser is online again.
fn retries_later(c: &mut Client) -> bool {
    c.handle_timer(Millis(60_000));
    c.handle_online(Millis(60_001));
    drain(c).contains(&Output::Connect)
}

fn drain(c: &mut Client) -> Vec<Output> {
    std::iter::from_fn(|| c.poll()).collect()
}

/// The frames sent, but member frames (who is online: ephemeral envelopes on the room
/// tag, see `member_frames`).
fn sent(outs: &[Output]) -> Vec<ClientFrame> {
    all_sent(outs)
        .into_iter()
        .filter(|f| !is_member_frame(f))
        .collect()
}

fn all_sent(outs: &[Output]) -> Vec<ClientFrame> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Send(b) => Some(ClientFrame::decode(b).unwrap()),
            _ => None,
        })
        .collect()
}

fn is_member_frame(frame: &ClientFrame) -> bool {
    matches!(frame, ClientFrame::Ephemeral { envelope }
        if EnvelopeHeader::parse(envelope).unwrap().0.channel == ROOM_TAG)
}

fn statuses(outs: &[Output]) -> Vec<Status> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Event(ClientEvent::Status(s)) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

fn frame(f: RelayFrame) -> Vec<u8> {
    f.encode().unwrap()
}

/// An `ERROR` frame.
fn error_frame(code: RelayErrorCode, fatal: bool, message: &str) -> Vec<u8> {
    frame(RelayFrame::Error {
        code,
        fatal,
        message: message.into(),
    })
}

const CHALLENGE: [u8; 32] = [0xC5; 32];

/// The socket opened and the relay sent its challenge: the client answers with HELLO.
fn opened(c: &mut Client, now: Millis) {
    c.handle_socket_opened(now);
    c.handle_frame(
        now,
        WALL,
        &frame(RelayFrame::Challenge {
            challenge: CHALLENGE,
        }),
    );
}

/// The limits of the shipped `wrangler.toml`.
const LIMITS: RelayLimits = RelayLimits {
    max_frame_bytes: 1_048_576,
    rate_burst: 120,
    rate_per_second: 60,
    max_history_events: 100_000,
    max_history_bytes: 268_435_456,
};

fn welcome() -> Vec<u8> {
    welcome_with(Access::Write, LIMITS)
}

fn welcome_with(access: Access, limits: RelayLimits) -> Vec<u8> {
    frame(RelayFrame::Welcome {
        relay_time: WALL.0,
        head_seq: 0,
        snapshot_seq: 0,
        presence: 1,
        verifier_state: VerifierState::Created,
        access,
        limits,
    })
}

/// Start, open, welcome, caught up: the client is live at `now = 70`.
fn live() -> Client {
    let c = live_with(1);
    assert_eq!(c.status(), &Status::Live);
    c
}

fn create(id: &str) -> Op {
    Op::from_json(
        json!({"type": "created", "collection": "tasks", "id": id, "fields": {"title": id}})
            .to_string()
            .as_bytes(),
    )
    .unwrap()
}

#[test]
fn hello_waits_for_the_challenge_and_proves_membership() {
    let mut c = client();
    c.handle_start(Millis(0));
    assert_eq!(drain(&mut c)[0], Output::Connect);
    c.handle_socket_opened(Millis(10));
    assert!(
        sent(&drain(&mut c)).is_empty(),
        "no HELLO before the challenge"
    );
    c.handle_frame(
        Millis(11),
        WALL,
        &frame(RelayFrame::Challenge {
            challenge: CHALLENGE,
        }),
    );
    let frames = sent(&drain(&mut c));
    let ClientFrame::Hello {
        after_seq,
        member_key,
        proof,
        channels,
    } = &frames[0]
    else {
        panic!("first frame is {:?}", frames[0]);
    };
    assert_eq!(*after_seq, 0);
    assert_eq!(*member_key, keys().member_key());
    let room = RoomId::new("room").unwrap();
    assert!(sealsync_core::member::verify_proof(
        &room, &CHALLENGE, member_key, proof
    ));
    assert!(!sealsync_core::member::verify_proof(
        &room, &[0; 32], member_key, proof
    ));
    assert_eq!(channels, &vec![keys().channel_tag("main")]);
    // A second challenge on the same socket gets no second HELLO.
    c.handle_frame(
        Millis(12),
        WALL,
        &frame(RelayFrame::Challenge { challenge: [1; 32] }),
    );
    assert!(sent(&drain(&mut c)).is_empty());
}

#[test]
fn local_changes_wait_in_the_outbox_until_acknowledged() {
    let mut c = client();
    c.handle_start(Millis(0));
    let changes = c.handle_local_op(Millis(1), WALL, create("a")).unwrap();
    assert_eq!(changes.len(), 1, "applies at once, even offline");
    assert_eq!(c.replica().get("tasks").len(), 1);
    assert_eq!(c.pending_changes(), 1);
    assert_eq!(c.outbox_len(), 0, "staged until the flush");
    c.handle_flush(Millis(1));
    assert_eq!(c.outbox_len(), 1);
    opened(&mut c, Millis(10));
    c.handle_frame(Millis(20), WALL, &welcome());
    assert!(
        !sent(&drain(&mut c))
            .iter()
            .any(|f| matches!(f, ClientFrame::Publish { .. })),
        "nothing is published before the catch-up ends"
    );
    caught_up(&mut c, Millis(30), 0, 0);
    let frames = sent(&drain(&mut c));
    assert!(matches!(frames[..], [ClientFrame::Publish { .. }]));
    // The connection drops before the ack: the change goes out again on the next socket.
    c.handle_socket_closed(Millis(40), 1006);
    assert_eq!(c.outbox_len(), 1);
    let outs = drain(&mut c);
    let wake = outs.iter().find_map(|o| match o {
        Output::WakeAt(t) => Some(*t),
        _ => None,
    });
    c.handle_timer(wake.unwrap());
    opened(&mut c, wake.unwrap().plus(5));
    welcome_and_catch_up(&mut c, wake.unwrap().plus(6), wake.unwrap().plus(7));
    let frames = sent(&drain(&mut c));
    assert!(matches!(
        frames[..],
        [ClientFrame::Hello { .. }, ClientFrame::Publish { .. }]
    ));
    c.handle_frame(
        wake.unwrap().plus(8),
        WALL,
        &frame(RelayFrame::Ack {
            session: SessionId([1; 16]),
            counter: 1,
            seq: 1,
            relay_time: WALL.0,
            duplicate: false,
        }),
    );
    let outs = drain(&mut c);
    assert!(outs.contains(&Output::OutboxChanged));
    assert_eq!(c.outbox_len(), 0);
    assert_eq!(c.last_seq(), 1);
}

#[test]
fn a_bad_local_change_is_refused_and_changes_nothing() {
    let mut c = live();
    let big = "x".repeat(sealsync_core::MAX_BODY_LEN + 1);
    let op = Op::from_json(
        json!({"type": "created", "collection": "tasks", "id": "a", "fields": {"t": big}})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let err = c.handle_local_op(Millis(200), WALL, op).unwrap_err();
    assert_eq!(err.code(), "BODY_TOO_LARGE");
    assert!(c.replica().get("tasks").is_empty());
    assert_eq!(c.outbox_len(), 0);
    assert!(sent(&drain(&mut c)).is_empty());
}

#[test]
fn the_outbox_survives_a_reload_as_ciphertext() {
    let mut before = client();
    // Two tasks: two envelopes.
    before
        .handle_local_op(Millis(1), WALL, create("a"))
        .unwrap();
    before.handle_flush(Millis(1));
    before
        .handle_local_op(Millis(2), WALL, create("b"))
        .unwrap();
    before.handle_flush(Millis(2));
    let persisted = before.outbox_envelopes();
    assert!(
        !persisted
            .iter()
            .any(|e| e.windows(5).any(|w| w == b"title")),
        "the persisted outbox holds no plaintext"
    );

    // A new page load: new session, same device.
    let mut after = client_with(1);
    let mut garbage = persisted[0].clone();
    let last = garbage.len() - 1;
    garbage[last] ^= 1;
    let changes = after.restore_outbox(
        WALL,
        vec![persisted[0].clone(), garbage, persisted[1].clone()],
    );
    assert_eq!(changes.len(), 2);
    assert_eq!(after.replica().get("tasks").len(), 2);
    assert_eq!(after.outbox_len(), 2);
    let warnings: Vec<_> = drain(&mut after)
        .into_iter()
        .filter_map(|o| match o {
            Output::Event(ClientEvent::Warning { code, .. }) => Some(code),
            _ => None,
        })
        .collect();
    assert_eq!(
        warnings,
        ["DECRYPT_FAILED"],
        "the damaged entry is reported, the rest kept"
    );
}

#[test]
fn remote_events_apply_once_whatever_the_order_or_repetition() {
    let mut sender = live();
    sender
        .handle_local_op(Millis(200), WALL, create("a"))
        .unwrap();
    sender.handle_flush(Millis(200));
    let envelope = sender.outbox_envelopes().pop().unwrap();

    let mut c = live_with(2);
    let event = frame(RelayFrame::Event {
        seq: 1,
        relay_time: WALL.0,
        envelope,
    });
    c.handle_frame(Millis(300), WALL, &event);
    let first = drain(&mut c);
    assert!(first
        .iter()
        .any(|o| matches!(o, Output::Event(ClientEvent::Changes(ch)) if ch.len() == 1)));
    c.handle_frame(Millis(301), WALL, &event);
    let second = drain(&mut c);
    assert!(
        !second
            .iter()
            .any(|o| matches!(o, Output::Event(ClientEvent::Changes(_)))),
        "a duplicate changes nothing"
    );
    assert_eq!(c.replica().get("tasks").len(), 1);
}

fn live_with(session: u8) -> Client {
    let mut c = client_with(session);
    c.handle_start(Millis(0));
    opened(&mut c, Millis(50));
    welcome_and_catch_up(&mut c, Millis(60), Millis(70));
    drain(&mut c);
    c
}

#[test]
fn a_gap_in_sequences_asks_for_a_sync() {
    let mut sender = live();
    sender
        .handle_local_op(Millis(200), WALL, create("a"))
        .unwrap();
    sender.handle_flush(Millis(200));
    let envelope = sender.outbox_envelopes().pop().unwrap();
    let mut c = live_with(2);
    c.handle_frame(
        Millis(300),
        WALL,
        &frame(RelayFrame::Event {
            seq: 3,
            relay_time: WALL.0,
            envelope,
        }),
    );
    let frames = sent(&drain(&mut c));
    assert_eq!(
        frames,
        vec![ClientFrame::Sync {
            after_seq: 0,
            token: 0
        }]
    );
    assert_eq!(c.last_seq(), 0, "the cursor stays before the hole");
    assert_eq!(
        c.replica().get("tasks").len(),
        1,
        "the event itself still applies"
    );
}

#[test]
fn a_paged_catch_up_asks_for_each_next_page_with_its_token_and_is_live_only_at_the_end() {
    // Two events from another member: page one carries the first, page two the second.
    let mut sender = live();
    let mut envelopes = Vec::new();
    for id in ["a", "b"] {
        sender
            .handle_local_op(Millis(200), WALL, create(id))
            .unwrap();
        sender.handle_flush(Millis(200));
        envelopes.push(sender.outbox_envelopes().pop().unwrap());
    }
    let mut c = client_with(2);
    c.handle_start(Millis(0));
    opened(&mut c, Millis(50));
    c.handle_frame(Millis(60), WALL, &welcome());
    drain(&mut c);
    let event = |seq: u64, envelope: &Vec<u8>| {
        frame(RelayFrame::Event {
            seq,
            relay_time: WALL.0,
            envelope: envelope.clone(),
        })
    };
    c.handle_frame(Millis(61), WALL, &event(1, &envelopes[0]));
    caught_up(&mut c, Millis(62), 2, 0xAB);
    let outs = drain(&mut c);
    assert_eq!(
        sent(&outs),
        [ClientFrame::Sync {
            after_seq: 1,
            token: 0xAB
        }],
        "the next page, with the token of the page it read"
    );
    assert_ne!(c.status(), &Status::Live, "not live with half the room");
    c.handle_frame(Millis(63), WALL, &event(2, &envelopes[1]));
    caught_up(&mut c, Millis(64), 2, 0xCD);
    let outs = drain(&mut c);
    assert!(sent(&outs).is_empty(), "caught up: nothing more to ask");
    assert_eq!(c.status(), &Status::Live);
    assert_eq!(c.replica().get("tasks").len(), 2);
    assert!(events(&outs)
        .iter()
        .all(|e| !matches!(e, ClientEvent::Warning { .. })));
}

#[test]
fn garbage_from_the_relay_is_a_warning_not_a_crash() {
    let mut c = live();
    for bad in [&[][..], &[1, 0x81, 0][..], &[9, 9, 9][..]] {
        c.handle_frame(Millis(200), WALL, bad);
        let outs = drain(&mut c);
        assert!(
            outs.iter()
                .any(|o| matches!(o, Output::Event(ClientEvent::Warning { .. }))),
            "{bad:?}"
        );
    }
    assert_eq!(c.status(), &Status::Live);
}

#[test]
fn wrong_password_and_forbidden_are_terminal() {
    for (input, expected) in [
        (RelayErrorCode::WrongVerifier, Status::WrongPassword),
        (RelayErrorCode::Forbidden, Status::Forbidden),
        (RelayErrorCode::Banned, Status::Forbidden),
        (
            RelayErrorCode::UnsupportedVersion,
            Status::Closed {
                code: "WIRE_VERSION".into(),
            },
        ),
    ] {
        let mut c = client();
        c.handle_start(Millis(0));
        opened(&mut c, Millis(10));
        drain(&mut c);
        c.handle_frame(Millis(20), WALL, &error_frame(input, true, "no"));
        assert_eq!(c.status(), &expected);
        assert!(c.status().is_terminal());
        c.handle_socket_closed(Millis(30), 4001);
        assert!(!retries_later(&mut c), "no retry after {expected:?}");
    }
    // The close code alone is enough too.
    let mut c = client();
    c.handle_start(Millis(0));
    opened(&mut c, Millis(10));
    c.handle_socket_closed(Millis(20), wire::CLOSE_WRONG_VERIFIER);
    assert_eq!(c.status(), &Status::WrongPassword);
}

#[test]
fn reconnects_back_off_and_reset_only_after_a_healthy_connection() {
    let mut c = client();
    c.handle_start(Millis(0));
    let mut now = Millis(0);
    let mut delays = Vec::new();
    for _ in 0..8 {
        failed_to_open(&mut c, now);
        let outs = drain(&mut c);
        let Some(Status::Reconnecting { in_ms, .. }) = statuses(&outs).pop() else {
            panic!("no reconnecting status in {outs:?}");
        };
        delays.push(in_ms);
        now = now.plus(in_ms);
        c.handle_timer(now);
        assert!(drain(&mut c).contains(&Output::Connect));
    }
    for (attempt, delay) in delays.iter().enumerate() {
        let nominal = Backoff::nominal_ms(u32::try_from(attempt).unwrap());
        assert!(
            *delay >= nominal / 2 && *delay <= nominal,
            "attempt {attempt}: {delay}"
        );
    }
    // A connection that drops right after going live does not reset the schedule…
    opened(&mut c, now);
    welcome_and_catch_up(&mut c, now, now);
    c.handle_socket_closed(now.plus(1_000), 1006);
    let Some(Status::Reconnecting { in_ms, .. }) = statuses(&drain(&mut c)).pop() else {
        panic!()
    };
    assert!(in_ms >= 15_000, "still backing off: {in_ms}");
    // …one that stays healthy for 10 s does.
    now = now.plus(1_000 + in_ms);
    c.handle_timer(now);
    opened(&mut c, now);
    welcome_and_catch_up(&mut c, now, now);
    c.handle_timer(now.plus(10_000));
    c.handle_socket_closed(now.plus(10_001), 1006);
    let Some(Status::Reconnecting { in_ms, attempt }) = statuses(&drain(&mut c)).pop() else {
        panic!()
    };
    assert!(in_ms <= 500, "reset to the first delay: {in_ms}");
    assert_eq!(attempt, 1);
}

#[test]
fn a_socket_that_never_opens_times_out() {
    let mut c = client();
    c.handle_start(Millis(0));
    let outs = drain(&mut c);
    assert!(outs.contains(&Output::WakeAt(Millis(10_000))));
    c.handle_timer(Millis(10_000));
    let outs = drain(&mut c);
    assert!(outs.contains(&Output::Close {
        code: wire::CLOSE_HEARTBEAT_TIMEOUT
    }));
    assert!(matches!(statuses(&outs)[..], [Status::Reconnecting { .. }]));
}

#[test]
fn a_silent_dead_connection_is_found_by_the_heartbeat() {
    let mut c = live();
    c.handle_timer(Millis(70 + 15_000));
    assert!(drain(&mut c).contains(&Output::SendPing));
    // A pong keeps it alive.
    c.handle_text(Millis(70 + 15_100), "pong");
    c.handle_timer(Millis(70 + 25_000));
    assert_eq!(c.status(), &Status::Live);
    drain(&mut c);
    // No answer this time.
    c.handle_timer(Millis(70 + 15_100 + 15_000));
    assert!(drain(&mut c).contains(&Output::SendPing));
    c.handle_timer(Millis(70 + 15_100 + 25_000));
    let outs = drain(&mut c);
    assert!(outs.contains(&Output::Close {
        code: wire::CLOSE_HEARTBEAT_TIMEOUT
    }));
    assert!(matches!(c.status(), Status::Reconnecting { .. }));
}

#[test]
fn coming_back_online_retries_at_once() {
    let mut c = client();
    c.handle_start(Millis(0));
    failed_to_open(&mut c, Millis(10));
    c.handle_offline(Millis(20));
    assert_eq!(c.status(), &Status::Offline);
    drain(&mut c);
    c.handle_timer(Millis(100_000));
    assert!(
        !drain(&mut c).contains(&Output::Connect),
        "no retries while offline"
    );
    c.handle_online(Millis(100_001));
    assert!(drain(&mut c).contains(&Output::Connect));
}

#[test]
fn leaving_closes_and_stops() {
    let mut c = live();
    c.handle_leave(Millis(500));
    let outs = drain(&mut c);
    assert!(outs.contains(&Output::Close {
        code: wire::CLOSE_NORMAL
    }));
    assert_eq!(
        c.status(),
        &Status::Closed {
            code: "LEFT".into()
        }
    );
}

#[test]
fn every_channels_stored_events_are_merged() {
    // Stored changes belong to the whole room: an event sealed by a member on another
    // channel (or by an older build, with its channel's tag) is applied like any other.
    let mut c = live();
    let mut sealer = sealsync_core::SessionSealer::new(&keys(), SessionId([7; 16]));
    let body = br#"{"type":"created","collection":"tasks","id":"x","fields":{}}"#;
    let other = sealer
        .seal(
            sealsync_core::EnvelopeKind::Event,
            keys().channel_tag("cursors"),
            sealsync_core::Hlc::default(),
            body,
            [3; 12],
        )
        .unwrap();
    c.handle_frame(
        Millis(300),
        WALL,
        &frame(RelayFrame::Event {
            seq: 1,
            relay_time: WALL.0,
            envelope: other,
        }),
    );
    assert_eq!(c.last_seq(), 1);
    assert_eq!(c.replica().get("tasks").len(), 1);
    assert!(
        sent(&drain(&mut c)).is_empty(),
        "no SYNC: nothing is missing"
    );
}

/// Every `PUBLISH` among `outs`, opened by a second replica: the operations of each.
fn published_ops(outs: &[Output]) -> Vec<Vec<Op>> {
    let mut opener = sealsync_core::Opener::new(&keys());
    sent(outs)
        .into_iter()
        .filter_map(|f| match f {
            ClientFrame::Publish { envelope } => {
                let opened = opener.open(&envelope).unwrap();
                let ops = sealsync_core::merge::decode_event_body(&opened.body, opened.hlc)
                    .unwrap()
                    .into_iter()
                    .map(|s| s.op)
                    .collect();
                Some(ops)
            }
            _ => None,
        })
        .collect()
}

fn events(outs: &[Output]) -> Vec<ClientEvent> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

fn refused(counter: u64, code: RelayErrorCode, retry_after_ms: u32) -> Vec<u8> {
    frame(RelayFrame::Refused {
        session: SessionId([1; 16]),
        counter,
        code,
        retry_after_ms,
        message: "refused".into(),
    })
}

fn update(id: &str, title: &str) -> Op {
    Op::from_json(
        json!({"type": "updated", "collection": "tasks", "id": id, "fields": {"title": title}})
            .to_string()
            .as_bytes(),
    )
    .unwrap()
}

#[test]
fn one_tasks_changes_go_out_as_one_envelope() {
    let mut c = live();
    for i in 0..600 {
        c.handle_local_op(Millis(100), WALL, create(&format!("t{i}")))
            .unwrap();
    }
    for i in 0..600 {
        c.handle_local_op(Millis(100), WALL, update(&format!("t{i}"), "done"))
            .unwrap();
    }
    assert!(sent(&drain(&mut c)).is_empty(), "nothing before the flush");
    c.handle_flush(Millis(100));
    let published = published_ops(&drain(&mut c));
    assert_eq!(published.len(), 1, "1,200 changes, one frame");
    assert_eq!(published[0].len(), 1200);
    assert_eq!(c.pending_changes(), 1200);
}

#[test]
fn changes_past_the_frame_limit_are_split_and_each_envelope_fits() {
    let mut c = live();
    let big = "x".repeat(300_000);
    for i in 0..10 {
        let op = Op::from_json(
            json!({"type": "created", "collection": "tasks", "id": format!("t{i}"), "fields": {"t": big}})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        c.handle_local_op(Millis(100), WALL, op).unwrap();
    }
    c.handle_flush(Millis(100));
    let outs = drain(&mut c);
    let published = published_ops(&outs);
    assert_eq!(published.iter().map(Vec::len).sum::<usize>(), 10);
    assert!(
        published.len() >= 4,
        "three 300 kB changes fit one envelope at most"
    );
    for f in outs.iter().filter_map(|o| match o {
        Output::Send(b) => Some(b.len()),
        _ => None,
    }) {
        assert!(f <= LIMITS.max_frame_bytes as usize, "a frame of {f} bytes");
    }
}

#[test]
fn a_transaction_is_one_envelope_applied_at_once_elsewhere() {
    let mut a = live();
    a.handle_local_op(Millis(100), WALL, create("before"))
        .unwrap();
    a.begin_transaction();
    a.handle_local_op(Millis(100), WALL, create("x")).unwrap();
    a.begin_transaction(); // nested: joins the outer one
    a.handle_local_op(Millis(100), WALL, create("y")).unwrap();
    a.commit_transaction().unwrap();
    a.handle_local_op(Millis(100), WALL, update("x", "moved"))
        .unwrap();
    a.commit_transaction().unwrap();
    a.handle_flush(Millis(100));
    let outs = drain(&mut a);
    let envelopes: Vec<Vec<u8>> = sent(&outs)
        .into_iter()
        .filter_map(|f| match f {
            ClientFrame::Publish { envelope } => Some(envelope),
            _ => None,
        })
        .collect();
    assert_eq!(
        envelopes.len(),
        1,
        "one task: the change before and the transaction"
    );

    let mut b = live_with(2);
    b.handle_frame(
        Millis(200),
        WALL,
        &frame(RelayFrame::Event {
            seq: 1,
            relay_time: WALL.0,
            envelope: envelopes[0].clone(),
        }),
    );
    let changes: Vec<_> = events(&drain(&mut b))
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::Changes(ch) => Some(ch),
            _ => None,
        })
        .collect();
    assert_eq!(changes.len(), 1, "one event, every change in it");
    assert_eq!(b.replica().get("tasks").len(), 3);
    assert_eq!(b.replica().entity("tasks", "x").unwrap()["title"], "moved");
}

#[test]
fn an_aborted_or_oversized_transaction_is_rolled_back() {
    let mut c = live();
    c.handle_local_op(Millis(100), WALL, create("keep"))
        .unwrap();
    c.begin_transaction();
    c.handle_local_op(Millis(100), WALL, create("gone"))
        .unwrap();
    c.handle_local_op(Millis(100), WALL, update("keep", "changed"))
        .unwrap();
    assert_eq!(c.replica().get("tasks").len(), 2);
    c.abort_transaction();
    assert_eq!(c.replica().get("tasks").len(), 1);
    assert_eq!(
        c.replica().entity("tasks", "keep").unwrap()["title"],
        "keep"
    );
    let rollback: Vec<_> = events(&drain(&mut c))
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::Changes(ch) => Some(ch),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(rollback.len(), 2, "{rollback:?}");
    assert!(rollback.iter().all(|ch| !ch.from_self));

    let big = "x".repeat(400_000);
    c.begin_transaction();
    for i in 0..3 {
        let op = Op::from_json(
            json!({"type": "created", "collection": "tasks", "id": format!("b{i}"), "fields": {"t": big}})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        c.handle_local_op(Millis(100), WALL, op).unwrap();
    }
    let err = c.commit_transaction().unwrap_err();
    assert_eq!(err.code(), "BODY_TOO_LARGE");
    assert_eq!(c.replica().get("tasks").len(), 1);
    c.handle_flush(Millis(100));
    assert_eq!(published_ops(&drain(&mut c)), vec![vec![create("keep")]]);
}

#[test]
fn the_client_paces_itself_and_merges_what_waited() {
    let limits = RelayLimits {
        rate_burst: 8,
        rate_per_second: 10,
        ..LIMITS
    };
    let mut c = client();
    c.handle_start(Millis(0));
    opened(&mut c, Millis(50));
    c.handle_frame(Millis(60), WALL, &welcome_with(Access::Write, limits));
    caught_up(&mut c, Millis(70), 0, 0);
    drain(&mut c);
    // 30 separate tasks at the same instant: the pace (6 of a burst of 8, HELLO paid one)
    // lets 5 out, the rest wait and then go as one envelope.
    let mut published = Vec::new();
    let mut wake = None;
    for i in 0..30 {
        c.handle_local_op(Millis(100), WALL, create(&format!("t{i}")))
            .unwrap();
        c.handle_flush(Millis(100));
        let outs = drain(&mut c);
        published.extend(published_ops(&outs));
        wake = outs
            .iter()
            .rev()
            .find_map(|o| match o {
                Output::WakeAt(t) => Some(*t),
                _ => None,
            })
            .or(wake);
    }
    assert_eq!(published.len(), 5);
    let wake = wake.expect("a timer for the next token");
    assert!(wake > Millis(100) && wake <= Millis(300), "{wake:?}");
    c.handle_timer(wake);
    let later = published_ops(&drain(&mut c));
    assert_eq!(later.len(), 1, "what waited goes as one envelope");
    assert_eq!(later[0].len(), 25);
}

#[test]
fn a_change_refused_for_the_rate_waits_as_told_then_goes_again() {
    let mut c = live();
    c.handle_local_op(Millis(100), WALL, create("a")).unwrap();
    c.handle_flush(Millis(100));
    assert_eq!(published_ops(&drain(&mut c)).len(), 1);
    c.handle_frame(
        Millis(110),
        WALL,
        &refused(1, RelayErrorCode::RateLimited, 500),
    );
    let outs = drain(&mut c);
    assert!(published_ops(&outs).is_empty(), "not before the hint");
    assert_eq!(c.outbox_len(), 1, "kept");
    let wake = outs
        .iter()
        .filter_map(|o| match o {
            Output::WakeAt(t) => Some(*t),
            _ => None,
        })
        .min();
    assert_eq!(wake, Some(Millis(610)), "{outs:?}");
    c.handle_timer(Millis(610));
    assert_eq!(published_ops(&drain(&mut c)), vec![vec![create("a")]]);
}

#[test]
fn a_change_refused_for_good_is_rolled_back_and_reported_and_later_ones_go_out() {
    let mut c = live();
    c.handle_local_op(Millis(100), WALL, create("a")).unwrap();
    c.handle_flush(Millis(100));
    c.handle_local_op(Millis(101), WALL, create("b")).unwrap();
    c.handle_flush(Millis(101));
    assert_eq!(published_ops(&drain(&mut c)).len(), 2);
    c.handle_frame(Millis(110), WALL, &refused(1, RelayErrorCode::TooLarge, 0));
    let evs = events(&drain(&mut c));
    assert!(evs.iter().any(|e| matches!(e,
        ClientEvent::Changes(ch) if ch.len() == 1 && ch[0].id == "a"
            && ch[0].kind == sealsync_core::ChangeKind::Deleted)));
    assert!(evs.iter().any(|e| matches!(e,
        ClientEvent::Rejected { code, ops, .. } if code == "TOO_LARGE" && ops == &[create("a")])));
    assert_eq!(c.outbox_len(), 1);
    assert!(c.replica().entity("tasks", "a").is_none());
    assert!(c.replica().entity("tasks", "b").is_some());
    // The next change is not stuck behind the refused one.
    c.handle_local_op(Millis(120), WALL, create("c")).unwrap();
    c.handle_flush(Millis(120));
    assert_eq!(published_ops(&drain(&mut c)), vec![vec![create("c")]]);
}

#[test]
fn a_read_only_member_is_told_and_its_offline_changes_are_rolled_back() {
    let mut c = client();
    c.handle_start(Millis(0));
    // Two changes in two tasks; the first reached the relay on an earlier connection (its
    // ACK was lost), the second never did.
    c.handle_local_op(Millis(1), WALL, create("stored"))
        .unwrap();
    c.handle_flush(Millis(1));
    c.handle_local_op(Millis(2), WALL, create("offline"))
        .unwrap();
    c.handle_flush(Millis(2));
    let stored = c.outbox_envelopes().remove(0);
    opened(&mut c, Millis(50));
    c.handle_frame(Millis(60), WALL, &welcome_with(Access::ReadOnly, LIMITS));
    assert!(
        !events(&drain(&mut c))
            .iter()
            .any(|e| matches!(e, ClientEvent::Rejected { .. })),
        "nothing is rejected before the catch-up says what was stored"
    );
    c.handle_frame(
        Millis(61),
        WALL,
        &frame(RelayFrame::Event {
            seq: 1,
            relay_time: WALL.0,
            envelope: stored,
        }),
    );
    caught_up(&mut c, Millis(62), 1, 0);
    let evs = events(&drain(&mut c));
    let rejected: Vec<_> = evs
        .iter()
        .filter(|e| matches!(e, ClientEvent::Rejected { .. }))
        .collect();
    assert!(
        matches!(rejected[..], [ClientEvent::Rejected { code, ops, .. }]
        if code == "READ_ONLY" && ops == &[create("offline")]),
        "{rejected:?}"
    );
    let titles: Vec<String> = c
        .replica()
        .get("tasks")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        titles,
        ["stored"],
        "the stored change stays, the other is rolled back"
    );
    assert_eq!(c.replica(), c.confirmed());
    assert_eq!(c.outbox_len(), 0);
    let err = c
        .handle_local_op(Millis(70), WALL, create("now"))
        .unwrap_err();
    assert_eq!(err.code(), "READ_ONLY");
    // Given write access again, it may change the room.
    c.handle_frame(
        Millis(80),
        WALL,
        &frame(RelayFrame::Access {
            access: Access::Write,
        }),
    );
    assert!(c.handle_local_op(Millis(90), WALL, create("now")).is_ok());
}

#[test]
fn a_pending_guest_holds_its_changes_and_sends_them_once_admitted() {
    let mut c = live();
    c.handle_local_op(Millis(100), WALL, create("a")).unwrap();
    c.handle_flush(Millis(100));
    drain(&mut c);
    c.handle_frame(
        Millis(110),
        WALL,
        &refused(1, RelayErrorCode::GuestPending, 0),
    );
    c.handle_local_op(Millis(120), WALL, create("b")).unwrap();
    c.handle_flush(Millis(120));
    let outs = drain(&mut c);
    assert!(published_ops(&outs).is_empty(), "held");
    assert!(!events(&outs)
        .iter()
        .any(|e| matches!(e, ClientEvent::Rejected { .. })));
    assert_eq!(c.pending_changes(), 2);
    assert_eq!(c.replica().get("tasks").len(), 2, "still shown");
    c.handle_frame(
        Millis(130),
        WALL,
        &frame(RelayFrame::Access {
            access: Access::Write,
        }),
    );
    let sent_ops: Vec<Op> = published_ops(&drain(&mut c))
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(
        sent_ops,
        vec![create("a"), create("b")],
        "without a reconnect"
    );
}

/// A client that joined as a pending guest (`WELCOME` access pending) at `now = 60`.
fn pending_guest() -> Client {
    let mut c = client();
    c.handle_start(Millis(0));
    opened(&mut c, Millis(50));
    drain(&mut c);
    c.handle_frame(Millis(60), WALL, &welcome_with(Access::Pending, LIMITS));
    c
}

#[test]
fn a_pending_guest_waits_without_a_catch_up_then_reads_and_sends_once_admitted() {
    let mut c = pending_guest();
    let outs = drain(&mut c);
    assert_eq!(statuses(&outs), [Status::Pending]);
    assert!(
        !events(&outs)
            .iter()
            .any(|e| matches!(e, ClientEvent::Warning { .. })),
        "the status says it, no GUEST_PENDING warning: {outs:?}"
    );
    assert!(all_sent(&outs).is_empty(), "no SYNC, no member frame");
    // A change made meanwhile is shown and kept (persisted), never sent.
    let changes = c.handle_local_op(Millis(100), WALL, create("a")).unwrap();
    assert_eq!(changes.len(), 1);
    c.handle_flush(Millis(100));
    let outs = drain(&mut c);
    assert!(all_sent(&outs).is_empty(), "{outs:?}");
    assert!(outs.contains(&Output::OutboxChanged));
    assert_eq!(c.outbox_envelopes().len(), 1);
    assert_eq!(c.replica().get("tasks").len(), 1);
    c.handle_ephemeral(Millis(110), WALL, b"cursor").unwrap();
    assert!(all_sent(&drain(&mut c)).is_empty(), "no ephemeral frame");
    // Time passes: the heartbeat keeps the socket; still pending, nothing else sent.
    c.handle_timer(Millis(40_000));
    let outs = drain(&mut c);
    assert!(all_sent(&outs).is_empty());
    assert_eq!(c.status(), &Status::Pending);
    // Admitted: ACCESS write, then the catch-up the relay held back.
    c.handle_frame(
        Millis(200),
        WALL,
        &frame(RelayFrame::Access {
            access: Access::Write,
        }),
    );
    let outs = drain(&mut c);
    assert_eq!(statuses(&outs), [Status::Syncing]);
    assert!(published_ops(&outs).is_empty(), "not before the catch-up");
    let theirs = sealed_create("b");
    c.handle_frame(Millis(210), WALL, &event(1, &theirs));
    caught_up(&mut c, Millis(220), 1, 9);
    let outs = drain(&mut c);
    assert_eq!(statuses(&outs), [Status::Live]);
    assert_eq!(published_ops(&outs), [vec![create("a")]], "the held change");
    assert_eq!(c.replica().get("tasks").len(), 2, "theirs and its own");
    assert!(
        !events(&outs)
            .iter()
            .any(|e| matches!(e, ClientEvent::Warning { .. })),
        "{outs:?}"
    );
}

#[test]
fn a_pending_guest_is_pending_again_after_a_reconnect_and_stops_when_denied() {
    let mut c = pending_guest();
    c.handle_local_op(Millis(100), WALL, create("a")).unwrap();
    c.handle_flush(Millis(100));
    drain(&mut c);
    c.handle_socket_closed(Millis(150), 1006);
    assert!(matches!(
        statuses(&drain(&mut c))[..],
        [Status::Reconnecting { .. }]
    ));
    c.handle_timer(Millis(60_000));
    assert!(drain(&mut c).contains(&Output::Connect));
    opened(&mut c, Millis(60_010));
    drain(&mut c);
    c.handle_frame(Millis(60_020), WALL, &welcome_with(Access::Pending, LIMITS));
    assert_eq!(statuses(&drain(&mut c)), [Status::Pending]);
    assert_eq!(c.pending_changes(), 1, "still held");
    // The backend turns the guest away: a fatal FORBIDDEN, then 4003.
    c.handle_frame(
        Millis(60_100),
        WALL,
        &error_frame(
            RelayErrorCode::Forbidden,
            true,
            "the application turned down your request to join this room",
        ),
    );
    let outs = drain(&mut c);
    assert_eq!(statuses(&outs), [Status::Forbidden]);
    assert!(outs.iter().any(|o| matches!(o, Output::Close { .. })));
    assert!(
        events(&outs)
            .iter()
            .any(|e| matches!(e, ClientEvent::Warning { code, message }
            if code == "FORBIDDEN" && message.contains("turned down"))),
        "the relay's reason reaches the application: {outs:?}"
    );
    assert_eq!(
        c.outbox_envelopes().len(),
        1,
        "the change is kept, not rolled back"
    );
    assert!(!retries_later(&mut c));
    // The close alone (4003) says the same.
    let mut c = pending_guest();
    drain(&mut c);
    c.handle_socket_closed(Millis(100), wire::CLOSE_FORBIDDEN);
    assert_eq!(statuses(&drain(&mut c)), [Status::Forbidden]);
}

#[test]
fn an_admitted_viewer_guest_reads_the_catch_up_and_its_held_changes_are_rolled_back() {
    let mut c = pending_guest();
    c.handle_local_op(Millis(100), WALL, create("a")).unwrap();
    c.handle_flush(Millis(100));
    drain(&mut c);
    c.handle_frame(
        Millis(200),
        WALL,
        &frame(RelayFrame::Access {
            access: Access::ReadOnly,
        }),
    );
    assert_eq!(statuses(&drain(&mut c)), [Status::Syncing]);
    caught_up(&mut c, Millis(220), 0, 9);
    let outs = drain(&mut c);
    assert_eq!(statuses(&outs), [Status::Live]);
    assert!(published_ops(&outs).is_empty());
    assert!(events(&outs)
        .iter()
        .any(|e| matches!(e, ClientEvent::Rejected { code, .. } if code == "READ_ONLY")));
    assert_eq!(c.pending_changes(), 0);
}

#[test]
fn a_clock_minutes_ahead_wins_no_conflict_past_the_skew_bound() {
    // Alice's clock runs ten minutes ahead; she edits while offline, then connects.
    let ahead = WallMillis(WALL.0 + 600_000);
    let mut a = client();
    a.handle_start(Millis(0));
    a.handle_local_op(Millis(1), ahead, create("t")).unwrap();
    a.handle_local_op(Millis(1), ahead, update("t", "alice"))
        .unwrap();
    a.handle_flush(Millis(1));
    opened(&mut a, Millis(50));
    a.handle_frame(Millis(60), ahead, &welcome());
    a.handle_frame(
        Millis(70),
        ahead,
        &frame(RelayFrame::CaughtUp {
            head_seq: 0,
            token: 0,
        }),
    );
    drain(&mut a);
    // The relay stores her change at its own time, WALL.
    a.handle_frame(
        Millis(80),
        ahead,
        &frame(RelayFrame::Ack {
            session: SessionId([1; 16]),
            counter: 1,
            seq: 1,
            relay_time: WALL.0,
            duplicate: false,
        }),
    );
    drain(&mut a);
    assert_eq!(
        a.replica(),
        a.confirmed(),
        "rebuilt at the stamps everyone merges"
    );
    // Bob, with a correct clock, edits 61 s later: past the 60 s bound, his edit wins
    // everywhere, Alice's replica included (her raw stamp is 10 minutes ahead).
    let later = WALL.0 + sealsync_core::MAX_FORWARD_SKEW_MS + 1_000;
    let mut b = live_with(2);
    b.handle_local_op(Millis(100), WallMillis(later), update("t", "bob"))
        .unwrap();
    b.handle_flush(Millis(100));
    let envelope = b.outbox_envelopes().pop().unwrap();
    a.handle_frame(
        Millis(90),
        ahead,
        &frame(RelayFrame::Event {
            seq: 2,
            relay_time: later,
            envelope,
        }),
    );
    assert_eq!(a.replica().entity("tasks", "t").unwrap()["title"], "bob");
}

#[test]
fn a_snapshot_that_does_not_open_is_reported_once_and_never_asked_for_again() {
    let mut c = client();
    c.handle_start(Millis(0));
    opened(&mut c, Millis(10));
    c.handle_frame(Millis(20), WALL, &welcome());
    // Junk of the right shape: kind snapshot, but not sealed with this room's key.
    let mut junk = vec![0u8; 200];
    junk[0] = 1;
    junk[1] = 2;
    c.handle_frame(
        Millis(21),
        WALL,
        &frame(RelayFrame::Snapshot {
            seq: 40,
            envelope: junk,
        }),
    );
    caught_up(&mut c, Millis(22), 40, 0);
    let outs = drain(&mut c);
    assert_eq!(c.last_seq(), 40, "skipped over");
    assert_eq!(c.status(), &Status::Live);
    assert!(
        !sent(&outs)
            .iter()
            .any(|f| matches!(f, ClientFrame::Sync { .. })),
        "no SYNC: it would only bring the same snapshot back"
    );
    let codes: Vec<String> = events(&outs)
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::Warning { code, .. } => Some(code),
            _ => None,
        })
        .collect();
    assert_eq!(codes, ["DECRYPT_FAILED"]);
}

#[test]
fn a_relay_that_keeps_a_hole_is_asked_once_then_reported() {
    let mut c = live();
    caught_up(&mut c, Millis(100), 5, 0);
    let first = sent(&drain(&mut c));
    assert!(matches!(
        first[..],
        [ClientFrame::Sync {
            after_seq: 0,
            token: 0
        }]
    ));
    caught_up(&mut c, Millis(110), 5, 0);
    let outs = drain(&mut c);
    assert!(sent(&outs).is_empty(), "no second SYNC for the same hole");
    assert!(events(&outs)
        .iter()
        .any(|e| matches!(e, ClientEvent::Warning { code, .. } if code == "HISTORY_GAP")));
}

#[test]
fn hostile_sequence_numbers_neither_panic_nor_freeze() {
    let mut c = live();
    let mut sender = live_with(2);
    sender
        .handle_local_op(Millis(200), WALL, create("a"))
        .unwrap();
    sender.handle_flush(Millis(200));
    let envelope = sender.outbox_envelopes().pop().unwrap();
    for seq in [u64::MAX, u64::MAX - 1, wire::MAX_SEQ + 1] {
        c.handle_frame(
            Millis(300),
            WALL,
            &frame(RelayFrame::Event {
                seq,
                relay_time: WALL.0,
                envelope: envelope.clone(),
            }),
        );
        c.handle_frame(
            Millis(300),
            WALL,
            &frame(RelayFrame::Ack {
                session: SessionId([1; 16]),
                counter: 1,
                seq,
                relay_time: WALL.0,
                duplicate: false,
            }),
        );
        caught_up(&mut c, Millis(300), seq, 0);
    }
    drain(&mut c);
    assert_eq!(c.last_seq(), 0);
    // The honest event still applies.
    c.handle_frame(
        Millis(400),
        WALL,
        &frame(RelayFrame::Event {
            seq: 1,
            relay_time: WALL.0,
            envelope,
        }),
    );
    assert_eq!(c.last_seq(), 1);
    assert_eq!(c.replica().get("tasks").len(), 1);
}

/// The sender counter in an envelope's header (local snapshots take counters too).
fn counter_of(envelope: &[u8]) -> u64 {
    sealsync_core::Opener::new(&keys())
        .open(envelope)
        .unwrap()
        .header
        .counter
}

/// A local change by `c`, flushed and acknowledged as stored event `seq`; its envelope.
fn stored_change(c: &mut Client, at: u64, op: Op, seq: u64) -> Vec<u8> {
    c.handle_local_op(Millis(at), WALL, op).unwrap();
    c.handle_flush(Millis(at));
    let envelope = c.outbox_envelopes().pop().unwrap();
    c.handle_frame(
        Millis(at + 10),
        WALL,
        &frame(RelayFrame::Ack {
            session: SessionId([1; 16]),
            counter: counter_of(&envelope),
            seq,
            relay_time: WALL.0,
            duplicate: false,
        }),
    );
    envelope
}

/// A live client that keeps its history, with a local snapshot every `every` kept events.
fn keeping(session: u8, every: u64) -> Client {
    let mut config = ClientConfig::new(
        RoomId::new("room").unwrap(),
        DeviceId([session; 16]),
        SessionId([session; 16]),
    );
    config.keep_history = true;
    config.keep_snapshot_every = every;
    Client::new(config, keys(), Box::new(Counter(u64::from(session))))
}

fn start_live(c: &mut Client, head_seq: u64) -> Vec<Output> {
    c.handle_start(Millis(0));
    opened(c, Millis(50));
    c.handle_frame(Millis(60), WALL, &welcome());
    c.handle_frame(
        Millis(70),
        WALL,
        &frame(RelayFrame::CaughtUp { head_seq, token: 0 }),
    );
    drain(c)
}

fn kept(outs: &[Output]) -> Vec<Kept> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Keep(k) => Some(k.clone()),
            _ => None,
        })
        .collect()
}

/// An envelope creating task `id`, sealed by another member's session (a new one each call:
/// the same session and counter twice is a replay).
fn sealed_create(id: &str) -> Vec<u8> {
    static NEXT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(10);
    let mut other = live_with(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    other
        .handle_local_op(Millis(100), WALL, create(id))
        .unwrap();
    other.handle_flush(Millis(100));
    other.outbox_envelopes().pop().unwrap()
}

fn event(seq: u64, envelope: &[u8]) -> Vec<u8> {
    frame(RelayFrame::Event {
        seq,
        relay_time: WALL.0,
        envelope: envelope.to_vec(),
    })
}

#[test]
fn a_kept_history_restores_the_state_and_the_next_hello_asks_only_for_what_came_after() {
    let mut a = keeping(1, 4);
    let mut before_live = keeping(1, 4);
    before_live.handle_start(Millis(0));
    opened(&mut before_live, Millis(50));
    before_live.handle_frame(Millis(60), WALL, &welcome());
    assert!(
        kept(&drain(&mut before_live)).is_empty(),
        "nothing before live"
    );
    assert!(
        matches!(
            kept(&start_live(&mut a, 0))[..],
            [Kept::Snapshot { seq: 0, .. }]
        ),
        "the first keep, once live, is a snapshot of everything"
    );
    for seq in 1..=5 {
        a.handle_frame(
            Millis(100),
            WALL,
            &event(seq, &sealed_create(&format!("t{seq}"))),
        );
    }
    // Its own change, acknowledged as event 6: kept with its envelope.
    let own = stored_change(&mut a, 200, create("mine"), 6);
    let history = kept(&drain(&mut a));
    let shape: Vec<(&str, u64)> = history
        .iter()
        .map(|k| match k {
            Kept::Event { seq, .. } => ("event", *seq),
            Kept::Snapshot { seq, .. } => ("snapshot", *seq),
        })
        .collect();
    assert_eq!(
        shape,
        [
            ("event", 1),
            ("event", 2),
            ("event", 3),
            ("event", 4),
            ("snapshot", 4),
            ("event", 5),
            ("event", 6)
        ]
    );
    assert!(matches!(&history[6], Kept::Event { envelope, .. } if *envelope == own));

    // A later session restores what the shell kept: the snapshot and the events after it.
    let snapshot = history.iter().rev().find_map(|k| match k {
        Kept::Snapshot { seq, envelope } => Some((*seq, envelope.clone())),
        Kept::Event { .. } => None,
    });
    let events: Vec<(u64, u64, Vec<u8>)> = history
        .iter()
        .rev()
        .filter_map(|k| match k {
            Kept::Event {
                seq,
                relay_time,
                envelope,
            } if *seq > 4 => Some((*seq, *relay_time, envelope.clone())),
            _ => None,
        })
        .collect();
    let mut b = keeping(2, 4);
    b.restore_history(WALL, snapshot, events).unwrap();
    assert_eq!(b.last_seq(), 6);
    let mut ids: Vec<String> = b
        .replica()
        .get("tasks")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["mine", "t1", "t2", "t3", "t4", "t5"]);
    assert!(
        drain(&mut b).iter().all(|o| !matches!(o, Output::Event(_))),
        "restoring fires no events"
    );
    b.handle_start(Millis(0));
    opened(&mut b, Millis(10));
    let frames = sent(&drain(&mut b));
    assert!(matches!(
        frames[..],
        [ClientFrame::Hello { after_seq: 6, .. }]
    ));
}

#[test]
fn restoring_stops_at_a_hole_and_a_snapshot_under_another_key_is_refused_whole() {
    let mut c = keeping(1, 100);
    let events = vec![
        (2, WALL.0, sealed_create("b")),
        (1, WALL.0, sealed_create("a")),
        (4, WALL.0, sealed_create("d")),
    ];
    c.restore_history(WALL, None, events).unwrap();
    assert_eq!(
        c.last_seq(),
        2,
        "event 3 is missing: 4 comes from the relay"
    );
    assert_eq!(c.replica().get("tasks").len(), 2);

    let mut stranger = client_under_another_key(5);
    stranger
        .handle_local_op(Millis(1), WALL, create("x"))
        .unwrap();
    stranger.handle_flush(Millis(1));
    let Kept::Snapshot { envelope, .. } = stranger.history_snapshot().unwrap() else {
        panic!("not a snapshot");
    };
    let mut d = keeping(3, 100);
    assert!(d
        .restore_history(
            WALL,
            Some((7, envelope)),
            vec![(8, WALL.0, sealed_create("y"))]
        )
        .is_err());
    assert_eq!(d.last_seq(), 0);
    assert!(d.replica().get("tasks").is_empty());
}

#[test]
fn a_relay_behind_the_cursor_is_a_reset_the_state_survives_and_is_stored_again() {
    let mut c = keeping(1, 100);
    c.restore_history(
        WALL,
        None,
        vec![
            (1, WALL.0, sealed_create("a")),
            (2, WALL.0, sealed_create("b")),
        ],
    )
    .unwrap();
    assert_eq!(c.last_seq(), 2);
    // The room was deleted on the relay (it stayed empty past its idle TTL): head 0.
    let outs = start_live(&mut c, 0);
    assert_eq!(c.status(), &Status::Live);
    assert_eq!(c.last_seq(), 0);
    assert!(events(&outs)
        .iter()
        .any(|e| matches!(e, ClientEvent::Warning { code, .. } if code == "HISTORY_RESET")));
    assert!(
        matches!(kept(&outs)[..], [Kept::Snapshot { seq: 0, .. }]),
        "the kept history starts over"
    );
    assert_eq!(c.replica().get("tasks").len(), 2, "the state stays");
    // The next stored event (any member's) anchors the state, uploaded as the snapshot.
    drain(&mut c);
    stored_change(&mut c, 100, create("c"), 1);
    let frames = sent(&drain(&mut c));
    let Some(ClientFrame::SnapshotPut { upto_seq, envelope }) = frames.last() else {
        panic!("no snapshot: {frames:?}");
    };
    assert_eq!(*upto_seq, 1);
    // Another member restoring that snapshot sees all three tasks.
    let mut other = keeping(4, 100);
    other
        .restore_history(WALL, Some((1, envelope.clone())), vec![])
        .unwrap();
    let ids: Vec<String> = other
        .replica()
        .get("tasks")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
}

#[test]
fn a_replica_whose_clock_is_behind_still_wins_with_an_edit_of_what_a_snapshot_showed_it() {
    // A writes at WALL; its state reaches B as a snapshot. B's clock is 30 s behind: its
    // edit of the same field must still win (the clock observes the snapshot's stamps),
    // or the edit would be silently lost, here and everywhere.
    let mut a = live();
    stored_change(&mut a, 100, create("x"), 1);
    let Kept::Snapshot { envelope, .. } = a.history_snapshot().unwrap() else {
        panic!("not a snapshot");
    };
    let behind = WallMillis(WALL.0 - 30_000);
    let mut b = keeping(2, 100);
    b.restore_history(behind, Some((1, envelope)), vec![])
        .unwrap();
    b.handle_local_op(Millis(200), behind, update("x", "edited"))
        .unwrap();
    let tasks = b.replica().get("tasks");
    assert_eq!(tasks[0].1["title"], "edited");
}

#[test]
fn keeping_starts_with_proof_of_the_key_and_never_reseals_what_it_can_keep_as_it_came() {
    // A relay snapshot during a cold catch-up is kept byte for byte, before live.
    let mut source = live();
    source
        .handle_local_op(Millis(100), WALL, create("a"))
        .unwrap();
    source.handle_flush(Millis(100));
    drain(&mut source);
    let Kept::Snapshot { envelope: snap, .. } = source.history_snapshot().unwrap() else {
        panic!("not a snapshot");
    };
    let mut cold = keeping(2, 100);
    cold.handle_start(Millis(0));
    opened(&mut cold, Millis(10));
    cold.handle_frame(Millis(20), WALL, &welcome());
    drain(&mut cold);
    cold.handle_frame(
        Millis(30),
        WALL,
        &frame(RelayFrame::Snapshot {
            seq: 3,
            envelope: snap.clone(),
        }),
    );
    assert_eq!(
        kept(&drain(&mut cold)),
        [Kept::Snapshot {
            seq: 3,
            envelope: snap.clone()
        }]
    );
    caught_up(&mut cold, Millis(40), 3, 0);
    assert!(
        kept(&drain(&mut cold)).is_empty(),
        "no second snapshot at live"
    );

    // A restored history is kept on as it is: nothing is re-sealed at live.
    let mut warm = keeping(3, 100);
    warm.restore_history(WALL, Some((3, snap)), vec![(4, WALL.0, sealed_create("b"))])
        .unwrap();
    assert!(warm.is_keeping());
    let outs = start_live(&mut warm, 4);
    assert!(kept(&outs).is_empty(), "{:?}", kept(&outs));

    // Under another key nothing opens, and nothing is kept.
    let other_keys = RoomKeys::derive(
        &RoomKey::from_secret("HxwdHhsaGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA").unwrap(),
        RoomId::new("room").unwrap(),
    );
    let mut config = ClientConfig::new(
        RoomId::new("room").unwrap(),
        DeviceId([6; 16]),
        SessionId([6; 16]),
    );
    config.keep_history = true;
    let mut stranger = Client::new(config, other_keys, Box::new(Counter(6)));
    stranger.handle_start(Millis(0));
    opened(&mut stranger, Millis(10));
    stranger.handle_frame(Millis(20), WALL, &welcome());
    stranger.handle_frame(Millis(30), WALL, &event(1, &sealed_create("c")));
    assert!(!stranger.is_keeping());
    assert!(kept(&drain(&mut stranger)).is_empty());
}

#[test]
fn after_a_history_reset_the_new_history_is_read_from_its_start() {
    // The room was deleted on the relay and someone wrote two events since: this replica
    // (cursor 5) must read them, not skip them, then store its state as the snapshot.
    let mut c = keeping(1, 100);
    let events = (1..=5)
        .map(|seq| (seq, WALL.0, sealed_create(&format!("old{seq}"))))
        .collect();
    c.restore_history(WALL, None, events).unwrap();
    c.handle_start(Millis(0));
    opened(&mut c, Millis(10));
    c.handle_frame(Millis(20), WALL, &welcome());
    caught_up(&mut c, Millis(30), 2, 9);
    let frames = sent(&drain(&mut c));
    assert!(
        matches!(
            frames[..],
            [
                ClientFrame::Hello { after_seq: 5, .. },
                ClientFrame::Sync {
                    after_seq: 0,
                    token: 9
                }
            ]
        ),
        "{frames:?}"
    );
    for seq in 1..=2 {
        c.handle_frame(
            Millis(40),
            WALL,
            &event(seq, &sealed_create(&format!("new{seq}"))),
        );
    }
    caught_up(&mut c, Millis(50), 2, 10);
    assert_eq!(c.status(), &Status::Live);
    assert_eq!(
        c.replica().get("tasks").len(),
        7,
        "the old state and the new events"
    );
    let frames = sent(&drain(&mut c));
    assert!(
        frames
            .iter()
            .any(|f| matches!(f, ClientFrame::SnapshotPut { upto_seq: 2, .. })),
        "{frames:?}"
    );
}

#[test]
fn the_pending_count_is_announced_when_it_changes_after_the_inputs_own_outputs() {
    let mut c = live();
    c.handle_local_op(Millis(100), WALL, create("a")).unwrap();
    c.handle_local_op(Millis(100), WALL, create("b")).unwrap();
    let outs = drain(&mut c);
    assert_eq!(events(&outs).last(), Some(&ClientEvent::Pending(2)));
    c.handle_flush(Millis(100));
    assert!(
        !events(&drain(&mut c)).contains(&ClientEvent::Pending(2)),
        "not again while it stays 2"
    );
    let envelope = c.outbox_envelopes().pop().unwrap();
    c.handle_frame(
        Millis(200),
        WALL,
        &frame(RelayFrame::Ack {
            session: SessionId([1; 16]),
            counter: counter_of(&envelope),
            seq: 1,
            relay_time: WALL.0,
            duplicate: false,
        }),
    );
    assert_eq!(
        events(&drain(&mut c)).last(),
        Some(&ClientEvent::Pending(0)),
        "both went in one envelope"
    );
}

#[test]
fn a_handshake_failure_is_probed_then_refused_or_retried() {
    // Not refused (unreachable): back off and reconnect, as after any failed connection.
    let mut c = client();
    c.handle_start(Millis(0));
    drain(&mut c);
    c.handle_socket_closed(Millis(10), wire::CLOSE_ABNORMAL);
    let outs = drain(&mut c);
    assert!(outs.contains(&Output::Probe), "{outs:?}");
    assert!(
        matches!(c.status(), Status::Connecting { .. }),
        "no verdict yet"
    );
    c.handle_probe(Millis(20), None);
    assert!(matches!(c.status(), Status::Reconnecting { .. }));

    // Refused (HTTP 403): one warning with the relay's reason, then the final status.
    let mut c = client();
    c.handle_start(Millis(0));
    c.handle_socket_closed(Millis(10), wire::CLOSE_ABNORMAL);
    drain(&mut c);
    c.handle_probe(Millis(20), Some(" token expired\n"));
    let outs = drain(&mut c);
    assert!(outs.contains(&Output::Event(ClientEvent::Warning {
        code: WARNING_CONNECTION_REFUSED.into(),
        message: "the relay refused this client: token expired".into(),
    })));
    assert_eq!(c.status(), &Status::Forbidden);
    assert!(!retries_later(&mut c), "no retry once refused");

    // No answer by the connect timeout: the client goes on; a late answer changes nothing.
    let mut c = client();
    c.handle_start(Millis(0));
    c.handle_socket_closed(Millis(10), wire::CLOSE_ABNORMAL);
    drain(&mut c);
    // The connect deadline's timer (10 000) fires first and re-arms for the probe's.
    c.handle_timer(Millis(10_000));
    assert!(drain(&mut c).contains(&Output::WakeAt(Millis(10_010))));
    assert!(matches!(c.status(), Status::Connecting { .. }));
    c.handle_timer(Millis(10_010));
    assert!(matches!(c.status(), Status::Reconnecting { .. }));
    c.handle_probe(Millis(10_020), Some("late"));
    assert!(matches!(c.status(), Status::Reconnecting { .. }));

    // A socket that opened and then dropped is not probed.
    let mut c = live();
    c.handle_socket_closed(Millis(100), wire::CLOSE_ABNORMAL);
    let outs = drain(&mut c);
    assert!(!outs.contains(&Output::Probe));
    assert!(matches!(c.status(), Status::Reconnecting { .. }));
}

#[test]
fn adopted_outboxes_are_forgotten_once_live_and_never_under_a_wrong_key() {
    let mut old = live_with(3);
    old.handle_local_op(Millis(100), WALL, create("a")).unwrap();
    old.handle_flush(Millis(100));
    let record = old.outbox_envelopes();
    let own = SessionId([1; 16]).to_string();
    let records = || {
        vec![
            ("closed-tab".to_owned(), record.clone()),
            ("running-tab".to_owned(), record.clone()),
            (own.clone(), record.clone()),
        ]
    };
    let running = ["running-tab".to_owned()];

    let mut c = client();
    let changes = c.adopt_outboxes(WALL, records(), Some(&running));
    assert_eq!(changes.len(), 1, "only the closed tab's record is adopted");
    assert_eq!(c.outbox_len(), 1);
    c.handle_start(Millis(0));
    opened(&mut c, Millis(50));
    c.handle_frame(Millis(60), WALL, &welcome());
    let before_live = drain(&mut c);
    assert!(!before_live
        .iter()
        .any(|o| matches!(o, Output::ForgetOutboxes(_))));
    caught_up(&mut c, Millis(70), 0, 0);
    let outs = drain(&mut c);
    let forgets: Vec<_> = outs
        .iter()
        .filter_map(|o| match o {
            Output::ForgetOutboxes(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(forgets, [vec!["closed-tab".to_owned()]]);
    // Live again after a reconnect: nothing more to forget.
    c.handle_socket_closed(Millis(80), wire::CLOSE_ABNORMAL);
    c.handle_timer(Millis(100_000));
    opened(&mut c, Millis(100_001));
    welcome_and_catch_up(&mut c, Millis(100_002), Millis(100_003));
    assert!(!drain(&mut c)
        .iter()
        .any(|o| matches!(o, Output::ForgetOutboxes(_))));

    // The running tab ends later (closed, or reloaded): adopted while live, its record is
    // forgotten at once and its change goes out with the next flush.
    c.adopt_outboxes(WALL, vec![("running-tab".to_owned(), record.clone())], None);
    let outs = drain(&mut c);
    assert!(outs
        .iter()
        .any(|o| o == &Output::ForgetOutboxes(vec!["running-tab".to_owned()])));
    let mut fresh = client();
    fresh.handle_start(Millis(0));
    opened(&mut fresh, Millis(1));
    welcome_and_catch_up(&mut fresh, Millis(2), Millis(3));
    drain(&mut fresh);
    fresh.adopt_outboxes(WALL, vec![("ended-tab".to_owned(), record.clone())], None);
    fresh.handle_flush(Millis(4));
    let outs = drain(&mut fresh);
    assert!(outs
        .iter()
        .any(|o| o == &Output::ForgetOutboxes(vec!["ended-tab".to_owned()])));
    assert_eq!(
        all_sent(&outs)
            .iter()
            .filter(|f| matches!(f, ClientFrame::Publish { .. }))
            .count(),
        1,
        "the adopted change is published"
    );

    // A wrong password: the relay closes with WRONG_VERIFIER; the records stay.
    let mut wrong = client_under_another_key(1);
    wrong.adopt_outboxes(WALL, records(), None);
    wrong.handle_start(Millis(0));
    opened(&mut wrong, Millis(10));
    wrong.handle_socket_closed(Millis(20), wire::CLOSE_WRONG_VERIFIER);
    let outs = drain(&mut wrong);
    assert_eq!(wrong.status(), &Status::WrongPassword);
    assert!(!outs.iter().any(|o| matches!(o, Output::ForgetOutboxes(_))));
}

/// The member frames (who is online) in `outs`, opened.
fn member_frames(outs: &[Output]) -> Vec<MemberFrame> {
    let mut opener = sealsync_core::Opener::new(&keys());
    all_sent(outs)
        .into_iter()
        .filter(is_member_frame)
        .map(|f| match f {
            ClientFrame::Ephemeral { envelope } => {
                MemberFrame::decode(&opener.open(&envelope).unwrap().body).unwrap()
            }
            _ => unreachable!(),
        })
        .collect()
}

/// `from`'s member frames as the relay relays them to the others.
fn relayed(outs: &[Output]) -> Vec<Vec<u8>> {
    all_sent(outs)
        .into_iter()
        .filter(is_member_frame)
        .map(|f| match f {
            ClientFrame::Ephemeral { envelope } => frame(RelayFrame::Ephemeral { envelope }),
            _ => unreachable!(),
        })
        .collect()
}

fn member_list(outs: &[Output]) -> Option<Vec<(String, serde_json::Value, bool)>> {
    events(outs).into_iter().rev().find_map(|e| match e {
        ClientEvent::Members(list) => Some(
            list.into_iter()
                .map(|m| (m.session, m.profile, m.is_self))
                .collect(),
        ),
        _ => None,
    })
}

#[test]
fn members_announce_themselves_answer_arrivals_and_drop_leavers_and_the_silent() {
    let mut ada = member_with(1);
    ada.set_profile(Millis(0), json!({"name": "Ada"})).unwrap();
    ada.handle_start(Millis(0));
    opened(&mut ada, Millis(50));
    welcome_and_catch_up(&mut ada, Millis(60), Millis(70));
    let outs = drain(&mut ada);
    // Live: it announces itself and asks the others; its own entry comes first.
    assert_eq!(
        member_frames(&outs),
        [MemberFrame::Here {
            profile: json!({"name": "Ada"}),
            ask: true
        }]
    );
    let ada_id = SessionId([1; 16]).to_string();
    assert_eq!(
        member_list(&outs),
        Some(vec![(ada_id.clone(), json!({"name": "Ada"}), true)])
    );
    // HELLO followed the room tag besides the channel.
    let mut bob = member_with(2);
    bob.handle_start(Millis(0));
    opened(&mut bob, Millis(50));
    let hello = all_sent(&drain(&mut bob));
    assert!(matches!(&hello[..], [ClientFrame::Hello { channels, .. }]
        if channels.len() == 2 && channels.contains(&ROOM_TAG)));
    welcome_and_catch_up(&mut bob, Millis(60), Millis(70));
    let bob_hello = relayed(&drain(&mut bob));

    // Ada hears Bob arrive and answers (once: at most one announcement a second).
    for frame in &bob_hello {
        ada.handle_frame(Millis(80), WALL, frame);
    }
    let outs = drain(&mut ada);
    let bob_id = SessionId([2; 16]).to_string();
    assert_eq!(
        member_list(&outs),
        Some(vec![
            (ada_id.clone(), json!({"name": "Ada"}), true),
            (bob_id.clone(), serde_json::Value::Null, false),
        ])
    );
    assert!(
        member_frames(&outs).is_empty(),
        "within a second of the last"
    );
    ada.handle_timer(Millis(1_070));
    let answer = drain(&mut ada);
    assert_eq!(
        member_frames(&answer),
        [MemberFrame::Here {
            profile: json!({"name": "Ada"}),
            ask: false
        }]
    );
    for frame in relayed(&answer) {
        bob.handle_frame(Millis(1_080), WALL, &frame);
    }
    let outs = drain(&mut bob);
    assert_eq!(
        member_list(&outs),
        Some(vec![
            (bob_id.clone(), serde_json::Value::Null, true),
            (ada_id.clone(), json!({"name": "Ada"}), false),
        ])
    );
    assert!(member_frames(&outs).is_empty(), "an answer is not answered");

    // A profile change is announced at once (a second after the last).
    bob.set_profile(Millis(2_000), json!({"name": "Bob"}))
        .unwrap();
    let changed = relayed(&drain(&mut bob));
    assert_eq!(changed.len(), 1);
    ada.handle_frame(Millis(2_010), WALL, &changed[0]);
    assert_eq!(
        member_list(&drain(&mut ada)).unwrap()[1],
        (bob_id.clone(), json!({"name": "Bob"}), false)
    );

    // Bob leaves: Ada drops him at once.
    bob.handle_leave(Millis(3_000));
    let left = relayed(&drain(&mut bob));
    assert_eq!(left.len(), 1);
    ada.handle_frame(Millis(3_010), WALL, &left[0]);
    assert_eq!(
        member_list(&drain(&mut ada)),
        Some(vec![(ada_id.clone(), json!({"name": "Ada"}), true)])
    );

    // A member that goes silent is dropped after the expiry; Ada keeps announcing.
    let mut cyd = member_with(3);
    cyd.handle_start(Millis(0));
    opened(&mut cyd, Millis(4_000));
    welcome_and_catch_up(&mut cyd, Millis(4_000), Millis(4_000));
    for frame in relayed(&drain(&mut cyd)) {
        ada.handle_frame(Millis(4_010), WALL, &frame);
    }
    assert_eq!(member_list(&drain(&mut ada)).unwrap().len(), 2);
    let mut announced = 0;
    let mut now = 4_010;
    while now + 5_000 < 4_010 + MEMBER_EXPIRES_AFTER_MS {
        now += 5_000;
        ada.handle_timer(Millis(now));
        let outs = drain(&mut ada);
        announced += member_frames(&outs).len();
        ada.handle_text(Millis(now), "pong");
    }
    assert!(announced >= 2, "every 30 s: {announced}");
    ada.handle_timer(Millis(4_010 + MEMBER_EXPIRES_AFTER_MS));
    let outs = drain(&mut ada);
    assert_eq!(
        member_list(&outs),
        Some(vec![(ada_id, json!({"name": "Ada"}), true)])
    );
}

#[test]
fn member_frames_from_a_hostile_key_holder_are_warnings_and_bounded() {
    let mut ada = member_with(1);
    ada.handle_start(Millis(0));
    opened(&mut ada, Millis(50));
    welcome_and_catch_up(&mut ada, Millis(60), Millis(70));
    drain(&mut ada);
    // A key holder seals garbage on the room tag.
    let mut mallory = member_with(9);
    mallory.handle_start(Millis(0));
    opened(&mut mallory, Millis(50));
    welcome_and_catch_up(&mut mallory, Millis(60), Millis(70));
    drain(&mut mallory);
    let envelope = {
        let mut sealer = sealsync_core::SessionSealer::new(&keys(), SessionId([9; 16]));
        sealer
            .seal(
                sealsync_core::EnvelopeKind::Ephemeral,
                ROOM_TAG,
                sealsync_core::Hlc::default(),
                b"{\"type\":\"evil\"}",
                [1; 12],
            )
            .unwrap()
    };
    ada.handle_frame(
        Millis(100),
        WALL,
        &frame(RelayFrame::Ephemeral { envelope }),
    );
    let evs = events(&drain(&mut ada));
    assert!(evs
        .iter()
        .any(|e| matches!(e, ClientEvent::Warning { code, .. } if code == "INVALID_MEMBER")));
    assert!(!evs.iter().any(|e| matches!(e, ClientEvent::Members(_))));
    assert_eq!(ada.members().len(), 1, "only Ada");
    // A too long profile is refused and changes nothing.
    let long = "x".repeat(sealsync_core::roster::MAX_PROFILE_LEN);
    assert_eq!(
        ada.set_profile(Millis(200), json!({ "name": long }))
            .unwrap_err()
            .code(),
        "INVALID_MEMBER"
    );
    assert_eq!(ada.members()[0].profile, serde_json::Value::Null);
}

#[test]
fn a_client_that_takes_no_part_neither_announces_nor_lists() {
    let mut quiet = client_with(4);
    quiet.handle_start(Millis(0));
    opened(&mut quiet, Millis(50));
    let outs = drain(&mut quiet);
    assert!(
        matches!(&all_sent(&outs)[..], [ClientFrame::Hello { channels, .. }]
        if !channels.contains(&ROOM_TAG))
    );
    welcome_and_catch_up(&mut quiet, Millis(60), Millis(70));
    quiet.set_profile(Millis(80), json!({"name": "Q"})).unwrap();
    let outs = drain(&mut quiet);
    assert!(member_frames(&outs).is_empty());
    assert_eq!(member_list(&outs), None, "no members event");
    assert!(quiet.members().is_empty());
}

#[test]
fn a_record_too_large_for_the_outbox_is_left_whole_and_never_forgotten() {
    let mut old = live_with(3);
    old.handle_local_op(Millis(100), WALL, create("a")).unwrap();
    old.handle_flush(Millis(100));
    let small = old.outbox_envelopes();
    let huge = vec![vec![0_u8; 8]; sealsync_core::outbox::MAX_OUTBOX_ENTRIES + 1];
    let mut c = client();
    let changes = c.adopt_outboxes(
        WALL,
        vec![("huge".to_owned(), huge), ("small".to_owned(), small)],
        None,
    );
    assert_eq!(changes.len(), 1, "the small record is adopted");
    let outs = drain(&mut c);
    assert!(events(&outs)
        .iter()
        .any(|e| matches!(e, ClientEvent::Warning { code, .. } if code == "OUTBOX_FULL")));
    c.handle_start(Millis(0));
    opened(&mut c, Millis(50));
    welcome_and_catch_up(&mut c, Millis(60), Millis(70));
    let forgets: Vec<_> = drain(&mut c)
        .into_iter()
        .filter_map(|o| match o {
            Output::ForgetOutboxes(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(forgets, [vec!["small".to_owned()]], "the huge record stays");
}

#[test]
fn a_connection_the_shell_could_not_attempt_backs_off_without_a_probe() {
    let mut c = client();
    c.handle_start(Millis(0));
    drain(&mut c);
    // The token function failed: nothing reached the relay, so nothing is asked of it.
    c.handle_connect_failed(Millis(5));
    let outs = drain(&mut c);
    assert!(!outs.contains(&Output::Probe), "{outs:?}");
    assert!(matches!(c.status(), Status::Reconnecting { .. }));
    // Ignored when no connection is being made.
    c.handle_connect_failed(Millis(6));
    assert!(drain(&mut c).is_empty());
}

/// Start, open, welcome, caught up: a client taking part in who is online, live at 70.
fn live_member(session: u8) -> Client {
    let mut c = member_with(session);
    c.handle_start(Millis(0));
    opened(&mut c, Millis(50));
    welcome_and_catch_up(&mut c, Millis(60), Millis(70));
    drain(&mut c);
    c
}

/// The relay's `KEY_EPOCH`.
fn key_epoch(key_epoch: u32) -> Vec<u8> {
    frame(RelayFrame::KeyEpoch { key_epoch })
}

/// The key epochs of the envelopes published in `outs`.
fn published_epochs(outs: &[Output]) -> Vec<u32> {
    sent(outs)
        .into_iter()
        .filter_map(|f| match f {
            ClientFrame::Publish { envelope } => {
                Some(EnvelopeHeader::parse(&envelope).unwrap().0.key_epoch)
            }
            _ => None,
        })
        .collect()
}

const OTHER_SECRET: &str = "HxwdHhsaGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA";

fn other_key() -> RoomKey {
    RoomKey::from_secret(OTHER_SECRET).unwrap()
}

fn other_keys() -> RoomKeys {
    RoomKeys::derive(&other_key(), RoomId::new("room").unwrap())
}

/// A `ROTATE`'s epoch, new member key, proof, `upto_seq` and snapshot envelope.
type SentRotate = (u32, [u8; 32], [u8; 64], u64, Vec<u8>);

/// The `ROTATE` among `outs`.
fn rotate_sent(outs: &[Output]) -> Option<SentRotate> {
    sent(outs).into_iter().find_map(|f| match f {
        ClientFrame::Rotate {
            key_epoch,
            member_key,
            proof,
            upto_seq,
            envelope,
        } => Some((key_epoch, member_key, proof, upto_seq, envelope)),
        _ => None,
    })
}

/// A rotation waits for the publish in flight, holds later changes, signs the move with the
/// current key over this socket's challenge, seals the snapshot under the new key at epoch
/// 1; once the relay answers `KEY_EPOCH`, the client seals under the new key (the held
/// change is sealed again) and reports it.
#[test]
fn a_rotation_waits_for_publishes_in_flight_and_then_seals_under_the_new_key() {
    let mut c = live();
    drain(&mut c);
    let t = Millis(100);
    c.handle_local_op(t, WALL, create("a")).unwrap();
    c.handle_flush(t);
    assert_eq!(sent(&drain(&mut c)).len(), 1, "the change is in flight");
    c.rotate(t, &other_key(), false).unwrap();
    assert_eq!(
        rotate_sent(&drain(&mut c)),
        None,
        "it waits for the publish in flight"
    );
    assert_eq!(
        c.rotate(t, &other_key(), false).unwrap_err().code(),
        "ROTATION_REFUSED"
    );
    c.handle_local_op(t, WALL, create("b")).unwrap();
    c.handle_flush(t);
    assert!(sent(&drain(&mut c)).is_empty(), "a later change is held");
    let session = SessionId([1; 16]);
    c.handle_frame(
        Millis(110),
        WALL,
        &frame(RelayFrame::Ack {
            session,
            counter: 1,
            seq: 1,
            relay_time: WALL.0,
            duplicate: false,
        }),
    );
    let outs = drain(&mut c);
    let (epoch, new_key, proof, upto_seq, envelope) = rotate_sent(&outs).expect("ROTATE");
    assert_eq!((epoch, upto_seq), (1, 1));
    assert_eq!(new_key, other_keys().member_key());
    assert_eq!(proof, keys().prove_rotation(&CHALLENGE, 1, &new_key));
    assert_eq!(EnvelopeHeader::parse(&envelope).unwrap().0.key_epoch, 1);
    let mut next = other_keys();
    next.set_epoch(1);
    let snapshot = sealsync_core::Opener::new(&next).open(&envelope).unwrap();
    assert!(String::from_utf8(snapshot.body).unwrap().contains("\"a\""));
    assert!(sealsync_core::Opener::new(&keys()).open(&envelope).is_err());
    assert_eq!(sent(&outs).len(), 1, "nothing but the ROTATE");

    c.handle_frame(Millis(120), WALL, &key_epoch(1));
    c.handle_frame(
        Millis(120),
        WALL,
        &frame(RelayFrame::SnapshotStored { seq: 1 }),
    );
    let outs = drain(&mut c);
    assert!(events(&outs).contains(&ClientEvent::Rotated { epoch: 1 }));
    // The socket follows the old key's channel tag: the client connects again, proving the
    // new key, and sends the held change then.
    assert!(outs.contains(&Output::Close {
        code: wire::CLOSE_NORMAL
    }));
    assert!(sent(&outs).is_empty());
    c.handle_socket_closed(Millis(121), wire::CLOSE_NORMAL);
    assert!(retries_later(&mut c));
    opened(&mut c, Millis(60_010));
    let hello = sent(&drain(&mut c));
    assert!(
        matches!(&hello[..], [ClientFrame::Hello { member_key, channels, .. }]
            if *member_key == other_keys().member_key()
                && channels[0] == other_keys().channel_tag("main")),
        "{hello:?}"
    );
    c.handle_frame(Millis(60_020), WALL, &welcome());
    c.handle_frame(Millis(60_020), WALL, &key_epoch(1));
    caught_up(&mut c, Millis(60_030), 1, 0);
    let outs = drain(&mut c);
    let publishes: Vec<Vec<u8>> = sent(&outs)
        .into_iter()
        .filter_map(|f| match f {
            ClientFrame::Publish { envelope } => Some(envelope),
            _ => None,
        })
        .collect();
    assert_eq!(publishes.len(), 1, "the held change goes out");
    assert_eq!(EnvelopeHeader::parse(&publishes[0]).unwrap().0.key_epoch, 1);
    assert!(sealsync_core::Opener::new(&next)
        .open(&publishes[0])
        .is_ok());
    assert_eq!(c.fingerprint(), other_keys().fingerprint());
    assert_eq!(c.status(), &Status::Live);
}

/// The socket closes after `ROTATE` went out and before the answer: the next `HELLO` tries
/// the new key. Refused (`WRONG_VERIFIER`): the rotation did not happen; the client
/// reconnects under the current key (it does not stop) and sends the rotation again.
/// Accepted (`KEY_EPOCH` of the new epoch): it happened.
#[test]
fn a_rotation_whose_answer_was_lost_is_settled_by_the_next_hello() {
    let mut c = live();
    drain(&mut c);
    c.rotate(Millis(100), &other_key(), false).unwrap();
    assert!(rotate_sent(&drain(&mut c)).is_some());
    c.handle_socket_closed(Millis(110), 1006);
    assert!(retries_later(&mut c));
    opened(&mut c, Millis(60_010));
    let hello = sent(&drain(&mut c));
    assert!(
        matches!(&hello[..], [ClientFrame::Hello { member_key, .. }] if *member_key == other_keys().member_key()),
        "{hello:?}"
    );
    c.handle_frame(
        Millis(60_020),
        WALL,
        &error_frame(RelayErrorCode::WrongVerifier, true, "not a member"),
    );
    c.handle_socket_closed(Millis(60_020), wire::CLOSE_WRONG_VERIFIER);
    assert_ne!(c.status(), &Status::WrongPassword, "not a wrong password");
    assert!(retries_later(&mut c));
    opened(&mut c, Millis(120_010));
    let hello = sent(&drain(&mut c));
    assert!(
        matches!(&hello[..], [ClientFrame::Hello { member_key, .. }] if *member_key == keys().member_key()),
        "{hello:?}"
    );
    welcome_and_catch_up(&mut c, Millis(120_020), Millis(120_030));
    assert!(rotate_sent(&drain(&mut c)).is_some(), "sent again");

    // Lost again; this time the relay had carried it out.
    c.handle_socket_closed(Millis(120_040), 1006);
    assert!(retries_later(&mut c));
    opened(&mut c, Millis(180_010));
    drain(&mut c);
    c.handle_frame(Millis(180_020), WALL, &welcome());
    c.handle_frame(Millis(180_020), WALL, &key_epoch(1));
    caught_up(&mut c, Millis(180_030), 0, 0);
    let outs = drain(&mut c);
    assert!(events(&outs).contains(&ClientEvent::Rotated { epoch: 1 }));
    assert_eq!(c.fingerprint(), other_keys().fingerprint());
    assert_eq!(c.status(), &Status::Live);
}

/// Closed by another member's rotation (`ROTATED`, 4005): a final status; its local
/// changes stay; `rekey` with the new key connects again, learns the epoch and sends them
/// sealed under the new key. `rekey` in any other status is refused.
#[test]
fn a_member_shut_out_by_a_rotation_goes_on_with_the_new_key() {
    let mut c = live();
    assert_eq!(
        c.rekey(Millis(80), &other_key()).unwrap_err().code(),
        "ROTATION_REFUSED"
    );
    c.handle_frame(Millis(90), WALL, &rotated_error());
    assert_eq!(c.status(), &Status::Rotated);
    assert!(c.status().is_terminal());
    c.handle_local_op(Millis(95), WALL, create("kept")).unwrap();
    c.handle_flush(Millis(95));
    drain(&mut c);
    assert!(!retries_later(&mut c), "final until rekeyed");
    c.rekey(Millis(100), &other_key()).unwrap();
    assert!(drain(&mut c).contains(&Output::Connect));
    opened(&mut c, Millis(110));
    let hello = sent(&drain(&mut c));
    assert!(
        matches!(&hello[..], [ClientFrame::Hello { member_key, .. }] if *member_key == other_keys().member_key())
    );
    c.handle_frame(Millis(120), WALL, &welcome());
    c.handle_frame(Millis(120), WALL, &key_epoch(1));
    caught_up(&mut c, Millis(130), 0, 0);
    let outs = drain(&mut c);
    let publish = sent(&outs)
        .into_iter()
        .find_map(|f| match f {
            ClientFrame::Publish { envelope } => Some(envelope),
            _ => None,
        })
        .expect("the change made while shut out goes out");
    assert_eq!(EnvelopeHeader::parse(&publish).unwrap().0.key_epoch, 1);
    assert_eq!(c.status(), &Status::Live);
}

/// A `key` member frame from session 9, sealed under the room's (current) key.
fn key_frame(epoch: u32, secret: &str) -> Vec<u8> {
    from_session_9(&MemberFrame::Key {
        epoch,
        secret: secret.to_owned(),
    })
}

/// A member frame from session 9, as the relay relays it.
fn from_session_9(member: &MemberFrame) -> Vec<u8> {
    let body = member.encode();
    let envelope = sealsync_core::SessionSealer::new(&keys(), SessionId([9; 16]))
        .seal(
            sealsync_core::EnvelopeKind::Ephemeral,
            ROOM_TAG,
            sealsync_core::Hlc::default(),
            &body,
            [3; 12],
        )
        .unwrap();
    frame(RelayFrame::Ephemeral { envelope })
}

fn rotated_error() -> Vec<u8> {
    error_frame(RelayErrorCode::Rotated, true, "the room moved to a new key")
}

/// With `hand_over`, the rotating client sends the new key in a `key` member frame sealed
/// under the current key, right before its `ROTATE`; without it, nothing carries the key.
#[test]
fn a_rotation_hands_the_key_over_only_when_asked() {
    for hand_over in [false, true] {
        let mut c = live();
        drain(&mut c);
        c.rotate(Millis(100), &other_key(), hand_over).unwrap();
        let outs = drain(&mut c);
        let keys_sent: Vec<MemberFrame> = member_frames(&outs)
            .into_iter()
            .filter(|f| matches!(f, MemberFrame::Key { .. }))
            .collect();
        if hand_over {
            assert_eq!(
                keys_sent,
                [MemberFrame::Key {
                    epoch: 1,
                    secret: String::from(OTHER_SECRET)
                }]
            );
            let order: Vec<bool> = all_sent(&outs)
                .iter()
                .map(|f| matches!(f, ClientFrame::Rotate { .. }))
                .collect();
            assert_eq!(order.last(), Some(&true), "the ROTATE comes after the key");
        } else {
            assert!(keys_sent.is_empty());
            let opened: Vec<_> = all_sent(&outs)
                .into_iter()
                .filter_map(|f| match f {
                    ClientFrame::Ephemeral { envelope } => Some(envelope),
                    _ => None,
                })
                .collect();
            assert!(opened.is_empty(), "no ephemeral frame at all: {opened:?}");
        }
        assert!(rotate_sent(&outs).is_some());
    }
}

/// A member that received the next epoch's key goes on under it when the rotation closes
/// its socket: no `Rotated` status, a `HELLO` proving the new key, live again. A key that
/// the relay then refuses ends in `Rotated` (not `WrongPassword`).
#[test]
fn a_member_handed_the_new_key_goes_on_under_it() {
    let mut c = live_member(2);
    drain(&mut c);
    c.handle_frame(Millis(100), WALL, &key_frame(1, OTHER_SECRET));
    c.handle_frame(Millis(101), WALL, &rotated_error());
    let outs = drain(&mut c);
    assert!(events(&outs)
        .iter()
        .any(|e| matches!(e, ClientEvent::KeyHandedOver { epoch: 1, .. })));
    assert!(!statuses(&outs).contains(&Status::Rotated));
    c.handle_socket_closed(Millis(102), wire::CLOSE_ROTATED);
    assert!(retries_later(&mut c));
    opened(&mut c, Millis(60_010));
    let hello = sent(&drain(&mut c));
    assert!(
        matches!(&hello[..], [ClientFrame::Hello { member_key, .. }] if *member_key == other_keys().member_key())
    );
    c.handle_frame(Millis(60_020), WALL, &welcome());
    c.handle_frame(Millis(60_020), WALL, &key_epoch(1));
    caught_up(&mut c, Millis(60_030), 0, 0);
    assert_eq!(c.status(), &Status::Live);
    assert_eq!(c.fingerprint(), other_keys().fingerprint());

    // A key for the wrong epoch is ignored; a key the relay refuses ends in Rotated.
    let mut d = live_member(3);
    d.handle_frame(Millis(100), WALL, &key_frame(2, OTHER_SECRET));
    d.handle_frame(Millis(101), WALL, &rotated_error());
    assert_eq!(d.status(), &Status::Rotated, "no key for epoch 1");
    let mut e = live_member(4);
    e.handle_frame(Millis(100), WALL, &key_frame(1, OTHER_SECRET));
    e.handle_frame(Millis(101), WALL, &rotated_error());
    assert!(retries_later(&mut e));
    opened(&mut e, Millis(60_010));
    e.handle_frame(
        Millis(60_020),
        WALL,
        &error_frame(
            RelayErrorCode::WrongVerifier,
            true,
            "this room exists with another password or secret",
        ),
    );
    assert_eq!(e.status(), &Status::Rotated);
}

/// A client that stops (here: shut out by a rotation) lists nobody: it hears nobody any
/// more, and a stale list would show people as online.
#[test]
fn a_stopped_member_lists_nobody() {
    let mut c = live_member(2);
    let here = MemberFrame::Here {
        profile: json!({"name": "Bo"}),
        ask: false,
    };
    c.handle_frame(Millis(100), WALL, &from_session_9(&here));
    assert_eq!(c.members().len(), 2);
    drain(&mut c);
    c.handle_frame(Millis(101), WALL, &rotated_error());
    let outs = drain(&mut c);
    assert_eq!(c.status(), &Status::Rotated);
    assert!(c.members().is_empty());
    assert_eq!(
        events(&outs)
            .into_iter()
            .filter_map(|e| match e {
                ClientEvent::Members(list) => Some(list.len()),
                _ => None,
            })
            .next_back(),
        Some(0)
    );
}

/// A client that keeps its history and takes a new key (`rekey` after `Rotated`) replaces
/// the kept history, sealed under the old key, with a local snapshot under the new one,
/// once the new key is proven (live), not before.
#[test]
fn after_a_new_key_the_kept_history_is_replaced_under_it_once_proven() {
    let mut c = keeping(5, 1_000);
    start_live(&mut c, 0);
    c.handle_local_op(Millis(80), WALL, create("x")).unwrap();
    c.handle_flush(Millis(80));
    drain(&mut c);
    c.handle_frame(Millis(90), WALL, &rotated_error());
    c.rekey(Millis(100), &other_key()).unwrap();
    opened(&mut c, Millis(110));
    c.handle_frame(Millis(120), WALL, &welcome());
    assert!(
        kept(&drain(&mut c)).is_empty(),
        "nothing kept before the key is proven"
    );
    c.handle_frame(Millis(120), WALL, &key_epoch(1));
    caught_up(&mut c, Millis(130), 0, 0);
    let snapshots: Vec<Vec<u8>> = kept(&drain(&mut c))
        .into_iter()
        .filter_map(|k| match k {
            Kept::Snapshot { envelope, .. } => Some(envelope),
            Kept::Event { .. } => None,
        })
        .collect();
    assert_eq!(snapshots.len(), 1);
    let mut next = other_keys();
    next.set_epoch(1);
    assert!(sealsync_core::Opener::new(&next)
        .open(&snapshots[0])
        .is_ok());
    assert!(sealsync_core::Opener::new(&keys())
        .open(&snapshots[0])
        .is_err());
}

/// A non-fatal `ROTATED` (an ephemeral frame or snapshot under another epoch was dropped)
/// is a warning: it does not shut the client out.
#[test]
fn a_non_fatal_rotated_error_is_only_a_warning() {
    let mut c = live();
    c.handle_frame(
        Millis(100),
        WALL,
        &error_frame(
            RelayErrorCode::Rotated,
            false,
            "sealed under key epoch 0, but the room is at key epoch 1",
        ),
    );
    assert_eq!(c.status(), &Status::Live);
}

/// The hand-over was refused for the rate (so the ROTATE waits again), yet a `KEY_EPOCH` of
/// the rotation's epoch still means it was carried out: the client takes the new key (never
/// the new epoch on the old key).
#[test]
fn a_key_epoch_after_a_rate_refusal_still_completes_the_rotation() {
    let mut c = live();
    drain(&mut c);
    c.rotate(Millis(100), &other_key(), true).unwrap();
    assert!(rotate_sent(&drain(&mut c)).is_some());
    c.handle_frame(
        Millis(101),
        WALL,
        &error_frame(RelayErrorCode::RateLimited, false, "slow down"),
    );
    c.handle_frame(Millis(102), WALL, &key_epoch(1));
    assert!(events(&drain(&mut c)).contains(&ClientEvent::Rotated { epoch: 1 }));
    assert_eq!(c.fingerprint(), other_keys().fingerprint());
}

/// The client's own heartbeat timeout ends the connection after `ROTATE` went out: the
/// rotation is in doubt, and the next `HELLO` proves the new key.
#[test]
fn a_rotation_lost_with_a_heartbeat_timeout_is_in_doubt() {
    let mut c = live();
    drain(&mut c);
    c.rotate(Millis(100), &other_key(), false).unwrap();
    assert!(rotate_sent(&drain(&mut c)).is_some());
    c.handle_timer(Millis(20_000));
    c.handle_timer(Millis(40_000));
    let outs = drain(&mut c);
    assert!(
        outs.iter().any(|o| matches!(o, Output::Close { .. })),
        "{outs:?}"
    );
    assert!(retries_later(&mut c));
    opened(&mut c, Millis(100_000));
    let hello = sent(&drain(&mut c));
    assert!(
        matches!(&hello[..], [ClientFrame::Hello { member_key, .. }] if *member_key == other_keys().member_key()),
        "{hello:?}"
    );
}

/// A `WELCOME` without `KEY_EPOCH` means epoch 0 (a room deleted and created again): a
/// client that sealed at epoch 1 seals its unsent changes again at 0 before they go out.
#[test]
fn a_welcome_without_key_epoch_means_epoch_0() {
    let mut c = client();
    c.handle_start(Millis(0));
    opened(&mut c, Millis(50));
    c.handle_frame(Millis(60), WALL, &welcome());
    c.handle_frame(Millis(60), WALL, &key_epoch(1));
    caught_up(&mut c, Millis(70), 0, 0);
    c.handle_local_op(Millis(80), WALL, create("x")).unwrap();
    c.handle_flush(Millis(80));
    assert_eq!(published_epochs(&drain(&mut c)), [1]);
    c.handle_socket_closed(Millis(90), 1006);
    assert!(retries_later(&mut c));
    opened(&mut c, Millis(60_010));
    c.handle_frame(Millis(60_020), WALL, &welcome());
    caught_up(&mut c, Millis(60_030), 0, 0);
    assert_eq!(published_epochs(&drain(&mut c)), [0]);
}

/// `rotate` asked before the relay said the room's epoch: the `ROTATE` names the epoch after
/// the one the relay says then.
#[test]
fn a_rotation_asked_before_joining_targets_the_epoch_after_the_rooms() {
    let mut c = client();
    c.rotate(Millis(0), &other_key(), false).unwrap();
    c.handle_start(Millis(0));
    opened(&mut c, Millis(50));
    c.handle_frame(Millis(60), WALL, &welcome());
    c.handle_frame(Millis(60), WALL, &key_epoch(4));
    caught_up(&mut c, Millis(70), 0, 0);
    let (epoch, ..) = rotate_sent(&drain(&mut c)).expect("ROTATE");
    assert_eq!(epoch, 5);
}

/// A member made read-only while its rotation waits: the rotation fails (`READ_ONLY`) and
/// nothing stays held.
#[test]
fn a_rotation_fails_when_the_member_becomes_read_only() {
    let mut c = live();
    c.handle_local_op(Millis(80), WALL, create("x")).unwrap();
    c.handle_flush(Millis(80));
    drain(&mut c);
    c.rotate(Millis(90), &other_key(), false).unwrap();
    c.handle_frame(
        Millis(100),
        WALL,
        &frame(RelayFrame::Access {
            access: Access::ReadOnly,
        }),
    );
    c.handle_frame(
        Millis(110),
        WALL,
        &frame(RelayFrame::Ack {
            session: SessionId([1; 16]),
            counter: 1,
            seq: 1,
            relay_time: WALL.0,
            duplicate: false,
        }),
    );
    let outs = drain(&mut c);
    assert!(
        events(&outs)
            .iter()
            .any(|e| matches!(e, ClientEvent::RotationFailed { code, .. } if code == "READ_ONLY")),
        "{outs:?}"
    );
    assert!(rotate_sent(&outs).is_none());
}

/// A change refused as sealed under another key epoch (`REFUSED ROTATED`) is kept, and the
/// client connects again to learn the room's epoch.
#[test]
fn a_change_refused_for_its_epoch_is_kept_and_the_client_reconnects() {
    let mut c = live();
    c.handle_local_op(Millis(80), WALL, create("x")).unwrap();
    c.handle_flush(Millis(80));
    drain(&mut c);
    c.handle_frame(Millis(90), WALL, &refused(1, RelayErrorCode::Rotated, 0));
    let outs = drain(&mut c);
    assert!(!events(&outs)
        .iter()
        .any(|e| matches!(e, ClientEvent::Rejected { .. })));
    assert!(outs.contains(&Output::Close {
        code: wire::CLOSE_NORMAL
    }));
    assert_eq!(c.pending_changes(), 1);
}

const THIRD_SECRET: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8";

/// Two rotations at once: another member's, with a hand-over, is carried out first. This
/// client's own fails (`ROTATED`), and it goes on under the key handed over, never under
/// its own.
#[test]
fn a_rotation_beaten_by_another_members_hand_over_fails_and_takes_the_handed_key() {
    let mut c = live_member(2);
    drain(&mut c);
    c.rotate(Millis(100), &other_key(), false).unwrap();
    assert!(rotate_sent(&drain(&mut c)).is_some());
    c.handle_frame(Millis(101), WALL, &key_frame(1, THIRD_SECRET));
    c.handle_frame(Millis(102), WALL, &rotated_error());
    let outs = drain(&mut c);
    assert!(events(&outs)
        .iter()
        .any(|e| matches!(e, ClientEvent::RotationFailed { code, .. } if code == "ROTATED")));
    assert!(events(&outs)
        .iter()
        .any(|e| matches!(e, ClientEvent::KeyHandedOver { epoch: 1, .. })));
    let third = RoomKeys::derive(
        &RoomKey::from_secret(THIRD_SECRET).unwrap(),
        RoomId::new("room").unwrap(),
    );
    assert!(retries_later(&mut c));
    opened(&mut c, Millis(60_010));
    let hello = sent(&drain(&mut c));
    assert!(
        matches!(&hello[..], [ClientFrame::Hello { member_key, .. }] if *member_key == third.member_key())
    );
    c.handle_frame(Millis(60_020), WALL, &welcome());
    c.handle_frame(Millis(60_020), WALL, &key_epoch(1));
    caught_up(&mut c, Millis(60_030), 0, 0);
    assert!(!events(&drain(&mut c))
        .iter()
        .any(|e| matches!(e, ClientEvent::Rotated { .. })));
    assert_eq!(c.fingerprint(), third.fingerprint());
    assert_eq!(c.status(), &Status::Live);
}

/// The answer to a `ROTATE` was lost, and the room was deleted meanwhile (it was empty):
/// the `HELLO` under the new key creates it again at epoch 0. That `WELCOME` proves the new
/// key; the rotation is complete at the epoch the relay says (0), and publishes go out.
#[test]
fn a_rotation_in_doubt_completes_at_the_epoch_the_relay_says() {
    let mut c = live();
    c.rotate(Millis(100), &other_key(), false).unwrap();
    assert!(rotate_sent(&drain(&mut c)).is_some());
    c.handle_socket_closed(Millis(110), 1006);
    assert!(retries_later(&mut c));
    opened(&mut c, Millis(60_010));
    drain(&mut c);
    c.handle_local_op(Millis(60_015), WALL, create("y"))
        .unwrap();
    c.handle_flush(Millis(60_015));
    c.handle_frame(Millis(60_020), WALL, &welcome());
    caught_up(&mut c, Millis(60_030), 0, 0);
    let outs = drain(&mut c);
    assert!(events(&outs).contains(&ClientEvent::Rotated { epoch: 0 }));
    assert_eq!(published_epochs(&outs), [0]);
    assert_eq!(c.fingerprint(), other_keys().fingerprint());
}

/// Changes restored from storage under another epoch of the same key are sealed again at
/// the room's epoch even when the client's own epoch does not change (a fresh session in a
/// room created again at 0), instead of being refused again and again.
#[test]
fn restored_changes_of_another_epoch_are_sealed_again_at_the_rooms() {
    let mut old = client_with(3);
    old.handle_start(Millis(0));
    opened(&mut old, Millis(50));
    old.handle_frame(Millis(60), WALL, &welcome());
    old.handle_frame(Millis(60), WALL, &key_epoch(1));
    caught_up(&mut old, Millis(70), 0, 0);
    old.handle_local_op(Millis(80), WALL, create("z")).unwrap();
    old.handle_flush(Millis(80));
    let stored = old.outbox_envelopes();
    assert_eq!(EnvelopeHeader::parse(&stored[0]).unwrap().0.key_epoch, 1);

    let mut c = client_with(4);
    c.adopt_outboxes(WALL, vec![("gone".to_owned(), stored)], None);
    c.handle_start(Millis(0));
    opened(&mut c, Millis(50));
    c.handle_frame(Millis(60), WALL, &welcome());
    caught_up(&mut c, Millis(70), 0, 0);
    assert_eq!(published_epochs(&drain(&mut c)), [0]);
}
