//! Arbitrary text as a provider id_token: `verify` never panics and never
//! accepts a token (the key set is empty).
#![no_main]

use cimd_proxy::id_token::IdTokenVerifier;
use jsonwebtoken::jwk::JwkSet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let verifier = IdTokenVerifier::new("https://idp.example".into(), "client".into());
    assert!(verifier.verify(s, &JwkSet { keys: Vec::new() }, Some("n")).is_err());
});
