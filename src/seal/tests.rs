use std::io::Write;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::*;

const NOW: u64 = 1_700_000_000;
const TTL: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Flow {
    client_id: String,
    redirect_uri: String,
    scope: Vec<String>,
}

fn flow() -> Flow {
    Flow {
        client_id: "https://app.example/cimd.json".to_owned(),
        redirect_uri: "https://app.example/cb?x=1&y=é".to_owned(),
        scope: vec!["openid".to_owned(), "email".to_owned()],
    }
}

fn key(byte: u8) -> [u8; 32] {
    [byte; 32]
}

fn sealer(keys: &[[u8; 32]]) -> Sealer {
    Sealer::new(keys.to_vec()).unwrap()
}

fn text(key: &[u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(key)
}

/// Decodes the base64 body, lets `edit` change the bytes, re-encodes.
fn edit_blob(sealed: &str, edit: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut blob = URL_SAFE_NO_PAD
        .decode(sealed.strip_prefix(PREFIX).unwrap())
        .unwrap();
    edit(&mut blob);
    format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(blob))
}

#[test]
fn round_trip() {
    let s = sealer(&[key(1)]);
    let sealed = s.seal_at(Purpose::State, TTL, &flow(), NOW);
    assert_eq!(s.open_at::<Flow>(Purpose::State, &sealed, NOW), Ok(flow()));
    // The real clock works too.
    let sealed = s.seal(Purpose::Code, TTL, &flow());
    assert_eq!(s.open::<Flow>(Purpose::Code, &sealed), Ok(flow()));
}

#[test]
fn sealed_values_are_url_safe_and_fresh() {
    let s = sealer(&[key(1)]);
    let a = s.seal_at(Purpose::State, TTL, &flow(), NOW);
    let b = s.seal_at(Purpose::State, TTL, &flow(), NOW);
    assert!(a.starts_with("v2."));
    assert!(
        a.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    );
    // Random nonces: the same payload never seals to the same text.
    assert_ne!(a, b);
    // Nothing of the payload shows through.
    assert!(!a.contains("app.example"));
}

#[test]
fn every_other_purpose_is_refused() {
    let s = sealer(&[key(1)]);
    for sealed_for in Purpose::ALL {
        let sealed = s.seal_at(sealed_for, TTL, &flow(), NOW);
        for opened_as in Purpose::ALL {
            let result = s.open_at::<Flow>(opened_as, &sealed, NOW);
            if sealed_for == opened_as {
                assert_eq!(result, Ok(flow()));
            } else {
                assert_eq!(
                    result,
                    Err(SealError::WrongPurpose),
                    "{sealed_for} as {opened_as}"
                );
            }
        }
    }
}

#[test]
fn rewriting_the_clear_purpose_fails_authentication() {
    // The purpose byte is in the clear, but bound as associated data: a state
    // relabelled as a code does not open as a code.
    let s = sealer(&[key(1)]);
    let state = s.seal_at(Purpose::State, TTL, &flow(), NOW);
    let relabelled = edit_blob(&state, |blob| blob[0] = Purpose::Code.tag());
    assert_eq!(
        s.open_at::<Flow>(Purpose::Code, &relabelled, NOW),
        Err(SealError::Tampered)
    );
}

#[test]
fn rotation_keeps_old_values_open_and_seals_with_the_newest() {
    let old = sealer(&[key(1)]);
    let sealed_old = old.seal_at(Purpose::RefreshToken, TTL, &flow(), NOW);

    let rotated = sealer(&[key(2), key(1)]);
    assert_eq!(
        rotated.open_at::<Flow>(Purpose::RefreshToken, &sealed_old, NOW),
        Ok(flow())
    );

    // The newest key seals: a replica still on the old list cannot open it…
    let sealed_new = rotated.seal_at(Purpose::RefreshToken, TTL, &flow(), NOW);
    assert_eq!(
        old.open_at::<Flow>(Purpose::RefreshToken, &sealed_new, NOW),
        Err(SealError::UnknownKey)
    );
    // …and once the old key is dropped, what it sealed is refused.
    let retired = sealer(&[key(2)]);
    assert_eq!(
        retired.open_at::<Flow>(Purpose::RefreshToken, &sealed_new, NOW),
        Ok(flow())
    );
    assert_eq!(
        retired.open_at::<Flow>(Purpose::RefreshToken, &sealed_old, NOW),
        Err(SealError::UnknownKey)
    );
}

#[test]
fn replicas_with_the_same_list_open_each_others_values() {
    let path = key_file(&format!("{}\n{}\n", text(&key(7)), text(&key(8))));
    let a = Sealer::from_source(&file_source(&path)).unwrap();
    let b = sealer(&[key(7), key(8)]);
    let sealed = a.seal_at(Purpose::Code, TTL, &flow(), NOW);
    assert_eq!(b.open_at::<Flow>(Purpose::Code, &sealed, NOW), Ok(flow()));
}

#[test]
fn changing_any_character_is_refused() {
    let s = sealer(&[key(1)]);
    let sealed = s.seal_at(Purpose::Code, TTL, &"short payload", NOW);
    let chars: Vec<char> = sealed.chars().collect();
    for i in 0..chars.len() {
        let mut altered = chars.clone();
        altered[i] = if chars[i] == 'A' { 'B' } else { 'A' };
        let altered: String = altered.into_iter().collect();
        assert!(
            s.open_at::<String>(Purpose::Code, &altered, NOW).is_err(),
            "character {i} changed and still opened"
        );
    }
}

#[test]
fn flipping_any_bit_after_the_purpose_is_refused() {
    let s = sealer(&[key(1)]);
    let sealed = s.seal_at(Purpose::Code, TTL, &"short payload", NOW);
    let len = URL_SAFE_NO_PAD
        .decode(sealed.strip_prefix(PREFIX).unwrap())
        .unwrap()
        .len();
    for i in 1..len {
        for bit in [0x01u8, 0x80] {
            let altered = edit_blob(&sealed, |blob| blob[i] ^= bit);
            let expected = if i < 1 + KEY_ID_LEN {
                SealError::UnknownKey
            } else {
                SealError::Tampered
            };
            assert_eq!(
                s.open_at::<String>(Purpose::Code, &altered, NOW),
                Err(expected),
                "byte {i}"
            );
        }
    }
}

#[test]
fn expiry_follows_the_clock() {
    let s = sealer(&[key(1)]);
    let sealed = s.seal_at(Purpose::Code, TTL, &flow(), NOW);
    assert!(s.open_at::<Flow>(Purpose::Code, &sealed, NOW + 59).is_ok());
    assert_eq!(
        s.open_at::<Flow>(Purpose::Code, &sealed, NOW + 60),
        Err(SealError::Expired)
    );
    let instant = s.seal_at(Purpose::Code, Duration::ZERO, &flow(), NOW);
    assert_eq!(
        s.open_at::<Flow>(Purpose::Code, &instant, NOW),
        Err(SealError::Expired)
    );
    // A huge ttl saturates instead of wrapping into the past.
    let forever = s.seal_at(Purpose::Code, Duration::MAX, &flow(), NOW);
    assert!(
        s.open_at::<Flow>(Purpose::Code, &forever, u64::MAX - 1)
            .is_ok()
    );
}

#[test]
fn expiry_is_only_reported_for_authentic_values() {
    let s = sealer(&[key(1)]);
    let sealed = s.seal_at(Purpose::Code, TTL, &flow(), NOW);
    let altered = edit_blob(&sealed, |blob| {
        let last = blob.len() - 1;
        blob[last] ^= 1;
    });
    assert_eq!(
        s.open_at::<Flow>(Purpose::Code, &altered, NOW + 3600),
        Err(SealError::Tampered)
    );
}

#[test]
fn malformed_truncated_and_empty_inputs_are_refused() {
    let s = sealer(&[key(1)]);
    let sealed = s.seal_at(Purpose::State, TTL, &flow(), NOW);
    for input in [
        "", "v2.", "v2", "v3.AAAA", "V2.AAAA", "v2.!!!!", "v2.AAAA", "v2.AAAA=", "v2.+/+/",
        " v2.AAAA", "\u{0}", "é",
    ] {
        assert_eq!(
            s.open_at::<Flow>(Purpose::State, input, NOW),
            Err(SealError::Malformed),
            "{input:?}"
        );
    }
    // An unknown purpose byte.
    let unknown = edit_blob(&sealed, |blob| blob[0] = b'z');
    assert_eq!(
        s.open_at::<Flow>(Purpose::State, &unknown, NOW),
        Err(SealError::Malformed)
    );
    // Every truncation is refused, whatever the reason.
    for cut in 0..sealed.len() {
        assert!(
            s.open_at::<Flow>(Purpose::State, &sealed[..cut], NOW)
                .is_err(),
            "cut at {cut}"
        );
    }
    // Appending is refused too.
    assert!(
        s.open_at::<Flow>(Purpose::State, &format!("{sealed}AAAA"), NOW)
            .is_err()
    );
}

#[test]
fn values_of_the_json_format_before_are_refused_as_malformed() {
    // What a `v1.` sealer made (JSON plaintext): a replica still on the old
    // version must not have its values half-read by this one.
    let s = sealer(&[key(1)]);
    let v2 = s.seal_at(Purpose::State, TTL, &flow(), NOW);
    let v1 = format!("v1.{}", v2.strip_prefix(PREFIX).unwrap());
    assert_eq!(
        s.open_at::<Flow>(Purpose::State, &v1, NOW),
        Err(SealError::Malformed)
    );
}

#[test]
fn an_authentic_payload_followed_by_more_bytes_is_malformed() {
    // A `Flow` sealed with a trailing field this version does not know.
    #[derive(Serialize)]
    struct Longer {
        flow: Flow,
        more: u8,
    }
    let s = sealer(&[key(1)]);
    let sealed = s.seal_at(
        Purpose::State,
        TTL,
        &Longer {
            flow: flow(),
            more: 7,
        },
        NOW,
    );
    assert_eq!(
        s.open_at::<Flow>(Purpose::State, &sealed, NOW),
        Err(SealError::Malformed)
    );
}

#[test]
fn the_state_of_a_sign_in_seals_compactly() {
    // The sealed state rides in the provider URL: a binary payload keeps it
    // short (JSON's field names and quoting made it about half as long again).
    let s = sealer(&[key(1)]);
    let payload = flow();
    let sealed = s.seal_at(Purpose::State, TTL, &payload, NOW);
    let text = payload.client_id.len()
        + payload.redirect_uri.len()
        + payload.scope.iter().map(String::len).sum::<usize>();
    // Header, tag, expiry, one length byte per string and the list.
    let bound = PREFIX.len() + base64_len(HEADER_LEN + TAG_LEN + EXPIRY_LEN + 5 + text);
    assert_eq!(sealed.len(), bound);
}

#[test]
fn over_long_input_is_refused_before_decoding() {
    let s = sealer(&[key(1)]);
    let long = format!("v2.{}", "A".repeat(MAX_SEALED_LEN));
    assert_eq!(
        s.open_at::<Flow>(Purpose::State, &long, NOW),
        Err(SealError::TooLarge)
    );
    // At the bound it is looked at (and refused for what it is).
    let at_bound = format!("v2.{}", "A".repeat(MAX_SEALED_LEN - 3));
    assert_ne!(
        s.open_at::<Flow>(Purpose::State, &at_bound, NOW),
        Err(SealError::TooLarge)
    );
}

#[test]
fn sealing_refuses_to_make_what_open_would_refuse() {
    let s = sealer(&[key(1)]);
    let huge = "x".repeat(MAX_SEALED_LEN);
    assert_eq!(
        s.try_seal_at(Purpose::State, TTL, &huge, NOW),
        Err(SealError::TooLarge)
    );
    // The infallible form gives a value every open refuses.
    let sealed = s.seal_at(Purpose::State, TTL, &huge, NOW);
    assert_eq!(
        s.open_at::<String>(Purpose::State, &sealed, NOW),
        Err(SealError::Malformed)
    );
    // The largest payload that fits opens.
    let mut n = MAX_SEALED_LEN / 2;
    while s
        .try_seal_at(Purpose::State, TTL, &"x".repeat(n + 1), NOW)
        .is_ok()
    {
        n += 1;
    }
    let largest = s.seal_at(Purpose::State, TTL, &"x".repeat(n), NOW);
    assert!(largest.len() <= MAX_SEALED_LEN);
    assert_eq!(
        s.open_at::<String>(Purpose::State, &largest, NOW),
        Ok("x".repeat(n))
    );
}

#[test]
fn authentic_value_of_another_shape_is_malformed() {
    let s = sealer(&[key(1)]);
    let sealed = s.seal_at(Purpose::State, TTL, &42u32, NOW);
    assert_eq!(
        s.open_at::<Flow>(Purpose::State, &sealed, NOW),
        Err(SealError::Malformed)
    );
}

#[test]
fn errors_never_echo_the_input() {
    let s = sealer(&[key(1)]);
    let secret = "v2.SECRETSECRETSECRET";
    let error = s.open_at::<Flow>(Purpose::State, secret, NOW).unwrap_err();
    assert!(!format!("{error} {error:?}").contains("SECRET"));
    for error in [
        SealError::Malformed,
        SealError::UnknownKey,
        SealError::Tampered,
        SealError::WrongPurpose,
        SealError::Expired,
        SealError::TooLarge,
        SealError::Failed,
    ] {
        assert!(!error.as_str().is_empty());
        assert!(!error.to_string().is_empty());
    }
}

#[test]
fn sealer_is_cheap_to_share_and_does_not_print_keys() {
    fn assert_shareable<T: Clone + Send + Sync + 'static>() {}
    assert_shareable::<Sealer>();
    let s = sealer(&[key(0xAB), key(0xCD)]);
    let debug = format!("{s:?}");
    assert!(!debug.contains(&text(&key(0xAB))));
    assert!(!debug.contains("171")); // 0xAB as a decimal byte
    assert_eq!(s.key_count(), 2);
}

#[test]
fn generated_keys_are_43_char_base64url_and_usable() {
    let a = Sealer::generate_key();
    let b = Sealer::generate_key();
    assert_eq!(a.len(), 43);
    assert_ne!(a, b);
    let keys = parse_keys(&format!("{a},{b}"), "test").unwrap();
    assert_eq!(keys.len(), 2);
    let s = Sealer::new(keys).unwrap();
    let sealed = s.seal_at(Purpose::Consent, TTL, &true, NOW);
    assert_eq!(s.open_at::<bool>(Purpose::Consent, &sealed, NOW), Ok(true));
}

// ---- key sources ----

/// A temporary key file, removed when the returned guard drops.
fn key_file(contents: &str) -> tempfile::TempPath {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(contents.as_bytes()).unwrap();
    file.into_temp_path()
}

fn file_source(path: &tempfile::TempPath) -> SecretSource {
    SecretSource::File(path.to_path_buf())
}

#[test]
fn key_lists_split_on_commas_whitespace_and_newlines() {
    let (a, b, c) = (text(&key(1)), text(&key(2)), text(&key(3)));
    for list in [
        format!("{a},{b},{c}"),
        format!("{a}, {b} ,{c}"),
        format!("{a}\n{b}\r\n{c}\n"),
        format!("  {a}\t{b}  {c}  "),
        format!("\n\n{a},\n,{b}\n\n{c},"),
    ] {
        assert_eq!(
            parse_keys(&list, "test").unwrap(),
            vec![key(1), key(2), key(3)],
            "{list:?}"
        );
    }
}

#[test]
fn key_file_is_read_newest_first() {
    let path = key_file(&format!("{}\n{}\n", text(&key(2)), text(&key(1))));
    let from_file = Sealer::from_source(&file_source(&path)).unwrap();
    let newest = sealer(&[key(2)]);
    let sealed = from_file.seal_at(Purpose::State, TTL, &flow(), NOW);
    assert_eq!(
        newest.open_at::<Flow>(Purpose::State, &sealed, NOW),
        Ok(flow())
    );
}

#[test]
fn a_bad_key_is_named_by_position_not_value() {
    let good = text(&key(1));
    let cases = [
        // (second key, what the message must say)
        ("c2VjcmV0LWJ1dC10b28tc2hvcnQ".to_owned(), "27 characters"),
        (format!("{}=", text(&key(9))), "padding"),
        (format!("{}+", &text(&key(9))[..42]), "base64url"),
        (format!("{}/", &text(&key(9))[..42]), "base64url"),
        // 43 characters whose last one leaves non-zero trailing bits.
        (format!("{}B", &text(&key(0))[..42]), "base64url"),
    ];
    for (bad, says) in cases {
        let path = key_file(&format!("{good}\n{bad}\n"));
        let error = Sealer::from_source(&file_source(&path)).unwrap_err();
        match &error {
            SealSetupError::BadKey {
                origin, position, ..
            } => {
                assert_eq!(*position, 2, "{bad}");
                assert!(origin.contains(&path.display().to_string()));
            }
            other => panic!("expected BadKey, got {other:?}"),
        }
        let message = error.to_string();
        assert!(message.contains("key 2"), "{message}");
        assert!(message.contains(says), "{message}");
        assert!(!message.contains(bad.as_str()), "{message}");
        assert!(!message.contains(good.as_str()), "{message}");
    }
}

#[test]
fn env_sources_are_named_and_never_echoed() {
    // Edition 2024 makes `set_var` unsafe and the crate forbids unsafe code,
    // so the env path is exercised with variables the test does not set:
    // PATH is (almost) always set and is certainly not a key list.
    let missing = "CIMD_PROXY_TEST_SEAL_KEYS_SURELY_UNSET";
    let error = Sealer::from_source(&SecretSource::Env(missing.to_owned())).unwrap_err();
    assert_eq!(
        error,
        SealSetupError::Unreadable {
            origin: format!("environment variable {missing}"),
            reason: "not set".to_owned(),
        }
    );
    if let Ok(path) = std::env::var("PATH")
        && !path.is_empty()
    {
        let error = Sealer::from_source(&SecretSource::Env("PATH".to_owned())).unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, SealSetupError::BadKey { position: 1, .. }));
        assert!(message.contains("environment variable PATH"), "{message}");
        assert!(!message.contains(&path), "{message}");
    }
}

#[test]
fn unreadable_empty_and_duplicate_sources_are_refused() {
    let error =
        Sealer::from_source(&SecretSource::File("/nonexistent/seal.keys".into())).unwrap_err();
    assert!(matches!(error, SealSetupError::Unreadable { .. }));
    assert!(error.to_string().contains("/nonexistent/seal.keys"));

    let empty = key_file(" \n, \n");
    assert!(matches!(
        Sealer::from_source(&file_source(&empty)).unwrap_err(),
        SealSetupError::NoKeys { .. }
    ));
    assert!(matches!(
        Sealer::new(Vec::new()).unwrap_err(),
        SealSetupError::NoKeys { .. }
    ));

    let dup = key_file(&format!(
        "{},{},{}",
        text(&key(1)),
        text(&key(2)),
        text(&key(1))
    ));
    assert_eq!(
        Sealer::from_source(&file_source(&dup)).unwrap_err(),
        SealSetupError::DuplicateKey {
            origin: format!("file {}", dup.display()),
            position: 3,
            first: 1,
        }
    );

    let huge = key_file(&"A".repeat(MAX_KEY_SOURCE_BYTES as usize + 1));
    assert!(matches!(
        Sealer::from_source(&file_source(&huge)).unwrap_err(),
        SealSetupError::Unreadable { .. }
    ));
}

#[test]
fn purpose_names_are_pinned() {
    // Bound into every seal, and log labels: the strings are a contract.
    for (value, text) in [
        (Purpose::State, "state"),
        (Purpose::Code, "code"),
        (Purpose::RefreshToken, "refresh_token"),
        (Purpose::Consent, "consent"),
        (Purpose::GateAdmission, "gate_admission"),
    ] {
        assert_eq!(value.as_str(), text);
        assert_eq!(value.to_string(), text);
    }
}

#[test]
fn seal_error_names_are_pinned() {
    // Log fields and metric labels: the strings are a contract.
    for (value, text) in [
        (SealError::Malformed, "malformed"),
        (SealError::UnknownKey, "unknown_key"),
        (SealError::Tampered, "tampered"),
        (SealError::WrongPurpose, "wrong_purpose"),
        (SealError::Expired, "expired"),
        (SealError::TooLarge, "too_large"),
        (SealError::Failed, "seal_failed"),
    ] {
        assert_eq!(value.as_str(), text);
    }
}
