import { spawn } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream, jetstreamManager, StorageType } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { NatsServerNotFoundError, NatsServerStartError } from '../../harness/errors.js';
import { findNatsServerBinary, natsServerCandidates, requireNatsServerBinary } from '../../harness/natsServerBinary.js';
import { startNatsServer } from '../../harness/natsServer.js';
import { connectTest, startTestCluster, startTestServer } from '../nats.js';
import { waitFor } from '../waitFor.js';

const realBinary = requireNatsServerBinary();

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

async function refuses(url: string): Promise<boolean> {
  try {
    const nc = await connect({ servers: url, reconnect: false, timeout: 1_000 });
    await nc.close();
    return false;
  } catch {
    return true;
  }
}

/** Gone, or a zombie nobody has reaped yet: either way it holds no port and runs nothing. */
async function dead(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
}

/** A js.publish that succeeds within the deadline (a stream may be electing a leader meanwhile). */
async function publishEventually(js: ReturnType<typeof jetstream>, subject: string, data: string): Promise<number> {
  const ack = await waitFor(
    async () => {
      try {
        return await js.publish(subject, data, { timeout: 1_000 });
      } catch {
        return false;
      }
    },
    { timeoutMs: 15_000, what: `a JetStream publish to ${subject}` },
  );
  return ack.seq;
}

describe('nats-server binary discovery', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cohort-bin-'));
  });
  afterAll(async () => {
    vi.unstubAllEnvs();
    await rm(dir, { recursive: true, force: true });
  });

  it('honours NATS_SERVER_BIN before PATH, and startNatsServer runs it', async () => {
    // A wrapper that execs the real server (same pid), leaving a mark that it was the one run.
    const wrapper = join(dir, 'my-nats');
    const mark = join(dir, 'ran');
    await writeFile(wrapper, `#!/bin/sh\necho yes > '${mark}'\nexec '${realBinary}' "$@"\n`);
    await chmod(wrapper, 0o755);

    expect(findNatsServerBinary({ NATS_SERVER_BIN: wrapper, PATH: '/usr/sbin:/usr/bin' })).toBe(wrapper);

    vi.stubEnv('NATS_SERVER_BIN', wrapper);
    await using server = await startNatsServer({ jetstream: false });
    vi.unstubAllEnvs();
    expect(await readFile(mark, 'utf8')).toBe('yes\n');
    expect(server.running).toBe(true);
  }, 15_000);

  it('a bad NATS_SERVER_BIN is a typed error, not a silent fallback', async () => {
    const missing = join(dir, 'no-such-nats-server');
    expect(findNatsServerBinary({ NATS_SERVER_BIN: missing, PATH: '/usr/sbin' })).toBeNull();
    const error = (() => {
      try {
        requireNatsServerBinary({ NATS_SERVER_BIN: missing });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(NatsServerNotFoundError);
    expect((error as NatsServerNotFoundError).envValue).toBe(missing);
    expect((error as Error).message).toContain('apt-get install nats-server');

    const notExecutable = join(dir, 'plain-file');
    await writeFile(notExecutable, 'not a program');
    expect(findNatsServerBinary({ NATS_SERVER_BIN: notExecutable })).toBeNull();

    vi.stubEnv('NATS_SERVER_BIN', missing);
    await expect(startNatsServer()).rejects.toBeInstanceOf(NatsServerNotFoundError);
    vi.unstubAllEnvs();
  });

  it('searches PATH in order, then the sbin fallbacks', async () => {
    const fake = join(dir, 'nats-server');
    await writeFile(fake, '#!/bin/sh\nexit 0\n');
    await chmod(fake, 0o755);
    expect(findNatsServerBinary({ PATH: `/nonexistent:${dir}:/usr/sbin` })).toBe(fake);
    const candidates = natsServerCandidates({ PATH: `${dir}:relative/dir` });
    expect(candidates).toEqual([
      fake,
      '/usr/sbin/nats-server',
      '/usr/local/bin/nats-server',
      '/usr/local/sbin/nats-server',
    ]);
    expect(new NatsServerNotFoundError(candidates).message).toContain('/usr/local/sbin/nats-server');
  });
});

describe('a single nats-server', () => {
  it('starts on a random port; core pub/sub and JetStream work', async () => {
    await using server = await startTestServer();
    expect(server.url).toBe(`nats://127.0.0.1:${server.port}`);
    expect(server.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(server.pid).toBeGreaterThan(0);

    await using nc = await connectTest(server);
    const sub = nc.subscribe('greet', { max: 1 });
    nc.publish('greet', 'hello');
    for await (const msg of sub) expect(msg.string()).toBe('hello');

    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'ORDERS', subjects: ['orders.>'] });
    const ack = await jetstream(nc).publish('orders.1', 'one');
    expect((await jsm.streams.getMessage('ORDERS', { seq: ack.seq }))?.string()).toBe('one');
  }, 15_000);

  it('two servers started at once get different ports and store dirs', async () => {
    const [a, b] = await Promise.all([startTestServer(), startTestServer()]);
    await using _a = a;
    await using _b = b;
    expect(a.port).not.toBe(b.port);
    expect(a.storeDir).not.toBe(b.storeDir);
  }, 15_000);

  it('stop() makes the port refuse connections; dispose removes the temporary store', async () => {
    const server = await startTestServer();
    const storeDir = server.storeDir;
    expect(await refuses(server.url)).toBe(false);

    await server.stop();
    expect(server.running).toBe(false);
    expect(await refuses(server.url)).toBe(true);
    expect(await exists(storeDir)).toBe(true); // kept, so restart() could resume

    await server[Symbol.asyncDispose]();
    expect(await exists(storeDir)).toBe(false);
  }, 15_000);

  it('dispose keeps a store dir that was given', async () => {
    const given = await mkdtemp(join(tmpdir(), 'cohort-store-'));
    try {
      {
        await using server = await startTestServer({ storeDir: given });
        expect(server.storeDir).toBe(given);
      }
      expect(await exists(join(given, 'jetstream'))).toBe(true);
    } finally {
      await rm(given, { recursive: true, force: true });
    }
  }, 15_000);

  it('a server that exits during start is a NatsServerStartError carrying its output', async () => {
    await using first = await startTestServer({ jetstream: false });
    const error = await startNatsServer({ port: first.port, jetstream: false }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NatsServerStartError);
    const start = error as NatsServerStartError;
    expect(start.reason).toBe('exited');
    expect(start.output.length).toBeGreaterThan(0);
    expect(start.message).toContain(start.output.at(-1));
  }, 15_000);

  it('kill() then restart(): same port, JetStream data written before the kill survives', async () => {
    await using server = await startTestServer();
    const port = server.port;
    const firstPid = server.pid;
    // Keeps reconnecting across the crash, as an application's connection would.
    await using nc = await connectTest(server);
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'DURABLE', subjects: ['durable.>'], storage: StorageType.File });
    const seq = (await jetstream(nc).publish('durable.a', 'before the crash')).seq;

    await server.kill();
    expect(server.running).toBe(false);
    expect(await dead(firstPid)).toBe(true);
    expect(await refuses(server.url)).toBe(true);

    await server.restart();
    expect(server.port).toBe(port);
    expect(server.pid).not.toBe(firstPid);

    await using fresh = await connectTest(server);
    const msg = await (await jetstreamManager(fresh)).streams.getMessage('DURABLE', { seq });
    expect(msg?.string()).toBe('before the crash');
    // The old connection came back on its own, to the same port.
    const after = await publishEventually(jetstream(nc), 'durable.b', 'after the restart');
    expect(after).toBe(seq + 1);
  }, 20_000);

  it.each([
    ['exits without disposing', 'process.exit(0);'],
    ['is SIGKILLed', "process.kill(process.pid, 'SIGKILL');"],
  ])(
    'a process that %s leaks neither its server nor its temporary dirs',
    async (_how, ending) => {
      const dir = await mkdtemp(join(tmpdir(), 'cohort-leak-'));
      try {
        const script = join(dir, 'leak.mts');
        const harness = new URL('../../harness/natsServer.ts', import.meta.url).href;
        await writeFile(
          script,
          `import { startNatsServer } from '${harness}';\n` +
            `const s = await startNatsServer({ jetstream: false });\n` +
            `process.stdout.write(JSON.stringify({ pid: s.pid, url: s.url, storeDir: s.storeDir }) + '\\n', () => {\n` +
            `  ${ending}\n` +
            `});\n`,
        );
        const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.stderr.on('data', (d: Buffer) => (err += d.toString()));
        await new Promise((resolve) => child.once('close', resolve));
        expect(err).toBe('');
        const { pid, url, storeDir } = JSON.parse(out) as { pid: number; url: string; storeDir: string };
        await waitFor(() => dead(pid), { timeoutMs: 5_000, what: `nats-server ${pid} to die with its parent` });
        expect(await refuses(url)).toBe(true);
        await waitFor(async () => !(await exists(storeDir)), { timeoutMs: 5_000, what: `${storeDir} to be removed` });
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
    15_000,
  );
});

describe('a 3-node cluster', () => {
  it('serves an R3 stream, survives losing its leader, and the node rejoins on restart', async () => {
    await using cluster = await startTestCluster();
    expect(cluster.nodes).toHaveLength(3);
    expect(new Set(cluster.urls).size).toBe(3);
    expect(cluster.nodes.map((n) => n.serverName)).toEqual(['n1', 'n2', 'n3']);

    await using admin = await connectTest(cluster);
    const info = await (await jetstreamManager(admin)).streams.add({ name: 'R3', subjects: ['r3.>'], num_replicas: 3 });
    // Always lose the stream leader: the harder case, and the same work on every run.
    const victim = cluster.nodes.find((n) => n.serverName === info.cluster?.leader);
    if (victim === undefined) throw new Error(`no node is the leader ${String(info.cluster?.leader)}`);
    const survivors = cluster.nodes.filter((n) => n !== victim).map((n) => n.url);

    // Connected to the two nodes that stay up, so the client itself never fails over.
    await using nc = await connectTest(survivors, { ignoreClusterUpdates: true });
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    expect(await publishEventually(js, 'r3.a', 'three up')).toBe(1);

    const port = victim.port;
    await victim.kill();
    expect(await publishEventually(js, 'r3.b', 'two up')).toBe(2);

    await victim.restart();
    expect(victim.port).toBe(port);
    await waitFor(
      async () => {
        const { cluster: now } = await jsm.streams.info('R3');
        const peer = now?.replicas?.find((p) => p.name === victim.serverName);
        return now?.leader === victim.serverName || (peer !== undefined && peer.current && !peer.offline);
      },
      { timeoutMs: 15_000, what: `${String(victim.serverName)} to rejoin the R3 stream` },
    );
    await using direct = await connectTest(victim, { ignoreClusterUpdates: true });
    const msg = await (await jetstreamManager(direct)).streams.getMessage('R3', { seq: 2 });
    expect(msg?.string()).toBe('two up');
  }, 40_000);
});

describe('a cluster without JetStream', () => {
  it('routes core messages between nodes', async () => {
    await using cluster = await startTestCluster({ jetstream: false });
    const [first, , last] = cluster.nodes;
    if (first === undefined || last === undefined) throw new Error('three nodes expected');
    await using sub = await connectTest(last, { ignoreClusterUpdates: true });
    await using pub = await connectTest(first, { ignoreClusterUpdates: true });
    sub.subscribe('ping', { callback: (_err, msg) => void msg.respond('pong') });
    await sub.flush();
    const reply = await waitFor(
      async () => {
        try {
          return (await pub.request('ping', undefined, { timeout: 500 })).string();
        } catch {
          return false;
        }
      },
      { timeoutMs: 5_000, what: 'a request across the route' },
    );
    expect(reply).toBe('pong');
  }, 15_000);
});
