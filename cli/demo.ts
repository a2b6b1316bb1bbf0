import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { type Bus, type Client, connect, type SessionHandle, shardOf, type View } from '../index.js';
import { KillAndProbe } from './demoKill.js';
import { type Account, DepositLoad, openAccounts, SEND_TIMEOUT_MS } from './demoLoad.js';
import { checkReadBack, type DemoReport, printReport, readBalances } from './demoReport.js';
import { secs, startStatusLine, viewNarrator } from './demoStatus.js';
import { describeExit, startLocalCluster, type LocalCluster } from './localCluster.js';
import { CliUsageError } from './loadApplications.js';
import { defaultApp } from './up.js';
import { stopSignal } from './stopSignal.js';
import { authInit } from './auth.js';
import { checkAuthDir } from './authServer.js';
import { watchReplicaLag, type ReplicaLag } from './replicaLag.js';

export type { DemoReport } from './demoReport.js';

/**
 * `cohort demo`: the story the runtime is for, told in about 30 seconds. A
 * local cluster of three workers runs the ledger; clients open accounts and
 * keep deposits in flight; midway one worker is killed with SIGKILL; at the
 * end every balance is read back and checked against what was acknowledged.
 * This file is the story's order; the load (demoLoad.ts), the kill and its
 * probes (demoKill.ts), the running commentary (demoStatus.ts) and the
 * check and report (demoReport.ts) each have their own.
 */

export const DEMO_FLAGS = {
  seconds: { type: 'string' },
  auth: { type: 'string' },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

const WORKERS = 3;
const ACCOUNTS = 40;
const CLIENTS = 4;
/** Sends each client keeps in flight. */
const WINDOW = 8;
/** Short membership timings, so the failover fits the demo: a silent worker is dropped after 1.5 s. */
const HEARTBEAT_INTERVAL_MS = 250;
const SESSION_TIMEOUT_MS = 1_500;
/** When the worker is killed, as a share of the load time. */
const KILL_AT = 0.4;
const DEFAULT_SECONDS = 15;
const MIN_SECONDS = 4;
const MAX_SECONDS = 600;
const APP = 'ledger';

export interface DemoOptions {
  /** Seconds of load; the worker is killed at 40% of them. */
  seconds: number;
  /**
   * A `cohort auth init` directory for cluster demo (made, with clients
   * demo-1..demo-4, when it holds none): the embedded server admits only
   * its users, and every process connects as its role.
   */
  authDir?: string | undefined;
}

export function parseDemoArgs(args: string[]): DemoOptions {
  const { values } = parseArgs({ args, options: DEMO_FLAGS, strict: true, allowPositionals: false });
  if (values.auth !== undefined && values.auth.trim() === '')
    throw new CliUsageError('--auth needs a directory', { showUsage: true });
  const authDir = values.auth === undefined ? undefined : resolve(process.cwd(), values.auth);
  if (values.seconds === undefined) return { seconds: DEFAULT_SECONDS, authDir };
  const s = /^\s*\d+(\.\d+)?\s*$/.test(values.seconds) ? Number(values.seconds) : NaN;
  if (!(s >= MIN_SECONDS && s <= MAX_SECONDS)) {
    throw new CliUsageError(
      `--seconds needs a number from ${MIN_SECONDS} to ${MAX_SECONDS} (got ${JSON.stringify(values.seconds)})`,
    );
  }
  return { seconds: s, authDir };
}

const CLIENT_LABELS = Array.from({ length: CLIENTS }, (_, i) => `demo-${i + 1}`);

/** The directory's users for the demo, made when it has none yet. */
async function prepareAuth(dir: string, write: (line: string) => void): Promise<void> {
  if (!existsSync(join(dir, 'cohort-auth.json'))) {
    write(
      `no users in ${dir} yet: making them (cohort auth init --cluster demo --out ${dir} --client demo-1 ... demo-4)`,
    );
    await authInit({ cluster: 'demo', out: dir, clients: CLIENT_LABELS }, { write: () => undefined });
  }
  await checkAuthDir(dir, 'demo', ['worker', 'admin', ...CLIENT_LABELS.map((l) => `client-${l}`)]);
}

export interface RunDemoOptions extends DemoOptions {
  write: (line: string) => void;
  warn: (line: string) => void;
}

const settled = (view: View): boolean =>
  view.members.length === WORKERS &&
  !view.transitional &&
  view.shards.every((s) => s.state === 'ACTIVE' && s.primary !== null);

/** `cohort demo`. Resolves to the exit code: 0 only when nothing was lost or duplicated. */
export async function runDemo(options: RunDemoOptions): Promise<number> {
  const { write, warn } = options;
  const loadMs = options.seconds * 1000;
  write(
    `cohort demo: ${WORKERS} workers running the ledger, ${ACCOUNTS} accounts, deposits from ${CLIENTS} clients ` +
      `(${WINDOW} in flight each) for ${options.seconds} s; one worker is killed with SIGKILL after ${secs(loadMs * KILL_AT)}.`,
  );
  write(
    `membership: heartbeat every ${HEARTBEAT_INTERVAL_MS} ms, a worker silent for ${SESSION_TIMEOUT_MS} ms is dropped and its shards fail over`,
  );
  if (options.authDir !== undefined) await prepareAuth(options.authDir, write);
  const signal = stopSignal(warn, 'exiting now, killing what is left');
  let cluster: LocalCluster;
  try {
    cluster = await startLocalCluster({
      authDir: options.authDir,
      workers: WORKERS,
      apps: [defaultApp()],
      nats: undefined,
      cluster: 'demo',
      heartbeatInterval: HEARTBEAT_INTERVAL_MS,
      sessionTimeout: SESSION_TIMEOUT_MS,
      write,
      onLine: (w, line) => write(`[${w.id}] ${line}`),
      onWarn: (w, line) => warn(`[${w.id}] ${line}`),
      onUnexpectedExit: (w, exit) => write(`worker ${w.id} exited unexpectedly (${describeExit(exit)})`),
    });
  } catch (err) {
    signal.dispose();
    warn(`cannot start the cluster: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }

  const buses: Bus[] = [];
  const clients: Client[] = [];
  let replicaLag: ReplicaLag | undefined;
  let interrupted = false;
  let report: DemoReport | undefined;
  try {
    const pids = cluster.workers.flatMap((w) => (w.pid === undefined ? [] : [w.pid]));
    if (pids.length > 0) write(`worker pids: ${cluster.workers.map((w) => `${w.id} ${w.pid}`).join(', ')}`);
    const narrate = viewNarrator(write);
    if (cluster.views.latest !== null) narrate(cluster.views.latest);
    const viewLines = cluster.views.subscribe(narrate);
    const first = await Promise.race([
      cluster.views.until(settled, 30_000, `${WORKERS} members and every shard served`),
      signal.received.then(() => null),
    ]);
    if (first === null) interrupted = true;

    for (let i = 0; i < CLIENTS; i++) {
      const label = CLIENT_LABELS[i]!;
      const bus = await cluster.openBus(`cohort-demo-client-${i + 1}`, label);
      buses.push(bus);
      clients.push(await connect({ bus, cluster: cluster.cluster, label, timeout: SEND_TIMEOUT_MS }));
    }
    const shardCount = first?.shardCount ?? 256;
    const accounts: Account[] = Array.from({ length: ACCOUNTS }, (_, i) => {
      const id = `acct-${String(i + 1).padStart(2, '0')}`;
      return { id, shard: shardOf(APP, id, shardCount), onKilled: false };
    });
    const handles: SessionHandle[][] = clients.map((c) => accounts.map((a) => c.session(APP, a.id)));
    if (!interrupted) {
      await openAccounts(accounts, handles);
      write(`opened ${ACCOUNTS} accounts; sending deposits`);
    }

    // ---- the load, and midway the kill
    const loadStart = performance.now();
    const load = new DepositLoad({
      accounts,
      handles,
      onAcknowledged: (account, op) => failover.acknowledged(account, op),
    });
    const failover = new KillAndProbe({ cluster, accounts, load, loadStart, interrupted: () => interrupted, write });
    failover.arm(loadMs * KILL_AT);
    // An onlooker's view of replica lag: the journal as it is written, and the secondaries' reports.
    const lagBus = await cluster.openBus('cohort-demo-lag');
    buses.push(lagBus);
    const lag = await watchReplicaLag(lagBus, 'demo').catch(() => undefined);
    replicaLag = lag;
    const stopStatus = startStatusLine({ cluster, load, lag, loadStart, write });
    if (!interrupted) load.start(WINDOW);
    const timeUp = new Promise<void>((resolve) => setTimeout(resolve, loadMs));
    await Promise.race([timeUp, signal.received.then(() => void (interrupted = true))]);
    const loadDone = load.stop();
    failover.disarm();
    const loadEnd = performance.now();
    if (interrupted) write(`${signal.signal}: stopping the load early`);
    else
      write(
        `${secs(loadEnd - loadStart)}: load stopped; waiting for ${load.inFlight} sends in flight (at most ${secs(SEND_TIMEOUT_MS)})`,
      );
    await Promise.all([loadDone, failover.settled()]);
    stopStatus();
    failover.stop();

    // ---- read every balance back
    const reads = await readBalances(handles[0]!);
    viewLines();
    const check = checkReadBack(accounts, { operations: load.history.operations, amountOf: load.amountOf }, reads);
    const loadSeconds = (loadEnd - loadStart) / 1000;
    report = {
      transport: cluster.transport,
      accounts: ACCOUNTS,
      accountsRead: check.accountsRead,
      sent: load.sent,
      acknowledged: load.acknowledged,
      acknowledgedCents: check.acknowledgedCents,
      ambiguous: check.ambiguous,
      ambiguousCommitted: check.ambiguousCommitted,
      ambiguousNotCommitted: check.ambiguousNotCommitted,
      ambiguousOnKilled: load.ambiguousOnKilled,
      otherErrors: load.otherErrors,
      balanceCents: check.balanceCents,
      lost: check.lost,
      duplicated: check.duplicated,
      unexplained: check.unexplained,
      killed: failover.killed,
      droppedMs: failover.droppedMs,
      failoverMs: failover.failoverMs,
      replicaLagMax: replicaLag === undefined ? null : replicaLag.max,
      loadSeconds,
      commandsPerSecond: loadSeconds > 0 ? load.acknowledged / loadSeconds : 0,
      pids,
      interrupted,
      wallMs: 0,
      ok: false,
    };
    for (const p of check.problems.slice(0, 10)) write(`  ! ${p}`);
  } finally {
    replicaLag?.stop();
    await Promise.all(clients.map((c) => c.close().catch(() => {})));
    await Promise.all(buses.map((b) => b.close().catch(() => {})));
    write(
      `stopping the ${cluster.workers.filter((w) => w.exit === null).length} remaining workers${cluster.transport === 'nats' ? ' and the nats-server' : ''}`,
    );
    const { forced } = await cluster.stop(10_000);
    if (forced.length > 0) warn(`did not stop in time, killed: ${forced.join(', ')}`);
    signal.dispose();
  }

  report.wallMs = performance.now();
  report.ok =
    !report.interrupted &&
    report.lost === 0 &&
    report.duplicated === 0 &&
    report.unexplained === 0 &&
    report.accountsRead === report.accounts;
  printReport(report, write);
  return report.ok ? 0 : 1;
}
