import { randomUUID } from 'node:crypto';
import { shardOf, type Bus } from '../index.js';
import {
  decode,
  DEFAULT_WATCH_LEASE,
  encode,
  eventFilter,
  eventSubject,
  journalStreamFilter,
  journalSubject,
  newClientId,
  parseSubject,
  readSubject,
  watchRequest,
} from '../internal.js';
import {
  checkApp,
  connectAdmin,
  currentView,
  OPERATOR_USAGE,
  OperatorError,
  parseOperatorArgs,
  untilInterrupted,
  type OperatorArgs,
  type OperatorIO,
} from './operator.js';
import { decodeEntry, describeEvent, openSessionStores } from './sessionRecords.js';

export const TAIL_USAGE = `usage: cohort tail [APP [ID]] --nats URL [--cluster NAME] [--json]

Live: every journal entry stored from now on (each event: session, seq,
type, fields, client) and every document patch published to subscribed
clients, decoded, one line each, until SIGINT. APP: only that
application's sessions; ID: only that session.

Workers publish a session's patches only while some client subscribes to
it: a tail of one session (APP ID) watches it, as a subscribed client
does, so its patches are shown; a tail of an application or of the whole
cluster shows the patches of the sessions some client watches (and every
patch of workers started with patches: 'always').

${OPERATOR_USAGE}
`;

export interface TailArgs extends OperatorArgs {
  app: string | undefined;
  id: string | undefined;
}

export function parseTailArgs(args: string[]): TailArgs {
  const { positionals, base } = parseOperatorArgs(args, {}, { min: 0, max: 2, names: '[APP [ID]]' });
  return {
    ...base,
    app: positionals[0] === undefined ? undefined : checkApp(positionals[0]),
    id: positionals[1],
  };
}

export async function runTail(options: TailArgs & OperatorIO): Promise<number> {
  const bus = await connectAdmin(options, 'tail');
  const interrupted = untilInterrupted();
  try {
    const view = await currentView(bus, options.cluster);
    const { journal } = await openSessionStores(bus, options.cluster);
    const out = (o: Record<string, unknown>, line: string): void =>
      options.write(options.json ? JSON.stringify(o) : line);
    const wanted = (app: string, id: string): boolean =>
      (options.app === undefined || app === options.app) && (options.id === undefined || id === options.id);

    const journalFilter =
      options.app !== undefined && options.id !== undefined
        ? journalSubject(options.cluster, shardOf(options.app, options.id, view.shardCount), options.app, options.id)
        : journalStreamFilter(options.cluster);
    const follow = await journal.follow(journalFilter, {}, (entry) => {
      let target;
      try {
        target = parseSubject(entry.subject);
      } catch {
        return;
      }
      if (target.kind !== 'jrnl' || !wanted(target.app, target.id)) return;
      const decoded = decodeEntry(entry);
      const session = `${target.app} ${JSON.stringify(target.id)}`;
      const where = { kind: 'journal', app: target.app, id: target.id, shard: target.shard };
      if (decoded.error !== undefined)
        return out(
          { ...where, ...decoded },
          `${decoded.time} journal ${session} #${entry.seq} unreadable: ${decoded.error}`,
        );
      if (decoded.note !== undefined)
        out(
          { ...where, streamSeq: entry.seq, note: decoded.note },
          `${decoded.time} journal ${session} #${entry.seq} ${decoded.note}`,
        );
      for (const e of decoded.events)
        out({ ...where, streamSeq: entry.seq, ...e }, `${decoded.time} journal ${session} ${describeEvent(e)}`);
    });

    const patchFilter =
      options.app === undefined
        ? eventFilter(options.cluster)
        : options.id === undefined
          ? eventFilter(options.cluster, options.app)
          : eventSubject(options.cluster, options.app, options.id);
    const sub = bus.subscribe(patchFilter, (m) => {
      let target;
      let patch: Record<string, unknown> | null;
      try {
        target = parseSubject(m.subject);
        patch = decode(m.data, { where: `patch on ${m.subject}` }) as Record<string, unknown> | null;
      } catch (err) {
        return out(
          { kind: 'patch', subject: m.subject, error: (err as Error).message },
          `patch on ${m.subject} unreadable`,
        );
      }
      if (target.kind !== 'evt' || !wanted(target.app, target.id) || typeof patch !== 'object' || patch === null)
        return;
      out(
        { kind: 'patch', app: target.app, id: target.id, ...patch },
        `${new Date().toISOString()} patch   ${target.app} ${JSON.stringify(target.id)} seq ${String(patch['seq'])} by ${String(patch['setter'])} ${JSON.stringify(patch['ops'])}`,
      );
    });
    await bus.flush();
    // Subscribed first, then watched: every patch from the watch's answer on reaches the subscription.
    const watching =
      options.app !== undefined && options.id !== undefined
        ? keepWatching(bus, options.cluster, options.app, options.id, view.shardCount)
        : undefined;
    await watching?.first;
    out(
      { kind: 'tailing', cluster: options.cluster, app: options.app ?? null, id: options.id ?? null },
      `tailing ${options.app ?? 'every application'}${options.id === undefined ? '' : ` ${JSON.stringify(options.id)}`} of cluster ${options.cluster} (Ctrl-C stops)`,
    );
    await interrupted.done;
    follow.stop();
    watching?.stop();
    sub.unsubscribe();
    return 0;
  } catch (err) {
    if (err instanceof OperatorError) {
      options.warn(err.message);
      return 1;
    }
    throw err;
  } finally {
    interrupted.dispose();
    await bus.close();
  }
}

/**
 * Watches one session as a subscribed client does (the admin user may send
 * on any client's subjects; its replies come to the admin inbox), renewed
 * at a third of the lease and again at once after a reconnect. A watch
 * that goes unanswered is sent again at the next renewal.
 */
function keepWatching(
  bus: Bus,
  cluster: string,
  app: string,
  id: string,
  shardCount: number,
): { first: Promise<unknown>; stop(): void } {
  const client = newClientId('admin', () => randomUUID());
  const subject = readSubject(cluster, shardOf(app, id, shardCount), app, id, 'admin');
  const send = (): Promise<unknown> =>
    bus.request(subject, encode(watchRequest(client, DEFAULT_WATCH_LEASE)), { timeout: 5_000 }).catch(() => undefined);
  const first = send();
  const timer = setInterval(() => void send(), DEFAULT_WATCH_LEASE / 3);
  const unlisten = bus.onStatus((s) => {
    if (s.type === 'reconnect') void send();
  });
  return {
    first,
    stop: () => {
      clearInterval(timer);
      unlisten();
    },
  };
}
