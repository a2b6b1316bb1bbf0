/**
 * One error class per failure mode. Callers decide retry / give up from the
 * class (and `retryable`), never from message text.
 *
 * The root of every error cohort raises, the bus's and the protocol's alike.
 * It lives here, in the lowest layer, so the bus needs nothing above it.
 */
export class CohortError extends Error {
  /** Whether the same operation may succeed if simply tried again later. */
  readonly retryable: boolean = false;
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A failure of the transport or the store: the bus, NATS, JetStream, KV, blobs, codec. */
export class BusError extends CohortError {}

/** A request found nobody subscribed to its subject. */
export class NoRespondersError extends BusError {
  override readonly retryable = true;
  constructor(
    readonly subject: string,
    options?: ErrorOptions,
  ) {
    super(`no responders for ${subject}`, options);
  }
}

/** What a timed-out call's message says of its outcome: only a caller that knows (a client call) says it. */
function outcomeOf(ambiguous: boolean | undefined): string {
  if (ambiguous === undefined) return '';
  return ambiguous
    ? ' (it may have committed: ambiguous; read the session to know)'
    : ' (not ambiguous: nothing was committed)';
}

/** A request (or journal/kv operation) got no answer within its timeout. */
export class TimeoutError extends BusError {
  override readonly retryable = true;
  /** A command sent and never answered may have been applied: read to know. False when it certainly was not. */
  readonly ambiguous: boolean;
  constructor(
    readonly operation: string,
    readonly timeoutMs: number,
    options?: ErrorOptions & { ambiguous?: boolean },
  ) {
    super(`${operation} timed out after ${timeoutMs} ms${outcomeOf(options?.ambiguous)}`, options);
    this.ambiguous = options?.ambiguous === true;
  }
}

/** A journal append whose expected last subject sequence did not match: nothing was appended. */
export class WrongLastSequenceError extends BusError {
  constructor(
    readonly subject: string,
    readonly expected: number,
    readonly actual: number | undefined,
    options?: ErrorOptions,
  ) {
    super(
      `wrong last sequence for ${subject}: expected ${expected}` +
        (actual === undefined ? '' : `, journal is at ${actual}`),
      options,
    );
  }
}

/** A key-value write whose expected revision is no longer the key's revision. */
export class StaleRevisionError extends BusError {
  constructor(
    readonly bucket: string,
    readonly key: string,
    readonly expected: number,
    options?: ErrorOptions,
  ) {
    super(`stale revision for ${bucket}/${key}: expected ${expected}`, options);
  }
}

/** A key-value create for a key that already holds a value. */
export class KeyExistsError extends BusError {
  constructor(
    readonly bucket: string,
    readonly key: string,
    options?: ErrorOptions,
  ) {
    super(`key ${bucket}/${key} already exists`, options);
  }
}

/** A name (subject, key, bucket, stream) that the bus will not pass to the server. */
export class InvalidNameError extends BusError {
  constructor(
    readonly kind: string,
    readonly value: string,
    readonly reason: string,
    options?: ErrorOptions,
  ) {
    super(
      `invalid ${kind} ${JSON.stringify(value.length > 80 ? value.slice(0, 80) + '…' : value)}: ${reason}`,
      options,
    );
  }
}

/** A body larger than the limit (by default the server's max payload). */
export class PayloadTooLargeError extends BusError {
  constructor(
    readonly size: number,
    readonly limit: number,
    readonly where: string,
    options?: ErrorOptions,
  ) {
    super(`${where}: payload of ${size} bytes exceeds the limit of ${limit} bytes`, options);
  }
}

/** Bytes that are not a valid cohort body. */
export class DecodeError extends BusError {
  constructor(
    readonly where: string,
    readonly reason: string,
    options?: ErrorOptions,
  ) {
    super(`cannot decode ${where}: ${reason}`, options);
  }
}

/** A value the codec refuses rather than silently change (Map, Set, huge BigInt, functions...). */
export class EncodeError extends BusError {
  constructor(
    readonly path: string,
    readonly reason: string,
    options?: ErrorOptions,
  ) {
    super(`cannot encode value at ${path}: ${reason}`, options);
  }
}

/** The connected server lacks a feature the caller asked for. */
export class UnsupportedFeatureError extends BusError {
  constructor(
    readonly feature: string,
    readonly serverVersion: string,
    readonly requires: string,
  ) {
    super(`${feature} needs nats-server ${requires} or newer; connected server is ${serverVersion}`);
  }
}

/** The bus was closed; nothing more can be sent through it. */
export class BusClosedError extends BusError {
  constructor(readonly operation: string) {
    super(`${operation}: the bus is closed`);
  }
}

/**
 * The connection dropped while a call was out: no answer can come through
 * it. Retryable once the connection is back; a write may have been applied
 * (ambiguous), which a retry with the same message id or revision settles.
 */
export class ConnectionLostError extends BusError {
  override readonly retryable = true;
  constructor(options?: ErrorOptions) {
    super('the connection to the server dropped while the call was out', options);
  }
}

/** A failure talking to the server that has no more specific class here. */
export class ConnectionError extends BusError {
  override readonly retryable = true;
}

/** The server runs without JetStream, which cohort needs for journals, KV and blobs. */
export class JetStreamDisabledError extends BusError {
  constructor(readonly server: string) {
    super(`JetStream is not enabled on ${server}: start nats-server with -js (or jetstream {} in its config)`);
  }
}

/** The credentials or TLS files given could not be used (unreadable, malformed, or two ways at once). */
export class CredentialsError extends BusError {}

/** The server refused this connection's credentials (or asked for some and none were given). */
export class AuthenticationError extends BusError {
  constructor(
    readonly server: string,
    options?: ErrorOptions,
  ) {
    super(
      `${server} refused the connection's credentials: pass --creds, --nkey, --user/--password or --token ` +
        `(or NATS_CREDS, NATS_NKEY, NATS_USER/NATS_PASSWORD), as the server's authorization expects`,
      options,
    );
  }
}

/** The server denied this connection a subject: its user may not publish or subscribe there. */
export class PermissionDeniedError extends BusError {
  constructor(
    readonly operation: 'publish' | 'subscription',
    readonly subject: string,
    options?: ErrorOptions,
  ) {
    super(`the server denied ${operation} on ${subject}: this user's permissions do not allow it`, options);
  }
}

/** What a StreamConfigMismatchError says. */
export interface StreamConfigMismatch {
  /** The JetStream stream: `COHORT_<cluster>_JOURNAL`, `KV_<bucket>`, `OBJ_<bucket>`. */
  readonly stream: string;
  /** The stream setting, as NATS names it: `duplicate_window`, `max_age`, `subjects`... */
  readonly setting: string;
  readonly expected: string;
  readonly actual: string;
  /** Why it matters. */
  readonly reason: string;
  /** How to fix it: a `nats` command, or deleting the stream. */
  readonly fix: string;
}

/**
 * A stream or bucket that already exists with a setting that would lose what
 * cohort keeps in it (entries, values, de-duplication) or keep fewer copies
 * than asked. Nothing is changed: whoever may edit streams fixes it as `fix` says.
 */
export class StreamConfigMismatchError extends BusError {
  readonly stream: string;
  readonly setting: string;
  readonly expected: string;
  readonly actual: string;
  readonly reason: string;
  readonly fix: string;
  constructor(mismatch: StreamConfigMismatch) {
    const { stream, setting, expected, actual, reason, fix } = mismatch;
    super(`stream ${stream}: ${setting} is ${actual}, cohort needs ${expected}: ${reason}. Fix: ${fix}`);
    this.stream = stream;
    this.setting = setting;
    this.expected = expected;
    this.actual = actual;
    this.reason = reason;
    this.fix = fix;
  }
}

/** A bucket opened with `create: false` does not exist (yet: whoever creates it may still be starting). */
export class BucketNotFoundError extends BusError {
  override readonly retryable = true;
  constructor(
    readonly bucket: string,
    options?: ErrorOptions,
  ) {
    super(`bucket ${bucket} does not exist (yet): a worker creates it when it starts`, options);
  }
}

/** Why a TLS handshake failed, from the side that can fix it. */
export type TlsFailure =
  /** The server's certificate does not chain to a CA this connection trusts (or has expired). */
  | 'server-not-trusted'
  /** The server's certificate is trusted but does not name the host dialled. */
  | 'server-name-mismatch'
  /** The server verifies clients and refused this one's certificate, or its lack of one. */
  | 'client-certificate-refused';

/**
 * The TLS handshake with the server failed. Not retryable: the same files
 * fail the same way, so the message says which flag to give instead.
 */
export class TlsError extends BusError {
  constructor(
    readonly server: string,
    readonly reason: TlsFailure,
    /** Node's code for the failure, such as UNABLE_TO_VERIFY_LEAF_SIGNATURE. */
    readonly code: string,
    /** What Node said about it. */
    detail: string,
    options?: ErrorOptions,
  ) {
    const why = `${code}: ${detail}`;
    super(
      reason === 'server-not-trusted'
        ? `${server}: the server's TLS certificate is not trusted here (${why}): pass --tls-ca FILE ` +
            `(or NATS_CA; tls: { ca } in code) naming the CA that signed it`
        : reason === 'server-name-mismatch'
          ? `${server}: the server's TLS certificate does not name this host (${why}): connect by a name ` +
            `its subjectAltName lists, or reissue the certificate for this one`
          : `${server} verifies TLS clients and refused this one (${why}): pass --tls-cert FILE --tls-key FILE ` +
            `(or NATS_CERT, NATS_KEY; tls: { cert, key } in code) with a certificate signed by a CA the server trusts`,
      options,
    );
  }
}
