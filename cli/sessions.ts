import { shardOf } from '../index.js';
import { journalShardFilter, journalStreamFilter, parseSubject, unescapeToken } from '../internal.js';
import {
  checkApp,
  currentView,
  OPERATOR_USAGE,
  parseOperatorArgs,
  askWorker,
  table,
  wholeNumber,
  workerOfMember,
  type OperatorArgs,
  type OperatorIO,
  withAdmin,
} from './operator.js';
import { decodeEntry, openSessionStores } from './sessionRecords.js';
import { CliUsageError } from './loadApplications.js';

export const SESSIONS_USAGE = `usage: cohort sessions APP [--shard N] [--active] --nats URL [--cluster NAME] [--json]

The sessions of application APP that storage knows: a snapshot in the
snapshots bucket, entries in the journal, or both. For each: its shard, its
seq (the latest of snapshot and journal), the snapshot's size, how many
journal entries it holds, whether the journal runs past the snapshot
(changes not snapshotted yet), and the worker that serves it (the shard's
primary in the view). "active" asks every member's service endpoint
(sessions) which sessions it holds in memory now; a member that does not
answer is named, and its sessions show as not active.

  --shard N             only the sessions of shard N
  --active              only the sessions some worker holds in memory
${OPERATOR_USAGE}
`;

export interface SessionsArgs extends OperatorArgs {
  app: string;
  shard: number | undefined;
  active: boolean;
}

export function parseSessionsArgs(args: string[]): SessionsArgs {
  const { values, positionals, base } = parseOperatorArgs(
    args,
    { shard: { type: 'string' }, active: { type: 'boolean' } },
    { min: 1, max: 1, names: 'APP (an application name)' },
  );
  return {
    ...base,
    app: checkApp(positionals[0]!),
    shard: wholeNumber('shard', values['shard']),
    active: values['active'] === true,
  };
}

export interface SessionInfo {
  app: string;
  id: string;
  shard: number;
  seq: number;
  snapshotBytes: number | null;
  /** Stream sequence the snapshot reflects (null: no snapshot). */
  snapshotJournalSeq: number | null;
  journalEntries: number;
  /** The journal runs past the snapshot: changes not snapshotted yet. */
  unsnapshotted: boolean;
  /** Some worker holds it in memory, as that worker answered. */
  active: boolean;
  /** The shard's primary in the view; the worker that answered it holds it, when one did. */
  worker: string | null;
}

/** `cohort sessions`: a table (or one JSON document) of the sessions storage knows. */
export async function runSessions(options: SessionsArgs & OperatorIO): Promise<number> {
  return withAdmin(options, 'sessions', async (bus) => {
    const view = await currentView(bus, options.cluster);
    if (options.shard !== undefined && options.shard >= view.shardCount)
      throw new CliUsageError(`--shard ${options.shard}: the cluster has shards 0..${view.shardCount - 1}`);
    const stores = await openSessionStores(bus, options.cluster);
    const found = new Map<string, SessionInfo>();
    const info = (id: string): SessionInfo => {
      let s = found.get(id);
      if (s === undefined) {
        const shard = shardOf(options.app, id, view.shardCount);
        s = {
          app: options.app,
          id,
          shard,
          seq: 0,
          snapshotBytes: null,
          snapshotJournalSeq: null,
          journalEntries: 0,
          unsnapshotted: false,
          active: false,
          worker: view.shards[shard]?.primary ?? null,
        };
        found.set(id, s);
      }
      return s;
    };
    const wanted = (id: string): boolean =>
      options.shard === undefined || shardOf(options.app, id, view.shardCount) === options.shard;

    // The journal: one stream-info call lists every session subject and its count.
    const filter =
      options.shard === undefined
        ? journalStreamFilter(options.cluster)
        : journalShardFilter(options.cluster, options.shard);
    const subjects = await stores.journal.subjectCounts(filter);
    const lastSeqs = new Map<string, string>();
    for (const [subject, count] of subjects) {
      let target;
      try {
        target = parseSubject(subject);
      } catch {
        continue;
      }
      if (target.kind !== 'jrnl' || target.app !== options.app || !wanted(target.id)) continue;
      info(target.id).journalEntries = count;
      lastSeqs.set(target.id, subject);
    }

    // Snapshots: the keys of this application, each read as a worker reads it.
    const keys = await stores.snapshots.kv.keys(`${options.app}.*`);
    for (const key of keys) {
      let id: string;
      try {
        id = unescapeToken(key.slice(options.app.length + 1));
      } catch {
        continue;
      }
      if (!wanted(id)) continue;
      const raw = await stores.snapshots.kv.get(key);
      if (raw === null) continue;
      const s = info(id);
      try {
        const snapshot = await stores.snapshots.load(options.app, id);
        s.snapshotBytes = raw.value.length;
        if (snapshot !== null) {
          s.seq = Math.max(s.seq, snapshot.session.seq);
          s.snapshotJournalSeq = snapshot.journalSeq;
        }
      } catch (err) {
        options.warn(`snapshot ${key} unreadable: ${(err as Error).message}`);
      }
    }

    for (const [id, subject] of lastSeqs) {
      const s = found.get(id)!;
      const last = await stores.journal.last(subject);
      if (last === null) continue;
      const entry = decodeEntry(last);
      const seq = entry.events.at(-1)?.seq;
      if (seq !== undefined) s.seq = Math.max(s.seq, seq);
      s.unsnapshotted = s.snapshotJournalSeq === null || last.seq > s.snapshotJournalSeq;
    }

    // In memory: each member says what it holds (storage cannot tell a session at rest from one unchanged since its snapshot).
    const unanswered: string[] = [];
    for (const member of view.members) {
      const worker = workerOfMember(member.id);
      const answer = await askWorker(bus, options.cluster, worker, 'sessions');
      const held = answer.ok ? answer.body['sessions'] : undefined;
      if (!Array.isArray(held)) {
        unanswered.push(member.id);
        options.warn(
          `${member.id} did not say which sessions it holds: ${answer.ok ? 'no sessions list' : answer.error}`,
        );
        continue;
      }
      for (const entry of held as unknown[]) {
        const e = (typeof entry === 'object' && entry !== null ? entry : {}) as Record<string, unknown>;
        if (e['app'] !== options.app || typeof e['id'] !== 'string' || !wanted(e['id'])) continue;
        const s = info(e['id']);
        s.active = true;
        s.worker = member.id;
        if (typeof e['seq'] === 'number' && Number.isSafeInteger(e['seq'])) s.seq = Math.max(s.seq, e['seq']);
      }
    }

    const list = [...found.values()]
      .filter((s) => !options.active || s.active)
      .sort((a, b) => a.shard - b.shard || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    if (options.json) {
      options.write(
        JSON.stringify({ cluster: options.cluster, app: options.app, viewId: view.viewId, sessions: list, unanswered }),
      );
      return 0;
    }
    if (list.length === 0) {
      options.write(`no sessions of ${options.app}${options.shard === undefined ? '' : ` on shard ${options.shard}`}`);
      return 0;
    }
    for (const line of table([
      ['id', 'shard', 'seq', 'snapshot', 'journal', 'unsnapshotted', 'worker', 'active'],
      ...list.map((s) => [
        s.id,
        String(s.shard),
        String(s.seq),
        s.snapshotBytes === null ? '-' : `${s.snapshotBytes} B`,
        String(s.journalEntries),
        s.unsnapshotted ? 'yes' : 'no',
        s.worker ?? '-',
        s.active ? 'yes' : 'no',
      ]),
    ]))
      options.write(line);
    options.write(`${list.length} session${list.length === 1 ? '' : 's'} (view ${view.viewId})`);
    return 0;
  });
}
