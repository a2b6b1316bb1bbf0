import { describe, expect, it } from 'vitest';
import { SimulatedClock } from '../../bus/clock.js';
import {
  BusClosedError,
  ConnectionLostError,
  NoRespondersError,
  PayloadTooLargeError,
  PermissionDeniedError,
  TimeoutError,
  WrongLastSequenceError,
} from '../../bus/errors.js';
import { HealthMonitor } from '../../actors/worker/health.js';

function monitor(failureCondition: 1 | 2 | 3 = 3) {
  const clock = new SimulatedClock(0);
  const facts = { busySince: null as number | null, leaseLost: false };
  const m = new HealthMonitor({
    config: { failureCondition, healthCheckTimeout: 1_000 },
    clock,
    busySince: () => facts.busySince,
    leaseLost: () => facts.leaseLost,
  });
  return { m, clock, facts };
}

describe('HealthMonitor (a worker gathering its own health facts)', () => {
  it('journal faults that go on for the health-check timeout are commits-failing; one success clears them', () => {
    const { m, clock } = monitor();
    m.appendFailed(new TimeoutError('append x', 5_000));
    clock.increment(600);
    m.appendFailed(new NoRespondersError('cohort.x'));
    expect(m.check()).toBeUndefined();
    clock.increment(400);
    m.appendFailed(new ConnectionLostError());
    expect(m.check()).toBe('commits-failing');
    m.appended();
    // Credentials that deny this worker's appends are its own fault too.
    m.appendFailed(new PermissionDeniedError('publish', 'cohort.x.jrnl.1.a.b'));
    clock.increment(1_000);
    m.appendFailed(new PermissionDeniedError('publish', 'cohort.x.jrnl.1.a.b'));
    expect(m.check()).toBe('commits-failing');
    m.appended();
    expect(m.check()).toBeUndefined();
  });

  it('refusals are the journal working, and a closed bus is the worker stopping: neither counts', () => {
    const { m, clock } = monitor();
    for (let i = 0; i < 5; i++) {
      m.appendFailed(new WrongLastSequenceError('s', 1, 2));
      m.appendFailed(new PayloadTooLargeError(2_000_000, 1_048_576, 'append'));
      m.appendFailed(new BusClosedError('append'));
      m.appendFailed(new Error('anything else'));
      clock.increment(500);
    }
    expect(m.facts().failing).toBeNull();
    expect(m.check()).toBeUndefined();
  });

  it('a mailbox stuck on one message is unresponsive from level 2; the lease lost is timed from the first check that saw it', () => {
    const { m, clock, facts } = monitor(2);
    facts.busySince = 0;
    clock.increment(999);
    expect(m.check()).toBeUndefined();
    clock.increment(1);
    expect(m.check()).toBe('unresponsive');
    const lease = monitor(3);
    lease.facts.leaseLost = true;
    lease.clock.increment(5_000);
    expect(lease.m.check()).toBeUndefined(); // first seen now
    lease.clock.increment(1_000);
    expect(lease.m.check()).toBe('lease-lost');
    lease.facts.leaseLost = false;
    expect(lease.m.check()).toBeUndefined();
    // Level 1: nothing steps it down.
    const quiet = monitor(1);
    quiet.facts.busySince = 0;
    quiet.facts.leaseLost = true;
    quiet.m.check();
    quiet.clock.increment(10_000);
    expect(quiet.m.check()).toBeUndefined();
  });
});
