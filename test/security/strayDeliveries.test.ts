import { jetstreamManager, AckPolicy, DeliverPolicy } from '@nats-io/jetstream';
import { describe, expect, it } from 'vitest';
import { createNatsBus } from '../../index.js';
import { subjectMatcher } from '../../bus/filters.js';
import { cleanupAfterEach } from '../cleanup.js';
import { connectTest, startTestServer } from '../nats.js';
import { waitFor } from '../waitFor.js';

/**
 * nats-server does not check a push consumer's deliver subject against its
 * creator's permissions: a user who may create a consumer on any stream can
 * have its messages delivered onto cohort's subjects (seen on 2.9.10 by a
 * client reading blobs). Those arrive with the stream's subject, so a
 * subscription takes only what its filter matches.
 */
describe('deliveries a subscription did not ask for', () => {
  const track = cleanupAfterEach();

  it('a consumer pointed at a subscribed subject delivers nothing to the handler; a publish there does (control)', async () => {
    await using server = await startTestServer();
    await using nc = await connectTest(server);
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'OTHER', subjects: ['other.>'] });
    const js = jsm.jetstream();
    await js.publish('other.payload', new TextEncoder().encode('forged failover request'));

    const bus = track(await createNatsBus({ servers: server.url }));
    const seen: string[] = [];
    // The leader listens on the literal subject (the server delivers a push consumer only to such interest).
    bus.subscribe('cohort.c.ctl.failover', (m) => seen.push(m.subject));
    await bus.flush();
    await jsm.consumers.add('OTHER', {
      deliver_subject: 'cohort.c.ctl.failover',
      ack_policy: AckPolicy.None,
      deliver_policy: DeliverPolicy.All,
    });
    await waitFor(() => bus.strayDeliveries === 1, { what: 'the stray delivery counted' });
    nc.publish('cohort.c.ctl.failover', new Uint8Array([1]));
    await waitFor(() => seen.length === 1, { what: 'the real publish' });
    expect(seen).toEqual(['cohort.c.ctl.failover']);
    expect(bus.strayDeliveries).toBe(1);
  });

  it('subjectMatcher matches as nats-server does', () => {
    const cases: [string, string, boolean][] = [
      ['a.b', 'a.b', true],
      ['a.b', 'a.c', false],
      ['a.*', 'a.b', true],
      ['a.*', 'a.b.c', false],
      ['a.>', 'a.b.c', true],
      ['a.>', 'a', false],
      ['a.*.c', 'a.x.c', true],
      ['a.*.c', 'a.x.d', false],
      ['a.*.>', 'a.x', false],
      ['a.*.>', 'a.x.y', true],
      ['cohort.c.>', '$O.cohort_c_blobs.C.x', false],
      ['a.b', 'other.payload', false],
    ];
    for (const [filter, subject, want] of cases)
      expect(subjectMatcher(filter)(subject), `${filter} ~ ${subject}`).toBe(want);
  });
});
