import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineApplication, startWorker, type Worker } from '../../index.js';
import { createNatsBus } from '../../bus/nats/mod.js';
import type { NatsServer } from '../../harness/natsServer.js';
import { cleanupAfterEach } from '../cleanup.js';
import { counterMachine } from '../fixtures/counter.js';
import { startTestServer } from '../nats.js';
import { waitFor } from '../waitFor.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** `cohort failover ...` from source; resolves with its exit code and output. */
function failover(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', 'failover', ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('cohort failover', () => {
  let server: NatsServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.[Symbol.asyncDispose]();
  });
  const track = cleanupAfterEach();
  const app = defineApplication({ name: 'counter', machine: counterMachine });

  async function two(cluster: string): Promise<[Worker, Worker]> {
    const opts = { cluster, applications: [app], shardCount: 8, heartbeatInterval: 100, sessionTimeout: 500 };
    const a = track(await startWorker({ ...opts, bus: track(await createNatsBus({ servers: server.url })), id: 'a' }));
    const b = track(await startWorker({ ...opts, bus: track(await createNatsBus({ servers: server.url })), id: 'b' }));
    await waitFor(() => a.serving.length === 4 && b.serving.length === 4, { what: 'balanced', timeoutMs: 10_000 });
    return [a, b];
  }

  it('moves a shard and follows the views until it is ACTIVE on the target', async () => {
    const cluster = `f${randomUUID().slice(0, 8)}`;
    const [a, b] = await two(cluster);
    const shard = a.serving[0]!;
    const r = await failover(['--shard', String(shard), '--to', 'b', '--nats', server.url, '--cluster', cluster]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`planned failover of shard ${shard} to b accepted by leader a`));
    expect(r.stdout).toMatch(new RegExp(`shard ${shard} PENDING on a -> b`));
    expect(r.stdout).toMatch(new RegExp(`done: shard ${shard} is ACTIVE on b`));
    await waitFor(() => b.serving.includes(shard), { what: 'b serving it' });
  });

  it('says why the leader refused, and refuses bad usage with exit code 2', async () => {
    const cluster = `f${randomUUID().slice(0, 8)}`;
    await two(cluster);
    const refused = await failover(['--shard', '0', '--to', 'ghost', '--nats', server.url, '--cluster', cluster]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/refused: ghost is not a live member/);
    const usage = await failover(['--to', 'b', '--nats', server.url]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/--shard N/);
  });
});
