// Ingress limits on the public listener: every request an outsider can
// send is bounded, and an oversized or ambiguous one gets a clear answer
// (400, 413 or 431), never a hang and never a redirect.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { createWorld } from './lib/world.js';

let world;
before(async () => { world = await createWorld('45-ingress'); });
after(async () => { await world?.close(); });

/** Sends raw bytes on a fresh connection and returns the status line. */
function rawStatus(url, bytes) {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: hostname, port: Number(port) }, () => socket.write(bytes));
    let received = '';
    socket.setTimeout(5000, () => { socket.destroy(); reject(new Error('no answer within 5 s')); });
    socket.on('data', (chunk) => {
      received += chunk.toString('latin1');
      const end = received.indexOf('\r\n');
      if (end >= 0) { socket.destroy(); resolve(received.slice(0, end)); }
    });
    socket.on('error', reject);
    socket.on('end', () => resolve(received.split('\r\n')[0]));
  });
}

test('a repeated OAuth parameter is refused with an error page, not resolved', async () => {
  const response = await fetch(
    world.proxy.url('/authorize?client_id=https%3A%2F%2Fa.example%2Fc&client_id=https%3A%2F%2Fb.example%2Fc'),
    { redirect: 'manual' },
  );
  assert.equal(response.status, 400);
  assert.equal(response.headers.get('location'), null);
  assert.match(response.headers.get('content-type'), /^text\/html/);
  assert.match(await response.text(), /client_id is repeated/);
});

test('an oversized query is refused', async () => {
  const response = await fetch(world.proxy.url(`/authorize?client_id=x&pad=${'a'.repeat(20 * 1024)}`), {
    redirect: 'manual',
  });
  assert.ok([400, 414, 431].includes(response.status), `status ${response.status}`);
  assert.equal(response.headers.get('location'), null);
});

test('an oversized token request body is 413', async () => {
  const response = await fetch(world.proxy.url('/token'), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: `grant_type=authorization_code&pad=${'a'.repeat(20 * 1024)}`,
  });
  assert.equal(response.status, 413);
});

test('oversized request headers are 431', async () => {
  const status = await rawStatus(
    world.proxy.base,
    `GET /.well-known/oauth-authorization-server HTTP/1.1\r\nHost: x\r\nX-Pad: ${'a'.repeat(20 * 1024)}\r\n\r\n`,
  );
  assert.match(status, /^HTTP\/1\.1 431/);
});

test('too many header fields are 431', async () => {
  const headers = Array.from({ length: 80 }, (_, i) => `X-H${i}: v\r\n`).join('');
  const status = await rawStatus(
    world.proxy.base,
    `GET /.well-known/oauth-authorization-server HTTP/1.1\r\nHost: x\r\n${headers}\r\n`,
  );
  assert.match(status, /^HTTP\/1\.1 431/);
});

test('a repeated token parameter is invalid_request', async () => {
  const response = await fetch(world.proxy.url('/token'), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=authorization_code&code=a&code=b&client_id=https%3A%2F%2Fa.example%2Fc',
  });
  assert.equal(response.status, 400);
  assert.equal((await response.json()).error, 'invalid_request');
});
