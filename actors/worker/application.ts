import type { AnyStateMachine, ContextFrom } from 'xstate';
import { validateApp } from '../../bus/subjects.js';
import type { CommitLevel } from '../../machines/commitPlan.js';
import { isQueryName, MAX_QUERY_NAME } from '../../protocol/scatter.js';

export type { CommitLevel } from '../../machines/commitPlan.js';

export interface ApplicationOptions<TMachine extends AnyStateMachine = AnyStateMachine> {
  /** [a-z0-9-]+; part of every subject of its sessions. */
  name: string;
  /** A deterministic xstate v5 machine; its context is the session's document. */
  machine: TMachine;
  /** When a command's reply goes out (default 'journal'). */
  commit?: CommitLevel;
  /** Commit level `replicas`: synchronized secondaries that must have applied a command before its reply (default 1). */
  syncReplicas?: number;
  /** Commit level `replicas`: fewer synchronized secondaries than this and commands are refused (default 0). */
  requiredSynchronizedReplicas?: number;
  /** Milliseconds without messages before a session is passivated (default 15 000). */
  unusedSessionLifetime?: number;
  /** Events between snapshots (default 100). */
  snapshotEvery?: number;
  /** Served as JSON on cohort.<cluster>.meta.<app>. */
  metadata?: Record<string, unknown>;
  /**
   * Named read-only queries `client.scatter` asks many sessions at once:
   * pure functions of the document and the caller's args (no clock, no I/O),
   * evaluated where the session's copy is.
   */
  queries?: Record<string, Query<ContextFrom<TMachine>>>;
}

/** A pure function of a session's document and the args its caller sent; what it returns is the answer. */
export type Query<TDocument = unknown> = (document: TDocument, args: unknown) => unknown;

export interface Application<TMachine extends AnyStateMachine = AnyStateMachine> {
  readonly name: string;
  readonly machine: TMachine;
  readonly commit: CommitLevel;
  readonly syncReplicas: number;
  readonly requiredSynchronizedReplicas: number;
  readonly unusedSessionLifetime: number;
  readonly snapshotEvery: number;
  readonly metadata: Readonly<Record<string, unknown>>;
  readonly queries: ReadonlyMap<string, Query>;
}

/** An application is a session factory: each (app, id) gets its own actor of `machine`, created on first reference. */
export function defineApplication<TMachine extends AnyStateMachine>(
  options: ApplicationOptions<TMachine>,
): Application<TMachine> {
  validateApp(options.name);
  const commit = options.commit ?? 'journal';
  if (commit !== 'memory' && commit !== 'journal' && commit !== 'replicas') {
    throw new RangeError(
      `application ${options.name}: commit must be 'memory', 'journal' or 'replicas', got ${JSON.stringify(commit)}`,
    );
  }
  const syncReplicas = options.syncReplicas ?? 1;
  const requiredSynchronizedReplicas = options.requiredSynchronizedReplicas ?? 0;
  for (const [name, v] of [
    ['syncReplicas', syncReplicas],
    ['requiredSynchronizedReplicas', requiredSynchronizedReplicas],
  ] as const) {
    if (!Number.isInteger(v) || v < 0)
      throw new RangeError(`application ${options.name}: ${name} must be a whole number >= 0, got ${v}`);
  }
  const unusedSessionLifetime = options.unusedSessionLifetime ?? 15_000;
  const snapshotEvery = options.snapshotEvery ?? 100;
  if (!(unusedSessionLifetime > 0))
    throw new RangeError(`application ${options.name}: unusedSessionLifetime must be > 0`);
  if (!Number.isInteger(snapshotEvery) || snapshotEvery < 1) {
    throw new RangeError(`application ${options.name}: snapshotEvery must be a positive integer`);
  }
  const metadata = options.metadata ?? {};
  JSON.stringify(metadata); // throws on cycles or BigInt: metadata is served as JSON
  const queries = new Map<string, Query>();
  for (const [name, fn] of Object.entries(options.queries ?? {})) {
    if (!isQueryName(name))
      throw new RangeError(
        `application ${options.name}: query name ${JSON.stringify(name)} must be 1-${MAX_QUERY_NAME} characters [A-Za-z0-9_-], starting with a letter`,
      );
    if (typeof fn !== 'function') throw new TypeError(`application ${options.name}: query ${name} must be a function`);
    queries.set(name, fn as Query);
  }
  return {
    name: options.name,
    machine: options.machine,
    commit,
    syncReplicas,
    requiredSynchronizedReplicas,
    unusedSessionLifetime,
    snapshotEvery,
    metadata,
    queries,
  };
}
