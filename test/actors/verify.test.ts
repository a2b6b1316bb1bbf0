import jsonPatch from 'fast-json-patch';
import { describe, expect, it } from 'vitest';
import type { PatchMessage } from '../../internal.js';
import { cleanupAfterEach } from '../cleanup.js';
import { errorOf, rawCohort, type RawSession, type WireReply } from '../fixtures/rawCohort.js';
import { busTargets } from '../busTargets.js';
import { waitFor } from '../waitFor.js';

const targets = busTargets();

const C = 'cache#0000000c';

type Doc = { n: number; log: string[]; rang: number };

function patchesOf(reply: WireReply): PatchMessage[] {
  if (!reply.ok || !Array.isArray(reply['patches'])) throw new Error(`no patches in ${JSON.stringify(reply)}`);
  return reply['patches'] as PatchMessage[];
}

/** Applies the patches in order, each on top of the one before, as a client's cache would. */
function applyAll(doc: Doc, since: number, patches: readonly PatchMessage[]): Doc {
  let at = since;
  let out: Doc = jsonPatch.deepClone(doc) as Doc;
  for (const p of patches) {
    expect(p.prev).toBe(at);
    out = jsonPatch.applyPatch(out, jsonPatch.deepClone(p.ops) as jsonPatch.Operation[]).newDocument;
    at = p.seq;
  }
  return out;
}

describe.each(targets)('cache verification ($name)', (target) => {
  const track = cleanupAfterEach();
  const bus = async () => track(await target.bus());

  async function cohort(app: { snapshotEvery?: number; commit?: 'memory' | 'journal' } = {}) {
    const c = await rawCohort(bus, { app });
    track(c.worker);
    return c;
  }

  /** Five events (the middle three as one transaction), and the document as of seq 0, 1, 4 and 5. */
  async function history(s: RawSession): Promise<Map<number, Doc>> {
    const docs = new Map<number, Doc>();
    const remember = async () => {
      const r = await s.read({ client: C });
      if (!r.ok) throw new Error('read failed');
      docs.set(r['seq'] as number, r['document'] as Doc);
    };
    await remember();
    await s.send(C, 'c1', { type: 'ADD', by: 1 });
    await remember();
    await s.tx('other#0000000d', 'tx1', 'begin', { timeout: 30_000 });
    for (let step = 0; step < 3; step++)
      await s.tx('other#0000000d', 'tx1', 'send', { step, event: { type: 'ADD', by: 10 * (step + 1) } });
    expect(await s.tx('other#0000000d', 'tx1', 'commit', { steps: 3 })).toMatchObject({ ok: true, seq: 4 });
    await remember();
    await s.send(C, 'c5', { type: 'ADD', by: 2 });
    await remember();
    return docs;
  }

  it('up-to-date: nothing to send', async () => {
    const { session } = await cohort();
    const s = session('v-current');
    await history(s);
    expect(await s.verify({ client: C, since: 5, max: 100 })).toEqual({ ok: true, outcome: 'up-to-date', seq: 5 });
  });

  it('replayed: one patch per event since the client, which applied in order reproduce the document', async () => {
    const { session } = await cohort();
    const s = session('v-replay');
    const docs = await history(s);
    const reply = await s.verify({ client: C, since: 1, max: 100 });
    expect(reply).toMatchObject({ ok: true, outcome: 'replayed', seq: 5 });
    const patches = patchesOf(reply);
    expect(patches.map((p) => [p.seq, p.prev, p.setter])).toEqual([
      [2, 1, 'other#0000000d'],
      [3, 2, 'other#0000000d'],
      [4, 3, 'other#0000000d'],
      [5, 4, C],
    ]);
    expect(applyAll(docs.get(1)!, 1, patches)).toEqual(docs.get(5));
    // From the very start, too.
    const all = await s.verify({ client: C, since: 0, max: 100 });
    expect(applyAll(docs.get(0)!, 0, patchesOf(all))).toEqual(docs.get(5));
  });

  it('replayed from the start when the snapshot is newer than the client but the journal still holds seq 1', async () => {
    const c = await cohort();
    const s = c.session('v-passivated');
    const docs = await history(s);
    // A passivation snapshot (at 5) does not compact.
    await c.worker.passivate();
    const reply = await s.verify({ client: C, since: 1, max: 100 });
    expect(reply).toMatchObject({ ok: true, outcome: 'replayed', seq: 5 });
    expect(applyAll(docs.get(1)!, 1, patchesOf(reply))).toEqual(docs.get(5));
  });

  it('replayed from a snapshot no newer than the client, with the journal after it', async () => {
    const c = await cohort({ snapshotEvery: 3 });
    const s = c.session('v-snap');
    const docs = await history(s);
    // The transaction's record (seq 2-4) crossed the cadence: a snapshot at 4, the journal below that record purged.
    await waitFor(async () => (await s.journal())[0]?.events[0]?.seq === 2, { what: 'compaction' });
    const reply = await s.verify({ client: C, since: 4, max: 100 });
    expect(reply).toMatchObject({ ok: true, outcome: 'replayed', seq: 5 });
    expect(applyAll(docs.get(4)!, 4, patchesOf(reply))).toEqual(docs.get(5));
  });

  it('cleared when the journal was compacted past the client, with the document and state', async () => {
    const c = await cohort({ snapshotEvery: 3 });
    const s = c.session('v-compacted');
    const docs = await history(s);
    await waitFor(async () => (await s.journal())[0]?.events[0]?.seq === 2, { what: 'compaction' });
    // The client at 0 needs seq 1, which only the (purged) journal held.
    expect(await s.verify({ client: C, since: 0, max: 100 })).toEqual({
      ok: true,
      outcome: 'cleared',
      seq: 5,
      document: docs.get(5),
      state: 'running',
    });
  });

  it('cleared when the gap exceeds the client’s queue; newer-than-server when the client is ahead', async () => {
    const { session } = await cohort();
    const s = session('v-gap');
    const docs = await history(s);
    expect(await s.verify({ client: C, since: 1, max: 3 })).toEqual({
      ok: true,
      outcome: 'cleared',
      seq: 5,
      document: docs.get(5),
      state: 'running',
    });
    expect(await s.verify({ client: C, since: 2, max: 3 })).toMatchObject({ ok: true, outcome: 'replayed', seq: 5 });
    expect(await s.verify({ client: C, since: 9, max: 3 })).toEqual({
      ok: true,
      outcome: 'newer-than-server',
      seq: 5,
      document: docs.get(5),
      state: 'running',
    });
    // A session never written to is at 0.
    expect(await session('v-none').verify({ client: C, since: 3, max: 3 })).toMatchObject({
      ok: true,
      outcome: 'newer-than-server',
      seq: 0,
      document: { n: 0 },
    });
  });

  it('at commit level memory, replays what was acknowledged once it is journaled', async () => {
    const { session } = await cohort({ commit: 'memory' });
    const s = session('v-memory');
    const docs = await history(s);
    const reply = await s.verify({ client: C, since: 1, max: 100 });
    expect(reply).toMatchObject({ ok: true, outcome: 'replayed', seq: 5 });
    expect(applyAll(docs.get(1)!, 1, patchesOf(reply))).toEqual(docs.get(5));
  });

  it('answers malformed verifications with InvalidRequestError and keeps serving', async () => {
    const { session } = await cohort();
    const s = session('v-bad');
    await s.send(C, 'c1', { type: 'ADD', by: 1 });
    for (const body of [
      { client: C, since: -1, max: 10 },
      { client: C, since: 1.5, max: 10 },
      { client: C, since: '1', max: 10 },
      { client: C, since: 1, max: 0 },
      { client: C, since: 1 },
      { client: C, since: 1, max: 2.5 },
      { since: 1, max: 10 },
      { client: '', since: 1, max: 10 },
    ]) {
      expect(errorOf(await s.verify(body)), JSON.stringify(body)).toMatchObject({ name: 'InvalidRequestError' });
    }
    expect(await s.verify({ client: C, since: 0, max: 10 })).toMatchObject({ ok: true, outcome: 'replayed', seq: 1 });
    expect(await s.read({ client: C })).toMatchObject({ ok: true, seq: 1, document: { n: 1 } });
  });
});
