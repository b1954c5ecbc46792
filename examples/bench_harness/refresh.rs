//! Scenario 7's request bodies: refresh tokens, one per family.
//!
//! A refresh token is usable once (the proxy rotates it, and a second use
//! revokes its family), and with the Redis store a family exists only if
//! the proxy made it. So each body's token comes from a real code exchange
//! at the proxy under test: codes are sealed here with the proxy's key, as
//! `/callback` seals them, for public clients (`/c/ID.json`,
//! `token_endpoint_auth_method = "none"`), and exchanged over a few
//! connections before the load. The load then refreshes every family once,
//! from its first generation to its second: the store's `family_status` and
//! `advance_family` on every request.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Instant;

use serde_json::{Value, json};

use crate::fixtures::{client_document, proxy_sealer, redirect_uri, sealed_code, write_spread};
use crate::net::{Conn, enc};

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/// Exchanges at once, while preparing.
const CONNECTIONS: usize = 32;

/// Makes `bodies` refresh requests over `clients` public clients, each
/// with a refresh token from its own code exchange at `proxy`, spread over
/// `files` files (`PREFIX.0`, `PREFIX.1`, ...).
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
    let origin = format!("https://{docs}");
    let exchange = |n: usize| {
        let id = format!("r{}", n % clients);
        let client_id = format!("{origin}/c/{id}.json");
        let redirect = redirect_uri(&id);
        let document = client_document(&client_id, &id, &origin);
        let code = sealed_code(&sealer, (&client_id, &document), &redirect, n as u64);
        let body = format!(
            "grant_type=authorization_code&code={}&code_verifier={VERIFIER}&redirect_uri={}\
             &client_id={}",
            enc(&code),
            enc(&redirect),
            enc(&client_id),
        );
        (client_id, body)
    };

    let started = Instant::now();
    let lanes = (0..CONNECTIONS).map(|lane| {
        let exchange = &exchange;
        async move {
            let mut conn = Conn::new(proxy);
            let mut lines = Vec::new();
            let mut failures = 0usize;
            for n in (lane..bodies).step_by(CONNECTIONS) {
                let (client_id, body) = exchange(n);
                let token = match conn.post_form("/token", body).await {
                    Ok(answer) if answer.status == hyper::StatusCode::OK => {
                        serde_json::from_slice::<Value>(&answer.body)
                            .ok()
                            .and_then(|v| v["refresh_token"].as_str().map(str::to_owned))
                    }
                    Ok(answer) => {
                        if failures == 0 {
                            eprintln!(
                                "refresh prep: {} {}",
                                answer.status,
                                String::from_utf8_lossy(&answer.body)
                            );
                        }
                        None
                    }
                    Err(error) => {
                        if failures == 0 {
                            eprintln!("refresh prep: {error}");
                        }
                        None
                    }
                };
                match token {
                    Some(token) => lines.push(format!(
                        "grant_type=refresh_token&client_id={}&refresh_token={}",
                        enc(&client_id),
                        enc(&token)
                    )),
                    None => failures += 1,
                }
            }
            (lines, failures)
        }
    });
    let done = futures_util::future::join_all(lanes).await;
    let exchange_s = started.elapsed().as_secs_f64();
    let failures: usize = done.iter().map(|(_, failures)| failures).sum();
    let lines: Vec<String> = done.into_iter().flat_map(|(lines, _)| lines).collect();
    write_spread(&lines, files, prefix);
    json!({
        "clients": clients,
        "bodies": lines.len(),
        "body_bytes": lines.first().map_or(0, String::len),
        "exchange_s": exchange_s,
        "failures": failures,
    })
}
