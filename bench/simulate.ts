import { existsSync } from 'node:fs';
import type * as Harness from '../harness/index.js';
import type { SimulateResult } from '../harness/index.js';

/**
 * `npm run bench -- simulate`: how much cluster time the simulator covers
 * per second of this machine, for 3 workers and 4 clients running the
 * ledger's example workload, without faults and with every kind. The floor
 * it is measured against is the wall clock itself (1.0 = real time); the
 * goal is at least 100x without faults and 30x with.
 *
 * It runs the compiled harness (dist/, as `cohort simulate` does; `npm run
 * bench` builds first): under tsx every arrow function is renamed at
 * creation, which costs the simulator about a tenth. The first seed of a
 * process pays for compiling the runtime's hot paths, so one warm-up seed
 * runs first and is reported on its own.
 */
const WARM_UP = 100;
const SEEDS = [1, 2, 3, 4, 5];
const DURATION_MS = 30_000;

function rate(results: readonly SimulateResult[]): { wall: number; cpu: number; ops: number; ok: number } {
  const sim = results.reduce((a, r) => a + r.stats.simulatedMs, 0);
  const wall = results.reduce((a, r) => a + r.stats.wallMs, 0);
  const cpu = results.reduce((a, r) => a + r.stats.cpuMs, 0);
  return {
    wall: sim / wall,
    cpu: sim / cpu,
    ops: results.reduce((a, r) => a + r.stats.operations, 0),
    ok: results.filter((r) => r.ok).length,
  };
}

export async function benchSimulate(write: (line: string) => void): Promise<number> {
  const compiled = new URL('../dist/harness/index.js', import.meta.url);
  if (!existsSync(compiled)) {
    write('simulate: dist/ is missing; run `npm run build` (npm run bench builds first)');
    return 1;
  }
  const { simulate } = (await import(compiled.href)) as typeof Harness;
  const { ledger } = (await import(new URL('../dist/examples/ledger.js', import.meta.url).href)) as {
    ledger: Harness.SimulateOptions['applications'][number];
  };
  const run = (seed: number, faults: 'none' | 'all'): Promise<SimulateResult> =>
    simulate({ seed, applications: [ledger], workers: 3, clients: 4, duration: DURATION_MS, faults });
  write(
    `simulate: ledger, 3 workers, 4 clients, ${DURATION_MS / 1000} s of workload per seed, seeds ${SEEDS.join(', ')} ` +
      `(compiled harness, after a warm-up seed)`,
  );
  const cold = rate([await run(WARM_UP, 'none')]);
  write(`  warm-up     ${cold.wall.toFixed(1).padStart(6)}x real time (seed ${WARM_UP}, a fresh process)`);
  let failed = 0;
  for (const faults of ['none', 'all'] as const) {
    const results: SimulateResult[] = [];
    for (const seed of SEEDS) results.push(await run(seed, faults));
    const r = rate(results);
    failed += results.length - r.ok;
    write(
      `  faults ${faults.padEnd(4)}  ${r.wall.toFixed(1).padStart(6)}x real time per wall second ` +
        `(${r.cpu.toFixed(1)}x per CPU second), ${r.ops} operations, ${r.ok}/${results.length} seeds passed`,
    );
  }
  write('  goal: >= 100x without faults, >= 30x with every kind');
  return failed > 0 ? 1 : 0;
}
