import { ledger } from '../examples/ledger.js';
import { simulate, type SimulateResult } from '../harness/index.js';

/**
 * `npm run bench -- simulate`: how much cluster time the simulator covers
 * per second of this machine, for 3 workers and 4 clients running the
 * ledger's example workload, without faults and with every kind. The floor
 * it is measured against is the wall clock itself (1.0 = real time); the
 * goal is at least 100x without faults and 30x with.
 */
const SEEDS = [1, 2, 3];
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
  write(
    `simulate: ledger, 3 workers, 4 clients, ${DURATION_MS / 1000} s of workload per seed, seeds ${SEEDS.join(', ')}`,
  );
  let failed = 0;
  for (const faults of ['none', 'all'] as const) {
    const results: SimulateResult[] = [];
    for (const seed of SEEDS)
      results.push(
        await simulate({ seed, applications: [ledger], workers: 3, clients: 4, duration: DURATION_MS, faults }),
      );
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
