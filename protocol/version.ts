import { readFileSync } from 'node:fs';

let cached: string | undefined;

/**
 * cohort's version, from its package.json: the one beside the sources
 * (protocol/) or beside dist/ (dist/protocol/), whichever this module runs from.
 */
export function cohortVersion(): string {
  if (cached !== undefined) return cached;
  for (const up of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as {
        name?: unknown;
        version?: unknown;
      };
      if (pkg.name === 'cohort' && typeof pkg.version === 'string') return (cached = pkg.version);
    } catch {
      // Not there: the other layout.
    }
  }
  throw new Error('cohort: package.json not found beside the sources or dist/');
}
