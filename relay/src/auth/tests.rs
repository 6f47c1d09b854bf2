use ed25519_compact::Seed;
use serde_json::Value;

use super::*;

#[path = "../../tests/support/pem.rs"]
mod pem_support;
use pem_support::{pem, pem_token};

const NOW: u64 = 1_700_000_000;

fn key(n: u8) -> KeyPair {
    KeyPair::from_seed(Seed::new([n; 32]))
}

fn keys(pairs: &[&KeyPair]) -> KeySet {
    KeySet::from(
        pairs
            .iter()
            .map(|k| PublicKey::ed25519(k.pk))
            .collect::<Vec<_>>(),
    )
}

fn claims() -> Claims {
    Claims {
        sub: "alice".into(),
        org: "acme".into(),
        room: Some("acme:café".into()),
        exp: NOW + 600,
        nbf: None,
        role: Some("editor".into()),
        guest: false,
    }
}

fn room() -> RoomId {
    RoomId::new("acme:cafe\u{301}").unwrap()
}

/// ES256 and RS256 tokens and keys made by Node's crypto (`fixtures/jwt/make.mjs`).
fn fixtures() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/jwt/fixtures.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The fixtures, their key set, the room their tokens are for and their `now`.
fn fixture_setup() -> (Value, KeySet, RoomId, u64) {
    let f = fixtures();
    let set = KeySet::parse(&f["jwks"].to_string()).unwrap();
    let now = f["now"].as_u64().unwrap();
    (f, set, RoomId::new("acme:roadmap").unwrap(), now)
}

/// `token` with `member` of its header set to `value` (the signature left as it was).
fn with_header(token: &str, member: &str, value: &str) -> String {
    let (header, rest) = token.split_once('.').unwrap();
    let mut h: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    h[member] = value.into();
    format!("{}.{rest}", URL_SAFE_NO_PAD.encode(h.to_string()))
}

#[test]
fn a_minted_token_verifies_with_any_configured_key() {
    let token = mint(&claims(), &key(1));
    assert_eq!(
        verify(&token, &keys(&[&key(2), &key(1)]), &room(), NOW),
        Ok(claims())
    );
}

#[test]
fn every_refusal_has_its_reason() {
    let set = keys(&[&key(1)]);
    let check = |c: Claims, k: &KeyPair| verify(&mint(&c, k), &set, &room(), NOW);
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
    let other_room = Claims {
        room: Some("acme:other".into()),
        ..claims()
    };
    assert_eq!(check(other_room, &key(1)), Err(AuthError::WrongRoom));
    let other_org = Claims {
        org: "globex".into(),
        room: None,
        ..claims()
    };
    assert_eq!(check(other_org, &key(1)), Err(AuthError::WrongOrg));
    for (sub, org) in [("", "acme"), ("alice", "")] {
        let c = Claims {
            sub: sub.into(),
            org: org.into(),
            ..claims()
        };
        assert_eq!(
            check(c, &key(1)),
            Err(AuthError::BadClaims),
            "{sub:?} {org:?}"
        );
    }
    let long_role = Claims {
        role: Some("r".repeat(MAX_CLAIM_LEN + 1)),
        ..claims()
    };
    assert_eq!(check(long_role, &key(1)), Err(AuthError::BadClaims));
}

#[test]
fn a_token_without_room_opens_every_room_of_its_org_and_only_those() {
    let set = keys(&[&key(1)]);
    let token = mint(
        &Claims {
            room: None,
            ..claims()
        },
        &key(1),
    );
    for name in ["acme:roadmap", "acme:a:b"] {
        let room = RoomId::new(name).unwrap();
        assert!(verify(&token, &set, &room, NOW).is_ok(), "{name}");
    }
    for name in [
        "globex:roadmap",
        "acme",
        "acme-roadmap",
        ":roadmap",
        "acmeco:x",
    ] {
        let room = RoomId::new(name).unwrap();
        assert_eq!(
            verify(&token, &set, &room, NOW),
            Err(AuthError::WrongOrg),
            "{name}"
        );
    }
}

#[test]
fn room_org_is_the_prefix_before_the_first_colon() {
    let org = |name: &str| room_org(&RoomId::new(name).unwrap()).map(str::to_owned);
    assert_eq!(org("acme:roadmap").as_deref(), Some("acme"));
    assert_eq!(org("acme:a:b").as_deref(), Some("acme"));
    assert_eq!(org("roadmap"), None);
    assert_eq!(org(":roadmap"), None);
}

#[test]
fn the_pending_guest_role_is_a_guest_like_the_guest_claim() {
    let with = |role: Option<&str>, guest: bool| Claims {
        role: role.map(Into::into),
        guest,
        ..claims()
    };
    assert!(with(None, true).is_guest());
    assert!(with(Some("editor"), true).is_guest());
    for role in [
        PENDING_GUEST_ROLE,
        "Pending_Guest",
        " PENDING_GUEST ",
        "pending_guest\n",
    ] {
        assert!(with(Some(role), false).is_guest(), "{role:?} is a guest");
        assert!(!is_read_only_role(role), "{role:?} writes once admitted");
    }
    for member in [
        None,
        Some("editor"),
        Some("viewer"),
        Some("pending"),
        Some("guest"),
    ] {
        assert!(!with(member, false).is_guest(), "{member:?} is no guest");
    }
    // Through a signed token, as the worker reads it.
    let token = mint(&with(Some("pending_guest"), false), &key(1));
    assert!(verify(&token, &keys(&[&key(1)]), &room(), NOW)
        .unwrap()
        .is_guest());
}

#[test]
fn the_viewer_role_is_read_only() {
    assert!(is_read_only_role(READ_ONLY_ROLE));
    assert!(!is_read_only_role("editor"));
    for viewer in ["Viewer", "VIEWER", "vIeWeR", " viewer ", "viewer\n"] {
        assert!(is_read_only_role(viewer), "{viewer:?} reads only");
    }
    for writer in ["viewers", "view", "", "v iewer", "viewer-plus"] {
        assert!(!is_read_only_role(writer), "{writer:?} may write");
    }
}

#[test]
fn tampering_and_other_algorithms_are_refused() {
    let set = keys(&[&key(1)]);
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
        verify(&forged, &set, &room(), NOW),
        Err(AuthError::BadSignature)
    );
    let (_, rest) = token.split_once('.').unwrap();
    for alg in [
        r#"{"alg":"none"}"#,
        r#"{"alg":"HS256"}"#,
        r#"{"alg":"EdDSA","crit":["b64"]}"#,
    ] {
        let h = URL_SAFE_NO_PAD.encode(alg);
        assert_eq!(
            verify(&format!("{h}.{rest}"), &set, &room(), NOW),
            Err(AuthError::UnsupportedAlgorithm),
            "{alg}"
        );
    }
    for bad in [
        "",
        "a.b",
        "a.b.c.d",
        "!!.!!.!!",
        &"x".repeat(MAX_TOKEN_LEN + 1),
    ] {
        assert_eq!(
            verify(bad, &set, &room(), NOW),
            Err(AuthError::Malformed),
            "{bad}"
        );
    }
}

#[test]
fn es256_and_rs256_tokens_signed_by_another_implementation_verify() {
    let (f, set, room, now) = fixture_setup();
    for alg in ["ES256", "RS256"] {
        let token = f["tokens"][alg].as_str().unwrap();
        let claims = verify(token, &set, &room, now).unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(
            (
                claims.sub.as_str(),
                claims.org.as_str(),
                claims.role.as_deref()
            ),
            ("alice", "acme", Some("editor")),
            "{alg}"
        );
        // Signed by a key that is not configured, under the same kid.
        let other = f["tokens"][format!("{alg}_other_key")].as_str().unwrap();
        assert_eq!(
            verify(other, &set, &room, now),
            Err(AuthError::BadSignature),
            "{alg}"
        );
        // One flipped bit anywhere in the signature.
        let (input, sig) = token.rsplit_once('.').unwrap();
        let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        sig[7] ^= 0x10;
        let flipped = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&sig));
        assert_eq!(
            verify(&flipped, &set, &room, now),
            Err(AuthError::BadSignature),
            "{alg}"
        );
        // Claims are still checked after the signature.
        assert_eq!(
            verify(token, &set, &room, now + 3600),
            Err(AuthError::Expired),
            "{alg}"
        );
    }
}

#[test]
fn the_key_decides_the_algorithm_not_the_token() {
    let (f, set, room, now) = fixture_setup();
    // An RS256 token relabelled ES256 (and the reverse) is checked only against keys of
    // the label's algorithm, and fails.
    for (token_alg, label) in [("RS256", "ES256"), ("ES256", "RS256"), ("ES256", "EdDSA")] {
        let token = f["tokens"][token_alg].as_str().unwrap();
        assert_eq!(
            verify(&with_header(token, "alg", label), &set, &room, now),
            Err(AuthError::BadSignature),
            "{token_alg} as {label}"
        );
    }
    // A kid that names another configured key.
    let token = f["tokens"]["ES256"].as_str().unwrap();
    assert_eq!(
        verify(&with_header(token, "kid", "rs256-1"), &set, &room, now),
        Err(AuthError::BadSignature)
    );
}

#[test]
fn a_kid_in_the_token_still_finds_keys_configured_without_one() {
    // Raw Ed25519 keys have no kid; a backend library that always sets one still works.
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"EdDSA","typ":"JWT","kid":"backend-2026"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims()).unwrap());
    let input = format!("{header}.{payload}");
    let signature = key(1).sk.sign(input.as_bytes(), None);
    let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()));
    let set = keys(&[&key(2), &key(1)]);
    assert_eq!(verify(&token, &set, &room(), NOW), Ok(claims()));
}

#[test]
fn a_jwk_set_is_parsed_and_bad_keys_are_named() {
    let (f, set, _, _) = fixture_setup();
    let algs: Vec<_> = set
        .keys()
        .iter()
        .map(|k| (k.algorithm(), k.kid()))
        .collect();
    assert_eq!(
        algs,
        [
            (Algorithm::Es256, Some("es256-1")),
            (Algorithm::Rs256, Some("rs256-1"))
        ]
    );
    let ed = URL_SAFE_NO_PAD.encode(key(1).pk.as_ref());
    let okp = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": ed, "kid": "ed"});
    let set = KeySet::parse(&serde_json::json!({ "keys": [okp] }).to_string()).unwrap();
    assert!(verify(&mint(&claims(), &key(1)), &set, &room(), NOW).is_ok());

    let es = f["jwks"]["keys"][0].clone();
    let with = |k: &str, v: Value| {
        let mut jwk = es.clone();
        jwk[k] = v;
        serde_json::json!({ "keys": [jwk] }).to_string()
    };
    let refused = |raw: String, needle: &str| {
        let err = KeySet::parse(&raw).unwrap_err();
        assert!(err.0.contains(needle), "{needle:?} not in {err}");
    };
    refused(with("d", "AAAA".into()), "private key");
    refused(with("use", "enc".into()), "only signing keys");
    refused(with("alg", "RS256".into()), "does not fit");
    refused(with("crv", "P-384".into()), "not supported");
    refused(with("x", "AAAA".into()), "32 bytes");
    refused(with("y", Value::Null), "has no \"y\"");
    let mut off_curve = URL_SAFE_NO_PAD.decode(es["y"].as_str().unwrap()).unwrap();
    off_curve[31] ^= 1;
    refused(
        with("y", URL_SAFE_NO_PAD.encode(off_curve).into()),
        "not a point",
    );
    refused(
        serde_json::json!({ "keys": [f["weak_rsa_jwk"]] }).to_string(),
        "not a usable RSA key",
    );
    refused(r#"{"keys": 3}"#.into(), "not a JWK Set");
    refused(r#"{"keys": []}"#.into(), "at least one key");
    refused("short".into(), "not 32 bytes");
    refused(String::new(), "at least one key");
}

#[test]
fn no_offered_token_is_missing() {
    let set = keys(&[&key(1)]);
    assert_eq!(
        verify_offered(None, &set, &room(), NOW),
        Err(AuthError::Missing)
    );
    let token = mint(&claims(), &key(1));
    assert_eq!(
        verify_offered(Some(&token), &set, &room(), NOW),
        Ok(claims())
    );
}

#[test]
fn tokens_ride_in_the_subprotocol_or_the_authorization_header() {
    assert_eq!(
        token_from_protocols("sealsync.v2, sealsync.auth.abc.def.ghi"),
        Some("abc.def.ghi")
    );
    assert_eq!(token_from_protocols("sealsync.v2"), None);
    assert_eq!(token_from_authorization("Bearer a.b.c"), Some("a.b.c"));
    assert_eq!(token_from_authorization("bearer  a.b.c "), Some("a.b.c"));
    assert_eq!(token_from_authorization("Basic a.b.c"), None);
    assert_eq!(token_from_authorization("Bearer "), None);
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
    assert!(matches!(AuthMode::from_vars(|_| None), Ok(AuthMode::None)));
    for open in ["open", "none", ""] {
        let only_mode = move |name: &str| (name == "AUTH_MODE").then(|| open.to_owned());
        assert!(
            matches!(AuthMode::from_vars(only_mode), Ok(AuthMode::None)),
            "{open:?}"
        );
    }
    match AuthMode::from_vars(vars("jwt", format!("{pk}, "))) {
        Ok(AuthMode::Jwt(set)) => {
            assert_eq!(set.keys().len(), 1);
            assert_eq!(set.keys()[0].algorithm(), Algorithm::EdDsa);
        }
        other => panic!("{other:?}"),
    }
    assert!(AuthMode::from_vars(vars("jwt", String::new())).is_err());
    assert!(AuthMode::from_vars(vars("jwt", "short".into())).is_err());
    assert!(AuthMode::from_vars(vars("oauth", pk)).is_err());
}

/// A token for `claims()` signed with the PEM private key `name` (`ed25519`, `es256`,
/// `rs256`) under `alg`.
fn pem_signed(name: &str, alg: &str) -> String {
    pem_token(name, alg, &claims())
}

#[test]
fn pem_public_keys_of_each_algorithm_verify_their_tokens() {
    let all = format!(
        "{}{}{}",
        pem("ed25519.pem"),
        pem("es256.pem"),
        pem("rs256.pem")
    );
    let set = KeySet::parse(&all).unwrap();
    let algs: Vec<_> = set.keys().iter().map(|k| k.algorithm()).collect();
    assert_eq!(algs, [Algorithm::EdDsa, Algorithm::Es256, Algorithm::Rs256]);
    assert!(set.keys().iter().all(|k| k.kid().is_none()));
    for (name, alg) in [("ed25519", "EdDSA"), ("es256", "ES256"), ("rs256", "RS256")] {
        let token = pem_signed(name, alg);
        assert_eq!(verify(&token, &set, &room(), NOW), Ok(claims()), "{name}");
        // Each key verifies only its own algorithm's tokens.
        let only = KeySet::parse(&pem(&format!("{name}.pem"))).unwrap();
        assert_eq!(only.keys().len(), 1);
        assert!(verify(&token, &only, &room(), NOW).is_ok(), "{name}");
        let other = if name == "es256" { "ed25519" } else { "es256" };
        let wrong = KeySet::parse(&pem(&format!("{other}.pem"))).unwrap();
        assert_eq!(
            verify(&token, &wrong, &room(), NOW),
            Err(AuthError::BadSignature),
            "{name} checked against {other}"
        );
    }
}

#[test]
fn pem_lists_mix_with_raw_keys_and_take_escaped_line_breaks() {
    let raw = URL_SAFE_NO_PAD.encode(*key(1).pk);
    // As a secret store or a `.env` line holds it: `\n` for each line break, and commas.
    let escaped = format!("{},{raw}, {}", pem("es256.pem"), pem("rs256.pem")).replace('\n', "\\n");
    let set = KeySet::parse(&escaped).unwrap();
    let algs: Vec<_> = set.keys().iter().map(|k| k.algorithm()).collect();
    assert_eq!(algs, [Algorithm::Es256, Algorithm::EdDsa, Algorithm::Rs256]);
    let token = pem_signed("rs256", "RS256");
    assert!(verify(&token, &set, &room(), NOW).is_ok());
    let crlf = pem("ed25519.pem").replace('\n', "\r\n");
    assert_eq!(KeySet::parse(&crlf).unwrap().keys().len(), 1);
}

#[test]
fn bad_pem_keys_are_refused_with_a_reason() {
    let err = |raw: &str| KeySet::parse(raw).unwrap_err().0;
    // A private key never belongs in JWT_PUBLIC_KEYS.
    assert!(err(&pem("es256.key.pem")).contains("not a public key"));
    // P-384 is a valid SPKI key, but not one ES256 verifies.
    assert!(err(&pem("p384.pem")).contains("P-256"));
    let unterminated = pem("es256.pem").replace("-----END PUBLIC KEY-----", "");
    assert!(err(&unterminated).contains("END PUBLIC KEY"));
    let mangled = pem("rs256.pem").replacen("MII", "MIX", 1);
    assert!(err(&mangled).contains("PEM key"));
    // The first PEM of the list is fine, the raw entry after it is not.
    assert!(err(&format!("{},not-a-key", pem("ed25519.pem"))).contains("not-a-key"));
}
