import type { Clock } from '../clock.js';
import { resolveEnvironment, type Environment } from '../environment.js';
import { InvalidNameError } from '../errors.js';
import { validateName, validateSubject } from '../names.js';
import type { WireMessage } from './payload.js';
import { SERVER, type ConnectionHooks, type Network } from './network.js';
import { Router } from './router.js';
import { DirectTransport, NetworkTransport, type Transport } from './transport.js';
import { MemoryStream, type StoreOutcome, type StreamSettings } from './stream.js';
import { subjectsOverlap } from '../filters.js';

export interface MemoryServerOptions {
  /** Its clock drives duplicate windows and entry times (default: the system's). */
  environment?: Partial<Environment>;
  /** Largest message in bytes, headers included (default 1 MiB, as nats-server). */
  maxPayload?: number;
  /**
   * A simulated network between the server and its connections (network.ts):
   * messages lost, late, duplicated, connections cut off, paused, killed, a
   * restart. Default none: everything arrives at once, in one order.
   */
  network?: Network;
}

export const DEFAULT_MAX_PAYLOAD = 1_048_576;

/** The objects of a blob bucket, each with when it was stored; older than `maxAge` (if not 0), gone. */
export interface BlobBucket {
  readonly maxAge: number;
  readonly objects: Map<string, { readonly data: Uint8Array; readonly time: number }>;
}

const encoder = new TextEncoder();

/**
 * One in-process "nats-server": the subject space, the streams (journals and
 * kv buckets are both streams, as on a real server) and the blob buckets,
 * shared by any number of connections. Connections are numbered and every
 * route names its connection, so cutting one off (a partition, a disconnect)
 * is a filter on who may publish and who is routed to.
 */
export class MemoryServer {
  readonly environment: Environment;
  readonly clock: Clock;
  readonly maxPayload: number;
  readonly #transport: Transport;
  readonly #network: NetworkTransport | undefined;
  readonly #router = new Router();
  /** Per route, copies of messages on their way to it, and who waits for none to be (a drain). */
  readonly #flying = new Map<number, { count: number; waiters: Array<() => void> }>();
  readonly #streams = new Map<string, MemoryStream>();
  readonly #blobs = new Map<string, BlobBucket>();
  #nextClient = 1;
  #nextRoute = 1;

  constructor(options: MemoryServerOptions = {}) {
    const maxPayload = options.maxPayload ?? DEFAULT_MAX_PAYLOAD;
    if (!Number.isSafeInteger(maxPayload) || maxPayload <= 0) {
      throw new RangeError(`maxPayload must be a positive integer, got ${maxPayload}`);
    }
    this.environment = resolveEnvironment(options.environment);
    this.clock = this.environment.clock;
    this.maxPayload = maxPayload;
    this.#network = options.network === undefined ? undefined : new NetworkTransport(this.clock, options.network);
    this.#transport = this.#network ?? new DirectTransport();
  }

  /** On a simulated network API calls (journal, kv, blobs) travel too, and may be lost or late. */
  get networked(): boolean {
    return this.#transport.networked;
  }

  /** A new connection's id; ids are handed out in order, so inbox names replay. */
  connect(hooks?: ConnectionHooks): number {
    const client = this.#nextClient++;
    this.#transport.open(client, hooks);
    return client;
  }

  /** Drops every route the connection registered. */
  disconnect(client: number): void {
    this.#router.removeClient(client);
    this.#transport.close(client);
  }

  subscribe(client: number, subject: string, queue: string | undefined, deliver: (m: WireMessage) => void): number {
    const id = this.#nextRoute++;
    this.#router.add({ id, client, subject, queue, deliver });
    return id;
  }

  unsubscribe(route: number): void {
    this.#router.remove(route);
  }

  /**
   * A core publish. A stream capturing the subject stores it (honouring
   * Nats-Msg-Id and the expected-sequence header) and acks to `reply`, as
   * nats-server does. Returns how many took the message (0: no responders),
   * or -1 when it went nowhere: its sender is cut off from the server.
   */
  publish(message: WireMessage, from: number = SERVER): number {
    if (!this.#transport.reaches(from)) return -1;
    const routed = this.#fanOut(message, from);
    const stream = this.streamFor(message.subject);
    if (stream === undefined) return routed;
    const outcome = this.#store(stream, message);
    if (message.reply !== undefined) {
      this.publish({ subject: message.reply, data: encodeAck(stream.name, outcome), headers: {} });
    }
    return routed + 1;
  }

  /** A JetStream publish into `stream`; core subscribers see it too, whatever the stream decides. */
  append(stream: MemoryStream, message: WireMessage, from: number = SERVER): StoreOutcome {
    this.#fanOut(message, from);
    return this.#store(stream, message);
  }

  /**
   * Runs `task` for connection `to` in the delivery order of this server: a
   * stream entry to a follower or watcher (in order, never lost while it lives).
   */
  enqueue(task: () => void, to: number = SERVER, subject = '', data?: Uint8Array): void {
    this.#transport.stream(to, subject, data, task);
  }

  /** No delivery can be made now and none is about to be (what waits for a paused or cut-off connection does not count). */
  get idle(): boolean {
    return this.#transport.idle;
  }

  /**
   * Resolves once every delivery queued so far has been made; on a network,
   * once what the server sent connection `to` so far has reached it.
   */
  flush(to: number = SERVER): Promise<void> {
    return this.#transport.flush(to);
  }

  /** An API call of `client` on a network: run here at most once; never settles if it or its answer is lost. */
  call<T>(client: number, operation: string, run: () => T): Promise<T> {
    return this.#transport.call(client, operation, run);
  }

  /** Resolves once no message routed to `route` is still on its way to it. */
  drained(route: number): Promise<void> {
    const flying = this.#flying.get(route);
    if (flying === undefined) return Promise.resolve();
    return new Promise((resolve) => flying.waiters.push(resolve));
  }

  // ------------------------------------------------------------ faults (a simulated network only)

  /** Partitions the connection from the server, both ways (`cut` false heals it). */
  cut(client: number, cut = true): void {
    this.#faults('cut').cut(client, cut);
  }

  /** Its process is paused: what reaches it waits (`held` false lets it through, late). */
  hold(client: number, held = true): void {
    this.#faults('hold').hold(client, held);
  }

  /** Its process died: its routes go at once, and nothing more reaches it or comes from it. */
  kill(client: number): void {
    const faults = this.#faults('kill');
    this.#router.removeClient(client);
    faults.kill(client);
  }

  /**
   * A nats-server restart: every core subscription and request inbox is
   * gone and every connection reconnects after `after(client)` ms; streams,
   * buckets and blobs keep everything stored.
   */
  restart(after: (client: number) => number): void {
    const faults = this.#faults('restart');
    this.#router.clear();
    faults.restart(after);
  }

  /** A connection is back after a restart (its bus calls this as it reconnects). */
  rejoin(client: number): void {
    this.#network?.rejoin(client);
  }

  #faults(what: string): NetworkTransport {
    if (this.#network === undefined) throw new TypeError(`${what} needs a server made with a network`);
    return this.#network;
  }

  stream(name: string): MemoryStream | undefined {
    return this.#streams.get(name);
  }

  streamFor(subject: string): MemoryStream | undefined {
    for (const stream of this.#streams.values()) if (stream.captures(subject)) return stream;
    return undefined;
  }

  /** Creates the stream or reconfigures it; subjects may not overlap another stream's. */
  openStream(settings: StreamSettings): MemoryStream {
    validateName('stream', settings.name);
    const seen = new Set<string>();
    for (const subject of settings.subjects) {
      validateSubject(subject, { wildcards: true, kind: 'stream subject' });
      if (seen.has(subject)) throw new InvalidNameError('stream subject', subject, 'listed twice');
      seen.add(subject);
      for (const other of this.#streams.values()) {
        if (other.name === settings.name) continue;
        const clash = other.settings.subjects.find((theirs) => subjectsOverlap(subject, theirs));
        if (clash !== undefined) {
          throw new InvalidNameError('stream subject', subject, `overlaps ${clash} of stream ${other.name}`);
        }
      }
    }
    const existing = this.#streams.get(settings.name);
    if (existing !== undefined) {
      existing.configure(settings);
      return existing;
    }
    const stream = new MemoryStream(settings);
    this.#streams.set(settings.name, stream);
    return stream;
  }

  /** Forgets a stream and its entries (journals and kv buckets alike). */
  deleteStream(name: string): void {
    this.#streams.delete(name);
  }

  deleteBlobBucket(bucket: string): void {
    this.#blobs.delete(bucket);
    this.#streams.delete(`OBJ_${bucket}`);
  }

  /**
   * A blob bucket, made with `maxAge` (ms, 0: for ever) if new; its stream
   * claims the subjects an object store would.
   */
  blobBucket(bucket: string, maxAge: number, description?: string): BlobBucket {
    // An existing bucket's description (or none) stays: it is the operator's.
    const existing = this.#streams.get(`OBJ_${bucket}`);
    const kept = existing !== undefined ? existing.settings.description : description;
    this.openStream({
      name: `OBJ_${bucket}`,
      subjects: [`$O.${bucket}.C.>`, `$O.${bucket}.M.>`],
      duplicateWindow: 120_000,
      maxPerSubject: 0,
      ...(kept !== undefined && { description: kept }),
    });
    let found = this.#blobs.get(bucket);
    if (found === undefined) this.#blobs.set(bucket, (found = { maxAge, objects: new Map() }));
    return found;
  }

  #fanOut(message: WireMessage, from: number): number {
    const routes = this.#router.match(message.subject);
    for (const route of routes) {
      const hop = { kind: 'message', from, to: route.client, subject: message.subject } as const;
      for (const delay of this.#transport.copies(hop)) {
        this.#took(route.id);
        this.#transport.arrive(
          hop,
          delay,
          message.data,
          () => {
            this.#arrived(route.id);
            route.deliver(message);
          },
          () => this.#arrived(route.id),
        );
      }
    }
    return routes.length;
  }

  #took(route: number): void {
    const flying = this.#flying.get(route);
    if (flying === undefined) this.#flying.set(route, { count: 1, waiters: [] });
    else flying.count++;
  }

  #arrived(route: number): void {
    const flying = this.#flying.get(route)!;
    if (--flying.count > 0) return;
    this.#flying.delete(route);
    for (const resolve of flying.waiters) resolve();
  }

  #store(stream: MemoryStream, message: WireMessage): StoreOutcome {
    return stream.store(message.subject, message.data, message.headers, this.clock.now());
  }
}

/** The JSON a stream answers a core publish with (JSPubAckResponse). */
function encodeAck(stream: string, outcome: StoreOutcome): Uint8Array {
  const body = outcome.ok
    ? { stream, seq: outcome.seq, ...(outcome.duplicate ? { duplicate: true } : {}) }
    : {
        error: { code: 400, err_code: 10071, description: `wrong last sequence: ${outcome.actual}` },
        stream,
        seq: 0,
      };
  return encoder.encode(JSON.stringify(body));
}
