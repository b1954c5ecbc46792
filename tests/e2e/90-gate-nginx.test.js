// Gate mode: a real NGINX in front of oidc-provider with its own CIMD support
// (`clientIdMetadataDocument`) turned on, asking cimd-proxy's gate before every
// request (auth_request), the token endpoint's body through the gate's body
// route (X-Accel-Redirect). The provider fetches documents itself; the gate
// decides who reaches it. NGINX starts once for the file.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import * as client from 'openid-client';
import { makeCertificates } from './lib/ca.js';
import { startDocumentHost } from './lib/dochost.js';
import { startProvider, TEST_USER } from './lib/provider.js';
import { startProxy, newSealKey, writeSigningKey } from './lib/proxy.js';
import { startNginx, gateServerBlock } from './lib/nginx.js';
import { freePort, listen, closeServer } from './lib/net.js';
import { artifactsDir, tempDir } from './lib/paths.js';
import { publicClientDocument, pkce, withQuery, postForm, random } from './lib/oauth.js';
import { rpConfig, signIn } from './lib/rp.js';
import { Browser } from './lib/browser.js';
import { auth } from '@modelcontextprotocol/sdk/client/auth.js';
import { scrape, metricValue } from './lib/metrics.js';

const NAME = '90-gate-nginx';
const HOSTILE_IP = '127.0.0.3';
const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

const w = {};
const closers = [];

before(async () => {
  w.tmp = tempDir(`cimd-e2e-${NAME}-`);
  w.artifacts = artifactsDir(NAME);
  const certs = makeCertificates(w.tmp.dir, '127.0.0.2');
  w.docs = await startDocumentHost(certs);
  closers.push(() => w.docs.close());

  // The "metadata" listener beside the document host: a loopback address the
  // gate's fetch configuration refuses (only 127.0.0.2 is allowed), on the
  // document host's port so that only the address decides. It counts every
  // connection, TLS or not.
  w.hostileConnections = 0;
  w.hostile = net.createServer((socket) => { w.hostileConnections += 1; socket.destroy(); });
  await listen(w.hostile, w.docs.port, HOSTILE_IP);
  closers.push(() => closeServer(w.hostile));

  w.nginxPort = await freePort();
  w.gatePort = await freePort();
  w.origin = `http://127.0.0.1:${w.nginxPort}`;

  w.provider = await startProvider({
    clients: [],
    publicOrigin: w.origin,
    configure(configuration) {
      configuration.features.clientIdMetadataDocument = { enabled: true, ack: 'draft-02' };
      // oidc-provider's own fetcher, allowed to reach the test's document host on 127.0.0.2
      // (over the test CA); every other URL goes through its default fetch, whose special-use
      // address check runs only once it is connected.
      configuration.fetch = (url, options) => (new URL(url).hostname === '127.0.0.2'
        ? fetchWithCa(url, options, certs.ca)
        : fetch(url, options));
    },
  });
  closers.push(() => w.provider.stop());

  w.nginx = await startNginx({
    dir: path.join(w.tmp.dir, 'nginx'),
    port: w.nginxPort,
    serverBlock: gateServerBlock({
      listen: `127.0.0.1:${w.nginxPort}`,
      provider: `127.0.0.1:${w.provider.port}`,
      gate: `127.0.0.1:${w.gatePort}`,
    }),
  });
  closers.push(() => w.nginx.stop());

  w.redirectUri = `${w.docs.origin}/gate-app/callback`;
  const doc = (name) => w.docs.addClient(name, (id) => publicClientDocument(id, [`${w.docs.origin}/${name}/callback`], { client_name: name }));
  w.good = doc('gate-good');
  w.denied = doc('gate-denied');
  w.warned = doc('gate-warned');
  w.revoked = doc('gate-revoked');
  w.hostileId = `https://${HOSTILE_IP}:${w.docs.port}/clients/evil.json`;
  w.rules = [
    { client_id: w.denied, action: 'deny' },
    { client_id: w.warned, action: 'warn' },
  ];
  w.gate = await startProxy({
    name: 'gate',
    dir: w.tmp.dir,
    artifacts: w.artifacts,
    providerIssuer: w.origin,
    docHostPort: w.docs.port,
    caFile: certs.caFile,
    upstreamSecret: random(),
    sealKeys: [newSealKey()],
    signingKeysFile: writeSigningKey(path.join(w.tmp.dir, 'signing.pem')),
    rules: w.rules,
    extraToml: [
      '[gate]',
      'enabled = true',
      `listen = "127.0.0.1:${w.gatePort}"`,
      'authorization_paths = ["/auth"]',
      'token_paths = ["/token"]',
      'accel_redirect = "@cimd_provider"',
    ].join('\n'),
  });
  closers.push(() => w.gate.stop());
});

after(async () => {
  for (const close of closers.reverse()) {
    try { await close(); } catch { /* keep closing the rest */ }
  }
  w.tmp?.remove();
});

/** The WHATWG Response for a GET over node:https with the test CA (the provider's `fetch` hook). */
function fetchWithCa(url, options, ca) {
  return new Promise((resolve, reject) => {
    const req = https.request(url, {
      method: options.method ?? 'GET',
      headers: Object.fromEntries(new Headers(options.headers)),
      ca,
      signal: options.signal,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const headers = new Headers();
        for (const [k, v] of Object.entries(res.headers)) headers.set(k, [].concat(v).join(', '));
        resolve(new Response(Buffer.concat(chunks), { status: res.statusCode, headers }));
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const providerRequests = (p) => w.provider.requests.filter((r) => r.url.split('?')[0] === p);

/** An authorization request URL at NGINX for `clientId`. */
function authUrl(clientId, redirectUri = `${w.docs.origin}/x/callback`) {
  return withQuery(`${w.origin}/auth`, {
    response_type: 'code',
    client_id: clientId,
    redirect_uri: redirectUri,
    scope: 'openid',
    state: random(),
    code_challenge: pkce().challenge,
    code_challenge_method: 'S256',
  });
}

async function get(url) {
  const res = await fetch(url, { redirect: 'manual' });
  return { status: res.status, location: res.headers.get('location'), type: res.headers.get('content-type'), body: await res.text() };
}

test('a good client signs in with openid-client through NGINX and the gate, and refreshes', async () => {
  const redirectUri = `${w.docs.origin}/gate-good/callback`;
  const authsBefore = providerRequests('/auth').length;
  const config = await rpConfig({ issuer: w.origin }, w.good, client.None());
  assert.equal(config.serverMetadata().issuer, w.origin, 'the provider itself is the authorization server');
  const run = await signIn(config, { redirectUri });
  // The provider saw the client's own URL: nothing was translated.
  const first = new URL(run.hops[0].url);
  assert.equal(first.searchParams.get('client_id'), w.good);
  assert.ok(providerRequests('/auth').length > authsBefore, 'the authorization request reached the provider');
  const claims = run.tokens.claims();
  assert.equal(claims.iss, w.origin);
  assert.equal(claims.aud, w.good);
  assert.equal(claims.sub, TEST_USER.sub);
  assert.ok(run.tokens.refresh_token, 'offline_access gives a refresh token');
  const refreshed = await client.refreshTokenGrant(config, run.tokens.refresh_token);
  assert.ok(refreshed.access_token);

  const metrics = await scrape(w.gate);
  assert.ok(metricValue(metrics, 'cimd_proxy_authorize_requests_total', { mode: 'gate', outcome: 'ok' }) >= 1, 'gate authorize checks counted');
  assert.ok(metricValue(metrics, 'cimd_proxy_token_requests_total', { mode: 'gate', grant_type: 'refresh_token', outcome: 'ok' }) >= 1);
});

/** An MCP SDK OAuthClientProvider kept in memory, with the CIMD document's URL as its client_id. */
class SdkProvider {
  constructor({ clientMetadataUrl, redirectUrl }) {
    this.clientMetadataUrl = clientMetadataUrl;
    this.redirectUrl = redirectUrl;
    this.authorizationUrls = [];
    this.info = [];
    this.saved = [];
  }

  get clientMetadata() {
    return {
      client_name: 'MCP SDK through the gate',
      redirect_uris: [this.redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      scope: 'openid offline_access',
    };
  }

  clientInformation() { return this.info.at(-1); }

  saveClientInformation(info) { this.info.push(info); }

  tokens() { return this.saved.at(-1); }

  saveTokens(tokens) { this.saved.push(tokens); }

  redirectToAuthorization(url) { this.authorizationUrls.push(new URL(url)); }

  saveCodeVerifier(verifier) { this.verifier = verifier; }

  codeVerifier() { return this.verifier; }
}

test('the MCP TypeScript SDK signs in through NGINX and the gate with its document URL', async () => {
  const redirectUrl = `${w.docs.origin}/gate-mcp/callback`;
  const clientId = w.docs.addClient('gate-mcp', (id) => publicClientDocument(id, [redirectUrl], { client_name: 'gate-mcp' }));
  const provider = new SdkProvider({ clientMetadataUrl: clientId, redirectUrl });
  // No MCP server here: the SDK falls back to the server's origin, the provider, as its authorization server.
  const serverUrl = `${w.origin}/mcp`;
  assert.equal(await auth(provider, { serverUrl }), 'REDIRECT');
  assert.deepEqual(provider.info.map((c) => c.client_id), [clientId], 'the SDK used the document URL as its client_id');
  const authorizationUrl = provider.authorizationUrls[0];
  assert.equal(`${authorizationUrl.origin}${authorizationUrl.pathname}`, `${w.origin}/auth`);

  const target = new URL(redirectUrl);
  const { stoppedAt, hops } = await new Browser().follow(authorizationUrl.href, {
    stop: (u) => u.origin === target.origin && u.pathname === target.pathname,
  });
  assert.ok(stoppedAt?.searchParams.get('code'), JSON.stringify(hops, null, 1));
  assert.equal(await auth(provider, { serverUrl, authorizationCode: stoppedAt.searchParams.get('code') }), 'AUTHORIZED');
  assert.ok(provider.tokens().access_token);
  assert.ok(provider.tokens().refresh_token);
});

test('a client_id at a refused address gets the error page and the provider never fetches it', async () => {
  const before = w.hostileConnections;
  const answer = await get(authUrl(w.hostileId));
  assert.equal(answer.status, 403, answer.body.slice(0, 300));
  assert.match(answer.type, /text\/html/);
  assert.match(answer.body, /address this service does not contact/, 'the same page relay mode shows');
  assert.match(answer.body, /blocked_address/);
  await sleep(300);
  assert.equal(w.hostileConnections, before, 'no connection reached the hostile listener');
  assert.equal(providerRequests('/auth').filter((r) => r.url.includes(encodeURIComponent(w.hostileId))).length, 0,
    'the request never reached the provider');

  // The control: the same request straight to the provider (no NGINX, no gate) makes its
  // fetcher connect to the hostile listener (it checks the peer only once connected).
  const direct = await get(authUrl(w.hostileId).replace(w.origin, w.provider.origin));
  assert.notEqual(direct.status, 302);
  const deadline = Date.now() + 3000;
  while (w.hostileConnections === before && Date.now() < deadline) await sleep(50);
  assert.ok(w.hostileConnections > before, 'without the gate, the provider connects to the refused address');
});

test('a denied client gets the policy page at /auth and cannot use /token', async () => {
  const page = await get(authUrl(w.denied, `${w.docs.origin}/gate-denied/callback`));
  assert.equal(page.status, 403);
  assert.match(page.body, /does not allow this application/);
  assert.match(page.body, /policy_denied/);
  // A client naming a harmless request in the gate's own headers is not believed.
  const smuggled = await fetch(authUrl(w.denied, `${w.docs.origin}/gate-denied/callback`), {
    redirect: 'manual',
    headers: { 'x-original-uri': '/', 'x-original-method': 'GET', 'x-forwarded-uri': '/' },
  });
  assert.equal(smuggled.status, 403);
  await smuggled.arrayBuffer();

  const tokensBefore = providerRequests('/token').length;
  const res = await postForm(`${w.origin}/token`, {
    grant_type: 'authorization_code', client_id: w.denied, code: random(), code_verifier: random(32),
    redirect_uri: `${w.docs.origin}/gate-denied/callback`,
  });
  assert.equal(res.status, 401, res.text);
  assert.equal(res.json?.error, 'invalid_client');
  assert.equal(res.headers.get('cache-control'), 'no-store');
  assert.equal(providerRequests('/token').length, tokensBefore, 'the provider never saw the request');

  // Named by a client assertion alone (RFC 7523: client_id is optional), it is vetted all the same.
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const assertion = `${b64({ alg: 'ES256' })}.${b64({ iss: w.denied, sub: w.denied, aud: `${w.origin}/token`, jti: random(), exp: Math.floor(Date.now() / 1000) + 60 })}.c2ln`;
  const asserted = await postForm(`${w.origin}/token`, {
    grant_type: 'refresh_token', refresh_token: random(),
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion,
  });
  assert.equal(asserted.status, 401, asserted.text);
  assert.equal(asserted.json?.error, 'invalid_client');
  assert.equal(providerRequests('/token').length, tokensBefore);
});

test('a client the policy denies after its sign-in can no longer refresh', async () => {
  const redirectUri = `${w.docs.origin}/gate-revoked/callback`;
  const config = await rpConfig({ issuer: w.origin }, w.revoked, client.None());
  const run = await signIn(config, { redirectUri });
  assert.ok(run.tokens.refresh_token);

  w.gate.writeConfig(w.gate.configText({ rules: [...w.rules, { client_id: w.revoked, action: 'deny' }] }));
  w.gate.child.kill('SIGHUP');
  const deadline = Date.now() + 5000;
  for (;;) {
    const { status } = await get(authUrl(w.revoked, redirectUri));
    if (status === 403) break;
    assert.ok(Date.now() < deadline, 'the reload took effect');
    await sleep(100);
  }
  const tokensBefore = providerRequests('/token').length;
  await assert.rejects(client.refreshTokenGrant(config, run.tokens.refresh_token), (err) => {
    assert.equal(err.error ?? err.cause?.error, 'invalid_client', String(err));
    return true;
  });
  assert.equal(providerRequests('/token').length, tokensBefore);
});

test('a warned client sees the consent page, continues once, and signs in', async () => {
  const redirectUri = `${w.docs.origin}/gate-warned/callback`;
  const config = await rpConfig({ issuer: w.origin }, w.warned, client.None());
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'openid offline_access',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
  });
  const authsBefore = providerRequests('/auth').length;
  const browser = new Browser();
  const page = await browser.follow(url.href);
  assert.equal(page.final?.status, 200, JSON.stringify(page.hops));
  assert.match(page.final.body, /<form method="post" action="[^"]*\/cimd-gate\/consent"/);
  assert.match(page.final.body, /gate-warned|127\.0\.0\.2/);
  assert.equal(providerRequests('/auth').length, authsBefore, 'the provider has not seen the request yet');
  const token = page.final.body.match(/name="consent" value="([^"]+)"/)[1];

  // Continue: back to the very same authorization URL, with its admission cookie.
  const answer = await browser.request(`${w.origin}/cimd-gate/consent`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ consent: token, decision: 'continue' }).toString(),
  });
  assert.equal(answer.hop.status, 303);
  assert.equal(answer.hop.location, url.href);
  // The admission is bound to that exact request: another state is not let through with it.
  const other = new URL(url);
  other.searchParams.set('state', client.randomState());
  const elsewhere = await browser.follow(other.href);
  assert.equal(elsewhere.final?.status, 200);
  assert.match(elsewhere.final.body, /name="consent"/, 'another request gets its own consent page');
  assert.equal(providerRequests('/auth').length, authsBefore);

  const target = new URL(redirectUri);
  const answered = await browser.follow(url.href, {
    stop: (u) => u.origin === target.origin && u.pathname === target.pathname,
  });
  assert.ok(answered.stoppedAt, JSON.stringify(answered.hops, null, 1));
  const tokens = await client.authorizationCodeGrant(config, answered.stoppedAt, {
    pkceCodeVerifier: verifier, expectedState: state, idTokenExpected: true,
  });
  assert.equal(tokens.claims().aud, w.warned);

  // The admission was used up: the same URL (the cookie still in the jar) shows the page again.
  const again = await browser.follow(url.href);
  assert.equal(again.final?.status, 200);
  assert.match(again.final.body, /name="consent"/);
  // And the consent token itself is single-use.
  const replay = await browser.request(`${w.origin}/cimd-gate/consent`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ consent: token, decision: 'continue' }).toString(),
  });
  assert.equal(replay.hop.status, 400);
});

test('pre-registered clients and other paths pass untouched; a token request without its body is refused', async () => {
  // A non-URL client_id: the provider's business (it answers with its own error for an unknown one).
  const legacy = await get(authUrl('legacy-app'));
  assert.notEqual(legacy.status, 403);
  assert.ok(providerRequests('/auth').some((r) => r.url.includes('client_id=legacy-app')));
  const discovery = await get(`${w.origin}/.well-known/openid-configuration`);
  assert.equal(discovery.status, 200);
  const jwks = await get(`${w.origin}/jwks`);
  assert.equal(jwks.status, 200);

  // Another spelling of the token endpoint goes through auth_request, without its body: refused
  // rather than waved through on a client_id the gate could not read.
  const tokensBefore = providerRequests('/token').length + providerRequests('/token/').length;
  const sneaky = await postForm(`${w.origin}/token/`, { grant_type: 'authorization_code', client_id: w.denied, code: 'x' });
  assert.equal(sneaky.status, 403, sneaky.text);
  assert.equal(providerRequests('/token').length + providerRequests('/token/').length, tokensBefore);
});
