import { readFile } from 'node:fs/promises';

/** USER_HZ: /proc reports CPU time in these ticks (100 on every Linux build that matters). */
const CLOCK_TICKS = 100;

/** User + system CPU time a process has used, in ms (from /proc); undefined where there is no /proc. */
export async function cpuTimeMs(pid: number): Promise<number | undefined> {
  try {
    const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}

/**
 * CPU time per operation of each named process over the runs of `op`
 * (µs, summed over every run), to show which process a rate is bound by.
 */
export class CpuPerOp<T> {
  readonly #usedMs = new Map<string, number>();
  #ops = 0;
  #known = true;

  constructor(readonly pids: Readonly<Record<string, number>>) {}

  /** Runs `op` (which performs `count` operations) and adds its CPU time. */
  async measure(count: number, op: () => Promise<T>): Promise<T> {
    const before = await this.#sample();
    const result = await op();
    const after = await this.#sample();
    for (const name of Object.keys(this.pids)) {
      const a = after[name];
      const b = before[name];
      if (a === undefined || b === undefined) this.#known = false;
      else this.#usedMs.set(name, (this.#usedMs.get(name) ?? 0) + a - b);
    }
    this.#ops += count;
    return result;
  }

  /** µs per operation by process; undefined without /proc. */
  perOp(): Record<string, number> | undefined {
    if (!this.#known || this.#ops === 0) return undefined;
    return Object.fromEntries(
      Object.keys(this.pids).map((name) => [name, ((this.#usedMs.get(name) ?? 0) * 1000) / this.#ops]),
    );
  }

  async #sample(): Promise<Record<string, number | undefined>> {
    const out: Record<string, number | undefined> = {};
    for (const [name, pid] of Object.entries(this.pids)) out[name] = await cpuTimeMs(pid);
    return out;
  }
}
