//! Scenario 6's request bodies: `/token` with a sealed code and a
//! `private_key_jwt` assertion (RS256), each with a fresh `jti`.
//!
//! Codes are sealed here with the proxy's own key and the library's
//! `Sealer`, exactly as `/callback` seals them (same payload, purpose and
//! lifetime rule); assertions are signed with the clients' RSA key, whose
//! public half the document host serves at each client's `jwks_uri`.
//! Before the load, one request per client is sent, so the documents and
//! key sets are cached when the measurement starts.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Instant;

use serde_json::{Value, json};

use crate::fixtures::{
    CLIENT_KID, proxy_sealer, redirect_uri, sealed_code, sign_rs256, token_client_document,
    write_spread,
};
use crate::net::{Conn, enc};

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

fn body(
    sealer: &cimd_proxy::Sealer,
    key: &ring::signature::RsaKeyPair,
    (client_id, id, origin): (&str, &str, &str),
    audience: &str,
    n: u64,
) -> String {
    let redirect = redirect_uri(id);
    let document = token_client_document(client_id, id, origin);
    let code = sealed_code(sealer, (client_id, &document), &redirect, n);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let assertion = sign_rs256(
        key,
        &json!({ "alg": "RS256", "kid": CLIENT_KID, "typ": "JWT" }),
        &json!({
            "iss": client_id,
            "sub": client_id,
            "aud": audience,
            "jti": format!("bench-{}-{n:012}", std::process::id()),
            "iat": now,
            "exp": now + 290,
        }),
    );
    format!(
        "grant_type=authorization_code&code={}&code_verifier={VERIFIER}&redirect_uri={}\
         &client_id={}&client_assertion_type={}&client_assertion={}",
        enc(&code),
        enc(&redirect),
        enc(client_id),
        enc(cimd_proxy::JWT_BEARER),
        assertion,
    )
}

/// Seals and signs `bodies` token requests over `clients` clients, spread
/// over `files` files (`PREFIX.0`, `PREFIX.1`, ...), after warming each
/// client with one request of its own.
pub async fn prepare(
    dir: &Path,
    proxy: SocketAddr,
    docs: SocketAddr,
    clients: usize,
    bodies: usize,
    files: usize,
    prefix: &Path,
) -> Value {
    let sealer = proxy_sealer(dir);
    let key = ring::signature::RsaKeyPair::from_pkcs8(
        &std::fs::read(dir.join("client-key.der")).expect("read client-key.der"),
    )
    .expect("client RSA key");
    let audience = format!("http://{proxy}/token");
    let origin = format!("https://{docs}");
    let client = |i: usize| {
        let id = format!("tok{i}");
        (format!("{origin}/t/{id}.json"), id)
    };

    // Warm: one token request per client caches its document and key set.
    let mut conn = Conn::new(proxy);
    let mut warm_failures = 0;
    let mut example_response = Value::Null;
    for i in 0..clients {
        let (client_id, id) = client(i);
        let request = body(
            &sealer,
            &key,
            (&client_id, &id, &origin),
            &audience,
            1_000_000_000 + i as u64,
        );
        match conn.post_form("/token", request).await {
            Ok(answer) if answer.status == hyper::StatusCode::OK => {
                if example_response.is_null() {
                    let parsed: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
                    example_response = json!({
                        "fields": parsed.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()),
                        "bytes": answer.body.len(),
                    });
                }
            }
            Ok(answer) => {
                warm_failures += 1;
                eprintln!(
                    "token warm-up: {} {}",
                    answer.status,
                    String::from_utf8_lossy(&answer.body)
                );
            }
            Err(error) => {
                warm_failures += 1;
                eprintln!("token warm-up: {error}");
            }
        }
    }

    // The load's bodies, signed on every core.
    let started = Instant::now();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let lines: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (sealer, key, audience, origin) = (&sealer, &key, &audience, &origin);
                let client = &client;
                scope.spawn(move || {
                    (t..bodies)
                        .step_by(threads)
                        .map(|n| {
                            let (client_id, id) = client(n % clients);
                            body(sealer, key, (&client_id, &id, origin), audience, n as u64)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("signing thread"))
            .collect()
    });
    let generation_s = started.elapsed().as_secs_f64();
    write_spread(&lines, files, prefix);
    json!({
        "clients": clients,
        "bodies": bodies,
        "body_bytes": lines.first().map_or(0, String::len),
        "generation_s": generation_s,
        "warm_failures": warm_failures,
        "example_response": example_response,
    })
}
