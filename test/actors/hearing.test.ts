/**
 * A worker that stepped down as deaf rejoins once a probe it sends itself
 * comes back (actors/worker/hearing.ts). Probes on its subject that are not
 * the one it is waiting for (forged, replayed, junk) prove nothing.
 */
import { describe, expect, it } from 'vitest';
import { createMemoryBus, createMemoryServer } from '../../bus/memory/mod.js';
import { systemClock } from '../../bus/clock.js';
import { probeSubject } from '../../bus/subjects.js';
import { untilHeard } from '../../actors/worker/hearing.js';
import { waitFor } from '../waitFor.js';

describe('untilHeard', () => {
  it('ends when its own probe comes back; forged, replayed and junk probes on the subject do not end it', async () => {
    const server = createMemoryServer();
    const bus = await createMemoryBus({ server });
    const forger = await createMemoryBus({ server });
    const subject = probeSubject('c', 'w1');
    let ids = 0;
    let stopped = false;
    // Every probe the forger sees it sends back wrong: replayed from before, junk bytes, an empty body.
    const seen: Uint8Array[] = [];
    forger.subscribe(subject, (m) => {
      if (!new TextDecoder().decode(m.data).startsWith('probe-')) return;
      seen.push(m.data);
      forger.publish(subject, new TextEncoder().encode(`replayed-${ids - 1}`));
      forger.publish(subject, new Uint8Array([0xff, 0x00, 0xc1]));
      forger.publish(subject, new Uint8Array());
    });
    await forger.flush();
    // The worker's own probes are lost until `deaf` is lifted (a published body it never gets back).
    let deaf = true;
    const done = untilHeard({
      bus: {
        ...bus,
        // Deaf: its own probes (and only those) never come back to it.
        subscribe: (s, handler) =>
          bus.subscribe(s, (m) => {
            if (!(deaf && new TextDecoder().decode(m.data).startsWith('probe-'))) handler(m);
          }),
        publish: (s, data) => bus.publish(s, data),
      } as typeof bus,
      cluster: 'c',
      worker: 'w1',
      clock: systemClock,
      every: 20,
      newId: () => `probe-${++ids}`,
      stopped: () => stopped,
    }).then(() => 'heard' as const);
    const race = (ms: number) => Promise.race([done, new Promise((r) => setTimeout(() => r('waiting'), ms))]);
    expect(await race(300)).toBe('waiting');
    // Probes go every 20 ms of the real clock: counted, not assumed to fit in those 300 ms on a loaded machine.
    await waitFor(() => seen.length > 3, { what: 'four probes answered wrong' });
    expect(await race(0)).toBe('waiting');
    // Control: its own probe gets through, and the wait ends.
    deaf = false;
    expect(await race(1_000)).toBe('heard');
    stopped = true;
    await Promise.all([bus.close(), forger.close()]);
  });
});
