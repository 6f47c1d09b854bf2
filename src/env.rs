//! The browser's clocks and random numbers, as the core's types.

use sealsync_core::{Entropy, Millis, WallMillis};

use crate::error;

/// Monotonic time from `performance.now()`, falling back to `Date.now()` where there is no
/// `performance` (only differences matter to the core).
pub(crate) fn now() -> Millis {
    let ms = web_sys::window()
        .and_then(|w| w.performance())
        .map_or_else(js_sys::Date::now, |p| p.now());
    Millis(to_u64(ms))
}

/// Wall-clock time from `Date.now()`, for the hybrid logical clock.
pub(crate) fn wall() -> WallMillis {
    WallMillis(to_u64(js_sys::Date::now()))
}

/// A non-negative finite millisecond count as `u64` (negative or NaN becomes 0).
fn to_u64(ms: f64) -> u64 {
    if ms.is_finite() && ms > 0.0 {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "checked non-negative and finite; milliseconds since 1970 fit in u64"
        )]
        let whole = ms.floor() as u64;
        whole
    } else {
        0
    }
}

/// `crypto.getRandomValues` through `getrandom` (feature `wasm_js`).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct BrowserEntropy;

impl BrowserEntropy {
    /// Checks once that the browser offers secure random numbers, so that [`Entropy::fill`]
    /// (which cannot return an error) never meets a failure in practice.
    ///
    /// # Errors
    /// A JS `Error` with code `NO_RANDOMNESS` when `crypto.getRandomValues` is unavailable.
    pub(crate) fn check() -> Result<Self, wasm_bindgen::JsValue> {
        let mut probe = [0_u8; 16];
        getrandom::fill(&mut probe).map_err(|e| {
            error::coded(
                error::NO_RANDOMNESS,
                &format!("this browser offers no secure random numbers: {e}"),
            )
        })?;
        Ok(Self)
    }

    /// `N` random bytes.
    ///
    /// # Errors
    /// A JS `Error` with code `NO_RANDOMNESS` when the browser refuses.
    pub(crate) fn array<const N: usize>() -> Result<[u8; N], wasm_bindgen::JsValue> {
        let mut out = [0_u8; N];
        getrandom::fill(&mut out).map_err(|e| {
            error::coded(
                error::NO_RANDOMNESS,
                &format!("this browser offers no secure random numbers: {e}"),
            )
        })?;
        Ok(out)
    }
}

impl Entropy for BrowserEntropy {
    /// Fills `dest` from `crypto.getRandomValues`.
    ///
    /// [`BrowserEntropy::check`] succeeded before any instance was handed to the core, and
    /// the browser does not withdraw `crypto` from a live page; should it ever fail anyway,
    /// this throws a JS `Error` with code `NO_RANDOMNESS` rather than hand out predictable
    /// bytes (a repeated nonce would break AES-GCM).
    fn fill(&mut self, dest: &mut [u8]) {
        if let Err(e) = getrandom::fill(dest) {
            wasm_bindgen::throw_val(error::coded(
                error::NO_RANDOMNESS,
                &format!("secure random numbers became unavailable: {e}"),
            ));
        }
    }
}
