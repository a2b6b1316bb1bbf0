/**
 * Lets go of an ordered consumer: its message stream closed and the
 * consumer deleted, in the background. Not awaited on purpose: under a
 * stream of writes, closing waits on deliveries nobody needs any more.
 */
export function releaseConsumer(
  messages: { close(): Promise<unknown> },
  consumer: { delete(): Promise<unknown> },
): void {
  void messages.close().catch(() => undefined);
  void consumer.delete().catch(() => undefined);
}
