// A protected MCP resource on loopback: the MCP TypeScript SDK's server
// (stateless Streamable HTTP) behind a bearer check. It publishes RFC 9728
// metadata naming the proxy as its authorization server, and accepts a
// token only when the provider vouches for it (introspection for opaque
// tokens, the provider's keys for JWTs) and its audience is the one this
// resource expects.
import http from 'node:http';
import { createHash } from 'node:crypto';
import * as jose from 'jose';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { listen, closeServer } from './net.js';

/** The registration a resource needs at the provider to introspect tokens (a confidential client with no grants). */
export function introspectionClient(clientId, secret) {
  return {
    client_id: clientId,
    client_secret: secret,
    token_endpoint_auth_method: 'client_secret_basic',
    redirect_uris: [],
    grant_types: [],
    response_types: [],
  };
}

/**
 * Checks opaque tokens at the provider's RFC 7662 introspection endpoint as `clientId`.
 * Returns a function token → claims ({ active, aud, sub, scope, client_id, … }).
 */
export function introspectionVerifier(provider, clientId, secret) {
  let endpoint;
  return async (token) => {
    endpoint ??= (await (await fetch(provider.url('/.well-known/openid-configuration'))).json()).introspection_endpoint;
    const res = await fetch(endpoint, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`,
      },
      body: new URLSearchParams({ token }).toString(),
    });
    if (res.status !== 200) throw new Error(`introspection answered ${res.status}`);
    return res.json();
  };
}

/** Checks JWT access tokens against the provider's keys and issuer. Returns a function token → claims (active: true). */
export function jwtVerifier(provider) {
  let jwks;
  return async (token) => {
    jwks ??= jose.createRemoteJWKSet(new URL((await (await fetch(provider.url('/.well-known/openid-configuration'))).json()).jwks_uri));
    const { payload } = await jose.jwtVerify(token, jwks, { issuer: provider.issuer });
    return { active: true, ...payload };
  };
}

/** A short digest of a token, to match it across logs without keeping it (the Python client uses the same). */
export const fingerprint = (token) => createHash('sha256').update(token).digest('hex').slice(0, 16);

const audiences = (aud) => (Array.isArray(aud) ? aud : aud === undefined ? [] : [aud]);

/**
 * Starts the resource on 127.0.0.1. `authorizationServer`: the issuer its metadata names (the
 * proxy); `audience`: the audience a token must carry (default: the resource's own URL, RFC 8707);
 * `verify`: token → claims (introspectionVerifier / jwtVerifier); `scopesSupported`: advertised scopes.
 * Returns { url (the MCP endpoint, which is also the resource identifier), metadataUrl, accepted,
 * refused, close() }: `accepted` / `refused` list { token (fingerprint), aud, sub, scope, reason } per bearer request.
 * Its one tool, `whoami`, answers the verified claims as JSON.
 */
export async function startResource({ authorizationServer, audience, verify, scopesSupported = [] }) {
  const accepted = [];
  const refused = [];
  let origin;
  let resourceUrl;
  let metadataUrl;

  const challenge = (res, error, description) => {
    const parts = [`resource_metadata="${metadataUrl}"`];
    if (scopesSupported.length) parts.push(`scope="${scopesSupported.join(' ')}"`);
    if (error) parts.push(`error="${error}"`, `error_description="${description}"`);
    res.writeHead(401, { 'www-authenticate': `Bearer ${parts.join(', ')}`, 'content-type': 'application/json' });
    res.end(JSON.stringify(error ? { error, error_description: description } : { error: 'unauthorized' }));
  };

  /** The verified claims of the request's bearer token, or undefined after answering 401. */
  async function authenticate(req, res) {
    const header = req.headers.authorization ?? '';
    const match = /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/.exec(header);
    if (!match) { challenge(res); return undefined; }
    let claims;
    try {
      claims = await verify(match[1]);
    } catch (e) {
      refused.push({ token: fingerprint(match[1]), reason: `not verified: ${e.code ?? e.message}` });
      challenge(res, 'invalid_token', 'the token could not be verified');
      return undefined;
    }
    const expected = audience ?? resourceUrl;
    const entry = { token: fingerprint(match[1]), aud: claims.aud, sub: claims.sub, scope: claims.scope, client_id: claims.client_id };
    if (!claims.active) {
      refused.push({ ...entry, reason: 'inactive' });
      challenge(res, 'invalid_token', 'the token is not active');
      return undefined;
    }
    if (!audiences(claims.aud).includes(expected)) {
      refused.push({ ...entry, reason: 'audience' });
      challenge(res, 'invalid_token', 'the token is not for this resource');
      return undefined;
    }
    accepted.push(entry);
    return { token: match[1], claims };
  }

  function mcpServer(claims) {
    const server = new McpServer({ name: 'cimd-e2e-resource', version: '1.0.0' });
    server.registerTool('whoami', { description: 'The verified claims of the caller\'s access token.' }, async () => ({
      content: [{ type: 'text', text: JSON.stringify({ sub: claims.sub, aud: claims.aud, scope: claims.scope }) }],
    }));
    return server;
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((e) => {
      if (!res.headersSent) { res.writeHead(500, { 'content-type': 'text/plain' }); }
      res.end(String(e?.message ?? e));
    });
  });

  async function handle(req, res) {
    const path = req.url.split('?')[0];
    if (req.method === 'GET' && path === '/.well-known/oauth-protected-resource/mcp') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({
        resource: resourceUrl,
        authorization_servers: [authorizationServer],
        scopes_supported: scopesSupported,
        bearer_methods_supported: ['header'],
        resource_name: 'cimd-proxy e2e resource',
      }));
      return;
    }
    if (path !== '/mcp') {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
      return;
    }
    const auth = await authenticate(req, res);
    if (!auth) return;
    if (req.method !== 'POST') {
      // Stateless: no server-initiated stream, no session to end.
      res.writeHead(405, { allow: 'POST', 'content-type': 'text/plain' });
      res.end('method not allowed');
      return;
    }
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end('not JSON');
      return;
    }
    // One server and transport per request (the SDK's stateless pattern).
    const mcp = mcpServer(auth.claims);
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on('close', () => { Promise.allSettled([transport.close(), mcp.close()]); });
    await mcp.connect(transport);
    req.auth = { token: auth.token, clientId: String(auth.claims.client_id ?? ''), scopes: String(auth.claims.scope ?? '').split(' ').filter(Boolean) };
    await transport.handleRequest(req, res, body);
  }

  const port = await listen(server, 0, '127.0.0.1');
  origin = `http://127.0.0.1:${port}`;
  resourceUrl = `${origin}/mcp`;
  metadataUrl = `${origin}/.well-known/oauth-protected-resource/mcp`;
  return {
    url: resourceUrl,
    metadataUrl,
    accepted,
    refused,
    close: () => closeServer(server),
  };
}
