import { assign, emit, enqueueActions, setup } from 'xstate';
import { heartbeatOf, leaderOf } from './heartbeats.js';
import { refuseMove } from './operatorMoves.js';
import { quotaInUse, safeguardDecisions, type SafeguardDecision } from './safeguards.js';
import type { View } from './view.js';
import { planningKey, planView } from './viewPlanning.js';
import { deafAfter } from './heartbeats.js';
import type { UnhealthyReason } from './health.js';

/**
 * The membership machine (DESIGN.md section 4), after Spread: every worker
 * runs one; they agree on one sequence of views because only the leader
 * writes the view, with compare-and-set on its revision. Pure: time comes
 * in the events (TICK, HEARTBEAT, VIEW), effects go out as emitted events
 * (`heartbeat`, `writeView`, `view`, `left`, the answers to operators and
 * the safeguards' decisions to log) that the host carries out.
 * This file decides when the leader writes; viewPlanning.ts decides what,
 * and safeguards.ts what it may not do.
 */

export interface MembershipConfig {
  readonly heartbeatInterval: number;
  /** Silent this long: suspected, and dropped from the next view. */
  readonly sessionTimeout: number;
  /** Secondaries per shard, recorded in the view. */
  readonly replicas: number;
  readonly shardCount: number;
  readonly maxConcurrentMoves: number;
  /**
   * At most this many members dropped for silence within `failoverWindow`
   * ms; a loss beyond it halts automatic failover until an operator resets
   * it (Couchbase's auto-failover quota). Infinity: no quota.
   */
  readonly failoverQuota: number;
  readonly failoverWindow: number;
  /** Automatic failover never leaves fewer live members than this (Couchbase's minimum cluster size). */
  readonly minMembers: number;
  /** No membership change for this long ends a run of changes: the membership is stable. */
  readonly stableAfter: number;
  /** A run of membership changes longer than this stops the leader rebalancing until it is stable (Akka's down-all-when-unstable). Infinity: never. */
  readonly unstableAfter: number;
}

export const MEMBERSHIP_DEFAULTS = {
  heartbeatInterval: 500,
  sessionTimeout: 3_000,
  replicas: 1,
  maxConcurrentMoves: 8,
  failoverQuota: 3,
  failoverWindow: 600_000,
  minMembers: 1,
  stableAfter: 30_000,
  unstableAfter: 120_000,
} as const;

/** A session timeout below this would suspect healthy workers on an ordinary GC pause. */
export const MIN_SESSION_TIMEOUT = 500;

export type MemberStatus = 'joining' | 'member' | 'leaving';

/** What a worker says about itself every heartbeat (and at once when it changes). */
export interface Heartbeat {
  readonly id: string;
  readonly zone: string;
  readonly promotable: boolean;
  readonly status: MemberStatus;
  /** The latest view this worker has applied (0: none). */
  readonly viewId: number;
  /** Shards it serves as primary right now: a hand-off completes when the old primary stops serving. */
  readonly serving: readonly number[];
  /** The runtime's clock when it started: orders workers that join together. */
  readonly startedAt: number;
  /**
   * As primary: the secondaries it is not hearing from, as `shard/worker`.
   * The leader promotes only synchronized copies while there are any.
   */
  readonly notSynchronized?: readonly string[];
  /** Its health monitor finds it unable to do its work (health.ts); an unhealthy member does not count as one to step down to. */
  readonly unhealthy?: UnhealthyReason;
}

interface Peer {
  readonly hb: Heartbeat;
  /** When it was last heard from (or first seen in a view). */
  readonly at: number;
}

export interface Self {
  readonly id: string;
  readonly zone: string;
  readonly promotable: boolean;
  readonly startedAt: number;
}

export interface MembershipContext {
  readonly self: Self;
  readonly config: MembershipConfig;
  readonly view: View | null;
  /** Key-value revision of `view` (0: none read yet): the compare-and-set token. */
  readonly revision: number;
  readonly peers: Readonly<Record<string, Peer>>;
  readonly serving: readonly number[];
  readonly notSynchronized: readonly string[];
  readonly appliedViewId: number;
  /** A view write is out: nothing more is written until it settles. */
  readonly writing: boolean;
  /**
   * The view key holds something that is not the newest view (junk, an older
   * view, nothing): the leader writes the view it knows back, so members and
   * joiners find it and the next compare-and-set can succeed.
   */
  readonly repair: boolean;
  /**
   * When this member, knowing no view, found the key holding none it can
   * read (junk, a delete): it waits a session timeout to hear from members
   * who know the cluster's view before it starts one, and then numbers it
   * above anything the key can have held (its revision bounds every view
   * id and epoch written there). Null otherwise.
   */
  readonly blindSince: number | null;
  readonly leaving: boolean;
  /** What its health monitor said at the last tick (null: healthy). */
  readonly unhealthy: UnhealthyReason | null;
  /** Leaving because it is unhealthy, not to stop: once out of the view it rejoins. */
  readonly steppingDown: boolean;
  /** Operator failovers accepted and not yet in a written view. */
  readonly moves: readonly MoveRequest[];
  /** Those in the view being written now: dropped when it is, planned again if it is not. */
  readonly moving: readonly MoveRequest[];
  /** An operator's reset of the failover quota: accepted (`asked`), in the view being written, or none. */
  readonly reset: 'none' | 'asked' | 'writing';
  /** An operator's rebalance despite an unstable membership (the view records it stable again): accepted, being written, or none. */
  readonly settle: 'none' | 'asked' | 'writing';
  /** The safeguards' decisions in the view being written: announced (for the log) once it is. */
  readonly deciding: readonly SafeguardDecision[];
  readonly now: number;
  /** The runtime's clock at the last TICK: a long gap means this process was not running. */
  readonly lastTick: number;
  /** When this member last sent a heartbeat: ticks come more often than heartbeats go. */
  readonly lastBeat: number;
  /** What planView last found nothing to do for (planningKey): the same again is not planned again. */
  readonly settledPlan: string | null;
  /**
   * When this member last heard anything from the server (a tick saying
   * messages arrived since the one before), or started, or woke from a
   * stall. Nothing for deafAfter: it cannot hear the cluster, and steps
   * down (see deafOnTick()).
   */
  readonly heardAt: number;
}

/**
 * An operator's failover of one shard to one worker. Planned: the shard
 * hands off (PENDING) and, to keep the balance, one of the target's shards
 * comes back the other way. Forced: the target becomes primary at once
 * (epoch + 1) whether or not its copy is synchronized, and the view records
 * possible data loss for the shard.
 */
export interface MoveRequest {
  readonly id: string;
  readonly shard: number;
  readonly to: string;
  readonly force: boolean;
}

export type MembershipEvent =
  | { type: 'START'; now: number }
  /** The view entry as read or watched (null: none written yet). */
  | { type: 'VIEW'; view: View | null; revision: number; now: number }
  /** The view entry at `revision` is not a view: unreadable, or deleted. */
  | { type: 'VIEW_SPOILED'; revision: number; now: number }
  | { type: 'HEARTBEAT'; heartbeat: Heartbeat; now: number }
  /** `heard`: messages reached this member's connection since the last tick (its own heartbeats come back too). */
  | {
      type: 'TICK';
      now: number;
      notSynchronized?: readonly string[];
      heard?: boolean;
      /** The fault its health monitor finds now, at the worker's failure condition; absent: healthy. */
      unhealthy?: UnhealthyReason;
    }
  /** The host applied a view: these are the shards it now serves as primary. */
  | { type: 'APPLIED'; viewId: number; serving: readonly number[]; now: number }
  | { type: 'WRITE_DONE'; view: View; revision: number; now: number }
  | { type: 'WRITE_FAILED'; now: number }
  | { type: 'LEAVE'; now: number }
  | { type: 'MOVE'; request: MoveRequest; now: number }
  /** An operator resets the failover quota (the request's `id`, for the answer). */
  | { type: 'RESET_FAILOVER'; id: string; now: number }
  /** An operator asks for a rebalance now, even while the membership is unstable (the request's `id`, for the answer). */
  | { type: 'REBALANCE'; id: string; now: number };

export type MembershipEffect =
  | { type: 'heartbeat'; heartbeat: Heartbeat }
  /** Compare-and-set: create the entry when `revision` is 0, else update it from `revision`. */
  | { type: 'writeView'; view: View; revision: number }
  /** A newer view: apply its shard roles, then send APPLIED. */
  | { type: 'view'; view: View }
  | { type: 'left'; reason: 'left' | 'removed' | 'deaf' | 'unhealthy' }
  /** Unhealthy with a healthy member to take over: it leaves (its shards hand off) and will rejoin. */
  | { type: 'steppingDown'; reason: UnhealthyReason }
  /** The answer to a MOVE: accepted (the next view carries it) or why not. */
  | { type: 'moveAnswer'; id: string; ok: boolean; reason: string }
  /** The answer to RESET_FAILOVER: refused, or accepted (`changed`: the next view carries it; else there was nothing to reset). */
  | { type: 'resetAnswer'; id: string; ok: boolean; changed: boolean; reason: string }
  /** The answer to REBALANCE: refused, or accepted (`changed`: the next view records the membership stable; else it was). */
  | { type: 'rebalanceAnswer'; id: string; ok: boolean; changed: boolean; reason: string }
  /** A decision of the safeguards, in a view this leader wrote: for the log. */
  | { type: 'safeguard'; decision: SafeguardDecision };

export interface MembershipInput {
  readonly self: Self;
  readonly config: MembershipConfig;
}

function withView(ctx: MembershipContext, view: View, revision: number): Partial<MembershipContext> {
  // Members seen in a view but not heard yet get one session timeout from now to speak up.
  const peers: Record<string, Peer> = { ...ctx.peers };
  for (const m of view.members) {
    if (m.id === ctx.self.id || peers[m.id] !== undefined) continue;
    peers[m.id] = {
      hb: { ...m, status: 'member', viewId: 0, serving: [], startedAt: Number.MAX_SAFE_INTEGER },
      at: ctx.now,
    };
  }
  return { view, revision, peers, blindSince: null };
}

/** Sends this member's heartbeat now and remembers when. */
function beat(
  context: MembershipContext,
  enqueue: { assign(patch: Partial<MembershipContext>): void; emit(effect: MembershipEffect): void },
): void {
  enqueue.assign({ lastBeat: context.now });
  enqueue.emit({
    type: 'heartbeat',
    heartbeat: heartbeatOf(context, context.leaving ? 'leaving' : inView(context) ? 'member' : 'joining'),
  });
}

const inView = (ctx: MembershipContext): boolean => ctx.view?.members.some((m) => m.id === ctx.self.id) === true;

/** A tick this late means this process was stopped or starved (see `woke`). */
function stalled(ctx: MembershipContext, now: number): boolean {
  const { sessionTimeout, heartbeatInterval } = ctx.config;
  return now - ctx.lastTick > Math.max(sessionTimeout / 2, 2 * heartbeatInterval);
}

/**
 * A member that hears nothing at all from the server (not even its own
 * heartbeats, which come back to it) is cut off from the cluster, maybe
 * one way only: what it sends may still arrive, so the others would keep
 * it. It steps down on its own before anyone would suspect it: it stops
 * heartbeating, leading and serving, so the others fail its shards over
 * within a session timeout, and it never writes a view from a silence that
 * is its own. Its worker rejoins once it can hear again. A busy member
 * hears plenty; a stopped one is not deaf but stalled.
 */
function deafOnTick(ctx: MembershipContext, event: MembershipEvent): boolean {
  if (event.type !== 'TICK' || event.heard === true || stalled(ctx, event.now)) return false;
  return event.now - ctx.heardAt >= deafAfter(ctx.config);
}

/**
 * Unhealthy, it leaves only when some other member would do better: one
 * heard within a session timeout, in the view, able to be primary and
 * healthy by its own word. A fault every member shares (the journal down
 * for all) is ridden out in place, since moving shards would only add
 * reloads to it.
 */
function sickOnTick(ctx: MembershipContext, event: MembershipEvent): boolean {
  if (event.type !== 'TICK' || event.unhealthy === undefined || ctx.view === null) return false;
  return ctx.view.members.some((m) => {
    const p = m.id === ctx.self.id ? undefined : ctx.peers[m.id];
    // viewId 0: seen in a view, never heard.
    return (
      p !== undefined &&
      p.hb.viewId > 0 &&
      p.hb.status === 'member' &&
      p.hb.promotable &&
      p.hb.unhealthy === undefined &&
      event.now - p.at < ctx.config.sessionTimeout
    );
  });
}

const TICK_ACTIONS = ['tock', 'beatIfDue', 'lead'] as const;

/** In every state a member can be in: a deaf tick steps down, any other is a tick. */
const TICK_OR_STEP_DOWN = [
  { guard: 'deaf', target: 'left', actions: ['clock', 'stepDown'] },
  { actions: TICK_ACTIONS },
] as const;

/** As a member: deaf, it steps down at once; unhealthy, it leaves as a planned leave would (its shards hand off). */
const MEMBER_TICK = [
  TICK_OR_STEP_DOWN[0],
  {
    guard: 'sick',
    target: 'leaving',
    actions: [...TICK_ACTIONS, 'markStepping', 'heartbeat', 'sayStepping', 'lead'],
  },
  TICK_OR_STEP_DOWN[1],
] as const;

export const membershipMachine = setup({
  types: {} as {
    context: MembershipContext;
    events: MembershipEvent;
    input: MembershipInput;
    emitted: MembershipEffect;
  },
  actions: {
    clock: assign({ now: ({ context, event }) => Math.max(context.now, event.now) }),
    stepDown: emit({ type: 'left', reason: 'deaf' as const }),
    markStepping: assign({ leaving: true, steppingDown: true }),
    sayStepping: enqueueActions(({ event, enqueue }) => {
      if (event.type === 'TICK' && event.unhealthy !== undefined)
        enqueue.emit({ type: 'steppingDown', reason: event.unhealthy });
    }),
    /** A message from the server arrived (a heartbeat, the view, a write's answer): this member can hear. */
    heard: assign({ heardAt: ({ context, event }) => Math.max(context.heardAt, event.now) }),
    /**
     * A tick: the time, the primary's unsynchronized secondaries, whether
     * anything arrived, its health. One assignment, since ticks come several
     * times per heartbeat interval and each assignment copies the context.
     *
     * A tick long overdue means this process was stopped or starved, not
     * that everyone else went quiet: their heartbeats are still queued
     * behind the tick. Silence is counted afresh from now, so a paused
     * leader wakes up without deposing the whole cluster.
     */
    tock: assign(({ context, event }) => {
      if (event.type !== 'TICK') return {};
      const late = stalled(context, event.now);
      const peers = late
        ? Object.fromEntries(Object.entries(context.peers).map(([id, p]) => [id, { ...p, at: event.now }]))
        : context.peers;
      // What it would have heard is queued behind the tick as well.
      const heardAt = late ? event.now : context.heardAt;
      return {
        now: Math.max(context.now, event.now),
        lastTick: event.now,
        peers,
        heardAt: event.heard === true ? Math.max(heardAt, event.now) : heardAt,
        notSynchronized: event.notSynchronized || context.notSynchronized,
        unhealthy: event.unhealthy ?? null,
      };
    }),
    heartbeat: enqueueActions(({ context, enqueue }) => beat(context, enqueue)),
    /**
     * The host ticks several times per heartbeat interval so silence is
     * noticed soon after the session timeout, not up to a heartbeat later;
     * heartbeats still go once per interval (a tenth early: timers jitter).
     */
    beatIfDue: enqueueActions(({ context, enqueue }) => {
      if (context.now - context.lastBeat >= context.config.heartbeatInterval * 0.9) beat(context, enqueue);
    }),
    /** The leader's duty after every event: write the next view if one is due. */
    lead: enqueueActions(({ context, enqueue }) => {
      if (context.writing || context.revision < 0) return;
      // Hearing nothing, it cannot tell the others' silence from its own deafness: it writes nothing
      // (and, still hearing nothing, steps down).
      if (context.now - context.heardAt > 2 * context.config.heartbeatInterval) return;
      // A cluster's history may be out there: a first view over junk waits for its members to speak first.
      const blind = context.view === null && context.revision > 0;
      if (blind && (context.blindSince === null || context.now - context.blindSince < context.config.sessionTimeout))
        return;
      // Only the leader plans; and most events (ticks, heartbeats saying what they said before) change
      // nothing its plan reads.
      const leads = leaderOf(context) === context.self.id;
      const key = leads ? planningKey(context) : null;
      const planned = key === null || key === context.settledPlan ? null : planView(context);
      if (key !== null && planned === null && key !== context.settledPlan) enqueue.assign({ settledPlan: key });
      // A new view repairs the key too; without one, the leader writes back the view it knows.
      const next = planned ?? (context.repair && context.view !== null && leads ? context.view : null);
      if (next === null) return;
      enqueue.assign({
        writing: true,
        repair: false,
        moving: context.moves,
        moves: [],
        // Every planned view carries a reset that was asked for.
        reset: planned !== null && context.reset === 'asked' ? 'writing' : context.reset,
        settle: planned !== null && context.settle === 'asked' ? 'writing' : context.settle,
        // Against the view it follows: the watch may bring it back before the write's answer does.
        deciding: planned === null ? [] : safeguardDecisions(context.view, planned, context.config),
      });
      enqueue.emit({ type: 'writeView', view: next, revision: context.revision });
    }),
    /** The key moved on to something that is not a newer view: take its revision, and have it repaired. */
    spoiled: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'VIEW_SPOILED' || event.revision <= context.revision) return;
      enqueue.assign({
        revision: event.revision,
        repair: context.view !== null,
        blindSince: context.view === null ? (context.blindSince ?? context.now) : null,
      });
    }),
    /** Validates an operator's move; an accepted one goes into the next view the leader writes. */
    move: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'MOVE') return;
      const why = refuseMove(context, event.request);
      enqueue.emit({ type: 'moveAnswer', id: event.request.id, ok: why === null, reason: why ?? 'accepted' });
      if (why === null) enqueue.assign({ moves: [...context.moves, event.request] });
    }),
    /** Only the leader may reset the quota, and only a view it knows says what there is to reset. */
    resetFailover: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'RESET_FAILOVER') return;
      const leader = leaderOf(context);
      const answer = (ok: boolean, changed: boolean, reason: string): void =>
        enqueue.emit({ type: 'resetAnswer', id: event.id, ok, changed, reason });
      if (leader !== context.self.id) return answer(false, false, `not the leader (${leader ?? 'none'} is)`);
      if (context.view === null) return answer(false, false, 'no view yet');
      const g = context.view.safeguards;
      if (!quotaInUse(g) && context.reset === 'none')
        return answer(true, false, 'nothing to reset: failover is not halted and no member was dropped on record');
      const halted = g.failoverHalted === null ? 'failover was not halted' : 'failover resumes';
      answer(true, true, `accepted: ${halted}; ${g.dropped.length} dropped member(s) no longer counted`);
      if (context.reset === 'none') enqueue.assign({ reset: 'asked' });
    }),
    /** Only the leader may declare the membership stable, and only when its view says it is not. */
    rebalance: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'REBALANCE') return;
      const leader = leaderOf(context);
      const answer = (ok: boolean, changed: boolean, reason: string): void =>
        enqueue.emit({ type: 'rebalanceAnswer', id: event.id, ok, changed, reason });
      if (leader !== context.self.id) return answer(false, false, `not the leader (${leader ?? 'none'} is)`);
      if (context.view === null) return answer(false, false, 'no view yet');
      if (context.view.safeguards.unstable === null && context.settle === 'none')
        return answer(true, false, 'the membership is stable: the leader rebalances already');
      answer(true, true, 'accepted: the membership is recorded stable, rebalancing resumes');
      if (context.settle === 'none') enqueue.assign({ settle: 'asked' });
    }),
    /** The view this leader planned is written: each safeguard decision in it goes out, for the host to log. */
    decided: enqueueActions(({ context, enqueue }) => {
      for (const decision of context.deciding) enqueue.emit({ type: 'safeguard', decision });
      enqueue.assign({ deciding: [] });
    }),
    written: assign(({ context }) => ({
      writing: false,
      moving: [],
      reset: context.reset === 'writing' ? ('none' as const) : context.reset,
      settle: context.settle === 'writing' ? ('none' as const) : context.settle,
    })),
    install: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'VIEW' && event.type !== 'WRITE_DONE') return;
      const seen = context.view?.viewId ?? 0;
      if (event.type === 'VIEW' && event.view === null) {
        if (context.revision < 0) enqueue.assign({ revision: 0 });
        return;
      }
      if (event.view === null || event.view.viewId <= seen) {
        // The same view written again (a repair) is the key's new revision; an older one at a newer revision is a regression to repair.
        if (event.revision > context.revision) {
          const regressed = event.type === 'VIEW' && event.view !== null && event.view.viewId < seen;
          const blindSince = context.view === null ? (context.blindSince ?? context.now) : null;
          enqueue.assign({ revision: event.revision, blindSince, ...(regressed && { repair: true }) });
        }
        return;
      }
      enqueue.assign(withView(context, event.view, event.revision));
      enqueue.emit({ type: 'view', view: event.view });
    }),
  },
  guards: {
    inView: ({ context }) => inView(context),
    removed: ({ context }) => context.view !== null && !inView(context),
    deaf: ({ context, event }) => deafOnTick(context, event),
    sick: ({ context, event }) => sickOnTick(context, event),
  },
}).createMachine({
  id: 'membership',
  context: ({ input }) => ({
    self: input.self,
    config: input.config,
    view: null,
    // -1 until the view entry has been read once: nobody writes blind.
    revision: -1,
    peers: {},
    serving: [],
    notSynchronized: [],
    appliedViewId: 0,
    writing: false,
    repair: false,
    blindSince: null,
    leaving: false,
    unhealthy: null,
    steppingDown: false,
    moves: [],
    moving: [],
    reset: 'none',
    settle: 'none',
    deciding: [],
    now: input.self.startedAt,
    lastTick: input.self.startedAt,
    lastBeat: Number.NEGATIVE_INFINITY,
    settledPlan: null,
    heardAt: input.self.startedAt,
  }),
  initial: 'idle',
  on: {
    HEARTBEAT: {
      actions: [
        // One assignment (one copy of the context) per heartbeat: they come from every member.
        assign(({ context, event }) => ({
          now: Math.max(context.now, event.now),
          heardAt: Math.max(context.heardAt, event.now),
          peers:
            event.heartbeat.id === context.self.id
              ? context.peers
              : { ...context.peers, [event.heartbeat.id]: { hb: event.heartbeat, at: event.now } },
        })),
        'lead',
      ],
    },
    TICK: { actions: TICK_ACTIONS },
    APPLIED: {
      actions: [
        'clock',
        assign({
          appliedViewId: ({ context, event }) => Math.max(context.appliedViewId, event.viewId),
          serving: ({ event }) => [...event.serving],
        }),
        'heartbeat',
        'lead',
      ],
    },
    WRITE_FAILED: {
      actions: [
        'clock',
        assign(({ context }) => ({
          writing: false,
          moves: [...context.moving, ...context.moves],
          moving: [],
          reset: context.reset === 'writing' ? 'asked' : context.reset,
          settle: context.settle === 'writing' ? 'asked' : context.settle,
          deciding: [],
        })),
      ],
    },
    MOVE: { actions: ['clock', 'move', 'lead'] },
    RESET_FAILOVER: { actions: ['clock', 'resetFailover', 'lead'] },
    REBALANCE: { actions: ['clock', 'rebalance', 'lead'] },
  },
  states: {
    idle: {
      on: { START: { target: 'joining', actions: ['clock', 'heartbeat'] } },
    },
    joining: {
      always: { guard: 'inView', target: 'member' },
      on: {
        TICK: TICK_OR_STEP_DOWN,
        VIEW: { actions: ['clock', 'heard', 'install', 'lead'] },
        VIEW_SPOILED: { actions: ['clock', 'heard', 'spoiled', 'lead'] },
        WRITE_DONE: { actions: ['clock', 'heard', 'decided', 'written', 'install', 'lead'] },
        LEAVE: { target: 'left', actions: ['clock', emit({ type: 'left', reason: 'left' as const })] },
      },
    },
    member: {
      always: { guard: 'removed', target: 'left', actions: emit({ type: 'left', reason: 'removed' as const }) },
      on: {
        TICK: MEMBER_TICK,
        VIEW: { actions: ['clock', 'heard', 'install', 'lead'] },
        VIEW_SPOILED: { actions: ['clock', 'heard', 'spoiled', 'lead'] },
        WRITE_DONE: { actions: ['clock', 'heard', 'decided', 'written', 'install', 'lead'] },
        LEAVE: { target: 'leaving', actions: ['clock', assign({ leaving: true }), 'heartbeat', 'lead'] },
      },
    },
    leaving: {
      always: {
        guard: 'removed',
        target: 'left',
        actions: emit(({ context }) => ({
          type: 'left' as const,
          reason: context.steppingDown ? ('unhealthy' as const) : ('left' as const),
        })),
      },
      on: {
        TICK: TICK_OR_STEP_DOWN,
        VIEW: { actions: ['clock', 'heard', 'install', 'lead'] },
        VIEW_SPOILED: { actions: ['clock', 'heard', 'spoiled', 'lead'] },
        WRITE_DONE: { actions: ['clock', 'heard', 'decided', 'written', 'install', 'lead'] },
      },
    },
    left: { type: 'final' },
  },
});
