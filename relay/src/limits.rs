//! The relay's configurable limits (`[vars]` in `wrangler.toml`): what it enforces and
//! announces to every client in `WELCOME` ([`Limits::announced`]), and the pace of the
//! per-connection token bucket ([`Limits::pace`]; the bucket itself is
//! `sealsync_core::limits::TokenBucket`, the same one the client paces itself with).
//!
//! Every limit has a default that fits a small production deployment; a variable that is
//! present but does not parse, or is out of its range, is a configuration error (the
//! worker answers 500 naming it) rather than a silent fallback.

use sealsync_core::limits::{Pace, RelayLimits, MIN_RELAY_FRAME_LIMIT};
use sealsync_core::wire::MAX_FRAME_LEN;

/// `MAX_FRAME_BYTES`: the largest binary frame a socket may send (1 MiB, also the most it
/// may be set to: the largest WebSocket message a Worker receives). A larger `PUBLISH` gets
/// `REFUSED TOO_LARGE` (the socket stays); any other larger frame gets `ERROR TOO_LARGE` and
/// close code 1009. It may not be set below [`MIN_RELAY_FRAME_LIMIT`], the largest frame
/// the SDK builds.
pub const DEFAULT_MAX_FRAME_BYTES: usize = MAX_FRAME_LEN;
/// `RATE_BURST`: frames a connection may send back to back.
pub const DEFAULT_RATE_BURST: u32 = 120;
/// `RATE_PER_SECOND`: frames per second a connection may sustain.
pub const DEFAULT_RATE_PER_SECOND: u32 = 60;
/// `MAX_SOCKETS_PER_ROOM`: joined sockets (`HELLO` accepted) one room holds; a socket opened
/// or a `HELLO` sent while the room holds that many gets `ERROR ROOM_FULL` and 4029. Sockets
/// that have not joined do not count (see [`DEFAULT_MAX_UNJOINED_SOCKETS`]).
pub const DEFAULT_MAX_SOCKETS_PER_ROOM: usize = 1000;
/// `MAX_UNJOINED_SOCKETS`: sockets of one room that have not sent an accepted `HELLO` yet.
/// A new socket past it is still accepted: the oldest unjoined one gets `ERROR ROOM_FULL`
/// and 4029 instead, so idle sockets cannot keep a member out (a member's socket sends
/// `HELLO` one round trip after it opens).
pub const DEFAULT_MAX_UNJOINED_SOCKETS: usize = 64;
/// `UNJOINED_TIMEOUT_SECONDS`: a socket that has not joined this long after it opened is
/// closed (1008, "no HELLO") by the room's alarm.
pub const DEFAULT_UNJOINED_TIMEOUT_SECONDS: u64 = 10;
/// `MAX_HISTORY_EVENTS`: stored (not yet compacted) events per room.
pub const DEFAULT_MAX_HISTORY_EVENTS: u64 = 100_000;
/// `MAX_HISTORY_BYTES`: stored envelope bytes per room (events and snapshot): what a new
/// member downloads at most (in pages of [`DEFAULT_CATCH_UP_PAGE_BYTES`]; the history is
/// never in memory at once).
pub const DEFAULT_MAX_HISTORY_BYTES: u64 = 64 * 1024 * 1024;
/// `CATCH_UP_PAGE_BYTES`: envelope bytes per catch-up page (a page ends within one envelope
/// past it). A socket gets its next page only after it read this one (the `SYNC` carries
/// the page's token), so a socket that does not read holds at most about two pages of
/// catch-up in the relay's memory.
pub const DEFAULT_CATCH_UP_PAGE_BYTES: u64 = 1024 * 1024;
/// `ROOM_RATE_BURST` / `ROOM_RATE_PER_SECOND`: frames the joined sockets of one room may
/// send together (each also within its own `RATE_*` bucket), so that many sockets cannot
/// together flood a room. Over it, a `PUBLISH` gets `REFUSED RATE_LIMITED` with the room's
/// wait and any other frame a non-fatal `ERROR RATE_LIMITED`; the room's refusals never
/// close a socket.
pub const DEFAULT_ROOM_RATE_BURST: u32 = 1000;
/// See [`DEFAULT_ROOM_RATE_BURST`].
pub const DEFAULT_ROOM_RATE_PER_SECOND: u32 = 500;
/// `MAX_SOCKETS_PER_ADDRESS`: sockets (joined or not) one client address may hold in one
/// room (`CF-Connecting-IP`; IPv6 by its /64, see [`crate::hub::address_key`]), and one
/// authenticated user (JWT `sub`) may hold in one room. One more gets `ERROR ROOM_FULL` and
/// 4029.
pub const DEFAULT_MAX_SOCKETS_PER_ADDRESS: usize = 32;
/// `WRONG_KEY_BURST`: `HELLO`s with a member key that is not the room's that one client
/// address may send to one room back to back; then one per second.
/// Past it, every `HELLO` from that address gets a non-fatal `ERROR RATE_LIMITED` before
/// its key is compared, so the answer says nothing about the guess.
pub const DEFAULT_WRONG_KEY_BURST: u32 = 10;
/// `IDLE_ROOM_TTL_SECONDS`: a room with no socket for this long is deleted by its alarm.
pub const DEFAULT_IDLE_ROOM_TTL_SECONDS: u64 = 30 * 24 * 3600;

/// A variable in `[vars]` that does not parse or is out of its range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The variable's name.
    pub name: &'static str,
    /// Its value as found.
    pub value: String,
    /// What it must be instead ("a positive integer", or its allowed range).
    pub expected: String,
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "relay configuration: {} = {:?} is not {}; fix [vars] in wrangler.toml",
            self.name, self.value, self.expected
        )
    }
}

impl std::error::Error for ConfigError {}

/// All limits of one relay deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// See [`DEFAULT_MAX_FRAME_BYTES`].
    pub max_frame_bytes: usize,
    /// See [`DEFAULT_RATE_BURST`].
    pub rate_burst: u32,
    /// See [`DEFAULT_RATE_PER_SECOND`].
    pub rate_per_second: u32,
    /// See [`DEFAULT_MAX_SOCKETS_PER_ROOM`].
    pub max_sockets_per_room: usize,
    /// See [`DEFAULT_MAX_UNJOINED_SOCKETS`].
    pub max_unjoined_sockets: usize,
    /// See [`DEFAULT_UNJOINED_TIMEOUT_SECONDS`], in milliseconds.
    pub unjoined_timeout_ms: u64,
    /// `ALLOWED_ORIGINS`: comma-separated exact origins (`https://app.example`); empty allows
    /// every origin. Requests without an `Origin` header (native clients) are allowed.
    pub allowed_origins: Vec<String>,
    /// See [`DEFAULT_MAX_HISTORY_EVENTS`].
    pub max_history_events: u64,
    /// See [`DEFAULT_MAX_HISTORY_BYTES`].
    pub max_history_bytes: u64,
    /// See [`DEFAULT_IDLE_ROOM_TTL_SECONDS`], in milliseconds.
    pub idle_room_ttl_ms: u64,
    /// See [`DEFAULT_CATCH_UP_PAGE_BYTES`].
    pub catch_up_page_bytes: u64,
    /// See [`DEFAULT_ROOM_RATE_BURST`].
    pub room_rate_burst: u32,
    /// See [`DEFAULT_ROOM_RATE_PER_SECOND`].
    pub room_rate_per_second: u32,
    /// See [`DEFAULT_MAX_SOCKETS_PER_ADDRESS`].
    pub max_sockets_per_address: usize,
    /// See [`DEFAULT_WRONG_KEY_BURST`].
    pub wrong_key_burst: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            rate_burst: DEFAULT_RATE_BURST,
            rate_per_second: DEFAULT_RATE_PER_SECOND,
            max_sockets_per_room: DEFAULT_MAX_SOCKETS_PER_ROOM,
            max_unjoined_sockets: DEFAULT_MAX_UNJOINED_SOCKETS,
            unjoined_timeout_ms: DEFAULT_UNJOINED_TIMEOUT_SECONDS * 1000,
            allowed_origins: Vec::new(),
            max_history_events: DEFAULT_MAX_HISTORY_EVENTS,
            max_history_bytes: DEFAULT_MAX_HISTORY_BYTES,
            idle_room_ttl_ms: DEFAULT_IDLE_ROOM_TTL_SECONDS * 1000,
            catch_up_page_bytes: DEFAULT_CATCH_UP_PAGE_BYTES,
            room_rate_burst: DEFAULT_ROOM_RATE_BURST,
            room_rate_per_second: DEFAULT_ROOM_RATE_PER_SECOND,
            max_sockets_per_address: DEFAULT_MAX_SOCKETS_PER_ADDRESS,
            wrong_key_burst: DEFAULT_WRONG_KEY_BURST,
        }
    }
}

fn parse_positive<T: core::str::FromStr + PartialEq + Default>(
    name: &'static str,
    raw: Option<String>,
    default: T,
) -> Result<T, ConfigError> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    match raw.trim().parse::<T>() {
        Ok(v) if v != T::default() => Ok(v),
        _ => Err(ConfigError {
            name,
            value: raw,
            expected: "a positive integer".into(),
        }),
    }
}

/// `MAX_FRAME_BYTES`: a positive integer from [`MIN_RELAY_FRAME_LIMIT`] (below it the relay
/// would refuse changes the SDK accepts) to [`MAX_FRAME_LEN`] (above it the runtime, and
/// the codec, refuse the frame before the relay could name it).
fn frame_limit(raw: Option<String>, default: usize) -> Result<usize, ConfigError> {
    const NAME: &str = "MAX_FRAME_BYTES";
    let found = raw.clone().unwrap_or_default();
    let value = parse_positive(NAME, raw, default)?;
    if (MIN_RELAY_FRAME_LIMIT..=MAX_FRAME_LEN).contains(&value) {
        return Ok(value);
    }
    Err(ConfigError {
        name: NAME,
        value: found,
        expected: format!(
            "within {MIN_RELAY_FRAME_LIMIT}..={MAX_FRAME_LEN} bytes (the largest frame the SDK \
             builds, a snapshot of the longest envelope, up to the 1 MiB a Worker receives)"
        ),
    })
}

impl Limits {
    /// The token bucket's pace for each socket: [`Self::rate_burst`] frames back to back,
    /// [`Self::rate_per_second`] sustained.
    #[must_use]
    pub const fn pace(&self) -> Pace {
        Pace {
            burst: self.rate_burst,
            per_second: self.rate_per_second,
        }
    }

    /// The pace of the budget all joined sockets of a room share.
    #[must_use]
    pub const fn room_pace(&self) -> Pace {
        Pace {
            burst: self.room_rate_burst,
            per_second: self.room_rate_per_second,
        }
    }

    /// The pace of one address's `HELLO`s with a wrong member key: a burst, then one per
    /// second.
    #[must_use]
    pub const fn wrong_key_pace(&self) -> Pace {
        Pace {
            burst: self.wrong_key_burst,
            per_second: 1,
        }
    }

    /// What `WELCOME` announces: the client paces itself and sizes its frames by it.
    #[must_use]
    pub fn announced(&self) -> RelayLimits {
        RelayLimits {
            max_frame_bytes: u32::try_from(self.max_frame_bytes).unwrap_or(u32::MAX),
            rate_burst: self.rate_burst,
            rate_per_second: self.rate_per_second,
            max_history_events: self.max_history_events,
            max_history_bytes: self.max_history_bytes,
        }
    }

    /// Reads every limit through `var` (the worker passes `env.var(name)`); a missing
    /// variable takes its default.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first variable that is present but not a positive integer,
    /// or (`MAX_FRAME_BYTES`) outside [`MIN_RELAY_FRAME_LIMIT`]`..=`[`MAX_FRAME_LEN`].
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let d = Self::default();
        let ttl_s = parse_positive(
            "IDLE_ROOM_TTL_SECONDS",
            var("IDLE_ROOM_TTL_SECONDS"),
            DEFAULT_IDLE_ROOM_TTL_SECONDS,
        )?;
        let unjoined_s = parse_positive(
            "UNJOINED_TIMEOUT_SECONDS",
            var("UNJOINED_TIMEOUT_SECONDS"),
            DEFAULT_UNJOINED_TIMEOUT_SECONDS,
        )?;
        Ok(Self {
            max_frame_bytes: frame_limit(var("MAX_FRAME_BYTES"), d.max_frame_bytes)?,
            rate_burst: parse_positive("RATE_BURST", var("RATE_BURST"), d.rate_burst)?,
            rate_per_second: parse_positive(
                "RATE_PER_SECOND",
                var("RATE_PER_SECOND"),
                d.rate_per_second,
            )?,
            max_sockets_per_room: parse_positive(
                "MAX_SOCKETS_PER_ROOM",
                var("MAX_SOCKETS_PER_ROOM"),
                d.max_sockets_per_room,
            )?,
            max_unjoined_sockets: parse_positive(
                "MAX_UNJOINED_SOCKETS",
                var("MAX_UNJOINED_SOCKETS"),
                d.max_unjoined_sockets,
            )?,
            unjoined_timeout_ms: unjoined_s.saturating_mul(1000),
            allowed_origins: var("ALLOWED_ORIGINS")
                .map(|list| {
                    list.split(',')
                        .map(|o| o.trim().trim_end_matches('/').to_owned())
                        .filter(|o| !o.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            max_history_events: parse_positive(
                "MAX_HISTORY_EVENTS",
                var("MAX_HISTORY_EVENTS"),
                d.max_history_events,
            )?,
            max_history_bytes: parse_positive(
                "MAX_HISTORY_BYTES",
                var("MAX_HISTORY_BYTES"),
                d.max_history_bytes,
            )?,
            idle_room_ttl_ms: ttl_s.saturating_mul(1000),
            catch_up_page_bytes: parse_positive(
                "CATCH_UP_PAGE_BYTES",
                var("CATCH_UP_PAGE_BYTES"),
                d.catch_up_page_bytes,
            )?,
            room_rate_burst: parse_positive(
                "ROOM_RATE_BURST",
                var("ROOM_RATE_BURST"),
                d.room_rate_burst,
            )?,
            room_rate_per_second: parse_positive(
                "ROOM_RATE_PER_SECOND",
                var("ROOM_RATE_PER_SECOND"),
                d.room_rate_per_second,
            )?,
            max_sockets_per_address: parse_positive(
                "MAX_SOCKETS_PER_ADDRESS",
                var("MAX_SOCKETS_PER_ADDRESS"),
                d.max_sockets_per_address,
            )?,
            wrong_key_burst: parse_positive(
                "WRONG_KEY_BURST",
                var("WRONG_KEY_BURST"),
                d.wrong_key_burst,
            )?,
        })
    }

    /// Whether a request with this `Origin` header may open a socket.
    #[must_use]
    pub fn origin_allowed(&self, origin: Option<&str>) -> bool {
        match origin {
            None => true,
            Some(_) if self.allowed_origins.is_empty() => true,
            Some(o) => {
                let o = o.trim_end_matches('/');
                self.allowed_origins.iter().any(|a| a == o)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn missing_vars_take_defaults() {
        assert_eq!(Limits::from_vars(vars(&[])).unwrap(), Limits::default());
    }

    #[test]
    fn vars_override_defaults() {
        let l = Limits::from_vars(vars(&[
            ("MAX_FRAME_BYTES", &MIN_RELAY_FRAME_LIMIT.to_string()),
            ("RATE_BURST", "10"),
            ("RATE_PER_SECOND", "5"),
            ("IDLE_ROOM_TTL_SECONDS", "20"),
            ("MAX_UNJOINED_SOCKETS", "8"),
            ("UNJOINED_TIMEOUT_SECONDS", "3"),
            ("ALLOWED_ORIGINS", "https://a.example/, https://b.example,,"),
        ]))
        .unwrap();
        assert_eq!(l.max_frame_bytes, MIN_RELAY_FRAME_LIMIT);
        assert_eq!(l.idle_room_ttl_ms, 20_000);
        assert_eq!((l.max_unjoined_sockets, l.unjoined_timeout_ms), (8, 3_000));
        assert_eq!(
            l.allowed_origins,
            ["https://a.example", "https://b.example"]
        );
        assert_eq!(
            l.pace(),
            Pace {
                burst: 10,
                per_second: 5
            }
        );
    }

    #[test]
    fn bad_vars_are_named() {
        for bad in ["", "0", "-1", "ten", "1.5"] {
            let err = Limits::from_vars(vars(&[("RATE_BURST", bad)])).unwrap_err();
            assert_eq!(err.name, "RATE_BURST");
            assert!(err.to_string().contains("RATE_BURST"), "{err}");
            assert!(err.to_string().contains("positive integer"), "{err}");
        }
    }

    #[test]
    fn the_frame_limit_is_1_mib_by_default_and_may_not_leave_its_range() {
        assert_eq!(DEFAULT_MAX_FRAME_BYTES, 1_048_576);
        assert_eq!(Limits::default().max_frame_bytes, 1_048_576);
        for ok in [MIN_RELAY_FRAME_LIMIT, MAX_FRAME_LEN] {
            let l = Limits::from_vars(vars(&[("MAX_FRAME_BYTES", &ok.to_string())])).unwrap();
            assert_eq!(l.max_frame_bytes, ok);
        }
        for bad in [1, 65_536, MIN_RELAY_FRAME_LIMIT - 1, MAX_FRAME_LEN + 1] {
            let err =
                Limits::from_vars(vars(&[("MAX_FRAME_BYTES", &bad.to_string())])).unwrap_err();
            assert_eq!(err.name, "MAX_FRAME_BYTES");
            let text = err.to_string();
            assert!(text.contains("MAX_FRAME_BYTES"), "{text}");
            assert!(
                text.contains(&format!("{MIN_RELAY_FRAME_LIMIT}..={MAX_FRAME_LEN}")),
                "the message gives the range: {text}"
            );
        }
        let err = Limits::from_vars(vars(&[("MAX_FRAME_BYTES", "big")])).unwrap_err();
        assert!(err.to_string().contains("positive integer"), "{err}");
    }

    /// `NAME = "value"` lines of a TOML or shell file (`NAME=value`), unquoted.
    fn assignments(text: &str) -> BTreeMap<String, String> {
        text.lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
            .collect()
    }

    #[test]
    fn the_shipped_configurations_are_accepted() {
        let deploy = assignments(include_str!("../wrangler.toml"));
        let limits = Limits::from_vars(|k| deploy.get(k).cloned()).unwrap();
        assert_eq!(
            limits,
            Limits::default(),
            "wrangler.toml repeats the defaults"
        );
        // The integration tests run at the smallest frame limit allowed.
        let tests = assignments(include_str!("../tests/run.sh"));
        assert_eq!(
            tests["MAX_FRAME"],
            MIN_RELAY_FRAME_LIMIT.to_string(),
            "relay/tests/run.sh"
        );
        Limits::from_vars(|k| match k {
            "MAX_FRAME_BYTES" => tests.get("MAX_FRAME").cloned(),
            "RATE_BURST" => tests.get("RATE_BURST").cloned(),
            "RATE_PER_SECOND" => tests.get("RATE_PER_SECOND").cloned(),
            "MAX_HISTORY_EVENTS" => tests.get("MAX_HISTORY").cloned(),
            "MAX_UNJOINED_SOCKETS" => tests.get("MAX_UNJOINED").cloned(),
            "UNJOINED_TIMEOUT_SECONDS" => tests.get("UNJOINED_TIMEOUT").cloned(),
            "CATCH_UP_PAGE_BYTES" => tests.get("PAGE_BYTES").cloned(),
            "ROOM_RATE_BURST" => tests.get("ROOM_BURST").cloned(),
            "ROOM_RATE_PER_SECOND" => tests.get("ROOM_RATE").cloned(),
            "MAX_SOCKETS_PER_ADDRESS" => tests.get("PER_ADDRESS").cloned(),
            _ => None,
        })
        .unwrap();
    }

    #[test]
    fn welcome_announces_what_is_enforced() {
        let l = Limits {
            max_frame_bytes: MIN_RELAY_FRAME_LIMIT,
            rate_burst: 7,
            rate_per_second: 3,
            max_history_events: 11,
            max_history_bytes: 13,
            ..Limits::default()
        };
        assert_eq!(
            l.announced(),
            RelayLimits {
                max_frame_bytes: u32::try_from(MIN_RELAY_FRAME_LIMIT).unwrap(),
                rate_burst: 7,
                rate_per_second: 3,
                max_history_events: 11,
                max_history_bytes: 13,
            }
        );
    }

    #[test]
    fn origin_allowlist() {
        let open = Limits::default();
        assert!(open.origin_allowed(Some("https://anything.example")));
        let l = Limits {
            allowed_origins: vec!["https://app.example".into()],
            ..Limits::default()
        };
        assert!(l.origin_allowed(None));
        assert!(l.origin_allowed(Some("https://app.example")));
        assert!(l.origin_allowed(Some("https://app.example/")));
        assert!(!l.origin_allowed(Some("https://evil.example")));
        assert!(!l.origin_allowed(Some("https://app.example.evil.example")));
    }
}
