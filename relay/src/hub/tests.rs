//! The room's rules on the host, against [`MemoryStore`].

use super::*;
use crate::store::MemoryStore;
use sealsync_core::envelope::EnvelopeKind;
use sealsync_core::wire::{ClientFrame, VERSION};
use sealsync_core::SessionId;

const T0: u64 = 1_700_000_000_000;

fn tag(n: u8) -> ChannelTag {
    ChannelTag([n; 16])
}

/// A well-formed envelope (header + 80 opaque bytes): the relay never decrypts.
fn envelope(kind: EnvelopeKind, channel: ChannelTag, session: u8, counter: u64) -> Vec<u8> {
    let header = EnvelopeHeader {
        kind,
        key_epoch: 0,
        channel,
        session: SessionId([session; 16]),
        counter,
        nonce: [0; 12],
        commitment: [0; 32],
    };
    let mut out = Vec::new();
    header.write_to(&mut out);
    out.extend_from_slice(&[0xAB; 80]);
    out
}

struct Room {
    store: MemoryStore,
    limits: Limits,
    peers: BTreeMap<PeerId, Peer>,
}

impl Room {
    fn new() -> Self {
        Self {
            store: MemoryStore::default(),
            limits: Limits::default(),
            peers: BTreeMap::new(),
        }
    }

    fn open(&mut self, id: PeerId) {
        self.peers.insert(id, Peer::new(id, &self.limits, T0));
    }

    fn raw(&mut self, from: PeerId, bytes: &[u8]) -> Vec<Out> {
        self.raw_at(from, bytes, T0)
    }

    fn raw_at(&mut self, from: PeerId, bytes: &[u8], now: u64) -> Vec<Out> {
        Hub::new(&mut self.store, &self.limits, &mut self.peers)
            .handle_frame(from, bytes, now)
            .unwrap()
    }

    fn frame(&mut self, from: PeerId, frame: &ClientFrame) -> Vec<Out> {
        self.raw(from, &frame.encode().unwrap())
    }

    fn frame_at(&mut self, from: PeerId, frame: &ClientFrame, now: u64) -> Vec<Out> {
        self.raw_at(from, &frame.encode().unwrap(), now)
    }

    fn text_at(&mut self, from: PeerId, now: u64) -> Vec<Out> {
        Hub::new(&mut self.store, &self.limits, &mut self.peers).handle_text(from, now)
    }

    fn hello(&mut self, from: PeerId, after_seq: u64, verifier: u8, channels: &[u8]) -> Vec<Out> {
        self.frame(
            from,
            &ClientFrame::Hello {
                after_seq,
                verifier: [verifier; 32],
                channels: channels.iter().map(|c| tag(*c)).collect(),
            },
        )
    }

    fn join(&mut self, id: PeerId, channels: &[u8]) {
        self.open(id);
        self.hello(id, 0, 7, channels);
    }

    fn publish(&mut self, from: PeerId, channel: u8, session: u8, counter: u64) -> Vec<Out> {
        let envelope = envelope(EnvelopeKind::Event, tag(channel), session, counter);
        self.frame(from, &ClientFrame::Publish { envelope })
    }
}

/// Frames sent to `to` (directly or by broadcast), decoded, in order.
fn to(outs: &[Out], to: PeerId) -> Vec<RelayFrame> {
    outs.iter()
        .filter_map(|o| match o {
            Out::Send { to: t, frame } if *t == to => Some(frame),
            Out::Broadcast { to: ts, frame } if ts.contains(&to) => Some(frame),
            _ => None,
        })
        .map(|f| RelayFrame::decode(f).unwrap())
        .collect()
}

fn closes(outs: &[Out]) -> Vec<(PeerId, u16)> {
    outs.iter()
        .filter_map(|o| match o {
            Out::Close { to, code, .. } => Some((*to, *code)),
            _ => None,
        })
        .collect()
}

fn error_code(frame: &RelayFrame) -> Option<(RelayErrorCode, bool)> {
    match frame {
        RelayFrame::Error { code, fatal, .. } => Some((*code, *fatal)),
        _ => None,
    }
}

/// A `REFUSED`'s (session byte, counter, code, retry_after_ms).
fn refused(frame: &RelayFrame) -> Option<(u8, u64, RelayErrorCode, u32)> {
    match frame {
        RelayFrame::Refused {
            session,
            counter,
            code,
            retry_after_ms,
            ..
        } => Some((session.0[0], *counter, *code, *retry_after_ms)),
        _ => None,
    }
}

fn publish_frame(channel: u8, session: u8, counter: u64) -> ClientFrame {
    ClientFrame::Publish {
        envelope: envelope(EnvelopeKind::Event, tag(channel), session, counter),
    }
}

#[test]
fn first_hello_creates_the_verifier_later_ones_must_match() {
    let mut room = Room::new();
    room.open(1);
    let outs = room.hello(1, 0, 7, &[1]);
    assert_eq!(
        to(&outs, 1),
        [
            RelayFrame::Welcome {
                relay_time: T0,
                head_seq: 0,
                snapshot_seq: 0,
                presence: 1,
                verifier_state: VerifierState::Created,
                access: Access::Write,
                limits: room.limits.announced(),
            },
            RelayFrame::CaughtUp { head_seq: 0 },
        ]
    );
    room.open(2);
    let outs = room.hello(2, 0, 7, &[1]);
    assert!(matches!(
        to(&outs, 2)[0],
        RelayFrame::Welcome {
            presence: 2,
            verifier_state: VerifierState::Matched,
            ..
        }
    ));
    assert_eq!(to(&outs, 1), [RelayFrame::Presence { count: 2 }]);

    room.open(3);
    let outs = room.hello(3, 0, 8, &[1]);
    assert_eq!(
        to(&outs, 3).iter().map(error_code).collect::<Vec<_>>(),
        [Some((RelayErrorCode::WrongVerifier, true))]
    );
    assert_eq!(closes(&outs), [(3, 4001)]);
    assert!(!room.peers.contains_key(&3));
    // The refused socket never joined: nobody hears a presence change.
    assert!(to(&outs, 1).is_empty());
}

#[test]
fn frames_before_hello_get_not_joined_and_a_second_hello_is_refused() {
    let mut room = Room::new();
    room.open(1);
    let outs = room.publish(1, 1, 9, 1);
    assert_eq!(
        error_code(&to(&outs, 1)[0]),
        Some((RelayErrorCode::NotJoined, false))
    );
    assert_eq!(room.store.head_seq().unwrap(), 0);
    room.hello(1, 0, 7, &[1]);
    let outs = room.hello(1, 0, 7, &[1]);
    assert_eq!(
        error_code(&to(&outs, 1)[0]),
        Some((RelayErrorCode::BadFrame, false))
    );
}

#[test]
fn publish_is_acked_stored_and_sent_to_every_joined_socket_but_the_sender() {
    let mut room = Room::new();
    room.join(1, &[1]);
    room.join(2, &[1, 2]);
    room.join(3, &[2]);
    room.open(4); // not joined
    let outs = room.publish(1, 1, 9, 1);
    let RelayFrame::Ack {
        seq,
        duplicate,
        counter,
        session,
        relay_time,
    } = to(&outs, 1)[0].clone()
    else {
        panic!("expected ACK");
    };
    assert_eq!(
        (seq, duplicate, counter, session, relay_time),
        (1, false, 1, SessionId([9; 16]), T0)
    );
    assert_eq!(
        to(&outs, 1).len(),
        1,
        "the sender does not get its own event"
    );
    assert!(matches!(
        to(&outs, 2)[..],
        [RelayFrame::Event { seq: 1, .. }]
    ));
    assert!(
        matches!(to(&outs, 3)[..], [RelayFrame::Event { seq: 1, .. }]),
        "stored events go to every channel, so sequences have no holes"
    );
    assert!(to(&outs, 4).is_empty(), "not joined");
    let outs = room.publish(3, 2, 8, 1);
    assert!(matches!(
        to(&outs, 2)[..],
        [RelayFrame::Event { seq: 2, .. }]
    ));
    assert!(matches!(
        to(&outs, 1)[..],
        [RelayFrame::Event { seq: 2, .. }]
    ));
}

#[test]
fn republished_envelope_is_reacked_with_its_stored_seq() {
    let mut room = Room::new();
    room.join(1, &[1]);
    room.join(2, &[1]);
    room.publish(1, 1, 9, 1);
    room.publish(1, 1, 9, 2);
    let outs = room.publish(1, 1, 9, 1);
    assert!(matches!(
        to(&outs, 1)[..],
        [RelayFrame::Ack {
            seq: 1,
            duplicate: true,
            relay_time: T0,
            ..
        }]
    ));
    assert!(
        to(&outs, 2).is_empty(),
        "a duplicate is not broadcast again"
    );
    assert_eq!(room.store.head_seq().unwrap(), 2);
}

#[test]
fn catch_up_sends_snapshot_then_later_events_then_caught_up() {
    let mut room = Room::new();
    room.join(1, &[1]);
    for counter in 1..=5 {
        room.publish(1, if counter == 4 { 2 } else { 1 }, 9, counter);
    }
    let snapshot = envelope(EnvelopeKind::Snapshot, tag(1), 9, 6);
    let outs = room.frame(
        1,
        &ClientFrame::SnapshotPut {
            upto_seq: 3,
            envelope: snapshot.clone(),
        },
    );
    assert_eq!(to(&outs, 1), [RelayFrame::SnapshotStored { seq: 3 }]);

    room.open(2);
    let frames = to(&room.hello(2, 1, 7, &[1]), 2);
    assert!(matches!(
        frames[0],
        RelayFrame::Welcome {
            head_seq: 5,
            snapshot_seq: 3,
            ..
        }
    ));
    assert_eq!(
        frames[1],
        RelayFrame::Snapshot {
            seq: 3,
            envelope: snapshot
        }
    );
    // Event 4 is on channel 2, which peer 2 does not follow: it still gets it (no holes).
    assert!(matches!(frames[2], RelayFrame::Event { seq: 4, .. }));
    assert!(matches!(frames[3], RelayFrame::Event { seq: 5, .. }));
    assert_eq!(frames[4], RelayFrame::CaughtUp { head_seq: 5 });
    assert_eq!(frames.len(), 5);

    // Past the snapshot: no snapshot, only what is after after_seq.
    room.open(3);
    let frames = to(&room.hello(3, 4, 7, &[1, 2]), 3);
    assert_eq!(frames.len(), 3);
    assert!(matches!(frames[1], RelayFrame::Event { seq: 5, .. }));

    // SYNC repeats the same routine.
    let frames = to(&room.frame(3, &ClientFrame::Sync { after_seq: 3 }), 3);
    let seqs: Vec<_> = frames
        .iter()
        .filter_map(|f| match f {
            RelayFrame::Event { seq, .. } => Some(*seq),
            _ => None,
        })
        .collect();
    assert_eq!(seqs, [4, 5]);
    assert_eq!(frames.last(), Some(&RelayFrame::CaughtUp { head_seq: 5 }));
}

#[test]
fn snapshot_put_is_checked_against_the_head_and_the_stored_snapshot() {
    let mut room = Room::new();
    room.join(1, &[1]);
    room.publish(1, 1, 9, 1);
    room.publish(1, 1, 9, 2);
    let snap = |c| envelope(EnvelopeKind::Snapshot, tag(1), 9, c);
    for bad in [0, 3] {
        let outs = room.frame(
            1,
            &ClientFrame::SnapshotPut {
                upto_seq: bad,
                envelope: snap(10),
            },
        );
        assert_eq!(
            error_code(&to(&outs, 1)[0]),
            Some((RelayErrorCode::BadFrame, false)),
            "upto_seq {bad}"
        );
    }
    room.frame(
        1,
        &ClientFrame::SnapshotPut {
            upto_seq: 2,
            envelope: snap(11),
        },
    );
    let outs = room.frame(
        1,
        &ClientFrame::SnapshotPut {
            upto_seq: 1,
            envelope: snap(12),
        },
    );
    assert_eq!(to(&outs, 1), [RelayFrame::SnapshotStored { seq: 2 }]);
    assert_eq!(room.store.snapshot().unwrap().unwrap().envelope, snap(11));
}

#[test]
fn history_cap_refuses_without_storing_until_a_snapshot_compacts() {
    let mut room = Room::new();
    room.limits.max_history_events = 2;
    room.join(1, &[1]);
    room.join(2, &[1]);
    room.publish(1, 1, 9, 1);
    room.publish(1, 1, 9, 2);
    let outs = room.publish(1, 1, 9, 3);
    assert_eq!(
        to(&outs, 1).iter().map(refused).collect::<Vec<_>>(),
        [Some((
            9,
            3,
            RelayErrorCode::HistoryFull,
            HISTORY_FULL_RETRY_MS
        ))],
        "the refusal names the change and says when to retry"
    );
    assert!(to(&outs, 2).is_empty());
    assert!(room.peers.contains_key(&1), "the socket stays");
    assert_eq!(room.store.head_seq().unwrap(), 2);
    let snap = envelope(EnvelopeKind::Snapshot, tag(1), 9, 4);
    room.frame(
        1,
        &ClientFrame::SnapshotPut {
            upto_seq: 2,
            envelope: snap,
        },
    );
    let outs = room.publish(1, 1, 9, 3);
    assert!(matches!(
        to(&outs, 1)[..],
        [RelayFrame::Ack {
            seq: 3,
            duplicate: false,
            ..
        }]
    ));
    // Compacted events still deduplicate.
    let outs = room.publish(1, 1, 9, 1);
    assert!(matches!(
        to(&outs, 1)[..],
        [RelayFrame::Ack {
            seq: 1,
            duplicate: true,
            ..
        }]
    ));
}

#[test]
fn oversize_publish_is_refused_and_the_socket_stays() {
    let mut room = Room::new();
    room.limits.max_frame_bytes = 200;
    room.join(1, &[1]);
    room.join(2, &[1]);
    let big = envelope(EnvelopeKind::Event, tag(1), 9, 1)
        .into_iter()
        .chain([0u8; 100])
        .collect();
    let outs = room.frame(1, &ClientFrame::Publish { envelope: big });
    assert_eq!(
        to(&outs, 1).iter().map(refused).collect::<Vec<_>>(),
        [Some((9, 1, RelayErrorCode::TooLarge, 0))]
    );
    assert!(closes(&outs).is_empty());
    assert!(to(&outs, 2).is_empty());
    assert_eq!(room.store.head_seq().unwrap(), 0);
    // The same socket's next change (within the limit) is stored and broadcast.
    let outs = room.publish(1, 1, 9, 2);
    assert!(matches!(
        to(&outs, 1)[..],
        [RelayFrame::Ack {
            seq: 1,
            counter: 2,
            ..
        }]
    ));
    assert!(matches!(
        to(&outs, 2)[..],
        [RelayFrame::Event { seq: 1, .. }]
    ));
}

#[test]
fn an_oversize_frame_that_names_no_change_closes_1009_and_the_others_hear_presence() {
    let mut room = Room::new();
    room.limits.max_frame_bytes = 200;
    room.join(1, &[1]);
    room.join(2, &[1]);
    room.join(3, &[1]);
    // A snapshot is not a change the client can drop: the socket goes.
    let snapshot = envelope(EnvelopeKind::Snapshot, tag(1), 9, 1)
        .into_iter()
        .chain([0u8; 100])
        .collect();
    let outs = room.frame(
        1,
        &ClientFrame::SnapshotPut {
            upto_seq: 1,
            envelope: snapshot,
        },
    );
    assert_eq!(
        to(&outs, 1).iter().map(error_code).collect::<Vec<_>>(),
        [Some((RelayErrorCode::TooLarge, true))]
    );
    assert_eq!(closes(&outs), [(1, 1009)]);
    assert_eq!(to(&outs, 2), [RelayFrame::Presence { count: 2 }]);
    // A PUBLISH whose envelope header does not parse names no change either.
    let mut garbage = vec![VERSION, 0x02];
    garbage.extend_from_slice(&[0xFF; 300]);
    let outs = room.raw(2, &garbage);
    assert_eq!(
        to(&outs, 2).iter().map(error_code).collect::<Vec<_>>(),
        [Some((RelayErrorCode::TooLarge, true))]
    );
    assert_eq!(closes(&outs), [(2, 1009)]);
    assert_eq!(room.store.head_seq().unwrap(), 0);
    let outs = room.publish(3, 1, 8, 1);
    assert!(matches!(to(&outs, 3)[..], [RelayFrame::Ack { seq: 1, .. }]));
}

#[test]
fn the_frame_limit_never_exceeds_what_the_codec_reads() {
    // Limits built over the codec's ceiling (from_vars refuses them) still name an
    // oversize PUBLISH instead of failing to decode it.
    let mut room = Room::new();
    room.limits.max_frame_bytes = usize::MAX;
    room.join(1, &[1]);
    let mut frame = publish_frame(1, 9, 1).encode().unwrap();
    frame.resize(MAX_FRAME_LEN + 1, 0);
    let outs = room.raw(1, &frame);
    assert_eq!(
        to(&outs, 1).iter().map(refused).collect::<Vec<_>>(),
        [Some((9, 1, RelayErrorCode::TooLarge, 0))]
    );
}

#[test]
fn an_empty_bucket_refuses_with_retry_hints_then_closes_a_flood_with_1008() {
    let mut room = Room::new();
    room.limits.rate_burst = 3;
    room.limits.rate_per_second = 2;
    room.join(1, &[1]); // HELLO takes the first token
    room.join(2, &[1]);
    room.frame(1, &ClientFrame::Sync { after_seq: 0 });
    room.publish(1, 1, 9, 1);
    // The bucket is empty: a PUBLISH is refused by name with how long to wait.
    let outs = room.publish(1, 1, 9, 2);
    assert_eq!(
        to(&outs, 1).iter().map(refused).collect::<Vec<_>>(),
        [Some((9, 2, RelayErrorCode::RateLimited, 1000))]
    );
    assert!(to(&outs, 2).is_empty(), "not broadcast");
    assert_eq!(room.store.head_seq().unwrap(), 1, "not stored");
    // Any other frame gets a non-fatal ERROR and is dropped.
    let outs = room.frame(1, &ClientFrame::Sync { after_seq: 0 });
    assert_eq!(
        to(&outs, 1).iter().map(error_code).collect::<Vec<_>>(),
        [Some((RelayErrorCode::RateLimited, false))]
    );
    // So is a text message: it costs a token too.
    let outs = room.text_at(1, T0);
    assert_eq!(
        to(&outs, 1).iter().map(error_code).collect::<Vec<_>>(),
        [Some((RelayErrorCode::RateLimited, false))]
    );
    assert!(closes(&outs).is_empty());
    // A whole burst of ignored hints: the relay gives up on the socket.
    let outs = room.publish(1, 1, 9, 2);
    assert_eq!(
        to(&outs, 1).iter().map(error_code).collect::<Vec<_>>(),
        [Some((RelayErrorCode::RateLimited, true))]
    );
    assert_eq!(closes(&outs), [(1, 1008)]);
    assert_eq!(to(&outs, 2), [RelayFrame::Presence { count: 1 }]);
}

#[test]
fn a_sender_that_waits_as_told_is_never_closed_a_flooder_is_and_the_room_keeps_serving() {
    let mut room = Room::new();
    room.limits.rate_burst = 4;
    room.limits.rate_per_second = 2;
    room.join(1, &[1]); // patient: waits as told
    room.join(2, &[1]); // flooder: ignores every hint
    room.join(3, &[1]); // honest: publishes now and then, reads everything
    let mut now = T0;
    let mut patient_refusals = 0;
    let mut flooder_closed = false;
    let mut flooder_counter = 1;
    let mut honest_counter = 1;
    let mut received_by_honest = Vec::new();
    for patient_counter in 1..=400 {
        // The patient sender sends its next change; refused, it waits as told and sends
        // the same change again.
        let mut outs = room.frame_at(1, &publish_frame(1, 1, patient_counter), now);
        if let Some(Some((1, counter, RelayErrorCode::RateLimited, wait))) =
            to(&outs, 1).first().map(refused)
        {
            assert_eq!(counter, patient_counter);
            patient_refusals += 1;
            now += u64::from(wait);
            outs = room.frame_at(1, &publish_frame(1, 1, patient_counter), now);
        }
        assert!(
            matches!(to(&outs, 1)[..], [RelayFrame::Ack { counter, .. }] if counter == patient_counter),
            "change {patient_counter} of the patient sender: {:?}",
            to(&outs, 1)
        );
        received_by_honest.extend(to(&outs, 3));
        // The flooder sends ten changes at each step.
        for _ in 0..10 {
            if flooder_closed {
                break;
            }
            let outs = room.frame_at(2, &publish_frame(1, 2, flooder_counter), now);
            flooder_counter += 1;
            received_by_honest.extend(to(&outs, 3));
            flooder_closed = closes(&outs) == [(2, 1008)];
        }
        // The honest peer publishes once in a while, well under the rate.
        if patient_counter % 10 == 0 {
            now += 1000;
            let outs = room.frame_at(3, &publish_frame(1, 3, honest_counter), now);
            assert!(
                matches!(to(&outs, 3)[..], [RelayFrame::Ack { .. }]),
                "{:?}",
                to(&outs, 3)
            );
            honest_counter += 1;
        }
    }
    assert!(patient_refusals > 0, "the test never reached the limit");
    assert!(flooder_closed, "the flooder was never closed");
    assert!(room.peers.contains_key(&1) && room.peers.contains_key(&3));
    assert!(!room.peers.contains_key(&2));
    // The honest peer received every change the others stored, in order, without a hole.
    let seqs: Vec<u64> = received_by_honest
        .iter()
        .filter_map(|f| match f {
            RelayFrame::Event { seq, .. } => Some(*seq),
            _ => None,
        })
        .collect();
    let head = room.store.head_seq().unwrap();
    let own = honest_counter - 1;
    assert_eq!(seqs.len() as u64, head - own);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn a_frame_from_a_gone_socket_is_ignored() {
    let mut room = Room::new();
    assert!(room.publish(5, 1, 9, 1).is_empty());
    assert!(room.text_at(5, T0).is_empty());
}

#[test]
fn undecodable_frames_are_bad_frame_but_another_version_is_fatal() {
    let mut room = Room::new();
    room.join(1, &[1]);
    for garbage in [&[][..], &[VERSION], &[VERSION, 0x7f], &[VERSION, 3, 0]] {
        let outs = room.raw(1, garbage);
        assert_eq!(
            to(&outs, 1).iter().map(error_code).collect::<Vec<_>>(),
            [Some((RelayErrorCode::BadFrame, false))],
            "{garbage:?}"
        );
        assert!(closes(&outs).is_empty());
    }
    // A text message that is not the heartbeat: BAD_FRAME, the socket stays.
    let outs = room.text_at(1, T0);
    assert_eq!(
        to(&outs, 1).iter().map(error_code).collect::<Vec<_>>(),
        [Some((RelayErrorCode::BadFrame, false))]
    );
    // Wire version 1 (or any other) is fatal.
    let outs = room.raw(1, &[1, 3, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(closes(&outs), [(1, 4400)]);
    let outs = room.text_at(1, T0);
    assert!(outs.is_empty(), "peer 1 is gone after the fatal error");
}

#[test]
fn wrong_kind_is_refused_and_ephemerals_are_never_stored() {
    let mut room = Room::new();
    room.join(1, &[1]);
    room.join(2, &[1]);
    let snap = envelope(EnvelopeKind::Snapshot, tag(1), 9, 1);
    let mut frame = vec![VERSION, 0x02];
    frame.extend_from_slice(&snap);
    let outs = room.raw(1, &frame);
    assert_eq!(
        error_code(&to(&outs, 1)[0]),
        Some((RelayErrorCode::WrongKind, false))
    );
    let eph = envelope(EnvelopeKind::Ephemeral, tag(1), 9, 2);
    let outs = room.frame(
        1,
        &ClientFrame::Ephemeral {
            envelope: eph.clone(),
        },
    );
    assert_eq!(to(&outs, 2), [RelayFrame::Ephemeral { envelope: eph }]);
    assert!(to(&outs, 1).is_empty());
    assert_eq!(room.store.head_seq().unwrap(), 0);
}

#[test]
fn pending_guests_are_refused_by_name_and_welcome_says_so() {
    let mut room = Room::new();
    room.join(2, &[1]);
    room.open(1);
    room.peers.get_mut(&1).unwrap().pending = true;
    let outs = room.hello(1, 0, 7, &[1]);
    assert!(matches!(
        to(&outs, 1)[0],
        RelayFrame::Welcome {
            access: Access::Pending,
            ..
        }
    ));
    let outs = room.publish(1, 1, 9, 1);
    assert_eq!(
        to(&outs, 1).iter().map(refused).collect::<Vec<_>>(),
        [Some((9, 1, RelayErrorCode::GuestPending, 0))]
    );
    assert_eq!(room.store.head_seq().unwrap(), 0);
    // Snapshots and ephemeral frames get a non-fatal ERROR, as before.
    let outs = room.frame(
        1,
        &ClientFrame::SnapshotPut {
            upto_seq: 1,
            envelope: envelope(EnvelopeKind::Snapshot, tag(1), 9, 2),
        },
    );
    assert_eq!(
        to(&outs, 1).iter().map(error_code).collect::<Vec<_>>(),
        [Some((RelayErrorCode::GuestPending, false))]
    );
    let outs = room.frame(
        1,
        &ClientFrame::Ephemeral {
            envelope: envelope(EnvelopeKind::Ephemeral, tag(1), 9, 3),
        },
    );
    assert_eq!(
        to(&outs, 1).iter().map(error_code).collect::<Vec<_>>(),
        [Some((RelayErrorCode::GuestPending, false))]
    );
    assert!(to(&outs, 2).is_empty());
    assert!(room.peers.contains_key(&1), "the socket stays");
}

#[test]
fn a_read_only_role_is_refused_by_name_until_its_role_changes() {
    let mut room = Room::new();
    room.join(2, &[1]);
    room.open(1);
    room.peers.get_mut(&1).unwrap().role = Some(crate::auth::READ_ONLY_ROLE.into());
    let outs = room.hello(1, 0, 7, &[1]);
    assert!(matches!(
        to(&outs, 1)[0],
        RelayFrame::Welcome {
            access: Access::ReadOnly,
            ..
        }
    ));
    let outs = room.publish(1, 1, 9, 1);
    assert_eq!(
        to(&outs, 1).iter().map(refused).collect::<Vec<_>>(),
        [Some((9, 1, RelayErrorCode::ReadOnly, 0))]
    );
    assert!(to(&outs, 2).is_empty(), "nothing reaches the others");
    assert_eq!(room.store.head_seq().unwrap(), 0, "nothing is stored");
    assert!(room.peers.contains_key(&1), "the socket stays");
    // A snapshot gets a non-fatal ERROR; an ephemeral frame (a cursor) goes through.
    room.publish(2, 1, 8, 1);
    let outs = room.frame(
        1,
        &ClientFrame::SnapshotPut {
            upto_seq: 1,
            envelope: envelope(EnvelopeKind::Snapshot, tag(1), 9, 2),
        },
    );
    assert_eq!(
        to(&outs, 1).iter().map(error_code).collect::<Vec<_>>(),
        [Some((RelayErrorCode::ReadOnly, false))]
    );
    assert_eq!(room.store.snapshot_seq().unwrap(), 0);
    let outs = room.frame(
        1,
        &ClientFrame::Ephemeral {
            envelope: envelope(EnvelopeKind::Ephemeral, tag(1), 9, 3),
        },
    );
    assert!(matches!(to(&outs, 2)[..], [RelayFrame::Ephemeral { .. }]));
    room.peers.get_mut(&1).unwrap().role = Some("editor".into());
    let outs = room.publish(1, 1, 9, 1);
    assert!(matches!(to(&outs, 1)[0], RelayFrame::Ack { seq: 2, .. }));
}

#[test]
fn a_change_stored_before_access_was_lost_is_acked_not_refused() {
    // The ACK of a stored change was lost with the socket; meanwhile the user became a
    // viewer. The resent change is acknowledged: refusing it would make its sender roll
    // back what the room has.
    let mut room = Room::new();
    room.join(1, &[1]);
    room.publish(1, 1, 9, 1);
    room.peers.get_mut(&1).unwrap().role = Some(crate::auth::READ_ONLY_ROLE.into());
    let outs = room.publish(1, 1, 9, 1);
    assert!(matches!(
        to(&outs, 1)[..],
        [RelayFrame::Ack {
            seq: 1,
            duplicate: true,
            ..
        }]
    ));
    room.peers.get_mut(&1).unwrap().pending = true;
    let outs = room.publish(1, 1, 9, 1);
    assert!(matches!(
        to(&outs, 1)[..],
        [RelayFrame::Ack {
            duplicate: true,
            ..
        }]
    ));
    let outs = room.publish(1, 1, 9, 2);
    assert_eq!(
        to(&outs, 1).iter().map(refused).collect::<Vec<_>>(),
        [Some((9, 2, RelayErrorCode::GuestPending, 0))],
        "a pending guest's access comes before its role"
    );
}

#[test]
fn presence_for_a_client_leaves_out_its_own_sockets() {
    let mut room = Room::new();
    assert_eq!(presence_for(&room.peers, Some("me")), 0, "a fresh room");
    room.join(1, &[1]);
    room.join(2, &[1]);
    room.join(3, &[1]);
    room.open(4); // not joined: never counted
    room.peers.get_mut(&1).unwrap().client = Some("me".into());
    room.peers.get_mut(&2).unwrap().client = Some("me".into());
    room.peers.get_mut(&3).unwrap().client = Some("you".into());
    assert_eq!(presence_for(&room.peers, None), 3);
    assert_eq!(presence_for(&room.peers, Some("me")), 1);
    assert_eq!(presence_for(&room.peers, Some("you")), 2);
    assert_eq!(presence_for(&room.peers, Some("nobody")), 3);
}

#[test]
fn clients_may_send_only_client_frames() {
    // The frames a client may send are HELLO, PUBLISH, SYNC, SNAPSHOT_PUT and EPHEMERAL;
    // a relay-to-client frame (a forged NOTIFY, EVENT or ERROR) is refused as BAD_FRAME and
    // reaches nobody.
    let mut room = Room::new();
    room.join(1, &[1]);
    room.join(2, &[1]);
    let forged = [
        RelayFrame::Notify {
            json: r#"{"kind":"admit"}"#.into(),
        },
        RelayFrame::Event {
            seq: 1,
            relay_time: 0,
            envelope: envelope(EnvelopeKind::Event, tag(1), 9, 1),
        },
        RelayFrame::Presence { count: 99 },
    ];
    for frame in forged {
        let outs = room.raw(1, &frame.encode().unwrap());
        assert_eq!(
            error_code(&to(&outs, 1)[0]),
            Some((RelayErrorCode::BadFrame, false)),
            "{frame:?}"
        );
        assert!(to(&outs, 2).is_empty(), "{frame:?} reached another socket");
    }
    assert_eq!(room.store.head_seq().unwrap(), 0);
    assert!(room.peers.contains_key(&1), "the socket stays");
}

#[test]
fn leaving_tells_the_others_only_when_the_socket_had_joined() {
    let mut room = Room::new();
    room.join(1, &[1]);
    room.join(2, &[1]);
    room.open(3);
    assert!(leave(&mut room.peers, 3).is_empty());
    let outs = leave(&mut room.peers, 2);
    assert_eq!(to(&outs, 1), [RelayFrame::Presence { count: 1 }]);
    assert!(leave(&mut room.peers, 2).is_empty(), "idempotent");
    assert_eq!(presence(&room.peers), 1);
}

#[test]
fn room_full_and_refusal_frame() {
    let limits = Limits {
        max_sockets_per_room: 2,
        ..Limits::default()
    };
    assert!(!room_full(1, &limits));
    assert!(room_full(2, &limits));
    let frame = RelayFrame::decode(&refusal(RelayErrorCode::RoomFull, "full")).unwrap();
    assert_eq!(error_code(&frame), Some((RelayErrorCode::RoomFull, true)));
}

#[test]
fn error_messages_are_bounded_on_a_char_boundary() {
    let long = "é".repeat(1000);
    assert!(long.len() > MAX_ERROR_MESSAGE);
    let b = bounded(long);
    assert!(b.len() <= MAX_ERROR_MESSAGE);
    assert!(b.len() >= MAX_ERROR_MESSAGE - 1);
}

#[test]
fn presence_in_a_big_room_is_coalesced() {
    let mut room = Room::new();
    let big = u64::from(PRESENCE_COALESCE_ABOVE) + 1;
    for id in 1..=big {
        room.join(id, &[1]);
    }
    room.open(big + 1);
    let outs = room.hello(big + 1, 0, 7, &[1]);
    assert!(outs.contains(&Out::PresenceChanged));
    assert!(
        to(&outs, 1).is_empty(),
        "no PRESENCE per join in a big room"
    );
    assert!(matches!(
        to(&outs, big + 1)[0],
        RelayFrame::Welcome { presence, .. } if u64::from(presence) == big + 1
    ));
    assert_eq!(leave(&mut room.peers, 2), [Out::PresenceChanged]);
    // The coalesced update goes to every joined socket with the current count.
    let Some(Out::Broadcast { to: ids, frame }) = presence_now(&room.peers) else {
        panic!("expected a broadcast");
    };
    assert_eq!(ids.len() as u64, big);
    assert_eq!(
        RelayFrame::decode(&frame).unwrap(),
        RelayFrame::Presence {
            count: PRESENCE_COALESCE_ABOVE + 1
        }
    );
    // Back at the threshold, presence is immediate again.
    let outs = leave(&mut room.peers, 3);
    assert!(matches!(outs[..], [Out::Broadcast { .. }]));
}
