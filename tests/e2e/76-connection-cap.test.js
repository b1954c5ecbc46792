// server.max_connections under an idle-connection flood: ten times the cap
// in connections that never send a byte. Real users' requests are still
// answered about as fast as without the flood (each takes the place of the
// connection idle the longest), and the proxy's file descriptors stay bounded.
// Connections that trickle a request head (slow-loris) do not hold the cap
// until the 10 s head deadline either.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import http from 'node:http';
import { readdirSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { setTimeout as sleep } from 'node:timers/promises';
import { createWorld } from './lib/world.js';
import { scrape, metricValue } from './lib/metrics.js';

const MAX_CONNECTIONS = 20;
const FLOOD = 10 * MAX_CONNECTIONS;
const SAMPLES = 30;
const METADATA = '/.well-known/oauth-authorization-server';

let world;
before(async () => {
  world = await createWorld('76-connection-cap', { proxy: { server: { max_connections: MAX_CONNECTIONS } } });
});
after(async () => { await world?.close(); });

/** One real user's request on a new connection; resolves with its latency in ms. */
function userRequest(port) {
  const agent = new http.Agent({ keepAlive: false });
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: METADATA, agent, timeout: 15_000 }, (res) => {
      res.resume();
      res.on('end', () => {
        if (res.statusCode === 200) resolve(performance.now() - started);
        else reject(new Error(`status ${res.statusCode}`));
      });
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 15 s')));
    req.on('error', reject);
  });
}

async function latencies(port) {
  const samples = [];
  for (let i = 0; i < SAMPLES; i += 1) {
    samples.push(await userRequest(port));
    await sleep(20);
  }
  return samples.sort((a, b) => a - b);
}

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
const openFds = (pid) => readdirSync(`/proc/${pid}/fd`).length;

/**
 * Opens `count` idle connections to `port` and holds them until stop(); with `reopen`, each one
 * the proxy closes is opened again; with `send`, each writes that (a partial request head) first. It runs in a worker thread so that its event loop, busy with
 * the flood, does not delay the real users' requests written from this one.
 */
function idleFlood(port, count, { reopen = false, send = '' } = {}) {
  const worker = new Worker(`
    const net = require('node:net');
    const { parentPort, workerData: { port, count, reopen, send } } = require('node:worker_threads');
    let stopped = false;
    let opened = 0;
    const sockets = new Set();
    const open = () => {
      if (stopped) return;
      const socket = net.connect(port, '127.0.0.1');
      opened += 1;
      sockets.add(socket);
      socket.on('error', () => {});
      if (send) socket.once('connect', () => socket.write(send));
      socket.on('close', () => { sockets.delete(socket); if (reopen) setImmediate(open); });
    };
    for (let i = 0; i < count; i += 1) open();
    parentPort.on('message', () => {
      stopped = true;
      for (const socket of sockets) socket.destroy();
      parentPort.postMessage(opened);
      parentPort.close();
    });
  `, { eval: true, workerData: { port, count, reopen, send } });
  return {
    /** Stops the flood; resolves with how many connections it opened. */
    async stop() {
      const opened = new Promise((resolve) => worker.once('message', resolve));
      worker.postMessage('stop');
      const count = await opened;
      await worker.terminate();
      return count;
    },
  };
}

test(`${FLOOD} idle connections against max_connections = ${MAX_CONNECTIONS}: users answered as usual, descriptors bounded`, async (t) => {
  const proxy = world.proxy;
  const baseline = await latencies(proxy.port);
  const fdsBefore = openFds(proxy.child.pid);

  const flood = idleFlood(proxy.port, FLOOD);
  let stopped = false;
  try {
    await sleep(500);
    const during = await latencies(proxy.port);
    const fdsDuring = openFds(proxy.child.pid);
    const text = await scrape(proxy);
    const open = metricValue(text, 'cimd_proxy_connections_open', { listener: 'public' });
    const closedIdle = metricValue(text, 'cimd_proxy_connections_over_limit_total', { listener: 'public', action: 'closed_idle' });
    t.diagnostic(`baseline p50 ${percentile(baseline, 50).toFixed(1)} ms, p99 ${percentile(baseline, 99).toFixed(1)} ms; `
      + `flood p50 ${percentile(during, 50).toFixed(1)} ms, p99 ${percentile(during, 99).toFixed(1)} ms; `
      + `samples ${during.map((x) => x.toFixed(0)).join(",")}; fds ${fdsBefore} → ${fdsDuring}; closed idle ${closedIdle}`);

    assert.ok(closedIdle >= FLOOD - MAX_CONNECTIONS, `the cap closed ${closedIdle} idle connections`);
    assert.ok(open <= MAX_CONNECTIONS, `${open} public connections open`);
    // The cap, plus the admin scrape and a little slack for the runtime.
    assert.ok(fdsDuring <= fdsBefore + MAX_CONNECTIONS + 5, `${fdsDuring} descriptors open (${fdsBefore} before)`);
    // Without the cap's idle eviction a user waits for the 10 s head-read deadline; on a
    // shared 2-core machine allow scheduling noise, not waiting.
    const p99 = percentile(during, 99);
    const allowed = Math.max(5 * percentile(baseline, 99), percentile(baseline, 99) + 500);
    assert.ok(p99 <= allowed, `p99 under the flood ${p99.toFixed(1)} ms, allowed ${allowed.toFixed(1)} ms`);
    stopped = true;
    t.diagnostic(`flood connections opened: ${await flood.stop()}`);
  } finally {
    if (!stopped) await flood.stop();
  }
});

test(`${2 * MAX_CONNECTIONS} connections trickling a request head: users answered long before the 10 s head deadline`, async (t) => {
  const proxy = world.proxy;
  const fdsBefore = openFds(proxy.child.pid);
  const slowLoris = idleFlood(proxy.port, 2 * MAX_CONNECTIONS, { send: `GET ${METADATA} HTTP/1.1\r\nHost: x\r\n` });
  let stopped = false;
  try {
    // Each head is cut off once it has been arriving for 1 s and someone waits for its place.
    await sleep(2500);
    const during = await latencies(proxy.port);
    const fdsDuring = openFds(proxy.child.pid);
    const cut = metricValue(await scrape(proxy), 'cimd_proxy_connections_over_limit_total', { listener: 'public', action: 'closed_slow_head' });
    t.diagnostic(`p50 ${percentile(during, 50).toFixed(1)} ms, p99 ${percentile(during, 99).toFixed(1)} ms; fds ${fdsBefore} → ${fdsDuring}; slow heads cut off ${cut}`);
    assert.ok(cut >= MAX_CONNECTIONS, `${cut} slow heads cut off`);
    assert.ok(fdsDuring <= fdsBefore + MAX_CONNECTIONS + 5, `${fdsDuring} descriptors open (${fdsBefore} before)`);
    assert.ok(percentile(during, 99) < 1500, `p99 ${percentile(during, 99).toFixed(1)} ms`);
    stopped = true;
    await slowLoris.stop();
  } finally {
    if (!stopped) await slowLoris.stop();
  }
});
