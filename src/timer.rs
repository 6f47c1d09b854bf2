//! One re-armable `setTimeout`, driven by the core's `Output::WakeAt`.

use sealsync_core::Millis;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};

/// A single pending wake-up. Arming it again replaces the previous deadline; dropping it
/// cancels the pending call.
pub(crate) struct Timer {
    on_fire: Closure<dyn FnMut()>,
    handle: Option<i32>,
}

impl std::fmt::Debug for Timer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timer")
            .field("handle", &self.handle)
            .finish()
    }
}

impl Timer {
    /// A timer that calls `on_fire` when a deadline passes.
    pub(crate) fn new(on_fire: impl FnMut() + 'static) -> Self {
        Self {
            on_fire: Closure::new(on_fire),
            handle: None,
        }
    }

    /// Calls back at monotonic time `at` (immediately when `at` is not after `now`),
    /// replacing any earlier deadline.
    ///
    /// # Errors
    /// The exception `setTimeout` threw (there is no global `setTimeout`).
    pub(crate) fn arm(&mut self, now: Millis, at: Millis) -> Result<(), JsValue> {
        self.cancel();
        let delay = i32::try_from(at.since(now)).unwrap_or(i32::MAX);
        let callback = self.on_fire.as_ref().unchecked_ref();
        let handle = set_timeout(callback, delay)?;
        self.handle = Some(handle);
        Ok(())
    }

    /// Cancels the pending call, if any.
    pub(crate) fn cancel(&mut self) {
        if let Some(handle) = self.handle.take() {
            clear_timeout(handle);
        }
    }

    /// Forgets the handle of a call that has just fired (so `cancel` does not clear a
    /// handle the browser may have reused).
    pub(crate) fn fired(&mut self) {
        self.handle = None;
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.cancel();
    }
}

#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    /// `globalThis.setTimeout`, available in windows and workers alike.
    #[wasm_bindgen(js_name = setTimeout, catch)]
    fn set_timeout(callback: &js_sys::Function, delay_ms: i32) -> Result<i32, JsValue>;

    /// `globalThis.clearTimeout`.
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(handle: i32);
}
