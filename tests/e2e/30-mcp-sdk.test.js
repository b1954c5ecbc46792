// The MCP TypeScript SDK's OAuth client (client/auth.js) against the proxy:
// it discovers the proxy from the resource's RFC 9728 metadata, sees
// client_id_metadata_document_supported, uses its document URL as client_id
// (no dynamic registration: the proxy has no registration endpoint), and
// completes the code flow and a refresh.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as jose from 'jose';
import { auth } from '@modelcontextprotocol/sdk/client/auth.js';
import { createWorld } from './lib/world.js';
import { Browser } from './lib/browser.js';
import { publicClientDocument } from './lib/oauth.js';
import { freePort } from './lib/net.js';
import { TEST_USER } from './lib/provider.js';

// The operator lists offline_access; the resource metadata leaves it out (MCP 2026-07: a
// resource should not advertise it), so the SDK, which asks for what the resource lists, does not.
const CONFIGURED_SCOPES = ['openid', 'offline_access', 'mcp:tools'];
const PRM_SCOPES = ['openid', 'mcp:tools'];

let world;
let serverUrl;
before(async () => {
  world = await createWorld('30-mcp-sdk', {
    proxy: (w) => {
      serverUrl = `${w.proxyPublicUrl}/mcp`;
      return { resource: { resource: serverUrl, scopes_supported: CONFIGURED_SCOPES } };
    },
  });
});
after(async () => { await world?.close(); });

/** An OAuthClientProvider that keeps everything in memory and records what the SDK does. */
class RecordingProvider {
  constructor({ clientMetadataUrl, redirectUrl }) {
    this.clientMetadataUrl = clientMetadataUrl;
    this.redirectUrl = redirectUrl;
    this.authorizationUrls = [];
    this.savedClientInformation = [];
    this.savedTokens = [];
    this.stateValue = undefined;
  }

  get clientMetadata() {
    return {
      client_name: 'MCP SDK e2e',
      redirect_uris: [this.redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }

  state() { this.stateValue = jose.base64url.encode(crypto.getRandomValues(new Uint8Array(16))); return this.stateValue; }

  clientInformation() { return this.savedClientInformation.at(-1); }

  saveClientInformation(info) { this.savedClientInformation.push(info); }

  tokens() { return this.savedTokens.at(-1); }

  saveTokens(tokens) { this.savedTokens.push(tokens); }

  redirectToAuthorization(url) { this.authorizationUrls.push(new URL(url)); }

  saveCodeVerifier(verifier) { this.verifier = verifier; }

  codeVerifier() { return this.verifier; }
}

test('MCP SDK auth(): CIMD client_id from clientMetadataUrl, code flow, tokens saved, refresh', async () => {
  const redirectUrl = `http://127.0.0.1:${await freePort()}/mcp/oauth/callback`;
  const clientId = world.docs.addClient('mcp-sdk', (id) => publicClientDocument(id, [redirectUrl], { client_name: 'MCP SDK e2e' }));
  const provider = new RecordingProvider({ clientMetadataUrl: clientId, redirectUrl });

  const requests = [];
  const fetchFn = async (url, init = {}) => {
    requests.push({ url: String(url), method: init.method ?? 'GET' });
    return fetch(url, init);
  };

  // 1. Discovery and the authorization request.
  assert.equal(await auth(provider, { serverUrl, fetchFn }), 'REDIRECT');
  assert.deepEqual(provider.savedClientInformation.map((c) => c.client_id), [clientId],
    'the SDK used the document URL as its client_id');
  assert.ok(!requests.some((r) => r.method === 'POST'), `no registration attempted: ${JSON.stringify(requests)}`);
  assert.ok(requests.some((r) => r.url === `${world.proxy.issuer}/.well-known/oauth-protected-resource/mcp`),
    'protected resource metadata read at the path-inserted URL');
  assert.equal(provider.authorizationUrls.length, 1);
  const authorizationUrl = provider.authorizationUrls[0];
  assert.equal(`${authorizationUrl.origin}${authorizationUrl.pathname}`, `${world.proxy.issuer}/authorize`);
  assert.equal(authorizationUrl.searchParams.get('client_id'), clientId);
  assert.equal(authorizationUrl.searchParams.get('redirect_uri'), redirectUrl);
  assert.equal(authorizationUrl.searchParams.get('code_challenge_method'), 'S256');
  assert.equal(authorizationUrl.searchParams.get('resource'), serverUrl);
  assert.equal(authorizationUrl.searchParams.get('scope'), PRM_SCOPES.join(' '));

  // 2. The user's browser.
  const target = new URL(redirectUrl);
  const { stoppedAt, hops } = await new Browser().follow(authorizationUrl.href, {
    stop: (u) => u.origin === target.origin && u.pathname === target.pathname,
  });
  assert.ok(stoppedAt, `never reached the redirect URL: ${JSON.stringify(hops, null, 1)}`);
  assert.equal(stoppedAt.searchParams.get('error'), null, stoppedAt.href);
  assert.equal(stoppedAt.searchParams.get('state'), provider.stateValue);
  assert.equal(stoppedAt.searchParams.get('iss'), world.proxy.issuer);
  const code = stoppedAt.searchParams.get('code');
  assert.ok(code);

  // 3. The code exchange.
  assert.equal(await auth(provider, { serverUrl, authorizationCode: code, fetchFn }), 'AUTHORIZED');
  const tokens = provider.tokens();
  assert.ok(tokens.access_token);
  assert.equal(tokens.token_type.toLowerCase(), 'bearer');
  assert.ok(tokens.refresh_token, 'a generic provider gives a refresh token without offline_access');
  assert.ok(tokens.id_token, 'openid gives an id_token');
  const jwks = jose.createRemoteJWKSet(new URL(world.proxy.url('/jwks.json')));
  const { payload } = await jose.jwtVerify(tokens.id_token, jwks, { issuer: world.proxy.issuer, audience: clientId });
  assert.equal(payload.sub, TEST_USER.sub);
  const tokenPosts = requests.filter((r) => r.method === 'POST');
  assert.deepEqual(tokenPosts.map((r) => r.url), [`${world.proxy.issuer}/token`]);

  // 4. A later auth() refreshes with the sealed refresh token.
  assert.equal(await auth(provider, { serverUrl, fetchFn }), 'AUTHORIZED');
  assert.equal(provider.authorizationUrls.length, 1, 'no second authorization was needed');
  assert.equal(provider.savedTokens.length, 2);
  assert.ok(provider.tokens().access_token);
  assert.notEqual(provider.tokens().access_token, tokens.access_token);
  assert.ok(!requests.some((r) => /regist/i.test(r.url)), 'never a registration endpoint');
});
