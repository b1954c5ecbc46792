//! The client inventory against the real server (in-process, as in the
//! parent module): filled by sign-ins, served by the admin API and page,
//! refresh and invalidate observed at the document host, the token, the
//! `clients` command's exit codes, the new-client warning, and two
//! replicas sharing one inventory through Redis.

use super::*;
use crate::support::redis::redis;
use crate::support::{Cli, Script};

/// The admin token the tests configure.
const TOKEN: &str = "test-admin-token-0123456789";

/// `[admin]` with the token in a file, plus `extra`.
fn with_token(world: &World, extra: &str) -> String {
    let path = world.dir.path().join("admin-token");
    std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
    format!(
        "{ALLOW}{extra}\n[admin]\ntoken_file = {}\n",
        crate::support::config::quote(&path.to_string_lossy())
    )
}

/// A `[store]` section on `server` with its URL in a file and a key
/// prefix of its own (`label` and a random part), and the same store's
/// configuration, to read what the proxy wrote.
fn redis_section(
    world: &World,
    server: &crate::support::redis::RedisServer,
    label: &str,
) -> (String, cimd_proxy::store::StoreConfig) {
    let url_file = world.dir.path().join(format!("redis-url-{label}"));
    std::fs::write(&url_file, server.url()).unwrap();
    let prefix = format!("{label}-{}:", FamilyId::random().unwrap());
    let section = format!(
        "[store]\nbackend = \"redis\"\nurl_file = {}\nkey_prefix = \"{prefix}\"\n",
        crate::support::config::quote(&url_file.to_string_lossy())
    );
    let config = cimd_proxy::store::StoreConfig {
        backend: cimd_proxy::store::Backend::Redis,
        url: cimd_proxy::secret::SecretSource::File(url_file),
        key_prefix: prefix,
        ..cimd_proxy::store::StoreConfig::default()
    };
    (section, config)
}

fn segment(client_id: &str) -> String {
    url::form_urlencoded::byte_serialize(client_id.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

impl Proxy {
    /// A request to the admin listener.
    async fn admin_call(&self, method: &str, path: &str, token: Option<&str>) -> Answer {
        let url = self.admin.join(path).unwrap();
        let mut request = http::Request::builder().method(method).uri(url.as_str());
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let response = self
            .http
            .request(request.body(Full::new(Bytes::new())).unwrap())
            .await
            .expect("the admin listener answers");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// The client's entry once `ready` holds for it (sightings are written
    /// in a task of their own).
    async fn entry_when(&self, client_id: &str, ready: impl Fn(&Value) -> bool) -> Value {
        let path = format!("clients/{}", segment(client_id));
        for _ in 0..200 {
            let answer = self.admin_call("GET", &path, None).await;
            if answer.status == StatusCode::OK && ready(&answer.json()) {
                return answer.json();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the inventory never showed {client_id} as expected");
    }

    /// A whole sign-in through the consent page: Continue, the provider,
    /// the callback and the code exchange.
    async fn sign_in_through_consent(&self, client_id: &str) {
        let page = self.authorize(client_id, "https://app.test/cb").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let token = page
            .body
            .split("name=\"consent\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("the consent form's token");
        let cookie = page.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let form = format!("consent={token}&decision=continue");
        let request = http::Request::builder()
            .method("POST")
            .uri(self.base.join("consent").unwrap().as_str())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::COOKIE, cookie)
            .body(Full::new(Bytes::from(form)))
            .unwrap();
        let response = self.http.request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let location = response.headers()[header::LOCATION].to_str().unwrap();
        let back = self.idp.sign_in(location);
        let relayed = self
            .send("GET", &format!("callback?{}", back.query().unwrap()), None)
            .await;
        let code = query(&relayed.location())["code"].clone();
        let answer = self.exchange(client_id, &code).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    }

    async fn exchange(&self, client_id: &str, code: &str) -> Answer {
        self.token(&[
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("code", code),
            ("redirect_uri", "https://app.test/cb"),
            ("code_verifier", VERIFIER),
        ])
        .await
    }
}

#[tokio::test]
async fn the_inventory_fills_from_a_sign_in_and_the_admin_api_serves_it() {
    let world = World::new().await;
    let (origin, client_id) = world
        .app_with(|id| {
            Script::json_with(
                &[("etag", "\"v1\""), ("cache-control", "max-age=600")],
                document(id).to_string(),
            )
        })
        .await;
    let proxy = Proxy::start(&world, origin.port(), ALLOW).await;
    let code = proxy.code_for(&client_id).await;
    assert_eq!(
        proxy.exchange(&client_id, &code).await.status,
        StatusCode::OK
    );
    let entry = proxy
        .entry_when(&client_id, |entry| entry["completed"] == 1)
        .await;
    assert_eq!(entry["client_id"], client_id.as_str());
    assert_eq!(entry["kind"], "cimd");
    assert_eq!(entry["host"], "app.test");
    assert_eq!(entry["started"], 1);
    assert_eq!(entry["last_decision"], "allow");
    assert_eq!(entry["last_rule"], "policy.default_action");
    assert_eq!(entry["upstream_client"], "main");
    assert_eq!(entry["redirect_hosts"], json!(["app.test"]));
    assert_eq!(entry["auth_method"], "none");
    assert_eq!(entry["cache"]["etag"], "\"v1\"");
    let fetched = entry["cache"]["fetched_at"].as_u64().unwrap();
    assert!(fetched.abs_diff(unix_now()) < 60);
    assert_eq!(
        entry["cache"]["expires_at"].as_u64().unwrap(),
        fetched + 600
    );
    // Nothing of the user is kept.
    assert!(!entry.to_string().contains("user-1"), "{entry}");

    // A refusal is counted by its code.
    let refused = proxy.authorize(&client_id, "https://evil.test/cb").await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let entry = proxy
        .entry_when(&client_id, |entry| entry["last_decision"] == "refused")
        .await;
    assert_eq!(entry["refused"]["redirect_uri_mismatch"], 1);

    let list = proxy
        .admin_call("GET", "clients?decision=refused", None)
        .await;
    assert_eq!(list.status, StatusCode::OK);
    let list = list.json();
    assert_eq!(list["total"], 1);
    assert_eq!(list["shared"], false);
    assert_eq!(list["clients"][0]["client_id"], client_id.as_str());
    let none = proxy
        .admin_call("GET", "clients?host=*.example.com", None)
        .await
        .json();
    assert_eq!(none["total"], 0);
    let typo = proxy.admin_call("GET", "clients?decison=allow", None).await;
    assert_eq!(typo.status, StatusCode::BAD_REQUEST);
    let unknown = proxy
        .admin_call(
            "GET",
            &format!("clients/{}", segment("https://x.test/c")),
            None,
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn refresh_and_invalidate_need_the_token_and_cost_one_fetch_each() {
    let world = World::new().await;
    let (origin, client_id) = world.valid_app().await;
    let proxy = Proxy::start(&world, origin.port(), &with_token(&world, "")).await;
    assert_eq!(
        proxy
            .authorize(&client_id, "https://app.test/cb")
            .await
            .status,
        StatusCode::FOUND
    );
    proxy.entry_when(&client_id, |_| true).await;
    let fetches = || origin.requests().len();
    assert_eq!(fetches(), 1);
    let refresh = format!("clients/{}/refresh", segment(&client_id));
    let invalidate = format!("clients/{}/invalidate", segment(&client_id));

    for token in [None, Some("wrong-token-wrong-token")] {
        let refused = proxy.admin_call("POST", &refresh, token).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
        assert_eq!(refused.json()["error"], "unauthorized");
        assert!(refused.headers.contains_key(header::WWW_AUTHENTICATE));
    }
    assert_eq!(fetches(), 1, "a refused refresh fetches nothing");

    let refreshed = proxy.admin_call("POST", &refresh, Some(TOKEN)).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    assert_eq!(refreshed.json()["document"]["ok"], true);
    assert_eq!(fetches(), 2, "one new fetch for the refresh");
    // The refreshed copy serves the next sign-in: no fetch.
    proxy.authorize(&client_id, "https://app.test/cb").await;
    assert_eq!(fetches(), 2);

    let dropped = proxy.admin_call("POST", &invalidate, Some(TOKEN)).await;
    assert_eq!(dropped.status, StatusCode::OK, "{}", dropped.body);
    assert_eq!(dropped.json()["document_was_cached"], true);
    assert_eq!(fetches(), 2, "invalidating fetches nothing");
    let entry = proxy.entry_when(&client_id, |_| true).await;
    assert!(entry["cache"].is_null(), "{entry}");
    proxy.authorize(&client_id, "https://app.test/cb").await;
    assert_eq!(fetches(), 3, "the next request fetches again, once");

    // Not in the inventory: refused before any fetch.
    let other = format!("clients/{}/refresh", segment("https://app.test:1/none"));
    let missing = proxy.admin_call("POST", &other, Some(TOKEN)).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(fetches(), 3);

    let metrics = proxy.admin_call("GET", "metrics", None).await.body;
    assert!(
        metrics.contains("cimd_proxy_admin_actions_total{kind=\"refresh\",result=\"ok\"}"),
        "{metrics}"
    );
    assert!(!metrics.contains("app.test"), "no client_id in a label");
}

#[tokio::test]
async fn a_refresh_while_the_host_fails_keeps_the_copy_held() {
    let world = World::new().await;
    let (origin, client_id) = world.valid_app().await;
    let proxy = Proxy::start(&world, origin.port(), &with_token(&world, "")).await;
    proxy.authorize(&client_id, "https://app.test/cb").await;
    proxy.entry_when(&client_id, |_| true).await;
    origin.set_script(Script::response(503, &[], "down for maintenance"));
    let path = format!("clients/{}/refresh", segment(&client_id));
    let refreshed = proxy.admin_call("POST", &path, Some(TOKEN)).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    let document = &refreshed.json()["document"];
    assert_eq!(document["ok"], false, "{document}");
    assert!(document["detail"].as_str().unwrap().contains("kept"));
    assert_eq!(origin.requests().len(), 2);
    // Sign-ins go on with the copy held, without another fetch.
    let again = proxy.authorize(&client_id, "https://app.test/cb").await;
    assert_eq!(again.status, StatusCode::FOUND, "{}", again.body);
    assert_eq!(origin.requests().len(), 2);
}

#[tokio::test]
async fn without_a_token_mutations_are_refused_with_a_clear_message() {
    let world = World::new().await;
    let (origin, client_id) = world.valid_app().await;
    let proxy = Proxy::start(&world, origin.port(), ALLOW).await;
    proxy.authorize(&client_id, "https://app.test/cb").await;
    proxy.entry_when(&client_id, |_| true).await;
    let path = format!("clients/{}/invalidate", segment(&client_id));
    let refused = proxy.admin_call("POST", &path, Some(TOKEN)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        refused.json()["message"]
            .as_str()
            .unwrap()
            .contains("no admin token is configured"),
        "{}",
        refused.body
    );
    // The page says so too, and offers no form.
    let link = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("id", &client_id)
        .finish();
    let page = proxy
        .admin_call("GET", &format!("client?{link}"), None)
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("no admin token is configured"));
    assert!(!page.body.contains("name=\"token\""));
}

#[tokio::test]
async fn the_page_form_needs_the_token_and_escapes_what_documents_say() {
    let world = World::new().await;
    let (origin, client_id) = world
        .app_with(|id| {
            let mut doc = document(id);
            doc["client_name"] = json!("<script>alert(1)</script>");
            Script::json(doc.to_string())
        })
        .await;
    let proxy = Proxy::start(&world, origin.port(), &with_token(&world, "")).await;
    proxy.authorize(&client_id, "https://app.test/cb").await;
    proxy.entry_when(&client_id, |_| true).await;
    let list = proxy.admin_call("GET", "", None).await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(
        list.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    assert!(!list.body.contains("<script>"), "{}", list.body);
    assert!(list.body.contains("&#60;script&#62;"), "{}", list.body);
    assert!(list.body.contains("own inventory"), "{}", list.body);

    let form = |token: &str| {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("id", &client_id)
            .append_pair("token", token)
            .append_pair("action", "refresh")
            .finish()
    };
    let post = |body: String| {
        let request = http::Request::builder()
            .method("POST")
            .uri(proxy.admin.join("client/action").unwrap().as_str())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        proxy.http.request(request)
    };
    let refused = post(form("not-the-token-at-all")).await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(origin.requests().len(), 1);
    let done = post(form(TOKEN)).await.unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert!(
        done.headers()[header::LOCATION]
            .to_str()
            .unwrap()
            .ends_with("&done=refresh")
    );
    assert_eq!(origin.requests().len(), 2);
}

#[tokio::test]
async fn the_inventory_is_bounded_and_evicts_the_least_recently_seen() {
    let world = World::new().await;
    let (origin, first) = world.valid_app().await;
    let (_second_origin, second) = world
        .host_with("second.test", |id| Script::json(document(id).to_string()))
        .await;
    let proxy = Proxy::start(
        &world,
        origin.port(),
        &format!("{ALLOW}\n[inventory]\nmax_entries = 1\n"),
    )
    .await;
    proxy.authorize(&first, "https://app.test/cb").await;
    proxy.entry_when(&first, |_| true).await;
    // Another port than the configuration allows: refused, and recorded
    // (the client_id is a valid CIMD URL).
    proxy.authorize(&second, "https://app.test/cb").await;
    proxy.entry_when(&second, |_| true).await;
    let list = proxy.admin_call("GET", "clients", None).await.json();
    assert_eq!(list["total"], 1);
    assert_eq!(list["clients"][0]["client_id"], second.as_str());
    let metrics = proxy.admin_call("GET", "metrics", None).await.body;
    assert!(
        metrics.contains("cimd_proxy_inventory_entries 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_new_client_warning_shows_until_enough_users_signed_in() {
    let world = World::new().await;
    let (origin, client_id) = world.valid_app().await;
    let proxy = Proxy::start(
        &world,
        origin.port(),
        "[policy]\ndefault_action = \"allow\"\n\
         new_client_warning = { until_users = 1, until_days = 7 }\n",
    )
    .await;
    // An allowed client, new: the consent page, with the warning.
    let page = proxy.authorize(&client_id, "https://app.test/cb").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body
            .contains("New to your organisation: 0 people have used it."),
        "{}",
        page.body
    );
    proxy.sign_in_through_consent(&client_id).await;
    // The provider's sub was counted (as a digest): no longer new.
    for _ in 0..200 {
        let next = proxy.authorize(&client_id, "https://app.test/cb").await;
        if next.status == StatusCode::FOUND {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the warning never went away after the first user");
}

#[tokio::test]
async fn two_replicas_share_one_inventory_through_redis() {
    let server = redis();
    let _guard = server.shared().await;
    let world = World::new().await;
    let (origin, client_id) = world.valid_app().await;
    let (store, _) = redis_section(&world, server, "inventory");
    let policy = format!(
        "[policy]\ndefault_action = \"allow\"\n\
         new_client_warning = {{ until_users = 1, until_days = 7 }}\n{store}"
    );
    let a = Proxy::start(&world, origin.port(), &policy).await;
    let b = Proxy::start(&world, origin.port(), &policy).await;
    // A sign-in on replica a, through its consent page (the client is new).
    a.sign_in_through_consent(&client_id).await;
    // Replica b sees the entry, counters and all, and the user a counted.
    let entry = b
        .entry_when(&client_id, |entry| entry["completed"] == 1)
        .await;
    assert_eq!(entry["started"], 1);
    let list = b.admin_call("GET", "clients", None).await.json();
    assert_eq!(list["shared"], true);
    assert_eq!(list["total"], 1);
    for _ in 0..200 {
        if b.authorize(&client_id, "https://app.test/cb").await.status == StatusCode::FOUND {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("replica b still warns about a client replica a's user signed in with");
}

#[tokio::test]
async fn the_clients_command_exits_0_done_1_refused_or_missing_2_usage() {
    let world = World::new().await;
    let (origin, client_id) = world.valid_app().await;
    let proxy = Proxy::start(&world, origin.port(), &with_token(&world, "")).await;
    proxy.authorize(&client_id, "https://app.test/cb").await;
    proxy.entry_when(&client_id, |_| true).await;
    let admin = proxy.admin.as_str().trim_end_matches('/').to_owned();
    let clients = |args: &[&str]| {
        let mut all = vec!["clients", "--admin", admin.as_str()];
        all.extend_from_slice(args);
        Cli::new(all.iter().map(|arg| (*arg).to_owned()))
    };

    let list = clients(&["list"]).run().await;
    assert_eq!(list.status, Some(0), "{list}");
    assert!(list.stdout.starts_with("HOST"), "{list}");
    assert!(list.stdout.contains("app.test"), "{list}");
    assert!(list.stdout.contains("this process only"), "{list}");
    let json = clients(&["--json", "show", &client_id]).run().await;
    assert_eq!(json.status, Some(0), "{json}");
    assert_eq!(json.json()["client_id"], client_id.as_str());

    let missing = clients(&["show", "https://app.test/none"]).run().await;
    assert_eq!(missing.status, Some(1), "{missing}");
    assert!(missing.stderr.contains("no such client"), "{missing}");
    let no_token = clients(&["refresh", &client_id]).run().await;
    assert_eq!(no_token.status, Some(1), "{no_token}");
    assert!(!no_token.stderr.contains(TOKEN));
    let refreshed = clients(&["refresh", &client_id])
        .env("CIMD_PROXY_ADMIN_TOKEN", TOKEN)
        .run()
        .await;
    assert_eq!(refreshed.status, Some(0), "{refreshed}");
    assert!(refreshed.stdout.starts_with("document  ok"), "{refreshed}");
    assert!(!refreshed.stdout.contains(TOKEN) && !refreshed.stderr.contains(TOKEN));

    let usage = clients(&["frobnicate"]).run().await;
    assert_eq!(usage.status, Some(2), "{usage}");
    let https = Cli::new(["clients", "--admin", "https://127.0.0.1:1", "list"])
        .run()
        .await;
    assert_eq!(https.status, Some(2), "{https}");
    assert!(https.stderr.contains("http://"), "{https}");
}

#[tokio::test]
async fn an_unreadable_or_short_admin_token_is_listed_before_serving() {
    let world = World::new().await;
    let short = world.dir.path().join("short-token");
    std::fs::write(&short, "short\n").unwrap();
    for (admin, key, says) in [
        (
            "token_env = \"CIMD_PROXY_TEST_SURELY_UNSET_ADMIN_TOKEN\"".to_owned(),
            "admin.token_env",
            "CIMD_PROXY_TEST_SURELY_UNSET_ADMIN_TOKEN",
        ),
        (
            format!(
                "token_file = {}",
                crate::support::config::quote(&short.to_string_lossy())
            ),
            "admin.token_file",
            "at least 16 characters",
        ),
    ] {
        let config = Config::from_toml_str(&format!("[admin]\n{admin}\n"), None).unwrap();
        let problems = cimd_proxy::preflight::serve_problems(&config);
        let problem = problems
            .iter()
            .find(|problem| problem.key == key)
            .unwrap_or_else(|| panic!("{key} not listed in {problems:?}"));
        assert!(problem.message.contains(says), "{problem:?}");
        assert!(!problem.message.contains("short\n"));
    }
}

#[tokio::test]
async fn redis_evicts_the_least_recently_seen_client_with_its_users() {
    use cimd_proxy::secret::SecretSource;
    use cimd_proxy::store::{Backend, ClientWrite, StoreConfig};
    let server = redis();
    let _guard = server.shared().await;
    let dir = tempfile::tempdir().unwrap();
    let url_file = dir.path().join("redis-url");
    std::fs::write(&url_file, server.url()).unwrap();
    let config = StoreConfig {
        backend: Backend::Redis,
        url: SecretSource::File(url_file),
        key_prefix: format!("evict-{}:", FamilyId::random().unwrap()),
        ..StoreConfig::default()
    };
    // Two replicas on one Redis.
    let a = Store::connect(&config).unwrap();
    let b = Store::connect(&config).unwrap();
    let write = |client_id: &'static str, now_ms: u64| ClientWrite {
        client_id,
        now_ms,
        sighting: true,
        set: vec![("client_id", client_id.to_owned())],
        increment: vec![("started".to_owned(), 1)],
        max_entries: 2,
    };
    a.record_client(&write("https://one.test/c", 1000))
        .await
        .unwrap();
    b.record_client(&write("https://two.test/c", 2000))
        .await
        .unwrap();
    b.add_user("https://one.test/c", &[1; 16]).await.unwrap();
    a.add_user("https://one.test/c", &[2; 16]).await.unwrap();
    assert_eq!(b.count_users("https://one.test/c").await.unwrap(), 2);
    let recorded = a
        .record_client(&write("https://three.test/c", 3000))
        .await
        .unwrap();
    assert_eq!((recorded.evicted, recorded.entries), (1, 2));
    assert_eq!(b.client("https://one.test/c").await.unwrap(), None);
    // Its users went with it; a user of a client not in the inventory is not counted.
    assert_eq!(b.count_users("https://one.test/c").await.unwrap(), 0);
    a.add_user("https://one.test/c", &[3; 16]).await.unwrap();
    assert_eq!(a.count_users("https://one.test/c").await.unwrap(), 0);
    let listed: Vec<String> = b
        .clients(0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|fields| fields["client_id"].clone())
        .collect();
    assert_eq!(listed, ["https://three.test/c", "https://two.test/c"]);
    assert_eq!(b.client_count().await.unwrap(), 2);
}

#[tokio::test]
async fn the_last_sightings_are_written_at_shutdown() {
    let server = redis();
    let _guard = server.shared().await;
    let world = World::new().await;
    let (origin, client_id) = world.valid_app().await;
    let (store, config) = redis_section(&world, server, "shutdown");
    let rest = format!("{ALLOW}\n{store}\n[server]\ndrain_s = 0\n");
    let reader = Store::connect(&config).unwrap();
    let proxy = Proxy::start(&world, origin.port(), &rest).await;
    let begun = tokio::time::Instant::now();
    let answer = proxy.authorize(&client_id, "https://app.test/cb").await;
    assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.body);
    proxy.shut_down().await;
    let entry = reader.client(&client_id).await.unwrap();
    // Sooner than a batch's interval: only the shutdown could have written it.
    assert!(
        begun.elapsed() < cimd_proxy::inventory::BATCH_INTERVAL,
        "the sign-in and the shutdown took longer than a batch interval"
    );
    let entry = entry.expect("the sighting was written at shutdown");
    assert_eq!(entry["started"], "1");
}
