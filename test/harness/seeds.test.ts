/**
 * The examples under every fault kind, 200 seeds each, on virtual time: a
 * seed that fails is named with its first violation and the command that
 * replays it. Each seed is a whole cluster (3 workers, 3 clients) through
 * 6 virtual seconds of faults, the heal and the recovery.
 */
import { describe, expect, it } from 'vitest';
import { ledger } from '../../examples/ledger.js';
import { whiteboard } from '../../examples/whiteboard.js';
import { simulate } from '../../harness/index.js';

const SEEDS = 200;
const DURATION_MS = 6_000;

describe.each([
  { name: 'ledger', app: ledger, file: 'examples/ledger.ts' },
  { name: 'whiteboard', app: whiteboard, file: 'examples/whiteboard.ts' },
])('$name under every fault', ({ app, file }) => {
  it(`${SEEDS} seeds pass`, { timeout: 600_000 }, async () => {
    const failures: string[] = [];
    let operations = 0;
    let faults = 0;
    for (let seed = 1; seed <= SEEDS; seed++) {
      const r = await simulate({ seed, applications: [app], duration: DURATION_MS, faults: 'all' });
      operations += r.stats.operations;
      faults += Object.values(r.stats.faults).reduce((a, b) => a + b, 0);
      if (!r.ok) {
        const first = r.violations[0];
        failures.push(
          `seed ${seed}: ${first ? `${first.invariant} ${first.app}/${first.session}: ${first.message}` : r.errors[0]}\n` +
            `  replay: npx tsx cli/main.ts simulate --app ${file} --seed ${seed} --duration ${DURATION_MS} --faults all --trace`,
        );
      }
    }
    expect(failures, failures.join('\n')).toEqual([]);
    // The runs did something: operations were made and faults injected.
    expect(operations).toBeGreaterThan(SEEDS * 10);
    expect(faults).toBeGreaterThan(SEEDS);
  });
});
