//! The one WebSocket to the relay (`web_sys::WebSocket`, `binaryType = "arraybuffer"`).

use js_sys::{ArrayBuffer, Uint8Array};
use sealsync_core::wire::{AUTH_SUBPROTOCOL_PREFIX, SUBPROTOCOL};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{BinaryType, CloseEvent, Event, MessageEvent, WebSocket};

/// What the socket reports to the room.
#[derive(Debug)]
pub(crate) enum SocketEvent {
    /// The connection is open.
    Opened,
    /// A binary message (a protocol frame).
    Frame(Vec<u8>),
    /// A text message (the heartbeat answer, `pong`).
    Text(String),
    /// The connection closed (or failed to open) with this close code.
    Closed(u16),
}

/// An open or opening WebSocket with its handlers attached. Dropping it detaches the
/// handlers (no event arrives afterwards) and closes the connection.
pub(crate) struct Socket {
    ws: WebSocket,
    _on_open: Closure<dyn FnMut(Event)>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("url", &self.ws.url())
            .field("ready_state", &self.ws.ready_state())
            .finish()
    }
}

impl Socket {
    /// Opens a WebSocket to `url`, offering the subprotocol [`SUBPROTOCOL`] and, with a
    /// `token`, `sealsync.auth.<token>` ([`AUTH_SUBPROTOCOL_PREFIX`]; browsers cannot set
    /// other headers on a WebSocket; the relay echoes only [`SUBPROTOCOL`]); `on_event` receives every [`SocketEvent`] until the socket
    /// is dropped.
    ///
    /// # Errors
    /// The exception the `WebSocket` constructor threw (a malformed URL, or a blocked port).
    pub(crate) fn open(
        url: &str,
        token: Option<&str>,
        on_event: impl Fn(SocketEvent) + 'static,
    ) -> Result<Self, JsValue> {
        let protocols = js_sys::Array::of1(&JsValue::from_str(SUBPROTOCOL));
        if let Some(token) = token {
            protocols.push(&JsValue::from_str(&format!(
                "{AUTH_SUBPROTOCOL_PREFIX}{token}"
            )));
        }
        let ws = WebSocket::new_with_str_sequence(url, &protocols)?;
        ws.set_binary_type(BinaryType::Arraybuffer);
        let on_event = std::rc::Rc::new(on_event);

        let emit = on_event.clone();
        let on_open = Closure::<dyn FnMut(Event)>::new(move |_: Event| emit(SocketEvent::Opened));

        let emit = on_event.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            let data = e.data();
            if let Some(buf) = data.dyn_ref::<ArrayBuffer>() {
                emit(SocketEvent::Frame(Uint8Array::new(buf).to_vec()));
            } else if let Some(text) = data.as_string() {
                emit(SocketEvent::Text(text));
            }
            // A Blob cannot arrive: binaryType is "arraybuffer".
        });

        let emit = on_event;
        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |e: CloseEvent| {
            emit(SocketEvent::Closed(e.code()))
        });

        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        // `error` is always followed by `close`, which carries the code; nothing to do here.

        Ok(Self {
            ws,
            _on_open: on_open,
            _on_message: on_message,
            _on_close: on_close,
        })
    }

    /// Sends one binary frame.
    ///
    /// # Errors
    /// The exception `send` threw (the socket is not open).
    pub(crate) fn send(&self, frame: &[u8]) -> Result<(), JsValue> {
        self.ws.send_with_u8_array(frame)
    }

    /// Sends one text message (the heartbeat `ping`).
    ///
    /// # Errors
    /// The exception `send` threw (the socket is not open).
    pub(crate) fn send_text(&self, text: &str) -> Result<(), JsValue> {
        self.ws.send_with_str(text)
    }

    /// Starts the closing handshake with `code`. Browsers accept only 1000 and 3000–4999
    /// from scripts; any other code closes with 1000.
    pub(crate) fn close(&self, code: u16) {
        let allowed = code == 1000 || (3000..=4999).contains(&code);
        let result = if allowed {
            self.ws.close_with_code(code)
        } else {
            self.ws.close_with_code(1000)
        };
        if result.is_err() {
            // Closing an already closing socket cannot fail in current browsers; if one
            // refuses, dropping the socket below still detaches it.
            let _ = self.ws.close();
        }
    }
}

impl Socket {
    /// Detaches the handlers: no event of this socket reaches the room any more.
    pub(crate) fn detach(&self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.detach();
        if self.ws.ready_state() <= WebSocket::OPEN {
            let _ = self.ws.close_with_code(1000);
        }
    }
}
