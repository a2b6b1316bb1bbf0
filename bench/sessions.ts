import { availableParallelism } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type SessionHandle } from '../index.js';
import { startNatsServer } from '../harness/natsServer.js';
import { CpuPerOp, cpuTimeMs } from './cpu.js';
import { startRawNats } from './rawNats.js';
import { abba, fmtMs, fmtRate, median, pad, serial, summarize } from './stats.js';
import { BENCH_APP, BENCH_CLUSTER, startBenchWorker } from './workerChannel.js';

/**
 * Sessions on a worker against raw nats.js, measured in one run on one
 * embedded server. As deployed, the worker (all shards, commit 'journal')
 * runs in a process of its own (bench/sessionsWorker.ts) and the client in
 * this one; the raw echo responder sits in the worker's process and the raw
 * publisher here, so both baselines cross the same boundaries a send does.
 * Alternating (ABBA) rounds so drift weighs on both sides alike.
 */

const CLUSTER = BENCH_CLUSTER;
const APP = BENCH_APP;
const PAYLOAD = new Uint8Array(128).fill(7);
const ADD = { type: 'ADD', by: 1 } as const;

const ROUNDS = 4;
const WARM = 300;
const LAT_N = 1_000; // per round: 4 000 sends in all
const TP_SESSIONS = 1_000;
const TP_WINDOW = 256;
const TP_TOTAL = 8_000; // per round
const RAW_JS_TOTAL = 16_000; // per round
const RD_SESSIONS = 100;
const RD_WINDOW = 32;
const RD_TOTAL = 10_000; // per round
const RAW_RR_TOTAL = 20_000; // per round
const MEM_N = 5_000;
const MEM_WINDOW = 256;
const ACT_M = 500;
const ACT_WARM = 200;
const ACT_RR_N = 500; // raw request/reply samples on each side of the activation run

const GOAL_LATENCY = 1.25;
const GOAL_SEND_RATE = 0.5;
const GOAL_READ_RATE = 0.7;
const GOAL_BYTES = 6_144;
const GOAL_ACTIVATION_MS = 1;

/** `total` calls of `op(i)`, i = 0..total-1 in start order, with `window` in flight; operations per second. */
async function windowed(total: number, window: number, op: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  const lane = async (): Promise<void> => {
    while (next < total) await op(next++);
  };
  await Promise.all(Array.from({ length: Math.min(window, total) }, lane));
  return total / ((performance.now() - t0) / 1000);
}

/** An op for `serial` that reads each session once, in order. */
function readEach(sessions: readonly SessionHandle[]): () => Promise<unknown> {
  let i = 0;
  return () => sessions[i++]!.read();
}

/**
 * Waits until the server has used under 10% of a core for 3 windows of 200 ms in a row (read from
 * /proc; elsewhere a fixed 2 s). Returns the time waited in ms.
 */
async function untilServerQuiet(pid: number, limitMs = 60_000): Promise<number> {
  const t0 = performance.now();
  const cpuMs = (): Promise<number | undefined> => cpuTimeMs(pid);
  const first = await cpuMs();
  if (first === undefined) {
    await sleep(2_000);
    return performance.now() - t0;
  }
  let last: number = first;
  let calm = 0;
  while (calm < 3 && performance.now() - t0 < limitMs) {
    await sleep(200);
    const now: number = (await cpuMs()) ?? last;
    calm = now - last < 20 ? calm + 1 : 0;
    last = now;
  }
  return performance.now() - t0;
}

function fmtS(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

interface Row {
  label: string;
  cohort: string;
  raw: string;
  ratio: string;
  goal: string;
  /** undefined: shown, not judged. */
  met?: boolean;
}

export async function benchSessions(write: (line: string) => void): Promise<number> {
  const phases: [string, number][] = [];
  let phaseStart = performance.now();
  const phase = (name: string): void => {
    const now = performance.now();
    phases.push([name, now - phaseStart]);
    phaseStart = now;
  };

  await using server = await startNatsServer();

  // Raw baselines: the echo responder is in the worker's process; a stream on its own subjects.
  const worker = await startBenchWorker(server.url);
  const rawNats = await startRawNats(server.url, 'BENCH_SESSIONS_RAW', { echo: false });
  const rawRequest = (): Promise<unknown> => rawNats.request(PAYLOAD);
  const rawSubjects = Array.from({ length: TP_SESSIONS }, (_, i) => `bench.raw.js.${i}`);
  const rawPublish = (i = 0): Promise<unknown> => rawNats.publish(rawSubjects[i % rawSubjects.length]!, PAYLOAD);

  const client = await connect({ nats: server.url, cluster: CLUSTER, label: 'bench' });
  phase('start server, worker, client');

  // 5 first (reported last). Activation from a snapshot: the first read after passivation. It runs
  // while the journal is small, because passivation purges each session's journal below its
  // snapshot, and on nats-server 2.9 a purge by subject costs server time that grows with the
  // stream (~8 ms each on a 21k-message journal): passivating thousands of sessions on a large
  // stream keeps the server busy for seconds, and a read in that window measures the backlog.
  const actWarm = Array.from({ length: ACT_WARM }, (_, i) => client.session(APP, `aw-${i}`));
  const act = Array.from({ length: ACT_M }, (_, i) => client.session(APP, `act-${i}`));
  await windowed(ACT_WARM, 64, (i) => actWarm[i]!.send(ADD));
  await windowed(ACT_M, 64, (i) => act[i]!.send(ADD));
  await serial(WARM, rawRequest);
  phase(`create ${ACT_WARM + ACT_M} sessions`);
  const passivatedForActivation = await worker.call('passivate');
  const quiet1 = await untilServerQuiet(server.pid);
  phase(`passivate ${passivatedForActivation} (snapshots written), then server quiet after ${fmtS(quiet1)}`);
  await serial(ACT_WARM, readEach(actWarm)); // warms the activation path
  await worker.call('passivate'); // those again: no new events, so no new snapshot and no purge
  const actRr: number[] = [...(await serial(ACT_RR_N, rawRequest))];
  const firstReads = summarize(await serial(ACT_M, readEach(act)));
  actRr.push(...(await serial(ACT_RR_N, rawRequest)));
  const warmReads = summarize(await serial(ACT_M, readEach(act)));
  const actRrP50 = summarize(actRr).p50;
  const activationNet = firstReads.p50 - actRrP50;
  phase(`5. activation (${ACT_M} first reads)`);

  // 1. send at commit 'journal', 1 in flight, against request/reply + publish-ack.
  const lat = client.session(APP, 'latency');
  await serial(WARM, () => rawPublish());
  await serial(WARM, () => lat.send(ADD));
  const rrSamples: number[] = [];
  const jsSamples: number[] = [];
  const sendSamples: number[] = [];
  const rawLatency = async (): Promise<void> => {
    rrSamples.push(...(await serial(LAT_N, rawRequest)));
    jsSamples.push(...(await serial(LAT_N, () => rawPublish())));
  };
  const cohortLatency = async (): Promise<void> => {
    sendSamples.push(...(await serial(LAT_N, () => lat.send(ADD))));
  };
  await abba(ROUNDS, rawLatency, cohortLatency);
  const rr = summarize(rrSamples);
  const jsAck = summarize(jsSamples);
  const send = summarize(sendSamples);
  phase('1. send latency');

  // 2. send throughput over warm sessions, 256 in flight, against pipelined publish-ack.
  const tp = Array.from({ length: TP_SESSIONS }, (_, i) => client.session(APP, `tp-${i}`));
  await windowed(TP_SESSIONS, TP_WINDOW, (i) => tp[i]!.send(ADD)); // activation, not measured
  await windowed(TP_SESSIONS, TP_WINDOW, (i) => tp[i]!.send(ADD));
  await windowed(TP_SESSIONS, TP_WINDOW, (i) => rawPublish(i));
  const pids = { worker: worker.pid, client: process.pid, 'nats-server': server.pid };
  const rawCpu = new CpuPerOp<number>(pids);
  const sendCpu = new CpuPerOp<number>(pids);
  const { raw: rawJsRates, cohort: sendRates } = await abba(
    ROUNDS,
    () => rawCpu.measure(RAW_JS_TOTAL, () => windowed(RAW_JS_TOTAL, TP_WINDOW, (i) => rawPublish(i))),
    () => sendCpu.measure(TP_TOTAL, () => windowed(TP_TOTAL, TP_WINDOW, (i) => tp[i % TP_SESSIONS]!.send(ADD))),
  );
  const sendRate = median(sendRates);
  const rawJsRate = median(rawJsRates);
  phase('2. send throughput');

  // 3. read throughput over warm sessions, 32 in flight, against pipelined request/reply.
  const rd = Array.from({ length: RD_SESSIONS }, (_, i) => client.session(APP, `rd-${i}`));
  await windowed(RD_SESSIONS, RD_WINDOW, (i) => rd[i]!.send(ADD));
  await windowed(RD_SESSIONS * 10, RD_WINDOW, (i) => rd[i % RD_SESSIONS]!.read());
  await windowed(RD_SESSIONS * 10, RD_WINDOW, rawRequest);
  const { raw: rawRrRates, cohort: readRates } = await abba(
    ROUNDS,
    () => windowed(RAW_RR_TOTAL, RD_WINDOW, rawRequest),
    () => windowed(RD_TOTAL, RD_WINDOW, (i) => rd[i % RD_SESSIONS]!.read()),
  );
  const readRate = median(readRates);
  const rawRrRate = median(rawRrRates);
  phase('3. read throughput');

  // 4. Memory per active idle session: heap after a full GC, before and after activating MEM_N more.
  // The sessions of 1-3 and 5 stay active throughout: they are in both readings.
  const mem = Array.from({ length: MEM_N }, (_, i) => client.session(APP, `mem-${i}`));
  const activeBefore = await worker.call('activeSessions');
  const heapBefore = await worker.call('heapAfterGc');
  await windowed(MEM_N, MEM_WINDOW, (i) => mem[i]!.send(ADD));
  const heapAfter = await worker.call('heapAfterGc');
  const bytesPerSession = (heapAfter - heapBefore) / MEM_N;
  const activeAfter = await worker.call('activeSessions');
  phase(`4. memory (activate ${MEM_N})`);

  const rows: Row[] = [];
  const latencyRow = (label: string, cohort: number, raw: number, rawLabel: string, judged: boolean): void => {
    const ratio = cohort / raw;
    rows.push({
      label,
      cohort: fmtMs(cohort),
      raw: `${fmtMs(raw)} ${rawLabel}`,
      ratio: `${ratio.toFixed(2)}x`,
      goal: `<= ${GOAL_LATENCY.toFixed(2)}x`,
      ...(judged ? { met: ratio <= GOAL_LATENCY } : {}),
    });
  };
  latencyRow('send p50 (journal, 1 in flight)', send.p50, rr.p50 + jsAck.p50, '(rr+ack)', true);
  latencyRow('send p99 (journal, 1 in flight)', send.p99, rr.p99 + jsAck.p99, '(rr+ack)', true);
  rows.push({
    label: '  raw request/reply p50 / p99',
    cohort: '',
    raw: `${fmtMs(rr.p50)} / ${fmtMs(rr.p99)}`,
    ratio: '',
    goal: '(shown)',
  });
  rows.push({
    label: '  raw publish-ack p50 / p99',
    cohort: '',
    raw: `${fmtMs(jsAck.p50)} / ${fmtMs(jsAck.p99)}`,
    ratio: '',
    goal: '(shown)',
  });
  const sendShare = sendRate / rawJsRate;
  rows.push({
    label: `send throughput (${TP_SESSIONS} sessions, ${TP_WINDOW} in flight)`,
    cohort: fmtRate(sendRate),
    raw: `${fmtRate(rawJsRate)} (ack)`,
    ratio: `${(sendShare * 100).toFixed(1)}%`,
    goal: `>= ${(GOAL_SEND_RATE * 100).toFixed(0)}%`,
    met: sendShare >= GOAL_SEND_RATE,
  });
  const readShare = readRate / rawRrRate;
  rows.push({
    label: `read throughput (${RD_SESSIONS} sessions, ${RD_WINDOW} in flight)`,
    cohort: fmtRate(readRate),
    raw: `${fmtRate(rawRrRate)} (rr)`,
    ratio: `${(readShare * 100).toFixed(1)}%`,
    goal: `>= ${(GOAL_READ_RATE * 100).toFixed(0)}%`,
    met: readShare >= GOAL_READ_RATE,
  });
  rows.push({
    label: `heap per active idle session (${MEM_N})`,
    cohort: `${Math.round(bytesPerSession).toLocaleString('en-US')} B`,
    raw: '-',
    ratio: '',
    goal: `<= ${GOAL_BYTES} B`,
    met: bytesPerSession <= GOAL_BYTES,
  });
  rows.push({
    label: `first read after passivation p50 (${ACT_M})`,
    cohort: fmtMs(firstReads.p50),
    raw: `${fmtMs(actRrP50)} (rr)`,
    ratio: `${(firstReads.p50 / actRrP50).toFixed(2)}x`,
    goal: '(shown)',
  });
  rows.push({
    label: 'first read after passivation p99',
    cohort: fmtMs(firstReads.p99),
    raw: '',
    ratio: '',
    goal: '(shown)',
  });
  rows.push({
    label: 'activation (net) p50: first read - rr p50',
    cohort: fmtMs(activationNet),
    raw: '',
    ratio: '',
    goal: `<= ${fmtMs(GOAL_ACTIVATION_MS)}`,
    met: activationNet <= GOAL_ACTIVATION_MS,
  });
  rows.push({
    label: '  warm read p50 (same sessions, after)',
    cohort: fmtMs(warmReads.p50),
    raw: `${fmtMs(actRrP50)} (rr)`,
    ratio: `${(warmReads.p50 / actRrP50).toFixed(2)}x`,
    goal: '(shown)',
  });

  write(
    `cohort bench sessions: nats-server ${server.version} (embedded), ${availableParallelism()} cores, one worker process (all shards, commit journal) ` +
      `and a client in this one; raw baselines: ${PAYLOAD.length}-byte bodies, same run; ${ROUNDS} rounds in ABBA order`,
  );
  write('');
  write(`  ${pad('figure', 48)}${pad('cohort', 18)}${pad('raw baseline', 26)}${pad('ratio', 8)}goal`);
  let misses = 0;
  for (const row of rows) {
    if (row.met === false) misses++;
    const verdict = row.met === undefined ? '' : row.met ? ' met' : ' MISSED';
    write(`  ${pad(row.label, 48)}${pad(row.cohort, 18)}${pad(row.raw, 26)}${pad(row.ratio, 8)}${row.goal}${verdict}`);
  }
  write('');
  write(
    `latency: ${send.n} sends, ${rr.n} requests, ${jsAck.n} publish-acks; send p50 ${fmtMs(send.p50)} vs rr p50 + ack p50 = ${fmtMs(rr.p50 + jsAck.p50)}`,
  );
  const cpuLine = (what: string, perOp: Record<string, number> | undefined): string =>
    perOp === undefined
      ? `${what}: not measured (no /proc)`
      : `${what}: ${Object.entries(perOp)
          .filter(([, us]) => us >= 1)
          .map(([name, us]) => `${name} ${Math.round(us)}`)
          .join(' + ')} = ${Math.round(Object.values(perOp).reduce((a, b) => a + b, 0))} µs`;
  write('CPU time per operation in the throughput rounds, by process (from /proc; 2 cores shared by all three):');
  write(`  ${cpuLine('send', sendCpu.perOp())}`);
  write(`  ${cpuLine('raw publish-ack', rawCpu.perOp())}`);
  write(
    '  (a send costs the worker a request in, a JetStream publish-ack, a patch and a reply out; a raw publish-ack the client one request)',
  );
  write(
    `throughput rounds (send/s): ${sendRates.map((r) => Math.round(r)).join(', ')}; raw ack/s: ${rawJsRates.map((r) => Math.round(r)).join(', ')}`,
  );
  write(
    `throughput rounds (read/s): ${readRates.map((r) => Math.round(r)).join(', ')}; raw rr/s: ${rawRrRates.map((r) => Math.round(r)).join(', ')}`,
  );
  write(
    `memory: ${activeBefore} -> ${activeAfter} active sessions in the worker process; heapUsed delta after full GCs (--expose-gc) / ${MEM_N}`,
  );
  write(
    `activation: ${ACT_M} sessions with one event each, snapshotted by worker.passivate() while the journal was small; server quiet after ${fmtS(quiet1)}`,
  );
  write(`time: ${phases.map(([name, ms]) => `${name} ${fmtS(ms)}`).join('; ')}`);
  write('');
  write(misses === 0 ? 'all session goals met' : `${misses} session goal(s) MISSED`);

  await client.close();
  const active = await worker.call('activeSessions');
  const stopMs = await worker.call('stop');
  await worker.close();
  write(`worker.stop() with ${active} active sessions (each snapshotted): ${fmtS(stopMs)}`);
  await rawNats.close();
  return 0;
}
