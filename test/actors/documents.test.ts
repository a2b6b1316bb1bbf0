import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { connect, defineApplication, type Patch, startWorker } from '../../index.js';
import { encode } from '../../bus/codec.js';
import { PayloadTooLargeError } from '../../bus/errors.js';
import { createMemoryBus, createMemoryServer } from '../../bus/memory/mod.js';
import { eventSubject } from '../../bus/subjects.js';
import { whiteboardMachine } from '../../examples/whiteboard.js';
import { counterMachine } from '../fixtures/counter.js';
import { waitFor } from '../waitFor.js';

describe('documents', () => {
  it('a document larger than a message is snapshotted through the blob store and read back whole', async () => {
    const server = createMemoryServer({ maxPayload: 8_192 });
    const cluster = `b${randomUUID().slice(0, 8)}`;
    const board = defineApplication({ name: 'whiteboard', machine: whiteboardMachine, snapshotEvery: 1 });
    const worker = await startWorker({ bus: createMemoryBus({ server }), cluster, applications: [board] });
    const client = await connect({ bus: createMemoryBus({ server }), cluster });
    const s = client.session('whiteboard', 'big');
    const text = 'x'.repeat(3_000);
    for (let i = 0; i < 6; i++) await s.send({ type: 'ADD_SHAPE', id: `t${i}`, kind: 'text', x: i, y: i, text });
    expect(await worker.passivate()).toBe(1);
    const { document, seq } = await s.read();
    expect(seq).toBe(6);
    expect(Object.keys((document as { shapes: object }).shapes)).toHaveLength(6);
    // A single event too large for a message is refused at the client, typed, and nothing changes.
    await expect(s.send({ type: 'SET_TITLE', title: 'y'.repeat(9_000) })).rejects.toBeInstanceOf(PayloadTooLargeError);
    expect((await s.read()).seq).toBe(6);
    await worker.stop();
  });

  it('a subscriber that sees a gap in seqs re-reads the document', async () => {
    const server = createMemoryServer();
    const cluster = `g${randomUUID().slice(0, 8)}`;
    const app = defineApplication({ name: 'counter', machine: counterMachine });
    const worker = await startWorker({ bus: createMemoryBus({ server }), cluster, applications: [app] });
    const writer = await connect({ bus: createMemoryBus({ server }), cluster, label: 'writer' });
    const reader = await connect({ bus: createMemoryBus({ server }), cluster, label: 'reader' });
    const seen: Patch[] = [];
    reader.session('counter', 'gappy').subscribe((p) => seen.push(p));
    await writer.session('counter', 'gappy').send({ type: 'ADD', by: 1 });
    await waitFor(() => seen.length === 1);
    // A patch whose predecessor this subscriber never got (seq 3 on top of 2, while it holds 1).
    const raw = createMemoryBus({ server });
    raw.publish(eventSubject(cluster, 'counter', 'gappy'), encode({ seq: 3, prev: 2, ops: [], setter: 'elsewhere' }));
    await waitFor(() => seen.some((p) => p.resync), { what: 'a re-read' });
    const resync = seen.find((p) => p.resync)!;
    expect(resync.seq).toBe(1);
    expect(resync.ops).toEqual([{ op: 'replace', path: '', value: expect.objectContaining({ n: 1 }) }]);
    await worker.stop();
  });
});
