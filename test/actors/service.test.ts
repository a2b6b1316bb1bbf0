import { randomUUID } from 'node:crypto';
import type { NatsConnection } from '@nats-io/nats-core';
import { Svcm, type ServiceIdentity, type ServiceInfo, type ServiceStats } from '@nats-io/services';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, defineApplication, shardOf, startWorker, type Worker } from '../../index.js';
import { createMemoryBus, createMemoryServer } from '../../bus/memory/mod.js';
import { createNatsBus } from '../../bus/nats/mod.js';
import { serviceSubject } from '../../bus/subjects.js';
import type { Bus, Message } from '../../bus/types.js';
import type { NatsServer } from '../../harness/natsServer.js';
import { cohortVersion } from '../../protocol/version.js';
import { cleanupAfterEach } from '../cleanup.js';
import { counterMachine } from '../fixtures/counter.js';
import { connectTest, startTestServer } from '../nats.js';
import { waitFor } from '../waitFor.js';

const counter = defineApplication({ name: 'counter', machine: counterMachine, unusedSessionLifetime: 600_000 });
const SHARDS = 4;

let server: NatsServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.[Symbol.asyncDispose]();
});
const track = cleanupAfterEach();

/** Three workers joining one cluster on the real server; resolves once no shard is moving. */
async function threeWorkers(cluster: string): Promise<Worker[]> {
  const workers: Worker[] = [];
  for (const [i, zone] of ['a', 'b', 'c'].entries()) {
    const bus = track(await createNatsBus({ servers: server.url }));
    workers.push(
      track(
        await startWorker({
          bus,
          cluster,
          applications: [counter],
          shardCount: SHARDS,
          id: `w${i + 1}`,
          zone,
          heartbeatInterval: 100,
          sessionTimeout: 1_000,
        }),
      ),
    );
  }
  await waitFor(
    () =>
      workers.every((w) => {
        const v = w.view;
        return v !== null && v.members.length === 3 && v.shards.every((s) => s.state === 'ACTIVE');
      }),
    { what: 'three members, every shard ACTIVE', timeoutMs: 15_000 },
  );
  return workers;
}

async function collect<T>(iter: Promise<AsyncIterable<T>>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of await iter) out.push(x);
  return out;
}

const ofCluster =
  (cluster: string) =>
  <T extends { metadata?: Record<string, string> }>(list: T[]): T[] =>
    list.filter((x) => x.metadata?.['cluster'] === cluster);

function json(m: { data: Uint8Array }): Record<string, unknown> {
  return JSON.parse(new TextDecoder().decode(m.data)) as Record<string, unknown>;
}

describe('workers as NATS micro services, through the @nats-io/services client', () => {
  it('ping lists every worker, info shows version, metadata and endpoints, stats grow with commands and reads', async () => {
    const cluster = `svc${randomUUID().slice(0, 8)}`;
    const workers = await threeWorkers(cluster);
    const nc = track(await connectTest(server));
    const svc = new Svcm(nc as NatsConnection).client({ strategy: 'stall', maxWait: 1_000 });
    const mine = ofCluster(cluster);

    const pings = mine(await collect<ServiceIdentity>(svc.ping('cohort')));
    expect(pings.map((p) => p.metadata!['worker']).sort()).toEqual(['w1', 'w2', 'w3']);
    expect(new Set(pings.map((p) => p.id)).size).toBe(3);
    for (const p of pings) {
      expect(p).toMatchObject({ type: 'io.nats.micro.v1.ping_response', name: 'cohort', version: cohortVersion() });
      expect(Object.keys(p.metadata!).sort()).toEqual(['cluster', 'view', 'worker', 'zone']);
      expect(p.metadata!['view']).toMatch(/^[1-9][0-9]*$/);
    }
    // Every service answers the bare $SRV.PING too; one instance answers its own id.
    expect(mine(await collect<ServiceIdentity>(svc.ping()))).toHaveLength(3);
    const w2 = pings.find((p) => p.metadata!['worker'] === 'w2')!;
    expect(await collect<ServiceIdentity>(svc.ping('cohort', w2.id))).toEqual([w2]);

    const infos = mine(await collect<ServiceInfo>(svc.info('cohort')));
    expect(infos).toHaveLength(3);
    for (const info of infos) {
      expect(info.type).toBe('io.nats.micro.v1.info_response');
      expect(info.version).toBe(cohortVersion());
      expect(info.description).toMatch(/cohort worker/);
      expect(info.metadata!['zone']).toBe({ w1: 'a', w2: 'b', w3: 'c' }[info.metadata!['worker']!]);
      expect(info.endpoints.map((e) => e.name)).toEqual(['status', 'sessions', 'inspect', 'commands', 'reads']);
      const worker = info.metadata!['worker']!;
      expect(info.endpoints[0]).toMatchObject({
        subject: serviceSubject(cluster, worker, 'status'),
        queue_group: 'q',
      });
      expect(info.endpoints[3]!.subject).toBe(`cohort.${cluster}.cmd.>`);
    }

    const total = (stats: ServiceStats[], endpoint: string, field: 'num_requests' | 'num_errors') =>
      stats.reduce((sum, s) => sum + (s.endpoints!.find((e) => e.name === endpoint)?.[field] ?? 0), 0);
    const before = mine(await collect<ServiceStats>(svc.stats('cohort')));
    expect(before).toHaveLength(3);
    expect(total(before, 'commands', 'num_requests')).toBe(0);
    expect(total(before, 'reads', 'num_requests')).toBe(0);
    for (const s of before) {
      expect(s.type).toBe('io.nats.micro.v1.stats_response');
      // ADR-32's EndpointStats fields, no more.
      expect(Object.keys(s.endpoints![0]!).sort()).toEqual([
        'average_processing_time',
        'last_error',
        'name',
        'num_errors',
        'num_requests',
        'processing_time',
        'queue_group',
        'subject',
      ]);
      expect(Date.parse(s.started)).toBeGreaterThan(Date.now() - 60_000);
    }

    const client = track(
      await connect({ bus: track(await createNatsBus({ servers: server.url })), cluster, shardCount: SHARDS }),
    );
    const ids = ['a', 'b', 'c', 'd', 'e'];
    for (const id of ids) await client.session('counter', id).send({ type: 'ADD', by: 2 });
    for (const id of ids.slice(0, 3)) expect((await client.session('counter', id).read()).seq).toBe(1);
    // A refused command is an error of `commands`.
    await expect(client.session('counter', 'a').send({ type: 'ADD', by: -1 })).rejects.toThrow(/not accepted/);

    const after = mine(await collect<ServiceStats>(svc.stats('cohort')));
    expect(total(after, 'commands', 'num_requests')).toBeGreaterThanOrEqual(6);
    expect(total(after, 'commands', 'num_errors')).toBeGreaterThanOrEqual(1);
    expect(total(after, 'reads', 'num_requests')).toBeGreaterThanOrEqual(3);
    const holderOfA = after.find((s) => s.endpoints!.find((e) => e.name === 'commands')!.num_errors > 0)!;
    expect(holderOfA.endpoints!.find((e) => e.name === 'commands')!.last_error).toMatch(/ADD is not accepted/);
    for (const s of after)
      for (const e of s.endpoints!)
        expect(e.average_processing_time).toBe(
          e.num_requests === 0 ? 0 : Math.trunc(e.processing_time / e.num_requests),
        );

    // The endpoints, by hand as `nats req` would: status of each worker covers every shard once.
    const statuses = await Promise.all(
      workers.map(async (w) => json(await nc.request(serviceSubject(cluster, w.id, 'status'), '', { timeout: 2_000 }))),
    );
    expect(statuses.flatMap((s) => s['primary'] as number[]).sort()).toEqual([0, 1, 2, 3]);
    for (const s of statuses) {
      expect(s['leader']).toBe(workers[0]!.view!.leader);
      expect(s['health']).toBe('healthy');
      expect(s['view']).toBeGreaterThanOrEqual(Number(pings[0]!.metadata!['view']));
      expect(s['member']).toBe(s['worker']);
      expect((s['secondary'] as number[]).length).toBeGreaterThan(0);
    }
    const sessions = await Promise.all(
      workers.map(async (w) =>
        json(await nc.request(serviceSubject(cluster, w.id, 'sessions'), '{}', { timeout: 2_000 })),
      ),
    );
    const listed = sessions.flatMap((s) => s['sessions'] as { app: string; id: string; shard: number; seq: number }[]);
    expect(listed.map((s) => s.id).sort()).toEqual(ids);
    for (const s of listed)
      expect(s).toEqual({ app: 'counter', id: s.id, shard: shardOf('counter', s.id, SHARDS), seq: 1 });
    const holder = workers.find((w) => w.serving.includes(shardOf('counter', 'a', SHARDS)))!;
    const other = workers.find((w) => w !== holder)!;
    const inspect = (w: Worker, body: string) =>
      nc.request(serviceSubject(cluster, w.id, 'inspect'), body, { timeout: 2_000 });
    expect(json(await inspect(holder, '{"app":"counter","id":"a"}'))).toEqual({
      worker: holder.id,
      app: 'counter',
      id: 'a',
      shard: shardOf('counter', 'a', SHARDS),
      held: true,
      seq: 1,
      state: 'running',
      document: { n: 2, log: ['+2'], rang: 0 },
      timers: [],
      transaction: null,
    });
    expect(json(await inspect(other, '{"app":"counter","id":"a"}'))).toMatchObject({ held: false, worker: other.id });
  }, 60_000);

  it('hostile requests to the endpoints get a JSON error with the ADR-32 headers, and the service keeps serving', async () => {
    const cluster = `svc${randomUUID().slice(0, 8)}`;
    const bus = track(await createNatsBus({ servers: server.url }));
    const w = track(
      await startWorker({ bus, cluster, applications: [counter], shards: [0, 1, 2, 3], shardCount: SHARDS, id: 'w.1' }),
    );
    const nc = track(await connectTest(server));
    const ask = (endpoint: string, body: string | Uint8Array) =>
      nc.request(serviceSubject(cluster, w.id, endpoint), body, { timeout: 2_000 });
    const refusals: [string, string | Uint8Array, number, string, RegExp][] = [
      ['inspect', 'not json at all', 400, 'DecodeError', /not JSON/],
      ['inspect', new Uint8Array([0xff, 0xfe, 0x7b]), 400, 'DecodeError', /not JSON/],
      ['inspect', '[1,2,3]', 400, 'InvalidRequestError', /JSON object/],
      ['inspect', '{"app":"counter"}', 400, 'InvalidRequestError', /id must be/],
      [
        'inspect',
        JSON.stringify({ app: 'counter', id: 'x'.repeat(100_000) }),
        400,
        'InvalidRequestError',
        /id must be/,
      ],
      [
        'inspect',
        JSON.stringify({ app: 'counter', id: '\u00e9'.repeat(200) }),
        400,
        'InvalidRequestError',
        /escapes to/,
      ],
      ['inspect', '{"app":"nope","id":"a"}', 404, 'UnknownApplicationError', /nope/],
      ['inspect', '{"__proto__":{"app":"counter"},"id":"a"}', 400, 'DecodeError', /__proto__/],
      ['status', '"a string"', 400, 'InvalidRequestError', /JSON object/],
      ['sessions', '{"a":' + '['.repeat(500) + ']'.repeat(500) + '}', 400, 'DecodeError', /deep/],
    ];
    for (const [endpoint, body, code, name, message] of refusals) {
      const reply = await ask(endpoint, body);
      expect(reply.headers?.get('Nats-Service-Error-Code'), `${endpoint} ${String(body).slice(0, 40)}`).toBe(
        String(code),
      );
      expect(reply.headers?.get('Nats-Service-Error')).toMatch(message);
      expect(reply.headers?.get('Content-Type')).toBe('application/json');
      const error = json(reply)['error'] as { name: string; message: string };
      expect(error.name).toBe(name);
      expect(error.message).toMatch(message);
    }
    // Positive control: the same worker still answers, and counted what it refused.
    await connect({ bus: track(await createNatsBus({ servers: server.url })), cluster, shardCount: SHARDS })
      .then(track)
      .then((c) => c.session('counter', 'z').send({ type: 'ADD', by: 1 }));
    expect(json(await ask('inspect', '{"app":"counter","id":"z"}'))).toMatchObject({ held: true, seq: 1 });
    expect(json(await ask('status', ''))).toMatchObject({
      worker: 'w.1',
      primary: [0, 1, 2, 3],
      view: null,
      activeSessions: 1,
    });
    const [stats] = await collect<ServiceStats>(new Svcm(nc as NatsConnection).client().stats('cohort')).then(
      ofCluster(cluster),
    );
    const inspectStats = stats!.endpoints!.find((e) => e.name === 'inspect')!;
    expect(inspectStats.num_requests).toBe(9);
    expect(inspectStats.num_errors).toBe(8);
    // The worker id `w.1` is escaped in its subjects, never split on its dot.
    expect(stats!.endpoints![0]!.subject).toBe(`cohort.${cluster}.svc.w=2E1.status`);
  }, 30_000);
});

describe('the same protocol on the memory bus, by raw bus requests', () => {
  it('PING, INFO and STATS answer on every subject form, one reply per worker', async () => {
    const memory = createMemoryServer();
    const cluster = 'mem';
    const open = async (): Promise<Bus> => track(createMemoryBus({ server: memory }));
    const workers = [
      track(
        await startWorker({
          bus: await open(),
          cluster,
          applications: [counter],
          shards: [0, 1],
          shardCount: SHARDS,
          id: 'm1',
        }),
      ),
      track(
        await startWorker({
          bus: await open(),
          cluster,
          applications: [counter],
          shards: [2, 3],
          shardCount: SHARDS,
          id: 'm2',
        }),
      ),
    ];
    const bus = await open();
    const heard: Message[] = [];
    bus.subscribe('_INBOX.pings.*', (m) => heard.push(m));
    bus.publish('$SRV.PING', new Uint8Array(0), { reply: '_INBOX.pings.1' });
    await waitFor(() => heard.length === 2, { what: 'both workers ping back' });
    const pings = heard.map(json);
    expect(pings.map((p) => (p['metadata'] as Record<string, string>)['worker']).sort()).toEqual(['m1', 'm2']);
    for (const p of pings) {
      expect(p).toMatchObject({ type: 'io.nats.micro.v1.ping_response', name: 'cohort', version: cohortVersion() });
      expect(p['metadata']).toMatchObject({ cluster: 'mem', view: '', zone: '' });
    }
    const m1 = pings.find((p) => (p['metadata'] as Record<string, string>)['worker'] === 'm1')!;
    const info = json(await bus.request(`$SRV.INFO.cohort.${String(m1['id'])}`, new Uint8Array(0), { timeout: 1_000 }));
    expect(info).toMatchObject({ type: 'io.nats.micro.v1.info_response', id: m1['id'], metadata: m1['metadata'] });
    // Discovery takes no body: garbage is ignored, not misread.
    const garbage = new Uint8Array([0xc1, 0xff, 0x00, 0x7b]);
    expect(json(await bus.request(`$SRV.PING.cohort.${String(m1['id'])}`, garbage, { timeout: 1_000 }))).toEqual(m1);
    expect((info['endpoints'] as { name: string }[]).map((e) => e.name)).toEqual([
      'status',
      'sessions',
      'inspect',
      'commands',
      'reads',
    ]);
    const client = track(await connect({ bus: await open(), cluster, shardCount: SHARDS }));
    await client.session('counter', 'k').send({ type: 'ADD', by: 3 });
    const holder = workers.find((w) => w.serving.includes(shardOf('counter', 'k', SHARDS)))!;
    const pingOfHolder = pings.find((p) => (p['metadata'] as Record<string, string>)['worker'] === holder.id)!;
    const stats = json(
      await bus.request(`$SRV.STATS.cohort.${String(pingOfHolder['id'])}`, new Uint8Array(0), { timeout: 1_000 }),
    );
    expect(stats['type']).toBe('io.nats.micro.v1.stats_response');
    const commands = (stats['endpoints'] as { name: string; num_requests: number }[]).find(
      (e) => e.name === 'commands',
    );
    expect(commands!.num_requests).toBe(1);
    const status = json(
      await bus.request(serviceSubject(cluster, holder.id, 'status'), new Uint8Array(0), { timeout: 1_000 }),
    );
    expect(status).toMatchObject({ worker: holder.id, activeSessions: 1, view: null, leader: null });
  });
});

describe('a worker id too long for a subject token', () => {
  it('still answers discovery, listing only the endpoints that exist; a short id lists all five (control)', async () => {
    const memory = createMemoryServer();
    const open = (): Bus => track(createMemoryBus({ server: memory }));
    const long = 'é'.repeat(400);
    const w = track(
      await startWorker({ bus: open(), cluster: 'ids', applications: [counter], shards: [0], shardCount: 1, id: long }),
    );
    track(
      await startWorker({
        bus: open(),
        cluster: 'ids',
        applications: [counter],
        shards: [],
        shardCount: 1,
        id: 'short',
      }),
    );
    const bus = open();
    const heard: Message[] = [];
    bus.subscribe('_INBOX.infos.*', (m) => heard.push(m));
    bus.publish('$SRV.INFO.cohort', new Uint8Array(0), { reply: '_INBOX.infos.1' });
    await waitFor(() => heard.length === 2, { what: 'both workers answer INFO' });
    const names = (worker: string) =>
      (
        heard.map(json).find((i) => (i['metadata'] as Record<string, string>)['worker'] === worker)!['endpoints'] as {
          name: string;
        }[]
      ).map((e) => e.name);
    expect(names(w.id)).toEqual(['commands', 'reads']);
    expect(names('short')).toEqual(['status', 'sessions', 'inspect', 'commands', 'reads']);
  });
});
