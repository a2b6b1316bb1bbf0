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
