import { parseArgs } from 'node:util';
import { BucketNotFoundError, CorruptClusterSettingError, createNatsBus, InvalidNameError, shardOf } from '../index.js';
import {
  adminInbox,
  bucketName,
  clientInbox,
  cmdSubject,
  escapeToken,
  readSubject,
  recordedShardCount,
} from '../internal.js';
import { CONNECTION_FLAGS, connectionSettings, type ConnectionSettings } from './connectionFlags.js';
import { CliUsageError } from './loadApplications.js';

export const SUBJECT_FLAGS = {
  ...CONNECTION_FLAGS,
  cluster: { type: 'string' },
  read: { type: 'boolean' },
  shards: { type: 'string' },
  label: { type: 'string' },
} as const;

export interface SubjectArgs extends ConnectionSettings {
  app: string;
  id: string;
  cluster: string;
  read: boolean;
  /** Given: no connection is made. */
  shards: number | undefined;
  /** The sender the subject names (default `admin`, the operator, whose inbox `cohort auth` reserves). */
  label: string;
}

export function parseSubjectArgs(args: string[]): SubjectArgs {
  const { values, positionals } = parseArgs({ args, options: SUBJECT_FLAGS, strict: true, allowPositionals: true });
  if (positionals.length !== 2)
    throw new CliUsageError('give the application and the session id: cohort subject APP ID', { showUsage: true });
  const [app, id] = positionals as [string, string];
  let shards: number | undefined;
  if (values.shards !== undefined) {
    shards = /^[1-9][0-9]{0,6}$/.test(values.shards) ? Number(values.shards) : NaN;
    if (!Number.isSafeInteger(shards))
      throw new CliUsageError(`--shards must be a shard count (a whole number from 1), got ${values.shards}`);
  }
  const label = values.label ?? 'admin';
  try {
    escapeToken(label, 'client label');
  } catch (err) {
    if (err instanceof InvalidNameError) throw new CliUsageError(`--label: ${err.message}`);
    throw err;
  }
  const connection = connectionSettings(values);
  if (shards === undefined && connection.servers === undefined)
    throw new CliUsageError('--nats URL (or NATS_URL) to read the cluster’s shard count, or --shards N to give it', {
      showUsage: true,
    });
  return {
    ...connection,
    app,
    id,
    cluster: values.cluster ?? 'demo',
    read: values.read === true,
    shards,
    label,
  };
}

/**
 * `cohort subject APP ID`: the subject a session's commands (`--read`:
 * reads) go to, for `nats req -H Content-Type:application/json`. The shard
 * comes from the session's key and the cluster's shard count, read from its
 * cluster bucket (or `--shards`). The last token is the sender's label:
 * `admin` by default, the operator, whose inbox (`_INBOX.admin`) is the one
 * a worker holding clients to their inboxes answers an `admin` request in.
 */
export async function runSubject(
  options: SubjectArgs & { write: (line: string) => void; warn: (line: string) => void },
): Promise<number> {
  let shards = options.shards;
  if (shards === undefined) {
    const bus = await createNatsBus({
      servers: options.servers!,
      name: 'cohort-subject',
      auth: options.auth,
      tls: options.tls,
      // The inbox of the role the label names: a reader's credentials may only take replies in `_INBOX.reader`.
      inboxPrefix: options.label === 'admin' ? adminInbox() : clientInbox(options.label),
    });
    try {
      const kv = await bus.kv({ bucket: bucketName(options.cluster, 'cluster'), create: false });
      shards = await recordedShardCount(kv, options.cluster);
      if (shards === undefined) {
        options.warn(`cluster ${options.cluster} has no shard count recorded yet: no worker has started it`);
        return 1;
      }
    } catch (err) {
      if (err instanceof BucketNotFoundError) {
        options.warn(`no cluster ${options.cluster} on that server: ${err.message}`);
        return 1;
      }
      if (err instanceof CorruptClusterSettingError) {
        options.warn(err.message);
        return 1;
      }
      throw err;
    } finally {
      await bus.close();
    }
  }
  try {
    const shard = shardOf(options.app, options.id, shards);
    const build = options.read ? readSubject : cmdSubject;
    options.write(build(options.cluster, shard, options.app, options.id, options.label));
  } catch (err) {
    if (err instanceof InvalidNameError) throw new CliUsageError(err.message);
    throw err;
  }
  return 0;
}
