// The upstream identity provider: oidc-provider on 127.0.0.1, with an
// account `test-user` and an interaction route that signs the user in and
// grants consent at once, so a whole authorization runs without any page.
import http from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { exportJWK } from 'jose';
import { listen, closeServer } from './net.js';
import { quirkLayer } from './quirks.js';

// oidc-provider 9 warns on every import under Node 20 (it prefers 22 LTS, and works on 20.19+)
// and on every instance about its in-memory adapter, which is what a test wants. Only those two
// known lines are dropped; every other warning goes through.
const KNOWN_NOISE = [/^oidc-provider WARNING: Unsupported runtime/, /^oidc-provider WARNING: a quick start development-only in-memory adapter/];
const consoleWarn = console.warn;
console.warn = (...args) => {
  if (typeof args[0] === 'string' && KNOWN_NOISE.some((re) => re.test(args[0]))) return;
  consoleWarn(...args);
};
const { default: Provider, errors } = await import('oidc-provider');

export const TEST_USER = Object.freeze({
  sub: 'test-user',
  name: 'Test User',
  email: 'test-user@example.test',
  email_verified: true,
});

/**
 * More accounts for tests that need several people: `login_hint=test-user-<n>` signs in that one
 * (same claims, its own sub); any other hint, or none, signs in `test-user`.
 */
const OTHER_USER = /^test-user-[0-9]{1,4}$/;
const accountFor = (hint) => (OTHER_USER.test(hint ?? '') ? hint : TEST_USER.sub);

/**
 * Starts the provider. `clients` are static clients (oidc-provider client
 * metadata). `resourceIndicators`: accept any http(s) loopback resource.
 * `quirks`: a provider quirk layer's name (`generic`, `entra`, `okta`, `google`: see quirks.js)
 * or `{ name, ...options }`; the layer may put the issuer under a path.
 * `publicOrigin`: the origin clients reach it at when something stands in front of it (the gate
 * tests' NGINX), which becomes its issuer. `configure(configuration)`: changes the configuration
 * before the provider is made (e.g. a feature turned on).
 * Returns { issuer, port, provider, quirks (the layer), requests, url(path), stop(), start(), setTokenDelay(ms) } — `stop()`
 * closes the listener and every open connection (to test "provider down"), `start()` reopens it on the
 * same port, `setTokenDelay(ms)` makes the token endpoint answer `ms` late (0: at once again).
 */
export async function startProvider({ clients, port = 0, log = () => {}, quirks = 'generic', publicOrigin, configure } = {}) {
  const layer = typeof quirks === 'string' ? quirkLayer(quirks) : quirkLayer(quirks.name, quirks);
  const prefix = layer.issuerPath;
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const signingJwk = { ...(await exportJWK(privateKey)), use: 'sig', alg: 'RS256', kid: 'provider-key-1' };

  const server = http.createServer();
  const actualPort = await listen(server, port, '127.0.0.1');
  const origin = `http://127.0.0.1:${actualPort}`;
  const issuer = `${publicOrigin ?? origin}${prefix}`;

  const configuration = {
    clients,
    jwks: { keys: [signingJwk] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    claims: {
      openid: ['sub'],
      profile: ['name'],
      email: ['email', 'email_verified'],
    },
    scopes: ['openid', 'offline_access', 'profile', 'email'],
    async findAccount(_ctx, sub) {
      if (sub !== TEST_USER.sub && !OTHER_USER.test(sub)) return undefined;
      return { accountId: sub, async claims() { return { ...TEST_USER, sub }; } };
    },
    features: {
      devInteractions: { enabled: false },
      registration: { enabled: false },
      // As a real provider: a client revokes only its own tokens.
      revocation: { enabled: true, allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId },
      // For protected resources that check opaque tokens (lib/resource.js): confidential callers only.
      introspection: { enabled: true, allowedPolicy: async (_ctx, client) => client.clientAuthMethod !== 'none' },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx, _client, oneOf) => oneOf,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, resource) => ({
          scope: 'mcp:tools mcp:resources',
          audience: resource,
          accessTokenFormat: 'opaque',
        }),
      },
    },
    pkce: { required: () => true },
    // Refresh tokens for every authorization_code grant of a client allowed the refresh_token grant.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    interactions: { url: (_ctx, interaction) => `${prefix}/interaction/${interaction.uid}` },
    ttl: {
      AccessToken: 600,
      AuthorizationCode: 120,
      IdToken: 600,
      RefreshToken: 3600,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
    },
  };
  layer.configure(configuration, errors);
  configure?.(configuration);
  const provider = new Provider(issuer, configuration);
  // A slow token endpoint on demand (a Koa middleware ahead of the provider's own routes).
  let tokenDelayMs = 0;
  provider.use(async (ctx, next) => {
    if (tokenDelayMs && ctx.method === 'POST' && ctx.path === '/token') {
      await new Promise((resolve) => { setTimeout(resolve, tokenDelayMs); });
    }
    await next();
  });
  layer.install(provider);
  provider.on('server_error', (_ctx, err) => log(`server_error: ${err?.stack || err}`));
  provider.on('grant.error', (_ctx, err) => log(`grant.error: ${err?.message} ${err?.error_description || ''}`));
  provider.on('authorization.error', (_ctx, err) => log(`authorization.error: ${err?.message} ${err?.error_description || ''}`));

  const providerCallback = provider.callback();
  const requests = [];

  server.on('request', (req, res) => {
    requests.push({ method: req.method, url: req.url });
    if (prefix) {
      // A path issuer: everything lives under it; oidc-provider finds its mount path from originalUrl.
      const [path] = req.url.split('?');
      if (path !== prefix && !path.startsWith(`${prefix}/`)) {
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('not found');
        return;
      }
      req.originalUrl = req.url;
      req.url = req.url.slice(prefix.length) || '/';
      if (req.url.startsWith('?')) req.url = `/${req.url}`;
    }
    if (req.method === 'GET' && /^\/interaction\/[^/]+$/.test(req.url.split('?')[0])) {
      finishInteraction(provider, layer, req, res).catch((err) => {
        log(`interaction failed: ${err?.stack || err}`);
        if (!res.headersSent) {
          res.statusCode = 500;
          res.end(String(err?.message || err));
        }
      });
      return;
    }
    providerCallback(req, res);
  });

  return {
    issuer,
    origin,
    port: actualPort,
    provider,
    quirks: layer,
    requests,
    url: (path) => `${issuer}${path}`,
    async stop() { await closeServer(server); },
    async start() { await listen(server, actualPort, '127.0.0.1'); },
    setTokenDelay(ms) { tokenDelayMs = ms; },
  };
}

/** Signs `test-user` (or the `login_hint` account) in and grants every requested scope, claim and resource, then resumes. */
async function finishInteraction(provider, layer, req, res) {
  const interaction = await provider.interactionDetails(req, res);
  const { params } = interaction;
  let grant;
  if (interaction.grantId) {
    grant = await provider.Grant.find(interaction.grantId);
  }
  if (!grant) {
    grant = new provider.Grant({ accountId: accountFor(params.login_hint), clientId: params.client_id });
  }
  if (params.scope) grant.addOIDCScope(params.scope);
  if (params.claims) {
    const claims = JSON.parse(params.claims);
    const names = [...Object.keys(claims.id_token || {}), ...Object.keys(claims.userinfo || {})];
    if (names.length) grant.addOIDCClaims(names);
  }
  const resources = params.resource === undefined ? [] : [].concat(params.resource);
  for (const resource of resources) {
    grant.addResourceScope(resource, params.scope || '');
  }
  const grantId = await grant.save();
  layer.onConsent(interaction, grantId);
  await provider.interactionFinished(req, res, {
    login: { accountId: accountFor(params.login_hint), remember: false },
    consent: { grantId },
  }, { mergeWithLastSubmission: false });
}
