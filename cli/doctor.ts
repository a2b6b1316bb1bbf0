import { randomBytes } from 'node:crypto';
import { type Bus, createMemoryBus, createNatsBus } from '../index.js';
import { FALLBACK_DIRS, findNatsServerBinary, natsServerCandidates } from '../harness/natsServerBinary.js';
import { startNatsServer, type NatsServer } from '../harness/natsServer.js';
import { doctorChecks, securityRows, type Scratch } from './doctorChecks.js';
import { describeSecurity, type ConnectionSettings } from './connectionFlags.js';

export interface DoctorOptions extends Partial<ConnectionSettings> {
  /** Servers to check; default: an embedded nats-server, or the memory bus when none is installed. */
  servers?: string[] | undefined;
  write: (line: string) => void;
}

export interface DoctorResult {
  name: string;
  ok: boolean;
  ms: number;
  detail: string;
}

interface Target {
  bus: Bus;
  label: string;
  dispose(): Promise<void>;
}

async function openTarget(options: DoctorOptions): Promise<Target> {
  if (options.servers !== undefined) {
    const bus = await createNatsBus({
      servers: options.servers,
      name: 'cohort-doctor',
      auth: options.auth,
      tls: options.tls,
    });
    return {
      bus,
      label: `nats-server ${bus.server.version} at ${options.servers.join(',')} (${describeSecurity(options)})`,
      dispose: () => bus.close(),
    };
  }
  if (findNatsServerBinary() === null) {
    const env = process.env['NATS_SERVER_BIN'];
    options.write(
      env
        ? `NATS_SERVER_BIN=${env} is not an executable nats-server.`
        : `No nats-server found on PATH or in ${FALLBACK_DIRS.join(', ')} (${natsServerCandidates().length} places in all).`,
    );
    options.write(
      'Checking the in-memory bus instead; install nats-server (apt-get install nats-server) to check NATS.',
    );
    const bus = createMemoryBus();
    return { bus, label: 'the in-memory bus (no nats-server installed)', dispose: () => bus.close() };
  }
  const server: NatsServer = await startNatsServer();
  const bus = await createNatsBus({ servers: server.url, name: 'cohort-doctor' });
  return {
    bus,
    label: `nats-server ${bus.server.version}, embedded at ${server.url}`,
    dispose: async () => {
      await bus.close();
      await server[Symbol.asyncDispose]();
    },
  };
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

/** Exercises every bus capability once and prints a table. Resolves to the exit code. */
export async function runDoctor(options: DoctorOptions): Promise<number> {
  const started = performance.now();
  let target: Target;
  try {
    target = await openTarget(options);
  } catch (err) {
    options.write(`cannot connect: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
    return 1;
  }
  const connectMs = performance.now() - started;
  const id = randomBytes(4).toString('hex');
  const scratch: Scratch = {
    id,
    subject: (suffix) => `cohort_doctor.${id}.${suffix}`,
    stream: `COHORT_DOCTOR_${id}`,
    bucket: `cohort_doctor_${id}`,
  };
  const { bus } = target;
  const results: DoctorResult[] = [
    {
      name: 'connect',
      ok: true,
      ms: connectMs,
      detail: `${bus.server.implementation} ${bus.server.version}, max payload ${bus.server.maxPayload} bytes, JetStream ${bus.server.jetstream ? 'on' : 'off'}`,
    },
  ];
  try {
    for (const check of doctorChecks) {
      const t0 = performance.now();
      try {
        const detail = await check.run(bus, scratch);
        results.push({ name: check.name, ok: true, ms: performance.now() - t0, detail });
      } catch (err) {
        const why = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
        results.push({ name: check.name, ok: false, ms: performance.now() - t0, detail: why });
      }
    }
  } finally {
    // Leave nothing behind on someone else's server.
    await Promise.allSettled([
      bus
        .journal({ name: scratch.stream, subjects: [scratch.subject('j.>')], storage: 'memory' })
        .then((j) => j.destroy()),
      bus.kv({ bucket: scratch.bucket, storage: 'memory' }).then((kv) => kv.destroy()),
      bus.blobs({ bucket: scratch.bucket, storage: 'memory' }).then((b) => b.destroy()),
    ]);
    await target.dispose();
  }

  options.write(`cohort doctor: ${target.label}`);
  options.write('');
  const security = securityRows(bus.server, options.servers !== undefined && options.auth !== undefined);
  const width = Math.max(...[...results, ...security].map((r) => r.name.length)) + 2;
  options.write(`  ${pad('security', width)}${pad('result', 8)}detail`);
  for (const r of security) options.write(`  ${pad(r.name, width)}${pad(r.result, 8)}${r.detail}`);
  options.write('');
  options.write(`  ${pad('capability', width)}${pad('result', 8)}${pad('time', 11)}detail`);
  for (const r of results) {
    options.write(
      `  ${pad(r.name, width)}${pad(r.ok ? 'ok' : 'FAIL', 8)}${pad(`${r.ms.toFixed(1)} ms`, 11)}${r.detail}`,
    );
  }
  const failed = results.filter((r) => !r.ok).length;
  options.write('');
  options.write(
    failed === 0 ? `all ${results.length} capabilities ok` : `${failed} of ${results.length} capabilities FAILED`,
  );
  return failed === 0 ? 0 : 1;
}
