// What an attacker tries, and exactly what the proxy answers: error pages
// (never redirects) until the client and its redirect_uri are trusted, error
// redirects with state and iss after that, and the right OAuth error at /token.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import * as jose from 'jose';
import { createWorld } from './lib/world.js';
import { newSealKey } from './lib/proxy.js';
import {
  authorizeThrough, codeFor, exchangePublic, getManual, pkce, postForm, publicClientDocument, random, withQuery,
} from './lib/oauth.js';
import { assertErrorPage, assertErrorRedirect, assertTokenError } from './lib/assert-oauth.js';
import { metricValue, scrape } from './lib/metrics.js';

/** A 1×1 PNG. */
const PNG = Buffer.from(
  '89504e470d0a1a0a0000000d4948445200000001000000010806000000' +
  '1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082', 'hex');
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const STATE_TTL_S = 10;

let world;
let short; // same keys and public URL, state_ttl_s = 10, code_ttl_s = 1
let other; // same public URL, a different seal key: another deployment
let pendingExpiry; // a provider→/callback URL whose state `short` sealed, to present once expired
const clients = {};

before(async () => {
  world = await createWorld('50-attacks', {
    proxy: (w) => ({
      rules: [
        { client_id: w.docs.clientId('denied-app'), action: 'deny' },
        { client_id: w.docs.clientId('scoped-app'), action: 'allow', scopes: ['openid'] },
        { client_id: w.docs.clientId('logo-warned'), action: 'warn' },
        { client_id: w.docs.clientId('logo-denied'), action: 'deny' },
      ],
    }),
  });
  const { docs } = world;
  const cb = (name) => `${docs.origin}/${name}/callback`;
  for (const name of ['alice', 'mallory', 'denied-app', 'scoped-app']) {
    clients[name] = { redirectUri: cb(name), clientId: docs.addClient(name, (id) => publicClientDocument(id, [cb(name)])) };
  }
  // Clients with a logo on the document host: allowed (the default), warned, denied, and an
  // allowed one whose logo host answers only after 1.8 s (the fetch deadline is 2 s).
  for (const name of ['logo-allowed', 'logo-warned', 'logo-denied', 'logo-slow']) {
    const logoUri = docs.serve(`/logos/${name}.png`, PNG, {
      contentType: 'image/png', delayMs: name === 'logo-slow' ? 1800 : undefined,
    });
    clients[name] = {
      redirectUri: cb(name),
      logoPath: `/logos/${name}.png`,
      docPath: `/clients/${name}.json`,
      clientId: docs.addClient(name, (id) => publicClientDocument(id, [cb(name)], { logo_uri: logoUri })),
    };
  }
  clients.mismatch = {
    redirectUri: cb('mismatch'),
    clientId: docs.addClient('mismatch', () => publicClientDocument('https://elsewhere.invalid/clients/mismatch.json', [cb('mismatch')])),
  };
  clients.secretive = {
    redirectUri: cb('secretive'),
    clientId: docs.addClient('secretive', (id) => publicClientDocument(id, [cb('secretive')], {
      token_endpoint_auth_method: 'client_secret_basic', client_secret: 'leaked',
    })),
  };

  // private_key_jwt client and an attacker's key.
  const { publicKey, privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
  const attacker = await jose.generateKeyPair('RS256', { extractable: true });
  const kid = 'signer-1';
  const jwk = { ...(await jose.exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  const jwksUri = docs.serve('/jwks/signer.json', { keys: [jwk] });
  clients.signer = {
    redirectUri: cb('signer'),
    kid,
    privateKey,
    publicKey,
    attackerKey: attacker.privateKey,
    clientId: docs.addClient('signer', (id) => ({
      client_id: id,
      redirect_uris: [cb('signer')],
      grant_types: ['authorization_code', 'refresh_token'],
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_methods_supported: ['none', 'private_key_jwt'],
      jwks_uri: jwksUri,
    })),
  };

  const shared = { publicUrl: world.proxy.publicUrl };
  short = await world.startProxy({ name: 'proxy-short-ttl', ...shared, stateTtlS: STATE_TTL_S, codeTtlS: 1 });
  other = await world.startProxy({ name: 'proxy-other-deployment', ...shared, sealKeys: [newSealKey()] });

  // Start the clock for the expired-state test now; it is checked last.
  const run = await authorizeThrough(short, { ...clients.alice, stopAtCallback: true });
  assert.ok(run.stoppedAt, JSON.stringify(run.hops));
  pendingExpiry = { url: run.stoppedAt, sealedAt: Date.now() };
});
after(async () => { await world?.close(); });

const authorizeUrl = (proxy, { clientId, redirectUri }, params = {}) => {
  const { challenge } = pkce();
  return withQuery(proxy.url('/authorize'), {
    response_type: 'code', client_id: clientId, redirect_uri: redirectUri, scope: 'openid',
    state: 'client-state-123', code_challenge: challenge, code_challenge_method: 'S256', ...params,
  });
};

// ---------------------------------------------------------------- logos

/** Waits (5 s at most) until `done()` holds. */
async function eventually(done, what) {
  const deadline = Date.now() + 5000;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const logoOf = (client) => getManual(withQuery(world.proxy.url('/logo'), { client_id: client.clientId }));

test('logos: an allowed client\'s logo is fetched once, in the background, and served from the proxy', async () => {
  const client = clients['logo-allowed'];
  const before = metricValue(await scrape(world.proxy), 'cimd_proxy_logo_prefetches_total', { outcome: 'fetched' }) ?? 0;
  const res = await getManual(authorizeUrl(world.proxy, client));
  assert.equal(res.status, 302, res.body);
  // Nobody asked for /logo: the document's fetch alone brings the logo.
  await eventually(() => world.docs.fetchCount(client.logoPath) === 1, 'the logo prefetch');
  const logo = await fetch(withQuery(world.proxy.url('/logo'), { client_id: client.clientId }));
  assert.equal(logo.status, 200);
  assert.equal(logo.headers.get('content-type'), 'image/png');
  assert.deepEqual(Buffer.from(await logo.arrayBuffer()), PNG);
  // Another sign-in (a cache hit) and the /logo request fetch nothing more.
  assert.equal((await getManual(authorizeUrl(world.proxy, client))).status, 302);
  await sleep(200);
  assert.equal(world.docs.fetchCount(client.logoPath), 1);
  const after = metricValue(await scrape(world.proxy), 'cimd_proxy_logo_prefetches_total', { outcome: 'fetched' });
  assert.equal(after, before + 1);
});

test('logos: warned and denied clients never get theirs fetched or shown', async () => {
  const warned = clients['logo-warned'];
  const denied = clients['logo-denied'];
  const page = await getManual(authorizeUrl(world.proxy, warned));
  assert.equal(page.status, 200, 'the warned client gets the consent page');
  assert.ok(!page.body.includes('/logo?'), 'the page shows no logo');
  assertErrorPage(await getManual(authorizeUrl(world.proxy, denied)), 403);
  for (const client of [warned, denied]) {
    assert.equal(world.docs.fetchCount(client.docPath), 1, 'its document was fetched');
    assert.equal((await logoOf(client)).status, 404);
  }
  // A prefetch is queued while the document is admitted, and the logo host is local: half a
  // second is ample for one to have reached it.
  await sleep(500);
  assert.equal(world.docs.fetchCount(warned.logoPath), 0);
  assert.equal(world.docs.fetchCount(denied.logoPath), 0);
});

test('logos: a slow logo host does not delay sign-ins, and /logo never waits for it', async () => {
  const client = clients['logo-slow'];
  let started = Date.now();
  assert.equal((await getManual(authorizeUrl(world.proxy, client))).status, 302);
  assert.ok(Date.now() - started < 1000, `the sign-in took ${Date.now() - started} ms`);
  await eventually(() => world.docs.fetchCount(client.logoPath) === 1, 'the logo fetch to start');
  // While the logo host is still answering: sign-ins and /logo answer at once.
  started = Date.now();
  assert.equal((await getManual(authorizeUrl(world.proxy, client))).status, 302);
  assert.equal((await logoOf(client)).status, 404);
  assert.ok(Date.now() - started < 1000, `took ${Date.now() - started} ms`);
  // Once its host has answered, the logo is there.
  const deadline = Date.now() + 5000;
  while ((await logoOf(client)).status !== 200) {
    assert.ok(Date.now() < deadline, 'the slow logo never arrived');
    await sleep(100);
  }
  assert.equal(world.docs.fetchCount(client.logoPath), 1);
});

// ---------------------------------------------------------------- /authorize

test('/authorize: redirect_uri not in the document ⇒ 400 HTML, no Location', async (t) => {
  const res = await getManual(authorizeUrl(world.proxy, clients.alice, { redirect_uri: 'https://evil.invalid/callback' }));
  assertErrorPage(res, 400);
  assert.ok(!res.body.includes('evil.invalid/callback?'), 'no link built to the attacker');
});

test('/authorize: a redirect_uri differing only by path or by port (non-loopback) ⇒ 400 HTML', async (t) => {
  assertErrorPage(await getManual(authorizeUrl(world.proxy, clients.alice, { redirect_uri: `${clients.alice.redirectUri}/x` })), 400);
  const port = new URL(world.docs.origin).port;
  const otherPort = clients.alice.redirectUri.replace(`:${port}/`, `:${Number(port) + 1}/`);
  assertErrorPage(await getManual(authorizeUrl(world.proxy, clients.alice, { redirect_uri: otherPort })), 400);
});

test('/authorize: a document whose client_id is another URL ⇒ 400 HTML, no Location', async (t) => {
  assertErrorPage(await getManual(authorizeUrl(world.proxy, clients.mismatch)), 400);
});

test('/authorize: a document carrying a client_secret ⇒ 400 HTML, no Location', async (t) => {
  assertErrorPage(await getManual(authorizeUrl(world.proxy, clients.secretive)), 400);
});

test('/authorize: a client_id whose document is missing (404) ⇒ 400 HTML, no Location', async (t) => {
  const ghost = { clientId: world.docs.clientId('ghost'), redirectUri: `${world.docs.origin}/ghost/callback` };
  assertErrorPage(await getManual(authorizeUrl(world.proxy, ghost)), 400);
});

test('/authorize: a client the policy denies ⇒ 403 HTML, no Location', async (t) => {
  assertErrorPage(await getManual(authorizeUrl(world.proxy, clients['denied-app'])), 403);
});

test('/authorize: PKCE missing ⇒ error=invalid_request redirect with state and iss', async (t) => {
  const res = await getManual(authorizeUrl(world.proxy, clients.alice, { code_challenge: undefined, code_challenge_method: undefined }));
  assertErrorRedirect(res, { redirectUri: clients.alice.redirectUri, error: 'invalid_request', state: 'client-state-123', iss: world.proxy.issuer });
});

test('/authorize: PKCE plain ⇒ error=invalid_request redirect with state and iss', async (t) => {
  const res = await getManual(authorizeUrl(world.proxy, clients.alice, { code_challenge: 'a'.repeat(43), code_challenge_method: 'plain' }));
  assertErrorRedirect(res, { redirectUri: clients.alice.redirectUri, error: 'invalid_request', state: 'client-state-123', iss: world.proxy.issuer });
});

test('/authorize: response_type=token ⇒ error=unsupported_response_type redirect', async (t) => {
  const res = await getManual(authorizeUrl(world.proxy, clients.alice, { response_type: 'token' }));
  assertErrorRedirect(res, { redirectUri: clients.alice.redirectUri, error: 'unsupported_response_type', state: 'client-state-123', iss: world.proxy.issuer });
});

test('/authorize: only scopes above the rule\'s ceiling ⇒ error=invalid_scope redirect', async (t) => {
  const res = await getManual(authorizeUrl(world.proxy, clients['scoped-app'], { scope: 'email' }));
  assertErrorRedirect(res, { redirectUri: clients['scoped-app'].redirectUri, error: 'invalid_scope', state: 'client-state-123', iss: world.proxy.issuer });
  // Within the ceiling, the rest is cut and the request goes upstream.
  const ok = await getManual(authorizeUrl(world.proxy, clients['scoped-app'], { scope: 'openid email' }));
  assert.equal(ok.status, 302);
  assert.equal(new URL(ok.location).searchParams.get('scope'), 'openid');
});

// ---------------------------------------------------------------- /callback

test('/callback: a tampered state ⇒ 400 HTML, no Location', async (t) => {
  const run = await authorizeThrough(world.proxy, { ...clients.alice, stopAtCallback: true });
  const callback = new URL(run.stoppedAt);
  const state = callback.searchParams.get('state');
  const i = Math.floor(state.length / 2);
  const flipped = state.slice(0, i) + (state[i] === 'A' ? 'B' : 'A') + state.slice(i + 1);
  callback.searchParams.set('state', flipped);
  assertErrorPage(await getManual(world.proxy.url(`/callback${callback.search}`)), 400);
  // The untampered one still works: the page above was about the state alone.
  const good = await getManual(world.proxy.url(`/callback${run.stoppedAt.search}`));
  assert.equal(good.status, 302);
  assert.equal(new URL(good.location).searchParams.get('state'), run.state);
});

test('/callback: a state from another deployment (another seal key) ⇒ 400 HTML, no Location', async (t) => {
  const run = await authorizeThrough(other, { ...clients.alice, stopAtCallback: true });
  assert.ok(run.stoppedAt, JSON.stringify(run.hops));
  assertErrorPage(await getManual(world.proxy.url(`/callback${run.stoppedAt.search}`)), 400);
});

test('/callback: an iss naming another issuer (mix-up, RFC 9207) ⇒ error=access_denied redirect, no code', async (t) => {
  const run = await authorizeThrough(world.proxy, { ...clients.alice, stopAtCallback: true });
  const callback = new URL(run.stoppedAt);
  assert.equal(callback.searchParams.get('iss'), world.provider.issuer, 'oidc-provider sends iss');
  callback.searchParams.set('iss', 'https://attacker.invalid');
  const res = await getManual(world.proxy.url(`/callback${callback.search}`));
  assertErrorRedirect(res, { redirectUri: clients.alice.redirectUri, error: 'access_denied', state: run.state, iss: world.proxy.issuer });
});

test('/callback: no iss although the provider advertises authorization_response_iss_parameter_supported ⇒ access_denied redirect, no code', async (t) => {
  const run = await authorizeThrough(world.proxy, { ...clients.alice, stopAtCallback: true });
  const callback = new URL(run.stoppedAt);
  assert.equal(callback.searchParams.get('iss'), world.provider.issuer, 'oidc-provider sends iss');
  callback.searchParams.delete('iss');
  const res = await getManual(world.proxy.url(`/callback${callback.search}`));
  assertErrorRedirect(res, { redirectUri: clients.alice.redirectUri, error: 'access_denied', state: run.state, iss: world.proxy.issuer });
  assert.equal(new URL(res.location).searchParams.get('code'), null);
});

test('/callback: a successful callback replayed ⇒ 400 HTML, no second code', async (t) => {
  const run = await authorizeThrough(world.proxy, { ...clients.alice, stopAtCallback: true });
  const first = await getManual(world.proxy.url(`/callback${run.stoppedAt.search}`));
  assert.equal(first.status, 302, first.body);
  assert.ok(new URL(first.location).searchParams.get('code'));
  assertErrorPage(await getManual(world.proxy.url(`/callback${run.stoppedAt.search}`)), 400);
});

test('/callback: the provider\'s error is relayed to the client with its state and the proxy\'s iss', async (t) => {
  const run = await authorizeThrough(world.proxy, { ...clients.alice, stopAtCallback: true });
  const sealed = run.stoppedAt.searchParams.get('state');
  const res = await getManual(world.proxy.url(`/callback?${new URLSearchParams({
    error: 'access_denied', error_description: 'the user said no', state: sealed, iss: world.provider.issuer,
  })}`));
  assertErrorRedirect(res, { redirectUri: clients.alice.redirectUri, error: 'access_denied', state: run.state, iss: world.proxy.issuer });
});

test('/callback: a missing state ⇒ 400 HTML', async (t) => {
  assertErrorPage(await getManual(world.proxy.url('/callback?code=abc')), 400);
});

// ---------------------------------------------------------------- /token, public clients

test('/token: a sealed code replayed by another client_id ⇒ invalid_grant', async (t) => {
  const alice = await codeFor(world.proxy, clients.alice);
  const res = await exchangePublic(world.proxy, {
    clientId: clients.mallory.clientId, code: alice.code, redirectUri: clients.mallory.redirectUri, verifier: alice.verifier,
  });
  assertTokenError(res, { status: 400, error: 'invalid_grant' }, t);
  // Alice's own exchange still works.
  const mine = await exchangePublic(world.proxy, { ...clients.alice, code: alice.code, verifier: alice.verifier });
  assert.equal(mine.status, 200, mine.text);
});

test('/token: the same code twice ⇒ invalid_grant the second time', async (t) => {
  const run = await codeFor(world.proxy, clients.alice);
  const first = await exchangePublic(world.proxy, { ...clients.alice, code: run.code, verifier: run.verifier });
  assert.equal(first.status, 200, first.text);
  assertTokenError(await exchangePublic(world.proxy, { ...clients.alice, code: run.code, verifier: run.verifier }),
    { status: 400, error: 'invalid_grant' }, t);
});

test('/token: wrong redirect_uri ⇒ invalid_grant', async (t) => {
  const run = await codeFor(world.proxy, clients.alice);
  assertTokenError(await exchangePublic(world.proxy, {
    clientId: clients.alice.clientId, code: run.code, verifier: run.verifier, redirectUri: `${clients.alice.redirectUri}/other`,
  }), { status: 400, error: 'invalid_grant' }, t);
});

test('/token: wrong PKCE verifier ⇒ invalid_grant (the provider says so)', async (t) => {
  const run = await codeFor(world.proxy, clients.alice);
  assertTokenError(await exchangePublic(world.proxy, { ...clients.alice, code: run.code, verifier: pkce().verifier }),
    { status: 400, error: 'invalid_grant' }, t);
});

test('/token: a forged code ⇒ invalid_grant', async (t) => {
  assertTokenError(await exchangePublic(world.proxy, { ...clients.alice, code: random(60), verifier: pkce().verifier }),
    { status: 400, error: 'invalid_grant' }, t);
});

test('/token: a refresh token presented by another client_id ⇒ invalid_grant', async (t) => {
  const run = await codeFor(world.proxy, clients.alice);
  const tokens = await exchangePublic(world.proxy, { ...clients.alice, code: run.code, verifier: run.verifier });
  assert.equal(tokens.status, 200, tokens.text);
  assert.ok(tokens.json.refresh_token);
  const stolen = await postForm(world.proxy.url('/token'), {
    grant_type: 'refresh_token', client_id: clients.mallory.clientId, refresh_token: tokens.json.refresh_token,
  });
  assertTokenError(stolen, { status: 400, error: 'invalid_grant' }, t);
  const own = await postForm(world.proxy.url('/token'), {
    grant_type: 'refresh_token', client_id: clients.alice.clientId, refresh_token: tokens.json.refresh_token,
  });
  assert.equal(own.status, 200, own.text);
});

test('/token: a code redeemed without the redirect_uri its authorization request named ⇒ invalid_request', async (t) => {
  const run = await codeFor(world.proxy, clients.alice);
  assertTokenError(await postForm(world.proxy.url('/token'), {
    grant_type: 'authorization_code', client_id: clients.alice.clientId, code: run.code, code_verifier: run.verifier,
  }), { status: 400, error: 'invalid_request' }, t);
  // With it, the code is still good: the refusal did not reach the provider.
  const mine = await exchangePublic(world.proxy, { ...clients.alice, code: run.code, verifier: run.verifier });
  assert.equal(mine.status, 200, mine.text);
});

test('/token: a form sent as text/plain ⇒ invalid_request', async (t) => {
  const run = await codeFor(world.proxy, clients.alice);
  assertTokenError(await postForm(world.proxy.url('/token'), {
    grant_type: 'authorization_code', client_id: clients.alice.clientId, code: run.code,
    redirect_uri: clients.alice.redirectUri, code_verifier: run.verifier,
  }, { headers: { 'content-type': 'text/plain' } }), { status: 400, error: 'invalid_request' }, t);
});

test('/token: a refresh token used after it was rotated ⇒ invalid_grant, and its family is revoked', async (t) => {
  const run = await codeFor(world.proxy, clients.alice);
  const tokens = await exchangePublic(world.proxy, { ...clients.alice, code: run.code, verifier: run.verifier });
  assert.equal(tokens.status, 200, tokens.text);
  const refresh = (token) => postForm(world.proxy.url('/token'), {
    grant_type: 'refresh_token', client_id: clients.alice.clientId, refresh_token: token,
  });
  const rotated = await refresh(tokens.json.refresh_token);
  assert.equal(rotated.status, 200, rotated.text);
  assert.ok(rotated.json.refresh_token);
  assert.notEqual(rotated.json.refresh_token, tokens.json.refresh_token, 'every refresh returns a new refresh token');
  assertTokenError(await refresh(tokens.json.refresh_token), { status: 400, error: 'invalid_grant' }, t);
  // The thief's replay ended the grant for the holder of the newest token too.
  assertTokenError(await refresh(rotated.json.refresh_token), { status: 400, error: 'invalid_grant' }, t);
});

test('/token: a code older than code_ttl_s ⇒ invalid_grant', async (t) => {
  const run = await authorizeThrough(short, { ...clients.alice, stopAtCallback: true });
  const relayed = await getManual(short.url(`/callback${run.stoppedAt.search}`));
  assert.equal(relayed.status, 302);
  const code = new URL(relayed.location).searchParams.get('code');
  await sleep(2500);
  assertTokenError(await exchangePublic(short, { ...clients.alice, code, verifier: run.verifier }),
    { status: 400, error: 'invalid_grant' }, t);
});

// ---------------------------------------------------------------- /token, private_key_jwt

async function assertion({ key, alg = 'RS256', kid, aud, claims = {}, header = {} }) {
  const now = Math.floor(Date.now() / 1000);
  const { clientId } = clients.signer;
  const payload = {
    iss: clientId, sub: clientId, aud: aud ?? world.proxy.issuer, iat: now, exp: now + 60, jti: random(), ...claims,
  };
  return new jose.SignJWT(payload)
    .setProtectedHeader({ alg, typ: 'JWT', ...(kid ? { kid } : {}), ...header })
    .sign(key);
}

function unsigned(claims) {
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${enc({ alg: 'none', typ: 'JWT' })}.${enc(claims)}.`;
}

function exchangeSigned(code, verifier, clientAssertion, extra = {}) {
  return postForm(world.proxy.url('/token'), {
    grant_type: 'authorization_code', code, redirect_uri: clients.signer.redirectUri, code_verifier: verifier,
    client_assertion_type: ASSERTION_TYPE, client_assertion: clientAssertion, ...extra,
  });
}

test('/token private_key_jwt: every forged assertion ⇒ invalid_client 401; replay ⇒ invalid_client', async (t) => {
  const { clientId, kid, privateKey, publicKey, attackerKey } = clients.signer;
  const a = await codeFor(world.proxy, clients.signer);
  const b = await codeFor(world.proxy, clients.signer);
  const now = Math.floor(Date.now() / 1000);
  const spki = await jose.exportSPKI(publicKey);

  const forged = {
    'no assertion at all (public-client style)': null,
    'wrong aud': await assertion({ key: privateKey, kid, aud: 'https://elsewhere.invalid/token' }),
    'alg none': unsigned({ iss: clientId, sub: clientId, aud: world.proxy.issuer, iat: now, exp: now + 60, jti: random() }),
    'HS256 signed with the public key': await assertion({ key: new TextEncoder().encode(spki), alg: 'HS256', kid }),
    'unknown kid (attacker key)': await assertion({ key: attackerKey, kid: 'attacker-key' }),
    'bad signature (attacker key, real kid)': await assertion({ key: attackerKey, kid }),
    'expired': await assertion({ key: privateKey, kid, claims: { exp: now - 120, iat: now - 300 } }),
    'sub is another client': await assertion({ key: privateKey, kid, claims: { sub: clients.alice.clientId } }),
  };
  for (const [name, jwt] of Object.entries(forged)) {
    const res = jwt === null
      ? await exchangePublic(world.proxy, { clientId, code: b.code, redirectUri: clients.signer.redirectUri, verifier: b.verifier })
      : await exchangeSigned(b.code, b.verifier, jwt);
    assert.equal(res.status, 401, `${name}: ${res.status} ${res.text}`);
    assert.equal(res.json?.error, 'invalid_client', `${name}: ${res.text}`);
    t.diagnostic(`${name}: ${res.json.error_description}`);
  }
  // A form client_id naming another client than the assertion.
  const mixed = await exchangeSigned(b.code, b.verifier, await assertion({ key: privateKey, kid }), { client_id: clients.alice.clientId });
  assertTokenError(mixed, { status: 401, error: 'invalid_client' }, t);

  // A good assertion works once...
  const good = await assertion({ key: privateKey, kid });
  const first = await exchangeSigned(a.code, a.verifier, good);
  assert.equal(first.status, 200, first.text);
  // ...and is refused when replayed, even with a fresh, valid code.
  const replay = await exchangeSigned(b.code, b.verifier, good);
  assertTokenError(replay, { status: 401, error: 'invalid_client' }, t);
  // Code b was never spent by any of the refusals above.
  const last = await exchangeSigned(b.code, b.verifier, await assertion({ key: privateKey, kid, aud: world.proxy.url('/token') }));
  assert.equal(last.status, 200, `aud = the token endpoint is accepted too: ${last.text}`);
});

// ---------------------------------------------------------------- last: the clock-driven one

test(`/callback: a state older than state_ttl_s (${STATE_TTL_S} s) ⇒ 400 HTML, no Location`, async (t) => {
  const waitMs = pendingExpiry.sealedAt + STATE_TTL_S * 1000 + 1500 - Date.now();
  if (waitMs > 0) await sleep(waitMs);
  assertErrorPage(await getManual(short.url(`/callback${pendingExpiry.url.search}`)), 400);
});
