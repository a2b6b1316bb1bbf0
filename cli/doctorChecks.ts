import {
  type Bus,
  type Delivery,
  type ServerInfo,
  InvalidNameError,
  type KvEntry,
  NoRespondersError,
  StaleRevisionError,
  TimeoutError,
  WrongLastSequenceError,
} from '../index.js';
import { compareVersions, decode, decodeBody, encode, encodeBody } from '../internal.js';

/** One bus capability, exercised once. Returns a short detail, or throws why it failed. */
export interface DoctorCheck {
  name: string;
  run(bus: Bus, scratch: Scratch): Promise<string>;
}

/** Names private to one doctor run, so it never touches anyone else's data. */
export interface Scratch {
  readonly id: string;
  readonly subject: (suffix: string) => string;
  readonly stream: string;
  readonly bucket: string;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

class CheckFailed extends Error {
  override readonly name = 'CheckFailed';
}

function expectThat(condition: boolean, what: string): asserts condition {
  if (!condition) throw new CheckFailed(what);
}

async function expectRejects(p: Promise<unknown>, cls: new (...a: never[]) => Error, what: string): Promise<void> {
  const got = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expectThat(got instanceof cls, `${what}: expected ${cls.name}, got ${got instanceof Error ? got.name : String(got)}`);
}

/** Resolves with the first `n` deliveries on `subject`, or fails after `ms`. */
function receive(
  bus: Bus,
  subject: string,
  n: number,
  ms = 2_000,
  queue?: string,
): { done: Promise<Delivery[]>; stop(): void } {
  const got: Delivery[] = [];
  let resolve!: (d: Delivery[]) => void;
  let reject!: (e: Error) => void;
  const done = new Promise<Delivery[]>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  const timer = setTimeout(() => reject(new CheckFailed(`received ${got.length} of ${n} messages on ${subject}`)), ms);
  const sub = bus.subscribe(
    subject,
    (m) => {
      got.push(m);
      if (got.length === n) {
        clearTimeout(timer);
        resolve(got);
      }
    },
    queue ? { queue } : undefined,
  );
  return {
    done,
    stop: () => {
      clearTimeout(timer);
      sub.unsubscribe();
    },
  };
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

export const doctorChecks: readonly DoctorCheck[] = [
  {
    name: 'publish / subscribe',
    async run(bus, s) {
      const r = receive(bus, s.subject('ps'), 1);
      await bus.flush();
      bus.publish(s.subject('ps'), enc.encode('ping'));
      const [m] = await r.done;
      r.stop();
      expectThat(dec.decode(m!.data) === 'ping', 'payload changed in transit');
      return 'one message out and back';
    },
  },
  {
    name: 'wildcards * and >',
    async run(bus, s) {
      const star = receive(bus, s.subject('wc.*.end'), 1);
      const tail = receive(bus, s.subject('wc.>'), 2);
      await bus.flush();
      bus.publish(s.subject('wc.x.end'), enc.encode('1'));
      bus.publish(s.subject('wc.y.z.w'), enc.encode('2'));
      const [[a], b] = await Promise.all([star.done, tail.done]);
      star.stop();
      tail.stop();
      expectThat(a!.subject === s.subject('wc.x.end') && b.length === 2, 'wrong routing');
      return "'*' matched one token, '>' the rest";
    },
  },
  {
    name: 'queue groups',
    async run(bus, s) {
      const subject = s.subject('qg');
      const counts = [0, 0];
      const subs = counts.map((_, i) => bus.subscribe(subject, () => counts[i]!++, { queue: 'doctor' }));
      const all = receive(bus, subject, 20);
      await bus.flush();
      for (let i = 0; i < 20; i++) bus.publish(subject, enc.encode(String(i)));
      await all.done;
      await bus.flush();
      all.stop();
      subs.forEach((x) => x.unsubscribe());
      expectThat(counts[0]! + counts[1]! === 20, `queue members got ${counts.join('+')} of 20`);
      return `20 messages split ${counts.join('/')} between 2 members`;
    },
  },
  {
    name: 'request / reply',
    async run(bus, s) {
      const sub = bus.subscribe(s.subject('rr'), (m) => m.respond(m.data));
      await bus.flush();
      const t0 = performance.now();
      const reply = await bus.request(s.subject('rr'), enc.encode('echo'), { timeout: 2_000 });
      const rtt = performance.now() - t0;
      sub.unsubscribe();
      expectThat(dec.decode(reply.data) === 'echo', 'wrong reply');
      return `round trip ${rtt.toFixed(2)} ms`;
    },
  },
  {
    name: 'no responders',
    async run(bus, s) {
      await expectRejects(
        bus.request(s.subject('nobody'), enc.encode('x'), { timeout: 2_000 }),
        NoRespondersError,
        'request to nobody',
      );
      return 'NoRespondersError, at once';
    },
  },
  {
    name: 'request timeout',
    async run(bus, s) {
      const sub = bus.subscribe(s.subject('silent'), () => undefined);
      await bus.flush();
      await expectRejects(
        bus.request(s.subject('silent'), enc.encode('x'), { timeout: 100 }),
        TimeoutError,
        'unanswered request',
      );
      sub.unsubscribe();
      return 'TimeoutError after 100 ms';
    },
  },
  {
    name: 'headers',
    async run(bus, s) {
      const r = receive(bus, s.subject('hd'), 1);
      await bus.flush();
      bus.publish(s.subject('hd'), enc.encode('x'), {
        headers: { 'Cohort-Type': 'doctor', 'Cohort-Client': 'doctor-1' },
      });
      const [m] = await r.done;
      r.stop();
      expectThat(
        m!.headers['Cohort-Type'] === 'doctor' && m!.headers['Cohort-Client'] === 'doctor-1',
        'headers changed',
      );
      return 'text headers round-trip';
    },
  },
  {
    name: 'codec (msgpack)',
    async run(bus, s) {
      const value = { n: 1.5, big: 2n ** 60n, at: new Date(0), bin: new Uint8Array([0, 255]), list: ['a', null, true] };
      const sub = bus.subscribe(s.subject('codec'), (m) => m.respond(encode(decode(m.data))));
      await bus.flush();
      const reply = await bus.request(s.subject('codec'), encode(value), { timeout: 2_000 });
      sub.unsubscribe();
      const back = decode(reply.data) as typeof value;
      expectThat(back.big === value.big && back.at.getTime() === 0 && back.bin[1] === 255, 'value changed in transit');
      return 'Date, BigInt and binary survive a round trip';
    },
  },
  {
    name: 'journal append',
    async run(bus, s) {
      const j = await bus.journal({ name: s.stream, subjects: [s.subject('j.>')], storage: 'memory' });
      const a = await j.append(s.subject('j.a'), enc.encode('1'));
      const b = await j.append(s.subject('j.a'), enc.encode('2'), { expectedLastSubjectSeq: a.seq });
      expectThat(b.seq === a.seq + 1, 'sequences not consecutive');
      return `acked at sequences ${a.seq} and ${b.seq}`;
    },
  },
  {
    name: 'journal fencing',
    async run(bus, s) {
      const j = await bus.journal({ name: s.stream, subjects: [s.subject('j.>')], storage: 'memory' });
      const before = await j.lastSeq(s.subject('j.a'));
      await expectRejects(
        j.append(s.subject('j.a'), enc.encode('stale'), { expectedLastSubjectSeq: before - 1 }),
        WrongLastSequenceError,
        'stale append',
      );
      expectThat((await j.lastSeq(s.subject('j.a'))) === before, 'a stale append was stored');
      return 'a stale expected sequence appends nothing';
    },
  },
  {
    name: 'journal de-duplication',
    async run(bus, s) {
      const j = await bus.journal({ name: s.stream, subjects: [s.subject('j.>')], storage: 'memory' });
      const first = await j.append(s.subject('j.d'), enc.encode('x'), { msgId: `${s.id}-cmd` });
      const again = await j.append(s.subject('j.d'), enc.encode('x'), { msgId: `${s.id}-cmd` });
      expectThat(again.duplicate && again.seq === first.seq, 'retried message id stored twice');
      return 'a retried message id is stored once';
    },
  },
  {
    name: 'journal read from sequence',
    async run(bus, s) {
      const j = await bus.journal({ name: s.stream, subjects: [s.subject('j.>')], storage: 'memory' });
      const all = await collect(j.read(s.subject('j.a')));
      const later = await collect(j.read(s.subject('j.a'), { fromSeq: all[1]!.seq }));
      expectThat(all.length === 2 && later.length === 1 && dec.decode(later[0]!.data) === '2', 'wrong entries');
      return 'entries after a sequence, in order';
    },
  },
  {
    name: 'journal purge',
    async run(bus, s) {
      const j = await bus.journal({ name: s.stream, subjects: [s.subject('j.>')], storage: 'memory' });
      const all = await collect(j.read(s.subject('j.a')));
      const purged = await j.purge(s.subject('j.a'), { below: all[1]!.seq });
      const left = await collect(j.read(s.subject('j.a')));
      expectThat(purged === 1 && left.length === 1, `purged ${purged}, ${left.length} left`);
      return 'entries below a sequence removed';
    },
  },
  {
    name: 'key-value compare-and-set',
    async run(bus, s) {
      const kv = await bus.kv({ bucket: s.bucket, storage: 'memory' });
      const r1 = await kv.create('view', enc.encode('1'));
      const r2 = await kv.update('view', enc.encode('2'), r1);
      await expectRejects(kv.update('view', enc.encode('lost'), r1), StaleRevisionError, 'stale update');
      await expectRejects(kv.put('bad key', enc.encode('x')), InvalidNameError, 'bad key');
      expectThat(dec.decode((await kv.get('view'))!.value) === '2', 'stale update changed the value');
      return `revision ${r1} → ${r2}; stale revision refused`;
    },
  },
  {
    name: 'key-value watch',
    async run(bus, s) {
      const kv = await bus.kv({ bucket: s.bucket, storage: 'memory' });
      const seen: KvEntry[] = [];
      let done!: () => void;
      const two = new Promise<void>((r) => (done = r));
      const w = await kv.watch({ key: 'w.*', include: 'updates' }, (e) => {
        seen.push(e);
        if (seen.length === 2) done();
      });
      await kv.put('w.k', enc.encode('v'));
      await kv.delete('w.k');
      const timeout = new Promise<never>((_, rej) =>
        setTimeout(() => rej(new CheckFailed(`saw ${seen.length} of 2 changes`)), 2_000).unref(),
      );
      await Promise.race([two, timeout]);
      w.stop();
      expectThat(seen[0]!.operation === 'PUT' && seen[1]!.operation === 'DEL', 'changes out of order');
      return 'update then delete, in order';
    },
  },
  {
    name: 'blobs',
    async run(bus, s) {
      const blobs = await bus.blobs({ bucket: s.bucket, storage: 'memory' });
      const data = new Uint8Array(bus.server.maxPayload * 2).map((_, i) => i & 0xff);
      await blobs.put('big', data);
      const back = await blobs.get('big');
      expectThat(back !== null && Buffer.compare(back, data) === 0, 'blob changed');
      await blobs.delete('big');
      return `${(data.length / 1048576).toFixed(1)} MiB stored and read back`;
    },
  },
  {
    name: 'claim-check',
    async run(bus, s) {
      const blobs = await bus.blobs({ bucket: s.bucket, storage: 'memory' });
      const doc = { text: 'x'.repeat(bus.server.maxPayload + 10) };
      const body = await encodeBody(doc, { maxBytes: bus.server.maxPayload, blobs, allowClaimCheck: true });
      expectThat(body.data.length < 1024, 'large body was not claim-checked');
      const back = (await decodeBody(body.data, body.headers, { blobs })) as typeof doc;
      expectThat(back.text.length === doc.text.length, 'claim-checked body changed');
      return `a ${body.data.length}-byte reference stands for ${doc.text.length} bytes`;
    },
  },
];

/**
 * The oldest nats-server of each release line that carries the fixes for the
 * published authentication and authorization advisories. 2.11.16 and 2.12.7
 * (NATS advisories 2026-16, route/leafnode authentication bypass with
 * no_auth_user, GHSA-38x3-76xf-cq45; and 2026-18, queue-subscribe
 * authorization bypass, GHSA-jx8g-9g95-6322) include the fixes of 2.11.15 and
 * 2.12.6 (2026-13, mTLS DN-mapping authentication bypass, CVE-2026-33248;
 * JetStream restore authorization bypass, GHSA-9983-vrx2-fg9c). Lines before
 * 2.11 get no fixes; the advisories name 2.14.0 as the next line's fixed
 * release (no 2.13 was published), so `laterLinesFrom` and up pass.
 */
export const SECURITY_FLOOR = {
  lines: { '2.11': '2.11.16', '2.12': '2.12.7' } as Readonly<Record<string, string>>,
  laterLinesFrom: '2.13.0',
} as const;

const FLOOR_TEXT = Object.values(SECURITY_FLOOR.lines)
  .map((v) => `>= ${v}`)
  .join(' or ');

/** Below `floor`; a pre-release of the floor itself (2.12.7-RC.1) is below it too. */
function below(version: string, floor: string): boolean {
  const c = compareVersions(version, floor);
  return c < 0 || (c === 0 && version.includes('-'));
}

/** Whether a nats-server version lacks the fixes of the security floor. */
export function belowSecurityFloor(version: string): boolean {
  if (!below(version, SECURITY_FLOOR.laterLinesFrom)) return false;
  const line = version.split('-')[0]!.split('.').slice(0, 2).join('.');
  const fixed = SECURITY_FLOOR.lines[line];
  return fixed === undefined || below(version, fixed);
}

/** One line of the doctor's security table. WARN is advice: it never fails the run. */
export interface SecurityRow {
  name: 'server version' | 'authenticated' | 'encrypted';
  result: 'ok' | 'WARN' | 'yes' | 'no' | 'n/a';
  detail: string;
}

/**
 * The server's version against the floor, and whether this connection
 * authenticated and is encrypted. `credentials`: whether the connection
 * presented any (a server can ask for them and still let one in without).
 */
export function securityRows(server: ServerInfo, credentials: boolean): SecurityRow[] {
  const { security } = server;
  if (server.implementation === 'memory' || security === undefined) {
    return [
      { name: 'server version', result: 'n/a', detail: 'the in-memory bus: no server to upgrade' },
      { name: 'authenticated', result: 'n/a', detail: 'in process: nothing crosses a network' },
      { name: 'encrypted', result: 'n/a', detail: 'in process: nothing crosses a network' },
    ];
  }
  const version: SecurityRow = belowSecurityFloor(server.version)
    ? {
        name: 'server version',
        result: 'WARN',
        detail:
          `nats-server ${server.version} has published authentication-bypass and JetStream authorization ` +
          `advisories: fine for development, not for production: upgrade to ${FLOOR_TEXT}`,
      }
    : { name: 'server version', result: 'ok', detail: `nats-server ${server.version}, at or above ${FLOOR_TEXT}` };
  const authenticated: SecurityRow = !security.authRequired
    ? {
        name: 'authenticated',
        result: 'no',
        detail: 'the server asks no credentials: whoever reaches its port gets in (see `cohort auth init`)',
      }
    : credentials
      ? { name: 'authenticated', result: 'yes', detail: 'the server requires credentials, and took these' }
      : {
          name: 'authenticated',
          result: 'no',
          detail:
            'the server says it requires credentials but let this connection in without any: a no_auth_user, ' +
            'or a system account on nats-server < 2.9.23 (GHSA-fr2g-9hjm-wr23)',
        };
  const encrypted: SecurityRow = security.encrypted
    ? {
        name: 'encrypted',
        result: 'yes',
        detail: `TLS${security.tlsVerify ? ', with a client certificate the server verified' : ''}`,
      }
    : {
        name: 'encrypted',
        result: 'no',
        detail: 'plain TCP: credentials and data cross the network readable (serve TLS, connect with --tls-ca)',
      };
  return [version, authenticated, encrypted];
}
