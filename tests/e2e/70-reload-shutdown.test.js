// Operating the proxy: a configuration reload (SIGHUP, or the file changing)
// takes effect without dropping a request in flight, an invalid file is
// refused while the old configuration keeps serving, and SIGTERM lets a slow
// upstream call finish, refuses new connections and exits 0.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { createWorld } from './lib/world.js';
import { authorizeThrough, codeFor, exchangePublic, getManual, pkce, publicClientDocument, withQuery } from './lib/oauth.js';
import { assertErrorPage } from './lib/assert-oauth.js';
import { scrape, metricValue } from './lib/metrics.js';

const RELOADS = 'cimd_proxy_config_reloads_total';
const SLOW_MS = 1500;

let world;
const clients = {};
before(async () => {
  world = await createWorld('70-reload-shutdown', { proxy: {} });
  const add = (name, opts) => {
    const redirectUri = `${world.docs.origin}/${name}/callback`;
    clients[name] = {
      redirectUri,
      path: `/clients/${name}.json`,
      clientId: world.docs.addClient(name, (id) => publicClientDocument(id, [redirectUri]), opts),
    };
  };
  add('slow', { delayMs: SLOW_MS }); // its document host answers late: its first /authorize is in flight a while
  add('target'); // denied by a reload, allowed again by the next
  add('steady'); // never named by a rule
});
after(async () => { await world?.close(); });

/** Polls `check` (sync or async) every 50 ms until it is truthy; fails with `what` after `ms`. */
async function waitFor(check, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) assert.fail(`not within ${ms} ms: ${what}`);
    await sleep(50);
  }
}

const reloads = async (proxy) => {
  const text = await scrape(proxy);
  return { success: metricValue(text, RELOADS, { result: 'success' }), failure: metricValue(text, RELOADS, { result: 'failure' }) };
};

const authorize = (proxy, { clientId, redirectUri }) => getManual(withQuery(proxy.url('/authorize'), {
  response_type: 'code', client_id: clientId, redirect_uri: redirectUri, scope: 'openid',
  state: 'reload-state', code_challenge: pkce().challenge, code_challenge_method: 'S256',
}));

/** A 302 onwards to the provider's authorization endpoint. */
function assertToProvider(res, what) {
  assert.equal(res.status, 302, `${what}: expected a 302 to the provider, got ${res.status} ${res.body?.slice(0, 300)}`);
  assert.equal(new URL(res.location).origin, world.provider.issuer, `${what}: ${res.location}`);
}

/** A whole sign-in and code exchange through `proxy`. */
async function signsIn(proxy, client) {
  const { code, verifier } = await codeFor(proxy, client);
  const tokens = await exchangePublic(proxy, { ...client, code, verifier });
  assert.equal(tokens.status, 200, tokens.text);
  assert.ok(tokens.json.access_token && tokens.json.id_token);
}

test('SIGHUP reload: a deny rule takes effect for new requests while a slow /authorize in flight completes', async () => {
  const proxy = world.proxy;
  const start = await reloads(proxy);
  assertToProvider(await authorize(proxy, clients.target), 'target before the reload');

  const fetchesBefore = world.docs.fetchCount(clients.slow.path);
  let settled = false;
  const inFlight = authorize(proxy, clients.slow).finally(() => { settled = true; });
  await waitFor(() => world.docs.fetchCount(clients.slow.path) > fetchesBefore, 3000, 'the slow document is requested');

  proxy.writeConfig(proxy.configText({ rules: [{ client_id: clients.target.clientId, action: 'deny' }] }));
  proxy.child.kill('SIGHUP');
  await waitFor(async () => (await reloads(proxy)).success > start.success, 3000, 'a successful reload is counted');
  assert.equal(settled, false, `the reload finished while the /authorize was still waiting on the document host (${SLOW_MS} ms)`);

  assertToProvider(await inFlight, 'the /authorize in flight during the reload');
  assertErrorPage(await authorize(proxy, clients.target), 403);
  assertToProvider(await authorize(proxy, clients.slow), 'slow after the reload');
  await signsIn(proxy, clients.steady);

  const end = await reloads(proxy);
  assert.equal(end.success, start.success + 1, 'exactly one successful reload');
  assert.equal(end.failure, start.failure);
  assert.equal(proxy.child.exitCode, null, 'SIGHUP does not stop the proxy');
});

test('a change of the file alone (no signal) is picked up by the poller within 5 s', async (t) => {
  const proxy = world.proxy;
  const start = await reloads(proxy);
  assertErrorPage(await authorize(proxy, clients.target), 403); // still denied by the previous test's reload

  const changed = Date.now();
  proxy.writeConfig(proxy.configText({ rules: [] }));
  await waitFor(async () => (await authorize(proxy, clients.target)).status === 302, 5000, 'the denied client is allowed again');
  t.diagnostic(`picked up after ${Date.now() - changed} ms`);
  await waitFor(async () => (await reloads(proxy)).success === start.success + 1, 1000, 'one successful reload is counted');
  assertToProvider(await authorize(proxy, clients.target), 'target after the file change');
  await signsIn(proxy, clients.target);
});

test('an invalid file is refused on SIGHUP: the process stays up, the old policy serves, failure counted and logged at error', async () => {
  const proxy = world.proxy;
  const start = await reloads(proxy);
  const logLinesBefore = readFileSync(proxy.stderrFile, 'utf8').split('\n').filter(Boolean).length;

  // Would deny both clients, were it valid; `fetch.timeout_ms` must be an integer.
  const valid = proxy.configText({
    rules: [{ client_id: clients.target.clientId, action: 'deny' }, { client_id: clients.steady.clientId, action: 'deny' }],
  });
  const invalid = valid.replace(/^timeout_ms = 2000$/m, 'timeout_ms = "fast"');
  assert.notEqual(invalid, valid, 'the [fetch] timeout_ms line was found');
  proxy.writeConfig(invalid);
  proxy.child.kill('SIGHUP');
  await waitFor(async () => (await reloads(proxy)).failure > start.failure, 3000, 'a failed reload is counted');

  assert.equal(proxy.child.exitCode, null, 'the proxy is still running');
  const health = await fetch(`${proxy.admin}/healthz`);
  assert.equal(health.status, 200);
  assertToProvider(await authorize(proxy, clients.target), 'target under the old policy');
  await signsIn(proxy, clients.steady);
  assert.equal((await reloads(proxy)).success, start.success, 'nothing was swapped in');

  let refusal;
  await waitFor(() => {
    const lines = readFileSync(proxy.stderrFile, 'utf8').split('\n').filter(Boolean).slice(logLinesBefore);
    refusal = lines.map((line) => JSON.parse(line))
      .find((r) => r.level === 'ERROR' && /reload refused/i.test(r.fields?.message ?? ''));
    return refusal;
  }, 2000, 'an error-level "reload refused" line on stderr');
  assert.match(JSON.stringify(refusal.fields), /timeout_ms/, `the line names the problem: ${JSON.stringify(refusal)}`);

  // Fixing the file and signalling again puts it in force.
  proxy.writeConfig(proxy.configText({ rules: [] }));
  proxy.child.kill('SIGHUP');
  await waitFor(async () => (await reloads(proxy)).success === start.success + 1, 3000, 'the fixed file is reloaded');
});

/** 'connected', or the error code of a TCP connection attempt to 127.0.0.1:`port`. */
function tryConnect(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => { socket.destroy(); resolve('connected'); });
    socket.once('error', (e) => resolve(e.code));
  });
}

test('SIGTERM during a slow provider /token call: the call completes (200), new connections are refused, exit 0', async () => {
  // No drain window (72-drain covers it): the stop follows the signal at once.
  const proxy = await world.startProxy({ name: 'proxy-shutdown', publicUrl: world.proxyPublicUrl, server: { drain_s: 0 } });
  const client = clients.steady;
  // The provider sends the browser to the shared public URL's /callback; this instance relays it.
  const run = await authorizeThrough(proxy, { ...client, stopAtCallback: true });
  assert.ok(run.stoppedAt, JSON.stringify(run.hops));
  const relayed = await getManual(proxy.url(`/callback${run.stoppedAt.search}`));
  assert.equal(relayed.status, 302, relayed.body);
  const code = new URL(relayed.location).searchParams.get('code');
  assert.ok(code, relayed.location);

  const tokenCalls = () => world.provider.requests.filter((r) => r.method === 'POST' && r.url.startsWith('/token')).length;
  const callsBefore = tokenCalls();
  world.provider.setTokenDelay(SLOW_MS);
  try {
    let settled = false;
    const pending = exchangePublic(proxy, { ...client, code, verifier: run.verifier }).finally(() => { settled = true; });
    await waitFor(() => tokenCalls() > callsBefore, 3000, 'the proxy called the provider\'s token endpoint');

    const signalled = Date.now();
    proxy.child.kill('SIGTERM');
    // Until the signal is handled an attempt may still connect, or land in the accept queue and be
    // reset when the listener closes (ECONNRESET); then every attempt is refused.
    const attempts = [];
    await waitFor(async () => { attempts.push(await tryConnect(proxy.port)); return attempts.at(-1) === 'ECONNREFUSED'; },
      1000, 'a new connection is refused after SIGTERM');
    assert.ok(attempts.every((a) => ['connected', 'ECONNRESET', 'ECONNREFUSED'].includes(a)), attempts.join());
    assert.equal(settled, false, 'new connections were refused while the /token call was still in flight');

    const answer = await pending;
    assert.equal(answer.status, 200, answer.text);
    assert.ok(answer.json.access_token && answer.json.id_token && answer.json.refresh_token, answer.text);
    assert.equal(answer.json.token_type?.toLowerCase(), 'bearer');

    const exit = await Promise.race([proxy.exited, sleep(10_000, 'still running', { ref: false })]);
    assert.deepEqual(exit, { code: 0, signal: null }, 'exit code 0 well within the 20 s grace period');
    const took = Date.now() - signalled;
    assert.ok(took < 10_000, `exited ${took} ms after SIGTERM`);
  } finally {
    world.provider.setTokenDelay(0);
  }
});
