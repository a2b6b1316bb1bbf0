/**
 * Lease fencing on the commit path (DESIGN.md section 4): a primary that
 * cannot prove it still is one must not acknowledge a write.
 *
 * The worker's own primacy is its membership's Lease, which the public
 * Worker handle does not expose; so most cases host a session directly, with
 * hand-made SessionDeps over a memory-bus journal and session store and a
 * Primacy the test controls. The last case runs a real worker and only
 * stubs its lease's answers, to show the worker does fence through it.
 */
import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { connect, defineApplication, SessionMovedError, shardOf, startWorker } from '../../index.js';
import {
  type CommandReply,
  fromErrorBody,
  HEADER,
  HostedSession,
  type JournalRecord,
  Lease,
  loadSession,
  type Primacy,
  type SessionDeps,
  SessionStore,
} from '../../internal.js';
import { systemClock } from '../../bus/clock.js';
import { decode } from '../../bus/codec.js';
import { TimeoutError } from '../../bus/errors.js';
import { createMemoryBus, createMemoryServer } from '../../bus/memory/mod.js';
import { journalStreamFilter, journalStreamName, journalSubject } from '../../bus/subjects.js';
import type { Bus, Journal, JournalEntry } from '../../bus/types.js';
import { cleanupAfterEach } from '../cleanup.js';
import { counterMachine } from '../fixtures/counter.js';

const app = defineApplication({ name: 'counter', machine: counterMachine, unusedSessionLifetime: 60_000 });
const silent = pino({ level: 'silent' });

/** A Primacy whose every answer the test sets, and which records how it was asked. */
class FakePrimacy implements Primacy {
  epoch: number | null = 3;
  lease = true;
  still = false;
  readonly epochOfCalls: number[] = [];
  leaseHeldCalls = 0;
  readonly stillPrimaryCalls: [number, number][] = [];

  constructor(readonly self: string) {}

  epochOf(shard: number): number | null {
    this.epochOfCalls.push(shard);
    return this.epoch;
  }

  leaseHeld(): boolean {
    this.leaseHeldCalls++;
    return this.lease;
  }

  async stillPrimary(shard: number, epoch: number): Promise<boolean> {
    this.stillPrimaryCalls.push([shard, epoch]);
    return this.still;
  }
}

interface TestHost extends SessionDeps {
  readonly evicted: HostedSession[];
}

const track = cleanupAfterEach();

let cluster: string;
let bus: Bus;
let journal: Journal;
let store: SessionStore;
/** Every append through the journal, whichever session made it. */
let appends: string[];
/** Runs right after an append has landed (and before its caller sees the ack). */
let afterAppend: (() => void) | undefined;

beforeEach(async () => {
  cluster = `p${randomUUID().slice(0, 8)}`;
  bus = track(createMemoryBus());
  journal = await bus.journal({ name: journalStreamName(cluster), subjects: [journalStreamFilter(cluster)] });
  const [snapshots, blobs] = await Promise.all([
    bus.kv({ bucket: `cohort_${cluster}_snapshots` }),
    bus.blobs({ bucket: `cohort_${cluster}_blobs` }),
  ]);
  store = new SessionStore({ kv: snapshots, blobs, maxPayload: bus.server.maxPayload });
  appends = [];
  afterAppend = undefined;
  const append = journal.append.bind(journal);
  vi.spyOn(journal, 'append').mockImplementation(async (subject, data, options) => {
    const ack = await append(subject, data, options);
    appends.push(subject);
    afterAppend?.();
    return ack;
  });
});

afterEach(() => {
  vi.restoreAllMocks();
});

function hostFor(primacy: Primacy | undefined): TestHost {
  const evicted: HostedSession[] = [];
  return {
    workerId: 'host-id',
    bus,
    journal,
    store,
    clock: systemClock,
    cluster,
    log: silent,
    directory: { forget: (s) => evicted.push(s) },
    primacy,
    replicas: undefined,
    sessionTimeout: 500,
    wakeups: { update: async () => undefined },
    evicted,
  };
}

/** Activates a session the way a worker does: snapshot plus journal. */
async function activate(host: SessionDeps, id: string): Promise<HostedSession> {
  const shard = shardOf(app.name, id);
  const loaded = await loadSession(host, app, id, shard, Date.now());
  return new HostedSession({ deps: host, app, id, shard, loaded });
}

function send(session: HostedSession, cmdId: string, by = 2): Promise<CommandReply> {
  return session.enqueue(() =>
    session.command({ kind: 'command', event: { type: 'ADD', by }, cmdId, client: 'test-client' }, Date.now()),
  );
}

async function journalOf(id: string): Promise<{ entry: JournalEntry; record: JournalRecord }[]> {
  const out: { entry: JournalEntry; record: JournalRecord }[] = [];
  for await (const entry of journal.read(journalSubject(cluster, shardOf(app.name, id), app.name, id))) {
    out.push({ entry, record: decode(entry.data) as JournalRecord });
  }
  return out;
}

function cmdIdsOf(entries: readonly { record: JournalRecord }[]): string[] {
  return entries.flatMap((e) => e.record.events.map((x) => x.event.meta.cmdId));
}

/** The reply must be a refusal the client would rebuild as SessionMovedError (and retry). */
function expectMoved(reply: CommandReply, id: string): void {
  expect(reply.ok).toBe(false);
  if (reply.ok) return;
  expect(reply.error.name).toBe('SessionMovedError');
  expect(reply.error.retryable).toBe(true);
  const rebuilt = fromErrorBody(reply.error);
  expect(rebuilt).toBeInstanceOf(SessionMovedError);
  expect(rebuilt).toMatchObject({ app: app.name, id });
}

describe('lease fencing on the commit path', () => {
  it('(a) lease lapsed and the stored view no longer names it: refused, nothing journaled', async () => {
    const primacy = new FakePrimacy('w-a');
    primacy.lease = false;
    primacy.still = false;
    const host = hostFor(primacy);
    const id = 'acct-a';
    const session = await activate(host, id);

    const reply = await send(session, 'cmd-a');

    expectMoved(reply, id);
    expect(primacy.stillPrimaryCalls).toEqual([[session.shard, 3]]);
    expect(appends).toEqual([]);
    expect(await journalOf(id)).toEqual([]);
    expect(await journal.lastSeq(session.subject)).toBe(0);
    // Not applied here, and the copy is dropped so it reloads before it serves again.
    expect(session.seq).toBe(0);
    expect(session.evicted).toBe(true);
    expect(host.evicted).toEqual([session]);
  });

  describe('(b) lease held before the append, lost after it, and the view moved', () => {
    /** Commits `cmdId` while the lease lapses during its append: landed in the journal, not acknowledged. */
    async function ambiguousWrite(
      id: string,
      cmdId: string,
    ): Promise<{ primacy: FakePrimacy; host: TestHost; session: HostedSession }> {
      const primacy = new FakePrimacy('w-b');
      primacy.lease = true;
      primacy.still = false;
      const host = hostFor(primacy);
      const session = await activate(host, id);
      afterAppend = () => {
        primacy.lease = false;
      };
      const reply = await send(session, cmdId);
      afterAppend = undefined;

      expectMoved(reply, id);
      // Proven twice: by the lease before the append; after it, the lease is gone and the stored view says no.
      expect(primacy.leaseHeldCalls).toBe(2);
      expect(primacy.stillPrimaryCalls).toEqual([[session.shard, 3]]);
      // The write is in the journal (ambiguous), but was not applied to the copy, which is dropped.
      const entries = await journalOf(id);
      expect(cmdIdsOf(entries)).toEqual([cmdId]);
      expect(entries[0]!.entry.headers[HEADER.epoch]).toBe('3');
      expect(session.seq).toBe(0);
      expect(session.evicted).toBe(true);
      expect(host.evicted).toEqual([session]);
      return { primacy, host, session };
    }

    it('a retry at the same worker with primacy restored, after reload, is a duplicate applied once', async () => {
      const id = 'acct-b1';
      const { primacy, host } = await ambiguousWrite(id, 'cmd-b');
      primacy.lease = true;
      const appendsBefore = appends.length;

      const reloaded = await activate(host, id);
      const retry = await send(reloaded, 'cmd-b');

      expect(retry).toEqual({ ok: true, seq: 1, duplicate: true, by: 'w-b', epoch: 3 });
      expect(appends.length).toBe(appendsBefore);
      expect(cmdIdsOf(await journalOf(id))).toEqual(['cmd-b']);
      expect(reloaded.read(undefined)).toMatchObject({ ok: true, seq: 1, document: { n: 2, log: ['+2'] } });
      expect(reloaded.evicted).toBe(false);
    });

    it('a retry at a successor whose copy predates the write is deduplicated by the journal, and applied once', async () => {
      const id = 'acct-b2';
      const successor = new FakePrimacy('w-next');
      successor.epoch = 4;
      successor.lease = true;
      const successorHost = hostFor(successor);
      // Loaded before the ambiguous write landed: it does not know the command.
      const stale = await activate(successorHost, id);
      await ambiguousWrite(id, 'cmd-b');

      const retry = await send(stale, 'cmd-b');

      expect(retry).toEqual({ ok: true, seq: 1, duplicate: true, by: 'w-next', epoch: 4 });
      expect(cmdIdsOf(await journalOf(id))).toEqual(['cmd-b']);
      // The stale copy recognises it is stale and is dropped; the next activation has the event once.
      expect(stale.evicted).toBe(true);
      expect(successorHost.evicted).toEqual([stale]);
      const fresh = await activate(successorHost, id);
      expect(fresh.read(undefined)).toMatchObject({ ok: true, seq: 1, document: { n: 2, log: ['+2'] } });
      // And it goes on from there: the next command is the second event, not a second copy of the first.
      expect(await send(fresh, 'cmd-b2', 5)).toMatchObject({ ok: true, seq: 2, by: 'w-next', epoch: 4 });
      expect(await send(fresh, 'cmd-b')).toEqual({ ok: true, seq: 1, duplicate: true, by: 'w-next', epoch: 4 });
      expect(fresh.read(undefined)).toMatchObject({ ok: true, seq: 2, document: { n: 7, log: ['+2', '+5'] } });
      expect(cmdIdsOf(await journalOf(id))).toEqual(['cmd-b', 'cmd-b2']);
    });
  });

  it('(c) lease lapsed but the stored view still names it: acknowledged, stamped with its epoch and member id', async () => {
    const primacy = new FakePrimacy('w-c');
    primacy.epoch = 7;
    primacy.lease = false;
    primacy.still = true;
    const host = hostFor(primacy);
    const id = 'acct-c';
    const session = await activate(host, id);

    const reply = await send(session, 'cmd-c');

    expect(reply).toEqual({ ok: true, seq: 1, by: 'w-c', epoch: 7 });
    // Checked against the stored view before the append and again after it.
    expect(primacy.stillPrimaryCalls).toEqual([
      [session.shard, 7],
      [session.shard, 7],
    ]);
    const entries = await journalOf(id);
    expect(entries).toHaveLength(1);
    expect(entries[0]!.entry.headers[HEADER.epoch]).toBe('7');
    // The primacy's member id, not the host's own id.
    expect(entries[0]!.entry.headers[HEADER.worker]).toBe('w-c');
    expect(entries[0]!.entry.headers[HEADER.command]).toBe('cmd-c');
    expect(cmdIdsOf(entries)).toEqual(['cmd-c']);
    expect(session.read(undefined)).toMatchObject({ ok: true, seq: 1, document: { n: 2 } });
    expect(session.evicted).toBe(false);
    expect(host.evicted).toEqual([]);
  });

  it('with the lease held the stored view is not consulted', async () => {
    const primacy = new FakePrimacy('w-l');
    primacy.lease = true;
    primacy.still = false;
    const session = await activate(hostFor(primacy), 'acct-l');

    expect(await send(session, 'cmd-l')).toEqual({ ok: true, seq: 1, by: 'w-l', epoch: 3 });
    expect(primacy.leaseHeldCalls).toBe(2);
    expect(primacy.stillPrimaryCalls).toEqual([]);
  });

  it('(e) a retry of a command this copy remembers, once it is no longer primary: moved, not a duplicate', async () => {
    // A deposed primary's copy may remember a command whose entry landed after a newer epoch's marker, which nobody
    // applies: "duplicate" from it would lose the command. Only a proved primary answers from what it remembers.
    const primacy = new FakePrimacy('w-e');
    const host = hostFor(primacy);
    const id = 'acct-e';
    const session = await activate(host, id);
    expect(await send(session, 'cmd-e')).toMatchObject({ ok: true, seq: 1 });
    // Positive control: still primary, the retry is the duplicate it is.
    expect(await send(session, 'cmd-e')).toMatchObject({ ok: true, seq: 1, duplicate: true, epoch: 3 });
    primacy.epoch = null;
    const retried = await send(session, 'cmd-e');
    expectMoved(retried, id);
    expect(session.evicted).toBe(true);
    expect(cmdIdsOf(await journalOf(id))).toEqual(['cmd-e']);
  });

  it('(d) not primary in the latest view: refused without asking the stored view', async () => {
    const primacy = new FakePrimacy('w-d');
    primacy.epoch = null;
    // Were the view consulted, it would say yes: the refusal must come from epochOf alone.
    primacy.lease = true;
    primacy.still = true;
    const host = hostFor(primacy);
    const id = 'acct-d';
    const session = await activate(host, id);

    const reply = await send(session, 'cmd-d');

    expectMoved(reply, id);
    expect(primacy.epochOfCalls).toContain(session.shard);
    expect(primacy.stillPrimaryCalls).toEqual([]);
    expect(appends).toEqual([]);
    expect(await journalOf(id)).toEqual([]);
    expect(session.seq).toBe(0);
    expect(session.evicted).toBe(true);
    expect(host.evicted).toEqual([session]);
  });
});

describe('a worker fences through its membership', () => {
  it('refuses (the client retries until it times out) while its membership cannot prove primacy, and stamps what it journals', async () => {
    const server = createMemoryServer();
    const cluster = `p${randomUUID().slice(0, 8)}`;
    const shardCount = 8;
    const worker = track(
      await startWorker({
        bus: track(createMemoryBus({ server })),
        cluster,
        applications: [app],
        heartbeatInterval: 100,
        sessionTimeout: 500,
        shardCount,
      }),
    );
    expect(worker.serving).toHaveLength(shardCount);
    const client = track(
      await connect({
        bus: track(createMemoryBus({ server })),
        cluster,
        shardCount,
        timeout: 400,
        attemptTimeout: 200,
      }),
    );
    const id = 'acct-w';
    const shard = shardOf(app.name, id, shardCount);
    const reader = track(createMemoryBus({ server }));
    const workerJournal = await reader.journal({
      name: journalStreamName(cluster),
      subjects: [journalStreamFilter(cluster)],
    });
    const subject = journalSubject(cluster, shard, app.name, id);

    const leaseHeld = vi.spyOn(Lease.prototype, 'leaseHeld').mockReturnValue(false);
    const stillPrimary = vi.spyOn(Lease.prototype, 'stillPrimary').mockResolvedValue(false);
    const refused = await client
      .session(app.name, id)
      .send({ type: 'ADD', by: 1 })
      .then(
        () => null,
        (err: unknown) => err,
      );
    // SessionMovedError is retryable: the client keeps trying the same command until its deadline.
    expect(refused).toBeInstanceOf(TimeoutError);
    expect(stillPrimary).toHaveBeenCalledWith(shard, worker.view!.shards[shard]!.epoch);
    expect(await workerJournal.lastSeq(subject)).toBe(0);

    leaseHeld.mockRestore();
    stillPrimary.mockRestore();
    const epoch = worker.view!.shards[shard]!.epoch;
    const ok = await client.session(app.name, id).send({ type: 'ADD', by: 1 }, { timeout: 3_000 });
    expect(ok).toMatchObject({ seq: 1, duplicate: false, by: worker.id, epoch });
    const entries: JournalEntry[] = [];
    for await (const e of workerJournal.read(subject)) entries.push(e);
    expect(entries).toHaveLength(1);
    expect(entries[0]!.headers[HEADER.worker]).toBe(worker.id);
    expect(entries[0]!.headers[HEADER.epoch]).toBe(String(epoch));
  });
});
