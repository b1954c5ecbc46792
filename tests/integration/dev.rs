//! `cimd-proxy dev`: the whole sign-in, walked like a browser.
//!
//! Dev mode runs in-process on ephemeral loopback ports, and a small
//! browser stand-in follows redirects by hand (keeping cookies, submitting
//! the proxy's interstitial form the way its Continue button would) from
//! the sample client's start link, through the proxy and the development
//! provider, back to the sample client's result page. The binary is run too:
//! it refuses non-loopback listeners, prints its banner once ready, and
//! exits 0 on Ctrl-C with its temporary folder gone.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cimd_proxy::dev::{self, DevError, DevOptions};
use http::header;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use url::Url;

use crate::support::Cli;
use crate::support::cli::BIN;

fn ephemeral() -> DevOptions {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    DevOptions {
        listen: any,
        admin_listen: any,
    }
}

/// One response, read whole.
struct Page {
    status: http::StatusCode,
    headers: http::HeaderMap,
    body: String,
}

/// Just enough of a browser: no redirect is followed by the client itself;
/// cookies are kept (per host, as browsers do, so ports share them).
struct Browser {
    http: Client<HttpConnector, Full<Bytes>>,
    cookies: BTreeMap<String, String>,
}

impl Browser {
    fn new() -> Self {
        Browser {
            http: Client::builder(TokioExecutor::new()).build_http(),
            cookies: BTreeMap::new(),
        }
    }

    async fn send(&mut self, method: &str, url: &Url, form: Option<String>) -> Page {
        let mut request = http::Request::builder()
            .method(method)
            .uri(url.as_str())
            .header(header::ACCEPT, "text/html");
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            request = request.header(header::COOKIE, jar.join("; "));
        }
        let body = match form {
            Some(form) => {
                // What a browser sends with a same-origin form submission.
                request = request
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .header(header::ORIGIN, url.origin().ascii_serialization())
                    .header("sec-fetch-site", "same-origin");
                Full::new(Bytes::from(form))
            }
            None => Full::new(Bytes::new()),
        };
        let response = tokio::time::timeout(
            Duration::from_secs(15),
            self.http.request(request.body(body).unwrap()),
        )
        .await
        .unwrap_or_else(|_| panic!("{method} {url} timed out"))
        .unwrap_or_else(|error| panic!("{method} {url}: {error}"));
        let (parts, body) = response.into_parts();
        for cookie in parts.headers.get_all(header::SET_COOKIE) {
            let pair = cookie.to_str().unwrap().split(';').next().unwrap();
            if let Some((name, value)) = pair.split_once('=') {
                self.cookies
                    .insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
        let body = body.collect().await.unwrap().to_bytes();
        Page {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }
}

/// Where the walk went and where it ended.
struct Walk {
    visited: Vec<String>,
    interstitials: usize,
    last_url: Url,
    page: Page,
}

/// Which button a person presses on the proxy's interstitial page.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Press {
    Continue,
    Cancel,
}

/// Follows the sign-in from `start` until a page that is neither a redirect
/// nor the proxy's interstitial form, pressing Continue on the latter.
async fn walk(browser: &mut Browser, start: &str, proxy: &str) -> Walk {
    walk_pressing(browser, start, proxy, Press::Continue).await
}

/// [`walk`], pressing `press` on the interstitial page.
async fn walk_pressing(browser: &mut Browser, start: &str, proxy: &str, press: Press) -> Walk {
    let mut url = Url::parse(start).unwrap();
    let mut method = "GET";
    let mut form = None;
    let mut visited = Vec::new();
    let mut interstitials = 0;
    for _ in 0..16 {
        visited.push(format!("{method} {url}"));
        let page = browser.send(method, &url, form.take()).await;
        if page.status.is_redirection() {
            let location = page.headers[header::LOCATION].to_str().unwrap();
            url = url.join(location).unwrap();
            method = "GET";
            continue;
        }
        let from_proxy = url.as_str().starts_with(proxy);
        if from_proxy && page.status.is_success() && page.body.contains("<form") {
            let submit = match press {
                Press::Continue => continue_form(&page.body),
                Press::Cancel => choose_form(&page.body, &["cancel"], &[]),
            }
            .unwrap_or_else(|| panic!("no such button on the proxy's page:\n{}", page.body));
            interstitials += 1;
            url = url.join(&submit.action).unwrap();
            if submit.method == "post" {
                method = "POST";
                form = Some(encode(&submit.fields));
            } else {
                method = "GET";
                url.set_query(Some(&encode(&submit.fields)));
            }
            continue;
        }
        return Walk {
            visited,
            interstitials,
            last_url: url,
            page,
        };
    }
    panic!("the sign-in did not end within 16 steps: {visited:#?}");
}

fn encode(fields: &[(String, String)]) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in fields {
        form.append_pair(name, value);
    }
    form.finish()
}

/// A form submission: method (lower case), action, fields in order.
#[derive(Debug)]
struct Submit {
    method: String,
    action: String,
    fields: Vec<(String, String)>,
}

/// The submission a person makes by pressing Continue: the form holding a
/// submit control that reads like "continue" (or, failing that, one that
/// does not read like "cancel"), with its hidden inputs and that control's
/// own name and value.
fn continue_form(html: &str) -> Option<Submit> {
    choose_form(
        html,
        &["continue", "proceed", "allow"],
        &["cancel", "deny", "back"],
    )
}

/// The submission of the control reading like one of `prefer`; failing
/// that, of the first form with a control that reads like none of `avoid`.
fn choose_form(html: &str, prefer: &[&str], avoid: &[&str]) -> Option<Submit> {
    let lower = html.to_ascii_lowercase();
    let mut fallback = None;
    let mut from = 0;
    while let Some(offset) = lower[from..].find("<form") {
        let start = from + offset;
        let end = lower[start..]
            .find("</form>")
            .map_or(html.len(), |end| start + end);
        from = end;
        let block = &html[start..end];
        let open = tag_attributes(block);
        let method = open
            .get("method")
            .map_or("get".to_owned(), |m| m.to_ascii_lowercase());
        let action = open.get("action").cloned().unwrap_or_default();
        let mut fields = Vec::new();
        let mut buttons = Vec::new();
        let block_lower = block.to_ascii_lowercase();
        let mut at = 1;
        while let Some(offset) = block_lower[at..].find('<') {
            let tag_start = at + offset;
            at = tag_start + 1;
            let tag = &block[tag_start..];
            let tag_lower = &block_lower[tag_start..];
            if tag_lower.starts_with("<input") {
                let attrs = tag_attributes(tag);
                let kind = attrs
                    .get("type")
                    .map_or("text".into(), |t| t.to_ascii_lowercase());
                let name = attrs.get("name").cloned();
                let value = attrs.get("value").cloned().unwrap_or_default();
                match (kind.as_str(), name) {
                    ("submit", name) => buttons.push((name, value.clone(), value)),
                    (_, Some(name)) => fields.push((name, value)),
                    _ => {}
                }
            } else if tag_lower.starts_with("<button") {
                let attrs = tag_attributes(tag);
                let kind = attrs
                    .get("type")
                    .map_or("submit".into(), |t| t.to_ascii_lowercase());
                if kind == "submit" {
                    let text_start = tag.find('>').map_or(0, |i| i + 1);
                    let text_end = tag_lower.find("</button>").unwrap_or(tag.len());
                    let text = strip_tags(&tag[text_start..text_end.max(text_start)]);
                    let value = attrs.get("value").cloned().unwrap_or_default();
                    buttons.push((attrs.get("name").cloned(), value, text));
                }
            }
        }
        let reads = |button: &(Option<String>, String, String), words: &[&str]| {
            let label = format!("{} {}", button.1, button.2).to_ascii_lowercase();
            words.iter().any(|word| label.contains(word))
        };
        let submit = |button: Option<&(Option<String>, String, String)>| {
            let mut fields = fields.clone();
            if let Some((Some(name), value, _)) = button {
                fields.push((name.clone(), value.clone()));
            }
            Submit {
                method: method.clone(),
                action: action.clone(),
                fields,
            }
        };
        if let Some(button) = buttons.iter().find(|b| reads(b, prefer)) {
            return Some(submit(Some(button)));
        }
        if fallback.is_none() && !avoid.is_empty() {
            let not_cancel = buttons.iter().find(|b| !reads(b, avoid));
            if not_cancel.is_some() || buttons.is_empty() {
                fallback = Some(submit(not_cancel));
            }
        }
    }
    fallback
}

/// The attributes of the tag `text` starts with, values entity-decoded.
fn tag_attributes(text: &str) -> BTreeMap<String, String> {
    let end = text.find('>').unwrap_or(text.len());
    let inner = &text[1..end];
    let inner = inner
        .find(char::is_whitespace)
        .map_or("", |name_end| &inner[name_end..]);
    let mut attrs = BTreeMap::new();
    let mut rest = inner.trim_start();
    while !rest.is_empty() && !rest.starts_with('/') {
        let name_end = rest
            .find(|c: char| c == '=' || c.is_whitespace() || c == '/')
            .unwrap_or(rest.len());
        let name = rest[..name_end].to_ascii_lowercase();
        rest = rest[name_end..].trim_start();
        let value = if let Some(after) = rest.strip_prefix('=') {
            let after = after.trim_start();
            let (value, remainder) = match after.chars().next() {
                Some(quote @ ('"' | '\'')) => {
                    let close = after[1..].find(quote).map_or(after.len(), |i| i + 1);
                    (&after[1..close], after.get(close + 1..).unwrap_or(""))
                }
                _ => {
                    let stop = after.find(char::is_whitespace).unwrap_or(after.len());
                    (&after[..stop], &after[stop..])
                }
            };
            rest = remainder.trim_start();
            unescape(value)
        } else {
            String::new()
        };
        if name.is_empty() {
            break;
        }
        attrs.insert(name, value);
    }
    attrs
}

fn strip_tags(text: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    unescape(out.trim())
}

/// Decodes the character references askama and hand-written pages use.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest.find(';').filter(|&i| i <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The text of the element with `id` on the page.
fn element(page: &str, id: &str) -> Option<String> {
    let marker = format!("id=\"{id}\"");
    let start = page.find(&marker)?;
    let open_end = start + page[start..].find('>')? + 1;
    let close = open_end + page[open_end..].find("</")?;
    Some(unescape(page[open_end..close].trim()))
}

#[tokio::test]
async fn a_sign_in_as_the_sample_client_ends_with_the_proxys_id_token() {
    let dev = dev::start(ephemeral()).await.expect("dev mode starts");
    let urls = dev.urls().clone();
    assert!(urls.client_id.starts_with("https://127.0.0.1:"));
    assert!(urls.client_id.ends_with("/client.json"));

    let mut browser = Browser::new();
    let home = browser
        .send("GET", &Url::parse(&urls.sample_app).unwrap(), None)
        .await;
    assert!(home.body.contains("Sign in as the sample client"));
    assert!(home.body.contains("NOT FOR PRODUCTION"));

    let walk = walk(&mut browser, &urls.start, &urls.proxy).await;
    let trail = walk.visited.join("\n");
    assert!(
        walk.visited
            .iter()
            .any(|step| step.starts_with(&format!("GET {}/authorize?", urls.idp))),
        "the development provider was never visited:\n{trail}"
    );
    assert!(
        walk.visited
            .iter()
            .any(|step| step.starts_with(&format!("GET {}/callback?", urls.proxy))),
        "the proxy's callback was never visited:\n{trail}"
    );
    assert!(walk.interstitials <= 1, "{trail}");
    assert!(
        walk.last_url
            .as_str()
            .starts_with(&format!("{}callback?", urls.sample_app)),
        "{trail}"
    );
    let page = &walk.page.body;
    assert_eq!(walk.page.status, http::StatusCode::OK, "{page}");
    assert!(
        page.contains("Signed in as the sample client"),
        "{trail}\n{page}"
    );
    assert_eq!(
        element(page, "claim-iss").as_deref(),
        Some(urls.proxy.as_str())
    );
    assert_eq!(
        element(page, "claim-aud").as_deref(),
        Some(urls.client_id.as_str())
    );
    assert_eq!(element(page, "claim-sub").as_deref(), Some("dev-user"));
    assert_eq!(
        element(page, "claim-email").as_deref(),
        Some("dev@example.test")
    );
    assert_eq!(element(page, "iss-is-proxy").as_deref(), Some("yes"));
    assert_eq!(element(page, "aud-is-client").as_deref(), Some("yes"));
    let verification = element(page, "verification").unwrap();
    assert!(
        verification.starts_with("signature verified"),
        "{verification}"
    );
    assert!(
        element(page, "refresh-token")
            .unwrap()
            .starts_with("received")
    );

    // The admin listener answers too.
    let health = browser
        .send(
            "GET",
            &Url::parse(&format!("{}/healthz", urls.admin)).unwrap(),
            None,
        )
        .await;
    assert_eq!(health.status, http::StatusCode::OK);

    let temp_dir = urls.ca_file.parent().unwrap().to_owned();
    assert!(urls.ca_file.exists());
    dev.shutdown().await;
    assert!(!temp_dir.exists(), "the temporary folder outlived dev mode");
    let proxy_addr: SocketAddr = urls.proxy.trim_start_matches("http://").parse().unwrap();
    assert!(
        tokio::net::TcpStream::connect(proxy_addr).await.is_err(),
        "the proxy still listens after shutdown"
    );
}

#[tokio::test]
async fn an_oauth_error_from_the_proxy_is_shown_on_the_result_page() {
    // What Cancel on the interstitial leads to: access_denied at the
    // sample client's callback, with the sign-in's state and the proxy's iss.
    let dev = dev::start(ephemeral()).await.expect("dev mode starts");
    let urls = dev.urls().clone();
    let mut browser = Browser::new();
    let started = browser
        .send("GET", &Url::parse(&urls.start).unwrap(), None)
        .await;
    assert_eq!(started.status, http::StatusCode::FOUND);
    let authorize = Url::parse(started.headers[header::LOCATION].to_str().unwrap()).unwrap();
    let query: BTreeMap<String, String> = authorize.query_pairs().into_owned().collect();
    assert_eq!(query["client_id"], urls.client_id);
    assert_eq!(query["code_challenge_method"], "S256");
    let redirect_uri = Url::parse(&query["redirect_uri"]).unwrap();
    let callback = format!(
        "{redirect_uri}?{}",
        encode(&[
            ("error".into(), "access_denied".into()),
            ("error_description".into(), "the user cancelled <b>".into()),
            ("state".into(), query["state"].clone()),
            ("iss".into(), urls.proxy.clone()),
        ])
    );
    let page = browser
        .send("GET", &Url::parse(&callback).unwrap(), None)
        .await;
    assert_eq!(
        element(&page.body, "oauth-error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(
        element(&page.body, "oauth-error-description").as_deref(),
        Some("the user cancelled <b>")
    );
    assert!(!page.body.contains("<b>"), "the description is escaped");
    dev.shutdown().await;
}

#[tokio::test]
async fn cancel_on_the_interstitial_page_comes_back_as_access_denied() {
    let dev = dev::start(ephemeral()).await.expect("dev mode starts");
    let urls = dev.urls().clone();
    let mut browser = Browser::new();
    let walk = walk_pressing(&mut browser, &urls.start, &urls.proxy, Press::Cancel).await;
    let page = &walk.page.body;
    if walk.interstitials == 0 {
        // A build without the interstitial page signs straight in.
        assert!(page.contains("Signed in as the sample client"), "{page}");
    } else {
        let trail = walk.visited.join("\n");
        assert_eq!(
            element(page, "oauth-error").as_deref(),
            Some("access_denied"),
            "{trail}\n{page}"
        );
        assert!(
            !walk
                .visited
                .iter()
                .any(|step| step.starts_with(&format!("GET {}/authorize?", urls.idp))),
            "Cancel must not reach the provider:\n{trail}"
        );
    }
    dev.shutdown().await;
}

#[tokio::test]
async fn a_taken_proxy_port_is_reported_with_its_flag() {
    let first = dev::start(ephemeral()).await.expect("dev mode starts");
    let taken: SocketAddr = first
        .urls()
        .proxy
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let error = dev::start(DevOptions {
        listen: taken,
        ..ephemeral()
    })
    .await
    .unwrap_err();
    assert!(
        matches!(error, DevError::PortInUse { flag: "--listen", addr, .. } if addr == taken),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&taken.to_string()) && message.contains("--listen"),
        "{message}"
    );
    first.shutdown().await;
}

#[tokio::test]
async fn the_binary_refuses_a_listener_off_loopback() {
    for args in [
        ["dev", "--listen", "0.0.0.0:8080"],
        ["dev", "--admin-listen", "10.0.0.1:9090"],
    ] {
        let out = Cli::new(args).run().await;
        assert_eq!(out.status, Some(2), "{out}");
        assert!(out.stderr.contains("not a loopback address"), "{out}");
        assert!(out.stdout.is_empty(), "nothing started:\n{out}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_prints_its_urls_and_stops_cleanly_on_ctrl_c() {
    let mut child = Command::new(BIN)
        .args([
            "dev",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .env("CIMD_PROXY_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn cimd-proxy dev");
    let stdout = child.stdout.take().unwrap();
    let banner = tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let done = line.contains("Press Ctrl-C");
            lines.push(line);
            if done {
                break;
            }
        }
        lines.join("\n")
    });
    let banner = tokio::time::timeout(Duration::from_secs(30), banner)
        .await
        .expect("the banner within 30 s")
        .unwrap();
    assert!(
        banner.contains("DEVELOPMENT MODE — NOT FOR PRODUCTION"),
        "{banner}"
    );
    let value = |label: &str| {
        banner
            .lines()
            .find_map(|line| line.trim().strip_prefix(label).map(|v| v.trim().to_owned()))
            .unwrap_or_else(|| panic!("no {label} in:\n{banner}"))
    };
    let open = banner
        .lines()
        .find_map(|line| line.trim().strip_prefix("Open "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no Open line in:\n{banner}"))
        .to_owned();
    let ca_file = std::path::PathBuf::from(value("generated CA"));
    assert!(ca_file.exists());

    let mut browser = Browser::new();
    let home = browser.send("GET", &Url::parse(&open).unwrap(), None).await;
    assert_eq!(home.status, http::StatusCode::OK);
    let health = browser
        .send("GET", &Url::parse(&value("admin health")).unwrap(), None)
        .await;
    assert_eq!(health.status, http::StatusCode::OK);

    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(status.success());
    let started = Instant::now();
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("dev mode did not stop within 30 s of Ctrl-C");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(exit.code(), Some(0), "exit status after Ctrl-C");
    assert!(
        !ca_file.parent().unwrap().exists(),
        "the temporary folder outlived dev mode"
    );
}

#[test]
fn the_continue_form_is_found_among_others() {
    let html = r#"<main>
      <form method="post" action="/authorize"><input type="hidden" name="consent" value="a&amp;b">
        <button type="submit" name="decision" value="cancel">Cancel</button>
        <button name="decision" value="continue">Continue to <b>sign in</b></button></form>
      </main>"#;
    let submit = continue_form(html).unwrap();
    assert_eq!(submit.method, "post");
    assert_eq!(submit.action, "/authorize");
    assert_eq!(
        submit.fields,
        vec![
            ("consent".to_owned(), "a&b".to_owned()),
            ("decision".to_owned(), "continue".to_owned())
        ]
    );
    let two_forms = r#"<form method=post action="/cancel"><button>Cancel</button></form>
      <form method='POST' action='/authorize'><input type=hidden name=t value=x><input type="submit" value="Continue"></form>"#;
    let submit = continue_form(two_forms).unwrap();
    assert_eq!(submit.action, "/authorize");
    assert_eq!(submit.fields, vec![("t".to_owned(), "x".to_owned())]);
}
