/**
 * Which faults a simulation injects, and how often. Process and bus faults
 * are chances per virtual second (each second, each kind is drawn once);
 * message faults are chances per message.
 */
export interface Faults {
  /** A worker's process dies (memory gone, connection dropped); a fresh worker takes its slot 0.5 s to 2 session timeouts later. */
  readonly kill?: number;
  /** A worker or client stops for 0.2 s to 2 session timeouts, then runs on with what it believed. */
  readonly pause?: number;
  /** Some processes (not all) are cut off from the bus both ways for 0.5 s to 3 session timeouts. */
  readonly partition?: number;
  /** A message, or one leg of an API call (append, kv, blobs), is lost. */
  readonly drop?: number;
  /** Each message, API call leg and stream entry takes this many virtual ms, uniform in [min, max]. */
  readonly delay?: readonly [number, number];
  /** A core message arrives twice. */
  readonly duplicate?: number;
  /** Messages between the same two ends may overtake each other (only matters with `delay`). */
  readonly reorder?: boolean;
  /** The bus restarts: down 0.1 to 2 s, core subscriptions and connections lost, streams kept; each connection reconnects on its own. */
  readonly busRestart?: number;
}

export const NO_FAULTS: Faults = Object.freeze({});

/** `--faults all`: every kind, at rates a 60 s run survives a handful of times. */
export const ALL_FAULTS: Faults = Object.freeze({
  kill: 0.05,
  pause: 0.05,
  partition: 0.05,
  drop: 0.005,
  delay: [0, 20] as const,
  duplicate: 0.005,
  reorder: true,
  busRestart: 0.02,
});

const CHANCES = ['kill', 'pause', 'partition', 'drop', 'duplicate', 'busRestart'] as const;

/** Throws a RangeError naming the first setting out of range. */
export function checkFaults(faults: Faults): Faults {
  for (const key of CHANCES) {
    const p = faults[key];
    if (p !== undefined && !(Number.isFinite(p) && p >= 0 && p <= 1))
      throw new RangeError(`faults: ${key} must be a chance from 0 to 1, got ${p}`);
  }
  if (faults.delay !== undefined) {
    const [min, max] = faults.delay;
    if (!(Number.isSafeInteger(min) && Number.isSafeInteger(max) && min >= 0 && max >= min))
      throw new RangeError(`faults: delay must be whole ms MIN-MAX with 0 <= MIN <= MAX, got ${min}-${max}`);
  }
  return faults;
}

/**
 * `none`, `all`, or a comma list such as
 * `kill=0.2,pause=0.2,partition=0.2,drop=0.01,delay=0-40,duplicate=0.01,reorder,busRestart=0.1`.
 */
export function parseFaults(text: string): Faults {
  const spec = text.trim();
  if (spec === 'none' || spec === '') return NO_FAULTS;
  if (spec === 'all') return ALL_FAULTS;
  const faults: Record<string, unknown> = {};
  for (const part of spec.split(',')) {
    const [key = '', value] = part.split('=').map((s) => s.trim());
    if (key === 'reorder') {
      if (value !== undefined && value !== 'true' && value !== 'false')
        throw new RangeError(`faults: reorder takes no value (or true/false), got ${value}`);
      faults['reorder'] = value !== 'false';
    } else if (key === 'delay') {
      const m = /^(\d+)(?:-(\d+))?$/.exec(value ?? '');
      if (m === null) throw new RangeError(`faults: delay must be MS or MIN-MAX, got ${JSON.stringify(value)}`);
      faults['delay'] = [Number(m[1]), Number(m[2] ?? m[1])];
    } else if ((CHANCES as readonly string[]).includes(key)) {
      const p = Number(value);
      if (value === undefined || value === '' || Number.isNaN(p))
        throw new RangeError(`faults: ${key} needs a chance, such as ${key}=0.1`);
      faults[key] = p;
    } else {
      throw new RangeError(
        `faults: unknown fault ${JSON.stringify(key)} (known: ${[...CHANCES, 'delay', 'reorder'].join(', ')})`,
      );
    }
  }
  return checkFaults(faults as Faults);
}

/** The `--faults` text that gives these faults back. */
export function formatFaults(faults: Faults): string {
  const parts: string[] = [];
  for (const key of ['kill', 'pause', 'partition', 'drop'] as const)
    if (faults[key] !== undefined && faults[key] > 0) parts.push(`${key}=${faults[key]}`);
  if (faults.delay !== undefined && faults.delay[1] > 0) parts.push(`delay=${faults.delay[0]}-${faults.delay[1]}`);
  if (faults.duplicate !== undefined && faults.duplicate > 0) parts.push(`duplicate=${faults.duplicate}`);
  if (faults.reorder === true) parts.push('reorder');
  if (faults.busRestart !== undefined && faults.busRestart > 0) parts.push(`busRestart=${faults.busRestart}`);
  return parts.length === 0 ? 'none' : parts.join(',');
}

/** Whether any message is ever lost, late or doubled. */
export function disturbsMessages(faults: Faults): boolean {
  return (faults.drop ?? 0) > 0 || (faults.delay?.[1] ?? 0) > 0 || (faults.duplicate ?? 0) > 0;
}
