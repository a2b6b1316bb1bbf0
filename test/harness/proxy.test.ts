/**
 * The TCP proxy the test cluster puts between each worker and NATS, with a
 * real nats-server and raw nats.js connections: one connection through the
 * proxy, one straight to the server, and a responder on the straight one.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { NatsServer } from '../../harness/natsServer.js';
import { startProxy, type TcpProxy } from '../../harness/proxy.js';
import { startTestServer } from '../nats.js';
import { waitFor } from '../waitFor.js';

let server: NatsServer;
let direct: NatsConnection;
let subjects = 0;

beforeAll(async () => {
  server = await startTestServer({ jetstream: false });
  direct = await connect({ servers: server.url });
});

afterAll(async () => {
  await direct?.close();
  await server?.[Symbol.asyncDispose]();
});

const opened: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const thing of opened.splice(0).reverse()) await thing.close();
});

/** A proxy in front of the server and a connection through it that reconnects quickly. */
async function proxied(): Promise<{ proxy: TcpProxy; nc: NatsConnection; statuses: string[] }> {
  const proxy = await startProxy({ target: server.url });
  opened.push(proxy);
  const nc = await connect({ servers: proxy.url, reconnectTimeWait: 50, maxReconnectAttempts: -1 });
  opened.push(nc);
  const statuses: string[] = [];
  void (async () => {
    for await (const s of nc.status()) statuses.push(s.type);
  })();
  return { proxy, nc, statuses };
}

/** A subject the direct connection answers on, echoing the request. */
async function echo(): Promise<string> {
  const subject = `echo.${++subjects}`;
  direct.subscribe(subject, { callback: (_err, msg) => void msg.respond(msg.data) });
  await direct.flush();
  return subject;
}

async function roundTrip(nc: NatsConnection, subject: string, timeout = 2_000): Promise<number> {
  const started = performance.now();
  const reply = await nc.request(subject, 'ping', { timeout });
  expect(reply.string()).toBe('ping');
  return performance.now() - started;
}

describe('tcp proxy', () => {
  it('forwards traffic both ways and counts it', async () => {
    const { proxy, nc } = await proxied();
    const subject = await echo();
    await roundTrip(nc, subject);
    const stats = proxy.stats();
    expect(stats).toMatchObject({ accepted: 1, open: 1, cut: 0 });
    expect(stats.delivered['client-to-server']).toBeGreaterThan(0);
    expect(stats.delivered['server-to-client']).toBeGreaterThan(0);
    expect(proxy.target.port).toBe(server.port);
  });

  it('a partition stops traffic both ways without closing anything; heal lets the held bytes through', async () => {
    const { proxy, nc, statuses } = await proxied();
    const subject = await echo();
    await roundTrip(nc, subject);
    const seen: string[] = [];
    const sub = direct.subscribe(`held.${subjects}`, { callback: (_err, msg) => void seen.push(msg.string()) });
    await direct.flush();

    proxy.partition();
    expect(proxy.partitioned).toEqual(['client-to-server', 'server-to-client']);
    await expect(nc.request(subject, 'ping', { timeout: 500 })).rejects.toThrow();
    nc.publish(`held.${subjects}`, 'sent during the partition');
    await waitFor(() => proxy.stats().held['client-to-server'] > 0, { what: 'bytes held at the partition' });
    expect(seen).toEqual([]);

    proxy.heal();
    await waitFor(() => seen.length === 1, { what: 'the held message delivered' });
    expect(seen).toEqual(['sent during the partition']);
    await roundTrip(nc, subject);
    // The same connection throughout: nobody saw the partition as a disconnect.
    expect(proxy.stats()).toMatchObject({ accepted: 1, open: 1 });
    expect(statuses).not.toContain('disconnect');
    sub.unsubscribe();
  });

  it('one way: client-to-server still flows while server-to-client is held, and the reverse', async () => {
    const { proxy, nc } = await proxied();
    const subject = await echo();
    const fromProxied: string[] = [];
    const toProxied: string[] = [];
    direct.subscribe(`up.${subjects}`, { callback: (_err, msg) => void fromProxied.push(msg.string()) });
    nc.subscribe(`down.${subjects}`, { callback: (_err, msg) => void toProxied.push(msg.string()) });
    await Promise.all([direct.flush(), nc.flush()]);

    proxy.oneWay('client-to-server');
    expect(proxy.partitioned).toEqual(['server-to-client']);
    nc.publish(`up.${subjects}`, 'a');
    direct.publish(`down.${subjects}`, 'b');
    await waitFor(() => fromProxied.length === 1, { what: 'the proxied publish to arrive' });
    // The request gets to the responder; its reply does not come back.
    await expect(nc.request(subject, 'ping', { timeout: 500 })).rejects.toThrow();
    expect(toProxied).toEqual([]);

    proxy.oneWay('server-to-client');
    expect(proxy.partitioned).toEqual(['client-to-server']);
    await waitFor(() => toProxied.length === 1, { what: 'the held message to the proxied connection' });
    nc.publish(`up.${subjects}`, 'c');
    direct.publish(`down.${subjects}`, 'd');
    await waitFor(() => toProxied.length === 2, { what: 'the direct publish to arrive' });
    await waitFor(() => proxy.stats().held['client-to-server'] > 0, { what: 'the proxied publish held' });
    expect(fromProxied).toEqual(['a']);

    proxy.heal();
    await waitFor(() => fromProxied.length === 2, { what: 'the held publish delivered' });
    expect(fromProxied).toEqual(['a', 'c']);
    expect(toProxied).toEqual(['b', 'd']);
    await roundTrip(nc, subject);
  });

  it('a partition holds at most about 1 MB a direction; the rest backs up at the sender, and all of it arrives in order', async () => {
    const { proxy, nc } = await proxied();
    const received: number[] = [];
    direct.subscribe(`bulk.${++subjects}`, { callback: (_err, msg) => void received.push(msg.data[0]!) });
    await direct.flush();
    proxy.partition('client-to-server');
    for (let i = 0; i < 40; i++) {
      const body = new Uint8Array(100_000);
      body[0] = i;
      nc.publish(`bulk.${subjects}`, body);
    }
    await waitFor(() => proxy.stats().held['client-to-server'] >= 1 << 20, { what: '1 MB held' });
    // Reading stopped at the mark: at most one more chunk of a socket read is taken.
    expect(proxy.stats().held['client-to-server']).toBeLessThan((1 << 20) + (1 << 17));
    expect(received).toEqual([]);
    proxy.heal();
    await waitFor(() => received.length === 40, { timeoutMs: 10_000, what: 'all 40 messages' });
    expect(received).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(proxy.stats().held['client-to-server']).toBe(0);
  });

  it('delay adds at least the delay each way to a round trip; heal removes it', async () => {
    const { proxy, nc } = await proxied();
    const subject = await echo();
    await roundTrip(nc, subject);
    proxy.delay(150);
    expect(proxy.delays).toEqual({ 'client-to-server': 150, 'server-to-client': 150 });
    expect(await roundTrip(nc, subject)).toBeGreaterThanOrEqual(300);
    proxy.delay(0, 'server-to-client');
    const oneWay = await roundTrip(nc, subject);
    expect(oneWay).toBeGreaterThanOrEqual(150);
    proxy.heal();
    expect(proxy.delays).toEqual({ 'client-to-server': 0, 'server-to-client': 0 });
    expect(() => proxy.delay(-1)).toThrow(RangeError);
  });

  it('cut resets the connection: the client reconnects through the proxy', async () => {
    const { proxy, nc, statuses } = await proxied();
    const subject = await echo();
    await roundTrip(nc, subject);
    expect(proxy.cut()).toBe(1);
    await waitFor(() => statuses.includes('reconnect'), { timeoutMs: 10_000, what: 'a reconnect' });
    expect(statuses).toContain('disconnect');
    await roundTrip(nc, subject);
    expect(proxy.stats()).toMatchObject({ accepted: 2, open: 1, cut: 1 });
  });

  it('a target that refuses is passed on as a reset, and close ends everything', async () => {
    const dead = await startProxy({ target: { host: '127.0.0.1', port: 1 } });
    opened.push(dead);
    await expect(connect({ servers: dead.url, reconnect: false, timeout: 2_000 })).rejects.toThrow();
    await waitFor(() => dead.stats().open === 0, { what: 'the refused connection closed' });

    const { proxy, nc } = await proxied();
    const subject = await echo();
    await roundTrip(nc, subject);
    await proxy.close();
    expect(proxy.stats().open).toBe(0);
    await expect(nc.request(subject, 'ping', { timeout: 500 })).rejects.toThrow();
  });
});
