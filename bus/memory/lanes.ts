import type { HopKind, LinkVerdict } from './network.js';

/**
 * The delivery queue of a server on a simulated network: one first-in
 * first-out lane per hop (sender to receiver), and the next delivery taken
 * from a lane the network picks. So each hop keeps its order, as NATS keeps
 * each publisher's order per subscriber, while hops interleave in an order
 * drawn from the seed. A lane whose receiver is paused (or, for stream
 * entries, cut off) waits; what its receiver may no longer get is dropped.
 */

interface LaneTask {
  readonly kind: HopKind;
  readonly run: () => void;
  /** Called instead of `run` when the task is dropped. */
  readonly dropped: () => void;
}

interface Lane {
  readonly to: number;
  tasks: LaneTask[];
  head: number;
}

export interface LaneQueueOptions {
  /** Which of `ready` lanes goes next. */
  pick(ready: number): number;
  /** What the receiving connection lets a task of this kind do now. */
  verdict(to: number, kind: HopKind): LinkVerdict;
}

/** Turns run on microtasks before one waits for the event loop, as DeliveryQueue does. */
const MICROTASK_TURNS = 256;

export class LaneQueue {
  readonly #options: LaneQueueOptions;
  /** Lanes with tasks, in the order they last became non-empty (a replayable order). */
  readonly #lanes = new Map<string, Lane>();
  #count = 0;
  #scheduled = false;
  #turns = 0;

  constructor(options: LaneQueueOptions) {
    this.#options = options;
  }

  /** Nothing can run now, and no turn is scheduled: what waits for a paused or cut-off receiver does not count. */
  get idle(): boolean {
    return !this.#scheduled && !this.#anyReady();
  }

  push(lane: string, to: number, task: LaneTask): void {
    if (this.#options.verdict(to, task.kind) === 'drop') {
      task.dropped();
      return;
    }
    let found = this.#lanes.get(lane);
    if (found === undefined) this.#lanes.set(lane, (found = { to, tasks: [], head: 0 }));
    found.tasks.push(task);
    this.#count++;
    this.#schedule();
  }

  /** A receiver's state changed: drop what it may no longer get, run what it may now. */
  wake(to: number): void {
    for (const [key, lane] of [...this.#lanes]) {
      if (lane.to !== to) continue;
      const kept: LaneTask[] = [];
      for (let i = lane.head; i < lane.tasks.length; i++) {
        const task = lane.tasks[i]!;
        if (this.#options.verdict(to, task.kind) === 'drop') {
          this.#count--;
          task.dropped();
        } else kept.push(task);
      }
      lane.tasks = kept;
      lane.head = 0;
      if (kept.length === 0) this.#lanes.delete(key);
    }
    if (this.#anyReady()) this.#schedule();
  }

  #anyReady(): boolean {
    for (const lane of this.#lanes.values()) {
      if (this.#options.verdict(lane.to, lane.tasks[lane.head]!.kind) !== 'wait') return true;
    }
    return false;
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    if (++this.#turns < MICROTASK_TURNS) {
      queueMicrotask(() => this.#run());
    } else {
      this.#turns = 0;
      setImmediate(() => this.#run());
    }
  }

  /** Lanes whose first task can be taken now; heads that must be dropped go first. */
  #ready(): Array<[string, Lane]> {
    const ready: Array<[string, Lane]> = [];
    for (const entry of this.#lanes) {
      const [key, lane] = entry;
      for (;;) {
        const task = lane.tasks[lane.head]!;
        const v = this.#options.verdict(lane.to, task.kind);
        if (v === 'wait') break;
        if (v === 'run') {
          ready.push(entry);
          break;
        }
        this.#take(key, lane);
        task.dropped();
        if (!this.#lanes.has(key)) break;
      }
    }
    return ready;
  }

  #take(key: string, lane: Lane): LaneTask {
    const task = lane.tasks[lane.head]!;
    lane.tasks[lane.head++] = undefined as unknown as LaneTask;
    this.#count--;
    if (lane.head === lane.tasks.length) this.#lanes.delete(key);
    else if (lane.head >= 1_024 && lane.head * 2 >= lane.tasks.length) {
      lane.tasks = lane.tasks.slice(lane.head);
      lane.head = 0;
    }
    return task;
  }

  // As many deliveries as were queued when the turn began, each from a lane the network picks.
  #run(): void {
    this.#scheduled = false;
    let budget = this.#count;
    try {
      while (budget-- > 0) {
        const ready = this.#ready();
        if (ready.length === 0) break;
        const [key, lane] = ready.length === 1 ? ready[0]! : ready[this.#options.pick(ready.length)]!;
        this.#take(key, lane).run();
      }
    } finally {
      if (this.#anyReady()) this.#schedule();
    }
  }
}
