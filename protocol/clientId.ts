/**
 * A client connection's id on the servers: `<label>#<8 characters>`. The
 * label is what every worker log line shows; the suffix makes each new
 * connection (after DISABLED) a new client.
 */

/** A fresh id for a connection labelled `label`, from the environment's ids. */
export function newClientId(label: string, newId: () => string): string {
  return `${label}#${newId().slice(0, 8)}`;
}

/** The label a client id was made from (the whole id when it has no suffix). */
export function labelOf(clientId: string): string {
  const hash = clientId.lastIndexOf('#');
  return hash > 0 ? clientId.slice(0, hash) : clientId;
}
