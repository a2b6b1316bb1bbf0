import { describe, expect, it } from 'vitest';
import { RecentCommands, type RecentCommand } from '../../actors/worker/recentCommands.js';
import { DEDUP_MAX_IDS, DEDUP_WINDOW_MS } from '../../protocol/dedup.js';

/** The plain model: a Map in commit order, as the de-duplication window is specified. */
class Model {
  readonly ids = new Map<string, { seq: number; time: number }>();
  remember(cmdId: string, seq: number, time: number): void {
    this.ids.delete(cmdId);
    this.ids.set(cmdId, { seq, time });
    if (this.ids.size > DEDUP_MAX_IDS) this.ids.delete(this.ids.keys().next().value!);
  }
  #expire(now: number): void {
    for (const [id, { time }] of this.ids) {
      if (now - time < DEDUP_WINDOW_MS) return;
      this.ids.delete(id);
    }
  }
  seqOf(cmdId: string, now: number): number | undefined {
    this.#expire(now);
    const k = this.ids.get(cmdId);
    return k === undefined || now - k.time >= DEDUP_WINDOW_MS ? undefined : k.seq;
  }
  entries(now: number): RecentCommand[] {
    this.#expire(now);
    return [...this.ids].map(([id, { seq, time }]) => [id, seq, time]);
  }
}

/** A small seeded generator: the same run every time. */
function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => (x = (Math.imul(x, 1_664_525) + 1_013_904_223) >>> 0) / 2 ** 32;
}

describe('the ids a session remembers', () => {
  for (const seed of [1, 2, 3]) {
    it(`agree with the plain model over 20,000 random operations (seed ${seed}): retried ids, expiry, the cap`, () => {
      const rnd = lcg(seed);
      const real = new RecentCommands();
      const model = new Model();
      let now = 0;
      let seq = 0;
      // Few distinct ids so that retries of remembered ones are common; sometimes many, to pass the cap.
      const pool = seed === 3 ? 3_000 : 40;
      for (let i = 0; i < 20_000; i++) {
        const r = rnd();
        const id = `c${Math.floor(rnd() * pool)}`;
        if (r < 0.5) {
          seq++;
          real.remember(id, seq, now);
          model.remember(id, seq, now);
        } else if (r < 0.9) expect(real.seqOf(id, now)).toBe(model.seqOf(id, now));
        else if (r < 0.97) now += Math.floor(rnd() * 2_000);
        else expect(real.entries(now)).toEqual(model.entries(now));
        if (i % 997 === 0) expect(real.size).toBe(model.ids.size);
      }
      expect(real.entries(now)).toEqual(model.entries(now));
      now += DEDUP_WINDOW_MS;
      expect(real.entries(now)).toEqual([]);
    });
  }
});
