import { setTimeout as sleep } from 'node:timers/promises';
import { connect } from '../index.js';
import { startNatsServer } from '../harness/natsServer.js';
import { CpuPerOp } from './cpu.js';
import { HeapSampler, type AllocationProfile } from './heapSampling.js';
import { pad, windowed } from './stats.js';
import { BENCH_APP, BENCH_CLUSTER, startBenchWorker } from './workerChannel.js';

/**
 * `npm run bench -- profile`: where a send's garbage and CPU go, by
 * process, for whoever cuts them. The sessions bench's worker process and a
 * client here; after a warm-up, SENDS sends over 1,000 warm sessions with
 * 256 in flight (commit 'journal') while V8's sampling heap profiler runs in
 * both processes (collected objects counted); then the same for an idle
 * stretch of the worker. Not judged: the sessions bench holds the goals.
 * COHORT_PROFILE_SENDS and COHORT_PROFILE_IDLE_MS change the two lengths.
 */

const SESSIONS = 1_000;
const WINDOW = 256;
const SENDS = Number(process.env.COHORT_PROFILE_SENDS ?? 20_000);
const IDLE_MS = Number(process.env.COHORT_PROFILE_IDLE_MS ?? 5_000);
const TOP = 25;
const ADD = { type: 'ADD', by: 1 } as const;

function kb(bytes: number): string {
  return `${(bytes / 1024).toFixed(1)} KB`;
}

function sites(write: (line: string) => void, profile: AllocationProfile, per: number, unit: string): void {
  for (const s of profile.top.slice(0, TOP)) {
    const share = `${((s.bytes / profile.bytes) * 100).toFixed(1)}%`;
    write(
      `  ${pad(share, 7)}${pad(`${Math.round(s.bytes / per)} B/${unit}`, 12)}${s.site}${s.via ? `  via ${s.via}` : ''}`,
    );
  }
}

export async function benchProfile(write: (line: string) => void): Promise<number> {
  await using server = await startNatsServer();
  const worker = await startBenchWorker(server.url);
  try {
    const client = await connect({ nats: server.url, cluster: BENCH_CLUSTER, label: 'profile' });
    const sessions = Array.from({ length: SESSIONS }, (_, i) => client.session(BENCH_APP, `p-${i}`));
    // Warm-up: every session active, and enough sends for the JIT to settle.
    await windowed(SESSIONS, WINDOW, (i) => sessions[i]!.send(ADD));
    await windowed(Math.min(SENDS, 10_000), WINDOW, (i) => sessions[i % SESSIONS]!.send(ADD));
    const cpu = new CpuPerOp<number>({ worker: worker.pid, client: process.pid, 'nats-server': server.pid });
    const here = new HeapSampler();
    await worker.call('heapSamplingStart');
    await here.start();
    const rate = await cpu.measure(SENDS, () => windowed(SENDS, WINDOW, (i) => sessions[i % SESSIONS]!.send(ADD)));
    const clientProfile = await here.stop(TOP);
    const workerProfile = await worker.call('heapSamplingStop');
    const perOp = cpu.perOp();
    write(
      `cohort bench profile: ${SENDS} sends over ${SESSIONS} sessions, ${WINDOW} in flight, commit journal, ${Math.round(rate)} sends/s ` +
        `under V8's sampling heap profiler (1 sample per ${workerProfile.samplingInterval} B on average, collected objects counted)`,
    );
    for (const [name, profile] of [
      ['worker', workerProfile],
      ['client', clientProfile],
    ] as const) {
      const us = perOp?.[name];
      write('');
      write(
        `${name} process: ${kb(profile.bytes / SENDS)} allocated per send (GC accounting: ${kb(profile.gcBytes / SENDS)})` +
          (us === undefined ? '' : `, ${Math.round(us)} µs CPU per send with the sampler on`),
      );
      sites(write, profile, SENDS, 'send');
    }
    await client.close();
    if (IDLE_MS > 0) {
      await sleep(1_000);
      await worker.call('heapSamplingStart');
      await sleep(IDLE_MS);
      const idle = await worker.call('heapSamplingStop');
      const seconds = IDLE_MS / 1000;
      write('');
      write(
        `worker idle (${await worker.call('activeSessions')} active sessions, all shards): ${kb(idle.bytes / seconds)} allocated per second`,
      );
      sites(write, idle, seconds, 's');
    }
  } finally {
    await worker.close();
  }
  return 0;
}
