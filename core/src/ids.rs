//! Newtypes for the ids and times that cross the core's boundary.

use alloc::string::String;
use core::fmt;

use crate::error::{Error, Result};

/// The longest room id, in bytes of UTF-8 after NFC normalisation.
pub const MAX_ROOM_ID_LEN: usize = 128;

/// A room's name, NFC-normalised: 1 to [`MAX_ROOM_ID_LEN`] bytes, no control characters,
/// no invisible format characters ([`is_invisible`]: bidirectional controls, zero-width
/// characters), no `/` (it is a URL path segment on the relay).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoomId(String);

impl RoomId {
    /// Normalises `name` to NFC and checks it.
    ///
    /// # Errors
    /// [`Error::InvalidRoomId`] when it is empty, too long, or holds a control character, an
    /// invisible format character or `/`.
    #[cfg(feature = "unicode-nfc")]
    pub fn new(name: &str) -> Result<Self> {
        Self::new_with(name, crate::nfc::nfc)
    }

    /// Normalises `name` with `nfc`, which must return the NFC form of its input (the
    /// platform's, e.g. JavaScript's `String.prototype.normalize("NFC")`), and checks it.
    /// [`RoomId::new`] is this with the core's own NFC.
    ///
    /// # Errors
    /// As [`RoomId::new`].
    pub fn new_with(name: &str, nfc: impl FnOnce(&str) -> String) -> Result<Self> {
        let normalized = nfc(name);
        if normalized.is_empty() {
            return Err(Error::InvalidRoomId {
                reason: "it is empty",
            });
        }
        if normalized.len() > MAX_ROOM_ID_LEN {
            return Err(Error::InvalidRoomId {
                reason: "it is longer than 128 bytes",
            });
        }
        if normalized.chars().any(|c| c.is_control() || c == '/') {
            return Err(Error::InvalidRoomId {
                reason: "it holds a control character or '/'",
            });
        }
        if normalized.chars().any(is_invisible) {
            return Err(Error::InvalidRoomId {
                reason: "it holds an invisible character (bidirectional control, zero-width \
                         character or other format character)",
            });
        }
        Ok(Self(normalized))
    }

    /// The normalised name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `c` is a format character (Unicode general category `Cf`: bidirectional
/// controls, zero-width spaces and joiners, the byte-order mark, tag characters, …) or a
/// line or paragraph separator: characters that change how a room id looks, or hide in
/// it, so that two ids that look the same would name different rooms.
#[must_use]
pub const fn is_invisible(c: char) -> bool {
    matches!(
        c as u32,
        0x00AD
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x2028..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

impl fmt::Debug for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RoomId({:?})", self.0)
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! byte_id {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Length in bytes.
            pub const LEN: usize = $len;

            /// The raw bytes.
            #[must_use]
            pub const fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "("))?;
                for b in &self.0[..4] {
                    write!(f, "{b:02x}")?;
                }
                write!(f, "…)")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                for b in &self.0 {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }
    };
}

byte_id!(
    /// A replica's stable id (one per browser profile and room). Travels only inside
    /// ciphertext; ties between equal clocks are broken by it.
    DeviceId,
    16
);
byte_id!(
    /// A random id per SDK session: the sender id the relay sees. A new one per page load,
    /// so the relay cannot link a device's sessions.
    SessionId,
    16
);
byte_id!(
    /// The relay-visible tag of a channel: HMAC-SHA256(channel key, name), first 16 bytes.
    ChannelTag,
    16
);

/// Monotonic time in milliseconds, for timers and backoff. Its origin is the shell's
/// choice (e.g. `performance.now()`); only differences matter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Millis(pub u64);

impl Millis {
    /// `self + ms`, saturating.
    #[must_use]
    pub const fn plus(self, ms: u64) -> Self {
        Self(self.0.saturating_add(ms))
    }

    /// `self - earlier` in ms, zero when `earlier` is later.
    #[must_use]
    pub const fn since(self, earlier: Self) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// Wall-clock time in milliseconds since the Unix epoch, for the hybrid logical clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct WallMillis(pub u64);

/// A source of cryptographically secure random bytes, supplied by the shell
/// (`getrandom` in the browser and on the host; a seeded generator in tests).
pub trait Entropy {
    /// Fills `dest` with random bytes.
    fn fill(&mut self, dest: &mut [u8]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::ToString;

    #[test]
    fn room_id_is_nfc_normalised() {
        // "é" as e + combining acute normalises to the single code point.
        let decomposed = RoomId::new("cafe\u{301}").unwrap();
        let composed = RoomId::new("caf\u{e9}").unwrap();
        assert_eq!(decomposed, composed);
        assert_eq!(composed.as_str().len(), 5);
    }

    #[test]
    fn room_id_new_with_checks_what_the_given_normaliser_returns() {
        // The checks apply to the normalised form, whatever produced it.
        let upper = RoomId::new_with("team", |s| s.to_uppercase()).unwrap();
        assert_eq!(upper.as_str(), "TEAM");
        let emptied = RoomId::new_with("team", |_| String::new()).unwrap_err();
        assert_eq!(emptied.code(), "INVALID_ROOM_ID");
        let slashed = RoomId::new_with("team", |_| "a/b".into()).unwrap_err();
        assert_eq!(slashed.code(), "INVALID_ROOM_ID");
        // `new` is `new_with` and the core's own NFC.
        assert_eq!(
            RoomId::new_with("cafe\u{301}", crate::nfc::nfc).unwrap(),
            RoomId::new("cafe\u{301}").unwrap()
        );
    }

    #[test]
    fn room_id_rejects_bad_names() {
        for bad in ["", "a/b", "tab\there", &"x".repeat(129)] {
            let err = RoomId::new(bad).unwrap_err();
            assert_eq!(err.code(), "INVALID_ROOM_ID", "{bad:?}");
        }
        assert!(RoomId::new(&"x".repeat(128)).is_ok());
    }

    #[test]
    fn room_id_rejects_invisible_characters() {
        // Right-to-left override, zero-width space/joiner, BOM, word joiner, tag "a",
        // line separator, soft hyphen.
        for c in [
            '\u{202E}',
            '\u{200B}',
            '\u{200D}',
            '\u{FEFF}',
            '\u{2060}',
            '\u{E0061}',
            '\u{2028}',
            '\u{AD}',
        ] {
            let err = RoomId::new(&format!("team{c}42")).unwrap_err();
            assert_eq!(err.code(), "INVALID_ROOM_ID", "{c:?}");
            assert!(err.to_string().contains("invisible"), "{err}");
        }
        // Visible non-ASCII names stay valid (scripts, emoji with a variation selector).
        for ok in ["équipe", "チーム", "فريق", "☕\u{FE0F}"] {
            assert!(RoomId::new(ok).is_ok(), "{ok:?}");
        }
    }
}
