//! `POST /internal/notify`: the application backend pushes to a room. The request is
//! authenticated with a service-token header pair, [`SERVICE_ID_HEADER`] and
//! [`SERVICE_SECRET_HEADER`], matched against the secrets `NOTIFY_SERVICE_ID` and
//! `NOTIFY_SERVICE_SECRET` in constant time, and, when `NOTIFY_ALLOWED_IPS` is set, must
//! come from one of those addresses (`CF-Connecting-IP`).
//!
//! Body (JSON): `{"room": "…", "kind": "…", "user": "…", "role": "…", "data": …}`, where
//! `kind` is one of:
//!
//! - `broadcast`: `NOTIFY` with `data` to every joined socket;
//! - `direct`: `NOTIFY` with `data` to the sockets of `user`;
//! - `ban`: `ERROR BANNED` and close 4010 for the sockets of `user`, and the user is refused
//!   from then on (the ban is stored in the room);
//! - `role`: sets `role` on the sockets of `user` and tells them with an `ACCESS` frame
//!   (what they may do now, as in `WELCOME`) and a `NOTIFY` `{"kind":"role","role":…}`;
//! - `admit`: a pending guest becomes a member (may publish) and is told with an `ACCESS`
//!   frame and a `NOTIFY` `{"kind":"admit"}`.
//!
//! `NOTIFY` is **not encrypted**: the backend must not push room content through it.

use std::collections::BTreeMap;

use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::hub::{leave, Out, Peer, PeerId};
use crate::store::{RoomStore, StoreError};
use sealsync_core::wire::{Access, RelayErrorCode, RelayFrame};

/// The largest notify body, in bytes.
pub const MAX_NOTIFY_BODY: usize = 64 * 1024;

/// What the backend asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyKind {
    /// `NOTIFY` to every joined socket.
    Broadcast,
    /// `NOTIFY` to one user's sockets.
    Direct,
    /// Close one user's sockets with 4010 and refuse the user from now on.
    Ban,
    /// Change one user's role.
    Role,
    /// Admit a pending guest.
    Admit,
}

/// A parsed, checked notify request.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NotifyRequest {
    /// The room (the worker routes on it).
    pub room: String,
    /// What to do.
    pub kind: NotifyKind,
    /// The user, for every kind but `broadcast`.
    #[serde(default)]
    pub user: Option<String>,
    /// The new role, for `role`.
    #[serde(default)]
    pub role: Option<String>,
    /// The payload of `broadcast` and `direct`.
    #[serde(default)]
    pub data: Option<serde_json::Value>,
}

impl NotifyRequest {
    /// Parses and checks a body.
    ///
    /// # Errors
    /// A message for a 400 answer: not JSON of this shape, too large, or a field missing
    /// for its kind.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        if body.len() > MAX_NOTIFY_BODY {
            return Err(format!("the body is over {MAX_NOTIFY_BODY} bytes"));
        }
        let req: Self =
            serde_json::from_slice(body).map_err(|e| format!("bad notify body: {e}"))?;
        let needs_user = req.kind != NotifyKind::Broadcast;
        if needs_user && req.user.as_deref().is_none_or(str::is_empty) {
            return Err(format!("kind {:?} needs a user", req.kind));
        }
        if req.kind == NotifyKind::Role && req.role.is_none() {
            return Err("kind role needs a role".into());
        }
        if matches!(req.kind, NotifyKind::Broadcast | NotifyKind::Direct) && req.data.is_none() {
            return Err("broadcast and direct need data".into());
        }
        Ok(req)
    }
}

/// The header that names the calling service.
pub const SERVICE_ID_HEADER: &str = "Sealsync-Service-Id";

/// The header that carries the calling service's secret.
pub const SERVICE_SECRET_HEADER: &str = "Sealsync-Service-Secret";

/// The configured service token: an id and a secret (the `NOTIFY_SERVICE_ID` and
/// `NOTIFY_SERVICE_SECRET` secrets).
#[derive(Clone)]
pub struct ServiceToken {
    id: [u8; 32],
    secret: [u8; 32],
}

impl core::fmt::Debug for ServiceToken {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ServiceToken(..)")
    }
}

/// The shortest accepted `NOTIFY_SERVICE_SECRET`, in bytes.
pub const MIN_SERVICE_SECRET_LEN: usize = 16;

fn digest(value: &str) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(value.as_bytes()).into()
}

impl ServiceToken {
    /// The token from the configured id and secret.
    ///
    /// # Errors
    /// A message to show the operator when the id is empty or the secret shorter than
    /// [`MIN_SERVICE_SECRET_LEN`].
    pub fn new(id: &str, secret: &str) -> Result<Self, String> {
        if id.trim().is_empty() {
            return Err("NOTIFY_SERVICE_ID is empty".into());
        }
        if secret.len() < MIN_SERVICE_SECRET_LEN {
            return Err(format!(
                "NOTIFY_SERVICE_SECRET is shorter than {MIN_SERVICE_SECRET_LEN} bytes; use a \
                 long random value"
            ));
        }
        Ok(Self {
            id: digest(id),
            secret: digest(secret),
        })
    }

    /// Whether the request's header pair is this token. Both headers are always compared,
    /// over digests of equal length, so the time taken says nothing about either.
    #[must_use]
    pub fn matches(&self, id: Option<&str>, secret: Option<&str>) -> bool {
        let id_ok = self.id.ct_eq(&digest(id.unwrap_or_default()));
        let secret_ok = self.secret.ct_eq(&digest(secret.unwrap_or_default()));
        bool::from(id_ok & secret_ok) && id.is_some() && secret.is_some()
    }
}

/// Whether the caller's address may notify (`NOTIFY_ALLOWED_IPS`, comma-separated; empty
/// allows any).
#[must_use]
pub fn ip_allowed(allowlist: &str, ip: Option<&str>) -> bool {
    let mut list = allowlist
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .peekable();
    if list.peek().is_none() {
        return true;
    }
    ip.is_some_and(|ip| list.any(|a| a == ip.trim()))
}

fn notify_frame(json: &serde_json::Value) -> Option<Vec<u8>> {
    RelayFrame::Notify {
        json: json.to_string(),
    }
    .encode()
    .ok()
}

/// Applies a request to the room; returns the outputs and how many sockets it reached.
///
/// # Errors
/// [`StoreError`] when storing a ban fails.
pub fn apply<S: RoomStore>(
    req: &NotifyRequest,
    peers: &mut BTreeMap<PeerId, Peer>,
    store: &mut S,
) -> Result<(Vec<Out>, usize), StoreError> {
    let mut out = Vec::new();
    let user = req.user.as_deref();
    let targets: Vec<PeerId> = peers
        .values()
        .filter(|p| p.joined || req.kind == NotifyKind::Ban)
        .filter(|p| req.kind == NotifyKind::Broadcast || p.user.as_deref() == user)
        .map(|p| p.id)
        .collect();
    let reached = targets.len();
    match req.kind {
        NotifyKind::Broadcast | NotifyKind::Direct => {
            let data = req.data.clone().unwrap_or(serde_json::Value::Null);
            if let (false, Some(frame)) = (targets.is_empty(), notify_frame(&data)) {
                out.push(Out::Broadcast { to: targets, frame });
            }
        }
        NotifyKind::Ban => {
            if let Some(user) = user {
                store.ban(user)?;
            }
            let frame = RelayFrame::Error {
                code: RelayErrorCode::Banned,
                fatal: true,
                message: "the application banned you from this room".into(),
            }
            .encode()
            .ok();
            for id in targets {
                if let Some(frame) = frame.clone() {
                    out.push(Out::Send { to: id, frame });
                }
                out.push(Out::Close {
                    to: id,
                    code: RelayErrorCode::Banned.close_code().unwrap_or(4010),
                    reason: "banned",
                });
                out.extend(leave(peers, id));
            }
        }
        NotifyKind::Role | NotifyKind::Admit => {
            let json = if req.kind == NotifyKind::Role {
                serde_json::json!({ "kind": "role", "role": req.role })
            } else {
                serde_json::json!({ "kind": "admit" })
            };
            // Every socket of the user changes, joined or not yet (its WELCOME then says
            // what it may do); the joined ones are told at once.
            let mut told: Vec<(Access, Vec<PeerId>)> = Vec::new();
            for peer in peers.values_mut().filter(|p| p.user.as_deref() == user) {
                if req.kind == NotifyKind::Role {
                    peer.role.clone_from(&req.role);
                } else {
                    peer.pending = false;
                }
                out.push(Out::Save(peer.id));
                if peer.joined {
                    let access = peer.access();
                    match told.iter_mut().find(|(a, _)| *a == access) {
                        Some((_, ids)) => ids.push(peer.id),
                        None => told.push((access, vec![peer.id])),
                    }
                }
            }
            // ACCESS first: by the time the application hears of the change, the client
            // already acts on it.
            for (access, to) in told {
                if let Ok(frame) = (RelayFrame::Access { access }).encode() {
                    out.push(Out::Broadcast { to, frame });
                }
            }
            if let (false, Some(frame)) = (targets.is_empty(), notify_frame(&json)) {
                out.push(Out::Broadcast { to: targets, frame });
            }
        }
    }
    Ok((out, reached))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::Limits;
    use crate::store::MemoryStore;

    fn peer(id: PeerId, user: &str, joined: bool) -> Peer {
        let mut p = Peer::new(id, &Limits::default(), 0, [0; 32], [0; 32]);
        p.user = Some(user.into());
        p.joined = joined;
        p
    }

    fn room() -> BTreeMap<PeerId, Peer> {
        [
            peer(1, "alice", true),
            peer(2, "bob", true),
            peer(3, "bob", true),
            peer(4, "carol", false),
        ]
        .into_iter()
        .map(|p| (p.id, p))
        .collect()
    }

    fn decoded(out: &Out) -> (Vec<PeerId>, RelayFrame) {
        match out {
            Out::Broadcast { to, frame } => (to.clone(), RelayFrame::decode(frame).unwrap()),
            Out::Send { to, frame } => (vec![*to], RelayFrame::decode(frame).unwrap()),
            other => panic!("not a frame: {other:?}"),
        }
    }

    #[test]
    fn parse_checks_fields_per_kind() {
        let ok =
            NotifyRequest::parse(br#"{"room":"r","kind":"broadcast","data":{"a":1}}"#).unwrap();
        assert_eq!(ok.kind, NotifyKind::Broadcast);
        for bad in [
            &br#"{"room":"r","kind":"direct","data":1}"#[..],
            br#"{"room":"r","kind":"ban","user":""}"#,
            br#"{"room":"r","kind":"role","user":"bob"}"#,
            br#"{"room":"r","kind":"broadcast"}"#,
            br#"{"room":"r","kind":"explode"}"#,
            b"not json",
        ] {
            assert!(
                NotifyRequest::parse(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(NotifyRequest::parse(&vec![b' '; MAX_NOTIFY_BODY + 1]).is_err());
    }

    #[test]
    fn service_token_and_ip_allowlist() {
        let secret = "0123456789abcdef-s3cret";
        let token = ServiceToken::new("billing", secret).unwrap();
        assert!(token.matches(Some("billing"), Some(secret)));
        assert!(!token.matches(Some("billing"), Some(&secret[1..])));
        assert!(
            !token.matches(Some("other"), Some(secret)),
            "the id counts too"
        );
        assert!(!token.matches(None, Some(secret)));
        assert!(!token.matches(Some("billing"), None));
        assert!(!token.matches(Some(secret), Some("billing")), "not swapped");
        assert!(ServiceToken::new("", secret).is_err());
        assert!(ServiceToken::new("billing", "short").is_err());
        assert!(ip_allowed("", None));
        assert!(ip_allowed("10.0.0.1, 10.0.0.2", Some("10.0.0.2")));
        assert!(!ip_allowed("10.0.0.1", Some("10.0.0.3")));
        assert!(!ip_allowed("10.0.0.1", None));
    }

    #[test]
    fn direct_reaches_only_the_users_joined_sockets() {
        let mut peers = room();
        let req =
            NotifyRequest::parse(br#"{"room":"r","kind":"direct","user":"bob","data":{"hi":1}}"#)
                .unwrap();
        let (out, reached) = apply(&req, &mut peers, &mut MemoryStore::default()).unwrap();
        assert_eq!(reached, 2);
        let (to, frame) = decoded(&out[0]);
        assert_eq!(to, [2, 3]);
        assert_eq!(
            frame,
            RelayFrame::Notify {
                json: r#"{"hi":1}"#.into()
            }
        );
    }

    #[test]
    fn ban_closes_with_4010_and_is_remembered() {
        let mut peers = room();
        let mut store = MemoryStore::default();
        let req = NotifyRequest::parse(br#"{"room":"r","kind":"ban","user":"bob"}"#).unwrap();
        let (out, reached) = apply(&req, &mut peers, &mut store).unwrap();
        assert_eq!(reached, 2);
        let closes: Vec<_> = out
            .iter()
            .filter_map(|o| match o {
                Out::Close { to, code, .. } => Some((*to, *code)),
                _ => None,
            })
            .collect();
        assert_eq!(closes, [(2, 4010), (3, 4010)]);
        assert!(matches!(
            decoded(&out[0]).1,
            RelayFrame::Error {
                code: RelayErrorCode::Banned,
                fatal: true,
                ..
            }
        ));
        assert!(store.is_banned("bob").unwrap());
        assert!(!store.is_banned("alice").unwrap());
        assert_eq!(peers.keys().copied().collect::<Vec<_>>(), [1, 4]);
        // alice hears the presence drop to 1.
        let last = decoded(out.last().unwrap());
        assert_eq!(last, (vec![1], RelayFrame::Presence { count: 1 }));
    }

    /// The frames of `out`, decoded, with their receivers.
    fn frames(out: &[Out]) -> Vec<(Vec<PeerId>, RelayFrame)> {
        out.iter()
            .filter(|o| matches!(o, Out::Send { .. } | Out::Broadcast { .. }))
            .map(decoded)
            .collect()
    }

    #[test]
    fn role_and_admit_update_the_sockets_and_send_access_then_notify() {
        let mut peers = room();
        peers.get_mut(&1).unwrap().pending = true;
        let req = NotifyRequest::parse(br#"{"room":"r","kind":"admit","user":"alice"}"#).unwrap();
        let (out, reached) = apply(&req, &mut peers, &mut MemoryStore::default()).unwrap();
        assert_eq!(reached, 1);
        assert!(!peers[&1].pending);
        assert!(out.contains(&Out::Save(1)));
        assert_eq!(
            frames(&out),
            [
                (
                    vec![1],
                    RelayFrame::Access {
                        access: Access::Write
                    }
                ),
                (
                    vec![1],
                    RelayFrame::Notify {
                        json: r#"{"kind":"admit"}"#.into()
                    }
                ),
            ]
        );
        let req =
            NotifyRequest::parse(br#"{"room":"r","kind":"role","user":"bob","role":"viewer"}"#)
                .unwrap();
        let (out, _) = apply(&req, &mut peers, &mut MemoryStore::default()).unwrap();
        assert_eq!(peers[&2].role.as_deref(), Some("viewer"));
        assert_eq!(peers[&1].role, None);
        assert_eq!(
            frames(&out)[0],
            (
                vec![2, 3],
                RelayFrame::Access {
                    access: Access::ReadOnly
                }
            )
        );
        // Back to a writing role.
        let req =
            NotifyRequest::parse(br#"{"room":"r","kind":"role","user":"bob","role":"editor"}"#)
                .unwrap();
        let (out, _) = apply(&req, &mut peers, &mut MemoryStore::default()).unwrap();
        assert_eq!(
            frames(&out)[0],
            (
                vec![2, 3],
                RelayFrame::Access {
                    access: Access::Write
                }
            )
        );
    }

    #[test]
    fn access_follows_each_socket_and_sockets_not_yet_joined_change_too() {
        let mut peers = room();
        // One of bob's sockets is still a pending guest: a role change leaves it pending.
        peers.get_mut(&3).unwrap().pending = true;
        let req =
            NotifyRequest::parse(br#"{"room":"r","kind":"role","user":"bob","role":"editor"}"#)
                .unwrap();
        let (out, _) = apply(&req, &mut peers, &mut MemoryStore::default()).unwrap();
        let access: Vec<_> = frames(&out)
            .into_iter()
            .filter(|(_, f)| matches!(f, RelayFrame::Access { .. }))
            .collect();
        assert_eq!(
            access,
            [
                (
                    vec![2],
                    RelayFrame::Access {
                        access: Access::Write
                    }
                ),
                (
                    vec![3],
                    RelayFrame::Access {
                        access: Access::Pending
                    }
                ),
            ]
        );
        // carol's socket has not sent HELLO yet: it hears nothing, but its WELCOME will
        // carry the new role.
        let req =
            NotifyRequest::parse(br#"{"room":"r","kind":"role","user":"carol","role":"viewer"}"#)
                .unwrap();
        let (out, reached) = apply(&req, &mut peers, &mut MemoryStore::default()).unwrap();
        assert_eq!(reached, 0);
        assert!(frames(&out).is_empty());
        assert_eq!(peers[&4].access(), Access::ReadOnly);
        assert!(out.contains(&Out::Save(4)));
    }
}
