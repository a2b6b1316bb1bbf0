/**
 * Promotion from copies: a secondary that becomes primary activates its
 * sessions from the copies it kept following the journal, after checking
 * each has applied the journal's last entry on its subject, instead of
 * loading snapshot and journal again. A copy behind the journal is loaded.
 */
import { describe, expect, it } from 'vitest';
import type { Worker } from '../../index.js';
import { HEADER, type JournalRecord, UNSAFE } from '../../internal.js';
import { encode } from '../../bus/codec.js';
import { journalStreamFilter, journalStreamName, journalSubject } from '../../bus/subjects.js';
import { busTargets } from '../busTargets.js';
import { cleanupAfterEach } from '../cleanup.js';
import { memberPair } from '../fixtures/memberPair.js';
import type { RawSession } from '../fixtures/rawCohort.js';
import { waitFor } from '../waitFor.js';

const C = 'promo#0000000f';
const targets = busTargets();

describe.each(targets)('promotion from copies ($name)', (target) => {
  const track = cleanupAfterEach();
  const pair = (id: string, options = {}) => memberPair(target, track, id, options);

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
    const { primary, secondary, shard, s, crash } = await pair('crashed');
    for (let i = 1; i <= 3; i++) await s.send(C, `k${i}`, { type: 'ADD', by: 10 });
    await applied(secondary, shard, primary.replicaStatus(shard).secondaries[0]!.seq);
    // Its bus gone at once, as a process killed: nobody hands the shard off.
    await crash();
    expect(await sendUntilServed(s, 'k4', 10)).toMatchObject({ ok: true, seq: 4 });
    expect(await s.read({ client: C })).toMatchObject({ ok: true, seq: 4, document: { n: 40 } });
    expect(secondary.adoptions.adopted).toBe(1);
  });

  it("UNSAFE.reloadOnPromotion: the crashed primary's successor loads the session instead, with the same outcome", async () => {
    const { primary, secondary, shard, s, crash } = await pair('reloaded', { [UNSAFE]: { reloadOnPromotion: true } });
    for (let i = 1; i <= 3; i++) await s.send(C, `r${i}`, { type: 'ADD', by: 10 });
    await applied(secondary, shard, primary.replicaStatus(shard).secondaries[0]!.seq);
    await crash();
    // Loaded from the journal, the retry of the last command is still recognised.
    expect(await sendUntilServed(s, 'r3', 10)).toMatchObject({ ok: true, seq: 3, duplicate: true });
    expect(await s.send(C, 'r4', { type: 'ADD', by: 10 })).toMatchObject({ ok: true, seq: 4 });
    expect(await s.read({ client: C })).toMatchObject({ ok: true, seq: 4, document: { n: 40 } });
    expect(secondary.adoptions).toEqual({ adopted: 0, refused: 0 });
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
