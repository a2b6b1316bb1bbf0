import { randomBytes } from 'node:crypto';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type Bus,
  type Client,
  type ConnectOptions,
  connect,
  createNatsBus,
  type KvWatch,
  type View,
} from '../index.js';
import type { Hosted, LocalWorker, WorkerExit } from './localWorker.js';
import { startNatsCluster, type NatsCluster } from './natsCluster.js';
import { reapWithThisProcess, startNatsServer, type NatsServer } from './natsServer.js';
import { startProxy, type Direction, type TcpProxy } from './proxy.js';
import { type ViewFeed, Views, watchViews } from './viewFeed.js';
import { spawnWorker } from './workerProcess.js';

/**
 * A real cluster for tests: `cohort worker` processes on a real nats-server,
 * each reaching NATS through a TCP proxy of its own (harness/proxy.ts), so a
 * test can crash, freeze and stop workers, restart NATS and kill its nodes,
 * and partition, delay or cut one worker's network, then wait for the views
 * the cluster agrees on. Clients and the view reader connect to NATS
 * directly: the faults are the workers'.
 *
 *   await using cluster = await startTestCluster({ applications: ['./examples/ledger.ts'] });
 *   const client = await cluster.client();
 *   cluster.partition('w1');
 *   await cluster.waitForView((v) => !hasWorker(v, 'w1'));
 *
 * Workers are processes, so applications are given as module paths (each
 * module exports one or more applications, as for `cohort worker --app`),
 * never as objects.
 */

/** Where NATS is: an embedded server, a 3-node JetStream cluster, or servers someone else runs. */
export type TestNats = 'embedded' | 'cluster3' | string | readonly string[];

export interface TestClusterOptions {
  /** Modules exporting the applications: paths (relative ones from the current directory) or file URLs. */
  applications: readonly (string | URL)[];
  /** Workers to start with (default 3): ids w1..wN, zones a, b, c, ... */
  workers?: number;
  /**
   * 'embedded' (default): one nats-server with JetStream in a temporary
   * directory; 'cluster3': three nodes with clustered JetStream; a URL (or
   * several): an existing server, left as it is (restartNats and
   * killNatsNode need one of the first two).
   */
  nats?: TestNats;
  /** Cluster name (default a random `t-xxxxxxxx`, so clusters on one server never meet). */
  cluster?: string;
  /** Membership heartbeat in ms (default 200: short, for tests). */
  heartbeatInterval?: number;
  /** Silence in ms before a worker is dropped (default 1 000; at least 500). */
  sessionTimeout?: number;
  /** Copies JetStream keeps of the journal, buckets and blobs (default 3 on cluster3, else 1). */
  storageReplicas?: number;
  /**
   * Members the workers may drop for silence per failover window before
   * automatic failover halts (default 100 here, not the worker's 3: fault
   * scenarios kill and pause workers again and again on purpose).
   */
  failoverQuota?: number;
  /** Deadline for the start, for each added worker and for a restart of NATS (default 30 000 ms). */
  startTimeoutMs?: number;
  /** A line a worker printed on stdout. */
  onLine?(worker: string, line: string): void;
  /** A log line a worker wrote at warn or above, made readable. */
  onWarn?(worker: string, line: string): void;
}

/** A worker process of the test cluster. */
export interface TestWorker {
  /** Its worker id (w1, w2, ...); in views it is this id, or `w1~2`, `w1~3` once it rejoined after being dropped. */
  readonly id: string;
  readonly zone: string;
  readonly pid: number | undefined;
  readonly state: 'running' | 'paused' | 'exited';
  /** Null while it runs. */
  readonly exit: WorkerExit | null;
  readonly exited: Promise<WorkerExit>;
  /** Its proxies to NATS, one per server URL, in the order of `urls`. */
  readonly proxies: readonly TcpProxy[];
  /** The last warn-level lines it logged (at most 50), made readable: for a failing test's message. */
  readonly warnings: readonly string[];
}

export interface WaitOptions {
  /** Default 30 000 ms: generous, so a loaded machine does not fail a test that is merely slow. */
  timeoutMs?: number;
  /** What is awaited, for the timeout's message. */
  what?: string;
}

export interface TestCluster extends AsyncDisposable {
  readonly cluster: string;
  /** The NATS servers' client URLs (straight to NATS, not through a proxy). */
  readonly urls: readonly string[];
  /** The same, comma-separated. */
  readonly url: string;
  /** The server(s) this cluster started; undefined for servers given by URL. */
  readonly nats: NatsServer | NatsCluster | undefined;
  /** Every worker started, in order, including those that have exited. */
  readonly workers: readonly TestWorker[];
  worker(id: string): TestWorker;
  /** The views as an onlooker sees them. */
  readonly views: ViewFeed;
  /** The latest view if it passes `test`, else the first later one that does. */
  waitForView(test: (view: View) => boolean, options?: WaitOptions): Promise<View>;
  /** The member id worker `id` has in the latest view (`w1`, `w1~2`, ...), or undefined when it is not a member. */
  memberOf(id: string): string | undefined;
  /** A connected client of this cluster, straight to NATS; closed with the cluster. */
  client(options?: Partial<ConnectOptions>): Promise<Client>;
  /** A bus straight to NATS (to read the journal, say); closed with the cluster. */
  openBus(name?: string): Promise<Bus>;

  /** SIGKILL: a crash. Resolves once the process is gone. */
  kill(id: string): Promise<WorkerExit>;
  /** SIGSTOP, then SIGCONT after `ms` (resolves then); without `ms` it stays frozen until resume(). */
  pause(id: string, ms?: number): Promise<void>;
  /** SIGCONT. */
  resume(id: string): void;
  /** SIGTERM: a clean stop (its shards handed off first); SIGKILL after 15 s. Resolves once it has exited. */
  stop(id: string): Promise<WorkerExit>;
  /** Ends the whole cluster, as dispose does. */
  stop(): Promise<void>;
  /** Starts one more worker (the next id and zone); resolves once a view lists it. */
  addWorker(): Promise<TestWorker>;

  /** Restarts every NATS server this cluster started (same ports and stores); resolves once they are ready. */
  restartNats(): Promise<void>;
  /** SIGKILL of node `i` of the 3-node cluster (0, 1 or 2: nodes n1, n2, n3). */
  killNatsNode(i: number): Promise<void>;
  /** Starts node `i` again on its port and store; resolves once it is ready. */
  restartNatsNode(i: number): Promise<void>;

  /** Stops worker `id`'s traffic with NATS both ways, or in one direction: bytes held, connections open. */
  partition(id: string, direction?: Direction | 'both'): void;
  /** Worker `id`'s traffic flows only in `flowing` (a half-open partition). */
  oneWay(id: string, flowing: Direction): void;
  /** Ends worker `id`'s partitions and delays. */
  heal(id: string): void;
  /** Adds `ms` of latency to each chunk between worker `id` and NATS, both ways or in one direction. */
  delay(id: string, ms: number, direction?: Direction | 'both'): void;
  /** Resets worker `id`'s connections to NATS: it reconnects at once. Returns how many were cut. */
  cut(id: string): number;
}

const DEFAULT_TIMING = { heartbeatInterval: 200, sessionTimeout: 1_000 };
/** Fault scenarios drop workers on purpose, many times a run: the production quota would halt their failovers. */
const DEFAULT_FAILOVER_QUOTA = 100;
const DEFAULT_TIMEOUT_MS = 30_000;
/** A worker that has not stopped this long after SIGTERM is killed (a clean leave is bounded by 10 s). */
const STOP_GRACE_MS = 15_000;
/** Closing a client or bus whose server is gone may only wait; the cluster's end does not. */
const CLOSE_BOUND_MS = 5_000;
const WARNINGS_KEPT = 50;

/** The worker process a member id belongs to: `w2~3` is w2's third time in the cluster. */
export function workerOfMember(memberId: string): string {
  const tilde = memberId.indexOf('~');
  return tilde < 0 ? memberId : memberId.slice(0, tilde);
}

/** Whether worker `id` (in any incarnation) is a member of `view`. */
export function hasWorker(view: View, id: string): boolean {
  return view.members.some((m) => workerOfMember(m.id) === id);
}

/**
 * Settled: not transitional, and every shard ACTIVE on a member of the view
 * with as many secondaries as the members allow. Null or undefined (no view
 * yet) is not settled.
 */
export function isSettled(view: View | null | undefined): boolean {
  if (view === null || view === undefined || view.transitional) return false;
  const members = new Set(view.members.map((m) => m.id));
  return view.shards.every(
    (s) =>
      s.state === 'ACTIVE' &&
      s.primary !== null &&
      members.has(s.primary) &&
      s.replicas.length === Math.min(view.replicas, view.members.length - 1),
  );
}

/** Balanced: each member is primary of as many shards as any other, give or take one (all members promotable). */
export function isBalanced(view: View): boolean {
  const counts = view.members.map((m) => view.shards.filter((s) => s.primary === m.id).length);
  return counts.length > 0 && Math.max(...counts) - Math.min(...counts) <= 1;
}

/** The shards whose primary is worker `id` (in any incarnation). */
export function shardsOf(view: View, id: string): number[] {
  return view.shards.flatMap((s, i) => (s.primary !== null && workerOfMember(s.primary) === id ? [i] : []));
}

function modulePath(app: string | URL): string {
  if (app instanceof URL) return fileURLToPath(app);
  if (app.startsWith('file:')) return fileURLToPath(app);
  return isAbsolute(app) ? app : resolve(process.cwd(), app);
}

function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** Resolves when `promise` settles or after `ms`, whichever is first; never rejects. */
async function bounded(promise: Promise<unknown>, ms: number): Promise<void> {
  await withDeadline(promise, ms, 'closing').catch(() => {});
}

interface Entry {
  /** Its place in launch order: w1 is 0. */
  readonly index: number;
  readonly hosted: Hosted;
  readonly proxies: TcpProxy[];
  readonly warnings: string[];
  paused: boolean;
  resumeTimer: NodeJS.Timeout | undefined;
  onResumed: (() => void) | undefined;
}

class LocalTestCluster implements TestCluster {
  readonly #entries: Entry[] = [];
  readonly #views = new Views();
  readonly #closables: { close(): Promise<void> }[] = [];
  #watch: KvWatch | undefined;
  /** Workers launched so far, counted before their proxies start: the next one's index. */
  #launched = 0;
  #stopping: Promise<void> | undefined;
  readonly #killAll = (): void => this.#entries.forEach((e) => e.hosted.killNow());

  constructor(
    readonly cluster: string,
    readonly urls: readonly string[],
    readonly nats: NatsServer | NatsCluster | undefined,
    private readonly options: TestClusterOptions & { apps: string[]; startTimeoutMs: number },
    private readonly viewBus: Bus,
  ) {
    process.on('exit', this.#killAll);
  }

  get url(): string {
    return this.urls.join(',');
  }

  get views(): ViewFeed {
    return this.#views;
  }

  get workers(): readonly TestWorker[] {
    return this.#entries.map((e) => this.#describe(e));
  }

  worker(id: string): TestWorker {
    return this.#describe(this.#entry(id));
  }

  #entry(id: string): Entry {
    const entry = this.#entries.find((e) => e.hosted.worker.id === id);
    if (entry === undefined)
      throw new RangeError(
        `no worker ${id} in ${this.cluster} (workers: ${this.#entries.map((e) => e.hosted.worker.id).join(', ')})`,
      );
    return entry;
  }

  #describe(entry: Entry): TestWorker {
    const worker: LocalWorker = entry.hosted.worker;
    return {
      id: worker.id,
      zone: worker.zone,
      pid: worker.pid,
      state: worker.exit !== null ? 'exited' : entry.paused ? 'paused' : 'running',
      exit: worker.exit,
      exited: worker.exited,
      proxies: entry.proxies,
      warnings: entry.warnings,
    };
  }

  async watchViews(): Promise<void> {
    this.#watch = await watchViews(this.viewBus, this.cluster, this.#views, this.options.startTimeoutMs);
  }

  waitForView(test: (view: View) => boolean, options: WaitOptions = {}): Promise<View> {
    return this.#views.until(test, options.timeoutMs ?? DEFAULT_TIMEOUT_MS, options.what ?? 'the condition awaited');
  }

  memberOf(id: string): string | undefined {
    return this.#views.latest?.members.find((m) => workerOfMember(m.id) === id)?.id;
  }

  async client(options: Partial<ConnectOptions> = {}): Promise<Client> {
    const client = await connect({ nats: [...this.urls], cluster: this.cluster, ...options });
    this.#closables.push(client);
    return client;
  }

  async openBus(name = `cohort-${this.cluster}-test`): Promise<Bus> {
    const bus = await createNatsBus({ servers: [...this.urls], name });
    this.#closables.push(bus);
    return bus;
  }

  /** Spawns the next worker behind proxies of its own; resolves once it serves. */
  async launch(): Promise<Entry> {
    if (this.#stopping !== undefined) throw new Error(`test cluster ${this.cluster} is stopped`);
    const index = this.#launched++;
    const proxies: TcpProxy[] = [];
    try {
      for (const url of this.urls) proxies.push(await startProxy({ target: url }));
      if (this.#stopping !== undefined) throw new Error(`test cluster ${this.cluster} is stopped`);
    } catch (err) {
      await Promise.all(proxies.map((p) => p.close()));
      throw err;
    }
    const warnings: string[] = [];
    const hosted = spawnWorker(
      {
        apps: this.options.apps,
        cluster: this.cluster,
        heartbeatInterval: this.options.heartbeatInterval ?? DEFAULT_TIMING.heartbeatInterval,
        sessionTimeout: this.options.sessionTimeout ?? DEFAULT_TIMING.sessionTimeout,
        storageReplicas: this.options.storageReplicas,
        failoverQuota: this.options.failoverQuota ?? DEFAULT_FAILOVER_QUOTA,
        onLine: (w, line) => this.options.onLine?.(w.id, line),
        onWarn: (w, line) => {
          warnings.push(line);
          if (warnings.length > WARNINGS_KEPT) warnings.shift();
          this.options.onWarn?.(w.id, line);
        },
      },
      proxies.map((p) => p.url).join(','),
      index,
      () => this.#stopping !== undefined,
    );
    const entry: Entry = {
      index,
      hosted,
      proxies,
      warnings,
      paused: false,
      resumeTimer: undefined,
      onResumed: undefined,
    };
    // Launches run side by side: keep the list in launch order.
    this.#entries.push(entry);
    this.#entries.sort((a, b) => a.index - b.index);
    if (hosted.worker.pid !== undefined) reapWithThisProcess(hosted.worker.pid, hosted.worker.exited);
    await withDeadline(hosted.ready, this.options.startTimeoutMs, `worker ${hosted.worker.id} starting`);
    return entry;
  }

  async addWorker(): Promise<TestWorker> {
    return this.#describe(await this.launch());
  }

  async kill(id: string): Promise<WorkerExit> {
    const entry = this.#entry(id);
    entry.hosted.worker.kill('SIGKILL');
    const exit = await entry.hosted.worker.exited;
    this.#resumed(entry);
    return exit;
  }

  pause(id: string, ms?: number): Promise<void> {
    const entry = this.#entry(id);
    if (entry.hosted.worker.exit !== null) throw new RangeError(`worker ${id} has exited: it cannot be paused`);
    if (ms !== undefined && !(Number.isFinite(ms) && ms >= 0))
      throw new RangeError(`pause needs a non-negative number of ms, got ${ms}`);
    this.#resumed(entry);
    entry.hosted.worker.pause();
    entry.paused = true;
    const resumed = new Promise<void>((resolve) => (entry.onResumed = resolve));
    if (ms !== undefined) entry.resumeTimer = setTimeout(() => this.resume(id), ms);
    return resumed;
  }

  resume(id: string): void {
    const entry = this.#entry(id);
    entry.hosted.worker.resume();
    this.#resumed(entry);
  }

  /** Forgets a pause: its timer cleared, its waiter told. */
  #resumed(entry: Entry): void {
    clearTimeout(entry.resumeTimer);
    entry.resumeTimer = undefined;
    entry.paused = false;
    const onResumed = entry.onResumed;
    entry.onResumed = undefined;
    onResumed?.();
  }

  stop(): Promise<void>;
  stop(id: string): Promise<WorkerExit>;
  stop(id?: string): Promise<void | WorkerExit> {
    return id === undefined ? this.#stopAll() : this.#stopWorker(id);
  }

  async #stopWorker(id: string): Promise<WorkerExit> {
    const entry = this.#entry(id);
    const { worker } = entry.hosted;
    if (entry.paused) this.resume(id);
    worker.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), STOP_GRACE_MS)));
    const outcome = await Promise.race([worker.exited, late]);
    clearTimeout(timer);
    if (outcome === 'late') entry.hosted.killNow();
    return worker.exited;
  }

  #stopAll(): Promise<void> {
    this.#stopping ??= (async () => {
      // Nothing here is kept: a crash is as good as a clean leave, and much quicker.
      for (const closable of this.#closables.splice(0).reverse()) await bounded(closable.close(), CLOSE_BOUND_MS);
      for (const entry of this.#entries) {
        this.#resumed(entry);
        entry.hosted.killNow();
      }
      await Promise.all(this.#entries.map((e) => e.hosted.worker.exited));
      process.off('exit', this.#killAll);
      this.#watch?.stop();
      await bounded(this.viewBus.close(), CLOSE_BOUND_MS);
      await Promise.all(this.#entries.flatMap((e) => e.proxies.map((p) => p.close())));
      await this.nats?.[Symbol.asyncDispose]();
    })();
    return this.#stopping;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.#stopAll();
  }

  #nodes(what: string): readonly NatsServer[] {
    if (this.nats === undefined)
      throw new TypeError(`${what} needs a nats-server the test cluster started (nats: 'embedded' or 'cluster3')`);
    return 'nodes' in this.nats ? this.nats.nodes : [this.nats];
  }

  async restartNats(): Promise<void> {
    await Promise.all(this.#nodes('restartNats').map((n) => n.restart()));
  }

  #node(i: number, what: string): NatsServer {
    const nodes = this.#nodes(what);
    if (this.nats === undefined || !('nodes' in this.nats))
      throw new TypeError(`${what} needs the 3-node cluster (nats: 'cluster3')`);
    const node = nodes[i];
    if (node === undefined || !Number.isInteger(i))
      throw new RangeError(`${what}: no node ${i} (0 to ${nodes.length - 1})`);
    return node;
  }

  async killNatsNode(i: number): Promise<void> {
    await this.#node(i, 'killNatsNode').kill();
  }

  async restartNatsNode(i: number): Promise<void> {
    await this.#node(i, 'restartNatsNode').restart();
  }

  #proxies(id: string): readonly TcpProxy[] {
    return this.#entry(id).proxies;
  }

  partition(id: string, direction: Direction | 'both' = 'both'): void {
    for (const p of this.#proxies(id)) p.partition(direction);
  }

  oneWay(id: string, flowing: Direction): void {
    for (const p of this.#proxies(id)) p.oneWay(flowing);
  }

  heal(id: string): void {
    for (const p of this.#proxies(id)) p.heal();
  }

  delay(id: string, ms: number, direction: Direction | 'both' = 'both'): void {
    for (const p of this.#proxies(id)) p.delay(ms, direction);
  }

  cut(id: string): number {
    return this.#proxies(id).reduce((n, p) => n + p.cut(), 0);
  }
}

async function startNats(
  nats: TestNats,
  startTimeoutMs: number,
): Promise<{ urls: string[]; owned: NatsServer | NatsCluster | undefined }> {
  if (nats === 'embedded') {
    const server = await startNatsServer({ startTimeoutMs });
    return { urls: [server.url], owned: server };
  }
  if (nats === 'cluster3') {
    // --no_advertise: a worker must not learn the nodes' own addresses and reconnect around its proxies.
    const cluster = await startNatsCluster({ size: 3, startTimeoutMs, args: ['--no_advertise'] });
    return { urls: [...cluster.urls], owned: cluster };
  }
  const urls = (typeof nats === 'string' ? nats.split(',') : [...nats]).map((u) => u.trim()).filter((u) => u !== '');
  if (urls.length === 0) throw new RangeError('startTestCluster: nats names no server');
  return { urls, owned: undefined };
}

/**
 * Starts NATS (unless given), the view reader and the workers; resolves once
 * every worker serves and the view has settled (every shard ACTIVE with its
 * secondaries, primaries spread evenly). On failure everything started is
 * stopped and the error thrown.
 */
export async function startTestCluster(options: TestClusterOptions): Promise<TestCluster> {
  const workers = options.workers ?? 3;
  if (!Number.isInteger(workers) || workers < 1 || workers > 26)
    throw new RangeError(`startTestCluster: workers must be a whole number from 1 to 26, got ${workers}`);
  if (options.applications.length === 0) throw new RangeError('startTestCluster needs at least one application module');
  const startTimeoutMs = options.startTimeoutMs ?? DEFAULT_TIMEOUT_MS;
  const nats = options.nats ?? 'embedded';
  const cluster = options.cluster ?? `t-${randomBytes(4).toString('hex')}`;
  const { urls, owned } = await startNats(nats, startTimeoutMs);
  let viewBus: Bus;
  try {
    viewBus = await createNatsBus({ servers: urls, name: `cohort-${cluster}-view-reader` });
  } catch (err) {
    await owned?.[Symbol.asyncDispose]();
    throw err;
  }
  const testCluster = new LocalTestCluster(
    cluster,
    urls,
    owned,
    {
      ...options,
      storageReplicas: options.storageReplicas ?? (nats === 'cluster3' ? 3 : undefined),
      apps: options.applications.map(modulePath),
      startTimeoutMs,
    },
    viewBus,
  );
  try {
    const watching = testCluster.watchViews();
    // Awaited below; a launch that fails first must not leave it rejecting unheard.
    watching.catch(() => {});
    // Side by side, so the first view usually places every shard at once rather than moving most
    // of them in batches to late joiners. On a fresh 3-node cluster w1 goes alone first: it makes
    // the streams and buckets, whose leaders take a while to be elected there, and every worker
    // making them at once can outwait a worker's 5 s start-up reads.
    const first = nats === 'cluster3' ? [await testCluster.launch()] : [];
    const rest = await Promise.all(Array.from({ length: workers - first.length }, () => testCluster.launch()));
    const launched = [...first, ...rest];
    await watching;
    const ids = launched.map((e) => e.hosted.worker.id);
    // Moves go in batches: a view can be settled with shards still to move. Tests start from the end of them.
    await testCluster.waitForView((v) => isSettled(v) && isBalanced(v) && ids.every((id) => hasWorker(v, id)), {
      timeoutMs: startTimeoutMs,
      what: `${ids.join(', ')} members and the shards spread evenly`,
    });
  } catch (err) {
    await testCluster.stop().catch(() => {});
    throw err;
  }
  return testCluster;
}
