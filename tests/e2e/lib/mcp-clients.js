// The MCP SDKs as OAuth clients of the proxy, for tests that put them in front
// of the protected resource (resource.js): the TypeScript SDK's auth() with an
// in-memory OAuthClientProvider, and the Python SDK client
// (clients/mcp_python_client.py) run from target/e2e-venv.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import * as oidc from 'openid-client';
import * as jose from 'jose';
import { auth } from '@modelcontextprotocol/sdk/client/auth.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Browser } from './browser.js';
import { publicClientDocument } from './oauth.js';
import { rpConfig, signIn } from './rp.js';
import { freePort } from './net.js';
import { repoRoot } from './paths.js';

/** The Python with the MCP SDK: $MCP_PYTHON, or the venv scripts/test makes. */
export const PYTHON = process.env.MCP_PYTHON || path.join(repoRoot, 'target', 'e2e-venv', 'bin', 'python');
const PYTHON_CLIENT = path.join(repoRoot, 'tests', 'e2e', 'clients', 'mcp_python_client.py');

/** The MCP TypeScript SDK's OAuthClientProvider, kept in memory. */
export class MemoryProvider {
  constructor({ clientMetadataUrl, redirectUrl }) {
    this.clientMetadataUrl = clientMetadataUrl;
    this.redirectUrl = redirectUrl;
    this.authorizationUrls = [];
    this.savedTokens = [];
    this.info = undefined;
  }

  get clientMetadata() {
    return {
      client_name: 'MCP TS SDK e2e',
      redirect_uris: [this.redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }

  state() { this.stateValue = randomBytes(16).toString('base64url'); return this.stateValue; }

  clientInformation() { return this.info; }

  saveClientInformation(info) { this.info = info; }

  tokens() { return this.savedTokens.at(-1); }

  saveTokens(tokens) { this.savedTokens.push(tokens); }

  redirectToAuthorization(url) { this.authorizationUrls.push(new URL(url)); }

  saveCodeVerifier(verifier) { this.verifier = verifier; }

  codeVerifier() { return this.verifier; }
}

/** Calls the resource's whoami tool over Streamable HTTP with the provider's current access token. */
export async function whoami(serverUrl, provider) {
  const client = new Client({ name: 'cimd-e2e-ts', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(serverUrl), { authProvider: provider });
  await client.connect(transport);
  try {
    const result = await client.callTool({ name: 'whoami', arguments: {} });
    assert.ok(!result.isError, JSON.stringify(result));
    return JSON.parse(result.content[0].text);
  } finally {
    await client.close();
  }
}

/**
 * The TypeScript SDK's whole journey: auth() discovers the proxy from the resource, signs in with
 * the CIMD client_id (the browser hops scripted), then one call per token: after sign-in and after
 * each of two refreshes. Returns { provider, clientId, calls, requests }.
 */
export async function tsSdkJourney(world, resource, name) {
  const redirectUrl = `http://127.0.0.1:${await freePort()}/${name}/oauth/callback`;
  const clientId = world.docs.addClient(name, (id) => publicClientDocument(id, [redirectUrl], { client_name: 'MCP TS SDK e2e' }));
  const provider = new MemoryProvider({ clientMetadataUrl: clientId, redirectUrl });
  const requests = [];
  const fetchFn = async (url, init = {}) => {
    requests.push({ url: String(url), method: init.method ?? 'GET' });
    return fetch(url, init);
  };

  assert.equal(await auth(provider, { serverUrl: resource.url, fetchFn }), 'REDIRECT');
  assert.equal(provider.info?.client_id, clientId, 'the SDK used the document URL as its client_id');
  const authorizationUrl = provider.authorizationUrls[0];
  assert.equal(`${authorizationUrl.origin}${authorizationUrl.pathname}`, `${world.proxy.issuer}/authorize`);
  assert.equal(authorizationUrl.searchParams.get('resource'), resource.url);

  const target = new URL(redirectUrl);
  const { stoppedAt, hops } = await new Browser().follow(authorizationUrl.href, {
    stop: (u) => u.origin === target.origin && u.pathname === target.pathname,
  });
  assert.ok(stoppedAt, `never reached the redirect URL: ${JSON.stringify(hops, null, 1)}`);
  assert.equal(stoppedAt.searchParams.get('error'), null, stoppedAt.href);
  assert.equal(stoppedAt.searchParams.get('iss'), world.proxy.issuer);
  assert.equal(await auth(provider, { serverUrl: resource.url, authorizationCode: stoppedAt.searchParams.get('code'), fetchFn }), 'AUTHORIZED');
  assert.ok(provider.tokens().refresh_token, 'the sign-in gave a refresh token');

  const calls = [await whoami(resource.url, provider)];
  for (let i = 0; i < 2; i += 1) {
    const before = provider.tokens();
    assert.equal(await auth(provider, { serverUrl: resource.url, fetchFn }), 'AUTHORIZED');
    assert.notEqual(provider.tokens().access_token, before.access_token, `refresh ${i + 1} gave a new access token`);
    assert.ok(provider.tokens().refresh_token, `refresh ${i + 1} left a refresh token to use`);
    calls.push(await whoami(resource.url, provider));
  }
  assert.equal(provider.authorizationUrls.length, 1, 'the refreshes needed no second sign-in');
  const tokenPosts = requests.filter((r) => r.method === 'POST').map((r) => r.url);
  assert.deepEqual(tokenPosts, Array(3).fill(`${world.proxy.issuer}/token`), 'one code exchange and two refreshes, all at the proxy');
  return { provider, clientId, calls, requests };
}

/** Every access token the client saved reached the resource and was accepted; none was refused. */
export function assertAllAccepted(resource, accessTokenFingerprints, audience) {
  assert.deepEqual(resource.refused, [], 'the resource refused no token');
  for (const token of accessTokenFingerprints) {
    const seen = resource.accepted.filter((entry) => entry.token === token);
    assert.ok(seen.length > 0, 'each access token was presented to the resource and accepted');
    for (const entry of seen) assert.equal(entry.aud, audience);
  }
}

/** Runs the Python SDK client (clients/mcp_python_client.py); resolves with its JSON summary. */
export function runPythonClient(args, { timeoutMs = 45_000 } = {}) {
  if (!existsSync(PYTHON)) {
    throw new Error(`no Python with the MCP SDK at ${PYTHON}: run scripts/test once (it makes target/e2e-venv from tests/e2e/clients/requirements.txt), or set MCP_PYTHON`);
  }
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [PYTHON_CLIENT, JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) {
        reject(new Error(`the Python client exited ${code ?? signal}:\n${stderr.slice(-4000)}`));
        return;
      }
      try { resolve(JSON.parse(stdout)); } catch { reject(new Error(`not JSON from the Python client: ${stdout.slice(0, 2000)}\n${stderr.slice(-2000)}`)); }
    });
  });
}

/**
 * The Python SDK's whole journey (clients/mcp_python_client.py): sign-in with the CIMD client_id
 * `name` through the proxy, then one call after sign-in and after each of `refreshes` refreshes,
 * checked step by step. Returns { summary (the client's JSON), clientId }.
 */
export async function pythonSdkJourney(world, resource, name, { refreshes = 2 } = {}) {
  const redirectUri = `http://127.0.0.1:${await freePort()}/${name}/callback`;
  const clientId = world.docs.addClient(name, (id) => publicClientDocument(id, [redirectUri], { client_name: 'MCP Python SDK e2e' }));
  const summary = await runPythonClient({
    server_url: resource.url, client_metadata_url: clientId, redirect_uri: redirectUri, refreshes,
  });

  assert.equal(summary.client_id, clientId, 'the SDK used the document URL as its client_id (no registration)');
  assert.equal(summary.authorization_requests.length, 1, 'one sign-in');
  const [authorization] = summary.authorization_requests;
  assert.equal(authorization.endpoint, `${world.proxy.issuer}/authorize`);
  assert.equal(authorization.client_id, clientId);
  assert.equal(authorization.resource, resource.url);
  assert.equal(authorization.code_challenge_method, 'S256');
  const tokenEndpoint = `${world.proxy.issuer}/token`;
  assert.deepEqual(summary.token_requests.map((r) => [r.url, r.grant_type, r.client_id]), [
    [tokenEndpoint, 'authorization_code', clientId],
    ...Array(refreshes).fill([tokenEndpoint, 'refresh_token', clientId]),
  ], 'one code exchange, then the refreshes, all at the proxy');

  assert.equal(summary.saved_tokens.length, refreshes + 1, 'tokens saved after the code exchange and each refresh');
  assert.equal(new Set(summary.saved_tokens.map((t) => t.access_token)).size, refreshes + 1, 'each refresh gave a new access token');
  assert.ok(summary.saved_tokens.every((t) => t.refresh_token), 'a refresh token throughout');
  assert.equal(summary.calls.length, refreshes + 1);
  return { summary, clientId };
}

/** Calls the resource's whoami tool with a bare access token (no SDK auth provider). */
export async function whoamiWithToken(serverUrl, accessToken) {
  const client = new Client({ name: 'cimd-e2e-openid-client', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(serverUrl), {
    requestInit: { headers: { authorization: `Bearer ${accessToken}` } },
  });
  await client.connect(transport);
  try {
    const result = await client.callTool({ name: 'whoami', arguments: {} });
    assert.ok(!result.isError, JSON.stringify(result));
    return JSON.parse(result.content[0].text);
  } finally {
    await client.close();
  }
}

/**
 * openid-client's journey through the proxy for the resource: a CIMD client (public, or
 * `privateKeyJwt` with its key at a jwks_uri) signs in asking for `scope` and the resource
 * (RFC 8707), refreshes twice, and calls the resource after each step.
 * Returns { config, clientId, redirectUri, tokens (each step's), calls }.
 */
export async function openidClientJourney(world, resource, name, { scope, privateKeyJwt = false } = {}) {
  const redirectUri = `http://127.0.0.1:${await freePort()}/${name}/callback`;
  let clientAuth = oidc.None();
  let extra = {};
  if (privateKeyJwt) {
    const { publicKey, privateKey } = await jose.generateKeyPair('RS256');
    const kid = `${name}-key`;
    const jwk = { ...(await jose.exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
    extra = {
      token_endpoint_auth_method: 'private_key_jwt',
      jwks_uri: world.docs.serve(`/jwks/${name}.json`, { keys: [jwk] }),
    };
    clientAuth = oidc.PrivateKeyJwt({ key: privateKey, kid });
  }
  const clientId = world.docs.addClient(name, (id) => publicClientDocument(id, [redirectUri], { client_name: 'openid-client e2e', ...extra }));
  const config = await rpConfig(world.proxy, clientId, clientAuth);
  const run = await signIn(config, { redirectUri, scope, extra: { resource: resource.url } });
  assert.equal(run.callbackUrl.searchParams.get('iss'), world.proxy.issuer);
  assert.ok(run.tokens.refresh_token, 'the sign-in gave a refresh token');
  const tokens = [run.tokens];
  const calls = [await whoamiWithToken(resource.url, run.tokens.access_token)];
  for (let i = 0; i < 2; i += 1) {
    const refreshed = await oidc.refreshTokenGrant(config, tokens.at(-1).refresh_token);
    assert.notEqual(refreshed.access_token, tokens.at(-1).access_token, `refresh ${i + 1} gave a new access token`);
    assert.ok(refreshed.refresh_token, `refresh ${i + 1} left a refresh token to use`);
    tokens.push(refreshed);
    calls.push(await whoamiWithToken(resource.url, refreshed.access_token));
  }
  return { config, clientId, redirectUri, tokens, calls };
}
