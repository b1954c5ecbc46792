// Software statements: a client vouched for by a configured issuer signs in without a warning,
// the same document without the statement gets the consent page, and bad statements are refused.
//
// The registry's key is made here and everything else by the binary's own commands, as an
// operator would: `statement jwks` prints the public key set (served at a jwks_uri on the
// document host), `statement sign` prints the JWT each client document carries. The policy is
// `default_action = "warn"` with one rule `require_statement_from = [registry]`, `action = "allow"`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createWorld } from './lib/world.js';
import { writeSigningKey } from './lib/proxy.js';
import { proxyBin } from './lib/paths.js';
import { authorizeThrough, exchangePublic, getManual, pkce, publicClientDocument, random, withQuery } from './lib/oauth.js';
import { assertErrorPage } from './lib/assert-oauth.js';

const REGISTRY = 'https://registry.example';

/** Runs the proxy binary and returns its standard output. */
const cli = (...args) => execFileSync(proxyBin, args, { encoding: 'utf8' }).trim();

/** `cimd-proxy statement sign` for `clientId` with `key`, and more arguments. */
const sign = (key, clientId, ...more) => cli('statement', 'sign', '--key', key, '--issuer', REGISTRY, '--client-id', clientId, ...more);

let world;
let always; // the same trust and policy with `interstitial = "always"`
let trustOptions; // what both instances share
const clients = {};

before(async () => {
  world = await createWorld('75-trust', {
    proxy: (w) => {
      const registryKey = writeSigningKey(path.join(w.dir, 'registry.pem'));
      w.registryKey = registryKey;
      const jwks = JSON.parse(cli('statement', 'jwks', '--key', registryKey));
      trustOptions = {
        defaultAction: 'warn',
        rules: [{ require_statement_from: [REGISTRY], action: 'allow' }],
        trustIssuers: [{ name: REGISTRY, jwks_uri: w.docs.serve('/registry/jwks.json', jwks) }],
      };
      return trustOptions;
    },
  });
  const { docs, registryKey } = world;
  const impostorKey = writeSigningKey(path.join(world.dir, 'impostor.pem'));
  const cb = (name) => `${docs.origin}/${name}/callback`;
  const add = (name, statement) => {
    clients[name] = {
      redirectUri: cb(name),
      clientId: docs.addClient(name, (id) => publicClientDocument(id, [cb(name)], statement ? { software_statement: statement(id) } : {})),
    };
  };
  add('vouched', (id) => sign(registryKey, id));
  add('plain', null);
  add('impostor', (id) => sign(impostorKey, id));
  add('for-another', () => sign(registryKey, 'https://elsewhere.example/clients/app.json'));
  add('contradicting', (id) => sign(registryKey, id, '--claim-json', 'redirect_uris=["https://evil.example/callback"]'));
  always = await world.startProxy({ name: 'always', ...trustOptions, interstitial: 'always' });
});

after(async () => {
  await world?.close();
});

/** A complete /authorize URL for `client` at `proxy`. */
function authorizeUrl(proxy, client) {
  return withQuery(proxy.url('/authorize'), {
    response_type: 'code',
    client_id: client.clientId,
    redirect_uri: client.redirectUri,
    scope: 'openid',
    state: random(),
    code_challenge: pkce().challenge,
    code_challenge_method: 'S256',
  });
}

test('a client vouched for by the registry signs in without a warning', async () => {
  const client = clients.vouched;
  const run = await authorizeThrough(world.proxy, { ...client, scope: 'openid' });
  // The first answer is the redirect to the provider itself: no consent page.
  const first = run.hops[0];
  assert.equal(first.status, 302, JSON.stringify(run.hops, null, 1));
  assert.equal(new URL(first.location).origin, new URL(world.provider.issuer).origin);
  const code = run.params?.get('code');
  assert.ok(code, `no code: ${JSON.stringify(run.hops, null, 1)}`);
  // /token re-checks the document, statement included.
  const token = await exchangePublic(world.proxy, { clientId: client.clientId, code, redirectUri: client.redirectUri, verifier: run.verifier });
  assert.equal(token.status, 200, token.text);
  assert.ok(token.json.access_token);
});

test('the same document without the statement gets the consent page', async () => {
  const res = await getManual(authorizeUrl(world.proxy, clients.plain));
  assert.equal(res.status, 200, res.body.slice(0, 300));
  assert.match(res.contentType ?? '', /^text\/html/);
  assert.match(res.body, /<form method="post"/);
  assert.match(res.body, /name="consent"/);
  assert.match(res.body, /has not listed this application/);
  assert.doesNotMatch(res.body, /Vouched for by/);
});

test('with interstitial = "always" the page says who vouches for the client', async () => {
  const res = await getManual(authorizeUrl(always, clients.vouched));
  assert.equal(res.status, 200, res.body.slice(0, 300));
  assert.match(res.body, /Vouched for by <strong>https:\/\/registry\.example<\/strong>/);
  assert.match(res.body, /name="consent"/);
  // An unvouched client on the same instance is not said to be vouched for.
  const plain = await getManual(authorizeUrl(always, clients.plain));
  assert.equal(plain.status, 200);
  assert.doesNotMatch(plain.body, /Vouched for by/);
});

test('bad statements make the client invalid, with the reason on the error page', async () => {
  for (const [name, reason] of [
    ['impostor', 'software_statement: signed by an unknown key'],
    ['for-another', 'software_statement: is for another client'],
    ['contradicting', 'software_statement: its redirect_uris disagree with the document&#39;s'],
  ]) {
    const res = await getManual(authorizeUrl(world.proxy, clients[name]));
    assertErrorPage(res, 400);
    assert.match(res.body, /invalid_metadata/, name);
    assert.ok(res.body.includes(reason), `${name}: ${res.body}`);
  }
});
