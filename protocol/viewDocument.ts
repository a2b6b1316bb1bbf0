/**
 * The cluster view as the cluster bucket stores it: a JSON document that
 * an operator reads with `nats kv get cohort_<c>_cluster view` and follows
 * with `nats kv watch` (one line per member and per shard), where members
 * and copies are named by id, not by index.
 *
 * Reading it is untrusted like any other value: it is turned into the
 * packed form (machines/view.ts) and checked by the same unpackView, so a
 * document that is not JSON is a DecodeError and one that is JSON but no
 * coherent view is a RangeError naming what, as for a msgpack view. Views
 * written by an older version (msgpack, packed) still read, so a rolling
 * upgrade keeps following the leader whichever version it runs; only JSON
 * is written.
 */
import { decode, encode } from '../bus/codec.js';
import { DecodeError } from '../bus/errors.js';
import {
  packView,
  unpackView,
  type HoldReason,
  type PackedSafeguards,
  type PackedView,
  type ShardState,
  type View,
} from '../machines/view.js';

/** Marks the document, so a reader can tell it from other JSON and from a later layout. */
export const VIEW_FORMAT = 'cohort-view/2';

export interface MemberDocument {
  readonly id: string;
  readonly zone: string;
  /** `held`: silent, kept in the view by a safeguard (see `safeguards.held` for why); `up` otherwise. */
  readonly state: 'up' | 'held';
  readonly promotable: boolean;
  readonly joined: number;
}

export interface ShardDocument {
  readonly shard: number;
  readonly state: ShardState;
  readonly primary: string | null;
  readonly secondaries: readonly string[];
  /** PENDING only: the member taking the shard over. */
  readonly next?: string;
  readonly epoch: number;
}

export interface ViewDocument {
  readonly format: typeof VIEW_FORMAT;
  readonly viewId: number;
  readonly leader: string;
  readonly transitional: boolean;
  readonly replicas: number;
  readonly shardCount: number;
  readonly members: readonly MemberDocument[];
  readonly shards: readonly ShardDocument[];
  readonly possibleDataLoss: readonly number[];
  readonly safeguards: {
    readonly dropped: readonly { readonly member: string; readonly at: number }[];
    readonly failoverHalted: number | null;
    readonly held: readonly { readonly member: string; readonly reason: HoldReason }[];
    readonly churn: { readonly since: number; readonly last: number } | null;
    readonly unstable: number | null;
  };
}

export function viewDocument(view: View): ViewDocument {
  const members = new Set(view.members.map((m) => m.id));
  const member = (id: string | null): string | null => {
    if (id !== null && !members.has(id))
      throw new RangeError(`view ${view.viewId}: shard copy on ${id}, who is not a member`);
    return id;
  };
  for (const h of view.safeguards.held)
    if (!members.has(h.member)) throw new RangeError(`view ${view.viewId}: ${h.member} is held but not a member`);
  const held = new Set(view.safeguards.held.map((h) => h.member));
  return {
    format: VIEW_FORMAT,
    viewId: view.viewId,
    leader: view.leader,
    transitional: view.transitional,
    replicas: view.replicas,
    shardCount: view.shards.length,
    members: view.members.map((m) => ({
      id: m.id,
      zone: m.zone,
      state: held.has(m.id) ? 'held' : 'up',
      promotable: m.promotable,
      joined: m.joined,
    })),
    shards: view.shards.map((s, shard) => ({
      shard,
      state: s.state,
      primary: member(s.primary),
      secondaries: s.replicas.map((r) => member(r)!),
      ...(s.next !== null && { next: member(s.next)! }),
      epoch: s.epoch,
    })),
    possibleDataLoss: view.possibleDataLoss,
    safeguards: view.safeguards,
  };
}

const utf8 = new TextEncoder();
const text = new TextDecoder('utf-8', { fatal: true });

/**
 * The stored value: one line per member and per shard, so `nats kv get`
 * needs no jq to be read. JSON is about 14 times the packed form (25 KB for
 * 256 shards on 5 members): on a server whose payload limit it would pass
 * (`limit`), the packed msgpack form is written instead, which every reader
 * still takes and `cohort decode` shows.
 */
export function encodeView(view: View, limit = Infinity): Uint8Array {
  const { members, shards, ...head } = viewDocument(view);
  const list = (items: readonly unknown[]): string =>
    items.length === 0 ? '[]' : `[\n  ${items.map((i) => JSON.stringify(i)).join(',\n  ')}\n]`;
  const top = JSON.stringify(head);
  const json = utf8.encode(`${top.slice(0, -1)},\n"members":${list(members)},\n"shards":${list(shards)}\n}\n`);
  return json.byteLength <= limit ? json : encode(packView(view));
}

/** The stored value as a view, JSON or an older version's msgpack; DecodeError or RangeError when it is none. */
export function decodeView(value: Uint8Array, where: string): View {
  // A msgpack view is a map: its first byte is never `{` (0x7b), nor whitespace before one.
  const first = value.find((b) => b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09);
  if (first !== 0x7b) return unpackView(decode(value, { where }));
  let doc: unknown;
  try {
    doc = JSON.parse(text.decode(value));
  } catch (err) {
    throw new DecodeError(where, `not JSON (${err instanceof Error ? err.message : String(err)})`, { cause: err });
  }
  return unpackView(packDocument(doc));
}

/** The document as the packed form unpackView checks, with every id a copy names resolved to a member. */
function packDocument(doc: unknown): PackedView {
  const d = doc as ViewDocument;
  if (typeof d !== 'object' || d === null || d.format !== VIEW_FORMAT || !Array.isArray(d.members))
    throw new RangeError(`not a cluster view (${VIEW_FORMAT})`);
  const where = `view ${JSON.stringify(d.viewId)}`;
  if (!Array.isArray(d.shards)) throw new RangeError(`${where}: shards is not a list`);
  const index = new Map<string, number>();
  const members = d.members.map((m, i): [string, string, boolean, number] => {
    if (typeof m !== 'object' || m === null) throw new RangeError(`${where}: member ${i} is malformed`);
    if (typeof m.id === 'string' && index.has(m.id)) throw new RangeError(`${where}: member ${i} is listed twice`);
    index.set(m.id, i);
    return [m.id, m.zone, m.promotable, m.joined];
  });
  const ix = (id: unknown, n: number, what: string): number => {
    if (id === null || id === undefined) return -1;
    const i = typeof id === 'string' ? index.get(id) : undefined;
    if (i === undefined) throw new RangeError(`${where}: shard ${n} ${what} ${JSON.stringify(id)} is not a member`);
    return i;
  };
  const states: readonly unknown[] = ['ACTIVE', 'PENDING', 'DEAD'];
  const shards = d.shards.map((s, n): number[] => {
    if (typeof s !== 'object' || s === null || s.shard !== n || !Array.isArray(s.secondaries))
      throw new RangeError(`${where}: shard ${n} is malformed`);
    const state = states.indexOf(s.state);
    if (state === -1) throw new RangeError(`${where}: shard ${n} has no known state`);
    if (s.primary === undefined) throw new RangeError(`${where}: shard ${n} is malformed`);
    return [
      ix(s.primary, n, 'primary'),
      state,
      ix(s.next, n, 'next'),
      s.epoch,
      ...s.secondaries.map((r: unknown) => ix(r, n, 'secondary')),
    ];
  });
  if (d.shardCount !== shards.length) throw new RangeError(`${where}: shardCount is not the number of shards`);
  const g = d.safeguards as ViewDocument['safeguards'] | undefined;
  if (typeof g !== 'object' || g === null || Array.isArray(g))
    throw new RangeError(`${where}: safeguards is not a map`);
  const pairs = <T>(list: unknown, pair: (item: Record<string, unknown>) => T): T[] | unknown =>
    Array.isArray(list) ? list.map((item) => (typeof item === 'object' && item !== null ? pair(item) : item)) : list;
  const safeguards = {
    dropped: pairs(g.dropped, (x) => [x['member'], x['at']]),
    failoverHalted: g.failoverHalted,
    held: pairs(g.held, (x) => [x['member'], x['reason']]),
    // Anything but {since, last} or null must fail the check, a list too (the packed form's shape).
    churn:
      g.churn === null
        ? null
        : Array.isArray(g.churn) || typeof g.churn !== 'object'
          ? 'malformed'
          : [g.churn.since, g.churn.last],
    unstable: g.unstable,
  } as PackedSafeguards;
  const heldIds = new Set(Array.isArray(g.held) ? g.held.map((h) => (h as { member?: unknown })?.member) : []);
  d.members.forEach((m, i) => {
    if (m.state !== (heldIds.has(m.id) ? 'held' : 'up'))
      throw new RangeError(`${where}: member ${i} state ${JSON.stringify(m.state)} disagrees with safeguards.held`);
  });
  return {
    v: 1,
    viewId: d.viewId,
    members,
    leader: d.leader,
    replicas: d.replicas,
    transitional: d.transitional,
    possibleDataLoss: d.possibleDataLoss,
    shards,
    safeguards,
  };
}
