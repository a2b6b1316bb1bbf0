/**
 * The lease's bookkeeping on virtual time: what it holds after heartbeats
 * are echoed, when it lapses, the proving window after a lapse, and the
 * primacy answers it gives from the latest and the stored view.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Lease } from '../../internal.js';
import { SimulatedClock } from '../../bus/clock.js';
import { NO_SAFEGUARDS, type View } from '../../machines/view.js';

const silent = pino({ level: 'silent' });
const config = { sessionTimeout: 3_000, heartbeatInterval: 500 };
/** The session timeout less one heartbeat. */
const SPAN = 2_500;
/** Clocks start at a realistic time: the lease counts from the epoch before any echo. */
const T0 = 1_700_000_000_000;

function viewWith(primary: string, epoch: number, state: 'ACTIVE' | 'DEAD' = 'ACTIVE'): View {
  return {
    viewId: 1,
    members: [],
    leader: primary,
    replicas: 0,
    shardCount: 1,
    shards: [{ primary, replicas: [], state, next: null, epoch }],
    transitional: false,
    possibleDataLoss: [],
    safeguards: NO_SAFEGUARDS,
  };
}

function leaseOn(
  clock: SimulatedClock,
  views: { latest?: View | null; stored?: () => Promise<View | null> } = {},
): Lease {
  return new Lease({
    self: 'w1',
    config,
    clock,
    log: silent,
    view: () => views.latest ?? null,
    storedView: views.stored ?? (async () => null),
  });
}

describe('Lease', () => {
  it('is not held before any heartbeat comes back', () => {
    const clock = new SimulatedClock(T0);
    const lease = leaseOn(clock);
    lease.sent();
    expect(lease.leaseHeld()).toBe(false);
  });

  it('is held from when the echoed heartbeat was sent, for the session timeout less a heartbeat', () => {
    const clock = new SimulatedClock(T0);
    const lease = leaseOn(clock);
    const beat = lease.sent();
    clock.increment(40);
    lease.confirm(beat, clock.now());
    expect(lease.leaseHeld()).toBe(true);
    clock.set(T0 + SPAN - 1);
    expect(lease.leaseHeld()).toBe(true);
    clock.set(T0 + SPAN);
    expect(lease.leaseHeld()).toBe(false);
  });

  it('ignores echoes of beats it never sent or already confirmed', () => {
    const clock = new SimulatedClock(T0);
    const lease = leaseOn(clock);
    const first = lease.sent();
    lease.confirm(first + 7, clock.now());
    expect(lease.leaseHeld()).toBe(false);
    lease.confirm(first, clock.now());
    clock.increment(SPAN);
    // A second echo of the same beat does not extend it.
    lease.confirm(first, clock.now());
    expect(lease.leaseHeld()).toBe(false);
  });

  it('after a lapse, proves writes against the stored view for a session timeout even with fresh echoes', () => {
    const clock = new SimulatedClock(T0);
    const lease = leaseOn(clock);
    lease.confirm(lease.sent(), clock.now());
    clock.increment(SPAN + 100);
    const late = lease.sent();
    lease.confirm(late, clock.now());
    const back = clock.now();
    expect(lease.leaseHeld()).toBe(false);
    // Heartbeats echoed on time from then on: still proving until a session timeout has passed.
    while (clock.now() + config.heartbeatInterval < back + config.sessionTimeout) {
      clock.increment(config.heartbeatInterval);
      lease.confirm(lease.sent(), clock.now());
      expect(lease.leaseHeld()).toBe(false);
    }
    clock.set(back + config.sessionTimeout);
    lease.confirm(lease.sent(), clock.now());
    expect(lease.leaseHeld()).toBe(true);
  });

  it('answers epochOf from the latest view and stillPrimary from the stored one', async () => {
    const clock = new SimulatedClock(T0);
    let stored: View | null = viewWith('w1', 4);
    const views = { latest: viewWith('w1', 4) as View | null, stored: async () => stored };
    const lease = leaseOn(clock, views);
    expect(lease.self).toBe('w1');
    expect(lease.epochOf(0)).toBe(4);
    expect(lease.epochOf(1)).toBeNull();
    expect(await lease.stillPrimary(0, 4)).toBe(true);
    expect(await lease.stillPrimary(0, 3)).toBe(false);
    stored = viewWith('w2', 5);
    expect(await lease.stillPrimary(0, 4)).toBe(false);
    stored = null;
    expect(await lease.stillPrimary(0, 4)).toBe(false);
    views.latest = viewWith('w1', 4, 'DEAD');
    expect(lease.epochOf(0)).toBeNull();
    views.latest = null;
    expect(lease.epochOf(0)).toBeNull();
  });

  it('refuses to prove a write when the stored view cannot be read', async () => {
    const lease = leaseOn(new SimulatedClock(T0), {
      stored: async () => {
        throw new Error('kv down');
      },
    });
    expect(await lease.stillPrimary(0, 1)).toBe(false);
  });
});
