// Provider quirk layers: the real oidc-provider, configured and wrapped in a
// few small Koa middlewares so that it behaves, on the wire, the way the
// identity providers people run do where they differ from the textbook
// (OAuth 2.1 + RFC 8707 + RFC 9207) provider that `generic` is.
//
// Each layer changes only what its provider documents; everything else stays
// oidc-provider's own behaviour. A world picks one with
// `createWorld(name, { quirks: 'entra' })` (options: `{ quirks: { name, ...options } }`).
// Known limits of the imitation are said where they are. oidc-provider's error
// classes come in through `configure` (provider.js imports the package once,
// behind its filter of known start-up warnings).

/** The layers there are; `generic` is the world every other test file runs in. */
export const QUIRKS = Object.freeze(['generic', 'entra', 'okta', 'google']);

/** The Entra app registration of the protected resource: its App ID URI is `api://<application id>`. */
export const ENTRA_APP_ID = '6b1f4c2e-8d3a-4f5b-9c7e-2a1d0e9f8b7c';
export const ENTRA_APP_ID_URI = `api://${ENTRA_APP_ID}`;

/** Okta's default custom authorization server: issuer path and configured audience. */
export const OKTA_ISSUER_PATH = '/oauth2/default';
export const OKTA_DEFAULT_AUDIENCE = 'api://default';

/** Scopes OIDC defines, which every provider here takes bare. */
const OIDC_SCOPES = new Set(['openid', 'profile', 'email', 'address', 'phone', 'offline_access']);

const splitScope = (scope) => String(scope ?? '').split(' ').filter(Boolean);

/**
 * The layer called `name` (one of QUIRKS). `options`:
 *  - entra: `appIdUri` (default ENTRA_APP_ID_URI), `exposedScopes` (default ['mcp']);
 *  - okta: `audience` (default OKTA_DEFAULT_AUDIENCE), `resourceScopes` (default 'mcp:tools mcp:resources');
 * Returns { name, issuerPath, configure(config, errors), install(provider), onConsent(interaction, grantId) }:
 * `configure(config, errors)` edits the oidc-provider configuration before the provider is built
 * (`errors`: oidc-provider's error classes, for refusals the provider answers as OAuth errors), `install`
 * adds middleware to it, `onConsent` is told about every interaction the test user completes.
 */
export function quirkLayer(name = 'generic', options = {}) {
  switch (name) {
    case 'generic': return genericLayer();
    case 'entra': return entraLayer(options);
    case 'okta': return oktaLayer(options);
    case 'google': return googleLayer(options);
    default: throw new Error(`unknown provider quirks "${name}" (one of ${QUIRKS.join(', ')})`);
  }
}

/** A layer that changes nothing. */
function baseLayer(name) {
  return {
    name,
    issuerPath: '',
    configure() {},
    install() {},
    onConsent() {},
  };
}

/**
 * generic: the textbook provider the rest of the suite runs against: RFC 8707 resources honoured
 * (any resource accepted, opaque access tokens whose audience is the resource), a refresh token
 * for every client allowed the refresh_token grant, RFC 9207 `iss` on every authorization response.
 */
function genericLayer() {
  return baseLayer('generic');
}

/**
 * Rewrites a GET authorization request's query before oidc-provider reads it (the world's
 * provider answers the authorization endpoint on GET only: `enableHttpPostMethods` is off).
 * `edit(params)` changes a URLSearchParams in place.
 */
function editAuthorizationQuery(provider, edit) {
  provider.use(async (ctx, next) => {
    if (ctx.method === 'GET' && ctx.path === '/auth') {
      const params = new URLSearchParams(ctx.querystring);
      edit(params);
      const before = ctx.url;
      const original = ctx.req.originalUrl;
      ctx.querystring = params.toString();
      // oidc-provider finds a path issuer's mount point by looking for the request URL in originalUrl.
      if (original) ctx.req.originalUrl = `${original.slice(0, original.indexOf(before))}${ctx.url}`;
    }
    await next();
  });
}

/**
 * Providers that follow OAuth 2.0 rather than OIDC Core §11 on `offline_access` issue a refresh
 * token for the scope alone. oidc-provider follows OIDC Core: it drops `offline_access` unless the
 * request also says `prompt=consent`. The imitation adds `prompt=consent` to a request that asks
 * for `offline_access` and names no prompt: every sign-in in this suite runs the interaction
 * anyway (fresh browser, no session), so nothing else changes. Limit: `offline_access` with an
 * explicit prompt other than consent (e.g. `prompt=none`) still gets no refresh token here.
 */
function offlineAccessWithoutConsentPrompt(params) {
  if (splitScope(params.get('scope')).includes('offline_access') && !params.has('prompt')) {
    params.set('prompt', 'consent');
  }
}

/** oidc-provider's default: a refresh token only for a grant that kept `offline_access`. */
async function refreshOnlyWithOfflineAccess(_ctx, client, code) {
  return client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access');
}

/**
 * entra: the Microsoft identity platform (v2.0 endpoints).
 *
 * - `resource` at the authorization endpoint is refused: the v2.0 endpoint has "scopes, not
 *   resources"; a request carrying both gets `invalid_target` with AADSTS9010010 ("The resource
 *   parameter provided in the request doesn't match with the requested scopes").
 *   https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow
 *   https://learn.microsoft.com/azure/active-directory/azuread-dev/azure-ad-endpoint-comparison#scopes-not-resources
 * - The audience is named inside the scope: `api://<app id>/.default` (everything the app
 *   registration was granted) or `api://<app id>/<scope>`; the access token is a JWT whose `aud`
 *   is the App ID URI (v1.0 access tokens, what an API registration whose
 *   `accessTokenAcceptedVersion` is unset gets; v2.0 ones carry the application id). A bare custom scope (`mcp:tools`) is taken as one of Microsoft Graph's and
 *   refused (AADSTS650053); scopes of two resources in one request are refused (AADSTS28000).
 *   https://learn.microsoft.com/entra/identity-platform/scopes-oidc
 *   https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference
 * - A refresh token only when `offline_access` was asked for (no `prompt=consent` needed).
 *   https://learn.microsoft.com/entra/identity-platform/scopes-oidc#offline_access
 * - No RFC 9207: no `iss` on the authorization response (success or error) and no
 *   `authorization_response_iss_parameter_supported` in its discovery document.
 *   https://learn.microsoft.com/entra/identity-platform/v2-protocols-oidc#find-your-apps-openid-configuration-document-uri
 */
function entraLayer({ appIdUri = ENTRA_APP_ID_URI, exposedScopes = ['mcp'] } = {}) {
  const layer = baseLayer('entra');
  layer.appIdUri = appIdUri;
  const resourceScopes = ['.default', ...exposedScopes].map((s) => `${appIdUri}/${s}`).join(' ');
  // Authorization requests whose resource came from their scopes, not from a `resource` parameter.
  const fromScopes = new WeakSet();
  layer.configure = (config, errors) => {
    config.issueRefreshToken = refreshOnlyWithOfflineAccess;
    config.features.resourceIndicators = {
      enabled: true,
      // No `resource` parameter: the audience comes from the api://… scopes (the only way to name one).
      defaultResource: async (ctx, _client, oneOf) => {
        if (oneOf !== undefined) return Array.isArray(oneOf) && oneOf.length === 1 ? oneOf[0] : oneOf;
        if (ctx.oidc.route !== 'authorization') return undefined;
        const audiences = new Set();
        for (const scope of splitScope(ctx.oidc.params.scope)) {
          if (OIDC_SCOPES.has(scope)) continue;
          const match = /^(api:\/\/[^/]+)\/[^/]+$/.exec(scope);
          if (!match) {
            throw new errors.InvalidScope(`AADSTS650053: The application asked for scope '${scope}' that doesn't exist on the resource '00000003-0000-0000-c000-000000000000'.`, scope);
          }
          audiences.add(match[1]);
        }
        if (audiences.size > 1) {
          throw new errors.InvalidRequest('AADSTS28000: Provided value for the input parameter scope is not valid because it contains more than one resource.');
        }
        fromScopes.add(ctx);
        return audiences.size === 1 ? [...audiences][0] : undefined;
      },
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, resource) => {
        if (ctx.oidc.route === 'authorization' && !fromScopes.has(ctx)) {
          throw new errors.InvalidTarget("AADSTS9010010: The resource parameter provided in the request doesn't match with the requested scopes.");
        }
        if (resource !== appIdUri) {
          throw new errors.InvalidTarget(`AADSTS500011: The resource principal named ${resource} was not found in the tenant.`);
        }
        return {
          scope: resourceScopes,
          audience: appIdUri,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    };
  };
  layer.install = (provider) => {
    editAuthorizationQuery(provider, offlineAccessWithoutConsentPrompt);
    provider.use(async (ctx, next) => {
      await next();
      if (ctx.method === 'GET' && ctx.path.startsWith('/.well-known/') && ctx.body && typeof ctx.body === 'object') {
        delete ctx.body.authorization_response_iss_parameter_supported;
      }
      // The authorization endpoint and its resume route answer with a redirect to the client.
      if (/^\/auth(\/|$)/.test(ctx.path) && ctx.status >= 300 && ctx.status < 400) {
        const location = ctx.response.get('location');
        if (location) {
          // Only the redirect to the client carries iss (the one to the interaction is relative).
          const url = URL.parse(location);
          if (url?.searchParams.has('iss')) {
            url.searchParams.delete('iss');
            ctx.response.set('location', url.href);
          }
        }
      }
    });
  };
  return layer;
}

/**
 * okta: a custom authorization server (the one every org has is `default`).
 *
 * - A path issuer, `https://<org>.okta.com/oauth2/default`; its discovery documents are at the
 *   path-appended `…/oauth2/default/.well-known/openid-configuration` (and
 *   `…/.well-known/oauth-authorization-server`).
 *   https://developer.okta.com/docs/concepts/auth-servers/
 * - RFC 8707 `resource` is not implemented: the parameter is ignored, and every access token is a
 *   JWT whose `aud` is the audience configured on the authorization server (`api://default` until
 *   an admin changes it). Limit: only the authorization endpoint drops it; nothing in this suite
 *   sends `resource` to this provider's token endpoint.
 *   https://developer.okta.com/docs/guides/customize-authz-server/main/
 * - A refresh token only when `offline_access` is asked for (and the app allows the grant).
 *   https://developer.okta.com/docs/guides/refresh-tokens/main/
 * - Refresh tokens rotate: each refresh answers a new one and the one used stops working.
 *   https://developer.okta.com/docs/guides/refresh-tokens/main/#refresh-token-rotation
 */
function oktaLayer({ audience = OKTA_DEFAULT_AUDIENCE, resourceScopes = 'mcp:tools mcp:resources' } = {}) {
  const layer = baseLayer('okta');
  layer.issuerPath = OKTA_ISSUER_PATH;
  layer.audience = audience;
  layer.configure = (config) => {
    config.issueRefreshToken = refreshOnlyWithOfflineAccess;
    config.rotateRefreshToken = true;
    config.features.resourceIndicators = {
      enabled: true,
      defaultResource: async () => audience,
      useGrantedResource: async () => true,
      getResourceServerInfo: async () => ({
        scope: resourceScopes,
        audience,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      }),
    };
  };
  layer.install = (provider) => {
    editAuthorizationQuery(provider, (params) => {
      params.delete('resource');
      offlineAccessWithoutConsentPrompt(params);
    });
  };
  return layer;
}

/**
 * google: Google's OAuth 2.0 for web server applications.
 *
 * - No RFC 8707: `resource` is not a parameter Google knows; the imitation drops it (the access
 *   token's audience is Google's APIs, never the client's resource).
 * - A refresh token only for `access_type=offline`, and only when the user is shown the consent
 *   screen: the first time the app is authorized, or again with `prompt=consent`. A later
 *   sign-in with `access_type=offline` but no consent screen gets none.
 *   https://developers.google.com/identity/protocols/oauth2/web-server#offline
 * - Refresh tokens are not rotated: a refresh answers an access token and no `refresh_token`; the
 *   first one keeps working.
 *   https://developers.google.com/identity/protocols/oauth2/web-server#offline
 */
function googleLayer() {
  const layer = baseLayer('google');
  // Clients the test user has been shown the consent screen for, and grants made on a consent
  // screen with access_type=offline (each good for one refresh token).
  const consented = new Set();
  const offlineGrants = new Set();
  layer.configure = (config) => {
    config.extraParams = [...(config.extraParams ?? []), 'access_type'];
    config.rotateRefreshToken = false;
    config.issueRefreshToken = async (_ctx, client, code) => client.grantTypeAllowed('refresh_token')
      && offlineGrants.delete(code.grantId);
    config.features.resourceIndicators = { enabled: false };
  };
  layer.onConsent = (interaction, grantId) => {
    const { params } = interaction;
    const consentScreen = !consented.has(params.client_id) || splitScope(params.prompt).includes('consent');
    consented.add(params.client_id);
    if (consentScreen && params.access_type === 'offline') offlineGrants.add(grantId);
  };
  layer.install = (provider) => {
    editAuthorizationQuery(provider, (params) => { params.delete('resource'); });
    provider.use(async (ctx, next) => {
      await next();
      if (ctx.method === 'POST' && ctx.path === '/token' && ctx.oidc?.params?.grant_type === 'refresh_token'
        && ctx.status === 200 && ctx.body && typeof ctx.body === 'object') {
        delete ctx.body.refresh_token;
      }
    });
  };
  return layer;
}
