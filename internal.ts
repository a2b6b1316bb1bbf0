/**
 * What our own tools (cli/, bench/, harness/) and tests use beyond the
 * public surface, as nats.js keeps `internal_mod.ts` beside `mod.ts`: the
 * wire contract, the codec and subjects, the pure machines and the hosts'
 * parts. Not a stable API.
 */
export * from './index.js';

// The wire contract.
export { HEADER } from './protocol/headers.js';
export type {
  CommandReply,
  CommandRequest,
  ErrorBody,
  JournaledEvent,
  JournalRecord,
  PatchMessage,
  ReadReply,
  ReadRequest,
  Request,
  TxReply,
  TxRequest,
  VerifyReply,
  VerifyRequest,
  WatchReply,
  WatchRequest,
} from './protocol/messages.js';
export {
  commandRequest,
  MAX_TX_TIMEOUT,
  parseRequest,
  readRequest,
  txRequest,
  verifyRequest,
  watchRequest,
  DEFAULT_WATCH_LEASE,
  MAX_WATCH_LEASE,
  MIN_WATCH_LEASE,
  type TxStep,
} from './protocol/requests.js';
export { fromErrorBody, refuse, toErrorBody } from './protocol/errors.js';
export { parseJournalEntry, parseJournalRecord, partOf } from './protocol/records.js';
export { EpochFences, entryEpoch, MAX_EARLIER_MARKERS, parseEpochMarker, type EpochMarker } from './protocol/epochs.js';
export { DEDUP_MAX_IDS, DEDUP_WINDOW_MS } from './protocol/dedup.js';
export {
  isFailoverRequest,
  isResetFailoverRequest,
  parseClientNotice,
  requestFailover,
  requestFailoverReset,
  type ClientNotice,
  type FailoverReply,
  type FailoverRequest,
  type ResetFailoverReply,
  type ResetFailoverRequest,
} from './protocol/control.js';
export {
  bucketName,
  journalStreamName,
  parseTimerKey,
  REPLY_BLOB_MAX_AGE_MS,
  SHARD_COUNT_KEY,
  sessionKey,
  storeDescription,
  timerKey,
  VIEW_KEY,
  type BucketKind,
} from './protocol/names.js';
export {
  adminInbox,
  clientInbox,
  inboxOwner,
  labelOf,
  newClientId,
  noticeSubject,
  workerInbox,
} from './protocol/clientId.js';
export {
  clientLabelPattern,
  inboxOwnerOf,
  inboxPrefixFor,
  kvStreamName,
  objectStreamName,
  RESERVED_LABELS,
  rolePermissions,
  userNameOf,
  validateClientLabel,
  type Permissions,
  type Role,
} from './protocol/permissions.js';
export { agreeShardCount, recordedShardCount } from './protocol/clusterSettings.js';
// Workers as NATS micro services, and JSON for people: the wire shapes.
export * from './protocol/service.js';
export { isJsonRequest, parseJson, toJson } from './protocol/json.js';
export { cohortVersion } from './protocol/version.js';
export {
  readView,
  waitForView,
  watchView,
  type UnreadableViewHandler,
  type ViewHandler,
  type ViewWaiter,
} from './protocol/viewWatch.js';

export { resolveEnvironment } from './bus/environment.js';

// The memory bus's simulated network, for the simulator.
export {
  connectionOf,
  SERVER,
  type ConnectionHooks,
  type Hop,
  type HopKind,
  type Network,
  type NetworkEvent,
} from './bus/memory/mod.js';

// Codec, claim-check and subjects.
export { CODEC, DEFAULT_MAX_DEPTH, decode, encode, type DecodeOptions, type EncodeOptions } from './bus/codec.js';
export {
  CLAIM_CHECK_HEADER,
  claimCheckOf,
  decodeBody,
  encodeBody,
  type EncodeBodyOptions,
  type EncodedBody,
} from './bus/claimCheck.js';
export * from './bus/subjects.js';
export { subjectMatches, validateKvKey, validateName, validateSubject } from './bus/names.js';
export {
  compareVersions,
  FEATURE_SINCE,
  MINIMUM_SERVER_VERSION,
  requireFeature,
  serverSupports,
} from './bus/features.js';
export type { JournalFollow } from './bus/types.js';

// Pure machines and decisions.
export {
  connectionMachine,
  nextDeadline,
  retryPause,
  type ConnectionConfig,
  type ConnectionEffect,
  type Failure,
} from './machines/connection.js';
export {
  membershipMachine,
  type Heartbeat,
  type MembershipConfig,
  type MembershipEffect,
} from './machines/membership.js';
export {
  MembershipConfigError,
  membershipConfig,
  type MembershipOption,
  type MembershipSettings,
} from './machines/membershipConfig.js';
export {
  completeHandoff,
  PlacementError,
  placeShards,
  withoutMembers,
  type PlacementInput,
} from './machines/placement.js';
export { NO_SAFEGUARDS, packView, unpackView, type PackedSafeguards, type PackedView } from './machines/view.js';
export {
  decodeView,
  encodeView,
  VIEW_FORMAT,
  viewDocument,
  type MemberDocument,
  type ShardDocument,
  type ViewDocument,
} from './protocol/viewDocument.js';
export { decodeDue, encodeDue } from './protocol/timerValue.js';
export type { SafeguardDecision } from './machines/safeguards.js';
export { pureTransition } from './machines/pureTransition.js';
export {
  documentOf,
  persistSession,
  replaySession,
  restoreSession,
  startSession,
  stepSession,
  type PersistedSession,
  type SessionState,
  type StepResult,
  type Timer,
} from './machines/session.js';

// The hosts' parts.
export { MembershipHost } from './actors/worker/membership.js';
export { Lease, type Primacy } from './actors/worker/lease.js';
export { HostedSession, type HostedSessionOptions } from './actors/worker/session.js';
export type { ReplicaWaits, SessionDeps, SessionLock, WakeupIndex } from './actors/worker/sessionDeps.js';
export { JournalGapError, loadSession, type LoadedSession } from './actors/worker/replay.js';
export { SessionStore, type StoredSnapshot } from './actors/worker/sessionStore.js';
export type { RecentCommand } from './actors/worker/recentCommands.js';
export { createCounter } from './actors/client/counter.js';
export { DEFAULT_CACHE_SIZE, DocumentCache, type CachedDocument } from './actors/client/documentCache.js';

// Logging.
export { childLogger, type LogBindings } from './log/logger.js';

/** Test-only switches that break a guarantee on purpose (a planted bug a harness must find). */
export { UNSAFE, type UnsafeSwitches } from './actors/worker/unsafe.js';
