// Reading the proxy's admin /metrics (Prometheus text format).
import assert from 'node:assert/strict';

/** The text of `proxy`'s admin /metrics (asserts 200 and the Prometheus content type). */
export async function scrape(proxy) {
  const response = await fetch(`${proxy.admin}/metrics`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  return response.text();
}

/** The value of the first series of `name` carrying every label in `labels`, or 0 when absent. */
export function metricValue(text, name, labels = {}) {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (wanted.every((pair) => line.includes(pair))) return Number(line.split(' ').at(-1));
  }
  return 0;
}
