import type { Logger } from 'pino';
import type { Clock } from '../../bus/clock.js';
import { PayloadTooLargeError } from '../../bus/errors.js';
import { requestFilter, serviceSubject } from '../../bus/subjects.js';
import type { Bus, Delivery, Subscription } from '../../bus/types.js';
import { InvalidRequestError, toErrorBody } from '../../protocol/errors.js';
import { CONTENT_TYPE_HEADER, jsonBytes, parseJson } from '../../protocol/json.js';
import {
  discoverySubjects,
  headerLine,
  JSON_CONTENT_TYPE,
  parseInspectRequest,
  SERVICE_DESCRIPTION,
  SERVICE_ENDPOINTS,
  SERVICE_ERROR_CODE_HEADER,
  SERVICE_ERROR_HEADER,
  SERVICE_NAME,
  SERVICE_QUEUE,
  SERVICE_RESPONSE_TYPE,
  SERVICE_VERBS,
  serviceErrorCode,
  type EndpointInfo,
  type InspectReply,
  type ServiceEndpoint,
  type ServiceIdentity,
  type ServiceInfo,
  type ServiceMetadata,
  type ServiceStats,
  type ServiceVerb,
  type SessionsReply,
  type StatusReply,
} from '../../protocol/service.js';
import type { HandledOutcome } from './dispatch.js';
import { EndpointCounter } from './endpointStats.js';

/** What the service reports, asked of the worker at each request: it keeps no copy of its own. */
export interface WorkerServiceSource {
  metadata(): ServiceMetadata;
  status(): Omit<StatusReply, 'version'>;
  sessions(): SessionsReply;
  /** Throws UnknownApplicationError for an application not hosted here. */
  inspect(app: string, id: string): InspectReply;
}

export interface WorkerServiceOptions {
  readonly bus: Bus;
  readonly cluster: string;
  /** The worker's id: its endpoints' subjects carry it. */
  readonly worker: string;
  /**
   * This instance's id on `$SRV.<verb>.cohort.<id>`, made when first asked
   * for: a worker nobody discovers (a seeded simulation) draws no id, so its
   * environment's id stream stays what it was.
   */
  readonly instance: () => string;
  readonly version: string;
  readonly clock: Clock;
  readonly log: Logger;
  readonly source: WorkerServiceSource;
}

/** Room kept in a reply for its headers and subject. */
const REPLY_HEADROOM = 1024;

/**
 * A worker as a NATS micro service named `cohort` (ADR-32), spoken over the
 * Bus rather than through @nats-io/services, so a worker on the memory bus
 * answers too: discovery on `$SRV.PING|INFO|STATS[.cohort[.<id>]]`, its own
 * JSON endpoints (status, sessions, inspect) under
 * `cohort.<cluster>.svc.<worker>.`, and two endpoints it does not subscribe
 * for itself, `commands` and `reads`, whose stats are the dispatcher's work.
 */
export class WorkerService {
  readonly #options: WorkerServiceOptions;
  readonly #started: string;
  readonly #commands = new EndpointCounter();
  readonly #reads = new EndpointCounter();
  readonly #own = new Map<ServiceEndpoint, EndpointCounter>(SERVICE_ENDPOINTS.map((e) => [e, new EndpointCounter()]));
  #subs: Subscription[] = [];
  #id: string | undefined;
  /** Its own endpoints' subjects; empty for a worker id too long for a subject token (discovery answers alone). */
  readonly #ownSubjects: readonly [ServiceEndpoint, string][];

  constructor(options: WorkerServiceOptions) {
    this.#options = options;
    let subjects: [ServiceEndpoint, string][] = [];
    try {
      subjects = SERVICE_ENDPOINTS.map((e) => [e, serviceSubject(options.cluster, options.worker, e)]);
    } catch (err) {
      options.log.warn({ err }, 'service endpoints not served: the worker id makes no subject token');
    }
    this.#ownSubjects = subjects;
    this.#started = new Date(options.clock.now()).toISOString();
  }

  get id(): string {
    this.#id ??= this.#options.instance();
    return this.#id;
  }

  /** A command or read the dispatcher answered: counted on `commands` or `reads`. */
  handled(kind: 'cmd' | 'read', outcome: HandledOutcome): void {
    (kind === 'cmd' ? this.#commands : this.#reads).record(outcome.elapsed, outcome.error);
  }

  start(): void {
    const { bus } = this.#options;
    // `.cohort.*`, not `.cohort.<id>`: the id is made when first asked for; another instance's is not answered.
    for (const verb of SERVICE_VERBS)
      for (const subject of discoverySubjects(verb, '*'))
        this.#subs.push(
          bus.subscribe(subject, (m) => {
            if (subject.endsWith('.*') && m.subject.slice(subject.length - 1) !== this.id) return;
            this.#discovery(verb, m);
          }),
        );
    for (const [endpoint, subject] of this.#ownSubjects)
      this.#subs.push(bus.subscribe(subject, (m) => this.#endpoint(endpoint, m), { queue: SERVICE_QUEUE }));
  }

  /** Drained: a request already here is answered. */
  async stop(): Promise<void> {
    await Promise.all(this.#subs.splice(0).map((s) => s.drain().catch(() => undefined)));
  }

  #identity(verb: ServiceVerb): ServiceIdentity {
    return {
      type: SERVICE_RESPONSE_TYPE[verb],
      name: SERVICE_NAME,
      id: this.id,
      version: this.#options.version,
      metadata: this.#options.source.metadata(),
    };
  }

  /** Every endpoint, the worker's own and the dispatcher's, as INFO and STATS list them. */
  #endpoints(): { info: EndpointInfo; counter: EndpointCounter }[] {
    const { cluster } = this.#options;
    const own = this.#ownSubjects.map(([name, subject]) => ({
      info: {
        name,
        subject,
        queue_group: SERVICE_QUEUE,
        metadata: { format: 'json', description: ENDPOINT_DESCRIPTIONS[name] },
      },
      counter: this.#own.get(name)!,
    }));
    // The dispatcher's subjects: it subscribes per shard served (cmd.<shard>.>), and for reads also read-only routing.
    return [
      ...own,
      {
        info: {
          name: 'commands',
          subject: requestFilter(cluster, 'cmd'),
          metadata: { format: 'msgpack or json', description: 'commands and transaction steps to its primary shards' },
        },
        counter: this.#commands,
      },
      {
        info: {
          name: 'reads',
          subject: requestFilter(cluster, 'read'),
          metadata: {
            format: 'msgpack or json',
            description: `reads and verifications on its primary shards, and read-only routing on ${requestFilter(cluster, 'ro')}`,
          },
        },
        counter: this.#reads,
      },
    ];
  }

  #discovery(verb: ServiceVerb, m: Delivery): void {
    try {
      const identity = this.#identity(verb);
      let answer: ServiceIdentity | ServiceInfo | ServiceStats;
      if (verb === 'PING') answer = identity;
      else if (verb === 'INFO')
        answer = { ...identity, description: SERVICE_DESCRIPTION, endpoints: this.#endpoints().map((e) => e.info) };
      else
        answer = {
          ...identity,
          started: this.#started,
          endpoints: this.#endpoints().map(({ info: { name, subject, queue_group }, counter }) =>
            counter.stats(queue_group === undefined ? { name, subject } : { name, subject, queue_group }),
          ),
        };
      m.respond(jsonBytes(answer));
    } catch (err) {
      this.#options.log.warn({ err, subject: m.subject }, 'service discovery not answered');
    }
  }

  #endpoint(endpoint: ServiceEndpoint, m: Delivery): void {
    const { clock, bus } = this.#options;
    const started = clock.now();
    let reply: unknown;
    let failure: unknown;
    try {
      reply = this.#answer(endpoint, parseJson(m.data, `${endpoint} request`));
      const size = jsonBytes(reply).byteLength;
      const limit = bus.server.maxPayload - REPLY_HEADROOM;
      if (size > limit) throw new PayloadTooLargeError(size, limit, `${endpoint} reply`);
    } catch (err) {
      failure = err;
    }
    const error = failure === undefined ? undefined : toErrorBody(failure);
    this.#own.get(endpoint)!.record(clock.now() - started, error?.message);
    if (error === undefined) {
      m.respond(jsonBytes(reply), { headers: { [CONTENT_TYPE_HEADER]: JSON_CONTENT_TYPE } });
      return;
    }
    m.respond(jsonBytes({ error }), {
      headers: {
        [CONTENT_TYPE_HEADER]: JSON_CONTENT_TYPE,
        [SERVICE_ERROR_HEADER]: headerLine(error.message),
        [SERVICE_ERROR_CODE_HEADER]: String(serviceErrorCode(error)),
      },
    });
  }

  #answer(endpoint: ServiceEndpoint, body: unknown): unknown {
    const { source, version } = this.#options;
    if (endpoint === 'inspect') {
      const req = parseInspectRequest(body);
      if (req instanceof Error) throw req;
      return source.inspect(req.app, req.id);
    }
    if (body !== undefined && (typeof body !== 'object' || body === null || Array.isArray(body)))
      throw new InvalidRequestError(`${endpoint} takes an empty body or a JSON object`);
    return endpoint === 'status' ? { ...source.status(), version } : source.sessions();
  }
}

const ENDPOINT_DESCRIPTIONS: Record<ServiceEndpoint, string> = {
  status: 'this worker: view, leader, shards it is primary and secondary for, active sessions, health',
  sessions: 'the sessions active on this worker: app, id, shard, seq',
  inspect: 'request {"app","id"}: the session as held here (document, state, seq, timers, open transaction)',
};
