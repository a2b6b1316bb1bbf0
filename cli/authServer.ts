/**
 * An embedded nats-server that admits only the users of a `cohort auth
 * init` directory: its configuration is nothing but `include ./auth.conf`
 * (the harness adds -js and a store directory), in a temporary directory of
 * its own because nats-server resolves includes next to the configuration.
 */
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nkeyAuthenticator } from '@nats-io/nats-core';
import type { NatsAuth } from '../index.js';
import { adminInbox } from '../internal.js';
import { seedOf } from '../bus/nats/credentials.js';
import { startNatsServer, type NatsServer } from '../harness/natsServer.js';
import { CliUsageError } from './loadApplications.js';

/** The credentials of one user of the directory: `worker`, `admin`, `reader` or `client-LABEL`. */
export function authFor(dir: string, user: string): NatsAuth {
  return { nkey: join(dir, `${user}.nk`) };
}

/**
 * Throws CliUsageError unless `dir` holds what `cohort auth init` writes for
 * `cluster` and these users: its permissions name one cluster's subjects.
 */
export async function checkAuthDir(dir: string, cluster: string, users: readonly string[]): Promise<void> {
  let manifest: { cluster?: unknown };
  try {
    manifest = JSON.parse(await readFile(join(dir, 'cohort-auth.json'), 'utf8')) as { cluster?: unknown };
  } catch {
    throw new CliUsageError(
      `--auth ${dir}: no cohort-auth.json there; create the directory with cohort auth init --cluster ${cluster} --out ${dir}`,
    );
  }
  if (manifest.cluster !== cluster)
    throw new CliUsageError(
      `--auth ${dir} was made for cluster ${JSON.stringify(manifest.cluster)}, not ${JSON.stringify(cluster)}: ` +
        `pass --cluster ${String(manifest.cluster)}, or make another with cohort auth init --cluster ${cluster}`,
    );
  for (const file of ['auth.conf', ...users.map((u) => `${u}.nk`)]) {
    try {
      await readFile(join(dir, file));
    } catch {
      throw new CliUsageError(
        `--auth ${dir}: no ${file} there; create it with cohort auth init --out ${dir}` +
          (file.startsWith('client-') ? ` --client ${file.slice('client-'.length, -'.nk'.length)}` : ''),
      );
    }
  }
}

export async function startAuthServer(dir: string): Promise<NatsServer> {
  const confDir = await mkdtemp(join(tmpdir(), 'cohort-auth-server-'));
  try {
    await copyFile(join(dir, 'auth.conf'), join(confDir, 'auth.conf'));
    const conf = join(confDir, 'server.conf');
    await writeFile(conf, 'include ./auth.conf\n');
    const seedPath = join(dir, 'admin.nk');
    const seed = seedOf(await readFile(seedPath, 'utf8'), seedPath);
    const server = await startNatsServer({
      args: ['-c', conf],
      probe: { authenticator: nkeyAuthenticator(seed), inboxPrefix: adminInbox() },
    });
    const dispose = server[Symbol.asyncDispose].bind(server);
    return Object.assign(server, {
      [Symbol.asyncDispose]: async () => {
        await dispose();
        await rm(confDir, { recursive: true, force: true });
      },
    });
  } catch (err) {
    await rm(confDir, { recursive: true, force: true });
    throw err;
  }
}
