import { readFile } from 'node:fs/promises';
import {
  credsAuthenticator,
  nkeyAuthenticator,
  tokenAuthenticator,
  usernamePasswordAuthenticator,
  type Authenticator,
  type TlsOptions,
} from '@nats-io/nats-core';
import { CredentialsError } from '../errors.js';

/**
 * Who this connection is, the ways the `nats` CLI takes it: one of a
 * credentials file (JWT and seed), an nkey seed file, user and password, or
 * a token. Paths, not contents, so secrets stay in files an operator can
 * mount with tight modes.
 */
export interface NatsAuth {
  /** A `.creds` file (decentralised auth: a user JWT and its seed). */
  creds?: string;
  /** A file holding one nkey seed (`SU...`), as `cohort auth init` writes them. */
  nkey?: string;
  user?: string;
  password?: string;
  token?: string;
}

/** TLS, as file paths. Any of them (even none: `{}`) makes the connection refuse a server without TLS. */
export interface NatsTls {
  /** CA certificate(s) the server's certificate must chain to (default the system's). */
  ca?: string;
  /** Client certificate, for servers that verify clients. */
  cert?: string;
  /** The client certificate's key. */
  key?: string;
}

/** What nats.js takes, resolved from `auth` and `tls`; files are read once, here, so a wrong path fails at start. */
export interface ResolvedSecurity {
  authenticator?: Authenticator;
  tls?: TlsOptions;
}

const SEED = /^S[A-Z2-7]{57}$/;

async function readSecret(path: string, what: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (err) {
    throw new CredentialsError(`cannot read the ${what} file ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** The one seed in an nkey seed file (comments and blank lines around it are allowed, as nsc writes them). */
export function seedOf(text: string, path: string): Uint8Array {
  const seeds = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => SEED.test(l));
  if (seeds.length !== 1) {
    throw new CredentialsError(
      `${path} must hold exactly one nkey seed (a line of 58 characters starting with S), found ${seeds.length}`,
    );
  }
  return new TextEncoder().encode(seeds[0]);
}

export async function resolveSecurity(auth: NatsAuth | undefined, tls: NatsTls | undefined): Promise<ResolvedSecurity> {
  const out: ResolvedSecurity = {};
  if (auth !== undefined) {
    const given = (['creds', 'nkey', 'user', 'token'] as const).filter((k) => auth[k] !== undefined);
    if (given.length > 1) throw new CredentialsError(`give one way to authenticate, not ${given.join(' and ')}`);
    if (auth.password !== undefined && auth.user === undefined) throw new CredentialsError('a password needs a user');
    if (auth.creds !== undefined) {
      const creds = await readSecret(auth.creds, 'credentials');
      const text = new TextDecoder().decode(creds);
      if (!text.includes('BEGIN NATS USER JWT') || !text.includes('BEGIN USER NKEY SEED'))
        throw new CredentialsError(`${auth.creds} is not a NATS credentials file (no user JWT and seed in it)`);
      out.authenticator = credsAuthenticator(creds);
    } else if (auth.nkey !== undefined) {
      const seed = seedOf(new TextDecoder().decode(await readSecret(auth.nkey, 'nkey seed')), auth.nkey);
      out.authenticator = nkeyAuthenticator(seed);
    } else if (auth.user !== undefined) {
      out.authenticator = usernamePasswordAuthenticator(auth.user, auth.password ?? '');
    } else if (auth.token !== undefined) {
      out.authenticator = tokenAuthenticator(auth.token);
    }
  }
  if (tls !== undefined) {
    if ((tls.cert === undefined) !== (tls.key === undefined))
      throw new CredentialsError('a TLS client certificate needs its key, and a key its certificate');
    // Read here so a wrong path is a clear error at start, not a handshake failure later.
    for (const [what, path] of [
      ['TLS CA', tls.ca],
      ['TLS certificate', tls.cert],
      ['TLS key', tls.key],
    ] as const) {
      if (path !== undefined) await readSecret(path, what);
    }
    out.tls = {
      ...(tls.ca !== undefined && { caFile: tls.ca }),
      ...(tls.cert !== undefined && { certFile: tls.cert }),
      ...(tls.key !== undefined && { keyFile: tls.key }),
    };
  }
  return out;
}
