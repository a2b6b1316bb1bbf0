/**
 * A client connection's id on the servers: `<label>#<8 characters>`. The
 * label is what every worker log line shows, and what a server with
 * per-user permissions ties to one user (its inbox and its notices carry
 * the label); the suffix makes each new connection (after DISABLED) a new client.
 */
import { clientSubject, escapeToken, unescapeToken } from '../bus/subjects.js';
import { DEFAULT_INBOX_PREFIX } from '../bus/types.js';
import { InvalidRequestError } from './errors.js';

/** A fresh id for a connection labelled `label`, from the environment's ids. */
export function newClientId(label: string, newId: () => string): string {
  return `${label}#${newId().slice(0, 8)}`;
}

function split(clientId: string): { label: string; connection: string } {
  const hash = clientId.lastIndexOf('#');
  return hash > 0
    ? { label: clientId.slice(0, hash), connection: clientId.slice(hash + 1) || '_' }
    : { label: clientId, connection: '_' };
}

/** The label a client id was made from (the whole id when it has no suffix). */
export function labelOf(clientId: string): string {
  return split(clientId).label;
}

/** Where the connection `clientId` hears notices: `cohort.<cluster>.client.<label>.<connection>`. */
export function noticeSubject(cluster: string, clientId: string): string {
  const { label, connection } = split(clientId);
  return clientSubject(cluster, label, connection);
}

/**
 * A client's own inbox prefix, `<replyPrefix>.<label>`: the inbox a server
 * can reserve to the client's user, so no other user receives its replies.
 */
export function clientInbox(label: string, replyPrefix: string = DEFAULT_INBOX_PREFIX): string {
  return `${replyPrefix}.${escapeToken(label, 'client label')}`;
}

/** The label whose inbox `reply` lies in (see clientInbox), or undefined when it names none. */
export function inboxOwner(reply: string, replyPrefix: string = DEFAULT_INBOX_PREFIX): string | undefined {
  if (!reply.startsWith(`${replyPrefix}.`)) return undefined;
  const token = reply.slice(replyPrefix.length + 1).split('.', 1)[0]!;
  try {
    return unescapeToken(token, 'client label');
  } catch {
    return undefined;
  }
}

/**
 * A worker's inbox prefix, `<replyPrefix>.worker`: with per-user permissions
 * the worker user subscribes there, and `worker` is no client's label.
 */
export function workerInbox(replyPrefix: string = DEFAULT_INBOX_PREFIX): string {
  return `${replyPrefix}.worker`;
}

/** An operator command's inbox prefix, `<replyPrefix>.admin`: the admin user's, as `cohort auth init` grants it. */
export function adminInbox(replyPrefix: string = DEFAULT_INBOX_PREFIX): string {
  return `${replyPrefix}.admin`;
}

/**
 * A request's subject ends with its sender's label: a body claiming a client
 * of another label is refused (nats-server checks subjects, not bodies).
 */
export function checkClaim(label: string, client: string): InvalidRequestError | undefined {
  if (labelOf(client) === label) return undefined;
  return new InvalidRequestError(
    `a request on client ${JSON.stringify(label)}'s subject claims client ${JSON.stringify(client)}`,
  );
}
