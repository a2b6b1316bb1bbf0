/**
 * Health-based step-down against a real nats-server: one of three workers
 * connects as a user whose permissions deny publishing to the journal's
 * subjects, so every append it makes is refused (PermissionDeniedError)
 * while its heartbeats, the view and the buckets work. At failure
 * condition 3 its appends failing for the health-check timeout make it
 * unhealthy; the others are healthy, so it steps down, its shards hand off,
 * and the sessions it held are served by the others. It stays out: its
 * probe append is refused too. Nothing acknowledged is lost or doubled.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, defineApplication, shardOf, startWorker, type Worker } from '../../index.js';
import type { NatsServer } from '../../harness/natsServer.js';
import { cleanupAfterEach } from '../cleanup.js';
import { counterMachine } from '../fixtures/counter.js';
import { startTestServer } from '../nats.js';
import { waitFor } from '../waitFor.js';

const CLUSTER = 'hs';
const SHARDS = 12;
const HEALTH_CHECK = 1_000;
const app = defineApplication({ name: 'counter', machine: counterMachine, unusedSessionLifetime: 600_000 });

describe('a worker whose credentials deny its journal appends (real nats-server)', () => {
  const track = cleanupAfterEach();
  let dir: string;
  let server: NatsServer;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cohort-health-'));
    const conf = join(dir, 'users.conf');
    await writeFile(
      conf,
      `authorization { users = [
        { user: good, password: pw }
        { user: sick, password: pw, permissions: { publish: { deny: ["cohort.${CLUSTER}.jrnl.>"] } } }
      ] }\n`,
    );
    server = await startTestServer({ args: ['-c', conf], probe: { user: 'good', pass: 'pw' } });
  }, 30_000);
  afterAll(async () => {
    await server?.[Symbol.asyncDispose]();
    await rm(dir, { recursive: true, force: true });
  });

  const worker = async (id: string, user: string): Promise<Worker> =>
    track(
      await startWorker({
        nats: server.url,
        auth: { user, password: 'pw' },
        cluster: CLUSTER,
        id,
        applications: [app],
        shardCount: SHARDS,
        heartbeatInterval: 100,
        sessionTimeout: 500,
        healthCheckTimeout: HEALTH_CHECK,
        clients: { ownInbox: false },
      }),
    );

  it(
    'steps down, its sessions are served by the others, and it stays out while its appends are refused',
    { timeout: 60_000 },
    async () => {
      const a = await worker('a', 'good');
      const b = await worker('b', 'good');
      const sick = await worker('sick', 'sick');
      await waitFor(() => a.view?.members.length === 3 && sick.serving.length > 0, {
        what: 'the sick worker a primary',
        timeoutMs: 20_000,
      });
      const id = Array.from({ length: 200 }, (_, k) => `acct-${k}`).find((x) =>
        sick.serving.includes(shardOf('counter', x, SHARDS)),
      )!;
      const client = track(
        await connect({
          nats: server.url,
          auth: { user: 'good', password: 'pw' },
          cluster: CLUSTER,
          shardCount: SHARDS,
        }),
      );
      const session = client.session('counter', id);
      const started = Date.now();
      let acked = 0;
      let refused = 0;
      let servedBy = '';
      // Sends go on until the others have served it a while.
      for (let after = 0; after < 10 && Date.now() - started < 30_000;) {
        const reply = await session.send({ type: 'ADD', by: 1 }).catch(() => null);
        if (reply === null) {
          refused++;
          await new Promise((r) => setTimeout(r, 20));
          continue;
        }
        acked++;
        servedBy = reply.by;
        if (reply.by !== 'sick') after++;
      }
      expect(refused).toBeGreaterThan(0); // its appends were refused while it held the shard
      expect(['a', 'b']).toContain(servedBy);
      // Its session served elsewhere does not mean a has the view without it yet: that view comes on a's own
      // connection, and a leaver whose shards hand off over more than one view goes only with the last.
      await waitFor(() => a.view!.members.every((m) => !m.id.startsWith('sick')), {
        what: 'the sick worker out of the view',
      });
      expect(a.view!.members.map((m) => m.id).sort()).toEqual(['a', 'b']);
      // It stays out while its probe appends are refused: several health-check timeouts later, still out.
      await new Promise((r) => setTimeout(r, 3 * HEALTH_CHECK));
      expect(a.view!.members.some((m) => m.id.startsWith('sick'))).toBe(false);
      expect(b.view!.members.map((m) => m.id).sort()).toEqual(['a', 'b']);
      // Every acknowledged send is there once: none of the refused ones was applied.
      expect(await session.read()).toMatchObject({ document: { n: acked } });
    },
  );
});
