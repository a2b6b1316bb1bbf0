/**
 * Requests on the wire: built here by the client, parsed here by the worker,
 * field by field. A parse returns an InvalidRequestError saying what was
 * wrong rather than throwing, so a worker answers it and keeps serving.
 */
import { InvalidRequestError } from './errors.js';
import { shardOf } from './shard.js';
import type {
  CommandRequest,
  ReadRequest,
  Request,
  SessionRef,
  TxRequest,
  UnwatchRequest,
  UserEvent,
  VerifyRequest,
  WatchRequest,
} from './messages.js';

const MAX_ID = 256;

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array) && !(v instanceof Date);
}

/** Control characters: ids travel in headers (a command id is the journal's Nats-Msg-Id), where CR or LF would break the block. */
const CONTROL = /[\u0000-\u001f\u007f]/;

export function checkLabel(v: unknown, what: string): string | InvalidRequestError {
  if (typeof v !== 'string' || v.length === 0 || v.length > MAX_ID)
    return new InvalidRequestError(`${what} must be a string of 1-${MAX_ID} characters`);
  if (CONTROL.test(v)) return new InvalidRequestError(`${what} must not hold control characters`);
  return v;
}

/** A command off the wire, checked field by field; an Error says what was wrong. */
export function parseCommand(body: unknown): CommandRequest | InvalidRequestError {
  if (!isRecord(body) || body['kind'] !== 'command')
    return new InvalidRequestError("a command is a map with kind 'command', event, cmdId and client");
  const { cmdId, client, expectSeq } = body;
  const event = checkEvent(body['event']);
  if (event instanceof Error) return event;
  const id = checkLabel(cmdId, 'cmdId');
  if (id instanceof Error) return id;
  const who = checkLabel(client, 'client');
  if (who instanceof Error) return who;
  if (expectSeq !== undefined && (!Number.isSafeInteger(expectSeq) || (expectSeq as number) < 0)) {
    return new InvalidRequestError('expectSeq must be a non-negative integer');
  }
  return {
    kind: 'command',
    event,
    cmdId: id,
    client: who,
    ...(expectSeq === undefined ? {} : { expectSeq: expectSeq as number }),
  };
}

export function parseRead(body: unknown): ReadRequest | InvalidRequestError {
  if (!isRecord(body) || body['kind'] !== 'read')
    return new InvalidRequestError("a read is a map with kind 'read' and client");
  const who = checkLabel(body['client'], 'client');
  if (who instanceof Error) return who;
  const { minSeq } = body;
  if (minSeq !== undefined && (!Number.isSafeInteger(minSeq) || (minSeq as number) < 0)) {
    return new InvalidRequestError('minSeq must be a non-negative integer');
  }
  return { kind: 'read', client: who, ...(minSeq === undefined ? {} : { minSeq: minSeq as number }) };
}

/** Longest lease a transaction may ask for: a client that needs more should not hold a session's lock that long. */
export const MAX_TX_TIMEOUT = 600_000;

function checkEvent(event: unknown): UserEvent | InvalidRequestError {
  if (!isRecord(event)) return new InvalidRequestError('event must be a map');
  if (typeof event['type'] !== 'string' || event['type'].length === 0 || event['type'].length > MAX_ID) {
    return new InvalidRequestError(`event.type must be a string of 1-${MAX_ID} characters`);
  }
  // Delayed events are the runtime's to fire: a client must not trigger a session's timers.
  if (event['type'].startsWith('xstate.')) return new InvalidRequestError(`event type ${event['type']} is reserved`);
  const { meta: _ignored, ...userEvent } = event;
  return userEvent as UserEvent;
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

export function parseVerify(body: unknown): VerifyRequest | InvalidRequestError {
  if (!isRecord(body) || body['kind'] !== 'verify')
    return new InvalidRequestError("a verification is a map with kind 'verify', client, since and max");
  const who = checkLabel(body['client'], 'client');
  if (who instanceof Error) return who;
  const { since, max } = body;
  if (!isCount(since)) return new InvalidRequestError('since must be a non-negative integer');
  if (!isCount(max) || max < 1) return new InvalidRequestError('max must be a positive integer');
  return { kind: 'verify', client: who, since, max };
}

/** A watch's lease when it names none (ms): renewed at a third of it. */
export const DEFAULT_WATCH_LEASE = 30_000;
/** Leases asked for outside these bounds are held to them: shorter would flood the worker with renewals. */
export const MIN_WATCH_LEASE = 1_000;
/** Longer would outlast the publishing a new primary does before it has heard from every watcher (WatchInterest). */
export const MAX_WATCH_LEASE = 60_000;

/** A watch or an unwatch off the wire; a lease that is a positive number is held to the bounds, anything else refused. */
export function parseWatch(body: unknown): WatchRequest | UnwatchRequest | InvalidRequestError {
  if (!isRecord(body) || (body['kind'] !== 'watch' && body['kind'] !== 'unwatch'))
    return new InvalidRequestError("a watch is a map with kind 'watch' or 'unwatch', client and an optional lease");
  const who = checkLabel(body['client'], 'client');
  if (who instanceof Error) return who;
  if (body['kind'] === 'unwatch') return { kind: 'unwatch', client: who };
  const lease = body['lease'];
  if (lease === undefined) return { kind: 'watch', client: who };
  if (typeof lease !== 'number' || !Number.isFinite(lease) || !(lease > 0))
    return new InvalidRequestError('lease must be a positive number of ms');
  return { kind: 'watch', client: who, lease: Math.min(MAX_WATCH_LEASE, Math.max(MIN_WATCH_LEASE, Math.round(lease))) };
}

export function parseTx(body: unknown): TxRequest | InvalidRequestError {
  if (!isRecord(body) || body['kind'] !== 'tx')
    return new InvalidRequestError("a transaction step is a map with kind 'tx', op, txId and client");
  const txId = checkLabel(body['txId'], 'txId');
  if (txId instanceof Error) return txId;
  const client = checkLabel(body['client'], 'client');
  if (client instanceof Error) return client;
  const op = body['op'];
  const began = body['epoch'];
  if (began !== undefined && !isCount(began)) return new InvalidRequestError('epoch must be a non-negative integer');
  const epoch = began === undefined || op === 'begin' || op === 'abort' ? {} : { epoch: began };
  switch (op) {
    case 'begin': {
      const timeout = body['timeout'];
      if (typeof timeout !== 'number' || !(timeout > 0 && timeout <= MAX_TX_TIMEOUT)) {
        return new InvalidRequestError(`timeout must be a number of ms above 0 and at most ${MAX_TX_TIMEOUT}`);
      }
      return { kind: 'tx', op, txId, client, timeout };
    }
    case 'send': {
      const step = body['step'];
      if (!isCount(step)) return new InvalidRequestError('step must be a non-negative integer');
      const event = checkEvent(body['event']);
      if (event instanceof Error) return event;
      const on = checkOn(body['on']);
      if (on instanceof Error) return on;
      return { kind: 'tx', op, txId, client, step, event, ...epoch, ...on };
    }
    case 'commit': {
      const steps = body['steps'];
      if (!isCount(steps)) return new InvalidRequestError('steps must be a non-negative integer');
      return { kind: 'tx', op, txId, client, steps, ...epoch };
    }
    case 'read': {
      const on = checkOn(body['on']);
      if (on instanceof Error) return on;
      return { kind: 'tx', op, txId, client, ...epoch, ...on };
    }
    case 'abort':
      return { kind: 'tx', op, txId, client };
    default:
      return new InvalidRequestError('op must be one of begin, send, read, commit, abort');
  }
}

/** The other session a transaction step names, if it names one: an app and an id, checked as labels. */
function checkOn(on: unknown): { on?: SessionRef } | InvalidRequestError {
  if (on === undefined) return {};
  if (!isRecord(on)) return new InvalidRequestError('on must be a map with app and id');
  const app = checkLabel(on['app'], 'on.app');
  if (app instanceof Error) return app;
  const id = checkLabel(on['id'], 'on.id');
  if (id instanceof Error) return id;
  return { on: { app, id } };
}

/**
 * The request a body on a session subject carries, by its `kind`: commands
 * and transaction steps go to `cmd` (the primary), reads, verifications and
 * watches to `read` (watches there only) or `ro`.
 */
export function parseRequest(body: unknown, subject: 'cmd' | 'read'): Request | InvalidRequestError {
  const kind = isRecord(body) ? body['kind'] : undefined;
  if (subject === 'cmd') {
    if (kind === 'command') return parseCommand(body);
    if (kind === 'tx') return parseTx(body);
    return new InvalidRequestError("a request on a cmd subject has kind 'command' or 'tx'");
  }
  if (kind === 'read') return parseRead(body);
  if (kind === 'verify') return parseVerify(body);
  if (kind === 'watch' || kind === 'unwatch') return parseWatch(body);
  return new InvalidRequestError("a request on a read subject has kind 'read', 'verify', 'watch' or 'unwatch'");
}

/** A transaction step without its envelope: what the client's transaction adds to each. */
export type TxStep = Unwrapped<TxRequest>;
type Unwrapped<T> = T extends unknown ? Omit<T, 'kind' | 'txId' | 'client'> : never;

export function commandRequest(event: UserEvent, cmdId: string, client: string, expectSeq?: number): CommandRequest {
  return { kind: 'command', event, cmdId, client, ...(expectSeq === undefined ? {} : { expectSeq }) };
}

export function readRequest(client: string, minSeq?: number): ReadRequest {
  return { kind: 'read', client, ...(minSeq === undefined ? {} : { minSeq }) };
}

export function verifyRequest(client: string, since: number, max: number): VerifyRequest {
  return { kind: 'verify', client, since, max };
}

export function watchRequest(client: string, lease?: number): WatchRequest {
  return { kind: 'watch', client, ...(lease === undefined ? {} : { lease }) };
}

export function unwatchRequest(client: string): UnwatchRequest {
  return { kind: 'unwatch', client };
}

export function txRequest(txId: string, client: string, step: TxStep): TxRequest {
  return { kind: 'tx', txId, client, ...step } as TxRequest;
}

/**
 * A session request must come on its own shard's subject: one sent to
 * another shard (a client configured with another shard count) would be
 * journaled where a restart never looks for it.
 */
export function checkShard(
  app: string,
  id: string,
  shard: number,
  shardCount: number,
): InvalidRequestError | undefined {
  const expected = shardOf(app, id, shardCount);
  if (shard === expected) return undefined;
  return new InvalidRequestError(
    `session ${app}/${id} lives on shard ${expected} of ${shardCount}, not on shard ${shard}`,
  );
}

/**
 * A request typed by hand in JSON, for the client labelled `label` (the
 * subject's last token): on a cmd subject a bare event (`{"type": ...}`, a
 * top-level `type` no request envelope has) is a command with a fresh
 * `cmdId`; on a read subject an empty body or `{}` (or `{"minSeq": n}`) is a
 * read. A full request (`kind` and all) is taken as msgpack would be, so a
 * client claiming another label is refused the same way.
 */
export function parseJsonRequest(
  body: unknown,
  subject: 'cmd' | 'read',
  label: string,
  newId: () => string,
): Request | InvalidRequestError {
  if (subject === 'cmd') {
    if (!isRecord(body))
      return new InvalidRequestError('a JSON command is an event object {"type": ...} or a request with its kind');
    if (typeof body['type'] === 'string')
      return parseCommand({ kind: 'command', event: body, cmdId: newId(), client: label });
    return parseRequest(body, 'cmd');
  }
  if (body === undefined) return parseRead({ kind: 'read', client: label });
  if (!isRecord(body))
    return new InvalidRequestError('a JSON read is an empty body, {} or {"minSeq": n}, or a request with its kind');
  if (body['kind'] !== undefined) return parseRequest(body, 'read');
  const extra = Object.keys(body).filter((k) => k !== 'minSeq');
  if (extra.length > 0) return new InvalidRequestError(`a JSON read takes only minSeq, not ${extra.join(', ')}`);
  return parseRead({ ...body, kind: 'read', client: label });
}
