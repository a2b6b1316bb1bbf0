import type { View } from '../index.js';
import type { Operation } from '../harness/history.js';
import type { LocalCluster, LocalWorker } from './localCluster.js';
import { type Account, type DepositLoad, random, SEND_TIMEOUT_MS } from './demoLoad.js';
import { secs } from './demoStatus.js';
import { primariesByMember } from './up.js';

/**
 * The demo's failover: one worker killed with SIGKILL midway through the
 * load, and the time until its shards serve again, measured from outside as
 * a client would see it.
 */

/** After the kill, a probe deposit to one of the killed worker's accounts this often, until one is acknowledged. */
export const PROBE_EVERY_MS = 50;
/** ... and for at most this long. */
const PROBE_FOR_MS = 15_000;

export interface KilledWorker {
  id: string;
  pid: number | null;
  leader: boolean;
  /** Since the load started. */
  atMs: number;
  shards: number;
  accounts: number;
}

/** Who to kill: a member other than the leader, the one holding most accounts (then the last to join). */
function victimOf(view: View, cluster: LocalCluster, accounts: readonly Account[]): LocalWorker | undefined {
  const running = new Set(cluster.workers.filter((w) => w.exit === null).map((w) => w.id));
  const held = (id: string): number => accounts.filter((a) => view.shards[a.shard]?.primary === id).length;
  const candidates = view.members.filter((m) => m.id !== view.leader && running.has(m.id));
  candidates.sort((x, y) => held(y.id) - held(x.id) || y.joined - x.joined);
  const pick = candidates[0]?.id;
  return cluster.workers.find((w) => w.id === pick);
}

export interface KillAndProbeOptions {
  readonly cluster: LocalCluster;
  readonly accounts: readonly Account[];
  readonly load: DepositLoad;
  /** performance.now() when the load started. */
  readonly loadStart: number;
  readonly interrupted: () => boolean;
  readonly write: (line: string) => void;
}

export class KillAndProbe {
  killed: KilledWorker | null = null;
  readonly #settings: KillAndProbeOptions;
  #killAt: number | undefined;
  #droppedAt: number | undefined;
  #firstAckOnKilled: number | undefined;
  /** Sends in flight to the victim's accounts when it was killed. */
  #caughtByKill = 0;
  #probing: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  readonly #stopViews: () => void;

  constructor(options: KillAndProbeOptions) {
    this.#settings = options;
    this.#stopViews = options.cluster.views.subscribe((view) => {
      if (this.killed !== null && this.#droppedAt === undefined && !view.members.some((m) => m.id === this.killed!.id))
        this.#droppedAt = performance.now();
    });
  }

  /** From the kill until the view no longer listed the killed worker. */
  get droppedMs(): number | null {
    return this.#droppedAt === undefined || this.#killAt === undefined ? null : this.#droppedAt - this.#killAt;
  }

  /** From the kill until the first acknowledged command, sent after the kill, on a shard the killed worker was primary of. */
  get failoverMs(): number | null {
    return this.#firstAckOnKilled === undefined || this.#killAt === undefined
      ? null
      : this.#firstAckOnKilled - this.#killAt;
  }

  /** Kills a worker `afterMs` from now, unless disarmed first. */
  arm(afterMs: number): void {
    this.#timer = setTimeout(() => this.#kill(), afterMs);
  }

  disarm(): void {
    clearTimeout(this.#timer);
  }

  /** Resolves once the probes sent so far have settled. */
  settled(): Promise<void> {
    return this.#probing;
  }

  /** No more views are watched for the killed worker's removal. */
  stop(): void {
    this.#stopViews();
  }

  /** For DepositLoad's onAcknowledged: the first acknowledgement on the victim's accounts, of a send made after the kill, ends the failover. */
  acknowledged(account: Account, op: Operation): void {
    const killAt = this.#killAt;
    if (this.#firstAckOnKilled !== undefined || killAt === undefined || !account.onKilled || op.sentAt < killAt) return;
    this.#firstAckOnKilled = performance.now();
    const caught = this.#caughtByKill;
    this.#settings.write(
      `>>> ${secs(this.#firstAckOnKilled - this.#settings.loadStart)}: ${this.killed?.id}'s shards are served again: first command acknowledged ` +
        `${secs(this.#firstAckOnKilled - killAt)} after the kill` +
        (caught > 0
          ? `; the ${caught} sends in flight to it wait out their ${secs(SEND_TIMEOUT_MS)} timeout (ambiguous until read back)`
          : ''),
    );
  }

  #kill(): void {
    const { cluster, accounts, load, loadStart, write } = this.#settings;
    const view = cluster.views.latest;
    const victim = view === null ? undefined : victimOf(view, cluster, accounts);
    if (view === null || victim === undefined) {
      write('no worker to kill (no view, or only the leader is left)');
      return;
    }
    const shards = primariesByMember(view).get(victim.id) ?? 0;
    for (const a of accounts) a.onKilled = view.shards[a.shard]?.primary === victim.id;
    const held = accounts.filter((a) => a.onKilled).length;
    this.#caughtByKill = accounts.reduce((n, a, i) => n + (a.onKilled ? load.inFlightOn[i]! : 0), 0);
    const killAt = performance.now();
    this.#killAt = killAt;
    victim.kill('SIGKILL');
    this.killed = {
      id: victim.id,
      pid: victim.pid ?? null,
      leader: false,
      atMs: killAt - loadStart,
      shards,
      accounts: held,
    };
    write(
      `>>> ${secs(killAt - loadStart)}: killing ${victim.id} (not the leader; ` +
        `${victim.pid === undefined ? 'its connection to the in-memory bus closed' : `kill -9 ${victim.pid}`}): ` +
        `it was primary of ${shards} shards, ${held} of the ${accounts.length} accounts, with ${this.#caughtByKill} sends in flight`,
    );
    this.#probing = this.#probe(killAt);
  }

  /**
   * The load's loops may all be waiting on sends the killed worker took with it (they time out
   * after SEND_TIMEOUT_MS), so the failover is timed by probes of its own: from the kill until the
   * first acknowledgement, a fresh deposit to one of its accounts every PROBE_EVERY_MS (counted
   * like every other deposit).
   */
  async #probe(killAt: number): Promise<void> {
    const { accounts, load, interrupted } = this.#settings;
    const next = random(7);
    const targets = accounts.flatMap((a, i) => (a.onKilled ? [i] : []));
    const probes: Promise<void>[] = [];
    // Past the end of the load too, should the failover take longer than what is left of it.
    while (
      !interrupted() &&
      this.#firstAckOnKilled === undefined &&
      targets.length > 0 &&
      performance.now() - killAt < PROBE_FOR_MS
    ) {
      probes.push(load.deposit(probes.length % load.clients, targets[next(targets.length)]!, 1 + next(999)));
      await new Promise<void>((resolve) => setTimeout(resolve, PROBE_EVERY_MS));
    }
    await Promise.all(probes);
  }
}
