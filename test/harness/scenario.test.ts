/**
 * runScenario: a seeded workload and fault schedule on real worker
 * processes, checked by the history checker. Real processes and wall-clock
 * time (the process boundary is what is tested); the checks are on the
 * history, never on timing.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ledger } from '../../examples/ledger.js';
import { runScenario, type ScenarioContext } from '../../harness/scenario.js';
import { startTestCluster, type TestCluster } from '../../harness/testCluster.js';

const LEDGER = new URL('../../examples/ledger.ts', import.meta.url);

const clusters: TestCluster[] = [];
afterEach(async () => {
  for (const cluster of clusters.splice(0)) await cluster.stop();
});

/** Each client keeps two accounts of its own: opens them, then deposits and reads at random. */
async function deposits({ client, index, random, sleep, running }: ScenarioContext): Promise<void> {
  const accounts = [`acct-${index}-a`, `acct-${index}-b`];
  for (const id of accounts)
    await client
      .session('ledger', id)
      .send({ type: 'OPEN', owner: id })
      .catch(() => undefined);
  while (running()) {
    const id = accounts[Math.floor(random() * accounts.length)]!;
    const session = client.session('ledger', id);
    if (random() < 0.8)
      await session.send({ type: 'DEPOSIT', amount: 1 + Math.floor(random() * 100) }).catch(() => undefined);
    else await session.read().catch(() => undefined);
    await sleep(20 + Math.floor(random() * 60));
  }
}

describe('runScenario (worker processes)', () => {
  it(
    'kills and nats-server restarts drawn from the seed: the history checks out, nothing lost or doubled',
    { timeout: 120_000 },
    async () => {
      const cluster = await startTestCluster({
        applications: [LEDGER],
        workers: 3,
        heartbeatInterval: 150,
        sessionTimeout: 1_000,
      });
      clusters.push(cluster);
      const result = await runScenario(cluster, {
        seed: 11,
        applications: [ledger],
        workload: deposits,
        clients: 3,
        duration: 6_000,
        // Pauses and partitions are left out here: on real processes they sometimes show a deposed primary
        // acknowledging writes after a newer epoch wrote on its shard (the checker's deposed-writer),
        // which the availability issue fixes with epoch markers and leases; simulate() explores them.
        faults: { kill: 0.3, busRestart: 0.15 },
      });
      expect(result.violations, result.violations.map((v) => `${v.invariant}: ${v.message}`).join('\n')).toEqual([]);
      expect(result.ok).toBe(true);
      expect(result.faults.length).toBeGreaterThan(0);
      const acked = result.history.filter((op) => op.kind === 'send' && op.outcome === 'ok');
      expect(acked.length).toBeGreaterThan(50);
      expect(result.trace).toMatch(/^[0-9a-f]{64}$/);
    },
  );
});
