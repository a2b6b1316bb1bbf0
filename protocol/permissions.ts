/**
 * Who may publish and subscribe where, per role, derived from the subject
 * scheme and the names of the cluster's streams and buckets: what `cohort
 * auth init` writes into a nats-server authorization block. Pure: no keys,
 * no files.
 *
 * Every connection takes its answers under its own inbox prefix,
 * `_INBOX.<owner>` (inboxPrefixFor), so no user can subscribe to another's
 * replies; workers answer to any `_INBOX.>`. The JetStream API subjects
 * are the ones nats.js 3 sends for what each role does, found against
 * nats-server 2.9.10 (`-DV` logs every "Permissions Violation"); each is
 * named for one of cohort's own streams, never with a wildcard stream.
 */
import { InvalidNameError } from '../bus/errors.js';
import { eventFilter, metaFilter, SUBJECT_ROOT, validateCluster } from '../bus/subjects.js';
import { adminInbox, clientInbox, workerInbox } from './clientId.js';
import { discoverySubjects, SERVICE_VERBS } from './service.js';
import { bucketName, journalStreamName, SHARD_COUNT_KEY, type BucketKind } from './names.js';

export type Role = { kind: 'worker' } | { kind: 'admin' } | { kind: 'reader' } | { kind: 'client'; label: string };

export interface Permissions {
  readonly publish: readonly string[];
  readonly subscribe: readonly string[];
}

/** A client's label in its user name (`client-<label>`), its inbox and its notices' subject: one plain subject token. */
export const clientLabelPattern = /^[A-Za-z0-9_-]{1,64}$/;

/** Inbox owners of the other roles: a client labelled so would read their replies, so no client may be. */
export const RESERVED_LABELS: readonly string[] = ['worker', 'admin', 'reader'];

/** Throws InvalidNameError for a label that is not one token of `[A-Za-z0-9_-]`, or that is another role's. */
export function validateClientLabel(label: string): void {
  if (typeof label !== 'string' || !clientLabelPattern.test(label))
    throw new InvalidNameError('client label', String(label), 'must be 1-64 characters of A-Z a-z 0-9 _ -');
  if (RESERVED_LABELS.includes(label))
    throw new InvalidNameError('client label', label, `is the inbox owner of the ${label} role`);
}

/** Whose inbox: the client's label, or the role's name. */
export function inboxOwnerOf(role: Role): string {
  if (role.kind !== 'client') return role.kind;
  validateClientLabel(role.label);
  return role.label;
}

/**
 * `_INBOX.<owner>`: the connection's `inboxPrefix`, the only inbox its user
 * may subscribe to. The reader is a client labelled `reader`.
 */
export function inboxPrefixFor(role: Role): string {
  switch (role.kind) {
    case 'worker':
      return workerInbox();
    case 'admin':
      return adminInbox();
    case 'reader':
      return clientInbox('reader');
    case 'client':
      validateClientLabel(role.label);
      return clientInbox(role.label);
  }
}

/** The nats-server user of a role: `worker`, `admin`, `reader`, `client-<label>`; also its seed file's name. */
export function userNameOf(role: Role): string {
  return role.kind === 'client' ? `client-${inboxOwnerOf(role)}` : role.kind;
}

/** The streams NATS keeps a key-value bucket and an object store in. */
export function kvStreamName(bucket: string): string {
  return `KV_${bucket}`;
}
export function objectStreamName(bucket: string): string {
  return `OBJ_${bucket}`;
}

const KV_BUCKETS: readonly BucketKind[] = ['cluster', 'snapshots', 'timers', 'counters'];
const API = '$JS.API';

/** `cohort.<cluster>.<kind>.>` */
function under(cluster: string, kind: string): string {
  return `${SUBJECT_ROOT}.${cluster}.${kind}.>`;
}

interface Stores {
  readonly journal: string;
  readonly kv: readonly { readonly kind: BucketKind; readonly bucket: string; readonly stream: string }[];
  /** Large snapshots: the workers' own. */
  readonly blobs: { readonly bucket: string; readonly stream: string };
  /** Claim-checked replies, which clients fetch; they expire. */
  readonly replies: { readonly bucket: string; readonly stream: string };
}

function storesOf(cluster: string): Stores {
  const objects = (kind: BucketKind) => {
    const bucket = bucketName(cluster, kind);
    return { bucket, stream: objectStreamName(bucket) };
  };
  return {
    journal: journalStreamName(cluster),
    kv: KV_BUCKETS.map((kind) => {
      const bucket = bucketName(cluster, kind);
      return { kind, bucket, stream: kvStreamName(bucket) };
    }),
    blobs: objects('blobs'),
    replies: objects('replies'),
  };
}

function kvBucket(stores: Stores, kind: BucketKind): { bucket: string; stream: string } {
  return stores.kv.find((b) => b.kind === kind)!;
}

/**
 * Ordered pull consumers (KV watches and listings, journal reads and
 * tails): created with their name and filter in the subject (2.9+), then
 * pulled, asked about, deleted.
 */
function pullConsumers(stream: string, filter = '>'): string[] {
  return [
    `${API}.CONSUMER.CREATE.${stream}.*.${filter}`,
    `${API}.CONSUMER.INFO.${stream}.*`,
    `${API}.CONSUMER.DELETE.${stream}.*`,
    `${API}.CONSUMER.MSG.NEXT.${stream}.*`,
  ];
}

/**
 * Reading an object: its metadata by last subject (STREAM.MSG.GET), then its
 * chunks through an ordered push consumer on `$O.<bucket>.C.<nuid>` that
 * asks for flow control replies (without them a large object stalls).
 *
 * A push consumer's deliver subject is in the request body, and
 * nats-server 2.9 does not hold it to the creator's publish permissions:
 * whoever may create one can have chunks delivered onto any subject (they
 * arrive with their own `$O...` subject and a `$JS.ACK...` reply). So no
 * receiver may trust a message whose subject is not the one it subscribed to.
 */
function objectReads(blobs: { bucket: string; stream: string }): string[] {
  return [
    `${API}.STREAM.INFO.${blobs.stream}`,
    `${API}.STREAM.MSG.GET.${blobs.stream}`,
    `${API}.CONSUMER.CREATE.${blobs.stream}.*.$O.${blobs.bucket}.C.>`,
    `$JS.FC.${blobs.stream}.>`,
  ];
}

/** A KV get: the bucket's stream info when opened, then direct gets by last subject (`DIRECT.GET.<stream>.<subject>`). */
function kvReads(kv: { stream: string }): string[] {
  return [`${API}.STREAM.INFO.${kv.stream}`, `${API}.DIRECT.GET.${kv.stream}.>`];
}

/** `connect()` checks its shard count against the cluster's: that one key of the cluster bucket, nothing else there. */
function shardCountRead(stores: Stores): string[] {
  const view = kvBucket(stores, 'cluster');
  return [
    `${API}.STREAM.INFO.${view.stream}`,
    `${API}.DIRECT.GET.${view.stream}.$KV.${view.bucket}.${SHARD_COUNT_KEY}`,
  ];
}

/**
 * The micro service discovery subjects of cohort workers (`$SRV.<verb>`,
 * `.cohort`, `.cohort.<id>`): workers subscribe to them, operators ask.
 * Shared with every cohort cluster on the account, as `$SRV` is.
 */
function serviceDiscovery(): string[] {
  return SERVICE_VERBS.flatMap((verb) => discoverySubjects(verb, '*'));
}

/** Everything a worker does to the stores it creates and owns. */
function workerStores(stores: Stores): string[] {
  const { journal } = stores;
  return [
    // The journal: created at start (one found there is checked, never changed), appended to
    // (a publish under cohort.<c>.jrnl), its last sequence per subject read, replayed and
    // tailed, purged below snapshots.
    `${API}.STREAM.CREATE.${journal}`,
    `${API}.STREAM.INFO.${journal}`,
    `${API}.STREAM.MSG.GET.${journal}`,
    `${API}.STREAM.PURGE.${journal}`,
    ...pullConsumers(journal),
    // The buckets: created at start, read, written with compare-and-set, watched and listed.
    ...stores.kv.flatMap((kv) => [
      `${API}.STREAM.CREATE.${kv.stream}`,
      ...kvReads(kv),
      ...pullConsumers(kv.stream),
      `$KV.${kv.bucket}.>`,
    ]),
    // The object stores (large snapshots, claim-checked replies): created at start, written (chunks and
    // metadata), read, deleted (a purge of the chunks).
    ...[stores.blobs, stores.replies].flatMap((objects) => [
      `${API}.STREAM.CREATE.${objects.stream}`,
      `${API}.STREAM.PURGE.${objects.stream}`,
      `${API}.CONSUMER.DELETE.${objects.stream}.*`,
      ...objectReads(objects),
      `$O.${objects.bucket}.>`,
    ]),
  ];
}

/**
 * The publish and subscribe allow-lists of `role` in `cluster`; anything
 * not listed is denied. Sorted and without duplicates, so the generated
 * configuration is the same for the same input.
 */
export function rolePermissions(cluster: string, role: Role): Permissions {
  validateCluster(cluster);
  const stores = storesOf(cluster);
  const owner = inboxOwnerOf(role);
  const inbox = `${inboxPrefixFor(role)}.>`;
  // Forced disconnects from workers, to this owner's connections only.
  const notices = `${SUBJECT_ROOT}.${cluster}.client.${owner}.>`;
  // Requests end with their sender's label: a client user may send only as its own.
  const own = (kind: 'cmd' | 'read' | 'ro'): string => `${SUBJECT_ROOT}.${cluster}.${kind}.*.*.*.${owner}`;
  const reads = [own('read'), own('ro'), metaFilter(cluster)];
  switch (role.kind) {
    case 'worker':
      return tidy({
        // Replies go to every requester's inbox; the rest is the cluster's own.
        publish: [`${SUBJECT_ROOT}.${cluster}.>`, '_INBOX.>', `${API}.INFO`, ...workerStores(stores)],
        // Its own micro service endpoints are under cohort.<cluster>.svc; discovery is $SRV's.
        subscribe: [`${SUBJECT_ROOT}.${cluster}.>`, inbox, ...serviceDiscovery()],
      });
    case 'admin': {
      const view = kvBucket(stores, 'cluster');
      return tidy({
        publish: [
          // The operator may send as any client (a repair in someone's name is the operator's call).
          under(cluster, 'cmd'),
          under(cluster, 'read'),
          under(cluster, 'ro'),
          metaFilter(cluster),
          // Failover requests to the leader.
          under(cluster, 'ctl'),
          // The workers' micro services: `nats micro ls|info|stats`, and their status, sessions and inspect endpoints.
          ...serviceDiscovery(),
          under(cluster, 'svc'),
          `${API}.INFO`,
          // Status: the views as they are written, and single reads of the other stores, no writes.
          ...pullConsumers(view.stream, `$KV.${view.bucket}.>`),
          ...stores.kv.flatMap(kvReads),
          `${API}.STREAM.INFO.${stores.journal}`,
          `${API}.STREAM.MSG.GET.${stores.journal}`,
          // Inspection: the journal as it is written (replica lag, an onlooker's tail).
          ...pullConsumers(stores.journal),
          ...objectReads(stores.blobs),
          ...objectReads(stores.replies),
        ],
        // Membership and replica progress as they happen, for status and lag.
        subscribe: [under(cluster, 'hb'), under(cluster, 'rep'), eventFilter(cluster), notices, inbox],
      });
    }
    case 'reader':
      // A client labelled `reader` that may only read: a document too large for a message comes as a blob.
      return tidy({
        publish: [
          ...reads,
          `${API}.INFO`,
          ...objectReads(stores.replies),
          ...shardCountRead(stores),
          // Looking on: the workers' micro services, which only answer.
          ...serviceDiscovery(),
          under(cluster, 'svc'),
        ],
        subscribe: [eventFilter(cluster), notices, inbox],
      });
    case 'client': {
      const counters = kvBucket(stores, 'counters');
      return tidy({
        publish: [
          own('cmd'),
          ...reads,
          `${API}.INFO`,
          // Claim-checked replies, in their own bucket (never the snapshots' blobs). Deleting one
          // after reading is not granted: it is a metadata write and a STREAM.PURGE, whose filter
          // is in the request body, so it would let a client purge every reply. The client's
          // delete is refused, and the blob expires with the bucket's max age.
          ...objectReads(stores.replies),
          // Counters: get, create and update with compare-and-set, in this bucket only.
          ...kvReads(counters),
          `$KV.${counters.bucket}.>`,
          ...shardCountRead(stores),
        ],
        subscribe: [eventFilter(cluster), notices, inbox],
      });
    }
  }
}

function tidy(p: { publish: string[]; subscribe: string[] }): Permissions {
  const sorted = (list: string[]): string[] => [...new Set(list)].sort();
  return { publish: sorted(p.publish), subscribe: sorted(p.subscribe) };
}
