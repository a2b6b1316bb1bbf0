/**
 * What the operator commands (status, sessions, inspect, tail, drain,
 * rebalance) share: the flags every one takes, their parsing, the admin
 * connection, and a view that must be there.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { BucketNotFoundError, createNatsBus, type Bus, type View } from '../index.js';
import {
  adminInbox,
  bucketName,
  readView,
  serviceSubject,
  validateApp,
  validateCluster,
  type ServiceEndpoint,
} from '../internal.js';
import { CONNECTION_FLAGS, connectionSettings, type ConnectionSettings } from './connectionFlags.js';
import { CliUsageError } from './loadApplications.js';

type Options = NonNullable<ParseArgsConfig['options']>;

export const OPERATOR_FLAGS = {
  ...CONNECTION_FLAGS,
  cluster: { type: 'string' },
  json: { type: 'boolean' },
} as const satisfies Options;

export const OPERATOR_USAGE = `  --nats URL            the cluster's NATS servers (or NATS_URL), with the connection flags below
  --cluster NAME        the cohort cluster (default demo)
  --json                machine-readable output: one JSON document (streaming commands: one per line)
  --log-level LEVEL     fatal, error, warn, info, debug, trace or silent
  --help                this text`;

export interface OperatorArgs extends ConnectionSettings {
  servers: string[];
  cluster: string;
  json: boolean;
}

export interface OperatorIO {
  write(line: string): void;
  warn(line: string): void;
}

/** A failure the command explains in one line (exit code 1): nothing went wrong in cohort, the answer is no. */
export class OperatorError extends Error {}

/** The flags and positionals after the command name; CliUsageError for anything wrong. */
export function parseOperatorArgs<O extends Options>(
  args: string[],
  extra: O,
  positionals: { min: number; max: number; names: string },
): {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
  base: OperatorArgs;
} {
  const parsed = parseArgs({ args, options: { ...OPERATOR_FLAGS, ...extra }, strict: true, allowPositionals: true });
  const values = parsed.values as Record<string, string | boolean | string[] | undefined>;
  if (parsed.positionals.length < positionals.min || parsed.positionals.length > positionals.max)
    throw new CliUsageError(
      positionals.max === 0
        ? `takes no arguments (got ${parsed.positionals.map((p) => JSON.stringify(p)).join(' ')})`
        : `needs ${positionals.names} (got ${parsed.positionals.length} arguments)`,
      { showUsage: true },
    );
  const connection = connectionSettings(values as Parameters<typeof connectionSettings>[0]);
  if (connection.servers === undefined)
    throw new CliUsageError('--nats URL (or NATS_URL) is required: the cluster to look at', { showUsage: true });
  const cluster = (values['cluster'] as string | undefined) ?? 'demo';
  try {
    validateCluster(cluster);
  } catch (err) {
    throw new CliUsageError(`--cluster ${JSON.stringify(cluster)}: ${(err as Error).message}`);
  }
  return {
    values,
    positionals: parsed.positionals,
    base: { ...connection, servers: connection.servers, cluster, json: values['json'] === true },
  };
}

/** An application name as the subjects take it; CliUsageError otherwise. */
export function checkApp(app: string): string {
  try {
    validateApp(app);
  } catch (err) {
    throw new CliUsageError(`application ${JSON.stringify(app)}: ${(err as Error).message}`);
  }
  return app;
}

/** A whole number flag from `min`, or undefined when absent. */
export function wholeNumber(flag: string, value: unknown, min = 0): number | undefined {
  if (value === undefined) return undefined;
  const n = typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value.trim()) : NaN;
  if (!Number.isSafeInteger(n) || n < min)
    throw new CliUsageError(`--${flag} needs a whole number, at least ${min} (got ${JSON.stringify(value)})`);
  return n;
}

/** A connection as the admin user (its inbox), for `name`. */
export function connectAdmin(args: OperatorArgs, name: string): Promise<Bus> {
  return createNatsBus({
    servers: args.servers,
    name: `cohort-${name}`,
    auth: args.auth,
    tls: args.tls,
    inboxPrefix: adminInbox(),
  });
}

/** The cluster's current view; OperatorError when it has none (no worker ever joined, or a wrong --cluster). */
export async function currentView(bus: Bus, cluster: string): Promise<View> {
  // Only opened: a misspelled --cluster must not leave a bucket behind (nor need the right to make one).
  const kv = await bus.kv({ bucket: bucketName(cluster, 'cluster'), create: false }).catch((err: unknown) => {
    if (err instanceof BucketNotFoundError)
      throw new OperatorError(`cluster ${cluster} does not exist here: no bucket ${bucketName(cluster, 'cluster')}`);
    throw err;
  });
  const found = await readView(kv);
  if (found === null)
    throw new OperatorError(`cluster ${cluster} has no view: no worker has joined it (is --cluster right?)`);
  return found.view;
}

/** Milliseconds for people: `0.4 s`, `12 s`, `3 min`. */
export function age(ms: number): string {
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 120_000) return `${Math.round(ms / 1000)} s`;
  return `${Math.round(ms / 60_000)} min`;
}

/** Columns padded to the widest cell. */
export function table(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd(),
  );
}

/** Resolves at the first SIGINT or SIGTERM (a streaming command's end); the returned function stops listening. */
export function untilInterrupted(): { done: Promise<void>; dispose(): void } {
  let resolve!: () => void;
  const done = new Promise<void>((r) => (resolve = r));
  const on = (): void => resolve();
  process.once('SIGINT', on);
  process.once('SIGTERM', on);
  const keepAlive = setInterval(() => {}, 1 << 30);
  return {
    done,
    dispose: () => {
      clearInterval(keepAlive);
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
    },
  };
}

/**
 * The worker behind a view's member id: a worker that rejoined is listed as
 * `w1~2`, while its service answers under its own id `w1`.
 */
export function workerOfMember(member: string): string {
  const at = member.lastIndexOf('~');
  return at > 0 && /^\d+$/.test(member.slice(at + 1)) ? member.slice(0, at) : member;
}

/**
 * One worker's service endpoint (JSON), or why it did not answer. Its answer
 * is another process's word: the caller checks every field it uses.
 */
export async function askWorker(
  bus: Bus,
  cluster: string,
  worker: string,
  endpoint: ServiceEndpoint,
  request: unknown = {},
  timeout = 3_000,
): Promise<{ ok: true; body: Record<string, unknown> } | { ok: false; error: string }> {
  try {
    const m = await bus.request(serviceSubject(cluster, worker, endpoint), utf8.encode(JSON.stringify(request)), {
      timeout,
    });
    const body: unknown = JSON.parse(new TextDecoder().decode(m.data));
    if (typeof body !== 'object' || body === null || Array.isArray(body))
      return { ok: false, error: 'the answer is not a JSON object' };
    const error = (body as Record<string, unknown>)['error'] as { message?: unknown } | undefined;
    if (error !== undefined) return { ok: false, error: String(error.message ?? 'refused') };
    return { ok: true, body: body as Record<string, unknown> };
  } catch (err) {
    return { ok: false, error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) };
  }
}

const utf8 = new TextEncoder();

/**
 * Runs an operator command on an admin connection, closed after. An
 * OperatorError, or one of `refusals` (the cluster said no), is explained
 * in one line with exit code 1; anything else is a failure of the tool.
 */
export async function withAdmin(
  options: OperatorArgs & OperatorIO,
  name: string,
  run: (bus: Bus) => Promise<number>,
  refusals: readonly (abstract new (...args: never[]) => Error)[] = [],
): Promise<number> {
  const bus = await connectAdmin(options, name);
  try {
    return await run(bus);
  } catch (err) {
    if (err instanceof OperatorError || refusals.some((r) => err instanceof r)) {
      options.warn((err as Error).message);
      return 1;
    }
    throw err;
  } finally {
    await bus.close();
  }
}
