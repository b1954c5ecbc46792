// Assertions shared by the attack tests.
import assert from 'node:assert/strict';

/** An HTML error page for the person in the browser, and never a redirect. */
export function assertErrorPage(res, status = 400) {
  assert.equal(res.status, status, `expected an HTML ${status} page, got ${res.status} ${res.location ?? ''} ${res.body?.slice(0, 300)}`);
  assert.match(res.contentType ?? '', /^text\/html/);
  assert.equal(res.location, null, 'no Location header');
}

/** A 302 back to the client's redirect_uri with an OAuth error, its state and the proxy's iss. */
export function assertErrorRedirect(res, { redirectUri, error, state, iss }) {
  assert.equal(res.status, 302, `expected a 302 error redirect, got ${res.status} ${res.body?.slice(0, 300)}`);
  const location = new URL(res.location);
  const expected = new URL(redirectUri);
  assert.equal(`${location.origin}${location.pathname}`, `${expected.origin}${expected.pathname}`);
  assert.equal(location.searchParams.get('error'), error, res.location);
  assert.equal(location.searchParams.get('state'), state);
  assert.equal(location.searchParams.get('iss'), iss);
  assert.equal(location.searchParams.get('code'), null);
}

/** A JSON token-endpoint error; with the test context `t`, its description is shown as a diagnostic. */
export function assertTokenError(res, { status, error }, t) {
  assert.equal(res.status, status, `expected ${status} ${error}, got ${res.status} ${res.text}`);
  assert.equal(res.json?.error, error, res.text);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  assert.equal(res.json.access_token, undefined);
  t?.diagnostic(`${error}: ${res.json.error_description}`);
}
