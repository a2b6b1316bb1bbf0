import { afterEach, describe, expect, it } from 'vitest';
import {
  BusClosedError,
  InvalidNameError,
  KeyExistsError,
  NoRespondersError,
  PayloadTooLargeError,
  StaleRevisionError,
  StreamConfigMismatchError,
  TimeoutError,
  WrongLastSequenceError,
} from '../../bus/errors.js';
import type { Bus, BusStatus, Delivery, JournalEntry, KvEntry } from '../../bus/types.js';
import { waitFor } from '../waitFor.js';

/** What the contract needs from an implementation: fresh connections to one server. */
export interface ContractTarget {
  connect(): Promise<Bus>;
}

const enc = new TextEncoder();
const dec = new TextDecoder();
const bytes = (s: string): Uint8Array => enc.encode(s);
const text = (b: Uint8Array): string => dec.decode(b);

async function collectAll<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

let unique = 0;
/** Names no other test (or earlier run on the same server) uses. */
function fresh(prefix: string): string {
  return `${prefix}${process.pid}x${Date.now().toString(36)}x${unique++}`;
}

/**
 * The bus contract: every behaviour cohort relies on, run unchanged against
 * the memory bus and a real nats-server.
 */
export function busContract(name: string, target: () => ContractTarget): void {
  describe(`bus contract (${name})`, () => {
    const open: Bus[] = [];
    async function connect(): Promise<Bus> {
      const bus = await target().connect();
      open.push(bus);
      return bus;
    }
    afterEach(async () => {
      await Promise.all(open.splice(0).map((b) => b.close()));
    });

    describe('core messaging', () => {
      it('routes by exact subject, * and > wildcards', async () => {
        const bus = await connect();
        const p = fresh('w');
        const got: Record<string, string[]> = { star: [], tail: [], exact: [], lead: [] };
        bus.subscribe(`${p}.*.c`, (m) => got.star!.push(m.subject));
        bus.subscribe(`${p}.>`, (m) => got.tail!.push(m.subject));
        bus.subscribe(`${p}.b`, (m) => got.exact!.push(m.subject));
        bus.subscribe(`*.b.c`, (m) => m.subject.startsWith(p) && got.lead!.push(m.subject));
        await bus.flush();
        for (const s of ['b.c', 'b', 'x.c', 'b.c.d']) bus.publish(`${p}.${s}`, bytes(s));
        bus.publish(p, bytes('bare')); // '>' needs at least one more token
        await bus.flush();
        await waitFor(() => got.tail!.length === 4, { what: 'deliveries' });
        expect(got.star).toEqual([`${p}.b.c`, `${p}.x.c`]);
        expect(got.tail).toEqual([`${p}.b.c`, `${p}.b`, `${p}.x.c`, `${p}.b.c.d`]);
        expect(got.exact).toEqual([`${p}.b`]);
        expect(got.lead).toEqual([`${p}.b.c`]); // '*' is one whole token: p, never p's parts
      });

      it('counts what reaches its subscriptions (received); what only it publishes does not count', async () => {
        const a = await connect();
        const b = await connect();
        const s = fresh('rc');
        const got: string[] = [];
        b.subscribe(s, (m) => got.push(text(m.data)));
        await b.flush();
        const [before, sender] = [b.received, a.received];
        for (const x of ['1', '2', '3']) a.publish(s, bytes(x));
        await a.flush();
        await waitFor(() => got.length === 3, { what: 'three deliveries' });
        expect(b.received - before).toBe(3);
        expect(a.received).toBe(sender);
      });

      it('delivers across connections, in publish order', async () => {
        const a = await connect();
        const b = await connect();
        const s = fresh('o');
        const seen: number[] = [];
        let probed = false;
        b.subscribe(s, (m) => (text(m.data) === 'probe' ? (probed = true) : seen.push(Number(text(m.data)))));
        await b.flush();
        // On a cluster, interest reaches other nodes a moment after the subscriber's own: wait for it.
        await waitFor(
          async () => {
            a.publish(s, bytes('probe'));
            await a.flush();
            return probed;
          },
          { what: 'the subscription to be known across the cluster' },
        );
        for (let i = 0; i < 100; i++) a.publish(s, bytes(String(i)));
        await a.flush();
        await waitFor(() => seen.length === 100, { what: '100 messages' });
        expect(seen).toEqual(Array.from({ length: 100 }, (_, i) => i));
      });

      it('gives each message to exactly one member of a queue group, and to every plain subscriber', async () => {
        const pub = await connect();
        const members = [await connect(), await connect(), await connect()];
        const s = fresh('q');
        const byMember: string[][] = members.map(() => []);
        const plain: string[] = [];
        members.forEach((m, i) => m.subscribe(s, (msg) => byMember[i]!.push(text(msg.data)), { queue: 'workers' }));
        members[0]!.subscribe(s, (msg) => plain.push(text(msg.data)));
        await Promise.all(members.map((m) => m.flush()));
        const sent = Array.from({ length: 60 }, (_, i) => `m${i}`);
        for (const x of sent) pub.publish(s, bytes(x));
        await pub.flush();
        await waitFor(() => plain.length === 60 && byMember.flat().length >= 60, { what: 'queue deliveries' });
        await Promise.all(members.map((m) => m.flush()));
        const all = byMember.flat();
        expect(all.length).toBe(60);
        expect(new Set(all)).toEqual(new Set(sent));
        expect(plain).toEqual(sent);
      });

      it('answers requests, with headers both ways', async () => {
        const server = await connect();
        const client = await connect();
        const s = fresh('r');
        server.subscribe(s, (m) => {
          m.respond(bytes(`echo:${text(m.data)}`), {
            headers: { 'Cohort-Seq': '7', 'X-Seen': m.headers['X-Who'] ?? '' },
          });
        });
        await server.flush();
        const reply = await client.request(s, bytes('hi'), { timeout: 2_000, headers: { 'X-Who': 'web-1' } });
        expect(text(reply.data)).toBe('echo:hi');
        expect(reply.headers['Cohort-Seq']).toBe('7');
        expect(reply.headers['X-Seen']).toBe('web-1');
      });

      it('an answer given after the responder closed its connection is dropped, not thrown', async () => {
        const server = await connect();
        const client = await connect();
        const s = fresh('late');
        const held: Delivery[] = [];
        server.subscribe(s, (m) => void held.push(m));
        await server.flush();
        const asked = client.request(s, bytes('q'), { timeout: 300 }).catch((e: unknown) => e);
        await waitFor(() => held.length === 1, { what: 'the request to arrive' });
        await server.close();
        expect(held[0]!.respond(bytes('too late'))).toBe(false);
        expect(await asked).toBeInstanceOf(TimeoutError);
      });

      it('answers only under the inbox prefix: a reply subject elsewhere (a journal, a bucket) is refused and counted', async () => {
        const server = await connect();
        const forger = await connect();
        const s = fresh('reflect');
        const results: boolean[] = [];
        server.subscribe(s, (m) => void results.push(m.respond(bytes('answer'))));
        await server.flush();
        const reflected: string[] = [];
        const target = fresh('victim');
        forger.subscribe(`${target}.>`, (m) => void reflected.push(m.subject));
        forger.subscribe('$KV.>', (m) => void reflected.push(m.subject));
        await forger.flush();
        for (const reply of [`${target}.jrnl.0.app.x`, '$KV.bucket.key', '_INBOXX.1', 'INBOX.1']) {
          forger.publish(s, bytes('q'), { reply });
        }
        await forger.flush();
        await waitFor(() => results.length === 4, { what: 'the four forged requests to arrive' });
        expect(results).toEqual([false, false, false, false]);
        expect(server.refusedReplies).toBe(4);
        // Positive control: a real request, whose reply subject is the requester's inbox, is answered.
        const reply = await forger.request(s, bytes('q'), { timeout: 2_000 });
        expect(text(reply.data)).toBe('answer');
        expect(results[4]).toBe(true);
        await server.flush();
        expect(reflected).toEqual([]);
        expect(server.refusedReplies).toBe(4);
      });

      it('tells no-responders apart from a timeout', async () => {
        const bus = await connect();
        const s = fresh('n');
        const nobody = await bus.request(`${s}.nobody`, bytes('x'), { timeout: 2_000 }).catch((e: unknown) => e);
        expect(nobody).toBeInstanceOf(NoRespondersError);
        expect((nobody as NoRespondersError).subject).toBe(`${s}.nobody`);
        expect((nobody as NoRespondersError).retryable).toBe(true);

        bus.subscribe(`${s}.silent`, () => undefined);
        await bus.flush();
        const started = Date.now();
        const silent = await bus.request(`${s}.silent`, bytes('x'), { timeout: 150 }).catch((e: unknown) => e);
        expect(silent).toBeInstanceOf(TimeoutError);
        expect(Date.now() - started).toBeGreaterThanOrEqual(140);
      });

      it('round-trips text headers, keeping the case of names', async () => {
        const bus = await connect();
        const s = fresh('h');
        const got: Delivery[] = [];
        bus.subscribe(s, (m) => got.push(m));
        await bus.flush();
        const headers = {
          'Cohort-Type': 'command',
          'Cohort-Session': 'ledger/alice',
          'X-Mixed-Case': 'a value, with: punctuation',
        };
        bus.publish(s, bytes('x'), { headers });
        bus.publish(s, bytes('y'));
        await bus.flush();
        await waitFor(() => got.length === 2);
        expect(got[0]!.headers).toMatchObject(headers);
        expect(got[1]!.headers).toEqual({});
      });

      it('refuses bad subjects, headers and oversized bodies with typed errors, and keeps serving', async () => {
        const bus = await connect();
        const s = fresh('bad');
        for (const subject of ['', 'a..b', 'a.*', 'a.>', 'a b', '.a', 'a.', 'a\tb']) {
          expect(() => bus.publish(subject, bytes('x')), JSON.stringify(subject)).toThrow(InvalidNameError);
        }
        expect(() => bus.subscribe('a.>.b', () => undefined)).toThrow(InvalidNameError);
        expect(() => bus.publish(s, bytes('x'), { headers: { 'Bad Name': 'v' } })).toThrow(InvalidNameError);
        expect(() => bus.publish(s, bytes('x'), { headers: { Ok: 'line\r\nInjected: yes' } })).toThrow(
          InvalidNameError,
        );
        const big = new Uint8Array(bus.server.maxPayload + 1);
        expect(() => bus.publish(s, big)).toThrow(PayloadTooLargeError);
        await expect(bus.request(s, big, { timeout: 500 })).rejects.toBeInstanceOf(PayloadTooLargeError);
        // A body that fits alone but not with its headers counts them, as the server does.
        const snug = new Uint8Array(bus.server.maxPayload - 8);
        const headers = { 'Cohort-Session': 'counter/some-session' };
        expect(() => bus.publish(s, snug, { headers })).toThrow(PayloadTooLargeError);
        await expect(bus.request(s, snug, { timeout: 500, headers })).rejects.toBeInstanceOf(PayloadTooLargeError);
        // still serving
        const got: string[] = [];
        bus.subscribe(s, (m) => got.push(text(m.data)));
        await bus.flush();
        bus.publish(s, bytes('after'));
        await bus.flush();
        await waitFor(() => got.length === 1);
        expect(got).toEqual(['after']);
      });

      it('keeps delivering after a handler throws, and reports it', async () => {
        const bus = await connect();
        const s = fresh('t');
        const statuses: BusStatus[] = [];
        bus.onStatus((st) => statuses.push(st));
        const got: string[] = [];
        bus.subscribe(s, (m) => {
          got.push(text(m.data));
          if (text(m.data) === 'boom') throw new Error('handler failed');
        });
        await bus.flush();
        for (const x of ['a', 'boom', 'b']) bus.publish(s, bytes(x));
        await bus.flush();
        await waitFor(() => got.length === 3);
        expect(got).toEqual(['a', 'boom', 'b']);
        expect(statuses.filter((st) => st.type === 'handler-error')).toHaveLength(1);
      });

      it('stops delivering after unsubscribe', async () => {
        const bus = await connect();
        const s = fresh('u');
        const got: string[] = [];
        const sub = bus.subscribe(s, (m) => got.push(text(m.data)));
        await bus.flush();
        bus.publish(s, bytes('1'));
        await bus.flush();
        await waitFor(() => got.length === 1);
        sub.unsubscribe();
        const witness: string[] = [];
        bus.subscribe(s, (m) => witness.push(text(m.data)));
        await bus.flush();
        bus.publish(s, bytes('2'));
        await bus.flush();
        await waitFor(() => witness.length === 1);
        expect(got).toEqual(['1']);
      });

      it('drain answers requests already routed to it, then takes no more', async () => {
        const server = await connect();
        const client = await connect();
        const s = fresh('d');
        const sub = server.subscribe(s, (m) => m.respond(bytes(`ok:${text(m.data)}`)));
        await server.flush();
        // On a cluster, interest reaches other nodes a moment after the subscriber's own: wait for it.
        await waitFor(
          () =>
            client.request(s, bytes('probe'), { timeout: 2_000 }).then(
              () => true,
              () => false,
            ),
          {
            what: 'the responder to be known across the cluster',
          },
        );
        // Published before the drain: on their way (or queued) when it starts, and answered all the same.
        const early = Array.from({ length: 20 }, (_, i) => client.request(s, bytes(String(i)), { timeout: 2_000 }));
        await client.flush();
        await sub.drain();
        expect((await Promise.all(early)).map((m) => text(m.data))).toEqual(
          Array.from({ length: 20 }, (_, i) => `ok:${i}`),
        );
        await expect(client.request(s, bytes('late'), { timeout: 2_000 })).rejects.toBeInstanceOf(NoRespondersError);
      });

      it('refuses every operation once closed', async () => {
        const bus = await connect();
        await bus.close();
        await bus.close(); // idempotent
        expect(() => bus.publish('a.b', bytes('x'))).toThrow(BusClosedError);
        await expect(bus.request('a.b', bytes('x'), { timeout: 100 })).rejects.toBeInstanceOf(BusClosedError);
        await expect(bus.kv({ bucket: fresh('closed') })).rejects.toBeInstanceOf(BusClosedError);
      });
    });

    describe('journal', () => {
      async function journal(bus: Bus) {
        const name = fresh('J');
        return bus.journal({ name, subjects: [`${name}.>`] });
      }

      it('follows a filter live: the backlog from a sequence, then each new entry, one at a time, until stopped', async () => {
        const bus = await connect();
        const writer = await connect();
        const j = await journal(bus);
        const w = await writer.journal({ name: j.name, subjects: [`${j.name}.>`] });
        await w.append(`${j.name}.x.1`, bytes('old1'));
        await w.append(`${j.name}.y.1`, bytes('other'));
        await w.append(`${j.name}.x.2`, bytes('old2'));
        const got: string[] = [];
        let busy = false;
        let overlapped = false;
        const follow = await j.follow(`${j.name}.x.*`, { fromSeq: 2 }, async (e) => {
          if (busy) overlapped = true;
          busy = true;
          await new Promise((r) => setTimeout(r, 2));
          got.push(`${e.seq}:${text(e.data)}`);
          busy = false;
        });
        const live = await connect();
        const onlyNew: number[] = [];
        const fresh = await (
          await live.journal({ name: j.name, subjects: [`${j.name}.>`] })
        ).follow(`${j.name}.>`, {}, (e) => {
          onlyNew.push(e.seq);
        });
        for (let i = 3; i <= 6; i++) await w.append(`${j.name}.x.${i}`, bytes(`new${i}`));
        await waitFor(() => got.length === 5, { what: 'backlog and live entries' });
        expect(got).toEqual(['3:old2', '4:new3', '5:new4', '6:new5', '7:new6']);
        expect(overlapped).toBe(false);
        await waitFor(() => onlyNew.length === 4, { what: 'only the new entries' });
        expect(onlyNew).toEqual([4, 5, 6, 7]);
        follow.stop();
        fresh.stop();
        // A filter outside the journal's subjects is refused, typed, and the journal keeps working.
        await expect(j.follow('elsewhere.>', {}, () => undefined)).rejects.toBeInstanceOf(InvalidNameError);
        await expect(j.follow('bad..subject', {}, () => undefined)).rejects.toBeInstanceOf(InvalidNameError);
        await w.append(`${j.name}.x.8`, bytes('after'));
        const witness = await j.follow(`${j.name}.x.*`, { fromSeq: 8 }, () => undefined);
        await waitFor(async () => (await w.lastSeq(`${j.name}.x.8`)) === 8);
        witness.stop();
        expect(got).toHaveLength(5);
      });

      it('appends with sequences, reads a subject filter from a sequence in order', async () => {
        const bus = await connect();
        const j = await journal(bus);
        const a = `${j.name}.s.a`;
        const b = `${j.name}.s.b`;
        const acks = [];
        for (const [subj, v] of [
          [a, 'a1'],
          [b, 'b1'],
          [a, 'a2'],
          [b, 'b2'],
          [a, 'a3'],
        ] as const) {
          acks.push(await j.append(subj, bytes(v), { headers: { 'Cohort-Type': 'event' } }));
        }
        expect(acks.map((x) => x.seq)).toEqual([1, 2, 3, 4, 5]);
        expect(acks.every((x) => !x.duplicate && x.stream === j.name)).toBe(true);

        const fromThree = await collectAll(j.read(a, { fromSeq: 3 }));
        expect(fromThree.map((e) => [e.seq, text(e.data)])).toEqual([
          [3, 'a2'],
          [5, 'a3'],
        ]);
        expect(fromThree[0]!.subject).toBe(a);
        expect(fromThree[0]!.headers['Cohort-Type']).toBe('event');
        expect(typeof fromThree[0]!.time).toBe('number');

        const wild = await collectAll(j.read(`${j.name}.s.*`, { fromSeq: 2 }));
        expect(wild.map((e) => e.seq)).toEqual([2, 3, 4, 5]);
        expect(await collectAll(j.read(a, { fromSeq: 6 }))).toEqual([]);
        expect((await collectAll(j.read(a, { limit: 2 }))).map((e) => e.seq)).toEqual([1, 3]);
        expect(await collectAll(j.read(`${j.name}.none`))).toEqual([]);
        expect(await j.lastSeq(a)).toBe(5);
        expect(await j.lastSeq(b)).toBe(4);
        expect(await j.lastSeq(`${j.name}.s.never`)).toBe(0);
        const last = await j.last(a);
        expect([last?.subject, last?.seq, text(last!.data), last?.headers['Cohort-Type']]).toEqual([
          a,
          5,
          'a3',
          'event',
        ]);
        expect((await j.last(b))?.seq).toBe(4);
        expect(await j.last(`${j.name}.s.never`)).toBeNull();
        // One subject, exactly: a wildcard is refused, as lastSeq refuses it.
        await expect(j.last(`${j.name}.s.*`)).rejects.toBeInstanceOf(InvalidNameError);
        // Counts per subject, filtered; a filter outside the journal is refused, not answered empty.
        expect(Object.fromEntries(await j.subjectCounts(`${j.name}.s.*`))).toEqual({ [a]: 3, [b]: 2 });
        expect(Object.fromEntries(await j.subjectCounts(b))).toEqual({ [b]: 2 });
        expect((await j.subjectCounts(`${j.name}.none.>`)).size).toBe(0);
        await expect(j.subjectCounts('elsewhere.>')).rejects.toBeInstanceOf(InvalidNameError);
      });

      it('fences on the expected last subject sequence: a wrong one appends nothing', async () => {
        const bus = await connect();
        const j = await journal(bus);
        const s = `${j.name}.sess.x`;
        const first = await j.append(s, bytes('1'), { expectedLastSubjectSeq: 0 });
        await j.append(`${j.name}.sess.other`, bytes('noise'));
        const second = await j.append(s, bytes('2'), { expectedLastSubjectSeq: first.seq });
        expect(second.seq).toBe(3);

        const stale = await j.append(s, bytes('stale'), { expectedLastSubjectSeq: first.seq }).catch((e: unknown) => e);
        expect(stale).toBeInstanceOf(WrongLastSequenceError);
        expect((stale as WrongLastSequenceError).expected).toBe(first.seq);
        const empty = await j.append(s, bytes('again'), { expectedLastSubjectSeq: 0 }).catch((e: unknown) => e);
        expect(empty).toBeInstanceOf(WrongLastSequenceError);

        expect(await j.lastSeq(s)).toBe(3);
        expect((await collectAll(j.read(s))).map((e) => text(e.data))).toEqual(['1', '2']);
        // The next append with the right expectation still goes through.
        expect((await j.append(s, bytes('3'), { expectedLastSubjectSeq: 3 })).seq).toBe(4);
      });

      it('de-duplicates a message id inside the window: reported, stored once', async () => {
        const bus = await connect();
        const j = await journal(bus);
        const s = `${j.name}.d`;
        const one = await j.append(s, bytes('v1'), { msgId: 'cmd-1' });
        const two = await j.append(s, bytes('v1-retry'), { msgId: 'cmd-1' });
        const other = await j.append(s, bytes('v2'), { msgId: 'cmd-2' });
        expect(one.duplicate).toBe(false);
        expect(two).toMatchObject({ duplicate: true, seq: one.seq });
        expect(other).toMatchObject({ duplicate: false, seq: one.seq + 1 });
        const stored = await collectAll(j.read(s));
        expect(stored.map((e) => text(e.data))).toEqual(['v1', 'v2']);
        expect(stored[0]!.headers['Nats-Msg-Id']).toBe('cmd-1');
        // A retried command whose fence has moved on is still recognised as the duplicate it is.
        const retry = await j.append(s, bytes('v1'), { msgId: 'cmd-1', expectedLastSubjectSeq: one.seq });
        expect(retry).toMatchObject({ duplicate: true, seq: one.seq });
      });

      it('purges a subject below a sequence, leaving the rest and the numbering intact', async () => {
        const bus = await connect();
        const j = await journal(bus);
        const s = `${j.name}.p.a`;
        const o = `${j.name}.p.b`;
        for (let i = 1; i <= 6; i++) await j.append(i % 2 ? s : o, bytes(String(i)));
        // s holds 1,3,5; o holds 2,4,6
        expect(await j.purge(s, { below: 5 })).toBe(2);
        expect((await collectAll(j.read(s))).map((e) => e.seq)).toEqual([5]);
        expect((await collectAll(j.read(o))).map((e) => e.seq)).toEqual([2, 4, 6]);
        expect(await j.lastSeq(s)).toBe(5);
        expect((await j.append(s, bytes('7'))).seq).toBe(7);
        expect(await j.purge(s, { below: 1 })).toBe(0);
      });

      it('refuses subjects outside the journal and oversized entries, appending nothing', async () => {
        const bus = await connect();
        const j = await journal(bus);
        await expect(j.append(`elsewhere.${j.name}`, bytes('x'))).rejects.toBeInstanceOf(InvalidNameError);
        await expect(j.append(`${j.name}.*`, bytes('x'))).rejects.toBeInstanceOf(InvalidNameError);
        // A subject appended to before is not checked again; others still are, each time.
        expect((await j.append(`${j.name}.ok`, bytes('1'))).seq).toBe(1);
        for (const bad of [`${j.name}.>`, `${j.name}.ok.*`, `${j.name}..ok`, `${j.name}.o k`])
          await expect(j.append(bad, bytes('x'))).rejects.toBeInstanceOf(InvalidNameError);
        expect((await j.append(`${j.name}.ok`, bytes('2'))).seq).toBe(2);
        const big = new Uint8Array(bus.server.maxPayload + 1);
        await expect(j.append(`${j.name}.big`, big)).rejects.toBeInstanceOf(PayloadTooLargeError);
        // Under the limit alone, over it with the message id and expected sequence headers: refused, not retryable.
        const snug = new Uint8Array(bus.server.maxPayload - 16);
        const err = await j
          .append(`${j.name}.snug`, snug, { msgId: 'snug-1', expectedLastSubjectSeq: 0 })
          .catch((e) => e);
        expect(err).toBeInstanceOf(PayloadTooLargeError);
        expect((err as PayloadTooLargeError).retryable).toBe(false);
        // Only the two good appends are there: nothing refused was appended.
        expect((await collectAll(j.read(`${j.name}.>`))).map((e) => [e.subject, e.seq])).toEqual([
          [`${j.name}.ok`, 1],
          [`${j.name}.ok`, 2],
        ]);
        await expect(bus.journal({ name: 'bad name', subjects: ['x.>'] })).rejects.toBeInstanceOf(InvalidNameError);
      });

      it('refuses a message id or header that would break the header block, appending nothing, and keeps appending', async () => {
        const bus = await connect();
        const j = await journal(bus);
        const s = `${j.name}.h`;
        await expect(j.append(s, bytes('x'), { msgId: 'cmd-1\r\nNats-Rollup: sub' })).rejects.toBeInstanceOf(
          InvalidNameError,
        );
        await expect(j.append(s, bytes('x'), { headers: { 'Cohort-Seq': '1\nInjected: yes' } })).rejects.toBeInstanceOf(
          InvalidNameError,
        );
        await expect(j.append(s, bytes('x'), { headers: { 'Bad: Name': 'v' } })).rejects.toBeInstanceOf(
          InvalidNameError,
        );
        expect(await collectAll(j.read(s))).toEqual([]);
        // Values are stored trimmed, as nats.js trims them.
        const ack = await j.append(s, bytes('ok'), { msgId: 'cmd-2', headers: { 'Cohort-Type': '  event ' } });
        const stored = await collectAll(j.read(s));
        expect(stored.map((e) => [e.seq, text(e.data), e.headers['Cohort-Type'], e.headers['Nats-Msg-Id']])).toEqual([
          [ack.seq, 'ok', 'event', 'cmd-2'],
        ]);
      });

      it('destroys a journal: reopened, it is empty and numbers from 1 again', async () => {
        const bus = await connect();
        const j = await journal(bus);
        await j.append(`${j.name}.x`, bytes('gone'));
        await j.destroy();
        const again = await bus.journal({ name: j.name, subjects: [`${j.name}.>`] });
        expect(await collectAll(again.read(`${j.name}.>`))).toEqual([]);
        expect((await again.append(`${j.name}.x`, bytes('new'))).seq).toBe(1);
        await again.destroy();
      });

      it('opened by several connections at once, one journal: each finds the stream another is making; another name over the same subjects is refused', async () => {
        const name = fresh('J');
        const buses = await Promise.all(Array.from({ length: 6 }, () => connect()));
        const opened = await Promise.all(buses.map((b) => b.journal({ name, subjects: [`${name}.>`] })));
        await opened[0]!.append(`${name}.x`, bytes('one'));
        for (const j of opened)
          expect((await collectAll(j.read(`${name}.>`))).map((e) => text(e.data))).toEqual(['one']);
        const other = await buses[0]!.journal({ name: `${name}O`, subjects: [`${name}.>`] }).catch((e: unknown) => e);
        expect(other).toBeInstanceOf(InvalidNameError);
        expect((other as Error).message).toContain('overlap');
      });

      it('reopens an existing journal with its entries', async () => {
        const bus = await connect();
        const j = await journal(bus);
        await j.append(`${j.name}.x`, bytes('kept'));
        const other = await connect();
        const again = await other.journal({ name: j.name, subjects: [`${j.name}.>`] });
        const entries: JournalEntry[] = await collectAll(again.read(`${j.name}.x`));
        expect(entries.map((e) => text(e.data))).toEqual(['kept']);
      });
      it('checks an existing journal and never changes it: a shorter duplicate window or other subjects refuse it, naming the setting', async () => {
        const bus = await connect();
        const name = fresh('J');
        const j = await bus.journal({ name, subjects: [`${name}.>`], duplicateWindow: 1_000 });
        await j.append(`${name}.x`, bytes('kept'));
        const other = await connect();
        const short = await other.journal({ name, subjects: [`${name}.>`] }).catch((e: unknown) => e);
        expect(short).toBeInstanceOf(StreamConfigMismatchError);
        expect(short).toMatchObject({
          stream: name,
          setting: 'duplicate_window',
          expected: 'at least 120s',
          actual: '1s',
        });
        expect((short as StreamConfigMismatchError).fix).toContain(`nats stream edit ${name} --dupe-window=120s`);
        const narrower = await other
          .journal({ name, subjects: [`${name}.a.>`], duplicateWindow: 1_000 })
          .catch((e: unknown) => e);
        expect(narrower).toMatchObject({ name: 'StreamConfigMismatchError', setting: 'subjects' });
        // Positive control: asking for no more than it has opens it, entries and window as they were.
        const same = await other.journal({ name, subjects: [`${name}.>`], duplicateWindow: 500 });
        expect((await collectAll(same.read(`${name}.>`))).map((e) => text(e.data))).toEqual(['kept']);
        await same.append(`${name}.x`, bytes('a'), { msgId: 'm1' });
        expect((await j.append(`${name}.x`, bytes('a'), { msgId: 'm1' })).duplicate).toBe(true);
      });
    });

    describe('key-value', () => {
      it('opened by several connections at once, one bucket: each finds the bucket another is making', async () => {
        // The race is narrow (on a loaded machine about 1 open in 100 was refused as a subject overlap): rounds.
        const buses = await Promise.all(Array.from({ length: 6 }, () => connect()));
        for (let round = 0; round < 4; round++) {
          const bucket = fresh('KVT');
          const opened = await Promise.all(buses.map((b) => b.kv({ bucket })));
          await opened[0]!.put('k', bytes('one'));
          for (const kv of opened) expect(text((await kv.get('k'))!.value)).toBe('one');
        }
      });

      it('checks an existing bucket: one keeping fewer values per key than asked refuses to open; one keeping more opens', async () => {
        const bus = await connect();
        const bucket = fresh('KVH');
        const kv = await bus.kv({ bucket, history: 2 });
        await kv.put('k', bytes('1'));
        const other = await connect();
        const more = await other.kv({ bucket, history: 5 }).catch((e: unknown) => e);
        expect(more).toBeInstanceOf(StreamConfigMismatchError);
        expect(more).toMatchObject({ stream: `KV_${bucket}`, setting: 'max_msgs_per_subject', actual: '2' });
        // Positive control: a history of 1 or 2 is within what it keeps.
        const fewer = await other.kv({ bucket, history: 1 });
        expect(text((await fewer.get('k'))!.value)).toBe('1');
        await fewer.put('k', bytes('2'));
        const seen: string[] = [];
        const w = await kv.watch({ key: 'k', include: 'history' }, (e) => seen.push(text(e.value)));
        await waitFor(() => seen.length === 2, { what: 'both values kept' });
        w.stop();
        expect(seen).toEqual(['1', '2']);
      });

      it('creates once, updates by compare-and-set, refuses a stale revision', async () => {
        const bus = await connect();
        const kv = await bus.kv({ bucket: fresh('KV') });
        const r1 = await kv.create('view', bytes('v1'));
        await expect(kv.create('view', bytes('other'))).rejects.toBeInstanceOf(KeyExistsError);
        const r2 = await kv.update('view', bytes('v2'), r1);
        expect(r2).toBeGreaterThan(r1);
        const stale = await kv.update('view', bytes('lost'), r1).catch((e: unknown) => e);
        expect(stale).toBeInstanceOf(StaleRevisionError);
        expect(stale).toMatchObject({ key: 'view', expected: r1 });
        const now = await kv.get('view');
        expect(now && text(now.value)).toBe('v2');
        expect(now?.revision).toBe(r2);
        await expect(kv.delete('view', { expectedRevision: r1 })).rejects.toBeInstanceOf(StaleRevisionError);
        expect(await kv.get('view')).not.toBeNull();
      });

      it('lists the keys there were when asked, even while others write', async () => {
        const bus = await connect();
        const kv = await bus.kv({ bucket: fresh('KV') });
        for (let i = 0; i < 50; i++) await kv.put(`k.${i}`, bytes(String(i)));
        await kv.delete('k.0');
        // Writes racing the listing (new keys, updates, deletes) must not stall or corrupt it.
        let writing = true;
        const writer = (async () => {
          for (let i = 0; writing; i++) {
            await kv.put(`k.${50 + (i % 10)}`, bytes('new'));
            await kv.put(`k.${25 + (i % 25)}`, bytes('updated'));
            if (i % 3 === 0) await kv.delete(`k.${50 + ((i * 7) % 10)}`);
          }
        })();
        const listings = await Promise.all([kv.keys(), kv.keys('k.*'), kv.keys()]);
        writing = false;
        await writer;
        const before = Array.from({ length: 49 }, (_, i) => `k.${i + 1}`);
        for (const keys of listings) {
          // Every key that lived throughout is listed, the deleted one is not, none twice, nothing invented.
          expect(keys).toEqual(expect.arrayContaining(before));
          expect(keys).not.toContain('k.0');
          expect(new Set(keys).size).toBe(keys.length);
          for (const k of keys) expect(Number(k.slice(2))).toBeLessThan(60);
        }
      });

      it('deletes, lists live keys, and allows create over a deleted key', async () => {
        const bus = await connect();
        const kv = await bus.kv({ bucket: fresh('KV') });
        await kv.put('a.one', bytes('1'));
        await kv.put('a.two', bytes('2'));
        await kv.put('b', bytes('3'));
        await kv.delete('a.one');
        expect(await kv.get('a.one')).toBeNull();
        expect(await kv.get('missing')).toBeNull();
        expect((await kv.keys()).sort()).toEqual(['a.two', 'b']);
        expect(await kv.keys('a.*')).toEqual(['a.two']);
        const r = await kv.create('a.one', bytes('again'));
        expect(text((await kv.get('a.one'))!.value)).toBe('again');
        expect((await kv.get('a.one'))!.revision).toBe(r);
      });

      it('watches updates and deletes in order, after the current values', async () => {
        const bus = await connect();
        const writer = await connect();
        const bucket = fresh('KV');
        const kv = await bus.kv({ bucket });
        const wkv = await writer.kv({ bucket });
        await wkv.put('m.a', bytes('a0'));
        await wkv.put('other', bytes('x'));
        const seen: KvEntry[] = [];
        const watch = await kv.watch({ key: 'm.*' }, (e) => seen.push(e));
        // The initial values are in before watch() resolves.
        expect(seen.map((e) => [e.key, e.operation, text(e.value)])).toEqual([['m.a', 'PUT', 'a0']]);
        await wkv.put('m.b', bytes('b1'));
        await wkv.delete('m.a');
        await wkv.put('other', bytes('ignored'));
        await wkv.put('m.a', bytes('a2'));
        await waitFor(() => seen.length === 4, { what: 'watch entries' });
        expect(seen.map((e) => [e.key, e.operation])).toEqual([
          ['m.a', 'PUT'],
          ['m.b', 'PUT'],
          ['m.a', 'DEL'],
          ['m.a', 'PUT'],
        ]);
        expect(text(seen[3]!.value)).toBe('a2');
        const revs = seen.map((e) => e.revision);
        expect([...revs].sort((x, y) => x - y)).toEqual(revs);
        watch.stop();
        await wkv.put('m.c', bytes('after stop'));
        const witness: KvEntry[] = [];
        const w2 = await kv.watch({ key: 'm.c', include: 'last' }, (e) => witness.push(e));
        expect(witness).toHaveLength(1);
        w2.stop();
        expect(seen).toHaveLength(4);
      });

      it('watches only updates, or the whole history, when asked', async () => {
        const bus = await connect();
        const kv = await bus.kv({ bucket: fresh('KV'), history: 5 });
        await kv.put('k', bytes('1'));
        await kv.put('k', bytes('2'));
        const history: string[] = [];
        const h = await kv.watch({ key: 'k', include: 'history' }, (e) => history.push(text(e.value)));
        expect(history).toEqual(['1', '2']);
        const updates: string[] = [];
        const u = await kv.watch({ key: 'k', include: 'updates' }, (e) => updates.push(text(e.value)));
        expect(updates).toEqual([]);
        await kv.put('k', bytes('3'));
        await waitFor(() => updates.length === 1 && history.length === 3);
        expect(updates).toEqual(['3']);
        h.stop();
        u.stop();
      });

      it('destroys a bucket with every key in it', async () => {
        const bus = await connect();
        const bucket = fresh('KV');
        const kv = await bus.kv({ bucket });
        await kv.put('a', bytes('1'));
        await kv.destroy();
        const again = await bus.kv({ bucket });
        expect(await again.get('a')).toBeNull();
        expect(await again.keys()).toEqual([]);
      });

      it('refuses bad keys and bucket names with typed errors', async () => {
        const bus = await connect();
        const kv = await bus.kv({ bucket: fresh('KV') });
        for (const key of ['', 'has space', 'a..b', '.lead', 'trail.', 'star*', 'ünï']) {
          await expect(kv.put(key, bytes('x')), JSON.stringify(key)).rejects.toBeInstanceOf(InvalidNameError);
        }
        await expect(bus.kv({ bucket: 'no.dots' })).rejects.toBeInstanceOf(InvalidNameError);
        await expect(kv.put('big', new Uint8Array(bus.server.maxPayload + 1))).rejects.toBeInstanceOf(
          PayloadTooLargeError,
        );
        expect(await kv.keys()).toEqual([]);
      });
    });

    describe('blobs', () => {
      it('opened by several connections at once, one store: each finds the store another is making', async () => {
        const buses = await Promise.all(Array.from({ length: 6 }, () => connect()));
        for (let round = 0; round < 4; round++) {
          const bucket = fresh('BT');
          const opened = await Promise.all(buses.map((b) => b.blobs({ bucket })));
          await opened[0]!.put('doc', bytes('one'));
          for (const blobs of opened) expect(text((await blobs.get('doc'))!)).toBe('one');
        }
      });

      it('stores, fetches and deletes bodies larger than a message', async () => {
        const bus = await connect();
        const blobs = await bus.blobs({ bucket: fresh('B') });
        const big = new Uint8Array(bus.server.maxPayload * 2 + 17).map((_, i) => (i * 31) & 0xff);
        const info = await blobs.put('doc-1', big);
        expect(info).toEqual({ name: 'doc-1', size: big.length });
        const back = await blobs.get('doc-1');
        expect(back).toBeInstanceOf(Uint8Array);
        expect(Buffer.compare(back!, big)).toBe(0); // toEqual walks 2 MB element by element: far too slow
        expect(await blobs.get('nope')).toBeNull();
        expect(await blobs.delete('doc-1')).toBe(true);
        expect(await blobs.delete('doc-1')).toBe(false);
        expect(await blobs.get('doc-1')).toBeNull();
        await expect(blobs.put('', big)).rejects.toBeInstanceOf(InvalidNameError);
      });

      it('expires blobs of a bucket made with a maximum age; one asked to keep blobs for ever refuses such a bucket', async () => {
        const bus = await connect();
        const bucket = fresh('BX');
        const blobs = await bus.blobs({ bucket, maxAge: 400 });
        await blobs.put('reply-1', bytes('soon gone'));
        expect(text((await blobs.get('reply-1'))!)).toBe('soon gone');
        // Read back to back as it expires (on NATS its chunks go a moment before its meta): each read is the
        // whole blob or null, and none waits without end.
        for (let got: Uint8Array | null | 'stuck' = bytes('x'); got !== null;) {
          let timer: ReturnType<typeof setTimeout> | undefined;
          got = await Promise.race([
            blobs.get('reply-1'),
            new Promise<'stuck'>((r) => (timer = setTimeout(() => r('stuck'), 4_000))),
          ]);
          clearTimeout(timer);
          expect(got).not.toBe('stuck');
          if (got !== null) expect(text(got as Uint8Array)).toBe('soon gone');
          await new Promise((r) => setImmediate(r));
        }
        const other = await connect();
        const forever = await other.blobs({ bucket, maxAge: 0 }).catch((e: unknown) => e);
        expect(forever).toBeInstanceOf(StreamConfigMismatchError);
        expect(forever).toMatchObject({
          stream: `OBJ_${bucket}`,
          setting: 'max_age',
          actual: expect.stringMatching(/^400ms$|^0.4s$/),
        });
        // Positive control: whoever does not ask for ever takes it as it is, and a bucket made with no age keeps blobs.
        await (await other.blobs({ bucket })).put('reply-2', bytes('x'));
        const kept = await other.blobs({ bucket: fresh('BK'), maxAge: 0 });
        await kept.put('snap', bytes('kept'));
        expect(text((await (await bus.blobs({ bucket: kept.bucket, maxAge: 0 })).get('snap'))!)).toBe('kept');
        await expect(bus.blobs({ bucket: fresh('BN'), maxAge: -1 })).rejects.toBeInstanceOf(RangeError);
      });

      it('destroys a bucket with every blob in it', async () => {
        const bus = await connect();
        const bucket = fresh('B');
        const blobs = await bus.blobs({ bucket });
        await blobs.put('x', bytes('1'));
        await blobs.destroy();
        expect(await (await bus.blobs({ bucket })).get('x')).toBeNull();
      });
    });

    describe('server', () => {
      it('reports the server and refuses features beyond the 2.9.10 baseline it lacks', async () => {
        const bus = await connect();
        expect(bus.server.jetstream).toBe(true);
        expect(bus.server.maxPayload).toBeGreaterThan(0);
        expect(bus.server.version).toMatch(/^\d+\.\d+\.\d+/);
        if (!bus.supports('per-message-ttl')) {
          expect(() => bus.require('per-message-ttl')).toThrow(/per-message-ttl needs nats-server 2\.11\.0/);
        }
        if (!bus.supports('multi-filter-consumers')) expect(() => bus.require('multi-filter-consumers')).toThrow();
      });
    });
  });
}
