//! Property tests of the frame codec: every frame round-trips, and no input makes a
//! decoder panic (random bytes, and valid frames flipped, truncated and extended).
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers: a failed unwrap is a failed test"
)]

use proptest::collection::vec;
use proptest::prelude::*;

use sealsync_core::limits::RelayLimits;
use sealsync_core::member::{CHALLENGE_LEN, MEMBER_KEY_LEN, PROOF_LEN};
use sealsync_core::wire::{
    publish_header, Access, ClientFrame, RelayErrorCode, RelayFrame, VerifierState, MAX_CHANNELS,
    MAX_ERROR_MESSAGE, MIN_ENVELOPE_LEN, VERSION,
};
use sealsync_core::{ChannelTag, EnvelopeHeader, SessionId};

/// A valid envelope for the codec: 170..=4096 bytes, version 1, the given kind.
fn envelope(kind: u8) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), (MIN_ENVELOPE_LEN - 2)..=(4096 - 2)).prop_map(move |tail| {
        let mut e = vec![1, kind];
        e.extend(tail);
        e
    })
}

fn client_frame() -> impl Strategy<Value = ClientFrame> {
    prop_oneof![
        (
            any::<u64>(),
            any::<[u8; MEMBER_KEY_LEN]>(),
            any::<[u8; PROOF_LEN]>(),
            vec(any::<[u8; 16]>().prop_map(ChannelTag), 1..=MAX_CHANNELS)
        )
            .prop_map(
                |(after_seq, member_key, proof, channels)| ClientFrame::Hello {
                    after_seq,
                    member_key,
                    proof,
                    channels
                }
            ),
        envelope(1).prop_map(|envelope| ClientFrame::Publish { envelope }),
        (any::<u64>(), any::<u64>())
            .prop_map(|(after_seq, token)| ClientFrame::Sync { after_seq, token }),
        (any::<u64>(), envelope(2))
            .prop_map(|(upto_seq, envelope)| ClientFrame::SnapshotPut { upto_seq, envelope }),
        envelope(3).prop_map(|envelope| ClientFrame::Ephemeral { envelope }),
        (
            any::<u32>(),
            any::<[u8; MEMBER_KEY_LEN]>(),
            any::<[u8; PROOF_LEN]>(),
            any::<u64>(),
            envelope(2)
        )
            .prop_map(|(key_epoch, member_key, proof, upto_seq, envelope)| {
                ClientFrame::Rotate {
                    key_epoch,
                    member_key,
                    proof,
                    upto_seq,
                    envelope,
                }
            }),
    ]
}

fn access() -> impl Strategy<Value = Access> {
    prop_oneof![
        Just(Access::Write),
        Just(Access::ReadOnly),
        Just(Access::Pending)
    ]
}

fn limits() -> impl Strategy<Value = RelayLimits> {
    (
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(
            |(
                max_frame_bytes,
                rate_burst,
                rate_per_second,
                max_history_events,
                max_history_bytes,
            )| {
                RelayLimits {
                    max_frame_bytes,
                    rate_burst,
                    rate_per_second,
                    max_history_events,
                    max_history_bytes,
                }
            },
        )
}

/// Text of at most 1024 bytes of UTF-8: 0 to 256 chars of at most 4 bytes.
const MESSAGE: &str = "\\PC{0,256}";

fn relay_frame() -> impl Strategy<Value = RelayFrame> {
    prop_oneof![
        (
            (any::<u64>(), any::<u64>(), any::<u64>(), any::<u32>()),
            prop_oneof![Just(VerifierState::Created), Just(VerifierState::Matched)],
            access(),
            limits(),
        )
            .prop_map(
                |(
                    (relay_time, head_seq, snapshot_seq, presence),
                    verifier_state,
                    access,
                    limits,
                )| {
                    RelayFrame::Welcome {
                        relay_time,
                        head_seq,
                        snapshot_seq,
                        presence,
                        verifier_state,
                        access,
                        limits,
                    }
                }
            ),
        (
            any::<[u8; 16]>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<bool>()
        )
            .prop_map(
                |(session, counter, seq, relay_time, duplicate)| RelayFrame::Ack {
                    session: SessionId(session),
                    counter,
                    seq,
                    relay_time,
                    duplicate,
                }
            ),
        (any::<u64>(), any::<u64>(), envelope(1)).prop_map(|(seq, relay_time, envelope)| {
            RelayFrame::Event {
                seq,
                relay_time,
                envelope,
            }
        }),
        (any::<u64>(), envelope(2))
            .prop_map(|(seq, envelope)| RelayFrame::Snapshot { seq, envelope }),
        (any::<u64>(), any::<u64>())
            .prop_map(|(head_seq, token)| RelayFrame::CaughtUp { head_seq, token }),
        envelope(3).prop_map(|envelope| RelayFrame::Ephemeral { envelope }),
        any::<u32>().prop_map(|count| RelayFrame::Presence { count }),
        (any::<u16>(), any::<bool>(), MESSAGE).prop_map(|(code, fatal, message)| {
            RelayFrame::Error {
                code: RelayErrorCode::from(code),
                fatal,
                message,
            }
        }),
        "\\PC{0,512}".prop_map(|json| RelayFrame::Notify { json }),
        any::<u64>().prop_map(|seq| RelayFrame::SnapshotStored { seq }),
        (
            any::<[u8; 16]>(),
            any::<u64>(),
            any::<u16>(),
            any::<u32>(),
            MESSAGE
        )
            .prop_map(|(session, counter, code, retry_after_ms, message)| {
                RelayFrame::Refused {
                    session: SessionId(session),
                    counter,
                    code: RelayErrorCode::from(code),
                    retry_after_ms,
                    message,
                }
            }),
        access().prop_map(|access| RelayFrame::Access { access }),
        any::<[u8; CHALLENGE_LEN]>().prop_map(|challenge| RelayFrame::Challenge { challenge }),
        any::<u32>().prop_map(|key_epoch| RelayFrame::KeyEpoch { key_epoch }),
    ]
}

/// Either a valid client frame's bytes or a valid relay frame's bytes.
fn valid_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        client_frame().prop_map(|f| f.encode().unwrap()),
        relay_frame().prop_map(|f| f.encode().unwrap()),
    ]
}

/// Decodes with both decoders (which must not panic); whatever decodes must re-encode to
/// exactly `bytes`. Returns whether either decoder accepted the bytes.
fn decode_both(bytes: &[u8]) -> bool {
    let client = ClientFrame::decode(bytes).map(|f| f.encode().unwrap());
    let relay = RelayFrame::decode(bytes).map(|f| f.encode().unwrap());
    if let Ok(again) = &client {
        assert_eq!(again, bytes);
    }
    if let Ok(again) = &relay {
        assert_eq!(again, bytes);
    }
    assert!(
        client.is_err() || relay.is_err(),
        "both decoders accepted {bytes:02x?}"
    );
    client.is_ok() || relay.is_ok()
}

/// The envelope length of a frame that ends in one, from its bytes' type byte.
fn trailing_envelope_len(bytes: &[u8]) -> Option<usize> {
    let fixed = match bytes[1] {
        0x02 | 0x05 | 0x86 => 2,
        0x04 | 0x84 => 2 + 8,
        0x06 => 2 + 108,
        0x83 => 2 + 16,
        _ => return None,
    };
    Some(bytes.len() - fixed)
}

proptest! {
    #[test]
    fn client_frames_round_trip(frame in client_frame()) {
        let bytes = frame.encode().unwrap();
        prop_assert_eq!(ClientFrame::decode(&bytes).unwrap(), frame);
        // A client frame is unknown to the relay-frame decoder.
        prop_assert_eq!(RelayFrame::decode(&bytes).unwrap_err().code(), "UNKNOWN_FRAME");
    }

    #[test]
    fn relay_frames_round_trip(frame in relay_frame()) {
        let bytes = frame.encode().unwrap();
        prop_assert_eq!(RelayFrame::decode(&bytes).unwrap(), frame);
        prop_assert_eq!(ClientFrame::decode(&bytes).unwrap_err().code(), "UNKNOWN_FRAME");
    }

    #[test]
    fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..=4096)) {
        decode_both(&bytes);
    }

    #[test]
    fn random_bytes_after_a_valid_header_never_panic(
        frame_type in prop_oneof![0x00..=0x07u8, 0x80..=0x8Fu8],
        body in vec(any::<u8>(), 0..=256),
    ) {
        let mut bytes = vec![VERSION, frame_type];
        bytes.extend(body);
        decode_both(&bytes);
    }

    #[test]
    fn flipped_frames_never_panic(
        bytes in valid_bytes(),
        flips in vec((any::<prop::sample::Index>(), 1..=255u8), 1..=8),
    ) {
        let mut bytes = bytes;
        for (at, mask) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= mask;
        }
        decode_both(&bytes);
    }

    #[test]
    fn truncated_frames_never_panic(bytes in valid_bytes()) {
        // Below this length a prefix cannot hold a whole frame.
        let shortest = match trailing_envelope_len(&bytes) {
            Some(env_len) => bytes.len() - env_len + MIN_ENVELOPE_LEN,
            None => bytes.len(),
        };
        for len in 0..bytes.len() {
            let accepted = decode_both(&bytes[..len]);
            prop_assert!(!accepted || len >= shortest, "prefix of {} bytes accepted", len);
        }
    }

    #[test]
    fn extended_frames_never_panic(bytes in valid_bytes(), extra in vec(any::<u8>(), 1..=64)) {
        let ends_in_envelope = trailing_envelope_len(&bytes).is_some();
        let mut long = bytes;
        long.extend(extra);
        let accepted = decode_both(&long);
        // Only an envelope (the rest of the frame) can absorb extra bytes.
        prop_assert_eq!(accepted, ends_in_envelope);
    }
}

proptest! {
    #[test]
    fn publish_header_reads_exactly_the_publish_frames(bytes in valid_bytes()) {
        let header = publish_header(&bytes);
        match ClientFrame::decode(&bytes) {
            Ok(ClientFrame::Publish { envelope }) => {
                prop_assert_eq!(header, Some(EnvelopeHeader::parse(&envelope).unwrap().0));
            }
            _ => prop_assert_eq!(header, None),
        }
        // Another version byte: not a PUBLISH of this version.
        let mut other = bytes;
        other[0] ^= 0x03;
        prop_assert_eq!(publish_header(&other), None);
    }

    #[test]
    fn messages_over_the_limit_are_refused_by_both_encoders(
        extra in 1..=64usize,
        code in any::<u16>(),
    ) {
        let message = "x".repeat(MAX_ERROR_MESSAGE + extra);
        let error = RelayFrame::Error { code: RelayErrorCode::from(code), fatal: false, message: message.clone() };
        prop_assert_eq!(error.encode().unwrap_err().code(), "MALFORMED_FRAME");
        let refused = RelayFrame::Refused {
            session: SessionId([0; 16]),
            counter: 1,
            code: RelayErrorCode::from(code),
            retry_after_ms: 0,
            message,
        };
        prop_assert_eq!(refused.encode().unwrap_err().code(), "MALFORMED_FRAME");
    }
}
