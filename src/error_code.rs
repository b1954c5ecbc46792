//! The stable error codes of the external contract.
//!
//! Every refusal the fetcher, the validator or the policy can produce maps to
//! exactly one of these. The string form is used verbatim in `check --json`
//! output, in log lines and as a metric label, so it must never change and
//! the set must stay closed.

use std::fmt;

/// A stable, machine-readable reason why a client_id was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
}

impl ErrorCode {
    /// Every code, in contract order; handy for tests and metric pre-registration.
    pub const ALL: [ErrorCode; 15] = [
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
    ];

    /// The code as it appears on the wire, in logs and in metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidClientIdUrl => "invalid_client_id_url",
            ErrorCode::BlockedAddress => "blocked_address",
            ErrorCode::PortNotAllowed => "port_not_allowed",
            ErrorCode::DnsFailure => "dns_failure",
            ErrorCode::ConnectFailure => "connect_failure",
            ErrorCode::TlsFailure => "tls_failure",
            ErrorCode::Timeout => "timeout",
            ErrorCode::HttpStatus => "http_status",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::InvalidContentType => "invalid_content_type",
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::ClientIdMismatch => "client_id_mismatch",
            ErrorCode::InvalidMetadata => "invalid_metadata",
            ErrorCode::PolicyDenied => "policy_denied",
            ErrorCode::FetchOverloaded => "fetch_overloaded",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;
    use std::collections::HashSet;

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
}
