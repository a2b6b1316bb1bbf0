import type { Bus, View } from '../index.js';
import { bucketName, decode, heartbeatFilter, parseSubject, watchView } from '../internal.js';
import { CliUsageError } from './loadApplications.js';
import {
  age,
  connectAdmin,
  currentView,
  OPERATOR_USAGE,
  OperatorError,
  parseOperatorArgs,
  table,
  untilInterrupted,
  wholeNumber,
  type OperatorArgs,
  type OperatorIO,
} from './operator.js';
import { watchReplicaLag, type ReplicaLag } from './replicaLag.js';
import { safeguardNotes } from './up.js';

export const STATUS_USAGE = `usage: cohort status [--watch] [--listen MS] --nats URL [--cluster NAME] [--json]

The cluster as its view and its members' heartbeats show it: view id,
leader, each member's zone, state, shards as primary and as secondary, how
long ago it was last heard and how far its secondary copies lag, and the
shards not ACTIVE. It listens MS (default 1500) for heartbeats and replica
reports first. --watch: again on every view change, until SIGINT.

  --watch               redraw on every view change (with --json: one object per line)
  --listen MS           how long to listen for heartbeats before the first report
${OPERATOR_USAGE}
`;

export interface StatusArgs extends OperatorArgs {
  watch: boolean;
  listen: number;
}

export function parseStatusArgs(args: string[]): StatusArgs {
  const { values, base } = parseOperatorArgs(
    args,
    { watch: { type: 'boolean' }, listen: { type: 'string' } },
    { min: 0, max: 0, names: '' },
  );
  const listen = wholeNumber('listen', values['listen'], 0) ?? 1_500;
  if (listen > 60_000) throw new CliUsageError('--listen is at most 60000 ms');
  return { ...base, watch: values['watch'] === true, listen };
}

/** What heartbeats told of one member: when it was last heard, what it said of itself. */
interface Heard {
  at: number;
  status: string;
  unhealthy: string | undefined;
}

export interface MemberStatus {
  id: string;
  zone: string;
  promotable: boolean;
  /** `member`, `leaving`, `joining` as its heartbeat says; `held` when the safeguards keep it silent in the view; `silent` when not heard while listening. */
  state: string;
  unhealthy: string | null;
  primaries: number[];
  secondaries: number[];
  /** Ms since its last heartbeat; null when none was heard while listening. */
  heartbeatAgeMs: number | null;
  /** Entries its secondary copies are behind on the worst of their shards; null when it reported none. */
  replicaLag: number | null;
}

export interface ClusterStatus {
  cluster: string;
  viewId: number;
  leader: string;
  shardCount: number;
  replicas: number;
  transitional: boolean;
  members: MemberStatus[];
  notActive: { shard: number; state: string; primary: string | null; next: string | null; epoch: number }[];
  possibleDataLoss: number[];
  notes: string[];
}

export function clusterStatus(
  cluster: string,
  view: View,
  heard: ReadonlyMap<string, Heard>,
  lag: ReadonlyMap<string, number>,
  now: number,
): ClusterStatus {
  const held = new Set(view.safeguards.held.map((h) => h.member));
  return {
    cluster,
    viewId: view.viewId,
    leader: view.leader,
    shardCount: view.shardCount,
    replicas: view.replicas,
    transitional: view.transitional,
    members: view.members.map((m) => {
      const h = heard.get(m.id);
      return {
        id: m.id,
        zone: m.zone,
        promotable: m.promotable,
        state: held.has(m.id) ? 'held' : (h?.status ?? 'silent'),
        unhealthy: h?.unhealthy ?? null,
        primaries: view.shards.flatMap((s, i) => (s.primary === m.id ? [i] : [])),
        secondaries: view.shards.flatMap((s, i) => (s.replicas.includes(m.id) ? [i] : [])),
        heartbeatAgeMs: h === undefined ? null : Math.max(0, Math.round(now - h.at)),
        replicaLag: lag.get(m.id) ?? null,
      };
    }),
    notActive: view.shards.flatMap((s, shard) =>
      s.state === 'ACTIVE' ? [] : [{ shard, state: s.state, primary: s.primary, next: s.next, epoch: s.epoch }],
    ),
    possibleDataLoss: [...view.possibleDataLoss],
    notes: safeguardNotes(view),
  };
}

export function describeStatus(s: ClusterStatus): string[] {
  const lines = [
    `cluster ${s.cluster}  view ${s.viewId}  leader ${s.leader || '-'}  ${s.shardCount} shards, ${s.replicas} secondar${s.replicas === 1 ? 'y' : 'ies'} each${s.transitional ? '  (transitional)' : ''}`,
    ...table([
      ['member', 'zone', 'state', 'primary', 'secondary', 'heartbeat', 'replica lag'],
      ...s.members.map((m) => [
        `${m.id}${m.id === s.leader ? '*' : ''}`,
        m.zone,
        `${m.state}${m.unhealthy ? ` (unhealthy: ${m.unhealthy})` : ''}${m.promotable ? '' : ' (not promotable)'}`,
        String(m.primaries.length),
        String(m.secondaries.length),
        m.heartbeatAgeMs === null ? 'not heard' : `${age(m.heartbeatAgeMs)} ago`,
        m.replicaLag === null ? '-' : String(m.replicaLag),
      ]),
    ]),
  ];
  if (s.notActive.length === 0) lines.push('every shard ACTIVE');
  else
    lines.push(
      `${s.notActive.length} shards not ACTIVE: ${s.notActive
        .map((n) => `${n.shard} ${n.state}${n.primary ? ` on ${n.primary}` : ''}${n.next ? ` -> ${n.next}` : ''}`)
        .join(', ')}`,
    );
  if (s.possibleDataLoss.length > 0) lines.push(`possible data loss on shards ${s.possibleDataLoss.join(', ')}`);
  lines.push(...s.notes);
  return lines;
}

/** Heartbeats as they come: who spoke when, and what it said of itself. Malformed ones are skipped. */
function listenToHeartbeats(bus: Bus, cluster: string): { heard: Map<string, Heard>; stop(): void } {
  const heard = new Map<string, Heard>();
  const sub = bus.subscribe(heartbeatFilter(cluster), (m) => {
    try {
      const target = parseSubject(m.subject);
      const hb = decode(m.data, { where: 'heartbeat' }) as Record<string, unknown> | null;
      if (target.kind !== 'hb' || typeof hb !== 'object' || hb === null || hb['id'] !== target.worker) return;
      heard.set(target.worker, {
        at: performance.now(),
        status: typeof hb['status'] === 'string' ? hb['status'] : 'unknown',
        unhealthy: typeof hb['unhealthy'] === 'string' ? hb['unhealthy'] : undefined,
      });
    } catch {
      // Not a heartbeat anyone should trust: the member counts as not heard.
    }
  });
  return { heard, stop: () => sub.unsubscribe() };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** `cohort status`: one report, or (--watch) one per view until SIGINT. */
export async function runStatus(options: StatusArgs & OperatorIO): Promise<number> {
  const bus = await connectAdmin(options, 'status');
  let lag: ReplicaLag | undefined;
  let beats: { heard: Map<string, Heard>; stop(): void } | undefined;
  try {
    await currentView(bus, options.cluster);
    beats = listenToHeartbeats(bus, options.cluster);
    lag = await watchReplicaLag(bus, options.cluster, Math.max(2_000, options.listen * 2));
    await sleep(options.listen);
    const report = (view: View): void => {
      const s = clusterStatus(options.cluster, view, beats!.heard, lag!.byWorker(), performance.now());
      if (options.json) options.write(JSON.stringify(s));
      // Redrawn in a terminal; one report after another elsewhere (a log, a pipe).
      else if (options.watch && process.stdout.isTTY) options.write(`\x1b[2J\x1b[H${describeStatus(s).join('\n')}`);
      else options.write(describeStatus(s).join('\n') + (options.watch ? '\n' : ''));
    };
    if (!options.watch) {
      report(await currentView(bus, options.cluster));
      return 0;
    }
    const interrupted = untilInterrupted();
    try {
      const kv = await bus.kv({ bucket: bucketName(options.cluster, 'cluster'), create: false });
      const watch = await watchView(kv, report, (err, revision) =>
        options.warn(`view revision ${revision} skipped: ${err instanceof Error ? err.message : String(err)}`),
      );
      await interrupted.done;
      watch.stop();
      return 0;
    } finally {
      interrupted.dispose();
    }
  } catch (err) {
    if (err instanceof OperatorError) {
      options.warn(err.message);
      return 1;
    }
    throw err;
  } finally {
    beats?.stop();
    lag?.stop();
    await bus.close();
  }
}
