/**
 * What the leader writes next: the view planned from the current one and
 * what heartbeats say. Pure, so the statechart only decides when to write
 * (one write at a time) and this decides what.
 */
import { alive, heartbeatOf, leaderOf, reportOf, statusOf, synchronizedIn } from './heartbeats.js';
import type { Heartbeat, MembershipContext } from './membership.js';
import { placeAroundHeld } from './heldMembers.js';
import { applyMoves } from './operatorMoves.js';
import { completeHandoff, withoutMembers } from './placement.js';
import { judgeLost, resetQuota, sameSafeguards, stableAt, withChurn } from './safeguards.js';
import { NO_SAFEGUARDS, type Member, type Safeguards, type ShardAssignment, type View } from './view.js';

function sameShards(a: readonly ShardAssignment[], b: readonly ShardAssignment[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.primary !== y.primary || x.state !== y.state || x.next !== y.next || x.epoch !== y.epoch) return false;
    if (x.replicas.length !== y.replicas.length || x.replicas.some((r, j) => r !== y.replicas[j])) return false;
  }
  return true;
}

/**
 * Everything planView reads, as one string: equal keys give equal plans.
 * Time enters only through who is alive and whether an unstable membership
 * has settled, so a tick or a heartbeat that repeats the last one gives the
 * key planned last time. (A lost member is judged against the quota's
 * window when it is found lost, which changes who is alive.)
 */
export function planningKey(ctx: MembershipContext): string {
  const { view } = ctx;
  const parts: unknown[] = [
    ctx.self.id,
    ctx.leaving,
    ctx.revision,
    view === null ? '-' : `${view.viewId}${view.transitional ? 't' : ''}`,
    ctx.appliedViewId,
    ctx.serving,
    ctx.notSynchronized,
    ctx.moves,
    ctx.reset,
    ctx.settle,
    // Time enters here too: an unstable membership that has been still for stableAfter is stable again.
    view !== null && (stableAt(view.safeguards, ctx.config) ?? Infinity) <= ctx.now,
  ];
  for (const id of Object.keys(ctx.peers).sort()) {
    const hb = ctx.peers[id]!.hb;
    parts.push(
      id,
      alive(ctx, id),
      hb.status,
      hb.zone,
      hb.promotable,
      hb.startedAt,
      hb.viewId,
      hb.serving,
      hb.notSynchronized ?? [],
    );
  }
  return JSON.stringify(parts);
}

/**
 * What the leader should write now, or null when the view is right as it is.
 * Lost members go first, in a transitional view (survivors only), unless the
 * safeguards hold them (safeguards.ts); then the regular view admits
 * joiners, completes hand-offs whose old primary has let go, lets leavers go
 * once they hold nothing, and re-places shards around held members.
 */
export function planView(ctx: MembershipContext): View | null {
  if (leaderOf(ctx) !== ctx.self.id) return null;
  const { config, self, now } = ctx;
  const view = ctx.view;
  const inView = view?.members ?? [];
  // A first view over a key that held something unreadable starts above it: every view id and epoch
  // written there is at most the revision it was written at, so none of them can win over this one.
  const floor = view === null ? Math.max(0, ctx.revision) : 0;
  const viewId = (view?.viewId ?? floor) + 1;
  const base = {
    viewId,
    leader: self.id,
    replicas: view?.replicas ?? config.replicas,
    shardCount: view?.shardCount ?? config.shardCount,
    possibleDataLoss: view?.possibleDataLoss ?? [],
  };

  // Joiners (this worker too, when it takes over) in the order they started.
  const known = new Set(inView.map((m) => m.id));
  const joiners: Heartbeat[] = Object.values(ctx.peers)
    .map((p) => p.hb)
    .filter((hb) => !known.has(hb.id) && hb.status === 'joining' && alive(ctx, hb.id));
  if (!known.has(self.id) && !ctx.leaving) joiners.push(heartbeatOf(ctx, 'joining'));
  joiners.sort((a, b) => a.startedAt - b.startedAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));

  const leaving = (id: string): boolean => statusOf(ctx, id) === 'leaving';
  const recorded = view?.safeguards ?? NO_SAFEGUARDS;
  const verdict = judgeLost({
    lost: inView.filter((m) => !alive(ctx, m.id)),
    leaving,
    survivors: [...inView.filter((m) => alive(ctx, m.id)), ...joiners].filter((m) => !leaving(m.id)),
    primaryOfAny: (id) => view?.shards.some((s) => s.primary === id) ?? false,
    safeguards: settled(ctx.settle, ctx.reset === 'none' ? recorded : resetQuota(recorded)),
    config,
    now,
  });
  if (view !== null && verdict.drop.size > 0) {
    return {
      ...base,
      members: inView.filter((m) => !verdict.drop.has(m.id)),
      shards: withoutMembers(view.shards, verdict.drop),
      transitional: true,
      safeguards: withChurn(verdict.safeguards, true, now, config),
    };
  }
  const held = new Set(verdict.safeguards.held.map((h) => h.member));

  let joined = Math.max(0, ...inView.map((m) => m.joined));
  const admitted: Member[] = [
    ...inView,
    ...joiners.map((hb) => ({ id: hb.id, zone: hb.zone, promotable: hb.promotable, joined: ++joined })),
  ];

  const possibleDataLoss = [...base.possibleDataLoss];
  let shards: ShardAssignment[] = applyMoves(ctx, view?.shards.slice() ?? [], possibleDataLoss);
  shards.forEach((s, i) => {
    if (s.state !== 'PENDING' || s.primary === null) return;
    const report = reportOf(ctx, s.primary);
    if (report !== undefined && report.viewId >= (view?.viewId ?? 0) && !report.serving.includes(i))
      shards = completeHandoff(shards, i);
  });

  // A leaver holds secondaries as a non-promotable member until its primaries are handed off, then goes.
  // With nobody promotable left to take over, a leaver just goes (its shards go DEAD).
  const successors = admitted.some((m) => m.promotable && !leaving(m.id) && !held.has(m.id));
  const holdsPrimary = (id: string): boolean => shards.some((s) => s.primary === id || s.next === id);
  const gone = new Set(
    admitted
      .filter(
        (m) => leaving(m.id) && (!successors || (!holdsPrimary(m.id) && reportOf(ctx, m.id)?.serving.length === 0)),
      )
      .map((m) => m.id),
  );
  const staying = admitted.filter((m) => !gone.has(m.id));
  const safeguards = withChurn(verdict.safeguards, membershipChanged(view, staying, held), now, config);
  const placed = placeAroundHeld(held, shards.length === base.shardCount ? shards : undefined, {
    shardCount: base.shardCount,
    members: staying.filter((m) => !held.has(m.id)).map((m) => (leaving(m.id) ? { ...m, promotable: false } : m)),
    replicas: base.replicas,
    maxConcurrentMoves: config.maxConcurrentMoves,
    synchronized: synchronizedIn(ctx),
    // Unstable: primaries move only off leavers (and onto failed-over shards), not for balance.
    rebalance: safeguards.unstable === null ? 'full' : 'drain',
  });
  const next: View = {
    ...base,
    members: staying,
    // The leader leaving hands the pen to the next member in join order.
    leader: gone.has(self.id) ? (staying[0]?.id ?? '') : self.id,
    shards: floor === 0 ? placed : placed.map((s) => ({ ...s, epoch: s.epoch + floor })),
    transitional: false,
    possibleDataLoss,
    safeguards,
  };
  const unchanged =
    view !== null &&
    !view.transitional &&
    view.leader === next.leader &&
    view.members.length === staying.length &&
    view.members.every((m, i) => m.id === staying[i]!.id) &&
    sameShards(view.shards, placed) &&
    view.possibleDataLoss.length === possibleDataLoss.length &&
    sameSafeguards(view.safeguards, safeguards);
  return unchanged ? null : next;
}

/** An operator's rebalance: the membership counts as stable from here (the run of changes forgotten). */
function settled(settle: MembershipContext['settle'], safeguards: Safeguards): Safeguards {
  return settle === 'none' ? safeguards : { ...safeguards, unstable: null, churn: null };
}

/** Whether the next view's members, or those held among them, differ from the current view's. */
function membershipChanged(view: View | null, staying: readonly Member[], held: ReadonlySet<string>): boolean {
  if (view === null) return true;
  const wasHeld = view.safeguards.held;
  return (
    view.members.length !== staying.length ||
    view.members.some((m, i) => m.id !== staying[i]!.id) ||
    wasHeld.length !== held.size ||
    wasHeld.some((h) => !held.has(h.member))
  );
}
