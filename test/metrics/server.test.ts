import { randomUUID } from 'node:crypto';
import { request } from 'node:http';
import { describe, expect, it } from 'vitest';
import { defineApplication, startWorker, type Worker } from '../../index.js';
import { createMemoryBus, createMemoryServer } from '../../bus/memory/mod.js';
import { startMetricsServer } from '../../metrics/server.js';
import { cleanupAfterEach } from '../cleanup.js';
import { counterMachine } from '../fixtures/counter.js';
import { parsePrometheus, total } from '../fixtures/prometheusText.js';
import { RawSession, SHARDS } from '../fixtures/rawCohort.js';

const app = defineApplication({ name: 'counter', machine: counterMachine });

/** One HTTP exchange, raw: any method and path, the status, headers and body as they came. */
function http(
  port: number,
  method: string,
  path: string,
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * The metrics port (metrics/server.ts) over real HTTP, its worker on the
 * memory bus: the probes follow the worker from before it starts to while
 * it stops, and anything but GET/HEAD of its three paths is refused.
 */
describe('metrics server', () => {
  const track = cleanupAfterEach();

  it('serves /metrics in Prometheus text, /healthz and /readyz from before start to stopping, and refuses other paths and methods', async () => {
    let worker: Worker | undefined;
    let stopping = false;
    const metrics = track(
      await startMetricsServer({
        port: 0,
        host: '127.0.0.1',
        health: () => ({ ok: worker !== undefined && !stopping, reason: stopping ? 'stopping' : 'starting' }),
        readiness: () => {
          const r = worker?.readiness() ?? { ready: false, reason: 'starting' };
          return { ok: r.ready, reason: r.reason };
        },
      }),
    );
    expect(metrics.port).toBeGreaterThan(0);
    // Not started yet: alive, but neither healthy nor ready.
    expect(await http(metrics.port, 'GET', '/readyz')).toMatchObject({ status: 503 });
    expect(JSON.parse((await http(metrics.port, 'GET', '/healthz')).body)).toEqual({ ok: false, reason: 'starting' });

    const server = createMemoryServer();
    const cluster = `ms${randomUUID().slice(0, 8)}`;
    worker = await startWorker({
      bus: track(createMemoryBus({ server })),
      cluster,
      applications: [app],
      shards: [...Array(SHARDS).keys()],
      shardCount: SHARDS,
      meterProvider: metrics.meterProvider,
    });
    const raw = track(createMemoryBus({ server }));
    const s = new RawSession(raw, cluster, 'acct');
    for (let i = 0; i < 3; i++) await s.send('raw#00000001', `c${i}`, { type: 'ADD', by: 1 });

    const ready = await http(metrics.port, 'GET', '/readyz');
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.body)).toEqual({ ok: true, reason: `serving ${SHARDS} static shards` });
    expect((await http(metrics.port, 'GET', '/healthz')).status).toBe(200);

    const scrape = await http(metrics.port, 'GET', '/metrics?name=ignored');
    expect(scrape.status).toBe(200);
    expect(scrape.headers['content-type']).toMatch(/^text\/plain/);
    expect(scrape.body).toContain('# TYPE cohort_commands_total counter');
    const samples = parsePrometheus(scrape.body);
    const ok = { app: 'counter', kind: 'command', outcome: 'ok' };
    expect(total(samples, 'cohort_commands_total', ok)).toBe(3);
    expect(total(samples, 'cohort_command_duration_count', ok)).toBe(3);
    expect(total(samples, 'cohort_command_duration_bucket', { ...ok, le: '+Inf' })).toBe(3);
    expect(total(samples, 'cohort_sessions_active', { app: 'counter' })).toBe(1);
    expect(total(samples, 'cohort_journal_append_duration_count', { outcome: 'ok' })).toBe(3);

    // Hostile or mistaken requests: refused, and the port keeps serving.
    expect(await http(metrics.port, 'GET', '/nope')).toMatchObject({ status: 404 });
    expect(await http(metrics.port, 'GET', '/metrics/../readyz/x')).toMatchObject({ status: 404 });
    const post = await http(metrics.port, 'POST', '/metrics');
    expect(post.status).toBe(405);
    expect(post.headers['allow']).toBe('GET, HEAD');
    expect(await http(metrics.port, 'DELETE', '/readyz')).toMatchObject({ status: 405 });
    expect(await http(metrics.port, 'HEAD', '/healthz')).toMatchObject({ status: 200, body: '' });

    // Stopping: no longer ready, at once.
    stopping = true;
    const stopped = worker.stop();
    expect(JSON.parse((await http(metrics.port, 'GET', '/readyz')).body)).toEqual({ ok: false, reason: 'stopping' });
    expect((await http(metrics.port, 'GET', '/healthz')).status).toBe(503);
    await stopped;
  });

  it('refuses a port already taken', async () => {
    const first = track(
      await startMetricsServer({
        port: 0,
        host: '127.0.0.1',
        health: () => ({ ok: true, reason: '' }),
        readiness: () => ({ ok: true, reason: '' }),
      }),
    );
    await expect(
      startMetricsServer({
        port: first.port,
        host: '127.0.0.1',
        health: () => ({ ok: true, reason: '' }),
        readiness: () => ({ ok: true, reason: '' }),
      }),
    ).rejects.toMatchObject({ code: 'EADDRINUSE' });
  });
});
