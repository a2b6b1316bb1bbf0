/**
 * What an existing stream must be for cohort to keep its promises in it.
 * A journal, a bucket or a blob store found already there (made by an
 * operator, an older version, someone else) is checked before use, on both
 * buses by the same rules: a setting that would lose entries, values or
 * de-duplication, or keep fewer copies than asked, refuses to open with a
 * StreamConfigMismatchError naming the setting and how to fix it. Settings
 * that only refuse writes loudly when a limit is hit (a discard-new quota, a
 * maximum message size, a description) are left to the operator.
 */
import { StreamConfigMismatchError } from './errors.js';

/**
 * A stream's settings as the bus can see them. The memory bus knows only
 * some (its streams have no storage, retention or replicas): what is
 * absent is not checked.
 */
export interface StreamFacts {
  readonly name: string;
  readonly subjects: readonly string[];
  /** Milliseconds; 0 means the server's default (2 minutes). */
  readonly duplicateWindow?: number;
  readonly retention?: string;
  readonly storage?: string;
  readonly replicas?: number;
  /** Milliseconds; 0: entries never expire. */
  readonly maxAge?: number;
  /** 0 or less: no limit. */
  readonly maxMsgsPerSubject?: number;
  readonly maxMsgs?: number;
  readonly maxBytes?: number;
  readonly discard?: string;
  readonly allowRollup?: boolean;
}

export interface StreamNeeds {
  /** `exactly`: the stream captures these and nothing else (a journal); `including`: at least these (a bucket). */
  readonly subjects: { readonly exactly: readonly string[] } | { readonly including: readonly string[] };
  /** Retried appends are recognised for at least this long (ms). */
  readonly duplicateWindow?: number;
  readonly replicas: number;
  readonly storage: 'file' | 'memory';
  /** Values kept per subject: at least this many (a bucket's history); undefined: every one. */
  readonly perSubject?: number;
  /** Entries must never expire (undefined: any expiry will do, as for reply blobs). */
  readonly keepForever: boolean;
  /** A `Nats-Rollup` header must not be able to erase a subject (a journal). */
  readonly noRollup?: boolean;
}

/** nats-server's duplicate window when a stream is created with none. */
const SERVER_DEFAULT_WINDOW = 120_000;

function duration(ms: number): string {
  if (ms <= 0) return 'none';
  return ms % 1_000 === 0 ? `${ms / 1_000}s` : `${ms}ms`;
}

function limit(n: number | undefined): string {
  return n === undefined || n <= 0 ? 'unlimited' : String(n);
}

const edit = (name: string, flags: string): string => `nats stream edit ${name} ${flags}`;

/** A setting that no edit can change: the stream has to be made again. */
const remake = (name: string): string =>
  `it cannot be edited: back the stream up if its data matter (nats stream backup ${name} DIR), ` +
  `delete it (nats stream rm ${name}) and start cohort, which makes it as it needs`;

/** The first setting of `facts` that breaks `needs`, or undefined when the stream will do. */
export function checkStream(facts: StreamFacts, needs: StreamNeeds): StreamConfigMismatchError | undefined {
  const name = facts.name;
  const refuse = (setting: string, expected: string, actual: string, reason: string, fix: string) =>
    new StreamConfigMismatchError({ stream: name, setting, expected, actual, reason, fix });
  const have = [...facts.subjects].sort();
  if ('exactly' in needs.subjects) {
    const want = [...needs.subjects.exactly].sort();
    if (have.join('\n') !== want.join('\n'))
      return refuse(
        'subjects',
        JSON.stringify(want),
        JSON.stringify(have),
        'the journal must capture its own subjects and nothing else (a wider one would store and acknowledge requests)',
        edit(name, want.map((s) => `--subjects '${s}'`).join(' ')),
      );
  } else {
    const missing = needs.subjects.including.filter((s) => !have.includes(s));
    if (missing.length > 0)
      return refuse(
        'subjects',
        `to include ${JSON.stringify(missing)}`,
        JSON.stringify(have),
        'writes to the bucket would not be stored',
        remake(name),
      );
  }
  if (facts.retention !== undefined && facts.retention !== 'limits')
    return refuse(
      'retention',
      'limits',
      facts.retention,
      'entries would be removed once consumed, not kept',
      remake(name),
    );
  if (needs.keepForever && facts.maxAge !== undefined && facts.maxAge > 0)
    return refuse(
      'max_age',
      'none (0)',
      duration(facts.maxAge),
      'entries and values older than that would be dropped, acknowledged writes with them',
      edit(name, '--max-age=-1'),
    );
  const perSubject = facts.maxMsgsPerSubject;
  if (perSubject !== undefined && perSubject > 0) {
    if (needs.perSubject === undefined)
      return refuse(
        'max_msgs_per_subject',
        'unlimited',
        String(perSubject),
        "older entries of a session's subject would be dropped before cohort compacts them",
        edit(name, '--max-msgs-per-subject=-1'),
      );
    if (perSubject < needs.perSubject)
      return refuse(
        'max_msgs_per_subject',
        `at least ${needs.perSubject} (history)`,
        String(perSubject),
        'the bucket keeps fewer values per key than asked',
        edit(name, `--max-msgs-per-subject=${needs.perSubject}`),
      );
  }
  const capped = (facts.maxMsgs ?? 0) > 0 || (facts.maxBytes ?? 0) > 0;
  if (capped && facts.discard === 'old')
    return refuse(
      'discard',
      'new (or no max_msgs / max_bytes)',
      `old with max_msgs ${limit(facts.maxMsgs)} and max_bytes ${limit(facts.maxBytes)}`,
      'at the limit the oldest entries would be dropped silently',
      `${edit(name, '--max-msgs=-1 --max-bytes=-1')} (or --discard new, which refuses writes at the limit instead)`,
    );
  if (needs.duplicateWindow !== undefined && facts.duplicateWindow !== undefined) {
    const window = facts.duplicateWindow > 0 ? facts.duplicateWindow : SERVER_DEFAULT_WINDOW;
    if (window < needs.duplicateWindow)
      return refuse(
        'duplicate_window',
        `at least ${duration(needs.duplicateWindow)}`,
        duration(window),
        'a command retried after that would be journaled twice',
        edit(name, `--dupe-window=${duration(needs.duplicateWindow)}`),
      );
  }
  if (facts.storage !== undefined && facts.storage !== needs.storage)
    return refuse(
      'storage',
      needs.storage,
      facts.storage,
      needs.storage === 'file' ? 'what is kept in memory is lost when the server restarts' : 'not what was asked',
      remake(name),
    );
  if (facts.replicas !== undefined && facts.replicas < needs.replicas)
    return refuse(
      'num_replicas',
      `at least ${needs.replicas} (storageReplicas)`,
      String(facts.replicas),
      'the stream keeps fewer copies than configured, so losing a server could lose it',
      edit(name, `--replicas=${needs.replicas}`),
    );
  if (needs.noRollup === true && facts.allowRollup === true)
    return refuse(
      'allow_rollup_hdrs',
      'false',
      'true',
      "one message with a Nats-Rollup header could erase a session's journal",
      edit(name, '--no-allow-rollup'),
    );
  return undefined;
}

/** A blob bucket's expiry as asked: whole milliseconds, 0 or unset for none. */
export function checkMaxAge(maxAge: number | undefined): number {
  if (maxAge === undefined) return 0;
  if (!Number.isSafeInteger(maxAge) || maxAge < 0)
    throw new RangeError(`maxAge must be a whole number of milliseconds (0: never), got ${maxAge}`);
  return maxAge;
}
