// A real Redis (Debian's `redis-server`) on loopback for the tests that share state between
// replicas: a private instance per test file, with a password, no persistence, under its own
// temporary directory (never the system service). It can be stopped and started again on the
// same port, so a test can take the store away and give it back.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { freePort } from './net.js';
import { tempDir } from './paths.js';

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

export const REDIS_BIN = process.env.REDIS_BIN || '/usr/bin/redis-server';

function answersPing(port, password) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let reply = '';
    const done = (value) => { socket.destroy(); resolve(value); };
    socket.setTimeout(1000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => { socket.write(`AUTH ${password}\r\nPING\r\n`); });
    socket.on('data', (chunk) => {
      reply += chunk;
      if (reply.includes('+PONG')) done(true);
      else if (reply.startsWith('-')) done(false);
    });
  });
}

/**
 * Starts a private redis-server on a free loopback port. Returns
 * { url, port, password, stop(), start(), close() }: `url` is what `[store] url_env` expects
 * (`redis://:password@127.0.0.1:port/`); `stop()` takes the server away (the port stays
 * reserved for it), `start()` brings it back empty, `close()` stops it and removes its files.
 */
export async function startRedis() {
  if (!existsSync(REDIS_BIN)) throw new Error(`redis-server not found at ${REDIS_BIN} (scripts/test installs Debian's redis-server)`);
  const { dir, remove } = tempDir('cimd-e2e-redis-');
  const port = await freePort();
  const password = randomBytes(16).toString('hex');
  let child = null;

  async function start() {
    if (child) return;
    const proc = spawn(REDIS_BIN, [
      '--bind', '127.0.0.1', '--port', String(port), '--requirepass', password,
      '--dir', dir, '--save', '', '--appendonly', 'no', '--logfile', '',
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr.on('data', (d) => { stderr += d; });
    let exited = null;
    proc.exited = new Promise((resolve) => { proc.on('exit', (code, signal) => { exited = { code, signal }; resolve(); }); });
    child = proc;
    const deadline = Date.now() + 10_000;
    while (!(await answersPing(port, password))) {
      if (exited) { child = null; throw new Error(`redis-server exited ${JSON.stringify(exited)}: ${stderr}`); }
      if (Date.now() > deadline) { await stop(); throw new Error(`redis-server not answering within 10 s: ${stderr}`); }
      await sleep(50);
    }
  }

  async function stop() {
    const proc = child;
    if (!proc) return;
    child = null;
    proc.kill('SIGKILL');
    await proc.exited;
  }

  process.on('exit', () => { child?.kill('SIGKILL'); });
  await start();
  return {
    url: `redis://:${password}@127.0.0.1:${port}/`,
    port,
    password,
    start,
    stop,
    async close() {
      await stop();
      remove();
    },
  };
}
