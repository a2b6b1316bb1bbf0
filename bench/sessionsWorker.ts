import { createLogger, defineApplication, startWorker } from '../index.js';
import { counterMachine } from './apps.js';
import { answerBench, runBenchChild } from './benchProcess.js';
import { HeapSampler } from './heapSampling.js';
import { startEchoResponder } from './rawNats.js';
import { BENCH_APP, BENCH_CLUSTER, type WorkerOps } from './workerChannel.js';

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

runBenchChild('bench/sessionsWorker.ts', async (url) => {
  const app = defineApplication({
    name: BENCH_APP,
    machine: counterMachine,
    commit: 'journal',
    unusedSessionLifetime: 600_000,
    // For `npm run bench -- scatter`.
    queries: { total: (doc) => doc.n },
  });
  const worker = await startWorker({
    nats: url,
    cluster: BENCH_CLUSTER,
    applications: [app],
    logger: createLogger({ level: 'silent' }),
  });
  const echo = await startEchoResponder(url);
  const sampler = new HeapSampler();
  const gc = (globalThis as { gc?: () => void }).gc;
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      await worker.stop();
      await echo.close();
    })());
  answerBench<WorkerOps>(async (op) => {
    switch (op) {
      case 'passivate':
        return worker.passivate();
      case 'activeSessions':
        return worker.activeSessions;
      case 'heapAfterGc':
        if (gc === undefined) throw new Error('the bench worker runs without --expose-gc');
        return heapAfterGc(gc);
      case 'heapSamplingStart':
        await sampler.start();
        return 0;
      case 'heapSamplingStop':
        return sampler.stop(25);
      case 'stop': {
        const t0 = performance.now();
        await stop();
        return performance.now() - t0;
      }
    }
  }, stop);
});
