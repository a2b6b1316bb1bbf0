import { randomUUID } from 'node:crypto';
import { DiscardPolicy, jetstreamManager, RetentionPolicy, StorageType, type StreamConfig } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { nanos } from '@nats-io/nats-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, defineApplication, startWorker, StreamConfigMismatchError } from '../../index.js';
import { createMemoryBus, createMemoryServer } from '../../bus/memory/mod.js';
import { createNatsBus } from '../../bus/nats/mod.js';
import type { Bus } from '../../bus/types.js';
import type { NatsServer } from '../../harness/natsServer.js';
import { cleanupAfterEach } from '../cleanup.js';
import { counterMachine } from '../fixtures/counter.js';
import { connectTest, startTestServer } from '../nats.js';

const SHARDS = 4;
const app = defineApplication({ name: 'counter', machine: counterMachine });
const fresh = (): string => `c${randomUUID().slice(0, 8)}`;
const journalName = (cluster: string): string => `COHORT_${cluster}_JOURNAL`;
const journalSubjects = (cluster: string): string[] => [`cohort.${cluster}.jrnl.>`];

/** What cohort would make itself: the positive control starts from it. */
const cohortJournal = (cluster: string): Partial<StreamConfig> & { name: string } => ({
  name: journalName(cluster),
  subjects: journalSubjects(cluster),
  duplicate_window: nanos(120_000),
  num_replicas: 1,
  storage: StorageType.File,
});

function worker(bus: Bus, cluster: string, options: { storageReplicas?: number } = {}) {
  return startWorker({
    bus,
    cluster,
    applications: [app],
    shards: [...Array(SHARDS).keys()],
    shardCount: SHARDS,
    ...options,
  });
}

/**
 * Issue 12, section 1: the journal stream and the buckets are checked at
 * start against what cohort needs of them. A stream made beforehand by
 * someone else with a setting that would lose journal entries or
 * de-duplication refuses the worker, naming the setting and the fix.
 */
describe('stream and bucket configuration checked at start (nats)', () => {
  let server: NatsServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.[Symbol.asyncDispose]();
  });
  const track = cleanupAfterEach();
  const bus = async (): Promise<Bus> => track(await createNatsBus({ servers: server.url }));

  async function precreate(config: Partial<StreamConfig> & { name: string }): Promise<void> {
    await using nc = await connectTest(server);
    await (await jetstreamManager(nc)).streams.add(config);
  }

  const unsafe: [setting: string, change: (cluster: string) => Partial<StreamConfig>, fix: string][] = [
    ['subjects', (c) => ({ subjects: [`cohort.${c}.>`] }), `--subjects 'cohort.`],
    ['retention', () => ({ retention: RetentionPolicy.Interest }), 'nats stream rm'],
    ['max_age', () => ({ max_age: nanos(3_600_000) }), '--max-age=-1'],
    ['max_msgs_per_subject', () => ({ max_msgs_per_subject: 1_000 }), '--max-msgs-per-subject=-1'],
    ['discard', () => ({ max_msgs: 1_000_000, discard: DiscardPolicy.Old }), '--max-msgs=-1 --max-bytes=-1'],
    ['duplicate_window', () => ({ duplicate_window: nanos(10_000) }), '--dupe-window=120s'],
    ['storage', () => ({ storage: StorageType.Memory }), 'nats stream rm'],
    ['allow_rollup_hdrs', () => ({ allow_rollup_hdrs: true }), '--no-allow-rollup'],
  ];

  it.each(unsafe)(
    'a journal made beforehand with an unsafe %s refuses the worker, naming it',
    async (setting, change, fix) => {
      const cluster = fresh();
      await precreate({ ...cohortJournal(cluster), ...change(cluster) });
      const refused = await worker(await bus(), cluster).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(StreamConfigMismatchError);
      expect(refused).toMatchObject({ stream: journalName(cluster), setting });
      expect((refused as StreamConfigMismatchError).fix).toContain(fix);
      expect((refused as Error).message).toContain(setting);
    },
  );

  it('a journal and buckets with fewer copies than storageReplicas refuse the worker', async () => {
    const cluster = fresh();
    await (await worker(await bus(), cluster)).stop();
    const refused = await worker(await bus(), cluster, { storageReplicas: 3 }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(StreamConfigMismatchError);
    expect(refused).toMatchObject({ setting: 'num_replicas', expected: 'at least 3 (storageReplicas)', actual: '1' });
    expect((refused as StreamConfigMismatchError).fix).toContain('--replicas=3');
  });

  it('a snapshots bucket whose values expire refuses the worker', async () => {
    const cluster = fresh();
    await using nc = await connectTest(server);
    await new Kvm(nc).create(`cohort_${cluster}_snapshots`, { ttl: 60_000 });
    const refused = await worker(await bus(), cluster).catch((e: unknown) => e);
    expect(refused).toMatchObject({
      name: 'StreamConfigMismatchError',
      stream: `KV_cohort_${cluster}_snapshots`,
      setting: 'max_age',
      actual: '60s',
    });
  });

  it('positive control: a journal made beforehand as cohort needs it, with harmless settings of its own, is taken', async () => {
    const cluster = fresh();
    await precreate({
      ...cohortJournal(cluster),
      description: 'made by the operator',
      duplicate_window: nanos(300_000), // longer than cohort's: de-duplicates longer
      max_bytes: 1 << 30, // a quota that refuses writes when full, dropping nothing
      discard: DiscardPolicy.New,
      max_msg_size: 1 << 20,
    });
    await using nc = await connectTest(server);
    await new Kvm(nc).create(`cohort_${cluster}_snapshots`, { history: 3 }); // more history than asked
    track(await worker(await bus(), cluster));
    const client = track(await connect({ bus: await bus(), cluster, shardCount: SHARDS, timeout: 5_000 }));
    expect((await client.session('counter', 'a').send({ type: 'ADD', by: 2 })).seq).toBe(1);
    // Nothing was changed on it.
    const info = await (await jetstreamManager(nc)).streams.info(journalName(cluster));
    expect(info.config).toMatchObject({ description: 'made by the operator', duplicate_window: nanos(300_000) });
  });
});

/**
 * The memory bus has streams with subjects, a duplicate window and a
 * per-subject limit only (no retention, expiry, storage or copies): those
 * are checked the same way; a stream made beforehand on the same memory
 * server is how another configuration comes to be there.
 */
describe('stream configuration checked at start (memory)', () => {
  const track = cleanupAfterEach();
  const server = createMemoryServer();
  const bus = async (): Promise<Bus> => track(createMemoryBus({ server }));

  it('a journal made beforehand with a shorter duplicate window, or other subjects, refuses the worker', async () => {
    const cluster = fresh();
    await (
      await bus()
    ).journal({ name: journalName(cluster), subjects: journalSubjects(cluster), duplicateWindow: 10_000 });
    await expect(worker(await bus(), cluster)).rejects.toMatchObject({
      name: 'StreamConfigMismatchError',
      setting: 'duplicate_window',
      actual: '10s',
    });
    const other = fresh();
    await (await bus()).journal({ name: journalName(other), subjects: [`cohort.${other}.jrnl.0.>`] });
    await expect(worker(await bus(), other)).rejects.toMatchObject({ setting: 'subjects' });
  });

  it('positive control: a journal made beforehand with a longer window is taken', async () => {
    const cluster = fresh();
    await (
      await bus()
    ).journal({ name: journalName(cluster), subjects: journalSubjects(cluster), duplicateWindow: 300_000 });
    track(await worker(await bus(), cluster));
    const client = track(await connect({ bus: await bus(), cluster, shardCount: SHARDS }));
    expect((await client.session('counter', 'a').send({ type: 'ADD', by: 2 })).seq).toBe(1);
  });
});
