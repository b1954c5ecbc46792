// A real NGINX (Debian's `nginx`) on loopback in front of the provider, asking
// cimd-proxy's gate (`/gate/check`) before each request: the configuration the
// README gives, generated with this run's ports, under its own prefix, pid and
// temporary paths (never the system service).
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import net from 'node:net';

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

export const NGINX_BIN = process.env.NGINX_BIN || '/usr/sbin/nginx';

/**
 * The server block of the README: every request asks the gate first (auth_request), except the
 * token endpoint, whose body the gate must see: it goes to the gate, which answers
 * `X-Accel-Redirect: @cimd_provider` when it admits, and NGINX sends the same request on.
 * A refusal shows the gate's own page and a client the policy warns about the consent page
 * (error_page 401 403 → the page location asks again, for the page); the consent form posts to
 * /cimd-gate/consent, which goes to the gate.
 */
export function gateServerBlock({ listen, provider, gate, tokenPath = '/token' }) {
  const original = [
    'proxy_set_header X-Original-URI $request_uri;',
    'proxy_set_header X-Original-Method $request_method;',
    'proxy_set_header X-Forwarded-Host $host;',
  ];
  return `
  upstream cimd_provider { server ${provider}; }
  upstream cimd_gate { server ${gate}; }
  server {
    listen ${listen};
    auth_request /_cimd_gate;
    error_page 401 403 = @cimd_gate_page;

    location / {
      proxy_pass http://cimd_provider;
      proxy_set_header Host $http_host;
    }
    # Discovery and keys: nothing to vet, and the gate reads the provider's
    # discovery through here while it starts, before it can answer checks.
    location /.well-known/ {
      auth_request off;
      proxy_pass http://cimd_provider;
      proxy_set_header Host $http_host;
    }
    location = ${tokenPath} {
      auth_request off;
      proxy_pass http://cimd_gate/gate/check;
      ${original.join('\n      ')}
    }
    location = /cimd-gate/consent {
      auth_request off;
      proxy_pass http://cimd_gate/gate/consent;
    }
    location @cimd_provider {
      auth_request off;
      proxy_method POST;
      proxy_pass http://cimd_provider;
      proxy_set_header Host $http_host;
    }
    location = /_cimd_gate {
      internal;
      proxy_pass http://cimd_gate/gate/check;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      ${original.join('\n      ')}
    }
    location @cimd_gate_page {
      auth_request off;
      rewrite ^ /gate/check break;
      proxy_pass http://cimd_gate;
      proxy_method GET;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Cimd-Gate-Page 1;
      ${original.join('\n      ')}
    }
  }`;
}

/**
 * Starts NGINX in the foreground with `serverBlock` under `dir` (its prefix, pid, logs and
 * temporary paths), on loopback. Resolves once it accepts connections on `port`. Returns
 * { stop(), errorLog() }.
 */
export async function startNginx({ dir, port, serverBlock }) {
  if (!existsSync(NGINX_BIN)) throw new Error(`nginx not found at ${NGINX_BIN} (scripts/test installs Debian's nginx)`);
  for (const sub of ['logs', 'tmp']) mkdirSync(path.join(dir, sub), { recursive: true });
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .map((kind) => `${kind}_temp_path ${path.join(dir, 'tmp', kind)};`).join('\n  ');
  const conf = `daemon off;
master_process on;
worker_processes 1;
pid ${path.join(dir, 'nginx.pid')};
error_log ${path.join(dir, 'logs', 'error.log')} info;
events { worker_connections 256; }
http {
  access_log ${path.join(dir, 'logs', 'access.log')};
  ${temp}
  ${serverBlock}
}
`;
  const confFile = path.join(dir, 'nginx.conf');
  writeFileSync(confFile, conf);
  const child = spawn(NGINX_BIN, ['-p', dir, '-c', confFile, '-e', path.join(dir, 'logs', 'error.log')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  let exited = null;
  const exitedPromise = new Promise((resolve) => { child.on('exit', (code, signal) => { exited = { code, signal }; resolve(); }); });
  process.on('exit', () => { if (!exited) child.kill('SIGKILL'); });
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (exited) throw new Error(`nginx exited ${JSON.stringify(exited)}: ${stderr}`);
    const up = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => { socket.end(); resolve(true); });
      socket.on('error', () => resolve(false));
    });
    if (up) break;
    if (Date.now() > deadline) { child.kill('SIGKILL'); throw new Error(`nginx not listening within 10 s: ${stderr}`); }
    await sleep(50);
  }
  return {
    confFile,
    errorLog: () => readFileSync(path.join(dir, 'logs', 'error.log'), 'utf8'),
    async stop() {
      if (exited) return;
      child.kill('SIGQUIT');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exitedPromise;
      clearTimeout(timer);
    },
  };
}
