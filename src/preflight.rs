//! The files a configuration names, read ahead the way their components
//! will read them when built (PEM roots by `egress` and `upstream`, JWK Sets
//! by `trust`), so `config check`, `check`, `serve` and a reload list a bad
//! file among the configuration's other problems, named by its key, before
//! anything starts. No network: what is fetched (a `jwks_uri`, the
//! provider's discovery) is not touched.

use std::path::Path;

use crate::config::{Config, ConfigError, NamedFile, Problem};
use crate::secret::SecretSource;

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

/// Everything `serve` would refuse in a valid configuration, all at once
/// and named by key: what serving requires ([`Config::require_serve`]), the
/// sealing keys (readable, 32 bytes each, no repeats), the signing key file
/// (readable, a P-256 or RSA ≥ 2048 key) and every upstream client's secret
/// or private key, read from their environment variables and files as the
/// server will read them. No network (the provider's discovery is not
/// fetched). `config check --secrets` reports these; `serve` refuses to
/// start on any, before it reads anything else.
pub fn serve_problems(config: &Config) -> Vec<Problem> {
    let mut problems = match config.require_serve() {
        Err(ConfigError::Invalid(problems)) => problems,
        Err(other) => vec![Problem::new("", other.to_string())],
        Ok(()) => Vec::new(),
    };
    if let Some(source) = &config.seal.keys
        && let Err(error) = crate::seal::Sealer::from_source(source)
    {
        let key = match source {
            SecretSource::Env(_) => "seal.keys_env",
            SecretSource::File(_) => "seal.keys_file",
        };
        problems.push(Problem::new(key, error.to_string()));
    }
    if let Some(path) = &config.signing.keys_file
        && let Err(error) = crate::id_token::SigningKeys::load(path)
    {
        problems.push(Problem::new("signing.keys_file", error.to_string()));
    }
    if let Err(crate::registration::RegistrationSetupError::InitialAccessToken { key, reason }) =
        crate::registration::Registrar::new(&config.registration)
    {
        problems.push(Problem::new(key, reason));
    }
    for (client, reason) in crate::upstream::Provider::credential_problems(&config.upstream) {
        problems.push(Problem::new(&format!("upstream.clients.{client}"), reason));
    }
    if let Some(source) = &config.admin.token
        && let Err(error) = crate::admin::AdminToken::read(source)
    {
        let key = match source {
            SecretSource::Env(_) => "admin.token_env",
            SecretSource::File(_) => "admin.token_file",
        };
        problems.push(Problem::new(key, error.to_string()));
    }
    problems
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (issue 16): `serve` failed on missing seal keys, then on
    /// the next run on a missing signing key file: one problem a run.
    #[test]
    fn every_secret_problem_is_listed_at_once_by_key() {
        let config = config_from_toml_str(
            r#"
            [server]
            public_url = "https://login.example.com"
            [upstream]
            issuer = "https://idp.example.com"
            [upstream.clients.main]
            client_id = "proxy"
            auth_method = "client_secret_basic"
            client_secret_env = "CIMD_PROXY_TEST_SURELY_UNSET_SECRET"
            [seal]
            keys_file = "/nonexistent/cimd-proxy/seal-keys"
            [signing]
            keys_file = "/nonexistent/cimd-proxy/signing.pem"
            [registration]
            enabled = true
            initial_access_token_file = "/nonexistent/cimd-proxy/registration-token"
            "#,
            None,
        )
        .unwrap();
        let problems = serve_problems(&config);
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "seal.keys_file",
                "signing.keys_file",
                "registration.initial_access_token_file",
                "upstream.clients.main"
            ],
            "{problems:?}"
        );
        assert!(
            problems[3]
                .message
                .contains("CIMD_PROXY_TEST_SURELY_UNSET_SECRET")
        );
    }

    #[test]
    fn missing_serve_keys_are_listed_with_the_rest() {
        let config = config_from_toml_str(
            "[signing]\nkeys_file = \"/nonexistent/cimd-proxy/signing.pem\"\n",
            None,
        )
        .unwrap();
        let problems = serve_problems(&config);
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"server.public_url"), "{keys:?}");
        assert!(keys.contains(&"signing.keys_file"), "{keys:?}");
    }
}
