// A pre-registered client (client_id not a URL) goes through the proxy
// untouched: /authorize forwards its query as is, the provider redirects to
// the client directly, and /token forwards body and Authorization header.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createWorld, LEGACY_CLIENT_ID, LEGACY_SECRET } from './lib/world.js';
import { Browser } from './lib/browser.js';
import { pkce, random, postForm, basic, decodeJwt } from './lib/oauth.js';
import { TEST_USER } from './lib/provider.js';

let world;
before(async () => { world = await createWorld('40-pass-through'); });
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
