//! The public keys that may sign tokens (`JWT_PUBLIC_KEYS`), and signature checks.
//!
//! `JWT_PUBLIC_KEYS` holds either
//! - a JWK Set, `{"keys":[…]}`, as identity providers publish it at their JWKS address:
//!   `OKP`/`Ed25519` keys verify `EdDSA`, `EC`/`P-256` keys verify `ES256`, and `RSA` keys
//!   of [`MIN_RSA_BITS`] to [`MAX_RSA_BITS`] bits verify `RS256`; or
//! - comma-separated base64url of raw 32-byte Ed25519 public keys (what the `mint_token`
//!   example prints).
//!
//! The key decides the algorithm, never the token: a token whose `alg` is not its key's
//! algorithm is not verified by that key. A token with a `kid` is not checked against keys
//! with another `kid` (keys without one stay candidates); a token without a `kid` is
//! checked against every key of its algorithm. Several keys allow rotation.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::ecdsa::signature::Verifier as _;
use rsa::sha2::Sha256;
use rsa::BoxedUint;
use serde::Deserialize;

use super::AuthConfigError;

/// The smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// The largest RSA modulus accepted, in bits.
pub const MAX_RSA_BITS: usize = 8192;

/// A JWS signature algorithm the relay verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// `EdDSA` with Ed25519.
    EdDsa,
    /// `ES256`: ECDSA on P-256 with SHA-256, signature `r ‖ s` (64 bytes).
    Es256,
    /// `RS256`: RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
}

impl Algorithm {
    /// The JWS `alg` name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::EdDsa => "EdDSA",
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
        }
    }

    /// The algorithm a JWS `alg` names, if the relay verifies it.
    #[must_use]
    pub fn from_name(alg: &str) -> Option<Self> {
        [Self::EdDsa, Self::Es256, Self::Rs256]
            .into_iter()
            .find(|a| a.name() == alg)
    }
}

#[derive(Clone)]
enum Verifier {
    Ed25519(ed25519_compact::PublicKey),
    P256(p256::ecdsa::VerifyingKey),
    Rsa(Box<rsa::pkcs1v15::VerifyingKey<Sha256>>),
}

/// One verification key, with its `kid` when the JWK had one.
#[derive(Clone)]
pub struct PublicKey {
    kid: Option<String>,
    verifier: Verifier,
}

impl core::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PublicKey")
            .field("alg", &self.algorithm().name())
            .field("kid", &self.kid)
            .finish()
    }
}

impl PublicKey {
    /// A raw Ed25519 key without a `kid`.
    #[must_use]
    pub const fn ed25519(key: ed25519_compact::PublicKey) -> Self {
        Self {
            kid: None,
            verifier: Verifier::Ed25519(key),
        }
    }

    /// The algorithm this key verifies.
    #[must_use]
    pub const fn algorithm(&self) -> Algorithm {
        match self.verifier {
            Verifier::Ed25519(_) => Algorithm::EdDsa,
            Verifier::P256(_) => Algorithm::Es256,
            Verifier::Rsa(_) => Algorithm::Rs256,
        }
    }

    /// The key's `kid`, if it has one.
    #[must_use]
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Whether `signature` is this key's signature of `signing_input` (false for a
    /// signature of the wrong size or encoding).
    #[must_use]
    pub fn verifies(&self, signing_input: &[u8], signature: &[u8]) -> bool {
        match &self.verifier {
            Verifier::Ed25519(key) => ed25519_compact::Signature::from_slice(signature)
                .is_ok_and(|s| key.verify(signing_input, &s).is_ok()),
            Verifier::P256(key) => p256::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|s| key.verify(signing_input, &s).is_ok()),
            Verifier::Rsa(key) => rsa::pkcs1v15::Signature::try_from(signature)
                .is_ok_and(|s| key.verify(signing_input, &s).is_ok()),
        }
    }
}

/// The configured keys.
#[derive(Debug, Clone)]
pub struct KeySet(Vec<PublicKey>);

/// One JWK, with only the members the relay reads.
#[derive(Deserialize)]
struct Jwk {
    kty: String,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    d: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<Jwk>,
}

impl Jwk {
    /// How errors name this key: its `kid`, if it has one.
    fn name(&self) -> &str {
        self.kid.as_deref().unwrap_or("without kid")
    }

    /// The bytes of the base64url member `member` (`x`, `n`, …) holding `value`.
    fn bytes(&self, member: &str, value: Option<&String>) -> Result<Vec<u8>, AuthConfigError> {
        let value = value.ok_or_else(|| {
            AuthConfigError(format!(
                "JWK {} ({}) has no \"{member}\"",
                self.name(),
                self.kty
            ))
        })?;
        URL_SAFE_NO_PAD.decode(value).map_err(|_| {
            AuthConfigError(format!(
                "JWK {}: \"{member}\" is not base64url",
                self.name()
            ))
        })
    }
}

impl PublicKey {
    fn from_jwk(jwk: &Jwk) -> Result<Self, AuthConfigError> {
        let name = jwk.name();
        if jwk.d.is_some() {
            return Err(AuthConfigError(format!(
                "JWK {name} is a private key (it has \"d\"); put only public keys in \
                 JWT_PUBLIC_KEYS and keep the private key with the backend"
            )));
        }
        if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
            return Err(AuthConfigError(format!(
                "JWK {name} has \"use\": {:?}; only signing keys (\"sig\") verify tokens",
                jwk.use_
            )));
        }
        let verifier = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
            ("OKP", Some("Ed25519")) => {
                let x = jwk.bytes("x", jwk.x.as_ref())?;
                ed25519_compact::PublicKey::from_slice(&x)
                    .map(Verifier::Ed25519)
                    .map_err(|_| AuthConfigError(format!("JWK {name}: x is not 32 bytes")))?
            }
            ("EC", Some("P-256")) => {
                let x = jwk.bytes("x", jwk.x.as_ref())?;
                let y = jwk.bytes("y", jwk.y.as_ref())?;
                if x.len() != 32 || y.len() != 32 {
                    return Err(AuthConfigError(format!(
                        "JWK {name}: x and y of a P-256 key are 32 bytes each"
                    )));
                }
                let mut sec1 = Vec::with_capacity(65);
                sec1.push(0x04);
                sec1.extend_from_slice(&x);
                sec1.extend_from_slice(&y);
                p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
                    .map(Verifier::P256)
                    .map_err(|_| AuthConfigError(format!("JWK {name}: not a point on P-256")))?
            }
            ("RSA", _) => {
                let n = jwk.bytes("n", jwk.n.as_ref())?;
                let e = jwk.bytes("e", jwk.e.as_ref())?;
                let key = rsa::PublicKey::new_with_size_limits(
                    BoxedUint::from_be_slice_vartime(&n),
                    BoxedUint::from_be_slice_vartime(&e),
                    MIN_RSA_BITS..=MAX_RSA_BITS,
                )
                .map_err(|err| {
                    AuthConfigError(format!(
                        "JWK {name}: not a usable RSA key ({err}; {MIN_RSA_BITS} to \
                         {MAX_RSA_BITS} bits)"
                    ))
                })?;
                Verifier::Rsa(Box::new(rsa::pkcs1v15::VerifyingKey::new(key)))
            }
            (kty, crv) => {
                return Err(AuthConfigError(format!(
                    "JWK {name}: kty {kty:?}{} is not supported; use OKP/Ed25519 (EdDSA), \
                     EC/P-256 (ES256) or RSA (RS256)",
                    crv.map(|c| format!(" crv {c:?}")).unwrap_or_default()
                )))
            }
        };
        let key = Self {
            kid: jwk.kid.clone(),
            verifier,
        };
        if let Some(alg) = &jwk.alg {
            if alg != key.algorithm().name() {
                return Err(AuthConfigError(format!(
                    "JWK {name}: \"alg\": {alg:?} does not fit its key type, which verifies {}",
                    key.algorithm().name()
                )));
            }
        }
        Ok(key)
    }
}

impl KeySet {
    /// Parses `JWT_PUBLIC_KEYS`: a JWK Set, or comma-separated raw Ed25519 keys.
    ///
    /// # Errors
    /// [`AuthConfigError`] naming the first key that is malformed, private, of an
    /// unsupported type or too weak, or when there is no key at all.
    pub fn parse(raw: &str) -> Result<Self, AuthConfigError> {
        let raw = raw.trim();
        let keys = if raw.starts_with('{') {
            let set: JwkSet = serde_json::from_str(raw).map_err(|e| {
                AuthConfigError(format!(
                    "JWT_PUBLIC_KEYS starts with '{{' but is not a JWK Set ({{\"keys\":[…]}}): {e}"
                ))
            })?;
            set.keys
                .iter()
                .map(PublicKey::from_jwk)
                .collect::<Result<Vec<_>, _>>()?
        } else {
            raw.split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(|k| {
                    URL_SAFE_NO_PAD
                        .decode(k)
                        .ok()
                        .and_then(|b| ed25519_compact::PublicKey::from_slice(&b).ok())
                        .map(PublicKey::ed25519)
                        .ok_or_else(|| {
                            AuthConfigError(format!(
                                "JWT_PUBLIC_KEYS entry {k:?} is not 32 bytes of base64url \
                                 (an Ed25519 key) and the value is not a JWK Set"
                            ))
                        })
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        if keys.is_empty() {
            return Err(AuthConfigError(
                "AUTH_MODE = \"jwt\" needs at least one key in JWT_PUBLIC_KEYS".into(),
            ));
        }
        Ok(Self(keys))
    }

    /// The keys.
    #[must_use]
    pub fn keys(&self) -> &[PublicKey] {
        &self.0
    }

    /// Whether a key of algorithm `alg` signed `signing_input`; when the token names a
    /// `kid`, keys with another `kid` are not tried.
    #[must_use]
    pub fn verifies(
        &self,
        alg: Algorithm,
        kid: Option<&str>,
        signing_input: &[u8],
        signature: &[u8],
    ) -> bool {
        self.0
            .iter()
            .filter(|k| k.algorithm() == alg)
            .filter(|k| kid.is_none() || k.kid().is_none() || k.kid() == kid)
            .any(|k| k.verifies(signing_input, signature))
    }
}

impl From<Vec<PublicKey>> for KeySet {
    fn from(keys: Vec<PublicKey>) -> Self {
        Self(keys)
    }
}
