//! The admin API over the client inventory: `GET /clients`,
//! `GET /clients/{id}`, `POST /clients/{id}/refresh`,
//! `POST /clients/{id}/invalidate` (the client_id percent-encoded as one
//! path segment).
//!
//! Mutations need the bearer token (`[admin] token_env` / `token_file`);
//! without one configured they are refused, saying so. Reads are open on
//! the admin listener, as `/metrics` is, unless `admin.protect_reads`.
//!
//! Refresh and invalidate act on this process's caches (the document, the
//! client's `jwks_uri` key set, its logo): with several replicas, each
//! one's admin listener is asked (the inventory itself is shared through
//! Redis, the caches are not).

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use serde::Serialize;

use super::auth::AdminToken;
use crate::cache::{CacheStatus, DocumentCache};
use crate::client_auth::ClientAuthenticator;
use crate::client_id::ClientIdUrl;
use crate::inventory::{ClientRecord, Inventory, ListQuery};
use crate::logo::LogoCache;
use crate::metrics::METRICS;
use crate::store::StoreError;

/// What the admin API reads and acts on: the inventory, and the caches a
/// refresh or invalidate reaches. All are kept across reloads.
#[derive(Clone)]
pub struct ClientsAdmin {
    /// The inventory.
    pub inventory: Inventory,
    /// The document cache.
    pub cache: Arc<DocumentCache>,
    /// The logo cache.
    pub logos: Arc<LogoCache>,
    /// The `private_key_jwt` authenticator, whose cache holds clients'
    /// `jwks_uri` key sets.
    pub client_auth: Arc<ClientAuthenticator>,
    /// The admin token; mutations are refused without one.
    pub token: Option<Arc<AdminToken>>,
    /// Whether reads need the token too.
    pub protect_reads: bool,
}

/// An admin action that could not be done; each maps to one answer.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No token is configured: mutations are off.
    #[error(
        "no admin token is configured (set [admin] token_env or token_file): mutations are refused"
    )]
    NoToken,
    /// The request carries no token, or the wrong one.
    #[error("a valid admin token is required (Authorization: Bearer <token>)")]
    Unauthorized,
    /// The client is not in the inventory.
    #[error("no such client in the inventory")]
    NotFound,
    /// A pre-registered client has no document to refresh.
    #[error("this client is pre-registered at the provider: the proxy holds no document for it")]
    NotCimd,
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The inventory's store cannot answer.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AdminError {
    fn status(&self) -> StatusCode {
        match self {
            AdminError::NoToken => StatusCode::FORBIDDEN,
            AdminError::Unauthorized => StatusCode::UNAUTHORIZED,
            AdminError::NotFound => StatusCode::NOT_FOUND,
            AdminError::NotCimd => StatusCode::CONFLICT,
            AdminError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AdminError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The stable code in the JSON answer and the metric's `result`.
    pub fn code(&self) -> &'static str {
        match self {
            AdminError::NoToken => "no_admin_token",
            AdminError::Unauthorized => "unauthorized",
            AdminError::NotFound => "not_found",
            AdminError::NotCimd => "not_cimd",
            AdminError::BadRequest(_) => "bad_request",
            AdminError::Store(_) => "store_unavailable",
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status(),
            Json(serde_json::json!({"error": self.code(), "message": self.to_string()})),
        )
            .into_response();
        if matches!(self, AdminError::Unauthorized) {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"cimd-proxy admin\""),
            );
        }
        response
    }
}

/// How one part of a refresh went.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Step {
    /// Whether it was fetched and valid.
    pub ok: bool,
    /// What happened: the error code, or what was fetched.
    pub detail: String,
}

/// What a refresh did.
#[derive(Debug, Clone, Serialize)]
pub struct RefreshReport {
    /// The client.
    pub client_id: String,
    /// The document, fetched again.
    pub document: Step,
    /// Its `jwks_uri` key set, when it has one.
    pub jwks: Option<Step>,
    /// Its logo, when it has one.
    pub logo: Option<Step>,
    /// The entry as it stands now.
    pub client: Option<ClientRecord>,
}

/// What an invalidate did.
#[derive(Debug, Clone, Serialize)]
pub struct InvalidateReport {
    /// The client.
    pub client_id: String,
    /// Whether a document was held (and is now dropped).
    pub document_was_cached: bool,
}

/// Which mutation, for the metric and the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::EnumString)]
#[strum(serialize_all = "snake_case")]
pub enum Action {
    /// Fetch again now.
    Refresh,
    /// Drop from every cache.
    Invalidate,
}

impl ClientsAdmin {
    /// Whether a read may proceed: open, or the token as bearer or (from a
    /// browser) as the Basic password.
    pub fn may_read(&self, headers: &HeaderMap) -> Result<(), AdminError> {
        if !self.protect_reads {
            return Ok(());
        }
        match &self.token {
            None => Err(AdminError::NoToken),
            Some(token) if token.bearer_matches(headers) || token.basic_matches(headers) => Ok(()),
            Some(_) => Err(AdminError::Unauthorized),
        }
    }

    /// Whether a mutation may proceed with this presented token.
    pub fn may_change(&self, presented: Option<&[u8]>) -> Result<(), AdminError> {
        match (&self.token, presented) {
            (None, _) => Err(AdminError::NoToken),
            (Some(token), Some(presented)) if token.matches(presented) => Ok(()),
            (Some(_), _) => Err(AdminError::Unauthorized),
        }
    }

    /// The entry of a client that can be refreshed: in the inventory, and
    /// a CIMD URL.
    async fn cimd_entry(&self, client_id: &str) -> Result<(ClientRecord, ClientIdUrl), AdminError> {
        let record = self
            .inventory
            .get(client_id)
            .await?
            .ok_or(AdminError::NotFound)?;
        let parsed = ClientIdUrl::parse(client_id).map_err(|_| AdminError::NotCimd)?;
        Ok((record, parsed))
    }

    /// Fetches the client's document again now through the hardened
    /// fetcher, then its `jwks_uri` key set and its logo.
    pub async fn refresh(&self, client_id: &str) -> Result<RefreshReport, AdminError> {
        let (_, parsed) = self.cimd_entry(client_id).await?;
        let (document, metadata) = match self.cache.refetch(&parsed).await {
            Ok(resolved) if resolved.status == CacheStatus::Stale => (
                Step {
                    ok: false,
                    detail: "the host could not be reached: the copy held is kept (stale-if-error)"
                        .to_owned(),
                },
                None,
            ),
            Ok(resolved) => {
                self.inventory
                    .cache_changed(client_id, Some(&resolved.document))
                    .await?;
                let metadata = Arc::clone(&resolved.document.metadata);
                (
                    Step {
                        ok: true,
                        detail: format!("fetched ({} bytes)", resolved.document.fetch.bytes),
                    },
                    Some(metadata),
                )
            }
            Err(error) => {
                self.inventory.cache_changed(client_id, None).await?;
                (
                    Step {
                        ok: false,
                        detail: error.code().as_str().to_owned(),
                    },
                    None,
                )
            }
        };
        let mut jwks = None;
        let mut logo = None;
        if let Some(metadata) = metadata {
            if let Some(uri) = metadata.jwks_uri.as_deref() {
                jwks = Some(match self.client_auth.refetch_key_set(uri).await {
                    Ok(keys) => Step {
                        ok: true,
                        detail: format!("{keys} usable keys"),
                    },
                    Err(error) => Step {
                        ok: false,
                        detail: error.to_string(),
                    },
                });
            }
            if let Some(uri) = metadata.logo_uri.as_deref() {
                logo = Some(match url::Url::parse(uri) {
                    Ok(url) => match self.logos.refetch(&url).await {
                        Some(Ok(image)) => Step {
                            ok: true,
                            detail: format!("{} ({} bytes)", image.content_type, image.bytes.len()),
                        },
                        Some(Err(error)) => Step {
                            ok: false,
                            detail: error.to_string(),
                        },
                        None => Step {
                            ok: true,
                            detail: "not held: logos are fetched only for allowed clients, \
                                     with their document"
                                .to_owned(),
                        },
                    },
                    Err(_) => Step {
                        ok: false,
                        detail: "logo_uri is not a URL".to_owned(),
                    },
                });
            }
        }
        Ok(RefreshReport {
            client_id: client_id.to_owned(),
            document,
            jwks,
            logo,
            client: self.inventory.get(client_id).await?,
        })
    }

    /// Drops the client's document, key set and logo from this process's
    /// caches: the next request fetches each again.
    pub async fn invalidate(&self, client_id: &str) -> Result<InvalidateReport, AdminError> {
        let (record, parsed) = self.cimd_entry(client_id).await?;
        let document_was_cached = self.cache.invalidate(parsed.as_str());
        if let Some(uri) = &record.jwks_uri {
            self.client_auth.forget_key_set(uri);
        }
        if let Some(url) = record
            .logo_uri
            .as_deref()
            .and_then(|uri| url::Url::parse(uri).ok())
        {
            self.logos.forget(&url);
        }
        self.inventory.cache_changed(client_id, None).await?;
        Ok(InvalidateReport {
            client_id: client_id.to_owned(),
            document_was_cached,
        })
    }

    /// Runs a mutation, counting it by kind and result.
    pub async fn act(
        &self,
        action: Action,
        client_id: &str,
        presented: Option<&[u8]>,
    ) -> Result<serde_json::Value, AdminError> {
        let kind: &'static str = action.into();
        let result = async {
            self.may_change(presented)?;
            let value = match action {
                Action::Refresh => serde_json::to_value(self.refresh(client_id).await?),
                Action::Invalidate => serde_json::to_value(self.invalidate(client_id).await?),
            };
            value.map_err(|error| AdminError::BadRequest(error.to_string()))
        }
        .await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(error) => error.code(),
        };
        METRICS
            .admin_actions
            .with_label_values(&[kind, outcome])
            .inc();
        if result.is_ok() {
            tracing::info!(
                target: "audit",
                event = "admin",
                action = kind,
                client_id = %crate::client_id::loggable(client_id),
            );
        }
        result
    }
}

/// The bearer token of a request, as presented.
fn presented_bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().as_bytes())
}

/// `GET /clients?decision=…&host=…&page=…&per_page=…`.
pub(super) async fn list(
    State(admin): State<ClientsAdmin>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let result = async {
        admin.may_read(&headers)?;
        let query = parse_list_query(query.as_deref().unwrap_or_default())?;
        Ok::<_, AdminError>(admin.inventory.list(&query).await?)
    }
    .await;
    match result {
        Ok(page) => Json(page).into_response(),
        Err(error) => error.into_response(),
    }
}

/// The list's query: unknown parameters are refused, so a typo is not a
/// silently ignored filter.
pub fn parse_list_query(query: &str) -> Result<ListQuery, AdminError> {
    let mut list = ListQuery {
        page: 1,
        per_page: 50,
        ..ListQuery::default()
    };
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let number = |value: &str| {
            value
                .parse::<usize>()
                .map_err(|_| AdminError::BadRequest(format!("{name} must be a number")))
        };
        match name.as_ref() {
            "decision" if value.is_empty() => {}
            "decision" => list.decision = Some(value.into_owned()),
            "host" if value.is_empty() => {}
            "host" => {
                let glob = globset::GlobBuilder::new(&value.to_ascii_lowercase())
                    .literal_separator(false)
                    .build()
                    .map_err(|error| AdminError::BadRequest(format!("host: {error}")))?;
                list.host = Some(glob.compile_matcher());
            }
            "page" => list.page = number(&value)?.max(1),
            "per_page" => list.per_page = number(&value)?,
            other => {
                return Err(AdminError::BadRequest(format!(
                    "unknown parameter {other:?}: use decision, host, page, per_page"
                )));
            }
        }
    }
    Ok(list)
}

/// `GET /clients/{id}`.
pub(super) async fn show(
    State(admin): State<ClientsAdmin>,
    headers: HeaderMap,
    Path(client_id): Path<String>,
) -> Response {
    let result = async {
        admin.may_read(&headers)?;
        admin
            .inventory
            .get(&client_id)
            .await?
            .ok_or(AdminError::NotFound)
    }
    .await;
    match result {
        Ok(record) => Json(record).into_response(),
        Err(error) => error.into_response(),
    }
}

/// `POST /clients/{id}/refresh`.
pub(super) async fn refresh(
    State(admin): State<ClientsAdmin>,
    headers: HeaderMap,
    Path(client_id): Path<String>,
) -> Response {
    mutate(&admin, Action::Refresh, &client_id, &headers).await
}

/// `POST /clients/{id}/invalidate`.
pub(super) async fn invalidate(
    State(admin): State<ClientsAdmin>,
    headers: HeaderMap,
    Path(client_id): Path<String>,
) -> Response {
    mutate(&admin, Action::Invalidate, &client_id, &headers).await
}

async fn mutate(
    admin: &ClientsAdmin,
    action: Action,
    client_id: &str,
    headers: &HeaderMap,
) -> Response {
    match admin
        .act(action, client_id, presented_bearer(headers))
        .await
    {
        Ok(value) => Json(value).into_response(),
        Err(error) => error.into_response(),
    }
}
