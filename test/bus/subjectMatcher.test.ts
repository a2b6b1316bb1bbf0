import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { subjectMatcher } from '../../bus/filters.js';

/** The matcher as it was written first, on split tokens: what the walking one must agree with. */
function reference(filter: string): (subject: string) => boolean {
  const ft = filter.split('.');
  const last = ft.length - 1;
  const tail = ft[last] === '>';
  if (!filter.includes('*') && !tail) return (subject) => subject === filter;
  return (subject) => {
    const st = subject.split('.');
    if (tail ? st.length <= last : st.length !== ft.length) return false;
    for (let i = 0; i < (tail ? last : ft.length); i++) {
      const f = ft[i]!;
      if (f !== '*' && f !== st[i]) return false;
    }
    return true;
  };
}

const token = fc.constantFrom('', 'a', 'b', 'ab', 'cohort', '*', '>', 'a*', '>b');
const subject = fc.array(token, { maxLength: 6 }).map((t) => t.join('.'));

describe('subjectMatcher', () => {
  it('agrees with matching on split tokens, for any filter and subject', () => {
    fc.assert(
      fc.property(subject, subject, (filter, s) => {
        expect(subjectMatcher(filter)(s)).toBe(reference(filter)(s));
      }),
      { numRuns: 5000 },
    );
  });

  it('matches as NATS does on plain cases', () => {
    expect(subjectMatcher('cohort.*.cmd.>')('cohort.c1.cmd.app.7.x')).toBe(true);
    expect(subjectMatcher('cohort.*.cmd.>')('cohort.c1.cmd')).toBe(false);
    expect(subjectMatcher('cohort.*.cmd')('cohort.c1.cmd')).toBe(true);
    expect(subjectMatcher('cohort.*.cmd')('cohort.c1.cmd.x')).toBe(false);
    expect(subjectMatcher('cohort.*.cmd')('cohort.c1.read')).toBe(false);
    expect(subjectMatcher('>')('anything.at.all')).toBe(true);
  });
});
