import { randomUUID } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { Objm } from '@nats-io/obj';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryBus, createMemoryServer } from '../../bus/memory/mod.js';
import { createNatsBus } from '../../bus/nats/mod.js';
import { defineApplication, startWorker } from '../../index.js';
import { bucketName, journalStreamName, storeDescription, type BucketKind } from '../../internal.js';
import type { NatsServer } from '../../harness/natsServer.js';
import { counterMachine } from '../fixtures/counter.js';
import { cleanupAfterEach } from '../cleanup.js';
import { connectTest, startTestServer } from '../nats.js';
import { waitFor } from '../waitFor.js';

let server: NatsServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.[Symbol.asyncDispose]();
});

describe('store descriptions (nats-server)', () => {
  const track = cleanupAfterEach();
  const name = (): string => `d${randomUUID().slice(0, 8)}`;

  it('a journal, a bucket and an object store made here carry the description asked: stream info and kv/obj status show it', async () => {
    const bus = track(await createNatsBus({ servers: server.url }));
    const n = name();
    await bus.journal({ name: `J_${n}`, subjects: [`j.${n}.>`], description: 'cohort x: session journal' });
    await bus.kv({ bucket: `kv_${n}`, description: 'cohort x: timers' });
    await bus.blobs({ bucket: `obj_${n}`, description: 'cohort x: blobs' });
    // Positive control: asked for none, a store has none.
    await bus.kv({ bucket: `plain_${n}` });
    await using nc = await connectTest(server);
    const jsm = await jetstreamManager(nc);
    expect((await jsm.streams.info(`J_${n}`)).config.description).toBe('cohort x: session journal');
    expect((await (await new Kvm(nc).open(`kv_${n}`)).status()).description).toBe('cohort x: timers');
    expect((await (await new Objm(nc).open(`obj_${n}`)).status()).description).toBe('cohort x: blobs');
    expect((await jsm.streams.info(`KV_plain_${n}`)).config.description).toBeUndefined();
  });

  it('an existing store with another description, or none, is left as it is: it is the operator’s', async () => {
    const n = name();
    await using nc = await connectTest(server);
    await new Kvm(nc).create(`kv_${n}`, { description: 'the operator wrote this' });
    await new Kvm(nc).create(`bare_${n}`);
    await new Objm(nc).create(`obj_${n}`, { description: 'ops blob notes' });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: `J_${n}`, subjects: [`j.${n}.>`] });
    const bus = track(await createNatsBus({ servers: server.url }));
    await bus.kv({ bucket: `kv_${n}`, description: 'cohort x: timers' });
    await bus.kv({ bucket: `bare_${n}`, description: 'cohort x: timers' });
    await bus.blobs({ bucket: `obj_${n}`, description: 'cohort x: blobs' });
    await bus.journal({ name: `J_${n}`, subjects: [`j.${n}.>`], description: 'cohort x: session journal' });
    expect((await jsm.streams.info(`KV_kv_${n}`)).config.description).toBe('the operator wrote this');
    expect((await jsm.streams.info(`KV_bare_${n}`)).config.description).toBeUndefined();
    expect((await jsm.streams.info(`OBJ_obj_${n}`)).config.description).toBe('ops blob notes');
    expect((await jsm.streams.info(`J_${n}`)).config.description).toBeUndefined();
  });

  it('a worker describes the journal, every bucket and both object stores of its cluster', async () => {
    const cluster = name();
    const bus = track(await createNatsBus({ servers: server.url }));
    const app = defineApplication({ name: 'counter', machine: counterMachine });
    const worker = track(await startWorker({ bus, cluster, applications: [app], shardCount: 4 }));
    await waitFor(() => worker.serving.length === 4, { what: 'the worker serving', timeoutMs: 10_000 });
    await using nc = await connectTest(server);
    const jsm = await jetstreamManager(nc);
    const journal = await jsm.streams.info(journalStreamName(cluster));
    expect(journal.config.description).toBe(
      `cohort ${cluster}: session journal (events of each command, epoch markers)`,
    );
    const kinds: [BucketKind, string][] = [
      ['cluster', 'KV'],
      ['snapshots', 'KV'],
      ['timers', 'KV'],
      ['counters', 'KV'],
      ['blobs', 'OBJ'],
      ['replies', 'OBJ'],
    ];
    for (const [kind, prefix] of kinds) {
      const info = await jsm.streams.info(`${prefix}_${bucketName(cluster, kind)}`);
      expect(info.config.description, kind).toBe(storeDescription(cluster, kind));
      expect(info.config.description, kind).toMatch(new RegExp(`^cohort ${cluster}: \\w`));
    }
    expect((await (await new Kvm(nc).open(bucketName(cluster, 'timers'))).status()).description).toMatch(/timer index/);
  });
});

describe('store descriptions (memory bus)', () => {
  it('kept as asked when made, an existing one left as it is', async () => {
    const memory = createMemoryServer();
    const bus = createMemoryBus({ server: memory });
    try {
      await bus.journal({ name: 'J_m', subjects: ['j.m.>'], description: 'journal notes' });
      await bus.kv({ bucket: 'kv_m', description: 'kv notes' });
      await bus.blobs({ bucket: 'obj_m', description: 'blob notes' });
      await bus.blobs({ bucket: 'bare_m' });
      expect(memory.stream('J_m')?.settings.description).toBe('journal notes');
      expect(memory.stream('KV_kv_m')?.settings.description).toBe('kv notes');
      expect(memory.stream('OBJ_obj_m')?.settings.description).toBe('blob notes');
      // Opened again with other words, or with words where there were none: unchanged.
      await bus.kv({ bucket: 'kv_m', description: 'other' });
      await bus.blobs({ bucket: 'obj_m', description: 'other' });
      await bus.blobs({ bucket: 'bare_m', description: 'other' });
      expect(memory.stream('KV_kv_m')?.settings.description).toBe('kv notes');
      expect(memory.stream('OBJ_obj_m')?.settings.description).toBe('blob notes');
      expect(memory.stream('OBJ_bare_m')?.settings.description).toBeUndefined();
    } finally {
      await bus.close();
    }
  });
});
