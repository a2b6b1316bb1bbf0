import { describe, expect, it } from 'vitest';
import {
  connect,
  EventRejectedError,
  InvalidRequestError,
  QueryFailedError,
  TimeoutError,
  UnknownQueryError,
  type Client,
  type Gathered,
} from '../../index.js';
import { decode, encode } from '../../bus/codec.js';
import { scatterSubject } from '../../bus/subjects.js';
import { shardOf } from '../../protocol/shard.js';
import { parseScatterReply } from '../../protocol/scatter.js';
import { clockedTargets } from '../busTargets.js';
import { cleanupAfterEach } from '../cleanup.js';
import { rawCohort, SHARDS, type WireReply } from '../fixtures/rawCohort.js';

const targets = clockedTargets();

/** The counter's queries: one that any document answers, one that throws on 13, one too large to send. */
const queries = {
  total: (doc: unknown) => (doc as { n: number }).n,
  overLimit: (doc: unknown, args: unknown) => (doc as { n: number }).n > (args as { limit: number }).limit,
  unlucky: (doc: unknown) => {
    if ((doc as { n: number }).n === 13) throw new Error('thirteen');
    return 'fine';
  },
  huge: () => 'x'.repeat(2 * 1024 * 1024),
  big: () => 'y'.repeat(200 * 1024),
  mutate: (doc: unknown) => {
    (doc as { n: number }).n = -1;
    return 'changed?';
  },
};

/** Every id in exactly one of the three. */
function partition<T>(g: Gathered<T>, ids: readonly string[]): void {
  const seen = [...g.results.keys(), ...g.errors.keys(), ...g.missing];
  expect(seen.sort()).toEqual([...new Set(ids)].sort());
}

describe.each(targets)('scatter and broadcast on one worker ($name)', ({ make }) => {
  const track = cleanupAfterEach();

  async function setup() {
    const t = make();
    const c = await rawCohort(t.bus, { clock: t.clock, app: { queries } });
    track(c.worker);
    track(c.raw);
    const client: Client = track(
      await connect({
        bus: await t.bus(),
        cluster: c.cluster,
        shardCount: SHARDS,
        label: 'app',
        environment: { clock: t.clock },
        timeout: 10_000,
      }),
    );
    return { t, c, client };
  }

  /** A client of a cluster nobody serves (the cohort's name and an x): every request finds no responders. */
  async function lonelyClient(t: Awaited<ReturnType<typeof setup>>['t'], cluster: string): Promise<Client> {
    return track(
      await connect({
        bus: await t.bus(),
        cluster: `${cluster}x`,
        shardCount: SHARDS,
        label: 'lonely',
        environment: { clock: t.clock },
      }),
    );
  }

  it('asks every session its query in one message per shard and gathers each answer', async () => {
    const { t, c, client } = await setup();
    const ids = Array.from({ length: 60 }, (_, i) => `acct-${i}`);
    const sent = await t.settle(client.broadcast('counter', ids, { type: 'ADD', by: 5 }));
    expect(sent.results.size).toBe(60);
    expect([...sent.results.values()].every((r) => r.seq === 1 && r.duplicate === false)).toBe(true);
    await t.settle(client.session('counter', 'acct-7').send({ type: 'ADD', by: 100 }));
    const requests: string[] = [];
    c.raw.subscribe(`cohort.${c.cluster}.read.*.counter.~shard.>`, (m) => requests.push(m.subject));
    await c.raw.flush();
    const g = await t.settle(
      client.scatter<boolean>('counter', [...ids, 'acct-7'], { query: 'overLimit', args: { limit: 10 } }),
    );
    partition(g, ids);
    expect(g.missing).toEqual([]);
    expect(g.errors.size).toBe(0);
    expect(g.results.get('acct-7')).toBe(true);
    expect([...g.results].filter(([, over]) => over).map(([id]) => id)).toEqual(['acct-7']);
    const shards = new Set(ids.map((id) => shardOf('counter', id, SHARDS)));
    // The client's connection may have its answers before this one has the requests: flush this one.
    await c.raw.flush();
    expect(new Set(requests).size).toBe(shards.size);
    expect(requests).toHaveLength(shards.size);
    const totals = await t.settle(client.scatter<number>('counter', ids, { query: 'total' }));
    expect([...totals.results.values()].reduce((a, b) => a + b, 0)).toBe(60 * 5 + 100);
  });

  it("keeps each session's failure its own: an unknown query, a query that throws, an answer too large", async () => {
    const { t, client } = await setup();
    await t.settle(client.session('counter', 'thirteen').send({ type: 'ADD', by: 13 }));
    const ids = ['thirteen', 'one', 'two'];
    const unknown = await t.settle(client.scatter('counter', ids, { query: 'nope' }));
    partition(unknown, ids);
    expect([...unknown.errors.values()].every((e) => e instanceof UnknownQueryError)).toBe(true);
    const thrown = await t.settle(client.scatter('counter', ids, { query: 'unlucky' }));
    expect(thrown.errors.get('thirteen')).toBeInstanceOf(QueryFailedError);
    expect(thrown.errors.get('thirteen')!.message).toMatch(/thirteen/);
    expect(thrown.results.get('one')).toBe('fine');
    expect(thrown.results.get('two')).toBe('fine');
    const huge = await t.settle(client.scatter('counter', ['one'], { query: 'huge' }));
    expect(huge.errors.get('one')).toBeInstanceOf(QueryFailedError);
    expect(huge.errors.get('one')!.message).toMatch(/bytes, over/);
    // A query that changes what it is given changes a copy, not the session.
    const mutated = await t.settle(client.scatter('counter', ['thirteen'], { query: 'mutate' }));
    expect(mutated.results.get('thirteen')).toBe('changed?');
    expect((await t.settle(client.session('counter', 'thirteen').read())).document).toMatchObject({ n: 13 });
  });

  it('sends a shard’s answers larger than a message by claim-check', async () => {
    const { t, client } = await setup();
    const shard0 = Array.from({ length: 200 }, (_, i) => `big-${i}`)
      .filter((id) => shardOf('counter', id, SHARDS) === 0)
      .slice(0, 8);
    const g = await t.settle(client.scatter<string>('counter', shard0, { query: 'big' }));
    expect(g.errors).toEqual(new Map());
    expect(g.results.size).toBe(8);
    expect([...g.results.values()].every((v) => v.length === 200 * 1024)).toBe(true);
  });

  it('answers read-only scatters from any copy, and resolves at quorum', async () => {
    const { t, client } = await setup();
    const ids = Array.from({ length: 40 }, (_, i) => `q-${i}`);
    const ro = await t.settle(client.scatter<number>('counter', ids, { query: 'total' }, { readOnly: true }));
    expect(ro.results.size).toBe(40);
    const some = await t.settle(client.scatter<number>('counter', ids, { query: 'total' }, { quorum: 5 }));
    partition(some, ids);
    expect(some.results.size).toBeGreaterThanOrEqual(5);
  });

  it('broadcast: a refused command is that session’s error; the others commit once each', async () => {
    const { t, client } = await setup();
    await t.settle(client.session('counter', 'stopped').send({ type: 'STOP' }));
    const ids = ['a', 'b', 'stopped', 'c'];
    const g = await t.settle(client.broadcast('counter', ids, { type: 'ADD', by: 2 }));
    partition(g, ids);
    expect(g.errors.get('stopped')).toBeInstanceOf(EventRejectedError);
    expect([...g.results.keys()].sort()).toEqual(['a', 'b', 'c']);
    const totals = await t.settle(client.scatter<number>('counter', ['a', 'b', 'c'], { query: 'total' }));
    expect([...totals.results.values()]).toEqual([2, 2, 2]);
  });

  it('an id that is no session id is its own error; duplicates count once', async () => {
    const { t, client } = await setup();
    const ids = ['ok', '', 'ok', 'x'.repeat(300)];
    const g = await t.settle(client.scatter('counter', ids, { query: 'total' }));
    partition(g, ids);
    expect(g.results.get('ok')).toBe(0);
    expect(g.errors.get('')).toBeInstanceOf(InvalidRequestError);
    expect(g.errors.get('x'.repeat(300))).toBeInstanceOf(InvalidRequestError);
  });

  it("session.query: one session's answer, or its typed error; a timeout at the deadline, never ambiguous", async () => {
    const { t, c, client } = await setup();
    await t.settle(client.session('counter', 'q13').send({ type: 'ADD', by: 13 }));
    const s = client.session('counter', 'q13');
    expect(await t.settle(s.query<number>('total'))).toBe(13);
    expect(await t.settle(s.query<boolean>('overLimit', { limit: 10 }))).toBe(true);
    expect(await t.settle(s.query<boolean>('overLimit', { limit: 20 }, { readOnly: true }))).toBe(false);
    // A session never written to answers from its initial document.
    expect(await t.settle(client.session('counter', 'fresh').query('total'))).toBe(0);
    await expect(t.settle(s.query('nope'))).rejects.toBeInstanceOf(UnknownQueryError);
    await expect(t.settle(s.query('unlucky'))).rejects.toThrow(QueryFailedError);
    await expect(t.settle(s.query('huge'))).rejects.toThrow(/bytes, over/);
    await expect(s.query('not a name!')).rejects.toThrow(RangeError);
    // The session kept serving, and no query changed it.
    expect((await t.settle(s.read())).document).toMatchObject({ n: 13 });

    const lonely = await lonelyClient(t, c.cluster);
    const started = t.clock.now();
    const err = await t.settle(lonely.session('counter', 'q13').query('total', undefined, { timeout: 800 })).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TimeoutError);
    expect((err as TimeoutError).ambiguous).toBe(false);
    expect((err as TimeoutError).message).toMatch(/query total of counter\/q13 timed out after 800 ms/);
    expect(t.clock.now() - started).toBeGreaterThanOrEqual(800);
    expect(t.clock.now() - started).toBeLessThan(800 + 400);
  });

  it('never waits past its deadline: shards nobody serves come back missing at the timeout', async () => {
    const { t, c } = await setup();
    const lonely = await lonelyClient(t, c.cluster);
    const ids = ['a', 'b', 'c'];
    const started = t.clock.now();
    const g = await t.settle(lonely.scatter('counter', ids, { query: 'total' }, { timeout: 1_500 }));
    const waited = t.clock.now() - started;
    expect(g.missing.sort()).toEqual(ids);
    expect(waited).toBeGreaterThanOrEqual(1_500);
    expect(waited).toBeLessThan(1_500 + 400);
    const b = await t.settle(lonely.broadcast('counter', ids, { type: 'ADD', by: 1 }, { timeout: 1_000 }));
    partition(b, ids);
    expect(t.clock.now() - started - waited).toBeLessThan(1_000 + 400);
  });

  it('refuses hostile scatter messages with a typed error and keeps serving', async () => {
    const { t, c, client } = await setup();
    const shard = shardOf('counter', 'h1', SHARDS);
    const subject = (label = 'raw') => scatterSubject('read', c.cluster, shard, 'counter', label);
    const ask = async (data: Uint8Array, label = 'raw'): Promise<WireReply> =>
      decode((await t.settle(c.raw.request(subject(label), data, { timeout: 5_000 }))).data) as WireReply;
    const good = { kind: 'scatter', client: 'raw#1', query: 'total', ids: ['h1'], within: 2_000 };
    const cases: [string, Uint8Array][] = [
      ['garbage bytes', new Uint8Array([0xc1, 0xff, 0x00])],
      ['not a map', encode([1, 2, 3])],
      ['no ids', encode({ ...good, ids: [] })],
      ['ids not a list', encode({ ...good, ids: 'h1' })],
      ['an id twice', encode({ ...good, ids: ['h1', 'h1'] })],
      ['too many ids', encode({ ...good, ids: Array.from({ length: 1_001 }, (_, i) => `i${i}`) })],
      ['bad query name', encode({ ...good, query: '../etc' })],
      ['no within', encode({ ...good, within: undefined })],
      ['a negative within', encode({ ...good, within: -5 })],
      ['another client', encode({ ...good, client: 'mallory#1' })],
    ];
    for (const [what, data] of cases) {
      const reply = await ask(data);
      expect(reply.ok, what).toBe(false);
      if (!reply.ok) expect(reply.error.name, what).toMatch(/InvalidRequestError|DecodeError/);
    }
    // An id of another shard is that id's error only.
    const other = ['a', 'b', 'c', 'd', 'e', 'f', 'g'].find((id) => shardOf('counter', id, SHARDS) !== shard)!;
    const mixed = await ask(encode({ ...good, ids: ['h1', other] }));
    expect(mixed.ok).toBe(true);
    const parsed = parseScatterReply(mixed, new Set(['h1', other]));
    expect(parsed instanceof Error).toBe(false);
    if (!(parsed instanceof Error) && parsed.ok) {
      expect(parsed.values.map(([id]) => id)).toEqual(['h1']);
      expect(parsed.errors.map(([id, e]) => [id, e.name])).toEqual([[other, 'InvalidRequestError']]);
    }
    // Positive control: the same worker answers the good request, and the client's.
    const fine = await ask(encode(good));
    expect(fine.ok).toBe(true);
    const g = await t.settle(client.scatter('counter', ['h1'], { query: 'total' }));
    expect(g.results.get('h1')).toBe(0);
  });
});

describe('scatter replies, as the client reads them', () => {
  const asked = new Set(['a', 'b']);
  it('refuses a reply naming an id it was not asked, or one twice, or of the wrong shape', () => {
    const err = { name: 'X', message: 'x', retryable: false };
    expect(parseScatterReply({ ok: true, values: [['c', 1, 0]], errors: [] }, asked)).toBeInstanceOf(
      InvalidRequestError,
    );
    expect(parseScatterReply({ ok: true, values: [['a', 1, 0]], errors: [['a', err]] }, asked)).toBeInstanceOf(
      InvalidRequestError,
    );
    expect(parseScatterReply({ ok: true, values: [['a', -1, 0]], errors: [] }, asked)).toBeInstanceOf(
      InvalidRequestError,
    );
    expect(parseScatterReply({ ok: true, values: 'a', errors: [] }, asked)).toBeInstanceOf(InvalidRequestError);
    expect(parseScatterReply('nope', asked)).toBeInstanceOf(InvalidRequestError);
    expect(parseScatterReply({ ok: false, error: 3 }, asked)).toBeInstanceOf(InvalidRequestError);
  });

  it('reads a good one, leaving out ids as late', () => {
    const r = parseScatterReply({ ok: true, values: [['a', 2, { n: 1 }]], errors: [] }, asked);
    expect(r).toEqual({ ok: true, values: [['a', 2, { n: 1 }]], errors: [], late: ['b'] });
  });
});
