//! OAuth request parameters, read strictly.
//!
//! RFC 6749 §3.1: parameters must not be repeated, and a parameter sent
//! without a value is treated as omitted. Repetition is refused outright
//! rather than resolved (first wins? last wins?), because two components
//! that resolve it differently is how parameter-pollution attacks work.

use std::borrow::Cow;

/// The most bytes of query string or form body read for one request.
pub const MAX_PARAMS_BYTES: usize = 16 * 1024;

/// Parameters of one request, each at most once, sorted by name (a
/// request has a dozen: a sorted list is cheaper than hashing each name).
/// Names and values borrow the request's text unless they were encoded.
#[derive(Debug, Clone, Default)]
pub struct Params<'a> {
    values: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

/// Why parameters could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    /// A parameter appeared more than once.
    #[error("parameter {0} is repeated")]
    Repeated(String),
    /// The query or body is larger than [`MAX_PARAMS_BYTES`].
    #[error("request parameters exceed {MAX_PARAMS_BYTES} bytes")]
    TooLarge,
}

impl<'a> Params<'a> {
    /// Parses `application/x-www-form-urlencoded` text (a query or a body).
    pub fn parse(raw: &'a [u8]) -> Result<Params<'a>, ParamsError> {
        if raw.len() > MAX_PARAMS_BYTES {
            return Err(ParamsError::TooLarge);
        }
        let mut values: Vec<(Cow<'a, str>, Cow<'a, str>)> =
            Vec::with_capacity(raw.iter().filter(|&&b| b == b'&').count() + 1);
        for (name, value) in url::form_urlencoded::parse(raw) {
            if !value.is_empty() {
                values.push((name, value));
            }
        }
        // Stable: of repeated names, the first in the request comes first.
        values.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(pair) = values.windows(2).find(|pair| pair[0].0 == pair[1].0) {
            return Err(ParamsError::Repeated(shorten(&pair[0].0)));
        }
        Ok(Params { values })
    }

    /// The same parameters, owning their text (for tests that build a
    /// request's text and keep only its parameters).
    #[cfg(test)]
    pub fn into_owned(self) -> Params<'static> {
        Params {
            values: self
                .values
                .into_iter()
                .map(|(name, value)| {
                    (
                        Cow::Owned(name.into_owned()),
                        Cow::Owned(value.into_owned()),
                    )
                })
                .collect(),
        }
    }

    /// A parameter's value, if present and non-empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .binary_search_by(|(key, _)| key.as_ref().cmp(name))
            .ok()
            .map(|index| self.values[index].1.as_ref())
    }
}

fn shorten(name: &str) -> String {
    name.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_are_omitted_and_repeats_refused() {
        let params = Params::parse(b"a=1&b=&c=x%20y").unwrap();
        assert_eq!(params.get("a"), Some("1"));
        assert_eq!(params.get("b"), None);
        assert_eq!(params.get("c"), Some("x y"));
        assert_eq!(
            Params::parse(b"client_id=a&client_id=b").unwrap_err(),
            ParamsError::Repeated("client_id".into())
        );
        assert_eq!(
            Params::parse(b"z=1&b=2&a=3&b=4&z=5").unwrap_err(),
            ParamsError::Repeated("b".into())
        );
        let params = Params::parse(b"state=s&client_id=c&a=&scope=openid+x&nonce=%2F").unwrap();
        assert_eq!(params.get("client_id"), Some("c"));
        assert_eq!(params.get("scope"), Some("openid x"));
        assert_eq!(params.get("nonce"), Some("/"));
        assert_eq!(params.get("state"), Some("s"));
        assert_eq!(params.get("a"), None);
        assert_eq!(params.get("missing"), None);
        assert_eq!(
            Params::parse(&vec![b'a'; MAX_PARAMS_BYTES + 1]).unwrap_err(),
            ParamsError::TooLarge
        );
    }
}
