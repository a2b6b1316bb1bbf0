import { labelOf } from '../../protocol/clientId.js';
import { encode } from '../../bus/codec.js';
import { readSubject } from '../../bus/subjects.js';
import { fromErrorBody } from '../../protocol/errors.js';
import type { VerifyReply } from '../../protocol/messages.js';
import { verifyRequest } from '../../protocol/requests.js';
import { shardOf } from '../../protocol/shard.js';
import type { Verification } from './client.js';
import type { Connection } from './connection.js';
import type { DocumentCache } from './documentCache.js';
import type { Patches } from './patches.js';

export interface VerifierOptions {
  readonly cluster: string;
  readonly shardCount: number;
  /** The client's default call timeout (undefined: none). */
  readonly timeout: number | undefined;
  /** How far behind a copy may be and still be brought forward by replaying the journal. */
  readonly invalidationQueueSize: number;
  readonly connection: Connection;
  readonly cache: DocumentCache;
  readonly patches: Patches;
  /** Each session's verdict, as it comes. */
  readonly onVerified: (v: Verification) => void;
}

/**
 * ZEO cache verification: after a recovery the client may have missed
 * patches, so each cached or subscribed copy is checked with its primary,
 * which says it is up to date, replays what was missed, or sends it whole.
 */
export class Verifier {
  readonly #cluster: string;
  readonly #shardCount: number;
  readonly #timeout: number | undefined;
  readonly #invalidationQueueSize: number;
  readonly #connection: Connection;
  readonly #cache: DocumentCache;
  readonly #patches: Patches;
  readonly #onVerified: (v: Verification) => void;
  /** One verification at a time: a second caller shares the one running. */
  #running: Promise<Verification[]> | undefined;

  constructor(options: VerifierOptions) {
    this.#cluster = options.cluster;
    this.#shardCount = options.shardCount;
    this.#timeout = options.timeout;
    this.#invalidationQueueSize = options.invalidationQueueSize;
    this.#connection = options.connection;
    this.#cache = options.cache;
    this.#patches = options.patches;
    this.#onVerified = options.onVerified;
  }

  verify(): Promise<Verification[]> {
    this.#running ??= this.#verifyAll().finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #verifyAll(): Promise<Verification[]> {
    const targets = new Map<string, { app: string; id: string; since: number }>();
    for (const e of this.#cache.entries()) targets.set(`${e.app}/${e.id}`, { app: e.app, id: e.id, since: e.seq });
    for (const [key, s] of this.#patches.seen()) {
      if (!targets.has(key)) targets.set(key, { app: s.app, id: s.id, since: s.seq });
    }
    const out = await Promise.all(
      [...targets.values()].map((t) => this.#verifyOne(t.app, t.id, t.since).catch(() => undefined)),
    );
    return out.filter((v): v is Verification => v !== undefined);
  }

  /**
   * What the primary says of a copy at `since`, not applied: a subscriber
   * told it has missed patches (a watch's answer) catches up with it.
   */
  async ask(app: string, id: string, since: number): Promise<Extract<VerifyReply, { ok: true }>> {
    const session = `${app}/${id}`;
    const shard = shardOf(app, id, this.#shardCount);
    const reply = (await this.#connection.request({
      subject: readSubject(this.#cluster, shard, app, id, labelOf(this.#connection.clientId)),
      body: encode(verifyRequest(this.#connection.clientId, since, this.#invalidationQueueSize)),
      what: `verify ${session}`,
      session,
      mutates: false,
      timeout: this.#timeout,
    })) as VerifyReply;
    if (!reply.ok) throw fromErrorBody(reply.error);
    return reply;
  }

  async #verifyOne(app: string, id: string, since: number): Promise<Verification> {
    const reply = await this.ask(app, id, since);
    switch (reply.outcome) {
      case 'up-to-date':
        break;
      case 'replayed':
        this.#patches.replay(app, id, reply.patches ?? []);
        break;
      case 'cleared':
      case 'newer-than-server':
        // The copy here cannot be brought forward (or is ahead of a server that lost writes): replace it.
        this.#cache.set(app, id, { seq: reply.seq, document: reply.document, state: reply.state }, { force: true });
        this.#patches.replace(app, id, reply.seq, reply.document);
        break;
    }
    const v: Verification = { app, id, outcome: reply.outcome, from: since, to: reply.seq };
    this.#onVerified(v);
    return v;
  }
}
