import { createLogger, defineApplication, startWorker } from '../index.js';
import { UNSAFE } from '../internal.js';
import { counterMachine } from './apps.js';
import {
  PROMOTION_APP,
  PROMOTION_SNAPSHOT_EVERY,
  type PromotionHello,
  type PromotionReply,
  type PromotionRequest,
  type PromotionWorkerArgs,
} from './promotionChannel.js';

/**
 * A worker process of the promotion section of `npm run bench -- failover`:
 * a member of the cluster with the default membership timings, its sessions
 * kept in memory for the whole run, with or without promotion from copies
 * (UNSAFE.reloadOnPromotion). Driven over IPC by bench/promotion.ts, which
 * kills it with SIGKILL; exits when that channel closes.
 */

async function main(args: PromotionWorkerArgs): Promise<void> {
  const app = defineApplication({
    name: PROMOTION_APP,
    machine: counterMachine,
    commit: 'journal',
    snapshotEvery: PROMOTION_SNAPSHOT_EVERY,
    // Neither sessions nor copies are passivated or swept during the run.
    unusedSessionLifetime: 600_000,
  });
  const worker = await startWorker({
    nats: args.url,
    cluster: args.cluster,
    id: args.id,
    zone: args.zone,
    applications: [app],
    logger: createLogger({ level: process.env['COHORT_LOG_LEVEL'] === 'debug' ? 'debug' : 'error' }),
    ...(args.reload && { [UNSAFE]: { reloadOnPromotion: true } }),
  });
  // When each shard it serves began to be served here: watched in this process, so the bench's questions
  // (over IPC, to a worker busy activating sessions) do not make the figure late.
  const since = new Map<number, number>();
  setInterval(() => {
    const now = Date.now();
    const serving = new Set(worker.serving);
    for (const shard of serving) if (!since.has(shard)) since.set(shard, now);
    for (const shard of since.keys()) if (!serving.has(shard)) since.delete(shard);
  }, 10).unref();
  const run = (req: PromotionRequest): unknown => {
    switch (req.op) {
      case 'view':
        return worker.view;
      case 'adoptions':
        return worker.adoptions;
      case 'applied':
        return (req.shards ?? []).reduce((sum, shard) => sum + (worker.replicaStatus(shard).applied ?? 0), 0);
      case 'servingSince':
        return (req.shards ?? []).map((shard) => since.get(shard) ?? null);
    }
  };
  process.on('message', (req: PromotionRequest) => {
    try {
      process.send?.({ id: req.id, value: run(req) } satisfies PromotionReply);
    } catch (err) {
      process.send?.({ id: req.id, error: err instanceof Error ? err.message : String(err) } satisfies PromotionReply);
    }
  });
  // The bench is gone (however it ended): no clean stop needed, its nats-server goes with it.
  process.once('disconnect', () => process.exit(0));
  process.send?.({ ready: true } satisfies PromotionHello);
}

const arg = process.argv[2];
if (arg === undefined || process.send === undefined) {
  process.stderr.write(
    'bench/promotionWorker.ts is started by bench/promotion.ts (its arguments and an IPC channel)\n',
  );
  process.exit(2);
}
main(JSON.parse(arg) as PromotionWorkerArgs).catch((err: unknown) => {
  process.send?.({ failed: err instanceof Error ? (err.stack ?? err.message) : String(err) } satisfies PromotionHello);
  process.exit(1);
});
