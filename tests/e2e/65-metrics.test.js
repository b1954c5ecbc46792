// The admin listener's /metrics after a scripted run of flows: the
// exposition passes `promtool check metrics`, the counters moved as the
// flows say they should, and no label carries request data.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createWorld } from './lib/world.js';
import { publicClientDocument, codeFor, exchangePublic, getManual, withQuery } from './lib/oauth.js';
import { scrape as scrapeMetrics, metricValue } from './lib/metrics.js';

let world;
before(async () => { world = await createWorld('65-metrics', { proxy: {} }); });
after(async () => { await world?.close(); });

const scrape = () => scrapeMetrics(world.proxy);
const value = metricValue;

test('after sign-ins and refusals, /metrics is valid and the counters moved', async () => {
  const before = await scrape();
  const redirectUri = 'http://127.0.0.1/callback';
  const clientId = world.docs.addClient('metrics-cli', (id) => publicClientDocument(id, [redirectUri]));
  const callback = 'http://127.0.0.1:45123/callback';

  // Two sign-ins: the first fetches the document, the second finds it cached.
  for (let i = 0; i < 2; i += 1) {
    const { code, verifier } = await codeFor(world.proxy, { clientId, redirectUri: callback });
    const answer = await exchangePublic(world.proxy, { clientId, code, redirectUri: callback, verifier });
    assert.equal(answer.status, 200, answer.text);
  }
  // A refused client: an IP literal on loopback, refused before any connection.
  const blocked = await getManual(withQuery(world.proxy.url('/authorize'), {
    client_id: `https://127.0.0.1:${world.docs.port}/clients/x.json`,
    response_type: 'code',
  }));
  assert.equal(blocked.status, 400);

  const after = await scrape();
  const moved = (name, labels) => value(after, name, labels) - value(before, name, labels);
  assert.equal(moved('cimd_proxy_fetches_total', { kind: 'document', outcome: 'ok' }), 1);
  assert.equal(moved('cimd_proxy_fetches_total', { kind: 'document', outcome: 'blocked_address' }), 1);
  assert.equal(moved('cimd_proxy_refused_addresses_total', { range_class: 'loopback' }), 1);
  assert.ok(moved('cimd_proxy_cache_lookups_total', { status: 'miss' }) >= 1);
  assert.ok(moved('cimd_proxy_cache_lookups_total', { status: 'hit' }) >= 3, 'the second sign-in and both token requests hit');
  assert.equal(moved('cimd_proxy_authorize_requests_total', { outcome: 'ok' }), 2);
  assert.equal(moved('cimd_proxy_authorize_requests_total', { outcome: 'blocked_address' }), 1);
  assert.equal(moved('cimd_proxy_token_requests_total', { grant_type: 'authorization_code', outcome: 'ok' }), 2);
  assert.ok(moved('cimd_proxy_provider_request_duration_seconds_count', { operation: 'token' }) >= 2);
  assert.ok(value(after, 'cimd_proxy_cache_entries') >= 1);
  assert.equal(value(after, 'cimd_proxy_fetch_capacity'), 64);
  assert.equal(value(after, 'cimd_proxy_fetches_in_flight'), 0);
  assert.equal(value(after, 'cimd_proxy_build_info', {}), 1);

  // No label carries request data: no client_id, host or URL.
  for (const line of after.split('\n').filter((l) => !l.startsWith('#'))) {
    assert.ok(!line.includes('127.0.0.'), line);
    assert.ok(!line.includes('https://'), line);
    assert.ok(!line.includes('metrics-cli'), line);
  }

  // The exposition format itself, checked by Prometheus's own tool.
  const check = spawnSync('promtool', ['check', 'metrics'], { input: after, encoding: 'utf8' });
  assert.equal(check.error, undefined, `promtool is required (scripts/test installs it): ${check.error}`);
  assert.equal(check.status, 0, `promtool check metrics:\n${check.stdout}\n${check.stderr}`);
});

test('audit lines are JSON with a request id, and never hold a code, token or secret', async () => {
  const redirectUri = 'http://127.0.0.1/callback';
  const clientId = world.docs.addClient('audit-cli', (id) => publicClientDocument(id, [redirectUri]));
  const callback = 'http://127.0.0.1:45124/callback';
  const { code, verifier, state } = await codeFor(world.proxy, { clientId, redirectUri: callback });
  const response = await fetch(world.proxy.url('/token'), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-request-id': 'e2e-audit-1' },
    body: new URLSearchParams({
      grant_type: 'authorization_code', client_id: clientId, code, redirect_uri: callback, code_verifier: verifier,
    }),
  });
  assert.equal(response.status, 200);
  assert.equal(response.headers.get('x-request-id'), 'e2e-audit-1', 'a plain caller id is kept and returned');
  const tokens = await response.json();
  await new Promise((resolve) => setTimeout(resolve, 200));

  const lines = readFileSync(world.proxy.stderrFile, 'utf8').split('\n').filter(Boolean);
  const records = lines.map((line) => JSON.parse(line));
  const audits = records.filter((r) => r.target === 'audit' && r.fields?.client_id?.includes('audit-cli'));
  const events = audits.map((r) => r.fields.event);
  assert.deepEqual([...new Set(events)].sort(), ['authorize', 'callback', 'token']);
  for (const record of audits) {
    assert.match(record.span?.id ?? '', /^[0-9a-f]{16}$|^e2e-audit-1$/, JSON.stringify(record));
    assert.ok(record.fields.upstream_client, JSON.stringify(record));
  }
  const token = audits.find((r) => r.fields.event === 'token');
  assert.equal(token.span.id, 'e2e-audit-1');
  assert.equal(token.fields.error, '-');

  const everything = lines.join('\n');
  for (const secret of [code, verifier, state, tokens.access_token, tokens.refresh_token, tokens.id_token,
    world.upstreamSecret, ...world.sealKeys]) {
    assert.ok(secret && !everything.includes(secret), 'a secret, code or token reached the log');
  }
});
