/**
 * The examples under every fault kind, 200 seeds each, on virtual time: a
 * seed that fails is named with its first violation and the command that
 * replays it. Each seed is a whole cluster (3 workers, 3 clients) through
 * 6 virtual seconds of faults, the heal and the recovery.
 *
 * The runs are pure CPU and the test runner uses one core: the second half
 * of the seeds goes to `cohort simulate` in a child process, which checks
 * the CLI's summary on the way.
 */
import { describe, expect, it } from 'vitest';
import { ledger } from '../../examples/ledger.js';
import { whiteboard } from '../../examples/whiteboard.js';
import { simulate } from '../../harness/index.js';
import { cohort } from '../fixtures/cliProcess.js';

const SEEDS = 200;
const HERE = SEEDS / 2;
const DURATION_MS = 6_000;

describe.each([
  { name: 'ledger', app: ledger, file: 'examples/ledger.ts' },
  { name: 'whiteboard', app: whiteboard, file: 'examples/whiteboard.ts' },
])('$name under every fault', ({ app, file }) => {
  it(`${SEEDS} seeds pass`, { timeout: 600_000 }, async () => {
    const args = ['--app', file, '--duration', String(DURATION_MS), '--faults', 'all'];
    const child = cohort(['simulate', ...args, '--seeds', `${HERE + 1}-${SEEDS}`]);
    try {
      const failures: string[] = [];
      let operations = 0;
      let faults = 0;
      for (let seed = 1; seed <= HERE; seed++) {
        const r = await simulate({ seed, applications: [app], duration: DURATION_MS, faults: 'all' });
        operations += r.stats.operations;
        faults += Object.values(r.stats.faults).reduce((a, b) => a + b, 0);
        if (!r.ok) {
          const first = r.violations[0];
          failures.push(
            `seed ${seed}: ${first ? `${first.invariant} ${first.app}/${first.session}: ${first.message}` : r.errors[0]}\n` +
              `  replay: npx tsx cli/main.ts simulate ${args.join(' ')} --seed ${seed} --trace`,
          );
        }
      }
      const exit = await child.exited;
      // The child names each failing seed and its replay command itself.
      failures.push(...child.stdout.filter((l) => /FAILED|replay:/.test(l)));
      expect(failures, failures.join('\n')).toEqual([]);
      expect(child.stderr()).toBe('');
      expect(exit.code).toBe(0);
      const summary = child.stdout.find((l) => l.startsWith('summary:'));
      const counted = /^summary: (\d+) seeds, 0 failing, 0 violations, (\d+) operations/.exec(summary ?? '');
      expect(counted?.[1], child.stdout.join('\n')).toBe(String(SEEDS - HERE));
      // The runs did something: operations were made and faults injected.
      expect(operations).toBeGreaterThan(HERE * 10);
      expect(Number(counted?.[2])).toBeGreaterThan((SEEDS - HERE) * 10);
      expect(faults).toBeGreaterThan(HERE);
    } finally {
      await child.close();
    }
  });
});
