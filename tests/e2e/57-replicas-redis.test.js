// Three replicas sharing one Redis (and the same seal keys): what is usable once is usable once
// across all of them (a private_key_jwt jti, a consent token), refresh rotation holds across
// replicas, a revocation at one is seen by all, a document whose redirect URIs changed after
// sign-in ends the grant, and Redis taken away mid-test gives the documented refusals and
// /readyz false, then everything recovers without a restart when it returns.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import * as jose from 'jose';
import { createWorld } from './lib/world.js';
import { startRedis } from './lib/redis.js';
import { codeFor, exchangePublic, pkce, postForm, publicClientDocument, random, withQuery } from './lib/oauth.js';
import { assertErrorPage, assertTokenError } from './lib/assert-oauth.js';

const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

let world;
let redis;
let replicas; // [a, b, c]
const clients = {};

before(async () => {
  redis = await startRedis();
  const store = { extraToml: '[store]\nbackend = "redis"\nurl_env = "CIMD_PROXY_REDIS_URL"\ntimeout_ms = 250', env: { CIMD_PROXY_REDIS_URL: redis.url } };
  world = await createWorld('57-replicas-redis', { proxy: { ...store } });
  const { docs } = world;
  const cb = (name) => `${docs.origin}/${name}/callback`;
  for (const name of ['alice', 'bob', 'carol', 'changer']) {
    clients[name] = { redirectUri: cb(name), clientId: docs.addClient(name, (id) => publicClientDocument(id, [cb(name)])) };
  }
  const { publicKey, privateKey } = await jose.generateKeyPair('ES256', { extractable: true });
  const jwk = { ...(await jose.exportJWK(publicKey)), kid: 'signer-1', alg: 'ES256', use: 'sig' };
  clients.signer = {
    redirectUri: cb('signer'),
    privateKey,
    clientId: docs.addClient('signer', (id) => ({
      client_id: id,
      redirect_uris: [cb('signer')],
      grant_types: ['authorization_code', 'refresh_token'],
      token_endpoint_auth_method: 'private_key_jwt',
      jwks: { keys: [jwk] },
    })),
  };
  const shared = { publicUrl: world.proxy.publicUrl, ...store };
  replicas = [
    world.proxy,
    await world.startProxy({ name: 'replica-b', ...shared }),
    // The third asks every client for consent: the consent token test runs through it.
    await world.startProxy({ name: 'replica-c', ...shared, interstitial: 'always' }),
  ];
});
after(async () => {
  await world?.close();
  await redis?.close();
});

const refresh = (proxy, client, token) => postForm(proxy.url('/token'), {
  grant_type: 'refresh_token', client_id: client.clientId, refresh_token: token,
});

async function signIn(proxy, client) {
  const run = await codeFor(proxy, client);
  const tokens = await exchangePublic(proxy, { ...client, code: run.code, verifier: run.verifier });
  assert.equal(tokens.status, 200, tokens.text);
  assert.ok(tokens.json.refresh_token, tokens.text);
  return tokens.json.refresh_token;
}

async function readyz(proxy) {
  const res = await fetch(`${proxy.admin}/readyz`);
  await res.arrayBuffer();
  return res.status;
}

async function until(what, check, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(100);
  }
}

test('a private_key_jwt assertion used at one replica is refused at another (jti spent in Redis)', async (t) => {
  const [a, b] = replicas;
  const { clientId, privateKey, redirectUri } = clients.signer;
  const now = Math.floor(Date.now() / 1000);
  const assertion = await new jose.SignJWT({
    iss: clientId, sub: clientId, aud: world.proxy.issuer, iat: now, exp: now + 60, jti: random(),
  }).setProtectedHeader({ alg: 'ES256', kid: 'signer-1', typ: 'JWT' }).sign(privateKey);
  const exchange = async (proxy, assertionJwt) => {
    const run = await codeFor(proxy, clients.signer);
    return postForm(proxy.url('/token'), {
      grant_type: 'authorization_code', code: run.code, redirect_uri: redirectUri, code_verifier: run.verifier,
      client_assertion_type: ASSERTION_TYPE, client_assertion: assertionJwt,
    });
  };
  const first = await exchange(a, assertion);
  assert.equal(first.status, 200, first.text);
  assertTokenError(await exchange(b, assertion), { status: 401, error: 'invalid_client' }, t);
});

test('a consent token spent at one replica is refused at another', async () => {
  const [a, , c] = replicas;
  const { challenge } = pkce();
  const url = withQuery(c.url('/authorize'), {
    response_type: 'code', client_id: clients.carol.clientId, redirect_uri: clients.carol.redirectUri,
    scope: 'openid', state: random(), code_challenge: challenge, code_challenge_method: 'S256',
  });
  const page = await fetch(url, { redirect: 'manual' });
  const body = await page.text();
  assert.equal(page.status, 200, body.slice(0, 300));
  const consent = body.match(/name="consent" value="([^"]+)"/)?.[1];
  assert.ok(consent, 'the page carries a consent token');
  const cookie = page.headers.getSetCookie().map((line) => line.split(';')[0]).join('; ');
  assert.ok(cookie, 'the page sets its browser cookie');
  const post = (proxy) => fetch(proxy.url('/consent'), {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie },
    body: new URLSearchParams({ consent, decision: 'continue' }).toString(),
  });
  const first = await post(c);
  await first.arrayBuffer();
  assert.equal(first.status, 303, 'Continue goes on to the provider');
  const replay = await post(a);
  const refused = {
    status: replay.status, contentType: replay.headers.get('content-type'), location: replay.headers.get('location'), body: await replay.text(),
  };
  assertErrorPage(refused);
  assert.match(refused.body, /already used/);
});

test('refresh rotation across replicas: an old generation presented anywhere revokes the family everywhere', async (t) => {
  const [a, b, c] = replicas;
  const first = await signIn(a, clients.alice);
  const second = await refresh(b, clients.alice, first);
  assert.equal(second.status, 200, second.text);
  const third = await refresh(c, clients.alice, second.json.refresh_token);
  assert.equal(third.status, 200, `the generation B issued refreshes at C: ${third.text}`);
  // The first generation again, at a replica that never saw it: reuse.
  assertTokenError(await refresh(c, clients.alice, first), { status: 400, error: 'invalid_grant' }, t);
  // The newest token is dead on every replica.
  for (const proxy of replicas) {
    assertTokenError(await refresh(proxy, clients.alice, third.json.refresh_token), { status: 400, error: 'invalid_grant' }, t);
  }
});

test('revocation (RFC 7009) at one replica is seen by all, and reaches the provider', async (t) => {
  const [a, b, c] = replicas;
  const token = await signIn(a, clients.bob);
  const revocationsBefore = world.provider.requests.filter((r) => r.method === 'POST' && r.url.includes('revoc')).length;
  const revoked = await postForm(b.url('/revoke'), {
    token, token_type_hint: 'refresh_token', client_id: clients.bob.clientId,
  });
  assert.equal(revoked.status, 200, revoked.text);
  for (const proxy of [a, b, c]) {
    assertTokenError(await refresh(proxy, clients.bob, token), { status: 400, error: 'invalid_grant' }, t);
  }
  const revocationsAfter = world.provider.requests.filter((r) => r.method === 'POST' && r.url.includes('revoc')).length;
  assert.equal(revocationsAfter, revocationsBefore + 1, 'the provider\'s own refresh token was revoked at its endpoint');
  // Unknown tokens get 200 too (RFC 7009 §2.2).
  const unknown = await postForm(c.url('/revoke'), { token: `v1.${random(60)}`, client_id: clients.bob.clientId });
  assert.equal(unknown.status, 200, unknown.text);
  // The proxy's metadata says where and how.
  const metadata = await (await fetch(a.url('/.well-known/oauth-authorization-server'))).json();
  assert.equal(metadata.revocation_endpoint, `${world.proxy.publicUrl}/revoke`);
  assert.deepEqual(metadata.revocation_endpoint_auth_methods_supported, ['none', 'private_key_jwt']);
});

test('a document whose redirect URIs changed after sign-in: its refresh token is refused, its family revoked', async (t) => {
  const [a, b] = replicas;
  const { docs } = world;
  // Signed in at A, which keeps the old document cached.
  const token = await signIn(a, clients.changer);
  docs.addClient('changer', (id) => publicClientDocument(id, [`${docs.origin}/somewhere-else/callback`]));
  // B has never fetched this client: it reads the document as it is now.
  assertTokenError(await refresh(b, clients.changer, token), { status: 400, error: 'invalid_grant' }, t);
  // The family is revoked in Redis: A, with the old document cached, refuses it too.
  assertTokenError(await refresh(a, clients.changer, token), { status: 400, error: 'invalid_grant' }, t);
});

test('Redis stopped: /token refresh 503 temporarily_unavailable, /consent an error page, /readyz false; back without a restart', async (t) => {
  const [a, b, c] = replicas;
  const token = await signIn(a, clients.alice);
  // A consent page made while Redis answers (sealing needs no store), posted while it is away.
  const { challenge } = pkce();
  const page = await fetch(withQuery(c.url('/authorize'), {
    response_type: 'code', client_id: clients.carol.clientId, redirect_uri: clients.carol.redirectUri,
    scope: 'openid', state: random(), code_challenge: challenge, code_challenge_method: 'S256',
  }), { redirect: 'manual' });
  const consent = (await page.text()).match(/name="consent" value="([^"]+)"/)?.[1];
  const cookie = page.headers.getSetCookie().map((line) => line.split(';')[0]).join('; ');
  assert.ok(consent && cookie);

  await redis.stop();
  try {
    await until('every replica not ready', async () => (await Promise.all(replicas.map(readyz))).every((s) => s === 503));
    assertTokenError(await refresh(b, clients.alice, token), { status: 503, error: 'temporarily_unavailable' }, t);
    const consentPost = await fetch(c.url('/consent'), {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie },
      body: new URLSearchParams({ consent, decision: 'continue' }).toString(),
    });
    assertErrorPage({
      status: consentPost.status, contentType: consentPost.headers.get('content-type'), location: consentPost.headers.get('location'), body: await consentPost.text(),
    }, 503);
    // What needs no store still works.
    const discovery = await fetch(a.url('/.well-known/oauth-authorization-server'));
    assert.equal(discovery.status, 200);
    await discovery.arrayBuffer();
  } finally {
    await redis.start();
  }
  await until('every replica ready again', async () => (await Promise.all(replicas.map(readyz))).every((s) => s === 200));
  // Redis came back empty: the family made before the outage is gone, and a token whose family
  // the store does not know is refused (never adopted). A fresh sign-in works at once.
  assertTokenError(await refresh(b, clients.alice, token), { status: 400, error: 'invalid_grant' }, t);
  const fresh = await signIn(b, clients.alice);
  const rotated = await refresh(a, clients.alice, fresh);
  assert.equal(rotated.status, 200, rotated.text);
});
