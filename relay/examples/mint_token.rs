//! Mints Ed25519 (`EdDSA`) tokens for the relay's `jwt` auth mode: what the application
//! backend does per user. The token opens the rooms `<org>:…` of its org, or only `--room`.
//! (A backend that already has an ES256 or RS256 key puts its JWK Set in `JWT_PUBLIC_KEYS`
//! instead and signs with its own JWT library.) Keep the seed secret (it is the signing key); put the public key in
//! `JWT_PUBLIC_KEYS`.
//!
//! ```sh
//! cargo run -p sealsync-relay --example mint_token -- keygen
//! cargo run -p sealsync-relay --example mint_token -- pubkey <seed>
//! cargo run -p sealsync-relay --example mint_token -- sign <seed> <user> <org> [--room ROOM] [--role R] [--guest] [--ttl SECONDS]
//! ```
#![allow(clippy::print_stdout, reason = "a command-line tool prints its result")]

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_compact::{KeyPair, Seed};
use sealsync_relay::auth::{mint, Claims};

fn key(seed: &str) -> Result<KeyPair, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(seed.trim())
        .map_err(|e| format!("the seed is not base64url: {e}"))?;
    let seed: [u8; 32] = bytes
        .try_into()
        .map_err(|_| "the seed must be 32 bytes".to_owned())?;
    Ok(KeyPair::from_seed(Seed::new(seed)))
}

fn run(args: &[String]) -> Result<String, String> {
    match args {
        [cmd] if cmd == "keygen" => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|e| format!("no randomness: {e}"))?;
            let pair = KeyPair::from_seed(Seed::new(seed));
            Ok(format!(
                "SEED={}\nJWT_PUBLIC_KEYS={}",
                URL_SAFE_NO_PAD.encode(seed),
                URL_SAFE_NO_PAD.encode(pair.pk.as_ref())
            ))
        }
        [cmd, seed] if cmd == "pubkey" => Ok(URL_SAFE_NO_PAD.encode(key(seed)?.pk.as_ref())),
        [cmd, seed, user, org, rest @ ..] if cmd == "sign" => {
            let mut room = None;
            let mut role = None;
            let mut guest = false;
            let mut ttl = 3600u64;
            let mut it = rest.iter();
            while let Some(flag) = it.next() {
                match flag.as_str() {
                    "--room" => room = Some(it.next().cloned().ok_or("--room needs a room id")?),
                    "--role" => role = Some(it.next().cloned().ok_or("--role needs a role")?),
                    "--guest" => guest = true,
                    "--ttl" => {
                        ttl = it
                            .next()
                            .and_then(|t| t.parse().ok())
                            .ok_or("--ttl needs a number of seconds")?;
                    }
                    other => return Err(format!("unknown flag {other}")),
                }
            }
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_err(|e| e.to_string())?
                .as_secs();
            let claims = Claims {
                sub: user.clone(),
                org: org.clone(),
                room,
                exp: now + ttl,
                nbf: None,
                role,
                guest,
            };
            Ok(mint(&claims, &key(seed)?))
        }
        _ => Err(
            "usage: mint_token keygen | pubkey <seed> | sign <seed> <user> <org> \
                  [--room ROOM] [--role R] [--guest] [--ttl SECONDS]"
                .into(),
        ),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mint_token: {e}");
            ExitCode::FAILURE
        }
    }
}
