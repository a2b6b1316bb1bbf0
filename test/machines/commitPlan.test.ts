import { describe, expect, it } from 'vitest';
import { planCommit, primacyVerdict, type CommitFacts } from '../../machines/commitPlan.js';

const base: CommitFacts = {
  level: 'journal',
  requiredSynchronizedReplicas: 0,
  syncReplicas: 1,
  replication: true,
  synchronized: 0,
  primacy: { epoch: 4, leaseHeld: true },
};

describe('planCommit', () => {
  it('appends at level journal under the epoch, and proves primacy again after', () => {
    expect(planCommit(base)).toEqual({ do: 'append', epoch: 4, askStoredView: false, reprove: true, waitFor: null });
  });

  it('static sharding is trusted: epoch 0, nothing to prove', () => {
    expect(planCommit({ ...base, replication: false, primacy: null })).toEqual({
      do: 'append',
      epoch: 0,
      askStoredView: false,
      reprove: false,
      waitFor: null,
    });
  });

  it('level memory journals in the background and does not prove again', () => {
    expect(planCommit({ ...base, level: 'memory' })).toEqual({
      do: 'background',
      epoch: 4,
      askStoredView: false,
      reprove: false,
      waitFor: null,
    });
  });

  it('level replicas waits for syncReplicas secondaries, only where secondaries are tracked', () => {
    expect(planCommit({ ...base, level: 'replicas', syncReplicas: 2 })).toMatchObject({ do: 'append', waitFor: 2 });
    expect(planCommit({ ...base, level: 'replicas', syncReplicas: 0 })).toMatchObject({ do: 'append', waitFor: 0 });
    expect(planCommit({ ...base, level: 'replicas', replication: false, primacy: null })).toMatchObject({
      do: 'append',
      waitFor: null,
    });
  });

  it('refuses before anything is written with fewer synchronized secondaries than required', () => {
    const facts: CommitFacts = { ...base, level: 'replicas', requiredSynchronizedReplicas: 2, synchronized: 1 };
    expect(planCommit(facts)).toEqual({ do: 'refuse', why: 'not-enough-replicas', required: 2, synchronized: 1 });
    expect(planCommit({ ...facts, synchronized: 2 })).toMatchObject({ do: 'append' });
    // Only level replicas counts them, and only where they are tracked.
    expect(planCommit({ ...facts, level: 'journal' })).toMatchObject({ do: 'append' });
    expect(planCommit({ ...facts, replication: false })).toMatchObject({ do: 'append' });
  });

  it('refuses as moved when the view does not make this worker primary, whatever the lease says', () => {
    expect(planCommit({ ...base, primacy: { epoch: null, leaseHeld: true } })).toEqual({ do: 'refuse', why: 'moved' });
    expect(planCommit({ ...base, level: 'memory', primacy: { epoch: null, leaseHeld: false } })).toEqual({
      do: 'refuse',
      why: 'moved',
    });
  });

  it('with the lease lapsed, asks the stored view before writing', () => {
    expect(planCommit({ ...base, primacy: { epoch: 7, leaseHeld: false } })).toEqual({
      do: 'append',
      epoch: 7,
      askStoredView: true,
      reprove: true,
      waitFor: null,
    });
    expect(planCommit({ ...base, level: 'memory', primacy: { epoch: 7, leaseHeld: false } })).toMatchObject({
      do: 'background',
      askStoredView: true,
    });
  });
});

describe('primacyVerdict', () => {
  it('is proven by the lease, else by the stored view, and lost without the view', () => {
    expect(primacyVerdict({ epoch: 3, leaseHeld: true })).toBe('proven');
    expect(primacyVerdict({ epoch: null, leaseHeld: true })).toBe('moved');
    expect(primacyVerdict({ epoch: 3, leaseHeld: false })).toBe('ask-stored-view');
    expect(primacyVerdict({ epoch: 3, leaseHeld: false }, true)).toBe('proven');
    expect(primacyVerdict({ epoch: 3, leaseHeld: false }, false)).toBe('moved');
  });

  it('after an append, the epoch must still be the one appended under', () => {
    expect(primacyVerdict({ epoch: 3, leaseHeld: true }, undefined, 3)).toBe('proven');
    expect(primacyVerdict({ epoch: 4, leaseHeld: true }, undefined, 3)).toBe('moved');
    expect(primacyVerdict({ epoch: 4, leaseHeld: false }, undefined, 3)).toBe('ask-stored-view');
    expect(primacyVerdict({ epoch: 4, leaseHeld: false }, true, 3)).toBe('moved');
    expect(primacyVerdict({ epoch: 3, leaseHeld: false }, true, 3)).toBe('proven');
  });
});
