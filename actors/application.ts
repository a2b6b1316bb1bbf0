import type { AnyStateMachine } from 'xstate';
import { validateApp } from '../bus/subjects.js';

export type CommitLevel = 'memory' | 'journal';

export interface ApplicationOptions<TMachine extends AnyStateMachine = AnyStateMachine> {
  /** [a-z0-9-]+; part of every subject of its sessions. */
  name: string;
  /** A deterministic xstate v5 machine; its context is the session's document. */
  machine: TMachine;
  /** When a command's reply goes out (default 'journal'). */
  commit?: CommitLevel;
  /** Milliseconds without messages before a session is passivated (default 15 000). */
  unusedSessionLifetime?: number;
  /** Events between snapshots (default 100). */
  snapshotEvery?: number;
  /** Served as JSON on cohort.<cluster>.meta.<app>. */
  metadata?: Record<string, unknown>;
}

export interface Application<TMachine extends AnyStateMachine = AnyStateMachine> {
  readonly name: string;
  readonly machine: TMachine;
  readonly commit: CommitLevel;
  readonly unusedSessionLifetime: number;
  readonly snapshotEvery: number;
  readonly metadata: Readonly<Record<string, unknown>>;
}

/** An application is a session factory: each (app, id) gets its own actor of `machine`, created on first reference. */
export function defineApplication<TMachine extends AnyStateMachine>(options: ApplicationOptions<TMachine>): Application<TMachine> {
  validateApp(options.name);
  const commit = options.commit ?? 'journal';
  if (commit !== 'memory' && commit !== 'journal') {
    throw new RangeError(`application ${options.name}: commit must be 'memory' or 'journal', got ${JSON.stringify(commit)}`);
  }
  const unusedSessionLifetime = options.unusedSessionLifetime ?? 15_000;
  const snapshotEvery = options.snapshotEvery ?? 100;
  if (!(unusedSessionLifetime > 0)) throw new RangeError(`application ${options.name}: unusedSessionLifetime must be > 0`);
  if (!Number.isInteger(snapshotEvery) || snapshotEvery < 1) {
    throw new RangeError(`application ${options.name}: snapshotEvery must be a positive integer`);
  }
  const metadata = options.metadata ?? {};
  JSON.stringify(metadata); // throws on cycles or BigInt: metadata is served as JSON
  return { name: options.name, machine: options.machine, commit, unusedSessionLifetime, snapshotEvery, metadata };
}
