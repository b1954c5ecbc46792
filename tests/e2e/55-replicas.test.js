// No database: any replica with the same seal keys opens what another sealed.
// Key rotation keeps sign-ins in progress working, and a replica whose policy
// now denies a client refuses that client's refresh token.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createWorld } from './lib/world.js';
import { newSealKey } from './lib/proxy.js';
import { authorizeThrough, codeFor, exchangePublic, getManual, postForm, publicClientDocument } from './lib/oauth.js';
import { assertTokenError } from './lib/assert-oauth.js';

let world;
const clients = {};
before(async () => {
  world = await createWorld('55-replicas');
  for (const name of ['victim', 'bystander']) {
    const redirectUri = `${world.docs.origin}/${name}/callback`;
    clients[name] = { redirectUri, clientId: world.docs.addClient(name, (id) => publicClientDocument(id, [redirectUri])) };
  }
});
after(async () => { await world?.close(); });

async function refreshTokenOf(client) {
  const run = await codeFor(world.proxy, client);
  const tokens = await exchangePublic(world.proxy, { ...client, code: run.code, verifier: run.verifier });
  assert.equal(tokens.status, 200, tokens.text);
  assert.ok(tokens.json.refresh_token);
  return tokens.json.refresh_token;
}

test('a replica whose policy denies a client_id refuses its refresh token (invalid_client); others still refresh there', async (t) => {
  const victimToken = await refreshTokenOf(clients.victim);
  const bystanderToken = await refreshTokenOf(clients.bystander);
  const replica = await world.startProxy({
    name: 'replica-deny',
    publicUrl: world.proxy.publicUrl,
    rules: [{ client_id: clients.victim.clientId, action: 'deny' }],
  });
  const refused = await postForm(replica.url('/token'), {
    grant_type: 'refresh_token', client_id: clients.victim.clientId, refresh_token: victimToken,
  });
  assertTokenError(refused, { status: 401, error: 'invalid_client' }, t);

  const control = await postForm(replica.url('/token'), {
    grant_type: 'refresh_token', client_id: clients.bystander.clientId, refresh_token: bystanderToken,
  });
  assert.equal(control.status, 200, `the replica opens what the first instance sealed: ${control.text}`);
  assert.ok(control.json.access_token);
});

test('key rotation: a replica with [new, old] keys finishes a sign-in begun under [old]; its new-key code opens only where the new key is', async (t) => {
  const rotated = await world.startProxy({
    name: 'replica-rotated',
    publicUrl: world.proxy.publicUrl,
    sealKeys: [newSealKey(), ...world.sealKeys],
  });
  // /authorize at the old-key instance, /callback at the rotated one.
  const run = await authorizeThrough(world.proxy, { ...clients.bystander, stopAtCallback: true });
  const relayed = await getManual(rotated.url(`/callback${run.stoppedAt.search}`));
  assert.equal(relayed.status, 302, relayed.body);
  const code = new URL(relayed.location).searchParams.get('code');
  assert.ok(code);
  // The code is sealed under the new key: the old-only instance cannot open it, the rotated one can.
  assertTokenError(await exchangePublic(world.proxy, { ...clients.bystander, code, verifier: run.verifier }),
    { status: 400, error: 'invalid_grant' }, t);
  const tokens = await exchangePublic(rotated, { ...clients.bystander, code, verifier: run.verifier });
  assert.equal(tokens.status, 200, tokens.text);
});
