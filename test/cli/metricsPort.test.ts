import { randomBytes } from 'node:crypto';
import { connect as connectNats } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, shardOf } from '../../index.js';
import { cmdSubject, decode } from '../../internal.js';
import { CliUsageError } from '../../cli/loadApplications.js';
import { parseWorkerArgs } from '../../cli/worker.js';
import type { NatsServer } from '../../harness/natsServer.js';
import { cleanupAfterEach } from '../cleanup.js';
import { cohort } from '../fixtures/cliProcess.js';
import { parsePrometheus, total } from '../fixtures/prometheusText.js';
import { startTestServer } from '../nats.js';
import { waitFor } from '../waitFor.js';

const SERVING = /^worker (\S+) serving .+ \(.*metrics on port (\d+): \/metrics \/healthz \/readyz\)$/;
const APP = ['--app', './examples/ledger.ts'];

async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: await res.text() };
}

/**
 * `cohort worker --metrics-port`: a worker process against a real
 * nats-server, scraped over HTTP as Prometheus would, after a client's
 * commands and reads and a forged one.
 */
describe('cohort worker --metrics-port', () => {
  let server: NatsServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.[Symbol.asyncDispose]();
  });
  const track = cleanupAfterEach();

  it('takes 0 to 65535 and refuses anything else as wrong usage', () => {
    expect(parseWorkerArgs([...APP, '--metrics-port', '0']).metricsPort).toBe(0);
    expect(parseWorkerArgs([...APP, '--metrics-port', '9464']).metricsPort).toBe(9464);
    expect(parseWorkerArgs(APP).metricsPort).toBeUndefined();
    for (const bad of ['65536', '-1', 'abc', '', '1.5', '0x10'])
      expect(() => parseWorkerArgs([...APP, `--metrics-port=${bad}`]), bad).toThrow(CliUsageError);
  });

  it('exits 2 on a bad port before starting anything', async () => {
    const cli = track(cohort(['worker', ...APP, '--nats', server.url, '--metrics-port', '70000']));
    expect(await cli.exited).toEqual({ code: 2, signal: null });
    expect(cli.stderr()).toContain('--metrics-port needs a port number from 0 (any free port) to 65535');
    expect(cli.stdout).toEqual([]);
  });

  it(
    'serves /metrics grown by the commands and reads sent, /healthz, /readyz; counts a forged command and keeps serving',
    { timeout: 60_000 },
    async () => {
      const cluster = `metrics_${randomBytes(4).toString('hex')}`;
      const worker = track(
        cohort(['worker', ...APP, '--nats', server.url, '--cluster', cluster, '--metrics-port', '0']),
      );
      const [, , portText] = await worker.line(SERVING);
      const port = Number(portText);
      // Printed once the worker has joined: a member of the view, serving its shards.
      await waitFor(async () => (await get(port, '/readyz')).status === 200, { what: 'ready', timeoutMs: 10_000 });
      expect(JSON.parse((await get(port, '/readyz')).body)).toMatchObject({ ok: true, reason: /^member of view \d+/ });
      expect(await get(port, '/healthz')).toMatchObject({ status: 200 });

      const before = parsePrometheus((await get(port, '/metrics')).body);
      const ok = { app: 'ledger', kind: 'command', outcome: 'ok' };
      expect(total(before, 'cohort_commands_total', ok)).toBe(0);

      const client = track(await connect({ nats: server.url, cluster, label: 'metrics-test' }));
      const ids = ['alice', 'bob', 'carol'];
      for (const id of ids) {
        const s = client.session('ledger', id);
        await s.send({ type: 'OPEN', owner: id });
        await s.send({ type: 'DEPOSIT', amount: 10 });
        expect((await s.read()).document).toMatchObject({ balance: 10 });
      }
      const sent = ids.length * 2;

      // Bytes that are no request, on a real command subject: answered with a typed error, counted under it.
      const nc = await connectNats({ servers: server.url });
      try {
        const subject = cmdSubject(cluster, shardOf('ledger', 'alice'), 'ledger', 'alice', 'forger');
        const reply = decode((await nc.request(subject, new Uint8Array([0xc1, 0xc1]), { timeout: 5_000 })).data);
        expect(reply).toMatchObject({ ok: false, error: { name: 'DecodeError' } });
      } finally {
        await nc.close();
      }
      // Still serving.
      await client.session('ledger', 'alice').send({ type: 'DEPOSIT', amount: 1 });

      const scrape = await get(port, '/metrics');
      expect(scrape.status).toBe(200);
      const after = parsePrometheus(scrape.body);
      expect(total(after, 'cohort_commands_total', ok)).toBeGreaterThanOrEqual(sent + 1);
      expect(total(after, 'cohort_command_duration_count', ok)).toBeGreaterThanOrEqual(sent + 1);
      expect(total(after, 'cohort_commands_total', { app: 'ledger', outcome: 'DecodeError' })).toBe(1);
      expect(total(after, 'cohort_reads_total', { app: 'ledger', outcome: 'ok' })).toBeGreaterThanOrEqual(ids.length);
      expect(total(after, 'cohort_sessions_active', { app: 'ledger' })).toBe(ids.length);
      expect(total(after, 'cohort_session_activations_total', { app: 'ledger' })).toBe(ids.length);
      expect(total(after, 'cohort_journal_append_duration_count', { outcome: 'ok' })).toBeGreaterThanOrEqual(sent + 1);
      // Alone in the cluster: it took every shard on joining.
      expect(total(after, 'cohort_shard_moves_total', { direction: 'gained' })).toBeGreaterThan(0);

      // Hostile HTTP: refused, and the port keeps answering.
      expect((await get(port, '/admin')).status).toBe(404);
      expect((await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'POST', body: 'x' })).status).toBe(405);
      expect((await get(port, '/healthz')).status).toBe(200);

      worker.child.kill('SIGTERM');
      expect(await worker.exited).toEqual({ code: 0, signal: null });
      // The port goes with the process.
      await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
    },
  );

  it(
    '/readyz says 503 while the worker has lost NATS (the process alive: /healthz 200), and 200 once it is back',
    { timeout: 60_000 },
    async () => {
      await using own = await startTestServer();
      const cluster = `metrics_${randomBytes(4).toString('hex')}`;
      const worker = track(cohort(['worker', ...APP, '--nats', own.url, '--cluster', cluster, '--metrics-port', '0']));
      const port = Number((await worker.line(SERVING))[2]);
      await waitFor(async () => (await get(port, '/readyz')).status === 200, { what: 'ready', timeoutMs: 10_000 });

      await own.stop();
      await waitFor(async () => (await get(port, '/readyz')).status === 503, { what: 'not ready', timeoutMs: 10_000 });
      expect(JSON.parse((await get(port, '/readyz')).body)).toEqual({
        ok: false,
        reason: 'disconnected from NATS, reconnecting',
      });
      expect((await get(port, '/healthz')).status).toBe(200);

      await own.restart();
      await waitFor(async () => (await get(port, '/readyz')).status === 200, {
        what: 'ready again',
        timeoutMs: 20_000,
      });
    },
  );
});
