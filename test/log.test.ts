import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { childLogger, createLogger } from '../log/logger.js';

function sink(): { stream: Writable; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  return {
    stream,
    lines: () =>
      chunks
        .join('')
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l)),
  };
}

describe('logger', () => {
  it('writes JSON lines whose child bindings name the cluster, worker, session and client', () => {
    const out = sink();
    const root = createLogger({ level: 'info', destination: out.stream });
    const log = childLogger(root, { cluster: 'demo', worker: 'w1' }).child({
      app: 'ledger',
      session: 'alice',
      client: 'web-1',
    });
    log.info({ seq: 4 }, 'committed');
    log.debug('not at info level');
    const lines = out.lines();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      cluster: 'demo',
      worker: 'w1',
      app: 'ledger',
      session: 'alice',
      client: 'web-1',
      seq: 4,
      msg: 'committed',
      level: 30,
    });
  });

  it('is silent under the test runner unless a level is asked for', () => {
    expect(createLogger().level).toBe(process.env['COHORT_LOG_LEVEL'] ?? 'silent');
    expect(createLogger({ level: 'debug' }).level).toBe('debug');
  });
});
