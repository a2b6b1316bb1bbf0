import { describe, expect, it } from 'vitest';
import { connect, defineApplication, shardOf, startWorker } from '../../index.js';
import { InvalidNameError } from '../../bus/errors.js';
import { createMemoryBus, createMemoryServer } from '../../bus/memory/mod.js';
import { counterMachine } from '../fixtures/counter.js';
import { decode, encode } from '../../bus/codec.js';
import { cmdShardFilter } from '../../bus/subjects.js';

describe('entry points refuse bad input with a clear error', () => {
  it('defineApplication: names, commit levels, lifetimes and metadata', () => {
    expect(() => defineApplication({ name: 'Bad Name', machine: counterMachine })).toThrow(InvalidNameError);
    expect(() => defineApplication({ name: 'a.b', machine: counterMachine })).toThrow(InvalidNameError);
    expect(() => defineApplication({ name: 'ok', machine: counterMachine, commit: 'sync' as never })).toThrow(
      /commit must be/,
    );
    expect(() =>
      defineApplication({ name: 'ok', machine: counterMachine, commit: 'replicas', syncReplicas: -1 }),
    ).toThrow(/syncReplicas/);
    expect(() => defineApplication({ name: 'ok', machine: counterMachine, requiredSynchronizedReplicas: 0.5 })).toThrow(
      /requiredSynchronizedReplicas/,
    );
    expect(() => defineApplication({ name: 'ok', machine: counterMachine, unusedSessionLifetime: 0 })).toThrow(
      /unusedSessionLifetime/,
    );
    expect(() => defineApplication({ name: 'ok', machine: counterMachine, snapshotEvery: 1.5 })).toThrow(
      /snapshotEvery/,
    );
    expect(() => defineApplication({ name: 'ok', machine: counterMachine, metadata: { big: 1n } })).toThrow(TypeError);
    expect(defineApplication({ name: 'ok-1', machine: counterMachine })).toMatchObject({
      commit: 'journal',
      snapshotEvery: 100,
    });
  });

  it('connect and session: bad clusters and app names are refused; hostile ids are escaped and served', async () => {
    const server = createMemoryServer();
    await expect(connect({ bus: createMemoryBus({ server }), cluster: 'a.b' })).rejects.toBeInstanceOf(
      InvalidNameError,
    );
    await expect(connect({ cluster: 'c' })).rejects.toThrow(/needs `nats`/);
    const worker = await startWorker({
      bus: createMemoryBus({ server }),
      cluster: 'c',
      applications: [defineApplication({ name: 'counter', machine: counterMachine })],
    });
    const client = await connect({ bus: createMemoryBus({ server }), cluster: 'c' });
    expect(() => client.session('Counter!', 'x')).toThrow(InvalidNameError);
    expect(() => client.session('counter', '')).toThrow(InvalidNameError);
    const hostile = 'a.b.*.>\u0000 $ é😀';
    expect((await client.session('counter', hostile).send({ type: 'ADD', by: 2 })).seq).toBe(1);
    expect((await client.session('counter', hostile).read()).document).toMatchObject({ n: 2 });
    expect((await client.session('counter', 'a.b').read()).seq).toBe(0); // a different session, not a prefix of it
    await worker.stop();
  });

  it('startWorker: needs a bus or a server, and a valid cluster', async () => {
    await expect(startWorker({ cluster: 'c', applications: [] })).rejects.toThrow(/needs `nats`/);
    await expect(
      startWorker({ bus: createMemoryBus(), cluster: 'bad cluster', applications: [] }),
    ).rejects.toBeInstanceOf(InvalidNameError);
  });

  it('startWorker: health and hand-off settings that cannot work are refused before it starts; good ones start', async () => {
    const server = createMemoryServer();
    const applications = [defineApplication({ name: 'counter', machine: counterMachine })];
    const start = (extra: Record<string, unknown>) =>
      startWorker({ bus: createMemoryBus({ server }), cluster: 'h', applications, ...extra });
    for (const failureCondition of [0, 4, 2.5, '3'])
      await expect(start({ failureCondition }), String(failureCondition)).rejects.toThrow(
        /failureCondition must be 1, 2 or 3/,
      );
    for (const healthCheckTimeout of [2_999, -1, Number.NaN, Infinity, 1e20])
      await expect(start({ healthCheckTimeout }), String(healthCheckTimeout)).rejects.toThrow(/healthCheckTimeout/);
    for (const handoffTransactionWait of [-1, Number.NaN, Infinity])
      await expect(start({ handoffTransactionWait }), String(handoffTransactionWait)).rejects.toThrow(
        /handoffTransactionWait/,
      );
    const ok = await start({ failureCondition: 2, healthCheckTimeout: 5_000, handoffTransactionWait: 0 });
    expect(ok.view?.members.length).toBe(1);
    await ok.stop();
  });
});

describe('client retries', () => {
  it('sends an unanswered command again with the same command id, and refuses bad timeouts', async () => {
    const server = createMemoryServer();
    const responder = createMemoryBus({ server });
    const client = await connect({
      bus: createMemoryBus({ server }),
      cluster: 'r',
      timeout: 2_000,
      attemptTimeout: 100,
    });
    const seen: string[] = [];
    // A responder that loses the first attempt (as a worker that died with it would), then answers.
    responder.subscribe(cmdShardFilter('r', shardOf('counter', 'x')), (m) => {
      seen.push((decode(m.data) as { cmdId: string }).cmdId);
      if (seen.length > 1) m.respond(encode({ ok: true, seq: 1 }));
    });
    await responder.flush();
    expect(await client.session('counter', 'x').send({ type: 'ADD', by: 1 })).toMatchObject({
      seq: 1,
      duplicate: false,
    });
    expect(seen).toHaveLength(2);
    expect(seen[1]).toBe(seen[0]);
    await expect(connect({ bus: createMemoryBus({ server }), cluster: 'r', attemptTimeout: 0 })).rejects.toThrow(
      /attemptTimeout must be a positive/,
    );
    await client.close();
    await responder.close();
  });
});
