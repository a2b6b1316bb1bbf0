import { InvalidNameError } from './errors.js';

/**
 * The subject scheme (DESIGN.md section 2). Every variable token is checked
 * or escaped here, so no caller can build a subject that splits on a `.` in
 * an id or matches more than it names through a `*` or `>`.
 *
 * | subject                                    | builder            |
 * |--------------------------------------------|--------------------|
 * | cohort.<cluster>.cmd.<shard>.<app>.<id>.<label>  | cmdSubject   |
 * | cohort.<cluster>.read.<shard>.<app>.<id>.<label> | readSubject  |
 * | cohort.<cluster>.ro.<shard>.<app>.<id>.<label>   | readOnlySubject |
 * | cohort.<cluster>.read.<shard>.<app>.~shard.<label> | scatterSubject (also on ro) |
 * | cohort.<cluster>.rep.<shard>               | replicaReportSubject |
 * | cohort.<cluster>.jrnl.<shard>.<app>.<id>   | journalSubject     |
 * | cohort.<cluster>.jrnl.<shard>.epoch        | epochSubject       |
 * | cohort.<cluster>.evt.<app>.<id>            | eventSubject       |
 * | cohort.<cluster>.hb.<worker>               | heartbeatSubject   |
 * | cohort.<cluster>.probe.<worker>            | probeSubject       |
 * | cohort.<cluster>.meta.<app>                | metaSubject        |
 * | cohort.<cluster>.ctl.<operation>           | controlSubject     |
 * | cohort.<cluster>.svc.<worker>.<endpoint>   | serviceSubject     |
 *
 * Session ids and worker ids are arbitrary strings and are escaped
 * (escapeToken); cluster, app and shard are validated, not escaped, because
 * they are chosen by operators and must stay readable.
 */

export const SUBJECT_ROOT = 'cohort';

/**
 * Longest escaped id or worker token. Keeps every subject well below the
 * server's control-line limit; an id of non-ASCII text gets about 170 characters.
 */
export const MAX_TOKEN_BYTES = 1024;
/** `COHORT_<cluster>_JOURNAL` must stay within the 128-character stream-name limit. */
export const MAX_CLUSTER_LENGTH = 128 - 'COHORT__JOURNAL'.length;
export const MAX_APP_LENGTH = 64;

const ESCAPE = '=';
const RAW = /^[A-Za-z0-9_-]+$/;
const CLUSTER = /^[A-Za-z0-9_-]+$/;
const APP = /^[a-z0-9-]+$/;
const SHARD = /^(?:0|[1-9][0-9]*)$/;

// ---------------------------------------------------------------- escaping

function isRaw(code: number): boolean {
  return (
    (code >= 0x30 && code <= 0x39) || // 0-9
    (code >= 0x41 && code <= 0x5a) || // A-Z
    (code >= 0x61 && code <= 0x7a) || // a-z
    code === 0x5f || // _
    code === 0x2d // -
  );
}

function hex(code: number, digits: number): string {
  return code.toString(16).toUpperCase().padStart(digits, '0');
}

/**
 * Escapes any non-empty string into one subject token of `[A-Za-z0-9_-]`
 * and `=`. Those characters are kept; any other ASCII character becomes `=`
 * and two uppercase hex digits (`.` → `=2E`, `=` → `=3D`); any other UTF-16
 * code unit becomes `=u` and four uppercase hex digits (`é` → `=u00E9`, an
 * emoji → two escapes), so lone surrogates survive. `=` is legal in NATS
 * KV keys too, so the token doubles as a key token.
 */
export function escapeToken(id: string, kind = 'id'): string {
  if (typeof id !== 'string') throw new InvalidNameError(kind, String(id), 'not a string');
  if (id.length === 0) throw new InvalidNameError(kind, id, 'empty');
  let token: string;
  if (RAW.test(id)) {
    token = id;
  } else {
    token = '';
    for (let i = 0; i < id.length; i++) {
      const code = id.charCodeAt(i);
      if (isRaw(code)) token += id[i];
      else if (code < 0x80) token += ESCAPE + hex(code, 2);
      else token += ESCAPE + 'u' + hex(code, 4);
    }
  }
  if (token.length > MAX_TOKEN_BYTES) {
    throw new InvalidNameError(kind, id, `escapes to ${token.length} bytes, more than ${MAX_TOKEN_BYTES}`);
  }
  return token;
}

const UPPER_HEX = /^[0-9A-F]+$/;

/**
 * The inverse of escapeToken. Only its canonical output is accepted
 * (uppercase hex, `=XX` for non-raw ASCII only, `=uXXXX` for non-ASCII only),
 * so each id has exactly one token and each token one id.
 */
export function unescapeToken(token: string, kind = 'id'): string {
  if (typeof token !== 'string') throw new InvalidNameError(kind, String(token), 'not a string');
  if (token.length === 0) throw new InvalidNameError(kind, token, 'empty');
  if (token.length > MAX_TOKEN_BYTES) throw new InvalidNameError(kind, token, `longer than ${MAX_TOKEN_BYTES} bytes`);
  if (RAW.test(token)) return token;
  let id = '';
  let i = 0;
  while (i < token.length) {
    const code = token.charCodeAt(i);
    if (isRaw(code)) {
      id += token[i];
      i += 1;
      continue;
    }
    if (code !== 0x3d)
      throw new InvalidNameError(
        kind,
        token,
        `character ${JSON.stringify(token[i])} at ${i} is not allowed in an escaped token`,
      );
    if (token[i + 1] === 'u') {
      const digits = token.slice(i + 2, i + 6);
      if (digits.length !== 4 || !UPPER_HEX.test(digits)) throw badEscape(kind, token, i);
      const unit = parseInt(digits, 16);
      if (unit < 0x80) throw badEscape(kind, token, i);
      id += String.fromCharCode(unit);
      i += 6;
    } else {
      const digits = token.slice(i + 1, i + 3);
      if (digits.length !== 2 || !UPPER_HEX.test(digits)) throw badEscape(kind, token, i);
      const unit = parseInt(digits, 16);
      if (unit >= 0x80 || isRaw(unit)) throw badEscape(kind, token, i);
      id += String.fromCharCode(unit);
      i += 3;
    }
  }
  return id;
}

function badEscape(kind: string, token: string, at: number): InvalidNameError {
  return new InvalidNameError(kind, token, `non-canonical or malformed escape at ${at}`);
}

// ---------------------------------------------------------------- other tokens

export function validateCluster(cluster: string): void {
  if (typeof cluster !== 'string' || cluster.length > MAX_CLUSTER_LENGTH || !CLUSTER.test(cluster)) {
    throw new InvalidNameError(
      'cluster',
      String(cluster),
      `must be 1-${MAX_CLUSTER_LENGTH} characters of A-Z a-z 0-9 _ -`,
    );
  }
}

export function validateApp(app: string): void {
  if (typeof app !== 'string' || app.length > MAX_APP_LENGTH || !APP.test(app)) {
    throw new InvalidNameError('app', String(app), `must be 1-${MAX_APP_LENGTH} characters of a-z 0-9 -`);
  }
}

export function validateShard(shard: number): void {
  if (!Number.isSafeInteger(shard) || shard < 0) {
    throw new InvalidNameError('shard', String(shard), 'must be a non-negative integer');
  }
}

// ---------------------------------------------------------------- builders

function prefix(cluster: string, kind: string): string {
  validateCluster(cluster);
  return `${SUBJECT_ROOT}.${cluster}.${kind}`;
}

function sessionSubject(kind: SessionSubjectKind, cluster: string, shard: number, app: string, id: string): string {
  validateShard(shard);
  validateApp(app);
  return `${prefix(cluster, kind)}.${shard}.${app}.${escapeToken(id)}`;
}

/**
 * A request's subject ends with the label of the client that sends it, so a
 * server with per-user permissions can hold each client user to its own
 * label (`cmd.*.*.*.<label>`) and a worker refuses a request whose body
 * claims another: reply subjects are not checked by nats-server, subjects are.
 */
function requestSubject(
  kind: RequestKind,
  cluster: string,
  shard: number,
  app: string,
  id: string,
  label: string,
): string {
  return `${sessionSubject(kind, cluster, shard, app, id)}.${escapeToken(label, 'client label')}`;
}

/** Commands to the session's primary (request/reply), sent by the client labelled `label`. */
export function cmdSubject(cluster: string, shard: number, app: string, id: string, label: string): string {
  return requestSubject('cmd', cluster, shard, app, id, label);
}

/** Read-only queries, which secondaries may answer. */
export function readSubject(cluster: string, shard: number, app: string, id: string, label: string): string {
  return requestSubject('read', cluster, shard, app, id, label);
}

/** Read-only routing: whichever copy of the shard answers (secondaries, queue-grouped), saying how fresh it is. */
export function readOnlySubject(cluster: string, shard: number, app: string, id: string, label: string): string {
  return requestSubject('ro', cluster, shard, app, id, label);
}

/**
 * The id token of a request to many sessions of one shard (scatter). `~` is
 * never in an escaped id, so no session's subject can be it, and the subject
 * keeps a session request's shape: the same permissions (`read.*.*.*.<label>`)
 * and the same shard subscriptions carry it.
 */
export const SCATTER_TOKEN = '~shard';

/** A query to many sessions of `shard` in one message: `read` answered by the primary, `ro` by any copy. */
export function scatterSubject(
  kind: 'read' | 'ro',
  cluster: string,
  shard: number,
  app: string,
  label: string,
): string {
  validateShard(shard);
  validateApp(app);
  return `${prefix(cluster, kind)}.${shard}.${app}.${SCATTER_TOKEN}.${escapeToken(label, 'client label')}`;
}

/** The session's journal, captured by the stream journalStreamName(cluster). */
export function journalSubject(cluster: string, shard: number, app: string, id: string): string {
  return sessionSubject('jrnl', cluster, shard, app, id);
}

/**
 * A shard's epoch markers, in the journal stream beside its sessions'
 * entries (one token shorter, so no session subject can be it): where each
 * primary's epoch began, in stream order.
 */
export function epochSubject(cluster: string, shard: number): string {
  validateShard(shard);
  return `${prefix(cluster, 'jrnl')}.${shard}.epoch`;
}

/** Document patches to subscribed clients; no shard, because clients don't know the shard map. */
export function eventSubject(cluster: string, app: string, id: string): string {
  validateApp(app);
  return `${prefix(cluster, 'evt')}.${app}.${escapeToken(id)}`;
}

/**
 * Notices from workers to one client connection (a forced disconnect):
 * `cohort.<cluster>.client.<label>.<connection>`, both escaped like session
 * ids. The label has a token of its own so a server can let a client's user
 * subscribe to its own notices (`client.<label>.>`) and no one else's.
 */
export function clientSubject(cluster: string, label: string, connection: string): string {
  return `${prefix(cluster, 'client')}.${escapeToken(label, 'client label')}.${escapeToken(connection, 'client connection')}`;
}

/** Membership heartbeats. Worker ids are escaped like session ids (they are often host names with dots). */
export function heartbeatSubject(cluster: string, worker: string): string {
  return `${prefix(cluster, 'hb')}.${escapeToken(worker, 'worker')}`;
}

/** What a worker that stepped down sends itself, to learn when it can hear the server again. */
export function probeSubject(cluster: string, worker: string): string {
  return `${prefix(cluster, 'probe')}.${escapeToken(worker, 'worker')}`;
}

/** Operations addressed to the cluster's leader, such as `failover`. */
export function controlSubject(cluster: string, operation: string): string {
  if (!/^[a-z][a-z-]*$/.test(operation))
    throw new InvalidNameError('control operation', operation, 'must be lower-case letters and dashes');
  return `${prefix(cluster, 'ctl')}.${operation}`;
}

/**
 * One worker's NATS micro service endpoint (`status`, `sessions`,
 * `inspect`): JSON requests an operator types with `nats req`, addressed to
 * that worker alone (its id escaped as in heartbeats).
 */
export function serviceSubject(cluster: string, worker: string, endpoint: string): string {
  if (!/^[a-z][a-z-]*$/.test(endpoint))
    throw new InvalidNameError('service endpoint', endpoint, 'must be lower-case letters and dashes');
  return `${prefix(cluster, 'svc')}.${escapeToken(worker, 'worker')}.${endpoint}`;
}

/** Application metadata (JSON). */
export function metaSubject(cluster: string, app: string): string {
  validateApp(app);
  return `${prefix(cluster, 'meta')}.${app}`;
}

// ---------------------------------------------------------------- listener side

/** Everything the primary of `shard` answers: cohort.<cluster>.cmd.<shard>.> */
export function cmdShardFilter(cluster: string, shard: number): string {
  validateShard(shard);
  return `${prefix(cluster, 'cmd')}.${shard}.>`;
}

/** Every shard's requests of one kind: cohort.<cluster>.<kind>.> */
export function requestFilter(cluster: string, kind: RequestKind): string {
  return `${prefix(cluster, kind)}.>`;
}

/** Read-only queries for `shard`: cohort.<cluster>.read.<shard>.> */
export function readShardFilter(cluster: string, shard: number): string {
  validateShard(shard);
  return `${prefix(cluster, 'read')}.${shard}.>`;
}

/** Read-only queries any copy of `shard` may answer: cohort.<cluster>.ro.<shard>.> */
export function readOnlyShardFilter(cluster: string, shard: number): string {
  validateShard(shard);
  return `${prefix(cluster, 'ro')}.${shard}.>`;
}

/** A secondary's report of the journal sequence it has applied for `shard`. */
export function replicaReportSubject(cluster: string, shard: number): string {
  validateShard(shard);
  return `${prefix(cluster, 'rep')}.${shard}`;
}

/** Every secondary's reports: cohort.<cluster>.rep.* */
export function replicaReportFilter(cluster: string): string {
  return `${prefix(cluster, 'rep')}.*`;
}

/** The journal entries of `shard`: cohort.<cluster>.jrnl.<shard>.> */
export function journalShardFilter(cluster: string, shard: number): string {
  validateShard(shard);
  return `${prefix(cluster, 'jrnl')}.${shard}.>`;
}

/** Every shard's epoch markers: cohort.<cluster>.jrnl.*.epoch */
export function epochFilter(cluster: string): string {
  return `${prefix(cluster, 'jrnl')}.*.epoch`;
}

/** COHORT_<cluster>_JOURNAL */
export function journalStreamName(cluster: string): string {
  validateCluster(cluster);
  return `COHORT_${cluster}_JOURNAL`;
}

/** What the journal stream captures: cohort.<cluster>.jrnl.> */
export function journalStreamFilter(cluster: string): string {
  return `${prefix(cluster, 'jrnl')}.>`;
}

/** Events of every session, or of one application's sessions. */
export function eventFilter(cluster: string, app?: string): string {
  if (app === undefined) return `${prefix(cluster, 'evt')}.>`;
  validateApp(app);
  return `${prefix(cluster, 'evt')}.${app}.>`;
}

/** Heartbeats of every worker: cohort.<cluster>.hb.* */
export function heartbeatFilter(cluster: string): string {
  return `${prefix(cluster, 'hb')}.*`;
}

/** Metadata of every application: cohort.<cluster>.meta.* */
export function metaFilter(cluster: string): string {
  return `${prefix(cluster, 'meta')}.*`;
}

// ---------------------------------------------------------------- parsing

export type SessionSubjectKind = 'cmd' | 'read' | 'ro' | 'jrnl';
/** Session subjects a client sends requests on: they end with its label. */
export type RequestKind = 'cmd' | 'read' | 'ro';

export type ParsedSubject =
  | { kind: RequestKind; cluster: string; shard: number; app: string; id: string; label: string }
  | { kind: 'scatter'; via: 'read' | 'ro'; cluster: string; shard: number; app: string; label: string }
  | { kind: 'jrnl'; cluster: string; shard: number; app: string; id: string }
  | { kind: 'epoch'; cluster: string; shard: number }
  | { kind: 'evt'; cluster: string; app: string; id: string }
  | { kind: 'hb'; cluster: string; worker: string }
  | { kind: 'meta'; cluster: string; app: string };

/** The fields of a concrete (wildcard-free) cohort subject, ids unescaped. */
export function parseSubject(subject: string): ParsedSubject {
  if (typeof subject !== 'string') throw new InvalidNameError('subject', String(subject), 'not a string');
  const tokens = subject.split('.');
  const [root, cluster, kind] = tokens;
  if (root !== SUBJECT_ROOT || cluster === undefined || kind === undefined) {
    throw new InvalidNameError('subject', subject, `does not start with ${SUBJECT_ROOT}.<cluster>.<kind>`);
  }
  const epoch = kind === 'jrnl' && tokens.length === 5 && tokens[4] === 'epoch';
  const expected =
    kind === 'cmd' || kind === 'read' || kind === 'ro'
      ? 7
      : kind === 'jrnl'
        ? epoch
          ? 5
          : 6
        : kind === 'evt'
          ? 5
          : kind === 'hb' || kind === 'meta'
            ? 4
            : 0;
  if (expected === 0) throw new InvalidNameError('subject', subject, `unknown kind ${JSON.stringify(kind)}`);
  if (tokens.length !== expected) {
    throw new InvalidNameError('subject', subject, `a ${kind} subject has ${expected} tokens, not ${tokens.length}`);
  }
  try {
    validateCluster(cluster);
    if (epoch) {
      const shardToken = tokens[3]!;
      if (!SHARD.test(shardToken))
        throw new InvalidNameError('shard', shardToken, 'must be a non-negative integer in canonical decimal');
      const shard = Number(shardToken);
      validateShard(shard);
      return { kind: 'epoch', cluster, shard };
    }
    switch (kind) {
      case 'cmd':
      case 'read':
      case 'ro':
      case 'jrnl': {
        const [, , , shardToken, app, id, label] = tokens as [string, string, string, string, string, string, string];
        if (!SHARD.test(shardToken))
          throw new InvalidNameError('shard', shardToken, 'must be a non-negative integer in canonical decimal');
        const shard = Number(shardToken);
        validateShard(shard);
        validateApp(app);
        if (kind === 'jrnl') return { kind: 'jrnl', cluster, shard, app, id: unescapeToken(id) };
        if (id === SCATTER_TOKEN && kind !== 'cmd')
          return { kind: 'scatter', via: kind, cluster, shard, app, label: unescapeToken(label, 'client label') };
        return {
          kind: kind as RequestKind,
          cluster,
          shard,
          app,
          id: unescapeToken(id),
          label: unescapeToken(label, 'client label'),
        };
      }
      case 'evt': {
        const [, , , app, id] = tokens as [string, string, string, string, string];
        validateApp(app);
        return { kind, cluster, app, id: unescapeToken(id) };
      }
      case 'hb':
        return { kind, cluster, worker: unescapeToken(tokens[3]!, 'worker') };
      default: {
        const app = tokens[3]!;
        validateApp(app);
        return { kind: 'meta', cluster, app };
      }
    }
  } catch (error) {
    if (!(error instanceof InvalidNameError)) throw error;
    throw new InvalidNameError('subject', subject, `${error.kind}: ${error.reason}`, { cause: error });
  }
}

/** The subject parseSubject would read back as `parsed`. */
export function buildSubject(parsed: ParsedSubject): string {
  switch (parsed.kind) {
    case 'cmd':
    case 'read':
    case 'ro':
      return requestSubject(parsed.kind, parsed.cluster, parsed.shard, parsed.app, parsed.id, parsed.label);
    case 'scatter':
      return scatterSubject(parsed.via, parsed.cluster, parsed.shard, parsed.app, parsed.label);
    case 'jrnl':
      return sessionSubject(parsed.kind, parsed.cluster, parsed.shard, parsed.app, parsed.id);
    case 'epoch':
      return epochSubject(parsed.cluster, parsed.shard);
    case 'evt':
      return eventSubject(parsed.cluster, parsed.app, parsed.id);
    case 'hb':
      return heartbeatSubject(parsed.cluster, parsed.worker);
    case 'meta':
      return metaSubject(parsed.cluster, parsed.app);
  }
}
