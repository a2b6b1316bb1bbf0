import { constants } from 'node:fs';
import { access, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createUser } from '@nats-io/nkeys';
import {
  inboxPrefixFor,
  InvalidNameError,
  userNameOf,
  validateClientLabel,
  validateCluster,
  type Role,
} from '../internal.js';
import { AUTH_CONF, MANIFEST, renderAuthConf, renderManifest, type AuthManifest, type AuthUser } from './authConfig.js';
import { CliUsageError } from './loadApplications.js';

/**
 * `cohort auth init` and `cohort auth add-client`: nkey users for a
 * cluster's roles, their seeds in files only their owner can read, and the
 * nats-server authorization block that grants each role what it needs.
 * The server never sees a seed, and neither does the manifest: losing a
 * seed means adding a new user, not reading it back.
 */

export interface AuthIo {
  write: (line: string) => void;
}

const INIT_FLAGS = {
  cluster: { type: 'string' },
  out: { type: 'string' },
  client: { type: 'string', multiple: true },
} as const;

const ADD_CLIENT_FLAGS = { out: { type: 'string' } } as const;

/** `auth <subcommand> ...`; wrong usage is a CliUsageError (exit 2). */
export async function runAuth(args: string[], io: AuthIo): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'init': {
      const { values } = parseArgs({ args: rest, options: INIT_FLAGS, strict: true });
      if (!values.cluster) throw new CliUsageError('--cluster NAME is required', { showUsage: true });
      if (!values.out) throw new CliUsageError('--out DIR is required', { showUsage: true });
      return authInit({ cluster: values.cluster, out: values.out, clients: values.client ?? [] }, io);
    }
    case 'add-client': {
      const { values, positionals } = parseArgs({
        args: rest,
        options: ADD_CLIENT_FLAGS,
        strict: true,
        allowPositionals: true,
      });
      if (positionals.length !== 1) throw new CliUsageError('add-client takes one LABEL', { showUsage: true });
      if (!values.out) throw new CliUsageError('--out DIR is required', { showUsage: true });
      return authAddClient({ label: positionals[0]!, out: values.out }, io);
    }
    default:
      throw new CliUsageError(
        sub === undefined
          ? 'auth needs a subcommand: init or add-client'
          : `unknown auth subcommand ${JSON.stringify(sub)}`,
        { showUsage: true },
      );
  }
}

/** A wrong name, told as wrong usage. */
function checked(check: () => void): void {
  try {
    check();
  } catch (err) {
    if (err instanceof InvalidNameError) throw new CliUsageError(err.message, { cause: err });
    throw err;
  }
}

function checkLabels(labels: readonly string[], existing: readonly string[] = []): void {
  const seen = new Set(existing);
  for (const label of labels) {
    checked(() => validateClientLabel(label));
    if (seen.has(label)) throw new CliUsageError(`client label ${JSON.stringify(label)} is already taken`);
    seen.add(label);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path, constants.F_OK);
    return true;
  } catch {
    return false;
  }
}

/** Written beside, then renamed over: a reader of the file never sees half of it. */
async function replaceFile(path: string, text: string, mode: number): Promise<void> {
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, text, { mode });
  await rename(temp, path);
}

/** A new key pair for `role`; its seed goes to `<dir>/<user>.nk`, mode 0600, never over an existing file. */
async function newUser(dir: string, role: Role, io: AuthIo): Promise<AuthUser> {
  const pair = createUser();
  const seed = new TextDecoder().decode(pair.getSeed());
  const publicKey = pair.getPublicKey();
  const path = join(dir, `${userNameOf(role)}.nk`);
  await writeFile(path, `${seed}\n`, { mode: 0o600, flag: 'wx' });
  pair.clear();
  io.write(`wrote ${path} (seed of ${userNameOf(role)}, mode 0600: keep it secret)`);
  return { role, publicKey };
}

async function writeConfig(dir: string, manifest: AuthManifest, io: AuthIo): Promise<void> {
  await replaceFile(join(dir, MANIFEST), renderManifest(manifest), 0o644);
  io.write(`wrote ${join(dir, MANIFEST)} (cluster and public keys, no seeds)`);
  await replaceFile(join(dir, AUTH_CONF), renderAuthConf(manifest), 0o644);
  io.write(
    `wrote ${join(dir, AUTH_CONF)} (${manifest.users.length} users: ${manifest.users.map((u) => userNameOf(u.role)).join(', ')})`,
  );
}

function howToUse(dir: string, io: AuthIo): void {
  const seed = (user: string): string => join(dir, `${user}.nk`);
  io.write('');
  io.write(`to use: put \`include ${join(dir, AUTH_CONF)}\` in the nats-server configuration (a relative`);
  io.write("path is read from that file's directory) and start it with JetStream (-js); then");
  io.write(`  cohort worker --nkey ${seed('worker')} ...     (inbox ${inboxPrefixFor({ kind: 'worker' })})`);
  io.write(`  cohort failover --nkey ${seed('admin')} ...    (inbox ${inboxPrefixFor({ kind: 'admin' })})`);
  io.write(`  connect({ auth: { nkey: '${seed('client-LABEL')}' }, ... })`);
  io.write('    (the label, and the inbox _INBOX.LABEL, come from the file name; the reader is label reader)');
}

export async function authInit(
  options: { cluster: string; out: string; clients: readonly string[] },
  io: AuthIo,
): Promise<number> {
  checked(() => validateCluster(options.cluster));
  checkLabels(options.clients);
  const dir = resolve(options.out);
  const roles: Role[] = [
    { kind: 'worker' },
    { kind: 'admin' },
    { kind: 'reader' },
    ...options.clients.map((label) => ({ kind: 'client', label }) as const),
  ];
  const taken = [];
  for (const name of [AUTH_CONF, MANIFEST, ...roles.map((r) => `${userNameOf(r)}.nk`)]) {
    if (await exists(join(dir, name))) taken.push(name);
  }
  if (taken.length > 0)
    throw new CliUsageError(
      `${dir} already holds ${taken.join(', ')}: not overwritten (use add-client to add a client, or another --out)`,
    );
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const users: AuthUser[] = [];
  for (const role of roles) users.push(await newUser(dir, role, io));
  await writeConfig(dir, { version: 1, cluster: options.cluster, users }, io);
  howToUse(dir, io);
  return 0;
}

/** The manifest as written, checked: a hand-edited one that is not is refused rather than half-used. */
async function readManifest(dir: string): Promise<AuthManifest> {
  const path = join(dir, MANIFEST);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new CliUsageError(`cannot read ${path}: run \`cohort auth init\` for ${dir} first`, { cause: err });
  }
  const bad = (why: string): never => {
    throw new CliUsageError(`${path} is not a cohort auth manifest: ${why}`);
  };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return bad(err instanceof Error ? err.message : String(err));
  }
  const m = raw as { version?: unknown; cluster?: unknown; users?: unknown };
  if (m === null || typeof m !== 'object' || m.version !== 1) return bad('version is not 1');
  if (typeof m.cluster !== 'string') return bad('no cluster');
  checked(() => validateCluster(m.cluster as string));
  if (!Array.isArray(m.users)) return bad('no users');
  const users = m.users.map((u: unknown): AuthUser => {
    const { role, publicKey } = (u ?? {}) as { role?: { kind?: unknown; label?: unknown }; publicKey?: unknown };
    if (typeof publicKey !== 'string' || !/^U[A-Z2-7]{55}$/.test(publicKey)) return bad('a user without a public key');
    const kind = role?.kind;
    if (kind === 'worker' || kind === 'admin' || kind === 'reader') return { role: { kind }, publicKey };
    if (kind === 'client' && typeof role?.label === 'string') {
      checked(() => validateClientLabel(role.label as string));
      return { role: { kind, label: role.label }, publicKey };
    }
    return bad(`a user of unknown role ${JSON.stringify(kind)}`);
  });
  return { version: 1, cluster: m.cluster, users };
}

export async function authAddClient(options: { label: string; out: string }, io: AuthIo): Promise<number> {
  const dir = resolve(options.out);
  const manifest = await readManifest(dir);
  const labels = manifest.users.flatMap((u) => (u.role.kind === 'client' ? [u.role.label] : []));
  checkLabels([options.label], labels);
  const seedFile = join(dir, `${userNameOf({ kind: 'client', label: options.label })}.nk`);
  if (await exists(seedFile)) throw new CliUsageError(`${seedFile} exists already: not overwritten`);
  const user = await newUser(dir, { kind: 'client', label: options.label }, io);
  await writeConfig(dir, { ...manifest, users: [...manifest.users, user] }, io);
  io.write('');
  io.write(`reload the nats-server (nats-server --signal reload, or SIGHUP) to admit ${userNameOf(user.role)}`);
  return 0;
}
