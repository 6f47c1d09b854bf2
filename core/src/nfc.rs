//! The core's own Unicode NFC normalisation (feature `unicode-nfc`), used by
//! [`RoomId::new`](crate::RoomId::new) and
//! [`RoomKey::from_password`](crate::RoomKey::from_password).
//!
//! Builds that can reach a platform NFC (the browser's `String.prototype.normalize`) leave
//! the feature off and pass theirs to the `_with` constructors, saving the tables. NFC is
//! stable for assigned characters across Unicode versions, so the two agree on every string
//! whose characters both versions know.

use alloc::string::String;

use unicode_normalization::UnicodeNormalization;

/// The NFC form of `s`, in a buffer sized up front for NFC's worst-case growth (three
/// times the input), so that no reallocation leaves a partial copy of a password in freed
/// memory.
#[must_use]
pub fn nfc(s: &str) -> String {
    let mut out = String::with_capacity(s.len().saturating_mul(3));
    out.extend(s.nfc());
    out
}
