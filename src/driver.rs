//! The run loop: feed one browser event to the core's `Client`, then carry out every
//! `Output` it asks for (see the calling order in `sealsync_core::client`), one at a time,
//! with no borrow of the state held while application listeners run (see
//! [`crate::shared`]).
//!
//! The other shell modules carry out what an output asks for: [`crate::connect`] opens
//! sockets and asks the presence probe, [`crate::persist`] writes the outbox,
//! [`crate::replica`] the local copy; [`crate::local`] feeds what the application calls.

use std::rc::{Rc, Weak};

use sealsync_core::client::{Client, ClientEvent, Output, Status};
use sealsync_core::merge::Change;
use sealsync_core::wire;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::spawn_local;

use crate::browser::{self, Hook};
use crate::env::{now, wall};
use crate::error;
use crate::events;
use crate::shared::{drop_later, Shared};
use crate::socket::SocketEvent;
use crate::timer::Timer;

/// Installs the timer and the page hooks, and starts connecting in a later task (after the
/// application has had the chance to subscribe to `status`).
pub(crate) fn start(shared: &Rc<Shared>) {
    let weak = Rc::downgrade(shared);
    let timer = Timer::new(move || on_timer(&weak));
    let mut hooks = Vec::new();
    if let Some((window, document)) = browser::targets() {
        let weak = Rc::downgrade(shared);
        hooks.extend(Hook::listen(&window, "online", move |_| {
            feed(&weak, |c| c.handle_online(now()))
        }));
        let weak = Rc::downgrade(shared);
        hooks.extend(Hook::listen(&window, "offline", move |_| {
            feed(&weak, |c| c.handle_offline(now()))
        }));
        let weak = Rc::downgrade(shared);
        hooks.extend(Hook::listen(&document, "visibilitychange", move |_| {
            // Back in front: timers may have been throttled while hidden, and the network
            // may be back. Both calls are harmless when nothing is due.
            if browser::is_visible() {
                feed(&weak, |c| {
                    c.handle_timer(now());
                    if browser::is_online() {
                        c.handle_online(now());
                    }
                });
            }
        }));
    }
    let mut inner = shared.inner.borrow_mut();
    inner.hooks = hooks;
    let mut timer = timer;
    let at = now();
    if let Err(e) = timer.arm(at, at) {
        // No setTimeout: the room cannot start; say so on the console (no listener yet).
        let message = format!("sealsync: setTimeout failed: {}", error::describe(&e));
        web_sys::console::error_1(&JsValue::from_str(&message));
    }
    inner.timer = Some(timer);
}

fn on_timer(weak: &Weak<Shared>) {
    let Some(shared) = weak.upgrade() else { return };
    let warnings = {
        let Ok(mut inner) = shared.inner.try_borrow_mut() else {
            return;
        };
        if inner.left {
            return;
        }
        if let Some(timer) = inner.timer.as_mut() {
            timer.fired();
        }
        let t = now();
        if inner.started {
            inner.client.handle_timer(t);
            Vec::new()
        } else {
            inner.started = true;
            inner.client.handle_start(t);
            if !browser::is_online() {
                inner.client.handle_offline(t);
            }
            std::mem::take(&mut inner.early_warnings)
        }
    };
    for (code, message) in warnings {
        shared.warn(&code, &message);
    }
    pump(&shared);
}

/// Feeds one input to the client (unless the room is gone or left), then drains outputs.
pub(crate) fn feed(weak: &Weak<Shared>, input: impl FnOnce(&mut Client)) {
    let Some(shared) = weak.upgrade() else { return };
    {
        let Ok(mut inner) = shared.inner.try_borrow_mut() else {
            return;
        };
        if inner.left || !inner.started {
            return;
        }
        input(&mut inner.client);
    }
    pump(&shared);
}

pub(crate) fn on_socket(weak: &Weak<Shared>, event: SocketEvent) {
    match event {
        SocketEvent::Opened => feed(weak, |c| c.handle_socket_opened(now())),
        SocketEvent::Frame(frame) => {
            if let Some(shared) = weak.upgrade() {
                shared.debug_frame("←", &sealsync_core::describe::relay_frame(&frame));
            }
            feed(weak, |c| c.handle_frame(now(), wall(), &frame));
        }
        SocketEvent::Text(text) => feed(weak, |c| c.handle_text(now(), &text)),
        SocketEvent::Closed(code) => {
            if let Some(shared) = weak.upgrade() {
                if let Ok(mut inner) = shared.inner.try_borrow_mut() {
                    if let Some(old) = inner.socket.take() {
                        old.detach();
                        drop_later(old);
                    }
                }
            }
            feed(weak, |c| c.handle_socket_closed(now(), code));
        }
    }
}

/// Carries out every pending output, one at a time, with no borrow held while listeners
/// run.
pub(crate) fn pump(shared: &Rc<Shared>) {
    loop {
        let output = match shared.inner.try_borrow_mut() {
            Ok(mut inner) => inner.client.poll(),
            // Only when called from inside a borrow, which the callers above never do; the
            // outer pump then drains the queue.
            Err(_) => return,
        };
        let Some(output) = output else { return };
        match output {
            Output::Connect => crate::connect::connect(shared),
            Output::Send(frame) => {
                shared.debug_frame("→", &sealsync_core::describe::client_frame(&frame));
                if let Some(socket) = shared.inner.borrow().socket.as_ref() {
                    // A failed send means the socket is closing; its close event follows
                    // and the client reconnects and resends from the outbox.
                    let _ = socket.send(&frame);
                }
            }
            Output::SendPing => {
                if let Some(socket) = shared.inner.borrow().socket.as_ref() {
                    let _ = socket.send_text(wire::HEARTBEAT_PING);
                }
            }
            Output::Close { code } => {
                let old = {
                    let mut inner = shared.inner.borrow_mut();
                    inner.attempt += 1;
                    inner.socket.take()
                };
                if let Some(old) = old {
                    old.detach();
                    old.close(code);
                    drop_later(old);
                }
            }
            Output::WakeAt(at) => {
                let mut inner = shared.inner.borrow_mut();
                if let Some(timer) = inner.timer.as_mut() {
                    if let Err(e) = timer.arm(now(), at) {
                        drop(inner);
                        shared.warn(
                            error::BROWSER_API,
                            &format!("setTimeout failed: {}", error::describe(&e)),
                        );
                    }
                }
            }
            Output::Event(event) => dispatch(shared, event),
            Output::OutboxChanged => {
                if let Ok(mut inner) = shared.inner.try_borrow_mut() {
                    inner.sync.changed();
                }
                crate::persist::schedule_save(shared);
            }
            Output::Keep(kept) => crate::replica::on_keep(shared, kept),
            Output::Probe => crate::connect::probe(shared),
            Output::ForgetOutboxes(sessions) => crate::persist::forget(shared, sessions),
        }
    }
}

fn dispatch(shared: &Rc<Shared>, event: ClientEvent) {
    match event {
        ClientEvent::Changes(changes) => emit_changes(shared, &changes),
        ClientEvent::Status(status) => {
            let mut live_again = false;
            if let Ok(mut inner) = shared.inner.try_borrow_mut() {
                inner.sync.status(&status);
                if status == Status::Live {
                    live_again = std::mem::replace(&mut inner.been_live, true);
                }
            }
            shared.emit("status", &events::status_to_js(&status));
            crate::sync::announce(shared);
            if live_again {
                // Tabs closed while this one was offline left their changes on disk.
                let weak = Rc::downgrade(shared);
                spawn_local(async move {
                    if let Some(shared) = weak.upgrade() {
                        crate::persist::adopt_ended(&shared, None).await;
                    }
                });
            }
        }
        ClientEvent::Pending(count) => {
            shared.emit(
                "pending",
                &JsValue::from(u32::try_from(count).unwrap_or(u32::MAX)),
            );
            crate::sync::announce(shared);
        }
        ClientEvent::Presence(count) => {
            if let Ok(mut inner) = shared.inner.try_borrow_mut() {
                inner.presence = Some(count);
            }
            shared.emit("presence", &JsValue::from(count));
        }
        ClientEvent::Members(list) => shared.emit("members", &events::to_js(&list)),
        ClientEvent::Notify(json) => shared.emit("notify", &events::notify_to_js(&json)),
        ClientEvent::Ephemeral { body } => {
            shared.emit("ephemeral", &events::ephemeral_to_js(&body))
        }
        ClientEvent::Warning { code, message } => shared.warn(&code, &message),
        ClientEvent::Rotated { .. } => crate::rekey::rotated(shared),
        ClientEvent::KeyHandedOver { secret, .. } => crate::rekey::handed_over(shared, secret.0),
        ClientEvent::RotationFailed { code, message } => {
            crate::rekey::failed(shared, &code, &message);
        }
        ClientEvent::Rejected { code, message, ops } => {
            if shared.listeners.borrow().of("rejected").is_empty() {
                let n = ops.len();
                let s = if n == 1 { "" } else { "s" };
                web_sys::console::warn_1(&JsValue::from_str(&format!(
                    "sealsync: {code}: {message} ({n} change{s} refused and rolled back)"
                )));
            } else {
                shared.emit("rejected", &events::rejected_to_js(&code, &message, &ops));
            }
        }
    }
}

pub(crate) fn emit_changes(shared: &Rc<Shared>, changes: &[Change]) {
    if let Ok(mut inner) = shared.inner.try_borrow_mut() {
        inner.saw_changes(changes);
    }
    for change in changes {
        // Built only for someone to hear it: a catch-up brings thousands of changes.
        let listeners = shared.listeners.borrow().of("change");
        if !listeners.is_empty() {
            events::call_all("change", &listeners, &events::change_to_js(change));
        }
    }
}

/// Leaves: staged changes are sealed (and sent while the socket is still open), the client
/// closes the socket and reports `closed`; then the timer, hooks and socket are released,
/// the outbox saved a last time and the session lock released (so a later tab may adopt
/// what is still unsent).
pub(crate) async fn leave(shared: &Rc<Shared>) {
    {
        let Ok(mut inner) = shared.inner.try_borrow_mut() else {
            return;
        };
        if inner.left {
            return;
        }
        let t = now();
        inner.client.handle_flush(t);
        inner.client.handle_leave(t);
    }
    pump(shared);
    // The replica first: its lock goes to another tab of the room once this one is done.
    crate::replica::finish(shared).await;
    let (store, lock, session, envelopes, leftovers) = {
        let mut inner = shared.inner.borrow_mut();
        inner.left = true;
        let leftovers = (
            inner.socket.take(),
            inner.timer.take(),
            std::mem::take(&mut inner.hooks),
        );
        if let Some(socket) = leftovers.0.as_ref() {
            socket.detach();
            socket.close(wire::CLOSE_NORMAL);
        }
        (
            inner.store.take(),
            inner.lock.take(),
            inner.session.clone(),
            inner.client.outbox_envelopes(),
            leftovers,
        )
    };
    drop_later(leftovers);
    if let Some(store) = store {
        if let Err(e) = store.save(&session, &envelopes, &[]).await {
            shared.warn(error::STORAGE_FAILED, &error::describe(&e));
        }
        store.close();
    }
    drop(lock);
}
