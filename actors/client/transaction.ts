import type { TimerHandle } from '../../bus/clock.js';
import { encode } from '../../bus/codec.js';
import type { Environment } from '../../bus/environment.js';
import type { Failure } from '../../machines/connection.js';
import {
  CrossShardTransactionError,
  NetworkError,
  TransactionRolledBackError,
  TransactionTimeoutError,
  fromErrorBody,
} from '../../protocol/errors.js';
import type { ReadReply, SessionRef, TxReply, UserEvent } from '../../protocol/messages.js';
import { txRequest, type TxStep } from '../../protocol/requests.js';
import { shardOf } from '../../protocol/shard.js';
import type { ReadResult, Transaction, TransactionOptions, TransactionResult } from './client.js';
import type { Connection } from './connection.js';
import { atMost } from './deadline.js';

export interface TransactionsOptions {
  readonly connection: Connection;
  readonly environment: Environment;
  /** To name the other shard when a transaction reaches for another session. */
  readonly shardCount: number;
  /** A transaction's limit unless it gives its own. */
  readonly transactionTimeout: number;
  /** Each step's own limit too (the connection's call deadline), inside the transaction's. */
  readonly callTimeout: number;
}

/** The session a transaction runs on, and where its steps go. */
export interface TransactionTarget {
  readonly app: string;
  readonly id: string;
  readonly shard: number;
  /** The session's command subject: every step goes to its primary. */
  readonly cmd: string;
}

/** Best effort: the lock's lease frees it anyway. */
const ABORT_TIMEOUT = 2_000;

/**
 * `session.transaction(fn)` on the client: begin takes the session's lock,
 * each step goes to the primary's working copy (`tx.session(app, id)`'s
 * steps too, naming that session of the same shard), and commit writes
 * them as one journal message. A throw, a rollback by the server, a disabled
 * connection or the timeout end it with an abort instead.
 */
export class Transactions {
  readonly #connection: Connection;
  readonly #environment: Environment;
  readonly #shardCount: number;
  readonly #transactionTimeout: number;
  readonly #callTimeout: number;

  constructor(options: TransactionsOptions) {
    this.#connection = options.connection;
    this.#environment = options.environment;
    this.#shardCount = options.shardCount;
    this.#transactionTimeout = options.transactionTimeout;
    this.#callTimeout = options.callTimeout;
  }

  async run<T>(
    target: TransactionTarget,
    fn: (tx: Transaction) => Promise<T>,
    options: TransactionOptions,
  ): Promise<TransactionResult<T>> {
    const { app, id, shard, cmd } = target;
    const clock = this.#environment.clock;
    const session = `${app}/${id}`;
    const txId = this.#environment.newId();
    const timeout = options.timeout ?? this.#transactionTimeout;
    if (!(Number.isFinite(timeout) && timeout > 0))
      throw new RangeError(`transaction timeout must be a positive number of ms, got ${timeout}`);
    const client = this.#connection.clientId;
    const started = clock.now();
    let rollback: Error | undefined;
    let steps = 0;
    /** Events sent to the transaction's own session (not to others of its shard). */
    let homeEvents = 0;
    /** The shard's epoch the begin was answered under (absent: static sharding, or an older worker). */
    let began: { epoch?: number } = {};
    const onDisabled = (_f: Failure, reason: string): void => {
      rollback ??= new NetworkError(`transaction ${txId} on ${session}`, {
        session,
        triedMs: clock.now() - started,
        ambiguous: false,
        reason: `rolled back: the connection was disabled (${reason})`,
      });
    };
    this.#connection.on('disabled', onDisabled);
    const step = async (op: TxStep, mutates = false): Promise<Extract<TxReply, { ok: true }>> => {
      if (rollback !== undefined) throw rollback;
      const now = clock.now();
      // The earlier of the transaction's deadline and the step's own: a TimeoutError names the one that ran out.
      const own = now + this.#callTimeout < started + timeout;
      const body = encode(txRequest(txId, client, op.op === 'begin' ? op : { ...op, ...began }));
      const reply = (await this.#connection.request({
        subject: cmd,
        body,
        what: own ? `transaction ${op.op} on ${session}` : `transaction ${txId} (${op.op}) on ${session}`,
        session,
        mutates,
        ...(own ? { timeout: this.#callTimeout } : { timeout, since: started }),
      })) as TxReply;
      if (reply.ok) return reply;
      const err = fromErrorBody(reply.error);
      if (err instanceof TransactionRolledBackError) {
        // A commit whose own session sent nothing is remembered by no journal entry of that session: answered
        // "failover" or "unknown" (a retry after the primary moved), it may have committed on the others.
        const untold =
          op.op === 'commit' && homeEvents === 0 && (err.reason === 'failover' || err.reason === 'unknown');
        rollback = new NetworkError(
          `transaction ${txId} on ${session}`,
          {
            session,
            triedMs: clock.now() - started,
            ambiguous: untold,
            reason: untold
              ? `its commit was answered ${err.reason} after it went out, and its own session sent nothing to remember it by`
              : `rolled back by the server (${err.reason})`,
          },
          { cause: err },
        );
        throw rollback;
      }
      throw err;
    };
    /** Steps of every session are numbered in one sequence: the server takes them in that order. */
    const send = async (event: UserEvent, on?: SessionRef): Promise<{ seq: number }> => {
      const r = await step({ op: 'send', step: steps, event, ...(on === undefined ? {} : { on }) });
      steps++;
      if (on === undefined) homeEvents++;
      return { seq: r.seq };
    };
    const read = async (on?: SessionRef): Promise<ReadResult> => {
      const r = (await step({ op: 'read', ...(on === undefined ? {} : { on }) })) as unknown as ReadReply;
      if (!r.ok) throw fromErrorBody(r.error);
      return { seq: r.seq, state: r.state, document: r.document, stale: false, source: 'primary' };
    };
    const tx: Transaction = {
      id: txId,
      send: (event) => send(event),
      read: () => read(),
      session: (otherApp, otherId) => {
        const otherShard = shardOf(otherApp, otherId, this.#shardCount);
        if (otherShard !== shard)
          throw new CrossShardTransactionError(session, shard, `${otherApp}/${otherId}`, otherShard);
        // Its steps go where this transaction's do (the home's primary), naming the session.
        const on = otherApp === app && otherId === id ? undefined : { app: otherApp, id: otherId };
        return { app: otherApp, id: otherId, send: (event) => send(event, on), read: () => read(on) };
      },
      get rollbackOnly() {
        return rollback !== undefined;
      },
    };
    let timer: TimerHandle | undefined;
    try {
      const opened = await step({ op: 'begin', timeout });
      if (Number.isSafeInteger(opened.epoch) && opened.epoch! > 0) began = { epoch: opened.epoch! };
      const expired = new Promise<never>((_, reject) => {
        timer = clock.setTimeout(
          () => reject(new TransactionTimeoutError(txId, timeout)),
          Math.max(0, timeout - (clock.now() - started)),
        );
      });
      let value: T;
      // Aborts are best effort (the lock's lease frees it anyway): none holds the caller past the deadline.
      const abort = (): Promise<void> =>
        atMost(this.#abort(cmd, txId, client, session), clock, started + timeout - clock.now());
      try {
        value = await Promise.race([fn(tx), expired]);
      } catch (err) {
        await abort();
        if (err instanceof TransactionTimeoutError)
          this.#connection.disconnect(`transaction ${txId} ran past its ${timeout} ms timeout`);
        throw err;
      }
      if (rollback !== undefined) {
        await abort();
        throw rollback;
      }
      const r = await step({ op: 'commit', steps }, true);
      return { value, seq: r.seq, duplicate: r.duplicate === true, by: r.by ?? '', epoch: r.epoch ?? 0, events: steps };
    } finally {
      if (timer !== undefined) clock.clearTimeout(timer);
      this.#connection.off('disabled', onDisabled);
    }
  }

  async #abort(cmd: string, txId: string, client: string, session: string): Promise<void> {
    const body = encode(txRequest(txId, client, { op: 'abort' }));
    await this.#connection
      .request({
        subject: cmd,
        body,
        what: `transaction abort on ${session}`,
        session,
        mutates: false,
        timeout: ABORT_TIMEOUT,
      })
      .catch(() => undefined);
  }
}
