/**
 * What a hosted session writes to the bus, as it appears to `nats stream
 * view` and `nats sub`: journal records with their headers, and patches.
 * Kept apart from the commit path so session.ts reads as the decisions.
 */
import jsonPatch from 'fast-json-patch';
import { decode, encode } from '../../bus/codec.js';
import { eventSubject } from '../../bus/subjects.js';
import type { AppendAck, Bus, Journal } from '../../bus/types.js';
import type { SessionState } from '../../machines/session.js';
import { documentOf } from '../../machines/session.js';
import { HEADER, headerText, sessionHeader } from '../../protocol/headers.js';
import { entryEpoch } from '../../protocol/epochs.js';
import { parseJournalRecord } from '../../protocol/records.js';
import { TX_RECORD_TYPE } from './txJournal.js';
import type { JournalRecord, PatchMessage, PatchOperation } from '../../protocol/messages.js';

export interface RecordStamp {
  /** The journal's de-duplication id: the command id, or a transaction's id. */
  readonly msgId: string;
  /** The fence: the last stream sequence the writing copy reflects (undefined only with the test-only UNSAFE switch). */
  readonly expectedLastSubjectSeq: number | undefined;
  /** `app/id`. */
  readonly session: string;
  readonly epoch: number;
  /** The member that writes it. */
  readonly worker: string;
}

/** Appends one record, fenced and de-duplicated; throws WrongLastSequenceError when the fence does not hold. */
export function appendRecord(
  journal: Journal,
  subject: string,
  record: JournalRecord,
  stamp: RecordStamp,
): Promise<AppendAck> {
  const events = record.events;
  // A single command's record (nearly every one) names its event and client without arrays of them.
  const single = events.length === 1 ? events[0]! : undefined;
  return journal.append(subject, encode(record), {
    msgId: stamp.msgId,
    expectedLastSubjectSeq: stamp.expectedLastSubjectSeq,
    headers: {
      [HEADER.type]: record.tx === undefined ? 'event' : TX_RECORD_TYPE,
      [HEADER.session]: stamp.session,
      [HEADER.command]: stamp.msgId,
      [HEADER.seq]: String(events[events.length - 1]!.seq),
      [HEADER.epoch]: String(stamp.epoch),
      [HEADER.worker]: stamp.worker,
      [HEADER.event]: single === undefined ? distinct(events.map((e) => e.event.type)) : headerText(single.event.type),
      [HEADER.client]:
        single === undefined ? distinct(events.map((e) => e.event.meta.client)) : headerText(single.event.meta.client),
    },
  });
}

/** Values of a batch's events for a header: each once, in order, comma-separated. */
function distinct(values: readonly string[]): string {
  return [...new Set(values)].map(headerText).join(',');
}

/**
 * What a record journaled earlier at `journalSeq` gave `cmdId`: its session
 * seq (the record's last, for a batch) and the epoch it was written under;
 * undefined when the journal no longer holds it there.
 */
export async function journaledAt(
  journal: Journal,
  subject: string,
  journalSeq: number,
  cmdId: string,
): Promise<{ readonly seq: number; readonly epoch: number } | undefined> {
  for await (const e of journal.read(subject, { fromSeq: journalSeq, limit: 1 })) {
    // Purged, or the id was another subject's: what follows on this one is not it.
    if (e.seq !== journalSeq) return undefined;
    const rec = parseJournalRecord(decode(e.data, { where: `journal ${subject}#${journalSeq}` }));
    if (typeof rec === 'string') return undefined;
    const hit = rec.events.find((x) => x.event.meta.cmdId === cmdId) ?? rec.events[rec.events.length - 1];
    if (hit) return { seq: hit.seq, epoch: entryEpoch(e.headers) };
  }
  return undefined;
}

/**
 * The record journaled at `seq` when it is an earlier attempt of command
 * `msgId` by the same writer (`worker`, at `epoch`) and continues a session
 * at seq `after`: the subject's last entry, its first event the next seq.
 * Undefined when it is anything else, or cannot be read now.
 */
export async function ownEarlierRecord(
  journal: Journal,
  subject: string,
  at: { seq: number; msgId: string; worker: string; epoch: number; after: number },
): Promise<JournalRecord | undefined> {
  let entry;
  try {
    entry = await journal.last(subject);
  } catch {
    return undefined;
  }
  if (entry === null || entry.seq !== at.seq) return undefined;
  const h = entry.headers;
  if (h[HEADER.command] !== at.msgId || h[HEADER.worker] !== at.worker || h[HEADER.epoch] !== String(at.epoch))
    return undefined;
  let record: JournalRecord | string;
  try {
    record = parseJournalRecord(decode(entry.data, { where: `journal ${subject}#${entry.seq}` }));
  } catch {
    return undefined;
  }
  if (typeof record === 'string' || record.events[0]!.seq !== at.after + 1) return undefined;
  return record;
}

/** Keys a document may not hold: the prototype-pollution vectors of any reader that merges documents naively. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** A cheap first look: only a path that names one of them is split into its segments. */
const FORBIDDEN_IN_PATH = /__proto__|constructor|prototype/;

/** A patch ready to publish once its commit is durable. */
export interface PreparedPatch {
  readonly seq: number;
  readonly setter: string;
  readonly data: Uint8Array;
}

/**
 * The change from `prev` to `next` as RFC 6902 operations, encoded before
 * anything is journaled: a reason (string) when the new document holds a
 * forbidden key or a value the codec cannot carry, because such a document
 * would break every later read and snapshot of the session.
 */
export function preparePatch(prev: SessionState, next: SessionState, setter: string): PreparedPatch | string {
  const doc = documentOf(next) as object;
  const ops = jsonPatch.compare(documentOf(prev) as object, doc) as PatchOperation[];
  try {
    for (const op of ops) {
      if (FORBIDDEN_IN_PATH.test(op.path)) {
        const key = op.path.split('/').find((segment) => FORBIDDEN_KEYS.has(segment));
        if (key !== undefined) return `the document would hold the key ${JSON.stringify(key)}`;
      }
      if (op.op !== 'add' && op.op !== 'replace') continue;
      // The value itself, not the diff's JSON copy of it: JSON turns a Map into {} and drops undefined.
      const value: unknown = op.path === '' ? doc : jsonPatch.getValueByPointer(doc, op.path);
      // Numbers, booleans and null always travel; strings and big integers are checked by the codec.
      if (value === null || (typeof value !== 'object' && typeof value !== 'string' && typeof value !== 'bigint'))
        continue;
      const nested = forbiddenKeyIn(value);
      if (nested !== undefined) return `the document would hold the key ${JSON.stringify(nested)}`;
      encode(value, { where: op.path === '' ? 'the document' : op.path });
    }
    const patch: PatchMessage = { seq: next.seq, prev: prev.seq, ops, setter };
    return { seq: next.seq, setter, data: encode(patch, { where: 'patch' }) };
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

/** The first forbidden key anywhere in `value`; iterative, so a deep document cannot overflow the stack. */
function forbiddenKeyIn(value: unknown): string | undefined {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v !== 'object' || v === null || v instanceof Uint8Array || v instanceof Date) continue;
    if (Array.isArray(v)) {
      for (const item of v) stack.push(item);
      continue;
    }
    for (const key of Object.keys(v)) {
      if (FORBIDDEN_KEYS.has(key)) return key;
      stack.push((v as Record<string, unknown>)[key]);
    }
  }
  return undefined;
}

/** A prepared patch to the session's subscribers; throws when it is too large to publish. */
export function publishPatch(bus: Bus, cluster: string, app: string, id: string, patch: PreparedPatch): void {
  bus.publish(eventSubject(cluster, app, id), patch.data, {
    headers: {
      [HEADER.type]: 'patch',
      [HEADER.session]: sessionHeader(app, id),
      [HEADER.seq]: String(patch.seq),
      [HEADER.client]: headerText(patch.setter),
    },
  });
}
