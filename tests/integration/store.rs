//! The shared store against a real Redis (one `redis-server` per run, see
//! `support/redis.rs`): two `Store`s on one Redis stand for two replicas.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cimd_proxy::secret::SecretSource;
use cimd_proxy::store::{
    Backend, FamilyStatus, Rotation, SingleUseKind, Store, StoreConfig, StoreError,
    StoreSetupError, Use,
};
use redis::AsyncCommands as _;

use crate::support::redis::{RedisServer, redis};

/// A store on `url` with its own key prefix (tests share the database).
struct Replicas {
    prefix: String,
    _dir: tempfile::TempDir,
    url_file: PathBuf,
    timeout: Duration,
}

impl Replicas {
    fn new(url: &str) -> Self {
        Self::with_timeout(url, Duration::from_millis(250))
    }

    fn with_timeout(url: &str, timeout: Duration) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let url_file = dir.path().join("redis-url");
        // As a mounted Secret would have it, with a trailing newline.
        std::fs::write(&url_file, format!("{url}\n")).expect("write the URL file");
        let prefix = format!("test-{}:", cimd_proxy::store::FamilyId::random().unwrap());
        Replicas {
            prefix,
            _dir: dir,
            url_file,
            timeout,
        }
    }

    fn config(&self) -> StoreConfig {
        StoreConfig {
            backend: Backend::Redis,
            url: SecretSource::File(self.url_file.clone()),
            key_prefix: self.prefix.clone(),
            timeout: self.timeout,
            ..StoreConfig::default()
        }
    }

    fn replica(&self) -> Store {
        Store::connect(&self.config()).expect("a Redis store")
    }
}

/// A plain connection for looking at what the store wrote.
async fn inspect(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("connect to the test Redis")
}

async fn keys(connection: &mut redis::aio::MultiplexedConnection, pattern: &str) -> Vec<String> {
    let mut keys: Vec<String> = connection.keys(pattern).await.unwrap();
    keys.sort();
    keys
}

async fn pttl(connection: &mut redis::aio::MultiplexedConnection, key: &str) -> i64 {
    connection.pttl(key).await.unwrap()
}

/// A PTTL read just after a write with lifetime `ttl`: at most `ttl`, and
/// not less than `ttl` minus the test's own slowness.
fn assert_lifetime(pttl: i64, ttl: Duration) {
    let ttl = ttl.as_millis() as i64;
    assert!(
        pttl <= ttl && pttl > ttl - 2_000,
        "PTTL {pttl} ms, expected about {ttl} ms"
    );
}

#[tokio::test]
async fn a_value_used_on_one_replica_is_refused_on_another() {
    let server = redis();
    let _shared = server.shared().await;
    let replicas = Replicas::new(&server.url());
    let (a, b) = (replicas.replica(), replicas.replica());
    let ttl = Duration::from_secs(90);

    assert_eq!(
        a.use_once(SingleUseKind::Jti, b"jti-1", ttl).await,
        Ok(Use::First)
    );
    assert_eq!(
        b.use_once(SingleUseKind::Jti, b"jti-1", ttl).await,
        Ok(Use::Replayed)
    );
    assert_eq!(
        a.use_once(SingleUseKind::Jti, b"jti-1", ttl).await,
        Ok(Use::Replayed)
    );
    // Another kind with the same bytes is another value.
    assert_eq!(
        b.use_once(SingleUseKind::Consent, b"jti-1", ttl).await,
        Ok(Use::First)
    );

    let mut redis = inspect(server).await;
    let written = keys(&mut redis, &format!("{}*", replicas.prefix)).await;
    assert_eq!(written.len(), 2, "{written:?}");
    for key in &written {
        assert!(
            key.starts_with(&format!("{}once:", replicas.prefix)),
            "{key}"
        );
        // The key lives exactly as long as the value could be presented.
        assert_lifetime(pttl(&mut redis, key).await, ttl);
    }
}

#[tokio::test]
async fn a_single_use_key_expires_with_the_value() {
    let server = redis();
    let _shared = server.shared().await;
    let replicas = Replicas::new(&server.url());
    let store = replicas.replica();
    let ttl = Duration::from_millis(300);
    assert_eq!(
        store.use_once(SingleUseKind::State, b"s", ttl).await,
        Ok(Use::First)
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    // Gone from Redis, so the database does not grow; the value is new again.
    let mut redis = inspect(server).await;
    assert!(
        keys(&mut redis, &format!("{}*", replicas.prefix))
            .await
            .is_empty()
    );
    assert_eq!(
        store.use_once(SingleUseKind::State, b"s", ttl).await,
        Ok(Use::First)
    );
}

#[tokio::test]
async fn refresh_reuse_on_another_replica_revokes_the_family_everywhere() {
    let server = redis();
    let _shared = server.shared().await;
    let replicas = Replicas::new(&server.url());
    let (a, b) = (replicas.replica(), replicas.replica());
    let ttl = Duration::from_secs(3600);

    let family = a.create_family(ttl).await.unwrap();
    assert_eq!(family.generation, 0);
    assert_eq!(
        b.family_status(family.id).await,
        Ok(FamilyStatus::Current(0))
    );
    assert_eq!(
        b.advance_family(family.id, 0).await,
        Ok(Rotation::Advanced { generation: 1 })
    );
    assert_eq!(
        a.advance_family(family.id, 1).await,
        Ok(Rotation::Advanced { generation: 2 })
    );
    // A refresh on b failed after it advanced 2 → 3: b takes it back, and
    // a later rewind that no longer applies changes nothing.
    assert_eq!(
        b.advance_family(family.id, 2).await,
        Ok(Rotation::Advanced { generation: 3 })
    );
    assert_eq!(b.rewind_family(family.id, 3, 2).await, Ok(true));
    assert_eq!(a.rewind_family(family.id, 3, 2).await, Ok(false));
    assert_eq!(
        a.family_status(family.id).await,
        Ok(FamilyStatus::Current(2))
    );
    // Generation 1 again, on the other replica: a stolen token.
    assert_eq!(b.advance_family(family.id, 1).await, Ok(Rotation::Reused));
    // The legitimate holder of generation 2 is refused too, on any replica.
    assert_eq!(a.advance_family(family.id, 2).await, Ok(Rotation::Revoked));
    assert_eq!(b.family_status(family.id).await, Ok(FamilyStatus::Revoked));

    // One key per family, expiring with the family's lifetime: rotation and
    // revocation kept it (KEEPTTL), neither extended nor dropped it.
    let mut redis = inspect(server).await;
    let key = format!("{}family:{}", replicas.prefix, family.id);
    assert_eq!(
        keys(&mut redis, &format!("{}*", replicas.prefix)).await,
        std::slice::from_ref(&key)
    );
    assert_lifetime(pttl(&mut redis, &key).await, ttl);
}

#[tokio::test]
async fn of_two_concurrent_rotations_of_one_generation_exactly_one_wins() {
    let server = redis();
    let _shared = server.shared().await;
    let replicas = Replicas::new(&server.url());
    let (a, b) = (replicas.replica(), replicas.replica());
    let family = a.create_family(Duration::from_secs(60)).await.unwrap();
    let attempts = (0..16).map(|n| {
        let store = if n % 2 == 0 { &a } else { &b };
        store.advance_family(family.id, 0)
    });
    let outcomes = futures_util::future::join_all(attempts).await;
    let advanced = outcomes
        .iter()
        .filter(|outcome| matches!(outcome, Ok(Rotation::Advanced { generation: 1 })))
        .count();
    assert_eq!(advanced, 1, "{outcomes:?}");
    assert!(
        outcomes.iter().all(|outcome| matches!(
            outcome,
            Ok(Rotation::Advanced { .. } | Rotation::Reused | Rotation::Revoked)
        )),
        "{outcomes:?}"
    );
    assert_eq!(a.family_status(family.id).await, Ok(FamilyStatus::Revoked));
}

#[tokio::test]
async fn a_revocation_on_one_replica_is_seen_by_all() {
    let server = redis();
    let _shared = server.shared().await;
    let replicas = Replicas::new(&server.url());
    let (a, b) = (replicas.replica(), replicas.replica());
    let ttl = Duration::from_secs(600);
    let family = a.create_family(ttl).await.unwrap();
    b.revoke_family(family.id).await.unwrap();
    assert_eq!(a.advance_family(family.id, 0).await, Ok(Rotation::Revoked));
    let mut redis = inspect(server).await;
    let key = format!("{}family:{}", replicas.prefix, family.id);
    assert_lifetime(pttl(&mut redis, &key).await, ttl);

    // An unknown family: nothing to revoke, nothing written, and its tokens
    // are refused.
    let unknown = cimd_proxy::store::FamilyId::random().unwrap();
    b.revoke_family(unknown).await.unwrap();
    assert_eq!(a.family_status(unknown).await, Ok(FamilyStatus::Unknown));
    assert_eq!(a.advance_family(unknown, 0).await, Ok(Rotation::Unknown));
    assert_eq!(
        keys(&mut redis, &format!("{}*", replicas.prefix)).await,
        [key]
    );
}

#[tokio::test]
async fn a_wrong_password_is_a_clear_error_that_does_not_repeat_it() {
    let server = redis();
    let _shared = server.shared().await;
    let wrong = "not-the-password-5f1d";
    let replicas = Replicas::new(&format!("redis://:{wrong}@127.0.0.1:{}", server.port));
    let store = replicas.replica();
    for error in [
        store.ping().await.unwrap_err(),
        store
            .use_once(SingleUseKind::Jti, b"x", Duration::from_secs(1))
            .await
            .unwrap_err(),
    ] {
        let text = error.to_string();
        assert!(matches!(error, StoreError::Unavailable(_)), "{text}");
        assert!(text.contains("credentials"), "{text}");
        assert!(!text.contains(wrong), "{text}");
        assert!(!format!("{error:?}").contains(wrong));
    }
    assert!(!format!("{store:?}").contains(wrong));
}

#[tokio::test]
async fn a_bad_url_is_refused_without_repeating_it() {
    for (url, expected) in [
        ("http://:hunter2@127.0.0.1:6379", "redis://"),
        ("redis://:hunter2@127.0.0.1:6379/#insecure", "fragment"),
        ("rediss://:hunter2@127.0.0.1:6379/0#insecure", "fragment"),
        ("hunter2", "not a URL"),
    ] {
        let replicas = Replicas::new(url);
        let error = Store::connect(&replicas.config()).unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, StoreSetupError::BadUrl(_)), "{text}");
        assert!(text.contains(expected), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
    let missing = StoreConfig {
        backend: Backend::Redis,
        url: SecretSource::Env("CIMD_PROXY_TEST_UNSET_REDIS_URL".to_owned()),
        ..StoreConfig::default()
    };
    let error = Store::connect(&missing).unwrap_err().to_string();
    assert!(error.contains("CIMD_PROXY_TEST_UNSET_REDIS_URL"), "{error}");
}

/// The store's error counter for one operation, read from the exposition.
fn store_errors(operation: &str) -> u64 {
    let needle = format!("cimd_proxy_store_errors_total{{operation=\"{operation}\"}} ");
    cimd_proxy::metrics::METRICS
        .render()
        .lines()
        .find_map(|line| line.strip_prefix(&needle))
        .map_or(0, |value| value.trim().parse().unwrap())
}

#[tokio::test]
async fn a_stopped_redis_fails_closed_within_the_deadline_then_recovers_by_itself() {
    let server = redis();
    let _exclusive = server.exclusive().await;
    let timeout = Duration::from_millis(250);
    let replicas = Replicas::with_timeout(&server.url(), timeout);
    let store = replicas.replica();
    store.ping().await.expect("Redis answers before the outage");
    let family = store.create_family(Duration::from_secs(60)).await.unwrap();
    let errors_before = store_errors("use_once");

    server.stop();
    // Every operation answers within the deadline (plus scheduling slack)
    // with an error: never a pass, never a hang.
    for attempt in 0..3 {
        let started = Instant::now();
        let outcome = store
            .use_once(
                SingleUseKind::Jti,
                format!("during-{attempt}").as_bytes(),
                timeout,
            )
            .await;
        let took = started.elapsed();
        assert!(
            matches!(
                outcome,
                Err(StoreError::Unavailable(_) | StoreError::TimedOut(_))
            ),
            "{outcome:?}"
        );
        assert!(took < timeout + Duration::from_millis(150), "took {took:?}");
        let started = Instant::now();
        let rotation = store.advance_family(family.id, 0).await;
        assert!(rotation.is_err(), "{rotation:?}");
        assert!(started.elapsed() < timeout + Duration::from_millis(150));
        assert!(store.ping().await.is_err());
    }
    assert!(store_errors("use_once") >= errors_before + 3);
    assert!(store_errors("advance_family") >= 3);
    assert!(store_errors("ping") >= 3);

    server.start();
    // The same Store, no restart: it reconnects on its own.
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.ping().await.is_err() {
        assert!(Instant::now() < deadline, "no recovery within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        store
            .use_once(SingleUseKind::Jti, b"after", Duration::from_secs(5))
            .await,
        Ok(Use::First)
    );
    // This Redis keeps nothing across a restart: the family is gone, and
    // its tokens are refused rather than starting it again.
    assert_eq!(
        store.advance_family(family.id, 0).await,
        Ok(Rotation::Unknown)
    );
}

#[tokio::test]
async fn an_acl_user_with_only_the_documented_commands_and_prefix_is_enough() {
    let server = redis();
    let _shared = server.shared().await;
    let user = format!("cimd-{}", cimd_proxy::store::FamilyId::random().unwrap());
    let password = "acl-user-password-4b2e";
    let prefix = format!("{user}:");
    let mut admin = inspect(server).await;
    // What deploy/README.md tells operators to give the proxy.
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(&user)
        .arg("on")
        .arg(format!(">{password}"))
        .arg("resetkeys")
        .arg(format!("~{prefix}*"))
        .arg("resetchannels")
        .arg("-@all")
        .arg("+get")
        .arg("+set")
        .arg("+evalsha")
        .arg("+eval")
        .arg("+ping")
        .query_async(&mut admin)
        .await
        .unwrap();
    let replicas = Replicas::new(&format!(
        "redis://{user}:{password}@127.0.0.1:{}",
        server.port
    ));
    let store = Store::connect(&StoreConfig {
        key_prefix: prefix,
        ..replicas.config()
    })
    .unwrap();
    store.ping().await.unwrap();
    let ttl = Duration::from_secs(30);
    assert_eq!(
        store.use_once(SingleUseKind::Consent, b"c", ttl).await,
        Ok(Use::First)
    );
    let family = store.create_family(ttl).await.unwrap();
    assert_eq!(
        store.advance_family(family.id, 0).await,
        Ok(Rotation::Advanced { generation: 1 })
    );
    store.revoke_family(family.id).await.unwrap();
    assert_eq!(
        store.family_status(family.id).await,
        Ok(FamilyStatus::Revoked)
    );

    // Outside its prefix the same user is refused, and the error says what
    // is missing without the password.
    let outside = Store::connect(&StoreConfig {
        key_prefix: "elsewhere:".to_owned(),
        ..replicas.config()
    })
    .unwrap();
    let error = outside
        .use_once(SingleUseKind::Consent, b"c", ttl)
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(text.contains("permission"), "{text}");
    assert!(!text.contains(password), "{text}");
    let _: () = redis::cmd("ACL")
        .arg("DELUSER")
        .arg(&user)
        .query_async(&mut admin)
        .await
        .unwrap();
}

#[tokio::test]
async fn rediss_trusts_root_certs_alone_when_given_and_the_web_pki_otherwise() {
    let server = redis();
    let _shared = server.shared().await;
    let replicas = Replicas::new(&server.tls_url());

    // The run's private CA as store.root_certs: TLS verifies, the store works.
    let store = Store::connect(&StoreConfig {
        root_certs: Some(server.ca_file.clone()),
        ..replicas.config()
    })
    .unwrap();
    store.ping().await.unwrap();
    assert_eq!(
        store
            .use_once(SingleUseKind::State, b"over tls", Duration::from_secs(5))
            .await,
        Ok(Use::First)
    );

    // Without it, the web PKI roots do not know that CA: refused, never
    // downgraded or skipped.
    let web_pki = replicas.replica();
    let error = web_pki.ping().await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error}");
    assert!(error.to_string().contains("certificate"), "{error}");

    // Another CA's file: refused as well.
    let dir = tempfile::tempdir().unwrap();
    let other = crate::support::pki::TestCa::new("other").write_pem(dir.path());
    let wrong_ca = Store::connect(&StoreConfig {
        root_certs: Some(other),
        ..replicas.config()
    })
    .unwrap();
    let error = wrong_ca.ping().await.unwrap_err();
    assert!(error.to_string().contains("certificate"), "{error}");
    assert!(!error.to_string().contains(&server.password), "{error}");
}

#[tokio::test]
async fn a_counter_is_shared_by_replicas_and_ends_with_its_window() {
    let server = redis();
    let _shared = server.shared().await;
    let replicas = Replicas::new(&server.url());
    let (a, b) = (replicas.replica(), replicas.replica());
    let window = Duration::from_secs(60);

    assert_eq!(
        a.count("registration:source:192.0.2.1", window).await,
        Ok(1)
    );
    assert_eq!(
        b.count("registration:source:192.0.2.1", window).await,
        Ok(2)
    );
    assert_eq!(
        a.count("registration:source:192.0.2.1", window).await,
        Ok(3)
    );
    assert_eq!(b.count("registration:global", window).await, Ok(1));

    let mut redis = inspect(server).await;
    let key = format!("{}count:registration:source:192.0.2.1", replicas.prefix);
    // The window is set by the first increment and not pushed back by later ones.
    assert_lifetime(pttl(&mut redis, &key).await, window);

    let short = Duration::from_millis(300);
    assert_eq!(a.count("registration:short", short).await, Ok(1));
    assert_eq!(b.count("registration:short", short).await, Ok(2));
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(a.count("registration:short", short).await, Ok(1));
}
