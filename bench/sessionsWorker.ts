import { createLogger, defineApplication, startWorker } from '../index.js';
import { counterMachine } from './apps.js';
import { startEchoResponder } from './rawNats.js';
import {
  BENCH_APP,
  BENCH_CLUSTER,
  type WorkerHello,
  type WorkerOp,
  type WorkerReply,
  type WorkerRequest,
} from './workerChannel.js';

/**
 * The worker side of `npm run bench -- sessions`, in a process of its own as
 * in a deployment, so the client and the worker each have their own JS
 * thread. The raw echo responder lives here too: the request/reply baseline
 * crosses the same process boundary a send does. Driven over IPC by
 * bench/sessions.ts; exits when that channel closes.
 */

/** heapUsed after full collections, with a turn of the event loop between them so finalizers run. */
async function heapAfterGc(gc: () => void): Promise<number> {
  for (let i = 0; i < 4; i++) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
  return process.memoryUsage().heapUsed;
}

async function main(url: string): Promise<void> {
  const app = defineApplication({
    name: BENCH_APP,
    machine: counterMachine,
    commit: 'journal',
    unusedSessionLifetime: 600_000,
  });
  const worker = await startWorker({
    nats: url,
    cluster: BENCH_CLUSTER,
    applications: [app],
    logger: createLogger({ level: 'silent' }),
  });
  const echo = await startEchoResponder(url);
  const gc = (globalThis as { gc?: () => void }).gc;
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      await worker.stop();
      await echo.close();
    })());
  const run = async (op: WorkerOp): Promise<number> => {
    switch (op) {
      case 'passivate':
        return worker.passivate();
      case 'activeSessions':
        return worker.activeSessions;
      case 'heapAfterGc':
        if (gc === undefined) throw new Error('the bench worker runs without --expose-gc');
        return heapAfterGc(gc);
      case 'stop': {
        const t0 = performance.now();
        await stop();
        return performance.now() - t0;
      }
    }
  };
  process.on('message', (req: WorkerRequest) => {
    void run(req.op).then(
      (value) => process.send?.({ id: req.id, value } satisfies WorkerReply),
      (err: unknown) =>
        process.send?.({ id: req.id, error: err instanceof Error ? err.message : String(err) } satisfies WorkerReply),
    );
  });
  // The bench is gone (however it ended): stop rather than run on alone.
  process.once('disconnect', () => void stop().finally(() => process.exit(0)));
  process.send?.({ ready: true } satisfies WorkerHello);
}

const url = process.argv[2];
if (url === undefined || process.send === undefined) {
  process.stderr.write('bench/sessionsWorker.ts is started by bench/sessions.ts (a nats URL and an IPC channel)\n');
  process.exit(2);
}
main(url).catch((err: unknown) => {
  process.send?.({ failed: err instanceof Error ? (err.stack ?? err.message) : String(err) } satisfies WorkerHello);
  process.exit(1);
});
