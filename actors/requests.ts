import type { CommandRequest, ReadRequest, UserEvent } from '../machines/protocol.js';
import { InvalidRequestError } from './errors.js';

const MAX_ID = 256;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array) && !(v instanceof Date);
}

function checkLabel(v: unknown, what: string): string | InvalidRequestError {
  if (typeof v !== 'string' || v.length === 0 || v.length > MAX_ID) return new InvalidRequestError(`${what} must be a string of 1-${MAX_ID} characters`);
  return v;
}

/** A command off the wire, checked field by field; an Error says what was wrong. */
export function parseCommand(body: unknown): CommandRequest | InvalidRequestError {
  if (!isRecord(body)) return new InvalidRequestError('a command is a map with event, cmdId and client');
  const { event, cmdId, client, expectSeq } = body;
  if (!isRecord(event)) return new InvalidRequestError('event must be a map');
  if (typeof event['type'] !== 'string' || event['type'].length === 0 || event['type'].length > MAX_ID) {
    return new InvalidRequestError(`event.type must be a string of 1-${MAX_ID} characters`);
  }
  // Delayed events are the runtime's to fire: a client must not trigger a session's timers.
  if (event['type'].startsWith('xstate.')) return new InvalidRequestError(`event type ${event['type']} is reserved`);
  const id = checkLabel(cmdId, 'cmdId');
  if (id instanceof Error) return id;
  const who = checkLabel(client, 'client');
  if (who instanceof Error) return who;
  if (expectSeq !== undefined && (!Number.isSafeInteger(expectSeq) || (expectSeq as number) < 0)) {
    return new InvalidRequestError('expectSeq must be a non-negative integer');
  }
  const { meta: _ignored, ...userEvent } = event;
  return { event: userEvent as UserEvent, cmdId: id, client: who, ...(expectSeq === undefined ? {} : { expectSeq: expectSeq as number }) };
}

export function parseRead(body: unknown): ReadRequest | InvalidRequestError {
  if (!isRecord(body)) return new InvalidRequestError('a read is a map with client');
  const who = checkLabel(body['client'], 'client');
  if (who instanceof Error) return who;
  const { minSeq } = body;
  if (minSeq !== undefined && (!Number.isSafeInteger(minSeq) || (minSeq as number) < 0)) {
    return new InvalidRequestError('minSeq must be a non-negative integer');
  }
  return { client: who, ...(minSeq === undefined ? {} : { minSeq: minSeq as number }) };
}
