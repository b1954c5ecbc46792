//! One real `redis-server` per test run, shared by the tests that need it.
//!
//! Started on first use on a free loopback port, with a random password
//! (`requirepass`), no persistence, in a temporary folder; it also speaks
//! TLS on a second port, with a certificate for 127.0.0.1 from a CA made
//! for the run (`ca.pem` in its folder). Tests take
//! [`RedisServer::shared`] while they use it; a test that stops and starts
//! the server takes [`RedisServer::exclusive`], so no other test sees the
//! outage. A libtest binary has no hook at exit, so a watchdog shell holds
//! the read end of a pipe whose write end only this process has: when the
//! process ends (however it ends) the pipe closes, and the watchdog kills
//! the server and removes its folder.
//!
//! `redis-server` must be installed (`scripts/test` installs Debian's
//! package when it is missing).

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The shared server.
pub struct RedisServer {
    /// Its loopback port, the same across restarts.
    pub port: u16,
    /// Its TLS port (`rediss://`).
    pub tls_port: u16,
    /// The CA that issued its TLS certificate, PEM.
    pub ca_file: PathBuf,
    /// The `requirepass` password.
    pub password: String,
    dir: PathBuf,
    child: Mutex<Option<Child>>,
    gate: RwLock<()>,
    /// Its stdin is never written: that pipe closing at exit is its signal.
    _watchdog: Mutex<Child>,
}

static SERVER: OnceLock<RedisServer> = OnceLock::new();

/// The run's Redis, started on first use.
pub fn redis() -> &'static RedisServer {
    SERVER.get_or_init(RedisServer::launch)
}

fn random_hex(bytes: usize) -> String {
    use ring::rand::SecureRandom as _;
    let mut buf = vec![0u8; bytes];
    ring::rand::SystemRandom::new()
        .fill(&mut buf)
        .expect("randomness");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

impl RedisServer {
    fn launch() -> RedisServer {
        let dir = tempfile::Builder::new()
            .prefix("cimd-proxy-redis-")
            .tempdir()
            .expect("tempdir")
            .keep();
        let free_port = || {
            TcpListener::bind("127.0.0.1:0")
                .and_then(|listener| listener.local_addr())
                .expect("a free loopback port")
                .port()
        };
        let (port, tls_port) = (free_port(), free_port());
        let ca = super::pki::TestCa::new("redis");
        let ca_file = ca.write_pem(&dir);
        let leaf = ca.issue(&["127.0.0.1"]);
        let chain: String = leaf
            .chain()
            .iter()
            .map(|der| pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec())))
            .collect();
        std::fs::write(dir.join("server.pem"), chain).expect("write server.pem");
        let key = match leaf.key() {
            rustls::pki_types::PrivateKeyDer::Pkcs8(key) => key.secret_pkcs8_der().to_vec(),
            _ => unreachable!("the test CA issues PKCS#8 keys"),
        };
        std::fs::write(
            dir.join("server.key"),
            pem::encode(&pem::Pem::new("PRIVATE KEY", key)),
        )
        .expect("write server.key");
        let pidfile = dir.join("redis.pid");
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(r#"read _; kill "$(cat "$1")" 2>/dev/null; sleep 0.2; rm -rf "$2""#)
            .arg("watchdog")
            .arg(&pidfile)
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sh for the redis watchdog");
        let server = RedisServer {
            port,
            tls_port,
            ca_file,
            password: random_hex(16),
            dir,
            child: Mutex::new(None),
            gate: RwLock::new(()),
            _watchdog: Mutex::new(watchdog),
        };
        server.start();
        server
    }

    /// `redis://:password@127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("redis://:{}@127.0.0.1:{}", self.password, self.port)
    }

    /// `rediss://:password@127.0.0.1:tls_port`.
    pub fn tls_url(&self) -> String {
        format!("rediss://:{}@127.0.0.1:{}", self.password, self.tls_port)
    }

    /// Held while a test uses the server.
    pub async fn shared(&self) -> RwLockReadGuard<'_, ()> {
        self.gate.read().await
    }

    /// Held while a test stops and starts the server.
    pub async fn exclusive(&self) -> RwLockWriteGuard<'_, ()> {
        self.gate.write().await
    }

    /// Starts the server (again) on the same port and waits until it answers.
    pub fn start(&self) {
        let mut slot = self.child.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(slot.is_none(), "redis-server is already running");
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .arg("--requirepass")
            .arg(&self.password)
            .arg("--dir")
            .arg(&self.dir)
            .arg("--pidfile")
            .arg(self.dir.join("redis.pid"))
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .args(["--logfile", ""])
            .arg("--tls-port")
            .arg(self.tls_port.to_string())
            .arg("--tls-cert-file")
            .arg(self.dir.join("server.pem"))
            .arg("--tls-key-file")
            .arg(self.dir.join("server.key"))
            .arg("--tls-ca-cert-file")
            .arg(&self.ca_file)
            .args(["--tls-auth-clients", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot run redis-server ({error}): install Debian's redis-server package \
                     (scripts/test does when it is missing)"
                )
            });
        *slot = Some(child);
        drop(slot);
        self.wait_until_ready();
    }

    /// Stops the server at once (SIGKILL: an outage, not a shutdown).
    pub fn stop(&self) {
        let mut slot = self.child.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(mut child) = slot.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.answers_ping() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer on port {} within 10 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn answers_ping(&self) -> bool {
        let Ok(stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut writer = &stream;
        if write!(writer, "AUTH {}\r\nPING\r\n", self.password).is_err() {
            return false;
        }
        let mut reader = BufReader::new(&stream);
        let mut lines = [String::new(), String::new()];
        for line in &mut lines {
            if reader.read_line(line).is_err() {
                return false;
            }
        }
        lines[0] == "+OK\r\n" && lines[1] == "+PONG\r\n"
    }
}
