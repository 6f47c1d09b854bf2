//! AES-256-GCM (RustCrypto's `aes-gcm`) behind three non-generic, never-inlined functions.
//!
//! Why a crate of its own: the cipher's code is generic, so Rust compiles it in the crate
//! that instantiates it. The browser SDK is built for size (`[profile.sdk]`, opt-level
//! `"z"`) except for its hot crates; were `sealsync-core` to instantiate AES-GCM, seal and
//! open would run at the size profile's speed (1.5–2.4× slower, BENCHMARKS.md). Here the
//! instantiation happens in this crate, which the profile keeps at opt-level 3. Nothing
//! else changes: the bytes are `aes-gcm`'s.
#![no_std]

use aes_gcm::aead::{AeadInOut, KeyInit, Nonce, Tag};
use aes_gcm::Aes256Gcm;

/// An AES-256-GCM key schedule (wiped on drop, as `aes_gcm::Aes256Gcm` is).
pub struct Gcm(Aes256Gcm);

/// The key schedule wipes itself: `aes-gcm` with its `zeroize` feature.
impl zeroize::ZeroizeOnDrop for Gcm {}

/// Fails to compile if `aes-gcm` loses its `zeroize` feature.
const _: fn() = assert_zeroize_on_drop::<Aes256Gcm>;
const fn assert_zeroize_on_drop<T: zeroize::ZeroizeOnDrop>() {}

impl core::fmt::Debug for Gcm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Gcm(..)")
    }
}

/// AES-GCM refused: a plaintext over its limit (sealing), or a tag that does not verify
/// (opening).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused;

impl Gcm {
    /// The key schedule of `key`.
    #[inline(never)]
    #[must_use]
    pub fn new(key: &[u8; 32]) -> Self {
        Self(Aes256Gcm::new(key.into()))
    }

    /// Encrypts `buf` in place under `nonce` with associated data `ad`; returns the tag.
    ///
    /// # Errors
    /// [`Refused`] for a plaintext over AES-GCM's limit (64 GiB).
    #[inline(never)]
    pub fn encrypt(
        &self,
        nonce: &[u8; 12],
        ad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; 16], Refused> {
        self.0
            .encrypt_inout_detached(&Nonce::<Aes256Gcm>::from(*nonce), ad, buf.into())
            .map(Into::into)
            .map_err(|_| Refused)
    }

    /// Decrypts `buf` in place when `tag` verifies under `nonce` and `ad`.
    ///
    /// # Errors
    /// [`Refused`] when the tag does not verify (`buf` is then left encrypted).
    #[inline(never)]
    pub fn decrypt(
        &self,
        nonce: &[u8; 12],
        ad: &[u8],
        buf: &mut [u8],
        tag: &[u8; 16],
    ) -> Result<(), Refused> {
        self.0
            .decrypt_inout_detached(
                &Nonce::<Aes256Gcm>::from(*nonce),
                ad,
                buf.into(),
                &Tag::<Aes256Gcm>::from(*tag),
            )
            .map_err(|_| Refused)
    }
}
