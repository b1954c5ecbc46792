use serde_json::json;

use super::*;

/// A CLI client as published: loopback redirects without ports, no
/// `application_type`, public client.
const CLI_ID: &str = "https://cli.example.com/oauth/client-metadata.json";
const CLI_DOC: &str = r#"{
  "client_id": "https://cli.example.com/oauth/client-metadata.json",
  "client_name": "Example CLI",
  "redirect_uris": ["http://localhost/callback", "http://127.0.0.1/callback"],
  "grant_types": ["authorization_code", "refresh_token"],
  "response_types": ["code"],
  "token_endpoint_auth_method": "none"
}"#;

/// A hosted chat client as published: `private_key_jwt` with an RS256
/// `jwks_uri` on its own host, both methods listed, logo on another host.
const CHAT_ID: &str = "https://app.example.com/oauth/client-metadata.json";
const CHAT_DOC: &str = r#"{
  "client_id": "https://app.example.com/oauth/client-metadata.json",
  "client_name": "Example Chat",
  "client_uri": "https://app.example.com",
  "logo_uri": "https://cdn.example.net/logo.png",
  "redirect_uris": ["https://app.example.com/api/mcp/auth_callback"],
  "grant_types": ["authorization_code", "refresh_token"],
  "response_types": ["code"],
  "token_endpoint_auth_method": "private_key_jwt",
  "token_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
  "jwks_uri": "https://app.example.com/.well-known/jwks.json",
  "token_endpoint_auth_signing_alg": "RS256"
}"#;

/// A public RSA key as a JWK set.
fn rsa_jwks() -> Value {
    json!({"keys": [{"kty": "RSA", "kid": "1", "use": "sig", "alg": "RS256", "n": "0vx7", "e": "AQAB"}]})
}

fn id(s: &str) -> ClientIdUrl {
    ClientIdUrl::parse(s).unwrap()
}

fn parse_object(doc: &str) -> Map<String, Value> {
    match serde_json::from_str(doc).unwrap() {
        Value::Object(map) => map,
        other => panic!("fixture is not an object: {other}"),
    }
}

/// The CLI document with members set (`Some`) or removed (`None`).
fn cli_with(changes: &[(&str, Option<Value>)]) -> Vec<u8> {
    with(CLI_DOC, changes)
}

/// The chat document with members set (`Some`) or removed (`None`).
fn chat_with(changes: &[(&str, Option<Value>)]) -> Vec<u8> {
    with(CHAT_DOC, changes)
}

fn with(doc: &str, changes: &[(&str, Option<Value>)]) -> Vec<u8> {
    let mut doc = parse_object(doc);
    for (name, value) in changes {
        match value {
            Some(value) => doc.insert((*name).to_owned(), value.clone()),
            None => doc.remove(*name),
        };
    }
    serde_json::to_vec(&doc).unwrap()
}

#[test]
fn cli_client_document_passes() {
    let md = validate(&id(CLI_ID), CLI_DOC.as_bytes()).unwrap();
    assert_eq!(md.client_id, CLI_ID);
    assert_eq!(md.client_name.as_deref(), Some("Example CLI"));
    assert_eq!(md.token_endpoint_auth_method, AuthMethod::None);
    assert_eq!(md.grant_types, ["authorization_code", "refresh_token"]);
    assert_eq!(md.response_types, ["code"]);
    assert_eq!(md.application_type, None);
    assert!(md.extra.is_empty());
    assert!(md.only_loopback_redirects());
}

#[test]
fn cli_client_redirects_match_any_loopback_port() {
    let md = validate(&id(CLI_ID), CLI_DOC.as_bytes()).unwrap();
    assert_eq!(
        md.match_redirect_uri("http://127.0.0.1:52163/callback"),
        Some("http://127.0.0.1/callback")
    );
    assert_eq!(
        md.match_redirect_uri("http://localhost:8080/callback"),
        Some("http://localhost/callback")
    );
    assert_eq!(
        md.match_redirect_uri("http://localhost/callback"),
        Some("http://localhost/callback")
    );
    for refused in [
        "http://127.0.0.1:52163/other",
        "https://127.0.0.1:52163/callback",
        "http://127.0.0.2:52163/callback",
        "http://[::1]:52163/callback",
        "http://evil.example:52163/callback",
        "",
    ] {
        assert_eq!(md.match_redirect_uri(refused), None, "{refused}");
    }
}

#[test]
fn hosted_chat_client_document_passes() {
    let md = validate(&id(CHAT_ID), CHAT_DOC.as_bytes()).unwrap();
    assert_eq!(md.token_endpoint_auth_method, AuthMethod::PrivateKeyJwt);
    assert_eq!(
        md.token_endpoint_auth_methods_supported,
        ["none", "private_key_jwt"]
    );
    assert_eq!(
        md.jwks_uri.as_deref(),
        Some("https://app.example.com/.well-known/jwks.json")
    );
    assert_eq!(md.token_endpoint_auth_signing_alg.as_deref(), Some("RS256"));
    assert_eq!(
        md.logo_uri.as_deref(),
        Some("https://cdn.example.net/logo.png")
    );
    assert_eq!(md.client_uri.as_deref(), Some("https://app.example.com"));
    assert!(!md.only_loopback_redirects());
    assert_eq!(
        md.match_redirect_uri("https://app.example.com/api/mcp/auth_callback"),
        Some("https://app.example.com/api/mcp/auth_callback")
    );
    assert_eq!(
        md.match_redirect_uri("https://app.example.com:8443/api/mcp/auth_callback"),
        None
    );
}

#[test]
fn effective_auth_method() {
    let keys = Some(json!("https://cli.example.com/jwks.json"));
    let both = Some(json!(["none", "private_key_jwt"]));
    let cases: Vec<(&str, Vec<u8>, AuthMethod)> = vec![
        (
            "listed and keys: the stronger method",
            cli_with(&[
                ("token_endpoint_auth_method", None),
                ("token_endpoint_auth_methods_supported", both.clone()),
                ("jwks_uri", keys.clone()),
            ]),
            AuthMethod::PrivateKeyJwt,
        ),
        (
            "listed with inline keys",
            cli_with(&[
                ("token_endpoint_auth_method", None),
                ("token_endpoint_auth_methods_supported", both.clone()),
                ("jwks", Some(rsa_jwks())),
            ]),
            AuthMethod::PrivateKeyJwt,
        ),
        (
            "listed but no keys",
            cli_with(&[
                ("token_endpoint_auth_method", None),
                ("token_endpoint_auth_methods_supported", both.clone()),
            ]),
            AuthMethod::None,
        ),
        (
            "keys but not listed",
            cli_with(&[
                ("token_endpoint_auth_method", None),
                ("jwks_uri", keys.clone()),
            ]),
            AuthMethod::None,
        ),
        (
            "explicit none wins over list and keys",
            cli_with(&[
                ("token_endpoint_auth_methods_supported", both),
                ("jwks_uri", keys),
            ]),
            AuthMethod::None,
        ),
        (
            "nothing said",
            cli_with(&[("token_endpoint_auth_method", None)]),
            AuthMethod::None,
        ),
    ];
    for (name, body, expected) in cases {
        let md = validate(&id(CLI_ID), &body).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(md.token_endpoint_auth_method, expected, "{name}");
    }
}

#[test]
fn accepted_variants() {
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "private-use scheme and other loopback forms",
            CLI_ID,
            cli_with(&[(
                "redirect_uris",
                Some(json!([
                    "com.example.app:/oauth2redirect",
                    "http://[::1]/cb",
                    "http://127.0.0.1:3000/cb",
                    "http://localhost:8080/cb?x=1",
                    "https://app.example.com/cb?x=1"
                ])),
            )]),
        ),
        (
            "optional strings present",
            CLI_ID,
            cli_with(&[
                ("scope", Some(json!("read write"))),
                ("application_type", Some(json!("native"))),
                (
                    "software_statement",
                    Some(json!("eyJhbGciOiJSUzI1NiJ9.e30.sig")),
                ),
                ("policy_uri", Some(json!("https://cli.example.com/privacy"))),
                ("tos_uri", Some(json!("https://cli.example.com/tos"))),
            ]),
        ),
        (
            "escaped slashes in client_id",
            CLI_ID,
            CLI_DOC
                .replacen(CLI_ID, &CLI_ID.replace('/', "\\/"), 1)
                .into_bytes(),
        ),
        (
            "inline public keys with private_key_jwt",
            CHAT_ID,
            chat_with(&[("jwks_uri", None), ("jwks", Some(rsa_jwks()))]),
        ),
        (
            "another asymmetric alg",
            CHAT_ID,
            chat_with(&[("token_endpoint_auth_signing_alg", Some(json!("EdDSA")))]),
        ),
        (
            "other listed methods next to a usable one",
            CHAT_ID,
            chat_with(&[(
                "token_endpoint_auth_methods_supported",
                Some(json!(["tls_client_auth", "private_key_jwt"])),
            )]),
        ),
    ];
    for (name, client_id, body) in cases {
        if let Err(e) = validate(&id(client_id), &body) {
            panic!("{name}: {e}");
        }
    }
}

#[test]
fn defaults_and_extra_members() {
    let body = cli_with(&[
        ("grant_types", None),
        ("response_types", None),
        ("software_id", Some(json!("4NRB1-0XZABZI9E6-5SM3R"))),
        ("x", Some(json!({"n": 1.5, "list": [1, -2, true, null]}))),
    ]);
    let md = validate(&id(CLI_ID), &body).unwrap();
    assert_eq!(md.grant_types, ["authorization_code"]);
    assert_eq!(md.response_types, ["code"]);
    assert_eq!(md.extra.len(), 2);
    assert_eq!(md.extra.to_map()["software_id"], "4NRB1-0XZABZI9E6-5SM3R");

    let out = serde_json::to_value(&md).unwrap();
    assert_eq!(out["token_endpoint_auth_method"], "none");
    assert_eq!(out["software_id"], "4NRB1-0XZABZI9E6-5SM3R");
    assert!(out.get("logo_uri").is_none());
}

/// Pins the assumption the strict visitor makes about serde_json's features.
#[test]
fn numbers_stay_numbers() {
    let body = cli_with(&[("x", Some(json!({"n": 1.5, "big": u64::MAX, "neg": -1})))]);
    let md = validate(&id(CLI_ID), &body).unwrap();
    let extra = md.extra.to_map();
    assert!(extra["x"]["n"].is_f64());
    assert!(extra["x"]["big"].is_u64());
    assert!(extra["x"]["neg"].is_i64());
}

/// What a refusal must be: its code, and for `invalid_metadata` the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Json,
    Mismatch,
    Field(&'static str),
}

fn expect_of(e: &MetadataError) -> Expect {
    match e {
        MetadataError::InvalidJson { .. } => Expect::Json,
        MetadataError::ClientIdMismatch { .. } => Expect::Mismatch,
        MetadataError::Invalid { field, .. } => Expect::Field(field),
    }
}

fn check_refused(id: &ClientIdUrl, cases: Vec<(&str, Vec<u8>, Expect)>) {
    for (name, body, expected) in cases {
        match validate(id, &body) {
            Ok(_) => panic!("{name}: accepted, expected {expected:?}"),
            Err(e) => {
                assert_eq!(expect_of(&e), expected, "{name}: {e}");
                let code = match expected {
                    Expect::Json => ErrorCode::InvalidJson,
                    Expect::Mismatch => ErrorCode::ClientIdMismatch,
                    Expect::Field(_) => ErrorCode::InvalidMetadata,
                };
                assert_eq!(e.code(), code, "{name}");
            }
        }
    }
}

#[test]
fn refuses_what_is_not_a_strict_json_object() {
    let raw = |s: &str| s.as_bytes().to_vec();
    let cases = vec![
        (
            "duplicate top-level member",
            raw(
                r#"{"client_id": "https://cli.example.com/oauth/client-metadata.json",
                    "redirect_uris": ["https://evil.example/cb"],
                    "redirect_uris": ["http://127.0.0.1/callback"]}"#,
            ),
            Expect::Json,
        ),
        (
            "duplicate client_id",
            raw(
                r#"{"client_id": "https://evil.example/x", "client_id": "https://cli.example.com/oauth/client-metadata.json"}"#,
            ),
            Expect::Json,
        ),
        (
            "duplicate in a nested object",
            raw(
                r#"{"client_id": "https://cli.example.com/oauth/client-metadata.json",
                    "redirect_uris": ["http://127.0.0.1/callback"],
                    "jwks": {"keys": [{"kty": "RSA", "kty": "oct"}]}}"#,
            ),
            Expect::Json,
        ),
        (
            "duplicate in an object inside an array",
            raw(r#"{"x": [1, {"a": 1, "a": 2}]}"#),
            Expect::Json,
        ),
        (
            "duplicate spelled with an escape",
            raw(r#"{"a": 1, "\u0061": 2}"#),
            Expect::Json,
        ),
        (
            "byte order mark",
            [b"\xEF\xBB\xBF".as_slice(), CLI_DOC.as_bytes()].concat(),
            Expect::Json,
        ),
        (
            "not UTF-8",
            b"{\"client_name\": \"\xff\"}".to_vec(),
            Expect::Json,
        ),
        (
            "UTF-16",
            CLI_DOC.encode_utf16().flat_map(u16::to_le_bytes).collect(),
            Expect::Json,
        ),
        (
            "top-level array",
            format!("[{CLI_DOC}]").into_bytes(),
            Expect::Json,
        ),
        (
            "top-level string",
            raw(r#""https://cli.example.com/""#),
            Expect::Json,
        ),
        ("top-level null", raw("null"), Expect::Json),
        ("empty body", Vec::new(), Expect::Json),
        (
            "trailing data",
            format!("{CLI_DOC} {{}}").into_bytes(),
            Expect::Json,
        ),
        ("trailing comma", raw(r#"{"a": 1,}"#), Expect::Json),
        ("comment", raw("{/* c */}"), Expect::Json),
        ("single quotes", raw("{'a': 1}"), Expect::Json),
        ("NaN", raw(r#"{"a": NaN}"#), Expect::Json),
        ("number out of range", raw(r#"{"a": 1e400}"#), Expect::Json),
        ("lone surrogate", raw(r#"{"a": "\ud800"}"#), Expect::Json),
        (
            "deep nesting",
            format!("{{\"a\": {}{}}}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
            Expect::Json,
        ),
    ];
    check_refused(&id(CLI_ID), cases);

    let bom = [b"\xEF\xBB\xBF".as_slice(), CLI_DOC.as_bytes()].concat();
    let e = validate(&id(CLI_ID), &bom).unwrap_err();
    assert!(e.to_string().contains("byte order mark"), "{e}");
    let e = validate(&id(CLI_ID), br#"{"a": 1, "a": 2}"#).unwrap_err();
    assert!(e.to_string().contains("duplicate member name \"a\""), "{e}");
}

#[test]
fn refuses_a_client_id_that_is_not_the_url_fetched() {
    let cases = vec![
        (
            "missing",
            cli_with(&[("client_id", None)]),
            Expect::Mismatch,
        ),
        (
            "number",
            cli_with(&[("client_id", Some(json!(1)))]),
            Expect::Mismatch,
        ),
        (
            "null",
            cli_with(&[("client_id", Some(Value::Null))]),
            Expect::Mismatch,
        ),
        (
            "other client",
            cli_with(&[("client_id", Some(json!(CHAT_ID)))]),
            Expect::Mismatch,
        ),
        (
            "explicit default port",
            cli_with(&[(
                "client_id",
                Some(json!(
                    "https://cli.example.com:443/oauth/client-metadata.json"
                )),
            )]),
            Expect::Mismatch,
        ),
        (
            "upper-case host",
            cli_with(&[(
                "client_id",
                Some(json!("https://CLI.example.com/oauth/client-metadata.json")),
            )]),
            Expect::Mismatch,
        ),
        (
            "trailing slash",
            cli_with(&[(
                "client_id",
                Some(json!("https://cli.example.com/oauth/client-metadata.json/")),
            )]),
            Expect::Mismatch,
        ),
    ];
    check_refused(&id(CLI_ID), cases);

    let e = validate(
        &id(CLI_ID),
        &cli_with(&[("client_id", Some(json!(CHAT_ID)))]),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "client_id mismatch: the document has client_id \"{CHAT_ID}\", but it was fetched from \"{CLI_ID}\""
        )
    );
}

#[test]
fn refuses_bad_redirect_uris() {
    let uris = |v: Value| cli_with(&[("redirect_uris", Some(v))]);
    let field = Expect::Field("redirect_uris");
    let many: Vec<String> = (0..=MAX_REDIRECT_URIS)
        .map(|i| format!("https://app.example.com/cb{i}"))
        .collect();
    let cases = vec![
        ("missing", cli_with(&[("redirect_uris", None)]), field),
        ("a string", uris(json!("http://127.0.0.1/callback")), field),
        ("null", uris(Value::Null), field),
        ("empty", uris(json!([])), field),
        ("too many", uris(json!(many)), field),
        (
            "entry not a string",
            uris(json!(["http://127.0.0.1/cb", 7])),
            field,
        ),
        ("relative", uris(json!(["/callback"])), field),
        (
            "fragment",
            uris(json!(["https://app.example.com/cb#x"])),
            field,
        ),
        (
            "empty fragment",
            uris(json!(["https://app.example.com/cb#"])),
            field,
        ),
        ("javascript", uris(json!(["javascript:alert(1)"])), field),
        ("JavaScript", uris(json!(["JavaScript:alert(1)//"])), field),
        (
            "data",
            uris(json!(["data:text/html,<script>alert(1)</script>"])),
            field,
        ),
        ("vbscript", uris(json!(["vbscript:msgbox(1)"])), field),
        ("file", uris(json!(["file:///etc/passwd"])), field),
        (
            "blob",
            uris(json!(["blob:https://app.example.com/0b1c"])),
            field,
        ),
        (
            "http on a public host",
            uris(json!(["http://app.example.com/cb"])),
            field,
        ),
        (
            "HTTP on a public host",
            uris(json!(["HTTP://app.example.com/cb"])),
            field,
        ),
        (
            "http on 127.0.0.2",
            uris(json!(["http://127.0.0.2/cb"])),
            field,
        ),
        (
            "http on a localhost lookalike",
            uris(json!(["http://localhost.evil.example/cb"])),
            field,
        ),
        (
            "http with localhost as userinfo",
            uris(json!(["http://localhost@evil.example/cb"])),
            field,
        ),
        (
            "one bad entry among good ones",
            uris(json!(["http://127.0.0.1/callback", "javascript:alert(1)"])),
            field,
        ),
    ];
    check_refused(&id(CLI_ID), cases);
    let exactly_max = uris(json!(many[..MAX_REDIRECT_URIS]));
    assert!(validate(&id(CLI_ID), &exactly_max).is_ok());
}

#[test]
fn refuses_shared_secrets_and_unsupported_auth_methods() {
    let method = |m: Value| cli_with(&[("token_endpoint_auth_method", Some(m))]);
    let supported = |m: Value| {
        cli_with(&[
            ("token_endpoint_auth_method", None),
            ("token_endpoint_auth_methods_supported", Some(m)),
        ])
    };
    let one = Expect::Field("token_endpoint_auth_method");
    let list = Expect::Field("token_endpoint_auth_methods_supported");
    let cases = vec![
        (
            "client_secret_basic",
            method(json!("client_secret_basic")),
            one,
        ),
        (
            "client_secret_post",
            method(json!("client_secret_post")),
            one,
        ),
        ("client_secret_jwt", method(json!("client_secret_jwt")), one),
        ("tls_client_auth", method(json!("tls_client_auth")), one),
        ("upper-case NONE", method(json!("NONE")), one),
        ("empty string", method(json!("")), one),
        ("not a string", method(json!(["none"])), one),
        (
            "private_key_jwt without keys",
            cli_with(&[("token_endpoint_auth_method", Some(json!("private_key_jwt")))]),
            one,
        ),
        (
            "list with a shared secret",
            supported(json!(["none", "client_secret_basic"])),
            list,
        ),
        (
            "list with client_secret_post",
            supported(json!(["client_secret_post"])),
            list,
        ),
        (
            "list with client_secret_jwt",
            supported(json!(["private_key_jwt", "client_secret_jwt"])),
            list,
        ),
        (
            "list with nothing usable",
            supported(json!(["tls_client_auth"])),
            list,
        ),
        ("empty list", supported(json!([])), list),
        ("list not an array", supported(json!("none")), list),
        (
            "list entry not a string",
            supported(json!(["none", 1])),
            list,
        ),
        (
            "client_secret",
            cli_with(&[("client_secret", Some(json!("s3cr3t")))]),
            Expect::Field("client_secret"),
        ),
        (
            "client_secret null",
            cli_with(&[("client_secret", Some(Value::Null))]),
            Expect::Field("client_secret"),
        ),
        (
            "client_secret_expires_at",
            cli_with(&[("client_secret_expires_at", Some(json!(0)))]),
            Expect::Field("client_secret_expires_at"),
        ),
    ];
    check_refused(&id(CLI_ID), cases);

    for m in SHARED_SECRET_METHODS {
        let e = validate(&id(CLI_ID), &method(json!(m))).unwrap_err();
        assert!(
            e.to_string()
                .contains("shared secrets are not allowed for CIMD clients"),
            "{e}"
        );
    }
    let e = validate(&id(CLI_ID), &method(json!("tls_client_auth"))).unwrap_err();
    assert!(e.to_string().contains("not supported"), "{e}");
}

#[test]
fn refuses_bad_keys() {
    let jwks = |v: Value| chat_with(&[("jwks_uri", None), ("jwks", Some(v))]);
    let field = Expect::Field("jwks");
    let mut cases = vec![
        (
            "jwks and jwks_uri both",
            chat_with(&[("jwks", Some(rsa_jwks()))]),
            field,
        ),
        ("not an object", jwks(json!([])), field),
        ("no keys", jwks(json!({})), field),
        ("keys not an array", jwks(json!({"keys": {}})), field),
        ("keys empty", jwks(json!({"keys": []})), field),
        ("key not an object", jwks(json!({"keys": ["RSA"]})), field),
        (
            "key without kty",
            jwks(json!({"keys": [{"n": "0vx7", "e": "AQAB"}]})),
            field,
        ),
        (
            "kty not a string",
            jwks(json!({"keys": [{"kty": 1}]})),
            field,
        ),
        (
            "symmetric key",
            jwks(json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]})),
            field,
        ),
        (
            "symmetric key without k",
            jwks(json!({"keys": [{"kty": "oct"}]})),
            field,
        ),
        (
            "private member on the second key",
            jwks(
                json!({"keys": [rsa_jwks()["keys"][0], {"kty": "EC", "crv": "P-256", "x": "a", "y": "b", "d": "c"}]}),
            ),
            field,
        ),
        (
            "jwks_uri over http",
            chat_with(&[("jwks_uri", Some(json!("http://app.example.com/jwks.json")))]),
            Expect::Field("jwks_uri"),
        ),
        (
            "jwks_uri not a string",
            chat_with(&[("jwks_uri", Some(json!({})))]),
            Expect::Field("jwks_uri"),
        ),
    ];
    for member in PRIVATE_JWK_MEMBERS {
        let mut key = rsa_jwks()["keys"][0].clone();
        key[member] = json!("cHJpdmF0ZQ");
        cases.push(("private member", jwks(json!({"keys": [key]})), field));
    }
    check_refused(&id(CHAT_ID), cases);
}

#[test]
fn refuses_bad_uris_algs_and_types() {
    let set = |name: &str, v: Value| cli_with(&[(name, Some(v))]);
    let alg = |v: Value| chat_with(&[("token_endpoint_auth_signing_alg", Some(v))]);
    let cases = vec![
        (
            "logo_uri over http",
            set("logo_uri", json!("http://cdn.example.net/logo.png")),
            Expect::Field("logo_uri"),
        ),
        (
            "logo_uri javascript",
            set("logo_uri", json!("javascript:alert(1)")),
            Expect::Field("logo_uri"),
        ),
        (
            "logo_uri data",
            set("logo_uri", json!("data:image/png;base64,AAAA")),
            Expect::Field("logo_uri"),
        ),
        (
            "logo_uri relative",
            set("logo_uri", json!("/logo.png")),
            Expect::Field("logo_uri"),
        ),
        (
            "logo_uri userinfo",
            set(
                "logo_uri",
                json!("https://app.example.com@evil.example/l.png"),
            ),
            Expect::Field("logo_uri"),
        ),
        (
            "client_uri fragment",
            set("client_uri", json!("https://cli.example.com/#top")),
            Expect::Field("client_uri"),
        ),
        (
            "client_uri empty fragment",
            set("client_uri", json!("https://cli.example.com/#")),
            Expect::Field("client_uri"),
        ),
        (
            "policy_uri relative",
            set("policy_uri", json!("privacy.html")),
            Expect::Field("policy_uri"),
        ),
        (
            "tos_uri not a string",
            set("tos_uri", json!(1)),
            Expect::Field("tos_uri"),
        ),
        (
            "tos_uri ftp",
            set("tos_uri", json!("ftp://cli.example.com/tos")),
            Expect::Field("tos_uri"),
        ),
        (
            "grant_types a string",
            set("grant_types", json!("authorization_code")),
            Expect::Field("grant_types"),
        ),
        (
            "grant_types entry",
            set("grant_types", json!([true])),
            Expect::Field("grant_types"),
        ),
        (
            "response_types entry",
            set("response_types", json!([["code"]])),
            Expect::Field("response_types"),
        ),
        (
            "client_name a number",
            set("client_name", json!(7)),
            Expect::Field("client_name"),
        ),
        (
            "scope an array",
            set("scope", json!(["read"])),
            Expect::Field("scope"),
        ),
        (
            "application_type null",
            set("application_type", Value::Null),
            Expect::Field("application_type"),
        ),
        (
            "software_statement an object",
            set("software_statement", json!({})),
            Expect::Field("software_statement"),
        ),
    ];
    check_refused(&id(CLI_ID), cases);

    let field = Expect::Field("token_endpoint_auth_signing_alg");
    let cases = vec![
        ("alg none", alg(json!("none")), field),
        ("alg HS256", alg(json!("HS256")), field),
        ("alg HS512", alg(json!("HS512")), field),
        ("alg lower case", alg(json!("rs256")), field),
        ("alg unknown", alg(json!("RSA-OAEP")), field),
        ("alg not a string", alg(json!(256)), field),
    ];
    check_refused(&id(CHAT_ID), cases);
}

#[test]
fn messages_never_show_secrets_and_stay_short() {
    let secret = "SUPER-SECRET-VALUE";
    let cases = [
        (CLI_ID, cli_with(&[("client_secret", Some(json!(secret)))])),
        (
            CHAT_ID,
            chat_with(&[
                ("jwks_uri", None),
                (
                    "jwks",
                    Some(json!({"keys": [{"kty": "RSA", "n": "a", "e": "AQAB", "d": secret}]})),
                ),
            ]),
        ),
        (
            CHAT_ID,
            chat_with(&[
                ("jwks_uri", None),
                ("jwks", Some(json!({"keys": [{"kty": "oct", "k": secret}]}))),
            ]),
        ),
    ];
    for (client_id, body) in cases {
        let message = validate(&id(client_id), &body).unwrap_err().to_string();
        assert!(!message.contains(secret), "{message}");
    }

    let long = "x".repeat(10_000);
    let bodies = [
        cli_with(&[("redirect_uris", Some(json!([format!("javascript:{long}")])))]),
        cli_with(&[("client_id", Some(json!(format!("https://{long}"))))]),
        cli_with(&[("token_endpoint_auth_method", Some(json!(long)))]),
        cli_with(&[("logo_uri", Some(json!(format!("http://a.example/{long}"))))]),
        format!("{{\"{long}\": 1, \"{long}\": 2}}").into_bytes(),
    ];
    for body in bodies {
        let message = validate(&id(CLI_ID), &body).unwrap_err().to_string();
        assert!(
            message.chars().count() < 400,
            "{} chars: {message}",
            message.chars().count()
        );
    }
}

#[test]
fn loopback_port_rule() {
    let cases = [
        (
            "http://127.0.0.1/callback",
            "http://127.0.0.1:52163/callback",
            true,
        ),
        (
            "http://localhost/callback",
            "http://localhost:8080/callback",
            true,
        ),
        ("http://[::1]/cb", "http://[::1]:9000/cb", true),
        ("http://127.0.0.1:8080/cb", "http://127.0.0.1:9000/cb", true),
        ("http://127.0.0.1:8080/cb", "http://127.0.0.1/cb", true),
        ("http://127.0.0.1/cb?a=1", "http://127.0.0.1:5/cb?a=1", true),
        ("http://127.0.0.1/cb", "http://127.0.0.1/cb", true),
        (
            "https://app.example.com/cb",
            "https://app.example.com/cb",
            true,
        ),
        ("com.example.app:/cb", "com.example.app:/cb", true),
        (
            "http://127.0.0.1/callback",
            "http://127.0.0.1:52163/other",
            false,
        ),
        (
            "http://127.0.0.1/callback",
            "https://127.0.0.1:52163/callback",
            false,
        ),
        (
            "http://127.0.0.1/callback",
            "http://127.0.0.2:52163/callback",
            false,
        ),
        (
            "http://127.0.0.1/callback",
            "http://localhost:52163/callback",
            false,
        ),
        (
            "http://127.0.0.1/cb?a=1",
            "http://127.0.0.1:5/cb?a=2",
            false,
        ),
        ("http://127.0.0.1/cb", "http://127.0.0.1:5/cb?a=1", false),
        ("http://127.0.0.1/cb", "http://127.0.0.1:5/cb#f", false),
        ("http://127.0.0.1/cb", "http://u@127.0.0.1:5/cb", false),
        ("http://127.0.0.1/cb", "http://127.1:5/cb", false),
        ("http://127.0.0.1/cb", "http://127.0.0.1:5/CB", false),
        ("http://127.0.0.1/cb", "http://127.0.0.1:5/cb/", false),
        ("http://127.0.0.1/cb", "http://127.0.0.1:05/cb", false),
        ("http://127.0.0.1/cb", "http://127.0.0.1:5/cb ", false),
        ("http://127.0.0.1", "http://127.0.0.1:5/", false),
        (
            "https://app.example.com/cb",
            "https://app.example.com:444/cb",
            false,
        ),
        (
            "https://app.example.com/cb",
            "https://APP.example.com/cb",
            false,
        ),
        ("https://localhost/cb", "https://localhost:8443/cb", false),
        (
            "http://app.example.com/cb",
            "http://app.example.com:8080/cb",
            false,
        ),
        ("http://127.0.0.2/cb", "http://127.0.0.2:5/cb", false),
        ("http://127.0.0.1/cb", "not a url", false),
    ];
    for (registered, requested, expected) in cases {
        assert_eq!(
            redirect_uri_matches(registered, requested),
            expected,
            "{registered} vs {requested}"
        );
    }
}

#[test]
fn loopback_redirect_detection() {
    for uri in [
        "http://127.0.0.1/cb",
        "http://[::1]:8080/cb",
        "http://localhost/cb",
        "https://localhost/cb",
    ] {
        assert!(is_loopback_redirect(uri), "{uri}");
    }
    for uri in [
        "https://app.example.com/cb",
        "http://127.0.0.2/cb",
        "http://localhost.example/cb",
        "com.example.app:/cb",
        "localhost",
        "",
    ] {
        assert!(!is_loopback_redirect(uri), "{uri}");
    }
    let md = validate(
        &id(CLI_ID),
        &cli_with(&[(
            "redirect_uris",
            Some(json!(["http://127.0.0.1/cb", "com.example.app:/cb"])),
        )]),
    )
    .unwrap();
    assert!(!md.only_loopback_redirects());
}

// ---------------------------------------------------------------------------
// Overlaying a software statement's claims
// ---------------------------------------------------------------------------

#[test]
fn an_empty_overlay_gives_back_the_same_document() {
    let minimal =
        format!(r#"{{"client_id": "{CLI_ID}", "redirect_uris": ["http://127.0.0.1/cb"]}}"#);
    for (client_id, doc) in [
        (CLI_ID, CLI_DOC),
        (CHAT_ID, CHAT_DOC),
        (CLI_ID, minimal.as_str()),
    ] {
        let base = validate(&id(client_id), doc.as_bytes()).unwrap();
        let again = overlay(&id(client_id), &base, &Map::new()).unwrap();
        assert_eq!(
            serde_json::to_value(&again).unwrap(),
            serde_json::to_value(&base).unwrap(),
            "{doc}"
        );
    }
}

#[test]
fn overlaid_claims_take_precedence_and_are_validated_like_the_document() {
    let base = validate(&id(CHAT_ID), CHAT_DOC.as_bytes()).unwrap();
    let claims = parse_object(
        r#"{"client_name": "Vouched Chat", "logo_uri": "https://registry.example/logo.png", "software_id": "chat-1"}"#,
    );
    let merged = overlay(&id(CHAT_ID), &base, &claims).unwrap();
    assert_eq!(merged.client_name.as_deref(), Some("Vouched Chat"));
    assert_eq!(
        merged.logo_uri.as_deref(),
        Some("https://registry.example/logo.png")
    );
    assert_eq!(merged.extra.to_map()["software_id"], "chat-1");
    assert_eq!(merged.redirect_uris, base.redirect_uris);

    for (claims, field) in [
        (
            r#"{"logo_uri": "http://registry.example/logo.png"}"#,
            "logo_uri",
        ),
        (
            r#"{"token_endpoint_auth_method": "client_secret_basic"}"#,
            "token_endpoint_auth_method",
        ),
        (r#"{"jwks": {"keys": []}}"#, "jwks"),
        (r#"{"client_secret": "s3cret"}"#, "client_secret"),
    ] {
        let error = overlay(&id(CHAT_ID), &base, &parse_object(claims)).unwrap_err();
        assert!(
            matches!(&error, MetadataError::Invalid { field: f, .. } if *f == field),
            "{claims}: {error}"
        );
        assert!(!error.to_string().contains("s3cret"));
    }
}

#[test]
fn auth_method_names_are_pinned() {
    // IANA-registered names, compared with documents.
    for (value, text) in [
        (AuthMethod::None, "none"),
        (AuthMethod::PrivateKeyJwt, "private_key_jwt"),
    ] {
        assert_eq!(value.as_str(), text);
    }
}
