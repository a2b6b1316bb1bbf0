/**
 * A cluster's sessions as storage shows them, for `cohort sessions`,
 * `inspect` and `tail`: snapshots through the worker's own SessionStore,
 * journal entries through the protocol's record check, so what an operator
 * sees is read the way a worker reads it.
 */
import type { Bus, Journal, JournalEntry, KvStore } from '../index.js';
import {
  bucketName,
  decode,
  journalStreamFilter,
  journalStreamName,
  parseJournalEntry,
  SessionStore,
} from '../internal.js';

export interface SessionStores {
  snapshots: SessionStore;
  timers: KvStore;
  journal: Journal;
}

export async function openSessionStores(bus: Bus, cluster: string): Promise<SessionStores> {
  const [kv, blobs, timers, journal] = await Promise.all([
    bus.kv({ bucket: bucketName(cluster, 'snapshots'), create: false }),
    bus.blobs({ bucket: bucketName(cluster, 'blobs'), maxAge: 0 }),
    bus.kv({ bucket: bucketName(cluster, 'timers'), create: false }),
    bus.journal({ name: journalStreamName(cluster), subjects: [journalStreamFilter(cluster)] }),
  ]);
  return { snapshots: new SessionStore({ kv, blobs, maxPayload: bus.server.maxPayload }), timers, journal };
}

/** One journaled event, for people and scripts. */
export interface DecodedEvent {
  seq: number;
  type: string;
  client: string;
  cmdId: string;
  time: string;
  /** The event's own fields beyond type and meta. */
  data: Record<string, unknown>;
  timer?: string;
}

/** A journal entry decoded: its events, or why it could not be (a forged or foreign entry). */
export interface DecodedEntry {
  streamSeq: number;
  subject: string;
  time: string;
  events: DecodedEvent[];
  /** A multi-session transaction's entry explained: an intent, an abort, or a record with other sessions' parts. */
  note?: string;
  error?: string;
}

export function decodeEntry(entry: JournalEntry): DecodedEntry {
  const base = { streamSeq: entry.seq, subject: entry.subject, time: new Date(entry.time).toISOString() };
  let body: unknown;
  try {
    body = decode(entry.data, { where: `journal entry ${entry.seq}` });
  } catch (err) {
    return { ...base, events: [], error: (err as Error).message };
  }
  const parsed = parseJournalEntry(body);
  if (typeof parsed === 'string') return { ...base, events: [], error: `not a journal record: ${parsed}` };
  if (parsed.kind === 'intent') {
    const { tx, at } = parsed.intent;
    return {
      ...base,
      events: [],
      note: `intent of transaction ${tx}: its events for this session are in the record on ${at.app}/${at.id} that comes next there, if any`,
    };
  }
  if (parsed.kind === 'abort')
    return { ...base, events: [], note: `abort of transaction ${parsed.txId}: its record can no longer land` };
  const record = parsed.record;
  const parts = record.tx?.parts ?? [];
  return {
    ...base,
    ...(record.tx !== undefined && {
      note: `transaction ${record.tx.id}, with events for ${parts.map((p) => `${p.app}/${p.id} (${p.events.length})`).join(', ')} too`,
    }),
    events: record.events.map((e) => {
      const { type, meta, ...data } = e.event as unknown as {
        type: string;
        meta: { time: number; cmdId: string; client: string; timer?: string };
      } & Record<string, unknown>;
      return {
        seq: e.seq,
        type,
        client: meta.client,
        cmdId: meta.cmdId,
        time: new Date(meta.time).toISOString(),
        data,
        ...(meta.timer !== undefined && { timer: meta.timer }),
      };
    }),
  };
}

/** `DEPOSIT {"amount":5} by client#1234 (cmd 9f..)` */
export function describeEvent(e: DecodedEvent): string {
  const data = Object.keys(e.data).length === 0 ? '' : ` ${JSON.stringify(e.data)}`;
  return `seq ${e.seq} ${e.type}${data} by ${e.timer !== undefined ? `timer ${e.timer}` : e.client}`;
}
