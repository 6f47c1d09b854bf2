//! Auth mode `jwt`: the application backend signs a short-lived token per user; the relay
//! checks it before the WebSocket upgrade with the public keys of `JWT_PUBLIC_KEYS` (see
//! [`keys`]: `EdDSA`, `ES256` or `RS256`) and refuses with 403 otherwise.
//!
//! The token travels in `Sec-WebSocket-Protocol` (browsers cannot set other headers on a
//! WebSocket) as the subprotocol `sealsync.auth.<jwt>` (`wire::AUTH_SUBPROTOCOL_PREFIX`),
//! next to `sealsync.v2` (`wire::SUBPROTOCOL`); the relay echoes only `sealsync.v2`, never
//! the token. For `GET /room/:room/presence` it travels
//! as `Authorization: Bearer <jwt>`.
//!
//! Which rooms a token opens:
//! - rooms belong to organisations: in `jwt` mode a room id is `<org>:<name>`, and only a
//!   token whose `org` claim is `<org>` opens it ([`room_org`]);
//! - a `room` claim narrows the token to that one room of its org (compared after NFC);
//! - the `role` claim decides what the user may do there: [`READ_ONLY_ROLE`] (in any ASCII
//!   case) reads and sends ephemeral frames but may not publish; any other role may.
//!
//! Claims: `sub` (user id, required), `org` (required), `room` (optional), `exp` (required)
//! and `nbf` (optional) in seconds since the Unix epoch with [`LEEWAY_SECONDS`] of clock
//! skew, `role` (optional) and `guest` (optional; `true` = a pending guest, who is told
//! nothing of the room's content and may not publish until the backend admits them). The
//! role [`PENDING_GUEST_ROLE`] makes a pending guest too ([`Claims::is_guest`]).

pub mod keys;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_compact::KeyPair;
use sealsync_core::wire::AUTH_SUBPROTOCOL_PREFIX;
use sealsync_core::RoomId;
use serde::{Deserialize, Serialize};

pub use keys::{Algorithm, KeySet, PublicKey};

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECONDS: u64 = 60;

/// The longest accepted token, in bytes.
pub const MAX_TOKEN_LEN: usize = 4096;

/// The longest accepted `sub`, `org` and `role`, in bytes.
pub const MAX_CLAIM_LEN: usize = 256;

/// The role that may read a room but not change it (compared without regard to ASCII case
/// or surrounding whitespace: `Viewer` and `VIEWER` read only too).
pub const READ_ONLY_ROLE: &str = "viewer";

/// Whether `role` may read but not publish: [`READ_ONLY_ROLE`] in any ASCII case, with or
/// without surrounding whitespace.
#[must_use]
pub fn is_read_only_role(role: &str) -> bool {
    role.trim().eq_ignore_ascii_case(READ_ONLY_ROLE)
}

/// The role of a pending guest (compared as [`READ_ONLY_ROLE`] is): a token with it is a
/// guest exactly like one with `guest: true` ([`Claims::is_guest`]).
pub const PENDING_GUEST_ROLE: &str = "pending_guest";

/// Whether `role` makes a pending guest: [`PENDING_GUEST_ROLE`] in any ASCII case, with or
/// without surrounding whitespace.
#[must_use]
pub fn is_pending_guest_role(role: &str) -> bool {
    role.trim().eq_ignore_ascii_case(PENDING_GUEST_ROLE)
}

/// The organisation a room belongs to in `jwt` mode: the part of its id before the first
/// `:`, when that is not empty (`acme:roadmap` → `acme`).
#[must_use]
pub fn room_org(room: &RoomId) -> Option<&str> {
    room.as_str()
        .split_once(':')
        .map(|(org, _)| org)
        .filter(|org| !org.is_empty())
}

/// How sockets are authenticated (`AUTH_MODE` in `[vars]`).
#[derive(Debug, Clone)]
pub enum AuthMode {
    /// `open` (the default; `none` is the same): password-only end-to-end rooms, anyone
    /// who knows the room's password may join.
    None,
    /// `jwt`: a valid token signed by one of these keys (`JWT_PUBLIC_KEYS`).
    Jwt(KeySet),
}

/// A configuration error in the auth variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfigError(pub String);

impl core::fmt::Display for AuthConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "relay auth configuration: {}", self.0)
    }
}

impl std::error::Error for AuthConfigError {}

impl AuthMode {
    /// Reads `AUTH_MODE` and `JWT_PUBLIC_KEYS` through `var`.
    ///
    /// # Errors
    /// [`AuthConfigError`] for an unknown mode, or `jwt` without usable keys (see
    /// [`KeySet::parse`]).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, AuthConfigError> {
        match var("AUTH_MODE").as_deref().map(str::trim) {
            None | Some("" | "open" | "none") => Ok(Self::None),
            Some("jwt") => {
                KeySet::parse(&var("JWT_PUBLIC_KEYS").unwrap_or_default()).map(Self::Jwt)
            }
            Some(other) => Err(AuthConfigError(format!(
                "AUTH_MODE = {other:?}; expected \"open\" or \"jwt\""
            ))),
        }
    }
}

/// The claims of a verified token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The user's organisation: the token opens only rooms `<org>:…`.
    #[serde(default)]
    pub org: String,
    /// The one room the token is for, when it is for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Not before, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// The user's role: [`READ_ONLY_ROLE`] may not publish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// A pending guest: learns nothing of the room's content and may not publish until
    /// admitted (see [`Claims::is_guest`]).
    #[serde(default, skip_serializing_if = "core::ops::Not::not")]
    pub guest: bool,
}

impl Claims {
    /// Whether the token makes a pending guest: `guest: true`, or the role
    /// [`PENDING_GUEST_ROLE`] ([`is_pending_guest_role`]).
    #[must_use]
    pub fn is_guest(&self) -> bool {
        self.guest || self.role.as_deref().is_some_and(is_pending_guest_role)
    }
}

/// Why a token was refused (the worker answers 403 with this message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No token was offered.
    Missing,
    /// Not three base64url parts of JSON, or over [`MAX_TOKEN_LEN`].
    Malformed,
    /// `alg` is not one of `EdDSA`, `ES256`, `RS256`, or the header has `crit`.
    UnsupportedAlgorithm,
    /// No configured key of the token's algorithm (and `kid`) verifies the signature.
    BadSignature,
    /// `exp` is past.
    Expired,
    /// `nbf` is in the future.
    NotYetValid,
    /// The room belongs to another organisation, or to none.
    WrongOrg,
    /// The token is for another room of its organisation.
    WrongRoom,
    /// `sub` or `org` is empty, or a claim is too long.
    BadClaims,
}

impl core::fmt::Display for AuthError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Missing => {
                return write!(
                    f,
                    "this relay needs a token: offer the subprotocol \
                     {AUTH_SUBPROTOCOL_PREFIX}<jwt> (or Authorization: Bearer <jwt> for presence)"
                );
            }
            Self::Malformed => "the token is not a well-formed JWT",
            Self::UnsupportedAlgorithm => {
                "the token's alg must be EdDSA, ES256 or RS256, without crit"
            }
            Self::BadSignature => "the token's signature does not verify with a configured key",
            Self::Expired => "the token has expired; get a new one from the application",
            Self::NotYetValid => "the token is not valid yet (nbf)",
            Self::WrongOrg => {
                "the token's org may not open this room: rooms are named <org>:<name>"
            }
            Self::WrongRoom => "the token is for another room",
            Self::BadClaims => "the token's sub or org is empty, or a claim is too long",
        })
    }
}

impl std::error::Error for AuthError {}

/// The token offered in a `Sec-WebSocket-Protocol` header value, if any.
#[must_use]
pub fn token_from_protocols(header: &str) -> Option<&str> {
    header
        .split(',')
        .map(str::trim)
        .find_map(|p| p.strip_prefix(AUTH_SUBPROTOCOL_PREFIX))
}

/// The token in an `Authorization: Bearer <jwt>` header value, if any.
#[must_use]
pub fn token_from_authorization(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

/// Verifies `token` for `room` at `now_s` (seconds since the Unix epoch).
///
/// # Errors
/// The first [`AuthError`] that applies, checked in this order: shape, algorithm,
/// signature, then claims (the claims of an unverified token are never trusted).
pub fn verify(token: &str, keys: &KeySet, room: &RoomId, now_s: u64) -> Result<Claims, AuthError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(AuthError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h64), Some(p64), Some(s64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed);
    };
    let decode = |s: &str| URL_SAFE_NO_PAD.decode(s).map_err(|_| AuthError::Malformed);
    let header: Header = serde_json::from_slice(&decode(h64)?).map_err(|_| AuthError::Malformed)?;
    let alg = Algorithm::from_name(&header.alg)
        .filter(|_| header.crit.is_none())
        .ok_or(AuthError::UnsupportedAlgorithm)?;
    let signature = decode(s64)?;
    let signed = &token.as_bytes()[..h64.len() + 1 + p64.len()];
    if !keys.verifies(alg, header.kid.as_deref(), signed, &signature) {
        return Err(AuthError::BadSignature);
    }
    let claims: Claims = serde_json::from_slice(&decode(p64)?).map_err(|_| AuthError::Malformed)?;
    let too_long = |c: &str| c.len() > MAX_CLAIM_LEN;
    if claims.sub.is_empty()
        || claims.org.is_empty()
        || too_long(&claims.sub)
        || too_long(&claims.org)
        || claims.role.as_deref().is_some_and(too_long)
    {
        return Err(AuthError::BadClaims);
    }
    if now_s > claims.exp.saturating_add(LEEWAY_SECONDS) {
        return Err(AuthError::Expired);
    }
    if claims
        .nbf
        .is_some_and(|nbf| nbf > now_s.saturating_add(LEEWAY_SECONDS))
    {
        return Err(AuthError::NotYetValid);
    }
    if room_org(room) != Some(claims.org.as_str()) {
        return Err(AuthError::WrongOrg);
    }
    if let Some(only) = &claims.room {
        if RoomId::new(only).ok().as_ref() != Some(room) {
            return Err(AuthError::WrongRoom);
        }
    }
    Ok(claims)
}

/// Verifies the token a request offered, if any: [`AuthError::Missing`] without one,
/// else [`verify`].
///
/// # Errors
/// As [`verify`], and [`AuthError::Missing`].
pub fn verify_offered(
    token: Option<&str>,
    keys: &KeySet,
    room: &RoomId,
    now_s: u64,
) -> Result<Claims, AuthError> {
    verify(token.ok_or(AuthError::Missing)?, keys, room, now_s)
}

/// Signs `claims` with the Ed25519 `key` (the backend's side; used by the `mint_token`
/// example and the tests).
#[must_use]
pub fn mint(claims: &Claims, key: &KeyPair) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"EdDSA","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let signing_input = format!("{header}.{payload}");
    let signature = key.sk.sign(signing_input.as_bytes(), None);
    format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.as_ref())
    )
}

#[cfg(test)]
mod tests;
