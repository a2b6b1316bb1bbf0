/**
 * One HTTP port for a worker process's operators: `/metrics` in Prometheus
 * text format (an SDK MeterProvider read by the Prometheus exporter's
 * request handler, so the exporter opens no port of its own), `/healthz`
 * and `/readyz` for an orchestrator's probes.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { MeterProvider as ApiMeterProvider } from '@opentelemetry/api';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';

/** What a probe answers: healthy or ready, and a short why. */
export interface Probe {
  readonly ok: boolean;
  readonly reason: string;
}

export interface MetricsServerOptions {
  /** 0: any free port. */
  readonly port: number;
  /** Interface to listen on (default: all). */
  readonly host?: string;
  /** `/healthz`: the process is alive and its worker running. */
  readonly health: () => Probe;
  /** `/readyz`: the worker serves what the current view gives it. */
  readonly readiness: () => Probe;
}

export interface MetricsServer {
  /** Give it to the worker (startWorker's `meterProvider`): what it records is what `/metrics` shows. */
  readonly meterProvider: ApiMeterProvider;
  /** The port bound (the one asked for, or the one the system chose for 0). */
  readonly port: number;
  close(): Promise<void>;
}

const PATHS = new Set(['/metrics', '/healthz', '/readyz']);

/** Listens before it resolves: a port already taken rejects. */
export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const exporter = new PrometheusExporter({ preventServerStart: true });
  const meterProvider = new MeterProvider({ readers: [exporter] });
  const server = createServer((req, res) => handle(req, res, exporter, options));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    meterProvider,
    port: (server.address() as AddressInfo).port,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await meterProvider.shutdown();
    },
  };
}

function handle(
  req: IncomingMessage,
  res: ServerResponse,
  exporter: PrometheusExporter,
  o: MetricsServerOptions,
): void {
  const path = (req.url ?? '/').split('?', 1)[0]!;
  if (!PATHS.has(path)) return answer(res, 404, { ok: false, reason: `no such path; try ${[...PATHS].join(', ')}` });
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    return answer(res, 405, { ok: false, reason: `${req.method ?? '?'} not allowed; GET or HEAD` });
  }
  if (path === '/metrics') return exporter.getMetricsRequestHandler(req, res);
  const probe = path === '/healthz' ? o.health() : o.readiness();
  answer(res, probe.ok ? 200 : 503, probe);
}

function answer(res: ServerResponse, status: number, body: Probe): void {
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json');
  res.end(`${JSON.stringify(body)}\n`);
}
