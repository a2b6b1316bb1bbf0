import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * The IPC channel between a bench and a process it forks (the sessions
 * worker, the journaling service): the bench asks for an operation by name,
 * the child answers with its result or an error. Each child declares its
 * operations as a map from name to result type, shared by both ends.
 */

export interface OpRequest {
  readonly id: number;
  readonly op: string;
}
export type OpReply =
  { readonly id: number; readonly value: unknown } | { readonly id: number; readonly error: string };
export type Hello = { readonly ready: true } | { readonly failed: string };

export interface BenchProcess<Ops> {
  readonly pid: number;
  call<K extends keyof Ops & string>(op: K): Promise<Ops[K]>;
  /** Closes the channel (the child stops on that) and waits for the process to exit. */
  close(): Promise<void>;
}

/**
 * Forks `bench/<script>` with the nats URL as its argument, under tsx when
 * the bench itself runs from source, and waits for its hello.
 */
export async function forkBenchProcess<Ops>(script: string, url: string, what: string): Promise<BenchProcess<Ops>> {
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  const path = fileURLToPath(new URL(`./${script}${ext}`, import.meta.url));
  const execArgv = [...process.execArgv, '--expose-gc'];
  if (ext === '.ts' && !execArgv.some((a) => a.includes('tsx'))) execArgv.push('--import', 'tsx');
  const child: ChildProcess = fork(path, [url], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const hello = await new Promise<Hello>((resolve) => {
    child.once('message', (m) => resolve(m as Hello));
    void exited.then(() => resolve({ failed: `exited with code ${child.exitCode ?? child.signalCode}` }));
  });
  if ('failed' in hello) {
    child.kill('SIGKILL');
    throw new Error(`${what} did not start: ${hello.failed}`);
  }
  const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let next = 0;
  child.on('message', (m: OpReply) => {
    const w = waiting.get(m.id);
    if (w === undefined) return;
    waiting.delete(m.id);
    if ('error' in m) w.reject(new Error(`${what}: ${m.error}`));
    else w.resolve(m.value);
  });
  void exited.then(() => {
    for (const w of waiting.values()) w.reject(new Error(`${what} exited`));
    waiting.clear();
  });
  return {
    pid: child.pid!,
    call: <K extends keyof Ops & string>(op: K) =>
      new Promise<Ops[K]>((resolve, reject) => {
        const id = next++;
        waiting.set(id, { resolve: (v) => resolve(v as Ops[K]), reject });
        child.send({ id, op } satisfies OpRequest);
      }),
    close: async () => {
      if (child.exitCode === null && child.signalCode === null) child.disconnect();
      await exited;
    },
  };
}

/**
 * The child's end: answers each request with `run(op)`, stops when the
 * bench goes away (however it ended), and says hello once ready.
 */
export function answerBench<Ops>(
  run: (op: keyof Ops & string) => Promise<Ops[keyof Ops]>,
  stop: () => Promise<void>,
): void {
  process.on('message', (req: OpRequest) => {
    void run(req.op as keyof Ops & string).then(
      (value) => process.send?.({ id: req.id, value } satisfies OpReply),
      (err: unknown) =>
        process.send?.({ id: req.id, error: err instanceof Error ? err.message : String(err) } satisfies OpReply),
    );
  });
  process.once('disconnect', () => void stop().finally(() => process.exit(0)));
  process.send?.({ ready: true } satisfies Hello);
}

/** The entry of a bench child: `main(url)`, or a clear exit when started by hand. */
export function runBenchChild(script: string, main: (url: string) => Promise<void>): void {
  const url = process.argv[2];
  if (url === undefined || process.send === undefined) {
    process.stderr.write(`${script} is started by a bench (a nats URL and an IPC channel)\n`);
    process.exit(2);
  }
  main(url).catch((err: unknown) => {
    process.send?.({ failed: err instanceof Error ? (err.stack ?? err.message) : String(err) } satisfies Hello);
    process.exit(1);
  });
}
