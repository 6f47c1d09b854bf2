//! The room's rules on the host, against [`MemoryStore`].

use super::*;
use crate::store::{MemoryStore, StoreError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sealsync_core::envelope::EnvelopeKind;
use sealsync_core::wire::{ClientFrame, VERSION};
use sealsync_core::{RoomKey, RoomKeys, SessionId};

const T0: u64 = 1_700_000_000_000;

const ROOM: &str = "team-42";

/// The keys of room [`ROOM`] under the secret `[who; 32]`: 7 is the room's members' key,
/// any other byte someone else's.
fn keys(who: u8) -> RoomKeys {
    let secret = URL_SAFE_NO_PAD.encode([who; 32]);
    RoomKeys::derive(
        &RoomKey::from_secret(&secret).unwrap(),
        RoomId::new(ROOM).unwrap(),
    )
}

/// A distinct challenge per socket (the glue draws random ones).
fn challenge_of(id: PeerId) -> [u8; CHALLENGE_LEN] {
    let mut c = [0x5A; CHALLENGE_LEN];
    c[..8].copy_from_slice(&id.to_be_bytes());
    c
}

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
    id: RoomId,
    store: MemoryStore,
    limits: Limits,
    peers: BTreeMap<PeerId, Peer>,
    budget: Budget,
}

impl Room {
    fn new() -> Self {
        Self::with_limits(Limits::default())
    }

    fn with_limits(limits: Limits) -> Self {
        Self {
            id: RoomId::new(ROOM).unwrap(),
            store: MemoryStore::default(),
            limits,
            peers: BTreeMap::new(),
            budget: Budget::default(),
        }
    }

    /// Accepts socket `id` at `T0`; its first frame is its CHALLENGE.
    fn open(&mut self, id: PeerId) {
        let outs = self.open_at(id, T0);
        assert_eq!(
            to(&outs, id),
            [RelayFrame::Challenge {
                challenge: challenge_of(id)
            }]
        );
    }

    fn open_at(&mut self, id: PeerId, now: u64) -> Vec<Out> {
        let peer = Peer::new(
            id,
            &self.limits,
            now,
            challenge_of(id),
            [id.to_le_bytes()[0]; 32],
        );
        accept(&mut self.peers, &self.limits, peer)
    }

    fn raw(&mut self, from: PeerId, bytes: &[u8]) -> Vec<Out> {
        self.raw_at(from, bytes, T0)
    }

    fn raw_at(&mut self, from: PeerId, bytes: &[u8], now: u64) -> Vec<Out> {
        Hub::new(
            &self.id,
            &mut self.store,
            &self.limits,
            &mut self.peers,
            &mut self.budget,
        )
        .handle_frame(from, bytes, now)
        .unwrap()
    }

    /// `SYNC` from `from` with the token of its last `CAUGHT_UP`, as a client that read it.
    fn sync(&mut self, from: PeerId, after_seq: u64) -> Vec<Out> {
        let token = self.peers.get(&from).map_or(0, |p| p.sync_token);
        self.frame(from, &ClientFrame::Sync { after_seq, token })
    }

    fn frame(&mut self, from: PeerId, frame: &ClientFrame) -> Vec<Out> {
        self.raw(from, &frame.encode().unwrap())
    }

    fn frame_at(&mut self, from: PeerId, frame: &ClientFrame, now: u64) -> Vec<Out> {
        self.raw_at(from, &frame.encode().unwrap(), now)
    }

    fn text_at(&mut self, from: PeerId, now: u64) -> Vec<Out> {
        Hub::new(
            &self.id,
            &mut self.store,
            &self.limits,
            &mut self.peers,
            &mut self.budget,
        )
        .handle_text(from, now)
    }

    /// `HELLO` from `from`, signed with `keys(who)` over the socket's own challenge.
    fn hello(&mut self, from: PeerId, after_seq: u64, who: u8, channels: &[u8]) -> Vec<Out> {
        let keys = keys(who);
        let frame = hello_frame(&keys, &challenge_of(from), after_seq, channels);
        self.frame(from, &frame)
    }

    /// A room whose sockets 1 to `big` joined, one more than [`PRESENCE_COALESCE_ABOVE`]:
    /// presence changes are coalesced. Returns `big` too.
    fn big() -> (Self, u64) {
        let mut room = Self::new();
        let big = u64::from(PRESENCE_COALESCE_ABOVE) + 1;
        for id in 1..=big {
            room.join(id, &[1]);
        }
        (room, big)
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

/// The frames sent to `to` (directly or by broadcast), decoded, in order, `CAUGHT_UP` tokens set to 0 (they are random; the tests of
/// paging read them with [`to_raw`]).
fn to(outs: &[Out], to: PeerId) -> Vec<RelayFrame> {
    to_raw(outs, to)
        .into_iter()
        .map(|f| match f {
            RelayFrame::CaughtUp { head_seq, .. } => RelayFrame::CaughtUp { head_seq, token: 0 },
            other => other,
        })
        .collect()
}

/// The frames sent to `to`, decoded, as sent.
fn to_raw(outs: &[Out], to: PeerId) -> Vec<RelayFrame> {
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

fn hello_frame(
    keys: &RoomKeys,
    challenge: &[u8; CHALLENGE_LEN],
    after_seq: u64,
    channels: &[u8],
) -> ClientFrame {
    ClientFrame::Hello {
        after_seq,
        member_key: keys.member_key(),
        proof: keys.prove(challenge),
        channels: channels.iter().map(|c| tag(*c)).collect(),
    }
}

fn publish_frame(channel: u8, session: u8, counter: u64) -> ClientFrame {
    ClientFrame::Publish {
        envelope: envelope(EnvelopeKind::Event, tag(channel), session, counter),
    }
}

#[test]
fn first_hello_creates_the_member_key_later_ones_must_match() {
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
            RelayFrame::CaughtUp {
                head_seq: 0,
                token: 0
            },
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
    assert_eq!(
        frames[4],
        RelayFrame::CaughtUp {
            head_seq: 5,
            token: 0
        }
    );
    assert_eq!(frames.len(), 5);

    // Past the snapshot: no snapshot, only what is after after_seq.
    room.open(3);
    let frames = to(&room.hello(3, 4, 7, &[1, 2]), 3);
    assert_eq!(frames.len(), 3);
    assert!(matches!(frames[1], RelayFrame::Event { seq: 5, .. }));

    // SYNC repeats the same routine.
    let frames = to(&room.sync(3, 3), 3);
    let seqs: Vec<_> = frames
        .iter()
        .filter_map(|f| match f {
            RelayFrame::Event { seq, .. } => Some(*seq),
            _ => None,
        })
        .collect();
    assert_eq!(seqs, [4, 5]);
    assert_eq!(
        frames.last(),
        Some(&RelayFrame::CaughtUp {
            head_seq: 5,
            token: 0
        })
    );
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
    room.sync(1, 0);
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
    let outs = room.sync(1, 0);
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
    let mut room = Room::with_limits(limits.clone());
    room.join(1, &[1]);
    room.open(2);
    room.open(3);
    assert!(
        !room_full(&room.peers, &limits),
        "unjoined sockets do not count"
    );
    room.hello(2, 0, 7, &[1]);
    assert!(room_full(&room.peers, &limits));
    // A socket accepted before the room filled up cannot join past the limit.
    let outs = room.hello(3, 0, 7, &[1]);
    assert_eq!(
        to(&outs, 3).iter().map(error_code).collect::<Vec<_>>(),
        [Some((RelayErrorCode::RoomFull, true))]
    );
    assert_eq!(closes(&outs), [(3, 4029)]);
    assert_eq!(presence(&room.peers), 2);
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
    let (mut room, big) = Room::big();
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

/// The same (session, counter) as [`envelope`] with other bytes.
fn other_envelope(channel: ChannelTag, session: u8, counter: u64) -> Vec<u8> {
    let mut e = envelope(EnvelopeKind::Event, channel, session, counter);
    let last = e.len() - 1;
    e[last] ^= 0xFF;
    e
}

fn error_message(frame: &RelayFrame) -> &str {
    match frame {
        RelayFrame::Error { message, .. } => message,
        other => panic!("expected ERROR, got {other:?}"),
    }
}

#[test]
fn every_socket_gets_its_own_challenge_first() {
    let mut room = Room::new();
    let outs = room.open_at(1, T0);
    assert_eq!(
        outs,
        [Out::Send {
            to: 1,
            frame: challenge_frame(&room.peers[&1]),
        }]
    );
    assert_eq!(
        RelayFrame::decode(&challenge_frame(&room.peers[&1])).unwrap(),
        RelayFrame::Challenge {
            challenge: challenge_of(1)
        }
    );
    room.open(2);
    assert_ne!(room.peers[&1].challenge, room.peers[&2].challenge);
    assert!(!room.peers[&1].joined);
    assert_eq!(room.peers[&1].opened_ms, T0);
}

#[test]
fn a_hello_replayed_on_another_socket_is_refused_and_the_member_joins() {
    let mut room = Room::new();
    room.join(1, &[1]);
    // An observer records socket 1's HELLO and replays it on its own socket 2.
    let recorded = hello_frame(&keys(7), &challenge_of(1), 0, &[1]);
    room.open(2);
    let outs = room.frame(2, &recorded);
    assert_eq!(
        to(&outs, 2).iter().map(error_code).collect::<Vec<_>>(),
        [Some((RelayErrorCode::WrongVerifier, true))]
    );
    assert_eq!(
        error_message(&to(&outs, 2)[0]),
        "the membership proof does not verify"
    );
    assert_eq!(closes(&outs), [(2, 4001)]);
    assert!(!room.peers.contains_key(&2));
    assert!(to(&outs, 1).is_empty(), "the member hears nothing");
    // A member on a new socket signs that socket's challenge and joins.
    room.open(3);
    let outs = room.hello(3, 0, 7, &[1]);
    assert!(matches!(
        to(&outs, 3)[0],
        RelayFrame::Welcome {
            verifier_state: VerifierState::Matched,
            presence: 2,
            ..
        }
    ));
}

#[test]
fn the_stored_member_key_alone_joins_nothing_and_creates_nothing() {
    let mut room = Room::new();
    // A proof that does not verify never creates the room's member key.
    room.open(1);
    let member = keys(7).member_key();
    let outs = room.frame(
        1,
        &ClientFrame::Hello {
            after_seq: 0,
            member_key: member,
            proof: [0; 64],
            channels: vec![tag(1)],
        },
    );
    assert_eq!(closes(&outs), [(1, 4001)]);
    assert_eq!(room.store.member_key().unwrap(), None);
    room.join(2, &[1]);
    room.publish(2, 1, 9, 1);
    assert_eq!(room.store.member_key().unwrap(), Some(member));
    // Everything the relay stores and a network observer sees: the member key, a recorded
    // proof (any socket's), junk.
    let recorded = keys(7).prove(&challenge_of(2));
    for (id, proof) in [(3, recorded), (4, [0; 64]), (5, [0xFF; 64])] {
        room.open(id);
        let outs = room.frame(
            id,
            &ClientFrame::Hello {
                after_seq: 0,
                member_key: member,
                proof,
                channels: vec![tag(1)],
            },
        );
        assert_eq!(closes(&outs), [(id, 4001)], "socket {id}");
        assert!(to(&outs, id)
            .iter()
            .all(|f| !matches!(f, RelayFrame::Event { .. })));
        // Its own key pair proves itself, but is not the room's.
        room.open(id + 10);
        let outs = room.hello(id + 10, 0, 8, &[1]);
        assert_eq!(
            error_message(&to(&outs, id + 10)[0]),
            "this room exists with another password or secret"
        );
        assert_eq!(closes(&outs), [(id + 10, 4001)]);
    }
    assert_eq!(presence(&room.peers), 1);
    assert_eq!(room.store.member_key().unwrap(), Some(member));
}

#[test]
fn after_seq_past_the_largest_sequence_is_bad_frame_and_the_socket_stays() {
    let mut room = Room::new();
    room.join(1, &[1]);
    room.publish(1, 1, 9, 1);
    room.open(2);
    for too_far in [MAX_SEQ + 1, u64::MAX] {
        let frame = hello_frame(&keys(7), &challenge_of(2), too_far, &[1]);
        let outs = room.frame(2, &frame);
        assert_eq!(
            to(&outs, 2).iter().map(error_code).collect::<Vec<_>>(),
            [Some((RelayErrorCode::BadFrame, false))]
        );
        assert!(closes(&outs).is_empty());
        assert!(!room.peers[&2].joined, "the socket stays unjoined");
        let outs = room.sync(1, too_far);
        assert_eq!(
            to(&outs, 1).iter().map(error_code).collect::<Vec<_>>(),
            [Some((RelayErrorCode::BadFrame, false))]
        );
        assert!(closes(&outs).is_empty());
    }
    // The largest sequence itself is fine (nothing after it).
    let outs = room.sync(1, MAX_SEQ);
    assert_eq!(
        to(&outs, 1),
        [RelayFrame::CaughtUp {
            head_seq: 1,
            token: 0
        }]
    );
    // Both sockets go on: 2 joins with the same challenge, 1 syncs.
    let outs = room.hello(2, 0, 7, &[1]);
    assert!(matches!(to(&outs, 2)[1], RelayFrame::Event { seq: 1, .. }));
    let outs = room.sync(1, 0);
    assert_eq!(to(&outs, 1).len(), 2);
}

#[test]
fn a_publish_that_reuses_a_stored_session_and_counter_with_other_bytes_is_refused() {
    let mut room = Room::new();
    room.join(1, &[1]);
    room.join(2, &[1]);
    // Socket 2 pre-empts session 9's next counter with its own bytes.
    let squat = other_envelope(tag(1), 9, 1);
    let outs = room.frame(2, &ClientFrame::Publish { envelope: squat });
    assert!(matches!(
        to(&outs, 2)[0],
        RelayFrame::Ack {
            seq: 1,
            duplicate: false,
            ..
        }
    ));
    // The real change is refused by name, never acknowledged as a duplicate, not stored.
    let outs = room.publish(1, 1, 9, 1);
    assert_eq!(
        to(&outs, 1).iter().map(refused).collect::<Vec<_>>(),
        [Some((9, 1, RelayErrorCode::DuplicateMismatch, 0))]
    );
    assert!(to(&outs, 2).is_empty(), "nothing is broadcast");
    assert_eq!(room.store.head_seq().unwrap(), 1);
    // The same bytes again are a duplicate.
    let outs = room.frame(
        2,
        &ClientFrame::Publish {
            envelope: other_envelope(tag(1), 9, 1),
        },
    );
    assert!(matches!(
        to(&outs, 2)[..],
        [RelayFrame::Ack {
            seq: 1,
            duplicate: true,
            ..
        }]
    ));
    // After compaction the digest still tells them apart.
    room.publish(1, 1, 9, 2);
    room.frame(
        1,
        &ClientFrame::SnapshotPut {
            upto_seq: 2,
            envelope: envelope(EnvelopeKind::Snapshot, tag(1), 9, 3),
        },
    );
    let outs = room.publish(1, 1, 9, 2);
    assert!(matches!(
        to(&outs, 1)[..],
        [RelayFrame::Ack {
            seq: 2,
            duplicate: true,
            ..
        }]
    ));
    let outs = room.frame(
        2,
        &ClientFrame::Publish {
            envelope: other_envelope(tag(1), 9, 2),
        },
    );
    assert_eq!(
        to(&outs, 2).iter().map(refused).collect::<Vec<_>>(),
        [Some((9, 2, RelayErrorCode::DuplicateMismatch, 0))]
    );
    // A refused socket's access or a full history does not turn a mismatch into an ACK.
    room.limits.max_history_events = 0;
    let outs = room.frame(
        2,
        &ClientFrame::Publish {
            envelope: other_envelope(tag(1), 9, 2),
        },
    );
    assert_eq!(
        to(&outs, 2).iter().map(refused).collect::<Vec<_>>(),
        [Some((9, 2, RelayErrorCode::DuplicateMismatch, 0))]
    );
    room.peers.get_mut(&2).unwrap().pending = true;
    let outs = room.frame(
        2,
        &ClientFrame::Publish {
            envelope: other_envelope(tag(1), 9, 2),
        },
    );
    assert_eq!(
        to(&outs, 2).iter().map(refused).collect::<Vec<_>>(),
        [Some((9, 2, RelayErrorCode::DuplicateMismatch, 0))]
    );
    let outs = room.publish(2, 1, 9, 1);
    assert_eq!(
        to(&outs, 2).iter().map(refused).collect::<Vec<_>>(),
        [Some((9, 1, RelayErrorCode::DuplicateMismatch, 0))]
    );
    // Both sockets stay and the room goes on (a pending guest hears no event).
    room.limits.max_history_events = 100;
    let outs = room.publish(1, 1, 9, 3);
    assert!(matches!(
        to(&outs, 1)[..],
        [RelayFrame::Ack {
            seq: 3,
            duplicate: false,
            ..
        }]
    ));
    assert!(to(&outs, 2).is_empty());
    room.peers.get_mut(&2).unwrap().pending = false;
    let outs = room.publish(1, 1, 9, 4);
    assert!(matches!(
        to(&outs, 2)[..],
        [RelayFrame::Event { seq: 4, .. }]
    ));
}

#[test]
fn unjoined_sockets_do_not_count_and_the_oldest_makes_room_for_a_new_one() {
    let limits = Limits {
        max_sockets_per_room: 2,
        max_unjoined_sockets: 3,
        ..Limits::default()
    };
    let mut room = Room::with_limits(limits);
    room.join(1, &[1]);
    for id in 10..13 {
        assert_eq!(room.open_at(id, T0 + id).len(), 1, "only the CHALLENGE");
    }
    assert!(!room_full(&room.peers, &room.limits));
    // One more: the oldest unjoined socket (10) is closed, the new one gets its challenge.
    let outs = room.open_at(20, T0 + 20);
    assert_eq!(closes(&outs), [(10, 4029)]);
    assert_eq!(
        to(&outs, 10).iter().map(error_code).collect::<Vec<_>>(),
        [Some((RelayErrorCode::RoomFull, true))]
    );
    assert!(matches!(to(&outs, 20)[..], [RelayFrame::Challenge { .. }]));
    assert!(to(&outs, 1).is_empty(), "joined sockets hear nothing");
    assert_eq!(
        room.peers.keys().copied().collect::<Vec<_>>(),
        [1, 11, 12, 20]
    );
    // The new socket joins; the room is full of joined sockets now.
    room.hello(20, 0, 7, &[1]);
    assert!(room_full(&room.peers, &room.limits));
    // Joined sockets are never closed to make room: only unjoined ones, oldest first.
    assert!(
        room.open_at(21, T0 + 21).len() == 1,
        "3 unjoined: 11, 12, 21"
    );
    let outs = room.open_at(22, T0 + 22);
    assert_eq!(closes(&outs), [(11, 4029)]);
    let outs = room.open_at(23, T0 + 23);
    assert_eq!(closes(&outs), [(12, 4029)]);
    assert!(room.peers[&1].joined && room.peers[&20].joined);
}

#[test]
fn unjoined_sockets_are_closed_by_the_alarm_after_the_timeout() {
    let mut room = Room::new();
    let timeout = room.limits.unjoined_timeout_ms;
    let ttl = room.limits.idle_room_ttl_ms;
    assert_eq!(timeout, 10_000);
    assert_eq!(unjoined_deadline(&room.peers, &room.limits), None);
    assert_eq!(next_alarm(&room.peers, &room.limits, T0), T0 + ttl);
    room.join(1, &[1]);
    let _ = room.open_at(2, T0 + 100);
    let _ = room.open_at(3, T0 + 5_000);
    assert_eq!(
        unjoined_deadline(&room.peers, &room.limits),
        Some(T0 + 100 + timeout)
    );
    assert_eq!(
        next_alarm(&room.peers, &room.limits, T0 + 200),
        T0 + 100 + timeout
    );
    // Too early: nothing.
    let outs = expire_unjoined(&mut room.peers, &room.limits, T0 + 99 + timeout);
    assert!(outs.is_empty());
    // Socket 2's time is up: a fatal NOT_JOINED, close 1008 "no HELLO"; 1 hears nothing.
    let outs = expire_unjoined(&mut room.peers, &room.limits, T0 + 100 + timeout);
    assert_eq!(
        to(&outs, 2).iter().map(error_code).collect::<Vec<_>>(),
        [Some((RelayErrorCode::NotJoined, true))]
    );
    assert!(outs.contains(&Out::Close {
        to: 2,
        code: CLOSE_NO_HELLO,
        reason: NO_HELLO_REASON,
    }));
    assert_eq!(CLOSE_NO_HELLO, 1008);
    assert!(to(&outs, 1).is_empty());
    assert!(!room.peers.contains_key(&2));
    // The next alarm is socket 3's deadline; once it joins, the idle TTL.
    assert_eq!(
        next_alarm(&room.peers, &room.limits, T0 + 10_100),
        T0 + 5_000 + timeout
    );
    room.hello(3, 0, 7, &[1]);
    let outs = expire_unjoined(&mut room.peers, &room.limits, T0 + 100 * timeout);
    assert!(outs.is_empty(), "joined sockets never expire");
    assert_eq!(
        next_alarm(&room.peers, &room.limits, T0 + 20_000),
        T0 + 20_000 + ttl
    );
    assert_eq!(presence(&room.peers), 2);
}

/// A store whose rows all predate digests and were compacted (what `sql.rs` returns for
/// them): `find` has no digest to compare.
struct LegacyStore(MemoryStore);

impl RoomStore for LegacyStore {
    fn member_key(&self) -> Result<Option<[u8; 32]>, StoreError> {
        self.0.member_key()
    }
    fn set_member_key(&mut self, key: &[u8; 32]) -> Result<(), StoreError> {
        self.0.set_member_key(key)
    }
    fn key_epoch(&self) -> Result<u32, StoreError> {
        self.0.key_epoch()
    }
    fn set_key_epoch(&mut self, key_epoch: u32) -> Result<(), StoreError> {
        self.0.set_key_epoch(key_epoch)
    }
    fn head_seq(&self) -> Result<u64, StoreError> {
        self.0.head_seq()
    }
    fn snapshot_seq(&self) -> Result<u64, StoreError> {
        self.0.snapshot_seq()
    }
    fn snapshot(&self) -> Result<Option<crate::store::StoredSnapshot>, StoreError> {
        self.0.snapshot()
    }
    fn find(
        &self,
        session: &SessionId,
        counter: u64,
    ) -> Result<Option<crate::store::StoredSender>, StoreError> {
        Ok(self
            .0
            .find(session, counter)?
            .map(|s| crate::store::StoredSender { digest: None, ..s }))
    }
    fn append(&mut self, event: NewEvent<'_>) -> Result<bool, StoreError> {
        self.0.append(event)
    }
    fn events_after(
        &self,
        after: u64,
        max_events: usize,
        max_bytes: u64,
    ) -> Result<Vec<crate::store::StoredEvent>, StoreError> {
        self.0.events_after(after, max_events, max_bytes)
    }
    fn put_snapshot(&mut self, seq: u64, envelope: &[u8]) -> Result<(), StoreError> {
        self.0.put_snapshot(seq, envelope)
    }
    fn usage(&self) -> Result<crate::store::Usage, StoreError> {
        self.0.usage()
    }
    fn ban(&mut self, user: &str) -> Result<(), StoreError> {
        self.0.ban(user)
    }
    fn is_banned(&self, user: &str) -> Result<bool, StoreError> {
        self.0.is_banned(user)
    }
    fn any_banned(&self) -> Result<bool, StoreError> {
        self.0.any_banned()
    }
    fn unban(&mut self, user: &str) -> Result<(), StoreError> {
        self.0.unban(user)
    }
    fn stats(&self) -> Result<crate::store::StoreStats, StoreError> {
        self.0.stats()
    }
}

#[test]
fn a_compacted_row_without_a_digest_refuses_even_the_same_bytes() {
    let room = RoomId::new(ROOM).unwrap();
    let limits = Limits::default();
    let mut store = LegacyStore(MemoryStore::default());
    let mut peers = BTreeMap::new();
    let _ = accept(
        &mut peers,
        &limits,
        Peer::new(1, &limits, T0, challenge_of(1), [1; 32]),
    );
    let frame = |store: &mut LegacyStore, peers: &mut BTreeMap<PeerId, Peer>, f: ClientFrame| {
        Hub::new(&room, store, &limits, peers, &mut Budget::default())
            .handle_frame(1, &f.encode().unwrap(), T0)
            .unwrap()
    };
    frame(
        &mut store,
        &mut peers,
        hello_frame(&keys(7), &challenge_of(1), 0, &[1]),
    );
    let outs = frame(&mut store, &mut peers, publish_frame(1, 9, 1));
    assert!(matches!(
        to(&outs, 1)[..],
        [RelayFrame::Ack {
            seq: 1,
            duplicate: false,
            ..
        }]
    ));
    // The same bytes again: with no digest stored, refused by name (never a silent ACK).
    let outs = frame(&mut store, &mut peers, publish_frame(1, 9, 1));
    assert_eq!(
        to(&outs, 1).iter().map(refused).collect::<Vec<_>>(),
        [Some((9, 1, RelayErrorCode::DuplicateMismatch, 0))]
    );
    match &to(&outs, 1)[0] {
        RelayFrame::Refused { message, .. } => {
            assert!(message.contains("before it kept digests"), "{message}");
        }
        other => panic!("expected REFUSED, got {other:?}"),
    }
    assert_eq!(store.head_seq().unwrap(), 1);
}

#[test]
fn the_memory_store_keeps_each_envelopes_digest_past_compaction() {
    let mut store = MemoryStore::default();
    let e = envelope(EnvelopeKind::Event, tag(1), 9, 1);
    let digest = envelope_digest(&e);
    assert_ne!(digest, envelope_digest(&other_envelope(tag(1), 9, 1)));
    let event = NewEvent {
        seq: 1,
        relay_time: T0,
        session: SessionId([9; 16]),
        counter: 1,
        channel: tag(1),
        envelope: &e,
        digest,
    };
    assert!(store.append(event).unwrap());
    assert!(!store.append(event).unwrap(), "the pair is taken");
    store.put_snapshot(1, &e).unwrap();
    let found = store.find(&SessionId([9; 16]), 1).unwrap().unwrap();
    assert_eq!(
        (found.seq, found.relay_time, found.digest),
        (1, T0, Some(digest))
    );
    assert_eq!(store.find(&SessionId([9; 16]), 2).unwrap(), None);
}

// ---------------------------------------------------------------- bounded catch-up

/// Bytes of event and snapshot frames in `frames`.
fn catch_up_bytes(frames: &[RelayFrame]) -> usize {
    frames
        .iter()
        .map(|f| match f {
            RelayFrame::Event { envelope, .. } | RelayFrame::Snapshot { envelope, .. } => {
                envelope.len()
            }
            _ => 0,
        })
        .sum()
}

fn token_of(frames: &[RelayFrame]) -> u64 {
    match frames.last() {
        Some(RelayFrame::CaughtUp { token, .. }) => *token,
        other => panic!("the page ends with CAUGHT_UP, not {other:?}"),
    }
}

#[test]
fn catch_up_comes_in_pages_and_the_next_page_needs_the_last_pages_token() {
    let mut room = Room::new();
    let one = envelope(EnvelopeKind::Event, tag(1), 9, 1).len() as u64;
    // Three events per page.
    room.limits.catch_up_page_bytes = 3 * one;
    room.limits.rate_burst = 1000;
    room.join(1, &[1]);
    for counter in 1..=10 {
        room.publish(1, 1, 9, counter);
    }
    room.open(2);
    let page = to_raw(&room.hello(2, 0, 7, &[1]), 2);
    assert!(matches!(page[0], RelayFrame::Welcome { .. }));
    let seqs = |frames: &[RelayFrame]| -> Vec<u64> {
        frames
            .iter()
            .filter_map(|f| match f {
                RelayFrame::Event { seq, .. } => Some(*seq),
                _ => None,
            })
            .collect()
    };
    assert_eq!(seqs(&page), [1, 2, 3]);
    let first = token_of(&page);
    assert!(matches!(
        page.last(),
        Some(RelayFrame::CaughtUp { head_seq: 10, .. })
    ));

    // A socket that did not read the page cannot know its token: SYNC after SYNC gets
    // nothing but a non-fatal BAD_FRAME, so nothing piles up for it.
    for guess in [0, 1, first.wrapping_add(1)] {
        let outs = room.frame(
            2,
            &ClientFrame::Sync {
                after_seq: 0,
                token: guess,
            },
        );
        assert_eq!(
            to(&outs, 2).iter().map(error_code).collect::<Vec<_>>(),
            [Some((RelayErrorCode::BadFrame, false))]
        );
        assert_eq!(catch_up_bytes(&to(&outs, 2)), 0);
        assert!(closes(&outs).is_empty());
    }

    // The client that read it goes on, page by page, each under the budget plus one event.
    let mut next = first;
    let mut got = vec![1, 2, 3];
    loop {
        let outs = room.frame(
            2,
            &ClientFrame::Sync {
                after_seq: *got.last().unwrap(),
                token: next,
            },
        );
        let page = to_raw(&outs, 2);
        assert!(catch_up_bytes(&page) as u64 <= room.limits.catch_up_page_bytes + one);
        let new = token_of(&page);
        assert_ne!(new, next, "every page has a new token");
        next = new;
        let seqs = seqs(&page);
        if seqs.is_empty() {
            break;
        }
        got.extend(seqs);
    }
    assert_eq!(got, (1..=10).collect::<Vec<_>>());
    // The old token is spent.
    let outs = room.frame(
        2,
        &ClientFrame::Sync {
            after_seq: 0,
            token: first,
        },
    );
    assert_eq!(
        to(&outs, 2).iter().map(error_code).collect::<Vec<_>>(),
        [Some((RelayErrorCode::BadFrame, false))]
    );
}

#[test]
fn a_page_holds_at_least_one_event_and_a_snapshot_counts_toward_it() {
    let mut room = Room::new();
    room.limits.catch_up_page_bytes = 1;
    room.join(1, &[1]);
    for counter in 1..=3 {
        room.publish(1, 1, 9, counter);
    }
    // Over the budget with the first event: a page of one.
    room.open(2);
    let page = to(&room.hello(2, 0, 7, &[1]), 2);
    assert!(matches!(
        page[..],
        [
            RelayFrame::Welcome { .. },
            RelayFrame::Event { seq: 1, .. },
            RelayFrame::CaughtUp { head_seq: 3, .. }
        ]
    ));
    // A snapshot fills the page by itself; the events come on the next one.
    let snapshot = envelope(EnvelopeKind::Snapshot, ChannelTag([0; 16]), 9, 0);
    room.frame(
        1,
        &ClientFrame::SnapshotPut {
            upto_seq: 2,
            envelope: snapshot,
        },
    );
    let page = to(&room.sync(2, 0), 2);
    assert!(matches!(
        page[..],
        [
            RelayFrame::Snapshot { seq: 2, .. },
            RelayFrame::CaughtUp { head_seq: 3, .. }
        ]
    ));
    let page = to(&room.sync(2, 2), 2);
    assert!(matches!(
        page[..],
        [
            RelayFrame::Event { seq: 3, .. },
            RelayFrame::CaughtUp { head_seq: 3, .. }
        ]
    ));
}

// ---------------------------------------------------------------- shared budgets

#[test]
fn many_sockets_together_stay_within_the_rooms_budget_and_none_is_closed() {
    let mut room = Room::new();
    room.limits.room_rate_burst = 10;
    room.limits.room_rate_per_second = 5;
    for id in 1..=5 {
        room.join(id, &[1]);
    }
    // Five sockets, three publishes each: each socket is far within its own bucket, but
    // the room takes 10 (HELLOs do not count: they come before joining).
    let mut stored = 0;
    let mut refused_for_room = 0;
    for counter in 1..=3 {
        for id in 1..=5 {
            let outs = room.publish(id, 1, id.to_le_bytes()[0], counter);
            for f in to(&outs, id) {
                match f {
                    RelayFrame::Ack { .. } => stored += 1,
                    RelayFrame::Refused {
                        code: RelayErrorCode::RateLimited,
                        retry_after_ms,
                        ..
                    } => {
                        assert_eq!(retry_after_ms, 200, "one room token per 200 ms");
                        refused_for_room += 1;
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            assert!(closes(&outs).is_empty(), "the room's budget closes no one");
        }
    }
    assert_eq!((stored, refused_for_room), (10, 5));
    assert_eq!(room.store.head_seq().unwrap(), 10);
    // Once the wait is over, a refused change goes in.
    let outs = room.frame_at(5, &publish_frame(1, 5, 3), T0 + 200);
    assert!(matches!(to(&outs, 5)[..], [RelayFrame::Ack { .. }]));
}

#[test]
fn an_address_or_a_user_holds_a_bounded_number_of_sockets() {
    let mut room = Room::new();
    room.limits.max_sockets_per_address = 2;
    let with = |id: PeerId, address: &str, user: Option<&str>| {
        let mut p = Peer::new(id, &room.limits, T0, challenge_of(id), [0; 32]);
        p.address = Some(address.into());
        p.user = user.map(Into::into);
        p
    };
    let a1 = with(1, "192.0.2.1", None);
    let a2 = with(2, "192.0.2.1", Some("alice"));
    let _ = accept(&mut room.peers, &room.limits, a1);
    let _ = accept(&mut room.peers, &room.limits, a2);
    let refused = admission(&room.peers, &room.limits, false, None, Some("192.0.2.1"));
    assert!(
        matches!(refused, Some((RelayErrorCode::RoomFull, ref m)) if m.contains("address")),
        "{refused:?}"
    );
    assert_eq!(
        admission(&room.peers, &room.limits, false, None, Some("192.0.2.2")),
        None,
        "another address is not affected"
    );
    let b = with(3, "198.51.100.7", Some("alice"));
    let _ = accept(&mut room.peers, &room.limits, b);
    let refused = admission(
        &room.peers,
        &room.limits,
        false,
        Some("alice"),
        Some("203.0.113.9"),
    );
    assert!(
        matches!(refused, Some((RelayErrorCode::RoomFull, ref m)) if m.contains("one user")),
        "{refused:?}"
    );
    assert!(matches!(
        admission(&room.peers, &room.limits, true, Some("bob"), None),
        Some((RelayErrorCode::Banned, _))
    ));
}

#[test]
fn wrong_keys_from_one_address_are_slowed_and_the_answer_then_says_nothing_about_the_key() {
    let mut room = Room::new();
    room.limits.wrong_key_burst = 3;
    room.join(1, &[1]); // the room's key is keys(7)
    let open_from = |room: &mut Room, id: PeerId, address: &str| {
        let mut p = Peer::new(id, &room.limits, T0, challenge_of(id), [0; 32]);
        p.address = Some(address.into());
        let _ = accept(&mut room.peers, &room.limits, p);
    };
    open_from(&mut room, 2, "192.0.2.66");
    for guess in 10..13 {
        let outs = room.hello(2, 0, guess, &[1]);
        assert_eq!(
            to(&outs, 2).iter().map(error_code).collect::<Vec<_>>(),
            [Some((RelayErrorCode::WrongVerifier, true))]
        );
        open_from(&mut room, 2, "192.0.2.66");
    }
    // The burst is spent: a wrong key and the right key get the same non-fatal answer.
    for who in [13, 7] {
        let outs = room.hello(2, 0, who, &[1]);
        assert_eq!(
            to(&outs, 2).iter().map(error_code).collect::<Vec<_>>(),
            [Some((RelayErrorCode::RateLimited, false))],
            "key {who}"
        );
        assert!(!room.peers[&2].joined);
    }
    // Another address's member joins at once.
    open_from(&mut room, 3, "198.51.100.1");
    let outs = room.hello(3, 0, 7, &[1]);
    assert!(matches!(to(&outs, 3)[0], RelayFrame::Welcome { .. }));
    // A second later the address may try again, and the right key joins.
    let frame = hello_frame(&keys(7), &challenge_of(2), 0, &[1]);
    let outs = room.frame_at(2, &frame, T0 + 1000);
    assert!(matches!(to(&outs, 2)[0], RelayFrame::Welcome { .. }));
}

#[test]
fn a_room_nobody_wrote_to_is_disposable() {
    let mut room = Room::new();
    assert!(disposable(&room.store).unwrap());
    room.join(1, &[1]);
    assert!(
        disposable(&room.store).unwrap(),
        "a member key alone is no data"
    );
    room.publish(1, 1, 9, 1);
    assert!(!disposable(&room.store).unwrap());
    // A ban outlives the sockets, even in a room with no history.
    let mut banned = Room::new();
    banned.join(1, &[1]);
    banned.store.ban("mallory").unwrap();
    assert!(!disposable(&banned.store).unwrap());
}

/// Every number in `v` fits a JavaScript number (what a socket attachment holds).
fn numbers_fit_javascript(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Number(n) => n.as_u64().map_or_else(
            || n.as_i64().is_some_and(|i| i.unsigned_abs() <= MAX_SEQ),
            |u| u <= MAX_SEQ,
        ),
        serde_json::Value::Array(items) => items.iter().all(numbers_fit_javascript),
        serde_json::Value::Object(map) => map.values().all(numbers_fit_javascript),
        _ => true,
    }
}

#[test]
fn a_peer_survives_its_attachment_with_every_number_a_javascript_number() {
    let mut room = Room::new();
    room.join(1, &[1]);
    room.publish(1, 1, 9, 1);
    room.sync(1, 0);
    let peer = room.peers[&1].clone();
    assert!(peer.sync_token > MAX_SEQ || peer.pages > 0);
    let mut tokened = peer.clone();
    tokened.sync_token = u64::MAX;
    tokened.publish_hold = Some(Held {
        session: SessionId([7; 16]),
        counter: u64::MAX,
    });
    for p in [peer, tokened] {
        let json = serde_json::to_value(&p).unwrap();
        assert!(numbers_fit_javascript(&json), "{json}");
        let back: Peer = serde_json::from_value(json).unwrap();
        assert_eq!(back, p);
    }
}

#[test]
fn an_empty_rooms_alarm_deletes_it_only_after_its_ttl() {
    let limits = Limits {
        idle_room_ttl_ms: 1_000,
        ..Limits::default()
    };
    assert_eq!(idle_plan(T0, Some(T0 + 1), &limits), Idle::WakeAt(T0 + 1));
    assert_eq!(idle_plan(T0, Some(T0), &limits), Idle::Delete);
    assert_eq!(idle_plan(T0 + 5, Some(T0), &limits), Idle::Delete);
    // No record (the process died with sockets open): idle from now, as when the last
    // socket leaves.
    assert_eq!(idle_plan(T0, None, &limits), Idle::Start(T0 + 1_000));
    assert_eq!(idle_from(T0, &limits), T0 + 1_000);
}

#[test]
fn ipv6_clients_are_counted_by_their_64_prefix() {
    assert_eq!(address_key("192.0.2.7"), "192.0.2.7");
    assert_eq!(address_key(" 192.0.2.7 "), "192.0.2.7");
    assert_eq!(
        address_key("2001:db8:1:2:aaaa::1"),
        address_key("2001:db8:1:2:ffff:ffff:ffff:ffff")
    );
    assert_eq!(address_key("2001:db8:1:2::9"), "2001:db8:1:2::/64");
    assert_ne!(
        address_key("2001:db8:1:2::1"),
        address_key("2001:db8:1:3::1")
    );
    // An IPv4 client seen through IPv6 is its IPv4 address.
    assert_eq!(address_key("::ffff:192.0.2.7"), "192.0.2.7");
    assert_eq!(address_key("not an address"), "not an address");
}

#[test]
fn after_a_change_is_refused_for_the_rate_none_of_its_sockets_later_changes_overtakes_it() {
    let mut room = Room::new();
    room.limits.room_rate_burst = 1;
    room.limits.room_rate_per_second = 10;
    room.join(1, &[1]);
    room.join(2, &[1]);
    let acked = |outs: &[Out], to_peer: PeerId| -> Vec<u64> {
        to(outs, to_peer)
            .iter()
            .filter_map(|f| match f {
                RelayFrame::Ack { counter, .. } => Some(*counter),
                _ => None,
            })
            .collect()
    };
    let refused_counters = |outs: &[Out], to_peer: PeerId| -> Vec<u64> {
        to(outs, to_peer)
            .iter()
            .filter_map(refused)
            .map(|r| r.1)
            .collect()
    };
    // The room's one token goes to socket 2; socket 1's change 1 is refused, and its change
    // 2, arriving once the room has a token again, too: change 1 has not come again.
    assert_eq!(
        acked(&room.frame_at(2, &publish_frame(1, 8, 1), T0), 2),
        [1]
    );
    let outs = room.frame_at(1, &publish_frame(1, 9, 1), T0);
    assert_eq!(refused_counters(&outs, 1), [1]);
    let outs = room.frame_at(1, &publish_frame(1, 9, 2), T0 + 500);
    assert_eq!(refused_counters(&outs, 1), [2]);
    assert_eq!(
        room.store.head_seq().unwrap(),
        1,
        "change 2 did not overtake change 1"
    );
    // Sent again in order, both are stored, change 1 first.
    assert_eq!(
        acked(&room.frame_at(1, &publish_frame(1, 9, 1), T0 + 1000), 1),
        [1]
    );
    assert_eq!(
        acked(&room.frame_at(1, &publish_frame(1, 9, 2), T0 + 1200), 1),
        [2]
    );
    let stored: Vec<u64> = room
        .store
        .events_after(0, 10, u64::MAX)
        .unwrap()
        .iter()
        .map(|e| EnvelopeHeader::parse(&e.envelope).unwrap().0.counter)
        .collect();
    assert_eq!(
        stored,
        [1, 1, 2],
        "socket 2's change, then socket 1's in its order"
    );
    assert_eq!(room.peers[&1].publish_hold, None);
}

/// The `PRESENCE` count broadcast by `out`, with its receivers.
fn presence_broadcast(out: Option<&Out>) -> Option<(Vec<PeerId>, u32)> {
    match out? {
        Out::Broadcast { to, frame } => match RelayFrame::decode(frame).unwrap() {
            RelayFrame::Presence { count } => Some((to.clone(), count)),
            _ => None,
        },
        _ => None,
    }
}

#[test]
fn a_coalesced_presence_update_arms_the_alarm_once_and_goes_out_once() {
    let mut room = Room::new();
    room.join(1, &[1]);
    room.join(2, &[1]);
    let mut p = Presence::default();
    assert_eq!(p.alarm_by(T0), None, "nothing pending");
    assert_eq!(
        p.flush(&room.peers),
        None,
        "a small room sends nothing unasked"
    );
    // Two changes before the alarm: one alarm, a second from the first.
    p.changed();
    p.changed();
    assert!(p.pending());
    assert_eq!(p.alarm_by(T0), Some(T0 + PRESENCE_FLUSH_MS));
    assert_eq!(p.alarm_by(T0 + 10), None, "already asked for");
    p.changed();
    assert_eq!(
        p.alarm_by(T0 + 20),
        None,
        "still pending: the same alarm sends it"
    );
    // The alarm: one PRESENCE with the current count to every joined socket.
    assert_eq!(
        presence_broadcast(p.flush(&room.peers).as_ref()),
        Some((vec![1, 2], 2))
    );
    assert!(!p.pending());
    assert_eq!(p.flush(&room.peers), None, "sent once");
    // The next change wants the alarm again.
    p.changed();
    assert_eq!(p.alarm_by(T0 + 5_000), Some(T0 + 5_000 + PRESENCE_FLUSH_MS));
    // Pending in a room where nobody joined: nothing to send, nothing left pending.
    let mut empty = Room::new();
    empty.open(9);
    assert_eq!(p.flush(&empty.peers), None);
    assert!(!p.pending());
}

#[test]
fn a_big_rooms_alarm_sends_presence_even_with_nothing_pending() {
    // After hibernation the pending flag is gone: a big room's alarm sends anyway.
    let (mut room, big) = Room::big();
    let mut p = Presence::default();
    let (to_ids, count) = presence_broadcast(p.flush(&room.peers).as_ref()).unwrap();
    assert_eq!((to_ids.len() as u64, u64::from(count)), (big, big));
    // At the threshold, only a pending update goes out.
    assert!(
        matches!(leave(&mut room.peers, 1)[..], [Out::Broadcast { .. }]),
        "at the threshold a leave is broadcast at once"
    );
    assert_eq!(p.flush(&room.peers), None);
    p.changed();
    assert_eq!(
        presence_broadcast(p.flush(&room.peers).as_ref()).map(|(_, c)| c),
        Some(PRESENCE_COALESCE_ABOVE)
    );
}

#[test]
fn the_alarm_closes_expired_sockets_then_sends_the_pending_presence_and_plans_the_next() {
    let mut room = Room::new();
    let timeout = room.limits.unjoined_timeout_ms;
    let ttl = room.limits.idle_room_ttl_ms;
    room.join(1, &[1]);
    room.join(2, &[1]);
    let _ = room.open_at(3, T0 + 100);
    let _ = room.open_at(4, T0 + 5_000);
    let mut p = Presence::default();
    p.changed();
    // Before anything is due: the pending presence goes, the next alarm is socket 3's.
    let plan = alarm(&mut room.peers, &mut p, &room.limits, T0 + 200);
    assert_eq!(plan.next_ms, T0 + 100 + timeout);
    assert_eq!(presence_broadcast(plan.out.first()), Some((vec![1, 2], 2)));
    assert_eq!(plan.out.len(), 1);
    // Socket 3's time is up: its ERROR and close first, then (pending again) PRESENCE.
    p.changed();
    let plan = alarm(&mut room.peers, &mut p, &room.limits, T0 + 100 + timeout);
    assert_eq!(closes(&plan.out), [(3, CLOSE_NO_HELLO)]);
    let close_at = plan
        .out
        .iter()
        .position(|o| matches!(o, Out::Close { .. }))
        .unwrap();
    assert_eq!(presence_broadcast(plan.out.last()), Some((vec![1, 2], 2)));
    assert!(close_at < plan.out.len() - 1, "the close comes first");
    assert_eq!(plan.next_ms, T0 + 5_000 + timeout);
    // Nothing pending, nothing due: no output; once every socket joined, one TTL on.
    room.hello(4, 0, 7, &[1]);
    let now = T0 + 100 * timeout;
    let plan = alarm(&mut room.peers, &mut p, &room.limits, now);
    assert_eq!(
        plan,
        AlarmPlan {
            out: Vec::new(),
            next_ms: now + ttl
        }
    );
}

#[test]
fn an_alarm_is_moved_only_earlier() {
    assert!(sets_alarm(None, T0), "none set");
    assert!(
        sets_alarm(Some(i64::try_from(T0).unwrap() + 1), T0),
        "set later"
    );
    assert!(
        !sets_alarm(Some(i64::try_from(T0).unwrap()), T0),
        "set then"
    );
    assert!(
        !sets_alarm(Some(i64::try_from(T0).unwrap() - 1), T0),
        "set earlier"
    );
    assert!(sets_alarm(Some(-1), T0), "not a time");
}

#[test]
fn the_room_reports_live_until_the_directory_accepts_its_latest_report() {
    let mut l = Listing::default();
    assert!(l.reports_on_accept(1), "the first socket");
    assert!(
        l.reports_on_accept(2),
        "not listed yet (a fresh or woken object)"
    );
    let first = l.start(T0);
    assert_eq!(first, T0);
    assert!(!l.listed());
    l.accepted(first, true);
    assert!(l.listed());
    assert!(
        !l.reports_on_accept(2),
        "listed: a second socket does not report"
    );
    assert!(l.reports_on_accept(1), "a first socket always does");
    // Two reports in the same millisecond get distinct stamps; the earlier one's answer
    // does not list the room.
    let a = l.start(T0);
    let b = l.start(T0);
    assert_eq!((a, b), (T0 + 1, T0 + 2));
    l.accepted(a, true);
    assert!(!l.listed(), "another report went out meanwhile");
    assert!(l.reports_on_accept(3));
    // A report that the room is no longer live lists nothing.
    let gone = l.start(T0 + 10);
    l.accepted(gone, false);
    assert!(!l.listed());
    let live = l.start(T0 + 20);
    l.accepted(live, true);
    assert!(l.listed());
}

#[test]
fn socket_ids_continue_after_the_highest_one_left_in_the_room() {
    let mut room = Room::new();
    assert_eq!(next_peer_id(&room.peers), 1);
    room.join(3, &[1]);
    room.open(7);
    assert_eq!(next_peer_id(&room.peers), 8);
    let _ = leave(&mut room.peers, 7);
    assert_eq!(next_peer_id(&room.peers), 4);
}

#[test]
fn close_reasons_are_cut_to_123_bytes_on_a_character_boundary() {
    assert_eq!(MAX_CLOSE_REASON, 123);
    assert_eq!(close_text("banned"), "banned");
    let ascii = "x".repeat(200);
    assert_eq!(close_text(&ascii).len(), 123);
    // 'é' is two bytes: 123 falls inside the 62nd, so 61 of them remain.
    let accents = "é".repeat(100);
    assert_eq!(close_text(&accents), "é".repeat(61));
    let (code, message) =
        admission(&BTreeMap::new(), &Limits::default(), true, None, None).unwrap();
    assert_eq!(code, RelayErrorCode::Banned);
    assert_eq!(close_text(&message), message, "the relay's own reasons fit");
}

/// Socket `id` opens as the pending guest `user` (its token said `guest`) and sends
/// `HELLO` with `after_seq`; the outputs of the `HELLO`.
fn knock(room: &mut Room, id: PeerId, user: &str, after_seq: u64) -> Vec<Out> {
    room.open(id);
    let peer = room.peers.get_mut(&id).unwrap();
    peer.pending = true;
    peer.user = Some(user.into());
    room.hello(id, after_seq, 7, &[1])
}

/// The JSON of the `NOTIFY`s among `frames`, parsed.
fn notices(frames: &[RelayFrame]) -> Vec<serde_json::Value> {
    frames
        .iter()
        .filter_map(|f| match f {
            RelayFrame::Notify { json } => Some(serde_json::from_str(json).unwrap()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_pending_guest_gets_no_history_no_event_and_no_ephemeral_frame() {
    let mut room = Room::new();
    room.join(2, &[1]);
    room.publish(2, 1, 8, 1);
    room.publish(2, 1, 8, 2);
    room.frame(
        2,
        &ClientFrame::SnapshotPut {
            upto_seq: 1,
            envelope: envelope(EnvelopeKind::Snapshot, tag(1), 8, 3),
        },
    );
    let outs = knock(&mut room, 1, "guest", 0);
    // WELCOME alone: no snapshot, no event, no CAUGHT_UP, not even the history's length.
    let to_guest = to(&outs, 1);
    assert_eq!(to_guest.len(), 1, "{to_guest:?}");
    assert!(matches!(
        to_guest[0],
        RelayFrame::Welcome {
            head_seq: 0,
            snapshot_seq: 0,
            presence: 2,
            access: Access::Pending,
            ..
        }
    ));
    assert_eq!(room.peers[&1].after_seq, 0);
    assert_eq!(room.peers[&1].pages, 0, "no catch-up page");
    // A member's change and ephemeral frame reach the other members, not the guest.
    room.join(3, &[1]);
    let outs = room.publish(2, 1, 8, 4);
    assert!(matches!(
        to(&outs, 3)[..],
        [RelayFrame::Event { seq: 3, .. }]
    ));
    assert!(to(&outs, 1).is_empty());
    let outs = room.frame(
        2,
        &ClientFrame::Ephemeral {
            envelope: envelope(EnvelopeKind::Ephemeral, tag(1), 8, 5),
        },
    );
    assert!(matches!(to(&outs, 3)[..], [RelayFrame::Ephemeral { .. }]));
    assert!(to(&outs, 1).is_empty());
    // Presence is all it hears of the others.
    let outs = leave(&mut room.peers, 3);
    assert_eq!(to(&outs, 1), [RelayFrame::Presence { count: 2 }]);
}

#[test]
fn a_sync_from_a_pending_guest_is_refused_and_sends_nothing() {
    let mut room = Room::new();
    room.join(2, &[1]);
    room.publish(2, 1, 8, 1);
    knock(&mut room, 1, "guest", 0);
    // The token it holds (none yet, 0) or any other: the answer is the same.
    for token in [0, room.peers[&1].sync_token, 1, u64::MAX] {
        let outs = room.frame(
            1,
            &ClientFrame::Sync {
                after_seq: 0,
                token,
            },
        );
        assert_eq!(
            to(&outs, 1).iter().map(error_code).collect::<Vec<_>>(),
            [Some((RelayErrorCode::GuestPending, false))]
        );
        assert!(
            outs.iter().all(|o| !matches!(o, Out::Close { .. })),
            "{outs:?}"
        );
    }
    assert_eq!(room.peers[&1].pages, 0);
    assert!(room.peers.contains_key(&1), "the socket stays");
    // A second socket of the guest is pending too (its token says so) and reads no more.
    let outs = knock(&mut room, 3, "guest", 0);
    assert_eq!(to(&outs, 3).len(), 1);
    let outs = room.sync(3, 0);
    assert_eq!(
        to(&outs, 3).iter().map(error_code).collect::<Vec<_>>(),
        [Some((RelayErrorCode::GuestPending, false))]
    );
}

#[test]
fn members_hear_a_pending_guests_knock_with_its_user() {
    let mut room = Room::new();
    room.join(2, &[1]);
    room.open(3);
    room.peers.get_mut(&3).unwrap().role = Some(crate::auth::READ_ONLY_ROLE.into());
    room.hello(3, 0, 7, &[1]);
    // An earlier pending guest, and a socket that has not joined.
    knock(&mut room, 4, "early", 0);
    room.open(5);
    let outs = knock(&mut room, 1, "guest-\"1\"", 0);
    let knock_json = serde_json::json!({"type": "knock", "data": {"user": "guest-\"1\""}});
    for member in [2, 3] {
        let frames = to(&outs, member);
        assert_eq!(
            notices(&frames),
            std::slice::from_ref(&knock_json),
            "{member}"
        );
        assert!(frames.contains(&RelayFrame::Presence { count: 4 }));
    }
    for not_told in [1, 4, 5] {
        assert!(notices(&to(&outs, not_told)).is_empty(), "{not_told}");
    }
    // A member's HELLO knocks on nobody; nor does a guest without a user (no auth).
    room.open(6);
    let outs = room.hello(6, 0, 7, &[1]);
    assert!(outs
        .iter()
        .all(|o| !matches!(o, Out::Broadcast { frame, .. } if matches!(RelayFrame::decode(frame), Ok(RelayFrame::Notify { .. })))));
    room.open(7);
    room.peers.get_mut(&7).unwrap().pending = true;
    let outs = room.hello(7, 0, 7, &[1]);
    assert!(notices(&to(&outs, 2)).is_empty());
}

#[test]
fn admitting_a_guest_sends_access_then_the_catch_up_from_its_hellos_after_seq() {
    let mut room = Room::new();
    room.join(2, &[1]);
    for counter in 1..=3 {
        room.publish(2, 1, 8, counter);
    }
    // The guest held events up to 2 from an earlier admission.
    knock(&mut room, 1, "guest", 2);
    room.publish(2, 1, 8, 4);
    assert_eq!(room.peers[&1].after_seq, 2);
    // The attachment keeps it; an attachment from before it existed reads as 0.
    let json = serde_json::to_value(&room.peers[&1]).unwrap();
    let back: Peer = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(back, room.peers[&1]);
    let mut old = json;
    old.as_object_mut().unwrap().remove("after_seq");
    let back: Peer = serde_json::from_value(old).unwrap();
    assert_eq!(back.after_seq, 0);
    assert!(back.pending);

    let req =
        crate::notify::NotifyRequest::parse(br#"{"room":"team-42","kind":"admit","user":"guest"}"#)
            .unwrap();
    let (outs, reached) =
        crate::notify::apply(&req, &mut room.peers, &mut room.store, &room.limits).unwrap();
    assert_eq!(reached, 1);
    let frames = to(&outs, 1);
    let kinds: Vec<_> = frames
        .iter()
        .map(|f| match f {
            RelayFrame::Access { access } => format!("ACCESS {access:?}"),
            RelayFrame::Event { seq, .. } => format!("EVENT {seq}"),
            RelayFrame::CaughtUp { head_seq, .. } => format!("CAUGHT_UP {head_seq}"),
            RelayFrame::Notify { json } => format!("NOTIFY {json}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "ACCESS Write",
            "EVENT 3",
            "EVENT 4",
            "CAUGHT_UP 4",
            r#"NOTIFY {"kind":"admit"}"#
        ]
    );
    assert!(to(&outs, 2).is_empty(), "the members hear nothing of it");
    // From now on it is a member: its SYNC carries the token, it hears events.
    let outs = room.sync(1, 4);
    assert_eq!(
        to(&outs, 1),
        [RelayFrame::CaughtUp {
            head_seq: 4,
            token: 0
        }]
    );
    let outs = room.publish(2, 1, 8, 5);
    assert!(matches!(
        to(&outs, 1)[..],
        [RelayFrame::Event { seq: 5, .. }]
    ));
    let outs = room.publish(1, 1, 9, 1);
    assert!(matches!(to(&outs, 1)[..], [RelayFrame::Ack { seq: 6, .. }]));
}

#[test]
fn an_admitted_guest_behind_the_snapshot_gets_it_first_in_pages() {
    let mut room = Room::with_limits(Limits {
        catch_up_page_bytes: 1,
        ..Limits::default()
    });
    room.join(2, &[1]);
    for counter in 1..=3 {
        room.publish(2, 1, 8, counter);
    }
    room.frame(
        2,
        &ClientFrame::SnapshotPut {
            upto_seq: 2,
            envelope: envelope(EnvelopeKind::Snapshot, tag(1), 8, 4),
        },
    );
    knock(&mut room, 1, "guest", 0);
    let req =
        crate::notify::NotifyRequest::parse(br#"{"room":"team-42","kind":"admit","user":"guest"}"#)
            .unwrap();
    let (outs, _) =
        crate::notify::apply(&req, &mut room.peers, &mut room.store, &room.limits).unwrap();
    let frames = to(&outs, 1);
    assert!(matches!(
        frames[..],
        [
            RelayFrame::Access {
                access: Access::Write
            },
            RelayFrame::Snapshot { seq: 2, .. },
            RelayFrame::CaughtUp { head_seq: 3, .. },
            RelayFrame::Notify { .. },
        ]
    ));
    // The next page with the token, as any member.
    let outs = room.sync(1, 2);
    assert!(matches!(
        to(&outs, 1)[..],
        [
            RelayFrame::Event { seq: 3, .. },
            RelayFrame::CaughtUp { head_seq: 3, .. }
        ]
    ));
}

/// A snapshot envelope sealed (as far as the relay can tell) at `key_epoch`.
fn snapshot_at(key_epoch: u32) -> Vec<u8> {
    let mut envelope = envelope(EnvelopeKind::Snapshot, tag(0), 9, 1);
    envelope[2..6].copy_from_slice(&key_epoch.to_be_bytes());
    envelope
}

/// `ROTATE` from socket `from` to `keys(to_who)` at `key_epoch`, signed by `keys(by)`.
fn rotate_frame(from: PeerId, by: u8, to_who: u8, key_epoch: u32, upto_seq: u64) -> ClientFrame {
    let new = keys(to_who).member_key();
    ClientFrame::Rotate {
        key_epoch,
        member_key: new,
        proof: keys(by).prove_rotation(&challenge_of(from), key_epoch, &new),
        upto_seq,
        envelope: snapshot_at(key_epoch),
    }
}

fn event_at(key_epoch: u32, session: u8, counter: u64) -> ClientFrame {
    let mut envelope = envelope(EnvelopeKind::Event, tag(1), session, counter);
    envelope[2..6].copy_from_slice(&key_epoch.to_be_bytes());
    ClientFrame::Publish { envelope }
}

#[test]
fn a_rotation_moves_the_room_to_the_new_key_and_closes_every_other_socket() {
    let mut room = Room::new();
    for id in 1..=3 {
        room.join(id, &[1]);
    }
    for counter in 1..=3 {
        room.publish(2, 1, 2, counter);
    }
    let outs = room.frame(1, &rotate_frame(1, 7, 8, 1, 3));
    assert_eq!(
        to(&outs, 1),
        [
            RelayFrame::KeyEpoch { key_epoch: 1 },
            RelayFrame::SnapshotStored { seq: 3 },
            RelayFrame::Presence { count: 1 },
        ]
    );
    for other in [2, 3] {
        assert_eq!(
            to(&outs, other).iter().map(error_code).collect::<Vec<_>>(),
            [Some((RelayErrorCode::Rotated, true))]
        );
    }
    assert_eq!(closes(&outs), [(2, 4005), (3, 4005)]);
    assert!(!room.peers.contains_key(&2) && !room.peers.contains_key(&3));
    // The stored state: the new key and epoch, the snapshot, no event of the old epoch.
    assert_eq!(room.store.key_epoch().unwrap(), 1);
    assert_eq!(room.store.member_key().unwrap(), Some(keys(8).member_key()));
    assert_eq!(
        room.store.snapshot().unwrap().unwrap().envelope,
        snapshot_at(1)
    );
    assert!(room
        .store
        .events_after(0, 100, u64::MAX)
        .unwrap()
        .is_empty());
    assert_eq!(room.store.usage().unwrap().events, 0);

    // The old key no longer joins; the new one does, and hears the epoch before the
    // catch-up (the snapshot, under the new key).
    room.open(4);
    let outs = room.hello(4, 0, 7, &[1]);
    assert_eq!(closes(&outs), [(4, 4001)]);
    room.open(5);
    let outs = room.hello(5, 0, 8, &[1]);
    let frames = to(&outs, 5);
    assert!(matches!(frames[0], RelayFrame::Welcome { head_seq: 3, .. }));
    assert_eq!(frames[1], RelayFrame::KeyEpoch { key_epoch: 1 });
    assert_eq!(
        frames[2],
        RelayFrame::Snapshot {
            seq: 3,
            envelope: snapshot_at(1)
        }
    );
    // Writes under the old epoch are refused; under the new one they are stored.
    let outs = room.frame(5, &event_at(0, 5, 1));
    assert_eq!(
        to(&outs, 5).iter().filter_map(refused).collect::<Vec<_>>(),
        [(5, 1, RelayErrorCode::Rotated, 0)]
    );
    assert_eq!(room.store.head_seq().unwrap(), 3);
    let outs = room.frame(
        5,
        &ClientFrame::SnapshotPut {
            upto_seq: 3,
            envelope: snapshot_at(0),
        },
    );
    assert_eq!(
        to(&outs, 5).iter().map(error_code).collect::<Vec<_>>(),
        [Some((RelayErrorCode::Rotated, false))]
    );
    let mut old_ephemeral = envelope(EnvelopeKind::Ephemeral, tag(1), 5, 2);
    old_ephemeral[2..6].copy_from_slice(&0_u32.to_be_bytes());
    let outs = room.frame(
        5,
        &ClientFrame::Ephemeral {
            envelope: old_ephemeral,
        },
    );
    assert_eq!(
        to(&outs, 5).iter().map(error_code).collect::<Vec<_>>(),
        [Some((RelayErrorCode::Rotated, false))]
    );
    assert!(
        to(&outs, 1).is_empty(),
        "an old-epoch ephemeral frame is not relayed"
    );
    let outs = room.frame(5, &event_at(1, 5, 2));
    assert!(matches!(to(&outs, 5)[0], RelayFrame::Ack { seq: 4, .. }));
    assert!(matches!(to(&outs, 1)[0], RelayFrame::Event { seq: 4, .. }));
    // Catch-up from before the rotation brings the new snapshot, then the new events.
    room.open(6);
    let outs = room.hello(6, 1, 8, &[1]);
    let frames = to(&outs, 6);
    assert!(matches!(frames[2], RelayFrame::Snapshot { seq: 3, .. }));
    assert!(matches!(frames[3], RelayFrame::Event { seq: 4, .. }));
}

#[test]
fn a_rotation_without_the_current_keys_proof_or_at_the_wrong_point_is_refused() {
    let mut room = Room::new();
    room.join(1, &[1]);
    room.join(2, &[1]);
    room.publish(1, 1, 1, 1);
    let unchanged = |room: &Room| {
        assert_eq!(room.store.key_epoch().unwrap(), 0);
        assert_eq!(room.store.member_key().unwrap(), Some(keys(7).member_key()));
        assert_eq!(room.store.snapshot().unwrap(), None);
        assert_eq!(room.store.usage().unwrap().events, 1);
        assert!(room.peers.contains_key(&2));
    };
    let code = |outs: &[Out], id| to(outs, id).iter().map(error_code).collect::<Vec<_>>();

    // Not at the room's head: read what came since.
    let outs = room.frame(1, &rotate_frame(1, 7, 8, 1, 0));
    assert_eq!(code(&outs, 1), [Some((RelayErrorCode::NotCaughtUp, false))]);
    unchanged(&room);
    // Not the next epoch, or a snapshot sealed at another one.
    let outs = room.frame(1, &rotate_frame(1, 7, 8, 2, 1));
    assert_eq!(code(&outs, 1), [Some((RelayErrorCode::BadFrame, false))]);
    let mut frame = rotate_frame(1, 7, 8, 1, 1);
    if let ClientFrame::Rotate { envelope, .. } = &mut frame {
        *envelope = snapshot_at(0);
    }
    let outs = room.frame(1, &frame);
    assert_eq!(code(&outs, 1), [Some((RelayErrorCode::BadFrame, false))]);
    unchanged(&room);
    // To the current key.
    let outs = room.frame(1, &rotate_frame(1, 7, 7, 1, 1));
    assert_eq!(code(&outs, 1), [Some((RelayErrorCode::BadFrame, false))]);
    unchanged(&room);
    // A read-only member may not rotate.
    room.peers.get_mut(&2).unwrap().role = Some(crate::auth::READ_ONLY_ROLE.into());
    let outs = room.frame(2, &rotate_frame(2, 7, 8, 1, 1));
    assert_eq!(code(&outs, 2), [Some((RelayErrorCode::ReadOnly, false))]);
    unchanged(&room);
    // Signed by another key than the room's, or over another socket's challenge: the
    // socket is closed as for a HELLO that proves nothing.
    let outs = room.frame(1, &rotate_frame(1, 8, 8, 1, 1));
    assert_eq!(
        code(&outs, 1),
        [Some((RelayErrorCode::WrongVerifier, true))]
    );
    assert_eq!(closes(&outs), [(1, 4001)]);
    unchanged(&room);
    room.join(3, &[1]);
    let outs = room.frame(3, &rotate_frame(2, 7, 8, 1, 1));
    assert_eq!(closes(&outs), [(3, 4001)]);
    unchanged(&room);
    // A socket that has not joined cannot rotate.
    room.open(4);
    let outs = room.frame(4, &rotate_frame(4, 7, 8, 1, 1));
    assert_eq!(code(&outs, 4), [Some((RelayErrorCode::NotJoined, false))]);
    unchanged(&room);
}

#[test]
fn an_empty_room_rotates_without_a_snapshot_and_is_kept_when_its_sockets_leave() {
    let mut room = Room::new();
    room.join(1, &[1]);
    assert!(disposable(&room.store).unwrap());
    let outs = room.frame(1, &rotate_frame(1, 7, 8, 1, 0));
    assert_eq!(
        to(&outs, 1),
        [
            RelayFrame::KeyEpoch { key_epoch: 1 },
            RelayFrame::Presence { count: 1 }
        ]
    );
    assert_eq!(room.store.snapshot().unwrap(), None);
    assert_eq!(room.store.key_epoch().unwrap(), 1);
    // Deleted now, it would come back at epoch 0 under whatever key joins first.
    assert!(!disposable(&room.store).unwrap());
}
