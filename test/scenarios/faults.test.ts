/**
 * Faults injected for real into a running cluster under load, then the
 * history checked (harness/history.ts): kill -9, SIGSTOP past the session
 * timeout, a graceful stop, a worker added, a flapping worker. Worker
 * processes against a real nats-server (one scenario on a 3-node cluster):
 * the process boundary. The same scenarios' logic runs on virtual time in
 * test/harness/faultsSim.test.ts.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Client, connect, shardOf } from '../../index.js';
import { encode } from '../../bus/codec.js';
import type { Bus } from '../../bus/types.js';
import { startLocalCluster, type LocalCluster, type LocalWorker } from '../../cli/localCluster.js';
import { checkHistory, History, readJournalFacts, type Verdict } from '../../harness/history.js';
import type { NatsCluster } from '../../harness/natsCluster.js';
import type { NatsServer } from '../../harness/natsServer.js';
import type { View } from '../../machines/view.js';
import { startTestCluster, startTestServer } from '../nats.js';
import { startTallyLoad, type TallyLoad } from './tallyLoad.js';
import { isSettled } from '../../harness/testCluster.js';

const TALLY = fileURLToPath(new URL('../fixtures/tally.ts', import.meta.url));
const TIMING = { heartbeatInterval: 200, sessionTimeout: 1_000 };
const SESSIONS = 24;
const SCENARIO = { timeout: 90_000 };

interface Run {
  readonly cluster: LocalCluster;
  readonly bus: Bus;
  readonly client: Client;
  readonly history: History;
  readonly load: TallyLoad;
  readonly warnings: string[];
}

let clusters = 0;

async function begin(nats: string[] | undefined, workers: number): Promise<Run> {
  const warnings: string[] = [];
  const cluster = await startLocalCluster({
    workers,
    apps: [TALLY],
    nats,
    memory: nats === undefined,
    cluster: `faults${++clusters}`,
    ...TIMING,
    write: () => {},
    onWarn: (w, line) => warnings.push(`[${w.id}] ${line}`),
  });
  await cluster.views.until(isSettled, 30_000, 'the first placement done');
  const bus = await cluster.openBus('scenario-client');
  const client = await connect({ bus, cluster: cluster.cluster, timeout: 20_000, attemptTimeout: 1_000 });
  const history = new History();
  const load = startTallyLoad(client, history, { sessions: SESSIONS, lanes: 12 });
  await load.progress(100);
  return { cluster, bus, client, history, load, warnings };
}

/**
 * Stops the load, reads every session from its primary and from its
 * secondary, reads the whole journal, and checks the history.
 */
async function finish(run: Run): Promise<Verdict & { converged: string[] }> {
  try {
    await run.load.stop();
    await run.cluster.views.until(isSettled, 30_000, 'every shard ACTIVE with a secondary');
    const documents = new Map<string, string[]>();
    const diverged: string[] = [];
    for (let i = 0; i < SESSIONS; i++) {
      const session = run.client.session('tally', `t${i}`);
      const primary = await session.read();
      documents.set(`t${i}`, (primary.document as { tokens: string[] }).tokens);
      const secondary = await session.read({ readOnly: true, minSeq: primary.seq });
      if (
        !secondary.stale ||
        secondary.seq !== primary.seq ||
        !Buffer.from(encode(secondary.document)).equals(Buffer.from(encode(primary.document)))
      ) {
        diverged.push(`t${i}: primary seq ${primary.seq}, secondary seq ${secondary.seq} (stale ${secondary.stale})`);
      }
    }
    const journal = await readJournalFacts(run.bus, run.cluster.cluster, (e) =>
      typeof e['token'] === 'string' ? e['token'] : undefined,
    );
    const verdict = checkHistory({ operations: run.history.operations, documents, journal });
    return { ...verdict, converged: diverged };
  } finally {
    await run.client.close();
    await run.bus.close();
    await run.cluster.stop(5_000);
  }
}

function expectClean(v: Verdict & { converged: string[] }, options: { failed?: number } = {}): void {
  expect(v.lost).toEqual([]);
  expect(v.duplicated).toEqual([]);
  expect(v.unexplained).toEqual([]);
  expect(v.sharedEpochs).toEqual([]);
  expect(v.lateAcknowledgements).toEqual([]);
  expect(v.converged).toEqual([]);
  expect(v.acknowledged).toBeGreaterThan(300);
  if (options.failed !== undefined) expect(v.failed).toBe(options.failed);
}

/** The primary of the shard that session t0 lives on: a busy shard. */
function busyPrimary(run: Run): string {
  const view = run.cluster.views.latest!;
  return view.shards[shardOf('tally', 't0')]!.primary!;
}

/** The process behind a member id: a worker that was dropped and came back is `w2~2`, still process w2. */
function processOf(run: Run, member: string): LocalWorker {
  const worker = run.cluster.workers.find((w) => w.id === member.split('~')[0]);
  if (worker === undefined) throw new Error(`no worker process for member ${member}`);
  return worker;
}

const gone = (id: string) => (v: View) => isSettled(v) && !v.members.some((m) => m.id === id);

function scenarios(transport: 'nats' | 'memory', urls: () => string[] | undefined): void {
  it(
    'kill -9 of the primary of a busy shard: its shards fail over, nothing acknowledged is lost or doubled',
    SCENARIO,
    async () => {
      const run = await begin(urls(), 3);
      const victim = busyPrimary(run);
      const epoch = run.cluster.views.latest!.shards[shardOf('tally', 't0')]!.epoch;
      processOf(run, victim).kill('SIGKILL');
      const after = await run.cluster.views.until(gone(victim), 20_000, `${victim} gone`);
      expect(after.shards[shardOf('tally', 't0')]!.epoch).toBeGreaterThan(epoch);
      await run.load.progress(200);
      const ack = run.history.operations
        .filter((op) => op.session === 't0' && !('error' in op.outcome))
        .at(-1)!.outcome;
      expect(ack).toMatchObject({
        by: after.shards[shardOf('tally', 't0')]!.primary,
        epoch: after.shards[shardOf('tally', 't0')]!.epoch,
      });
      expectClean(await finish(run), { failed: 0 });
    },
  );

  it('a graceful stop hands off: no client sees an error', SCENARIO, async () => {
    const run = await begin(urls(), 3);
    const member = run.cluster.views.latest!.members.find((m) => m.id !== run.cluster.views.latest!.leader)!.id;
    const leaver = processOf(run, member);
    leaver.kill('SIGTERM');
    expect(await leaver.exited).toEqual({ code: transport === 'nats' ? 0 : 0, signal: null });
    await run.cluster.views.until(gone(member), 20_000, `${member} gone`);
    await run.load.progress(200);
    expectClean(await finish(run), { failed: 0 });
  });

  it('a worker added under load takes its share of the shards; nothing lost, no errors', SCENARIO, async () => {
    const run = await begin(urls(), 2);
    const added = await run.cluster.addWorker();
    const view = await run.cluster.views.until(
      (v) => isSettled(v) && v.shards.filter((s) => s.primary === added.id).length >= Math.floor(v.shardCount / 3),
      30_000,
      `${added.id} primary of a third of the shards`,
    );
    expect(view.members.map((m) => m.id)).toContain(added.id);
    await run.load.progress(200);
    expectClean(await finish(run), { failed: 0 });
  });
}

/** Freezing a worker needs a process of its own. */
function pauseScenarios(urls: () => string[] | undefined): void {
  it(
    'SIGSTOP of a primary past the session timeout, then SIGCONT: every late write refused, it rejoins as a new member',
    SCENARIO,
    async () => {
      const run = await begin(urls(), 3);
      const victim = busyPrimary(run);
      const worker = processOf(run, victim);
      worker.pause();
      await run.cluster.views.until(gone(victim), 20_000, `${victim} dropped`);
      await run.load.progress(100);
      worker.resume();
      await run.cluster.views.until(
        (v) => isSettled(v) && v.members.some((m) => m.id === `${victim}~2`),
        30_000,
        `${victim} back as ${victim}~2`,
      );
      await run.load.progress(200);
      expectClean(await finish(run));
    },
  );

  it(
    'a flapping worker: a short stall is no failure; long ones drop it, and it comes back each time',
    SCENARIO,
    async () => {
      const run = await begin(urls(), 3);
      // A member still in its first incarnation, so the ones it comes back as are ~2 and ~3.
      const flapper = processOf(
        run,
        run.cluster.views.latest!.members.find((m) => m.id !== run.cluster.views.latest!.leader && !m.id.includes('~'))!
          .id,
      );
      const without: number[] = [];
      const unwatch = run.cluster.views.subscribe((v) => {
        if (!v.members.some((m) => m.id === flapper.id)) without.push(v.viewId);
      });
      flapper.pause();
      await new Promise((r) => setTimeout(r, TIMING.sessionTimeout / 3)); // the fault's length, not a wait for anything
      flapper.resume();
      await run.load.progress(100);
      unwatch();
      expect(without).toEqual([]);
      for (const incarnation of [2, 3]) {
        flapper.pause();
        await run.cluster.views.until(
          gone(incarnation === 2 ? flapper.id : `${flapper.id}~${incarnation - 1}`),
          20_000,
          'the flapper dropped',
        );
        flapper.resume();
        await run.cluster.views.until(
          (v) => isSettled(v) && v.members.some((m) => m.id === `${flapper.id}~${incarnation}`),
          30_000,
          `back as ~${incarnation}`,
        );
        await run.load.progress(100);
      }
      expectClean(await finish(run));
    },
  );
}

describe('faults on worker processes (nats)', () => {
  let server: NatsServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.[Symbol.asyncDispose]();
  });
  scenarios('nats', () => [server.url]);
  pauseScenarios(() => [server.url]);
});

describe('faults on a 3-node NATS cluster', () => {
  let nats: NatsCluster;
  beforeAll(async () => {
    nats = await startTestCluster();
  }, 60_000);
  afterAll(async () => {
    await nats?.[Symbol.asyncDispose]();
  });
  it('kill -9 of a busy primary: nothing acknowledged lost or doubled, replicas converge', SCENARIO, async () => {
    const run = await begin([...nats.urls], 3);
    const victim = busyPrimary(run);
    processOf(run, victim).kill('SIGKILL');
    await run.cluster.views.until(gone(victim), 30_000, `${victim} gone`);
    await run.load.progress(200, 30_000);
    expectClean(await finish(run), { failed: 0 });
  });
});
