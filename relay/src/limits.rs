//! The relay's configurable limits (`[vars]` in `wrangler.toml`) and the per-connection
//! token bucket.
//!
//! Every limit has a default that fits a small production deployment; a variable that is
//! present but does not parse is a configuration error (the worker answers 500 naming it)
//! rather than a silent fallback.

use serde::{Deserialize, Serialize};

/// `MAX_FRAME_BYTES`: the largest binary frame a socket may send; larger frames get
/// `ERROR TOO_LARGE` and close code 1009.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 1_048_576;
/// `RATE_BURST`: frames a connection may send back to back.
pub const DEFAULT_RATE_BURST: u32 = 120;
/// `RATE_PER_SECOND`: frames per second a connection may sustain.
pub const DEFAULT_RATE_PER_SECOND: u32 = 60;
/// `MAX_SOCKETS_PER_ROOM`: sockets one room accepts; more get `ERROR ROOM_FULL` and 4029.
pub const DEFAULT_MAX_SOCKETS_PER_ROOM: usize = 1000;
/// `MAX_HISTORY_EVENTS`: stored (not yet compacted) events per room.
pub const DEFAULT_MAX_HISTORY_EVENTS: u64 = 100_000;
/// `MAX_HISTORY_BYTES`: stored envelope bytes per room (events and snapshot).
pub const DEFAULT_MAX_HISTORY_BYTES: u64 = 256 * 1024 * 1024;
/// `IDLE_ROOM_TTL_SECONDS`: a room with no socket for this long is deleted by its alarm.
pub const DEFAULT_IDLE_ROOM_TTL_SECONDS: u64 = 30 * 24 * 3600;

/// A variable in `[vars]` that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The variable's name.
    pub name: &'static str,
    /// Its value as found.
    pub value: String,
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "relay configuration: {} = {:?} is not a positive integer; fix [vars] in wrangler.toml",
            self.name, self.value
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
    /// `ALLOWED_ORIGINS`: comma-separated exact origins (`https://app.example`); empty allows
    /// every origin. Requests without an `Origin` header (native clients) are allowed.
    pub allowed_origins: Vec<String>,
    /// See [`DEFAULT_MAX_HISTORY_EVENTS`].
    pub max_history_events: u64,
    /// See [`DEFAULT_MAX_HISTORY_BYTES`].
    pub max_history_bytes: u64,
    /// See [`DEFAULT_IDLE_ROOM_TTL_SECONDS`], in milliseconds.
    pub idle_room_ttl_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            rate_burst: DEFAULT_RATE_BURST,
            rate_per_second: DEFAULT_RATE_PER_SECOND,
            max_sockets_per_room: DEFAULT_MAX_SOCKETS_PER_ROOM,
            allowed_origins: Vec::new(),
            max_history_events: DEFAULT_MAX_HISTORY_EVENTS,
            max_history_bytes: DEFAULT_MAX_HISTORY_BYTES,
            idle_room_ttl_ms: DEFAULT_IDLE_ROOM_TTL_SECONDS * 1000,
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
        _ => Err(ConfigError { name, value: raw }),
    }
}

impl Limits {
    /// Reads every limit through `var` (the worker passes `env.var(name)`); a missing
    /// variable takes its default.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first variable that is present but not a positive integer.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let d = Self::default();
        let ttl_s = parse_positive(
            "IDLE_ROOM_TTL_SECONDS",
            var("IDLE_ROOM_TTL_SECONDS"),
            DEFAULT_IDLE_ROOM_TTL_SECONDS,
        )?;
        Ok(Self {
            max_frame_bytes: parse_positive(
                "MAX_FRAME_BYTES",
                var("MAX_FRAME_BYTES"),
                d.max_frame_bytes,
            )?,
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

/// A per-connection token bucket in thousandths of a frame, so it refills smoothly with
/// integer arithmetic. It lives in memory with the socket's peer and is written to the
/// attachment only when the peer's lasting state changes (join, role), not per frame: an
/// object hibernates only after seconds without a message, by which time a bucket of the
/// default size has refilled anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenBucket {
    /// Tokens left, in thousandths.
    milli: u64,
    /// When `milli` was last brought up to date, ms since the Unix epoch.
    at: u64,
}

impl TokenBucket {
    /// A full bucket at `now_ms`.
    #[must_use]
    pub fn full(limits: &Limits, now_ms: u64) -> Self {
        Self {
            milli: u64::from(limits.rate_burst) * 1000,
            at: now_ms,
        }
    }

    /// Takes one token at `now_ms`, refilling first; `false` when the bucket is empty
    /// (the frame must be refused). A clock that goes backwards refills nothing.
    pub fn take(&mut self, limits: &Limits, now_ms: u64) -> bool {
        let cap = u64::from(limits.rate_burst) * 1000;
        let elapsed = now_ms.saturating_sub(self.at);
        // rate_per_second tokens per 1000 ms = rate_per_second thousandths per ms.
        let refill = elapsed.saturating_mul(u64::from(limits.rate_per_second));
        self.milli = self.milli.saturating_add(refill).min(cap);
        self.at = self.at.max(now_ms);
        if self.milli >= 1000 {
            self.milli -= 1000;
            true
        } else {
            false
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
            ("MAX_FRAME_BYTES", "4096"),
            ("IDLE_ROOM_TTL_SECONDS", "20"),
            ("ALLOWED_ORIGINS", "https://a.example/, https://b.example,,"),
        ]))
        .unwrap();
        assert_eq!(l.max_frame_bytes, 4096);
        assert_eq!(l.idle_room_ttl_ms, 20_000);
        assert_eq!(
            l.allowed_origins,
            ["https://a.example", "https://b.example"]
        );
    }

    #[test]
    fn bad_vars_are_named() {
        for bad in ["", "0", "-1", "ten", "1.5"] {
            let err = Limits::from_vars(vars(&[("RATE_BURST", bad)])).unwrap_err();
            assert_eq!(err.name, "RATE_BURST");
            assert!(err.to_string().contains("RATE_BURST"), "{err}");
        }
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

    #[test]
    fn bucket_allows_burst_then_refills_at_rate() {
        let l = Limits {
            rate_burst: 3,
            rate_per_second: 2,
            ..Limits::default()
        };
        let mut b = TokenBucket::full(&l, 1000);
        assert!(b.take(&l, 1000));
        assert!(b.take(&l, 1000));
        assert!(b.take(&l, 1000));
        assert!(!b.take(&l, 1000));
        // 2 per second: after 499 ms less than one token, at 500 ms one.
        assert!(!b.take(&l, 1499));
        assert!(b.take(&l, 1500));
        assert!(!b.take(&l, 1500));
        // A long pause refills only up to the burst.
        for _ in 0..3 {
            assert!(b.take(&l, 100_000));
        }
        assert!(!b.take(&l, 100_000));
        // A clock going backwards neither refills nor panics.
        assert!(!b.take(&l, 5));
    }
}
