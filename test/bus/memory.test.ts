import { describe, expect, it } from 'vitest';
import { SimulatedClock } from '../../bus/clock.js';
import { BusClosedError, NoRespondersError, PayloadTooLargeError, TimeoutError } from '../../bus/errors.js';
import { createMemoryBus, createMemoryServer } from '../../bus/memory/mod.js';
import type { Bus, BusStatus, Delivery } from '../../bus/types.js';

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const text = (data: Uint8Array): string => new TextDecoder().decode(data);

/** Settles-or-not probe for a promise, so a test can assert "still pending" without sleeping. */
function track<T>(promise: Promise<T>): { settled: () => boolean; promise: Promise<T> } {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  return { settled: () => settled, promise };
}

describe('request timeouts on the simulated clock', () => {
  it('rejects only once the clock crosses the timeout', async () => {
    const clock = new SimulatedClock();
    const bus = createMemoryBus({ environment: { clock } });
    bus.subscribe('svc.silent', () => undefined);
    const pending = track(bus.request('svc.silent', bytes('ping'), { timeout: 1000 }));
    await bus.flush();
    clock.increment(999);
    await bus.flush();
    expect(pending.settled()).toBe(false);
    clock.increment(1);
    const error = await pending.promise.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error).toMatchObject({ timeoutMs: 1000 });
    await bus.close();
  });

  it('clears the timer once answered', async () => {
    const clock = new SimulatedClock();
    const bus = createMemoryBus({ environment: { clock } });
    bus.subscribe('svc.echo', (m) => m.respond(m.data));
    const reply = await bus.request('svc.echo', bytes('hi'), { timeout: 50 });
    expect(text(reply.data)).toBe('hi');
    expect(clock.pendingTimers).toBe(0);
    await bus.close();
  });

  it('reports no responders without waiting for the clock', async () => {
    const clock = new SimulatedClock();
    const bus = createMemoryBus({ environment: { clock } });
    await expect(bus.request('svc.nobody', bytes(''), { timeout: 1000 })).rejects.toBeInstanceOf(NoRespondersError);
    expect(clock.pendingTimers).toBe(0);
    await bus.close();
  });

  it('uses deterministic inbox subjects', async () => {
    const replies: string[] = [];
    for (let run = 0; run < 2; run++) {
      const bus = createMemoryBus({ environment: { clock: new SimulatedClock() } });
      bus.subscribe('svc.who', (m) => {
        replies.push(m.reply ?? '');
        m.respond(bytes(''));
      });
      await bus.request('svc.who', bytes(''), { timeout: 10 });
      await bus.request('svc.who', bytes(''), { timeout: 10 });
      await bus.close();
    }
    expect(replies.slice(0, 2)).toEqual(replies.slice(2));
    expect(replies[0]).toMatch(/^_INBOX\./);
    expect(new Set(replies.slice(0, 2)).size).toBe(2);
  });
});

describe('duplicate window on the simulated clock', () => {
  it('stores the same msgId again once the window has passed', async () => {
    const clock = new SimulatedClock();
    const bus = createMemoryBus({ environment: { clock } });
    const journal = await bus.journal({ name: 'DEDUPE', subjects: ['dd.>'], duplicateWindow: 1000 });
    expect(await journal.append('dd.a', bytes('1'), { msgId: 'cmd-1' })).toEqual({
      stream: 'DEDUPE',
      seq: 1,
      duplicate: false,
    });
    clock.increment(999);
    expect(await journal.append('dd.a', bytes('1'), { msgId: 'cmd-1' })).toEqual({
      stream: 'DEDUPE',
      seq: 1,
      duplicate: true,
    });
    clock.increment(1);
    expect(await journal.append('dd.a', bytes('1'), { msgId: 'cmd-1' })).toEqual({
      stream: 'DEDUPE',
      seq: 2,
      duplicate: false,
    });
    await bus.close();
  });

  it('defaults to 120 s and stamps entries with the clock', async () => {
    const clock = new SimulatedClock(5_000);
    const bus = createMemoryBus({ environment: { clock } });
    const journal = await bus.journal({ name: 'DEFAULTS', subjects: ['df.>'] });
    await journal.append('df.a', bytes('x'), { msgId: 'm' });
    clock.increment(119_999);
    expect((await journal.append('df.a', bytes('x'), { msgId: 'm' })).duplicate).toBe(true);
    clock.increment(1);
    expect((await journal.append('df.a', bytes('x'), { msgId: 'm' })).duplicate).toBe(false);
    const times: number[] = [];
    for await (const entry of journal.read('df.>')) times.push(entry.time);
    expect(times).toEqual([5_000, 125_000]);
    await bus.close();
  });

  it('answers a retried append as a duplicate before checking its fence, as nats-server does', async () => {
    const bus = createMemoryBus({ environment: { clock: new SimulatedClock() } });
    const journal = await bus.journal({ name: 'RETRY', subjects: ['rt.>'] });
    const first = await journal.append('rt.s', bytes('a'), { msgId: 'c1', expectedLastSubjectSeq: 0 });
    const retry = await journal.append('rt.s', bytes('a'), { msgId: 'c1', expectedLastSubjectSeq: 0 });
    expect(retry).toEqual({ stream: 'RETRY', seq: first.seq, duplicate: true });
    await bus.close();
  });
});

describe('connections sharing one server', () => {
  it('see each other’s messages, requests and stores', async () => {
    const server = createMemoryServer({ environment: { clock: new SimulatedClock() } });
    const a = createMemoryBus({ server });
    const b = createMemoryBus({ server });
    const seenByB: string[] = [];
    b.subscribe('chat.>', (m) => seenByB.push(`${m.subject}:${text(m.data)}`));
    b.subscribe('svc.upper', (m) => m.respond(bytes(text(m.data).toUpperCase())));
    a.publish('chat.room', bytes('hello'));
    await a.flush();
    expect(seenByB).toEqual(['chat.room:hello']);
    expect(text((await a.request('svc.upper', bytes('abc'), { timeout: 100 })).data)).toBe('ABC');

    await (await a.journal({ name: 'SHARED', subjects: ['sh.>'] })).append('sh.x', bytes('1'));
    expect(await (await b.journal({ name: 'SHARED', subjects: ['sh.>'] })).lastSeq('sh.x')).toBe(1);

    const kvB = await b.kv({ bucket: 'shared' });
    const watched: string[] = [];
    await kvB.watch({ key: '>' }, (e) => watched.push(`${e.key}@${e.revision}`));
    const rev = await (await a.kv({ bucket: 'shared' })).put('view', bytes('v1'));
    await b.flush();
    expect(watched).toEqual([`view@${rev}`]);
    expect(text((await kvB.get('view'))!.value)).toBe('v1');
    await a.close();
    await b.close();
  });

  it('closing one connection leaves the others working', async () => {
    const server = createMemoryServer({ environment: { clock: new SimulatedClock() } });
    const a = createMemoryBus({ server });
    const b = createMemoryBus({ server });
    const statusA: BusStatus[] = [];
    a.onStatus((s) => statusA.push(s));
    a.subscribe('svc.a', (m) => m.respond(bytes('from a')));
    const gotB: string[] = [];
    b.subscribe('news', (m) => gotB.push(text(m.data)));
    a.subscribe('svc.never', () => undefined);
    const pendingOnA = a.request('svc.never', bytes(''), { timeout: 10_000 });

    await a.close();
    await expect(pendingOnA).rejects.toBeInstanceOf(BusClosedError);
    expect(statusA).toEqual([{ type: 'close' }]);
    expect(() => a.publish('news', bytes('x'))).toThrow(BusClosedError);
    expect(() => a.subscribe('news', () => undefined)).toThrow(BusClosedError);
    await expect(a.request('news', bytes(''), { timeout: 10 })).rejects.toBeInstanceOf(BusClosedError);
    await expect(a.journal({ name: 'J', subjects: ['j.>'] })).rejects.toBeInstanceOf(BusClosedError);
    await expect(a.close()).resolves.toBeUndefined();

    b.publish('news', bytes('still here'));
    await b.flush();
    expect(gotB).toEqual(['still here']);
    // a's responder went with it.
    await expect(b.request('svc.a', bytes(''), { timeout: 10 })).rejects.toBeInstanceOf(NoRespondersError);
    await b.close();
  });

  it('drains on close: messages already routed are still handled', async () => {
    const server = createMemoryServer({ environment: { clock: new SimulatedClock() } });
    const a = createMemoryBus({ server });
    const b = createMemoryBus({ server });
    const got: string[] = [];
    a.subscribe('q', (m) => got.push(text(m.data)));
    b.publish('q', bytes('1'));
    await a.close();
    expect(got).toEqual(['1']);
    await b.close();
  });
});

describe('queue groups', () => {
  async function scenario(): Promise<string[]> {
    const server = createMemoryServer({ environment: { clock: new SimulatedClock() } });
    const workers = [createMemoryBus({ server }), createMemoryBus({ server }), createMemoryBus({ server })];
    const log: string[] = [];
    workers.forEach((bus, i) => {
      bus.subscribe('jobs.*', (m) => log.push(`w${i}:${m.subject}`), { queue: 'workers' });
    });
    const client = createMemoryBus({ server });
    for (let n = 0; n < 9; n++) client.publish(`jobs.${n % 2 === 0 ? 'even' : 'odd'}`, bytes(String(n)));
    await client.flush();
    for (const bus of [...workers, client]) await bus.close();
    return log;
  }

  it('picks members the same way on two fresh servers', async () => {
    const first = await scenario();
    const second = await scenario();
    expect(first).toHaveLength(9);
    expect(second).toEqual(first);
    // Taking turns spreads the work evenly.
    for (const worker of ['w0', 'w1', 'w2']) expect(first.filter((l) => l.startsWith(worker))).toHaveLength(3);
  });

  it('gives each group one copy and every plain subscriber its own', async () => {
    const bus = createMemoryBus({ environment: { clock: new SimulatedClock() } });
    const log: string[] = [];
    bus.subscribe('t', () => log.push('g1a'), { queue: 'g1' });
    bus.subscribe('t', () => log.push('g1b'), { queue: 'g1' });
    bus.subscribe('>', () => log.push('g2'), { queue: 'g2' });
    bus.subscribe('t', () => log.push('plain1'));
    bus.subscribe('*', () => log.push('plain2'));
    bus.publish('t', bytes(''));
    await bus.flush();
    expect(log.sort()).toEqual(['g1a', 'g2', 'plain1', 'plain2']);
    await bus.close();
  });
});

describe('delivery', () => {
  it('never runs a handler inside publish, and keeps publish order', async () => {
    const bus = createMemoryBus({ environment: { clock: new SimulatedClock() } });
    const got: string[] = [];
    bus.subscribe('seq', (m) => got.push(text(m.data)));
    for (let i = 0; i < 5; i++) bus.publish('seq', bytes(String(i)));
    expect(got).toEqual([]);
    await bus.flush();
    expect(got).toEqual(['0', '1', '2', '3', '4']);
    await bus.close();
  });

  it('drops what was queued for a subscription once it unsubscribes', async () => {
    const bus = createMemoryBus({ environment: { clock: new SimulatedClock() } });
    const got: string[] = [];
    const sub = bus.subscribe('u', (m) => got.push(text(m.data)));
    bus.publish('u', bytes('queued'));
    sub.unsubscribe();
    bus.publish('u', bytes('after'));
    await bus.flush();
    expect(got).toEqual([]);
    await bus.close();
  });

  it('reports a throwing or rejecting handler and keeps delivering', async () => {
    const bus = createMemoryBus({ environment: { clock: new SimulatedClock() } });
    const statuses: BusStatus[] = [];
    bus.onStatus((s) => statuses.push(s));
    const got: string[] = [];
    bus.subscribe('boom.*', (m) => {
      got.push(m.subject);
      if (m.subject === 'boom.sync') throw new Error('sync');
    });
    bus.subscribe('boom.async', async () => {
      throw new Error('async');
    });
    bus.publish('boom.sync', bytes(''));
    bus.publish('boom.async', bytes(''));
    bus.publish('boom.after', bytes(''));
    await bus.flush();
    await bus.flush();
    expect(got).toEqual(['boom.sync', 'boom.async', 'boom.after']);
    expect(
      statuses.map((s) => (s.type === 'handler-error' ? `${s.subject}:${(s.error as Error).message}` : s.type)),
    ).toEqual(['boom.sync:sync', 'boom.async:async']);
    await bus.close();
  });
});

describe('buffers are never shared', () => {
  it('copies published data, per subscriber', async () => {
    const bus = createMemoryBus({ environment: { clock: new SimulatedClock() } });
    const got: Delivery[] = [];
    bus.subscribe('copy', (m) => {
      got.push(m);
      m.data[0] = 0; // one subscriber scribbling on its copy
    });
    bus.subscribe('copy', (m) => got.push(m));
    const data = bytes('abc');
    bus.publish('copy', data);
    data[1] = 0x7a;
    await bus.flush();
    expect(text(got[1]!.data)).toBe('abc');
    expect(got[0]!.data.buffer).not.toBe(got[1]!.data.buffer);
    await bus.close();
  });

  it('copies into and out of journals, kv and blobs', async () => {
    const bus = createMemoryBus({ environment: { clock: new SimulatedClock() } });
    const journal = await bus.journal({ name: 'ALIAS', subjects: ['al.>'] });
    const kv = await bus.kv({ bucket: 'alias' });
    const blobs = await bus.blobs({ bucket: 'alias' });
    const data = bytes('abc');
    await journal.append('al.x', data);
    await kv.put('k', data);
    await blobs.put('b', data);
    data.fill(0);

    for await (const entry of journal.read('al.>')) {
      expect(text(entry.data)).toBe('abc');
      entry.data.fill(0);
    }
    for await (const entry of journal.read('al.>')) expect(text(entry.data)).toBe('abc');
    const first = (await kv.get('k'))!;
    first.value.fill(0);
    expect(text((await kv.get('k'))!.value)).toBe('abc');
    (await blobs.get('b'))!.fill(0);
    expect(text((await blobs.get('b'))!)).toBe('abc');
    await bus.close();
  });
});

describe('memory server settings', () => {
  it('counts encoded headers against maxPayload, as nats.js does', async () => {
    const bus: Bus = createMemoryBus({ maxPayload: 64, environment: { clock: new SimulatedClock() } });
    expect(bus.server).toEqual({ implementation: 'memory', version: '2.9.10', maxPayload: 64, jetstream: true });
    expect(() => bus.publish('p', new Uint8Array(64))).not.toThrow();
    expect(() => bus.publish('p', new Uint8Array(65))).toThrow(PayloadTooLargeError);
    // "NATS/1.0\r\nA: b\r\n\r\n" is 18 bytes.
    expect(() => bus.publish('p', new Uint8Array(46), { headers: { A: 'b' } })).not.toThrow();
    expect(() => bus.publish('p', new Uint8Array(47), { headers: { A: 'b' } })).toThrow(PayloadTooLargeError);
    await bus.close();
  });

  it('refuses a maxPayload that contradicts a shared server', () => {
    const server = createMemoryServer({ maxPayload: 100 });
    expect(() => createMemoryBus({ server, maxPayload: 200 })).toThrow(TypeError);
    expect(createMemoryBus({ server }).server.maxPayload).toBe(100);
  });
});

describe('fairness', () => {
  it('a loop that only awaits requests does not starve timers', async () => {
    const bus = createMemoryBus();
    bus.subscribe('echo', (m) => m.respond(m.data));
    let fired = false;
    setTimeout(() => (fired = true), 0);
    // Every round trip is delivered on the bus's queue; without a yield to the event loop the timer never runs.
    let rounds = 0;
    while (!fired && rounds < 100_000) {
      await bus.request('echo', bytes('x'), { timeout: 1_000 });
      rounds++;
    }
    expect(fired).toBe(true);
    expect(rounds).toBeLessThan(100_000);
    await bus.close();
  });
});
