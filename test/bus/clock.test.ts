import { describe, expect, it } from 'vitest';
import { SimulatedClock, systemClock } from '../../bus/clock.js';

describe('clocks', () => {
  it("system clock: a delay beyond Node's 2^31-1 ms limit does not fire at once, and can be cleared", async () => {
    let fired = false;
    const h = systemClock.setTimeout(() => (fired = true), 30 * 24 * 3600 * 1000);
    // Node would fire an over-long timer on the next tick; give it several.
    await new Promise((r) => setTimeout(r, 20));
    expect(fired).toBe(false);
    systemClock.clearTimeout(h);
  });

  it('system clock: fires a short delay', async () => {
    const fired = await new Promise<boolean>((resolve) => systemClock.setTimeout(() => resolve(true), 5));
    expect(fired).toBe(true);
  });

  it('simulated clock: fires due timers in order, only when moved', () => {
    const clock = new SimulatedClock(1000);
    const seen: string[] = [];
    clock.setTimeout(() => seen.push('b'), 20);
    clock.setTimeout(() => seen.push('a'), 10);
    const c = clock.setTimeout(() => seen.push('never'), 15);
    clock.clearTimeout(c);
    clock.increment(9);
    expect(seen).toEqual([]);
    clock.increment(11);
    expect(seen).toEqual(['a', 'b']);
    expect(clock.now()).toBe(1020);
    expect(clock.pendingTimers).toBe(0);
  });
});
