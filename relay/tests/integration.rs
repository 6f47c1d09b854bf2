//! Integration tests against the relay running in workerd (`wrangler dev`), through real
//! WebSockets, with envelopes sealed by `sealsync-core` (the relay never decrypts them; the
//! receiving test clients do). Every accepted socket reads its `CHALLENGE` first and signs
//! it in `HELLO` with `RoomKeys::prove`, as the SDK does.
//!
//! Run them with `relay/tests/run.sh`, which builds the worker, starts `wrangler dev` with
//! test limits, sets the `SEALSYNC_RELAY_*` variables read here and runs these tests with
//! `--include-ignored`. A plain `cargo test` lists them as ignored; run without those
//! variables, a test fails naming the one it is missing.
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    missing_docs,
    reason = "test code: a failed expectation is a failed test"
)]

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use sealsync_core::limits::{RelayLimits, HISTORY_FULL_RETRY_MS};
use sealsync_core::member::{CHALLENGE_LEN, MEMBER_KEY_LEN, PROOF_LEN};
use sealsync_core::wire::{
    Access, ClientFrame, RelayErrorCode, RelayFrame, VerifierState, AUTH_SUBPROTOCOL_PREFIX,
    MAX_SEQ, SUBPROTOCOL, VERSION,
};
use sealsync_core::{
    ChannelTag, EnvelopeKind, Hlc, Opener, RoomId, RoomKey, RoomKeys, SessionId, SessionSealer,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

#[path = "support/pem.rs"]
mod pem;

const WAIT: Duration = Duration::from_secs(15);

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The variable `name`, which relay/tests/run.sh sets; a test run without it fails
/// naming it.
fn required(name: &str) -> String {
    env(name).unwrap_or_else(|| {
        panic!("{name} is not set: run the integration tests with relay/tests/run.sh")
    })
}

/// [`required`], a number.
fn required_u64(name: &str) -> u64 {
    let value = required(name);
    value
        .parse()
        .unwrap_or_else(|_| panic!("{name}={value} is not a number"))
}

/// Seconds since the Unix epoch.
fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The relay's base URL (`http://127.0.0.1:PORT`); a test without it fails.
fn relay() -> String {
    required("SEALSYNC_RELAY_URL")
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).unwrap();
    b
}

fn unique_room(prefix: &str) -> String {
    let r: [u8; 6] = random();
    let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}-{hex}")
}

/// The relay's base URL, a new room with `prefix` and its members' keys: where most
/// tests start.
fn setup(prefix: &str) -> (String, String, RoomKeys) {
    let (room, keys) = fresh_room(prefix);
    (relay(), room, keys)
}

/// A new room with `prefix` and its members' keys.
fn fresh_room(prefix: &str) -> (String, RoomKeys) {
    let room = unique_room(prefix);
    let keys = room_keys(&room);
    (room, keys)
}

/// A room's keys from a fresh random secret (no Argon2id: fast).
fn room_keys(room: &str) -> RoomKeys {
    let mut secret_bytes: [u8; 32] = random();
    struct Fixed<'a>(&'a mut [u8; 32]);
    impl sealsync_core::Entropy for Fixed<'_> {
        fn fill(&mut self, dest: &mut [u8]) {
            dest.copy_from_slice(&self.0[..dest.len()]);
        }
    }
    let secret = RoomKey::generate_secret(&mut Fixed(&mut secret_bytes));
    let key = RoomKey::from_secret(&secret).unwrap();
    RoomKeys::derive(&key, RoomId::new(room).unwrap())
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One test participant: a session sealer and a socket, with the socket's challenge signed.
struct Peer {
    ws: Socket,
    sealer: SessionSealer,
    channel: ChannelTag,
    /// The socket's `CHALLENGE`.
    challenge: [u8; CHALLENGE_LEN],
    member_key: [u8; MEMBER_KEY_LEN],
    /// `member_key`'s signature over `challenge`.
    proof: [u8; PROOF_LEN],
    /// The token of the last `CAUGHT_UP` read: the next `SYNC` carries it.
    token: u64,
}

struct Welcome {
    head_seq: u64,
    snapshot_seq: u64,
    presence: u32,
    verifier_state: VerifierState,
    access: Access,
    limits: RelayLimits,
    /// Frames between WELCOME and CAUGHT_UP.
    catch_up: Vec<RelayFrame>,
    caught_up_head: u64,
}

fn ws_url(base: &str, room: &str) -> String {
    let base = base.replacen("http://", "ws://", 1);
    format!("{base}/room/{room}/ws")
}

/// A socket from client address `address` (`CF-Connecting-IP`, which `wrangler dev` passes
/// through as Cloudflare's edge would set it).
async fn open_socket_from(base: &str, room: &str, address: &str) -> Socket {
    let mut request = ws_url(base, room).into_client_request().unwrap();
    request
        .headers_mut()
        .insert("CF-Connecting-IP", address.parse().unwrap());
    let (ws, _) = tokio::time::timeout(WAIT, connect_async(request))
        .await
        .expect("connect timed out")
        .expect("connect failed");
    ws
}

async fn open_socket(base: &str, room: &str) -> Socket {
    let (ws, _) = tokio::time::timeout(WAIT, connect_async(ws_url(base, room)))
        .await
        .expect("connect timed out")
        .expect("connect failed");
    ws
}

/// The next binary frame of a raw socket, decoded (skips heartbeat text); panics on a close.
async fn next_frame(ws: &mut Socket) -> RelayFrame {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("no frame from the relay in time")
            .expect("socket ended")
            .expect("socket failed");
        match msg {
            Message::Binary(b) => return RelayFrame::decode(&b).unwrap(),
            Message::Close(c) => panic!("socket closed unexpectedly: {c:?}"),
            _ => {}
        }
    }
}

/// Reads a fresh socket's first frame, which must be its `CHALLENGE`.
async fn read_challenge(ws: &mut Socket) -> [u8; CHALLENGE_LEN] {
    match next_frame(ws).await {
        RelayFrame::Challenge { challenge } => challenge,
        other => panic!("the first frame must be CHALLENGE, got {other:?}"),
    }
}

/// Whether `frames` hold an `ERROR` with `code`, fatal when `fatal`.
fn has_error(frames: &[RelayFrame], code: RelayErrorCode, fatal: bool) -> bool {
    frames.iter().any(
        |f| matches!(f, RelayFrame::Error { code: c, fatal: f, .. } if *c == code && *f == fatal),
    )
}

/// Frames until the close frame, and its code (1006 for a reset without one).
async fn close_of(ws: &mut Socket) -> (Vec<RelayFrame>, u16) {
    let mut frames = Vec::new();
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("no close from the relay in time");
        match msg {
            Some(Ok(Message::Binary(b))) => frames.push(RelayFrame::decode(&b).unwrap()),
            Some(Ok(Message::Close(Some(c)))) => return (frames, u16::from(c.code)),
            Some(Ok(Message::Close(None))) => return (frames, 1005),
            Some(Ok(_)) => {}
            // A reset without a closing handshake (the relay process died) is 1006.
            Some(Err(_)) | None => return (frames, 1006),
        }
    }
}

impl Peer {
    async fn connect(base: &str, room: &str, keys: &RoomKeys) -> Self {
        Self::with_socket(open_socket(base, room).await, keys).await
    }

    /// A member of `room`: connected, and joined with `HELLO` from sequence 0.
    async fn member(base: &str, room: &str, keys: &RoomKeys) -> Self {
        let mut peer = Self::connect(base, room, keys).await;
        peer.hello(0).await;
        peer
    }

    /// Takes an accepted socket: reads its `CHALLENGE` and signs it.
    async fn with_socket(mut ws: Socket, keys: &RoomKeys) -> Self {
        let challenge = read_challenge(&mut ws).await;
        Self {
            ws,
            sealer: SessionSealer::new(keys, SessionId(random())),
            channel: keys.channel_tag("main"),
            challenge,
            member_key: keys.member_key(),
            proof: keys.prove(&challenge),
            token: 0,
        }
    }

    /// `SYNC` from `after_seq` with the token of the last page read.
    async fn sync(&mut self, after_seq: u64) {
        let token = self.token;
        self.send(&ClientFrame::Sync { after_seq, token }).await;
    }

    /// Reads the next frame that is not `PRESENCE`, which must be `CAUGHT_UP`; keeps its
    /// token and returns its head.
    async fn caught_up(&mut self) -> u64 {
        match self.recv_data().await {
            RelayFrame::CaughtUp { head_seq, token } => {
                self.token = token;
                head_seq
            }
            other => panic!("expected CAUGHT_UP, got {other:?}"),
        }
    }

    /// This socket's `HELLO` (signed over its own challenge).
    fn hello_frame(&self, after_seq: u64) -> ClientFrame {
        ClientFrame::Hello {
            after_seq,
            member_key: self.member_key,
            proof: self.proof,
            channels: vec![self.channel],
        }
    }

    async fn send(&mut self, frame: &ClientFrame) {
        self.send_raw(frame.encode().unwrap()).await;
    }

    async fn send_raw(&mut self, bytes: Vec<u8>) {
        self.ws.send(Message::binary(bytes)).await.unwrap();
    }

    /// The next binary frame, decoded (skips heartbeat text).
    async fn recv(&mut self) -> RelayFrame {
        next_frame(&mut self.ws).await
    }

    /// The next frame that is not PRESENCE.
    async fn recv_data(&mut self) -> RelayFrame {
        loop {
            match self.recv().await {
                RelayFrame::Presence { .. } => {}
                other => return other,
            }
        }
    }

    /// Waits for the close frame; returns its code (frames before it are returned too).
    async fn recv_close(&mut self) -> (Vec<RelayFrame>, u16) {
        close_of(&mut self.ws).await
    }

    async fn hello(&mut self, after_seq: u64) -> Welcome {
        let frame = self.hello_frame(after_seq);
        self.send(&frame).await;
        let frame = self.recv().await;
        let RelayFrame::Welcome {
            head_seq,
            snapshot_seq,
            presence,
            verifier_state,
            access,
            limits,
            ..
        } = frame
        else {
            panic!("expected WELCOME, got {frame:?}");
        };
        let mut catch_up = Vec::new();
        // A pending guest gets no catch-up until it is admitted.
        let caught_up_head = if access == Access::Pending {
            0
        } else {
            loop {
                match self.recv().await {
                    RelayFrame::CaughtUp { head_seq, token } => {
                        self.token = token;
                        break head_seq;
                    }
                    RelayFrame::Presence { .. } => {}
                    other => catch_up.push(other),
                }
            }
        };
        Welcome {
            head_seq,
            snapshot_seq,
            presence,
            verifier_state,
            access,
            limits,
            catch_up,
            caught_up_head,
        }
    }

    fn seal(&mut self, kind: EnvelopeKind, body: &[u8]) -> Vec<u8> {
        self.seal_in(kind, self.channel, body)
    }

    fn seal_in(&mut self, kind: EnvelopeKind, channel: ChannelTag, body: &[u8]) -> Vec<u8> {
        let hlc = Hlc {
            wall: 1,
            counter: 0,
            device: sealsync_core::DeviceId(random()),
        };
        self.sealer
            .seal(kind, channel, hlc, body, random())
            .unwrap()
    }

    /// Sends `envelope` in a `PUBLISH` and waits, as told, through `REFUSED RATE_LIMITED`
    /// until the relay answers otherwise; that answer. Other members' events that arrive
    /// meanwhile are skipped.
    async fn publish_patiently(&mut self, envelope: &[u8]) -> RelayFrame {
        loop {
            self.send(&ClientFrame::Publish {
                envelope: envelope.to_vec(),
            })
            .await;
            let answer = loop {
                match self.recv_data().await {
                    RelayFrame::Event { .. } => {}
                    other => break other,
                }
            };
            match answer {
                RelayFrame::Refused {
                    code: RelayErrorCode::RateLimited,
                    retry_after_ms,
                    ..
                } => {
                    assert!(retry_after_ms > 0);
                    tokio::time::sleep(Duration::from_millis(retry_after_ms.into())).await;
                }
                other => return other,
            }
        }
    }

    /// Publishes `body` and returns (envelope, ACK seq).
    async fn publish(&mut self, body: &[u8]) -> (Vec<u8>, u64) {
        let envelope = self.seal(EnvelopeKind::Event, body);
        self.send(&ClientFrame::Publish {
            envelope: envelope.clone(),
        })
        .await;
        match self.recv_data().await {
            RelayFrame::Ack { seq, duplicate, .. } => {
                assert!(!duplicate);
                (envelope, seq)
            }
            other => panic!("expected ACK, got {other:?}"),
        }
    }
}

/// A minimal HTTP/1.1 GET: (status, body).
async fn http_get(base: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    http(base, "GET", path, headers, "").await
}

/// A minimal HTTP/1.1 request: (status, body).
async fn http(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let text = http_raw(base, method, path, headers, body).await;
    let status: u16 = text.split(' ').nth(1).unwrap().parse().unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

/// The status line and headers of a bodiless request's answer.
async fn http_head(base: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> String {
    let text = http_raw(base, method, path, headers, "").await;
    text.split("\r\n\r\n").next().unwrap_or_default().to_owned()
}

/// Sends one HTTP/1.1 request on a fresh connection; the whole answer as text.
async fn http_raw(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> String {
    let host = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).await.unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).await.unwrap();
    tokio::time::timeout(WAIT, read_answer(&mut stream))
        .await
        .unwrap_or_else(|_| panic!("no complete answer to {method} {path} within {WAIT:?}"))
}

/// Reads one HTTP/1.1 answer: the head, then the body by its `Content-Length`, or its
/// chunks, or (neither) until the server closes. Not waiting for the close when the answer
/// says how long it is: a proxy may keep the connection open a while after answering.
async fn read_answer(stream: &mut TcpStream) -> String {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let text = String::from_utf8_lossy(&raw).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = text[..end].to_ascii_lowercase();
            let body = &raw[end + 4..];
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if length.is_some_and(|n| body.len() >= n) {
                return text;
            }
            if head.contains("transfer-encoding: chunked") && text.ends_with("0\r\n\r\n") {
                return text;
            }
        }
        let n = stream.read(&mut buf).await.unwrap();
        if n == 0 {
            return String::from_utf8_lossy(&raw).to_string();
        }
        raw.extend_from_slice(&buf[..n]);
    }
}

fn event_seq(frame: &RelayFrame) -> u64 {
    match frame {
        RelayFrame::Event { seq, .. } => *seq,
        other => panic!("expected EVENT, got {other:?}"),
    }
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn http_routes_answer_without_a_socket() {
    let base = relay();
    let room = unique_room("http");
    assert_eq!(
        http_get(&base, &format!("/room/{room}/ws"), &[]).await.0,
        426
    );
    let (status, body) = http_get(&base, "/room/a%2Fb/ws", &[("Upgrade", "websocket")]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid room id"), "{body}");
    assert_eq!(http_get(&base, "/nope", &[]).await.0, 404);
    assert_eq!(http_get(&base, "/room/x/ws/extra", &[]).await.0, 404);
    let (status, body) = http_get(&base, &format!("/room/{room}/presence?client=t1"), &[]).await;
    assert_eq!((status, body.as_str()), (200, r#"{"count":0}"#));

    // Presence counts joined sockets.
    let keys = room_keys(&room);
    let a = Peer::member(&base, &room, &keys).await;
    // b says who it is: asking with its id leaves its own socket out.
    let (ws, _) = connect_async(format!("{}?client=bee-1", ws_url(&base, &room)))
        .await
        .unwrap();
    let mut b = Peer::with_socket(ws, &keys).await;
    b.hello(0).await;
    let presence = |q: &'static str| {
        let (base, path) = (base.clone(), format!("/room/{room}/presence{q}"));
        async move { http_get(&base, &path, &[]).await }
    };
    assert_eq!(presence("").await.1, r#"{"count":2}"#);
    assert_eq!(presence("?client=bee-1").await.1, r#"{"count":1}"#);
    assert_eq!(presence("?client=other").await.1, r#"{"count":2}"#);
    let (status, body) = presence("?client=no%20spaces").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid client id"), "{body}");
    drop(a);
    // b hears that a left.
    assert_eq!(b.recv().await, RelayFrame::Presence { count: 1 });
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn origin_outside_the_allowlist_is_refused_before_upgrade() {
    let base = relay();
    let allowed = required("SEALSYNC_RELAY_ALLOWED_ORIGIN");
    let room = unique_room("origin");
    let mut req = ws_url(&base, &room).into_client_request().unwrap();
    req.headers_mut()
        .insert("Origin", "https://evil.example".parse().unwrap());
    match connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 403);
        }
        other => panic!("expected 403, got {:?}", other.map(|_| ())),
    }
    let mut req = ws_url(&base, &room).into_client_request().unwrap();
    req.headers_mut().insert("Origin", allowed.parse().unwrap());
    assert!(connect_async(req).await.is_ok());

    // A page of an allowed origin may read presence (CORS, preflight included); another
    // origin may not.
    let path = format!("/room/{room}/presence");
    let head = http_head(&base, "OPTIONS", &path, &[("Origin", &allowed)]).await;
    assert!(head.starts_with("HTTP/1.1 204"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(
        lower.contains(&format!("access-control-allow-origin: {allowed}")),
        "{head}"
    );
    assert!(
        lower.contains("access-control-allow-headers: authorization"),
        "{head}"
    );
    let head = http_head(&base, "GET", &path, &[("Origin", &allowed)]).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("access-control-allow-origin: {allowed}")),
        "{head}"
    );
    // Another origin is refused, and may read why (the preflight reveals nothing).
    let evil = [("Origin", "https://evil.example")];
    let head = http_head(&base, "OPTIONS", &path, &evil).await;
    assert!(head.starts_with("HTTP/1.1 204"), "{head}");
    let (status, body) = http(&base, "GET", &path, &evil, "").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("this origin may not connect"), "{body}");
    let head = http_head(&base, "GET", &path, &evil).await;
    assert!(
        head.to_ascii_lowercase()
            .contains("access-control-allow-origin: https://evil.example"),
        "{head}"
    );
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn publish_is_acked_in_sequence_and_broadcast_to_others() {
    let (base, room, keys) = setup("bcast");
    let mut a = Peer::connect(&base, &room, &keys).await;
    let wa = a.hello(0).await;
    assert_eq!(wa.verifier_state, VerifierState::Created);
    assert_eq!((wa.head_seq, wa.snapshot_seq, wa.presence), (0, 0, 1));
    assert_eq!(wa.access, Access::Write);
    let mut b = Peer::connect(&base, &room, &keys).await;
    let wb = b.hello(0).await;
    assert_eq!(wb.verifier_state, VerifierState::Matched);
    assert_eq!(wb.presence, 2);
    assert_eq!(a.recv().await, RelayFrame::Presence { count: 2 });

    let mut opener = Opener::new(&keys);
    for (i, body) in [&b"first"[..], b"second", b"third"].iter().enumerate() {
        let (envelope, seq) = a.publish(body).await;
        assert_eq!(seq, i as u64 + 1);
        match b.recv_data().await {
            RelayFrame::Event {
                seq: got,
                envelope: got_env,
                relay_time,
            } => {
                assert_eq!(got, seq);
                assert_eq!(got_env, envelope);
                assert!(relay_time > 1_600_000_000_000, "relay_time {relay_time}");
                assert_eq!(opener.open(&got_env).unwrap().body, *body);
            }
            other => panic!("expected EVENT, got {other:?}"),
        }
    }
    // b publishes too: a hears it, and sequences continue.
    let (_, seq) = b.publish(b"from b").await;
    assert_eq!(seq, 4);
    assert_eq!(event_seq(&a.recv_data().await), 4);
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn catch_up_after_disconnect_has_no_gap_and_no_duplicate() {
    let (base, room, keys) = setup("catchup");
    let mut a = Peer::member(&base, &room, &keys).await;
    let mut b = Peer::member(&base, &room, &keys).await;
    for _ in 0..3 {
        a.publish(b"x").await;
    }
    let mut last = 0;
    for _ in 0..3 {
        last = event_seq(&b.recv_data().await);
    }
    assert_eq!(last, 3);
    b.ws.close(None).await.unwrap();
    for _ in 0..4 {
        a.publish(b"while b was away").await;
    }
    let mut b = Peer::connect(&base, &room, &keys).await;
    let w = b.hello(last).await;
    assert_eq!(w.head_seq, 7);
    let seqs: Vec<u64> = w.catch_up.iter().map(event_seq).collect();
    assert_eq!(seqs, [4, 5, 6, 7]);
    assert_eq!(w.caught_up_head, 7);
    // Live events follow the seam without a gap.
    a.publish(b"live").await;
    assert_eq!(event_seq(&b.recv_data().await), 8);
    // SYNC sends again after a sequence, then CAUGHT_UP.
    b.sync(6).await;
    assert_eq!(event_seq(&b.recv_data().await), 7);
    assert_eq!(event_seq(&b.recv_data().await), 8);
    assert_eq!(b.caught_up().await, 8);
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn wrong_verifier_is_refused_with_4001() {
    let (base, room, keys) = setup("verifier");
    let mut a = Peer::member(&base, &room, &keys).await;
    let other = room_keys(&room);
    let mut intruder = Peer::connect(&base, &room, &other).await;
    // Its proof verifies (its own key signed its challenge), but the key is not the room's.
    let hello = intruder.hello_frame(0);
    intruder.send(&hello).await;
    let (frames, code) = intruder.recv_close().await;
    assert_eq!(code, 4001);
    assert!(matches!(
        frames.as_slice(),
        [RelayFrame::Error {
            code: RelayErrorCode::WrongVerifier,
            fatal: true,
            ..
        }]
    ));
    // The room is unharmed.
    a.publish(b"still here").await;
}

/// Asserts a fatal `WRONG_VERIFIER` with `message` and close 4001.
async fn assert_refused_4001(ws: &mut Socket, message: &str) {
    let (frames, code) = close_of(ws).await;
    assert_eq!(code, 4001, "{frames:?}");
    match frames.as_slice() {
        [RelayFrame::Error {
            code: RelayErrorCode::WrongVerifier,
            fatal: true,
            message: got,
        }] => assert_eq!(got, message),
        other => panic!("expected one fatal WRONG_VERIFIER, got {other:?}"),
    }
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn a_hello_replayed_on_another_socket_is_refused_4001_while_a_member_joins() {
    let (base, room, keys) = setup("replay");
    let mut a = Peer::connect(&base, &room, &keys).await;
    // What a network observer records: a's HELLO, as sent.
    let recorded = a.hello_frame(0).encode().unwrap();
    a.hello(0).await;
    // Replayed on the observer's own socket, it signs the wrong challenge.
    let mut replay = open_socket(&base, &room).await;
    let challenge = read_challenge(&mut replay).await;
    assert_ne!(
        challenge, a.challenge,
        "every socket gets its own challenge"
    );
    replay.send(Message::binary(recorded)).await.unwrap();
    // Meanwhile a member opens a socket and joins.
    let mut b = Peer::connect(&base, &room, &keys).await;
    assert_refused_4001(&mut replay, "the membership proof does not verify").await;
    let w = b.hello(0).await;
    assert_eq!(w.verifier_state, VerifierState::Matched);
    assert_eq!(w.presence, 2);
    let (_, seq) = a.publish(b"after the replay").await;
    assert_eq!(event_seq(&b.recv_data().await), seq);
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn the_stored_member_key_and_recorded_hellos_do_not_join() {
    let (base, room, keys) = setup("member-key");
    let mut a = Peer::connect(&base, &room, &keys).await;
    let recorded = a.proof;
    a.hello(0).await;
    let (_, seq) = a.publish(b"members only").await;
    // Someone holding what the relay stores (the member key) and every proof ever sent.
    let stranger = room_keys(&room);
    let stolen = keys.member_key();
    let mut b = Peer::connect(&base, &room, &keys).await;
    let mut other_proof = Peer::connect(&base, &room, &stranger).await;
    let own_proof = other_proof.proof;
    for (proof, why) in [
        (recorded, "a's recorded proof"),
        (b.proof, "a proof for another socket"),
        (own_proof, "a proof made with another key"),
        ([0; PROOF_LEN], "zeros"),
        ([0xFF; PROOF_LEN], "ones"),
    ] {
        let mut ws = open_socket(&base, &room).await;
        read_challenge(&mut ws).await;
        let hello = ClientFrame::Hello {
            after_seq: 0,
            member_key: stolen,
            proof,
            channels: vec![keys.channel_tag("main")],
        };
        ws.send(Message::binary(hello.encode().unwrap()))
            .await
            .unwrap();
        let (frames, code) = close_of(&mut ws).await;
        assert_eq!(code, 4001, "{why}: {frames:?}");
        assert!(
            !frames
                .iter()
                .any(|f| matches!(f, RelayFrame::Welcome { .. } | RelayFrame::Event { .. })),
            "{why}: {frames:?}"
        );
    }
    // Its own key proves itself, and is refused as another password.
    let hello = other_proof.hello_frame(0);
    other_proof.send(&hello).await;
    assert_refused_4001(
        &mut other_proof.ws,
        "this room exists with another password or secret",
    )
    .await;
    // The member joins, and nothing of the attempts reached the room.
    let w = b.hello(0).await;
    assert_eq!(w.presence, 2);
    assert_eq!(w.head_seq, seq);
    assert_eq!(w.catch_up.iter().map(event_seq).collect::<Vec<_>>(), [seq]);
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn a_publish_pre_empting_another_sessions_counter_gets_the_real_one_refused_not_acked() {
    let (base, room, keys) = setup("preempt");
    let mut victim = Peer::member(&base, &room, &keys).await;
    let mut honest = Peer::member(&base, &room, &keys).await;
    let mut squatter = Peer::member(&base, &room, &keys).await;
    // The victim's session id and next counter are in every header it sent: the squatter
    // publishes other bytes under them first.
    squatter.sealer = SessionSealer::new(&keys, victim.sealer.session());
    let (squat, squat_seq) = squatter.publish(b"not what the victim wrote").await;
    assert_eq!(event_seq(&honest.recv_data().await), squat_seq);
    assert_eq!(event_seq(&victim.recv_data().await), squat_seq);
    // The victim's real change is refused by name, not acknowledged as a duplicate.
    let real = victim.seal(EnvelopeKind::Event, b"the victim's change");
    victim
        .send(&ClientFrame::Publish {
            envelope: real.clone(),
        })
        .await;
    match victim.recv_data().await {
        RelayFrame::Refused {
            session,
            counter,
            code: RelayErrorCode::DuplicateMismatch,
            retry_after_ms: 0,
            ..
        } => assert_eq!((session, counter), (victim.sealer.session(), 1)),
        other => panic!("expected REFUSED DUPLICATE_MISMATCH, got {other:?}"),
    }
    // Only the very same bytes are a duplicate.
    squatter
        .send(&ClientFrame::Publish { envelope: squat })
        .await;
    assert!(matches!(
        squatter.recv_data().await,
        RelayFrame::Ack {
            seq,
            duplicate: true,
            ..
        } if seq == squat_seq
    ));
    // The honest member keeps receiving: the victim's next change reaches it.
    let (envelope, seq) = victim.publish(b"the victim goes on").await;
    assert_eq!(seq, squat_seq + 1);
    match honest.recv_data().await {
        RelayFrame::Event {
            seq: got,
            envelope: got_env,
            ..
        } => {
            assert_eq!((got, &got_env), (seq, &envelope));
            assert_eq!(
                Opener::new(&keys).open(&got_env).unwrap().body,
                b"the victim goes on"
            );
        }
        other => panic!("expected EVENT, got {other:?}"),
    }
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn after_seq_2_pow_53_gets_bad_frame_and_the_socket_stays_usable() {
    let (base, room, keys) = setup("max-seq");
    let mut a = Peer::connect(&base, &room, &keys).await;
    let bad_frame = |frame: RelayFrame, what: &str| match frame {
        RelayFrame::Error {
            code: RelayErrorCode::BadFrame,
            fatal: false,
            ..
        } => {}
        other => panic!("{what}: expected a non-fatal BAD_FRAME, got {other:?}"),
    };
    // HELLO: refused, the socket stays unjoined and may say HELLO again.
    let too_far = MAX_SEQ + 1;
    assert_eq!(too_far, 1 << 53);
    a.send(&a.hello_frame(too_far)).await;
    bad_frame(a.recv().await, "HELLO after_seq 2^53");
    a.hello(0).await;
    a.publish(b"one").await;
    for after_seq in [too_far, u64::MAX] {
        a.sync(after_seq).await;
        bad_frame(a.recv_data().await, "SYNC");
    }
    // The socket is still open and served.
    a.sync(0).await;
    assert_eq!(event_seq(&a.recv_data().await), 1);
    assert_eq!(a.caught_up().await, 1);
    let (_, seq) = a.publish(b"two").await;
    assert_eq!(seq, 2);
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn idle_unjoined_sockets_do_not_keep_a_member_out_and_are_closed_after_the_timeout() {
    let base = relay();
    let cap = required_u64("SEALSYNC_RELAY_MAX_UNJOINED");
    let cap = usize::try_from(cap).unwrap();
    let (room, keys) = fresh_room("unjoined");
    let mut member = Peer::member(&base, &room, &keys).await;
    // More idle sockets than the cap: each gets its challenge and never answers.
    let idle_count = cap + 6;
    let mut idle = Vec::new();
    for _ in 0..idle_count {
        let mut ws = open_socket(&base, &room).await;
        read_challenge(&mut ws).await;
        idle.push(ws);
    }
    // A member still gets in and joins (the oldest idle socket makes room).
    let mut late = Peer::connect(&base, &room, &keys).await;
    let w = late.hello(0).await;
    assert_eq!(w.presence, 2, "idle sockets are not in the presence count");
    let (_, seq) = member.publish(b"while they idle").await;
    assert_eq!(event_seq(&late.recv_data().await), seq);
    // The oldest idle sockets were closed to make room for newer ones (ROOM_FULL, 4029),
    // the others by the alarm once their time was up (NOT_JOINED, 1008 "no HELLO").
    let evicted = idle_count + 1 - cap;
    for (i, ws) in idle.iter_mut().enumerate() {
        let (frames, code) = close_of(ws).await;
        let expected = if i < evicted {
            (RelayErrorCode::RoomFull, 4029)
        } else {
            (RelayErrorCode::NotJoined, 1008)
        };
        assert_eq!(code, expected.1, "idle socket {i}: {frames:?}");
        assert!(
            matches!(
                frames.as_slice(),
                [RelayFrame::Error { code, fatal: true, .. }] if *code == expected.0
            ),
            "idle socket {i}: {frames:?}"
        );
    }
    // The members were never disturbed, and the room still serves them.
    let (_, seq) = late.publish(b"after the timeout").await;
    assert_eq!(event_seq(&member.recv_data().await), seq);
    let (status, body) = http_get(&base, &format!("/room/{room}/presence"), &[]).await;
    assert_eq!((status, body.as_str()), (200, r#"{"count":2}"#));
}

/// The relay's configured frame limit.
fn max_frame() -> usize {
    usize::try_from(required_u64("SEALSYNC_RELAY_MAX_FRAME")).unwrap()
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn oversize_publish_is_refused_too_large_and_the_socket_keeps_publishing() {
    let base = relay();
    let max = max_frame();
    let (room, keys) = fresh_room("oversize");
    let mut a = Peer::member(&base, &room, &keys).await;
    let mut b = Peer::member(&base, &room, &keys).await;
    // A PUBLISH over the relay's limit, yet under the 1 MiB the runtime delivers: a sealed
    // envelope with bytes appended (its header still names the change).
    let mut envelope = a.seal(EnvelopeKind::Event, b"too big");
    envelope.resize(max + 1000, 0);
    let frame = ClientFrame::Publish { envelope }.encode().unwrap();
    assert!(frame.len() > max && frame.len() < 1 << 20);
    a.send_raw(frame).await;
    match a.recv_data().await {
        RelayFrame::Refused {
            session,
            counter,
            code: RelayErrorCode::TooLarge,
            retry_after_ms: 0,
            ..
        } => assert_eq!((session, counter), (a.sealer.session(), 1)),
        other => panic!("expected REFUSED TOO_LARGE, got {other:?}"),
    }
    // The same socket's next change is stored and broadcast.
    let (_, seq) = a.publish(b"after the oversize frame").await;
    assert_eq!(seq, 1, "the oversize frame must not have been stored");
    assert_eq!(event_seq(&b.recv_data().await), 1);
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn an_oversize_frame_that_names_no_change_closes_1009_and_the_room_keeps_serving() {
    let base = relay();
    let max = max_frame();
    let (room, keys) = fresh_room("oversize-close");
    let mut a = Peer::member(&base, &room, &keys).await;
    let mut b = Peer::member(&base, &room, &keys).await;
    let mut c = Peer::member(&base, &room, &keys).await;
    b.publish(b"something to snapshot").await;
    // A snapshot over the limit is no change the client could drop: the relay closes.
    let mut envelope = a.seal(EnvelopeKind::Snapshot, b"state");
    envelope.resize(max + 1000, 0);
    a.send(&ClientFrame::SnapshotPut {
        upto_seq: 1,
        envelope,
    })
    .await;
    let (frames, code) = a.recv_close().await;
    assert_eq!(code, 1009);
    assert!(has_error(&frames, RelayErrorCode::TooLarge, true));
    // Over 1 MiB, Cloudflare's runtime closes the socket with 1009 before the relay sees
    // the message; a runtime that delivers it (the local one does) gets it refused by the
    // relay, which never reads past the codec's 1 MiB. Either way nothing is stored.
    let mut d = Peer::member(&base, &room, &keys).await;
    let mut envelope = d.seal(EnvelopeKind::Event, b"far too big");
    envelope.resize((1 << 20) + 1000, 0);
    let mut frame = vec![VERSION, 0x02];
    frame.extend_from_slice(&envelope);
    d.send_raw(frame).await;
    let answer = tokio::time::timeout(WAIT, async {
        loop {
            match d.ws.next().await {
                Some(Ok(Message::Binary(b))) => match RelayFrame::decode(&b).unwrap() {
                    RelayFrame::Presence { .. } => {}
                    frame => return Ok(frame),
                },
                Some(Ok(Message::Close(c))) => return Err(c.map(|c| u16::from(c.code))),
                Some(Ok(_)) => {}
                other => panic!("expected a close or a frame, got {other:?}"),
            }
        }
    })
    .await
    .expect("no answer to a message over 1 MiB in time");
    match answer {
        Err(code) => assert_eq!(code, Some(1009)),
        Ok(RelayFrame::Refused {
            counter,
            code: RelayErrorCode::TooLarge,
            ..
        }) => assert_eq!(counter, 1),
        Ok(other) => panic!("expected a close 1009 or REFUSED TOO_LARGE, got {other:?}"),
    }
    let (_, seq) = b.publish(b"after the oversize frames").await;
    assert_eq!(seq, 2, "nothing oversize was stored");
    assert_eq!(event_seq(&c.recv_data().await), 1);
    assert_eq!(event_seq(&c.recv_data().await), 2);
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn malformed_frames_get_bad_frame_and_the_socket_stays() {
    let (base, room, keys) = setup("malformed");
    let mut a = Peer::connect(&base, &room, &keys).await;
    // Before HELLO: NOT_JOINED.
    a.sync(0).await;
    assert!(matches!(
        a.recv().await,
        RelayFrame::Error {
            code: RelayErrorCode::NotJoined,
            fatal: false,
            ..
        }
    ));
    a.hello(0).await;
    for garbage in [
        vec![VERSION, 0x7f],
        vec![VERSION, 0x03, 0, 0],
        vec![VERSION, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 9],
        vec![VERSION],
        Vec::new(),
    ] {
        a.send_raw(garbage.clone()).await;
        match a.recv().await {
            RelayFrame::Error {
                code: RelayErrorCode::BadFrame,
                fatal: false,
                ..
            } => {}
            other => panic!("{garbage:?}: expected BAD_FRAME, got {other:?}"),
        }
    }
    // A text message that is not the heartbeat.
    a.ws.send(Message::text("hello?")).await.unwrap();
    assert!(matches!(
        a.recv().await,
        RelayFrame::Error {
            code: RelayErrorCode::BadFrame,
            ..
        }
    ));
    // A snapshot envelope in PUBLISH: WRONG_KIND, not stored.
    let snapshot = a.seal(EnvelopeKind::Snapshot, b"s");
    let mut frame = vec![VERSION, 0x02];
    frame.extend_from_slice(&snapshot);
    a.send_raw(frame).await;
    assert!(matches!(
        a.recv().await,
        RelayFrame::Error {
            code: RelayErrorCode::WrongKind,
            fatal: false,
            ..
        }
    ));
    // Still serving.
    let (_, seq) = a.publish(b"ok").await;
    assert_eq!(seq, 1);
    // The heartbeat is answered by the runtime.
    a.ws.send(Message::text("ping")).await.unwrap();
    let pong = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(Ok(Message::Text(t))) = a.ws.next().await {
                return t.to_string();
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(pong, "pong");
    // Another protocol version (a wire v1 client) is fatal: 4400.
    a.send_raw(vec![1u8, 0x03, 0, 0, 0, 0, 0, 0, 0, 0]).await;
    let (_, code) = a.recv_close().await;
    assert_eq!(code, 4400);
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn republished_envelope_is_acked_as_duplicate_and_not_rebroadcast() {
    let (base, room, keys) = setup("dedupe");
    let mut a = Peer::member(&base, &room, &keys).await;
    let mut b = Peer::member(&base, &room, &keys).await;
    let (envelope, seq) = a.publish(b"once").await;
    assert_eq!(event_seq(&b.recv_data().await), seq);
    // The outbox resends after a reconnect: same envelope, same (session, counter).
    let mut a2 = Peer::connect(&base, &room, &keys).await;
    a2.hello(seq).await;
    a2.send(&ClientFrame::Publish {
        envelope: envelope.clone(),
    })
    .await;
    match a2.recv_data().await {
        RelayFrame::Ack {
            seq: again,
            duplicate,
            counter,
            ..
        } => {
            assert_eq!((again, duplicate, counter), (seq, true, 1));
        }
        other => panic!("expected a duplicate ACK, got {other:?}"),
    }
    // b gets the next event, not the duplicate.
    let (_, next) = a.publish(b"twice?").await;
    assert_eq!(next, seq + 1);
    assert_eq!(event_seq(&b.recv_data().await), next);
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn snapshot_compacts_and_catch_up_starts_from_it() {
    let (base, room, keys) = setup("snapshot");
    let mut a = Peer::member(&base, &room, &keys).await;
    for _ in 0..3 {
        a.publish(b"e").await;
    }
    let snap = a.seal(EnvelopeKind::Snapshot, b"state at 3");
    a.send(&ClientFrame::SnapshotPut {
        upto_seq: 3,
        envelope: snap.clone(),
    })
    .await;
    assert_eq!(a.recv_data().await, RelayFrame::SnapshotStored { seq: 3 });
    a.publish(b"after").await;
    // A snapshot past the head is refused.
    let bad = a.seal(EnvelopeKind::Snapshot, b"future");
    a.send(&ClientFrame::SnapshotPut {
        upto_seq: 99,
        envelope: bad,
    })
    .await;
    assert!(matches!(
        a.recv_data().await,
        RelayFrame::Error {
            code: RelayErrorCode::BadFrame,
            ..
        }
    ));
    let mut b = Peer::connect(&base, &room, &keys).await;
    let w = b.hello(0).await;
    assert_eq!((w.head_seq, w.snapshot_seq), (4, 3));
    assert_eq!(
        w.catch_up[0],
        RelayFrame::Snapshot {
            seq: 3,
            envelope: snap
        }
    );
    let seqs: Vec<u64> = w.catch_up[1..].iter().map(event_seq).collect();
    assert_eq!(seqs, [4]);
    // A client already past the snapshot gets no snapshot.
    let mut c = Peer::connect(&base, &room, &keys).await;
    let w = c.hello(3).await;
    assert_eq!(w.catch_up.iter().map(event_seq).collect::<Vec<_>>(), [4]);
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn ephemeral_is_broadcast_and_never_stored() {
    let (base, room, keys) = setup("ephemeral");
    let mut a = Peer::member(&base, &room, &keys).await;
    let mut b = Peer::member(&base, &room, &keys).await;
    let envelope = a.seal(EnvelopeKind::Ephemeral, b"cursor 10,20");
    a.send(&ClientFrame::Ephemeral {
        envelope: envelope.clone(),
    })
    .await;
    assert_eq!(b.recv_data().await, RelayFrame::Ephemeral { envelope });
    let mut c = Peer::connect(&base, &room, &keys).await;
    let w = c.hello(0).await;
    assert_eq!((w.head_seq, w.catch_up.len()), (0, 0));
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn history_cap_refuses_publishes_until_a_snapshot() {
    let base = relay();
    let cap = required_u64("SEALSYNC_RELAY_MAX_HISTORY");
    let (room, keys) = fresh_room("history");
    let mut a = Peer::member(&base, &room, &keys).await;
    for i in 0..cap {
        let (_, seq) = a.publish(b"h").await;
        assert_eq!(seq, i + 1);
        // Stay under the rate limit.
        if i % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(600)).await;
        }
    }
    let envelope = a.seal(EnvelopeKind::Event, b"one too many");
    a.send(&ClientFrame::Publish { envelope }).await;
    match a.recv_data().await {
        RelayFrame::Refused {
            session,
            counter,
            code: RelayErrorCode::HistoryFull,
            retry_after_ms,
            ..
        } => {
            assert_eq!((session, counter), (a.sealer.session(), cap + 1));
            assert_eq!(retry_after_ms, HISTORY_FULL_RETRY_MS);
        }
        other => panic!("expected REFUSED HISTORY_FULL, got {other:?}"),
    }
    let snap = a.seal(EnvelopeKind::Snapshot, b"all of it");
    a.send(&ClientFrame::SnapshotPut {
        upto_seq: cap,
        envelope: snap,
    })
    .await;
    assert_eq!(a.recv_data().await, RelayFrame::SnapshotStored { seq: cap });
    let (_, seq) = a.publish(b"room again").await;
    assert_eq!(seq, cap + 1);
}

/// The relay's `RATE_BURST`.
fn rate_burst() -> u64 {
    required_u64("SEALSYNC_RELAY_RATE_BURST")
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn welcome_announces_the_configured_limits() {
    let base = relay();
    let (max, burst, rate, history) = (
        max_frame(),
        rate_burst(),
        required_u64("SEALSYNC_RELAY_RATE_PER_SECOND"),
        required_u64("SEALSYNC_RELAY_MAX_HISTORY"),
    );
    let (room, keys) = fresh_room("limits");
    let mut a = Peer::connect(&base, &room, &keys).await;
    let w = a.hello(0).await;
    assert_eq!(
        w.limits,
        RelayLimits {
            max_frame_bytes: u32::try_from(max).unwrap(),
            rate_burst: u32::try_from(burst).unwrap(),
            rate_per_second: u32::try_from(rate).unwrap(),
            max_history_events: history,
            max_history_bytes: sealsync_relay::limits::DEFAULT_MAX_HISTORY_BYTES,
        }
    );
    assert_eq!(w.access, Access::Write);
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn a_burst_past_the_rate_is_refused_with_a_retry_hint_and_waiting_succeeds() {
    let base = relay();
    let burst = rate_burst();
    let (room, keys) = fresh_room("burst");
    let mut a = Peer::member(&base, &room, &keys).await;
    let mut b = Peer::member(&base, &room, &keys).await;
    // Spend the whole bucket and go a little into debt with ephemeral frames on a channel
    // nobody follows (so they have no answer but the refusals), then publish.
    let extra = 50;
    let ephemeral = ClientFrame::Ephemeral {
        envelope: a.seal_in(
            EnvelopeKind::Ephemeral,
            keys.channel_tag("nobody"),
            b"cursor",
        ),
    }
    .encode()
    .unwrap();
    let envelopes: Vec<Vec<u8>> = (0..3)
        .map(|i| a.seal(EnvelopeKind::Event, format!("change {i}").as_bytes()))
        .collect();
    for _ in 0..burst + extra {
        a.ws.feed(Message::binary(ephemeral.clone())).await.unwrap();
    }
    for envelope in &envelopes {
        let frame = ClientFrame::Publish {
            envelope: envelope.clone(),
        };
        a.ws.feed(Message::binary(frame.encode().unwrap()))
            .await
            .unwrap();
    }
    a.ws.flush().await.unwrap();
    // The frames past the bucket get non-fatal ERROR RATE_LIMITED, the publishes REFUSED
    // RATE_LIMITED naming them, with how long to wait.
    let mut dropped = 0;
    let mut refused = Vec::new();
    while refused.len() < envelopes.len() {
        match a.recv_data().await {
            RelayFrame::Error {
                code: RelayErrorCode::RateLimited,
                fatal: false,
                ..
            } => dropped += 1,
            RelayFrame::Refused {
                session,
                counter,
                code: RelayErrorCode::RateLimited,
                retry_after_ms,
                ..
            } => {
                assert_eq!(session, a.sealer.session());
                assert!(retry_after_ms > 0);
                refused.push((counter, retry_after_ms));
            }
            other => panic!("expected a rate-limit answer, got {other:?}"),
        }
    }
    assert!(dropped > 0, "the burst never emptied the bucket");
    assert_eq!(
        refused.iter().map(|r| r.0).collect::<Vec<_>>(),
        [2, 3, 4],
        "every publish is refused by its counter (1 is the ephemeral)"
    );
    // Waiting as told, each change is stored, and the socket stays open.
    tokio::time::sleep(Duration::from_millis(refused[0].1.into())).await;
    for (i, envelope) in envelopes.iter().enumerate() {
        match a.publish_patiently(envelope).await {
            RelayFrame::Ack { seq, duplicate, .. } => {
                assert_eq!((seq, duplicate), (i as u64 + 1, false));
            }
            other => panic!("expected ACK, got {other:?}"),
        }
        assert_eq!(event_seq(&b.recv_data().await), i as u64 + 1);
    }
    // Still open: the next change is stored too (the bucket may still be near empty, so
    // it may have to wait as well).
    let next = a.seal(EnvelopeKind::Event, b"and on");
    assert!(matches!(
        a.publish_patiently(&next).await,
        RelayFrame::Ack { seq: 4, .. }
    ));
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn a_flood_that_ignores_the_hints_is_closed_with_1008() {
    let base = relay();
    let burst = rate_burst();
    let (room, keys) = fresh_room("flood");
    let mut a = Peer::member(&base, &room, &keys).await;
    let mut honest = Peer::member(&base, &room, &keys).await;
    let sync = ClientFrame::Sync {
        after_seq: 0,
        token: a.token,
    }
    .encode()
    .unwrap();
    // A whole burst, then a whole burst of ignored refusals, and more.
    for _ in 0..burst * 4 {
        if a.ws.feed(Message::binary(sync.clone())).await.is_err() {
            break;
        }
    }
    let _ = a.ws.flush().await;
    let (frames, code) = a.recv_close().await;
    assert_eq!(code, 1008);
    assert!(has_error(&frames, RelayErrorCode::RateLimited, false));
    assert!(matches!(
        frames.last(),
        Some(RelayFrame::Error {
            code: RelayErrorCode::RateLimited,
            fatal: true,
            ..
        })
    ));
    // The honest peer in the same room keeps publishing.
    let (_, seq) = honest.publish(b"still here").await;
    assert_eq!(seq, 1);
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn no_plaintext_reaches_the_relays_disk() {
    let base = relay();
    let dir = required("SEALSYNC_RELAY_PERSIST");
    let (room, keys) = fresh_room("plaintext");
    let marker = format!("PLAINTEXT-MARKER-{}", unique_room("m"));
    let mut a = Peer::member(&base, &room, &keys).await;
    let mut b = Peer::member(&base, &room, &keys).await;
    let (envelope, _) = a.publish(marker.as_bytes()).await;
    let snap = a.seal(EnvelopeKind::Snapshot, marker.as_bytes());
    a.send(&ClientFrame::SnapshotPut {
        upto_seq: 1,
        envelope: snap,
    })
    .await;
    assert_eq!(a.recv_data().await, RelayFrame::SnapshotStored { seq: 1 });
    // b (with the key) can read it.
    let RelayFrame::Event { envelope: got, .. } = b.recv_data().await else {
        panic!("expected EVENT");
    };
    assert_eq!(
        Opener::new(&keys).open(&got).unwrap().body,
        marker.as_bytes()
    );
    drop((a, b));
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The ciphertext is on disk (so the search below looks at the right files) …
    let needle_cipher = &envelope[envelope.len() - 16..];
    let mut cipher_seen = false;
    let mut files = 0;
    for entry in walkdir::WalkDir::new(&dir).into_iter().flatten() {
        if !entry.file_type().is_file() {
            continue;
        }
        // Other tests' rooms come and go meanwhile (a room nothing was stored in is
        // deleted when its last socket leaves): a file gone since the listing holds nothing.
        let bytes = match std::fs::read(entry.path()) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("{}: {e}", entry.path().display()),
        };
        files += 1;
        // … and the plaintext is not.
        assert!(
            !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
            "plaintext marker found in {}",
            entry.path().display()
        );
        cipher_seen |= bytes.windows(16).any(|w| w == needle_cipher);
    }
    assert!(files > 0, "no files under {dir}");
    assert!(
        cipher_seen,
        "the stored ciphertext was not found under {dir}"
    );
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn relay_restart_keeps_the_log_and_the_session_resumes() {
    let base = relay();
    let restart = required("SEALSYNC_RELAY_RESTART");
    let (room, keys) = fresh_room("restart");
    let mut a = Peer::member(&base, &room, &keys).await;
    for _ in 0..3 {
        a.publish(b"before the restart").await;
    }
    let status =
        tokio::task::spawn_blocking(move || std::process::Command::new(restart).status().unwrap())
            .await
            .unwrap();
    assert!(status.success(), "restart script failed");
    // The old socket is gone.
    let (_, code) = a.recv_close().await;
    assert!(code == 1006 || code == 1001 || code == 1011, "close {code}");
    // Reconnect the same session: the log is intact, sequences continue.
    let mut a2 = Peer::connect(&base, &room, &keys).await;
    a2.sealer = a.sealer;
    let w = a2.hello(1).await;
    assert_eq!(w.verifier_state, VerifierState::Matched);
    assert_eq!(w.head_seq, 3);
    assert_eq!(w.catch_up.iter().map(event_seq).collect::<Vec<_>>(), [2, 3]);
    let (_, seq) = a2.publish(b"after the restart").await;
    assert_eq!(seq, 4);
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn idle_room_is_deleted_by_its_alarm() {
    let base = relay();
    let ttl = required_u64("SEALSYNC_RELAY_IDLE_TTL");
    let (room, keys) = fresh_room("idle");
    let mut a = Peer::member(&base, &room, &keys).await;
    a.publish(b"soon gone").await;
    a.ws.close(None).await.unwrap();
    drop(a);
    tokio::time::sleep(Duration::from_secs(ttl + 4)).await;
    // Another password can now create the room afresh.
    let other = room_keys(&room);
    let mut b = Peer::connect(&base, &room, &other).await;
    let w = b.hello(0).await;
    assert_eq!(w.verifier_state, VerifierState::Created);
    assert_eq!(w.head_seq, 0);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn many_sockets_in_one_room_all_receive_a_broadcast() {
    let base = relay();
    let n = required_u64("SEALSYNC_RELAY_MAX_SOCKETS");
    let (room, keys) = fresh_room("many");
    let started = Instant::now();
    // n - 1 receivers, each on its own task: join, read presence until all n have
    // joined (so no backlog is left in the socket), then wait for the broadcast.
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel();
    let (event_tx, mut event_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    for i in 1..n {
        // One address each, as many users' browsers would be (one address holds at most
        // MAX_SOCKETS_PER_ADDRESS sockets of a room).
        let address = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 0xFF, i & 0xFF);
        let mut p = Peer::with_socket(open_socket_from(&base, &room, &address).await, &keys).await;
        let (ready_tx, event_tx) = (ready_tx.clone(), event_tx.clone());
        tasks.push(tokio::spawn(async move {
            let w = p.hello(0).await;
            let mut seen = u64::from(w.presence);
            if seen == n {
                ready_tx.send(i).unwrap();
            }
            loop {
                match p.recv().await {
                    RelayFrame::Presence { count } => {
                        if u64::from(count) == n && seen != n {
                            ready_tx.send(i).unwrap();
                        }
                        seen = u64::from(count);
                    }
                    RelayFrame::Event { seq, .. } => {
                        event_tx.send((seq, Instant::now())).unwrap();
                        break;
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            // Keep the socket open until the test ends.
            let _ = p.ws.next().await;
        }));
    }
    drop((ready_tx, event_tx));
    let mut sender = Peer::connect(&base, &room, &keys).await;
    let w = sender.hello(0).await;
    let mut ready = 0;
    while ready < n - 1 {
        tokio::time::timeout(Duration::from_secs(120), ready_rx.recv())
            .await
            .expect("not every socket saw the full room in time")
            .expect("a receiver task failed");
        ready += 1;
    }
    let joined = started.elapsed();
    let sent = Instant::now();
    let (_, seq) = sender.publish(b"to everyone").await;
    let acked = sent.elapsed();
    let mut got = 0u64;
    let mut last = Duration::ZERO;
    while got < n - 1 {
        let (s, at) = tokio::time::timeout(Duration::from_secs(60), event_rx.recv())
            .await
            .expect("not every socket received the broadcast in time")
            .expect("a receiver task failed");
        assert_eq!(s, seq);
        last = last.max(at.duration_since(sent));
        got += 1;
    }
    eprintln!(
        "{n} sockets (presence {}): all joined in {joined:?}; ACK after {acked:?}; \
         the broadcast reached all {got} receivers, the last after {last:?}",
        w.presence
    );
    // One more socket than the limit is refused with 4029.
    let mut extra = open_socket(&base, &room).await;
    let code = loop {
        match tokio::time::timeout(WAIT, extra.next()).await.unwrap() {
            Some(Ok(Message::Close(Some(c)))) => break u16::from(c.code),
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(code, 4029);
    for t in tasks {
        t.abort();
    }
}

/// The service token (id, secret) of the relay under test.
fn service_token() -> (String, String) {
    (
        required("SEALSYNC_RELAY_NOTIFY_ID"),
        required("SEALSYNC_RELAY_NOTIFY_SECRET"),
    )
}

/// Sends a notify request with the service token's header pair; (status, body).
async fn notify(base: &str, token: &(String, String), body: &serde_json::Value) -> (u16, String) {
    http(
        base,
        "POST",
        "/internal/notify",
        &[
            ("Sealsync-Service-Id", &token.0),
            ("Sealsync-Service-Secret", &token.1),
            ("Content-Type", "application/json"),
        ],
        &body.to_string(),
    )
    .await
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn notify_broadcast_reaches_joined_sockets_and_needs_the_service_token() {
    let base = relay();
    let token = service_token();
    let (room, keys) = fresh_room("notify");
    let mut a = Peer::member(&base, &room, &keys).await;
    // A client cannot claim a user id by sending the relay's internal headers.
    let mut req = ws_url(&base, &room).into_client_request().unwrap();
    req.headers_mut()
        .insert("x-sealsync-user", "bob".parse().unwrap());
    let (ws, _) = connect_async(req).await.unwrap();
    let mut b = Peer::with_socket(ws, &keys).await;
    b.hello(0).await;
    a.recv().await; // presence 2

    let push = serde_json::json!({"room": room, "kind": "broadcast", "data": {"hello": "all"}});
    let wrong_secret = (token.0.clone(), format!("{}x", token.1));
    let wrong_id = ("someone-else".to_owned(), token.1.clone());
    for wrong in [&wrong_secret, &wrong_id] {
        assert_eq!(notify(&base, wrong, &push).await.0, 401);
    }
    let (status, body) = notify(&base, &token, &push).await;
    assert_eq!((status, body.as_str()), (200, r#"{"delivered":2}"#));
    for p in [&mut a, &mut b] {
        assert_eq!(
            p.recv().await,
            RelayFrame::Notify {
                json: r#"{"hello":"all"}"#.into()
            }
        );
    }
    let direct = serde_json::json!({"room": room, "kind": "direct", "user": "bob", "data": 1});
    let (status, body) = notify(&base, &token, &direct).await;
    assert_eq!((status, body.as_str()), (200, r#"{"delivered":0}"#));
    let bad = serde_json::json!({"room": room, "kind": "direct"});
    assert_eq!(notify(&base, &token, &bad).await.0, 400);
}

/// Signs a token like the application backend would: for `org`, narrowed to `room` when
/// given, valid for ten minutes.
fn token(user: &str, org: &str, room: Option<&str>, role: Option<&str>, guest: bool) -> String {
    signed(user, org, room, role, guest, 600)
}

/// As [`token`], expiring `ttl` seconds from now (negative: already expired). Only in the
/// `AUTH_MODE=jwt` phases, which set `SEALSYNC_RELAY_JWT_SEED`.
fn signed(
    user: &str,
    org: &str,
    room: Option<&str>,
    role: Option<&str>,
    guest: bool,
    ttl: i64,
) -> String {
    use base64::Engine;
    let seed: [u8; 32] = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(required("SEALSYNC_RELAY_JWT_SEED"))
        .unwrap()
        .try_into()
        .unwrap();
    let key = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(seed));
    let now = now_s();
    let claims = sealsync_relay::auth::Claims {
        sub: user.into(),
        org: org.into(),
        room: room.map(Into::into),
        exp: now.saturating_add_signed(ttl),
        nbf: None,
        role: role.map(Into::into),
        guest,
    };
    sealsync_relay::auth::mint(&claims, &key)
}

/// Opens a socket offering `sealsync.v2` and, when given, the token.
async fn connect_with_token(base: &str, room: &str, token: Option<&str>) -> Result<Socket, u16> {
    let mut req = ws_url(base, room).into_client_request().unwrap();
    let protocols = match token {
        Some(t) => format!("{SUBPROTOCOL}, {AUTH_SUBPROTOCOL_PREFIX}{t}"),
        None => SUBPROTOCOL.into(),
    };
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", protocols.parse().unwrap());
    match connect_async(req).await {
        Ok((ws, resp)) => {
            assert_eq!(
                resp.headers()
                    .get("Sec-WebSocket-Protocol")
                    .map(|v| v.to_str().unwrap()),
                Some(SUBPROTOCOL),
                "only the wire protocol's name is echoed"
            );
            Ok(ws)
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("connect failed: {e}"),
    }
}

impl Peer {
    /// Opens a socket with `token`, which the relay must accept, and joins (`HELLO` from
    /// sequence 0).
    async fn join_with_token(
        base: &str,
        room: &str,
        token: &str,
        keys: &RoomKeys,
    ) -> (Self, Welcome) {
        let ws = connect_with_token(base, room, Some(token))
            .await
            .unwrap_or_else(|status| panic!("the relay refused the token with {status}"));
        let mut peer = Self::with_socket(ws, keys).await;
        let welcome = peer.hello(0).await;
        (peer, welcome)
    }
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn auth_jwt_is_checked_before_the_upgrade() {
    let base = relay();
    let room = unique_room("acme:auth");
    let good = token("alice", "acme", Some(&room), Some("editor"), false);
    assert_eq!(
        connect_with_token(&base, &room, None).await.err(),
        Some(403)
    );
    let other_room = token("alice", "acme", Some("acme:another-room"), None, false);
    let other_org = token("alice", "globex", None, None, false);
    // Past the relay's 60 s of leeway.
    let expired = signed("alice", "acme", Some(&room), None, false, -3600);
    let mut tampered = good.clone();
    tampered.pop();
    tampered.push(if good.ends_with('A') { 'B' } else { 'A' });
    for (bad, why) in [
        (&other_room, "other room"),
        (&other_org, "other org"),
        (&expired, "expired"),
        (&tampered, "tampered"),
    ] {
        assert_eq!(
            connect_with_token(&base, &room, Some(bad)).await.err(),
            Some(403),
            "{why}"
        );
    }
    // A room outside any org cannot be opened in jwt mode.
    let bare = unique_room("no-org");
    assert_eq!(
        connect_with_token(&base, &bare, Some(&good)).await.err(),
        Some(403)
    );
    let keys = room_keys(&room);
    let (mut a, _) = Peer::join_with_token(&base, &room, &good, &keys).await;
    a.publish(b"signed in").await;
    // A token for the whole org opens this room too.
    let org_wide = token("bob", "acme", None, None, false);
    let (_b, welcome) = Peer::join_with_token(&base, &room, &org_wide, &keys).await;
    assert_eq!(welcome.head_seq, 1);
    assert!(matches!(
        welcome.catch_up[..],
        [RelayFrame::Event { seq: 1, .. }]
    ));
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn auth_viewer_reads_but_may_not_publish_until_its_role_changes() {
    let base = relay();
    let room = unique_room("acme:viewer");
    let editor = token("eve", "acme", None, Some("editor"), false);
    let viewer = token("vic", "acme", None, Some("viewer"), false);
    let keys = room_keys(&room);
    let (mut e, _) = Peer::join_with_token(&base, &room, &editor, &keys).await;
    let (mut v, welcome) = Peer::join_with_token(&base, &room, &viewer, &keys).await;
    assert_eq!(welcome.access, Access::ReadOnly);
    // Roles are compared without regard to case.
    for shouted in ["Viewer", "VIEWER"] {
        let t = token("val", "acme", None, Some(shouted), false);
        let (_, welcome) = Peer::join_with_token(&base, &room, &t, &keys).await;
        assert_eq!(welcome.access, Access::ReadOnly, "{shouted}");
    }
    e.recv().await; // presence 2
    let envelope = v.seal(EnvelopeKind::Event, b"may I?");
    v.send(&ClientFrame::Publish {
        envelope: envelope.clone(),
    })
    .await;
    match v.recv_data().await {
        RelayFrame::Refused {
            session,
            counter,
            code: RelayErrorCode::ReadOnly,
            retry_after_ms: 0,
            ..
        } => assert_eq!((session, counter), (v.sealer.session(), 1)),
        other => panic!("expected REFUSED READ_ONLY, got {other:?}"),
    }
    // The viewer still reads what others publish.
    e.publish(b"read this").await;
    assert!(matches!(
        v.recv_data().await,
        RelayFrame::Event { seq: 1, .. }
    ));
    // The backend makes the viewer an editor: ACCESS, then the application's NOTIFY.
    let notify_token = service_token();
    let role = serde_json::json!({"room": room, "kind": "role", "user": "vic", "role": "editor"});
    let (status, body) = notify(&base, &notify_token, &role).await;
    assert_eq!((status, body.as_str()), (200, r#"{"delivered":1}"#));
    assert_eq!(
        v.recv_data().await,
        RelayFrame::Access {
            access: Access::Write
        }
    );
    assert!(matches!(v.recv_data().await, RelayFrame::Notify { .. }));
    v.send(&ClientFrame::Publish { envelope }).await;
    assert!(matches!(
        v.recv_data().await,
        RelayFrame::Ack { seq: 2, .. }
    ));
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn auth_presence_needs_a_bearer_token_for_the_room() {
    let base = relay();
    let room = unique_room("acme:presence");
    let good = token("alice", "acme", None, None, false);
    let other_org = token("alice", "globex", None, None, false);
    let path = format!("/room/{room}/presence");
    assert_eq!(http_get(&base, &path, &[]).await.0, 403);
    let bearer = |t: &str| format!("Bearer {t}");
    assert_eq!(
        http_get(&base, &path, &[("Authorization", &bearer(&other_org))])
            .await
            .0,
        403
    );
    assert_eq!(
        http_get(&base, &path, &[("Authorization", &bearer(&good))]).await,
        (200, r#"{"count":0}"#.to_owned())
    );
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn auth_guest_is_admitted_and_ban_closes_with_4010() {
    let base = relay();
    let notify_token = service_token();
    let room = unique_room("acme:guest");
    let guest_token = token("gus", "acme", Some(&room), None, true);
    let keys = room_keys(&room);
    let owner_token = token("olga", "acme", Some(&room), Some("owner"), false);
    let (mut owner, welcome) = Peer::join_with_token(&base, &room, &owner_token, &keys).await;
    assert_eq!(welcome.access, Access::Write);
    let (mut guest, welcome) = Peer::join_with_token(&base, &room, &guest_token, &keys).await;
    assert_eq!(welcome.access, Access::Pending);
    assert_eq!(owner.recv_data().await, knock_of("gus"));
    // A pending guest may not publish: the change is refused by name, and the client holds
    // it.
    let envelope = guest.seal(EnvelopeKind::Event, b"let me in");
    guest
        .send(&ClientFrame::Publish {
            envelope: envelope.clone(),
        })
        .await;
    match guest.recv_data().await {
        RelayFrame::Refused {
            session,
            counter,
            code: RelayErrorCode::GuestPending,
            retry_after_ms: 0,
            ..
        } => assert_eq!((session, counter), (guest.sealer.session(), 1)),
        other => panic!("expected REFUSED GUEST_PENDING, got {other:?}"),
    }
    let admit = serde_json::json!({"room": room, "kind": "admit", "user": "gus"});
    let (status, body) = notify(&base, &notify_token, &admit).await;
    assert_eq!((status, body.as_str()), (200, r#"{"delivered":1}"#));
    // ACCESS first (the client resumes publishing), the catch-up it was held from (none
    // here), then the application's NOTIFY.
    assert_eq!(
        guest.recv_data().await,
        RelayFrame::Access {
            access: Access::Write
        }
    );
    assert!(matches!(
        guest.recv_data().await,
        RelayFrame::CaughtUp { head_seq: 0, .. }
    ));
    assert_eq!(
        guest.recv_data().await,
        RelayFrame::Notify {
            json: r#"{"kind":"admit"}"#.into()
        }
    );
    guest.send(&ClientFrame::Publish { envelope }).await;
    assert!(matches!(
        guest.recv_data().await,
        RelayFrame::Ack { seq: 1, .. }
    ));
    // Direct push reaches only that user.
    let direct =
        serde_json::json!({"room": room, "kind": "direct", "user": "olga", "data": {"x": 1}});
    assert_eq!(
        notify(&base, &notify_token, &direct).await.1,
        r#"{"delivered":1}"#
    );
    assert!(matches!(
        owner.recv_data().await,
        RelayFrame::Event { seq: 1, .. }
    ));
    assert_eq!(
        owner.recv_data().await,
        RelayFrame::Notify {
            json: r#"{"x":1}"#.into()
        }
    );
    // Ban: the socket closes with 4010, and the user cannot come back.
    let ban = serde_json::json!({"room": room, "kind": "ban", "user": "gus"});
    assert_eq!(notify(&base, &notify_token, &ban).await.0, 200);
    let (frames, code) = guest.recv_close().await;
    assert_eq!(code, 4010);
    assert!(has_error(&frames, RelayErrorCode::Banned, true));
    assert_eq!(owner.recv().await, RelayFrame::Presence { count: 1 });
    let mut again = connect_with_token(&base, &room, Some(&guest_token))
        .await
        .unwrap();
    let code = loop {
        match tokio::time::timeout(WAIT, again.next()).await.unwrap() {
            Some(Ok(Message::Close(Some(c)))) => break u16::from(c.code),
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(code, 4010);
}

/// The relay's knock for `user`, as a member receives it.
fn knock_of(user: &str) -> RelayFrame {
    RelayFrame::Notify {
        json: serde_json::json!({"type": "knock", "data": {"user": user}}).to_string(),
    }
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn auth_a_pending_guest_role_sees_nothing_until_admitted_then_the_whole_history() {
    let base = relay();
    let notify_token = service_token();
    let (room, keys) = fresh_room("acme:knock");
    let owner_token = token("olga", "acme", Some(&room), Some("owner"), false);
    let (mut owner, _) = Peer::join_with_token(&base, &room, &owner_token, &keys).await;
    let (first, _) = owner.publish(b"before the guest").await;
    // `role: "pending_guest"` makes a guest as `guest: true` does.
    let guest_token = token("gwen", "acme", Some(&room), Some("pending_guest"), false);
    let (mut guest, welcome) = Peer::join_with_token(&base, &room, &guest_token, &keys).await;
    assert_eq!(welcome.access, Access::Pending);
    assert_eq!(
        (welcome.head_seq, welcome.snapshot_seq),
        (0, 0),
        "not even the history's length"
    );
    // The member hears the knock, with the token's user.
    assert_eq!(owner.recv_data().await, knock_of("gwen"));
    // A change and an ephemeral frame while the guest waits: not for the guest.
    let (second, _) = owner.publish(b"while the guest waits").await;
    let cursor = owner.seal(EnvelopeKind::Ephemeral, b"cursor");
    owner
        .send(&ClientFrame::Ephemeral { envelope: cursor })
        .await;
    // Nor does a SYNC read anything: a non-fatal GUEST_PENDING, the socket stays.
    guest
        .send(&ClientFrame::Sync {
            after_seq: 0,
            token: 0,
        })
        .await;
    let frames = drain_frames(&mut guest.ws, Duration::from_millis(700)).await;
    assert!(
        frames
            .iter()
            .all(|f| matches!(f, RelayFrame::Presence { .. } | RelayFrame::Error { .. })),
        "a pending guest was sent {frames:?}"
    );
    assert!(has_error(&frames, RelayErrorCode::GuestPending, false));
    // Nor a second socket of the guest.
    let (mut second_socket, welcome) =
        Peer::join_with_token(&base, &room, &guest_token, &keys).await;
    assert_eq!(welcome.access, Access::Pending);
    assert_eq!(owner.recv_data().await, knock_of("gwen"));
    // Admitted: ACCESS, then the whole history, then the notice.
    let admit = serde_json::json!({"room": room, "kind": "admit", "user": "gwen"});
    assert_eq!(
        notify(&base, &notify_token, &admit).await,
        (200, r#"{"delivered":2}"#.into())
    );
    for socket in [&mut guest, &mut second_socket] {
        assert_eq!(
            socket.recv_data().await,
            RelayFrame::Access {
                access: Access::Write
            }
        );
        let mut events = Vec::new();
        let head = loop {
            match socket.recv_data().await {
                RelayFrame::Event { seq, envelope, .. } => events.push((seq, envelope)),
                RelayFrame::CaughtUp { head_seq, token } => {
                    socket.token = token;
                    break head_seq;
                }
                other => panic!("expected the catch-up, got {other:?}"),
            }
        };
        assert_eq!(head, 2);
        assert_eq!(events, [(1, first.clone()), (2, second.clone())]);
        assert_eq!(
            socket.recv_data().await,
            RelayFrame::Notify {
                json: r#"{"kind":"admit"}"#.into()
            }
        );
    }
    // A member now: its change reaches the owner, the owner's reaches it.
    let (_, seq) = guest.publish(b"let in").await;
    assert_eq!(seq, 3);
    assert!(matches!(
        owner.recv_data().await,
        RelayFrame::Event { seq: 3, .. }
    ));
}

// ------------------------------------------------------------------- hostile room (issue 11)

/// Every frame that reaches `ws` within `quiet` of the last one, decoded (skips text).
async fn drain_frames(ws: &mut Socket, quiet: Duration) -> Vec<RelayFrame> {
    let mut frames = Vec::new();
    while let Ok(Some(Ok(msg))) = tokio::time::timeout(quiet, ws.next()).await {
        if let Message::Binary(b) = msg {
            frames.push(RelayFrame::decode(&b).unwrap());
        }
    }
    frames
}

/// An honest member publishes; another receives it, within [`WAIT`].
async fn still_served(a: &mut Peer, b: &mut Peer, body: &[u8]) {
    let envelope = a.seal(EnvelopeKind::Event, body);
    let seq = match a.publish_patiently(&envelope).await {
        RelayFrame::Ack { seq, .. } => seq,
        other => panic!("the honest publish got {other:?}"),
    };
    loop {
        match b.recv_data().await {
            RelayFrame::Event { seq: s, .. } if s == seq => return,
            RelayFrame::Event { .. } => {}
            other => panic!("the honest member got {other:?}"),
        }
    }
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn a_member_that_does_not_read_gets_one_catch_up_page_however_often_it_syncs() {
    let base = relay();
    let page = required_u64("SEALSYNC_RELAY_PAGE_BYTES");
    let (room, keys) = fresh_room("pages");
    let mut a = Peer::member(&base, &room, &keys).await;
    let mut b = Peer::member(&base, &room, &keys).await;
    // About five pages of history.
    let body = vec![7u8; 8 * 1024];
    let events = 40;
    for _ in 0..events {
        let envelope = a.seal(EnvelopeKind::Event, &body);
        assert!(matches!(
            a.publish_patiently(&envelope).await,
            RelayFrame::Ack { .. }
        ));
        assert!(matches!(b.recv_data().await, RelayFrame::Event { .. }));
    }
    let one = a.seal(EnvelopeKind::Event, &body).len() as u64;
    // The attacker joins, then asks for the whole history again and again without reading.
    let mut attacker = Peer::connect(&base, &room, &keys).await;
    let hello = attacker.hello_frame(0);
    attacker.send(&hello).await;
    let syncs = 20;
    for guess in 0..syncs {
        attacker
            .send(&ClientFrame::Sync {
                after_seq: 0,
                token: guess,
            })
            .await;
    }
    // Honest members are served meanwhile.
    still_served(&mut a, &mut b, b"while the attacker asks").await;
    // What the attacker was sent: one page, and one non-fatal BAD_FRAME per SYNC.
    let frames = drain_frames(&mut attacker.ws, Duration::from_secs(2)).await;
    let bytes: u64 = frames
        .iter()
        .map(|f| match f {
            RelayFrame::Event { envelope, .. } => envelope.len() as u64,
            _ => 0,
        })
        .sum();
    assert!(bytes > 0 && bytes <= page + one, "{bytes} bytes sent");
    let bad = frames
        .iter()
        .filter(|f| {
            matches!(
                f,
                RelayFrame::Error {
                    code: RelayErrorCode::BadFrame,
                    fatal: false,
                    ..
                }
            )
        })
        .count();
    assert_eq!(bad as u64, syncs, "every SYNC without the page's token");
    // A member that reads gets the whole history, page by page.
    let mut c = Peer::connect(&base, &room, &keys).await;
    let w = c.hello(0).await;
    let mut seqs: Vec<u64> = w.catch_up.iter().map(event_seq).collect();
    assert!((seqs.len() as u64) < w.caught_up_head, "more than one page");
    while *seqs.last().unwrap() < w.caught_up_head {
        c.sync(*seqs.last().unwrap()).await;
        loop {
            match c.recv_data().await {
                RelayFrame::CaughtUp { token, .. } => {
                    c.token = token;
                    break;
                }
                frame => seqs.push(event_seq(&frame)),
            }
        }
    }
    assert_eq!(seqs, (1..=w.caught_up_head).collect::<Vec<_>>());
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn many_sockets_together_are_held_to_the_rooms_budget_and_members_keep_receiving() {
    let base = relay();
    let room_burst = required_u64("SEALSYNC_RELAY_ROOM_BURST");
    let (room, keys) = fresh_room("roomrate");
    let mut a = Peer::member(&base, &room, &keys).await;
    let mut b = Peer::member(&base, &room, &keys).await;
    // Ten members, each within its own bucket, together twice the room's burst.
    let per_socket = room_burst / 5;
    let mut flooders = Vec::new();
    for _ in 0..10 {
        let mut f = Peer::member(&base, &room, &keys).await;
        let ephemeral = ClientFrame::Ephemeral {
            envelope: f.seal_in(
                EnvelopeKind::Ephemeral,
                keys.channel_tag("nobody"),
                b"flood",
            ),
        }
        .encode()
        .unwrap();
        for _ in 0..per_socket {
            f.ws.feed(Message::binary(ephemeral.clone())).await.unwrap();
        }
        f.ws.flush().await.unwrap();
        flooders.push(f);
    }
    still_served(&mut a, &mut b, b"during the flood").await;
    let mut room_refusals = 0;
    for f in &mut flooders {
        for frame in drain_frames(&mut f.ws, Duration::from_millis(500)).await {
            match frame {
                RelayFrame::Error {
                    code: RelayErrorCode::RateLimited,
                    fatal: false,
                    message,
                } => {
                    assert!(
                        message.contains("this room's sockets together"),
                        "{message}"
                    );
                    room_refusals += 1;
                }
                RelayFrame::Presence { .. } | RelayFrame::Event { .. } => {}
                other => panic!("a flooder got {other:?}"),
            }
        }
    }
    assert!(room_refusals > 0, "the room's budget refused nothing");
    // Nobody was closed: every flooder still publishes once the budget refills.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for f in &mut flooders {
        let envelope = f.seal(EnvelopeKind::Event, b"after the flood");
        assert!(matches!(
            f.publish_patiently(&envelope).await,
            RelayFrame::Ack { .. }
        ));
    }
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn one_address_holds_a_bounded_number_of_sockets_in_a_room() {
    let base = relay();
    let cap = required_u64("SEALSYNC_RELAY_PER_ADDRESS");
    let (room, keys) = fresh_room("peraddr");
    let mut held = Vec::new();
    for _ in 0..cap {
        let mut p =
            Peer::with_socket(open_socket_from(&base, &room, "192.0.2.10").await, &keys).await;
        p.hello(0).await;
        held.push(p);
    }
    let mut refused = open_socket_from(&base, &room, "192.0.2.10").await;
    let (frames, code) = close_of(&mut refused).await;
    assert_eq!(code, 4029);
    assert!(matches!(
        &frames[..],
        [RelayFrame::Error { code: RelayErrorCode::RoomFull, fatal: true, message }]
            if message.contains("address")
    ));
    // A member elsewhere joins and is served.
    let mut other =
        Peer::with_socket(open_socket_from(&base, &room, "192.0.2.11").await, &keys).await;
    other.hello(0).await;
    still_served(&mut held[0], &mut other, b"from another address").await;
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn wrong_keys_from_one_address_are_slowed_and_then_say_nothing_while_members_join() {
    let (base, room, keys) = setup("guess");
    let mut a = Peer::member(&base, &room, &keys).await;
    a.publish(b"the room exists").await;
    let guesser = "198.51.100.66";
    let mut wrong = 0;
    let answer = loop {
        let mut g = Peer::with_socket(
            open_socket_from(&base, &room, guesser).await,
            &room_keys(&room),
        )
        .await;
        let hello = g.hello_frame(0);
        g.send(&hello).await;
        match g.recv().await {
            RelayFrame::Error {
                code: RelayErrorCode::WrongVerifier,
                ..
            } => wrong += 1,
            other => break other,
        }
        assert!(
            wrong <= 10,
            "more than WRONG_KEY_BURST wrong keys were compared"
        );
    };
    assert_eq!(wrong, 10, "the burst (WRONG_KEY_BURST) is compared");
    assert!(matches!(
        answer,
        RelayFrame::Error {
            code: RelayErrorCode::RateLimited,
            fatal: false,
            ..
        }
    ));
    // The right key from that address gets the same answer while it waits.
    let mut right = Peer::with_socket(open_socket_from(&base, &room, guesser).await, &keys).await;
    let hello = right.hello_frame(0);
    right.send(&hello).await;
    assert!(matches!(
        right.recv().await,
        RelayFrame::Error {
            code: RelayErrorCode::RateLimited,
            fatal: false,
            ..
        }
    ));
    // A member at another address joins at once, and the room serves it.
    let mut b =
        Peer::with_socket(open_socket_from(&base, &room, "198.51.100.67").await, &keys).await;
    b.hello(0).await;
    still_served(&mut a, &mut b, b"while someone guesses").await;
    // A second later the address may try again: the right key joins on the same socket.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let w = right.hello(0).await;
    assert_eq!(w.verifier_state, VerifierState::Matched);
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn a_room_nobody_wrote_to_is_gone_when_its_last_socket_leaves() {
    let base = relay();
    let room = unique_room("squat");
    // A stranger claims the id with its own key and leaves without writing.
    let squatter = room_keys(&room);
    let mut s = Peer::connect(&base, &room, &squatter).await;
    assert_eq!(s.hello(0).await.verifier_state, VerifierState::Created);
    s.ws.close(None).await.unwrap();
    let _ = drain_frames(&mut s.ws, Duration::from_millis(200)).await;
    drop(s);
    // The real members' key creates the room afresh (the close may take a moment to reach
    // the room: until then the squatter's key is still there).
    let keys = room_keys(&room);
    let started = Instant::now();
    loop {
        let mut m = Peer::connect(&base, &room, &keys).await;
        let hello = m.hello_frame(0);
        m.send(&hello).await;
        match m.recv().await {
            RelayFrame::Welcome { verifier_state, .. } => {
                assert_eq!(verifier_state, VerifierState::Created);
                break;
            }
            RelayFrame::Error {
                code: RelayErrorCode::WrongVerifier,
                ..
            } => assert!(
                started.elapsed() < WAIT,
                "the squatter's key outlived its socket"
            ),
            other => panic!("expected WELCOME, got {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn room_ids_with_invisible_characters_are_refused() {
    let base = relay();
    // Right-to-left override, zero-width space, percent-encoded in the path.
    for id in ["team%E2%80%AE42", "team%E2%80%8B42"] {
        let (status, body) = http_get(&base, &format!("/room/{id}/presence"), &[]).await;
        assert_eq!(status, 400, "{id}: {body}");
        assert!(body.contains("invisible"), "{id}: {body}");
    }
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn auth_a_ban_outlives_every_socket_of_a_room_with_no_history() {
    let base = relay();
    let notify_token = service_token();
    let (room, keys) = fresh_room("acme:banned");
    let owner_token = token("olga", "acme", Some(&room), Some("owner"), false);
    let guest_token = token("gus", "acme", Some(&room), None, true);
    let (mut owner, _) = Peer::join_with_token(&base, &room, &owner_token, &keys).await;
    let ban = serde_json::json!({"room": room, "kind": "ban", "user": "gus"});
    assert_eq!(notify(&base, &notify_token, &ban).await.0, 200);
    // The last socket leaves a room that stores no event: the room is deleted, not the ban.
    owner.ws.close(None).await.unwrap();
    let _ = drain_frames(&mut owner.ws, Duration::from_millis(500)).await;
    drop(owner);
    let mut again = connect_with_token(&base, &room, Some(&guest_token))
        .await
        .unwrap();
    let code = loop {
        match tokio::time::timeout(WAIT, again.next()).await.unwrap() {
            Some(Ok(Message::Close(Some(c)))) => break u16::from(c.code),
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(code, 4010, "the banned user came back");
}

// ------------------------------------------------------- backend push, operators (issue 15)

/// The service token's header pair, for the internal endpoints.
fn service_headers(token: &(String, String)) -> [(&str, &str); 2] {
    [
        ("Sealsync-Service-Id", token.0.as_str()),
        ("Sealsync-Service-Secret", token.1.as_str()),
    ]
}

/// `GET /internal/rooms/<room>/stats` with the service token: (status, JSON).
async fn stats(base: &str, token: &(String, String), room: &str) -> (u16, serde_json::Value) {
    let path = format!("/internal/rooms/{}/stats", room.replace(':', "%3A"));
    let (status, body) = http_get(base, &path, &service_headers(token)).await;
    (status, serde_json::from_str(&body).unwrap_or_default())
}

/// The `error` member of a JSON error answer.
fn json_error(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body)
        .unwrap_or_else(|_| panic!("the error answer is not JSON: {body}"));
    v["error"].as_str().unwrap().to_owned()
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn notify_types_and_bad_requests_get_json_errors() {
    let base = relay();
    let token = service_token();
    let (room, keys) = fresh_room("typed");
    let mut a = Peer::member(&base, &room, &keys).await;
    // Without NOTIFY_TYPES any type is accepted; the client gets it with the data.
    let typed = serde_json::json!({
        "room": room, "kind": "broadcast", "type": "todo.assigned", "data": {"id": 7}
    });
    assert_eq!(
        notify(&base, &token, &typed).await,
        (200, r#"{"delivered":1}"#.into())
    );
    assert_eq!(
        a.recv_data().await,
        RelayFrame::Notify {
            json: r#"{"data":{"id":7},"type":"todo.assigned"}"#.into()
        }
    );
    for (bad, why) in [
        (
            serde_json::json!({"room": room, "kind": "ban", "user": "a", "users": ["b"]}),
            "not both",
        ),
        (
            serde_json::json!({"org": "acme", "kind": "broadcast", "data": 1}),
            "AUTH_MODE",
        ),
        (
            serde_json::json!({"room": room, "kind": "broadcast", "data": 1, "type": "no spaces"}),
            "type",
        ),
        (
            serde_json::json!({"room": room, "kind": "unban"}),
            "needs a user",
        ),
    ] {
        let (status, body) = notify(&base, &token, &bad).await;
        assert_eq!(status, 400, "{bad}");
        assert!(json_error(&body).contains(why), "{bad}: {body}");
    }
    let wrong = (token.0.clone(), "wrong-secret-wrong-secret".to_owned());
    let (status, body) = notify(&base, &wrong, &typed).await;
    assert_eq!(status, 401);
    assert!(json_error(&body).contains("service token"));
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn stats_report_what_a_room_stores_to_the_service_token_only() {
    let base = relay();
    let token = service_token();
    let (room, keys) = fresh_room("stats");
    // A room nobody joined stores nothing (and asking does not create it).
    let (status, empty) = stats(&base, &token, &room).await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            &empty["head_seq"],
            &empty["stored_events"],
            &empty["stored_bytes"],
            &empty["sockets"]
        ),
        (&0.into(), &0.into(), &0.into(), &0.into())
    );
    let mut a = Peer::member(&base, &room, &keys).await;
    let (first, _) = a.publish(b"one").await;
    let (second, _) = a.publish(b"two").await;
    let (status, s) = stats(&base, &token, &room).await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["room"], room.as_str());
    assert_eq!(s["head_seq"], 2);
    assert_eq!(s["stored_events"], 2);
    let bytes = (first.len() + second.len()) as u64;
    assert_eq!(s["event_bytes"], bytes);
    assert_eq!(s["stored_bytes"], bytes);
    assert_eq!(
        (&s["snapshot_seq"], &s["snapshot_bytes"]),
        (&0.into(), &0.into())
    );
    assert_eq!(
        (&s["sockets"], &s["joined"], &s["banned"]),
        (&1.into(), &1.into(), &0.into())
    );
    assert!(s["database_bytes"].as_u64().unwrap() > 0);
    // The service token is required, as for notify.
    let path = format!("/internal/rooms/{room}/stats");
    let (status, body) = http_get(&base, &path, &[]).await;
    assert_eq!(status, 401);
    assert!(json_error(&body).contains("service token"));
    let (status, body) = http(&base, "POST", &path, &service_headers(&token), "").await;
    assert_eq!(status, 405);
    assert!(json_error(&body).contains("method"));
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn auth_notify_reaches_several_users_in_one_call() {
    let base = relay();
    let notify_token = service_token();
    let (room, keys) = fresh_room("acme:many-users");
    let mut peers = Vec::new();
    for user in ["ann", "ben", "cat"] {
        let t = token(user, "acme", Some(&room), None, false);
        peers.push(Peer::join_with_token(&base, &room, &t, &keys).await.0);
    }
    let direct = serde_json::json!({
        "room": room, "kind": "direct", "users": ["ann", "cat", "nobody"], "data": {"n": 1}
    });
    assert_eq!(
        notify(&base, &notify_token, &direct).await,
        (200, r#"{"delivered":2}"#.into())
    );
    for i in [0, 2] {
        assert_eq!(
            peers[i].recv_data().await,
            RelayFrame::Notify {
                json: r#"{"n":1}"#.into()
            }
        );
    }
    // ben heard nothing: the next thing he gets is a broadcast.
    let all = serde_json::json!({"room": room, "kind": "broadcast", "data": "all"});
    assert_eq!(notify(&base, &notify_token, &all).await.0, 200);
    assert_eq!(
        peers[1].recv_data().await,
        RelayFrame::Notify {
            json: r#""all""#.into()
        }
    );
    // role for two users at once: each gets ACCESS, then the notice.
    let role = serde_json::json!({
        "room": room, "kind": "role", "users": ["ann", "ben"], "role": "viewer"
    });
    assert_eq!(
        notify(&base, &notify_token, &role).await,
        (200, r#"{"delivered":2}"#.into())
    );
    for i in [0, 1] {
        let mut got = Vec::new();
        while got.len() < 2 {
            match peers[i].recv_data().await {
                RelayFrame::Notify { json } if json == r#""all""# => {}
                frame => got.push(frame),
            }
        }
        assert_eq!(
            got[0],
            RelayFrame::Access {
                access: Access::ReadOnly
            }
        );
    }
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn auth_deny_turns_a_guest_away_without_a_ban_and_unban_lets_a_user_back() {
    let base = relay();
    let notify_token = service_token();
    let (room, keys) = fresh_room("acme:deny");
    let owner_token = token("olga", "acme", Some(&room), Some("owner"), false);
    let guest_token = token("gus", "acme", Some(&room), None, true);
    let (mut owner, _) = Peer::join_with_token(&base, &room, &owner_token, &keys).await;
    let (mut guest, welcome) = Peer::join_with_token(&base, &room, &guest_token, &keys).await;
    assert_eq!(welcome.access, Access::Pending);
    // deny reaches only pending sockets: olga (a member) is not closed.
    let deny = serde_json::json!({"room": room, "kind": "deny", "users": ["gus", "olga"]});
    assert_eq!(
        notify(&base, &notify_token, &deny).await,
        (200, r#"{"delivered":1}"#.into())
    );
    let (frames, code) = guest.recv_close().await;
    assert_eq!(code, 4003);
    assert!(has_error(&frames, RelayErrorCode::Forbidden, true));
    // The guest's join (2) and knock, then its leaving (1).
    assert_eq!(owner.recv().await, RelayFrame::Presence { count: 2 });
    assert_eq!(owner.recv().await, knock_of("gus"));
    assert_eq!(owner.recv().await, RelayFrame::Presence { count: 1 });
    // Not banned: the guest may ask again, and waits as a pending guest.
    let (_guest, welcome) = Peer::join_with_token(&base, &room, &guest_token, &keys).await;
    assert_eq!(welcome.access, Access::Pending);

    // ban, then unban: the user is refused, then comes back.
    let ban = serde_json::json!({"room": room, "kind": "ban", "user": "bea"});
    assert_eq!(notify(&base, &notify_token, &ban).await.0, 200);
    let bea = token("bea", "acme", Some(&room), None, false);
    let mut refused = connect_with_token(&base, &room, Some(&bea)).await.unwrap();
    assert_eq!(close_of(&mut refused).await.1, 4010);
    let (status, s) = stats(&base, &notify_token, &room).await;
    assert_eq!((status, &s["banned"]), (200, &1.into()));
    let unban = serde_json::json!({"room": room, "kind": "unban", "user": "bea"});
    assert_eq!(
        notify(&base, &notify_token, &unban).await,
        (200, r#"{"delivered":0}"#.into())
    );
    let (_bea, welcome) = Peer::join_with_token(&base, &room, &bea, &keys).await;
    assert_eq!(welcome.access, Access::Write);
    assert_eq!(stats(&base, &notify_token, &room).await.1["banned"], 0);
}

/// An org-wide push: (status, JSON summary).
async fn org_push(
    base: &str,
    token: &(String, String),
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let (status, body) = notify(base, token, body).await;
    (status, serde_json::from_str(&body).unwrap_or_default())
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn auth_org_broadcast_reaches_every_live_room_of_the_org_and_no_other() {
    let base = relay();
    let notify_token = service_token();
    let org = unique_room("org");
    let other_org = unique_room("other");
    let (room_a, room_b, room_x) = (
        format!("{org}:a"),
        format!("{org}:b"),
        format!("{other_org}:a"),
    );
    let mut peers = Vec::new();
    for (room, org) in [(&room_a, &org), (&room_b, &org), (&room_x, &other_org)] {
        let keys = room_keys(room);
        let t = token("ann", org, None, None, false);
        peers.push(Peer::join_with_token(&base, room, &t, &keys).await.0);
    }
    let push = serde_json::json!({
        "org": org, "kind": "broadcast", "type": "org.notice", "data": {"hello": "org"}
    });
    let (status, summary) = org_push(&base, &notify_token, &push).await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(
        summary,
        serde_json::json!({
            "rooms": 2, "delivered": 2, "failed": 0, "dropped": 0, "directory_full": false
        })
    );
    for p in &mut peers[..2] {
        assert_eq!(
            p.recv_data().await,
            RelayFrame::Notify {
                json: r#"{"data":{"hello":"org"},"type":"org.notice"}"#.into()
            }
        );
    }
    // The other org's room heard nothing: its next frame is its own org's push.
    let other = serde_json::json!({"org": other_org, "kind": "broadcast", "data": "mine"});
    assert_eq!(
        org_push(&base, &notify_token, &other).await.1["delivered"],
        1
    );
    assert_eq!(
        peers[2].recv_data().await,
        RelayFrame::Notify {
            json: r#""mine""#.into()
        }
    );
    // Sockets may not push: a room path for the internal endpoint is not a route.
    let t = token("ann", &org, None, None, false);
    let (status, body) = http(
        &base,
        "POST",
        "/internal/org/notify",
        &[("Authorization", &format!("Bearer {t}"))],
        &push.to_string(),
    )
    .await;
    assert_eq!((status, json_error(&body)), (404, "not found".to_owned()));
    // The last socket of room b leaves: the room drops out of the directory.
    let mut b = peers.remove(1);
    b.ws.close(None).await.unwrap();
    let _ = drain_frames(&mut b.ws, Duration::from_millis(500)).await;
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, summary) = org_push(&base, &notify_token, &push).await;
        assert_eq!(status, 200);
        if summary["rooms"] == 1 {
            assert_eq!(summary["delivered"], 1);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "room b is still listed: {summary}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A token for `room` signed with the PEM private key `name` of `tests/fixtures/pem`
/// (`ed25519`, `es256`, `rs256`; relay/tests/run.sh configures the public keys).
fn pem_token(name: &str, alg: &str, user: &str, room: &str) -> String {
    let claims = sealsync_relay::auth::Claims {
        sub: user.into(),
        org: room.split_once(':').unwrap().0.into(),
        room: Some(room.into()),
        exp: now_s() + 600,
        nbf: None,
        role: None,
        guest: false,
    };
    pem::pem_token(name, alg, &claims)
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn auth_pem_keys_verify_tokens_of_each_algorithm() {
    let base = relay();
    // The raw Ed25519 key of the same JWT_PUBLIC_KEYS still works beside the PEM ones.
    let room = unique_room("acme:pem");
    let raw = token("raw", "acme", Some(&room), None, false);
    let keys = room_keys(&room);
    let (_raw, _) = Peer::join_with_token(&base, &room, &raw, &keys).await;
    for (name, alg) in [("ed25519", "EdDSA"), ("es256", "ES256"), ("rs256", "RS256")] {
        let t = pem_token(name, alg, name, &room);
        let (_peer, welcome) = Peer::join_with_token(&base, &room, &t, &keys).await;
        assert_eq!(welcome.access, Access::Write, "{alg}");
        // The token's header says another algorithm: no key verifies it.
        let (h, rest) = t.split_once('.').unwrap();
        let other = if alg == "RS256" { "ES256" } else { "RS256" };
        let swapped = format!(r#"{{"alg":"{other}","typ":"JWT"}}"#);
        let lie = format!(
            "{}.{rest}",
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, swapped)
        );
        assert_ne!(h, lie.split('.').next().unwrap());
        assert_eq!(
            connect_with_token(&base, &room, Some(&lie)).await.err(),
            Some(403),
            "{alg}"
        );
    }
}

/// The types of `NOTIFY_TYPES` in the typed phase of relay/tests/run.sh.
fn notify_types() -> Vec<String> {
    required("SEALSYNC_RELAY_NOTIFY_TYPES")
        .split(',')
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn typed_only_allowed_types_are_pushed_and_reach_clients_with_their_type() {
    let base = relay();
    let notify_token = service_token();
    let allowed = notify_types();
    let (room, keys) = fresh_room("acme:typed");
    let t = token("ann", "acme", Some(&room), None, false);
    let (mut ann, _) = Peer::join_with_token(&base, &room, &t, &keys).await;
    let push = serde_json::json!({
        "room": room, "kind": "direct", "user": "ann", "type": allowed[0], "data": {"todo": 3}
    });
    assert_eq!(
        notify(&base, &notify_token, &push).await,
        (200, r#"{"delivered":1}"#.into())
    );
    assert_eq!(
        ann.recv_data().await,
        RelayFrame::Notify {
            json: format!(r#"{{"data":{{"todo":3}},"type":"{}"}}"#, allowed[0])
        }
    );
    let mut other = push.clone();
    other["type"] = "todo.deleted".into();
    let (status, body) = notify(&base, &notify_token, &other).await;
    assert_eq!(status, 400);
    assert!(json_error(&body).contains("not allowed"), "{body}");
    let mut untyped = push.clone();
    untyped.as_object_mut().unwrap().remove("type");
    let (status, body) = notify(&base, &notify_token, &untyped).await;
    assert_eq!(status, 400);
    assert!(json_error(&body).contains("needs a type"), "{body}");
    // Side effects need no type; an org-wide push is checked the same way.
    let role = serde_json::json!({"room": room, "kind": "role", "user": "ann", "role": "editor"});
    assert_eq!(notify(&base, &notify_token, &role).await.0, 200);
    let org = serde_json::json!({"org": "acme", "kind": "broadcast", "type": "nope", "data": 1});
    assert_eq!(notify(&base, &notify_token, &org).await.0, 400);
}

/// `ROTATE` from `peer` to `next` (at its epoch), signed by `by` over the peer's challenge,
/// with a snapshot sealed under `next`.
fn rotate_frame(peer: &Peer, by: &RoomKeys, next: &RoomKeys, upto_seq: u64) -> ClientFrame {
    let hlc = Hlc {
        wall: 0,
        counter: 0,
        device: sealsync_core::DeviceId(random()),
    };
    let envelope = SessionSealer::new(next, SessionId(random()))
        .seal(
            EnvelopeKind::Snapshot,
            ChannelTag([0; 16]),
            hlc,
            b"{}",
            random(),
        )
        .unwrap();
    let new_key = next.member_key();
    ClientFrame::Rotate {
        key_epoch: next.epoch(),
        member_key: new_key,
        proof: by.prove_rotation(&peer.challenge, next.epoch(), &new_key),
        upto_seq,
        envelope,
    }
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn a_rotation_refuses_the_old_key_and_old_epoch_writes_and_keeps_no_old_event() {
    let (base, room, old) = setup("rotate");
    let mut next = room_keys(&room);
    next.set_epoch(1);
    let mut a = Peer::member(&base, &room, &old).await;
    let mut b = Peer::member(&base, &room, &old).await;
    for _ in 0..3 {
        a.publish(b"before").await;
    }
    let rotate = rotate_frame(&a, &old, &next, 3);
    let ClientFrame::Rotate { envelope: snap, .. } = &rotate else {
        unreachable!()
    };
    let snap = snap.clone();
    a.send(&rotate).await;
    assert_eq!(a.recv_data().await, RelayFrame::KeyEpoch { key_epoch: 1 });
    assert_eq!(a.recv_data().await, RelayFrame::SnapshotStored { seq: 3 });
    let (frames, code) = b.recv_close().await;
    assert_eq!(code, 4005, "{frames:?}");
    assert!(frames.iter().any(|f| matches!(
        f,
        RelayFrame::Error {
            code: RelayErrorCode::Rotated,
            fatal: true,
            ..
        }
    )));

    // The old key no longer joins.
    let mut c = Peer::connect(&base, &room, &old).await;
    let hello = c.hello_frame(0);
    c.send(&hello).await;
    assert_eq!(c.recv_close().await.1, 4001);

    // The new key joins, hears the epoch first, and reads the rotation's snapshot and no
    // event of the old epoch.
    let mut d = Peer::connect(&base, &room, &next).await;
    let w = d.hello(0).await;
    assert_eq!((w.head_seq, w.snapshot_seq), (3, 3));
    assert_eq!(
        w.catch_up,
        [
            RelayFrame::KeyEpoch { key_epoch: 1 },
            RelayFrame::Snapshot {
                seq: 3,
                envelope: snap.clone()
            }
        ]
    );
    // A write sealed under the old epoch is refused; under the new one it is stored.
    let hlc = Hlc {
        wall: 1,
        counter: 0,
        device: sealsync_core::DeviceId(random()),
    };
    let stale = SessionSealer::new(&old, SessionId(random()))
        .seal(EnvelopeKind::Event, d.channel, hlc, b"old epoch", random())
        .unwrap();
    d.send(&ClientFrame::Publish { envelope: stale }).await;
    assert!(matches!(
        d.recv_data().await,
        RelayFrame::Refused {
            code: RelayErrorCode::Rotated,
            ..
        }
    ));
    let (_, seq) = d.publish(b"after").await;
    assert_eq!(seq, 4);
    assert!(matches!(
        a.recv_data().await,
        RelayFrame::Event { seq: 4, .. }
    ));
    let mut e = Peer::connect(&base, &room, &next).await;
    let w = e.hello(0).await;
    assert_eq!(w.catch_up.len(), 3, "{:?}", w.catch_up);
    assert!(matches!(w.catch_up[1], RelayFrame::Snapshot { seq: 3, .. }));
    assert_eq!(event_seq(&w.catch_up[2]), 4);
}

#[tokio::test]
#[ignore = "needs the relay under wrangler dev: relay/tests/run.sh runs it"]
async fn a_rotation_without_the_current_keys_proof_is_refused_and_the_room_keeps_its_key() {
    let (base, room, old) = setup("rotate-refused");
    let mut next = room_keys(&room);
    next.set_epoch(1);
    let mut a = Peer::member(&base, &room, &old).await;
    a.publish(b"kept").await;
    // Signed by the new key, not the room's: closed as for a HELLO that proves nothing.
    let forged = rotate_frame(&a, &next, &next, 1);
    a.send(&forged).await;
    let (frames, code) = a.recv_close().await;
    assert_eq!(code, 4001, "{frames:?}");
    // The room kept its key and history; a rotation from behind the head is refused.
    let mut b = Peer::connect(&base, &room, &old).await;
    let w = b.hello(0).await;
    assert_eq!(w.head_seq, 1);
    assert!(!w
        .catch_up
        .iter()
        .any(|f| matches!(f, RelayFrame::KeyEpoch { .. })));
    let behind = rotate_frame(&b, &old, &next, 0);
    b.send(&behind).await;
    assert!(matches!(
        b.recv_data().await,
        RelayFrame::Error {
            code: RelayErrorCode::NotCaughtUp,
            fatal: false,
            ..
        }
    ));
    let (_, seq) = b.publish(b"still writing").await;
    assert_eq!(seq, 2);
}
