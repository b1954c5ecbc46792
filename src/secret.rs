//! Where a secret comes from. The configuration names the place, never the
//! value; the component that needs the secret reads it when it is built
//! (`seal` its keys, `upstream` a client secret), so a secret never passes
//! through the configuration or its error messages.

use std::path::PathBuf;

/// Where a secret is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable.
    Env(String),
    /// A file (a mounted Kubernetes Secret).
    File(PathBuf),
}
