// What a person sees, in a real browser: headless Debian Chromium driven by
// playwright-core. `cimd-proxy dev` walked through the interstitial with
// Continue and with Cancel; the interstitial for a client whose redirect goes
// to another host; the error page for an undeclared redirect_uri; and both
// pages at phone size; the operator's branding ([pages]: name, logo, support
// link), scopes in plain words, a loopback client shown with its port, and the
// request id on error pages. Screenshots land in test-artifacts/e2e/80-browser/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import zlib from 'node:zlib';
import path from 'node:path';
import { createWorld } from './lib/world.js';
import { startDev } from './lib/dev.js';
import { launchChromium, watch } from './lib/chromium.js';
import { metricValue, scrape } from './lib/metrics.js';
import { pkce, publicClientDocument, random, withQuery } from './lib/oauth.js';

const NAME = '80-browser';
const OTHER_HOST = 'elsewhere.example.test';
const PHONE = { width: 375, height: 667 };
const ORGANISATION = 'Example Corp';
const SUPPORT_URL = 'https://help.example.test/sign-in';
const MCP_SCOPE_TEXT = 'Use the tools of the MCP server on your behalf';

/** A 64×64 PNG: a blue square with a white bar, enough to see the logo is the operator's. */
function logoPng() {
  const size = 64;
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => { let c = 0xffffffff; for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8); return (c ^ 0xffffffff) >>> 0; };
  const chunk = (type, data) => {
    const head = Buffer.alloc(8); head.writeUInt32BE(data.length, 0); head.write(type, 4, 'ascii');
    const tail = Buffer.alloc(4); tail.writeUInt32BE(crc(Buffer.concat([Buffer.from(type, 'ascii'), data])), 0);
    return Buffer.concat([head, data, tail]);
  };
  const ihdr = Buffer.alloc(13); ihdr.writeUInt32BE(size, 0); ihdr.writeUInt32BE(size, 4); ihdr[8] = 8; ihdr[9] = 2;
  const rows = [];
  for (let y = 0; y < size; y += 1) {
    const row = [0];
    for (let x = 0; x < size; x += 1) {
      const bar = y > 26 && y < 38 && x > 12 && x < 52;
      row.push(...(bar ? [255, 255, 255] : [26, 77, 143]));
    }
    rows.push(Buffer.from(row));
  }
  return Buffer.concat([Buffer.from('\x89PNG\r\n\x1a\n', 'latin1'), chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(Buffer.concat(rows))), chunk('IEND', Buffer.alloc(0))]);
}

let world;
let browser;
let brandDir;
const clients = {};
const devs = new Set();
let devCount = 0;

before(async () => {
  // The world first: it empties and creates this file's artifacts folder.
  brandDir = mkdtempSync(path.join(os.tmpdir(), 'cimd-80-brand-'));
  const logoFile = path.join(brandDir, 'logo.png');
  writeFileSync(logoFile, logoPng());
  world = await createWorld(NAME, {
    proxy: {
      defaultAction: 'warn',
      extraToml: [
        '[pages]',
        `organisation_name = "${ORGANISATION}"`,
        `logo_file = "${logoFile}"`,
        `support_url = "${SUPPORT_URL}"`,
        '[pages.scopes]',
        `"mcp:tools" = "${MCP_SCOPE_TEXT}"`,
      ].join('\n'),
    },
  });
  const { docs } = world;
  const loopbackRedirect = 'http://127.0.0.1:53682/callback';
  clients.loopback = {
    redirectUri: loopbackRedirect,
    clientId: docs.addClient('loopback', (id) => publicClientDocument(id, [loopbackRedirect], { client_name: 'Desktop Example' })),
  };
  clients.otherHost = {
    redirectUri: `https://${OTHER_HOST}/cb`,
    clientId: docs.addClient('other-host', (id) => publicClientDocument(id, [`https://${OTHER_HOST}/cb`], {
      client_name: 'Other Host Example',
      client_uri: `https://${OTHER_HOST}/`,
    })),
  };
  clients.invalid = {
    redirectUri: `${docs.origin}/invalid/callback`,
    // Its document names another client_id: not valid, so never trusted.
    clientId: docs.addClient('invalid', () => publicClientDocument('https://impostor.example.test/client.json', [`${docs.origin}/invalid/callback`])),
  };
  browser = await launchChromium();
});

after(async () => {
  for (const dev of devs) await dev.kill();
  await browser?.close();
  await world?.close();
  if (brandDir) rmSync(brandDir, { recursive: true, force: true });
});

const shot = (file) => path.join(world.artifacts, file);

/** A fresh context (no cookies) and its page, watched. */
async function newPage(options = {}) {
  const context = await browser.newContext({ viewport: { width: 1024, height: 768 }, ...options });
  const log = watch(context);
  const page = await context.newPage();
  return { context, page, log };
}

/** Starts dev and remembers it, so a failing test still stops it. */
async function dev() {
  const instance = await startDev({ artifacts: world.artifacts, name: `dev-${(devCount += 1)}` });
  devs.add(instance);
  return instance;
}

/** Ctrl-C; dev must exit 0 and remove its temporary folder (the generated CA in it). */
async function interruptDev(instance) {
  const { code, signal } = await instance.interrupt();
  devs.delete(instance);
  assert.deepEqual({ code, signal }, { code: 0, signal: null }, `dev's exit after SIGINT; stderr:\n${instance.stderr().slice(-2000)}`);
  assert.equal(existsSync(instance.urls.caFile), false, `${instance.urls.caFile} should be removed at exit`);
}

/** The dev sample app's home page, then its Sign in link; returns the interstitial's response. */
async function devToInterstitial(page, urls) {
  await page.goto(urls.sampleApp);
  const signIn = page.getByRole('link', { name: /sign in/i });
  await signIn.waitFor();
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().startsWith(`${urls.proxy}/authorize`)),
    signIn.click(),
  ]);
  await page.waitForLoadState('load');
  assert.equal(response.status(), 200, `the interstitial: ${response.status()} ${await response.text()}`);
  return response;
}

/** The text of the <dd> elements following the <dt> whose text is `term`, up to the next <dt>. */
function definition(page, term) {
  return page.evaluate((t) => {
    const dt = [...document.querySelectorAll('dt')].find((e) => e.textContent.trim() === t);
    const out = [];
    for (let e = dt?.nextElementSibling; e && e.tagName === 'DD'; e = e.nextElementSibling) out.push(e.textContent.trim());
    return out;
  }, term);
}

/** The page hygiene every proxy page must have: a strict CSP with no framing and no script at all. */
async function assertNoScriptAndStrictCsp(page, response) {
  const csp = response.headers()['content-security-policy'] ?? '';
  assert.match(csp, /(^|;\s*)frame-ancestors 'none'(;|$)/, csp);
  assert.match(csp, /(^|;\s*)default-src 'none'(;|$)/, csp);
  assert.doesNotMatch(csp, /script-src|unsafe-inline|unsafe-eval/, csp);
  assert.equal(response.headers()['x-frame-options'], 'DENY');
  const scripts = await page.evaluate(() => ({
    scripts: document.querySelectorAll('script').length,
    handlers: [...document.querySelectorAll('*')].flatMap((e) => [...e.attributes].filter((a) => /^on/i.test(a.name)).map((a) => a.name)),
    javascriptUrls: [...document.querySelectorAll('[href],[src],[action]')].filter((e) => /^\s*javascript:/i.test(e.getAttribute('href') ?? e.getAttribute('src') ?? e.getAttribute('action'))).length,
  }));
  assert.deepEqual(scripts, { scripts: 0, handlers: [], javascriptUrls: 0 });
}

/** The inline stylesheet was applied (the CSP hash matches): the page background is the CSS's #f6f6f6. */
async function assertStyled(page) {
  const background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.equal(background, 'rgb(246, 246, 246)', 'page.css not applied (blocked by the CSP?)');
}

/**
 * No CSP violation and no other console error, except the browser's own /favicon.ico request (404
 * on these servers) and, for an error page, the page's own status (`documentStatus`).
 */
function assertCleanConsole(log, { documentStatus } = {}) {
  assert.deepEqual(log.cspViolations(), [], 'the browser reported Content-Security-Policy violations');
  const expected = (m) => /\/favicon\.ico$/.test(m.source ?? '')
    || (documentStatus && m.source === m.url && m.text.includes(`status of ${documentStatus} `));
  const errors = log.console.filter((m) => (m.type === 'error' || m.type === 'pageerror') && !expected(m));
  assert.deepEqual(errors, [], 'console errors');
}

/** Fails if the browser tried any address off loopback. */
function assertLoopbackOnly(log) {
  assert.deepEqual(log.offLoopback(), [], 'requests off loopback');
}

/** Continue and Cancel are real submit buttons, reached in that order by Tab from the top, with a visible focus ring. */
async function assertButtonsByKeyboard(page) {
  for (const name of ['Continue', 'Cancel']) {
    const button = page.getByRole('button', { name, exact: true });
    assert.equal(await button.count(), 1, name);
    assert.deepEqual(await button.evaluate((b) => ({ tag: b.tagName, type: b.type, disabled: b.disabled, form: b.form?.method })),
      { tag: 'BUTTON', type: 'submit', disabled: false, form: 'post' }, name);
  }
  await page.evaluate(() => { document.activeElement?.blur(); window.scrollTo(0, 0); });
  const focused = () => page.evaluate(() => {
    const e = document.activeElement;
    const style = getComputedStyle(e);
    return { tag: e.tagName, text: e.textContent.trim(), outline: style.outlineStyle, outlineWidth: style.outlineWidth };
  });
  await page.keyboard.press('Tab');
  const first = await focused();
  assert.deepEqual({ tag: first.tag, text: first.text }, { tag: 'BUTTON', text: 'Continue' }, 'the first Tab stop');
  assert.equal(first.outline, 'solid', 'a visible focus ring on Continue');
  await page.keyboard.press('Tab');
  const second = await focused();
  assert.deepEqual({ tag: second.tag, text: second.text }, { tag: 'BUTTON', text: 'Cancel' }, 'the second Tab stop');
  assert.equal(second.outline, 'solid', 'a visible focus ring on Cancel');
  await page.evaluate(() => document.activeElement?.blur());
}

/** No horizontal scrolling, and both buttons fully on screen width and large enough to tap. */
async function assertFitsPhone(page, what) {
  const size = await page.evaluate(() => ({ scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth }));
  assert.ok(size.scrollWidth <= size.innerWidth, `${what}: horizontal scroll ${JSON.stringify(size)}`);
  for (const button of await page.getByRole('button').all()) {
    const box = await button.boundingBox();
    assert.ok(box.x >= 0 && box.x + box.width <= size.innerWidth, `${what}: a button sticks out ${JSON.stringify(box)}`);
    assert.ok(box.height >= 44, `${what}: a button is ${box.height}px tall`);
  }
}

test('dev: sample app → interstitial (loopback-only client) → Continue → id_token from the proxy', async (t) => {
  const d = await dev();
  const { urls } = d;
  // Host and port: the port tells two applications on one host apart.
  const clientHost = new URL(urls.clientId).host;
  const { context, page, log } = await newPage();
  try {
    const response = await devToInterstitial(page, urls);

    // Who is asking: the client_id's host as the headline, the full client_id under it.
    assert.equal((await page.locator('h1').textContent()).trim(), clientHost);
    // dev has no [pages]: the page names the proxy's own host.
    assert.equal(await page.title(), `Allow ${clientHost} to sign you in with ${new URL(urls.proxy).host}?`);
    assert.match(await page.locator('main > p').first().textContent(), new RegExp(`sign you in through ${new URL(urls.proxy).host}:`));
    assert.equal((await page.locator('main > p.url').textContent()).trim(), urls.clientId);
    // A loopback-only client: the redirect's loopback warning. (dev's default_action is already
    // `warn`, so the policy gives its "unknown domain" reason; loopback_only_redirects = warn
    // raises nothing and adds no reason of its own.)
    const notes = (await page.getByRole('note').allTextContents()).map((s) => s.trim());
    assert.deepEqual(notes, [
      'Your organisation has not listed this application: its domain is unknown here.',
      'This is an application running on this computer (loopback). Any program on it can receive the sign-in.',
    ]);
    const back = await definition(page, 'You will be sent back to');
    assert.deepEqual(back, [new URL(urls.start).host, notes[1]]);
    // The name is the client's own claim, and said so.
    const name = await definition(page, 'It calls itself');
    assert.equal(name.length, 1, JSON.stringify(name));
    assert.match(name[0], /^cimd-proxy dev sample client \(self-declared by the application; not verified\)$/);
    assert.match(await page.locator('.self-declared').first().textContent(), /self-declared/);
    assert.deepEqual((await page.locator('dd ul li').allTextContents()).map((s) => s.trim()), [
      'Confirm who you are openid',
      'See your name and basic profile profile',
      'See your email address email',
      'Stay signed in and act for you when you are not using it offline_access',
    ]);

    await assertNoScriptAndStrictCsp(page, response);
    await assertStyled(page);
    await assertButtonsByKeyboard(page);
    await page.screenshot({ path: shot('interstitial-loopback.png'), fullPage: true });

    await Promise.all([
      page.waitForURL((u) => u.href.startsWith(`${new URL(urls.start).origin}/callback`)),
      page.getByRole('button', { name: 'Continue', exact: true }).click(),
    ]);
    await page.waitForLoadState('load');
    await page.screenshot({ path: shot('dev-signed-in.png'), fullPage: true });
    assert.equal((await page.locator('h1').textContent()).trim(), 'Signed in as the sample client');
    assert.equal(await page.locator('#claim-iss').textContent(), urls.proxy);
    assert.equal(await page.locator('#claim-aud').textContent(), urls.clientId);
    assert.equal(await page.locator('#claim-sub').textContent(), 'dev-user');
    assert.equal(await page.locator('#iss-is-proxy').textContent(), 'yes');
    assert.equal(await page.locator('#aud-is-client').textContent(), 'yes');
    assert.match(await page.locator('#verification').textContent(), /^signature verified/);
    // The proxy's root and the banner's "dev provider" link answer a small page, not a blank 404.
    for (const [url, says] of [[`${urls.proxy}/`, /sign-in service for applications/], [urls.idp, /dev identity provider/]]) {
      const root = await fetch(url);
      assert.equal(root.status, 200, url);
      assert.match(root.headers.get('content-type'), /^text\/html/);
      assert.match(await root.text(), says, url);
    }
    // The dashboard's consent panel counts the answer.
    const metrics = await scrape({ admin: urls.admin });
    assert.equal(metricValue(metrics, 'cimd_proxy_consent_decisions_total', { outcome: 'continue' }), 1);

    // The path the browser took: app → proxy → provider → proxy /callback → app.
    const navigations = log.requests.filter((r) => r.navigation).map((r) => `${r.method} ${new URL(r.url).origin}${new URL(r.url).pathname}`);
    t.diagnostic(navigations.join(' → '));
    assert.ok(navigations.includes(`POST ${urls.proxy}/consent`), navigations.join('\n'));
    assert.ok(navigations.includes(`GET ${urls.idp}/authorize`), navigations.join('\n'));
    assert.ok(navigations.includes(`GET ${urls.proxy}/callback`), navigations.join('\n'));
    assertCleanConsole(log);
    assertLoopbackOnly(log);
  } finally {
    await context.close();
  }
  await interruptDev(d);
});

test('dev: Cancel on the interstitial → the sample app gets access_denied; the provider is never reached', async () => {
  const d = await dev();
  const { urls } = d;
  const { context, page, log } = await newPage();
  try {
    await devToInterstitial(page, urls);
    await Promise.all([
      page.waitForURL((u) => u.href.startsWith(`${new URL(urls.start).origin}/callback`)),
      page.getByRole('button', { name: 'Cancel', exact: true }).click(),
    ]);
    await page.waitForLoadState('load');
    const landed = new URL(page.url());
    assert.equal(landed.searchParams.get('error'), 'access_denied');
    assert.equal(landed.searchParams.get('iss'), urls.proxy);
    assert.equal(landed.searchParams.get('code'), null);
    assert.equal(await page.locator('#oauth-error').textContent(), 'access_denied');
    const metrics = await scrape({ admin: urls.admin });
    assert.equal(metricValue(metrics, 'cimd_proxy_consent_decisions_total', { outcome: 'cancel' }), 1);
    assert.equal(metricValue(metrics, 'cimd_proxy_consent_decisions_total', { outcome: 'continue' }), 0);
    assert.match(await page.locator('main').textContent(), /what a client sees when you choose Cancel/);
    await page.screenshot({ path: shot('dev-cancelled.png'), fullPage: true });

    const toProvider = log.urls().filter((u) => u.startsWith(urls.idp));
    assert.deepEqual(toProvider, [], 'the browser reached the dev provider');
    assert.ok(log.urls().some((u) => u.startsWith(`${urls.proxy}/consent`)), 'the Cancel post went to the proxy');
    assertCleanConsole(log);
    assertLoopbackOnly(log);
  } finally {
    await context.close();
  }
  await interruptDev(d);
});

/** The proxy's /authorize URL for `client` (with its redirect_uri unless `redirectUri` is given). */
function authorizeUrl(client, redirectUri = client.redirectUri) {
  return withQuery(world.proxy.url('/authorize'), {
    response_type: 'code',
    client_id: client.clientId,
    redirect_uri: redirectUri,
    scope: 'openid profile',
    state: random(),
    nonce: random(),
    code_challenge: pkce().challenge,
    code_challenge_method: 'S256',
  });
}

test('a redirect to another host: the interstitial names that host and warns it is not the client', async () => {
  const clientHost = new URL(clients.otherHost.clientId).hostname;
  const clientHostPort = new URL(clients.otherHost.clientId).host;
  for (const [viewport, file] of [[{ width: 1024, height: 768 }, 'interstitial-other-host.png'], [PHONE, 'interstitial-other-host-phone.png']]) {
    const { context, page, log } = await newPage({ viewport });
    try {
      const response = await page.goto(authorizeUrl(clients.otherHost));
      assert.equal(response.status(), 200, await response.text());
      assert.equal((await page.locator('h1').textContent()).trim(), clientHostPort);
      assert.equal((await page.locator('main > p.url').textContent()).trim(), clients.otherHost.clientId);
      const back = await definition(page, 'You will be sent back to');
      assert.deepEqual(back, [OTHER_HOST, `This is not ${clientHost}: the sign-in goes back to a different site.`]);
      assert.doesNotMatch(await page.locator('main').textContent(), /loopback/);
      // Unlisted (default_action = warn): the policy's reason.
      assert.match((await page.getByRole('note').allTextContents()).join(' '), /has not listed this application/);
      const site = await definition(page, 'Its website, as it states it');
      assert.deepEqual(site, [`https://${OTHER_HOST}/ (self-declared; not a link)`]);
      assert.equal(await page.locator('a').count(), 0, 'no link on the page');
      assert.equal((await page.locator('.brand-name').textContent()).trim(), ORGANISATION);
      // Cancel may lead to the client's redirect_uri: the form's CSP names that origin.
      const csp = response.headers()['content-security-policy'];
      assert.match(csp, new RegExp(`form-action 'self' ${world.provider.issuer} https://${OTHER_HOST.replaceAll('.', '\\.')}(;|$)`), csp);
      await assertNoScriptAndStrictCsp(page, response);
      await assertStyled(page);
      if (viewport === PHONE) {
        await assertFitsPhone(page, 'the interstitial');
      } else {
        await assertButtonsByKeyboard(page);
      }
      await page.screenshot({ path: shot(file), fullPage: true });
      assertCleanConsole(log);
      assertLoopbackOnly(log);
    } finally {
      await context.close();
    }
  }
});

test('an undeclared redirect_uri: an HTML 400 error page naming the client, with no way onward to that URI', async () => {
  const clientHost = new URL(clients.otherHost.clientId).host;
  const undeclared = `https://${OTHER_HOST}/stolen-code`;
  for (const [viewport, file] of [[{ width: 1024, height: 768 }, 'error-page.png'], [PHONE, 'error-page-phone.png']]) {
    const { context, page, log } = await newPage({ viewport });
    try {
      const response = await page.goto(authorizeUrl(clients.otherHost, undeclared));
      assert.equal(response.status(), 400);
      assert.match(response.headers()['content-type'], /^text\/html/);
      assert.equal(response.request().redirectedFrom(), null, 'no redirect before the page');
      assert.equal(new URL(page.url()).pathname, '/authorize', 'the browser stays on the proxy');
      assert.equal((await page.locator('h1').textContent()).trim(), 'This application cannot sign you in');
      assert.equal((await page.locator('.host').textContent()).trim(), clientHost);
      assert.match(await page.locator('main').textContent(),
        /The application asked to send you back to an address it has not declared, so the sign-in was stopped\./);
      assert.match(await page.locator('details code').first().textContent(), /^redirect_uri_mismatch$/);
      // The reference to quote is the response's X-Request-Id, and help is the operator's.
      const requestId = response.headers()['x-request-id'];
      assert.match(requestId ?? '', /^[A-Za-z0-9_-]+$/);
      assert.equal((await page.locator('.request-id code').textContent()).trim(), requestId);
      assert.match(await page.locator('.request-id').textContent(), /quote this reference/);
      assert.equal(await page.locator('.support a').getAttribute('href'), SUPPORT_URL);
      assert.equal((await page.locator('.brand-name').textContent()).trim(), ORGANISATION);
      assert.equal(await page.title(), `This application cannot sign you in · ${ORGANISATION}`);
      // Nothing leads to the undeclared URI: no link, no form, no refresh, no redirect.
      const onward = await page.evaluate((support) => ({
        links: [...document.querySelectorAll('a[href]')].filter((a) => a.href !== support).length,
        forms: document.querySelectorAll('form').length,
        refresh: document.querySelectorAll('meta[http-equiv="refresh" i]').length,
      }), SUPPORT_URL);
      assert.deepEqual(onward, { links: 0, forms: 0, refresh: 0 });
      assert.equal(response.headers().location, undefined);
      assert.equal(response.headers().refresh, undefined);
      assert.match(response.headers()['content-security-policy'], /form-action 'none'/);
      await assertNoScriptAndStrictCsp(page, response);
      await assertStyled(page);
      if (viewport === PHONE) {
        const size = await page.evaluate(() => ({ scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth }));
        assert.ok(size.scrollWidth <= size.innerWidth, `horizontal scroll ${JSON.stringify(size)}`);
      }
      await page.screenshot({ path: shot(file), fullPage: true });
      assert.deepEqual(log.urls().filter((u) => u.includes(OTHER_HOST) && !u.startsWith(world.proxy.base)), [], 'the browser went to the undeclared URI');
      assertCleanConsole(log, { documentStatus: 400 });
      assertLoopbackOnly(log);
    } finally {
      await context.close();
    }
  }
});

test('an invalid client document: the error page says it cannot be trusted', async () => {
  const { context, page, log } = await newPage();
  try {
    const response = await page.goto(authorizeUrl(clients.invalid));
    assert.equal(response.status(), 400);
    assert.match(response.headers()['content-type'], /^text\/html/);
    assert.equal((await page.locator('.host').textContent()).trim(), new URL(clients.invalid.clientId).host);
    assert.match(await page.locator('main').textContent(), /The application's description is not valid, so it cannot be trusted\./);
    assert.equal(await page.locator('form').count(), 0);
    assert.deepEqual(await page.locator('a[href]').evaluateAll((as) => as.map((a) => a.href)), [SUPPORT_URL]);
    await assertNoScriptAndStrictCsp(page, response);
    await assertStyled(page);
    await page.screenshot({ path: shot('error-page-invalid-document.png'), fullPage: true });
    assertCleanConsole(log, { documentStatus: 400 });
    assertLoopbackOnly(log);
  } finally {
    await context.close();
  }
});

test('the branded consent page: the organisation and its logo, scopes in plain words, a loopback client with its port', async () => {
  const clientHost = new URL(clients.loopback.clientId).host;
  for (const [viewport, file] of [[{ width: 1024, height: 768 }, 'consent-branded.png'], [PHONE, 'consent-branded-phone.png']]) {
    const { context, page, log } = await newPage({ viewport });
    try {
      const url = new URL(authorizeUrl(clients.loopback));
      url.searchParams.set('scope', 'openid offline_access mcp:tools custom:thing');
      const response = await page.goto(url.href);
      assert.equal(response.status(), 200, await response.text());
      assert.equal(await page.title(), `Allow ${clientHost} to sign you in with ${ORGANISATION}?`);
      assert.equal((await page.locator('.brand-name').textContent()).trim(), ORGANISATION);
      // The logo is the operator's file, from the proxy's own origin, and it loaded.
      const logo = page.locator('img.brand-logo');
      assert.equal(await logo.getAttribute('src'), world.proxy.url('/brand-logo'));
      await logo.evaluate((img) => img.decode());
      assert.equal(await logo.evaluate((img) => img.naturalWidth), 64);
      assert.match(await page.locator('main > p').first().textContent(), new RegExp(`with your ${ORGANISATION} account`));
      assert.equal((await page.locator('h1').textContent()).trim(), clientHost);
      // The loopback redirect with its port, and the loopback warning.
      const back = await definition(page, 'You will be sent back to');
      assert.equal(back[0], '127.0.0.1:53682');
      assert.match(back[1], /loopback/);
      assert.deepEqual((await page.locator('ul.scopes li').allTextContents()).map((s) => s.trim()), [
        'Confirm who you are openid',
        'Stay signed in and act for you when you are not using it offline_access',
        `${MCP_SCOPE_TEXT} mcp:tools`,
        `custom:thing (not described by ${ORGANISATION})`,
      ]);
      await assertNoScriptAndStrictCsp(page, response);
      await assertStyled(page);
      if (viewport === PHONE) {
        await assertFitsPhone(page, 'the branded consent page');
      } else {
        await assertButtonsByKeyboard(page);
      }
      await page.screenshot({ path: shot(file), fullPage: true });
      assertCleanConsole(log);
      assertLoopbackOnly(log);
    } finally {
      await context.close();
    }
  }
});
