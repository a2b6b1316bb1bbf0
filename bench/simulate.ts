import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * `npm run bench -- simulate`: how much cluster time the simulator covers
 * per second of this machine, for 3 workers and 4 clients running the
 * ledger's example workload, without faults and with every kind. The floor
 * it is measured against is the wall clock itself (1.0 = real time); the
 * goal is at least 100x without faults and 30x with.
 *
 * It runs the compiled harness (dist/, as `cohort simulate` does; `npm run
 * bench` builds first) in a plain node process of its own: under tsx every
 * function is renamed when it is created (esbuild's keepNames, applied to
 * dist/ too), which costs the simulator about a fifth. The first seed of a
 * process pays for compiling the runtime's hot paths, so one warm-up seed
 * runs first and is reported on its own.
 */
const WARM_UP = 100;
const SEEDS = [1, 2, 3, 4, 5];
const DURATION_MS = 30_000;

interface Rate {
  readonly wall: number;
  readonly cpu: number;
  readonly ops: number;
  readonly ok: number;
  readonly seeds: number;
}

/** Runs in the child: plain node, ESM, the compiled harness. Prints one JSON line. */
const RUNNER = `
const [harness, examples] = process.argv.slice(1);
const { simulate } = await import(harness);
const { ledger } = await import(examples);
const { warmUp, seeds, duration } = JSON.parse(process.env.COHORT_BENCH_SIMULATE);
const run = (seed, faults) => simulate({ seed, applications: [ledger], workers: 3, clients: 4, duration, faults });
const rate = (results) => {
  const sum = (f) => results.reduce((a, r) => a + f(r), 0);
  const sim = sum((r) => r.stats.simulatedMs);
  return { wall: sim / sum((r) => r.stats.wallMs), cpu: sim / sum((r) => r.stats.cpuMs),
    ops: sum((r) => r.stats.operations), ok: results.filter((r) => r.ok).length, seeds: results.length };
};
const out = { warmUp: rate([await run(warmUp, 'none')]) };
for (const faults of ['none', 'all']) {
  const results = [];
  for (const seed of seeds) results.push(await run(seed, faults));
  out[faults] = rate(results);
}
process.stdout.write(JSON.stringify(out) + '\\n');
`;

function runChild(harness: string, examples: string): Promise<Record<'warmUp' | 'none' | 'all', Rate>> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    COHORT_BENCH_SIMULATE: JSON.stringify({ warmUp: WARM_UP, seeds: SEEDS, duration: DURATION_MS }),
  };
  // Whatever loader this process runs under (tsx) stays out of the child.
  delete env['NODE_OPTIONS'];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', RUNNER, harness, examples], {
      env,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`the simulate bench process exited with ${code}`));
      try {
        resolve(JSON.parse(out.trim().split('\n').at(-1)!) as Record<'warmUp' | 'none' | 'all', Rate>);
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
  });
}

export async function benchSimulate(write: (line: string) => void): Promise<number> {
  const harness = new URL('../dist/harness/index.js', import.meta.url);
  const examples = new URL('../dist/examples/ledger.js', import.meta.url);
  if (!existsSync(fileURLToPath(harness))) {
    write('simulate: dist/ is missing; run `npm run build` (npm run bench builds first)');
    return 1;
  }
  write(
    `simulate: ledger, 3 workers, 4 clients, ${DURATION_MS / 1000} s of workload per seed, seeds ${SEEDS.join(', ')} ` +
      `(compiled harness in a plain node process, after a warm-up seed)`,
  );
  const r = await runChild(harness.href, examples.href);
  write(`  warm-up     ${r.warmUp.wall.toFixed(1).padStart(6)}x real time (seed ${WARM_UP}, a fresh process)`);
  let failed = 0;
  for (const faults of ['none', 'all'] as const) {
    const x = r[faults];
    failed += x.seeds - x.ok;
    write(
      `  faults ${faults.padEnd(4)}  ${x.wall.toFixed(1).padStart(6)}x real time per wall second ` +
        `(${x.cpu.toFixed(1)}x per CPU second), ${x.ops} operations, ${x.ok}/${x.seeds} seeds passed`,
    );
  }
  write('  goal: >= 100x without faults, >= 30x with every kind');
  return failed > 0 ? 1 : 0;
}
