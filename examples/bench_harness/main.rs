//! The benchmark harness behind `bench/run`. Not part of the product: it
//! is an example of the crate so that it can use the crate's dependencies
//! and its `Sealer`, and stays out of the shipped binary.
//!
//! Roles (each a subcommand): `fixtures` (the document host, the slow
//! host, the upstream stand-in), `baseline` (a minimal hyper server that
//! answers every request with a fixed 302), `paths`, `warm`, `cold`,
//! `stampede`, `flood`, `token-prep`, `refresh-prep`, `sample` (resident memory),
//! `report` (BENCHMARKS.md from the results) and `compare` (two builds'
//! partial runs side by side, for `bench/compare`). Everything listens on and
//! talks to loopback addresses only, and every server stops by itself
//! after `--max-seconds`.

mod fixtures;
mod net;
mod refresh;
mod report;
mod scenarios;
mod token;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use clap::{Parser, Subcommand};
use http_body_util::Full;
use hyper::Response;
use hyper_util::rt::TokioIo;
use serde_json::Value;

#[derive(Parser)]
#[command(about = "cimd-proxy benchmark harness (loopback only)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The document host, the slow host, the upstream stand-in and /stats.
    Fixtures {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value = "127.0.0.2:18443")]
        docs: SocketAddr,
        #[arg(long, default_value = "127.0.0.3:18444")]
        slow: SocketAddr,
        #[arg(long, default_value = "127.0.0.1:18082")]
        upstream: SocketAddr,
        #[arg(long, default_value = "127.0.0.1:18083")]
        stats: SocketAddr,
        #[arg(long, default_value_t = 2000)]
        slow_ms: u64,
        #[arg(long, default_value_t = 200)]
        stampede_delay_ms: u64,
        #[arg(long, default_value_t = 5400)]
        max_seconds: u64,
    },
    /// A minimal hyper server answering every request with the same 302.
    Baseline {
        #[arg(long)]
        listen: SocketAddr,
        /// The length of the Location header (match the proxy's).
        #[arg(long, default_value_t = 700)]
        location_len: usize,
        #[arg(long, default_value_t = 5400)]
        max_seconds: u64,
    },
    /// Writes the /authorize paths of COUNT cached clients for wrk.
    Paths {
        #[arg(long)]
        docs: SocketAddr,
        #[arg(long)]
        prefix: String,
        #[arg(long)]
        count: usize,
        #[arg(long)]
        out: PathBuf,
    },
    /// Fetches and caches COUNT distinct clients through the proxy.
    Warm {
        #[arg(long)]
        proxy: SocketAddr,
        #[arg(long)]
        docs: SocketAddr,
        #[arg(long)]
        prefix: String,
        #[arg(long, default_value_t = 0)]
        from: usize,
        #[arg(long)]
        count: usize,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Scenario 2: cold fetch overhead against a plain TLS GET.
    Cold {
        #[arg(long)]
        proxy: SocketAddr,
        #[arg(long)]
        docs: SocketAddr,
        #[arg(long)]
        ca: PathBuf,
        #[arg(long, default_value_t = 300)]
        n: usize,
        #[arg(long)]
        out: PathBuf,
    },
    /// Scenario 3: N concurrent first requests for one client.
    Stampede {
        #[arg(long)]
        proxy: SocketAddr,
        #[arg(long)]
        admin: SocketAddr,
        #[arg(long)]
        stats: SocketAddr,
        #[arg(long)]
        docs: SocketAddr,
        #[arg(long, default_value_t = 1000)]
        n: usize,
        #[arg(long)]
        out: PathBuf,
    },
    /// Scenario 4: real users while an attacker floods unique slow clients.
    Flood {
        #[arg(long)]
        proxy: SocketAddr,
        #[arg(long)]
        admin: SocketAddr,
        #[arg(long)]
        stats: SocketAddr,
        #[arg(long)]
        docs: SocketAddr,
        #[arg(long)]
        slow: SocketAddr,
        #[arg(long)]
        cached_prefix: String,
        #[arg(long)]
        cached_count: usize,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        #[arg(long, default_value_t = 1000.0)]
        user_rate: f64,
        #[arg(long, default_value_t = 16)]
        user_conns: usize,
        #[arg(long, default_value_t = 2000.0)]
        attack_rate: f64,
        #[arg(long, default_value_t = 256)]
        attack_conns: usize,
        #[arg(long)]
        proxy_pid: u32,
        #[arg(long)]
        max_fetches: u64,
        #[arg(long)]
        max_logo_fetches: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Scenario 6's bodies: sealed codes and RS256 assertions, one jti each.
    TokenPrep {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        proxy: SocketAddr,
        #[arg(long)]
        docs: SocketAddr,
        #[arg(long, default_value_t = 16)]
        clients: usize,
        #[arg(long)]
        bodies: usize,
        #[arg(long, default_value_t = 2)]
        files: usize,
        #[arg(long)]
        prefix: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Scenario 7's bodies: refresh tokens, each from a code exchange at
    /// the proxy (a family of its own).
    RefreshPrep {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        proxy: SocketAddr,
        #[arg(long)]
        docs: SocketAddr,
        #[arg(long, default_value_t = 16)]
        clients: usize,
        #[arg(long)]
        bodies: usize,
        #[arg(long, default_value_t = 2)]
        files: usize,
        #[arg(long)]
        prefix: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Appends the proxy's VmRSS, VmHWM and cached entries to a JSON-lines file.
    Sample {
        #[arg(long)]
        pid: u32,
        #[arg(long)]
        admin: SocketAddr,
        #[arg(long)]
        label: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Writes the report from a results directory.
    Report {
        #[arg(long)]
        results: PathBuf,
        #[arg(long)]
        notes: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Compares partial runs (`bench/run --only 1,5`) of two builds: one
    /// table row per run, then the median of each build.
    Compare {
        /// `LABEL=RESULTS_DIR`, once per run, in the order they ran.
        #[arg(long = "run", required = true, value_parser = labelled_dir)]
        runs: Vec<(String, PathBuf)>,
    },
}

fn write_json(path: &std::path::Path, value: &Value) {
    std::fs::write(
        path,
        serde_json::to_string_pretty(value).expect("json") + "\n",
    )
    .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    println!("{}", serde_json::to_string(value).expect("json"));
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    match cli.command {
        Command::Fixtures {
            dir,
            docs,
            slow,
            upstream,
            stats,
            slow_ms,
            stampede_delay_ms,
            max_seconds,
        } => {
            fixtures::run(fixtures::FixtureArgs {
                dir,
                docs,
                slow,
                upstream,
                stats,
                slow_ms,
                stampede_delay_ms,
                max_seconds,
            })
            .await;
        }
        Command::Baseline {
            listen,
            location_len,
            max_seconds,
        } => baseline(listen, location_len, max_seconds).await,
        Command::Paths {
            docs,
            prefix,
            count,
            out,
        } => scenarios::write_paths(&format!("https://{docs}"), &prefix, count, &out),
        Command::Warm {
            proxy,
            docs,
            prefix,
            from,
            count,
            concurrency,
            out,
        } => {
            let result = scenarios::warm(
                proxy,
                &format!("https://{docs}"),
                &prefix,
                from,
                count,
                concurrency,
            )
            .await;
            match out {
                Some(out) => write_json(&out, &result),
                None => println!("{result}"),
            }
            if result["failures"].as_u64() != Some(0) {
                std::process::exit(1);
            }
        }
        Command::Cold {
            proxy,
            docs,
            ca,
            n,
            out,
        } => write_json(&out, &scenarios::cold(proxy, docs, &ca, n).await),
        Command::Stampede {
            proxy,
            admin,
            stats,
            docs,
            n,
            out,
        } => write_json(
            &out,
            &scenarios::stampede(proxy, admin, stats, docs, n).await,
        ),
        Command::Flood {
            proxy,
            admin,
            stats,
            docs,
            slow,
            cached_prefix,
            cached_count,
            seconds,
            user_rate,
            user_conns,
            attack_rate,
            attack_conns,
            proxy_pid,
            max_fetches,
            max_logo_fetches,
            out,
        } => {
            let result = scenarios::flood(scenarios::FloodArgs {
                proxy,
                admin,
                stats,
                docs,
                slow,
                cached_prefix,
                cached_count,
                seconds,
                user_rate,
                user_conns,
                attack_rate,
                attack_conns,
                proxy_pid,
                max_fetches,
                max_logo_fetches,
            })
            .await;
            write_json(&out, &result);
        }
        Command::TokenPrep {
            dir,
            proxy,
            docs,
            clients,
            bodies,
            files,
            prefix,
            out,
        } => {
            let result = token::prepare(&dir, proxy, docs, clients, bodies, files, &prefix).await;
            write_json(&out, &result);
            if result["warm_failures"].as_u64() != Some(0) {
                std::process::exit(1);
            }
        }
        Command::RefreshPrep {
            dir,
            proxy,
            docs,
            clients,
            bodies,
            files,
            prefix,
            out,
        } => {
            let result = refresh::prepare(&dir, proxy, docs, clients, bodies, files, &prefix).await;
            write_json(&out, &result);
            if result["failures"].as_u64() != Some(0) {
                std::process::exit(1);
            }
        }
        Command::Sample {
            pid,
            admin,
            label,
            out,
        } => println!("{}", scenarios::sample(pid, admin, &label, &out).await),
        Command::Report {
            results,
            notes,
            out,
        } => report::write(&results, notes.as_deref(), &out),
        Command::Compare { runs } => print!("{}", report::compare(&runs)),
    }
}

/// `LABEL=DIR` for `compare --run`.
fn labelled_dir(run: &str) -> Result<(String, PathBuf), String> {
    match run.split_once('=') {
        Some((label, dir)) if !label.is_empty() && !dir.is_empty() => {
            Ok((label.to_owned(), PathBuf::from(dir)))
        }
        _ => Err(format!("expected LABEL=RESULTS_DIR, got {run}")),
    }
}

/// The ceiling: a hyper HTTP/1.1 server on the same runtime as the proxy
/// (tokio, one worker per core) that answers every request with one fixed
/// 302 whose Location is as long as the proxy's.
async fn baseline(listen: SocketAddr, location_len: usize, max_seconds: u64) {
    net::ensure_loopback(&listen);
    let base = "https://idp.bench.example/oauth2/v2.0/authorize?client_id=bench-upstream&state=";
    let location: String = base
        .chars()
        .chain(std::iter::repeat('x'))
        .take(location_len.max(base.len()))
        .collect();
    let location = hyper::header::HeaderValue::from_str(&location).expect("location");
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .unwrap_or_else(|e| panic!("cannot listen on {listen}: {e}"));
    let server = async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let location = location.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_request| {
                    let mut response = Response::new(Full::new(Bytes::new()));
                    *response.status_mut() = hyper::StatusCode::FOUND;
                    response
                        .headers_mut()
                        .insert(hyper::header::LOCATION, location.clone());
                    response.headers_mut().insert(
                        hyper::header::CACHE_CONTROL,
                        hyper::header::HeaderValue::from_static("no-store"),
                    );
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    };
    tokio::select! {
        () = server => {}
        () = tokio::time::sleep(Duration::from_secs(max_seconds)) => {}
    }
}
