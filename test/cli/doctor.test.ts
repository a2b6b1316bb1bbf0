import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDoctor } from '../../cli/doctor.js';
import type { NatsServer } from '../../harness/natsServer.js';
import { jetstreamManager } from '@nats-io/jetstream';
import { connectTest, startTestServer } from '../nats.js';

const run = promisify(execFile);

async function doctor(options: { servers?: string[] } = {}): Promise<{ code: number; lines: string[] }> {
  const lines: string[] = [];
  const code = await runDoctor({ ...options, write: (l) => lines.push(l) });
  return { code, lines };
}

describe('cohort doctor', () => {
  let server: NatsServer;
  let plain: NatsServer;
  beforeAll(async () => {
    [server, plain] = await Promise.all([startTestServer(), startTestServer({ jetstream: false })]);
  });
  afterAll(async () => {
    await Promise.all([server?.[Symbol.asyncDispose](), plain?.[Symbol.asyncDispose]()]);
  });

  it('passes every capability against a real nats-server and prints its version', async () => {
    const { code, lines } = await doctor({ servers: [server.url] });
    expect(code).toBe(0);
    expect(lines[0]).toContain(`nats-server ${server.version}`);
    const rows = lines.filter((l) => /^ {2}\S/.test(l) && !l.includes('capability'));
    expect(rows.length).toBeGreaterThanOrEqual(18);
    expect(rows.every((r) => /\s ok\s+\d+\.\d ms/.test(r))).toBe(true);
    expect(lines.at(-1)).toMatch(/^all \d+ capabilities ok$/);
  });

  it('leaves no stream, bucket or object store behind on the server it checked', async () => {
    await using nc = await connectTest(server);
    const jsm = await jetstreamManager(nc);
    const names = async () => (await jsm.streams.names().next()).filter((n) => n.toLowerCase().includes('doctor'));
    // The listing can see such a stream at all: a witness shows up, then goes.
    await jsm.streams.add({ name: 'DOCTOR_WITNESS', subjects: ['doctor.witness'] });
    expect(await names()).toEqual(['DOCTOR_WITNESS']);
    await jsm.streams.delete('DOCTOR_WITNESS');
    expect((await doctor({ servers: [server.url] })).code).toBe(0);
    expect(await names()).toEqual([]);
  });

  it('falls back to the memory bus, saying so, when no nats-server can be found', async () => {
    const saved = process.env['NATS_SERVER_BIN'];
    process.env['NATS_SERVER_BIN'] = '/nonexistent/nats-server';
    try {
      const { code, lines } = await doctor();
      expect(code).toBe(0);
      expect(lines[0]).toContain('NATS_SERVER_BIN=/nonexistent/nats-server is not an executable');
      expect(lines.join('\n')).toContain('cohort doctor: the in-memory bus');
    } finally {
      if (saved === undefined) delete process.env['NATS_SERVER_BIN'];
      else process.env['NATS_SERVER_BIN'] = saved;
    }
  });

  it('fails with a clear reason on a server without JetStream', async () => {
    const { code, lines } = await doctor({ servers: [plain.url] });
    expect(code).toBe(1);
    expect(lines.join('\n')).toMatch(/JetStreamDisabledError: JetStream is not enabled/);
  });

  it('runs as a command: table on stdout, exit code 0; unknown commands exit 2', async () => {
    const cli = ['--import', 'tsx', 'cli/main.ts'];
    const ok = await run(process.execPath, [...cli, 'doctor', '--nats', server.url]);
    expect(ok.stdout).toMatch(/all \d+ capabilities ok/);
    const bad = await run(process.execPath, [...cli, 'frobnicate']).catch((e: { code: number; stderr: string }) => e);
    expect(bad).toMatchObject({ code: 2 });
    expect((bad as { stderr: string }).stderr).toContain('unknown command "frobnicate"');
    const unreachable = await run(process.execPath, [...cli, 'doctor', '--nats', 'nats://127.0.0.1:1']).catch(
      (e: { code: number; stdout: string }) => e,
    );
    expect(unreachable).toMatchObject({ code: 1 });
    expect((unreachable as { stdout: string }).stdout).toContain('cannot connect');
  });
});
