/**
 * The messages clients and workers exchange, as data. Bodies are msgpack
 * (bus/codec.ts); protocol/headers.ts repeats the essentials as text.
 *
 * Every request says its `kind`, so a worker never guesses a request from
 * its shape. `seq` everywhere a user sees it is the session's own version:
 * 1 for its first committed event, then consecutive, so a client can detect
 * a gap. The journal's stream sequence (used for fencing) never leaves the
 * worker.
 */
import type { JournaledEvent, UserEvent } from '../machines/events.js';

export type { EventMeta, JournaledEvent, StampedEvent, UserEvent } from '../machines/events.js';

export interface CommandRequest {
  readonly kind: 'command';
  readonly event: UserEvent;
  readonly cmdId: string;
  readonly client: string;
  /** Compare-and-set: commit only if the session is at this seq. */
  readonly expectSeq?: number;
}

export interface ReadRequest {
  readonly kind: 'read';
  readonly client: string;
  /** Read-your-writes: answer only from a copy at least this fresh. */
  readonly minSeq?: number;
}

/**
 * Cache verification (ZEO): the client's copy is at `since`; the primary
 * answers with what it takes to bring it up to date, or says to drop it.
 * Sent on the session's `read` subject, so only the primary answers.
 */
export interface VerifyRequest {
  readonly kind: 'verify';
  readonly client: string;
  readonly since: number;
  /** The client's invalidation queue size: a longer gap is answered `cleared`. */
  readonly max: number;
}

export type VerifyOutcome = 'up-to-date' | 'replayed' | 'cleared' | 'newer-than-server';

export type VerifyReply =
  | {
      readonly ok: true;
      readonly outcome: VerifyOutcome;
      /** The session's seq on the primary now. */
      readonly seq: number;
      /** `replayed`: the patches from `since` to `seq`, in order, each on top of the one before. */
      readonly patches?: readonly PatchMessage[];
      /** `cleared` and `newer-than-server`: the document and state as of `seq`, so no second read is needed. */
      readonly document?: unknown;
      readonly state?: unknown;
    }
  | { readonly ok: false; readonly error: ErrorBody };

/**
 * One step of a transaction (ECP, ZEO), on the session's `cmd` subject. From
 * `begin` to `commit` or `abort` the client holds the session's exclusive
 * lock: other writers are answered SessionLockedError (retryable). Events are
 * applied to a working copy as they arrive (so a refusal shows at once) and
 * committed as one journal message. Every step may be retried with the same
 * body: `begin` of an open transaction, a `send` of a step already taken, a
 * `commit` already journaled (its txId is the journal message id) all answer
 * as the first time did.
 */
export type TxRequest =
  | {
      readonly kind: 'tx';
      readonly op: 'begin';
      readonly txId: string;
      readonly client: string;
      readonly timeout: number;
    }
  | {
      readonly kind: 'tx';
      readonly op: 'send';
      readonly txId: string;
      readonly client: string;
      readonly step: number;
      readonly event: UserEvent;
      /** The shard's epoch its begin was answered under: a newer primary knows it was lost with a failover. */
      readonly epoch?: number;
      /** Another session of the same shard the step is for (absent: the session the transaction began on). */
      readonly on?: SessionRef;
    }
  | {
      readonly kind: 'tx';
      readonly op: 'read';
      readonly txId: string;
      readonly client: string;
      readonly epoch?: number;
      readonly on?: SessionRef;
    }
  | {
      readonly kind: 'tx';
      readonly op: 'commit';
      readonly txId: string;
      readonly client: string;
      readonly steps: number;
      readonly epoch?: number;
    }
  | { readonly kind: 'tx'; readonly op: 'abort'; readonly txId: string; readonly client: string };

/**
 * `begin`: the committed seq the transaction works on. `send`: the working
 * copy's seq after the step. `commit`: the seq of the last event committed
 * (the session's new version), with `by` and `epoch` as for a command.
 * `abort`: the committed seq.
 */
export type TxReply =
  | {
      readonly ok: true;
      readonly seq: number;
      readonly duplicate?: boolean;
      readonly by?: string;
      readonly epoch?: number;
    }
  | { readonly ok: false; readonly error: ErrorBody };

export interface ErrorBody {
  readonly name: string;
  readonly message: string;
  readonly retryable: boolean;
  readonly details?: Readonly<Record<string, unknown>>;
}

export type CommandReply =
  | {
      readonly ok: true;
      readonly seq: number;
      readonly duplicate?: boolean;
      /** The member that acknowledged, and the shard's epoch it wrote under (0 with static sharding). */
      readonly by?: string;
      readonly epoch?: number;
    }
  | { readonly ok: false; readonly error: ErrorBody };

export type ReadReply =
  | {
      readonly ok: true;
      readonly seq: number;
      readonly state: unknown;
      readonly document: unknown;
      readonly stale?: boolean;
    }
  | { readonly ok: false; readonly error: ErrorBody };

/** One journal message: usually one event; a background batch or a transaction holds several. */
export interface JournalRecord {
  readonly v: 1;
  readonly events: readonly JournaledEvent[];
  /** A multi-session transaction's record (on its coordinator's subject): the other sessions' parts. */
  readonly tx?: TxParts;
}

/** A session of an application, named in a transaction step or a journal entry. */
export interface SessionRef {
  readonly app: string;
  readonly id: string;
}

/** The other sessions' events of a multi-session transaction, in the record on its coordinator's subject. */
export interface TxParts {
  readonly id: string;
  readonly parts: readonly TxPart[];
}

export interface TxPart extends SessionRef {
  /** The stream sequence of the intent on this session's own subject: where its events take effect. */
  readonly intent: number;
  readonly events: readonly JournaledEvent[];
}

/**
 * A multi-session transaction's intent on a session's own subject, fenced
 * on that subject (see actors/worker/txJournal.ts): this session's events
 * are in transaction `tx`'s record on `at`'s subject, if that record is
 * the next entry there; otherwise the transaction did not commit.
 */
export interface TxIntent {
  readonly v: 1;
  readonly intent: { readonly tx: string; readonly at: SessionRef };
}

/** Written on a coordinator's subject by whoever decides that transaction `abort` never commits. */
export interface TxAbort {
  readonly v: 1;
  readonly abort: string;
}

/** RFC 6902 operations, as produced by the diff of two documents. */
export interface PatchOperation {
  readonly op: 'add' | 'remove' | 'replace' | 'move' | 'copy' | 'test';
  readonly path: string;
  readonly value?: unknown;
  readonly from?: string;
}

export interface PatchMessage {
  readonly seq: number;
  /** The seq this patch applies on top of: a client whose copy is elsewhere has missed one. */
  readonly prev: number;
  readonly ops: readonly PatchOperation[];
  /** Label of the client whose command caused it (`timer` for delayed events). */
  readonly setter: string;
}

/**
 * Interest in a session's patches, on its `read` subject (answered only by
 * its proved primary): the worker publishes the session's patches while
 * some client's lease on it runs. Renewed by sending it again.
 */
export interface WatchRequest {
  readonly kind: 'watch';
  readonly client: string;
  /** How long (ms) the interest lasts unless renewed; the worker keeps it within its bounds. */
  readonly lease?: number;
}

/** The client's interest ends now (its lease would end it anyway). */
export interface UnwatchRequest {
  readonly kind: 'unwatch';
  readonly client: string;
}

/**
 * `seq`: the session's seq when the interest was recorded; every later
 * patch is published. A subscriber behind it catches up (verification).
 * `lease`: the lease granted (ms). An unwatch is answered with both 0.
 */
export type WatchReply =
  | { readonly ok: true; readonly seq: number; readonly lease: number }
  | { readonly ok: false; readonly error: ErrorBody };

/**
 * A named query to many sessions of one shard, on its scatter subject
 * (subjects.ts scatterSubject): evaluated on each session's document by
 * the application's pure query function.
 */
export interface ScatterRequest {
  readonly kind: 'scatter';
  readonly client: string;
  readonly query: string;
  readonly args?: unknown;
  /** Sessions of this shard, each at most once. */
  readonly ids: readonly string[];
  /** How long (ms) the worker may take: it answers by then with what it has, the rest listed as `late`. */
  readonly within: number;
}

/**
 * Each id of the request in exactly one list: `values` its query's answer
 * (with the session's seq), `errors` why it has none, `late` not reached
 * within the request's time.
 */
export type ScatterReply =
  | {
      readonly ok: true;
      readonly values: readonly (readonly [id: string, seq: number, value: unknown])[];
      readonly errors: readonly (readonly [id: string, error: ErrorBody])[];
      readonly late: readonly string[];
    }
  | { readonly ok: false; readonly error: ErrorBody };

/** Any request a worker takes, told apart by its `kind`. */
export type Request = CommandRequest | ReadRequest | VerifyRequest | TxRequest | WatchRequest | UnwatchRequest;
