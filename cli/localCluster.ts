import { type Bus, createMemoryBus, createMemoryServer, createNatsBus, type KvWatch } from '../index.js';
import { FALLBACK_DIRS, findNatsServerBinary } from '../harness/natsServerBinary.js';
import { startNatsServer, type NatsServer } from '../harness/natsServer.js';
import { adminInbox, clientInbox } from '../internal.js';
import { authFor, startAuthServer } from './authServer.js';
import { loadApplications } from './loadApplications.js';
import type { Hosted, LocalWorker, WorkerSettings } from '../harness/localWorker.js';
import { hostWorker } from './memoryWorker.js';
import { type ViewFeed, Views, watchViews } from '../harness/viewFeed.js';
import { spawnWorker } from '../harness/workerProcess.js';

export { describeExit, type LocalWorker, type WorkerExit } from '../harness/localWorker.js';
export type { ViewFeed } from '../harness/viewFeed.js';

/**
 * A cluster on this host, for `cohort up` and `cohort demo`: a nats-server
 * (embedded unless one is given) and N `cohort worker` processes, or, when
 * no nats-server is installed, N workers in this process on one in-memory
 * server. Either way the view is watched from here, by a reader that is not
 * a member.
 */

export interface LocalClusterOptions extends WorkerSettings {
  /** How many workers: ids w1..wN, zones a, b, c, ... */
  workers: number;
  /** An existing server; undefined: an embedded nats-server, or the memory bus when none is installed. */
  nats: string[] | undefined;
  /** One process on the in-memory bus even where nats-server is installed (tests of the memory transport). */
  memory?: boolean;
  /**
   * A `cohort auth init` directory: the embedded nats-server admits only its
   * users, workers connect as `worker`, the view reader as `admin`, clients
   * opened with a label as `client-LABEL`. With `nats`, that server's
   * configuration must include the directory's auth.conf.
   */
  authDir?: string | undefined;
  /** Lines about the cluster itself (which server, the memory fallback). */
  write(line: string): void;
}

export interface LocalCluster {
  readonly transport: 'nats' | 'memory';
  /** The server's URL(s), comma-separated; undefined on the memory bus. */
  readonly url: string | undefined;
  readonly cluster: string;
  readonly workers: readonly LocalWorker[];
  readonly views: ViewFeed;
  /**
   * A new connection to the cluster's server, for clients in this process (as
   * `client-LABEL` with authDir; without a label, as `admin`). The caller closes it.
   */
  openBus(name: string, label?: string): Promise<Bus>;
  /** Starts one more worker (the next id and zone); resolves once it serves. */
  addWorker(): Promise<LocalWorker>;
  /** SIGTERM to every worker still running, waiting for each (SIGKILL after `graceMs`), then the server. Returns who had to be killed. */
  stop(graceMs?: number): Promise<{ forced: string[] }>;
}

/** A worker that has not stopped this long after SIGTERM is killed (a clean leave is bounded by 10 s). */
const DEFAULT_STOP_GRACE_MS = 15_000;
/** Workers print their "serving" line once a view lists them. */
const START_TIMEOUT_MS = 30_000;

/**
 * Starts the server (unless given), the view reader and the workers;
 * resolves once every worker serves. On failure everything started is
 * stopped again and the error thrown.
 */
export async function startLocalCluster(options: LocalClusterOptions): Promise<LocalCluster> {
  let server: NatsServer | undefined;
  let memory: ReturnType<typeof createMemoryServer> | undefined;
  let url: string | undefined;
  if (
    options.authDir !== undefined &&
    (options.memory === true || (options.nats === undefined && findNatsServerBinary() === null))
  )
    throw new Error('--auth needs a nats-server (the in-memory bus has no users): install nats-server, or pass --nats');
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
    server = options.authDir === undefined ? await startNatsServer() : await startAuthServer(options.authDir);
    url = server.url;
    options.write(
      `embedded nats-server ${server.version} at ${url} (JetStream in a temporary directory, removed on stop)` +
        (options.authDir === undefined ? '' : `, admitting only the users of ${options.authDir}/auth.conf`),
    );
  }

  let stopping = false;
  const hosted: Hosted[] = [];
  const killAll = (): void => hosted.forEach((h) => h.killNow());
  process.on('exit', killAll);
  const views = new Views();
  let viewBus: Bus | undefined;
  let watch: KvWatch | undefined;
  const openBus = (name: string, label?: string): Promise<Bus> => {
    if (memory !== undefined) return Promise.resolve(createMemoryBus({ server: memory }));
    const dir = options.authDir;
    if (dir === undefined)
      return createNatsBus({ servers: url!.split(','), name, auth: options.auth, tls: options.tls });
    return createNatsBus({
      servers: url!.split(','),
      name,
      auth: authFor(dir, label === undefined ? 'admin' : `client-${label}`),
      inboxPrefix: label === undefined ? adminInbox() : clientInbox(label),
    });
  };

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
          options.write(
            'the nats-server has gone (a Ctrl-C reaches it too): with nobody left to hand off to, the workers are killed',
          );
        }
        if (outcome === 'late' || outcome === 'gone') {
          h.killNow();
          await worker.exited;
        }
      }),
    );
    clearTimeout(poll);
    watch?.stop();
    if (server !== undefined && !server.running)
      void viewBus?.close().catch(() => {}); // closing against a dead server only waits
    else await viewBus?.close().catch(() => {});
    await server?.[Symbol.asyncDispose]();
    process.off('exit', killAll);
    return { forced };
  };

  const load = memory !== undefined ? loadApplications(options.apps) : undefined;
  const launch = (): Hosted => {
    const h =
      memory !== undefined
        ? hostWorker(options, memory, hosted.length, load!)
        : spawnWorker(options, url!, hosted.length, () => stopping);
    hosted.push(h);
    return h;
  };
  try {
    viewBus = await openBus(`cohort-${options.cluster}-view-reader`);
    const watching = watchViews(viewBus, options.cluster, views, START_TIMEOUT_MS);
    for (let i = 0; i < options.workers; i++) launch();
    watch = await watching;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`the workers did not all serve within ${START_TIMEOUT_MS / 1000} s`)),
        START_TIMEOUT_MS,
      );
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
