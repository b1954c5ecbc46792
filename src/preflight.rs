//! The files a configuration names, read ahead the way their components
//! will read them when built (PEM roots by `egress` and `upstream`, JWK Sets
//! by `trust`), so `config check`, `check`, `serve` and a reload list a bad
//! file among the configuration's other problems, named by its key, before
//! anything starts. No network: what is fetched (a `jwks_uri`, the
//! provider's discovery) is not touched.

use std::path::Path;

use crate::config::{Config, ConfigError, NamedFile};

/// Reads `file` as its component will.
///
/// # Errors
///
/// The component's message, naming the file and never its contents.
pub fn check_file(file: NamedFile<'_>) -> Result<(), String> {
    match file {
        NamedFile::RootCertificates(path) => crate::egress::load_pem_certificates(path).map(drop),
        NamedFile::JwkSet(path) => crate::trust::load_jwks_file(path).map(drop),
        NamedFile::Logo(path) => crate::server::pages::load_logo_file(path).map(drop),
    }
}

/// Loads and validates the configuration at `path`, with every file it
/// names read by [`check_file`]; all problems are reported at once.
///
/// # Errors
///
/// [`ConfigError`] listing every problem.
pub fn load_config(path: &Path) -> Result<Config, ConfigError> {
    Config::load_checking(path, &check_file)
}

/// [`load_config`] for configuration text; relative paths are resolved
/// against `base_dir`.
///
/// # Errors
///
/// [`ConfigError`] listing every problem.
pub fn config_from_toml_str(text: &str, base_dir: Option<&Path>) -> Result<Config, ConfigError> {
    Config::from_toml_str_checking(text, base_dir, &check_file)
}
