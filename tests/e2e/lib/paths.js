// Where things live: the repository root, the proxy binary, the artifacts folder.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (tests/e2e/lib/../../..). */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** The proxy binary: $CIMD_PROXY_BIN, relative paths taken from the repository root. */
export const proxyBin = path.resolve(repoRoot, process.env.CIMD_PROXY_BIN || 'target/debug/cimd-proxy');

/** test-artifacts/e2e/<name>/, emptied and created for this run (the repository ignores test-artifacts/). */
export function artifactsDir(name) {
  const dir = path.join(repoRoot, 'test-artifacts', 'e2e', name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** A fresh temporary directory and a function removing it. */
export function tempDir(prefix = 'cimd-e2e-') {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
