import { describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuthenticationError, connect, createNatsBus, type View } from '../../index.js';
import { NO_SAFEGUARDS } from '../../internal.js';
import { defaultApp, describeView, parseUpArgs, parseWorkerCount } from '../../cli/up.js';
import { parseWorkerArgs } from '../../cli/worker.js';
import { CliUsageError } from '../../cli/loadApplications.js';
import { cleanupAfterEach } from '../cleanup.js';
import { cohort, processAlive } from '../fixtures/cliProcess.js';
import { startTestServer } from '../nats.js';

describe('cohort up', () => {
  const track = cleanupAfterEach();

  it(
    'runs two worker processes on an embedded server, reports each view, serves clients, and stops on SIGTERM',
    { timeout: 45_000 },
    async () => {
      const cli = track(cohort(['up', '--workers', '2']));
      const [, url] = await cli.line(/^embedded nats-server \S+ at (nats:\/\/127\.0\.0\.1:\d+) /);
      const [, pidList] = await cli.line(/^worker pids: (w1 \d+, w2 \d+)$/);
      const pids = pidList!.split(', ').map((p) => Number(p.split(' ')[1]));
      await cli.line(/^\[w1\] worker w1 serving ledger on nats:\/\/127\.0\.0\.1:\d+ \(cluster demo, zone a\)$/);
      await cli.line(/^\[w2\] worker w2 serving ledger on nats:\/\/127\.0\.0\.1:\d+ \(cluster demo, zone b\)$/);
      // Settled: both members, every shard with one of them, nothing in motion.
      await cli.line(/^view \d+: 2 members, leader w[12] \| w[12] \([ab]\) 128 shards, w[12] \([ab]\) 128 shards$/);

      const client = track(await connect({ nats: url!, cluster: 'demo', label: 'up-test' }));
      const account = client.session('ledger', 'up-test');
      await account.send({ type: 'OPEN', owner: 'Up' });
      expect(await account.send({ type: 'DEPOSIT', amount: 250 })).toMatchObject({ seq: 2, duplicate: false });
      expect((await account.read()).document).toMatchObject({ owner: 'Up', balance: 250 });
      await client.close();

      cli.child.kill('SIGTERM');
      expect(await cli.exited).toEqual({ code: 0, signal: null });
      expect(cli.stdout).toContain('SIGTERM: stopping 2 workers and the nats-server (a second signal exits at once)');
      expect(cli.stdout).toContain('[w1] worker w1 stopped');
      expect(cli.stdout).toContain('[w2] worker w2 stopped');
      expect(cli.stdout.at(-1)).toBe('stopped');
      expect(pids.filter(processAlive)).toEqual([]);
    },
  );

  it(
    '--auth DIR: the embedded server admits only the users of DIR; a client on its seed file is served, one without credentials is refused',
    { timeout: 60_000 },
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'cohort-up-auth-'));
      track({ close: () => rm(dir, { recursive: true, force: true }) });
      const init = track(cohort(['auth', 'init', '--cluster', 'demo', '--out', dir, '--client', 'shop']));
      expect((await init.exited).code).toBe(0);
      const cli = track(cohort(['up', '--workers', '2', '--auth', dir]));
      const [, url] = await cli.line(
        /^embedded nats-server \S+ at (nats:\/\/127\.0\.0\.1:\d+) .*admitting only the users of /,
      );
      await cli.line(
        /^\[w1\] worker w1 serving ledger on nats:\/\/127\.0\.0\.1:\d+ \(cluster demo, zone a, nkey .*worker\.nk\)$/,
      );
      await cli.line(/^cluster demo up: 2 workers serving ledger at nats:\/\/\S+, only for the users of /);

      // Refused: no credentials at all.
      await expect(connect({ nats: url!, cluster: 'demo', waitTimeout: 2_000 })).rejects.toThrow();
      await expect(createNatsBus({ servers: url!, timeout: 2_000 })).rejects.toBeInstanceOf(AuthenticationError);
      // Served: the client user, its label taken from its seed file's name.
      const client = track(await connect({ nats: url!, cluster: 'demo', auth: { nkey: join(dir, 'client-shop.nk') } }));
      const account = client.session('ledger', 'up-auth');
      await account.send({ type: 'OPEN', owner: 'Auth' });
      expect(await account.send({ type: 'DEPOSIT', amount: 70 })).toMatchObject({ seq: 2 });
      expect((await account.read()).document).toMatchObject({ balance: 70 });
      await client.close();

      cli.child.kill('SIGTERM');
      expect(await cli.exited).toEqual({ code: 0, signal: null });
    },
  );

  it(
    'on a server given with --nats, the credentials flags reach the workers (by environment, not their command lines) and the view reader',
    { timeout: 60_000 },
    async () => {
      await using server = await startTestServer({
        args: ['--user', 'ops', '--pass', 's3cret'],
        probe: { user: 'ops', pass: 's3cret' },
      });
      const cli = track(
        cohort([
          'up',
          '--workers',
          '1',
          '--nats',
          server.url,
          '--user',
          'ops',
          '--password',
          's3cret',
          '--cluster',
          'creds',
        ]),
      );
      const [, pid] = await cli.line(/^worker pids: w1 (\d+)$/);
      await cli.line(/^view \d+: 1 member, leader w1 \| w1 \(a\) 256 shards$/);
      const argv = await readFile(`/proc/${pid}/cmdline`, 'utf8');
      expect(argv).toContain('--nats');
      expect(argv).not.toContain('s3cret');
      const client = track(
        await connect({ nats: server.url, auth: { user: 'ops', password: 's3cret' }, cluster: 'creds' }),
      );
      expect(await client.session('ledger', 'c1').send({ type: 'OPEN', owner: 'C' })).toMatchObject({ seq: 1 });
      await client.close();
      cli.child.kill('SIGTERM');
      expect(await cli.exited).toEqual({ code: 0, signal: null });
    },
  );

  it('--auth refuses a directory made for another cluster, or none, as wrong usage', { timeout: 30_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cohort-up-auth-'));
    track({ close: () => rm(dir, { recursive: true, force: true }) });
    const none = track(cohort(['up', '--auth', dir]));
    expect((await none.exited).code).toBe(2);
    expect(none.stderr()).toContain(`cohort auth init --cluster demo --out ${dir}`);
    const init = track(cohort(['auth', 'init', '--cluster', 'shop', '--out', dir]));
    expect((await init.exited).code).toBe(0);
    const other = track(cohort(['up', '--auth', dir]));
    expect((await other.exited).code).toBe(2);
    expect(other.stderr()).toContain('was made for cluster "shop", not "demo"');
  });

  it('refuses a worker count that is not a whole number from 1 to 26 (exit code 2)', { timeout: 30_000 }, async () => {
    const runs = await Promise.all(
      [
        ['--workers', '0'],
        ['--workers', 'x'],
        ['--session-timeout', '100'],
      ].map(async (args) => {
        const cli = track(cohort(['up', ...args]));
        const { code } = await cli.exited;
        return { code, stdout: cli.stdout.join('\n'), stderr: cli.stderr() };
      }),
    );
    for (const r of runs) {
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
    }
    expect(runs[0]!.stderr).toContain('cohort up: --workers needs a whole number from 1 to 26 (got "0")');
    expect(runs[1]!.stderr).toContain('cohort up: --workers needs a whole number from 1 to 26 (got "x")');
    expect(runs[2]!.stderr).toContain(
      '--session-timeout needs a whole number of milliseconds, at least 500 (got "100")',
    );
  });

  it('parses --workers', () => {
    expect(parseWorkerCount(undefined)).toBe(3);
    expect(parseWorkerCount('1')).toBe(1);
    expect(parseWorkerCount('26')).toBe(26);
    for (const bad of ['0', '-1', '', 'three', '1e1', '2.5', '27'])
      expect(() => parseWorkerCount(bad)).toThrow(CliUsageError);
  });

  it('passes membership timings to the workers: --session-timeout alone brings a heartbeat that fits it', () => {
    expect(parseUpArgs([])).toMatchObject({
      workers: 3,
      apps: [defaultApp()],
      nats: undefined,
      cluster: 'demo',
      sessionTimeout: undefined,
      heartbeatInterval: undefined,
    });
    expect(parseUpArgs(['--session-timeout', '1000'])).toMatchObject({ sessionTimeout: 1000, heartbeatInterval: 250 });
    expect(parseUpArgs(['--session-timeout', '6000'])).toMatchObject({ sessionTimeout: 6000, heartbeatInterval: 500 });
    expect(
      parseWorkerArgs(['--app', 'a.ts', '--session-timeout', '1500', '--heartbeat-interval', '250']),
    ).toMatchObject({ sessionTimeout: 1500, heartbeatInterval: 250 });
    expect(() => parseWorkerArgs(['--app', 'a.ts', '--session-timeout', '800'])).toThrow(
      '--heartbeat-interval (500 ms) must be at most half of --session-timeout (800 ms); pass --heartbeat-interval 400 or less',
    );
    expect(parseWorkerArgs(['--app', 'a.ts', '--storage-replicas', '3'])).toMatchObject({ storageReplicas: 3 });
    expect(() => parseWorkerArgs(['--app', 'a.ts', '--storage-replicas', '9'])).toThrow(CliUsageError);
    expect(() => parseWorkerArgs(['--app', 'a.ts', '--storage-replicas', 'x'])).toThrow(
      /--storage-replicas needs a whole number from 1 to 5/,
    );
    expect(() => parseWorkerArgs(['--app', 'a.ts', '--heartbeat-interval', '0'])).toThrow(CliUsageError);
    expect(parseWorkerArgs(['--app', 'a.ts'])).toMatchObject({ reconnectInterval: undefined });
    expect(parseWorkerArgs(['--app', 'a.ts', '--reconnect-interval', '250'])).toMatchObject({ reconnectInterval: 250 });
    for (const bad of ['0', '1.5', 'soon', '9'.repeat(30)])
      expect(() => parseWorkerArgs(['--app', 'a.ts', '--reconnect-interval', bad])).toThrow(
        /--reconnect-interval needs a whole number of milliseconds/,
      );
    // A negative number reads as another flag: parseArgs refuses it itself.
    expect(() => parseWorkerArgs(['--app', 'a.ts', '--reconnect-interval', '-5'])).toThrow();
  });
});

describe('describeView', () => {
  const m = (id: string, joined: number) => ({ id, zone: 'a', promotable: true, joined });
  const view: View = {
    viewId: 7,
    members: [m('w1', 1), m('w2', 2)],
    leader: 'w1',
    replicas: 0,
    shardCount: 4,
    shards: [0, 1, 2, 3].map((i) => ({
      primary: i < 3 ? 'w1' : 'w2',
      replicas: [],
      state: 'ACTIVE' as const,
      next: null,
      epoch: 1,
    })),
    transitional: false,
    possibleDataLoss: [],
    safeguards: NO_SAFEGUARDS,
  };

  it('says which safeguards are in force: the halt, each held member and its unserved shards, instability', () => {
    // Control: an ordinary view says nothing of them.
    expect(describeView(view)).toBe('view 7: 2 members, leader w1 | w1 (a) 3 shards, w2 (a) 1 shards');
    const guarded: View = {
      ...view,
      safeguards: {
        ...NO_SAFEGUARDS,
        failoverHalted: Date.UTC(2026, 0, 2, 3, 4, 5),
        held: [{ member: 'w2', reason: 'quota' }],
        unstable: Date.UTC(2026, 0, 2, 3, 0, 0),
      },
    };
    expect(describeView(guarded)).toBe(
      'view 7: 2 members, leader w1 | w1 (a) 3 shards, w2 (a) 1 shards | ' +
        'automatic failover halted since 2026-01-02T03:04:05.000Z (cohort reset-failover resumes it); ' +
        'w2 silent, held (quota): 1 shards unserved; membership unstable since 2026-01-02T03:00:00.000Z: no rebalancing',
    );
  });
});
