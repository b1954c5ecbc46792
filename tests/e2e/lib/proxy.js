// Spawning cimd-proxy: a configuration file per instance, stdout/stderr to
// test-artifacts/, readiness through the admin /healthz, and a sure kill.
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { proxyBin } from './paths.js';
import { freePort } from './net.js';

/** A fresh seal key: 32 random bytes, unpadded base64url (43 characters). */
export function newSealKey() {
  return randomBytes(32).toString('base64url');
}

/** Writes a fresh P-256 private key (PKCS#8 PEM) to `file`. */
export function writeSigningKey(file) {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(file, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  return file;
}

const q = (s) => JSON.stringify(String(s));
const list = (xs) => `[${xs.map((x) => (typeof x === 'number' ? String(x) : q(x))).join(', ')}]`;

/** `key = value` lines for an object of integer (or string) settings, e.g. { drain_s: 2 }. */
const tomlKeys = (settings = {}) => Object.entries(settings)
  .map(([key, value]) => `${key} = ${typeof value === 'number' ? String(value) : q(value)}`);

/**
 * The TOML configuration of one instance. `server`, `upstream`, `cache`: more keys for those
 * sections, e.g. { server: { drain_s: 0 }, cache: { stale_if_error_s: 4 } }.
 */
export function proxyConfig(o) {
  const lines = [
    '[server]',
    `public_url = ${q(o.publicUrl)}`,
    `listen = ${q(`127.0.0.1:${o.port}`)}`,
    `admin_listen = ${q(`127.0.0.1:${o.adminPort}`)}`,
    ...tomlKeys(o.server),
    '',
    '[upstream]',
    `issuer = ${q(o.providerIssuer)}`,
    'timeout_ms = 3000',
    ...tomlKeys(o.upstream),
  ];
  if (o.resourceParameter) lines.push(`resource_parameter = ${q(o.resourceParameter)}`);
  // { resource: "scope …" }: upstream.resource_scopes.
  if (o.resourceScopes) lines.push(`resource_scopes = { ${Object.entries(o.resourceScopes).map(([k, v]) => `${q(k)} = ${q(v)}`).join(', ')} }`);
  lines.push(
    '',
    '[upstream.clients.main]',
    'client_id = "proxy-app"',
    'auth_method = "client_secret_basic"',
    'client_secret_env = "UPSTREAM_SECRET"',
  );
  // More upstream clients: { name: { client_id, auth_method, client_secret_env, redirect_mode } }.
  for (const [name, c] of Object.entries(o.upstreamClients ?? {})) {
    lines.push('', `[upstream.clients.${name}]`, `client_id = ${q(c.client_id)}`);
    for (const key of ['auth_method', 'client_secret_env', 'redirect_mode']) {
      if (c[key]) lines.push(`${key} = ${q(c[key])}`);
    }
  }
  lines.push(
    '',
    '[fetch]',
    `allowed_ports = ${list([o.docHostPort])}`,
    `allow_cidrs = ${list(['127.0.0.2/32'])}`,
    `extra_root_certs = ${q(o.caFile)}`,
    'timeout_ms = 2000',
    '',
    '[seal]',
    'keys_env = "CIMD_PROXY_SEAL_KEYS"',
  );
  if (o.codeTtlS) lines.push(`code_ttl_s = ${o.codeTtlS}`);
  if (o.stateTtlS) lines.push(`state_ttl_s = ${o.stateTtlS}`);
  lines.push(
    '',
    '[signing]',
    `keys_file = ${q(o.signingKeysFile)}`,
    '',
    '[policy]',
    `default_action = ${q(o.defaultAction ?? 'allow')}`,
    'default_upstream_client = "main"',
    'loopback_only_redirects = "allow"',
  );
  if (o.interstitial) lines.push(`interstitial = ${q(o.interstitial)}`);
  // { until_users, until_days }: policy.new_client_warning.
  if (o.newClientWarning) {
    const w = o.newClientWarning;
    lines.push(`new_client_warning = { until_users = ${w.until_users}, until_days = ${w.until_days} }`);
  }
  // Rules: { client_id?, require_statement_from?, action, scopes?, upstream_client? }.
  for (const rule of o.rules ?? []) {
    lines.push('', '[[policy.rules]]');
    if (rule.client_id) lines.push(`client_id = ${q(rule.client_id)}`);
    if (rule.require_statement_from) lines.push(`require_statement_from = ${list(rule.require_statement_from)}`);
    lines.push(`action = ${q(rule.action)}`);
    if (rule.scopes) lines.push(`scopes = ${list(rule.scopes)}`);
    if (rule.upstream_client) lines.push(`upstream_client = ${q(rule.upstream_client)}`);
  }
  // Software statement issuers: { name, jwks_uri | jwks_file }.
  for (const issuer of o.trustIssuers ?? []) {
    lines.push('', '[[trust.issuers]]', `name = ${q(issuer.name)}`);
    for (const key of ['jwks_uri', 'jwks_file']) {
      if (issuer[key]) lines.push(`${key} = ${q(issuer[key])}`);
    }
  }
  if (o.resource) {
    lines.push('', '[resource]', `resource = ${q(o.resource.resource)}`,
      `scopes_supported = ${list(o.resource.scopes_supported ?? [])}`);
  }
  if (o.cache) lines.push('', '[cache]', ...tomlKeys(o.cache));
  if (o.extraToml) lines.push('', o.extraToml);
  return `${lines.join('\n')}\n`;
}

// Every proxy this process started dies with it, however the test file ends.
const running = new Set();
const killAll = () => { for (const child of running) child.kill('SIGKILL'); };
process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => { killAll(); process.exit(128 + ({ SIGHUP: 1, SIGINT: 2, SIGTERM: 15 })[signal]); });
}

/**
 * Starts one proxy instance and waits until its admin /healthz answers 200 (10 s at most).
 * `o`: see proxyConfig (plus `env`: more environment variables, e.g. another upstream secret; `unreadStderr`: leave
 * the stderr pipe unread); `name` names the config and log files in `o.dir` / `o.artifacts`.
 */
export async function startProxy(o) {
  if (!existsSync(proxyBin)) {
    throw new Error(`proxy binary not found at ${proxyBin} (set CIMD_PROXY_BIN or run cargo build)`);
  }
  const port = o.port ?? await freePort();
  const adminPort = o.adminPort ?? await freePort();
  const publicUrl = o.publicUrl ?? `http://127.0.0.1:${port}`;
  const full = { ...o, port, adminPort, publicUrl };
  const configFile = path.join(o.dir, `${o.name}.toml`);
  writeFileSync(configFile, proxyConfig(full));
  writeFileSync(path.join(o.artifacts, `${o.name}.toml`), proxyConfig(full));

  const stdoutFile = path.join(o.artifacts, `${o.name}.stdout.log`);
  const stderrFile = path.join(o.artifacts, `${o.name}.stderr.log`);
  const child = spawn(proxyBin, ['serve', '--config', configFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      CIMD_PROXY_LOG: process.env.CIMD_PROXY_LOG || 'info',
      NO_COLOR: '1',
      UPSTREAM_SECRET: o.upstreamSecret,
      CIMD_PROXY_SEAL_KEYS: o.sealKeys.join(','),
      ...o.env,
    },
  });
  running.add(child);
  const out = createWriteStream(stdoutFile);
  const err = createWriteStream(stderrFile);
  child.stdout.pipe(out);
  // `unreadStderr`: nobody reads the pipe until the test does (child.stderr), as with a stalled log reader.
  if (!o.unreadStderr) child.stderr.pipe(err);
  let exited = null;
  const exitedPromise = new Promise((resolve) => {
    child.on('exit', (code, signal) => { exited = { code, signal }; running.delete(child); resolve(exited); });
  });

  const admin = `http://127.0.0.1:${adminPort}`;
  const deadline = Date.now() + 10_000;
  let lastError;
  for (;;) {
    if (exited) {
      await sleep(50);
      const stderr = existsSync(stderrFile) ? readFileSync(stderrFile, 'utf8') : '';
      // freePort() closes the port it found before the proxy binds it: another process on the
      // machine may take it in between. Ports we chose are chosen again; ports a test chose are not.
      const retries = o.bindRetries ?? 0;
      if (stderr.includes('Address already in use') && o.port === undefined && o.adminPort === undefined && retries < 3) {
        return startProxy({ ...o, bindRetries: retries + 1 });
      }
      throw new Error(`proxy ${o.name} exited (${JSON.stringify(exited)}) before it was healthy:\n${stderr.slice(-3000)}`);
    }
    try {
      const res = await fetch(`${admin}/healthz`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200) break;
      lastError = `status ${res.status}`;
    } catch (e) {
      lastError = e.cause?.code || e.message;
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`proxy ${o.name} not healthy within 10 s (${lastError}); logs in ${o.artifacts}`);
    }
    await sleep(50);
  }

  let rewrites = 0;
  return {
    name: o.name,
    issuer: publicUrl,
    publicUrl,
    port,
    admin,
    base: `http://127.0.0.1:${port}`,
    configFile,
    stderrFile,
    child,
    url: (p) => `http://127.0.0.1:${port}${p}`,
    /** Resolves with { code, signal } when the process exits. */
    exited: exitedPromise,
    /** This instance's configuration text with `changes` (proxyConfig options) applied. */
    configText: (changes = {}) => proxyConfig({ ...full, ...changes }),
    /**
     * Replaces the configuration file with `text` atomically (write beside, then rename), so the
     * proxy's poller never reads half a file; a copy goes to the artifacts. No signal is sent.
     */
    writeConfig(text) {
      rewrites += 1;
      const next = `${configFile}.next`;
      writeFileSync(next, text);
      renameSync(next, configFile);
      writeFileSync(path.join(o.artifacts, `${o.name}.rewrite-${rewrites}.toml`), text);
    },
    async stop() {
      if (exited) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exitedPromise;
      clearTimeout(timer);
      await new Promise((resolve) => { out.end(resolve); });
      await new Promise((resolve) => { err.end(resolve); });
    },
  };
}
