//! `cimd-proxy clients`: the inventory of a running proxy, from its admin
//! listener (`list`, `show ID`, `refresh ID`, `invalidate ID`), as a table
//! or `--json`.
//!
//! Exit status: 0 done, 1 refused or not found (the admin API said no),
//! 2 a usage error or no answer from the admin listener. The admin
//! listener speaks plain HTTP on a private address, so this is one
//! HTTP/1.1 exchange over TCP with hyper; the token is sent only as a
//! bearer header and never printed.

use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;
use url::Url;

use crate::inventory::{ClientPage, ClientRecord, ago};

/// How long one exchange may take: a refresh fetches up to three things
/// through the fetcher, each under its own deadline.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(60);

/// Everything in a path segment except the unreserved characters is
/// escaped, so a client_id (an https URL) travels as one segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientsCommand {
    /// The inventory, filtered and paged.
    List {
        /// Only clients whose last decision is this.
        decision: Option<String>,
        /// Only clients whose host matches this glob.
        host: Option<String>,
        /// The page, from 1.
        page: usize,
        /// Entries per page.
        per_page: usize,
    },
    /// One client.
    Show(String),
    /// Fetch its document (and keys, logo) again now.
    Refresh(String),
    /// Drop it from the caches.
    Invalidate(String),
}

/// The command and where to send it.
#[derive(Debug, Clone)]
pub struct ClientsRequest {
    /// The admin listener's base URL (`http://127.0.0.1:9090`).
    pub admin: String,
    /// The admin token, when one was given.
    pub token: Option<String>,
    /// Print the API's JSON rather than a table.
    pub json: bool,
    /// What to do.
    pub command: ClientsCommand,
}

/// What to print, and the exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientsOutcome {
    /// 0 done, 1 refused or not found.
    pub exit: u8,
    /// For standard output.
    pub stdout: String,
    /// For standard error (the API's message when it said no).
    pub stderr: String,
}

/// Why the command could not ask at all: exit status 2.
#[derive(Debug, thiserror::Error)]
pub enum ClientsCliError {
    /// `--admin` is not a plain HTTP URL.
    #[error("--admin {0:?}: expected the admin listener's http:// URL, e.g. http://127.0.0.1:9090")]
    BadAdminUrl(String),
    /// The admin listener could not be reached or did not answer.
    #[error("cannot reach the admin listener at {url}: {reason}")]
    Unreachable {
        /// Where.
        url: String,
        /// Why.
        reason: String,
    },
    /// The answer was not what the admin API sends.
    #[error("the admin listener's answer is not the admin API's JSON: {0}")]
    BadAnswer(String),
}

/// Runs the command against the admin listener.
pub async fn run(request: &ClientsRequest) -> Result<ClientsOutcome, ClientsCliError> {
    let base = Url::parse(request.admin.trim_end_matches('/'))
        .ok()
        .filter(|url| url.scheme() == "http" && url.host().is_some())
        .ok_or_else(|| ClientsCliError::BadAdminUrl(request.admin.clone()))?;
    let (method, path) = match &request.command {
        ClientsCommand::List {
            decision,
            host,
            page,
            per_page,
        } => {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            if let Some(decision) = decision {
                query.append_pair("decision", decision);
            }
            if let Some(host) = host {
                query.append_pair("host", host);
            }
            query.append_pair("page", &page.to_string());
            query.append_pair("per_page", &per_page.to_string());
            ("GET", format!("/clients?{}", query.finish()))
        }
        ClientsCommand::Show(id) => ("GET", format!("/clients/{}", segment(id))),
        ClientsCommand::Refresh(id) => ("POST", format!("/clients/{}/refresh", segment(id))),
        ClientsCommand::Invalidate(id) => ("POST", format!("/clients/{}/invalidate", segment(id))),
    };
    let base_path = base.path().trim_end_matches('/');
    let (status, body) = exchange(
        &base,
        method,
        &format!("{base_path}{path}"),
        request.token.as_deref(),
    )
    .await?;
    let value: Value = serde_json::from_slice(&body)
        .map_err(|_| ClientsCliError::BadAnswer(format!("HTTP {status}, not JSON")))?;
    if !(200..300).contains(&status) {
        let message = value
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("the admin API refused");
        return Ok(ClientsOutcome {
            exit: 1,
            stdout: if request.json {
                pretty(&value)
            } else {
                String::new()
            },
            stderr: format!("cimd-proxy clients: {message} (HTTP {status})\n"),
        });
    }
    let stdout = if request.json {
        pretty(&value)
    } else {
        match &request.command {
            ClientsCommand::List { .. } => table(&parse(value)?),
            ClientsCommand::Show(_) => details(&parse(value)?),
            ClientsCommand::Refresh(_) | ClientsCommand::Invalidate(_) => steps(&value),
        }
    };
    Ok(ClientsOutcome {
        exit: 0,
        stdout,
        stderr: String::new(),
    })
}

fn segment(id: &str) -> String {
    utf8_percent_encode(id, SEGMENT).to_string()
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

fn parse<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, ClientsCliError> {
    serde_json::from_value(value).map_err(|error| ClientsCliError::BadAnswer(error.to_string()))
}

/// One HTTP/1.1 exchange with the admin listener.
async fn exchange(
    base: &Url,
    method: &str,
    path_and_query: &str,
    token: Option<&str>,
) -> Result<(u16, Bytes), ClientsCliError> {
    let unreachable = |reason: String| ClientsCliError::Unreachable {
        url: base.to_string(),
        reason,
    };
    let host = base.host_str().unwrap_or_default();
    let port = base.port_or_known_default().unwrap_or(80);
    let authority = match base.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(path_and_query)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::ACCEPT, "application/json");
    if let Some(token) = token {
        builder = builder.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = builder
        .body(Full::new(Bytes::new()))
        .map_err(|_| ClientsCliError::BadAdminUrl(base.to_string()))?;
    let work = async {
        let address = host.trim_start_matches('[').trim_end_matches(']');
        let stream = tokio::net::TcpStream::connect((address, port))
            .await
            .map_err(|error| unreachable(error.to_string()))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|error| unreachable(error.to_string()))?;
        tokio::spawn(connection);
        let response = sender
            .send_request(request)
            .await
            .map_err(|error| unreachable(error.to_string()))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|error| unreachable(error.to_string()))?
            .to_bytes();
        Ok((status, body))
    };
    tokio::time::timeout(EXCHANGE_TIMEOUT, work)
        .await
        .map_err(|_| unreachable(format!("no answer within {} s", EXCHANGE_TIMEOUT.as_secs())))?
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// The list as a table: the host first, as people scan it.
fn table(page: &ClientPage) -> String {
    let now = now();
    let mut rows = vec![[
        "HOST".to_owned(),
        "DECISION".to_owned(),
        "LAST SEEN".to_owned(),
        "STARTED".to_owned(),
        "COMPLETED".to_owned(),
        "REFUSED".to_owned(),
        "CLIENT ID".to_owned(),
    ]];
    for client in &page.clients {
        rows.push([
            client.host.clone().unwrap_or_else(|| "-".to_owned()),
            client
                .last_decision
                .clone()
                .unwrap_or_else(|| "-".to_owned()),
            ago(now, client.last_seen),
            client.started.to_string(),
            client.completed.to_string(),
            client.refused.values().sum::<u64>().to_string(),
            client.client_id.clone(),
        ]);
    }
    let mut widths = [0usize; 7];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    let pages = page.total.div_ceil(page.per_page.max(1)).max(1);
    let scope = if page.shared {
        "shared by every replica"
    } else {
        "this process only"
    };
    out.push_str(&format!(
        "{} of {} clients, page {} of {pages} ({scope})\n",
        page.clients.len(),
        page.total,
        page.page
    ));
    out
}

/// One client, one field a line.
fn details(client: &ClientRecord) -> String {
    let now = now();
    let or_dash = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
    let refused = if client.refused.is_empty() {
        "0".to_owned()
    } else {
        client
            .refused
            .iter()
            .map(|(code, count)| format!("{code} {count}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut lines = vec![
        ("client_id", client.client_id.clone()),
        ("kind", client.kind.clone()),
        ("host", or_dash(&client.host)),
        ("client_name", or_dash(&client.client_name)),
        ("first seen", ago(now, client.first_seen)),
        ("last seen", ago(now, client.last_seen)),
        ("started", client.started.to_string()),
        ("completed", client.completed.to_string()),
        ("refused", refused),
        ("last decision", or_dash(&client.last_decision)),
        ("last outcome", or_dash(&client.last_outcome)),
        ("rule", or_dash(&client.last_rule)),
        ("upstream client", or_dash(&client.upstream_client)),
        ("vouched by", or_dash(&client.vouched_by)),
        ("redirect hosts", client.redirect_hosts.join(", ")),
        ("auth method", or_dash(&client.auth_method)),
    ];
    match &client.cache {
        Some(cache) => {
            lines.push(("fetched", ago(now, cache.fetched_at)));
            lines.push(("expires", ago(now, cache.expires_at)));
            lines.push(("etag", or_dash(&cache.etag)));
        }
        None => lines.push(("cache", "not cached".to_owned())),
    }
    let mut out = String::new();
    for (name, value) in lines {
        out.push_str(&format!("{name:16} {value}\n"));
    }
    out
}

/// What a refresh or invalidate did.
fn steps(value: &Value) -> String {
    let mut out = String::new();
    if let Some(was) = value.get("document_was_cached").and_then(Value::as_bool) {
        out.push_str(if was {
            "invalidated: the document was dropped; the next request fetches it\n"
        } else {
            "invalidated: no document was cached; the next request fetches it\n"
        });
        return out;
    }
    for part in ["document", "jwks", "logo"] {
        let Some(step) = value.get(part).filter(|step| !step.is_null()) else {
            continue;
        };
        let ok = step.get("ok").and_then(Value::as_bool).unwrap_or(false);
        let detail = step.get("detail").and_then(Value::as_str).unwrap_or("");
        out.push_str(&format!(
            "{part:9} {} {detail}\n",
            if ok { "ok    " } else { "failed" }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_id_travels_as_one_path_segment() {
        assert_eq!(
            segment("https://app.example/c.json?x=1"),
            "https%3A%2F%2Fapp.example%2Fc.json%3Fx%3D1"
        );
        assert_eq!(segment("proxy-app_1.~"), "proxy-app_1.~");
    }

    #[tokio::test]
    async fn only_a_plain_http_admin_url_is_accepted() {
        for admin in ["https://127.0.0.1:9090", "127.0.0.1:9090", "http://"] {
            let request = ClientsRequest {
                admin: admin.to_owned(),
                token: None,
                json: false,
                command: ClientsCommand::Show("x".to_owned()),
            };
            assert!(
                matches!(run(&request).await, Err(ClientsCliError::BadAdminUrl(_))),
                "{admin}"
            );
        }
    }
}
