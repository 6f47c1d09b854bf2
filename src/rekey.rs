//! A new key for a room: `room.rotate` moves the room to a new password or secret (the
//! core's `Client::rotate`: the relay drops everyone else, who must know the new one), and
//! `room.rekey` takes the new one after the room rotated without this tab (or after a wrong
//! password), keeping the state and the unsent changes (`Client::rekey`).

use std::rc::Rc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use js_sys::{Function, Promise, Reflect};
use sealsync_core::kdf::RoomKey;
use sealsync_core::RoomId;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;
use zeroize::Zeroizing;

use crate::driver::pump;
use crate::env::now;
use crate::error;
use crate::kdf;
use crate::ops;
use crate::shared::Shared;

/// A rotation the relay has not answered yet: how to settle `room.rotate`'s promise, and
/// the new secret (the share link's) once it is carried out.
pub(crate) struct Pending {
    resolve: Function,
    reject: Function,
    secret: Zeroizing<String>,
}

impl core::fmt::Debug for Pending {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Pending")
    }
}

/// `room.rotate({ password } | { secret }, handOver?)`: resolves once the relay carried the
/// rotation out (this tab then uses the new key), rejects with the relay's or the core's
/// code. With `handOver: true` the members online get the new key (`Client::rotate`).
pub(crate) async fn rotate(shared: &Rc<Shared>, options: &JsValue) -> Result<(), JsValue> {
    let (key, secret) = key_of(shared, options, "rotate").await?;
    let hand_over = match Reflect::get(options, &JsValue::from_str("handOver")) {
        Ok(v) if v.is_undefined() => false,
        Ok(v) => v.as_bool().ok_or_else(|| {
            error::coded(
                error::INVALID_ARGUMENT,
                "room.rotate: handOver must be a boolean",
            )
        })?,
        Err(_) => false,
    };
    let mut settle = None;
    let promise = Promise::new(&mut |resolve, reject| settle = Some((resolve, reject)));
    let Some((resolve, reject)) = settle else {
        return Err(error::coded(
            error::BROWSER_API,
            "the Promise executor did not run",
        ));
    };
    {
        let mut inner = shared.inner_mut()?;
        if inner.rotation.is_some() {
            return Err(error::coded(
                "ROTATION_REFUSED",
                "the key rotation was refused: a rotation is already under way",
            ));
        }
        inner
            .client
            .rotate(now(), &key, hand_over)
            .map_err(|e| error::from_core(&e))?;
        inner.rotation = Some(Pending {
            resolve,
            reject,
            secret,
        });
    }
    pump(shared);
    JsFuture::from(promise).await.map(|_| ())
}

/// `room.rekey({ password } | { secret })`: after the status `rotated` or `wrong-password`,
/// joins again under the new key with this tab's state and unsent changes.
pub(crate) async fn rekey(shared: &Rc<Shared>, options: &JsValue) -> Result<(), JsValue> {
    let (key, secret) = key_of(shared, options, "rekey").await?;
    {
        let mut inner = shared.inner_mut()?;
        inner
            .client
            .rekey(now(), &key)
            .map_err(|e| error::from_core(&e))?;
        inner.secret = secret;
    }
    pump(shared);
    Ok(())
}

/// The relay carried this tab's rotation out: the share link takes the new secret, and
/// `rotate` resolves.
pub(crate) fn rotated(shared: &Rc<Shared>) {
    let pending = shared.inner.try_borrow_mut().ok().and_then(|mut inner| {
        let pending = inner.rotation.take()?;
        inner.secret = pending.secret.clone();
        Some(pending)
    });
    if let Some(pending) = pending {
        let _ = pending.resolve.call0(&JsValue::UNDEFINED);
    }
}

/// Another member's rotation handed this tab the new key, which it now uses: the share link
/// takes it.
pub(crate) fn handed_over(shared: &Rc<Shared>, secret: Zeroizing<String>) {
    if let Ok(mut inner) = shared.inner.try_borrow_mut() {
        inner.secret = secret;
    }
}

/// The rotation was not carried out: `rotate` rejects with `code`.
pub(crate) fn failed(shared: &Rc<Shared>, code: &str, message: &str) {
    let pending = shared
        .inner
        .try_borrow_mut()
        .ok()
        .and_then(|mut inner| inner.rotation.take());
    if let Some(pending) = pending {
        let _ = pending
            .reject
            .call1(&JsValue::UNDEFINED, &error::coded(code, message));
    }
}

/// The key (and its secret form) that `{ password }` or `{ secret }` give for this room; a
/// password is derived as `Room.join` derives it (in the key worker).
async fn key_of(
    shared: &Rc<Shared>,
    options: &JsValue,
    what: &str,
) -> Result<(RoomKey, Zeroizing<String>), JsValue> {
    let usage = format!("room.{what} takes {{ password }} or {{ secret }}");
    if !options.is_object() {
        return Err(error::coded(error::INVALID_ARGUMENT, &usage));
    }
    let field = |name: &str| -> Result<Option<String>, JsValue> {
        let value = Reflect::get(options, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED);
        if value.is_undefined() {
            Ok(None)
        } else {
            ops::string(&value, name).map(Some)
        }
    };
    let (password, secret) = (field("password")?, field("secret")?);
    let (room, worker) = {
        let inner = shared.inner()?;
        (inner.room.clone(), inner.kdf_worker.clone())
    };
    let room = RoomId::new_with(&room, crate::nfc::nfc).map_err(|e| error::from_core(&e))?;
    let secret = match (password, secret) {
        (Some(password), None) => {
            let password = Zeroizing::new(password);
            let (key, _) = kdf::derive(&room, &password, worker.as_ref()).await?;
            let key = Zeroizing::new(key);
            Zeroizing::new(URL_SAFE_NO_PAD.encode(*key))
        }
        (None, Some(secret)) => Zeroizing::new(secret),
        _ => return Err(error::coded(error::INVALID_ARGUMENT, &usage)),
    };
    let key = RoomKey::from_secret(&secret).map_err(|e| error::from_core(&e))?;
    Ok((key, secret))
}
