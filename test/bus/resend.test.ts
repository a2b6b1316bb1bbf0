/**
 * How the nats bus sends a journal append until one copy is answered
 * (bus/nats/resend.ts): the decisions, driven by a `send` that answers as
 * the test says, on real timers (no NATS here: what a server answers is
 * tested against real servers in contract.test.ts, reconnect.test.ts and
 * the node-loss scenario).
 */
import type { Msg } from '@nats-io/nats-core';
import { describe, expect, it } from 'vitest';
import { BusClosedError, ConnectionLostError, NoRespondersError, TimeoutError } from '../../bus/errors.js';
import { Link } from '../../bus/nats/link.js';
import { NO_LEADER_PAUSE_MS, RESEND_AFTER_MS, sendUntilAnswered } from '../../bus/nats/resend.js';

const reply = (n: number): Msg => ({ data: new Uint8Array([n]) }) as unknown as Msg;

/** A `send` whose copies are answered by `answer(copy)`: a reply, an error, or never (undefined). */
function sender(answer: (copy: number, ms: number) => { after: number; outcome: Msg | Error } | undefined): {
  send: (ms: number) => Promise<Msg>;
  sent: number[];
} {
  const started = performance.now();
  const sent: number[] = [];
  const send = (ms: number): Promise<Msg> => {
    sent.push(performance.now() - started);
    const a = answer(sent.length, ms);
    return new Promise((resolve, reject) => {
      // A copy nobody answers still ends at its own timeout, as the reply mux ends it.
      const after = a?.after ?? ms;
      const outcome = a?.outcome ?? new TimeoutError('append', ms);
      setTimeout(() => (outcome instanceof Error ? reject(outcome) : resolve(outcome)), after);
    });
  };
  return { send, sent };
}

describe('sendUntilAnswered', () => {
  it('answered at once: one copy', async () => {
    const s = sender(() => ({ after: 1, outcome: reply(1) }));
    const sent = await sendUntilAnswered(s.send, new Link(), 5_000, 'append a');
    expect(sent.copies).toBe(1);
    expect(s.sent).toHaveLength(1);
  });

  it('a copy lost (its leader died with it) is sent again after RESEND_AFTER_MS, and the new one answers', async () => {
    const s = sender((copy) => (copy === 1 ? undefined : { after: 1, outcome: reply(copy) }));
    const started = performance.now();
    const sent = await sendUntilAnswered(s.send, new Link(), 5_000, 'append a');
    expect(sent.copies).toBe(2);
    expect([...sent.reply.data]).toEqual([2]);
    expect(s.sent[1]!).toBeGreaterThanOrEqual(RESEND_AFTER_MS - 5);
    expect(performance.now() - started).toBeLessThan(2_000);
  });

  it('no responders to the first copy fails at once: nothing was stored', async () => {
    const s = sender(() => ({ after: 1, outcome: new NoRespondersError('a') }));
    const started = performance.now();
    await expect(sendUntilAnswered(s.send, new Link(), 5_000, 'append a')).rejects.toBeInstanceOf(NoRespondersError);
    expect(s.sent).toHaveLength(1);
    expect(performance.now() - started).toBeLessThan(RESEND_AFTER_MS);
  });

  it('after a copy went unanswered, no responders (the stream electing) is tried again every NO_LEADER_PAUSE_MS until one answers', async () => {
    // Copy 1 lost; copies 2..5 find no leader; copy 6 is answered.
    const s = sender((copy) =>
      copy === 1
        ? undefined
        : copy < 6
          ? { after: 1, outcome: new NoRespondersError('a') }
          : { after: 1, outcome: reply(6) },
    );
    const sent = await sendUntilAnswered(s.send, new Link(), 5_000, 'append a');
    expect(sent.copies).toBe(6);
    const gaps = s.sent.slice(2).map((t, i) => t - s.sent[i + 1]!);
    for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(NO_LEADER_PAUSE_MS - 5);
    for (const gap of gaps) expect(gap).toBeLessThan(RESEND_AFTER_MS);
  });

  it('the first answer of any copy wins: a late answer to the first copy settles it', async () => {
    const s = sender((copy) => (copy === 1 ? { after: RESEND_AFTER_MS + 100, outcome: reply(1) } : undefined));
    const sent = await sendUntilAnswered(s.send, new Link(), 5_000, 'append a');
    expect([...sent.reply.data]).toEqual([1]);
    expect(sent.copies).toBe(2);
  });

  it('nothing answers: TimeoutError at the timeout, not before', async () => {
    const s = sender(() => undefined);
    const started = performance.now();
    const err = await sendUntilAnswered(s.send, new Link(), 1_200, 'append a').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    expect(performance.now() - started).toBeGreaterThanOrEqual(1_150);
    expect(s.sent.length).toBeGreaterThanOrEqual(2);
  });

  it('a dropped connection: sent again once it is back', async () => {
    const link = new Link();
    const s = sender((copy) =>
      copy === 1 ? { after: 10, outcome: new ConnectionLostError() } : { after: 1, outcome: reply(copy) },
    );
    link.down();
    setTimeout(() => link.restored(), 100);
    const sent = await sendUntilAnswered(s.send, link, 5_000, 'append a');
    expect(sent.copies).toBe(2);
    expect(s.sent[1]!).toBeGreaterThanOrEqual(95);
  });

  it('any other failure ends it at once (a closed bus)', async () => {
    const s = sender(() => ({ after: 1, outcome: new BusClosedError('append') }));
    await expect(sendUntilAnswered(s.send, new Link(), 5_000, 'append a')).rejects.toBeInstanceOf(BusClosedError);
    expect(s.sent).toHaveLength(1);
  });
});
