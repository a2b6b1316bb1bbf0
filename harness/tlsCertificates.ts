import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isIP } from 'node:net';
import type { NatsServerOptions } from './natsServer.js';
import { NatsHarnessError } from './errors.js';

export interface TlsCertificatesOptions {
  /** Names the server certificate is valid for (its subjectAltName); default localhost, 127.0.0.1 and ::1. */
  hosts?: readonly string[];
  /** The client certificate's common name (default `cohort-client`). */
  clientName?: string;
  /** Days the certificates stay valid (default 2: long enough for a test run, useless if leaked). */
  days?: number;
  /** The openssl executable (default OPENSSL_BIN, else `openssl` on PATH). */
  openssl?: string;
}

/** A certificate and its private key, as PEM files. */
export interface CertificateFiles {
  readonly cert: string;
  readonly key: string;
}

/**
 * A throwaway CA with a server and a client certificate it signed, as PEM
 * files in a temporary directory that dispose removes. For tests of TLS
 * against a real nats-server: clients trust `ca` (`tls: { ca }`, `--tls-ca`),
 * and present `client` to a server that verifies them.
 */
export interface TlsCertificates extends AsyncDisposable {
  readonly dir: string;
  /** The CA certificate: what clients are told to trust. */
  readonly ca: string;
  readonly server: CertificateFiles;
  readonly client: CertificateFiles;
  /**
   * `startNatsServer` options for a TLS-only server with these files, and a
   * readiness check that trusts the CA; `verify` also makes the server demand
   * a client certificate signed by the CA (and the check present `client`).
   */
  natsServer(options?: { verify?: boolean }): Required<Pick<NatsServerOptions, 'args' | 'probe'>>;
}

/** openssl is missing or refused to make a certificate; `output` is what it printed. */
export class TlsCertificatesError extends NatsHarnessError {
  constructor(
    message: string,
    readonly output: string,
    options?: ErrorOptions,
  ) {
    super(output === '' ? message : `${message}\n${output}`, options);
  }
}

function run(openssl: string, args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(openssl, args, { cwd, timeout: 30_000 }, (error, stdout, stderr) => {
      if (error === null) return resolve();
      const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
      reject(
        new TlsCertificatesError(
          missing
            ? `${openssl} was not found: install openssl (apt-get install openssl) or pass { openssl: PATH }`
            : `${openssl} ${args[0]} failed`,
          `${stdout}${stderr}`.trim(),
          { cause: error },
        ),
      );
    });
  });
}

/** An ECDSA P-256 key and a certificate request for it: quick to make, and both Go (the server) and Node accept it. */
function newKeyArgs(name: string, subject: string): string[] {
  return [
    'req',
    '-new',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.csr`,
    '-subj',
    subject,
  ];
}

/** Creates the CA, then the server and client certificates it signs. Needs `openssl` (Debian's will do). */
export async function createTlsCertificates(options: TlsCertificatesOptions = {}): Promise<TlsCertificates> {
  const openssl = options.openssl ?? process.env['OPENSSL_BIN'] ?? 'openssl';
  const hosts = options.hosts ?? ['localhost', '127.0.0.1', '::1'];
  const days = String(options.days ?? 2);
  const dir = await mkdtemp(join(tmpdir(), 'cohort-tls-'));
  try {
    const san = hosts.map((h) => (isIP(h) === 0 ? `DNS:${h}` : `IP:${h}`)).join(',');
    // Extensions a verifier checks: only the CA may sign, the server's names are in its SAN (Node ignores
    // the common name), and each leaf is good for its own side of the handshake only.
    await Promise.all([
      writeFile(
        join(dir, 'server.ext'),
        `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=${san}\n`,
      ),
      writeFile(
        join(dir, 'client.ext'),
        'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n',
      ),
    ]);
    await run(
      openssl,
      [
        'req',
        '-x509',
        '-new',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        'ca.key',
        '-out',
        'ca.pem',
        '-days',
        days,
        '-subj',
        '/CN=cohort test CA',
        '-addext',
        'basicConstraints=critical,CA:TRUE',
        '-addext',
        'keyUsage=critical,keyCertSign,cRLSign',
      ],
      dir,
    );
    const clientName = options.clientName ?? 'cohort-client';
    await Promise.all([
      run(openssl, newKeyArgs('server', `/CN=${hosts[0] ?? 'localhost'}`), dir),
      run(openssl, newKeyArgs('client', `/CN=${clientName}`), dir),
    ]);
    // One after the other: both would write the CA's serial file.
    for (const name of ['server', 'client']) {
      await run(
        openssl,
        [
          'x509',
          '-req',
          '-in',
          `${name}.csr`,
          '-CA',
          'ca.pem',
          '-CAkey',
          'ca.key',
          '-CAcreateserial',
          '-out',
          `${name}.pem`,
          '-days',
          days,
          '-extfile',
          `${name}.ext`,
        ],
        dir,
      );
    }
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  const ca = join(dir, 'ca.pem');
  const server = { cert: join(dir, 'server.pem'), key: join(dir, 'server.key') };
  const client = { cert: join(dir, 'client.pem'), key: join(dir, 'client.key') };
  return {
    dir,
    ca,
    server,
    client,
    natsServer: ({ verify = false } = {}) => ({
      args: [
        ...(verify ? ['--tlsverify', '--tlscacert', ca] : ['--tls']),
        '--tlscert',
        server.cert,
        '--tlskey',
        server.key,
      ],
      probe: {
        tls: { caFile: ca, ...(verify && { certFile: client.cert, keyFile: client.key }) },
      },
    }),
    [Symbol.asyncDispose]: () => rm(dir, { recursive: true, force: true }),
  };
}
