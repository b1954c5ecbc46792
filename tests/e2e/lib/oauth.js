// Small OAuth helpers for tests that speak the protocol by hand.
import { createHash, randomBytes } from 'node:crypto';
import { Browser } from './browser.js';

/** A PKCE verifier and its S256 challenge. */
export function pkce() {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  return { verifier, challenge };
}

export const random = (n = 16) => randomBytes(n).toString('base64url');

/** `base?params` with undefined values left out. */
export function withQuery(base, params) {
  const url = new URL(base);
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined) url.searchParams.set(k, v);
  }
  return url.href;
}

/** A public CIMD client document. */
export function publicClientDocument(clientId, redirectUris, extra = {}) {
  return {
    client_id: clientId,
    client_name: 'E2E public client',
    redirect_uris: redirectUris,
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
    ...extra,
  };
}

/** POSTs a form to `url`; returns { status, headers, json, text }. */
export async function postForm(url, form, { headers = {} } = {}) {
  const res = await fetch(url, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', ...headers },
    body: new URLSearchParams(form).toString(),
  });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, headers: res.headers, json, text };
}

export const basic = (id, secret) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

/**
 * Runs an authorization through the proxy with a fresh browser, stopping at the client's
 * redirect_uri. Returns { params (URLSearchParams at the redirect_uri), verifier, state, nonce, hops, stoppedAt, final }.
 */
export async function authorizeThrough(proxy, { clientId, redirectUri, scope = 'openid profile email offline_access', extra = {}, pkceMethod = 'S256', stopAtCallback = false } = {}) {
  const { verifier, challenge } = pkce();
  const state = random();
  const nonce = random();
  const url = withQuery(proxy.url('/authorize'), {
    response_type: 'code',
    client_id: clientId,
    redirect_uri: redirectUri,
    scope,
    state,
    nonce,
    code_challenge: pkceMethod === 'S256' ? challenge : undefined,
    code_challenge_method: pkceMethod === 'S256' ? 'S256' : undefined,
    ...extra,
  });
  const browser = new Browser();
  // stopAtCallback: stop when the provider sends the browser back to the proxy's /callback.
  const target = new URL(stopAtCallback ? `${proxy.publicUrl}/callback` : redirectUri);
  const result = await browser.follow(url, {
    stop: (u) => u.origin === target.origin && u.pathname === target.pathname,
  });
  return {
    ...result,
    params: result.stoppedAt?.searchParams,
    verifier,
    state,
    nonce,
    authorizeUrl: url,
  };
}

/** Decodes a JWT's header and payload without verifying it. */
/** Runs the authorization and returns the client's code (throws with the hops if none came). */
export async function codeFor(proxy, opts) {
  const run = await authorizeThrough(proxy, opts);
  const code = run.params?.get('code');
  if (!code) throw new Error(`no code: ${JSON.stringify(run.hops, null, 1)} ${run.final?.body?.slice(0, 500) ?? ''}`);
  return { ...run, code };
}

/** Exchanges a code at the proxy as a public client. */
export function exchangePublic(proxy, { clientId, code, redirectUri, verifier }) {
  return postForm(proxy.url('/token'), {
    grant_type: 'authorization_code', client_id: clientId, code, redirect_uri: redirectUri, code_verifier: verifier,
  });
}

export function decodeJwt(jwt) {
  const [h, p] = jwt.split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url').toString()),
    payload: JSON.parse(Buffer.from(p, 'base64url').toString()),
  };
}

/** GET without following redirects; returns { status, location, contentType, body }. */
export async function getManual(url) {
  const res = await fetch(url, { redirect: 'manual' });
  return {
    status: res.status,
    location: res.headers.get('location'),
    contentType: res.headers.get('content-type'),
    body: await res.text(),
  };
}
