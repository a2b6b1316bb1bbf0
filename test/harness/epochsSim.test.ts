/**
 * The journal is single-writer per epoch, on virtual time: a primary
 * proves it is primary, sends its append, and is paused before the append
 * reaches the stream. The others fail its shards over and the new primary
 * marks its epoch; then the late append lands, after the marker, under the
 * old epoch (nothing else had written that session, so the fence let it
 * through). Nobody applies it: not the new primary, not the deposed one
 * once it is back as a secondary, not the history checker; the client's
 * command is committed once, by the new primary.
 */
import { describe, expect, it } from 'vitest';
import { readJournals } from '../../harness/checker/index.js';
import { shardOf } from '../../index.js';
import { tally } from '../fixtures/tally.js';
import { bootSim } from './simBoot.js';

const TIMING = { heartbeatInterval: 200, sessionTimeout: 1_000 };
/** The client tries again only after the late append has landed. */
const CONNECTION = { troubledInterval: 10_000, attemptTimeout: 3_000 };
/** How long the append is on its way: past the takeover (about a session timeout), short of the client's retry. */
const LATE_BY = 2_000;

describe('a primary paused between its check and its append, on virtual time', () => {
  it('its append lands after the new epoch marked the shard, and is applied by nobody', async () => {
    const sim = bootSim({ application: tally, shardCount: 4, ...TIMING, connection: CONNECTION });
    await sim.spawn(0);
    await sim.until(sim.balanced([0]), 'the first worker placed');
    await sim.spawn(1);
    await sim.until(sim.balanced([0, 1]), 'both workers placed');
    // The victim is not the leader (the first to join is), so the leader fails it over.
    const victim = sim.cluster.workers[1]!;
    const deposed = victim.worker!.id;
    const id = sim.idOn(victim.worker!.serving, 'p');
    const shard = shardOf('tally', id, 4);
    expect(victim.worker!.view!.shards[shard]!.primary).toBe(deposed);
    const epoch = victim.worker!.view!.shards[shard]!.epoch;
    const client = await sim.connect(0);
    const session = client.session('tally', id);
    await sim.run(session.send({ type: 'ADD', token: 'before' }));

    let armed = true;
    sim.cluster.network.script = (hop, from) => {
      if (!armed || hop.kind !== 'request' || hop.subject !== 'append' || from !== victim.process.name)
        return undefined;
      armed = false;
      // Its primacy proved, its append sent: the process stops here, the append on its way.
      victim.process.pause();
      return [LATE_BY];
    };
    const sending = session.send({ type: 'ADD', token: 'maybe' });
    await sim.pass(LATE_BY + 500);
    expect(armed).toBe(false);
    victim.process.resume();
    const reply = await sim.run(sending);
    expect(reply.seq).toBe(2);

    const journal = (await sim.run(readJournals(sim.cluster.auditor().bus, sim.cluster.name))).find(
      (j) => j.session === id,
    )!;
    // The late entry is there, after the new epoch's marker, and ignored.
    expect(journal.ignored).toHaveLength(1);
    const late = journal.ignored![0]!;
    expect(late).toMatchObject({ worker: deposed, epoch });
    expect(late.inForce).toBeGreaterThan(epoch);
    // The command is journaled and applied once, under a newer epoch (the shard may have moved on again, even
    // back to the same process rejoined as a new member: it ignores its own late entry too).
    expect(journal.events.map((e) => e.event['token'])).toEqual(['before', 'maybe']);
    expect(journal.events[1]!.epoch).toBeGreaterThanOrEqual(late.inForce);
    expect(journal.events[1]!.worker).not.toBe(deposed);
    expect((await sim.run(session.read())).document).toEqual({ tokens: ['before', 'maybe'] });

    // The deposed worker comes back as a new member and follows the shard as its secondary: its copy agrees.
    await sim.until(sim.balanced([0, 1]), 'the deposed worker back and the shards spread again');
    const primary = await sim.run(session.read());
    const copy = await sim.run(session.read({ readOnly: true, minSeq: primary.seq }));
    expect(copy.stale).toBe(true);
    expect(copy.document).toEqual({ tokens: ['before', 'maybe'] });
    expect(await sim.check()).toEqual([]);
  });
});
