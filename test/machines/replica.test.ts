import { describe, expect, it } from 'vitest';
import { createActor } from 'xstate';
import { AHEAD_KEPT, appliedBy, replicaMachine, synchronizedReplicas } from '../../machines/replica.js';
import { NO_SAFEGUARDS, type View } from '../../machines/view.js';

/** Shard 0 with `p` as primary and `s` as its secondary. */
const view: View = {
  viewId: 1,
  members: [
    { id: 'p', zone: 'a', promotable: true, joined: 1 },
    { id: 's', zone: 'b', promotable: true, joined: 2 },
  ],
  leader: 'p',
  replicas: 1,
  shardCount: 1,
  shards: [{ primary: 'p', replicas: ['s'], state: 'ACTIVE', next: null, epoch: 1 }],
  transitional: false,
  possibleDataLoss: [],
  safeguards: NO_SAFEGUARDS,
};

function primary() {
  const actor = createActor(replicaMachine, { input: { shard: 0, self: 'p', sessionTimeout: 500, now: 0 } }).start();
  actor.send({ type: 'ROLE', view, now: 0 });
  const ctx = () => actor.getSnapshot().context;
  return { actor, ctx, applied: (seq: number) => appliedBy(ctx(), seq) };
}

/** A secondary's progress as its primary credits it: never past what the primary knows is journaled. */
describe('replica machine: reported progress', () => {
  it('a forged report of a huge sequence keeps the secondary alive but never counts it caught up', () => {
    const p = primary();
    p.actor.send({ type: 'JOURNALED', seq: 10, now: 1 });
    p.actor.send({ type: 'REPORT', worker: 's', seq: 1e12, now: 2 });
    expect(p.ctx().followers['s']).toMatchObject({ seq: 0, ahead: [1e12] });
    expect(p.ctx().reportsAhead).toBe(1);
    expect(synchronizedReplicas(p.ctx())).toEqual(['s']); // heard from: liveness is not progress
    expect(p.applied(10)).toBe(0);
    // Later appends are not covered by it either.
    for (let seq = 11; seq <= 20; seq++) {
      p.actor.send({ type: 'JOURNALED', seq, now: seq });
      expect(p.applied(seq)).toBe(0);
    }
    // Positive control: the real report of what it applied counts, up to that and no further.
    p.actor.send({ type: 'REPORT', worker: 's', seq: 20, now: 21 });
    expect(p.ctx().followers['s']?.seq).toBe(20);
    expect(p.applied(20)).toBe(1);
    p.actor.send({ type: 'JOURNALED', seq: 21, now: 22 });
    expect(p.applied(21)).toBe(0);
  });

  it('a report that overtakes its append’s ack is credited once the ack arrives', () => {
    const p = primary();
    p.actor.send({ type: 'JOURNALED', seq: 4, now: 1 });
    p.actor.send({ type: 'REPORT', worker: 's', seq: 4, now: 2 });
    p.actor.send({ type: 'REPORT', worker: 's', seq: 7, now: 3 }); // the secondary applied 7 before p heard its ack
    expect(p.ctx().followers['s']).toMatchObject({ seq: 4, ahead: [7] });
    p.actor.send({ type: 'JOURNALED', seq: 7, now: 4 });
    expect(p.ctx().followers['s']).toMatchObject({ seq: 7, ahead: [] });
    expect(p.applied(7)).toBe(1);
  });

  it('claims beyond the journal are bounded: the lowest few are kept, a flood does not grow them', () => {
    const p = primary();
    for (let i = 0; i < 100; i++) p.actor.send({ type: 'REPORT', worker: 's', seq: 1_000 - i, now: i });
    expect(p.ctx().followers['s']?.ahead).toHaveLength(AHEAD_KEPT);
    expect(p.ctx().followers['s']?.ahead[0]).toBe(901);
    expect(p.ctx().reportsAhead).toBe(100);
    // Reports from workers that are not its secondaries are not taken at all.
    p.actor.send({ type: 'REPORT', worker: 'x', seq: 1, now: 101 });
    expect(p.ctx().followers['x']).toBeUndefined();
  });

  it('a secondary heard only before this primary journaled anything is credited with its first append', () => {
    const p = primary();
    // A new primary after failover: the secondary applied the old primary's entries up to 50.
    p.actor.send({ type: 'REPORT', worker: 's', seq: 50, now: 1 });
    expect(p.ctx().followers['s']?.seq).toBe(0);
    p.actor.send({ type: 'JOURNALED', seq: 53, now: 2 });
    expect(p.ctx().followers['s']?.seq).toBe(50);
    expect(p.applied(53)).toBe(0);
    p.actor.send({ type: 'REPORT', worker: 's', seq: 53, now: 3 });
    expect(p.applied(53)).toBe(1);
  });
});
