import { describe, expect, it } from 'vitest';
import { SimulatedClock } from '../../bus/clock.js';
import { seededEnvironment } from '../../bus/environment.js';
import { NoRespondersError, TimeoutError } from '../../bus/errors.js';
import {
  connectionOf,
  createMemoryBus,
  createMemoryServer,
  type Hop,
  type Network,
  type NetworkEvent,
} from '../../bus/memory/mod.js';
import type { MemoryServer } from '../../bus/memory/server.js';
import type { Bus, BusStatus, JournalEntry, KvEntry } from '../../bus/types.js';
import { busContract } from './contract.js';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array): string => new TextDecoder().decode(b);

/** Delivers everything at once and picks lanes from a seed: the contract must hold unchanged. */
function quiet(seed: number): Network {
  const random = seededEnvironment(seed).random;
  return { reorder: false, transit: () => [0], pick: (n) => Math.floor(random() * n) };
}

const seeded = createMemoryServer({ network: quiet(7) });
busContract('memory, seeded network', () => ({ connect: async () => createMemoryBus({ server: seeded }) }));

/** A network whose fate for each hop the test decides; everything it is told is kept. */
class Scripted implements Network {
  reorder = false;
  readonly events: NetworkEvent[] = [];
  fate: (hop: Hop) => readonly number[] = () => [0];
  transit(hop: Hop): readonly number[] {
    return this.fate(hop);
  }
  pick(): number {
    return 0;
  }
  observe(event: NetworkEvent): void {
    this.events.push(event);
  }
}

function setup(): {
  clock: SimulatedClock;
  net: Scripted;
  server: MemoryServer;
  connect: () => Bus;
  settle: () => Promise<void>;
} {
  const clock = new SimulatedClock(1_000);
  const net = new Scripted();
  const server = createMemoryServer({ environment: { clock }, network: net });
  const settle = async (): Promise<void> => {
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  };
  return { clock, net, server, connect: () => createMemoryBus({ server }), settle };
}

/** Moves virtual time in steps, letting deliveries run between them. */
async function advance(clock: SimulatedClock, settle: () => Promise<void>, ms: number, step = 1): Promise<void> {
  for (let t = 0; t < ms; t += step) {
    await settle();
    clock.increment(step);
  }
  await settle();
}

function track<T>(promise: Promise<T>): { state: () => 'pending' | 'resolved' | 'rejected'; value: () => unknown } {
  let state: 'pending' | 'resolved' | 'rejected' = 'pending';
  let value: unknown;
  promise.then(
    (v) => ((state = 'resolved'), (value = v)),
    (e) => ((state = 'rejected'), (value = e)),
  );
  return { state: () => state, value: () => value };
}

describe('messages on a simulated network', () => {
  it('a dropped message never arrives, and a request whose question is lost times out on the clock', async () => {
    const { clock, net, connect, settle } = setup();
    const a = connect();
    const b = connect();
    const got: string[] = [];
    b.subscribe('s', (m) => {
      got.push(text(m.data));
      m.respond(bytes('pong'));
    });
    net.fate = () => [];
    a.publish('s', bytes('lost'));
    await settle();
    expect(got).toEqual([]);
    const asked = track(a.request('s', bytes('q'), { timeout: 100 }));
    await advance(clock, settle, 99, 33);
    expect(asked.state()).toBe('pending');
    await advance(clock, settle, 2);
    expect(asked.state()).toBe('rejected');
    expect(asked.value()).toBeInstanceOf(TimeoutError);
    expect(net.events.filter((e) => e.type === 'drop').length).toBeGreaterThanOrEqual(2);
  });

  it('a late message arrives after its delay; one hop keeps its order unless the network reorders', async () => {
    const { clock, net, connect, settle } = setup();
    const a = connect();
    const b = connect();
    const got: string[] = [];
    b.subscribe('s', (m) => got.push(text(m.data)));
    const delays = [30, 0, 10];
    net.fate = () => [delays.shift()!];
    for (const x of ['one', 'two', 'three']) a.publish('s', bytes(x));
    await settle();
    expect(got).toEqual([]);
    await advance(clock, settle, 30);
    expect(got).toEqual(['one', 'two', 'three']);

    net.reorder = true;
    got.length = 0;
    delays.push(30, 0, 10);
    for (const x of ['one', 'two', 'three']) a.publish('s', bytes(x));
    await advance(clock, settle, 30);
    expect(got).toEqual(['two', 'three', 'one']);
  });

  it('a duplicated message arrives twice; a subscription that drains still gets what was on its way', async () => {
    const { clock, net, connect, settle } = setup();
    const a = connect();
    const b = connect();
    const got: string[] = [];
    const sub = b.subscribe('s', (m) => got.push(text(m.data)));
    net.fate = () => [0, 5];
    a.publish('s', bytes('x'));
    await advance(clock, settle, 5);
    expect(got).toEqual(['x', 'x']);
    got.length = 0;
    net.fate = (hop) => (hop.kind === 'message' ? [20] : [0]);
    a.publish('s', bytes('late'));
    const drained = track(sub.drain());
    await advance(clock, settle, 10);
    expect(drained.state()).toBe('pending');
    await advance(clock, settle, 10);
    expect(got).toEqual(['late']);
    expect(drained.state()).toBe('resolved');
  });

  it('ready deliveries are taken in the order the network picks, each hop in order', async () => {
    const clock = new SimulatedClock(1_000);
    const orderOf = async (seed: number): Promise<string[]> => {
      const server = createMemoryServer({ environment: { clock }, network: quiet(seed) });
      const subs = [createMemoryBus({ server }), createMemoryBus({ server }), createMemoryBus({ server })];
      const got: string[] = [];
      subs.forEach((b, i) => b.subscribe('s', (m) => got.push(`${i}:${text(m.data)}`)));
      const pub = createMemoryBus({ server });
      for (let i = 0; i < 20; i++) pub.publish('s', bytes(String(i)));
      await pub.flush();
      for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
      return got;
    };
    const a = await orderOf(1);
    const b = await orderOf(2);
    expect(a).toHaveLength(60);
    expect(await orderOf(1)).toEqual(a);
    expect(b).not.toEqual(a);
    for (const got of [a, b])
      for (let i = 0; i < 3; i++)
        expect(got.filter((x) => x.startsWith(`${i}:`))).toEqual(Array.from({ length: 20 }, (_, n) => `${i}:${n}`));
  });
});

describe('API calls on a simulated network', () => {
  it('an append whose request is lost is not stored; one whose answer is lost is stored and times out (ambiguous)', async () => {
    const { clock, net, connect, settle } = setup();
    const bus = connect();
    const journal = await bus.journal({ name: 'J', subjects: ['j.>'] });
    net.fate = (hop) => (hop.kind === 'request' ? [] : [0]);
    const lost = track(journal.append('j.a', bytes('1'), { timeout: 50 }));
    await advance(clock, settle, 50, 10);
    expect(lost.value()).toBeInstanceOf(TimeoutError);
    expect(await ((net.fate = () => [0]), journal.lastSeq('j.a'))).toBe(0);

    net.fate = (hop) => (hop.kind === 'response' ? [] : [0]);
    const ambiguous = track(journal.append('j.a', bytes('2'), { timeout: 50 }));
    await advance(clock, settle, 50, 10);
    expect(ambiguous.value()).toBeInstanceOf(TimeoutError);
    net.fate = () => [0];
    expect(await journal.lastSeq('j.a')).toBe(1);
    // The retry with the same message id is answered as a duplicate, as JetStream does.
    const again = await journal.append('j.a', bytes('2'), { msgId: 'm' });
    expect(again.duplicate).toBe(false);
    expect((await journal.append('j.a', bytes('2'), { msgId: 'm' })).duplicate).toBe(true);
  });

  it('a late call runs at the server when it gets there; the fence is checked then', async () => {
    const { clock, net, connect, settle } = setup();
    const bus = connect();
    const kv = await bus.kv({ bucket: 'b' });
    const rev = await kv.put('k', bytes('v1'));
    net.fate = (hop) => (hop.kind === 'request' ? [20] : [0]);
    const late = track(kv.update('k', bytes('late'), rev));
    net.fate = () => [0];
    await kv.put('k', bytes('v2'));
    await advance(clock, settle, 20);
    expect(late.state()).toBe('rejected');
    expect(text((await kv.get('k'))!.value)).toBe('v2');
  });
});

describe('faults of a connection', () => {
  it('a cut-off connection: its publishes go nowhere, its requests time out, nothing reaches it; a stream waits for the heal', async () => {
    const { clock, server, connect, settle } = setup();
    const cut = connect();
    const other = connect();
    const seen: string[] = [];
    cut.subscribe('to.cut', (m) => seen.push(text(m.data)));
    other.subscribe('echo', (m) => m.respond(bytes('pong')));
    const heard: string[] = [];
    other.subscribe('from.cut', (m) => heard.push(text(m.data)));
    const journal = await cut.journal({ name: 'J', subjects: ['j.>'] });
    const theirs = await other.journal({ name: 'J', subjects: ['j.>'] });
    const followed: number[] = [];
    await journal.follow('j.>', {}, (e: JournalEntry) => void followed.push(e.seq));
    await settle();

    server.cut(clientOf(cut));
    cut.publish('from.cut', bytes('x'));
    other.publish('to.cut', bytes('y'));
    const asked = track(cut.request('echo', bytes('q'), { timeout: 100 }));
    const append = track(journal.append('j.a', bytes('1'), { timeout: 100 }));
    await theirs.append('j.b', bytes('2'));
    await advance(clock, settle, 100, 25);
    expect(heard).toEqual([]);
    expect(seen).toEqual([]);
    expect(asked.value()).toBeInstanceOf(TimeoutError);
    expect(append.value()).toBeInstanceOf(TimeoutError);
    expect(followed).toEqual([]);
    expect(await theirs.lastSeq('j.a')).toBe(0);

    server.cut(clientOf(cut), false);
    await settle();
    expect(followed).toEqual([1]);
    expect(await cut.request('echo', bytes('q'), { timeout: 100 }).then((m) => text(m.data))).toBe('pong');
  });

  it('a held connection gets its deliveries late, when released; a killed one never again, and its calls never settle', async () => {
    const { clock, server, connect, settle } = setup();
    const a = connect();
    const b = connect();
    const got: string[] = [];
    b.subscribe('s', (m) => got.push(text(m.data)));
    const journal = await b.journal({ name: 'J', subjects: ['j.>'] });
    server.hold(clientOf(b));
    a.publish('s', bytes('while paused'));
    await advance(clock, settle, 50, 10);
    expect(got).toEqual([]);
    server.hold(clientOf(b), false);
    await settle();
    expect(got).toEqual(['while paused']);

    server.kill(clientOf(b));
    a.publish('s', bytes('after death'));
    expect(a.request('s', bytes('q'), { timeout: 10 })).rejects.toBeInstanceOf(NoRespondersError);
    const append = track(journal.append('j.a', bytes('1'), { timeout: 10 }).catch(() => 'never'));
    await advance(clock, settle, 50, 10);
    expect(got).toEqual(['while paused']);
    // Its timers went with it in a simulation; on this clock the call's own timeout still fires.
    expect(append.state()).toBe('resolved');
    const reader = await a.journal({ name: 'J', subjects: ['j.>'] });
    expect(await reader.lastSeq('j.a')).toBe(0);
  });

  it('a server restart: status disconnect, reconnecting, reconnect; subscriptions come back, streams keep their data, sends wait', async () => {
    const { clock, server, connect, settle } = setup();
    const a = connect();
    const b = connect();
    const status: string[] = [];
    a.onStatus((s: BusStatus) => status.push(s.type));
    const got: string[] = [];
    a.subscribe('s', (m) => got.push(text(m.data)));
    b.subscribe('echo', (m) => m.respond(bytes('pong')));
    const kv = await a.kv({ bucket: 'b' });
    await kv.put('k', bytes('kept'));
    const watched: string[] = [];
    await kv.watch({ key: 'k', include: 'updates' }, (e: KvEntry) => watched.push(text(e.value)));
    const inFlight = track(a.request('nobody', bytes('q'), { timeout: 100 }).catch((e: Error) => e.name));

    server.restart((client) => (client === clientOf(a) ? 30 : 10));
    await advance(clock, settle, 1);
    expect(status).toEqual(['disconnect', 'reconnecting']);
    a.publish('s', bytes('sent while reconnecting'));
    const asked = track(a.request('echo', bytes('q'), { timeout: 100 }));
    const put = track(kv.put('k', bytes('written while reconnecting')));
    await advance(clock, settle, 20);
    expect(got).toEqual([]);
    expect(asked.state()).toBe('pending');
    await advance(clock, settle, 10);
    expect(status).toEqual(['disconnect', 'reconnecting', 'reconnect']);
    expect(got).toEqual(['sent while reconnecting']);
    expect(asked.state()).toBe('resolved');
    expect(put.state()).toBe('resolved');
    expect(watched).toEqual(['written while reconnecting']);
    await advance(clock, settle, 100, 25);
    expect(inFlight.value()).toMatch(/NoResponders|Timeout/);
    expect((await kv.keys()).length).toBe(1);
  });
  it('calls out when the server restarts: an append is sent again after the reconnect (stored once), a kv write fails at once, as on the nats bus', async () => {
    const { clock, net, server, connect, settle } = setup();
    const a = connect();
    const journal = await a.journal({ name: 'R', subjects: ['r.>'] });
    const kv = await a.kv({ bucket: 'rb' });
    const blobs = await a.blobs({ bucket: 'rbl' });
    await blobs.put('b', bytes('blob'));
    await journal.append('r.p', bytes('p1'));
    await journal.append('r.p', bytes('p2'));
    // Every answer takes 50 ms on its way back: a restart 1 ms after the calls finds them executed, unanswered.
    net.fate = (hop) => (hop.kind === 'response' ? [50] : [0]);
    const append = track(journal.append('r.s', bytes('once'), { msgId: 'm1', expectedLastSubjectSeq: 0 }));
    const put = track(kv.put('k', bytes('v')).catch((e: Error) => e.name));
    const blob = track(blobs.get('b'));
    const purge = track(journal.purge('r.p', { below: 2 }));
    await advance(clock, settle, 1);
    // Back after 100 ms: the answers (50 ms on their way) reach a connection that is down, and are lost.
    server.restart(() => 100);
    await advance(clock, settle, 1);
    expect(put.state()).toBe('resolved');
    expect(put.value()).toBe('ConnectionLostError');
    expect(append.state()).toBe('pending');
    await advance(clock, settle, 300, 10);
    // Its first copy was stored: the copy sent again is recognised as this append, not a duplicate of another.
    expect(append.value()).toMatchObject({ seq: 3, duplicate: false });
    // Reads and a purge are made again likewise, long before their 5 s timeout.
    expect(blob.value()).toEqual(bytes('blob'));
    expect(purge.state()).toBe('resolved');
    net.fate = () => [0];
    const left: string[] = [];
    for await (const e of journal.read('r.p')) left.push(text(e.data));
    expect(left).toEqual(['p2']);
    const entries: string[] = [];
    for await (const e of journal.read('r.s')) entries.push(text(e.data));
    expect(entries).toEqual(['once']);
    // The put reached the server before the drop: failed to its caller, it may still have been applied.
    expect((await kv.get('k'))?.value).toEqual(bytes('v'));
  });

  it('control: with no restart the same append is answered once, not as a duplicate', async () => {
    const { clock, net, connect, settle } = setup();
    const a = connect();
    const journal = await a.journal({ name: 'R', subjects: ['r.>'] });
    net.fate = (hop) => (hop.kind === 'response' ? [50] : [0]);
    const append = track(journal.append('r.s', bytes('once'), { msgId: 'm1', expectedLastSubjectSeq: 0 }));
    await advance(clock, settle, 100, 10);
    expect(append.value()).toMatchObject({ seq: 1, duplicate: false });
  });
});

function clientOf(bus: Bus): number {
  return connectionOf(bus)!;
}
