// Headless Chromium for the browser tests: Debian's `chromium` driven by
// playwright-core (which never downloads a browser), kept on loopback.
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';

/** Debian's launcher script; CHROMIUM_PATH overrides it. */
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  // No traffic of Chromium's own: updates, safe browsing, sync, metrics…
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // …and no host resolves but localhost and 127.*: the tests use loopback IP literals only, so a
  // navigation to a client's off-loopback redirect_uri fails here instead of leaving the machine.
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.*',
];

/** Launches the browser (playwright-core uses a fresh temporary profile and removes it on close). */
export async function launchChromium() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} not found: install Debian's chromium (apt-get install chromium) or set CHROMIUM_PATH`);
  }
  return chromium.launch({ executablePath: CHROMIUM, args: ARGS, timeout: 30_000 });
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/;

/** True for http(s) URLs on loopback, and for the browser's own data:/about: URLs. */
export function onLoopback(url) {
  const u = new URL(url);
  if (u.protocol === 'data:' || u.protocol === 'about:') return true;
  return LOOPBACK.test(u.hostname);
}

/**
 * Watches a browser context: every request (each hop of a redirect chain is one), every console
 * message and page error. `cspViolations()` lists the console messages reporting a
 * Content-Security-Policy violation (a blocked stylesheet, script or form target).
 */
export function watch(context) {
  const requests = [];
  const console = [];
  const attach = (page) => {
    page.on('console', (msg) => console.push({ type: msg.type(), text: msg.text(), url: page.url(), source: msg.location().url }));
    page.on('pageerror', (error) => console.push({ type: 'pageerror', text: String(error), url: page.url() }));
  };
  context.on('request', (request) => requests.push({ url: request.url(), method: request.method(), navigation: request.isNavigationRequest() }));
  context.on('page', attach);
  for (const page of context.pages()) attach(page);
  return {
    requests,
    console,
    urls: () => requests.map((r) => r.url),
    cspViolations: () => console.filter((m) => /Content[- ]Security[- ]Policy/i.test(m.text)),
    offLoopback: () => requests.filter((r) => !onLoopback(r.url)),
  };
}
