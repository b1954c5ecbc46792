// upstream.discovery_refresh_s: readiness follows the provider within one
// refresh interval each way (the default is 30 s; here 1 s).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { createWorld } from './lib/world.js';

const REFRESH_S = 1;
// One interval, plus the refresh itself and scheduling on a loaded machine.
const WITHIN_MS = REFRESH_S * 1000 + 1500;

let world;
before(async () => {
  world = await createWorld('78-readiness-interval', { proxy: { upstream: { discovery_refresh_s: REFRESH_S } } });
});
after(async () => { await world?.close(); });

const readyz = async () => (await fetch(`${world.proxy.admin}/readyz`)).status;

/** Polls /readyz every 50 ms until it answers `status`; resolves with the time it took. */
async function becomes(status, since) {
  for (;;) {
    if (await readyz() === status) return Date.now() - since;
    if (Date.now() - since > WITHIN_MS) assert.fail(`/readyz not ${status} within ${WITHIN_MS} ms`);
    await sleep(50);
  }
}

test('readiness turns false within one refresh interval of a provider outage, and true again after it', async (t) => {
  const discoveries = () => world.provider.requests.filter((r) => r.url.startsWith('/.well-known/')).length;
  const before = discoveries();
  await sleep(3 * REFRESH_S * 1000 + 300);
  const refreshed = discoveries() - before;
  assert.ok(refreshed >= 2 && refreshed <= 4, `${refreshed} discovery refreshes in ${3 * REFRESH_S} s`);
  assert.equal(await readyz(), 200);

  await world.provider.stop();
  let down;
  try {
    down = await becomes(503, Date.now());
  } finally {
    await world.provider.start();
  }
  const up = await becomes(200, Date.now());
  t.diagnostic(`not ready ${down} ms after the outage began, ready ${up} ms after it ended`);
});
