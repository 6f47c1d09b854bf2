//! Hybrid logical clock: wall time plus a counter, ties broken by the replica id.

use serde::{Deserialize, Serialize};

use crate::ids::DeviceId;

/// A hybrid-logical-clock timestamp. Ordered by `wall`, then `counter`, then `device`,
/// so two distinct replicas never produce equal timestamps.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Hlc {
    /// Wall-clock milliseconds since the Unix epoch (as corrected by the clock).
    pub wall: u64,
    /// Logical counter for events within the same millisecond.
    pub counter: u32,
    /// The replica that made the timestamp.
    pub device: DeviceId,
}
