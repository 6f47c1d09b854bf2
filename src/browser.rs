//! Page-level signals: `online`/`offline` on the window, `visibilitychange` on the document.

use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use web_sys::{Event, EventTarget};

/// One event listener, removed when dropped.
pub(crate) struct Hook {
    target: EventTarget,
    event: &'static str,
    callback: Closure<dyn FnMut(Event)>,
}

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hook").field("event", &self.event).finish()
    }
}

impl Hook {
    /// Listens for `event` on `target`; `None` when the browser refused the listener.
    pub(crate) fn listen(
        target: &EventTarget,
        event: &'static str,
        on_event: impl FnMut(Event) + 'static,
    ) -> Option<Self> {
        let callback = Closure::<dyn FnMut(Event)>::new(on_event);
        target
            .add_event_listener_with_callback(event, callback.as_ref().unchecked_ref())
            .ok()?;
        Some(Self {
            target: target.clone(),
            event,
            callback,
        })
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        let _ = self.target.remove_event_listener_with_callback(
            self.event,
            self.callback.as_ref().unchecked_ref(),
        );
    }
}

/// `navigator.onLine`, `true` where unknown.
pub(crate) fn is_online() -> bool {
    web_sys::window().is_none_or(|w| w.navigator().on_line())
}

/// Whether the page is visible (`true` outside a document).
pub(crate) fn is_visible() -> bool {
    web_sys::window()
        .and_then(|w| w.document())
        .is_none_or(|d| d.visibility_state() == web_sys::VisibilityState::Visible)
}

/// The window and its document as event targets, when there is a window.
pub(crate) fn targets() -> Option<(EventTarget, EventTarget)> {
    let window = web_sys::window()?;
    let document = window.document()?;
    Some((window.into(), document.into()))
}

/// `location.href` without its fragment, the default base of share links.
pub(crate) fn page_base() -> Option<String> {
    let href = web_sys::window()?.location().href().ok()?;
    Some(href.split('#').next().unwrap_or_default().to_owned())
}

/// `navigator.storage.persist()`, awaited; the browser's answer is its own to give (it may
/// say no, e.g. for a site that is not installed or bookmarked) and is not reported. Does
/// nothing where there is no `navigator.storage`.
pub(crate) async fn request_persistence() {
    let storage = js_sys::Reflect::get(&js_sys::global(), &"navigator".into())
        .and_then(|n| js_sys::Reflect::get(&n, &"storage".into()));
    let Ok(storage) = storage else { return };
    let persist = js_sys::Reflect::get(&storage, &"persist".into())
        .ok()
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok());
    if let Some(persist) = persist {
        if let Ok(promise) = persist.call0(&storage) {
            let _ = wasm_bindgen_futures::JsFuture::from(js_sys::Promise::resolve(&promise)).await;
        }
    }
}
