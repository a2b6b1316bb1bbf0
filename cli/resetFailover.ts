import { parseArgs } from 'node:util';
import { createNatsBus, NoRespondersError, ResetFailoverRefusedError, TimeoutError } from '../index.js';
import { adminInbox, requestFailoverReset, waitForView } from '../internal.js';
import { CONNECTION_FLAGS, connectionSettings, type ConnectionSettings } from './connectionFlags.js';
import { CliUsageError } from './loadApplications.js';
import { describeView } from './up.js';
import { parseMilliseconds } from './worker.js';

export const RESET_FAILOVER_FLAGS = {
  ...CONNECTION_FLAGS,
  cluster: { type: 'string' },
  timeout: { type: 'string' },
} as const;

export interface ResetFailoverArgs extends ConnectionSettings {
  servers: string[];
  cluster: string;
  timeout: number;
}

export function parseResetFailoverArgs(args: string[]): ResetFailoverArgs {
  const { values } = parseArgs({ args, options: RESET_FAILOVER_FLAGS, strict: true, allowPositionals: false });
  const connection = connectionSettings(values);
  if (connection.servers === undefined)
    throw new CliUsageError('--nats URL (or NATS_URL) is required: the cluster to act on', { showUsage: true });
  return {
    ...connection,
    servers: connection.servers,
    cluster: values.cluster ?? 'demo',
    timeout: parseMilliseconds('timeout', values.timeout) ?? 30_000,
  };
}

/**
 * `cohort reset-failover`: asks the leader to reset the failover quota
 * (members dropped for silence no longer counted; a halted automatic
 * failover runs again), then prints the first view written after it with
 * automatic failover running. Exit 0 once there is one (or there was
 * nothing to reset), 1 when the leader refused or no such view came in time.
 */
export async function runResetFailover(
  options: ResetFailoverArgs & { write: (line: string) => void; warn: (line: string) => void },
): Promise<number> {
  const bus = await createNatsBus({
    servers: options.servers,
    name: 'cohort-reset-failover',
    auth: options.auth,
    tls: options.tls,
    inboxPrefix: adminInbox(),
  });
  try {
    const waiter = await waitForView(bus, options.cluster, (view) => view.safeguards.failoverHalted === null, {
      // Only views written from the request on can carry it.
      include: 'updates',
      onUnreadable: (err, revision) =>
        options.warn(`view revision ${revision} skipped: ${err instanceof Error ? err.message : String(err)}`),
    });
    try {
      const answer = await requestFailoverReset(bus, options.cluster);
      options.write(`failover quota reset, leader ${answer.leader}: ${answer.reason}`);
      if (!answer.changed) return 0;
      const view = await waiter.until(options.timeout);
      if (view === null) {
        options.warn(`no view with automatic failover running within ${options.timeout} ms`);
        return 1;
      }
      options.write(describeView(view));
      return 0;
    } finally {
      waiter.stop();
    }
  } catch (err) {
    if (err instanceof ResetFailoverRefusedError) {
      options.warn(err.message);
      return 1;
    }
    if (err instanceof NoRespondersError || err instanceof TimeoutError) {
      options.warn(`no leader of cluster ${options.cluster} answered: ${err.message}`);
      return 1;
    }
    throw err;
  } finally {
    await bus.close();
  }
}
