import { createLogger, createMemoryBus, type createMemoryServer, startWorker, type Worker } from '../index.js';
import {
  type Hosted,
  type LocalWorker,
  readableLogLine,
  type WorkerExit,
  type WorkerSettings,
  zoneOf,
} from '../harness/localWorker.js';
import type { loadApplications } from './loadApplications.js';

/**
 * A worker of the local cluster hosted in this process on the in-memory
 * bus, for hosts without a nats-server: a kill closes its connection, as a
 * crash would, and it cannot be paused.
 */

/** An in-process worker cannot be frozen: its timers and promises share this process. */
function notPausable(id: string): never {
  throw new Error(`worker ${id} runs in this process: only a worker process can be paused`);
}

export function hostWorker(
  options: WorkerSettings,
  server: ReturnType<typeof createMemoryServer>,
  index: number,
  load: Promise<Awaited<ReturnType<typeof loadApplications>>>,
): Hosted {
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
    options.onLine?.(
      worker,
      `worker ${id} serving ${applications.map((a) => a.name).join(', ')} on the in-memory bus (cluster ${options.cluster}, zone ${zone})`,
    );
  })();
  ready.catch(() => {
    onExit({ code: 1, signal: null });
    void bus.close().catch(() => {});
  });
  return { worker, ready, killNow: () => void bus.close().catch(() => {}) };
}
