import type { Logger } from 'pino';
import { decode, encode } from '../../bus/codec.js';
import type { Bus, Subscription } from '../../bus/types.js';
import type { View } from '../../machines/view.js';
import { drainRequestProblem, drainSubject, type DrainReply } from '../../protocol/drain.js';

export interface DrainListenerOptions {
  readonly bus: Bus;
  readonly cluster: string;
  /** Its member id, as the view and the operator name it. */
  readonly member: string;
  readonly log: Logger;
  readonly view: () => View | null;
  /** Already stopping: a second drain is refused, not acted on twice. */
  readonly leaving: () => boolean;
  /** Accepted: leave as on SIGTERM. Called after the reply is sent. */
  readonly onDrain: () => void;
}

/**
 * A member's own drain subject: an operator's request, checked as any
 * message off the wire, makes it leave the cluster (its shards handed off
 * by the leader) and stop. Refused when it would leave nobody to take its
 * shards: draining the last promotable member is an outage, not a drain.
 */
export function listenForDrain(options: DrainListenerOptions): Subscription {
  const { member, log } = options;
  return options.bus.subscribe(drainSubject(options.cluster, member), (m) => {
    const answer = (reply: DrainReply): void => void m.respond(encode(reply));
    let body: unknown;
    try {
      body = decode(m.data, { where: 'drain request' });
    } catch {
      body = undefined;
    }
    const problem = drainRequestProblem(body, member);
    if (problem !== undefined) {
      log.warn({ subject: m.subject, reason: problem }, 'drain request refused');
      return answer({ ok: false, reason: problem, worker: member, shards: 0 });
    }
    if (options.leaving()) return answer({ ok: false, reason: 'already leaving', worker: member, shards: 0 });
    const view = options.view();
    if (view === null) return answer({ ok: false, reason: 'not a member of a view yet', worker: member, shards: 0 });
    const others = view.members.filter((x) => x.id !== member && x.promotable);
    if (others.length === 0)
      return answer({
        ok: false,
        reason: 'the only promotable member: nobody would take its shards',
        worker: member,
        shards: 0,
      });
    const shards = view.shards.filter((s) => s.primary === member).length;
    log.warn({ shards }, `drain asked for by an operator: handing off ${shards} shards, then leaving and stopping`);
    answer({ ok: true, reason: `leaving: ${shards} shards to hand off`, worker: member, shards });
    options.onDrain();
  });
}
