/**
 * A sub-seed for each part of a simulation (a process, the network, the
 * fault schedule, a workload), from the run's seed and the part's name:
 * FNV-1a over both. Named rather than drawn in turn, so adding a process or
 * a fault kind leaves every other part's draws as they were.
 */
export function seedOf(seed: number, name: string): number {
  let h = 0x811c9dc5;
  for (const c of `${seed}/${name}`) {
    h ^= c.codePointAt(0)!;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}
