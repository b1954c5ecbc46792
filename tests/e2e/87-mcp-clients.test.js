// The OAuth clients people put in front of MCP servers, against the proxy in
// front of each provider quirk layer (lib/quirks.js), with a protected MCP
// resource that checks every token's audience (lib/resource.js). For each
// profile the proxy is configured the way the README tells an operator to:
//   generic  nothing (RFC 8707 `resource` forwarded; the audience is the resource);
//   entra    profile = "entra" and one resource_scopes line naming the App ID URI;
//   okta     profile = "okta" and nothing else (the audience is the server's own);
//   google   profile = "google" (no RFC 8707: the audience is the OAuth client).
// In each, the MCP TypeScript SDK's auth(), the MCP Python SDK's
// OAuthClientProvider and openid-client (public and private_key_jwt) sign in
// with a CIMD client_id, refresh twice and are accepted by the resource after
// each step. The journeys themselves are in lib/mcp-clients.js. One provider
// world per profile.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as oidc from 'openid-client';
import { createWorld } from './lib/world.js';
import { TEST_USER } from './lib/provider.js';
import { Browser } from './lib/browser.js';
import { pkce, random, withQuery } from './lib/oauth.js';
import { ENTRA_APP_ID_URI, OKTA_DEFAULT_AUDIENCE } from './lib/quirks.js';
import { startResource, introspectionClient, introspectionVerifier, jwtVerifier, fingerprint } from './lib/resource.js';
import { tsSdkJourney, pythonSdkJourney, openidClientJourney, assertAllAccepted } from './lib/mcp-clients.js';

const RESOURCE_CLIENT = 'mcp-resource';
const RESOURCE_SECRET = randomBytes(24).toString('base64url');

/**
 * Google's tokeninfo names the OAuth client an access token was issued to as its `aud`; the
 * imitation's tokens are opaque, so introspection's `client_id` stands for it.
 */
function googleVerifier(provider) {
  const introspect = introspectionVerifier(provider, RESOURCE_CLIENT, RESOURCE_SECRET);
  return async (token) => {
    const claims = await introspect(token);
    return { ...claims, aud: claims.aud ?? claims.client_id };
  };
}

/** Each profile: its quirk layer, the resource's scopes, how the resource checks tokens, and the proxy's configuration. */
const PROFILES = {
  generic: {
    scopes: ['openid', 'mcp:tools'],
    verify: (world) => introspectionVerifier(world.provider, RESOURCE_CLIENT, RESOURCE_SECRET),
    audience: (resource) => resource.url,
    proxy: (resource) => ({ resource: { resource: resource.url, scopes_supported: ['openid', 'mcp:tools'] } }),
  },
  entra: {
    // A bare custom scope: the proxy qualifies it with the App ID URI (Entra refuses it bare).
    scopes: ['openid', 'mcp'],
    verify: (world) => jwtVerifier(world.provider),
    audience: () => ENTRA_APP_ID_URI,
    proxy: (resource) => ({
      upstream: { profile: 'entra' },
      resourceScopes: { [resource.url]: ENTRA_APP_ID_URI },
      resource: { resource: resource.url, scopes_supported: ['openid', 'mcp'] },
    }),
  },
  okta: {
    scopes: ['openid', 'mcp:tools'],
    verify: (world) => jwtVerifier(world.provider),
    audience: () => OKTA_DEFAULT_AUDIENCE,
    proxy: () => ({ upstream: { profile: 'okta' } }),
  },
  google: {
    scopes: ['openid', 'email'],
    verify: (world) => googleVerifier(world.provider),
    audience: () => 'proxy-app',
    proxy: (resource) => ({
      upstream: { profile: 'google' },
      resource: { resource: resource.url, scopes_supported: ['openid', 'email'] },
    }),
  },
};

/** Starts the world of `profile`: provider (with its quirks), resource, then the proxy configured for both. */
async function profileWorld(profile) {
  const spec = PROFILES[profile];
  const world = await createWorld(`87-mcp-clients-${profile}`, {
    quirks: profile,
    proxy: false,
    providerClients: [introspectionClient(RESOURCE_CLIENT, RESOURCE_SECRET)],
  });
  const resource = await startResource({
    authorizationServer: world.proxyPublicUrl,
    verify: spec.verify(world),
    audience: spec.audience({ url: undefined }),
    scopesSupported: spec.scopes,
  });
  resource.audience = spec.audience(resource);
  world.proxy = await world.startProxy({ name: 'proxy', port: world.proxyPort, ...spec.proxy(resource) });
  return { world, resource, scope: spec.scopes.join(' ') };
}

/** The browser through /authorize with `params` (openid-client's URL), stopped at the client: its query. */
async function authorizeAndStop(config, redirectUri, params) {
  const { challenge } = pkce();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri, code_challenge: challenge, code_challenge_method: 'S256', state: random(), ...params,
  });
  const target = new URL(redirectUri);
  const { stoppedAt, hops } = await new Browser().follow(url.href, {
    stop: (u) => u.origin === target.origin && u.pathname === target.pathname,
  });
  assert.ok(stoppedAt, `never came back to the client: ${JSON.stringify(hops, null, 1)}`);
  return stoppedAt.searchParams;
}

/** The provider's authorization requests, as the proxy sent them. */
const upstreamAuthorizations = (world) => world.provider.requests
  .filter((r) => /\/auth\?/.test(r.url))
  .map((r) => new URL(r.url, world.provider.origin).searchParams);

for (const profile of Object.keys(PROFILES)) {
  describe(`profile ${profile}`, () => {
    let world;
    let resource;
    let scope;
    before(async () => { ({ world, resource, scope } = await profileWorld(profile)); });
    after(async () => { await resource?.close(); await world?.close(); });

    test(`${profile}: MCP TS SDK auth() signs in with a CIMD client_id, refreshes twice, the resource accepts each token for its audience`, async () => {
      const { provider, calls } = await tsSdkJourney(world, resource, `mcp-ts-${profile}`);
      for (const call of calls) {
        assert.equal(call.sub, TEST_USER.sub);
        assert.equal(call.aud, resource.audience);
      }
      assertAllAccepted(resource, provider.savedTokens.map((t) => fingerprint(t.access_token)), resource.audience);
    });

    test(`${profile}: MCP Python SDK OAuthClientProvider (RFC 9207 iss checked) signs in, refreshes twice, the resource accepts each token`, async () => {
      const { summary } = await pythonSdkJourney(world, resource, `mcp-python-${profile}`);
      for (const call of summary.calls) {
        assert.equal(call.sub, TEST_USER.sub);
        assert.equal(call.aud, resource.audience);
      }
      assertAllAccepted(resource, summary.saved_tokens.map((t) => t.access_token), resource.audience);
    });

    for (const privateKeyJwt of [false, true]) {
      const kind = privateKeyJwt ? 'private_key_jwt' : 'public';
      test(`${profile}: openid-client (${kind}) signs in for the resource, refreshes twice, the resource accepts each token`, async () => {
        const { tokens, calls } = await openidClientJourney(world, resource, `oidc-${kind}-${profile}`, { scope, privateKeyJwt });
        assert.equal(calls.length, 3);
        for (const call of calls) {
          assert.equal(call.sub, TEST_USER.sub);
          assert.equal(call.aud, resource.audience);
        }
        assertAllAccepted(resource, tokens.map((t) => fingerprint(t.access_token)), resource.audience);
      });
    }

    if (profile === 'entra') {
      test('entra: the sign-in reaches Entra as scopes only: mcp qualified with the App ID URI, offline_access added, no resource', async () => {
        const before = upstreamAuthorizations(world).length;
        await openidClientJourney(world, resource, 'oidc-entra-upstream', { scope });
        const sent = upstreamAuthorizations(world).slice(before);
        assert.equal(sent.length, 1);
        for (const params of sent) {
          assert.equal(params.get('resource'), null, 'Entra refuses resource (AADSTS9010010)');
          const scopes = params.get('scope').split(' ');
          assert.ok(scopes.includes(`${ENTRA_APP_ID_URI}/mcp`), params.get('scope'));
          assert.ok(scopes.includes('offline_access'), 'every client here may refresh');
          assert.ok(!scopes.includes('mcp'), 'no bare custom scope (AADSTS650053)');
        }
      });

      test('entra: an unlisted resource is invalid_target at the client; a refresh asking a wider scope is invalid_scope', async () => {
        const { config, redirectUri, tokens } = await openidClientJourney(world, resource, 'oidc-entra-refusals', { scope });
        const before = world.provider.requests.length;
        const refused = await authorizeAndStop(config, redirectUri, { scope, resource: 'http://127.0.0.1:9/elsewhere' });
        assert.equal(refused.get('error'), 'invalid_target');
        assert.equal(refused.get('iss'), world.proxy.issuer);
        assert.equal(world.provider.requests.length, before, 'refused before the provider');
        await assert.rejects(
          oidc.refreshTokenGrant(config, tokens.at(-1).refresh_token, { scope: `${scope} admin` }),
          (err) => { assert.equal(err.error, 'invalid_scope', err.message); return true; },
        );
        // The refresh token still works for what was granted.
        const narrowed = await oidc.refreshTokenGrant(config, tokens.at(-1).refresh_token, { scope: 'mcp' });
        assert.ok(narrowed.access_token);
      });
    }

    if (profile === 'generic' || profile === 'okta') {
      test(`${profile}: prompt=none without a session at the provider is login_required at the client, not access_denied`, async () => {
        const name = `oidc-prompt-none-${profile}`;
        const { config, redirectUri } = await openidClientJourney(world, resource, name, { scope });
        const answer = await authorizeAndStop(config, redirectUri, { scope, prompt: 'none', resource: resource.url });
        assert.equal(answer.get('error'), 'login_required');
        assert.equal(answer.get('iss'), world.proxy.issuer);
        assert.equal(answer.get('code'), null);
      });
    }

    if (profile === 'generic') {
      test('the protected resource refuses a valid token issued for another resource (its audience check can fail)', async () => {
        const other = await startResource({
          authorizationServer: world.proxy.issuer,
          verify: introspectionVerifier(world.provider, RESOURCE_CLIENT, RESOURCE_SECRET),
        });
        try {
          const { provider } = await tsSdkJourney(world, resource, 'mcp-ts-other');
          const res = await fetch(other.url, {
            method: 'POST',
            headers: { authorization: `Bearer ${provider.tokens().access_token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
            body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
          });
          await res.arrayBuffer();
          assert.equal(res.status, 401);
          assert.match(res.headers.get('www-authenticate'), /error="invalid_token"/);
          assert.deepEqual(other.refused.map((r) => [r.reason, r.aud]), [['audience', resource.url]]);
          assert.deepEqual(other.accepted, []);
        } finally {
          await other.close();
        }
      });
    }
  });
}
