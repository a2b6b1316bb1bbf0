import { describe, expect, it } from 'vitest';
import { assessHealth, healthConfig, HealthConfigError, type HealthFacts } from '../../machines/health.js';

const T = 10_000;
const healthy: HealthFacts = { failing: null, busySince: null, leaseLostSince: null };

describe('assessHealth: the failure-condition levels', () => {
  it('a mailbox on one message for the health-check timeout is unresponsive from level 2; level 1 never steps down', () => {
    const facts = { ...healthy, busySince: 1_000 };
    expect(assessHealth(facts, { failureCondition: 2, healthCheckTimeout: T }, 1_000 + T - 1)).toBeNull();
    expect(assessHealth(facts, { failureCondition: 2, healthCheckTimeout: T }, 1_000 + T)).toEqual({
      reason: 'unresponsive',
      since: 1_000,
    });
    expect(assessHealth(facts, { failureCondition: 1, healthCheckTimeout: T }, 1_000 + 5 * T)).toBeNull();
  });

  it('appends failing for the timeout, the latest within it, are a fault at level 3 only', () => {
    const facts = { ...healthy, failing: { count: 3, first: 0, last: T - 100 } };
    expect(assessHealth(facts, { failureCondition: 3, healthCheckTimeout: T }, T)).toEqual({
      reason: 'commits-failing',
      since: 0,
    });
    expect(assessHealth(facts, { failureCondition: 2, healthCheckTimeout: T }, T)).toBeNull();
    // Not yet long enough; a lone failure; failures that stopped (nothing tried since) are no fault.
    expect(assessHealth(facts, { failureCondition: 3, healthCheckTimeout: T }, T - 1)).toBeNull();
    const lone = { ...healthy, failing: { count: 1, first: 0, last: 0 } };
    expect(assessHealth(lone, { failureCondition: 3, healthCheckTimeout: T }, T)).toBeNull();
    expect(assessHealth(facts, { failureCondition: 3, healthCheckTimeout: T }, 2 * T - 100)).toBeNull();
  });

  it('the lease lost for the timeout is a fault at level 3', () => {
    const facts = { ...healthy, leaseLostSince: 500 };
    expect(assessHealth(facts, { failureCondition: 3, healthCheckTimeout: T }, 500 + T - 1)).toBeNull();
    expect(assessHealth(facts, { failureCondition: 3, healthCheckTimeout: T }, 500 + T)?.reason).toBe('lease-lost');
    expect(assessHealth(facts, { failureCondition: 2, healthCheckTimeout: T }, 500 + T)).toBeNull();
  });

  it('healthy facts are healthy at every level', () => {
    for (const failureCondition of [1, 2, 3] as const)
      expect(assessHealth(healthy, { failureCondition, healthCheckTimeout: T }, 1e9)).toBeNull();
  });
});

describe('healthConfig', () => {
  it('defaults to level 3 and 10 s (or the session timeout, when longer)', () => {
    expect(healthConfig({}, 3_000)).toEqual({ failureCondition: 3, healthCheckTimeout: 10_000 });
    expect(healthConfig({}, 20_000)).toEqual({ failureCondition: 3, healthCheckTimeout: 20_000 });
    expect(healthConfig({ failureCondition: 1, healthCheckTimeout: 4_000 }, 3_000)).toEqual({
      failureCondition: 1,
      healthCheckTimeout: 4_000,
    });
  });

  it('refuses a level outside 1..3 and a timeout shorter than the session timeout', () => {
    for (const failureCondition of [0, 4, 2.5, Number.NaN])
      expect(() => healthConfig({ failureCondition }, 3_000)).toThrow(HealthConfigError);
    for (const healthCheckTimeout of [2_999, -1, 1.5e4 + 0.5, Infinity])
      expect(() => healthConfig({ healthCheckTimeout }, 3_000)).toThrow(/healthCheckTimeout/);
  });
});
