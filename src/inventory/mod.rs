//! The client inventory: every client_id the proxy resolved, what was
//! decided about it, and its document as last seen; the operator's view
//! that dynamic registration used to give for free.
//!
//! Entries live in the shared [`Store`] (a hash per client and a set
//! ordered by last seen, or their in-memory equivalent), so with
//! `[store] backend = "redis"` every replica writes to and reads from one
//! inventory; with the memory backend it is per process. The bound is
//! `inventory.max_entries`: beyond it the least recently seen entries are
//! evicted, counted in `cimd_proxy_inventory_evictions_total`.
//!
//! An entry never holds a secret or a user's identity: the client_id, the
//! public document's name, redirect hosts and auth method, counters,
//! decisions and cache times. The users of a client are counted in a
//! HyperLogLog of digests (`PFADD`), for the new-client warning.
//!
//! Writes are sightings, sent from each entrance (one hook each), merged
//! per client and written in batches ([`batch`]): a slow or failing store
//! never delays or fails a sign-in; a failed write is counted in
//! `cimd_proxy_inventory_write_failures_total` and logged.

mod batch;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::admission::{Admitted, Client, Origin, Refusal};
use crate::cache::{CacheStatus, CachedDocument};
pub use crate::policy::NewClientWarning;
use crate::policy::{Decision, Reason};
use crate::store::{Backend, ClientFields, ClientWrite, FIRST_SEEN, LAST_SEEN, Store, StoreError};

/// `[inventory]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryConfig {
    /// The most clients held; the least recently seen are evicted.
    pub max_entries: usize,
}

impl Default for InventoryConfig {
    fn default() -> Self {
        InventoryConfig {
            max_entries: 10_000,
        }
    }
}

/// Why the new-client warning applies: what the consent page tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Newness {
    /// How many people have used the client; `None` when the store could
    /// not say (the warning is then shown: it fails closed).
    pub users: Option<u64>,
}

/// Field names in the store. Counters of refusals are `refused.<code>`.
mod field {
    pub const CLIENT_ID: &str = "client_id";
    pub const KIND: &str = "kind";
    pub const HOST: &str = "host";
    pub const STARTED: &str = "started";
    pub const COMPLETED: &str = "completed";
    pub const REFUSED_PREFIX: &str = "refused.";
    pub const LAST_DECISION: &str = "last_decision";
    pub const LAST_OUTCOME: &str = "last_outcome";
    pub const LAST_RULE: &str = "last_rule";
    pub const UPSTREAM_CLIENT: &str = "upstream_client";
    pub const VOUCHED_BY: &str = "vouched_by";
    pub const CLIENT_NAME: &str = "client_name";
    pub const REDIRECT_HOSTS: &str = "redirect_hosts";
    pub const AUTH_METHOD: &str = "auth_method";
    pub const JWKS_URI: &str = "jwks_uri";
    pub const LOGO_URI: &str = "logo_uri";
    pub const FETCHED_AT: &str = "fetched_at_ms";
    pub const EXPIRES_AT: &str = "expires_at_ms";
    pub const ETAG: &str = "etag";
}

/// One client as the inventory holds it: what the admin API and page show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRecord {
    /// The client_id, as sent.
    pub client_id: String,
    /// `cimd` (a URL client_id) or `pre_registered` (passed through).
    pub kind: String,
    /// The client_id's host, for a CIMD client.
    pub host: Option<String>,
    /// First seen, unix seconds.
    pub first_seen: u64,
    /// Last seen, unix seconds.
    pub last_seen: u64,
    /// Sign-ins started (admitted at `/authorize`, or passed through).
    pub started: u64,
    /// Sign-ins completed (a code exchanged at `/token`).
    pub completed: u64,
    /// Refusals by their code.
    pub refused: BTreeMap<String, u64>,
    /// The last decision: `allow`, `warn`, `deny`, `refused` or `pass_through`.
    pub last_decision: Option<String>,
    /// The last outcome's code (`ok`, or why it was refused).
    pub last_outcome: Option<String>,
    /// The policy rule (or default) that made the last decision.
    pub last_rule: Option<String>,
    /// The pre-registered client it maps onto.
    pub upstream_client: Option<String>,
    /// The issuer whose software statement vouches for it.
    pub vouched_by: Option<String>,
    /// The document's `client_name`.
    pub client_name: Option<String>,
    /// The hosts of the document's `redirect_uris`.
    pub redirect_hosts: Vec<String>,
    /// The document's `token_endpoint_auth_method`.
    pub auth_method: Option<String>,
    /// The document's `jwks_uri`.
    pub jwks_uri: Option<String>,
    /// The document's `logo_uri`.
    pub logo_uri: Option<String>,
    /// The document cache's state when last seen.
    pub cache: Option<CacheState>,
}

/// The document cache's state for a client: when its document was fetched,
/// until when it is fresh, and the origin's `ETag`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheState {
    /// Fetched (or revalidated) at, unix seconds.
    pub fetched_at: u64,
    /// Fresh until, unix seconds.
    pub expires_at: u64,
    /// The origin's `ETag`.
    pub etag: Option<String>,
}

/// What the list is filtered and paged by.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Only clients whose last decision is this.
    pub decision: Option<String>,
    /// Only clients whose host matches this glob (`*.example.com`).
    pub host: Option<globset::GlobMatcher>,
    /// The page, from 1.
    pub page: usize,
    /// Entries per page.
    pub per_page: usize,
}

impl ListQuery {
    /// Whether a client passes the filters.
    fn matches(&self, record: &ClientRecord) -> bool {
        let decision = self
            .decision
            .as_deref()
            .is_none_or(|wanted| record.last_decision.as_deref() == Some(wanted));
        let host = self.host.as_ref().is_none_or(|glob| {
            record
                .host
                .as_deref()
                .is_some_and(|host| glob.is_match(host))
        });
        decision && host
    }
}

/// The longest pre-registered client_id the inventory records.
pub const MAX_PASS_THROUGH_ID_LEN: usize = 256;

/// The most entries on one page of the list.
pub const MAX_PER_PAGE: usize = 500;

/// One page of the inventory, the most recently seen first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientPage {
    /// The clients on this page.
    pub clients: Vec<ClientRecord>,
    /// How many clients match the filter.
    pub total: usize,
    /// This page, from 1.
    pub page: usize,
    /// Entries per page.
    pub per_page: usize,
    /// Whether the inventory is shared by every replica (Redis) or this
    /// process's own (memory).
    pub shared: bool,
}

use batch::{Batcher, Field};
pub use batch::{INTERVAL as BATCH_INTERVAL, MAX_WAITING};

/// The inventory over the shared store.
#[derive(Debug, Clone)]
pub struct Inventory {
    store: Arc<Store>,
    config: InventoryConfig,
    batcher: Arc<Batcher>,
}

/// What happened, for the counters.
enum Event {
    Started,
    Completed,
    Refused(&'static str),
}

fn now_ms() -> u64 {
    unix_ms(SystemTime::now())
}

fn unix_ms(time: SystemTime) -> u64 {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// A time relative to `now` (both unix seconds) as people say it:
/// "just now", "5 min ago", "in 2 h", "3 days ago"; "never" for 0.
pub fn ago(now: u64, then: u64) -> String {
    if then == 0 {
        return "never".to_owned();
    }
    let (seconds, future) = if then > now {
        (then - now, true)
    } else {
        (now - then, false)
    };
    let amount = match seconds {
        0..10 => return "just now".to_owned(),
        10..60 => format!("{seconds} s"),
        60..3_600 => format!("{} min", seconds / 60),
        3_600..86_400 => format!("{} h", seconds / 3_600),
        _ => match seconds / 86_400 {
            1 => "1 day".to_owned(),
            days => format!("{days} days"),
        },
    };
    if future {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

/// The rule of a decision the policy's default made.
const DEFAULT_RULE: &str = "policy.default_action";

/// The rule that made a decision, as the operator wrote it.
pub fn rule_of(decision: &Decision) -> String {
    let named: Vec<String> = decision
        .reasons
        .iter()
        .map(|reason| match reason {
            Reason::Rule { index, pattern } => format!("policy.rules[{index}] {pattern}"),
            Reason::Default => DEFAULT_RULE.to_owned(),
            Reason::LoopbackOnlyRedirects => "policy.loopback_only_redirects".to_owned(),
            Reason::Vouched { issuer } => format!("vouched by {issuer}"),
            Reason::SelfRegistered { tier: Some(index) } => {
                format!("policy.registration.tiers[{index}]")
            }
            Reason::SelfRegistered { tier: None } => "policy.registration".to_owned(),
        })
        .collect();
    named.join("; ")
}

impl Inventory {
    /// The inventory in `store`, bounded by `config`.
    pub fn new(store: Arc<Store>, config: InventoryConfig) -> Self {
        let batcher = Arc::new(Batcher::new(Arc::clone(&store), config.max_entries));
        Inventory {
            store,
            config,
            batcher,
        }
    }

    /// Writes every sighting still waiting in this process (at shutdown;
    /// reads of the inventory do it themselves).
    pub async fn flush(&self) {
        self.batcher.flush().await;
    }

    /// Whether every replica sharing the store sees this inventory.
    pub fn shared(&self) -> bool {
        self.store.backend() == Backend::Redis
    }

    /// The bound.
    pub fn max_entries(&self) -> usize {
        self.config.max_entries
    }

    /// `/authorize` admitted a client: a sign-in started.
    pub fn admitted(&self, client_id: &str, admitted: &Admitted<'_>) {
        // What the document says changes only when it is fetched: a cache
        // hit (the hot path) records the sighting and the decision alone.
        let client = &admitted.client;
        let mut set = if client
            .document()
            .is_some_and(|resolved| resolved.status == CacheStatus::Hit)
        {
            Vec::from(kind_and_host(client))
        } else {
            describe(client)
        };
        set.extend(decided(&admitted.decision));
        set.push((field::LAST_OUTCOME, Cow::Borrowed("ok")));
        if let Some(upstream) = admitted.upstream {
            set.push((field::UPSTREAM_CLIENT, Cow::Borrowed(upstream.name)));
        }
        self.write(client_id, set, Event::Started);
    }

    /// `/authorize` refused a client. A client_id that is not a valid CIMD
    /// URL was never resolved and is not recorded: anyone can send such
    /// strings by the thousand.
    pub fn refused(&self, client_id: &str, refusal: &Refusal) {
        let outcome = refusal.outcome();
        let mut set = Vec::new();
        match refusal {
            // Neither was resolved: a malformed id, or a registration that
            // does not open (anyone can make either by the thousand).
            Refusal::InvalidClientId(_) | Refusal::Registration(_) => return,
            Refusal::Client { client, .. } => {
                set.push((field::KIND, Cow::Borrowed("cimd")));
                set.push((field::HOST, Cow::Borrowed(client.host_str())));
            }
            Refusal::Denied(denied) => {
                set.extend(describe(&denied.client));
                set.extend(decided(&denied.decision));
            }
            Refusal::RedirectUriNotRegistered(client) | Refusal::RedirectUriRequired(client) => {
                set.extend(describe(client));
            }
        }
        if !matches!(refusal, Refusal::Denied(_)) {
            set.push((field::LAST_DECISION, Cow::Borrowed("refused")));
        }
        set.push((field::LAST_OUTCOME, Cow::Borrowed(outcome)));
        self.write(client_id, set, Event::Refused(outcome));
    }

    /// A pre-registered client's request passed through to the provider.
    /// Only a plausible id is recorded (printable ASCII, at most
    /// [`MAX_PASS_THROUGH_ID_LEN`] bytes): the provider, not the proxy,
    /// knows which exist.
    pub fn passed_through(&self, client_id: &str) {
        if client_id.len() > MAX_PASS_THROUGH_ID_LEN
            || !client_id.bytes().all(|b| b.is_ascii_graphic())
        {
            return;
        }
        let set = vec![
            (field::KIND, Cow::Borrowed("pre_registered")),
            (field::LAST_DECISION, Cow::Borrowed("pass_through")),
            (field::LAST_OUTCOME, Cow::Borrowed("pass_through")),
        ];
        self.write(client_id, set, Event::Started);
    }

    /// A sign-in completed: a code exchanged at `/token`.
    pub fn completed(&self, client_id: &str) {
        self.write(client_id, Vec::new(), Event::Completed);
    }

    /// A user signed in with the client (a code exchanged): the provider's
    /// verified id_token named them `sub`. They are counted as a digest of
    /// the provider's issuer and the `sub` (`PFADD`): neither is stored,
    /// and counting the same user again changes nothing. A refresh is not
    /// a sign-in and is not counted.
    pub fn user(&self, client_id: &str, issuer: &str, sub: &str) {
        self.batcher.user(client_id, user_digest(issuer, sub));
    }

    fn write(&self, client_id: &str, set: Vec<Field<'_>>, event: Event) {
        let counter = match event {
            Event::Started => Cow::Borrowed(field::STARTED),
            Event::Completed => Cow::Borrowed(field::COMPLETED),
            Event::Refused(code) => Cow::Owned(format!("{}{code}", field::REFUSED_PREFIX)),
        };
        self.batcher.sighting(client_id, now_ms(), set, counter);
    }

    /// The operator refreshed or invalidated the client's document: the
    /// cache state shown becomes `document`'s (none after an invalidate).
    /// Awaited, unlike a sighting: the operator reads the entry next.
    pub async fn cache_changed(
        &self,
        client_id: &str,
        document: Option<&CachedDocument>,
    ) -> Result<(), StoreError> {
        // Sightings waiting to be written hold the cache state as it was.
        self.flush().await;
        let set = match document {
            Some(document) => cache_state(document)
                .into_iter()
                .map(|(name, value)| (name, value.into_owned()))
                .collect(),
            None => vec![
                (field::FETCHED_AT, String::new()),
                (field::EXPIRES_AT, String::new()),
                (field::ETAG, String::new()),
            ],
        };
        self.store
            .record_client(&ClientWrite {
                client_id,
                now_ms: now_ms(),
                sighting: false,
                set,
                increment: Vec::new(),
                max_entries: self.config.max_entries,
            })
            .await?;
        Ok(())
    }

    /// The client's entry.
    pub async fn get(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        self.flush().await;
        Ok(self.store.client(client_id).await?.map(ClientRecord::from))
    }

    /// How many clients the inventory holds.
    pub async fn len(&self) -> Result<u64, StoreError> {
        self.flush().await;
        self.store.client_count().await
    }

    /// Whether the inventory is empty.
    pub async fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len().await? == 0)
    }

    /// One page of the clients matching `query`, the most recently seen
    /// first. Unfiltered, only the page is read from the store; with a
    /// filter the whole inventory is (it is bounded) and filtered here, so
    /// filters need nothing of the store.
    pub async fn list(&self, query: &ListQuery) -> Result<ClientPage, StoreError> {
        self.flush().await;
        let per_page = query.per_page.clamp(1, MAX_PER_PAGE);
        let page = query.page.max(1);
        let offset = (page - 1).saturating_mul(per_page);
        let (clients, total) = if query.decision.is_none() && query.host.is_none() {
            let (entries, total) = tokio::join!(
                self.store.clients(offset, per_page),
                self.store.client_count()
            );
            let clients = entries?.into_iter().map(ClientRecord::from).collect();
            (clients, usize::try_from(total?).unwrap_or(usize::MAX))
        } else {
            let matching: Vec<ClientRecord> = self
                .store
                .clients(0, self.config.max_entries)
                .await?
                .into_iter()
                .map(ClientRecord::from)
                .filter(|record| query.matches(record))
                .collect();
            let total = matching.len();
            let clients = matching.into_iter().skip(offset).take(per_page).collect();
            (clients, total)
        };
        Ok(ClientPage {
            clients,
            total,
            page,
            per_page,
            shared: self.shared(),
        })
    }

    /// The new-client warning for an admitted client, when
    /// `policy.new_client_warning` is on and the client is still new.
    pub async fn warning(
        &self,
        policy: &crate::policy::PolicyConfig,
        admitted: &Admitted<'_>,
    ) -> Option<Newness> {
        let warning = policy.new_client_warning?;
        // A relayed pre-registered client is the operator's own listing.
        let id = admitted.client.id()?;
        self.newness(id.as_str(), &warning).await
    }

    /// Whether the new-client warning applies to `client_id` now; `None`
    /// when it does not. A store that cannot answer counts as new: the
    /// warning is a safeguard, so it fails closed.
    pub async fn newness(&self, client_id: &str, warning: &NewClientWarning) -> Option<Newness> {
        let (entry, users) = tokio::join!(
            self.store.client(client_id),
            self.store.count_users(client_id)
        );
        let (entry, users) = match (entry, users) {
            (Ok(entry), Ok(users)) => (entry, users),
            (Err(error), _) | (_, Err(error)) => {
                tracing::warn!(%error, "cannot tell whether a client is new; showing the warning");
                return Some(Newness { users: None });
            }
        };
        // Not recorded yet (the sighting of this very request may still
        // be on its way): first seen now.
        let first_seen_ms = entry
            .as_ref()
            .and_then(|fields| number(fields, FIRST_SEEN))
            .unwrap_or_else(now_ms);
        let age = Duration::from_millis(now_ms().saturating_sub(first_seen_ms));
        let young = age < Duration::from_secs(warning.until_days.saturating_mul(86_400));
        (young && users < warning.until_users).then_some(Newness { users: Some(users) })
    }
}

/// A user as the inventory counts them: 128 bits of SHA-256 over the
/// provider's issuer and the `sub`, so the store never sees who it was.
fn user_digest(issuer: &str, sub: &str) -> [u8; 16] {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(b"cimd-proxy inventory user\0");
    context.update(&(issuer.len() as u64).to_be_bytes());
    context.update(issuer.as_bytes());
    context.update(sub.as_bytes());
    let mut digest = [0u8; 16];
    digest.copy_from_slice(&context.finish().as_ref()[..16]);
    digest
}

/// What kind of client it is, and its host: written with every sighting,
/// so an entry made on a cache hit still says what it is.
fn kind_and_host(client: &Client) -> [Field<'_>; 2] {
    let kind = match client.origin {
        Origin::Document(_) => "cimd",
        Origin::Relayed => "relayed",
        Origin::Registration(_) => "registration",
    };
    [
        (field::KIND, Cow::Borrowed(kind)),
        (field::HOST, Cow::Borrowed(client.host())),
    ]
}

/// What the client's document and cache entry say.
fn describe(client: &Client) -> Vec<Field<'_>> {
    let metadata = &client.metadata;
    let mut set = Vec::from(kind_and_host(client));
    set.extend([
        (
            field::AUTH_METHOD,
            Cow::Borrowed(metadata.token_endpoint_auth_method.as_str()),
        ),
        (
            field::REDIRECT_HOSTS,
            Cow::Owned(redirect_hosts(&metadata.redirect_uris)),
        ),
        (
            field::CLIENT_NAME,
            optional(metadata.client_name.as_deref()),
        ),
        (field::JWKS_URI, optional(metadata.jwks_uri.as_deref())),
        (field::LOGO_URI, optional(metadata.logo_uri.as_deref())),
        (
            field::VOUCHED_BY,
            Cow::Borrowed(client.vouched_by().unwrap_or_default()),
        ),
    ]);
    if let Some(resolved) = client.document() {
        set.extend(cache_state(&resolved.document));
    }
    set
}

/// An optional text field: empty when absent, as the store holds it.
fn optional(value: Option<&str>) -> Cow<'_, str> {
    Cow::Borrowed(value.unwrap_or_default())
}

fn cache_state(document: &CachedDocument) -> [Field<'static>; 3] {
    [
        (
            field::FETCHED_AT,
            Cow::Owned(unix_ms(document.received_at()).to_string()),
        ),
        (
            field::EXPIRES_AT,
            Cow::Owned(unix_ms(document.expires_at()).to_string()),
        ),
        (field::ETAG, Cow::Owned(document.etag().unwrap_or_default())),
    ]
}

fn decided(decision: &Decision) -> [Field<'static>; 2] {
    let rule = match decision.reasons.as_slice() {
        // The common case, on every sighting of most deployments.
        [Reason::Default] => Cow::Borrowed(DEFAULT_RULE),
        _ => Cow::Owned(rule_of(decision)),
    };
    [
        (
            field::LAST_DECISION,
            Cow::Borrowed(decision.action.as_str()),
        ),
        (field::LAST_RULE, rule),
    ]
}

/// The distinct hosts of the redirect URIs, in the document's order,
/// comma-separated (a host holds no comma).
fn redirect_hosts(uris: &[String]) -> String {
    let mut hosts: Vec<String> = Vec::new();
    for uri in uris {
        if let Some(host) = url::Url::parse(uri)
            .ok()
            .and_then(|url| url.host_str().map(str::to_owned))
            && !hosts.contains(&host)
        {
            hosts.push(host);
        }
    }
    hosts.join(",")
}

fn number(fields: &ClientFields, name: &str) -> Option<u64> {
    fields.get(name).and_then(|value| value.parse().ok())
}

fn text(fields: &ClientFields, name: &str) -> Option<String> {
    fields.get(name).filter(|value| !value.is_empty()).cloned()
}

impl From<ClientFields> for ClientRecord {
    fn from(fields: ClientFields) -> Self {
        let seconds = |name| number(&fields, name).unwrap_or_default() / 1000;
        let refused = fields
            .iter()
            .filter_map(|(name, value)| {
                let code = name.strip_prefix(field::REFUSED_PREFIX)?;
                Some((code.to_owned(), value.parse().ok()?))
            })
            .collect();
        let cache = number(&fields, field::FETCHED_AT).map(|fetched_at| CacheState {
            fetched_at: fetched_at / 1000,
            expires_at: seconds(field::EXPIRES_AT),
            etag: text(&fields, field::ETAG),
        });
        ClientRecord {
            client_id: text(&fields, field::CLIENT_ID).unwrap_or_default(),
            kind: text(&fields, field::KIND).unwrap_or_else(|| "cimd".to_owned()),
            host: text(&fields, field::HOST),
            first_seen: seconds(FIRST_SEEN),
            last_seen: seconds(LAST_SEEN),
            started: number(&fields, field::STARTED).unwrap_or_default(),
            completed: number(&fields, field::COMPLETED).unwrap_or_default(),
            refused,
            last_decision: text(&fields, field::LAST_DECISION),
            last_outcome: text(&fields, field::LAST_OUTCOME),
            last_rule: text(&fields, field::LAST_RULE),
            upstream_client: text(&fields, field::UPSTREAM_CLIENT),
            vouched_by: text(&fields, field::VOUCHED_BY),
            client_name: text(&fields, field::CLIENT_NAME),
            redirect_hosts: text(&fields, field::REDIRECT_HOSTS)
                .map(|hosts| hosts.split(',').map(str::to_owned).collect())
                .unwrap_or_default(),
            auth_method: text(&fields, field::AUTH_METHOD),
            jwks_uri: text(&fields, field::JWKS_URI),
            logo_uri: text(&fields, field::LOGO_URI),
            cache,
        }
    }
}
