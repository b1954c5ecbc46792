// Direct redirect mode, and the size limit of what the proxy seals.
//
// Direct mode: `[upstream.clients.direct] redirect_mode = "direct"` and a policy rule mapping one
// CIMD client onto it. /authorize sends the client's own redirect_uri and state upstream (the
// operator registered that URI at the provider as `direct-app`), the provider lands the user on the
// client with its own code and iss, and /token redeems that raw code as `direct-app`, seals the
// refresh token to the CIMD client and re-issues the id_token. The token calls are plain fetch:
// openid-client would reject the provider's `iss` in the authorization response, since in direct
// mode the provider, not the proxy, answers the client (a documented limitation of direct mode).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import * as jose from 'jose';
import { createWorld } from './lib/world.js';
import { listen, closeServer } from './lib/net.js';
import { Browser } from './lib/browser.js';
import { pkce, postForm, publicClientDocument, random, withQuery, getManual, decodeJwt } from './lib/oauth.js';
import { assertErrorRedirect, assertTokenError } from './lib/assert-oauth.js';
import { TEST_USER } from './lib/provider.js';

const DIRECT_SECRET = 'direct-app-secret-for-tests';
const SCOPE = 'openid profile email offline_access';

let world;
let listener; // the direct client's real redirect_uri: records what arrives
const received = [];
let direct; // { clientId, redirectUri }: a CIMD client mapped onto the direct upstream client
let relayed; // { clientId, redirectUri }: a CIMD client on the default (relay) upstream client

before(async () => {
  listener = http.createServer((req, res) => {
    received.push(req.url);
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('signed in');
  });
  const port = await listen(listener, 0, '127.0.0.1');
  const directRedirectUri = `http://127.0.0.1:${port}/direct/callback`;

  world = await createWorld('47-direct-and-limits', {
    providerClients: [{
      client_id: 'direct-app',
      client_secret: DIRECT_SECRET,
      token_endpoint_auth_method: 'client_secret_basic',
      redirect_uris: [directRedirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      scope: SCOPE,
    }],
    proxy: (w) => ({
      upstreamClients: {
        direct: {
          client_id: 'direct-app',
          auth_method: 'client_secret_basic',
          client_secret_env: 'DIRECT_SECRET',
          redirect_mode: 'direct',
        },
      },
      env: { DIRECT_SECRET },
      rules: [{ client_id: w.docs.clientId('direct-cli'), action: 'allow', upstream_client: 'direct' }],
    }),
  });
  const { docs } = world;
  direct = {
    redirectUri: directRedirectUri,
    clientId: docs.addClient('direct-cli', (id) => publicClientDocument(id, [directRedirectUri], { client_name: 'Direct CLI' })),
  };
  const relayedRedirectUri = `${docs.origin}/relayed/callback`;
  relayed = {
    redirectUri: relayedRedirectUri,
    clientId: docs.addClient('relayed', (id) => publicClientDocument(id, [relayedRedirectUri])),
  };
});

after(async () => {
  await world?.close();
  if (listener) await closeServer(listener);
});

const providerTokenCalls = () => world.provider.requests.filter((r) => r.method === 'POST' && r.url.split('?')[0] === '/token').length;

/** The /authorize request of the direct client: returns the URL and what it sent. */
function directAuthorization() {
  const { verifier, challenge } = pkce();
  const state = random();
  const nonce = random();
  const url = withQuery(world.proxy.url('/authorize'), {
    response_type: 'code',
    client_id: direct.clientId,
    redirect_uri: direct.redirectUri,
    scope: SCOPE,
    state,
    nonce,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  });
  return { url, verifier, challenge, state, nonce };
}

/** Runs the direct sign-in to the client's listener; returns the code and the hops. */
async function directSignIn() {
  const auth = directAuthorization();
  const before = received.length;
  const browser = new Browser();
  const result = await browser.follow(auth.url);
  assert.equal(result.final?.status, 200, `the chain did not end at the client: ${JSON.stringify(result.hops, null, 1)}`);
  assert.equal(received.length, before + 1, 'the client\'s listener got exactly one request');
  const landed = new URL(received.at(-1), direct.redirectUri);
  return { ...auth, hops: result.hops, landed, code: landed.searchParams.get('code') };
}

test('direct mode: /authorize sends the client\'s own redirect_uri and state to the provider as direct-app', async () => {
  const auth = directAuthorization();
  const res = await getManual(auth.url);
  assert.equal(res.status, 302, res.body.slice(0, 300));
  const upstream = new URL(res.location);
  assert.equal(upstream.origin, world.provider.issuer);
  const q = upstream.searchParams;
  assert.equal(q.get('client_id'), 'direct-app');
  assert.equal(q.get('redirect_uri'), direct.redirectUri);
  assert.equal(q.get('state'), auth.state, 'the client\'s own state, not a sealed one');
  assert.equal(q.get('nonce'), auth.nonce);
  assert.equal(q.get('code_challenge'), auth.challenge);
  assert.equal(q.get('code_challenge_method'), 'S256');
  assert.equal(q.get('response_type'), 'code');
  assert.equal(q.get('scope'), SCOPE);
});

let signedIn; // the direct sign-in's tokens, for the refresh tests

test('direct mode: the provider lands the user on the client, and /token redeems the provider\'s code', async (t) => {
  const run = await directSignIn();
  // The proxy's /callback is never on the way.
  const proxyCallback = `${world.proxy.publicUrl}/callback`;
  assert.ok(!run.hops.some((h) => h.url.startsWith(proxyCallback) || h.location?.startsWith(proxyCallback)),
    `the proxy's /callback was hit: ${JSON.stringify(run.hops, null, 1)}`);
  const toClient = run.hops.at(-2);
  assert.equal(new URL(toClient.url).origin, world.provider.issuer, 'the provider redirected to the client itself');
  assert.equal(run.hops.at(-1).url.split('?')[0], direct.redirectUri);
  assert.ok(run.code, `no code: ${run.landed.href}`);
  assert.equal(run.landed.searchParams.get('state'), run.state);
  assert.equal(run.landed.searchParams.get('iss'), world.provider.issuer, 'the provider\'s iss (direct mode\'s limitation)');

  // A CIMD client not mapped onto a direct upstream client cannot redeem a raw provider code,
  // and the proxy does not even ask the provider (so the code stays good for its owner).
  const callsBefore = providerTokenCalls();
  const stolen = await postForm(world.proxy.url('/token'), {
    grant_type: 'authorization_code', client_id: relayed.clientId, code: run.code,
    redirect_uri: relayed.redirectUri, code_verifier: run.verifier,
  });
  assertTokenError(stolen, { status: 400, error: 'invalid_grant' }, t);
  const stolenWithDirectUri = await postForm(world.proxy.url('/token'), {
    grant_type: 'authorization_code', client_id: relayed.clientId, code: run.code,
    redirect_uri: direct.redirectUri, code_verifier: run.verifier,
  });
  assertTokenError(stolenWithDirectUri, { status: 400, error: 'invalid_grant' }, t);
  assert.equal(providerTokenCalls(), callsBefore, 'no token request reached the provider');

  const res = await postForm(world.proxy.url('/token'), {
    grant_type: 'authorization_code', client_id: direct.clientId, code: run.code,
    redirect_uri: direct.redirectUri, code_verifier: run.verifier,
  });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.token_type?.toLowerCase(), 'bearer');
  assert.ok(res.json.access_token);
  assert.ok(res.json.refresh_token, 'a refresh token (offline_access)');
  assert.match(res.json.refresh_token, /^v2\./, 'the refresh token is sealed by the proxy');
  assert.match(res.headers.get('cache-control') ?? '', /no-store/);

  // The id_token is the proxy's: signed with its key, for the CIMD client, with the client's nonce.
  const jwks = jose.createRemoteJWKSet(new URL(world.proxy.url('/jwks.json')));
  const { payload } = await jose.jwtVerify(res.json.id_token, jwks, {
    issuer: world.proxy.issuer,
    audience: direct.clientId,
  });
  assert.equal(payload.nonce, run.nonce);
  assert.equal(payload.sub, TEST_USER.sub);
  assert.notEqual(decodeJwt(res.json.id_token).header.kid, 'provider-key-1');
  signedIn = { ...res.json, nonce: run.nonce };
});

test('direct mode: refresh works for the client, and its refresh token is invalid_grant for another client', async (t) => {
  assert.ok(signedIn, 'needs the sign-in test');
  const other = await postForm(world.proxy.url('/token'), {
    grant_type: 'refresh_token', client_id: relayed.clientId, refresh_token: signedIn.refresh_token,
  });
  assertTokenError(other, { status: 400, error: 'invalid_grant' }, t);

  const res = await postForm(world.proxy.url('/token'), {
    grant_type: 'refresh_token', client_id: direct.clientId, refresh_token: signedIn.refresh_token,
  });
  assert.equal(res.status, 200, res.text);
  assert.ok(res.json.access_token);
  assert.notEqual(res.json.access_token, signedIn.access_token);
  if (res.json.id_token) {
    const jwks = jose.createRemoteJWKSet(new URL(world.proxy.url('/jwks.json')));
    const { payload } = await jose.jwtVerify(res.json.id_token, jwks, {
      issuer: world.proxy.issuer,
      audience: direct.clientId,
    });
    assert.equal(payload.sub, TEST_USER.sub);
  }
  // The refreshed refresh token (or the old one, if the provider does not rotate) still works.
  const next = res.json.refresh_token ?? signedIn.refresh_token;
  const again = await postForm(world.proxy.url('/token'), {
    grant_type: 'refresh_token', client_id: direct.clientId, refresh_token: next,
  });
  assert.equal(again.status, 200, again.text);
});

test('a state and nonce too large to seal together are an invalid_request redirect, not a 5xx', async () => {
  const { challenge } = pkce();
  const state = random(5250); // 7000 base64url characters
  const nonce = random(2250); // 3000
  assert.equal(state.length, 7000);
  assert.equal(nonce.length, 3000);
  const url = withQuery(world.proxy.url('/authorize'), {
    response_type: 'code',
    client_id: relayed.clientId,
    redirect_uri: relayed.redirectUri,
    scope: 'openid',
    state,
    nonce,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  });
  const query = new URL(url).search.length;
  assert.ok(query > 8 * 1024 && query < 16 * 1024, `query of ${query} bytes: over the seal limit, under the query limit`);
  const res = await getManual(url);
  assertErrorRedirect(res, {
    redirectUri: relayed.redirectUri, error: 'invalid_request', state, iss: world.proxy.issuer,
  });
});
