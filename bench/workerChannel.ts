import { forkBenchProcess, type BenchProcess } from './benchProcess.js';
import type { AllocationProfile } from './heapSampling.js';

/**
 * The bench's end of its worker process (bench/sessionsWorker.ts). The names
 * both sides use live here, so the bench never loads the worker's module
 * (that would start a worker).
 */

export const BENCH_CLUSTER = 'bench';
export const BENCH_APP = 'tally';

/** What the bench may ask the worker's process, and what each answers. */
export interface WorkerOps {
  /** Sessions passivated. */
  passivate: number;
  activeSessions: number;
  /** heapUsed in bytes after full GCs. */
  heapAfterGc: number;
  heapSamplingStart: number;
  /** The bytes this process allocated since heapSamplingStart, and where. */
  heapSamplingStop: AllocationProfile;
  /** ms worker.stop() took. */
  stop: number;
}

export type BenchWorker = BenchProcess<WorkerOps>;

export function startBenchWorker(url: string): Promise<BenchWorker> {
  return forkBenchProcess<WorkerOps>('sessionsWorker', url, 'bench worker');
}
