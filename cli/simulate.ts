import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import {
  exampleWorkload,
  formatFaults,
  parseFaults,
  simulate,
  type Faults,
  type SimulateResult,
  type Workload,
} from '../harness/index.js';
import type { Application } from '../index.js';
import { CliUsageError, enableTypeScript, loadApplications } from './loadApplications.js';
import { defaultApp } from './up.js';

export const SIMULATE_FLAGS = {
  app: { type: 'string', multiple: true },
  seeds: { type: 'string' },
  seed: { type: 'string' },
  duration: { type: 'string' },
  faults: { type: 'string' },
  workload: { type: 'string' },
  workers: { type: 'string' },
  clients: { type: 'string' },
  shards: { type: 'string' },
  'session-timeout': { type: 'string' },
  'heartbeat-interval': { type: 'string' },
  trace: { type: 'boolean' },
} as const;

export interface SimulateArgs {
  /** As given (empty: the ledger example). */
  apps: string[];
  seeds: number[];
  duration: number;
  faults: Faults;
  workload: string | undefined;
  workers: number | undefined;
  clients: number | undefined;
  shards: number | undefined;
  sessionTimeout: number | undefined;
  heartbeatInterval: number | undefined;
  trace: boolean;
}

/** Seeds `A-B`, `N`, or a comma list of either. */
export function parseSeeds(text: string): number[] {
  const seeds: number[] = [];
  for (const part of text.split(',')) {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
    const from = Number(m?.[1]);
    const to = Number(m?.[2] ?? m?.[1]);
    if (m === null || !Number.isSafeInteger(from) || !Number.isSafeInteger(to) || to < from)
      throw new CliUsageError(`--seeds takes A-B, N or a comma list of them (got ${JSON.stringify(text)})`);
    for (let s = from; s <= to; s++) seeds.push(s);
  }
  return seeds;
}

function whole(flag: string, value: string | undefined, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = /^\s*\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < min)
    throw new CliUsageError(`--${flag} needs a whole number >= ${min} (got ${JSON.stringify(value)})`);
  return n;
}

export function parseSimulateArgs(args: string[]): SimulateArgs {
  const { values } = parseArgs({ args, options: SIMULATE_FLAGS, strict: true });
  if (values.seed !== undefined && values.seeds !== undefined)
    throw new CliUsageError('give --seed N or --seeds A-B, not both', { showUsage: true });
  const seeds = values.seed !== undefined ? [whole('seed', values.seed, 0)!] : parseSeeds(values.seeds ?? '1-100');
  let faults: Faults;
  try {
    faults = parseFaults(values.faults ?? 'none');
  } catch (err) {
    throw new CliUsageError(`--faults: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (values.trace === true && seeds.length !== 1)
    throw new CliUsageError('--trace prints one run: give it with --seed N', { showUsage: true });
  return {
    apps: values.app ?? [],
    seeds,
    duration: whole('duration', values.duration, 0) ?? 60_000,
    faults,
    workload: values.workload,
    workers: whole('workers', values.workers, 1),
    clients: whole('clients', values.clients, 1),
    shards: whole('shards', values.shards, 1),
    sessionTimeout: whole('session-timeout', values['session-timeout'], 500),
    heartbeatInterval: whole('heartbeat-interval', values['heartbeat-interval'], 1),
    trace: values.trace === true,
  };
}

/** The workload a module exports: its default export, or one named `workload`, a function. */
async function loadWorkload(path: string): Promise<Workload> {
  const absolute = resolve(process.cwd(), path);
  try {
    if (!statSync(absolute).isFile()) throw new Error('not a file');
  } catch {
    throw new CliUsageError(`--workload ${path}: no such file (${absolute})`);
  }
  if (/\.(?:ts|mts|cts)$/i.test(absolute)) await enableTypeScript();
  const module = (await import(pathToFileURL(absolute).href)) as Record<string, unknown>;
  const found = module['default'] ?? module['workload'];
  if (typeof found !== 'function')
    throw new CliUsageError(`--workload ${path}: export a workload function, as default or as \`workload\``);
  return found as Workload;
}

/** The command line that runs `seed` alone, with its trace. */
export function replayCommand(args: SimulateArgs, seed: number): string {
  const parts = ['cohort simulate'];
  for (const app of args.apps) parts.push(`--app ${app}`);
  parts.push(`--seed ${seed}`, `--duration ${args.duration}`, `--faults ${formatFaults(args.faults)}`);
  if (args.workload !== undefined) parts.push(`--workload ${args.workload}`);
  if (args.workers !== undefined) parts.push(`--workers ${args.workers}`);
  if (args.clients !== undefined) parts.push(`--clients ${args.clients}`);
  if (args.shards !== undefined) parts.push(`--shards ${args.shards}`);
  if (args.sessionTimeout !== undefined) parts.push(`--session-timeout ${args.sessionTimeout}`);
  if (args.heartbeatInterval !== undefined) parts.push(`--heartbeat-interval ${args.heartbeatInterval}`);
  return [...parts, '--trace'].join(' ');
}

/** What went wrong first in a run: its first violation, else its first error. */
export function firstProblem(result: SimulateResult): string {
  const v = result.violations[0];
  if (v !== undefined)
    return `${v.invariant} on ${v.app}/${v.session} at ${v.at - (result.history[0]?.invokedAt ?? v.at)} ms into the workload: ${v.message}`;
  return result.errors[0] ?? 'no problem';
}

const PROGRESS_EVERY = 10;

/**
 * `cohort simulate`: runs the seeds one after another, a progress line every
 * ten, each failure with the command that replays it, then a summary.
 * Exit 0 only when every seed passed.
 */
export async function runSimulate(
  args: SimulateArgs & { write: (line: string) => void; warn: (line: string) => void },
): Promise<number> {
  const { write } = args;
  const applications: Application[] = await loadApplications(args.apps.length === 0 ? [defaultApp()] : args.apps);
  const workload = args.workload !== undefined ? await loadWorkload(args.workload) : exampleWorkload(applications);
  if (workload === undefined)
    throw new CliUsageError(
      `no example workload for ${applications.map((a) => a.name).join(', ')}: pass --workload FILE (a module exporting a workload function)`,
    );
  const base = {
    applications,
    workload,
    duration: args.duration,
    faults: args.faults,
    ...(args.workers === undefined ? {} : { workers: args.workers }),
    ...(args.clients === undefined ? {} : { clients: args.clients }),
    ...(args.shards === undefined ? {} : { shardCount: args.shards }),
    ...(args.sessionTimeout === undefined ? {} : { sessionTimeout: args.sessionTimeout }),
    ...(args.heartbeatInterval === undefined ? {} : { heartbeatInterval: args.heartbeatInterval }),
    ...(args.trace ? { onTrace: write } : {}),
  };
  write(
    `simulating ${applications.map((a) => a.name).join(', ')}: seeds ${describeSeeds(args.seeds)}, ${args.duration} ms each, faults ${formatFaults(args.faults)}`,
  );
  const failing: number[] = [];
  let simulatedMs = 0;
  let wallMs = 0;
  let operations = 0;
  let violations = 0;
  let done = 0;
  for (const seed of args.seeds) {
    const result = await simulate({ ...base, seed });
    done++;
    simulatedMs += result.stats.simulatedMs;
    wallMs += result.stats.wallMs;
    operations += result.stats.operations;
    violations += result.violations.length;
    if (!result.ok) {
      failing.push(seed);
      write(`seed ${seed} FAILED: ${firstProblem(result)}`);
      write(`  replay: ${replayCommand(args, seed)}`);
    }
    if (args.seeds.length === 1 || done % PROGRESS_EVERY === 0 || done === args.seeds.length) {
      write(
        `[${done}/${args.seeds.length}] ${done - failing.length} ok, ${failing.length} failing; ${rate(simulatedMs, wallMs)} simulated s per wall s` +
          (args.seeds.length === 1 ? `; trace ${result.trace}` : ''),
      );
    }
  }
  write(
    `summary: ${args.seeds.length} seeds, ${failing.length} failing${failing.length > 0 ? ` (${failing.join(', ')})` : ''}, ${violations} violations, ${operations} operations; ${(simulatedMs / 1_000).toFixed(1)} s simulated in ${(wallMs / 1_000).toFixed(1)} s (${rate(simulatedMs, wallMs)} simulated s per wall s)`,
  );
  return failing.length === 0 ? 0 : 1;
}

function rate(simulatedMs: number, wallMs: number): string {
  return wallMs > 0 ? (simulatedMs / wallMs).toFixed(1) : '-';
}

function describeSeeds(seeds: readonly number[]): string {
  const first = seeds[0]!;
  const last = seeds[seeds.length - 1]!;
  const consecutive = seeds.every((s, i) => s === first + i);
  return consecutive && seeds.length > 1 ? `${first}-${last}` : seeds.join(',');
}
