export { findNatsServerBinary, natsServerCandidates, requireNatsServerBinary } from './natsServerBinary.js';
export { startNatsServer, type NatsServer, type NatsServerOptions } from './natsServer.js';
export { startNatsCluster, type NatsCluster, type NatsClusterOptions } from './natsCluster.js';
export { moveStreamLeader, replicasCurrent, streamLeader, waitStreamsCurrent } from './streamLeader.js';
export {
  hasWorker,
  isBalanced,
  isSettled,
  shardsOf,
  startTestCluster,
  workerOfMember,
  type TestCluster,
  type TestClusterOptions,
  type TestNats,
  type TestWorker,
  type WaitOptions,
} from './testCluster.js';
export type { WorkerExit } from './localWorker.js';
export type { ViewFeed } from './viewFeed.js';
export {
  DIRECTIONS,
  startProxy,
  type Direction,
  type ProxyStats,
  type TcpProxy,
  type TcpProxyOptions,
} from './proxy.js';
export {
  NatsClusterStartError,
  NatsHarnessError,
  NatsServerDisposedError,
  NatsServerNotFoundError,
  NatsServerStartError,
} from './errors.js';
export {
  checkHistory,
  checkTally,
  History,
  isAcknowledged,
  readJournalFacts,
  someAddUpTo,
  tallyBySession,
  type JournalFact,
  type Operation,
  type SessionTally,
  type TallyCheck,
  type Verdict,
} from './history.js';
export {
  createTlsCertificates,
  TlsCertificatesError,
  type CertificateFiles,
  type TlsCertificates,
  type TlsCertificatesOptions,
} from './tlsCertificates.js';
export {
  runScenario,
  type ScenarioContext,
  type ScenarioFaults,
  type ScenarioOptions,
  type ScenarioResult,
  type ScenarioWorkload,
} from './scenario.js';
/** The generic history checker (harness/checker): `checker.checkHistory`, `checker.HistoryRecorder`, ... */
export * as checker from './checker/index.js';
export {
  ALL_FAULTS,
  exampleWorkload,
  formatFaults,
  ledgerWorkload,
  NO_FAULTS,
  parseFaults,
  simulate,
  SIMULATION_START,
  whiteboardWorkload,
  type ExampleWorkloadOptions,
  type Faults,
  type SimulateOptions,
  type SimulateResult,
  type SimulateStats,
  type Workload,
  type WorkloadContext,
} from './simulate/index.js';
