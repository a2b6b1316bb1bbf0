import { availableParallelism } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type SessionHandle } from '../index.js';
import { SUBJECT_ROOT } from '../internal.js';
import { startNatsServer } from '../harness/natsServer.js';
import { CpuPerOp, cpuTimeMs } from './cpu.js';
import type { AllocationProfile } from './heapSampling.js';
import { connectJournalClient, startJournalServiceProcess } from './journalClient.js';
import { startRawNats } from './rawNats.js';
import { measureSendBodies } from './sendBodies.js';
import { abba, fmtKb, fmtMs, fmtRate, fmtX, median, pad, serial, summarize, windowed } from './stats.js';
import { BENCH_APP, BENCH_CLUSTER, startBenchWorker } from './workerChannel.js';
import { DEFAULT_WATCH_LEASE } from '../internal.js';

/**
 * Sessions on a worker against the fair floor, measured in one run on one
 * embedded server: every send figure beside a hand-written journaling
 * service in plain nats.js (bench/journalService.ts: request in, append with
 * Nats-Msg-Id and the session's expected last subject sequence, ack, reply),
 * which is what a user would write instead of cohort. As deployed, the worker
 * (all shards, commit 'journal') and the service each run in a process of
 * their own (bench/sessionsWorker.ts, bench/journalServiceProcess.ts) and
 * the client in this one. Raw request/reply and publish-ack are shown beside
 * them for scale; the raw echo responder sits in the worker's process.
 * Alternating (ABBA) rounds so drift weighs on both sides alike.
 */

const CLUSTER = BENCH_CLUSTER;
const APP = BENCH_APP;
const PAYLOAD = new Uint8Array(128).fill(7);
const ADD = { type: 'ADD', by: 1 } as const;

const BODY_SESSION = 'bodysize';

const ROUNDS = 4;
const WARM = 300;
const LAT_N = 1_000; // per round: 4 000 sends in all
const TP_SESSIONS = 1_000;
const TP_WINDOW = 256;
const TP_TOTAL = 8_000; // per round, on each side
const RAW_JS_TOTAL = 16_000; // per round
const HOT_WINDOW = 64;
const HOT_TOTAL = 2_000; // per round, on each side
const ALLOC_N = 4_000; // sends (and service requests) under the heap sampler
const RD_SESSIONS = 100;
const RD_WINDOW = 32;
const RD_TOTAL = 10_000; // per round
const RAW_RR_TOTAL = 20_000; // per round
const MEM_N = 5_000;
const MEM_WINDOW = 256;
const ACT_M = 500;
const ACT_WARM = 200;
const ACT_RR_N = 500; // raw request/reply samples on each side of the activation run

const GOAL_P50 = 1.15;
const GOAL_P99 = 1.5;
const GOAL_SEND_RATE = 0.85;
const GOAL_HOT_RATE = 3;
const GOAL_ALLOC_BYTES = 10 * 1024;
const GOAL_READ_RATE = 0.9;
const GOAL_BYTES = 2_048;
const GOAL_ACTIVATION_MS = 1;

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

  // Three processes on one server: the worker (with the raw echo responder), the journaling service, this client.
  const worker = await startBenchWorker(server.url);
  // From here on the worker serves its shards: for one watch lease it publishes every patch (README "Patches go only where someone reads them").
  const servingSince = performance.now();
  const service = await startJournalServiceProcess(server.url);
  const rawNats = await startRawNats(server.url, 'BENCH_SESSIONS_RAW', { echo: false });
  const rawRequest = (): Promise<unknown> => rawNats.request(PAYLOAD);
  const rawSubjects = Array.from({ length: TP_SESSIONS }, (_, i) => `bench.raw.js.${i}`);
  const rawPublish = (i = 0): Promise<unknown> => rawNats.publish(rawSubjects[i % rawSubjects.length]!, PAYLOAD);

  const client = await connect({ nats: server.url, cluster: CLUSTER, label: 'bench' });
  // The service's requests carry bodies the size of a send's, read off the wire.
  const bodies = await measureSendBodies(
    server.url,
    {
      cmd: `${SUBJECT_ROOT}.${CLUSTER}.cmd.*.${APP}.${BODY_SESSION}.>`,
      journal: `${SUBJECT_ROOT}.${CLUSTER}.jrnl.*.${APP}.${BODY_SESSION}`,
    },
    client.session(APP, BODY_SESSION),
    ADD,
  );
  const jsvc = await connectJournalClient(server.url, new Uint8Array(bodies.request).fill(7));
  phase('start server, worker, service, client');

  // 7 first (reported last). Activation from a snapshot: the first read after passivation. It runs
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
  phase(`7. activation (${ACT_M} first reads)`);

  // The sends are measured as a worker that has served a while runs them: past the takeover grace, when only
  // watched sessions' patches go out (none here: the bench subscribes to nothing).
  const graceLeft = servingSince + DEFAULT_WATCH_LEASE + 1_000 - performance.now();
  if (graceLeft > 0) await sleep(graceLeft);
  phase(`wait out the takeover grace (${fmtS(DEFAULT_WATCH_LEASE)} after the worker took its shards)`);

  // 1. send at commit 'journal', 1 in flight, against the journaling service (rr and publish-ack shown).
  const lat = client.session(APP, 'latency');
  await serial(WARM, () => rawPublish());
  await serial(WARM, () => jsvc.send('latency'));
  await serial(WARM, () => lat.send(ADD));
  const svcSamples: number[] = [];
  const rrSamples: number[] = [];
  const jsSamples: number[] = [];
  const sendSamples: number[] = [];
  const baselineLatency = async (): Promise<void> => {
    svcSamples.push(...(await serial(LAT_N, () => jsvc.send('latency'))));
    rrSamples.push(...(await serial(LAT_N, rawRequest)));
    jsSamples.push(...(await serial(LAT_N, () => rawPublish())));
  };
  const cohortLatency = async (): Promise<void> => {
    sendSamples.push(...(await serial(LAT_N, () => lat.send(ADD))));
  };
  await abba(ROUNDS, baselineLatency, cohortLatency);
  const svc = summarize(svcSamples);
  const rr = summarize(rrSamples);
  const jsAck = summarize(jsSamples);
  const send = summarize(sendSamples);
  phase('1. send latency');

  // 2. send throughput over warm sessions, 256 in flight, against the service on as many sessions
  // (raw pipelined publish-ack shown).
  const tp = Array.from({ length: TP_SESSIONS }, (_, i) => client.session(APP, `tp-${i}`));
  const tpNames = Array.from({ length: TP_SESSIONS }, (_, i) => `tp-${i}`);
  const tpSend = (i: number): Promise<unknown> => tp[i % TP_SESSIONS]!.send(ADD);
  const tpService = (i: number): Promise<unknown> => jsvc.send(tpNames[i % TP_SESSIONS]!);
  await windowed(TP_SESSIONS, TP_WINDOW, tpSend); // activation, not measured
  await windowed(TP_SESSIONS, TP_WINDOW, tpSend);
  await windowed(TP_SESSIONS, TP_WINDOW, tpService); // the service reads each session's last sequence once
  await windowed(TP_SESSIONS, TP_WINDOW, tpService);
  await windowed(TP_SESSIONS, TP_WINDOW, (i) => rawPublish(i));
  const pids = { worker: worker.pid, service: service.pid, client: process.pid, 'nats-server': server.pid };
  const svcCpu = new CpuPerOp<number>(pids);
  const rawCpu = new CpuPerOp<number>(pids);
  const sendCpu = new CpuPerOp<number>(pids);
  const rawJsRates: number[] = [];
  const { raw: svcRates, cohort: sendRates } = await abba(
    ROUNDS,
    async () => {
      const rate = await svcCpu.measure(TP_TOTAL, () => windowed(TP_TOTAL, TP_WINDOW, tpService));
      rawJsRates.push(
        await rawCpu.measure(RAW_JS_TOTAL, () => windowed(RAW_JS_TOTAL, TP_WINDOW, (i) => rawPublish(i))),
      );
      return rate;
    },
    () => sendCpu.measure(TP_TOTAL, () => windowed(TP_TOTAL, TP_WINDOW, tpSend)),
  );
  const sendRate = median(sendRates);
  const svcRate = median(svcRates);
  const rawJsRate = median(rawJsRates);
  phase('2. send throughput');

  // 3. One hot session, 64 commands in flight, against the service's one session subject (one append at a time).
  const hot = client.session(APP, 'hot');
  await serial(WARM, () => hot.send(ADD));
  await serial(WARM, () => jsvc.send('hot'));
  const hotSendCpu = new CpuPerOp<number>(pids);
  const hotSvcCpu = new CpuPerOp<number>(pids);
  const { raw: hotSvcRates, cohort: hotSendRates } = await abba(
    ROUNDS,
    () => hotSvcCpu.measure(HOT_TOTAL, () => windowed(HOT_TOTAL, HOT_WINDOW, () => jsvc.send('hot'))),
    () => hotSendCpu.measure(HOT_TOTAL, () => windowed(HOT_TOTAL, HOT_WINDOW, () => hot.send(ADD))),
  );
  const hotSendRate = median(hotSendRates);
  const hotSvcRate = median(hotSvcRates);
  phase('3. hot session');

  // 4. Allocation per send in the worker process, over a throughput run under V8's sampling heap
  // profiler (and per request in the service's, likewise). Not one of the timed rounds: the
  // sampler costs a little time.
  await worker.call('heapSamplingStart');
  await windowed(ALLOC_N, TP_WINDOW, tpSend);
  const sendAlloc = await worker.call('heapSamplingStop');
  await service.call('heapSamplingStart');
  await windowed(ALLOC_N, TP_WINDOW, tpService);
  const svcAlloc = await service.call('heapSamplingStop');
  const allocPerSend = sendAlloc.bytes / ALLOC_N;
  const allocPerService = svcAlloc.bytes / ALLOC_N;
  phase(`4. allocation (${ALLOC_N} sends, ${ALLOC_N} service requests)`);

  // 5. read throughput over warm sessions, 32 in flight, against pipelined request/reply.
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
  phase('5. read throughput');

  // 6. Memory per active idle session: heap after a full GC, before and after activating MEM_N more.
  // The sessions of 1-5 and 7 stay active throughout: they are in both readings.
  const mem = Array.from({ length: MEM_N }, (_, i) => client.session(APP, `mem-${i}`));
  const activeBefore = await worker.call('activeSessions');
  const heapBefore = await worker.call('heapAfterGc');
  await windowed(MEM_N, MEM_WINDOW, (i) => mem[i]!.send(ADD));
  const heapAfter = await worker.call('heapAfterGc');
  const bytesPerSession = (heapAfter - heapBefore) / MEM_N;
  const activeAfter = await worker.call('activeSessions');
  phase(`6. memory (activate ${MEM_N})`);

  const svcStats = await service.call('stats');

  const rows: Row[] = [];
  const latencyRow = (label: string, cohort: number, base: number, goal: number): void => {
    const ratio = cohort / base;
    rows.push({
      label,
      cohort: fmtMs(cohort),
      raw: `${fmtMs(base)} (service)`,
      ratio: fmtX(ratio),
      goal: `<= ${fmtX(goal)}`,
      met: ratio <= goal,
    });
  };
  latencyRow('send p50 (journal, 1 in flight)', send.p50, svc.p50, GOAL_P50);
  latencyRow('send p99 (journal, 1 in flight)', send.p99, svc.p99, GOAL_P99);
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
  const sendShare = sendRate / svcRate;
  rows.push({
    label: `send throughput (${TP_SESSIONS} sessions, ${TP_WINDOW} in flight)`,
    cohort: fmtRate(sendRate),
    raw: `${fmtRate(svcRate)} (service)`,
    ratio: fmtX(sendShare),
    goal: `>= ${fmtX(GOAL_SEND_RATE)}`,
    met: sendShare >= GOAL_SEND_RATE,
  });
  rows.push({
    label: `  raw publish-ack (${TP_SESSIONS} subjects, ${TP_WINDOW} in flight)`,
    cohort: '',
    raw: `${fmtRate(rawJsRate)} (ack)`,
    ratio: fmtX(sendRate / rawJsRate),
    goal: '(shown)',
  });
  const hotShare = hotSendRate / hotSvcRate;
  rows.push({
    label: `hot session (1 session, ${HOT_WINDOW} in flight)`,
    cohort: fmtRate(hotSendRate),
    raw: `${fmtRate(hotSvcRate)} (service)`,
    ratio: fmtX(hotShare),
    goal: `>= ${fmtX(GOAL_HOT_RATE)}`,
    met: hotShare >= GOAL_HOT_RATE,
  });
  rows.push({
    label: 'allocation per send (worker process)',
    cohort: fmtKb(allocPerSend),
    raw: `${fmtKb(allocPerService)} (service)`,
    ratio: fmtX(allocPerSend / allocPerService),
    goal: `< ${fmtKb(GOAL_ALLOC_BYTES)}`,
    met: allocPerSend < GOAL_ALLOC_BYTES,
  });
  const readShare = readRate / rawRrRate;
  rows.push({
    label: `read throughput (${RD_SESSIONS} sessions, ${RD_WINDOW} in flight)`,
    cohort: fmtRate(readRate),
    raw: `${fmtRate(rawRrRate)} (rr)`,
    ratio: fmtX(readShare),
    goal: `>= ${fmtX(GOAL_READ_RATE)}`,
    met: readShare >= GOAL_READ_RATE,
  });
  rows.push({
    label: `heap per active idle session (${MEM_N})`,
    cohort: `${Math.round(bytesPerSession).toLocaleString('en-US')} B`,
    raw: '-',
    ratio: '',
    goal: `<= ${GOAL_BYTES.toLocaleString('en-US')} B`,
    met: bytesPerSession <= GOAL_BYTES,
  });
  rows.push({
    label: `first read after passivation p50 (${ACT_M})`,
    cohort: fmtMs(firstReads.p50),
    raw: `${fmtMs(actRrP50)} (rr)`,
    ratio: fmtX(firstReads.p50 / actRrP50),
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
    ratio: fmtX(warmReads.p50 / actRrP50),
    goal: '(shown)',
  });

  write(
    `cohort bench sessions: nats-server ${server.version} (embedded), ${availableParallelism()} cores, three processes: ` +
      `a worker (all shards, commit journal), a journaling service (plain nats.js) and the client (this one); same run, ${ROUNDS} rounds in ABBA order`,
  );
  write(
    `baseline "service": per request, js.publish with Nats-Msg-Id and the session's expected last subject sequence, ack, reply; ` +
      `one append at a time per session; ${bodies.request}-byte bodies (a send's request body); raw rr/ack: ${PAYLOAD.length}-byte bodies`,
  );
  write('');
  write(`  ${pad('figure', 50)}${pad('cohort', 16)}${pad('baseline', 30)}${pad('ratio', 8)}goal`);
  let misses = 0;
  for (const row of rows) {
    if (row.met === false) misses++;
    const verdict = row.met === undefined ? '' : row.met ? ' met' : ' MISSED';
    write(`  ${pad(row.label, 50)}${pad(row.cohort, 16)}${pad(row.raw, 30)}${pad(row.ratio, 8)}${row.goal}${verdict}`);
  }
  write('');
  write(
    `latency: ${send.n} sends, ${svc.n} service requests, ${rr.n} requests, ${jsAck.n} publish-acks; ` +
      `p50/p99 send ${fmtMs(send.p50)} / ${fmtMs(send.p99)}, service ${fmtMs(svc.p50)} / ${fmtMs(svc.p99)}`,
  );
  const cpuLine = (what: string, perOp: Record<string, number> | undefined): string =>
    perOp === undefined
      ? `${what}: not measured (no /proc)`
      : `${what}: ${Object.entries(perOp)
          .filter(([, us]) => us >= 1)
          .map(([name, us]) => `${name} ${Math.round(us)}`)
          .join(' + ')} = ${Math.round(Object.values(perOp).reduce((a, b) => a + b, 0))} µs`;
  write('CPU time per operation, by process (from /proc; 2 cores shared by all four; under 1 µs left out):');
  write(`  ${cpuLine(`send (${TP_WINDOW} in flight)`, sendCpu.perOp())}`);
  write(`  ${cpuLine(`journaling service (${TP_WINDOW} in flight)`, svcCpu.perOp())}`);
  write(`  ${cpuLine(`raw publish-ack (${TP_WINDOW} in flight)`, rawCpu.perOp())}`);
  write(`  ${cpuLine(`hot session send (${HOT_WINDOW} in flight)`, hotSendCpu.perOp())}`);
  write(`  ${cpuLine(`hot session service (${HOT_WINDOW} in flight)`, hotSvcCpu.perOp())}`);
  const rates = (values: number[]): string => values.map((r) => Math.round(r)).join(', ');
  write(
    `throughput rounds (send/s): ${rates(sendRates)}; service/s: ${rates(svcRates)}; raw ack/s: ${rates(rawJsRates)}`,
  );
  write(`hot session rounds (send/s): ${rates(hotSendRates)}; service/s: ${rates(hotSvcRates)}`);
  write(
    `  (the service appends one command at a time per session to keep its expected sequence; cohort can pass it only by appending several commands of a session as one journal message, group commit)`,
  );
  write(`throughput rounds (read/s): ${rates(readRates)}; raw rr/s: ${rates(rawRrRates)}`);
  write(
    `allocation: bytes allocated in the process over ${ALLOC_N} sends / ${ALLOC_N} service requests (${TP_WINDOW} in flight, ` +
      `${TP_SESSIONS} sessions), from V8's sampling heap profiler (inspector HeapProfiler.startSampling, ` +
      `1 sample per ${sendAlloc.samplingInterval} B on average, objects collected by minor and major GCs kept, ` +
      `sample sizes scaled by V8; ${sendAlloc.samples} + ${svcAlloc.samples} samples); everything the process allocated meanwhile counts`,
  );
  const gcCheck = (what: string, profile: AllocationProfile): string =>
    `${what} ${fmtKb(profile.gcBytes / ALLOC_N)} (${profile.scavenges} scavenges, ${profile.otherGcs} other GCs)`;
  write(
    `  the same stretches by GC accounting (used heap before each GC - after the one before, from v8.GCProfiler): ` +
      `${gcCheck('per send', sendAlloc)}, ${gcCheck('per service request', svcAlloc)}`,
  );
  const sites = (what: string, profile: AllocationProfile): void => {
    write(`  top allocation sites, ${what} (self bytes; via: nearest caller in this repository):`);
    for (const s of profile.top.slice(0, 5)) {
      const share = ((s.bytes / profile.bytes) * 100).toFixed(1);
      write(`    ${pad(`${share}%`, 7)}${s.site}${s.via === undefined ? '' : `  via ${s.via}`}`);
    }
  };
  sites('worker', sendAlloc);
  sites('service', svcAlloc);
  write(
    `send on the wire: request body ${bodies.request} B + headers ${bodies.requestHeaders} B; journal entry ${bodies.journal} B + headers ${bodies.journalHeaders} B ` +
      `(the service appends its ${bodies.request}-byte request body with a Nats-Msg-Id and an expected sequence header)`,
  );
  write(
    `service: ${svcStats.requests} requests, ${svcStats.appended} appended, ${svcStats.duplicates} duplicates, ` +
      `${svcStats.wrongSequence} wrong last sequence, ${svcStats.failed} failed`,
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
  await jsvc.close();
  const active = await worker.call('activeSessions');
  const stopMs = await worker.call('stop');
  await worker.close();
  await service.close();
  write(`worker.stop() with ${active} active sessions (each snapshotted): ${fmtS(stopMs)}`);
  await rawNats.close();
  return 0;
}
