/**
 * The safeguards against cascading failover on a whole simulated cluster,
 * driven by hand on virtual time: workers killed past the quota are held
 * and their shards left unserved until an operator's reset over
 * `cohort.<cluster>.ctl.reset-failover` (malformed requests refused, the
 * leader serving on); a cluster at its minimum holds a dead member until a
 * replacement joins; a membership that keeps changing stops rebalancing
 * and starts again once still. Each decision is in the view and the log.
 */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, defineApplication, ResetFailoverRefusedError, type View } from '../../index.js';
import { controlSubject, decode, encode, requestFailoverReset } from '../../internal.js';
import { counterMachine } from '../fixtures/counter.js';
import { bootSim, type Sim } from './simBoot.js';

// The checker replays whole journals: snapshots must not compact them away under this load.
const app = defineApplication({ name: 'counter', machine: counterMachine, snapshotEvery: 1_000_000 });
const SHARDS = 12;
const HEARTBEAT = 100;
const TIMEOUT = 500;

interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly worker: string;
  readonly [key: string]: unknown;
}

/** A simulated cluster whose workers log (info and up) into `logs`. */
function boot(worker: Parameters<typeof bootSim>[0]['worker']) {
  const logs: LogLine[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line.trim() !== '') logs.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  const sim = bootSim({
    application: app,
    shardCount: SHARDS,
    heartbeatInterval: HEARTBEAT,
    sessionTimeout: TIMEOUT,
    worker: { ...worker, logger: createLogger({ level: 'info', destination }) },
  });
  return { sim, logs };
}

/** The newest view any running worker holds. */
function newest(sim: Sim): View {
  const views = sim.cluster.workers
    .filter((w) => w.process.state === 'running' && w.worker?.view)
    .map((w) => w.worker!.view!);
  return views.reduce((a, b) => (b.viewId > a.viewId ? b : a));
}

/** Shards some running worker serves. */
function served(sim: Sim): Set<number> {
  const out = new Set<number>();
  for (const w of sim.cluster.workers)
    if (w.process.state === 'running') for (const s of w.worker?.serving ?? []) out.add(s);
  return out;
}

const primariesOf = (view: View, member: string): number[] =>
  view.shards.flatMap((s, i) => (s.primary === member ? [i] : []));

describe('safeguards on virtual time', () => {
  it('past the quota a dead worker is held with its shards unserved; an operator’s reset drops it and they fail over', async () => {
    const { sim, logs } = boot({ failoverQuota: 1, failoverWindow: 600_000 });
    for (let i = 0; i < 4; i++) await sim.spawn(i);
    await sim.until(sim.balanced([0, 1, 2, 3]), 'four balanced');
    const [first, second] = [sim.worker(1).id, sim.worker(2).id];

    // The first loss is within the quota: dropped, its shards fail over (positive control).
    sim.cluster.workers[1]!.process.kill();
    await sim.until(sim.balanced([0, 2, 3]), 'three balanced without the first');
    expect(newest(sim).safeguards.dropped.map((d) => d.member)).toEqual([first]);

    // The second is one too many: held, failover halted, its shards left where they were.
    const theirs = primariesOf(newest(sim), second);
    expect(theirs.length).toBeGreaterThan(0);
    sim.cluster.workers[2]!.process.kill();
    await sim.until(() => newest(sim).safeguards.held.length > 0, 'the second held');
    await sim.pass(10 * TIMEOUT);
    const halted = newest(sim);
    expect(halted.safeguards.held).toEqual([{ member: second, reason: 'quota' }]);
    expect(halted.safeguards.failoverHalted).not.toBeNull();
    expect(halted.members.map((m) => m.id)).toContain(second);
    expect(primariesOf(halted, second)).toEqual(theirs);
    for (const s of theirs) expect(served(sim).has(s)).toBe(false);
    expect(served(sim).size).toBe(SHARDS - theirs.length);
    // Every running worker took up that view: the readers of the view see the halt.
    for (const slot of [0, 3]) expect(sim.worker(slot).view!.safeguards.failoverHalted).not.toBeNull();
    const leader = sim.worker(0).id;
    expect(logs.filter((l) => l.worker === leader && l.level >= 50).map((l) => l.msg)).toEqual([
      expect.stringMatching(/^automatic failover halted: more than 1 members lost within 600000 ms/),
    ]);
    expect(logs.filter((l) => l['member'] === second).map((l) => l.msg)).toEqual([
      expect.stringMatching(/is silent but kept in the view \(quota\)/),
    ]);

    // Malformed requests are refused with a reason, and the leader goes on serving.
    const bus = sim.cluster.auditor().bus;
    const ask = async (data: Uint8Array): Promise<unknown> =>
      decode((await sim.run(bus.request(controlSubject('sim', 'reset-failover'), data, { timeout: 2_000 }))).data);
    const junk = [
      new Uint8Array([0xc1, 0xff, 0x00]),
      encode('quota'),
      encode([]),
      encode(null),
      encode({}),
      encode({ reset: 'everything' }),
      encode({ reset: 'quota', andAlso: 'failover shard 3' }),
    ];
    for (const data of junk)
      expect(await ask(data)).toEqual({
        ok: false,
        changed: false,
        reason: 'malformed request: needs exactly { reset: "quota" }',
        leader,
      });
    expect(newest(sim).safeguards.failoverHalted).not.toBeNull();

    // The operator's reset: the held worker is dropped (1 of 1 again) and its shards fail over.
    const answer = await sim.run(requestFailoverReset(bus, 'sim'));
    expect(answer).toMatchObject({ leader, changed: true, reason: expect.stringMatching(/^accepted/) });
    await sim.until(sim.balanced([0, 3]), 'the two left balanced');
    const after = newest(sim);
    expect(after.safeguards).toMatchObject({ failoverHalted: null, held: [], dropped: [{ member: second }] });
    expect(served(sim).size).toBe(SHARDS);
    const mine = logs.filter((l) => l.worker === leader).map((l) => l.msg);
    expect(mine).toContainEqual(expect.stringMatching(/^failover quota reset/));
    expect(mine.filter((m) => /dropped for silence/.test(m))).toEqual([
      expect.stringMatching(`${first} dropped for silence \\(1 of at most 1`),
      expect.stringMatching(`${second} dropped for silence \\(1 of at most 1`),
    ]);
    // Nothing left to reset but the one drop on record; a second reset clears that.
    expect(await sim.run(requestFailoverReset(bus, 'sim'))).toMatchObject({ changed: true });
    await sim.until(() => newest(sim).safeguards.dropped.length === 0, 'the record cleared');
    expect(await sim.run(requestFailoverReset(bus, 'sim'))).toMatchObject({ changed: false });
  });

  it('a forged or unreadable answer to a reset is a typed refusal, never a crash', async () => {
    const { sim } = boot({});
    await sim.spawn(0);
    // Someone who is not a worker answers on the subject first (the worker's leader answers too, later or not at all).
    const cluster = 'forged';
    const impostor = sim.cluster.auditor().bus;
    const answers = [
      new Uint8Array([0xc1]),
      encode('ok'),
      encode({ ok: 'yes', reason: 'sure', leader: 'x' }),
      encode({ ok: false, reason: 7 }),
      encode({ ok: false, reason: 'go away', leader: 'x' }),
    ];
    let next = 0;
    impostor.subscribe(controlSubject(cluster, 'reset-failover'), (m) => m.respond(answers[next++]!));
    const client = sim.cluster.auditor().bus;
    const reasons: string[] = [];
    for (let i = 0; i < answers.length; i++) {
      const err = await sim.run(
        requestFailoverReset(client, cluster).then(
          () => null,
          (e: unknown) => e,
        ),
      );
      expect(err).toBeInstanceOf(ResetFailoverRefusedError);
      reasons.push((err as ResetFailoverRefusedError).reason);
    }
    expect(reasons).toEqual([
      'the answer could not be decoded',
      'the answer is not a reply (needs ok, reason and leader)',
      'the answer is not a reply (needs ok, reason and leader)',
      'the answer is not a reply (needs ok, reason and leader)',
      'go away',
    ]);
    // Positive control: the real leader of cluster `sim` answers a reset it has nothing to do for.
    expect(await sim.run(requestFailoverReset(client, 'sim'))).toMatchObject({ changed: false });
  });

  it('at its minimum a cluster holds a dead worker, shards unserved, until a replacement joins; then it fails over', async () => {
    const { sim, logs } = boot({ minMembers: 2 });
    await sim.spawn(0);
    await sim.spawn(1);
    await sim.until(sim.balanced([0, 1]), 'two balanced');
    const dead = sim.worker(1).id;
    const theirs = primariesOf(newest(sim), dead);
    sim.cluster.workers[1]!.process.kill();
    await sim.until(() => newest(sim).safeguards.held.length > 0, 'held');
    await sim.pass(10 * TIMEOUT);
    expect(newest(sim).safeguards).toMatchObject({ held: [{ member: dead, reason: 'minimum' }], failoverHalted: null });
    expect(served(sim).size).toBe(SHARDS - theirs.length);
    expect(logs.some((l) => l['member'] === dead && /kept in the view \(minimum\)/.test(l.msg))).toBe(true);
    // A replacement in the same slot joins as a new member: now the dead one can go.
    await sim.spawn(1);
    await sim.until(sim.balanced([0, 1]), 'the survivor and the replacement balanced');
    const view = newest(sim);
    expect(view.members.map((m) => m.id)).not.toContain(dead);
    expect(view.safeguards).toMatchObject({ held: [], dropped: [{ member: dead }] });
    expect(served(sim).size).toBe(SHARDS);
  });

  it('joiners arriving for longer than unstableAfter stop the rebalancing; still for stableAfter, it resumes; commands go on', async () => {
    const { sim, logs } = boot({ stableAfter: 1_000, unstableAfter: 2_000 });
    await sim.spawn(0);
    const client = await sim.connect(0);
    const ids = Array.from({ length: 12 }, (_, i) => `acct-${i}`);
    let acked = 0;
    let stop = false;
    const load = (async () => {
      while (!stop) {
        await Promise.all(
          ids.map((id) => client.session('counter', id).send({ type: 'ADD', by: 1 }, { timeout: 10_000 })),
        );
        acked++;
        await sim.sleep(20);
      }
    })();
    // A worker joins every 600 ms: one run of changes, longer than 2 s by the fifth.
    for (let slot = 1; slot <= 5; slot++) {
      await sim.spawn(slot);
      await sim.pass(600 - (sim.now() % 600));
    }
    await sim.until(() => newest(sim).safeguards.unstable !== null, 'unstable');
    const braked = newest(sim);
    const late = sim.worker(5).id;
    expect(braked.members.map((m) => m.id)).toContain(late);
    expect(braked.shards.filter((s) => s.primary === late || s.next === late)).toEqual([]);
    expect(logs.some((l) => /^membership unstable/.test(l.msg))).toBe(true);
    // Positive control: once still for stableAfter, the brake is off and the late joiner gets its share.
    await sim.until(sim.balanced([0, 1, 2, 3, 4, 5]), 'six balanced');
    expect(newest(sim).safeguards.unstable).toBeNull();
    expect(sim.worker(5).serving.length).toBeGreaterThan(0);
    expect(logs.some((l) => /^membership stable again/.test(l.msg))).toBe(true);
    const before = acked;
    await sim.until(() => acked > before + 2, 'commands after');
    stop = true;
    await sim.run(load);
    for (const id of ids)
      expect((await sim.run(client.session('counter', id).read())).document).toMatchObject({ n: acked });
    expect(await sim.check()).toEqual([]);
  });
});
