import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * The bench's end of its worker process (bench/sessionsWorker.ts): start it,
 * ask it things over IPC, stop it. The names both sides use live here, so the
 * bench never loads the worker's module (that would start a worker).
 */

export const BENCH_CLUSTER = 'bench';
export const BENCH_APP = 'tally';

export type WorkerOp = 'passivate' | 'activeSessions' | 'heapAfterGc' | 'stop';
export interface WorkerRequest {
  readonly id: number;
  readonly op: WorkerOp;
}
export type WorkerReply =
  { readonly id: number; readonly value: number } | { readonly id: number; readonly error: string };
export type WorkerHello = { readonly ready: true } | { readonly failed: string };

export interface BenchWorker {
  readonly pid: number;
  /** Sessions passivated, active sessions, heapUsed in bytes after full GCs, or ms worker.stop() took. */
  call(op: WorkerOp): Promise<number>;
  /** Stops the worker (if not yet) and waits for the process to exit. */
  close(): Promise<void>;
}

export async function startBenchWorker(url: string): Promise<BenchWorker> {
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  const script = fileURLToPath(new URL(`./sessionsWorker${ext}`, import.meta.url));
  const execArgv = [...process.execArgv, '--expose-gc'];
  if (ext === '.ts' && !execArgv.some((a) => a.includes('tsx'))) execArgv.push('--import', 'tsx');
  const child: ChildProcess = fork(script, [url], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const hello = await new Promise<WorkerHello>((resolve) => {
    child.once('message', (m) => resolve(m as WorkerHello));
    void exited.then(() => resolve({ failed: `exited with code ${child.exitCode ?? child.signalCode}` }));
  });
  if ('failed' in hello) {
    child.kill('SIGKILL');
    throw new Error(`bench worker did not start: ${hello.failed}`);
  }
  const waiting = new Map<number, { resolve: (v: number) => void; reject: (e: Error) => void }>();
  let next = 0;
  child.on('message', (m: WorkerReply) => {
    const w = waiting.get(m.id);
    if (w === undefined) return;
    waiting.delete(m.id);
    if ('error' in m) w.reject(new Error(`bench worker: ${m.error}`));
    else w.resolve(m.value);
  });
  void exited.then(() => {
    for (const w of waiting.values()) w.reject(new Error('bench worker exited'));
    waiting.clear();
  });
  return {
    pid: child.pid!,
    call: (op) =>
      new Promise<number>((resolve, reject) => {
        const id = next++;
        waiting.set(id, { resolve, reject });
        child.send({ id, op } satisfies WorkerRequest);
      }),
    close: async () => {
      if (child.exitCode === null && child.signalCode === null) child.disconnect();
      await exited;
    },
  };
}
