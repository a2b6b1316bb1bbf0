/**
 * A deposed primary's late appends against the epoch markers, on real
 * processes: everything worker w2 sends to NATS is held up for 3 s (a
 * congested link, a stalled process's socket). Commands it took inside its
 * lease have proved primacy and sent their appends, which reach the stream
 * only after w1 has failed w2 over and marked the new epoch. The process
 * boundary is what is tested: real sockets, a real stream, the checker on
 * the journal as nats-server stored it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { connect, shardOf, type Client } from '../../index.js';
import { readJournals } from '../../harness/checker/index.js';
import { checkHistory, History, readJournalFacts } from '../../harness/history.js';
import {
  hasWorker,
  isBalanced,
  isSettled,
  shardsOf,
  startTestCluster,
  type TestCluster,
} from '../../harness/testCluster.js';
import { encode } from '../../bus/codec.js';

const TALLY = new URL('../fixtures/tally.ts', import.meta.url);
const TIMING = { heartbeatInterval: 150, sessionTimeout: 1_000 };
/** How long w2's bytes take to reach NATS: well past its lease and the takeover, short of the client's retry. */
const HELD_MS = 3_000;
const TEST = { timeout: 120_000 };

const clusters: TestCluster[] = [];
afterEach(async () => {
  for (const c of clusters.splice(0)) await c.stop();
});

describe('late appends of a deposed primary, on real processes', () => {
  it(
    "land after the new epoch's marker and are applied by nobody; nothing acknowledged lost or doubled",
    TEST,
    async () => {
      const cluster = await startTestCluster({ applications: [TALLY], workers: 2, ...TIMING });
      clusters.push(cluster);
      const view = cluster.views.latest!;
      const onW2 = new Set(shardsOf(view, 'w2'));
      const ids = Array.from({ length: 64 }, (_, i) => `late${i}`);
      const sessions = [
        ...ids.filter((id) => onW2.has(shardOf('tally', id))).slice(0, 8),
        ...ids.filter((id) => !onW2.has(shardOf('tally', id))).slice(0, 4),
      ];
      const bus = await cluster.openBus('late-load');
      // The client tries again only after the held appends have landed: it does not write the sessions first.
      const client: Client = await connect({ bus, cluster: cluster.cluster, attemptTimeout: 5_000, timeout: 30_000 });
      const history = new History();
      let stopping = false;
      let acknowledged = 0;
      const burst: Promise<unknown>[] = [];
      // One lane per session, one command in flight each.
      const lanes = sessions.map(async (session) => {
        for (let i = 0; !stopping; i++) {
          const op = await history.track(session, `${session}-${i}`, () =>
            client.session('tally', session).send({ type: 'ADD', token: `${session}-${i}` }),
          );
          if (!('error' in op.outcome)) acknowledged++;
        }
      });
      while (acknowledged < 100) await new Promise((r) => setTimeout(r, 20));

      const reader = await cluster.openBus('late-reader');
      const lateEntries = async () => (await readJournals(reader, cluster.cluster)).flatMap((j) => j.ignored ?? []);
      // A round needs w2 to hold its lease when the burst reaches it; a starved machine can lapse it first, so
      // the fault is made again (at most three times) until appends did land late.
      for (let round = 1; round <= 3 && (await lateEntries()).length === 0; round++) {
        const primaryNow = new Set(shardsOf(cluster.views.latest!, 'w2'));
        cluster.delay('w2', HELD_MS, 'client-to-server');
        // Commands that reach w2 now, inside its lease: it proves its primacy by the lease and sends the appends.
        burst.push(
          ...ids
            .filter((id) => primaryNow.has(shardOf('tally', id)))
            .slice(0, 8)
            .map((session) =>
              history.track(session, `${session}-late${round}`, () =>
                client.session('tally', session).send({ type: 'ADD', token: `${session}-late${round}` }),
              ),
            ),
        );
        await cluster.waitForView((v) => !hasWorker(v, 'w2'), { timeoutMs: 20_000 });
        await new Promise((r) => setTimeout(r, HELD_MS + 1_000));
        cluster.heal('w2');
        await cluster.waitForView((v) => isSettled(v) && isBalanced(v) && hasWorker(v, 'w2'), { timeoutMs: 30_000 });
      }
      const before = acknowledged;
      while (acknowledged < before + 100) await new Promise((r) => setTimeout(r, 20));
      stopping = true;
      await Promise.all([...lanes, ...burst]);

      const documents = new Map<string, string[]>();
      for (const s of new Set(history.operations.map((op) => op.session))) {
        const primary = await client.session('tally', s).read();
        documents.set(s, (primary.document as { tokens: string[] }).tokens);
        const copy = await client.session('tally', s).read({ readOnly: true, minSeq: primary.seq });
        expect(Buffer.from(encode(copy.document)).equals(Buffer.from(encode(primary.document))), s).toBe(true);
      }
      const facts = await readJournalFacts(reader, cluster.cluster, (e) =>
        typeof e['token'] === 'string' ? e['token'] : undefined,
      );
      const verdict = checkHistory({ operations: history.operations, documents, journal: facts });
      expect(verdict.lost).toEqual([]);
      expect(verdict.duplicated).toEqual([]);
      expect(verdict.unexplained).toEqual([]);
      expect(verdict.sharedEpochs).toEqual([]);
      expect(verdict.lateAcknowledgements).toEqual([]);
      // The late appends did land, from w2, after the markers of the epochs that replaced it.
      const ignored = await lateEntries();
      expect(ignored.length).toBeGreaterThan(0);
      expect(ignored.every((e) => e.worker.startsWith('w2') && e.inForce > e.epoch)).toBe(true);
    },
  );
});
