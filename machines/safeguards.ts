/**
 * Safeguards against cascading failover (DESIGN.md section 4), decided by
 * the leader as it plans a view and recorded in the view (view.ts's
 * Safeguards), so that a new leader carries them on and readers see them:
 *
 * - a quota (Couchbase's auto-failover quota): at most `failoverQuota`
 *   members dropped for silence within `failoverWindow`; a loss beyond it
 *   halts automatic failover until an operator resets it;
 * - a floor (Couchbase's minimum cluster size): no member is dropped for
 *   silence while fewer than `minMembers` live ones would be left, nor while
 *   no live promotable member could take its shards over;
 * - a brake (Akka's down-all-when-unstable): once the membership has kept
 *   changing for longer than `unstableAfter`, primaries are no longer moved
 *   to rebalance, until it has not changed for `stableAfter`.
 *
 * A silent member that may not be dropped is held: it stays in the view and
 * its shards stay with it (unserved) until it speaks again or may go.
 * Pure; time is the `now` the leader plans at.
 */
import type { MembershipConfig } from './membership.js';
import { NO_SAFEGUARDS, type HoldReason, type Member, type Safeguards, type View } from './view.js';

export interface LostMembers {
  /** Members of the view not heard from for a session timeout. */
  readonly lost: readonly Member[];
  /** Whether a member last said it was leaving: a leaver that falls silent is let go, uncounted. */
  readonly leaving: (id: string) => boolean;
  /** Who would be live members after the next regular view (joiners included, leavers not). */
  readonly survivors: readonly { readonly promotable: boolean }[];
  /** Whether a member is the primary of any shard. */
  readonly primaryOfAny: (id: string) => boolean;
  readonly safeguards: Safeguards;
  readonly config: MembershipConfig;
  readonly now: number;
}

/**
 * Whom the leader drops and whom it holds. Members found silent together
 * are judged together: all are dropped, or all are held (a loss of several
 * at once that would pass the quota halts failover for all of them; it
 * looks more like a partition, or trouble of our own, than like several
 * workers failing). Leavers are always let go and not counted.
 */
export function judgeLost(input: LostMembers): { drop: ReadonlySet<string>; safeguards: Safeguards } {
  const { lost, config, now, survivors } = input;
  const drop = new Set(lost.filter((m) => input.leaving(m.id)).map((m) => m.id));
  const silent = lost.filter((m) => !drop.has(m.id));
  let { dropped, failoverHalted } = input.safeguards;
  let reason: HoldReason | null = null;
  if (silent.length > 0) {
    const recent = dropped.filter((d) => now - d.at < config.failoverWindow);
    if (failoverHalted !== null) reason = 'quota';
    else if (survivors.length < config.minMembers) reason = 'minimum';
    else if (silent.some((m) => input.primaryOfAny(m.id)) && !survivors.some((s) => s.promotable)) reason = 'last-copy';
    else if (recent.length + silent.length > config.failoverQuota) {
      reason = 'quota';
      failoverHalted = now;
    } else {
      for (const m of silent) drop.add(m.id);
      dropped = [...recent, ...silent.map((m) => ({ member: m.id, at: now }))];
    }
  }
  const held = reason === null ? [] : silent.map((m) => ({ member: m.id, reason: reason! }));
  return { drop, safeguards: { ...input.safeguards, dropped, failoverHalted, held } };
}

/** An operator's reset: the quota counts from nothing again, and a halted failover runs again. */
export function resetQuota(safeguards: Safeguards): Safeguards {
  return { ...safeguards, dropped: [], failoverHalted: null };
}

/** Whether a reset would change anything: something dropped on record, or failover halted. */
export function quotaInUse(safeguards: Safeguards): boolean {
  return safeguards.failoverHalted !== null || safeguards.dropped.length > 0;
}

/**
 * The run of membership changes after a view that changed the membership
 * (`changed`) or not: a change within `stableAfter` of the last one goes on
 * with the run, a later one starts a new run. A run that has lasted longer
 * than `unstableAfter` marks the membership unstable; `stableAfter` with
 * no change clears it.
 */
export function withChurn(safeguards: Safeguards, changed: boolean, now: number, config: MembershipConfig): Safeguards {
  const { churn, unstable } = safeguards;
  const running = churn !== null && now - churn.last < config.stableAfter;
  if (!changed) return unstable !== null && !running ? { ...safeguards, unstable: null } : safeguards;
  const run = running ? { since: churn.since, last: now } : { since: now, last: now };
  const shaky = running && (unstable !== null || run.last - run.since > config.unstableAfter);
  return { ...safeguards, churn: run, unstable: shaky ? (unstable ?? now) : null };
}

/** When an unstable membership counts as stable again, or null when it is not unstable. */
export function stableAt(safeguards: Safeguards, config: MembershipConfig): number | null {
  if (safeguards.unstable === null || safeguards.churn === null) return null;
  return safeguards.churn.last + config.stableAfter;
}

export function sameSafeguards(a: Safeguards, b: Safeguards): boolean {
  return (
    a.failoverHalted === b.failoverHalted &&
    a.unstable === b.unstable &&
    a.churn?.since === b.churn?.since &&
    a.churn?.last === b.churn?.last &&
    a.dropped.length === b.dropped.length &&
    a.dropped.every((d, i) => d.member === b.dropped[i]!.member && d.at === b.dropped[i]!.at) &&
    a.held.length === b.held.length &&
    a.held.every((h, i) => h.member === b.held[i]!.member && h.reason === b.held[i]!.reason)
  );
}

/** A decision of the safeguards, as the host logs it. */
export type SafeguardDecision =
  /** Dropped for silence: `recent` of at most `quota` within the window. */
  | { readonly kind: 'dropped'; readonly member: string; readonly recent: number; readonly quota: number }
  | { readonly kind: 'held'; readonly member: string; readonly reason: HoldReason }
  /** A held member spoke again: it serves its shards as before. */
  | { readonly kind: 'released'; readonly member: string }
  | { readonly kind: 'halted'; readonly since: number; readonly dropped: readonly string[] }
  | { readonly kind: 'reset' }
  | { readonly kind: 'unstable'; readonly since: number; readonly changingSince: number }
  | { readonly kind: 'stable'; readonly unstableSince: number };

/** What changed in the safeguards from `before` to `after`, the view the leader just wrote. */
export function safeguardDecisions(before: View | null, after: View, config: MembershipConfig): SafeguardDecision[] {
  const was = before?.safeguards ?? NO_SAFEGUARDS;
  const now = after.safeguards;
  const out: SafeguardDecision[] = [];
  if (
    (was.failoverHalted !== null && now.failoverHalted === null) ||
    (was.dropped.length > 0 && now.dropped.length === 0)
  )
    out.push({ kind: 'reset' });
  for (const d of now.dropped) {
    if (was.dropped.some((w) => w.member === d.member && w.at === d.at)) continue;
    const recent = now.dropped.filter((x) => x.at <= d.at && d.at - x.at < config.failoverWindow).length;
    out.push({ kind: 'dropped', member: d.member, recent, quota: config.failoverQuota });
  }
  if (was.failoverHalted === null && now.failoverHalted !== null)
    out.push({ kind: 'halted', since: now.failoverHalted, dropped: now.dropped.map((d) => d.member) });
  for (const h of now.held) {
    if (!was.held.some((w) => w.member === h.member && w.reason === h.reason))
      out.push({ kind: 'held', member: h.member, reason: h.reason });
  }
  for (const h of was.held) {
    if (!now.held.some((x) => x.member === h.member) && after.members.some((m) => m.id === h.member))
      out.push({ kind: 'released', member: h.member });
  }
  if (was.unstable === null && now.unstable !== null)
    out.push({ kind: 'unstable', since: now.unstable, changingSince: now.churn?.since ?? now.unstable });
  if (was.unstable !== null && now.unstable === null) out.push({ kind: 'stable', unstableSince: was.unstable });
  return out;
}
