import { parseArgs } from 'node:util';
import { createNatsBus, FailoverRefusedError } from '../index.js';
import { adminInbox, requestFailover, waitForView } from '../internal.js';
import { CONNECTION_FLAGS, connectionSettings, type ConnectionSettings } from './connectionFlags.js';
import { CliUsageError } from './loadApplications.js';

export const FAILOVER_FLAGS = {
  shard: { type: 'string' },
  to: { type: 'string' },
  force: { type: 'boolean' },
  ...CONNECTION_FLAGS,
  cluster: { type: 'string' },
  timeout: { type: 'string' },
} as const;

export interface FailoverArgs extends ConnectionSettings {
  shard: number;
  to: string;
  force: boolean;
  servers: string[];
  cluster: string;
  timeout: number;
}

export function parseFailoverArgs(args: string[]): FailoverArgs {
  const { values } = parseArgs({ args, options: FAILOVER_FLAGS, strict: true });
  const shard = Number(values.shard);
  if (values.shard === undefined || !Number.isInteger(shard) || shard < 0)
    throw new CliUsageError('--shard N (a shard number) is required', { showUsage: true });
  if (!values.to)
    throw new CliUsageError('--to WORKER (a member id, as `cohort up` or the view shows it) is required', {
      showUsage: true,
    });
  const connection = connectionSettings(values);
  if (connection.servers === undefined)
    throw new CliUsageError('--nats URL (or NATS_URL) is required: the cluster to act on', { showUsage: true });
  const timeout = values.timeout === undefined ? 30_000 : Number(values.timeout);
  if (!(timeout > 0)) throw new CliUsageError(`--timeout must be a positive number of ms, got ${values.timeout}`);
  return {
    shard,
    to: values.to,
    force: values.force === true,
    ...connection,
    servers: connection.servers,
    cluster: values.cluster ?? 'demo',
    timeout,
  };
}

/**
 * `cohort failover`: asks the leader to move a shard (a planned swap, or
 * forced), then follows the views until the shard is ACTIVE on the target,
 * printing each step.
 */
export async function runFailover(
  options: FailoverArgs & { write: (line: string) => void; warn: (line: string) => void },
): Promise<number> {
  const bus = await createNatsBus({
    servers: options.servers,
    name: 'cohort-failover',
    auth: options.auth,
    tls: options.tls,
    inboxPrefix: adminInbox(),
  });
  try {
    const waiter = await waitForView(
      bus,
      options.cluster,
      (view) => {
        const s = view.shards[options.shard];
        if (s === undefined) return false;
        options.write(
          `view ${view.viewId}: shard ${options.shard} ${s.state} on ${s.primary ?? '-'}${s.next ? ` -> ${s.next}` : ''} (epoch ${s.epoch})`,
        );
        return s.state === 'ACTIVE' && s.primary === options.to;
      },
      {
        // Only the views from the request on tell its story.
        include: 'updates',
        onUnreadable: (err, revision) =>
          options.warn(`view revision ${revision} skipped: ${err instanceof Error ? err.message : String(err)}`),
      },
    );
    try {
      const { leader } = await requestFailover(bus, options.cluster, {
        shard: options.shard,
        to: options.to,
        force: options.force,
      });
      options.write(
        `${options.force ? 'forced' : 'planned'} failover of shard ${options.shard} to ${options.to} accepted by leader ${leader}`,
      );
      const view = await waiter.until(options.timeout);
      if (view === null) {
        options.warn(`shard ${options.shard} was not ACTIVE on ${options.to} within ${options.timeout} ms`);
        return 1;
      }
      const lossy = view.possibleDataLoss.includes(options.shard);
      options.write(
        `done: shard ${options.shard} is ACTIVE on ${options.to} (epoch ${view.shards[options.shard]!.epoch})${lossy ? '; the view records possible data loss for it' : ''}`,
      );
      return 0;
    } finally {
      waiter.stop();
    }
  } catch (err) {
    if (err instanceof FailoverRefusedError) {
      options.warn(err.message);
      return 1;
    }
    throw err;
  } finally {
    await bus.close();
  }
}
