/**
 * A workload and a fault schedule drawn from a seed, run against a real
 * cluster of worker processes (startTestCluster), its history checked by the
 * same checker as a simulation. The schedule replays from the seed; the
 * timing of real processes does not, so a failing seed points at a kind of
 * run, not at one interleaving (simulate() gives that).
 */
import { createHash } from 'node:crypto';
import { type Application, seededEnvironment } from '../internal.js';
import { checkHistory, HistoryRecorder, readJournals, type Operation, type Violation } from './checker/index.js';
import { isSettled, type TestCluster } from './testCluster.js';
import type { Workload, WorkloadContext } from './simulate/workload.js';

/** A scenario's workload is a simulation's: the same function runs on virtual time and on real processes. */
export type ScenarioContext = WorkloadContext;
export type ScenarioWorkload = Workload;

/** Chances per second of each fault a real cluster can take (the message faults are the simulator's). */
export interface ScenarioFaults {
  /** A worker is killed with SIGKILL; a fresh one is added 0.5 to 2 session timeouts later. */
  readonly kill?: number;
  /** A worker is frozen (SIGSTOP) for 0.2 to 2 session timeouts. */
  readonly pause?: number;
  /** A worker's traffic with NATS stops both ways for 0.5 to 3 session timeouts. */
  readonly partition?: number;
  /** The nats-server restarts (stores kept). */
  readonly busRestart?: number;
}

export interface ScenarioOptions {
  readonly seed: number;
  /** The applications the cluster's modules export: their machines are the checker's model. */
  readonly applications: readonly Application[];
  readonly workload: ScenarioWorkload;
  /** Default 3. */
  readonly clients?: number;
  /** Ms of workload with faults (default 10 000); then everything heals and the run settles. */
  readonly duration?: number;
  readonly faults?: ScenarioFaults;
  /** The membership's session timeout, for fault lengths (default 1 000, the test cluster's). */
  readonly sessionTimeout?: number;
  /**
   * Ms the workload runs on once everything healed and the view settled
   * (default 3 000): every session it touched must acknowledge a command by
   * then (liveness).
   */
  readonly recovery?: number;
}

export interface ScenarioResult {
  readonly ok: boolean;
  readonly violations: readonly Violation[];
  /** A hash of the history and the faults, in order (real timing differs between runs of one seed). */
  readonly trace: string;
  readonly history: readonly Operation[];
  readonly faults: readonly { readonly at: number; readonly kind: string; readonly worker?: string }[];
  readonly stats: { readonly wallMs: number; readonly operations: number; readonly faults: number };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Runs the workload on `cluster` with faults drawn from the seed, heals, settles, and checks the history. */
export async function runScenario(cluster: TestCluster, options: ScenarioOptions): Promise<ScenarioResult> {
  const started = performance.now();
  const now = (): number => performance.now() - started;
  const duration = options.duration ?? 10_000;
  const sessionTimeout = options.sessionTimeout ?? 1_000;
  const recovery = options.recovery ?? 3_000;
  const random = seededEnvironment(options.seed).random;
  const recorder = new HistoryRecorder({ now });
  const faults: { at: number; kind: string; worker?: string }[] = [];
  let running = true;

  const count = options.clients ?? 3;
  const clients = await Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const c = await cluster.client({ label: `s${i + 1}`, environment: recorder.environment() });
      return recorder.wrap(c);
    }),
  );
  const loads = clients.map((client, index) => {
    const own = seededEnvironment(options.seed * 7919 + index + 1).random;
    return options
      .workload({
        client,
        index,
        clients: count,
        duration,
        random: own,
        sleep,
        now,
        running: () => running,
      })
      .catch((err: unknown) => err);
  });

  // The fault schedule: each second, each kind drawn once against its chance.
  const pending: Promise<unknown>[] = [];
  const between = (lo: number, hi: number): number => Math.round(lo + random() * (hi - lo));
  const live = (): string[] => cluster.workers.filter((w) => w.state === 'running').map((w) => w.id);
  const f = options.faults ?? {};
  for (let second = 0; second * 1_000 < duration; second++) {
    await sleep(Math.min(1_000, duration - second * 1_000));
    const ids = live();
    const pick = (): string | undefined => (ids.length > 1 ? ids[Math.floor(random() * ids.length)] : undefined);
    if (f.kill !== undefined && random() < f.kill) {
      const worker = pick();
      if (worker !== undefined) {
        faults.push({ at: now(), kind: 'kill', worker });
        const back = between(sessionTimeout / 2, sessionTimeout * 2);
        pending.push(cluster.kill(worker).then(() => sleep(back).then(() => cluster.addWorker())));
      }
    }
    if (f.pause !== undefined && random() < f.pause) {
      const worker = pick();
      if (worker !== undefined) {
        faults.push({ at: now(), kind: 'pause', worker });
        pending.push(cluster.pause(worker, between(200, sessionTimeout * 2)));
      }
    }
    if (f.partition !== undefined && random() < f.partition) {
      const worker = pick();
      if (worker !== undefined) {
        faults.push({ at: now(), kind: 'partition', worker });
        cluster.partition(worker);
        const heal = between(sessionTimeout / 2, sessionTimeout * 3);
        pending.push(
          sleep(heal).then(() => {
            cluster.heal(worker);
            cluster.cut(worker);
          }),
        );
      }
    }
    if (f.busRestart !== undefined && random() < f.busRestart && cluster.nats !== undefined) {
      faults.push({ at: now(), kind: 'busRestart' });
      pending.push(cluster.restartNats());
    }
  }

  // Heal: every fault ends, then the cluster settles and the workload stops.
  await Promise.allSettled(pending);
  for (const w of cluster.workers) if (w.state === 'paused') cluster.resume(w.id);
  for (const w of cluster.workers) if (w.state === 'running') cluster.heal(w.id);
  const healedAt = now();
  await cluster.waitForView(isSettled, { timeoutMs: 30_000, what: 'a settled view after the faults' });
  // The workload runs on through the recovery, so every session it uses shows it is served again.
  await sleep(recovery);
  running = false;
  const errors = (await Promise.all(loads)).filter((e) => e !== undefined);

  // Liveness probes and the final documents, then the journals: the model and the checks.
  const sessions = new Map<string, { app: string; session: string }>();
  for (const op of recorder.operations) sessions.set(`${op.app}/${op.session}`, { app: op.app, session: op.session });
  const finals = [];
  for (const { app, session } of sessions.values()) {
    const r = await clients[0]!.session(app, session).read();
    finals.push({ app, session, seq: r.seq, document: r.document, state: r.state, at: now() });
  }
  const bus = await cluster.openBus('scenario-checker');
  const journals = await readJournals(bus, cluster.cluster);
  const violations = checkHistory({
    history: recorder.operations,
    journals,
    applications: options.applications,
    finals,
    // Every session the workload used acknowledged a command between the heal and the end of the recovery.
    liveness: { healedAt, bound: now() - healedAt },
  });
  const thrown: Violation[] = errors.map((e, i) => ({
    invariant: 'workload',
    app: '',
    session: '',
    operations: [],
    at: now(),
    message: `workload ${i} threw: ${e instanceof Error ? e.message : String(e)}`,
  }));

  const hash = createHash('sha256');
  for (const op of recorder.operations)
    hash.update(`${op.client}|${op.app}|${op.session}|${op.kind}|${op.outcome}|${op.seq ?? ''}\n`);
  for (const fault of faults) hash.update(`${fault.kind}|${fault.worker ?? ''}\n`);
  const all = [...violations, ...thrown];
  return {
    ok: all.length === 0,
    violations: all,
    trace: hash.digest('hex'),
    history: recorder.operations,
    faults,
    stats: { wallMs: performance.now() - started, operations: recorder.operations.length, faults: faults.length },
  };
}
