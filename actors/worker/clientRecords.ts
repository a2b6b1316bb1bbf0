import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../../bus/clock.js';
import { ClientDisconnectedError, type RollbackReason } from '../../protocol/errors.js';
import { labelOf } from '../../protocol/clientId.js';

/** Defaults of DESIGN.md section 6. */
export const CLIENT_DEFAULTS = {
  troubledInterval: 10_000,
  recoveryWait: 60_000,
  maxTransactionTimeout: 60_000,
} as const;

export type ClientState = 'active' | 'non-responsive';

export interface ClientRecordInfo {
  readonly id: string;
  /** The part of the id before its last `#`: what the client was named. */
  readonly label: string;
  readonly state: ClientState;
  /** Clock time of its last request to this worker. */
  readonly lastSeen: number;
  /** Transactions it holds open on this worker's sessions. */
  readonly transactions: number;
}

export interface ClientRecordsOptions {
  readonly troubledInterval: number;
  readonly recoveryWait: number;
  readonly clock: Clock;
  readonly log: Logger;
  /** Its open transactions on this worker now. */
  transactionsOf(client: string): number;
  /** Rolls back and releases its open transactions; resolves with how many there were. */
  rollBack(client: string, reason: RollbackReason): Promise<number>;
}

interface ClientRecord {
  readonly id: string;
  readonly label: string;
  state: ClientState;
  lastSeen: number;
}

/** Positive numbers only; the option's name is in the error. */
export function clientOptions(
  options: { troubledInterval?: number; recoveryWait?: number; maxTransactionTimeout?: number } = {},
): {
  troubledInterval: number;
  recoveryWait: number;
  maxTransactionTimeout: number;
} {
  const out = {
    troubledInterval: options.troubledInterval ?? CLIENT_DEFAULTS.troubledInterval,
    recoveryWait: options.recoveryWait ?? CLIENT_DEFAULTS.recoveryWait,
    maxTransactionTimeout: options.maxTransactionTimeout ?? CLIENT_DEFAULTS.maxTransactionTimeout,
  };
  for (const name of ['troubledInterval', 'recoveryWait', 'maxTransactionTimeout'] as const) {
    const v = out[name];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
      throw new RangeError(`clients.${name} must be a positive number of ms (got ${String(v)})`);
  }
  return out;
}

/**
 * The worker's record of each client it hears from (ECP data server): a
 * client silent for troubledInterval is non-responsive; back within
 * recoveryWait it keeps its locks and transactions; silent longer, they are
 * rolled back. A client disconnected by force is refused for recoveryWait.
 */
export class ClientRecords {
  readonly #troubledInterval: number;
  readonly #recoveryWait: number;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #transactionsOf: (client: string) => number;
  readonly #rollBack: (client: string, reason: RollbackReason) => Promise<number>;
  readonly #records = new Map<string, ClientRecord>();
  /** Client id -> until when it is refused, and why. */
  readonly #refused = new Map<string, { until: number; reason: string }>();
  #sweep: TimerHandle | undefined;
  #stopped = false;

  constructor({ troubledInterval, recoveryWait, clock, log, transactionsOf, rollBack }: ClientRecordsOptions) {
    this.#troubledInterval = troubledInterval;
    this.#recoveryWait = recoveryWait;
    this.#clock = clock;
    this.#log = log;
    this.#transactionsOf = transactionsOf;
    this.#rollBack = rollBack;
  }

  /** Starts the sweep on the clock: fine enough to notice silence within a quarter of the shorter interval. */
  start(): void {
    if (this.#stopped || this.#sweep !== undefined) return;
    const every = Math.max(5, Math.min(this.#troubledInterval, this.#recoveryWait) / 4);
    this.#sweep = this.#clock.setTimeout(() => {
      this.#sweep = undefined;
      this.sweep();
      this.start();
    }, every);
  }

  stop(): void {
    this.#stopped = true;
    if (this.#sweep !== undefined) this.#clock.clearTimeout(this.#sweep);
    this.#sweep = undefined;
  }

  /**
   * A request from `client` arrived: its traffic counts, unless it was
   * disconnected by force (then the error to answer with). Synchronous, so
   * a rollback it triggers is queued before the request itself.
   */
  seen(client: string): ClientDisconnectedError | undefined {
    const refused = this.refusal(client);
    if (refused !== undefined) return refused;
    const now = this.#clock.now();
    const record = this.#records.get(client);
    if (record === undefined) {
      this.#records.set(client, { id: client, label: labelOf(client), state: 'active', lastSeen: now });
      return undefined;
    }
    // Back after the sweep last looked, but too late: what it held goes first.
    if (now - record.lastSeen >= this.#troubledInterval + this.#recoveryWait) this.#expire(record);
    else if (record.state === 'non-responsive') {
      this.#log.info(
        {
          client: record.label,
          clientId: record.id,
          silentMs: now - record.lastSeen,
          transactions: this.#transactionsOf(client),
        },
        'client restored',
      );
    }
    record.state = 'active';
    record.lastSeen = now;
    this.#records.set(client, record);
    return undefined;
  }

  /** The error to answer `client` with while it is refused. */
  refusal(client: string): ClientDisconnectedError | undefined {
    const refused = this.#refused.get(client);
    if (refused === undefined) return undefined;
    if (this.#clock.now() >= refused.until) {
      this.#refused.delete(client);
      return undefined;
    }
    return new ClientDisconnectedError(client, refused.reason);
  }

  /**
   * The client ids `client` names: exactly that id, or every known client
   * with that label. An id never seen here is still refused if it looks like one.
   */
  match(client: string): string[] {
    const ids = [...this.#records.values()].filter((r) => r.id === client || r.label === client).map((r) => r.id);
    if (ids.length === 0 && client.includes('#')) ids.push(client);
    return ids;
  }

  /** Refuses these ids for recoveryWait from now; their records go. */
  refuse(ids: readonly string[], reason: string): void {
    const until = this.#clock.now() + this.#recoveryWait;
    for (const id of ids) {
      this.#refused.set(id, { until, reason });
      this.#records.delete(id);
    }
  }

  info(): ClientRecordInfo[] {
    return [...this.#records.values()].map((r) => ({
      id: r.id,
      label: r.label,
      state: r.state,
      lastSeen: r.lastSeen,
      transactions: this.#transactionsOf(r.id),
    }));
  }

  sweep(): void {
    const now = this.#clock.now();
    for (const record of [...this.#records.values()]) {
      const silent = now - record.lastSeen;
      if (silent >= this.#troubledInterval + this.#recoveryWait) {
        this.#expire(record);
        this.#records.delete(record.id);
      } else if (silent >= this.#troubledInterval && record.state === 'active') {
        record.state = 'non-responsive';
        this.#log.info(
          {
            client: record.label,
            clientId: record.id,
            silentMs: silent,
            transactions: this.#transactionsOf(record.id),
          },
          'client non-responsive',
        );
      }
    }
    for (const [id, r] of this.#refused) if (now >= r.until) this.#refused.delete(id);
  }

  /** Silent beyond recoveryWait: its transactions are rolled back and their locks released. */
  #expire(record: ClientRecord): void {
    if (this.#transactionsOf(record.id) === 0) return;
    void this.#rollBack(record.id, 'recovery-wait').then(
      (n) =>
        this.#log.warn(
          { client: record.label, clientId: record.id, transactions: n },
          'client silent beyond recoveryWait: transactions rolled back',
        ),
      (err: unknown) => this.#log.error({ err, client: record.label }, 'rollback of a silent client failed'),
    );
  }
}
