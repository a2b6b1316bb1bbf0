import { assign, setup } from 'xstate';
import type { View } from './view.js';

/**
 * A worker's part in one shard (DESIGN.md section 5): RESOLVING until a
 * view says, then PRIMARY (serves writes; tracks what its secondaries have
 * applied) or SECONDARY (tails the shard's journal and applies it with the
 * same pure transition), or RELEASED (no copy here). Pure: time comes in
 * the events.
 */

export type ReplicaRole = 'primary' | 'secondary' | 'none';

/** What the view gives `me` for `shard`. A primary handing off is neither: it has let go. */
export function roleOf(view: View, shard: number, me: string): ReplicaRole {
  const s = view.shards[shard];
  if (s === undefined) return 'none';
  // A shard whose primary was lost (a transitional view) keeps its secondaries following: one of them is
  // about to be promoted, and takes over from the copies it kept.
  if (s.state === 'DEAD') return s.replicas.includes(me) ? 'secondary' : 'none';
  if (s.primary === me) return s.state === 'ACTIVE' ? 'primary' : 'none';
  if (s.replicas.includes(me) || s.next === me) return 'secondary';
  return 'none';
}

/** What a primary last heard from one secondary. */
export interface Follower {
  /** Journal stream sequence applied for this shard, as far as the primary can credit it. */
  readonly seq: number;
  readonly at: number;
  /**
   * Sequences it reported beyond what the primary knows is journaled for the
   * shard, lowest first: a report can overtake the append's own ack, so each
   * is credited once the journal gets there; a forged huge one never is.
   */
  readonly ahead: readonly number[];
}

/** Claims beyond the journal kept per secondary: the lowest, which an honest report racing an ack is. */
export const AHEAD_KEPT = 8;

/**
 * After Always On: a secondary heard from within the session timeout is
 * SYNCHRONIZED; one that is not is NOT_SYNCHRONIZING, silently, and commits
 * stop waiting for it.
 */
export type SyncState = 'SYNCHRONIZED' | 'NOT_SYNCHRONIZING';

export function syncStateOf(f: Follower | undefined, now: number, sessionTimeout: number): SyncState {
  return f !== undefined && now - f.at < sessionTimeout ? 'SYNCHRONIZED' : 'NOT_SYNCHRONIZING';
}

export interface ReplicaContext {
  readonly shard: number;
  readonly self: string;
  readonly sessionTimeout: number;
  readonly epoch: number;
  /** The secondaries the view lists for this shard. */
  readonly replicas: readonly string[];
  readonly followers: Readonly<Record<string, Follower>>;
  /**
   * The highest journal stream sequence this primary knows holds an entry of
   * the shard (its own appends' acks): no secondary can have applied more.
   */
  readonly journaled: number;
  /** Reports that claimed more than `journaled` when heard: racing acks, or forged. */
  readonly reportsAhead: number;
  readonly now: number;
}

/** Secondaries of the view that are synchronized now. */
export function synchronizedReplicas(ctx: ReplicaContext): string[] {
  return ctx.replicas.filter((w) => syncStateOf(ctx.followers[w], ctx.now, ctx.sessionTimeout) === 'SYNCHRONIZED');
}

/** How many synchronized secondaries have applied `seq` or later. */
export function appliedBy(ctx: ReplicaContext, seq: number): number {
  return synchronizedReplicas(ctx).filter((w) => (ctx.followers[w]?.seq ?? 0) >= seq).length;
}

export type ReplicaEvent =
  | { type: 'ROLE'; view: View; now: number }
  | { type: 'REPORT'; worker: string; seq: number; now: number }
  /** The journal acknowledged an entry of the shard at stream sequence `seq`. */
  | { type: 'JOURNALED'; seq: number; now: number };

/** A report heard: alive now, and progress credited only up to what is journaled. */
function heard(f: Follower | undefined, seq: number, journaled: number, now: number): Follower {
  const prev = f ?? { seq: 0, at: now, ahead: [] };
  if (seq <= journaled) return { seq: Math.max(prev.seq, seq), at: now, ahead: prev.ahead };
  const ahead = prev.ahead.includes(seq) ? prev.ahead : [...prev.ahead, seq].sort((a, b) => a - b);
  return { seq: prev.seq, at: now, ahead: ahead.slice(0, AHEAD_KEPT) };
}

/** Claims the journal has now reached are credited. */
function caughtUp(f: Follower, journaled: number): Follower {
  if (f.ahead.length === 0 || f.ahead[0]! > journaled) return f;
  const reached = f.ahead.filter((q) => q <= journaled);
  return { ...f, seq: Math.max(f.seq, ...reached), ahead: f.ahead.filter((q) => q > journaled) };
}

export const replicaMachine = setup({
  types: {} as {
    context: ReplicaContext;
    events: ReplicaEvent;
    input: { shard: number; self: string; sessionTimeout: number; now: number };
  },
  actions: {
    clock: assign({ now: ({ context, event }) => Math.max(context.now, event.now) }),
    adopt: assign(({ context, event }) => {
      if (event.type !== 'ROLE') return {};
      const s = event.view.shards[context.shard];
      return { epoch: s?.epoch ?? context.epoch, replicas: s?.replicas ?? [] };
    }),
    // Reports may arrive out of order: applied only ever moves forward, and never past the journal.
    hear: assign(({ context, event }) => {
      if (event.type !== 'REPORT' || !context.replicas.includes(event.worker)) return {};
      const follower = heard(context.followers[event.worker], event.seq, context.journaled, event.now);
      return {
        followers: { ...context.followers, [event.worker]: follower },
        reportsAhead: context.reportsAhead + (event.seq > context.journaled ? 1 : 0),
      };
    }),
    journaled: assign(({ context, event }) => {
      if (event.type !== 'JOURNALED' || event.seq <= context.journaled) return {};
      const followers = Object.fromEntries(
        Object.entries(context.followers).map(([w, f]) => [w, caughtUp(f, event.seq)]),
      );
      return { journaled: event.seq, followers };
    }),
  },
  guards: {
    primary: ({ context, event }) =>
      event.type === 'ROLE' && roleOf(event.view, context.shard, context.self) === 'primary',
    secondary: ({ context, event }) =>
      event.type === 'ROLE' && roleOf(event.view, context.shard, context.self) === 'secondary',
  },
}).createMachine({
  id: 'replica',
  context: ({ input }) => ({ ...input, epoch: 0, replicas: [], followers: {}, journaled: 0, reportsAhead: 0 }),
  initial: 'resolving',
  on: {
    ROLE: [
      { guard: 'primary', target: '.primary', actions: ['clock', 'adopt'] },
      { guard: 'secondary', target: '.secondary', actions: ['clock', 'adopt'] },
      { target: '.released', actions: ['clock', 'adopt'] },
    ],
  },
  states: {
    resolving: {},
    primary: {
      on: {
        REPORT: { actions: ['clock', 'hear'] },
        JOURNALED: { actions: ['clock', 'journaled'] },
      },
    },
    secondary: {},
    released: {},
  },
});
