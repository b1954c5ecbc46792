//! Test support: a private CA, a programmable DNS server, scripted HTTPS
//! origins and decoys (all on loopback), the product's config file and a
//! runner for the product binary.
//!
//! Network rule: everything here listens on and connects to loopback
//! addresses only. Addresses the product must refuse appear only as DNS
//! answers.

// Each test module uses a different part of the support code.
#![allow(dead_code)]

pub mod cli;
pub mod config;
pub mod dns;
pub mod origin;
pub mod pki;
pub mod redis;
pub mod world;

#[cfg(test)]
mod selftest;

// Short paths for test modules; not every module uses every name.
#[allow(unused_imports)]
pub use cli::{Cli, RunOutput};
#[allow(unused_imports)]
pub use config::ConfigFile;
#[allow(unused_imports)]
pub use dns::DnsServer;
#[allow(unused_imports)]
pub use origin::{Decoy, Origin, RecordedRequest, Script};
#[allow(unused_imports)]
pub use pki::{LeafCert, TestCa};
#[allow(unused_imports)]
pub use world::{APP_HOST, ORIGIN_IP, World, client_id, document};
