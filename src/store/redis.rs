//! The Redis backend (Redis 6.0 or later, or Valkey: `SET … KEEPTTL` and
//! `SET … NX PX` are all it needs).
//!
//! Keys, each with the configured prefix:
//! - `once:<kind>:<sha256 hex>` → `1`, set with `SET NX PX <lifetime>`:
//!   the reply says whether this was the first use, atomically across
//!   every replica;
//! - `family:<id hex>` → the current generation, or `revoked`; its expiry
//!   is the family's lifetime, set once at creation and kept (`KEEPTTL`) by
//!   every later write, so a revoked family is remembered exactly as long as
//!   any of its tokens could be presented.
//!
//! - `client:<sha256 hex of the client_id>` → the client's inventory entry
//!   (a hash), `clients` → a sorted set of those digests scored by last
//!   seen (unix ms), `users:<digest>` → a HyperLogLog of the client's
//!   users. One script writes an entry and evicts the least recently seen
//!   beyond the bound, deleting their hashes and sketches with them (the
//!   script names those keys itself: this layout is for one Redis, not a
//!   cluster). These keys carry no expiry: the bound is what keeps them
//!   finite.
//! - `count:<name>` → a fixed-window counter (rate limits), `INCR` and, on
//!   its first increment, `PEXPIRE`, in one script.
//!
//! Rotation is one Lua script (atomic on the server): read the generation,
//! advance it if the presented one is current, otherwise mark the family
//! revoked. WATCH/MULTI would need a connection of its own per rotation;
//! the script runs on the shared multiplexed connection.
//!
//! The connection is a [`ConnectionManager`]: created lazily (an
//! unreachable Redis does not stop the start), reconnecting by itself after
//! an I/O error. Every call is bounded by `timeout_ms` here, whatever the
//! manager is doing (connecting, backing off).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisError, Script};
use url::Url;

use super::{
    ClientFields, ClientWrite, FamilyId, FamilyStatus, Recorded, Rotation, SingleUseKind,
    StoreConfig, StoreError, StoreSetupError, Use, client_key, hex,
};
use crate::secret::SecretSource;

/// The value a revoked family's key holds.
const REVOKED: &str = "revoked";

/// KEYS[1] the family; ARGV[1] the presented generation (decimal).
/// Returns the new generation, or -1 unknown, -2 revoked, -3 reuse (the
/// family is revoked by this call).
const ADVANCE: &str = r"
local current = redis.call('GET', KEYS[1])
if not current then return -1 end
if current == 'revoked' then return -2 end
if current == ARGV[1] then
  local advanced = tonumber(current) + 1
  redis.call('SET', KEYS[1], string.format('%d', advanced), 'KEEPTTL')
  return advanced
end
redis.call('SET', KEYS[1], 'revoked', 'KEEPTTL')
return -3
";

/// KEYS[1] the family; ARGV[1] the generation it was advanced to, ARGV[2]
/// the one presented. Returns 1 when the family went back, 0 when it no
/// longer stands at ARGV[1] (revoked, advanced again, or expired).
const REWIND: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
  return 1
end
return 0
";

/// KEYS[1] the client's hash, KEYS[2] the sorted set by last seen.
/// ARGV[1] now (ms), ARGV[2] the bound, ARGV[3] the client's digest,
/// ARGV[4] the prefix of client hashes, ARGV[5] the prefix of user sketches,
/// ARGV[6] `1` for a sighting, `0` for a change to an existing entry that
/// is not one (it neither creates the entry nor moves its last seen),
/// ARGV[7] how many field/value pairs to set, then those pairs, then
/// field/amount pairs to increment. Returns how many entries were evicted
/// and how many there are now.
const RECORD: &str = r"
local sighting = ARGV[6] == '1'
if not sighting and redis.call('EXISTS', KEYS[1]) == 0 then
  return {0, redis.call('ZCARD', KEYS[2])}
end
if sighting then
  redis.call('HSETNX', KEYS[1], 'first_seen_ms', ARGV[1])
  redis.call('HSET', KEYS[1], 'last_seen_ms', ARGV[1])
end
local i = 8
for _ = 1, tonumber(ARGV[7]) do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  i = i + 2
end
while i < #ARGV do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
  i = i + 2
end
if not sighting then return {0, redis.call('ZCARD', KEYS[2])} end
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[3])
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[2])
local evicted = 0
if over > 0 then
  local gone = redis.call('ZPOPMIN', KEYS[2], over)
  for j = 1, #gone, 2 do
    redis.call('DEL', ARGV[4] .. gone[j], ARGV[5] .. gone[j])
    evicted = evicted + 1
  end
end
return {evicted, redis.call('ZCARD', KEYS[2])}
";

/// KEYS[1] the client's hash, KEYS[2] its users' sketch; ARGV[1] the user.
/// A client not in the inventory gets no sketch (eviction deleted it).
const ADD_USER: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('PFADD', KEYS[2], ARGV[1])
end
return 0
";

/// KEYS[1] the counter; ARGV[1] its window in milliseconds. Returns the
/// new count; the first increment sets the expiry, so the window is fixed
/// (one script: an `INCR` whose `PEXPIRE` never ran would count forever).
const COUNT: &str = r"
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return count
";

/// The Redis-backed store.
pub struct RedisStore {
    connection: ConnectionManager,
    prefix: String,
    timeout: Duration,
    advance: Script,
    rewind: Script,
    record: Script,
    add_user: Script,
    count: Script,
    /// The URL's password as written and as decoded, kept only to scrub it
    /// from any error text (defence in depth: Redis and the client library
    /// do not echo it, and this makes sure).
    password: Vec<String>,
}

impl std::fmt::Debug for RedisStore {
    // The manager's own Debug prints the connection info, password included.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Reads the URL from where the configuration says, trimmed.
fn read_url(source: &SecretSource) -> Result<String, StoreSetupError> {
    let text = match source {
        SecretSource::Env(name) => {
            std::env::var(name).map_err(|_| StoreSetupError::UrlEnvMissing(name.clone()))?
        }
        SecretSource::File(path) => {
            std::fs::read_to_string(path).map_err(|source| StoreSetupError::UrlFile {
                path: path.clone(),
                source,
            })?
        }
    };
    Ok(text.trim().to_owned())
}

impl RedisStore {
    /// The store for `config`; connects on first use.
    pub(super) fn connect(config: &StoreConfig) -> Result<Self, StoreSetupError> {
        let text = read_url(&config.url)?;
        // Checked here, with messages of our own, so that no parser's error
        // can repeat the URL and its password.
        let url = Url::parse(&text).map_err(|_| StoreSetupError::BadUrl("is not a URL"))?;
        let tls = match url.scheme() {
            "redis" => false,
            "rediss" => true,
            _ => {
                return Err(StoreSetupError::BadUrl(
                    "must start with redis:// or rediss://",
                ));
            }
        };
        if url.host_str().is_none_or(str::is_empty) {
            return Err(StoreSetupError::BadUrl("names no host"));
        }
        // The client library reads `#insecure` as "skip certificate checks".
        if url.fragment().is_some() {
            return Err(StoreSetupError::BadUrl(
                "must not have a fragment (#insecure would turn certificate checks off)",
            ));
        }
        let password: Vec<String> = url
            .password()
            .map(|raw| vec![raw.to_owned(), percent_decode(raw)])
            .unwrap_or_default()
            .into_iter()
            .filter(|form| !form.is_empty())
            .collect();

        let client = match (&config.root_certs, tls) {
            (Some(path), true) => {
                crate::egress::load_pem_certificates(path).map_err(StoreSetupError::RootCerts)?;
                let pem = std::fs::read(path).map_err(|error| {
                    StoreSetupError::RootCerts(format!("cannot read {}: {error}", path.display()))
                })?;
                redis::Client::build_with_tls(
                    url.as_str(),
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem),
                    },
                )
            }
            _ => redis::Client::open(url.as_str()),
        }
        .map_err(|_| StoreSetupError::BadUrl("is not a valid redis:// or rediss:// URL"))?;

        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            // Reconnection is retried briefly, then on the next command: a
            // Redis that is back is found within one call, and a Redis that
            // is down costs each caller at most timeout_ms.
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(200));
        let connection = ConnectionManager::new_lazy_with_config(client, manager_config)
            .map_err(|_| StoreSetupError::BadUrl("is not usable by the Redis client"))?;
        Ok(RedisStore {
            connection,
            prefix: config.key_prefix.clone(),
            timeout: config.timeout,
            advance: Script::new(ADVANCE),
            rewind: Script::new(REWIND),
            record: Script::new(RECORD),
            add_user: Script::new(ADD_USER),
            count: Script::new(COUNT),
            password,
        })
    }

    fn family_key(&self, family: FamilyId) -> String {
        format!("{}family:{family}", self.prefix)
    }

    /// Runs one exchange under the deadline, mapping every failure.
    async fn run<T>(
        &self,
        exchange: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(self.map_error(&error)),
            Err(_) => Err(self.timed_out()),
        }
    }

    fn timed_out(&self) -> StoreError {
        StoreError::TimedOut(u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX))
    }

    fn map_error(&self, error: &RedisError) -> StoreError {
        if error.is_timeout() {
            return self.timed_out();
        }
        let message = match (error.kind(), error.code()) {
            (ErrorKind::AuthenticationFailed, _) | (_, Some("WRONGPASS" | "NOAUTH")) => {
                "Redis refused the credentials: check the user and password in the URL".to_owned()
            }
            (_, Some("NOPERM")) => {
                "the Redis user lacks a permission this proxy needs: GET, SET, INCR, PEXPIRE, EVALSHA, \
                 EVAL, PING, HGETALL, ZREVRANGE, ZCARD and PFCOUNT on keys under store.key_prefix"
                    .to_owned()
            }
            _ if error.is_io_error() => format!("cannot reach Redis: {error}"),
            _ => format!("Redis answered with an error: {error}"),
        };
        StoreError::Unavailable(self.scrub(message))
    }

    fn scrub(&self, message: String) -> String {
        self.password.iter().fold(message, |message, form| {
            if message.contains(form.as_str()) {
                message.replace(form.as_str(), "***")
            } else {
                message
            }
        })
    }

    pub(super) async fn use_once(
        &self,
        kind: SingleUseKind,
        digest: &[u8; 32],
        ttl: Duration,
    ) -> Result<Use, StoreError> {
        let kind: &'static str = kind.into();
        let key = format!("{}once:{kind}:{}", self.prefix, hex(digest));
        let mut connection = self.connection.clone();
        let reply: Option<String> = self
            .run(
                redis::cmd("SET")
                    .arg(&key)
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms(ttl))
                    .query_async(&mut connection),
            )
            .await?;
        Ok(if reply.is_some() {
            Use::First
        } else {
            Use::Replayed
        })
    }

    pub(super) async fn create_family(
        &self,
        family: FamilyId,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let reply: Option<String> = self
            .run(
                redis::cmd("SET")
                    .arg(self.family_key(family))
                    .arg(0)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms(ttl))
                    .query_async(&mut connection),
            )
            .await?;
        match reply {
            Some(_) => Ok(()),
            // 128 random bits do not collide; a repeat means a broken RNG.
            None => Err(StoreError::Unavailable(
                "a new refresh family's id is already in use".to_owned(),
            )),
        }
    }

    pub(super) async fn advance_family(
        &self,
        family: FamilyId,
        presented: u64,
    ) -> Result<Rotation, StoreError> {
        let mut connection = self.connection.clone();
        let mut invocation = self.advance.key(self.family_key(family));
        invocation.arg(presented.to_string());
        let reply: i64 = self.run(invocation.invoke_async(&mut connection)).await?;
        match reply {
            -1 => Ok(Rotation::Unknown),
            -2 => Ok(Rotation::Revoked),
            -3 => Ok(Rotation::Reused),
            generation => u64::try_from(generation)
                .map(|generation| Rotation::Advanced { generation })
                .map_err(|_| {
                    StoreError::Unavailable(format!(
                        "the rotation script answered {generation}, which it never returns"
                    ))
                }),
        }
    }

    pub(super) async fn revoke_family(&self, family: FamilyId) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        // XX: an expired family stays gone; KEEPTTL: a revoked one is
        // remembered exactly as long as the family would have lived.
        let _: Option<String> = self
            .run(
                redis::cmd("SET")
                    .arg(self.family_key(family))
                    .arg(REVOKED)
                    .arg("XX")
                    .arg("KEEPTTL")
                    .query_async(&mut connection),
            )
            .await?;
        Ok(())
    }

    pub(super) async fn rewind_family(
        &self,
        family: FamilyId,
        advanced: u64,
        presented: u64,
    ) -> Result<bool, StoreError> {
        let mut connection = self.connection.clone();
        let mut invocation = self.rewind.key(self.family_key(family));
        invocation
            .arg(advanced.to_string())
            .arg(presented.to_string());
        let reply: i64 = self.run(invocation.invoke_async(&mut connection)).await?;
        Ok(reply == 1)
    }

    pub(super) async fn family_status(&self, family: FamilyId) -> Result<FamilyStatus, StoreError> {
        let mut connection = self.connection.clone();
        let reply: Option<String> = self
            .run(
                redis::cmd("GET")
                    .arg(self.family_key(family))
                    .query_async(&mut connection),
            )
            .await?;
        match reply.as_deref() {
            None => Ok(FamilyStatus::Unknown),
            Some(REVOKED) => Ok(FamilyStatus::Revoked),
            Some(text) => text.parse().map(FamilyStatus::Current).map_err(|_| {
                StoreError::Unavailable(
                    "a refresh family's key holds neither a generation nor \"revoked\"".to_owned(),
                )
            }),
        }
    }

    fn client_hash(&self, digest: &str) -> String {
        format!("{}client:{digest}", self.prefix)
    }

    fn clients_key(&self) -> String {
        format!("{}clients", self.prefix)
    }

    fn users_key(&self, digest: &str) -> String {
        format!("{}users:{digest}", self.prefix)
    }

    pub(super) async fn record_client(
        &self,
        write: &ClientWrite<'_>,
    ) -> Result<Recorded, StoreError> {
        let digest = client_key(write.client_id);
        let mut invocation = self.record.key(self.client_hash(&digest));
        invocation
            .key(self.clients_key())
            .arg(write.now_ms)
            .arg(write.max_entries.max(1))
            .arg(&digest)
            .arg(format!("{}client:", self.prefix))
            .arg(format!("{}users:", self.prefix))
            .arg(if write.sighting { "1" } else { "0" })
            .arg(write.set.len());
        for (name, value) in &write.set {
            invocation.arg(*name).arg(value);
        }
        for (name, by) in &write.increment {
            invocation.arg(name).arg(*by);
        }
        let mut connection = self.connection.clone();
        let (evicted, entries): (u64, u64) =
            self.run(invocation.invoke_async(&mut connection)).await?;
        Ok(Recorded { evicted, entries })
    }

    pub(super) async fn client(&self, client_id: &str) -> Result<Option<ClientFields>, StoreError> {
        let mut connection = self.connection.clone();
        let fields: ClientFields = self
            .run(
                redis::cmd("HGETALL")
                    .arg(self.client_hash(&client_key(client_id)))
                    .query_async(&mut connection),
            )
            .await?;
        Ok((!fields.is_empty()).then_some(fields))
    }

    pub(super) async fn clients(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<ClientFields>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut connection = self.connection.clone();
        let digests: Vec<String> = self
            .run(
                redis::cmd("ZREVRANGE")
                    .arg(self.clients_key())
                    .arg(offset)
                    .arg(offset.saturating_add(limit - 1))
                    .query_async(&mut connection),
            )
            .await?;
        if digests.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for digest in &digests {
            pipe.cmd("HGETALL").arg(self.client_hash(digest));
        }
        let entries: Vec<ClientFields> = self.run(pipe.query_async(&mut connection)).await?;
        // An entry evicted between the two reads comes back empty.
        Ok(entries
            .into_iter()
            .filter(|fields| !fields.is_empty())
            .collect())
    }

    pub(super) async fn client_count(&self) -> Result<u64, StoreError> {
        let mut connection = self.connection.clone();
        self.run(
            redis::cmd("ZCARD")
                .arg(self.clients_key())
                .query_async(&mut connection),
        )
        .await
    }

    pub(super) async fn add_user(
        &self,
        client_id: &str,
        user: &[u8; 16],
    ) -> Result<(), StoreError> {
        let digest = client_key(client_id);
        let mut invocation = self.add_user.key(self.client_hash(&digest));
        invocation.key(self.users_key(&digest)).arg(hex(user));
        let mut connection = self.connection.clone();
        let _: i64 = self.run(invocation.invoke_async(&mut connection)).await?;
        Ok(())
    }

    pub(super) async fn count_users(&self, client_id: &str) -> Result<u64, StoreError> {
        let mut connection = self.connection.clone();
        self.run(
            redis::cmd("PFCOUNT")
                .arg(self.users_key(&client_key(client_id)))
                .query_async(&mut connection),
        )
        .await
    }

    pub(super) async fn count(&self, key: &str, window: Duration) -> Result<u64, StoreError> {
        let key = format!("{}count:{key}", self.prefix);
        let mut connection = self.connection.clone();
        let count: i64 = self
            .run(
                self.count
                    .key(&key)
                    .arg(ttl_ms(window))
                    .invoke_async(&mut connection),
            )
            .await?;
        u64::try_from(count).map_err(|_| {
            StoreError::Unavailable("Redis answered a counter with a negative count".to_owned())
        })
    }

    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let _: String = self
            .run(redis::cmd("PING").query_async(&mut connection))
            .await?;
        Ok(())
    }
}

/// A lifetime in whole milliseconds, at least 1 (`PX 0` is an error).
fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// The URL's password as Redis receives it (percent-decoded), so both forms
/// can be scrubbed.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let decoded = (bytes[index] == b'%')
            .then(|| text.get(index + 1..index + 3))
            .flatten()
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match decoded {
            Some(byte) => {
                out.push(byte);
                index += 3;
            }
            None => {
                out.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lifetime_is_whole_milliseconds_and_never_zero() {
        assert_eq!(ttl_ms(Duration::from_secs(90)), 90_000);
        assert_eq!(ttl_ms(Duration::from_micros(1500)), 1);
        assert_eq!(ttl_ms(Duration::ZERO), 1);
    }

    #[test]
    fn the_password_is_decoded_as_redis_receives_it() {
        assert_eq!(percent_decode("p%40ss%2Fw%3Ard"), "p@ss/w:rd");
        assert_eq!(percent_decode("plain"), "plain");
        // A stray or short escape is kept as written, never a panic.
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%C3%A9"), "é");
    }

    #[tokio::test]
    async fn an_error_text_holding_the_password_is_scrubbed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("url");
        std::fs::write(&file, "redis://user:s%40cret@127.0.0.1:1\n").unwrap();
        let store = RedisStore::connect(&StoreConfig {
            backend: super::super::Backend::Redis,
            url: SecretSource::File(file),
            ..StoreConfig::default()
        })
        .unwrap();
        assert_eq!(
            store.scrub("echoed s@cret back".to_owned()),
            "echoed *** back"
        );
        assert_eq!(store.scrub("raw s%40cret".to_owned()), "raw ***");
        assert!(!format!("{store:?}").contains("cret"));
    }
}
