//! One test's private world: a CA, a DNS server and a scratch directory.
//!
//! Every test builds its own [`World`], so tests share no server, port or
//! file and can run in parallel. The conventional origin is `app.test`
//! served from `127.0.0.2`, the only loopback address the test
//! configuration allows (`fetch.allow_cidrs = ["127.0.0.2/32"]`).

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use tempfile::TempDir;

use super::cli::{Cli, RunOutput};
use super::config::ConfigFile;
use super::dns::DnsServer;
use super::origin::{Origin, Script};
use super::pki::{LeafCert, TestCa};

/// The loopback address test origins serve from and the config allows.
pub const ORIGIN_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// The host name of the conventional test client.
pub const APP_HOST: &str = "app.test";

/// `https://{host}:{port}{path}`, the client_id form the tests use.
pub fn client_id(host: &str, port: u16, path: &str) -> String {
    format!("https://{host}:{port}{path}")
}

/// A minimal valid public-client document for `client_id`.
pub fn document(client_id: &str) -> Value {
    json!({
        "client_id": client_id,
        "redirect_uris": ["https://app.test/cb"],
        "token_endpoint_auth_method": "none",
    })
}

/// A test's CA, DNS server and scratch directory.
pub struct World {
    /// Scratch directory holding `ca.pem` and config files; removed on drop.
    pub dir: TempDir,
    /// The test CA; `ca_pem` is its certificate on disk.
    pub ca: TestCa,
    /// Path of the CA certificate, for `fetch.extra_root_certs`.
    pub ca_pem: PathBuf,
    /// The DNS server named in `fetch.dns_servers`.
    pub dns: DnsServer,
    configs: AtomicUsize,
}

impl World {
    /// Creates the CA, writes `ca.pem` and starts the DNS server.
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = TestCa::new("world");
        let ca_pem = ca.write_pem(dir.path());
        let dns = DnsServer::start().await;
        Self {
            dir,
            ca,
            ca_pem,
            dns,
            configs: AtomicUsize::new(0),
        }
    }

    /// A certificate from the test CA for `names`.
    pub fn leaf(&self, names: &[&str]) -> LeafCert {
        self.ca.issue(names)
    }

    /// Serves `script` as `app.test` on `127.0.0.2:0` with a certificate
    /// from the test CA, and points `app.test` at `127.0.0.2` in DNS.
    pub async fn app(&self, script: Script) -> Origin {
        self.dns.set(APP_HOST, &[ORIGIN_IP]);
        let cert = self.leaf(&[APP_HOST]);
        Origin::start(ORIGIN_IP, 0, &cert, script)
            .await
            .expect("start app.test origin")
    }

    /// Serves `document(client_id)` as `app.test` and returns the origin
    /// and the client_id (`https://app.test:<port>/cimd.json`).
    pub async fn valid_app(&self) -> (Origin, String) {
        self.app_with(|id| Script::json(document(id).to_string()))
            .await
    }

    /// Serves `app.test` with the script `make(client_id)` builds, once the
    /// port (and so the client_id `https://app.test:<port>/cimd.json`) is known.
    pub async fn app_with(&self, make: impl FnOnce(&str) -> Script) -> (Origin, String) {
        self.host_with(APP_HOST, make).await
    }

    /// Like [`World::app_with`] for another host name: points `host` at
    /// `127.0.0.2` in DNS and serves it with a certificate for `host`.
    pub async fn host_with(
        &self,
        host: &str,
        make: impl FnOnce(&str) -> Script,
    ) -> (Origin, String) {
        self.dns.set(host, &[ORIGIN_IP]);
        let cert = self.leaf(&[host]);
        let origin = Origin::start(ORIGIN_IP, 0, &cert, Script::new())
            .await
            .expect("start origin");
        let id = client_id(host, origin.port(), "/cimd.json");
        origin.set_script(make(&id));
        (origin, id)
    }

    /// The default test configuration for an origin on `port`.
    pub fn config(&self, port: u16) -> ConfigFile {
        ConfigFile::new(port, self.dns.addr(), &self.ca_pem)
    }

    /// Writes `config` into the scratch directory under a fresh name.
    pub fn write_config(&self, config: &ConfigFile) -> PathBuf {
        let n = self.configs.fetch_add(1, Ordering::SeqCst);
        config.write(self.dir.path(), &format!("config-{n}.toml"))
    }

    /// Writes raw TOML as a config file under a fresh name.
    pub fn write_raw_config(&self, toml: &str) -> PathBuf {
        let n = self.configs.fetch_add(1, Ordering::SeqCst);
        let path = self.dir.path().join(format!("raw-{n}.toml"));
        std::fs::write(&path, toml).expect("write raw config");
        path
    }

    /// Runs `cimd-proxy check --config <config> --json <url>`.
    pub async fn check(&self, config: &ConfigFile, url: &str) -> RunOutput {
        Cli::check_json(&self.write_config(config), url).run().await
    }
}
