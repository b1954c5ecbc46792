use super::*;
use crate::preflight::check_file;

/// Validates `text` as `config check` does: the files it names read too.
fn load(text: &str) -> Result<Config, Vec<Problem>> {
    Config::from_toml_str_checking(text, None, &check_file).map_err(|error| match error {
        ConfigError::Invalid(problems) => problems,
        other => panic!("expected validation problems, got {other}"),
    })
}

fn keys(problems: &[Problem]) -> Vec<&str> {
    problems
        .iter()
        .map(|problem| problem.key.as_str())
        .collect()
}

#[test]
fn empty_file_is_a_valid_configuration_with_safe_defaults() {
    let config = load("").expect("empty config is valid");
    assert_eq!(config.fetch.timeout, Duration::from_millis(5000));
    assert_eq!(config.fetch.max_document_bytes, 5120);
    assert_eq!(config.fetch.allowed_ports, vec![443]);
    assert_eq!(config.fetch.max_concurrent_fetches, 64);
    assert_eq!(config.fetch.max_concurrent_logo_fetches, 4);
    assert_eq!(config.fetch.logo_prefetch_queue, 256);
    assert!(config.fetch.allow_cidrs.is_empty());
    assert_eq!(config.policy.default_action, Action::Warn);
    assert_eq!(config.policy.loopback_only_redirects, Action::Warn);
}

#[test]
fn a_fetch_section_alone_is_enough_for_check() {
    let config = load(
        r#"
        [fetch]
        timeout_ms = 1500
        max_document_bytes = 4096
        allowed_ports = [443, 8443]
        dns_servers = ["127.0.0.1:5353", "::1"]
        allow_cidrs = ["10.1.2.3", "fd00::/8"]
        deny_cidrs = ["203.0.113.0/24"]
        extra_root_certs = ""
        max_concurrent_fetches = 8
        max_concurrent_logo_fetches = 2
        logo_prefetch_queue = 16
        "#,
    )
    .expect("valid");
    assert_eq!(config.fetch.timeout, Duration::from_millis(1500));
    assert_eq!(config.fetch.allowed_ports, vec![443, 8443]);
    assert_eq!(
        config.fetch.dns_servers,
        vec![
            "127.0.0.1:5353".parse::<SocketAddr>().unwrap(),
            "[::1]:53".parse().unwrap()
        ]
    );
    assert_eq!(
        config.fetch.allow_cidrs[0],
        "10.1.2.3/32".parse::<IpNet>().unwrap()
    );
    assert_eq!(config.fetch.extra_root_certs, None);
    assert_eq!(config.fetch.max_concurrent_fetches, 8);
    assert_eq!(config.fetch.max_concurrent_logo_fetches, 2);
    assert_eq!(config.fetch.logo_prefetch_queue, 16);
}

#[test]
fn logo_fetches_need_at_least_one_permit_and_one_queue_slot() {
    let problems = load(
        "[fetch]
max_concurrent_logo_fetches = 0
logo_prefetch_queue = 0
",
    )
    .expect_err("refused");
    assert_eq!(
        keys(&problems),
        [
            "fetch.max_concurrent_logo_fetches",
            "fetch.logo_prefetch_queue"
        ]
    );
}

#[test]
fn every_problem_is_reported_at_once_with_its_key() {
    let problems = load(
        r#"
        unknown_top = 1
        [fetch]
        timeout_ms = "fast"
        max_document_bytes = 0
        allowed_ports = []
        dns_servers = ["not an address"]
        allow_cidrs = ["10.0.0.1/8"]
        deny_cidr = ["10.0.0.0/8"]
        extra_root_certs = "/nonexistent/ca.pem"
        [cache]
        min_ttl_s = 600
        max_ttl_s = 60
        max_entries = 0
        [policy]
        default_action = "maybe"
        [[policy.rules]]
        client_id = "http://insecure.example/*"
        [seal]
        keys_env = "A"
        keys_file = "b"
        "#,
    )
    .expect_err("invalid");
    let keys = keys(&problems);
    for expected in [
        "unknown_top",
        "fetch.timeout_ms",
        "fetch.max_document_bytes",
        "fetch.allowed_ports",
        "fetch.dns_servers[0]",
        "fetch.allow_cidrs[0]",
        "fetch.deny_cidr",
        "fetch.extra_root_certs",
        "cache.min_ttl_s",
        "cache.max_entries",
        "policy.default_action",
        "policy.rules[0].client_id",
        "policy.rules[0].action",
        "seal.keys_env",
    ] {
        assert!(keys.contains(&expected), "missing {expected} in {keys:?}");
    }
}

#[test]
fn the_rendered_error_lists_every_problem() {
    let error = Config::from_toml_str("[fetch]\ntimeout_ms = 0\nbogus = 1\n", None).unwrap_err();
    let text = error.to_string();
    assert!(text.starts_with("configuration has 2 problems:"), "{text}");
    assert!(text.contains("fetch.timeout_ms: must be between 1 and 60000, found 0"));
    assert!(text.contains("fetch.bogus: unknown key"));
}

#[test]
fn syntax_errors_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[fetch\ntimeout_ms = 1\n").unwrap();
    let error = Config::load(&path).unwrap_err();
    assert!(matches!(error, ConfigError::Syntax { .. }));
    let text = error.to_string();
    assert!(text.contains("bad.toml"), "{text}");
    assert!(text.contains("line 1"), "{text}");
}

#[test]
fn a_section_of_the_wrong_type_is_a_problem_not_a_panic() {
    let problems = load("fetch = 3\npolicy = []\n").unwrap_err();
    assert_eq!(keys(&problems), vec!["fetch", "policy"]);
}

#[test]
fn policy_rules_and_upstream_clients_cross_check() {
    let config = load(
        r#"
        [upstream]
        issuer = "https://login.example.com/tenant/v2.0"
        resource_parameter = "drop"
        [upstream.clients.main]
        client_id = "11111111-2222"
        client_secret_env = "MAIN_SECRET"
        [upstream.clients.jwt]
        client_id = "33333333"
        auth_method = "private_key_jwt"
        private_key_file = "keys/upstream.pem"
        redirect_mode = "direct"
        [policy]
        default_action = "deny"
        default_upstream_client = "main"
        loopback_only_redirects = "deny"
        [[policy.rules]]
        client_id = "https://claude.ai/**"
        action = "allow"
        upstream_client = "jwt"
        scopes = ["openid", "profile"]
        "#,
    )
    .expect("valid");
    assert_eq!(
        config.upstream.translation.resource_parameter,
        crate::upstream::ResourceParameter::Drop
    );
    let main = &config.upstream.clients["main"];
    assert_eq!(main.auth_method, UpstreamAuthMethod::ClientSecretBasic);
    assert_eq!(
        main.client_secret,
        Some(SecretSource::Env("MAIN_SECRET".into()))
    );
    assert_eq!(
        config.upstream.clients["jwt"].redirect_mode,
        RedirectMode::Direct
    );
    assert_eq!(config.policy.rules.len(), 1);
    assert_eq!(
        config.policy.rules[0].upstream_client.as_deref(),
        Some("jwt")
    );

    let problems = load(
        r#"
        [upstream.clients.main]
        client_id = "x"
        auth_method = "client_secret_post"
        [upstream.clients.jwt]
        auth_method = "private_key_jwt"
        [policy]
        default_upstream_client = "missing"
        [[policy.rules]]
        client_id = "https://a.example/*"
        action = "allow"
        upstream_client = "also-missing"
        "#,
    )
    .unwrap_err();
    let keys = keys(&problems);
    for expected in [
        "upstream.clients.main.client_secret_env",
        "upstream.clients.jwt.client_id",
        "upstream.clients.jwt.private_key_file",
        "policy.default_upstream_client",
        "policy.rules[0].upstream_client",
    ] {
        assert!(keys.contains(&expected), "missing {expected} in {keys:?}");
    }
}

#[test]
fn relative_files_resolve_against_the_config_folder() {
    let config = Config::from_toml_str(
        "[seal]\nkeys_file = \"seal.keys\"\n[signing]\nkeys_file = \"/abs/sign.pem\"\n",
        Some(Path::new("/etc/cimd-proxy")),
    )
    .unwrap();
    assert_eq!(
        config.seal.keys,
        Some(SecretSource::File(PathBuf::from(
            "/etc/cimd-proxy/seal.keys"
        )))
    );
    assert_eq!(
        config.signing.keys_file,
        Some(PathBuf::from("/abs/sign.pem"))
    );
}

#[test]
fn serve_requirements_are_listed_together() {
    let config = load("").unwrap();
    let Err(ConfigError::Invalid(problems)) = config.require_serve() else {
        panic!("an empty configuration cannot serve");
    };
    assert_eq!(
        keys(&problems),
        vec![
            "server.public_url",
            "upstream.issuer",
            "upstream.clients",
            "seal"
        ]
    );
}

#[test]
fn public_url_must_be_https_except_on_loopback() {
    assert!(load("[server]\npublic_url = \"https://auth.example.com\"").is_ok());
    assert!(load("[server]\npublic_url = \"http://127.0.0.1:8080\"").is_ok());
    let problems = load("[server]\npublic_url = \"http://auth.example.com\"").unwrap_err();
    assert_eq!(keys(&problems), vec!["server.public_url"]);
    let problems = load("[server]\npublic_url = \"https://a.example/?x=1\"").unwrap_err();
    assert_eq!(keys(&problems), vec!["server.public_url"]);
}

#[test]
fn the_example_file_is_valid_and_documents_the_defaults() {
    let example = include_str!("../../policy.example.toml");
    let config = Config::from_toml_str(example, None).expect("policy.example.toml is valid");
    let defaults = Config::default();
    // The example shows every default value of the sections that have them.
    assert_eq!(
        format!("{:?}", config.fetch),
        format!("{:?}", defaults.fetch)
    );
    assert_eq!(
        format!("{:?}", config.cache),
        format!("{:?}", defaults.cache)
    );
    assert_eq!(config.server.listen, defaults.server.listen);
    assert_eq!(config.server.admin_listen, defaults.server.admin_listen);
    assert_eq!(
        config.server.max_connections,
        defaults.server.max_connections
    );
    assert_eq!(config.server.drain, defaults.server.drain);
    assert_eq!(
        config.upstream.discovery_refresh,
        defaults.upstream.discovery_refresh
    );
    assert_eq!(config.policy.default_action, defaults.policy.default_action);
    assert_eq!(config.seal.code_ttl, defaults.seal.code_ttl);
    assert_eq!(
        config.seal.refresh_token_ttl,
        defaults.seal.refresh_token_ttl
    );
    assert_eq!(config.upstream.timeout, defaults.upstream.timeout);
    assert!(config.resource.is_some());
    assert_eq!(config.policy.rules.len(), 2);
    config.require_serve().expect("the example can serve");
}

/// A JWK Set file holding one public P-256 key, in a fresh folder.
fn jwks_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let keys = crate::id_token::SigningKeys::generate_ephemeral().unwrap();
    std::fs::write(dir.path().join("registry.json"), keys.jwks().to_string()).unwrap();
    std::fs::write(dir.path().join("leaked.json"), {
        let mut jwks = keys.jwks();
        jwks["keys"][0]["d"] = "c2VjcmV0".into();
        jwks.to_string()
    })
    .unwrap();
    std::fs::write(dir.path().join("garbage.json"), "not json").unwrap();
    dir
}

#[test]
fn trust_issuers_read_their_keys_and_policy_rules_name_them() {
    let dir = jwks_dir();
    let config = Config::from_toml_str_checking(
        r#"
        [[trust.issuers]]
        name = "https://registry.example"
        jwks_file = "registry.json"
        required_claims = { tier = "verified" }
        [[trust.issuers]]
        name = "vendor"
        jwks_uri = "https://vendor.example/.well-known/jwks.json"
        algorithms = ["RS256", "ES384"]
        [[policy.rules]]
        require_statement_from = ["https://registry.example", "vendor"]
        action = "allow"
        [[policy.rules]]
        client_id = "https://*.example.com/**"
        require_statement_from = ["vendor"]
        action = "allow"
        "#,
        Some(dir.path()),
        &check_file,
    )
    .expect("valid");
    let [registry, vendor] = &config.trust.issuers[..] else {
        panic!("two issuers: {:?}", config.trust.issuers);
    };
    assert_eq!(registry.algorithms, DEFAULT_STATEMENT_ALGORITHMS.to_vec());
    assert_eq!(registry.required_claims["tier"], "verified");
    assert_eq!(
        registry.keys,
        IssuerKeys::File(dir.path().join("registry.json"))
    );
    assert_eq!(vendor.algorithms, vec![Algorithm::RS256, Algorithm::ES384]);
    assert!(
        matches!(&vendor.keys, IssuerKeys::Uri(url) if url.host_str() == Some("vendor.example"))
    );
    // A rule about trust alone covers every client_id.
    let rule = &config.policy.rules[0];
    assert_eq!(rule.client_id.as_str(), "https://**");
    assert_eq!(
        rule.require_statement_from.as_deref(),
        Some(&["https://registry.example".to_owned(), "vendor".to_owned()][..])
    );
}

#[test]
fn trust_problems_are_reported_with_their_keys() {
    let dir = jwks_dir();
    let error = Config::from_toml_str_checking(
        r#"
        [fetch]
        allowed_ports = [443]
        [[trust.issuers]]
        name = "both"
        jwks_file = "registry.json"
        jwks_uri = "https://x.example/jwks.json"
        [[trust.issuers]]
        name = "neither"
        [[trust.issuers]]
        name = "symmetric"
        jwks_file = "registry.json"
        algorithms = ["ES256", "HS256", "none", "ES512"]
        [[trust.issuers]]
        name = "leaked"
        jwks_file = "leaked.json"
        [[trust.issuers]]
        name = "garbage"
        jwks_file = "garbage.json"
        [[trust.issuers]]
        name = "missing"
        jwks_file = "nowhere.json"
        [[trust.issuers]]
        name = "plain-http"
        jwks_uri = "http://x.example/jwks.json"
        [[trust.issuers]]
        name = "odd-port"
        jwks_uri = "https://x.example:8443/jwks.json"
        [[trust.issuers]]
        name = "claims"
        jwks_file = "registry.json"
        required_claims = { tier = 3 }
        algorithms = []
        [[trust.issuers]]
        name = "garbage"
        jwks_file = "registry.json"
        typo = 1
        [[trust.issuers]]
        jwks_file = "registry.json"
        [[policy.rules]]
        action = "allow"
        [[policy.rules]]
        require_statement_from = ["nobody"]
        action = "allow"
        [[policy.rules]]
        require_statement_from = []
        action = "allow"
        "#,
        Some(dir.path()),
        &check_file,
    )
    .unwrap_err();
    let ConfigError::Invalid(problems) = error else {
        panic!("expected problems");
    };
    let found = keys(&problems);
    for expected in [
        "trust.issuers[0].jwks_file",
        "trust.issuers[1].jwks_file",
        "trust.issuers[2].algorithms[1]",
        "trust.issuers[2].algorithms[2]",
        "trust.issuers[2].algorithms[3]",
        "trust.issuers[3].jwks_file",
        "trust.issuers[4].jwks_file",
        "trust.issuers[5].jwks_file",
        "trust.issuers[6].jwks_uri",
        "trust.issuers[7].jwks_uri",
        "trust.issuers[8].required_claims",
        "trust.issuers[8].algorithms",
        "trust.issuers[9].name",
        "trust.issuers[9].typo",
        "trust.issuers[10].name",
        "policy.rules[0].client_id",
        "policy.rules[1].require_statement_from[0]",
        "policy.rules[2].require_statement_from",
    ] {
        assert!(
            found.contains(&expected),
            "missing {expected} in {problems:#?}"
        );
    }
    let text = problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(text.contains("\"HS256\" is never accepted"), "{text}");
    assert!(text.contains("private key material"), "{text}");
    assert!(!text.contains("c2VjcmV0"), "{text}");
    assert!(
        text.contains("port 8443 is not in fetch.allowed_ports"),
        "{text}"
    );
}

#[test]
fn the_store_section_reads_every_key() {
    use crate::secret::SecretSource;
    use crate::store::{Backend, StoreConfig};
    assert_eq!(load("").unwrap().store, StoreConfig::default());
    let config = load(
        r#"
        [store]
        backend = "redis"
        url_file = "/run/secrets/redis-url"
        key_prefix = "team-a:"
        timeout_ms = 100
        max_entries = 5
        "#,
    )
    .unwrap();
    assert_eq!(config.store.backend, Backend::Redis);
    assert_eq!(
        config.store.url,
        SecretSource::File("/run/secrets/redis-url".into())
    );
    assert_eq!(config.store.key_prefix, "team-a:");
    assert_eq!(config.store.timeout, Duration::from_millis(100));
    assert_eq!(config.store.max_entries, 5);
    // The URL comes from CIMD_PROXY_REDIS_URL unless told otherwise.
    let config = load("[store]\nbackend = \"redis\"").unwrap();
    assert_eq!(
        config.store.url,
        SecretSource::Env("CIMD_PROXY_REDIS_URL".to_owned())
    );
}

#[test]
fn every_store_problem_is_reported_at_once_with_its_key() {
    let problems = load(
        r#"
        [store]
        backend = "memcached"
        url_env = "A"
        url_file = "b"
        key_prefix = "has space"
        timeout_ms = 0
        max_entries = 0
        root_certs = "/nonexistent/ca.pem"
        url = "redis://:secret@127.0.0.1"
        "#,
    )
    .unwrap_err();
    let mut keys = keys(&problems);
    keys.sort_unstable();
    assert_eq!(
        keys,
        vec![
            "store.backend",
            "store.key_prefix",
            "store.max_entries",
            "store.root_certs",
            "store.timeout_ms",
            "store.url",
            "store.url_env",
        ]
    );
    // The refused key is named, its value (a password here) never repeated.
    assert!(problems.iter().all(|p| !p.message.contains("secret")));
}

#[test]
fn redis_settings_with_the_memory_backend_are_a_mistake_not_ignored() {
    let problems = load("[store]\nurl_env = \"REDIS_URL\"").unwrap_err();
    assert_eq!(keys(&problems), vec!["store.url_env"]);
    assert!(problems[0].message.contains("redis"), "{}", problems[0]);
}

#[test]
fn the_example_file_shows_the_registration_defaults() {
    let example = include_str!("../../policy.example.toml");
    let config = Config::from_toml_str(example, None).expect("policy.example.toml is valid");
    assert_eq!(
        config.registration,
        crate::registration::RegistrationConfig::default()
    );
    assert_eq!(
        config.policy.registration,
        crate::policy::RegistrationPolicy::default()
    );
    let section = &example[example.find("[registration]").unwrap()..];
    for key in [
        "enabled",
        "lifetime_s",
        "max_body_bytes",
        "per_source_limit",
        "global_limit",
        "window_s",
        "trusted_proxies",
        "initial_access_token_env",
        "initial_access_token_file",
        "require_software_statement",
    ] {
        assert!(section.contains(&format!("{key} = ")), "{key} undocumented");
    }
}

#[test]
fn registration_settings_are_read_and_checked() {
    let config = Config::from_toml_str(
        r#"
        [[trust.issuers]]
        name = "https://registry.example"
        jwks_uri = "https://registry.example/jwks.json"
        [upstream.clients.main]
        client_id = "proxy-app"
        auth_method = "none"
        [policy.registration]
        action = "deny"
        scopes = ["openid"]
        [[policy.registration.tiers]]
        issuers = ["https://registry.example"]
        action = "allow"
        upstream_client = "main"
        [registration]
        enabled = true
        lifetime_s = 3600
        per_source_limit = 3
        trusted_proxies = ["10.0.0.0/8", "::1"]
        initial_access_token_env = "REG_TOKEN"
        require_software_statement = true
        "#,
        None,
    )
    .expect("valid");
    let registration = &config.registration;
    assert!(registration.enabled);
    assert_eq!(registration.lifetime, std::time::Duration::from_secs(3600));
    assert_eq!(registration.per_source_limit, 3);
    assert_eq!(registration.trusted_proxies.len(), 2);
    assert_eq!(
        registration.initial_access_token,
        Some(SecretSource::Env("REG_TOKEN".to_owned()))
    );
    assert!(registration.require_software_statement);
    let policy = &config.policy.registration;
    assert_eq!(policy.action, crate::policy::Action::Deny);
    assert_eq!(policy.tiers.len(), 1);
    assert_eq!(policy.tiers[0].upstream_client.as_deref(), Some("main"));

    let problems = load(
        r#"
        [upstream.clients.main]
        client_id = "proxy-app"
        auth_method = "none"
        [policy.registration]
        action = "maybe"
        upstream_client = "gone"
        [[policy.registration.tiers]]
        issuers = ["https://nobody.example"]
        action = "allow"
        [[policy.registration.tiers]]
        action = "allow"
        [registration]
        lifetime_s = 0
        max_body_bytes = 100
        trusted_proxies = ["10.0.0.1/8"]
        initial_access_token_env = "A"
        initial_access_token_file = "b"
        require_software_statement = true
        surprise = 1
        "#,
    )
    .unwrap_err();
    assert_eq!(
        keys(&problems),
        vec![
            "policy.registration.action",
            "policy.registration.upstream_client",
            "policy.registration.tiers[0].issuers[0]",
            "policy.registration.tiers[1].issuers",
            "registration.lifetime_s",
            "registration.max_body_bytes",
            "registration.initial_access_token_env",
            "registration.require_software_statement",
            "registration.trusted_proxies[0]",
            "registration.surprise",
        ]
    );
}

#[test]
fn the_example_file_shows_the_store_defaults() {
    let example = include_str!("../../policy.example.toml");
    let config = Config::from_toml_str(example, None).expect("policy.example.toml is valid");
    assert_eq!(config.store, crate::store::StoreConfig::default());
    // Every [store] key, the commented ones included, is described there.
    let section = &example[example.find("[store]").unwrap()..];
    for key in [
        "backend",
        "max_entries",
        "url_env",
        "url_file",
        "root_certs",
        "key_prefix",
        "timeout_ms",
    ] {
        assert!(section.contains(&format!("{key} = ")), "{key} undocumented");
    }
}

/// Validation alone reads no file the configuration names: the components
/// read them when built, and `config check` through [`FileCheck`].
#[test]
fn named_files_are_read_only_through_the_callers_check() {
    let text = r#"
        [fetch]
        extra_root_certs = "/nonexistent/ca.pem"
        [[trust.issuers]]
        name = "registry"
        jwks_file = "/nonexistent/registry.json"
        "#;
    let config = Config::from_toml_str(text, None).expect("valid without reading files");
    assert_eq!(
        config.fetch.extra_root_certs,
        Some(PathBuf::from("/nonexistent/ca.pem"))
    );
    let seen = std::cell::RefCell::new(Vec::new());
    let problems = match Config::from_toml_str_checking(text, None, &|file| {
        seen.borrow_mut().push(format!("{file:?}"));
        Err("refused".to_owned())
    }) {
        Err(ConfigError::Invalid(problems)) => problems,
        other => panic!("expected problems, got {other:?}"),
    };
    assert_eq!(
        keys(&problems),
        ["fetch.extra_root_certs", "trust.issuers[0].jwks_file"]
    );
    assert_eq!(seen.borrow().len(), 2, "{:?}", seen.borrow());
}

/// The names a choice accepts come from the enum's own string table.
#[test]
fn a_bad_choice_lists_the_names_it_accepts() {
    let problems = load(
        r#"
        [upstream]
        resource_parameter = "Drop"
        [upstream.clients.main]
        client_id = "x"
        client_secret_env = "S"
        auth_method = "basic"
        redirect_mode = "bounce"
        [policy]
        interstitial = "never"
        "#,
    )
    .expect_err("invalid");
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    for expected in [
        r#"upstream.resource_parameter: expected "forward", "drop" or "audience", found "Drop""#,
        r#"upstream.clients.main.auth_method: expected "client_secret_basic", "client_secret_post", "private_key_jwt" or "none", found "basic""#,
        r#"upstream.clients.main.redirect_mode: expected "relay" or "direct", found "bounce""#,
        r#"policy.interstitial: expected "warn" or "always", found "never""#,
    ] {
        assert!(
            text.iter().any(|line| line == expected),
            "{expected}\nin {text:#?}"
        );
    }
}

#[test]
fn availability_keys_are_read_and_bounded() {
    let config = load(
        "[server]\nmax_connections = 20\ndrain_s = 0\n\
         [upstream]\ndiscovery_refresh_s = 2\n[cache]\nstale_if_error_s = 0",
    )
    .unwrap();
    assert_eq!(config.server.max_connections, 20);
    assert_eq!(config.server.drain, Duration::ZERO);
    assert_eq!(config.upstream.discovery_refresh, Duration::from_secs(2));
    assert_eq!(config.cache.stale_if_error, Duration::ZERO);

    let defaults = load("").unwrap();
    assert_eq!(defaults.server.max_connections, 1024);
    assert_eq!(defaults.server.drain, Duration::from_secs(5));
    assert_eq!(defaults.upstream.discovery_refresh, Duration::from_secs(30));
    assert_eq!(defaults.cache.stale_if_error, Duration::from_secs(300));

    // Every out-of-range value is reported in one run.
    let problems = load(
        "[server]\nmax_connections = 0\ndrain_s = 301\n\
         [upstream]\ndiscovery_refresh_s = 0\n[cache]\nstale_if_error_s = 86401",
    )
    .unwrap_err();
    assert_eq!(
        keys(&problems),
        vec![
            "server.max_connections",
            "server.drain_s",
            "upstream.discovery_refresh_s",
            "cache.stale_if_error_s",
        ]
    );
}

#[test]
fn the_pages_section_names_whose_service_it_is() {
    let config = load(
        r#"
        [pages]
        organisation_name = "Example Corp"
        support_url = "https://help.example.com/"
        support_email = "it@example.com"
        [pages.scopes]
        "mcp:tools" = "Use the tools of the MCP server"
        "#,
    )
    .unwrap();
    assert_eq!(
        config.pages.organisation_name.as_deref(),
        Some("Example Corp")
    );
    assert_eq!(
        config.pages.scopes["mcp:tools"],
        "Use the tools of the MCP server"
    );
    assert_eq!(config.pages.logo_file, None);
}

#[test]
fn every_pages_problem_is_named_by_its_key() {
    let problems = load(
        r#"
        [pages]
        organisation_name = ""
        support_url = "http://help.example.com/"
        support_email = "not an address"
        logo_file = "/nonexistent/logo.png"
        colour = "blue"
        [pages.scopes]
        "mcp:tools" = "line one\nline two"
        "#,
    )
    .unwrap_err();
    assert_eq!(
        keys(&problems),
        vec![
            "pages.organisation_name",
            "pages.support_email",
            "pages.support_url",
            "pages.logo_file",
            "pages.scopes.mcp:tools",
            "pages.colour",
        ],
        "{problems:?}"
    );
    let logo = problems[3].to_string();
    assert!(logo.contains("cannot read /nonexistent/logo.png"), "{logo}");
}

#[test]
fn a_gate_section_reports_every_problem_and_keeps_paths_comparable() {
    let problems = load(
        r#"
        [gate]
        enabled = true
        listen = "8081"
        authorization_paths = ["auth", "/Auth/"]
        accel_redirect = "provider"
        consent_path = "/consent?x"
        ingress = "haproxy"
        "#,
    )
    .expect_err("invalid");
    assert_eq!(
        keys(&problems),
        vec![
            "gate.authorization_paths[0]",
            "gate.token_paths",
            "gate.accel_redirect",
            "gate.consent_path",
            "gate.ingress",
            "gate.listen",
        ]
    );
    let config = load(
        r#"
        [gate]
        enabled = true
        listen = "127.0.0.1:8081"
        authorization_paths = ["/Realms/x/protocol/openid-connect/auth/"]
        token_paths = ["/token"]
        "#,
    )
    .expect("valid");
    assert_eq!(
        config.gate.authorization_paths,
        vec!["/realms/x/protocol/openid-connect/auth"]
    );
    assert_eq!(config.gate.consent_path, "/cimd-gate/consent");
    // A gate-only deployment relays no sign-in: no upstream client needed.
    let gate_only = Config {
        server: ServerConfig {
            public_url: Some("https://proxy.example".parse().unwrap()),
            ..ServerConfig::default()
        },
        upstream: crate::upstream::UpstreamConfig {
            issuer: Some("https://idp.example".parse().unwrap()),
            ..Default::default()
        },
        ..config
    };
    assert!(
        matches!(gate_only.require_serve(), Err(ConfigError::Invalid(p)) if keys(&p) == vec!["seal"])
    );
}

/// A profile is only defaults: each key the operator sets wins, and the
/// result is one resolved struct (no handler matches on the name).
#[test]
fn a_profile_sets_defaults_that_every_key_overrides() {
    use crate::upstream::{Profile, ResourceParameter, Translation};
    let config = load(
        r#"
        [upstream]
        profile = "entra"
        [upstream.resource_scopes]
        "https://mcp.example" = "api://6b1f4c2e"
        [resource]
        resource = "https://mcp.example"
        "#,
    )
    .expect("valid");
    let translation = &config.upstream.translation;
    assert_eq!(translation.profile, Profile::Entra);
    assert_eq!(translation.resource_parameter, ResourceParameter::Drop);
    assert!(translation.qualify_scopes && translation.offline_access);
    assert!(translation.resource_requires_scope && !translation.access_type_offline);
    // Keys and resources in the URL parser's form, as requests are compared.
    assert_eq!(
        translation.resource_scopes.get("https://mcp.example/"),
        Some(&"api://6b1f4c2e".to_owned())
    );
    assert_eq!(
        translation.allowed_resources,
        Some(vec!["https://mcp.example/".to_owned()])
    );

    let overridden = load(
        r#"
        [upstream]
        profile = "google"
        resource_parameter = "forward"
        access_type_offline = false
        offline_access = true
        "#,
    )
    .expect("valid");
    let translation = &overridden.upstream.translation;
    assert_eq!(translation.resource_parameter, ResourceParameter::Forward);
    assert!(!translation.access_type_offline && translation.offline_access);
    assert_eq!(
        translation.allowed_resources, None,
        "no [resource]: not restricted"
    );

    // No profile: generic, today's behaviour.
    let generic = load("").expect("valid");
    assert_eq!(
        generic.upstream.translation,
        Translation::for_profile(Profile::Generic)
    );

    let problems = load(
        r#"
        [upstream]
        profile = "azure"
        qualify_scopes = "yes"
        [upstream.resource_scopes]
        "mcp" = "api://x"
        "#,
    )
    .expect_err("invalid");
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(text.iter().any(|line| line.starts_with(r#"upstream.profile: expected "generic", "entra", "okta", "google", "keycloak" or "auth0", found "azure""#)), "{text:#?}");
    assert!(
        text.iter()
            .any(|line| line == "upstream.qualify_scopes: expected true or false, found a string"),
        "{text:#?}"
    );
    assert!(
        text.iter()
            .any(|line| line.starts_with(r#"upstream.resource_scopes: "mcp": "#)),
        "{text:#?}"
    );
}

/// `[resource] resource` takes one identifier (as before) or several.
#[test]
fn the_resource_section_takes_one_identifier_or_several() {
    let one = load("[resource]\nresource = \"https://mcp.example/mcp\"\n").expect("valid");
    let resource = one.resource.as_ref().expect("a resource");
    assert_eq!(resource.resource.as_str(), "https://mcp.example/mcp");
    assert!(resource.additional.is_empty());
    let several =
        load("[resource]\nresource = [\"https://mcp.example/mcp\", \"https://api.example/\"]\n")
            .expect("valid");
    assert_eq!(
        several.upstream.translation.allowed_resources,
        Some(vec![
            "https://mcp.example/mcp".to_owned(),
            "https://api.example/".to_owned()
        ])
    );
    for bad in [
        "resource = []",
        "resource = 3",
        "resource = [\"https://a.example/\", 3]",
        "resource = \"https://a.example/#frag\"",
        "resource = \"mcp\"",
    ] {
        let problems = load(&format!("[resource]\n{bad}\n")).expect_err(bad);
        assert_eq!(keys(&problems), vec!["resource.resource"], "{bad}");
    }
}

#[test]
fn relayed_clients_are_read_and_their_mistakes_reported() {
    let config = load(
        r#"
        [[upstream.relayed_clients]]
        client_id = "desktop-app"
        auth_method = "client_secret_basic"
        redirect_uris = ["http://127.0.0.1/cb", "com.example.desktop:/cb"]
        client_name = "Desktop App"
        [[upstream.relayed_clients]]
        client_id = "cli"
        redirect_uris = ["http://localhost/cb"]
        "#,
    )
    .expect("valid");
    let relayed = &config.upstream.relayed_clients;
    assert_eq!(relayed.len(), 2);
    assert_eq!(relayed[0].client_id(), "desktop-app");
    assert_eq!(
        relayed[0].registration.auth_method,
        UpstreamAuthMethod::ClientSecretBasic
    );
    assert_eq!(relayed[0].registration.redirect_mode, RedirectMode::Relay);
    assert_eq!(relayed[0].client_name.as_deref(), Some("Desktop App"));
    // A public client unless told otherwise.
    assert_eq!(
        relayed[1].registration.auth_method,
        UpstreamAuthMethod::None
    );

    let problems = load(
        r#"
        [[upstream.relayed_clients]]
        client_id = "https://app.example/client.json"
        redirect_uris = ["https://app.example/cb"]
        [[upstream.relayed_clients]]
        client_id = "jwt-app"
        auth_method = "private_key_jwt"
        redirect_uris = ["http://app.example/cb", "https://app.example/cb#x"]
        [[upstream.relayed_clients]]
        client_id = "jwt-app"
        redirect_uris = []
        secret = "no"
        [[upstream.relayed_clients]]
        auth_method = "none"
        "#,
    )
    .expect_err("invalid");
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    for expected in [
        "upstream.relayed_clients[0].client_id: is an https URL",
        "upstream.relayed_clients[1].auth_method: private_key_jwt cannot be relayed",
        "upstream.relayed_clients[1].redirect_uris: entry 0 \"http://app.example/cb\" uses http",
        "upstream.relayed_clients[1].redirect_uris: entry 1 \"https://app.example/cb#x\" must not contain a fragment",
        "upstream.relayed_clients[2].client_id: \"jwt-app\" is listed twice",
        "upstream.relayed_clients[2].redirect_uris: must list at least one redirect URI",
        "upstream.relayed_clients[2].secret",
        "upstream.relayed_clients[3].client_id",
        "upstream.relayed_clients[3].redirect_uris",
    ] {
        assert!(
            text.iter().any(|line| line.starts_with(expected)),
            "{expected}\nin {text:#?}"
        );
    }
}

#[test]
fn the_example_file_shows_the_inventory_and_admin_defaults() {
    let example = include_str!("../../policy.example.toml");
    let config = Config::from_toml_str(example, None).expect("policy.example.toml is valid");
    assert_eq!(
        config.inventory,
        crate::inventory::InventoryConfig::default()
    );
    assert_eq!(config.admin, crate::admin::AdminConfig::default());
    assert_eq!(config.policy.new_client_warning, None);
    for key in [
        "max_entries = ",
        "token_env = ",
        "token_file = ",
        "protect_reads = ",
        "new_client_warning = { until_users = 100, until_days = 7 }",
    ] {
        assert!(example.contains(key), "{key} undocumented");
    }
}

#[test]
fn the_new_client_warning_admin_token_and_inventory_bound_are_read() {
    let config = Config::from_toml_str(
        r#"
        [policy]
        new_client_warning = { until_users = 3, until_days = 2 }
        [inventory]
        max_entries = 5
        [admin]
        token_file = "/run/admin-token"
        protect_reads = true
        "#,
        None,
    )
    .expect("valid");
    assert_eq!(
        config.policy.new_client_warning,
        Some(crate::inventory::NewClientWarning {
            until_users: 3,
            until_days: 2
        })
    );
    assert_eq!(config.inventory.max_entries, 5);
    assert!(config.admin.protect_reads);
    assert_eq!(
        config.admin.token,
        Some(crate::secret::SecretSource::File("/run/admin-token".into()))
    );
}

#[test]
fn protected_reads_without_a_token_and_bad_bounds_are_each_a_problem() {
    let Err(ConfigError::Invalid(problems)) = Config::from_toml_str(
        r#"
        [policy]
        new_client_warning = { until_users = 0, until_dayz = 2 }
        [inventory]
        max_entries = 0
        [admin]
        protect_reads = true
        "#,
        None,
    ) else {
        panic!("invalid");
    };
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    for key in [
        "policy.new_client_warning.until_users",
        "policy.new_client_warning.until_dayz",
        "inventory.max_entries",
        "admin.protect_reads",
    ] {
        assert!(keys.contains(&key), "{key} not reported in {keys:?}");
    }
}
