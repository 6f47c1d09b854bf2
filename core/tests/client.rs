//! The connection machine's rules, one at a time, with a scripted relay and fake time.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "test code: a failed unwrap is a failed test"
)]

use sealsync_core::backoff::Backoff;
use sealsync_core::client::{Client, ClientConfig, ClientEvent, Output, Status};
use sealsync_core::kdf::{RoomKey, RoomKeys};
use sealsync_core::merge::Op;
use sealsync_core::wire::{self, ClientFrame, RelayErrorCode, RelayFrame, VerifierState};
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

fn client_with(session: u8) -> Client {
    let config = ClientConfig::new(
        RoomId::new("room").unwrap(),
        DeviceId([session; 16]),
        SessionId([session; 16]),
    );
    Client::new(config, keys(), Box::new(Counter(u64::from(session))))
}

fn client() -> Client {
    client_with(1)
}

fn drain(c: &mut Client) -> Vec<Output> {
    std::iter::from_fn(|| c.poll()).collect()
}

fn sent(outs: &[Output]) -> Vec<ClientFrame> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Send(b) => Some(ClientFrame::decode(b).unwrap()),
            _ => None,
        })
        .collect()
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

fn welcome() -> Vec<u8> {
    frame(RelayFrame::Welcome {
        relay_time: WALL.0,
        head_seq: 0,
        snapshot_seq: 0,
        presence: 1,
        verifier_state: VerifierState::Created,
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
fn hello_carries_the_verifier_the_channel_and_the_cursor() {
    let mut c = client();
    c.handle_start(Millis(0));
    assert_eq!(drain(&mut c)[0], Output::Connect);
    c.handle_socket_opened(Millis(10));
    let frames = sent(&drain(&mut c));
    let ClientFrame::Hello {
        after_seq,
        verifier,
        channels,
    } = &frames[0]
    else {
        panic!("first frame is {:?}", frames[0]);
    };
    assert_eq!(*after_seq, 0);
    assert_eq!(*verifier, keys().verifier());
    assert_eq!(channels, &vec![keys().channel_tag("main")]);
}

#[test]
fn local_changes_wait_in_the_outbox_until_acknowledged() {
    let mut c = client();
    c.handle_start(Millis(0));
    let changes = c.handle_local_op(Millis(1), WALL, create("a")).unwrap();
    assert_eq!(changes.len(), 1, "applies at once, even offline");
    assert_eq!(c.replica().get("tasks").len(), 1);
    assert_eq!(c.outbox_len(), 1);
    c.handle_socket_opened(Millis(10));
    c.handle_frame(Millis(20), WALL, &welcome());
    assert!(
        !sent(&drain(&mut c))
            .iter()
            .any(|f| matches!(f, ClientFrame::Publish { .. })),
        "nothing is published before the catch-up ends"
    );
    c.handle_frame(
        Millis(30),
        WALL,
        &frame(RelayFrame::CaughtUp { head_seq: 0 }),
    );
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
    c.handle_socket_opened(wake.unwrap().plus(5));
    c.handle_frame(wake.unwrap().plus(6), WALL, &welcome());
    c.handle_frame(
        wake.unwrap().plus(7),
        WALL,
        &frame(RelayFrame::CaughtUp { head_seq: 0 }),
    );
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
    before
        .handle_local_op(Millis(1), WALL, create("a"))
        .unwrap();
    before
        .handle_local_op(Millis(2), WALL, create("b"))
        .unwrap();
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
    c.handle_socket_opened(Millis(50));
    c.handle_frame(Millis(60), WALL, &welcome());
    c.handle_frame(
        Millis(70),
        WALL,
        &frame(RelayFrame::CaughtUp { head_seq: 0 }),
    );
    drain(&mut c);
    c
}

#[test]
fn a_gap_in_sequences_asks_for_a_sync() {
    let mut sender = live();
    sender
        .handle_local_op(Millis(200), WALL, create("a"))
        .unwrap();
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
    assert_eq!(frames, vec![ClientFrame::Sync { after_seq: 0 }]);
    assert_eq!(c.last_seq(), 0, "the cursor stays before the hole");
    assert_eq!(
        c.replica().get("tasks").len(),
        1,
        "the event itself still applies"
    );
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
        c.handle_socket_opened(Millis(10));
        drain(&mut c);
        c.handle_frame(
            Millis(20),
            WALL,
            &frame(RelayFrame::Error {
                code: input,
                fatal: true,
                message: "no".into(),
            }),
        );
        assert_eq!(c.status(), &expected);
        assert!(c.status().is_terminal());
        c.handle_socket_closed(Millis(30), 4001);
        c.handle_timer(Millis(60_000));
        c.handle_online(Millis(60_001));
        assert!(
            !drain(&mut c).contains(&Output::Connect),
            "no retry after {expected:?}"
        );
    }
    // The close code alone is enough too.
    let mut c = client();
    c.handle_start(Millis(0));
    c.handle_socket_opened(Millis(10));
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
        c.handle_socket_closed(now, 1006);
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
    c.handle_socket_opened(now);
    c.handle_frame(now, WALL, &welcome());
    c.handle_frame(now, WALL, &frame(RelayFrame::CaughtUp { head_seq: 0 }));
    c.handle_socket_closed(now.plus(1_000), 1006);
    let Some(Status::Reconnecting { in_ms, .. }) = statuses(&drain(&mut c)).pop() else {
        panic!()
    };
    assert!(in_ms >= 15_000, "still backing off: {in_ms}");
    // …one that stays healthy for 10 s does.
    now = now.plus(1_000 + in_ms);
    c.handle_timer(now);
    c.handle_socket_opened(now);
    c.handle_frame(now, WALL, &welcome());
    c.handle_frame(now, WALL, &frame(RelayFrame::CaughtUp { head_seq: 0 }));
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
    c.handle_socket_closed(Millis(10), 1006);
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
fn another_channels_event_keeps_the_sequence_but_is_not_applied() {
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
    assert!(c.replica().get("tasks").is_empty());
    assert!(
        sent(&drain(&mut c)).is_empty(),
        "no SYNC: nothing is missing"
    );
}
