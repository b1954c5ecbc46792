// Real relying parties (openid-client v6) sign in through the proxy with CIMD
// client_ids: a public client, a private_key_jwt client and a CLI client on a
// loopback ephemeral port. openid-client verifies every id_token: issuer,
// audience = the CIMD client_id, nonce, and the signature via the proxy's jwks_uri.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import * as client from 'openid-client';
import * as jose from 'jose';
import { createWorld } from './lib/world.js';
import { publicClientDocument } from './lib/oauth.js';
import { rpConfig, signIn } from './lib/rp.js';
import { listen, closeServer } from './lib/net.js';
import { TEST_USER } from './lib/provider.js';

let world;
before(async () => { world = await createWorld('20-openid-client'); });
after(async () => { await world?.close(); });

/** What every relayed flow must show, hop by hop. */
function assertRelayedChain(hops, { clientId, redirectUri, state, verifierChallenge }) {
  const proxy = world.proxy;
  const first = hops[0];
  assert.equal(first.status, 302, `/authorize answers 302: ${JSON.stringify(first)}`);
  const upstream = new URL(first.location);
  assert.equal(`${upstream.origin}${upstream.pathname}`, world.provider.url('/auth'));
  assert.equal(upstream.searchParams.get('client_id'), 'proxy-app');
  assert.equal(upstream.searchParams.get('redirect_uri'), `${proxy.issuer}/callback`);
  assert.equal(upstream.searchParams.get('response_type'), 'code');
  assert.equal(upstream.searchParams.get('code_challenge'), verifierChallenge);
  assert.equal(upstream.searchParams.get('code_challenge_method'), 'S256');
  const sealedState = upstream.searchParams.get('state');
  assert.ok(sealedState && sealedState !== state, 'the state sent upstream is the proxy\'s sealed one');
  assert.ok(!sealedState.includes(clientId) && !sealedState.includes(encodeURIComponent(clientId)),
    'the sealed state does not show the client_id in clear');

  const callbackHop = hops.find((h) => h.url.startsWith(`${proxy.base}/callback`));
  assert.ok(callbackHop, 'the provider returned to the proxy /callback');
  assert.equal(callbackHop.status, 302);
  const providerCode = new URL(callbackHop.url).searchParams.get('code');
  const toClient = new URL(callbackHop.location);
  assert.equal(`${toClient.origin}${toClient.pathname}`, new URL(redirectUri).origin + new URL(redirectUri).pathname);
  assert.equal(toClient.searchParams.get('state'), state);
  assert.equal(toClient.searchParams.get('iss'), proxy.issuer);
  const code = toClient.searchParams.get('code');
  assert.ok(code && code !== providerCode, 'the client gets a sealed code, not the provider\'s');
}

async function assertIdTokenFromProxy(idToken, { clientId, nonce }) {
  const jwks = jose.createRemoteJWKSet(new URL(world.proxy.url('/jwks.json')));
  const { payload, protectedHeader } = await jose.jwtVerify(idToken, jwks, {
    issuer: world.proxy.issuer,
    audience: clientId,
  });
  assert.equal(protectedHeader.alg, 'ES256');
  assert.equal(payload.nonce, nonce);
  assert.equal(payload.sub, TEST_USER.sub);
  return payload;
}

test('public CIMD client (none): code flow, verified id_token, userinfo, refresh', async () => {
  const redirectUri = `${world.docs.origin}/public-app/callback`;
  const clientId = world.docs.addClient('public-app', (id) => publicClientDocument(id, [redirectUri], { client_name: 'Public App' }));
  const config = await rpConfig(world.proxy, clientId, client.None());
  assert.equal(config.serverMetadata().issuer, world.proxy.issuer);

  const run = await signIn(config, { redirectUri });
  assertRelayedChain(run.hops, {
    clientId, redirectUri, state: run.state,
    verifierChallenge: await client.calculatePKCECodeChallenge(run.verifier),
  });

  const { tokens } = run;
  assert.equal(tokens.token_type.toLowerCase(), 'bearer');
  assert.ok(tokens.access_token);
  assert.ok(tokens.refresh_token, 'offline_access gives a refresh token');
  const claims = tokens.claims();
  assert.equal(claims.iss, world.proxy.issuer);
  assert.equal(claims.aud, clientId);
  assert.equal(claims.nonce, run.nonce);
  assert.equal(claims.sub, TEST_USER.sub);
  await assertIdTokenFromProxy(tokens.id_token, { clientId, nonce: run.nonce });

  // The access token is the provider's: the advertised userinfo endpoint accepts it.
  const info = await client.fetchUserInfo(config, tokens.access_token, TEST_USER.sub);
  assert.equal(info.email, TEST_USER.email);
  assert.equal(info.name, TEST_USER.name);

  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  assert.ok(refreshed.access_token);
  assert.notEqual(refreshed.access_token, tokens.access_token);
  if (refreshed.id_token) {
    const again = refreshed.claims();
    assert.equal(again.iss, world.proxy.issuer);
    assert.equal(again.aud, clientId);
    assert.equal(again.sub, TEST_USER.sub);
  }
  // The refreshed refresh token (rotated or the same) keeps working.
  const twice = await client.refreshTokenGrant(config, refreshed.refresh_token ?? tokens.refresh_token);
  assert.ok(twice.access_token);
});

test('private_key_jwt CIMD client with an RS256 jwks_uri: code flow and refresh with PrivateKeyJwt', async () => {
  const { publicKey, privateKey } = await jose.generateKeyPair('RS256');
  const kid = 'hosted-key-1';
  const jwk = { ...(await jose.exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  const jwksUri = world.docs.serve('/jwks/hosted-app.json', { keys: [jwk] });
  const redirectUri = `${world.docs.origin}/hosted-app/callback`;
  const clientId = world.docs.addClient('hosted-app', (id) => ({
    client_id: id,
    client_name: 'Hosted Chat',
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_methods_supported: ['none', 'private_key_jwt'],
    jwks_uri: jwksUri,
    logo_uri: 'https://logos.invalid/hosted.png',
  }));
  const config = await rpConfig(world.proxy, clientId, client.PrivateKeyJwt({ key: privateKey, kid }));

  const run = await signIn(config, { redirectUri });
  assertRelayedChain(run.hops, {
    clientId, redirectUri, state: run.state,
    verifierChallenge: await client.calculatePKCECodeChallenge(run.verifier),
  });
  const claims = run.tokens.claims();
  assert.equal(claims.iss, world.proxy.issuer);
  assert.equal(claims.aud, clientId);
  assert.equal(claims.nonce, run.nonce);
  await assertIdTokenFromProxy(run.tokens.id_token, { clientId, nonce: run.nonce });
  assert.ok(world.docs.fetchCount('/jwks/hosted-app.json') >= 1, 'the proxy fetched the jwks_uri');

  const refreshed = await client.refreshTokenGrant(config, run.tokens.refresh_token);
  assert.ok(refreshed.access_token);
});

test('CLI client: document lists port-less loopback URIs, the client listens on an ephemeral port', async () => {
  const received = [];
  const listener = http.createServer((req, res) => {
    received.push(req.url);
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('Signed in. You can close this window.');
  });
  const port = await listen(listener, 0, '127.0.0.1');
  try {
    const clientId = world.docs.addClient('cli-app', (id) => publicClientDocument(id,
      ['http://127.0.0.1/callback', 'http://localhost/callback'], { client_name: 'CLI', application_type: 'native' }));
    const redirectUri = `http://127.0.0.1:${port}/callback`;
    const config = await rpConfig(world.proxy, clientId, client.None());
    const run = await signIn(config, { redirectUri, followToClient: true });
    assert.equal(run.final.status, 200, 'the chain ends at the CLI\'s own listener');
    assert.equal(received.length, 1);
    const got = new URL(received[0], redirectUri);
    assert.equal(got.searchParams.get('state'), run.state);
    assert.equal(got.searchParams.get('iss'), world.proxy.issuer);
    assertRelayedChain(run.hops, {
      clientId, redirectUri, state: run.state,
      verifierChallenge: await client.calculatePKCECodeChallenge(run.verifier),
    });
    const claims = run.tokens.claims();
    assert.equal(claims.aud, clientId);
    assert.equal(claims.iss, world.proxy.issuer);

    // The other registered form, localhost, matches on any port too.
    const other = await fetch(world.proxy.url(`/authorize?${new URLSearchParams({
      response_type: 'code', client_id: clientId, redirect_uri: `http://localhost:${port + 1}/callback`,
      scope: 'openid', state: 's', code_challenge: await client.calculatePKCECodeChallenge('x'.repeat(43)),
      code_challenge_method: 'S256',
    })}`), { redirect: 'manual' });
    assert.equal(other.status, 302);
    assert.ok(other.headers.get('location').startsWith(world.provider.url('/auth?')));
  } finally {
    await closeServer(listener);
  }
});

test('POST /authorize (form) is handled like GET', async () => {
  const redirectUri = `${world.docs.origin}/post-app/callback`;
  const clientId = world.docs.addClient('post-app', (id) => publicClientDocument(id, [redirectUri]));
  const challenge = await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier());
  const res = await fetch(world.proxy.url('/authorize'), {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      response_type: 'code', client_id: clientId, redirect_uri: redirectUri, scope: 'openid',
      state: 'posted', code_challenge: challenge, code_challenge_method: 'S256',
    }),
  });
  assert.equal(res.status, 302);
  const upstream = new URL(res.headers.get('location'));
  assert.equal(`${upstream.origin}${upstream.pathname}`, world.provider.url('/auth'));
  assert.equal(upstream.searchParams.get('client_id'), 'proxy-app');
  assert.equal(upstream.searchParams.get('code_challenge'), challenge);
});
