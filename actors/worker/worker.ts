import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../../bus/clock.js';
import { resolveEnvironment, type Environment } from '../../bus/environment.js';
import { createNatsBus, type NatsAuth, type NatsTls } from '../../bus/nats/mod.js';
import { epochSubject, validateCluster } from '../../bus/subjects.js';
import { DEFAULT_INBOX_PREFIX, type Bus, type Journal, type Subscription } from '../../bus/types.js';
import { WrongLastSequenceError } from '../../bus/errors.js';
import { createLogger } from '../../log/logger.js';
import { requestFailover } from '../../protocol/control.js';
import { workerInbox } from '../../protocol/clientId.js';
import { UNSAFE, type UnsafeSwitches } from './unsafe.js';
import { DEFAULT_SHARD_COUNT } from '../../protocol/shard.js';
import { MEMBERSHIP_DEFAULTS, type MembershipConfig } from '../../machines/membership.js';
import { membershipConfig } from '../../machines/membershipConfig.js';
import { healthConfig, type FailureCondition, type HealthConfig } from '../../machines/health.js';
import { defaultHandoffTransactionWait } from '../../machines/handoffTransactions.js';
import type { View } from '../../machines/view.js';
import type { Application } from './application.js';
import { Catalog } from './catalog.js';
import { ClientRecords, clientOptions, type ClientRecordInfo } from './clientRecords.js';
import { forceDisconnect } from './disconnect.js';
import { listenForDrain } from './drain.js';
import { Dispatch } from './dispatch.js';
import { EpochMarks } from './epochs.js';
import { HealthMonitor } from './health.js';
import { untilHeard } from './hearing.js';
import { MembershipHost } from './membership.js';
import { Responder } from './respond.js';
import { Replication, type ReplicaStatus } from './replica.js';
import { openStores, type Stores } from './stores.js';
import { Shards } from './shards.js';
import { WorkerService } from './service.js';
import { workerServiceSource } from './serviceSource.js';
import { serviceInstanceId } from '../../protocol/service.js';
import { cohortVersion } from '../../protocol/version.js';
import type { MeterProvider, ObservableResult } from '@opentelemetry/api';
import { cohortMetrics, type CohortMetrics } from '../../metrics/instruments.js';
import { measuredJournal } from './measuredJournal.js';
import { groupCommitLimits, type GroupCommitLimits } from './groupCommit.js';
import { WatchInterest, type PatchPublishing } from './interest.js';

/** A worker's default reconnectInterval (ms): attempts every 100-250 ms with jitter. */
export const WORKER_RECONNECT_INTERVAL = 100;

export interface WorkerOptions {
  /** NATS server URL(s); or pass `bus`. */
  nats?: string | string[];
  /** Credentials for `nats` (files are read at start), as the `nats` CLI takes them. */
  auth?: NatsAuth;
  /** TLS files for `nats`; given (even `{}`), a server without TLS is refused. */
  tls?: NatsTls;
  /** Where this worker sends answers, and only there (default `_INBOX`); clients' inboxes lie under it. */
  replyPrefix?: string;
  bus?: Bus;
  cluster: string;
  applications: Application[];
  /**
   * Static sharding: exactly these shards, no membership. Without it the
   * worker joins the cluster and serves what the view gives it.
   */
  shards?: number[];
  shardCount?: number;
  /** Time, randomness and ids (default the system's): virtual time and seeded ids make a run replay. */
  environment?: Partial<Environment>;
  logger?: Logger;
  /** Worker id, shown in logs (default a random one). */
  id?: string;
  /** Availability zone: a shard's copies go to different zones where possible (default 'default'). */
  zone?: string;
  /** False for a remote disaster-recovery worker: it hosts secondaries only (default true). */
  promotable?: boolean;
  /**
   * With `nats`: after the connection drops, ms between reconnect attempts,
   * each plus up to 1.5 times as much jitter (default 100: 100-250 ms), for
   * ever. A worker away from NATS serves nobody, so it comes back fast.
   */
  reconnectInterval?: number;
  /** Membership heartbeat period in ms (default 500). */
  heartbeatInterval?: number;
  /** A worker silent this long is suspected and its shards fail over (default 3 000, minimum 500). */
  sessionTimeout?: number;
  /**
   * Group commit: commands for one session that wait while its previous
   * append is in flight are journaled together as one message, at most
   * `maxCommands` (default 64; 1 turns it off) and `maxBytes` of requests
   * (default 256 KiB, never over half the server's payload limit).
   */
  groupCommit?: Partial<GroupCommitLimits>;
  /** Secondaries per shard: a cluster setting, taken from whoever writes the first view (default 1). */
  replicas?: number;
  /** Most shards handing off at once (default 8). */
  maxConcurrentMoves?: number;
  /**
   * Safeguards against cascading failover (README "Membership and
   * failover"), cluster behaviour decided by whoever leads, so give every
   * worker the same. At most `failoverQuota` members (default 3) dropped for
   * silence within `failoverWindow` ms (default 600 000); one more halts
   * automatic failover until an operator resets it (`cohort reset-failover`).
   * Infinity: no quota.
   */
  failoverQuota?: number;
  failoverWindow?: number;
  /** Automatic failover never leaves fewer live members than this (default 1). */
  minMembers?: number;
  /**
   * A membership that keeps changing for longer than `unstableAfter` ms
   * (default 120 000; Infinity: never) is unstable: the leader stops moving
   * primaries to rebalance until it has not changed for `stableAfter` ms
   * (default 30 000).
   */
  unstableAfter?: number;
  stableAfter?: number;
  /**
   * Health beyond heartbeats (Always On's failure-condition levels): at
   * level 2 a session mailbox stuck on one message for `healthCheckTimeout`
   * ms, at level 3 (the default) also journal appends failing that long or
   * the lease lost that long, makes the worker unhealthy; while another
   * member is healthy it then steps down (its shards hand off) and rejoins
   * once its journal answers again. Level 1: heartbeats only.
   * `healthCheckTimeout` defaults to 10 000 ms and may not be shorter than
   * the session timeout.
   */
  failureCondition?: FailureCondition;
  healthCheckTimeout?: number;
  /**
   * Copies JetStream keeps of the journal, the buckets and the blobs when
   * this worker creates them (default 1; 3 on a 3-node NATS cluster, so a
   * node can fail). Found already there with fewer, they refuse the worker
   * (StreamConfigMismatchError); with more, they are taken as they are.
   */
  storageReplicas?: number;
  /**
   * Server-side client records (DESIGN.md section 6): a client silent for
   * `troubledInterval` ms (default 10 000) is non-responsive; back within
   * `recoveryWait` ms more (default 60 000) it keeps its locks and open
   * transactions, else they are rolled back. A transaction holds its
   * session's lock for at most `maxTransactionTimeout` ms (default 60 000),
   * whatever its client asks for.
   *
   * `ownInbox`: a request whose claimed client is labelled L is answered only
   * when its reply subject lies in L's inbox (`<replyPrefix>.L.`), else refused
   * with InvalidRequestError. Where the server reserves each client user its
   * inbox (`cohort auth init`), one client cannot act as another. Default: on
   * when `auth` is given.
   */
  clients?: { troubledInterval?: number; recoveryWait?: number; maxTransactionTimeout?: number; ownInbox?: boolean };
  /**
   * A planned move of a shard off this worker (an operator's failover
   * without force, a rebalance, a leave) waits up to this many ms for the
   * transactions open on the shard to commit or roll back, refusing new
   * ones (retryably: they begin on the next primary); one still open then
   * is rolled back ('failover'). Default the session timeout; 0: no wait.
   */
  handoffTransactionWait?: number;
  /**
   * Where its metrics go (metrics/instruments.ts): default the global
   * MeterProvider of `@opentelemetry/api` as it is when the worker starts,
   * a no-op until an SDK is installed.
   */
  meterProvider?: MeterProvider;
  /**
   * `watched` (default): a session's patches are published only while some
   * client subscribes to it (the client's watch, renewed), and for a while
   * after this worker takes up its shard. `always`: every patch, for those
   * who listen with a bare `nats sub` on the evt subjects.
   */
  patches?: PatchPublishing;
  /** Test-only: switches that break a guarantee on purpose, so a harness can show it finds the bug (or, one, that slow a failover for a bench). */
  [UNSAFE]?: UnsafeSwitches;
}

export type { ClientRecordInfo } from './clientRecords.js';

export interface Worker {
  readonly id: string;
  /** The cluster view this worker last saw; null with static sharding. */
  readonly view: View | null;
  /** Shards it serves as primary now. */
  readonly serving: readonly number[];
  /**
   * Fails `shard` over to worker `to` through the leader: planned (the
   * shard hands off; clients see retries, never errors) or, with `force`,
   * at once even onto a copy that is not synchronized. Resolves once a view
   * shows `to` as the shard's ACTIVE primary.
   */
  failover(shard: number, to: string, options?: { force?: boolean; timeout?: number }): Promise<View>;
  /** Its part in one shard: role, and as primary how far each secondary has applied. */
  replicaStatus(shard: number): ReplicaStatus;
  /** Sessions in memory now. */
  readonly activeSessions: number;
  /**
   * Since start: sessions of shards it was promoted to that it activated
   * from its own secondary copies (no reload), and copies it found behind
   * the journal at activation and loaded instead.
   */
  readonly adoptions: { readonly adopted: number; readonly refused: number };
  /** Passivates every active session now (snapshot written, memory freed), except those holding a transaction open. Returns how many. */
  passivate(): Promise<number>;
  /**
   * Disconnects a client by force (ECP ChangeToNotConnected): `client` is a
   * client id, or a label for every client of that label seen here. Flushes
   * background journaling, rolls back its open transactions (releasing their
   * locks), refuses its requests with ClientDisconnectedError for
   * recoveryWait, and tells it on its client subject.
   */
  forceDisconnect(client: string): Promise<{ transactions: number }>;
  /** The clients this worker has heard from lately. */
  clients(): readonly ClientRecordInfo[];
  /**
   * Whether it serves what it should now: a member of the current view
   * with every shard that view gives it taken up (static sharding: started
   * and not stopping). `reason` says which, for a readiness probe.
   */
  readiness(): Readiness;
  /** Passivates every session (snapshots written), unsubscribes, and closes its own bus. */
  stop(): Promise<void>;
  /**
   * Resolves once an operator's drain (`cohort drain`) was accepted: the
   * worker hands its shards off, leaves the view and stops by itself, as
   * stop() does; stop() then returns that same stop.
   */
  readonly drained: Promise<void>;
}

export interface Readiness {
  readonly ready: boolean;
  readonly reason: string;
}

/** Where a worker keeps things: opened (created if need be) before it starts. */

/** A worker that joins the cluster (no static `shards`). */
interface MembershipOptions {
  readonly zone: string;
  readonly promotable: boolean;
  readonly config: MembershipConfig;
  readonly health: HealthConfig;
  readonly storageReplicas: number;
}

interface WorkerHostOptions {
  readonly id: string;
  readonly cluster: string;
  readonly bus: Bus;
  /** The worker opened its bus, so it closes it too. */
  readonly ownsBus: boolean;
  readonly stores: Stores;
  readonly environment: Environment;
  readonly log: Logger;
  readonly applications: readonly Application[];
  readonly clients: { troubledInterval: number; recoveryWait: number; maxTransactionTimeout: number };
  /** How long a planned hand-off waits for a shard's open transactions. */
  readonly handoffTransactionWait: number;
  /** Set: a request is answered only in its claimed client's own inbox under this prefix. */
  readonly ownInboxes: string | undefined;
  /** Test-only switches (UNSAFE). */
  readonly unsafe: UnsafeSwitches | undefined;
  /** Sessions hash to one of this many shards; a request on another shard's subject is refused. */
  readonly shardCount: number;
  /** Undefined: static sharding. */
  readonly membership: MembershipOptions | undefined;
  readonly metrics: CohortMetrics;
  readonly groupCommit: GroupCommitLimits;
  readonly patches: PatchPublishing;
}

/**
 * A worker's lifecycle: it puts the parts together (catalog, dispatch,
 * shards, client records, replication), starts serving (static shards, or
 * joining the cluster and serving what its views say, rejoining if it is
 * dropped), and stops (a planned hand-off, then every session passivated).
 */
class WorkerHost {
  readonly id: string;
  readonly #cluster: string;
  readonly #bus: Bus;
  readonly #journal: Journal;
  readonly #ownsBus: boolean;
  readonly #clock: Clock;
  readonly #environment: Environment;
  readonly #log: Logger;
  readonly #apps: ReadonlyMap<string, Application>;
  readonly #joining: MembershipOptions | undefined;
  readonly catalog: Catalog;
  readonly clients: ClientRecords;
  readonly shards: Shards;
  readonly #dispatch: Dispatch;
  /** The worker as a NATS micro service: `nats micro ls` finds it. */
  readonly service: WorkerService;
  /** Secondaries and read-only copies (membership only). */
  readonly replicas: Replication | undefined;
  /** The epoch markers of its shards (membership only). */
  readonly epochs: EpochMarks | undefined;
  #membership: MembershipHost | undefined;
  #metaSubs: Subscription[] = [];
  #drainSub: Subscription | undefined;
  #onDrained!: () => void;
  /** Resolves once an operator's drain was accepted: the worker is leaving, and stops by itself. */
  readonly drained = new Promise<void>((resolve) => (this.#onDrained = resolve));
  #replicaTick: TimerHandle | undefined;
  #incarnation = 1;
  #stopped = false;
  #busClosed = false;
  /** Between a disconnect from NATS and the reconnect: nothing reaches it (readiness). */
  #disconnected = false;
  #stopping: Promise<void> | undefined;
  #unlistenStatus: (() => void) | undefined;
  /** How long a leaving member waits for its shards to be taken over. */
  readonly #leaveBound: number;
  /** Its own health (membership only): what makes it step down while it still heartbeats. */
  readonly health: HealthMonitor | undefined;
  readonly #metrics: CohortMetrics;
  /** The shards the last view applied gave this member as primary, and that view: what the next one moves. */
  #primaries = new Set<number>();
  #appliedView: View | undefined;
  #started = false;
  readonly #observeLag = (result: ObservableResult): void => this.#reportLag(result);

  constructor({
    id,
    cluster,
    bus,
    ownsBus,
    stores,
    environment,
    log,
    applications,
    clients,
    handoffTransactionWait,
    membership,
    shardCount,
    ownInboxes,
    unsafe,
    metrics,
    groupCommit,
    patches,
  }: WorkerHostOptions) {
    this.id = id;
    this.#metrics = metrics;
    this.#cluster = cluster;
    this.#bus = bus;
    this.#ownsBus = ownsBus;
    this.#clock = environment.clock;
    this.#environment = environment;
    this.#log = log;
    this.#apps = new Map(applications.map((a) => [a.name, a]));
    this.#joining = membership;
    this.#leaveBound = membership === undefined ? 10_000 : Math.max(10_000, 3 * membership.config.sessionTimeout);
    const sessionTimeout = membership?.config.sessionTimeout ?? MEMBERSHIP_DEFAULTS.sessionTimeout;
    const { snapshots: store, timers, replies } = stores;
    const journal = measuredJournal(stores.journal, this.#clock, metrics);
    this.#journal = journal;
    const responder = new Responder({ bus, blobs: replies, newId: environment.newId, log });
    this.health =
      membership === undefined
        ? undefined
        : new HealthMonitor({
            config: membership.health,
            clock: this.#clock,
            busySince: () => this.catalog.busySince(),
            leaseLost: () => {
              const m = this.#membership;
              const view = m?.view;
              if (m === undefined || view === null || view === undefined) return false;
              return view.shards.some((s) => s.primary === m.memberId) && !m.lease.leaseHeld();
            },
          });
    // Without the fence (test-only), without the epoch markers too: both keep a deposed writer out.
    this.epochs =
      membership === undefined || unsafe?.unfenced === true
        ? undefined
        : new EpochMarks({
            journal,
            cluster,
            clock: this.#clock,
            log,
            viewEpoch: (shard) => this.#membership?.view?.shards[shard]?.epoch,
          });
    this.replicas =
      membership === undefined
        ? undefined
        : new Replication({
            bus,
            journal,
            store,
            cluster,
            clock: this.#clock,
            log,
            apps: this.#apps,
            sessionTimeout,
            shardCount,
            epochs: this.epochs,
            adoptCopies: unsafe?.reloadOnPromotion !== true,
            responder,
          });
    const interest = new WatchInterest({
      clock: this.#clock,
      patches,
      ...(unsafe?.takeoverGrace !== undefined && { takeoverGrace: unsafe.takeoverGrace }),
    });
    this.catalog = new Catalog({
      apps: this.#apps,
      sessions: {
        interest,
        bus,
        journal,
        store,
        clock: this.#clock,
        cluster,
        log,
        workerId: id,
        primacy: undefined,
        replicas: this.replicas,
        sessionTimeout,
        unfenced: unsafe?.unfenced === true,
        groupCommit,
        metrics,
        ...(this.epochs !== undefined && { epochs: this.epochs }),
        ...(this.health !== undefined && { health: this.health }),
      },
      timers,
      secondaries: this.replicas,
      maxTransactionTimeout: clients.maxTransactionTimeout,
      handoffTransactionWait,
      metrics,
    });
    const catalog = this.catalog;
    this.clients = new ClientRecords({
      ...clients,
      clock: this.#clock,
      log,
      transactionsOf: (client) => catalog.transactionsOf(client),
      rollBack: (client, reason) => catalog.rollBack(client, reason),
    });
    this.service = new WorkerService({
      bus,
      cluster,
      worker: id,
      instance: () => serviceInstanceId(environment.newId()),
      version: cohortVersion(),
      clock: this.#clock,
      log,
      source: workerServiceSource({
        worker: id,
        cluster,
        zone: membership?.zone ?? null,
        apps: this.#apps,
        shardCount,
        catalog,
        serving: () => this.shards.serving,
        membership: () => this.#membership,
        health: () => this.health?.check(),
      }),
    });
    const service = this.service;
    this.#dispatch = new Dispatch({
      apps: this.#apps,
      catalog,
      transactions: catalog.transactions,
      clients: this.clients,
      bus,
      responder,
      environment,
      log,
      shardCount,
      ownInboxes,
      onHandled: (kind, outcome) => service.handled(kind, outcome),
      metrics,
      interest,
    });
    this.shards = new Shards({
      bus,
      cluster,
      log,
      dispatch: this.#dispatch,
      catalog,
      wakeups: catalog.wakeups,
      interest,
    });
  }

  get view(): View | null {
    return this.#membership?.view ?? null;
  }

  get membership(): MembershipHost | undefined {
    return this.#membership;
  }

  /** Static sharding serves `shards` from the start; membership serves what each view says. */
  async start(shards: readonly number[] | undefined): Promise<void> {
    this.#unlistenStatus = this.#bus.onStatus((s) => {
      if (s.type === 'close') this.#busClosed = true;
      if (s.type === 'disconnect') this.#disconnected = true;
      if (s.type === 'reconnect') this.#disconnected = false;
    });
    this.#metaSubs = this.#dispatch.serveMetadata(this.#cluster);
    this.service.start();
    if (shards !== undefined) {
      await this.shards.serve(new Set(shards));
      this.shards.serveReadOnly(new Set(shards));
    }
    await this.#bus.flush();
    this.catalog.start();
    this.clients.start();
    if (this.#joining !== undefined) {
      this.#metrics.replicaLag.addCallback(this.#observeLag);
      await this.#join(this.#joining, this.id);
    }
    this.#started = true;
    this.#log.info({ shards: this.shards.serving.length, apps: [...this.#apps.keys()] }, 'worker started');
  }

  async #join(options: MembershipOptions, memberId: string): Promise<void> {
    const replication = this.replicas!;
    this.#armReplicaTick(options.config.heartbeatInterval);
    const membership: MembershipHost = new MembershipHost({
      bus: this.#bus,
      cluster: this.#cluster,
      self: { id: memberId, zone: options.zone, promotable: options.promotable },
      config: options.config,
      storageReplicas: options.storageReplicas,
      environment: this.#environment,
      log: this.#log,
      apply: async (view) => {
        // Views a replaced member had queued (it was dropped, this worker rejoined as another) take up nothing:
        // applied late, they would give up the shards the new member serves.
        if (this.#membership !== membership) return [];
        const primaries = primariesOf(view, memberId);
        // Each new epoch's marker goes first: nothing this worker journals for the shard may precede it.
        await this.epochs?.take(memberId, new Map([...primaries].map((shard) => [shard, view.shards[shard]!.epoch])));
        if (this.#membership !== membership) return [];
        replication.promote(view, memberId);
        this.#countMoves(view, primaries);
        const serving = await this.shards.serve(primaries, handingOffOf(view, memberId));
        if (this.#membership !== membership) return serving;
        this.shards.serveReadOnly(new Set([...primaries].filter((shard) => view.shards[shard]!.replicas.length === 0)));
        await replication.apply(view, memberId);
        return serving;
      },
      notSynchronized: () => replication.notSynchronized(),
      removed: (why) => void this.#rejoin(options, why),
      health: () => this.health?.check(),
      stepDownBound: this.#leaveBound,
    });
    this.#membership = membership;
    this.#drainSub?.unsubscribe();
    this.#drainSub = listenForDrain({
      bus: this.#bus,
      cluster: this.#cluster,
      member: memberId,
      log: this.#log,
      view: () => (this.#membership === membership ? membership.view : null),
      leaving: () => this.#stopping !== undefined,
      onDrain: () => {
        this.#onDrained();
        void this.stop();
      },
    });
    // Its sessions prove primacy through this member's lease from its first view on.
    this.catalog.primacy = membership.lease;
    await membership.start();
  }

  /**
   * Cut off long enough to be dropped: let go of everything, then come back
   * as a new member; a join that fails (a store call timed out) is let go of
   * too, and tried again a session timeout later, until it holds.
   */
  async #rejoin(options: MembershipOptions, why: 'removed' | 'deaf' | 'unhealthy'): Promise<void> {
    for (;;) {
      // Stopping: the shutdown lets go of the membership it found.
      if (this.#stopping !== undefined) return;
      this.#membership?.stop();
      this.#membership = undefined;
      this.#countMoves(undefined, new Set());
      try {
        await this.shards.serve(new Set());
        if (this.#stopped) return;
        // Stepped down as deaf: heartbeats sent before it can hear would get it admitted to a view it cannot read.
        if (why === 'deaf') {
          await untilHeard({
            bus: this.#bus,
            cluster: this.#cluster,
            worker: this.id,
            clock: this.#clock,
            every: options.config.heartbeatInterval,
            newId: this.#environment.newId,
            stopped: () => this.#stopped,
          });
          if (this.#stopped || this.#stopping !== undefined) return;
        }
        // Stepped down as unhealthy: back only once the journal takes appends, or it would take shards it cannot keep.
        if (why === 'unhealthy') {
          await this.#untilJournalTakesAppends(options.health.healthCheckTimeout);
          if (this.#stopped || this.#stopping !== undefined) return;
        }
        await this.#join(options, `${this.id}~${++this.#incarnation}`);
        return;
      } catch (err) {
        this.#log.error({ err }, 'rejoin failed: trying again after a session timeout');
      }
      await new Promise<void>((resolve) => this.#clock.setTimeout(resolve, options.config.sessionTimeout));
      if (this.#stopped) return;
    }
  }

  /**
   * Waits a health-check timeout, then offers the journal an append it must
   * refuse (fenced on a sequence no subject reaches), until it is refused
   * for that reason: the append path (credentials, route, stream leader)
   * works again, and nothing was stored. A fault of its own (a stuck
   * mailbox) went with the sessions it let go; one of the journal's keeps
   * it out, instead of rejoining to fail again.
   */
  async #untilJournalTakesAppends(every: number): Promise<void> {
    for (;;) {
      await new Promise<void>((resolve) => this.#clock.setTimeout(resolve, every));
      if (this.#stopped || this.#stopping !== undefined) return;
      const takes = await this.#journal
        .append(epochSubject(this.#cluster, 0), new Uint8Array(0), { expectedLastSubjectSeq: Number.MAX_SAFE_INTEGER })
        .then(
          () => {
            this.#log.error('a fenced probe append was stored on the epoch subject of shard 0: readers ignore it');
            return true;
          },
          (err: unknown) => {
            if (err instanceof WrongLastSequenceError) return true;
            this.#log.warn({ err }, 'still unhealthy: the journal does not take appends');
            return false;
          },
        );
      if (!takes) continue;
      this.health?.appended();
      this.#log.info('the journal takes appends again: rejoining');
      return;
    }
  }

  /**
   * Shards gained and lost as primary from the last view applied to
   * `view` (undefined: this member is gone); a gained shard whose primary
   * was lost failed over to this worker.
   */
  #countMoves(view: View | undefined, primaries: ReadonlySet<number>): void {
    const before = this.#primaries;
    const last = this.#appliedView;
    let gained = 0;
    let failedOver = 0;
    for (const shard of primaries) {
      if (before.has(shard)) continue;
      gained++;
      // Its primary lost: DEAD in the transitional view before, or (that view unseen) no longer a member.
      const was = last?.shards[shard];
      if (view === undefined || was === undefined) continue;
      if (was.state === 'DEAD' || (was.primary !== null && !view.members.some((m) => m.id === was.primary)))
        failedOver++;
    }
    let lost = 0;
    for (const shard of before) if (!primaries.has(shard)) lost++;
    if (gained > 0) this.#metrics.shardMoves.add(gained, GAINED);
    if (lost > 0) this.#metrics.shardMoves.add(lost, LOST);
    if (failedOver > 0) this.#metrics.failovers.add(failedOver);
    this.#primaries = new Set(primaries);
    this.#appliedView = view;
  }

  /** Replica lag per shard it is primary of, when a reader collects. */
  #reportLag(result: ObservableResult): void {
    const replicas = this.replicas;
    if (replicas === undefined || this.#stopped) return;
    for (const [shard, lag] of replicas.lags()) result.observe(lag, { worker: this.id, shard });
  }

  readiness(): Readiness {
    if (this.#stopping !== undefined || this.#stopped) return { ready: false, reason: 'stopping' };
    if (!this.#started) return { ready: false, reason: 'starting' };
    if (this.#busClosed) return { ready: false, reason: 'its bus is closed' };
    if (this.#disconnected) return { ready: false, reason: 'disconnected from NATS, reconnecting' };
    if (this.#joining === undefined)
      return { ready: true, reason: `serving ${this.shards.serving.length} static shards` };
    const m = this.#membership;
    if (m === undefined) return { ready: false, reason: 'rejoining the cluster' };
    if (m.status !== 'member') return { ready: false, reason: `membership ${m.status}` };
    const view = m.view;
    if (view === null) return { ready: false, reason: 'no view yet' };
    if (!view.members.some((x) => x.id === m.memberId))
      return { ready: false, reason: `not a member of view ${view.viewId}` };
    const serving = new Set(this.shards.serving);
    const missing = [...primariesOf(view, m.memberId)].filter((shard) => !serving.has(shard));
    if (missing.length > 0)
      return { ready: false, reason: `taking up ${missing.length} shards of view ${view.viewId}` };
    return { ready: true, reason: `member of view ${view.viewId}, primary of ${serving.size} shards` };
  }

  #armReplicaTick(every: number): void {
    if (this.#stopped || this.#replicaTick !== undefined) return;
    this.#replicaTick = this.#clock.setTimeout(() => {
      this.#replicaTick = undefined;
      this.replicas?.tick();
      this.#armReplicaTick(every);
    }, every);
  }

  forceDisconnect(client: string): Promise<{ transactions: number }> {
    return forceDisconnect(
      {
        workerId: this.id,
        cluster: this.#cluster,
        bus: this.#bus,
        clients: this.clients,
        catalog: this.catalog,
        log: this.#log,
      },
      client,
    );
  }

  stop(): Promise<void> {
    this.#stopping ??= this.#shutdown();
    return this.#stopping;
  }

  async #shutdown(): Promise<void> {
    // A member hands its shards off first (planned, not a failure), serving until each is taken over.
    const membership = this.#membership;
    if (membership !== undefined) {
      // With its bus gone (a crash, in effect) there is nobody to hand off to: the others fail it over.
      if (!this.#busClosed) await membership.leave(this.#leaveBound);
      membership.stop();
    }
    this.#drainSub?.unsubscribe();
    this.#stopped = true;
    this.#metrics.replicaLag.removeCallback(this.#observeLag);
    this.replicas?.stop();
    this.epochs?.stop();
    if (this.#replicaTick !== undefined) this.#clock.clearTimeout(this.#replicaTick);
    this.shards.stop();
    for (const sub of this.#metaSubs.splice(0)) sub.unsubscribe();
    await this.service.stop();
    this.#unlistenStatus?.();
    this.catalog.stop();
    this.clients.stop();
    await this.catalog.close();
    if (this.#ownsBus) await this.#bus.close();
    this.#log.info('worker stopped');
  }
}

const GAINED = Object.freeze({ direction: 'gained' });
const LOST = Object.freeze({ direction: 'lost' });

/** The shards a view gives this member to serve: ACTIVE ones it is primary of. */
function primariesOf(view: View, memberId: string): Set<number> {
  const out = new Set<number>();
  view.shards.forEach((s, i) => {
    if (s.state === 'ACTIVE' && s.primary === memberId) out.add(i);
  });
  return out;
}

/** The shards this member is handing off in a planned move (PENDING, it the primary): their transactions may finish first. */
function handingOffOf(view: View, memberId: string): Set<number> {
  const out = new Set<number>();
  view.shards.forEach((s, i) => {
    if (s.state === 'PENDING' && s.primary === memberId && s.next !== null) out.add(i);
  });
  return out;
}

/**
 * Starts a worker hosting `applications`. It joins the cluster and serves
 * the shards the view gives it; with `shards` it serves those alone
 * (static sharding).
 */
export async function startWorker(options: WorkerOptions): Promise<Worker> {
  validateCluster(options.cluster);
  const shardCount = options.shardCount ?? DEFAULT_SHARD_COUNT;
  for (const s of options.shards ?? []) {
    if (!Number.isInteger(s) || s < 0 || s >= shardCount)
      throw new RangeError(`shard ${s} is outside 0..${shardCount - 1}`);
  }
  const config = options.shards === undefined ? membershipConfig({ ...options, shardCount }) : undefined;
  const clients = clientOptions(options.clients);
  const handoffTransactionWait =
    options.handoffTransactionWait ??
    defaultHandoffTransactionWait(config?.sessionTimeout ?? MEMBERSHIP_DEFAULTS.sessionTimeout);
  if (!(Number.isFinite(handoffTransactionWait) && handoffTransactionWait >= 0))
    throw new RangeError(`handoffTransactionWait must be a number of ms, at least 0 (got ${handoffTransactionWait})`);
  if (!options.bus && !options.nats) throw new TypeError('startWorker needs `nats` (server URLs) or `bus`');
  const replyPrefix = options.replyPrefix ?? DEFAULT_INBOX_PREFIX;
  // Checked before anything is opened: a bad setting leaves nothing behind.
  groupCommitLimits(options.groupCommit, Infinity);
  const bus =
    options.bus ??
    (await createNatsBus({
      servers: options.nats!,
      name: `cohort-worker`,
      auth: options.auth,
      tls: options.tls,
      replyPrefix,
      inboxPrefix: workerInbox(replyPrefix),
      reconnectInterval: options.reconnectInterval ?? WORKER_RECONNECT_INTERVAL,
    }));
  if (options.patches !== undefined && options.patches !== 'always' && options.patches !== 'watched')
    throw new RangeError(`patches must be 'always' or 'watched' (got ${String(options.patches)})`);
  const environment = resolveEnvironment(options.environment);
  const id = options.id ?? environment.newId().slice(0, 8);
  const log = (options.logger ?? createLogger()).child({ cluster: options.cluster, worker: id });
  const cluster = options.cluster;
  const replicas = options.storageReplicas ?? 1;
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > 5)
    throw new RangeError(`storageReplicas must be a whole number from 1 to 5 (got ${replicas})`);
  let stores: Stores;
  try {
    stores = await openStores(bus, cluster, { replicas, shardCount });
  } catch (err) {
    if (options.bus === undefined) await bus.close();
    throw err;
  }
  const host = new WorkerHost({
    id,
    cluster,
    bus,
    ownsBus: options.bus === undefined,
    stores,
    environment,
    log,
    applications: options.applications,
    clients,
    handoffTransactionWait,
    ownInboxes: (options.clients?.ownInbox ?? options.auth !== undefined) ? replyPrefix : undefined,
    unsafe: options[UNSAFE],
    shardCount,
    metrics: cohortMetrics(options.meterProvider),
    groupCommit: groupCommitLimits(options.groupCommit, bus.server.maxPayload),
    patches: options.patches ?? 'watched',
    membership:
      config === undefined
        ? undefined
        : {
            zone: options.zone ?? 'default',
            promotable: options.promotable ?? true,
            config,
            health: healthConfig(options, config.sessionTimeout),
            storageReplicas: replicas,
          },
  });
  await host.start(options.shards);
  return {
    id,
    get view() {
      return host.view;
    },
    get serving() {
      return host.shards.serving;
    },
    failover: async (shard, to, opts = {}) => {
      const membership = host.membership;
      if (membership === undefined)
        throw new TypeError('failover needs membership (a worker started without `shards`)');
      const timeout = opts.timeout ?? 30_000;
      await requestFailover(bus, cluster, { shard, to, force: opts.force === true }, Math.min(timeout, 5_000));
      return membership.waitForView(
        (v) => v.shards[shard]?.state === 'ACTIVE' && v.shards[shard]?.primary === to,
        timeout,
        `shard ${shard} on ${to}`,
      );
    },
    replicaStatus: (shard) =>
      host.replicas?.status(shard) ?? {
        role: host.shards.serving.includes(shard) ? 'primary' : 'none',
        epoch: 0,
        applied: null,
        secondaries: [],
        reportsAhead: 0,
      },
    get activeSessions() {
      return host.catalog.size;
    },
    get adoptions() {
      return { ...(host.replicas?.adoptions ?? { adopted: 0, refused: 0 }) };
    },
    passivate: () => host.catalog.passivateAll(),
    forceDisconnect: (client) => host.forceDisconnect(client),
    clients: () => host.clients.info(),
    readiness: () => host.readiness(),
    stop: () => host.stop(),
    drained: host.drained,
  };
}
