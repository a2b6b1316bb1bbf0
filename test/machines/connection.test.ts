import { describe, expect, it } from 'vitest';
import { createActor } from 'xstate';
import { SimulatedClock } from '../../bus/clock.js';
import {
  CONNECTION_DEFAULTS,
  connectionMachine,
  nextDeadline,
  retryPause,
  type ConnectionEffect,
  type ConnectionState,
} from '../../machines/connection.js';

/** The machine on a simulated clock, ticked as its host would tick it: at each deadline it names. */
function harness(config: Partial<typeof CONNECTION_DEFAULTS> = {}) {
  const clock = new SimulatedClock(1_000);
  const actor = createActor(connectionMachine, { input: { config, now: clock.now() } });
  const effects: (ConnectionEffect & { at: number })[] = [];
  for (const type of ['retry', 'connected', 'recovered', 'disabled'] as const) {
    actor.on(type, (e) => effects.push({ ...e, at: clock.now() }));
  }
  actor.start();
  const state = (): ConnectionState => actor.getSnapshot().value as ConnectionState;
  const send = (e: Record<string, unknown> & { type: string }): void => actor.send({ now: clock.now(), ...e } as never);
  /** Advances the clock to `until`, delivering a TICK at every deadline on the way. */
  const runUntil = (until: number): void => {
    for (;;) {
      const s = actor.getSnapshot();
      const at = nextDeadline(s.value as ConnectionState, s.context);
      if (at === null || at > until) break;
      clock.increment(Math.max(0, at - clock.now()));
      send({ type: 'TICK' });
    }
    clock.increment(Math.max(0, until - clock.now()));
  };
  return { clock, actor, effects, state, send, runUntil };
}

describe('connection machine', () => {
  it('connects: NOT_CONNECTED → CONNECTING → NORMAL, and says which connection it is', () => {
    const h = harness();
    expect(h.state()).toBe('NOT_CONNECTED');
    h.send({ type: 'CONNECT' });
    expect(h.state()).toBe('CONNECTING');
    h.send({ type: 'BUS_UP' });
    expect(h.state()).toBe('NORMAL');
    expect(h.effects).toEqual([{ type: 'connected', connection: 1, at: 1_000 }]);
  });

  it('gives up connecting after waitTimeout, not a moment before', () => {
    const h = harness({ waitTimeout: 30_000 });
    h.send({ type: 'CONNECT' });
    h.send({ type: 'UNANSWERED', reason: 'connection refused' });
    h.runUntil(1_000 + 29_999);
    expect(h.state()).toBe('CONNECTING');
    h.runUntil(1_000 + 30_000);
    expect(h.state()).toBe('DISABLED');
    const disabled = h.effects.find((e) => e.type === 'disabled');
    expect(disabled).toMatchObject({ failure: 'wait-timeout', after: 30_000 });
    expect(disabled && 'reason' in disabled ? disabled.reason : '').toContain('connection refused');
    h.send({ type: 'SETTLED' });
    expect(h.state()).toBe('NOT_CONNECTED');
  });

  it('an unanswered request moves NORMAL to TROUBLE; retries come quickly, then every reconnectInterval', () => {
    const h = harness({ reconnectInterval: 250, troubledInterval: 10_000 });
    h.send({ type: 'CONNECT' });
    h.send({ type: 'BUS_UP' });
    h.send({ type: 'UNANSWERED', reason: 'no responders' });
    expect(h.state()).toBe('TROUBLE');
    h.runUntil(1_000 + 2_000);
    const retries = h.effects.filter((e) => e.type === 'retry').map((e) => e.at - 1_000);
    // 5, +10, +15, +20, then +25 to the first quarter second, +50, +100, +200, then +250 each
    expect(retries.slice(0, 16)).toEqual([5, 15, 30, 50, 75, 100, 125, 150, 175, 200, 225, 250, 300, 400, 600, 850]);
    const gaps = retries.slice(15).map((t, i) => t - retries[14 + i]!);
    expect(gaps.every((g) => g === 250)).toBe(true);
    expect(h.state()).toBe('TROUBLE');
  });

  it('the first answer in TROUBLE recovers to NORMAL and says how long the trouble lasted', () => {
    const h = harness();
    h.send({ type: 'CONNECT' });
    h.send({ type: 'BUS_UP' });
    h.send({ type: 'BUS_DOWN', reason: 'the NATS connection dropped' });
    expect(h.state()).toBe('TROUBLE');
    h.runUntil(1_000 + 1_234);
    h.send({ type: 'ANSWERED' });
    expect(h.state()).toBe('NORMAL');
    expect(h.effects.at(-1)).toMatchObject({ type: 'recovered', after: 1_234 });
    expect(h.actor.getSnapshot().context.recoveries).toBe(1);
    // No deadlines in NORMAL: the host sleeps.
    expect(nextDeadline('NORMAL', h.actor.getSnapshot().context)).toBeNull();
  });

  it('a bus reconnect in TROUBLE retries at once instead of waiting for the next deadline', () => {
    const h = harness();
    h.send({ type: 'CONNECT' });
    h.send({ type: 'BUS_UP' });
    h.send({ type: 'BUS_DOWN', reason: 'dropped' });
    h.runUntil(1_000 + 1_000);
    const before = h.effects.filter((e) => e.type === 'retry').length;
    h.clock.increment(3);
    h.send({ type: 'BUS_UP' });
    expect(h.effects.filter((e) => e.type === 'retry').length).toBe(before + 1);
    expect(h.effects.at(-1)).toMatchObject({ type: 'retry', reconnected: true, at: 1_000 + 1_003 });
  });

  it('TROUBLE for troubledInterval disables, exactly at the deadline, naming the last reason', () => {
    const h = harness({ troubledInterval: 10_000 });
    h.send({ type: 'CONNECT' });
    h.send({ type: 'BUS_UP' });
    h.send({ type: 'UNANSWERED', reason: 'request to cmd.7 timed out' });
    h.runUntil(1_000 + 9_999);
    expect(h.state()).toBe('TROUBLE');
    h.runUntil(1_000 + 10_000);
    expect(h.state()).toBe('DISABLED');
    const d = h.effects.find((e) => e.type === 'disabled');
    expect(d).toMatchObject({ type: 'disabled', failure: 'troubled', after: 10_000 });
    expect(d && 'reason' in d ? d.reason : '').toMatch(/troubledInterval \(10000 ms\).*cmd\.7 timed out/);
    // DISABLED → NOT_CONNECTED once the host has failed everything; the next request connects anew.
    h.send({ type: 'SETTLED' });
    h.send({ type: 'CONNECT' });
    h.send({ type: 'BUS_UP' });
    expect(h.state()).toBe('NORMAL');
    expect(h.actor.getSnapshot().context.connections).toBe(2);
  });

  it('answers that keep coming reset nothing they should not: NORMAL ⇄ TROUBLE restarts the trouble clock', () => {
    const h = harness({ troubledInterval: 1_000 });
    h.send({ type: 'CONNECT' });
    h.send({ type: 'BUS_UP' });
    for (let i = 0; i < 5; i++) {
      h.send({ type: 'UNANSWERED', reason: 'x' });
      h.runUntil(h.clock.now() + 600);
      h.send({ type: 'ANSWERED' });
    }
    expect(h.state()).toBe('NORMAL');
    expect(h.actor.getSnapshot().context.recoveries).toBe(5);
  });

  it('a forced disconnect disables from any connected state', () => {
    for (const trouble of [false, true]) {
      const h = harness();
      h.send({ type: 'CONNECT' });
      h.send({ type: 'BUS_UP' });
      if (trouble) h.send({ type: 'UNANSWERED', reason: 'x' });
      h.send({ type: 'DISCONNECT', reason: 'disconnected by worker w1: operator' });
      expect(h.state()).toBe('DISABLED');
      expect(h.effects.at(-1)).toMatchObject({
        type: 'disabled',
        failure: 'forced',
        reason: 'disconnected by worker w1: operator',
      });
    }
  });

  it('CLOSE is final from anywhere', () => {
    const h = harness();
    h.send({ type: 'CONNECT' });
    h.send({ type: 'CLOSE' });
    expect(h.state()).toBe('CLOSED');
    expect(h.actor.getSnapshot().status).toBe('done');
  });

  it('events out of place change nothing (an answer while NOT_CONNECTED, a TICK in NORMAL)', () => {
    const h = harness();
    h.send({ type: 'ANSWERED' });
    h.send({ type: 'TICK' });
    h.send({ type: 'SETTLED' });
    expect(h.state()).toBe('NOT_CONNECTED');
    expect(h.effects).toEqual([]);
  });

  it('retry pauses never exceed reconnectInterval', () => {
    for (let i = 0; i < 20; i++) expect(retryPause(i, 30)).toBeLessThanOrEqual(30);
    expect(retryPause(0, 250)).toBe(5);
    expect(retryPause(50, 250)).toBe(250);
    // A hand-off's tens of milliseconds: retried at most 25 ms after it ends, throughout the first quarter second.
    let at = 0;
    for (let i = 0; at < 250; i++) {
      const pause = retryPause(i, 250);
      expect(pause, `retry ${i} at ${at} ms`).toBeLessThanOrEqual(25);
      at += pause;
    }
  });
});
