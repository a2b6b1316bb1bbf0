import { randomUUID } from 'node:crypto';
import { claimCheckReference } from '../bus/claimCheck.js';
import { NoRespondersError, shardOf, TimeoutError, type Bus } from '../index.js';
import {
  bucketName,
  decode,
  decodeDue,
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
  currentView,
  OPERATOR_USAGE,
  OperatorError,
  askWorker,
  parseOperatorArgs,
  workerOfMember,
  wholeNumber,
  type OperatorArgs,
  type OperatorIO,
  withAdmin,
} from './operator.js';
import { decodeEntry, describeEvent, openSessionStores, type DecodedEntry } from './sessionRecords.js';

export const INSPECT_USAGE = `usage: cohort inspect APP ID [--last N] --nats URL [--cluster NAME] [--json]

One session: which shard and worker hold it, its document, state and seq
as its primary answers a read (which activates it if it was at rest), its
snapshot (seq, size, pending timers), the timer index entry, its last N
journal entries decoded, and, from the primary's service endpoint
(inspect), whether it holds the session in memory and the transaction
holding its lock, if any.

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

/**
 * What the primary's inspect endpoint says of the session: whether it is
 * in its memory, and the transaction holding its lock. Only the primary
 * knows; its answer is checked field by field.
 */
async function heldByPrimary(
  bus: Bus,
  cluster: string,
  primary: string | null,
  app: string,
  id: string,
): Promise<{
  held: boolean | null;
  transaction: { txId: string; client: string } | null;
  error: string | null;
}> {
  if (primary === null) return { held: null, transaction: null, error: 'the shard has no primary' };
  const answer = await askWorker(bus, cluster, workerOfMember(primary), 'inspect', { app, id });
  if (!answer.ok) return { held: null, transaction: null, error: answer.error };
  const held = answer.body['held'];
  if (typeof held !== 'boolean') return { held: null, transaction: null, error: 'the answer has no held' };
  const tx = answer.body['transaction'] as Record<string, unknown> | null | undefined;
  const transaction =
    tx !== null && typeof tx === 'object' && typeof tx['txId'] === 'string' && typeof tx['client'] === 'string'
      ? { txId: tx['txId'], client: tx['client'] }
      : null;
  return { held, transaction, error: null };
}

export async function runInspect(options: InspectArgs & OperatorIO): Promise<number> {
  return withAdmin(options, 'inspect', async (bus) => {
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
    const held = await heldByPrimary(bus, options.cluster, assignment.primary, options.app, options.id);
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
      held: held.held,
      transaction: held.transaction,
      heldError: held.error,
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
              try {
                return new Date(decodeDue(timerEntry.value, 'timer index entry')).toISOString();
              } catch {
                return 'unreadable';
              }
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
    if (held.error !== null) w(`the primary did not say what it holds (${held.error})`);
    else
      w(
        `in ${assignment.primary}'s memory: ${held.held ? 'yes' : 'no'}; transaction: ${held.transaction === null ? 'none' : `${held.transaction.txId} by ${held.transaction.client}`}`,
      );
    if (result.snapshot === null) w('snapshot: none (never passivated)');
    else
      w(
        `snapshot: seq ${result.snapshot.seq}, ${result.snapshot.bytes ?? '?'} B, journal seq ${result.snapshot.journalSeq}, ${result.snapshot.timers.length} timers pending${result.snapshot.timers.map((t) => `\n  timer ${t.id}: ${t.event.type} at ${t.due}`).join('')}`,
      );
    if (result.timerIndex !== null) w(`timer index: due ${result.timerIndex}`);
    w(`journal: ${count} entries${count > entries.length ? `, the last ${entries.length}` : ''}`);
    for (const e of entries)
      for (const line of e.error !== undefined
        ? [`(unreadable: ${e.error})`]
        : [...(e.note === undefined ? [] : [`(${e.note})`]), ...e.events.map(describeEvent)])
        w(`  #${e.streamSeq} ${e.time} ${line}`);
    return 0;
  });
}
