//! The product's TOML configuration, as the tests write it.
//!
//! Only the `[fetch]` keys of the external contract are modelled; anything
//! else (a `[policy]` section, deliberately broken keys) is appended as raw
//! TOML so that a test shows exactly what the product reads.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The `[fetch]` section.
#[derive(Clone, Debug)]
pub struct FetchSection {
    /// `fetch.timeout_ms`.
    pub timeout_ms: u64,
    /// `fetch.max_document_bytes`.
    pub max_document_bytes: u64,
    /// `fetch.allowed_ports`.
    pub allowed_ports: Vec<u16>,
    /// `fetch.dns_servers`.
    pub dns_servers: Vec<SocketAddr>,
    /// `fetch.allow_cidrs`.
    pub allow_cidrs: Vec<String>,
    /// `fetch.deny_cidrs`.
    pub deny_cidrs: Vec<String>,
    /// `fetch.extra_root_certs` (a PEM file).
    pub extra_root_certs: PathBuf,
    /// `fetch.max_concurrent_fetches`.
    pub max_concurrent_fetches: u32,
}

/// A whole configuration file.
#[derive(Clone, Debug)]
pub struct ConfigFile {
    /// The `[fetch]` section.
    pub fetch: FetchSection,
    /// Raw TOML appended after `[fetch]` (e.g. a `[policy]` section).
    pub extra: String,
}

impl ConfigFile {
    /// The test defaults: 1 s timeout, 5120 bytes, one allowed port, the
    /// test DNS server, only `127.0.0.2/32` allowed, the test CA trusted.
    pub fn new(port: u16, dns: SocketAddr, ca_pem: &Path) -> Self {
        Self {
            fetch: FetchSection {
                timeout_ms: 1000,
                max_document_bytes: 5120,
                allowed_ports: vec![port],
                dns_servers: vec![dns],
                allow_cidrs: vec!["127.0.0.2/32".to_string()],
                deny_cidrs: Vec::new(),
                extra_root_certs: ca_pem.to_path_buf(),
                max_concurrent_fetches: 64,
            },
            extra: String::new(),
        }
    }

    /// Appends raw TOML (a section or keys) after `[fetch]`.
    pub fn with_extra(mut self, toml: &str) -> Self {
        self.extra.push_str(toml);
        self.extra.push('\n');
        self
    }

    /// Adds a `[policy]` section with `default_action` and one rule per
    /// `(client_id pattern, action)`.
    pub fn with_policy(self, default_action: &str, rules: &[(&str, &str)]) -> Self {
        let mut toml = format!("[policy]\ndefault_action = {}\n", quote(default_action));
        for (pattern, action) in rules {
            let _ = write!(
                toml,
                "\n[[policy.rules]]\nclient_id = {}\naction = {}\n",
                quote(pattern),
                quote(action)
            );
        }
        self.with_extra(&toml)
    }

    /// The file's text.
    pub fn to_toml(&self) -> String {
        let f = &self.fetch;
        let list = |items: Vec<String>| format!("[{}]", items.join(", "));
        let mut out = String::from("[fetch]\n");
        let _ = writeln!(out, "timeout_ms = {}", f.timeout_ms);
        let _ = writeln!(out, "max_document_bytes = {}", f.max_document_bytes);
        let _ = writeln!(
            out,
            "allowed_ports = {}",
            list(f.allowed_ports.iter().map(u16::to_string).collect())
        );
        let _ = writeln!(
            out,
            "dns_servers = {}",
            list(
                f.dns_servers
                    .iter()
                    .map(|s| quote(&s.to_string()))
                    .collect()
            )
        );
        let _ = writeln!(
            out,
            "allow_cidrs = {}",
            list(f.allow_cidrs.iter().map(|s| quote(s)).collect())
        );
        let _ = writeln!(
            out,
            "deny_cidrs = {}",
            list(f.deny_cidrs.iter().map(|s| quote(s)).collect())
        );
        let _ = writeln!(
            out,
            "extra_root_certs = {}",
            quote(&f.extra_root_certs.to_string_lossy())
        );
        let _ = writeln!(out, "max_concurrent_fetches = {}", f.max_concurrent_fetches);
        if !self.extra.is_empty() {
            out.push('\n');
            out.push_str(&self.extra);
        }
        out
    }

    /// Writes the file into `dir` under `name` and returns its path.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, self.to_toml()).expect("write config");
        path
    }
}

/// A TOML basic string holding `s`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
