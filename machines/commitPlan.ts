/**
 * The commit path's decisions (DESIGN.md sections 3 and 4), as a pure
 * function the session host carries out, the way xstate's `transition()`
 * returns what to do and runs none of it. The host reads the facts (its
 * application's settings, its secondaries, its standing as primary), asks
 * for a plan, and executes it: the append, the stored-view reads, the wait.
 */

/** When a command's reply goes out: accepted in memory, journaled, or journaled and applied by secondaries. */
export type CommitLevel = 'memory' | 'journal' | 'replicas';

/** What a primary knows of its own standing, read from its lease and its latest view. */
export interface PrimacyFacts {
  /** The shard's epoch while the latest view makes this worker its primary; null otherwise. */
  readonly epoch: number | null;
  /** Its heartbeats came back lately: nobody can have taken over. */
  readonly leaseHeld: boolean;
}

export interface CommitFacts {
  readonly level: CommitLevel;
  /** Fewer synchronized secondaries than this and a commit at level `replicas` is refused. */
  readonly requiredSynchronizedReplicas: number;
  /** Synchronized secondaries a commit at level `replicas` waits for after the append. */
  readonly syncReplicas: number;
  /** Secondaries are tracked here (membership). Without, level `replicas` commits as `journal` does. */
  readonly replication: boolean;
  /** Synchronized secondaries of the shard now; counted only when some are required (0 otherwise). */
  readonly synchronized: number;
  /** Null: static sharding, trusted by its configuration (epoch 0). */
  readonly primacy: PrimacyFacts | null;
}

export type CommitPlan =
  /** Refused before anything is written, rather than silently less safe. */
  | {
      readonly do: 'refuse';
      readonly why: 'not-enough-replicas';
      readonly required: number;
      readonly synchronized: number;
    }
  /** Refused, retryable: this worker is not (provably) the shard's primary. */
  | { readonly do: 'refuse'; readonly why: 'moved' }
  | {
      /** `append`: journaled before the reply. `background`: the reply goes first, the journal follows in order. */
      readonly do: 'append' | 'background';
      /** The epoch the record is stamped with and the reply signed with. */
      readonly epoch: number;
      /** The lease lapsed: the stored view must still name this worker at `epoch` before anything is written. */
      readonly askStoredView: boolean;
      /** Primacy may be lost while an append is in flight: prove it again after, before acknowledging. */
      readonly reprove: boolean;
      /** Synchronized secondaries to wait for (bounded) after the append; null: none. */
      readonly waitFor: number | null;
    };

/** Whether a write under the facts' epoch is proven by the lease, needs the stored view's word, or is lost. */
export type PrimacyVerdict = 'proven' | 'ask-stored-view' | 'moved';

/**
 * Primacy as the facts prove it. `storedView`: the stored view's answer,
 * once asked. `expected`: the epoch an append was made under, which must
 * still be this worker's.
 */
export function primacyVerdict(facts: PrimacyFacts, storedView?: boolean, expected?: number): PrimacyVerdict {
  if (facts.epoch === null) return 'moved';
  if (!facts.leaseHeld) {
    if (storedView === undefined) return 'ask-stored-view';
    if (!storedView) return 'moved';
  }
  return expected === undefined || facts.epoch === expected ? 'proven' : 'moved';
}

const MOVED: CommitPlan = Object.freeze({ do: 'refuse', why: 'moved' });

export function planCommit(facts: CommitFacts): CommitPlan {
  const replicated = facts.level === 'replicas' && facts.replication;
  if (replicated && facts.requiredSynchronizedReplicas > 0 && facts.synchronized < facts.requiredSynchronizedReplicas) {
    return {
      do: 'refuse',
      why: 'not-enough-replicas',
      required: facts.requiredSynchronizedReplicas,
      synchronized: facts.synchronized,
    };
  }
  const primacy = facts.primacy;
  const verdict = primacy === null ? 'proven' : primacyVerdict(primacy);
  if (verdict === 'moved') return MOVED;
  const epoch = primacy?.epoch ?? 0;
  const askStoredView = verdict === 'ask-stored-view';
  if (facts.level === 'memory') return { do: 'background', epoch, askStoredView, reprove: false, waitFor: null };
  return {
    do: 'append',
    epoch,
    askStoredView,
    reprove: primacy !== null,
    waitFor: replicated ? facts.syncReplicas : null,
  };
}
