//! Benchmark hooks (feature `bench`, never in the published package): one seal and one
//! open per call, crossing the wasm boundary as an application's event would.

use sealsync_core::client::ClientConfig;
use sealsync_core::kdf::{RoomKey, RoomKeys};
use sealsync_core::{DeviceId, EnvelopeKind, Hlc, Opener, RoomId, SessionId, SessionSealer};
use wasm_bindgen::prelude::*;

use crate::env::BrowserEntropy;
use crate::error;
use crate::nfc;

/// A sealer and an opener for one throwaway room.
#[wasm_bindgen]
#[derive(Debug)]
pub struct BenchSealer {
    sealer: SessionSealer,
    opener: Opener,
    channel: sealsync_core::ChannelTag,
    device: DeviceId,
    wall: u64,
}

#[wasm_bindgen]
impl BenchSealer {
    /// A room with a random secret.
    ///
    /// # Errors
    /// `NO_RANDOMNESS`, or the core's error.
    #[wasm_bindgen(constructor)]
    pub fn new() -> Result<Self, JsValue> {
        let mut entropy = BrowserEntropy::check()?;
        let secret = RoomKey::generate_secret(&mut entropy);
        let key = RoomKey::from_secret(&secret).map_err(|e| error::from_core(&e))?;
        let room = RoomId::new_with("bench", nfc::nfc).map_err(|e| error::from_core(&e))?;
        let keys = RoomKeys::derive(&key, room.clone());
        let session = SessionId(BrowserEntropy::array()?);
        let device = DeviceId(BrowserEntropy::array()?);
        let channel = keys.channel_tag(&ClientConfig::new(room, device, session).channel);
        Ok(Self {
            sealer: SessionSealer::new(&keys, session),
            opener: Opener::new(&keys),
            channel,
            device,
            wall: 0,
        })
    }

    /// Seals `body` as an event and opens it again; returns the opened body.
    ///
    /// # Errors
    /// The core's error (`BODY_TOO_LARGE`, `SESSION_EXHAUSTED`, `DECRYPT_FAILED`).
    #[wasm_bindgen(js_name = sealOpen)]
    pub fn seal_open(&mut self, body: &[u8]) -> Result<Vec<u8>, JsValue> {
        self.wall += 1;
        let hlc = Hlc {
            wall: self.wall,
            counter: 0,
            device: self.device,
        };
        let nonce = BrowserEntropy::array::<12>()?;
        let envelope = self
            .sealer
            .seal(EnvelopeKind::Event, self.channel, hlc, body, nonce)
            .map_err(|e| error::from_core(&e))?;
        let opened = self
            .opener
            .open(&envelope)
            .map_err(|e| error::from_core(&e))?;
        Ok(opened.body)
    }
}
