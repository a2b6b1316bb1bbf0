/**
 * Deterministic whole-cluster simulation: `simulate()` runs a cluster on
 * the memory bus and virtual time with faults drawn from a seed; the parts
 * are exported for tests that drive a cluster by hand.
 */
export {
  livenessProbes,
  simulate,
  SIMULATION_START,
  type SimulateOptions,
  type SimulateResult,
  type SimulateStats,
} from './run.js';
export {
  ALL_FAULTS,
  checkFaults,
  disturbsMessages,
  formatFaults,
  NO_FAULTS,
  parseFaults,
  type Faults,
} from './faults.js';
export type { Workload, WorkloadContext } from './workload.js';
export { exampleWorkload, ledgerWorkload, whiteboardWorkload, type ExampleWorkloadOptions } from './workloads.js';
export {
  SimCluster,
  type ClientSlot,
  type SimClusterOptions,
  type SimConnectOptions,
  type SimWorkerOptions,
  type WorkerSlot,
} from './cluster.js';
export { FaultInjector, type FaultInjectorOptions, type FaultKind } from './injector.js';
export { RunLoop } from './loop.js';
export { VirtualClock } from './clock.js';
export { SimProcess, type ProcessState, type SimProcessOptions } from './process.js';
export { SimNetwork, type SimNetworkOptions } from './network.js';
export { Trace } from './trace.js';
export { seedOf } from './seeds.js';
export { servingDisagreements } from './serving.js';
