import type { TimerHandle } from '../../internal.js';
import type { SimCluster } from './cluster.js';
import type { Faults } from './faults.js';
import type { SimProcess } from './process.js';

export type FaultKind = 'kill' | 'pause' | 'partition' | 'busRestart';

export interface FaultInjectorOptions {
  readonly cluster: SimCluster;
  readonly faults: Faults;
  /** The fault schedule's own seeded draws. */
  readonly random: () => number;
  /** Durations scale with it, so some faults outlast it (the cluster notices) and some do not. */
  readonly sessionTimeout: number;
}

const SECOND = 1_000;

/**
 * Draws and injects process and bus faults: once a virtual second, each
 * kind with its chance, on processes under no other fault, each healed
 * after a drawn duration (a killed worker's slot gets a fresh worker).
 * `healAll()` ends every fault at once and stops drawing.
 */
export class FaultInjector {
  readonly counts: Record<FaultKind, number> = { kill: 0, pause: 0, partition: 0, busRestart: 0 };
  readonly #cluster: SimCluster;
  readonly #faults: Faults;
  readonly #random: () => number;
  readonly #timeout: number;
  /** Each fault in force: how it ends, and the timer that would end it. */
  readonly #active = new Map<string, { readonly heal: () => void; readonly timer: TimerHandle }>();
  readonly #busy = new Set<SimProcess>();
  #tick: TimerHandle | undefined;
  #busUntil = 0;
  #next = 1;

  constructor({ cluster, faults, random, sessionTimeout }: FaultInjectorOptions) {
    this.#cluster = cluster;
    this.#faults = faults;
    this.#random = random;
    this.#timeout = sessionTimeout;
  }

  /** Draws faults every virtual second from one second on until `until`. */
  start(until: number): void {
    const clock = this.#cluster.clock;
    const tick = (): void => {
      this.#tick = undefined;
      if (clock.now() >= until) return;
      this.#draw();
      this.#tick = clock.setTimeout(tick, SECOND);
    };
    this.#tick = clock.setTimeout(tick, SECOND);
  }

  /** Ends every fault now (resumes, heals, starts fresh workers in empty slots) and draws no more. */
  healAll(): void {
    if (this.#tick !== undefined) this.#cluster.clock.clearTimeout(this.#tick);
    this.#tick = undefined;
    for (const [, { heal, timer }] of [...this.#active]) {
      this.#cluster.clock.clearTimeout(timer);
      heal();
    }
  }

  get active(): number {
    return this.#active.size;
  }

  #draw(): void {
    const f = this.#faults;
    if (this.#chance(f.kill)) this.#kill();
    if (this.#chance(f.pause)) this.#pause();
    if (this.#chance(f.partition)) this.#partition();
    if (this.#chance(f.busRestart)) this.#restartBus();
  }

  #chance(p: number | undefined): boolean {
    return p !== undefined && p > 0 && this.#random() < p;
  }

  #between(min: number, max: number): number {
    return min + Math.floor(this.#random() * (max - min + 1));
  }

  #pickOne<T>(items: readonly T[]): T | undefined {
    return items.length === 0 ? undefined : items[Math.floor(this.#random() * items.length)];
  }

  #free(processes: readonly SimProcess[]): SimProcess[] {
    return processes.filter((p) => p.state === 'running' && !this.#busy.has(p));
  }

  /** Records a fault in force until `heal` runs, at the latest after `ms`. */
  #inForce(kind: FaultKind, what: string, ms: number, heal: () => void): void {
    this.counts[kind]++;
    const key = `${kind}#${this.#next++}`;
    const clock = this.#cluster.clock;
    this.#cluster.trace.add(`fault ${kind} ${what} for ${ms}`);
    const end = (): void => {
      if (!this.#active.delete(key)) return;
      this.#cluster.trace.add(`heal ${kind} ${what}`);
      heal();
    };
    this.#active.set(key, { heal: end, timer: clock.setTimeout(end, ms) });
  }

  #kill(): void {
    const cluster = this.#cluster;
    const slot = this.#pickOne(cluster.workers.filter((w) => this.#free([w.process]).length > 0));
    if (slot === undefined) return;
    const victim = slot.process;
    this.#busy.add(victim);
    victim.kill();
    this.#inForce('kill', victim.name, this.#between(500, 2 * this.#timeout), () => {
      this.#busy.delete(victim);
      void cluster.spawnWorker(slot.slot);
    });
  }

  #pause(): void {
    const victim = this.#pickOne(this.#free(this.#cluster.live));
    if (victim === undefined) return;
    this.#busy.add(victim);
    victim.pause();
    this.#inForce('pause', victim.name, this.#between(200, 2 * this.#timeout), () => {
      this.#busy.delete(victim);
      victim.resume();
    });
  }

  #partition(): void {
    const everyone = this.#cluster.live;
    const free = this.#free(everyone);
    // Some, never all: someone must be left on the other side.
    const cut = free.filter(() => this.#random() < 0.5).slice(0, Math.max(0, everyone.length - 1));
    if (cut.length === 0) return;
    for (const p of cut) {
      this.#busy.add(p);
      p.cut(true);
    }
    const names = cut.map((p) => p.name).join(',');
    this.#inForce('partition', names, this.#between(500, 3 * this.#timeout), () => {
      for (const p of cut) {
        this.#busy.delete(p);
        p.cut(false);
      }
    });
  }

  #restartBus(): void {
    const clock = this.#cluster.clock;
    if (clock.now() < this.#busUntil) return;
    const down = this.#between(100, 2_000);
    this.#busUntil = clock.now() + down + 500;
    this.counts.busRestart++;
    this.#cluster.trace.add(`fault busRestart down ${down}`);
    this.#cluster.server.restart(() => down + this.#between(0, 500));
  }
}
