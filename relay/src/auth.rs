//! Auth mode `jwt`: the application backend signs a short-lived token per user and room
//! with an Ed25519 key (JWS `alg: "EdDSA"`); the relay checks it before the WebSocket
//! upgrade with the public key(s) from `JWT_PUBLIC_KEYS` and refuses with 403 otherwise.
//!
//! The token travels in `Sec-WebSocket-Protocol` (browsers cannot set other headers on a
//! WebSocket) as the subprotocol `sealsync.auth.<jwt>`, next to `sealsync.v1`; the relay
//! echoes only `sealsync.v1`, never the token.
//!
//! Claims: `sub` (user id, required), `room` (the room id, required, compared after NFC),
//! `exp` (required) and `nbf` (optional) in seconds since the Unix epoch with
//! [`LEEWAY_SECONDS`] of clock skew, `role` (optional, free text for the application) and
//! `guest` (optional; `true` = a pending guest who may read but not publish until the
//! backend admits them).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_compact::{KeyPair, PublicKey, Signature};
use sealsync_core::RoomId;
use serde::{Deserialize, Serialize};

/// The subprotocol prefix that carries the token.
pub const TOKEN_PROTOCOL_PREFIX: &str = "sealsync.auth.";

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECONDS: u64 = 60;

/// The longest accepted token, in bytes.
pub const MAX_TOKEN_LEN: usize = 4096;

/// The longest accepted `sub` and `role`, in bytes.
pub const MAX_CLAIM_LEN: usize = 256;

/// How sockets are authenticated (`AUTH_MODE` in `[vars]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMode {
    /// `none` (the default): anyone who knows the room's password may join.
    None,
    /// `jwt`: a valid token signed by one of these keys (`JWT_PUBLIC_KEYS`, comma-separated
    /// base64url of the 32-byte Ed25519 public keys; several allow rotation).
    Jwt(Vec<PublicKey>),
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
    /// [`AuthConfigError`] for an unknown mode, `jwt` without keys, or a key that is not
    /// 32 bytes of base64url.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, AuthConfigError> {
        match var("AUTH_MODE").as_deref().map(str::trim) {
            None | Some("" | "none") => Ok(Self::None),
            Some("jwt") => {
                let raw = var("JWT_PUBLIC_KEYS").unwrap_or_default();
                let keys = raw
                    .split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(|k| {
                        URL_SAFE_NO_PAD
                            .decode(k)
                            .ok()
                            .and_then(|b| PublicKey::from_slice(&b).ok())
                            .ok_or_else(|| {
                                AuthConfigError(format!(
                                    "JWT_PUBLIC_KEYS entry {k:?} is not 32 bytes of base64url"
                                ))
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                if keys.is_empty() {
                    return Err(AuthConfigError(
                        "AUTH_MODE = \"jwt\" needs JWT_PUBLIC_KEYS".into(),
                    ));
                }
                Ok(Self::Jwt(keys))
            }
            Some(other) => Err(AuthConfigError(format!(
                "AUTH_MODE = {other:?}; expected \"none\" or \"jwt\""
            ))),
        }
    }
}

/// The claims of a verified token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The room the token is for.
    pub room: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Not before, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// The user's role, for the application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// A pending guest: may read, may not publish until admitted.
    #[serde(default, skip_serializing_if = "core::ops::Not::not")]
    pub guest: bool,
}

/// Why a token was refused (the worker answers 403 with this message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No `sealsync.auth.` subprotocol was offered.
    Missing,
    /// Not three base64url parts of JSON, or over [`MAX_TOKEN_LEN`].
    Malformed,
    /// `alg` is not `EdDSA`, or the header has `crit`.
    UnsupportedAlgorithm,
    /// No configured key verifies the signature.
    BadSignature,
    /// `exp` is past.
    Expired,
    /// `nbf` is in the future.
    NotYetValid,
    /// The token is for another room.
    WrongRoom,
    /// `sub` is empty or a claim is too long.
    BadClaims,
}

impl core::fmt::Display for AuthError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Missing => "this relay needs a token: offer the subprotocol sealsync.auth.<jwt>",
            Self::Malformed => "the token is not a well-formed JWT",
            Self::UnsupportedAlgorithm => "the token's alg must be EdDSA (Ed25519), without crit",
            Self::BadSignature => "the token's signature does not verify",
            Self::Expired => "the token has expired; get a new one from the application",
            Self::NotYetValid => "the token is not valid yet (nbf)",
            Self::WrongRoom => "the token is for another room",
            Self::BadClaims => "the token's sub is empty or a claim is too long",
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
        .find_map(|p| p.strip_prefix(TOKEN_PROTOCOL_PREFIX))
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

/// Verifies `token` for `room` at `now_s` (seconds since the Unix epoch).
///
/// # Errors
/// The first [`AuthError`] that applies, checked in this order: shape, algorithm,
/// signature, then claims (the claims of an unverified token are never trusted).
pub fn verify(
    token: &str,
    keys: &[PublicKey],
    room: &RoomId,
    now_s: u64,
) -> Result<Claims, AuthError> {
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
    if header.alg != "EdDSA" || header.crit.is_some() {
        return Err(AuthError::UnsupportedAlgorithm);
    }
    let signature = Signature::from_slice(&decode(s64)?).map_err(|_| AuthError::Malformed)?;
    let signed = &token.as_bytes()[..h64.len() + 1 + p64.len()];
    if !keys.iter().any(|k| k.verify(signed, &signature).is_ok()) {
        return Err(AuthError::BadSignature);
    }
    let claims: Claims = serde_json::from_slice(&decode(p64)?).map_err(|_| AuthError::Malformed)?;
    if claims.sub.is_empty()
        || claims.sub.len() > MAX_CLAIM_LEN
        || claims
            .role
            .as_ref()
            .is_some_and(|r| r.len() > MAX_CLAIM_LEN)
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
    if RoomId::new(&claims.room).ok().as_ref() != Some(room) {
        return Err(AuthError::WrongRoom);
    }
    Ok(claims)
}

/// Signs `claims` with `key` (the backend's side; used by the `mint_token` example and
/// the tests).
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
mod tests {
    use super::*;
    use ed25519_compact::Seed;

    const NOW: u64 = 1_700_000_000;

    fn key(n: u8) -> KeyPair {
        KeyPair::from_seed(Seed::new([n; 32]))
    }

    fn claims() -> Claims {
        Claims {
            sub: "alice".into(),
            room: "café".into(),
            exp: NOW + 600,
            nbf: None,
            role: Some("editor".into()),
            guest: false,
        }
    }

    fn room() -> RoomId {
        RoomId::new("cafe\u{301}").unwrap()
    }

    #[test]
    fn a_minted_token_verifies_with_any_configured_key() {
        let token = mint(&claims(), &key(1));
        let keys = [key(2).pk, key(1).pk];
        assert_eq!(verify(&token, &keys, &room(), NOW), Ok(claims()));
    }

    #[test]
    fn every_refusal_has_its_reason() {
        let keys = [key(1).pk];
        let check = |c: Claims, k: &KeyPair| verify(&mint(&c, k), &keys, &room(), NOW);
        assert_eq!(check(claims(), &key(2)), Err(AuthError::BadSignature));
        let expired = Claims {
            exp: NOW - LEEWAY_SECONDS - 1,
            ..claims()
        };
        assert_eq!(check(expired, &key(1)), Err(AuthError::Expired));
        let skewed = Claims {
            exp: NOW - 10,
            ..claims()
        };
        assert!(check(skewed, &key(1)).is_ok(), "within the leeway");
        let early = Claims {
            nbf: Some(NOW + 3600),
            ..claims()
        };
        assert_eq!(check(early, &key(1)), Err(AuthError::NotYetValid));
        let other = Claims {
            room: "other".into(),
            ..claims()
        };
        assert_eq!(check(other, &key(1)), Err(AuthError::WrongRoom));
        let anonymous = Claims {
            sub: String::new(),
            ..claims()
        };
        assert_eq!(check(anonymous, &key(1)), Err(AuthError::BadClaims));
    }

    #[test]
    fn tampering_and_other_algorithms_are_refused() {
        let keys = [key(1).pk];
        let token = mint(&claims(), &key(1));
        let (signing_input, sig) = token.rsplit_once('.').unwrap();
        let (header, _) = signing_input.split_once('.').unwrap();
        let forged_payload = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&Claims {
                sub: "mallory".into(),
                ..claims()
            })
            .unwrap(),
        );
        let forged = format!("{header}.{forged_payload}.{sig}");
        assert_eq!(
            verify(&forged, &keys, &room(), NOW),
            Err(AuthError::BadSignature)
        );
        let none_alg = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let (_, rest) = token.split_once('.').unwrap();
        assert_eq!(
            verify(&format!("{none_alg}.{rest}"), &keys, &room(), NOW),
            Err(AuthError::UnsupportedAlgorithm)
        );
        for bad in [
            "",
            "a.b",
            "a.b.c.d",
            "!!.!!.!!",
            &"x".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert_eq!(
                verify(bad, &keys, &room(), NOW),
                Err(AuthError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn token_rides_in_the_subprotocol_header() {
        assert_eq!(
            token_from_protocols("sealsync.v1, sealsync.auth.abc.def.ghi"),
            Some("abc.def.ghi")
        );
        assert_eq!(token_from_protocols("sealsync.v1"), None);
    }

    #[test]
    fn auth_mode_from_vars() {
        let pk = URL_SAFE_NO_PAD.encode(key(1).pk.as_ref());
        let vars = |mode: &'static str, keys: String| {
            move |name: &str| match name {
                "AUTH_MODE" => Some(mode.to_owned()),
                "JWT_PUBLIC_KEYS" => Some(keys.clone()),
                _ => None,
            }
        };
        assert_eq!(AuthMode::from_vars(|_| None), Ok(AuthMode::None));
        assert_eq!(
            AuthMode::from_vars(vars("jwt", format!("{pk}, "))),
            Ok(AuthMode::Jwt(vec![key(1).pk]))
        );
        assert!(AuthMode::from_vars(vars("jwt", String::new())).is_err());
        assert!(AuthMode::from_vars(vars("jwt", "short".into())).is_err());
        assert!(AuthMode::from_vars(vars("oauth", pk)).is_err());
    }
}
