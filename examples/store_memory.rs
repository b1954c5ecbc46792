//! Redis memory per live refresh family, per single-use value and per
//! client inventory entry, measured through the store itself.
//!
//! Starts its own `redis-server` (Debian's package) on a free loopback port
//! in a temporary folder, creates N families (default 100000) with a 30-day
//! lifetime, N single-use values with a 5-minute one and N inventory
//! entries (the fields a sign-in writes, one user counted each), and prints
//! `used_memory` from `INFO memory` before and after each, per entry.
//!
//! ```text
//! cargo run --release --example store_memory [-- N]
//! ```

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cimd_proxy::secret::SecretSource;
use cimd_proxy::store::{Backend, ClientWrite, SingleUseKind, Store, StoreConfig};
use futures_util::StreamExt as _;

const CONCURRENCY: usize = 256;

async fn used_memory(connection: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(connection)
        .await
        .expect("INFO memory");
    info.lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|value| value.trim().parse().ok())
        .expect("used_memory in INFO memory")
}

#[tokio::main]
async fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .map_or(100_000, |n| n.parse().expect("N: a number of entries"));
    let dir = tempfile::tempdir().expect("tempdir");
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let mut server = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no", "--logfile", ""])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server (Debian's redis-server package)");

    let url = format!("redis://127.0.0.1:{port}");
    let url_file = dir.path().join("url");
    std::fs::write(&url_file, &url).expect("write the URL file");
    let store = Store::connect(&StoreConfig {
        backend: Backend::Redis,
        url: SecretSource::File(url_file),
        timeout: Duration::from_secs(5),
        ..StoreConfig::default()
    })
    .expect("the store");
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.ping().await.is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut inspect = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let version: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut inspect)
        .await
        .expect("INFO server");
    let version = version
        .lines()
        .find_map(|line| line.strip_prefix("redis_version:"))
        .unwrap_or("?")
        .trim()
        .to_owned();

    let before = used_memory(&mut inspect).await;
    let started = Instant::now();
    futures_util::stream::iter(0..count)
        .for_each_concurrent(CONCURRENCY, |_| async {
            store
                .create_family(Duration::from_secs(30 * 86_400))
                .await
                .expect("create a family");
        })
        .await;
    let families_took = started.elapsed();
    let after_families = used_memory(&mut inspect).await;

    let started = Instant::now();
    futures_util::stream::iter(0..count)
        .for_each_concurrent(CONCURRENCY, |n| {
            let store = &store;
            async move {
                store
                    .use_once(
                        SingleUseKind::Jti,
                        format!("jti-{n}").as_bytes(),
                        Duration::from_secs(300),
                    )
                    .await
                    .expect("spend a value");
            }
        })
        .await;
    let once_took = started.elapsed();
    let after_once = used_memory(&mut inspect).await;

    // Inventory entries as a sign-in writes them (the fields of an allowed
    // client with its document and cache state), each with one user.
    let started = Instant::now();
    futures_util::stream::iter(0..count)
        .for_each_concurrent(CONCURRENCY, |n| {
            let store = &store;
            async move {
                let client_id = format!("https://app-{n}.example.com/oauth/client-metadata.json");
                let set = vec![
                    ("client_id", client_id.clone()),
                    ("kind", "cimd".to_owned()),
                    ("host", format!("app-{n}.example.com")),
                    ("auth_method", "none".to_owned()),
                    ("redirect_hosts", format!("app-{n}.example.com")),
                    ("client_name", "Example Application".to_owned()),
                    ("jwks_uri", String::new()),
                    ("logo_uri", format!("https://app-{n}.example.com/logo.png")),
                    ("vouched_by", String::new()),
                    ("fetched_at_ms", "1767225600000".to_owned()),
                    ("expires_at_ms", "1767229200000".to_owned()),
                    ("etag", "\"5f2b-1a\"".to_owned()),
                    ("last_decision", "allow".to_owned()),
                    (
                        "last_rule",
                        "policy.rules[0] https://*.example.com/**".to_owned(),
                    ),
                    ("last_outcome", "ok".to_owned()),
                    ("upstream_client", "main".to_owned()),
                ];
                store
                    .record_client(&ClientWrite {
                        client_id: &client_id,
                        now_ms: 1_767_225_600_000 + n as u64,
                        sighting: true,
                        set,
                        increment: vec![("started".to_owned(), 1), ("completed".to_owned(), 1)],
                        max_entries: count,
                    })
                    .await
                    .expect("record a client");
                store
                    .add_user(&client_id, &[7; 16])
                    .await
                    .expect("count a user");
            }
        })
        .await;
    let inventory_took = started.elapsed();
    let after_inventory = used_memory(&mut inspect).await;

    let per = |bytes: u64| bytes as f64 / count as f64;
    println!("redis {version}, key_prefix \"cimd-proxy:\", {count} entries each");
    println!(
        "refresh families: {:.0} bytes each ({} -> {} used_memory), created in {:.2?} ({:.0}/s)",
        per(after_families.saturating_sub(before)),
        before,
        after_families,
        families_took,
        count as f64 / families_took.as_secs_f64()
    );
    println!(
        "single-use values: {:.0} bytes each ({} -> {} used_memory), spent in {:.2?} ({:.0}/s)",
        per(after_once.saturating_sub(after_families)),
        after_families,
        after_once,
        once_took,
        count as f64 / once_took.as_secs_f64()
    );
    println!(
        "inventory entries: {:.0} bytes each, with one user counted ({} -> {} used_memory), \
         written in {:.2?} ({:.0}/s)",
        per(after_inventory.saturating_sub(after_once)),
        after_once,
        after_inventory,
        inventory_took,
        count as f64 / inventory_took.as_secs_f64()
    );
    let _ = server.kill();
    let _ = server.wait();
}
