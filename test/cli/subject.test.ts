import { randomUUID } from 'node:crypto';
import { headers } from '@nats-io/nats-core';
import { connect as natsConnect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineApplication, shardOf, startWorker } from '../../index.js';
import { createNatsBus } from '../../bus/nats/mod.js';
import { bucketName, cmdSubject, readSubject } from '../../internal.js';
import type { NatsServer } from '../../harness/natsServer.js';
import { cleanupAfterEach } from '../cleanup.js';
import { runCohort } from '../fixtures/cliProcess.js';
import { counterMachine } from '../fixtures/counter.js';
import { startTestServer } from '../nats.js';

const counter = defineApplication({ name: 'counter', machine: counterMachine });
const track = cleanupAfterEach();

let server: NatsServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.[Symbol.asyncDispose]();
});

describe('cohort subject', () => {
  it('prints the subject a raw nats.js request with the JSON content type commits to, then reads from', async () => {
    const cluster = `s${randomUUID().slice(0, 8)}`;
    // Seven shards, not the default: the shard must come from the cluster bucket.
    const bus = track(await createNatsBus({ servers: server.url }));
    track(await startWorker({ bus, cluster, applications: [counter], shards: [0, 1, 2, 3, 4, 5, 6], shardCount: 7 }));
    const id = 'alice.smith@example';
    const cmd = await runCohort(['subject', 'counter', id, '--cluster', cluster, '--nats', server.url]);
    expect(cmd.stderr).toBe('');
    expect(cmd.code).toBe(0);
    const subject = cmd.stdout.trim();
    expect(subject).toBe(cmdSubject(cluster, shardOf('counter', id, 7), 'counter', id, 'admin'));
    const read = await runCohort(['subject', 'counter', id, '--cluster', cluster, '--read', '--nats', server.url]);
    expect(read.code).toBe(0);
    expect(read.stdout.trim()).toBe(readSubject(cluster, shardOf('counter', id, 7), 'counter', id, 'admin'));
    // Given the shard count, no server is needed; the same subject.
    expect((await runCohort(['subject', 'counter', id, '--cluster', cluster, '--shards', '7'])).stdout.trim()).toBe(
      subject,
    );

    // What `nats req -H Content-Type:application/json <subject> '{"type":"ADD","by":5}'` sends.
    const nc = await natsConnect({ servers: server.url });
    track(nc);
    const h = headers();
    h.set('Content-Type', 'application/json');
    const reply = await nc.request(subject, '{"type":"ADD","by":5}', { timeout: 3_000, headers: h });
    expect(reply.headers?.get('Content-Type')).toBe('application/json');
    expect(reply.json()).toMatchObject({ ok: true, seq: 1 });
    const doc = await nc.request(read.stdout.trim(), '', { timeout: 3_000, headers: h });
    expect(doc.json()).toEqual({ ok: true, seq: 1, state: 'running', document: { n: 5, log: ['+5'], rang: 0 } });
  }, 30_000);

  it('refuses what it cannot answer: no cluster, no shard count, bad names; exit 2 for usage, 1 otherwise', async () => {
    const none = await runCohort(['subject', 'counter', 'a', '--cluster', 'nosuch', '--nats', server.url]);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/no cluster nosuch on that server/);
    // A cluster bucket without a recorded count (made by hand here).
    const cluster = `s${randomUUID().slice(0, 8)}`;
    const bus = track(await createNatsBus({ servers: server.url }));
    const kv = await bus.kv({ bucket: bucketName(cluster, 'cluster') });
    const empty = await runCohort(['subject', 'counter', 'a', '--cluster', cluster, '--nats', server.url]);
    expect(empty.code).toBe(1);
    expect(empty.stderr).toMatch(/no shard count recorded yet/);
    await kv.put('shards', new TextEncoder().encode('lots'));
    const corrupt = await runCohort(['subject', 'counter', 'a', '--cluster', cluster, '--nats', server.url]);
    expect(corrupt.code).toBe(1);
    expect(corrupt.stderr).toMatch(/not a shard count: "lots"/);
    for (const args of [
      ['subject', 'counter'],
      ['subject', 'Not_An_App', 'a', '--shards', '4'],
      ['subject', 'counter', 'a', '--shards', '0'],
      ['subject', 'counter', 'a', '--shards', '4x'],
      ['subject', 'counter', 'a', '--shards', '4', '--label', ''],
      ['subject', 'counter', 'a'],
      ['subject', 'counter', 'x'.repeat(2_000), '--shards', '4'],
    ]) {
      const r = await runCohort(args, { NATS_URL: '' });
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/^cohort subject: /);
    }
    // Positive control: the same command with good arguments.
    expect((await runCohort(['subject', 'counter', 'a', '--shards', '4', '--label', 'web'])).stdout.trim()).toBe(
      cmdSubject('demo', shardOf('counter', 'a', 4), 'counter', 'a', 'web'),
    );
  }, 60_000);
});
