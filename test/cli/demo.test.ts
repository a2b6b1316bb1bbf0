import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { processAlive } from '../fixtures/cliProcess.js';
import type { DemoReport } from '../../cli/demo.js';
import { checkReadBack } from '../../cli/demoReport.js';
import type { Operation } from '../../harness/history.js';

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
        reject(
          new Error(
            `cohort demo ${args.join(' ')} (exit ${code}) printed no report\nstdout:\n${stdout}\nstderr:\n${stderr}`,
          ),
        );
        return;
      }
      resolve({ code, stdout: lines, stderr, report: JSON.parse(last.slice('report '.length)) as DemoReport });
    });
  });
}

describe('cohort demo', () => {
  it(
    'kills a worker process mid-load and loses nothing acknowledged, duplicates nothing, then cleans up',
    { timeout: 60_000 },
    async () => {
      const { code, stdout, stderr, report } = await demo(['--seconds', '6']);
      const context = `\nstdout:\n${stdout.join('\n')}\nstderr:\n${stderr}`;
      expect(code, context).toBe(0);
      expect(report).toMatchObject({
        transport: 'nats',
        ok: true,
        lost: 0,
        duplicated: 0,
        unexplained: 0,
        accounts: 40,
        accountsRead: 40,
        interrupted: false,
      });
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
      expect(
        stdout.some(
          (l) =>
            l.startsWith(`>>> `) &&
            l.includes(`killing ${report.killed!.id} (not the leader; kill -9 ${report.killed!.pid})`),
        ),
      ).toBe(true);
      // A status line about once a second, with commands per second.
      expect(
        stdout.filter((l) =>
          / cmd\/s +acknowledged [\d,]+ {2}in flight \d+ {2}ambiguous \d+ {2}replica lag \d+$/.test(l),
        ).length,
      ).toBeGreaterThanOrEqual(4);
    },
  );

  it('without nats-server tells the same story in one process on the in-memory bus', { timeout: 60_000 }, async () => {
    const { code, stdout, report } = await demo(['--seconds', '5'], { NATS_SERVER_BIN: '/nonexistent/nats-server' });
    expect(code, stdout.join('\n')).toBe(0);
    expect(stdout).toContain('NATS_SERVER_BIN=/nonexistent/nats-server is not an executable nats-server,');
    expect(report).toMatchObject({ transport: 'memory', ok: true, lost: 0, duplicated: 0, pids: [] });
    expect(report.killed).not.toBeNull();
    expect(report.failoverMs).not.toBeNull();
  });

  it('refuses a bad --seconds (exit code 2)', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', 'demo', '--seconds', 'soon'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    expect(code).toBe(2);
    expect(stderr).toContain('cohort demo: --seconds needs a number from 4 to 600 (got "soon")');
  });
});

describe('the demo read-back check', () => {
  const accounts = ['acct-01', 'acct-02', 'acct-03'].map((id, shard) => ({ id, shard, onKilled: false }));
  const amounts = new Map<string, number>();
  let n = 0;
  const deposit = (session: string, amount: number, acknowledged: boolean): Operation => {
    const token = `d${++n}`;
    amounts.set(token, amount);
    return {
      session,
      token,
      sentAt: n,
      settledAt: n,
      outcome: acknowledged ? { seq: 1, duplicate: false, by: 'w1', epoch: 1 } : { error: 'TimeoutError' },
    };
  };
  const operations = [
    deposit('acct-01', 100, true),
    deposit('acct-01', 7, false),
    deposit('acct-02', 50, true),
    deposit('acct-02', 60, true),
    deposit('acct-03', 5, true),
    deposit('acct-03', 9, false),
  ];
  const history = { operations, amountOf: (op: Operation) => amounts.get(op.token)! };

  it('checks every balance read back against the history, account by account (seq counts the OPEN too)', () => {
    // acct-01: its ambiguous deposit committed; acct-02: one acknowledged deposit missing; acct-03: applied twice.
    const check = checkReadBack(accounts, history, [
      { seq: 3, balance: 107 },
      { seq: 2, balance: 50 },
      { seq: 4, balance: 10 },
    ]);
    expect(check).toMatchObject({
      accountsRead: 3,
      acknowledgedCents: 215,
      ambiguous: 2,
      ambiguousCommitted: 1,
      ambiguousNotCommitted: 1,
      balanceCents: 167,
      lost: 1,
      duplicated: 1,
      unexplained: 0,
    });
    expect(check.problems).toEqual([
      'acct-02: balance 50 at seq 2; acknowledged 2 deposits (110), ambiguous []',
      'acct-03: balance 10 at seq 4; acknowledged 1 deposits (5), ambiguous [9]',
    ]);
  });

  it('passes a clean read-back, and counts an account it could not read as not read', () => {
    const check = checkReadBack(accounts, history, [{ seq: 2, balance: 100 }, { seq: 3, balance: 110 }, null]);
    expect(check).toMatchObject({
      accountsRead: 2,
      lost: 0,
      duplicated: 0,
      unexplained: 0,
      ambiguousCommitted: 0,
      problems: [],
    });
  });
});
