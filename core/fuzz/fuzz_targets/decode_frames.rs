//! Feeds arbitrary bytes to both frame decoders. Neither may panic, and whatever decodes
//! must re-encode to exactly the input (the encoding is canonical).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealsync_core::wire::{ClientFrame, RelayFrame};

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = ClientFrame::decode(data) {
        let again = frame.encode().expect("a decoded client frame re-encodes");
        assert_eq!(again, data, "client frame re-encoding differs from the input");
        assert_eq!(ClientFrame::decode(&again).as_ref(), Ok(&frame));
    }
    if let Ok(frame) = RelayFrame::decode(data) {
        let again = frame.encode().expect("a decoded relay frame re-encodes");
        assert_eq!(again, data, "relay frame re-encoding differs from the input");
        assert_eq!(RelayFrame::decode(&again).as_ref(), Ok(&frame));
    }
});
