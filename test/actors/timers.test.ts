import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, defineApplication, shardOf, startWorker } from '../../index.js';
import type { JournalRecord } from '../../internal.js';
import { decode } from '../../bus/codec.js';
import { createNatsBus } from '../../bus/nats/mod.js';
import { journalStreamFilter, journalStreamName, journalSubject } from '../../bus/subjects.js';
import type { Bus } from '../../bus/types.js';
import type { NatsServer } from '../../harness/natsServer.js';
import { counterMachine } from '../fixtures/counter.js';
import { startWorkerProcess } from '../fixtures/workerProcess.js';
import { startTestServer } from '../nats.js';
import { waitFor } from '../waitFor.js';

let nats: NatsServer;
beforeAll(async () => {
  nats = await startTestServer();
});
afterAll(async () => {
  await nats?.[Symbol.asyncDispose]();
});

const app = defineApplication({ name: 'counter', machine: counterMachine });

/** Who journaled the session's events: the timer's entry proves the bell fired with no message to wake it. */
async function journaledBy(bus: Bus, cluster: string, id: string): Promise<string[]> {
  const j = await bus.journal({ name: journalStreamName(cluster), subjects: [journalStreamFilter(cluster)] });
  const out: string[] = [];
  for await (const e of j.read(journalSubject(cluster, shardOf('counter', id), 'counter', id))) {
    for (const ev of (decode(e.data) as JournalRecord).events) out.push(ev.event.meta.client);
  }
  return out;
}

describe('delayed events across restarts (nats)', () => {
  it('a session put to sleep by a graceful stop wakes on a new worker when its timer falls due, without a message', async () => {
    const cluster = `d${randomUUID().slice(0, 8)}`;
    const bus = await createNatsBus({ servers: nats.url });
    try {
      const first = await startWorker({ bus, cluster, applications: [app] });
      const client = await connect({ bus, cluster, label: 'arm' });
      await client.session('counter', 'sleeper').send({ type: 'ARM' });
      await first.stop();
      const second = await startWorker({ bus, cluster, applications: [app] });
      try {
        const by = await waitFor(
          async () => {
            const x = await journaledBy(bus, cluster, 'sleeper');
            return x.includes('timer') && x;
          },
          { what: 'the bell, journaled by the new worker' },
        );
        expect(by).toEqual([client.id, 'timer']);
        expect(second.activeSessions).toBe(1);
      } finally {
        await second.stop();
      }
    } finally {
      await bus.close();
    }
  });

  it('a worker killed with SIGKILL mid-delay: its successor still fires the timer', async () => {
    const cluster = `d${randomUUID().slice(0, 8)}`;
    const child = await startWorkerProcess(nats.url, cluster);
    const bus = await createNatsBus({ servers: nats.url });
    try {
      const client = await connect({ bus, cluster, label: 'arm' });
      await client.session('counter', 'orphan').send({ type: 'ARM' });
      await child.kill();
      const successor = await startWorker({ bus, cluster, applications: [app] });
      try {
        const by = await waitFor(
          async () => {
            const x = await journaledBy(bus, cluster, 'orphan');
            return x.includes('timer') && x;
          },
          { what: 'the bell after the crash' },
        );
        expect(by).toEqual([client.id, 'timer']);
      } finally {
        await successor.stop();
      }
    } finally {
      await child.kill();
      await bus.close();
    }
  });
});
