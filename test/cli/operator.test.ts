import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, defineApplication, shardOf, startWorker, type Bus, type Client, type Worker } from '../../index.js';
import { createNatsBus } from '../../bus/nats/mod.js';
import {
  controlSubject,
  decode,
  encode,
  journalStreamFilter,
  journalStreamName,
  journalSubject,
} from '../../internal.js';
import type { NatsServer } from '../../harness/natsServer.js';
import { drainSubject, requestDrain } from '../../protocol/drain.js';
import { rebalancePlan } from '../../cli/rebalance.js';
import { UNSAFE } from '../../actors/worker/unsafe.js';
import { counterMachine } from '../fixtures/counter.js';
import { cohort, type Cli, type Exit } from '../fixtures/cliProcess.js';
import { startTestServer } from '../nats.js';
import { waitFor } from '../waitFor.js';
import type { View } from '../../index.js';

/** One JSON document per stdout line. */
const json = (lines: readonly string[]): Record<string, unknown>[] =>
  lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);

describe('operator commands against a real cluster', () => {
  let server: NatsServer;
  let bus: Bus;
  let client: Client;
  const workers = new Map<string, Worker>();
  const cluster = `op${randomUUID().slice(0, 8)}`;
  const app = defineApplication({ name: 'counter', machine: counterMachine });
  // The default shard count, so a `cohort worker` process (which has no flag for it) can join. No grace after
  // taking up a shard: a patch is published only while someone watches its session (tail APP ID does).
  const opts = {
    cluster,
    applications: [app],
    heartbeatInterval: 250,
    sessionTimeout: 3_000,
    [UNSAFE]: { takeoverGrace: 0 },
  };
  const start = async (id: string, zone: string): Promise<Worker> => {
    const w = await startWorker({ ...opts, bus: await createNatsBus({ servers: server.url }), id, zone });
    workers.set(id, w);
    return w;
  };
  const flags = (): string[] => ['--nats', server.url, '--cluster', cluster];

  beforeAll(async () => {
    server = await startTestServer();
    await start('a', 'z1');
    await start('b', 'z2');
    await start('c', 'z3');
    await waitFor(() => [...workers.values()].every((w) => w.serving.length > 0), { what: 'all serving' });
    bus = await createNatsBus({ servers: server.url });
    client = await connect({ bus, cluster, label: 'tester' });
    for (const [id, n] of [
      ['s1', 3],
      ['s2', 1],
      ['s3', 2],
    ] as const)
      for (let i = 0; i < n; i++) await client.session('counter', id).send({ type: 'ADD', by: 2 });
  }, 60_000);
  afterAll(async () => {
    await client?.close();
    await bus?.close();
    for (const w of workers.values()) await w.stop().catch(() => {});
    await server?.[Symbol.asyncDispose]();
  });

  it('--version, --help of every command exit 0; wrong usage exits 2 with the command usage', async () => {
    const args = [
      ['--version'],
      ...['status', 'sessions', 'inspect', 'tail', 'drain', 'rebalance', 'worker', 'up', 'failover'].map((c) => [
        c,
        '--help',
      ]),
      ['inspect', 'counter', ...flags()],
      ['status', '--log-level', 'loud', ...flags()],
    ];
    // Three at a time: a dozen node processes starting at once would starve the workers in this process.
    const runs: Cli[] = [];
    const exits: Exit[] = [];
    for (let i = 0; i < args.length; i += 3) {
      const batch = args.slice(i, i + 3).map((a) => cohort(a));
      runs.push(...batch);
      exits.push(...(await Promise.all(batch.map((r) => r.exited))));
    }
    expect(runs[0]!.stdout[0]).toMatch(/^cohort \d+\.\d+\.\d+/);
    for (let i = 0; i < 10; i++) {
      expect(exits[i]!.code).toBe(0);
      expect(runs[i]!.stdout.join('\n')).toMatch(i === 0 ? /cohort/ : /^usage: cohort /);
    }
    expect(runs[7]!.stdout.join('\n')).toMatch(/--app FILE/);
    expect(exits[10]!.code).toBe(2);
    expect(runs[10]!.stderr()).toMatch(/needs APP ID[\s\S]*usage: cohort inspect/);
    expect(exits[11]!.code).toBe(2);
    expect(runs[11]!.stderr()).toMatch(/--log-level "loud"/);
  }, 60_000);

  it('status, sessions and inspect --json describe the known state; inspect of an unknown app is a clear error', async () => {
    const [status, sessions, inspect, unknown, noSession] = [
      cohort(['status', '--json', '--listen', '800', ...flags()]),
      cohort(['sessions', 'counter', '--json', ...flags()]),
      cohort(['inspect', 'counter', 's1', '--json', '--last', '2', ...flags()]),
      cohort(['inspect', 'nosuch', 's1', ...flags()]),
      cohort(['inspect', 'counter', 'never-used', '--json', ...flags()]),
    ];
    const exits = await Promise.all([status, sessions, inspect, unknown, noSession].map((r) => r.exited));
    expect(exits.map((e) => e.code)).toEqual([0, 0, 0, 1, 1]);

    const s = json(status.stdout)[0]!;
    const view = workers.get('a')!.view!;
    expect(s['viewId']).toBeGreaterThanOrEqual(1);
    expect(s['leader']).toBe(view.leader);
    const members = s['members'] as { id: string; zone: string; primaries: number[]; heartbeatAgeMs: number | null }[];
    expect(members.map((m) => m.id).sort()).toEqual(['a', 'b', 'c']);
    expect(members.find((m) => m.id === 'b')!.zone).toBe('z2');
    expect(members.reduce((n, m) => n + m.primaries.length, 0)).toBe(256);
    for (const m of members) {
      expect(m.heartbeatAgeMs).not.toBeNull();
      // Fresh: within the session timeout (five CLI processes starting at once can hold up this process for a while).
      expect(m.heartbeatAgeMs!).toBeLessThan(3_000);
      expect(m.primaries).toEqual(
        workers
          .get(m.id)!
          .serving.slice()
          .sort((x, y) => x - y),
      );
    }
    expect(s['notActive']).toEqual([]);

    const listed = json(sessions.stdout)[0]!;
    expect(listed['unanswered']).toEqual([]);
    const list = listed['sessions'] as { id: string; seq: number; worker: string; shard: number; active: boolean }[];
    // Each primary said it holds its sessions in memory: they were just used. (The inspect of
    // `never-used` running alongside reads it, so it may be held too, with no journal.)
    const stored = list.filter((x) => x.id !== 'never-used');
    expect(stored.map((x) => x.active)).toEqual([true, true, true]);
    expect(stored.map((x) => [x.id, x.seq]).sort()).toEqual([
      ['s1', 3],
      ['s2', 1],
      ['s3', 2],
    ]);
    for (const x of stored) expect(x.worker).toBe(view.shards[x.shard]!.primary);

    const one = json(inspect.stdout)[0]!;
    expect(one['seq']).toBe(3);
    expect((one['document'] as { n: number }).n).toBe(6);
    const journal = one['journal'] as { events: { seq: number; type: string; data: { by: number } }[] }[];
    expect(journal.flatMap((e) => e.events.map((ev) => [ev.seq, ev.type, ev.data.by]))).toEqual([
      [2, 'ADD', 2],
      [3, 'ADD', 2],
    ]);
    expect(one['worker']).toBe(view.shards[one['shard'] as number]!.primary);
    expect(one['held']).toBe(true);
    expect(one['transaction']).toBeNull();
    expect(one['heldError']).toBeNull();
    expect(unknown.stderr()).toMatch(/no worker of cluster \S+ serves application "nosuch"/);
    expect(json(noSession.stdout)[0]!['known']).toBe(false);
  }, 60_000);

  it('inspect names the transaction holding a session, as its primary says; a held session shows in sessions --active', async () => {
    const s = client.session('counter', 'txs');
    await s.send({ type: 'ADD', by: 1 });
    let seen: Record<string, unknown> | undefined;
    let active: Record<string, unknown>[] = [];
    await s.transaction(async (tx) => {
      await tx.send({ type: 'ADD', by: 4 });
      const [inspect, sessions] = [
        cohort(['inspect', 'counter', 'txs', '--json', ...flags()]),
        cohort(['sessions', 'counter', '--active', '--json', ...flags()]),
      ];
      expect((await inspect.exited).code).toBe(0);
      expect((await sessions.exited).code).toBe(0);
      seen = json(inspect.stdout)[0];
      active = json(sessions.stdout)[0]!['sessions'] as Record<string, unknown>[];
    });
    expect(seen!['held']).toBe(true);
    expect(seen!['transaction']).toMatchObject({ client: expect.stringMatching(/^tester/) as unknown });
    // Only committed state is read meanwhile.
    expect(seen!['seq']).toBe(1);
    expect(active.map((x) => x['id'])).toContain('txs');
    expect(active.every((x) => x['active'] === true)).toBe(true);
  }, 60_000);

  it('tail APP ID prints the journal entry and the patch of a command sent while tailing (it watches the session)', async () => {
    const tail = cohort(['tail', 'counter', 's2', '--json', ...flags()]);
    try {
      await tail.line(/"kind":"tailing"/);
      await client.session('counter', 's2').send({ type: 'ADD', by: 5 });
      await tail.line(/"kind":"journal".*"id":"s2"/);
      const entry = json(tail.stdout).find((o) => o['kind'] === 'journal')!;
      expect(entry).toMatchObject({ app: 'counter', id: 's2', seq: 2, type: 'ADD', data: { by: 5 } });
      await tail.line(/"kind":"patch".*"id":"s2"/);
      const patch = json(tail.stdout).find((o) => o['kind'] === 'patch')!;
      expect(patch).toMatchObject({ app: 'counter', id: 's2', seq: 2, prev: 1 });
      expect(patch['ops']).toContainEqual({ op: 'replace', path: '/n', value: 7 });
      tail.child.kill('SIGINT');
      expect((await tail.exited).code).toBe(0);
    } finally {
      await tail.close();
    }
  }, 30_000);

  it('inspect shows forged journal entries as unreadable while the primary ignores them; an unknown cluster is a clear error', async () => {
    const journal = await bus.journal({ name: journalStreamName(cluster), subjects: [journalStreamFilter(cluster)] });
    const subject = journalSubject(cluster, shardOf('counter', 'forged'), 'counter', 'forged');
    await journal.append(subject, new Uint8Array([0xc1, 0x00, 0xff]));
    await journal.append(subject, encode({ v: 1, events: [{ seq: 1, event: { type: 'ADD' } }] }));
    const [inspect, missing] = [
      cohort(['inspect', 'counter', 'forged', '--json', ...flags()]),
      cohort(['status', '--nats', server.url, '--cluster', 'no-such-cluster']),
    ];
    const [a, b] = await Promise.all([inspect.exited, missing.exited]);
    expect(a.code, inspect.stderr()).toBe(0);
    const one = json(inspect.stdout)[0]!;
    expect(one['known']).toBe(true);
    const entries = one['journal'] as { error?: string; events: unknown[] }[];
    expect(entries).toHaveLength(2);
    expect(entries[0]!.error).toMatch(/journal entry/);
    expect(entries[1]!.error).toMatch(/not a journal record: event 0 has no meta/);
    // Entries no primary wrote (no epoch) are not the session's: its primary answers it as new.
    expect(one['readError']).toBeNull();
    expect(one['seq']).toBe(0);
    expect(b.code).toBe(1);
    expect(missing.stderr()).toMatch(/cluster no-such-cluster does not exist here/);
    // The worker holding the shard keeps serving the others.
    await client.session('counter', 's1').send({ type: 'ADD', by: 1 });
  }, 30_000);

  it('a forged or misaddressed drain request is refused and changes nothing', async () => {
    const c = workers.get('c')!;
    const ask = async (body: unknown): Promise<Record<string, unknown>> =>
      decode((await bus.request(drainSubject(cluster, 'c'), encode(body), { timeout: 3_000 })).data) as Record<
        string,
        unknown
      >;
    expect(await ask({ drain: 'a' })).toMatchObject({ ok: false, reason: expect.stringMatching(/names "a"/) });
    expect(await ask({ drain: 'c', extra: 1 })).toMatchObject({ ok: false, reason: /malformed/ });
    expect(await ask('drain c')).toMatchObject({ ok: false, reason: /malformed/ });
    const raw = await bus.request(drainSubject(cluster, 'c'), new Uint8Array([0xc1, 0xff]), { timeout: 3_000 });
    expect(decode(raw.data)).toMatchObject({ ok: false });
    expect(c.serving.length).toBeGreaterThan(0);
    // A nonsense drain of a member that is not there: no one answers.
    await expect(requestDrain(bus, cluster, 'ghost', 1_000)).rejects.toThrow();
    // The positive control: the same worker accepts a well-formed request naming it, and leaves.
    expect(await requestDrain(bus, cluster, 'c')).toEqual({ shards: c.serving.length });
    await c.drained;
    await waitFor(() => !workers.get('a')!.view!.members.some((m) => m.id === 'c'), { what: 'c gone' });
    workers.delete('c');
    await waitFor(() => workers.get('a')!.serving.length + workers.get('b')!.serving.length === 256, {
      what: 'a and b serve every shard',
    });
  }, 30_000);

  it('drain moves every shard off a `cohort worker` process while a client keeps being served; it leaves and exits 0', async () => {
    const d = cohort([
      'worker',
      '--app',
      'test/fixtures/counterApp.ts',
      '--id',
      'd',
      '--zone',
      'z3',
      '--heartbeat-interval',
      '250',
      '--session-timeout',
      '3000',
      ...flags(),
    ]);
    try {
      await d.line(/worker d serving/);
      await waitFor(
        () =>
          (workers.get('a')!.view?.shards.filter((s) => s.primary === 'd' && s.state === 'ACTIVE').length ?? 0) > 40,
        {
          what: 'd serving its share',
          timeoutMs: 30_000,
        },
      );
      let sent = 0;
      let failed = 0;
      let loading = true;
      const load = (async () => {
        while (loading) {
          try {
            await client.session('counter', `load${sent % 16}`).send({ type: 'ADD', by: 1 });
            sent++;
          } catch {
            failed++;
          }
        }
      })();
      const drain = cohort(['drain', 'd', '--json', ...flags()]);
      const exit = await drain.exited;
      loading = false;
      await load;
      expect(exit.code, drain.stderr()).toBe(0);
      const events = json(drain.stdout);
      expect(events.find((e) => e['event'] === 'accepted')).toMatchObject({ worker: 'd' });
      expect((events.find((e) => e['event'] === 'accepted')!['shards'] as number) > 40).toBe(true);
      const done = events.find((e) => e['event'] === 'done')!;
      expect(Object.keys(done['primaries'] as object).sort()).toEqual(['a', 'b']);
      expect(Object.values(done['primaries'] as object).reduce((n: number, x: number) => n + x, 0)).toBe(256);
      expect((await d.exited).code).toBe(0);
      expect(d.stdout.join('\n')).toMatch(/drained by an operator: worker d hands its shards off and stops/);
      expect(sent).toBeGreaterThan(0);
      expect(failed).toBe(0);
    } finally {
      await d.close();
    }
  }, 90_000);

  it('rebalance: the plan from an unbalanced view, --dry-run of a balanced cluster, and apply after a worker joins', async () => {
    const view = workers.get('a')!.view!;
    const lopsided: View = {
      ...view,
      shards: view.shards.map((s) => ({ ...s, primary: 'a', replicas: s.replicas.filter((r) => r !== 'a') })),
    };
    const plan = rebalancePlan(lopsided);
    expect(plan.length).toBe(128);
    expect(plan.every((m) => m.from === 'a' && m.to === 'b')).toBe(true);
    const dry = cohort(['rebalance', '--dry-run', '--json', ...flags()]);
    expect((await dry.exited).code).toBe(0);
    expect(json(dry.stdout)[0]).toMatchObject({ event: 'plan', moves: [] });

    const watch = cohort(['status', '--watch', '--json', '--listen', '0', ...flags()]);
    try {
      await watch.line(/"viewId"/);
      await start('e', 'z3');
      await waitFor(() => workers.get('a')!.view!.members.some((m) => m.id === 'e'), { what: 'e in the view' });
      // A redraw for the view that admitted e.
      await watch.line(/"id":"e"/);
      watch.child.kill('SIGINT');
      expect((await watch.exited).code).toBe(0);
      expect(json(watch.stdout).length).toBeGreaterThanOrEqual(2);
    } finally {
      await watch.close();
    }
    const apply = cohort(['rebalance', '--json', ...flags()]);
    expect((await apply.exited).code, apply.stderr()).toBe(0);
    const last = json(apply.stdout).at(-1)!;
    const counts = Object.values(last['primaries'] as Record<string, number>);
    expect(Object.keys(last['primaries'] as object).sort()).toEqual(['a', 'b', 'e']);
    expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
  }, 60_000);

  it('rebalance while the membership is unstable: the plan, a malformed request refused, then the leader asked and balanced', async () => {
    // Every change after the first makes the membership unstable, and it never settles by itself: no moves for balance.
    const rb = `rb${randomUUID().slice(0, 8)}`;
    const held = { cluster: rb, applications: [app], heartbeatInterval: 250, sessionTimeout: 3_000 };
    const safeguards = { unstableAfter: 1, stableAfter: 600_000 };
    const a2 = await startWorker({
      ...held,
      ...safeguards,
      bus: await createNatsBus({ servers: server.url }),
      id: 'a2',
    });
    workers.set('a2', a2);
    await waitFor(() => a2.serving.length === 256, { what: 'a2 serving every shard' });
    const b2 = await startWorker({
      ...held,
      ...safeguards,
      bus: await createNatsBus({ servers: server.url }),
      id: 'b2',
    });
    workers.set('b2', b2);
    await waitFor(() => a2.view?.members.length === 2 && a2.view.safeguards.unstable !== null, {
      what: 'b2 admitted, the membership unstable',
    });
    expect(b2.serving).toEqual([]);

    const malformed = decode(
      (await bus.request(controlSubject(rb, 'rebalance'), encode({ rebalance: 'now', also: 1 }), { timeout: 3_000 }))
        .data,
    );
    expect(malformed).toMatchObject({ ok: false, reason: expect.stringMatching(/malformed/) });
    expect(a2.view!.safeguards.unstable).not.toBeNull();

    const rbFlags = ['--nats', server.url, '--cluster', rb, '--json'];
    const dry = cohort(['rebalance', '--dry-run', ...rbFlags]);
    expect((await dry.exited).code).toBe(0);
    const plan = json(dry.stdout)[0]!;
    expect(plan).toMatchObject({ event: 'plan', unstable: true, primaries: { a2: 256, b2: 0 } });
    expect(
      (plan['moves'] as { from: string; to: string }[]).filter((m) => m.from === 'a2' && m.to === 'b2'),
    ).toHaveLength(128);
    expect(dry.stderr()).toMatch(/unstable/);
    expect(b2.serving).toEqual([]);

    const apply = cohort(['rebalance', '--timeout', '60000', ...rbFlags]);
    expect((await apply.exited).code, apply.stderr()).toBe(0);
    const events = json(apply.stdout);
    expect(events.find((e) => e['event'] === 'accepted')).toMatchObject({ leader: 'a2', changed: true });
    expect(events.at(-1)).toMatchObject({ event: 'done', primaries: { a2: 128, b2: 128 } });
    await waitFor(() => b2.serving.length === 128, { what: 'b2 serving its half' });
  }, 120_000);
});
