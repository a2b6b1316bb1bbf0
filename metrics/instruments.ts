/**
 * Every metric cohort records, in one place: the meter `cohort` and its
 * instruments, with their names, units and descriptions. Hosts (the worker's
 * dispatch, catalog, sessions and membership; the client's connection and
 * attempts) record at their edges; machines never do.
 *
 * Through `@opentelemetry/api` alone this is a no-op: nothing is kept until
 * an application (or `cohort worker --metrics-port`) installs an SDK
 * MeterProvider. Attributes are bounded sets only (application names the
 * worker hosts, outcomes, error class names, shard numbers, worker ids):
 * never a session id or a client id.
 */
import {
  metrics,
  type Attributes,
  type Counter,
  type Histogram,
  type MeterProvider,
  type ObservableGauge,
  type UpDownCounter,
} from '@opentelemetry/api';

export const METER_NAME = 'cohort';

/** Milliseconds, from well under one (the memory bus) to a request's whole timeout. */
const LATENCY_BUCKETS_MS = [0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000];

/** Commands and reads by how they ended: `ok`, `duplicate`, `rejected` (the machine refused the event), or the error's class name. */
export type RequestOutcome = 'ok' | 'duplicate' | 'rejected' | 'unanswered' | string;

export interface CohortMetrics {
  /** Requests on command subjects (`kind` command or tx, a transaction step), by `app`, `kind`, `outcome`. */
  readonly commands: Counter;
  /** From receipt to reply, by `app`, `kind`, `outcome`. */
  readonly commandDuration: Histogram;
  /** Requests on read subjects (`kind` read, ro for a read-only read, verify for a cache verification), by `app`, `kind`, `outcome`. */
  readonly reads: Counter;
  readonly readDuration: Histogram;
  /** Journal appends (session records, epoch markers, probes), by `outcome` (`ok` or the error's class name). */
  readonly appendDuration: Histogram;
  /** Sessions in memory, by `app`. */
  readonly activeSessions: UpDownCounter;
  /** Sessions brought into memory, by `app` and `from` (`store`: snapshot and journal; `secondary`: this worker's own copy). */
  readonly activations: Counter;
  /** Sessions that left memory with their snapshot written, by `app` and `reason` (`idle`, `leaving`). */
  readonly passivations: Counter;
  /** Snapshots written, by `app`. */
  readonly snapshots: Counter;
  /** Shards this worker began or stopped serving as primary on a view, by `direction` (`gained`, `lost`). */
  readonly shardMoves: Counter;
  /** Shards this worker took over from a primary no longer in the view. */
  readonly failovers: Counter;
  /** Per shard this worker is primary of: how far behind its slowest secondary is, by `worker` and `shard`. */
  readonly replicaLag: ObservableGauge;
  /** Client connection state changes, by `state` (the state entered). */
  readonly connectionStates: Counter;
  /** Client request attempts after the first, by `after` (what the previous attempt ran into). */
  readonly retries: Counter;
}

const byProvider = new WeakMap<MeterProvider, CohortMetrics>();

/**
 * The instruments on `provider`'s meter `cohort` (default: the global
 * provider as it is now), created once per provider. An SDK installed
 * globally later is not seen by instruments taken before: take them when a
 * worker or client starts.
 */
export function cohortMetrics(provider: MeterProvider = metrics.getMeterProvider()): CohortMetrics {
  let made = byProvider.get(provider);
  if (made === undefined) {
    made = createInstruments(provider);
    byProvider.set(provider, made);
  }
  return made;
}

function createInstruments(provider: MeterProvider): CohortMetrics {
  const meter = provider.getMeter(METER_NAME);
  const latency = { unit: 'ms', advice: { explicitBucketBoundaries: LATENCY_BUCKETS_MS } };
  return {
    commands: meter.createCounter('cohort.commands', {
      unit: '{command}',
      description: 'Requests handled on command subjects (commands and transaction steps), by outcome',
    }),
    commandDuration: meter.createHistogram('cohort.command.duration', {
      ...latency,
      description: 'Time from receiving a command to sending its reply',
    }),
    reads: meter.createCounter('cohort.reads', {
      unit: '{read}',
      description: 'Requests handled on read subjects (reads, read-only reads, cache verifications), by outcome',
    }),
    readDuration: meter.createHistogram('cohort.read.duration', {
      ...latency,
      description: 'Time from receiving a read to sending its reply',
    }),
    appendDuration: meter.createHistogram('cohort.journal.append.duration', {
      ...latency,
      description: 'Time a journal append took to be acknowledged (or to fail)',
    }),
    activeSessions: meter.createUpDownCounter('cohort.sessions.active', {
      unit: '{session}',
      description: 'Sessions in memory on this worker',
    }),
    activations: meter.createCounter('cohort.session.activations', {
      unit: '{session}',
      description: 'Sessions brought into memory, from the store or from this worker’s secondary copy',
    }),
    passivations: meter.createCounter('cohort.session.passivations', {
      unit: '{session}',
      description: 'Sessions that left memory with their snapshot written',
    }),
    snapshots: meter.createCounter('cohort.snapshots', {
      unit: '{snapshot}',
      description: 'Session snapshots written',
    }),
    shardMoves: meter.createCounter('cohort.shard.moves', {
      unit: '{shard}',
      description: 'Shards this worker began (gained) or stopped (lost) serving as primary, on applying a view',
    }),
    failovers: meter.createCounter('cohort.failovers', {
      unit: '{shard}',
      description: 'Shards this worker took over from a primary that is no longer in the view',
    }),
    replicaLag: meter.createObservableGauge('cohort.replica.lag', {
      unit: '{sequence}',
      description:
        'Per shard this worker is primary of: journal stream sequences between its last append and the slowest secondary’s report (other shards’ entries between them count too)',
    }),
    connectionStates: meter.createCounter('cohort.client.connection.states', {
      unit: '{change}',
      description: 'Client connection state changes, by the state entered',
    }),
    retries: meter.createCounter('cohort.client.retries', {
      unit: '{attempt}',
      description: 'Client request attempts after the first, by what the previous one ran into',
    }),
  };
}

/**
 * Shared attribute objects for the few fixed combinations on the hot path,
 * by nested lookup: nothing is allocated per call once a combination was
 * seen. Callers pass bounded values only (see the module comment).
 */
export function attributeCache(): (app: string, kind: string, outcome: RequestOutcome) => Attributes {
  const cache = new Map<string, Map<string, Map<string, Attributes>>>();
  return (app, kind, outcome) => {
    let byKind = cache.get(app);
    if (byKind === undefined) cache.set(app, (byKind = new Map()));
    let byOutcome = byKind.get(kind);
    if (byOutcome === undefined) byKind.set(kind, (byOutcome = new Map()));
    let a = byOutcome.get(outcome);
    if (a === undefined) byOutcome.set(outcome, (a = Object.freeze({ app, kind, outcome })));
    return a;
  };
}
