import { describe, expect, it } from 'vitest';
import { SimulatedClock } from '../../bus/clock.js';
import { WatchInterest } from '../../actors/worker/interest.js';
import { TooManyWatchesError } from '../../protocol/errors.js';

/** The worker's registry of watched sessions, on virtual time. */
describe('watch interest', () => {
  function registry(options: { perClient?: number; capacity?: number; patches?: 'always' | 'watched' } = {}) {
    const clock = new SimulatedClock(1_000_000);
    const interest = new WatchInterest({ clock, takeoverGrace: 30_000, ...options });
    return { clock, interest };
  }

  it('a session is wanted while a lease runs, and not once it lapses; a renewal keeps it', () => {
    const { clock, interest } = registry();
    expect(interest.wants('app', 'a', 0)).toBe(false);
    expect(interest.watch('app', 'a', 'c#1', 3_000)).toBe(3_000);
    expect(interest.wants('app', 'a', 0)).toBe(true);
    expect(interest.wants('app', 'b', 0)).toBe(false);
    expect(interest.wants('other', 'a', 0)).toBe(false);
    clock.increment(2_000);
    interest.watch('app', 'a', 'c#1', 3_000);
    clock.increment(2_000);
    expect(interest.wants('app', 'a', 0)).toBe(true);
    clock.increment(1_000);
    expect(interest.wants('app', 'a', 0)).toBe(false);
  });

  it("one client's unwatch leaves another's lease", () => {
    const { clock, interest } = registry();
    interest.watch('app', 'a', 'c#1', 10_000);
    clock.increment(1_000);
    interest.watch('app', 'a', 'c#2', 5_000);
    interest.unwatch('app', 'a', 'c#1');
    expect(interest.wants('app', 'a', 0)).toBe(true);
    expect(interest.size).toBe(1);
    // Its own lease, not the one that was unwatched, decides.
    clock.increment(5_000);
    expect(interest.wants('app', 'a', 0)).toBe(false);
    interest.unwatch('app', 'a', 'c#2');
    interest.unwatch('app', 'a', 'never');
    expect(interest.size).toBe(0);
  });

  it('lapsed leases are swept, so memory stays bounded without unwatches', () => {
    const { clock, interest } = registry();
    for (let i = 0; i < 1_000; i++) interest.watch('app', `s${i}`, `c#${i % 10}`, 1_000);
    expect(interest.size).toBe(1_000);
    clock.increment(31_000);
    interest.watch('app', 'fresh', 'c#0', 1_000);
    expect(interest.size).toBe(1);
  });

  it('a client past its limit is refused, typed, and others are not', () => {
    const { interest } = registry({ perClient: 3 });
    for (let i = 0; i < 3; i++) expect(interest.watch('app', `s${i}`, 'flood#1', 5_000)).toBe(5_000);
    const refused = interest.watch('app', 's3', 'flood#1', 5_000);
    expect(refused).toBeInstanceOf(TooManyWatchesError);
    expect((refused as TooManyWatchesError).limit).toBe(3);
    expect(interest.wants('app', 's3', 0)).toBe(false);
    // Renewing what it holds is not a new watch.
    expect(interest.watch('app', 's0', 'flood#1', 5_000)).toBe(5_000);
    expect(interest.watch('app', 's3', 'calm#1', 5_000)).toBe(5_000);
  });

  it('full: every patch is published a lease long rather than a well-behaved watch refused', () => {
    const { clock, interest } = registry({ capacity: 2 });
    interest.watch('app', 'a', 'c#1', 5_000);
    interest.watch('app', 'b', 'c#2', 5_000);
    expect(interest.wants('app', 'z', 0)).toBe(false);
    expect(interest.watch('app', 'c', 'c#3', 5_000)).toBe(5_000);
    expect(interest.size).toBe(2);
    expect(interest.wants('app', 'z', 0)).toBe(true);
    clock.increment(5_000);
    expect(interest.wants('app', 'z', 0)).toBe(false);
    // Lapsed leases made room: a watch is recorded again.
    interest.watch('app', 'c', 'c#3', 5_000);
    expect(interest.size).toBe(1);
  });

  it('a shard taken up publishes everything for the grace, then only what is watched', () => {
    const { clock, interest } = registry();
    interest.takenUp([2, 3]);
    expect(interest.wants('app', 'a', 2)).toBe(true);
    expect(interest.wants('app', 'a', 1)).toBe(false);
    clock.increment(30_000);
    expect(interest.wants('app', 'a', 2)).toBe(false);
  });

  it("patches: 'always' publishes every patch", () => {
    const { interest } = registry({ patches: 'always' });
    expect(interest.wants('app', 'a', 0)).toBe(true);
  });
});
