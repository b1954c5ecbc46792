//! The shared store: what must hold across requests, and across replicas
//! when they share a Redis: values usable once, and refresh-token families.
//!
//! Two backends, chosen by `[store] backend`:
//!
//! - `memory` (the default): one process, bounded. Single use is
//!   [`crate::replay::ReplayStore`] (it refuses when full rather than
//!   forgetting an unexpired entry); families live in a bounded table with
//!   the same rule. What it guarantees holds within one process only: two
//!   replicas each accept a value once, and a family created on one replica
//!   is unknown to the others.
//! - `redis`: Redis or Valkey through one multiplexed connection that
//!   reconnects by itself ([`::redis::aio::ConnectionManager`]). Every key
//!   carries an expiry equal to the value's own lifetime, so the database
//!   never grows without bound.
//!
//! [`Store`] is an enum over the two, not a trait object: the set of
//! backends is closed, the operations are `async` (a trait would need boxed
//! futures to be object safe), and one `match` per operation is the single
//! place where the deadline and the error metric are applied.
//!
//! Every operation answers within `timeout_ms` or fails with
//! [`StoreError::TimedOut`]; an unreachable Redis is
//! [`StoreError::Unavailable`]. Callers fail closed on either: a step that
//! needs the store refuses, it never skips the check. Each failure is
//! counted in `cimd_proxy_store_errors_total{operation}`.
//!
//! # How the callers use it
//!
//! One `Arc<Store>` in `AppState`, built by [`Store::connect`] from
//! `config.store` at start (and kept across reloads: the connection is not
//! rebuilt when the file changes).
//!
//! - **`client_auth` (`private_key_jwt`)**: after the signature and the
//!   times verify, `store.use_once(SingleUseKind::Jti, &replay_key(client_id,
//!   jti), until exp + skew)`. [`Use::Replayed`] is `ClientAuthError::Replayed`
//!   (`invalid_client`); [`StoreError::Full`] keeps today's
//!   `ReplayStoreFull`; any other [`StoreError`] is `temporarily_unavailable`
//!   (503), never a pass.
//! - **`POST /consent`**: `store.use_once(SingleUseKind::Consent, &token.id,
//!   CONSENT_TTL)` where today's `consents.insert` is; `Replayed` is the
//!   "already used" page, any error the "unavailable" page.
//! - **`GET /callback`**: the sealed state gets a random `id`; after it
//!   opens, `store.use_once(SingleUseKind::State, &state.id, state's remaining
//!   lifetime)`; `Replayed` is the invalid-state page, an error the
//!   unavailable page.
//! - **gate mode's admission cookie**: the check it lets through spends it,
//!   `store.use_once(SingleUseKind::GateAdmission, &admission.id,
//!   ADMISSION_TTL)`; `Replayed` or an error admits nothing (the user is
//!   asked again).
//! - **`/token`, authorization_code grant**: when a refresh token is issued,
//!   [`Store::create_family`] with `seal.refresh_token_ttl`; the sealed
//!   refresh token carries the [`FamilyId`], generation 0 and the family's
//!   expiry (absolute: rotation never extends it, the family's key in Redis
//!   expires then, and every token of the family with it).
//! - **`/token`, refresh_token grant**: after the sealed token opens,
//!   [`Store::advance_family`] with the token's family and generation,
//!   before the provider is asked (one round trip): only
//!   [`Rotation::Advanced`] goes on to the provider, so a reused, revoked or
//!   unknown family never reaches it. [`Rotation::Reused`] (the store has
//!   just revoked the family), [`Rotation::Revoked`] and
//!   [`Rotation::Unknown`] → `invalid_grant`; [`StoreError`] →
//!   `temporarily_unavailable`. If the refresh then fails (the provider
//!   refuses or cannot be reached, a changed document is refused),
//!   [`Store::rewind_family`] takes the advance back, a compare-and-set to
//!   the presented generation, so the client's retry with the same token is
//!   not "reuse" and does not revoke a legitimate family. A rewind the store
//!   cannot make is logged; the retry then ends the grant. With Redis
//!   `Unknown` is refused: accepting it would let an old token start its
//!   family again after the family expired. The memory backend cannot tell
//!   "expired" from "made by another replica or before a restart", so it
//!   adopts the family at the presented generation ([`Store::adopt_family`])
//!   rather than sign everyone out at every restart; the sealed token's own
//!   expiry (the family's) still bounds it. [`Store::family_status`] reads a
//!   family without changing it (the tests use it).
//! - **`POST /revoke` (RFC 7009)**: [`Store::revoke_family`] for a sealed
//!   refresh token; unknown tokens still get 200.
//! - **`/readyz`**: false while [`Store::ping`] fails (always true for the
//!   memory backend).

mod clients;
mod hll;
mod memory;
mod redis;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::metrics::METRICS;
use crate::secret::SecretSource;

pub use self::memory::MemoryStore;
pub use self::redis::RedisStore;

/// `[store] backend`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantNames,
)]
#[strum(serialize_all = "snake_case")]
pub enum Backend {
    /// In this process, bounded; nothing is shared between replicas.
    #[default]
    Memory,
    /// Redis or Valkey, shared by every replica that names it.
    Redis,
}

/// The environment variable the Redis URL is read from by default.
pub const DEFAULT_URL_ENV: &str = "CIMD_PROXY_REDIS_URL";

/// `[store]`: which backend holds single-use values and refresh families.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreConfig {
    /// Which backend.
    pub backend: Backend,
    /// Where the Redis URL (which may carry a password or ACL user) comes
    /// from: never the configuration file itself (`redis` backend only).
    pub url: SecretSource,
    /// Prepended to every key, so several deployments can share a database.
    pub key_prefix: String,
    /// The deadline of every operation, connecting included.
    pub timeout: Duration,
    /// A PEM file of CA certificates for `rediss://`: when set, the only
    /// roots the server's certificate may chain to (a private CA); when
    /// absent, the web PKI roots, as for the provider.
    pub root_certs: Option<PathBuf>,
    /// The memory backend's bound: entries held at once, per table (single
    /// use, families).
    pub max_entries: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: Backend::Memory,
            url: SecretSource::Env(DEFAULT_URL_ENV.to_owned()),
            key_prefix: "cimd-proxy:".to_owned(),
            timeout: Duration::from_millis(250),
            root_certs: None,
            max_entries: 100_000,
        }
    }
}

/// What a value usable once is; each kind has its own key space, so a
/// consent token's id can never spend a `jti`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum SingleUseKind {
    /// A `private_key_jwt` assertion's `jti` (hashed with its client_id).
    Jti,
    /// A consent form token.
    Consent,
    /// A sealed `state`'s id, spent at `/callback`.
    State,
    /// A gate-mode admission cookie's id, spent by the check it lets through.
    GateAdmission,
}

/// The answer of [`Store::use_once`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Not seen before: it is spent now.
    First,
    /// Already used, and its lifetime has not run out.
    Replayed,
}

/// A refresh-token family: 128 random bits, shown as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FamilyId([u8; 16]);

impl FamilyId {
    /// A new random id.
    pub fn random() -> Result<Self, StoreError> {
        use ring::rand::SecureRandom as _;
        let mut bytes = [0u8; 16];
        ring::rand::SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| StoreError::Unavailable("no randomness for a family id".to_owned()))?;
        Ok(FamilyId(bytes))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The id from its raw bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        FamilyId(bytes)
    }
}

impl std::fmt::Display for FamilyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for FamilyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FamilyId({self})")
    }
}

impl From<FamilyId> for String {
    fn from(id: FamilyId) -> String {
        id.to_string()
    }
}

impl TryFrom<String> for FamilyId {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl std::str::FromStr for FamilyId {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || "a family id is 32 lowercase hex digits".to_owned();
        if text.len() != 32 {
            return Err(bad());
        }
        let mut bytes = [0u8; 16];
        for (index, byte) in bytes.iter_mut().enumerate() {
            let pair = text.get(2 * index..2 * index + 2).ok_or_else(bad)?;
            if !pair.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
                return Err(bad());
            }
            *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        Ok(FamilyId(bytes))
    }
}

/// A family just created: its id and first generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    /// The family.
    pub id: FamilyId,
    /// Its first generation (0).
    pub generation: u64,
}

/// The answer of [`Store::advance_family`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// The presented generation was the current one; this is the next.
    Advanced {
        /// The generation the new refresh token carries.
        generation: u64,
    },
    /// An older generation was presented: a token was used twice, so the
    /// store has revoked the whole family (OAuth 2.1 §4.3.1 reuse detection).
    Reused,
    /// The family was revoked before (reuse, or RFC 7009 revocation).
    Revoked,
    /// No such family: expired, or never created in this store.
    Unknown,
}

/// The answer of [`Store::family_status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FamilyStatus {
    /// Live, at this generation.
    Current(u64),
    /// Revoked; kept until the family would have expired.
    Revoked,
    /// No such family.
    Unknown,
}

/// Why a store operation did not answer. Callers fail closed on every one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store did not answer within `timeout_ms`.
    #[error("the shared store did not answer within {0} ms")]
    TimedOut(u64),
    /// The store cannot be used now: not reachable, refusing us, or
    /// answering what this proxy did not ask for. The text never holds the
    /// URL or its password.
    #[error("the shared store is unavailable: {0}")]
    Unavailable(String),
    /// The memory backend is full of unexpired entries; it refuses rather
    /// than forgetting one (which could let a replay through).
    #[error("the in-memory store is full")]
    Full,
}

/// Why a store could not be set up from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum StoreSetupError {
    /// The environment variable naming the URL is unset or not UTF-8.
    #[error("store: environment variable {0} holding the Redis URL is not set")]
    UrlEnvMissing(String),
    /// The URL file could not be read.
    #[error("store: cannot read the Redis URL from {path}: {source}")]
    UrlFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The URL is not a usable Redis URL; the message never repeats it.
    #[error("store: the Redis URL {0}")]
    BadUrl(&'static str),
    /// `root_certs` could not be read.
    #[error("store.root_certs: {0}")]
    RootCerts(String),
}

/// Which operation failed, for `cimd_proxy_store_errors_total{operation}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum Operation {
    /// [`Store::use_once`].
    UseOnce,
    /// [`Store::create_family`].
    CreateFamily,
    /// [`Store::advance_family`].
    AdvanceFamily,
    /// [`Store::rewind_family`].
    RewindFamily,
    /// [`Store::revoke_family`].
    RevokeFamily,
    /// [`Store::family_status`].
    FamilyStatus,
    /// [`Store::ping`].
    Ping,
    /// [`Store::record_client`].
    RecordClient,
    /// [`Store::client`], [`Store::clients`], [`Store::client_count`].
    ReadClients,
    /// [`Store::add_user`].
    AddUser,
    /// [`Store::count_users`].
    CountUsers,
    /// [`Store::count`].
    Count,
}

/// A client's inventory entry as the store keeps it: field names to values
/// (a Redis hash). What the fields mean is `inventory`'s business; the
/// store only sets, increments and orders them.
pub type ClientFields = BTreeMap<String, String>;

/// The field every write sets once, to the time of the first write (unix ms).
pub const FIRST_SEEN: &str = "first_seen_ms";
/// The field every write sets to its time (unix ms); entries are ordered
/// and evicted by it.
pub const LAST_SEEN: &str = "last_seen_ms";

/// What [`Store::record_client`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// Entries evicted to stay within the bound.
    pub evicted: u64,
    /// Entries held now.
    pub entries: u64,
}

/// One write to a client's inventory entry, applied atomically.
#[derive(Debug, Clone)]
pub struct ClientWrite<'a> {
    /// The client_id (any string an entrance saw: it is hashed for keys).
    pub client_id: &'a str,
    /// The time of the sighting, unix milliseconds.
    pub now_ms: u64,
    /// A sighting creates the entry and moves its last seen; anything else
    /// (an operator's refresh) only changes an entry that exists.
    pub sighting: bool,
    /// Fields set to these values.
    pub set: Vec<(&'static str, String)>,
    /// Counters incremented by these amounts (missing ones start at 0).
    pub increment: Vec<(String, i64)>,
    /// The inventory's bound: beyond it, the least recently seen entries
    /// (and their user counts) are deleted.
    pub max_entries: usize,
}

/// The shared store: one per process, behind an `Arc`.
#[derive(Debug)]
pub enum Store {
    /// In this process.
    Memory(MemoryStore),
    /// Redis or Valkey.
    Redis(RedisStore),
}

impl Store {
    /// The store `config` names. A Redis store connects lazily: an
    /// unreachable Redis does not stop the process from starting (its
    /// readiness stays false until Redis answers); a URL that cannot be read
    /// or parsed does.
    pub fn connect(config: &StoreConfig) -> Result<Store, StoreSetupError> {
        // Every series of the closed label set exists from the start, at 0,
        // so an alert on its rate needs no special case for "absent".
        for operation in <Operation as strum::VariantArray>::VARIANTS {
            let label: &'static str = (*operation).into();
            METRICS.store_errors.with_label_values(&[label]);
        }
        Ok(match config.backend {
            Backend::Memory => Store::Memory(MemoryStore::new(config.max_entries)),
            Backend::Redis => Store::Redis(RedisStore::connect(config)?),
        })
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match self {
            Store::Memory(_) => Backend::Memory,
            Store::Redis(_) => Backend::Redis,
        }
    }

    /// Spends `id` (of kind `kind`) for `ttl`, its own remaining lifetime:
    /// [`Use::First`] the first time, [`Use::Replayed`] while the first use
    /// has not expired. `id` may be any length: it is hashed with its kind.
    pub async fn use_once(
        &self,
        kind: SingleUseKind,
        id: &[u8],
        ttl: Duration,
    ) -> Result<Use, StoreError> {
        let key = single_use_digest(kind, id);
        counted(Operation::UseOnce, async {
            match self {
                Store::Memory(store) => store.use_once(key, ttl),
                Store::Redis(store) => store.use_once(kind, &key, ttl).await,
            }
        })
        .await
    }

    /// Starts a refresh-token family at generation 0, living `ttl` (the
    /// refresh token lifetime; rotation does not extend it).
    pub async fn create_family(&self, ttl: Duration) -> Result<Family, StoreError> {
        counted(Operation::CreateFamily, async {
            let id = FamilyId::random()?;
            match self {
                Store::Memory(store) => store.create_family(id, ttl)?,
                Store::Redis(store) => store.create_family(id, ttl).await?,
            }
            Ok(Family { id, generation: 0 })
        })
        .await
    }

    /// Rotates `family` from `presented` to the next generation, atomically:
    /// of two requests presenting the same generation, one advances and the
    /// other revokes the family.
    pub async fn advance_family(
        &self,
        family: FamilyId,
        presented: u64,
    ) -> Result<Rotation, StoreError> {
        counted(Operation::AdvanceFamily, async {
            match self {
                Store::Memory(store) => store.advance_family(family, presented),
                Store::Redis(store) => store.advance_family(family, presented).await,
            }
        })
        .await
    }

    /// Undoes an advance whose refresh failed before the client got the
    /// new generation: `family` goes back from `advanced` to `presented`,
    /// only if it still stands at `advanced` (not revoked, not advanced
    /// again). Whether it went back.
    pub async fn rewind_family(
        &self,
        family: FamilyId,
        advanced: u64,
        presented: u64,
    ) -> Result<bool, StoreError> {
        counted(Operation::RewindFamily, async {
            match self {
                Store::Memory(store) => Ok(store.rewind_family(family, advanced, presented)),
                Store::Redis(store) => store.rewind_family(family, advanced, presented).await,
            }
        })
        .await
    }

    /// Memory backend only: takes on a `family` this process does not know
    /// at the `generation` its token presents, living `ttl` (what is left
    /// of the family's lifetime), so a token sealed by another replica or
    /// before a restart keeps working, rotated from here on. `true` when it
    /// was taken on; [`StoreError::Full`] when the table is (a failure is
    /// counted as `create_family`: adopting is creating here). Redis never
    /// adopts (always `false`): there an unknown family has expired or was
    /// never made, and is refused.
    pub async fn adopt_family(
        &self,
        family: FamilyId,
        generation: u64,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        counted(Operation::CreateFamily, async {
            match self {
                Store::Memory(store) => store.adopt_family(family, generation, ttl),
                Store::Redis(_) => Ok(false),
            }
        })
        .await
    }

    /// Revokes `family` for the rest of its lifetime (RFC 7009). Revoking
    /// an unknown or expired family is not an error: there is nothing left
    /// to use.
    pub async fn revoke_family(&self, family: FamilyId) -> Result<(), StoreError> {
        counted(Operation::RevokeFamily, async {
            match self {
                Store::Memory(store) => {
                    store.revoke_family(family);
                    Ok(())
                }
                Store::Redis(store) => store.revoke_family(family).await,
            }
        })
        .await
    }

    /// Where `family` stands, without changing it.
    pub async fn family_status(&self, family: FamilyId) -> Result<FamilyStatus, StoreError> {
        counted(Operation::FamilyStatus, async {
            match self {
                Store::Memory(store) => Ok(store.family_status(family)),
                Store::Redis(store) => store.family_status(family).await,
            }
        })
        .await
    }

    /// Applies `write` to its client's inventory entry (creating it), and
    /// evicts the least recently seen entries beyond the bound.
    pub async fn record_client(&self, write: &ClientWrite<'_>) -> Result<Recorded, StoreError> {
        counted(Operation::RecordClient, async {
            match self {
                Store::Memory(store) => Ok(store.clients().record(write)),
                Store::Redis(store) => store.record_client(write).await,
            }
        })
        .await
    }

    /// One client's inventory entry.
    pub async fn client(&self, client_id: &str) -> Result<Option<ClientFields>, StoreError> {
        counted(Operation::ReadClients, async {
            match self {
                Store::Memory(store) => Ok(store.clients().get(client_id)),
                Store::Redis(store) => store.client(client_id).await,
            }
        })
        .await
    }

    /// At most `limit` inventory entries after the first `offset`, the most
    /// recently seen first.
    pub async fn clients(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<ClientFields>, StoreError> {
        counted(Operation::ReadClients, async {
            match self {
                Store::Memory(store) => Ok(store.clients().list(offset, limit)),
                Store::Redis(store) => store.clients(offset, limit).await,
            }
        })
        .await
    }

    /// How many clients the inventory holds.
    pub async fn client_count(&self) -> Result<u64, StoreError> {
        counted(Operation::ReadClients, async {
            match self {
                Store::Memory(store) => Ok(store.clients().len() as u64),
                Store::Redis(store) => store.client_count().await,
            }
        })
        .await
    }

    /// Counts `user` (a digest, never the identity itself) among the users
    /// of a client in the inventory (`PFADD`); nothing for a client that is
    /// not in it.
    pub async fn add_user(&self, client_id: &str, user: &[u8; 16]) -> Result<(), StoreError> {
        counted(Operation::AddUser, async {
            match self {
                Store::Memory(store) => {
                    let mut first = [0u8; 8];
                    first.copy_from_slice(&user[..8]);
                    store
                        .clients()
                        .add_user(client_id, u64::from_be_bytes(first));
                    Ok(())
                }
                Store::Redis(store) => store.add_user(client_id, user).await,
            }
        })
        .await
    }

    /// The estimated number of distinct users counted for a client
    /// (`PFCOUNT`).
    pub async fn count_users(&self, client_id: &str) -> Result<u64, StoreError> {
        counted(Operation::CountUsers, async {
            match self {
                Store::Memory(store) => Ok(store.clients().count_users(client_id)),
                Store::Redis(store) => store.count_users(client_id).await,
            }
        })
        .await
    }

    /// Adds one to the counter `key` and returns its new value. The
    /// counter starts at 1 and is forgotten `window` after its first
    /// increment (a fixed window: `INCR` then, on the first one, `PEXPIRE`,
    /// atomically, on Redis), which is what a rate limit counts in. `key`
    /// is the caller's name for the counter (`registration:…`); the store
    /// hashes nothing into it, so keep it short.
    pub async fn count(&self, key: &str, window: Duration) -> Result<u64, StoreError> {
        counted(Operation::Count, async {
            match self {
                Store::Memory(store) => store.count(key, window),
                Store::Redis(store) => store.count(key, window).await,
            }
        })
        .await
    }

    /// A cheap check that the store answers (Redis `PING`), for `/readyz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        counted(Operation::Ping, async {
            match self {
                Store::Memory(_) => Ok(()),
                Store::Redis(store) => store.ping().await,
            }
        })
        .await
    }
}

/// Counts a failed operation; the deadline itself is applied by the backend
/// (the memory backend never waits).
async fn counted<T>(
    operation: Operation,
    work: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let result = work.await;
    if result.is_err() {
        let label: &'static str = operation.into();
        METRICS.store_errors.with_label_values(&[label]).inc();
    }
    result
}

/// SHA-256 over the kind and the id: a fixed-size key whatever the id's
/// length, and no id of one kind can collide with another kind's.
fn single_use_digest(kind: SingleUseKind, id: &[u8]) -> [u8; 32] {
    let tag: &'static str = kind.into();
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(&(tag.len() as u64).to_be_bytes());
    context.update(tag.as_bytes());
    context.update(id);
    let mut key = [0u8; 32];
    key.copy_from_slice(context.finish().as_ref());
    key
}

/// The key part naming a client: SHA-256 of its client_id in hex, so any
/// string an outsider sent makes a fixed-size, printable key.
fn client_key(client_id: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, client_id.as_bytes()).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}

#[cfg(test)]
mod tests;
