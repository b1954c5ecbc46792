//! What the audit lines of every handler share.

use std::borrow::Cow;

use crate::client_id::MAX_CLIENT_ID_LEN;

/// Client ids in logs are bounded and escaped: an outsider chose them.
/// The common case, short printable ASCII with nothing to escape, is
/// borrowed as is.
pub fn short(value: &str) -> Cow<'_, str> {
    let plain = value.len() <= MAX_CLIENT_ID_LEN
        && value
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && !matches!(b, b'"' | b'\\' | b'\''));
    if plain {
        return Cow::Borrowed(value);
    }
    Cow::Owned(
        value
            .chars()
            .take(MAX_CLIENT_ID_LEN)
            .collect::<String>()
            .escape_debug()
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_client_ids_are_escaped_and_bounded_in_logs() {
        assert!(matches!(
            short("https://app.example/c.json"),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            short("https://a.example/\"x\n"),
            "https://a.example/\\\"x\\n"
        );
        let long = "https://a.example/".to_owned() + &"x".repeat(10 * MAX_CLIENT_ID_LEN);
        assert!(short(&long).len() <= MAX_CLIENT_ID_LEN + 1);
    }
}
