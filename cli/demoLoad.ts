import { EventRejectedError, type SessionHandle, TimeoutError } from '../index.js';
import { History, type Operation } from '../harness/history.js';

/**
 * The demo's load: deposits from every client to random accounts, a window
 * of them in flight per client. Every send goes into a History (the account
 * is its session), so the read-back is checked by the harness's checker.
 */

/** A send not acknowledged by then is ambiguous: it may or may not have committed. */
export const SEND_TIMEOUT_MS = 5_000;

export interface Account {
  readonly id: string;
  readonly shard: number;
  /** Set once the killed worker's shards are known. */
  onKilled: boolean;
}

/** mulberry32: a small seeded generator, so two runs send the same amounts to the same accounts. */
export function random(seed: number): (below: number) => number {
  let a = seed >>> 0;
  return (below) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * below);
  };
}

/** Opens every account (an OPEN that timed out but committed is refused the second time: open either way). */
export async function openAccounts(
  accounts: readonly Account[],
  handles: readonly (readonly SessionHandle[])[],
): Promise<void> {
  await Promise.all(
    accounts.map(async (a, i) => {
      const h = handles[i % handles.length]![i]!;
      for (let attempt = 1; ; attempt++) {
        try {
          await h.send({ type: 'OPEN', owner: `Owner ${a.id.slice(5)}` });
          return;
        } catch (err) {
          if (err instanceof EventRejectedError) return;
          if (attempt === 3) throw err;
        }
      }
    }),
  );
}

export interface DepositLoadOptions {
  readonly accounts: readonly Account[];
  /** Per client, a session handle per account (same order as `accounts`). */
  readonly handles: readonly (readonly SessionHandle[])[];
  /** Every acknowledgement, as it comes: the failover is timed by the first on the killed worker's accounts. */
  readonly onAcknowledged: (account: Account, op: Operation) => void;
}

export class DepositLoad {
  readonly history = new History();
  sent = 0;
  acknowledged = 0;
  inFlight = 0;
  /** Sends that got no acknowledgement (timed out, or failed otherwise). */
  ambiguous = 0;
  ambiguousOnKilled = 0;
  /** Errors other than a timeout among the ambiguous, by class. */
  readonly otherErrors: Record<string, number> = {};
  /** Sends in flight, per account. */
  readonly inFlightOn: number[];
  readonly #load: DepositLoadOptions;
  /** The history keeps outcomes by token; the read-back check needs each deposit's amount too. */
  readonly #amounts = new Map<string, number>();
  #running = false;
  #loops: Promise<void>[] = [];

  constructor(options: DepositLoadOptions) {
    this.#load = options;
    this.inFlightOn = options.accounts.map(() => 0);
  }

  get clients(): number {
    return this.#load.handles.length;
  }

  readonly amountOf = (op: Operation): number => this.#amounts.get(op.token) ?? 0;

  /** One deposit, recorded in the history and counted as acknowledged or ambiguous. */
  async deposit(client: number, i: number, amount: number): Promise<void> {
    const account = this.#load.accounts[i]!;
    const token = `d${++this.sent}`;
    this.#amounts.set(token, amount);
    this.inFlight++;
    this.inFlightOn[i]!++;
    try {
      const op = await this.history.track(account.id, token, () =>
        this.#load.handles[client]![i]!.send({ type: 'DEPOSIT', amount }, { timeout: SEND_TIMEOUT_MS }),
      );
      const { outcome } = op;
      if ('error' in outcome) {
        this.ambiguous++;
        if (account.onKilled) this.ambiguousOnKilled++;
        if (outcome.error !== TimeoutError.name)
          this.otherErrors[outcome.error] = (this.otherErrors[outcome.error] ?? 0) + 1;
      } else {
        this.acknowledged++;
        this.#load.onAcknowledged(account, op);
      }
    } finally {
      this.inFlight--;
      this.inFlightOn[i]!--;
    }
  }

  /** `window` send loops per client, until stop(). */
  start(window: number): void {
    this.#running = true;
    this.#loops = this.#load.handles.flatMap((_, c) => Array.from({ length: window }, (_, s) => this.#loop(c, s)));
  }

  /** No new sends; resolves once the last ones settled (a timeout at most). */
  stop(): Promise<void> {
    this.#running = false;
    return Promise.all(this.#loops).then(() => {});
  }

  async #loop(client: number, slot: number): Promise<void> {
    const next = random(1 + client * 1_000 + slot);
    while (this.#running) {
      await this.deposit(client, next(this.#load.accounts.length), 1 + next(999));
      // The memory bus delivers in microtasks: without a turn of the event loop here, a
      // send loop in this process would starve every timer (heartbeats, the status line).
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }
}
