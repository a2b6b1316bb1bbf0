/**
 * The safeguards against cascading failover, on the membership machine
 * driven by hand on virtual time: the quota of members dropped for silence
 * and the operator's reset, the minimum of live members, the last copy,
 * and the brake on rebalancing while the membership keeps changing. Every
 * effect the leader asks for is recorded; its writes are acknowledged at
 * once, as a store that always answers would.
 */
import { describe, expect, it } from 'vitest';
import { createActor } from 'xstate';
import { nextDue } from '../../machines/heartbeats.js';
import { membershipMachine, type Heartbeat, type MembershipEffect } from '../../machines/membership.js';
import { membershipConfig, type MembershipSettings } from '../../machines/membershipConfig.js';
import type { SafeguardDecision } from '../../machines/safeguards.js';
import { NO_SAFEGUARDS, type Member, type View } from '../../machines/view.js';

const HB = 100;
const TIMEOUT = 500;

type Settings = Omit<MembershipSettings, 'shardCount' | 'heartbeatInterval' | 'sessionTimeout'>;

function configOf(settings: Settings = {}, shardCount = 8) {
  return membershipConfig({ heartbeatInterval: HB, sessionTimeout: TIMEOUT, replicas: 1, shardCount, ...settings });
}

/**
 * A cluster seen from one member's machine (`self`, the leader unless the
 * view says otherwise): the others are heartbeats it is sent while they
 * "speak", every write is acknowledged at once, and each view's shard
 * roles are applied at once.
 */
function clusterOf(settings: Settings = {}, self: { id?: string; promotable?: boolean; shardCount?: number } = {}) {
  const config = configOf(settings, self.shardCount);
  const id = self.id ?? 'a';
  const actor = createActor(membershipMachine, {
    input: { self: { id, zone: 'z', promotable: self.promotable ?? true, startedAt: 0 }, config },
  });
  const effects: MembershipEffect[] = [];
  actor.on('*', (e) => effects.push(e));
  actor.start();
  const ctx = () => actor.getSnapshot().context;
  let t = 0;
  let revision = 0;
  /** Who speaks, with what it says beyond its id. */
  const speaking = new Map<string, Partial<Heartbeat>>();
  const started = new Map<string, number>();
  const view = (): View => ctx().view!;
  const writes = (): View[] => effects.flatMap((e) => (e.type === 'writeView' ? [e.view] : []));
  const decisions = (): SafeguardDecision[] => effects.flatMap((e) => (e.type === 'safeguard' ? [e.decision] : []));
  /** Acknowledges every write out, and applies each view written (this member lets go of what it hands off). */
  const flush = (): void => {
    for (let n = 0; ctx().writing; n++) {
      if (n > 50) throw new Error('the leader keeps writing');
      const written = writes().at(-1)!;
      actor.send({ type: 'WRITE_DONE', view: written, revision: ++revision, now: t });
      const serving = written.shards.flatMap((s, i) => (s.primary === id && s.state === 'ACTIVE' ? [i] : []));
      actor.send({ type: 'APPLIED', viewId: written.viewId, serving, now: t });
    }
  };
  const speakOnce = (peer: string): void => {
    const inView = ctx().view?.members.some((m) => m.id === peer) === true;
    const heartbeat: Heartbeat = {
      id: peer,
      zone: 'z',
      promotable: true,
      status: inView ? 'member' : 'joining',
      viewId: ctx().view?.viewId ?? 0,
      serving: [],
      startedAt: started.get(peer)!,
      ...speaking.get(peer),
    };
    actor.send({ type: 'HEARTBEAT', heartbeat, now: t });
  };
  /** One heartbeat interval passes: the speakers speak, the machine ticks; writes are left out. */
  const step = (to = t + HB): void => {
    t = to;
    for (const peer of speaking.keys()) speakOnce(peer);
    // The leader hears the server (its own heartbeats come back), whoever else falls silent.
    actor.send({ type: 'TICK', now: t, heard: true });
  };
  /** Time passes to `to`, a heartbeat interval at a time, every write acknowledged. */
  const until = (to: number): void => {
    while (t < to) {
      step(Math.min(to, t + HB));
      flush();
    }
  };
  const speak = (peer: string, says: Partial<Heartbeat> = {}): void => {
    if (!started.has(peer)) started.set(peer, started.size + 1);
    speaking.set(peer, says);
    speakOnce(peer);
    flush();
  };
  const silence = (...peers: string[]): void => peers.forEach((p) => speaking.delete(p));
  const ids = (): string[] => view().members.map((m) => m.id);
  const primariesOf = (member: string, v = view()): number[] =>
    v.shards.flatMap((s, i) => (s.primary === member ? [i] : []));
  return {
    actor,
    config,
    effects,
    ctx,
    view,
    writes,
    decisions,
    flush,
    until,
    speak,
    silence,
    step,
    ids,
    primariesOf,
    now: () => t,
    /** Starts: reads an empty key, writes the first view, then admits `peers` and lets the view settle. */
    start(peers: readonly string[]): void {
      actor.send({ type: 'START', now: 0 });
      actor.send({ type: 'VIEW', view: null, revision: 0, now: 0 });
      flush();
      for (const p of peers) speak(p);
      until(t + 10 * HB);
    },
  };
}

const held = (v: View) => v.safeguards.held.map((h) => `${h.member}:${h.reason}`);

describe('the failover quota', () => {
  it('drops members for silence up to the quota, then halts: the next silent member stays in the view with its shards, until an operator resets it', () => {
    const c = clusterOf({ failoverQuota: 2, failoverWindow: 60_000 });
    c.start(['b', 'c', 'd']);
    expect(c.ids()).toEqual(['a', 'b', 'c', 'd']);
    c.silence('b');
    c.until(c.now() + 2 * TIMEOUT);
    c.silence('c');
    c.until(c.now() + 2 * TIMEOUT);
    // Positive control: the first two are dropped, and counted.
    expect(c.ids()).toEqual(['a', 'd']);
    expect(c.view().safeguards.dropped.map((d) => d.member)).toEqual(['b', 'c']);
    expect(c.view().safeguards.failoverHalted).toBeNull();
    const dShards = c.primariesOf('d');
    const epochs = dShards.map((s) => c.view().shards[s]!.epoch);
    expect(dShards.length).toBeGreaterThan(0);

    c.silence('d');
    const lost = c.now();
    c.until(c.now() + 2 * TIMEOUT);
    const halted = c.view();
    expect(halted.members.map((m) => m.id)).toEqual(['a', 'd']);
    expect(halted.safeguards.failoverHalted).toBeGreaterThanOrEqual(lost + TIMEOUT);
    expect(held(halted)).toEqual(['d:quota']);
    // Its shards stay where they are: same primary, same epoch, nobody promoted.
    expect(c.primariesOf('d')).toEqual(dShards);
    expect(dShards.map((s) => halted.shards[s]!.epoch)).toEqual(epochs);
    expect(halted.shards.every((s) => s.state === 'ACTIVE')).toBe(true);
    expect(c.decisions()).toEqual([
      { kind: 'dropped', member: 'b', recent: 1, quota: 2 },
      { kind: 'dropped', member: 'c', recent: 2, quota: 2 },
      { kind: 'halted', since: halted.safeguards.failoverHalted, dropped: ['b', 'c'] },
      { kind: 'held', member: 'd', reason: 'quota' },
    ]);
    // The halt stands while time passes: no view is written, nothing moves.
    const writes = c.writes().length;
    c.until(c.now() + 120_000);
    expect(c.writes().length).toBe(writes);

    // The operator's reset: d is dropped (1 of 2 again) and its shards fail over.
    c.actor.send({ type: 'RESET_FAILOVER', id: 'r1', now: c.now() });
    expect(c.effects.find((e) => e.type === 'resetAnswer')).toEqual({
      type: 'resetAnswer',
      id: 'r1',
      ok: true,
      changed: true,
      reason: expect.stringMatching(/^accepted: failover resumes/),
    });
    c.flush();
    c.until(c.now() + HB);
    const after = c.view();
    expect(after.members.map((m) => m.id)).toEqual(['a']);
    expect(after.safeguards).toMatchObject({ failoverHalted: null, held: [], dropped: [{ member: 'd' }] });
    expect(after.shards.every((s) => s.primary === 'a' && s.state === 'ACTIVE')).toBe(true);
    expect(c.decisions().slice(4)).toEqual([{ kind: 'reset' }, { kind: 'dropped', member: 'd', recent: 1, quota: 2 }]);
    expect(c.ctx().reset).toBe('none');
  });

  it.each([
    [1_000, 'held', ['a', 'c']],
    [3_000, 'dropped', ['a']],
  ] as const)('a drop counts only within the window: the next silence %i ms later is %s', (gap, outcome, members) => {
    const c = clusterOf({ failoverQuota: 1, failoverWindow: 2_000 });
    c.start(['b', 'c']);
    c.silence('b');
    c.until(c.now() + TIMEOUT + HB);
    expect(c.ids()).toEqual(['a', 'c']);
    const droppedAt = c.view().safeguards.dropped[0]!.at;
    c.until(droppedAt + gap - TIMEOUT);
    c.silence('c');
    c.until(c.now() + TIMEOUT + 2 * HB);
    expect(c.ids()).toEqual(members);
    expect(c.view().safeguards.failoverHalted === null).toBe(outcome === 'dropped');
    expect(held(c.view())).toEqual(outcome === 'held' ? ['c:quota'] : []);
  });

  it.each([
    [2, ['a', 'd'], null],
    [1, ['a', 'b', 'c', 'd'], 'halted'],
  ] as const)('members lost together are judged together: quota %i keeps %j', (quota, members, halt) => {
    const c = clusterOf({ failoverQuota: quota });
    c.start(['b', 'c', 'd']);
    c.silence('b', 'c');
    c.until(c.now() + 2 * TIMEOUT);
    expect(c.ids()).toEqual(members);
    expect(c.view().safeguards.failoverHalted !== null).toBe(halt === 'halted');
    expect(held(c.view())).toEqual(halt === 'halted' ? ['b:quota', 'c:quota'] : []);
    // Silent members keep no secondary (a shard held on b keeps no copy on c either): live copies only.
    expect(
      c
        .view()
        .shards.flatMap((s) => s.replicas)
        .filter((r) => r === 'b' || r === 'c'),
    ).toEqual([]);
    // Positive control: every shard served by a live member has its live secondary.
    const live = c.view().shards.filter((s) => s.primary === 'a' || s.primary === 'd');
    expect(live.every((s) => s.replicas.length === 1)).toBe(true);
  });

  it('a leaver that falls silent goes uncounted; a later silence still has the quota', () => {
    const c = clusterOf({ failoverQuota: 1 });
    c.start(['b', 'c', 'd']);
    // b says it is leaving while still serving its shards, then dies before handing them off.
    c.speak('b', { status: 'leaving', serving: c.primariesOf('b') });
    c.silence('b');
    c.until(c.now() + 2 * TIMEOUT);
    expect(c.ids()).not.toContain('b');
    expect(c.view().safeguards.dropped).toEqual([]);
    c.silence('c');
    c.until(c.now() + 2 * TIMEOUT);
    expect(c.ids()).toEqual(['a', 'd']);
    expect(c.view().safeguards).toMatchObject({ failoverHalted: null, dropped: [{ member: 'c' }] });
  });

  it('a held member that speaks again keeps its shards and is released; the halt stays until reset', () => {
    const c = clusterOf({ failoverQuota: 1 });
    c.start(['b', 'c', 'd']);
    c.silence('b');
    c.until(c.now() + 2 * TIMEOUT);
    c.silence('c');
    c.until(c.now() + 2 * TIMEOUT);
    expect(held(c.view())).toEqual(['c:quota']);
    const cShards = c.primariesOf('c');
    c.speak('c', { serving: cShards });
    c.until(c.now() + 2 * HB);
    expect(held(c.view())).toEqual([]);
    expect(c.ids()).toEqual(['a', 'c', 'd']);
    expect(c.primariesOf('c')).toEqual(cShards);
    expect(c.decisions().at(-1)).toEqual({ kind: 'released', member: 'c' });
    // Still halted: the next silence is held too.
    expect(c.view().safeguards.failoverHalted).not.toBeNull();
    c.silence('d');
    c.until(c.now() + 2 * TIMEOUT);
    expect(held(c.view())).toEqual(['d:quota']);
    expect(c.ids()).toEqual(['a', 'c', 'd']);
  });

  it('a new leader carries on the halt it finds in the view: the old leader and others gone silent are held', () => {
    const m = (id: string, joined: number): Member => ({ id, zone: 'z', promotable: true, joined });
    const halted: View = {
      viewId: 9,
      members: [m('a', 1), m('b', 2), m('c', 3)],
      leader: 'a',
      replicas: 1,
      shardCount: 3,
      shards: [0, 1, 2].map((i) => ({
        primary: ['a', 'b', 'c'][i]!,
        replicas: [['b', 'c', 'a'][i]!],
        state: 'ACTIVE' as const,
        next: null,
        epoch: 3,
      })),
      transitional: false,
      possibleDataLoss: [],
      safeguards: { ...NO_SAFEGUARDS, failoverHalted: 1_000, dropped: [{ member: 'x', at: 900 }] },
    };
    const b = clusterOf({}, { id: 'b', shardCount: 3 });
    b.actor.send({ type: 'START', now: 0 });
    b.actor.send({ type: 'VIEW', view: halted, revision: 9, now: 0 });
    b.speak('c');
    b.until(2 * TIMEOUT);
    // a (the old leader) never spoke: b leads, and holds a instead of dropping it.
    const v = b.view();
    expect(v).toMatchObject({ viewId: 10, leader: 'b', transitional: false });
    expect(v.members.map((x) => x.id)).toEqual(['a', 'b', 'c']);
    expect(held(v)).toEqual(['a:quota']);
    expect(v.shards[0]).toMatchObject({ primary: 'a', state: 'ACTIVE', epoch: 3 });
    // Nothing is placed on a held member: b's copy of shard 0 stays, a's copy of shard 2 goes elsewhere.
    expect(v.shards.flatMap((s) => s.replicas)).not.toContain('a');
  });
});

describe('the operator’s reset', () => {
  it('only the leader takes it; with nothing on record it is answered and nothing is written', () => {
    const c = clusterOf();
    c.start(['b']);
    const writes = c.writes().length;
    c.actor.send({ type: 'RESET_FAILOVER', id: 'r', now: c.now() });
    c.flush();
    expect(c.effects.filter((e) => e.type === 'resetAnswer').at(-1)).toMatchObject({ ok: true, changed: false });
    expect(c.writes().length).toBe(writes);
    expect(c.ctx().reset).toBe('none');

    // b, not the leader, refuses (its host stays silent; the leader answers).
    const b = clusterOf({}, { id: 'b' });
    b.actor.send({ type: 'START', now: 0 });
    b.actor.send({ type: 'RESET_FAILOVER', id: 'x', now: 0 });
    expect(b.effects.find((e) => e.type === 'resetAnswer')).toMatchObject({ ok: false, reason: 'no view yet' });
    b.actor.send({ type: 'VIEW', view: c.view(), revision: 5, now: 0 });
    b.speak('a');
    b.actor.send({ type: 'RESET_FAILOVER', id: 'y', now: b.now() });
    expect(b.effects.filter((e) => e.type === 'resetAnswer').at(-1)).toMatchObject({
      ok: false,
      reason: 'not the leader (a is)',
    });
    expect(b.writes()).toEqual([]);
  });

  it('a reset whose write is lost is carried by the next view written', () => {
    const c = clusterOf({ failoverQuota: 1 });
    c.start(['b', 'c']);
    c.silence('b');
    c.until(c.now() + 2 * TIMEOUT);
    expect(c.view().safeguards.dropped).toHaveLength(1);
    c.actor.send({ type: 'RESET_FAILOVER', id: 'r', now: c.now() });
    expect(c.ctx()).toMatchObject({ reset: 'writing', writing: true });
    expect(c.writes().at(-1)!.safeguards.dropped).toEqual([]);
    c.actor.send({ type: 'WRITE_FAILED', now: c.now() });
    expect(c.ctx().reset).toBe('asked');
    // The next write (a joiner makes one) carries it.
    c.speak('d');
    expect(c.view().safeguards.dropped).toEqual([]);
    expect(c.ctx().reset).toBe('none');
  });
});

describe('the floor: minimum members, and the last copy', () => {
  it.each([
    [3, ['a', 'b', 'c'], ['b:minimum']],
    [2, ['a', 'c'], []],
  ] as const)('minMembers %i: a silent member of three is %j', (minMembers, members, holds) => {
    const c = clusterOf({ minMembers });
    c.start(['b', 'c']);
    c.silence('b');
    c.until(c.now() + 2 * TIMEOUT);
    expect(c.ids()).toEqual(members);
    expect(held(c.view())).toEqual(holds);
    expect(c.view().safeguards.failoverHalted).toBeNull();
  });

  it('a member held for the minimum goes once a joiner makes up the number; placement works around it meanwhile', () => {
    const c = clusterOf({ minMembers: 3 }, { shardCount: 12 });
    c.start(['b', 'c']);
    const bShards = c.primariesOf('b');
    c.silence('b');
    c.until(c.now() + 2 * TIMEOUT);
    expect(held(c.view())).toEqual(['b:minimum']);
    expect(c.primariesOf('b')).toEqual(bShards);
    expect(c.view().shards.flatMap((s) => [...s.replicas, s.next])).not.toContain('b');
    c.speak('d');
    c.until(c.now() + 4 * HB);
    expect(c.ids()).toEqual(['a', 'c', 'd']);
    expect(held(c.view())).toEqual([]);
    expect(c.view().safeguards.dropped.map((d) => d.member)).toEqual(['b']);
    expect(c.view().shards.every((s) => s.primary !== null && s.primary !== 'b')).toBe(true);
  });

  it('a silent primary is held while no live member could take its shards over (a disaster-recovery worker leads)', () => {
    const m = (id: string, joined: number, promotable = true): Member => ({ id, zone: 'z', promotable, joined });
    const viewWith = (members: Member[]): View => ({
      viewId: 4,
      members,
      leader: 'p',
      replicas: 1,
      shardCount: 4,
      shards: [0, 1, 2, 3].map(() => ({
        primary: 'p',
        replicas: ['dr'],
        state: 'ACTIVE' as const,
        next: null,
        epoch: 2,
      })),
      transitional: false,
      possibleDataLoss: [],
      safeguards: NO_SAFEGUARDS,
    });
    // Alone with the disaster-recovery worker: p is kept, its shards with it.
    const dr = clusterOf({}, { id: 'dr', promotable: false, shardCount: 4 });
    dr.actor.send({ type: 'START', now: 0 });
    dr.actor.send({ type: 'VIEW', view: viewWith([m('p', 1), m('dr', 2, false)]), revision: 4, now: 0 });
    dr.until(2 * TIMEOUT);
    expect(dr.view().members.map((x) => x.id)).toEqual(['p', 'dr']);
    expect(held(dr.view())).toEqual(['p:last-copy']);
    expect(dr.view().shards.every((s) => s.primary === 'p' && s.state === 'ACTIVE')).toBe(true);
    // A promotable joiner arrives: p can go, and its shards move to the joiner.
    dr.speak('q');
    dr.until(dr.now() + 4 * HB);
    expect(dr.view().members.map((x) => x.id)).toEqual(['dr', 'q']);
    expect(dr.view().shards.every((s) => s.primary === 'q' && s.state === 'ACTIVE')).toBe(true);

    // Control: with another promotable member alive, p is dropped at once.
    const dr2 = clusterOf({}, { id: 'dr', promotable: false, shardCount: 4 });
    dr2.actor.send({ type: 'START', now: 0 });
    dr2.actor.send({ type: 'VIEW', view: viewWith([m('p', 1), m('q', 2), m('dr', 3, false)]), revision: 4, now: 0 });
    dr2.speak('q', { status: 'member', viewId: 4 });
    dr2.until(2 * TIMEOUT);
    // q (the first live member) leads now; dr, not the leader, writes nothing.
    expect(dr2.writes()).toEqual([]);
  });

  it('an operator can still move a held member’s shard by force, not by a planned swap', () => {
    const c = clusterOf({ minMembers: 3 });
    c.start(['b', 'c']);
    const shard = c.primariesOf('b')[0]!;
    c.silence('b');
    c.until(c.now() + 2 * TIMEOUT);
    c.actor.send({ type: 'MOVE', request: { id: 'm1', shard, to: 'c', force: false }, now: c.now() });
    expect(c.effects.filter((e) => e.type === 'moveAnswer').at(-1)).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/primary b is silent \(held in the view\); only a forced failover/),
    });
    c.actor.send({ type: 'MOVE', request: { id: 'm2', shard, to: 'c', force: true }, now: c.now() });
    expect(c.effects.filter((e) => e.type === 'moveAnswer').at(-1)).toMatchObject({ ok: true });
    c.flush();
    expect(c.view().shards[shard]).toMatchObject({ primary: 'c', state: 'ACTIVE' });
    expect(c.view().possibleDataLoss).toContain(shard);
    expect(held(c.view())).toEqual(['b:minimum']);
  });
});

describe('the brake: a membership that keeps changing', () => {
  const BRAKE = { stableAfter: 1_000, unstableAfter: 2_000 } as const;

  it('joiners get primaries while the changes are young; past unstableAfter they get none until the membership has been still for stableAfter', () => {
    const c = clusterOf(BRAKE, { shardCount: 12 });
    c.start([]);
    // A joiner every 600 ms: each change within stableAfter of the last, one run.
    c.speak('b');
    c.until(c.now() + 6 * HB);
    expect(c.primariesOf('b').length + c.view().shards.filter((s) => s.next === 'b').length).toBeGreaterThan(0);
    expect(c.view().safeguards.unstable).toBeNull();
    for (const joiner of ['c', 'd', 'e', 'f']) {
      c.speak(joiner);
      c.until(c.now() + 6 * HB);
    }
    const run = c.view().safeguards.churn!;
    expect(run.last - run.since).toBeGreaterThan(BRAKE.unstableAfter);
    const braked = c.view();
    expect(braked.safeguards.unstable).not.toBeNull();
    expect(c.decisions()).toContainEqual({
      kind: 'unstable',
      since: braked.safeguards.unstable,
      changingSince: run.since,
    });
    // f's arrival made the run too long: no primary for it, and no hand-off towards it; it holds secondaries.
    expect(braked.members.map((m) => m.id)).toContain('f');
    expect(braked.shards.filter((s) => s.primary === 'f' || s.next === 'f')).toEqual([]);
    expect(braked.shards.some((s) => s.replicas.includes('f'))).toBe(true);
    // The host is woken when the membership would count as stable.
    expect(nextDue(c.ctx())).toBeLessThanOrEqual(run.last + BRAKE.stableAfter);

    // Still for stableAfter: the brake comes off, and f gets its share.
    c.until(run.last + BRAKE.stableAfter - 1);
    expect(c.view().safeguards.unstable).not.toBeNull();
    c.until(run.last + BRAKE.stableAfter + 10 * HB);
    expect(c.view().safeguards.unstable).toBeNull();
    expect(c.decisions().at(-1)).toEqual({ kind: 'stable', unstableSince: braked.safeguards.unstable });
    expect(c.primariesOf('f').length + c.view().shards.filter((s) => s.next === 'f').length).toBeGreaterThan(0);
  });

  it('while braked, a lost member’s shards still fail over, and a leaver’s are still handed off', () => {
    const c = clusterOf(BRAKE, { shardCount: 12 });
    c.start([]);
    for (const joiner of ['b', 'c', 'd', 'e']) {
      c.speak(joiner);
      c.until(c.now() + 6 * HB);
    }
    c.speak('f');
    expect(c.view().safeguards.unstable).not.toBeNull();
    const bShards = c.primariesOf('b');
    expect(bShards.length).toBeGreaterThan(0);
    // b dies right away, within the run.
    c.silence('b');
    c.until(c.now() + TIMEOUT + 2 * HB);
    expect(c.view().safeguards.unstable).not.toBeNull();
    expect(c.ids()).not.toContain('b');
    for (const s of bShards) expect(c.view().shards[s]).toMatchObject({ state: 'ACTIVE', primary: expect.any(String) });
    // c leaves: its primaries are handed off even though the membership is unstable.
    const cShards = c.primariesOf('c');
    expect(cShards.length).toBeGreaterThan(0);
    c.speak('c', { status: 'leaving', serving: cShards });
    c.until(c.now() + 2 * HB);
    for (const s of cShards) expect(c.view().shards[s]).toMatchObject({ state: 'PENDING', primary: 'c' });
    expect(c.view().safeguards.unstable).not.toBeNull();
  });
});

describe('announcing the decisions', () => {
  it('decisions are emitted once the leader’s write lands, even when the watch brings the view back first; not for an echo', () => {
    const c = clusterOf({ failoverQuota: 1 });
    c.start(['b', 'c']);
    c.silence('b');
    // Time passes until the transitional view dropping b goes out; it is not acknowledged yet.
    let rev = 40;
    while (!c.ctx().writing || !c.writes().at(-1)!.transitional) {
      if (c.ctx().writing)
        c.actor.send({ type: 'WRITE_DONE', view: c.writes().at(-1)!, revision: ++rev, now: c.now() });
      else c.step();
      if (c.now() > 10_000) throw new Error('b was never dropped');
    }
    const before = c.decisions().length;
    expect(before).toBe(0);
    const out = c.writes().at(-1)!;
    expect(out).toMatchObject({ transitional: true, safeguards: { dropped: [{ member: 'b' }] } });
    // The watch delivers the written view before the write's answer arrives: nothing announced yet.
    c.actor.send({ type: 'VIEW', view: out, revision: 50, now: c.now() });
    expect(c.decisions()).toEqual([]);
    c.actor.send({ type: 'WRITE_DONE', view: out, revision: 50, now: c.now() });
    expect(c.decisions()).toEqual([{ kind: 'dropped', member: 'b', recent: 1, quota: 1 }]);
    // The same view again (an echo, a repair) announces nothing more.
    c.actor.send({ type: 'VIEW', view: out, revision: 51, now: c.now() });
    expect(c.decisions()).toHaveLength(1);
    // A write that fails announces nothing: the plan made again announces it then.
    c.flush();
    c.silence('c');
    while (!c.ctx().writing) {
      c.step();
      if (c.now() > 20_000) throw new Error('c was never judged');
    }
    c.actor.send({ type: 'WRITE_FAILED', now: c.now() });
    expect(c.decisions()).toHaveLength(1);
    c.step();
    c.actor.send({ type: 'WRITE_DONE', view: c.writes().at(-1)!, revision: 60, now: c.now() });
    expect(
      c
        .decisions()
        .slice(1)
        .map((d) => d.kind),
    ).toEqual(['halted', 'held']);
  });
});
