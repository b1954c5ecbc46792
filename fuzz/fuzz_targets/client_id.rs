//! Arbitrary bytes as a client_id: never panics, and whatever is accepted is
//! kept byte for byte and accepted again.
#![no_main]

use cimd_proxy::client_id::ClientIdUrl;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(id) = ClientIdUrl::parse(s) {
        assert_eq!(id.as_str(), s);
        // No normalisation: the parser's form is the received form.
        let url = id.to_url().expect("an accepted client_id parses");
        assert_eq!(url.as_str(), s);
        // The parts read back from the text are the parser's.
        assert_eq!(Some(id.host_str()), url.host_str());
        assert_eq!(Some(id.host()), url.host());
        assert_eq!(Some(id.port()), url.port_or_known_default());
        assert!(ClientIdUrl::parse(id.as_str()).is_ok());
    }
});
