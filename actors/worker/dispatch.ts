import type { Logger } from 'pino';
import { throttledWarn } from '../../log/throttle.js';
import type { Clock } from '../../bus/clock.js';
import { decode, encode } from '../../bus/codec.js';
import type { Environment } from '../../bus/environment.js';
import { metaSubject, parseSubject, type ParsedSubject } from '../../bus/subjects.js';
import type { Bus, Delivery, Subscription } from '../../bus/types.js';
import { PayloadTooLargeError } from '../../bus/errors.js';
import { InvalidRequestError, refuse, UnknownApplicationError } from '../../protocol/errors.js';
import { CONTENT_TYPE_HEADER, isJsonRequest, jsonBytes, parseJson } from '../../protocol/json.js';
import type {
  CommandReply,
  CommandRequest,
  ReadReply,
  ScatterReply,
  ScatterRequest,
  TxReply,
  VerifyReply,
  WatchReply,
  WatchRequest,
} from '../../protocol/messages.js';
import { checkShard, parseJsonRequest, parseRequest } from '../../protocol/requests.js';
import { parseScatter } from '../../protocol/scatter.js';
import {
  headerLine,
  JSON_CONTENT_TYPE,
  SERVICE_ERROR_CODE_HEADER,
  SERVICE_ERROR_HEADER,
  serviceErrorCode,
} from '../../protocol/service.js';
import { checkClaim, clientInbox, inboxOwner, labelOf } from '../../protocol/clientId.js';
import type { Application } from './application.js';
import type { Catalog } from './catalog.js';
import type { ClientRecords } from './clientRecords.js';
import type { WatchInterest } from './interest.js';
import { REPLY_HEADROOM, type Responder } from './respond.js';
import { answerScatter } from './scatter.js';
import type { HostedSession } from './session.js';
import { otherSession, type Transactions } from './sessionTransaction.js';
import { attributeCache, type CohortMetrics, type RequestOutcome } from '../../metrics/instruments.js';

export interface DispatchOptions {
  readonly apps: ReadonlyMap<string, Application>;
  readonly catalog: Catalog;
  readonly transactions: Transactions;
  readonly clients: ClientRecords;
  /** Where replies go out. */
  readonly bus: Bus;
  /** Sends replies, claim-checking one too large for a message. */
  readonly responder: Responder;
  readonly environment: Environment;
  readonly log: Logger;
  /** The cluster's shard count: a request on another shard's subject than its session's is refused. */
  readonly shardCount: number;
  /** Set (to the reply prefix): a request is refused unless its reply subject lies in its claimed client's inbox. */
  readonly ownInboxes?: string | undefined;
  /** Told of every request handled, once its reply is decided: what the micro service's stats count. */
  readonly onHandled?: ((kind: 'cmd' | 'read', outcome: HandledOutcome) => void) | undefined;
  readonly metrics: CohortMetrics;
  /** Who watches which session: watches and unwatches are recorded there. */
  readonly interest: WatchInterest;
}

/** One request as the stats see it: how long it took (ms, on the environment's clock) and the error it was answered with. */
export interface HandledOutcome {
  readonly elapsed: number;
  /** The refusal's message; absent when it succeeded. */
  readonly error?: string;
}

type Reply = CommandReply | ReadReply | TxReply | VerifyReply | WatchReply | ScatterReply;
const RETRY = Symbol('retry');
/** A request that gets no answer at all: its reply subject is not its sender's to receive. */
const UNANSWERED = Symbol('unanswered');
/** The app attribute of a request for no application hosted here: the subject's word is not a bounded label. */
const UNKNOWN_APP = '(unknown)';

/** What one request turned out to be, for its metrics: filled in as #handle learns it. */
interface Handling {
  app: string;
  kind: string;
}

/**
 * The one place a session request comes in and its reply goes out: the
 * subject says which session, the body which request; the request runs in
 * the session's mailbox and every outcome, failures included, is a reply.
 */
export class Dispatch {
  readonly #apps: ReadonlyMap<string, Application>;
  readonly #catalog: Catalog;
  readonly #transactions: Transactions;
  readonly #clients: ClientRecords;
  readonly #bus: Bus;
  readonly #responder: Responder;
  readonly #newId: () => string;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #shardCount: number;
  readonly #ownInboxes: string | undefined;
  readonly #warnImpostor: ReturnType<typeof throttledWarn>;
  readonly #onHandled: DispatchOptions['onHandled'];
  readonly #metrics: CohortMetrics;
  readonly #attributes = attributeCache();
  readonly #interest: WatchInterest;

  constructor(options: DispatchOptions) {
    this.#metrics = options.metrics;
    this.#interest = options.interest;
    const { apps, catalog, transactions, clients, bus, responder, environment, log, shardCount } = options;
    this.#shardCount = shardCount;
    this.#ownInboxes = options.ownInboxes;
    this.#onHandled = options.onHandled;
    this.#warnImpostor = throttledWarn(log, environment.clock, 10_000);
    this.#apps = apps;
    this.#catalog = catalog;
    this.#transactions = transactions;
    this.#clients = clients;
    this.#bus = bus;
    this.#responder = responder;
    this.#newId = environment.newId;
    this.#clock = environment.clock;
    this.#log = log;
  }

  /**
   * A request on a cmd, read or ro subject. One with `Content-Type:
   * application/json` (typed by hand) is read as JSON and answered in JSON,
   * refusals too; every other is msgpack.
   */
  onMessage(m: Delivery, kind: 'cmd' | 'read'): void {
    void this.#serve(m, kind, isJsonRequest(m.headers));
  }

  /** One async frame per request: no chain of promises and closures around #handle. */
  async #serve(m: Delivery, kind: 'cmd' | 'read', json: boolean): Promise<void> {
    const started = this.#clock.now();
    const handling: Handling = { app: UNKNOWN_APP, kind: kind === 'cmd' ? 'command' : 'read' };
    let outcome: RequestOutcome = 'unanswered';
    let answered: Reply | string = 'refused unanswered: not in its client’s inbox';
    try {
      let reply: Reply | typeof UNANSWERED;
      try {
        reply = await this.#handle(m, kind, json, handling);
      } catch (err) {
        reply = refuse(err);
      }
      if (reply === UNANSWERED) return;
      answered = reply;
      outcome = outcomeOf(reply);
      try {
        if (json) this.#respondJson(m, reply);
        else {
          const large = this.#responder.respond(m, reply);
          if (large !== undefined) await large;
        }
      } catch (err) {
        // Even the claim-check failed: say so rather than leave the client to time out.
        this.#log.warn({ err, subject: m.subject }, 'reply not sent whole');
        const refusal = refuse(err);
        answered = refusal;
        outcome = outcomeOf(refusal);
        if (json) this.#respondJson(m, refusal);
        else m.respond(encode(refusal));
      }
    } finally {
      this.#handled(kind, started, answered);
      this.#record(kind, handling, outcome, this.#clock.now() - started);
    }
  }

  #record(kind: 'cmd' | 'read', handling: Handling, outcome: RequestOutcome, ms: number): void {
    const attributes = this.#attributes(handling.app, handling.kind, outcome);
    if (kind === 'cmd') {
      this.#metrics.commands.add(1, attributes);
      this.#metrics.commandDuration.record(ms, attributes);
    } else {
      this.#metrics.reads.add(1, attributes);
      this.#metrics.readDuration.record(ms, attributes);
    }
  }

  #handled(kind: 'cmd' | 'read', started: number, reply: Reply | string): void {
    if (this.#onHandled === undefined) return;
    const elapsed = Math.max(0, this.#clock.now() - started);
    const error = typeof reply === 'string' ? reply : reply.ok ? undefined : reply.error.message;
    this.#onHandled(kind, error === undefined ? { elapsed } : { elapsed, error });
  }

  /**
   * The reply as JSON with its content type; a refusal also carries the
   * ADR-32 error headers `nats req` shows. Nobody typing a request follows
   * a claim-check, so one too large is refused instead.
   */
  #respondJson(m: Delivery, reply: Reply): void {
    const limit = this.#bus.server.maxPayload - REPLY_HEADROOM;
    let data = jsonBytes(reply);
    let answer: Reply = reply;
    if (data.byteLength > limit) {
      answer = refuse(new PayloadTooLargeError(data.byteLength, limit, 'JSON reply'));
      data = jsonBytes(answer);
    }
    const headers: Record<string, string> = { [CONTENT_TYPE_HEADER]: JSON_CONTENT_TYPE };
    if (!answer.ok) {
      headers[SERVICE_ERROR_HEADER] = headerLine(answer.error.message);
      headers[SERVICE_ERROR_CODE_HEADER] = String(serviceErrorCode(answer.error));
    }
    m.respond(data, { headers });
  }

  async #handle(
    m: Delivery,
    kind: 'cmd' | 'read',
    json: boolean,
    handling: Handling,
  ): Promise<Reply | typeof UNANSWERED> {
    let target;
    try {
      target = this.#parse(m.subject);
    } catch (err) {
      return refuse(err);
    }
    if (target.kind === 'scatter') return this.#scatter(m, target, json, handling);
    if (target.kind !== 'cmd' && target.kind !== 'read' && target.kind !== 'ro')
      return refuse(new InvalidRequestError('not a session subject'));
    const app = this.#apps.get(target.app);
    if (app === undefined) return refuse(new UnknownApplicationError(target.app));
    handling.app = app.name;
    if (target.kind === 'ro') handling.kind = 'ro';
    const misplaced = checkShard(app.name, target.id, target.shard, this.#shardCount);
    if (misplaced !== undefined) return refuse(misplaced);
    let body: unknown;
    try {
      body = json ? parseJson(m.data, `JSON ${kind} ${m.subject}`) : decode(m.data, { where: `${kind} ${m.subject}` });
    } catch (err) {
      return refuse(err);
    }
    const { id, shard } = target;
    const req = json ? parseJsonRequest(body, kind, target.label, this.#newId) : parseRequest(body, kind);
    if (req instanceof Error) return refuse(req);
    handling.kind = req.kind === 'read' ? handling.kind : req.kind;
    const unclaimed = this.#checkSender(m, target.label, req.client);
    if (unclaimed !== undefined) return unclaimed;
    switch (req.kind) {
      case 'command':
        return this.#submit(app, id, shard, req, m.data.length);
      case 'tx': {
        // A step for another session of the shard (tx.session) runs in that session's mailbox, never inside this one's.
        const on = req.op === 'send' || req.op === 'read' ? req.on : undefined;
        if ((req.op !== 'send' && req.op !== 'read') || on === undefined)
          return this.#run(app, id, shard, req.client, (s) => this.#transactions.step(s, req, this.#clock.now()));
        const other = otherSession({ app: app.name, id, shard }, on, (a) => this.#apps.has(a), this.#shardCount);
        if (other !== undefined) return refuse(other);
        return this.#run(this.#apps.get(on.app)!, on.id, shard, req.client, (s) =>
          this.#transactions.stepOn(s, { app: app.name, id }, req, this.#clock.now()),
        );
      }
      case 'verify':
        return this.#run(app, id, shard, req.client, (s) => s.verify(req));
      case 'read': {
        // A copy in memory with nothing in its mailbox answers at once, without a turn: there is nothing for the
        // read to wait behind. One with commands in flight queues it behind them, as every message.
        const active = this.#catalog.find(app.name, id);
        if (active?.idle === true) {
          const refused = this.#clients.seen(req.client);
          if (refused !== undefined) return refuse(refused);
          return target.kind === 'read' ? active.readAsPrimary(req.minSeq) : active.read(req.minSeq);
        }
        return this.#run(app, id, shard, req.client, async (s) =>
          target.kind === 'read' ? s.readAsPrimary(req.minSeq) : s.read(req.minSeq),
        );
      }
      case 'watch':
      case 'unwatch':
        // Only the primary publishes: a watch on the read-only subject would reach a secondary.
        if (target.kind !== 'read')
          return refuse(new InvalidRequestError(`a ${req.kind} goes on the session's read subject`));
        if (req.kind === 'unwatch') {
          this.#interest.unwatch(app.name, id, req.client);
          return { ok: true, seq: 0, lease: 0 };
        }
        return this.#watch(app, id, shard, req);
    }
  }

  /**
   * A query to many sessions of one shard: each answered from its copy here
   * as a read would be (the proved primary's on `read`, this copy on `ro`),
   * checked like any request first. Typed JSON is refused: a scatter is the
   * client library's.
   */
  async #scatter(
    m: Delivery,
    target: Extract<ParsedSubject, { kind: 'scatter' }>,
    json: boolean,
    handling: Handling,
  ): Promise<Reply | typeof UNANSWERED> {
    handling.kind = 'scatter';
    const app = this.#apps.get(target.app);
    if (app === undefined) return refuse(new UnknownApplicationError(target.app));
    handling.app = app.name;
    if (json) return refuse(new InvalidRequestError('a scatter is msgpack, sent by the client library'));
    let req: ScatterRequest | InvalidRequestError;
    try {
      req = parseScatter(decode(m.data, { where: `scatter ${m.subject}` }));
    } catch (err) {
      return refuse(err);
    }
    if (req instanceof Error) return refuse(req);
    const unclaimed = this.#checkSender(m, target.label, req.client);
    if (unclaimed !== undefined) return unclaimed;
    const refused = this.#clients.seen(req.client);
    if (refused !== undefined) return refuse(refused);
    const { shard } = target;
    const client = req.client;
    const primary = target.via === 'read';
    return answerScatter(
      app,
      req,
      async (id) => {
        const misplaced = checkShard(app.name, id, shard, this.#shardCount);
        if (misplaced !== undefined) return refuse(misplaced);
        const active = this.#catalog.find(app.name, id);
        if (active?.idle === true) return primary ? active.readAsPrimary(undefined) : active.read(undefined);
        return this.#run(app, id, shard, client, async (s) =>
          primary ? s.readAsPrimary(undefined) : s.read(undefined),
        );
      },
      this.#clock,
      { maxAnswerBytes: this.#responder.maxBytes },
    );
  }

  /**
   * Recorded before the session's seq is read, so every patch after the
   * seq answered is published; answered only while proved primary (a
   * deposed one's seq could be behind, and it publishes nothing).
   */
  async #watch(app: Application, id: string, shard: number, req: WatchRequest): Promise<Reply> {
    const refused = this.#clients.refusal(req.client);
    if (refused !== undefined) return refuse(refused);
    const lease = this.#interest.watch(app.name, id, req.client, req.lease);
    if (lease instanceof Error) return refuse(lease);
    return this.#run(app, id, shard, req.client, async (s) => {
      const read = await s.readAsPrimary(undefined);
      return read.ok ? { ok: true, seq: read.seq, lease } : read;
    });
  }

  /** Refused: a body claiming another label's client; unanswered: a reply subject outside the claimed client's inbox. */
  #checkSender(m: Delivery, label: string, client: string): Reply | typeof UNANSWERED | undefined {
    const claimed = checkClaim(label, client);
    if (claimed !== undefined) return refuse(claimed);
    const impostor = this.#checkInbox(m.reply, client);
    if (impostor === undefined) return undefined;
    // Not answered either: the reply subject may be the claimed client's own inbox.
    this.#warnImpostor({ err: impostor, subject: m.subject }, 'request refused unanswered: not in its client’s inbox');
    return UNANSWERED;
  }

  /**
   * Where the server reserves each client user its inbox, a reply subject
   * in another label's inbox (or none) means the sender is not the client it
   * claims to be: answering would act for that client (its transactions,
   * its de-duplication) on a stranger's word.
   */
  #checkInbox(reply: string | undefined, client: string): InvalidRequestError | undefined {
    if (this.#ownInboxes === undefined) return undefined;
    const label = labelOf(client);
    if (reply !== undefined && inboxOwner(reply, this.#ownInboxes) === label) return undefined;
    return new InvalidRequestError(
      `client ${JSON.stringify(client)} must take its replies in its own inbox ${clientInbox(label, this.#ownInboxes)}.>`,
    );
  }

  /**
   * Runs `fn` in the session's mailbox; a session evicted meanwhile is
   * reloaded and `fn` runs there. A client disconnected by force is refused
   * on arrival and again when its turn comes (it may have been queued before).
   */
  async #run<R extends Reply>(
    app: Application,
    id: string,
    shard: number,
    client: string,
    fn: (s: HostedSession) => Promise<R>,
  ): Promise<R | ReturnType<typeof refuse>> {
    const refused = this.#clients.seen(client);
    if (refused !== undefined) return refuse(refused);
    for (;;) {
      const session = this.#catalog.find(app.name, id) ?? (await this.#catalog.session(app, id, shard));
      const r = await session.enqueue(async () => {
        if (session.evicted) return RETRY;
        const late = this.#clients.refusal(client);
        return late === undefined ? fn(session) : refuse(late);
      });
      if (r !== RETRY) return r;
    }
  }

  /**
   * A command joins its session's next turn (group commit); a session
   * evicted before that turn is reloaded and the command submitted there.
   * A client disconnected by force is refused on arrival and again at its turn.
   */
  async #submit(app: Application, id: string, shard: number, req: CommandRequest, size: number): Promise<Reply> {
    const refused = this.#clients.seen(req.client);
    if (refused !== undefined) return refuse(refused);
    const time = this.#clock.now();
    for (;;) {
      const session = this.#catalog.find(app.name, id) ?? (await this.#catalog.session(app, id, shard));
      const r = await session.submit(req, time, size, this.#admit);
      if (r !== undefined) return r;
    }
  }

  /**
   * Subjects parsed lately: a session's requests come on the same few
   * subjects, and parsing one (split, checks, unescaping) is a fair share of
   * a read's cost. Bounded: past SUBJECT_CACHE entries it starts over, so
   * a flood of distinct subjects costs only what parsing costs anyway.
   */
  readonly #parsed = new Map<string, Readonly<ParsedSubject>>();

  #parse(subject: string): Readonly<ParsedSubject> {
    const known = this.#parsed.get(subject);
    if (known !== undefined) return known;
    const parsed = Object.freeze(parseSubject(subject));
    if (this.#parsed.size >= SUBJECT_CACHE) this.#parsed.clear();
    this.#parsed.set(subject, parsed);
    return parsed;
  }

  /** A refusal for a client disconnected by force, asked again when its command's turn comes. */
  readonly #admit = (client: string): Error | undefined => this.#clients.refusal(client);

  /** Each application's name, commit level and metadata, as JSON on its meta subject. */
  serveMetadata(cluster: string): Subscription[] {
    return [...this.#apps.values()].map((app) => {
      const body = new TextEncoder().encode(
        JSON.stringify({ name: app.name, commit: app.commit, metadata: app.metadata }),
      );
      return this.#bus.subscribe(
        metaSubject(cluster, app.name),
        (m) => m.respond(body, { headers: { 'Content-Type': 'application/json' } }),
        {
          queue: 'cohort-meta',
        },
      );
    });
  }
}

/** Subjects a dispatcher remembers parsed (about 150 B each). */
const SUBJECT_CACHE = 1_024;

/** A reply's outcome attribute: the refusal's error class name (a bounded set), or what kind of success. */
function outcomeOf(reply: Reply): RequestOutcome {
  if (!reply.ok) return reply.error.name === 'EventRejectedError' ? 'rejected' : reply.error.name;
  return 'duplicate' in reply && reply.duplicate === true ? 'duplicate' : 'ok';
}
