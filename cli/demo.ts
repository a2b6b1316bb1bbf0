import { parseArgs, type ParseArgsConfig } from 'node:util';
import { type Bus, type Client, connect, EventRejectedError, type SessionHandle, shardOf, TimeoutError, type View } from '../index.js';
import { describeExit, startLocalCluster, type LocalCluster, type LocalWorker } from './localCluster.js';
import { CliUsageError } from './loadApplications.js';
import { defaultApp, describeView, primariesByMember } from './up.js';
import { stopSignal } from './stopSignal.js';
import { watchReplicaLag, type ReplicaLag } from './replicaLag.js';

/**
 * `cohort demo`: the story the runtime is for, told in about 30 seconds. A
 * local cluster of three workers runs the ledger; clients open accounts and
 * keep deposits in flight; midway one worker is killed with SIGKILL; at the
 * end every balance is read back and checked against what was acknowledged.
 */

export const DEMO_FLAGS = {
  seconds: { type: 'string' },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

const WORKERS = 3;
const ACCOUNTS = 40;
const CLIENTS = 4;
/** Sends each client keeps in flight. */
const WINDOW = 8;
/** A send not acknowledged by then is ambiguous: it may or may not have committed. */
const SEND_TIMEOUT_MS = 5_000;
/** Short membership timings, so the failover fits the demo: a silent worker is dropped after 1.5 s. */
const HEARTBEAT_INTERVAL_MS = 250;
const SESSION_TIMEOUT_MS = 1_500;
/** When the worker is killed, as a share of the load time. */
const KILL_AT = 0.4;
/** After the kill, a probe deposit to one of the killed worker's accounts this often, until one is acknowledged. */
const PROBE_EVERY_MS = 50;
/** ... and for at most this long. */
const PROBE_FOR_MS = 15_000;
const DEFAULT_SECONDS = 15;
const MIN_SECONDS = 4;
const MAX_SECONDS = 600;
const APP = 'ledger';

export interface DemoOptions {
  /** Seconds of load; the worker is killed at 40% of them. */
  seconds: number;
}

export function parseDemoArgs(args: string[]): DemoOptions {
  const { values } = parseArgs({ args, options: DEMO_FLAGS, strict: true, allowPositionals: false });
  if (values.seconds === undefined) return { seconds: DEFAULT_SECONDS };
  const s = /^\s*\d+(\.\d+)?\s*$/.test(values.seconds) ? Number(values.seconds) : NaN;
  if (!(s >= MIN_SECONDS && s <= MAX_SECONDS)) {
    throw new CliUsageError(`--seconds needs a number from ${MIN_SECONDS} to ${MAX_SECONDS} (got ${JSON.stringify(values.seconds)})`);
  }
  return { seconds: s };
}

/** What the demo found; the last line of its output is `report ` + this as JSON. */
export interface DemoReport {
  transport: 'nats' | 'memory';
  accounts: number;
  /** Accounts whose balance was read back (all of them, unless reads failed). */
  accountsRead: number;
  sent: number;
  acknowledged: number;
  acknowledgedCents: number;
  /** Sends that got no acknowledgement (timed out): each may or may not have committed. */
  ambiguous: number;
  /** Of those, how many the read-back shows committed, and how many not. */
  ambiguousCommitted: number;
  ambiguousNotCommitted: number;
  /** Of the ambiguous, those sent to accounts of the killed worker (in flight to it when it died, or in the few ms it took to die). */
  ambiguousOnKilled: number;
  /** Errors other than a timeout among the ambiguous, by class. */
  otherErrors: Record<string, number>;
  balanceCents: number;
  /** Acknowledged deposits missing from the balances. */
  lost: number;
  /** Deposits applied more often than they were sent. */
  duplicated: number;
  /** Accounts whose balance neither loss nor duplication explains (should never happen). */
  unexplained: number;
  killed: {
    id: string;
    pid: number | null;
    leader: boolean;
    /** Since the load started. */
    atMs: number;
    shards: number;
    accounts: number;
  } | null;
  /** From the kill until the view no longer listed the killed worker. */
  droppedMs: number | null;
  /** From the kill until the first acknowledged command, sent after the kill, on a shard the killed worker was primary of. */
  failoverMs: number | null;
  /** Journal entries the most lagging shard's secondary had not reported applied, at worst (sampled once a second). */
  replicaLagMax: number | null;
  loadSeconds: number;
  commandsPerSecond: number;
  /** Worker process ids (empty on the memory bus). */
  pids: number[];
  interrupted: boolean;
  wallMs: number;
  ok: boolean;
}

/** mulberry32: a small seeded generator, so two runs send the same amounts to the same accounts. */
function random(seed: number): (below: number) => number {
  let a = seed >>> 0;
  return (below) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * below);
  };
}

/** Whether exactly `count` of `amounts` add up to `sum` (amounts are few: those that timed out on one account). */
export function someAddUpTo(amounts: readonly number[], count: number, sum: number): boolean {
  // Reachable (count, sum) pairs, built one amount at a time.
  let reach = new Set<string>(['0:0']);
  for (const a of amounts) {
    const next = new Set(reach);
    for (const key of reach) {
      const [c, s] = key.split(':').map(Number) as [number, number];
      if (c < count && s + a <= sum) next.add(`${c + 1}:${s + a}`);
    }
    reach = next;
  }
  return reach.has(`${count}:${sum}`);
}

interface Account {
  readonly id: string;
  readonly shard: number;
  acknowledged: number;
  acknowledgedCents: number;
  /** Amounts of the sends that timed out. */
  readonly ambiguous: number[];
  /** Set once the killed worker's shards are known. */
  onKilled: boolean;
}

export interface AccountCheck {
  lost: number;
  duplicated: number;
  ambiguousCommitted: number;
  unexplained: boolean;
}

/**
 * One account read back: `seq` counts its events (OPEN is 1, then one per
 * deposit committed), so the deposits committed beyond the acknowledged ones
 * must be some of the ambiguous ones, and their amounts must make up the
 * balance above the acknowledged sum.
 */
export function checkAccount(
  a: { acknowledged: number; acknowledgedCents: number; ambiguous: readonly number[] },
  read: { seq: number; balance: number },
): AccountCheck {
  const committed = read.seq - 1;
  const extra = committed - a.acknowledged;
  const surplus = read.balance - a.acknowledgedCents;
  const ambiguousCents = a.ambiguous.reduce((x, y) => x + y, 0);
  if (extra < 0 || surplus < 0) return { lost: Math.max(1, -extra), duplicated: 0, ambiguousCommitted: 0, unexplained: false };
  if (extra > a.ambiguous.length || surplus > ambiguousCents) {
    return { lost: 0, duplicated: Math.max(1, extra - a.ambiguous.length), ambiguousCommitted: 0, unexplained: false };
  }
  if (!someAddUpTo(a.ambiguous, extra, surplus)) return { lost: 0, duplicated: 0, ambiguousCommitted: 0, unexplained: true };
  return { lost: 0, duplicated: 0, ambiguousCommitted: extra, unexplained: false };
}

export interface RunDemoOptions extends DemoOptions {
  write: (line: string) => void;
  warn: (line: string) => void;
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const pad = (s: string, n: number): string => (s.length >= n ? s : s + ' '.repeat(n - s.length));

/** Who to kill: a member other than the leader, the one holding most accounts (then the last to join). */
function victimOf(view: View, cluster: LocalCluster, accounts: readonly Account[]): LocalWorker | undefined {
  const running = new Set(cluster.workers.filter((w) => w.exit === null).map((w) => w.id));
  const held = (id: string): number => accounts.filter((a) => view.shards[a.shard]?.primary === id).length;
  const candidates = view.members.filter((m) => m.id !== view.leader && running.has(m.id));
  candidates.sort((x, y) => held(y.id) - held(x.id) || y.joined - x.joined);
  const pick = candidates[0]?.id;
  return cluster.workers.find((w) => w.id === pick);
}

const handingOff = (view: View): boolean => view.shards.some((s) => s.state === 'PENDING');

/**
 * Prints the views that tell the story: a change of members, leader or
 * transitional state, and the end of a wave of hand-offs (the views in
 * between move a few shards each and are skipped).
 */
function viewNarrator(write: (line: string) => void): (view: View) => void {
  let last: View | undefined;
  const ids = (v: View): string => v.members.map((m) => m.id).join(',');
  return (view) => {
    const worth =
      last === undefined ||
      view.transitional !== last.transitional ||
      view.leader !== last.leader ||
      ids(view) !== ids(last) ||
      (handingOff(last) && !handingOff(view));
    last = view;
    if (worth) write(`  ${describeView(view)}`);
  };
}

const settled = (view: View): boolean =>
  view.members.length === WORKERS && !view.transitional && view.shards.every((s) => s.state === 'ACTIVE' && s.primary !== null);

/** `cohort demo`. Resolves to the exit code: 0 only when nothing was lost or duplicated. */
export async function runDemo(options: RunDemoOptions): Promise<number> {
  const { write, warn } = options;
  const loadMs = options.seconds * 1000;
  write(
    `cohort demo: ${WORKERS} workers running the ledger, ${ACCOUNTS} accounts, deposits from ${CLIENTS} clients ` +
      `(${WINDOW} in flight each) for ${options.seconds} s; one worker is killed with SIGKILL after ${secs(loadMs * KILL_AT)}.`,
  );
  write(`membership: heartbeat every ${HEARTBEAT_INTERVAL_MS} ms, a worker silent for ${SESSION_TIMEOUT_MS} ms is dropped and its shards fail over`);
  const signal = stopSignal(warn, 'exiting now, killing what is left');
  let cluster: LocalCluster;
  try {
    cluster = await startLocalCluster({
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
      const bus = await cluster.openBus(`cohort-demo-client-${i + 1}`);
      buses.push(bus);
      clients.push(await connect({ bus, cluster: cluster.cluster, label: `demo-${i + 1}`, timeout: SEND_TIMEOUT_MS }));
    }
    const shardCount = first?.shardCount ?? 256;
    const accounts: Account[] = Array.from({ length: ACCOUNTS }, (_, i) => {
      const id = `acct-${String(i + 1).padStart(2, '0')}`;
      return { id, shard: shardOf(APP, id, shardCount), acknowledged: 0, acknowledgedCents: 0, ambiguous: [], onKilled: false };
    });
    const handles: SessionHandle[][] = clients.map((c) => accounts.map((a) => c.session(APP, a.id)));

    // Open every account (an OPEN that timed out but committed is refused the second time: open either way).
    if (!interrupted) {
      await Promise.all(
        accounts.map(async (a, i) => {
          const h = handles[i % CLIENTS]![i]!;
          for (let attempt = 1; ; attempt++) {
            try {
              await h.send({ type: 'OPEN', owner: `Owner ${a.id.slice(5)}` });
              return;
            } catch (err) {
              if (err instanceof EventRejectedError) return;
              if (attempt === 3) throw err;
            }
          }
        }),
      );
      write(`opened ${ACCOUNTS} accounts; sending deposits`);
    }

    // ---- the load
    let running = !interrupted;
    let sent = 0;
    let acknowledged = 0;
    let inFlight = 0;
    const otherErrors: Record<string, number> = {};
    const loadStart = performance.now();
    let killAt: number | undefined;
    let killed: DemoReport['killed'] = null;
    let droppedAt: number | undefined;
    let firstAckOnKilled: number | undefined;
    let ambiguousOnKilled = 0;
    /** Sends in flight, per account. */
    const inFlightOn = accounts.map(() => 0);
    let caughtByKill = 0;

    /** One deposit, counted as acknowledged or ambiguous. */
    const deposit = async (client: number, i: number, amount: number): Promise<void> => {
      const account = accounts[i]!;
      const started = performance.now();
      sent++;
      inFlight++;
      inFlightOn[i]!++;
      try {
        await handles[client]![i]!.send({ type: 'DEPOSIT', amount }, { timeout: SEND_TIMEOUT_MS });
        account.acknowledged++;
        account.acknowledgedCents += amount;
        acknowledged++;
        if (firstAckOnKilled === undefined && killAt !== undefined && account.onKilled && started >= killAt) {
          firstAckOnKilled = performance.now();
          write(
            `>>> ${secs(firstAckOnKilled - loadStart)}: ${killed?.id}'s shards are served again: first command acknowledged ` +
              `${secs(firstAckOnKilled - killAt)} after the kill` +
              (caughtByKill > 0 ? `; the ${caughtByKill} sends in flight to it wait out their ${secs(SEND_TIMEOUT_MS)} timeout (ambiguous until read back)` : ''),
          );
        }
      } catch (err) {
        account.ambiguous.push(amount);
        if (account.onKilled) ambiguousOnKilled++;
        if (!(err instanceof TimeoutError)) {
          const name = err instanceof Error ? err.name : 'unknown';
          otherErrors[name] = (otherErrors[name] ?? 0) + 1;
        }
      } finally {
        inFlight--;
        inFlightOn[i]!--;
      }
    };
    const loop = async (client: number, slot: number): Promise<void> => {
      const next = random(1 + client * 1_000 + slot);
      while (running) {
        await deposit(client, next(ACCOUNTS), 1 + next(999));
        // The memory bus delivers in microtasks: without a turn of the event loop here, a
        // send loop in this process would starve every timer (heartbeats, this status).
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    };
    /**
     * The loops may all be waiting on sends the killed worker took with it (they time out after
     * SEND_TIMEOUT_MS), so the failover is timed by probes of its own: from the kill until the
     * first acknowledgement, a fresh deposit to one of its accounts every PROBE_EVERY_MS (counted
     * like every other deposit).
     */
    const probe = async (): Promise<void> => {
      const next = random(7);
      const targets = accounts.flatMap((a, i) => (a.onKilled ? [i] : []));
      const probes: Promise<void>[] = [];
      // Past the end of the load too, should the failover take longer than what is left of it.
      while (!interrupted && firstAckOnKilled === undefined && targets.length > 0 && performance.now() - killAt! < PROBE_FOR_MS) {
        probes.push(deposit(probes.length % CLIENTS, targets[next(targets.length)]!, 1 + next(999)));
        await new Promise<void>((resolve) => setTimeout(resolve, PROBE_EVERY_MS));
      }
      await Promise.all(probes);
    };
    let probing: Promise<void> = Promise.resolve();

    const stopViews = cluster.views.subscribe((view) => {
      if (killed !== null && droppedAt === undefined && !view.members.some((m) => m.id === killed!.id)) droppedAt = performance.now();
    });
    const kill = (): void => {
      const view = cluster.views.latest;
      const victim = view === null ? undefined : victimOf(view, cluster, accounts);
      if (view === null || victim === undefined) {
        write('no worker to kill (no view, or only the leader is left)');
        return;
      }
      const shards = primariesByMember(view).get(victim.id) ?? 0;
      for (const a of accounts) a.onKilled = view.shards[a.shard]?.primary === victim.id;
      const held = accounts.filter((a) => a.onKilled).length;
      caughtByKill = accounts.reduce((n, a, i) => n + (a.onKilled ? inFlightOn[i]! : 0), 0);
      killAt = performance.now();
      victim.kill('SIGKILL');
      killed = { id: victim.id, pid: victim.pid ?? null, leader: false, atMs: killAt - loadStart, shards, accounts: held };
      write(
        `>>> ${secs(killAt - loadStart)}: killing ${victim.id} (not the leader; ` +
          `${victim.pid === undefined ? 'its connection to the in-memory bus closed' : `kill -9 ${victim.pid}`}): ` +
          `it was primary of ${shards} shards, ${held} of the ${ACCOUNTS} accounts, with ${caughtByKill} sends in flight`,
      );
      probing = probe();
    };
    const killTimer = setTimeout(kill, loadMs * KILL_AT);
    let lastTick = loadStart;
    let lastAcked = 0;
    // An onlooker's view of replica lag: the journal as it is written, and the secondaries' reports.
    const lagBus = await cluster.openBus('cohort-demo-lag');
    buses.push(lagBus);
    const lag = await watchReplicaLag(lagBus, 'demo').catch(() => undefined);
    replicaLag = lag;
    const status = setInterval(() => {
      const now = performance.now();
      const rate = ((acknowledged - lastAcked) * 1000) / (now - lastTick);
      lastTick = now;
      lastAcked = acknowledged;
      const view = cluster.views.latest;
      const counts = view === null ? new Map<string, number>() : primariesByMember(view);
      const shards = cluster.workers
        .map((w) => `${w.id} ${w.exit !== null || (view !== null && !counts.has(w.id)) ? (w.exit !== null ? 'down' : '-') : (counts.get(w.id) ?? 0)}`)
        .join(' ');
      const ambiguous = accounts.reduce((n, a) => n + a.ambiguous.length, 0);
      write(
        `${pad(secs(now - loadStart), 7)} view ${view?.viewId ?? '-'}  leader ${view?.leader ?? '-'}  ` +
          `members ${view?.members.length ?? 0}  shards ${shards}  ${pad(`${fmt(rate)} cmd/s`, 11)} ` +
          `acknowledged ${fmt(acknowledged)}  in flight ${inFlight}  ambiguous ${ambiguous}  replica lag ${lag === undefined ? '-' : lag.now()}`,
      );
    }, 1_000);
    const loops = running ? clients.flatMap((_, c) => Array.from({ length: WINDOW }, (_, s) => loop(c, s))) : [];
    const timeUp = new Promise<void>((resolve) => setTimeout(resolve, loadMs));
    await Promise.race([timeUp, signal.received.then(() => void (interrupted = true))]);
    running = false;
    clearTimeout(killTimer);
    const loadEnd = performance.now();
    if (interrupted) write(`${signal.signal}: stopping the load early`);
    else write(`${secs(loadEnd - loadStart)}: load stopped; waiting for ${inFlight} sends in flight (at most ${secs(SEND_TIMEOUT_MS)})`);
    await Promise.all([...loops, probing]);
    clearInterval(status);
    stopViews();

    // ---- read every balance back
    const reader = handles[0]!;
    const reads = await Promise.all(
      accounts.map(async (_, i) => {
        for (let attempt = 1; attempt <= 3; attempt++) {
          try {
            const r = await reader[i]!.read({ timeout: SEND_TIMEOUT_MS });
            return { seq: r.seq, balance: (r.document as { balance: number }).balance };
          } catch {
            // read again
          }
        }
        return null;
      }),
    );
    viewLines();

    let lost = 0;
    let duplicated = 0;
    let unexplained = 0;
    let ambiguousCommitted = 0;
    let balanceCents = 0;
    const problems: string[] = [];
    accounts.forEach((a, i) => {
      const r = reads[i];
      if (r === null || r === undefined) return;
      balanceCents += r.balance;
      const c = checkAccount(a, r);
      lost += c.lost;
      duplicated += c.duplicated;
      ambiguousCommitted += c.ambiguousCommitted;
      if (c.unexplained) unexplained++;
      if (c.lost > 0 || c.duplicated > 0 || c.unexplained) {
        problems.push(
          `${a.id}: balance ${r.balance} at seq ${r.seq}; acknowledged ${a.acknowledged} deposits (${a.acknowledgedCents}), ` +
            `ambiguous [${a.ambiguous.join(', ')}]`,
        );
      }
    });
    const accountsRead = reads.filter((r) => r !== null).length;
    const ambiguous = accounts.reduce((n, a) => n + a.ambiguous.length, 0);
    const acknowledgedCents = accounts.reduce((n, a) => n + a.acknowledgedCents, 0);
    const loadSeconds = (loadEnd - loadStart) / 1000;
    report = {
      transport: cluster.transport,
      accounts: ACCOUNTS,
      accountsRead,
      sent,
      acknowledged,
      acknowledgedCents,
      ambiguous,
      ambiguousCommitted,
      ambiguousNotCommitted: ambiguous - ambiguousCommitted,
      ambiguousOnKilled,
      otherErrors,
      balanceCents,
      lost,
      duplicated,
      unexplained,
      killed,
      droppedMs: droppedAt === undefined || killAt === undefined ? null : droppedAt - killAt,
      failoverMs: firstAckOnKilled === undefined || killAt === undefined ? null : firstAckOnKilled - killAt,
      replicaLagMax: replicaLag === undefined ? null : replicaLag.max,
      loadSeconds,
      commandsPerSecond: loadSeconds > 0 ? acknowledged / loadSeconds : 0,
      pids,
      interrupted,
      wallMs: 0,
      ok: false,
    };
    for (const p of problems.slice(0, 10)) write(`  ! ${p}`);
  } finally {
    replicaLag?.stop();
    await Promise.all(clients.map((c) => c.close().catch(() => {})));
    await Promise.all(buses.map((b) => b.close().catch(() => {})));
    write(`stopping the ${cluster.workers.filter((w) => w.exit === null).length} remaining workers${cluster.transport === 'nats' ? ' and the nats-server' : ''}`);
    const { forced } = await cluster.stop(10_000);
    if (forced.length > 0) warn(`did not stop in time, killed: ${forced.join(', ')}`);
    signal.dispose();
  }

  report.wallMs = performance.now();
  report.ok = !report.interrupted && report.lost === 0 && report.duplicated === 0 && report.unexplained === 0 && report.accountsRead === report.accounts;
  printReport(report, write);
  return report.ok ? 0 : 1;
}

function printReport(r: DemoReport, write: (line: string) => void): void {
  const line = (label: string, value: string): void => write(`  ${pad(label, 20)}${value}`);
  const others = Object.entries(r.otherErrors).map(([k, v]) => `${v} ${k}`);
  write('');
  write(`report (${r.transport === 'nats' ? 'worker processes on an embedded nats-server' : 'workers in this process on the in-memory bus'})`);
  line('accounts', `${r.accounts}, ${r.accountsRead === r.accounts ? 'every balance read back' : `only ${r.accountsRead} read back`}`);
  line('deposits sent', fmt(r.sent));
  line('acknowledged', `${fmt(r.acknowledged)} (${fmt(r.acknowledgedCents)} cents), ${fmt(r.commandsPerSecond)} per second`);
  line(
    'ambiguous',
    r.ambiguous === 0
      ? '0 (every send was acknowledged)'
      : `${r.ambiguous} not acknowledged in ${secs(SEND_TIMEOUT_MS)} (${r.ambiguousOnKilled} of them to accounts of the killed worker` +
          `${others.length ? `; ${others.join(', ')}` : ''}): the read-back shows ${r.ambiguousCommitted} committed, ${r.ambiguousNotCommitted} not`,
  );
  line('balances read back', `${fmt(r.balanceCents)} cents = acknowledged + ${fmt(r.balanceCents - r.acknowledgedCents)} from ambiguous sends that committed`);
  line('lost', `${r.lost}${r.lost === 0 ? ' (every acknowledged deposit is in its balance)' : ' acknowledged deposits MISSING'}`);
  line('duplicated', `${r.duplicated}${r.duplicated === 0 ? ' (no deposit applied twice)' : ' deposits APPLIED TWICE'}`);
  if (r.unexplained > 0) line('unexplained', `${r.unexplained} accounts whose balance matches no combination of their sends`);
  if (r.killed === null) line('killed', 'nobody');
  else {
    line(
      'killed',
      `${r.killed.id}${r.killed.pid === null ? '' : ` (pid ${r.killed.pid})`}, not the leader, with SIGKILL after ${secs(r.killed.atMs)}: ` +
        `primary of ${r.killed.shards} shards, ${r.killed.accounts} accounts`,
    );
    line('dropped from view', r.droppedMs === null ? 'not seen' : `${secs(r.droppedMs)} after the kill`);
    line(
      'failover',
      r.failoverMs === null
        ? 'no command on its shards was acknowledged after the kill'
        : `first command on its shards acknowledged ${secs(r.failoverMs)} after the kill (sent after it; probes every ${PROBE_EVERY_MS} ms)`,
    );
  }
  line(
    'replica lag',
    r.replicaLagMax === null ? '- (not measured)' : `at most ${fmt(r.replicaLagMax)} journal entries behind on the worst shard, sampled every second`,
  );
  line('wall time', secs(r.wallMs));
  write(
    r.ok
      ? 'PASS: nothing acknowledged was lost, nothing was applied twice'
      : `FAIL: ${r.interrupted ? 'interrupted; ' : ''}lost ${r.lost}, duplicated ${r.duplicated}, unexplained ${r.unexplained}, read back ${r.accountsRead}/${r.accounts}`,
  );
  write(`report ${JSON.stringify(r)}`);
}
