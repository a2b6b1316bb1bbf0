import type { Logger } from 'pino';
import { encode } from '../../bus/codec.js';
import { noticeSubject } from '../../protocol/clientId.js';
import type { Bus } from '../../bus/types.js';
import type { ClientNotice } from '../../protocol/control.js';
import { HEADER, headerText } from '../../protocol/headers.js';
import type { Catalog } from './catalog.js';
import type { ClientRecords } from './clientRecords.js';

export interface DisconnectDeps {
  readonly workerId: string;
  readonly cluster: string;
  readonly bus: Bus;
  readonly clients: ClientRecords;
  readonly catalog: Catalog;
  readonly log: Logger;
}

/**
 * Disconnects a client by force (ECP ChangeToNotConnected): `client` is a
 * client id, or a label for every client of that label seen here. Its
 * requests are refused from the start; what it wrote at commit level memory
 * is journaled, its open transactions are rolled back, and it is told.
 */
export async function forceDisconnect(deps: DisconnectDeps, client: string): Promise<{ transactions: number }> {
  const { workerId, cluster, bus, clients, catalog, log } = deps;
  const ids = clients.match(client);
  const reason = `disconnected by force by worker ${workerId}`;
  // Refused first, so nothing it sends from now on slips in while the rest happens.
  clients.refuse(ids, reason);
  // What it wrote at commit level memory reaches the journal before it is told.
  await catalog.flush();
  const counts = await Promise.all(ids.map((id) => catalog.rollBack(id, 'forced')));
  const transactions = counts.reduce((a, b) => a + b, 0);
  const notice: ClientNotice = { type: 'disconnected', by: workerId, reason };
  for (const id of ids) {
    try {
      bus.publish(noticeSubject(cluster, id), encode(notice), { headers: { [HEADER.client]: headerText(id) } });
    } catch (err) {
      log.warn({ err, clientId: id }, 'disconnect notice not sent');
    }
  }
  await bus.flush();
  log.warn({ client, clients: ids, transactions }, 'client disconnected by force');
  return { transactions };
}
