//! Opening a connection ([`sealsync_core::client::Output::Connect`]): the token for this
//! attempt (a string, or the application's function, maybe async), then the socket; and
//! the presence probe after a handshake failure
//! ([`sealsync_core::client::Output::Probe`], the HTTP request in [`crate::refusal`]).

use std::rc::Rc;

use js_sys::Function;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::{spawn_local, JsFuture};

use crate::driver::{feed, on_socket, pump};
use crate::env::now;
use crate::error;
use crate::shared::{drop_later, Shared};
use crate::socket::Socket;

pub(crate) fn connect(shared: &Rc<Shared>) {
    let (url, token, attempt) = {
        let mut inner = shared.inner.borrow_mut();
        inner.attempt += 1;
        (inner.socket_url.clone(), inner.token.clone(), inner.attempt)
    };
    let Some(token) = token else {
        open_socket(shared, &url, None);
        return;
    };
    if let Some(token) = token.as_string() {
        open_socket(shared, &url, Some(&token));
        return;
    }
    // A token function: ask it for a fresh token for this attempt (it may be async).
    let weak = Rc::downgrade(shared);
    spawn_local(async move {
        let fetched = fetch_token(&token).await;
        let Some(shared) = weak.upgrade() else { return };
        {
            let inner = shared.inner.borrow();
            if inner.left || inner.attempt != attempt {
                return; // the client gave up on this attempt meanwhile
            }
        }
        match fetched {
            Ok(token) => open_socket(&shared, &url, Some(&token)),
            Err(message) => {
                shared.warn(error::TOKEN_FAILED, &message);
                if let Ok(mut inner) = shared.inner.try_borrow_mut() {
                    inner.client.handle_connect_failed(now());
                }
            }
        }
        pump(&shared);
    });
}

/// Calls the application's token function and awaits its result.
async fn fetch_token(function: &JsValue) -> Result<String, String> {
    let Some(function) = function.dyn_ref::<Function>() else {
        return Err(String::from(
            "options.token is neither a string nor a function",
        ));
    };
    let mut value = function
        .call0(&JsValue::UNDEFINED)
        .map_err(|e| format!("the token function threw: {}", error::describe(&e)))?;
    if let Some(promise) = value.dyn_ref::<js_sys::Promise>() {
        value = JsFuture::from(promise.clone())
            .await
            .map_err(|e| format!("the token function rejected: {}", error::describe(&e)))?;
    }
    value.as_string().filter(|t| !t.is_empty()).ok_or_else(|| {
        String::from("the token function returned no token (expected a non-empty string)")
    })
}

fn open_socket(shared: &Rc<Shared>, url: &str, token: Option<&str>) {
    let weak = Rc::downgrade(shared);
    match Socket::open(url, token, move |event| on_socket(&weak, event)) {
        Ok(socket) => {
            let old = {
                let mut inner = shared.inner.borrow_mut();
                inner.attempt_token = token.map(str::to_owned);
                inner.socket.replace(socket)
            };
            if let Some(old) = old {
                old.detach();
                drop_later(old);
            }
        }
        Err(e) => {
            shared.warn(
                error::BROWSER_API,
                &format!(
                    "could not open a WebSocket to {url}: {}",
                    error::describe(&e)
                ),
            );
            // As if the connection had failed: the client backs off.
            if let Ok(mut inner) = shared.inner.try_borrow_mut() {
                inner.client.handle_connect_failed(now());
            }
        }
    }
}

/// Asks the relay's presence address, with the token the failed socket offered, whether it
/// refuses this client, and reports the answer to the client.
pub(crate) fn probe(shared: &Rc<Shared>) {
    let (url, token) = {
        let mut inner = shared.inner.borrow_mut();
        (inner.presence_url.clone(), inner.attempt_token.take())
    };
    let weak = Rc::downgrade(shared);
    spawn_local(async move {
        let refused = crate::refusal::refusal(&url, token.as_deref()).await;
        feed(&weak, |c| c.handle_probe(now(), refused.as_deref()));
    });
}
