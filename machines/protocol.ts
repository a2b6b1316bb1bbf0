/**
 * The wire protocol between clients and workers, as data. Bodies are
 * msgpack (bus/codec.ts); the headers below repeat the essentials as text so
 * `nats sub 'cohort.>'` explains what it shows.
 *
 * `seq` everywhere a user sees it is the session's own version: 1 for its
 * first committed event, then consecutive, so a client can detect a gap. The
 * journal's stream sequence (used for fencing) never leaves the worker.
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

export type MessageType = 'command' | 'read' | 'reply' | 'event' | 'patch' | 'meta';

/** Time and identity the runtime stamps on every event, so machines stay deterministic. */
export interface EventMeta {
  /** Milliseconds since the epoch, from the owner's clock when it accepted the event. */
  readonly time: number;
  /** The command id: unique per command, reused by every retry of it. */
  readonly cmdId: string;
  /** Id of the client that sent it; `timer` for delayed events. */
  readonly client: string;
  /** For a delayed event: the id of the timer that fired (it is disarmed by this event). */
  readonly timer?: string;
}

export interface UserEvent {
  readonly type: string;
  readonly [key: string]: unknown;
}

/** The event a machine receives: the user's event plus `meta`. */
export type StampedEvent = UserEvent & { readonly meta: EventMeta };

export interface CommandRequest {
  readonly event: UserEvent;
  readonly cmdId: string;
  readonly client: string;
  /** Compare-and-set: commit only if the session is at this seq. */
  readonly expectSeq?: number;
}

export interface ReadRequest {
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
  | { readonly kind: 'tx'; readonly op: 'begin'; readonly txId: string; readonly client: string; readonly timeout: number }
  | { readonly kind: 'tx'; readonly op: 'send'; readonly txId: string; readonly client: string; readonly step: number; readonly event: UserEvent }
  | { readonly kind: 'tx'; readonly op: 'read'; readonly txId: string; readonly client: string }
  | { readonly kind: 'tx'; readonly op: 'commit'; readonly txId: string; readonly client: string; readonly steps: number }
  | { readonly kind: 'tx'; readonly op: 'abort'; readonly txId: string; readonly client: string };

/**
 * `begin`: the committed seq the transaction works on. `send`: the working
 * copy's seq after the step. `commit`: the seq of the last event committed
 * (the session's new version), with `by` and `epoch` as for a command.
 * `abort`: the committed seq.
 */
export type TxReply =
  | { readonly ok: true; readonly seq: number; readonly duplicate?: boolean; readonly by?: string; readonly epoch?: number }
  | { readonly ok: false; readonly error: ErrorBody };

/** What a worker tells a client on `cohort.<cluster>.client.<client>`: it was disconnected by force (ECP ChangeToNotConnected). */
export interface ClientNotice {
  readonly type: 'disconnected';
  readonly by: string;
  readonly reason: string;
}

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
  | { readonly ok: true; readonly seq: number; readonly state: unknown; readonly document: unknown; readonly stale?: boolean }
  | { readonly ok: false; readonly error: ErrorBody };

/** One committed event as the journal keeps it. */
export interface JournaledEvent {
  readonly event: StampedEvent;
  /** The session seq this event produced. */
  readonly seq: number;
}

/** One journal message: usually one event; a background batch or a transaction holds several. */
export interface JournalRecord {
  readonly v: 1;
  readonly events: readonly JournaledEvent[];
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
