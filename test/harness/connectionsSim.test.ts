/**
 * The connection scenario that raced a SIGSTOP on real processes (a worker
 * goes silent while a client's command is out) on virtual time, where the
 * pause lands exactly where the test says: before the worker has the
 * command, or while it holds it with its journal append in flight. The
 * client must give up with an ambiguous NetworkError in both, and reading
 * afterwards must settle it: the command there at most once, and exactly
 * once when its append was stored.
 */
import { describe, expect, it } from 'vitest';
import { NetworkError, type Client } from '../../index.js';
import { tally } from '../fixtures/tally.js';
import { bootSim, type Sim } from './simBoot.js';

const TIMING = { heartbeatInterval: 200, sessionTimeout: 1_000 };
const CONNECTION = { troubledInterval: 1_000, attemptTimeout: 300 };

interface Scene {
  readonly sim: Sim;
  readonly client: Client;
  /** Pauses the worker the moment the next command for session `p` reaches it. */
  pauseOnNextCommand(): void;
}

async function scene(): Promise<Scene> {
  let armed = false;
  const sim: Sim = bootSim({
    application: tally,
    shardCount: 4,
    ...TIMING,
    connection: CONNECTION,
    onTrace: (line) => {
      if (armed && / deliver message \S+>w1 cohort\.sim\.cmd\.\d+\.tally\.p\./.test(line)) {
        armed = false;
        sim.cluster.workers[0]!.process.pause();
      }
    },
  });
  await sim.spawn(0);
  await sim.until(sim.balanced([0]), 'the first placement done');
  const client = await sim.connect(0);
  await sim.run(client.session('tally', 'p').send({ type: 'ADD', token: 'before' }));
  return { sim, client, pauseOnNextCommand: () => (armed = true) };
}

/** Reads `p` once the worker answers again (a read during recovery may be refused and is tried again). */
async function tokensAfter(sim: Sim, client: Client): Promise<string[]> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const read = await sim.run(client.session('tally', 'p').read()).catch(() => undefined);
    if (read !== undefined) return (read.document as { tokens: string[] }).tokens;
    await sim.pass(500);
  }
  throw new Error('p not readable after the worker resumed');
}

async function silentSend(sim: Sim, client: Client): Promise<unknown> {
  const started = sim.now();
  const err = await sim.run(client.session('tally', 'p').send({ type: 'ADD', token: 'maybe' })).catch((e) => e);
  expect(err).toBeInstanceOf(NetworkError);
  expect((err as NetworkError).ambiguous).toBe(true);
  expect((err as NetworkError).message).toMatch(/may have committed/);
  // Given up after the troubled interval, not at the first attempt's timeout nor much later.
  expect(sim.now() - started).toBeGreaterThanOrEqual(CONNECTION.troubledInterval);
  expect(sim.now() - started).toBeLessThan(CONNECTION.troubledInterval + 2 * CONNECTION.attemptTimeout);
  return err;
}

describe('a worker that goes silent with a command out, on virtual time', () => {
  it('paused before the command reaches it: ambiguous NetworkError, and a read after resume shows it at most once', async () => {
    const { sim, client } = await scene();
    const worker = sim.cluster.workers[0]!.process;
    worker.pause();
    await silentSend(sim, client);
    worker.resume();
    const tokens = await tokensAfter(sim, client);
    expect(tokens[0]).toBe('before');
    expect(tokens.filter((t) => t === 'maybe').length).toBeLessThanOrEqual(1);
    const maybe = sim.recorder.operations.find((op) => op.event?.['token'] === 'maybe');
    expect(maybe).toMatchObject({ outcome: 'ambiguous', error: 'NetworkError' });
    expect(await sim.check()).toEqual([]);
  });

  it('paused holding the command, its append in flight: ambiguous to the client, committed exactly once', async () => {
    const { sim, client, pauseOnNextCommand } = await scene();
    const worker = sim.cluster.workers[0]!.process;
    const from = sim.lines.length;
    pauseOnNextCommand();
    await silentSend(sim, client);
    expect(worker.state).toBe('paused');
    // The append reached the stream before the pause took hold; only its acknowledgement waits.
    const during = sim.lines.slice(from);
    expect(during.some((l) => / execute request w1>server append$/.test(l))).toBe(true);
    expect(during.some((l) => / deliver response server>w1 append$/.test(l))).toBe(false);
    worker.resume();
    const tokens = await tokensAfter(sim, client);
    expect(tokens).toEqual(['before', 'maybe']);
    expect(await sim.check()).toEqual([]);
  });

  it('control: the same send with the worker running is acknowledged', async () => {
    const { sim, client } = await scene();
    const reply = await sim.run(client.session('tally', 'p').send({ type: 'ADD', token: 'maybe' }));
    expect(reply.seq).toBe(2);
    expect(await tokensAfter(sim, client)).toEqual(['before', 'maybe']);
  });
});
