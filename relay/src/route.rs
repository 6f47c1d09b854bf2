//! HTTP routing: which requests reach a room, and what every other request is answered.
//!
//! Pure logic over a [`RequestView`], so it is tested on the host; the worker glue in
//! `lib.rs` only reads the request into a view and acts on the [`Route`] or [`Rejection`].

use percent_encoding::percent_decode_str;
use sealsync_core::wire::{CLIENT_PARAM, PRESENCE_ACTION, ROOM_PATH_SEGMENT, SOCKET_ACTION};
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
    /// The URL query without `?`, if any.
    pub query: Option<&'a str>,
}

/// The longest accepted `client` parameter, in bytes.
pub const MAX_CLIENT_ID_LEN: usize = 64;

/// A caller's own id (`?client=`): 1 to [`MAX_CLIENT_ID_LEN`] of `A-Z a-z 0-9 _ -`. A
/// socket opened with one is left out of the presence count the same client asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientId(String);

impl ClientId {
    /// Checks `id`.
    ///
    /// # Errors
    /// [`Rejection::BadClient`] when it is empty, too long, or holds another character.
    pub fn new(id: &str) -> Result<Self, Rejection> {
        let ok = !id.is_empty()
            && id.len() <= MAX_CLIENT_ID_LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(id.to_owned()))
        } else {
            Err(Rejection::BadClient)
        }
    }

    /// The id.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The `client` parameter of a query string, checked; `None` when absent.
///
/// # Errors
/// [`Rejection::BadClient`] when present but not a valid [`ClientId`].
pub fn client_from_query(query: Option<&str>) -> Result<Option<ClientId>, Rejection> {
    let Some(query) = query else {
        return Ok(None);
    };
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(CLIENT_PARAM)?.strip_prefix('='))
        .map(ClientId::new)
        .transpose()
}

/// Where an accepted request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /room/:room/ws[?client=ID]` with `Upgrade: websocket`: a socket into the
    /// room's object.
    Socket {
        /// The room.
        room: RoomId,
        /// The caller's id, when given.
        client: Option<ClientId>,
    },
    /// `GET /room/:room/presence[?client=ID]`: `{"count":N}`, the sockets joined to the
    /// room, without those opened with the same `client`.
    Presence {
        /// The room.
        room: RoomId,
        /// The caller's id, when given.
        client: Option<ClientId>,
    },
    /// `POST /internal/notify`: a push from the application backend.
    Notify,
    /// `GET /internal/rooms/:room/stats`: what the room stores, for operators (service
    /// token, as notify).
    Stats {
        /// The room.
        room: RoomId,
    },
    /// `OPTIONS /room/:room/presence` (any origin): a browser's CORS preflight; answer
    /// 204 with [`cors_headers`].
    Preflight,
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
    /// 400: the `client` parameter is not a valid [`ClientId`].
    BadClient,
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
            Self::BadClient => 400,
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
            Self::BadClient => {
                format!("invalid client id: 1 to {MAX_CLIENT_ID_LEN} characters of A-Z a-z 0-9 _ -")
            }
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

/// The CORS headers that let a page on `origin` read an HTTP answer of the relay: the
/// origin echoed, `Authorization` allowed (the `jwt` mode's bearer token); none without
/// an `Origin` (not a browser).
///
/// They do not decide who may read presence: [`route`] refuses an origin outside
/// `ALLOWED_ORIGINS` with 403, and that refusal carries these headers too, so the page
/// can read why it was refused (the SDK reports it) instead of seeing a network error.
/// Preflights are answered for any origin for the same reason: they reveal nothing.
#[must_use]
pub fn cors_headers(origin: Option<&str>) -> Option<[(&'static str, String); 5]> {
    let origin = origin?;
    Some([
        ("Access-Control-Allow-Origin", origin.to_owned()),
        ("Access-Control-Allow-Methods", "GET".to_owned()),
        ("Access-Control-Allow-Headers", "Authorization".to_owned()),
        ("Access-Control-Max-Age", "600".to_owned()),
        ("Vary", "Origin".to_owned()),
    ])
}

/// Routes one request.
///
/// # Errors
/// A [`Rejection`] to answer instead of forwarding.
pub fn route(req: &RequestView<'_>, limits: &Limits) -> Result<Route, Rejection> {
    let path = req.path.strip_prefix('/').unwrap_or(req.path);
    let segments: Vec<&str> = path.split('/').collect();
    match segments.as_slice() {
        [ROOM_PATH_SEGMENT, room, action @ (SOCKET_ACTION | PRESENCE_ACTION)] => {
            let preflight = req.method == "OPTIONS" && *action == PRESENCE_ACTION;
            if req.method != "GET" && !preflight {
                return Err(Rejection::MethodNotAllowed);
            }
            let room = room_from_segment(room)?;
            let client = client_from_query(req.query)?;
            if preflight {
                return Ok(Route::Preflight);
            }
            if *action == PRESENCE_ACTION {
                if !limits.origin_allowed(req.origin) {
                    return Err(Rejection::OriginForbidden);
                }
                return Ok(Route::Presence { room, client });
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
            Ok(Route::Socket { room, client })
        }
        ["internal", "notify"] => {
            if req.method == "POST" {
                Ok(Route::Notify)
            } else {
                Err(Rejection::MethodNotAllowed)
            }
        }
        ["internal", "rooms", room, "stats"] => {
            if req.method != "GET" {
                return Err(Rejection::MethodNotAllowed);
            }
            Ok(Route::Stats {
                room: room_from_segment(room)?,
            })
        }
        _ => Err(Rejection::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealsync_core::wire::room_path;

    /// `/room/<room>/<action>`, the path the SDK builds ([`room_path`] without a query).
    fn at(room: &str, action: &str) -> String {
        format!("/{ROOM_PATH_SEGMENT}/{room}/{action}")
    }

    /// The socket path of `room`.
    fn ws(room: &str) -> String {
        at(room, SOCKET_ACTION)
    }

    /// The presence path of `room`.
    fn presence(room: &str) -> String {
        at(room, PRESENCE_ACTION)
    }

    fn get(path: &str, upgrade: Option<&str>, origin: Option<&str>) -> Result<Route, Rejection> {
        let limits = Limits {
            allowed_origins: vec!["https://app.example".into()],
            ..Limits::default()
        };
        let (path, query) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path, None),
        };
        route(
            &RequestView {
                method: "GET",
                path,
                upgrade,
                origin,
                query,
            },
            &limits,
        )
    }

    fn socket(room: &str, client: Option<&str>) -> Route {
        Route::Socket {
            room: RoomId::new(room).unwrap(),
            client: client.map(|c| ClientId::new(c).unwrap()),
        }
    }

    #[test]
    fn the_client_parameter_is_checked_and_carried() {
        assert_eq!(
            get(
                &room_path("r1", SOCKET_ACTION, "ab_C-9"),
                Some("websocket"),
                None
            ),
            Ok(socket("r1", Some("ab_C-9")))
        );
        assert_eq!(
            get(
                &format!("{}?x=1&{CLIENT_PARAM}=me", presence("r1")),
                None,
                None
            ),
            Ok(Route::Presence {
                room: RoomId::new("r1").unwrap(),
                client: Some(ClientId::new("me").unwrap()),
            })
        );
        assert_eq!(
            get(&format!("{}?other=1", ws("r1")), Some("websocket"), None),
            Ok(socket("r1", None))
        );
        let long = "x".repeat(MAX_CLIENT_ID_LEN + 1);
        for bad in [
            room_path("r1", PRESENCE_ACTION, ""),
            room_path("r1", SOCKET_ACTION, "a%20b"),
            room_path("r1", PRESENCE_ACTION, "é"),
            room_path("r1", PRESENCE_ACTION, &long),
            // Another parameter that merely starts with the name.
            format!("{}?{CLIENT_PARAM}s=me&{CLIENT_PARAM}=", presence("r1")),
        ] {
            let rej = get(&bad, Some("websocket"), None).unwrap_err();
            assert_eq!((rej.status(), &rej), (400, &Rejection::BadClient), "{bad}");
        }
    }

    #[test]
    fn socket_route_needs_upgrade_and_origin() {
        let room = RoomId::new("café").unwrap();
        assert_eq!(
            get(&ws("caf%C3%A9"), Some("websocket"), None),
            Ok(Route::Socket {
                room: room.clone(),
                client: None
            })
        );
        assert_eq!(
            get(
                &ws("cafe%CC%81"),
                Some("WebSocket"),
                Some("https://app.example")
            ),
            Ok(Route::Socket { room, client: None })
        );
        assert_eq!(get(&ws("a"), None, None), Err(Rejection::UpgradeRequired));
        assert_eq!(
            get(&ws("a"), Some("h2c"), None),
            Err(Rejection::UpgradeRequired)
        );
        assert_eq!(
            get(&ws("a"), Some("websocket"), Some("https://evil.example")),
            Err(Rejection::OriginForbidden)
        );
    }

    #[test]
    fn bad_rooms_are_400() {
        for bad in [ws("a%2Fb"), ws(""), ws("%FF"), ws("tab%09")] {
            let rej = get(&bad, Some("websocket"), None).unwrap_err();
            assert_eq!(rej.status(), 400, "{bad}");
        }
        let long = ws(&"x".repeat(129));
        assert_eq!(
            get(&long, Some("websocket"), None).unwrap_err().status(),
            400
        );
    }

    #[test]
    fn presence_answers_allowed_origins_and_tells_others_why_not() {
        let limits = Limits {
            allowed_origins: vec!["https://app.example".into()],
            ..Limits::default()
        };
        let path = presence("r1");
        let ws_path = ws("r1");
        let view = |method, origin| RequestView {
            method,
            path: &path,
            upgrade: None,
            origin,
            query: None,
        };
        let app = Some("https://app.example");
        let evil = Some("https://evil.example");
        assert!(matches!(
            route(&view("GET", app), &limits),
            Ok(Route::Presence { .. })
        ));
        assert_eq!(
            route(&view("GET", evil), &limits),
            Err(Rejection::OriginForbidden)
        );
        // A preflight reveals nothing: any origin gets one, so that a refused page can
        // read the 403 that follows.
        assert_eq!(route(&view("OPTIONS", app), &limits), Ok(Route::Preflight));
        assert_eq!(route(&view("OPTIONS", evil), &limits), Ok(Route::Preflight));
        let ws_preflight = RequestView {
            path: &ws_path,
            ..view("OPTIONS", app)
        };
        assert_eq!(
            route(&ws_preflight, &limits),
            Err(Rejection::MethodNotAllowed)
        );
        let headers = cors_headers(evil).unwrap();
        assert!(headers.contains(&("Access-Control-Allow-Origin", "https://evil.example".into())));
        assert!(headers.contains(&("Access-Control-Allow-Headers", "Authorization".into())));
        assert_eq!(cors_headers(None), None, "not a browser");
    }

    #[test]
    fn presence_and_unknown_paths() {
        assert_eq!(
            get(&presence("r1"), None, None),
            Ok(Route::Presence {
                room: RoomId::new("r1").unwrap(),
                client: None
            })
        );
        for path in [
            "/".to_owned(),
            format!("/{ROOM_PATH_SEGMENT}/r1"),
            format!("{}/extra", ws("r1")),
            format!("/{ROOM_PATH_SEGMENT}s/r1/{SOCKET_ACTION}"),
            "/internal".to_owned(),
        ] {
            assert_eq!(
                get(&path, Some("websocket"), None),
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
            query: None,
        };
        assert_eq!(route(&post, &Limits::default()), Ok(Route::Notify));
        assert_eq!(
            get("/internal/rooms/acme%3Aroadmap/stats", None, None),
            Ok(Route::Stats {
                room: RoomId::new("acme:roadmap").unwrap()
            })
        );
        let post_stats = RequestView {
            path: "/internal/rooms/r1/stats",
            ..post
        };
        assert_eq!(
            route(&post_stats, &Limits::default()),
            Err(Rejection::MethodNotAllowed)
        );
        assert_eq!(
            get("/internal/rooms/%FF/stats", None, None)
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(
            get("/internal/rooms/r1", None, None),
            Err(Rejection::NotFound)
        );
    }
}
