import type { Clock } from '../clock.js';
import { resolveEnvironment, type Environment } from '../environment.js';
import { InvalidNameError } from '../errors.js';
import { validateName, validateSubject } from '../names.js';
import type { WireMessage } from './payload.js';
import { Router } from './router.js';
import { DeliveryQueue } from './scheduler.js';
import { MemoryStream, type StoreOutcome, type StreamSettings } from './stream.js';
import { subjectsOverlap } from '../filters.js';

export interface MemoryServerOptions {
  /** Its clock drives duplicate windows and entry times (default: the system's). */
  environment?: Partial<Environment>;
  /** Largest message in bytes, headers included (default 1 MiB, as nats-server). */
  maxPayload?: number;
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
  readonly #queue = new DeliveryQueue();
  readonly #router = new Router();
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
  }

  /** A new connection's id; ids are handed out in order, so inbox names replay. */
  connect(): number {
    return this.#nextClient++;
  }

  /** Drops every route the connection registered. */
  disconnect(client: number): void {
    this.#router.removeClient(client);
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
   * nats-server does. Returns how many took the message (0: no responders).
   */
  publish(message: WireMessage): number {
    const routed = this.#fanOut(message);
    const stream = this.streamFor(message.subject);
    if (stream === undefined) return routed;
    const outcome = this.#store(stream, message);
    if (message.reply !== undefined) {
      this.publish({ subject: message.reply, data: encodeAck(stream.name, outcome), headers: {} });
    }
    return routed + 1;
  }

  /** A JetStream publish into `stream`; core subscribers see it too, whatever the stream decides. */
  append(stream: MemoryStream, message: WireMessage): StoreOutcome {
    this.#fanOut(message);
    return this.#store(stream, message);
  }

  /** Runs `task` in the delivery order shared by everything on this server. */
  enqueue(task: () => void): void {
    this.#queue.push(task);
  }

  /** Resolves once every delivery queued so far has been made. */
  flush(): Promise<void> {
    return this.#queue.flush();
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
  blobBucket(bucket: string, maxAge: number): BlobBucket {
    this.openStream({
      name: `OBJ_${bucket}`,
      subjects: [`$O.${bucket}.C.>`, `$O.${bucket}.M.>`],
      duplicateWindow: 120_000,
      maxPerSubject: 0,
    });
    let found = this.#blobs.get(bucket);
    if (found === undefined) this.#blobs.set(bucket, (found = { maxAge, objects: new Map() }));
    return found;
  }

  #fanOut(message: WireMessage): number {
    const routes = this.#router.match(message.subject);
    for (const route of routes) this.#queue.push(() => route.deliver(message));
    return routes.length;
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
