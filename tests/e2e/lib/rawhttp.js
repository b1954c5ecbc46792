// HTTP/1.1 over a raw TCP socket, for tests that must control when each
// request is written on a keep-alive connection (fetch and http.Agent hide it).
import net from 'node:net';

/** A keep-alive connection to 127.0.0.1:`port`: `send(path)` writes one GET, `next()` reads one response. */
export function rawConnection(port) {
  const socket = net.connect(port, '127.0.0.1');
  let buffer = Buffer.alloc(0);
  let ended = false;
  let error = null;
  let wake = () => {};
  socket.on('data', (chunk) => { buffer = Buffer.concat([buffer, chunk]); wake(); });
  socket.on('end', () => { ended = true; wake(); });
  socket.on('close', () => { ended = true; wake(); });
  socket.on('error', (e) => { error = e; ended = true; wake(); });
  const changed = () => new Promise((resolve) => { wake = resolve; });

  /** The first complete response in the buffer (Content-Length bodies), or null. */
  function take() {
    const end = buffer.indexOf('\r\n\r\n');
    if (end < 0) return null;
    const [statusLine, ...lines] = buffer.subarray(0, end).toString('latin1').split('\r\n');
    const headers = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const length = Number(headers['content-length'] ?? 0);
    if (buffer.length < end + 4 + length) return null;
    const body = buffer.subarray(end + 4, end + 4 + length).toString('utf8');
    buffer = buffer.subarray(end + 4 + length);
    return { status: Number(statusLine.split(' ')[1]), headers, body };
  }

  return {
    socket,
    connected: new Promise((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject); }),
    send(path) {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: keep-alive\r\n\r\n`);
    },
    /** The next response; rejects if the connection ends first. */
    async next() {
      for (;;) {
        const response = take();
        if (response) return response;
        if (ended) throw new Error(`connection ended before a response${error ? ` (${error.code})` : ''}`);
        await changed();
      }
    },
    /** Resolves once the peer has closed the connection. */
    async closed() {
      while (!ended) await changed();
      return { leftover: buffer.length };
    },
    destroy: () => socket.destroy(),
  };
}
