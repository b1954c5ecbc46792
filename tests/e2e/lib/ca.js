// A throw-away certificate authority and a server certificate for an IP
// literal, made with the openssl CLI at test time (no network, nothing kept).
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';

function openssl(args, cwd) {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * Creates ca.pem / ca.key and a leaf certificate for `ip` (SAN IP:<ip>) in `dir`.
 * Returns the file paths and the PEM texts the HTTPS server needs.
 */
export function makeCertificates(dir, ip) {
  openssl([
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2',
    '-subj', '/CN=cimd-proxy e2e test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ], dir);
  openssl([
    'req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', `/CN=${ip}`,
  ], dir);
  writeFileSync(path.join(dir, 'leaf.ext'), [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature',
    'extendedKeyUsage=serverAuth',
    `subjectAltName=IP:${ip}`,
    '',
  ].join('\n'));
  openssl([
    'x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key',
    '-set_serial', `0x${randomBytes(8).toString('hex')}`, '-days', '2',
    '-extfile', 'leaf.ext', '-out', 'leaf.pem',
  ], dir);
  const caFile = path.join(dir, 'ca.pem');
  return {
    caFile,
    ca: readFileSync(caFile, 'utf8'),
    cert: readFileSync(path.join(dir, 'leaf.pem'), 'utf8'),
    key: readFileSync(path.join(dir, 'leaf.key'), 'utf8'),
  };
}
