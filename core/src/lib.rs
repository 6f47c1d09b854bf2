//! # sealsync-core
//!
//! The pure core of sealsync: key derivation, sealing, the wire format, the replicated
//! state and its merge, and the connection machine. It performs no I/O, reads no clock and
//! draws no randomness of its own: time comes in as [`Millis`]/[`WallMillis`] arguments and
//! random bytes through an [`Entropy`] the shell supplies. It is `no_std` + `alloc`.
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`kdf`] | room key from a password (Argon2id) or a 256-bit secret; HKDF subkeys |
//! | [`seal`], [`envelope`] | sealing and opening envelopes (AES-256-GCM + key commitment) |
//! | [`wire`] | every frame between client and relay (see `PROTOCOL.md`) |
//! | [`hlc`], [`merge`] | hybrid logical clock; the replicated state and its merge |
//! | [`backoff`], [`outbox`], [`replay`], [`client`] | the sans-IO connection machine |
//!
//! # Example: two replicas through a (hand-carried) relay
//!
//! ```
//! use sealsync_core::client::{Client, ClientConfig, Output};
//! use sealsync_core::kdf::{RoomKey, RoomKeys};
//! use sealsync_core::merge::Op;
//! use sealsync_core::limits::RelayLimits;
//! use sealsync_core::wire::{Access, RelayFrame, VerifierState};
//! use sealsync_core::{DeviceId, Entropy, Millis, RoomId, SessionId, WallMillis};
//!
//! // The shell supplies randomness (getrandom in the browser); tests use a seeded source.
//! struct Seeded(u8);
//! impl Entropy for Seeded {
//!     fn fill(&mut self, dest: &mut [u8]) {
//!         for b in dest { self.0 = self.0.wrapping_mul(31).wrapping_add(7); *b = self.0; }
//!     }
//! }
//!
//! let room = RoomId::new("team-42")?;
//! let secret = RoomKey::generate_secret(&mut Seeded(1));
//! let replica = |n: u8| {
//!     let keys = RoomKeys::derive(&RoomKey::from_secret(&secret)?, room.clone());
//!     let config = ClientConfig::new(room.clone(), DeviceId([n; 16]), SessionId([n; 16]));
//!     Ok::<_, sealsync_core::Error>(Client::new(config, keys, Box::new(Seeded(n))))
//! };
//! let (mut alice, mut bob) = (replica(1)?, replica(2)?);
//! let wall = WallMillis(1_700_000_000_000);
//!
//! // Alice edits while offline: the change applies at once and waits in her outbox.
//! let op = Op::from_json(br#"{"type":"created","collection":"tasks","id":"t1",
//!                             "fields":{"title":"Ship it"}}"#)?;
//! alice.handle_local_op(Millis(0), wall, op)?;
//! alice.handle_flush(Millis(0)); // once per burst of changes: seals them together
//! assert_eq!(alice.outbox_len(), 1);
//!
//! // The relay stores the sealed envelope as seq 1 and later hands it to Bob.
//! let envelope = alice.outbox_envelopes().remove(0);
//! bob.handle_start(Millis(0));
//! bob.handle_socket_opened(Millis(10));
//! let limits = RelayLimits { max_frame_bytes: 1 << 20, rate_burst: 120, rate_per_second: 60,
//!                            max_history_events: 100_000, max_history_bytes: 1 << 28 };
//! let welcome = RelayFrame::Welcome { relay_time: wall.0, head_seq: 1, snapshot_seq: 0,
//!                                     presence: 2, verifier_state: VerifierState::Matched,
//!                                     access: Access::Write, limits };
//! bob.handle_frame(Millis(20), wall, &welcome.encode()?);
//! let event = RelayFrame::Event { seq: 1, relay_time: wall.0, envelope };
//! bob.handle_frame(Millis(21), wall, &event.encode()?);
//! bob.handle_frame(Millis(22), wall, &RelayFrame::CaughtUp { head_seq: 1, token: 0 }.encode()?);
//! while let Some(out) = bob.poll() {
//!     if let Output::Send(frame) = out { /* to the relay */ let _ = frame; }
//! }
//! assert_eq!(bob.replica().get("tasks")[0].1["title"], "Ship it");
//! # Ok::<(), sealsync_core::Error>(())
//! ```
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod backoff;
pub mod client;
pub mod describe;
pub mod envelope;
pub mod error;
pub mod hlc;
pub mod ids;
pub mod kdf;
pub mod limits;
pub mod member;
pub mod merge;
#[cfg(feature = "unicode-nfc")]
pub mod nfc;
pub mod outbox;
pub mod replay;
pub mod roster;
pub mod seal;
pub mod wire;

pub use envelope::{EnvelopeHeader, EnvelopeKind};
pub use error::{Error, Result};
pub use hlc::{effective, Clock, Hlc, MAX_FORWARD_SKEW_MS};
pub use ids::{ChannelTag, DeviceId, Entropy, Millis, RoomId, SessionId, WallMillis};
pub use kdf::{RoomKey, RoomKeys};
pub use merge::{key_between, Change, ChangeKind, Op, Replica, StampedOp};
pub use seal::{padded_len, Opened, Opener, SessionSealer, MAX_BODY_LEN};
