// The provider quirk layers (lib/quirks.js), proved against the provider
// alone: openid-client talks to oidc-provider directly (no proxy), so each
// test shows what a client of the real provider would see. The proxy's own
// tests against these layers build on this.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as client from 'openid-client';
import * as jose from 'jose';
import { createWorld } from './lib/world.js';
import { rpConfig, signIn } from './lib/rp.js';
import { Browser } from './lib/browser.js';
import { pkce, random, withQuery } from './lib/oauth.js';
import { freePort } from './lib/net.js';
import { TEST_USER } from './lib/provider.js';
import { ENTRA_APP_ID_URI, OKTA_DEFAULT_AUDIENCE, OKTA_ISSUER_PATH } from './lib/quirks.js';

const SECRET = 'quirk-app-secret-for-tests';

/** A confidential client registered at the provider, with its redirect URI (nothing listens there). */
async function quirkClient(id, grantTypes = ['authorization_code', 'refresh_token']) {
  const redirectUri = `http://127.0.0.1:${await freePort()}/${id}/callback`;
  return {
    redirectUri,
    metadata: {
      client_id: id,
      client_secret: SECRET,
      token_endpoint_auth_method: 'client_secret_basic',
      redirect_uris: [redirectUri],
      grant_types: grantTypes,
      response_types: ['code'],
    },
  };
}

/** openid-client against the provider itself. */
function providerConfig(world, clientId) {
  return rpConfig({ issuer: world.provider.issuer }, clientId, client.ClientSecretBasic(SECRET));
}

/** Sends the browser to the provider's authorization endpoint by hand; returns the parameters it lands on the client with. */
async function authorizeByHand(world, { clientId, redirectUri, params }) {
  const { challenge } = pkce();
  const url = withQuery(world.provider.url('/auth'), {
    response_type: 'code', client_id: clientId, redirect_uri: redirectUri, state: random(),
    code_challenge: challenge, code_challenge_method: 'S256', ...params,
  });
  const target = new URL(redirectUri);
  const { stoppedAt, hops } = await new Browser().follow(url, {
    stop: (u) => u.origin === target.origin && u.pathname === target.pathname,
  });
  assert.ok(stoppedAt, `never came back to the client: ${JSON.stringify(hops, null, 1)}`);
  return stoppedAt.searchParams;
}

/** Verifies a JWT access token against the provider's keys and issuer; returns its payload. */
async function verifiedAccessToken(world, token) {
  const jwks = jose.createLocalJWKSet(await (await fetch(world.provider.url('/jwks'))).json());
  const { payload } = await jose.jwtVerify(token, jwks, { issuer: world.provider.issuer });
  return payload;
}

/** Expects `promise` (an openid-client call) to fail with the OAuth error `code`. */
async function rejectsWith(promise, code) {
  await assert.rejects(promise, (err) => {
    assert.equal(err.error ?? err.cause?.error, code, `${err.name}: ${err.message}`);
    return true;
  });
}

describe('generic layer (the textbook provider the suite runs against)', () => {
  let world;
  let app;
  before(async () => {
    app = await quirkClient('generic-app');
    world = await createWorld('85-provider-quirks-generic', { proxy: false, providerClients: [app.metadata] });
  });
  after(async () => { await world?.close(); });

  test('generic: RFC 9207 iss on the callback, resource honoured, a refresh token without offline_access', async () => {
    const metadata = await (await fetch(world.provider.url('/.well-known/openid-configuration'))).json();
    assert.equal(metadata.authorization_response_iss_parameter_supported, true);
    const config = await providerConfig(world, 'generic-app');
    const resource = 'http://127.0.0.1:9/mcp';
    const run = await signIn(config, { redirectUri: app.redirectUri, scope: 'openid', extra: { resource } });
    assert.equal(run.callbackUrl.searchParams.get('iss'), world.provider.issuer);
    assert.ok(run.tokens.refresh_token, 'generic issues refresh tokens to every client allowed the grant');
    const introspected = await client.tokenIntrospection(config, run.tokens.access_token);
    assert.equal(introspected.active, true);
    assert.equal(introspected.aud, resource);
  });
});

describe('entra layer (Microsoft identity platform v2.0)', () => {
  let world;
  let app;
  before(async () => {
    app = await quirkClient('entra-app');
    world = await createWorld('85-provider-quirks-entra', { proxy: false, quirks: 'entra', providerClients: [app.metadata] });
  });
  after(async () => { await world?.close(); });

  test('entra refuses resource at /authorize: invalid_target AADSTS9010010, redirected without iss', async () => {
    const params = await authorizeByHand(world, {
      clientId: 'entra-app', redirectUri: app.redirectUri,
      params: { scope: `openid ${ENTRA_APP_ID_URI}/.default`, resource: 'http://127.0.0.1:9/mcp' },
    });
    assert.equal(params.get('error'), 'invalid_target');
    assert.match(params.get('error_description'), /^AADSTS9010010: /);
    assert.equal(params.get('iss'), null, 'Entra sends no RFC 9207 iss, not even on errors');
    assert.equal(params.get('code'), null);
  });

  test('entra refuses a bare custom scope (AADSTS650053) and scopes of two resources (AADSTS28000)', async () => {
    const bare = await authorizeByHand(world, {
      clientId: 'entra-app', redirectUri: app.redirectUri, params: { scope: 'openid mcp:tools' },
    });
    assert.equal(bare.get('error'), 'invalid_scope');
    assert.match(bare.get('error_description'), /^AADSTS650053: .*'mcp:tools'/);
    const two = await authorizeByHand(world, {
      clientId: 'entra-app', redirectUri: app.redirectUri,
      params: { scope: `${ENTRA_APP_ID_URI}/.default api://00000000-1111-2222-3333-444444444444/.default` },
    });
    assert.equal(two.get('error'), 'invalid_request');
    assert.match(two.get('error_description'), /^AADSTS28000: /);
  });

  test('entra: no iss in discovery or on the callback; api://…/.default names the audience; no refresh token without offline_access', async () => {
    const metadata = await (await fetch(world.provider.url('/.well-known/openid-configuration'))).json();
    assert.equal(metadata.authorization_response_iss_parameter_supported, undefined);
    const config = await providerConfig(world, 'entra-app');
    const run = await signIn(config, { redirectUri: app.redirectUri, scope: `openid profile ${ENTRA_APP_ID_URI}/.default` });
    assert.equal(run.callbackUrl.searchParams.get('iss'), null, 'no RFC 9207 iss on the authorization response');
    assert.ok(run.callbackUrl.searchParams.get('code'));
    assert.equal(run.tokens.refresh_token, undefined, 'no offline_access, no refresh token');
    const access = await verifiedAccessToken(world, run.tokens.access_token);
    assert.equal(access.aud, ENTRA_APP_ID_URI, 'the access token is for the App ID URI');
    assert.equal(access.sub, TEST_USER.sub);
    assert.equal(run.tokens.claims().sub, TEST_USER.sub);
  });

  test('entra: offline_access (no prompt=consent) gives a refresh token; refreshed tokens keep the App ID URI audience', async () => {
    const config = await providerConfig(world, 'entra-app');
    const run = await signIn(config, { redirectUri: app.redirectUri, scope: `openid offline_access ${ENTRA_APP_ID_URI}/mcp` });
    assert.equal(new URL(run.authorizationUrl).searchParams.get('prompt'), null, 'the client asked without prompt=consent');
    assert.ok(run.tokens.refresh_token, 'offline_access gives a refresh token');
    const refreshed = await client.refreshTokenGrant(config, run.tokens.refresh_token);
    const access = await verifiedAccessToken(world, refreshed.access_token);
    assert.equal(access.aud, ENTRA_APP_ID_URI);
    assert.match(access.scope, new RegExp(`${ENTRA_APP_ID_URI}/mcp`));
  });
});

describe('okta layer (custom authorization server "default")', () => {
  let world;
  let app;
  before(async () => {
    app = await quirkClient('okta-app');
    world = await createWorld('85-provider-quirks-okta', { proxy: false, quirks: 'okta', providerClients: [app.metadata] });
  });
  after(async () => { await world?.close(); });

  test('okta: a path issuer …/oauth2/default, discovered at the path-appended well-known URL only', async () => {
    assert.equal(new URL(world.provider.issuer).pathname, OKTA_ISSUER_PATH);
    const appended = await fetch(`${world.provider.issuer}/.well-known/openid-configuration`);
    assert.equal(appended.status, 200);
    const metadata = await appended.json();
    assert.equal(metadata.issuer, world.provider.issuer);
    assert.equal(metadata.authorization_endpoint, `${world.provider.issuer}/auth`);
    assert.equal(metadata.token_endpoint, `${world.provider.issuer}/token`);
    const atRoot = await fetch(`${world.provider.origin}/.well-known/openid-configuration`);
    await atRoot.arrayBuffer();
    assert.equal(atRoot.status, 404, 'nothing at the origin root');
  });

  test('okta ignores resource: the access token audience is the server\'s configured one; no offline_access, no refresh token', async () => {
    const config = await providerConfig(world, 'okta-app');
    const run = await signIn(config, { redirectUri: app.redirectUri, scope: 'openid mcp:tools', extra: { resource: 'http://127.0.0.1:9/mcp' } });
    assert.equal(run.callbackUrl.searchParams.get('iss'), world.provider.issuer);
    assert.equal(run.tokens.refresh_token, undefined, 'no offline_access, no refresh token');
    const access = await verifiedAccessToken(world, run.tokens.access_token);
    assert.equal(access.aud, OKTA_DEFAULT_AUDIENCE, 'resource ignored: the audience is the authorization server\'s');
    assert.equal(access.scope, 'mcp:tools');
  });

  test('okta rotates refresh tokens: each refresh answers a new one and the used one is refused', async () => {
    const config = await providerConfig(world, 'okta-app');
    const run = await signIn(config, { redirectUri: app.redirectUri, scope: 'openid offline_access mcp:tools' });
    const first = run.tokens.refresh_token;
    assert.ok(first, 'offline_access gives a refresh token');
    const once = await client.refreshTokenGrant(config, first);
    assert.ok(once.refresh_token && once.refresh_token !== first, 'a new refresh token on refresh');
    const twice = await client.refreshTokenGrant(config, once.refresh_token);
    assert.ok(twice.refresh_token && twice.refresh_token !== once.refresh_token);
    await rejectsWith(client.refreshTokenGrant(config, once.refresh_token), 'invalid_grant');
  });
});

describe('google layer (OAuth 2.0 for web server applications)', () => {
  let world;
  let app;
  let online;
  before(async () => {
    app = await quirkClient('google-app');
    online = await quirkClient('google-online-app');
    world = await createWorld('85-provider-quirks-google', { proxy: false, quirks: 'google', providerClients: [app.metadata, online.metadata] });
  });
  after(async () => { await world?.close(); });

  test('google: access_type=offline on first consent gives a refresh token that is never rotated; resource ignored', async () => {
    const config = await providerConfig(world, 'google-app');
    const run = await signIn(config, {
      redirectUri: app.redirectUri, scope: 'openid email',
      extra: { access_type: 'offline', resource: 'http://127.0.0.1:9/mcp' },
    });
    const refreshToken = run.tokens.refresh_token;
    assert.ok(refreshToken, 'access_type=offline on the first consent gives a refresh token');
    const once = await client.refreshTokenGrant(config, refreshToken);
    assert.ok(once.access_token);
    assert.equal(once.refresh_token, undefined, 'a refresh answers no new refresh token');
    const twice = await client.refreshTokenGrant(config, refreshToken);
    assert.ok(twice.access_token && twice.access_token !== once.access_token, 'the same refresh token keeps working');

    // Once consented, another offline sign-in gets no refresh token, unless it asks for the consent screen again.
    const again = await signIn(config, { redirectUri: app.redirectUri, scope: 'openid email', extra: { access_type: 'offline' } });
    assert.equal(again.tokens.refresh_token, undefined, 'no consent screen, no refresh token');
    const forced = await signIn(config, { redirectUri: app.redirectUri, scope: 'openid email', extra: { access_type: 'offline', prompt: 'consent' } });
    assert.ok(forced.tokens.refresh_token, 'prompt=consent shows the consent screen: a refresh token again');
  });

  test('google: without access_type=offline no refresh token, offline_access or not', async () => {
    const config = await providerConfig(world, 'google-online-app');
    const run = await signIn(config, { redirectUri: online.redirectUri, scope: 'openid email offline_access', extra: { prompt: 'consent' } });
    assert.ok(run.tokens.access_token);
    assert.equal(run.tokens.refresh_token, undefined);
  });
});
