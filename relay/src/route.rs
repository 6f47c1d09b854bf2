//! HTTP routing: which requests reach a room, and what every other request is answered.
//!
//! Pure logic over a [`RequestView`], so it is tested on the host; the worker glue in
//! `lib.rs` only reads the request into a view and acts on the [`Route`] or [`Rejection`].

use percent_encoding::percent_decode_str;
use sealsync_core::RoomId;

use crate::limits::Limits;

/// The parts of an HTTP request routing looks at.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// `GET`, `POST`, …
    pub method: &'a str,
    /// The URL path, still percent-encoded (`/room/caf%C3%A9/ws`).
    pub path: &'a str,
    /// The `Upgrade` header, if any.
    pub upgrade: Option<&'a str>,
    /// The `Origin` header, if any.
    pub origin: Option<&'a str>,
}

/// Where an accepted request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /room/:room/ws` with `Upgrade: websocket`: a socket into the room's object.
    Socket(RoomId),
    /// `GET /room/:room/presence`: `{"count":N}`, the sockets joined to the room.
    Presence(RoomId),
    /// `POST /internal/notify`: a push from the application backend.
    Notify,
}

/// Why a request is refused before it reaches a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// 404: no such path.
    NotFound,
    /// 405: the path exists with another method.
    MethodNotAllowed,
    /// 400: the room segment is not a valid room id (the message says why).
    BadRoom(String),
    /// 426: the socket path without `Upgrade: websocket`.
    UpgradeRequired,
    /// 403: the `Origin` is not in `ALLOWED_ORIGINS`.
    OriginForbidden,
}

impl Rejection {
    /// The HTTP status to answer with.
    #[must_use]
    pub const fn status(&self) -> u16 {
        match self {
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::BadRoom(_) => 400,
            Self::UpgradeRequired => 426,
            Self::OriginForbidden => 403,
        }
    }

    /// A short plain-text body saying what to do.
    #[must_use]
    pub fn message(&self) -> String {
        match self {
            Self::NotFound => "not found".into(),
            Self::MethodNotAllowed => "method not allowed".into(),
            Self::BadRoom(why) => why.clone(),
            Self::UpgradeRequired => "this endpoint needs a WebSocket upgrade".into(),
            Self::OriginForbidden => "this origin may not connect to the relay".into(),
        }
    }
}

/// Percent-decodes one path segment and checks it as a room id.
///
/// # Errors
/// [`Rejection::BadRoom`] when it is not UTF-8 after decoding or [`RoomId::new`] refuses it.
pub fn room_from_segment(segment: &str) -> Result<RoomId, Rejection> {
    let decoded = percent_decode_str(segment).decode_utf8().map_err(|_| {
        Rejection::BadRoom("invalid room id: it is not UTF-8 after percent-decoding".into())
    })?;
    RoomId::new(&decoded).map_err(|e| Rejection::BadRoom(e.to_string()))
}

/// Routes one request.
///
/// # Errors
/// A [`Rejection`] to answer instead of forwarding.
pub fn route(req: &RequestView<'_>, limits: &Limits) -> Result<Route, Rejection> {
    let path = req.path.strip_prefix('/').unwrap_or(req.path);
    let segments: Vec<&str> = path.split('/').collect();
    match segments.as_slice() {
        ["room", room, action @ ("ws" | "presence")] => {
            if req.method != "GET" {
                return Err(Rejection::MethodNotAllowed);
            }
            let room = room_from_segment(room)?;
            if *action == "presence" {
                return Ok(Route::Presence(room));
            }
            let upgrade = req
                .upgrade
                .is_some_and(|u| u.trim().eq_ignore_ascii_case("websocket"));
            if !upgrade {
                return Err(Rejection::UpgradeRequired);
            }
            if !limits.origin_allowed(req.origin) {
                return Err(Rejection::OriginForbidden);
            }
            Ok(Route::Socket(room))
        }
        ["internal", "notify"] => {
            if req.method == "POST" {
                Ok(Route::Notify)
            } else {
                Err(Rejection::MethodNotAllowed)
            }
        }
        _ => Err(Rejection::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str, upgrade: Option<&str>, origin: Option<&str>) -> Result<Route, Rejection> {
        let limits = Limits {
            allowed_origins: vec!["https://app.example".into()],
            ..Limits::default()
        };
        route(
            &RequestView {
                method: "GET",
                path,
                upgrade,
                origin,
            },
            &limits,
        )
    }

    #[test]
    fn socket_route_needs_upgrade_and_origin() {
        let room = RoomId::new("café").unwrap();
        assert_eq!(
            get("/room/caf%C3%A9/ws", Some("websocket"), None),
            Ok(Route::Socket(room.clone()))
        );
        assert_eq!(
            get(
                "/room/cafe%CC%81/ws",
                Some("WebSocket"),
                Some("https://app.example")
            ),
            Ok(Route::Socket(room))
        );
        assert_eq!(
            get("/room/a/ws", None, None),
            Err(Rejection::UpgradeRequired)
        );
        assert_eq!(
            get("/room/a/ws", Some("h2c"), None),
            Err(Rejection::UpgradeRequired)
        );
        assert_eq!(
            get(
                "/room/a/ws",
                Some("websocket"),
                Some("https://evil.example")
            ),
            Err(Rejection::OriginForbidden)
        );
    }

    #[test]
    fn bad_rooms_are_400() {
        for bad in [
            "/room/a%2Fb/ws",
            "/room//ws",
            "/room/%FF/ws",
            "/room/tab%09/ws",
        ] {
            let rej = get(bad, Some("websocket"), None).unwrap_err();
            assert_eq!(rej.status(), 400, "{bad}");
        }
        let long = format!("/room/{}/ws", "x".repeat(129));
        assert_eq!(
            get(&long, Some("websocket"), None).unwrap_err().status(),
            400
        );
    }

    #[test]
    fn presence_and_unknown_paths() {
        assert_eq!(
            get("/room/r1/presence", None, None),
            Ok(Route::Presence(RoomId::new("r1").unwrap()))
        );
        for path in [
            "/",
            "/room/r1",
            "/room/r1/ws/extra",
            "/rooms/r1/ws",
            "/internal",
        ] {
            assert_eq!(
                get(path, Some("websocket"), None),
                Err(Rejection::NotFound),
                "{path}"
            );
        }
        assert_eq!(
            get("/internal/notify", None, None),
            Err(Rejection::MethodNotAllowed)
        );
        let post = RequestView {
            method: "POST",
            path: "/internal/notify",
            upgrade: None,
            origin: None,
        };
        assert_eq!(route(&post, &Limits::default()), Ok(Route::Notify));
    }
}
