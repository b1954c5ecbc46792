//! OAuth request parameters, read strictly.
//!
//! RFC 6749 §3.1: parameters must not be repeated, and a parameter sent
//! without a value is treated as omitted. Repetition is refused outright
//! rather than resolved (first wins? last wins?), because two components
//! that resolve it differently is how parameter-pollution attacks work.

use std::collections::HashMap;

/// The most bytes of query string or form body read for one request.
pub const MAX_PARAMS_BYTES: usize = 16 * 1024;

/// Parameters of one request, each at most once.
#[derive(Debug, Clone, Default)]
pub struct Params {
    values: HashMap<String, String>,
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

impl Params {
    /// Parses `application/x-www-form-urlencoded` text (a query or a body).
    pub fn parse(raw: &[u8]) -> Result<Params, ParamsError> {
        if raw.len() > MAX_PARAMS_BYTES {
            return Err(ParamsError::TooLarge);
        }
        let mut values = HashMap::new();
        for (name, value) in url::form_urlencoded::parse(raw) {
            if value.is_empty() {
                continue;
            }
            let name = name.into_owned();
            if values.contains_key(&name) {
                return Err(ParamsError::Repeated(shorten(&name)));
            }
            values.insert(name, value.into_owned());
        }
        Ok(Params { values })
    }

    /// A parameter's value, if present and non-empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
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
            Params::parse(&vec![b'a'; MAX_PARAMS_BYTES + 1]).unwrap_err(),
            ParamsError::TooLarge
        );
    }
}
