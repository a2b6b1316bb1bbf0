import { randomUUID } from 'node:crypto';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../../bus/clock.js';
import { encode } from '../../bus/codec.js';
import { replicaReportSubject } from '../../bus/subjects.js';
import { Responder } from '../../actors/worker/respond.js';
import { Replication } from '../../actors/worker/replica.js';
import { openStores } from '../../actors/worker/stores.js';
import { defineApplication } from '../../index.js';
import { NO_SAFEGUARDS, type ShardAssignment, type View } from '../../machines/view.js';
import { busTargets } from '../busTargets.js';
import { cleanupAfterEach } from '../cleanup.js';
import { counterMachine } from '../fixtures/counter.js';
import { waitFor } from '../waitFor.js';

const SHARDS = 2;
const app = defineApplication({ name: 'counter', machine: counterMachine });

/** A view where `me` is primary of every shard, with `replicas` as each shard's secondaries. */
function view(viewId: number, replicas: readonly string[]): View {
  const shard: ShardAssignment = { primary: 'me', replicas, state: 'ACTIVE', next: null, epoch: 1 };
  return {
    viewId,
    members: [],
    leader: 'me',
    replicas: replicas.length,
    shardCount: SHARDS,
    shards: Array.from({ length: SHARDS }, () => shard),
    transitional: false,
    possibleDataLoss: [],
    safeguards: NO_SAFEGUARDS,
  };
}

describe.each(busTargets())('replication: appends of a primary without secondaries ($name)', (target) => {
  const track = cleanupAfterEach();

  it('are credited to a secondary the next view brings, and only they', async () => {
    const cluster = `j${randomUUID().slice(0, 8)}`;
    const bus = track(await target.bus());
    const stores = await openStores(bus, cluster, { replicas: 1, shardCount: SHARDS });
    const replication = new Replication({
      bus,
      journal: stores.journal,
      store: stores.snapshots,
      cluster,
      clock: systemClock,
      log: pino({ level: 'silent' }),
      apps: new Map([[app.name, app]]),
      responder: new Responder({ bus, blobs: stores.replies, newId: randomUUID, log: pino({ level: 'silent' }) }),
      sessionTimeout: 60_000,
      shardCount: SHARDS,
      epochs: undefined,
      adoptCopies: true,
    });
    try {
      await replication.apply(view(1, []), 'me');
      // Acks of the shard's appends, while nobody follows it (the commit path reports each twice).
      for (const seq of [5, 5, 9, 9]) replication.journaled(0, seq);
      await replication.apply(view(2, ['other']), 'me');
      expect(replication.status(0)).toMatchObject({ role: 'primary', reportsAhead: 0 });
      const report = (q: number): void =>
        bus.publish(replicaReportSubject(cluster, 0), encode({ w: 'other', s: 0, q }));
      // The new secondary says it applied through 9: all journaled, so credited at once.
      report(9);
      await waitFor(() => replication.status(0).secondaries[0]?.seq === 9, { what: 'the report credited' });
      expect(replication.status(0)).toMatchObject({
        reportsAhead: 0,
        secondaries: [{ worker: 'other', seq: 9, state: 'SYNCHRONIZED' }],
      });
      // A claim beyond what the primary journaled is still held back: what journaled kept was exactly 9.
      report(10);
      await waitFor(() => replication.status(0).reportsAhead === 1, { what: 'the claim ahead heard' });
      expect(replication.status(0).secondaries[0]?.seq).toBe(9);
      // Once the journal reaches it (a secondary now: told at once), the claim is credited.
      replication.journaled(0, 10);
      expect(replication.status(0).secondaries[0]?.seq).toBe(10);
    } finally {
      replication.stop();
    }
  });
});

describe.each(busTargets())('replication: a view taken up as the bus closes ($name)', (target) => {
  it('is refused with the bus error, and the secondaries it had begun are waited for, not left to reject unheard', async () => {
    const cluster = `k${randomUUID().slice(0, 8)}`;
    const bus = await target.bus();
    const stores = await openStores(bus, cluster, { replicas: 1, shardCount: SHARDS });
    const replication = new Replication({
      bus,
      journal: stores.journal,
      store: stores.snapshots,
      cluster,
      clock: systemClock,
      log: pino({ level: 'silent' }),
      apps: new Map([[app.name, app]]),
      responder: new Responder({ bus, blobs: stores.replies, newId: randomUUID, log: pino({ level: 'silent' }) }),
      sessionTimeout: 60_000,
      shardCount: SHARDS,
      epochs: undefined,
      adoptCopies: true,
    });
    const unheard: unknown[] = [];
    const listen = (reason: unknown): void => void unheard.push(reason);
    process.on('unhandledRejection', listen);
    try {
      // Shard 0: a secondary here (its start subscribes); shard 1: primary here (subscribes to its reports).
      const mixed: View = {
        ...view(1, []),
        shards: [
          { primary: 'other', replicas: ['me'], state: 'ACTIVE', next: null, epoch: 1 },
          { primary: 'me', replicas: [], state: 'ACTIVE', next: null, epoch: 1 },
        ],
      };
      await bus.close();
      await expect(replication.apply(mixed, 'me')).rejects.toMatchObject({ name: 'BusClosedError' });
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(unheard).toEqual([]);
    } finally {
      process.off('unhandledRejection', listen);
      replication.stop();
    }
  });
});
