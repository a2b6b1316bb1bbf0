/**
 * Half-open partitions on real worker processes, through each worker's TCP
 * proxy (the process boundary and the sockets are what is tested): a
 * worker whose connection still carries what it sends but delivers nothing
 * to it hears nothing, not even its own heartbeats. It steps down on its
 * own, so the others, who still hear it until then, take its shards over;
 * a leader cut off so writes no view from the silence; after the heal it
 * rejoins as a new member, and every acknowledged token is there once.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type Client, type SendResult, shardOf, type View } from '../../index.js';
import {
  hasWorker,
  isSettled,
  shardsOf,
  startTestCluster,
  type TestCluster,
  workerOfMember,
} from '../../harness/testCluster.js';

const TALLY = new URL('../fixtures/tally.ts', import.meta.url);
const TIMING = { heartbeatInterval: 200, sessionTimeout: 1_000 };
const TEST = { timeout: 120_000 };

const clusters: TestCluster[] = [];
afterEach(async () => {
  for (const cluster of clusters.splice(0)) await cluster.stop();
});

function sessionsOn(view: View, id: string, count: number): string[] {
  const shards = new Set(shardsOf(view, id));
  const found: string[] = [];
  for (let i = 0; found.length < count; i++) if (shards.has(shardOf('tally', `h${i}`))) found.push(`h${i}`);
  return found;
}

let tokens = 0;
function add(client: Client, session: string, sent: string[]): Promise<SendResult> {
  const token = `t${++tokens}`;
  sent.push(token);
  return client.session('tally', session).send({ type: 'ADD', token });
}

async function tokensOf(client: Client, session: string): Promise<string[]> {
  return ((await client.session('tally', session).read()).document as { tokens: string[] }).tokens;
}

async function cutOffOneWay(pick: (view: View) => string): Promise<void> {
  const cluster = await startTestCluster({ applications: [TALLY], workers: 3, ...TIMING });
  clusters.push(cluster);
  const views: View[] = [];
  cluster.views.subscribe((v) => views.push(v));
  const client = await cluster.client();
  const first = cluster.views.latest!;
  const victim = pick(first);
  const sessions = sessionsOn(first, victim, 3);
  const sent = new Map<string, string[]>(sessions.map((s) => [s, []]));
  for (const s of sessions) expect(workerOfMember((await add(client, s, sent.get(s)!)).by)).toBe(victim);

  // What the victim sends still reaches the server; nothing reaches the victim.
  const cut = performance.now();
  cluster.oneWay(victim, 'client-to-server');
  const dropped = await cluster.waitForView((v) => isSettled(v) && !hasWorker(v, victim), {
    what: `${victim} dropped`,
  });
  expect(shardsOf(dropped, victim)).toEqual([]);
  for (const s of sessions) expect(workerOfMember((await add(client, s, sent.get(s)!)).by)).not.toBe(victim);
  // Served again by the others within a session timeout and 2 s of the cut.
  expect(performance.now() - cut).toBeLessThan(TIMING.sessionTimeout + 2_000);
  expect(cluster.worker(victim).state).toBe('running');
  // Nobody, the cut-off worker least of all, wrote a view that dropped the members it could not hear.
  expect(views.filter((v) => v.members.length === 1 && hasWorker(v, victim))).toEqual([]);

  cluster.heal(victim);
  await cluster.waitForView((v) => isSettled(v) && v.members.some((m) => m.id.startsWith(`${victim}~`)), {
    what: `${victim} back as a new member`,
  });
  for (const s of sessions) {
    await add(client, s, sent.get(s)!);
    // Every acknowledged token once, in order: the cut-off worker kept nothing it could not keep.
    expect(await tokensOf(client, s)).toEqual(sent.get(s));
  }
}

describe('half-open partitions (worker processes, nats)', () => {
  it(
    'a follower that can send but not hear steps down; the others take its shards over; healed, it rejoins',
    TEST,
    () =>
      cutOffOneWay((view) =>
        view.members.map((m) => m.id).find((id) => id !== view.leader && shardsOf(view, id).length > 0)!,
      ),
  );

  it(
    'a leader that can send but not hear writes no view from the silence and steps down; healed, it rejoins',
    TEST,
    () => cutOffOneWay((view) => view.leader),
  );
});
