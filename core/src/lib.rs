//! # sealsync-core
//!
//! The pure core of sealsync: key derivation, sealing, the wire format, the replicated
//! state and its merge, and the connection machine. It performs no I/O, reads no clock and
//! draws no randomness of its own: time comes in as [`Millis`]/[`WallMillis`] arguments and
//! random bytes through an [`Entropy`] the shell supplies. It is `no_std` + `alloc`.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod envelope;
pub mod error;
pub mod hlc;
pub mod ids;
pub mod kdf;
pub mod seal;
pub mod wire;

pub use envelope::{EnvelopeHeader, EnvelopeKind};
pub use error::{Error, Result};
pub use hlc::Hlc;
pub use ids::{ChannelTag, DeviceId, Entropy, Millis, RoomId, SessionId, WallMillis};
pub use kdf::{RoomKey, RoomKeys};
pub use seal::{padded_len, Opened, Opener, SessionSealer, MAX_BODY_LEN};
