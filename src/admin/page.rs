//! The admin page: the inventory as a table at `/`, one page per client at
//! `/client?id=…` with a refresh / invalidate form (the token typed into
//! it: no script, and a cross-site form cannot know it). Askama templates,
//! auto-escaped (every value here came from outsiders' documents), under
//! the consent page's Content-Security-Policy with forms to ourselves only.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::api::{Action, AdminError, ClientsAdmin, parse_list_query};
use crate::html::{CSS, content_security_policy, html_response};
use crate::inventory::{ClientRecord, ago};

/// The decisions the filter offers ("" is any).
const DECISIONS: [&str; 6] = ["", "allow", "warn", "deny", "refused", "pass_through"];

#[derive(Template)]
#[template(path = "admin_clients.html")]
struct ClientsPage {
    css: &'static str,
    rows: Vec<Row>,
    total: usize,
    max_entries: usize,
    shared: bool,
    decisions: Vec<(&'static str, bool)>,
    host: String,
    page: usize,
    pages: usize,
    previous: Option<String>,
    next: Option<String>,
}

/// One client in the table.
struct Row {
    host: String,
    link: String,
    decision: String,
    decision_class: &'static str,
    last_seen: String,
    started: u64,
    completed: u64,
    refused: u64,
    name: String,
    client_id: String,
}

#[derive(Template)]
#[template(path = "admin_client.html")]
struct ClientPageTemplate {
    css: &'static str,
    host: String,
    client: ClientRecord,
    decision: String,
    decision_class: &'static str,
    first_seen: String,
    last_seen: String,
    cache: Option<(String, String, Option<String>)>,
    token_configured: bool,
    done: Option<String>,
    error: Option<String>,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// The CSS class of a decision: one of a closed set, never the stored text.
fn decision_class(decision: Option<&str>) -> &'static str {
    match decision {
        Some("allow") => "allow",
        Some("warn") => "warn",
        Some("deny") => "deny",
        Some("refused") => "refused",
        Some("pass_through") => "pass_through",
        _ => "none",
    }
}

fn client_link(client_id: &str) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("id", client_id)
        .finish();
    format!("/client?{query}")
}

fn render(template: &impl Template, status: StatusCode) -> Response {
    match template.render() {
        Ok(html) => html_response(
            status,
            html,
            &content_security_policy(&["'self'".to_owned()]),
        ),
        Err(error) => {
            tracing::error!(%error, "cannot render an admin page");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// A plain-text refusal; with protected reads, the browser's prompt for
/// the token (any user name, the token as the password).
fn refused(error: &AdminError) -> Response {
    let mut response = (
        match error {
            AdminError::Unauthorized => StatusCode::UNAUTHORIZED,
            AdminError::NotFound => StatusCode::NOT_FOUND,
            AdminError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AdminError::NoToken => StatusCode::FORBIDDEN,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        },
        format!("{error}\n"),
    )
        .into_response();
    if matches!(error, AdminError::Unauthorized) {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"cimd-proxy admin\", charset=\"UTF-8\""),
        );
    }
    response
}

/// `GET /`: the inventory as a table.
pub(super) async fn clients(
    State(admin): State<ClientsAdmin>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let raw = query.unwrap_or_default();
    let result = async {
        admin.may_read(&headers)?;
        let query = parse_list_query(&raw)?;
        Ok::<_, AdminError>((admin.inventory.list(&query).await?, query))
    }
    .await;
    let (list, query) = match result {
        Ok(found) => found,
        Err(error) => return refused(&error),
    };
    let now = now();
    let host_filter: String = url::form_urlencoded::parse(raw.as_bytes())
        .find(|(name, _)| name == "host")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    let pages = list.total.div_ceil(list.per_page).max(1);
    let page_link = |page: usize| {
        let mut serializer = url::form_urlencoded::Serializer::new(String::new());
        if let Some(decision) = &query.decision {
            serializer.append_pair("decision", decision);
        }
        if !host_filter.is_empty() {
            serializer.append_pair("host", &host_filter);
        }
        serializer.append_pair("page", &page.to_string());
        format!("/?{}", serializer.finish())
    };
    let page = ClientsPage {
        css: CSS,
        rows: list
            .clients
            .iter()
            .map(|client| Row {
                host: client
                    .host
                    .clone()
                    .unwrap_or_else(|| "(pre-registered)".to_owned()),
                link: client_link(&client.client_id),
                decision: client
                    .last_decision
                    .clone()
                    .unwrap_or_else(|| "-".to_owned()),
                decision_class: decision_class(client.last_decision.as_deref()),
                last_seen: ago(now, client.last_seen),
                started: client.started,
                completed: client.completed,
                refused: client.refused.values().sum(),
                name: client.client_name.clone().unwrap_or_default(),
                client_id: client.client_id.clone(),
            })
            .collect(),
        total: list.total,
        max_entries: admin.inventory.max_entries(),
        shared: list.shared,
        decisions: DECISIONS
            .iter()
            .map(|option| (*option, query.decision.as_deref().unwrap_or("") == *option))
            .collect(),
        host: host_filter.clone(),
        page: list.page,
        pages,
        previous: (list.page > 1).then(|| page_link(list.page - 1)),
        next: (list.page < pages).then(|| page_link(list.page + 1)),
    };
    render(&page, StatusCode::OK)
}

/// `GET /client?id=…`: one client.
pub(super) async fn client(
    State(admin): State<ClientsAdmin>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Err(error) = admin.may_read(&headers) {
        return refused(&error);
    }
    let query = query.unwrap_or_default();
    let mut id = None;
    let mut done = None;
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "id" => id = Some(value.into_owned()),
            // Only our own redirect sets it, to one of two fixed words.
            "done" if value == "refresh" => {
                done = Some("Refreshed: fetched again now.".to_owned());
            }
            "done" if value == "invalidate" => {
                done = Some("Invalidated: the next request fetches it again.".to_owned());
            }
            _ => {}
        }
    }
    let Some(id) = id else {
        return refused(&AdminError::BadRequest("id is missing".to_owned()));
    };
    client_page(&admin, &id, done, None, StatusCode::OK).await
}

async fn client_page(
    admin: &ClientsAdmin,
    client_id: &str,
    done: Option<String>,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let client = match admin.inventory.get(client_id).await {
        Ok(Some(client)) => client,
        Ok(None) => return refused(&AdminError::NotFound),
        Err(error) => return refused(&AdminError::Store(error)),
    };
    let now = now();
    let page = ClientPageTemplate {
        css: CSS,
        host: client
            .host
            .clone()
            .unwrap_or_else(|| client.client_id.clone()),
        decision: client
            .last_decision
            .clone()
            .unwrap_or_else(|| "-".to_owned()),
        decision_class: decision_class(client.last_decision.as_deref()),
        first_seen: ago(now, client.first_seen),
        last_seen: ago(now, client.last_seen),
        cache: client.cache.as_ref().map(|cache| {
            (
                ago(now, cache.fetched_at),
                ago(now, cache.expires_at),
                cache.etag.clone(),
            )
        }),
        token_configured: admin.token.is_some(),
        client,
        done,
        error,
    };
    render(&page, status)
}

/// `POST /client/action` (`id`, `token`, `action`): the form's refresh or
/// invalidate, then back to the client's page.
pub(super) async fn action(State(admin): State<ClientsAdmin>, body: Bytes) -> Response {
    let mut id = None;
    let mut token = None;
    let mut action = None;
    for (name, value) in url::form_urlencoded::parse(&body) {
        match name.as_ref() {
            "id" => id = Some(value.into_owned()),
            "token" => token = Some(value.into_owned()),
            "action" => action = value.parse::<Action>().ok(),
            _ => {}
        }
    }
    let (Some(id), Some(action)) = (id, action) else {
        return refused(&AdminError::BadRequest(
            "the form needs id and action (refresh or invalidate)".to_owned(),
        ));
    };
    match admin
        .act(action, &id, token.as_deref().map(str::as_bytes))
        .await
    {
        Ok(_) => {
            let kind: &'static str = action.into();
            Redirect::to(&format!("{}&done={kind}", client_link(&id))).into_response()
        }
        Err(AdminError::NotFound) => refused(&AdminError::NotFound),
        Err(error) => {
            let status = match error {
                AdminError::Unauthorized => StatusCode::UNAUTHORIZED,
                AdminError::NoToken => StatusCode::FORBIDDEN,
                _ => StatusCode::CONFLICT,
            };
            client_page(&admin, &id, None, Some(error.to_string()), status).await
        }
    }
}
