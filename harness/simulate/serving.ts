import type { View } from '../../internal.js';
import type { WorkerSlot } from './cluster.js';

/**
 * After the run has settled, what each live worker serves agrees with the
 * cluster's view: every ACTIVE shard has its primary serving it, and no
 * worker serves a shard the view gives to another. A worker that rejoined
 * after it was dropped has a new member id (`<id>~<n>`), so its member is
 * the view's member whose id is its own or starts with `<id>~`.
 * Returns what disagrees, one line each; empty when all agree.
 */
export function servingDisagreements(workers: readonly WorkerSlot[]): string[] {
  const live = workers.filter((w) => w.process.state === 'running' && w.worker !== undefined);
  const views = live.map((w) => w.worker!.view).filter((v): v is View => v !== null);
  if (views.length === 0) return live.length === 0 ? [] : ['no live worker holds a view'];
  const newest = views.reduce((a, b) => (b.viewId > a.viewId ? b : a));
  const out: string[] = [];
  const stale = live.filter((w) => w.worker!.view?.viewId !== newest.viewId);
  for (const w of stale)
    out.push(`${w.process.name} holds view ${w.worker!.view?.viewId ?? 'none'}, the others ${newest.viewId}`);
  for (const w of live) {
    const id = w.worker!.id;
    const member = newest.members.find((m) => m.id === id || m.id.startsWith(`${id}~`))?.id;
    const given = newest.shards.flatMap((s, i) =>
      member !== undefined && s.state === 'ACTIVE' && s.primary === member ? [i] : [],
    );
    const serving = [...w.worker!.serving].sort((a, b) => a - b);
    if (serving.join() !== given.join())
      out.push(
        `${w.process.name} (${member ?? `${id}, not in view ${newest.viewId}`}) serves [${serving}] but view ${newest.viewId} gives it [${given}]`,
      );
  }
  return out;
}
