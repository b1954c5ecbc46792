// The client document host: HTTPS on 127.0.0.2 with a certificate from the
// test CA, serving client metadata documents and JWK sets registered per test.
import https from 'node:https';
import { listen, closeServer } from './net.js';

export const DOC_HOST_IP = '127.0.0.2';

/**
 * Starts the host. Returns { origin, port, serve(path, body, opts), clientId(name), addClient(name, fn),
 * requests, close() }.
 */
export async function startDocumentHost({ cert, key }) {
  const routes = new Map();
  const requests = [];
  const server = https.createServer({ cert, key }, (req, res) => {
    const path = req.url.split('?')[0];
    requests.push({ method: req.method, path, headers: req.headers });
    const route = routes.get(path);
    if (!route || req.method !== 'GET') {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
      return;
    }
    const body = typeof route.body === 'string' || Buffer.isBuffer(route.body) ? route.body : JSON.stringify(route.body);
    if (route.delayMs) {
      // A slow origin: the answer comes `delayMs` after the request (the socket may close meanwhile).
      setTimeout(() => { if (!res.destroyed) answer(res, route, body); }, route.delayMs);
      return;
    }
    answer(res, route, body);
  });
  function answer(res, route, body) {
    res.writeHead(route.status ?? 200, {
      'content-type': route.contentType ?? 'application/json',
      'cache-control': route.cacheControl ?? 'max-age=60',
      'content-length': Buffer.byteLength(body),
    });
    res.end(body);
  }
  const port = await listen(server, 0, DOC_HOST_IP);
  const origin = `https://${DOC_HOST_IP}:${port}`;

  return {
    origin,
    port,
    requests,
    /** Serves `body` (a string, a Buffer, or an object ⇒ JSON) at `path`; `opts`: status, contentType, cacheControl, delayMs (answer late). */
    serve(path, body, opts = {}) { routes.set(path, { body, ...opts }); return `${origin}${path}`; },
    /** The client_id URL of the document named `name`. */
    clientId(name) { return `${origin}/clients/${name}.json`; },
    /** Registers `/clients/<name>.json`; `build(clientId)` returns the document; `opts` as for serve(). Returns the client_id. */
    addClient(name, build, opts = {}) {
      const clientId = `${origin}/clients/${name}.json`;
      routes.set(`/clients/${name}.json`, { body: build(clientId), ...opts });
      return clientId;
    },
    fetchCount(path) { return requests.filter((r) => r.path === path).length; },
    close: () => closeServer(server),
  };
}
