import { describe, expect, it } from 'vitest';
import { MEMBERSHIP_DEFAULTS } from '../../machines/membership.js';
import { MembershipConfigError, membershipConfig } from '../../machines/membershipConfig.js';

describe('membershipConfig', () => {
  it('fills in the defaults', () => {
    expect(membershipConfig({ shardCount: 16 })).toEqual({ ...MEMBERSHIP_DEFAULTS, shardCount: 16 });
    expect(
      membershipConfig({
        shardCount: 4,
        heartbeatInterval: 250,
        sessionTimeout: 500,
        replicas: 0,
        maxConcurrentMoves: 1,
        failoverQuota: 1,
        failoverWindow: 60_000,
        minMembers: 2,
        stableAfter: 5_000,
        unstableAfter: 20_000,
      }),
    ).toEqual({
      heartbeatInterval: 250,
      sessionTimeout: 500,
      replicas: 0,
      maxConcurrentMoves: 1,
      shardCount: 4,
      failoverQuota: 1,
      failoverWindow: 60_000,
      minMembers: 2,
      stableAfter: 5_000,
      unstableAfter: 20_000,
    });
    // No quota, and never unstable: Infinity where a bound may be switched off.
    expect(membershipConfig({ shardCount: 4, failoverQuota: Infinity, unstableAfter: Infinity })).toMatchObject({
      failoverQuota: Infinity,
      unstableAfter: Infinity,
    });
  });

  it.each([
    [{ sessionTimeout: 499 }, 'sessionTimeout', /sessionTimeout must be at least 500 ms \(got 499\)/],
    [
      { sessionTimeout: 800 },
      'heartbeatInterval',
      /heartbeatInterval must be > 0 and at most half of sessionTimeout \(got 500 and 800\)/,
    ],
    [{ heartbeatInterval: 0 }, 'heartbeatInterval', /heartbeatInterval must be > 0/],
    [{ replicas: -1 }, 'replicas', /replicas must be a whole number >= 0 \(got -1\)/],
    [{ replicas: 1.5 }, 'replicas', /replicas must be a whole number >= 0/],
    [{ maxConcurrentMoves: 0 }, 'maxConcurrentMoves', /maxConcurrentMoves must be a whole number >= 1 \(got 0\)/],
    [{ failoverQuota: 0 }, 'failoverQuota', /failoverQuota must be a whole number >= 1 or Infinity \(got 0\)/],
    [{ failoverQuota: 2.5 }, 'failoverQuota', /failoverQuota must be a whole number/],
    [{ failoverQuota: NaN }, 'failoverQuota', /failoverQuota must be a whole number/],
    [{ failoverWindow: Infinity }, 'failoverWindow', /failoverWindow must be a whole number >= 1 \(got Infinity\)/],
    [{ failoverWindow: -1 }, 'failoverWindow', /failoverWindow must be a whole number >= 1/],
    [{ minMembers: 0 }, 'minMembers', /minMembers must be a whole number >= 1 \(got 0\)/],
    [{ stableAfter: 0 }, 'stableAfter', /stableAfter must be a whole number >= 1/],
    [{ unstableAfter: -Infinity }, 'unstableAfter', /unstableAfter must be a whole number >= 1 or Infinity/],
    [{ unstableAfter: 1e300 }, 'unstableAfter', /unstableAfter must be a whole number/],
  ] as const)('refuses %o naming %s', (given, option, message) => {
    let caught: unknown;
    try {
      membershipConfig({ shardCount: 8, ...given });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(RangeError);
    expect(caught).toBeInstanceOf(MembershipConfigError);
    expect((caught as RangeError).name).toBe('RangeError');
    expect(caught).toMatchObject({ option });
    expect((caught as Error).message).toMatch(message);
  });
});
