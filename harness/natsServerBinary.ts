import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { NatsServerNotFoundError } from './errors.js';

/** Where Debian and hand installs put it, for shells and services whose PATH lacks the sbin dirs. */
export const FALLBACK_DIRS = ['/usr/sbin', '/usr/local/bin', '/usr/local/sbin'] as const;

const EXECUTABLE = 'nats-server';

type Env = Readonly<Record<string, string | undefined>>;

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Every candidate path, in the order they are tried (NATS_SERVER_BIN excluded). */
export function natsServerCandidates(env: Env = process.env): string[] {
  const dirs = (env['PATH'] ?? '').split(delimiter).filter((dir) => dir !== '' && isAbsolute(dir));
  const seen = new Set<string>();
  const out: string[] = [];
  for (const dir of [...dirs, ...FALLBACK_DIRS]) {
    const path = join(dir, EXECUTABLE);
    if (!seen.has(path)) {
      seen.add(path);
      out.push(path);
    }
  }
  return out;
}

/**
 * The nats-server to run, or null. An explicit NATS_SERVER_BIN that is not
 * executable yields null rather than falling back, so a typo never silently
 * runs some other server version.
 */
export function findNatsServerBinary(env: Env = process.env): string | null {
  const fromEnv = env['NATS_SERVER_BIN'];
  if (fromEnv !== undefined && fromEnv !== '') {
    const path = resolve(fromEnv);
    return isExecutableFile(path) ? path : null;
  }
  return natsServerCandidates(env).find(isExecutableFile) ?? null;
}

/** Like findNatsServerBinary, but throws NatsServerNotFoundError saying where it looked and how to install. */
export function requireNatsServerBinary(env: Env = process.env): string {
  const found = findNatsServerBinary(env);
  if (found !== null) return found;
  const fromEnv = env['NATS_SERVER_BIN'];
  if (fromEnv !== undefined && fromEnv !== '') {
    throw new NatsServerNotFoundError([resolve(fromEnv)], fromEnv);
  }
  throw new NatsServerNotFoundError(natsServerCandidates(env));
}
