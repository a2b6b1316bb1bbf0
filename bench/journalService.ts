import { JetStreamApiCodes, JetStreamApiError, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type Msg } from '@nats-io/transport-node';

/**
 * The fair floor for a send: what a user would write by hand instead of
 * cohort, in plain nats.js. A service that, for each request on
 * `bench.jsvc.req.<session>`, appends the request's body to its own stream
 * under `bench.jsvc.log.<session>` with the request's command id as
 * Nats-Msg-Id (a retry is a duplicate, not a second entry) and the
 * session's expected last subject sequence (one writer per session), waits
 * for the ack and replies. To know the sequence it expects, it appends one
 * request at a time per session: each session's appends are a chain.
 */

export const JSVC_STREAM = 'BENCH_JSVC';
export const JSVC_REQUEST_PREFIX = 'bench.jsvc.req.';
const LOG_PREFIX = 'bench.jsvc.log.';
/** The request header carrying the command id (the journal's Nats-Msg-Id). */
export const JSVC_COMMAND_HEADER = 'Bench-Cmd';

export interface JournalServiceStats {
  readonly requests: number;
  readonly appended: number;
  readonly duplicates: number;
  /** Appends refused for a wrong last subject sequence (none expected: the service is the only writer). */
  readonly wrongSequence: number;
  readonly failed: number;
}

export interface JournalService {
  stats(): JournalServiceStats;
  close(): Promise<void>;
}

/** One session as the service knows it: the last sequence it expects, and the tail of its chain of appends. */
interface SessionLog {
  last: number | undefined;
  tail: Promise<void>;
}

const encoder = new TextEncoder();

export async function startJournalService(url: string): Promise<JournalService> {
  const nc = await connect({ servers: url, noAsyncTraces: true });
  const jsm = await jetstreamManager(nc);
  // File storage and the default duplicate window (2 min), as cohort's journal.
  await jsm.streams.add({ name: JSVC_STREAM, subjects: [`${LOG_PREFIX}>`], storage: 'file' });
  const js = jetstream(nc);
  const stats = { requests: 0, appended: 0, duplicates: 0, wrongSequence: 0, failed: 0 };
  const sessions = new Map<string, SessionLog>();

  const lastSequence = async (subject: string): Promise<number> =>
    (await jsm.streams.getMessage(JSVC_STREAM, { last_by_subj: subject }))?.seq ?? 0;

  const append = async (log: SessionLog, session: string, m: Msg): Promise<void> => {
    const command = m.headers?.get(JSVC_COMMAND_HEADER) ?? '';
    if (command === '') {
      stats.failed++;
      m.respond(encoder.encode(JSON.stringify({ ok: false, error: `no ${JSVC_COMMAND_HEADER} header` })));
      return;
    }
    const subject = LOG_PREFIX + session;
    try {
      log.last ??= await lastSequence(subject);
      const ack = await js.publish(subject, m.data, { msgID: command, expect: { lastSubjectSequence: log.last } });
      if (ack.duplicate) stats.duplicates++;
      else {
        stats.appended++;
        log.last = ack.seq;
      }
      m.respond(encoder.encode(JSON.stringify({ ok: true, seq: ack.seq, duplicate: ack.duplicate })));
    } catch (err) {
      stats.failed++;
      if (
        err instanceof JetStreamApiError &&
        (err.code === JetStreamApiCodes.StreamWrongLastSequence ||
          err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
      ) {
        stats.wrongSequence++;
        // Someone else wrote: learn where the subject is now, and fail this request (its client retries).
        log.last = await lastSequence(subject).catch(() => undefined);
      }
      m.respond(encoder.encode(JSON.stringify({ ok: false, error: err instanceof Error ? err.message : String(err) })));
    }
  };

  nc.subscribe(`${JSVC_REQUEST_PREFIX}*`, {
    callback: (err, m) => {
      if (err !== null) return;
      stats.requests++;
      const session = m.subject.slice(JSVC_REQUEST_PREFIX.length);
      let log = sessions.get(session);
      if (log === undefined) {
        log = { last: undefined, tail: Promise.resolve() };
        sessions.set(session, log);
      }
      const at = log;
      // append answers every failure itself; only a reply that cannot go out (connection closing) lands here.
      at.tail = at.tail
        .then(() => append(at, session, m))
        .catch(() => {
          stats.failed++;
        });
    },
  });
  await nc.flush();
  return {
    stats: () => ({ ...stats }),
    close: async () => {
      await Promise.all([...sessions.values()].map((s) => s.tail));
      await nc.close();
    },
  };
}
