import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidNameError } from '../../bus/errors.js';
import { subjectMatches, validateKvKey, validateName, validateSubject } from '../../bus/names.js';
import {
  MAX_APP_LENGTH,
  MAX_CLUSTER_LENGTH,
  MAX_TOKEN_BYTES,
  buildSubject,
  cmdShardFilter,
  cmdSubject,
  escapeToken,
  eventFilter,
  eventSubject,
  heartbeatFilter,
  heartbeatSubject,
  journalShardFilter,
  journalStreamFilter,
  journalStreamName,
  journalSubject,
  metaFilter,
  metaSubject,
  parseSubject,
  readShardFilter,
  readSubject,
  scatterSubject,
  unescapeToken,
  type ParsedSubject,
} from '../../bus/subjects.js';

function invalidName(fn: () => unknown): InvalidNameError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(InvalidNameError);
  return caught as InvalidNameError;
}

const HOSTILE_IDS = [
  '.',
  '..',
  'a.b.c',
  '*',
  '>',
  'a*',
  'a>',
  '.>',
  ' ',
  'a b',
  '\t',
  '\n',
  '\r\n',
  '\u0000',
  '\u007f',
  '\u001b[31m',
  '$',
  '$JS.API.INFO',
  '=',
  '==',
  '=3D',
  '=u0041',
  '=2e',
  '%2E',
  '/',
  'a/b',
  '\\',
  '"',
  "'",
  '`',
  ':',
  '#',
  'é',
  'e\u0301',
  'Ω',
  '中文',
  '😀',
  '👩‍👩‍👧',
  '\ud800',
  '\udc00',
  '\udc00\ud800',
  'a\ud83db',
  '\ufffd',
  '\uffff',
  '\ufeff',
  '\u2028',
  '\u00a0',
  '\u3000',
  '-',
  '_',
  '-_-',
  'ID',
  'id',
  'null',
  '__proto__',
  'constructor',
  'x'.repeat(MAX_TOKEN_BYTES),
];

/** Ids as strings of any UTF-16 code units (lone surrogates included), of full code points, and of graphemes. */
const anyId = fc.oneof(
  fc.string({ unit: 'binary', minLength: 1, maxLength: 100 }),
  fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 100 }),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }),
  fc.string({ unit: 'grapheme-composite', minLength: 1, maxLength: 20 }),
  fc.string({
    unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
    minLength: 1,
    maxLength: 100,
  }),
  fc.constantFrom(...HOSTILE_IDS),
);
const cluster = fc.stringMatching(/^[A-Za-z0-9_-]{1,24}$/);
const app = fc.stringMatching(/^[a-z0-9-]{1,24}$/);
const shard = fc.oneof(fc.nat({ max: 4096 }), fc.maxSafeNat());

const parsedSubject: fc.Arbitrary<ParsedSubject> = fc.oneof(
  fc.record({
    kind: fc.constantFrom('cmd' as const, 'read' as const, 'ro' as const),
    cluster,
    shard,
    app,
    id: anyId,
    label: anyId,
  }),
  fc.record({ kind: fc.constant('jrnl' as const), cluster, shard, app, id: anyId }),
  fc.record({ kind: fc.constant('epoch' as const), cluster, shard }),
  fc.record({ kind: fc.constant('evt' as const), cluster, app, id: anyId }),
  fc.record({ kind: fc.constant('hb' as const), cluster, worker: anyId }),
  fc.record({ kind: fc.constant('meta' as const), cluster, app }),
);

describe('escapeToken turns any id into one safe token', () => {
  it.each([
    ['a-b_C9', 'a-b_C9'],
    ['.', '=2E'],
    ['a.b', 'a=2Eb'],
    ['=', '=3D'],
    ['*>', '=2A=3E'],
    [' ', '=20'],
    ['\u0000', '=00'],
    ['é', '=u00E9'],
    ['😀', '=uD83D=uDE00'],
    ['\ud800', '=uD800'],
  ])('%j becomes %s', (id, token) => {
    expect(escapeToken(id)).toBe(token);
    expect(unescapeToken(token)).toBe(id);
  });

  it.each(HOSTILE_IDS.map((id) => [id]))('round-trips the hostile id %j', (id) => {
    const token = escapeToken(id);
    expect(token).toMatch(/^[A-Za-z0-9_=-]+$/);
    expect(unescapeToken(token)).toBe(id);
  });

  it('round-trips every id', () => {
    fc.assert(
      fc.property(anyId, (id) => {
        expect(unescapeToken(escapeToken(id))).toBe(id);
      }),
      { numRuns: 2000 },
    );
  });

  it('yields a single token with nothing NATS would treat specially', () => {
    fc.assert(
      fc.property(anyId, (id) => {
        const token = escapeToken(id);
        expect(token).toMatch(/^[A-Za-z0-9_=-]+$/);
        expect(token).not.toMatch(/[.*>$\s\u0000-\u001f\u007f]/);
        expect(token).not.toMatch(/[^\u0000-\u007f]/);
        expect(token.split('.')).toHaveLength(1);
        expect(() => validateSubject(`x.${token}.y`, { wildcards: false })).not.toThrow();
      }),
      { numRuns: 1000 },
    );
  });

  it('yields a valid NATS KV key token', () => {
    fc.assert(
      fc.property(anyId, (id) => {
        const token = escapeToken(id);
        expect(token).toMatch(/^[-/_=.a-zA-Z0-9]+$/);
        expect(token).not.toContain('.');
        expect(() => validateKvKey(token, { wildcards: false })).not.toThrow();
        expect(() => validateKvKey(`sessions.${token}`, { wildcards: false })).not.toThrow();
      }),
      { numRuns: 1000 },
    );
  });

  it('gives different ids different tokens', () => {
    fc.assert(
      fc.property(anyId, anyId, (a, b) => {
        expect(escapeToken(a) === escapeToken(b)).toBe(a === b);
      }),
      { numRuns: 1000 },
    );
  });

  it('refuses the empty id', () => {
    expect(invalidName(() => escapeToken('')).kind).toBe('id');
    expect(invalidName(() => escapeToken('', 'worker')).kind).toBe('worker');
  });

  it(`accepts ids escaping to ${MAX_TOKEN_BYTES} bytes and refuses longer ones`, () => {
    expect(escapeToken('x'.repeat(MAX_TOKEN_BYTES))).toHaveLength(MAX_TOKEN_BYTES);
    invalidName(() => escapeToken('x'.repeat(MAX_TOKEN_BYTES + 1)));
    invalidName(() => escapeToken('.'.repeat(Math.floor(MAX_TOKEN_BYTES / 3) + 1)));
    invalidName(() => escapeToken('é'.repeat(Math.floor(MAX_TOKEN_BYTES / 6) + 1)));
    expect(escapeToken('é'.repeat(Math.floor(MAX_TOKEN_BYTES / 6)))).toHaveLength(6 * Math.floor(MAX_TOKEN_BYTES / 6));
  });
});

describe('unescapeToken accepts only canonical tokens', () => {
  it.each([
    ['empty', ''],
    ['lowercase hex', '=2e'],
    ['lowercase hex in a unit escape', '=u00e9'],
    ['an escaped raw character', '=41'],
    ['an escaped dash', '=2D'],
    ['ASCII in a unit escape', '=u002E'],
    ['a dangling escape', 'a='],
    ['a short escape', '=2'],
    ['a short unit escape', '=u12'],
    ['a non-hex escape', '=G0'],
    ['a non-hex unit escape', '=uZZZZ'],
    ['an escaped non-ASCII byte', '=80'],
    ['a dot', 'a.b'],
    ['a wildcard', '*'],
    ['whitespace', 'a b'],
    ['non-ASCII', 'é'],
    ['a token over the limit', 'x'.repeat(MAX_TOKEN_BYTES + 1)],
  ])('refuses %s', (_name, token) => {
    expect(invalidName(() => unescapeToken(token)).kind).toBe('id');
  });

  it('is the exact inverse of escapeToken on every token it accepts', () => {
    const alphabet = [...'=u0123456789ABCDEFaefzGZ_-'];
    const tokenish = fc.string({ unit: fc.constantFrom(...alphabet), minLength: 1, maxLength: 24 });
    fc.assert(
      fc.property(tokenish, (token) => {
        let id: string;
        try {
          id = unescapeToken(token);
        } catch (error) {
          expect(error).toBeInstanceOf(InvalidNameError);
          return;
        }
        expect(escapeToken(id)).toBe(token);
      }),
      { numRuns: 3000 },
    );
  });
});

describe('subjects follow the scheme and parse back', () => {
  it('builds each kind of subject', () => {
    expect(cmdSubject('prod', 17, 'chat', 'room.1', 'web')).toBe('cohort.prod.cmd.17.chat.room=2E1.web');
    expect(readSubject('prod', 0, 'chat', 'r', 'a.b')).toBe('cohort.prod.read.0.chat.r.a=2Eb');
    expect(journalSubject('prod', 3, 'chat', 'r')).toBe('cohort.prod.jrnl.3.chat.r');
    expect(eventSubject('prod', 'chat', 'r 1')).toBe('cohort.prod.evt.chat.r=201');
    expect(heartbeatSubject('prod', 'host.example:4222')).toBe('cohort.prod.hb.host=2Eexample=3A4222');
    expect(metaSubject('prod', 'chat')).toBe('cohort.prod.meta.chat');
  });

  it('builds the listener-side filters and stream names', () => {
    expect(cmdShardFilter('prod', 17)).toBe('cohort.prod.cmd.17.>');
    expect(readShardFilter('prod', 17)).toBe('cohort.prod.read.17.>');
    expect(journalShardFilter('prod', 17)).toBe('cohort.prod.jrnl.17.>');
    expect(journalStreamName('prod')).toBe('COHORT_prod_JOURNAL');
    expect(journalStreamFilter('prod')).toBe('cohort.prod.jrnl.>');
    expect(eventFilter('prod')).toBe('cohort.prod.evt.>');
    expect(eventFilter('prod', 'chat')).toBe('cohort.prod.evt.chat.>');
    expect(heartbeatFilter('prod')).toBe('cohort.prod.hb.*');
    expect(metaFilter('prod')).toBe('cohort.prod.meta.*');
  });

  it('parses every built subject back to its parts, and builds it again', () => {
    fc.assert(
      fc.property(parsedSubject, (parsed) => {
        const subject = buildSubject(parsed);
        expect(parseSubject(subject)).toEqual(parsed);
        expect(buildSubject(parseSubject(subject))).toBe(subject);
      }),
      { numRuns: 2000 },
    );
  });

  it('gives a scatter a subject of its shard that no session id can have', () => {
    const subject = scatterSubject('read', 'c', 3, 'ledger', 'app');
    expect(subject).toBe('cohort.c.read.3.ledger.~shard.app');
    expect(subjectMatches(readShardFilter('c', 3), subject)).toBe(true);
    expect(parseSubject(subject)).toEqual({
      kind: 'scatter',
      via: 'read',
      cluster: 'c',
      shard: 3,
      app: 'ledger',
      label: 'app',
    });
    expect(parseSubject(scatterSubject('ro', 'c', 3, 'ledger', 'app'))).toMatchObject({ kind: 'scatter', via: 'ro' });
    // A session named "~shard" is escaped, so it stays a session.
    expect(parseSubject(readSubject('c', 3, 'ledger', '~shard', 'app'))).toMatchObject({ kind: 'read', id: '~shard' });
    // Not on cmd: a command goes to one session.
    expect(() => parseSubject('cohort.c.cmd.3.ledger.~shard.app')).toThrow(InvalidNameError);
  });

  it('builds only subjects the server accepts', () => {
    fc.assert(
      fc.property(parsedSubject, (parsed) => {
        expect(() => validateSubject(buildSubject(parsed), { wildcards: false })).not.toThrow();
      }),
      { numRuns: 1000 },
    );
  });

  it('accepts the longest names allowed everywhere at once', () => {
    const subject = cmdSubject(
      'c'.repeat(MAX_CLUSTER_LENGTH),
      Number.MAX_SAFE_INTEGER,
      'a'.repeat(MAX_APP_LENGTH),
      'é'.repeat(170),
      'l'.repeat(1000),
    );
    expect(() => validateSubject(subject, { wildcards: false })).not.toThrow();
    expect(() => validateName('stream', journalStreamName('c'.repeat(MAX_CLUSTER_LENGTH)))).not.toThrow();
  });

  it('matches each session subject with its shard filter and no other shard', () => {
    fc.assert(
      fc.property(cluster, shard, app, anyId, (c, s, a, id) => {
        const filters = [cmdShardFilter(c, s), readShardFilter(c, s), journalShardFilter(c, s), journalStreamFilter(c)];
        for (const filter of filters) expect(() => validateSubject(filter, { wildcards: true })).not.toThrow();
        expect(subjectMatches(cmdShardFilter(c, s), cmdSubject(c, s, a, id, 'l'))).toBe(true);
        const otherShard = s === 0 ? 1 : s - 1;
        expect(subjectMatches(cmdShardFilter(c, otherShard), cmdSubject(c, s, a, id, 'l'))).toBe(false);
        expect(subjectMatches(cmdShardFilter(c, s), readSubject(c, s, a, id, 'l'))).toBe(false);
        expect(subjectMatches(readShardFilter(c, s), readSubject(c, s, a, id, 'l'))).toBe(true);
        expect(subjectMatches(journalShardFilter(c, s), journalSubject(c, s, a, id))).toBe(true);
        expect(subjectMatches(journalStreamFilter(c), journalSubject(c, s, a, id))).toBe(true);
        expect(subjectMatches(journalStreamFilter(c), cmdSubject(c, s, a, id, 'l'))).toBe(false);
        expect(() => validateName('stream', journalStreamName(c))).not.toThrow();
      }),
      { numRuns: 500 },
    );
  });

  it('matches events by cluster and by application', () => {
    fc.assert(
      fc.property(cluster, app, app, anyId, (c, a, other, id) => {
        const subject = eventSubject(c, a, id);
        expect(subjectMatches(eventFilter(c), subject)).toBe(true);
        expect(subjectMatches(eventFilter(c, a), subject)).toBe(true);
        expect(subjectMatches(eventFilter(c, other), subject)).toBe(a === other);
        expect(subjectMatches(heartbeatFilter(c), heartbeatSubject(c, id))).toBe(true);
        expect(subjectMatches(metaFilter(c), metaSubject(c, a))).toBe(true);
      }),
      { numRuns: 500 },
    );
  });
});

describe('bad names are refused with InvalidNameError', () => {
  it('refuses the empty id and the empty worker', () => {
    expect(invalidName(() => cmdSubject('c', 1, 'app', '', 'l')).kind).toBe('id');
    expect(invalidName(() => eventSubject('c', 'app', '')).kind).toBe('id');
    expect(invalidName(() => heartbeatSubject('c', '')).kind).toBe('worker');
  });

  it.each(['', 'App', 'a.b', 'a_b', 'a b', 'a*', '>', 'é', 'a'.repeat(MAX_APP_LENGTH + 1)])(
    'refuses the app %j',
    (bad) => {
      expect(invalidName(() => cmdSubject('c', 1, bad, 'id', 'l')).kind).toBe('app');
      expect(invalidName(() => eventSubject('c', bad, 'id')).kind).toBe('app');
      expect(invalidName(() => metaSubject('c', bad)).kind).toBe('app');
      expect(invalidName(() => eventFilter('c', bad)).kind).toBe('app');
    },
  );

  it.each(['', 'a.b', 'a b', '*', '>', 'é', 'a=b', 'x'.repeat(MAX_CLUSTER_LENGTH + 1)])(
    'refuses the cluster %j',
    (bad) => {
      expect(invalidName(() => cmdSubject(bad, 1, 'app', 'id', 'l')).kind).toBe('cluster');
      expect(invalidName(() => heartbeatSubject(bad, 'w')).kind).toBe('cluster');
      expect(invalidName(() => journalStreamName(bad)).kind).toBe('cluster');
      expect(invalidName(() => eventFilter(bad)).kind).toBe('cluster');
    },
  );

  it.each([-1, 1.5, Number.NaN, Infinity, -0.5, 2 ** 53])('refuses the shard %d', (bad) => {
    expect(invalidName(() => cmdSubject('c', bad, 'app', 'id', 'l')).kind).toBe('shard');
    expect(invalidName(() => cmdShardFilter('c', bad)).kind).toBe('shard');
    expect(invalidName(() => journalShardFilter('c', bad)).kind).toBe('shard');
  });

  it('refuses an id too long to escape', () => {
    expect(invalidName(() => journalSubject('c', 1, 'app', 'x'.repeat(MAX_TOKEN_BYTES + 1))).kind).toBe('id');
  });

  it.each([
    '',
    'cohort',
    'cohort.c',
    'other.c.cmd.1.app.id.l',
    'cohort.c.cmd.1.app',
    'cohort.c.cmd.1.app.id',
    'cohort.c.cmd.1.app.id.l.extra',
    'cohort.c.cmd.01.app.id.l',
    'cohort.c.cmd.-1.app.id.l',
    'cohort.c.cmd.x.app.id.l',
    'cohort.c.cmd.99999999999999999999.app.id.l',
    'cohort.c.cmd.1.App.id.l',
    'cohort.c.cmd.1.app.a=2e.l',
    'cohort.c.cmd.1.app.*.l',
    'cohort.c.cmd.1.app.>.l',
    'cohort.c.read.1.app',
    'cohort.c.jrnl.>',
    'cohort.c.jrnl.1.Epoch',
    'cohort.c.jrnl.01.epoch',
    'cohort.c.jrnl.*.epoch',
    'cohort.c.jrnl.1.app',
    'cohort.c.evt.app',
    'cohort.c.evt.app.id.x',
    'cohort.c.hb.',
    'cohort.c.hb.a.b',
    'cohort..hb.w',
    'cohort.c*.hb.w',
    'cohort.c.meta.App',
    'cohort.c.meta.app.x',
    'cohort.c.nope.x',
    'COHORT.c.hb.w',
  ])('parseSubject refuses %j', (subject) => {
    expect(invalidName(() => parseSubject(subject)).kind).toBe('subject');
  });
});
