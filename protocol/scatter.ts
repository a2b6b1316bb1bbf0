/**
 * Scatter on the wire: a named query to many sessions of one shard, and its
 * answer. Both sides parse what they receive field by field: the worker a
 * request (InvalidRequestError, answered), the client a reply (a reply that
 * names ids it was not asked for, or names one twice, is refused whole).
 */
import { InvalidRequestError } from './errors.js';
import type { ErrorBody, ScatterReply, ScatterRequest } from './messages.js';
import { checkLabel, isRecord } from './requests.js';

/** Ids in one scatter message: the client splits a shard's ids into messages of at most this many. */
export const MAX_SCATTER_IDS = 1_000;
/** The longest a worker is asked to spend on one scatter message (ms). */
export const MAX_SCATTER_WITHIN = 600_000;
/** Query names: `[A-Za-z][A-Za-z0-9_-]*`, at most this long. */
export const MAX_QUERY_NAME = 64;
const QUERY_NAME = /^[A-Za-z][A-Za-z0-9_-]*$/;

export function isQueryName(name: unknown): name is string {
  return typeof name === 'string' && name.length <= MAX_QUERY_NAME && QUERY_NAME.test(name);
}

export function scatterRequest(
  client: string,
  query: string,
  args: unknown,
  ids: readonly string[],
  within: number,
): ScatterRequest {
  return { kind: 'scatter', client, query, ...(args === undefined ? {} : { args }), ids, within };
}

export function parseScatter(body: unknown): ScatterRequest | InvalidRequestError {
  if (!isRecord(body) || body['kind'] !== 'scatter')
    return new InvalidRequestError("a scatter is a map with kind 'scatter', client, query, ids and within");
  const client = checkLabel(body['client'], 'client');
  if (client instanceof Error) return client;
  const query = body['query'];
  if (!isQueryName(query))
    return new InvalidRequestError(`query must be a name of 1-${MAX_QUERY_NAME} characters [A-Za-z0-9_-]`);
  const within = body['within'];
  if (typeof within !== 'number' || !(within > 0 && within <= MAX_SCATTER_WITHIN))
    return new InvalidRequestError(`within must be a number of ms above 0 and at most ${MAX_SCATTER_WITHIN}`);
  const ids = body['ids'];
  if (!Array.isArray(ids) || ids.length === 0 || ids.length > MAX_SCATTER_IDS)
    return new InvalidRequestError(`ids must be a list of 1-${MAX_SCATTER_IDS} session ids`);
  const seen = new Set<string>();
  for (const id of ids) {
    const checked = checkLabel(id, 'each id');
    if (checked instanceof Error) return checked;
    if (seen.has(checked)) return new InvalidRequestError(`id ${JSON.stringify(checked)} is named twice`);
    seen.add(checked);
  }
  const args = body['args'];
  return { kind: 'scatter', client, query, ...(args === undefined ? {} : { args }), ids: ids as string[], within };
}

function isErrorBody(v: unknown): v is ErrorBody {
  return isRecord(v) && typeof v['name'] === 'string' && typeof v['message'] === 'string';
}

/**
 * A worker's answer to a scatter for `asked`, checked: each entry names an
 * id that was asked, at most once. Ids the reply leaves out count as late.
 */
export function parseScatterReply(body: unknown, asked: ReadonlySet<string>): ScatterReply | InvalidRequestError {
  if (!isRecord(body) || typeof body['ok'] !== 'boolean')
    return new InvalidRequestError('a scatter reply is a map with ok');
  if (body['ok'] === false) {
    if (!isErrorBody(body['error'])) return new InvalidRequestError('a refused scatter reply carries an error');
    return { ok: false, error: { ...body['error'], retryable: body['error']['retryable'] === true } };
  }
  const { values, errors } = body;
  if (!Array.isArray(values) || !Array.isArray(errors))
    return new InvalidRequestError('a scatter reply has lists values and errors');
  const named = new Set<string>();
  const name = (id: unknown): InvalidRequestError | undefined => {
    if (typeof id !== 'string' || !asked.has(id) || named.has(id))
      return new InvalidRequestError(`a scatter reply names ${JSON.stringify(id)}, not asked or named twice`);
    named.add(id);
    return undefined;
  };
  for (const v of values) {
    if (!Array.isArray(v) || v.length !== 3 || !Number.isSafeInteger(v[1]) || (v[1] as number) < 0)
      return new InvalidRequestError('each scatter value is [id, seq, value]');
    const bad = name(v[0]);
    if (bad !== undefined) return bad;
  }
  for (const e of errors) {
    if (!Array.isArray(e) || e.length !== 2 || !isErrorBody(e[1]))
      return new InvalidRequestError('each scatter error is [id, error]');
    const bad = name(e[0]);
    if (bad !== undefined) return bad;
  }
  const late = [...asked].filter((id) => !named.has(id));
  return {
    ok: true,
    values: values as [string, number, unknown][],
    errors: (errors as [string, ErrorBody][]).map(
      ([id, e]) => [id, { ...e, retryable: e.retryable === true }] as const,
    ),
    late,
  };
}
