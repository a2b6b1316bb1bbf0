/**
 * A NATS node lost under load, for real: `cohort worker` processes on a
 * 3-node cluster (storage replicas 3), a steady load on 20 sessions, and
 * the node leading the journal stream killed, twice (restarted and caught
 * up in between). Each session must be served again within SERVED_WITHIN
 * of the journal's own recovery (its new leader elected, as the server
 * announces it), and never before it; the history checker then finds
 * nothing lost, doubled or unexplained, one writer per shard and epoch,
 * and no late acknowledgement. `npm run bench -- connections` measures
 * the same over five kills.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MEMBERSHIP_DEFAULTS, type Client } from '../../index.js';
import { bucketName, journalStreamName } from '../../internal.js';
import { checkHistory, History, isAcknowledged, readJournalFacts } from '../../harness/history.js';
import { streamLeader, waitStreamsCurrent } from '../../harness/streamLeader.js';
import { isSettled, startTestCluster, type TestCluster } from '../../harness/testCluster.js';
import { connectTest } from '../nats.js';
import { startTallyLoad } from './tallyLoad.js';

const TALLY = new URL('../fixtures/tally.ts', import.meta.url);
const SESSIONS = 20;
const KILLS = 2;
/**
 * How long after the journal's election every session must be served
 * again. Measured on this 2-core machine: 0.05-0.23 s in this test over 10
 * kills, 0.05-0.38 s over 4 more with another process spinning a core,
 * 0.02-0.40 s in the bench over 10; before the fix, one kill in six in the
 * bench left sessions 5-10 s longer and two in 30 left one unserved past
 * 40 s (this test's own load met it less often: 6 kills, none).
 */
const SERVED_WITHIN = 2_000;
const SCENARIO = { timeout: 180_000 };

let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

/** Kill to each session's first acknowledged command sent after the kill (Infinity: none yet). */
function servedAfter(history: History, t0: number): Map<string, number> {
  const served = new Map<string, number>();
  for (let i = 0; i < SESSIONS; i++) served.set(`t${i}`, Number.POSITIVE_INFINITY);
  for (const op of history.operations)
    if (isAcknowledged(op) && op.sentAt >= t0)
      served.set(op.session, Math.min(served.get(op.session)!, op.settledAt - t0));
  return served;
}

async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = performance.now() + ms;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('a NATS node lost under load (3-node cluster, worker processes)', () => {
  it(
    "the node leading the journal killed: every session served again within 2 s of the journal's election; nothing lost or doubled",
    SCENARIO,
    async () => {
      const { heartbeatInterval, sessionTimeout } = MEMBERSHIP_DEFAULTS;
      const c = await startTestCluster({
        applications: [TALLY],
        workers: 2,
        nats: 'cluster3',
        heartbeatInterval,
        sessionTimeout,
      });
      cluster = c;
      const nodes = c.nats !== undefined && 'nodes' in c.nats ? c.nats.nodes : [];
      expect(nodes).toHaveLength(3);
      const journal = journalStreamName(c.cluster);
      const streams = [
        journal,
        ...(['cluster', 'snapshots', 'timers'] as const).map((k) => `KV_${bucketName(c.cluster, k)}`),
      ];
      // Long enough that no command is given up on during an election: each ends acknowledged.
      const client: Client = await c.client({ troubledInterval: 30_000 });
      const history = new History();
      const load = startTallyLoad(client, history, { sessions: SESSIONS, lanes: SESSIONS });
      try {
        await load.progress(200, 30_000);
        for (let k = 0; k < KILLS; k++) {
          const leader = await streamLeader(c.urls, journal);
          const index = nodes.findIndex((n) => n.serverName === leader);
          expect(index).toBeGreaterThanOrEqual(0);
          // The journal's election as the server announces it, heard on a node that stays up.
          await using watcher = await connectTest(c.urls.filter((_, i) => i !== index));
          let elected: number | undefined;
          watcher.subscribe(`$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED.${journal}`, {
            callback: () => {
              elected ??= performance.now();
            },
          });
          await watcher.flush();

          await c.killNatsNode(index);
          // From its death on: whatever is sent now needs the journal's next leader.
          const t0 = performance.now();
          await until(
            () => elected !== undefined && [...servedAfter(history, t0).values()].every(Number.isFinite),
            60_000,
            'the journal elected and every session served again',
          );
          const recovery = elected! - t0;
          const served = servedAfter(history, t0);
          const beyond = [...served].map(([s, ms]) => [s, Math.round(ms - recovery)] as const);
          // Control: the kill did hit the journal's leader, nothing was served without one...
          expect(beyond.filter(([, ms]) => ms < -100)).toEqual([]);
          // ...and every session is back at most SERVED_WITHIN after the journal.
          expect(beyond.filter(([, ms]) => ms > SERVED_WITHIN)).toEqual([]);

          await c.restartNatsNode(index);
          await waitStreamsCurrent(c.urls, streams, 3, 60_000);
          await load.progress(200, 30_000);
        }
      } finally {
        await load.stop();
      }

      await c.waitForView(isSettled, { what: 'a settled view' });
      const documents = new Map<string, string[]>();
      for (let i = 0; i < SESSIONS; i++) {
        const read = await client.session('tally', `t${i}`).read();
        documents.set(`t${i}`, (read.document as { tokens: string[] }).tokens);
      }
      const bus = await c.openBus();
      const facts = await readJournalFacts(bus, c.cluster, (e) =>
        typeof e['token'] === 'string' ? e['token'] : undefined,
      );
      const verdict = checkHistory({ operations: history.operations, documents, journal: facts });
      expect(verdict.lost).toEqual([]);
      expect(verdict.duplicated).toEqual([]);
      expect(verdict.unexplained).toEqual([]);
      expect(verdict.sharedEpochs).toEqual([]);
      expect(verdict.lateAcknowledgements).toEqual([]);
      expect(verdict.failed).toBe(0);
      expect(verdict.acknowledged).toBeGreaterThanOrEqual(600);
    },
  );
});
