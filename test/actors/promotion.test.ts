/**
 * Promotion from copies: a secondary that becomes primary activates its
 * sessions from the copies it kept following the journal, after checking
 * each has applied the journal's last entry on its subject, instead of
 * loading snapshot and journal again. A copy behind the journal is loaded.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { defineApplication, shardOf, startWorker, type Worker } from '../../index.js';
import { HEADER, type JournalRecord } from '../../internal.js';
import { encode } from '../../bus/codec.js';
import { journalStreamFilter, journalStreamName, journalSubject } from '../../bus/subjects.js';
import type { Bus } from '../../bus/types.js';
import { busTargets } from '../busTargets.js';
import { cleanupAfterEach } from '../cleanup.js';
import { counterMachine } from '../fixtures/counter.js';
import { RawSession } from '../fixtures/rawCohort.js';
import { waitFor } from '../waitFor.js';

const SHARDS = 4;
const FAST = { heartbeatInterval: 100, sessionTimeout: 500, shardCount: SHARDS } as const;
const app = defineApplication({ name: 'counter', machine: counterMachine, unusedSessionLifetime: 600_000 });
const C = 'promo#0000000f';
const targets = busTargets();

describe.each(targets)('promotion from copies ($name)', (target) => {
  const track = cleanupAfterEach();

  const buses = new Map<Worker, Bus>();
  async function worker(cluster: string): Promise<Worker> {
    const bus = track(await target.bus());
    const w = track(await startWorker({ bus, cluster, applications: [app], ...FAST }));
    buses.set(w, bus);
    return w;
  }

  /** Two workers, every shard with a secondary; `id`'s shard on `a`, whose copy on `b` has applied `seq`. */
  async function pair(id: string) {
    const cluster = `p${randomUUID().slice(0, 8)}`;
    const a = await worker(cluster);
    const b = await worker(cluster);
    const shard = shardOf('counter', id, SHARDS);
    await waitFor(
      () =>
        b.view?.viewId === a.view?.viewId &&
        b.view?.shards.every((s) => s.state === 'ACTIVE' && s.replicas.length === 1) === true &&
        a.serving.length + b.serving.length === SHARDS,
      { what: 'every shard served, with a secondary', timeoutMs: 10_000 },
    );
    const [primary, secondary] = a.serving.includes(shard) ? [a, b] : [b, a];
    const raw = track(await target.bus());
    const s = new RawSession(raw, cluster, id);
    return { cluster, primary, secondary, shard, raw, s };
  }

  async function applied(secondary: Worker, shard: number, seq: number): Promise<void> {
    await waitFor(() => (secondary.replicaStatus(shard).applied ?? 0) >= seq, { what: `the secondary at ${seq}` });
  }

  it('a planned failover: the new primary serves from its copy, retries still recognised', async () => {
    const { primary, secondary, shard, s } = await pair('planned');
    for (let i = 1; i <= 5; i++) expect(await s.send(C, `c${i}`, { type: 'ADD', by: i })).toMatchObject({ seq: i });
    const journalSeq = primary.replicaStatus(shard).secondaries[0]!.seq;
    await applied(secondary, shard, journalSeq);
    await primary.failover(shard, secondary.id);
    await waitFor(() => secondary.serving.includes(shard), { what: 'the secondary serving the shard' });
    // A retry of the last command is a duplicate on the adopted copy: its command ids came with it.
    expect(await sendUntilServed(s, 'c5', 5)).toMatchObject({ ok: true, seq: 5, duplicate: true });
    expect(await s.send(C, 'c6', { type: 'ADD', by: 6 })).toMatchObject({ ok: true, seq: 6 });
    expect(await s.read({ client: C })).toMatchObject({ ok: true, seq: 6, document: { n: 21 } });
    expect(secondary.adoptions).toEqual({ adopted: 1, refused: 0 });
  });

  it('a crashed primary: its shard fails over to the secondary, which adopts its copy', async () => {
    const { primary, secondary, shard, s } = await pair('crashed');
    for (let i = 1; i <= 3; i++) await s.send(C, `k${i}`, { type: 'ADD', by: 10 });
    await applied(secondary, shard, primary.replicaStatus(shard).secondaries[0]!.seq);
    // Its bus gone at once, as a process killed: nobody hands the shard off.
    await buses.get(primary)!.close();
    await waitFor(() => secondary.serving.includes(shard), { what: 'the secondary promoted', timeoutMs: 10_000 });
    expect(await sendUntilServed(s, 'k4', 10)).toMatchObject({ ok: true, seq: 4 });
    expect(await s.read({ client: C })).toMatchObject({ ok: true, seq: 4, document: { n: 40 } });
    expect(secondary.adoptions.adopted).toBe(1);
  });

  it('control: a copy behind the journal (an entry it never saw) is refused and the session loaded', async () => {
    const { cluster, raw, primary, secondary, shard, s } = await pair('behind');
    for (let i = 1; i <= 3; i++) await s.send(C, `b${i}`, { type: 'ADD', by: 1 });
    await applied(secondary, shard, primary.replicaStatus(shard).secondaries[0]!.seq);
    await primary.failover(shard, secondary.id);
    await waitFor(() => secondary.serving.includes(shard), { what: 'the secondary serving the shard' });
    // Written under the new epoch after the copy stopped following, before the session's first command.
    const j = await raw.journal({ name: journalStreamName(cluster), subjects: [journalStreamFilter(cluster)] });
    const subject = journalSubject(cluster, shard, 'counter', 'behind');
    const record: JournalRecord = {
      v: 1,
      events: [{ seq: 4, event: { type: 'ADD', by: 100, meta: { time: 1, cmdId: 'other', client: C } } }],
    };
    await j.append(subject, encode(record), {
      expectedLastSubjectSeq: await j.lastSeq(subject),
      headers: { [HEADER.epoch]: String(secondary.view!.shards[shard]!.epoch) },
    });
    expect(await sendUntilServed(s, 'b5', 1)).toMatchObject({ ok: true, seq: 5 });
    expect(await s.read({ client: C })).toMatchObject({ document: { n: 104 } });
    expect(secondary.adoptions).toEqual({ adopted: 0, refused: 1 });
  });

  /** Commands to a shard whose primary died are refused (or unanswered) until the view moves it. */
  async function sendUntilServed(s: RawSession, cmdId: string, by: number): Promise<Record<string, unknown>> {
    let last: unknown;
    for (let i = 0; i < 50; i++) {
      try {
        const r = await s.send(C, cmdId, { type: 'ADD', by });
        if (r.ok) return r;
        last = r;
      } catch (err) {
        last = err;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`never served: ${String(last)}`);
  }
});
