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
import { HEADER } from '../../protocol/headers.js';
import type { JournalRecord, PatchMessage, PatchOperation } from '../../protocol/messages.js';

export interface RecordStamp {
  /** The journal's de-duplication id: the command id, or a transaction's id. */
  readonly msgId: string;
  /** The fence: the last stream sequence the writing copy reflects. */
  readonly expectedLastSubjectSeq: number;
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
  return journal.append(subject, encode(record), {
    msgId: stamp.msgId,
    expectedLastSubjectSeq: stamp.expectedLastSubjectSeq,
    headers: {
      [HEADER.type]: 'event',
      [HEADER.session]: stamp.session,
      [HEADER.command]: stamp.msgId,
      [HEADER.seq]: String(record.events[record.events.length - 1]!.seq),
      [HEADER.epoch]: String(stamp.epoch),
      [HEADER.worker]: stamp.worker,
    },
  });
}

/** The session seq a record journaled earlier gave `cmdId` (the record's last, for a batch); undefined when it is gone. */
export async function seqOfJournaled(
  journal: Journal,
  subject: string,
  journalSeq: number,
  cmdId: string,
): Promise<number | undefined> {
  for await (const e of journal.read(subject, { fromSeq: journalSeq, limit: 1 })) {
    const rec = decode(e.data, { where: `journal ${subject}#${journalSeq}` }) as JournalRecord;
    const hit = rec.events.find((x) => x.event.meta.cmdId === cmdId) ?? rec.events[rec.events.length - 1];
    if (hit) return hit.seq;
  }
  return undefined;
}

/** The change from `prev` to `next` as RFC 6902 operations, to the session's subscribers; throws when it is too large to publish. */
export function publishPatch(
  bus: Bus,
  cluster: string,
  app: string,
  id: string,
  change: { prev: SessionState; next: SessionState; setter: string },
): void {
  const { prev, next, setter } = change;
  const ops = jsonPatch.compare(documentOf(prev) as object, documentOf(next) as object) as PatchOperation[];
  const patch: PatchMessage = { seq: next.seq, prev: prev.seq, ops, setter };
  bus.publish(eventSubject(cluster, app, id), encode(patch), {
    headers: {
      [HEADER.type]: 'patch',
      [HEADER.session]: `${app}/${id}`,
      [HEADER.seq]: String(next.seq),
      [HEADER.client]: setter,
    },
  });
}
