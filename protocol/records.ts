/**
 * What the journal holds, checked when it is read back: anyone who can
 * publish may have written to a journal subject, and a record taken on
 * trust would break the session for every later read (a TypeError deep in
 * a replay). A record that does not check out is named, with its sequence,
 * and refused.
 */
import type { JournaledEvent, JournalRecord } from './messages.js';

const MAX_EVENTS = 100_000;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array) && !(v instanceof Date);
}

function checkEvent(e: unknown, at: number): JournaledEvent | string {
  if (!isRecord(e)) return `event ${at} is not a map`;
  const { seq, event } = e;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) return `event ${at} has no seq`;
  if (!isRecord(event) || typeof event['type'] !== 'string' || event['type'].length === 0)
    return `event ${at} has no type`;
  const meta = event['meta'];
  if (!isRecord(meta)) return `event ${at} has no meta`;
  if (typeof meta['time'] !== 'number' || !Number.isFinite(meta['time'])) return `event ${at} has no meta.time`;
  if (typeof meta['cmdId'] !== 'string' || meta['cmdId'].length === 0) return `event ${at} has no meta.cmdId`;
  if (typeof meta['client'] !== 'string') return `event ${at} has no meta.client`;
  if (meta['timer'] !== undefined && typeof meta['timer'] !== 'string')
    return `event ${at} has a meta.timer that is not text`;
  return e as unknown as JournaledEvent;
}

/** A decoded journal body as a record (version 1, events with consecutive seqs), or why it is not one. */
export function parseJournalRecord(body: unknown): JournalRecord | string {
  if (!isRecord(body)) return 'not a map';
  if (body['v'] !== 1) return `version ${JSON.stringify(body['v'])} is not 1`;
  const events = body['events'];
  if (!Array.isArray(events) || events.length === 0) return 'no events';
  if (events.length > MAX_EVENTS) return `${events.length} events in one record`;
  let prev: number | undefined;
  for (let i = 0; i < events.length; i++) {
    const e = checkEvent(events[i], i);
    if (typeof e === 'string') return e;
    if (prev !== undefined && e.seq !== prev + 1) return `event ${i} has seq ${e.seq} after ${prev}`;
    prev = e.seq;
  }
  return body as unknown as JournalRecord;
}
