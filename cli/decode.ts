/**
 * `cohort decode`: one cohort payload on stdin, as JSON on stdout, for
 * natscli's `--translate 'cohort decode'` (`nats sub`, `nats stream view`,
 * `nats kv get`), which pipes each body through the command and shows what
 * it prints.
 *
 * What it reads, in this order: JSON (the view, hand-typed requests) is
 * printed again indented; decimal text (counters) as the number, or as a
 * string when too large for one; msgpack (commands, replies, journal
 * records, heartbeats, snapshots, replica reports) through the same strict
 * decoder cohort uses; any other UTF-8 text (a timer's ISO time) as a JSON
 * string; empty input as `null`. Anything else prints
 * `{"error": ..., "base64": ...}`.
 *
 * It always exits 0 and writes nothing to stderr: natscli shows the
 * command's stdout and stderr together, and on a non-zero exit prints the
 * output as a quoted Go string with an error line, which would turn the
 * JSON explaining the bytes into an escaped blob.
 */
import { decode } from '../bus/codec.js';

const text = new TextDecoder('utf-8', { fatal: true });

/** A decoded value as plain JSON: bytes as base64, dates as ISO, bigints and non-finite numbers as strings, Maps and Sets as objects and lists. */
export function jsonSafe(value: unknown): unknown {
  if (value === null || value === undefined) return null;
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'number') return Number.isFinite(value) ? value : String(value);
  if (typeof value !== 'object') return value;
  if (value instanceof Uint8Array)
    return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64');
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
  if (Array.isArray(value)) return value.map(jsonSafe);
  if (value instanceof Set) return [...value].map(jsonSafe);
  const entries = value instanceof Map ? [...value.entries()] : Object.entries(value);
  const out: Record<string, unknown> = {};
  for (const [k, v] of entries) {
    // defineProperty, so a key `__proto__` from the wire is an ordinary key and sets no prototype.
    Object.defineProperty(out, String(k), { value: jsonSafe(v), enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/** The JSON text `cohort decode` prints for `body` (with a trailing newline). */
export function decodePayload(body: Uint8Array): string {
  const json = (value: unknown): string => `${JSON.stringify(value, null, 2)}\n`;
  if (body.length === 0) return json(null);
  let asText: string | undefined;
  try {
    asText = text.decode(body);
  } catch {
    asText = undefined;
  }
  if (asText !== undefined) {
    const trimmed = asText.trim();
    if (/^-?\d+$/.test(trimmed)) {
      const n = Number(trimmed);
      return json(Number.isSafeInteger(n) ? n : trimmed);
    }
    if (trimmed.startsWith('{') || trimmed.startsWith('[') || trimmed.startsWith('"')) {
      try {
        return json(JSON.parse(trimmed));
      } catch {
        // Not JSON after all: msgpack or plain text below.
      }
    }
  }
  let failure: unknown;
  try {
    return json(jsonSafe(decode(body, { where: 'stdin' })));
  } catch (err) {
    failure = err;
  }
  if (asText !== undefined && !/[\x00-\x08\x0e-\x1f\x7f]/.test(asText)) return json(asText);
  const reason = failure instanceof Error ? failure.message : String(failure);
  return json({ error: `not JSON, decimal text or msgpack (${reason})`, base64: jsonSafe(body) });
}

async function readAll(stream: NodeJS.ReadableStream): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks);
}

export async function runDecode(options: {
  stdin: NodeJS.ReadableStream;
  out: (text: string) => void;
}): Promise<number> {
  options.out(decodePayload(await readAll(options.stdin)));
  return 0;
}
