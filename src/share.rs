//! Share links: `https://app.example/board#relay=wss%3A…&room=team-42&secret=…`.
//!
//! Everything sits in the URL fragment, which browsers never send to any server.

use serde::Serialize;

/// A parsed share link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Parsed {
    /// The relay URL, when the link names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) url: Option<String>,
    /// The room id.
    pub(crate) room: String,
    /// The room secret (base64url).
    pub(crate) secret: String,
}

/// `base#relay=…&room=…&secret=…`, each value percent-encoded.
pub(crate) fn link(base: &str, relay: &str, room: &str, secret: &str) -> String {
    let base = base.split('#').next().unwrap_or_default();
    format!(
        "{base}#relay={}&room={}&secret={}",
        encode(relay),
        encode(room),
        encode(secret)
    )
}

/// Reads `room`, `secret` and optional `relay` from a link or a bare fragment.
pub(crate) fn parse(link: &str) -> Option<Parsed> {
    let fragment = link.split_once('#').map_or(link, |(_, f)| f);
    let mut url = None;
    let mut room = None;
    let mut secret = None;
    for pair in fragment.split('&') {
        let Some((key, value)) = pair.split_once('=') else {
            continue;
        };
        let Some(value) = decode(value) else {
            continue;
        };
        match key {
            "relay" => url = Some(value),
            "room" => room = Some(value),
            "secret" => secret = Some(value),
            _ => {}
        }
    }
    Some(Parsed {
        url,
        room: room.filter(|r| !r.is_empty())?,
        secret: secret.filter(|s| !s.is_empty())?,
    })
}

fn encode(value: &str) -> String {
    String::from(js_sys::encode_uri_component(value))
}

fn decode(value: &str) -> Option<String> {
    js_sys::decode_uri_component(value).ok().map(String::from)
}
