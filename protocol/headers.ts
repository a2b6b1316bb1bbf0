import { escapeToken } from '../bus/subjects.js';

/**
 * Headers repeat a message's essentials as text, so `nats sub 'cohort.>'`
 * and `nats stream view` explain what they show without decoding msgpack.
 */
export const HEADER = {
  type: 'Cohort-Type',
  session: 'Cohort-Session',
  command: 'Cohort-Cmd',
  client: 'Cohort-Client',
  seq: 'Cohort-Seq',
  epoch: 'Cohort-Epoch',
  /** The member that wrote a journal entry, so a history can be checked for one writer per epoch. */
  worker: 'Cohort-Worker',
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
