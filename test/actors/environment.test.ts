import { describe, expect, it } from 'vitest';
import {
  connect,
  createMemoryBus,
  createMemoryServer,
  defineApplication,
  type Environment,
  seededEnvironment,
  SimulatedClock,
  startWorker,
  systemEnvironment,
} from '../../index.js';
import {
  CLAIM_CHECK_HEADER,
  encode,
  HEADER,
  journalStreamFilter,
  journalStreamName,
  readRequest,
  readSubject,
  shardOf,
} from '../../internal.js';
import { whiteboardMachine } from '../../examples/whiteboard.js';

const SHARDS = 4;
const cluster = 'env';

/**
 * Every id a run makes, in order: the worker's id, the client's id, each
 * command id and transaction id as journaled, and the name of a blob that
 * carried a reply too large for a message.
 */
async function idsOfRun(environment: Environment): Promise<string[]> {
  const server = createMemoryServer({ environment, maxPayload: 8_192 });
  const board = defineApplication({ name: 'whiteboard', machine: whiteboardMachine });
  const shards = [...Array(SHARDS).keys()];
  const worker = await startWorker({
    bus: createMemoryBus({ server }),
    cluster,
    applications: [board],
    shards,
    shardCount: SHARDS,
    environment,
  });
  const client = await connect({
    bus: createMemoryBus({ server }),
    cluster,
    label: 'det',
    shardCount: SHARDS,
    environment,
  });
  const s = client.session('whiteboard', 'b1');
  for (let i = 0; i < 3; i++)
    await s.send({ type: 'ADD_SHAPE', id: `s${i}`, kind: 'text', x: i, y: i, text: 'x'.repeat(3_000) });
  await s.transaction(async (tx) => {
    await tx.send({ type: 'SET_TITLE', title: 'in a transaction' });
  });
  // The document is now larger than a message: the worker answers by claim-check, under a blob name of its environment's.
  const raw = createMemoryBus({ server });
  const reply = await raw.request(
    readSubject(cluster, shardOf('whiteboard', 'b1', SHARDS), 'whiteboard', 'b1', 'raw'),
    encode(readRequest('raw#1')),
    { timeout: 5_000 },
  );
  const blob = reply.headers[CLAIM_CHECK_HEADER];
  const journal = await raw.journal({ name: journalStreamName(cluster), subjects: [journalStreamFilter(cluster)] });
  const journaled: string[] = [];
  for await (const e of journal.read(journalStreamFilter(cluster))) journaled.push(String(e.headers[HEADER.command]));
  const ids = [worker.id, client.id, ...journaled, String(blob)];
  await client.close();
  await worker.stop();
  return ids;
}

describe('one injected environment', () => {
  it('two memory-bus clusters on the same seed make the same ids; another seed makes others', async () => {
    const a = await idsOfRun(seededEnvironment(42, new SimulatedClock(1_000)));
    const b = await idsOfRun(seededEnvironment(42, new SimulatedClock(1_000)));
    const c = await idsOfRun(seededEnvironment(43, new SimulatedClock(1_000)));
    // Worker, client, three commands, one transaction, one blob; all distinct within the run.
    expect(a).toHaveLength(7);
    expect(new Set(a).size).toBe(7);
    expect(a.every((id) => id.length > 0 && id !== 'undefined')).toBe(true);
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
    expect(c.filter((id, i) => id === a[i])).toEqual([]);
  });

  it('seeded ids have the layout of a version 4 UUID, and the system environment still makes random ones', () => {
    const env = seededEnvironment(7);
    const ids = Array.from({ length: 100 }, () => env.newId());
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(new Set(ids).size).toBe(100);
    const r = Array.from({ length: 1000 }, () => env.random());
    expect(Math.min(...r)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...r)).toBeLessThan(1);
    expect(systemEnvironment.newId()).not.toBe(systemEnvironment.newId());
  });
});
