import { fork } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { connect } from '../index.js';
import { startNatsServer } from '../harness/natsServer.js';
import { AllocSampler, type AllocSite, type AllocSummary } from './allocSampler.js';
import { PROFILE_APP, PROFILE_CLUSTER, type ProfileOp, type ProfileReply } from './profileChannel.js';

/**
 * Garbage and CPU per send, by process: an embedded nats-server, a worker in
 * a process of its own (bench/profileSendWorker.ts) and a client here; after
 * a warm-up, SENDS sends over SESSIONS warm sessions with WINDOW in flight
 * (commit 'journal') while the inspector's sampling heap profiler runs in
 * both processes (collected objects included). Prints bytes allocated and
 * CPU µs per send on each side and the top allocation sites, then the same
 * for an idle stretch (heartbeats, ticks) per second.
 *
 *   npx tsx bench/profileSend.ts [sends=20000] [idleMs=5000]
 *   PROFILE_INTERVAL=1024 PROFILE_TOP=25 PROFILE_CALLERS=0 tune the sampler;
 *   PROFILE_INTERVAL=0 measures CPU time only (no sampler running).
 *   Compiled, as the benches run, it names exact source lines (under tsx, functions only):
 *   npx tsc -p tsconfig.bench.json && node dist-bench/bench/profileSend.js
 */

const SESSIONS = 1_000;
const WINDOW = 256;
const SENDS = Number(process.argv[2] ?? 20_000);
const IDLE_MS = Number(process.argv[3] ?? 5_000);
const TOP = Number(process.env.PROFILE_TOP ?? 25);
const ADD = { type: 'ADD', by: 1 } as const;

async function windowed(total: number, window: number, op: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < total) await op(next++);
  };
  await Promise.all(Array.from({ length: Math.min(window, total) }, lane));
}

function startProfileWorker(url: string) {
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  const script = fileURLToPath(new URL(`./profileSendWorker${ext}`, import.meta.url));
  const execArgv = [...process.execArgv];
  if (ext === '.ts' && !execArgv.some((a) => a.includes('tsx'))) execArgv.push('--import', 'tsx');
  const child = fork(script, [url], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const waiting = new Map<number, (r: ProfileReply) => void>();
  let next = 0;
  const ready = new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`profile worker exited with ${code}`)));
  });
  child.on('message', (m: ProfileReply | { ready: true }) => {
    if (!('id' in m)) return;
    waiting.get(m.id)?.(m);
    waiting.delete(m.id);
  });
  const call = <T>(op: ProfileOp): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const id = next++;
      waiting.set(id, (r) => ('error' in r ? reject(new Error(r.error)) : resolve(r.value as T)));
      child.send({ id, op });
    });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    ready,
    call,
    close: async () => {
      child.disconnect();
      await exited;
    },
  };
}

function kb(bytes: number): string {
  return `${(bytes / 1024).toFixed(1)} KB`;
}

function printSummary(write: (l: string) => void, name: string, s: AllocSummary, per: number, unit: string): void {
  write(`${name}: ${kb(s.bytes / per)} allocated per ${unit}, CPU ${Math.round(s.cpuUs / per)} µs per ${unit}`);
  const rows = (title: string, list: readonly AllocSite[]): void => {
    write(`  ${title}`);
    for (const { site, bytes } of list) {
      write(
        `    ${((bytes / s.bytes) * 100).toFixed(1).padStart(5)}%  ${Math.round(bytes / per)
          .toString()
          .padStart(7)} B  ${site}`,
      );
    }
  };
  rows('by file/package:', s.files.slice(0, 12));
  rows('by site:', s.sites.slice(0, TOP));
}

async function main(): Promise<void> {
  const write = (line: string): void => void process.stdout.write(line + '\n');
  await using server = await startNatsServer();
  const worker = startProfileWorker(server.url);
  await worker.ready;
  const client = await connect({ nats: server.url, cluster: PROFILE_CLUSTER, label: 'profile' });
  const sessions = Array.from({ length: SESSIONS }, (_, i) => client.session(PROFILE_APP, `p-${i}`));
  // Warm-up: activate every session, then enough sends for the JIT to settle.
  await windowed(SESSIONS, WINDOW, (i) => sessions[i]!.send(ADD));
  await windowed(Math.min(SENDS, 10_000), WINDOW, (i) => sessions[i % SESSIONS]!.send(ADD));

  const sampler = new AllocSampler(Number(process.env.PROFILE_INTERVAL ?? 1024));
  await worker.call('start');
  await sampler.start();
  const t0 = performance.now();
  await windowed(SENDS, WINDOW, (i) => sessions[i % SESSIONS]!.send(ADD));
  const ms = performance.now() - t0;
  const clientSummary = await sampler.stop(TOP);
  const workerSummary = await worker.call<AllocSummary>('stop');

  write(
    `profile send: ${SENDS} sends over ${SESSIONS} sessions, ${WINDOW} in flight, commit journal; ` +
      `${Math.round(SENDS / (ms / 1000))} sends/s; ${sampler.samplingInterval > 0 ? `sampling every ${sampler.samplingInterval} B` : 'no sampling (CPU only)'}`,
  );
  write('');
  printSummary(write, 'worker process', workerSummary, SENDS, 'send');
  write('');
  printSummary(write, 'client process', clientSummary, SENDS, 'send');

  if (IDLE_MS > 0) {
    await sleep(1_000);
    await worker.call('start');
    await sleep(IDLE_MS);
    const idle = await worker.call<AllocSummary>('stop');
    write('');
    printSummary(
      write,
      `worker idle (${await worker.call<number>('activeSessions')} active sessions)`,
      idle,
      IDLE_MS / 1000,
      's',
    );
  }
  sampler.close();
  await client.close();
  await worker.close();
}

await main();
