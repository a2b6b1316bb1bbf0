import type { Logger } from 'pino';
import type { Clock } from '../../bus/clock.js';
import type { Bus, Journal } from '../../bus/types.js';
import type { CommitHealth } from './health.js';
import type { Primacy } from './lease.js';
import type { EpochAdmission } from './replay.js';
import type { HostedSession } from './session.js';
import type { SessionStore } from './sessionStore.js';
import type { GroupCommitLimits } from './groupCommit.js';
import type { CohortMetrics } from '../../metrics/instruments.js';

/** Secondaries of this worker's primary shards, as a commit at level `replicas` counts and waits for them. */
export interface ReplicaWaits {
  synchronized(shard: number): number;
  /** The journal acknowledged an entry of `shard` at stream sequence `seq`: no secondary can report more. */
  journaled(shard: number, seq: number): void;
  replicated(shard: number, seq: number, want: number, timeout: number): Promise<boolean>;
}

/** The durable wake-up index (wakeups.ts), as a session keeps it. */
export interface WakeupIndex {
  /** The session's earliest pending timer is now `due` (undefined: none). */
  update(shard: number, app: string, id: string, due: number | undefined): Promise<void>;
}

/**
 * The session's exclusive lock, held by an open transaction
 * (sessionTransaction.ts): plain writes of other clients wait, delayed
 * events wait, and it goes with the copy.
 */
export interface SessionLock {
  readonly txId: string;
  readonly client: string;
  /** The client's label, for refusals and logs. */
  readonly label: string;
  /** The lock is dropped: stop whatever keeps it (its lease). */
  drop(): void;
}

/**
 * What every hosted session of a worker works with: collaborators the
 * session writes to directly, none of them the worker.
 */
export interface SessionDeps {
  readonly bus: Bus;
  readonly journal: Journal;
  readonly store: SessionStore;
  readonly clock: Clock;
  readonly cluster: string;
  readonly log: Logger;
  /** Signs what is journaled when no primacy does (static sharding): the worker's id. */
  readonly workerId: string;
  /** Proof of primacy (membership only; static sharding trusts its configuration). A rejoin brings a new one. */
  primacy: Primacy | undefined;
  /** Secondaries of this worker's primary shards (membership only). */
  readonly replicas: ReplicaWaits | undefined;
  /** How long a commit at level `replicas` waits for a secondary before it stops counting on it. */
  readonly sessionTimeout: number;
  /** Written before the reply of a commit that changed the session's timers. */
  readonly wakeups: WakeupIndex;
  /** Where a copy no longer trustworthy here is forgotten (it reloads on its next message). */
  readonly directory: { forget(session: HostedSession): void };
  /** Which journal entries count (membership only): a late entry of a deposed epoch does not. */
  readonly epochs?: EpochAdmission;
  /** Told of every append's outcome: journal faults that go on make the worker unhealthy (membership only). */
  readonly health?: CommitHealth;
  /** Where snapshots written are counted (none: not counted). */
  readonly metrics?: CohortMetrics;
  /** How many waiting commands one journal message may carry (default GROUP_COMMIT_DEFAULTS). */
  readonly groupCommit?: GroupCommitLimits;
  /** Whether anyone reads a session's patches now (interest.ts); none: every patch is published. */
  readonly interest?: { wants(app: string, id: string, shard: number): boolean };
  /** Test-only (UNSAFE): appends without the fence. */
  readonly unfenced?: boolean;
}
