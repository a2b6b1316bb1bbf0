/**
 * Workers as NATS micro services (ADR-32, "Service API"): the `$SRV`
 * discovery subjects and the JSON a worker answers on them, field for field
 * what `nats micro ls|info|ping|stats` and @nats-io/services' client read,
 * plus the bodies of the worker's own endpoints. Pure: no bus, no clock.
 */
import { InvalidRequestError } from './errors.js';
import type { ErrorBody } from './messages.js';
import { escapeToken } from '../bus/subjects.js';

/** Every worker registers under this name: `nats micro info cohort` lists them all. */
export const SERVICE_NAME = 'cohort';
export const SERVICE_DESCRIPTION = 'A cohort worker: hosts actor sessions of the cluster named in its metadata';
/** The discovery prefix, as natscli and nats.js send it. */
export const SERVICE_API_PREFIX = '$SRV';
/** The default queue group of ADR-32: a worker's own endpoints use it. */
export const SERVICE_QUEUE = 'q';

export type ServiceVerb = 'PING' | 'INFO' | 'STATS';
export const SERVICE_VERBS: readonly ServiceVerb[] = ['PING', 'INFO', 'STATS'];

export const SERVICE_RESPONSE_TYPE = {
  PING: 'io.nats.micro.v1.ping_response',
  INFO: 'io.nats.micro.v1.info_response',
  STATS: 'io.nats.micro.v1.stats_response',
} as const satisfies Record<ServiceVerb, string>;

/** ADR-32 error headers: every error reply of an endpoint carries both. */
export const SERVICE_ERROR_HEADER = 'Nats-Service-Error';
export const SERVICE_ERROR_CODE_HEADER = 'Nats-Service-Error-Code';
export const JSON_CONTENT_TYPE = 'application/json';

/** `$SRV.<verb>`, `$SRV.<verb>.cohort`, `$SRV.<verb>.cohort.<id>`: all services, all cohort workers, one (`*`: any one). */
export function discoverySubjects(verb: ServiceVerb, instance: string): string[] {
  return [
    `${SERVICE_API_PREFIX}.${verb}`,
    `${SERVICE_API_PREFIX}.${verb}.${SERVICE_NAME}`,
    `${SERVICE_API_PREFIX}.${verb}.${SERVICE_NAME}.${instance}`,
  ];
}

/**
 * A service instance id, one plain token as ADR-32 names allow (`[A-Za-z0-9_-]`),
 * from a fresh id of the environment (a UUID: its dashes kept).
 */
export function serviceInstanceId(freshId: string): string {
  const id = freshId.replace(/[^A-Za-z0-9_-]/g, '');
  if (id.length === 0) throw new RangeError(`no service instance id can be made of ${JSON.stringify(freshId)}`);
  return id.slice(0, 64);
}

/** Free-form strings, as ADR-33 metadata: `{ cluster, worker, zone, view }` for a worker. */
export type ServiceMetadata = Readonly<Record<string, string>>;

/** The fields every discovery answer starts with; PING answers exactly these. */
export interface ServiceIdentity {
  readonly type: string;
  readonly name: string;
  readonly id: string;
  readonly version: string;
  readonly metadata: ServiceMetadata;
}

export interface EndpointInfo {
  readonly name: string;
  readonly subject: string;
  /** Absent: the endpoint's subscriptions take no queue group. */
  readonly queue_group?: string;
  readonly metadata: ServiceMetadata;
}

export interface ServiceInfo extends ServiceIdentity {
  readonly description: string;
  readonly endpoints: readonly EndpointInfo[];
}

export interface EndpointStats {
  readonly name: string;
  readonly subject: string;
  readonly queue_group?: string;
  readonly num_requests: number;
  readonly num_errors: number;
  /** The message of the last error, or "" when there has been none. */
  readonly last_error: string;
  /** Nanoseconds. */
  readonly processing_time: number;
  /** Nanoseconds, truncated; 0 before the first request. */
  readonly average_processing_time: number;
}

export interface ServiceStats extends ServiceIdentity {
  /** ISO 8601 in UTC: when the worker registered the service. */
  readonly started: string;
  readonly endpoints: readonly EndpointStats[];
}

// ---------------------------------------------------------------- endpoints

/** GET-like endpoints take an empty body or a JSON object; anything else is refused, not guessed at. */
export type ServiceEndpoint = 'status' | 'sessions' | 'inspect';
export const SERVICE_ENDPOINTS: readonly ServiceEndpoint[] = ['status', 'sessions', 'inspect'];

/** A worker's part in the cluster, as it sees it now. */
export interface StatusReply {
  readonly worker: string;
  /** Its id in the view (`w1`, or `w1~2` after a rejoin); null with static sharding or between memberships. */
  readonly member: string | null;
  readonly zone: string | null;
  readonly cluster: string;
  readonly view: number | null;
  readonly leader: string | null;
  /** Shards it serves as primary now. */
  readonly primary: readonly number[];
  /** Shards the view makes it a secondary of. */
  readonly secondary: readonly number[];
  readonly activeSessions: number;
  /** `healthy`, or why not (the failure condition's reason). */
  readonly health: string;
  readonly version: string;
}

export interface SessionEntry {
  readonly app: string;
  readonly id: string;
  readonly shard: number;
  readonly seq: number;
}

export interface SessionsReply {
  readonly worker: string;
  readonly sessions: readonly SessionEntry[];
}

export interface InspectRequest {
  readonly app: string;
  readonly id: string;
}

export interface PendingTimer {
  readonly id: string;
  readonly event: string;
  /** ISO 8601 UTC. */
  readonly due: string;
}

export type InspectReply =
  | {
      readonly worker: string;
      readonly app: string;
      readonly id: string;
      readonly shard: number;
      readonly held: true;
      readonly seq: number;
      readonly state: unknown;
      readonly document: unknown;
      readonly timers: readonly PendingTimer[];
      /** The transaction holding the session's lock, or null. */
      readonly transaction: { readonly txId: string; readonly client: string } | null;
    }
  | {
      readonly worker: string;
      readonly app: string;
      readonly id: string;
      readonly shard: number;
      /** Not in this worker's memory: another worker holds it, or nobody does now. */
      readonly held: false;
    };

/** An endpoint's refusal body, beside the ADR-32 headers. */
export interface ServiceErrorReply {
  readonly error: ErrorBody;
}

const MAX_ID = 256;

/** `{ app, id }`, checked: the id must make a subject token, as every session id does. */
export function parseInspectRequest(body: unknown): InspectRequest | InvalidRequestError {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    return new InvalidRequestError('inspect takes a JSON object {"app": ..., "id": ...}');
  const { app, id } = body as Record<string, unknown>;
  if (typeof app !== 'string' || app.length === 0 || app.length > 64)
    return new InvalidRequestError('app must be a string of 1-64 characters');
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_ID)
    return new InvalidRequestError(`id must be a string of 1-${MAX_ID} characters`);
  try {
    escapeToken(id);
  } catch (err) {
    return new InvalidRequestError(`id: ${err instanceof Error ? err.message : String(err)}`);
  }
  return { app, id };
}

/** ADR-32's code for an error: 503 for what may succeed when tried again, 404 for what is not here, else 400. */
export function serviceErrorCode(error: ErrorBody): number {
  if (error.retryable) return 503;
  if (error.name === 'UnknownApplicationError') return 404;
  return 400;
}

/** A header value: one line of printable text, not too long for a header block. */
export function headerLine(text: string): string {
  const line = text.replace(/[\u0000-\u001f\u007f]+/g, ' ');
  return line.length > 512 ? `${line.slice(0, 509)}...` : line;
}
