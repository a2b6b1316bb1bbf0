/**
 * compose.yaml cannot be run here (no Docker), so its structure is checked
 * instead: the NATS cluster is wired to itself and to the credentials the
 * auth service writes, and the workers run flags `cohort worker` accepts (a
 * renamed flag fails here). Its NATS configuration is then loaded by real
 * nats-servers, three nodes routed with the generated password, to show the
 * includes, the accounts and the route authorization work.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createConnection, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { nkeyAuthenticator } from '@nats-io/nats-core';
import { createUser } from '@nats-io/nkeys';
import { connect as connectNats } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { AuthenticationError, createNatsBus, NoRespondersError } from '../../index.js';
import { compareVersions } from '../../internal.js';
import { WORKER_FLAGS, parseWorkerArgs } from '../../cli/worker.js';
import { startNatsServer, type NatsServer } from '../../harness/natsServer.js';
import { waitFor } from '../waitFor.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const run = promisify(execFile);

interface Service {
  image?: string;
  command?: string | string[];
  volumes?: string[];
  ports?: string[];
  depends_on?: string[] | Record<string, { condition?: string }>;
  healthcheck?: { test?: string[] | string };
}

interface Compose {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

// `merge`: the file shares settings through YAML merge keys (<<: *nats), as Compose does.
const compose = parse(readFileSync(join(ROOT, 'compose.yaml'), 'utf8'), { merge: true }) as Compose;
const services = Object.entries(compose.services);

function argv(service: Service): string[] {
  const { command } = service;
  if (command === undefined) return [];
  return typeof command === 'string' ? command.split(/\s+/).filter((a) => a !== '') : command;
}

/** The value after `flag` (each of its spellings); undefined when absent. */
function flag(args: readonly string[], ...spellings: string[]): string | undefined {
  const i = args.findIndex((a) => spellings.includes(a));
  return i < 0 ? undefined : args[i + 1];
}

function dependsOn(service: Service): Record<string, string> {
  const d = service.depends_on ?? [];
  return Array.isArray(d)
    ? Object.fromEntries(d.map((name) => [name, 'service_started']))
    : Object.fromEntries(Object.entries(d).map(([name, v]) => [name, v.condition ?? 'service_started']));
}

/** `source:target[:mode]` of a short-syntax volume. */
function mount(volume: string): { source: string; target: string; readOnly: boolean } {
  const [source = '', target = '', mode = ''] = volume.split(':');
  return { source, target, readOnly: mode.split(',').includes('ro') };
}

/** Where `service` mounts `source`, if it does. */
function mountOf(service: Service, source: string): { target: string; readOnly: boolean } | undefined {
  const found = (service.volumes ?? []).map(mount).find((m) => m.source === source);
  return found && { target: found.target, readOnly: found.readOnly };
}

const natsNodes = services.filter(([, s]) => s.image?.startsWith('nats:'));
const WORKER_PREFIX = ['node', 'dist/cli/main.js', 'worker'];
const workers = services.filter(([, s]) => WORKER_PREFIX.every((a, i) => argv(s)[i] === a));

// The NATS configuration: what each node's -c names, as mounted from the repository.
const CONFIG_SOURCE = './deploy/nats/cohort.conf';
const configText = readFileSync(join(ROOT, CONFIG_SOURCE), 'utf8');
/** The configuration without its comments, so a commented-out line counts for nothing. */
const config = configText.replace(/#.*$/gm, '');

// The auth service and its script: where the credentials are made, and how.
const [authName, authService] = services.find(([, s]) => argv(s).join(' ') === 'sh deploy/auth.sh') ?? [];
const authScript = readFileSync(join(ROOT, 'deploy/auth.sh'), 'utf8').replace(/#.*$/gm, '');
/** The host directory the auth service writes the credentials into, mounted at /auth. */
const authSource = (authService?.volumes ?? []).map(mount).find((m) => m.target === '/auth')?.source;
/** The flags of the `cohort auth init` the script runs. */
const authInit = /node dist\/cli\/main\.js auth init ((?:--\S+ \S+ ?)+)/.exec(authScript)?.[1]?.trim().split(' ') ?? [];
/** Seed files `cohort auth init` writes: one per role, and client-LABEL.nk per --client. */
const writtenSeeds = ['worker.nk', 'admin.nk', 'reader.nk'].concat(
  authInit.flatMap((a, i) => (a === '--client' ? [`client-${authInit[i + 1]}.nk`] : [])),
);

describe('compose.yaml', () => {
  it('runs 3 NATS nodes from one pinned 2.12 patch release with the advisories fixed (>= 2.12.7)', () => {
    expect(natsNodes.map(([name]) => name)).toHaveLength(3);
    const images = new Set(natsNodes.map(([, n]) => n.image));
    expect(images.size).toBe(1);
    const [image] = images;
    const m = /^nats:(\d+)\.(\d+)\.(\d+)-alpine$/.exec(image ?? '');
    expect(m, `${image} pins a patch release`).not.toBeNull();
    const [major, minor, patch] = m!.slice(1).map(Number);
    expect([major, minor]).toEqual([2, 12]);
    expect(patch).toBeGreaterThanOrEqual(7);
  });

  it('starts each node with deploy/nats/cohort.conf under its own name, storing on its own volume', () => {
    const serverNames = new Set<string>();
    const store = /^\s*store_dir:\s*"([^"]+)"/m.exec(config)?.[1];
    expect(store, 'the configuration sets a store dir').toBeDefined();
    for (const [name, node] of natsNodes) {
      const args = argv(node);
      const conf = flag(args, '-c', '--config');
      expect(mountOf(node, CONFIG_SOURCE), `${name} mounts the configuration`).toEqual({
        target: conf,
        readOnly: true,
      });
      serverNames.add(flag(args, '--server_name', '-n') ?? `(none on ${name})`);
      const data = (node.volumes ?? []).map(mount).find((v) => v.target === store);
      expect(data && compose.volumes?.[data.source], `${name}'s ${store} is a named volume`).toBeDefined();
    }
    expect(serverNames).toEqual(new Set(natsNodes.map(([name]) => name)));
    expect(config).toMatch(/^\s*cluster\s*\{[^}]*\bname:\s*cohort\b/m);
  });

  it('has every node include, read-only, the credentials the auth service writes, and a system account', () => {
    expect(authName, 'a service runs deploy/auth.sh').toBeDefined();
    expect(authSource, 'the auth service writes into a host directory at /auth').toMatch(/^\.\//);
    for (const [name, node] of natsNodes) {
      const conf = flag(argv(node), '-c', '--config')!;
      expect(mountOf(node, authSource!), `${name} mounts the credentials beside its configuration`).toEqual({
        target: posix.join(posix.dirname(conf), 'auth'),
        readOnly: true,
      });
      expect(dependsOn(node)[authName!], `${name} starts after the auth service`).toBe(
        'service_completed_successfully',
      );
    }
    const includes = [...config.matchAll(/^\s*include\s+"([^"]+)"/gm)].map((m) => m[1]);
    expect(includes).toEqual(['auth/auth.conf', 'auth/system-users.conf', 'auth/routes.conf']);
    expect(config).toMatch(/^\s*SYS\s*\{\s*include\s+"auth\/system-users\.conf"\s*\}/m);
    expect(config).toMatch(/^\s*system_account:\s*SYS\s*$/m);
    // The system account is the only other: a third would take JetStream from the global one.
    expect([...config.matchAll(/^\s*(\w+)\s*\{/gm)].map((m) => m[1])).toEqual([
      'jetstream',
      'accounts',
      'SYS',
      'cluster',
    ]);
    expect(readFileSync(join(ROOT, '.gitignore'), 'utf8').split('\n')).toContain(`${authSource!.slice(2)}/`);
  });

  it('binds monitoring to localhost, publishes it nowhere, and checks each node’s health through it', () => {
    const http = /^\s*http:\s*(\S+)\s*$/m.exec(config)?.[1];
    expect(http).toBe('127.0.0.1:8222');
    for (const [name, service] of services) {
      for (const p of service.ports ?? []) expect(p, `${name} publishes ${p}`).not.toMatch(/(^|:)8222(:|$)/);
    }
    for (const [name, node] of natsNodes) {
      const test = node.healthcheck?.test;
      expect(Array.isArray(test) && test[0] === 'CMD', `${name} has a healthcheck`).toBe(true);
      expect((test as string[]).join(' ')).toContain(`http://${http}/healthz`);
    }
    // The client port may stay published: every connection needs credentials.
    expect(natsNodes.flatMap(([, n]) => n.ports ?? [])).toEqual(['4222:4222']);
  });

  it('makes the credentials once, after the build, for the workers’ cluster, and the route secrets for every node', () => {
    expect(dependsOn(authService!)).toEqual({ build: 'service_completed_successfully' });
    expect(argv(compose.services['build']!).join(' ')).toMatch(/^npm (install|ci)\b/);
    // Only when missing: a second `up` keeps the keys every user already holds.
    expect(authScript).toMatch(/if \[ ! -f \/auth\/auth\.conf \]; then\s+node dist\/cli\/main\.js auth init /);
    expect(flag(authInit, '--out')).toBe('/auth');
    expect(new Set(workers.map(([, w]) => parseWorkerArgs(argv(w).slice(WORKER_PREFIX.length)).cluster))).toEqual(
      new Set([flag(authInit, '--cluster')]),
    );
    const secrets = /node deploy\/nats\/cluster-secrets\.mjs \/auth ((?:\S+:\d+ ?)+)/.exec(authScript)?.[1];
    const clusterPort = /^\s*listen:\s*0\.0\.0\.0:(\d+)\s*$/m.exec(config)?.[1];
    expect(secrets?.trim().split(' ')).toEqual(natsNodes.map(([name]) => `${name}:${clusterPort}`));
  });

  it('runs three `cohort worker`s, in three zones, on every NATS node, with the worker’s credentials', () => {
    expect(workers.map(([name]) => name)).toEqual(['w1', 'w2', 'w3']);
    const nodeNames = natsNodes.map(([n]) => n).sort();
    const ids = new Set<string>();
    const zones = new Set<string>();
    for (const [name, worker] of workers) {
      const parsed = parseWorkerArgs(argv(worker).slice(WORKER_PREFIX.length));
      expect(parsed.apps.length, `${name} serves an application`).toBeGreaterThan(0);
      for (const app of parsed.apps) expect(existsSync(join(ROOT, app)), `${name}: --app ${app} exists`).toBe(true);
      const urls = (parsed.nats ?? []).map((u) => new URL(u));
      expect(urls.map((u) => u.hostname).sort(), `${name} --nats lists every node`).toEqual(nodeNames);
      expect(urls.every((u) => u.protocol === 'nats:' && u.port === '4222')).toBe(true);
      ids.add(parsed.id ?? `(no --id on ${name})`);
      zones.add(parsed.zone ?? `(no --zone on ${name})`);
      expect(parsed.promotable).toBe(true);
      // One copy of the journal per NATS node: the cluster may lose any one node.
      expect(parsed.storageReplicas, `${name} --storage-replicas`).toBe(natsNodes.length);

      // --nkey names the worker's seed in the directory the auth service writes, mounted read-only.
      const credentials = mountOf(worker, authSource!);
      expect(credentials?.readOnly, `${name} mounts the credentials read-only`).toBe(true);
      expect(parsed.auth).toEqual({ nkey: `${credentials!.target}/worker.nk` });
      expect(writtenSeeds).toContain(posix.basename(parsed.auth!.nkey!));

      const deps = dependsOn(worker);
      for (const node of nodeNames)
        expect(deps[node], `${name} waits for ${node} to be healthy`).toBe('service_healthy');
      expect(deps['build']).toBe('service_completed_successfully');
      expect(deps[authName!]).toBe('service_completed_successfully');
    }
    expect(ids.size, 'distinct --id').toBe(3);
    expect(zones.size, 'distinct --zone').toBe(3);
  });

  it('serves each worker’s metrics and probes on its --metrics-port, published on loopback only, and checks /readyz', () => {
    const hostPorts = new Set<string>();
    for (const [name, worker] of workers) {
      const port = parseWorkerArgs(argv(worker).slice(WORKER_PREFIX.length)).metricsPort;
      expect(port, `${name} --metrics-port`).toBeGreaterThan(0);
      const published = (worker.ports ?? []).map((p) => /^127\.0\.0\.1:(\d+):(\d+)$/.exec(p));
      expect(published.length, `${name} publishes one port`).toBe(1);
      expect(published[0]?.[2], `${name} publishes its metrics port`).toBe(String(port));
      hostPorts.add(published[0]![1]!);
      const test = (worker.healthcheck?.test ?? []) as string[];
      expect(test.join(' '), `${name} probes /readyz`).toContain(`http://127.0.0.1:${port}/readyz`);
    }
    expect(hostPorts.size, 'distinct host ports').toBe(workers.length);
  });

  it('runs Node 22 wherever it runs Node', () => {
    const nodeServices = services.filter(([, s]) => s.image?.startsWith('node:'));
    expect(nodeServices.map(([name]) => name).sort()).toEqual(['auth', 'build', 'w1', 'w2', 'w3']);
    for (const [name, s] of nodeServices) expect(s.image, name).toMatch(/^node:22[-.]/);
  });

  it('gives the workers only flags `cohort worker` accepts, and the command the package installs', () => {
    const known = Object.keys(WORKER_FLAGS);
    for (const [name, worker] of workers) {
      const used = argv(worker)
        .slice(WORKER_PREFIX.length)
        .filter((a) => a.startsWith('--'))
        .map((a) => a.slice(2).split('=')[0]!);
      expect(
        used.filter((f) => !known.includes(f)),
        `${name}: unknown flags`,
      ).toEqual([]);
    }
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      bin: Record<string, string>;
      dependencies: Record<string, string>;
    };
    expect(pkg.bin['cohort']).toBe(`./${WORKER_PREFIX[1]}`);
    expect(existsSync(join(ROOT, 'cli/main.ts'))).toBe(true);
    // A .ts --app is loaded through tsx at run time, and the secrets script imports nkeys:
    // both must be installed without dev dependencies too.
    expect(pkg.dependencies).toHaveProperty('tsx');
    expect(pkg.dependencies).toHaveProperty('@nats-io/nkeys');
  });

  it('names only services that exist and volumes that are declared', () => {
    const names = new Set(Object.keys(compose.services));
    const declared = new Set(Object.keys(compose.volumes ?? {}));
    for (const [name, service] of services) {
      for (const dep of Object.keys(dependsOn(service))) expect(names.has(dep), `${name} depends on ${dep}`).toBe(true);
      for (const { source } of (service.volumes ?? []).map(mount)) {
        const named = !source.startsWith('.') && !source.startsWith('/') && !source.startsWith('~');
        if (named) expect(declared.has(source), `${name}: volume ${source} is declared`).toBe(true);
        else expect(existsSync(join(ROOT, source)) || source === authSource, `${name}: ${source} exists`).toBe(true);
      }
    }
  });
});

/** Distinct free ports: hold listeners on port 0 at once, then release them for nats-server. */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, () => {
      const s = createServer();
      return new Promise<typeof s>((resolve) => s.listen(0, '127.0.0.1', () => resolve(s)));
    }),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/** The server's first answer to a CONNECT on a route port: -ERR or PONG. */
function routeConnect(port: number, credentials: { user: string; pass: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(port, '127.0.0.1');
    let text = '';
    let sent = false;
    const timer = setTimeout(() => reject(new Error(`no answer on the route port: ${text}`)), 5_000);
    socket.on('error', reject);
    socket.on('data', (chunk) => {
      text += chunk.toString('utf8');
      if (!sent && text.includes('\r\n')) {
        sent = true;
        socket.write(`CONNECT ${JSON.stringify({ ...credentials, verbose: false, pedantic: false })}\r\nPING\r\n`);
      }
      const answer = /(-ERR [^\r]*|PONG)\r\n/.exec(text.slice(text.indexOf('\r\n') + 2));
      if (sent && answer !== null) {
        clearTimeout(timer);
        socket.destroy();
        resolve(answer[1]!);
      }
    });
  });
}

describe('deploy/nats/cohort.conf on a real nats-server', () => {
  it('three nodes route with the generated password; auth.conf users and the system user get in; a wrong route password does not', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cohort-compose-'));
    const nodes: NatsServer[] = [];
    try {
      // The layout of a node: the configuration, and the credentials beside it in auth/.
      const auth = join(dir, 'auth');
      await mkdir(auth);
      // A stand-in for `cohort auth init`: its auth.conf's shape, one nkey user.
      const worker = createUser();
      const workerSeed = join(auth, 'worker.nk');
      await writeFile(workerSeed, `${new TextDecoder().decode(worker.getSeed())}\n`, { mode: 0o600 });
      await writeFile(
        join(auth, 'auth.conf'),
        `authorization {\n  users = [\n    { nkey: "${worker.getPublicKey()}" }\n  ]\n}\n`,
      );
      const clusterPorts = await freePorts(3);
      const httpPorts = await freePorts(3);
      const secrets = [
        join(ROOT, 'deploy/nats/cluster-secrets.mjs'),
        auth,
        ...clusterPorts.map((p) => `127.0.0.1:${p}`),
      ];
      await run(process.execPath, secrets, { cwd: ROOT });
      expect((await stat(join(auth, 'sys.nk'))).mode & 0o777).toBe(0o600);
      // Run again: nothing is remade.
      const routes = await readFile(join(auth, 'routes.conf'), 'utf8');
      await run(process.execPath, secrets, { cwd: ROOT });
      expect(await readFile(join(auth, 'routes.conf'), 'utf8')).toBe(routes);
      const password = /password: "([0-9a-f]{48})"/.exec(routes)?.[1];
      for (const port of clusterPorts) expect(routes).toContain(`"nats-route://route:${password}@127.0.0.1:${port}"`);

      // Each node's copy differs only in what a container gets from its own volume and network.
      const one = (text: string, from: string, to: string): string => {
        expect(text.split(from).length - 1, `"${from}" once in the configuration`).toBe(1);
        return text.replace(from, to);
      };
      const confs = await Promise.all(
        clusterPorts.map(async (port, i) => {
          const conf = join(dir, `n${i + 1}.conf`);
          const store = join(dir, `store${i + 1}`);
          await writeFile(
            conf,
            one(one(configText, 'store_dir: "/data"', `store_dir: "${store}"`), '0.0.0.0:6222', `127.0.0.1:${port}`),
          );
          return conf;
        }),
      );
      const seed = new TextEncoder().encode((await readFile(workerSeed, 'utf8')).trim());
      nodes.push(
        ...(await Promise.all(
          confs.map((conf, i) =>
            startNatsServer({
              jetstream: false, // the configuration turns it on
              serverName: `n${i + 1}`,
              args: ['-c', conf, '-m', String(httpPorts[i])],
              probe: { authenticator: nkeyAuthenticator(seed) },
            }),
          ),
        )),
      );
      const urls = nodes.map((n) => n.url);

      // auth.conf's user: JetStream with three replicas, so every node joined the meta group
      // (until the group has a leader, even opening a bus times out: its JetStream check goes unanswered).
      const bus = await waitFor(
        () => createNatsBus({ servers: urls, auth: { nkey: workerSeed }, apiTimeout: 2_000 }).catch(() => undefined),
        { timeoutMs: 30_000, what: 'a bus on the cluster' },
      );
      try {
        expect(bus.server.security?.authRequired).toBe(true);
        const kv = await waitFor(
          () => bus.kv({ bucket: 'compose_check', replicas: 3, storage: 'memory' }).catch(() => undefined),
          { timeoutMs: 20_000, what: 'an R3 bucket' },
        );
        await kv.put('k', new Uint8Array([1]));
        expect([...((await kv.get('k'))?.value ?? [])]).toEqual([1]);
        // The global account has no system services: those are the system account's.
        await expect(
          bus.request('$SYS.REQ.SERVER.PING.JSZ', new Uint8Array(), { timeout: 2_000 }),
        ).rejects.toBeInstanceOf(NoRespondersError);
        await kv.destroy();
      } finally {
        await bus.close();
      }

      // The system user answers for the servers, as `nats server report jetstream` asks.
      const sysSeed = new TextEncoder().encode((await readFile(join(auth, 'sys.nk'), 'utf8')).trim());
      const sys = await connectNats({ servers: urls, authenticator: nkeyAuthenticator(sysSeed) });
      try {
        const reply = await sys.request('$SYS.REQ.SERVER.PING.JSZ', '', { timeout: 2_000 });
        const jsz = reply.json<{ server: { name: string }; data: { config?: unknown } }>();
        expect(['n1', 'n2', 'n3']).toContain(jsz.server.name);
        expect(jsz.data.config).toBeDefined();
      } finally {
        await sys.close();
      }

      // No credentials: refused, from nats-server 2.9.23 on. Before (Debian's 2.9.10), the server
      // lets them into the global account (GHSA-fr2g-9hjm-wr23), as the configuration says.
      const anonymous = createNatsBus({ servers: urls[0]!, timeout: 2_000 });
      if (compareVersions(nodes[0]!.version, '2.9.23') >= 0)
        await expect(anonymous).rejects.toBeInstanceOf(AuthenticationError);
      else await (await anonymous).close();
      expect(configText).toContain('GHSA-fr2g-9hjm-wr23');

      // Routes: each node has the other two, and a wrong route password is refused.
      const monitor = async <T>(path: string): Promise<T> =>
        (await (await fetch(`http://127.0.0.1:${httpPorts[0]}${path}`)).json()) as T;
      expect((await monitor<{ http_host: string }>('/varz')).http_host).toBe('127.0.0.1');
      expect((await monitor<{ num_routes: number }>('/routez')).num_routes).toBe(2);
      expect((await fetch(`http://127.0.0.1:${httpPorts[0]}/healthz`)).status).toBe(200);
      expect(await routeConnect(clusterPorts[0]!, { user: 'route', pass: 'wrong' })).toMatch(
        /^-ERR 'Authorization Violation'/,
      );
    } finally {
      await Promise.all(nodes.map((n) => n[Symbol.asyncDispose]()));
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
