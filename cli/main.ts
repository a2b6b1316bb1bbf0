#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { CONNECTION_FLAGS, CONNECTION_USAGE, connectionSettings } from './connectionFlags.js';
import { CliUsageError } from './loadApplications.js';

// Each command's module is loaded only when it runs: natscli starts `cohort decode` once per
// message it translates, and loading every command (workers, the harness, the simulator) first
// would triple that start-up.

const USAGE = `usage: cohort <command> [options]

commands:
  demo [--seconds S] [--auth DIR]
                        the main job: a local cluster of 3 workers running the
                        ledger, 40 accounts, deposits from 4 clients, one worker
                        killed with SIGKILL midway; a live status every second,
                        then a report (acknowledged, lost, duplicated, ambiguous,
                        failover time). Exit 0 only when nothing acknowledged was
                        lost or applied twice. S: seconds of load (default 15);
                        --auth: on a nats-server admitting only DIR's users
                        (made for cluster demo when DIR has none)
  up [--workers N] [--app FILE ...] [--nats URL + connection flags]
     [--cluster NAME] [--auth DIR]
     [--session-timeout MS] [--heartbeat-interval MS]
                        a local cluster until SIGINT or SIGTERM: N workers
                        (default 3; ids w1..wN, zones a, b, c, ...) running the
                        --app modules (default the ledger example) on an embedded
                        nats-server (or the in-memory bus, in this process, when
                        none is installed); a status line per cluster view;
                        --auth: the server admits only the users of DIR (from
                        cohort auth init), each process connects as its role
  failover --shard N --to WORKER --nats URL [--cluster NAME] [--force]
           [--timeout MS]
                        ask the leader to move shard N to WORKER: planned (the
                        shard hands off, clients only retry) or --force (at
                        once, even onto a copy not synchronized; the view
                        records possible data loss); follows the views until
                        the shard is ACTIVE there
  reset-failover --nats URL [--cluster NAME] [--timeout MS]
                        reset the automatic-failover quota: members dropped
                        for silence are no longer counted, and a failover
                        halted by the quota runs again (silent members held
                        in the view are dropped, their shards fail over);
                        prints the first view written after it
  doctor [--nats URL]   check every bus capability once against a NATS server
                        (default: an embedded nats-server, or the in-memory bus
                        when no nats-server is installed) and print a table
  worker --app FILE [--app FILE ...] [--nats URL[,URL...]] [--cluster NAME]
         [--zone ZONE] [--no-promote] [--id ID]
         [--session-timeout MS] [--heartbeat-interval MS] [--storage-replicas N]
         [--reconnect-interval MS] [--failover-quota N]
         [--failover-window MS] [--min-members N] [--stable-after MS]
         [--unstable-after MS] [--failure-condition 1|2|3]
         [--health-check-timeout MS] [--metrics-port PORT]
         [--patches watched|always] [--batch-max N] [--batch-bytes N]
                        host the applications each FILE exports (.js, or .ts
                        through tsx) until SIGINT or SIGTERM; --cluster defaults
                        to demo; without --nats, an embedded nats-server (or the
                        in-memory bus, alone, when none is installed);
                        membership: heartbeat every MS (default 500), dropped
                        after MS of silence (default 3000, at least 500); after
                        losing NATS, a reconnect attempt every MS plus jitter of
                        up to 1.5 times as much (default 100), for ever;
                        safeguards: at most N members dropped for silence
                        per window (default 3 per 600000 ms; then automatic
                        failover halts until cohort reset-failover), never
                        fewer than N live members left (default 1), no
                        rebalancing while the membership has kept changing
                        for MS (default 120000) until still for MS (default
                        30000); give every worker the same; health: a worker
                        whose session mailbox is stuck (level 2), or whose
                        journal appends fail or lease is lost (level 3, the
                        default), for MS (default 10000, at least the session
                        timeout) steps down while another member is healthy,
                        and rejoins once its journal answers; level 1:
                        heartbeats only; --metrics-port serves /metrics
                        (Prometheus), /healthz and /readyz on PORT (0: any
                        free port, shown in the startup line); --patches
                        always publishes every patch, for a bare nats sub
                        on the evt subjects (default watched: only while a
                        client subscribes to the session); group commit:
                        at most N commands (default 64; 1: none) and N bytes
                        of requests (default 262144) in one journal message
  simulate [--app FILE ...] [--seeds A-B | --seed N] [--duration MS]
           [--faults none|all|LIST] [--workload FILE] [--workers N]
           [--clients N] [--shards N] [--session-timeout MS]
           [--heartbeat-interval MS] [--trace]
                        deterministic whole-cluster simulation: the --app
                        modules (default the ledger example) on workers and
                        clients in this process, on virtual time, with faults
                        drawn from each seed (default seeds 1-100, 60000 ms,
                        no faults; LIST: kill=0.2,pause=0.2,partition=0.2,
                        drop=0.01,delay=0-40,duplicate=0.01,reorder,
                        busRestart=0.1); every operation checked. Prints
                        progress, each failing seed's first violation and the
                        command that replays it, and a summary; --trace (with
                        --seed) prints everything the run did. Exit 0 only
                        when every seed passed
  subject APP ID [--cluster NAME] [--read] [--label L]
         [--nats URL + connection flags | --shards N]
                        print the subject the session's commands (--read: its
                        reads) go to, for \`nats req -H
                        Content-Type:application/json\`: the shard from the
                        cluster's recorded shard count (or --shards N); the
                        sender's label L is the last token (default admin,
                        the operator)
  status [--watch]      the cluster: view, leader, members (zone, state, shards,
                        last heartbeat, replica lag), shards not ACTIVE
  sessions APP [--shard N] [--active]
                        the sessions of APP in storage: seq, snapshot size,
                        journal entries, the worker serving each
  inspect APP ID [--last N]
                        one session: document, state, seq, timers, its last N
                        journal entries decoded, the worker holding it
  tail [APP [ID]]       live journal entries and patches, one line each
  drain WORKER          hand off every shard of WORKER, then it leaves and stops
  rebalance [--dry-run] the moves that balance the primaries; follows the
                        leader's hand-offs until balanced
                        (each of these: --nats URL, --cluster NAME, --json;
                        cohort COMMAND --help for its own usage)
  auth init --cluster NAME --out DIR [--client LABEL ...]
                        nkey users for the cluster's roles (worker, admin,
                        reader, one client-LABEL per --client): a seed file per
                        user (DIR/<user>.nk, mode 0600) and DIR/auth.conf, the
                        nats-server authorization block granting each role only
                        what it needs, for an \`include\`; refuses to overwrite
  auth add-client LABEL --out DIR
                        a new client user in DIR: its seed file, and auth.conf
                        regenerated with every existing key kept
  decode                one cohort payload (msgpack, JSON, decimal text) on
                        stdin as JSON on stdout, for natscli's
                        --translate 'cohort decode'

${CONNECTION_USAGE}
every command: --help (its usage), --log-level LEVEL (fatal, error, warn, info,
debug, trace, silent; also COHORT_LOG_LEVEL); cohort --version
exit codes: 0 ok, 1 failure, 2 wrong usage (unknown command or flag, bad --app)
`;

function write(line: string): void {
  process.stdout.write(line + '\n');
}

function warn(line: string): void {
  process.stderr.write(line + '\n');
}

/** A wrong flag or argument: parseArgs' own errors, and ours. */
function usageProblem(err: unknown): { message: string; showUsage: boolean } | undefined {
  if (err instanceof CliUsageError) return { message: err.message, showUsage: err.showUsage };
  const code = (err as { code?: unknown } | null)?.code;
  if (err instanceof TypeError && typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_')) {
    return { message: err.message, showUsage: true };
  }
  return undefined;
}

/** The usage of one command: its own text, or its entries of USAGE. */
async function commandUsage(command: string): Promise<string | undefined> {
  const own: Record<string, () => Promise<string>> = {
    status: async () => (await import('./status.js')).STATUS_USAGE,
    sessions: async () => (await import('./sessions.js')).SESSIONS_USAGE,
    inspect: async () => (await import('./inspect.js')).INSPECT_USAGE,
    tail: async () => (await import('./tail.js')).TAIL_USAGE,
    drain: async () => (await import('./drain.js')).DRAIN_USAGE,
    rebalance: async () => (await import('./rebalance.js')).REBALANCE_USAGE,
  };
  const text = own[command];
  if (text !== undefined) return `${await text()}\n${CONNECTION_USAGE}`;
  const lines = USAGE.split('\n');
  const out: string[] = [];
  let inside = false;
  for (const line of lines) {
    if (/^  [a-z]/.test(line)) inside = line === `  ${command}` || line.startsWith(`  ${command} `);
    else if (!/^   /.test(line)) inside = false;
    if (inside) out.push(line);
  }
  if (out.length === 0) return undefined;
  const connects = !['simulate', 'auth'].includes(command);
  return `usage: cohort ${command} [options]\n\n${out.join('\n')}\n${connects ? `\n${CONNECTION_USAGE}` : ''}\n--log-level LEVEL: fatal, error, warn, info, debug, trace or silent\n`;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** `--log-level L` anywhere in `rest`: taken out, and set as COHORT_LOG_LEVEL, which every logger (and worker process) reads. */
function takeLogLevel(rest: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!;
    let level: string | undefined;
    if (arg === '--log-level') {
      level = rest[++i];
      if (level === undefined) throw new CliUsageError('--log-level needs a level', { showUsage: true });
    } else if (arg.startsWith('--log-level=')) level = arg.slice('--log-level='.length);
    else {
      out.push(arg);
      continue;
    }
    if (!LOG_LEVELS.includes(level))
      throw new CliUsageError(`--log-level ${JSON.stringify(level)}: one of ${LOG_LEVELS.join(', ')}`);
    process.env['COHORT_LOG_LEVEL'] = level;
  }
  return out;
}

function packageVersion(): string {
  for (const up of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as {
        name?: unknown;
        version?: unknown;
      };
      if (pkg.name === 'cohort' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // Not there: built into dist/, one level further down.
    }
  }
  return 'unknown';
}

const io = { write, warn };

async function run(command: string | undefined, args: string[]): Promise<number> {
  if (command !== undefined && (args.includes('--help') || args.includes('-h'))) {
    const usage = await commandUsage(command);
    if (usage !== undefined) {
      process.stdout.write(usage);
      return 0;
    }
  }
  const rest = takeLogLevel(args);
  switch (command) {
    case '--version':
    case '-v':
    case 'version':
      write(`cohort ${packageVersion()}`);
      return 0;
    case 'status': {
      const m = await import('./status.js');
      return m.runStatus({ ...m.parseStatusArgs(rest), ...io });
    }
    case 'sessions': {
      const m = await import('./sessions.js');
      return m.runSessions({ ...m.parseSessionsArgs(rest), ...io });
    }
    case 'inspect': {
      const m = await import('./inspect.js');
      return m.runInspect({ ...m.parseInspectArgs(rest), ...io });
    }
    case 'tail': {
      const m = await import('./tail.js');
      return m.runTail({ ...m.parseTailArgs(rest), ...io });
    }
    case 'drain': {
      const m = await import('./drain.js');
      return m.runDrain({ ...m.parseDrainArgs(rest), ...io });
    }
    case 'rebalance': {
      const m = await import('./rebalance.js');
      return m.runRebalance({ ...m.parseRebalanceArgs(rest), ...io });
    }
    case 'doctor': {
      const { values } = parseArgs({ args: rest, options: CONNECTION_FLAGS, strict: true });
      return (await import('./doctor.js')).runDoctor({ ...connectionSettings(values), write });
    }
    case 'worker': {
      const m = await import('./worker.js');
      const code = await m.runWorker({ ...m.parseWorkerArgs(rest), write, warn });
      // A stopped worker has nothing left to do: should a stray timer or socket still hold
      // the event loop (say, a session whose last snapshot could not be written), exit anyway.
      setTimeout(() => process.exit(code), 2_000).unref();
      return code;
    }
    case 'auth':
      return (await import('./auth.js')).runAuth(rest, { write });
    case 'failover': {
      const m = await import('./failover.js');
      return m.runFailover({ ...m.parseFailoverArgs(rest), write, warn });
    }
    case 'reset-failover': {
      const m = await import('./resetFailover.js');
      return m.runResetFailover({ ...m.parseResetFailoverArgs(rest), write, warn });
    }
    case 'up': {
      const m = await import('./up.js');
      const code = await m.runUp({ ...m.parseUpArgs(rest), write, warn });
      setTimeout(() => process.exit(code), 2_000).unref();
      return code;
    }
    case 'decode':
      parseArgs({ args: rest, options: {}, strict: true });
      return (await import('./decode.js')).runDecode({
        stdin: process.stdin,
        out: (text) => process.stdout.write(text),
      });
    case 'simulate': {
      const m = await import('./simulate.js');
      return m.runSimulate({ ...m.parseSimulateArgs(rest), write, warn });
    }
    case 'subject': {
      const m = await import('./subject.js');
      return m.runSubject({ ...m.parseSubjectArgs(rest), write, warn });
    }
    case 'demo': {
      const m = await import('./demo.js');
      const code = await m.runDemo({ ...m.parseDemoArgs(rest), write, warn });
      setTimeout(() => process.exit(code), 2_000).unref();
      return code;
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return command === undefined ? 1 : 0;
    default:
      process.stderr.write(`cohort: unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
      return 2;
  }
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    return await run(command, rest);
  } catch (err) {
    const problem = usageProblem(err);
    if (problem === undefined) throw err;
    const usage = (command === undefined ? undefined : await commandUsage(command)) ?? USAGE;
    process.stderr.write(`cohort ${command}: ${problem.message}\n${problem.showUsage ? `\n${usage}` : ''}`);
    return 2;
  }
}

// Until main settles, an exit (say, an event loop that ran dry mid-check) is a failure.
// A worker's main settles only once it has been signalled and has stopped.
process.exitCode = 1;
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`cohort: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
