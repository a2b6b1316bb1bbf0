export { findNatsServerBinary, natsServerCandidates, requireNatsServerBinary } from './natsServerBinary.js';
export { startNatsServer, type NatsServer, type NatsServerOptions } from './natsServer.js';
export { startNatsCluster, type NatsCluster, type NatsClusterOptions } from './natsCluster.js';
export {
  NatsClusterStartError,
  NatsHarnessError,
  NatsServerDisposedError,
  NatsServerNotFoundError,
  NatsServerStartError,
} from './errors.js';
export { checkHistory, History, readJournalFacts, type JournalFact, type Operation, type Verdict } from './history.js';
