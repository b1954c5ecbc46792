// Proves the test world without the proxy: the document host answers over
// TLS with the test CA, and openid-client completes a code flow (auto sign-in,
// PKCE, refresh) straight against oidc-provider with the pre-registered legacy-app.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import * as client from 'openid-client';
import { createWorld, LEGACY_CLIENT_ID, LEGACY_SECRET } from './lib/world.js';
import { Browser } from './lib/browser.js';
import { TEST_USER } from './lib/provider.js';

let world;
before(async () => { world = await createWorld('00-world-smoke', { proxy: false }); });
after(async () => { await world?.close(); });

function httpsGet(url, ca) {
  return new Promise((resolve, reject) => {
    https.get(url, { ca }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    }).on('error', reject);
  });
}

test('document host serves JSON over TLS for IP 127.0.0.2, trusted only through the test CA', async () => {
  const clientId = world.docs.addClient('smoke', (id) => ({ client_id: id, redirect_uris: ['http://127.0.0.1/cb'] }));
  assert.match(clientId, /^https:\/\/127\.0\.0\.2:\d+\/clients\/smoke\.json$/);
  const res = await httpsGet(clientId, readFileSync(world.caFile));
  assert.equal(res.status, 200);
  assert.equal(res.headers['content-type'], 'application/json');
  assert.deepEqual(JSON.parse(res.body), { client_id: clientId, redirect_uris: ['http://127.0.0.1/cb'] });
  await assert.rejects(httpsGet(clientId, undefined), (e) => /self|certificate|issuer/i.test(e.message));
});

test('openid-client completes code + PKCE + refresh against oidc-provider directly (legacy-app)', async () => {
  const issuer = new URL(world.provider.issuer);
  const config = await client.discovery(issuer, LEGACY_CLIENT_ID, LEGACY_SECRET, client.ClientSecretBasic(LEGACY_SECRET), {
    execute: [client.allowInsecureRequests],
  });
  assert.equal(config.serverMetadata().issuer, world.provider.issuer);
  assert.equal(config.serverMetadata().registration_endpoint, undefined);

  const verifier = client.randomPKCECodeVerifier();
  const nonce = client.randomNonce();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: world.legacyRedirectUri,
    scope: 'openid profile email offline_access',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  });
  const target = new URL(world.legacyRedirectUri);
  const { stoppedAt, hops } = await new Browser().follow(url.href, {
    stop: (u) => u.origin === target.origin && u.pathname === target.pathname,
  });
  assert.ok(stoppedAt, `never reached the redirect_uri: ${JSON.stringify(hops)}`);
  assert.ok(hops.some((h) => h.url.includes('/interaction/')), 'went through the auto interaction');

  const tokens = await client.authorizationCodeGrant(config, stoppedAt, {
    pkceCodeVerifier: verifier, expectedNonce: nonce, expectedState: state, idTokenExpected: true,
  });
  const claims = tokens.claims();
  assert.equal(claims.iss, world.provider.issuer);
  assert.equal(claims.aud, LEGACY_CLIENT_ID);
  assert.equal(claims.sub, TEST_USER.sub);
  assert.equal(claims.nonce, nonce);
  assert.ok(tokens.refresh_token, 'a refresh token is issued');
  // oidc-provider leaves offline_access out of the access token's scope; it shows as the refresh token.
  assert.equal(tokens.scope, 'openid profile email');

  const info = await client.fetchUserInfo(config, tokens.access_token, TEST_USER.sub);
  assert.equal(info.email, TEST_USER.email);
  assert.equal(info.name, TEST_USER.name);

  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  assert.ok(refreshed.access_token);
  assert.equal(refreshed.claims().sub, TEST_USER.sub);
});

test('the provider refuses an authorization without PKCE and can be stopped and restarted', async () => {
  const url = new URL(world.provider.url('/auth'));
  url.search = new URLSearchParams({
    client_id: LEGACY_CLIENT_ID, response_type: 'code', scope: 'openid',
    redirect_uri: world.legacyRedirectUri, state: 'x',
  });
  const res = await fetch(url, { redirect: 'manual' });
  const location = new URL(res.headers.get('location'));
  assert.equal(location.searchParams.get('error'), 'invalid_request');
  assert.match(location.searchParams.get('error_description'), /PKCE/);

  await world.provider.stop();
  await assert.rejects(fetch(world.provider.url('/.well-known/openid-configuration')));
  await world.provider.start();
  assert.equal((await fetch(world.provider.url('/.well-known/openid-configuration'))).status, 200);
});
