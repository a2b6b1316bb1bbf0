import { randomUUID } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import { nanos } from '@nats-io/nats-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assign, setup } from 'xstate';
import { connect, defineApplication, shardOf, SimulatedClock, startWorker } from '../../index.js';
import {
  CLAIM_CHECK_HEADER,
  decode,
  encode,
  readRequest,
  readSubject,
  REPLY_BLOB_MAX_AGE_MS,
  sessionKey,
} from '../../internal.js';
import { createMemoryBus, createMemoryServer } from '../../bus/memory/mod.js';
import { createNatsBus } from '../../bus/nats/mod.js';
import type { Bus } from '../../bus/types.js';
import type { NatsServer } from '../../harness/natsServer.js';
import { cleanupAfterEach } from '../cleanup.js';
import { connectTest, startTestServer } from '../nats.js';

const SHARDS = 4;
/** Keys and values as clients name them: enough to make a document larger than a message. */
const bag = defineApplication({
  name: 'bag',
  machine: setup({
    types: {} as { context: Record<string, string>; events: { type: 'PUT'; key: string; value: string } },
  }).createMachine({
    context: {},
    on: { PUT: { actions: assign(({ context, event }) => ({ ...context, [event.key]: event.value })) } },
  }),
});
const HALF_A_MEGABYTE = 'x'.repeat(600_000);

let nats: NatsServer;
beforeAll(async () => {
  nats = await startTestServer();
});
afterAll(async () => {
  await nats?.[Symbol.asyncDispose]();
});

const targets = [
  {
    name: 'memory',
    env: () => {
      const clock = new SimulatedClock(Date.now());
      const server = createMemoryServer({ environment: { clock } });
      return { clock, bus: async (): Promise<Bus> => createMemoryBus({ server }) };
    },
  },
  { name: 'nats', env: () => ({ clock: undefined, bus: (): Promise<Bus> => createNatsBus({ servers: nats.url }) }) },
] as const;

/**
 * Replies too large for a message travel by claim-check through their own
 * bucket, whose blobs expire: one its client never fetched does not stay
 * for good. Snapshots too large for a KV value stay in the blobs bucket.
 */
describe.each(targets)('claim-checked replies ($name)', (target) => {
  const track = cleanupAfterEach();

  it('a large reply never fetched is in the replies bucket until it expires; its client fetches one like it', async () => {
    const { clock, bus } = target.env();
    const cluster = `b${randomUUID().slice(0, 8)}`;
    const worker = track(
      await startWorker({
        bus: await bus(),
        cluster,
        applications: [bag],
        shards: [...Array(SHARDS).keys()],
        shardCount: SHARDS,
        ...(clock && { environment: { clock } }),
      }),
    );
    const client = track(await connect({ bus: await bus(), cluster, shardCount: SHARDS }));
    const s = client.session('bag', 'big');
    await s.send({ type: 'PUT', key: 'a', value: HALF_A_MEGABYTE });
    await s.send({ type: 'PUT', key: 'b', value: HALF_A_MEGABYTE });
    // A read whose answer nobody fetches: its asker (a client that died, say) only looks at the header.
    const raw = track(await bus());
    const reply = await raw.request(
      readSubject(cluster, shardOf('bag', 'big', SHARDS), 'bag', 'big', 'raw'),
      encode(readRequest('raw#1')),
      { timeout: 5_000 },
    );
    const name = reply.headers[CLAIM_CHECK_HEADER]!;
    expect(decode(reply.data)).toMatchObject({ claimCheck: name, bucket: `cohort_${cluster}_replies` });
    const replies = await raw.blobs({ bucket: `cohort_${cluster}_replies` });
    const blobs = await raw.blobs({ bucket: `cohort_${cluster}_blobs` });
    expect(await replies.get(name)).not.toBeNull();
    expect(await blobs.get(name)).toBeNull();
    if (clock !== undefined) {
      clock.increment(REPLY_BLOB_MAX_AGE_MS - 1);
      expect(await replies.get(name)).not.toBeNull();
      clock.increment(1);
      expect(await replies.get(name)).toBeNull();
    } else {
      // Ten minutes of real time is more than a test waits: the bucket's stream says it.
      await using nc = await connectTest(nats);
      const info = await (await jetstreamManager(nc)).streams.info(`OBJ_cohort_${cluster}_replies`);
      expect(info.config.max_age).toBe(nanos(REPLY_BLOB_MAX_AGE_MS));
      const kept = await (await jetstreamManager(nc)).streams.info(`OBJ_cohort_${cluster}_blobs`);
      expect(kept.config.max_age).toBe(0);
    }
    // Positive control: the client reads the same document through the replies bucket.
    const read = await s.read();
    expect((read.document as Record<string, string>)['b']).toHaveLength(600_000);
    // And the snapshot of it, too large for a KV value, goes to the blobs bucket, which keeps it.
    expect(await worker.passivate()).toBe(1);
    const snapshots = await raw.kv({ bucket: `cohort_${cluster}_snapshots` });
    const ref = decode((await snapshots.get(sessionKey('bag', 'big')))!.value) as { claimCheck: string };
    expect(ref.claimCheck).toMatch(/^bag\.big\./);
    expect(await blobs.get(ref.claimCheck)).not.toBeNull();
  });
});
