//! `POST /internal/notify`: the application backend pushes to a room, to several users at
//! once, or to every live room of an organisation. The request is authenticated with a
//! service-token header pair, [`SERVICE_ID_HEADER`] and [`SERVICE_SECRET_HEADER`], matched
//! against the secrets `NOTIFY_SERVICE_ID` and `NOTIFY_SERVICE_SECRET` in constant time,
//! and, when `NOTIFY_ALLOWED_IPS` is set, must come from one of those addresses
//! (`CF-Connecting-IP`). `GET /internal/rooms/<room>/stats` takes the same authentication
//! ([`authorize`]).
//!
//! Body (JSON): `{"room": "…" | "org": "…", "kind": "…", "user": "…" | "users": […],
//! "role": "…", "type": "…", "data": …}`. What each `kind` needs and does is one table,
//! [`KINDS`]: `broadcast` and `direct` send the application's `data` in a `NOTIFY`; the
//! side effects (`role`, `admit`, `deny`, `ban`, `unban`) are each one [`Effect`] row.
//!
//! - `room` or `org`, exactly one: `org` (auth mode `jwt` only) reaches every live room of
//!   that organisation through its directory (`crate::directory`), for the kinds whose
//!   [`KindSpec::org_wide`] is set (`broadcast`, `direct`);
//! - `user` (one id) or `users` (1 to [`MAX_NOTIFY_USERS`] ids), not both, each 1 to
//!   [`MAX_USER_LEN`] bytes, for every kind but `broadcast` (which takes neither);
//! - `type`: 1 to [`MAX_TYPE_LEN`] characters of `A-Z a-z 0-9 . _ : -`; with
//!   `NOTIFY_TYPES` set ([`TypeAllowlist`]), `broadcast` and `direct` must carry one of
//!   those types, and any kind's `type` must be one of them.
//!
//! The `NOTIFY` a client receives is `data` itself when the request has no `type`, and
//! `{"type": <type>, "data": <data>}` when it has one ([`notify_payload`]); the relay's own
//! notices (`{"kind":"role",…}`, `{"kind":"admit"}`) get a `"type"` member when the
//! request had one.
//!
//! `NOTIFY` is **not encrypted**: the backend must not push room content through it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::auth::{room_org, MAX_CLAIM_LEN};
use crate::hub::{leave, Out, Peer, PeerId};
use crate::limits::Limits;
use crate::store::{RoomStore, StoreError};
use sealsync_core::wire::{Access, RelayErrorCode, RelayFrame};
use sealsync_core::RoomId;

/// The largest notify body, in bytes.
pub const MAX_NOTIFY_BODY: usize = 64 * 1024;

/// The most user ids one request may name (`users`).
pub const MAX_NOTIFY_USERS: usize = 1000;

/// The longest user id, in bytes: as long as a token's `sub` may be.
pub const MAX_USER_LEN: usize = MAX_CLAIM_LEN;

/// The longest `type`, in bytes.
pub const MAX_TYPE_LEN: usize = 64;

/// What the backend asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyKind {
    /// `NOTIFY` with `data` to every joined socket.
    Broadcast = 0,
    /// `NOTIFY` with `data` to the listed users' joined sockets.
    Direct = 1,
    /// Change the users' role.
    Role = 2,
    /// Admit pending guests.
    Admit = 3,
    /// Turn pending guests away: their pending sockets are closed (4003), no ban.
    Deny = 4,
    /// Close the users' sockets with 4010 and refuse them from now on.
    Ban = 5,
    /// Forget a stored ban.
    Unban = 6,
}

/// Which of a listed user's sockets an [`Effect`] acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sockets {
    /// None (the effect is stored only).
    None,
    /// Every socket of the user, joined or not yet.
    All,
    /// The user's sockets that are pending guests, joined or not yet.
    Pending,
}

/// What an [`Effect`] does to each socket it acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing.
    None,
    /// Sets the request's `role` (the joined sockets get `ACCESS`).
    SetRole,
    /// The pending guest becomes a member (the joined sockets get `ACCESS`).
    Admit,
    /// A fatal `ERROR` `code` with `message`, then a close with the code's close code and
    /// `reason`.
    Close {
        /// The error code (its close code closes the socket).
        code: RelayErrorCode,
        /// The `ERROR` frame's message.
        message: &'static str,
        /// The close frame's reason.
        reason: &'static str,
    },
}

/// What the room stores for each listed user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Nothing.
    Nothing,
    /// A ban: the user's next sockets are refused with 4010.
    Ban,
    /// Removes the user's ban.
    Unban,
}

/// A side effect: what one kind does to a room, for each listed user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effect {
    /// What is stored.
    pub stored: Stored,
    /// Which sockets of the user it acts on.
    pub sockets: Sockets,
    /// What it does to each of them.
    pub action: Action,
    /// The relay's `NOTIFY` to the joined sockets acted on (after their `ACCESS`):
    /// `{"kind": <notice>}`, with `"role"` for `role`.
    pub notice: Option<&'static str>,
}

/// What one kind needs and does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindSpec {
    /// The kind.
    pub kind: NotifyKind,
    /// It names users (`user` or `users`).
    pub needs_users: bool,
    /// It needs `role`.
    pub needs_role: bool,
    /// It sends the application's `data` (and needs it).
    pub sends_data: bool,
    /// It may address an organisation (`org`) instead of a room.
    pub org_wide: bool,
    /// Its side effect, for the kinds that have one.
    pub effect: Option<Effect>,
}

/// Every kind: one row each, in the order of [`NotifyKind`]'s values. A new side effect is
/// one more row (and its [`NotifyKind`]).
pub const KINDS: [KindSpec; 7] = [
    KindSpec {
        kind: NotifyKind::Broadcast,
        needs_users: false,
        needs_role: false,
        sends_data: true,
        org_wide: true,
        effect: None,
    },
    KindSpec {
        kind: NotifyKind::Direct,
        needs_users: true,
        needs_role: false,
        sends_data: true,
        org_wide: true,
        effect: None,
    },
    KindSpec {
        kind: NotifyKind::Role,
        needs_users: true,
        needs_role: true,
        sends_data: false,
        org_wide: false,
        effect: Some(Effect {
            stored: Stored::Nothing,
            sockets: Sockets::All,
            action: Action::SetRole,
            notice: Some("role"),
        }),
    },
    KindSpec {
        kind: NotifyKind::Admit,
        needs_users: true,
        needs_role: false,
        sends_data: false,
        org_wide: false,
        effect: Some(Effect {
            stored: Stored::Nothing,
            sockets: Sockets::All,
            action: Action::Admit,
            notice: Some("admit"),
        }),
    },
    KindSpec {
        kind: NotifyKind::Deny,
        needs_users: true,
        needs_role: false,
        sends_data: false,
        org_wide: false,
        effect: Some(Effect {
            stored: Stored::Nothing,
            sockets: Sockets::Pending,
            action: Action::Close {
                code: RelayErrorCode::Forbidden,
                message: "the application turned down your request to join this room",
                reason: "denied",
            },
            notice: None,
        }),
    },
    KindSpec {
        kind: NotifyKind::Ban,
        needs_users: true,
        needs_role: false,
        sends_data: false,
        org_wide: false,
        effect: Some(Effect {
            stored: Stored::Ban,
            sockets: Sockets::All,
            action: Action::Close {
                code: RelayErrorCode::Banned,
                message: "the application banned you from this room",
                reason: "banned",
            },
            notice: None,
        }),
    },
    KindSpec {
        kind: NotifyKind::Unban,
        needs_users: true,
        needs_role: false,
        sends_data: false,
        org_wide: false,
        effect: Some(Effect {
            stored: Stored::Unban,
            sockets: Sockets::None,
            action: Action::None,
            notice: None,
        }),
    },
];

impl NotifyKind {
    /// This kind's row of [`KINDS`].
    #[must_use]
    pub const fn spec(self) -> &'static KindSpec {
        &KINDS[self as usize]
    }

    /// The name in requests (`"broadcast"`, …).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Broadcast => "broadcast",
            Self::Direct => "direct",
            Self::Ban => "ban",
            Self::Unban => "unban",
            Self::Role => "role",
            Self::Admit => "admit",
            Self::Deny => "deny",
        }
    }

    /// Whether applying this kind reads or writes the room's store (the room opens it only
    /// then, so a push to an empty room leaves nothing behind).
    #[must_use]
    pub fn touches_store(self) -> bool {
        self.spec()
            .effect
            .is_some_and(|e| e.stored != Stored::Nothing || e.action == Action::Admit)
    }

    /// Whether applying this kind writes something a room without storage must create (a
    /// ban); an `unban` of a room that stores nothing has nothing to remove.
    #[must_use]
    pub fn creates_store(self) -> bool {
        self.spec().effect.is_some_and(|e| e.stored == Stored::Ban)
    }

    /// Whether the room opens its store to apply this kind (creating the schema when there
    /// is none): a kind that [`touches_store`](Self::touches_store), when it
    /// [`creates_store`](Self::creates_store) or the room has a schema already
    /// (`has_schema`, asked only then; the room answers `true` when it cannot tell). A push
    /// to a room that stores nothing leaves nothing.
    #[must_use]
    pub fn opens_store(self, has_schema: impl FnOnce() -> bool) -> bool {
        self.touches_store() && (self.creates_store() || has_schema())
    }
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One room.
    Room(RoomId),
    /// Every live room of an organisation (its id as in room ids, normalised).
    Org(String),
}

/// The body as sent.
#[derive(Deserialize)]
struct Body {
    #[serde(default)]
    room: Option<String>,
    #[serde(default)]
    org: Option<String>,
    kind: NotifyKind,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    users: Option<Vec<String>>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    data: Option<serde_json::Value>,
    #[serde(default, rename = "type")]
    notify_type: Option<String>,
}

/// A parsed, checked notify request.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyRequest {
    /// The room or organisation.
    pub target: Target,
    /// What to do.
    pub kind: NotifyKind,
    /// The users (from `user` or `users`, without repeats), for every kind but
    /// `broadcast`.
    pub users: Vec<String>,
    /// The new role, for `role`.
    pub role: Option<String>,
    /// The payload of `broadcast` and `direct`.
    pub data: Option<serde_json::Value>,
    /// The application's type for this push.
    pub notify_type: Option<String>,
}

/// The one-room request the worker or an organisation's directory forwards to a room.
#[derive(Serialize)]
struct Forwarded<'a> {
    room: &'a str,
    kind: NotifyKind,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    users: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a serde_json::Value>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    notify_type: Option<&'a str>,
}

/// The organisation in `org`, checked and normalised as in room ids (NFC): a room id
/// `<org>:<name>` must be valid with it.
///
/// # Errors
/// A message for a 400 answer.
pub fn org_from(org: &str) -> Result<String, String> {
    if org.is_empty() || org.contains(':') {
        return Err("org must be a non-empty organisation id without ':'".into());
    }
    RoomId::new(&format!("{org}:x"))
        .ok()
        .as_ref()
        .and_then(room_org)
        .map(str::to_owned)
        .ok_or_else(|| format!("org {org:?} cannot be the prefix of a room id"))
}

/// Whether `t` is a well-formed `type`.
fn type_ok(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= MAX_TYPE_LEN
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

impl NotifyRequest {
    /// Parses and checks a body.
    ///
    /// # Errors
    /// A message for a 400 answer: not JSON of this shape, too large, or a field missing,
    /// malformed or out of place for its kind.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        if body.len() > MAX_NOTIFY_BODY {
            return Err(format!("the body is over {MAX_NOTIFY_BODY} bytes"));
        }
        let b: Body = serde_json::from_slice(body).map_err(|e| format!("bad notify body: {e}"))?;
        let spec = b.kind.spec();
        let kind = b.kind.name();
        let target = match (b.room, b.org) {
            (Some(room), None) => Target::Room(RoomId::new(&room).map_err(|e| e.to_string())?),
            (None, Some(org)) if spec.org_wide => Target::Org(org_from(&org)?),
            (None, Some(_)) => {
                return Err(format!(
                    "kind {kind} needs a room: only broadcast and direct may name an org"
                ))
            }
            (Some(_), Some(_)) => return Err("give either room or org, not both".into()),
            (None, None) => return Err("the request needs a room (or an org)".into()),
        };
        let users = match (b.user, b.users) {
            (Some(_), Some(_)) => return Err("give either user or users, not both".into()),
            (Some(user), None) => vec![user],
            (None, Some(users)) if users.is_empty() => {
                return Err("users is empty: name at least one user".into())
            }
            (None, Some(users)) => users,
            (None, None) => Vec::new(),
        };
        if users.len() > MAX_NOTIFY_USERS {
            return Err(format!(
                "users names {} users; at most {MAX_NOTIFY_USERS} per request",
                users.len()
            ));
        }
        if let Some(bad) = users
            .iter()
            .find(|u| u.is_empty() || u.len() > MAX_USER_LEN)
        {
            return Err(format!(
                "user id {:?} is empty or over {MAX_USER_LEN} bytes",
                bad.chars().take(40).collect::<String>()
            ));
        }
        if spec.needs_users && users.is_empty() {
            return Err(format!("kind {kind} needs a user (or users)"));
        }
        if !spec.needs_users && !users.is_empty() {
            return Err(format!(
                "kind {kind} reaches everyone and takes no user; use direct for users"
            ));
        }
        let mut seen = BTreeSet::new();
        let users = users
            .into_iter()
            .filter(|u| seen.insert(u.clone()))
            .collect();
        if spec.needs_role && b.role.is_none() {
            return Err(format!("kind {kind} needs a role"));
        }
        if spec.sends_data && b.data.is_none() {
            return Err(format!("kind {kind} needs data"));
        }
        if let Some(t) = b.notify_type.as_deref().filter(|t| !type_ok(t)) {
            return Err(format!(
                "type {:?} is not 1 to {MAX_TYPE_LEN} characters of A-Z a-z 0-9 . _ : -",
                t.chars().take(80).collect::<String>()
            ));
        }
        Ok(Self {
            target,
            kind: b.kind,
            users,
            role: b.role,
            data: b.data,
            notify_type: b.notify_type,
        })
    }

    /// The body that carries this request to one `room` (the worker's forward, or an
    /// organisation's directory's to each of its rooms).
    #[must_use]
    pub fn body_for(&self, room: &RoomId) -> String {
        serde_json::to_string(&Forwarded {
            room: room.as_str(),
            kind: self.kind,
            users: &self.users,
            role: self.role.as_deref(),
            data: self.data.as_ref(),
            notify_type: self.notify_type.as_deref(),
        })
        .unwrap_or_default()
    }
}

/// The `NOTIFY_TYPES` variable: the `type`s the relay accepts; empty accepts any (and
/// none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeAllowlist(Vec<String>);

impl TypeAllowlist {
    /// Parses the comma-separated list.
    ///
    /// # Errors
    /// A message for the operator naming a malformed entry.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let types = raw
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| {
                if type_ok(t) {
                    Ok(t.to_owned())
                } else {
                    Err(format!(
                        "NOTIFY_TYPES entry {t:?} is not 1 to {MAX_TYPE_LEN} characters of \
                         A-Z a-z 0-9 . _ : -"
                    ))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self(types))
    }

    /// Whether the list is empty (any type is accepted).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Checks a request's `type`.
    ///
    /// # Errors
    /// A message for a 400 answer: a `type` outside the list, or none on a kind that sends
    /// data while the list is set.
    pub fn check(&self, req: &NotifyRequest) -> Result<(), String> {
        if self.is_empty() {
            return Ok(());
        }
        match req.notify_type.as_deref() {
            Some(t) if self.0.iter().any(|a| a == t) => Ok(()),
            Some(t) => Err(format!(
                "type {t:?} is not allowed: this relay accepts only the types in NOTIFY_TYPES ({})",
                self.0.join(", ")
            )),
            None if req.kind.spec().sends_data => Err(format!(
                "kind {} needs a type: this relay accepts only the types in NOTIFY_TYPES ({})",
                req.kind.name(),
                self.0.join(", ")
            )),
            None => Ok(()),
        }
    }
}

/// The JSON body of an error answer of the internal endpoints: `{"error": message}`.
#[must_use]
pub fn error_json(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
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

/// What a caller of an internal endpoint presented.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// The `NOTIFY_SERVICE_ID` secret, when set.
    pub configured_id: Option<&'a str>,
    /// The `NOTIFY_SERVICE_SECRET` secret, when set.
    pub configured_secret: Option<&'a str>,
    /// `NOTIFY_ALLOWED_IPS`.
    pub allowed_ips: &'a str,
    /// `CF-Connecting-IP`.
    pub ip: Option<&'a str>,
    /// The [`SERVICE_ID_HEADER`] header.
    pub id: Option<&'a str>,
    /// The [`SERVICE_SECRET_HEADER`] header.
    pub secret: Option<&'a str>,
}

/// Whether a caller may use the internal endpoints (notify, stats): the secrets are set,
/// the address is allowed, the header pair matches.
///
/// # Errors
/// `(status, message)` to answer: 404 when the secrets are not set, 500 when they are
/// unusable, 403 for an address outside `NOTIFY_ALLOWED_IPS`, 401 for a missing or wrong
/// token.
pub fn authorize(caller: &Caller<'_>) -> Result<(), (u16, String)> {
    let (Some(id), Some(secret)) = (caller.configured_id, caller.configured_secret) else {
        return Err((
            404,
            "the internal endpoints are not enabled: set the NOTIFY_SERVICE_ID and \
             NOTIFY_SERVICE_SECRET secrets"
                .into(),
        ));
    };
    let token = ServiceToken::new(id, secret).map_err(|m| (500, m))?;
    if !ip_allowed(caller.allowed_ips, caller.ip) {
        return Err((
            403,
            "this address may not call the internal endpoints".into(),
        ));
    }
    if !token.matches(caller.id, caller.secret) {
        return Err((
            401,
            "missing or wrong service token: send the Sealsync-Service-Id and \
             Sealsync-Service-Secret headers"
                .into(),
        ));
    }
    Ok(())
}

/// Where the worker sends a checked request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dispatch {
    /// To this room's object, with this body.
    Room {
        /// The room.
        room: RoomId,
        /// The one-room request.
        body: String,
    },
    /// To this organisation's directory, which forwards to each of its live rooms.
    Org {
        /// The organisation.
        org: String,
    },
}

/// Checks a parsed request against the relay's configuration and says where it goes.
///
/// # Errors
/// A message for a 400 answer: a `type` outside `NOTIFY_TYPES`, or an `org` outside the
/// `jwt` auth mode (rooms belong to organisations only there).
pub fn dispatch(
    req: &NotifyRequest,
    types: &TypeAllowlist,
    jwt_mode: bool,
) -> Result<Dispatch, String> {
    types.check(req)?;
    match &req.target {
        Target::Room(room) => Ok(Dispatch::Room {
            room: room.clone(),
            body: req.body_for(room),
        }),
        Target::Org(_) if !jwt_mode => {
            Err("org needs AUTH_MODE = \"jwt\": only there do rooms belong to organisations".into())
        }
        Target::Org(org) => Ok(Dispatch::Org { org: org.clone() }),
    }
}

/// The `NOTIFY` JSON for the application's `data`: `data` itself without a type,
/// `{"type": …, "data": …}` with one.
#[must_use]
pub fn notify_payload(data: &serde_json::Value, notify_type: Option<&str>) -> serde_json::Value {
    match notify_type {
        None => data.clone(),
        Some(t) => serde_json::json!({ "type": t, "data": data }),
    }
}

/// The `type` of the relay's knock ([`knock_frame`]).
pub const KNOCK_TYPE: &str = "knock";

/// The relay's knock (sent by the hub when a pending guest's `HELLO` is accepted, to the
/// room's members): a `NOTIFY` `{"type":"knock","data":{"user":<user>}}`, the payload a
/// backend push of type `knock` with that `data` would have. It is sent whatever
/// `NOTIFY_TYPES` says (the relay's own notice, like `role` and `admit`).
#[must_use]
pub fn knock_frame(user: &str) -> Option<Vec<u8>> {
    notify_frame(&notify_payload(
        &serde_json::json!({ "user": user }),
        Some(KNOCK_TYPE),
    ))
}

fn notify_frame(json: &serde_json::Value) -> Option<Vec<u8>> {
    RelayFrame::Notify {
        json: json.to_string(),
    }
    .encode()
    .ok()
}

/// The relay's notice of a side effect: `{"kind": notice}`, with `role` for a role change
/// and `type` when the request had one.
fn notice(name: &str, req: &NotifyRequest) -> serde_json::Value {
    let mut json = serde_json::json!({ "kind": name });
    if req.kind == NotifyKind::Role {
        json["role"] = serde_json::json!(req.role);
    }
    if let Some(t) = &req.notify_type {
        json["type"] = serde_json::json!(t);
    }
    json
}

/// Applies a request to the room; returns the outputs and how many sockets it reached.
/// `store` is used only by kinds that [`NotifyKind::touches_store`] (`admit` reads the
/// history the admitted sockets were held from, [`crate::hub::admitted`], paged by
/// `limits`).
///
/// # Errors
/// [`StoreError`] when storing a ban (or removing one), or reading an admitted socket's
/// catch-up, fails.
pub fn apply<S: RoomStore>(
    req: &NotifyRequest,
    peers: &mut BTreeMap<PeerId, Peer>,
    store: &mut S,
    limits: &Limits,
) -> Result<(Vec<Out>, usize), StoreError> {
    let listed = |p: &Peer| p.user.as_ref().is_some_and(|u| req.users.contains(u));
    let Some(effect) = req.kind.spec().effect else {
        // broadcast, direct: the application's data to joined sockets.
        let targets: Vec<PeerId> = peers
            .values()
            .filter(|p| p.joined && (req.kind == NotifyKind::Broadcast || listed(p)))
            .map(|p| p.id)
            .collect();
        let reached = targets.len();
        let mut out = Vec::new();
        let data = req.data.clone().unwrap_or(serde_json::Value::Null);
        let json = notify_payload(&data, req.notify_type.as_deref());
        if let (false, Some(frame)) = (targets.is_empty(), notify_frame(&json)) {
            out.push(Out::Broadcast { to: targets, frame });
        }
        return Ok((out, reached));
    };
    for user in &req.users {
        match effect.stored {
            Stored::Nothing => {}
            Stored::Ban => store.ban(user)?,
            Stored::Unban => store.unban(user)?,
        }
    }
    let targets: Vec<PeerId> = peers
        .values()
        .filter(|p| listed(p))
        .filter(|p| match effect.sockets {
            Sockets::None => false,
            Sockets::All => true,
            Sockets::Pending => p.pending,
        })
        .map(|p| p.id)
        .collect();
    let mut out = Vec::new();
    let reached = match effect.action {
        Action::None => 0,
        Action::Close {
            code,
            message,
            reason,
        } => {
            let frame = RelayFrame::Error {
                code,
                fatal: true,
                message: message.into(),
            }
            .encode()
            .ok();
            for &id in &targets {
                if let Some(frame) = frame.clone() {
                    out.push(Out::Send { to: id, frame });
                }
                out.push(Out::Close {
                    to: id,
                    // Every `Close` of [`KINDS`] has a fatal code; 1008 otherwise.
                    code: code
                        .close_code()
                        .unwrap_or(sealsync_core::wire::CLOSE_POLICY),
                    reason,
                });
                out.extend(leave(peers, id));
            }
            targets.len()
        }
        Action::SetRole | Action::Admit => {
            // Every socket of the user changes, joined or not yet (its WELCOME then says
            // what it may do); the joined ones are told at once.
            let mut told: Vec<(Access, Vec<PeerId>)> = Vec::new();
            let mut joined = Vec::new();
            // Joined sockets admitted now: they were held from the history until now.
            let mut held = Vec::new();
            for id in &targets {
                let Some(peer) = peers.get_mut(id) else {
                    continue;
                };
                if effect.action == Action::SetRole {
                    peer.role.clone_from(&req.role);
                } else {
                    if peer.pending && peer.joined {
                        held.push(peer.id);
                    }
                    peer.pending = false;
                }
                out.push(Out::Save(peer.id));
                if peer.joined {
                    joined.push(peer.id);
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
            // Then the catch-up each admitted socket was held from.
            out.extend(crate::hub::admitted(&*store, limits, peers, &held)?);
            let reached = joined.len();
            if let (false, Some(name)) = (joined.is_empty(), effect.notice) {
                if let Some(frame) = notify_frame(&notice(name, req)) {
                    out.push(Out::Broadcast { to: joined, frame });
                }
            }
            reached
        }
    };
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

    /// `apply` to `peers` with an empty store and the default limits.
    fn apply_to(req: &NotifyRequest, peers: &mut BTreeMap<PeerId, Peer>) -> (Vec<Out>, usize) {
        apply(req, peers, &mut MemoryStore::default(), &Limits::default()).unwrap()
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
        let (out, reached) = apply_to(&req, &mut peers);
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
        let (out, reached) = apply(&req, &mut peers, &mut store, &Limits::default()).unwrap();
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
        let (out, reached) = apply_to(&req, &mut peers);
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
                // The catch-up it was held from (an empty room: CAUGHT_UP at 0).
                (
                    vec![1],
                    RelayFrame::CaughtUp {
                        head_seq: 0,
                        token: peers[&1].sync_token
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
        assert_ne!(peers[&1].sync_token, 0);
        let req =
            NotifyRequest::parse(br#"{"room":"r","kind":"role","user":"bob","role":"viewer"}"#)
                .unwrap();
        let (out, _) = apply_to(&req, &mut peers);
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
        let (out, _) = apply_to(&req, &mut peers);
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
        let (out, _) = apply_to(&req, &mut peers);
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
        let (out, reached) = apply_to(&req, &mut peers);
        assert_eq!(reached, 0);
        assert!(frames(&out).is_empty());
        assert_eq!(peers[&4].access(), Access::ReadOnly);
        assert!(out.contains(&Out::Save(4)));
    }

    #[test]
    fn every_kind_has_its_own_row_and_only_admit_ban_and_unban_touch_the_store() {
        for spec in &KINDS {
            assert_eq!(spec.kind.spec(), spec);
            let name = serde_json::to_string(&spec.kind).unwrap();
            assert_eq!(name, format!("\"{}\"", spec.kind.name()));
            // A side effect never sends the application's data, and only NOTIFY kinds go
            // org-wide.
            assert!(!(spec.effect.is_some() && (spec.sends_data || spec.org_wide)));
            // Every closing effect closes with its error's close code.
            if let Some(Effect {
                action: Action::Close { code, .. },
                ..
            }) = spec.effect
            {
                assert!(code.is_fatal() && code.close_code().is_some());
            }
        }
        let touching: Vec<_> = KINDS
            .iter()
            .filter(|s| s.kind.touches_store())
            .map(|s| s.kind)
            .collect();
        assert_eq!(
            touching,
            [NotifyKind::Admit, NotifyKind::Ban, NotifyKind::Unban],
            "admit reads the history it sends the admitted sockets"
        );
        assert!(!NotifyKind::Admit.creates_store());
        assert!(NotifyKind::Ban.creates_store() && !NotifyKind::Unban.creates_store());
    }

    #[test]
    fn only_a_ban_opens_a_room_that_stores_nothing() {
        let asked = core::cell::Cell::new(0);
        let schema = |has: bool| {
            let asked = &asked;
            move || {
                asked.set(asked.get() + 1);
                has
            }
        };
        assert!(NotifyKind::Ban.opens_store(schema(false)));
        assert_eq!(asked.get(), 0, "a ban creates the store whatever there is");
        assert!(
            !NotifyKind::Unban.opens_store(schema(false)),
            "nothing to unban"
        );
        assert!(NotifyKind::Unban.opens_store(schema(true)));
        assert_eq!(asked.get(), 2);
        for kind in [NotifyKind::Broadcast, NotifyKind::Role, NotifyKind::Deny] {
            assert!(!kind.opens_store(schema(true)), "{kind:?}");
        }
        assert_eq!(asked.get(), 2, "kinds that store nothing never ask");
    }

    #[test]
    fn users_user_room_and_org_are_checked() {
        let parse = |body: serde_json::Value| NotifyRequest::parse(body.to_string().as_bytes());
        let req = parse(serde_json::json!({
            "room": "acme:r", "kind": "direct", "users": ["a", "b", "a"], "data": 1
        }))
        .unwrap();
        assert_eq!(req.users, ["a", "b"], "repeats are dropped");
        assert_eq!(req.target, Target::Room(RoomId::new("acme:r").unwrap()));
        let one = parse(serde_json::json!({"room": "r", "kind": "ban", "user": "bob"})).unwrap();
        assert_eq!(one.users, ["bob"]);
        let org = parse(serde_json::json!({"org": "cafe\u{301}", "kind": "broadcast", "data": 1}))
            .unwrap();
        assert_eq!(
            org.target,
            Target::Org("café".into()),
            "NFC, as in room ids"
        );
        let too_many: Vec<String> = (0..=MAX_NOTIFY_USERS).map(|i| format!("u{i}")).collect();
        let long = "x".repeat(MAX_USER_LEN + 1);
        for (bad, why) in [
            (
                serde_json::json!({"room": "r", "kind": "ban", "user": "a", "users": ["b"]}),
                "not both",
            ),
            (
                serde_json::json!({"room": "r", "kind": "ban", "users": []}),
                "users is empty",
            ),
            (
                serde_json::json!({"room": "r", "kind": "direct", "users": too_many, "data": 1}),
                "at most 1000",
            ),
            (
                serde_json::json!({"room": "r", "kind": "admit", "users": ["ok", long]}),
                "over 256 bytes",
            ),
            (
                serde_json::json!({"room": "r", "kind": "broadcast", "user": "a", "data": 1}),
                "takes no user",
            ),
            (
                serde_json::json!({"room": "r", "org": "acme", "kind": "broadcast", "data": 1}),
                "not both",
            ),
            (
                serde_json::json!({"org": "acme", "kind": "ban", "user": "a"}),
                "needs a room",
            ),
            (
                serde_json::json!({"org": "ac:me", "kind": "broadcast", "data": 1}),
                "without ':'",
            ),
            (
                serde_json::json!({"kind": "broadcast", "data": 1}),
                "needs a room",
            ),
            (
                serde_json::json!({"room": "a\u{200b}b", "kind": "broadcast", "data": 1}),
                "invisible",
            ),
            (
                serde_json::json!({"room": "r", "kind": "broadcast", "data": 1, "type": "a b"}),
                "type",
            ),
            (
                serde_json::json!({"room": "r", "kind": "deny"}),
                "needs a user",
            ),
        ] {
            let err = parse(bad.clone()).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn the_type_allowlist_is_enforced_and_empty_accepts_any() {
        let parse = |body: serde_json::Value| NotifyRequest::parse(body.to_string().as_bytes());
        let typed = parse(
            serde_json::json!({"room": "r", "kind": "broadcast", "data": 1, "type": "todo.assigned"}),
        )
        .unwrap();
        let untyped =
            parse(serde_json::json!({"room": "r", "kind": "broadcast", "data": 1})).unwrap();
        let ban = parse(serde_json::json!({"room": "r", "kind": "ban", "user": "x"})).unwrap();
        let any = TypeAllowlist::parse(" , ").unwrap();
        assert!(any.is_empty());
        for req in [&typed, &untyped, &ban] {
            assert_eq!(any.check(req), Ok(()));
        }
        let list = TypeAllowlist::parse("todo.assigned, chat:mention").unwrap();
        assert_eq!(list.check(&typed), Ok(()));
        assert!(list.check(&untyped).unwrap_err().contains("needs a type"));
        assert_eq!(list.check(&ban), Ok(()), "side effects need no type");
        let other = NotifyRequest {
            notify_type: Some("todo.deleted".into()),
            ..typed.clone()
        };
        assert!(list.check(&other).unwrap_err().contains("not allowed"));
        assert!(TypeAllowlist::parse("ok,not ok").is_err());
        assert_eq!(
            dispatch(&other, &list, true).unwrap_err(),
            list.check(&other).unwrap_err()
        );
    }

    #[test]
    fn dispatch_sends_rooms_to_their_object_and_orgs_to_their_directory_in_jwt_mode() {
        let parse = |body: serde_json::Value| NotifyRequest::parse(body.to_string().as_bytes());
        let types = TypeAllowlist::default();
        let req = parse(serde_json::json!({
            "room": "acme:r", "kind": "role", "user": "bob", "role": "viewer", "type": "t"
        }))
        .unwrap();
        let Ok(Dispatch::Room { room, body }) = dispatch(&req, &types, false) else {
            panic!("not a room dispatch");
        };
        assert_eq!(room.as_str(), "acme:r");
        // The forwarded body parses back to the same request.
        assert_eq!(NotifyRequest::parse(body.as_bytes()).unwrap(), req);
        let org =
            parse(serde_json::json!({"org": "acme", "kind": "direct", "users": ["a"], "data": {}}))
                .unwrap();
        assert!(dispatch(&org, &types, false)
            .unwrap_err()
            .contains("AUTH_MODE"));
        assert_eq!(
            dispatch(&org, &types, true),
            Ok(Dispatch::Org { org: "acme".into() })
        );
        // The directory's forward to each room is a one-room request.
        let room = RoomId::new("acme:x").unwrap();
        let one = NotifyRequest::parse(org.body_for(&room).as_bytes()).unwrap();
        assert_eq!(one.target, Target::Room(room));
        assert_eq!(
            (one.kind, one.users),
            (NotifyKind::Direct, vec!["a".to_owned()])
        );
    }

    #[test]
    fn internal_endpoints_need_secrets_the_address_and_the_token() {
        let secret = "0123456789abcdef-s3cret";
        let caller = Caller {
            configured_id: Some("svc"),
            configured_secret: Some(secret),
            allowed_ips: "",
            ip: None,
            id: Some("svc"),
            secret: Some(secret),
        };
        assert_eq!(authorize(&caller), Ok(()));
        let status = |c: Caller<'_>| authorize(&c).unwrap_err().0;
        assert_eq!(
            status(Caller {
                configured_secret: None,
                ..caller
            }),
            404
        );
        assert_eq!(
            status(Caller {
                configured_secret: Some("short"),
                ..caller
            }),
            500
        );
        assert_eq!(
            status(Caller {
                allowed_ips: "10.0.0.1",
                ip: Some("10.0.0.2"),
                ..caller
            }),
            403
        );
        assert_eq!(status(Caller { id: None, ..caller }), 401);
        assert_eq!(error_json("a \"b\""), r#"{"error":"a \"b\""}"#);
    }

    #[test]
    fn direct_to_several_users_and_typed_payloads() {
        let mut peers = room();
        let req = NotifyRequest::parse(
            br#"{"room":"r","kind":"direct","users":["alice","bob","carol"],"type":"todo.assigned","data":{"id":7}}"#,
        )
        .unwrap();
        let (out, reached) = apply_to(&req, &mut peers);
        assert_eq!(reached, 3, "carol's socket has not joined");
        assert_eq!(
            frames(&out),
            [(
                vec![1, 2, 3],
                RelayFrame::Notify {
                    json: r#"{"data":{"id":7},"type":"todo.assigned"}"#.into()
                }
            )]
        );
        // role with a type: the relay's notice carries it.
        let req = NotifyRequest::parse(
            br#"{"room":"r","kind":"role","users":["alice","bob"],"role":"viewer","type":"acl"}"#,
        )
        .unwrap();
        let (out, reached) = apply_to(&req, &mut peers);
        assert_eq!(reached, 3);
        assert_eq!(
            frames(&out).last().unwrap(),
            &(
                vec![1, 2, 3],
                RelayFrame::Notify {
                    json: r#"{"kind":"role","role":"viewer","type":"acl"}"#.into()
                }
            )
        );
    }

    #[test]
    fn deny_closes_only_pending_sockets_with_4003_and_bans_nobody() {
        let mut peers = room();
        peers.get_mut(&2).unwrap().pending = true;
        peers.get_mut(&4).unwrap().pending = true;
        let mut store = MemoryStore::default();
        let req =
            NotifyRequest::parse(br#"{"room":"r","kind":"deny","users":["bob","carol","alice"]}"#)
                .unwrap();
        let (out, reached) = apply(&req, &mut peers, &mut store, &Limits::default()).unwrap();
        assert_eq!(reached, 2);
        let closes: Vec<_> = out
            .iter()
            .filter_map(|o| match o {
                Out::Close { to, code, reason } => Some((*to, *code, *reason)),
                _ => None,
            })
            .collect();
        assert_eq!(closes, [(2, 4003, "denied"), (4, 4003, "denied")]);
        assert!(matches!(
            decoded(&out[0]).1,
            RelayFrame::Error {
                code: RelayErrorCode::Forbidden,
                fatal: true,
                ..
            }
        ));
        assert_eq!(peers.keys().copied().collect::<Vec<_>>(), [1, 3]);
        assert!(!store.any_banned().unwrap());
    }

    #[test]
    fn unban_forgets_the_stored_ban_of_each_user() {
        let mut peers = room();
        let mut store = MemoryStore::default();
        let ban = NotifyRequest::parse(br#"{"room":"r","kind":"ban","users":["x","y"]}"#).unwrap();
        let (_, reached) = apply(&ban, &mut peers, &mut store, &Limits::default()).unwrap();
        assert_eq!(reached, 0);
        assert!(store.is_banned("x").unwrap() && store.is_banned("y").unwrap());
        let unban = NotifyRequest::parse(br#"{"room":"r","kind":"unban","user":"x"}"#).unwrap();
        let (out, reached) = apply(&unban, &mut peers, &mut store, &Limits::default()).unwrap();
        assert_eq!((out.len(), reached), (0, 0));
        assert!(!store.is_banned("x").unwrap());
        assert!(store.is_banned("y").unwrap());
        assert_eq!(store.stats().unwrap().banned, 1);
    }
}
