/** Latency samples in milliseconds → the figures the bench prints. */
export interface LatencySummary {
  p50: number;
  p99: number;
  mean: number;
  n: number;
}

export function summarize(samples: number[]): LatencySummary {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN;
  return { p50: at(0.5), p99: at(0.99), mean: s.reduce((a, b) => a + b, 0) / s.length, n: s.length };
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Times `n` calls of `op`, one at a time. */
export async function serial(n: number, op: () => Promise<unknown>): Promise<number[]> {
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await op();
    out[i] = performance.now() - t0;
  }
  return out;
}

/** Runs `total` calls of `op` with `window` in flight; returns operations per second. */
export async function pipelined(total: number, window: number, op: () => Promise<unknown>): Promise<number> {
  let started = 0;
  const t0 = performance.now();
  const lane = async (): Promise<void> => {
    while (started < total) {
      started++;
      await op();
    }
  };
  await Promise.all(Array.from({ length: Math.min(window, total) }, lane));
  return total / ((performance.now() - t0) / 1000);
}

export function fmtMs(ms: number): string {
  return `${ms.toFixed(3)} ms`;
}

export function fmtKb(bytes: number): string {
  return `${(bytes / 1024).toFixed(1)} KB`;
}

export function fmtX(ratio: number): string {
  return `${ratio.toFixed(2)}x`;
}

export function fmtRate(perSecond: number): string {
  return `${Math.round(perSecond).toLocaleString('en-US')}/s`;
}

export function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

/**
 * `rounds` rounds of the raw and the cohort measurement in ABBA order, so
 * whatever drifts during the run (stream size, heap) weighs on both alike.
 */
export async function abba<T>(
  rounds: number,
  raw: () => Promise<T>,
  cohort: () => Promise<T>,
): Promise<{ raw: T[]; cohort: T[] }> {
  const out = { raw: [] as T[], cohort: [] as T[] };
  for (let r = 0; r < rounds; r++) {
    if (r % 2 === 0) {
      out.raw.push(await raw());
      out.cohort.push(await cohort());
    } else {
      out.cohort.push(await cohort());
      out.raw.push(await raw());
    }
  }
  return out;
}

/** `total` calls of `op(i)`, i = 0..total-1 in start order, with `window` in flight; operations per second. */
export async function windowed(total: number, window: number, op: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  const lane = async (): Promise<void> => {
    while (next < total) await op(next++);
  };
  await Promise.all(Array.from({ length: Math.min(window, total) }, lane));
  return total / ((performance.now() - t0) / 1000);
}
