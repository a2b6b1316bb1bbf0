import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NodeConnectionOptions } from '@nats-io/transport-node';
import { NatsServerDisposedError, NatsServerStartError } from './errors.js';
import { requireNatsServerBinary } from './natsServerBinary.js';

export interface NatsServerOptions {
  /** Enable JetStream (default true). */
  jetstream?: boolean;
  /** Client port; default: a free one chosen by the server (`-p -1`). */
  port?: number;
  /** JetStream store dir; default: a temporary dir removed on dispose. A given dir is never removed. */
  storeDir?: string;
  serverName?: string;
  /** Extra command-line arguments, appended last. */
  args?: string[];
  /** Deadline for each start and restart (default 10 000 ms). */
  startTimeoutMs?: number;
  /** The executable; default: requireNatsServerBinary(). */
  binary?: string;
  /**
   * How the readiness check connects, for a server that asks for credentials
   * or TLS (say `{ user, pass }`, an `authenticator`, `tls: { caFile }`).
   * With TLS, `url` is still `nats://`: nats.js upgrades when the server asks.
   * With per-user permissions, also the user's `inboxPrefix` (`_INBOX.worker`).
   */
  probe?: Pick<NodeConnectionOptions, 'user' | 'pass' | 'token' | 'authenticator' | 'tls' | 'inboxPrefix'>;
}

/** A local nats-server child process. Stop, kill and restart keep its port and store dir. */
export interface NatsServer extends AsyncDisposable {
  /** `nats://127.0.0.1:PORT` */
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  /** `--server_name`, when one was given (cluster nodes are n1, n2, ...). */
  readonly serverName: string | undefined;
  /** Pid of the current process, or of the last one once it has stopped. */
  readonly pid: number;
  /** The server's version as it reports it to clients, e.g. `2.9.10`. */
  readonly version: string;
  readonly running: boolean;
  /** The last lines the server printed (it logs to stderr); kept for error messages, never printed. */
  readonly output: readonly string[];
  /** SIGTERM and wait for exit; SIGKILL if it outlives the grace period. */
  stop(): Promise<void>;
  /** SIGKILL and wait for exit: a crash, for testing recovery. */
  kill(): Promise<void>;
  /** Start again on the same port and store dir (stopping first if running); resolves when ready. */
  restart(): Promise<void>;
  /** Stop, then remove the temporary dirs. */
  [Symbol.asyncDispose](): Promise<void>;
}

const DEFAULT_START_TIMEOUT_MS = 10_000;
const STOP_GRACE_MS = 5_000;
const OUTPUT_LINES = 64;
const POLL_MS = 25;

/**
 * Servers must not outlive this process, however it ends. An 'exit' handler
 * covers process.exit() and a normal end; but vitest ends its workers without
 * 'exit' (SIGTERM for forks, terminate() for threads), and nothing runs on
 * SIGKILL. So a small detached reaper process holds a pipe from us: when the
 * pipe closes, whatever the cause, it SIGKILLs the pids and removes the dirs we
 * had not yet released. `+p`/`-p` register and release a pid, `+d`/`-d` a dir.
 */
const REAPER = `
const pids = new Set(), dirs = new Set();
let buf = '';
process.stdin.setEncoding('utf8');
process.stdin.on('error', () => {});
process.stdin.on('data', (chunk) => {
  buf += chunk;
  for (let i = buf.indexOf('\\n'); i >= 0; i = buf.indexOf('\\n')) {
    const line = buf.slice(0, i); buf = buf.slice(i + 1);
    const set = line[1] === 'p' ? pids : dirs;
    if (line[0] === '+') set.add(line.slice(3)); else set.delete(line.slice(3));
  }
});
process.stdin.on('end', () => {
  for (const pid of pids) { try { process.kill(Number(pid), 'SIGKILL'); } catch {} }
  const { rmSync } = require('node:fs');
  let tries = 0;
  const sweep = () => {
    for (const dir of dirs) { try { rmSync(dir, { recursive: true, force: true }); dirs.delete(dir); } catch {} }
    if (dirs.size > 0 && ++tries < 20) setTimeout(sweep, 100);
  };
  sweep();
});
`;

const liveChildren = new Set<ChildProcess>();
const liveDirs = new Set<string>();
let reaper: ChildProcess | null = null;

function tellReaper(line: string): void {
  if (reaper === null) {
    reaper = spawn(process.execPath, ['-e', REAPER], { stdio: ['pipe', 'ignore', 'ignore'], detached: true, env: {} });
    reaper.on('error', () => {});
    reaper.stdin?.on('error', () => {});
    // Neither the reaper nor its pipe may keep this process alive.
    reaper.unref();
    (reaper.stdin as Socket | null)?.unref();
    process.on('exit', cleanUpNow);
  }
  reaper.stdin?.write(`${line}\n`);
}

function cleanUpNow(): void {
  for (const child of liveChildren) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  liveChildren.clear();
  for (const dir of liveDirs) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // a child not yet dead may still be writing: the reaper retries
    }
  }
  liveDirs.clear();
}

function trackChild(child: ChildProcess, pid: number): void {
  liveChildren.add(child);
  tellReaper(`+p ${pid}`);
  child.once('exit', () => {
    liveChildren.delete(child);
    tellReaper(`-p ${pid}`);
  });
}

/**
 * Another process of ours that must not outlive this one either (a worker
 * process of the test cluster): SIGKILLed by the reaper if this process dies
 * first, however it dies, even while the other is stopped with SIGSTOP.
 */
export function reapWithThisProcess(pid: number, exited: Promise<unknown>): void {
  tellReaper(`+p ${pid}`);
  void exited.then(() => tellReaper(`-p ${pid}`));
}

function trackDir(dir: string): void {
  liveDirs.add(dir);
  tellReaper(`+d ${dir}`);
}

function releaseDir(dir: string): void {
  liveDirs.delete(dir);
  tellReaper(`-d ${dir}`);
}

interface Exit {
  readonly code: number | null;
  readonly signal: string | null;
  readonly error?: Error;
}

/** One spawned process: its exit as a promise, and a bounded tail of its output. */
class ServerProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<Exit>;
  exit: Exit | null = null;

  constructor(binary: string, args: readonly string[], output: string[]) {
    this.child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const remember = (line: string): void => {
      output.push(line);
      if (output.length > OUTPUT_LINES) output.splice(0, output.length - OUTPUT_LINES);
    };
    for (const stream of [this.child.stdout, this.child.stderr]) {
      if (stream !== null) createInterface({ input: stream, crlfDelay: Infinity }).on('line', remember);
    }
    // 'close' (not 'exit') so the last lines, usually the reason for an early exit, are in the tail.
    this.exited = new Promise<Exit>((resolve) => {
      this.child.once('close', (code, signal) => resolve({ code, signal }));
      this.child.once('error', (error) => resolve({ code: null, signal: null, error }));
    }).then((exit) => (this.exit = exit));
    if (this.child.pid !== undefined) trackChild(this.child, this.child.pid);
  }

  get running(): boolean {
    return this.exit === null && this.child.pid !== undefined;
  }

  /** Send `signal`, wait up to `graceMs` for exit, then SIGKILL and wait for that. */
  async terminate(signal: NodeJS.Signals, graceMs: number): Promise<void> {
    if (this.exit !== null) return;
    this.child.kill(signal);
    if (signal !== 'SIGKILL') {
      const timer = sleep(graceMs, 'timeout' as const, { ref: false });
      if ((await Promise.race([this.exited, timer])) === 'timeout') this.child.kill('SIGKILL');
    }
    await this.exited;
  }
}

/** The client port from the ports file the server writes once it listens; null until it is complete. */
async function readClientPort(dir: string, pid: number): Promise<number | null> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return null;
  }
  // The file is `<executable name>_<pid>.ports`; match on the pid so a renamed or symlinked binary works too.
  const name = names.find((n) => n.endsWith(`_${pid}.ports`));
  if (name === undefined) return null;
  try {
    const ports = JSON.parse(await readFile(join(dir, name), 'utf8')) as { nats?: unknown };
    const first = Array.isArray(ports.nats) ? (ports.nats[0] as unknown) : undefined;
    if (typeof first !== 'string') return null;
    const port = Number(new URL(first).port);
    return Number.isInteger(port) && port > 0 ? port : null;
  } catch {
    // Written without rename: a half-written file does not parse yet.
    return null;
  }
}

interface Launch {
  readonly binary: string;
  readonly jetstream: boolean;
  readonly storeDir: string;
  readonly portsDir: string;
  readonly serverName: string | undefined;
  readonly extraArgs: readonly string[];
  readonly startTimeoutMs: number;
  readonly probe: NatsServerOptions['probe'];
}

function argsFor(launch: Launch, port: number): string[] {
  return [
    '-a',
    '127.0.0.1',
    '-p',
    String(port),
    '--ports_file_dir',
    launch.portsDir,
    ...(launch.jetstream ? ['-js', '-sd', launch.storeDir] : []),
    ...(launch.serverName === undefined ? [] : ['--server_name', launch.serverName]),
    ...launch.extraArgs,
  ];
}

/**
 * Spawn and wait until ready: the ports file names the port, a client connects,
 * and (with JetStream) the JetStream API answers. Kills the process on failure.
 */
async function launch(
  l: Launch,
  port: number,
  output: string[],
): Promise<{ proc: ServerProcess; port: number; version: string }> {
  const args = argsFor(l, port);
  const deadline = Date.now() + l.startTimeoutMs;
  const proc = new ServerProcess(l.binary, args, output);
  const fail = async (reason: 'exited' | 'timeout', cause?: unknown): Promise<never> => {
    await proc.terminate('SIGKILL', 0);
    const exit = proc.exit;
    if (exit?.error !== undefined) {
      throw new NatsServerStartError(
        'spawn-failed',
        { binary: l.binary, args, output: [...output] },
        { cause: exit.error },
      );
    }
    throw new NatsServerStartError(
      reason,
      {
        binary: l.binary,
        args,
        output: [...output],
        exitCode: reason === 'exited' ? (exit?.code ?? null) : null,
        signal: reason === 'exited' ? (exit?.signal ?? null) : null,
      },
      cause === undefined ? undefined : { cause },
    );
  };
  /** Wait a poll interval, waking early if the process exits. */
  const pause = (): Promise<unknown> => Promise.race([sleep(POLL_MS), proc.exited]);

  const pid = proc.child.pid;
  if (pid === undefined) return fail('exited');

  let found: number | null = null;
  while (found === null) {
    if (proc.exit !== null) return fail('exited');
    if (Date.now() > deadline) return fail('timeout');
    found = await readClientPort(l.portsDir, pid);
    if (found === null) await pause();
  }

  const url = `nats://127.0.0.1:${found}`;
  let lastError: unknown;
  for (;;) {
    if (proc.exit !== null) return fail('exited', lastError);
    const remaining = deadline - Date.now();
    if (remaining <= 0) return fail('timeout', lastError);
    const timeout = Math.max(100, Math.min(2_000, remaining));
    try {
      const nc = await connect({ ...l.probe, servers: url, reconnect: false, timeout });
      try {
        if (l.jetstream) await jetstreamManager(nc, { timeout });
        return { proc, port: found, version: nc.info?.version ?? 'unknown' };
      } finally {
        await nc.close();
      }
    } catch (error) {
      lastError = error;
    }
    await pause();
  }
}

class LocalNatsServer implements NatsServer {
  readonly output: string[] = [];
  port = 0;
  version = 'unknown';
  private proc: ServerProcess | null = null;
  private disposed = false;

  constructor(
    private readonly l: Launch,
    /** Temporary dir holding the ports dir and, unless one was given, the store dir. */
    private readonly baseDir: string,
  ) {}

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  get storeDir(): string {
    return this.l.storeDir;
  }

  get serverName(): string | undefined {
    return this.l.serverName;
  }

  get pid(): number {
    return this.proc?.child.pid ?? 0;
  }

  get running(): boolean {
    return this.proc?.running ?? false;
  }

  /** First start: port -1 (or the requested one); restarts reuse the port it got. */
  async start(port: number): Promise<void> {
    const started = await launch(this.l, port, this.output);
    this.proc = started.proc;
    this.port = started.port;
    this.version = started.version;
  }

  async stop(): Promise<void> {
    await this.proc?.terminate('SIGTERM', STOP_GRACE_MS);
  }

  async kill(): Promise<void> {
    await this.proc?.terminate('SIGKILL', 0);
  }

  async restart(): Promise<void> {
    if (this.disposed) throw new NatsServerDisposedError(this.url);
    await this.stop();
    await this.start(this.port);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.disposed = true;
    await this.stop();
    await rm(this.baseDir, { recursive: true, force: true });
    releaseDir(this.baseDir);
  }
}

/** Start a local nats-server on 127.0.0.1 (JetStream on, free port, temporary store) and wait until it is ready. */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  const binary = options.binary ?? requireNatsServerBinary();
  const baseDir = await mkdtemp(join(tmpdir(), 'cohort-nats-'));
  trackDir(baseDir);
  const portsDir = join(baseDir, 'ports');
  const storeDir = options.storeDir ?? join(baseDir, 'store');
  await mkdir(portsDir);
  await mkdir(storeDir, { recursive: true });
  const server = new LocalNatsServer(
    {
      binary,
      jetstream: options.jetstream ?? true,
      storeDir,
      portsDir,
      serverName: options.serverName,
      extraArgs: options.args ?? [],
      startTimeoutMs: options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS,
      probe: options.probe,
    },
    baseDir,
  );
  try {
    await server.start(options.port ?? -1);
  } catch (error) {
    await rm(baseDir, { recursive: true, force: true });
    releaseDir(baseDir);
    throw error;
  }
  return server;
}
