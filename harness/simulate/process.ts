import type { Clock, MemoryServer, TimerHandle } from '../../internal.js';
import type { VirtualClock } from './clock.js';

export type ProcessState = 'running' | 'paused' | 'dead';

interface ProcessTimer {
  readonly callback: () => void;
  /** Its timer on the simulation's clock; undefined while held for a pause. */
  global: TimerHandle | undefined;
}

export interface SimProcessOptions {
  /** `w1`, `w1.2` (its second incarnation), `c3`, `audit`: in the trace and in violations. */
  readonly name: string;
  readonly clock: VirtualClock;
  readonly server: MemoryServer;
  /** Told when one of its timers fires, before the callback runs. */
  readonly onTimer?: (process: SimProcess) => void;
}

/**
 * One simulated operating-system process (a worker or a client) sharing the
 * simulation's clock and memory server with the others. Its clock is a view
 * of the simulation's: `now()` is everyone's time, but its timers are its
 * own, so it can stop and die on its own.
 *
 * - pause: its timers do not fire and what the server sends it waits; on
 *   resume the overdue timers fire first (as Node runs timers before I/O),
 *   in the order they came due, then the deliveries arrive. It wakes up
 *   later than it went to sleep, with whatever it believed then.
 * - kill: its timers are gone, its connections dropped by the server; its
 *   pending promises never settle and nothing it might do reaches anyone.
 */
export class SimProcess {
  readonly name: string;
  readonly clock: Clock;
  readonly #global: VirtualClock;
  readonly #server: MemoryServer;
  readonly #onTimer: ((process: SimProcess) => void) | undefined;
  readonly #timers = new Set<ProcessTimer>();
  /** Timers that came due while paused, in the order they did. */
  #held: ProcessTimer[] = [];
  readonly #connections: number[] = [];
  #state: ProcessState = 'running';

  constructor({ name, clock, server, onTimer }: SimProcessOptions) {
    this.name = name;
    this.#global = clock;
    this.#server = server;
    this.#onTimer = onTimer;
    this.clock = {
      now: () => clock.now(),
      setTimeout: (callback, ms) => this.#setTimeout(callback, ms),
      clearTimeout: (handle) => this.#clearTimeout(handle as ProcessTimer),
    };
  }

  get state(): ProcessState {
    return this.#state;
  }

  /** Its connections to the server (a worker's bus, a client's). */
  get connections(): readonly number[] {
    return this.#connections;
  }

  /** A bus connection this process opened: paused, cut off and killed with it. */
  adopt(connection: number): void {
    this.#connections.push(connection);
    if (this.#state === 'paused') this.#server.hold(connection);
  }

  pause(): void {
    if (this.#state !== 'running') return;
    this.#state = 'paused';
    for (const connection of this.#connections) this.#server.hold(connection);
  }

  resume(): void {
    if (this.#state !== 'paused') return;
    this.#state = 'running';
    const overdue = this.#held;
    this.#held = [];
    for (const timer of overdue) timer.global = this.#global.setTimeout(() => this.#fire(timer), 0);
    // Behind the overdue timers: a process that wakes up runs its timers before it reads its sockets.
    this.#global.setTimeout(() => {
      if (this.#state === 'running') for (const connection of this.#connections) this.#server.hold(connection, false);
    }, 0);
  }

  kill(): void {
    if (this.#state === 'dead') return;
    this.#state = 'dead';
    for (const timer of this.#timers) if (timer.global !== undefined) this.#global.clearTimeout(timer.global);
    this.#timers.clear();
    this.#held = [];
    for (const connection of this.#connections) this.#server.kill(connection);
  }

  /**
   * Cut off one way (a half-open partition): it runs and what it sends
   * arrives, but nothing reaches it; what the server sends it waits, as the
   * bytes a TCP peer cannot deliver wait (`deaf` false lets them through).
   */
  deafen(deaf: boolean): void {
    if (this.#state !== 'running') return;
    for (const connection of this.#connections) this.#server.hold(connection, deaf);
  }

  /** Cut off from the server both ways (`cut` false heals it). */
  cut(cut: boolean): void {
    if (this.#state === 'dead') return;
    for (const connection of this.#connections) this.#server.cut(connection, cut);
  }

  #setTimeout(callback: () => void, ms: number): TimerHandle {
    const timer: ProcessTimer = { callback, global: undefined };
    if (this.#state === 'dead') return timer;
    this.#timers.add(timer);
    timer.global = this.#global.setTimeout(() => this.#fire(timer), ms);
    return timer;
  }

  #clearTimeout(timer: ProcessTimer): void {
    if (timer === undefined || !this.#timers.delete(timer)) return;
    if (timer.global !== undefined) this.#global.clearTimeout(timer.global);
    timer.global = undefined;
    this.#held = this.#held.filter((t) => t !== timer);
  }

  #fire(timer: ProcessTimer): void {
    timer.global = undefined;
    if (this.#state === 'dead' || !this.#timers.has(timer)) return;
    if (this.#state === 'paused') {
      this.#held.push(timer);
      return;
    }
    this.#timers.delete(timer);
    this.#onTimer?.(this);
    timer.callback();
  }
}
