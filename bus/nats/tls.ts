import { readFile } from 'node:fs/promises';
import { connect as dialTcp, isIP } from 'node:net';
import { connect as startTls, type TLSSocket } from 'node:tls';
import { TlsError, type TlsFailure } from '../errors.js';
import type { NatsTls } from './credentials.js';

/**
 * Node's codes for a failed TLS handshake (certificate checks on our side,
 * alerts the server sent), and what each means for the user. nats.js hands
 * these through untouched, so they are the only reliable signal.
 */
export const TLS_FAILURE_CODES = {
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'server-not-trusted',
  UNABLE_TO_GET_ISSUER_CERT: 'server-not-trusted',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'server-not-trusted',
  SELF_SIGNED_CERT_IN_CHAIN: 'server-not-trusted',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'server-not-trusted',
  CERT_UNTRUSTED: 'server-not-trusted',
  CERT_SIGNATURE_FAILURE: 'server-not-trusted',
  CERT_HAS_EXPIRED: 'server-not-trusted',
  CERT_NOT_YET_VALID: 'server-not-trusted',
  ERR_TLS_CERT_ALTNAME_INVALID: 'server-name-mismatch',
  // Alerts from a server started with --tlsverify (Go's TLS sends bad_certificate for a missing one).
  ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE: 'client-certificate-refused',
  ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED: 'client-certificate-refused',
  ERR_SSL_TLSV1_ALERT_UNKNOWN_CA: 'client-certificate-refused',
  ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN: 'client-certificate-refused',
  ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED: 'client-certificate-refused',
} as const satisfies Record<string, TlsFailure>;

/** A TlsError for a connect failure that was a TLS handshake failure (anywhere in its cause chain), else undefined. */
export function tlsFailure(err: unknown, server: string): TlsError | undefined {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && Object.hasOwn(TLS_FAILURE_CODES, code)) {
      const reason = TLS_FAILURE_CODES[code as keyof typeof TLS_FAILURE_CODES];
      // OpenSSL's errors carry a short `reason` ('sslv3 alert bad certificate') beside a long message.
      const said = (e as { reason?: unknown }).reason;
      const detail = typeof said === 'string' ? said : e.message.split('\n')[0]!.trim();
      return new TlsError(server, reason, code, detail, { cause: err });
    }
  }
  return undefined;
}

/**
 * Under TLS 1.3 a server that refuses the client's certificate says so in an
 * alert after the client has finished its handshake. nats.js, when it may
 * reconnect, then waits out its connect timeout and reports only that; and
 * once it has written its CONNECT the alert may be lost to a reset. So after
 * a connect timeout each server is asked once more, by hand: read its INFO,
 * shake hands with the same files, write nothing, and listen for an alert.
 * The TlsError heard, or undefined when the timeout was something else.
 */
export async function tlsFailureBehindTimeout(
  servers: string | readonly string[],
  tls: NatsTls | undefined,
  label: string,
  waitMs = 1_000,
): Promise<TlsError | undefined> {
  const files = {
    ...(tls?.ca !== undefined && { ca: await readFile(tls.ca) }),
    ...(tls?.cert !== undefined && { cert: await readFile(tls.cert) }),
    ...(tls?.key !== undefined && { key: await readFile(tls.key) }),
  };
  for (const server of typeof servers === 'string' ? [servers] : servers) {
    const heard = await listenForAlert(server, files, label, waitMs);
    if (heard !== undefined) return heard;
  }
  return undefined;
}

/** `nats://h:p`, `tls://h:p`, `h:p` or `h`, as nats.js takes a server. */
function hostPort(server: string): { host: string; port: number } {
  const url = new URL(server.includes('://') ? server : `nats://${server}`);
  return { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 4222) };
}

function listenForAlert(
  server: string,
  files: { ca?: Buffer; cert?: Buffer; key?: Buffer },
  label: string,
  waitMs: number,
): Promise<TlsError | undefined> {
  return new Promise((resolve) => {
    const { host, port } = hostPort(server);
    const socket = dialTcp(port, host);
    let secure: TLSSocket | undefined;
    let info = '';
    const done = (result: TlsError | undefined): void => {
      clearTimeout(timer);
      secure?.destroy();
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => done(undefined), waitMs);
    socket.on('error', () => done(undefined));
    socket.on('close', () => done(undefined));
    socket.on('data', (chunk: Buffer) => {
      info += chunk.toString('latin1');
      const end = info.indexOf('\r\n');
      if (end < 0) return;
      socket.removeAllListeners('data');
      let required = false;
      try {
        required = (JSON.parse(info.slice(info.indexOf('{'), end)) as { tls_required?: unknown }).tls_required === true;
      } catch {
        // not a NATS server's INFO: nothing to learn here
      }
      if (!required) return done(undefined);
      socket.removeAllListeners('close');
      secure = startTls({ socket, host, ...(isIP(host) === 0 && { servername: host }), ...files });
      secure.on('error', (err) => done(tlsFailure(err, label)));
      secure.on('close', () => done(undefined));
      // Read, so an alert after the handshake is taken in.
      secure.on('data', () => undefined);
    });
  });
}
