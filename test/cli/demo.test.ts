import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { processAlive } from '../fixtures/cliProcess.js';
import { checkAccount, someAddUpTo, type DemoReport } from '../../cli/demo.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface Run {
  code: number | null;
  stdout: string[];
  stderr: string;
  report: DemoReport;
}

/** `cohort demo ...` from source, to the end; its last stdout line is `report {json}`. */
function demo(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', 'demo', ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  return new Promise((resolve, reject) => {
    child.once('close', (code) => {
      const lines = stdout.split('\n').filter((l) => l !== '');
      const last = lines.at(-1) ?? '';
      if (!last.startsWith('report {')) {
        reject(new Error(`cohort demo ${args.join(' ')} (exit ${code}) printed no report\nstdout:\n${stdout}\nstderr:\n${stderr}`));
        return;
      }
      resolve({ code, stdout: lines, stderr, report: JSON.parse(last.slice('report '.length)) as DemoReport });
    });
  });
}


describe('cohort demo', () => {
  it('kills a worker process mid-load and loses nothing acknowledged, duplicates nothing, then cleans up', { timeout: 60_000 }, async () => {
    const { code, stdout, stderr, report } = await demo(['--seconds', '6']);
    const context = `\nstdout:\n${stdout.join('\n')}\nstderr:\n${stderr}`;
    expect(code, context).toBe(0);
    expect(report).toMatchObject({ transport: 'nats', ok: true, lost: 0, duplicated: 0, unexplained: 0, accounts: 40, accountsRead: 40, interrupted: false });
    expect(report.acknowledged).toBeGreaterThan(0);
    // Every send is accounted for: acknowledged, or ambiguous and then resolved by the read-back.
    expect(report.sent).toBe(report.acknowledged + report.ambiguous);
    expect(report.ambiguousCommitted + report.ambiguousNotCommitted).toBe(report.ambiguous);
    expect(report.killed).not.toBeNull();
    expect(report.killed!.leader).toBe(false);
    expect(report.killed!.pid).toBeTypeOf('number');
    expect(report.failoverMs).not.toBeNull();
    expect(report.failoverMs!).toBeGreaterThan(0);
    expect(report.failoverMs!).toBeLessThan(10_000);
    expect(report.pids).toHaveLength(3);
    expect(report.pids).toContain(report.killed!.pid);
    expect(report.replicaLagMax).toBeTypeOf('number');
    expect(report.pids.filter(processAlive)).toEqual([]);
    expect(stdout).toContain('PASS: nothing acknowledged was lost, nothing was applied twice');
    expect(stdout.some((l) => l.startsWith(`>>> `) && l.includes(`killing ${report.killed!.id} (not the leader; kill -9 ${report.killed!.pid})`))).toBe(true);
    // A status line about once a second, with commands per second.
    expect(stdout.filter((l) => / cmd\/s +acknowledged [\d,]+ {2}in flight \d+ {2}ambiguous \d+ {2}replica lag \d+$/.test(l)).length).toBeGreaterThanOrEqual(4);
  });

  it('without nats-server tells the same story in one process on the in-memory bus', { timeout: 60_000 }, async () => {
    const { code, stdout, report } = await demo(['--seconds', '5'], { NATS_SERVER_BIN: '/nonexistent/nats-server' });
    expect(code, stdout.join('\n')).toBe(0);
    expect(stdout).toContain('NATS_SERVER_BIN=/nonexistent/nats-server is not an executable nats-server,');
    expect(report).toMatchObject({ transport: 'memory', ok: true, lost: 0, duplicated: 0, pids: [] });
    expect(report.killed).not.toBeNull();
    expect(report.failoverMs).not.toBeNull();
  });

  it('refuses a bad --seconds (exit code 2)', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', 'demo', '--seconds', 'soon'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    expect(code).toBe(2);
    expect(stderr).toContain('cohort demo: --seconds needs a number from 4 to 600 (got "soon")');
  });
});

describe('the demo read-back check', () => {
  const account = { acknowledged: 3, acknowledgedCents: 300, ambiguous: [7, 40] };

  it('accepts a balance the acknowledged deposits and some ambiguous ones explain', () => {
    expect(checkAccount(account, { seq: 4, balance: 300 })).toEqual({ lost: 0, duplicated: 0, ambiguousCommitted: 0, unexplained: false });
    expect(checkAccount(account, { seq: 5, balance: 340 })).toEqual({ lost: 0, duplicated: 0, ambiguousCommitted: 1, unexplained: false });
    expect(checkAccount(account, { seq: 6, balance: 347 })).toMatchObject({ ambiguousCommitted: 2 });
  });

  it('counts a missing acknowledged deposit as lost and one too many as duplicated', () => {
    expect(checkAccount(account, { seq: 3, balance: 200 })).toMatchObject({ lost: 1 });
    expect(checkAccount(account, { seq: 5, balance: 299 })).toMatchObject({ lost: 1 });
    expect(checkAccount(account, { seq: 7, balance: 447 })).toMatchObject({ duplicated: 1 });
    expect(checkAccount(account, { seq: 5, balance: 400 })).toMatchObject({ duplicated: 1 });
    // One more event than acknowledged, but no ambiguous send of that amount.
    expect(checkAccount(account, { seq: 5, balance: 310 })).toMatchObject({ unexplained: true });
  });

  it('finds subsets of a given size and sum', () => {
    expect(someAddUpTo([5, 7, 9], 2, 16)).toBe(true);
    expect(someAddUpTo([5, 7, 9], 2, 12)).toBe(true);
    expect(someAddUpTo([5, 7, 9], 1, 12)).toBe(false);
    expect(someAddUpTo([], 0, 0)).toBe(true);
  });
});
