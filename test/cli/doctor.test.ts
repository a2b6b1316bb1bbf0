import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDoctor } from '../../cli/doctor.js';
import { belowSecurityFloor, SECURITY_FLOOR, securityRows } from '../../cli/doctorChecks.js';
import { compareVersions } from '../../internal.js';
import type { ConnectionSettings } from '../../cli/connectionFlags.js';
import { createTlsCertificates, type TlsCertificates } from '../../harness/index.js';
import type { NatsServer } from '../../harness/natsServer.js';
import { jetstreamManager } from '@nats-io/jetstream';
import { connectTest, startTestServer } from '../nats.js';

const run = promisify(execFile);

async function doctor(
  options: { servers?: string[] } & Partial<ConnectionSettings> = {},
): Promise<{ code: number; lines: string[] }> {
  const lines: string[] = [];
  const code = await runDoctor({ ...options, write: (l) => lines.push(l) });
  return { code, lines };
}

/** The capability rows: from the table's header to the blank line after it. */
function capabilityRows(lines: string[]): string[] {
  const start = lines.findIndex((l) => /^ {2}capability\s/.test(l));
  const end = lines.indexOf('', start);
  return lines.slice(start + 1, end);
}

/** The security table, by row name. */
function securityTable(lines: string[]): Record<string, { result: string; detail: string }> {
  const rows: Record<string, { result: string; detail: string }> = {};
  for (const l of lines) {
    const m = /^ {2}(server version|authenticated|encrypted) +(\S+) +(.*)$/.exec(l);
    if (m !== null) rows[m[1]!] = { result: m[2]!, detail: m[3]! };
  }
  return rows;
}

const FLOOR_ADVICE = 'fine for development, not for production: upgrade to >= 2.11.16 or >= 2.12.7';

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
    const rows = capabilityRows(lines);
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

describe('cohort doctor: security', () => {
  let plain: NatsServer;
  let password: NatsServer;
  let tls: NatsServer;
  let certs: TlsCertificates;
  beforeAll(async () => {
    certs = await createTlsCertificates();
    [plain, password, tls] = await Promise.all([
      startTestServer(),
      startTestServer({ args: ['--user', 'u', '--pass', 'p'], probe: { user: 'u', pass: 'p' } }),
      startTestServer(certs.natsServer()),
    ]);
  });
  afterAll(async () => {
    await Promise.all([plain, password, tls].map((s) => s?.[Symbol.asyncDispose]()));
    await certs?.[Symbol.asyncDispose]();
  });

  it('warns that Debian’s 2.9.10 is below the security floor, and still exits 0', async () => {
    const { code, lines } = await doctor({ servers: [plain.url] });
    expect(plain.version).toBe('2.9.10');
    expect(code).toBe(0);
    const table = securityTable(lines);
    expect(table['server version']).toEqual({
      result: 'WARN',
      detail: `nats-server 2.9.10 has published authentication-bypass and JetStream authorization advisories: ${FLOOR_ADVICE}`,
    });
    expect(lines.at(-1)).toMatch(/^all \d+ capabilities ok$/);
  });

  it('says whether the connection authenticated: yes on a user/password server, no on an open one', async () => {
    const open = securityTable((await doctor({ servers: [plain.url] })).lines);
    expect(open['authenticated']?.result).toBe('no');
    const closed = await doctor({ servers: [password.url], auth: { user: 'u', password: 'p' } });
    expect(closed.code).toBe(0);
    expect(securityTable(closed.lines)['authenticated']).toEqual({
      result: 'yes',
      detail: 'the server requires credentials, and took these',
    });
    expect(securityTable(closed.lines)['encrypted']?.result).toBe('no');
  });

  it('does not take auth_required at its word: a connection let in without credentials is not authenticated', async () => {
    // A user in the global account and a system account: nats-server before 2.9.23 lets anyone in
    // anyway (GHSA-fr2g-9hjm-wr23) while its INFO still says auth_required.
    const conf = join(certs.dir, 'sys-only.conf');
    await writeFile(
      conf,
      'authorization { users = [ { user: u, password: p } ] }\n' +
        'accounts { SYS { users = [ { user: s, password: s } ] } }\nsystem_account: SYS\n',
    );
    await using server = await startTestServer({ args: ['-c', conf], probe: { user: 'u', pass: 'p' } });
    const open = await doctor({ servers: [server.url] });
    if (compareVersions(server.version, '2.9.23') < 0) {
      expect(open.code).toBe(0);
      expect(securityTable(open.lines)['authenticated']).toEqual({
        result: 'no',
        detail:
          'the server says it requires credentials but let this connection in without any: a no_auth_user, ' +
          'or a system account on nats-server < 2.9.23 (GHSA-fr2g-9hjm-wr23)',
      });
    } else {
      expect(open.lines.join('\n')).toContain('AuthenticationError');
    }
    // Positive control: with the user's credentials, it is.
    const closed = await doctor({ servers: [server.url], auth: { user: 'u', password: 'p' } });
    expect(securityTable(closed.lines)['authenticated']?.result).toBe('yes');
  });

  it('says whether the connection is encrypted: yes on a TLS server, no on a plain one', async () => {
    const secured = await doctor({ servers: [tls.url], tls: { ca: certs.ca } });
    expect(secured.code).toBe(0);
    expect(securityTable(secured.lines)['encrypted']).toEqual({ result: 'yes', detail: 'TLS' });
    expect(securityTable(secured.lines)['authenticated']?.result).toBe('no');
    expect(securityTable((await doctor({ servers: [plain.url] })).lines)['encrypted']?.result).toBe('no');
  });

  it('reports not applicable on the memory bus', async () => {
    const saved = process.env['NATS_SERVER_BIN'];
    process.env['NATS_SERVER_BIN'] = '/nonexistent/nats-server';
    try {
      const table = securityTable((await doctor()).lines);
      expect(Object.values(table).map((r) => r.result)).toEqual(['n/a', 'n/a', 'n/a']);
    } finally {
      if (saved === undefined) delete process.env['NATS_SERVER_BIN'];
      else process.env['NATS_SERVER_BIN'] = saved;
    }
  });

  it('compares versions with the floor around its boundaries', () => {
    const below = ['2.9.10', '2.10.0', '2.10.29', '2.11.0', '2.11.15', '2.12.0', '2.12.6', '2.12.7-RC.1', '1.4.1'];
    const ok = ['2.11.16', '2.11.17', '2.12.7', '2.12.15', '2.13.0', '2.14.0', '2.15.1', '3.0.0'];
    expect(below.filter((v) => !belowSecurityFloor(v))).toEqual([]);
    expect(ok.filter((v) => belowSecurityFloor(v))).toEqual([]);
    expect(SECURITY_FLOOR.lines).toEqual({ '2.11': '2.11.16', '2.12': '2.12.7' });
    const row = (version: string) =>
      securityRows(
        {
          implementation: 'nats',
          version,
          maxPayload: 1,
          jetstream: true,
          security: { authRequired: true, tlsRequired: true, tlsVerify: true, encrypted: true },
        },
        true,
      );
    expect(row('2.12.7')[0]).toMatchObject({ result: 'ok' });
    expect(row('2.12.6')[0]).toMatchObject({ result: 'WARN' });
    expect(row('2.12.7')[2]).toEqual({
      name: 'encrypted',
      result: 'yes',
      detail: 'TLS, with a client certificate the server verified',
    });
  });
});
