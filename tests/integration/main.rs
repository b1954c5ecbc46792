//! The single integration test binary (`autotests = false`).
//!
//! Tests start the real `cimd-proxy` binary against HTTPS origins, a DNS
//! server and certificates that live inside this process, on loopback only.

mod support;

mod cache;
mod check_cli;
mod client_auth;
#[cfg(feature = "dev")]
mod dev;
mod flow;
mod logo;
mod store;
mod trust;
