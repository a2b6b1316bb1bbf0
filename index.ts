/**
 * cohort's public surface. Everything a user imports comes from here;
 * anything not re-exported is internal and may change.
 */

// Applications, workers, clients.
export { defineApplication, type Application, type ApplicationOptions, type CommitLevel } from './actors/worker/application.js';
export { startWorker, type Worker, type WorkerOptions } from './actors/worker/worker.js';
export {
  connect,
  type CallOptions,
  type Client,
  type ConnectOptions,
  type Patch,
  type ReadCallOptions,
  type ReadResult,
  type SendResult,
  type SendOptions,
  type SessionHandle,
  type Transaction,
  type TransactionOptions,
  type TransactionResult,
  type Verification,
  type ClientEvents,
} from './actors/client/client.js';
export { CONNECTION_DEFAULTS, type ConnectionConfig, type ConnectionState } from './machines/connection.js';
export { CorruptCounterError, CounterExhaustedError, type Counter, type CounterOptions } from './actors/client/counter.js';
export {
  ClientDisconnectedError,
  ConflictError,
  CrossShardTransactionError,
  EventRejectedError,
  InvalidRequestError,
  NetworkError,
  NotEnoughReplicasError,
  SessionLockedError,
  SessionMovedError,
  TransactionRolledBackError,
  TransactionTimeoutError,
  UnknownApplicationError,
  type RollbackReason,
} from './protocol/errors.js';
export { DEFAULT_SHARD_COUNT, shardOf } from './protocol/shard.js';
export { FailoverRefusedError, requestFailover, type FailoverRequest } from './protocol/control.js';
export type { ReplicaStatus } from './actors/worker/replica.js';
export type { EventMeta, PatchOperation, StampedEvent, UserEvent, VerifyOutcome } from './protocol/messages.js';

// Membership: the view every worker agrees on.
export type { Member, ShardAssignment, ShardState, View } from './machines/view.js';
export { MEMBERSHIP_DEFAULTS, MIN_SESSION_TIMEOUT } from './machines/membership.js';

// The bus: one interface, two implementations.
export type {
  AppendAck,
  AppendOptions,
  BlobConfig,
  BlobInfo,
  BlobStore,
  Bus,
  BusStatus,
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
export { createNatsBus, type NatsBusOptions } from './bus/nats/mod.js';
export { createMemoryBus, createMemoryServer, MemoryServer, type MemoryBusOptions, type MemoryServerOptions } from './bus/memory/mod.js';
export { FEATURE_SINCE, MINIMUM_SERVER_VERSION } from './bus/features.js';

// Time, injectable so hosts and the simulator run on virtual clocks.
export { SimulatedClock, systemClock, type Clock, type TimerHandle } from './bus/clock.js';

// Errors: one class per failure mode.
export {
  BusClosedError,
  BusError,
  ConnectionError,
  DecodeError,
  EncodeError,
  InvalidNameError,
  JetStreamDisabledError,
  KeyExistsError,
  NoRespondersError,
  PayloadTooLargeError,
  StaleRevisionError,
  TimeoutError,
  UnsupportedFeatureError,
  WrongLastSequenceError,
} from './bus/errors.js';

// Wire format.
export { CODEC, decode, encode, type DecodeOptions, type EncodeOptions } from './bus/codec.js';
export { CLAIM_CHECK_HEADER, decodeBody, encodeBody, type EncodeBodyOptions, type EncodedBody } from './bus/claimCheck.js';
export {
  buildSubject,
  cmdSubject,
  escapeToken,
  eventSubject,
  heartbeatSubject,
  journalStreamName,
  journalSubject,
  metaSubject,
  parseSubject,
  readSubject,
  unescapeToken,
  type ParsedSubject,
} from './bus/subjects.js';

// Logging.
export { childLogger, createLogger, type LogBindings, type Logger, type LoggerOptions } from './log/logger.js';
