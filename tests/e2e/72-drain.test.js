// SIGTERM under keep-alive load loses nothing: for server.drain_s the proxy
// keeps serving, every response says `Connection: close`, a request already
// written on an idle keep-alive connection is answered, a request in flight
// is answered before its connection closes; then it stops and exits 0.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { createWorld } from './lib/world.js';
import { pkce, publicClientDocument, withQuery } from './lib/oauth.js';
import { rawConnection } from './lib/rawhttp.js';

const run = promisify(execFile);
const DRAIN_S = 4;
const METADATA = '/.well-known/oauth-authorization-server';

let world;
before(async () => { world = await createWorld('72-drain', { proxy: false }); });
after(async () => { await world?.close(); });

/** Resolves with the exit, or fails after `ms`. */
async function exitWithin(proxy, ms) {
  const exit = await Promise.race([proxy.exited, sleep(ms, null, { ref: false })]);
  assert.ok(exit, `still running ${ms} ms after SIGTERM`);
  return exit;
}

test('wrk keep-alive load across SIGTERM: every request answered, no socket error, exit 0 after the drain', async (t) => {
  const proxy = await world.startProxy({ name: 'proxy-wrk', server: { drain_s: DRAIN_S } });
  // The load outlasts the signal by 2 s and ends inside the drain window.
  const load = run('wrk', ['-t2', '-c16', '-d3s', '--timeout', '5s', proxy.url(METADATA)], { timeout: 30_000 });
  await sleep(1000);
  const signalled = Date.now();
  proxy.child.kill('SIGTERM');
  const { stdout } = await load;
  t.diagnostic(stdout);
  const requests = Number(stdout.match(/(\d+) requests in/)?.[1]);
  assert.ok(requests > 100, `wrk made ${requests} requests`);
  assert.doesNotMatch(stdout, /Socket errors/, 'no connect, read, write or timeout error');
  assert.doesNotMatch(stdout, /Non-2xx/, 'every response was a 200');

  const exit = await exitWithin(proxy, (DRAIN_S + 10) * 1000);
  assert.deepEqual(exit, { code: 0, signal: null });
  const took = Date.now() - signalled;
  assert.ok(took >= DRAIN_S * 1000 - 200, `exited ${took} ms after SIGTERM, before the ${DRAIN_S} s drain`);
});

test('a request written on an idle keep-alive connection after SIGTERM, and one in flight, are both answered with Connection: close', async () => {
  const slowRedirect = `${world.docs.origin}/slow/callback`;
  const slow = world.docs.addClient('slow', (id) => publicClientDocument(id, [slowRedirect]), { delayMs: 1500 });
  const proxy = await world.startProxy({ name: 'proxy-idle', server: { drain_s: DRAIN_S } });

  // A keep-alive connection that has served one request and is now idle.
  const idle = rawConnection(proxy.port);
  await idle.connected;
  idle.send(METADATA);
  const before = await idle.next();
  assert.equal(before.status, 200);
  assert.equal(before.headers.connection, undefined, 'keep-alive before the signal');

  // A request in flight across the signal: its document host answers late.
  const busy = rawConnection(proxy.port);
  await busy.connected;
  const authorize = new URL(withQuery(proxy.url('/authorize'), {
    response_type: 'code', client_id: slow, redirect_uri: slowRedirect, scope: 'openid',
    state: 'drain', code_challenge: pkce().challenge, code_challenge_method: 'S256',
  }));
  busy.send(`${authorize.pathname}${authorize.search}`);
  const inFlight = busy.next();

  // Another idle keep-alive connection, whose next request is written in the same instant as the signal.
  const racing = rawConnection(proxy.port);
  await racing.connected;
  racing.send(METADATA);
  assert.equal((await racing.next()).status, 200);

  await sleep(300); // the /authorize is waiting on the document host
  racing.send(METADATA);
  proxy.child.kill('SIGTERM');
  const raced = await racing.next();
  assert.equal(raced.status, 200, 'the request written as the signal came is answered');
  await sleep(300); // the signal is handled: the drain has begun

  // The client did not know: it reuses its idle connection.
  idle.send(METADATA);
  const after = await idle.next();
  assert.equal(after.status, 200, after.body);
  assert.equal(after.headers.connection, 'close');
  await idle.closed();

  const answered = await inFlight;
  assert.equal(answered.status, 302, answered.body);
  assert.equal(answered.headers.connection, 'close');
  await busy.closed();

  // A new connection during the drain is served too, and told to close;
  // readiness already says the pod is going away.
  const late = rawConnection(proxy.port);
  await late.connected;
  late.send(METADATA);
  const lateAnswer = await late.next();
  assert.equal(lateAnswer.status, 200);
  assert.equal(lateAnswer.headers.connection, 'close');
  const ready = await fetch(`${proxy.admin}/readyz`);
  assert.equal(ready.status, 503);
  assert.match(await ready.text(), /shutting down/);

  const exit = await exitWithin(proxy, (DRAIN_S + 10) * 1000);
  assert.deepEqual(exit, { code: 0, signal: null });
});
