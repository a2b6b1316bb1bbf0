import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { WrongLastSequenceError } from '../../bus/errors.js';
import { createNatsBus } from '../../bus/nats/mod.js';
import type { NatsCluster } from '../../harness/natsCluster.js';
import { startTestCluster } from '../nats.js';
import { busContract } from './contract.js';

/**
 * The same contract on a 3-node JetStream cluster (streams and buckets on
 * one replica, placed by the meta leader; tests spread over the nodes):
 * clustered JetStream orders its checks differently from a single server in
 * places, and a worker may sit on any node.
 */
let cluster: NatsCluster;
beforeAll(async () => {
  cluster = await startTestCluster();
}, 60_000);
afterAll(async () => {
  await cluster?.[Symbol.asyncDispose]();
});
// One node per test, a different one each test: a subscription's interest
// reaches the other nodes a moment after its own (the contract's tests
// publish right after subscribing), while JetStream calls cross the routes
// to the stream's leader wherever the client sits.
let node = 0;
beforeEach(() => {
  node++;
});
busContract('nats cluster', () => ({
  connect: () => createNatsBus({ servers: [cluster.urls[node % cluster.urls.length]!] }),
}));

/**
 * A journal with three copies, as workers keep it on a 3-node cluster: the
 * stream's leader checks an append's fence before its message id (a single
 * server, and an R1 stream, check the id first), so an append of an id
 * stored already would be refused as out of sequence. The bus answers it as
 * a single server does.
 */
describe('a replicated journal (R3) on the 3-node cluster', () => {
  const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

  it('a fenced append whose message id is the last entry of its subject is answered as a duplicate of it', async () => {
    const bus = await createNatsBus({ servers: [...cluster.urls] });
    try {
      const j = await bus.journal({ name: 'R3FENCE', subjects: ['r3f.>'], replicas: 3 });
      const s = 'r3f.s';
      expect(await j.append(s, bytes('0'), { msgId: 'm0', expectedLastSubjectSeq: 0 })).toMatchObject({ seq: 1 });
      const first = await j.append(s, bytes('1'), { msgId: 'm1', expectedLastSubjectSeq: 1 });
      expect(first).toMatchObject({ seq: 2, duplicate: false });
      // The same id again behind the same fence (a retried command whose first append was stored).
      expect(await j.append(s, bytes('1-again'), { msgId: 'm1', expectedLastSubjectSeq: 1 })).toMatchObject({
        seq: 2,
        duplicate: true,
      });
      // Control: another id behind the same fence is refused, as the fence says.
      const other = await j.append(s, bytes('2'), { msgId: 'm2', expectedLastSubjectSeq: 1 }).catch((e: unknown) => e);
      expect(other).toBeInstanceOf(WrongLastSequenceError);
      const stored: string[] = [];
      for await (const e of j.read(s)) stored.push(new TextDecoder().decode(e.data));
      expect(stored).toEqual(['0', '1']);
      expect((await j.last(s))?.seq).toBe(2);
      await j.destroy();
    } finally {
      await bus.close();
    }
  }, 30_000);
});
