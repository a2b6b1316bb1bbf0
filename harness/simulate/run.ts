import {
  CONNECTION_DEFAULTS,
  MEMBERSHIP_DEFAULTS,
  seededEnvironment,
  type Application,
  type Client,
} from '../../internal.js';
import {
  checkHistory,
  HistoryRecorder,
  readJournals,
  sessionKeyOf,
  type FinalDocument,
  type Operation,
  type Violation,
} from '../checker/index.js';
import { SimCluster, type SimConnectOptions, type SimWorkerOptions } from './cluster.js';
import { ALL_FAULTS, checkFaults, NO_FAULTS, type Faults } from './faults.js';
import { FaultInjector, type FaultKind } from './injector.js';
import { RunLoop } from './loop.js';
import { seedOf } from './seeds.js';
import { servingDisagreements } from './serving.js';
import { Trace } from './trace.js';
import type { Workload } from './workload.js';
import { exampleWorkload } from './workloads.js';

export interface SimulateOptions {
  /** Everything the run does is drawn from it: the same seed replays the same run, trace for trace. */
  readonly seed: number;
  readonly applications: readonly Application[];
  /** Worker processes (default 3). */
  readonly workers?: number;
  /** Client connections, each running the workload (default 3). */
  readonly clients?: number;
  /** Virtual ms of workload under faults (default 60 000); a recovery without faults follows. */
  readonly duration?: number;
  /** Default none; `all` is ALL_FAULTS. */
  readonly faults?: Faults | 'none' | 'all';
  /** Default: the example workload of a ledger or whiteboard application. */
  readonly workload?: Workload;
  /** Default `sim`. */
  readonly cluster?: string;
  /** Default 16: fewer than a real cluster's 256, for speed; every shard still moves. */
  readonly shardCount?: number;
  /** Membership, passed to every worker (defaults as startWorker's). */
  readonly heartbeatInterval?: number;
  readonly sessionTimeout?: number;
  readonly replicas?: number;
  readonly maxConcurrentMoves?: number;
  /**
   * Members dropped for silence per failover window before automatic
   * failover halts. Default Infinity here (startWorker's is 3): faults kill,
   * pause and cut off workers again and again, and a halted failover would
   * leave shards unserved through the recovery. Give a number to test the
   * quota itself.
   */
  readonly failoverQuota?: number;
  /** Client connections (defaults as connect()'s). */
  readonly troubledInterval?: number;
  readonly attemptTimeout?: number;
  readonly reconnectInterval?: number;
  /** Anything else startWorker takes (clients' records, a logger, ...). */
  readonly worker?: SimWorkerOptions;
  /** Anything else connect() takes (timeout, readOnlyFallback, ...). */
  readonly connection?: SimConnectOptions;
  /**
   * Virtual ms after the heal in which the workload goes on without faults
   * and every session it sends to must acknowledge a command (liveness).
   * Default 3 session timeouts plus the troubled interval.
   */
  readonly recovery?: number;
  /** Report sessions whose journal was compacted, so not everything could be checked (default true). */
  readonly requireFullJournal?: boolean;
  /** Each line of the trace as it happens (`cohort simulate --trace`). */
  readonly onTrace?: (line: string) => void;
}

export interface SimulateStats {
  /** Virtual ms from the first worker's start to the last check. */
  readonly simulatedMs: number;
  readonly wallMs: number;
  /** This process's CPU time over the run (user and system): less sensitive to a busy machine than wallMs. */
  readonly cpuMs: number;
  /** Sends and reads recorded. */
  readonly operations: number;
  readonly acknowledged: number;
  /** Faults injected, by kind; `drop` and `duplicate` count messages. */
  readonly faults: Readonly<Record<FaultKind | 'drop' | 'duplicate', number>>;
  readonly deliveries: number;
  readonly timers: number;
  readonly traceLines: number;
}

export interface SimulateResult {
  readonly seed: number;
  /** No violation and no error. */
  readonly ok: boolean;
  /** What the history checker found, in time order. */
  readonly violations: readonly Violation[];
  /** What kept the run from going as planned: a worker that never started, a workload that threw, a final read that failed. */
  readonly errors: readonly string[];
  /** sha256 of everything that happened, in order (hex). */
  readonly trace: string;
  readonly history: readonly Operation[];
  /** Each session's document read back after the run. */
  readonly finals: readonly FinalDocument[];
  readonly stats: SimulateStats;
}

/** Virtual time a run starts at: a plausible date, so journal times read as times. */
export const SIMULATION_START = Date.UTC(2025, 0, 1);

function resolveFaults(faults: SimulateOptions['faults']): Faults {
  if (faults === undefined || faults === 'none') return NO_FAULTS;
  if (faults === 'all') return ALL_FAULTS;
  return checkFaults(faults);
}

function count(name: string, value: number | undefined, fallback: number, min: number): number {
  const n = value ?? fallback;
  if (!Number.isSafeInteger(n) || n < min)
    throw new RangeError(`simulate: ${name} must be a whole number >= ${min}, got ${n}`);
  return n;
}

/**
 * One deterministic whole-cluster run (DESIGN.md section 9): workers,
 * clients and the memory bus in this process on one virtual clock, faults
 * drawn from the seed, every operation recorded and checked.
 *
 * The run: the workers start and form a cluster, the clients connect; for
 * `duration` the workload runs under faults; then every fault heals, the
 * workload runs on for `recovery` (liveness), stops, and once every
 * operation has completed each session is read back and the history is
 * checked against the journal.
 */
export async function simulate(options: SimulateOptions): Promise<SimulateResult> {
  const run = new Simulation(options);
  // A rejection nobody handles would end a real process: the run reports it and goes on.
  const unhandled = (reason: unknown): void => run.unhandled(reason);
  process.on('unhandledRejection', unhandled);
  try {
    return await run.run();
  } finally {
    process.off('unhandledRejection', unhandled);
  }
}

class Simulation {
  readonly #wallStart = performance.now();
  readonly #cpuStart = process.cpuUsage();
  readonly #options: SimulateOptions;
  readonly #workers: number;
  readonly #clients: number;
  readonly #duration: number;
  readonly #faults: Faults;
  readonly #workload: Workload;
  readonly #sessionTimeout: number;
  readonly #troubledInterval: number;
  readonly #attemptTimeout: number;
  readonly #recovery: number;
  readonly #trace: Trace;
  readonly #recorder: HistoryRecorder;
  readonly #cluster: SimCluster;
  readonly #loop: RunLoop;
  readonly #start: number;
  readonly #errors: string[] = [];
  #traced = 0;

  constructor(options: SimulateOptions) {
    this.#options = options;
    const { seed, applications } = options;
    if (!Number.isSafeInteger(seed)) throw new RangeError(`simulate: seed must be a whole number, got ${seed}`);
    this.#workers = count('workers', options.workers, 3, 1);
    this.#clients = count('clients', options.clients, 3, 1);
    this.#duration = count('duration', options.duration, 60_000, 0);
    this.#faults = resolveFaults(options.faults);
    const workload = options.workload ?? exampleWorkload(applications);
    if (workload === undefined)
      throw new TypeError('simulate: give a workload (the example ones know only the ledger and the whiteboard)');
    this.#workload = workload;
    this.#sessionTimeout = options.sessionTimeout ?? MEMBERSHIP_DEFAULTS.sessionTimeout;
    this.#troubledInterval = options.troubledInterval ?? CONNECTION_DEFAULTS.troubledInterval;
    this.#attemptTimeout = options.attemptTimeout ?? 2_000;
    this.#recovery = count('recovery', options.recovery, 3 * this.#sessionTimeout + this.#troubledInterval, 0);
    this.#trace = new Trace(() => this.#now - SIMULATION_START, options.onTrace);
    this.#recorder = new HistoryRecorder({ now: () => this.#cluster.clock.now() });
    this.#cluster = new SimCluster({
      seed,
      start: SIMULATION_START,
      cluster: options.cluster ?? 'sim',
      applications,
      shardCount: options.shardCount ?? 16,
      worker: {
        ...options.worker,
        ...defined({
          heartbeatInterval: options.heartbeatInterval,
          sessionTimeout: options.sessionTimeout,
          replicas: options.replicas,
          maxConcurrentMoves: options.maxConcurrentMoves,
        }),
        failoverQuota: options.failoverQuota ?? options.worker?.failoverQuota ?? Infinity,
      },
      connection: {
        ...options.connection,
        ...defined({
          troubledInterval: options.troubledInterval,
          attemptTimeout: options.attemptTimeout,
          reconnectInterval: options.reconnectInterval,
        }),
      },
      faults: this.#faults,
      trace: this.#trace,
      recorder: this.#recorder,
    });
    this.#loop = new RunLoop(this.#cluster.clock, this.#cluster.server, () => this.#traceOperations());
    this.#start = this.#cluster.clock.now();
  }

  get #now(): number {
    return this.#cluster.clock.now();
  }

  unhandled(reason: unknown): void {
    const what = reason instanceof Error ? `${reason.name}: ${reason.message}` : String(reason);
    this.#trace.add(`unhandled ${what}`);
    this.#errors.push(`unhandled rejection at ${this.#now - this.#start} ms (it would end its process): ${what}`);
  }

  async run(): Promise<SimulateResult> {
    await this.#form();
    const { healedAt, injector } = await this.#work();
    const finals = await this.#readBack();
    this.#cluster.stopSupervising();
    for (const disagreement of servingDisagreements(this.#cluster.workers))
      this.#errors.push(`after the recovery: ${disagreement}`);
    const journals = await this.#loop.run(
      readJournals(this.#audit.bus, this.#cluster.name),
      this.#now + 60_000,
      'reading the journal',
    );
    const probed = livenessProbes(
      this.#recorder.operations,
      healedAt,
      this.#recovery - this.#troubledInterval - this.#attemptTimeout,
    );
    const violations = checkHistory({
      history: this.#recorder.operations,
      journals,
      applications: this.#options.applications,
      finals,
      liveness: {
        healedAt,
        bound: this.#recovery,
        sessions: probed,
        // Only sends that ended after the heal can show it: the checker need not look through the rest.
        probes: this.#recorder.operations.filter((op) => op.kind === 'send' && op.completedAt >= healedAt),
      },
      ...defined({ requireFullJournal: this.#options.requireFullJournal }),
    });
    return this.#result(violations, finals, injector);
  }

  /** The workers start and form a cluster; the clients connect. */
  async #form(): Promise<void> {
    const cluster = this.#cluster;
    const limit = (): number => this.#now + 10 * this.#sessionTimeout;
    for (let slot = 0; slot < this.#workers; slot++) void cluster.spawnWorker(slot);
    await this.#loop.drive(() => cluster.workers.every((w) => w.worker !== undefined), limit());
    for (const w of cluster.workers)
      if (w.worker === undefined)
        this.#errors.push(`worker ${w.process.name} did not start: ${String(w.error ?? 'not in time')}`);
    let connected = 0;
    for (let i = 0; i < this.#clients; i++) void cluster.connectClient(i).then(() => connected++);
    await this.#loop.drive(() => connected === this.#clients, limit());
  }

  /** The workload under faults for `duration`, the heal, the recovery; then the workload stops. */
  async #work(): Promise<{ healedAt: number; injector: FaultInjector }> {
    const cluster = this.#cluster;
    const healAt = this.#now + this.#duration;
    const stopAt = healAt + this.#recovery;
    let running = true;
    let finished = 0;
    let workloads = 0;
    for (const c of cluster.clients) {
      if (c.client === undefined) {
        this.#errors.push(`client ${c.label} did not connect: ${String(c.error ?? 'not in time')}`);
        continue;
      }
      workloads++;
      void this.#workload({
        client: c.client,
        index: c.index,
        clients: this.#clients,
        duration: this.#duration,
        random: seededEnvironment(seedOf(this.#options.seed, `workload/${c.label}`)).random,
        sleep: (ms) => new Promise((resolve) => c.process.clock.setTimeout(resolve, ms)),
        now: () => this.#now,
        running: () => running,
      })
        .catch((err: unknown) => this.#errors.push(`workload of ${c.label} threw: ${String(err)}`))
        .finally(() => finished++);
    }
    const injector = new FaultInjector({
      cluster,
      faults: this.#faults,
      random: seededEnvironment(seedOf(this.#options.seed, 'faults')).random,
      sessionTimeout: this.#sessionTimeout,
    });
    injector.start(healAt);
    cluster.network.disturb();
    await this.#loop.drive(() => false, healAt);
    injector.healAll();
    cluster.network.calm();
    const healedAt = this.#now;
    this.#trace.add('heal all');
    await this.#loop.drive(() => false, stopAt);
    running = false;
    const bound = stopAt + this.#troubledInterval + 2 * this.#attemptTimeout + 10_000;
    await this.#loop.drive(() => finished === workloads, bound);
    if (finished < workloads) this.#errors.push(`${workloads - finished} workloads still running at the end`);
    return { healedAt, injector };
  }

  #auditor: ReturnType<SimCluster['auditor']> | undefined;

  get #audit(): ReturnType<SimCluster['auditor']> {
    this.#auditor ??= this.#cluster.auditor();
    return this.#auditor;
  }

  /** Every session the history touched, read back by a client that saw no fault. */
  async #readBack(): Promise<FinalDocument[]> {
    const finals: FinalDocument[] = [];
    const sessions = new Map<string, { app: string; session: string }>();
    for (const op of this.#recorder.operations) sessions.set(sessionKeyOf(op.app, op.session), op);
    const limit = this.#now + this.#troubledInterval + 30_000;
    let auditor: Client;
    try {
      auditor = await this.#loop.run(this.#audit.connect(), limit, 'the auditor connecting');
    } catch (err) {
      this.#errors.push(`the auditor did not connect: ${String(err)}`);
      return finals;
    }
    const reads = [...sessions.values()].map(async ({ app, session }) => {
      try {
        const r = await auditor.session(app, session).read();
        finals.push({ app, session, seq: r.seq, document: r.document, state: r.state, at: this.#now });
      } catch (err) {
        this.#errors.push(`final read of ${app}/${session} failed: ${String(err)}`);
      }
    });
    await this.#loop.run(Promise.all(reads), limit, 'final reads').catch((err: unknown) => {
      this.#errors.push(String(err));
    });
    return finals.sort((a, b) => sessionKeyOf(a.app, a.session).localeCompare(sessionKeyOf(b.app, b.session)));
  }

  /** Operations go into the trace as they complete, in the order they do. */
  #traceOperations(): void {
    const ops = this.#recorder.operations;
    for (; this.#traced < ops.length; this.#traced++) {
      const op = ops[this.#traced]!;
      const error = op.error === undefined ? '' : ` ${op.error}`;
      this.#trace.add(
        `op ${op.client} ${op.kind} ${op.app}/${op.session} ${op.event?.type ?? ''} ${op.outcome} seq=${op.seq ?? '-'} from ${op.invokedAt - SIMULATION_START}${error}`,
      );
    }
  }

  #result(violations: Violation[], finals: FinalDocument[], injector: FaultInjector): SimulateResult {
    const history = this.#recorder.operations;
    const net = this.#cluster.network.counts;
    const errors = [...this.#errors];
    return {
      seed: this.#options.seed,
      ok: violations.length === 0 && errors.length === 0,
      violations,
      errors,
      trace: this.#trace.digest(),
      history,
      finals,
      stats: {
        simulatedMs: this.#now - this.#start,
        wallMs: performance.now() - this.#wallStart,
        cpuMs: cpuMs(process.cpuUsage(this.#cpuStart)),
        operations: history.length,
        acknowledged: history.filter((op) => op.kind === 'send' && op.outcome === 'ok').length,
        faults: { ...injector.counts, drop: net.drop, duplicate: net.duplicate },
        deliveries: net.deliver,
        timers: this.#cluster.clock.fired,
        traceLines: this.#trace.lines,
      },
    };
  }
}

/** Refusals by the session's own machine or compare-and-set: its primary answered, so it was alive. */
const ANSWERS = new Set(['EventRejectedError', 'ConflictError']);

/**
 * The sessions liveness is checked for: those the workload sent to within
 * `window` ms of the heal (so each send had time to end before the bound),
 * except those whose every such send was refused by the session's primary.
 */
export function livenessProbes(history: readonly Operation[], healedAt: number, window: number): Operation[] {
  const sent = history.filter(
    (op) => op.kind === 'send' && op.invokedAt >= healedAt && op.invokedAt <= healedAt + Math.max(0, window),
  );
  const answered = new Set(
    sent.filter((op) => op.error !== undefined && ANSWERS.has(op.error)).map((op) => sessionKeyOf(op.app, op.session)),
  );
  return sent.filter((op) => !answered.has(sessionKeyOf(op.app, op.session)));
}

function cpuMs(usage: NodeJS.CpuUsage): number {
  return (usage.user + usage.system) / 1_000;
}

/** The entries whose value is not undefined, so they do not hide a default. */
function defined<T extends Record<string, unknown>>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
