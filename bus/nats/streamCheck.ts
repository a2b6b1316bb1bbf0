import type { JetStreamManager, StreamConfig } from '@nats-io/jetstream';
import { millis } from '@nats-io/nats-core';
import { checkStream, type StreamFacts, type StreamNeeds } from '../streamConfig.js';

/** A stream's configuration as the rules of streamConfig.ts read it. */
export function natsStreamFacts(config: StreamConfig): StreamFacts {
  return {
    name: config.name,
    subjects: config.subjects ?? [],
    duplicateWindow: millis(config.duplicate_window ?? 0),
    retention: config.retention,
    storage: config.storage,
    replicas: config.num_replicas,
    maxAge: millis(config.max_age ?? 0),
    maxMsgsPerSubject: config.max_msgs_per_subject,
    maxMsgs: config.max_msgs,
    maxBytes: config.max_bytes,
    discard: config.discard,
    allowRollup: config.allow_rollup_hdrs === true,
  };
}

/** Reads the stream's configuration from the server and throws StreamConfigMismatchError if it will not do. */
export async function checkNatsStream(jsm: JetStreamManager, name: string, needs: StreamNeeds): Promise<void> {
  const info = await jsm.streams.info(name);
  const mismatch = checkStream(natsStreamFacts(info.config), needs);
  if (mismatch !== undefined) throw mismatch;
}
