import { X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, createNatsBus, defineApplication, startWorker, TlsError, type NatsTls } from '../../index.js';
import { createTlsCertificates, type TlsCertificates } from '../../harness/index.js';
import type { NatsServer } from '../../harness/natsServer.js';
import { cleanupAfterEach } from '../cleanup.js';
import { cohort } from '../fixtures/cliProcess.js';
import { counterMachine } from '../fixtures/counter.js';
import { startTestServer } from '../nats.js';

const counterApp = defineApplication({ name: 'counter', machine: counterMachine });
const unique = (): string => `tls_${Math.random().toString(36).slice(2, 10)}`;

/**
 * TLS against real TLS-only nats-servers (issue 12, section 2): a throwaway
 * CA signs the server's and a client's certificates; each case connects
 * with the right files (positive control) and without them (refused, with a
 * TlsError that names the flag to give).
 */
describe('TLS', () => {
  const track = cleanupAfterEach();
  let certs: TlsCertificates;
  /** Another CA, unknown to the servers: its certificates are a stranger's. */
  let foreign: TlsCertificates;
  /** TLS required, no client certificates. */
  let tlsServer: NatsServer;
  /** TLS required, and a client certificate signed by `certs.ca`. */
  let verifyServer: NatsServer;

  beforeAll(async () => {
    [certs, foreign] = await Promise.all([createTlsCertificates(), createTlsCertificates()]);
    [tlsServer, verifyServer] = await Promise.all([
      startTestServer(certs.natsServer()),
      startTestServer(certs.natsServer({ verify: true })),
    ]);
  }, 60_000);
  afterAll(async () => {
    await Promise.all([tlsServer, verifyServer].map((s) => s?.[Symbol.asyncDispose]()));
    await Promise.all([certs, foreign].map((c) => c?.[Symbol.asyncDispose]()));
  });

  it('the helper writes a CA, and server and client certificates it signed, the server named in its SAN; dispose removes them', async () => {
    const read = async (file: string): Promise<X509Certificate> => new X509Certificate(await readFile(file));
    const [ca, server, client, stranger] = await Promise.all([
      read(certs.ca),
      read(certs.server.cert),
      read(certs.client.cert),
      read(foreign.server.cert),
    ]);
    expect(ca.ca).toBe(true);
    for (const leaf of [server, client]) {
      expect(leaf.ca).toBe(false);
      expect(leaf.verify(ca.publicKey)).toBe(true);
    }
    // Refusal: another CA's certificate is not signed by this one.
    expect(stranger.verify(ca.publicKey)).toBe(false);
    expect(server.subjectAltName).toContain('DNS:localhost');
    expect(server.subjectAltName).toContain('IP Address:127.0.0.1');
    expect(server.checkHost('localhost')).toBe('localhost');
    expect(server.checkHost('example.com')).toBeUndefined();

    const brief = await createTlsCertificates();
    expect(existsSync(brief.ca)).toBe(true);
    await brief[Symbol.asyncDispose]();
    expect(existsSync(brief.dir)).toBe(false);
  });

  it('worker and client connect with tls: { ca }, send and read', async () => {
    const cluster = unique();
    const tls: NatsTls = { ca: certs.ca };
    track(
      await startWorker({
        nats: tlsServer.url,
        tls,
        cluster,
        applications: [counterApp],
        shards: [0, 1, 2, 3],
        shardCount: 4,
      }),
    );
    const client = track(await connect({ nats: tlsServer.url, tls, cluster, label: 'tls', shardCount: 4 }));
    expect(await client.session('counter', 'a').send({ type: 'ADD', by: 3 })).toMatchObject({ seq: 1 });
    expect(await client.session('counter', 'a').read()).toMatchObject({ seq: 1, document: { n: 3 } });
    // The certificate's names: localhost works as well as 127.0.0.1.
    const byName = track(await createNatsBus({ servers: tlsServer.url.replace('127.0.0.1', 'localhost'), tls }));
    expect(byName.server.security).toEqual({
      authRequired: false,
      tlsRequired: true,
      tlsVerify: false,
      encrypted: true,
    });
  });

  it('without the CA, or with another CA, the connection is refused with a TlsError naming --tls-ca', async () => {
    const cases: { what: string; tls: NatsTls | undefined }[] = [
      { what: 'no tls option', tls: undefined },
      { what: 'tls: {} (the system CAs)', tls: {} },
      { what: 'a foreign CA', tls: { ca: foreign.ca } },
    ];
    for (const c of cases) {
      const err = await createNatsBus({ servers: tlsServer.url, tls: c.tls, timeout: 3_000 }).catch((e: unknown) => e);
      expect(err, c.what).toBeInstanceOf(TlsError);
      expect(err, c.what).toMatchObject({ reason: 'server-not-trusted', server: tlsServer.url });
      expect((err as Error).message, c.what).toContain('--tls-ca');
    }
    // Not retryable: the same files fail the same way.
    expect(new TlsError('x', 'server-not-trusted', 'CODE', 'detail').retryable).toBe(false);
    // The worker and the client surface the same error.
    const cluster = unique();
    await expect(
      startWorker({ nats: tlsServer.url, cluster, applications: [counterApp], shards: [0], shardCount: 1 }),
    ).rejects.toBeInstanceOf(TlsError);
    // connect() says so at once (the same files fail the same way), however long its waitTimeout.
    const client = await connect({ nats: tlsServer.url, cluster, waitTimeout: 30_000 }).catch((e: unknown) => e);
    expect(client).toBeInstanceOf(TlsError);
    expect((client as Error).message).toContain('--tls-ca FILE');
  });

  it('a connect timeout is looked into once for a TLS alert, and stays a timeout when there was none', async () => {
    // A listener that accepts and never says anything: no INFO, so nothing about TLS to learn.
    const silent = createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const url = `nats://127.0.0.1:${(silent.address() as AddressInfo).port}`;
      const err = await createNatsBus({ servers: url, tls: { ca: certs.ca }, timeout: 500 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
      expect(err).not.toBeInstanceOf(TlsError);
      expect((err as Error).name).toBe('TimeoutError');
    } finally {
      silent.close();
    }
  });

  it('a certificate that does not name the host dialled is a TlsError saying so', async () => {
    await using elsewhere = await createTlsCertificates({ hosts: ['cohort.invalid'] });
    await using server = await startTestServer({
      ...elsewhere.natsServer(),
      // The readiness check dials 127.0.0.1, which this certificate does not name.
      probe: { tls: { caFile: elsewhere.ca, rejectUnauthorized: false } },
    });
    const err = await createNatsBus({ servers: server.url, tls: { ca: elsewhere.ca }, timeout: 3_000 }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TlsError);
    expect(err).toMatchObject({ reason: 'server-name-mismatch', code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
  });

  it('a server with --tlsverify refuses a client without a certificate, or with a stranger’s, and takes one signed by its CA', async () => {
    for (const [what, tls] of [
      ['no client certificate', { ca: certs.ca }],
      ['a certificate from another CA', { ca: certs.ca, cert: foreign.client.cert, key: foreign.client.key }],
    ] as const) {
      const err = await createNatsBus({ servers: verifyServer.url, tls, timeout: 1_500 }).catch((e: unknown) => e);
      expect(err, what).toBeInstanceOf(TlsError);
      expect(err, what).toMatchObject({ reason: 'client-certificate-refused' });
      expect((err as Error).message, what).toContain('--tls-cert FILE --tls-key FILE');
    }
    const tls: NatsTls = { ca: certs.ca, cert: certs.client.cert, key: certs.client.key };
    const bus = track(await createNatsBus({ servers: verifyServer.url, tls }));
    expect(bus.server.security).toMatchObject({ tlsVerify: true, encrypted: true });
    const cluster = unique();
    track(
      await startWorker({
        nats: verifyServer.url,
        tls,
        cluster,
        applications: [counterApp],
        shards: [0, 1, 2, 3],
        shardCount: 4,
      }),
    );
    const client = track(await connect({ nats: verifyServer.url, tls, cluster, shardCount: 4 }));
    expect(await client.session('counter', 'b').send({ type: 'ADD', by: 5 })).toMatchObject({ seq: 1 });
    expect(await client.session('counter', 'b').read()).toMatchObject({ document: { n: 5 } });
  });

  describe('the CLI', () => {
    it('cohort doctor --tls-ca passes every check; without it, it exits 1 naming --tls-ca', async () => {
      const ok = track(cohort(['doctor', '--nats', tlsServer.url, '--tls-ca', certs.ca]));
      const [okExit, refused] = await Promise.all([
        ok.exited,
        (async () => {
          const cli = track(cohort(['doctor', '--nats', tlsServer.url]));
          await cli.exited;
          return cli;
        })(),
      ]);
      expect(okExit, ok.stderr()).toEqual({ code: 0, signal: null });
      expect(ok.stdout[0]).toBe(
        `cohort doctor: nats-server ${tlsServer.version} at ${tlsServer.url} (no credentials, TLS)`,
      );
      expect(ok.stdout.join('\n')).toMatch(/^all \d+ capabilities ok$/m);
      expect(ok.stdout.join('\n')).toMatch(/^ {2}encrypted +yes +TLS$/m);

      expect(await refused.exited).toEqual({ code: 1, signal: null });
      expect(refused.stdout.join('\n')).toMatch(/^cannot connect: TlsError: .*--tls-ca FILE/m);
    });

    it('cohort worker --tls-ca serves; with a client certificate on a verifying server too; without one, exit 1', async () => {
      const [cluster, other] = [unique(), unique()];
      const ledger = ['worker', '--app', 'examples/ledger.ts', '--cluster'];
      const worker = track(
        cohort([...ledger, cluster, '--nats', tlsServer.url, '--tls-ca', certs.ca, '--id', 'tls-w1']),
      );
      // The client certificate through the NATS_* variables, as the nats CLI takes them.
      const verifying = track(
        cohort([...ledger, other, '--nats', verifyServer.url, '--id', 'tls-w2'], {
          NATS_CA: certs.ca,
          NATS_CERT: certs.client.cert,
          NATS_KEY: certs.client.key,
        }),
      );
      const refused = track(cohort([...ledger, other, '--nats', verifyServer.url, '--tls-ca', certs.ca]));
      await Promise.all([worker.line(/^worker tls-w1 serving ledger on /), verifying.line(/^worker tls-w2 serving /)]);

      const client = track(await connect({ nats: tlsServer.url, tls: { ca: certs.ca }, cluster }));
      await client.session('ledger', 'alice').send({ type: 'OPEN', owner: 'Alice' });
      expect(await client.session('ledger', 'alice').send({ type: 'DEPOSIT', amount: 7 })).toMatchObject({ seq: 2 });
      expect((await client.session('ledger', 'alice').read()).document).toMatchObject({ balance: 7 });
      const tls = { ca: certs.ca, cert: certs.client.cert, key: certs.client.key };
      const second = track(await connect({ nats: verifyServer.url, tls, cluster: other }));
      expect(await second.session('ledger', 'bob').send({ type: 'OPEN', owner: 'Bob' })).toMatchObject({ seq: 1 });

      expect(await refused.exited).toMatchObject({ code: 1 });
      expect(refused.stderr()).toMatch(/^cannot connect to \S+: TlsError: .*--tls-cert FILE --tls-key FILE/m);
      worker.child.kill('SIGTERM');
      verifying.child.kill('SIGTERM');
      expect(await Promise.all([worker.exited, verifying.exited])).toEqual([
        { code: 0, signal: null },
        { code: 0, signal: null },
      ]);
    }, 60_000);
  });
});
