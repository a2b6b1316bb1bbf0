import { UnsupportedFeatureError } from './errors.js';
import type { Feature } from './types.js';

/** The oldest server cohort runs on: Debian bookworm's nats-server. */
export const MINIMUM_SERVER_VERSION = '2.9.10';

/** The release that brought each feature newer than the baseline. */
export const FEATURE_SINCE = {
  'multi-filter-consumers': '2.10.0',
  'per-message-ttl': '2.11.0',
  'consumer-pause': '2.11.0',
  'atomic-batch': '2.12.0',
} as const satisfies Record<Feature, string>;

/** Compares dotted versions numerically; pre-release suffixes are ignored. */
export function compareVersions(a: string, b: string): number {
  const pa = a
    .split('-')[0]!
    .split('.')
    .map((n) => Number.parseInt(n, 10) || 0);
  const pb = b
    .split('-')[0]!
    .split('.')
    .map((n) => Number.parseInt(n, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  return 0;
}

export function serverSupports(version: string, feature: Feature): boolean {
  return compareVersions(version, FEATURE_SINCE[feature]) >= 0;
}

export function requireFeature(version: string, feature: Feature): void {
  if (!serverSupports(version, feature)) throw new UnsupportedFeatureError(feature, version, FEATURE_SINCE[feature]);
}
