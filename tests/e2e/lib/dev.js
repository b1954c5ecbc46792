// `cimd-proxy dev` as a person runs it: spawned on two free loopback ports,
// its banner read from stdout for the URLs, stopped with Ctrl-C (SIGINT).
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import path from 'node:path';
import { proxyBin } from './paths.js';
import { freePort } from './net.js';

const running = new Set();
process.on('exit', () => { for (const child of running) child.kill('SIGKILL'); });

/** The banner's URLs: { sampleApp, start, metadata, proxy, admin, clientId, idp, caFile }. */
export function parseBanner(text) {
  const field = (re) => {
    const m = text.match(re);
    if (!m) throw new Error(`the dev banner has no ${re}:\n${text}`);
    return m[1].trim();
  };
  const metadata = field(/^ {2}proxy metadata +(\S+)$/m);
  return {
    sampleApp: field(/Open (\S+) to sign in as the sample client/),
    start: field(/^ {2}sign-in link +(\S+)$/m),
    metadata,
    proxy: new URL(metadata).origin,
    admin: new URL(field(/^ {2}admin health +(\S+)$/m)).origin,
    clientId: field(/^ {2}sample client_id +(\S+)$/m),
    idp: field(/^ {2}dev provider +(\S+)$/m),
    caFile: field(/^ {2}generated CA +(.+)$/m),
  };
}

/**
 * Starts `cimd-proxy dev --listen 127.0.0.1:<free> --admin-listen 127.0.0.1:<free>`, waits (15 s at
 * most) for the banner's last line, and returns { urls, port, adminPort, stdout(), exited, interrupt(),
 * kill() }. stdout and stderr go to `<artifacts>/<name>.stdout.log` / `.stderr.log`.
 */
export async function startDev({ artifacts, name = 'dev' }) {
  const port = await freePort();
  let adminPort = await freePort();
  while (adminPort === port) adminPort = await freePort();
  const child = spawn(proxyBin, ['dev', '--listen', `127.0.0.1:${port}`, '--admin-listen', `127.0.0.1:${adminPort}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      ...(process.env.TMPDIR ? { TMPDIR: process.env.TMPDIR } : {}),
      NO_COLOR: '1',
      CIMD_PROXY_LOG: process.env.CIMD_PROXY_LOG || 'info',
    },
  });
  running.add(child);
  const out = createWriteStream(path.join(artifacts, `${name}.stdout.log`));
  const err = createWriteStream(path.join(artifacts, `${name}.stderr.log`));
  child.stdout.pipe(out);
  child.stderr.pipe(err);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => { stdout += chunk; });
  child.stderr.on('data', (chunk) => { stderr += chunk; });
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => { running.delete(child); resolve({ code, signal }); });
  });

  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no dev banner within 15 s; stdout:\n${stdout}\nstderr:\n${stderr.slice(-3000)}`)), 15_000);
    const check = () => {
      if (stdout.includes('Press Ctrl-C to stop.')) { clearTimeout(timer); resolve(); }
    };
    child.stdout.on('data', check);
    exited.then((e) => { clearTimeout(timer); reject(new Error(`dev exited ${JSON.stringify(e)} before its banner:\n${stderr.slice(-3000)}`)); });
  });
  try {
    await ready;
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  const closeLogs = async () => {
    await new Promise((resolve) => { out.end(resolve); });
    await new Promise((resolve) => { err.end(resolve); });
  };
  return {
    urls: parseBanner(stdout),
    port,
    adminPort,
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
    /** Ctrl-C: SIGINT, then waits for the exit (SIGKILL after 10 s); resolves with { code, signal }. */
    async interrupt() {
      child.kill('SIGINT');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const result = await exited;
      clearTimeout(timer);
      await closeLogs();
      return result;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
      await closeLogs();
    },
  };
}
