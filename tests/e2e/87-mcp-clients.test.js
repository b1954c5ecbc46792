// The MCP SDKs' OAuth clients against the proxy as it is today, in front of a
// protected MCP resource that checks every token's audience (lib/resource.js):
// the MCP TypeScript SDK's auth() and the MCP Python SDK's OAuthClientProvider
// each sign in with a CIMD client_id, refresh twice and call the resource.
// Against the Entra layer (lib/quirks.js), both SDKs do the same with the
// operator workaround of today: resource_parameter = "drop" and a
// resource_scopes line naming api://…/.default offline_access. The journeys
// themselves are in lib/mcp-clients.js.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createWorld } from './lib/world.js';
import { TEST_USER } from './lib/provider.js';
import { ENTRA_APP_ID_URI } from './lib/quirks.js';
import { startResource, introspectionClient, introspectionVerifier, jwtVerifier, fingerprint } from './lib/resource.js';
import { tsSdkJourney, pythonSdkJourney, assertAllAccepted } from './lib/mcp-clients.js';

const RESOURCE_CLIENT = 'mcp-resource';
const RESOURCE_SECRET = randomBytes(24).toString('base64url');

describe('generic provider, the proxy as it is', () => {
  let world;
  let resource;
  before(async () => {
    world = await createWorld('87-mcp-clients-generic', {
      providerClients: [introspectionClient(RESOURCE_CLIENT, RESOURCE_SECRET)],
    });
    resource = await startResource({
      authorizationServer: world.proxy.issuer,
      verify: introspectionVerifier(world.provider, RESOURCE_CLIENT, RESOURCE_SECRET),
      // No offline_access: per MCP 2026-07 (see issue 11) a resource does not advertise it;
      // whether a client gets a refresh token is between the client, the proxy and the provider.
      scopesSupported: ['openid', 'mcp:tools'],
    });
  });
  after(async () => { await resource?.close(); await world?.close(); });

  test('MCP TS SDK auth(): CIMD sign-in through the proxy, two refreshes, each token accepted by the resource for its audience', async () => {
    const { provider, calls } = await tsSdkJourney(world, resource, 'mcp-ts-generic');
    assert.equal(calls.length, 3);
    for (const call of calls) {
      assert.equal(call.sub, TEST_USER.sub);
      assert.equal(call.aud, resource.url, 'the token is bound to the resource (RFC 8707 forwarded)');
    }
    assertAllAccepted(resource, provider.savedTokens.map((t) => fingerprint(t.access_token)), resource.url);
  });

  test('MCP Python SDK OAuthClientProvider: CIMD sign-in through the proxy (RFC 9207 iss checked), two refreshes, resource accepts each token', async () => {
    const { summary } = await pythonSdkJourney(world, resource, 'mcp-python-generic');
    for (const call of summary.calls) {
      assert.equal(call.sub, TEST_USER.sub);
      assert.equal(call.aud, resource.url);
    }
    assertAllAccepted(resource, summary.saved_tokens.map((t) => t.access_token), resource.url);
  });

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
});

describe('entra layer, the proxy with today\'s operator workaround', () => {
  let world;
  let resource;
  before(async () => {
    world = await createWorld('87-mcp-clients-entra', { quirks: 'entra', proxy: false });
    resource = await startResource({
      authorizationServer: world.proxyPublicUrl,
      audience: ENTRA_APP_ID_URI,
      verify: jwtVerifier(world.provider),
      // A bare custom scope would be refused by Entra (AADSTS650053) until the proxy qualifies it.
      scopesSupported: ['openid'],
    });
    world.proxy = await world.startProxy({
      name: 'proxy',
      port: world.proxyPort,
      resourceParameter: 'drop',
      resourceScopes: { [resource.url]: `${ENTRA_APP_ID_URI}/.default offline_access` },
    });
  });
  after(async () => { await resource?.close(); await world?.close(); });

  test('MCP TS SDK auth() against Entra with resource_parameter = "drop" and resource_scopes: signs in, refreshes twice, tokens carry the App ID URI audience', async () => {
    const { provider, calls } = await tsSdkJourney(world, resource, 'mcp-ts-entra');
    const upstream = world.provider.requests.filter((r) => r.url.startsWith('/auth?')).map((r) => new URL(r.url, world.provider.origin));
    assert.equal(upstream.length, 1);
    assert.equal(upstream[0].searchParams.get('resource'), null, 'the proxy dropped resource, which Entra refuses');
    assert.deepEqual(upstream[0].searchParams.get('scope').split(' ').sort(), ['openid', 'offline_access', `${ENTRA_APP_ID_URI}/.default`].sort());
    for (const call of calls) {
      assert.equal(call.sub, TEST_USER.sub);
      assert.equal(call.aud, ENTRA_APP_ID_URI);
    }
    assertAllAccepted(resource, provider.savedTokens.map((t) => fingerprint(t.access_token)), ENTRA_APP_ID_URI);
  });

  test('MCP Python SDK against Entra with the same workaround: signs in (no iss from Entra, the proxy\'s on the callback), refreshes twice, App ID URI audience', async () => {
    const { summary } = await pythonSdkJourney(world, resource, 'mcp-python-entra');
    for (const call of summary.calls) {
      assert.equal(call.sub, TEST_USER.sub);
      assert.equal(call.aud, ENTRA_APP_ID_URI);
    }
    assertAllAccepted(resource, summary.saved_tokens.map((t) => t.access_token), ENTRA_APP_ID_URI);
  });
});
