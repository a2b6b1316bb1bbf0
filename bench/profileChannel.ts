import type { AllocSummary } from './allocSampler.js';

/** The names bench/profileSend.ts and its worker process share, so the driver never loads the worker's module. */

export const PROFILE_CLUSTER = 'profile';
export const PROFILE_APP = 'tally';

export type ProfileOp = 'start' | 'stop' | 'activeSessions';
export interface ProfileRequest {
  readonly id: number;
  readonly op: ProfileOp;
}
export type ProfileReply =
  | { readonly id: number; readonly value: AllocSummary | number | null }
  | { readonly id: number; readonly error: string };
