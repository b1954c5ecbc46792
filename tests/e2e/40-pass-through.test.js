// A pre-registered client (client_id not a URL) goes through the proxy
// untouched: /authorize forwards its query as is, the provider redirects to
// the client directly, and /token forwards body and Authorization header.
// One the operator lists in [[upstream.relayed_clients]] is relayed like a
// CIMD client instead: openid-client, which checks RFC 9207 `iss` against
// the issuer it discovered (the proxy), signs in, public and confidential,
// and so does the MCP Python SDK (its client_id pre-registered).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as client from 'openid-client';
import * as jose from 'jose';
import { createWorld, LEGACY_CLIENT_ID, LEGACY_SECRET } from './lib/world.js';
import { Browser } from './lib/browser.js';
import { pkce, random, postForm, basic, decodeJwt } from './lib/oauth.js';
import { rpConfig, signIn } from './lib/rp.js';
import { TEST_USER } from './lib/provider.js';
import { freePort } from './lib/net.js';
import { startResource, introspectionClient, introspectionVerifier } from './lib/resource.js';
import { runPythonClient, assertAllAccepted } from './lib/mcp-clients.js';

// Registered at the provider under their own client_ids, with the proxy's
// /callback as their redirect URI; their own (loopback) redirect URIs are
// listed in the proxy's configuration.
const RELAYED_PUBLIC = 'relayed-cli';
const RELAYED_CONFIDENTIAL = 'relayed-desktop';
const RELAYED_SECRET = 'relayed-desktop-secret-for-tests';
const RELAYED_REDIRECT = 'http://127.0.0.1/relayed/callback';
// The MCP Python SDK as a pre-registered public client, and the resource it calls.
const RELAYED_MCP = 'relayed-mcp-python';
const RELAYED_MCP_REDIRECT = 'http://127.0.0.1/relayed-mcp/callback';
const RESOURCE_CLIENT = 'mcp-resource';
const RESOURCE_SECRET = random();

const registered = (clientId, auth) => (w) => ({
  client_id: clientId,
  ...auth,
  redirect_uris: [`${w.proxyPublicUrl}/callback`],
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  scope: 'openid profile email offline_access',
});

let world;
before(async () => {
  world = await createWorld('40-pass-through', {
    providerClients: (w) => [
      registered(RELAYED_PUBLIC, { token_endpoint_auth_method: 'none' })(w),
      registered(RELAYED_CONFIDENTIAL, { client_secret: RELAYED_SECRET, token_endpoint_auth_method: 'client_secret_basic' })(w),
      registered(RELAYED_MCP, { token_endpoint_auth_method: 'none' })(w),
      introspectionClient(RESOURCE_CLIENT, RESOURCE_SECRET),
    ],
    proxy: {
      extraToml: [
        '[[upstream.relayed_clients]]',
        `client_id = "${RELAYED_PUBLIC}"`,
        'auth_method = "none"',
        `redirect_uris = ["${RELAYED_REDIRECT}"]`,
        '',
        '[[upstream.relayed_clients]]',
        `client_id = "${RELAYED_CONFIDENTIAL}"`,
        'auth_method = "client_secret_basic"',
        `redirect_uris = ["${RELAYED_REDIRECT}"]`,
        '',
        '[[upstream.relayed_clients]]',
        `client_id = "${RELAYED_MCP}"`,
        `redirect_uris = ["${RELAYED_MCP_REDIRECT}"]`,
      ].join('\n'),
    },
  });
});
after(async () => { await world?.close(); });

test('legacy-app authorizes and exchanges its code through the proxy untouched', async () => {
  const { verifier, challenge } = pkce();
  const state = random();
  const nonce = random();
  const query = new URLSearchParams({
    response_type: 'code',
    client_id: LEGACY_CLIENT_ID,
    redirect_uri: world.legacyRedirectUri,
    scope: 'openid profile email offline_access',
    state,
    nonce,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  }).toString();

  const browser = new Browser();
  const { response, hop } = await browser.request(world.proxy.url(`/authorize?${query}`));
  await response.arrayBuffer();
  assert.equal(hop.status, 302);
  assert.equal(hop.location, `${world.provider.url('/auth')}?${query}`, 'the query is forwarded byte for byte');

  const target = new URL(world.legacyRedirectUri);
  const { stoppedAt, hops } = await browser.follow(hop.location, {
    stop: (u) => u.origin === target.origin && u.pathname === target.pathname,
  });
  assert.ok(stoppedAt, JSON.stringify(hops, null, 1));
  assert.ok(!hops.some((h) => h.url.startsWith(`${world.proxy.base}/callback`)), 'the proxy is not in the return path');
  assert.equal(stoppedAt.searchParams.get('state'), state);
  assert.equal(stoppedAt.searchParams.get('iss'), world.provider.issuer, 'the provider\'s own response');
  const code = stoppedAt.searchParams.get('code');

  const answer = await postForm(world.proxy.url('/token'), {
    grant_type: 'authorization_code',
    code,
    redirect_uri: world.legacyRedirectUri,
    code_verifier: verifier,
  }, { headers: { authorization: basic(LEGACY_CLIENT_ID, LEGACY_SECRET) } });
  assert.equal(answer.status, 200, answer.text);
  assert.ok(answer.json.access_token);
  assert.ok(answer.json.refresh_token);
  const { payload } = decodeJwt(answer.json.id_token);
  assert.equal(payload.iss, world.provider.issuer, 'the provider\'s id_token, not re-issued');
  assert.equal(payload.aud, LEGACY_CLIENT_ID);
  assert.equal(payload.nonce, nonce);
  assert.equal(payload.sub, TEST_USER.sub);

  // The provider's refresh token works through the proxy as well.
  const refreshed = await postForm(world.proxy.url('/token'), {
    grant_type: 'refresh_token',
    refresh_token: answer.json.refresh_token,
  }, { headers: { authorization: basic(LEGACY_CLIENT_ID, LEGACY_SECRET) } });
  assert.equal(refreshed.status, 200, refreshed.text);
  assert.ok(refreshed.json.access_token);

  // And the provider's errors come back as the provider said them.
  const wrongSecret = await postForm(world.proxy.url('/token'), {
    grant_type: 'refresh_token',
    refresh_token: answer.json.refresh_token,
  }, { headers: { authorization: basic(LEGACY_CLIENT_ID, 'not-the-secret') } });
  assert.equal(wrongSecret.status, 401);
  assert.equal(wrongSecret.json.error, 'invalid_client');
});

/** The hops of a relayed sign-in: to the provider as the client itself, back through the proxy. */
function assertRelayedThroughProxy(hops, clientId) {
  const upstream = new URL(hops[0].location);
  assert.equal(`${upstream.origin}${upstream.pathname}`, world.provider.url('/auth'));
  assert.equal(upstream.searchParams.get('client_id'), clientId, 'the provider sees the client itself');
  assert.equal(upstream.searchParams.get('redirect_uri'), `${world.proxy.issuer}/callback`);
  const callbackHop = hops.find((h) => h.url.startsWith(`${world.proxy.base}/callback`));
  assert.ok(callbackHop, 'the provider returned to the proxy /callback');
  const toClient = new URL(callbackHop.location);
  assert.equal(toClient.searchParams.get('iss'), world.proxy.issuer, 'RFC 9207: the proxy names itself');
}

async function assertProxyIdToken(idToken, clientId, nonce) {
  const jwks = jose.createRemoteJWKSet(new URL(world.proxy.url('/jwks.json')));
  const { payload } = await jose.jwtVerify(idToken, jwks, { issuer: world.proxy.issuer, audience: clientId });
  if (nonce !== undefined) assert.equal(payload.nonce, nonce);
  assert.equal(payload.sub, TEST_USER.sub);
}

test('a relayed public client (openid-client, iss checked) signs in and refreshes with the proxy\'s tokens', async () => {
  const config = await rpConfig(world.proxy, RELAYED_PUBLIC, client.None());
  assert.equal(config.serverMetadata().authorization_response_iss_parameter_supported, true);
  // openid-client refuses a callback whose iss is not the discovered issuer's.
  const run = await signIn(config, { redirectUri: 'http://127.0.0.1:53682/relayed/callback' });
  assertRelayedThroughProxy(run.hops, RELAYED_PUBLIC);
  assert.equal(run.tokens.claims().iss, world.proxy.issuer);
  assert.equal(run.tokens.claims().aud, RELAYED_PUBLIC);
  await assertProxyIdToken(run.tokens.id_token, RELAYED_PUBLIC, run.nonce);
  assert.ok(run.tokens.refresh_token, 'offline_access gives a refresh token');

  const first = await client.refreshTokenGrant(config, run.tokens.refresh_token);
  assert.ok(first.access_token);
  assert.notEqual(first.refresh_token, run.tokens.refresh_token, 'the proxy rotates its sealed refresh token');
  await assertProxyIdToken(first.id_token, RELAYED_PUBLIC);
  const second = await client.refreshTokenGrant(config, first.refresh_token);
  assert.ok(second.access_token);
  // The rotated-out token is a reuse: refused, and its family revoked.
  await assert.rejects(client.refreshTokenGrant(config, first.refresh_token), (e) => e.error === 'invalid_grant');
});

test('a relayed confidential client signs in with its own secret, checked by the provider', async () => {
  const config = await rpConfig(world.proxy, RELAYED_CONFIDENTIAL, client.ClientSecretBasic(RELAYED_SECRET));
  const run = await signIn(config, { redirectUri: RELAYED_REDIRECT.replace('127.0.0.1', '127.0.0.1:40123') });
  assertRelayedThroughProxy(run.hops, RELAYED_CONFIDENTIAL);
  await assertProxyIdToken(run.tokens.id_token, RELAYED_CONFIDENTIAL, run.nonce);
  const refreshed = await client.refreshTokenGrant(config, run.tokens.refresh_token);
  await assertProxyIdToken(refreshed.id_token, RELAYED_CONFIDENTIAL);

  // The wrong secret: the provider refuses it, and the client hears so.
  const wrong = await postForm(world.proxy.url('/token'), {
    grant_type: 'refresh_token',
    refresh_token: refreshed.refresh_token,
  }, { headers: { authorization: basic(RELAYED_CONFIDENTIAL, 'not-the-secret') } });
  assert.equal(wrong.status, 401, wrong.text);
  assert.equal(wrong.json.error, 'invalid_client');

  // A redirect_uri the configuration does not list: an error page, no redirect.
  const { challenge } = pkce();
  const query = new URLSearchParams({
    response_type: 'code', client_id: RELAYED_CONFIDENTIAL, redirect_uri: 'https://elsewhere.test/cb',
    scope: 'openid', state: random(), code_challenge: challenge, code_challenge_method: 'S256',
  });
  const { response, hop } = await new Browser().request(world.proxy.url(`/authorize?${query}`));
  await response.arrayBuffer();
  assert.equal(hop.status, 400);
  assert.equal(hop.location, null);
});

test('the MCP Python SDK as a relayed pre-registered client: sign-in (iss checked), two refreshes, the resource accepts each token', async () => {
  const resource = await startResource({
    authorizationServer: world.proxy.issuer,
    verify: introspectionVerifier(world.provider, RESOURCE_CLIENT, RESOURCE_SECRET),
    scopesSupported: ['openid', 'mcp:tools'],
  });
  try {
    const redirectUri = RELAYED_MCP_REDIRECT.replace('127.0.0.1', `127.0.0.1:${await freePort()}`);
    // The SDK's callback handler refuses an authorization response whose iss is not the proxy's.
    const summary = await runPythonClient({ server_url: resource.url, client_id: RELAYED_MCP, redirect_uri: redirectUri, refreshes: 2 });
    assert.equal(summary.client_id, RELAYED_MCP);
    assert.deepEqual(summary.authorization_requests.map((r) => [r.endpoint, r.client_id]), [[`${world.proxy.issuer}/authorize`, RELAYED_MCP]]);
    const tokenEndpoint = `${world.proxy.issuer}/token`;
    assert.deepEqual(summary.token_requests.map((r) => [r.url, r.grant_type, r.client_id]), [
      [tokenEndpoint, 'authorization_code', RELAYED_MCP],
      [tokenEndpoint, 'refresh_token', RELAYED_MCP],
      [tokenEndpoint, 'refresh_token', RELAYED_MCP],
    ]);
    assert.equal(new Set(summary.saved_tokens.map((t) => t.refresh_token)).size, 3, 'the proxy rotated its sealed refresh token each time');
    assert.equal(summary.calls.length, 3);
    for (const call of summary.calls) {
      assert.equal(call.sub, TEST_USER.sub);
      assert.equal(call.aud, resource.url);
    }
    assertAllAccepted(resource, summary.saved_tokens.map((t) => t.access_token), resource.url);
  } finally {
    await resource.close();
  }
});
