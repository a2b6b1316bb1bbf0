import type { SessionHandle } from '../index.js';
import { checkTally, type Operation, tallyBySession } from '../harness/history.js';
import { type Account, SEND_TIMEOUT_MS } from './demoLoad.js';
import { type KilledWorker, PROBE_EVERY_MS } from './demoKill.js';
import { fmt, pad, secs } from './demoStatus.js';

/**
 * The end of the demo: every balance read back and checked against the
 * history of deposits with the harness's checker (harness/history.ts), and
 * the report that says what was found.
 */

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
  killed: KilledWorker | null;
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

export interface Balance {
  /** The account's events: OPEN is 1, then one per deposit committed. */
  readonly seq: number;
  readonly balance: number;
}

/** Every account's balance, read up to three times each; null for one that could not be read. */
export function readBalances(reader: readonly SessionHandle[]): Promise<(Balance | null)[]> {
  return Promise.all(
    reader.map(async (handle) => {
      for (let attempt = 1; attempt <= 3; attempt++) {
        try {
          const r = await handle.read({ timeout: SEND_TIMEOUT_MS });
          return { seq: r.seq, balance: (r.document as { balance: number }).balance };
        } catch {
          // read again
        }
      }
      return null;
    }),
  );
}

export type ReadBackCheck = Pick<
  DemoReport,
  | 'accountsRead'
  | 'acknowledgedCents'
  | 'ambiguous'
  | 'ambiguousCommitted'
  | 'ambiguousNotCommitted'
  | 'balanceCents'
  | 'lost'
  | 'duplicated'
  | 'unexplained'
> & {
  /** One line per account that lost or duplicated deposits, or whose balance is unexplained. */
  readonly problems: readonly string[];
};

/**
 * Account by account: the deposits the history shows acknowledged must all
 * be in the balance, and the rest of it must be made up of some of the
 * ambiguous ones (checkTally).
 */
export function checkReadBack(
  accounts: readonly Account[],
  history: { readonly operations: readonly Operation[]; readonly amountOf: (op: Operation) => number },
  reads: readonly (Balance | null)[],
): ReadBackCheck {
  const tallies = tallyBySession(history.operations, history.amountOf);
  const none = { acknowledged: 0, acknowledgedSum: 0, failed: [] };
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
    const t = tallies.get(a.id) ?? none;
    const c = checkTally(t, { applied: r.seq - 1, sum: r.balance });
    lost += c.lost;
    duplicated += c.duplicated;
    ambiguousCommitted += c.failedApplied;
    if (c.unexplained) unexplained++;
    if (c.lost > 0 || c.duplicated > 0 || c.unexplained) {
      problems.push(
        `${a.id}: balance ${r.balance} at seq ${r.seq}; acknowledged ${t.acknowledged} deposits (${t.acknowledgedSum}), ` +
          `ambiguous [${t.failed.join(', ')}]`,
      );
    }
  });
  const all = accounts.map((a) => tallies.get(a.id) ?? none);
  const ambiguous = all.reduce((n, t) => n + t.failed.length, 0);
  return {
    accountsRead: reads.filter((r) => r !== null).length,
    acknowledgedCents: all.reduce((n, t) => n + t.acknowledgedSum, 0),
    ambiguous,
    ambiguousCommitted,
    ambiguousNotCommitted: ambiguous - ambiguousCommitted,
    balanceCents,
    lost,
    duplicated,
    unexplained,
    problems,
  };
}

export function printReport(r: DemoReport, write: (line: string) => void): void {
  const line = (label: string, value: string): void => write(`  ${pad(label, 20)}${value}`);
  const others = Object.entries(r.otherErrors).map(([k, v]) => `${v} ${k}`);
  write('');
  write(
    `report (${r.transport === 'nats' ? 'worker processes on an embedded nats-server' : 'workers in this process on the in-memory bus'})`,
  );
  line(
    'accounts',
    `${r.accounts}, ${r.accountsRead === r.accounts ? 'every balance read back' : `only ${r.accountsRead} read back`}`,
  );
  line('deposits sent', fmt(r.sent));
  line(
    'acknowledged',
    `${fmt(r.acknowledged)} (${fmt(r.acknowledgedCents)} cents), ${fmt(r.commandsPerSecond)} per second`,
  );
  line(
    'ambiguous',
    r.ambiguous === 0
      ? '0 (every send was acknowledged)'
      : `${r.ambiguous} not acknowledged in ${secs(SEND_TIMEOUT_MS)} (${r.ambiguousOnKilled} of them to accounts of the killed worker` +
          `${others.length ? `; ${others.join(', ')}` : ''}): the read-back shows ${r.ambiguousCommitted} committed, ${r.ambiguousNotCommitted} not`,
  );
  line(
    'balances read back',
    `${fmt(r.balanceCents)} cents = acknowledged + ${fmt(r.balanceCents - r.acknowledgedCents)} from ambiguous sends that committed`,
  );
  line(
    'lost',
    `${r.lost}${r.lost === 0 ? ' (every acknowledged deposit is in its balance)' : ' acknowledged deposits MISSING'}`,
  );
  line(
    'duplicated',
    `${r.duplicated}${r.duplicated === 0 ? ' (no deposit applied twice)' : ' deposits APPLIED TWICE'}`,
  );
  if (r.unexplained > 0)
    line('unexplained', `${r.unexplained} accounts whose balance matches no combination of their sends`);
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
    r.replicaLagMax === null
      ? '- (not measured)'
      : `at most ${fmt(r.replicaLagMax)} journal entries behind on the worst shard, sampled every second`,
  );
  line('wall time', secs(r.wallMs));
  write(
    r.ok
      ? 'PASS: nothing acknowledged was lost, nothing was applied twice'
      : `FAIL: ${r.interrupted ? 'interrupted; ' : ''}lost ${r.lost}, duplicated ${r.duplicated}, unexplained ${r.unexplained}, read back ${r.accountsRead}/${r.accounts}`,
  );
  write(`report ${JSON.stringify(r)}`);
}
