/**
 * What a member knows from heartbeats, as plain reads of the membership
 * context: who is still alive, what each member last said about itself and
 * its shards, and so who leads. The statechart and the leader's planning
 * both ask these questions; keeping them here keeps the answers the same.
 */
import type { Heartbeat, MembershipContext, MemberStatus } from './membership.js';
import { stableAt } from './safeguards.js';

/** Heard from within the session timeout (this member always is). */
export function alive(ctx: MembershipContext, id: string): boolean {
  if (id === ctx.self.id) return true;
  const p = ctx.peers[id];
  return p !== undefined && ctx.now - p.at < ctx.config.sessionTimeout;
}

/** What this member says about itself, with the status it has now. */
export function heartbeatOf(ctx: MembershipContext, status: MemberStatus): Heartbeat {
  return {
    ...ctx.self,
    status,
    viewId: ctx.appliedViewId,
    serving: ctx.serving,
    notSynchronized: ctx.notSynchronized,
    ...(ctx.unhealthy !== null && { unhealthy: ctx.unhealthy }),
  };
}

/** Whether a worker's copy of a shard is synchronized, as that shard's primary last said (its last word counts after it died too). */
export function synchronizedIn(ctx: MembershipContext): (shard: number, worker: string) => boolean {
  const behind = new Set<string>(ctx.notSynchronized);
  for (const p of Object.values(ctx.peers)) for (const x of p.hb.notSynchronized ?? []) behind.add(x);
  return (shard, worker) => !behind.has(`${shard}/${worker}`);
}

export function statusOf(ctx: MembershipContext, id: string): MemberStatus | undefined {
  if (id === ctx.self.id)
    return ctx.leaving ? 'leaving' : ctx.view?.members.some((m) => m.id === id) ? 'member' : 'joining';
  return ctx.peers[id]?.hb.status;
}

/** Which shards a member serves and which view it has applied, as far as this member knows. */
export function reportOf(
  ctx: MembershipContext,
  id: string,
): { viewId: number; serving: readonly number[] } | undefined {
  if (id === ctx.self.id) return { viewId: ctx.appliedViewId, serving: ctx.serving };
  return ctx.peers[id]?.hb;
}

/**
 * The live member of the view that joined first; when none of the view is
 * alive, the longest-running live worker not leaving takes over (its first
 * successful compare-and-set proves it).
 */
export function leaderOf(ctx: MembershipContext): string | null {
  for (const m of ctx.view?.members ?? []) if (alive(ctx, m.id)) return m.id;
  const candidates: { id: string; startedAt: number }[] = [];
  if (!ctx.leaving) candidates.push(ctx.self);
  for (const p of Object.values(ctx.peers)) {
    if (alive(ctx, p.hb.id) && p.hb.status !== 'leaving') candidates.push(p.hb);
  }
  candidates.sort((a, b) => a.startedAt - b.startedAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return candidates[0]?.id ?? null;
}

/**
 * When this member next has something to do without being told: its
 * heartbeat falls due, a peer's silence reaches the session timeout, a
 * blind wait ends, or an unstable membership has been still long enough to
 * count as stable. The host ticks then, not on a fixed beat, so a silence
 * is noticed the moment it counts and an idle member wakes twice a second.
 */
export function nextDue(ctx: MembershipContext): number {
  const { heartbeatInterval, sessionTimeout } = ctx.config;
  let due = ctx.lastBeat + heartbeatInterval;
  const sooner = (at: number): void => {
    if (at > ctx.now && at < due) due = at;
  };
  for (const p of Object.values(ctx.peers)) sooner(p.at + sessionTimeout);
  if (ctx.blindSince !== null) sooner(ctx.blindSince + sessionTimeout);
  sooner(ctx.heardAt + deafAfter(ctx.config));
  const stable = ctx.view === null ? null : stableAt(ctx.view.safeguards, ctx.config);
  if (stable !== null) sooner(stable);
  return due;
}

/**
 * How long a member may hear nothing before it takes itself to be cut
 * off: longer than a stall goes unnoticed (half the session timeout, at
 * least two heartbeats) plus two heartbeats, so a short pause is never
 * taken for deafness; with the defaults (500 ms, 3 s) 2.5 s.
 */
export function deafAfter(config: { readonly heartbeatInterval: number; readonly sessionTimeout: number }): number {
  const { heartbeatInterval, sessionTimeout } = config;
  return Math.max(sessionTimeout / 2, 2 * heartbeatInterval) + 2 * heartbeatInterval;
}
