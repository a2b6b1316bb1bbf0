/**
 * The client's connection actor against real faults on a real nats-server:
 * the server restarted under a busy client, a primary killed with 100
 * commands in flight, a shard nobody serves for longer than
 * troubledInterval, a worker that takes commands and goes silent, and
 * reads falling back to secondaries while no primary answers.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Client, connect, defineApplication, NetworkError, shardOf, startWorker } from '../../index.js';
import { TimeoutError } from '../../bus/errors.js';
import { startLocalCluster, type LocalCluster } from '../../cli/localCluster.js';
import { checkHistory, History, readJournalFacts } from '../../harness/history.js';
import type { NatsServer } from '../../harness/natsServer.js';
import type { ConnectionState } from '../../machines/connection.js';
import type { View } from '../../machines/view.js';
import { tallyMachine } from '../fixtures/tally.js';
import { startTestServer } from '../nats.js';
import { waitFor } from '../waitFor.js';

const TALLY = fileURLToPath(new URL('../fixtures/tally.ts', import.meta.url));
const tally = defineApplication({ name: 'tally', machine: tallyMachine, commit: 'journal', snapshotEvery: 1_000_000 });
const SHARDS = 16;
const ALL = Array.from({ length: SHARDS }, (_, i) => i);
const SCENARIO = { timeout: 90_000 };

let nats: NatsServer;
let clusters = 0;
const cleanup: (() => Promise<unknown>)[] = [];
beforeAll(async () => {
  nats = await startTestServer();
});
afterAll(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => undefined);
  await nats?.[Symbol.asyncDispose]();
});

function states(client: Client): ConnectionState[] {
  const seen: ConnectionState[] = [];
  client.on('state', (s) => seen.push(s));
  return seen;
}

async function tokensOf(client: Client, session: string): Promise<string[]> {
  return ((await client.session('tally', session).read()).document as { tokens: string[] }).tokens;
}

/** Sessions (by id) whose shard `shard` is. */
function sessionsOn(shard: number, count: number, shardCount: number): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < count; i++) if (shardOf('tally', `s${i}`, shardCount) === shard) out.push(`s${i}`);
  return out;
}

describe('client connections under real faults (nats)', () => {
  it(
    'rides through a nats-server restart under load: nothing lost, nothing doubled, TROUBLE then NORMAL',
    SCENARIO,
    async () => {
      const cluster = `conn${++clusters}`;
      const worker = await startWorker({
        nats: nats.url,
        cluster,
        applications: [tally],
        shards: ALL,
        shardCount: SHARDS,
      });
      cleanup.push(() => worker.stop());
      const client = await connect({ nats: nats.url, cluster, shardCount: SHARDS, label: 'busy' });
      cleanup.push(() => client.close());
      const seen = states(client);
      const recovered: number[] = [];
      client.on('state', (s) => s === 'NORMAL' && recovered.push(Date.now()));
      const history = new History();
      let stopping = false;
      let acked = 0;
      const lanes = Array.from({ length: 8 }, async (_, n) => {
        for (let i = 0; !stopping; i++) {
          const session = `r${(n + i) % 12}`;
          const op = await history.track(session, `L${n}-${i}`, () =>
            client.session('tally', session).send({ type: 'ADD', token: `L${n}-${i}` }),
          );
          if (!('error' in op.outcome)) acked++;
        }
      });
      await waitFor(() => acked >= 200, { timeoutMs: 20_000, what: '200 acks before the restart' });
      // Cached (read) before the outage, so the reconnect verifies it.
      await client.session('tally', 'r0').read();
      await nats.restart();
      const after = acked;
      await waitFor(() => acked >= after + 200, { timeoutMs: 30_000, what: '200 acks after the restart' });
      stopping = true;
      await Promise.all(lanes);

      expect(seen).toContain('TROUBLE');
      expect(seen.at(-1)).toBe('NORMAL');
      const failed = history.operations.filter((op) => 'error' in op.outcome);
      expect(failed).toEqual([]);
      const documents = new Map<string, string[]>();
      for (let i = 0; i < 12; i++) documents.set(`r${i}`, await tokensOf(client, `r${i}`));
      const verdict = checkHistory({ operations: history.operations, documents, journal: [] });
      expect(verdict.lost).toEqual([]);
      expect(verdict.duplicated).toEqual([]);
      expect(verdict.unexplained).toEqual([]);
      expect(verdict.acknowledged).toBeGreaterThanOrEqual(400);
    },
  );

  it(
    'a shard nobody serves past troubledInterval: NetworkError saying where, how long and that nothing committed; the next request reconnects',
    SCENARIO,
    async () => {
      const cluster = `conn${++clusters}`;
      const half = ALL.filter((s) => s < SHARDS / 2);
      const w1 = await startWorker({
        nats: nats.url,
        cluster,
        applications: [tally],
        shards: half,
        shardCount: SHARDS,
      });
      cleanup.push(() => w1.stop());
      const client = await connect({
        nats: nats.url,
        cluster,
        shardCount: SHARDS,
        label: 'patient',
        troubledInterval: 1_000,
      });
      cleanup.push(() => client.close());
      const seen = states(client);
      const [orphan] = sessionsOn(SHARDS - 1, 1, SHARDS);
      const [served] = sessionsOn(0, 1, SHARDS);
      const patches: number[] = [];
      client.session('tally', served!).subscribe((p) => patches.push(p.seq));
      const firstId = client.id;
      const started = Date.now();
      const err = await client
        .session('tally', orphan!)
        .send({ type: 'ADD', token: 'never' })
        .then(
          () => null,
          (e: unknown) => e,
        );
      expect(err).toBeInstanceOf(NetworkError);
      const ne = err as NetworkError;
      expect(ne.session).toBe(`tally/${orphan}`);
      expect(ne.ambiguous).toBe(false); // no responders: nobody ever had it
      expect(ne.triedMs).toBeGreaterThanOrEqual(1_000);
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(ne.message).toMatch(/not committed/);
      await waitFor(() => client.state === 'NOT_CONNECTED', { what: 'NOT_CONNECTED after DISABLED' });
      expect(seen).toEqual(expect.arrayContaining(['TROUBLE', 'DISABLED', 'NOT_CONNECTED']));

      const w2 = await startWorker({
        nats: nats.url,
        cluster,
        applications: [tally],
        shards: ALL.filter((s) => s >= SHARDS / 2),
        shardCount: SHARDS,
      });
      cleanup.push(() => w2.stop());
      const r = await client.session('tally', orphan!).send({ type: 'ADD', token: 'later' });
      expect(r.seq).toBe(1);
      expect(client.state).toBe('NORMAL');
      expect(seen.slice(seen.lastIndexOf('NOT_CONNECTED'))).toEqual(['NOT_CONNECTED', 'CONNECTING', 'NORMAL']);
      expect(client.id).not.toBe(firstId); // a new connection, a new client id on the servers
      expect(await tokensOf(client, orphan!)).toEqual(['later']);
      // The new connection (a new bus of its own) subscribed the patches again.
      const other = await connect({ nats: nats.url, cluster, shardCount: SHARDS, label: 'other' });
      cleanup.push(() => other.close());
      await other.session('tally', served!).send({ type: 'ADD', token: 'seen' });
      await waitFor(() => patches.includes(1), { what: 'a patch on the new connection' });
    },
  );

  it(
    'a call with its own timeout gives up with TimeoutError at it, and says it was not committed',
    SCENARIO,
    async () => {
      const cluster = `conn${++clusters}`;
      const client = await connect({ nats: nats.url, cluster, shardCount: SHARDS, label: 'hasty' });
      cleanup.push(() => client.close());
      const err = await client
        .session('tally', 'x')
        .send({ type: 'ADD', token: 'x' }, { timeout: 300 })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TimeoutError);
      expect((err as TimeoutError).ambiguous).toBe(false);
    },
  );
});

describe('client connections against worker processes (nats)', () => {
  let local: LocalCluster | undefined;
  afterAll(async () => {
    await local?.stop(2_000);
  });

  async function cluster(
    workers: number,
    timing: { heartbeatInterval: number; sessionTimeout: number },
  ): Promise<LocalCluster> {
    await local?.stop(2_000);
    local = await startLocalCluster({
      workers,
      apps: [TALLY],
      nats: [nats.url],
      cluster: `connp${++clusters}`,
      ...timing,
      write: () => {},
    });
    await local.views.until((v) => settled(v, workers), 30_000, 'the first placement done');
    return local;
  }

  // A worker that goes silent with a command out (it used to race a SIGSTOP here) runs on virtual time,
  // with the pause placed exactly: test/harness/connectionsSim.test.ts.

  it(
    'kill -9 of a primary with 100 commands in flight: each acknowledged exactly once or failed as ambiguous',
    SCENARIO,
    async () => {
      const c = await cluster(2, { heartbeatInterval: 200, sessionTimeout: 1_000 });
      const view = c.views.latest!;
      const victim = c.workers[0]!;
      const shard = view.shards.findIndex((s) => s.primary === victim.id);
      expect(shard).toBeGreaterThanOrEqual(0);
      const sessions = sessionsOn(shard, 10, view.shards.length);
      const client = await connect({
        bus: await c.openBus('inflight'),
        cluster: c.cluster,
        shardCount: view.shards.length,
        label: 'inflight',
      });
      cleanup.push(() => client.close());
      const history = new History();
      const sends = Array.from({ length: 100 }, (_, i) =>
        history.track(sessions[i % 10]!, `k${i}`, () =>
          client.session('tally', sessions[i % 10]!).send({ type: 'ADD', token: `k${i}` }),
        ),
      );
      victim.kill('SIGKILL');
      const ops = await Promise.all(sends);
      const failures = ops.filter((op) => 'error' in op.outcome);
      // A failure is only ever an ambiguous one (the command may have committed), never a plain refusal.
      for (const f of failures) expect((f.outcome as { error: string }).error).toMatch(/NetworkError|TimeoutError/);
      await c.views.until(
        (v) => v.shards[shard]!.primary !== victim.id && v.shards[shard]!.state === 'ACTIVE',
        30_000,
        'the shard failed over',
      );
      const documents = new Map<string, string[]>();
      for (const s of sessions) documents.set(s, await tokensOf(client, s));
      const facts = await readJournalFacts(await c.openBus('facts'), c.cluster, (e) =>
        typeof e['token'] === 'string' ? e['token'] : undefined,
      );
      const verdict = checkHistory({ operations: history.operations, documents, journal: facts });
      expect(verdict.lost).toEqual([]);
      expect(verdict.duplicated).toEqual([]);
      expect(verdict.unexplained).toEqual([]);
      expect(verdict.sharedEpochs).toEqual([]);
      expect(verdict.acknowledged + verdict.failed).toBe(100);
      // The ambiguous ones are resolvable by reading: present once or absent.
      for (const f of failures)
        expect(documents.get(f.session)!.filter((t) => t === f.token).length).toBeLessThanOrEqual(1);
    },
  );

  it(
    'read-only fallback: while no primary answers, reads come from the secondary marked stale; back to the primary by itself',
    SCENARIO,
    async () => {
      const c = await cluster(2, { heartbeatInterval: 250, sessionTimeout: 3_000 });
      const view = c.views.latest!;
      const victim = c.workers[0]!;
      const shard = view.shards.findIndex((s) => s.primary === victim.id);
      const [session] = sessionsOn(shard, 1, view.shards.length);
      const client = await connect({
        bus: await c.openBus('fallback'),
        cluster: c.cluster,
        shardCount: view.shards.length,
        label: 'reader',
        readOnlyFallback: true,
      });
      cleanup.push(() => client.close());
      const h = client.session('tally', session!);
      let last = 0;
      for (let i = 0; i < 5; i++) last = (await h.send({ type: 'ADD', token: `f${i}` })).seq;
      await h.read({ readOnly: true, minSeq: last }); // the secondary has it all
      const modes: boolean[] = [];
      client.on('readOnly', (on) => modes.push(on));
      victim.kill('SIGKILL');
      await victim.exited;
      const stale = await h.read();
      expect(stale).toMatchObject({ stale: true, source: 'secondary', seq: last });
      expect((stale.document as { tokens: string[] }).tokens).toEqual(['f0', 'f1', 'f2', 'f3', 'f4']);
      expect(client.readOnly).toBe(true);
      // A write meanwhile waits for a primary rather than failing.
      const write = h.send({ type: 'ADD', token: 'f5' });
      await waitFor(() => modes.includes(false), { timeoutMs: 20_000, what: 'back to read-write' });
      expect(client.readOnly).toBe(false);
      expect((await write).seq).toBe(last + 1);
      const fresh = await h.read();
      expect(fresh).toMatchObject({ stale: false, source: 'primary', seq: last + 1 });
      expect(modes).toEqual([true, false]);
    },
  );
});

function settled(view: View, members: number): boolean {
  return (
    view.members.length === members &&
    !view.transitional &&
    view.shards.every((s) => s.state === 'ACTIVE' && s.replicas.length === Math.min(view.replicas, members - 1))
  );
}
