//! One line per wire frame for logs (the SDK's `debug` option): the frame's name, its
//! sequence numbers, counters and sizes, and an envelope's header (kind, key epoch, the
//! sender session's first bytes, counter) — never a body, a key, a challenge, a proof or a
//! token, so a log holds nothing a relay could not already see, and less.

use alloc::format;
use alloc::string::String;

use crate::envelope::EnvelopeHeader;
use crate::wire::{ClientFrame, RelayFrame};

/// A frame a client sends, described; one that does not decode says why.
#[must_use]
pub fn client_frame(bytes: &[u8]) -> String {
    match ClientFrame::decode(bytes) {
        Ok(ClientFrame::Hello {
            after_seq,
            channels,
            ..
        }) => format!("HELLO after {after_seq}, {} channel(s)", channels.len()),
        Ok(ClientFrame::Publish { envelope }) => format!("PUBLISH {}", envelope_line(&envelope)),
        Ok(ClientFrame::Sync { after_seq, .. }) => format!("SYNC after {after_seq}"),
        Ok(ClientFrame::SnapshotPut { upto_seq, envelope }) => {
            format!(
                "SNAPSHOT_PUT up to {upto_seq}, {}",
                envelope_line(&envelope)
            )
        }
        Ok(ClientFrame::Ephemeral { envelope }) => {
            format!("EPHEMERAL {}", envelope_line(&envelope))
        }
        Ok(ClientFrame::Rotate {
            key_epoch,
            upto_seq,
            envelope,
            ..
        }) => format!(
            "ROTATE to epoch {key_epoch}, snapshot up to {upto_seq}, {}",
            envelope_line(&envelope)
        ),
        Err(e) => undecodable(bytes, &e),
    }
}

/// A frame a relay sends, described; one that does not decode says why.
#[must_use]
pub fn relay_frame(bytes: &[u8]) -> String {
    match RelayFrame::decode(bytes) {
        Ok(RelayFrame::Welcome {
            head_seq,
            snapshot_seq,
            presence,
            access,
            ..
        }) => format!(
            "WELCOME head {head_seq}, snapshot {snapshot_seq}, presence {presence}, {access:?}"
        ),
        Ok(RelayFrame::Ack {
            counter,
            seq,
            duplicate,
            ..
        }) => format!(
            "ACK counter {counter} as seq {seq}{}",
            if duplicate { " (duplicate)" } else { "" }
        ),
        Ok(RelayFrame::Event { seq, envelope, .. }) => {
            format!("EVENT seq {seq}, {}", envelope_line(&envelope))
        }
        Ok(RelayFrame::Snapshot { seq, envelope }) => {
            format!("SNAPSHOT up to {seq}, {}", envelope_line(&envelope))
        }
        Ok(RelayFrame::CaughtUp { head_seq, .. }) => format!("CAUGHT_UP head {head_seq}"),
        Ok(RelayFrame::Ephemeral { envelope }) => {
            format!("EPHEMERAL {}", envelope_line(&envelope))
        }
        Ok(RelayFrame::Presence { count }) => format!("PRESENCE {count}"),
        Ok(RelayFrame::Error {
            code,
            fatal,
            message,
        }) => format!(
            "ERROR {}{}: {message}",
            code.name(),
            if fatal { " (fatal)" } else { "" }
        ),
        Ok(RelayFrame::Notify { json }) => format!("NOTIFY {} B", json.len()),
        Ok(RelayFrame::SnapshotStored { seq }) => format!("SNAPSHOT_STORED up to {seq}"),
        Ok(RelayFrame::Refused {
            counter,
            code,
            retry_after_ms,
            message,
            ..
        }) => format!(
            "REFUSED counter {counter} {}, retry after {retry_after_ms} ms: {message}",
            code.name()
        ),
        Ok(RelayFrame::Access { access }) => format!("ACCESS {access:?}"),
        Ok(RelayFrame::Challenge { .. }) => String::from("CHALLENGE"),
        Ok(RelayFrame::KeyEpoch { key_epoch }) => format!("KEY_EPOCH {key_epoch}"),
        Err(e) => undecodable(bytes, &e),
    }
}

/// An envelope's size and header.
fn envelope_line(envelope: &[u8]) -> String {
    match EnvelopeHeader::parse(envelope) {
        Ok((h, _)) => format!(
            "{} B {:?} epoch {} session {:02x}{:02x}{:02x}{:02x}… counter {}",
            envelope.len(),
            h.kind,
            h.key_epoch,
            h.session.0[0],
            h.session.0[1],
            h.session.0[2],
            h.session.0[3],
            h.counter
        ),
        Err(e) => format!("{} B, header does not parse ({})", envelope.len(), e.code()),
    }
}

fn undecodable(bytes: &[u8], e: &crate::Error) -> String {
    format!("{} B that do not decode ({})", bytes.len(), e.code())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::EnvelopeKind;
    use crate::ids::{ChannelTag, SessionId};
    use crate::wire::RelayErrorCode;
    use alloc::vec::Vec;

    fn envelope() -> Vec<u8> {
        let header = EnvelopeHeader {
            kind: EnvelopeKind::Event,
            key_epoch: 0,
            channel: ChannelTag([0; 16]),
            session: SessionId([0xAB; 16]),
            counter: 7,
            nonce: [0; 12],
            commitment: [0; 32],
        };
        let mut out = Vec::new();
        header.write_to(&mut out);
        // A recognisable "body": it must never reach the description.
        out.extend_from_slice(&[0x5E; 80]);
        out
    }

    #[test]
    fn frames_are_described_by_their_header_never_their_contents() {
        let publish = ClientFrame::Publish {
            envelope: envelope(),
        }
        .encode()
        .unwrap();
        let line = client_frame(&publish);
        assert!(line.starts_with("PUBLISH 170 B Event epoch 0 session abababab… counter 7"));
        assert!(!line.contains("5e") && !line.contains("5E"), "{line}");
        let event = RelayFrame::Event {
            seq: 12,
            relay_time: 1,
            envelope: envelope(),
        }
        .encode()
        .unwrap();
        assert!(relay_frame(&event).starts_with("EVENT seq 12, 170 B Event"));
        let sync = ClientFrame::Sync {
            after_seq: 3,
            token: 0xDEAD_BEEF,
        }
        .encode()
        .unwrap();
        let line = client_frame(&sync);
        assert_eq!(line, "SYNC after 3");
        let refused = RelayFrame::Refused {
            session: SessionId([1; 16]),
            counter: 4,
            code: RelayErrorCode::RateLimited,
            retry_after_ms: 250,
            message: "wait".into(),
        }
        .encode()
        .unwrap();
        assert_eq!(
            relay_frame(&refused),
            "REFUSED counter 4 RATE_LIMITED, retry after 250 ms: wait"
        );
        let notify = RelayFrame::Notify {
            json: "{\"secret\":1}".into(),
        }
        .encode()
        .unwrap();
        assert_eq!(relay_frame(&notify), "NOTIFY 12 B");
        let challenge = RelayFrame::Challenge { challenge: [9; 32] }
            .encode()
            .unwrap();
        assert_eq!(relay_frame(&challenge), "CHALLENGE");
        assert_eq!(
            relay_frame(&[2, 0x7F]),
            "2 B that do not decode (UNKNOWN_FRAME)"
        );
        assert!(client_frame(&[9; 4]).contains("do not decode"));
    }
}
