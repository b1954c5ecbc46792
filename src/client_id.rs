//! The client identifier URL rules of a Client ID Metadata Document (CIMD).
//!
//! A CIMD client names itself with an `https` URL, and that URL is compared
//! with other client_ids as a plain string (draft §3; CIMD-RULES.md rules 1
//! and 2). Two spellings a URL parser treats as one (`A.example` and
//! `a.example`, or an explicit `:443`) would be two different clients to the
//! string comparison but one origin to the fetcher, so this module accepts a
//! client_id only when it is already in the exact form the parser would
//! produce. Nothing here is ever normalised: [`ClientIdUrl::as_str`] returns
//! the bytes that were received.
//!
//! Address checks (loopback, private ranges, allowed ports) are not made here;
//! they belong to `egress`, which sees the resolved addresses.

use std::borrow::Cow;
use std::fmt;

use url::{Host, Url};

use crate::error_code::ErrorCode;

/// The longest client_id accepted, in bytes.
///
/// The client_id comes from an outsider's request and ends up in cache keys,
/// log lines and sealed state, so its size is bounded before anything parses
/// it. 2048 is far above any real identifier and matches common URL limits.
pub const MAX_CLIENT_ID_LEN: usize = 2048;

/// The only accepted prefix: the `https` scheme, in lower case, followed by an
/// authority.
const HTTPS_PREFIX: &str = "https://";

/// The most characters of an outsider's value that an error message shows.
pub(crate) const MAX_SHOWN_CHARS: usize = 100;

/// Renders an untrusted value for an error message.
///
/// Quotes, backslashes and control characters are escaped, so a value cannot
/// end a quoted string or forge a log line, and the result is cut to at most
/// [`MAX_SHOWN_CHARS`] characters (the last one `…` when cut), so a huge value
/// cannot blow up logs or error pages. Only a bounded prefix of the input is
/// ever read.
pub(crate) fn shown(value: &str) -> String {
    let mut escaped = value.escape_debug();
    let mut out: String = escaped.by_ref().take(MAX_SHOWN_CHARS).collect();
    if escaped.next().is_some() {
        if let Some((cut, _)) = out.char_indices().nth(MAX_SHOWN_CHARS - 1) {
            out.truncate(cut);
        }
        out.push('…');
    }
    out
}

/// A client_id that satisfies the CIMD identifier rules; it is kept exactly as received.
///
/// The only way to build one is [`ClientIdUrl::parse`], so holding a value of
/// this type proves the rules were checked. Equality and hashing compare the
/// exact string, as rule 2 requires.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientIdUrl {
    /// The client_id as received. `parse` proved that a URL parser
    /// serialises it to these very bytes, so the host and port are read
    /// back from the text when asked for: the cache holds one of these per
    /// client, and a parsed `Url` beside the text cost 88 bytes more each
    /// for parts only a fetch or an error page needs.
    text: Box<str>,
}

impl ClientIdUrl {
    /// Checks `s` against every CIMD identifier rule and keeps it unchanged.
    ///
    /// The specific rules are checked first so that the error names the rule
    /// that was broken; the last check refuses anything a URL parser would
    /// rewrite, which catches every other non-canonical spelling (upper-case
    /// or Unicode hosts, `:443`, odd IPv4 forms, backslashes, spaces...).
    ///
    /// # Errors
    ///
    /// A [`ClientIdError`] naming the first rule `s` breaks, in this order:
    /// length, scheme, URL syntax, userinfo, fragment, host, trailing dot,
    /// path, dot segments, canonical form.
    pub fn parse(s: &str) -> Result<Self, ClientIdError> {
        if s.len() > MAX_CLIENT_ID_LEN {
            return Err(ClientIdError::TooLong {
                len: s.len(),
                value: shown(s),
            });
        }
        // Compared on the raw bytes, before the parser lower-cases the scheme:
        // `HTTPS://` would otherwise pass here and only fail as non-canonical.
        let Some(rest) = s.strip_prefix(HTTPS_PREFIX) else {
            return Err(ClientIdError::NotHttps { value: shown(s) });
        };
        let url = Url::parse(s).map_err(|reason| ClientIdError::Unparseable {
            value: shown(s),
            reason,
        })?;

        // The authority ends where WHATWG parsing of a special scheme ends it.
        // Reading it from the raw string matters: the parser silently drops an
        // empty userinfo (`https://@host/`), so the parsed URL cannot show it.
        let authority_end = rest.find(['/', '\\', '?', '#']).unwrap_or(rest.len());
        let (authority, after_authority) = rest.split_at(authority_end);

        if authority.contains('@') || !url.username().is_empty() || url.password().is_some() {
            return Err(ClientIdError::UserInfo { value: shown(s) });
        }
        // Any `#` starts a fragment, even with nothing after it.
        if s.contains('#') {
            return Err(ClientIdError::Fragment { value: shown(s) });
        }
        // `https:///x` parses (the parser skips extra slashes and takes `x` as
        // the host), so an empty authority must be caught on the raw string.
        if authority.is_empty() || authority.starts_with(':') {
            return Err(ClientIdError::MissingHost { value: shown(s) });
        }
        let Some(host) = url.host() else {
            return Err(ClientIdError::MissingHost { value: shown(s) });
        };
        // A fully qualified `a.example.` reaches the same server as
        // `a.example` but is a different string, so it would be a second
        // identity for the same client.
        if let Host::Domain(domain) = host {
            if domain.ends_with('.') {
                return Err(ClientIdError::TrailingDotHost {
                    value: shown(s),
                    host: shown(domain),
                });
            }
        }
        // A backslash right after the authority is left to the final check:
        // the path exists, it is just spelled in a way the parser rewrites.
        if !after_authority.starts_with(['/', '\\']) {
            return Err(ClientIdError::MissingPath { value: shown(s) });
        }
        // The parser has already removed dot segments from `url.path()`, so
        // they can only be seen in the raw path. The parser also treats `%2e`
        // as a dot, so the encoded forms are dot segments too.
        let raw_path = after_authority
            .split_once('?')
            .map_or(after_authority, |(path, _query)| path);
        for segment in raw_path.split(['/', '\\']) {
            if is_dot_segment(segment) {
                return Err(ClientIdError::DotSegment {
                    value: shown(s),
                    segment: shown(segment),
                });
            }
        }
        // The final net for everything the specific rules do not name.
        if url.as_str() != s {
            return Err(ClientIdError::NotCanonical {
                value: shown(s),
                canonical: shown(url.as_str()),
            });
        }

        Ok(Self { text: s.into() })
    }

    /// The client_id exactly as received; this is the identity to compare,
    /// store and send.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The client_id parsed, for the fetcher. Its string form equals
    /// [`Self::as_str`]; it is parsed again on each call, which only a fetch
    /// does.
    ///
    /// # Errors
    ///
    /// None in practice: `parse` accepted exactly what the parser accepts
    /// unchanged. The error is passed on rather than turned into a panic.
    pub fn to_url(&self) -> Result<Url, url::ParseError> {
        Url::parse(&self.text)
    }

    /// The authority as written: host, and `:port` when there is one
    /// (`a.example:8443`, `[2001:db8::1]`). What a person recognises.
    pub fn authority(&self) -> &str {
        // Canonical form: `https://`, then the authority up to the path's
        // `/` (which `parse` requires); no userinfo, no backslash.
        let rest = &self.text[HTTPS_PREFIX.len()..];
        rest.find('/').map_or(rest, |end| &rest[..end])
    }

    /// The host as written, IPv6 literals in brackets (`[::1]`), as
    /// `Url::host_str` gives it.
    pub fn host_str(&self) -> &str {
        self.split_authority().0
    }

    /// The host: a domain name (ASCII, lower case, punycode) or an IP literal.
    pub fn host(&self) -> Host<&str> {
        let host = self.host_str();
        // A canonical host is exactly one of these spellings: the URL parser
        // reads any name ending in a number as IPv4 and rewrites it to the
        // dotted quad, so a name the standard library reads as an address
        // was one for the parser too.
        if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            if let Ok(address) = v6.parse() {
                return Host::Ipv6(address);
            }
        } else if let Ok(address) = host.parse() {
            return Host::Ipv4(address);
        }
        Host::Domain(host)
    }

    /// The port to connect to: the explicit one, or 443.
    pub fn port(&self) -> u16 {
        // The parser drops an explicit `:443` and `parse` refuses such a
        // spelling, so an absent port always means the https default.
        self.split_authority()
            .1
            .and_then(|port| port.parse().ok())
            .unwrap_or(443)
    }

    /// The authority's host and port texts.
    fn split_authority(&self) -> (&str, Option<&str>) {
        let authority = self.authority();
        // The port follows the last `:` after an IPv6 literal's `]`.
        let host_end = authority.rfind(']').map_or(0, |bracket| bracket + 1);
        match authority[host_end..].find(':') {
            Some(colon) => {
                let (host, port) = authority.split_at(host_end + colon);
                (host, Some(&port[1..]))
            }
            None => (authority, None),
        }
    }
}

impl fmt::Display for ClientIdUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ClientIdUrl {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// True when a client_id is meant as a URL (so it must be a valid one) rather than a pre-registered opaque id.
///
/// That is when it starts with `https://` or `http://`, compared
/// ASCII-case-insensitively. The generous test is deliberate: `HTTPS://...`
/// or `http://...` is clearly meant as a CIMD URL, so it must get a clear
/// refusal from [`ClientIdUrl::parse`] instead of being passed upstream as an
/// opaque id.
pub fn is_url_client_id(s: &str) -> bool {
    let starts_with = |prefix: &[u8]| {
        s.as_bytes()
            .get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
    };
    starts_with(b"https://") || starts_with(b"http://")
}

/// True when a raw path segment is `.` or `..`, in any spelling the URL
/// parser treats as one (`%2e`, `%2E`, `.%2e`, `%2e.`, `%2E%2e`...).
fn is_dot_segment(segment: &str) -> bool {
    // Longer segments cannot be dot segments; checking the length first also
    // keeps the work constant.
    if segment.len() > 6 {
        return false;
    }
    let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
    decoded == "." || decoded == ".."
}

/// Why a client_id is not a valid CIMD client identifier URL.
///
/// Every variant maps to [`ErrorCode::InvalidClientIdUrl`]; the variants
/// exist so that the message names the broken rule. Values in messages are
/// escaped and shortened to at most 100 characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientIdError {
    /// Longer than [`MAX_CLIENT_ID_LEN`] bytes.
    #[error(
        "client_id is {len} bytes long, more than the {MAX_CLIENT_ID_LEN} allowed: \"{value}\""
    )]
    TooLong {
        /// The length received, in bytes.
        len: usize,
        /// The start of the client_id, shortened.
        value: String,
    },
    /// Does not start with the lower-case `https://` (plain `http`, upper case
    /// or any other scheme).
    #[error(
        "client_id \"{value}\" must start with \"https://\" in lower case: only https is allowed"
    )]
    NotHttps {
        /// The client_id, shortened.
        value: String,
    },
    /// The URL parser refuses it.
    #[error("client_id \"{value}\" is not a valid URL: {reason}")]
    Unparseable {
        /// The client_id, shortened.
        value: String,
        /// What the parser found wrong.
        reason: url::ParseError,
    },
    /// Has a userinfo part (`user:pass@`, or even an empty `@`).
    #[error("client_id \"{value}\" must not contain userinfo (\"...@\" before the host)")]
    UserInfo {
        /// The client_id, shortened.
        value: String,
    },
    /// Has a fragment, even an empty trailing `#`.
    #[error("client_id \"{value}\" must not contain a fragment (\"#\")")]
    Fragment {
        /// The client_id, shortened.
        value: String,
    },
    /// Has no host between `https://` and the path.
    #[error("client_id \"{value}\" has no host")]
    MissingHost {
        /// The client_id, shortened.
        value: String,
    },
    /// The host name ends with `.` (a second spelling of the same host).
    #[error("client_id \"{value}\" has host \"{host}\" ending in \".\"; drop the trailing dot")]
    TrailingDotHost {
        /// The client_id, shortened.
        value: String,
        /// The host as parsed, shortened.
        host: String,
    },
    /// Nothing, or only a query, follows the authority: a path is required.
    #[error("client_id \"{value}\" has no path: a \"/\" must follow the host and port")]
    MissingPath {
        /// The client_id, shortened.
        value: String,
    },
    /// Has a `.` or `..` path segment, possibly percent-encoded.
    #[error("client_id \"{value}\" contains the dot path segment \"{segment}\"")]
    DotSegment {
        /// The client_id, shortened.
        value: String,
        /// The offending segment as written.
        segment: String,
    },
    /// Not in canonical form: a URL parser would change at least one byte.
    #[error(
        "client_id \"{value}\" is not in canonical form: a URL parser would rewrite it to \
         \"{canonical}\", and client_ids are compared as exact strings"
    )]
    NotCanonical {
        /// The client_id, shortened.
        value: String,
        /// What the parser makes of it, shortened.
        canonical: String,
    },
}

impl ClientIdError {
    /// The stable error code: always `invalid_client_id_url`.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::InvalidClientIdUrl
    }
}

/// A client_id (or any string an outsider chose) as a log line may carry
/// it: bounded and escaped.
/// The common case, short printable ASCII with nothing to escape, is
/// borrowed as is.
pub fn loggable(value: &str) -> Cow<'_, str> {
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

    /// Spellings that must be accepted, and kept byte for byte.
    const ACCEPTED: &[&str] = &[
        "https://app.example.com/oauth/client-metadata.json",
        "https://a.example/",
        "https://a.example:8443/client",
        "https://a.example/c?version=2",
        "https://a.example/c?x=[::1]:9",
        "https://a.example/c?",
        "https://a.example/a%2Fb",
        "https://a.example/.well-known/client",
        "https://a.example/..x/x..",
        "https://a.example/%2e%2e%2e",
        "https://xn--bcher-kva.example/c",
        "https://192.0.2.1/x",
        "https://[2001:db8::1]/x",
        "https://[2001:db8::1]:8443/x",
    ];

    #[test]
    fn accepts_canonical_identifiers_unchanged() {
        for s in ACCEPTED {
            let id = ClientIdUrl::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(id.as_str(), *s);
            assert_eq!(id.to_string(), *s);
            let url = id.to_url().unwrap();
            assert_eq!(url.as_str(), *s);
            // The parts read back from the text are the parser's.
            assert_eq!(Some(id.host_str()), url.host_str(), "{s}");
            assert_eq!(Some(id.host()), url.host(), "{s}");
            assert_eq!(Some(id.port()), url.port_or_known_default(), "{s}");
            let shown = match url.port() {
                Some(port) => format!("{}:{port}", id.host_str()),
                None => id.host_str().to_owned(),
            };
            assert_eq!(id.authority(), shown, "{s}");
            assert!(is_url_client_id(s), "{s}");
        }
    }

    #[test]
    fn host_and_port() {
        let id = ClientIdUrl::parse("https://a.example/c").unwrap();
        assert_eq!(id.host(), Host::Domain("a.example"));
        assert_eq!(id.port(), 443);
        let id = ClientIdUrl::parse("https://[2001:db8::1]:8443/x").unwrap();
        assert_eq!(
            id.host(),
            Host::<&str>::Ipv6("2001:db8::1".parse().unwrap())
        );
        assert_eq!(id.port(), 8443);
        assert_eq!(id.host_str(), "[2001:db8::1]");
        assert_eq!(id.authority(), "[2001:db8::1]:8443");
        let id = ClientIdUrl::parse("https://192.0.2.1/x").unwrap();
        assert_eq!(id.host(), Host::<&str>::Ipv4("192.0.2.1".parse().unwrap()));
        let id = ClientIdUrl::parse("https://a.example:8443/c?next=b:1/x").unwrap();
        assert_eq!(id.host(), Host::Domain("a.example"));
        assert_eq!(id.port(), 8443);
        assert_eq!(id.authority(), "a.example:8443");
    }

    #[test]
    fn serializes_as_the_string() {
        let id = ClientIdUrl::parse("https://a.example/c?x=1").unwrap();
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            r#""https://a.example/c?x=1""#
        );
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Rule {
        TooLong,
        NotHttps,
        Unparseable,
        UserInfo,
        Fragment,
        MissingHost,
        TrailingDot,
        MissingPath,
        DotSegment,
        NotCanonical,
    }

    fn rule_of(e: &ClientIdError) -> Rule {
        match e {
            ClientIdError::TooLong { .. } => Rule::TooLong,
            ClientIdError::NotHttps { .. } => Rule::NotHttps,
            ClientIdError::Unparseable { .. } => Rule::Unparseable,
            ClientIdError::UserInfo { .. } => Rule::UserInfo,
            ClientIdError::Fragment { .. } => Rule::Fragment,
            ClientIdError::MissingHost { .. } => Rule::MissingHost,
            ClientIdError::TrailingDotHost { .. } => Rule::TrailingDot,
            ClientIdError::MissingPath { .. } => Rule::MissingPath,
            ClientIdError::DotSegment { .. } => Rule::DotSegment,
            ClientIdError::NotCanonical { .. } => Rule::NotCanonical,
        }
    }

    /// Each refused spelling with the rule that must name it.
    const REFUSED: &[(&str, Rule)] = &[
        ("http://a.example/c", Rule::NotHttps),
        ("HTTPS://a.example/c", Rule::NotHttps),
        ("Https://a.example/c", Rule::NotHttps),
        ("ftp://a.example/c", Rule::NotHttps),
        ("https:a.example/c", Rule::NotHttps),
        (" https://a.example/c", Rule::NotHttps),
        ("a.example/c", Rule::NotHttps),
        ("", Rule::NotHttps),
        ("https://", Rule::Unparseable),
        ("https://a b.example/c", Rule::Unparseable),
        ("https://a.example:99999/c", Rule::Unparseable),
        ("https://[2001:db8::1/c", Rule::Unparseable),
        ("https://user:pass@a.example/c", Rule::UserInfo),
        ("https://user@a.example/c", Rule::UserInfo),
        ("https://@a.example/c", Rule::UserInfo),
        ("https://:@a.example/c", Rule::UserInfo),
        ("https://a.example/c#frag", Rule::Fragment),
        ("https://a.example/c#", Rule::Fragment),
        ("https://a.example/c?x#", Rule::Fragment),
        ("https:///c", Rule::MissingHost),
        ("https:////a.example/c", Rule::MissingHost),
        ("https://a.example./c", Rule::TrailingDot),
        ("https://a.example.:8443/c", Rule::TrailingDot),
        ("https://a.example", Rule::MissingPath),
        ("https://a.example?x=1", Rule::MissingPath),
        ("https://a.example:8443", Rule::MissingPath),
        ("https://a.example/./c", Rule::DotSegment),
        ("https://a.example/a/../c", Rule::DotSegment),
        ("https://a.example/a/..", Rule::DotSegment),
        ("https://a.example/.", Rule::DotSegment),
        ("https://a.example/%2e%2e/c", Rule::DotSegment),
        ("https://a.example/%2E%2E/c", Rule::DotSegment),
        ("https://a.example/.%2e/c", Rule::DotSegment),
        ("https://a.example/%2e./c", Rule::DotSegment),
        ("https://a.example/%2e/c", Rule::DotSegment),
        ("https://a.example/c/%2E?x", Rule::DotSegment),
        ("https://a.example\\..\\c", Rule::DotSegment),
        // Everything below parses, but not to itself.
        ("https://A.example/c", Rule::NotCanonical),
        ("https://a.EXAMPLE.com/c", Rule::NotCanonical),
        ("https://a.example:443/c", Rule::NotCanonical),
        ("https://a.example:/c", Rule::NotCanonical),
        ("https://a.example:08443/c", Rule::NotCanonical),
        ("https://0x7f.1/c", Rule::NotCanonical),
        ("https://2130706433/c", Rule::NotCanonical),
        ("https://127.1/c", Rule::NotCanonical),
        ("https://0177.0.0.1/c", Rule::NotCanonical),
        ("https://192.0.2.01/c", Rule::NotCanonical),
        ("https://[2001:DB8::1]/c", Rule::NotCanonical),
        ("https://[2001:db8:0::1]/c", Rule::NotCanonical),
        ("https://[::ffff:192.0.2.1]/c", Rule::NotCanonical),
        ("https://bücher.example/c", Rule::NotCanonical),
        ("https://a%2Eexample/c", Rule::NotCanonical),
        ("https://a.example\\c", Rule::NotCanonical),
        ("https://a.example/a b", Rule::NotCanonical),
        ("https://a.example/c?a b", Rule::NotCanonical),
        ("https://a.example/c\t", Rule::NotCanonical),
        ("https://a.example/c\n", Rule::NotCanonical),
        ("https://a.example/c ", Rule::NotCanonical),
        ("https://a.example/ü", Rule::NotCanonical),
        ("https://a.example/c\"", Rule::NotCanonical),
    ];

    #[test]
    fn refuses_each_rule_with_its_own_variant() {
        for (s, rule) in REFUSED {
            match ClientIdUrl::parse(s) {
                Ok(_) => panic!("accepted {s:?}, expected {rule:?}"),
                Err(e) => {
                    assert_eq!(rule_of(&e), *rule, "{s:?}: {e}");
                    assert_eq!(e.code(), ErrorCode::InvalidClientIdUrl);
                }
            }
        }
    }

    #[test]
    fn refuses_over_long_input_before_parsing() {
        let at_limit = format!("https://a.example/{}", "a".repeat(MAX_CLIENT_ID_LEN - 18));
        assert_eq!(at_limit.len(), MAX_CLIENT_ID_LEN);
        assert!(ClientIdUrl::parse(&at_limit).is_ok());
        let over = format!("{at_limit}a");
        let e = ClientIdUrl::parse(&over).unwrap_err();
        assert_eq!(rule_of(&e), Rule::TooLong);
        assert!(e.to_string().contains("2049 bytes"), "{e}");
    }

    #[test]
    fn messages_show_the_value_and_the_rewrite() {
        let e = ClientIdUrl::parse("https://a.example:443/c").unwrap_err();
        assert_eq!(
            e.to_string(),
            "client_id \"https://a.example:443/c\" is not in canonical form: a URL parser \
             would rewrite it to \"https://a.example/c\", and client_ids are compared as exact strings"
        );
        let e = ClientIdUrl::parse("https://a.example/%2e%2e/c").unwrap_err();
        assert!(e.to_string().contains("\"%2e%2e\""), "{e}");
    }

    #[test]
    fn messages_are_bounded_and_escaped() {
        for s in [
            format!("https://a.example/{}", "é".repeat(5000)),
            format!("http://a.example/{}", "x".repeat(5000)),
            format!("https://a.example:443/{}", "x".repeat(1000)),
            "https://a.example/c\n\u{1b}[31mforged\"".to_owned(),
        ] {
            let e = ClientIdUrl::parse(&s).unwrap_err();
            let message = e.to_string();
            assert!(message.chars().count() < 400, "{message}");
            assert!(!message.chars().any(char::is_control), "{message:?}");
        }
    }

    #[test]
    fn shown_cuts_at_the_limit() {
        assert_eq!(shown("abc"), "abc");
        let exact = "x".repeat(MAX_SHOWN_CHARS);
        assert_eq!(shown(&exact), exact);
        let cut = shown(&"x".repeat(MAX_SHOWN_CHARS + 1));
        assert_eq!(cut.chars().count(), MAX_SHOWN_CHARS);
        assert!(cut.ends_with('…'));
        assert_eq!(shown("a\"b\n"), "a\\\"b\\n");
        assert_eq!(shown(&"\u{1}".repeat(50)).chars().count(), MAX_SHOWN_CHARS);
    }

    #[test]
    fn url_client_id_detection() {
        for s in [
            "https://a.example/c",
            "HTTPS://a",
            "Http://a.example/c",
            "http://x",
        ] {
            assert!(is_url_client_id(s), "{s}");
        }
        for s in [
            "my-client",
            "",
            "https:/",
            "https",
            "urn:x",
            "é",
            "00000000-0000-0000",
        ] {
            assert!(!is_url_client_id(s), "{s}");
        }
    }

    #[test]
    fn hostile_client_ids_are_escaped_and_bounded_for_logs() {
        assert!(matches!(
            loggable("https://app.example/c.json"),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            loggable("https://a.example/\"x\n"),
            "https://a.example/\\\"x\\n"
        );
        let long = "https://a.example/".to_owned() + &"x".repeat(10 * MAX_CLIENT_ID_LEN);
        assert!(loggable(&long).len() <= MAX_CLIENT_ID_LEN + 1);
    }
}
