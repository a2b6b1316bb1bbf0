import type { Clock, TimerHandle } from '../../internal.js';

interface Timer {
  readonly id: number;
  readonly at: number;
  readonly callback: () => void;
}

/**
 * The one clock of a simulation: virtual time that moves only when the run
 * loop fires the next timer. Timers due at the same instant fire in the
 * order they were armed. Unlike SimulatedClock it keeps timers in a heap
 * and fires one at a time, so the loop can let everything a timer caused
 * happen before the next one.
 */
export class VirtualClock implements Clock {
  #now: number;
  #nextId = 1;
  readonly #heap: Timer[] = [];
  /** Armed and not cleared; the heap may still hold cleared ones until they surface. */
  readonly #live = new Set<number>();
  #fired = 0;

  constructor(start: number) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(callback: () => void, ms: number): TimerHandle {
    const id = this.#nextId++;
    this.#live.add(id);
    this.#push({ id, at: this.#now + Math.max(0, Number.isFinite(ms) ? ms : 0), callback });
    return id;
  }

  clearTimeout(handle: TimerHandle): void {
    this.#live.delete(handle as number);
  }

  /** When the next timer is due; undefined when none is armed. */
  get next(): number | undefined {
    this.#skipCleared();
    return this.#heap[0]?.at;
  }

  /** Timers armed and not yet fired or cleared. */
  get pending(): number {
    return this.#live.size;
  }

  /** Timers fired so far. */
  get fired(): number {
    return this.#fired;
  }

  /** Fires the earliest timer due at or before `limit`, moving time to it; false when there is none. */
  fire(limit: number): boolean {
    this.#skipCleared();
    const timer = this.#heap[0];
    if (timer === undefined || timer.at > limit) return false;
    this.#pop();
    this.#live.delete(timer.id);
    this.#now = Math.max(this.#now, timer.at);
    this.#fired++;
    timer.callback();
    return true;
  }

  /** Moves time to `time` (never back); timers due before it are left for `fire`. */
  advance(time: number): void {
    this.#now = Math.max(this.#now, time);
  }

  #skipCleared(): void {
    while (this.#heap.length > 0 && !this.#live.has(this.#heap[0]!.id)) this.#pop();
  }

  #before(a: Timer, b: Timer): boolean {
    return a.at < b.at || (a.at === b.at && a.id < b.id);
  }

  #push(timer: Timer): void {
    const heap = this.#heap;
    heap.push(timer);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#before(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }

  #pop(): void {
    const heap = this.#heap;
    const last = heap.pop()!;
    if (heap.length === 0) return;
    heap[0] = last;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let least = i;
      if (left < heap.length && this.#before(heap[left]!, heap[least]!)) least = left;
      if (right < heap.length && this.#before(heap[right]!, heap[least]!)) least = right;
      if (least === i) return;
      [heap[i], heap[least]] = [heap[least]!, heap[i]!];
      i = least;
    }
  }
}
