import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCohort } from '../fixtures/cliProcess.js';
import { parseSeeds, replayCommand } from '../../cli/simulate.js';
import { parseFaults } from '../../harness/index.js';

/** `cohort simulate ...` from source; its exit code and output. */
const cohort = (args: string[]) => runCohort(['simulate', ...args]);

const dir = mkdtempSync(join(tmpdir(), 'cohort-simulate-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const QUICK = ['--workers', '2', '--clients', '2', '--session-timeout', '1000', '--heartbeat-interval', '200'];

describe('cohort simulate', () => {
  it('runs the seeds under faults and sums them up; exit 0 when all pass', async () => {
    const r = await cohort(['--seeds', '1-2', '--duration', '5000', '--faults', 'all', ...QUICK]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^simulating ledger: seeds 1-2, 5000 ms each, faults kill=/);
    expect(r.stdout).toMatch(/\[2\/2\] 2 ok, 0 failing; [\d.]+ simulated s per wall s/);
    expect(r.stdout).toMatch(/summary: 2 seeds, 0 failing, 0 violations, \d+ operations; [\d.]+ s simulated in/);
  }, 60_000);

  it('--seed N --trace prints the run, the same twice', async () => {
    const args = ['--seed', '4', '--duration', '2000', '--faults', 'kill=0.5,delay=0-10', '--trace', ...QUICK];
    const [a, b] = [await cohort(args), await cohort(args)];
    expect(a.code).toBe(0);
    const lines = a.stdout.split('\n');
    expect(lines.some((l) => /^\d+ deliver message c\d>w\d \S+/.test(l))).toBe(true);
    expect(lines.some((l) => /^\d+ timer w\d$/.test(l))).toBe(true);
    const hash = /trace ([0-9a-f]{64})/.exec(a.stdout)?.[1];
    expect(hash).toBeDefined();
    // Everything but the wall-clock rates is the same.
    const steady = (s: string): string => s.replace(/[\d.]+ (simulated s per wall s|s\))|in [\d.]+ s/g, '');
    expect(steady(b.stdout)).toBe(steady(a.stdout));
  }, 60_000);

  it('a failing seed: its first problem and the command that replays it; exit 1', async () => {
    const workload = join(dir, 'broken.mjs');
    writeFileSync(
      workload,
      `export default async ({ client, index }) => {
        await client.session('ledger', 'acct-' + index).send({ type: 'OPEN', owner: 'x' });
        throw new Error('the workload broke');
      };\n`,
    );
    const r = await cohort(['--seeds', '7', '--duration', '1000', '--workload', workload, ...QUICK]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/seed 7 FAILED: workload of c\d threw: Error: the workload broke/);
    expect(r.stdout).toContain(
      `  replay: cohort simulate --seed 7 --duration 1000 --faults none --workload ${workload} --workers 2 --clients 2 --session-timeout 1000 --heartbeat-interval 200 --trace`,
    );
    expect(r.stdout).toMatch(/summary: 1 seeds, 1 failing \(7\)/);
  }, 60_000);

  it('wrong usage exits 2, saying why', async () => {
    const both = await cohort(['--seeds', '1-3', '--trace']);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/--trace prints one run: give it with --seed N/);
    const faults = await cohort(['--faults', 'flood=1']);
    expect(faults.code).toBe(2);
    expect(faults.stderr).toMatch(/unknown fault "flood"/);
    const workload = await cohort(['--workload', join(dir, 'none.mjs')]);
    expect(workload.code).toBe(2);
    expect(workload.stderr).toMatch(/--workload .*none\.mjs: no such file/);
  }, 60_000);
});

describe('cohort simulate arguments', () => {
  it('reads seed ranges and lists, and builds the replay command', () => {
    expect(parseSeeds('1-3')).toEqual([1, 2, 3]);
    expect(parseSeeds('5')).toEqual([5]);
    expect(parseSeeds('1-2,9')).toEqual([1, 2, 9]);
    expect(() => parseSeeds('3-1')).toThrow(/--seeds/);
    expect(() => parseSeeds('x')).toThrow(/--seeds/);
    const faults = parseFaults('kill=0.2,delay=0-40,reorder');
    expect(
      replayCommand(
        {
          apps: ['examples/ledger.ts'],
          seeds: [1, 2],
          duration: 60_000,
          faults,
          workload: undefined,
          workers: undefined,
          clients: 4,
          shards: undefined,
          sessionTimeout: undefined,
          heartbeatInterval: undefined,
          trace: false,
        },
        2,
      ),
    ).toBe(
      'cohort simulate --app examples/ledger.ts --seed 2 --duration 60000 --faults kill=0.2,delay=0-40,reorder --clients 4 --trace',
    );
  });
});
