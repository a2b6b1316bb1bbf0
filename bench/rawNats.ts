import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';

/** Plain nats.js, the baseline every bench measures cohort against. */
export interface RawNats {
  /** One request to an echo responder on its own connection. */
  request(payload: Uint8Array): Promise<unknown>;
  /** One JetStream publish-ack on the baseline stream (subjects `bench.raw.js.>`). */
  publish(subject: string, payload: Uint8Array): Promise<unknown>;
  close(): Promise<void>;
}

/** The subject the echo responder answers on. */
const ECHO_SUBJECT = 'bench.raw.rr';

/** An echo responder on a connection of its own: the far side of the raw request/reply baseline. */
export async function startEchoResponder(url: string): Promise<{ close(): Promise<void> }> {
  const responder = await connect({ servers: url, noAsyncTraces: true });
  responder.subscribe(ECHO_SUBJECT, {
    callback: (_err, m) => {
      m.respond(m.data);
    },
  });
  await responder.flush();
  return { close: () => responder.close() };
}

/**
 * Two connections (client, echo responder) and a stream of its own. Like the
 * bus, it connects with noAsyncTraces, so comparisons are like for like.
 * `echo: false` leaves the responder to another process (startEchoResponder there).
 */
export async function startRawNats(url: string, stream: string, options: { echo?: boolean } = {}): Promise<RawNats> {
  const client = await connect({ servers: url, noAsyncTraces: true });
  const responder = options.echo === false ? undefined : await startEchoResponder(url);
  await (await jetstreamManager(client)).streams.add({ name: stream, subjects: ['bench.raw.js.>'] });
  const js = jetstream(client);
  return {
    request: (payload) => client.request(ECHO_SUBJECT, payload, { timeout: 5_000 }),
    publish: (subject, payload) => js.publish(subject, payload),
    close: async () => {
      await client.close();
      await responder?.close();
    },
  };
}
