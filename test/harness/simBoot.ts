/**
 * A simulated cluster driven by hand on virtual time, for tests that script
 * membership changes and faults (kill, pause, graceful stop, a worker added)
 * and look at the views at exact virtual times.
 */
import { expect } from 'vitest';
import { shardOf, type Application, type Client, type View, type Worker } from '../../index.js';
import { checkHistory, HistoryRecorder, readJournals, type Violation } from '../../harness/checker/index.js';
import { bucketName, decodeView, VIEW_KEY } from '../../internal.js';
import {
  RunLoop,
  SimCluster,
  SIMULATION_START,
  Trace,
  type SimWorkerOptions,
  type WorkerSlot,
} from '../../harness/simulate/index.js';

export interface SimBootOptions {
  readonly application: Application;
  readonly shardCount: number;
  readonly heartbeatInterval: number;
  readonly sessionTimeout: number;
  readonly seed?: number;
  /** The clients' connection timings (default: troubledInterval 30 s, attemptTimeout 500 ms). */
  readonly connection?: { readonly troubledInterval: number; readonly attemptTimeout: number };
  /** Sees each trace line as it is added: a test can act at an exact event (pause a worker holding a command). */
  readonly onTrace?: (line: string) => void;
  /** Anything else every worker is started with (safeguard settings, a logger, ...). */
  readonly worker?: SimWorkerOptions;
}

/** One view a worker took up, and when (virtual ms since the start). */
export interface SeenView {
  readonly at: number;
  readonly slot: number;
  readonly view: View;
}

export type Sim = Awaited<ReturnType<typeof bootSim>>;

export function bootSim(options: SimBootOptions) {
  const { application, shardCount, heartbeatInterval, sessionTimeout } = options;
  const lines: string[] = [];
  const trace = new Trace(
    () => cluster.clock.now() - SIMULATION_START,
    (line) => {
      lines.push(line);
      options.onTrace?.(line);
    },
  );
  const recorder = new HistoryRecorder({ now: () => cluster.clock.now() });
  const cluster: SimCluster = new SimCluster({
    seed: options.seed ?? 1,
    start: SIMULATION_START,
    cluster: 'sim',
    applications: [application],
    shardCount,
    worker: { ...options.worker, heartbeatInterval, sessionTimeout },
    connection: options.connection ?? { troubledInterval: 30_000, attemptTimeout: 500 },
    faults: {},
    trace,
    recorder,
  });
  /** Every view change each worker made, in the order it was seen (checked after every settle). */
  const seen: SeenView[] = [];
  const last = new Map<WorkerSlot, number>();
  const loop = new RunLoop(cluster.clock, cluster.server, () => {
    for (const w of cluster.workers) {
      const view = w.worker?.view;
      if (w.process.state !== 'running' || view === null || view === undefined) continue;
      if (last.get(w) === view.viewId) continue;
      last.set(w, view.viewId);
      seen.push({ at: now(), slot: w.slot, view });
    }
  });
  /** Virtual ms since the start. */
  const now = (): number => cluster.clock.now() - SIMULATION_START;
  const limit = 60 * sessionTimeout;
  /** Drives until `promise` settles, within `ms` of virtual time. */
  const run = <T>(promise: Promise<T>, ms = limit): Promise<T> =>
    loop.run(promise, cluster.clock.now() + ms, 'test step');
  /** Drives until `done()` holds; fails if it does not within `ms` of virtual time. */
  const until = async (done: () => boolean, what: string, ms = limit): Promise<void> => {
    await loop.drive(done, cluster.clock.now() + ms);
    if (!done()) throw new Error(`${what}: not by virtual time ${now()}`);
  };
  /** Lets `ms` of virtual time pass. */
  const pass = (ms: number): Promise<void> => loop.drive(() => false, cluster.clock.now() + ms);
  /** A virtual-time sleep, for pacing a load (a load that never waits keeps the server from ever being idle). */
  const sleep = (ms: number): Promise<void> => new Promise((resolve) => cluster.clock.setTimeout(resolve, ms));
  /** Every view written to the view key from now on, and when (the transitional ones too, however briefly they stood). */
  const watchViews = async (): Promise<{ at: number; view: View }[]> => {
    const written: { at: number; view: View }[] = [];
    const kv = await run(cluster.auditor().bus.kv({ bucket: bucketName(cluster.name, 'cluster') }));
    await run(
      kv.watch({ key: VIEW_KEY, include: 'updates' }, (entry) => {
        if (entry.operation === 'PUT') written.push({ at: now(), view: decodeView(entry.value, 'view') });
      }),
    );
    return written;
  };
  /** Starts a worker in `slot` (a new slot: a worker joining) and drives until it has started. */
  const spawn = async (slot: number): Promise<Worker> => {
    await run(cluster.spawnWorker(slot));
    const w = cluster.workers[slot]!.worker;
    if (w === undefined) throw new Error(`worker ${slot} did not start: ${String(cluster.workers[slot]!.error)}`);
    return w;
  };
  const connect = async (index: number): Promise<Client> => {
    await run(cluster.connectClient(index));
    const c = cluster.clients[index]!.client;
    if (c === undefined) throw new Error(`client ${index} did not connect: ${String(cluster.clients[index]!.error)}`);
    return c;
  };
  /** The live workers in `slots` agree on one settled view: every shard ACTIVE on one of them, served by it, evenly. */
  const balanced = (slots: readonly number[]) => (): boolean => {
    const ws = slots.map((s) => cluster.workers[s]!);
    if (ws.some((w) => w.worker === undefined || w.process.state !== 'running')) return false;
    const views = ws.map((w) => w.worker!.view);
    const view = views[0];
    if (view === null || view === undefined || view.transitional) return false;
    if (views.some((v) => v?.viewId !== view.viewId) || view.members.length !== ws.length) return false;
    const counts = new Map<number, number>();
    for (const w of ws) for (const s of w.worker!.serving) counts.set(s, (counts.get(s) ?? 0) + 1);
    if (counts.size !== shardCount || [...counts.values()].some((n) => n !== 1)) return false;
    const sizes = ws.map((w) => w.worker!.serving.length);
    return Math.max(...sizes) - Math.min(...sizes) <= 1 && view.shards.every((s) => s.state === 'ACTIVE');
  };
  /** The last time (virtual ms since the start) a heartbeat from the worker in `slot` reached anyone. */
  const lastHeartbeat = (slot: number): number => {
    const name = cluster.workers[slot]!.process.name;
    const mine = new RegExp(`^(\\d+) deliver message ${name.replace('.', '\\.')}>\\S+ cohort\\.sim\\.hb\\.`);
    for (let i = lines.length - 1; i >= 0; i--) {
      const m = mine.exec(lines[i]!);
      if (m !== null) return Number(m[1]);
    }
    throw new Error(`no heartbeat from ${name} in the trace`);
  };
  /** An id whose session lives on one of `shards`. */
  const idOn = (shards: readonly number[], prefix = 'acct'): string => {
    for (let k = 0; ; k++)
      if (shards.includes(shardOf(application.name, `${prefix}-${k}`, shardCount))) return `${prefix}-${k}`;
  };
  /** The history checked against the journals and the application's machine. */
  const check = async (): Promise<Violation[]> =>
    checkHistory({
      history: recorder.operations,
      journals: await run(readJournals(cluster.auditor().bus, cluster.name)),
      applications: [application],
    });
  const worker = (slot: number): Worker => {
    const w = cluster.workers[slot]?.worker;
    expect(w, `worker in slot ${slot}`).toBeDefined();
    return w!;
  };
  return {
    cluster,
    loop,
    lines,
    recorder,
    seen,
    now,
    run,
    until,
    pass,
    sleep,
    watchViews,
    spawn,
    connect,
    balanced,
    lastHeartbeat,
    idOn,
    check,
    worker,
  };
}
