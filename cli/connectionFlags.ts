/**
 * How every command that talks to a NATS server is told where and as whom:
 * the flags and environment variables of the `nats` CLI, so one set of
 * credentials serves both. A flag wins over its variable; any credentials
 * flag replaces every credentials variable (so `--token` does not meet a
 * stray NATS_CREDS), and any TLS flag every TLS variable.
 */
import type { ParseArgsConfig } from 'node:util';
import type { NatsAuth, NatsTls } from '../index.js';
import { CliUsageError } from './loadApplications.js';

export const CONNECTION_FLAGS = {
  nats: { type: 'string' },
  creds: { type: 'string' },
  nkey: { type: 'string' },
  user: { type: 'string' },
  password: { type: 'string' },
  token: { type: 'string' },
  'tls-ca': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

export const CONNECTION_USAGE = `connection (every command that reaches a NATS server; the nats CLI's flags and
variables, a flag winning over its variable):
  --nats URL[,URL...]   servers (NATS_URL)
  --creds FILE          a credentials file: user JWT and seed (NATS_CREDS)
  --nkey FILE           an nkey seed file, as \`cohort auth init\` writes (NATS_NKEY)
  --user U --password P (NATS_USER, NATS_PASSWORD)
  --token T             (NATS_TOKEN)
  --tls-ca FILE         trust this CA; TLS required (NATS_CA)
  --tls-cert FILE --tls-key FILE
                        a client certificate for servers that verify clients
                        (NATS_CERT, NATS_KEY)
`;

export type ConnectionFlagValues = { [K in keyof typeof CONNECTION_FLAGS]?: string | undefined };

/** Where to connect and as whom. `servers` undefined: no --nats and no NATS_URL. */
export interface ConnectionSettings {
  servers: string[] | undefined;
  auth: NatsAuth | undefined;
  tls: NatsTls | undefined;
}

function given(flag: string, value: string | undefined): string | undefined {
  if (value !== undefined && value.trim() === '')
    throw new CliUsageError(`--${flag} needs a value`, { showUsage: true });
  return value;
}

function fromEnv(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v.trim() === '' ? undefined : v;
}

/** Servers, credentials and TLS from the flags, else from NATS_* variables. CliUsageError for contradictions. */
export function connectionSettings(
  values: ConnectionFlagValues,
  env: NodeJS.ProcessEnv = process.env,
): ConnectionSettings {
  const url = given('nats', values.nats) ?? fromEnv(env, 'NATS_URL');
  let servers: string[] | undefined;
  if (url !== undefined) {
    servers = url
      .split(',')
      .map((u) => u.trim())
      .filter((u) => u !== '');
    if (servers.length === 0) throw new CliUsageError('--nats needs a URL', { showUsage: true });
  }

  const flagAuth: NatsAuth = {
    creds: given('creds', values.creds),
    nkey: given('nkey', values.nkey),
    user: given('user', values.user),
    password: given('password', values.password),
    token: given('token', values.token),
  };
  const envAuth: NatsAuth = {
    creds: fromEnv(env, 'NATS_CREDS'),
    nkey: fromEnv(env, 'NATS_NKEY'),
    user: fromEnv(env, 'NATS_USER'),
    password: fromEnv(env, 'NATS_PASSWORD'),
    token: fromEnv(env, 'NATS_TOKEN'),
  };
  const auth = defined(flagAuth) ?? defined(envAuth);
  if (auth !== undefined) {
    const ways = (['creds', 'nkey', 'user', 'token'] as const).filter((k) => auth[k] !== undefined);
    if (ways.length > 1)
      throw new CliUsageError(`give one way to authenticate, not ${ways.map((w) => `--${w}`).join(' and ')}`);
    if (auth.password !== undefined && auth.user === undefined) throw new CliUsageError('--password needs --user');
  }

  const flagTls: NatsTls = {
    ca: given('tls-ca', values['tls-ca']),
    cert: given('tls-cert', values['tls-cert']),
    key: given('tls-key', values['tls-key']),
  };
  const envTls: NatsTls = {
    ca: fromEnv(env, 'NATS_CA'),
    cert: fromEnv(env, 'NATS_CERT'),
    key: fromEnv(env, 'NATS_KEY'),
  };
  const tls = defined(flagTls) ?? defined(envTls);
  if (tls !== undefined && (tls.cert === undefined) !== (tls.key === undefined))
    throw new CliUsageError('--tls-cert and --tls-key go together');
  return { servers, auth, tls };
}

/** The object with its undefined fields dropped, or undefined when none is left. */
function defined<T extends object>(o: T): T | undefined {
  const entries = Object.entries(o).filter(([, v]) => v !== undefined);
  return entries.length === 0 ? undefined : (Object.fromEntries(entries) as T);
}

/** Says how the connection is secured, for the lines a command prints. */
export function describeSecurity(settings: Partial<Pick<ConnectionSettings, 'auth' | 'tls'>>): string {
  const who =
    settings.auth?.creds !== undefined
      ? `credentials ${settings.auth.creds}`
      : settings.auth?.nkey !== undefined
        ? `nkey ${settings.auth.nkey}`
        : settings.auth?.user !== undefined
          ? `user ${settings.auth.user}`
          : settings.auth?.token !== undefined
            ? 'a token'
            : 'no credentials';
  return `${who}${settings.tls === undefined ? '' : ', TLS'}`;
}
