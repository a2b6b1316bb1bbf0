import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { connect as connectNats } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../../index.js';
import { CliUsageError, isApplication, loadApplications } from '../../cli/loadApplications.js';
import { parseWorkerArgs } from '../../cli/worker.js';
import { ledger } from '../../examples/ledger.js';
import type { NatsServer } from '../../harness/natsServer.js';
import { cleanupAfterEach } from '../cleanup.js';
import { cohort } from '../fixtures/cliProcess.js';
import { startTestServer } from '../nats.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

const SERVING = /^worker (\S+) serving (.+) on (\S+|the in-memory bus) \((.*)\)$/;

describe('cohort worker', () => {
  let server: NatsServer;
  let scratch: string;
  beforeAll(async () => {
    [server, scratch] = await Promise.all([startTestServer(), mkdtemp(join(tmpdir(), 'cohort-cli-'))]);
  });
  afterAll(async () => {
    await Promise.all([server?.[Symbol.asyncDispose](), scratch && rm(scratch, { recursive: true, force: true })]);
  });
  const track = cleanupAfterEach();
  const unique = (): string => `cli_${randomBytes(4).toString('hex')}`;
  // A clean stop waits for the worker to leave the cluster (seen to take up to 30 s right after a
  // start, with membership new), and the first test stops two workers.
  const STOPS = { timeout: 60_000 };

  it(
    'serves a .ts application until SIGTERM (exit 0); a second worker serves what the first committed',
    STOPS,
    async () => {
      const cluster = unique();
      const args = ['worker', '--app', './examples/ledger.ts', '--nats', server.url, '--cluster', cluster];
      const first = track(cohort(args));
      const [, id, apps, where, extras] = await first.line(SERVING);
      expect({ apps, where, extras }).toEqual({ apps: 'ledger', where: server.url, extras: `cluster ${cluster}` });

      const client = track(await connect({ nats: server.url, cluster, label: 'cli-test' }));
      const alice = client.session('ledger', 'alice');
      await alice.send({ type: 'OPEN', owner: 'Alice' });
      await alice.send({ type: 'DEPOSIT', amount: 500 });
      expect(await alice.send({ type: 'WITHDRAW', amount: 120 })).toMatchObject({ seq: 3, duplicate: false });
      expect((await alice.read()).document).toMatchObject({ owner: 'Alice', balance: 380 });

      first.child.kill('SIGTERM');
      expect(await first.exited).toEqual({ code: 0, signal: null });
      expect(first.stdout.slice(-2)).toEqual([
        `SIGTERM: stopping worker ${id} (a second signal exits at once)`,
        `worker ${id} stopped`,
      ]);

      const second = track(cohort([...args, '--id', 'second']));
      await second.line(/^worker second serving ledger on /);
      const back = await alice.read();
      expect(back).toMatchObject({ seq: 3, state: 'open', document: { owner: 'Alice', balance: 380 } });
      expect(await alice.send({ type: 'DEPOSIT', amount: 20 })).toMatchObject({ seq: 4, duplicate: false });
      expect((await alice.read()).document).toMatchObject({ balance: 400 });

      second.child.kill('SIGINT');
      expect(await second.exited).toEqual({ code: 0, signal: null });
    },
  );

  it('without --nats starts an embedded nats-server, prints its URL, and removes it on stop', STOPS, async () => {
    const cluster = unique();
    const cli = track(cohort(['worker', '--app', 'examples/ledger.ts', '--cluster', cluster, '--id', 'solo']));
    const [, url] = await cli.line(
      /^no --nats given: started an embedded nats-server \S+ at (nats:\/\/127\.0\.0\.1:\d+) /,
    );
    expect(url).toBeDefined();
    await cli.line(new RegExp(`^Other workers on this host can join it with --nats ${url} --cluster ${cluster}$`));
    const [, , , where] = await cli.line(SERVING);
    expect(where).toBe(url);

    const client = track(await connect({ nats: url!, cluster }));
    expect(await client.session('ledger', 'bob').send({ type: 'OPEN', owner: 'Bob' })).toMatchObject({
      seq: 1,
      duplicate: false,
    });
    await client.close();

    cli.child.kill('SIGTERM');
    expect(await cli.exited).toEqual({ code: 0, signal: null });
    // The embedded server went with it.
    await expect(connectNats({ servers: url!, reconnect: false, timeout: 1_000 })).rejects.toThrow();
  });

  it(
    'falls back to the in-memory bus, saying the worker is alone; --zone, --no-promote and --id pass through',
    STOPS,
    async () => {
      const cli = track(
        cohort(['worker', '--app', 'examples/ledger.ts', '--zone', 'a', '--no-promote', '--id', 'm1'], {
          NATS_SERVER_BIN: '/nonexistent/nats-server',
        }),
      );
      const [line] = await cli.line(SERVING);
      expect(line).toBe('worker m1 serving ledger on the in-memory bus (cluster demo, zone a, not promotable)');
      expect(cli.stdout.join('\n')).toContain(
        'NATS_SERVER_BIN=/nonexistent/nats-server is not an executable nats-server',
      );
      expect(cli.stdout.join('\n')).toMatch(/in-memory bus, in this process: this worker is alone/);
      cli.child.kill('SIGTERM');
      expect(await cli.exited).toEqual({ code: 0, signal: null });
    },
  );

  it('serves every application of several --app modules, .ts and .mjs', STOPS, async () => {
    const other = join(scratch, 'tally.mjs');
    // A structural application (no import of cohort at all): what matters is its shape.
    await writeFile(
      other,
      `import { ledgerMachine } from ${JSON.stringify(pathToFileURL(join(ROOT, 'examples/ledger.ts')).href)};\n` +
        `export const tally = { name: 'tally', machine: ledgerMachine, commit: 'journal', unusedSessionLifetime: 1000, snapshotEvery: 10, metadata: {} };\n`,
    );
    const cluster = unique();
    const cli = track(
      cohort([
        'worker',
        '--app',
        'examples/ledger.ts',
        '--app',
        'examples/whiteboard.ts',
        '--app',
        other,
        '--nats',
        server.url,
        '--cluster',
        cluster,
      ]),
    );
    const [, , apps] = await cli.line(SERVING);
    expect(apps).toBe('ledger, whiteboard, tally');
    const client = track(await connect({ nats: server.url, cluster }));
    expect(await client.session('tally', 't1').send({ type: 'OPEN', owner: 'T' })).toMatchObject({
      seq: 1,
      duplicate: false,
    });
    cli.child.kill('SIGTERM');
    expect(await cli.exited).toEqual({ code: 0, signal: null });
  });

  it(
    'refuses bad usage with exit code 2 and says why; an unreachable server or a broken module is exit code 1',
    STOPS,
    async () => {
      const empty = join(scratch, 'empty.mjs');
      const copy = join(scratch, 'copy.mjs');
      const broken = join(scratch, 'broken.mjs');
      await Promise.all([
        writeFile(empty, 'export const answer = 42;\nexport default function hello() {}\n'),
        writeFile(
          copy,
          `import { ledger } from ${JSON.stringify(pathToFileURL(join(ROOT, 'examples/ledger.ts')).href)};\nexport const copy = { ...ledger };\n`,
        ),
        writeFile(broken, "throw new Error('boom at load');\n"),
      ]);
      const run = async (...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> => {
        const cli = track(cohort(['worker', ...args]));
        const { code } = await cli.exited;
        return { code, stdout: cli.stdout.join('\n'), stderr: cli.stderr() };
      };
      const [missing, none, twice, unknown, noApp, positional, badCluster, unreachable, throws] = await Promise.all([
        run('--app', 'examples/nope.ts'),
        run('--app', empty),
        run('--app', 'examples/ledger.ts', '--app', copy),
        run('--app', 'examples/ledger.ts', '--frobnicate'),
        run('--nats', server.url),
        run('--app', 'examples/ledger.ts', 'extra'),
        run('--app', 'examples/ledger.ts', '--cluster', 'no.dots'),
        run('--app', 'examples/ledger.ts', '--nats', 'nats://127.0.0.1:1'),
        run('--app', broken),
      ]);

      expect(missing.code).toBe(2);
      expect(missing.stderr).toContain('--app examples/nope.ts: no such file');
      expect(missing.stderr).toContain(join(ROOT, 'examples/nope.ts'));
      expect(missing.stderr).not.toContain('usage:');

      expect(none.code).toBe(2);
      expect(none.stderr).toContain(`--app ${empty}: exports no application (its exports: answer, default)`);

      expect(twice.code).toBe(2);
      expect(twice.stderr).toContain(
        `two applications are named "ledger": export ledger of examples/ledger.ts and export copy of ${copy}`,
      );

      for (const r of [unknown, noApp, positional]) {
        expect(r.code).toBe(2);
        // The command's own usage, not every command's.
        expect(r.stderr).toContain('usage: cohort worker [options]');
        expect(r.stderr).toContain('worker --app FILE');
        expect(r.stdout).toBe('');
      }
      expect(unknown.stderr).toContain("Unknown option '--frobnicate'");
      expect(noApp.stderr).toContain('needs --app FILE');

      expect(badCluster.code).toBe(2);
      expect(badCluster.stderr).toContain('--cluster "no.dots"');

      expect(unreachable.code).toBe(1);
      expect(unreachable.stderr).toContain('cannot connect to nats://127.0.0.1:1');

      expect(throws.code).toBe(1);
      expect(throws.stderr).toContain(`--app ${broken}: cannot load it: boom at load`);
    },
  );
});

describe('loadApplications', () => {
  it('collects every application a module exports, once each, in order', async () => {
    const apps = await loadApplications(['examples/ledger.ts', './examples/whiteboard.ts', 'examples/ledger.ts']);
    expect(apps.map((a) => a.name)).toEqual(['ledger', 'whiteboard']);
    expect(apps[0]).toBe(ledger);
  });

  it('throws CliUsageError for no paths and for a missing file', async () => {
    await expect(loadApplications([])).rejects.toBeInstanceOf(CliUsageError);
    await expect(loadApplications(['missing/app.js'])).rejects.toThrow(/--app missing\/app\.js: no such file/);
    await expect(loadApplications(['examples'])).rejects.toThrow(/--app examples: not a file/);
  });

  it('recognises applications by shape', () => {
    expect(isApplication(ledger)).toBe(true);
    expect(isApplication({ ...ledger })).toBe(true);
    expect(isApplication(ledger.machine)).toBe(false);
    for (const commit of ['memory', 'journal', 'replicas']) expect(isApplication({ ...ledger, commit })).toBe(true);
    expect(isApplication({ ...ledger, commit: 'disk' })).toBe(false);
    expect(isApplication({ ...ledger, machine: { config: {} } })).toBe(false);
    expect(isApplication({ name: 'x' })).toBe(false);
    expect(isApplication(null)).toBe(false);
    expect(isApplication('ledger')).toBe(false);
  });
});

describe('parseWorkerArgs: the safeguard flags', () => {
  const app = ['--app', 'a.ts'];

  it('passes what is given to startWorker, and nothing when none is (the worker’s defaults)', () => {
    expect(parseWorkerArgs(app).safeguards).toEqual({});
    expect(
      parseWorkerArgs([
        ...app,
        '--failover-quota',
        '2',
        '--failover-window',
        '60000',
        '--min-members',
        '3',
        '--stable-after',
        '10000',
        '--unstable-after',
        '45000',
      ]).safeguards,
    ).toEqual({ failoverQuota: 2, failoverWindow: 60_000, minMembers: 3, stableAfter: 10_000, unstableAfter: 45_000 });
    // Each on its own, the others left to the worker.
    expect(parseWorkerArgs([...app, '--min-members', ' 2 ']).safeguards).toEqual({ minMembers: 2 });
  });

  it.each(['failover-quota', 'failover-window', 'min-members', 'stable-after', 'unstable-after'])(
    '--%s: zero, fractions, words, exponents, huge numbers and nothing are wrong usage',
    (flag) => {
      for (const bad of ['0', '1.5', 'three', '1e3', '9'.repeat(30), '', ' ', 'Infinity', '0x10'])
        expect(() => parseWorkerArgs([...app, `--${flag}`, bad]), bad).toThrow(CliUsageError);
      expect(() => parseWorkerArgs([...app, `--${flag}`, '7'])).not.toThrow();
      // A negative reads as another flag: parseArgs refuses it itself.
      expect(() => parseWorkerArgs([...app, `--${flag}`, '-5'])).toThrow();
      expect(() => parseWorkerArgs([...app, `--${flag}`, '0'])).toThrow(new RegExp(`--${flag} needs a whole number`));
    },
  );
});

describe('worker health flags', () => {
  const app = ['--app', 'examples/ledger.ts'];
  it('passes --failure-condition and --health-check-timeout to startWorker, and nothing when absent', () => {
    expect(parseWorkerArgs(app).health).toEqual({});
    expect(parseWorkerArgs([...app, '--failure-condition', '2', '--health-check-timeout', '15000']).health).toEqual({
      failureCondition: 2,
      healthCheckTimeout: 15_000,
    });
    expect(parseWorkerArgs([...app, '--failure-condition', ' 1 ']).health).toEqual({ failureCondition: 1 });
  });

  it('a level outside 1..3, or a timeout shorter than the session timeout, is wrong usage', () => {
    for (const bad of ['0', '4', '2.5', 'high', '', '1e0'])
      expect(() => parseWorkerArgs([...app, '--failure-condition', bad]), bad).toThrow(CliUsageError);
    expect(() => parseWorkerArgs([...app, '--health-check-timeout', '2999'])).toThrow(
      /--health-check-timeout \(2999 ms\) must be at least --session-timeout \(3000 ms\)/,
    );
    expect(() => parseWorkerArgs([...app, '--session-timeout', '8000', '--health-check-timeout', '7000'])).toThrow(
      CliUsageError,
    );
    expect(() => parseWorkerArgs([...app, '--health-check-timeout', 'soon'])).toThrow(CliUsageError);
    expect(parseWorkerArgs([...app, '--session-timeout', '8000', '--health-check-timeout', '8000']).health).toEqual({
      healthCheckTimeout: 8_000,
    });
  });
});

describe('worker --batch-max and --batch-bytes', () => {
  it("bound group commit; absent, the worker's defaults; anything but a whole number of at least 1 is refused", () => {
    const app = ['--app', 'examples/ledger.ts'];
    expect(parseWorkerArgs(app).groupCommit).toEqual({});
    expect(parseWorkerArgs([...app, '--batch-max', '1', '--batch-bytes', '4096']).groupCommit).toEqual({
      maxCommands: 1,
      maxBytes: 4096,
    });
    for (const bad of ['0', '-1', '1.5', 'x', '', '1e3'])
      for (const flag of ['--batch-max', '--batch-bytes'])
        expect(() => parseWorkerArgs([...app, `${flag}=${bad}`]), `${flag}=${bad}`).toThrow(CliUsageError);
  });
});

describe('worker --patches', () => {
  const app = ['--app', 'examples/ledger.ts'];
  it('passes watched or always to startWorker, nothing when absent; anything else is wrong usage', () => {
    expect(parseWorkerArgs(app).patches).toBeUndefined();
    expect(parseWorkerArgs([...app, '--patches', 'always']).patches).toBe('always');
    expect(parseWorkerArgs([...app, '--patches', 'watched']).patches).toBe('watched');
    for (const bad of ['', 'never', 'Always', ' always'])
      expect(() => parseWorkerArgs([...app, '--patches', bad]), bad).toThrow(CliUsageError);
  });
});
