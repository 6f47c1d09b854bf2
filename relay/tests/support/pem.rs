//! JWTs signed with the PEM private keys of `tests/fixtures/pem` (made by OpenSSL:
//! `fixtures/pem/make.sh`), as an application backend signs them. One implementation for
//! the relay's unit tests (`src/auth/tests.rs`) and its integration tests, which both
//! include this file with `#[path]`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// The PEM file `name` of `tests/fixtures/pem` (`es256.pem`, `rs256.key.pem`, …).
pub(crate) fn pem(name: &str) -> String {
    let path = format!("{}/tests/fixtures/pem/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A JWT of `claims` with the header `{"alg": alg, "typ": "JWT"}`, signed with the PEM
/// private key `name` (`ed25519`, `es256`, `rs256`) whatever `alg` says.
pub(crate) fn pem_token(name: &str, alg: &str, claims: &impl serde::Serialize) -> String {
    use p256::pkcs8::DecodePrivateKey as _;
    use rsa::signature::{SignatureEncoding as _, Signer as _};
    let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
    let input = format!("{header}.{payload}");
    let key = pem(&format!("{name}.key.pem"));
    let signature: Vec<u8> = match name {
        "ed25519" => ed25519_compact::KeyPair::from_pem(&key)
            .unwrap()
            .sk
            .sign(input.as_bytes(), None)
            .to_vec(),
        "es256" => {
            let sk = p256::ecdsa::SigningKey::from_pkcs8_pem(&key).unwrap();
            let sig: p256::ecdsa::Signature = sk.sign(input.as_bytes());
            sig.to_bytes().to_vec()
        }
        "rs256" => {
            let sk = rsa::PrivateKey::from_pkcs8_pem(&key).unwrap();
            let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(sk);
            signer.sign(input.as_bytes()).to_vec()
        }
        other => panic!("no PEM test key {other}"),
    };
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}
