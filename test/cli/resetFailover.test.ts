/**
 * `cohort reset-failover` as a process against workers on a real
 * nats-server: the process boundary (flags, exit codes, what it prints).
 * The safeguards themselves are tested on virtual time
 * (test/machines/safeguards.test.ts, test/harness/safeguardsSim.test.ts).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineApplication, startWorker, type Worker } from '../../index.js';
import { createNatsBus } from '../../bus/nats/mod.js';
import { parseResetFailoverArgs } from '../../cli/resetFailover.js';
import { CliUsageError } from '../../cli/loadApplications.js';
import type { NatsServer } from '../../harness/natsServer.js';
import { cleanupAfterEach } from '../cleanup.js';
import { counterMachine } from '../fixtures/counter.js';
import { runCohort } from '../fixtures/cliProcess.js';
import { startTestServer } from '../nats.js';
import { waitFor } from '../waitFor.js';

const SHARDS = 8;

describe('cohort reset-failover', () => {
  let server: NatsServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.[Symbol.asyncDispose]();
  });
  const track = cleanupAfterEach();
  const app = defineApplication({ name: 'counter', machine: counterMachine });

  it('resumes a failover halted by the quota: the held worker is dropped and its shards served again', async () => {
    const cluster = `r${randomUUID().slice(0, 8)}`;
    const opts = {
      cluster,
      applications: [app],
      shardCount: SHARDS,
      heartbeatInterval: 100,
      sessionTimeout: 500,
      failoverQuota: 1,
    };
    const started: { worker: Worker; close(): Promise<void> }[] = [];
    for (const id of ['a', 'b', 'c']) {
      const bus = track(await createNatsBus({ servers: server.url }));
      started.push({ worker: track(await startWorker({ ...opts, bus, id })), close: () => bus.close() });
    }
    const [a, b, c] = started as [(typeof started)[0], (typeof started)[0], (typeof started)[0]];
    await waitFor(() => a.worker.view?.members.length === 3 && a.worker.serving.length > 0, {
      what: 'three members',
      timeoutMs: 10_000,
    });
    // b dies: dropped, 1 of 1. c dies: held, failover halted, its shards unserved.
    await b.close();
    await waitFor(() => a.worker.view?.members.length === 2, { what: 'b dropped', timeoutMs: 10_000 });
    await waitFor(() => c.worker.serving.length > 0, { what: 'c serving', timeoutMs: 10_000 });
    await c.close();
    await waitFor(() => a.worker.view?.safeguards.failoverHalted !== null, { what: 'halted', timeoutMs: 10_000 });
    expect(a.worker.view!.safeguards.held).toEqual([{ member: 'c', reason: 'quota' }]);
    expect(a.worker.serving.length).toBeLessThan(SHARDS);

    const r = await runCohort(['reset-failover', '--nats', server.url, '--cluster', cluster]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^failover quota reset, leader a: accepted: failover resumes/);
    // The view it prints is the one with failover running: no halt in it.
    expect(r.stdout).toMatch(/\nview \d+: /);
    expect(r.stdout).not.toMatch(/halted/);
    await waitFor(() => a.worker.serving.length === SHARDS, { what: 'a serving every shard', timeoutMs: 10_000 });
    expect(a.worker.view!.members.map((m) => m.id)).toEqual(['a']);
    expect(a.worker.view!.safeguards).toMatchObject({ failoverHalted: null, held: [], dropped: [{ member: 'c' }] });

    // A cluster nobody leads: said so, exit 1. Wrong usage: exit 2.
    const nobody = await runCohort(['reset-failover', '--nats', server.url, '--cluster', 'nobody_here']);
    expect(nobody.code).toBe(1);
    expect(nobody.stderr).toMatch(/no leader of cluster nobody_here answered/);
    const usage = await runCohort(['reset-failover', '--cluster', cluster], { NATS_URL: '' });
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/--nats URL/);
  });

  it('parses its flags and refuses bad ones as wrong usage', () => {
    expect(parseResetFailoverArgs(['--nats', 'nats://h:4222'])).toMatchObject({
      servers: ['nats://h:4222'],
      cluster: 'demo',
      timeout: 30_000,
    });
    expect(parseResetFailoverArgs(['--nats', 'nats://h:4222', '--cluster', 'x', '--timeout', '500'])).toMatchObject({
      cluster: 'x',
      timeout: 500,
    });
    for (const bad of ['0', 'soon', '1.5', '9'.repeat(30)])
      expect(() => parseResetFailoverArgs(['--nats', 'nats://h:4222', '--timeout', bad])).toThrow(CliUsageError);
    // parseArgs' own refusals: an unknown flag, a stray argument.
    expect(() => parseResetFailoverArgs(['--nats', 'nats://h:4222', '--shard', '3'])).toThrow();
    expect(() => parseResetFailoverArgs(['--nats', 'nats://h:4222', 'please'])).toThrow();
  });
});
