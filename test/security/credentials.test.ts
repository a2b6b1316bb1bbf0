import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nkeyAuthenticator } from '@nats-io/nats-core';
import { createUser } from '@nats-io/nkeys';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AuthenticationError,
  connect,
  defineApplication,
  createMemoryBus,
  createMemoryServer,
  createNatsBus,
  CredentialsError,
  PermissionDeniedError,
  shardOf,
  startWorker,
  TimeoutError,
} from '../../index.js';
import { clientInbox, cmdSubject, commandRequest, decode, encode, noticeSubject } from '../../internal.js';
import { connectionSettings } from '../../cli/connectionFlags.js';
import { CliUsageError } from '../../cli/loadApplications.js';
import type { NatsServer } from '../../harness/natsServer.js';
import { cleanupAfterEach } from '../cleanup.js';
import { counterMachine } from '../fixtures/counter.js';
import { errorOf, type WireReply } from '../fixtures/rawCohort.js';
import { startTestServer } from '../nats.js';

const counterApp = defineApplication({ name: 'counter', machine: counterMachine });

/**
 * Connecting as someone (issue 12, section 2): credentials the way the nats
 * CLI takes them, refused clearly when wrong, and a client held to its own
 * inbox so it cannot act as another.
 */
describe('credentials', () => {
  const track = cleanupAfterEach();
  let dir: string;
  let password: NatsServer;
  let token: NatsServer;
  let nkeyServer: NatsServer;
  let seedFile: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cohort-creds-'));
    const user = createUser();
    seedFile = join(dir, 'client-alice.nk');
    await writeFile(seedFile, `# a comment, as nsc writes one\n${new TextDecoder().decode(user.getSeed())}\n`);
    await chmod(seedFile, 0o600);
    const conf = join(dir, 'nkey.conf');
    await writeFile(conf, `authorization { users = [ { nkey: "${user.getPublicKey()}" } ] }\n`);
    [password, token, nkeyServer] = await Promise.all([
      startTestServer({ args: ['--user', 'ops', '--pass', 's3cret'], probe: { user: 'ops', pass: 's3cret' } }),
      startTestServer({ args: ['--auth', 'tok-123'], probe: { token: 'tok-123' } }),
      startTestServer({ args: ['-c', conf], probe: { authenticator: nkeyAuthenticator(user.getSeed()) } }),
    ]);
  }, 30_000);
  afterAll(async () => {
    await Promise.all([password, token, nkeyServer].map((s) => s?.[Symbol.asyncDispose]()));
    await rm(dir, { recursive: true, force: true });
  });

  it('no credentials, or wrong ones, are an AuthenticationError that says what to pass; the right ones connect', async () => {
    await expect(createNatsBus({ servers: password.url, timeout: 2_000 })).rejects.toBeInstanceOf(AuthenticationError);
    const wrong = await createNatsBus({
      servers: password.url,
      auth: { user: 'ops', password: 'nope' },
      timeout: 2_000,
    }).catch((e: unknown) => e);
    expect(wrong).toBeInstanceOf(AuthenticationError);
    expect((wrong as Error).message).toContain('--creds, --nkey, --user/--password or --token');
    // connect() says so at once rather than retrying the same refusal until its waitTimeout.
    const started = performance.now();
    await expect(
      connect({ nats: password.url, cluster: 'c', auth: { user: 'ops', password: 'nope' }, waitTimeout: 30_000 }),
    ).rejects.toBeInstanceOf(AuthenticationError);
    expect(performance.now() - started).toBeLessThan(10_000);
    const bus = track(await createNatsBus({ servers: password.url, auth: { user: 'ops', password: 's3cret' } }));
    expect(bus.server.jetstream).toBe(true);
    track(await createNatsBus({ servers: token.url, auth: { token: 'tok-123' } }));
    track(await createNatsBus({ servers: nkeyServer.url, auth: { nkey: seedFile } }));
    await expect(createNatsBus({ servers: nkeyServer.url, timeout: 2_000 })).rejects.toBeInstanceOf(
      AuthenticationError,
    );
  });

  it('unusable credentials files are a CredentialsError before anything is dialled', async () => {
    const two = join(dir, 'two.nk');
    const seed = new TextDecoder().decode(createUser().getSeed());
    await writeFile(two, `${seed}\n${seed}\n`);
    const cases = [
      { auth: { nkey: join(dir, 'missing.nk') }, says: 'cannot read the nkey seed file' },
      { auth: { nkey: two }, says: 'exactly one nkey seed' },
      { auth: { creds: seedFile }, says: 'not a NATS credentials file' },
      { auth: { user: 'a', token: 't' }, says: 'not user and token' },
      { auth: { password: 'p' }, says: 'a password needs a user' },
    ];
    for (const c of cases) {
      const err = await createNatsBus({ servers: 'nats://127.0.0.1:1', auth: c.auth }).catch((e: unknown) => e);
      expect(err, c.says).toBeInstanceOf(CredentialsError);
      expect((err as Error).message).toContain(c.says);
    }
    const tls = await createNatsBus({ servers: 'nats://127.0.0.1:1', tls: { cert: seedFile } }).catch((e) => e);
    expect(tls).toBeInstanceOf(CredentialsError);
  });

  it('worker and client connect with credentials; the client takes replies in its own inbox and hears notices on its label', async () => {
    const cluster = `creds_${Date.now().toString(36)}`;
    const auth = { user: 'ops', password: 's3cret' };
    const worker = track(
      await startWorker({
        nats: password.url,
        auth,
        cluster,
        applications: [counterApp],
        shards: [0, 1, 2, 3],
        shardCount: 4,
      }),
    );
    const client = track(await connect({ nats: password.url, auth, cluster, label: 'alice', shardCount: 4 }));
    expect(await client.session('counter', 'a').send({ type: 'ADD', by: 2 })).toMatchObject({ seq: 1 });
    expect(worker.clients().map((c) => c.label)).toEqual(['alice']);

    // A request's subject ends with its sender's label, and its body must claim that label: mallory on her
    // own subject claiming alice is refused. On alice's subject (which a server with per-user permissions
    // would not let her publish to) with an answer to her own inbox, it is dropped unanswered: the worker
    // holds clients to their inbox (on by default with auth). Nothing is applied either way.
    const raw = track(await createNatsBus({ servers: password.url, auth, inboxPrefix: '_INBOX.mallory' }));
    const shard = shardOf('counter', 'a', 4);
    const ask = async (label: string, id: string, claimed: string, timeout = 5_000) =>
      decode(
        (
          await raw.request(
            cmdSubject(cluster, shard, 'counter', 'a', label),
            encode(commandRequest({ type: 'ADD', by: 100 }, id, claimed)),
            { timeout },
          )
        ).data,
      ) as WireReply;
    const forged = errorOf(await ask('mallory', 'forged-1', 'alice#00000001'));
    expect(forged).toMatchObject({ name: 'InvalidRequestError' });
    expect(String(forged?.details?.['reason'])).toContain('claims client "alice#00000001"');
    await expect(ask('alice', 'forged-2', 'alice#00000001', 1_000)).rejects.toBeInstanceOf(TimeoutError);
    // Positive control: mallory as herself is answered.
    expect(await ask('mallory', 'own-1', 'mallory#00000001')).toMatchObject({ ok: true, seq: 2 });
    expect(await client.session('counter', 'a').read()).toMatchObject({ seq: 2, document: { n: 102 } });
    // A forced disconnect reaches alice on her label's notice subject; her next send connects anew, with the same credentials.
    const firstId = client.id;
    const disabled = new Promise<string>((r) => client.once('disabled', (_f, reason) => r(reason)));
    expect(await worker.forceDisconnect('alice')).toEqual({ transactions: 0 });
    expect(await disabled).toMatch(/disconnected by worker/);
    expect(await client.session('counter', 'a').send({ type: 'ADD', by: 1 })).toMatchObject({ seq: 3 });
    expect(client.id).not.toBe(firstId);
    expect(clientInbox('alice')).toBe('_INBOX.alice');
    expect(noticeSubject(cluster, 'alice#0000abcd')).toBe(`cohort.${cluster}.client.alice.0000abcd`);
  });

  it('a worker without credentials trusts whatever inbox a client names (ownInbox off); with ownInbox on it refuses, on the memory bus too', async () => {
    const server = createMemoryServer();
    const cluster = 'inboxes';
    for (const ownInbox of [false, true]) {
      const worker = track(
        await startWorker({
          bus: createMemoryBus({ server }),
          cluster: `${cluster}${ownInbox ? 1 : 0}`,
          applications: [counterApp],
          shards: [0, 1, 2, 3],
          shardCount: 4,
          clients: { ownInbox },
        }),
      );
      const raw = track(createMemoryBus({ server, inboxPrefix: '_INBOX.mallory' }));
      const subject = cmdSubject(`${cluster}${ownInbox ? 1 : 0}`, shardOf('counter', 'b', 4), 'counter', 'b', 'alice');
      const reply = raw
        .request(subject, encode(commandRequest({ type: 'ADD', by: 1 }, 'x', 'alice#00000001')), { timeout: 500 })
        .then((m) => decode(m.data) as WireReply);
      // With ownInbox, dropped unanswered: the request times out.
      if (ownInbox) await expect(reply).rejects.toBeInstanceOf(TimeoutError);
      else expect(await reply).toMatchObject({ ok: true, seq: 1 });
      // Alice in her own inbox is answered either way.
      const alice = track(createMemoryBus({ server, inboxPrefix: clientInbox('alice') }));
      const ok = decode(
        (
          await alice.request(subject, encode(commandRequest({ type: 'ADD', by: 1 }, 'y', 'alice#00000002')), {
            timeout: 5_000,
          })
        ).data,
      ) as WireReply;
      expect(ok).toMatchObject({ ok: true });
      expect(worker.id).toBeTruthy();
    }
  });

  it('a subject the server denies is a PermissionDeniedError naming it', async () => {
    const user = createUser();
    const seed = join(dir, 'limited.nk');
    await writeFile(seed, new TextDecoder().decode(user.getSeed()));
    const conf = join(dir, 'limited.conf');
    await writeFile(
      conf,
      `authorization { users = [ { nkey: "${user.getPublicKey()}", permissions: { publish: { deny: ["secret.>"] } } } ] }\n`,
    );
    await using limited = await startTestServer({
      args: ['-c', conf],
      probe: { authenticator: nkeyAuthenticator(user.getSeed()) },
    });
    const bus = track(await createNatsBus({ servers: limited.url, auth: { nkey: seed } }));
    const err = await bus.request('secret.thing', new Uint8Array(), { timeout: 2_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermissionDeniedError);
    expect(err).toMatchObject({ operation: 'publish', subject: 'secret.thing' });
  });
});

describe('connection flags and NATS_* variables', () => {
  it('flags win over variables; any credentials flag replaces every credentials variable', () => {
    const env = { NATS_URL: 'nats://e:4222', NATS_CREDS: '/e.creds', NATS_CA: '/e-ca.pem' };
    expect(connectionSettings({}, env)).toEqual({
      servers: ['nats://e:4222'],
      auth: { creds: '/e.creds' },
      tls: { ca: '/e-ca.pem' },
    });
    expect(connectionSettings({ nats: 'nats://a:1,nats://b:2', token: 't' }, env)).toEqual({
      servers: ['nats://a:1', 'nats://b:2'],
      auth: { token: 't' },
      tls: { ca: '/e-ca.pem' },
    });
    expect(connectionSettings({ 'tls-cert': 'c.pem', 'tls-key': 'k.pem' }, {})).toEqual({
      servers: undefined,
      auth: undefined,
      tls: { cert: 'c.pem', key: 'k.pem' },
    });
    expect(connectionSettings({ user: 'u', password: 'p' }, { NATS_NKEY: '/x.nk' }).auth).toEqual({
      user: 'u',
      password: 'p',
    });
  });

  it('contradictions are wrong usage', () => {
    expect(() => connectionSettings({ creds: 'a', nkey: 'b' }, {})).toThrow(CliUsageError);
    expect(() => connectionSettings({ password: 'p' }, {})).toThrow('--password needs --user');
    expect(() => connectionSettings({ 'tls-cert': 'c' }, {})).toThrow('--tls-cert and --tls-key go together');
    expect(() => connectionSettings({ nats: '' }, {})).toThrow(CliUsageError);
    expect(() => connectionSettings({}, { NATS_USER: 'u', NATS_TOKEN: 't' })).toThrow(CliUsageError);
  });
});
