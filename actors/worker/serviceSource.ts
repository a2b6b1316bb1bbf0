import { documentOf } from '../../machines/session.js';
import type { UnhealthyReason } from '../../machines/health.js';
import type { View } from '../../machines/view.js';
import { UnknownApplicationError } from '../../protocol/errors.js';
import { shardOf } from '../../protocol/shard.js';
import type { Application } from './application.js';
import type { Catalog } from './catalog.js';
import type { WorkerServiceSource } from './service.js';

export interface ServiceSourceOptions {
  readonly worker: string;
  readonly cluster: string;
  /** Null with static sharding: no zone is configured. */
  readonly zone: string | null;
  readonly apps: ReadonlyMap<string, Application>;
  readonly shardCount: number;
  readonly catalog: Catalog;
  /** Shards it serves as primary now. */
  serving(): readonly number[];
  /** The membership of now (undefined: static sharding, or between a drop and the rejoin). */
  membership(): { readonly memberId: string; readonly view: View | null } | undefined;
  health(): UnhealthyReason | undefined;
}

/**
 * What a worker's micro service reports, read from the worker's parts at
 * each request: nothing is activated, queued in a mailbox or written.
 */
export function workerServiceSource(o: ServiceSourceOptions): WorkerServiceSource {
  const viewOf = (): { view: View | null; member: string | null } => {
    const m = o.membership();
    return { view: m?.view ?? null, member: m?.memberId ?? null };
  };
  return {
    metadata: () => {
      const { view } = viewOf();
      return {
        cluster: o.cluster,
        worker: o.worker,
        zone: o.zone ?? '',
        view: view === null ? '' : String(view.viewId),
      };
    },
    status: () => {
      const { view, member } = viewOf();
      const secondary: number[] = [];
      view?.shards.forEach((s, shard) => {
        if (member !== null && s.replicas.includes(member)) secondary.push(shard);
      });
      return {
        worker: o.worker,
        member,
        zone: o.zone,
        cluster: o.cluster,
        view: view?.viewId ?? null,
        leader: view?.leader ?? null,
        primary: [...o.serving()],
        secondary,
        activeSessions: o.catalog.size,
        health: o.health() ?? 'healthy',
      };
    },
    sessions: () => ({
      worker: o.worker,
      sessions: o.catalog
        .active()
        .map((s) => ({ app: s.app.name, id: s.id, shard: s.shard, seq: s.seq }))
        .sort((a, b) => (a.app === b.app ? (a.id < b.id ? -1 : a.id > b.id ? 1 : 0) : a.app < b.app ? -1 : 1)),
    }),
    inspect: (app, id) => {
      if (!o.apps.has(app)) throw new UnknownApplicationError(app);
      const shard = shardOf(app, id, o.shardCount);
      const s = o.catalog.find(app, id);
      if (s === undefined) return { worker: o.worker, app, id, shard, held: false };
      const lock = s.openTransaction;
      return {
        worker: o.worker,
        app,
        id,
        shard,
        held: true,
        seq: s.seq,
        state: s.state.snapshot.value,
        document: documentOf(s.state),
        timers: s.state.timers.map((t) => ({
          id: t.id,
          event: t.event.type,
          due: Number.isFinite(t.due) && Math.abs(t.due) <= 8.64e15 ? new Date(t.due).toISOString() : String(t.due),
        })),
        transaction: lock === undefined ? null : { txId: lock.txId, client: lock.client },
      };
    },
  };
}
