import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { jetstreamManager } from '@nats-io/jetstream';
import type { Msg } from '@nats-io/nats-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, defineApplication, shardOf, startWorker } from '../../index.js';
import { createNatsBus } from '../../bus/nats/mod.js';
import { journalStreamName, journalSubject } from '../../bus/subjects.js';
import { encode, encodeView, NO_SAFEGUARDS } from '../../internal.js';
import { decodePayload } from '../../cli/decode.js';
import type { NatsServer } from '../../harness/natsServer.js';
import { counterMachine } from '../fixtures/counter.js';
import { cleanupAfterEach } from '../cleanup.js';
import { connectTest, startTestServer } from '../nats.js';
import { waitFor } from '../waitFor.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** `cohort decode` as natscli's --translate runs it: the body on stdin, stdout and stderr read together. */
function decodeCli(body: Uint8Array): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', 'decode'], { cwd: ROOT });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (output += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (output += c));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output }));
    child.stdin.end(body);
  });
}

const app = defineApplication({ name: 'counter', machine: counterMachine });

describe('cohort decode on bodies from a real nats-server', () => {
  let server: NatsServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server[Symbol.asyncDispose]();
  });
  const track = cleanupAfterEach();

  it('a journal entry read from the stream and a heartbeat read off the wire come out as JSON', async () => {
    const cluster = `c${randomUUID().slice(0, 8)}`;
    await using nc = await connectTest(server);
    const beats: Msg[] = [];
    nc.subscribe(`cohort.${cluster}.hb.>`, { callback: (_e, m) => void beats.push(m) });
    const bus = track(await createNatsBus({ servers: server.url }));
    track(await startWorker({ bus, cluster, applications: [app], shardCount: 4, id: 'w1', zone: 'east' }));
    const client = track(await connect({ bus, cluster, label: 'teller', shardCount: 4 }));
    await client.session('counter', 'alice').send({ type: 'ADD', by: 5 });

    const jsm = await jetstreamManager(nc);
    const stored = await jsm.streams.getMessage(journalStreamName(cluster), {
      last_by_subj: journalSubject(cluster, shardOf('counter', 'alice', 4), 'counter', 'alice'),
    });
    const entry = await decodeCli(stored!.data);
    expect(entry.code).toBe(0);
    const record = JSON.parse(entry.output) as { v: number; events: { seq: number; event: Record<string, unknown> }[] };
    expect(record.v).toBe(1);
    expect(record.events).toHaveLength(1);
    expect(record.events[0]!.seq).toBe(1);
    expect(record.events[0]!.event).toMatchObject({ type: 'ADD', by: 5, meta: { client: client.id } });
    expect(entry.output).toContain('\n  "events": ['); // indented for reading

    const beat = await waitFor(() => beats[0], { what: 'a heartbeat' });
    const decoded = await decodeCli(beat.data);
    expect(decoded.code).toBe(0);
    expect(JSON.parse(decoded.output)).toMatchObject({ id: 'w1', zone: 'east', promotable: true });
  });

  it('garbage prints its bytes as base64 with the error, exit 0 and nothing on stderr; empty input is null', async () => {
    const garbage = await decodeCli(new Uint8Array([0xc1, 0xff, 0x00, 0x80]));
    expect(garbage.code).toBe(0);
    const parsed = JSON.parse(garbage.output) as { error: string; base64: string };
    expect(parsed.base64).toBe('wf8AgA==');
    expect(parsed.error).toMatch(/not JSON, decimal text or msgpack/);
    const empty = await decodeCli(new Uint8Array(0));
    expect(empty).toEqual({ code: 0, output: 'null\n' });
  });
});

describe('decoding every kind of body', () => {
  const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
  const out = (body: Uint8Array): unknown => JSON.parse(decodePayload(body));

  it('JSON (the view) comes back indented; decimal text (counters) as a number, too large for one as a string; other text as a string', () => {
    const view = encodeView({
      viewId: 3,
      members: [{ id: 'w1', zone: 'a', promotable: true, joined: 1 }],
      leader: 'w1',
      replicas: 0,
      shardCount: 1,
      shards: [{ primary: 'w1', replicas: [], state: 'ACTIVE', next: null, epoch: 1 }],
      transitional: false,
      possibleDataLoss: [],
      safeguards: NO_SAFEGUARDS,
    });
    expect(decodePayload(view)).toContain('\n  "viewId": 3,');
    expect(out(view)).toMatchObject({ leader: 'w1', shards: [{ primary: 'w1' }] });
    expect(out(bytes('12345'))).toBe(12345);
    expect(out(bytes('123456789012345678901234567890'))).toBe('123456789012345678901234567890');
    expect(out(bytes('2026-12-04T03:40:17.123Z'))).toBe('2026-12-04T03:40:17.123Z');
  });

  it('msgpack: commands, replies, snapshots and replica reports; bytes as base64, dates ISO, bigints as strings', () => {
    const command = encode({ kind: 'command', event: { type: 'ADD', by: 2 }, cmdId: 'c1', client: 'teller#1' });
    expect(out(command)).toEqual({ kind: 'command', event: { type: 'ADD', by: 2 }, cmdId: 'c1', client: 'teller#1' });
    expect(out(encode({ ok: true, seq: 4, by: 'w1' }))).toEqual({ ok: true, seq: 4, by: 'w1' });
    expect(out(encode({ w: 'w2', s: 3, q: 17 }))).toEqual({ w: 'w2', s: 3, q: 17 });
    const snapshot = encode({
      seq: 9,
      at: new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 6)),
      blob: new Uint8Array([1, 2, 3, 255]),
      big: 2n ** 63n,
      nested: [{ deep: [null, -1.5] }],
    });
    expect(out(snapshot)).toEqual({
      seq: 9,
      at: '2026-01-02T03:04:05.006Z',
      blob: 'AQID/w==',
      big: '9223372036854775808',
      nested: [{ deep: [null, -1.5] }],
    });
    expect(out(encode(NaN))).toBe('NaN');
  });

  it('a `__proto__` key from the wire is refused as cohort refuses it: shown as bytes with the reason, nothing polluted', () => {
    // {"__proto__": {"polluted": 1}} packed by hand: cohort's encoder refuses the key.
    const body = new Uint8Array([
      0x81,
      0xa9,
      ...new TextEncoder().encode('__proto__'),
      0x81,
      0xa8,
      ...new TextEncoder().encode('polluted'),
      0x01,
    ]);
    expect(out(body)).toEqual({
      error: expect.stringContaining("the key '__proto__'"),
      base64: Buffer.from(body).toString('base64'),
    });
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });
});
