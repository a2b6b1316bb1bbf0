import type { Client } from '../../internal.js';

/** What one client's workload is given. */
export interface WorkloadContext {
  /** A cohort client whose sends and reads are recorded in the run's history. */
  readonly client: Client;
  /** 0 for the first client. */
  readonly index: number;
  /** How many clients run a workload. */
  readonly clients: number;
  /** The faulty part of the run, in virtual ms (the workload also runs through the recovery after it). */
  readonly duration: number;
  /** Uniform in [0, 1), from this client's own seeded stream. */
  random(): number;
  /** Resolves after `ms` of this client's virtual time (longer if its process is paused meanwhile). */
  sleep(ms: number): Promise<void>;
  /** Virtual time now. */
  now(): number;
  /** True until the run stops taking new operations: a workload loops while it holds, then returns. */
  running(): boolean;
}

/**
 * One client's part of a simulation: sends and reads through `client`
 * until `running()` turns false. Everything it decides must come from
 * `random()` and what the cluster answers (no Math.random, no Date.now), or
 * a seed no longer replays. An error it throws is reported with the run.
 */
export type Workload = (context: WorkloadContext) => Promise<void>;
