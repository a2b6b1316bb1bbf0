/**
 * One error class per way a local nats-server can fail to appear. Callers (the
 * CLI, test helpers) branch on the class and its fields, never on message text.
 */
export class NatsHarnessError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** No usable nats-server executable: `searched` lists every path that was tried, in order. */
export class NatsServerNotFoundError extends NatsHarnessError {
  constructor(
    readonly searched: readonly string[],
    /** Set when NATS_SERVER_BIN named a file that is missing or not executable (it is never silently bypassed). */
    readonly envValue?: string,
    options?: ErrorOptions,
  ) {
    const head =
      envValue === undefined ? 'nats-server was not found' : `NATS_SERVER_BIN=${envValue} is not an executable file`;
    const where = envValue === undefined ? `\nlooked in:\n  ${searched.join('\n  ')}` : '';
    super(
      `${head}${where}\n` +
        'install it with `apt-get install nats-server` (Debian/Ubuntu), ' +
        'or set NATS_SERVER_BIN to the path of a nats-server binary',
      options,
    );
  }
}

/** Why a start failed: the process could not be spawned, exited before it was ready, or was not ready in time. */
export type NatsServerStartFailure = 'spawn-failed' | 'exited' | 'timeout';

/** A nats-server that did not become ready; `output` is the tail of what it printed, for the message and for logs. */
export class NatsServerStartError extends NatsHarnessError {
  readonly binary: string;
  readonly args: readonly string[];
  readonly output: readonly string[];
  readonly exitCode: number | null;
  readonly signal: string | null;
  constructor(
    readonly reason: NatsServerStartFailure,
    process: {
      readonly binary: string;
      readonly args: readonly string[];
      readonly output: readonly string[];
      readonly exitCode?: number | null;
      readonly signal?: string | null;
    },
    options?: ErrorOptions,
  ) {
    const { binary, args, output } = process;
    const exitCode = process.exitCode ?? null;
    const signal = process.signal ?? null;
    const what =
      reason === 'spawn-failed'
        ? 'could not be spawned'
        : reason === 'exited'
          ? `exited before it was ready (${signal === null ? `code ${String(exitCode)}` : `signal ${signal}`})`
          : 'was not ready before the deadline';
    const cause = options?.cause instanceof Error ? `\nlast error: ${options.cause.message}` : '';
    const tail = output.length === 0 ? '\n(no output)' : `\nlast output:\n  ${output.join('\n  ')}`;
    super(`nats-server ${what}: ${binary} ${args.join(' ')}${cause}${tail}`, options);
    this.binary = binary;
    this.args = args;
    this.output = output;
    this.exitCode = exitCode;
    this.signal = signal;
  }
}

/** A cluster whose nodes all started but which never formed a usable JetStream cluster in time. */
export class NatsClusterStartError extends NatsHarnessError {
  constructor(
    readonly clusterName: string,
    /** Output tail of each node, in node order. */
    readonly outputs: readonly (readonly string[])[],
    options?: ErrorOptions,
  ) {
    const cause = options?.cause instanceof Error ? `: ${options.cause.message}` : '';
    const tails = outputs.map((lines, i) => `\nnode ${i + 1}:\n  ${lines.slice(-16).join('\n  ')}`).join('');
    super(`nats cluster ${clusterName} did not become ready${cause}${tails}`, options);
  }
}

/** restart() on a server that was already disposed: its temporary dirs are gone. */
export class NatsServerDisposedError extends NatsHarnessError {
  constructor(
    readonly url: string,
    options?: ErrorOptions,
  ) {
    super(`nats-server ${url} was disposed and cannot be restarted`, options);
  }
}
