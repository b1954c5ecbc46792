// Listening, closing and free ports, loopback only.
import net from 'node:net';

/** Listens on host:port (0 = any free port) and returns the port. */
export function listen(server, port, host) {
  return new Promise((resolve, reject) => {
    const onError = (err) => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve(server.address().port);
    });
  });
}

/** Closes a server and every connection it still holds (keep-alive included). */
export function closeServer(server) {
  return new Promise((resolve) => {
    if (!server.listening) { resolve(); return; }
    server.close(() => resolve());
    server.closeAllConnections?.();
  });
}

/** A port free on `host` right now (for the proxy, which must be told its ports up front). */
export async function freePort(host = '127.0.0.1') {
  const server = net.createServer();
  const port = await listen(server, 0, host);
  await new Promise((resolve) => server.close(resolve));
  return port;
}
