import { connect as natsConnect, type Msg } from '@nats-io/transport-node';
import type { SessionHandle } from '../index.js';

/**
 * What a cohort send puts on the wire, read off the wire: a plain
 * subscriber beside the worker sees each command request and each journal
 * append of one session, so the journaling service can be given bodies of
 * the same size.
 */

export interface SendBodies {
  /** Bytes of a command request's body (msgpack), and of its header block. */
  readonly request: number;
  readonly requestHeaders: number;
  /** Bytes of the journal entry's body the worker appends for it, and of its header block. */
  readonly journal: number;
  readonly journalHeaders: number;
}

/** Sends `n` events to `session` (named `id`, a plain subject token) and returns the largest sizes seen. */
export async function measureSendBodies(
  url: string,
  subjects: { cmd: string; journal: string },
  session: SessionHandle,
  event: { type: string },
  n = 20,
): Promise<SendBodies> {
  const nc = await natsConnect({ servers: url, noAsyncTraces: true });
  const sizes = { request: 0, requestHeaders: 0, journal: 0, journalHeaders: 0 };
  const seen = { cmd: 0, journal: 0 };
  nc.subscribe(subjects.cmd, {
    callback: (_err, m) => {
      seen.cmd++;
      sizes.request = Math.max(sizes.request, m.data.length);
      sizes.requestHeaders = Math.max(sizes.requestHeaders, headerBytes(m));
    },
  });
  nc.subscribe(subjects.journal, {
    callback: (_err, m) => {
      seen.journal++;
      sizes.journal = Math.max(sizes.journal, m.data.length);
      sizes.journalHeaders = Math.max(sizes.journalHeaders, headerBytes(m));
    },
  });
  await nc.flush();
  for (let i = 0; i < n; i++) await session.send(event);
  await nc.flush();
  await nc.close();
  if (seen.cmd < n || seen.journal < n)
    throw new Error(`saw ${seen.cmd} requests and ${seen.journal} journal appends of ${n} sends on ${subjects.cmd}`);
  return sizes;
}

/** The header block as it travels: `NATS/1.0`, one `key: value` line each, a blank line. */
function headerBytes(m: Msg): number {
  if (m.headers === undefined) return 0;
  let n = 'NATS/1.0\r\n\r\n'.length;
  for (const k of m.headers.keys()) for (const v of m.headers.values(k)) n += k.length + 2 + v.length + 2;
  return n;
}
