// The proxy's metadata: RFC 8414 and OpenID discovery naming the proxy as the
// issuer, its JWKS, and RFC 9728 protected resource metadata.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createWorld } from './lib/world.js';

let world;
let resource;
before(async () => {
  world = await createWorld('10-discovery', {
    proxy: (w) => {
      resource = `${w.proxyPublicUrl}/mcp`;
      // offline_access is configured, and left out of the resource's metadata (MCP 2026-07).
      return { resource: { resource, scopes_supported: ['openid', 'offline_access', 'mcp:tools'] } };
    },
  });
});
after(async () => { await world?.close(); });

async function getJson(url) {
  const res = await fetch(url, { redirect: 'manual' });
  const text = await res.text();
  return { status: res.status, contentType: res.headers.get('content-type'), json: text ? JSON.parse(text) : undefined };
}

for (const path of ['/.well-known/oauth-authorization-server', '/.well-known/openid-configuration']) {
  test(`GET ${path} names the proxy as issuer and advertises CIMD`, async () => {
    const issuer = world.proxy.issuer;
    const { status, contentType, json: m } = await getJson(world.proxy.url(path));
    assert.equal(status, 200);
    assert.match(contentType, /^application\/json/);
    assert.equal(m.issuer, issuer);
    assert.equal(m.authorization_endpoint, `${issuer}/authorize`);
    assert.equal(m.token_endpoint, `${issuer}/token`);
    assert.equal(m.jwks_uri, `${issuer}/jwks.json`);
    assert.deepEqual(m.code_challenge_methods_supported, ['S256']);
    assert.ok(m.token_endpoint_auth_methods_supported.includes('none'));
    assert.ok(m.token_endpoint_auth_methods_supported.includes('private_key_jwt'));
    assert.ok(!m.token_endpoint_auth_methods_supported.some((x) => x.startsWith('client_secret')),
      'a CIMD client never has a shared secret');
    assert.equal(m.client_id_metadata_document_supported, true);
    assert.equal(m.authorization_response_iss_parameter_supported, true);
    assert.ok(m.response_types_supported.includes('code'));
    assert.ok(m.grant_types_supported.includes('authorization_code'));
    assert.ok(m.grant_types_supported.includes('refresh_token'));
    assert.equal(m.registration_endpoint, undefined, 'no dynamic registration');
    // Carried over from the provider.
    assert.equal(m.userinfo_endpoint, world.provider.url('/me'));
    for (const scope of ['openid', 'profile', 'email', 'offline_access']) {
      assert.ok(m.scopes_supported.includes(scope), `scopes_supported has ${scope}`);
    }
    for (const claim of ['sub', 'name', 'email']) {
      assert.ok(m.claims_supported.includes(claim), `claims_supported has ${claim}`);
    }
    // Nothing of the provider's own endpoints leaks through.
    assert.ok(!JSON.stringify(m).includes(`${world.provider.issuer}/auth`), 'no provider authorization endpoint');
    assert.ok(!JSON.stringify(m).includes(`${world.provider.issuer}/token`), 'no provider token endpoint');
  });
}

test('GET /jwks.json publishes the P-256 signing key, public parts only', async () => {
  const { status, json } = await getJson(world.proxy.url('/jwks.json'));
  assert.equal(status, 200);
  assert.equal(json.keys.length, 1);
  const [key] = json.keys;
  assert.equal(key.kty, 'EC');
  assert.equal(key.crv, 'P-256');
  assert.equal(key.alg, 'ES256');
  assert.equal(key.use, 'sig');
  assert.ok(key.kid, 'a kid');
  assert.equal(key.d, undefined, 'no private part');
});

for (const path of ['/.well-known/oauth-protected-resource', '/.well-known/oauth-protected-resource/mcp']) {
  test(`GET ${path} returns RFC 9728 metadata naming the proxy`, async () => {
    const { status, json } = await getJson(world.proxy.url(path));
    assert.equal(status, 200);
    assert.equal(json.resource, resource);
    assert.deepEqual(json.authorization_servers, [world.proxy.issuer]);
    assert.deepEqual(json.scopes_supported, ['openid', 'mcp:tools'], 'no offline_access: not a resource scope');
  });
}

test('the admin listener answers /healthz and /readyz, and is not the public one', async () => {
  assert.equal((await fetch(`${world.proxy.admin}/healthz`)).status, 200);
  assert.equal((await fetch(`${world.proxy.admin}/readyz`)).status, 200);
  const onPublic = await fetch(world.proxy.url('/healthz'));
  assert.equal(onPublic.status, 404);
});
