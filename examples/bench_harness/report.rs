//! BENCHMARKS.md from a results directory: one summary table of targets,
//! then the details of each scenario, the machine, and the notes file.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

fn read(results: &Path, name: &str) -> Value {
    std::fs::read_to_string(results.join(name))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or(Value::Null)
}

fn read_lines(results: &Path, name: &str) -> Vec<Value> {
    std::fs::read_to_string(results.join(name))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

fn num(value: &Value, path: &[&str]) -> f64 {
    let mut v = value;
    for key in path {
        v = &v[*key];
    }
    v.as_f64().unwrap_or(f64::NAN)
}

fn met(ok: bool) -> &'static str {
    if ok { "**met**" } else { "**not met**" }
}

/// Requests per second of a wrk result.
fn rps(wrk: &Value) -> f64 {
    num(wrk, &["requests"]) / (num(wrk, &["duration_us"]) / 1e6)
}

fn wrk_errors(wrk: &Value) -> f64 {
    ["connect", "read", "write", "status", "timeout"]
        .iter()
        .map(|k| num(wrk, &["errors", k]))
        .sum()
}

fn ms_us(wrk: &Value, p: &str) -> f64 {
    num(wrk, &["latency_us", p]) / 1000.0
}

fn mib(kib: f64) -> f64 {
    kib / 1024.0
}

pub fn write(results: &Path, notes: Option<&Path>, out: &Path) {
    let machine = read(results, "machine.json");
    let base = read(results, "s1_baseline.json");
    let proxy = read(results, "s1_proxy.json");
    let s1 = read(results, "s1_params.json");
    let base_latency = read(results, "s1_baseline_latency.json");
    let proxy_latency = read(results, "s1_proxy_latency.json");
    let cold = read(results, "s2_cold.json");
    let stampede = read(results, "s3_stampede.json");
    let flood = read(results, "s4_flood.json");
    let memory = read_lines(results, "s5_memory.jsonl");
    let mem_params = read(results, "s5_params.json");
    let token = read(results, "s6_token.json");
    let cpu_us = |name: &str, wrk: &Value| {
        num(
            &read(results, &format!("{name}.cpu.json")),
            &["cpu_seconds"],
        ) * 1e6
            / num(wrk, &["requests"])
    };
    let token_prep = read(results, "s6_prep.json");
    let sample = |label: &str| {
        memory
            .iter()
            .find(|s| s["label"] == label)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let first = num(&mem_params, &["first"]);
    let second = num(&mem_params, &["second"]);
    let ceiling = num(&mem_params, &["ceiling"]);
    let idle = sample("idle");
    let at_first = sample(&format!("cached_{first}"));
    let at_second = sample(&format!("cached_{second}"));
    let ceiling_idle = sample("ceiling_idle");
    let ceiling_full = sample("ceiling_full");

    let mut md = String::new();
    let smoke = machine["mode"] == "smoke";
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Written by `{}` on {} (commit {}). {}Everything ran on loopback on one machine: \
         the proxy, the load generator (wrk, {} threads, {} connections) and the stand-ins. \
         Rerun with `{}`; see `bench/README.md` for what each scenario does.\n",
        machine["rerun"].as_str().unwrap_or("bench/run"),
        machine["date"].as_str().unwrap_or("?"),
        machine["commit"].as_str().unwrap_or("?"),
        if smoke {
            "**Smoke run: too short to be a measurement.** "
        } else {
            ""
        },
        machine["threads"],
        machine["connections"],
        machine["rerun"].as_str().unwrap_or("bench/run"),
    );
    let _ = writeln!(md, "## Machine\n");
    let _ = writeln!(md, "| | |\n|---|---|");
    for (label, key) in [
        ("CPU", "cpu"),
        ("cores (`nproc`)", "nproc"),
        ("memory", "memory"),
        ("kernel", "kernel"),
        ("Rust", "rustc"),
        ("load generator", "wrk"),
        ("load average before (1, 5, 15 min)", "load_before"),
        (
            "load average at the end (the run's own load included)",
            "load_after",
        ),
    ] {
        let value = match &machine[key] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let _ = writeln!(md, "| {label} | {value} |");
    }

    // The targets.
    let base_rps = rps(&base);
    let proxy_rps = rps(&proxy);
    let ratio = proxy_rps / base_rps;
    let added = num(&cold, &["added_p50_ms"]);
    let fetches = num(&stampede, &["document_fetches"]);
    let redirected = num(&stampede, &["redirected"]);
    let requests = num(&stampede, &["requests"]);
    let max_fetches = num(&flood, &["max_concurrent_fetches"]);
    let max_logo_fetches = num(&flood, &["max_concurrent_logo_fetches"]);
    let slow_max = num(&flood, &["slow_host", "max_open_connections"]);
    let gauge_max = num(&flood, &["proxy", "max_fetches_in_flight_sampled"]);
    let refused = num(&flood, &["attack", "refused_fetch_overloaded"]);
    let refused_p99 = num(&flood, &["attack", "refused_latency", "p99_ms"]);
    let users_p99 = num(&flood, &["users", "under_attack", "p99_ms"]);
    let users_errors = num(&flood, &["users", "under_attack", "errors"]);
    let idle_kib = num(&idle, &["rss_kib"]);
    let first_kib = num(&at_first, &["rss_kib"]);
    let second_kib = num(&at_second, &["rss_kib"]);
    let per_client = (second_kib - idle_kib) / second;
    let per_client_marginal = (second_kib - first_kib) / (second - first);
    let ceiling_entries = num(&ceiling_full, &["cache_entries"]);
    let token_rps = rps(&token);
    let token_errors = wrk_errors(&token);
    let refresh = Refresh::read(results);

    let _ = writeln!(md, "\n## Results against the targets\n");
    let _ = writeln!(md, "| # | what | target | measured | |");
    let _ = writeln!(md, "|---|---|---|---|---|");
    let _ = writeln!(
        md,
        "| 1 | cached `/authorize` throughput | ≥ 55 % of the fixed-302 baseline | {proxy_rps:.0} req/s = {:.0} % of {base_rps:.0} req/s; server CPU {:.1} µs per request against {:.1} µs | {} |",
        ratio * 100.0,
        cpu_us("s1_proxy", &proxy),
        cpu_us("s1_baseline", &base),
        met(ratio >= 0.55 && wrk_errors(&proxy) == 0.0)
    );
    let latency_p99 = ms_us(&proxy_latency, "p99");
    let _ = writeln!(
        md,
        "| 1 | cached `/authorize` latency, {} connections | p99 ≤ the baseline's p99 + 0.5 ms | p50 {:.2} ms, p99 {latency_p99:.2} ms (baseline p99 {:.2} ms) | {} |",
        s1["latency_connections"],
        ms_us(&proxy_latency, "p50"),
        ms_us(&base_latency, "p99"),
        met(latency_p99 <= ms_us(&base_latency, "p99") + 0.5 && wrk_errors(&proxy_latency) == 0.0)
    );
    let _ = writeln!(
        md,
        "| 2 | cold fetch: time added to a plain TLS GET | < 1 ms at p50 | {added:.3} ms (first request p50 {:.3} ms, plain TLS GET p50 {:.3} ms) | {} |",
        num(&cold, &["proxy_first_request", "p50_ms"]),
        num(&cold, &["plain_tls_get", "p50_ms"]),
        met(added < 1.0 && num(&cold, &["errors"]) == 0.0)
    );
    let _ = writeln!(
        md,
        "| 3 | stampede: {requests:.0} concurrent first requests for one client | exactly 1 fetch at the document host | {fetches:.0} fetch; {redirected:.0}/{requests:.0} redirected | {} |",
        met(fetches == 1.0 && redirected == requests)
    );
    let _ = writeln!(
        md,
        "| 4 | flood: outbound fetches in flight | documents ≤ `max_concurrent_fetches` ({max_fetches:.0}); at a host, with the logo permits (`max_concurrent_logo_fetches`, {max_logo_fetches:.0}) | at most {slow_max:.0} connections open at the slow host; proxy gauge (documents) max {gauge_max:.0} | {} |",
        met(slow_max <= max_fetches + max_logo_fetches && gauge_max <= max_fetches)
    );
    let _ = writeln!(
        md,
        "| 4 | flood: the excess refused at once | `fetch_overloaded`, no queue (p99 < 5 ms) | {refused:.0} refused with 503 `fetch_overloaded`, p99 {refused_p99:.2} ms | {} |",
        met(refused > 0.0 && refused_p99 < 5.0)
    );
    let _ = writeln!(
        md,
        "| 4 | flood: real users' latency under attack | p99 < 5 ms | p99 {users_p99:.2} ms (without attack {:.2} ms), {users_errors:.0} errors | {} |",
        num(&flood, &["users", "calm", "p99_ms"]),
        met(users_p99 < 5.0 && users_errors == 0.0)
    );
    let _ = writeln!(
        md,
        "| 5 | memory: idle | < 15 MiB RSS | {:.1} MiB | {} |",
        mib(idle_kib),
        met(mib(idle_kib) < 15.0)
    );
    let _ = writeln!(
        md,
        "| 5 | memory: per cached client | < 1.5 KiB | {:.2} KiB ((RSS at {second:.0} − idle) / {second:.0}); {:.2} KiB from {first:.0} to {second:.0} | {} |",
        per_client,
        per_client_marginal,
        met(per_client < 1.5)
    );
    let _ = writeln!(
        md,
        "| 5 | memory: ceiling | entries ≤ `max_entries` | {ceiling_entries:.0} entries held after {second:.0} distinct clients with `max_entries = {ceiling:.0}`; RSS {:.1} MiB | {} |",
        mib(num(&ceiling_full, &["rss_kib"])),
        met(ceiling_entries <= ceiling)
    );
    let _ = writeln!(
        md,
        "| 6 | `/token`, sealed code + `private_key_jwt` (RS256), keys cached | ≥ 8000 req/s | {token_rps:.0} req/s, {:.0} µs server CPU per request, p50 {:.2} ms, p99 {:.2} ms, {token_errors:.0} errors | {} |",
        cpu_us("s6_token", &token),
        ms_us(&token, "p50"),
        ms_us(&token, "p99"),
        met(token_rps >= 8000.0 && token_errors == 0.0)
    );
    refresh.targets(&mut md);

    // Details.
    let _ = writeln!(md, "\n## Details\n");
    let _ = writeln!(
        md,
        "### 1. Cached `/authorize`\n\n{} distinct clients, all cached before the run, requested round-robin \
         (`bench/authorize.lua`); {} s per server after a warm-up. The baseline is a hyper HTTP/1.1 server on \
         the same tokio runtime answering every request with one fixed 302 (Location of {} bytes, as long as \
         the proxy's).\n",
        read(results, "s1_warm.json")["count"],
        machine["load_seconds"],
        s1["location_bytes"],
    );
    let _ = writeln!(
        md,
        "| server | req/s | p50 | p90 | p99 | p99.9 | max | errors | server CPU per request |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
    let connections = &machine["connections"];
    let latency_connections = &s1["latency_connections"];
    for (name, file, w) in [
        (
            format!("fixed-302 baseline, {connections} connections"),
            "s1_baseline",
            &base,
        ),
        (
            format!("cimd-proxy, {connections} connections"),
            "s1_proxy",
            &proxy,
        ),
        (
            format!("fixed-302 baseline, {latency_connections} connections"),
            "s1_baseline_latency",
            &base_latency,
        ),
        (
            format!("cimd-proxy, {latency_connections} connections"),
            "s1_proxy_latency",
            &proxy_latency,
        ),
    ] {
        let _ = writeln!(
            md,
            "| {name} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.0} | {:.1} µs |",
            rps(w),
            ms_us(w, "p50"),
            ms_us(w, "p90"),
            ms_us(w, "p99"),
            ms_us(w, "p999"),
            ms_us(w, "max"),
            wrk_errors(w),
            cpu_us(file, w),
        );
    }
    let _ = writeln!(
        md,
        "\nServer CPU per request: the server process's user and system time over the run \
         (`/proc/PID/stat`) divided by the requests it served; wrk's own work, and the kernel's \
         on wrk's side, are not in it."
    );
    let _ = writeln!(
        md,
        "\n### 2. Cold fetch\n\n{} first requests for distinct uncached clients, sequential, each preceded by a plain \
         TLS GET of another document of the same kind from the same host (new TCP connection, TLS with the \
         same rustls configuration, `Connection: close`), then the same client again (cached). Document: {} bytes. \
         Latency from sending to the last byte; the proxy's includes the loopback hop from the client to the proxy.\n",
        cold["n"], cold["document_bytes"],
    );
    let _ = writeln!(md, "| request | p50 | p90 | p99 | max |");
    let _ = writeln!(md, "|---|---|---|---|---|");
    for (name, key) in [
        ("plain TLS GET of a document", "plain_tls_get"),
        (
            "proxy, first request (fetch + validate + policy + 302)",
            "proxy_first_request",
        ),
        ("proxy, same client again (cached)", "proxy_cached_request"),
    ] {
        let s = &cold[key];
        let _ = writeln!(
            md,
            "| {name} | {:.3} ms | {:.3} ms | {:.3} ms | {:.3} ms |",
            num(s, &["p50_ms"]),
            num(s, &["p90_ms"]),
            num(s, &["p99_ms"]),
            num(s, &["max_ms"])
        );
    }
    let _ = writeln!(
        md,
        "\n### 3. Stampede\n\n{requests:.0} connections opened first, then released together on one barrier, each \
         sending the first `/authorize` for the same uncached client; the document host delays that document by \
         200 ms and counts its fetches by path. Cache lookups (proxy metrics): {:.0} miss, {:.0} coalesced, {:.0} hit. \
         Latency of the {redirected:.0} redirects: p50 {:.1} ms, max {:.1} ms.\n",
        num(&stampede, &["lookups", "miss"]),
        num(&stampede, &["lookups", "coalesced"]),
        num(&stampede, &["lookups", "hit"]),
        num(&stampede, &["latency", "p50_ms"]),
        num(&stampede, &["latency", "max_ms"]),
    );
    let attack = &flood["attack"];
    let _ = writeln!(
        md,
        "### 4. Flood\n\nReal users: {} keep-alive connections at {:.0} requests/s in total on a fixed schedule, \
         to cached clients, for {:.0} s without an attack and {:.0} s under attack (latency from sending to the last \
         byte, measured by the harness). The attacker: {} connections sending {:.0} unique client_ids per second \
         (`https://127.0.0.3:PORT/f/UNIQUE.json`), whose host accepts TLS and then answers after 2 s. \
         `max_concurrent_fetches = {max_fetches:.0}`.\n",
        flood["users"]["connections"],
        num(&flood, &["users", "rate"]),
        num(&flood, &["seconds"]),
        num(&flood, &["seconds"]),
        attack["connections"],
        num(&flood, &["attack", "rate"]),
    );
    let _ = writeln!(md, "| | n | p50 | p99 | max |");
    let _ = writeln!(md, "|---|---|---|---|---|");
    for (name, s) in [
        ("users, no attack", &flood["users"]["calm"]),
        ("users, under attack", &flood["users"]["under_attack"]),
        (
            "attacker, refused (503 fetch_overloaded)",
            &attack["refused_latency"],
        ),
        (
            "attacker, fetched (slow host, 2 s)",
            &attack["fetched_latency"],
        ),
    ] {
        let _ = writeln!(
            md,
            "| {name} | {} | {:.2} ms | {:.2} ms | {:.2} ms |",
            s["n"],
            num(s, &["p50_ms"]),
            num(s, &["p99_ms"]),
            num(s, &["max_ms"])
        );
    }
    let _ = writeln!(
        md,
        "\nAttack requests sent: {}; other outcomes: {}. Connections the slow host saw: {}, at most {slow_max:.0} at once. \
         The proxy's document fetches during the attack: {:.0} completed, {:.0} refused at once \
         (`cimd_proxy_fetches_total`). Proxy RSS before/after the attack: {:.1} / {:.1} MiB.\n",
        attack["sent"],
        attack["other"],
        flood["slow_host"]["connections"],
        num(&flood, &["proxy", "document_fetches_ok"]),
        num(&flood, &["proxy", "document_fetches_overloaded"]),
        mib(num(&flood, &["proxy", "rss_kib_before"])),
        mib(num(&flood, &["proxy", "rss_kib_after"])),
    );
    let _ = writeln!(
        md,
        "### 5. Memory\n\nFresh processes; documents of about {} bytes (the realistic one in \
         `examples/bench_harness/fixtures.rs`), each cached by one `/authorize`. VmRSS and VmHWM from \
         `/proc/PID/status`; entries from `cimd_proxy_cache_entries`.\n",
        cold["document_bytes"],
    );
    let _ = writeln!(
        md,
        "| process | state | RSS | peak (HWM) | cached entries |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|");
    for (process, label, s) in [
        (
            format!("`max_entries = {:.0}`", second * 2.0),
            "idle",
            &idle,
        ),
        (
            format!("`max_entries = {:.0}`", second * 2.0),
            &*format!("{first:.0} clients cached"),
            &at_first,
        ),
        (
            format!("`max_entries = {:.0}`", second * 2.0),
            &*format!("{second:.0} clients cached"),
            &at_second,
        ),
        (
            format!("`max_entries = {ceiling:.0}`"),
            "idle",
            &ceiling_idle,
        ),
        (
            format!("`max_entries = {ceiling:.0}`"),
            &*format!("after {second:.0} distinct clients"),
            &ceiling_full,
        ),
    ] {
        let _ = writeln!(
            md,
            "| {process} | {label} | {:.1} MiB | {:.1} MiB | {:.0} |",
            mib(num(s, &["rss_kib"])),
            mib(num(s, &["hwm_kib"])),
            num(s, &["cache_entries"])
        );
    }
    let fill = read(results, "s5_fill_second.json");
    let _ = writeln!(
        md,
        "\nFilling ran at {:.0} cold fetches/s (32 connections; {} `fetch_overloaded` answers retried).\n",
        num(&fill, &["per_second"]),
        fill["overload_retries"],
    );
    let _ = writeln!(
        md,
        "### 6. Token path\n\n`POST /token` with `grant_type=authorization_code`, a code sealed with the proxy's key \
         (as `/callback` seals it) and a `private_key_jwt` assertion (RS256, 2048-bit key, a fresh `jti` each: {} \
         bodies signed beforehand, `bench/token.lua`) for {} clients whose documents and `jwks_uri` key sets were \
         cached by one request each before the run. Each request: document from the cache, policy, RS256 \
         verification, `jti` replay store, code opened, a token call to the upstream stand-in (client_secret_basic, \
         pooled connection), the provider's RS256 id_token verified, a refresh token sealed, an ES256 id_token \
         signed. Response fields: {}.\n",
        token_prep["bodies"], token_prep["clients"], token_prep["example_response"]["fields"],
    );
    let _ = writeln!(
        md,
        "| req/s | p50 | p90 | p99 | max | errors | proxy CPU per request |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|");
    let _ = writeln!(
        md,
        "| {token_rps:.0} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {token_errors:.0} | {:.0} µs |",
        ms_us(&token, "p50"),
        ms_us(&token, "p90"),
        ms_us(&token, "p99"),
        ms_us(&token, "max"),
        cpu_us("s6_token", &token),
    );
    refresh.details(&mut md, &|name: &str, wrk: &Value| cpu_us(name, wrk));
    if let Some(notes) = notes.and_then(|path| std::fs::read_to_string(path).ok()) {
        let _ = writeln!(md, "\n{}", notes.trim_end());
    }
    std::fs::write(out, md).unwrap_or_else(|e| panic!("write {}: {e}", out.display()));
}

/// Scenario 7: `/token` refresh with the memory store and with Redis, and
/// Redis memory per live refresh family.
struct Refresh {
    memory: Value,
    redis: Value,
    prep_memory: Value,
    prep_redis: Value,
    store_memory: Value,
    redis_commands: String,
}

impl Refresh {
    fn read(results: &Path) -> Refresh {
        Refresh {
            memory: read(results, "s7_memory.json"),
            redis: read(results, "s7_redis.json"),
            prep_memory: read(results, "s7_prep_memory.json"),
            prep_redis: read(results, "s7_prep_redis.json"),
            store_memory: read(results, "s7_store_memory.json"),
            redis_commands: std::fs::read_to_string(results.join("s7_redis_commands.txt"))
                .unwrap_or_default(),
        }
    }

    /// What Redis costs: the share of the memory store's throughput lost.
    fn cost(&self) -> f64 {
        1.0 - rps(&self.redis) / rps(&self.memory)
    }

    fn targets(&self, md: &mut String) {
        if self.memory.is_null() || self.redis.is_null() {
            return;
        }
        let errors = wrk_errors(&self.memory) + wrk_errors(&self.redis);
        let _ = writeln!(
            md,
            "| 7 | `/token` refresh (rotation): Redis on loopback against the memory store | < 10 % of throughput | \
             {:.0} req/s with Redis, {:.0} with memory ({:+.1} %); p99 {:.2} ms against {:.2} ms; {errors:.0} errors | {} |",
            rps(&self.redis),
            rps(&self.memory),
            -self.cost() * 100.0,
            ms_us(&self.redis, "p99"),
            ms_us(&self.memory, "p99"),
            met(self.cost() < 0.10 && errors == 0.0),
        );
        let _ = writeln!(
            md,
            "| 7 | Redis memory per live refresh family | (report) | {:.0} bytes ({:.0} families, `INFO memory`) | reported |",
            num(&self.store_memory, &["bytes_per_family"]),
            num(&self.store_memory, &["families"]),
        );
    }

    fn details(&self, md: &mut String, cpu_us: &dyn Fn(&str, &Value) -> f64) {
        if self.memory.is_null() || self.redis.is_null() {
            return;
        }
        let _ = writeln!(
            md,
            "\n### 7. Refresh with rotation: memory store and Redis\n\n`POST /token` with \
             `grant_type=refresh_token` for public clients (16 documents, cached), each request presenting the \
             first generation of a family of its own ({} and {} families, each made by a real code exchange at \
             the proxy before the load, `bench/token.lua` sending each token once). Each request: document from \
             the cache, policy, the refresh token opened, the family's status read, a refresh at the upstream \
             stand-in, its RS256 id_token verified, the family advanced, the next generation sealed, an ES256 \
             id_token signed. The same load against the proxy with the default memory store, then with \
             `[store] backend = \"redis\"` (a private `redis-server` on loopback with a password, no \
             persistence).\n",
            self.prep_memory["bodies"], self.prep_redis["bodies"],
        );
        let _ = writeln!(
            md,
            "| store | req/s | p50 | p90 | p99 | max | errors | proxy CPU per request |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
        for (label, name, wrk) in [
            ("memory", "s7_memory", &self.memory),
            ("Redis", "s7_redis", &self.redis),
        ] {
            let _ = writeln!(
                md,
                "| {label} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.0} | {:.0} µs |",
                rps(wrk),
                ms_us(wrk, "p50"),
                ms_us(wrk, "p90"),
                ms_us(wrk, "p99"),
                ms_us(wrk, "max"),
                wrk_errors(wrk),
                cpu_us(name, wrk),
            );
        }
        let _ = writeln!(
            md,
            "\nThroughput with Redis against the memory store: {:+.1} %. Redis's own count of the commands it ran during the \
             Redis load (`INFO commandstats`, which counts the commands a script runs too: the rotation script's `GET` \
             and `SET`): {}. Per refresh: one round trip, the rotation script (`EVALSHA`), before the provider \
             is asked.\n",
            -self.cost() * 100.0,
            self.redis_commands
                .lines()
                .filter_map(|line| {
                    let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
                    let calls = stats.split(',').find_map(|kv| kv.strip_prefix("calls="))?;
                    Some(format!("`{}` {calls}", name.to_uppercase()))
                })
                .collect::<Vec<_>>()
                .join(", "),
        );
        let _ = writeln!(
            md,
            "Redis memory per live refresh family: {:.0} bytes (`used_memory` from `INFO memory` before and after \
             {:.0} families made through the store, `examples/store_memory`, Redis {}); a single-use value \
             (`jti`, consent, state): {:.0} bytes.",
            num(&self.store_memory, &["bytes_per_family"]),
            num(&self.store_memory, &["families"]),
            self.store_memory["redis"].as_str().unwrap_or("?"),
            num(&self.store_memory, &["bytes_per_single_use"]),
        );
    }
}

/// The figures `bench/compare` looks at, from one partial run's results:
/// scenario 1 (cached `/authorize` against the fixed-302 ceiling) and
/// scenario 5 (memory per cached client). A scenario that did not run
/// gives NaN.
struct RunFigures {
    proxy_rps: f64,
    baseline_rps: f64,
    /// Taken per run, so that a run at a busier moment of a shared machine
    /// is held against its own ceiling.
    of_baseline: f64,
    cpu_us: f64,
    p99_ms: f64,
    idle_mib: f64,
    kib_per_client: f64,
}

impl RunFigures {
    fn read(results: &Path) -> RunFigures {
        let base = read(results, "s1_baseline.json");
        let proxy = read(results, "s1_proxy.json");
        let cpu = num(&read(results, "s1_proxy.cpu.json"), &["cpu_seconds"]);
        let memory = read_lines(results, "s5_memory.jsonl");
        let second = num(&read(results, "s5_params.json"), &["second"]);
        let rss = |label: &str| {
            memory
                .iter()
                .find(|s| s["label"] == label)
                .map_or(f64::NAN, |s| num(s, &["rss_kib"]))
        };
        let idle = rss("idle");
        RunFigures {
            proxy_rps: rps(&proxy),
            baseline_rps: rps(&base),
            of_baseline: rps(&proxy) / rps(&base),
            cpu_us: cpu * 1e6 / num(&proxy, &["requests"]),
            p99_ms: ms_us(&proxy, "p99"),
            idle_mib: mib(idle),
            kib_per_client: (rss(&format!("cached_{second}")) - idle) / second,
        }
    }

    /// Each figure the median of the runs'.
    fn median_of(runs: &[&RunFigures]) -> RunFigures {
        let of = |pick: fn(&RunFigures) -> f64| median(runs.iter().map(|r| pick(r)).collect());
        RunFigures {
            proxy_rps: of(|r| r.proxy_rps),
            baseline_rps: of(|r| r.baseline_rps),
            of_baseline: of(|r| r.of_baseline),
            cpu_us: of(|r| r.cpu_us),
            p99_ms: of(|r| r.p99_ms),
            idle_mib: of(|r| r.idle_mib),
            kib_per_client: of(|r| r.kib_per_client),
        }
    }

    fn row(&self, label: &str) -> String {
        format!(
            "| {label} | {:.0} | {:.0} | {:.1} % | {:.1} | {:.2} | {:.1} | {:.2} |\n",
            self.proxy_rps,
            self.baseline_rps,
            100.0 * self.of_baseline,
            self.cpu_us,
            self.p99_ms,
            self.idle_mib,
            self.kib_per_client,
        )
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.retain(|v| !v.is_nan());
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// A Markdown table of each run in the order it ran, then each build's
/// medians, builds in the order they first ran.
pub fn compare(runs: &[(String, std::path::PathBuf)]) -> String {
    const HEADER: &str = "| build | /authorize req/s | baseline req/s | of baseline \
                          | server CPU µs/req | p99 ms | idle RSS MiB | KiB per cached client |\n\
                          |---|---|---|---|---|---|---|---|\n";
    let figures: Vec<(&str, RunFigures)> = runs
        .iter()
        .map(|(label, dir)| (label.as_str(), RunFigures::read(dir)))
        .collect();
    let mut md = format!("Each run, in the order they ran:\n\n{HEADER}");
    for (i, (label, run)) in figures.iter().enumerate() {
        md.push_str(&run.row(&format!("{label} (run {})", i + 1)));
    }
    md.push_str(&format!("\nMedians:\n\n{HEADER}"));
    let mut labels: Vec<&str> = Vec::new();
    for (label, _) in &figures {
        if !labels.contains(label) {
            labels.push(label);
        }
    }
    for label in labels {
        let runs: Vec<&RunFigures> = figures
            .iter()
            .filter(|(l, _)| *l == label)
            .map(|(_, run)| run)
            .collect();
        md.push_str(&RunFigures::median_of(&runs).row(label));
    }
    md
}
