import { escapeToken } from '../bus/subjects.js';

/**
 * Headers repeat a message's essentials as text, so `nats sub 'cohort.>'`
 * and `nats stream view` explain what they show without decoding msgpack.
 *
 * They are for humans: anyone who may publish can write any of them, so a
 * worker never decides on what a request, a heartbeat or a replica report
 * says in them (the body says it, checked). The exceptions are headers the
 * worker wrote itself and reads back from the journal (command, epoch and
 * worker of its own entries, where only workers may append) and its own
 * heartbeat's number, which it only compares with what it sent.
 */
export const HEADER = {
  type: 'Cohort-Type',
  session: 'Cohort-Session',
  /** On commands and journal entries: the command id (the journal's de-duplication id). */
  command: 'Cohort-Cmd',
  /** On commands, reads and journal entries: the client that sent it (escaped by headerText). */
  client: 'Cohort-Client',
  /** On commands and reads: the event's type, or `read`; on journal entries, the types of its events. */
  event: 'Cohort-Event',
  seq: 'Cohort-Seq',
  epoch: 'Cohort-Epoch',
  /** The member that wrote a journal entry (so a history can be checked for one writer per epoch), sent a heartbeat or a replica report. */
  worker: 'Cohort-Worker',
  /** On replica reports: the shard reported on. */
  shard: 'Cohort-Shard',
  /** A heartbeat's number, so its sender can tell when the server has it (its lease). */
  beat: 'Cohort-Beat',
} as const;

/** `app/id` as a header carries it: the id escaped as in subjects (`alice.smith` is `alice=2Esmith`), so an id with CR or LF still makes a valid header. */
export function sessionHeader(app: string, id: string): string {
  return `${app}/${escapeToken(id)}`;
}

/** Text from a request (a client id) as a header carries it: as it is when printable ASCII, else escaped as a subject token. */
export function headerText(text: string): string {
  return /^[\x20-\x7e]*$/.test(text) ? text : escapeToken(text);
}
