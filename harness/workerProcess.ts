import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import {
  describeExit,
  type Hosted,
  type LocalWorker,
  readableLogLine,
  type WorkerExit,
  type WorkerSettings,
  zoneOf,
} from './localWorker.js';

/**
 * A worker of a local cluster (`cohort up`, `cohort demo`, the test
 * cluster) as a `cohort worker` process of its own, so that a kill is a real
 * SIGKILL and a pause a real SIGSTOP. The process is the `cohort` command
 * itself: this file names its entry by path, it does not import it.
 */

/** The `cohort` entry (cli/main.ts under tsx, dist/cli/main.js built) and the watchdog it is started with. */
function cliEntry(): { script: string; nodeArgs: string[] } {
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  const script = fileURLToPath(new URL(`../cli/main${ext}`, import.meta.url));
  const execArgv = [...process.execArgv];
  // Run from source by something other than `node --import tsx` (vitest, say): the child still needs the loader.
  if (ext === '.ts' && !execArgv.some((a) => a.includes('tsx'))) execArgv.push('--import', 'tsx');
  const watchdog = new URL(`../cli/stopWithParent${ext}`, import.meta.url).href;
  return { script, nodeArgs: [...execArgv, '--import', watchdog] };
}

/**
 * The environment that gives a worker process `auth` and `tls`: the nats
 * CLI's variables rather than flags, so a password or token is not on a
 * command line for every user of the host to read. What the parent had of
 * them is dropped, so only these reach the worker.
 */
function connectionEnv(options: WorkerSettings): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  const vars = {
    NATS_CREDS: options.auth?.creds,
    NATS_NKEY: options.auth?.nkey,
    NATS_USER: options.auth?.user,
    NATS_PASSWORD: options.auth?.password,
    NATS_TOKEN: options.auth?.token,
    NATS_CA: options.tls?.ca,
    NATS_CERT: options.tls?.cert,
    NATS_KEY: options.tls?.key,
  };
  for (const [name, value] of Object.entries(vars)) {
    if (value === undefined) delete env[name];
    else env[name] = value;
  }
  return env;
}

export function spawnWorker(options: WorkerSettings, url: string, index: number, stopping: () => boolean): Hosted {
  const id = `w${index + 1}`;
  const zone = zoneOf(index);
  const { script, nodeArgs } = cliEntry();
  const args = [
    ...nodeArgs,
    script,
    'worker',
    ...options.apps.flatMap((a) => ['--app', a]),
    '--nats',
    url,
    '--cluster',
    options.cluster,
    '--zone',
    zone,
    '--id',
    id,
    ...(options.heartbeatInterval === undefined ? [] : ['--heartbeat-interval', String(options.heartbeatInterval)]),
    ...(options.sessionTimeout === undefined ? [] : ['--session-timeout', String(options.sessionTimeout)]),
    ...(options.storageReplicas === undefined ? [] : ['--storage-replicas', String(options.storageReplicas)]),
    ...(options.failoverQuota === undefined ? [] : ['--failover-quota', String(options.failoverQuota)]),
    ...(options.authDir === undefined ? [] : ['--nkey', join(options.authDir, 'worker.nk')]),
  ];
  // Its own process group: a terminal's Ctrl-C reaches `cohort up` alone, which then stops each worker once.
  // stdin is a pipe it watches (stopWithParent): when it closes, this process is gone.
  const child: ChildProcess = spawn(process.execPath, args, {
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
    env: { ...connectionEnv(options), COHORT_LOG_LEVEL: process.env['COHORT_LOG_LEVEL'] ?? 'warn' },
  });
  let exit: WorkerExit | null = null;
  let killed = false;
  const stderrTail: string[] = [];
  const exited = new Promise<WorkerExit>((resolve) => {
    child.once('error', (err) => {
      stderrTail.push(err.message);
      resolve({ code: null, signal: null });
    });
    child.once('close', (code, signal) => resolve({ code, signal }));
  }).then((e) => (exit = e));
  const worker: LocalWorker = {
    id,
    zone,
    get pid() {
      return child.pid;
    },
    get exit() {
      return exit;
    },
    exited,
    get killed() {
      return killed;
    },
    kill(signal) {
      killed = true;
      if (exit === null) child.kill(signal);
    },
    pause() {
      if (exit === null) child.kill('SIGSTOP');
    },
    resume() {
      if (exit === null) child.kill('SIGCONT');
    },
  };
  let serving = false;
  let onServing!: () => void;
  const servingNow = new Promise<void>((resolve) => (onServing = resolve));
  const servingLine = `worker ${id} serving `;
  createInterface({ input: child.stdout! }).on('line', (line) => {
    if (!serving && line.startsWith(servingLine)) {
      serving = true;
      onServing();
    }
    options.onLine?.(worker, line);
  });
  createInterface({ input: child.stderr! }).on('line', (line) => {
    stderrTail.push(line);
    if (stderrTail.length > 20) stderrTail.shift();
    options.onWarn?.(worker, readableLogLine(line));
  });
  child.stdin!.on('error', () => {});
  const ready = Promise.race([
    servingNow,
    exited.then((e) => {
      if (serving) return;
      throw new Error(
        `worker ${id} exited before serving (${describeExit(e)})${stderrTail.length ? `:\n${stderrTail.join('\n')}` : ''}`,
      );
    }),
  ]);
  void exited.then((e) => {
    if (serving && !killed && !stopping()) options.onUnexpectedExit?.(worker, e);
  });
  return {
    worker,
    ready,
    killNow: () => {
      if (exit === null) child.kill('SIGKILL');
    },
  };
}
