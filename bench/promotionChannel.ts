import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * The bench's end of a worker process of the promotion section
 * (bench/promotionWorker.ts): start it, ask it things over IPC, kill it
 * with SIGKILL. The names both sides use live here, so the bench never
 * loads the worker's module (that would start a worker).
 */

export const PROMOTION_APP = 'promoted';
/** A snapshot every this many events: a session's reload reads one and the journal entries after it. */
export const PROMOTION_SNAPSHOT_EVERY = 8;

export interface PromotionWorkerArgs {
  readonly url: string;
  readonly cluster: string;
  readonly id: string;
  readonly zone: string;
  /** UNSAFE.reloadOnPromotion: a promoted secondary loads its sessions instead of adopting its copies. */
  readonly reload: boolean;
}

/**
 * `view`: the worker's view; `adoptions`: its counter; `applied`: the sum of
 * what it has applied as secondary of `shards` (the last journal sequence of
 * each); `servingSince`: for each of `shards` it serves as primary now, since
 * when (Date.now(), seen every 10 ms in its own process), else null.
 */
export type PromotionOp = 'view' | 'adoptions' | 'applied' | 'servingSince';
export interface PromotionRequest {
  readonly id: number;
  readonly op: PromotionOp;
  readonly shards?: readonly number[];
}
export type PromotionReply =
  { readonly id: number; readonly value: unknown } | { readonly id: number; readonly error: string };
export type PromotionHello = { readonly ready: true } | { readonly failed: string };

export interface PromotionWorker {
  readonly id: string;
  readonly pid: number;
  call(op: PromotionOp, shards?: readonly number[]): Promise<unknown>;
  /** SIGKILL; resolves once the process has gone. */
  kill(): Promise<void>;
}

export async function forkPromotionWorker(args: PromotionWorkerArgs): Promise<PromotionWorker> {
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  const script = fileURLToPath(new URL(`./promotionWorker${ext}`, import.meta.url));
  const execArgv = [...process.execArgv];
  if (ext === '.ts' && !execArgv.some((a) => a.includes('tsx'))) execArgv.push('--import', 'tsx');
  const child: ChildProcess = fork(script, [JSON.stringify(args)], {
    execArgv,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const hello = await new Promise<PromotionHello>((resolve) => {
    child.once('message', (m) => resolve(m as PromotionHello));
    void exited.then(() => resolve({ failed: `exited with code ${child.exitCode ?? child.signalCode}` }));
  });
  if ('failed' in hello) {
    child.kill('SIGKILL');
    throw new Error(`bench worker ${args.id} did not start: ${hello.failed}`);
  }
  const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let next = 0;
  child.on('message', (m: PromotionReply) => {
    const w = waiting.get(m.id);
    if (w === undefined) return;
    waiting.delete(m.id);
    if ('error' in m) w.reject(new Error(`bench worker ${args.id}: ${m.error}`));
    else w.resolve(m.value);
  });
  void exited.then(() => {
    for (const w of waiting.values()) w.reject(new Error(`bench worker ${args.id} exited`));
    waiting.clear();
  });
  return {
    id: args.id,
    pid: child.pid!,
    call: (op, shards) =>
      new Promise<unknown>((resolve, reject) => {
        const id = next++;
        waiting.set(id, { resolve, reject });
        child.send({ id, op, ...(shards !== undefined && { shards }) } satisfies PromotionRequest);
      }),
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
