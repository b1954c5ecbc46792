//! Running the real `cimd-proxy` binary.
//!
//! The child runs on a blocking thread so that the in-process DNS server and
//! origins keep serving on the tokio runtime meanwhile. Proxy variables from
//! the environment are removed unless a test sets them, and a hard deadline
//! kills a hung child so that a product bug fails a test instead of hanging
//! the suite.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The product binary built by cargo for this test target.
pub const BIN: &str = env!("CARGO_BIN_EXE_cimd-proxy");

/// Environment variables that could route traffic through a proxy.
pub const PROXY_VARS: [&str; 8] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// Other variables the product reads that must not leak in from the
/// developer's shell.
pub const PRODUCT_VARS: [&str; 2] = ["CIMD_PROXY_CONFIG", "RUST_LOG"];

/// How long any single run may take before it is killed.
pub const HARD_DEADLINE: Duration = Duration::from_secs(30);

/// What one run of the binary produced.
#[derive(Debug)]
pub struct RunOutput {
    /// The exit code (`None` if killed by a signal or by the deadline).
    pub status: Option<i32>,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
    /// Wall-clock time from spawn to exit.
    pub elapsed: Duration,
    /// Whether the hard deadline killed the child.
    pub killed: bool,
}

impl RunOutput {
    /// Standard output parsed as one JSON value; panics with the whole
    /// output when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not one JSON value ({e}):\n{self}"))
    }

    /// `error.code` of the JSON output, if any.
    pub fn error_code(&self) -> Option<String> {
        self.json()["error"]["code"].as_str().map(str::to_string)
    }

    /// `error.message` of the JSON output, if any.
    pub fn error_message(&self) -> Option<String> {
        self.json()["error"]["message"].as_str().map(str::to_string)
    }
}

impl std::fmt::Display for RunOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit={:?} killed={} elapsed={:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.killed, self.elapsed, self.stdout, self.stderr
        )
    }
}

/// A command line for the product binary.
#[derive(Clone, Debug, Default)]
pub struct Cli {
    args: Vec<String>,
    envs: Vec<(String, String)>,
}

impl Cli {
    /// `cimd-proxy <args>`.
    pub fn new<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            args: args.into_iter().map(Into::into).collect(),
            envs: Vec::new(),
        }
    }

    /// `cimd-proxy check --config CONFIG --json URL`.
    pub fn check_json(config: &Path, url: &str) -> Self {
        Self::new([
            "check".to_string(),
            "--config".to_string(),
            config.to_string_lossy().into_owned(),
            "--json".to_string(),
            url.to_string(),
        ])
    }

    /// `cimd-proxy check --config CONFIG URL` (human output).
    pub fn check_human(config: &Path, url: &str) -> Self {
        Self::new([
            "check".to_string(),
            "--config".to_string(),
            config.to_string_lossy().into_owned(),
            url.to_string(),
        ])
    }

    /// Sets an environment variable for the child (proxy variables included).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.envs.push((key.to_string(), value.to_string()));
        self
    }

    /// Runs the binary to completion (or the hard deadline).
    pub async fn run(self) -> RunOutput {
        tokio::task::spawn_blocking(move || self.run_blocking())
            .await
            .expect("cli thread")
    }

    fn run_blocking(self) -> RunOutput {
        let mut command = Command::new(BIN);
        command
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for var in PROXY_VARS.iter().chain(&PRODUCT_VARS) {
            command.env_remove(var);
        }
        for (key, value) in &self.envs {
            command.env(key, value);
        }
        let started = Instant::now();
        let mut child = command.spawn().expect("spawn cimd-proxy");
        let stdout = drain(child.stdout.take().expect("stdout pipe"));
        let stderr = drain(child.stderr.take().expect("stderr pipe"));
        let mut killed = false;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for cimd-proxy") {
                break status;
            }
            if started.elapsed() > HARD_DEADLINE {
                killed = true;
                let _ = child.kill();
                break child.wait().expect("reap cimd-proxy");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let elapsed = started.elapsed();
        RunOutput {
            status: status.code(),
            stdout: stdout.join().expect("stdout reader"),
            stderr: stderr.join().expect("stderr reader"),
            elapsed,
            killed,
        }
    }
}

/// Reads a pipe to its end on its own thread.
fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}
