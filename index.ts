/**
 * cohort's public surface: what an application, a worker and a client are
 * written against. Anything not re-exported here is internal and may change;
 * our own tools (cli, bench, harness) use `internal.ts` as well.
 */

// Applications and workers.
export {
  defineApplication,
  type Application,
  type ApplicationOptions,
  type CommitLevel,
  type Query,
} from './actors/worker/application.js';
export {
  startWorker,
  WORKER_RECONNECT_INTERVAL,
  type ClientRecordInfo,
  type Worker,
  type WorkerOptions,
  type Readiness,
} from './actors/worker/worker.js';
export type { ReplicaStatus } from './actors/worker/replica.js';

// Clients.
export {
  connect,
  type BroadcastOptions,
  type CallOptions,
  type Client,
  type ClientEvents,
  type ConnectOptions,
  type Gathered,
  type Patch,
  type QueryOptions,
  type ReadCallOptions,
  type ReadResult,
  type SendOptions,
  type ScatterOptions,
  type ScatterQuery,
  type SendResult,
  type SessionHandle,
  type Transaction,
  type TransactionSession,
  type TransactionOptions,
  type TransactionResult,
  type Verification,
} from './actors/client/client.js';
export {
  CorruptCounterError,
  CounterExhaustedError,
  type Counter,
  type CounterCallOptions,
  type CounterOptions,
} from './actors/client/counter.js';
export { CONNECTION_DEFAULTS, type ConnectionState } from './machines/connection.js';

// What a session machine receives, and what its clients see change.
export type { EventMeta, StampedEvent, UserEvent } from './machines/events.js';
export type { PatchOperation, VerifyOutcome } from './protocol/messages.js';
export { DEFAULT_SHARD_COUNT, shardOf } from './protocol/shard.js';

// Membership: the view every worker agrees on.
export type { HoldReason, Member, Safeguards, ShardAssignment, ShardState, View } from './machines/view.js';
export { MEMBERSHIP_DEFAULTS, MIN_SESSION_TIMEOUT } from './machines/membership.js';

// Errors: one class per failure mode, all under CohortError; `retryable` is the retry policy.
export {
  ClientDisconnectedError,
  ConflictError,
  CorruptSessionError,
  CrossShardTransactionError,
  EventRejectedError,
  InvalidRequestError,
  NetworkError,
  NotEnoughReplicasError,
  QueryFailedError,
  SessionLockedError,
  SessionMovedError,
  TransactionRolledBackError,
  TransactionTimeoutError,
  TooManyWatchesError,
  UnknownApplicationError,
  UnknownQueryError,
  type RollbackReason,
} from './protocol/errors.js';
export { FailoverRefusedError, ResetFailoverRefusedError } from './protocol/control.js';
export { CorruptClusterSettingError, ShardCountMismatchError } from './protocol/clusterSettings.js';
export {
  AuthenticationError,
  BucketNotFoundError,
  BusClosedError,
  BusError,
  CohortError,
  ConnectionError,
  ConnectionLostError,
  CredentialsError,
  DecodeError,
  EncodeError,
  InvalidNameError,
  JetStreamDisabledError,
  KeyExistsError,
  NoRespondersError,
  PayloadTooLargeError,
  PermissionDeniedError,
  StaleRevisionError,
  StreamConfigMismatchError,
  TimeoutError,
  TlsError,
  UnsupportedFeatureError,
  WrongLastSequenceError,
  type TlsFailure,
} from './bus/errors.js';

// The bus: one interface, two implementations.
export type {
  AppendAck,
  AppendOptions,
  BlobConfig,
  BlobInfo,
  BlobStore,
  Bus,
  BusStatus,
  ConnectionSecurity,
  Delivery,
  Feature,
  Headers,
  Journal,
  JournalConfig,
  JournalEntry,
  KvConfig,
  KvEntry,
  KvStore,
  KvWatch,
  KvWatchOptions,
  Message,
  MessageHandler,
  PublishOptions,
  ReadOptions,
  RequestOptions,
  ServerInfo,
  Subscription,
} from './bus/types.js';
export { createNatsBus, type NatsAuth, type NatsBusOptions, type NatsTls } from './bus/nats/mod.js';
export {
  createMemoryBus,
  createMemoryServer,
  MemoryServer,
  type MemoryBusOptions,
  type MemoryServerOptions,
} from './bus/memory/mod.js';

// Time, randomness and ids: one environment, injectable so a run on virtual time replays.
export { seededEnvironment, systemEnvironment, type Environment } from './bus/environment.js';
export { SimulatedClock, systemClock, type Clock, type TimerHandle } from './bus/clock.js';

// Logging.
export { createLogger, type Logger, type LoggerOptions } from './log/logger.js';
