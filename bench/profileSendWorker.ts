import { createLogger, defineApplication, startWorker } from '../index.js';
import { AllocSampler, type AllocSummary } from './allocSampler.js';
import { counterMachine } from './apps.js';
import {
  PROFILE_APP,
  PROFILE_CLUSTER,
  type ProfileOp,
  type ProfileReply,
  type ProfileRequest,
} from './profileChannel.js';

/**
 * The worker side of bench/profileSend.ts, in a process of its own as
 * deployed: the same worker as bench/sessionsWorker.ts (all shards, commit
 * 'journal'), with an allocation sampler the driver starts and stops over IPC.
 */

async function main(url: string): Promise<void> {
  const app = defineApplication({
    name: PROFILE_APP,
    machine: counterMachine,
    commit: 'journal',
    unusedSessionLifetime: 600_000,
  });
  const worker = await startWorker({
    nats: url,
    cluster: PROFILE_CLUSTER,
    applications: [app],
    logger: createLogger({ level: 'silent' }),
  });
  const sampler = new AllocSampler(Number(process.env.PROFILE_INTERVAL ?? 1024));
  const run = async (op: ProfileOp): Promise<AllocSummary | number | null> => {
    switch (op) {
      case 'start':
        await sampler.start();
        return null;
      case 'stop':
        return sampler.stop(Number(process.env.PROFILE_TOP ?? 25));
      case 'activeSessions':
        return worker.activeSessions;
    }
  };
  process.on('message', (req: ProfileRequest) => {
    void run(req.op).then(
      (value) => process.send?.({ id: req.id, value } satisfies ProfileReply),
      (err: unknown) =>
        process.send?.({ id: req.id, error: err instanceof Error ? err.message : String(err) } satisfies ProfileReply),
    );
  });
  process.once('disconnect', () => {
    sampler.close();
    void worker.stop().finally(() => process.exit(0));
  });
  process.send?.({ ready: true });
}

const url = process.argv[2];
if (url === undefined || process.send === undefined) {
  process.stderr.write('bench/profileSendWorker.ts is started by bench/profileSend.ts\n');
  process.exit(2);
}
main(url).catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
