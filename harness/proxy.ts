import { connect as dial, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

/**
 * A small TCP proxy for network faults between one process and a server
 * (in the test cluster, between each worker and NATS). Each connection
 * accepted is piped to a fresh connection to the target; the proxy can then
 * stop traffic in one direction or both, add latency, or cut every
 * connection, while the processes at either end know nothing of it.
 *
 * A partition holds bytes, it never drops them: TCP inside one connection
 * loses nothing, it retransmits, so a stream with a hole in it would be a
 * fault no network makes. The proxy keeps what it has read (up to 1 MB a
 * direction, then it stops reading, so the sender's kernel buffers fill and
 * its writes back up, as they would with nobody acknowledging); the sockets
 * stay open, so neither end is told anything, and heartbeats simply stop
 * arriving. On heal the held bytes flow on, late, in order. What a long real
 * partition adds, the connection finally reset when retransmission gives
 * up, is `cut()`.
 */

/** Client: the process that connects to the proxy (a worker); server: the target (NATS). */
export type Direction = 'client-to-server' | 'server-to-client';

export const DIRECTIONS: readonly Direction[] = ['client-to-server', 'server-to-client'];

export interface TcpProxyOptions {
  /** Where each connection is forwarded: `nats://host:port`, `host:port`, or `{ host, port }`. */
  target: string | { host: string; port: number };
  /** The port to listen on, on 127.0.0.1 (default: a free one). */
  port?: number;
}

export interface ProxyStats {
  /** Connections accepted since the proxy started. */
  readonly accepted: number;
  /** Connections open now (both ends). */
  readonly open: number;
  /** Connections ended by cut(). */
  readonly cut: number;
  /** Bytes delivered, each way. */
  readonly delivered: Readonly<Record<Direction, number>>;
  /** Bytes read but not yet delivered (delayed, or held by a partition), each way. */
  readonly held: Readonly<Record<Direction, number>>;
}

export interface TcpProxy extends AsyncDisposable {
  /** `nats://127.0.0.1:PORT`: what the process behind the proxy connects to. */
  readonly url: string;
  readonly port: number;
  readonly target: { readonly host: string; readonly port: number };
  /** The directions partitioned now. */
  readonly partitioned: readonly Direction[];
  /** Latency added to each chunk now, per direction, in ms. */
  readonly delays: Readonly<Record<Direction, number>>;
  /**
   * Stops traffic in `direction`, or both ways (the default): bytes are held
   * and nothing more is read from that side, sockets stay open. Also applies
   * to connections made while it lasts.
   */
  partition(direction?: Direction | 'both'): void;
  /** Traffic flows only in `flowing`; the other direction is partitioned (a half-open partition). */
  oneWay(flowing: Direction): void;
  /** Ends every partition and every delay: held bytes flow on, in order. */
  heal(): void;
  /** Adds `ms` of latency to every chunk from now on, in `direction` or both ways (0 removes it); order is kept. */
  delay(ms: number, direction?: Direction | 'both'): void;
  /** Resets every open connection (RST to both ends, held bytes lost): the client reconnects. Returns how many. */
  cut(): number;
  stats(): ProxyStats;
  /** Stops listening and destroys every connection. */
  close(): Promise<void>;
}

/** Stop reading a side while this many bytes from it wait for delivery (delayed or held by a partition). */
const HIGH_WATER_BYTES = 1 << 20;

function parseTarget(target: TcpProxyOptions['target']): { host: string; port: number } {
  if (typeof target !== 'string') return { host: target.host, port: target.port };
  const url = new URL(target.includes('://') ? target : `tcp://${target}`);
  const port = Number(url.port);
  if (!Number.isInteger(port) || port <= 0) throw new RangeError(`proxy target ${target} has no port`);
  return { host: url.hostname, port };
}

/** What the flows of every connection consult: the proxy's fault settings and its counters. */
interface Faults {
  readonly blocked: Record<Direction, boolean>;
  readonly delays: Record<Direction, number>;
  readonly delivered: Record<Direction, number>;
  readonly held: Record<Direction, number>;
}

/** One direction of one connection: bytes read from `source`, each released at its due time, written to `sink`. */
class Flow {
  readonly #queue: { chunk: Buffer; due: number }[] = [];
  #queued = 0;
  #lastDue = 0;
  #timer: NodeJS.Timeout | undefined;
  #awaitingDrain = false;
  #sourceEnded = false;
  #closed = false;

  constructor(
    readonly direction: Direction,
    private readonly source: Socket,
    private readonly sink: Socket,
    private readonly faults: Faults,
  ) {
    source.on('data', (chunk: Buffer) => this.#receive(chunk));
    source.once('end', () => {
      this.#sourceEnded = true;
      this.pump();
    });
  }

  #receive(chunk: Buffer): void {
    if (this.#closed) return;
    const due = Math.max(this.#lastDue, performance.now() + this.faults.delays[this.direction]);
    this.#lastDue = due;
    this.#queue.push({ chunk, due });
    this.#queued += chunk.length;
    this.faults.held[this.direction] += chunk.length;
    this.pump();
  }

  /** Delivers whatever is due and may flow, then decides whether to read on. Called on every change. */
  pump(): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    while (!this.faults.blocked[this.direction] && !this.#awaitingDrain && this.#queue.length > 0) {
      const head = this.#queue[0]!;
      const wait = head.due - performance.now();
      if (wait > 0) {
        this.#timer = setTimeout(() => this.pump(), Math.ceil(wait));
        break;
      }
      this.#queue.shift();
      this.#queued -= head.chunk.length;
      this.faults.held[this.direction] -= head.chunk.length;
      if (this.sink.destroyed || !this.sink.writable) continue;
      this.faults.delivered[this.direction] += head.chunk.length;
      if (!this.sink.write(head.chunk)) {
        this.#awaitingDrain = true;
        this.sink.once('drain', () => {
          this.#awaitingDrain = false;
          this.pump();
        });
      }
    }
    const blocked = this.faults.blocked[this.direction];
    if (this.#sourceEnded && this.#queue.length === 0 && !blocked) {
      // The sender's FIN is passed on in its place in the stream, not across a partition.
      if (!this.sink.destroyed) this.sink.end();
      return;
    }
    // Held bytes are read and kept up to the high-water mark; beyond it, the sender backs up.
    const read = !this.#awaitingDrain && this.#queued < HIGH_WATER_BYTES;
    if (read && this.source.isPaused()) this.source.resume();
    else if (!read && !this.source.isPaused()) this.source.pause();
  }

  /** The connection is gone: whatever it still held is lost with it. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.faults.held[this.direction] -= this.#queued;
    this.#queue.length = 0;
    this.#queued = 0;
  }
}

/** One accepted connection and its connection to the target. */
class Link {
  readonly flows: readonly Flow[];
  /** Both sockets closed. */
  readonly closed: Promise<void>;
  #open = 2;
  #onClosed!: () => void;

  constructor(
    readonly client: Socket,
    readonly server: Socket,
    faults: Faults,
    onClosed: (link: Link) => void,
  ) {
    this.closed = new Promise((resolve) => (this.#onClosed = resolve));
    this.flows = [
      new Flow('client-to-server', client, server, faults),
      new Flow('server-to-client', server, client, faults),
    ];
    for (const socket of [client, server]) {
      socket.setNoDelay(true);
      socket.on('error', () => {
        // Its 'close' follows; the peer is ended there.
      });
      socket.once('close', (hadError) => {
        // An error at one end (a reset, a refused connection to the target) resets the other;
        // an orderly end has already been passed on by its flow.
        const peer = socket === client ? server : client;
        if (hadError && !peer.destroyed) peer.resetAndDestroy();
        if (--this.#open === 0) {
          for (const flow of this.flows) flow.close();
          onClosed(this);
          this.#onClosed();
        }
      });
    }
    // A connection made during a partition is held from its first byte.
    this.pump();
  }

  pump(): void {
    for (const flow of this.flows) flow.pump();
  }

  reset(): void {
    for (const socket of [this.client, this.server]) if (!socket.destroyed) socket.resetAndDestroy();
  }
}

class LocalTcpProxy implements TcpProxy {
  readonly #links = new Set<Link>();
  readonly #faults: Faults = {
    blocked: { 'client-to-server': false, 'server-to-client': false },
    delays: { 'client-to-server': 0, 'server-to-client': 0 },
    delivered: { 'client-to-server': 0, 'server-to-client': 0 },
    held: { 'client-to-server': 0, 'server-to-client': 0 },
  };
  #accepted = 0;
  #cut = 0;
  #closing: Promise<void> | undefined;

  constructor(
    private readonly server: Server,
    readonly target: { readonly host: string; readonly port: number },
  ) {
    server.on('connection', (client) => this.#accept(client));
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  get partitioned(): readonly Direction[] {
    return DIRECTIONS.filter((d) => this.#faults.blocked[d]);
  }

  get delays(): Readonly<Record<Direction, number>> {
    return { ...this.#faults.delays };
  }

  #accept(client: Socket): void {
    if (this.#closing !== undefined) {
      client.destroy();
      return;
    }
    this.#accepted++;
    const server = dial({ host: this.target.host, port: this.target.port });
    this.#links.add(new Link(client, server, this.#faults, (link) => this.#links.delete(link)));
  }

  #set(direction: Direction | 'both', apply: (d: Direction) => void): void {
    for (const d of direction === 'both' ? DIRECTIONS : [direction]) apply(d);
    for (const link of this.#links) link.pump();
  }

  partition(direction: Direction | 'both' = 'both'): void {
    this.#set(direction, (d) => (this.#faults.blocked[d] = true));
  }

  oneWay(flowing: Direction): void {
    this.#faults.blocked[flowing] = false;
    this.partition(flowing === 'client-to-server' ? 'server-to-client' : 'client-to-server');
  }

  heal(): void {
    this.#set('both', (d) => {
      this.#faults.blocked[d] = false;
      this.#faults.delays[d] = 0;
    });
  }

  delay(ms: number, direction: Direction | 'both' = 'both'): void {
    if (!(Number.isFinite(ms) && ms >= 0))
      throw new RangeError(`proxy delay must be a non-negative number of ms, got ${ms}`);
    this.#set(direction, (d) => (this.#faults.delays[d] = ms));
  }

  cut(): number {
    const links = [...this.#links];
    for (const link of links) link.reset();
    this.#cut += links.length;
    return links.length;
  }

  stats(): ProxyStats {
    return {
      accepted: this.#accepted,
      open: this.#links.size,
      cut: this.#cut,
      delivered: { ...this.#faults.delivered },
      held: { ...this.#faults.held },
    };
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      const listening = new Promise<void>((resolve) => this.server.close(() => resolve()));
      const links = [...this.#links];
      for (const link of links) link.reset();
      await Promise.all([listening, ...links.map((link) => link.closed)]);
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Starts a proxy on 127.0.0.1 in front of `target`; resolves once it listens. */
export async function startProxy(options: TcpProxyOptions): Promise<TcpProxy> {
  const target = parseTarget(options.target);
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return new LocalTcpProxy(server, target);
}
