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

/**
 * Two connections (client, echo responder) and a stream of its own. Like the
 * bus, it connects with noAsyncTraces, so comparisons are like for like.
 */
export async function startRawNats(url: string, stream: string): Promise<RawNats> {
  const client = await connect({ servers: url, noAsyncTraces: true });
  const responder = await connect({ servers: url, noAsyncTraces: true });
  responder.subscribe('bench.raw.rr', {
    callback: (_err, m) => {
      m.respond(m.data);
    },
  });
  await responder.flush();
  await (await jetstreamManager(client)).streams.add({ name: stream, subjects: ['bench.raw.js.>'] });
  const js = jetstream(client);
  return {
    request: (payload) => client.request('bench.raw.rr', payload, { timeout: 5_000 }),
    publish: (subject, payload) => js.publish(subject, payload),
    close: async () => {
      await client.close();
      await responder.close();
    },
  };
}
