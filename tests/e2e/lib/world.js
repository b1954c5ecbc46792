// The world one test file runs in: a test CA, the client document host on
// 127.0.0.2, the upstream provider on 127.0.0.1 and (optionally) the proxy.
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { makeCertificates } from './ca.js';
import { startDocumentHost } from './dochost.js';
import { startProvider } from './provider.js';
import { startProxy, newSealKey, writeSigningKey } from './proxy.js';
import { freePort } from './net.js';
import { artifactsDir, tempDir } from './paths.js';

export const LEGACY_CLIENT_ID = 'legacy-app';
export const LEGACY_SECRET = 'legacy-app-secret-for-tests';

/**
 * Builds the world for the test file `name`. `proxy`: false for none, or options for
 * the main instance (rules, resource, codeTtlS, …), or a function of the world returning
 * them (to name the proxy's own URL). `providerClients`: more static clients registered at
 * the provider (oidc-provider client metadata), or a function of the world returning them (to
 * register the proxy's /callback, `world.proxyPublicUrl`). `quirks`: the provider's quirk layer (`generic`,
 * `entra`, `okta`, `google`, or `{ name, ...options }`; see quirks.js). Always call `close()` (in `after`).
 */
export async function createWorld(name, { proxy = {}, providerClients = [], quirks = 'generic' } = {}) {
  const tmp = tempDir(`cimd-e2e-${name}-`);
  const artifacts = artifactsDir(name);
  const closers = [];
  const world = {
    name,
    dir: tmp.dir,
    artifacts,
    log: (line) => appendFileSync(path.join(artifacts, 'world.log'), `${new Date().toISOString()} ${line}\n`),
    async close() {
      for (const close of closers.reverse()) {
        try { await close(); } catch (e) { world.log(`close failed: ${e.stack || e}`); }
      }
      tmp.remove();
    },
  };
  try {
    const certs = makeCertificates(tmp.dir, '127.0.0.2');
    world.caFile = certs.caFile;
    world.docs = await startDocumentHost(certs);
    closers.push(() => world.docs.close());

    // The proxy's public port is fixed before the provider registers its callback.
    world.proxyPort = await freePort();
    world.proxyPublicUrl = `http://127.0.0.1:${world.proxyPort}`;
    world.upstreamSecret = randomBytes(24).toString('base64url');
    world.legacyRedirectUri = `http://127.0.0.1:${await freePort()}/legacy/callback`;

    world.provider = await startProvider({
      log: world.log,
      quirks,
      clients: [
        {
          client_id: 'proxy-app',
          client_secret: world.upstreamSecret,
          token_endpoint_auth_method: 'client_secret_basic',
          redirect_uris: [`${world.proxyPublicUrl}/callback`],
          grant_types: ['authorization_code', 'refresh_token'],
          response_types: ['code'],
          scope: 'openid profile email offline_access',
        },
        {
          client_id: LEGACY_CLIENT_ID,
          client_secret: LEGACY_SECRET,
          token_endpoint_auth_method: 'client_secret_basic',
          redirect_uris: [world.legacyRedirectUri],
          grant_types: ['authorization_code', 'refresh_token'],
          response_types: ['code'],
          scope: 'openid profile email offline_access',
        },
        ...(typeof providerClients === 'function' ? providerClients(world) : providerClients),
      ],
    });
    closers.push(() => world.provider.stop());

    world.sealKeys = [newSealKey()];
    world.signingKeysFile = writeSigningKey(path.join(tmp.dir, 'signing.pem'));

    /** Starts another instance; defaults share this world's keys, provider and public URL port. */
    world.startProxy = async (opts = {}) => {
      const instance = await startProxy({
        dir: tmp.dir,
        artifacts,
        providerIssuer: world.provider.issuer,
        docHostPort: world.docs.port,
        caFile: world.caFile,
        upstreamSecret: world.upstreamSecret,
        sealKeys: world.sealKeys,
        signingKeysFile: world.signingKeysFile,
        ...opts,
      });
      closers.push(() => instance.stop());
      return instance;
    };

    if (proxy) {
      const opts = typeof proxy === 'function' ? proxy(world) : proxy;
      world.proxy = await world.startProxy({ name: 'proxy', port: world.proxyPort, ...opts });
    }
    return world;
  } catch (e) {
    await world.close();
    throw e;
  }
}
