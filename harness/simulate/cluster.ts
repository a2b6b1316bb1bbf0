import {
  clientInbox,
  connect,
  connectionOf,
  createLogger,
  createMemoryBus,
  createMemoryServer,
  seededEnvironment,
  startWorker,
  workerInbox,
  type Application,
  type Bus,
  type Client,
  type ConnectOptions,
  type Environment,
  type MemoryServer,
  type Worker,
  type WorkerOptions,
} from '../../internal.js';
import type { HistoryRecorder } from '../checker/index.js';
import { VirtualClock } from './clock.js';
import type { Faults } from './faults.js';
import { SimNetwork } from './network.js';
import { SimProcess } from './process.js';
import { seedOf } from './seeds.js';
import type { Trace } from './trace.js';

/** What a simulated worker is started with beyond its bus, cluster, applications and environment. */
export type SimWorkerOptions = Omit<
  WorkerOptions,
  'bus' | 'nats' | 'cluster' | 'applications' | 'environment' | 'shards'
>;
/** What a simulated client connects with beyond its bus, cluster and environment. */
export type SimConnectOptions = Omit<ConnectOptions, 'bus' | 'nats' | 'cluster' | 'environment' | 'label'>;

export interface SimClusterOptions {
  readonly seed: number;
  /** Virtual time at the start. */
  readonly start: number;
  readonly cluster: string;
  readonly applications: readonly Application[];
  readonly shardCount: number;
  readonly worker: SimWorkerOptions;
  readonly connection: SimConnectOptions;
  readonly faults: Faults;
  readonly trace: Trace;
  readonly recorder: HistoryRecorder;
}

export interface WorkerSlot {
  readonly slot: number;
  /** 1 for the first worker in the slot, then one more for each that replaced a killed one. */
  incarnation: number;
  process: SimProcess;
  /** Once started. */
  worker: Worker | undefined;
  /** Why it could not start. */
  error: unknown;
}

export interface ClientSlot {
  readonly index: number;
  readonly label: string;
  readonly process: SimProcess;
  /** The recorded client, once connected. */
  client: Client | undefined;
  error: unknown;
}

const ZONES = 'abcdefghijklmnopqrstuvwxyz';

/** How long a supervisor waits before it starts a worker again that failed to start. */
const RESTART_AFTER = 1_000;

/**
 * The simulated processes of one run, on one memory server and one clock:
 * workers (each in a slot that a fresh worker takes when one is killed) and
 * clients, each with its own connection, timers and seeded environment
 * (split from the run's seed by process name, so one more process does not
 * change the others' draws).
 */
export class SimCluster {
  readonly clock: VirtualClock;
  readonly server: MemoryServer;
  readonly network: SimNetwork;
  readonly workers: WorkerSlot[] = [];
  readonly clients: ClientSlot[] = [];
  readonly #options: SimClusterOptions;
  readonly #names = new Map<number, string>([[0, 'server']]);
  readonly #logger: NonNullable<WorkerOptions['logger']>;
  #audits = 0;
  #supervising = true;

  constructor(options: SimClusterOptions) {
    this.#options = options;
    this.clock = new VirtualClock(options.start);
    const { trace } = options;
    this.network = new SimNetwork({
      faults: options.faults,
      random: seededEnvironment(seedOf(options.seed, 'network')).random,
      trace,
      nameOf: (connection) => this.#names.get(connection) ?? `#${connection}`,
    });
    this.server = createMemoryServer({ environment: { clock: this.clock }, network: this.network });
    this.#logger = options.worker.logger ?? createLogger({ level: 'silent' });
  }

  get trace(): Trace {
    return this.#options.trace;
  }

  /** Every process that is not dead: workers, then clients. */
  get live(): SimProcess[] {
    return [...this.workers.map((w) => w.process), ...this.clients.map((c) => c.process)].filter(
      (p) => p.state !== 'dead',
    );
  }

  /**
   * Starts a worker in `slot` (a fresh one when the slot had one); resolves
   * when it has started or failed to. One that fails to start (a call to the
   * store lost or timed out) exits, and a fresh one takes the slot a second
   * later, as a supervisor (systemd, Kubernetes) would restart it.
   */
  spawnWorker(slot: number): Promise<void> {
    const previous = this.workers[slot];
    const incarnation = previous === undefined ? 1 : previous.incarnation + 1;
    const name = incarnation === 1 ? `w${slot + 1}` : `w${slot + 1}.${incarnation}`;
    const process = this.#process(name);
    const environment = seededEnvironment(seedOf(this.#options.seed, name), process.clock);
    const bus = this.#bus(process, workerInbox());
    const entry: WorkerSlot = { slot, incarnation, process, worker: undefined, error: undefined };
    this.workers[slot] = entry;
    this.trace.add(`start ${name}`);
    const { cluster, applications, shardCount, worker } = this.#options;
    return startWorker({
      zone: ZONES[slot % ZONES.length],
      ...worker,
      logger: this.#logger,
      bus,
      cluster,
      applications: [...applications],
      shardCount,
      environment,
    }).then(
      (w) => {
        entry.worker = w;
        this.trace.add(`started ${name} as ${w.id}`);
      },
      (err: unknown) => {
        entry.error = err;
        this.trace.add(`failed ${name}: ${String(err)}`);
        process.kill();
        this.clock.setTimeout(() => {
          if (this.workers[slot] === entry && this.#supervising) void this.spawnWorker(slot);
        }, RESTART_AFTER);
      },
    );
  }

  /** Failed workers are no longer started again (the run is ending). */
  stopSupervising(): void {
    this.#supervising = false;
  }

  /** Connects client `index` (recorded); resolves when connected or failed to. */
  connectClient(index: number): Promise<void> {
    const label = `c${index + 1}`;
    const process = this.#process(label);
    const entry: ClientSlot = { index, label, process, client: undefined, error: undefined };
    this.clients[index] = entry;
    const recorder = this.#options.recorder;
    return this.#connect(process, label, (base) => recorder.environment(base)).then(
      (client) => {
        entry.client = recorder.wrap(client, label);
      },
      (err: unknown) => {
        entry.error = err;
        this.trace.add(`failed ${label}: ${String(err)}`);
      },
    );
  }

  get name(): string {
    return this.#options.cluster;
  }

  /**
   * A process of its own, never faulted, for looking at the cluster from
   * outside: a bus (reading the journal), and a client (not recorded) once asked for.
   */
  auditor(): { bus: Bus; connect(): Promise<Client> } {
    const name = this.#audits++ === 0 ? 'audit' : `audit${this.#audits}`;
    const process = this.#process(name);
    return { bus: this.#bus(process, `_INBOX.${name}`), connect: () => this.#connect(process, name, (base) => base) };
  }

  /** Which process a bus connection belongs to. */
  nameOf(connection: number): string {
    return this.#names.get(connection) ?? `#${connection}`;
  }

  #connect(
    process: SimProcess,
    label: string,
    environment: (base: Environment) => Partial<Environment>,
  ): Promise<Client> {
    const base = seededEnvironment(seedOf(this.#options.seed, label), process.clock);
    const bus = this.#bus(process, clientInbox(label));
    return connect({
      ...this.#options.connection,
      bus,
      cluster: this.#options.cluster,
      label,
      shardCount: this.#options.shardCount,
      environment: environment(base),
    });
  }

  #process(name: string): SimProcess {
    return new SimProcess({
      name,
      clock: this.clock,
      server: this.server,
      onTimer: (p) => this.trace.add(`timer ${p.name}`),
    });
  }

  #bus(process: SimProcess, inboxPrefix: string): Bus {
    const bus = createMemoryBus({ server: this.server, environment: { clock: process.clock }, inboxPrefix });
    const connection = connectionOf(bus)!;
    this.#names.set(connection, process.name);
    process.adopt(connection);
    return bus;
  }
}
