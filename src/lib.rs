//! cimd-proxy: lets OAuth identity providers without dynamic registration
//! accept clients that identify themselves with a Client ID Metadata
//! Document (CIMD).
//!
//! The modules follow the request path; see ARCHITECTURE.md for the map.
//! What is exported here is what the binary and the integration tests use.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
pub mod admission;
pub mod cache;
pub mod check;
pub mod client_auth;
pub mod client_id;
pub mod clients_cli;
pub mod config;
#[cfg(feature = "dev")]
pub mod dev;
pub mod egress;
pub mod error_code;
pub mod flow;
pub mod gate;
pub mod html;
pub mod id_token;
pub mod inventory;
mod jwks;
pub mod jws_crypto;
pub mod logging;
pub mod logo;
pub mod metadata;
pub mod metrics;
pub mod policy;
pub mod preflight;
pub mod registration;
pub mod replay;
pub mod seal;
pub mod secret;
pub mod server;
pub mod store;
pub mod trust;
pub mod upstream;

pub use admission::{Admission, Admitted, Ask, RedirectAsk, Refusal};
pub use cache::{CacheStatus, DocumentCache, ResolveError, Resolved};
pub use check::{CheckReport, check};
pub use client_auth::{
    ClientAuthError, ClientAuthLimits, ClientAuthenticator, JWT_BEARER, TokenClientAuth,
};
pub use client_id::ClientIdUrl;
pub use config::{Config, ConfigError};
pub use egress::{Egress, FetchError};
pub use error_code::{ErrorCode, OAuthErrorCode};
pub use id_token::{IdTokenError, IdTokenVerifier, SigningError, SigningKeys, SigningSetupError};
pub use jwks::JwtError;
pub use metadata::ClientMetadata;
pub use policy::{Action, Decision, Policy};
pub use seal::{Purpose, SealError, SealSetupError, Sealer};
pub use trust::{ClientError, StatementError, Trust, Verdict};
pub use upstream::{IdentityProvider, Provider, ProviderMetadata, TokenResponse, UpstreamError};
