// The operator's view of clients against the real binary and provider: the inventory filling from
// real sign-ins (and a pre-registered client passed through), the new-client warning on the
// consent page until two distinct people have signed in (the provider's sub, counted once each),
// refresh and invalidate observed at the document host (one new fetch each, the jwks_uri's key set
// refetched with the document), the token those need, and the admin page in headless Chromium.
// Screenshots land in test-artifacts/e2e/69-inventory/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { createWorld, LEGACY_CLIENT_ID } from './lib/world.js';
import { Browser } from './lib/browser.js';
import { launchChromium, watch } from './lib/chromium.js';
import { exchangePublic, pkce, publicClientDocument, random, withQuery } from './lib/oauth.js';
import { freePort } from './lib/net.js';

const NAME = '69-inventory';
const TOKEN = 'e2e-admin-token-0123456789abcdef';

let world;
let browser;
let redirectUri;
const clients = {};

before(async () => {
  world = await createWorld(NAME, {
    proxy: {
      defaultAction: 'allow',
      newClientWarning: { until_users: 2, until_days: 7 },
      extraToml: '[admin]\ntoken_env = "CIMD_PROXY_ADMIN_TOKEN"',
      env: { CIMD_PROXY_ADMIN_TOKEN: TOKEN },
    },
  });
  const { docs } = world;
  redirectUri = `http://127.0.0.1:${await freePort()}/cb`;
  clients.app = docs.addClient('app', (id) => publicClientDocument(id, [redirectUri], { client_name: 'Inventory Example' }));
  const jwksPath = '/jwks/keyed.json';
  // A set with one EC public key: enough for the proxy to read and count it.
  docs.serve(jwksPath, {
    keys: [{
      kty: 'EC', crv: 'P-256', kid: 'k1', use: 'sig', alg: 'ES256',
      x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0',
    }],
  });
  clients.keyed = docs.addClient('keyed', (id) => publicClientDocument(id, [redirectUri], {
    client_name: 'Keyed Example',
    token_endpoint_auth_method: 'private_key_jwt',
    jwks_uri: `${docs.origin}${jwksPath}`,
  }));
  clients.keyedJwksPath = jwksPath;
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await world?.close();
});

const shot = (file) => path.join(world.artifacts, file);
const adminUrl = (p) => `${world.proxy.admin}${p}`;
const entryPath = (clientId) => `/clients/${encodeURIComponent(clientId)}`;

async function admin(method, p, { token } = {}) {
  const res = await fetch(adminUrl(p), {
    method,
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, json, text };
}

/** The client's entry once `ready(entry)` holds: sightings are written in a task of their own. */
async function entryWhen(clientId, ready = () => true) {
  let last;
  for (let i = 0; i < 100; i += 1) {
    last = await admin('GET', entryPath(clientId));
    if (last.status === 200 && ready(last.json)) return last.json;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail(`the inventory never showed ${clientId} as expected; last answer: ${last.status} ${last.text}`);
}

/**
 * A sign-in as `user` (the provider's login_hint account), through the consent page when one is
 * shown, and the code exchanged. Returns the new-client warning the page carried, if any.
 */
async function signIn(clientId, user) {
  const { verifier, challenge } = pkce();
  const url = withQuery(world.proxy.url('/authorize'), {
    response_type: 'code',
    client_id: clientId,
    redirect_uri: redirectUri,
    scope: 'openid',
    state: random(),
    nonce: random(),
    code_challenge: challenge,
    code_challenge_method: 'S256',
    login_hint: user,
  });
  const b = new Browser();
  const stop = (u) => u.href.startsWith(redirectUri);
  let run = await b.follow(url, { stop });
  let warning = null;
  let consentPage = false;
  if (run.final) {
    assert.equal(run.final.status, 200, `expected the consent page: ${run.final.body.slice(0, 500)}`);
    consentPage = true;
    warning = /New to your organisation: ([^<]*)</.exec(run.final.body)?.[1] ?? null;
    const token = /name="consent" value="([^"]+)"/.exec(run.final.body)?.[1];
    assert.ok(token, 'the consent form carries its token');
    run = await b.follow(world.proxy.url('/consent'), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ consent: token, decision: 'continue' }).toString(),
      stop,
    });
  }
  const code = run.stoppedAt?.searchParams.get('code');
  assert.ok(code, `no code: ${JSON.stringify(run.hops, null, 1)}`);
  const exchanged = await exchangePublic(world.proxy, { clientId, code, redirectUri, verifier });
  assert.equal(exchanged.status, 200, JSON.stringify(exchanged.json));
  return { warning, consentPage };
}

test('the inventory fills from real sign-ins; the new-client warning holds until two people signed in', async () => {
  const first = await signIn(clients.app, 'test-user-1');
  assert.equal(first.consentPage, true, 'an allowed client that is new shows the consent page');
  assert.equal(first.warning, '0 people have used it.');
  let entry = await entryWhen(clients.app, (e) => e.completed === 1);
  assert.equal(entry.kind, 'cimd');
  assert.equal(entry.host, '127.0.0.2');
  assert.equal(entry.client_name, 'Inventory Example');
  assert.equal(entry.last_decision, 'allow');
  assert.equal(entry.last_rule, 'policy.default_action');
  assert.equal(entry.upstream_client, 'main');
  assert.deepEqual(entry.redirect_hosts, ['127.0.0.1']);
  assert.equal(entry.auth_method, 'none');
  assert.ok(entry.cache?.fetched_at > 0, JSON.stringify(entry));
  assert.doesNotMatch(JSON.stringify(entry), /test-user/, 'no user identity is kept');

  // The same person again is still one person.
  const again = await signIn(clients.app, 'test-user-1');
  assert.equal(again.warning, '1 person has used it.');
  const second = await signIn(clients.app, 'test-user-2');
  assert.equal(second.warning, '1 person has used it.');
  entry = await entryWhen(clients.app, (e) => e.completed === 3);
  assert.equal(entry.started, 3);
  // Two people have completed a sign-in: no warning, and an allow goes straight to the provider.
  let after;
  for (let i = 0; i < 50; i += 1) {
    after = await signIn(clients.app, 'test-user-3');
    if (!after.consentPage) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(after.consentPage, false, 'the warning went away after two people');

  // A pre-registered client passed through is listed too.
  const legacy = await fetch(withQuery(world.proxy.url('/authorize'), {
    client_id: LEGACY_CLIENT_ID, response_type: 'code', redirect_uri: world.legacyRedirectUri,
  }), { redirect: 'manual' });
  await legacy.arrayBuffer();
  const passed = await entryWhen(LEGACY_CLIENT_ID);
  assert.equal(passed.kind, 'pre_registered');
  assert.equal(passed.last_decision, 'pass_through');

  const list = await admin('GET', '/clients?decision=allow');
  assert.equal(list.status, 200);
  assert.equal(list.json.shared, false);
  assert.deepEqual(list.json.clients.map((c) => c.client_id), [clients.app]);
});

test('refresh and invalidate need the token and cost one fetch each at the document host', async () => {
  const docPath = new URL(clients.keyed).pathname;
  const fetches = () => world.docs.fetchCount(docPath);
  const keyFetches = () => world.docs.fetchCount(clients.keyedJwksPath);
  const page = await fetch(withQuery(world.proxy.url('/authorize'), {
    response_type: 'code', client_id: clients.keyed, redirect_uri: redirectUri, scope: 'openid',
    code_challenge: pkce().challenge, code_challenge_method: 'S256', state: random(),
  }), { redirect: 'manual' });
  await page.arrayBuffer();
  await entryWhen(clients.keyed);
  assert.equal(fetches(), 1);
  const refresh = `${entryPath(clients.keyed)}/refresh`;
  const invalidate = `${entryPath(clients.keyed)}/invalidate`;

  for (const token of [undefined, 'not-the-admin-token-at-all']) {
    const refused = await admin('POST', refresh, { token });
    assert.equal(refused.status, 401, refused.text);
    assert.equal(refused.json.error, 'unauthorized');
  }
  assert.equal(fetches(), 1, 'a refused refresh fetches nothing');

  const keysBefore = keyFetches();
  const refreshed = await admin('POST', refresh, { token: TOKEN });
  assert.equal(refreshed.status, 200, refreshed.text);
  assert.equal(refreshed.json.document.ok, true);
  assert.equal(refreshed.json.jwks.ok, true, JSON.stringify(refreshed.json.jwks));
  assert.equal(refreshed.json.jwks.detail, '1 usable keys');
  assert.equal(fetches(), 2, 'one new fetch of the document');
  assert.equal(keyFetches(), keysBefore + 1, 'one fetch of its jwks_uri');

  const dropped = await admin('POST', invalidate, { token: TOKEN });
  assert.equal(dropped.status, 200, dropped.text);
  assert.equal(dropped.json.document_was_cached, true);
  assert.equal(fetches(), 2, 'invalidating fetches nothing');
  const next = await fetch(withQuery(world.proxy.url('/authorize'), {
    response_type: 'code', client_id: clients.keyed, redirect_uri: redirectUri, scope: 'openid',
    code_challenge: pkce().challenge, code_challenge_method: 'S256', state: random(),
  }), { redirect: 'manual' });
  await next.arrayBuffer();
  assert.equal(fetches(), 3, 'the next request fetches it again, once');

  const metrics = await (await fetch(adminUrl('/metrics'))).text();
  assert.match(metrics, /cimd_proxy_admin_actions_total\{kind="refresh",result="ok"\} 1/);
  assert.match(metrics, /cimd_proxy_admin_actions_total\{kind="refresh",result="unauthorized"\} 2/);
  assert.doesNotMatch(metrics, /127\.0\.0\.2/, 'no client_id or host in a label');
});

test('the admin page in Chromium: the table, a client, and a refresh through its form', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const log = watch(context);
  const page = await context.newPage();
  await page.goto(adminUrl('/'));
  await page.screenshot({ path: shot('admin-clients.png'), fullPage: true });
  const rows = page.locator('table.clients tbody tr');
  assert.ok(await rows.count() >= 3, 'app, keyed and legacy-app are listed');
  assert.equal(await page.locator('.note').first().textContent().then((t) => /own inventory/.test(t)), true);
  // Decisions in colour: the class comes from a closed set.
  assert.ok(await page.locator('.decision.d-allow').count() >= 1);
  assert.ok(await page.locator('.decision.d-pass_through').count() >= 1);

  await page.locator('table.clients a', { hasText: '127.0.0.2' }).first().waitFor();
  await page.goto(adminUrl(`/client?id=${encodeURIComponent(clients.keyed)}`));
  assert.equal(await page.locator('h1').textContent(), '127.0.0.2');
  await page.screenshot({ path: shot('admin-client.png'), fullPage: true });

  const before = world.docs.fetchCount(new URL(clients.keyed).pathname);
  await page.fill('input[name="token"]', 'a-wrong-token-for-the-page');
  await Promise.all([page.waitForLoadState('load'), page.click('button[value="refresh"]')]);
  assert.match(await page.locator('.error').textContent(), /a valid admin token is required/);
  await page.screenshot({ path: shot('admin-client-wrong-token.png'), fullPage: true });
  assert.equal(world.docs.fetchCount(new URL(clients.keyed).pathname), before);

  await page.fill('input[name="token"]', TOKEN);
  await Promise.all([page.waitForURL(/done=refresh/), page.click('button[value="refresh"]')]);
  assert.match(await page.locator('[role="status"]').textContent(), /Refreshed/);
  assert.equal(world.docs.fetchCount(new URL(clients.keyed).pathname), before + 1);
  await page.screenshot({ path: shot('admin-client-refreshed.png'), fullPage: true });

  await page.setViewportSize({ width: 375, height: 667 });
  await page.goto(adminUrl('/'));
  await page.screenshot({ path: shot('admin-clients-phone.png'), fullPage: true });
  assert.deepEqual(log.cspViolations(), [], 'the page needs nothing its CSP refuses');
  await context.close();
});
