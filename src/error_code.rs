//! The stable error codes of the external contract, and the OAuth error
//! codes of the protocol.
//!
//! [`ErrorCode`]: every refusal the fetcher, the validator or the policy can
//! produce maps to exactly one of these. The string form is used verbatim in
//! `check --json` output, in log lines and as a metric label, so it must
//! never change and the set must stay closed.
//!
//! [`OAuthErrorCode`]: the `error` values of OAuth and OpenID Connect, the
//! ones the proxy emits and the ones a provider may send it.
//!
//! Both string tables are derived (`strum`), so a code's name is written once,
//! next to its variant; the tests pin every string.

use strum::{EnumString, IntoStaticStr};

/// A stable, machine-readable reason why a client_id was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, IntoStaticStr, EnumString, strum::Display)]
#[strum(serialize_all = "snake_case")]
pub enum ErrorCode {
    /// The client_id is not a valid CIMD client identifier URL.
    InvalidClientIdUrl,
    /// The host resolved to (or is) an address the block table refuses.
    BlockedAddress,
    /// The URL names a port outside `fetch.allowed_ports`.
    PortNotAllowed,
    /// The host name could not be resolved.
    DnsFailure,
    /// No TCP connection could be made to the vetted address.
    ConnectFailure,
    /// The TLS handshake or certificate verification failed.
    TlsFailure,
    /// The fetch did not finish within `fetch.timeout_ms`.
    Timeout,
    /// The origin answered with a status other than 200 (redirects included).
    HttpStatus,
    /// The response (headers or body) exceeded its size limit.
    TooLarge,
    /// The response is not a JSON media type, or its body is encoded.
    InvalidContentType,
    /// The body is not a strict JSON object.
    InvalidJson,
    /// The document's `client_id` is not the URL it was fetched from.
    ClientIdMismatch,
    /// The document breaks a CIMD metadata rule.
    InvalidMetadata,
    /// The operator's policy refuses this client.
    PolicyDenied,
    /// Outbound fetch capacity (`fetch.max_concurrent_fetches`) is exhausted.
    FetchOverloaded,
    /// A registration client_id (`/register`) that does not open: altered,
    /// expired, sealed under a key no longer configured, or registration
    /// turned off.
    InvalidRegistration,
}

impl ErrorCode {
    /// Every code, in contract order; handy for tests and metric pre-registration.
    pub const ALL: [ErrorCode; 16] = [
        ErrorCode::InvalidClientIdUrl,
        ErrorCode::BlockedAddress,
        ErrorCode::PortNotAllowed,
        ErrorCode::DnsFailure,
        ErrorCode::ConnectFailure,
        ErrorCode::TlsFailure,
        ErrorCode::Timeout,
        ErrorCode::HttpStatus,
        ErrorCode::TooLarge,
        ErrorCode::InvalidContentType,
        ErrorCode::InvalidJson,
        ErrorCode::ClientIdMismatch,
        ErrorCode::InvalidMetadata,
        ErrorCode::PolicyDenied,
        ErrorCode::FetchOverloaded,
        ErrorCode::InvalidRegistration,
    ];

    /// The code as it appears on the wire, in logs and in metric labels.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// An OAuth / OpenID Connect `error` code: every code registered in the
/// IANA "OAuth Extensions Error Registry" by the specifications the proxy
/// speaks, and [`OAuthErrorCode::Unknown`] for anything else.
///
/// The proxy emits the first ten (RFC 6749) and `invalid_target`
/// (RFC 8707); it relays every registered code a provider answers with
/// ([`OAuthErrorCode::from_provider`]), read as a type rather than passed
/// around as a string. An unregistered code is never kept as text: it is
/// the provider's (or an attacker's) bytes, and is not reflected to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, IntoStaticStr, EnumString, strum::Display)]
#[strum(serialize_all = "snake_case")]
pub enum OAuthErrorCode {
    // RFC 6749 §4.1.2.1, §4.2.2.1 and §5.2.
    /// Malformed or missing parameter.
    InvalidRequest,
    /// Client authentication failed, or the client is no longer acceptable.
    InvalidClient,
    /// The code or refresh token is invalid, expired, or belongs to another client.
    InvalidGrant,
    /// The client may not use this grant.
    UnauthorizedClient,
    /// The grant type is not supported.
    UnsupportedGrantType,
    /// Only `code` is supported.
    UnsupportedResponseType,
    /// The requested scope is not allowed.
    InvalidScope,
    /// The user or the provider refused.
    AccessDenied,
    /// Something unexpected on our side.
    ServerError,
    /// The provider or the fetcher cannot answer now.
    TemporarilyUnavailable,
    // RFC 6750 §3.1 (bearer tokens at a resource server).
    /// The access token is expired, revoked or malformed.
    InvalidToken,
    /// The access token lacks the scope the request needs.
    InsufficientScope,
    // RFC 7009 §2.2.1 (revocation).
    /// The server cannot revoke this type of token.
    UnsupportedTokenType,
    // RFC 7591 §3.2.2 (dynamic registration).
    /// A registered redirect URI is not acceptable.
    InvalidRedirectUri,
    /// A client metadata field is not acceptable.
    InvalidClientMetadata,
    /// The software statement is invalid.
    InvalidSoftwareStatement,
    /// The software statement is not approved by this server.
    UnapprovedSoftwareStatement,
    // RFC 8628 §3.5 (device authorization).
    /// The user has not finished authorizing the device yet.
    AuthorizationPending,
    /// The device polls too often.
    SlowDown,
    /// The device code has expired.
    ExpiredToken,
    // RFC 8707 §2 (resource indicators).
    /// The requested resource is not acceptable.
    InvalidTarget,
    // OpenID Connect Core 1.0 §3.1.2.6.
    /// The provider needs the user to interact.
    InteractionRequired,
    /// The provider needs the user to sign in.
    LoginRequired,
    /// The provider needs the user to pick an account.
    AccountSelectionRequired,
    /// The provider needs the user's consent.
    ConsentRequired,
    /// The `request_uri` is unusable.
    InvalidRequestUri,
    /// The request object is invalid.
    InvalidRequestObject,
    /// The `request` parameter is not supported.
    RequestNotSupported,
    /// The `request_uri` parameter is not supported.
    RequestUriNotSupported,
    /// The `registration` parameter is not supported.
    RegistrationNotSupported,
    /// A code no specification above registers. Its text is not kept; it is
    /// never put on the wire as such (see [`OAuthErrorCode::on_the_wire`]).
    Unknown,
}

impl OAuthErrorCode {
    /// Every code, in the order above.
    pub const ALL: [OAuthErrorCode; 31] = [
        OAuthErrorCode::InvalidRequest,
        OAuthErrorCode::InvalidClient,
        OAuthErrorCode::InvalidGrant,
        OAuthErrorCode::UnauthorizedClient,
        OAuthErrorCode::UnsupportedGrantType,
        OAuthErrorCode::UnsupportedResponseType,
        OAuthErrorCode::InvalidScope,
        OAuthErrorCode::AccessDenied,
        OAuthErrorCode::ServerError,
        OAuthErrorCode::TemporarilyUnavailable,
        OAuthErrorCode::InvalidToken,
        OAuthErrorCode::InsufficientScope,
        OAuthErrorCode::UnsupportedTokenType,
        OAuthErrorCode::InvalidRedirectUri,
        OAuthErrorCode::InvalidClientMetadata,
        OAuthErrorCode::InvalidSoftwareStatement,
        OAuthErrorCode::UnapprovedSoftwareStatement,
        OAuthErrorCode::AuthorizationPending,
        OAuthErrorCode::SlowDown,
        OAuthErrorCode::ExpiredToken,
        OAuthErrorCode::InvalidTarget,
        OAuthErrorCode::InteractionRequired,
        OAuthErrorCode::LoginRequired,
        OAuthErrorCode::AccountSelectionRequired,
        OAuthErrorCode::ConsentRequired,
        OAuthErrorCode::InvalidRequestUri,
        OAuthErrorCode::InvalidRequestObject,
        OAuthErrorCode::RequestNotSupported,
        OAuthErrorCode::RequestUriNotSupported,
        OAuthErrorCode::RegistrationNotSupported,
        OAuthErrorCode::Unknown,
    ];

    /// The code's registered name (`unknown` for [`OAuthErrorCode::Unknown`]).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Reads a code; anything unregistered is [`OAuthErrorCode::Unknown`].
    pub fn parse(code: &str) -> OAuthErrorCode {
        code.parse().unwrap_or(OAuthErrorCode::Unknown)
    }

    /// The code to send: itself, except that an unknown code is sent as
    /// `server_error` (the only honest thing to say about it).
    pub fn on_the_wire(self) -> &'static str {
        match self {
            OAuthErrorCode::Unknown => OAuthErrorCode::ServerError.as_str(),
            known => known.as_str(),
        }
    }

    /// The HTTP status of this error at the token endpoint (RFC 6749 §5.2).
    pub const fn token_status(self) -> http::StatusCode {
        match self {
            OAuthErrorCode::InvalidClient => http::StatusCode::UNAUTHORIZED,
            OAuthErrorCode::ServerError | OAuthErrorCode::Unknown => {
                http::StatusCode::INTERNAL_SERVER_ERROR
            }
            OAuthErrorCode::TemporarilyUnavailable => http::StatusCode::SERVICE_UNAVAILABLE,
            _ => http::StatusCode::BAD_REQUEST,
        }
    }

    /// What the proxy says when the provider answered with `code`: every
    /// registered code keeps its meaning (a client doing `prompt=none`
    /// must tell `login_required` from `access_denied`, and an
    /// `invalid_target` is the client's to fix); only an unregistered one
    /// becomes `server_error` rather than being reflected.
    pub fn from_provider(code: &str) -> OAuthErrorCode {
        match Self::parse(code) {
            OAuthErrorCode::Unknown => OAuthErrorCode::ServerError,
            known => known,
        }
    }
}

/// The most characters of a provider's `error_description` relayed.
const MAX_PROVIDER_DESCRIPTION: usize = 300;

/// What is put in place of an address in a provider's description.
const ADDRESS_REMOVED: &str = "(address removed)";

/// A provider's `error_description` as relayed to a client: its words
/// kept (Entra's `AADSTS…` codes are what people search for), but no URL,
/// no IP address and no name under the provider's own `host` — a client
/// has no business learning the provider's internal addresses — and only
/// the characters RFC 6749 §5.2 allows, cut to a bounded length.
pub fn provider_description(text: &str, provider_host: Option<&str>) -> String {
    let provider_host = provider_host.map(str::to_ascii_lowercase);
    let mut words: Vec<&str> = Vec::new();
    for word in text.split_whitespace() {
        let bare = word.trim_matches(|c: char| {
            matches!(
                c,
                '\'' | '"' | '(' | ')' | '[' | ']' | '<' | '>' | ',' | ';' | '.'
            )
        });
        let lower = bare.to_ascii_lowercase();
        let is_address = bare.contains("://")
            || is_ip_literal(bare)
            || provider_host
                .as_deref()
                .is_some_and(|host| !host.is_empty() && lower.contains(host));
        let word = if is_address { ADDRESS_REMOVED } else { word };
        if words.last() != Some(&ADDRESS_REMOVED) || word != ADDRESS_REMOVED {
            words.push(word);
        }
    }
    words
        .join(" ")
        .chars()
        // RFC 6749 §5.2: %x20-21 / %x23-5B / %x5D-7E.
        .filter(|c| matches!(c, ' '..='~') && *c != '"' && *c != '\\')
        .take(MAX_PROVIDER_DESCRIPTION)
        .collect()
}

/// An IPv4 or IPv6 address, with or without a port.
fn is_ip_literal(word: &str) -> bool {
    use std::net::{IpAddr, SocketAddr};
    word.parse::<IpAddr>().is_ok()
        || word.parse::<SocketAddr>().is_ok()
        || word.rsplit_once(':').is_some_and(|(host, port)| {
            port.parse::<u16>().is_ok() && host.parse::<IpAddr>().is_ok()
        })
}

#[cfg(test)]
mod tests {
    use super::{ErrorCode, OAuthErrorCode};
    use std::collections::HashSet;

    /// The wire, log and metric contract: each code's exact string, and that
    /// it parses back to the same code.
    #[test]
    fn every_error_code_string_round_trips() {
        let table = [
            (ErrorCode::InvalidClientIdUrl, "invalid_client_id_url"),
            (ErrorCode::BlockedAddress, "blocked_address"),
            (ErrorCode::PortNotAllowed, "port_not_allowed"),
            (ErrorCode::DnsFailure, "dns_failure"),
            (ErrorCode::ConnectFailure, "connect_failure"),
            (ErrorCode::TlsFailure, "tls_failure"),
            (ErrorCode::Timeout, "timeout"),
            (ErrorCode::HttpStatus, "http_status"),
            (ErrorCode::TooLarge, "too_large"),
            (ErrorCode::InvalidContentType, "invalid_content_type"),
            (ErrorCode::InvalidJson, "invalid_json"),
            (ErrorCode::ClientIdMismatch, "client_id_mismatch"),
            (ErrorCode::InvalidMetadata, "invalid_metadata"),
            (ErrorCode::PolicyDenied, "policy_denied"),
            (ErrorCode::FetchOverloaded, "fetch_overloaded"),
            (ErrorCode::InvalidRegistration, "invalid_registration"),
        ];
        assert_eq!(table.len(), ErrorCode::ALL.len());
        for (code, text) in table {
            assert_eq!(code.as_str(), text);
            assert_eq!(code.to_string(), text);
            assert_eq!(text.parse::<ErrorCode>(), Ok(code));
            assert_eq!(serde_json::to_value(code).unwrap(), text);
        }
        assert!("Timeout".parse::<ErrorCode>().is_err());
    }

    #[test]
    fn every_oauth_error_code_string_round_trips() {
        let table = [
            (OAuthErrorCode::InvalidRequest, "invalid_request"),
            (OAuthErrorCode::InvalidClient, "invalid_client"),
            (OAuthErrorCode::InvalidGrant, "invalid_grant"),
            (OAuthErrorCode::UnauthorizedClient, "unauthorized_client"),
            (
                OAuthErrorCode::UnsupportedGrantType,
                "unsupported_grant_type",
            ),
            (
                OAuthErrorCode::UnsupportedResponseType,
                "unsupported_response_type",
            ),
            (OAuthErrorCode::InvalidScope, "invalid_scope"),
            (OAuthErrorCode::AccessDenied, "access_denied"),
            (OAuthErrorCode::ServerError, "server_error"),
            (
                OAuthErrorCode::TemporarilyUnavailable,
                "temporarily_unavailable",
            ),
            (OAuthErrorCode::InvalidToken, "invalid_token"),
            (OAuthErrorCode::InsufficientScope, "insufficient_scope"),
            (
                OAuthErrorCode::UnsupportedTokenType,
                "unsupported_token_type",
            ),
            (OAuthErrorCode::InvalidRedirectUri, "invalid_redirect_uri"),
            (
                OAuthErrorCode::InvalidClientMetadata,
                "invalid_client_metadata",
            ),
            (
                OAuthErrorCode::InvalidSoftwareStatement,
                "invalid_software_statement",
            ),
            (
                OAuthErrorCode::UnapprovedSoftwareStatement,
                "unapproved_software_statement",
            ),
            (
                OAuthErrorCode::AuthorizationPending,
                "authorization_pending",
            ),
            (OAuthErrorCode::SlowDown, "slow_down"),
            (OAuthErrorCode::ExpiredToken, "expired_token"),
            (OAuthErrorCode::InvalidTarget, "invalid_target"),
            (OAuthErrorCode::InteractionRequired, "interaction_required"),
            (OAuthErrorCode::LoginRequired, "login_required"),
            (
                OAuthErrorCode::AccountSelectionRequired,
                "account_selection_required",
            ),
            (OAuthErrorCode::ConsentRequired, "consent_required"),
            (OAuthErrorCode::InvalidRequestUri, "invalid_request_uri"),
            (
                OAuthErrorCode::InvalidRequestObject,
                "invalid_request_object",
            ),
            (OAuthErrorCode::RequestNotSupported, "request_not_supported"),
            (
                OAuthErrorCode::RequestUriNotSupported,
                "request_uri_not_supported",
            ),
            (
                OAuthErrorCode::RegistrationNotSupported,
                "registration_not_supported",
            ),
            (OAuthErrorCode::Unknown, "unknown"),
        ];
        assert_eq!(table.len(), OAuthErrorCode::ALL.len());
        for (code, text) in table {
            assert_eq!(code.as_str(), text);
            assert_eq!(code.to_string(), text);
            assert_eq!(OAuthErrorCode::parse(text), code);
            let sent = if code == OAuthErrorCode::Unknown {
                "server_error"
            } else {
                text
            };
            assert_eq!(code.on_the_wire(), sent);
        }
        for unregistered in [
            "",
            "Invalid_Request",
            "invalid_request ",
            "<script>",
            "use_dpop",
        ] {
            assert_eq!(OAuthErrorCode::parse(unregistered), OAuthErrorCode::Unknown);
        }
    }

    /// Regression (issue 11): the provider's `invalid_target` reached the
    /// client as `server_error`, and `login_required` / `consent_required` /
    /// `interaction_required` as `access_denied`. Every registered code
    /// keeps its meaning; only an unknown one is `server_error`.
    #[test]
    fn provider_error_codes_keep_their_meaning() {
        for code in OAuthErrorCode::ALL {
            let relayed = OAuthErrorCode::from_provider(code.as_str());
            let expected = match code {
                OAuthErrorCode::Unknown => OAuthErrorCode::ServerError,
                registered => registered,
            };
            assert_eq!(relayed, expected, "{code}");
        }
        for code in ["invalid_target", "login_required", "consent_required"] {
            assert_eq!(OAuthErrorCode::from_provider(code).as_str(), code);
        }
        for unknown in ["AADSTS50058", "Login_Required", "<b>", ""] {
            assert_eq!(
                OAuthErrorCode::from_provider(unknown),
                OAuthErrorCode::ServerError,
                "{unknown}"
            );
        }
    }

    #[test]
    fn provider_descriptions_keep_their_words_but_no_address() {
        use super::provider_description;
        let entra = "AADSTS500011: The resource principal named https://mcp.internal.example/mcp was not found in the tenant.";
        assert_eq!(
            provider_description(entra, Some("login.example")),
            "AADSTS500011: The resource principal named (address removed) was not found in the tenant."
        );
        assert_eq!(
            provider_description(
                "upstream 10.1.2.3:8443 and [fd00::1] failed; see idp.corp.example/status",
                Some("idp.corp.example")
            ),
            "upstream (address removed) and (address removed) failed; see (address removed)"
        );
        // Characters RFC 6749 forbids in error_description go; the length is bounded.
        assert_eq!(
            provider_description("say \"no\" \\ \u{e9}t\u{e9}\n", None),
            "say no  t"
        );
        assert_eq!(provider_description(&"x".repeat(1000), None).len(), 300);
        assert_eq!(
            provider_description(
                "AADSTS9010010: The resource parameter provided in the request doesn't match with the requested scopes.",
                None
            ),
            "AADSTS9010010: The resource parameter provided in the request doesn't match with the requested scopes."
        );
    }

    #[test]
    fn codes_are_distinct_snake_case() {
        let seen: HashSet<_> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(seen.len(), ErrorCode::ALL.len());
        for code in seen {
            assert!(
                code.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{code}"
            );
        }
    }

    /// What a message people read must not contain: Rust type names and
    /// `Debug` output (hickory's `Query { name: Name(…) … }`, `Some("…")`),
    /// serde's `expected u64`, ungrammatical "body exceed".
    fn assert_plain(message: &str) {
        assert!(!message.trim().is_empty(), "empty message");
        for bad in [
            "Some(",
            "None",
            "Query {",
            "Name(",
            "std::",
            " { ",
            "expected u",
            "expected i",
            "Error(",
            "Kind(",
            "exceed the",
            "is a refused address is",
        ] {
            assert!(!message.contains(bad), "{bad:?} in {message:?}");
        }
        // A Rust path (`io::ErrorKind`), told from IPv6 (`[::1]`, `fe80::a`).
        let bytes = message.as_bytes();
        for at in message.match_indices("::").map(|(at, _)| at) {
            let before = at.checked_sub(1).map(|i| bytes[i]);
            let after = bytes.get(at + 2).copied();
            assert!(
                !(before.is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
                    && after.is_some_and(|b| b.is_ascii_uppercase())),
                "a Rust path in {message:?}"
            );
        }
        // Each cause once: no "X: X" chain.
        let parts: Vec<&str> = message.split(": ").collect();
        for pair in parts.windows(2) {
            assert_ne!(pair[0], pair[1], "a cause repeated in {message:?}");
        }
    }

    /// Real errors for a code, made the way the product makes them where
    /// that is cheap (parsing), otherwise constructed like their producer.
    fn messages_for(code: ErrorCode) -> Vec<String> {
        use crate::egress::FetchError;
        use crate::egress::classify::RangeClass;
        use crate::metadata::MetadataError;
        let fetch = |error: FetchError| {
            assert_eq!(error.code(), code, "{error}");
            error.to_string()
        };
        match code {
            ErrorCode::InvalidClientIdUrl => [
                "http://app.example/c",
                "https://user@app.example/c",
                "https://app.example",
                "https://app.example./c",
                "https://app.example/a/../c",
                "https://APP.example/c",
                "https://[::1/c",
            ]
            .iter()
            .map(|id| {
                crate::client_id::ClientIdUrl::parse(id)
                    .unwrap_err()
                    .to_string()
            })
            .collect(),
            ErrorCode::BlockedAddress => vec![
                fetch(FetchError::Blocked {
                    host: "internal.example".into(),
                    address: "10.2.3.4".parse().unwrap(),
                    class: RangeClass::Private,
                    range: "10.0.0.0/8".parse().unwrap(),
                    embedded: None,
                }),
                fetch(FetchError::Blocked {
                    host: "[::ffff:a9fe:a9fe]".into(),
                    address: "::ffff:a9fe:a9fe".parse().unwrap(),
                    class: RangeClass::CloudMetadata,
                    range: "169.254.169.254/32".parse().unwrap(),
                    embedded: Some("169.254.169.254".parse().unwrap()),
                }),
            ],
            ErrorCode::PortNotAllowed => vec![fetch(FetchError::PortNotAllowed { port: 8443 })],
            ErrorCode::DnsFailure => crate::egress::dns_reasons_for_tests()
                .into_iter()
                .map(|reason| {
                    fetch(FetchError::Dns {
                        host: "nowhere.example".into(),
                        reason,
                    })
                })
                .collect(),
            ErrorCode::ConnectFailure => vec![
                fetch(FetchError::Connect {
                    address: "192.0.2.1:443".parse().unwrap(),
                    reason: std::io::Error::from(std::io::ErrorKind::ConnectionRefused).to_string(),
                }),
                fetch(FetchError::Interrupted {
                    reason: "connection closed before message completed".into(),
                }),
            ],
            ErrorCode::TlsFailure => vec![fetch(FetchError::Tls {
                host: "app.example".into(),
                reason: "invalid peer certificate: UnknownIssuer".into(),
            })],
            ErrorCode::Timeout => vec![fetch(FetchError::Timeout {
                after: std::time::Duration::from_millis(5000),
            })],
            ErrorCode::HttpStatus => vec![
                fetch(FetchError::HttpStatus {
                    status: 404,
                    location: None,
                }),
                fetch(FetchError::HttpStatus {
                    status: 302,
                    location: Some("https://elsewhere.example/".into()),
                }),
            ],
            ErrorCode::TooLarge => ["headers", "body"]
                .into_iter()
                .map(|part| fetch(FetchError::TooLarge { part, limit: 5120 }))
                .collect(),
            ErrorCode::InvalidContentType => vec![
                fetch(FetchError::ContentType {
                    found: Some("text/html".into()),
                }),
                fetch(FetchError::ContentType { found: None }),
                fetch(FetchError::Encoded {
                    encoding: "gzip".into(),
                }),
            ],
            ErrorCode::InvalidJson => vec![
                MetadataError::InvalidJson {
                    reason: "expected value at line 1 column 1".into(),
                }
                .to_string(),
            ],
            ErrorCode::ClientIdMismatch => vec![
                MetadataError::ClientIdMismatch {
                    expected: "https://app.example/c".into(),
                    found: "\"https://other.example/c\"".into(),
                }
                .to_string(),
            ],
            ErrorCode::InvalidMetadata => vec![
                MetadataError::Invalid {
                    field: "redirect_uris",
                    reason: "must be a non-empty array of strings".into(),
                }
                .to_string(),
            ],
            ErrorCode::PolicyDenied => {
                vec!["the operator's policy denies this client".to_owned()]
            }
            ErrorCode::FetchOverloaded => vec![fetch(FetchError::Overloaded { limit: 64 })],
            ErrorCode::InvalidRegistration => {
                use crate::registration::RegistrationRefused as R;
                [
                    R::Disabled,
                    R::Expired,
                    R::UnknownKey,
                    R::Invalid,
                    R::NotServed,
                ]
                .iter()
                .map(ToString::to_string)
                .collect()
            }
        }
    }

    /// Regression (issue 16): `check` printed hickory's `Debug` dump for an
    /// unresolvable name, "resolves to X is a refused address", "body
    /// exceed", `content type Some("text/html")`. Every code's messages,
    /// and the page sentence shown for it, read as plain words.
    #[test]
    fn every_code_reads_as_plain_words() {
        for code in ErrorCode::ALL {
            let messages = messages_for(code);
            assert!(!messages.is_empty(), "{code}");
            for message in messages {
                assert_plain(&message);
            }
            assert_plain(crate::server::pages::PageReason::Client(code).sentence());
        }
    }

    /// The checks above can fail.
    #[test]
    #[should_panic(expected = "Query {")]
    fn a_debug_dump_is_caught() {
        assert_plain("no record found for Query { name: Name(\"example.com.\"), query_type: A }");
    }

    #[test]
    #[should_panic(expected = "a cause repeated")]
    fn a_repeated_cause_is_caught() {
        assert_plain(
            "No such file or directory (os error 2): No such file or directory (os error 2)",
        );
    }
}
