// cache.stale_if_error_s: an expired document whose host is down (HTTP 5xx,
// then no connection at all) still signs its users in for the window, and
// not after it; a document that is removed (404, 410) or made invalid is
// never served stale, even if its host fails right after.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { createWorld } from './lib/world.js';
import { codeFor, exchangePublic, getManual, pkce, publicClientDocument, withQuery } from './lib/oauth.js';
import { assertErrorPage } from './lib/assert-oauth.js';
import { scrape, metricValue } from './lib/metrics.js';

const TTL_S = 1;
const STALE_S = 4;
const STALE = 'cimd_proxy_stale_documents_served_total';

let world;
const clients = {};
before(async () => {
  world = await createWorld('74-stale-if-error', {
    proxy: { cache: { min_ttl_s: TTL_S, default_ttl_s: TTL_S, stale_if_error_s: STALE_S } },
  });
  for (const name of ['outage', 'removed', 'gone', 'broken', 'unreachable']) {
    const redirectUri = `${world.docs.origin}/${name}/callback`;
    const build = (id) => publicClientDocument(id, [redirectUri]);
    const clientId = world.docs.addClient(name, build, { cacheControl: `max-age=${TTL_S}` });
    clients[name] = { name, redirectUri, clientId, build, path: `/clients/${name}.json` };
  }
});
after(async () => { await world?.close(); });

/** Replaces what the document host answers for `client`. */
function answer(client, opts, body = client.build(client.clientId)) {
  world.docs.serve(client.path, body, { cacheControl: `max-age=${TTL_S}`, ...opts });
}

/** A whole sign-in and code exchange; returns when the tokens came. */
async function signsIn(client) {
  const { code, verifier } = await codeFor(world.proxy, client);
  const tokens = await exchangePublic(world.proxy, { ...client, code, verifier });
  assert.equal(tokens.status, 200, tokens.text);
  assert.ok(tokens.json.id_token);
}

const authorize = (client) => getManual(withQuery(world.proxy.url('/authorize'), {
  response_type: 'code', client_id: client.clientId, redirect_uri: client.redirectUri, scope: 'openid',
  state: 'stale', code_challenge: pkce().challenge, code_challenge_method: 'S256',
}));

const staleServed = async () => metricValue(await scrape(world.proxy), STALE, { reason: 'http_status' })
  + metricValue(await scrape(world.proxy), STALE, { reason: 'connect_failure' });

test('an expired document whose host answers 503 signs users in within the window, and not after it', async () => {
  const client = clients.outage;
  await signsIn(client);
  const served = await staleServed();
  answer(client, { status: 503 }, 'maintenance');
  await sleep(TTL_S * 1000 + 200);
  const expiredAt = Date.now();

  await signsIn(client);
  assert.ok(await staleServed() > served, 'the stale use is counted');
  const audit = readFileSync(world.proxy.stderrFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l))
    .find((r) => r.target === 'audit' && r.fields?.event === 'stale_document' && r.fields.client_id === client.clientId);
  assert.ok(audit, 'an audit line marks the stale document');
  assert.equal(audit.fields.reason, 'http_status');

  // Past the window (counted from expiry) the outage is the answer.
  await sleep(Math.max(0, expiredAt + STALE_S * 1000 + 300 - Date.now()));
  assertErrorPage(await authorize(client), 400);

  // Back up: the fresh document is used at once.
  answer(client, {});
  await signsIn(client);
});

for (const [name, status] of [['removed', 404], ['gone', 410]]) {
  test(`a document whose host answers ${status} is dropped at once, and not revived by an outage right after`, async () => {
    const client = clients[name];
    await signsIn(client);
    answer(client, { status }, 'no such client');
    await sleep(TTL_S * 1000 + 200);
    assertErrorPage(await authorize(client), 400);
    answer(client, { status: 503 }, 'maintenance');
    assertErrorPage(await authorize(client), 400);
  });
}

test('a document changed into an invalid one is never served stale', async () => {
  const client = clients.broken;
  await signsIn(client);
  answer(client, {}, { ...client.build(client.clientId), redirect_uris: 'not a list' });
  await sleep(TTL_S * 1000 + 200);
  const refused = await authorize(client);
  assert.ok(refused.status >= 400 && refused.status < 600 && refused.location === null, `${refused.status} ${refused.location}`);
  answer(client, { status: 503 }, 'maintenance');
  assertErrorPage(await authorize(client), 400);
});

test('with the document host unreachable altogether, the expired document still signs users in', async () => {
  const client = clients.unreachable;
  await signsIn(client);
  await world.docs.close(); // connection refused from now on
  await sleep(TTL_S * 1000 + 200);
  await signsIn(client);
});
