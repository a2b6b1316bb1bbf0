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
  if (s === undefined || s.state === 'DEAD') return 'none';
  if (s.primary === me) return s.state === 'ACTIVE' ? 'primary' : 'none';
  if (s.replicas.includes(me) || s.next === me) return 'secondary';
  return 'none';
}

/** What a primary last heard from one secondary. */
export interface Follower {
  /** Journal stream sequence applied for this shard. */
  readonly seq: number;
  readonly at: number;
}

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
  | { type: 'TICK'; now: number };

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
    hear: assign({
      followers: ({ context, event }) => {
        if (event.type !== 'REPORT' || !context.replicas.includes(event.worker)) return context.followers;
        const prev = context.followers[event.worker];
        // Reports may arrive out of order: applied only ever moves forward.
        return { ...context.followers, [event.worker]: { seq: Math.max(prev?.seq ?? 0, event.seq), at: event.now } };
      },
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
  context: ({ input }) => ({ ...input, epoch: 0, replicas: [], followers: {} }),
  initial: 'resolving',
  on: {
    ROLE: [
      { guard: 'primary', target: '.primary', actions: ['clock', 'adopt'] },
      { guard: 'secondary', target: '.secondary', actions: ['clock', 'adopt'] },
      { target: '.released', actions: ['clock', 'adopt'] },
    ],
    TICK: { actions: 'clock' },
  },
  states: {
    resolving: {},
    primary: {
      on: { REPORT: { actions: ['clock', 'hear'] } },
    },
    secondary: {},
    released: {},
  },
});
