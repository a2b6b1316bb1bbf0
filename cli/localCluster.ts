import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { type Bus, createLogger, createMemoryBus, createMemoryServer, createNatsBus, type KvWatch, startWorker, type View, type Worker } from '../index.js';
import { bucketName, decode, unpackView, VIEW_KEY } from '../internal.js';
import { FALLBACK_DIRS, findNatsServerBinary } from '../harness/natsServerBinary.js';
import { startNatsServer, type NatsServer } from '../harness/natsServer.js';
import { loadApplications } from './loadApplications.js';

/**
 * A cluster on this host, for `cohort up` and `cohort demo`: a nats-server
 * (embedded unless one is given) and N `cohort worker` processes, or, when
 * no nats-server is installed, N workers in this process on one in-memory
 * server. Either way the view is watched from here, by a reader that is not
 * a member.
 */

export interface WorkerExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface LocalWorker {
  /** Its worker id, which is also its member id in the view (w1, w2, ...). */
  readonly id: string;
  readonly zone: string;
  /** Its process id; undefined for a worker hosted in this process (memory bus). */
  readonly pid: number | undefined;
  /** Null while it runs. */
  readonly exit: WorkerExit | null;
  readonly exited: Promise<WorkerExit>;
  /** True once kill() was called (its end is then expected). */
  readonly killed: boolean;
  /**
   * SIGTERM: a clean stop (its shards are handed off first). SIGKILL: a crash;
   * on the memory bus, its connection is closed without a word.
   */
  kill(signal: 'SIGTERM' | 'SIGKILL'): void;
  /** SIGSTOP: frozen, its connection left open, as a long GC pause or a stopped VM. Worker processes only. */
  pause(): void;
  /** SIGCONT: it runs on from where it was, with whatever queued up meanwhile. */
  resume(): void;
}

export interface ViewFeed {
  /** The newest view seen; null before the first is written. */
  readonly latest: View | null;
  /** Called with every newer view, in order. Returns an unsubscribe. */
  subscribe(listener: (view: View) => void): () => void;
  /** The latest view if it passes `test`, else the first newer one that does; rejects after `timeoutMs`. */
  until(test: (view: View) => boolean, timeoutMs: number, what: string): Promise<View>;
}

export interface LocalClusterOptions {
  /** How many workers: ids w1..wN, zones a, b, c, ... */
  workers: number;
  /** Modules exporting the applications, as absolute paths. */
  apps: string[];
  /** An existing server; undefined: an embedded nats-server, or the memory bus when none is installed. */
  nats: string[] | undefined;
  /** One process on the in-memory bus even where nats-server is installed (tests of the memory transport). */
  memory?: boolean;
  cluster: string;
  heartbeatInterval?: number | undefined;
  sessionTimeout?: number | undefined;
  /** Lines about the cluster itself (which server, the memory fallback). */
  write(line: string): void;
  /** A line a worker printed (stdout). */
  onLine?(worker: LocalWorker, line: string): void;
  /** A log line a worker wrote at warn or above (stderr), made readable. */
  onWarn?(worker: LocalWorker, line: string): void;
  /** A worker ended that was neither killed nor stopped by stop(). */
  onUnexpectedExit?(worker: LocalWorker, exit: WorkerExit): void;
}

export interface LocalCluster {
  readonly transport: 'nats' | 'memory';
  /** The server's URL(s), comma-separated; undefined on the memory bus. */
  readonly url: string | undefined;
  readonly cluster: string;
  readonly workers: readonly LocalWorker[];
  readonly views: ViewFeed;
  /** A new connection to the cluster's server, for clients in this process. The caller closes it. */
  openBus(name: string): Promise<Bus>;
  /** Starts one more worker (the next id and zone); resolves once it serves. */
  addWorker(): Promise<LocalWorker>;
  /** SIGTERM to every worker still running, waiting for each (SIGKILL after `graceMs`), then the server. Returns who had to be killed. */
  stop(graceMs?: number): Promise<{ forced: string[] }>;
}

/** A worker that has not stopped this long after SIGTERM is killed (a clean leave is bounded by 10 s). */
const DEFAULT_STOP_GRACE_MS = 15_000;
/** Workers print their "serving" line once a view lists them. */
const START_TIMEOUT_MS = 30_000;

/** a, b, c, ... z, then a2, b2, ... */
export function zoneOf(index: number): string {
  const letter = String.fromCharCode(97 + (index % 26));
  return index < 26 ? letter : `${letter}${Math.floor(index / 26) + 1}`;
}

/** `{"level":40,"msg":"...","err":{...}}` from pino becomes `warn: ... (TypeError: ...)`; other text stays as it is. */
export function readableLogLine(line: string): string {
  let entry: unknown;
  try {
    entry = JSON.parse(line);
  } catch {
    return line;
  }
  if (typeof entry !== 'object' || entry === null || typeof (entry as { msg?: unknown }).msg !== 'string') return line;
  const e = entry as { level?: number; msg: string; err?: { type?: string; message?: string } };
  const level = e.level === undefined ? 'log' : e.level >= 60 ? 'fatal' : e.level >= 50 ? 'error' : e.level >= 40 ? 'warn' : 'info';
  const err = e.err?.message === undefined ? '' : ` (${e.err.type ?? 'Error'}: ${e.err.message})`;
  return `${level}: ${e.msg}${err}`;
}

class Views implements ViewFeed {
  latest: View | null = null;
  readonly #listeners = new Set<(view: View) => void>();

  offer(view: View): void {
    if (this.latest !== null && view.viewId <= this.latest.viewId) return;
    this.latest = view;
    for (const l of [...this.#listeners]) l(view);
  }

  subscribe(listener: (view: View) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  until(test: (view: View) => boolean, timeoutMs: number, what: string): Promise<View> {
    if (this.latest !== null && test(this.latest)) return Promise.resolve(this.latest);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        stop();
        reject(new Error(`no view with ${what} after ${timeoutMs} ms (latest: ${this.latest === null ? 'none' : `view ${this.latest.viewId}`})`));
      }, timeoutMs);
      const stop = this.subscribe((view) => {
        if (!test(view)) return;
        clearTimeout(timer);
        stop();
        resolve(view);
      });
    });
  }
}

async function watchViews(bus: Bus, cluster: string, views: Views): Promise<KvWatch> {
  const kv = await bus.kv({ bucket: bucketName(cluster, 'cluster') });
  return kv.watch({ key: VIEW_KEY }, (entry) => {
    if (entry.operation !== 'PUT') return;
    try {
      views.offer(unpackView(decode(entry.value, { where: `view revision ${entry.revision}` })));
    } catch {
      // Not a view this version reads: the workers say so in their logs.
    }
  });
}

/** The `cohort` entry this process runs (cli/main.ts under tsx, dist/cli/main.js built). */
function cliEntry(): { script: string; nodeArgs: string[] } {
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  const script = fileURLToPath(new URL(`./main${ext}`, import.meta.url));
  const execArgv = [...process.execArgv];
  // Run from source by something other than `node --import tsx` (vitest, say): the child still needs the loader.
  if (ext === '.ts' && !execArgv.some((a) => a.includes('tsx'))) execArgv.push('--import', 'tsx');
  const watchdog = new URL(`./stopWithParent${ext}`, import.meta.url).href;
  return { script, nodeArgs: [...execArgv, '--import', watchdog] };
}

interface Hosted {
  readonly worker: LocalWorker;
  /** Resolves once it serves; rejects when it ends first. */
  readonly ready: Promise<void>;
  /** For the exit hook: kill at once, synchronously. */
  killNow(): void;
}

function spawnWorker(options: LocalClusterOptions, url: string, index: number, stopping: () => boolean): Hosted {
  const id = `w${index + 1}`;
  const zone = zoneOf(index);
  const { script, nodeArgs } = cliEntry();
  const args = [
    ...nodeArgs,
    script,
    'worker',
    ...options.apps.flatMap((a) => ['--app', a]),
    '--nats', url,
    '--cluster', options.cluster,
    '--zone', zone,
    '--id', id,
    ...(options.heartbeatInterval === undefined ? [] : ['--heartbeat-interval', String(options.heartbeatInterval)]),
    ...(options.sessionTimeout === undefined ? [] : ['--session-timeout', String(options.sessionTimeout)]),
  ];
  // Its own process group: a terminal's Ctrl-C reaches `cohort up` alone, which then stops each worker once.
  // stdin is a pipe it watches (stopWithParent): when it closes, this process is gone.
  const child: ChildProcess = spawn(process.execPath, args, {
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
    env: { ...process.env, COHORT_LOG_LEVEL: process.env['COHORT_LOG_LEVEL'] ?? 'warn' },
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
      throw new Error(`worker ${id} exited before serving (${describeExit(e)})${stderrTail.length ? `:\n${stderrTail.join('\n')}` : ''}`);
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

/** An in-process worker cannot be frozen: its timers and promises share this process. */
function notPausable(id: string): never {
  throw new Error(`worker ${id} runs in this process: only a worker process can be paused`);
}

function hostWorker(options: LocalClusterOptions, server: ReturnType<typeof createMemoryServer>, index: number, load: Promise<Awaited<ReturnType<typeof loadApplications>>>): Hosted {
  const id = `w${index + 1}`;
  const zone = zoneOf(index);
  const bus = createMemoryBus({ server });
  let exit: WorkerExit | null = null;
  let killed = false;
  let onExit!: (e: WorkerExit) => void;
  const exited = new Promise<WorkerExit>((resolve) => (onExit = resolve)).then((e) => (exit = e));
  let started: Worker | undefined;
  let crashed = false;
  const worker: LocalWorker = {
    id,
    zone,
    pid: undefined,
    get exit() {
      return exit;
    },
    exited,
    get killed() {
      return killed;
    },
    kill(signal) {
      if (killed || exit !== null) return;
      killed = true;
      const w = started;
      if (signal === 'SIGKILL') {
        crashed = true;
        // A crash: the connection goes first, so the worker cannot hand anything off; then its timers are stopped.
        void bus
          .close()
          .then(() => w?.stop())
          .catch(() => {})
          .then(() => onExit({ code: null, signal: 'SIGKILL' }));
      } else {
        options.onLine?.(worker, `${signal}: stopping worker ${id}`);
        void (w?.stop() ?? Promise.resolve())
          .then(() => bus.close())
          .then(
            () => {
              options.onLine?.(worker, `worker ${id} stopped`);
              onExit({ code: 0, signal: null });
            },
            () => onExit({ code: 1, signal: null }),
          );
      }
    },
    pause: () => notPausable(id),
    resume: () => notPausable(id),
  };
  const ready = (async () => {
    const applications = await load;
    started = await startWorker({
      bus,
      cluster: options.cluster,
      applications,
      id,
      zone,
      ...(options.heartbeatInterval !== undefined && { heartbeatInterval: options.heartbeatInterval }),
      ...(options.sessionTimeout !== undefined && { sessionTimeout: options.sessionTimeout }),
      // Its log lines go where a worker process's stderr would; a killed worker says nothing more.
      logger: createLogger({
        level: process.env['COHORT_LOG_LEVEL'] ?? 'warn',
        destination: {
          write: (text: string) => {
            if (crashed) return;
            for (const line of text.split('\n')) if (line !== '') options.onWarn?.(worker, readableLogLine(line));
          },
        },
      }),
    });
    options.onLine?.(worker, `worker ${id} serving ${applications.map((a) => a.name).join(', ')} on the in-memory bus (cluster ${options.cluster}, zone ${zone})`);
  })();
  ready.catch(() => {
    onExit({ code: 1, signal: null });
    void bus.close().catch(() => {});
  });
  return { worker, ready, killNow: () => void bus.close().catch(() => {}) };
}

export function describeExit(exit: WorkerExit): string {
  return exit.signal !== null ? `killed by ${exit.signal}` : exit.code === null ? 'could not start' : `exit code ${exit.code}`;
}

/**
 * Starts the server (unless given), the view reader and the workers;
 * resolves once every worker serves. On failure everything started is
 * stopped again and the error thrown.
 */
export async function startLocalCluster(options: LocalClusterOptions): Promise<LocalCluster> {
  let server: NatsServer | undefined;
  let memory: ReturnType<typeof createMemoryServer> | undefined;
  let url: string | undefined;
  if (options.nats !== undefined) {
    url = options.nats.join(',');
  } else if (options.memory === true) {
    options.write(`all ${options.workers} workers run in this process on one in-memory bus`);
    memory = createMemoryServer();
  } else if (findNatsServerBinary() === null) {
    const env = process.env['NATS_SERVER_BIN'];
    options.write(
      env
        ? `NATS_SERVER_BIN=${env} is not an executable nats-server,`
        : `no nats-server on PATH or in ${FALLBACK_DIRS.join(', ')},`,
    );
    options.write(
      `so ${options.workers === 1 ? 'the worker runs' : `all ${options.workers} workers run`} in this process on one in-memory bus (nothing outside this process can reach them; ` +
        'install nats-server, apt-get install nats-server, for worker processes).',
    );
    memory = createMemoryServer();
  } else {
    server = await startNatsServer();
    url = server.url;
    options.write(`embedded nats-server ${server.version} at ${url} (JetStream in a temporary directory, removed on stop)`);
  }

  let stopping = false;
  const hosted: Hosted[] = [];
  const killAll = (): void => hosted.forEach((h) => h.killNow());
  process.on('exit', killAll);
  const views = new Views();
  let viewBus: Bus | undefined;
  let watch: KvWatch | undefined;
  const openBus = (name: string): Promise<Bus> =>
    memory !== undefined ? Promise.resolve(createMemoryBus({ server: memory })) : createNatsBus({ servers: url!.split(','), name });

  const stop = async (graceMs = DEFAULT_STOP_GRACE_MS): Promise<{ forced: string[] }> => {
    stopping = true;
    const forced: string[] = [];
    // A terminal's Ctrl-C reaches the embedded nats-server too (it is in our process group): once it
    // is gone there is nobody to hand off to and nothing to keep, so waiting for a clean leave is pointless.
    let poll: NodeJS.Timeout | undefined;
    let saidGone = false;
    const serverGone = new Promise<'gone'>((resolve) => {
      if (server === undefined) return;
      const check = (): void => {
        if (server!.running) poll = setTimeout(check, 100);
        else resolve('gone');
      };
      check();
    });
    await Promise.all(
      hosted.map(async (h) => {
        const { worker } = h;
        if (worker.exit !== null) return;
        worker.kill('SIGTERM');
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), graceMs)));
        const outcome = await Promise.race([worker.exited, late, serverGone]);
        clearTimeout(timer);
        if (outcome === 'late') forced.push(worker.id);
        if (outcome === 'gone' && !saidGone) {
          saidGone = true;
          options.write('the nats-server has gone (a Ctrl-C reaches it too): with nobody left to hand off to, the workers are killed');
        }
        if (outcome === 'late' || outcome === 'gone') {
          h.killNow();
          await worker.exited;
        }
      }),
    );
    clearTimeout(poll);
    watch?.stop();
    if (server !== undefined && !server.running) void viewBus?.close().catch(() => {}); // closing against a dead server only waits
    else await viewBus?.close().catch(() => {});
    await server?.[Symbol.asyncDispose]();
    process.off('exit', killAll);
    return { forced };
  };

  const load = memory !== undefined ? loadApplications(options.apps) : undefined;
  const launch = (): Hosted => {
    const h = memory !== undefined ? hostWorker(options, memory, hosted.length, load!) : spawnWorker(options, url!, hosted.length, () => stopping);
    hosted.push(h);
    return h;
  };
  try {
    viewBus = await openBus(`cohort-${options.cluster}-view-reader`);
    watch = await watchViews(viewBus, options.cluster, views);
    for (let i = 0; i < options.workers; i++) launch();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the workers did not all serve within ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS);
    });
    try {
      await Promise.race([Promise.all(hosted.map((h) => h.ready)), late]);
    } finally {
      clearTimeout(timer);
    }
  } catch (err) {
    await stop(2_000).catch(() => {});
    throw err;
  }

  return {
    transport: memory !== undefined ? 'memory' : 'nats',
    url,
    cluster: options.cluster,
    get workers() {
      return hosted.map((h) => h.worker);
    },
    views,
    openBus,
    addWorker: async () => {
      const h = launch();
      await h.ready;
      return h.worker;
    },
    stop,
  };
}
