// Dynamic client registration (RFC 7591) without a database: clients that
// only know how to register (the MCP TypeScript SDK without a client
// metadata URL, openid-client's dynamicClientRegistration) get a client_id
// that is their sealed registration, sign in and refresh through the proxy,
// on any replica holding the seal keys. The refusals, the body limit, the
// initial access token and the rate limit (hit, then recovered) are checked
// over HTTP against the real binary.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as jose from 'jose';
import * as client from 'openid-client';
import { auth } from '@modelcontextprotocol/sdk/client/auth.js';
import { createWorld } from './lib/world.js';
import { Browser } from './lib/browser.js';
import { freePort } from './lib/net.js';
import { postForm } from './lib/oauth.js';
import { rpConfig, signIn } from './lib/rp.js';
import { assertTokenError } from './lib/assert-oauth.js';
import { TEST_USER } from './lib/provider.js';

const PRM_SCOPES = ['openid', 'offline_access', 'mcp:tools'];
const REGISTRATION = [
  '[policy.registration]',
  'action = "allow"',
  '',
  '[registration]',
  'enabled = true',
].join('\n');

let world;
let serverUrl;
let replica;
before(async () => {
  world = await createWorld('31-registration', {
    proxy: (w) => {
      serverUrl = `${w.proxyPublicUrl}/mcp`;
      return {
        resource: { resource: serverUrl, scopes_supported: PRM_SCOPES },
        // Every test here registers from 127.0.0.1; the limit itself is
        // tested on an instance of its own.
        extraToml: `${REGISTRATION}\nper_source_limit = 1000`,
      };
    },
  });
  // A second replica: same seal keys and public URL, its own process and port.
  replica = await world.startProxy({
    name: 'replica',
    publicUrl: world.proxy.publicUrl,
    resource: { resource: serverUrl, scopes_supported: PRM_SCOPES },
    extraToml: REGISTRATION,
  });
});
after(async () => { await world?.close(); });

/** POSTs JSON to `url`; returns { status, headers, json, text }. */
async function postJson(url, body, headers = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, headers: res.headers, json, text };
}

/** An OAuthClientProvider with no client metadata URL: the SDK can only register. */
class RegisteringProvider {
  constructor({ redirectUrl }) {
    this.redirectUrl = redirectUrl;
    this.authorizationUrls = [];
    this.savedClientInformation = [];
    this.savedTokens = [];
  }

  get clientMetadata() {
    return {
      client_name: 'MCP SDK registering e2e',
      redirect_uris: [this.redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }

  state() { this.stateValue = jose.base64url.encode(crypto.getRandomValues(new Uint8Array(16))); return this.stateValue; }

  clientInformation() { return this.savedClientInformation.at(-1); }

  saveClientInformation(info) { this.savedClientInformation.push(info); }

  tokens() { return this.savedTokens.at(-1); }

  saveTokens(tokens) { this.savedTokens.push(tokens); }

  redirectToAuthorization(url) { this.authorizationUrls.push(new URL(url)); }

  saveCodeVerifier(verifier) { this.verifier = verifier; }

  codeVerifier() { return this.verifier; }
}

test('MCP SDK auth() without a client metadata URL: registers, signs in, exchanges and refreshes at another replica', async () => {
  const redirectUrl = `http://127.0.0.1:${await freePort()}/mcp/oauth/callback`;
  const provider = new RegisteringProvider({ redirectUrl });
  const requests = [];
  // A load balancer in front of two replicas: discovery and registration
  // reach the first, every token request the second.
  const fetchFn = async (url, init = {}) => {
    let target = new URL(url);
    if (target.pathname === '/token') target = new URL(`${replica.base}/token`);
    requests.push({ url: String(url), sentTo: target.origin, method: init.method ?? 'GET' });
    return fetch(target, init);
  };

  assert.equal(await auth(provider, { serverUrl, fetchFn }), 'REDIRECT');
  const registration = requests.find((r) => r.method === 'POST');
  assert.equal(registration?.url, `${world.proxy.issuer}/register`, JSON.stringify(requests));
  const info = provider.clientInformation();
  assert.ok(info.client_id.startsWith('dcr.'), info.client_id);
  assert.equal(info.client_secret, undefined, 'a public client gets no secret');
  assert.ok(info.client_id.length < 512, `a compact client_id (${info.client_id.length} bytes)`);
  const authorizationUrl = provider.authorizationUrls[0];
  assert.equal(authorizationUrl.searchParams.get('client_id'), info.client_id);

  const target = new URL(redirectUrl);
  const { stoppedAt, hops } = await new Browser().follow(authorizationUrl.href, {
    stop: (u) => u.origin === target.origin && u.pathname === target.pathname,
  });
  assert.ok(stoppedAt, `never reached the redirect URL: ${JSON.stringify(hops, null, 1)}`);
  assert.equal(stoppedAt.searchParams.get('error'), null, stoppedAt.href);
  assert.equal(stoppedAt.searchParams.get('state'), provider.stateValue);
  const code = stoppedAt.searchParams.get('code');

  assert.equal(await auth(provider, { serverUrl, authorizationCode: code, fetchFn }), 'AUTHORIZED');
  const tokens = provider.tokens();
  assert.ok(tokens.refresh_token);
  const jwks = jose.createRemoteJWKSet(new URL(world.proxy.url('/jwks.json')));
  const { payload } = await jose.jwtVerify(tokens.id_token, jwks, { issuer: world.proxy.issuer, audience: info.client_id });
  assert.equal(payload.sub, TEST_USER.sub);

  assert.equal(await auth(provider, { serverUrl, fetchFn }), 'AUTHORIZED');
  assert.equal(provider.authorizationUrls.length, 1, 'refreshed, not signed in again');
  assert.notEqual(provider.tokens().access_token, tokens.access_token);
  const tokenPosts = requests.filter((r) => r.url.endsWith('/token'));
  assert.equal(tokenPosts.length, 2);
  assert.ok(tokenPosts.every((r) => r.sentTo === replica.base), 'both token requests went to the other replica');
  assert.equal(provider.savedClientInformation.length, 1, 'registered once');
});

test('openid-client dynamicClientRegistration with private_key_jwt: signs in and refreshes', async () => {
  const { publicKey, privateKey } = await jose.generateKeyPair('ES256');
  const kid = 'registered-key-1';
  const jwk = { ...(await jose.exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
  const redirectUri = `${world.docs.origin}/registered-app/callback`;
  const config = await client.dynamicClientRegistration(
    new URL(world.proxy.issuer),
    {
      client_name: 'Registered RP',
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: 'ES256',
      jwks: { keys: [jwk] },
    },
    client.PrivateKeyJwt({ key: privateKey, kid }),
    { execute: [client.allowInsecureRequests] },
  );
  const clientId = config.clientMetadata().client_id;
  assert.ok(clientId.startsWith('dcr.'), clientId);
  assert.equal(config.clientMetadata().token_endpoint_auth_method, 'private_key_jwt');
  client.enableNonRepudiationChecks(config);

  const run = await signIn(config, { redirectUri });
  const claims = run.tokens.claims();
  assert.equal(claims.iss, world.proxy.issuer);
  assert.equal(claims.aud, clientId);
  assert.equal(claims.nonce, run.nonce);
  const refreshed = await client.refreshTokenGrant(config, run.tokens.refresh_token);
  assert.ok(refreshed.access_token);

  // The same client without its assertion is refused: the sealed metadata says private_key_jwt.
  const unauthenticated = await postForm(world.proxy.url('/token'), {
    grant_type: 'refresh_token', client_id: clientId, refresh_token: refreshed.refresh_token ?? run.tokens.refresh_token,
  });
  assert.equal(unauthenticated.status, 401, unauthenticated.text);
  assert.equal(unauthenticated.json.error, 'invalid_client');

  // A relying party holding a client_id with one byte changed is refused as invalid_client.
  const at = Math.floor(clientId.length / 2);
  const altered = `${clientId.slice(0, at)}${clientId[at] === 'A' ? 'B' : 'A'}${clientId.slice(at + 1)}`;
  const alteredConfig = await rpConfig(world.proxy, altered, client.PrivateKeyJwt({ key: privateKey, kid }));
  await assert.rejects(client.refreshTokenGrant(alteredConfig, run.tokens.refresh_token), (error) => {
    assert.equal(error.error, 'invalid_client', String(error));
    assert.match(error.error_description, /not a registration issued by this server/);
    return true;
  });
});

test('every refusal: RFC 7591 error codes, strict JSON, the body limit, a changed byte', async (t) => {
  const register = (body) => postJson(world.proxy.url('/register'), body);
  const cases = [
    [{ redirect_uris: ['http://app.example/cb'] }, 'invalid_redirect_uri', /not loopback/],
    [{ redirect_uris: ['javascript:alert(1)'] }, 'invalid_redirect_uri', /javascript/],
    [{ redirect_uris: [] }, 'invalid_redirect_uri', /at least one/],
    [{}, 'invalid_redirect_uri', /required/],
    [{ redirect_uris: ['https://app.example/cb'], token_endpoint_auth_method: 'client_secret_basic' }, 'invalid_client_metadata', /shared secret/],
    [{ redirect_uris: ['https://app.example/cb'], token_endpoint_auth_method: 'private_key_jwt' }, 'invalid_client_metadata', /public keys/],
    [{ redirect_uris: ['https://app.example/cb'], jwks_uri: 'http://keys.example/jwks.json' }, 'invalid_client_metadata', /https/],
    [{ redirect_uris: ['https://app.example/cb'], grant_types: ['client_credentials'] }, 'invalid_client_metadata', /client_credentials/],
    [{ redirect_uris: ['https://app.example/cb'], response_types: ['token'] }, 'invalid_client_metadata', /response_types/],
    [{ redirect_uris: ['https://app.example/cb'], client_id: 'https://app.example/c' }, 'invalid_client_metadata', /assigned by the authorization server/],
    ['{"redirect_uris":["https://a.example/cb"],"redirect_uris":["https://b.example/cb"]}', 'invalid_client_metadata', /duplicate member/],
    ['{"redirect_uris":["https://a.example/cb"],}', 'invalid_client_metadata', /invalid JSON/],
  ];
  for (const [body, error, description] of cases) {
    const res = await register(body);
    assert.equal(res.status, 400, `${JSON.stringify(body)}: ${res.text}`);
    assert.equal(res.json.error, error, res.text);
    assert.match(res.json.error_description, description);
    assert.equal(res.headers.get('cache-control'), 'no-store');
  }
  t.diagnostic(`${cases.length} refusals`);

  const notJson = await fetch(world.proxy.url('/register'), {
    method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'redirect_uris=https://a.example/cb',
  });
  assert.equal(notJson.status, 400);
  assert.equal((await notJson.json()).error, 'invalid_client_metadata');

  const large = await register({ redirect_uris: ['https://app.example/cb'], client_name: 'x'.repeat(20 * 1024) });
  assert.equal(large.status, 413, large.text);
  assert.equal(large.json.error, 'invalid_client_metadata');
  const huge = await register({ redirect_uris: ['https://app.example/cb'], client_name: 'x'.repeat(80 * 1024) });
  assert.equal(huge.status, 413, 'over the route\'s own limit too');

  const ok = await register({ redirect_uris: ['https://app.example/cb'] });
  assert.equal(ok.status, 201, ok.text);
  const clientId = ok.json.client_id;
  const at = clientId.length - 8;
  const altered = `${clientId.slice(0, at)}${clientId[at] === 'A' ? 'B' : 'A'}${clientId.slice(at + 1)}`;
  assertTokenError(await postForm(world.proxy.url('/token'), {
    grant_type: 'authorization_code', client_id: altered, code: 'x', code_verifier: 'y'.repeat(43),
  }), { status: 401, error: 'invalid_client' }, t);
  const page = await fetch(world.proxy.url(`/authorize?${new URLSearchParams({
    client_id: altered, response_type: 'code', redirect_uri: 'https://app.example/cb',
  })}`), { redirect: 'manual' });
  assert.equal(page.status, 400, 'an error page, never a redirect');
  assert.match(await page.text(), /must register again/);
});

test('the initial access token, and the per-source rate limit hit and recovered', async (t) => {
  const token = 'registration-token-for-e2e';
  const guarded = await world.startProxy({
    name: 'guarded',
    publicUrl: world.proxy.publicUrl,
    env: { REGISTRATION_TOKEN: token },
    extraToml: [
      REGISTRATION,
      'per_source_limit = 3',
      'window_s = 2',
      'initial_access_token_env = "REGISTRATION_TOKEN"',
    ].join('\n'),
  });
  const body = { redirect_uris: ['https://app.example/cb'] };
  const url = guarded.url('/register');
  for (const authorization of [undefined, `Bearer ${token}x`, `Basic ${token}`]) {
    const res = await postJson(url, body, authorization ? { authorization } : {});
    assert.equal(res.status, 401, res.text);
    assert.equal(res.json.error, 'invalid_token');
    assert.equal(res.headers.get('www-authenticate'), 'Bearer error="invalid_token"');
  }
  // Guessing the token is rate limited like registering.
  const guessing = await postJson(url, body, { authorization: 'Bearer guess' });
  assert.equal(guessing.status, 429, guessing.text);
  const bearer = { authorization: `Bearer ${token}` };
  // The window is fixed at the first request: wait for a fresh one, so the
  // four requests below fall in the same window.
  await new Promise((resolve) => { setTimeout(resolve, 2_100); });
  for (let i = 0; i < 3; i += 1) assert.equal((await postJson(url, body, bearer)).status, 201);
  const limited = await postJson(url, body, bearer);
  assert.equal(limited.status, 429, limited.text);
  assert.equal(limited.json.error, 'temporarily_unavailable');
  assert.equal(limited.headers.get('retry-after'), '2');
  t.diagnostic(limited.json.error_description);
  await new Promise((resolve) => { setTimeout(resolve, 2_100); });
  assert.equal((await postJson(url, body, bearer)).status, 201, 'recovered after the window');
});

test('registration off: no registration_endpoint, /register is 404, registered client_ids refused', async (t) => {
  const off = await world.startProxy({ name: 'off', publicUrl: world.proxy.publicUrl });
  const metadata = await (await fetch(off.url('/.well-known/oauth-authorization-server'))).json();
  assert.equal(metadata.registration_endpoint, undefined);
  const on = await (await fetch(world.proxy.url('/.well-known/oauth-authorization-server'))).json();
  assert.equal(on.registration_endpoint, `${world.proxy.issuer}/register`);
  assert.equal((await postJson(off.url('/register'), { redirect_uris: ['https://app.example/cb'] })).status, 404);
  const ok = await postJson(world.proxy.url('/register'), { redirect_uris: ['https://app.example/cb'] });
  assertTokenError(await postForm(off.url('/token'), {
    grant_type: 'authorization_code', client_id: ok.json.client_id, code: 'x', code_verifier: 'y'.repeat(43),
  }), { status: 401, error: 'invalid_client' }, t);
});
