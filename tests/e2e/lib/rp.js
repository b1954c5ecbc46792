// A relying party built on openid-client v6 that signs in through the proxy:
// discovery against the proxy issuer, buildAuthorizationUrl, the browser hops,
// then authorizationCodeGrant with PKCE, state and nonce.
import assert from 'node:assert/strict';
import * as client from 'openid-client';
import { Browser } from './browser.js';

/** openid-client Configuration for `clientId` against the proxy (http loopback allowed, id_token signatures checked). */
export async function rpConfig(proxy, clientId, clientAuth = client.None(), metadata = {}) {
  const config = await client.discovery(new URL(proxy.issuer), clientId, metadata, clientAuth, {
    execute: [client.allowInsecureRequests],
  });
  // Check the id_token's JWS signature against the proxy's jwks_uri too (openid-client skips it for
  // token-endpoint id_tokens by default, TLS being the usual proof).
  client.enableNonRepudiationChecks(config);
  return config;
}

/**
 * Runs the authorization through the proxy and exchanges the code.
 * `followToClient`: also fetch the client's redirect_uri (a real listener) instead of stopping before it.
 * Returns { tokens, hops, callbackUrl, nonce, state, verifier, authorizationUrl }.
 */
export async function signIn(config, { redirectUri, scope = 'openid profile email offline_access', followToClient = false, extra = {} }) {
  const verifier = client.randomPKCECodeVerifier();
  const nonce = client.randomNonce();
  const state = client.randomState();
  const authorizationUrl = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    ...extra,
  });
  const target = new URL(redirectUri);
  const browser = new Browser();
  const result = await browser.follow(authorizationUrl.href, {
    stop: followToClient ? undefined : (u) => u.origin === target.origin && u.pathname === target.pathname,
  });
  const callbackUrl = followToClient ? new URL(result.hops.at(-1).url) : result.stoppedAt;
  assert.ok(callbackUrl, `the chain did not reach the client: ${JSON.stringify(result.hops, null, 1)}`);
  const tokens = await client.authorizationCodeGrant(config, callbackUrl, {
    pkceCodeVerifier: verifier,
    expectedNonce: nonce,
    expectedState: state,
    idTokenExpected: scope.split(' ').includes('openid'),
  });
  return { tokens, hops: result.hops, final: result.final, callbackUrl, nonce, state, verifier, authorizationUrl };
}
