// Listening, closing and free ports, loopback only.
import net from 'node:net';
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';

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

// The kernel's ephemeral range (outgoing connections' source ports, and `listen(0)`).
function ephemeralLow() {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768;
  } catch {
    return 32768;
  }
}
const PICK_FROM = 10000;

/**
 * A port free on `host` right now (for the proxy, which must be told its ports up front). Picked at
 * random below the ephemeral range, so that no outgoing connection or `listen(0)` takes it between
 * now and the proxy's bind (a port the kernel handed out itself could be); `listen(0)` when there
 * is no room below the range.
 */
export async function freePort(host = '127.0.0.1') {
  const low = ephemeralLow();
  for (let i = 0; low - PICK_FROM >= 1000 && i < 50; i += 1) {
    const candidate = PICK_FROM + randomInt(low - PICK_FROM);
    const server = net.createServer();
    try {
      await listen(server, candidate, host);
    } catch {
      continue;
    }
    await new Promise((resolve) => server.close(resolve));
    return candidate;
  }
  const server = net.createServer();
  const port = await listen(server, 0, host);
  await new Promise((resolve) => server.close(resolve));
  return port;
}
