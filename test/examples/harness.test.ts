/**
 * The README's "Harness" section, as code that runs: testing one's own
 * application at unit level on the memory bus and virtual time, under a
 * simulation with faults, replaying a seed, and on real worker processes.
 * Keep the README's copy in step with this file.
 */
import { describe, expect, it, vi } from 'vitest';
import {
  connect,
  createMemoryBus,
  createMemoryServer,
  defineApplication,
  SimulatedClock,
  startWorker,
} from '../../index.js';
import { runScenario, simulate, startTestCluster, type Workload } from '../../harness/index.js';
import { ledger, ledgerMachine } from '../../examples/ledger.js';

// The checker replays whole journals: under test, snapshots must not compact them away.
const ledgerUnderTest = defineApplication({ name: 'ledger', machine: ledgerMachine, snapshotEvery: 1_000_000 });

describe('the harness, as the README shows it', () => {
  it('unit level: a worker and a client on one memory server, on virtual time', async () => {
    const clock = new SimulatedClock(Date.UTC(2026, 0, 1));
    const server = createMemoryServer({ environment: { clock } });
    const worker = await startWorker({
      bus: createMemoryBus({ server }),
      environment: { clock }, // the worker's timers too, not only the server's
      cluster: 'test',
      applications: [ledger],
      shards: [0, 1, 2, 3],
      shardCount: 4,
    });
    const client = await connect({
      bus: createMemoryBus({ server }),
      environment: { clock },
      cluster: 'test',
      shardCount: 4,
    });
    const account = client.session('ledger', 'alice');
    await account.send({ type: 'OPEN', owner: 'Alice' });
    await account.send({ type: 'DEPOSIT', amount: 500 });
    clock.increment(31 * 24 * 3600_000); // a month later, at once: the statement timer fires on virtual time
    await vi.waitFor(async () =>
      expect((await account.read()).document).toMatchObject({ balance: 500, statements: [{ balance: 500 }] }),
    );
    await client.close();
    await worker.stop();
  });

  // Each client opens an account of its own and deposits; every choice comes from random(), never Math.random().
  const deposits: Workload = async ({ client, index, random, sleep, running }) => {
    const account = client.session('ledger', `acct-${index}`);
    await account.send({ type: 'OPEN', owner: `owner ${index}` }).catch(() => undefined);
    while (running()) {
      await account.send({ type: 'DEPOSIT', amount: 1 + Math.floor(random() * 100) }).catch(() => undefined);
      await sleep(50 + Math.floor(random() * 200));
    }
  };

  it('simulation: a whole cluster under faults, checked; the same seed replays the same run', async () => {
    const options = {
      seed: 42,
      applications: [ledgerUnderTest],
      workload: deposits,
      workers: 3,
      clients: 4,
      duration: 10_000, // virtual ms of faults, then heal and recovery
      faults: {
        kill: 0.1,
        pause: 0.1,
        partition: 0.1,
        drop: 0.01,
        delay: [0, 40] as [number, number],
        busRestart: 0.05,
      },
    };
    const result = await simulate(options);
    expect(result.violations.map((v) => `${v.invariant} ${v.session}: ${v.message}`)).toEqual([]);
    expect(result.ok).toBe(true);
    expect(result.stats.operations).toBeGreaterThan(20);
    const again = await simulate(options);
    expect(again.trace).toBe(result.trace);
  });

  it('real processes: the same workload with kills, checked the same way', { timeout: 120_000 }, async () => {
    await using cluster = await startTestCluster({ applications: ['./examples/ledger.ts'], workers: 3 });
    const result = await runScenario(cluster, {
      seed: 42,
      applications: [ledger],
      workload: deposits,
      duration: 5_000,
      faults: { kill: 0.2 },
    });
    expect(result.violations).toEqual([]);
  });
});
