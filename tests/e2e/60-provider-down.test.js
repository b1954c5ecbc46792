// The provider goes away between the authorization and the token request:
// the proxy answers 503 temporarily_unavailable, and recovers when it is back.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createWorld } from './lib/world.js';
import { codeFor, exchangePublic, postForm, publicClientDocument } from './lib/oauth.js';
import { assertTokenError } from './lib/assert-oauth.js';

let world;
let app;
before(async () => {
  world = await createWorld('60-provider-down');
  const redirectUri = `${world.docs.origin}/app/callback`;
  app = { redirectUri, clientId: world.docs.addClient('app', (id) => publicClientDocument(id, [redirectUri])) };
});
after(async () => { await world?.close(); });

test('provider down during /token ⇒ 503 temporarily_unavailable, for codes and refresh tokens; then recovery', async (t) => {
  const first = await codeFor(world.proxy, app);
  const tokens = await exchangePublic(world.proxy, { ...app, code: first.code, verifier: first.verifier });
  assert.equal(tokens.status, 200, tokens.text);
  const pending = await codeFor(world.proxy, app);

  await world.provider.stop();
  try {
    assertTokenError(await exchangePublic(world.proxy, { ...app, code: pending.code, verifier: pending.verifier }),
      { status: 503, error: 'temporarily_unavailable' }, t);
    assertTokenError(await postForm(world.proxy.url('/token'), {
      grant_type: 'refresh_token', client_id: app.clientId, refresh_token: tokens.json.refresh_token,
    }), { status: 503, error: 'temporarily_unavailable' }, t);
  } finally {
    await world.provider.start();
  }
  // The code was never spent: once the provider is back, it is exchanged.
  const later = await exchangePublic(world.proxy, { ...app, code: pending.code, verifier: pending.verifier });
  assert.equal(later.status, 200, later.text);
});
