import { randomUUID } from 'node:crypto';
import { systemClock, type Clock } from './clock.js';

/**
 * Everything nondeterministic the runtime uses: time, randomness and fresh
 * ids. Workers, clients, membership, claim-check and the memory bus take one
 * and read nothing else, so a cluster built on a seeded environment and the
 * memory bus replays the same run.
 */
export interface Environment {
  readonly clock: Clock;
  /** Uniform in [0, 1). */
  random(): number;
  /** A fresh unique id (command ids, transaction ids, blob names, client ids). */
  newId(): string;
}

/** The process's own clock, `Math.random` and `randomUUID`. */
export const systemEnvironment: Environment = Object.freeze({
  clock: systemClock,
  random: () => Math.random(),
  newId: () => randomUUID(),
});

/** The given parts, the system's for the rest: `{ clock }` alone is enough for virtual time. */
export function resolveEnvironment(given: Partial<Environment> | undefined): Environment {
  if (given === undefined) return systemEnvironment;
  return {
    clock: given.clock ?? systemEnvironment.clock,
    random: given.random ?? systemEnvironment.random,
    newId: given.newId ?? systemEnvironment.newId,
  };
}

/**
 * A deterministic environment: the same seed gives the same numbers and ids
 * in the same order. Ids look like UUIDs (version 4 layout) so they pass
 * every check a real one does.
 */
export function seededEnvironment(seed: number, clock: Clock = systemClock): Environment {
  const random = mulberry32(seed);
  const hex = (n: number): string => {
    let s = '';
    for (let i = 0; i < n; i++) s += Math.floor(random() * 16).toString(16);
    return s;
  };
  return {
    clock,
    random,
    newId: () => `${hex(8)}-${hex(4)}-4${hex(3)}-${'89ab'[Math.floor(random() * 4)]}${hex(3)}-${hex(12)}`,
  };
}

/** A small, fast 32-bit generator; good enough for ids and fault schedules, not for secrets. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
