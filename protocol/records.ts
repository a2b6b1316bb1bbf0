/**
 * What the journal holds, checked when it is read back: anyone who can
 * publish may have written to a journal subject, and a record taken on
 * trust would break the session for every later read (a TypeError deep in
 * a replay). A record that does not check out is named, with its sequence,
 * and refused.
 */
import type { JournaledEvent, JournalRecord, TxAbort, TxIntent, TxPart } from './messages.js';

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

/** Events with consecutive seqs, or why they are not. */
function checkEvents(events: unknown, what = ''): string | undefined {
  if (!Array.isArray(events) || events.length === 0) return `no events${what}`;
  if (events.length > MAX_EVENTS) return `${events.length} events in one record${what}`;
  let prev: number | undefined;
  for (let i = 0; i < events.length; i++) {
    const e = checkEvent(events[i], i);
    if (typeof e === 'string') return e + what;
    if (prev !== undefined && e.seq !== prev + 1) return `event ${i} has seq ${e.seq} after ${prev}${what}`;
    prev = e.seq;
  }
  return undefined;
}

function isText(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= 1024;
}

/**
 * A decoded journal body as a record (version 1, events with consecutive
 * seqs; a multi-session transaction's record with its other sessions'
 * parts checked alike), or why it is not one.
 */
export function parseJournalRecord(body: unknown): JournalRecord | string {
  if (!isRecord(body)) return 'not a map';
  if (body['v'] !== 1) return `version ${JSON.stringify(body['v'])} is not 1`;
  const bad = checkEvents(body['events']);
  if (bad !== undefined) return bad;
  const tx = body['tx'];
  if (tx !== undefined) {
    if (!isRecord(tx) || !isText(tx['id']) || !Array.isArray(tx['parts']) || tx['parts'].length === 0)
      return 'tx is not a map with an id and parts';
    for (let i = 0; i < tx['parts'].length; i++) {
      const part: unknown = tx['parts'][i];
      if (!isRecord(part) || !isText(part['app']) || !isText(part['id'])) return `tx part ${i} names no session`;
      const at = part['intent'];
      if (typeof at !== 'number' || !Number.isSafeInteger(at) || at < 1) return `tx part ${i} has no intent`;
      const wrong = checkEvents(part['events'], ` in tx part ${i}`);
      if (wrong !== undefined) return wrong;
    }
  }
  return body as unknown as JournalRecord;
}

/** What a journal entry on a session's subject is: its events, a transaction's intent, or a transaction's abort. */
export type JournalEntryBody =
  | { readonly kind: 'record'; readonly record: JournalRecord }
  | { readonly kind: 'intent'; readonly intent: TxIntent['intent'] }
  | { readonly kind: 'abort'; readonly txId: string };

/** A decoded journal body as one of the three, or why it is none. */
export function parseJournalEntry(body: unknown): JournalEntryBody | string {
  if (isRecord(body) && body['v'] === 1 && body['intent'] !== undefined) {
    const intent = body['intent'];
    if (!isRecord(intent) || !isText(intent['tx'])) return 'intent names no transaction';
    const at = intent['at'];
    if (!isRecord(at) || !isText(at['app']) || !isText(at['id'])) return 'intent names no coordinator';
    return { kind: 'intent', intent: (body as unknown as TxIntent).intent };
  }
  if (isRecord(body) && body['v'] === 1 && body['abort'] !== undefined) {
    if (!isText(body['abort'])) return 'abort names no transaction';
    return { kind: 'abort', txId: (body as unknown as TxAbort).abort };
  }
  const record = parseJournalRecord(body);
  return typeof record === 'string' ? record : { kind: 'record', record };
}

/** The part of session `app`/`id` in a multi-session record, taking effect at its intent `intent`. */
export function partOf(record: JournalRecord, app: string, id: string, intent: number): TxPart | undefined {
  return record.tx?.parts.find((p) => p.app === app && p.id === id && p.intent === intent);
}
