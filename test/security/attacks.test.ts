import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { nanos, nkeyAuthenticator, PermissionViolationError } from '@nats-io/nats-core';
import { pack } from 'msgpackr';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  connect,
  CorruptSessionError,
  createLogger,
  createNatsBus,
  defineApplication,
  EventRejectedError,
  InvalidNameError,
  PayloadTooLargeError,
  PermissionDeniedError,
  shardOf,
  startWorker,
  type Bus,
  type Client,
  type Logger,
  type Patch,
  type PublishOptions,
  type SendResult,
  type View,
  type Worker,
} from '../../index.js';
import {
  adminInbox,
  bucketName,
  clientInbox,
  cmdSubject,
  commandRequest,
  controlSubject,
  decode,
  encode,
  eventSubject,
  HEADER,
  heartbeatFilter,
  heartbeatSubject,
  journalStreamFilter,
  journalStreamName,
  journalSubject,
  kvStreamName,
  noticeSubject,
  packView,
  readOnlySubject,
  readRequest,
  readSubject,
  readView,
  replicaReportSubject,
  requestFailover,
  timerKey,
  VIEW_KEY,
  workerInbox,
  type Journal,
  type KvStore,
} from '../../internal.js';
import { authInit } from '../../cli/auth.js';
import { startAuthServer } from '../../cli/authServer.js';
import { whiteboard } from '../../examples/whiteboard.js';
import type { NatsServer } from '../../harness/natsServer.js';
import { counterMachine } from '../fixtures/counter.js';
import { errorOf, type WireReply } from '../fixtures/rawCohort.js';
import { connectTest } from '../nats.js';
import { waitFor } from '../waitFor.js';

/**
 * Issue 12, section 3: attacks on a cluster running on a real nats-server
 * whose configuration is only the `cohort auth init` block
 * (startAuthServer), each made by a role that should not be able to
 * (mostly the client mallory, sometimes the reader or the admin), beside a
 * positive control: the same action by the role that may, which works.
 * After each, a legitimate client (alice) still sends, and every write
 * acknowledged so far reads back as it was acknowledged.
 *
 * Some attacks permissions cannot stop, because the attacker may send that
 * kind of message (a command with any reply subject, on any shard's
 * subject, with any body): there the refusal is in code, and the test
 * asserts its typed error or that the outcome is harmless.
 */

const CLUSTER = 'sec';
const SHARDS = 4;
/** Short beats so joins and hand-offs are quick; a session timeout with room for a busy CI machine. */
const TIMING = { heartbeatInterval: 100, sessionTimeout: 2_000, shardCount: SHARDS } as const;
/** Long enough that no session is collected as idle behind a test's back. */
const counter = defineApplication({ name: 'counter', machine: counterMachine, unusedSessionLifetime: 600_000 });
const applications = [counter, whiteboard];
const CLUSTER_BUCKET = bucketName(CLUSTER, 'cluster');
const TIMERS_BUCKET = bucketName(CLUSTER, 'timers');
const JOURNAL = { name: journalStreamName(CLUSTER), subjects: [journalStreamFilter(CLUSTER)] };

/** A connection as one user of the auth directory, with every permission violation the server told it of. */
interface Party {
  readonly bus: Bus;
  readonly denied: PermissionViolationError[];
}

interface LogLine {
  readonly msg: string;
  readonly [key: string]: unknown;
}

let dir: string;
let server: NatsServer;
const opened: { close(): Promise<void> }[] = [];
let w1: Worker;
let w2: Worker;
/** The real workers' own connections: nothing may be denied them, and they count the answers they refused to send. */
let w1Party: Party;
let w2Party: Party;
const logs: Record<string, LogLine[]> = { w1: [], w2: [] };
let admin: Party;
let reader: Party;
let mallory: Party;
/** Someone holding the worker's seed who is not a worker: what that role may do. */
let rogue: Party;
let aliceParty: Party;
let alice: Client;
let malloryClient: Client;
let adminKv: KvStore;
let journal: Journal;

async function party(user: string, inboxPrefix: string): Promise<Party> {
  const bus = await createNatsBus({
    servers: server.url,
    auth: { nkey: join(dir, `${user}.nk`) },
    inboxPrefix,
    name: user,
  });
  opened.push(bus);
  const denied: PermissionViolationError[] = [];
  bus.onStatus((s) => {
    if (s.type === 'error' && s.error instanceof PermissionViolationError) denied.push(s.error);
  });
  return { bus, denied };
}

/** pino's JSON lines, warnings and worse, kept for the test to read. */
function capture(into: LogLine[]): Logger {
  return createLogger({ level: 'warn', destination: { write: (line) => void into.push(JSON.parse(line) as LogLine) } });
}

const workers = (): Worker[] => [w1, w2];
const primaryOf = (shard: number): Worker => workers().find((w) => w.serving.includes(shard))!;
const otherThan = (w: Worker): Worker => workers().find((x) => x !== w)!;

/** Both workers agree on a view with both members, every shard ACTIVE and served once. */
function settled(): View | false {
  const [a, b] = [w1.view, w2.view];
  if (a === null || b === null || a.viewId !== b.viewId || a.transitional) return false;
  if (a.members.map((m) => m.id).join() !== 'w1,w2') return false;
  if (a.shards.some((s) => s.state !== 'ACTIVE')) return false;
  const served = [...w1.serving, ...w2.serving].sort((x, y) => x - y);
  return served.join() === [...Array(SHARDS).keys()].join() ? a : false;
}

async function waitSettled(what: string): Promise<View> {
  return waitFor(settled, { what, timeoutMs: 15_000 });
}

/** An id of `app` on `shard`. */
function idOn(shard: number, prefix: string, app = 'counter'): string {
  for (let i = 0; ; i++) if (shardOf(app, `${prefix}-${i}`, SHARDS) === shard) return `${prefix}-${i}`;
}

// ------------------------------------------------------------ nothing lost

/** Every counter session written through a client here: its acknowledged seq and value. */
const acked = new Map<string, { seq: number; n: number }>();

/** An ADD through `client`, acknowledged once, recorded. */
async function adds(client: Client, id: string, by = 1): Promise<SendResult> {
  const r = await client.session('counter', id).send({ type: 'ADD', by });
  const before = acked.get(id) ?? { seq: 0, n: 0 };
  expect(r).toMatchObject({ seq: before.seq + 1, duplicate: false });
  acked.set(id, { seq: r.seq, n: before.n + by });
  return r;
}

let canaries = 0;
/** The cluster keeps serving (alice's new command commits) and every acknowledged write reads back. */
async function clusterServes(): Promise<void> {
  await adds(alice, `canary-${++canaries}`, 1);
  for (const [id, want] of acked)
    expect(await alice.session('counter', id).read(), id).toMatchObject({ seq: want.seq, document: { n: want.n } });
}

/** A request in the raw protocol, answered by whoever serves the subject. */
async function ask(who: Party, subject: string, body: Uint8Array): Promise<WireReply> {
  return decode((await who.bus.request(subject, body, { timeout: 5_000 })).data) as WireReply;
}

// ------------------------------------------------------------ denials

async function publishDenied(
  who: Party,
  subject: string,
  data: Uint8Array = encode({ forged: true }),
  options?: PublishOptions,
): Promise<void> {
  const from = who.denied.length;
  who.bus.publish(subject, data, options);
  await who.bus.flush();
  await waitFor(() => who.denied.slice(from).some((e) => e.operation === 'publish' && e.subject === subject), {
    what: `publish to ${subject} denied`,
  });
}

async function subscribeDenied(who: Party, subject: string, queue?: string): Promise<void> {
  const from = who.denied.length;
  const got: string[] = [];
  who.bus.subscribe(subject, (m) => got.push(m.subject), queue === undefined ? undefined : { queue });
  await who.bus.flush();
  await waitFor(() => who.denied.slice(from).some((e) => e.operation === 'subscription' && e.subject === subject), {
    what: `subscription to ${subject} refused`,
  });
  expect(got).toEqual([]);
}

/** A denied request fails at once with PermissionDeniedError naming the subject (no timeout to wait out). */
async function requestDenied(who: Party, subject: string, data: Uint8Array = encode({ forged: true })): Promise<void> {
  const started = Date.now();
  const err = await who.bus.request(subject, data, { timeout: 5_000 }).catch((e: unknown) => e);
  expect(err, subject).toBeInstanceOf(PermissionDeniedError);
  expect(err).toMatchObject({ operation: 'publish', subject });
  expect(Date.now() - started).toBeLessThan(4_000);
}

/** Heartbeats as the admin hears them (it may listen, not speak). */
async function heartbeats(): Promise<{ seen: { subject: string; id: unknown; status: unknown }[]; stop(): void }> {
  const seen: { subject: string; id: unknown; status: unknown }[] = [];
  const sub = admin.bus.subscribe(heartbeatFilter(CLUSTER), (m) => {
    let hb: { id?: unknown; status?: unknown } = {};
    try {
      hb = decode(m.data) as typeof hb;
    } catch {
      // garbage is recorded by subject only
    }
    seen.push({ subject: m.subject, id: hb.id, status: hb.status });
  });
  await admin.bus.flush();
  return { seen, stop: () => sub.unsubscribe() };
}

/** Heartbeats the admin heard since `from`, at least `n` from each real member: time passed, and beats flowed. */
async function freshBeats(seen: { id: unknown }[], from: number, n = 3): Promise<void> {
  await waitFor(() => ['w1', 'w2'].every((id) => seen.slice(from).filter((h) => h.id === id).length >= n), {
    what: 'fresh heartbeats from both members',
  });
}

/** A heartbeat as a member sends it (machines/heartbeats.ts): well formed, so only its sender's rights stop it. */
function heartbeat(id: string, status: 'joining' | 'member' | 'leaving', viewId: number): Uint8Array {
  return encode({ id, zone: 'z', promotable: true, status, viewId, startedAt: 1, serving: [] });
}

describe('attacks on an authenticated cluster (nats-server with only the generated auth.conf)', () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cohort-attacks-'));
    await authInit({ cluster: CLUSTER, out: dir, clients: ['alice', 'mallory'] }, { write: () => undefined });
    server = await startAuthServer(dir);
    w1Party = await party('worker', workerInbox());
    w2Party = await party('worker', workerInbox());
    const worker = (id: 'w1' | 'w2', p: Party): Promise<Worker> =>
      startWorker({
        bus: p.bus,
        cluster: CLUSTER,
        applications,
        id,
        ...TIMING,
        // As startWorker does by itself when given `auth`: each client is answered only in its own inbox.
        clients: { ownInbox: true },
        logger: capture(logs[id]!),
      });
    w1 = await worker('w1', w1Party);
    w2 = await worker('w2', w2Party);
    [admin, reader, mallory, rogue, aliceParty] = await Promise.all([
      party('admin', adminInbox()),
      party('reader', clientInbox('reader')),
      party('client-mallory', clientInbox('mallory')),
      party('worker', workerInbox()),
      party('client-alice', clientInbox('alice')),
    ]);
    alice = await connect({ bus: aliceParty.bus, cluster: CLUSTER, label: 'alice', shardCount: SHARDS });
    // Mallory as a user would: her seed file, her label taken from its name.
    malloryClient = await connect({
      nats: server.url,
      auth: { nkey: join(dir, 'client-mallory.nk') },
      cluster: CLUSTER,
      shardCount: SHARDS,
    });
    opened.push(malloryClient, alice);
    adminKv = await admin.bus.kv({ bucket: CLUSTER_BUCKET, create: false });
    journal = await admin.bus.journal(JOURNAL);
    await waitSettled('two workers sharing the shards');
    for (let shard = 0; shard < SHARDS; shard++) await adds(alice, idOn(shard, 'before'), 10 + shard);
  }, 60_000);

  afterAll(async () => {
    await Promise.all([w1?.stop(), w2?.stop()]);
    for (const c of opened.splice(0).reverse()) await c.close().catch(() => undefined);
    await server?.[Symbol.asyncDispose]();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  afterEach(() => {
    // Whatever the attack, the real workers and alice were denied nothing.
    expect(w1Party.denied).toEqual([]);
    expect(w2Party.denied).toEqual([]);
    expect(aliceParty.denied).toEqual([]);
  });

  it('forged heartbeat: a client or the reader cannot speak for a member or a phantom; a worker’s heartbeats admit it (a third worker joins)', async () => {
    const view = w1.view!;
    const heard = await heartbeats();
    for (const attacker of [mallory, reader]) {
      await publishDenied(attacker, heartbeatSubject(CLUSTER, 'ghost'), heartbeat('ghost', 'joining', view.viewId));
      // A member's own subject, claiming it joins afresh with no view.
      await publishDenied(attacker, heartbeatSubject(CLUSTER, 'w1'), heartbeat('w1', 'joining', 0));
    }
    const from = heard.seen.length;
    await freshBeats(heard.seen, from);
    expect(heard.seen.filter((h) => h.id === 'ghost' || h.status === 'joining')).toEqual([]);
    expect(settled()).toMatchObject({ viewId: view.viewId });

    // Control: a heartbeat from the worker role is taken: w3 joins on its heartbeats and is admitted.
    const w3 = await startWorker({
      nats: server.url,
      auth: { nkey: join(dir, 'worker.nk') },
      cluster: CLUSTER,
      applications,
      id: 'w3',
      promotable: false,
      ...TIMING,
    });
    try {
      expect(w3.view!.members.map((m) => m.id)).toEqual(['w1', 'w2', 'w3']);
      await waitFor(() => heard.seen.some((h) => h.id === 'w3' && h.status === 'joining'), {
        what: 'w3 heard joining',
      });
    } finally {
      await w3.stop();
      heard.stop();
    }
    await waitSettled('w3 gone again');
    await clusterServes();
  });

  it('forged leaving heartbeat: a client cannot make the leader hand a live member’s shards away; a worker’s own leaving heartbeat does', async () => {
    const before = await waitSettled('settled');
    const w2Shards = [...w2.serving];
    const heard = await heartbeats();
    for (const attacker of [mallory, reader])
      await publishDenied(attacker, heartbeatSubject(CLUSTER, 'w2'), heartbeat('w2', 'leaving', before.viewId));
    const from = heard.seen.length;
    await freshBeats(heard.seen, from);
    expect(heard.seen.filter((h) => h.status === 'leaving')).toEqual([]);
    // Nothing was planned away from w2.
    expect(settled()).toMatchObject({ viewId: before.viewId });
    expect(w2.serving).toEqual(w2Shards);

    // Control: w3 leaves; its own leaving heartbeat (worker role) takes it out of the view.
    const w3 = await startWorker({
      nats: server.url,
      auth: { nkey: join(dir, 'worker.nk') },
      cluster: CLUSTER,
      applications,
      id: 'w3',
      promotable: false,
      ...TIMING,
    });
    expect(w1.view!.members.map((m) => m.id)).toContain('w3');
    await w3.stop();
    await waitFor(() => heard.seen.some((h) => h.id === 'w3' && h.status === 'leaving'), {
      what: 'w3 heard leaving',
    });
    heard.stop();
    expect((await waitSettled('w3 left')).members.map((m) => m.id)).toEqual(['w1', 'w2']);
    await clusterServes();
  });

  it('forged view write: no client, reader or admin may write the view key; junk the worker role writes there is written over by the leader', async () => {
    const before = (await readView(adminKv))!;
    const usurped = encode(packView({ ...before.view, viewId: before.view.viewId + 100, leader: 'mallory' }));
    const viewSubject = `$KV.${CLUSTER_BUCKET}.${VIEW_KEY}`;
    for (const attacker of [mallory, reader, admin]) {
      await publishDenied(attacker, viewSubject, usurped);
      // As a KV put makes it: a JetStream publish, a request.
      await requestDenied(attacker, viewSubject, usurped);
    }
    expect((await readView(adminKv))!.revision).toBe(before.revision);

    // Control: the worker role may write there. Junk, then an old view: each is replaced by the view the leader knows.
    const rogueKv = await rogue.bus.kv({ bucket: CLUSTER_BUCKET, create: false });
    for (const junk of [new Uint8Array([0xc1, 0x00]), encode(packView({ ...before.view, viewId: 1 }))]) {
      const written = await rogueKv.put(VIEW_KEY, junk);
      const repaired = await waitFor(
        async () => {
          const now = await readView(adminKv).catch(() => null);
          return now !== null && now.revision > written && now;
        },
        { what: 'the view key written over by the leader' },
      );
      expect(repaired.view.viewId).toBeGreaterThanOrEqual(before.view.viewId);
      expect(repaired.view.members.map((m) => m.id)).toEqual(['w1', 'w2']);
    }
    await waitSettled('settled after the repair');
    await clusterServes();
  });

  it('view key deleted: no client, reader or admin may delete or purge it; a delete by the worker role is repaired by the leader', async () => {
    const before = (await readView(adminKv))!;
    const viewSubject = `$KV.${CLUSTER_BUCKET}.${VIEW_KEY}`;
    const purge = new TextEncoder().encode(JSON.stringify({ filter: viewSubject }));
    for (const attacker of [mallory, reader, admin]) {
      await publishDenied(attacker, viewSubject, new Uint8Array(), { headers: { 'KV-Operation': 'DEL' } });
      await requestDenied(attacker, `$JS.API.STREAM.PURGE.${kvStreamName(CLUSTER_BUCKET)}`, purge);
      await requestDenied(
        attacker,
        `$JS.API.STREAM.MSG.DELETE.${kvStreamName(CLUSTER_BUCKET)}`,
        new TextEncoder().encode(JSON.stringify({ seq: 1 })),
      );
    }
    expect((await readView(adminKv))!.revision).toBe(before.revision);

    // Control: the worker role may delete it; the leader writes the view back.
    const rogueKv = await rogue.bus.kv({ bucket: CLUSTER_BUCKET, create: false });
    await rogueKv.delete(VIEW_KEY);
    const repaired = await waitFor(async () => (await readView(adminKv).catch(() => null)) ?? false, {
      what: 'the view key written back',
    });
    expect(repaired.revision).toBeGreaterThan(before.revision);
    expect(repaired.view.viewId).toBeGreaterThanOrEqual(before.view.viewId);
    expect(repaired.view.members.map((m) => m.id)).toEqual(['w1', 'w2']);
    await clusterServes();
  });

  it('forced failover by a client: refused by the server; the admin’s forced failover is carried out and loses nothing', async () => {
    const shard = 0;
    const from = primaryOf(shard);
    const to = otherThan(from);
    await adds(alice, idOn(shard, 'failover'), 5);
    const before = await waitSettled('settled');
    for (const attacker of [mallory, reader])
      await expect(
        requestFailover(attacker.bus, CLUSTER, { shard, to: to.id, force: true }, 2_000),
      ).rejects.toBeInstanceOf(PermissionDeniedError);
    for (const attacker of [mallory, reader])
      expect(attacker.denied.map((e) => e.subject)).toContain(controlSubject(CLUSTER, 'failover'));
    expect(settled()).toMatchObject({ viewId: before.viewId });
    expect(from.serving).toContain(shard);

    // Control: the admin may ask for it, and the leader promotes the target at once (epoch + 1).
    const adminDenied = admin.denied.length;
    expect(await requestFailover(admin.bus, CLUSTER, { shard, to: to.id, force: true })).toMatchObject({
      leader: before.leader,
    });
    const after = await waitFor(() => to.serving.includes(shard) && settled(), {
      what: `shard ${shard} forced over to ${to.id}`,
      timeoutMs: 15_000,
    });
    expect(after.shards[shard]).toMatchObject({ primary: to.id, epoch: before.shards[shard]!.epoch + 1 });
    expect(admin.denied.slice(adminDenied)).toEqual([]);
    await clusterServes();
  });

  it('forged replica report: a client cannot claim a secondary has applied what it has not; the secondary’s own reports count', async () => {
    const shard = 1;
    const primary = primaryOf(shard);
    const secondary = otherThan(primary).id;
    const id = idOn(shard, 'report');
    await adds(alice, id, 1);
    const last = await journal.lastSeq(journalSubject(CLUSTER, shard, 'counter', id));
    // Control: the secondary (worker role) reports applying it, and the primary takes the report.
    await waitFor(() => (primary.replicaStatus(shard).secondaries[0]?.seq ?? 0) >= last, {
      what: 'the secondary’s report heard',
    });
    expect(primary.replicaStatus(shard).secondaries).toEqual([
      { worker: secondary, seq: expect.any(Number), state: 'SYNCHRONIZED' },
    ]);
    const forged = encode({ w: secondary, s: shard, q: 1_000_000_000 });
    for (const attacker of [mallory, reader])
      await publishDenied(attacker, replicaReportSubject(CLUSTER, shard), forged);
    expect(primary.replicaStatus(shard).secondaries[0]!.seq).toBeLessThan(1_000_000_000);
    // Reports go on after it, as the journal has them.
    await adds(alice, id, 1);
    const next = await journal.lastSeq(journalSubject(CLUSTER, shard, 'counter', id));
    await waitFor(() => primary.replicaStatus(shard).secondaries[0]!.seq >= next, { what: 'the next report' });
    expect(primary.replicaStatus(shard).secondaries[0]!.seq).toBeLessThan(1_000_000_000);
    await clusterServes();
  });

  it('forged client notice: a client cannot disconnect another; a worker’s notice does, at once', async () => {
    const alice2 = await connect({
      nats: server.url,
      auth: { nkey: join(dir, 'client-alice.nk') },
      cluster: CLUSTER,
      shardCount: SHARDS,
    });
    try {
      const id = idOn(2, 'notice');
      await adds(alice2, id, 1);
      const disabled: string[] = [];
      alice2.on('disabled', (_failure, reason) => disabled.push(reason));
      const notice = encode({ type: 'disconnected', by: 'w1', reason: 'forged' });
      for (const attacker of [mallory, reader]) {
        await publishDenied(attacker, noticeSubject(CLUSTER, alice2.id), notice);
        await publishDenied(attacker, noticeSubject(CLUSTER, 'mallory#00000000'), notice);
      }
      expect(disabled).toEqual([]);
      expect(alice2.state).toBe('NORMAL');
      await adds(alice2, id, 1);

      // Control: the worker that served her disconnects her; its notice disables the connection at once.
      const seenBy = workers().find((w) => w.clients().some((c) => c.id === alice2.id))!;
      const firstId = alice2.id;
      await seenBy.forceDisconnect(firstId);
      await waitFor(() => disabled.length === 1, { what: 'the worker’s notice heard' });
      expect(disabled[0]).toMatch(/disconnected by worker/);
      // Her next command connects anew, as a new client.
      await adds(alice2, id, 1);
      expect(alice2.id).not.toBe(firstId);
    } finally {
      await alice2.close();
    }
    await clusterServes();
  });

  it('forged patch: a client cannot publish a document change to subscribers; the worker’s patches reach them', async () => {
    const id = idOn(3, 'patch');
    await adds(alice, id, 1);
    const heard: Patch[] = [];
    const stop = alice.session('counter', id).subscribe((p) => heard.push(p));
    try {
      // Alice's subscription is in place once a request of hers has been answered.
      await alice.session('counter', id).read();
      const forged = encode({ seq: 2, prev: 1, ops: [{ op: 'replace', path: '/n', value: 1_000_000 }], setter: 'w1' });
      for (const attacker of [mallory, reader])
        await publishDenied(attacker, eventSubject(CLUSTER, 'counter', id), forged);

      // Control: mallory's command goes through the worker, whose patch (worker role) reaches alice.
      const r = await adds(malloryClient, id, 2);
      await waitFor(() => heard.length === 1, { what: 'the worker’s patch' });
      expect(heard[0]).toMatchObject({ seq: r.seq, setter: malloryClient.id });
      expect(heard[0]!.ops).toContainEqual({ op: 'replace', path: '/n', value: 3 });
    } finally {
      stop();
    }
    expect(await alice.session('counter', id).read()).toMatchObject({ seq: 2, document: { n: 3 } });
    await clusterServes();
  });

  it('rogue responder: no client, reader or admin may listen on commands (or another’s inbox); the worker role may', async () => {
    const id = idOn(0, 'responder');
    const subject = cmdSubject(CLUSTER, 0, 'counter', id, 'alice');
    for (const attacker of [mallory, reader, admin]) await subscribeDenied(attacker, `cohort.${CLUSTER}.cmd.>`);
    await subscribeDenied(mallory, subject, 'cohort');
    await subscribeDenied(mallory, `cohort.${CLUSTER}.read.>`);
    await subscribeDenied(mallory, '_INBOX.alice.>');
    await subscribeDenied(mallory, '_INBOX.>');
    // Only the members answer.
    expect(['w1', 'w2']).toContain((await adds(alice, id, 1)).by);

    // Control: the worker role may subscribe there: a copy of alice's next command reaches it.
    const copies: string[] = [];
    const sub = rogue.bus.subscribe(`cohort.${CLUSTER}.cmd.>`, (m) => copies.push(m.subject));
    await rogue.bus.flush();
    try {
      await adds(alice, id, 1);
      await waitFor(() => copies.includes(subject), { what: 'the command seen by the worker role' });
    } finally {
      sub.unsubscribe();
    }
    expect(rogue.denied).toEqual([]);
    await clusterServes();
  });

  it('direct publish into the journal: refused to a client, the reader and the admin; an entry the worker role writes breaks only its own session, and says so', async () => {
    const shard = 1;
    const victim = idOn(shard, 'victim');
    await adds(alice, victim, 1);
    const subject = journalSubject(CLUSTER, shard, 'counter', victim);
    const last = await journal.lastSeq(subject);
    const forged = encode({ v: 1, events: [{ seq: 2, event: { type: 'ADD', by: 1_000, meta: {} } }] });
    for (const attacker of [mallory, reader, admin]) {
      await publishDenied(attacker, subject, forged);
      // A JetStream publish (with Nats-Msg-Id) is a request: denied at once.
      await requestDenied(attacker, subject, forged);
    }
    expect(await journal.lastSeq(subject)).toBe(last);
    expect(await alice.session('counter', victim).read()).toMatchObject({ seq: 1, document: { n: 1 } });

    // Control: the worker role may append. Junk under no epoch (or an older one than the shard's marker) is
    // a late entry every reader ignores; junk under the shard's epoch refuses that one session, naming the
    // entry; the rest serve.
    const rogueJournal = await rogue.bus.journal(JOURNAL);
    await Promise.all(workers().map((w) => w.passivate()));
    await rogueJournal.append(subject, encode({ v: 1, events: [{ seq: 2 }] }));
    expect(await alice.session('counter', victim).read()).toMatchObject({ seq: 1, document: { n: 1 } });
    await Promise.all(workers().map((w) => w.passivate()));
    const epoch = (await readView(adminKv))!.view.shards[shard]!.epoch;
    const junk = await rogueJournal.append(subject, encode({ v: 1, events: [{ seq: 2 }] }), {
      headers: { [HEADER.epoch]: String(epoch) },
    });
    const refused = await alice
      .session('counter', victim)
      .read()
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(CorruptSessionError);
    expect(refused).toMatchObject({ session: `counter/${victim}`, journalSeq: junk.seq });
    // That session is lost to whoever holds the worker's seed; it is no longer expected to read back.
    acked.delete(victim);
    await clusterServes();
  });

  it('reply reflection: a command whose reply subject is the journal or the view key is neither applied nor answered there', async () => {
    const shard = 2;
    const id = idOn(shard, 'reflect');
    const subject = cmdSubject(CLUSTER, shard, 'counter', id, 'mallory');
    const jrnl = journalSubject(CLUSTER, shard, 'counter', id);
    const viewBefore = (await readView(adminKv))!;
    const refusedBefore = w1Party.bus.refusedReplies + w2Party.bus.refusedReplies;
    const command = encode(commandRequest({ type: 'ADD', by: 100 }, 'reflect-1', 'mallory#00000001'));
    // A client may send a command with any reply subject: the server does not check it.
    for (const reply of [jrnl, `$KV.${CLUSTER_BUCKET}.${VIEW_KEY}`]) mallory.bus.publish(subject, command, { reply });
    await mallory.bus.flush();
    expect(mallory.denied.filter((e) => e.subject === subject)).toEqual([]);
    // The worker refuses to act for a client outside its own inbox, and answers nothing at all: the
    // reply subject is not the sender's (without authentication, the bus still sends no answer outside
    // _INBOX: integrity.test.ts).
    expect(await journal.lastSeq(jrnl)).toBe(0);
    expect((await readView(adminKv))!.revision).toBe(viewBefore.revision);
    expect(await alice.session('counter', id).read()).toMatchObject({ seq: 0, document: { n: 0 } });

    // Control: the same command answered in mallory's own inbox is applied, and for the first time
    // (requests of one subscription are handled in order: the reflected ones were refused before it).
    expect(await ask(mallory, subject, command)).toMatchObject({ ok: true, seq: 1 });
    expect(w1Party.bus.refusedReplies + w2Party.bus.refusedReplies).toBe(refusedBefore);
    acked.set(id, { seq: 1, n: 100 });
    expect(await journal.lastSeq(jrnl)).toBeGreaterThan(0);
    await clusterServes();
  });

  it('mis-sharded command: refused naming the session’s shard, nothing journaled; on its own shard it commits once', async () => {
    const right = 1;
    const wrong = 2;
    const id = idOn(right, 'misplaced');
    const command = encode(commandRequest({ type: 'ADD', by: 5 }, 'misplaced-1', 'mallory#00000001'));
    const refused = errorOf(await ask(mallory, cmdSubject(CLUSTER, wrong, 'counter', id, 'mallory'), command));
    expect(refused).toMatchObject({ name: 'InvalidRequestError', retryable: false });
    expect(String(refused?.details?.['reason'])).toContain(
      `lives on shard ${right} of ${SHARDS}, not on shard ${wrong}`,
    );
    const read = encode(readRequest('mallory#00000001'));
    expect(errorOf(await ask(mallory, readSubject(CLUSTER, wrong, 'counter', id, 'mallory'), read))).toMatchObject({
      name: 'InvalidRequestError',
    });
    expect(await journal.lastSeq(journalSubject(CLUSTER, wrong, 'counter', id))).toBe(0);
    expect(await journal.lastSeq(journalSubject(CLUSTER, right, 'counter', id))).toBe(0);

    // Control: on its own shard it commits, once; the retry is a duplicate.
    expect(await ask(mallory, cmdSubject(CLUSTER, right, 'counter', id, 'mallory'), command)).toMatchObject({
      ok: true,
      seq: 1,
    });
    expect(await ask(mallory, cmdSubject(CLUSTER, right, 'counter', id, 'mallory'), command)).toMatchObject({
      ok: true,
      seq: 1,
      duplicate: true,
    });
    acked.set(id, { seq: 1, n: 5 });
    await clusterServes();
  });

  it('replay of a captured command: inside the window it is answered as a duplicate with its original seq and applied once, also after passivation', async () => {
    const shard = 3;
    const id = idOn(shard, 'replay');
    const subject = cmdSubject(CLUSTER, shard, 'counter', id, 'alice');
    const mallorys = cmdSubject(CLUSTER, shard, 'counter', id, 'mallory');
    const command = (n: number, client = 'alice#cafe0001'): Uint8Array =>
      encode(commandRequest({ type: 'ADD', by: 7 }, `replay-${n}`, client));
    const captured = command(1);
    expect(await ask(aliceParty, subject, captured)).toMatchObject({ ok: true, seq: 1 });
    // Mallory replaying alice's bytes: on alice's subject the server refuses her (requests end with their
    // sender's label, and her user may publish only under hers); on her own subject the worker refuses a
    // body that claims alice.
    await requestDenied(mallory, subject, captured);
    expect(errorOf(await ask(mallory, mallorys, captured))).toMatchObject({ name: 'InvalidRequestError' });
    // In her own name, the same command id is a duplicate: answered, nothing applied.
    expect(await ask(mallory, mallorys, command(1, 'mallory#cafe0002'))).toMatchObject({
      ok: true,
      seq: 1,
      duplicate: true,
    });
    // Control: alice's own retry is the same duplicate.
    expect(await ask(aliceParty, subject, captured)).toMatchObject({ ok: true, seq: 1, duplicate: true });

    // Seventy commands later, and passivated: the session remembers the command ids of the window in its
    // snapshot. Both are answered with their original seq, and applied once.
    for (let n = 2; n <= 71; n++)
      expect(await ask(aliceParty, subject, command(n))).toMatchObject({ ok: true, seq: n });
    await Promise.all(workers().map((w) => w.passivate()));
    expect(await ask(aliceParty, subject, command(71))).toMatchObject({ ok: true, seq: 71, duplicate: true });
    expect(await ask(aliceParty, subject, captured)).toMatchObject({ ok: true, seq: 1, duplicate: true });
    expect(errorOf(await ask(mallory, mallorys, captured))).toMatchObject({ name: 'InvalidRequestError' });
    acked.set(id, { seq: 71, n: 7 * 71 });
    // After the window (2 minutes, which cannot be shortened for this test: a worker refuses a journal whose
    // duplicate window is shorter), a command id is forgotten: its replay by its own client (the only sender
    // that can still send it) would be applied again as a new command. test/actors/dedup.test.ts shows it
    // on virtual time, 1 ms inside and 1 ms past the window.
    await clusterServes();
  });

  it('pre-created stream with an unsafe configuration: no client, reader or admin may create, change or delete a stream; the worker made them as cohort needs them', async () => {
    const journalName = journalStreamName(CLUSTER);
    const snapshots = kvStreamName(bucketName(CLUSTER, 'snapshots'));
    const config = (name: string, subjects: string[]): Uint8Array =>
      new TextEncoder().encode(
        JSON.stringify({ name, subjects, retention: 'interest', storage: 'memory', max_age: nanos(1_000) }),
      );
    // Whether or not the stream is there yet, the server refuses before JetStream looks.
    const attempts: [string, Uint8Array][] = [
      [`$JS.API.STREAM.CREATE.${journalName}`, config(journalName, [`cohort.${CLUSTER}.jrnl.>`])],
      // A stream capturing commands would acknowledge them in the workers' place.
      ['$JS.API.STREAM.CREATE.EVIL', config('EVIL', [`cohort.${CLUSTER}.cmd.>`])],
      [`$JS.API.STREAM.CREATE.${snapshots}`, config(snapshots, [`$KV.${bucketName(CLUSTER, 'snapshots')}.>`])],
      [`$JS.API.STREAM.UPDATE.${journalName}`, config(journalName, [`cohort.${CLUSTER}.>`])],
      [`$JS.API.STREAM.DELETE.${journalName}`, new Uint8Array()],
    ];
    for (const attacker of [mallory, reader, admin])
      for (const [subject, body] of attempts) await requestDenied(attacker, subject, body);

    // Control: the worker user created them at start, with cohort's settings.
    const seed = new TextEncoder().encode((await readFile(join(dir, 'admin.nk'), 'utf8')).trim());
    await using nc = await connectTest(server, {
      authenticator: nkeyAuthenticator(seed),
      inboxPrefix: adminInbox(),
      maxReconnectAttempts: 0,
    });
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(journalName);
    expect(info.config).toMatchObject({
      subjects: [`cohort.${CLUSTER}.jrnl.>`],
      retention: 'limits',
      storage: 'file',
      max_age: 0,
      duplicate_window: nanos(120_000),
      allow_rollup_hdrs: false,
    });
    expect((await jsm.streams.info(snapshots)).config).toMatchObject({ max_age: 0, storage: 'file' });
    // Commands are answered by a worker, not acknowledged by a stream.
    expect(['w1', 'w2']).toContain((await adds(alice, idOn(0, 'streams'), 1)).by);
    await clusterServes();
  });

  it('garbage timer-index entry: a client, the reader and the admin may not write the timers bucket; garbage the worker role writes is cleaned up by the worker that takes the shard over', async () => {
    const shard = 2;
    const id = idOn(shard, 'sleeper');
    await adds(alice, id, 1);
    const key = timerKey(shard, 'counter', id);
    const subject = `$KV.${TIMERS_BUCKET}.${key}`;
    for (const attacker of [mallory, reader, admin]) {
      await publishDenied(attacker, subject, encode('not a time'));
      await requestDenied(attacker, subject, encode(0));
    }
    const timers = await rogue.bus.kv({ bucket: TIMERS_BUCKET, create: false });
    expect(await timers.get(key)).toBeNull();

    // Control: the worker role may write there. The worker taking the shard over reads the garbage, wakes the
    // session to rewrite its entry (it has no timer: the entry goes), and leaves a key that names no session.
    await timers.put(key, encode('not a time'));
    await timers.put('junk', new Uint8Array([0xc1]));
    await Promise.all(workers().map((w) => w.passivate()));
    const to = otherThan(primaryOf(shard));
    await requestFailover(admin.bus, CLUSTER, { shard, to: to.id });
    await waitFor(() => settled() && to.serving.includes(shard), {
      what: `shard ${shard} handed to ${to.id}`,
      timeoutMs: 15_000,
    });
    await waitFor(async () => (await timers.get(key)) === null, { what: 'the garbage entry removed' });
    expect(await timers.get('junk')).not.toBeNull();
    await timers.delete('junk');
    await clusterServes();
  });

  it('`__proto__` document key: refused with EventRejectedError and nothing journaled; a raw body holding one is a DecodeError', async () => {
    const board = malloryClient.session('whiteboard', 'board-1');
    // Control: an ordinary shape is added.
    expect(await board.send({ type: 'ADD_SHAPE', id: 'ok', kind: 'rect', x: 1, y: 2 })).toMatchObject({ seq: 1 });
    for (const key of ['__proto__', 'constructor', 'prototype']) {
      const err = await board.send({ type: 'ADD_SHAPE', id: key, kind: 'rect', x: 1, y: 2 }).catch((e: unknown) => e);
      expect(err, key).toBeInstanceOf(EventRejectedError);
      expect((err as EventRejectedError).reason).toContain(JSON.stringify(key));
    }
    // A body whose event has an own `__proto__` key, packed by hand (cohort's encoder refuses to).
    const evil = JSON.parse(
      '{"kind":"command","event":{"type":"SET_TITLE","title":"x","__proto__":{"polluted":true}},"cmdId":"proto-1","client":"mallory#00000001"}',
    ) as unknown;
    const subject = cmdSubject(CLUSTER, shardOf('whiteboard', 'board-1', SHARDS), 'whiteboard', 'board-1', 'mallory');
    expect(errorOf(await ask(mallory, subject, pack(evil)))).toMatchObject({ name: 'DecodeError' });
    // The workers run in this process: nothing reached Object.prototype.
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    await Promise.all(workers().map((w) => w.passivate()));
    const { seq, document } = await alice.session('whiteboard', 'board-1').read();
    expect(seq).toBe(1);
    expect(Object.keys((document as { shapes: object }).shapes)).toEqual(['ok']);
    expect((document as { title: string }).title).toBe('Untitled');
    await clusterServes();
  });

  it('oversize bodies: over the server’s max_payload they are refused before they leave the attacker; a large one under it commits once', async () => {
    const id = idOn(3, 'oversize');
    const max = mallory.bus.server.maxPayload;
    const subject = cmdSubject(CLUSTER, 3, 'counter', id, 'mallory');
    const err = await malloryClient
      .session('counter', id)
      .send({ type: 'ADD', by: 1, pad: 'x'.repeat(max) })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PayloadTooLargeError);
    expect(() => mallory.bus.publish(subject, new Uint8Array(max + 1))).toThrow(PayloadTooLargeError);
    const seed = new TextEncoder().encode((await readFile(join(dir, 'client-mallory.nk'), 'utf8')).trim());
    await using nc = await connectTest(server, {
      authenticator: nkeyAuthenticator(seed),
      inboxPrefix: clientInbox('mallory'),
      maxReconnectAttempts: 0,
    });
    // nats.js will not send it either (the server would close the connection).
    expect(() => nc.publish(subject, new Uint8Array(max + 1))).toThrow(/max_payload/);
    expect(await journal.lastSeq(journalSubject(CLUSTER, 3, 'counter', id))).toBe(0);
    expect(malloryClient.state).toBe('NORMAL');

    // Control: half the limit is a large command like any other.
    const r = await malloryClient.session('counter', id).send({ type: 'ADD', by: 1, pad: 'x'.repeat(max / 2) });
    expect(r).toMatchObject({ seq: 1, duplicate: false });
    acked.set(id, { seq: 1, n: 1 });
    await clusterServes();
  });

  it('malformed bodies: each is answered with a typed error and the session keeps serving', async () => {
    const id = idOn(0, 'malformed');
    const shard = 0;
    const good = commandRequest({ type: 'ADD', by: 1 }, 'malformed-ok', 'mallory#00000001');
    // Nested arrays 2,000 deep, by hand: past any depth the decoder accepts.
    const deep = new Uint8Array([...Array<number>(2_000).fill(0x91), 0xc0]);
    const bodies: [what: string, body: Uint8Array, error: string][] = [
      ['not msgpack', new Uint8Array([0xc1, 0xff]), 'DecodeError'],
      ['truncated', encode(good).slice(0, 12), 'DecodeError'],
      ['empty', new Uint8Array(), 'DecodeError'],
      ['too deep', deep, 'DecodeError'],
      ['a string', encode('ADD 1'), 'InvalidRequestError'],
      ['no event', encode({ kind: 'command', cmdId: 'm1', client: 'mallory#00000001' }), 'InvalidRequestError'],
      ['a runtime event', encode({ ...good, event: { type: 'xstate.after.bell' } }), 'InvalidRequestError'],
      ['a read on cmd', encode(readRequest('mallory#00000001')), 'InvalidRequestError'],
      [
        'an unknown transaction step',
        encode({ kind: 'tx', op: 'hijack', txId: 't', client: 'm#1' }),
        'InvalidRequestError',
      ],
    ];
    const refusal = async (subject: string, body: Uint8Array): Promise<string | undefined> =>
      errorOf(await ask(mallory, subject, body))?.name;
    for (const [what, body, error] of bodies) {
      expect(await refusal(cmdSubject(CLUSTER, shard, 'counter', id, 'mallory'), body), `cmd: ${what}`).toBe(error);
      // On a read subject, whatever is not a read is refused the same way.
      const onRead = error === 'DecodeError' ? error : 'InvalidRequestError';
      if (what !== 'a read on cmd')
        expect(await refusal(readSubject(CLUSTER, shard, 'counter', id, 'mallory'), body), `read: ${what}`).toBe(
          onRead,
        );
    }
    expect(await refusal(readOnlySubject(CLUSTER, shard, 'counter', id, 'mallory'), deep)).toBe('DecodeError');
    expect(await refusal(cmdSubject(CLUSTER, shard, 'nope', id, 'mallory'), encode(good))).toBe(
      'UnknownApplicationError',
    );
    // A malformed failover request from the admin is refused by the leader, saying what it needs.
    expect(
      decode((await admin.bus.request(controlSubject(CLUSTER, 'failover'), deep, { timeout: 5_000 })).data),
    ).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/malformed/),
    });
    expect(await journal.lastSeq(journalSubject(CLUSTER, shard, 'counter', id))).toBe(0);

    // Control: the well-formed command commits.
    expect(await ask(mallory, cmdSubject(CLUSTER, shard, 'counter', id, 'mallory'), encode(good))).toMatchObject({
      ok: true,
      seq: 1,
    });
    acked.set(id, { seq: 1, n: 1 });
    await clusterServes();
  });

  it('a 10,000-character id: refused before it is sent, or by the server, or by the worker with a typed error; a 1,000-character id works', async () => {
    const long = 'x'.repeat(10_000);
    expect(() => malloryClient.session('counter', long)).toThrow(InvalidNameError);
    // Over the 4 KB a subject may have: the bus refuses to send it.
    expect(() => mallory.bus.publish(`cohort.${CLUSTER}.cmd.0.counter.${long}`, new Uint8Array([1]))).toThrow(
      InvalidNameError,
    );
    // Sent anyway with nats.js: the server cuts that connection off, and no one else.
    const seed = new TextEncoder().encode((await readFile(join(dir, 'client-mallory.nk'), 'utf8')).trim());
    const nc = await connectTest(server, {
      authenticator: nkeyAuthenticator(seed),
      inboxPrefix: clientInbox('mallory'),
      reconnect: false,
    });
    const told: string[] = [];
    void (async () => {
      for await (const s of nc.status()) if (s.type === 'error') told.push(String(s.error));
    })();
    nc.publish(`cohort.${CLUSTER}.cmd.0.counter.${long}`, new Uint8Array([1]));
    await nc.closed();
    expect(told).toContainEqual(expect.stringMatching(/maximum control line exceeded/i));
    // Under the subject limit but over the 1 KB an id token may have: the worker answers with a typed error.
    const id2k = 'y'.repeat(2_000);
    const body = encode(commandRequest({ type: 'ADD', by: 1 }, 'long-1', 'mallory#00000001'));
    expect(errorOf(await ask(mallory, `cohort.${CLUSTER}.cmd.0.counter.${id2k}.mallory`, body))).toMatchObject({
      name: 'InvalidNameError',
    });
    // Ids in the body: command id, client, event type.
    const shard = 1;
    const id = idOn(shard, 'long');
    const subject = cmdSubject(CLUSTER, shard, 'counter', id, 'mallory');
    for (const bad of [
      commandRequest({ type: 'ADD', by: 1 }, long, 'mallory#00000001'),
      commandRequest({ type: 'ADD', by: 1 }, 'long-2', `mallory#${long}`),
      commandRequest({ type: long }, 'long-3', 'mallory#00000001'),
    ])
      expect(errorOf(await ask(mallory, subject, encode(bad)))).toMatchObject({ name: 'InvalidRequestError' });
    expect(await journal.lastSeq(journalSubject(CLUSTER, shard, 'counter', id))).toBe(0);

    // Control: an id of 1,000 characters is an id like any other.
    const id1k = 'z'.repeat(1_000);
    const r = await malloryClient.session('counter', id1k).send({ type: 'ADD', by: 3 });
    expect(r).toMatchObject({ seq: 1, duplicate: false });
    expect(await alice.session('counter', id1k).read()).toMatchObject({ seq: 1, document: { n: 3 } });
    acked.set(id1k, { seq: 1, n: 3 });
    await clusterServes();
  });

  it('a flood of garbage heartbeats: a client’s is denied; 1,000 from the worker role change no view, the workers keep serving, and each logs one warning, not a thousand', async () => {
    for (let i = 0; i < 5; i++)
      await publishDenied(mallory, heartbeatSubject(CLUSTER, `flood${i}`), new Uint8Array([0xc1]));
    const before = await waitSettled('settled');
    const heard = await heartbeats();
    const from = { w1: logs['w1']!.length, w2: logs['w2']!.length };
    const garbage: [subject: string, body: Uint8Array, headers?: Record<string, string>][] = [
      [heartbeatSubject(CLUSTER, 'rogue'), new Uint8Array([0xc1, 0xff, 0x00])],
      [heartbeatSubject(CLUSTER, 'rogue'), encode({ id: 'rogue', status: 'joining' })],
      [
        heartbeatSubject(CLUSTER, 'rogue'),
        encode({ ...(decode(heartbeat('rogue', 'joining', 0)) as object), status: 'boss' }),
      ],
      // Well formed, but for another member than its subject's: forged.
      [heartbeatSubject(CLUSTER, 'rogue'), heartbeat('ghost', 'joining', before.viewId)],
      [heartbeatSubject(CLUSTER, 'rogue'), heartbeat('w2', 'leaving', before.viewId)],
      // On a member's own subject, echoes that prove nothing.
      [heartbeatSubject(CLUSTER, 'w1'), new Uint8Array([0xc1]), { 'Cohort-Beat': '99999999' }],
    ];
    const sent = 1_000;
    const flooding = (async () => {
      for (let i = 0; i < sent; i++) {
        const [subject, body, headers] = garbage[i % garbage.length]!;
        rogue.bus.publish(subject, body, headers === undefined ? undefined : { headers });
        if (i % 100 === 99) await rogue.bus.flush();
      }
    })();
    // The members serve through it.
    await adds(alice, idOn(0, 'flood'), 1);
    await adds(alice, idOn(1, 'flood'), 1);
    await flooding;
    await rogue.bus.flush();
    const floodSubjects = new Set(garbage.map(([s]) => s));
    const isGarbage = (h: { subject: string; id: unknown }): boolean =>
      floodSubjects.has(h.subject) && !(h.subject === heartbeatSubject(CLUSTER, 'w1') && h.id === 'w1');
    await waitFor(() => heard.seen.filter(isGarbage).length >= sent, { what: 'the flood delivered' });
    await freshBeats(heard.seen, heard.seen.length);
    heard.stop();
    expect(rogue.denied).toEqual([]);
    expect(settled()).toMatchObject({ viewId: before.viewId });
    expect(w1.view!.members.map((m) => m.id)).toEqual(['w1', 'w2']);
    // Rate-limited: one warning per worker for the whole flood (then at most one every 10 s, with a count).
    for (const id of ['w1', 'w2'] as const) {
      const warned = logs[id]!.slice(from[id]).filter((l) => l.msg.startsWith('heartbeat ignored'));
      expect(warned.length, id).toBe(1);
    }
    await clusterServes();
  });
});
