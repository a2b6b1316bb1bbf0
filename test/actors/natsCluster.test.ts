import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, defineApplication, startWorker } from '../../index.js';
import { createNatsBus } from '../../bus/nats/mod.js';
import { journalStreamName } from '../../bus/subjects.js';
import type { NatsCluster } from '../../harness/natsCluster.js';
import { cleanupAfterEach } from '../cleanup.js';
import { counterMachine } from '../fixtures/counter.js';
import { connectTest, startTestCluster } from '../nats.js';
import { waitFor } from '../waitFor.js';
import { jetstreamManager } from '@nats-io/jetstream';

/** Workers on a 3-node JetStream cluster with three copies of everything: any one NATS node may fail. */
describe('workers on a 3-node NATS cluster', () => {
  let nats: NatsCluster;
  beforeAll(async () => {
    nats = await startTestCluster();
  }, 60_000);
  afterAll(async () => {
    await nats?.[Symbol.asyncDispose]();
  });
  const track = cleanupAfterEach();
  const app = defineApplication({ name: 'counter', machine: counterMachine });

  it(
    'keeps every acknowledged write and keeps committing when a NATS node is killed',
    { timeout: 60_000 },
    async () => {
      const cluster = `n${randomUUID().slice(0, 8)}`;
      const options = {
        cluster,
        applications: [app],
        shardCount: 16,
        heartbeatInterval: 250,
        sessionTimeout: 3_000,
        storageReplicas: 3,
      };
      // Each worker talks to a different node first, and knows them all.
      const a = track(
        await startWorker({
          ...options,
          bus: track(await createNatsBus({ servers: [nats.urls[0]!, ...nats.urls.slice(1)] })),
        }),
      );
      const b = track(
        await startWorker({
          ...options,
          bus: track(await createNatsBus({ servers: [nats.urls[1]!, nats.urls[2]!, nats.urls[0]!] })),
        }),
      );
      await waitFor(() => a.serving.length + b.serving.length === 16 && a.view?.members.length === 2, {
        what: 'two workers',
        timeoutMs: 20_000,
      });
      await using nc = await connectTest(nats);
      const jsm = await jetstreamManager(nc);
      expect((await jsm.streams.info(journalStreamName(cluster))).config.num_replicas).toBe(3);

      const client = track(
        await connect({
          bus: track(await createNatsBus({ servers: [nats.urls[2]!, nats.urls[0]!, nats.urls[1]!] })),
          cluster,
          shardCount: 16,
          timeout: 20_000,
        }),
      );
      const ids = Array.from({ length: 12 }, (_, i) => `acct-${i}`);
      for (const id of ids) await client.session('counter', id).send({ type: 'ADD', by: 1 });
      await nats.nodes[0]!.kill();
      for (const id of ids) await client.session('counter', id).send({ type: 'ADD', by: 1 });
      for (const id of ids) expect((await client.session('counter', id).read()).document).toMatchObject({ n: 2 });
      await nats.nodes[0]!.restart();
    },
  );
});
