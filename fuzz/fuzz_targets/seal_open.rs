//! Arbitrary text as a sealed value: `open` never panics and never accepts
//! what it did not seal (no key here sealed anything).
#![no_main]

use cimd_proxy::seal::{Purpose, Sealer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(sealer) = Sealer::new(vec![[7u8; 32]]) else {
        return;
    };
    for purpose in Purpose::ALL {
        assert!(sealer.open::<serde_json::Value>(purpose, s).is_err());
    }
});
