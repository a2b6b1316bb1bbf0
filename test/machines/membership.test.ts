import { describe, expect, it } from 'vitest';
import { createActor } from 'xstate';
import { membershipMachine, type Heartbeat, type MembershipEffect } from '../../machines/membership.js';
import { membershipConfig } from '../../machines/membershipConfig.js';
import { NO_SAFEGUARDS, type View } from '../../machines/view.js';
import { deafAfter, nextDue } from '../../machines/heartbeats.js';
import { planningKey, planView } from '../../machines/viewPlanning.js';

const CONFIG = membershipConfig({ heartbeatInterval: 100, sessionTimeout: 500, replicas: 1, shardCount: 8 });

/**
 * One member's machine, driven by hand: every effect it asks for is recorded, nothing is carried out.
 * Every tick says something arrived since the last one (as its own heartbeats come back), unless `hears` is false.
 */
function member(id: string, startedAt = 0, { hears = true }: { hears?: boolean } = {}) {
  const actor = createActor(membershipMachine, {
    input: { self: { id, zone: 'z', promotable: true, startedAt }, config: CONFIG },
  });
  if (hears) {
    const send = actor.send.bind(actor);
    actor.send = (event) => {
      send(event.type === 'TICK' ? { heard: true, ...event } : event);
    };
  }
  const effects: MembershipEffect[] = [];
  actor.on('*', (e) => effects.push(e));
  actor.start();
  const writes = (): View[] => effects.flatMap((e) => (e.type === 'writeView' ? [e.view] : []));
  return { actor, effects, writes, ctx: () => actor.getSnapshot().context, state: () => actor.getSnapshot().value };
}

/** Ticks every heartbeat interval up to `now`, as the host does: a long gap would read as this process having stalled. */
function tickTo(m: ReturnType<typeof member>, now: number): void {
  for (let t = m.ctx().lastTick + CONFIG.heartbeatInterval; t < now; t += CONFIG.heartbeatInterval)
    m.actor.send({ type: 'TICK', now: t });
  m.actor.send({ type: 'TICK', now });
}

function hb(id: string, patch: Partial<Heartbeat> = {}): Heartbeat {
  return { id, zone: 'z', promotable: true, status: 'joining', viewId: 0, serving: [], startedAt: 0, ...patch };
}

describe('membership machine', () => {
  it('the first worker, finding no view, writes one with itself as leader holding every shard', () => {
    const a = member('a');
    a.actor.send({ type: 'START', now: 0 });
    expect(a.writes()).toHaveLength(0); // nobody writes before the view entry has been read
    a.actor.send({ type: 'VIEW', view: null, revision: 0, now: 1 });
    const [first] = a.writes();
    expect(first).toMatchObject({ viewId: 1, leader: 'a', transitional: false, members: [{ id: 'a', joined: 1 }] });
    expect(first!.shards.every((s) => s.primary === 'a' && s.state === 'ACTIVE')).toBe(true);
    expect(a.effects.find((e) => e.type === 'writeView')).toMatchObject({ revision: 0 }); // create, not update
    a.actor.send({ type: 'WRITE_DONE', view: first!, revision: 1, now: 2 });
    expect(a.state()).toBe('member');
  });

  it("one write at a time: a lost compare-and-set waits for the winner's view before planning again", () => {
    const a = member('a');
    a.actor.send({ type: 'START', now: 0 });
    a.actor.send({ type: 'VIEW', view: null, revision: 0, now: 1 });
    a.actor.send({ type: 'TICK', now: 100 });
    a.actor.send({ type: 'TICK', now: 200 });
    expect(a.writes()).toHaveLength(1);
    a.actor.send({ type: 'WRITE_FAILED', now: 250 });
    // Someone else's view arrives: a joins through it instead of writing its own.
    const theirs: View = {
      viewId: 1,
      members: [{ id: 'b', zone: 'z', promotable: true, joined: 1 }],
      leader: 'b',
      replicas: 1,
      shardCount: 8,
      shards: Array.from({ length: 8 }, () => ({
        primary: 'b',
        replicas: [],
        state: 'ACTIVE' as const,
        next: null,
        epoch: 1,
      })),
      transitional: false,
      possibleDataLoss: [],
      safeguards: NO_SAFEGUARDS,
    };
    a.actor.send({ type: 'VIEW', view: theirs, revision: 7, now: 260 });
    a.actor.send({ type: 'TICK', now: 300 });
    expect(a.writes()).toHaveLength(1);
    expect(a.ctx().view?.leader).toBe('b');
    expect(a.state()).toBe('joining');
  });

  it('the leader admits a joiner it hears from, and drops a member silent for the session timeout (transitional first)', () => {
    const a = member('a');
    a.actor.send({ type: 'START', now: 0 });
    a.actor.send({ type: 'VIEW', view: null, revision: 0, now: 0 });
    a.actor.send({ type: 'WRITE_DONE', view: a.writes()[0]!, revision: 1, now: 0 });
    a.actor.send({ type: 'HEARTBEAT', heartbeat: hb('b', { startedAt: 5 }), now: 10 });
    const admit = a.writes()[1]!;
    expect(admit.members.map((m) => m.id)).toEqual(['a', 'b']);
    expect(admit.transitional).toBe(false);
    a.actor.send({ type: 'WRITE_DONE', view: admit, revision: 2, now: 11 });
    // b speaks up once more, then goes silent.
    a.actor.send({ type: 'HEARTBEAT', heartbeat: hb('b', { status: 'member', viewId: admit.viewId }), now: 100 });
    const before = a.writes().length;
    tickTo(a, 599);
    expect(a.writes().length).toBe(before); // 499 ms of silence: not yet suspected
    tickTo(a, 600);
    const transitional = a.writes().at(-1)!;
    expect(transitional).toMatchObject({ transitional: true, members: [{ id: 'a' }] });
    expect(transitional.shards.flatMap((s) => [s.primary, s.next, ...s.replicas]).filter((w) => w === 'b')).toEqual([]);
    a.actor.send({ type: 'WRITE_DONE', view: transitional, revision: 3, now: 601 });
    const regular = a.writes().at(-1)!;
    expect(regular.transitional).toBe(false);
    expect(regular.shards.every((s) => s.primary === 'a' && s.state === 'ACTIVE')).toBe(true);
    expect(regular.viewId).toBe(transitional.viewId + 1);
  });

  it('nextDue: the next heartbeat, unless a peer falls silent or a blind wait ends first', () => {
    const a = member('a');
    a.actor.send({ type: 'START', now: 0 });
    a.actor.send({ type: 'VIEW', view: null, revision: 0, now: 0 });
    a.actor.send({ type: 'WRITE_DONE', view: a.writes()[0]!, revision: 1, now: 0 });
    expect(nextDue(a.ctx())).toBe(CONFIG.heartbeatInterval); // the heartbeat sent at START
    // A peer last heard at 450 falls silent at 950, before the heartbeat due at 1000.
    a.actor.send({ type: 'HEARTBEAT', heartbeat: hb('b', { startedAt: 5 }), now: 450 });
    a.actor.send({ type: 'WRITE_DONE', view: a.writes()[1]!, revision: 2, now: 451 });
    tickTo(a, 900);
    expect(a.ctx().lastBeat).toBe(900);
    expect(nextDue(a.ctx())).toBe(950);
    // Ticking exactly then finds b gone (silent for the whole session timeout), not a tick later.
    const before = a.writes().length;
    a.actor.send({ type: 'TICK', now: 949 });
    expect(a.writes().length).toBe(before);
    a.actor.send({ type: 'TICK', now: 950 });
    expect(a.writes().at(-1)).toMatchObject({ transitional: true, members: [{ id: 'a' }] });
    // Peers already counted out no longer set a deadline.
    expect(nextDue(a.ctx())).toBe(a.ctx().lastBeat + CONFIG.heartbeatInterval);
  });

  it('the plan is made again only when something it reads changed: a repeated heartbeat changes nothing, a joiner does', () => {
    const a = member('a');
    a.actor.send({ type: 'START', now: 0 });
    a.actor.send({ type: 'VIEW', view: null, revision: 0, now: 0 });
    a.actor.send({ type: 'WRITE_DONE', view: a.writes()[0]!, revision: 1, now: 0 });
    tickTo(a, 300);
    const settled = a.ctx().settledPlan;
    expect(settled).not.toBeNull();
    expect(planView(a.ctx())).toBeNull();
    tickTo(a, 600);
    expect(a.ctx().settledPlan).toBe(settled);
    a.actor.send({ type: 'HEARTBEAT', heartbeat: hb('b', { startedAt: 5 }), now: 610 });
    expect(
      a
        .writes()
        .at(-1)!
        .members.map((m) => m.id),
    ).toEqual(['a', 'b']);
    expect(planningKey(a.ctx())).not.toBe(settled);
  });

  describe('unhealthy (its health monitor says so at a tick)', () => {
    /** a leads, b a member heard at `bAt` saying `patch`. */
    function pair(patch: Partial<Heartbeat> = {}, bAt = 150) {
      const a = member('a');
      a.actor.send({ type: 'START', now: 0 });
      a.actor.send({ type: 'VIEW', view: null, revision: 0, now: 0 });
      a.actor.send({ type: 'WRITE_DONE', view: a.writes()[0]!, revision: 1, now: 0 });
      a.actor.send({ type: 'HEARTBEAT', heartbeat: hb('b', { startedAt: 5 }), now: 10 });
      const admit = a.writes()[1]!;
      a.actor.send({ type: 'WRITE_DONE', view: admit, revision: 2, now: 11 });
      tickTo(a, 100);
      a.actor.send({
        type: 'HEARTBEAT',
        heartbeat: hb('b', { status: 'member', viewId: admit.viewId, startedAt: 5, ...patch }),
        now: bAt,
      });
      return a;
    }

    it('with a healthy member to take over it leaves: its shards go, and once out of the view it is left as unhealthy (to rejoin)', () => {
      const a = pair();
      a.actor.send({ type: 'TICK', now: 200, unhealthy: 'commits-failing' });
      expect(a.state()).toBe('leaving');
      expect(a.effects).toContainEqual({ type: 'steppingDown', reason: 'commits-failing' });
      const beat = a.effects.filter((e) => e.type === 'heartbeat').at(-1);
      expect(beat).toMatchObject({ heartbeat: { status: 'leaving', unhealthy: 'commits-failing' } });
      // As leader it hands every shard to b (planned), then writes itself out.
      let revision = 3;
      for (let now = 210; a.state() !== 'left' && now < 5_000; now += 50) {
        const last = a.writes().at(-1)!;
        if (a.ctx().writing) a.actor.send({ type: 'WRITE_DONE', view: last, revision: revision++, now });
        const v = a.ctx().view!;
        a.actor.send({
          type: 'HEARTBEAT',
          heartbeat: hb('b', {
            status: 'member',
            viewId: v.viewId,
            startedAt: 5,
            serving: v.shards.flatMap((s, i) => (s.primary === 'b' ? [i] : [])),
          }),
          now,
        });
        a.actor.send({
          type: 'APPLIED',
          viewId: v.viewId,
          serving: v.shards.flatMap((s, i) => (s.primary === 'a' && s.state === 'ACTIVE' ? [i] : [])),
          now,
        });
        a.actor.send({ type: 'TICK', now: now + 1, unhealthy: 'commits-failing' });
      }
      expect(a.state()).toBe('left');
      expect(a.effects.at(-1)).toEqual({ type: 'left', reason: 'unhealthy' });
      const final = a.ctx().view!;
      expect(final.members.map((m) => m.id)).toEqual(['b']);
      expect(final.shards.every((s) => s.primary === 'b')).toBe(true);
    });

    it('control: with nobody healthy to take over (b unhealthy too, silent, or never heard) it stays, saying it is unhealthy', () => {
      for (const a of [pair({ unhealthy: 'commits-failing' }), pair({}, -1_000), pair({ viewId: 0 })]) {
        a.actor.send({ type: 'TICK', now: 200, unhealthy: 'commits-failing' });
        expect(a.state()).toBe('member');
        expect(a.effects.some((e) => e.type === 'steppingDown')).toBe(false);
        a.actor.send({ type: 'TICK', now: 300, unhealthy: 'commits-failing' });
        const beat = a.effects.filter((e) => e.type === 'heartbeat').at(-1);
        expect(beat).toMatchObject({ heartbeat: { status: 'member', unhealthy: 'commits-failing' } });
      }
      // Healthy again: its heartbeats say nothing of it.
      const a = pair({ unhealthy: 'unresponsive' });
      a.actor.send({ type: 'TICK', now: 200, unhealthy: 'commits-failing' });
      a.actor.send({ type: 'TICK', now: 300 });
      const beat = a.effects.filter((e) => e.type === 'heartbeat').at(-1) as { heartbeat: Heartbeat };
      expect(beat.heartbeat.unhealthy).toBeUndefined();
      // And a healthy tick never steps down.
      const b = pair();
      for (let t = 200; t < 1_000; t += 100) b.actor.send({ type: 'TICK', now: t });
      expect(b.state()).toBe('member');
    });
  });

  it('a member that hears nothing steps down at deafAfter: no more heartbeats, and, leader, writes no view from the silence', () => {
    // CONFIG: heartbeat 100, session timeout 500: a stall goes unnoticed up to 250 ms; deaf after 450.
    expect(deafAfter(CONFIG)).toBe(450);
    const a = member('a', 0, { hears: false });
    a.actor.send({ type: 'START', now: 0 });
    a.actor.send({ type: 'VIEW', view: null, revision: 0, now: 0 });
    a.actor.send({ type: 'WRITE_DONE', view: a.writes()[0]!, revision: 1, now: 0 });
    a.actor.send({ type: 'HEARTBEAT', heartbeat: hb('b', { startedAt: 5 }), now: 10 });
    a.actor.send({ type: 'WRITE_DONE', view: a.writes()[1]!, revision: 2, now: 11 });
    a.actor.send({ type: 'TICK', now: 100, heard: true });
    const beats = a.effects.filter((e) => e.type === 'heartbeat').length;
    const writes = a.writes().length;
    // From here on nothing arrives. b's silence reaches the session timeout at 510: a does not drop it.
    for (const now of [200, 300, 400, 500, 510]) a.actor.send({ type: 'TICK', now });
    expect(a.writes().length).toBe(writes);
    expect(nextDue(a.ctx())).toBe(550);
    a.actor.send({ type: 'TICK', now: 549 });
    expect(a.state()).toBe('member');
    a.actor.send({ type: 'TICK', now: 550 });
    expect(a.state()).toBe('left');
    expect(a.effects.at(-1)).toEqual({ type: 'left', reason: 'deaf' });
    // It beat while it could still have been heard, and no more once it stepped down.
    const after = a.effects.filter((e) => e.type === 'heartbeat').length;
    a.actor.send({ type: 'TICK', now: 700 });
    expect(a.effects.filter((e) => e.type === 'heartbeat').length).toBe(after);
    expect(after).toBeGreaterThan(beats);
    expect(a.writes().length).toBe(writes);
  });

  it('control: a member stopped for a while (one long tick gap) is not deaf when it wakes, and one that hears stays', () => {
    const a = member('a', 0, { hears: false });
    a.actor.send({ type: 'START', now: 0 });
    a.actor.send({ type: 'VIEW', view: null, revision: 0, now: 0 });
    a.actor.send({ type: 'WRITE_DONE', view: a.writes()[0]!, revision: 1, now: 0 });
    a.actor.send({ type: 'TICK', now: 100, heard: true });
    // Stopped from 100 to 2000: what it would have heard waits behind the tick.
    a.actor.send({ type: 'TICK', now: 2_000 });
    expect(a.state()).toBe('member');
    // Then only its own heartbeats come back (a lone member): that is hearing.
    for (let t = 2_100; t <= 5_000; t += 100) a.actor.send({ type: 'TICK', now: t, heard: true });
    expect(a.state()).toBe('member');
    expect(a.effects.some((e) => e.type === 'left')).toBe(false);
  });

  it.each([
    [[] as string[], 'a'],
    [['0/a'], 'c'],
  ])(
    'when a primary dies, its shard goes to a secondary its last heartbeat called synchronized (not synchronized: %j -> %s)',
    (behind, expected) => {
      const m = (id: string, joined: number) => ({ id, zone: 'z', promotable: true, joined });
      const view: View = {
        viewId: 5,
        members: [m('a', 1), m('b', 2), m('c', 3)],
        leader: 'a',
        replicas: 2,
        shardCount: 2,
        shards: [
          { primary: 'b', replicas: ['a', 'c'], state: 'ACTIVE', next: null, epoch: 1 },
          { primary: 'c', replicas: ['a', 'b'], state: 'ACTIVE', next: null, epoch: 1 },
        ],
        transitional: false,
        possibleDataLoss: [],
        safeguards: NO_SAFEGUARDS,
      };
      const a = member('a');
      a.actor.send({ type: 'START', now: 0 });
      a.actor.send({ type: 'VIEW', view, revision: 5, now: 0 });
      a.actor.send({
        type: 'HEARTBEAT',
        heartbeat: hb('b', { status: 'member', viewId: 5, serving: [0], notSynchronized: behind }),
        now: 10,
      });
      a.actor.send({ type: 'HEARTBEAT', heartbeat: hb('c', { status: 'member', viewId: 5, serving: [1] }), now: 10 });
      // b falls silent; c keeps speaking.
      a.actor.send({ type: 'HEARTBEAT', heartbeat: hb('c', { status: 'member', viewId: 5, serving: [1] }), now: 400 });
      tickTo(a, 600);
      const transitional = a.writes().at(-1)!;
      expect(transitional.transitional).toBe(true);
      a.actor.send({ type: 'WRITE_DONE', view: transitional, revision: 6, now: 601 });
      const regular = a.writes().at(-1)!;
      expect(regular.shards[0]).toMatchObject({ primary: expected, state: 'ACTIVE', epoch: 2 });
    },
  );

  it('a leader that was stopped (one long tick gap) counts silence afresh instead of deposing everyone', () => {
    const a = member('a');
    a.actor.send({ type: 'START', now: 0 });
    a.actor.send({ type: 'VIEW', view: null, revision: 0, now: 0 });
    a.actor.send({ type: 'WRITE_DONE', view: a.writes()[0]!, revision: 1, now: 0 });
    a.actor.send({ type: 'HEARTBEAT', heartbeat: hb('b', { startedAt: 5 }), now: 10 });
    a.actor.send({ type: 'WRITE_DONE', view: a.writes()[1]!, revision: 2, now: 11 });
    a.actor.send({ type: 'HEARTBEAT', heartbeat: hb('b', { status: 'member', viewId: 2 }), now: 100 });
    tickTo(a, 300);
    const before = a.writes().length;
    // Stopped from 300 to 1,300: the timer fires before b's queued heartbeats are read.
    a.actor.send({ type: 'TICK', now: 1_300 });
    expect(a.writes().length).toBe(before);
    a.actor.send({ type: 'HEARTBEAT', heartbeat: hb('b', { status: 'member', viewId: 2 }), now: 1_300 });
    tickTo(a, 1_799);
    expect(a.writes().length).toBe(before);
    // Silence counted while running still deposes: b has said nothing since 1,300.
    tickTo(a, 1_800);
    expect(a.writes().at(-1)).toMatchObject({ transitional: true, members: [{ id: 'a' }] });
  });

  it('a member that is not the leader never writes', () => {
    const b = member('b', 5);
    b.actor.send({ type: 'START', now: 0 });
    const view: View = {
      viewId: 3,
      members: [{ id: 'a', zone: 'z', promotable: true, joined: 1 }],
      leader: 'a',
      replicas: 1,
      shardCount: 8,
      shards: Array.from({ length: 8 }, () => ({
        primary: 'a',
        replicas: [],
        state: 'ACTIVE' as const,
        next: null,
        epoch: 1,
      })),
      transitional: false,
      possibleDataLoss: [],
      safeguards: NO_SAFEGUARDS,
    };
    b.actor.send({ type: 'VIEW', view, revision: 3, now: 0 });
    for (let t = 100; t < 500; t += 100) {
      b.actor.send({ type: 'HEARTBEAT', heartbeat: hb('a', { status: 'member', viewId: 3 }), now: t });
      b.actor.send({ type: 'TICK', now: t });
    }
    expect(b.writes()).toEqual([]);
    // a falls silent: b, the only live worker, takes over: survivors first (none of the old view), then itself.
    tickTo(b, 1_000);
    expect(b.writes()[0]).toMatchObject({ transitional: true, members: [], leader: 'b' });
  });

  it('a leaving leader hands its shards to the next member, then goes, and the pen passes on', () => {
    const a = member('a');
    a.actor.send({ type: 'START', now: 0 });
    a.actor.send({ type: 'VIEW', view: null, revision: 0, now: 0 });
    a.actor.send({ type: 'WRITE_DONE', view: a.writes()[0]!, revision: 1, now: 0 });
    a.actor.send({ type: 'APPLIED', viewId: 1, serving: [0, 1, 2, 3, 4, 5, 6, 7], now: 1 });
    a.actor.send({ type: 'HEARTBEAT', heartbeat: hb('b', { startedAt: 5 }), now: 2 });
    const two = a.writes().at(-1)!;
    a.actor.send({ type: 'WRITE_DONE', view: two, revision: 2, now: 3 });
    a.actor.send({ type: 'LEAVE', now: 10 });
    const handing = a.writes().at(-1)!;
    expect(handing.shards.filter((s) => s.primary === 'a').every((s) => s.state === 'PENDING' && s.next === 'b')).toBe(
      true,
    );
    a.actor.send({ type: 'WRITE_DONE', view: handing, revision: 3, now: 11 });
    // a lets go of every shard it was handing off; the next plan completes the hand-offs and lets a go.
    a.actor.send({ type: 'APPLIED', viewId: handing.viewId, serving: [], now: 12 });
    const last = a.writes().at(-1)!;
    expect(last.members.map((m) => m.id)).toEqual(['b']);
    expect(last.leader).toBe('b');
    expect(last.shards.every((s) => s.primary === 'b' && s.state === 'ACTIVE')).toBe(true);
    a.actor.send({ type: 'WRITE_DONE', view: last, revision: 4, now: 13 });
    expect(a.state()).toBe('left');
    expect(a.effects.at(-1)).toEqual({ type: 'left', reason: 'left' });
  });

  it('several forced failovers of one shard folded into one view raise its epoch once: an epoch never passes the view id', () => {
    const a = member('a');
    a.actor.send({ type: 'START', now: 0 });
    a.actor.send({ type: 'VIEW', view: null, revision: 0, now: 0 });
    a.actor.send({ type: 'WRITE_DONE', view: a.writes().at(-1)!, revision: 1, now: 1 });
    a.actor.send({ type: 'HEARTBEAT', heartbeat: hb('b', { startedAt: 5 }), now: 2 });
    const two = a.writes().at(-1)!;
    a.actor.send({ type: 'WRITE_DONE', view: two, revision: 2, now: 3 });
    const shard = two.shards.findIndex((x) => x.primary === 'a' && x.state === 'ACTIVE');
    // A joiner makes a write go out; two forced moves of the shard arrive while it is out, and fold into the next view.
    a.actor.send({ type: 'HEARTBEAT', heartbeat: hb('c', { startedAt: 6 }), now: 4 });
    const three = a.writes().at(-1)!;
    for (const id of ['m1', 'm2']) a.actor.send({ type: 'MOVE', request: { id, shard, to: 'b', force: true }, now: 5 });
    a.actor.send({ type: 'HEARTBEAT', heartbeat: hb('b', { status: 'member', viewId: 3, startedAt: 5 }), now: 6 });
    a.actor.send({ type: 'WRITE_DONE', view: three, revision: 3, now: 7 });
    const four = a.writes().at(-1)!;
    expect(four.viewId).toBe(4);
    expect(four.shards[shard]).toMatchObject({ primary: 'b', epoch: three.shards[shard]!.epoch + 1 });
    expect(Math.max(...four.shards.map((x) => x.epoch))).toBeLessThanOrEqual(four.viewId);
  });

  describe('a view key that holds no newer view', () => {
    /** A lone leader with view 1 written at revision 1. */
    function leader() {
      const a = member('a');
      a.actor.send({ type: 'START', now: 0 });
      a.actor.send({ type: 'VIEW', view: null, revision: 0, now: 1 });
      const [first] = a.writes();
      a.actor.send({ type: 'WRITE_DONE', view: first!, revision: 1, now: 2 });
      expect(a.state()).toBe('member');
      return { a, first: first! };
    }

    it('junk or a delete at the key: the leader writes back the view it knows, on the new revision', () => {
      const { a, first } = leader();
      a.actor.send({ type: 'VIEW_SPOILED', revision: 2, now: 3 });
      expect(a.writes()).toHaveLength(2);
      expect(a.writes()[1]).toEqual(first);
      expect(a.effects.filter((e) => e.type === 'writeView').at(-1)).toMatchObject({ revision: 2 });
      // Its own repair comes back: the key's new revision is taken, and nothing more is written.
      a.actor.send({ type: 'WRITE_DONE', view: first, revision: 3, now: 4 });
      a.actor.send({ type: 'VIEW', view: first, revision: 3, now: 5 });
      expect(a.ctx()).toMatchObject({ revision: 3, repair: false, writing: false });
      tickTo(a, 300);
      expect(a.writes()).toHaveLength(2);
      // A spoil older than what it knows changes nothing.
      a.actor.send({ type: 'VIEW_SPOILED', revision: 2, now: 301 });
      expect(a.writes()).toHaveLength(2);
    });

    it('an older view written over the newest: the leader writes the newest back', () => {
      const { a, first } = leader();
      const older: View = { ...first, viewId: 0 };
      a.actor.send({ type: 'VIEW', view: older, revision: 2, now: 3 });
      expect(a.ctx().view?.viewId).toBe(1);
      expect(a.writes().at(-1)).toEqual(first);
      expect(a.effects.filter((e) => e.type === 'writeView').at(-1)).toMatchObject({ revision: 2 });
    });

    it('a member that does not lead takes the revision and leaves the repair to the leader', () => {
      const { first } = leader();
      const b = member('b', 5);
      b.actor.send({ type: 'START', now: 10 });
      const withB: View = {
        ...first,
        viewId: 2,
        members: [...first.members, { id: 'b', zone: 'z', promotable: true, joined: 2 }],
      };
      b.actor.send({ type: 'HEARTBEAT', heartbeat: hb('a', { status: 'member', viewId: 2, startedAt: 0 }), now: 10 });
      b.actor.send({ type: 'VIEW', view: withB, revision: 3, now: 11 });
      expect(b.state()).toBe('member');
      b.actor.send({ type: 'VIEW_SPOILED', revision: 4, now: 12 });
      expect(b.ctx().revision).toBe(4);
      expect(b.writes()).toHaveLength(0);
    });

    it('a fresh worker that finds junk and knows no view waits to hear members, then numbers its first view above the key', () => {
      const c = member('c', 0);
      c.actor.send({ type: 'START', now: 0 });
      // The key is at revision 57 and holds nothing readable: a cluster's history may be behind it.
      c.actor.send({ type: 'VIEW_SPOILED', revision: 57, now: 1 });
      tickTo(c, 400);
      expect(c.writes()).toHaveLength(0);
      tickTo(c, 501);
      const [first] = c.writes();
      // Every view id and epoch ever written at this key is at most its revision: this one is above them all.
      expect(first).toMatchObject({ viewId: 58, leader: 'c', members: [{ id: 'c' }] });
      expect(first!.shards.every((s) => s.primary === 'c' && s.state === 'ACTIVE' && s.epoch === 58)).toBe(true);
      expect(c.effects.filter((e) => e.type === 'writeView').at(-1)).toMatchObject({ revision: 57 });
      c.actor.send({ type: 'WRITE_DONE', view: first!, revision: 58, now: 502 });
      expect(c.state()).toBe('member');
      // The next view goes on from there, one at a time.
      c.actor.send({ type: 'HEARTBEAT', heartbeat: hb('d', { startedAt: 5 }), now: 503 });
      expect(c.writes().at(-1)).toMatchObject({ viewId: 59 });
    });

    it('a fresh worker blind to the view leaves it to a live member that started before it; that member’s repair is taken', () => {
      const { a, first } = leader();
      const c = member('c', 100);
      c.actor.send({ type: 'START', now: 100 });
      c.actor.send({ type: 'VIEW_SPOILED', revision: 2, now: 101 });
      for (let t = 150; t <= 1_000; t += 50) {
        c.actor.send({ type: 'HEARTBEAT', heartbeat: hb('a', { status: 'member', viewId: 1, startedAt: 0 }), now: t });
        c.actor.send({ type: 'TICK', now: t });
      }
      expect(c.writes()).toHaveLength(0);
      // a repairs the key; c takes the view and joins through it.
      a.actor.send({ type: 'VIEW_SPOILED', revision: 2, now: 1_001 });
      expect(a.writes().at(-1)).toEqual(first);
      c.actor.send({ type: 'VIEW', view: first, revision: 3, now: 1_002 });
      expect(c.ctx()).toMatchObject({ view: first, revision: 3, blindSince: null });
      expect(c.state()).toBe('joining');
    });
  });
});
