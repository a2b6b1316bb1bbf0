import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, defineApplication, shardOf, startWorker } from '../../index.js';
import { decode, encode } from '../../bus/codec.js';
import { TimeoutError } from '../../bus/errors.js';
import { createMemoryBus, createMemoryServer } from '../../bus/memory/mod.js';
import { createNatsBus } from '../../bus/nats/mod.js';
import { cmdSubject, readSubject } from '../../bus/subjects.js';
import type { Bus, Message } from '../../bus/types.js';
import type { NatsServer } from '../../harness/natsServer.js';
import { startTestServer } from '../nats.js';
import { cleanupAfterEach } from '../cleanup.js';
import { counterMachine } from '../fixtures/counter.js';

const counter = defineApplication({ name: 'counter', machine: counterMachine });
const SHARDS = 4;
const JSON_HEADERS = { 'Content-Type': 'application/json' };
const track = cleanupAfterEach();

let nats: NatsServer;
const memory = createMemoryServer();
beforeAll(async () => {
  nats = await startTestServer();
});
afterAll(async () => {
  await nats?.[Symbol.asyncDispose]();
});

/** A connection to the target's server, taking its answers under `inboxPrefix` (default `_INBOX`). */
type Target = { name: 'memory' | 'nats'; bus(inboxPrefix?: string): Promise<Bus> };
const targets: Target[] = [
  { name: 'memory', bus: async (inboxPrefix) => createMemoryBus({ server: memory, inboxPrefix }) },
  { name: 'nats', bus: (inboxPrefix) => createNatsBus({ servers: nats.url, inboxPrefix }) },
];

function body(m: Message): Record<string, unknown> {
  return JSON.parse(new TextDecoder().decode(m.data)) as Record<string, unknown>;
}

describe.each(targets)('commands and reads typed by hand in JSON ($name)', (target) => {
  async function cohort(options: { ownInbox?: boolean } = {}) {
    const cluster = `j${randomUUID().slice(0, 8)}`;
    const workerBus = track(await target.bus());
    track(
      await startWorker({
        bus: workerBus,
        cluster,
        applications: [counter],
        shards: [0, 1, 2, 3],
        shardCount: SHARDS,
        clients: { ownInbox: options.ownInbox ?? false },
      }),
    );
    const shard = shardOf('counter', 'acc', SHARDS);
    return {
      cluster,
      cmd: (label = 'admin') => cmdSubject(cluster, shard, 'counter', 'acc', label),
      read: (label = 'admin') => readSubject(cluster, shard, 'counter', 'acc', label),
    };
  }

  const text = (s: string): Uint8Array => new TextEncoder().encode(s);
  const ask = (bus: Bus, subject: string, data: string | Uint8Array) =>
    bus.request(subject, typeof data === 'string' ? text(data) : data, { timeout: 3_000, headers: JSON_HEADERS });

  it('a bare event is a command with a fresh id, answered in JSON; a read takes an empty body or {}', async () => {
    const c = await cohort();
    const bus = track(await target.bus());
    const first = await ask(bus, c.cmd(), '{"type":"ADD","by":5}');
    expect(first.headers['Content-Type']).toBe('application/json');
    expect(body(first)).toMatchObject({ ok: true, seq: 1 });
    // Each hand-typed command has an id of its own: the same text again is a second command.
    expect(body(await ask(bus, c.cmd(), '{"type":"ADD","by":5}'))).toMatchObject({ ok: true, seq: 2 });
    for (const empty of ['', '{}', '  \n']) {
      const read = await ask(bus, c.read(), empty);
      expect(read.headers['Content-Type']).toBe('application/json');
      expect(body(read)).toEqual({
        ok: true,
        seq: 2,
        state: 'running',
        document: { n: 10, log: ['+5', '+5'], rang: 0 },
      });
    }
    // A full request in JSON keeps its own id, so a retry is de-duplicated as a client's would be.
    const full = JSON.stringify({ kind: 'command', event: { type: 'ADD', by: 1 }, cmdId: 'hand-1', client: 'admin' });
    expect(body(await ask(bus, c.cmd(), full))).toMatchObject({ ok: true, seq: 3 });
    expect(body(await ask(bus, c.cmd(), full))).toMatchObject({ ok: true, seq: 3, duplicate: true });
    const stale = await ask(bus, c.read(), '{"minSeq":9}');
    expect(body(stale)).toMatchObject({ ok: false, error: { name: 'ConflictError' } });
    expect(stale.headers['Nats-Service-Error-Code']).toBe('400');
  });

  it('invalid JSON, JSON that is no request, a forged client: typed JSON refusals; msgpack unaffected', async () => {
    const c = await cohort();
    const bus = track(await target.bus());
    const refusals: [string, string | Uint8Array, string, RegExp][] = [
      [c.cmd(), '{"type":"ADD",', 'DecodeError', /not JSON/],
      [c.cmd(), new Uint8Array([0x7b, 0xff, 0x7d]), 'DecodeError', /not JSON/],
      [c.cmd(), '', 'InvalidRequestError', /event object/],
      [c.cmd(), '[{"type":"ADD","by":1}]', 'InvalidRequestError', /event object/],
      [c.cmd(), '"ADD"', 'InvalidRequestError', /event object/],
      [c.cmd(), '{"type":"xstate.after.1"}', 'InvalidRequestError', /reserved/],
      [c.cmd(), '{"type":"ADD","by":1,"__proto__":{"x":1}}', 'DecodeError', /__proto__/],
      [c.cmd(), '{"type":"ADD","by":-1}', 'EventRejectedError', /not accepted/],
      [c.read(), '42', 'InvalidRequestError', /JSON read/],
      [c.read(), '{"client":"mallory"}', 'InvalidRequestError', /only minSeq/],
      // A full request claiming another client than the subject's label.
      [
        c.cmd(),
        JSON.stringify({ kind: 'command', event: { type: 'ADD', by: 1 }, cmdId: 'x', client: 'mallory#1' }),
        'InvalidRequestError',
        /claims client "mallory#1"/,
      ],
      [c.read(), JSON.stringify({ kind: 'read', client: 'mallory' }), 'InvalidRequestError', /claims client/],
    ];
    for (const [subject, data, name, message] of refusals) {
      const reply = await ask(bus, subject, data);
      expect(reply.headers['Content-Type'], String(data)).toBe('application/json');
      expect(reply.headers['Nats-Service-Error']).toMatch(message);
      expect(body(reply)).toMatchObject({ ok: false, error: { name } });
      expect((body(reply)['error'] as { message: string }).message).toMatch(message);
    }
    // Nothing was committed by any of them.
    expect(body(await ask(bus, c.read(), ''))).toMatchObject({ ok: true, seq: 0 });
    // msgpack, the clients' format, is untouched: no content type, the same bodies.
    const raw = await bus.request(
      c.cmd('web'),
      encode({ kind: 'command', event: { type: 'ADD', by: 2 }, cmdId: 'm1', client: 'web#1' }),
      { timeout: 3_000 },
    );
    expect(raw.headers['Content-Type']).toBeUndefined();
    expect(decode(raw.data)).toMatchObject({ ok: true, seq: 1 });
    const client = track(await connect({ bus: track(await target.bus()), cluster: c.cluster, shardCount: SHARDS }));
    expect((await client.session('counter', 'acc').read()).document).toMatchObject({ n: 2 });
  });

  it('with each client held to its own inbox, the operator sends as `admin` from the admin inbox, and as nobody else', async () => {
    const c = await cohort({ ownInbox: true });
    const asAdmin = track(await target.bus('_INBOX.admin'));
    expect(body(await ask(asAdmin, c.cmd('admin'), '{"type":"ADD","by":4}'))).toMatchObject({ ok: true, seq: 1 });
    expect(body(await ask(asAdmin, c.read('admin'), ''))).toMatchObject({ ok: true, seq: 1, document: { n: 4 } });
    // From another inbox, a command in admin's name is not answered at all (the reply could be admin's).
    const stranger = track(await target.bus());
    await expect(
      stranger.request(c.cmd('admin'), text('{"type":"ADD","by":4}'), { timeout: 500, headers: JSON_HEADERS }),
    ).rejects.toBeInstanceOf(TimeoutError);
    expect(body(await ask(asAdmin, c.read('admin'), ''))).toMatchObject({ ok: true, seq: 1 });
  });
});
