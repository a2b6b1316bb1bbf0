import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { Objm } from '@nats-io/obj';
import {
  headers as natsHeaders,
  nkeyAuthenticator,
  PermissionViolationError,
  type NatsConnection,
} from '@nats-io/nats-core';
import { Svcm, type ServiceIdentity, type ServiceInfo, type ServiceStats } from '@nats-io/services';
import { createUser } from '@nats-io/nkeys';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, defineApplication, FailoverRefusedError, shardOf, startWorker } from '../../index.js';
import {
  bucketName,
  cmdSubject,
  decode,
  encode,
  eventSubject,
  heartbeatSubject,
  inboxPrefixFor,
  journalStreamName,
  journalSubject,
  readOnlySubject,
  readSubject,
  replicaReportSubject,
  requestFailover,
  serviceSubject,
  waitForView,
  userNameOf,
  type Role,
} from '../../internal.js';
import { createNatsBus } from '../../bus/nats/mod.js';
import type { Bus } from '../../bus/types.js';
import { authAddClient, authInit } from '../../cli/auth.js';
import { CliUsageError } from '../../cli/loadApplications.js';
import { whiteboardMachine } from '../../examples/whiteboard.js';
import type { NatsServer } from '../../harness/natsServer.js';
import { cleanupAfterEach } from '../cleanup.js';
import { runCohort } from '../fixtures/cliProcess.js';
import { counterMachine } from '../fixtures/counter.js';
import { connectTest, startTestServer, type DisposableConnection } from '../nats.js';
import { waitFor } from '../waitFor.js';

const CLUSTER = 'authtest';

/** `cohort auth ...` from source; its exit code and output. */
const cli = (args: string[]) => runCohort(['auth', ...args]);

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cohort-auth-'));
  dirs.push(dir);
  return dir;
}
afterAll(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

const quiet = { write: (): void => undefined };

async function seedOf(dir: string, user: string): Promise<Uint8Array> {
  return new TextEncoder().encode((await readFile(join(dir, `${user}.nk`), 'utf8')).trim());
}

interface Manifest {
  cluster: string;
  users: { role: Role; publicKey: string }[];
}

async function manifestOf(dir: string): Promise<Manifest> {
  return JSON.parse(await readFile(join(dir, 'cohort-auth.json'), 'utf8')) as Manifest;
}

describe('cohort auth: the files', () => {
  it('init writes one seed per user (mode 0600), the manifest with public keys only, and auth.conf', async () => {
    const dir = join(await tempDir(), 'auth');
    const lines: string[] = [];
    expect(
      await authInit({ cluster: 'c1', out: dir, clients: ['alice', 'bob'] }, { write: (l) => lines.push(l) }),
    ).toBe(0);
    const names = ['worker', 'admin', 'reader', 'client-alice', 'client-bob'];
    expect((await readdir(dir)).sort()).toEqual(
      ['auth.conf', 'cohort-auth.json', ...names.map((n) => `${n}.nk`)].sort(),
    );
    const manifest = await manifestOf(dir);
    expect(manifest.cluster).toBe('c1');
    expect(manifest.users.map((u) => u.role)).toEqual([
      { kind: 'worker' },
      { kind: 'admin' },
      { kind: 'reader' },
      { kind: 'client', label: 'alice' },
      { kind: 'client', label: 'bob' },
    ]);
    const conf = await readFile(join(dir, 'auth.conf'), 'utf8');
    const manifestText = await readFile(join(dir, 'cohort-auth.json'), 'utf8');
    for (const [i, name] of names.entries()) {
      const file = join(dir, `${name}.nk`);
      expect((await stat(file)).mode & 0o777).toBe(0o600);
      const seed = (await readFile(file, 'utf8')).trim();
      expect(seed).toMatch(/^SU[A-Z2-7]{56}$/);
      // The seed is nowhere else; its public key is in the manifest and in auth.conf.
      expect(conf).not.toContain(seed);
      expect(manifestText).not.toContain(seed);
      expect(conf).toContain(`nkey: "${manifest.users[i]!.publicKey}"`);
      expect(lines.some((l) => l.includes(file))).toBe(true);
    }
    expect(conf).toMatch(/^# nats-server authorization for the cohort cluster "c1"/);
    expect(conf).toContain('"_INBOX.alice.>"');
    expect(conf).toContain('"cohort.c1.client.bob.>"');
  });

  it('add-client adds one user and keeps every existing key; the same manifest renders the same auth.conf', async () => {
    const dir = await tempDir();
    await authInit({ cluster: 'c2', out: dir, clients: ['alice'] }, quiet);
    const before = await manifestOf(dir);
    const confBefore = await readFile(join(dir, 'auth.conf'), 'utf8');
    const aliceSeed = await readFile(join(dir, 'client-alice.nk'), 'utf8');
    expect(await authAddClient({ label: 'carol', out: dir }, quiet)).toBe(0);
    const after = await manifestOf(dir);
    expect(after.users.slice(0, before.users.length)).toEqual(before.users);
    expect(after.users.at(-1)!.role).toEqual({ kind: 'client', label: 'carol' });
    expect((await stat(join(dir, 'client-carol.nk'))).mode & 0o777).toBe(0o600);
    expect(await readFile(join(dir, 'client-alice.nk'), 'utf8')).toBe(aliceSeed);
    const conf = await readFile(join(dir, 'auth.conf'), 'utf8');
    // Everything that was there is there unchanged; carol's user block is what was added.
    const carolBlock = conf.slice(conf.indexOf('    # client-carol'), conf.lastIndexOf('  ]'));
    expect(conf.replace(carolBlock, '')).toBe(confBefore);
    expect(carolBlock).toContain(after.users.at(-1)!.publicKey);
  });

  it('refuses a bad, reserved or duplicate label, and an existing auth.conf, touching nothing', async () => {
    const dir = await tempDir();
    for (const clients of [['no.dots'], [''], ['x'.repeat(65)], ['worker'], ['a', 'a'], ['a b']]) {
      await expect(authInit({ cluster: 'c3', out: dir, clients }, quiet)).rejects.toBeInstanceOf(CliUsageError);
    }
    await expect(authInit({ cluster: 'bad.cluster', out: dir, clients: [] }, quiet)).rejects.toBeInstanceOf(
      CliUsageError,
    );
    expect(await readdir(dir)).toEqual([]);
    await authInit({ cluster: 'c3', out: dir, clients: ['alice'] }, quiet);
    const conf = await readFile(join(dir, 'auth.conf'), 'utf8');
    await expect(authInit({ cluster: 'c3', out: dir, clients: [] }, quiet)).rejects.toThrow(/auth\.conf/);
    await expect(authAddClient({ label: 'alice', out: dir }, quiet)).rejects.toThrow(/already taken/);
    await expect(authAddClient({ label: 'reader', out: dir }, quiet)).rejects.toThrow(/reader role/);
    await expect(authAddClient({ label: 'a/b', out: dir }, quiet)).rejects.toBeInstanceOf(CliUsageError);
    await expect(authAddClient({ label: 'x', out: await tempDir() }, quiet)).rejects.toThrow(/auth init/);
    expect(await readFile(join(dir, 'auth.conf'), 'utf8')).toBe(conf);
    expect((await readdir(dir)).filter((f) => f.endsWith('.nk'))).toHaveLength(4);
  });

  it('the command: exit 0 and what it wrote; exit 2 with a message for a second init or a bad label', async () => {
    const dir = join(await tempDir(), 'out');
    const ok = await cli(['init', '--cluster', 'c4', '--out', dir, '--client', 'alice']);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain(join(dir, 'client-alice.nk'));
    expect(ok.stdout).toContain('include');
    const again = await cli(['init', '--cluster', 'c4', '--out', dir]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/already holds auth\.conf/);
    const bad = await cli(['add-client', 'bad.label', '--out', dir]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/client label/);
    const added = await cli(['add-client', 'bob', '--out', dir]);
    expect(added.code).toBe(0);
    expect((await manifestOf(dir)).users).toHaveLength(5);
  });
});

/** Every permission violation the server reported to this connection. */
function violations(nc: NatsConnection): PermissionViolationError[] {
  const seen: PermissionViolationError[] = [];
  void (async () => {
    for await (const s of nc.status())
      if (s.type === 'error' && s.error instanceof PermissionViolationError) seen.push(s.error);
  })();
  return seen;
}

type Conn = DisposableConnection & { denied: PermissionViolationError[] };

describe('cohort auth: a nats-server whose configuration is only `include ./auth.conf`', () => {
  let dir: string;
  let server: NatsServer;
  const open: Conn[] = [];

  beforeAll(async () => {
    dir = await tempDir();
    await authInit({ cluster: CLUSTER, out: dir, clients: ['alice', 'bob'] }, quiet);
    await writeFile(join(dir, 'server.conf'), 'include ./auth.conf\n');
    server = await startTestServer({
      args: ['-c', join(dir, 'server.conf')],
      probe: { authenticator: nkeyAuthenticator(await seedOf(dir, 'worker')), inboxPrefix: '_INBOX.worker' },
    });
  });
  afterAll(async () => {
    await Promise.all(open.splice(0).map((nc) => nc.close()));
    await server?.[Symbol.asyncDispose]();
  });

  async function as(user: string, role: Role): Promise<Conn> {
    const nc = await connectTest(server, {
      authenticator: nkeyAuthenticator(await seedOf(dir, user)),
      inboxPrefix: inboxPrefixFor(role),
      name: user,
      maxReconnectAttempts: 0,
      // A connect that meets the server mid-reload fails within this and is tried again, rather than hang.
      timeout: 2_000,
    });
    const conn = Object.assign(nc, { denied: violations(nc) });
    open.push(conn);
    return conn;
  }
  const worker = (): Promise<Conn> => as('worker', { kind: 'worker' });
  const admin = (): Promise<Conn> => as('admin', { kind: 'admin' });
  const reader = (): Promise<Conn> => as('reader', { kind: 'reader' });
  const client = (label: string): Promise<Conn> => as(`client-${label}`, { kind: 'client', label });

  async function expectPublishDenied(nc: Conn, subject: string): Promise<void> {
    nc.publish(subject, encode({ forged: true }));
    await nc.flush();
    await waitFor(() => nc.denied.some((e) => e.operation === 'publish' && e.subject === subject), {
      what: `publish to ${subject} denied`,
    });
  }

  async function expectSubscribeRefused(nc: Conn, subject: string): Promise<void> {
    const sub = nc.subscribe(subject);
    await nc.flush();
    const closed = await Promise.race([sub.closed, new Promise<'open'>((r) => setTimeout(() => r('open'), 2_000))]);
    expect(closed, `subscription to ${subject}`).toBeInstanceOf(PermissionViolationError);
    expect((closed as PermissionViolationError).operation).toBe('subscription');
  }

  /** `from` publishes on `subject`, `to` (subscribed first) receives it: both permissions hold. */
  async function expectDelivered(from: Conn, to: Conn, subject: string, filter = subject): Promise<void> {
    const got: string[] = [];
    const sub = to.subscribe(filter, {
      callback: (_e, m) => {
        got.push(m.subject);
      },
    });
    await to.flush();
    from.publish(subject, encode('hello'));
    await waitFor(() => got.includes(subject), { what: `${subject} delivered` });
    sub.unsubscribe();
    expect(from.denied).toEqual([]);
    expect(to.denied).toEqual([]);
  }

  it('admits each key in auth.conf and no other', async () => {
    for (const conn of [await worker(), await admin(), await reader(), await client('alice'), await client('bob')])
      expect(conn.info?.jetstream).toBe(true);
    await expect(connectTest(server, { maxReconnectAttempts: 0, reconnect: false })).rejects.toThrow(/authorization/i);
    const stranger = new TextDecoder().decode(createUser().getSeed());
    await expect(
      connectTest(server, {
        authenticator: nkeyAuthenticator(new TextEncoder().encode(stranger)),
        maxReconnectAttempts: 0,
        reconnect: false,
      }),
    ).rejects.toThrow(/authorization/i);
  });

  it('a client requests a command and a read, the worker answers into its inbox, and the client hears patches and its notices', async () => {
    const [w, alice] = [await worker(), await client('alice')];
    const answered: string[] = [];
    const sub = w.subscribe(`cohort.${CLUSTER}.>`, {
      callback: (_e, m) => {
        if (!m.reply) return;
        answered.push(m.reply);
        m.respond(encode({ ok: m.subject }));
      },
    });
    await w.flush();
    for (const subject of [cmdSubject(CLUSTER, 0, 'app', 'x', 'alice'), readSubject(CLUSTER, 0, 'app', 'x', 'alice')]) {
      const reply = await alice.request(subject, encode({}), { timeout: 2_000 });
      expect(decode(reply.data)).toEqual({ ok: subject });
    }
    expect(answered.every((r) => r.startsWith('_INBOX.alice.'))).toBe(true);
    sub.unsubscribe();
    await expectDelivered(w, alice, eventSubject(CLUSTER, 'app', 'x'), `cohort.${CLUSTER}.evt.>`);
    await expectDelivered(w, alice, `cohort.${CLUSTER}.client.alice.notice`, `cohort.${CLUSTER}.client.alice.>`);
  });

  it('a client may not publish heartbeats, control, replica reports or journal entries, nor send as another client, nor subscribe to commands or another client', async () => {
    const alice = await client('alice');
    for (const subject of [
      // Requests end with their sender's label: alice may not send as bob.
      cmdSubject(CLUSTER, 0, 'app', 'x', 'bob'),
      readSubject(CLUSTER, 0, 'app', 'x', 'bob'),
      readOnlySubject(CLUSTER, 0, 'app', 'x', 'bob'),
      heartbeatSubject(CLUSTER, 'w1'),
      `cohort.${CLUSTER}.ctl.failover`,
      replicaReportSubject(CLUSTER, 0),
      journalSubject(CLUSTER, 0, 'app', 'x'),
      `cohort.${CLUSTER}.evt.app.x`,
      `cohort.${CLUSTER}.client.bob.notice`,
      '_INBOX.bob.anything',
      'elsewhere',
    ])
      await expectPublishDenied(alice, subject);
    for (const subject of [
      `cohort.${CLUSTER}.cmd.>`,
      `cohort.${CLUSTER}.>`,
      `cohort.${CLUSTER}.hb.*`,
      '_INBOX.bob.>',
      '_INBOX.>',
      `cohort.${CLUSTER}.client.bob.>`,
      `cohort.${CLUSTER}.client.>`,
    ])
      await expectSubscribeRefused(alice, subject);
  });

  it('a client may use the counters bucket but not write the cluster bucket or any other store', async () => {
    const w = await worker();
    // The worker makes the buckets, as it does at start.
    const kvm = new Kvm(w);
    const view = await kvm.create(bucketName(CLUSTER, 'cluster'));
    await view.put('view', encode('the view'));
    await kvm.create(bucketName(CLUSTER, 'counters'));
    const jsm = await jetstreamManager(w);
    await jsm.streams.add({ name: journalStreamName(CLUSTER), subjects: [`cohort.${CLUSTER}.jrnl.>`] });

    const alice = await client('alice');
    const counters = await new Kvm(alice).create(bucketName(CLUSTER, 'counters'));
    expect(await counters.create('orders', new TextEncoder().encode('100'))).toBe(1);
    expect(await counters.update('orders', new TextEncoder().encode('200'), 1)).toBe(2);
    expect(new TextDecoder().decode((await counters.get('orders'))!.value)).toBe('200');
    expect(alice.denied).toEqual([]);

    const clusterBucket = bucketName(CLUSTER, 'cluster');
    for (const subject of [
      `$KV.${clusterBucket}.view`,
      `$KV.${bucketName(CLUSTER, 'snapshots')}.app.x`,
      `$O.${bucketName(CLUSTER, 'blobs')}.M.x`,
      `$JS.API.STREAM.CREATE.KV_${clusterBucket}`,
      `$JS.API.STREAM.PURGE.KV_${clusterBucket}`,
      `$JS.API.STREAM.DELETE.KV_${clusterBucket}`,
      `$JS.API.DIRECT.GET.KV_${clusterBucket}.$KV.${clusterBucket}.view`,
      `$JS.API.STREAM.PURGE.OBJ_${bucketName(CLUSTER, 'blobs')}`,
      // Large snapshots are the workers' own: a client reads only claim-checked replies.
      `$JS.API.STREAM.MSG.GET.OBJ_${bucketName(CLUSTER, 'blobs')}`,
      `$JS.API.STREAM.PURGE.${journalStreamName(CLUSTER)}`,
      `$JS.API.CONSUMER.CREATE.${journalStreamName(CLUSTER)}.c.cohort.${CLUSTER}.jrnl.>`,
      `$JS.API.STREAM.CREATE.ELSEWHERE`,
    ])
      await expectPublishDenied(alice, subject);
    expect(decode((await view.get('view'))!.value)).toBe('the view');
    expect((await jsm.streams.info(journalStreamName(CLUSTER))).state.messages).toBe(0);
  });

  it('a client reads a large blob (chunks through a push consumer with flow control) and may not delete it', async () => {
    const w = await worker();
    const blobs = bucketName(CLUSTER, 'replies');
    const stored = await new Objm(w).create(blobs);
    // Large enough that the server asks the reader for flow control on the way.
    const body = new Uint8Array(4_000_000).map((_, i) => i % 251);
    await stored.putBlob({ name: 'reply-1' }, body);

    const alice = await client('alice');
    const read = await new Objm(alice).create(blobs);
    const got = await read.getBlob('reply-1');
    expect(got?.length).toBe(body.length);
    expect(Buffer.from(got!).equals(body)).toBe(true);
    expect(alice.denied).toEqual([]);
    await expect(read.delete('reply-1')).rejects.toThrow(/Permissions Violation/);
    expect(alice.denied.map((e) => e.subject)).toEqual([expect.stringMatching(/^\$O\.cohort_authtest_replies\.M\./)]);
    expect((await stored.info('reply-1'))?.deleted).toBe(false);
  });

  it('the reader reads and hears patches, and may not send commands or write', async () => {
    const [w, r] = [await worker(), await reader()];
    const sub = w.subscribe(`cohort.${CLUSTER}.read.>`, {
      callback: (_e, m) => {
        m.respond(encode('doc'));
      },
    });
    await w.flush();
    const reply = await r.request(readSubject(CLUSTER, 1, 'app', 'y', 'reader'), encode({}), { timeout: 2_000 });
    expect(decode(reply.data)).toBe('doc');
    sub.unsubscribe();
    await expectDelivered(w, r, eventSubject(CLUSTER, 'app', 'y'), `cohort.${CLUSTER}.evt.>`);
    for (const subject of [
      cmdSubject(CLUSTER, 1, 'app', 'y', 'reader'),
      readSubject(CLUSTER, 1, 'app', 'y', 'alice'),
      journalSubject(CLUSTER, 1, 'app', 'y'),
      `$KV.${bucketName(CLUSTER, 'counters')}.orders`,
      `cohort.${CLUSTER}.ctl.failover`,
    ])
      await expectPublishDenied(r, subject);
    for (const subject of [`cohort.${CLUSTER}.cmd.>`, '_INBOX.alice.>', `cohort.${CLUSTER}.hb.>`])
      await expectSubscribeRefused(r, subject);
  });

  it('the admin asks for failovers, hears heartbeats and reads the views, and may not write a store or the journal', async () => {
    const [w, a] = [await worker(), await admin()];
    await expectDelivered(a, w, `cohort.${CLUSTER}.ctl.failover`);
    await expectDelivered(w, a, heartbeatSubject(CLUSTER, 'w1'), `cohort.${CLUSTER}.hb.>`);
    await new Kvm(w).create(bucketName(CLUSTER, 'cluster'));
    const views = await new Kvm(a).create(bucketName(CLUSTER, 'cluster'));
    await (await new Kvm(w).open(bucketName(CLUSTER, 'cluster'))).put('view', encode('v2'));
    expect(decode((await views.get('view'))!.value)).toBe('v2');
    const watched = await views.watch({ key: 'view' });
    for await (const e of watched) {
      expect(decode(e.value)).toBe('v2');
      break;
    }
    // Reading and watching the view was not denied anything.
    expect(a.denied).toEqual([]);
    const forbidden = [
      journalSubject(CLUSTER, 0, 'app', 'x'),
      `$KV.${bucketName(CLUSTER, 'cluster')}.view`,
      `$JS.API.STREAM.PURGE.${journalStreamName(CLUSTER)}`,
      heartbeatSubject(CLUSTER, 'admin'),
    ];
    for (const subject of forbidden) await expectPublishDenied(a, subject);
    await expectSubscribeRefused(a, `cohort.${CLUSTER}.cmd.>`);
    expect(a.denied.map((e) => e.subject)).toEqual([...forbidden, `cohort.${CLUSTER}.cmd.>`]);
  });

  it('a client added by add-client is admitted once the server reloads its configuration', async () => {
    const alice = await client('alice');
    await authAddClient({ label: 'carol', out: dir }, quiet);
    await expect(client('carol')).rejects.toThrow(/authorization/i);
    process.kill(server.pid, 'SIGHUP');
    const carol = await waitFor(() => client('carol').catch(() => undefined), { what: 'carol admitted' });
    const w = await worker();
    await expectDelivered(w, carol, `cohort.${CLUSTER}.client.carol.n`, `cohort.${CLUSTER}.client.carol.>`);
    await expectSubscribeRefused(carol, '_INBOX.alice.>');
    // Alice, connected before the reload, keeps her permissions.
    await expectDelivered(w, alice, eventSubject(CLUSTER, 'app', 'z'), `cohort.${CLUSTER}.evt.>`);
    await expectPublishDenied(alice, heartbeatSubject(CLUSTER, 'w1'));
  });

  it('the worker may not read other inboxes or touch streams that are not its own', async () => {
    const w = await worker();
    await expectSubscribeRefused(w, '_INBOX.alice.>');
    await expectSubscribeRefused(w, '_INBOX.>');
    for (const subject of ['$JS.API.STREAM.CREATE.ELSEWHERE', '$KV.elsewhere.key', 'elsewhere'])
      await expectPublishDenied(w, subject);
  });
});

describe('cohort auth: a worker and clients running on their own keys', () => {
  const MAX_PAYLOAD = 8_192;
  let dir: string;
  let server: NatsServer;
  const track = cleanupAfterEach();

  beforeAll(async () => {
    dir = await tempDir();
    await authInit({ cluster: CLUSTER, out: dir, clients: ['alice', 'bob'] }, quiet);
    await writeFile(join(dir, 'server.conf'), `include ./auth.conf\nmax_payload: ${MAX_PAYLOAD}\n`);
    server = await startTestServer({
      args: ['-c', join(dir, 'server.conf')],
      probe: { authenticator: nkeyAuthenticator(await seedOf(dir, 'worker')), inboxPrefix: '_INBOX.worker' },
    });
  });
  afterAll(async () => {
    await server?.[Symbol.asyncDispose]();
  });

  /** A bus on `role`'s seed file as `auth init` wrote it, with every permission violation it is told of. */
  async function busAs(role: Role): Promise<{ bus: Bus; denied: PermissionViolationError[] }> {
    const bus = await createNatsBus({
      servers: server.url,
      auth: { nkey: join(dir, `${userNameOf(role)}.nk`) },
      inboxPrefix: inboxPrefixFor(role),
      name: userNameOf(role),
    });
    const denied: PermissionViolationError[] = [];
    bus.onStatus((s) => {
      if (s.type === 'error' && s.error instanceof PermissionViolationError) denied.push(s.error);
    });
    return { bus: track(bus), denied };
  }

  it('send, read, patches, a counter, a reply larger than max_payload, a failover request: nothing else denied', async () => {
    const board = defineApplication({ name: 'whiteboard', machine: whiteboardMachine });
    const counter = defineApplication({ name: 'counter', machine: counterMachine });
    const w = await busAs({ kind: 'worker' });
    track(
      await startWorker({
        bus: w.bus,
        cluster: CLUSTER,
        applications: [board, counter],
        shardCount: 4,
        id: 'w1',
        // Each client held to its own inbox, as startWorker does by itself when given `auth`.
        clients: { ownInbox: true },
      }),
    );
    const a = await busAs({ kind: 'client', label: 'alice' });
    const alice = track(await connect({ bus: a.bus, cluster: CLUSTER, label: 'alice', shardCount: 4 }));
    // Bob connects as a user would: his seed file, the label taken from its name.
    const bob = track(
      await connect({ nats: server.url, auth: { nkey: join(dir, 'client-bob.nk') }, cluster: CLUSTER, shardCount: 4 }),
    );

    const heard: unknown[] = [];
    bob.session('counter', 'c1').subscribe((p) => heard.push(p));
    // Bob's subscription is in place once a request of his has been answered.
    expect((await bob.session('counter', 'c1').read()).seq).toBe(0);
    const c1 = alice.session('counter', 'c1');
    expect((await c1.send({ type: 'ADD', by: 2 })).seq).toBe(1);
    expect((await c1.read()).document).toMatchObject({ n: 2 });
    await waitFor(() => heard.length === 1, { what: "bob hears alice's patch" });

    const ids = alice.counter('orders');
    expect([await ids.next(), await ids.next()]).toEqual([1, 2]);

    // Claim-check: this document cannot travel in one message.
    const big = alice.session('whiteboard', 'big');
    for (let i = 0; i < 4; i++)
      await big.send({ type: 'ADD_SHAPE', id: `t${i}`, kind: 'text', x: i, y: i, text: 'x'.repeat(3_000) });
    const { document } = await big.read();
    expect(encode(document).length).toBeGreaterThan(MAX_PAYLOAD);
    expect(Object.keys((document as { shapes: object }).shapes)).toHaveLength(4);

    const r = await busAs({ kind: 'reader' });
    const reader = track(await connect({ bus: r.bus, cluster: CLUSTER, label: 'reader', shardCount: 4 }));
    expect(
      Object.keys(((await reader.session('whiteboard', 'big').read()).document as { shapes: object }).shapes),
    ).toHaveLength(4);

    const ad = await busAs({ kind: 'admin' });
    const seen = await waitForView(ad.bus, CLUSTER, (v) => v.members.some((m) => m.id === 'w1'), {
      onUnreadable: () => undefined,
    });
    expect(await seen.until(5_000)).not.toBeNull();
    seen.stop();
    await expect(requestFailover(ad.bus, CLUSTER, { shard: 0, to: 'ghost' })).rejects.toBeInstanceOf(
      FailoverRefusedError,
    );

    expect(w.denied).toEqual([]);
    expect(ad.denied).toEqual([]);
    // What a client is denied on purpose: deleting a claim-checked reply's blob (a write to the
    // object store's metadata, see protocol/permissions.ts). Nothing else.
    const blobMeta = `$O.${bucketName(CLUSTER, 'replies')}.M.`;
    const unexpected = (denied: PermissionViolationError[]): PermissionViolationError[] =>
      denied.filter((e) => !(e.operation === 'publish' && e.subject.startsWith(blobMeta)));
    // The delete is in the background, after the reply was decoded.
    await waitFor(() => a.denied.some((e) => e.subject.startsWith(blobMeta)), { what: "alice's delete refused" });
    expect(unexpected(a.denied)).toEqual([]);
    expect(unexpected(r.denied)).toEqual([]);
  });

  it('under auth the reader and the admin ask the workers’ micro services, and the admin types a JSON command as `admin`', async () => {
    const counter = defineApplication({ name: 'counter', machine: counterMachine });
    const w = await busAs({ kind: 'worker' });
    track(
      await startWorker({
        bus: w.bus,
        cluster: CLUSTER,
        applications: [counter],
        shards: [0, 1, 2, 3],
        shardCount: 4,
        id: 'w-svc',
        clients: { ownInbox: true },
      }),
    );
    for (const role of [{ kind: 'reader' }, { kind: 'admin' }] as const) {
      const nc = track(
        await connectTest(server, {
          authenticator: nkeyAuthenticator(await seedOf(dir, userNameOf(role))),
          inboxPrefix: inboxPrefixFor(role),
        }),
      );
      const denied = violations(nc);
      const svc = new Svcm(nc).client({ strategy: 'stall', maxWait: 1_000 });
      const mine = <T extends { metadata?: Record<string, string> }>(list: T[]) =>
        list.filter((x) => x.metadata?.['worker'] === 'w-svc');
      const all = async <T>(iter: Promise<AsyncIterable<T>>): Promise<T[]> => {
        const out: T[] = [];
        for await (const x of await iter) out.push(x);
        return out;
      };
      const [ping] = mine(await all<ServiceIdentity>(svc.ping('cohort')));
      expect(ping).toMatchObject({ name: 'cohort', metadata: { cluster: CLUSTER, worker: 'w-svc' } });
      expect(mine(await all<ServiceIdentity>(svc.ping())).length).toBe(1);
      const [info] = mine(await all<ServiceInfo>(svc.info('cohort', ping!.id)));
      expect(info!.endpoints.map((e) => e.name)).toContain('status');
      const [stats] = mine(await all<ServiceStats>(svc.stats('cohort')));
      expect(stats!.type).toBe('io.nats.micro.v1.stats_response');
      const status = await nc.request(serviceSubject(CLUSTER, 'w-svc', 'status'), '', { timeout: 2_000 });
      expect(JSON.parse(status.string())).toMatchObject({ worker: 'w-svc', primary: [0, 1, 2, 3] });
      if (role.kind === 'reader') {
        // A JSON read as `reader`, from the reader's inbox: answered (the session is empty yet).
        const h = natsHeaders();
        h.set('Content-Type', 'application/json');
        const reply = await nc.request(
          readSubject(CLUSTER, shardOf('counter', 'hand', 4), 'counter', 'hand', 'reader'),
          '',
          {
            timeout: 2_000,
            headers: h,
          },
        );
        expect(JSON.parse(reply.string())).toMatchObject({ ok: true, seq: 0 });
      }
      if (role.kind === 'admin') {
        // What `nats req -H Content-Type:application/json <subject> '{...}'` sends, with the admin's inbox prefix.
        const shard = shardOf('counter', 'hand', 4);
        const h = natsHeaders();
        h.set('Content-Type', 'application/json');
        const reply = await nc.request(
          cmdSubject(CLUSTER, shard, 'counter', 'hand', 'admin'),
          '{"type":"ADD","by":7}',
          {
            timeout: 2_000,
            headers: h,
          },
        );
        expect(reply.headers?.get('Content-Type')).toBe('application/json');
        expect(JSON.parse(reply.string())).toMatchObject({ ok: true, seq: 1 });
      }
      await nc.flush();
      expect(denied).toEqual([]);
    }
    expect(w.denied).toEqual([]);
    // A client user is no operator: it may not ask the services.
    const alice = track(
      await connectTest(server, {
        authenticator: nkeyAuthenticator(await seedOf(dir, 'client-alice')),
        inboxPrefix: inboxPrefixFor({ kind: 'client', label: 'alice' }),
      }),
    );
    const aliceDenied = violations(alice);
    alice.publish('$SRV.PING.cohort', '');
    alice.publish(serviceSubject(CLUSTER, 'w-svc', 'status'), '');
    await alice.flush();
    await waitFor(() => aliceDenied.length === 2, { what: 'alice denied $SRV and svc' });
    expect(aliceDenied.map((e) => e.subject)).toEqual(['$SRV.PING.cohort', serviceSubject(CLUSTER, 'w-svc', 'status')]);
  });
});
