/**
 * Bugs planted on purpose, which the simulator and its checker must find
 * and whose seed must replay them: a machine that reads the wall clock, and
 * a worker whose journal appends go without the fence (UNSAFE.unfenced).
 * Each beside its control, the same runs without the bug, which pass.
 */
import { assign, setup } from 'xstate';
import { describe, expect, it } from 'vitest';
import { defineApplication } from '../../index.js';
import { UNSAFE } from '../../internal.js';
import { ledger } from '../../examples/ledger.js';
import { simulate, type SimulateResult, type Workload } from '../../harness/index.js';

/** A note-taker; `clocked` stamps each note with Date.now(), which no replay can reproduce. */
function noteApp(clocked: boolean) {
  const machine = setup({
    types: {} as { context: { notes: string[]; at: number }; events: { type: 'NOTE'; text: string } },
  }).createMachine({
    id: 'notes',
    context: { notes: [], at: 0 },
    on: {
      NOTE: {
        actions: assign({
          notes: ({ context, event }) => [...context.notes, event.text],
          at: ({ context }) => (clocked ? Date.now() : context.at + 1),
        }),
      },
    },
  });
  return defineApplication({ name: 'notes', machine, commit: 'journal', snapshotEvery: 1_000_000 });
}

const notes: Workload = async ({ client, index, random, sleep, running }) => {
  let n = 0;
  while (running()) {
    const session = client.session('notes', `n${Math.floor(random() * 3)}`);
    await session.send({ type: 'NOTE', text: `${index}-${n++}` }).catch(() => undefined);
    if (random() < 0.3) await session.read().catch(() => undefined);
    await sleep(50 + Math.floor(random() * 100));
  }
};

const summary = (r: SimulateResult): string[] => r.violations.map((v) => `${v.invariant} ${v.app}/${v.session}`);

describe('planted bugs', () => {
  it('a machine that reads the wall clock: the checker names the event where replays part; the seed replays it', async () => {
    const run = (clocked: boolean) =>
      simulate({ seed: 5, applications: [noteApp(clocked)], workload: notes, clients: 2, duration: 3_000 });
    const control = await run(false);
    expect(summary(control)).toEqual([]);
    expect(control.ok).toBe(true);
    const buggy = await run(true);
    expect(buggy.ok).toBe(false);
    const first = buggy.violations.find((v) => v.invariant === 'deterministic' || v.invariant === 'model');
    expect(first, summary(buggy).join('\n')).toBeDefined();
    expect(first!.event?.type).toBe('NOTE');
    const again = await run(true);
    expect(again.violations.map((v) => v.invariant)).toContain(first!.invariant);
  });

  it('a worker without the journal fence: a seed with every fault finds a second writer, and replays it exactly', async () => {
    const faults = 'all' as const;
    const run = (seed: number, unfenced: boolean) =>
      simulate({
        seed,
        applications: [ledger],
        duration: 10_000,
        faults,
        ...(unfenced ? { worker: { [UNSAFE]: { unfenced: true } } } : {}),
      });
    let found: { seed: number; result: SimulateResult } | undefined;
    for (let seed = 1; seed <= 30 && found === undefined; seed++) {
      const result = await run(seed, true);
      if (!result.ok) found = { seed, result };
    }
    expect(found, 'no seed of 1-30 found the unfenced writer').toBeDefined();
    const { seed, result } = found!;
    // The replay: the same seed, the same run, trace for trace, the same violations.
    const replay = await run(seed, true);
    expect(replay.trace).toBe(result.trace);
    expect(summary(replay)).toEqual(summary(result));
    // Control: the same seed with the fence passes.
    const fenced = await run(seed, false);
    expect(summary(fenced)).toEqual([]);
  }, 120_000);
});
