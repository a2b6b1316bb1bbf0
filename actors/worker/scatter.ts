import type { Clock } from '../../bus/clock.js';
import { encode } from '../../bus/codec.js';
import { QueryFailedError, refuse, toErrorBody, UnknownQueryError } from '../../protocol/errors.js';
import type { ErrorBody, ReadReply, ScatterReply, ScatterRequest } from '../../protocol/messages.js';
import type { Application } from './application.js';

/** Sessions of one scatter message worked on at once: enough to overlap activations, few enough to leave the mailboxes to others. */
const CONCURRENCY = 32;

export interface ScatterLimits {
  /** The largest one session's answer may be, encoded (bytes); the whole reply may travel by claim-check. */
  readonly maxAnswerBytes: number;
}

/**
 * Answers a scatter: each id's copy read by `read` (the primary's, or a
 * secondary's), the application's query evaluated on a copy of its
 * document, each outcome kept for that id alone. Replies by `within` ms
 * less a margin for the way back, with the ids not reached by then as late.
 */
export async function answerScatter(
  app: Application,
  req: ScatterRequest,
  read: (id: string) => Promise<ReadReply>,
  clock: Clock,
  limits: ScatterLimits,
): Promise<ScatterReply> {
  const query = app.queries.get(req.query);
  if (query === undefined) {
    const unknown = toErrorBody(new UnknownQueryError(app.name, req.query));
    return { ok: true, values: [], errors: req.ids.map((id) => [id, unknown] as const), late: [] };
  }
  const values: [string, number, unknown][] = [];
  const errors: [string, ErrorBody][] = [];
  const done = new Set<string>();
  let next = 0;
  let expired = false;
  const one = async (id: string): Promise<void> => {
    let outcome: [number, unknown] | ErrorBody;
    try {
      const copy = await read(id);
      outcome = copy.ok ? evaluate(app, req, query, id, copy, limits) : copy.error;
    } catch (err) {
      outcome = refuse(err).error;
    }
    if (expired) return;
    done.add(id);
    if (Array.isArray(outcome)) values.push([id, outcome[0], outcome[1]]);
    else errors.push([id, outcome as ErrorBody]);
  };
  const lane = async (): Promise<void> => {
    while (!expired && next < req.ids.length) await one(req.ids[next++]!);
  };
  let timer: ReturnType<Clock['setTimeout']> | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = clock.setTimeout(resolve, answerBy(req.within));
  });
  await Promise.race([Promise.all(Array.from({ length: Math.min(CONCURRENCY, req.ids.length) }, lane)), deadline]);
  expired = true;
  clock.clearTimeout(timer!);
  return { ok: true, values, errors, late: req.ids.filter((id) => !done.has(id)) };
}

/** When the worker answers, of the `within` ms it was given: the rest is the reply's way back. */
export function answerBy(within: number): number {
  return Math.max(1, within - Math.min(250, within / 5));
}

/**
 * The query on a structured clone of the document: a query that mutates
 * what it is given must not change the session. Its answer must encode
 * (msgpack) within the limit, or the answer is QueryFailedError.
 */
function evaluate(
  app: Application,
  req: ScatterRequest,
  query: (document: unknown, args: unknown) => unknown,
  id: string,
  copy: Extract<ReadReply, { ok: true }>,
  limits: ScatterLimits,
): [number, unknown] | ErrorBody {
  const session = `${app.name}/${id}`;
  let value: unknown;
  try {
    value = query(structuredClone(copy.document), structuredClone(req.args));
  } catch (err) {
    return toErrorBody(new QueryFailedError(session, req.query, `it threw: ${messageOf(err)}`));
  }
  if (value instanceof Promise)
    return toErrorBody(
      new QueryFailedError(session, req.query, 'it returned a promise: a query is synchronous and pure'),
    );
  let size: number;
  try {
    size = encode(value, { where: `query ${req.query} answer` }).byteLength;
  } catch (err) {
    return toErrorBody(new QueryFailedError(session, req.query, `its answer cannot be sent: ${messageOf(err)}`));
  }
  if (size > limits.maxAnswerBytes)
    return toErrorBody(
      new QueryFailedError(
        session,
        req.query,
        `its answer is ${size} bytes, over the ${limits.maxAnswerBytes} a session's answer may be`,
      ),
    );
  return [copy.seq, value];
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
