import { randomUUID } from 'node:crypto';
import { claimCheckReference } from '../bus/claimCheck.js';
import { NoRespondersError, shardOf, TimeoutError, type Bus } from '../index.js';
import {
  bucketName,
  decode,
  encode,
  journalSubject,
  metaSubject,
  newClientId,
  readRequest,
  readSubject,
  sessionKey,
  timerKey,
} from '../internal.js';
import {
  checkApp,
  connectAdmin,
  currentView,
  OPERATOR_USAGE,
  OperatorError,
  parseOperatorArgs,
  wholeNumber,
  type OperatorArgs,
  type OperatorIO,
} from './operator.js';
import { decodeEntry, describeEvent, openSessionStores, timerDue, type DecodedEntry } from './sessionRecords.js';

export const INSPECT_USAGE = `usage: cohort inspect APP ID [--last N] --nats URL [--cluster NAME] [--json]

One session: which shard and worker hold it, its document, state and seq
as its primary answers a read (which activates it if it was at rest), its
snapshot (seq, size, pending timers), the timer index entry, and its last
N journal entries decoded. An open transaction and its lock live only in
the primary's memory and are not shown.

  --last N              journal entries to show (default 10)
${OPERATOR_USAGE}
`;

export interface InspectArgs extends OperatorArgs {
  app: string;
  id: string;
  last: number;
}

export function parseInspectArgs(args: string[]): InspectArgs {
  const { values, positionals, base } = parseOperatorArgs(
    args,
    { last: { type: 'string' } },
    { min: 2, max: 2, names: 'APP ID (an application and a session id)' },
  );
  return {
    ...base,
    app: checkApp(positionals[0]!),
    id: positionals[1]!,
    last: wholeNumber('last', values['last']) ?? 10,
  };
}

/** The application is served by some worker: its metadata subject answers. OperatorError otherwise. */
async function checkServed(bus: Bus, cluster: string, app: string): Promise<void> {
  try {
    await bus.request(metaSubject(cluster, app), new Uint8Array(), { timeout: 3_000 });
  } catch (err) {
    if (err instanceof NoRespondersError || err instanceof TimeoutError)
      throw new OperatorError(`no worker of cluster ${cluster} serves application ${JSON.stringify(app)}`);
    throw err;
  }
}

/** What the primary answers to a read, or why it did not. */
async function readFromPrimary(
  bus: Bus,
  cluster: string,
  shard: number,
  app: string,
  id: string,
): Promise<{ seq: number; state: unknown; document: unknown } | { error: string }> {
  const client = newClientId('admin', () => randomUUID());
  try {
    const m = await bus.request(readSubject(cluster, shard, app, id, 'admin'), encode(readRequest(client)), {
      timeout: 5_000,
    });
    let reply = decode(m.data, { where: 'read reply' }) as Record<string, unknown> | null;
    const blob = claimCheckReference(reply);
    if (blob !== undefined) {
      const replies = await bus.blobs({ bucket: bucketName(cluster, 'replies') });
      const bytes = await replies.get(blob);
      if (bytes === null) return { error: `the reply's blob ${blob} is gone` };
      reply = decode(bytes, { where: 'read reply blob' }) as Record<string, unknown> | null;
    }
    if (reply?.['ok'] === true && typeof reply['seq'] === 'number')
      return { seq: reply['seq'], state: reply['state'], document: reply['document'] };
    const error = reply?.['error'] as { name?: unknown; message?: unknown } | undefined;
    return { error: `${String(error?.name ?? 'Error')}: ${String(error?.message ?? 'not a read reply')}` };
  } catch (err) {
    return { error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) };
  }
}

export async function runInspect(options: InspectArgs & OperatorIO): Promise<number> {
  const bus = await connectAdmin(options, 'inspect');
  try {
    const view = await currentView(bus, options.cluster);
    await checkServed(bus, options.cluster, options.app);
    const shard = shardOf(options.app, options.id, view.shardCount);
    const assignment = view.shards[shard]!;
    const stores = await openSessionStores(bus, options.cluster);
    const snapshot = await stores.snapshots.load(options.app, options.id).catch((err: unknown) => {
      options.warn(`snapshot unreadable: ${(err as Error).message}`);
      return null;
    });
    const rawSnapshot = await stores.snapshots.kv.get(sessionKey(options.app, options.id)).catch(() => null);
    const timerEntry = await stores.timers.get(timerKey(shard, options.app, options.id));
    const subject = journalSubject(options.cluster, shard, options.app, options.id);
    const entries: DecodedEntry[] = [];
    let count = 0;
    if (options.last > 0)
      for await (const e of stores.journal.read(subject)) {
        count++;
        entries.push(decodeEntry(e));
        if (entries.length > options.last) entries.shift();
      }
    const live = await readFromPrimary(bus, options.cluster, shard, options.app, options.id);
    const known = snapshot !== null || count > 0 || ('seq' in live && live.seq > 0);
    const lastEventSeq = entries.at(-1)?.events.at(-1)?.seq ?? 0;
    const result = {
      cluster: options.cluster,
      app: options.app,
      id: options.id,
      known,
      shard,
      worker: assignment.primary,
      shardState: assignment.state,
      secondaries: assignment.replicas,
      seq: 'seq' in live ? live.seq : Math.max(snapshot?.session.seq ?? 0, lastEventSeq),
      document: 'seq' in live ? live.document : null,
      state: 'seq' in live ? live.state : null,
      readError: 'error' in live ? live.error : null,
      snapshot:
        snapshot === null
          ? null
          : {
              seq: snapshot.session.seq,
              journalSeq: snapshot.journalSeq,
              bytes: rawSnapshot?.value.length ?? null,
              timers: snapshot.session.timers.map((t) => ({
                id: t.id,
                due: new Date(t.due).toISOString(),
                event: t.event,
              })),
            },
      timerIndex:
        timerEntry === null
          ? null
          : (() => {
              const due = timerDue(timerEntry.value);
              return due === undefined ? 'unreadable' : new Date(due).toISOString();
            })(),
      journal: entries,
    };
    if (options.json) {
      options.write(JSON.stringify(result));
      return known ? 0 : 1;
    }
    const w = options.write;
    w(
      `${options.app} ${JSON.stringify(options.id)}: shard ${shard} (${assignment.state}), primary ${assignment.primary ?? '-'}${assignment.replicas.length ? `, secondaries ${assignment.replicas.join(', ')}` : ''}`,
    );
    if (!known) {
      options.warn(`no session ${JSON.stringify(options.id)} of ${options.app}: no snapshot, no journal entries`);
      return 1;
    }
    if ('seq' in live) {
      w(`seq ${live.seq}  state ${JSON.stringify(live.state)}`);
      w(`document ${JSON.stringify(live.document, null, 2)}`);
    } else w(`the primary did not answer a read (${live.error}); seq ${result.seq} from storage`);
    if (result.snapshot === null) w('snapshot: none (never passivated)');
    else
      w(
        `snapshot: seq ${result.snapshot.seq}, ${result.snapshot.bytes ?? '?'} B, journal seq ${result.snapshot.journalSeq}, ${result.snapshot.timers.length} timers pending${result.snapshot.timers.map((t) => `\n  timer ${t.id}: ${t.event.type} at ${t.due}`).join('')}`,
      );
    if (result.timerIndex !== null) w(`timer index: due ${result.timerIndex}`);
    w(`journal: ${count} entries${count > entries.length ? `, the last ${entries.length}` : ''}`);
    for (const e of entries)
      for (const line of e.error !== undefined ? [`(unreadable: ${e.error})`] : e.events.map(describeEvent))
        w(`  #${e.streamSeq} ${e.time} ${line}`);
    return 0;
  } catch (err) {
    if (err instanceof OperatorError) {
      options.warn(err.message);
      return 1;
    }
    throw err;
  } finally {
    await bus.close();
  }
}
