/**
 * How long a command id is recognised: a retry inside this window is
 * answered as a duplicate with the seq the command got, and applied once;
 * after it, the id is forgotten and a retry is a new command. It is both
 * the journal stream's duplicate window (checked at start) and how long a
 * session remembers the ids it committed (in memory, in its snapshots, and
 * as rebuilt from the journal on activation).
 */
export const DEDUP_WINDOW_MS = 120_000;

/**
 * Most command ids a session remembers inside the window. A session taking
 * more commands than this within the window answers a retry of an older
 * one through the journal's own de-duplication: still a duplicate, applied
 * once, with its seq when the journal still holds the entry (else the
 * session's current seq).
 */
export const DEDUP_MAX_IDS = 1_024;
