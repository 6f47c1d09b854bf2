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

pub mod error;
pub mod hlc;
pub mod ids;
pub mod merge;

pub use error::{Error, Result};
pub use hlc::{effective, Clock, Hlc, MAX_FORWARD_SKEW_MS};
pub use ids::{ChannelTag, DeviceId, Entropy, Millis, RoomId, SessionId, WallMillis};
pub use merge::{key_between, Change, ChangeKind, Op, Replica, StampedOp};
