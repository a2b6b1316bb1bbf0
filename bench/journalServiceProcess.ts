import { answerBench, runBenchChild } from './benchProcess.js';
import { HeapSampler } from './heapSampling.js';
import { startJournalService } from './journalService.js';
import type { JournalServiceOps } from './journalClient.js';

/**
 * The journaling service of `npm run bench -- sessions` in a process of its
 * own, beside the worker's, as a hand-written service would be deployed.
 * Driven over IPC by the bench; exits when that channel closes.
 */
runBenchChild('bench/journalServiceProcess.ts', async (url) => {
  const service = await startJournalService(url);
  const sampler = new HeapSampler();
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => (stopping ??= service.close());
  answerBench<JournalServiceOps>(async (op) => {
    switch (op) {
      case 'stats':
        return service.stats();
      case 'heapSamplingStart':
        await sampler.start();
        return 0;
      case 'heapSamplingStop':
        return sampler.stop();
      case 'stop':
        await stop();
        return 0;
    }
  }, stop);
});
