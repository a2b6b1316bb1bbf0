import { assign, enqueueActions, setup } from 'xstate';

/**
 * A client's connection to the cluster, after InterSystems ECP (DESIGN.md
 * section 6):
 *
 *   NOT_CONNECTED → CONNECTING → NORMAL ⇄ TROUBLE → DISABLED → NOT_CONNECTED
 *
 * Pure: time comes in the events and effects leave as emitted events
 * (`retry`, `recovered`, `disabled`, `connected`), so the host decides how
 * to talk to the bus and tests drive it on a simulated clock.
 */

export type ConnectionState = 'NOT_CONNECTED' | 'CONNECTING' | 'NORMAL' | 'TROUBLE' | 'DISABLED' | 'CLOSED';

export interface ConnectionConfig {
  /** How long the first connection may take before requests fail with ClientDisconnectedError. */
  readonly waitTimeout: number;
  /** Most time between two retries of the pending requests while in TROUBLE. */
  readonly reconnectInterval: number;
  /** How long TROUBLE may last before the connection is DISABLED and its requests fail. */
  readonly troubledInterval: number;
}

export const CONNECTION_DEFAULTS: ConnectionConfig = {
  waitTimeout: 30_000,
  reconnectInterval: 250,
  troubledInterval: 10_000,
};

/**
 * Pauses before the first retries in TROUBLE, then every reconnectInterval.
 * A planned hand-off takes tens of milliseconds, so waiting a whole
 * interval at once would turn it into a visible stall; and pauses that kept
 * doubling from the first would leave a client waiting up to as long again
 * as the hand-off took. So every 25 ms for the first quarter second (the
 * stall is the hand-off plus at most 25 ms), then doubling.
 */
const FIRST_PAUSES = [5, 10, 15, 20, 25, 25, 25, 25, 25, 25, 25, 25, 50, 100, 200];

export function retryPause(retries: number, reconnectInterval: number): number {
  return Math.min(FIRST_PAUSES[retries] ?? reconnectInterval, reconnectInterval);
}

/** Why the connection gave up, for the errors its requests fail with. */
export type Failure = 'wait-timeout' | 'troubled' | 'forced' | 'closed';

export interface ConnectionContext {
  readonly config: ConnectionConfig;
  readonly now: number;
  /** When CONNECTING started (waitTimeout counts from here). */
  readonly connectingSince: number;
  /** When TROUBLE started (troubledInterval counts from here). */
  readonly troubleSince: number;
  /** Retries sent in this spell of TROUBLE, and when the next one is due. */
  readonly retries: number;
  readonly nextRetryAt: number;
  /** What went wrong last: shown in errors and logs. */
  readonly reason: string;
  readonly failure: Failure | null;
  /** Connections made so far; each one is a new client id on the servers. */
  readonly connections: number;
  /** Times TROUBLE ended in recovery. */
  readonly recoveries: number;
}

export type ConnectionEvent =
  /** A request needs the connection (or `connect()` was called) while NOT_CONNECTED. */
  | { type: 'CONNECT'; now: number }
  /** The bus has a server (first connect or reconnect). */
  | { type: 'BUS_UP'; now: number }
  /** The bus lost its server. */
  | { type: 'BUS_DOWN'; now: number; reason: string }
  /** A worker answered a request (any answer, errors included). */
  | { type: 'ANSWERED'; now: number }
  /** A request timed out or found no responders. */
  | { type: 'UNANSWERED'; now: number; reason: string }
  | { type: 'TICK'; now: number }
  /** Disconnected by force: a worker said so, or a transaction ran past its timeout. */
  | { type: 'DISCONNECT'; now: number; reason: string }
  /** DISABLED: the host has failed every pending request; the next one connects again. */
  | { type: 'SETTLED'; now: number }
  | { type: 'CLOSE'; now: number };

export type ConnectionEffect =
  /**
   * Send every pending request again (same bodies, so the same command ids);
   * after a reconnect, those in flight too: the server that had them is gone.
   */
  | { type: 'retry'; reconnected: boolean }
  /** Connected: send what was queued. */
  | { type: 'connected'; connection: number }
  /** TROUBLE is over: send what queued, re-subscribe, verify the cache. */
  | { type: 'recovered'; after: number }
  /** Fail every pending and queued request; transactions become rollback-only. */
  | { type: 'disabled'; failure: Failure; reason: string; after: number };

export interface ConnectionInput {
  readonly config?: Partial<ConnectionConfig>;
  readonly now: number;
}

/** When the host should next send TICK: the earliest deadline the current state has, if any. */
export function nextDeadline(state: ConnectionState, ctx: ConnectionContext): number | null {
  switch (state) {
    case 'CONNECTING':
      return ctx.connectingSince + ctx.config.waitTimeout;
    case 'TROUBLE':
      return Math.min(ctx.nextRetryAt, ctx.troubleSince + ctx.config.troubledInterval);
    default:
      return null;
  }
}

function disable(
  enqueue: { assign(patch: Partial<ConnectionContext>): void; emit(effect: ConnectionEffect): void },
  failure: Failure,
  what: string,
  context: ConnectionContext,
  since: number,
): void {
  enqueue.assign({ failure });
  enqueue.emit({
    type: 'disabled',
    failure,
    reason: `${what}${context.reason ? `: ${context.reason}` : ''}`,
    after: context.now - since,
  });
}

export const connectionMachine = setup({
  types: {} as {
    context: ConnectionContext;
    events: ConnectionEvent;
    input: ConnectionInput;
    emitted: ConnectionEffect;
  },
  actions: {
    clock: assign({ now: ({ context, event }) => Math.max(context.now, event.now) }),
    startConnecting: assign({ connectingSince: ({ event }) => event.now, failure: null }),
    connected: enqueueActions(({ context, enqueue }) => {
      enqueue.assign({ connections: context.connections + 1, reason: '' });
      enqueue.emit({ type: 'connected', connection: context.connections + 1 });
    }),
    enterTrouble: assign(({ context, event }) => ({
      troubleSince: event.now,
      retries: 0,
      nextRetryAt: event.now + retryPause(0, context.config.reconnectInterval),
      reason: 'reason' in event ? event.reason : context.reason,
    })),
    noteReason: assign({ reason: ({ context, event }) => ('reason' in event ? event.reason : context.reason) }),
    /** In TROUBLE, at each retry deadline: send the pending requests again. */
    retryIfDue: enqueueActions(({ context, enqueue }) => {
      if (context.now < context.nextRetryAt) return;
      const retries = context.retries + 1;
      enqueue.assign({ retries, nextRetryAt: context.now + retryPause(retries, context.config.reconnectInterval) });
      enqueue.emit({ type: 'retry', reconnected: false });
    }),
    /** The bus is back: no reason to wait for the next retry deadline. */
    retryNow: enqueueActions(({ context, enqueue }) => {
      enqueue.assign({
        retries: context.retries + 1,
        nextRetryAt: context.now + retryPause(context.retries + 1, context.config.reconnectInterval),
      });
      enqueue.emit({ type: 'retry', reconnected: true });
    }),
    /** Gave up: the failure, and how long the state it ended lasted. */
    waitedOutDisable: enqueueActions(({ context, enqueue }) =>
      disable(
        enqueue,
        'wait-timeout',
        `not connected within waitTimeout (${context.config.waitTimeout} ms)`,
        context,
        context.connectingSince,
      ),
    ),
    troubledOutDisable: enqueueActions(({ context, enqueue }) =>
      disable(
        enqueue,
        'troubled',
        `no answer for troubledInterval (${context.config.troubledInterval} ms)`,
        context,
        context.troubleSince,
      ),
    ),
    disableForced: enqueueActions(({ event, enqueue }) => {
      const reason = 'reason' in event ? event.reason : 'disconnected';
      enqueue.assign({ failure: 'forced', reason });
      enqueue.emit({ type: 'disabled', failure: 'forced', reason, after: 0 });
    }),
    recovered: enqueueActions(({ context, enqueue }) => {
      enqueue.assign({ recoveries: context.recoveries + 1, reason: '' });
      enqueue.emit({ type: 'recovered', after: context.now - context.troubleSince });
    }),
  },
  guards: {
    waitedOut: ({ context, event }) =>
      event.type === 'TICK' && event.now >= context.connectingSince + context.config.waitTimeout,
    troubledOut: ({ context, event }) =>
      event.type === 'TICK' && event.now >= context.troubleSince + context.config.troubledInterval,
  },
}).createMachine({
  id: 'connection',
  context: ({ input }) => ({
    config: { ...CONNECTION_DEFAULTS, ...input.config },
    now: input.now,
    connectingSince: input.now,
    troubleSince: input.now,
    retries: 0,
    nextRetryAt: input.now,
    reason: '',
    failure: null,
    connections: 0,
    recoveries: 0,
  }),
  initial: 'NOT_CONNECTED',
  on: {
    CLOSE: { target: '.CLOSED', actions: 'clock' },
  },
  states: {
    NOT_CONNECTED: {
      on: { CONNECT: { target: 'CONNECTING', actions: ['clock', 'startConnecting'] } },
    },
    CONNECTING: {
      on: {
        BUS_UP: { target: 'NORMAL', actions: ['clock', 'connected'] },
        ANSWERED: { target: 'NORMAL', actions: ['clock', 'connected'] },
        BUS_DOWN: { actions: ['clock', 'noteReason'] },
        UNANSWERED: { actions: ['clock', 'noteReason'] },
        TICK: [
          {
            guard: 'waitedOut',
            target: 'DISABLED',
            actions: ['clock', 'waitedOutDisable'],
          },
          { actions: 'clock' },
        ],
        DISCONNECT: { target: 'DISABLED', actions: ['clock', 'disableForced'] },
      },
    },
    NORMAL: {
      on: {
        ANSWERED: { actions: 'clock' },
        UNANSWERED: { target: 'TROUBLE', actions: ['clock', 'enterTrouble'] },
        BUS_DOWN: { target: 'TROUBLE', actions: ['clock', 'enterTrouble'] },
        BUS_UP: { actions: 'clock' },
        TICK: { actions: 'clock' },
        DISCONNECT: { target: 'DISABLED', actions: ['clock', 'disableForced'] },
      },
    },
    TROUBLE: {
      on: {
        ANSWERED: { target: 'NORMAL', actions: ['clock', 'recovered'] },
        UNANSWERED: { actions: ['clock', 'noteReason'] },
        BUS_DOWN: { actions: ['clock', 'noteReason'] },
        BUS_UP: { actions: ['clock', 'retryNow'] },
        TICK: [
          {
            guard: 'troubledOut',
            target: 'DISABLED',
            actions: ['clock', 'troubledOutDisable'],
          },
          { actions: ['clock', 'retryIfDue'] },
        ],
        DISCONNECT: { target: 'DISABLED', actions: ['clock', 'disableForced'] },
      },
    },
    DISABLED: {
      on: {
        SETTLED: { target: 'NOT_CONNECTED', actions: 'clock' },
        TICK: { actions: 'clock' },
      },
    },
    CLOSED: { type: 'final' },
  },
});
