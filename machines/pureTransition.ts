import {
  createActor,
  type AnyActorScope,
  type AnyEventObject,
  type AnyMachineSnapshot,
  type AnyStateMachine,
  type ExecutableActionsFrom,
} from 'xstate';

/**
 * xstate's pure `transition()`, minus its cost: xstate builds a fresh (inert)
 * actor for every call, and that actor computes the machine's whole initial
 * state again: three quarters of a step's time. A session only ever steps
 * synchronously on one thread, so one inert scope per machine serves every
 * call; the actions are collected exactly as `transition()` collects them
 * (test/machines/pureTransition.test.ts checks the two agree).
 */

type Action = ExecutableActionsFrom<AnyStateMachine>;

interface Scope {
  readonly scope: AnyActorScope;
  collected: Action[];
}

const scopes = new WeakMap<AnyStateMachine, Scope>();

function scopeOf(machine: AnyStateMachine): Scope {
  let s = scopes.get(machine);
  if (s !== undefined) return s;
  // Never started: it only lends the machine a `self` and a `system`, as xstate's inert scope does.
  const self = createActor(machine);
  const holder: Scope = { scope: undefined as unknown as AnyActorScope, collected: [] };
  const scope = {
    self,
    system: self.system,
    id: '',
    sessionId: '',
    defer: () => {},
    logger: () => {},
    stopChild: () => {},
    emit: () => {},
    actionExecutor: (action: Action) => {
      holder.collected.push(action);
    },
  };
  s = Object.assign(holder, { scope: scope as unknown as AnyActorScope });
  scopes.set(machine, s);
  return s;
}

/** The next snapshot and the actions to execute; the same snapshot object when the event changes nothing. */
export function pureTransition(
  machine: AnyStateMachine,
  snapshot: AnyMachineSnapshot,
  event: AnyEventObject,
): [AnyMachineSnapshot, Action[]] {
  const s = scopeOf(machine);
  const collected: Action[] = [];
  s.collected = collected;
  try {
    return [machine.transition(snapshot, event, s.scope), collected];
  } finally {
    s.collected = [];
  }
}
