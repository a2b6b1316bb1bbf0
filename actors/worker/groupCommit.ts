/**
 * Group commit: the commands waiting in one session's mailbox while its
 * previous append is in flight are stepped together and journaled as one
 * message, each answered once that one append is acknowledged. Here: what
 * waits, how a batch is bounded, and the batch's de-duplication id.
 */
import { createHash } from 'node:crypto';
import type { CommandReply, CommandRequest } from '../../protocol/messages.js';

/** A command waiting for its session's next turn. */
export interface WaitingCommand {
  readonly req: CommandRequest;
  /** When it arrived, on the runtime's clock: its event's time. */
  readonly time: number;
  /** Bytes of its request: a batch is bounded by the journal message it becomes. */
  readonly size: number;
  /** A refusal for its client decided when its turn comes (disconnected by force meanwhile), or none. */
  readonly admit: (client: string) => Error | undefined;
  /** Its answer; undefined: the copy was evicted before its turn, so the caller loads the session again and retries. */
  readonly resolve: (reply: CommandReply | undefined) => void;
}

export interface GroupCommitLimits {
  /** Most commands in one journal message (1: every command appended on its own). */
  readonly maxCommands: number;
  /** Most request bytes in one journal message; a single larger command still goes, alone. */
  readonly maxBytes: number;
}

export const GROUP_COMMIT_DEFAULTS: GroupCommitLimits = { maxCommands: 64, maxBytes: 256 * 1024 };

/** What a journaled event adds to its command's request body (stamp, seq, framing), counted against maxBytes. */
const EVENT_OVERHEAD = 128;

/**
 * The limits a worker uses: as configured, within what the server accepts in
 * one message (half its payload limit, leaving room for headers and stamps).
 */
export function groupCommitLimits(
  configured: Partial<GroupCommitLimits> | undefined,
  maxPayload: number,
): GroupCommitLimits {
  const maxCommands = configured?.maxCommands ?? GROUP_COMMIT_DEFAULTS.maxCommands;
  const maxBytes = configured?.maxBytes ?? GROUP_COMMIT_DEFAULTS.maxBytes;
  if (!Number.isInteger(maxCommands) || maxCommands < 1)
    throw new RangeError(`groupCommit.maxCommands must be a whole number of at least 1 (got ${maxCommands})`);
  if (!Number.isFinite(maxBytes) || maxBytes < 1)
    throw new RangeError(`groupCommit.maxBytes must be a positive number of bytes (got ${maxBytes})`);
  return { maxCommands, maxBytes: Math.min(maxBytes, Math.floor(maxPayload / 2)) };
}

/** Takes the next batch off `waiting`: the oldest commands within the limits, and at least one however large. */
export function takeBatch(waiting: WaitingCommand[], limits: GroupCommitLimits): WaitingCommand[] {
  if (waiting.length === 0) return [];
  let n = 0;
  let bytes = 0;
  while (n < waiting.length && n < limits.maxCommands) {
    const size = waiting[n]!.size + EVENT_OVERHEAD;
    if (n > 0 && bytes + size > limits.maxBytes) break;
    bytes += size;
    n++;
  }
  return waiting.splice(0, n);
}

/**
 * The journal's de-duplication id for a record of these commands: a lone
 * command's own id (as without group commit), else one derived from every
 * id in order, so only the very same batch is ever taken as a duplicate of
 * it. Each command's own id travels in its event (meta.cmdId), which is what
 * replay and the de-duplication window read.
 */
export function batchMsgId(cmdIds: readonly string[]): string {
  if (cmdIds.length === 1) return cmdIds[0]!;
  const hash = createHash('sha256');
  for (const id of cmdIds) hash.update(id).update('\n');
  return `${BATCH_PREFIX}${cmdIds.length}:${hash.digest('base64url').slice(0, 22)}`;
}

const BATCH_PREFIX = 'batch:';

/**
 * A batch's id names no command of its own, so replay does not remember it
 * as one. (A transaction id a client chose in this very form would be
 * recognised on retry by the journal's de-duplication alone.)
 */
export function isBatchMsgId(msgId: string): boolean {
  return msgId.startsWith(BATCH_PREFIX) && /^batch:\d+:[A-Za-z0-9_-]{22}$/.test(msgId);
}
