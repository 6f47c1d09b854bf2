//! The public keys that may sign tokens (`JWT_PUBLIC_KEYS`), and signature checks.
//!
//! `JWT_PUBLIC_KEYS` holds either
//! - a JWK Set, `{"keys":[…]}`, as identity providers publish it at their JWKS address:
//!   `OKP`/`Ed25519` keys verify `EdDSA`, `EC`/`P-256` keys verify `ES256`, and `RSA` keys
//!   of [`MIN_RSA_BITS`] to [`MAX_RSA_BITS`] bits verify `RS256`; or
//! - a list of keys separated by commas or whitespace, each either the base64url of a raw
//!   32-byte Ed25519 public key (what the `mint_token` example prints) or a PEM block
//!   `-----BEGIN PUBLIC KEY-----` … `-----END PUBLIC KEY-----` holding an SPKI public key
//!   (`openssl pkey -pubout`): Ed25519 (verifies `EdDSA`), EC on P-256 (verifies `ES256`)
//!   or RSA of [`MIN_RSA_BITS`] to [`MAX_RSA_BITS`] bits (verifies `RS256`). A PEM key has
//!   no `kid`. Where the value cannot hold line breaks, they may be written `\n` (the two
//!   characters backslash and `n`), as many secret stores and `.env` files do.
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
                let key = rsa_key(&n, &e, &format!("JWK {name}"))?;
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

/// The PEM label of an SPKI public key.
const PEM_BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
const PEM_END: &str = "-----END PUBLIC KEY-----";

/// One entry of a `JWT_PUBLIC_KEYS` list.
enum Entry {
    /// A whole PEM block, `BEGIN` to `END` line.
    Pem(String),
    /// A raw base64url Ed25519 key.
    Raw(String),
}

/// Splits a key list (not a JWK Set) into its entries: PEM blocks and raw keys, separated
/// by commas or whitespace. Line breaks written as the two characters `\n` (and `\r`)
/// count as real ones: neither PEM nor base64url holds a backslash.
fn entries(raw: &str) -> Result<Vec<Entry>, AuthConfigError> {
    let text = raw.replace("\\r", "\r").replace("\\n", "\n");
    let mut out = Vec::new();
    let mut rest = text.as_str();
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        if rest.is_empty() {
            return Ok(out);
        }
        if rest.starts_with("-----BEGIN") {
            if !rest.starts_with(PEM_BEGIN) {
                let label: String = rest.chars().take(40).collect();
                return Err(AuthConfigError(format!(
                    "JWT_PUBLIC_KEYS holds a PEM block that is not a public key ({label}…); \
                     put only public keys there, as `openssl pkey -pubout` prints them \
                     ({PEM_BEGIN})"
                )));
            }
            let end = rest.find(PEM_END).ok_or_else(|| {
                AuthConfigError(format!(
                    "JWT_PUBLIC_KEYS: a PEM block has no {PEM_END} line"
                ))
            })? + PEM_END.len();
            out.push(Entry::Pem(rest[..end].to_owned()));
            rest = &rest[end..];
        } else {
            let end = rest
                .find(|c: char| c == ',' || c.is_whitespace())
                .unwrap_or(rest.len());
            out.push(Entry::Raw(rest[..end].to_owned()));
            rest = &rest[end..];
        }
    }
}

impl PublicKey {
    /// A key from one PEM block holding an SPKI public key (Ed25519, P-256 or RSA).
    fn from_pem(block: &str) -> Result<Self, AuthConfigError> {
        use spki::der::{asn1::ObjectIdentifier, Decode as _, DecodePem as _};
        const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
        const EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
        const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
        const RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
        let bad = |why: String| AuthConfigError(format!("JWT_PUBLIC_KEYS: a PEM key {why}"));
        let info = spki::SubjectPublicKeyInfoOwned::from_pem(block)
            .map_err(|e| bad(format!("is not a well-formed SPKI public key ({e})")))?;
        let bits = info
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| bad("has a key of a partial byte".into()))?;
        let oid = info.algorithm.oid;
        let verifier = if oid == ED25519 {
            ed25519_compact::PublicKey::from_slice(bits)
                .map(Verifier::Ed25519)
                .map_err(|_| bad("(Ed25519) is not 32 bytes".into()))?
        } else if oid == EC {
            let curve = info
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
            if curve != Some(P256) {
                return Err(bad(
                    "is an EC key on another curve than P-256; ES256 needs P-256".into(),
                ));
            }
            p256::ecdsa::VerifyingKey::from_sec1_bytes(bits)
                .map(Verifier::P256)
                .map_err(|_| bad("(P-256) is not a point on the curve".into()))?
        } else if oid == RSA {
            let key = rsa::pkcs1::RsaPublicKey::<spki::der::asn1::UintRef<'_>>::from_der(bits)
                .map_err(|e| bad(format!("(RSA) is not an RSAPublicKey ({e})")))?;
            Verifier::Rsa(Box::new(rsa::pkcs1v15::VerifyingKey::new(rsa_key(
                key.modulus.as_bytes(),
                key.public_exponent.as_bytes(),
                "a PEM RSA key",
            )?)))
        } else {
            return Err(bad(format!(
                "has the algorithm {oid}, which is not supported; use Ed25519 (EdDSA), \
                 EC P-256 (ES256) or RSA (RS256)"
            )));
        };
        Ok(Self {
            kid: None,
            verifier,
        })
    }
}

/// An RSA key of modulus `n` and exponent `e` (big-endian), within [`MIN_RSA_BITS`] to
/// [`MAX_RSA_BITS`]; `name` names it in the error.
fn rsa_key(n: &[u8], e: &[u8], name: &str) -> Result<rsa::PublicKey, AuthConfigError> {
    rsa::PublicKey::new_with_size_limits(
        BoxedUint::from_be_slice_vartime(n),
        BoxedUint::from_be_slice_vartime(e),
        MIN_RSA_BITS..=MAX_RSA_BITS,
    )
    .map_err(|err| {
        AuthConfigError(format!(
            "{name}: not a usable RSA key ({err}; {MIN_RSA_BITS} to {MAX_RSA_BITS} bits)"
        ))
    })
}

impl KeySet {
    /// Parses `JWT_PUBLIC_KEYS`: a JWK Set, or a list of PEM blocks and raw Ed25519 keys.
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
            entries(raw)?
                .into_iter()
                .map(|entry| match entry {
                    Entry::Pem(block) => PublicKey::from_pem(&block),
                    Entry::Raw(k) => URL_SAFE_NO_PAD
                        .decode(&k)
                        .ok()
                        .and_then(|b| ed25519_compact::PublicKey::from_slice(&b).ok())
                        .map(PublicKey::ed25519)
                        .ok_or_else(|| {
                            AuthConfigError(format!(
                                "JWT_PUBLIC_KEYS entry {k:?} is not 32 bytes of base64url \
                                 (an Ed25519 key), nor a PEM block, and the value is not a \
                                 JWK Set"
                            ))
                        }),
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
