//! Arbitrary bytes as a metadata document: validation never panics.
#![no_main]

use std::sync::LazyLock;

use cimd_proxy::client_id::ClientIdUrl;
use cimd_proxy::metadata;
use libfuzzer_sys::fuzz_target;

/// A fixed, valid client_id; documents whose `client_id` is this string get
/// past the first check and exercise the member rules.
static CLIENT_ID: LazyLock<Option<ClientIdUrl>> =
    LazyLock::new(|| ClientIdUrl::parse("https://app.example.com/client.json").ok());

fuzz_target!(|data: &[u8]| {
    if let Some(client_id) = CLIENT_ID.as_ref() {
        let _ = metadata::validate(client_id, data);
    }
});
